//! One module per resource. Handlers only translate between HTTP and the service layer.

pub mod audit;
pub mod auth;
pub mod config;
pub mod console;
pub mod device;
pub mod forwarding;
pub mod mfa;
pub mod network;
pub mod ports;
pub mod sessions;
pub mod settings;
pub mod time;
pub mod tls;
pub mod tokens;
pub mod users;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::SESSION_COOKIE;

/// `Set-Cookie` for a new session secret.
pub(crate) fn session_cookie(secret: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-mamori-session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    )
}

/// 204 with a fresh session cookie.
pub(crate) fn no_content_with_cookie(secret: &str) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(secret));
    r
}
