//! Small helpers for the functional suites, on top of the shared harness in `common`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::*;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "__Host-mamori-session";

/// A second password that passes the policy.
pub const OTHER_PASSWORD: &str = "Harbor-Tulip-73-violet";

/// Endpoints that need an authenticated caller and that the contract (docs/api.md) promises.
/// The suites work on the list served by the device itself (see [`registry`]), and check that
/// it contains at least these, so an endpoint added later is covered automatically and a
/// promised one cannot silently disappear.
pub const AUTHENTICATED_FLOOR: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/session"),
    ("POST", "/api/v1/auth/password"),
    ("POST", "/api/v1/auth/reauth"),
    ("POST", "/api/v1/auth/mfa/totp/enroll"),
    ("POST", "/api/v1/auth/mfa/totp/verify"),
    ("POST", "/api/v1/auth/mfa/totp/disable"),
    ("GET", "/api/v1/sessions"),
    ("DELETE", "/api/v1/sessions/{id}"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("GET", "/api/v1/device"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("PATCH", "/api/v1/users/{username}"),
    ("DELETE", "/api/v1/users/{username}"),
    ("POST", "/api/v1/users/{username}/reset"),
    ("GET", "/api/v1/settings/auth"),
    ("PUT", "/api/v1/settings/auth"),
    ("GET", "/api/v1/settings/access"),
    ("PUT", "/api/v1/settings/access"),
    ("GET", "/api/v1/audit/events"),
    ("GET", "/api/v1/openapi.json"),
];

/// The admin-only endpoints (users and security settings) the contract promises.
pub const ADMIN_ONLY_FLOOR: &[(&str, &str)] = &[
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("PATCH", "/api/v1/users/{username}"),
    ("DELETE", "/api/v1/users/{username}"),
    ("POST", "/api/v1/users/{username}/reset"),
    ("GET", "/api/v1/settings/auth"),
    ("PUT", "/api/v1/settings/auth"),
    ("GET", "/api/v1/settings/access"),
    ("PUT", "/api/v1/settings/access"),
];

/// One operation of the interface registry, as the served OpenAPI document describes it.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: String,
    pub path: String,
    /// `x-mamori-permission`; `None` for public and console-only endpoints.
    pub permission: Option<String>,
    /// `x-mamori-reauth`.
    pub reauth: bool,
}

/// Every operation of the registry, read once per test run from the OpenAPI document a real
/// device serves (it is generated from `crates/http/src/registry.rs`).
pub fn registry() -> &'static [Operation] {
    static OPS: std::sync::OnceLock<Vec<Operation>> = std::sync::OnceLock::new();
    OPS.get_or_init(|| {
        let d = Device::start();
        let admin = d.admin();
        let ops = openapi_operations(&admin);
        for (method, path) in AUTHENTICATED_FLOOR {
            assert!(
                ops.iter()
                    .any(|o| o.method == *method && o.path == *path && o.permission.is_some()),
                "{method} {path} is missing from the served registry"
            );
        }
        ops
    })
}

/// `(method, path)` of every endpoint that needs an authenticated caller.
pub fn authenticated_endpoints() -> Vec<(String, String)> {
    registry()
        .iter()
        .filter(|o| o.permission.is_some())
        .map(|o| (o.method.clone(), o.path.clone()))
        .collect()
}

/// `(method, path)` of every endpoint only an administrator may use.
pub fn admin_only_endpoints() -> Vec<(String, String)> {
    let ops: Vec<(String, String)> = registry()
        .iter()
        .filter(|o| {
            matches!(
                o.permission.as_deref(),
                Some("users_manage" | "security_manage")
            )
        })
        .map(|o| (o.method.clone(), o.path.clone()))
        .collect();
    for (method, path) in ADMIN_ONLY_FLOOR {
        assert!(
            ops.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is not admin-only in the served registry"
        );
    }
    ops
}

/// Every operation in the OpenAPI document `c` is served.
pub fn openapi_operations(c: &Client) -> Vec<Operation> {
    let r = c.get("/api/v1/openapi.json");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut out = Vec::new();
    for (path, ops) in r.body["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            out.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                permission: op["x-mamori-permission"].as_str().map(str::to_string),
                reauth: op["x-mamori-reauth"] == true,
            });
        }
    }
    out
}

/// Replaces `{param}` placeholders in a registry path with `value`.
pub fn fill(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Sends any request through `c` with extra headers (the cookie jar still applies).
pub fn send(
    c: &Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = c.http.request(method, format!("{}{}", c.base, path));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.json(b);
    }
    answer(rb.send().expect("request failed at the transport level"))
}

/// Sends a request authenticated by an API token (`Authorization: Bearer`), from a client
/// with an empty cookie jar.
pub fn bearer(d: &Device, token: &str, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let c = d.client_from("127.0.0.9");
    send(
        &c,
        method,
        path,
        &[("authorization", &format!("Bearer {token}"))],
        body,
    )
}

/// Sends a request with exactly this session cookie value, from a client with an empty jar.
pub fn with_cookie(d: &Device, cookie: &str, method: &str, path: &str) -> Answer {
    let c = d.client_from("127.0.0.8");
    send(
        &c,
        method,
        path,
        &[("cookie", &format!("{SESSION_COOKIE}={cookie}"))],
        None,
    )
}

/// The session cookie an answer sets (`None` if it sets none, or clears it).
pub fn set_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .rfind(|v| !v.is_empty())
}

/// Logs in on `c` and returns the session cookie value it was given.
pub fn login_cookie(c: &Client, username: &str, password: &str) -> String {
    let r = c.login(username, password);
    assert_eq!(r.status, StatusCode::OK, "login {username}: {}", r.text);
    set_cookie(&r.headers).expect("login sets the session cookie")
}

/// Asserts status and error code together, with the body in the message.
#[track_caller]
pub fn expect(r: &Answer, status: StatusCode, code: &str) {
    assert_eq!(
        (r.status, r.code()),
        (status, code),
        "unexpected answer: {}",
        r.text
    );
}

/// The current unix time.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The newest audit events (up to 1000), read by an administrator or auditor.
pub fn audit_events(c: &Client) -> Vec<Value> {
    let r = c.get("/api/v1/audit/events?limit=1000");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().expect("event list").clone()
}

/// `GET /api/v1/users`, as a list.
pub fn users(admin: &Client) -> Vec<Value> {
    let r = admin.get("/api/v1/users");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().expect("user list").clone()
}

/// One user from `GET /api/v1/users`.
pub fn user_entry(admin: &Client, name: &str) -> Option<Value> {
    users(admin).into_iter().find(|u| u["username"] == name)
}

/// Creates a user as `admin` (re-authenticating first) with a generated one-time password,
/// which is returned.
pub fn create_user(admin: &Client, name: &str, role: &str) -> String {
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.post("/api/v1/users", &json!({"username": name, "role": role}));
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["one_time_password"]
        .as_str()
        .expect("one-time password")
        .to_string()
}

/// Creates a user, logs in with the one-time password and changes it to `password`. Returns
/// the user's logged-in client (from `source`).
pub fn new_user(
    d: &Device,
    admin: &Client,
    name: &str,
    role: &str,
    password: &str,
    source: &str,
) -> Client {
    let otp = create_user(admin, name, role);
    let c = d.client_from(source);
    let r = c.login(name, &otp);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["must_change_password"], true);
    let r = c.post(
        "/api/v1/auth/password",
        &json!({"current": otp, "new": password}),
    );
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    c
}

/// Reads the authentication settings.
pub fn auth_settings(admin: &Client) -> Value {
    let r = admin.get("/api/v1/settings/auth");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// Changes some authentication settings (re-authenticating first).
pub fn set_auth_settings(admin: &Client, changes: &Value) {
    let mut s = auth_settings(admin);
    for (k, v) in changes.as_object().expect("object") {
        assert!(s.get(k).is_some(), "unknown setting {k}");
        s[k] = v.clone();
    }
    admin.reauth(ADMIN_PASSWORD);
    let r = admin.put("/api/v1/settings/auth", &s);
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(auth_settings(admin), s);
}

/// A TOTP authenticator, as a phone app would be: it never shows the same step twice.
pub struct Authenticator {
    secret: Vec<u8>,
    last_step: u64,
}

impl Authenticator {
    /// From the base32 secret of an enrolment.
    pub fn new(secret_b32: &str) -> Self {
        Self {
            secret: data_encoding::BASE32_NOPAD
                .decode(secret_b32.as_bytes())
                .expect("base32 secret"),
            last_step: 0,
        }
    }

    /// The code for the current time step (or the next one, if the current one was used):
    /// the device accepts one step either side, so this never needs to wait more than one step.
    pub fn code(&mut self) -> String {
        loop {
            let current = mamori_crypto::otp::time_step(now());
            let step = current.max(self.last_step + 1);
            if step <= current + 1 {
                self.last_step = step;
                return mamori_crypto::otp::totp_code(&self.secret, step);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The code last handed out (already used, so replaying it must fail).
    pub fn last_code(&self) -> String {
        mamori_crypto::otp::totp_code(&self.secret, self.last_step)
    }

    /// A code that is certainly wrong now (for a step far from the current one).
    pub fn wrong_code(&self) -> String {
        let current = mamori_crypto::otp::time_step(now());
        let near: Vec<String> = (current.saturating_sub(2)..=current + 2)
            .map(|s| mamori_crypto::otp::totp_code(&self.secret, s))
            .collect();
        (0..)
            .map(|i| format!("{:06}", (123_456 + i * 7919) % 1_000_000))
            .find(|c| !near.contains(c))
            .unwrap()
    }
}

/// Enrols TOTP for the logged-in `c` (re-authenticating with `password`) and returns the
/// authenticator and the recovery codes.
pub fn enrol_totp(c: &Client, password: &str) -> (Authenticator, Vec<String>) {
    c.reauth(password);
    let r = c.post("/api/v1/auth/mfa/totp/enroll", &json!({}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut auth = Authenticator::new(r.body["secret"].as_str().expect("secret"));
    let r = c.post(
        "/api/v1/auth/mfa/totp/verify",
        &json!({"code": auth.code()}),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let codes = r.body["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    (auth, codes)
}

/// An answer from the console socket.
#[derive(Debug)]
pub struct ConsoleAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub text: String,
}

impl ConsoleAnswer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The session cookie this answer sets, if any.
    pub fn cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .filter_map(|pair| pair.split_once('='))
            .filter(|(name, _)| name.trim() == SESSION_COOKIE)
            .map(|(_, value)| value.trim().to_string())
            .rfind(|v| !v.is_empty())
    }
}

/// Sends one plain HTTP/1.1 request over the console socket, written by hand. An answer-less
/// close (what a refused peer gets) is an `UnexpectedEof` error.
pub fn console(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
    cookie: Option<&str>,
) -> std::io::Result<ConsoleAnswer> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: console\r\nContent-Type: application/json\r\n\
         Connection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {SESSION_COOKIE}={c}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_http(&raw)
}

fn parse_http(raw: &[u8]) -> std::io::Result<ConsoleAnswer> {
    use std::io::{Error, ErrorKind};
    if raw.is_empty() {
        return Err(Error::new(
            ErrorKind::UnexpectedEof,
            "closed without an answer",
        ));
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, status_line.to_string()))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    let text = String::from_utf8_lossy(&body).to_string();
    Ok(ConsoleAnswer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    })
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    let bad = || Error::new(ErrorKind::InvalidData, "bad chunked body");
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(bad());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Logs in over the console socket; returns the answer.
pub fn console_login(d: &Device, username: &str, password: &str) -> ConsoleAnswer {
    console(
        &d.console_socket(),
        "POST",
        "/api/v1/auth/login",
        Some(&json!({"username": username, "password": password})),
        None,
    )
    .expect("console answers root")
}
