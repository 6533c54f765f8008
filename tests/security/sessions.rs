//! S3.1-01 R2/R3: sessions. No fixation, idle and absolute timeouts, a cookie browsers keep to
//! this origin over HTTPS, and re-authentication before sensitive changes.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

fn session_with(d: &Device, cookie: &str) -> Answer {
    answer(
        raw_client(d, "127.0.0.1")
            .get(d.url("/api/v1/auth/session"))
            .header("cookie", format!("__Host-mamori-session={cookie}"))
            .send()
            .unwrap(),
    )
}

/// S3.1-01 R3 (session fixation): a session id planted in the browser before login is not
/// adopted; the server issues its own, and the planted one stays unauthenticated.
#[test]
fn a_session_id_planted_before_login_is_not_adopted() {
    let d = Device::start();
    let _admin = d.admin();
    let planted = "ab".repeat(32);
    let r = answer(
        raw_client(&d, "127.0.0.1")
            .post(d.url("/api/v1/auth/login"))
            .header("cookie", format!("__Host-mamori-session={planted}"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .unwrap(),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let issued = set_session_cookie(&r).expect("login sets a session cookie");
    assert_ne!(issued, planted);
    assert_eq!(issued.len(), 64, "256-bit id in hex: {issued}");
    assert!(issued.bytes().all(|b| b.is_ascii_hexdigit()));
    let r = session_with(&d, &planted);
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "{}",
        r.text
    );
    assert_eq!(session_with(&d, &issued).status, StatusCode::OK);
}

/// S3.1-01 R3: the session cookie is `__Host-` prefixed, Secure, HttpOnly, SameSite=Strict,
/// Path=/ and has no Domain; logging out ends the session on the server, not just in the
/// browser.
#[test]
fn the_session_cookie_is_host_only_secure_httponly_strict_and_dies_at_logout() {
    let d = Device::start();
    let _admin = d.admin();
    let r = answer(
        raw_client(&d, "127.0.0.1")
            .post(d.url("/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .unwrap(),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let set_cookies: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set_cookies.len(), 1, "{set_cookies:?}");
    let cookie = set_cookies[0];
    assert!(cookie.starts_with("__Host-mamori-session="), "{cookie}");
    let attrs: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {cookie}");
    }
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain")),
        "__Host- cookies carry no Domain: {cookie}"
    );
    let secret = set_session_cookie(&r).unwrap();

    let out = answer(
        raw_client(&d, "127.0.0.1")
            .post(d.url("/api/v1/auth/logout"))
            .header("cookie", format!("__Host-mamori-session={secret}"))
            .send()
            .unwrap(),
    );
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        session_with(&d, &secret).status,
        StatusCode::UNAUTHORIZED,
        "a logged-out session id must not work when replayed"
    );
}

/// S3.1-01 R3: with a 10 s idle timeout, a session left alone for 12 s is gone (401
/// `unauthenticated`, audited as `session_expired`), while one used every 4 s lives on.
#[test]
fn an_idle_session_expires_after_the_idle_timeout_and_a_busy_one_does_not() {
    let d = Device::start();
    let admin = d.admin();
    set_auth_settings(&admin, |s| {
        s["idle_timeout_seconds"] = json!(10);
        s["absolute_timeout_seconds"] = json!(60);
    });
    let idle = d.client_from("127.0.0.2");
    assert_eq!(idle.login("admin", ADMIN_PASSWORD).status, StatusCode::OK);
    let idle_id = idle
        .get("/api/v1/sessions")
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let busy = d.client_from("127.0.0.3");
    assert_eq!(busy.login("admin", ADMIN_PASSWORD).status, StatusCode::OK);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_secs(4));
        let r = busy.get("/api/v1/auth/session");
        assert_eq!(r.status, StatusCode::OK, "busy session died: {}", r.text);
    }
    let r = idle.get("/api/v1/auth/session");
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "idle session after 12 s: {}",
        r.text
    );
    let expired: Vec<_> = events(&audit(&busy), "session_expired")
        .into_iter()
        .filter(|e| e["details"]["session"] == idle_id.as_str())
        .cloned()
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["details"]["reason"], "idle_timeout");
    assert_eq!(expired[0]["actor"], "admin");
}

/// S3.1-01 R3: a session kept busy every 5 s still ends at the absolute timeout (60 s).
#[test]
fn a_busy_session_still_ends_at_the_absolute_timeout() {
    let d = Device::start();
    let admin = d.admin();
    set_auth_settings(&admin, |s| {
        s["idle_timeout_seconds"] = json!(10);
        s["absolute_timeout_seconds"] = json!(60);
    });
    let c = d.client_from("127.0.0.2");
    let login = c.login("admin", ADMIN_PASSWORD);
    let t = Instant::now();
    assert_eq!(login.status, StatusCode::OK);
    let expires_at = login.body["expires_at"].as_u64().unwrap();
    assert!(
        (unix_now() + 58..=unix_now() + 61).contains(&expires_at),
        "expires_at {expires_at}"
    );
    let id = c
        .get("/api/v1/sessions")
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let died_at = loop {
        std::thread::sleep(Duration::from_secs(5));
        let r = c.get("/api/v1/auth/session");
        let elapsed = t.elapsed();
        if r.status == StatusCode::OK {
            assert!(
                elapsed < Duration::from_secs(62),
                "alive after {elapsed:?}, past the 60 s absolute timeout"
            );
            continue;
        }
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{}",
            r.text
        );
        break elapsed;
    };
    eprintln!(
        "busy session ended {:.1} s after login",
        died_at.as_secs_f64()
    );
    assert!(
        died_at >= Duration::from_secs(58),
        "ended too early: {died_at:?}"
    );
    let fresh = d.client();
    assert_eq!(fresh.login("admin", ADMIN_PASSWORD).status, StatusCode::OK);
    let expired: Vec<_> = events(&audit(&fresh), "session_expired")
        .into_iter()
        .filter(|e| e["details"]["session"] == id.as_str())
        .cloned()
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["details"]["reason"], "absolute_timeout");
}

/// S3.1-01 R2: a fresh admin session must re-authenticate before creating a user (403
/// `reauth_required`, nothing created); after `POST /auth/reauth` it may.
#[test]
fn creating_a_user_needs_a_fresh_reauthentication() {
    let d = Device::start();
    let admin = d.admin();
    let new_user = json!({"username": "zz-reauth-user", "role": "viewer"});
    let r = admin.post("/api/v1/users", &new_user);
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "reauth_required"),
        "{}",
        r.text
    );
    assert!(user_entry(&admin, "zz-reauth-user").is_none());
    let r = admin.post("/api/v1/auth/reauth", &json!({"password": ADMIN_PASSWORD}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let until = r.body["valid_until"].as_u64().unwrap();
    assert!(
        (unix_now() + 290..=unix_now() + 301).contains(&until),
        "valid for 5 minutes: {until}"
    );
    let r = admin.post("/api/v1/users", &new_user);
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(user_entry(&admin, "zz-reauth-user").is_some());
}

/// S3.1-01 R2 with S3.1-04: a wrong re-authentication password is refused with 401 and counts
/// toward the account lock: five of them lock the account, after which even the right one
/// fails.
#[test]
fn wrong_reauthentication_passwords_are_refused_and_count_toward_the_lock() {
    let d = Device::start();
    let _admin = d.admin();
    let c = d.client_from("127.0.0.2");
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, StatusCode::OK);
    for i in 0..5 {
        let r = c.post(
            "/api/v1/auth/reauth",
            &json!({"password": "Not-My-Password-42"}),
        );
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "authentication_failed"),
            "wrong reauth {i}: {}",
            r.text
        );
    }
    let r = c.post("/api/v1/auth/reauth", &json!({"password": ADMIN_PASSWORD}));
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "reauth on a locked account: {}",
        r.text
    );
    assert_eq!(
        c.post(
            "/api/v1/users",
            &json!({"username": "zz-x", "role": "viewer"})
        )
        .code(),
        "reauth_required"
    );
    assert_eq!(
        d.client_from("127.0.0.3")
            .login("admin", ADMIN_PASSWORD)
            .status,
        StatusCode::UNAUTHORIZED,
        "the lock applies to logins too"
    );
    let all = audit(&c);
    let locks = events(&all, "login_threshold_exceeded");
    assert_eq!(locks.len(), 1, "{locks:?}");
    let failed_reauths = events(&all, "login_failed")
        .into_iter()
        .filter(|e| e["details"]["purpose"] == "reauth")
        .count();
    assert_eq!(failed_reauths, 6, "five wrong and one while locked");
}

/// S3.1-01 R3 / S3.1-03: changing the password issues a new session id and ends the user's
/// other sessions.
#[test]
fn a_password_change_rotates_the_session_id_and_ends_other_sessions() {
    let d = Device::start();
    let _admin = d.admin();
    let login = |src: &str| {
        let r = answer(
            raw_client(&d, src)
                .post(d.url("/api/v1/auth/login"))
                .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
                .send()
                .unwrap(),
        );
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        set_session_cookie(&r).unwrap()
    };
    let mine = login("127.0.0.2");
    let other = login("127.0.0.3");
    let r = answer(
        raw_client(&d, "127.0.0.2")
            .post(d.url("/api/v1/auth/password"))
            .header("cookie", format!("__Host-mamori-session={mine}"))
            .json(&json!({"current": ADMIN_PASSWORD, "new": "Lagoon-Copper-64-brisk"}))
            .send()
            .unwrap(),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let rotated = set_session_cookie(&r).expect("new session cookie");
    assert_ne!(rotated, mine);
    assert_eq!(session_with(&d, &mine).status, StatusCode::UNAUTHORIZED);
    assert_eq!(session_with(&d, &other).status, StatusCode::UNAUTHORIZED);
    assert_eq!(session_with(&d, &rotated).status, StatusCode::OK);
}
