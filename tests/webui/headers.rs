//! Hardened answers (CWE-693, CWE-1021, CWE-525, CWE-200): every page and every error page of
//! the UI — 200, 303, 401, 403, 404, 405, 413, 422 — carries a strict Content-Security-Policy,
//! framing and sniffing protection, a referrer policy, HSTS and `no-store`; no answer names the
//! server software; no served HTML has inline script or style.

use std::collections::BTreeSet;

use reqwest::StatusCode;

use crate::common::*;
use crate::support::*;

fn assert_page_headers(what: &str, p: &Page) {
    let h = |n: &str| p.header(n).unwrap_or_default().to_string();
    let csp = h("content-security-policy");
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(
        directives.contains(&"default-src 'self'"),
        "{what}: CSP {csp:?}"
    );
    assert!(
        directives.contains(&"frame-ancestors 'none'"),
        "{what}: CSP {csp:?}"
    );
    for bad in [
        "'unsafe-inline'",
        "'unsafe-eval'",
        "'unsafe-hashes'",
        "data:",
        " *",
        "http:",
    ] {
        assert!(!csp.contains(bad), "{what}: CSP allows {bad}: {csp:?}");
    }
    for d in &directives {
        if let Some(src) = d
            .strip_prefix("script-src ")
            .or_else(|| d.strip_prefix("style-src "))
        {
            assert_eq!(src, "'self'", "{what}: {d}");
        }
    }
    assert_eq!(h("x-frame-options"), "DENY", "{what}");
    assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
    assert!(
        matches!(
            h("referrer-policy").as_str(),
            "no-referrer" | "same-origin" | "strict-origin" | "strict-origin-when-cross-origin"
        ),
        "{what}: Referrer-Policy {:?}",
        h("referrer-policy")
    );
    let hsts = h("strict-transport-security");
    let age: u64 = hsts
        .split(';')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(age >= 15_552_000, "{what}: HSTS {hsts:?}");
    assert_eq!(h("cache-control"), "no-store", "{what}");
    for (name, value) in &p.headers {
        let n = name.as_str();
        assert!(
            n != "server" && n != "x-powered-by" && n != "via" && !n.contains("version"),
            "{what}: {n}: {value:?}"
        );
    }
    if h("content-type").starts_with("text/html") {
        assert_eq!(h("content-type"), "text/html; charset=utf-8", "{what}");
        assert_clean_html(what, &p.text);
        assert!(p.text.starts_with("<!doctype html>"), "{what}");
    }
}

/// The answers an anonymous visitor gets: pages, redirects, refusals and errors.
fn anonymous_answers(d: &Device) -> Vec<(String, Page)> {
    let mut b = Browser::from(d, "127.0.0.2");
    let mut out = Vec::new();
    for path in [
        "/",
        "/ui/login",
        "/ui/login?expired=1",
        "/ui/security",
        "/ui/login/verify",
        "/ui/",
        "/ui/users",
        "/ui/access",
        "/ui/nope",
        "/ui/login/",
        "/assets/nope.css",
    ] {
        out.push((format!("GET {path}"), b.get(path)));
    }
    let token = b.token();
    out.push((
        "POST /ui/login wrong password".into(),
        b.post(
            "/ui/login",
            &[
                ("csrf", &token),
                ("username", "admin"),
                ("password", WRONG_PASSWORD),
            ],
        ),
    ));
    out.push((
        "POST /ui/login forged".into(),
        b.post("/ui/login", &[("username", "admin"), ("password", "x")]),
    ));
    out.push((
        "POST /ui/users anonymous".into(),
        b.post("/ui/users", &[("csrf", &token)]),
    ));
    out.push((
        "POST /ui/login too long".into(),
        b.post(
            "/ui/login",
            &[
                ("csrf", &token),
                ("username", &"a".repeat(65)),
                ("password", "x"),
            ],
        ),
    ));
    out.push((
        "POST /ui/login oversized".into(),
        b.post(
            "/ui/login",
            &[("csrf", &token), ("username", &"a".repeat(20_000))],
        ),
    ));
    let rb = b
        .request("POST", "/ui/login")
        .header("content-type", "application/json")
        .body("{\"username\":\"admin\"}");
    out.push(("POST /ui/login JSON".into(), b.send(rb)));
    for (method, path) in [
        ("PUT", "/ui/login"),
        ("DELETE", "/ui/logout"),
        ("GET", "/ui/logout"),
        ("PATCH", "/ui/users"),
    ] {
        let rb = b.request(method, path);
        out.push((format!("{method} {path}"), b.send(rb)));
    }
    out
}

/// CWE-693/1021/525: the security headers on every kind of answer, anonymous and logged in
/// (admin: every GET page of the registry, the re-authentication prompt, a 404 page, a 422
/// form; operator: the 403 page), and inline-free HTML in all of them.
#[test]
fn every_ui_answer_carries_the_security_headers() {
    let (d, admin, mut b) = device_with_admin();
    create_user(&d, &admin, "zz-op", "operator");
    let mut answers = anonymous_answers(&d);
    for page in get_pages() {
        answers.push((format!("admin GET {page}"), b.get(&page)));
    }
    answers.push((
        "admin POST /ui/users without re-authentication".into(),
        b.submit("/ui/users", &[("username", "zz-x"), ("role", "viewer")]),
    ));
    b.reauth(ADMIN_PASSWORD);
    answers.push((
        "admin POST /ui/users/Bad!/delete".into(),
        b.submit("/ui/users/Bad!/delete", &[]),
    ));
    answers.push((
        "admin POST /ui/access bad line".into(),
        b.submit("/ui/access", &[("allow", "nonsense"), ("trusted", "")]),
    ));
    answers.push(("admin GET /ui/nope".into(), b.get("/ui/nope")));
    answers.push((
        "admin POST /ui/logout without token".into(),
        b.post("/ui/logout", &[]),
    ));
    let mut op = Browser::from(&d, "127.0.0.3");
    op.login_ok("zz-op", USER_PASSWORD);
    answers.push(("operator GET /ui/users".into(), op.get("/ui/users")));
    answers.push(("operator GET /ui/access".into(), op.get("/ui/access")));

    let mut statuses = BTreeSet::new();
    for (what, p) in &answers {
        assert!(p.status.as_u16() < 500, "{what}: {} {}", p.status, p.text);
        assert_page_headers(what, p);
        statuses.insert(p.status.as_u16());
    }
    for want in [200, 303, 400, 401, 403, 404, 405, 413, 422] {
        assert!(
            statuses.contains(&want),
            "no {want} answer seen: {statuses:?}"
        );
    }
    let forbidden = &answers.last().unwrap().1;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
}

/// CWE-200 / S3.1-24: nothing a visitor sees before logging in — pages, titles, error pages,
/// headers — names the software, its parts or its version.
#[test]
fn nothing_before_login_names_the_software() {
    let d = Device::start();
    let _admin = d.admin();
    for (what, p) in anonymous_answers(&d) {
        let mut all = p.text.to_lowercase();
        for (name, value) in &p.headers {
            all.push('\n');
            all.push_str(name.as_str());
            all.push_str(": ");
            all.push_str(&String::from_utf8_lossy(value.as_bytes()).to_lowercase());
        }
        for w in SOFTWARE_WORDS {
            assert!(!all.contains(w), "{what}: names {w:?}:\n{all}");
        }
    }
}
