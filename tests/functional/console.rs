//! The local console: a Unix socket for root, plain HTTP, exempt from remote lockouts, with
//! the recovery path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

/// Locks `admin` for network logins with wrong passwords over HTTPS from 127.0.0.1, and checks
/// that the right password is then refused over HTTPS too.
fn lock_admin_remotely(d: &Device) {
    let c = d.client();
    for i in 0..5 {
        expect(
            &c.login("admin", &format!("Wrong-Password-{i}x")),
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
        );
    }
    expect(
        &d.client().login("admin", ADMIN_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
}

/// S3.1-01 R6, S3.1-04 R1-1: after five wrong passwords over HTTPS the admin account is locked
/// for network logins, but root on the console still logs in with the right password; the
/// console session works on the console only.
#[test]
fn console_login_works_while_the_admin_account_is_locked_by_remote_failures() {
    let d = Device::start();
    let admin = d.admin();
    lock_admin_remotely(&d);
    let locked = user_entry(&admin, "admin").unwrap();
    assert!(locked["locked_until"].as_u64().unwrap() > now(), "{locked}");
    assert!(
        audit_events(&admin)
            .iter()
            .any(|e| e["event"] == "login_threshold_exceeded" && e["actor"] == "admin")
    );

    let r = console_login(&d, "admin", ADMIN_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "admin");
    let cookie = r.cookie().expect("a console session cookie");
    let sock = d.console_socket();
    let r = console(&sock, "GET", "/api/v1/auth/session", None, Some(&cookie)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["channel"], "console");
    let r = console(&sock, "GET", "/api/v1/users", None, Some(&cookie)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["username"], "admin", "{}", r.text);
    // The console cookie is no use over the network.
    expect(
        &with_cookie(&d, &cookie, "GET", "/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // A wrong password on the console is still refused, and without a cookie nothing is served.
    let r = console_login(&d, "admin", "Wrong-Password-on-console");
    assert_eq!(
        (r.status, r.code()),
        (401, "authentication_failed"),
        "{}",
        r.text
    );
    let r = console(&sock, "GET", "/api/v1/users", None, None).unwrap();
    assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{}", r.text);
}

/// S3.1-03 R4: the console's recovery gives a one-time password, without logging in, that
/// lifts the lock, works over HTTPS and forces a change; the old password stops working and
/// the recovery is audited.
#[test]
fn console_recovery_gives_a_one_time_password_that_forces_a_change() {
    let d = Device::start();
    let admin = d.admin();
    lock_admin_remotely(&d);

    let r = console(
        &d.console_socket(),
        "POST",
        "/api/v1/console/recover",
        Some(&json!({"username": "admin"})),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let otp = r.body["one_time_password"].as_str().unwrap().to_string();
    assert!(otp.len() >= 12);
    // The recovery ended the existing sessions.
    expect(
        &admin.get("/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    expect(
        &d.client().login("admin", ADMIN_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let c = d.client();
    let r = c.login("admin", &otp);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);
    expect(
        &c.get("/api/v1/device"),
        StatusCode::FORBIDDEN,
        "password_change_required",
    );
    let r = c.post(
        "/api/v1/auth/password",
        &json!({"current": otp, "new": OTHER_PASSWORD}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(c.get("/api/v1/device").status, StatusCode::OK);
    let u = user_entry(&c, "admin").unwrap();
    assert!(u.get("locked_until").is_none(), "{u}");
    assert!(
        audit_events(&c)
            .iter()
            .any(|e| e["event"] == "credential_reset"
                && e["source"] == "console"
                && e["details"]["path"] == "console_recovery"
                && e["details"]["user"] == "admin")
    );

    // Recovery also re-enables a disabled account.
    c.reauth(OTHER_PASSWORD);
    let r = c.post(
        "/api/v1/users",
        &json!({"username": "zed", "role": "operator"}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let zed_otp = r.body["one_time_password"].as_str().unwrap().to_string();
    let r = c.patch("/api/v1/users/zed", &json!({"disabled": true}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = console(
        &d.console_socket(),
        "POST",
        "/api/v1/console/recover",
        Some(&json!({"username": "zed"})),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let zed_new = r.body["one_time_password"].as_str().unwrap();
    assert_eq!(user_entry(&c, "zed").unwrap()["disabled"], false);
    expect(
        &d.client().login("zed", &zed_otp),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let r = d.client().login("zed", zed_new);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);

    // An unknown account is a 404, and changes nothing.
    let r = console(
        &d.console_socket(),
        "POST",
        "/api/v1/console/recover",
        Some(&json!({"username": "ghost"})),
        None,
    )
    .unwrap();
    assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.text);
    assert_eq!(
        d.client().login("admin", OTHER_PASSWORD).status,
        StatusCode::OK
    );
}

/// S3.1-03 R4, S3.1-24: the recovery endpoint does not exist over HTTPS (404, anonymous or as
/// admin) and nothing changes when it is called there.
#[test]
fn console_recovery_is_not_found_over_https() {
    let d = Device::start();
    let admin = d.admin();
    let body = json!({"username": "admin"});
    for c in [&d.client(), &admin] {
        let r = c.post("/api/v1/console/recover", &body);
        expect(&r, StatusCode::NOT_FOUND, "not_found");
        assert!(r.body.get("one_time_password").is_none());
    }
    assert_eq!(
        d.client().login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK
    );
    assert_eq!(admin.get("/api/v1/device").status, StatusCode::OK);
    let u = user_entry(&admin, "admin").unwrap();
    assert_eq!(u["must_change_password"], false);
}

/// Runs curl as `nobody` against the console socket; returns (exit status, HTTP code printed by
/// curl: `000` when no answer came).
fn curl_as_nobody(d: &Device) -> (std::process::ExitStatus, String, String) {
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", "curl", "-sS", "--max-time", "10"])
        .arg("--unix-socket")
        .arg(d.console_socket())
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"username":"admin"}"#,
            "http://console/api/v1/console/recover",
        ])
        .output()
        .expect("runuser and curl (util-linux, curl) are installed");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// S3.1-01 R6: only root (or the daemon's own user) may use the console. The socket is a 0600
/// root file, so another user cannot even connect; and should its mode ever be widened, the
/// daemon itself checks the peer's credentials and closes the connection without an answer
/// (audited). Either way nothing changes.
#[test]
fn a_non_root_peer_is_refused_by_the_console() {
    assert!(is_root(), "this suite runs as root");
    let d = Device::start();
    let admin = d.admin();
    let sock = d.console_socket();
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");
    assert_eq!(meta.uid(), 0, "socket owner");

    let (status, code, stderr) = curl_as_nobody(&d);
    assert!(
        !status.success(),
        "nobody reached the console: {code} {stderr}"
    );
    assert_eq!(code, "000", "nobody got an HTTP answer; {stderr}");

    // Defence in depth: widen the socket (and its directory) and try again.
    let run = sock.parent().unwrap();
    let run_mode = std::fs::metadata(run).unwrap().permissions().mode();
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (status, code, stderr) = curl_as_nobody(&d);
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(run_mode)).unwrap();
    assert!(
        !status.success(),
        "nobody reached the console: {code} {stderr}"
    );
    assert_eq!(code, "000", "nobody got an HTTP answer; {stderr}");
    assert!(
        audit_events(&admin)
            .iter()
            .any(|e| e["event"] == "connection_refused"
                && e["details"]["reason"] == "console_peer_not_root"
                && e["details"]["uid"] == 65534),
        "the refused peer is not audited"
    );

    // Nothing was reset.
    assert_eq!(
        d.client().login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK
    );
    assert_eq!(
        user_entry(&admin, "admin").unwrap()["must_change_password"],
        false
    );
    // And root still gets an answer.
    let r = console_login(&d, "admin", ADMIN_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text);
}
