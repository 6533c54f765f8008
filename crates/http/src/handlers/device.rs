//! Device identity and status.

use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::state::AppState;

/// `GET /api/v1/device` (S3.1-14: model and serial visible to users).
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeviceInfo {
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Firmware version.
    pub firmware_version: String,
    /// Seconds since the system booted.
    pub uptime_seconds: u64,
    /// Current UTC time, RFC 3339.
    pub time: String,
}

fn uptime_seconds() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map_or(0, |t| u64::try_from(t.tv_sec()).unwrap_or(0))
}

/// The device's identity and clock, as the API and the UI dashboard show them.
pub fn device_info(state: &AppState) -> DeviceInfo {
    DeviceInfo {
        model: state.device.model.clone(),
        serial: state.device.serial.clone(),
        firmware_version: state.device.firmware_version.clone(),
        uptime_seconds: uptime_seconds(),
        time: mamori_audit::now_rfc3339(),
    }
}

/// Model, serial, firmware version, uptime and time.
pub async fn device(State(state): State<AppState>) -> Json<DeviceInfo> {
    Json(device_info(&state))
}

/// Something about the device's security state that an administrator should act on.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Notice {
    /// Stable code (the UI shows its own words for each).
    pub code: &'static str,
    /// What to do, in English.
    pub message: &'static str,
}

/// The device-wide notices, for the status endpoint and the dashboard banner.
pub fn notices(state: &AppState) -> Vec<Notice> {
    let mut notices = Vec::new();
    if state.auth.access().allow.is_empty() {
        notices.push(Notice {
            code: "allowlist_open",
            message: "the management service accepts connections from any address; set an allowlist",
        });
    }
    if !state
        .auth
        .settings()
        .mfa_required_roles
        .contains(&mamori_auth::model::Role::Admin)
    {
        notices.push(Notice {
            code: "mfa_not_required_for_admin",
            message: "administrators are not required to use a second factor",
        });
    }
    if state.forwarding.settings().any_plaintext() {
        notices.push(Notice {
            code: "insecure_forwarding",
            message: "audit records are forwarded in plain text to at least one collector; use TLS",
        });
    }
    notices
}

/// Status: the device, the process separation and sandbox, TLS, and notices for the admin.
pub async fn status(State(state): State<AppState>) -> Json<serde_json::Value> {
    let notices = notices(&state);
    let mut answer = json!({
        "device": {
            "model": state.device.model,
            "serial": state.device.serial,
            "firmware_version": state.device.firmware_version,
            "uptime_seconds": uptime_seconds(),
            "time": mamori_audit::now_rfc3339(),
        },
        "tls": {"versions": ["TLSv1.3", "TLSv1.2"],
            "suites": mamori_crypto::tls::offered_suites(state.tls.options())},
        "notices": notices,
    });
    // The process section (privilege separation, listeners) comes from the daemon.
    if let (Some(out), serde_json::Value::Object(process)) =
        (answer.as_object_mut(), (state.status)())
    {
        out.extend(process);
    }
    Json(answer)
}
