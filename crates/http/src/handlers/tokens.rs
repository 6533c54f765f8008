//! The caller's API tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mamori_auth::model::Role;
use mamori_auth::service::{NewToken, TokenListing};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Caller, Text};
use crate::state::AppState;

/// Lists the caller's tokens.
pub async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<Vec<TokenListing>>, ApiError> {
    Ok(Json(state.run(move |auth| auth.list_tokens(&p)).await?))
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name to recognise it by.
    pub name: Text<1, 64>,
    /// Its role; not above the caller's.
    pub role: Role,
    /// Lifetime, 1–365 days.
    #[schemars(range(min = 1, max = 365))]
    pub expires_in_days: u32,
}

/// Creates a token; its secret is in this answer only.
pub async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    let t = state
        .run(move |auth| auth.create_token(&p, req.name.as_str(), req.role, req.expires_in_days))
        .await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// Revokes one of the caller's tokens.
pub async fn revoke(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound);
    }
    state.run(move |auth| auth.revoke_token(&p, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
