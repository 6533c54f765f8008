//! Helpers of the web UI attack suite: a "browser" whose cookies are set by hand, a small HTML
//! tag reader for the inertness checks, raw TLS requests (for paths a URL library would
//! normalise), the UI's route list, and API shortcuts for preparing a device.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use mamori_auth::model::{Permission, Role};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::*;

pub const SESSION_COOKIE: &str = "__Host-mamori-session";
pub const CSRF_COOKIE: &str = "__Host-csrf";
pub const LOGIN_COOKIE: &str = "__Host-login";
pub const LANG_COOKIE: &str = "__Host-lang";

/// The password a test user is created with (must be changed at first login).
pub const INITIAL_PASSWORD: &str = "Mosaic-Tundra-82-amber";
/// The password a test user sets at first login.
pub const USER_PASSWORD: &str = "Orbit-Saffron-39-gentle";
/// A wrong password that is not close to any of the above.
pub const WRONG_PASSWORD: &str = "Wrong-Guess-Hammer-71";

/// The classic payloads a scanner throws at every field.
pub const PAYLOADS: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "'><svg onload=alert(1)>",
    "{{7*7}}",
    "</textarea><script>alert(1)</script>",
];

/// Words that must never reach a client before login: the software and its parts.
pub const SOFTWARE_WORDS: &[&str] = &[
    "mamori", "0.1.0", "rustls", "hyper", "axum", "tokio", "askama", "serde", "linux", "debian",
];

/// What the forged-form refusal says (the guard's text, in both languages).
pub const FORGED_EN: &str = "did not come from this device's own pages";
pub const FORGED_JA: &str = "この機器の画面から送信されたものではない";

// ------------------------------------------------------------------------------- encoding

/// Percent-encodes a form or query value (everything but unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An `application/x-www-form-urlencoded` body.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes the HTML character references askama and browsers produce.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

// ------------------------------------------------------------------------------- HTML

/// One start tag of a page, with its attributes decoded, and the raw text of the elements
/// whose content is not markup (script, style, textarea, title).
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub raw_text: Option<String>,
}

impl Tag {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// Reads the start tags of `html` the way an HTML tokenizer does (quoted attribute values,
/// comments, raw-text elements), so markup that a payload smuggled in is seen as markup and
/// escaped text is seen as text.
pub fn tags(html: &str) -> Vec<Tag> {
    let b = html.as_bytes();
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        let s = i + off;
        let rest = &html[s..];
        if rest.starts_with("<!--") {
            i = html[s + 4..].find("-->").map_or(b.len(), |e| s + 4 + e + 3);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("</") || rest.starts_with("<?") {
            i = html[s..].find('>').map_or(b.len(), |e| s + e + 1);
            continue;
        }
        let mut j = s + 1;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-' || b[j] == b':') {
            j += 1;
        }
        if j == s + 1 {
            i = s + 1;
            continue;
        }
        let name = html[s + 1..j].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while j < b.len() && (is_space(b[j]) || b[j] == b'/') {
                j += 1;
            }
            if j >= b.len() {
                break;
            }
            if b[j] == b'>' {
                j += 1;
                break;
            }
            let a = j;
            j += 1; // the first character may be '='
            while j < b.len() && !is_space(b[j]) && !matches!(b[j], b'/' | b'>' | b'=') {
                j += 1;
            }
            let attr = html[a..j].to_ascii_lowercase();
            while j < b.len() && is_space(b[j]) {
                j += 1;
            }
            let mut value = String::new();
            if j < b.len() && b[j] == b'=' {
                j += 1;
                while j < b.len() && is_space(b[j]) {
                    j += 1;
                }
                if j < b.len() && (b[j] == b'"' || b[j] == b'\'') {
                    let q = b[j];
                    let v = j + 1;
                    j = v;
                    while j < b.len() && b[j] != q {
                        j += 1;
                    }
                    value = unescape(&html[v..j.min(b.len())]);
                    j = (j + 1).min(b.len());
                } else {
                    let v = j;
                    while j < b.len() && !is_space(b[j]) && b[j] != b'>' {
                        j += 1;
                    }
                    value = unescape(&html[v..j]);
                }
            }
            attrs.push((attr, value));
        }
        let mut raw_text = None;
        if matches!(name.as_str(), "script" | "style" | "textarea" | "title") {
            let close = format!("</{name}");
            let end = lower[j..].find(&close).map_or(b.len(), |e| j + e);
            raw_text = Some(html[j..end].to_string());
            j = end;
        }
        out.push(Tag {
            name,
            attrs,
            raw_text,
        });
        i = j;
    }
    out
}

/// Whether a URL in an attribute stays on this device: a path of ours, a fragment, nothing,
/// or the authenticator link of the TOTP enrolment page.
fn local_url(v: &str) -> bool {
    let v = v.trim();
    v.is_empty()
        || v.starts_with('#')
        || (v.starts_with('/') && !v.starts_with("//") && !v.starts_with("/\\"))
        || v.starts_with("otpauth://totp/")
}

const URL_ATTRS: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "xlink:href",
    "poster",
    "background",
    "ping",
    "data",
    "codebase",
];

/// Elements no page of ours has and every injection wants.
const FORBIDDEN_ELEMENTS: &[&str] = &[
    "style",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "base",
    "img",
    "image",
    "math",
    "portal",
    "video",
    "audio",
    "source",
    "foreignobject",
];

/// Fails unless `html` is inert by construction: scripts only from our assets and empty, no
/// event-handler or style attribute, no `<style>`, no frame, image or embedded object, no
/// `http-equiv` meta, no SVG but the enrolment QR code, and every URL attribute local.
pub fn assert_clean_html(what: &str, html: &str) {
    for t in tags(html) {
        let show = || format!("{what}: <{} {:?}>", t.name, t.attrs);
        match t.name.as_str() {
            "script" => {
                let src = t.attr("src").unwrap_or_default();
                assert!(src.starts_with("/assets/"), "{}: inline script", show());
                assert!(
                    t.raw_text.as_deref().unwrap_or_default().trim().is_empty(),
                    "{}: script with content {:?}",
                    show(),
                    t.raw_text
                );
            }
            "meta" => assert!(t.attr("http-equiv").is_none(), "{}", show()),
            "svg" => assert_eq!(t.attr("class"), Some("qr"), "{}", show()),
            "link" => assert!(
                t.attr("href").unwrap_or_default().starts_with("/assets/"),
                "{}",
                show()
            ),
            n if FORBIDDEN_ELEMENTS.contains(&n) => panic!("{}: element not allowed", show()),
            _ => {}
        }
        for (name, value) in &t.attrs {
            assert!(
                !name.starts_with("on"),
                "{}: event handler attribute {name}",
                show()
            );
            assert!(name != "style" && name != "srcdoc", "{}: {name}", show());
            if URL_ATTRS.contains(&name.as_str()) {
                assert!(
                    local_url(value),
                    "{}: {name}={value:?} leaves the device",
                    show()
                );
            }
        }
    }
}

/// Fails if `payload` came back live: the page must be clean, must not hold the payload
/// verbatim where it has markup characters, and a template expression must not have been
/// evaluated.
pub fn assert_inert(what: &str, html: &str, payload: &str) {
    assert_clean_html(what, html);
    if payload.contains(['<', '>', '"', '\'']) {
        assert!(
            !html.contains(payload),
            "{what}: the payload {payload:?} is in the page unescaped:\n{html}"
        );
    }
    if payload == "{{7*7}}" {
        assert!(
            !html.contains("\"49\"") && !html.contains(">49<"),
            "{what}: {payload} was evaluated"
        );
    }
}

// ------------------------------------------------------------------------------- answers

/// One `Set-Cookie`.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub raw: String,
    pub name: String,
    pub value: String,
    /// Attributes, lowercased (`secure`, `path=/`, `max-age=0`, ...).
    pub attrs: Vec<String>,
}

impl SetCookie {
    pub fn parse(raw: &str) -> Option<SetCookie> {
        let mut parts = raw.split(';');
        let (name, value) = parts.next()?.trim().split_once('=')?;
        Some(SetCookie {
            raw: raw.to_string(),
            name: name.to_string(),
            value: value.to_string(),
            attrs: parts.map(|a| a.trim().to_ascii_lowercase()).collect(),
        })
    }

    pub fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|a| a == attr)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find_map(|a| {
            a.split_once('=')
                .filter(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim())
        })
    }

    pub fn clears(&self) -> bool {
        self.get("max-age") == Some("0")
    }
}

/// An answer of the UI, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    pub fn set_cookies(&self) -> Vec<SetCookie> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(SetCookie::parse)
            .collect()
    }

    /// The cookie `name` this answer sets (not one it clears).
    pub fn cookie(&self, name: &str) -> Option<SetCookie> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.name == name && !c.clears())
    }

    pub fn tags(&self) -> Vec<Tag> {
        tags(&self.text)
    }

    /// The CSRF token the page's forms carry.
    pub fn csrf(&self) -> Option<String> {
        self.tags()
            .into_iter()
            .find(|t| t.name == "input" && t.attr("name") == Some("csrf"))
            .and_then(|t| t.attr("value").map(str::to_string))
            .filter(|v| !v.is_empty())
    }

    /// Whether an element with this id is on the page.
    pub fn has_id(&self, id: &str) -> bool {
        self.tags().iter().any(|t| t.attr("id") == Some(id))
    }

    /// The text right inside the element with this id (up to its first child tag), decoded.
    pub fn text_of(&self, id: &str) -> Option<String> {
        let needle = format!("id=\"{id}\"");
        let at = self.text.find(&needle)?;
        let open_end = at + self.text[at..].find('>')? + 1;
        let close = self.text[open_end..].find('<')? + open_end;
        Some(unescape(&self.text[open_end..close]))
    }

    /// The value of the input named `name`, inside the form with id `form` if given.
    pub fn input(&self, form: Option<&str>, name: &str) -> Option<String> {
        self.form(form)
            .1
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The action and the named input fields of a form (the first one, or the one with id
    /// `form`); empty if there is none.
    pub fn form(&self, form: Option<&str>) -> (String, Vec<(String, String)>) {
        let lower = self.text.to_ascii_lowercase();
        for (start, _) in lower.match_indices("<form") {
            let end = lower[start..]
                .find("</form")
                .map_or(lower.len(), |e| start + e);
            let inner = tags(&self.text[start..end]);
            let Some(f) = inner.first() else { continue };
            if form.is_some_and(|id| f.attr("id") != Some(id)) {
                continue;
            }
            let fields = inner[1..]
                .iter()
                .filter(|t| matches!(t.name.as_str(), "input" | "textarea" | "select"))
                .filter_map(|t| {
                    let name = t.attr("name")?.to_string();
                    let value = match t.name.as_str() {
                        // The parser drops one newline right after <textarea>.
                        "textarea" => {
                            let raw = t.raw_text.as_deref().unwrap_or_default();
                            unescape(raw.strip_prefix('\n').unwrap_or(raw))
                        }
                        _ => t.attr("value").unwrap_or_default().to_string(),
                    };
                    Some((name, value))
                })
                .collect();
            return (f.attr("action").unwrap_or_default().to_string(), fields);
        }
        (String::new(), Vec::new())
    }

    /// Whether this is the guard's refusal of a forged or expired form.
    pub fn is_forged_refusal(&self) -> bool {
        self.status == StatusCode::FORBIDDEN
            && self
                .text_of("error-message")
                .is_some_and(|m| m.contains(FORGED_EN) || m.contains(FORGED_JA))
    }

    /// The error shown in a form (`form-error`), if any.
    pub fn form_error(&self) -> Option<String> {
        self.text_of("form-error")
    }
}

// ------------------------------------------------------------------------------- browser

/// A browser without a cookie jar of reqwest's: cookies are kept here, visible and editable,
/// and redirects are not followed, so every test sees each answer as it is.
#[derive(Clone)]
pub struct Browser {
    http: reqwest::blocking::Client,
    pub base: String,
    /// `host:port` as the client sends it in `Host`.
    pub authority: String,
    /// The cookies this browser sends.
    pub jar: BTreeMap<String, String>,
    /// Extra headers sent with every request (Accept-Language, ...).
    pub extra: Vec<(String, String)>,
}

impl Browser {
    pub fn new(d: &Device) -> Browser {
        Browser::from(d, "127.0.0.1")
    }

    /// A browser connecting from another loopback address (127.0.0.0/8 is all ours).
    pub fn from(d: &Device, local: &str) -> Browser {
        let tls = mamori_crypto::tls::client_config(d.roots()).unwrap();
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(local.parse::<std::net::IpAddr>().unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser {
            http,
            base: format!("https://{}", d.addr),
            authority: d.addr.to_string(),
            jar: BTreeMap::new(),
            extra: Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The `Cookie` header this browser would send.
    pub fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A request with this browser's cookies and extra headers; send it with [`Self::send`].
    pub fn request(&self, method: &str, path: &str) -> reqwest::blocking::RequestBuilder {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .header("accept", "text/html");
        if !self.jar.is_empty() {
            rb = rb.header("cookie", self.cookie_header());
        }
        for (k, v) in &self.extra {
            rb = rb.header(k, v);
        }
        rb
    }

    /// Sends, reads the answer and keeps the cookies it sets (and drops those it clears).
    pub fn send(&mut self, rb: reqwest::blocking::RequestBuilder) -> Page {
        let r = rb.send().expect("request failed at the transport level");
        let page = Page {
            status: r.status(),
            headers: r.headers().clone(),
            text: r.text().unwrap_or_default(),
        };
        for c in page.set_cookies() {
            if c.clears() {
                self.jar.remove(&c.name);
            } else {
                self.jar.insert(c.name, c.value);
            }
        }
        page
    }

    pub fn get(&mut self, path: &str) -> Page {
        let rb = self.request("GET", path);
        self.send(rb)
    }

    /// POSTs a form, exactly these fields (the token is the caller's business).
    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let rb = self
            .request("POST", path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(fields));
        self.send(rb)
    }

    /// POSTs a form with the token this browser's pages carry now.
    pub fn submit(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.token();
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all)
    }

    /// The CSRF token the pages give this browser now (session-bound after login, the
    /// double-submit cookie before).
    pub fn token(&mut self) -> String {
        let p = self.get("/ui/security");
        assert_eq!(p.status, StatusCode::OK, "/ui/security: {}", p.text);
        p.csrf().expect("every page carries a CSRF token")
    }

    pub fn session(&self) -> Option<String> {
        self.jar.get(SESSION_COOKIE).cloned()
    }

    /// Logs in through the login page (password step only).
    pub fn login(&mut self, username: &str, password: &str) -> Page {
        self.login_next(username, password, "")
    }

    pub fn login_next(&mut self, username: &str, password: &str, next: &str) -> Page {
        let form = self.get("/ui/login");
        let token = form.csrf().unwrap_or_else(|| {
            panic!(
                "no token on the login page ({}): {}",
                form.status, form.text
            )
        });
        self.post(
            "/ui/login",
            &[
                ("csrf", &token),
                ("username", username),
                ("password", password),
                ("next", next),
            ],
        )
    }

    /// Logs in and asserts the session was opened.
    pub fn login_ok(&mut self, username: &str, password: &str) -> Page {
        let p = self.login(username, password);
        assert_eq!(
            p.status,
            StatusCode::SEE_OTHER,
            "UI login of {username}: {}",
            p.text
        );
        assert!(
            self.session().is_some(),
            "no session cookie: {:?}",
            p.headers
        );
        p
    }

    /// Re-authenticates through the prompt (no interrupted action).
    pub fn reauth(&mut self, password: &str) {
        let p = self.submit("/ui/reauth", &[("password", password), ("next", "/ui/")]);
        assert_eq!(p.status, StatusCode::SEE_OTHER, "reauth: {}", p.text);
    }
}

// ------------------------------------------------------------------------------- raw TLS

/// An HTTP answer read off a raw TLS connection.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// Sends `request` as is over TLS (no URL normalisation, no encoding) and reads the answer;
/// `None` if the server closed the connection without an HTTP answer.
pub fn raw_request(d: &Device, request: &[u8]) -> Option<Raw> {
    let config = mamori_crypto::tls::client_config(d.roots()).unwrap();
    let name = rustls_pki_types::ServerName::IpAddress(d.addr.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(d.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request).ok()?;
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut body = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..eol])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .unwrap_or(0);
            rest = &rest[eol + 2..];
            if size == 0 || size > rest.len() {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[(size + 2).min(rest.len())..];
        }
        body = out;
    }
    Some(Raw {
        status,
        headers,
        body,
    })
}

/// A raw `GET target` with the given extra header lines.
pub fn raw_get(d: &Device, target: &[u8], extra: &str) -> Option<Raw> {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}\r\n",
            d.addr
        )
        .as_bytes(),
    );
    raw_request(d, &req)
}

/// Whether the device still answers `/healthz`.
pub fn healthy(d: &Device) -> bool {
    raw_get(d, b"/healthz", "").is_some_and(|r| r.status == 200 && r.body == b"ok")
}

// ------------------------------------------------------------------------------- routes

/// One route of the web UI, from its own registry.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: &'static str,
    /// The access rule as the registry serialises it (`{"kind": "public"}`, or
    /// `{"kind": "authenticated", "permission", "reauth", "allowed_when"}`).
    pub access: Value,
}

/// Every route of the web UI.
pub fn routes() -> Vec<Route> {
    let all: Vec<Route> = mamori_webui::endpoints()
        .into_iter()
        .map(|e| Route {
            method: e.method.as_str().to_string(),
            path: e.path,
            access: serde_json::to_value(e.access).unwrap(),
        })
        .collect();
    assert!(all.len() >= 30, "the UI registry has {} routes", all.len());
    all
}

const PERMISSIONS: [Permission; 7] = [
    Permission::OwnAccount,
    Permission::DeviceRead,
    Permission::AuditRead,
    Permission::UsersManage,
    Permission::SecurityManage,
    Permission::ConfigRead,
    Permission::ConfigManage,
];

impl Route {
    pub fn what(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    pub fn is_public(&self) -> bool {
        self.access["kind"] == "public"
    }

    pub fn is_post(&self) -> bool {
        self.method == "POST"
    }

    /// The permission an authenticated route needs.
    pub fn permission(&self) -> Option<Permission> {
        if self.access["kind"] != "authenticated" {
            return None;
        }
        let want = &self.access["permission"];
        Some(
            PERMISSIONS
                .into_iter()
                .find(|p| &serde_json::to_value(p).unwrap() == want)
                .unwrap_or_else(|| panic!("{}: unknown permission {want}", self.what())),
        )
    }

    pub fn reauth(&self) -> bool {
        self.access["reauth"] == true
    }

    pub fn allowed_when(&self) -> &str {
        self.access["allowed_when"].as_str().unwrap_or("")
    }

    /// Whether `role` may use this route (public routes: anyone).
    pub fn allows(&self, role: Role) -> bool {
        self.permission().is_none_or(|p| role.allows(p))
    }

    /// The path with its parameters filled in from `values` (`{name}` → value); unknown
    /// parameters become `0123456789abcdef`.
    pub fn concrete(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::new();
        let mut rest = self.path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').unwrap() + open;
            let param = &rest[open + 1..close];
            let v = values
                .iter()
                .find(|(k, _)| *k == param)
                .map_or("0123456789abcdef", |(_, v)| v);
            out.push_str(v);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// A whole network configuration that, applied, would lock everyone out (no interface in a
/// management zone, the management port moved).
pub const HARMFUL_CONFIG: &str = r#"{"interfaces": [{"name": "lan0", "role": "lan", "addresses": ["192.168.77.1/24"]}], "firewall": {"zones": [{"name": "lan", "interfaces": ["lan0"]}]}, "management": {"port": 1, "zones": [], "sources": []}}"#;

/// The fields a real form of each POST route sends, so that a forged request would do real
/// harm if the guard let it through. Routes not listed (added later) are sent with none.
pub fn harmful_fields(path: &str) -> Vec<(&'static str, &'static str)> {
    match path {
        "/ui/language" => vec![("lang", "ja"), ("next", "/ui/")],
        "/ui/login" => vec![("username", "admin"), ("password", ADMIN_PASSWORD)],
        "/ui/login/verify" => vec![("code", "000000")],
        "/ui/setup" | "/ui/account/password" => vec![
            ("current", ADMIN_PASSWORD),
            ("new", "Forged-Pelican-93-drift"),
            ("confirm", "Forged-Pelican-93-drift"),
        ],
        "/ui/password/check" => vec![("password", "Forged-Pelican-93-drift")],
        "/ui/reauth" => vec![("password", ADMIN_PASSWORD)],
        "/ui/account/tokens" => vec![("name", "forged"), ("role", "admin"), ("days", "365")],
        "/ui/account/mfa/totp/verify" => vec![("code", "000000")],
        "/ui/account/mfa/keys/challenge" => vec![("name", "forged")],
        "/ui/account/mfa/keys" => vec![("credential", "{}")],
        "/ui/users" => vec![("username", "zz-forged"), ("role", "admin")],
        "/ui/users/{name}" => vec![("role", "admin")],
        "/ui/users/{name}/reset" => vec![("reset_mfa", "on")],
        "/ui/access" => vec![("allow", "10.0.0.0/8"), ("trusted", ""), ("confirm", "on")],
        "/ui/audit/purge" => vec![("before", "2026-01-01"), ("confirm", "on")],
        // Management moved to a port nobody listens on: a lockout if it were applied.
        "/ui/config/check" | "/ui/config/commit" => vec![
            ("config", HARMFUL_CONFIG),
            ("comment", "forged"),
            ("confirm_minutes", "0"),
        ],
        "/ui/config/rollback" => vec![("revision", "1"), ("confirm_minutes", "0")],
        _ => Vec::new(),
    }
}

// ------------------------------------------------------------------------------- API

/// Re-authenticates and changes the authentication settings with `change`.
pub fn set_auth_settings(admin: &Client, change: impl FnOnce(&mut Value)) {
    let r = admin.get("/api/v1/settings/auth");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut s = r.body;
    change(&mut s);
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.put("/api/v1/settings/auth", &s);
    assert_eq!(r.status, StatusCode::NO_CONTENT, "settings: {}", r.text);
}

/// Creates `name` with `role` over the API and sets its password to [`USER_PASSWORD`], so
/// it can log in to the UI unrestricted.
pub fn create_user(d: &Device, admin: &Client, name: &str, role: &str) {
    create_user_pending(admin, name, role);
    let c = d.client();
    let r = c.login(name, INITIAL_PASSWORD);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = c.post(
        "/api/v1/auth/password",
        &json!({"current": INITIAL_PASSWORD, "new": USER_PASSWORD}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

/// Creates `name` with `role` and [`INITIAL_PASSWORD`], which must be changed at first login.
pub fn create_user_pending(admin: &Client, name: &str, role: &str) {
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.post(
        "/api/v1/users",
        &json!({"username": name, "role": role, "password": INITIAL_PASSWORD}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Every user, as the API lists them.
pub fn users(admin: &Client) -> Vec<Value> {
    let r = admin.get("/api/v1/users");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().cloned().unwrap_or_default()
}

pub fn user(admin: &Client, name: &str) -> Option<Value> {
    users(admin).into_iter().find(|u| u["username"] == name)
}

/// `GET path` of the API with a session id as the only credential.
pub fn api_get_as(d: &Device, secret: &str, path: &str) -> Answer {
    let c = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(mamori_crypto::tls::client_config(d.roots()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    answer(
        c.get(d.url(path))
            .header("cookie", format!("{SESSION_COOKIE}={secret}"))
            .send()
            .unwrap(),
    )
}

/// What `GET /api/v1/auth/session` says of a session id (None: not a valid session).
pub fn session_info(d: &Device, secret: &str) -> Option<Value> {
    let r = api_get_as(d, secret, "/api/v1/auth/session");
    (r.status == StatusCode::OK).then_some(r.body)
}

/// The public handle (the id the session list and the revoke URL use) of a session.
pub fn session_handle(d: &Device, secret: &str) -> String {
    let r = api_get_as(d, secret, "/api/v1/sessions");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .and_then(|s| s["id"].as_str())
        .expect("the current session is listed")
        .to_string()
}

/// A TOTP authenticator for a base32 secret (SHA-256, 6 digits, 30 s), handing out each
/// time step at most once.
pub struct Totp {
    secret: Vec<u8>,
    last_step: u64,
}

impl Totp {
    pub fn new(secret_b32: &str) -> Totp {
        Totp {
            secret: data_encoding::BASE32_NOPAD
                .decode(secret_b32.as_bytes())
                .expect("base32 secret"),
            last_step: 0,
        }
    }

    pub fn code(&mut self) -> String {
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let current = mamori_crypto::otp::time_step(now);
            let step = current.max(self.last_step + 1);
            if step <= current + 1 {
                self.last_step = step;
                return mamori_crypto::otp::totp_code(&self.secret, step);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Turns on TOTP for the API client's own account; returns the authenticator.
pub fn enable_totp(c: &Client, password: &str) -> Totp {
    c.reauth(password);
    let r = c.post("/api/v1/auth/mfa/totp/enroll", &json!({}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut totp = Totp::new(r.body["secret"].as_str().unwrap());
    let r = c.post(
        "/api/v1/auth/mfa/totp/verify",
        &json!({"code": totp.code()}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    totp
}

/// A device with the label password replaced, the API admin client, and a UI browser logged
/// in as admin.
pub fn device_with_admin() -> (Device, Client, Browser) {
    let d = Device::start();
    let admin = d.admin();
    let mut b = Browser::new(&d);
    b.login_ok("admin", ADMIN_PASSWORD);
    (d, admin, b)
}

/// Every GET page under /ui/ (parameters filled), for header and inertness sweeps.
pub fn get_pages() -> Vec<String> {
    routes()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/ui/"))
        .map(|r| r.concrete(&[]))
        .collect()
}
