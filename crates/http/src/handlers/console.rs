//! The console's recovery path (S3.1-03 R4): only on the local socket, whose peer the listener
//! has already checked to be root or the daemon's own user.

use axum::Json;
use axum::extract::State;
use mamori_auth::model::Username;
use schemars::JsonSchema;
use serde::Deserialize;

use super::users::OneTimePassword;
use crate::error::ApiError;
use crate::extract::{ApiJson, ConnInfo};
use crate::state::AppState;

/// `POST /api/v1/console/recover`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// The account to recover.
    pub username: Username,
    /// Also remove the account's second factor (authenticator and recovery codes lost).
    #[serde(default)]
    pub reset_mfa: bool,
}

/// Resets an account's password to a one-time password, unlocks and enables it, and with
/// `reset_mfa` removes its second factor.
pub async fn recover(
    State(state): State<AppState>,
    conn: ConnInfo,
    ApiJson(req): ApiJson<RecoverRequest>,
) -> Result<Json<OneTimePassword>, ApiError> {
    let origin = conn.origin;
    let one_time_password = state
        .run_hashing(move |auth| auth.console_recover(&origin, &req.username, req.reset_mfa))
        .await?;
    Ok(Json(OneTimePassword { one_time_password }))
}
