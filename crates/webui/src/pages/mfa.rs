//! Second factors: an authenticator app (TOTP) and security keys (WebAuthn, ES256), and the
//! recovery codes that come with the first of them.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mamori_auth::sessions::Restriction;
use mamori_http::error::ApiError;
use mamori_http::extract::Caller;
use mamori_http::{AppState, SESSION_COOKIE};
use serde::Deserialize;

use crate::cookies;
use crate::form::{Field, Form};
use crate::i18n::error_message;
use crate::page::{Layout, PageCtx, error_page, render, render_status, see_other, when};
use crate::pages::login::json_refusal;

struct Texts {
    title: &'static str,
    required: &'static str,
    totp_h: &'static str,
    totp_on: &'static str,
    totp_off: &'static str,
    totp_enroll: &'static str,
    totp_disable: &'static str,
    totp_disable_confirm: &'static str,
    keys_h: &'static str,
    keys_intro: &'static str,
    no_keys: &'static str,
    added: &'static str,
    last_used: &'static str,
    never: &'static str,
    remove: &'static str,
    remove_confirm: &'static str,
    key_name: &'static str,
    key_register: &'static str,
    key_add: &'static str,
    key_failed: &'static str,
    key_wrong_host: &'static str,
    codes_left: &'static str,
    enroll_title: &'static str,
    enroll_steps: &'static str,
    qr_label: &'static str,
    secret: &'static str,
    uri: &'static str,
    code: &'static str,
    verify: &'static str,
    codes_title: &'static str,
    codes_intro: &'static str,
    codes_done: &'static str,
    done_totp: &'static str,
    done_key: &'static str,
    done_removed: &'static str,
}

const EN: Texts = Texts {
    title: "Second factors",
    required: "Your role requires a second factor. Set one up to continue.",
    totp_h: "Authenticator app (TOTP)",
    totp_on: "An authenticator app is set up.",
    totp_off: "No authenticator app is set up.",
    totp_enroll: "Set up an authenticator app",
    totp_disable: "Remove the authenticator app",
    totp_disable_confirm: "Remove the authenticator app from your account?",
    keys_h: "Security keys (WebAuthn)",
    keys_intro: "A security key (USB, NFC or built into your computer) is the strongest second factor: it cannot be phished.",
    no_keys: "No security keys are registered.",
    added: "Added",
    last_used: "Last used",
    never: "never",
    remove: "Remove",
    remove_confirm: "Remove this security key?",
    key_name: "Name for the key",
    key_register: "Register security key",
    key_add: "Add a security key (asks for your password first)",
    key_failed: "The security key was not registered: the browser refused or the key did not answer. Try again.",
    key_wrong_host: "Security keys work only when this page is opened at https://{rp}. You opened it at {host}.",
    codes_left: "Unused recovery codes",
    enroll_title: "Set up an authenticator app",
    enroll_steps: "Scan the QR code with your authenticator app (or enter the key by hand), then type the 6-digit code it shows. The app must support SHA-256 codes; the device accepts the app only after a correct code.",
    qr_label: "QR code for the authenticator app",
    secret: "Key",
    uri: "Setup link",
    code: "Code from the app",
    verify: "Confirm",
    codes_title: "Recovery codes",
    codes_intro: "Each code works once, in place of your second factor. Store them offline, somewhere safe. They will not be shown again.",
    codes_done: "I have stored them",
    done_totp: "The authenticator app is set up.",
    done_key: "The security key is registered.",
    done_removed: "Removed.",
};

const JA: Texts = Texts {
    title: "二要素認証",
    required: "このロールでは二要素認証が必須です。続行するには設定してください。",
    totp_h: "認証アプリ (TOTP)",
    totp_on: "認証アプリが設定されています。",
    totp_off: "認証アプリは設定されていません。",
    totp_enroll: "認証アプリを設定",
    totp_disable: "認証アプリを削除",
    totp_disable_confirm: "認証アプリをアカウントから削除しますか?",
    keys_h: "セキュリティキー (WebAuthn)",
    keys_intro: "セキュリティキー (USB、NFC、またはコンピューター内蔵) は最も強力な二要素認証で、フィッシングの被害を受けません。",
    no_keys: "セキュリティキーは登録されていません。",
    added: "登録日時",
    last_used: "最終使用",
    never: "未使用",
    remove: "削除",
    remove_confirm: "このセキュリティキーを削除しますか?",
    key_name: "キーの名前",
    key_register: "セキュリティキーを登録",
    key_add: "セキュリティキーを追加 (先にパスワードを確認します)",
    key_failed: "セキュリティキーを登録できませんでした。ブラウザーが拒否したか、キーが応答しませんでした。再試行してください。",
    key_wrong_host: "セキュリティキーは https://{rp} でこのページを開いた場合にのみ使えます。現在は {host} で開いています。",
    codes_left: "未使用のリカバリーコード",
    enroll_title: "認証アプリの設定",
    enroll_steps: "認証アプリで QR コードを読み取り (またはキーを手入力し)、表示される 6 桁のコードを入力してください。アプリは SHA-256 のコードに対応している必要があります。正しいコードを確認できた場合にのみ有効になります。",
    qr_label: "認証アプリ用の QR コード",
    secret: "キー",
    uri: "設定用リンク",
    code: "アプリに表示されたコード",
    verify: "確認",
    codes_title: "リカバリーコード",
    codes_intro: "各コードは二要素認証の代わりに 1 回だけ使えます。オフラインの安全な場所に保管してください。二度と表示されません。",
    codes_done: "保管しました",
    done_totp: "認証アプリを設定しました。",
    done_key: "セキュリティキーを登録しました。",
    done_removed: "削除しました。",
};

struct KeyRow {
    id: String,
    name: String,
    added: String,
    last_used: Option<String>,
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    layout: Layout,
    t: &'static Texts,
    required: bool,
    totp: bool,
    keys: Vec<KeyRow>,
    codes_left: usize,
    can_register: bool,
    wrong_host: Option<String>,
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "totp_enroll.html")]
struct EnrollPage<'a> {
    layout: Layout,
    t: &'static Texts,
    secret: &'a str,
    uri: &'a str,
    qr: Option<Qr>,
    error: Option<String>,
}

/// A QR code as an SVG path drawn in the page itself: no image request, no third party, and
/// nothing but digits and path letters in the markup.
struct Qr {
    size: usize,
    path: String,
}

/// Quiet zone around the code, in modules (ISO/IEC 18004 asks for 4).
const QR_QUIET: usize = 4;

fn qr(uri: &str) -> Option<Qr> {
    use std::fmt::Write;
    let code =
        qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M).ok()?;
    let width = code.width();
    let mut path = String::new();
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let _ = write!(
                path,
                "M{} {}h1v1h-1z",
                i % width + QR_QUIET,
                i / width + QR_QUIET
            );
        }
    }
    Some(Qr {
        size: width + 2 * QR_QUIET,
        path,
    })
}

#[derive(Template)]
#[template(path = "codes.html")]
struct CodesPage {
    layout: Layout,
    t: &'static Texts,
    codes: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// The host part of an authority (`[::1]:8443` → `::1`, `gw.example:8443` → `gw.example`).
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

async fn page(
    state: &AppState,
    ctx: &PageCtx,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Response {
    let Some(p) = ctx.caller().cloned() else {
        return see_other("/ui/login");
    };
    let (p1, p2, p3) = (p.clone(), p.clone(), p.clone());
    let info = match state.run(move |auth| auth.session(&p1)).await {
        Ok(i) => i,
        Err(e) => {
            return error_page(
                Some(ctx),
                StatusCode::UNAUTHORIZED,
                &error_message(ctx.lang, &e),
            );
        }
    };
    let keys = state
        .run(move |auth| auth.security_keys(&p2))
        .await
        .unwrap_or_default();
    let codes_left = state
        .run(move |auth| auth.recovery_codes_left(&p3))
        .await
        .unwrap_or(0);
    let p4 = p.clone();
    let totp = state
        .run(move |auth| auth.second_factor_methods(&p4))
        .await
        .is_ok_and(|m| m.totp);
    let t = ctx.lang.pick(&EN, &JA);
    let rp = state.auth.settings().webauthn_rp_id;
    let wrong_host = (host_name(&ctx.host) != rp).then(|| {
        t.key_wrong_host
            .replace("{rp}", &rp)
            .replace("{host}", &ctx.host)
    });
    let reauth_valid = info
        .reauth_valid_until
        .is_some_and(|u| u > state.auth.now());
    render_status(
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        &MfaPage {
            layout: ctx.layout("account"),
            t,
            required: p.restriction == Some(Restriction::MfaEnrollmentRequired),
            totp,
            keys: keys
                .into_iter()
                .map(|k| KeyRow {
                    id: k.id,
                    name: k.name,
                    added: when(k.created_at),
                    last_used: k.last_used_at.map(when),
                })
                .collect(),
            codes_left,
            can_register: reauth_valid && wrong_host.is_none(),
            wrong_host,
            notice,
            error,
        },
    )
}

/// `GET /ui/account/mfa`.
pub async fn show(
    State(state): State<AppState>,
    ctx: PageCtx,
    Query(q): Query<DoneQuery>,
) -> Response {
    let t = ctx.lang.pick(&EN, &JA);
    let notice = match q.done.as_deref() {
        Some("totp") => Some(t.done_totp),
        Some("key") => Some(t.done_key),
        Some("removed") => Some(t.done_removed),
        _ => None,
    };
    page(&state, &ctx, notice, None).await
}

/// `POST /ui/account/mfa/totp`: starts TOTP enrolment and shows the secret once.
pub async fn totp_enroll(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
) -> Response {
    match state.run(move |auth| auth.totp_enroll(&p)).await {
        Ok(e) => render(&EnrollPage {
            layout: ctx.layout("account"),
            t: ctx.lang.pick(&EN, &JA),
            secret: &e.secret,
            uri: &e.otpauth_uri,
            qr: qr(&e.otpauth_uri),
            error: None,
        }),
        Err(e) => page(&state, &ctx, None, Some(error_message(ctx.lang, &e))).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct VerifyForm {
    code: Field<16>,
    // Shown again if the code is wrong: the page that showed them is being replaced.
    #[serde(default)]
    secret: Field<128>,
    #[serde(default)]
    uri: Field<512>,
}

/// Answers a completed enrolment: the new session cookie if the session was limited to
/// enrolment, and the recovery codes if this was the first factor.
fn enrolled(ctx: &PageCtx, codes: Vec<String>, new_secret: Option<String>, done: &str) -> Response {
    let mut resp = if codes.is_empty() {
        see_other(&format!("/ui/account/mfa?done={done}"))
    } else {
        render(&CodesPage {
            layout: ctx.layout("account"),
            t: ctx.lang.pick(&EN, &JA),
            codes,
        })
    };
    if let Some(secret) = new_secret {
        resp.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(SESSION_COOKIE, &secret, None),
        );
    }
    resp
}

/// `POST /ui/account/mfa/totp/verify`: confirms enrolment with a first code.
pub async fn totp_verify(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Form(f): Form<VerifyForm>,
) -> Response {
    let code = f.code.as_str().trim().to_string();
    match state.run(move |auth| auth.totp_verify(&p, &code)).await {
        Ok((codes, secret)) => enrolled(&ctx, codes, secret, "totp"),
        Err(e) if f.secret.non_empty().is_some() => render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &EnrollPage {
                layout: ctx.layout("account"),
                t: ctx.lang.pick(&EN, &JA),
                secret: f.secret.as_str(),
                // Only ever an otpauth link, whatever the form carried.
                uri: Some(f.uri.as_str())
                    .filter(|u| u.starts_with("otpauth://totp/"))
                    .unwrap_or_default(),
                qr: Some(f.uri.as_str())
                    .filter(|u| u.starts_with("otpauth://totp/"))
                    .and_then(qr),
                error: Some(error_message(ctx.lang, &e)),
            },
        ),
        Err(e) => page(&state, &ctx, None, Some(error_message(ctx.lang, &e))).await,
    }
}

/// `POST /ui/account/mfa/totp/disable`.
pub async fn totp_disable(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
) -> Response {
    match state.run(move |auth| auth.totp_disable(&p)).await {
        Ok(()) => see_other("/ui/account/mfa?done=removed"),
        Err(e) => page(&state, &ctx, None, Some(error_message(ctx.lang, &e))).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct ChallengeForm {
    name: Field<64>,
}

/// `POST /ui/account/mfa/keys/challenge`: WebAuthn creation options.
pub async fn key_challenge(
    State(state): State<AppState>,
    Caller(p): Caller,
    Form(f): Form<ChallengeForm>,
) -> Response {
    let name = f.name.as_str().trim().to_string();
    match state
        .run(move |auth| auth.security_key_register_begin(&p, &name))
        .await
    {
        Ok(options) => Json(options).into_response(),
        Err(ApiError::Auth(mamori_auth::AuthError::InvalidRequest(_))) => {
            json_refusal(StatusCode::BAD_REQUEST, "invalid_request")
        }
        Err(_) => json_refusal(StatusCode::CONFLICT, "refused"),
    }
}

#[derive(Debug, Deserialize)]
pub struct RegisterForm {
    credential: Field<16384>,
}

/// `POST /ui/account/mfa/keys`: completes registration.
pub async fn key_register(
    State(state): State<AppState>,
    ctx: PageCtx,
    Caller(p): Caller,
    Form(f): Form<RegisterForm>,
) -> Response {
    match state
        .run(move |auth| auth.security_key_register_finish(&p, f.credential.as_str()))
        .await
    {
        Ok(done) => enrolled(
            &ctx,
            done.recovery_codes.unwrap_or_default(),
            done.new_session_secret,
            "key",
        ),
        Err(e) => {
            let t = ctx.lang.pick(&EN, &JA);
            tracing::info!(error = %e, "security key registration refused");
            page(&state, &ctx, None, Some(t.key_failed.to_string())).await
        }
    }
}

/// `POST /ui/account/mfa/keys/{id}/delete`.
pub async fn key_remove(
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
    match state
        .run(move |auth| auth.security_key_remove(&p, &id))
        .await
    {
        Ok(()) => see_other("/ui/account/mfa?done=removed"),
        Err(e) => page(&state, &ctx, None, Some(error_message(ctx.lang, &e))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn the_qr_code_is_only_path_commands() {
        let q = super::qr("otpauth://totp/mamori%3Aadmin?secret=ABC&issuer=mamori").unwrap();
        assert!(q.size > 21);
        assert!(
            q.path
                .bytes()
                .all(|b| b.is_ascii_digit() || b" Mhvz-".contains(&b))
        );
    }

    #[test]
    fn the_port_is_not_part_of_the_host() {
        assert_eq!(host_name("localhost:8443"), "localhost");
        assert_eq!(host_name("gw.example"), "gw.example");
        assert_eq!(host_name("[::1]:8443"), "::1");
        assert_eq!(host_name("192.0.2.1:443"), "192.0.2.1");
    }
}
