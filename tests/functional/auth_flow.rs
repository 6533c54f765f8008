//! Login with the label password, the forced change, the password rules over the API, password
//! change and logout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

/// The endpoints a session limited to a password change may still use.
const DURING_PASSWORD_CHANGE: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/session"),
    ("POST", "/api/v1/auth/password"),
];

/// S3.1-02 R2-1: the label password logs in only to a forced change. Until the change every
/// endpoint but the change itself (and who-am-I and logout) answers 403
/// `password_change_required`, including the user list and the status; after it the label
/// password no longer works.
#[test]
fn the_label_password_works_once_and_only_for_a_forced_change() {
    let endpoints = authenticated_endpoints();
    let d = Device::start();
    let label = d.label_password.clone().unwrap();
    let c = d.client();
    let r = c.login("admin", &label);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);
    assert_eq!(r.body["role"], "admin");
    // The cookie as documented: host-only, secure, not readable by scripts, same-site.
    let header = r.headers["set-cookie"].to_str().unwrap();
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(header.contains(attribute), "{header}");
    }
    assert!(!header.to_lowercase().contains("domain="), "{header}");
    assert!(set_cookie(&r.headers).unwrap().len() >= 43, "{header}");

    let mut gated = 0;
    for (method, path) in &endpoints {
        if DURING_PASSWORD_CHANGE.contains(&(method.as_str(), path.as_str())) {
            continue;
        }
        let r = send(&c, method, &fill(path, "x"), &[], Some(&json!({})));
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "password_change_required"),
            "{method} {path}: {}",
            r.text
        );
        gated += 1;
    }
    assert!(gated >= AUTHENTICATED_FLOOR.len() - DURING_PASSWORD_CHANGE.len());
    for path in ["/api/v1/users", "/api/v1/status", "/api/v1/device"] {
        expect(
            &c.get(path),
            StatusCode::FORBIDDEN,
            "password_change_required",
        );
    }
    let r = c.get("/api/v1/auth/session");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);

    let r = c.post(
        "/api/v1/auth/password",
        &json!({"current": label, "new": ADMIN_PASSWORD}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(c.get("/api/v1/status").status, StatusCode::OK);
    let list = users(&c);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["must_change_password"], false);

    // The label password is spent; the new one works.
    expect(
        &d.client().login("admin", &label),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    assert_eq!(
        d.client().login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK
    );
}

/// S3.1-01 R1: without a session or token, every authenticated endpoint answers 401
/// `unauthenticated`.
#[test]
fn every_authenticated_endpoint_refuses_an_anonymous_caller() {
    let endpoints = authenticated_endpoints();
    let d = Device::start();
    let c = d.client();
    for (method, path) in &endpoints {
        let r = send(&c, method, &fill(path, "x"), &[], Some(&json!({})));
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{method} {path}: {}",
            r.text
        );
    }
    // A made-up cookie is no better.
    expect(
        &with_cookie(&d, "not-a-session", "GET", "/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

/// S3.1-02 R2-1: with the minimum length set to 8, a 7-character password is refused with rule
/// `length` and an 8-character one is accepted; the settings change itself needs
/// re-authentication.
#[test]
fn a_seven_character_password_is_rejected_when_the_minimum_is_eight() {
    let d = Device::start();
    let admin = d.admin();
    let before = auth_settings(&admin);
    assert_eq!(before["password_min_length"], 12);

    // Without re-authentication the policy cannot be changed.
    let mut lowered = before.clone();
    lowered["password_min_length"] = json!(8);
    expect(
        &admin.put("/api/v1/settings/auth", &lowered),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    assert_eq!(auth_settings(&admin), before);
    // Below the floor of 8 it cannot be set at all.
    admin.reauth(ADMIN_PASSWORD);
    let mut seven = before.clone();
    seven["password_min_length"] = json!(7);
    expect(
        &admin.put("/api/v1/settings/auth", &seven),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_eq!(auth_settings(&admin), before);

    set_auth_settings(&admin, &json!({"password_min_length": 8}));

    let r = admin.post(
        "/api/v1/auth/password",
        &json!({"current": ADMIN_PASSWORD, "new": "Tq8$wmZ"}),
    );
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "password_rejected");
    assert_eq!(r.body["error"]["rule"], "length", "{}", r.text);
    assert!(
        !r.text.contains("Tq8$wmZ"),
        "the answer echoes the password"
    );
    // Nothing changed.
    assert_eq!(
        d.client().login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK
    );
    assert_eq!(admin.get("/api/v1/device").status, StatusCode::OK);

    let r = admin.post(
        "/api/v1/auth/password",
        &json!({"current": ADMIN_PASSWORD, "new": "Tq8$wmZr"}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(d.client().login("admin", "Tq8$wmZr").status, StatusCode::OK);
}

/// S3.1-02 R2-2 ①: guessable passwords are refused over the API with the rule that caught them
/// (A common strings and keyboard walks, B words and names, C counters), and after each refusal
/// the old password still works and the refused one does not.
#[test]
fn guessable_passwords_are_rejected_with_the_rule_that_caught_them() {
    let d = Device::start();
    let admin = d.admin();
    let cases = [
        ("Password123456!", "A"),
        ("Qwertyuiop123456", "A"),
        ("Baseball20242024", "B"),
        ("Michael#12345678", "B"),
        ("1234567890ab", "C"),
        ("abcabcabcabc", "C"),
    ];
    for (password, rule) in cases {
        let r = admin.post(
            "/api/v1/auth/password",
            &json!({"current": ADMIN_PASSWORD, "new": password}),
        );
        expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "password_rejected");
        assert_eq!(r.body["error"]["rule"], rule, "{password}: {}", r.text);
        assert!(r.body["error"]["message"].as_str().is_some());
        expect(
            &d.client().login("admin", password),
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
        );
        assert_eq!(
            d.client().login("admin", ADMIN_PASSWORD).status,
            StatusCode::OK,
            "old password lost after refusing {password}"
        );
    }
    // The refusals did not end the session.
    assert_eq!(admin.get("/api/v1/device").status, StatusCode::OK);
}

/// S3.1-02 R1 D / R2-2 ①: a password built on the device's serial number is refused with rule
/// `D`, and the old password still works.
#[test]
fn a_password_containing_the_serial_number_is_rejected_with_rule_d() {
    let d = Device::start_with(&["--serial", "SN-ABCD-123456"]);
    let admin = d.admin();
    assert_eq!(admin.get("/api/v1/device").body["serial"], "SN-ABCD-123456");
    for password in ["xSN-ABCD-123456x", "sn-abcd-123456-Lantern"] {
        let r = admin.post(
            "/api/v1/auth/password",
            &json!({"current": ADMIN_PASSWORD, "new": password}),
        );
        expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "password_rejected");
        assert_eq!(r.body["error"]["rule"], "D", "{password}: {}", r.text);
    }
    assert_eq!(
        d.client().login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK
    );
    expect(
        &d.client().login("admin", "xSN-ABCD-123456x"),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
}

/// S3.1-03 R3: changing the password needs the current one; with a wrong current password the
/// change answers 401 and nothing changes.
#[test]
fn a_password_change_needs_the_current_password() {
    let d = Device::start();
    let admin = d.admin();
    let r = admin.post(
        "/api/v1/auth/password",
        &json!({"current": "Not-The-Password-42", "new": OTHER_PASSWORD}),
    );
    expect(&r, StatusCode::UNAUTHORIZED, "authentication_failed");
    assert!(set_cookie(&r.headers).is_none());
    expect(
        &d.client().login("admin", OTHER_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    assert_eq!(
        d.client().login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK
    );
    // The same password again is not a change.
    let r = admin.post(
        "/api/v1/auth/password",
        &json!({"current": ADMIN_PASSWORD, "new": ADMIN_PASSWORD}),
    );
    expect(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(admin.get("/api/v1/device").status, StatusCode::OK);
}

/// S3.1-03 R1, S3.1-01 R3: after a password change every other session of the user ends, the
/// changing session continues under a new cookie value (the old value is dead), and only the
/// new password logs in.
#[test]
fn a_password_change_ends_the_other_sessions_and_renews_the_cookie() {
    let d = Device::start();
    let a = d.admin();
    let old_a = login_cookie(&a, "admin", ADMIN_PASSWORD);
    let b = d.client_from("127.0.0.2");
    login_cookie(&b, "admin", ADMIN_PASSWORD);
    assert_eq!(b.get("/api/v1/device").status, StatusCode::OK);
    let sessions_before = a.get("/api/v1/sessions").body;
    assert!(
        sessions_before.as_array().unwrap().len() >= 3,
        "{sessions_before}"
    );

    let r = a.post(
        "/api/v1/auth/password",
        &json!({"current": ADMIN_PASSWORD, "new": OTHER_PASSWORD}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let new_a = set_cookie(&r.headers).expect("a new session cookie");
    assert_ne!(new_a, old_a);
    assert!(new_a.len() >= 43, "a 256-bit id: {new_a}");

    expect(
        &b.get("/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    expect(
        &with_cookie(&d, &old_a, "GET", "/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(
        with_cookie(&d, &new_a, "GET", "/api/v1/device").status,
        StatusCode::OK
    );
    assert_eq!(a.get("/api/v1/device").status, StatusCode::OK);
    let sessions = a.get("/api/v1/sessions").body;
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    assert_eq!(sessions[0]["current"], true);

    expect(
        &d.client().login("admin", ADMIN_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    assert_eq!(
        d.client().login("admin", OTHER_PASSWORD).status,
        StatusCode::OK
    );
}

/// S3.1-01 R3: logout ends the session on the device, not only in the browser: the cookie value
/// is refused afterwards.
#[test]
fn logout_ends_the_session() {
    let d = Device::start();
    let _admin = d.admin();
    let c = d.client();
    let cookie = login_cookie(&c, "admin", ADMIN_PASSWORD);
    assert_eq!(c.get("/api/v1/device").status, StatusCode::OK);
    let r = c.post("/api/v1/auth/logout", &json!({}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(set_cookie(&r.headers), None, "the cookie is cleared");
    expect(
        &with_cookie(&d, &cookie, "GET", "/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    expect(
        &c.get("/api/v1/auth/session"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    expect(
        &c.post("/api/v1/auth/logout", &json!({})),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}
