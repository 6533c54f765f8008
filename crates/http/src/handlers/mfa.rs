//! TOTP second factor.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mamori_auth::service::TotpEnrollment;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::session_cookie;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, Text};
use crate::state::AppState;

/// Starts enrolment.
pub async fn enroll(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<TotpEnrollment>, ApiError> {
    Ok(Json(state.run(move |auth| auth.totp_enroll(&p)).await?))
}

/// `POST /api/v1/auth/mfa/totp/verify`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The current 6-digit code.
    pub code: Text<6, 6>,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyResponse {
    /// Ten single-use recovery codes.
    pub recovery_codes: Vec<String>,
}

/// Confirms enrolment with a first code.
pub async fn verify(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    let (codes, new_secret) = state
        .run(move |auth| auth.totp_verify(&p, req.code.as_str()))
        .await?;
    let mut resp = Json(VerifyResponse {
        recovery_codes: codes,
    })
    .into_response();
    if let Some(secret) = new_secret {
        resp.headers_mut()
            .insert(header::SET_COOKIE, session_cookie(&secret));
    }
    Ok(resp)
}

/// Removes the second factor.
pub async fn disable(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<StatusCode, ApiError> {
    state.run(move |auth| auth.totp_disable(&p)).await?;
    Ok(StatusCode::NO_CONTENT)
}
