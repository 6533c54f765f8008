//! Password guessing through the login page (S3.1-04, docs/en/lockout.md): after the
//! threshold the account is locked and even the right password is refused — with exactly the
//! answer of a wrong one, in the visitor's language, the page explaining the lock rule — until
//! the lock ends; an address with many failures is refused at once, in its language.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

const WRONG_EN: &str = "The username or password is wrong.";
const WRONG_JA: &str = "ユーザー名またはパスワードが違います。";

fn browser_in(d: &Device, local: &str, lang: &str) -> Browser {
    let mut b = Browser::from(d, local);
    b.jar.insert(LANG_COOKIE.into(), lang.into());
    b
}

/// The lock rule under the login form.
fn note(p: &Page) -> String {
    p.text
        .split("<p class=\"note\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .map(unescape)
        .unwrap_or_default()
}

/// S3.1-04 R1-1: five wrong passwords on the login page lock the account: the right password
/// is then refused with the same page as a wrong one (Japanese and English), the page states
/// the lock rule, the administrator sees the lock on the users page, and when the lock ends the
/// right password logs in.
#[test]
fn the_login_page_locks_the_account_after_the_threshold_even_for_the_right_password() {
    let (d, admin, mut admin_ui) = device_with_admin();
    set_auth_settings(&admin, |s| s["lockout_base_seconds"] = json!(10));
    create_user(&d, &admin, "zz-target", "operator");

    let mut ja = browser_in(&d, "127.0.0.2", "ja");
    let mut last = None;
    for i in 1..=5 {
        let r = ja.login("zz-target", WRONG_PASSWORD);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "wrong {i}: {}", r.text);
        assert_eq!(r.form_error().as_deref(), Some(WRONG_JA), "wrong {i}");
        assert!(r.text.contains("<html lang=\"ja\">"));
        last = Some(r);
    }
    let last = last.unwrap();
    let n = note(&last);
    assert!(
        n.contains("ロック") && n.contains('5'),
        "the lock rule: {n:?}"
    );

    let r = ja.login("zz-target", USER_PASSWORD);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "locked: {}", r.text);
    assert_eq!(
        r.text, last.text,
        "a locked account answers exactly like a wrong password"
    );
    assert!(ja.session().is_none());

    let mut en = browser_in(&d, "127.0.0.3", "en");
    let r = en.login("zz-target", USER_PASSWORD);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "locked: {}", r.text);
    assert_eq!(r.form_error().as_deref(), Some(WRONG_EN));
    let n = note(&r);
    assert!(
        n.contains("locked") && n.contains('5'),
        "the lock rule: {n:?}"
    );
    assert!(en.session().is_none());

    let page = admin_ui.get("/ui/users");
    let row = page
        .text
        .split("<tr data-user=\"zz-target\">")
        .nth(1)
        .and_then(|s| s.split("</tr>").next())
        .expect("the target's row");
    assert!(
        row.contains("class=\"user-locked\"><strong>"),
        "the lock is shown: {row}"
    );

    let until = user(&admin, "zz-target").unwrap()["locked_until"]
        .as_u64()
        .expect("locked");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::thread::sleep(Duration::from_secs(until.saturating_sub(now) + 1));
    let r = en.login("zz-target", USER_PASSWORD);
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "after the lock: {}",
        r.text
    );
    assert!(en.session().is_some());
}

/// S3.1-04 R1-2: ten failures from one address (for names that need not exist) make the login
/// page refuse that address at once with 429 — in its language, saying when to retry — even
/// for the right password; another address logs in.
#[test]
fn an_address_with_many_failures_is_refused_in_its_language() {
    let d = Device::start();
    let _admin = d.admin();
    let mut ja = browser_in(&d, "127.0.0.4", "ja");
    for i in 1..=9 {
        let r = ja.login(&format!("ghost-{i}"), WRONG_PASSWORD);
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "failure {i}: {}",
            r.text
        );
    }
    let _tenth = ja.login("ghost-10", WRONG_PASSWORD);
    let r = ja.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let m = r.form_error().unwrap_or_default();
    assert!(
        m.contains("このアドレスからの失敗が多すぎます") && m.contains("秒"),
        "{m:?}"
    );
    assert!(ja.session().is_none());
    assert_clean_html("429 page", &r.text);

    let mut en = browser_in(&d, "127.0.0.4", "en");
    let r = en.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let m = r.form_error().unwrap_or_default();
    assert!(
        m.contains("Too many failed attempts from this address"),
        "{m:?}"
    );

    let mut elsewhere = Browser::from(&d, "127.0.0.5");
    elsewhere.login_ok("admin", ADMIN_PASSWORD);
}

/// S3.1-04 / CWE-204: the login page does not tell which accounts exist: a wrong password for
/// an existing user and any password for an unknown name give the same status and the same
/// page (the typed name aside).
#[test]
fn unknown_and_known_usernames_get_the_same_login_page() {
    let d = Device::start();
    let admin = d.admin();
    create_user(&d, &admin, "zz-known", "viewer");
    for lang in ["en", "ja"] {
        let mut b = browser_in(&d, "127.0.0.6", lang);
        let known = b.login("zz-known", WRONG_PASSWORD);
        let unknown = b.login("zz-nobody", WRONG_PASSWORD);
        assert_eq!(known.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.status, known.status);
        assert_eq!(
            unknown.text.replace("zz-nobody", "NAME"),
            known.text.replace("zz-known", "NAME"),
            "{lang}: the pages differ"
        );
        let mut known_headers: Vec<String> = known
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v:?}"))
            .filter(|h| !h.starts_with("content-length") && !h.starts_with("date"))
            .collect();
        let mut unknown_headers: Vec<String> = unknown
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v:?}"))
            .filter(|h| !h.starts_with("content-length") && !h.starts_with("date"))
            .collect();
        known_headers.sort();
        unknown_headers.sort();
        assert_eq!(known_headers, unknown_headers, "{lang}");
    }
}
