//! Cross-site scripting (CWE-79): every text field and query parameter of every page, with the
//! payloads a scanner sends, comes back inert — escaped where it is shown, never as markup, an
//! event handler or a `javascript:` URL — and nothing stored can carry a script into a page.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::*;
use crate::support::*;

fn q(p: &str) -> String {
    enc(p)
}

/// Reflected XSS before login: the login form's username, `next=` and `expired=`, the
/// language cookie and `Accept-Language`, and any query parameter of the public pages.
#[test]
fn login_page_fields_and_parameters_come_back_inert() {
    let d = Device::start();
    let _admin = d.admin();
    let mut b = Browser::from(&d, "127.0.0.2");
    for p in PAYLOADS {
        let page = b.get(&format!("/ui/login?next={}&expired={}", q(p), q(p)));
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_inert("GET /ui/login?next=&expired=", &page.text, p);
        assert_eq!(
            page.input(Some("login-form"), "next").as_deref(),
            Some("/ui/"),
            "a hostile next= is replaced by the home page"
        );

        let token = page.csrf().unwrap();
        let r = b.post(
            "/ui/login",
            &[
                ("csrf", &token),
                ("username", p),
                ("password", WRONG_PASSWORD),
                ("next", p),
            ],
        );
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_inert("POST /ui/login username=", &r.text, p);
        assert_eq!(
            r.input(Some("login-form"), "username").as_deref(),
            Some(*p),
            "what was typed comes back as the field's value, as text"
        );
        assert!(r.form_error().is_some(), "the refusal is shown");
        assert!(
            !r.form_error().unwrap().contains(p),
            "the error message does not echo the input"
        );

        for path in ["/ui/security", "/ui/login/verify"] {
            let page = b.get(&format!("{path}?next={}&x={}", q(p), q(p)));
            if page.status == StatusCode::OK {
                assert_inert(path, &page.text, p);
            } else {
                assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}: {}", page.text);
                assert!(!page.location().unwrap_or_default().contains('<'));
            }
        }

        // A hostile language cookie and Accept-Language are ignored, not reflected.
        let mut other = Browser::from(&d, "127.0.0.2");
        other.jar.insert(LANG_COOKIE.into(), enc(p));
        other.extra.push(("accept-language".into(), p.to_string()));
        let page = other.get("/ui/login");
        assert_eq!(page.status, StatusCode::OK);
        assert_inert("lang cookie", &page.text, p);
        assert!(
            page.text.contains("<html lang=\"en\">"),
            "falls back to English"
        );
    }
}

/// Markup sent raw in the request target (as a proxy can, unencoded) is refused or escaped:
/// the page's own "come back here" fields carry the path and query.
#[test]
fn raw_markup_in_the_request_target_is_refused_or_escaped() {
    let d = Device::start();
    for target in [
        "/ui/login?next=\"><script>alert(1)</script>",
        "/ui/login?expired='><svg/onload=alert(1)>",
        "/ui/security?x=</textarea><script>alert(1)</script>",
        "/ui/security?\"onmouseover=\"alert(1)",
        "/ui/login?next=javascript:alert(1)",
    ] {
        let Some(r) = raw_get(&d, target.as_bytes(), "") else {
            continue; // refused by closing the connection: fine
        };
        let text = r.text();
        match r.status {
            200 => {
                assert_clean_html(target, &text);
                for bad in ["<script>alert", "<svg/onload", "\"onmouseover"] {
                    assert!(!text.contains(bad), "{target}: {bad} is live:\n{text}");
                }
            }
            400 | 404 => {}
            s => panic!("{target}: {s} {text}"),
        }
    }
    assert!(healthy(&d));
}

/// First setup: the fields are passwords and never shown again; a payload in them (or a
/// mismatch) gives an inert page. The live rule check answers JSON (nosniff), which the page
/// script only ever sets as text, and does not echo the candidate.
#[test]
fn setup_fields_and_the_live_password_check_come_back_inert() {
    let d = Device::start();
    let label = d.label_password.clone().unwrap();
    let mut b = Browser::new(&d);
    let p = b.login("admin", &label);
    assert_eq!(p.location(), Some("/ui/setup"), "{}", p.text);
    for p in PAYLOADS {
        let r = b.submit("/ui/setup", &[("current", p), ("new", p), ("confirm", p)]);
        assert!(r.status.is_client_error(), "{}: {}", r.status, r.text);
        assert_inert("POST /ui/setup", &r.text, p);
        let r = b.submit(
            "/ui/setup",
            &[("current", &label), ("new", p), ("confirm", "other")],
        );
        assert_inert("POST /ui/setup mismatch", &r.text, p);

        let r = b.submit("/ui/password/check", &[("password", p)]);
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let ct = r.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{ct}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        // Some payloads are acceptable passwords (long, not common); either way the answer
        // is JSON and does not repeat the candidate.
        let v: Value = serde_json::from_str(&r.text).expect("JSON");
        assert!(v["ok"].is_boolean(), "{v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(!msg.contains(p), "the check echoes the candidate: {msg}");
    }
    // The session is still the label-password one: nothing was changed.
    assert_eq!(b.get("/ui/").location(), Some("/ui/setup"));
}

/// Users page: the create form's username and role, the `done=` notice, and user names in
/// the path. Names are validated, so the refusal shows the payload escaped in the field and a
/// payload can never be stored as a user (the API refuses it too); the list stays clean.
#[test]
fn user_administration_fields_come_back_inert_and_no_payload_is_stored() {
    let (_d, admin, mut b) = device_with_admin();
    b.reauth(ADMIN_PASSWORD);
    for p in PAYLOADS {
        let r = b.submit("/ui/users", &[("username", p), ("role", "viewer")]);
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{p}: {}",
            r.text
        );
        assert_inert("POST /ui/users username=", &r.text, p);
        assert_eq!(
            r.input(Some("create-form"), "username").as_deref(),
            Some(*p),
            "the refused name is shown back as text"
        );
        assert!(r.has_id("create-error"));

        // A role longer than any role name is out of range (400); a short unknown one is
        // refused by name (422).
        let r = b.submit("/ui/users", &[("username", "zz-ok"), ("role", p)]);
        assert!(
            matches!(r.status.as_u16(), 400 | 422),
            "{}: {}",
            r.status,
            r.text
        );
        assert_inert("POST /ui/users role=", &r.text, p);

        let page = b.get(&format!("/ui/users?done={}", q(p)));
        assert_eq!(page.status, StatusCode::OK);
        assert_inert("GET /ui/users?done=", &page.text, p);
        assert!(!page.has_id("notice"), "an unknown done= shows nothing");

        for suffix in ["", "/delete", "/reset"] {
            let path = format!("/ui/users/{}{suffix}", q(p));
            let r = b.submit(&path, &[("role", "viewer")]);
            assert!(r.status.is_client_error(), "{path}: {}", r.status);
            if r.header("content-type")
                .unwrap_or_default()
                .starts_with("text/html")
            {
                assert_inert(&path, &r.text, p);
            }
        }

        let r = admin.post(
            "/api/v1/users",
            &serde_json::json!({"username": p, "role": "viewer"}),
        );
        assert!(r.status.is_client_error(), "the API stores {p}: {}", r.text);
    }
    assert!(user(&admin, "zz-ok").is_none());
    assert_eq!(users(&admin).len(), 1, "nothing was created");
    let page = b.get("/ui/users");
    assert_clean_html("GET /ui/users", &page.text);
}

/// Stored XSS: an API token's name is chosen by the user and shown on the account page. A
/// payload there is either refused (the refusal inert) or stored and shown as text.
#[test]
fn token_names_are_shown_as_text_on_the_account_page() {
    let (_d, _admin, mut b) = device_with_admin();
    b.reauth(ADMIN_PASSWORD);
    let mut stored = Vec::new();
    for p in PAYLOADS {
        let r = b.submit(
            "/ui/account/tokens",
            &[("name", p), ("role", "viewer"), ("days", "30")],
        );
        assert_inert("POST /ui/account/tokens", &r.text, p);
        match r.status {
            StatusCode::OK => {
                assert!(r.has_id("new-token"), "{}", r.text);
                assert_eq!(
                    r.header("cache-control"),
                    Some("no-store"),
                    "a secret is cached"
                );
                stored.push(*p);
            }
            s => assert!(s.is_client_error(), "{s}: {}", r.text),
        }
        for bad in [("role", *p), ("days", *p)] {
            let mut fields = vec![("name", "ok"), ("role", "viewer"), ("days", "30")];
            fields.retain(|(k, _)| *k != bad.0);
            fields.push(bad);
            let r = b.submit("/ui/account/tokens", &fields);
            assert!(r.status.is_client_error(), "{bad:?}: {}", r.status);
            assert_inert("POST /ui/account/tokens (bad field)", &r.text, p);
        }
    }
    let page = b.get("/ui/account?done=%3Cscript%3Ealert(1)%3C/script%3E");
    assert_eq!(page.status, StatusCode::OK);
    assert_clean_html("GET /ui/account", &page.text);
    for p in &stored {
        assert_inert("GET /ui/account", &page.text, p);
        assert!(
            page.tags()
                .iter()
                .any(|t| t.name == "tr" && t.attr("data-token").is_some()),
            "the stored tokens are listed"
        );
        let cells: Vec<String> = page
            .text
            .split("<td>")
            .skip(1)
            .map(|c| unescape(c.split('<').next().unwrap_or_default()))
            .collect();
        assert!(
            cells.iter().any(|c| c == p),
            "{p} is listed as text: {cells:?}"
        );
    }
}

/// TOTP enrolment: the code, and the secret and setup link the confirmation form carries back,
/// come back inert; only an `otpauth://totp/` link is ever put in an href.
#[test]
fn totp_enrolment_fields_come_back_inert() {
    let (_d, _admin, mut b) = device_with_admin();
    for p in PAYLOADS {
        let link = format!("otpauth://totp/{p}");
        for uri in [p.to_string(), link.clone()] {
            let r = b.submit(
                "/ui/account/mfa/totp/verify",
                &[("code", "123456"), ("secret", p), ("uri", &uri)],
            );
            assert!(r.status.is_client_error(), "{}: {}", r.status, r.text);
            assert_inert("POST totp/verify secret= uri=", &r.text, p);
            for t in r.tags() {
                if let Some(h) = t.attr("href").filter(|h| h.contains("alert")) {
                    assert_eq!(h, link, "only an otpauth link is kept");
                }
            }
        }
        let r = b.submit("/ui/account/mfa/totp/verify", &[("code", p)]);
        assert!(r.status.is_client_error(), "{}: {}", r.status, r.text);
        assert_inert("POST totp/verify code=", &r.text, p);

        let page = b.get(&format!("/ui/account/mfa?done={}", q(p)));
        assert_inert("GET /ui/account/mfa?done=", &page.text, p);
    }
}

/// The second step of a login (a pending login of an account with TOTP): `next=` and the
/// code come back inert.
#[test]
fn the_second_factor_step_comes_back_inert() {
    let d = Device::start();
    let admin = d.admin();
    // Many wrong codes follow: keep the account lock out of the way.
    set_auth_settings(&admin, |s| s["lockout_threshold"] = serde_json::json!(100));
    let _totp = enable_totp(&admin, ADMIN_PASSWORD);
    for p in PAYLOADS {
        let mut b = Browser::from(&d, "127.0.0.3");
        let r = b.login_next("admin", ADMIN_PASSWORD, p);
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        let to = r.location().unwrap().to_string();
        assert!(to.starts_with("/ui/login/verify"), "{to}");
        assert!(b.jar.contains_key(LOGIN_COOKIE));
        let page = b.get(&format!("/ui/login/verify?next={}", q(p)));
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_inert("GET /ui/login/verify?next=", &page.text, p);
        let r = b.submit("/ui/login/verify", &[("code", p), ("next", p)]);
        assert_inert("POST /ui/login/verify code=", &r.text, p);
        assert!(b.session().is_none(), "no session from a payload");
    }
}

/// Management access: both textareas keep what was typed (a payload is not an address, so
/// the form comes back with the line named) — escaped, so `</textarea>` cannot close them.
#[test]
fn access_list_lines_come_back_inert() {
    let (_d, admin, mut b) = device_with_admin();
    b.reauth(ADMIN_PASSWORD);
    let before = admin.get("/api/v1/settings/access").body;
    for p in PAYLOADS {
        for (field, other) in [("allow", "trusted"), ("trusted", "allow")] {
            let text = format!("127.0.0.0/8\n{p}");
            let r = b.submit("/ui/access", &[(field, &text), (other, "")]);
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
            assert_inert("POST /ui/access", &r.text, p);
            assert_eq!(
                r.input(Some("access-form"), field).as_deref(),
                Some(text.as_str()),
                "the typed lines come back as the textarea's text"
            );
            let error = r
                .text_of(&format!("{field}-error"))
                .expect("the bad line is named");
            assert!(error.contains('2') && !error.contains(p), "{error}");
        }
        let page = b.get(&format!("/ui/access?done={}", q(p)));
        assert_inert("GET /ui/access?done=", &page.text, p);
        assert!(!page.has_id("notice"));
    }
    assert_eq!(admin.get("/api/v1/settings/access").body, before);
}

/// The re-authentication prompt keeps the interrupted form's fields and `next=`: payloads in
/// field values come back escaped, hostile field names are dropped, and a hostile `action` or
/// `next` is not kept.
#[test]
fn the_reauthentication_prompt_keeps_fields_inert() {
    let (_d, admin, mut b) = device_with_admin();
    for p in PAYLOADS {
        let r = b.submit(
            "/ui/users",
            &[("username", p), ("role", "viewer"), (p, "x"), ("next", p)],
        );
        assert_eq!(r.status, StatusCode::FORBIDDEN, "reauth prompt: {}", r.text);
        assert!(r.has_id("reauth-form"), "{}", r.text);
        assert_inert("reauth prompt", &r.text, p);
        let (_, fields) = r.form(Some("reauth-form"));
        assert!(
            fields.contains(&("keep.username".to_string(), p.to_string())),
            "{fields:?}"
        );
        assert!(
            !fields.iter().any(|(k, _)| k.contains(p)),
            "a hostile field name is kept: {fields:?}"
        );

        let page = b.get(&format!("/ui/reauth?next={}", q(p)));
        assert_eq!(page.status, StatusCode::OK);
        assert_inert("GET /ui/reauth?next=", &page.text, p);
        assert_eq!(
            page.input(Some("reauth-form"), "next").as_deref(),
            Some("/ui/")
        );

        let r = b.submit(
            "/ui/reauth",
            &[
                ("password", WRONG_PASSWORD),
                ("action", p),
                ("next", p),
                ("keep.username", p),
                ("code", p),
            ],
        );
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_inert("POST /ui/reauth (wrong password)", &r.text, p);
        let (_, fields) = r.form(Some("reauth-form"));
        assert!(
            !fields.iter().any(|(k, v)| k == "action" && v == p),
            "{fields:?}"
        );
    }
    assert_eq!(users(&admin).len(), 1);
}

/// Every GET page of the UI (from the registry), logged in, with the payloads in `next=`,
/// `done=`, `expired=` and an unknown parameter: inert, or a redirect to a page of ours.
#[test]
fn every_page_reflects_hostile_query_parameters_inert() {
    let (_d, _admin, mut b) = device_with_admin();
    b.reauth(ADMIN_PASSWORD);
    let pages = get_pages();
    assert!(pages.len() >= 8, "{pages:?}");
    for page in &pages {
        for p in PAYLOADS {
            let path = format!("{page}?next={0}&done={0}&expired={0}&{0}={0}", q(p));
            let r = b.get(&path);
            match r.status {
                StatusCode::OK => assert_inert(&path, &r.text, p),
                StatusCode::SEE_OTHER => {
                    let to = r.location().unwrap_or_default();
                    assert!(
                        to.starts_with("/ui/") && !to.contains(['<', '"', '\'', ':']),
                        "{path} -> {to}"
                    );
                }
                s => panic!("{path}: {s} {}", r.text),
            }
        }
    }
}

/// The language switch takes only `en` or `ja`: anything else sets no cookie and is not
/// reflected.
#[test]
fn the_language_switch_takes_only_known_languages() {
    let d = Device::start();
    let mut b = Browser::new(&d);
    for p in PAYLOADS {
        let r = b.submit("/ui/language", &[("lang", p), ("next", "/ui/login")]);
        assert!(
            r.status == StatusCode::SEE_OTHER || r.status == StatusCode::BAD_REQUEST,
            "{}: {}",
            r.status,
            r.text
        );
        assert!(r.cookie(LANG_COOKIE).is_none(), "{:?}", r.set_cookies());
        assert_inert("POST /ui/language", &r.text, p);
    }
    let r = b.submit("/ui/language", &[("lang", "ja"), ("next", "/ui/login")]);
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.cookie(LANG_COOKIE).unwrap().value, "ja");
}

/// A hostile `Host` header (a proxy can send any) is never reflected live: the second-factor
/// page names the host the browser used, escaped; the login page is unaffected.
#[test]
fn a_hostile_host_header_is_escaped() {
    let (d, _admin, b) = device_with_admin();
    let cookie = format!("Cookie: {SESSION_COOKIE}={}\r\n", b.session().unwrap());
    for host in [
        "<script>alert(1)</script>",
        "evil.example\"><svg onload=alert(1)>",
        "'><img src=x onerror=alert(1)>",
    ] {
        for (path, extra) in [("/ui/account/mfa", cookie.as_str()), ("/ui/login", "")] {
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
            let Some(r) = raw_request(&d, req.as_bytes()) else {
                continue;
            };
            eprintln!("{path} Host: {host} -> {}", r.status);
            match r.status {
                200 => {
                    let what = format!("{path} Host: {host}");
                    assert_inert(&what, &r.text(), host);
                    if path == "/ui/account/mfa" {
                        let page = Page {
                            status: reqwest::StatusCode::OK,
                            headers: Default::default(),
                            text: r.text(),
                        };
                        let note = page.text_of("key-wrong-host").unwrap_or_default();
                        assert!(note.contains(host), "{what}: shown as text: {note:?}");
                    }
                }
                400 | 421 => {}
                s => panic!("{path} Host: {host}: {s} {}", r.text()),
            }
        }
    }
}
