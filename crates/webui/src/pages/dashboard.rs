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
    text: String,
    /// Where the reader can act on it; none when that page is not open to their role.
    link: Option<&'static str>,
}

/// What the audit log's banners say about it.
#[derive(Debug, Clone, Copy, Default)]
struct LogFacts {
    percent: u8,
    overwritten_unread: u64,
}

/// The words for a notice code, and the page that fixes it. The codes cover the whole
/// device; later capabilities (updates, protocols) add theirs here.
fn banner(lang: Lang, layout: &Layout, code: &'static str, log: LogFacts) -> Banner {
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
            "The audit log is {percent} % full. When it is full, the oldest records are overwritten: make sure they are forwarded to a log collector, or export them.",
            "監査ログの使用率が {percent} % になりました。満杯になると古い記録から上書きされます。ログの転送先に届いていることを確認するか、エクスポートしてください。",
            "/ui/audit",
        ),
        "log_overwritten" => (
            "{overwritten} audit records were overwritten before a log collector received them: they are lost. Check the forwarding of the audit log.",
            "{overwritten} 件の監査ログの記録が、転送先に届く前に上書きされ、失われました。監査ログの転送を確認してください。",
            "/ui/audit",
        ),
        "log_write_failing" => (
            "Writing the audit log fails. Events wait in memory and may be refused when it is full. Check the device's storage.",
            "監査ログの書き込みに失敗しています。イベントはメモリ上で待機しており、いっぱいになると受け付けられなくなります。機器のストレージを確認してください。",
            "/ui/audit",
        ),
        "insecure_forwarding" => (
            "Audit records are forwarded in plain text to at least one log collector: anyone on the network can read or change them. Use TLS.",
            "監査ログの記録が、少なくとも 1 つの転送先に平文で転送されています。ネットワーク上の第三者が読み取ったり改ざんしたりできます。TLS を使用してください。",
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
        "/ui/audit" => layout.can_audit,
        _ => true,
    };
    Banner {
        code,
        text: lang
            .pick(en, ja)
            .replace("{percent}", &log.percent.to_string())
            .replace("{overwritten}", &log.overwritten_unread.to_string()),
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
    let log = state.audit.status();
    let log = LogFacts {
        percent: log.percent,
        overwritten_unread: log.overwritten_unread,
    };
    let mut banners: Vec<Banner> = notices(&state)
        .into_iter()
        .map(|n| banner(ctx.lang, &layout, n.code, log))
        .collect();
    if let Some(p) = ctx.principal.clone()
        && let Ok(session) = state.run(move |auth| auth.session(&p)).await
        && !session.mfa_enabled
    {
        banners.push(banner(ctx.lang, &layout, "mfa_not_enrolled", log));
    }
    if let Some(text) = crate::pages::config::pending_notice(&state, ctx.lang).await {
        banners.insert(
            0,
            Banner {
                code: "config_pending",
                text,
                link: layout.can_config.then_some("/ui/config"),
            },
        );
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

#[cfg(test)]
mod tests {
    use mamori_auth::model::Role;

    use super::*;

    fn layout(role: Role) -> Layout {
        use mamori_auth::model::Permission;
        let ctx = PageCtx {
            lang: Lang::En,
            csrf: String::new(),
            principal: None,
            path: "/ui/".into(),
            host: String::new(),
        };
        let mut l = ctx.layout("dashboard");
        l.can_users = role.allows(Permission::UsersManage);
        l.can_access = role.allows(Permission::SecurityManage);
        l.can_audit = role.allows(Permission::AuditRead);
        l
    }

    #[test]
    fn log_banners_say_how_full_and_how_many_and_link_only_for_readers_of_the_log() {
        let log = LogFacts {
            percent: 87,
            overwritten_unread: 1234,
        };
        let b = banner(Lang::En, &layout(Role::Auditor), "log_capacity", log);
        assert!(b.text.contains("87 % full"), "{}", b.text);
        assert_eq!(b.link, Some("/ui/audit"));
        let b = banner(Lang::Ja, &layout(Role::Admin), "log_overwritten", log);
        assert!(b.text.starts_with("1234 件"), "{}", b.text);
        assert_eq!(b.link, Some("/ui/audit"));
        for role in [Role::Operator, Role::Viewer] {
            for code in ["log_capacity", "log_overwritten", "log_write_failing"] {
                let b = banner(Lang::En, &layout(role), code, log);
                assert_eq!(b.link, None, "{code} for {role:?}");
                assert!(!b.text.contains('{'), "{}", b.text);
            }
        }
        let b = banner(Lang::Ja, &layout(Role::Auditor), "log_write_failing", log);
        assert!(b.text.contains("書き込みに失敗"), "{}", b.text);
    }
}
