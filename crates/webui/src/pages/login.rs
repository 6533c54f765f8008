//! Logging in (password, then the second factor), logging out, and the language switch.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mamori_auth::service::{LoginOutcome, LoginStep, SecondFactor};
use mamori_http::error::ApiError;
use mamori_http::extract::{Caller, ConnInfo};
use mamori_http::{AppState, SESSION_COOKIE};
use serde::Deserialize;
use serde_json::json;

use crate::cookies::{self, CSRF_COOKIE, LOGIN_COOKIE};
use crate::form::{Field, Form};
use crate::i18n::{LANG_COOKIE, Lang, error_message};
use crate::page::{Layout, PageCtx, is_local_path, render, render_status, see_other};

struct Texts {
    title: &'static str,
    intro: &'static str,
    username: &'static str,
    password: &'static str,
    submit: &'static str,
    expired: &'static str,
    verify_title: &'static str,
    verify_intro: &'static str,
    code: &'static str,
    code_hint: &'static str,
    verify_submit: &'static str,
    or: &'static str,
    use_key: &'static str,
    key_hint: &'static str,
    key_failed: &'static str,
    start_over: &'static str,
}

const EN: Texts = Texts {
    title: "Log in",
    intro: "Log in to manage this device.",
    username: "Username",
    password: "Password",
    submit: "Log in",
    expired: "The login took too long or was cancelled. Please enter your password again.",
    verify_title: "Second factor",
    verify_intro: "Your account is protected by a second factor.",
    code: "Authenticator code or recovery code",
    code_hint: "6 digits from your authenticator app, or one of your recovery codes.",
    verify_submit: "Verify",
    or: "or",
    use_key: "Use security key",
    key_hint: "Insert or touch your security key when the browser asks.",
    key_failed: "The security key did not answer, or the browser refused. Try again or use a code.",
    start_over: "Start over",
};

const JA: Texts = Texts {
    title: "ログイン",
    intro: "この機器を管理するにはログインしてください。",
    username: "ユーザー名",
    password: "パスワード",
    submit: "ログイン",
    expired: "ログインに時間がかかりすぎたか、中断されました。もう一度パスワードを入力してください。",
    verify_title: "二要素認証",
    verify_intro: "このアカウントは二要素認証で保護されています。",
    code: "認証アプリのコードまたはリカバリーコード",
    code_hint: "認証アプリに表示される 6 桁の数字、またはリカバリーコードの 1 つ。",
    verify_submit: "確認",
    or: "または",
    use_key: "セキュリティキーを使う",
    key_hint: "ブラウザーの案内に従ってセキュリティキーを挿入またはタッチしてください。",
    key_failed: "セキュリティキーが応答しないか、ブラウザーが拒否しました。再試行するか、コードを使ってください。",
    start_over: "最初からやり直す",
};

fn texts(lang: Lang) -> &'static Texts {
    lang.pick(&EN, &JA)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    layout: Layout,
    t: &'static Texts,
    next: &'a str,
    username: &'a str,
    error: Option<String>,
    lockout_note: String,
}

/// The short lockout note under the form, with this device's threshold.
fn lockout_note(lang: Lang, settings: &mamori_auth::settings::AuthSettings) -> String {
    let n = settings.lockout_threshold;
    match lang {
        Lang::En => format!(
            "After {n} failed attempts in a row the account is locked for a while; an address \
             with repeated failures is blocked for a while too."
        ),
        Lang::Ja => format!(
            "{n} 回続けて失敗するとアカウントは一定時間ロックされます。失敗が続くアドレスからの\
             ログインも一定時間拒否されます。"
        ),
    }
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage<'a> {
    layout: Layout,
    t: &'static Texts,
    next: &'a str,
    totp: bool,
    security_key: bool,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    expired: Option<String>,
}

fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| is_local_path(n)).unwrap_or("/ui/")
}

/// `GET /ui/login`.
pub async fn show(
    State(state): State<AppState>,
    ctx: PageCtx,
    Query(q): Query<NextQuery>,
) -> Response {
    if ctx.principal.is_some() {
        return see_other(safe_next(q.next.as_deref()));
    }
    let t = texts(ctx.lang);
    render(&LoginPage {
        layout: ctx.layout("login"),
        t,
        next: safe_next(q.next.as_deref()),
        username: "",
        error: q.expired.map(|_| t.expired.to_string()),
        lockout_note: lockout_note(ctx.lang, &state.auth.settings()),
    })
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: Field<64>,
    password: Field<128>,
    #[serde(default)]
    next: Field<256>,
}

/// `POST /ui/login`: the password step.
pub async fn submit(
    State(state): State<AppState>,
    ctx: PageCtx,
    conn: ConnInfo,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.non_empty()).to_string();
    let username = f.username.as_str().to_string();
    let origin = conn.origin;
    let result = state
        .run_hashing(move |auth| {
            auth.login_password(f.username.as_str(), f.password.as_str(), origin)
        })
        .await;
    match result {
        Ok(LoginStep::Done(outcome)) => logged_in(&outcome, &next),
        Ok(LoginStep::SecondFactor(pending)) => {
            let mut flags = String::new();
            if pending.methods.totp || pending.methods.recovery_code {
                flags.push('c');
            }
            if pending.methods.security_key {
                flags.push('k');
            }
            let max_age = pending.expires_at.saturating_sub(state.auth.now());
            let mut resp = see_other(&format!(
                "/ui/login/verify?next={}",
                crate::guard::encode(&next)
            ));
            resp.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(
                    LOGIN_COOKIE,
                    &format!("{}.{flags}", pending.ticket),
                    Some(max_age),
                ),
            );
            resp
        }
        Err(e) => {
            let status = refusal_status(&e);
            render_status(
                status,
                &LoginPage {
                    layout: ctx.layout("login"),
                    t: texts(ctx.lang),
                    next: &next,
                    username: &username,
                    error: Some(error_message(ctx.lang, &e)),
                    lockout_note: lockout_note(ctx.lang, &state.auth.settings()),
                },
            )
        }
    }
}

fn refusal_status(e: &ApiError) -> StatusCode {
    match e {
        ApiError::Auth(mamori_auth::AuthError::TooManyAttempts { .. }) => {
            StatusCode::TOO_MANY_REQUESTS
        }
        ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// A session was opened: set its cookie (a new id, whatever the browser had before), drop
/// the pre-login cookies, and go where the session may go first.
fn logged_in(outcome: &LoginOutcome, next: &str) -> Response {
    let to = if outcome.session.must_change_password {
        "/ui/setup"
    } else if outcome.session.mfa_enrollment_required {
        "/ui/account/mfa"
    } else {
        next
    };
    let mut resp = see_other(to);
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookies::set(SESSION_COOKIE, &outcome.secret, None),
    );
    h.append(header::SET_COOKIE, cookies::clear(LOGIN_COOKIE));
    h.append(header::SET_COOKIE, cookies::clear(CSRF_COOKIE));
    resp
}

/// The pending-login ticket and which factors it offers, from its cookie.
fn pending(headers: &HeaderMap) -> Option<(&str, bool, bool)> {
    let v = cookies::get(headers, LOGIN_COOKIE)?;
    let (ticket, flags) = v.rsplit_once('.')?;
    (!ticket.is_empty()).then_some((ticket, flags.contains('c'), flags.contains('k')))
}

/// `GET /ui/login/verify`.
pub async fn verify_show(ctx: PageCtx, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    let Some((_, totp, security_key)) = pending(&headers) else {
        return see_other("/ui/login?expired=1");
    };
    render(&VerifyPage {
        layout: ctx.layout("login"),
        t: texts(ctx.lang),
        next: safe_next(q.next.as_deref()),
        totp,
        security_key,
        error: None,
    })
}

#[derive(Debug, Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    code: Field<64>,
    #[serde(default)]
    assertion: Field<8192>,
    #[serde(default)]
    next: Field<256>,
}

/// `POST /ui/login/verify`: the second factor.
pub async fn verify_submit(
    State(state): State<AppState>,
    ctx: PageCtx,
    conn: ConnInfo,
    headers: HeaderMap,
    Form(f): Form<VerifyForm>,
) -> Response {
    let Some((ticket, totp, security_key)) = pending(&headers) else {
        return see_other("/ui/login?expired=1");
    };
    let ticket = ticket.to_string();
    let next = safe_next(f.next.non_empty()).to_string();
    let origin = conn.origin;
    let result = state
        .run(move |auth| {
            let factor = match (f.assertion.non_empty(), f.code.non_empty()) {
                (Some(a), _) => SecondFactor::SecurityKey(a),
                (None, Some(c)) => SecondFactor::Code(c),
                (None, None) => SecondFactor::None,
            };
            auth.login_second_factor(&ticket, factor, origin)
        })
        .await;
    match result {
        Ok(outcome) => logged_in(&outcome, &next),
        Err(ApiError::Auth(mamori_auth::AuthError::Unauthenticated)) => {
            let mut resp = see_other("/ui/login?expired=1");
            resp.headers_mut()
                .append(header::SET_COOKIE, cookies::clear(LOGIN_COOKIE));
            resp
        }
        Err(e) => render_status(
            refusal_status(&e),
            &VerifyPage {
                layout: ctx.layout("login"),
                t: texts(ctx.lang),
                next: &next,
                totp,
                security_key,
                error: Some(error_message(ctx.lang, &e)),
            },
        ),
    }
}

/// `POST /ui/login/verify/challenge`: WebAuthn request options for the pending login.
pub async fn verify_challenge(
    State(state): State<AppState>,
    conn: ConnInfo,
    headers: HeaderMap,
) -> Response {
    let Some((ticket, _, _)) = pending(&headers) else {
        return json_refusal(StatusCode::UNAUTHORIZED, "login_expired");
    };
    let ticket = ticket.to_string();
    let origin = conn.origin;
    match state
        .run(move |auth| auth.login_security_key_challenge(&ticket, origin))
        .await
    {
        Ok(options) => Json(options).into_response(),
        Err(_) => json_refusal(StatusCode::UNAUTHORIZED, "login_expired"),
    }
}

/// A refusal for the page script (which shows its own localized text).
pub fn json_refusal(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": {"code": code}}))).into_response()
}

/// `POST /ui/logout`.
pub async fn logout(State(state): State<AppState>, Caller(p): Caller) -> Response {
    let _ = state.run(move |auth| auth.logout(&p)).await;
    let mut resp = see_other("/ui/login");
    resp.headers_mut()
        .append(header::SET_COOKIE, cookies::clear(SESSION_COOKIE));
    resp
}

#[derive(Debug, Deserialize)]
pub struct LanguageForm {
    lang: Field<2>,
    #[serde(default)]
    next: Field<256>,
}

/// `POST /ui/language`: remembers the choice for a year.
pub async fn language(Form(f): Form<LanguageForm>) -> Response {
    let next = f
        .next
        .non_empty()
        .filter(|n| is_local_path(n))
        .unwrap_or("/ui/");
    let mut resp = see_other(next);
    if let Some(lang) = Lang::parse(f.lang.as_str()) {
        resp.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(LANG_COOKIE, lang.tag(), Some(365 * 24 * 3600)),
        );
    }
    resp
}
