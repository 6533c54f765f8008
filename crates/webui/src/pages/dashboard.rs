//! The dashboard: what the device is, how long it has been up, and what needs attention.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use mamori_http::AppState;
use mamori_http::handlers::device::{device_info, notices};

use crate::i18n::Lang;
use crate::page::{Layout, PageCtx, render};

struct Texts {
    title: &'static str,
    device: &'static str,
    model: &'static str,
    serial: &'static str,
    firmware: &'static str,
    uptime: &'static str,
    time: &'static str,
    notices: &'static str,
    no_notices: &'static str,
}

const EN: Texts = Texts {
    title: "Dashboard",
    device: "Device",
    model: "Model",
    serial: "Serial number",
    firmware: "Firmware version",
    uptime: "Uptime",
    time: "Device time (UTC)",
    notices: "Security notices",
    no_notices: "Nothing needs your attention.",
};

const JA: Texts = Texts {
    title: "ダッシュボード",
    device: "機器",
    model: "機種名",
    serial: "シリアル番号",
    firmware: "ファームウェアバージョン",
    uptime: "稼働時間",
    time: "機器の時刻 (UTC)",
    notices: "セキュリティに関するお知らせ",
    no_notices: "対応が必要な項目はありません。",
};

/// A banner: what is wrong and where to fix it.
struct Banner {
    code: &'static str,
    text: &'static str,
    /// Where the reader can act on it; none when that page is not open to their role.
    link: Option<&'static str>,
}

/// The words for a notice code, and the page that fixes it. The codes cover the whole
/// device; later capabilities (updates, log capacity, protocols) add theirs here.
fn banner(lang: Lang, layout: &Layout, code: &'static str) -> Banner {
    let (en, ja, link) = match code {
        "allowlist_open" => (
            "The management service accepts connections from any address. Restrict it to your management network.",
            "管理機能はすべてのアドレスからの接続を受け付けています。管理用ネットワークに限定してください。",
            "/ui/access",
        ),
        "mfa_not_required_for_admin" => (
            "Administrators are not required to use a second factor. An administrator can require it: mamori settings auth set mfa_required_roles=admin",
            "管理者に二要素認証が必須になっていません。管理者は次のコマンドで必須にできます: mamori settings auth set mfa_required_roles=admin",
            "",
        ),
        "mfa_not_enrolled" => (
            "Your account has no second factor. Add an authenticator app or a security key.",
            "あなたのアカウントには二要素認証が設定されていません。認証アプリまたはセキュリティキーを追加してください。",
            "/ui/account/mfa",
        ),
        "update_available" => (
            "A firmware update is available.",
            "ファームウェアの更新があります。",
            "",
        ),
        "log_capacity" => (
            "The audit log is nearly full.",
            "監査ログの容量が残りわずかです。",
            "",
        ),
        "insecure_protocol" => (
            "An insecure protocol is enabled.",
            "安全でないプロトコルが有効になっています。",
            "",
        ),
        _ => (
            "A setting needs attention.",
            "確認が必要な設定があります。",
            "",
        ),
    };
    // A page the reader's role cannot open is not offered as a link.
    let open = match link {
        "" => false,
        "/ui/access" => layout.can_access,
        "/ui/users" => layout.can_users,
        _ => true,
    };
    Banner {
        code,
        text: lang.pick(en, ja),
        link: open.then_some(link),
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    layout: Layout,
    t: &'static Texts,
    model: String,
    serial: String,
    firmware: String,
    uptime: String,
    time: String,
    banners: Vec<Banner>,
}

fn uptime_text(lang: Lang, secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match lang {
        Lang::En => format!("{d} d {h} h {m} min"),
        Lang::Ja => format!("{d} 日 {h} 時間 {m} 分"),
    }
}

/// `GET /ui/`.
pub async fn show(State(state): State<AppState>, ctx: PageCtx) -> Response {
    let info = device_info(&state);
    let layout = ctx.layout("dashboard");
    let mut banners: Vec<Banner> = notices(&state)
        .into_iter()
        .map(|n| banner(ctx.lang, &layout, n.code))
        .collect();
    if let Some(p) = ctx.principal.clone()
        && let Ok(session) = state.run(move |auth| auth.session(&p)).await
        && !session.mfa_enabled
    {
        banners.push(banner(ctx.lang, &layout, "mfa_not_enrolled"));
    }
    render(&Dashboard {
        layout,
        t: ctx.lang.pick(&EN, &JA),
        uptime: uptime_text(ctx.lang, info.uptime_seconds),
        model: info.model,
        serial: info.serial,
        firmware: info.firmware_version,
        time: crate::page::when_precise(&info.time),
        banners,
    })
}
