//! Reading the audit log: list with filters, export as JSON lines, status, and the purge of
//! personal data (S3.1-35, S3.1-41). Nobody can change or delete a single record: there is no
//! endpoint for it, and the log's files are append-only and sealed.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use mamori_audit::log::{Filter, LogStatus, PurgeReport, Record};
use mamori_audit::{Event, EventKind, Outcome};
use mamori_auth::Principal;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Caller};
use crate::state::AppState;

/// Which records: `?limit=1..1000&since=&until=&event=a,b&actor=&outcome=&from_seq=`. Times are
/// RFC 3339; `event` is a comma-separated list of event names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    limit: Option<usize>,
    since: Option<String>,
    until: Option<String>,
    event: Option<String>,
    actor: Option<String>,
    outcome: Option<String>,
    from_seq: Option<u64>,
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                ApiError::BadRequest(format!(
                    "{name} must be an RFC 3339 time, such as 2026-12-01T00:00:00Z"
                ))
            })
        })
        .transpose()
}

fn named<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| ApiError::BadRequest(format!("unknown {what}: {value:?}")))
}

impl Query {
    fn filter(&self) -> Result<Filter, ApiError> {
        let mut f = Filter::all();
        f.since = time_param("since", self.since.as_deref())?;
        f.until = time_param("until", self.until.as_deref())?;
        if let Some(events) = &self.event {
            f.kinds = events
                .split(',')
                .map(|e| named::<EventKind>("event", e.trim()))
                .collect::<Result<_, _>>()?;
        }
        if let Some(actor) = &self.actor {
            if actor.is_empty() || actor.len() > 64 {
                return Err(ApiError::BadRequest(
                    "actor must be 1 to 64 characters".into(),
                ));
            }
            f.actor = Some(actor.clone());
        }
        f.outcome = self
            .outcome
            .as_deref()
            .map(|o| named::<Outcome>("outcome", o))
            .transpose()?;
        f.from_seq = self.from_seq;
        Ok(f)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, mamori_audit::log::LogError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The newest matching records, oldest first.
pub async fn events(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<Query>,
) -> Result<Json<Vec<Record>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 1000".into()));
    }
    let filter = q.filter()?;
    Ok(Json(newest(&state, filter, limit).await?))
}

/// The newest `limit` records matching `filter`, oldest first: the API's list and the UI's
/// audit page.
pub async fn newest(
    state: &AppState,
    filter: Filter,
    limit: usize,
) -> Result<Vec<Record>, ApiError> {
    let audit = state.audit.clone();
    blocking(move || audit.tail(&filter, limit)).await
}

/// Every record matching `filter` as JSON lines, and the export recorded (who, how many, and
/// `filter_details`: the filter as the caller gave it): the API's export and the UI's.
pub async fn export_recorded(
    state: &AppState,
    p: &Principal,
    filter: Filter,
    filter_details: serde_json::Value,
) -> Result<Vec<u8>, ApiError> {
    let audit = state.audit.clone();
    let (count, body) = blocking(move || {
        let mut body = Vec::new();
        let n = audit.export_json_lines(&filter, &mut body)?;
        Ok((n, body))
    })
    .await?;
    state.audit_record(
        Event::new(EventKind::AuditLogExported, Outcome::Success)
            .actor(p.username.as_str())
            .source(p.origin.label())
            .details(json!({"records": count, "filter": filter_details})),
    );
    Ok(body)
}

/// An export as the browser saves it: JSON lines, as the attachment `audit-log.jsonl`.
pub fn json_lines_attachment(body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit-log.jsonl\"",
            ),
        ],
        body,
    )
        .into_response()
}

/// Every matching record as JSON lines (`application/x-ndjson`). The export itself is recorded.
pub async fn export(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<Query>,
) -> Result<Response, ApiError> {
    if q.limit.is_some() {
        return Err(ApiError::BadRequest(
            "export takes no limit; narrow it with since/until".into(),
        ));
    }
    let filter = q.filter()?;
    let details = json!({
        "since": q.since, "until": q.until, "event": q.event,
        "actor": q.actor.is_some(), "outcome": q.outcome, "from_seq": q.from_seq});
    let body = export_recorded(&state, &p, filter, details).await?;
    Ok(json_lines_attachment(body))
}

/// Fill level, sequence range, sealing epoch, what the collectors have not received, write
/// failures.
pub async fn status(State(state): State<AppState>) -> Json<LogStatus> {
    Json(state.audit.status())
}

/// `POST /api/v1/audit/purge`: destroy personal data (actor, source) older than a date.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Records wholly before this time (RFC 3339) lose their actor and source. The log keeps
    /// them by whole UTC days, so the purge covers every day that ends before it.
    pub before: String,
}

/// Destroys the personal data of records older than `before` (S3.1-41); audited.
pub async fn purge(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<PurgeRequest>,
) -> Result<Json<PurgeReport>, ApiError> {
    Ok(Json(purge_personal_data(&state, &p, &req.before).await?))
}

/// Destroys the personal data of records older than `before` (RFC 3339, not in the future)
/// and records the purge: the API's purge and the UI's.
pub async fn purge_personal_data(
    state: &AppState,
    p: &Principal,
    before: &str,
) -> Result<PurgeReport, ApiError> {
    let at = time_param("before", Some(before))?.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    if at > OffsetDateTime::now_utc() {
        return Err(ApiError::BadRequest(
            "before must not be in the future".into(),
        ));
    }
    let audit = state.audit.clone();
    let report = blocking(move || audit.purge_personal_data(at)).await?;
    state.audit_record(
        Event::new(EventKind::PersonalDataPurged, Outcome::Success)
            .actor(p.username.as_str())
            .source(p.origin.label())
            .details(json!({"before": before, "segments": report.segments,
                "records": report.records, "up_to_seq": report.up_to_seq})),
    );
    Ok(report)
}
