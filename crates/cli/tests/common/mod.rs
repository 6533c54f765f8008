//! A tiny stand-in for the management API (docs/api.md), enough to drive the `mamori` binary
//! end to end over the console socket and over HTTPS.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";
pub const TOKEN: &str = "mmt_test_token";
pub const DEVICE_JSON: &str = r#"{"model":"MG-1","serial":"SN0001","firmware_version":"0.1.0","uptime_seconds":3723,"time":"2026-01-01T00:00:00Z"}"#;

/// One request the server saw: method, path, how it was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub auth: String,
}

#[derive(Default)]
pub struct Inner {
    pub log: Vec<Seen>,
    pub sessions: Vec<String>,
    pub reauthed: Vec<String>,
    pub bodies: Vec<Value>,
    /// TOTP code used at login, per session (codes are single-use, as in mamori-auth).
    pub login_totp: std::collections::HashMap<String, String>,
    counter: u32,
}

#[derive(Clone, Default)]
pub struct Api(pub Arc<Mutex<Inner>>);

impl Api {
    pub fn log(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap()
            .log
            .iter()
            .map(|s| (s.method.clone(), s.path.clone()))
            .collect()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().log.clone()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.0.lock().unwrap().bodies.clone()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::COOKIE)?.to_str().ok()?;
    raw.split(';').find_map(|c| {
        c.trim()
            .strip_prefix("__Host-mamori-session=")
            .map(str::to_owned)
    })
}

fn bearer_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

impl Api {
    fn record(&self, method: &str, path: &str, headers: &HeaderMap) {
        let auth = match (cookie_of(headers), bearer_of(headers)) {
            (Some(c), _) => format!("cookie:{c}"),
            (None, Some(t)) => format!("bearer:{t}"),
            (None, None) => "none".into(),
        };
        self.0.lock().unwrap().log.push(Seen {
            method: method.into(),
            path: path.into(),
            auth,
        });
    }

    /// The session id or token the request is authenticated with, if valid.
    fn principal(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(t) = bearer_of(headers) {
            return (t == TOKEN).then_some(t);
        }
        let c = cookie_of(headers)?;
        self.0.lock().unwrap().sessions.contains(&c).then_some(c)
    }

    fn new_session(&self) -> String {
        let mut inner = self.0.lock().unwrap();
        inner.counter += 1;
        let id = format!("sess{}", inner.counter);
        inner.sessions.push(id.clone());
        id
    }
}

fn with_cookie(id: &str, status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::SET_COOKIE, "theme=dark; Path=/".to_owned()),
            (
                header::SET_COOKIE,
                format!("__Host-mamori-session={id}; Path=/; Secure; HttpOnly; SameSite=Strict"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn login(State(api): State<Api>, headers: HeaderMap, body: String) -> Response {
    api.record("POST", "/api/v1/auth/login", &headers);
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "json",
        );
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "malformed JSON");
    };
    let user = body["username"].as_str().unwrap_or("");
    if body["password"] != PASSWORD {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
            "wrong username or password",
        );
    }
    if user == "mfa" && body.get("totp").is_none() {
        return error(
            StatusCode::UNAUTHORIZED,
            "mfa_required",
            "second factor required",
        );
    }
    if user == "throttled" {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::RETRY_AFTER, "42"),
            ],
            json!({"error": {"code": "too_many_attempts", "message": "too many attempts"}})
                .to_string(),
        )
            .into_response();
    }
    let id = api.new_session();
    if let Some(code) = body.get("totp").and_then(Value::as_str) {
        api.0
            .lock()
            .unwrap()
            .login_totp
            .insert(id.clone(), code.to_owned());
    }
    let answer = json!({
        "username": user,
        "role": "admin",
        "must_change_password": user == "fresh",
        "mfa_enrollment_required": false,
        "idle_timeout_seconds": 900,
        "expires_at": "2026-01-01T08:00:00Z"
    });
    with_cookie(&id, StatusCode::OK, answer.to_string())
}

async fn logout(State(api): State<Api>, headers: HeaderMap) -> Response {
    api.record("POST", "/api/v1/auth/logout", &headers);
    match api.principal(&headers) {
        Some(id) => {
            api.0.lock().unwrap().sessions.retain(|s| *s != id);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::UNAUTHORIZED, "unauthenticated", "no session"),
    }
}

async fn reauth(State(api): State<Api>, headers: HeaderMap, body: String) -> Response {
    api.record("POST", "/api/v1/auth/reauth", &headers);
    let Some(id) = api.principal(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated", "no session");
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if body["password"] != PASSWORD {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_failed",
            "wrong password",
        );
    }
    let used = api.0.lock().unwrap().login_totp.get(&id).cloned();
    if let Some(used) = used {
        let code = body.get("totp").and_then(Value::as_str);
        if code.is_none() || code == Some(used.as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "mfa_required",
                "second factor required",
            );
        }
    }
    api.0.lock().unwrap().reauthed.push(id);
    json_response(
        StatusCode::OK,
        r#"{"valid_until":"2026-01-01T00:05:00Z"}"#.into(),
    )
}

async fn password(State(api): State<Api>, headers: HeaderMap, body: String) -> Response {
    api.record("POST", "/api/v1/auth/password", &headers);
    let Some(old) = api.principal(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated", "no session");
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if body["current"] != PASSWORD {
        return error(StatusCode::UNAUTHORIZED, "authentication_failed", "wrong");
    }
    if body["new"].as_str().is_none_or(|n| n.len() < 12) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": {"code": "password_rejected", "message": "password too short",
                             "rule": "length"}})
            .to_string(),
        )
            .into_response();
    }
    api.0.lock().unwrap().sessions.retain(|s| *s != old);
    let id = api.new_session();
    let mut resp = with_cookie(&id, StatusCode::NO_CONTENT, String::new());
    resp.headers_mut().remove(header::CONTENT_TYPE);
    resp
}

async fn device(State(api): State<Api>, headers: HeaderMap) -> Response {
    api.record("GET", "/api/v1/device", &headers);
    if api.principal(&headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated", "no session");
    }
    json_response(StatusCode::OK, DEVICE_JSON.into())
}

async fn status(State(api): State<Api>, headers: HeaderMap) -> Response {
    api.record("GET", "/api/v1/status", &headers);
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "something broke",
    )
}

async fn audit(State(api): State<Api>, headers: HeaderMap) -> Response {
    api.record("GET", "/api/v1/audit/events", &headers);
    error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "role does not allow this",
    )
}

async fn users_add(State(api): State<Api>, headers: HeaderMap, body: String) -> Response {
    api.record("POST", "/api/v1/users", &headers);
    let Some(id) = api.principal(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated", "no session");
    };
    if !api.0.lock().unwrap().reauthed.contains(&id) {
        return error(
            StatusCode::FORBIDDEN,
            "reauth_required",
            "re-authenticate first",
        );
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    api.0.lock().unwrap().bodies.push(body.clone());
    let mut answer = json!({"username": body["username"]});
    if body.get("password").is_none() {
        answer["one_time_password"] = json!("otp-ABCD-1234");
    }
    json_response(StatusCode::CREATED, answer.to_string())
}

async fn users_delete(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    api.record("DELETE", &format!("/api/v1/users/{name}"), &headers);
    let Some(id) = api.principal(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated", "no session");
    };
    if !api.0.lock().unwrap().reauthed.contains(&id) {
        return error(
            StatusCode::FORBIDDEN,
            "reauth_required",
            "re-authenticate first",
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn access_get(State(api): State<Api>, headers: HeaderMap) -> Response {
    api.record("GET", "/api/v1/settings/access", &headers);
    json_response(
        StatusCode::OK,
        r#"{"allow":["127.0.0.0/8"],"trusted":["127.0.0.1/32"]}"#.into(),
    )
}

async fn access_put(State(api): State<Api>, headers: HeaderMap, body: String) -> Response {
    api.record("PUT", "/api/v1/settings/access", &headers);
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    api.0.lock().unwrap().bodies.push(body.clone());
    if body.get("confirm") != Some(&json!(true)) {
        return error(
            StatusCode::CONFLICT,
            "confirmation_required",
            "this change would cut off the caller",
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn recover(State(api): State<Api>, headers: HeaderMap, body: String) -> Response {
    api.record("POST", "/api/v1/console/recover", &headers);
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    api.0.lock().unwrap().bodies.push(body);
    json_response(
        StatusCode::OK,
        r#"{"one_time_password":"recover-9876"}"#.into(),
    )
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/reauth", post(reauth))
        .route("/api/v1/auth/password", post(password))
        .route("/api/v1/device", get(device))
        .route("/api/v1/status", get(status))
        .route("/api/v1/audit/events", get(audit))
        .route("/api/v1/users", post(users_add))
        .route("/api/v1/users/{name}", delete(users_delete))
        .route("/api/v1/settings/access", get(access_get))
        .route("/api/v1/settings/access", put(access_put))
        .route("/api/v1/console/recover", post(recover))
        .with_state(api)
}

/// Runs the binary with a clean `MAMORI_*` environment, `stdin` as its standard input.
pub fn run_mamori(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mamori"));
    for var in [
        "MAMORI_URL",
        "MAMORI_CACERT",
        "MAMORI_USER",
        "MAMORI_TOTP",
        "MAMORI_REAUTH_TOTP",
        "MAMORI_TOKEN",
        "MAMORI_PASSWORD",
        "MAMORI_NEW_PASSWORD",
        "MAMORI_STATE_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn mamori");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("wait for mamori")
}

/// Runs the binary off the async runtime.
pub async fn mamori(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_mamori(&args, &env, &stdin)
    })
    .await
    .expect("join")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
