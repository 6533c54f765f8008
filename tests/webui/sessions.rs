//! Session fixation (CWE-384) through the UI: a session id the browser holds before login is
//! never the one used after it, and every gain of privilege — login, the first password,
//! a password change, the end of a mandatory second-factor enrolment — issues a new id and
//! kills the old one.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

fn assert_fresh_id(what: &str, issued: &str, before: &str) {
    assert_ne!(issued, before, "{what}: the old session id was kept");
    assert_eq!(issued.len(), 64, "{what}: 256-bit id in hex: {issued}");
    assert!(issued.bytes().all(|b| b.is_ascii_hexdigit()), "{issued}");
}

/// A session id that no longer opens pages: the UI sends its holder to the login page.
fn assert_dead(d: &Device, what: &str, secret: &str) {
    assert!(
        session_info(d, secret).is_none(),
        "{what}: the old session id still works on the API"
    );
    let mut b = Browser::new(d);
    b.jar.insert(SESSION_COOKIE.into(), secret.into());
    let r = b.get("/ui/account");
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{what}: {}", r.text);
    assert!(
        r.location().unwrap_or_default().starts_with("/ui/login"),
        "{what}: {:?}",
        r.location()
    );
}

/// CWE-384: an invented session id planted in the browser before login (as a fixation attack
/// would, through a cookie-setting bug elsewhere) is not adopted by the UI login; the answer
/// sets a new one, and the planted one opens nothing.
#[test]
fn an_invented_session_id_planted_before_login_is_replaced() {
    let d = Device::start();
    let _admin = d.admin();
    let planted = "ab".repeat(32);
    let mut b = Browser::new(&d);
    b.jar.insert(SESSION_COOKIE.into(), planted.clone());
    let r = b.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let issued = r
        .cookie(SESSION_COOKIE)
        .expect("login sets the session cookie");
    assert_fresh_id("UI login", &issued.value, &planted);
    assert_dead(&d, "the planted id", &planted);
    assert_eq!(b.get("/ui/").status, StatusCode::OK);
}

/// CWE-384: a valid session of another account (the attacker's, planted in the victim's
/// browser) is replaced at the victim's login, not upgraded: the attacker's id stays the
/// attacker's operator session, and the victim's admin session has a new id.
#[test]
fn someone_elses_valid_session_planted_before_login_is_not_upgraded() {
    let d = Device::start();
    let admin = d.admin();
    create_user(&d, &admin, "zz-attacker", "operator");
    let mut attacker = Browser::from(&d, "127.0.0.2");
    attacker.login_ok("zz-attacker", USER_PASSWORD);
    let planted = attacker.session().unwrap();

    let mut victim = Browser::new(&d);
    victim.jar.insert(SESSION_COOKIE.into(), planted.clone());
    // With a session, the login form posts with that session's token.
    let token = victim.token();
    let r = victim.post(
        "/ui/login",
        &[
            ("csrf", &token),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let issued = r.cookie(SESSION_COOKIE).expect("a new session cookie");
    assert_fresh_id("login over a planted session", &issued.value, &planted);
    let theirs = session_info(&d, &planted).expect("the attacker's session");
    assert_eq!(theirs["username"], "zz-attacker", "{theirs}");
    assert_eq!(theirs["role"], "operator", "{theirs}");
    let mine = session_info(&d, &issued.value).unwrap();
    assert_eq!(mine["username"], "admin");
    let r = attacker.get("/ui/users");
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the attacker gained nothing"
    );
}

/// CWE-384: the label-password session is limited to setting a password; setting it (the
/// first setup page) issues a new session id, and the limited one is dead.
#[test]
fn setting_the_first_password_rotates_the_session() {
    let d = Device::start();
    let label = d.label_password.clone().unwrap();
    let mut b = Browser::new(&d);
    let r = b.login("admin", &label);
    assert_eq!(r.location(), Some("/ui/setup"), "{}", r.text);
    let limited = b.session().unwrap();
    assert_eq!(
        session_info(&d, &limited).unwrap()["must_change_password"],
        true
    );
    let r = b.submit(
        "/ui/setup",
        &[
            ("current", &label),
            ("new", ADMIN_PASSWORD),
            ("confirm", ADMIN_PASSWORD),
        ],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let issued = r.cookie(SESSION_COOKIE).expect("a new session cookie");
    assert_fresh_id("first setup", &issued.value, &limited);
    assert_dead(&d, "the label-password session", &limited);
    assert_eq!(b.get("/ui/").status, StatusCode::OK);
}

/// CWE-384 / S3.1-03: changing the password on the account page issues a new session id; the
/// old id and the user's other sessions are dead.
#[test]
fn changing_the_password_on_the_account_page_rotates_the_session() {
    let (d, _admin, mut b) = device_with_admin();
    let mut other = Browser::from(&d, "127.0.0.2");
    other.login_ok("admin", ADMIN_PASSWORD);
    let before = b.session().unwrap();
    let new = "Lagoon-Copper-64-brisk";
    let r = b.submit(
        "/ui/account/password",
        &[("current", ADMIN_PASSWORD), ("new", new), ("confirm", new)],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let issued = r.cookie(SESSION_COOKIE).expect("a new session cookie");
    assert_fresh_id("password change", &issued.value, &before);
    assert_dead(&d, "the session that changed the password", &before);
    assert_dead(&d, "another session of the user", &other.session().unwrap());
    assert_eq!(b.get("/ui/account").status, StatusCode::OK);
}

/// CWE-384: a role that requires a second factor logs in to an enrolment-only session; the
/// enrolment (re-authentication, authenticator app, first code) ends with a new session id,
/// and the enrolment-only id is dead.
#[test]
fn completing_a_mandatory_enrolment_rotates_the_session() {
    let d = Device::start();
    let admin = d.admin();
    create_user(&d, &admin, "zz-op", "operator");
    set_auth_settings(&admin, |s| s["mfa_required_roles"] = json!(["operator"]));
    let mut b = Browser::new(&d);
    let r = b.login("zz-op", USER_PASSWORD);
    assert_eq!(r.location(), Some("/ui/account/mfa"), "{}", r.text);
    let limited = b.session().unwrap();
    assert_eq!(b.get("/ui/").location(), Some("/ui/account/mfa"));

    b.reauth(USER_PASSWORD);
    let page = b.submit("/ui/account/mfa/totp", &[]);
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let secret = page.text_of("totp-secret").expect("the enrolment key");
    let mut totp = Totp::new(secret.trim());
    let r = b.submit(
        "/ui/account/mfa/totp/verify",
        &[("code", &totp.code()), ("secret", secret.trim())],
    );
    assert_eq!(r.status, StatusCode::OK, "recovery codes: {}", r.text);
    assert!(r.has_id("recovery-codes"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let issued = r.cookie(SESSION_COOKIE).expect("a new session cookie");
    assert_fresh_id("MFA enrolment", &issued.value, &limited);
    assert_dead(&d, "the enrolment-only session", &limited);
    assert_eq!(b.get("/ui/").status, StatusCode::OK);
}

/// CWE-200: the session id lives in the HttpOnly cookie only: no page, form, link or
/// redirect of the UI ever contains it (the account page lists sessions by their public
/// handle).
#[test]
fn the_session_id_never_appears_in_a_page() {
    let (_d, _admin, mut b) = device_with_admin();
    b.reauth(ADMIN_PASSWORD);
    let secret = b.session().unwrap();
    let mut pages = get_pages();
    pages.push("/ui/account?done=password".into());
    for path in pages {
        let p = b.get(&path);
        assert!(
            !p.text.contains(&secret),
            "{path}: the page holds the session id"
        );
        assert!(
            !p.location().unwrap_or_default().contains(&secret),
            "{path}: the redirect holds the session id"
        );
        for (name, value) in &p.headers {
            if name.as_str() != "set-cookie" {
                assert!(
                    !value.to_str().unwrap_or_default().contains(&secret),
                    "{path}: {name}"
                );
            }
        }
    }
    let token = b.token();
    assert!(!secret.contains(&token) && !token.contains(&secret));
}
