//! The audit log (S3.1-35, S3.1-41): the newest records, filtered by time, event, user and
//! outcome, older pages, the state of the log, an export as JSON lines (itself recorded), and
//! for administrators the purge of personal data before a date (itself recorded).
//!
//! Nobody can change or delete a single record: the page offers no such control and the UI
//! has no such route. The filter is a GET form; a value that is not understood is named next
//! to its field and never echoed anywhere but in the field itself (escaped).

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mamori_audit::log::{Filter, Record};
use mamori_audit::{Event, EventKind, Outcome};
use mamori_auth::model::Permission;
use mamori_http::AppState;
use mamori_http::error::ApiError;
use mamori_http::extract::Caller;
use mamori_http::handlers::audit as service;
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::form::{Field, Form, checkbox};
use crate::guard::encode;
use crate::i18n::{Lang, error_message};
use crate::page::{Layout, PageCtx, render_status, see_other};

/// Records on one page.
const PAGE: usize = 100;
/// Longest filter value kept (longer ones are refused and shown cut).
const MAX_VALUE: usize = 256;
/// Longest username the actor filter takes (as the API).
const MAX_ACTOR: usize = 64;
/// Longest details summary in the table, in characters.
const MAX_DETAILS: usize = 240;
/// The largest stretch of records read at once when looking for an older page.
const MAX_WINDOW: u64 = 65_536;

struct Texts {
    title: &'static str,
    intro: &'static str,
    filter_h: &'static str,
    since: &'static str,
    until: &'static str,
    time_hint: &'static str,
    event: &'static str,
    all_events: &'static str,
    actor: &'static str,
    actor_hint: &'static str,
    outcome: &'static str,
    any_outcome: &'static str,
    success: &'static str,
    failure: &'static str,
    from_seq: &'static str,
    from_seq_hint: &'static str,
    apply: &'static str,
    clear: &'static str,
    records_h: &'static str,
    newest_first: &'static str,
    older_page: &'static str,
    col_seq: &'static str,
    col_time: &'static str,
    col_event: &'static str,
    col_actor: &'static str,
    col_source: &'static str,
    col_outcome: &'static str,
    col_details: &'static str,
    no_records: &'static str,
    fix_filter: &'static str,
    removed: &'static str,
    pages_label: &'static str,
    older: &'static str,
    newest: &'static str,
    export: &'static str,
    export_hint: &'static str,
    status_h: &'static str,
    fill: &'static str,
    capacity: &'static str,
    first_seq: &'static str,
    last_seq: &'static str,
    epoch: &'static str,
    overwritten: &'static str,
    dropped: &'static str,
    writing: &'static str,
    writing_ok: &'static str,
    writing_failing: &'static str,
    nothing: &'static str,
    unreadable: &'static str,
    err_time: &'static str,
    err_order: &'static str,
    err_event: &'static str,
    err_actor: &'static str,
    err_outcome: &'static str,
    err_seq: &'static str,
    err_summary: &'static str,
    purge_h: &'static str,
    purge_intro: &'static str,
    purge_days: &'static str,
    purge_before: &'static str,
    purge_confirm: &'static str,
    purge_submit: &'static str,
    purge_dialog: &'static str,
    err_purge_date: &'static str,
    err_purge_future: &'static str,
    err_purge_confirm: &'static str,
    purged_some: &'static str,
    purged_none: &'static str,
    groups: [&'static str; 5],
}

const EN: Texts = Texts {
    title: "Audit log",
    intro: "The security events of this device. Records cannot be changed or deleted one by one: each is sealed and chained to the one before, so that a change anywhere is detected when the log is verified.",
    filter_h: "Filter",
    since: "From (UTC)",
    until: "Until (UTC)",
    time_hint: "Date and time in UTC, such as 2026-12-01T09:00. A date alone means the start of that day for \u{201c}From\u{201d} and the whole day for \u{201c}Until\u{201d}.",
    event: "Event",
    all_events: "All events",
    actor: "User",
    actor_hint: "The exact username. Records whose personal data was purged do not match.",
    outcome: "Outcome",
    any_outcome: "Any",
    success: "Success",
    failure: "Failure",
    from_seq: "From record no.",
    from_seq_hint: "Only records with this number or a higher one.",
    apply: "Show",
    clear: "Clear the filter",
    records_h: "Records",
    newest_first: "Newest first, at most 100 on a page.",
    older_page: "Older records, newest first, at most 100 on a page.",
    col_seq: "No.",
    col_time: "Time (UTC)",
    col_event: "Event",
    col_actor: "User",
    col_source: "Source",
    col_outcome: "Outcome",
    col_details: "Details",
    no_records: "No records match.",
    fix_filter: "Correct the filter to see the records.",
    removed: "(removed)",
    pages_label: "Pages of records",
    older: "Older records",
    newest: "Newest records",
    export: "Export (JSON lines)",
    export_hint: "Downloads every record that matches the filter, not only this page, as one JSON object per line. The export itself is recorded in the log.",
    status_h: "State of the log",
    fill: "Fill level",
    capacity: "Used of capacity",
    first_seq: "Oldest record kept",
    last_seq: "Newest record",
    epoch: "Sealing epoch",
    overwritten: "Records overwritten before a collector received them",
    dropped: "Events refused while writing failed",
    writing: "Writing",
    writing_ok: "Working normally",
    writing_failing: "Failing:",
    nothing: "\u{2014}",
    unreadable: "The log could not be read. An administrator should verify it (mamori audit verify).",
    err_time: "Not a date and time. Use the form 2026-12-01T09:00 (UTC), or a date such as 2026-12-01.",
    err_order: "\u{201c}Until\u{201d} must be later than \u{201c}From\u{201d}.",
    err_event: "Choose an event from the list.",
    err_actor: "A username has at most 64 characters.",
    err_outcome: "Choose an outcome from the list.",
    err_seq: "A record number is a whole number, such as 1200.",
    err_summary: "The filter has a mistake. Correct the marked field.",
    purge_h: "Purge personal data",
    purge_intro: "Removes the usernames and source addresses from the records before a date (S3.1-41). The records themselves stay, with their time, event, outcome and details, and the log still verifies. This cannot be undone. The purge itself is recorded.",
    purge_days: "The log keeps its records in files of whole UTC days, and the purge works by those days: a day is purged only when all of it lies before 00:00 UTC of the date. Records of the date itself and later keep their personal data.",
    purge_before: "Purge before (date, UTC)",
    purge_confirm: "I understand that the personal data cannot be restored",
    purge_submit: "Purge personal data",
    purge_dialog: "Remove the usernames and source addresses from every record of the days before this date? This cannot be undone.",
    err_purge_date: "Enter a date such as 2026-11-01.",
    err_purge_future: "The date must not be later than today (UTC).",
    err_purge_confirm: "Tick the box to confirm that the purge cannot be undone.",
    purged_some: "Personal data was removed from {n} records.",
    purged_none: "No day was old enough: no personal data was removed.",
    groups: [
        "Logins and sessions",
        "Users and credentials",
        "Device and settings",
        "Network and hardware",
        "Audit log",
    ],
};

const JA: Texts = Texts {
    title: "監査ログ",
    intro: "この機器のセキュリティイベントの記録です。記録を 1 件ずつ変更・削除することはできません。各記録は封印され、直前の記録と連結されているため、どこかが変更されるとログの検証で検出されます。",
    filter_h: "絞り込み",
    since: "開始 (UTC)",
    until: "終了 (UTC)",
    time_hint: "UTC の日時を入力します (例: 2026-12-01T09:00)。日付だけの場合、「開始」はその日の始まり、「終了」はその日の終わりまでを表します。",
    event: "イベント",
    all_events: "すべてのイベント",
    actor: "ユーザー",
    actor_hint: "ユーザー名と完全に一致するものを表示します。個人データを消去した記録は一致しません。",
    outcome: "結果",
    any_outcome: "すべて",
    success: "成功",
    failure: "失敗",
    from_seq: "記録番号 (以降)",
    from_seq_hint: "この番号以降の記録だけを表示します。",
    apply: "表示",
    clear: "絞り込みを解除",
    records_h: "記録",
    newest_first: "新しい順に、1 ページ最大 100 件を表示します。",
    older_page: "より古い記録を、新しい順に 1 ページ最大 100 件表示しています。",
    col_seq: "番号",
    col_time: "日時 (UTC)",
    col_event: "イベント",
    col_actor: "ユーザー",
    col_source: "接続元",
    col_outcome: "結果",
    col_details: "詳細",
    no_records: "一致する記録はありません。",
    fix_filter: "記録を表示するには、絞り込みの条件を修正してください。",
    removed: "(消去済み)",
    pages_label: "記録のページ",
    older: "より古い記録",
    newest: "最新の記録",
    export: "エクスポート (JSON Lines)",
    export_hint: "このページだけでなく、条件に一致するすべての記録を 1 行 1 件の JSON 形式でダウンロードします。エクスポートしたこと自体もログに記録されます。",
    status_h: "ログの状態",
    fill: "使用率",
    capacity: "使用量 / 容量",
    first_seq: "保存されている最も古い記録",
    last_seq: "最新の記録",
    epoch: "封印エポック",
    overwritten: "転送先が受信する前に上書きされた記録",
    dropped: "書き込み失敗中に受け付けられなかったイベント",
    writing: "書き込み",
    writing_ok: "正常",
    writing_failing: "失敗しています:",
    nothing: "\u{2014}",
    unreadable: "ログを読み取れませんでした。管理者がログを検証してください (mamori audit verify)。",
    err_time: "日時として読み取れません。2026-12-01T09:00 (UTC) の形式、または 2026-12-01 のような日付で入力してください。",
    err_order: "「終了」は「開始」より後の日時にしてください。",
    err_event: "一覧からイベントを選んでください。",
    err_actor: "ユーザー名は 64 文字以内です。",
    err_outcome: "一覧から結果を選んでください。",
    err_seq: "記録番号は 1200 のような整数で入力してください。",
    err_summary: "絞り込みの条件に誤りがあります。印の付いた項目を修正してください。",
    purge_h: "個人データの消去",
    purge_intro: "指定した日付より前の記録から、ユーザー名と接続元アドレスを消去します (S3.1-41)。記録そのもの (日時、イベント、結果、詳細) は残り、ログの検証もそのまま成功します。この操作は元に戻せません。消去したこと自体もログに記録されます。",
    purge_days: "ログは UTC の 1 日ごとのファイルに記録を保存しており、消去もその日単位で行われます。その日全体が指定日の 00:00 (UTC) より前にある日だけが消去されます。指定日当日以降の記録の個人データは残ります。",
    purge_before: "この日付より前を消去 (UTC)",
    purge_confirm: "個人データを元に戻せないことを理解しました",
    purge_submit: "個人データを消去",
    purge_dialog: "この日付より前の日のすべての記録から、ユーザー名と接続元アドレスを消去しますか? この操作は元に戻せません。",
    err_purge_date: "2026-11-01 のような日付を入力してください。",
    err_purge_future: "今日 (UTC) より後の日付は指定できません。",
    err_purge_confirm: "消去を元に戻せないことを確認するチェックを入れてください。",
    purged_some: "{n} 件の記録から個人データを消去しました。",
    purged_none: "対象となる古い日がなかったため、個人データは消去されませんでした。",
    groups: [
        "ログインとセッション",
        "ユーザーと認証情報",
        "機器と設定",
        "ネットワークとハードウェア",
        "監査ログ",
    ],
};

fn texts(lang: Lang) -> &'static Texts {
    lang.pick(&EN, &JA)
}

/// Every event the log knows, by its stable name, with a label in each language, grouped as
/// the event select shows them (index into `Texts::groups`). Names the running build does not
/// know are left out of the select; events not listed here show their name.
const EVENTS: &[(&str, usize, &str, &str)] = &[
    ("login_succeeded", 0, "Login succeeded", "ログイン成功"),
    ("login_failed", 0, "Login failed", "ログイン失敗"),
    (
        "login_threshold_exceeded",
        0,
        "Account locked after failed logins",
        "ログイン失敗によるアカウントロック",
    ),
    (
        "source_throttled",
        0,
        "Source throttled after failed logins",
        "ログイン失敗による接続元の制限",
    ),
    ("logout", 0, "Logout", "ログアウト"),
    (
        "session_expired",
        0,
        "Session expired",
        "セッションの期限切れ",
    ),
    ("session_revoked", 0, "Session ended", "セッションの終了"),
    (
        "reauthenticated",
        0,
        "Re-authentication",
        "本人確認 (再認証)",
    ),
    ("access_denied", 0, "Access denied", "アクセス拒否"),
    (
        "connection_refused",
        0,
        "Connection refused (not allowed source)",
        "接続拒否 (許可されていない接続元)",
    ),
    ("password_changed", 1, "Password changed", "パスワード変更"),
    (
        "credential_reset",
        1,
        "Credentials reset",
        "認証情報のリセット",
    ),
    (
        "mfa_changed",
        1,
        "Second factor changed",
        "二要素認証の変更",
    ),
    (
        "recovery_code_used",
        1,
        "Recovery code used",
        "リカバリーコードの使用",
    ),
    (
        "token_created",
        1,
        "API token created",
        "API トークンの作成",
    ),
    (
        "token_revoked",
        1,
        "API token revoked",
        "API トークンの無効化",
    ),
    ("token_used", 1, "API token used", "API トークンの使用"),
    ("user_created", 1, "User created", "ユーザーの作成"),
    ("user_changed", 1, "User changed", "ユーザーの変更"),
    ("user_deleted", 1, "User deleted", "ユーザーの削除"),
    (
        "device_provisioned",
        2,
        "Device provisioned",
        "機器の初期設定",
    ),
    (
        "service_started",
        2,
        "Management service started",
        "管理サービスの開始",
    ),
    (
        "service_stopped",
        2,
        "Management service stopped",
        "管理サービスの停止",
    ),
    (
        "settings_changed",
        2,
        "Security settings changed",
        "セキュリティ設定の変更",
    ),
    (
        "software_changed",
        2,
        "Software changed",
        "ソフトウェアの変更",
    ),
    (
        "firewall_ruleset_changed",
        2,
        "Firewall rules changed",
        "ファイアウォールルールの変更",
    ),
    (
        "config_committed",
        2,
        "Network configuration committed",
        "ネットワーク設定の確定",
    ),
    (
        "config_confirmed",
        2,
        "Network configuration confirmed",
        "ネットワーク設定の承認",
    ),
    (
        "config_reverted",
        2,
        "Network configuration reverted",
        "ネットワーク設定の切り戻し",
    ),
    (
        "config_applied",
        2,
        "Network configuration applied at start",
        "起動時のネットワーク設定適用",
    ),
    (
        "firewall_dropped",
        2,
        "Packets dropped by the firewall",
        "ファイアウォールによる破棄",
    ),
    ("time_changed", 2, "Clock changed", "時刻の変更"),
    (
        "time_sync_changed",
        2,
        "Time synchronisation changed",
        "時刻同期の状態変化",
    ),
    ("link_down", 3, "Link down", "リンクダウン"),
    ("link_up", 3, "Link up", "リンクアップ"),
    (
        "link_events_suppressed",
        3,
        "Link changes summarised",
        "リンク変化の集約",
    ),
    ("upstream_lost", 3, "Upstream lost", "上流回線の切断"),
    (
        "upstream_restored",
        3,
        "Upstream restored",
        "上流回線の復旧",
    ),
    (
        "interface_added",
        3,
        "Network interface added",
        "ネットワークインターフェースの追加",
    ),
    (
        "interface_removed",
        3,
        "Network interface removed",
        "ネットワークインターフェースの削除",
    ),
    (
        "usb_device_added",
        3,
        "USB device attached",
        "USB 機器の接続",
    ),
    (
        "usb_device_removed",
        3,
        "USB device detached",
        "USB 機器の取り外し",
    ),
    (
        "monitor_events_missed",
        3,
        "System events missed",
        "システムイベントの取りこぼし",
    ),
    (
        "monitor_failed",
        3,
        "System-event monitor failed",
        "システムイベント監視の停止",
    ),
    (
        "audit_log_replaced",
        4,
        "Audit log replaced",
        "監査ログの置き換え",
    ),
    (
        "audit_log_repaired",
        4,
        "Audit log tail repaired at start",
        "起動時の監査ログ末尾の修復",
    ),
    (
        "audit_log_capacity",
        4,
        "Audit log capacity warning",
        "監査ログ容量の警告",
    ),
    (
        "audit_log_overwritten",
        4,
        "Audit records overwritten",
        "監査ログの上書き",
    ),
    (
        "audit_log_write_failed",
        4,
        "Audit log write failure",
        "監査ログの書き込み失敗",
    ),
    (
        "audit_log_verified",
        4,
        "Audit log verified",
        "監査ログの検証",
    ),
    (
        "audit_log_exported",
        4,
        "Audit log exported",
        "監査ログのエクスポート",
    ),
    (
        "personal_data_purged",
        4,
        "Personal data purged",
        "個人データの消去",
    ),
];

/// The stable name of an event kind (as the API and the export write it).
fn kind_name(kind: EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The event kind of a stable name, if this build knows it.
fn parse_kind(name: &str) -> Option<EventKind> {
    serde_json::from_value(Value::String(name.to_string())).ok()
}

/// What people read for an event kind.
fn kind_label(lang: Lang, name: &str) -> String {
    EVENTS.iter().find(|(n, ..)| *n == name).map_or_else(
        || name.to_string(),
        |(_, _, en, ja)| lang.pick(*en, *ja).to_string(),
    )
}

fn parse_outcome(s: &str) -> Option<Outcome> {
    match s {
        "success" => Some(Outcome::Success),
        "failure" => Some(Outcome::Failure),
        _ => None,
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    }
}

// ------------------------------------------------------------------------------- the filter

/// The filter as the address carries it, each value as typed (first occurrence wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Typed {
    since: String,
    until: String,
    event: String,
    actor: String,
    outcome: String,
    from_seq: String,
    /// Paging: only records below this seq (the "older" link).
    before_seq: String,
}

impl Typed {
    fn from_query(query: Option<&str>) -> Typed {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
        let mut t = Typed::default();
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in &pairs {
            let slot = match k.as_str() {
                "since" => &mut t.since,
                "until" => &mut t.until,
                "event" => &mut t.event,
                "actor" => &mut t.actor,
                "outcome" => &mut t.outcome,
                "from_seq" => &mut t.from_seq,
                "before_seq" => &mut t.before_seq,
                _ => continue,
            };
            if seen.contains(&k.as_str()) {
                continue;
            }
            seen.push(k.as_str());
            *slot = v.clone();
        }
        t
    }

    /// The query string of this filter (empty values left out), with `before_seq` for paging.
    fn query(&self, before_seq: Option<u64>) -> String {
        let before = before_seq.map(|b| b.to_string()).unwrap_or_default();
        [
            ("since", self.since.trim()),
            ("until", self.until.trim()),
            ("event", self.event.as_str()),
            ("actor", self.actor.as_str()),
            ("outcome", self.outcome.as_str()),
            ("from_seq", self.from_seq.trim()),
            ("before_seq", before.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
    }

    /// What the form shows again: the values, cut to a sane length.
    fn shown(&self) -> Typed {
        let cut = |s: &str| s.chars().take(MAX_VALUE).collect::<String>();
        Typed {
            since: cut(&self.since),
            until: cut(&self.until),
            event: cut(&self.event),
            actor: cut(&self.actor),
            outcome: cut(&self.outcome),
            from_seq: cut(&self.from_seq),
            before_seq: cut(&self.before_seq),
        }
    }
}

/// The fields of the filter form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Since,
    Until,
    Event,
    Actor,
    Outcome,
    FromSeq,
}

/// Why a filter value was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    BadTime,
    UntilNotAfterSince,
    UnknownEvent,
    ActorTooLong,
    UnknownOutcome,
    BadSeq,
}

fn problem_message(t: &Texts, p: Problem) -> &'static str {
    match p {
        Problem::BadTime => t.err_time,
        Problem::UntilNotAfterSince => t.err_order,
        Problem::UnknownEvent => t.err_event,
        Problem::ActorTooLong => t.err_actor,
        Problem::UnknownOutcome => t.err_outcome,
        Problem::BadSeq => t.err_seq,
    }
}

/// A filter that was understood.
#[derive(Debug, Clone)]
struct Parsed {
    filter: Filter,
    /// Paging: only records below this seq.
    before_seq: Option<u64>,
}

impl Parsed {
    /// The filter as the export records it (the same shape as the API's).
    fn details(&self) -> Value {
        let f = &self.filter;
        let time = |t: Option<OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
        json!({
            "since": time(f.since),
            "until": time(f.until),
            "event": f.kinds.first().map(|k| kind_name(*k)),
            "actor": f.actor.is_some(),
            "outcome": f.outcome.map(outcome_name),
            "from_seq": f.from_seq,
        })
    }
}

/// A time as the filter takes it, in UTC: what a `datetime-local` or `date` input sends
/// (`2026-12-01T09:00`, with seconds and fractions or without, a space for the `T` too), or
/// RFC 3339 with an offset. A date alone is the start of that day, or with `end_of_day` the
/// start of the next (so that "until" a date includes the date).
fn parse_time(s: &str, end_of_day: bool) -> Option<OffsetDateTime> {
    let s = s.trim();
    if s.len() > 40 {
        return None;
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let local = s.replacen(' ', "T", 1);
    for format in [
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
    ] {
        if let Ok(t) = PrimitiveDateTime::parse(&local, format) {
            return Some(t.assume_utc());
        }
    }
    let day = Date::parse(s, format_description!("[year]-[month]-[day]")).ok()?;
    let day = if end_of_day { day.next_day()? } else { day };
    Some(day.midnight().assume_utc())
}

fn parse_seq(s: &str) -> Result<Option<u64>, Problem> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::BadSeq);
    }
    s.parse().map(Some).map_err(|_| Problem::BadSeq)
}

/// The filter the typed values describe, or every field that is wrong (each once).
fn parse(typed: &Typed) -> Result<Parsed, Vec<(Input, Problem)>> {
    let mut problems = Vec::new();
    let mut f = Filter::all();
    let mut time = |input, s: &str, end_of_day| {
        if s.trim().is_empty() {
            None
        } else if let Some(t) = (s.len() <= MAX_VALUE)
            .then(|| parse_time(s, end_of_day))
            .flatten()
        {
            Some(t)
        } else {
            problems.push((input, Problem::BadTime));
            None
        }
    };
    f.since = time(Input::Since, &typed.since, false);
    f.until = time(Input::Until, &typed.until, true);
    if let (Some(s), Some(u)) = (f.since, f.until)
        && u <= s
    {
        problems.push((Input::Until, Problem::UntilNotAfterSince));
    }
    if !typed.event.is_empty() {
        match parse_kind(&typed.event) {
            Some(k) if typed.event.len() <= MAX_VALUE => f.kinds = vec![k],
            _ => problems.push((Input::Event, Problem::UnknownEvent)),
        }
    }
    if !typed.actor.is_empty() {
        if typed.actor.len() > MAX_ACTOR {
            problems.push((Input::Actor, Problem::ActorTooLong));
        } else {
            f.actor = Some(typed.actor.clone());
        }
    }
    if !typed.outcome.is_empty() {
        match parse_outcome(&typed.outcome) {
            Some(o) => f.outcome = Some(o),
            None => problems.push((Input::Outcome, Problem::UnknownOutcome)),
        }
    }
    match parse_seq(&typed.from_seq) {
        Ok(s) => f.from_seq = s,
        Err(p) => problems.push((Input::FromSeq, p)),
    }
    // The paging position comes from our own link; a bad one starts at the newest page.
    let before_seq = parse_seq(&typed.before_seq).ok().flatten();
    if problems.is_empty() {
        Ok(Parsed {
            filter: f,
            before_seq,
        })
    } else {
        Err(problems)
    }
}

/// Whether a record matches the filter, as the log's own query decides (for older pages).
fn matches(f: &Filter, e: &Event, personal_purged: bool) -> bool {
    let ms = |t: OffsetDateTime| t.unix_timestamp_nanos() / 1_000_000;
    let in_time = if f.since.is_none() && f.until.is_none() {
        true
    } else {
        OffsetDateTime::parse(&e.time, &Rfc3339).is_ok_and(|t| {
            let t = ms(t);
            f.since.is_none_or(|s| t >= ms(s)) && f.until.is_none_or(|u| t < ms(u))
        })
    };
    in_time
        && (f.kinds.is_empty() || f.kinds.contains(&e.event))
        && f.actor
            .as_ref()
            .is_none_or(|a| !personal_purged && e.actor.as_ref() == Some(a))
        && f.outcome.is_none_or(|o| o == e.outcome)
}

/// The newest `limit` records matching `filter` below `before_seq`, oldest first: windows of
/// records are read backwards from `before_seq`, each twice as long as the last, until the page
/// is full or the oldest record (or `from_seq`) is reached.
fn older(
    log: &mamori_audit::AuditLog,
    filter: &Filter,
    before_seq: u64,
    limit: usize,
) -> Result<Vec<Record>, mamori_audit::LogError> {
    // Only what exists: from the oldest record kept (or `from_seq`) to the newest, so that a
    // paging position far off costs nothing.
    let status = log.status();
    let (Some(first), Some(last)) = (status.first_seq, status.last_seq) else {
        return Ok(Vec::new());
    };
    let floor = filter.from_seq.unwrap_or(0).max(first);
    let mut out: Vec<Record> = Vec::new();
    let mut hi = before_seq.min(last.saturating_add(1));
    let mut window = u64::try_from(limit).unwrap_or(MAX_WINDOW).saturating_mul(2);
    while out.len() < limit && hi > floor {
        let lo = hi.saturating_sub(window).max(floor);
        let mut found = Vec::new();
        for r in log.records(lo) {
            let r = r?;
            if r.event.seq >= hi {
                break;
            }
            if matches(filter, &r.event, r.personal_purged) {
                found.push(r);
            }
        }
        found.append(&mut out);
        out = found;
        hi = lo;
        window = window.saturating_mul(2).min(MAX_WINDOW);
    }
    let skip = out.len().saturating_sub(limit);
    out.drain(..skip);
    Ok(out)
}

// ------------------------------------------------------------------------------- the page

/// One record as the table shows it.
struct Row {
    seq: u64,
    time: String,
    event: String,
    event_label: String,
    actor: String,
    source: String,
    failure: bool,
    outcome: &'static str,
    details: String,
}

/// A short, plain-text summary of an event's details: `key: value` pairs, cut at
/// [`MAX_DETAILS`] characters. The template escapes it.
fn summarise(details: &Value) -> String {
    let text = match details {
        Value::Null => String::new(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                v => format!("{k}: {v}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if text.chars().count() > MAX_DETAILS {
        let mut cut: String = text.chars().take(MAX_DETAILS - 1).collect();
        cut.push('\u{2026}');
        cut
    } else {
        text
    }
}

/// A record's time as the table shows it: `2026-12-01 09:00:05` (the column says UTC).
fn table_time(rfc3339: &str) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| rfc3339.to_string())
}

fn row(lang: Lang, t: &Texts, r: &Record) -> Row {
    let e = &r.event;
    let name = kind_name(e.event);
    let personal = |v: &Option<String>| {
        if r.personal_purged {
            t.removed.to_string()
        } else {
            v.clone().unwrap_or_else(|| t.nothing.to_string())
        }
    };
    Row {
        seq: e.seq,
        time: table_time(&e.time),
        event_label: kind_label(lang, &name),
        event: name,
        actor: personal(&e.actor),
        source: personal(&e.source),
        failure: e.outcome == Outcome::Failure,
        outcome: match e.outcome {
            Outcome::Success => t.success,
            Outcome::Failure => t.failure,
        },
        details: summarise(&e.details),
    }
}

fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n;
    let mut tenths = 0;
    let mut unit = 0;
    while value >= 1024 && unit < UNITS.len() - 1 {
        tenths = (value % 1024) * 10 / 1024;
        value /= 1024;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} {}", UNITS[0])
    } else {
        format!("{value}.{tenths} {}", UNITS[unit])
    }
}

struct EventOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

struct EventGroup {
    label: &'static str,
    options: Vec<EventOption>,
}

/// The event select: every event this build knows, in its group.
fn event_groups(lang: Lang, t: &Texts, selected: &str) -> Vec<EventGroup> {
    t.groups
        .iter()
        .enumerate()
        .map(|(i, label)| EventGroup {
            label,
            options: EVENTS
                .iter()
                .filter(|(name, group, ..)| *group == i && parse_kind(name).is_some())
                .map(|(name, _, en, ja)| EventOption {
                    value: name,
                    label: lang.pick(*en, *ja),
                    selected: *name == selected,
                })
                .collect(),
        })
        .filter(|g| !g.options.is_empty())
        .collect()
}

/// The messages next to each filter field.
#[derive(Debug, Default)]
struct FieldErrors {
    since: Option<&'static str>,
    until: Option<&'static str>,
    event: Option<&'static str>,
    actor: Option<&'static str>,
    outcome: Option<&'static str>,
    from_seq: Option<&'static str>,
}

impl FieldErrors {
    fn of(t: &Texts, problems: &[(Input, Problem)]) -> FieldErrors {
        let mut e = FieldErrors::default();
        for (input, p) in problems {
            let slot = match input {
                Input::Since => &mut e.since,
                Input::Until => &mut e.until,
                Input::Event => &mut e.event,
                Input::Actor => &mut e.actor,
                Input::Outcome => &mut e.outcome,
                Input::FromSeq => &mut e.from_seq,
            };
            slot.get_or_insert(problem_message(t, *p));
        }
        e
    }
}

/// The log's state, as the status card shows it.
struct StatusView {
    percent: u8,
    used: String,
    capacity: String,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    epoch: u32,
    overwritten_unread: u64,
    dropped: u64,
    write_error: Option<String>,
}

/// The purge form's state: what was typed, and a refusal next to its field.
#[derive(Debug, Default)]
struct PurgeView {
    before: String,
    /// "before", "confirm", "top" or "".
    error_at: &'static str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    t: &'static Texts,
    typed: Typed,
    errors: FieldErrors,
    filter_ok: bool,
    event_groups: Vec<EventGroup>,
    any_outcome_selected: bool,
    rows: Vec<Row>,
    /// Whether this is an older page (not the newest).
    paged: bool,
    older_link: Option<String>,
    newest_link: Option<String>,
    export_link: String,
    notice: Option<String>,
    top_error: Option<String>,
    status: StatusView,
    can_purge: bool,
    purge: PurgeView,
    /// Today's date in UTC, the latest the purge takes.
    today: String,
}

/// A time as a `datetime-local` input takes it (UTC): `2026-12-01T09:00:05`, with
/// milliseconds only when there are any.
fn input_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format = if t.millisecond() == 0 {
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")
    } else {
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]")
    };
    t.format(&format).unwrap_or_default()
}

fn today() -> String {
    let format = format_description!("[year]-[month]-[day]");
    OffsetDateTime::now_utc()
        .date()
        .format(&format)
        .unwrap_or_default()
}

fn status_view(log: &mamori_audit::LogStatus) -> StatusView {
    StatusView {
        percent: log.percent,
        used: bytes_text(log.used_bytes),
        capacity: bytes_text(log.capacity_bytes),
        first_seq: log.first_seq,
        last_seq: log.last_seq,
        epoch: log.epoch,
        overwritten_unread: log.overwritten_unread,
        dropped: log.dropped,
        write_error: log.write_error.clone(),
    }
}

/// What [`build`] is asked to show.
struct Ask {
    typed: Typed,
    notice: Option<String>,
    purge: PurgeView,
}

/// The page for a filter, with its records (when the filter is understood) and the status.
/// Returns the status code the page goes out with.
async fn build(state: &AppState, ctx: &PageCtx, ask: Ask) -> (StatusCode, AuditPage) {
    let t = texts(ctx.lang);
    let role = ctx.principal.as_ref().map(|p| p.role);
    let parsed = parse(&ask.typed);
    let log_status = state.audit.status();
    let mut status = StatusCode::OK;
    let mut top_error = None;
    let (rows, paged, older_link, errors) = match &parsed {
        Ok(p) => {
            let result = match p.before_seq {
                None => service::newest(state, p.filter.clone(), PAGE).await,
                Some(before) => {
                    let log = state.audit.clone();
                    let filter = p.filter.clone();
                    tokio::task::spawn_blocking(move || older(&log, &filter, before, PAGE))
                        .await
                        .map_err(|e| ApiError::Internal(e.to_string()))
                        .and_then(|r| r.map_err(|e| ApiError::Internal(e.to_string())))
                }
            };
            let records = result.unwrap_or_else(|e| {
                tracing::error!(error = ?e, "reading the audit log for the UI failed");
                status = StatusCode::INTERNAL_SERVER_ERROR;
                top_error = Some(t.unreadable.to_string());
                Vec::new()
            });
            let oldest = records.first().map(|r| r.event.seq);
            let floor = p
                .filter
                .from_seq
                .unwrap_or(0)
                .max(log_status.first_seq.unwrap_or(1));
            let older_link = oldest
                .filter(|o| records.len() == PAGE && *o > floor)
                .map(|o| format!("/ui/audit?{}", ask.typed.query(Some(o))));
            let rows = records.iter().rev().map(|r| row(ctx.lang, t, r)).collect();
            (
                rows,
                p.before_seq.is_some(),
                older_link,
                FieldErrors::default(),
            )
        }
        Err(problems) => {
            status = StatusCode::BAD_REQUEST;
            top_error = Some(t.err_summary.to_string());
            (Vec::new(), false, None, FieldErrors::of(t, problems))
        }
    };
    let mut shown = ask.typed.shown();
    if let Ok(p) = &parsed {
        // Times go back into the date-time inputs in the form those take.
        shown.since = p.filter.since.map(input_time).unwrap_or_default();
        shown.until = p.filter.until.map(input_time).unwrap_or_default();
    }
    let page = AuditPage {
        layout: ctx.layout("audit"),
        t,
        event_groups: event_groups(ctx.lang, t, &shown.event),
        any_outcome_selected: parse_outcome(&shown.outcome).is_none(),
        filter_ok: parsed.is_ok(),
        errors,
        rows,
        paged,
        older_link,
        newest_link: paged.then(|| {
            let q = ask.typed.query(None);
            if q.is_empty() {
                "/ui/audit".to_string()
            } else {
                format!("/ui/audit?{q}")
            }
        }),
        export_link: {
            let q = ask.typed.query(None);
            if q.is_empty() {
                "/ui/audit/export".to_string()
            } else {
                format!("/ui/audit/export?{q}")
            }
        },
        notice: ask.notice,
        top_error,
        status: status_view(&log_status),
        can_purge: role.is_some_and(|r| r.allows(Permission::SecurityManage)),
        purge: ask.purge,
        today: today(),
        typed: shown,
    };
    (status, page)
}

/// The success message after a purge, from `?purged=<records>`; anything but a number shows
/// nothing.
fn purge_notice(t: &Texts, query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let (_, n) = pairs.iter().find(|(k, _)| k == "purged")?;
    if n.is_empty() || n.len() > 20 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    Some(if n == 0 {
        t.purged_none.to_string()
    } else {
        t.purged_some.replace("{n}", &n.to_string())
    })
}

/// `GET /ui/audit`.
pub async fn show(State(state): State<AppState>, ctx: PageCtx, RawQuery(q): RawQuery) -> Response {
    let ask = Ask {
        typed: Typed::from_query(q.as_deref()),
        notice: purge_notice(texts(ctx.lang), q.as_deref()),
        purge: PurgeView::default(),
    };
    let (status, page) = build(&state, &ctx, ask).await;
    render_status(status, &page)
}

/// `GET /ui/audit/export`: every record matching the filter as JSON lines, as a file; the
/// export is recorded as the API's is. A filter that is not understood shows the page with
/// the message next to its field.
pub async fn export(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    method: Method,
    RawQuery(q): RawQuery,
) -> Response {
    let typed = Typed::from_query(q.as_deref());
    let parsed = match parse(&typed) {
        Ok(parsed) => parsed,
        Err(_) => {
            let ask = Ask {
                typed,
                notice: None,
                purge: PurgeView::default(),
            };
            let (status, page) = build(&state, &ctx, ask).await;
            return render_status(status, &page);
        }
    };
    // A HEAD request learns what it would get, and exports nothing.
    if method == Method::HEAD {
        return ([(header::CONTENT_TYPE, "application/x-ndjson")], ()).into_response();
    }
    let details = parsed.details();
    match service::export_recorded(&state, &p, parsed.filter, details).await {
        Ok(body) => service::json_lines_attachment(body),
        Err(e) => {
            tracing::error!(error = ?e, "exporting the audit log for the UI failed");
            let ask = Ask {
                typed,
                notice: None,
                purge: PurgeView::default(),
            };
            let (_, mut page) = build(&state, &ctx, ask).await;
            page.top_error = Some(texts(ctx.lang).unreadable.to_string());
            render_status(StatusCode::INTERNAL_SERVER_ERROR, &page)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PurgeForm {
    #[serde(default)]
    before: Field<64>,
    #[serde(default, deserialize_with = "checkbox")]
    confirm: bool,
}

/// Why a purge date was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PurgeProblem {
    NotADate,
    Future,
}

/// The purge's `before` as the service takes it (RFC 3339, 00:00 UTC of the date), from a
/// date `YYYY-MM-DD` no later than `today`.
fn purge_before(typed: &str, today: Date) -> Result<String, PurgeProblem> {
    let day = Date::parse(typed.trim(), format_description!("[year]-[month]-[day]"))
        .map_err(|_| PurgeProblem::NotADate)?;
    if day > today {
        return Err(PurgeProblem::Future);
    }
    day.midnight()
        .assume_utc()
        .format(&Rfc3339)
        .map_err(|_| PurgeProblem::NotADate)
}

/// `POST /ui/audit/purge` (administrators, after re-authentication): destroys the personal
/// data of the whole UTC days before the date; recorded as the API's purge is.
pub async fn purge(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Form(f): Form<PurgeForm>,
) -> Response {
    let t = texts(ctx.lang);
    let typed_before: String = f.before.as_str().chars().take(MAX_VALUE).collect();
    let refuse = |status: StatusCode, at: &'static str, message: String| {
        let state = state.clone();
        let ctx = ctx.clone();
        let before = typed_before.clone();
        async move {
            let ask = Ask {
                typed: Typed::default(),
                notice: None,
                purge: PurgeView {
                    before,
                    error_at: at,
                    error: Some(message),
                },
            };
            let (_, page) = build(&state, &ctx, ask).await;
            render_status(status, &page)
        }
    };
    let before = match purge_before(f.before.as_str(), OffsetDateTime::now_utc().date()) {
        Ok(b) => b,
        Err(problem) => {
            let m = match problem {
                PurgeProblem::NotADate => t.err_purge_date,
                PurgeProblem::Future => t.err_purge_future,
            };
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, "before", m.to_string()).await;
        }
    };
    if !f.confirm {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "confirm",
            t.err_purge_confirm.to_string(),
        )
        .await;
    }
    match service::purge_personal_data(&state, &p, &before).await {
        Ok(report) => see_other(&format!("/ui/audit?purged={}", report.records)),
        Err(ApiError::BadRequest(_)) => {
            refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "before",
                t.err_purge_future.to_string(),
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = ?e, "purging personal data from the UI failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "top",
                error_message(ctx.lang, &e),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(q: &str) -> Typed {
        Typed::from_query(Some(q))
    }

    fn utc(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    #[test]
    fn times_are_read_as_the_browser_sends_them_in_utc() {
        let want = utc("2026-12-01T09:00:00Z");
        for s in [
            "2026-12-01T09:00",
            "2026-12-01T09:00:00",
            "2026-12-01 09:00",
            " 2026-12-01T09:00:00.000 ",
            "2026-12-01T09:00:00Z",
            "2026-12-01T18:00:00+09:00",
        ] {
            assert_eq!(parse_time(s, false), Some(want), "{s:?}");
        }
        assert_eq!(
            parse_time("2026-12-01T09:00:05.250", false),
            Some(utc("2026-12-01T09:00:05.25Z"))
        );
    }

    #[test]
    fn a_date_alone_is_the_start_of_the_day_or_for_until_the_whole_day() {
        assert_eq!(
            parse_time("2026-12-01", false),
            Some(utc("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-12-01", true),
            Some(utc("2026-12-02T00:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-12-31", true),
            Some(utc("2027-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn what_is_not_a_time_is_refused() {
        for s in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-12-01T25:00",
            "12/01/2026",
            "2026-12-01T09",
            "<script>alert(1)</script>",
            "{{7*7}}",
            "2026-12-01T09:00:00Z; DROP",
            &"2026".repeat(20),
        ] {
            assert_eq!(parse_time(s, false), None, "{s:?}");
        }
    }

    #[test]
    fn an_empty_query_is_everything() {
        let p = parse(&typed("")).unwrap();
        assert_eq!(p.filter, Filter::all());
        assert_eq!(p.before_seq, None);
        let p = parse(&typed("since=&until=&event=&actor=&outcome=&from_seq=")).unwrap();
        assert_eq!(p.filter, Filter::all());
    }

    #[test]
    fn every_field_is_taken() {
        let p = parse(&typed(
            "since=2026-12-01T09%3A00&until=2026-12-02&event=login_failed&actor=alice&outcome=failure&from_seq=12&before_seq=400&done=x",
        ))
        .unwrap();
        assert_eq!(p.filter.since, Some(utc("2026-12-01T09:00:00Z")));
        assert_eq!(p.filter.until, Some(utc("2026-12-03T00:00:00Z")));
        assert_eq!(p.filter.kinds, [EventKind::LoginFailed]);
        assert_eq!(p.filter.actor.as_deref(), Some("alice"));
        assert_eq!(p.filter.outcome, Some(Outcome::Failure));
        assert_eq!(p.filter.from_seq, Some(12));
        assert_eq!(p.before_seq, Some(400));
        assert_eq!(
            p.details(),
            json!({"since": "2026-12-01T09:00:00Z", "until": "2026-12-03T00:00:00Z",
                "event": "login_failed", "actor": true, "outcome": "failure", "from_seq": 12})
        );
    }

    #[test]
    fn each_wrong_field_is_named_once() {
        let problems = parse(&typed(
            "since=soon&until=later&event=login_failed,logout&actor=&outcome=maybe&from_seq=-1",
        ))
        .unwrap_err();
        assert_eq!(
            problems,
            [
                (Input::Since, Problem::BadTime),
                (Input::Until, Problem::BadTime),
                (Input::Event, Problem::UnknownEvent),
                (Input::Outcome, Problem::UnknownOutcome),
                (Input::FromSeq, Problem::BadSeq),
            ]
        );
        let long = "a".repeat(65);
        assert_eq!(
            parse(&typed(&format!("actor={long}"))).unwrap_err(),
            [(Input::Actor, Problem::ActorTooLong)]
        );
        assert!(parse(&typed(&format!("actor={}", "a".repeat(64)))).is_ok());
        assert_eq!(
            parse(&typed("since=2026-12-02&until=2026-12-01T10:00")).unwrap_err(),
            [(Input::Until, Problem::UntilNotAfterSince)]
        );
        for seq in ["1e3", "+5", "18446744073709551616", "0x10", "<b>"] {
            assert_eq!(
                parse(&typed(&format!("from_seq={}", encode(seq)))).unwrap_err(),
                [(Input::FromSeq, Problem::BadSeq)],
                "{seq}"
            );
        }
    }

    #[test]
    fn parsed_times_go_back_into_the_inputs_in_their_form() {
        assert_eq!(
            input_time(parse_time("2026-12-01T18:00:00+09:00", false).unwrap()),
            "2026-12-01T09:00:00"
        );
        assert_eq!(
            input_time(parse_time("2026-12-01", true).unwrap()),
            "2026-12-02T00:00:00"
        );
        assert_eq!(
            input_time(utc("2026-12-01T09:00:05.25Z")),
            "2026-12-01T09:00:05.250"
        );
    }

    #[test]
    fn a_bad_paging_position_starts_at_the_newest_page() {
        let p = parse(&typed("before_seq=%3Cscript%3E")).unwrap();
        assert_eq!(p.before_seq, None);
    }

    #[test]
    fn the_first_value_of_a_repeated_parameter_counts_and_unknown_ones_are_ignored() {
        let t = typed("event=logout&event=login_failed&next=%2F%2Fevil&x=%3Cb%3E");
        assert_eq!(t.event, "logout");
        assert_eq!(parse(&t).unwrap().filter.kinds, [EventKind::Logout]);
        // A broken escape is taken as typed, not refused as a whole.
        let t = typed("actor=a%ZZb&outcome=success");
        assert_eq!(t.outcome, "success");
    }

    #[test]
    fn links_carry_the_filter_encoded_and_the_paging_position() {
        let t = typed("since=2026-12-01T09%3A00&actor=%3Cx%3E%26y&event=login_failed&junk=1");
        assert_eq!(
            t.query(Some(77)),
            "since=2026-12-01T09%3A00&event=login_failed&actor=%3Cx%3E%26y&before_seq=77"
        );
        assert_eq!(typed(&t.query(Some(77))), {
            let mut want = t.clone();
            want.before_seq = "77".into();
            want
        });
        assert_eq!(typed("").query(None), "");
    }

    #[test]
    fn every_listed_event_name_is_the_one_the_log_writes() {
        let mut names = std::collections::HashSet::new();
        for (name, group, en, ja) in EVENTS {
            assert!(names.insert(*name), "{name} twice");
            assert!(*group < EN.groups.len(), "{name}");
            assert!(!en.is_empty() && !ja.is_empty(), "{name}");
            // Events of parts not in this build yet are left out of the select.
            if let Some(k) = parse_kind(name) {
                assert_eq!(kind_name(k), *name);
            }
        }
        for known in [
            EventKind::LoginFailed,
            EventKind::AuditLogExported,
            EventKind::PersonalDataPurged,
            EventKind::LinkDown,
            EventKind::FirewallRulesetChanged,
        ] {
            assert!(names.contains(kind_name(known).as_str()), "{known:?}");
        }
        assert_eq!(kind_label(Lang::Ja, "login_failed"), "ログイン失敗");
        assert_eq!(kind_label(Lang::En, "something_new"), "something_new");
    }

    #[test]
    fn the_event_select_groups_every_known_event_and_marks_the_chosen_one() {
        let groups = event_groups(Lang::En, &EN, "logout");
        let options: Vec<_> = groups.iter().flat_map(|g| &g.options).collect();
        assert!(options.len() >= 40, "{}", options.len());
        let selected: Vec<_> = options.iter().filter(|o| o.selected).collect();
        assert_eq!(selected.len(), 1);
        assert_eq!(selected[0].value, "logout");
        assert!(
            event_groups(Lang::En, &EN, "<script>")
                .iter()
                .flat_map(|g| &g.options)
                .all(|o| !o.selected)
        );
    }

    fn event(json: Value) -> Event {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn older_pages_match_as_the_log_does() {
        let e = event(json!({"seq": 5, "time": "2026-12-01T09:00:00.500Z",
            "event": "login_failed", "actor": "alice", "source": "192.0.2.1",
            "outcome": "failure"}));
        let all = Filter::all();
        assert!(matches(&all, &e, false));
        let mut f = parse(&typed(
            "since=2026-12-01T09:00&until=2026-12-01T09:01&event=login_failed&actor=alice&outcome=failure",
        ))
        .unwrap()
        .filter;
        assert!(matches(&f, &e, false));
        assert!(!matches(&f, &e, true), "a purged record has no actor");
        f.until = Some(utc("2026-12-01T09:00:00.500Z"));
        assert!(!matches(&f, &e, false), "until is exclusive");
        f.until = None;
        f.since = Some(utc("2026-12-01T09:00:00.500Z"));
        assert!(matches(&f, &e, false), "since is inclusive");
        for q in [
            "event=logout",
            "actor=bob",
            "outcome=success",
            "since=2026-12-02",
        ] {
            let f = parse(&typed(q)).unwrap().filter;
            assert!(!matches(&f, &e, false), "{q}");
        }
    }

    #[test]
    fn details_are_summarised_as_plain_text_and_cut() {
        assert_eq!(summarise(&Value::Null), "");
        assert_eq!(
            summarise(
                &json!({"purpose": "login", "reason": "wrong_password", "n": 3, "x": {"a": [1]}})
            ),
            "n: 3; purpose: login; reason: wrong_password; x: {\"a\":[1]}"
        );
        let long = summarise(&json!({"k": "é".repeat(500)}));
        assert_eq!(long.chars().count(), MAX_DETAILS);
        assert!(long.ends_with('\u{2026}'));
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes_text(0), "0 B");
        assert_eq!(bytes_text(1023), "1023 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(bytes_text(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn the_purge_takes_a_date_up_to_today_as_midnight_utc() {
        let today = Date::from_calendar_date(2026, time::Month::December, 6).unwrap();
        assert_eq!(
            purge_before("2026-11-01", today),
            Ok("2026-11-01T00:00:00Z".into())
        );
        assert_eq!(
            purge_before(" 2026-12-06 ", today),
            Ok("2026-12-06T00:00:00Z".into())
        );
        assert_eq!(purge_before("2026-12-07", today), Err(PurgeProblem::Future));
        for bad in ["", "2026-11-01T00:00", "yesterday", "2026-02-30", "<b>"] {
            assert_eq!(
                purge_before(bad, today),
                Err(PurgeProblem::NotADate),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_a_number_after_a_purge_gives_a_message() {
        assert_eq!(
            purge_notice(&EN, Some("purged=12")).as_deref(),
            Some("Personal data was removed from 12 records.")
        );
        assert_eq!(
            purge_notice(&JA, Some("purged=0")).as_deref(),
            Some(JA.purged_none)
        );
        for q in ["purged=", "purged=%3Cb%3E", "purged=-1", "done=purged", ""] {
            assert_eq!(purge_notice(&EN, Some(q)), None, "{q}");
        }
        assert_eq!(purge_notice(&EN, None), None);
    }

    fn ctx(lang: Lang) -> PageCtx {
        PageCtx {
            lang,
            csrf: "tok".into(),
            principal: None,
            path: "/ui/audit".into(),
            host: String::new(),
        }
    }

    fn sample_page(lang: Lang, typed: Typed, problems: &[(Input, Problem)]) -> AuditPage {
        let t = texts(lang);
        let c = ctx(lang);
        AuditPage {
            layout: c.layout("audit"),
            t,
            event_groups: event_groups(lang, t, &typed.event),
            any_outcome_selected: true,
            filter_ok: problems.is_empty(),
            errors: FieldErrors::of(t, problems),
            rows: vec![Row {
                seq: 42,
                time: "2026-12-01 09:00:00".into(),
                event: "login_failed".into(),
                event_label: kind_label(lang, "login_failed"),
                actor: "<script>alert(1)</script>".into(),
                source: "192.0.2.1".into(),
                failure: true,
                outcome: t.failure,
                details: "reason: \"><img src=x onerror=alert(1)>".into(),
            }],
            paged: true,
            older_link: Some(format!("/ui/audit?{}", typed.query(Some(42)))),
            newest_link: Some("/ui/audit".into()),
            export_link: format!("/ui/audit/export?{}", typed.query(None)),
            notice: None,
            top_error: None,
            status: StatusView {
                percent: 83,
                used: "53.1 MiB".into(),
                capacity: "64.0 MiB".into(),
                first_seq: Some(1),
                last_seq: Some(42),
                epoch: 3,
                overwritten_unread: 0,
                dropped: 0,
                write_error: None,
            },
            can_purge: true,
            purge: PurgeView::default(),
            today: "2026-12-06".into(),
            typed,
        }
    }

    #[test]
    fn a_wrong_field_is_marked_and_what_was_typed_comes_back_escaped() {
        let t = typed("since=%22%3E%3Cscript%3E&actor=%3Cb%3E&event=login_failed");
        let problems = parse(&t).unwrap_err();
        let html = sample_page(Lang::En, t.shown(), &problems)
            .render()
            .unwrap();
        assert!(!html.contains("\"><script>") && !html.contains("<b>"));
        assert!(html.contains("value=\"&#34;&#62;&#60;script&#62;\""));
        assert!(html.contains(&format!("id=\"since-error\">{}<", EN.err_time)));
        assert!(html.contains("aria-describedby=\"time-hint since-error\" aria-invalid=\"true\""));
        assert!(!html.contains("id=\"until-error\""));
        assert!(html.contains("<option value=\"login_failed\" selected>Login failed</option>"));
        // No records, no export while the filter is wrong.
        assert!(!html.contains("id=\"audit-records\"") && !html.contains("id=\"export\""));
        assert!(html.contains(EN.fix_filter));
    }

    #[test]
    fn the_page_escapes_records_and_offers_no_control_but_the_purge() {
        let t = typed("actor=%3Cb%3E&event=login_failed");
        let html = sample_page(Lang::En, t.shown(), &[]).render().unwrap();
        assert!(!html.contains("<script>alert(1)</script>"));
        assert!(!html.contains("<img") && !html.contains("<b>"));
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(html.contains("data-seq=\"42\" data-event=\"login_failed\""));
        for id in [
            "id=\"filter-form\"",
            "id=\"audit-records\"",
            "id=\"export\"",
            "id=\"older\"",
            "id=\"newest\"",
            "id=\"log-fill\"",
            "id=\"purge-form\"",
            "id=\"purge-before\"",
            "id=\"purge-confirm\"",
        ] {
            assert!(html.contains(id), "{id}");
        }
        // The only form that posts is the purge (and the frame's language switch).
        let posts: Vec<&str> = html
            .split("<form")
            .skip(1)
            .filter(|f| f.contains("method=\"post\""))
            .filter_map(|f| f.split("action=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(posts, ["/ui/language", "/ui/audit/purge"]);
        // The links carry the filter, encoded (and escaped for the attribute).
        assert!(html.contains(
            "href=\"/ui/audit/export?event=login_failed&#38;actor=%3Cb%3E\" id=\"export\""
        ));
        assert!(html.contains("before_seq=42\" id=\"older\""));
    }

    #[test]
    fn auditors_see_no_purge_form() {
        let mut page = sample_page(Lang::Ja, Typed::default(), &[]);
        page.can_purge = false;
        let html = page.render().unwrap();
        assert!(!html.contains("purge-form") && !html.contains("/ui/audit/purge"));
        assert!(html.contains(JA.title));
    }
}
