//! Time (S3.1-35 ③ and R4, R1 D): the synchronisation status, the time servers an administrator
//! keeps in the store, and the manual set-time.
//!
//! chronyd runs under the privileged parent and the step watcher beside the audit log; this
//! crate knows them only through [`TimeControl`], which the daemon implements.

use axum::Json;
use axum::extract::State;
use mamori_audit::{Event, EventKind, Outcome};
use mamori_store::Table;
use mamori_time::{
    ManualSetTime, ManualStep, NtpApplied, NtpReport, TimeConfig, TimeError, TimeStatus,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;

/// The store key of the time configuration (table `Settings`).
pub const SETTINGS_KEY: &str = "time";

/// The daemon's time functions, as the API sees them. Every method may block (it asks the
/// privileged parent); handlers call them on the blocking pool.
pub trait TimeControl: Send + Sync {
    /// The configuration in force.
    fn config(&self) -> TimeConfig;
    /// Puts a configuration (already validated and stored) in force: the parent restarts or
    /// stops chronyd. An error means it could not be sent or the parent refused it.
    fn apply(&self, config: TimeConfig) -> Result<NtpApplied, String>;
    /// The state of NTP now, from the parent.
    fn report(&self) -> Result<NtpReport, String>;
    /// Sets the clock by hand (`mamori_time::set_time`), recorded as `time_changed`.
    fn set_time(&self, req: ManualSetTime) -> Result<ManualStep, TimeError>;
}

/// A device without time functions (tests of the HTTP layer alone).
#[derive(Debug, Default)]
pub struct NoTime;

impl TimeControl for NoTime {
    fn config(&self) -> TimeConfig {
        TimeConfig::default()
    }
    fn apply(&self, _: TimeConfig) -> Result<NtpApplied, String> {
        Err("time is not available in this process".into())
    }
    fn report(&self) -> Result<NtpReport, String> {
        Err("time is not available in this process".into())
    }
    fn set_time(&self, _: ManualSetTime) -> Result<ManualStep, TimeError> {
        Err(TimeError::Parent(
            "time is not available in this process".into(),
        ))
    }
}

/// `GET /api/v1/time`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TimeOverview {
    /// The device's clock now, RFC 3339 UTC.
    pub device_time: String,
    /// The clock is synchronised to an NTP source.
    pub synchronised: bool,
    /// Time servers are configured (synchronisation is on).
    pub ntp_enabled: bool,
    /// mamori's chronyd runs.
    pub chronyd_running: bool,
    /// Why chronyd does not run or did not answer (for example chrony is not installed).
    pub error: Option<String>,
    /// chronyd's status: reference, stratum, offset, last update, sources with their NTS state.
    pub status: Option<TimeStatus>,
}

impl TimeOverview {
    /// The overview for a report of the parent's (or the reason there is none).
    pub fn new(report: Result<NtpReport, String>) -> Self {
        let device_time = mamori_audit::now_rfc3339();
        match report {
            Ok(r) => Self {
                device_time,
                synchronised: r.synchronised(),
                ntp_enabled: r.enabled,
                chronyd_running: r.running,
                error: r.error,
                status: r.status,
            },
            Err(e) => Self {
                device_time,
                synchronised: false,
                ntp_enabled: false,
                chronyd_running: false,
                error: Some(e),
                status: None,
            },
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The synchronisation status and the device's clock, as the API and the UI show them.
pub async fn overview(state: &AppState) -> Result<TimeOverview, ApiError> {
    let control = state.time.clone();
    Ok(TimeOverview::new(blocking(move || control.report()).await?))
}

/// `GET /api/v1/time`: synchronised or not, reference, offset, sources and NTS, device time.
pub async fn status(State(state): State<AppState>) -> Result<Json<TimeOverview>, ApiError> {
    Ok(Json(overview(&state).await?))
}

/// `GET /api/v1/settings/time`: the time servers and policy.
pub async fn get(State(state): State<AppState>) -> Json<TimeConfig> {
    Json(state.time.config())
}

/// The answer to `PUT /api/v1/settings/time`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TimeApplied {
    /// chronyd runs with the new configuration (false: no servers, or it could not start).
    pub chronyd_running: bool,
    /// Why chronyd does not run although servers are configured.
    pub error: Option<String>,
}

/// `PUT /api/v1/settings/time`: replaces the configuration (validated, stored, then put in
/// force by the parent); recorded with before and after.
pub async fn put(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<TimeConfig>,
) -> Result<Json<TimeApplied>, ApiError> {
    req.validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let before = state.time.config();
    let store = state.store.clone();
    let stored = req.clone();
    blocking(move || store.write(|tx| tx.put(Table::Settings, SETTINGS_KEY, &stored)))
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let control = state.time.clone();
    let config = req.clone();
    let applied = blocking(move || control.apply(config)).await?;
    let outcome = if applied.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    state.audit_record(
        Event::new(EventKind::SettingsChanged, outcome)
            .actor(p.username.as_str())
            .source(p.origin.label())
            .details(json!({
                "setting": "time",
                "before": before,
                "after": req,
                "chronyd_running": applied.as_ref().ok().map(|a| a.running),
                "error": match &applied {
                    Ok(a) => a.error.clone(),
                    Err(e) => Some(e.clone()),
                },
            })),
    );
    let applied = applied.map_err(ApiError::Internal)?;
    Ok(Json(TimeApplied {
        chronyd_running: applied.running,
        error: applied.error,
    }))
}

/// `POST /api/v1/time/set`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTimeRequest {
    /// The new time, RFC 3339 (for example `2027-03-01T09:00:00+09:00`).
    #[schemars(length(min = 20, max = 40))]
    pub time: String,
    /// Set it even while NTP synchronisation runs (chronyd would slew the clock back).
    #[serde(default)]
    pub force: bool,
}

/// Parses an RFC 3339 time into milliseconds since the Unix epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let bad =
        || "`time` must be an RFC 3339 date and time, such as 2027-03-01T09:00:00Z".to_string();
    if text.len() > 40 {
        return Err(bad());
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

/// `POST /api/v1/time/set`: sets the clock by hand through the privileged parent; refused
/// while NTP runs unless forced (409); recorded as `time_changed` with cause `manual`.
pub async fn set(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<SetTimeRequest>,
) -> Result<Json<ManualStep>, ApiError> {
    let unix_ms = parse_time(&req.time).map_err(ApiError::BadRequest)?;
    let control = state.time.clone();
    let manual = ManualSetTime {
        unix_ms,
        force: req.force,
        actor: p.username.as_str().to_owned(),
        source: p.origin.label(),
    };
    match blocking(move || control.set_time(manual)).await? {
        Ok(step) => Ok(Json(step)),
        Err(TimeError::OutOfRange(reason)) => Err(ApiError::BadRequest(format!(
            "`time`: {reason} (accepted: from this software's build date to the end of 2099)"
        ))),
        Err(TimeError::Refused(reason)) => Err(ApiError::Conflict(reason)),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_only() {
        assert_eq!(
            parse_time("2027-03-01T00:00:00Z").unwrap(),
            1_803_859_200_000
        );
        assert_eq!(
            parse_time("2027-03-01T09:00:00.250+09:00").unwrap(),
            1_803_859_200_250
        );
        for bad in [
            "",
            "2027-03-01",
            "2027-03-01 00:00:00",
            "1803859200",
            "2027-03-01T00:00:00Z; rm",
            "2027-13-01T00:00:00Z",
            &"9".repeat(41),
        ] {
            // One fixed message: the input is never echoed.
            assert_eq!(
                parse_time(bad).unwrap_err(),
                parse_time("x").unwrap_err(),
                "{bad}"
            );
        }
    }
}
