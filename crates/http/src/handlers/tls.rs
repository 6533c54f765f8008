//! TLS settings of the management listener, within the crypto policy.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mamori_audit::{Event, EventKind, Outcome};
use mamori_crypto::tls::TlsOptions;
use mamori_store::Table;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;

/// Where the options are stored.
pub const SETTINGS_KEY: &str = "tls";

/// The TLS options an administrator may change.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Also offer ChaCha20-Poly1305 (on the CRYPTREC list; off by default).
    pub allow_chacha20: bool,
}

/// The TLS options in force, and the suites they offer.
pub async fn get(State(state): State<AppState>) -> Json<serde_json::Value> {
    let o = state.tls.options();
    Json(json!({"allow_chacha20": o.allow_chacha20,
        "suites": mamori_crypto::tls::offered_suites(o)}))
}

/// Changes the options: stored first, then applied to new connections.
pub async fn put(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<TlsSettings>,
) -> Result<StatusCode, ApiError> {
    let before = state.tls.options();
    let options = TlsOptions {
        allow_chacha20: req.allow_chacha20,
    };
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        store.write(|tx| tx.put(Table::Settings, SETTINGS_KEY, &options))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .tls
        .set(options)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state.audit_record(
        Event::new(EventKind::SettingsChanged, Outcome::Success)
            .actor(p.username.as_str())
            .source(p.origin.label())
            .details(json!({"setting": "tls", "before": before, "after": options})),
    );
    Ok(StatusCode::NO_CONTENT)
}
