//! Security settings: the authentication policy and the management access policy.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mamori_auth::settings::{AccessPolicy, AuthSettings};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;

/// The authentication policy.
pub async fn get_auth(State(state): State<AppState>) -> Json<AuthSettings> {
    Json(state.auth.settings())
}

/// Replaces the authentication policy.
pub async fn put_auth(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<AuthSettings>,
) -> Result<StatusCode, ApiError> {
    state.run(move |auth| auth.set_settings(&p, req)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The management access policy.
pub async fn get_access(State(state): State<AppState>) -> Json<AccessPolicy> {
    Json(state.auth.access())
}

/// `PUT /api/v1/settings/access`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAccess {
    /// Networks allowed to connect (empty: any).
    #[schemars(with = "Vec<String>")]
    pub allow: Vec<ipnet::IpNet>,
    /// Trusted management stations.
    #[schemars(with = "Vec<String>")]
    pub trusted: Vec<ipnet::IpNet>,
    /// Apply even though it excludes the caller's own address.
    #[serde(default)]
    pub confirm: bool,
}

/// Replaces the management access policy.
pub async fn put_access(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<PutAccess>,
) -> Result<StatusCode, ApiError> {
    let policy = AccessPolicy {
        allow: req.allow,
        trusted: req.trusted,
    };
    state
        .run(move |auth| auth.set_access(&p, policy, req.confirm))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
