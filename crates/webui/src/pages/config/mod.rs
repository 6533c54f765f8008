//! The network configuration (issue 5): the running revision and a readable summary, the
//! history, one revision, the differences between two, and the editor that checks and commits a
//! whole configuration; the pending commit's banner with its countdown and the author's
//! **Confirm** button; the rollback to an earlier revision.
//!
//! Everything goes through the same service layer as the JSON API
//! (`mamori_http::handlers::config`): the pipeline of `mamori_config::Configs` with channel
//! [`Channel::Ui`], the committing connection as the anti-lockout session, and the audit record
//! of each outcome made by the API's own [`record`].
//!
//! Confirmation is an explicit click by the author, never automatic: a script that confirms as
//! soon as the page loads again would prove only that the browser still has an answer — very
//! likely over a connection opened before the change, which the firewall keeps as established
//! — and would keep a change nobody looked at. The page shows the deadline and a countdown
//! (the script updates it; without the script it is the time left when the page was made).
//!
//! A configuration is a large form (10,000 rules are about 4 MB urlencoded, as a browser sends
//! a textarea): only [`LARGE_FORMS`] accept up to [`LARGE_FORM_BYTES`], and only from a role
//! that may manage the configuration; every other form keeps the 16 KiB limit.

mod dhcp;
mod texts;
mod view;
mod words;

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use mamori_auth::model::Permission;
use mamori_config::{Channel, CommitMeta, ConfigError, Outcome, Step};
use mamori_http::AppState;
use mamori_http::error::ApiError;
use mamori_http::extract::{Caller, ConnInfo, decode_json_as};
use mamori_http::handlers::config::{
    Checked, Network, Problem, check_comment, check_refusal, config_error, confirm_window, record,
    record_confirm_refused, session_of,
};
use mamori_netconfig::NetworkConfig;
use serde::Deserialize;
use time::OffsetDateTime;

use self::dhcp::{DhcpTexts, DhcpView};
use self::texts::{EN, JA, Texts};
use self::view::{
    DEFAULT_WINDOW_MINUTES, DiffLine, MAX_WINDOW_MINUTES, PendingView, RevisionRow, Summary,
    WindowOption, diff_lines, step, windows,
};
use crate::form::{Field, Form};
use crate::i18n::Lang;
use crate::page::{Layout, PageCtx, error_page, render_status, see_other};

/// The largest form a configuration page accepts: a 10,000-rule configuration as a browser
/// sends it (about 4 MB: the canonical JSON is 2.5 MB, and urlencoding a textarea turns each
/// line break into `%0D%0A` and each quote into `%22`), with room to spare.
pub const LARGE_FORM_BYTES: usize = 8 * 1024 * 1024;
/// The routes that take a whole configuration: check and commit, and the re-authentication
/// prompt, which carries an interrupted commit's fields back to it.
pub const LARGE_FORMS: [&str; 3] = ["/ui/config/check", "/ui/config/commit", "/ui/reauth"];
/// The longest configuration text, in characters.
const MAX_CONFIG_CHARS: usize = LARGE_FORM_BYTES;

fn texts(lang: Lang) -> &'static Texts {
    lang.pick(&EN, &JA)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The pages' sub-navigation.
#[derive(Debug, Clone, Copy)]
struct Tabs {
    active: &'static str,
    can_manage: bool,
}

fn can_manage(ctx: &PageCtx) -> bool {
    ctx.caller()
        .is_some_and(|p| p.role.allows(Permission::ConfigManage))
}

fn tabs(ctx: &PageCtx, active: &'static str) -> Tabs {
    Tabs {
        active,
        can_manage: can_manage(ctx),
    }
}

fn pending_view(
    ctx: &PageCtx,
    t: &Texts,
    m: Option<&mamori_config::PendingMarker>,
) -> Option<PendingView> {
    m.map(|m| {
        PendingView::of(
            t,
            m,
            ctx.caller().map(|p| p.username.as_str()),
            can_manage(ctx),
            OffsetDateTime::now_utc(),
        )
    })
}

// ------------------------------------------------------------------------------ off

#[derive(Template)]
#[template(path = "config_off.html")]
struct OffPage {
    layout: Layout,
    t: &'static Texts,
}

/// Without `--factory-network` every page says so plainly: 200 for a page, 409 for an action.
fn not_managed(ctx: &PageCtx, status: StatusCode) -> Response {
    render_status(
        status,
        &OffPage {
            layout: ctx.layout("config"),
            t: texts(ctx.lang),
        },
    )
}

fn network(state: &AppState) -> Option<Arc<Network>> {
    state.network.clone()
}

/// A failure of the history in the reader's words. A revert that failed is named with its
/// details (the administrator must know); other internal failures are logged, not shown.
fn failure_message(lang: Lang, e: &ConfigError) -> String {
    let t = texts(lang);
    match e {
        ConfigError::NotFound(id) => return t.not_found.replace("{id}", &id.to_string()),
        ConfigError::RevertFailed { .. } => {
            tracing::error!(error = %e, "a network configuration revert failed");
        }
        e => tracing::error!(error = %e, "the configuration history failed"),
    }
    t.failed
        .replace("{detail}", &words::history_failure(lang, e))
}

/// The history failed: an error page.
fn failed(ctx: &PageCtx, e: &ConfigError) -> Response {
    let status = match e {
        ConfigError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_page(Some(ctx), status, &failure_message(ctx.lang, e))
}

fn busy(ctx: &PageCtx) -> Response {
    error_page(
        Some(ctx),
        StatusCode::INTERNAL_SERVER_ERROR,
        &crate::i18n::error_message(ctx.lang, &ApiError::Internal(String::new())),
    )
}

// ------------------------------------------------------------------------------ overview

#[derive(Template)]
#[template(path = "config.html")]
struct OverviewPage {
    layout: Layout,
    t: &'static Texts,
    tabs: Tabs,
    pending: Option<PendingView>,
    notice: Option<&'static str>,
    error: Option<String>,
    rev: RevisionRow,
    rescue_note: String,
    s: Summary,
    d: &'static DhcpTexts,
    dhcp: DhcpView,
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// The message for `?done=…`; anything but the known words shows nothing.
fn notice(t: &'static Texts, done: Option<&str>) -> Option<&'static str> {
    match done? {
        "committed" => Some(t.done_committed),
        "committed_final" => Some(t.done_committed_final),
        "confirmed" => Some(t.done_confirmed),
        "rolled_back" => Some(t.done_rolled_back),
        "rolled_back_final" => Some(t.done_rolled_back_final),
        _ => None,
    }
}

async fn overview(
    state: &AppState,
    ctx: &PageCtx,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Response {
    let Some(net) = network(state) else {
        return not_managed(ctx, status);
    };
    let t = texts(ctx.lang);
    let Some(read) = blocking(move || -> Result<_, ConfigError> {
        Ok((
            net.configs.running()?,
            net.configs.rescue_id()?,
            net.configs.pending()?,
        ))
    })
    .await
    else {
        return busy(ctx);
    };
    let (running, rescue, pending) = match read {
        Ok(x) => x,
        Err(e) => return failed(ctx, &e),
    };
    // The wan's DHCP clients, as the API reports them; a failed read is a line on the page.
    let d = ctx.lang.pick(&dhcp::EN, &dhcp::JA);
    let dhcp = DhcpView::of(d, mamori_http::handlers::network::read(state).await);
    render_status(
        status,
        &OverviewPage {
            layout: ctx.layout("config"),
            t,
            tabs: tabs(ctx, "running"),
            pending: pending_view(ctx, t, pending.as_ref()),
            notice,
            error,
            rev: RevisionRow::of(t, &running.info, words::comment(ctx.lang, &running.info)),
            rescue_note: t.rescue_note.replace("{id}", &rescue.to_string()),
            s: Summary::of(t, &running.config),
            d,
            dhcp,
        },
    )
}

/// `GET /ui/config`.
pub async fn show(
    State(state): State<AppState>,
    ctx: PageCtx,
    Query(q): Query<DoneQuery>,
) -> Response {
    let notice = notice(texts(ctx.lang), q.done.as_deref());
    overview(&state, &ctx, StatusCode::OK, notice, None).await
}

// ------------------------------------------------------------------------------ history

struct HistoryRow {
    rev: RevisionRow,
    running: bool,
    rescue: bool,
    pending: bool,
    from: bool,
    to: bool,
}

#[derive(Template)]
#[template(path = "config_history.html")]
struct HistoryPage {
    layout: Layout,
    t: &'static Texts,
    tabs: Tabs,
    pending: Option<PendingView>,
    rows: Vec<HistoryRow>,
    keep_note: String,
}

/// `GET /ui/config/history`: newest first, with radio buttons for a diff.
pub async fn history(State(state): State<AppState>, ctx: PageCtx) -> Response {
    let Some(net) = network(&state) else {
        return not_managed(&ctx, StatusCode::OK);
    };
    let t = texts(ctx.lang);
    let Some(read) = blocking(move || -> Result<_, ConfigError> {
        Ok((
            net.configs.history()?,
            net.configs.running_id()?,
            net.configs.rescue_id()?,
            net.configs.pending()?,
            net.configs.keep(),
        ))
    })
    .await
    else {
        return busy(&ctx);
    };
    let (infos, running, rescue, pending, keep) = match read {
        Ok(x) => x,
        Err(e) => return failed(&ctx, &e),
    };
    let pending_id = pending.as_ref().map(|p| p.new_revision);
    let rows = infos
        .iter()
        .rev()
        .enumerate()
        .map(|(i, info)| HistoryRow {
            rev: RevisionRow::of(t, info, words::comment(ctx.lang, info)),
            running: info.id == running,
            rescue: info.id == rescue,
            pending: Some(info.id) == pending_id,
            // The newest change by default: from the one before it to it.
            from: i == 1 || infos.len() == 1,
            to: i == 0,
        })
        .collect();
    render_status(
        StatusCode::OK,
        &HistoryPage {
            layout: ctx.layout("config"),
            t,
            tabs: tabs(&ctx, "history"),
            pending: pending_view(&ctx, t, pending.as_ref()),
            rows,
            keep_note: t.keep_note.replace("{keep}", &keep.to_string()),
        },
    )
}

// ------------------------------------------------------------------------------ one revision

#[derive(Template)]
#[template(path = "config_revision.html")]
struct RevisionPage {
    layout: Layout,
    t: &'static Texts,
    tabs: Tabs,
    pending: Option<PendingView>,
    rev: RevisionRow,
    title: String,
    json: String,
    is_running: bool,
    running: u64,
    windows: Vec<WindowOption>,
    comment: String,
    comment_hint: String,
    result: Option<ResultView>,
}

async fn revision_page(
    state: &AppState,
    ctx: &PageCtx,
    id: u64,
    status: StatusCode,
    typed: Option<(String, u32)>,
    result: Option<ResultView>,
) -> Response {
    let Some(net) = network(state) else {
        return not_managed(ctx, status);
    };
    let t = texts(ctx.lang);
    let Some(read) = blocking(move || -> Result<_, ConfigError> {
        Ok((
            net.configs.get(id)?,
            net.configs.running_id()?,
            net.configs.pending()?,
        ))
    })
    .await
    else {
        return busy(ctx);
    };
    let (rev, running, pending) = match read {
        Ok(x) => x,
        Err(e) => return failed(ctx, &e),
    };
    let (comment, minutes) = typed.unwrap_or((String::new(), DEFAULT_WINDOW_MINUTES));
    render_status(
        status,
        &RevisionPage {
            layout: ctx.layout("config"),
            t,
            tabs: tabs(ctx, "history"),
            pending: pending_view(ctx, t, pending.as_ref()),
            title: t.revision_n.replace("{id}", &id.to_string()),
            json: rev.config.to_canonical_json(),
            is_running: id == running,
            running,
            rev: RevisionRow::of(t, &rev.info, words::comment(ctx.lang, &rev.info)),
            windows: windows(t, minutes),
            comment,
            comment_hint: t.rollback_comment_hint.replace("{id}", &id.to_string()),
            result,
        },
    )
}

/// `GET /ui/config/revisions/{id}`.
pub async fn revision(
    State(state): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
) -> Response {
    if state.network.is_none() {
        return not_managed(&ctx, StatusCode::OK);
    }
    let Ok(id) = id.parse::<u64>() else {
        let t = texts(ctx.lang);
        return error_page(
            Some(&ctx),
            StatusCode::NOT_FOUND,
            &t.not_found.replace("{id}", "?"),
        );
    };
    revision_page(&state, &ctx, id, StatusCode::OK, None, None).await
}

// ------------------------------------------------------------------------------ diff

#[derive(Template)]
#[template(path = "config_diff.html")]
struct DiffPage {
    layout: Layout,
    t: &'static Texts,
    tabs: Tabs,
    pending: Option<PendingView>,
    from: u64,
    to: u64,
    title: String,
    legend: String,
    lines: Vec<DiffLine>,
}

#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// `GET /ui/config/diff?from=A[&to=B]` (B: the running revision).
pub async fn diff(
    State(state): State<AppState>,
    ctx: PageCtx,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(net) = network(&state) else {
        return not_managed(&ctx, StatusCode::OK);
    };
    let t = texts(ctx.lang);
    let parse = |v: Option<&str>| v.map(|v| v.trim().parse::<u64>());
    let (from, to) = match query {
        Ok(Query(q)) => match (parse(q.from.as_deref()), parse(q.to.as_deref())) {
            (Some(Ok(from)), None) => (from, None),
            (Some(Ok(from)), Some(Ok(to))) => (from, Some(to)),
            _ => return error_page(Some(&ctx), StatusCode::BAD_REQUEST, t.bad_query),
        },
        Err(_) => return error_page(Some(&ctx), StatusCode::BAD_REQUEST, t.bad_query),
    };
    let Some(read) = blocking(move || -> Result<_, ConfigError> {
        let to = match to {
            Some(to) => to,
            None => net.configs.running_id()?,
        };
        Ok((to, net.configs.diff(from, to)?, net.configs.pending()?))
    })
    .await
    else {
        return busy(&ctx);
    };
    let (to, text, pending) = match read {
        Ok(x) => x,
        Err(e) => return failed(&ctx, &e),
    };
    let fill = |s: &str| {
        s.replace("{from}", &from.to_string())
            .replace("{to}", &to.to_string())
    };
    render_status(
        StatusCode::OK,
        &DiffPage {
            layout: ctx.layout("config"),
            t,
            tabs: tabs(&ctx, "history"),
            pending: pending_view(&ctx, t, pending.as_ref()),
            from,
            to,
            title: fill(t.diff_title),
            legend: fill(t.diff_legend),
            lines: diff_lines(&text),
        },
    )
}

// ------------------------------------------------------------------------------ editor

/// What a check or a commit came to, as the editor shows it.
struct ResultView {
    /// `check-ok`, `check-refused`, `commit-refused`, `commit-reverted`, `invalid`.
    id: &'static str,
    ok: bool,
    message: String,
    problems: Vec<Problem>,
    diff: Vec<DiffLine>,
}

impl ResultView {
    fn message(id: &'static str, message: String) -> Self {
        Self {
            id,
            ok: false,
            message,
            problems: Vec::new(),
            diff: Vec::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "config_edit.html")]
struct EditPage {
    layout: Layout,
    t: &'static Texts,
    tabs: Tabs,
    pending: Option<PendingView>,
    config: String,
    comment: String,
    windows: Vec<WindowOption>,
    running: u64,
    result: Option<ResultView>,
}

/// What the editor's form held.
struct Typed {
    config: String,
    comment: String,
    minutes: u32,
}

async fn edit_page(
    state: &AppState,
    ctx: &PageCtx,
    status: StatusCode,
    typed: Option<Typed>,
    result: Option<ResultView>,
) -> Response {
    let Some(net) = network(state) else {
        return not_managed(ctx, status);
    };
    let t = texts(ctx.lang);
    let Some(read) = blocking(move || -> Result<_, ConfigError> {
        Ok((net.configs.running()?, net.configs.pending()?))
    })
    .await
    else {
        return busy(ctx);
    };
    let (running, pending) = match read {
        Ok(x) => x,
        Err(e) => return failed(ctx, &e),
    };
    let typed = typed.unwrap_or_else(|| Typed {
        config: running.config.to_canonical_json(),
        comment: String::new(),
        minutes: DEFAULT_WINDOW_MINUTES,
    });
    render_status(
        status,
        &EditPage {
            layout: ctx.layout("config"),
            t,
            tabs: tabs(ctx, "edit"),
            pending: pending_view(ctx, t, pending.as_ref()),
            config: typed.config,
            comment: typed.comment,
            windows: windows(t, typed.minutes),
            running: running.info.id,
            result,
        },
    )
}

/// `GET /ui/config/edit`: the running configuration as canonical JSON in a textarea.
pub async fn edit(State(state): State<AppState>, ctx: PageCtx) -> Response {
    edit_page(&state, &ctx, StatusCode::OK, None, None).await
}

#[derive(Debug, Deserialize)]
pub struct EditForm {
    config: Field<MAX_CONFIG_CHARS>,
    #[serde(default)]
    comment: Field<400>,
    #[serde(default)]
    confirm_minutes: Option<Field<8>>,
}

/// Why a form's values were not taken, in the reader's words.
fn form_values(
    t: &Texts,
    comment: &str,
    minutes: Option<&str>,
) -> Result<(u32, Option<std::time::Duration>), String> {
    if check_comment(comment).is_err() {
        return Err(t.comment_invalid.to_string());
    }
    let minutes = match minutes.map(str::trim) {
        None | Some("") => DEFAULT_WINDOW_MINUTES,
        Some(m) => m
            .parse::<u32>()
            .ok()
            .filter(|m| *m <= MAX_WINDOW_MINUTES)
            .ok_or_else(|| t.window_invalid.to_string())?,
    };
    let window = confirm_window(Some(minutes), None, Channel::Ui)
        .map_err(|_| t.window_invalid.to_string())?;
    Ok((minutes, window))
}

/// The candidate in the textarea, or the editor's message about why it is not one. Messages
/// name the place (line and column, or the field's path) and never repeat the input.
fn parse_candidate(lang: Lang, text: &str) -> Result<NetworkConfig, String> {
    decode_json_as::<NetworkConfig>(text.as_bytes()).map_err(|e| {
        texts(lang)
            .parse_error
            .replace("{detail}", &words::not_a_configuration(lang, &e, text))
    })
}

fn typed_of(f: &EditForm, minutes: u32) -> Typed {
    Typed {
        config: f.config.as_str().to_string(),
        comment: f.comment.as_str().to_string(),
        minutes,
    }
}

fn requested_minutes(f: &EditForm) -> u32 {
    f.confirm_minutes
        .as_ref()
        .and_then(|m| m.as_str().trim().parse().ok())
        .filter(|m| *m <= MAX_WINDOW_MINUTES)
        .unwrap_or(DEFAULT_WINDOW_MINUTES)
}

/// `POST /ui/config/check`: validation, anti-lockout for this connection, the parent's dry run
/// and the diff; changes nothing.
pub async fn check(
    State(state): State<AppState>,
    ctx: PageCtx,
    conn: ConnInfo,
    Form(f): Form<EditForm>,
) -> Response {
    let Some(net) = network(&state) else {
        return not_managed(&ctx, StatusCode::CONFLICT);
    };
    let t = texts(ctx.lang);
    let typed = typed_of(&f, requested_minutes(&f));
    let candidate = match parse_candidate(ctx.lang, f.config.as_str()) {
        Ok(c) => c,
        Err(m) => {
            let r = ResultView::message("invalid", m);
            return edit_page(
                &state,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(typed),
                Some(r),
            )
            .await;
        }
    };
    let session = session_of(&conn);
    let Some(answer) = blocking(move || check_refusal(&net, &candidate, session.as_ref())).await
    else {
        return busy(&ctx);
    };
    let Checked { refusal, diff } = match answer {
        Ok(a) => a,
        Err(e) => return failed(&ctx, &e),
    };
    let (status, result) = match refusal {
        None => (
            StatusCode::OK,
            ResultView {
                id: "check-ok",
                ok: true,
                message: t.check_ok.to_string(),
                problems: Vec::new(),
                diff: diff_lines(&diff),
            },
        ),
        Some((s, refusal)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ResultView {
                id: "check-refused",
                ok: false,
                message: t.check_refused.replace("{step}", step(t, s)),
                problems: words::problems(ctx.lang, &refusal),
                diff: diff_lines(&diff),
            },
        ),
    };
    edit_page(&state, &ctx, status, Some(typed), Some(result)).await
}

/// An outcome that did not stay, as the editor or the revision page shows it.
fn unsuccessful(lang: Lang, outcome: &Outcome, diff: String) -> (StatusCode, ResultView) {
    let t = texts(lang);
    match outcome {
        Outcome::Refused { step: s, error } => {
            let status = if *s == Step::Pending {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let mut message = t.commit_refused.replace("{step}", step(t, *s));
            if *s == Step::Pending {
                message = format!("{message} {}", t.pending_blocks);
            }
            (
                status,
                ResultView {
                    id: "commit-refused",
                    ok: false,
                    message,
                    problems: if *s == Step::Pending {
                        Vec::new()
                    } else {
                        words::problems(lang, error)
                    },
                    diff: diff_lines(&diff),
                },
            )
        }
        Outcome::Reverted { to, reason, .. } => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ResultView::message(
                "commit-reverted",
                t.commit_reverted
                    .replace("{to}", &to.to_string())
                    .replace("{reason}", &words::revert_reason(lang, reason)),
            ),
        ),
        // Committed and confirmed outcomes stayed; the callers never pass them here.
        other => {
            tracing::error!(outcome = ?other, "an outcome that stayed was shown as a failure");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                ResultView::message(
                    "commit-reverted",
                    crate::i18n::error_message(lang, &ApiError::Internal(String::new())),
                ),
            )
        }
    }
}

/// `POST /ui/config/commit` (re-authentication): the pipeline with channel `ui` and this
/// connection as the session to keep; recorded in the audit log as the API records it.
pub async fn commit(
    State(state): State<AppState>,
    ctx: PageCtx,
    caller: Caller,
    conn: ConnInfo,
    Form(f): Form<EditForm>,
) -> Response {
    let Some(net) = network(&state) else {
        return not_managed(&ctx, StatusCode::CONFLICT);
    };
    let t = texts(ctx.lang);
    let typed = typed_of(&f, requested_minutes(&f));
    let invalid = |m: String| ResultView::message("invalid", m);
    let (minutes, window) = match form_values(
        t,
        f.comment.as_str(),
        f.confirm_minutes.as_ref().map(|m| m.as_str()),
    ) {
        Ok(v) => v,
        Err(m) => {
            return edit_page(
                &state,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(typed),
                Some(invalid(m)),
            )
            .await;
        }
    };
    let candidate = match parse_candidate(ctx.lang, f.config.as_str()) {
        Ok(c) => c,
        Err(m) => {
            return edit_page(
                &state,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(typed),
                Some(invalid(m)),
            )
            .await;
        }
    };
    let meta = CommitMeta {
        author: caller.0.username.as_str().to_owned(),
        channel: Channel::Ui,
        comment: f.comment.as_str().to_owned(),
        session: session_of(&conn),
    };
    let n = net.clone();
    let Some(result) = blocking(move || {
        let running = n.configs.running()?;
        let diff = mamori_netconfig::diff(
            &running.config,
            &candidate,
            &format!("r{}", running.info.id),
            "candidate",
        );
        let outcome = n.configs.commit(candidate, meta, window, &*n.apply)?;
        Ok::<_, ConfigError>((outcome, diff))
    })
    .await
    else {
        return busy(&ctx);
    };
    let (outcome, diff) = match result {
        Ok(x) => x,
        Err(e) => {
            let m = failure_message(ctx.lang, &e);
            return edit_page(
                &state,
                &ctx,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(typed),
                Some(invalid(m)),
            )
            .await;
        }
    };
    record(&state, &caller, &outcome, Channel::Ui);
    match &outcome {
        Outcome::Committed { deadline, .. } => see_other(if deadline.is_some() {
            "/ui/config?done=committed"
        } else {
            "/ui/config?done=committed_final"
        }),
        other => {
            let (status, result) = unsuccessful(ctx.lang, other, diff);
            let typed = Typed { minutes, ..typed };
            edit_page(&state, &ctx, status, Some(typed), Some(result)).await
        }
    }
}

// ------------------------------------------------------------------------------ confirm

/// `POST /ui/config/confirm`: keeps the pending commit; only its author may.
pub async fn confirm(State(state): State<AppState>, ctx: PageCtx, caller: Caller) -> Response {
    let Some(net) = network(&state) else {
        return not_managed(&ctx, StatusCode::CONFLICT);
    };
    let t = texts(ctx.lang);
    let author = caller.0.username.as_str().to_owned();
    let Some(result) = blocking(move || net.configs.confirm_by(&author)).await else {
        return busy(&ctx);
    };
    match result {
        Ok(outcome) => {
            record(&state, &caller, &outcome, Channel::Ui);
            see_other("/ui/config?done=confirmed")
        }
        Err(e) => {
            let message = match &e {
                ConfigError::NoPending => t.confirm_none.to_string(),
                ConfigError::WindowExpired { .. } => t.confirm_expired.to_string(),
                ConfigError::NotCommitter { committer } => {
                    t.confirm_not_author.replace("{author}", committer)
                }
                e => failure_message(ctx.lang, e),
            };
            record_confirm_refused(&state, &caller, &config_error(e));
            overview(&state, &ctx, StatusCode::CONFLICT, None, Some(message)).await
        }
    }
}

// ------------------------------------------------------------------------------ rollback

#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    revision: Field<20>,
    #[serde(default)]
    comment: Field<400>,
    #[serde(default)]
    confirm_minutes: Option<Field<8>>,
}

/// `POST /ui/config/rollback` (re-authentication): revision N's configuration committed again
/// through the same pipeline; recorded.
pub async fn rollback(
    State(state): State<AppState>,
    ctx: PageCtx,
    caller: Caller,
    conn: ConnInfo,
    Form(f): Form<RollbackForm>,
) -> Response {
    let Some(net) = network(&state) else {
        return not_managed(&ctx, StatusCode::CONFLICT);
    };
    let t = texts(ctx.lang);
    let Ok(id) = f.revision.as_str().trim().parse::<u64>() else {
        return error_page(Some(&ctx), StatusCode::BAD_REQUEST, t.bad_query);
    };
    let comment = f.comment.as_str().to_owned();
    let (minutes, window) =
        match form_values(t, &comment, f.confirm_minutes.as_ref().map(|m| m.as_str())) {
            Ok(v) => v,
            Err(m) => {
                let typed = Some((comment, DEFAULT_WINDOW_MINUTES));
                let r = Some(ResultView::message("invalid", m));
                return revision_page(&state, &ctx, id, StatusCode::UNPROCESSABLE_ENTITY, typed, r)
                    .await;
            }
        };
    let meta = CommitMeta {
        author: caller.0.username.as_str().to_owned(),
        channel: Channel::Ui,
        comment: comment.clone(),
        session: session_of(&conn),
    };
    let n = net.clone();
    let Some(result) = blocking(move || {
        let running = n.configs.running()?;
        let target = n.configs.get(id)?;
        let diff = mamori_netconfig::diff(
            &running.config,
            &target.config,
            &format!("r{}", running.info.id),
            &format!("r{id}"),
        );
        let outcome = n.configs.rollback_to(id, meta, window, &*n.apply)?;
        Ok::<_, ConfigError>((outcome, diff))
    })
    .await
    else {
        return busy(&ctx);
    };
    let (outcome, diff) = match result {
        Ok(x) => x,
        Err(e) => return failed(&ctx, &e),
    };
    record(&state, &caller, &outcome, Channel::Ui);
    match &outcome {
        Outcome::Committed { deadline, .. } => see_other(if deadline.is_some() {
            "/ui/config?done=rolled_back"
        } else {
            "/ui/config?done=rolled_back_final"
        }),
        other => {
            let (status, result) = unsuccessful(ctx.lang, other, diff);
            revision_page(
                &state,
                &ctx,
                id,
                status,
                Some((comment, minutes)),
                Some(result),
            )
            .await
        }
    }
}

/// The dashboard's notice of a commit waiting for confirmation (none without network
/// management or without a pending commit with a window).
pub async fn pending_notice(state: &AppState, lang: Lang) -> Option<String> {
    let net = network(state)?;
    let m = blocking(move || net.configs.pending()).await?.ok()??;
    let deadline = m.deadline.map(view::at)?;
    Some(
        texts(lang)
            .dashboard_pending
            .replace("{rev}", &m.new_revision.to_string())
            .replace("{prev}", &m.previous_revision.to_string())
            .replace("{deadline}", &deadline)
            .replace("{author}", &m.author),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_known_done_words_give_a_message() {
        for t in [&EN, &JA] {
            for w in [
                "committed",
                "committed_final",
                "confirmed",
                "rolled_back",
                "rolled_back_final",
            ] {
                assert!(notice(t, Some(w)).is_some(), "{w}");
            }
            assert_eq!(notice(t, Some("<b>committed</b>")), None);
            assert_eq!(notice(t, None), None);
        }
    }

    #[test]
    fn the_form_takes_windows_of_0_to_60_minutes_and_printable_comments() {
        assert_eq!(
            form_values(&EN, "", None).unwrap(),
            (3, Some(std::time::Duration::from_secs(180)))
        );
        assert_eq!(form_values(&EN, "x", Some("0")).unwrap(), (0, None));
        assert_eq!(
            form_values(&EN, "x", Some("60")).unwrap().1,
            Some(std::time::Duration::from_secs(3600))
        );
        for bad in ["61", "-1", "abc", "1440"] {
            assert_eq!(
                form_values(&EN, "", Some(bad)),
                Err(EN.window_invalid.to_string()),
                "{bad}"
            );
        }
        assert_eq!(
            form_values(&JA, "a\nb", None),
            Err(JA.comment_invalid.to_string())
        );
        assert!(form_values(&EN, &"あ".repeat(201), None).is_err());
        assert!(form_values(&EN, &"あ".repeat(200), None).is_ok());
    }

    #[test]
    fn a_text_that_is_not_a_configuration_is_named_by_place_not_echoed() {
        let m = parse_candidate(Lang::En, "{\"interfaces\": [}").unwrap_err();
        assert!(m.contains("line 1"), "{m}");
        let m = parse_candidate(Lang::En, "{\"<script>alert(1)</script>\": 1}").unwrap_err();
        assert!(!m.contains("<script>"), "{m}");
        let m = parse_candidate(Lang::Ja, "[]").unwrap_err();
        assert!(m.starts_with("ネットワーク設定として読み取れません"), "{m}");
        let m = parse_candidate(Lang::Ja, "{\"interfaces\": [}").unwrap_err();
        assert!(m.contains("1 行") && !m.contains("line"), "{m}");
    }

    #[test]
    fn the_large_limit_is_for_the_configuration_forms_only() {
        const { assert!(LARGE_FORM_BYTES > mamori_http::MAX_BODY_BYTES) };
        let all: Vec<_> = crate::pages::endpoints()
            .into_iter()
            .filter(|e| e.method == axum::http::Method::POST && LARGE_FORMS.contains(&e.path))
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        assert_eq!(
            all,
            [
                "POST /ui/reauth",
                "POST /ui/config/check",
                "POST /ui/config/commit"
            ]
        );
    }
}
