//! Path traversal (CWE-22) on `/assets/{name}`, sent raw so that no client library normalises
//! the path first: no encoding, separator, NUL or length trick reaches a file; only the
//! embedded assets are served, with their type, `nosniff` and an immutable cache.

use crate::common::*;
use crate::support::*;

/// What the answer to a traversal attempt must never contain: pieces of files on the device.
const FILE_MARKERS: &[&str] = &[
    "[package]",
    "[workspace]",
    "root:x:0:0",
    "root:*:",
    "BEGIN PRIVATE KEY",
    "BEGIN CERTIFICATE",
    "[fonts]",
    "/bin/sh",
];

const KNOWN: &[(&str, &str)] = &[
    ("ui.css", "text/css; charset=utf-8"),
    ("ui.js", "text/javascript; charset=utf-8"),
    ("icon.svg", "image/svg+xml"),
];

/// CWE-22: dot segments plain, encoded, double-encoded, overlong-UTF-8 and with backslashes;
/// absolute paths; NUL bytes; suffixes and case variants of real names; empty and very long
/// names — each is 400 or 404 (or the connection is closed), never 200 and never a file.
#[test]
fn asset_names_cannot_reach_the_file_system() {
    let d = Device::start();
    let long = format!("/assets/{}", "a".repeat(8000));
    let deep = format!("/assets/{}Cargo.toml", "..%2f".repeat(64));
    let mut targets: Vec<Vec<u8>> = [
        "/assets/../Cargo.toml",
        "/assets/../../../../../../etc/passwd",
        "/assets/..%2fCargo.toml",
        "/assets/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/%2e%2e%2fCargo.toml",
        "/assets/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/assets/%252e%252e%252fCargo.toml",
        "/assets/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "/assets/%c0%ae%c0%ae%c0%afCargo.toml",
        "/assets/%c0%ae%c0%ae/Cargo.toml",
        "/assets/..\\Cargo.toml",
        "/assets/..%5cCargo.toml",
        "/assets/..%5c..%5c..%5cetc%5cpasswd",
        "/assets/....//....//etc/passwd",
        "/assets/..;/Cargo.toml",
        "/assets/%2fetc%2fpasswd",
        "/assets//etc/passwd",
        "/assets/C:%5cWindows%5cwin.ini",
        "/assets/file:%2f%2f%2fetc%2fpasswd",
        "/assets/ui.css%00",
        "/assets/ui.css%00.png",
        "/assets/..%00/Cargo.toml",
        "/assets/ui.css/",
        "/assets/ui.css/..",
        "/assets/ui.css%2f..%2f..%2fCargo.toml",
        "/assets/UI.CSS",
        "/assets/ui.css.bak",
        "/assets/.ui.css.swp",
        "/assets/./ui.css%2f..",
        "/assets/",
        "/assets",
        "/assets/%20",
        "/assets/*",
        "/assets/ui.*",
        "/assets/device-key.pem",
        "/assets/tls%2fdevice-key.pem",
        "/assets/..%2f..%2fstate%2ftls%2fdevice-key.pem",
        "/ui/../assets/../Cargo.toml",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/assets/../../../../proc/self/environ",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    targets.push(long.into_bytes());
    targets.push(deep.into_bytes());
    targets.push(b"/assets/ui.css\0".to_vec());
    targets.push(b"/assets/..\0/Cargo.toml".to_vec());
    targets.push(b"/assets/\xc0\xae\xc0\xae/Cargo.toml".to_vec());
    targets.push(b"/assets/\xff\xfe".to_vec());

    let known_bodies: Vec<Vec<u8>> = KNOWN
        .iter()
        .map(|(name, _)| {
            raw_get(&d, format!("/assets/{name}").as_bytes(), "")
                .unwrap()
                .body
        })
        .collect();
    for t in &targets {
        let shown = String::from_utf8_lossy(t)
            .chars()
            .take(120)
            .collect::<String>();
        let Some(r) = raw_get(&d, t, "") else {
            eprintln!("{shown:?}: connection closed without an answer");
            continue;
        };
        let text = r.text();
        assert!(
            matches!(r.status, 400 | 404 | 414 | 431),
            "{shown:?}: {} {text}",
            r.status
        );
        for m in FILE_MARKERS {
            assert!(!text.contains(m), "{shown:?}: the answer holds {m:?}");
        }
        assert!(
            !known_bodies.contains(&r.body),
            "{shown:?} served an asset under another name"
        );
    }
    assert!(healthy(&d), "the device stopped answering");
}

/// The embedded assets: the right Content-Type, `nosniff`, an immutable year-long cache, the
/// security headers, also with the `?v=` the pages use; HEAD works, other methods are 405;
/// the SVG icon (opened directly, an SVG is a document) carries no script.
#[test]
fn known_assets_are_served_with_their_type_nosniff_and_an_immutable_cache() {
    let d = Device::start();
    for (name, ct) in KNOWN {
        for target in [
            format!("/assets/{name}"),
            format!("/assets/{name}?v=0123456789ab"),
        ] {
            let r = raw_get(&d, target.as_bytes(), "").expect("an answer");
            assert_eq!(r.status, 200, "{target}: {}", r.text());
            assert_eq!(r.header("content-type"), Some(*ct), "{target}");
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            let cache = r.header("cache-control").unwrap_or_default();
            assert!(
                cache.contains("immutable") && cache.contains("max-age=31536000"),
                "{target}: {cache}"
            );
            assert!(r.header("set-cookie").is_none(), "{target}");
            assert!(r.header("server").is_none(), "{target}");
            let csp = r.header("content-security-policy").unwrap_or_default();
            assert!(csp.contains("default-src 'self'"), "{target}: {csp}");
            assert!(!r.body.is_empty());
        }
        let head = raw_request(
            &d,
            format!(
                "HEAD /assets/{name} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                d.addr
            )
            .as_bytes(),
        )
        .expect("an answer to HEAD");
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty(), "HEAD has no body");
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = raw_request(
                &d,
                format!(
                    "{method} /assets/{name} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                    d.addr
                )
                .as_bytes(),
            )
            .expect("an answer");
            assert_eq!(r.status, 405, "{method} /assets/{name}: {}", r.text());
        }
    }
    let svg = raw_get(&d, b"/assets/icon.svg", "").unwrap().text();
    for t in tags(&svg) {
        assert!(t.name != "script" && t.name != "foreignobject", "{t:?}");
        for (n, v) in &t.attrs {
            assert!(!n.starts_with("on"), "icon.svg: {n}={v}");
            assert!(!v.to_ascii_lowercase().contains("javascript:"), "{n}={v}");
        }
    }
    let js = raw_get(&d, b"/assets/ui.js", "").unwrap().text();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(sink), "ui.js uses the HTML sink {sink}");
    }
}
