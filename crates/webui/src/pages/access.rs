//! Management access: which source addresses may reach the management service (the
//! allowlist), and which of them are trusted management stations (S3.1-01 R7, S3.1-04).
//!
//! Both lists are edited as text, one address or network per line. A line that is not one is
//! refused by its line number: the page never repeats a bad line in a message.

use std::net::IpAddr;
use std::str::FromStr;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use mamori_auth::AuthError;
use mamori_auth::settings::{AccessPolicy, canonical};
use mamori_http::AppState;
use mamori_http::error::ApiError;
use mamori_http::extract::Caller;
use serde::Deserialize;

use crate::form::{Field, Form, checkbox};
use crate::i18n::{Lang, error_message};
use crate::page::{Layout, PageCtx, render, render_status, see_other};

/// Most entries in each list (the service's limit).
const MAX_ENTRIES: usize = 64;
/// Longest line, in characters (after trimming).
const MAX_LINE: usize = 64;

struct Texts {
    title: &'static str,
    intro: &'static str,
    open_warning: &'static str,
    your_address: &'static str,
    in_list: &'static str,
    trusted_now: &'static str,
    allow_label: &'static str,
    allow_help: &'static str,
    trusted_label: &'static str,
    trusted_help: &'static str,
    list_allow: &'static str,
    list_trusted: &'static str,
    confirm: &'static str,
    confirm_hint: &'static str,
    submit: &'static str,
    saved: &'static str,
    too_many: &'static str,
    too_long: &'static str,
    invalid: &'static str,
    outside: &'static str,
    cutoff: &'static str,
}

const EN: Texts = Texts {
    title: "Management access",
    intro: "Choose which addresses may reach the management service (this web interface and the API). A change applies at once and is recorded in the audit log.",
    open_warning: "The allowlist is empty: the management service accepts connections from any address. Restrict it to your management network.",
    your_address: "You are connected from",
    in_list: "The current allowlist includes this address.",
    trusted_now: "This address is a trusted management station.",
    allow_label: "Allowed sources (allowlist)",
    allow_help: "One IP address or network in CIDR notation per line, IPv4 or IPv6 (for example 192.0.2.0/24, 192.0.2.10 or 2001:db8::/32). An address alone stands for just that address (/32 or /128). At most 64 entries. Empty means any address may connect. Connections from other addresses are closed before TLS, and sessions already open from them are refused at their next request. The local console is never restricted.",
    trusted_label: "Trusted management stations",
    trusted_help: "Same format, at most 64 entries. Logins from these addresses are not stopped by an account lock, so that someone guessing passwords elsewhere cannot lock the administrators out. They still need the password (and the second factor), their failed attempts still count towards the account lock for everyone else, and repeated failures from them are throttled like those from any other address. When the allowlist is not empty, every entry must lie inside an allowed network.",
    list_allow: "Allowlist",
    list_trusted: "Trusted stations",
    confirm: "Apply even if it cuts off my own address",
    confirm_hint: "Needed only when the new allowlist does not include the address you are connected from. This session then ends at once; access can be restored from an allowed address, or on the device's console.",
    submit: "Save",
    saved: "The management access settings were saved.",
    too_many: "{list}: at most 64 entries.",
    too_long: "{list}, line {n}: the line is too long (at most 64 characters).",
    invalid: "{list}, line {n}: not an IP address or a network in CIDR notation (such as 192.0.2.0/24).",
    outside: "{list}, line {n}: not inside any allowed network. Add a network that contains it to the allowlist, or remove the line.",
    cutoff: "The new allowlist does not include your address {addr}: saving it would cut off this session at once. Check the list. If you really mean it (for example, you will continue from another station), tick \"{confirm}\" and save again.",
};

const JA: Texts = Texts {
    title: "管理アクセス",
    intro: "管理機能 (この Web 画面と API) に接続できるアドレスを設定します。変更は直ちに適用され、監査ログに記録されます。",
    open_warning: "許可リストが空のため、管理機能はすべてのアドレスからの接続を受け付けています。管理用ネットワークに限定してください。",
    your_address: "現在の接続元アドレス",
    in_list: "現在の許可リストに含まれています。",
    trusted_now: "信頼済み管理端末です。",
    allow_label: "接続を許可する送信元 (許可リスト)",
    allow_help: "1 行に 1 つ、IP アドレスまたは CIDR 表記のネットワークを入力してください。IPv4 と IPv6 のどちらも使えます (例: 192.0.2.0/24、192.0.2.10、2001:db8::/32)。アドレスだけを書いた場合は、そのアドレス 1 つ (/32 または /128) を表します。最大 64 件です。空の場合は、すべてのアドレスから接続できます。一覧にないアドレスからの接続は TLS より前に切断され、すでに開いているセッションも次の要求から拒否されます。ローカルコンソールは制限されません。",
    trusted_label: "信頼済み管理端末",
    trusted_help: "形式は同じで、最大 64 件です。これらのアドレスからのログインは、アカウントロックによって妨げられません。ほかの場所からパスワードを推測する攻撃者が、管理者を締め出すことを防げます。ただし、パスワード (と二要素認証) は必要です。また、ここからの失敗もほかの接続元に対するアカウントロックの回数に数えられ、失敗が続いた場合の送信元ごとの試行制限もほかのアドレスと同じく適用されます。許可リストが空でない場合、各行は許可リストのいずれかのネットワークに含まれている必要があります。",
    list_allow: "許可リスト",
    list_trusted: "信頼済み管理端末",
    confirm: "自分のアドレスが切断される場合も適用する",
    confirm_hint: "新しい許可リストに現在の接続元アドレスが含まれていない場合にだけ必要です。その場合、このセッションは直ちに終了します。接続を回復するには、許可されたアドレスから、または機器のコンソールで設定を変更してください。",
    submit: "保存",
    saved: "管理アクセスの設定を保存しました。",
    too_many: "「{list}」に登録できるのは 64 件までです。",
    too_long: "「{list}」の {n} 行目: 行が長すぎます (64 文字まで)。",
    invalid: "「{list}」の {n} 行目: IP アドレスまたは CIDR 表記のネットワーク (例: 192.0.2.0/24) ではありません。",
    outside: "「{list}」の {n} 行目: 許可リストのどのネットワークにも含まれていません。これを含むネットワークを許可リストに追加するか、この行を削除してください。",
    cutoff: "新しい許可リストには、あなたのアドレス {addr} が含まれていません。保存するとこのセッションは直ちに切断されます。一覧を確認してください。意図どおりの場合 (別の端末から作業を続ける場合など) は、「{confirm}」にチェックを入れて、もう一度保存してください。",
};

fn texts(lang: Lang) -> &'static Texts {
    lang.pick(&EN, &JA)
}

/// Which of the two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Allow,
    Trusted,
}

impl List {
    fn field(self) -> &'static str {
        match self {
            List::Allow => "allow",
            List::Trusted => "trusted",
        }
    }

    fn label(self, t: &Texts) -> &'static str {
        match self {
            List::Allow => t.list_allow,
            List::Trusted => t.list_trusted,
        }
    }
}

/// Why a list was not accepted; line numbers count from 1, blank lines included, as the
/// textarea shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineError {
    TooMany,
    TooLong(usize),
    Invalid(usize),
    /// A trusted network outside every allowed one.
    Outside(usize),
}

/// Parses one address or network per line: lines are trimmed, blank ones skipped, and an
/// address alone becomes a network of just that address (/32 or /128; an IPv4 address written
/// as IPv6 becomes the IPv4 address, as the service matches connections).
fn parse_lines<T: FromStr>(text: &str) -> Result<Vec<(usize, T)>, LineError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.chars().count() > MAX_LINE {
            return Err(LineError::TooLong(n));
        }
        if out.len() == MAX_ENTRIES {
            return Err(LineError::TooMany);
        }
        let cidr = match line.parse::<IpAddr>().map(canonical) {
            Ok(a @ IpAddr::V4(_)) => format!("{a}/32"),
            Ok(a @ IpAddr::V6(_)) => format!("{a}/128"),
            Err(_) => line.to_string(),
        };
        out.push((n, cidr.parse().map_err(|_| LineError::Invalid(n))?));
    }
    Ok(out)
}

/// The policy the two texts describe, or the first line that is wrong. Networks are stored
/// as networks (`192.0.2.7/24` becomes `192.0.2.0/24`).
fn policy_from(allow: &str, trusted: &str) -> Result<AccessPolicy, (List, LineError)> {
    let allow = parse_lines(allow).map_err(|e| (List::Allow, e))?;
    let trusted = parse_lines(trusted).map_err(|e| (List::Trusted, e))?;
    let trusted_lines: Vec<usize> = trusted.iter().map(|(n, _)| *n).collect();
    let mut policy = AccessPolicy {
        allow: allow.into_iter().map(|(_, net)| net).collect(),
        trusted: trusted.into_iter().map(|(_, net)| net).collect(),
    };
    for net in policy.allow.iter_mut().chain(policy.trusted.iter_mut()) {
        *net = net.trunc();
    }
    if !policy.allow.is_empty() {
        for (t, n) in policy.trusted.iter().zip(trusted_lines) {
            if !policy.allow.iter().any(|a| a.contains(t)) {
                return Err((List::Trusted, LineError::Outside(n)));
            }
        }
    }
    Ok(policy)
}

fn line_message(t: &Texts, list: List, e: LineError) -> String {
    let (template, n) = match e {
        LineError::TooMany => (t.too_many, 0),
        LineError::TooLong(n) => (t.too_long, n),
        LineError::Invalid(n) => (t.invalid, n),
        LineError::Outside(n) => (t.outside, n),
    };
    template
        .replace("{list}", list.label(t))
        .replace("{n}", &n.to_string())
}

/// The success message for `?done=…`; anything but the known word shows nothing.
fn notice(t: &'static Texts, done: Option<&str>) -> Option<&'static str> {
    (done? == "saved").then_some(t.saved)
}

fn lines_of<T: ToString>(nets: &[T]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    layout: Layout,
    t: &'static Texts,
    allow: String,
    trusted: String,
    address: Option<String>,
    in_list: bool,
    trusted_now: bool,
    open: bool,
    notice: Option<&'static str>,
    error: Option<String>,
    /// "allow", "trusted", "confirm", "top" or "".
    error_at: &'static str,
}

/// The page; `typed` are the two texts as submitted, shown again after a refusal.
fn page(
    state: &AppState,
    ctx: &PageCtx,
    source: Option<IpAddr>,
    typed: Option<(String, String)>,
    notice: Option<&'static str>,
    error: Option<(&'static str, String)>,
) -> AccessPage {
    let policy = state.auth.access();
    let source = source.map(canonical);
    let (allow, trusted) =
        typed.unwrap_or_else(|| (lines_of(&policy.allow), lines_of(&policy.trusted)));
    AccessPage {
        layout: ctx.layout("access"),
        t: texts(ctx.lang),
        allow,
        trusted,
        address: source.map(|a| a.to_string()),
        in_list: source.is_some_and(|a| !policy.allow.is_empty() && policy.allows(a)),
        trusted_now: source.is_some_and(|a| policy.is_trusted(a)),
        open: policy.allow.is_empty(),
        notice,
        error_at: error.as_ref().map_or("", |(at, _)| at),
        error: error.map(|(_, m)| m),
    }
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /ui/access`.
pub async fn show(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Query(q): Query<DoneQuery>,
) -> Response {
    let notice = notice(texts(ctx.lang), q.done.as_deref());
    render(&page(&state, &ctx, p.origin.source, None, notice, None))
}

#[derive(Debug, Deserialize)]
pub struct AccessForm {
    allow: Field<8192>,
    trusted: Field<8192>,
    #[serde(default, deserialize_with = "checkbox")]
    confirm: bool,
}

/// `POST /ui/access`: replaces both lists.
pub async fn submit(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Form(f): Form<AccessForm>,
) -> Response {
    let t = texts(ctx.lang);
    let source = p.origin.source;
    let typed = (f.allow.as_str().to_string(), f.trusted.as_str().to_string());
    let policy = match policy_from(f.allow.as_str(), f.trusted.as_str()) {
        Ok(policy) => policy,
        Err((list, e)) => {
            let error = (list.field(), line_message(t, list, e));
            return render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &page(&state, &ctx, source, Some(typed), None, Some(error)),
            );
        }
    };
    let confirm = f.confirm;
    match state
        .run(move |auth| auth.set_access(&p, policy, confirm))
        .await
    {
        Ok(()) => see_other("/ui/access?done=saved"),
        Err(e) => {
            let (status, at, message) = match (&e, source) {
                (ApiError::Auth(AuthError::ConfirmationRequired(_)), Some(addr)) => (
                    StatusCode::CONFLICT,
                    "confirm",
                    t.cutoff
                        .replace("{addr}", &canonical(addr).to_string())
                        .replace("{confirm}", t.confirm),
                ),
                (ApiError::Auth(AuthError::ConfirmationRequired(_)), None) => {
                    (StatusCode::CONFLICT, "confirm", error_message(ctx.lang, &e))
                }
                (ApiError::Auth(AuthError::Forbidden), _) => {
                    (StatusCode::FORBIDDEN, "top", error_message(ctx.lang, &e))
                }
                (ApiError::Busy, _) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "top",
                    error_message(ctx.lang, &e),
                ),
                _ => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "top",
                    error_message(ctx.lang, &e),
                ),
            };
            render_status(
                status,
                &page(&state, &ctx, source, Some(typed), None, Some((at, message))),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists as the service would store them, as text.
    fn lists(allow: &str, trusted: &str) -> Result<(Vec<String>, Vec<String>), (List, LineError)> {
        let p = policy_from(allow, trusted)?;
        Ok((
            p.allow.iter().map(ToString::to_string).collect(),
            p.trusted.iter().map(ToString::to_string).collect(),
        ))
    }

    #[test]
    fn lines_are_trimmed_blanks_skipped_and_addresses_become_hosts() {
        let (allow, trusted) = lists(
            "  192.0.2.0/24 \r\n\r\n2001:db8::/32\n192.0.2.10\n2001:db8::1\n::ffff:192.0.2.20\n",
            "192.0.2.10\n",
        )
        .unwrap();
        assert_eq!(
            allow,
            [
                "192.0.2.0/24",
                "2001:db8::/32",
                "192.0.2.10/32",
                "2001:db8::1/128",
                "192.0.2.20/32"
            ]
        );
        assert_eq!(trusted, ["192.0.2.10/32"]);
    }

    #[test]
    fn empty_text_is_an_empty_list() {
        assert_eq!(lists("", "\n  \n").unwrap(), (vec![], vec![]));
    }

    #[test]
    fn host_bits_of_a_network_are_dropped() {
        assert_eq!(lists("192.0.2.7/24", "").unwrap().0, ["192.0.2.0/24"]);
    }

    #[test]
    fn a_bad_line_is_named_by_its_number_counting_blank_lines() {
        assert_eq!(
            lists("192.0.2.0/24\n\nnot-an-address\n", ""),
            Err((List::Allow, LineError::Invalid(3)))
        );
        for bad in [
            "192.0.2.0/33",
            "192.0.2",
            "fe80::1%eth0",
            "192.0.2.0/24 192.0.2.1",
            "<script>",
        ] {
            assert_eq!(
                lists("", bad),
                Err((List::Trusted, LineError::Invalid(1))),
                "{bad}"
            );
        }
        let long = format!("192.0.2.0/24\n{}", "1".repeat(65));
        assert_eq!(lists(&long, ""), Err((List::Allow, LineError::TooLong(2))));
    }

    #[test]
    fn at_most_64_entries_per_list() {
        let nets: Vec<String> = (0..64).map(|i| format!("10.0.{i}.0/24")).collect();
        let sixty_four = nets.join("\n");
        assert_eq!(lists(&sixty_four, "").unwrap().0.len(), 64);
        // Blank lines do not count.
        assert!(lists(&format!("{sixty_four}\n\n\n"), "").is_ok());
        assert_eq!(
            lists(&format!("{sixty_four}\n10.1.0.0/16"), ""),
            Err((List::Allow, LineError::TooMany))
        );
        assert_eq!(
            lists("", &format!("{sixty_four}\n10.1.0.0/16")),
            Err((List::Trusted, LineError::TooMany))
        );
    }

    #[test]
    fn trusted_stations_must_lie_inside_the_allowlist_unless_it_is_empty() {
        assert_eq!(
            lists("192.0.2.0/24", "192.0.2.10\n\n198.51.100.1"),
            Err((List::Trusted, LineError::Outside(3)))
        );
        assert!(lists("", "198.51.100.1").is_ok());
        assert!(lists("192.0.2.0/24\n198.51.100.0/24", "198.51.100.1").is_ok());
    }

    #[test]
    fn messages_name_the_list_and_line_but_not_the_text() {
        let m = line_message(&EN, List::Trusted, LineError::Invalid(7));
        assert_eq!(
            m,
            "Trusted stations, line 7: not an IP address or a network in CIDR notation (such as 192.0.2.0/24)."
        );
        let m = line_message(&JA, List::Allow, LineError::TooLong(2));
        assert!(m.starts_with("「許可リスト」の 2 行目"), "{m}");
        for t in [&EN, &JA] {
            for e in [
                LineError::TooMany,
                LineError::TooLong(1),
                LineError::Invalid(1),
                LineError::Outside(1),
            ] {
                let m = line_message(t, List::Allow, e);
                assert!(!m.contains('{'), "{m}");
            }
        }
    }

    #[test]
    fn only_the_known_done_word_gives_a_message() {
        assert_eq!(notice(&EN, Some("saved")), Some(EN.saved));
        assert_eq!(notice(&JA, Some("saved")), Some(JA.saved));
        assert_eq!(notice(&EN, Some("<b>saved</b>")), None);
        assert_eq!(notice(&EN, Some("")), None);
        assert_eq!(notice(&EN, None), None);
    }

    #[test]
    fn the_cutoff_text_is_complete_in_both_languages() {
        for t in [&EN, &JA] {
            let m = t
                .cutoff
                .replace("{addr}", "198.51.100.7")
                .replace("{confirm}", t.confirm);
            assert!(m.contains("198.51.100.7") && m.contains(t.confirm) && !m.contains('{'));
        }
    }

    #[test]
    fn the_page_keeps_what_was_typed_escaped_and_highlights_the_confirmation() {
        let ctx = PageCtx {
            lang: Lang::En,
            csrf: "tok".into(),
            principal: None,
            path: "/ui/access".into(),
            host: String::new(),
        };
        let html = AccessPage {
            layout: ctx.layout("access"),
            t: &EN,
            allow: "\n192.0.2.0/24\n<script>".into(),
            trusted: String::new(),
            address: Some("198.51.100.7".into()),
            in_list: false,
            trusted_now: false,
            open: true,
            notice: None,
            error: Some("cut off".into()),
            error_at: "confirm",
        }
        .render()
        .expect("renders");
        for id in [
            "id=\"allow\" name=\"allow\"",
            "id=\"trusted\" name=\"trusted\"",
            "id=\"confirm-cutoff\" name=\"confirm\"",
            "id=\"access-submit\"",
            "id=\"your-address\">198.51.100.7<",
            "id=\"confirm-error\">cut off<",
            "class=\"check attention\"",
        ] {
            assert!(html.contains(id), "{id}");
        }
        assert!(!html.contains("<script>"));
        // The newline after the tag is the one the HTML parser drops, so a leading blank
        // line survives and the line numbers in messages match the text.
        assert!(
            html.contains("aria-invalid")
                && html.contains(">\n\n192.0.2.0/24\n&#60;script&#62;</textarea>")
        );
    }
}
