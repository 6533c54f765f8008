//! My account: password, sessions and API tokens. Second factors have their own page (mfa).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use mamori_auth::AuthError;
use mamori_auth::model::Role;
use mamori_auth::service::{SessionListing, TokenListing};
use mamori_http::error::ApiError;
use mamori_http::extract::Caller;
use mamori_http::{AppState, SESSION_COOKIE};
use serde::Deserialize;

use crate::cookies;
use crate::form::{Field, Form};
use crate::i18n::error_message;
use crate::page::{Layout, PageCtx, error_page, render, render_status, see_other, when};
use crate::pages::setup::RulesView;

struct Texts {
    title: &'static str,
    password_h: &'static str,
    current: &'static str,
    new: &'static str,
    confirm: &'static str,
    mismatch: &'static str,
    change: &'static str,
    checking: &'static str,
    changed: &'static str,
    mfa_h: &'static str,
    mfa_on: &'static str,
    mfa_off: &'static str,
    mfa_manage: &'static str,
    sessions_h: &'static str,
    started: &'static str,
    last_seen: &'static str,
    source: &'static str,
    this_session: &'static str,
    revoke: &'static str,
    revoked: &'static str,
    tokens_h: &'static str,
    tokens_intro: &'static str,
    no_tokens: &'static str,
    token_name: &'static str,
    token_role: &'static str,
    token_days: &'static str,
    token_create: &'static str,
    expires: &'static str,
    last_used: &'static str,
    never: &'static str,
    token_title: &'static str,
    token_once: &'static str,
    done: &'static str,
}

const EN: Texts = Texts {
    title: "My account",
    password_h: "Password",
    current: "Current password",
    new: "New password",
    confirm: "New password again",
    mismatch: "The two new passwords are not the same.",
    change: "Change password",
    checking: "Checking…",
    changed: "Your password was changed. Your other sessions were ended.",
    mfa_h: "Second factor",
    mfa_on: "A second factor protects your account.",
    mfa_off: "Your account has no second factor.",
    mfa_manage: "Manage second factors",
    sessions_h: "Sessions",
    started: "Started",
    last_seen: "Last active",
    source: "From",
    this_session: "this session",
    revoke: "End",
    revoked: "The session was ended.",
    tokens_h: "API tokens",
    tokens_intro: "Tokens let scripts use the JSON API as you, with a role no higher than yours. The secret is shown once.",
    no_tokens: "No API tokens.",
    token_name: "Name",
    token_role: "Role",
    token_days: "Valid for (days, 1–365)",
    token_create: "Create token",
    expires: "Expires",
    last_used: "Last used",
    never: "never",
    token_title: "New API token",
    token_once: "Copy the token now. It is not stored in readable form and will not be shown again.",
    done: "Done",
};

const JA: Texts = Texts {
    title: "アカウント",
    password_h: "パスワード",
    current: "現在のパスワード",
    new: "新しいパスワード",
    confirm: "新しいパスワード (確認)",
    mismatch: "確認用のパスワードが一致しません。",
    change: "パスワードを変更",
    checking: "確認中…",
    changed: "パスワードを変更しました。他のセッションは終了しました。",
    mfa_h: "二要素認証",
    mfa_on: "二要素認証でアカウントが保護されています。",
    mfa_off: "二要素認証が設定されていません。",
    mfa_manage: "二要素認証の管理",
    sessions_h: "セッション",
    started: "開始",
    last_seen: "最終操作",
    source: "接続元",
    this_session: "このセッション",
    revoke: "終了",
    revoked: "セッションを終了しました。",
    tokens_h: "API トークン",
    tokens_intro: "トークンを使うと、スクリプトからあなたとして JSON API を利用できます (ロールはあなた以下)。秘密の値は 1 回だけ表示されます。",
    no_tokens: "API トークンはありません。",
    token_name: "名前",
    token_role: "ロール",
    token_days: "有効期間 (日、1〜365)",
    token_create: "トークンを作成",
    expires: "有効期限",
    last_used: "最終使用",
    never: "未使用",
    token_title: "新しい API トークン",
    token_once: "今すぐトークンをコピーしてください。読み取れる形では保存されず、二度と表示されません。",
    done: "完了",
};

struct SessionRow {
    id: String,
    started: String,
    last_seen: String,
    source: String,
    current: bool,
}

struct TokenRow {
    id: String,
    name: String,
    role: &'static str,
    expires: String,
    last_used: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    t: &'static Texts,
    rules: RulesView,
    mfa: bool,
    sessions: Vec<SessionRow>,
    tokens: Vec<TokenRow>,
    roles: Vec<&'static str>,
    notice: Option<&'static str>,
    error: Option<String>,
    error_at: &'static str,
}

#[derive(Template)]
#[template(path = "token.html")]
struct TokenPage<'a> {
    layout: Layout,
    t: &'static Texts,
    token: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

async fn page(
    state: &AppState,
    ctx: &PageCtx,
    notice: Option<&'static str>,
    error: Option<(String, &'static str)>,
) -> Result<AccountPage, Response> {
    let p = ctx.caller().ok_or_else(|| see_other("/ui/login"))?.clone();
    let (info, sessions, tokens) = {
        let p1 = p.clone();
        let p2 = p.clone();
        let info = state.run(move |auth| auth.session(&p1)).await;
        let sessions: Vec<SessionListing> = state
            .run(move |auth| Ok(auth.list_sessions(&p2)))
            .await
            .unwrap_or_default();
        let p3 = p.clone();
        let tokens: Vec<TokenListing> = state
            .run(move |auth| auth.list_tokens(&p3))
            .await
            .unwrap_or_default();
        (info, sessions, tokens)
    };
    let info = info.map_err(|e| {
        error_page(
            Some(ctx),
            StatusCode::UNAUTHORIZED,
            &error_message(ctx.lang, &e),
        )
    })?;
    let t = ctx.lang.pick(&EN, &JA);
    Ok(AccountPage {
        layout: ctx.layout("account"),
        t,
        rules: RulesView::new(ctx.lang, state.auth.settings().password_min_length),
        mfa: info.mfa_enabled,
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                id: s.id,
                started: when(s.created_at),
                last_seen: when(s.last_seen_at),
                source: s.source,
                current: s.current,
            })
            .collect(),
        tokens: tokens
            .into_iter()
            .map(|k| TokenRow {
                id: k.id,
                name: k.name,
                role: k.role.as_str(),
                expires: when(k.expires_at),
                last_used: k.last_used_at.map(when),
            })
            .collect(),
        roles: Role::ALL
            .into_iter()
            .filter(|r| p.role.can_grant(*r))
            .map(Role::as_str)
            .collect(),
        notice,
        error: error.as_ref().map(|(m, _)| m.clone()),
        error_at: error.map_or("", |(_, at)| at),
    })
}

/// `GET /ui/account`.
pub async fn show(
    State(state): State<AppState>,
    ctx: PageCtx,
    Query(q): Query<DoneQuery>,
) -> Response {
    let t = ctx.lang.pick(&EN, &JA);
    let notice = match q.done.as_deref() {
        Some("password") => Some(t.changed),
        Some("revoked") => Some(t.revoked),
        _ => None,
    };
    match page(&state, &ctx, notice, None).await {
        Ok(p) => render(&p),
        Err(r) => r,
    }
}

async fn refused(
    state: &AppState,
    ctx: &PageCtx,
    status: StatusCode,
    e: &ApiError,
    at: &'static str,
) -> Response {
    refused_with(state, ctx, status, error_message(ctx.lang, e), at).await
}

async fn refused_with(
    state: &AppState,
    ctx: &PageCtx,
    status: StatusCode,
    message: String,
    at: &'static str,
) -> Response {
    match page(state, ctx, None, Some((message, at))).await {
        Ok(p) => render_status(status, &p),
        Err(r) => r,
    }
}

fn status_of(e: &ApiError) -> StatusCode {
    match e {
        ApiError::Auth(AuthError::TooManyAttempts { .. }) => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Auth(AuthError::AuthenticationFailed) => StatusCode::UNAUTHORIZED,
        ApiError::Auth(AuthError::Forbidden) => StatusCode::FORBIDDEN,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    current: Field<128>,
    new: Field<128>,
    confirm: Field<128>,
}

/// `POST /ui/account/password`.
pub async fn change_password(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Form(f): Form<PasswordForm>,
) -> Response {
    if f.new.as_str() != f.confirm.as_str() {
        let mismatch = ctx.lang.pick(&EN, &JA).mismatch.to_string();
        return refused_with(
            &state,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            mismatch,
            "password",
        )
        .await;
    }
    match state
        .run_hashing(move |auth| auth.change_password(&p, f.current.as_str(), f.new.as_str()))
        .await
    {
        Ok(secret) => {
            let mut resp = see_other("/ui/account?done=password");
            resp.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(SESSION_COOKIE, &secret, None),
            );
            resp
        }
        Err(e) => refused(&state, &ctx, status_of(&e), &e, "password").await,
    }
}

/// `POST /ui/account/sessions/{id}/revoke`.
pub async fn revoke_session(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Response {
    if id.len() > 64 {
        return error_page(
            Some(&ctx),
            StatusCode::NOT_FOUND,
            &error_message(ctx.lang, &ApiError::NotFound),
        );
    }
    match state.run(move |auth| auth.revoke_session(&p, &id)).await {
        Ok(()) => see_other("/ui/account?done=revoked"),
        Err(e) => refused(&state, &ctx, StatusCode::NOT_FOUND, &e, "sessions").await,
    }
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    name: Field<64>,
    role: Field<16>,
    days: Field<3>,
}

/// `POST /ui/account/tokens`: creates a token and shows its secret once.
pub async fn create_token(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Form(f): Form<TokenForm>,
) -> Response {
    let role = Role::ALL
        .into_iter()
        .find(|r| r.as_str() == f.role.as_str());
    let days = f.days.as_str().parse::<u32>().ok();
    let name = f.name.as_str().trim().to_string();
    let (Some(role), Some(days), false) = (role, days, name.is_empty()) else {
        let e = ApiError::BadRequest(String::new());
        return refused(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, &e, "tokens").await;
    };
    match state
        .run(move |auth| auth.create_token(&p, &name, role, days))
        .await
    {
        Ok(token) => render(&TokenPage {
            layout: ctx.layout("account"),
            t: ctx.lang.pick(&EN, &JA),
            token: &token.token,
        }),
        Err(e) => refused(&state, &ctx, status_of(&e), &e, "tokens").await,
    }
}

/// `POST /ui/account/tokens/{id}/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Response {
    if id.len() > 64 {
        return error_page(
            Some(&ctx),
            StatusCode::NOT_FOUND,
            &error_message(ctx.lang, &ApiError::NotFound),
        );
    }
    match state.run(move |auth| auth.revoke_token(&p, &id)).await {
        Ok(()) => see_other("/ui/account?done=revoked"),
        Err(e) => refused(&state, &ctx, StatusCode::NOT_FOUND, &e, "tokens").await,
    }
}
