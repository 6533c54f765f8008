//! Re-authentication before sensitive actions (S3.1-01 R2): without a fresh confirmation every
//! such route of the registry shows the password prompt instead of acting; a wrong password
//! does not continue; the right one continues the interrupted action once, only to our own
//! pages, with the session's own token.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

/// The prompt in place of an action: 403, the re-authentication form, and the interrupted
/// action kept.
fn assert_prompt(what: &str, r: &Page, action: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text);
    assert!(r.has_id("reauth-form"), "{what}: no prompt: {}", r.text);
    assert_eq!(
        r.input(Some("reauth-form"), "action").as_deref(),
        Some(action),
        "{what}: the interrupted action is kept"
    );
}

fn fields_of(r: &Page, form: &str) -> Vec<(String, String)> {
    r.form(Some(form)).1
}

fn post_fields(b: &mut Browser, path: &str, fields: &[(String, String)]) -> Page {
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post(path, &refs)
}

/// The prompt's fields with the password (and nothing else) filled in.
fn with_password(fields: &[(String, String)], password: &str) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| {
            let v = if k == "password" { password } else { v };
            (k.clone(), v.to_string())
        })
        .collect()
}

/// S3.1-01 R2: every route that needs a fresh re-authentication (from the registry), posted
/// with a valid token by a session that has not re-authenticated, answers the prompt, keeps
/// the action, and does nothing.
#[test]
fn every_sensitive_action_without_a_fresh_confirmation_shows_the_prompt() {
    let (d, admin, mut b) = device_with_admin();
    create_user(&d, &admin, "zz-victim", "viewer");
    let access_before = admin.get("/api/v1/settings/access").body;
    let sensitive: Vec<Route> = routes().into_iter().filter(Route::reauth).collect();
    assert!(sensitive.len() >= 8, "{sensitive:?}");
    for route in &sensitive {
        let path = route.concrete(&[("name", "zz-victim")]);
        let r = b.submit(&path, &harmful_fields(route.path));
        assert_prompt(&route.what(), &r, &path);
    }
    assert_eq!(users(&admin).len(), 2);
    let victim = user(&admin, "zz-victim").unwrap();
    assert_eq!(victim["role"], "viewer");
    assert_eq!(admin.get("/api/v1/settings/access").body, access_before);
    assert_eq!(
        admin.get("/api/v1/tokens").body.as_array().unwrap().len(),
        0
    );
    let me = session_info(&d, &b.session().unwrap()).unwrap();
    assert_eq!(me["mfa_enabled"], false);
    assert!(me.get("reauth_valid_until").is_none(), "{me}");
}

/// S3.1-01 R2: creating a user from the UI stops at the prompt; a wrong or missing password
/// does not continue (the action stays kept); the right one shows a continue form — which by
/// itself has done nothing — and its submission creates the user once. Replaying the continue
/// form or the confirmation creates nothing more.
#[test]
fn a_user_creation_waits_for_the_password_and_runs_once() {
    let (_d, admin, mut b) = device_with_admin();
    let r = b.submit("/ui/users", &[("username", "zz-new"), ("role", "viewer")]);
    assert_prompt("POST /ui/users", &r, "/ui/users");
    let prompt = fields_of(&r, "reauth-form");
    for kept in [("keep.username", "zz-new"), ("keep.role", "viewer")] {
        assert!(
            prompt.contains(&(kept.0.into(), kept.1.into())),
            "{kept:?} not kept: {prompt:?}"
        );
    }
    assert!(
        user(&admin, "zz-new").is_none(),
        "created before the password"
    );

    for bad in [WRONG_PASSWORD, ""] {
        let r = post_fields(&mut b, "/ui/reauth", &with_password(&prompt, bad));
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad:?}: {}", r.text);
        assert!(r.form_error().is_some(), "the refusal is shown");
        assert!(!r.has_id("continue-form"), "a wrong password continues");
        assert_eq!(
            fields_of(&r, "reauth-form")
                .iter()
                .filter(|(k, _)| k.starts_with("keep."))
                .count(),
            2,
            "the action is still kept"
        );
        assert!(user(&admin, "zz-new").is_none());
    }

    let confirm = with_password(&prompt, ADMIN_PASSWORD);
    let r = post_fields(&mut b, "/ui/reauth", &confirm);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (action, fields) = r.form(Some("continue-form"));
    assert_eq!(action, "/ui/users");
    assert!(
        fields.contains(&("username".into(), "zz-new".into())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("role".into(), "viewer".into())),
        "{fields:?}"
    );
    assert!(
        user(&admin, "zz-new").is_none(),
        "the confirmation alone performed the action"
    );

    let done = post_fields(&mut b, &action, &fields);
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.has_id("one-time-password"), "{}", done.text);
    assert_eq!(
        done.header("cache-control"),
        Some("no-store"),
        "the one-time password page is cached"
    );
    assert_eq!(user(&admin, "zz-new").unwrap()["role"], "viewer");

    let again = post_fields(&mut b, &action, &fields);
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert!(!again.has_id("one-time-password"));
    let r = post_fields(&mut b, "/ui/reauth", &confirm);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(users(&admin).len(), 2, "exactly one user was created");
}

/// S3.1-01 R2: changing the management access waits for the password; a wrong one leaves the
/// policy as it was; the right one continues with exactly the lists that were typed.
#[test]
fn an_access_change_waits_for_the_password_and_a_wrong_one_does_not_continue() {
    let (d, admin, mut b) = device_with_admin();
    let before = admin.get("/api/v1/settings/access").body;
    let r = b.submit(
        "/ui/access",
        &[
            ("allow", "127.0.0.0/8\n10.1.0.0/16"),
            ("trusted", "127.0.0.1"),
        ],
    );
    assert_prompt("POST /ui/access", &r, "/ui/access");
    let prompt = fields_of(&r, "reauth-form");
    let r = post_fields(
        &mut b,
        "/ui/reauth",
        &with_password(&prompt, WRONG_PASSWORD),
    );
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(!r.has_id("continue-form"));
    assert_eq!(admin.get("/api/v1/settings/access").body, before);

    let r = post_fields(
        &mut b,
        "/ui/reauth",
        &with_password(&prompt, ADMIN_PASSWORD),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(admin.get("/api/v1/settings/access").body, before);
    let (action, fields) = r.form(Some("continue-form"));
    let done = post_fields(&mut b, &action, &fields);
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert_eq!(done.location(), Some("/ui/access?done=saved"));
    let after = admin.get("/api/v1/settings/access").body;
    assert_eq!(
        after["allow"],
        json!(["127.0.0.0/8", "10.1.0.0/16"]),
        "{after}"
    );
    assert_eq!(after["trusted"], json!(["127.0.0.1/32"]), "{after}");
    assert!(healthy(&d));
}

/// The confirmation continues only to one of our own pages (no other host, no scheme, no
/// query smuggled into the action, no API path), and the continue form carries exactly one
/// token — the session's — whatever the kept fields said.
#[test]
fn the_continue_form_goes_only_to_our_own_pages_with_the_sessions_token() {
    let (_d, _admin, mut b) = device_with_admin();
    let right = b.token();
    for action in [
        "https://evil.example/ui/users",
        "//evil.example/ui/users",
        "/\\evil.example/ui/users",
        "/ui/users?role=admin",
        "/ui/../api/v1/users",
        "/api/v1/users",
        "javascript:alert(1)",
        "/ui/users\r\nX: y",
    ] {
        let r = b.submit(
            "/ui/reauth",
            &[
                ("password", ADMIN_PASSWORD),
                ("action", action),
                ("keep.username", "zz-x"),
            ],
        );
        match r.status {
            StatusCode::SEE_OTHER => {
                assert_eq!(r.location(), Some("/ui/"), "{action:?}");
            }
            StatusCode::OK => {
                let (to, _) = r.form(Some("continue-form"));
                assert!(
                    to.starts_with("/ui/") && !to.contains(['?', '\\']) && !to.contains(".."),
                    "{action:?} continues to {to:?}"
                );
            }
            s => panic!("{action:?}: {s} {}", r.text),
        }
    }
    let r = b.submit(
        "/ui/reauth",
        &[
            ("password", ADMIN_PASSWORD),
            ("action", "/ui/users"),
            ("keep.csrf", "0123456789abcdef0123456789abcdef"),
            ("keep.username", "zz-x"),
            ("keep.role", "viewer"),
        ],
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (_, fields) = r.form(Some("continue-form"));
    let tokens: Vec<&String> = fields
        .iter()
        .filter(|(k, _)| k == "csrf")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(tokens, [&right], "{fields:?}");
}
