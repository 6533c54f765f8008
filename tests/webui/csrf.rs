//! Cross-site request forgery (CWE-352): every state-changing route of the UI, taken from its
//! registry, refuses a request without the right token or from another site — with the
//! victim's session cookie present — and changes nothing; with the right token from our own
//! origin it works.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::support::*;

/// One forged variant of a POST: a label and the request.
type Variant = (&'static str, reqwest::blocking::RequestBuilder);

/// A pre-login forgery: a label, the `__Host-csrf` cookie, the form's token, extra headers.
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a [(&'a str, &'a str)],
);

/// The ways a forged POST of `fields` to `path` can come, for a browser whose right token is
/// `right`: without a token, with a wrong one, with another session's, with a pre-login one,
/// in the wrong place, and with the right one but from another site.
fn forgeries(
    b: &Browser,
    path: &str,
    fields: &[(&str, &str)],
    right: &str,
    foreign: &[(&'static str, String)],
) -> Vec<Variant> {
    let body = |token: Option<&str>| {
        let mut all: Vec<(&str, &str)> = Vec::new();
        if let Some(t) = token {
            all.push(("csrf", t));
        }
        all.extend_from_slice(fields);
        form_body(&all)
    };
    let post = |token: Option<&str>| {
        b.request("POST", path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body(token))
    };
    let wrong = "0".repeat(right.len().max(32));
    let mut out: Vec<Variant> = vec![
        ("no token", post(None)),
        ("empty token", post(Some(""))),
        ("wrong token", post(Some(&wrong))),
        ("truncated token", post(Some(&right[..right.len() - 1]))),
        ("upper-cased token", post(Some(&right.to_ascii_uppercase()))),
        (
            "wrong token before the right one",
            b.request("POST", path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("csrf={wrong}&{}", body(Some(right)))),
        ),
        (
            "token in the query string",
            b.request("POST", &format!("{path}?csrf={right}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body(None)),
        ),
        (
            "token in a header",
            post(None).header("x-csrf-token", right),
        ),
        (
            "right token, Sec-Fetch-Site: cross-site",
            post(Some(right)).header("sec-fetch-site", "cross-site"),
        ),
        (
            "right token, Sec-Fetch-Site: same-site",
            post(Some(right)).header("sec-fetch-site", "same-site"),
        ),
        (
            "right token, foreign Origin",
            post(Some(right)).header("origin", "https://evil.example"),
        ),
        (
            "right token, Origin: null",
            post(Some(right)).header("origin", "null"),
        ),
        (
            "right token, plain-HTTP Origin",
            post(Some(right)).header("origin", format!("http://{}", b.authority)),
        ),
        (
            "right token, look-alike Origin",
            post(Some(right)).header("origin", format!("https://{}.evil.example", b.authority)),
        ),
        (
            "right token, same origin but Sec-Fetch-Site: cross-site",
            post(Some(right))
                .header("origin", format!("https://{}", b.authority))
                .header("sec-fetch-site", "cross-site"),
        ),
    ];
    for (label, token) in foreign {
        out.push((label, post(Some(token))));
    }
    out
}

fn assert_refused(what: &str, p: &Page) {
    assert!(
        p.is_forged_refusal(),
        "{what}: not refused as forged: {} {:?}\n{}",
        p.status,
        p.location(),
        p.text
    );
    assert!(
        p.cookie(SESSION_COOKIE).is_none() && p.cookie(LANG_COOKIE).is_none(),
        "{what}: a refused form set cookies: {:?}",
        p.set_cookies()
    );
    assert_clean_html(what, &p.text);
}

/// CWE-352: every POST route of the registry, sent with the victim's (a re-authenticated
/// admin's) session cookie but without the right token, or with it from another site, is
/// refused with the forged-form page, and none of them changed anything: the sessions, the
/// victim user, the token, the access policy and the password are as before.
#[test]
fn every_post_route_refuses_forged_requests_with_the_session_present() {
    let (d, admin, mut a) = device_with_admin();
    create_user(&d, &admin, "zz-victim", "viewer");
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.post(
        "/api/v1/tokens",
        &json!({"name": "victim-token", "role": "viewer", "expires_in_days": 30}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token_id = r.body["id"].as_str().unwrap().to_string();
    // The victim has re-authenticated: without the CSRF check, every forged request would
    // succeed.
    a.reauth(ADMIN_PASSWORD);
    let right = a.token();
    let mut other = Browser::from(&d, "127.0.0.2");
    other.login_ok("admin", ADMIN_PASSWORD);
    let other_token = other.token();
    let other_handle = session_handle(&d, &other.session().unwrap());
    let mut anon = Browser::from(&d, "127.0.0.3");
    let prelogin = anon.token();
    assert_ne!(right, other_token, "tokens are bound to the session");

    let settings_before = admin.get("/api/v1/settings/access").body;
    let mut checked = 0;
    for route in routes().into_iter().filter(Route::is_post) {
        let id = if route.path.contains("/tokens/") {
            token_id.as_str()
        } else {
            other_handle.as_str()
        };
        let path = route.concrete(&[("name", "zz-victim"), ("id", id)]);
        let fields = harmful_fields(route.path);
        let foreign = [
            ("another session's token", other_token.clone()),
            ("the pre-login token", prelogin.clone()),
        ];
        for (label, rb) in forgeries(&a, &path, &fields, &right, &foreign) {
            let p = a.clone().send(rb);
            assert_refused(&format!("{} ({label})", route.what()), &p);
        }
        // The pre-login double-submit pair does not stand in for the session's token.
        let mut with_prelogin = a.clone();
        with_prelogin
            .jar
            .insert(CSRF_COOKIE.into(), anon.jar[CSRF_COOKIE].clone());
        let mut all = vec![("csrf", prelogin.as_str())];
        all.extend_from_slice(&fields);
        let p = with_prelogin.post(&path, &all);
        assert_refused(
            &format!("{} (pre-login cookie and token)", route.what()),
            &p,
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} POST routes");

    assert!(
        session_info(&d, &a.session().unwrap()).is_some(),
        "forged logout"
    );
    assert!(session_info(&d, &other.session().unwrap()).is_some());
    let victim = user(&admin, "zz-victim").expect("forged delete");
    assert_eq!(victim["role"], "viewer", "forged role change: {victim}");
    assert_eq!(victim["disabled"], false, "{victim}");
    assert!(user(&admin, "zz-forged").is_none(), "forged user creation");
    assert_eq!(users(&admin).len(), 2);
    let tokens = admin.get("/api/v1/tokens").body;
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens}");
    assert_eq!(tokens[0]["id"], token_id.as_str());
    assert_eq!(admin.get("/api/v1/settings/access").body, settings_before);
    assert_eq!(
        admin.get("/api/v1/auth/session").body["mfa_enabled"],
        false,
        "forged MFA change"
    );
    let c = d.client_from("127.0.0.4");
    assert_eq!(
        c.login("admin", ADMIN_PASSWORD).status,
        StatusCode::OK,
        "forged password change"
    );
    assert_eq!(
        c.login("zz-victim", USER_PASSWORD).status,
        StatusCode::OK,
        "forged reset"
    );
    assert!(!a.jar.contains_key(LANG_COOKIE));
}

/// Before login the forms (login, language, the second-factor step) use a double-submit
/// cookie, `__Host-csrf`: a missing, mismatched or malformed cookie, a missing token, or a
/// cross-site request is refused; the pair the login page hands out works.
#[test]
fn pre_login_forms_need_the_double_submit_cookie() {
    let d = Device::start();
    let _admin = d.admin();
    let x = "0123456789abcdef0123456789abcdef";
    let y = "fedcba9876543210fedcba9876543210";
    let public: Vec<Route> = routes()
        .into_iter()
        .filter(|r| r.is_post() && r.is_public())
        .collect();
    assert!(public.len() >= 4, "{public:?}");
    for route in &public {
        let path = route.concrete(&[]);
        let fields = harmful_fields(route.path);
        let cases: [Case; 9] = [
            ("no cookie, a token", None, Some(x), &[]),
            ("cookie and token differ", Some(x), Some(y), &[]),
            ("cookie, no token", Some(x), None, &[]),
            ("malformed cookie and token", Some("zz"), Some("zz"), &[]),
            ("empty cookie and token", Some(""), Some(""), &[]),
            (
                "cross-site",
                Some(x),
                Some(x),
                &[("sec-fetch-site", "cross-site")],
            ),
            (
                "foreign Origin",
                Some(x),
                Some(x),
                &[("origin", "https://evil.example")],
            ),
            ("Origin: null", Some(x), Some(x), &[("origin", "null")]),
            (
                "upper-cased token",
                Some(x),
                Some("0123456789ABCDEF0123456789ABCDEF"),
                &[],
            ),
        ];
        for (label, cookie, token, headers) in cases {
            let mut b = Browser::from(&d, "127.0.0.2");
            if let Some(c) = cookie {
                b.jar.insert(CSRF_COOKIE.into(), c.into());
            }
            let mut all: Vec<(&str, &str)> = token.map(|t| ("csrf", t)).into_iter().collect();
            all.extend_from_slice(&fields);
            let mut rb = b
                .request("POST", &path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body(&all));
            for (k, v) in headers {
                rb = rb.header(*k, *v);
            }
            let p = b.send(rb);
            assert_refused(&format!("{} ({label})", route.what()), &p);
            assert!(b.session().is_none(), "{label}: logged in");
        }
    }

    // The pair from the login page works, for the login and for the language switch.
    let mut b = Browser::from(&d, "127.0.0.3");
    let page = b.get("/ui/login");
    let cookie = page
        .cookie(CSRF_COOKIE)
        .expect("the login page sets the cookie");
    assert_eq!(page.csrf().as_deref(), Some(cookie.value.as_str()));
    let r = b.post(
        "/ui/language",
        &[
            ("csrf", &cookie.value),
            ("lang", "ja"),
            ("next", "/ui/login"),
        ],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(
        r.cookie(LANG_COOKIE).map(|c| c.value).as_deref(),
        Some("ja")
    );
    let r = b.post(
        "/ui/login",
        &[
            ("csrf", &cookie.value),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(b.session().is_some());
    assert!(
        r.set_cookies()
            .iter()
            .any(|c| c.name == CSRF_COOKIE && c.clears()),
        "the pre-login cookie is dropped at login: {:?}",
        r.set_cookies()
    );
}

/// With the right token from our own origin (as a browser sends it: same-origin fetch
/// metadata and Origin), the language switch, the live password check and logout work; the
/// logged-out session id is dead on the device, and its token does not work for the next
/// session.
#[test]
fn the_right_token_from_our_own_origin_works() {
    let (d, _admin, mut b) = device_with_admin();
    let origin = format!("https://{}", b.authority);
    let browser_post = |b: &mut Browser, path: &str, fields: &[(&str, &str)]| {
        let token = b.token();
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        let rb = b
            .request("POST", path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &origin)
            .header("sec-fetch-site", "same-origin")
            .body(form_body(&all));
        b.send(rb)
    };
    let r = browser_post(
        &mut b,
        "/ui/language",
        &[("lang", "ja"), ("next", "/ui/account")],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.location(), Some("/ui/account"));
    assert_eq!(b.jar.get(LANG_COOKIE).map(String::as_str), Some("ja"));
    let page = b.get("/ui/account");
    assert!(page.text.contains("<html lang=\"ja\">"), "{}", page.text);

    let r = browser_post(
        &mut b,
        "/ui/password/check",
        &[("password", "Quiet-Marble-47-ferry")],
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let old = b.session().unwrap();
    let old_token = b.token();
    let r = browser_post(&mut b, "/ui/logout", &[]);
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.location(), Some("/ui/login"));
    assert!(
        r.set_cookies()
            .iter()
            .any(|c| c.name == SESSION_COOKIE && c.clears()),
        "logout clears the cookie: {:?}",
        r.set_cookies()
    );
    assert!(session_info(&d, &old).is_none(), "the session lives on");
    let mut replay = Browser::new(&d);
    replay.jar.insert(SESSION_COOKIE.into(), old.clone());
    let r = replay.get("/ui/");
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/ui/login"));

    b.login_ok("admin", ADMIN_PASSWORD);
    let r = b.post(
        "/ui/account/tokens",
        &[
            ("csrf", &old_token),
            ("name", "x"),
            ("role", "viewer"),
            ("days", "1"),
        ],
    );
    assert_refused("the old session's token after a new login", &r);
}

/// Safe methods are safe: a state-changing path that has no page of its own answers GET and
/// HEAD with 405 and does nothing (a link or an image cannot log anyone out or revoke
/// anything).
#[test]
fn state_changing_routes_do_nothing_on_get_or_head() {
    let (d, _admin, mut b) = device_with_admin();
    let all = routes();
    let pages: Vec<&str> = all
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path)
        .collect();
    let mut checked = 0;
    for route in all
        .iter()
        .filter(|r| r.is_post() && !pages.contains(&r.path))
    {
        let path = route.concrete(&[("name", "admin")]);
        for method in ["GET", "HEAD"] {
            let rb = b.request(method, &path);
            let r = b.send(rb);
            assert_eq!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {}",
                r.text
            );
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} POST-only routes");
    assert!(
        session_info(&d, &b.session().unwrap()).is_some(),
        "logged out by a GET"
    );
}
