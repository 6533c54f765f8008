//! API tokens and the caller's own sessions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

fn create_token(c: &Client, name: &str, role: &str, days: u32) -> Answer {
    c.post(
        "/api/v1/tokens",
        &json!({"name": name, "role": role, "expires_in_days": days}),
    )
}

fn tokens(c: &Client) -> Vec<Value> {
    let r = c.get("/api/v1/tokens");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().unwrap().clone()
}

/// S3.1-01 R2, S3.1-03 R1: creating an API token needs re-authentication; the secret is in the
/// creation answer only, never in the list.
#[test]
fn creating_a_token_needs_reauth_and_shows_the_secret_once() {
    let d = Device::start();
    let admin = d.admin();
    expect(
        &create_token(&admin, "ci", "viewer", 30),
        StatusCode::FORBIDDEN,
        "reauth_required",
    );
    assert!(tokens(&admin).is_empty());

    // A re-authentication is valid for five minutes.
    let before = now();
    let r = admin.post("/api/v1/auth/reauth", &json!({"password": ADMIN_PASSWORD}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let until = r.body["valid_until"].as_u64().unwrap();
    assert!(
        (before + 295..=now() + 305).contains(&until),
        "{until} vs {before}"
    );
    expect(
        &admin.post(
            "/api/v1/auth/reauth",
            &json!({"password": "Wrong-Password-77"}),
        ),
        StatusCode::UNAUTHORIZED,
        "authentication_failed",
    );
    let r = create_token(&admin, "ci", "viewer", 30);
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let token = r.body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("mamori_") && token.len() >= 50, "{token}");
    assert!(
        !token.contains(&id),
        "the public id is not part of the secret"
    );

    let list = admin.get("/api/v1/tokens");
    assert_eq!(list.status, StatusCode::OK);
    let entries = list.body.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", list.text);
    assert_eq!(entries[0]["id"], id.as_str());
    assert_eq!(entries[0]["name"], "ci");
    assert_eq!(entries[0]["role"], "viewer");
    assert!(entries[0].get("token").is_none());
    assert!(!list.text.contains(&token), "the list shows the secret");
    let secret_part = token.trim_start_matches("mamori_");
    assert!(!list.text.contains(&secret_part[..20]));
    // Nor does the audit log.
    let all = serde_json::to_string(&audit_events(&admin)).unwrap();
    assert!(!all.contains(secret_part), "the audit log holds the secret");
}

/// S3.1-01 R1, R5: a bearer token authenticates with the token's role: a viewer token reads the
/// device but gets 403 on admin endpoints (audited); a garbage token gets 401.
#[test]
fn a_bearer_token_authenticates_with_its_own_role() {
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    let viewer = create_token(&admin, "read", "viewer", 30).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let full = create_token(&admin, "full", "admin", 30).body["token"]
        .as_str()
        .unwrap()
        .to_string();

    assert_eq!(
        bearer(&d, &viewer, "GET", "/api/v1/device", None).status,
        StatusCode::OK
    );
    for (method, path) in admin_only_endpoints() {
        if method != "GET" {
            continue;
        }
        expect(
            &bearer(&d, &viewer, &method, &path, None),
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert_eq!(
            bearer(&d, &full, &method, &path, None).status,
            StatusCode::OK,
            "{path}"
        );
    }
    assert!(
        audit_events(&admin)
            .iter()
            .any(|e| e["event"] == "access_denied"
                && e["details"]["path"] == "/api/v1/users"
                && e["details"]["role"] == "viewer")
    );
    let r = bearer(&d, &viewer, "GET", "/api/v1/auth/session", None);
    assert_ne!(r.status, StatusCode::OK, "a token is not a session");

    for bad in [
        "mamori_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "garbage",
        "",
    ] {
        expect(
            &bearer(&d, bad, "GET", "/api/v1/device", None),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
    }
    // The token is tied to the scheme: the same secret as a cookie is nothing.
    expect(
        &with_cookie(&d, &full, "GET", "/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

/// S3.1-01 R5: a token's role is at most its creator's: a viewer cannot mint an operator or
/// admin token, an auditor only an auditor token.
#[test]
fn a_token_cannot_outrank_its_creator() {
    let d = Device::start();
    let admin = d.admin();
    let viewer = new_user(&d, &admin, "vin", "viewer", OTHER_PASSWORD, "127.0.0.2");
    viewer.reauth(OTHER_PASSWORD);
    for role in ["admin", "operator", "auditor"] {
        expect(
            &create_token(&viewer, "up", role, 30),
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    assert!(tokens(&viewer).is_empty());
    let r = create_token(&viewer, "mine", "viewer", 30);
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let auditor = new_user(&d, &admin, "aud", "auditor", OTHER_PASSWORD, "127.0.0.3");
    auditor.reauth(OTHER_PASSWORD);
    for role in ["admin", "viewer"] {
        expect(
            &create_token(&auditor, "up", role, 30),
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    let r = create_token(&auditor, "logs", "auditor", 30);
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let t = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        bearer(&d, &t, "GET", "/api/v1/audit/events", None).status,
        StatusCode::OK
    );
    // Each sees only their own tokens.
    assert_eq!(tokens(&viewer).len(), 1);
    assert_eq!(tokens(&auditor).len(), 1);
    assert!(tokens(&admin).is_empty());

    // A token never outranks its owner's current role: demoting the owner demotes the token.
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.post(
        "/api/v1/users",
        &json!({"username": "opal", "role": "operator", "password": OTHER_PASSWORD}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let opal = d.client_from("127.0.0.4");
    opal.login("opal", OTHER_PASSWORD);
    let r = opal.post(
        "/api/v1/auth/password",
        &json!({"current": OTHER_PASSWORD, "new": "Meadow-Copper-19-north"}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    opal.reauth("Meadow-Copper-19-north");
    let t = create_token(&opal, "ops", "operator", 30).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        bearer(&d, &t, "GET", "/api/v1/device", None).status,
        StatusCode::OK
    );
    let r = admin.patch("/api/v1/users/opal", &json!({"role": "viewer"}));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    expect(
        &bearer(&d, &t, "GET", "/api/v1/device", None),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

/// S3.1-01 R2: a token cannot stand in for an interactive re-authentication: every
/// re-authentication-gated endpoint answers 403 `token_not_allowed` to a bearer, even an admin
/// one, and nothing changes.
#[test]
fn a_token_cannot_pass_reauth_gated_endpoints() {
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    let t = create_token(&admin, "full", "admin", 30).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let settings = auth_settings(&admin);
    let gated: Vec<&Operation> = registry().iter().filter(|o| o.reauth).collect();
    assert!(gated.len() >= 10, "{gated:?}");
    for op in gated {
        let body = match (op.method.as_str(), op.path.as_str()) {
            ("POST", "/api/v1/users") => json!({"username": "viatoken", "role": "admin"}),
            ("POST", "/api/v1/tokens") => {
                json!({"name": "child", "role": "admin", "expires_in_days": 1})
            }
            ("PUT", "/api/v1/settings/auth") => {
                let mut s = settings.clone();
                s["lockout_threshold"] = json!(100);
                s
            }
            _ => json!({}),
        };
        let r = bearer(&d, &t, &op.method, &fill(&op.path, "admin"), Some(&body));
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "token_not_allowed"),
            "{} {}: {}",
            op.method,
            op.path,
            r.text
        );
    }
    // Nor can a token re-authenticate itself.
    expect(
        &bearer(
            &d,
            &t,
            "POST",
            "/api/v1/auth/reauth",
            Some(&json!({"password": ADMIN_PASSWORD})),
        ),
        StatusCode::FORBIDDEN,
        "token_not_allowed",
    );
    assert!(user_entry(&admin, "viatoken").is_none());
    assert_eq!(tokens(&admin).len(), 1);
    assert_eq!(auth_settings(&admin), settings);
    assert!(
        audit_events(&admin)
            .iter()
            .any(|e| e["event"] == "access_denied" && e["details"]["path"] == "/api/v1/users")
    );
}

/// S3.1-03 R1: a revoked token stops working at once; revoking it again, or an unknown id,
/// answers 404.
#[test]
fn a_revoked_token_stops_working() {
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    let r = create_token(&admin, "ci", "operator", 30);
    let id = r.body["id"].as_str().unwrap().to_string();
    let t = r.body["token"].as_str().unwrap().to_string();
    let keep = create_token(&admin, "keep", "viewer", 30).body["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        bearer(&d, &t, "GET", "/api/v1/device", None).status,
        StatusCode::OK
    );
    let listed = tokens(&admin);
    let entry = listed.iter().find(|e| e["id"] == id.as_str()).unwrap();
    assert!(entry["last_used_at"].as_u64().is_some(), "{entry}");

    let r = admin.delete(&format!("/api/v1/tokens/{id}"));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    expect(
        &bearer(&d, &t, "GET", "/api/v1/device", None),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(
        bearer(&d, &keep, "GET", "/api/v1/device", None).status,
        StatusCode::OK,
        "the other token was revoked too"
    );
    assert_eq!(tokens(&admin).len(), 1);
    expect(
        &admin.delete(&format!("/api/v1/tokens/{id}")),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect(
        &admin.delete("/api/v1/tokens/0000000000000000"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Another user cannot revoke the admin's token.
    let other = new_user(&d, &admin, "olga", "admin", OTHER_PASSWORD, "127.0.0.2");
    let keep_id = tokens(&admin)[0]["id"].as_str().unwrap().to_string();
    expect(
        &other.delete(&format!("/api/v1/tokens/{keep_id}")),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        bearer(&d, &keep, "GET", "/api/v1/device", None).status,
        StatusCode::OK
    );
}

/// S3.1-01 R3: a token's lifetime is 1 to 365 days; 0 and 366 are refused with 400 and create
/// nothing; the limits themselves are accepted and set `expires_at` accordingly.
#[test]
fn a_token_lifetime_must_be_one_to_365_days() {
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    for days in [0, 366, 100_000] {
        expect(
            &create_token(&admin, "bad", "viewer", days),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
    for body in [
        json!({"name": "neg", "role": "viewer", "expires_in_days": -1}),
        json!({"name": "", "role": "viewer", "expires_in_days": 1}),
        json!({"name": "x", "role": "root", "expires_in_days": 1}),
        json!({"name": "x", "role": "viewer"}),
    ] {
        expect(
            &admin.post("/api/v1/tokens", &body),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
    assert!(tokens(&admin).is_empty());
    for days in [1u32, 365] {
        let before = now();
        let r = create_token(&admin, &format!("d{days}"), "viewer", days);
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let expires = r.body["expires_at"].as_u64().unwrap();
        let expected = before + u64::from(days) * 86_400;
        assert!(
            expires >= expected && expires <= expected + 5,
            "{expires} vs {expected}"
        );
    }
    assert_eq!(tokens(&admin).len(), 2);
}

fn sessions(c: &Client) -> Vec<Value> {
    let r = c.get("/api/v1/sessions");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().unwrap().clone()
}

/// S3.1-01 R3: the session list shows each of the caller's sessions once, with its source, and
/// marks exactly the caller's own as current; ids are public handles, not cookie values.
#[test]
fn the_session_list_marks_the_caller_s_session_as_current() {
    let d = Device::start();
    let admin = d.admin();
    let a = d.client();
    let cookie_a = login_cookie(&a, "admin", ADMIN_PASSWORD);
    let b = d.client_from("127.0.0.2");
    let cookie_b = login_cookie(&b, "admin", ADMIN_PASSWORD);

    let from_a = sessions(&a);
    let from_b = sessions(&b);
    assert_eq!(from_a.len(), 3, "{from_a:?}");
    let current_a: Vec<&Value> = from_a.iter().filter(|s| s["current"] == true).collect();
    let current_b: Vec<&Value> = from_b.iter().filter(|s| s["current"] == true).collect();
    assert_eq!((current_a.len(), current_b.len()), (1, 1));
    assert_ne!(current_a[0]["id"], current_b[0]["id"]);
    assert_eq!(current_a[0]["source"], "127.0.0.1");
    assert_eq!(current_b[0]["source"], "127.0.0.2");
    assert_eq!(current_a[0]["channel"], "https");
    for s in &from_a {
        let id = s["id"].as_str().unwrap();
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!cookie_a.contains(id) && !cookie_b.contains(id));
    }
    // Another user's sessions are not listed.
    let other = new_user(&d, &admin, "sam", "viewer", OTHER_PASSWORD, "127.0.0.3");
    assert_eq!(sessions(&other).len(), 1);
    assert_eq!(sessions(&a).len(), 3);
}

/// S3.1-01 R3: revoking another of one's own sessions ends it (its cookie gets 401) and leaves
/// the caller's; an unknown id answers 404; another user's session cannot be revoked.
#[test]
fn revoking_another_of_one_s_sessions_ends_it() {
    let d = Device::start();
    let admin = d.admin();
    let a = d.client();
    login_cookie(&a, "admin", ADMIN_PASSWORD);
    let b = d.client_from("127.0.0.2");
    let cookie_b = login_cookie(&b, "admin", ADMIN_PASSWORD);
    let id_b = sessions(&b)
        .into_iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let r = a.delete(&format!("/api/v1/sessions/{id_b}"));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    expect(
        &b.get("/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    expect(
        &with_cookie(&d, &cookie_b, "GET", "/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(a.get("/api/v1/device").status, StatusCode::OK);
    assert!(!sessions(&a).iter().any(|s| s["id"] == id_b.as_str()));
    assert!(
        audit_events(&admin)
            .iter()
            .any(|e| e["event"] == "session_revoked" && e["details"]["session"] == id_b.as_str())
    );

    for unknown in [id_b.as_str(), "0000000000000000", "not-an-id", "..%2f.."] {
        expect(
            &a.delete(&format!("/api/v1/sessions/{unknown}")),
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }

    // Another user's session cannot be revoked, and survives the attempt.
    let sam = new_user(&d, &admin, "sam", "admin", OTHER_PASSWORD, "127.0.0.3");
    let id_sam = sessions(&sam)[0]["id"].as_str().unwrap().to_string();
    expect(
        &a.delete(&format!("/api/v1/sessions/{id_sam}")),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(sam.get("/api/v1/device").status, StatusCode::OK);

    // Revoking one's own current session works like a logout.
    let id_a = sessions(&a)
        .into_iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = a.delete(&format!("/api/v1/sessions/{id_a}"));
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    expect(
        &a.get("/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

/// S3.1-01 R3: a session left idle past the idle timeout ends (its cookie gets 401, audited as
/// `session_expired`), while a session in use stays alive.
#[test]
fn an_idle_session_expires_after_the_idle_timeout() {
    let d = Device::start();
    let admin = d.admin();
    set_auth_settings(&admin, &json!({"idle_timeout_seconds": 10}));
    let busy = d.client();
    login_cookie(&busy, "admin", ADMIN_PASSWORD);
    let idle = d.client_from("127.0.0.2");
    let idle_cookie = login_cookie(&idle, "admin", ADMIN_PASSWORD);
    let r = idle.get("/api/v1/auth/session");
    assert_eq!(r.body["idle_timeout_seconds"], 10, "{}", r.text);
    let id = sessions(&idle)
        .into_iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(12) {
        assert_eq!(busy.get("/api/v1/device").status, StatusCode::OK);
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    expect(
        &with_cookie(&d, &idle_cookie, "GET", "/api/v1/device"),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(busy.get("/api/v1/device").status, StatusCode::OK);
    assert!(
        audit_events(&busy)
            .iter()
            .any(|e| e["event"] == "session_expired"
                && e["details"]["session"] == id.as_str()
                && e["details"]["reason"] == "idle_timeout"),
        "the expiry is not audited"
    );
}
