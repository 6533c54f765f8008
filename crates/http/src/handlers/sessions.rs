//! The caller's own sessions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mamori_auth::service::SessionListing;

use crate::error::ApiError;
use crate::extract::{ApiPath, Caller};
use crate::state::AppState;

/// Lists the caller's sessions.
pub async fn list(State(state): State<AppState>, Caller(p): Caller) -> Json<Vec<SessionListing>> {
    Json(state.auth.list_sessions(&p))
}

/// Revokes one of the caller's sessions.
pub async fn revoke(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound);
    }
    state.run(move |auth| auth.revoke_session(&p, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
