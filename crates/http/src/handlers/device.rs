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
    /// What it is and what to do, in English.
    pub message: String,
}

/// The device-wide notices, for the status endpoint and the dashboard banner.
pub fn notices(state: &AppState) -> Vec<Notice> {
    let mut notices = Vec::new();
    if state.auth.access().allow.is_empty() {
        notices.push(Notice {
            code: "allowlist_open",
            message:
                "the management service accepts connections from any address; set an allowlist"
                    .into(),
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
            message: "administrators are not required to use a second factor".into(),
        });
    }
    if state.forwarding.settings().any_plaintext() {
        notices.push(Notice {
            code: "insecure_forwarding",
            message: "audit records are forwarded in plain text to at least one collector; use TLS"
                .into(),
        });
    }
    let log = state.audit.status();
    notices.extend(log_notices(
        log.percent,
        log.overwritten_unread,
        log.write_error.is_some(),
    ));
    notices
}

/// Fill level from which the log's capacity is a notice (the log's first warning).
pub const LOG_CAPACITY_NOTICE_PERCENT: u8 = 80;

/// The audit log's notices (S3.1-35 R2/R3): nearly full, records overwritten before a
/// collector received them, writing failing.
pub fn log_notices(percent: u8, overwritten_unread: u64, write_failing: bool) -> Vec<Notice> {
    let mut notices = Vec::new();
    if percent >= LOG_CAPACITY_NOTICE_PERCENT {
        notices.push(Notice {
            code: "log_capacity",
            message: format!(
                "the audit log is {percent} % full; the oldest records are overwritten when it is full: forward or export them"
            ),
        });
    }
    if overwritten_unread > 0 {
        notices.push(Notice {
            code: "log_overwritten",
            message: format!(
                "{overwritten_unread} audit records were overwritten before a collector received them"
            ),
        });
    }
    if write_failing {
        notices.push(Notice {
            code: "log_write_failing",
            message: "writing the audit log fails; events wait in memory and may be refused: check the disk"
                .into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(percent: u8, overwritten: u64, failing: bool) -> Vec<&'static str> {
        log_notices(percent, overwritten, failing)
            .into_iter()
            .map(|n| n.code)
            .collect()
    }

    #[test]
    fn the_log_is_a_notice_from_80_percent_on_after_unread_overwrites_and_while_writing_fails() {
        assert!(codes(0, 0, false).is_empty());
        assert!(codes(79, 0, false).is_empty());
        assert_eq!(codes(80, 0, false), ["log_capacity"]);
        assert_eq!(
            codes(100, 3, true),
            ["log_capacity", "log_overwritten", "log_write_failing"]
        );
        assert_eq!(codes(10, 1, false), ["log_overwritten"]);
        assert_eq!(codes(10, 0, true), ["log_write_failing"]);
        let n = log_notices(91, 1234, false);
        assert!(n[0].message.contains("91 %"), "{}", n[0].message);
        assert!(n[1].message.contains("1234"), "{}", n[1].message);
    }
}
