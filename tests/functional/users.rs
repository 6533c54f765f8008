//! User administration and the role matrix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

/// S3.1-01 R4: a fresh device has no account but `admin` (no debug or service accounts).
#[test]
fn a_fresh_device_has_exactly_one_account_named_admin() {
    let d = Device::start();
    let admin = d.admin();
    let list = users(&admin);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["username"], "admin");
    assert_eq!(list[0]["role"], "admin");
    assert_eq!(list[0]["disabled"], false);
    // Well-known names do not log in.
    for name in ["root", "debug", "test", "guest", "support", "mamori"] {
        expect(
            &d.client().login(name, ADMIN_PASSWORD),
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
        );
    }
}

/// S3.1-01 R5, S3.1-01 R2: an administrator creates users of every role, with a given
/// password or with a generated one-time password; creating needs re-authentication, a
/// duplicate name is a conflict, and a weak initial password is refused. Refused creations
/// leave no account behind.
#[test]
fn an_admin_creates_users_of_every_role_with_and_without_a_password() {
    let d = Device::start();
    let admin = d.admin();

    expect(
        &admin.post(
            "/api/v1/users",
            &json!({"username": "early", "role": "viewer"}),
        ),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    assert!(user_entry(&admin, "early").is_none());

    admin.reauth(ADMIN_PASSWORD);
    for role in ["viewer", "operator", "auditor", "admin"] {
        let generated = format!("{role}-gen");
        let r = admin.post(
            "/api/v1/users",
            &json!({"username": generated, "role": role}),
        );
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.body["username"], generated.as_str());
        let otp = r.body["one_time_password"].as_str().expect("one-time");
        assert!(otp.len() >= 12, "{otp}");

        let given = format!("{role}-set");
        let r = admin.post(
            "/api/v1/users",
            &json!({"username": given, "role": role, "password": OTHER_PASSWORD}),
        );
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert!(r.body.get("one_time_password").is_none(), "{}", r.text);

        for name in [&generated, &given] {
            let u = user_entry(&admin, name).expect("listed");
            assert_eq!(u["role"], role);
            assert_eq!(u["disabled"], false);
            assert_eq!(u["must_change_password"], true);
        }
        // Both log in, to a forced change.
        let r = d.client().login(&generated, otp);
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["role"], role);
        assert_eq!(r.body["must_change_password"], true);
        let r = d.client().login(&given, OTHER_PASSWORD);
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["must_change_password"], true);
    }
    assert_eq!(users(&admin).len(), 9);

    let r = admin.post(
        "/api/v1/users",
        &json!({"username": "viewer-gen", "role": "admin"}),
    );
    expect(&r, StatusCode::CONFLICT, "conflict");
    assert_eq!(user_entry(&admin, "viewer-gen").unwrap()["role"], "viewer");

    let r = admin.post(
        "/api/v1/users",
        &json!({"username": "weak", "role": "viewer", "password": "Password123456!"}),
    );
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "password_rejected");
    assert_eq!(r.body["error"]["rule"], "A");
    for bad in [
        json!({"username": "Bad Name", "role": "viewer"}),
        json!({"username": "okname", "role": "root"}),
        json!({"username": "okname", "role": "viewer", "extra": 1}),
    ] {
        expect(
            &admin.post("/api/v1/users", &bad),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
    assert_eq!(users(&admin).len(), 9);
}

/// S3.1-02 R2-1, S3.1-03 R1: a new user's first login only allows a password change; after it
/// the account works normally and the one-time password is spent.
#[test]
fn a_new_user_s_first_login_is_restricted_to_a_password_change() {
    let d = Device::start();
    let admin = d.admin();
    let otp = create_user(&admin, "carol", "operator");
    let c = d.client_from("127.0.0.2");
    let r = c.login("carol", &otp);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);
    for path in ["/api/v1/device", "/api/v1/status", "/api/v1/sessions"] {
        expect(
            &c.get(path),
            StatusCode::FORBIDDEN,
            "password_change_required",
        );
    }
    expect(
        &c.post("/api/v1/auth/reauth", &json!({"password": otp})),
        StatusCode::FORBIDDEN,
        "password_change_required",
    );
    let r = c.post(
        "/api/v1/auth/password",
        &json!({"current": otp, "new": OTHER_PASSWORD}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(c.get("/api/v1/device").status, StatusCode::OK);
    assert_eq!(
        user_entry(&admin, "carol").unwrap()["must_change_password"],
        false
    );
    expect(
        &d.client().login("carol", &otp),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let r = d.client().login("carol", OTHER_PASSWORD);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["must_change_password"], false);
}

/// S3.1-01 R1, R4: a disabled account cannot log in (401 `authentication_failed`, as for a
/// wrong password), its sessions end and its API tokens are refused; enabled again, it logs in. Changing it needs
/// re-authentication.
#[test]
fn a_disabled_user_cannot_log_in_and_loses_their_sessions_until_enabled() {
    let d = Device::start();
    let admin = d.admin();
    let dave = new_user(&d, &admin, "dave", "viewer", OTHER_PASSWORD, "127.0.0.2");
    assert_eq!(dave.get("/api/v1/device").status, StatusCode::OK);
    dave.reauth(OTHER_PASSWORD);
    let r = dave.post(
        "/api/v1/tokens",
        &json!({"name": "ci", "role": "viewer", "expires_in_days": 30}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();

    let a2 = d.client();
    login_cookie(&a2, "admin", ADMIN_PASSWORD);
    expect(
        &a2.patch("/api/v1/users/dave", &json!({"disabled": true})),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    assert_eq!(dave.get("/api/v1/device").status, StatusCode::OK);
    assert_eq!(user_entry(&admin, "dave").unwrap()["disabled"], false);

    admin.reauth(ADMIN_PASSWORD);
    let r = admin.patch("/api/v1/users/dave", &json!({"disabled": true}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(user_entry(&admin, "dave").unwrap()["disabled"], true);
    expect(
        &dave.get("/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    expect(
        &d.client().login("dave", OTHER_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    expect(
        &bearer(&d, &token, "GET", "/api/v1/device", None),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );

    let r = admin.patch("/api/v1/users/dave", &json!({"disabled": false}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(user_entry(&admin, "dave").unwrap()["disabled"], false);
    let r = d.client().login("dave", OTHER_PASSWORD);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // An unknown user, and a change without any field.
    expect(
        &admin.patch("/api/v1/users/nobody-here", &json!({"disabled": true})),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect(
        &admin.patch("/api/v1/users/dave", &json!({})),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

/// S3.1-01 R4: a deleted account cannot log in, its sessions end and its API tokens stop
/// working.
#[test]
fn a_deleted_user_cannot_log_in_and_their_sessions_and_tokens_die() {
    let d = Device::start();
    let admin = d.admin();
    let erin = new_user(&d, &admin, "erin", "operator", OTHER_PASSWORD, "127.0.0.2");
    erin.reauth(OTHER_PASSWORD);
    let r = erin.post(
        "/api/v1/tokens",
        &json!({"name": "ci", "role": "viewer", "expires_in_days": 30}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        bearer(&d, &token, "GET", "/api/v1/device", None).status,
        StatusCode::OK
    );

    admin.reauth(ADMIN_PASSWORD);
    let r = admin.delete("/api/v1/users/erin");
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(user_entry(&admin, "erin").is_none());
    expect(
        &erin.get("/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    expect(
        &bearer(&d, &token, "GET", "/api/v1/device", None),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    expect(
        &d.client().login("erin", OTHER_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    expect(
        &admin.delete("/api/v1/users/erin"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // A new account of the same name does not inherit the old token.
    create_user(&admin, "erin", "operator");
    expect(
        &bearer(&d, &token, "GET", "/api/v1/device", None),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

/// S3.1-03 R4: an administrator's reset gives a one-time password (the old password stops
/// working, the one-time one forces a change and ends the user's sessions); `reset_mfa`
/// removes the user's TOTP, without it the second factor stays.
#[test]
fn an_admin_reset_gives_a_one_time_password_and_can_remove_totp() {
    let d = Device::start();
    let admin = d.admin();
    let frank = new_user(&d, &admin, "frank", "viewer", OTHER_PASSWORD, "127.0.0.2");
    let (mut totp, _codes) = enrol_totp(&frank, OTHER_PASSWORD);
    assert_eq!(user_entry(&admin, "frank").unwrap()["mfa_enabled"], true);

    // Needs re-authentication.
    let a2 = d.client();
    login_cookie(&a2, "admin", ADMIN_PASSWORD);
    expect(
        &a2.post("/api/v1/users/frank/reset", &json!({})),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    assert_eq!(frank.get("/api/v1/device").status, StatusCode::OK);

    // Reset keeping the second factor.
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.post("/api/v1/users/frank/reset", &json!({}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let otp1 = r.body["one_time_password"].as_str().unwrap().to_string();
    expect(
        &frank.get("/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let u = user_entry(&admin, "frank").unwrap();
    assert_eq!(
        (&u["must_change_password"], &u["mfa_enabled"]),
        (&json!(true), &json!(true))
    );
    expect(
        &d.client().login("frank", OTHER_PASSWORD),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    expect(
        &d.client().login("frank", &otp1),
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    );
    let c = d.client();
    let r = c.post(
        "/api/v1/auth/login",
        &json!({"username": "frank", "password": otp1, "totp": totp.code()}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);
    expect(
        &c.get("/api/v1/device"),
        StatusCode::FORBIDDEN,
        "password_change_required",
    );

    // Reset removing the second factor.
    let r = admin.post("/api/v1/users/frank/reset", &json!({"reset_mfa": true}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let otp2 = r.body["one_time_password"].as_str().unwrap().to_string();
    assert_ne!(otp1, otp2);
    let u = user_entry(&admin, "frank").unwrap();
    assert_eq!(u["mfa_enabled"], false);
    assert_eq!(u["must_change_password"], true);
    expect(
        &d.client().login("frank", &otp1),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let c = d.client();
    let r = c.login("frank", &otp2);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);
    let r = c.post(
        "/api/v1/auth/password",
        &json!({"current": otp2, "new": "Meadow-Copper-19-north"}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(c.get("/api/v1/device").status, StatusCode::OK);
    assert_eq!(
        d.client().login("frank", "Meadow-Copper-19-north").status,
        StatusCode::OK
    );

    expect(
        &admin.post("/api/v1/users/ghost/reset", &json!({})),
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// S3.1-01 R5: the device always keeps an enabled administrator: the last one cannot be
/// deleted, disabled or demoted (409), and nothing changes when that is refused.
#[test]
fn the_last_admin_cannot_be_deleted_disabled_or_demoted() {
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    for (method, body) in [
        ("PATCH", Some(json!({"disabled": true}))),
        ("PATCH", Some(json!({"role": "viewer"}))),
        ("PATCH", Some(json!({"role": "auditor", "disabled": true}))),
        ("DELETE", None),
    ] {
        let r = send(&admin, method, "/api/v1/users/admin", &[], body.as_ref());
        expect(&r, StatusCode::CONFLICT, "conflict");
    }
    let u = user_entry(&admin, "admin").unwrap();
    assert_eq!(
        (&u["role"], &u["disabled"]),
        (&json!("admin"), &json!(false))
    );
    assert_eq!(admin.get("/api/v1/users").status, StatusCode::OK);

    // A disabled second administrator does not count.
    let otp = create_user(&admin, "backup", "admin");
    assert!(!otp.is_empty());
    let r = admin.patch("/api/v1/users/backup", &json!({"disabled": true}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    expect(
        &admin.patch("/api/v1/users/admin", &json!({"role": "operator"})),
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_eq!(user_entry(&admin, "admin").unwrap()["role"], "admin");

    // An enabled second administrator does: then the first may step down.
    let r = admin.patch("/api/v1/users/backup", &json!({"disabled": false}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = admin.patch("/api/v1/users/admin", &json!({"role": "operator"}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // The role change ended the admin's own sessions.
    expect(
        &admin.get("/api/v1/users"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let r = d.client().login("admin", ADMIN_PASSWORD);
    assert_eq!(r.body["role"], "operator", "{}", r.text);
}

/// Logs in `name` as `role` and returns the client.
fn member(d: &Device, admin: &Client, name: &str, role: &str, source: &str) -> Client {
    new_user(d, admin, name, role, OTHER_PASSWORD, source)
}

/// A body that would change something if the guard let it through.
fn harmful_body(method: &str, path: &str, settings: &Value, access: &Value) -> Value {
    match (method, path) {
        ("POST", "/api/v1/users") => json!({"username": "intruder", "role": "admin"}),
        ("PATCH", _) => json!({"role": "viewer", "disabled": true}),
        ("PUT", "/api/v1/settings/auth") => {
            let mut s = settings.clone();
            s["password_min_length"] = json!(8);
            s["lockout_threshold"] = json!(100);
            s
        }
        ("PUT", "/api/v1/settings/access") => {
            let mut a = access.clone();
            a["trusted"] = json!(["127.0.0.0/8"]);
            a
        }
        _ => json!({}),
    }
}

/// S3.1-01 R5: viewers, operators and auditors get 403 `forbidden` on every admin-only
/// endpoint of the registry, nothing changes, and every refusal is in the audit log as
/// `access_denied` with the caller, method and path.
#[test]
fn non_admin_roles_are_forbidden_every_admin_endpoint_and_each_refusal_is_audited() {
    let admin_only = admin_only_endpoints();
    let d = Device::start();
    let admin = d.admin();
    let victim_otp = create_user(&admin, "victim", "operator");
    let settings = auth_settings(&admin);
    let access = admin.get("/api/v1/settings/access").body;
    let users_before = users(&admin);

    for (i, role) in ["viewer", "operator", "auditor"].into_iter().enumerate() {
        let name = format!("{role}1");
        let c = member(&d, &admin, &name, role, &format!("127.0.0.{}", i + 2));
        // Re-authenticated, so only the role stands in the way.
        c.reauth(OTHER_PASSWORD);
        for (method, path) in &admin_only {
            let body = harmful_body(method, path, &settings, &access);
            let r = send(&c, method, &fill(path, "victim"), &[], Some(&body));
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{role}: {method} {path}: {}",
                r.text
            );
        }
        let events = audit_events(&admin);
        for (method, path) in &admin_only {
            let concrete = fill(path, "victim");
            assert!(
                events.iter().any(|e| e["event"] == "access_denied"
                    && e["actor"] == name.as_str()
                    && e["outcome"] == "failure"
                    && e["details"]["method"] == method.as_str()
                    && e["details"]["path"] == concrete.as_str()),
                "no access_denied event for {role} {method} {concrete}"
            );
        }
    }

    // Nothing changed.
    assert_eq!(auth_settings(&admin), settings);
    assert_eq!(admin.get("/api/v1/settings/access").body, access);
    let victim = user_entry(&admin, "victim").unwrap();
    assert_eq!(victim["role"], "operator");
    assert_eq!(victim["disabled"], false);
    assert!(user_entry(&admin, "intruder").is_none());
    assert_eq!(users(&admin).len(), users_before.len() + 3);
    let r = d.client().login("victim", &victim_otp);
    assert_eq!(r.status, StatusCode::OK, "the victim's password was reset");
}

/// S3.1-01 R5: the audit log is readable by auditors and administrators only; every role reads
/// the device identity (S3.1-14).
#[test]
fn only_auditors_and_admins_read_the_audit_log_and_everyone_reads_the_device() {
    let d = Device::start_with(&["--model", "MG-100", "--serial", "SN-ROLES-1"]);
    let admin = d.admin();
    let viewer = member(&d, &admin, "vera", "viewer", "127.0.0.2");
    let operator = member(&d, &admin, "otto", "operator", "127.0.0.3");
    let auditor = member(&d, &admin, "aude", "auditor", "127.0.0.4");

    let events = audit_events(&auditor);
    assert!(
        events.iter().any(|e| e["event"] == "user_created"),
        "{events:?}"
    );
    assert!(!audit_events(&admin).is_empty());
    for (name, c) in [("vera", &viewer), ("otto", &operator)] {
        let r = c.get("/api/v1/audit/events");
        expect(&r, StatusCode::FORBIDDEN, "forbidden");
        assert!(
            audit_events(&admin)
                .iter()
                .any(|e| e["event"] == "access_denied" && e["actor"] == name),
            "{name}'s refusal is not audited"
        );
    }
    // The auditor reads logs, not accounts.
    expect(
        &auditor.get("/api/v1/users"),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for c in [&admin, &viewer, &operator, &auditor] {
        let r = c.get("/api/v1/device");
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["model"], "MG-100");
        assert_eq!(r.body["serial"], "SN-ROLES-1");
    }
}

/// S3.1-14 and docs/api.md: `GET /api/v1/status` answers `{device, privilege_separation:
/// {enabled, parent_uid, child_uid, landlock, seccomp}, tls: {suites}, notices}` to every role
/// from viewer up, and the device part carries model and serial.
#[test]
fn the_status_answer_has_the_documented_shape() {
    let d = Device::start_with(&["--model", "MG-100", "--serial", "SN-STATUS-1"]);
    let admin = d.admin();
    let viewer = member(&d, &admin, "vera", "viewer", "127.0.0.2");
    for c in [&admin, &viewer] {
        let r = c.get("/api/v1/status");
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["device"]["serial"], "SN-STATUS-1");
        assert_eq!(r.body["device"]["model"], "MG-100");
        assert!(
            r.body["tls"]["suites"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
        );
        assert!(r.body["notices"].is_array());
        let p = &r.body["privilege_separation"];
        assert!(p.is_object(), "no privilege_separation object: {}", r.text);
        // Started as root: the parent is root, the management process is not.
        assert_eq!(p["enabled"], true, "{p}");
        assert_eq!(p["parent_uid"], 0, "{p}");
        assert!(p["child_uid"].as_u64().is_some_and(|u| u != 0), "{p}");
        assert!(
            p.get("landlock").is_some() && p.get("seccomp").is_some(),
            "{p}"
        );
    }
}
