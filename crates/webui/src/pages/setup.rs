//! First-time setup: the label password is replaced by one the administrator chooses, with
//! the rules explained while they type (S3.1-02).

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mamori_auth::AuthError;
use mamori_auth::sessions::Restriction;
use mamori_http::error::ApiError;
use mamori_http::extract::Caller;
use mamori_http::{AppState, SESSION_COOKIE};
use serde::Deserialize;
use serde_json::json;

use crate::cookies;
use crate::form::{Field, Form};
use crate::i18n::{Lang, error_message};
use crate::page::{Layout, PageCtx, render, render_status, see_other};

/// The password rules, in both languages. Also used by the account page.
pub struct Rules {
    pub heading: &'static str,
    pub length: &'static str,
    pub a: &'static str,
    pub b: &'static str,
    pub c: &'static str,
    pub d: &'static str,
    pub tip: &'static str,
}

pub const RULES_EN: Rules = Rules {
    heading: "Password rules",
    length: "At least {min} characters (at most 128). Spaces are allowed: a phrase of several words is a good password.",
    a: "Not a common password, a common string such as \"admin\" or \"root\", or a keyboard pattern such as \"qwerty\".",
    b: "Not built on a well-known word or name, such as \"baseball\" or \"michael\".",
    c: "Not a counter, repeat or sequence, such as \"123456\", \"aaaaaa\" or \"abcd1234\".",
    d: "Not built on public information: the user name, the model, the serial number, the host name, a MAC address or a Wi-Fi name.",
    tip: "Use a password manager, or several unrelated words.",
};

pub const RULES_JA: Rules = Rules {
    heading: "パスワードの規則",
    length: "{min} 文字以上 (128 文字まで)。空白も使えます。複数の単語を並べたフレーズは良いパスワードです。",
    a: "よく使われるパスワード、「admin」「root」などの一般的な文字列、「qwerty」などのキーボード配列ではないこと。",
    b: "「baseball」「michael」などのよく知られた単語や人名・地名をもとにしていないこと。",
    c: "「123456」「aaaaaa」「abcd1234」などの連番・繰り返し・並びではないこと。",
    d: "公開情報をもとにしていないこと: ユーザー名、機種名、シリアル番号、ホスト名、MAC アドレス、Wi-Fi の名前 (SSID)。",
    tip: "パスワードマネージャーを使うか、互いに関係のない複数の単語を組み合わせてください。",
};

/// The rules with the configured minimum length filled in.
pub struct RulesView {
    pub r: &'static Rules,
    pub length: String,
}

impl RulesView {
    pub fn new(lang: Lang, min: usize) -> Self {
        let r = lang.pick(&RULES_EN, &RULES_JA);
        Self {
            r,
            length: r.length.replace("{min}", &min.to_string()),
        }
    }
}

struct Texts {
    title: &'static str,
    intro: &'static str,
    current: &'static str,
    current_hint: &'static str,
    new: &'static str,
    confirm: &'static str,
    mismatch: &'static str,
    submit: &'static str,
    checking: &'static str,
    acceptable: &'static str,
}

const EN: Texts = Texts {
    title: "Set your password",
    intro: "The password on the device label works only once. Choose your own password now; nothing else can be done until you have.",
    current: "Current password (from the label)",
    current_hint: "The password printed on the label, or the one-time password you were given.",
    new: "New password",
    confirm: "New password again",
    mismatch: "The two new passwords are not the same.",
    submit: "Set password",
    checking: "Checking…",
    acceptable: "This password meets the rules.",
};

const JA: Texts = Texts {
    title: "パスワードの設定",
    intro: "機器のラベルに記載されたパスワードは 1 回しか使えません。ご自身のパスワードを設定してください。設定するまで他の操作はできません。",
    current: "現在のパスワード (ラベル記載)",
    current_hint: "ラベルに記載されたパスワード、または発行された一時パスワード。",
    new: "新しいパスワード",
    confirm: "新しいパスワード (確認)",
    mismatch: "確認用のパスワードが一致しません。",
    submit: "パスワードを設定",
    checking: "確認中…",
    acceptable: "このパスワードは規則を満たしています。",
};

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    t: &'static Texts,
    rules: RulesView,
    error: Option<String>,
    field: &'static str,
}

fn page(state: &AppState, ctx: &PageCtx, error: Option<String>, field: &'static str) -> SetupPage {
    let min = state.auth.settings().password_min_length;
    SetupPage {
        layout: ctx.layout("account"),
        t: ctx.lang.pick(&EN, &JA),
        rules: RulesView::new(ctx.lang, min),
        error,
        field,
    }
}

/// `GET /ui/setup`. A session that need not change its password has the account page for it.
pub async fn show(State(state): State<AppState>, ctx: PageCtx) -> Response {
    if ctx
        .principal
        .as_ref()
        .is_some_and(|p| p.restriction != Some(Restriction::PasswordChangeRequired))
    {
        return see_other("/ui/account");
    }
    render(&page(&state, &ctx, None, ""))
}

#[derive(Debug, Deserialize)]
pub struct SetupForm {
    current: Field<128>,
    new: Field<128>,
    confirm: Field<128>,
}

/// `POST /ui/setup`.
pub async fn submit(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Form(f): Form<SetupForm>,
) -> Response {
    if f.new.as_str() != f.confirm.as_str() {
        let t = ctx.lang.pick(&EN, &JA);
        return render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(&state, &ctx, Some(t.mismatch.into()), "confirm"),
        );
    }
    let result = state
        .run_hashing(move |auth| auth.change_password(&p, f.current.as_str(), f.new.as_str()))
        .await;
    match result {
        Ok(secret) => {
            let mut resp = see_other("/ui/");
            resp.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(SESSION_COOKIE, &secret, None),
            );
            resp
        }
        Err(e) => {
            let field = match &e {
                ApiError::Auth(AuthError::PasswordRejected(_) | AuthError::InvalidRequest(_)) => {
                    "new"
                }
                _ => "current",
            };
            let status = match &e {
                ApiError::Auth(AuthError::TooManyAttempts { .. }) => StatusCode::TOO_MANY_REQUESTS,
                ApiError::Auth(AuthError::AuthenticationFailed) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            render_status(
                status,
                &page(&state, &ctx, Some(error_message(ctx.lang, &e)), field),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CheckForm {
    password: Field<128>,
}

/// `POST /ui/password/check`: whether a candidate meets the rules, and if not, why, in the
/// user's language. Nothing is stored or logged.
pub async fn check(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Form(f): Form<CheckForm>,
) -> Response {
    let t = ctx.lang.pick(&EN, &JA);
    match state
        .run(move |auth| auth.check_new_password(&p, f.password.as_str()))
        .await
    {
        Ok(()) => Json(json!({"ok": true, "message": t.acceptable})).into_response(),
        Err(ApiError::Auth(AuthError::PasswordRejected(r))) => Json(json!({
            "ok": false,
            "rule": r.rule,
            "message": match ctx.lang {
                Lang::En => format!("This password {}.", r.reason),
                Lang::Ja => format!("このパスワードは使えません: {}", r.reason_ja),
            },
        }))
        .into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
