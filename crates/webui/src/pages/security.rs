//! Security information for users, in both languages (S3.1-43): first setup, the password
//! rules, lockout, second factors and sessions. Public: it says nothing about this device.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use mamori_http::AppState;

use mamori_auth::settings::AuthSettings;

use crate::i18n::Lang;
use crate::page::{Layout, PageCtx, render};
use crate::pages::setup::RulesView;

struct Texts {
    title: &'static str,
    setup_h: &'static str,
    setup: &'static str,
    lockout_h: &'static str,
    mfa_h: &'static str,
    mfa: &'static str,
    sessions_h: &'static str,
    access_h: &'static str,
    access: &'static str,
}

const EN: Texts = Texts {
    title: "Security information",
    setup_h: "First setup",
    setup: "The device starts with one account, admin, whose password is printed on the device label and differs from device to device. It works once: at the first login you must choose your own password before anything else. No other account, default password or hidden access exists.",
    lockout_h: "Failed logins and lockout",
    mfa_h: "Second factor",
    mfa: "Protect your account with an authenticator app (TOTP, 6 digits) or a security key (WebAuthn). When you enable one you receive 10 recovery codes; each works once. Keep them offline.",
    sessions_h: "Sessions",
    access_h: "Management access",
    access: "The management service is reachable only over HTTPS (TLS 1.2 or 1.3). Restrict it to your management network under Management access.",
};

const JA: Texts = Texts {
    title: "セキュリティ情報",
    setup_h: "初期設定",
    setup: "機器には admin アカウントが 1 つだけあり、そのパスワードは機器ごとに異なり、機器のラベルに記載されています。このパスワードは 1 回だけ有効で、最初のログイン時に独自のパスワードを設定するまで他の操作はできません。その他のアカウント、既定のパスワード、隠れたアクセス手段はありません。",
    lockout_h: "ログイン失敗とロック",
    mfa_h: "二要素認証",
    mfa: "認証アプリ (TOTP、6 桁) またはセキュリティキー (WebAuthn) でアカウントを保護してください。有効にすると 10 個のリカバリーコードが発行されます。各コードは 1 回だけ使えます。オフラインで保管してください。",
    sessions_h: "セッション",
    access_h: "管理アクセス",
    access: "管理機能には HTTPS (TLS 1.2 または 1.3) でのみ接続できます。「管理アクセス」で管理用ネットワークに限定してください。",
};

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityPage {
    layout: Layout,
    t: &'static Texts,
    rules: RulesView,
    lockout: String,
    sessions: String,
}

/// The lockout paragraph, with this device's settings (an administrator may have changed them).
pub(crate) fn lockout_text(lang: Lang, s: &AuthSettings) -> String {
    let (n, base, max) = (
        s.lockout_threshold,
        lang.duration(s.lockout_base_seconds),
        lang.duration(s.lockout_max_seconds),
    );
    let src = s.source_threshold;
    match lang {
        Lang::En => format!(
            "After {n} failed logins in a row an account is locked for {base}; each further lock \
             doubles the time, up to {max}. While it is locked even the right password is \
             refused. After {src} failures in a row from one address, that address is blocked \
             the same way, for every account. Every failure and lock is recorded in the audit \
             log. Administrators at the local console can always recover an account."
        ),
        Lang::Ja => format!(
            "ログインに {n} 回続けて失敗するとアカウントがロックされます。ロックの長さは最初が \
             {base}で、ロックが繰り返されるたびに 2 倍 (最長 {max}) になります。ロック中は正しいパスワードでもログイン\
             できません。同じアドレスから {src} 回続けて失敗すると、そのアドレスからはすべての\
             アカウントへのログインが同じように一定時間拒否されます。失敗とロックはすべて監査ログ\
             に記録されます。ローカルコンソールの管理者はいつでもアカウントを回復できます。"
        ),
    }
}

fn sessions_text(lang: Lang, s: &AuthSettings) -> String {
    let (idle, max) = (
        lang.duration(s.idle_timeout_seconds),
        lang.duration(s.absolute_timeout_seconds),
    );
    match lang {
        Lang::En => format!(
            "A session ends after {idle} without activity and after {max} in any case. Changing \
             users or security settings asks for your password again. Log out when you are done, \
             and review your open sessions under My account."
        ),
        Lang::Ja => format!(
            "セッションは {idle}以上操作がないと終了し、長くても {max}で終了します。ユーザーや\
             セキュリティ設定の変更時にはパスワードの再入力を求めます。作業が終わったらログアウト\
             し、開いているセッションを「アカウント」で確認してください。"
        ),
    }
}

/// `GET /ui/security`.
pub async fn show(State(state): State<AppState>, ctx: PageCtx) -> Response {
    let settings = state.auth.settings();
    render(&SecurityPage {
        layout: ctx.layout("security"),
        t: ctx.lang.pick(&EN, &JA),
        rules: RulesView::new(ctx.lang, settings.password_min_length),
        lockout: lockout_text(ctx.lang, &settings),
        sessions: sessions_text(ctx.lang, &settings),
    })
}
