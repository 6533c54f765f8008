//! Access control (CWE-284, CWE-862, CWE-863) over every route of the registry: anonymous
//! visitors are sent to the login page, roles without the permission get the 403 page (not the
//! page, not the action), and a session that must change its password reaches only setup.

use mamori_auth::model::Role;
use reqwest::StatusCode;

use crate::common::*;
use crate::support::*;

/// Markers of the admin-only pages' content: present, the page was rendered.
const ADMIN_CONTENT: &[&str] = &[
    "id=\"create-form\"",
    "id=\"access-form\"",
    "data-user=",
    "id=\"allow\"",
];

fn values(id: &str) -> [(&'static str, &str); 2] {
    [("name", "zz-victim"), ("id", id)]
}

/// CWE-862: without a session (or with a forged, expired or malformed one) every
/// authenticated GET is a 303 to the login page (coming back afterwards), every
/// authenticated POST a 303 to the login page, and nothing of the page is sent.
#[test]
fn anonymous_visitors_are_sent_to_the_login_page_from_every_route() {
    let d = Device::start();
    let admin = d.admin();
    create_user(&d, &admin, "zz-victim", "viewer");
    let forged_cookies = [
        None,
        Some("cd".repeat(32)),
        Some("x".into()),
        Some(String::new()),
    ];
    let mut checked = 0;
    for route in routes().into_iter().filter(|r| !r.is_public()) {
        let path = route.concrete(&values("0123456789abcdef"));
        for cookie in &forged_cookies {
            let mut b = Browser::from(&d, "127.0.0.2");
            let token = b.token();
            if let Some(c) = cookie {
                b.jar.insert(SESSION_COOKIE.into(), c.clone());
            }
            let what = format!("{} with session cookie {cookie:?}", route.what());
            let r = if route.is_post() {
                let mut fields = vec![("csrf", token.as_str())];
                fields.extend(harmful_fields(route.path));
                b.post(&path, &fields)
            } else {
                b.get(&path)
            };
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{what}: {}", r.text);
            let to = r.location().unwrap_or_default();
            assert!(to.starts_with("/ui/login"), "{what}: {to}");
            assert!(r.text.is_empty(), "{what}: a redirect with a body");
            if !route.is_post() && path != "/ui/" {
                assert!(to.contains("next="), "{what}: comes back afterwards: {to}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} authenticated routes");
    assert!(user(&admin, "zz-victim").is_some());
    assert_eq!(users(&admin).len(), 2);
    // The public GET pages are there for anyone.
    let mut b = Browser::new(&d);
    for path in ["/ui/login", "/ui/security"] {
        assert_eq!(b.get(path).status, StatusCode::OK, "{path}");
    }
}

/// CWE-863: for the operator, viewer and auditor roles, every route whose permission the role
/// lacks (users, management access) answers the 403 page in place of the page — nothing of
/// the admin content, no navigation link to it — and a POST with a valid token changes
/// nothing, even after re-authentication; the routes the role has are served.
#[test]
fn roles_without_the_permission_get_the_403_page_not_the_page() {
    let (d, admin, _b) = device_with_admin();
    create_user(&d, &admin, "zz-victim", "viewer");
    let access_before = admin.get("/api/v1/settings/access").body;
    for (i, role) in [Role::Operator, Role::Viewer, Role::Auditor]
        .into_iter()
        .enumerate()
    {
        let name = format!("zz-{}", role.as_str());
        create_user(&d, &admin, &name, role.as_str());
        let mut b = Browser::from(&d, &format!("127.0.0.{}", 10 + i));
        b.login_ok(&name, USER_PASSWORD);
        b.reauth(USER_PASSWORD);
        let handle = session_handle(&d, &b.session().unwrap());
        let mut refused = 0;
        for route in routes().into_iter().filter(|r| !r.is_public()) {
            let path = route.concrete(&values(&handle));
            let what = format!("{} as {}", route.what(), role.as_str());
            if route.allows(role) {
                if !route.is_post() {
                    let r = b.get(&path);
                    assert!(
                        r.status == StatusCode::OK || r.status == StatusCode::SEE_OTHER,
                        "{what}: {} {}",
                        r.status,
                        r.text
                    );
                }
                continue;
            }
            let r = if route.is_post() {
                b.submit(&path, &harmful_fields(route.path))
            } else {
                b.get(&path)
            };
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text);
            let message = r.text_of("error-message").unwrap_or_default();
            assert!(
                message.contains("role does not allow"),
                "{what}: {message:?}"
            );
            for marker in ADMIN_CONTENT {
                assert!(!r.text.contains(marker), "{what}: the page was rendered");
            }
            refused += 1;
        }
        assert!(
            refused >= 6,
            "{}: only {refused} routes refused",
            role.as_str()
        );
        let home = b.get("/ui/");
        assert_eq!(home.status, StatusCode::OK);
        for link in ["/ui/users", "/ui/access"] {
            assert!(
                !home.tags().iter().any(|t| t.attr("href") == Some(link)),
                "{}: the navigation links to {link}",
                role.as_str()
            );
        }
    }
    let victim = user(&admin, "zz-victim").expect("the victim survives");
    assert_eq!(victim["role"], "viewer");
    assert_eq!(victim["disabled"], false);
    assert!(user(&admin, "zz-forged").is_none());
    assert_eq!(admin.get("/api/v1/settings/access").body, access_before);
    let c = d.client_from("127.0.0.20");
    assert_eq!(c.login("zz-victim", USER_PASSWORD).status, StatusCode::OK);
}

/// S3.1-02: a session opened with a one-time password may only set a new one: every other
/// page redirects to setup, every other action (with a valid token) too, without effect;
/// setup, the live check, the public pages and logout remain.
#[test]
fn a_session_that_must_change_its_password_reaches_only_setup() {
    let (d, admin, _b) = device_with_admin();
    create_user_pending(&admin, "zz-new", "admin");
    let mut b = Browser::from(&d, "127.0.0.2");
    let r = b.login("zz-new", INITIAL_PASSWORD);
    assert_eq!(r.location(), Some("/ui/setup"), "{}", r.text);
    // Ids in paths do not matter here: nothing may run at all.
    let handle = "0123456789abcdef";
    for route in routes().into_iter().filter(|r| !r.is_public()) {
        let path = route.concrete(&values(handle));
        let what = format!("{} during the password change", route.what());
        let allowed = matches!(route.allowed_when(), "during_password_change" | "always");
        if allowed {
            if !route.is_post() {
                let r = b.get(&path);
                assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text);
            }
            continue;
        }
        let r = if route.is_post() {
            b.submit(&path, &harmful_fields(route.path))
        } else {
            b.get(&path)
        };
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{what}: {}", r.text);
        assert_eq!(r.location(), Some("/ui/setup"), "{what}");
    }
    let setup = b.get("/ui/setup");
    assert!(setup.has_id("setup-form"));
    assert!(
        !setup.tags().iter().any(|t| t.name == "nav"),
        "no navigation before the password is set"
    );
    // Nothing happened on the restricted session's behalf.
    assert!(user(&admin, "zz-victim").is_none());
    assert!(user(&admin, "zz-forged").is_none());
    assert_eq!(
        admin.get("/api/v1/settings/access").body["allow"],
        serde_json::json!([])
    );
    let me = session_info(&d, &b.session().unwrap()).unwrap();
    assert_eq!(me["must_change_password"], true);
    assert_eq!(me["mfa_enabled"], false);
}

/// CWE-639: the ids in the account pages' URLs are not keys to other accounts: an operator
/// cannot end the admin's session or revoke the admin's token by putting their ids in the
/// path, and cannot create a token with a role above its own.
#[test]
fn one_user_cannot_end_or_revoke_what_belongs_to_another() {
    let (d, admin, a) = device_with_admin();
    create_user(&d, &admin, "zz-op", "operator");
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.post(
        "/api/v1/tokens",
        &serde_json::json!({"name": "admins", "role": "admin", "expires_in_days": 30}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token_id = r.body["id"].as_str().unwrap().to_string();
    let admin_session = a.session().unwrap();
    let handle = session_handle(&d, &admin_session);

    let mut op = Browser::from(&d, "127.0.0.2");
    op.login_ok("zz-op", USER_PASSWORD);
    op.reauth(USER_PASSWORD);
    let r = op.submit(&format!("/ui/account/sessions/{handle}/revoke"), &[]);
    assert_ne!(r.location(), Some("/ui/account?done=revoked"), "{}", r.text);
    assert!(r.status.is_client_error(), "{}: {}", r.status, r.text);
    assert!(
        session_info(&d, &admin_session).is_some(),
        "the admin was logged out"
    );

    let r = op.submit(&format!("/ui/account/tokens/{token_id}/revoke"), &[]);
    assert_ne!(r.location(), Some("/ui/account?done=revoked"), "{}", r.text);
    assert!(r.status.is_client_error(), "{}: {}", r.status, r.text);
    let tokens = admin.get("/api/v1/tokens").body;
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens}");

    for role in ["admin", "auditor"] {
        let r = op.submit(
            "/ui/account/tokens",
            &[("name", "escalate"), ("role", role), ("days", "30")],
        );
        assert!(
            r.status.is_client_error(),
            "{role}: {} {}",
            r.status,
            r.text
        );
        assert!(!r.has_id("new-token"), "{role}: a token was shown");
    }
    let secret = op.session().unwrap();
    let mine = api_get_as(&d, &secret, "/api/v1/tokens");
    assert_eq!(mine.body, serde_json::json!([]), "{}", mine.text);
}

/// CWE-284/CWE-22: spelling a guarded page's path differently (case, slashes, dot segments,
/// encodings, parameters) never reaches its content without its guard, anonymous or as an
/// operator.
#[test]
fn path_variants_of_a_guarded_page_never_render_it() {
    let (d, admin, _a) = device_with_admin();
    create_user(&d, &admin, "zz-op", "operator");
    let mut op = Browser::from(&d, "127.0.0.2");
    op.login_ok("zz-op", USER_PASSWORD);
    let cookie = format!("Cookie: {SESSION_COOKIE}={}\r\n", op.session().unwrap());
    let variants = [
        "/ui/users/",
        "/UI/users",
        "/ui/Users",
        "/ui//users",
        "/ui/./users",
        "/ui/x/../users",
        "/ui/%75sers",
        "/ui/%2e/users",
        "/ui/users;x",
        "/ui/users%00",
        "/ui/users%2f",
        "/ui/users%20",
        "/ui/users.json",
        "//ui/users",
        "/ui/access/",
        "/ui/%61ccess",
        "/ui/./access",
        "/assets/../ui/users",
        "/assets/..%2fui%2fusers",
    ];
    for target in variants {
        for (who, extra) in [("anonymous", ""), ("operator", cookie.as_str())] {
            let Some(r) = raw_get(&d, target.as_bytes(), extra) else {
                continue;
            };
            let text = r.text();
            for marker in ADMIN_CONTENT {
                assert!(
                    !text.contains(marker),
                    "{who} {target}: {} {text}",
                    r.status
                );
            }
            assert_ne!(r.status, 200, "{who} {target}: {text}");
        }
    }
}

/// CWE-348: the management access page shows (and the allowlist checks) the connection's
/// own address; forwarding headers a client adds are ignored.
#[test]
fn the_access_page_shows_the_real_source_not_a_forwarded_one() {
    let (_d, _admin, mut b) = device_with_admin();
    b.extra = vec![
        ("x-forwarded-for".into(), "203.0.113.9".into()),
        ("x-real-ip".into(), "203.0.113.9".into()),
        ("forwarded".into(), "for=203.0.113.9".into()),
        ("client-ip".into(), "203.0.113.9".into()),
    ];
    let p = b.get("/ui/access");
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.text_of("your-address").as_deref(), Some("127.0.0.1"));
    let p = b.get("/ui/account");
    assert!(
        !p.text.contains("203.0.113.9"),
        "a forwarded address is shown"
    );
}
