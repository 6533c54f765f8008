//! TOTP second factor: enrolment, login with codes, replay, recovery codes, removal, and roles
//! that require it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

fn login_totp(c: &Client, username: &str, password: &str, code: &str) -> Answer {
    c.post(
        "/api/v1/auth/login",
        &json!({"username": username, "password": password, "totp": code}),
    )
}

/// S3.1-04 R2, S3.1-01 R1 ② B: TOTP enrolment needs re-authentication; the otpauth URI names
/// SHA-256, 6 digits and 30 seconds; a wrong first code does not confirm it; the right one
/// returns 10 distinct recovery codes and turns the factor on.
#[test]
fn totp_enrolment_needs_reauth_and_confirms_with_a_code_computed_from_the_secret() {
    let d = Device::start_with(&["--serial", "SN-MFA-0001"]);
    let admin = d.admin();
    let r = admin.post("/api/v1/auth/mfa/totp/enroll", &json!({}));
    expect(&r, StatusCode::FORBIDDEN, "reauth_required");
    assert_eq!(admin.get("/api/v1/auth/session").body["mfa_enabled"], false);

    admin.reauth(ADMIN_PASSWORD);
    let r = admin.post("/api/v1/auth/mfa/totp/enroll", &json!({}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let uri = r.body["otpauth_uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains("algorithm=SHA256&digits=6&period=30"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let raw = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap();
    assert!(raw.len() >= 20, "secret of {} bytes", raw.len());

    // Pending: login still needs no code.
    assert_eq!(
        d.client().login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK
    );
    let mut auth = Authenticator::new(&secret);
    let r = admin.post(
        "/api/v1/auth/mfa/totp/verify",
        &json!({"code": auth.wrong_code()}),
    );
    expect(&r, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(user_entry(&admin, "admin").unwrap()["mfa_enabled"], false);
    assert_eq!(
        d.client().login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK
    );

    let r = admin.post(
        "/api/v1/auth/mfa/totp/verify",
        &json!({"code": auth.code()}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let codes: Vec<&str> = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 10);
    let mut unique = codes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 10, "{codes:?}");
    assert!(codes.iter().all(|c| c.len() >= 16), "{codes:?}");
    assert_eq!(user_entry(&admin, "admin").unwrap()["mfa_enabled"], true);
    assert_eq!(admin.get("/api/v1/auth/session").body["mfa_enabled"], true);

    // Once confirmed, it cannot be confirmed or enrolled again over it.
    expect(
        &admin.post(
            "/api/v1/auth/mfa/totp/verify",
            &json!({"code": auth.wrong_code()}),
        ),
        StatusCode::CONFLICT,
        "conflict",
    );
    let r = admin.post(
        "/api/v1/auth/reauth",
        &json!({"password": ADMIN_PASSWORD, "totp": auth.code()}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expect(
        &admin.post("/api/v1/auth/mfa/totp/enroll", &json!({})),
        StatusCode::CONFLICT,
        "conflict",
    );
}

/// S3.1-04 R2: with TOTP on, a login needs a valid code: missing or wrong answers 401
/// `mfa_required` (a wrong password still answers `authentication_failed`), and an accepted
/// code cannot be used a second time.
#[test]
fn after_enrolment_login_needs_a_fresh_totp_code_that_cannot_be_replayed() {
    let d = Device::start();
    let admin = d.admin();
    let (mut auth, codes) = enrol_totp(&admin, ADMIN_PASSWORD);

    expect(
        &d.client().login("admin", ADMIN_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    // The code that confirmed the enrolment is spent too.
    expect(
        &login_totp(&d.client(), "admin", ADMIN_PASSWORD, &auth.last_code()),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    expect(
        &login_totp(&d.client(), "admin", ADMIN_PASSWORD, &auth.wrong_code()),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    let code = auth.code();
    expect(
        &login_totp(&d.client(), "admin", "Wrong-Password-991", &code),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let c = d.client();
    let r = login_totp(&c, "admin", ADMIN_PASSWORD, &code);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(c.get("/api/v1/device").status, StatusCode::OK);
    // Replay of the accepted code.
    expect(
        &login_totp(&d.client(), "admin", ADMIN_PASSWORD, &code),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    // The next code works (this may wait for the next 30-second step).
    let r = login_totp(&d.client(), "admin", ADMIN_PASSWORD, &auth.code());
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Re-authentication needs the second factor too.
    expect(
        &c.post("/api/v1/auth/reauth", &json!({"password": ADMIN_PASSWORD})),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    let r = c.post(
        "/api/v1/auth/reauth",
        &json!({"password": ADMIN_PASSWORD, "totp": codes[0]}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// S3.1-04 R2, S3.1-03 R4: a recovery code logs in once instead of a TOTP code, and its use is
/// audited.
#[test]
fn a_recovery_code_works_exactly_once() {
    let d = Device::start();
    let admin = d.admin();
    let (_auth, codes) = enrol_totp(&admin, ADMIN_PASSWORD);

    let r = login_totp(&d.client(), "admin", ADMIN_PASSWORD, &codes[0]);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expect(
        &login_totp(&d.client(), "admin", ADMIN_PASSWORD, &codes[0]),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    // Another one still works, also typed without dashes.
    let plain = codes[1].replace('-', "");
    let r = login_totp(&d.client(), "admin", ADMIN_PASSWORD, &plain);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expect(
        &login_totp(&d.client(), "admin", ADMIN_PASSWORD, &codes[1]),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    let used: Vec<_> = audit_events(&admin)
        .into_iter()
        .filter(|e| e["event"] == "recovery_code_used")
        .collect();
    assert_eq!(used.len(), 2, "{used:?}");
    assert_eq!(used[1]["details"]["remaining"], 8);
    // No event quotes a code.
    let all = serde_json::to_string(&audit_events(&admin)).unwrap();
    assert!(!codes.iter().any(|c| all.contains(c.as_str())));
}

/// S3.1-01 R2, S3.1-03 R3: removing TOTP needs re-authentication (with the second factor);
/// afterwards the password alone logs in again.
#[test]
fn disabling_totp_needs_reauth_with_the_second_factor() {
    let d = Device::start();
    let admin = d.admin();
    let (mut auth, codes) = enrol_totp(&admin, ADMIN_PASSWORD);
    // A fresh session, whose re-authentication has not happened yet.
    let c = d.client();
    let r = login_totp(&c, "admin", ADMIN_PASSWORD, &auth.code());
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expect(
        &c.post("/api/v1/auth/mfa/totp/disable", &json!({})),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    expect(
        &c.post("/api/v1/auth/reauth", &json!({"password": ADMIN_PASSWORD})),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    expect(
        &c.post("/api/v1/auth/mfa/totp/disable", &json!({})),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    assert_eq!(user_entry(&admin, "admin").unwrap()["mfa_enabled"], true);

    let r = c.post(
        "/api/v1/auth/reauth",
        &json!({"password": ADMIN_PASSWORD, "totp": codes[0]}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = c.post("/api/v1/auth/mfa/totp/disable", &json!({}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(user_entry(&admin, "admin").unwrap()["mfa_enabled"], false);
    assert_eq!(
        d.client().login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK
    );
    expect(
        &c.post("/api/v1/auth/mfa/totp/disable", &json!({})),
        StatusCode::CONFLICT,
        "conflict",
    );
}

/// S3.1-04 R2, S3.1-01 R1 ② B: when the admin role requires MFA, a new admin login without a
/// second factor is limited to enrolment: the device and the user list answer 403
/// `mfa_enrollment_required`, the session says so, and the setting change itself needed
/// re-authentication.
#[test]
fn a_role_that_requires_mfa_limits_a_new_login_to_enrolment() {
    let d = Device::start();
    let admin = d.admin();
    let before = auth_settings(&admin);
    let mut wanted = before.clone();
    wanted["mfa_required_roles"] = json!(["admin"]);
    expect(
        &admin.put("/api/v1/settings/auth", &wanted),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    assert_eq!(auth_settings(&admin), before);
    set_auth_settings(&admin, &json!({"mfa_required_roles": ["admin"]}));
    // The status no longer warns that admins go without a second factor.
    let notices = admin.get("/api/v1/status").body["notices"].to_string();
    assert!(!notices.contains("mfa_not_required_for_admin"), "{notices}");

    let c = d.client_from("127.0.0.2");
    let r = c.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["mfa_enrollment_required"], true);
    assert_eq!(r.body["must_change_password"], false);
    for path in ["/api/v1/device", "/api/v1/users", "/api/v1/status"] {
        expect(
            &c.get(path),
            StatusCode::FORBIDDEN,
            "mfa_enrollment_required",
        );
    }
    let r = c.get("/api/v1/auth/session");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["mfa_enrollment_required"], true);
    // A viewer is not affected.
    let viewer = new_user(&d, &admin, "vic", "viewer", OTHER_PASSWORD, "127.0.0.3");
    assert_eq!(viewer.get("/api/v1/device").status, StatusCode::OK);
}

/// S3.1-04 R2: an administrator who already has TOTP is not limited when the role starts to
/// require it, logs in with a code, and cannot remove the required factor (409).
#[test]
fn a_required_second_factor_cannot_be_removed() {
    let d = Device::start();
    let admin = d.admin();
    let (mut auth, codes) = enrol_totp(&admin, ADMIN_PASSWORD);
    let mut settings = auth_settings(&admin);
    settings["mfa_required_roles"] = json!(["admin"]);
    let r = admin.post(
        "/api/v1/auth/reauth",
        &json!({"password": ADMIN_PASSWORD, "totp": codes[0]}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = admin.put("/api/v1/settings/auth", &settings);
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let c = d.client_from("127.0.0.2");
    let r = login_totp(&c, "admin", ADMIN_PASSWORD, &auth.code());
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["mfa_enrollment_required"], false);
    assert_eq!(c.get("/api/v1/device").status, StatusCode::OK);
    let r = c.post(
        "/api/v1/auth/reauth",
        &json!({"password": ADMIN_PASSWORD, "totp": codes[1]}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expect(
        &c.post("/api/v1/auth/mfa/totp/disable", &json!({})),
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_eq!(user_entry(&admin, "admin").unwrap()["mfa_enabled"], true);
    expect(
        &d.client().login("admin", ADMIN_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
}

/// S3.1-04 R2: a session limited to MFA enrolment can enrol (re-authenticate, enroll, verify);
/// when the limit lifts the session cookie changes (the old value is dead) and the device is
/// usable; later logins need a code.
#[test]
fn a_session_limited_to_enrolment_can_enrol_and_then_gets_a_new_cookie() {
    let d = Device::start();
    let admin = d.admin();
    set_auth_settings(&admin, &json!({"mfa_required_roles": ["admin"]}));

    let c = d.client_from("127.0.0.2");
    let old = login_cookie(&c, "admin", ADMIN_PASSWORD);
    let r = c.post("/api/v1/auth/reauth", &json!({"password": ADMIN_PASSWORD}));
    assert_eq!(
        r.status,
        StatusCode::OK,
        "reauth while enrolling: {}",
        r.text
    );
    let r = c.post("/api/v1/auth/mfa/totp/enroll", &json!({}));
    assert_eq!(
        r.status,
        StatusCode::OK,
        "enroll while enrolling: {}",
        r.text
    );
    let mut auth = Authenticator::new(r.body["secret"].as_str().unwrap());
    expect(
        &c.get("/api/v1/device"),
        StatusCode::FORBIDDEN,
        "mfa_enrollment_required",
    );
    let r = c.post(
        "/api/v1/auth/mfa/totp/verify",
        &json!({"code": auth.code()}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["recovery_codes"].as_array().unwrap().len(), 10);
    let codes = r.body["recovery_codes"].clone();
    let new = set_cookie(&r.headers).expect("a new cookie when the limit lifts");
    assert_ne!(new, old);
    expect(
        &with_cookie(&d, &old, "GET", "/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(c.get("/api/v1/device").status, StatusCode::OK);
    assert_eq!(
        c.get("/api/v1/auth/session").body["mfa_enrollment_required"],
        false
    );

    expect(
        &d.client().login("admin", ADMIN_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    let r = login_totp(&d.client(), "admin", ADMIN_PASSWORD, &auth.code());
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["mfa_enrollment_required"], false);
    // A required factor cannot be removed.
    let r = c.post(
        "/api/v1/auth/reauth",
        &json!({"password": ADMIN_PASSWORD, "totp": codes[0]}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    expect(
        &c.post("/api/v1/auth/mfa/totp/disable", &json!({})),
        StatusCode::CONFLICT,
        "conflict",
    );
}
