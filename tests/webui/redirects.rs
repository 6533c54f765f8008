//! Open redirects (CWE-601) and header injection (CWE-113): wherever the UI sends a browser on
//! to a `next=` page — after login, from the login page when already logged in, after the
//! language switch, after re-authentication — the Location is one of our own /ui/ pages, as a
//! browser would resolve it.

use reqwest::StatusCode;

use crate::common::*;
use crate::support::*;

const HOSTILE_NEXT: &[&str] = &[
    "//evil.example",
    "//evil.example/ui/",
    "///evil.example",
    "https://evil.example",
    "https://evil.example/ui/",
    "https:evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    " //evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/ui//evil.example",
    "/ui/..//evil.example",
    "/ui/../api/v1/users",
    "/ui/%2e%2e/%2e%2e/api/v1/users",
    "/ui/%2E%2E/",
    "/ui/.%2e/api/v1/users",
    "/ui/\r\nSet-Cookie: injected=1",
    "/ui/%0d%0aSet-Cookie:%20injected=1",
    "/ui/\nLocation: https://evil.example",
    "/api/v1/users",
    "evil.example",
    "@evil.example",
];

/// Resolves dot segments the way a browser does (the URL standard counts `%2e` as a dot).
fn browser_path(location: &str) -> String {
    let path = location.split(['?', '#']).next().unwrap_or_default();
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let s = seg.to_ascii_lowercase();
        match s.as_str() {
            ".." | ".%2e" | "%2e." | "%2e%2e" => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            "." | "%2e" => {
                if i == last {
                    out.push("");
                }
            }
            _ => out.push(seg),
        }
    }
    format!("/{}", out.join("/"))
}

/// Fails unless a Location stays on one of our own pages.
fn assert_local(what: &str, p: &Page) {
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{what}: {}", p.text);
    let to = p.location().unwrap_or_default();
    assert!(
        to.starts_with("/ui/") && !to.starts_with("//"),
        "{what}: Location {to:?}"
    );
    assert!(
        !to.contains(['\\', '\r', '\n', '\t', ' ', '@']) && !to.contains("//"),
        "{what}: Location {to:?}"
    );
    let resolved = browser_path(to);
    assert!(
        resolved.starts_with("/ui/"),
        "{what}: Location {to:?} is {resolved:?} in a browser"
    );
    assert!(
        !p.set_cookies().iter().any(|c| c.name.contains("injected")),
        "{what}: header injection: {:?}",
        p.set_cookies()
    );
    assert!(p.headers.get("injected").is_none());
}

#[test]
fn the_browser_path_resolution_matches_the_url_standard() {
    assert_eq!(browser_path("/ui/%2e%2e/api/v1/users"), "/api/v1/users");
    assert_eq!(browser_path("/ui/.%2E/x"), "/x");
    assert_eq!(browser_path("/ui/users?next=/../x"), "/ui/users");
    assert_eq!(browser_path("/ui/a/./b/"), "/ui/a/b/");
    assert_eq!(browser_path("/ui/%2e%2e"), "/");
}

/// CWE-601: after a successful login, whatever `next=` said, the browser goes to one of our
/// own pages; a hostile `next=` is not even carried in the login form.
#[test]
fn login_never_sends_the_browser_off_the_ui() {
    let d = Device::start();
    let _admin = d.admin();
    for next in HOSTILE_NEXT {
        let mut b = Browser::new(&d);
        let form = b.get(&format!("/ui/login?next={}", enc(next)));
        assert_eq!(form.status, StatusCode::OK);
        let carried = form.input(Some("login-form"), "next").unwrap_or_default();
        assert!(
            carried.starts_with("/ui/") && browser_path(&carried).starts_with("/ui/"),
            "login form carries next={carried:?} for {next:?}"
        );
        let r = b.login_next("admin", ADMIN_PASSWORD, next);
        assert_local(&format!("login with next={next:?}"), &r);
        assert!(b.session().is_some());

        // Logged in, the login page sends the browser on to next= at once.
        let r = b.get(&format!("/ui/login?next={}", enc(next)));
        assert_local(&format!("GET /ui/login?next={next:?} logged in"), &r);
    }
    // A good next= is honoured, so the check above is not vacuous.
    let mut b = Browser::new(&d);
    let r = b.login_next("admin", ADMIN_PASSWORD, "/ui/account");
    assert_eq!(r.location(), Some("/ui/account"));
}

/// CWE-601 / CWE-113: the language switch and the re-authentication prompt send the browser
/// on only to our own pages, and a line break never becomes a header.
#[test]
fn language_switch_and_reauthentication_never_send_the_browser_off_the_ui() {
    let (_d, _admin, mut b) = device_with_admin();
    let mut anon = Browser::new(&_d);
    for next in HOSTILE_NEXT {
        let r = anon.submit("/ui/language", &[("lang", "en"), ("next", next)]);
        assert_local(&format!("anonymous language switch next={next:?}"), &r);
        let r = b.submit("/ui/language", &[("lang", "en"), ("next", next)]);
        assert_local(&format!("language switch next={next:?}"), &r);
        let r = b.submit(
            "/ui/reauth",
            &[("password", ADMIN_PASSWORD), ("next", next)],
        );
        assert_local(&format!("re-authentication next={next:?}"), &r);
        let page = b.get(&format!("/ui/reauth?next={}", enc(next)));
        let carried = page.input(Some("reauth-form"), "next").unwrap_or_default();
        assert!(
            browser_path(&carried).starts_with("/ui/"),
            "reauth form carries next={carried:?} for {next:?}"
        );
    }
    let r = b.submit("/ui/language", &[("lang", "en"), ("next", "/ui/account")]);
    assert_eq!(r.location(), Some("/ui/account"));
}
