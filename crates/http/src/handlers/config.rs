//! The network configuration (issue 5): the running revision, the history, diffs, and the
//! pipeline's commit, confirm and rollback (`mamori_config::Configs`), over the privileged
//! parent's [`Apply`].
//!
//! Every commit and rollback passes the re-authentication gate (the registry says so) and the
//! anti-lockout check for the session it comes from; every outcome is recorded in the audit log
//! by [`outcome_event`], which the daemon also uses for the reverts it makes by itself (a
//! confirm window running out, a restart during one).
//!
//! Bodies of a whole configuration may be large (10,000 rules are about 1.5 MB of JSON): these
//! handlers read them themselves, up to [`CONFIG_BODY_BYTES`] (the registry publishes it as
//! the operation's `x-mamori-max-body-bytes`), one at a time across the device, after the
//! guard has authenticated the caller. Every body is read and checked (media type, size, JSON
//! shape, comment, confirm window) before anything else is asked, so a malformed one is a
//! 400, 413 or 415 on every device, also on one that manages no network (409 otherwise).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mamori_audit::{Event, EventKind, Outcome as AuditOutcome};
use mamori_auth::AuthError;
use mamori_config::{
    Apply, Channel, CommitMeta, ConfigError, Configs, Outcome, PendingMarker, Refusal,
    RevertReason, Revision, RevisionInfo, Step,
};
use mamori_netconfig::{ManagementSession, NetworkConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Caller, ConnInfo, decode_json};
use crate::state::AppState;

/// The largest configuration body accepted (the privileged parent's frame cap is the same).
pub const CONFIG_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Time allowed to receive a configuration body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest confirm window, in minutes (a day).
pub const MAX_CONFIRM_MINUTES: u32 = 24 * 60;
/// Shortest confirm window in seconds: time for a client to reconnect and confirm.
pub const MIN_CONFIRM_SECONDS: u32 = 5;

/// The daemon's network management: the history and pipeline, and the privileged apply.
pub struct Network {
    /// Revisions and commit-confirm.
    pub configs: Arc<Configs>,
    /// The privileged parent's check, apply and probe.
    pub apply: Arc<dyn Apply + Send + Sync>,
}

impl Network {
    /// Network management over `configs`, applied through `apply`.
    pub fn new(configs: Arc<Configs>, apply: Arc<dyn Apply + Send + Sync>) -> Self {
        Self { configs, apply }
    }
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").finish_non_exhaustive()
    }
}

/// The device's network management, or 409 when it manages no network.
pub(crate) fn network(state: &AppState) -> Result<Arc<Network>, ApiError> {
    state.network.clone().ok_or_else(|| {
        ApiError::Conflict(
            "this device does not manage its network (mamorid runs without --factory-network)"
                .into(),
        )
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The API's error for a history error (the web UI maps the same way).
pub fn config_error(e: ConfigError) -> ApiError {
    match e {
        ConfigError::NotFound(_) => ApiError::Auth(AuthError::NotFound("revision")),
        e @ (ConfigError::NoPending
        | ConfigError::WindowExpired { .. }
        | ConfigError::NotCommitter { .. }) => ApiError::Conflict(e.to_string()),
        e => ApiError::Internal(e.to_string()),
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A commit waiting for confirmation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Pending {
    /// The revision being tried.
    pub revision: u64,
    /// The revision a revert goes back to.
    pub previous: u64,
    /// Who committed it (only they may confirm).
    pub author: String,
    /// From which channel.
    pub channel: String,
    /// The deadline, RFC 3339 UTC (none: a commit without a window, being applied).
    pub deadline: Option<String>,
    /// Seconds left before the revert.
    pub remaining_s: Option<u64>,
}

impl Pending {
    fn of(m: &PendingMarker) -> Self {
        let now = time::OffsetDateTime::now_utc();
        Self {
            revision: m.new_revision,
            previous: m.previous_revision,
            author: m.author.clone(),
            channel: m.channel.as_str().to_owned(),
            deadline: m.deadline.map(rfc3339),
            remaining_s: m
                .deadline
                .map(|d| u64::try_from((d - now).whole_seconds().max(0)).unwrap_or(0)),
        }
    }
}

/// A revision's metadata as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RevisionView {
    /// The revision number.
    pub id: u64,
    /// Who committed it (`mamori` for the rescue and for reverts).
    pub author: String,
    /// `api`, `cli`, `ui`, `console`, `boot` or `timeout`.
    pub channel: String,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// The comment.
    pub comment: String,
}

impl From<&RevisionInfo> for RevisionView {
    fn from(i: &RevisionInfo) -> Self {
        Self {
            id: i.id,
            author: i.author.clone(),
            channel: i.channel.as_str().to_owned(),
            time: rfc3339(i.time),
            comment: i.comment.clone(),
        }
    }
}

/// `GET /api/v1/config`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Running {
    /// The running revision.
    pub revision: RevisionView,
    /// Its configuration.
    #[schemars(with = "Value")]
    pub config: NetworkConfig,
    /// The rescue configuration's revision.
    pub rescue: u64,
    /// A commit waiting for confirmation.
    pub pending: Option<Pending>,
}

/// `GET /api/v1/config`: the running configuration and any pending commit.
pub async fn running(State(state): State<AppState>) -> Result<Json<Running>, ApiError> {
    let net = network(&state)?;
    let (rev, rescue, pending) = blocking(move || -> Result<_, ConfigError> {
        Ok((
            net.configs.running()?,
            net.configs.rescue_id()?,
            net.configs.pending()?,
        ))
    })
    .await?
    .map_err(config_error)?;
    Ok(Json(Running {
        revision: RevisionView::from(&rev.info),
        config: rev.config,
        rescue,
        pending: pending.as_ref().map(Pending::of),
    }))
}

/// `GET /api/v1/config/revisions`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct History {
    /// Every kept revision, newest first.
    pub revisions: Vec<RevisionView>,
    /// The running revision.
    pub running: u64,
    /// The rescue revision.
    pub rescue: u64,
    /// How many revisions are kept.
    pub keep: usize,
    /// A commit waiting for confirmation.
    pub pending: Option<Pending>,
}

/// `GET /api/v1/config/revisions`: the history, newest first.
pub async fn history(State(state): State<AppState>) -> Result<Json<History>, ApiError> {
    let net = network(&state)?;
    let h = blocking(move || -> Result<_, ConfigError> {
        let mut revisions: Vec<RevisionView> = net
            .configs
            .history()?
            .iter()
            .map(RevisionView::from)
            .collect();
        revisions.reverse();
        Ok(History {
            revisions,
            running: net.configs.running_id()?,
            rescue: net.configs.rescue_id()?,
            keep: net.configs.keep(),
            pending: net.configs.pending()?.as_ref().map(Pending::of),
        })
    })
    .await?
    .map_err(config_error)?;
    Ok(Json(h))
}

/// `GET /api/v1/config/revisions/{id}`: one revision, whole.
pub async fn revision(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Value>, ApiError> {
    let net = network(&state)?;
    let rev: Revision = blocking(move || net.configs.get(id))
        .await?
        .map_err(config_error)?;
    Ok(Json(json!({
        "revision": RevisionView::from(&rev.info),
        "config": rev.config,
    })))
}

/// `?from=&to=` of the diff endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The older revision.
    pub from: u64,
    /// The newer revision (default: the running one).
    pub to: Option<u64>,
}

/// `GET /api/v1/config/diff?from=A[&to=B]`: a unified diff of two revisions' configurations.
pub async fn diff(
    State(state): State<AppState>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|_| {
        ApiError::BadRequest("`from` (and optionally `to`) must be revision numbers".into())
    })?;
    let net = network(&state)?;
    let (to, text) = blocking(move || -> Result<_, ConfigError> {
        let to = match q.to {
            Some(t) => t,
            None => net.configs.running_id()?,
        };
        Ok((to, net.configs.diff(q.from, to)?))
    })
    .await?
    .map_err(config_error)?;
    Ok(Json(json!({"from": q.from, "to": to, "diff": text})))
}

/// The body of `POST /api/v1/config/check` and `POST /api/v1/config/commit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// The whole candidate configuration.
    #[schemars(with = "Value")]
    pub config: NetworkConfig,
    /// Recorded with the revision (at most 200 characters, no control characters).
    #[serde(default)]
    pub comment: String,
    /// The confirm window in minutes (1 to 1440); 0 commits without one. Absent: 10 minutes
    /// for the API and the CLI, 3 for the web UI, none on the console.
    #[serde(default)]
    pub confirm_minutes: Option<u32>,
    /// The confirm window in seconds (5 to 86,400), for automation that checks reachability
    /// itself; not together with `confirm_minutes`.
    #[serde(default)]
    pub confirm_seconds: Option<u32>,
}

/// The body of `POST /api/v1/config/rollback`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The revision whose configuration is committed again.
    pub revision: u64,
    /// Recorded with the new revision (default `rollback to rN`).
    #[serde(default)]
    pub comment: String,
    /// As for a commit.
    #[serde(default)]
    pub confirm_minutes: Option<u32>,
    /// As for a commit.
    #[serde(default)]
    pub confirm_seconds: Option<u32>,
}

/// Checks a comment: bounded, printable.
pub fn check_comment(comment: &str) -> Result<(), ApiError> {
    if comment.chars().count() > 200 || comment.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "`comment` must be at most 200 characters without control characters".into(),
        ));
    }
    Ok(())
}

/// The confirm window asked for (in minutes or in seconds), or the channel's default.
pub fn confirm_window(
    minutes: Option<u32>,
    seconds: Option<u32>,
    channel: Channel,
) -> Result<Option<Duration>, ApiError> {
    match (minutes, seconds) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "give `confirm_minutes` or `confirm_seconds`, not both".into(),
        )),
        (None, None) => Ok(channel.default_confirm_window()),
        (Some(0), None) | (None, Some(0)) => Ok(None),
        (Some(m), None) if m <= MAX_CONFIRM_MINUTES => {
            Ok(Some(Duration::from_secs(u64::from(m) * 60)))
        }
        (None, Some(s)) if (MIN_CONFIRM_SECONDS..=MAX_CONFIRM_MINUTES * 60).contains(&s) => {
            Ok(Some(Duration::from_secs(u64::from(s))))
        }
        _ => Err(ApiError::BadRequest(format!(
            "`confirm_minutes` must be 0 to {MAX_CONFIRM_MINUTES}, `confirm_seconds` 0 or \
             {MIN_CONFIRM_SECONDS} to {}",
            MAX_CONFIRM_MINUTES * 60
        ))),
    }
}

/// Where a change comes from: the console, the `mamori` command, or the API.
fn channel(conn: &ConnInfo, headers: &HeaderMap) -> Channel {
    if conn.local.is_none() {
        return Channel::Console;
    }
    let cli = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("mamori-cli/"));
    if cli { Channel::Cli } else { Channel::Api }
}

/// The management session a change over HTTPS comes from (none on the console).
pub fn session_of(conn: &ConnInfo) -> Option<ManagementSession> {
    Some(ManagementSession {
        source: conn.origin.source?,
        listener: conn.local?,
    })
}

/// Reads a large JSON body, one at a time across the device.
async fn large_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    // A length declared over the cap is refused before waiting for the slot or reading a byte.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| usize::try_from(n).map_or(true, |n| n > CONFIG_BODY_BYTES)) {
        return Err(ApiError::BodyTooLarge);
    }
    let _permit = tokio::time::timeout(BODY_TIMEOUT, state.large_bodies.acquire())
        .await
        .map_err(|_| ApiError::Busy)?
        .map_err(|_| ApiError::Busy)?;
    let bytes = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, CONFIG_BODY_BYTES))
        .await
        .map_err(|_| ApiError::BodyTimeout)?
        .map_err(|_| ApiError::BodyTooLarge)?;
    decode_json(&bytes)
}

/// One validation problem as the API reports it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Problem {
    /// JSON pointer to the value at fault.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A refusal's problems: the validation errors with their paths, or one message.
pub fn refusal_problems(error: &Refusal) -> Vec<Problem> {
    match error {
        Refusal::Invalid(errors) => errors
            .0
            .iter()
            .map(|e| Problem {
                path: e.path.clone(),
                message: e.kind.to_string(),
            })
            .collect(),
        other => vec![Problem {
            path: String::new(),
            message: other.to_string(),
        }],
    }
}

/// An outcome as JSON (the API's answer and the audit record's details).
pub fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Committed {
            revision,
            previous,
            deadline,
        } => json!({
            "result": "committed",
            "revision": revision,
            "previous": previous,
            "confirm_deadline": deadline.map(rfc3339),
        }),
        Outcome::Confirmed { revision } => json!({"result": "confirmed", "revision": revision}),
        Outcome::Reverted {
            from,
            to,
            recorded,
            reason,
        } => json!({
            "result": "reverted",
            "from": from,
            "to": to,
            "recorded": recorded,
            "reason": reason_code(reason),
            "detail": reason.to_string(),
        }),
        Outcome::Refused { step, error } => json!({
            "result": "refused",
            "step": step,
            "problems": refusal_problems(error),
        }),
        _ => json!({"result": "unknown"}),
    }
}

fn reason_code(r: &RevertReason) -> &'static str {
    match r {
        RevertReason::ApplyFailed(_) => "apply_failed",
        RevertReason::ProbeFailed(_) => "probe_failed",
        RevertReason::Timeout { .. } => "not_confirmed",
        RevertReason::Restart { .. } => "restart",
        RevertReason::Interrupted => "interrupted",
    }
}

/// The audit record of an outcome (without actor and source: the caller adds them).
pub fn outcome_event(outcome: &Outcome, channel: Channel) -> Event {
    let (kind, result) = match outcome {
        Outcome::Committed { .. } => (EventKind::ConfigCommitted, AuditOutcome::Success),
        Outcome::Confirmed { .. } => (EventKind::ConfigConfirmed, AuditOutcome::Success),
        Outcome::Reverted { .. } => (EventKind::ConfigReverted, AuditOutcome::Success),
        _ => (EventKind::ConfigCommitted, AuditOutcome::Failure),
    };
    let mut details = outcome_json(outcome);
    details["channel"] = json!(channel.as_str());
    Event::new(kind, result).details(details)
}

/// Records an outcome in the audit log with the caller as actor and source (the API and the
/// web UI record the same way).
pub fn record(state: &AppState, caller: &Caller, outcome: &Outcome, channel: Channel) {
    state.audit_record(
        outcome_event(outcome, channel)
            .actor(caller.0.username.as_str())
            .source(caller.0.origin.label()),
    );
}

/// The HTTP answer to an outcome: 200 when committed or confirmed, 409 while another commit
/// waits, 422 for a refused candidate, 500 when the apply or probe failed and was undone. A
/// failure carries the API's usual `error` object (code and a message naming the first
/// problem) beside the outcome's own fields.
fn answer(outcome: &Outcome) -> Response {
    let mut body = outcome_json(outcome);
    let (status, code) = match outcome {
        Outcome::Committed { .. } | Outcome::Confirmed { .. } => {
            return (StatusCode::OK, Json(body)).into_response();
        }
        Outcome::Refused {
            step: mamori_config::Step::Pending,
            ..
        } => (StatusCode::CONFLICT, "commit_pending"),
        Outcome::Refused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "config_refused"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "config_reverted"),
    };
    body["error"] = json!({"code": code, "message": summary(outcome)});
    (status, Json(body)).into_response()
}

/// One line saying why a commit did not stay.
pub fn summary(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Refused { step, error } => {
            let problems = refusal_problems(error);
            let first = problems.first().map_or(String::new(), |p| {
                if p.path.is_empty() {
                    p.message.clone()
                } else {
                    format!("{}: {}", p.path, p.message)
                }
            });
            let more = match problems.len() {
                0 | 1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            format!("refused at step {step}: {first}{more}")
        }
        Outcome::Reverted { reason, to, .. } => {
            format!("reverted to revision {to}: {reason}")
        }
        Outcome::Committed { revision, .. } => format!("committed as revision {revision}"),
        Outcome::Confirmed { revision } => format!("revision {revision} confirmed"),
        _ => "unknown outcome".into(),
    }
}

/// The answer to `POST /api/v1/config/check`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CheckAnswer {
    /// The candidate would commit: valid, keeps this session, and the parent's dry run passed.
    pub ok: bool,
    /// The step that refused it (`validate`, `management`, `check`).
    pub step: Option<String>,
    /// What is wrong, each with its JSON pointer.
    pub problems: Vec<Problem>,
    /// A unified diff from the running configuration to the candidate.
    pub diff: String,
}

/// What a check of a candidate found, typed: the web UI words the refusal in its reader's
/// language, the API as [`CheckAnswer`].
#[derive(Debug)]
pub struct Checked {
    /// The step that refused it and why; `None`: it would commit.
    pub refusal: Option<(Step, Refusal)>,
    /// A unified diff from the running configuration to the candidate.
    pub diff: String,
}

/// Validates a candidate, runs the anti-lockout check for `session` and the parent's dry run,
/// and diffs it against the running configuration. Changes nothing.
pub fn check_refusal(
    net: &Network,
    candidate: &NetworkConfig,
    session: Option<&ManagementSession>,
) -> Result<Checked, ConfigError> {
    let running = net.configs.running()?;
    let diff = mamori_netconfig::diff(
        &running.config,
        candidate,
        &format!("r{}", running.info.id),
        "candidate",
    );
    let refusal = if let Err(e) = candidate.validate() {
        Some((Step::Validate, Refusal::Invalid(e)))
    } else if let Some(Err(e)) =
        session.map(|s| mamori_netconfig::check_keeps_management(candidate, s))
    {
        Some((Step::Management, Refusal::CutsManagement(e)))
    } else if let Err(e) = net.apply.check(candidate) {
        Some((Step::Check, Refusal::Check(e)))
    } else {
        None
    };
    Ok(Checked { refusal, diff })
}

/// [`check_refusal`] as the API answers it.
pub fn check_candidate(
    net: &Network,
    candidate: &NetworkConfig,
    session: Option<&ManagementSession>,
) -> Result<CheckAnswer, ConfigError> {
    let Checked { refusal, diff } = check_refusal(net, candidate, session)?;
    Ok(match refusal {
        Some((step, error)) => CheckAnswer {
            ok: false,
            step: Some(step.to_string()),
            problems: refusal_problems(&error),
            diff,
        },
        None => CheckAnswer {
            ok: true,
            step: None,
            problems: Vec::new(),
            diff,
        },
    })
}

/// The body of a check or a commit, read and checked whole (a check refuses what the commit
/// would): the request, where it comes from and its confirm window.
async fn commit_request(
    state: &AppState,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: Body,
) -> Result<(CommitRequest, Channel, Option<Duration>), ApiError> {
    let req: CommitRequest = large_body(state, headers, body).await?;
    check_comment(&req.comment)?;
    let channel = channel(conn, headers);
    let window = confirm_window(req.confirm_minutes, req.confirm_seconds, channel)?;
    Ok((req, channel, window))
}

/// `POST /api/v1/config/check`: what a commit of this candidate would do, without doing it.
pub async fn check(
    State(state): State<AppState>,
    conn: ConnInfo,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CheckAnswer>, ApiError> {
    let (req, _, _) = commit_request(&state, &conn, &headers, body).await?;
    let net = network(&state)?;
    let session = session_of(&conn);
    blocking(move || check_candidate(&net, &req.config, session.as_ref()))
        .await?
        .map(Json)
        .map_err(config_error)
}

/// `POST /api/v1/config/commit`: the pipeline (validate, anti-lockout, dry run, persisted
/// marker, apply, probe, confirm window); recorded.
pub async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    conn: ConnInfo,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (req, channel, window) = commit_request(&state, &conn, &headers, body).await?;
    let net = network(&state)?;
    let meta = CommitMeta {
        author: caller.0.username.as_str().to_owned(),
        channel,
        comment: req.comment,
        session: session_of(&conn),
    };
    let n = net.clone();
    let outcome = blocking(move || n.configs.commit(req.config, meta, window, &*n.apply))
        .await?
        .map_err(config_error)?;
    record(&state, &caller, &outcome, channel);
    Ok(answer(&outcome))
}

/// `POST /api/v1/config/rollback`: commits revision N's configuration again, through the same
/// pipeline; recorded.
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    conn: ConnInfo,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> Result<Response, ApiError> {
    check_comment(&req.comment)?;
    let channel = channel(&conn, &headers);
    let window = confirm_window(req.confirm_minutes, req.confirm_seconds, channel)?;
    let net = network(&state)?;
    let meta = CommitMeta {
        author: caller.0.username.as_str().to_owned(),
        channel,
        comment: req.comment,
        session: session_of(&conn),
    };
    let n = net.clone();
    let outcome = blocking(move || n.configs.rollback_to(req.revision, meta, window, &*n.apply))
        .await?
        .map_err(config_error)?;
    record(&state, &caller, &outcome, channel);
    Ok(answer(&outcome))
}

/// Records a confirmation that was refused (nothing pending, the window over, not the author).
pub fn record_confirm_refused(state: &AppState, caller: &Caller, e: &ApiError) {
    state.audit_record(
        Event::new(EventKind::ConfigConfirmed, AuditOutcome::Failure)
            .actor(caller.0.username.as_str())
            .source(caller.0.origin.label())
            .details(json!({"reason": e.to_string()})),
    );
}

/// `POST /api/v1/config/confirm`: keeps the pending commit (only its author may).
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    conn: ConnInfo,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let net = network(&state)?;
    let author = caller.0.username.as_str().to_owned();
    let result = blocking(move || net.configs.confirm_by(&author)).await?;
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            let e = config_error(e);
            record_confirm_refused(&state, &caller, &e);
            return Err(e);
        }
    };
    record(&state, &caller, &outcome, channel(&conn, &headers));
    Ok(answer(&outcome))
}
