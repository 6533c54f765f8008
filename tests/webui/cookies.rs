//! Cookie attributes (CWE-614, CWE-1004, CWE-1275): every cookie the UI sets or clears is
//! `__Host-` (Secure, Path=/, no Domain), HttpOnly and SameSite=Strict, and holds only what it
//! must.

use reqwest::StatusCode;

use crate::common::*;
use crate::support::*;

fn assert_hardened(what: &str, c: &SetCookie) {
    assert!(c.name.starts_with("__Host-"), "{what}: {}", c.raw);
    for want in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(c.has(want), "{what}: {want} missing: {}", c.raw);
    }
    assert!(
        !c.attrs.iter().any(|a| a.starts_with("domain")),
        "{what}: a __Host- cookie carries no Domain: {}",
        c.raw
    );
    assert!(
        c.value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "{what}: unexpected characters in the value: {}",
        c.raw
    );
}

/// Every cookie of a login with a second factor, a language switch and a logout: the
/// pre-login CSRF cookie, the pending-login cookie, the session cookie, the language cookie,
/// and the answers that clear them.
#[test]
fn every_ui_cookie_is_host_only_secure_httponly_and_strict() {
    let d = Device::start();
    let admin = d.admin();
    let mut totp = enable_totp(&admin, ADMIN_PASSWORD);
    let mut seen = Vec::new();
    let mut b = Browser::new(&d);

    let page = b.get("/ui/login");
    let csrf = page
        .cookie(CSRF_COOKIE)
        .expect("the login page sets __Host-csrf");
    assert_eq!(csrf.value.len(), 32, "{}", csrf.raw);
    assert!(csrf.get("max-age").is_none() && csrf.get("expires").is_none());
    seen.extend(page.set_cookies());

    let r = b.submit("/ui/language", &[("lang", "ja"), ("next", "/ui/login")]);
    let lang = r.cookie(LANG_COOKIE).expect("the switch sets __Host-lang");
    assert_eq!(lang.value, "ja");
    seen.extend(r.set_cookies());

    let r = b.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let pending = r
        .cookie(LOGIN_COOKIE)
        .expect("the pending login is a cookie");
    let age: u64 = pending
        .get("max-age")
        .expect("the pending login expires")
        .parse()
        .unwrap();
    assert!((1..=600).contains(&age), "{}", pending.raw);
    assert!(
        !pending.value.contains("admin"),
        "the pending login names the user: {}",
        pending.raw
    );
    assert!(
        r.cookie(SESSION_COOKIE).is_none(),
        "no session before the code"
    );
    seen.extend(r.set_cookies());

    let r = b.submit("/ui/login/verify", &[("code", &totp.code())]);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let session = r.cookie(SESSION_COOKIE).expect("the session cookie");
    assert_eq!(session.value.len(), 64);
    assert!(
        session.get("max-age").is_none() && session.get("expires").is_none(),
        "the session cookie ends with the browser: {}",
        session.raw
    );
    let cleared: Vec<String> = r
        .set_cookies()
        .into_iter()
        .filter(SetCookie::clears)
        .map(|c| c.name)
        .collect();
    assert!(
        cleared.contains(&LOGIN_COOKIE.to_string()) && cleared.contains(&CSRF_COOKIE.to_string()),
        "the pre-login cookies are cleared at login: {cleared:?}"
    );
    seen.extend(r.set_cookies());

    let r = b.submit("/ui/logout", &[]);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    seen.extend(r.set_cookies());

    let names: std::collections::BTreeSet<&str> = seen.iter().map(|c| c.name.as_str()).collect();
    for want in [CSRF_COOKIE, LANG_COOKIE, LOGIN_COOKIE, SESSION_COOKIE] {
        assert!(names.contains(want), "{want} not seen: {names:?}");
    }
    for c in &seen {
        assert_hardened(&c.name, c);
    }
}

/// The static assets set no cookie (they are cached), and pages for a browser that already
/// has the pre-login cookie do not mint another.
#[test]
fn assets_set_no_cookie_and_the_pre_login_cookie_is_minted_once() {
    let d = Device::start();
    let mut b = Browser::new(&d);
    for name in ["ui.css", "ui.js", "icon.svg"] {
        let r = b.get(&format!("/assets/{name}"));
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.set_cookies().is_empty(), "{name}: {:?}", r.set_cookies());
    }
    let first = b.get("/ui/login");
    assert!(first.cookie(CSRF_COOKIE).is_some());
    let again = b.get("/ui/security");
    assert!(again.set_cookies().is_empty(), "{:?}", again.set_cookies());
    assert_eq!(first.csrf(), again.csrf());
}
