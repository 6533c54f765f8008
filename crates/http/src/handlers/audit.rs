//! Reading the audit log.

use axum::Json;
use axum::extract::State;
use mamori_audit::Event;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// `?limit=N` (1–1000, default 100).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    limit: Option<usize>,
}

/// The newest audit events, oldest first.
pub async fn events(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<Limit>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 1000".into()));
    }
    let audit = state.audit.clone();
    let events = tokio::task::spawn_blocking(move || audit.tail(limit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(events))
}
