//! Login, logout, password change and re-authentication.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mamori_auth::service::SessionInfo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{cleared_cookie, no_content_with_cookie, session_cookie};
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, ConnInfo, PasswordText, Text};
use crate::state::AppState;
use axum::extract::State;

/// `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username (1–64 characters; unknown names fail like wrong passwords).
    pub username: Text<1, 64>,
    /// Password.
    pub password: PasswordText,
    /// TOTP code or recovery code, when a second factor is enrolled.
    #[serde(default)]
    pub totp: Option<Text<1, 32>>,
}

/// Logs in; sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    conn: ConnInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let origin = conn.origin;
    let out = state
        .run_hashing(move |auth| {
            auth.login(
                req.username.as_str(),
                req.password.as_str(),
                req.totp.as_ref().map(|t| t.as_str()),
                origin,
            )
        })
        .await?;
    let mut resp = Json(out.session).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&out.secret));
    Ok(resp)
}

/// Ends the session.
pub async fn logout(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    state.auth.logout(&p)?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cleared_cookie());
    Ok(resp)
}

/// The caller's session.
pub async fn session(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<SessionInfo>, ApiError> {
    Ok(Json(state.run(move |auth| auth.session(&p)).await?))
}

/// `POST /api/v1/auth/password`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    pub current: PasswordText,
    /// The new password (policy: docs/en/passwords.md).
    pub new: PasswordText,
}

/// Changes the caller's password; the session id changes and other sessions end.
pub async fn change_password(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    let secret = state
        .run_hashing(move |auth| auth.change_password(&p, req.current.as_str(), req.new.as_str()))
        .await?;
    Ok(no_content_with_cookie(&secret))
}

/// `POST /api/v1/auth/reauth`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReauthRequest {
    /// The caller's password.
    pub password: PasswordText,
    /// TOTP or recovery code, when enrolled.
    #[serde(default)]
    pub totp: Option<Text<1, 32>>,
}

/// Answer to a re-authentication.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReauthResponse {
    /// Unix time until which sensitive operations are allowed.
    pub valid_until: u64,
}

/// Re-authenticates the session for five minutes.
pub async fn reauth(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<ReauthRequest>,
) -> Result<Json<ReauthResponse>, ApiError> {
    let valid_until = state
        .run_hashing(move |auth| {
            auth.reauthenticate(
                &p,
                req.password.as_str(),
                mamori_auth::service::SecondFactor::from_code(
                    req.totp.as_ref().map(|t| t.as_str()),
                ),
            )
        })
        .await?;
    Ok(Json(ReauthResponse { valid_until }))
}
