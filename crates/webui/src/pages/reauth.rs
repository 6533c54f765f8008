//! Re-authentication ("confirm it's you") before sensitive actions, and the way back to the
//! action that was interrupted: its form fields wait in the prompt and are sent again after.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mamori_auth::service::SecondFactor;
use mamori_http::AppState;
use mamori_http::extract::Caller;
use serde::Deserialize;

use crate::csrf;
use crate::i18n::error_message;
use crate::page::{Layout, PageCtx, is_local_path, render, render_status, see_other};
use crate::pages::login::json_refusal;

struct Texts {
    title: &'static str,
    intro: &'static str,
    password: &'static str,
    code: &'static str,
    code_hint: &'static str,
    use_key: &'static str,
    key_failed: &'static str,
    submit: &'static str,
    continue_title: &'static str,
    continue_intro: &'static str,
    continue_button: &'static str,
}

const EN: Texts = Texts {
    title: "Confirm it's you",
    intro: "This action affects the security of the device or of your account (users, access, the network configuration, the audit log's personal data, second factors, API tokens, passwords). Enter your password again; the confirmation lasts 5 minutes.",
    password: "Password",
    code: "Authenticator code or recovery code",
    code_hint: "Needed when your account has a second factor, unless you use a security key.",
    use_key: "Confirm with security key",
    key_failed: "The security key did not answer, or the browser refused. Try again or use a code.",
    submit: "Confirm",
    continue_title: "Confirmed",
    continue_intro: "Continuing with what you were doing…",
    continue_button: "Continue",
};

const JA: Texts = Texts {
    title: "本人確認",
    intro: "この操作は機器またはアカウントのセキュリティ (ユーザー、管理アクセス、ネットワーク設定、監査ログの個人データ、二要素認証、API トークン、パスワード) に関わります。パスワードを再入力してください。確認は 5 分間有効です。",
    password: "パスワード",
    code: "認証アプリのコードまたはリカバリーコード",
    code_hint: "二要素認証を設定している場合に必要です (セキュリティキーを使う場合は不要)。",
    use_key: "セキュリティキーで確認",
    key_failed: "セキュリティキーが応答しないか、ブラウザーが拒否しました。再試行するか、コードを使ってください。",
    submit: "確認",
    continue_title: "確認しました",
    continue_intro: "中断した操作を続けています…",
    continue_button: "続ける",
};

/// A form field of the interrupted action.
struct Kept {
    name: String,
    value: String,
}

#[derive(Template)]
#[template(path = "reauth.html")]
struct ReauthPage<'a> {
    layout: Layout,
    t: &'static Texts,
    next: &'a str,
    action: &'a str,
    kept: Vec<Kept>,
    mfa: bool,
    security_key: bool,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "continue.html")]
struct ContinuePage<'a> {
    layout: Layout,
    t: &'static Texts,
    action: &'a str,
    kept: Vec<Kept>,
}

const KEEP_PREFIX: &str = "keep.";
const MAX_KEPT: usize = 32;

fn kept_fields(pairs: Vec<(String, String)>) -> Vec<Kept> {
    pairs
        .into_iter()
        .filter(|(k, _)| k != csrf::FIELD)
        .filter(|(k, _)| {
            !k.is_empty()
                && k.len() <= 64
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        })
        .take(MAX_KEPT)
        .map(|(name, value)| Kept { name, value })
        .collect()
}

async fn factors(state: &AppState, ctx: &PageCtx) -> (bool, bool) {
    let Some(p) = ctx.principal.clone() else {
        return (false, false);
    };
    let q = p.clone();
    let mfa = state
        .run(move |auth| auth.session(&p))
        .await
        .is_ok_and(|s| s.mfa_enabled);
    let keys = state
        .run(move |auth| auth.security_keys(&q))
        .await
        .is_ok_and(|k| !k.is_empty());
    (mfa, keys)
}

/// The prompt shown in place of an action that needs a fresh re-authentication. `action` is
/// the path the form was posted to and `fields` what it carried.
pub fn interrupted(ctx: &PageCtx, action: &str, fields: Vec<(String, String)>) -> Response {
    // Which factors to offer is decided when the prompt is submitted; offer all inputs here
    // (a code field, and the key button, which fails clearly if no key is registered).
    render_status(
        StatusCode::FORBIDDEN,
        &ReauthPage {
            layout: ctx.layout(""),
            t: ctx.lang.pick(&EN, &JA),
            next: "/ui/",
            action: if is_local_path(action) { action } else { "" },
            kept: kept_fields(fields),
            mfa: true,
            security_key: true,
            error: None,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `GET /ui/reauth?next=…`.
pub async fn show(
    State(state): State<AppState>,
    ctx: PageCtx,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = q.next.filter(|n| is_local_path(n)).unwrap_or("/ui/".into());
    let (mfa, security_key) = factors(&state, &ctx).await;
    render(&ReauthPage {
        layout: ctx.layout(""),
        t: ctx.lang.pick(&EN, &JA),
        next: &next,
        action: "",
        kept: Vec::new(),
        mfa,
        security_key,
        error: None,
    })
}

/// `POST /ui/reauth`: checks the password (and second factor), then continues.
pub async fn submit(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    body: Bytes,
) -> Response {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty() && v.chars().count() <= 8192)
    };
    let password = field("password").unwrap_or_default();
    let code = field("code");
    let assertion = field("assertion");
    let next = field("next")
        .filter(|n| is_local_path(n))
        .unwrap_or("/ui/".into());
    let action = field("action").filter(|a| is_local_path(a) && !a.contains('?'));
    let kept: Vec<(String, String)> = pairs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(KEEP_PREFIX)?.to_string(), v.clone())))
        .collect();
    let result = state
        .run_hashing(move |auth| {
            let factor = match (assertion.as_deref(), code.as_deref()) {
                (Some(a), _) => SecondFactor::SecurityKey(a),
                (None, Some(c)) => SecondFactor::Code(c),
                (None, None) => SecondFactor::None,
            };
            auth.reauthenticate(&p, &password, factor)
        })
        .await;
    let t = ctx.lang.pick(&EN, &JA);
    match (result, action) {
        (Ok(_), Some(action)) => render(&ContinuePage {
            layout: ctx.layout(""),
            t,
            action: &action,
            kept: kept_fields(kept),
        }),
        (Ok(_), None) => see_other(&next),
        (Err(e), action) => {
            let (mfa, security_key) = factors(&state, &ctx).await;
            render_status(
                StatusCode::UNAUTHORIZED,
                &ReauthPage {
                    layout: ctx.layout(""),
                    t,
                    next: &next,
                    action: action.as_deref().unwrap_or(""),
                    kept: kept_fields(kept),
                    mfa,
                    security_key,
                    error: Some(error_message(ctx.lang, &e)),
                },
            )
        }
    }
}

/// `POST /ui/reauth/challenge`: WebAuthn request options for re-authentication.
pub async fn challenge(State(state): State<AppState>, Caller(p): Caller) -> Response {
    match state
        .run(move |auth| auth.reauth_security_key_challenge(&p))
        .await
    {
        Ok(options) => Json(options).into_response(),
        Err(_) => json_refusal(StatusCode::CONFLICT, "no_security_key"),
    }
}
