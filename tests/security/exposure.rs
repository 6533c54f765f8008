//! S3.1-24 (minimal unauthenticated information), S3.1-20 (HTTPS only, hardened answers) and
//! S3.1-01 R7 (source allowlist).

use std::io::{Read, Write};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

const MODEL: &str = "MG-EXPOSE-7";
const SERIAL: &str = "SN-EXPOSE-0042";

/// What must not reach an unauthenticated client on this device.
fn forbidden() -> Vec<String> {
    let mut w: Vec<String> = SOFTWARE_WORDS.iter().map(|s| s.to_string()).collect();
    w.push(MODEL.into());
    w.push(SERIAL.into());
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        w.push(release.trim().to_string());
    }
    w
}

fn concrete(path: &str) -> String {
    path.replace("{username}", "admin")
        .replace("{id}", "0123456789abcdef")
}

fn send(c: &reqwest::blocking::Client, d: &Device, method: &str, path: &str) -> Answer {
    let mut req = c.request(method.to_uppercase().parse().unwrap(), d.url(path));
    if method != "get" && method != "delete" {
        req = req.json(&json!({}));
    }
    answer(req.send().unwrap())
}

/// S3.1-24 R2, S3.1-01 R1: without credentials every endpoint but login and the liveness probe
/// answers 401 `unauthenticated` (console-only ones 404, they do not exist on the network), also
/// with a forged cookie or token; no answer names the software, its version, the kernel, the
/// model or the serial, and each carries the security headers.
#[test]
fn unauthenticated_requests_get_401_or_404_and_reveal_nothing() {
    let d = Device::start_with(&["--model", MODEL, "--serial", SERIAL]);
    let admin = d.admin();
    let doc = admin.get("/api/v1/openapi.json").body;
    let words = forbidden();
    let anon = raw_client(&d, "127.0.0.2");
    let mut checked = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let p = concrete(path);
            let what = format!("{} {p}", method.to_uppercase());
            if path == "/healthz" || path == "/api/v1/auth/login" {
                assert_eq!(op["security"], json!([]), "{what} is public");
                continue;
            }
            let console_only = op["x-mamori-console-only"] == true;
            let (status, code) = if console_only {
                (StatusCode::NOT_FOUND, "not_found")
            } else {
                (StatusCode::UNAUTHORIZED, "unauthenticated")
            };
            let plain = send(&anon, &d, method, &p);
            let forged_cookie = answer(
                anon.request(method.to_uppercase().parse().unwrap(), d.url(&p))
                    .header(
                        "cookie",
                        format!("__Host-mamori-session={}", "cd".repeat(32)),
                    )
                    .send()
                    .unwrap(),
            );
            let forged_token = answer(
                anon.request(method.to_uppercase().parse().unwrap(), d.url(&p))
                    .header("authorization", format!("Bearer mamori_{}", "a".repeat(52)))
                    .send()
                    .unwrap(),
            );
            for (how, a) in [
                ("no credentials", &plain),
                ("forged cookie", &forged_cookie),
                ("forged token", &forged_token),
            ] {
                assert_eq!(
                    (a.status, a.code()),
                    (status, code),
                    "{what} with {how}: {}",
                    a.text
                );
                assert_security_headers(&what, &a.headers);
                assert_reveals_nothing(&what, a, &words);
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} endpoints checked");

    // The public endpoints and the usual probes reveal nothing either.
    let mut probes = vec![
        ("/healthz", send(&anon, &d, "get", "/healthz")),
        (
            "failed login",
            anon.post(d.url("/api/v1/auth/login"))
                .json(&json!({"username": "admin", "password": "Wrong-Guess-Hammer-71"}))
                .send()
                .map(answer)
                .unwrap(),
        ),
        (
            "malformed login",
            anon.post(d.url("/api/v1/auth/login"))
                .header("content-type", "application/json")
                .body("{\"username\":")
                .send()
                .map(answer)
                .unwrap(),
        ),
        (
            "login without JSON",
            anon.post(d.url("/api/v1/auth/login"))
                .body("username=admin")
                .send()
                .map(answer)
                .unwrap(),
        ),
        (
            "oversized login",
            anon.post(d.url("/api/v1/auth/login"))
                .json(&json!({"username": "x".repeat(20_000), "password": "x"}))
                .send()
                .map(answer)
                .unwrap(),
        ),
        ("GET login", send(&anon, &d, "get", "/api/v1/auth/login")),
        ("PUT healthz", send(&anon, &d, "put", "/healthz")),
    ];
    for p in [
        "/",
        "/index.html",
        "/robots.txt",
        "/.git/config",
        "/server-status",
        "/api",
        "/api/v1",
        "/api/v2/users",
        "/api/v1/users/",
        "/api/v1/debug",
        "/api/v1/version",
        "/metrics",
    ] {
        probes.push((p, send(&anon, &d, "get", p)));
    }
    for (what, a) in &probes {
        assert!(a.status.as_u16() < 500, "{what}: {} {}", a.status, a.text);
        assert_security_headers(what, &a.headers);
        assert_reveals_nothing(what, a, &words);
        if !a.status.is_success() {
            assert!(
                a.body["error"]["code"].is_string(),
                "{what}: error is not JSON: {:?}",
                a.text
            );
        }
    }
    assert_eq!(probes[0].1.text, "ok");
    // "/" is the web UI's front door: it leads to the login page, which names nothing either.
    let (_, front) = &probes[7];
    assert!(
        front.text.contains("id=\"login-form\""),
        "/: {}",
        front.text
    );
    for (what, a) in &probes[8..] {
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{what}"
        );
    }
}

/// S3.1-24: `/healthz` answers exactly `ok`, as text, with nothing else to fingerprint.
#[test]
fn healthz_answers_exactly_ok() {
    let d = Device::start();
    let r = answer(
        raw_client(&d, "127.0.0.2")
            .get(d.url("/healthz"))
            .send()
            .unwrap(),
    );
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text, "ok");
    assert_security_headers("/healthz", &r.headers);
    let mut names: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
    names.sort();
    eprintln!("/healthz headers: {names:?}");
    for n in &names {
        assert!(
            !n.starts_with("x-powered") && *n != "server" && *n != "via" && !n.contains("version"),
            "{n}"
        );
    }
}

/// S3.1-20: authenticated answers (200, 201, 204, 403) carry the same security headers and no
/// `Server` header.
#[test]
fn authenticated_answers_carry_the_security_headers_too() {
    let d = Device::start();
    let admin = d.admin();
    let mut answers = vec![
        ("device", admin.get("/api/v1/device")),
        ("users", admin.get("/api/v1/users")),
        (
            "403 reauth",
            admin.post(
                "/api/v1/users",
                &json!({"username": "zz-hdr", "role": "viewer"}),
            ),
        ),
    ];
    admin.reauth(ADMIN_PASSWORD);
    answers.push((
        "201",
        admin.post(
            "/api/v1/users",
            &json!({"username": "zz-hdr", "role": "viewer"}),
        ),
    ));
    answers.push(("204", admin.delete("/api/v1/users/zz-hdr")));
    let expected = [200, 200, 403, 201, 204];
    for ((what, a), want) in answers.iter().zip(expected) {
        assert_eq!(a.status.as_u16(), want, "{what}: {}", a.text);
        assert_security_headers(what, &a.headers);
    }
}

/// S3.1-20 R5b: the management port speaks TLS only; a plain HTTP request gets no HTTP answer.
#[test]
fn plain_http_on_the_tls_port_gets_no_http_answer() {
    let d = Device::start();
    let mut s = tcp_from("127.0.0.2", d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    eprintln!(
        "plain HTTP got {} bytes back: {:02x?}",
        buf.len(),
        &buf[..buf.len().min(16)]
    );
    assert!(!text.contains("HTTP/"), "an HTTP answer: {text:?}");
    assert!(!text.contains("ok"), "{text:?}");
    if let Some(first) = buf.first() {
        assert_eq!(
            *first, 0x15,
            "only a TLS alert record may come back: {buf:02x?}"
        );
    }
    // And the device is unharmed.
    assert_eq!(
        raw_client(&d, "127.0.0.1")
            .get(d.url("/healthz"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok"
    );
}

/// S3.1-01 R7: with an allowlist of 127.0.0.1/32 (no confirmation needed: it includes the
/// caller), a connection from 127.0.0.9 is closed before the TLS handshake completes and the
/// audit log has `connection_refused` (once a minute per source); 127.0.0.1 keeps working.
#[test]
fn a_source_outside_the_allowlist_is_cut_off_before_tls() {
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.put(
        "/api/v1/settings/access",
        &json!({"allow": ["127.0.0.1/32"], "trusted": []}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let cfg = || mamori_crypto::tls::client_config(d.roots()).unwrap();
    for _ in 0..3 {
        let e = handshake(d.addr, "127.0.0.9", cfg()).expect_err("handshake from 127.0.0.9");
        eprintln!("127.0.0.9: {e}");
    }
    assert!(
        raw_client(&d, "127.0.0.9")
            .get(d.url("/healthz"))
            .send()
            .is_err(),
        "HTTPS from 127.0.0.9 must fail"
    );
    // No byte of TLS comes back: the server closes without a ServerHello.
    let mut s = tcp_from("127.0.0.9", d.addr).unwrap();
    let _ = s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "the refused peer got {} bytes", buf.len());

    handshake(d.addr, "127.0.0.1", cfg()).expect("127.0.0.1 is allowed");
    let all = audit(&admin);
    let refused: Vec<&Value> = events(&all, "connection_refused")
        .into_iter()
        .filter(|e| e["source"] == "127.0.0.9")
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one record per source per minute: {refused:?}"
    );
    assert_eq!(refused[0]["details"]["reason"], "source_not_allowed");
}

/// S3.1-01 R7: an allowlist that would cut off the caller is refused with 409
/// `confirmation_required` and changes nothing; confirmed, it applies (the caller is cut off),
/// and the console, which no allowlist reaches, undoes it.
#[test]
fn an_allowlist_that_excludes_the_caller_needs_confirmation() {
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    let before = admin.get("/api/v1/settings/access").body;
    let r = admin.put(
        "/api/v1/settings/access",
        &json!({"allow": ["10.0.0.0/8"], "trusted": []}),
    );
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "confirmation_required"),
        "{}",
        r.text
    );
    assert_eq!(admin.get("/api/v1/settings/access").body, before);
    assert_eq!(admin.get("/healthz").text, "ok");

    let r = admin.put(
        "/api/v1/settings/access",
        &json!({"allow": ["10.0.0.0/8"], "trusted": [], "confirm": true}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(
        raw_client(&d, "127.0.0.1")
            .get(d.url("/healthz"))
            .send()
            .is_err(),
        "the confirmed allowlist applies to the caller too"
    );

    let login = console_login(&d, "admin", ADMIN_PASSWORD);
    assert_eq!(login.status, 200, "{}", login.text);
    let cookie = login.session_cookie().unwrap();
    let r = console(
        &d,
        "POST",
        "/api/v1/auth/reauth",
        Some(&json!({"password": ADMIN_PASSWORD})),
        Some(&cookie),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = console(
        &d,
        "PUT",
        "/api/v1/settings/access",
        Some(&json!({"allow": [], "trusted": []})),
        Some(&cookie),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        raw_client(&d, "127.0.0.1")
            .get(d.url("/healthz"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok"
    );
}

/// S3.1-24 R2: the certificate every TLS peer sees before logging in names neither the
/// software nor the model nor the serial.
#[test]
fn the_certificate_shown_before_login_names_neither_software_model_nor_serial() {
    let d = Device::start_with(&["--model", MODEL, "--serial", SERIAL]);
    let path = d.cert_path();
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", path.to_str().unwrap()]);
    assert!(ok, "{text}");
    let lower = text.to_lowercase();
    for w in ["mamori", &MODEL.to_lowercase(), &SERIAL.to_lowercase()] {
        assert!(!lower.contains(w), "the certificate names {w:?}:\n{text}");
    }
}
