//! `GET /api/v1/system/ports`: the listener registry checked against the live sockets of the
//! device's network namespace (S3.1-23 R1, S3.1-26 R1).

use axum::Json;
use axum::extract::State;
use mamori_inventory::Inventory;
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// Produces the inventory: the daemon asks the privileged parent for the live sockets and
/// checks them against the registry. An error means the sockets could not be read.
pub type PortsProvider = std::sync::Arc<dyn Fn() -> Result<Ports, String> + Send + Sync>;

/// The answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ports {
    /// Declared, live, unexpected and missing listeners.
    #[serde(flatten)]
    pub inventory: Inventory,
    /// Nothing unexpected and nothing missing.
    pub consistent: bool,
    /// More sockets were open than the parent reports (4096); the live list is cut.
    pub truncated: bool,
}

impl Ports {
    /// Wraps an inventory.
    pub fn new(inventory: Inventory, truncated: bool) -> Self {
        Self {
            consistent: inventory.consistent() && !truncated,
            inventory,
            truncated,
        }
    }
}

/// The provider of a state built without one (tests of other endpoints).
pub fn unavailable() -> PortsProvider {
    std::sync::Arc::new(|| Err("the port inventory is not available".into()))
}

/// `GET /api/v1/system/ports`.
pub async fn get(State(state): State<AppState>) -> Result<Json<Ports>, ApiError> {
    let provider = state.ports.clone();
    tokio::task::spawn_blocking(move || provider())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(Json)
        .map_err(ApiError::Internal)
}
