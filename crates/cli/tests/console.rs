//! The `mamori` binary against an in-test API server on a console Unix socket.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Api, DEVICE_JSON, PASSWORD, TOKEN, mamori, router, stderr, stdout};

struct Console {
    api: Api,
    dir: tempfile::TempDir,
    socket: String,
}

/// Starts the stand-in API on `DIR/run/console.sock`.
async fn console() -> Console {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("run")).unwrap();
    let path = dir.path().join("run").join("console.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let api = Api::default();
    let app = router(api.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Console {
        api,
        socket: path.to_str().unwrap().to_owned(),
        dir,
    }
}

fn calls(api: &Api) -> Vec<String> {
    api.log()
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_json_is_verbatim_and_session_is_closed() {
    let c = console().await;
    let out = mamori(
        &["--console", &c.socket, "device", "--json"],
        &[],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{DEVICE_JSON}\n"));
    assert_eq!(
        calls(&c.api),
        [
            "POST /api/v1/auth/login",
            "GET /api/v1/device",
            "POST /api/v1/auth/logout"
        ]
    );
    let seen = c.api.seen();
    assert_eq!(seen[0].auth, "none");
    // Only the session cookie is sent back, not the other cookie of the answer.
    assert_eq!(seen[1].auth, "cookie:sess1");
    assert_eq!(seen[2].auth, "cookie:sess1");
    assert!(c.api.0.lock().unwrap().sessions.is_empty(), "logged out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_dir_finds_the_socket_and_human_output_is_aligned() {
    let c = console().await;
    let state = c.dir.path().to_str().unwrap();
    let out = mamori(
        &["--state-dir", state, "--console", "device"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "model             MG-1\n\
         serial            SN0001\n\
         firmware_version  0.1.0\n\
         uptime            01:02:03 (3723 s)\n\
         time              2026-01-01T00:00:00Z\n"
    );
    assert!(!stdout(&out).contains(PASSWORD) && !stderr(&out).contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_exits_1_with_the_api_message() {
    let c = console().await;
    let out = mamori(&["--console", &c.socket, "device"], &[], "wrong\n").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong username or password"),
        "{}",
        stderr(&out)
    );
    assert_eq!(calls(&c.api), ["POST /api/v1/auth/login"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_on_a_closed_stdin_is_a_usage_error() {
    let c = console().await;
    let out = mamori(&["--console", &c.socket, "device"], &[], "").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("MAMORI_PASSWORD"), "{}", stderr(&out));
    assert!(calls(&c.api).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_shows_retry_after() {
    let c = console().await;
    let out = mamori(
        &["--console", &c.socket, "--user", "throttled", "device"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("retry after: 42"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_required_suggests_totp() {
    let c = console().await;
    let out = mamori(
        &["--console", &c.socket, "--user", "mfa", "device"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--totp"), "{}", stderr(&out));
    let out = mamori(
        &[
            "--console",
            &c.socket,
            "--user",
            "mfa",
            "--totp",
            "123456",
            "device",
        ],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_change_password_stops_other_commands() {
    let c = console().await;
    let out = mamori(
        &[
            "--console",
            &c.socket,
            "--user",
            "fresh",
            "device",
            "--json",
        ],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("mamori passwd"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        calls(&c.api),
        ["POST /api/v1/auth/login", "POST /api/v1/auth/logout"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwd_uses_the_new_cookie_afterwards() {
    let c = console().await;
    let out = mamori(
        &[
            "--console",
            &c.socket,
            "--user",
            "fresh",
            "passwd",
            "--json",
        ],
        &[],
        &format!("{PASSWORD}\na much longer new password\n"),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{}\n");
    let seen = c.api.seen();
    let trace: Vec<(String, String)> = seen
        .iter()
        .map(|s| (s.path.clone(), s.auth.clone()))
        .collect();
    assert_eq!(
        trace,
        [
            ("/api/v1/auth/login".into(), "none".into()),
            ("/api/v1/auth/password".into(), "cookie:sess1".into()),
            ("/api/v1/auth/logout".into(), "cookie:sess2".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_password_shows_the_rule() {
    let c = console().await;
    let out = mamori(
        &["--console", &c.socket, "passwd"],
        &[
            ("MAMORI_PASSWORD", PASSWORD),
            ("MAMORI_NEW_PASSWORD", "short"),
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("password too short"), "{err}");
    assert!(err.contains("password rule: length"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_add_reauthenticates_first_and_prints_the_one_time_password() {
    let c = console().await;
    let out = mamori(
        &[
            "--console",
            &c.socket,
            "users",
            "add",
            "bob",
            "--role",
            "operator",
        ],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("one-time password: otp-ABCD-1234"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        calls(&c.api),
        [
            "POST /api/v1/auth/login",
            "POST /api/v1/auth/reauth",
            "POST /api/v1/users",
            "POST /api/v1/auth/logout"
        ]
    );
    assert_eq!(
        c.api.bodies(),
        [serde_json::json!({"username": "bob", "role": "operator"})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_add_with_password_from_the_second_stdin_line() {
    let c = console().await;
    let out = mamori(
        &[
            "--console",
            &c.socket,
            "users",
            "add",
            "carol",
            "--role",
            "viewer",
            "--password-stdin",
            "--json",
        ],
        &[],
        &format!("{PASSWORD}\ncarol's own password\n"),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"username\":\"carol\"}\n");
    assert_eq!(
        c.api.bodies(),
        [serde_json::json!({"username": "carol", "role": "viewer",
                            "password": "carol's own password"})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauth_with_mfa_needs_a_second_code() {
    let c = console().await;
    let base = [
        "--console",
        &c.socket,
        "--user",
        "mfa",
        "--totp",
        "111111",
        "users",
        "delete",
        "bob",
    ];
    let out = mamori(&base, &[("MAMORI_PASSWORD", PASSWORD)], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--reauth-totp"), "{}", stderr(&out));
    let mut args = base.to_vec();
    args.extend(["--reauth-totp", "222222"]);
    let out = mamori(&args, &[("MAMORI_PASSWORD", PASSWORD)], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = mamori(
        &base,
        &[
            ("MAMORI_PASSWORD", PASSWORD),
            ("MAMORI_REAUTH_TOTP", "333333"),
        ],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_answer_prints_empty_object_in_json_mode() {
    let c = console().await;
    let out = mamori(
        &["--console", &c.socket, "users", "delete", "bob", "--json"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{}\n");
    let out = mamori(
        &["--console", &c.socket, "users", "delete", "bob"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(stdout(&out), "user bob deleted\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_change_needs_confirmation() {
    let c = console().await;
    let args = [
        "--console",
        &c.socket,
        "settings",
        "access",
        "set",
        "--allow",
        "192.0.2.0/24",
    ];
    let out = mamori(&args, &[("MAMORI_PASSWORD", PASSWORD)], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--confirm"), "{}", stderr(&out));
    let mut confirmed = args.to_vec();
    confirmed.push("--confirm");
    let out = mamori(&confirmed, &[("MAMORI_PASSWORD", PASSWORD)], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        c.api.bodies(),
        [
            serde_json::json!({"allow": ["192.0.2.0/24"], "trusted": ["127.0.0.1/32"]}),
            serde_json::json!({"allow": ["192.0.2.0/24"], "trusted": ["127.0.0.1/32"],
                               "confirm": true}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_for_forbidden_and_server_error() {
    let c = console().await;
    let out = mamori(
        &["--console", &c.socket, "audit", "events", "--limit", "3"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("role does not allow this"));
    let out = mamori(
        &["--console", &c.socket, "status"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("something broke"));
    // The session is closed even after a failed command.
    assert_eq!(
        calls(&c.api).last().map(String::as_str),
        Some("POST /api/v1/auth/logout")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_from_env_skips_login_and_logout() {
    let c = console().await;
    let out = mamori(
        &["--console", &c.socket, "device", "--json"],
        &[("MAMORI_TOKEN", TOKEN)],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = c.api.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/api/v1/device");
    assert_eq!(seen[0].auth, format!("bearer:{TOKEN}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_needs_no_login() {
    let c = console().await;
    let out = mamori(&["--console", &c.socket, "recover", "admin"], &[], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "one-time password for admin: recover-9876\nadmin must change it at the next login\n"
    );
    assert_eq!(calls(&c.api), ["POST /api/v1/console/recover"]);
    assert_eq!(
        c.api.bodies(),
        [serde_json::json!({"username": "admin", "reset_mfa": false})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_without_console_is_a_usage_error() {
    let out = mamori(
        &[
            "--url",
            "https://127.0.0.1:1",
            "--cacert",
            "/nonexistent.pem",
            "recover",
            "admin",
        ],
        &[],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--console"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_socket_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let out = mamori(
        &["--console", sock.to_str().unwrap(), "device"],
        &[("MAMORI_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}
