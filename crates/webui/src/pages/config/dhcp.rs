//! The DHCP status on the network overview: per wan interface with DHCP, the client's state
//! and its lease, from the same read as `GET /api/v1/network/status`
//! ([`mamori_http::handlers::network::read`]). Its own words in both languages, one struct,
//! two values: a missing translation does not compile.

use mamori_http::error::ApiError;
use mamori_http::handlers::network::{DhcpInterface, NetworkStatus};
use mamori_netconfig::DhcpState;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::view::at;

pub struct DhcpTexts {
    pub title: &'static str,
    pub intro: &'static str,
    pub state: &'static str,
    pub st_bound: &'static str,
    pub st_failed: &'static str,
    pub st_requesting: &'static str,
    pub st_stopped: &'static str,
    pub address: &'static str,
    pub gateway: &'static str,
    pub dns: &'static str,
    pub server: &'static str,
    pub lease_time: &'static str,
    pub obtained: &'static str,
    pub expires: &'static str,
    pub lease: &'static str,
    pub no_lease: &'static str,
    pub none: &'static str,
    pub infinite: &'static str,
    pub never: &'static str,
    pub left: &'static str,
    pub client: &'static str,
    pub running: &'static str,
    pub not_running: &'static str,
    pub error: &'static str,
    pub lease_error: &'static str,
    pub not_configured: &'static str,
    pub unavailable: &'static str,
    pub truncated: &'static str,
    pub days: &'static str,
    pub hours: &'static str,
    pub minutes: &'static str,
    pub seconds: &'static str,
}

pub static EN: DhcpTexts = DhcpTexts {
    title: "DHCP on the uplink",
    intro: "The wan interfaces that take their IPv4 address from the provider's DHCP server, as the device's DHCP client (dhcpcd) holds them now. The DNS servers are shown as the server offered them; the device does not use them.",
    state: "State",
    st_bound: "Bound: the lease is in use",
    st_failed: "Failed",
    st_requesting: "Requesting a lease",
    st_stopped: "Stopped",
    address: "Address",
    gateway: "Gateway",
    dns: "DNS servers",
    server: "DHCP server",
    lease_time: "Lease time",
    obtained: "Obtained",
    expires: "Expires",
    lease: "Lease",
    no_lease: "No lease",
    none: "none",
    infinite: "infinite",
    never: "never",
    left: "{time} left",
    client: "Client",
    running: "dhcpcd runs (process {pid}; restarts: {n})",
    not_running: "dhcpcd does not run",
    error: "Reason",
    lease_error: "Lease file",
    not_configured: "Not on DHCP in the running configuration",
    unavailable: "The DHCP status could not be read from the device's privileged part.",
    truncated: "More DHCP clients run than are shown here.",
    days: "d",
    hours: "h",
    minutes: "min",
    seconds: "s",
};

pub static JA: DhcpTexts = DhcpTexts {
    title: "上位回線の DHCP",
    intro: "プロバイダーの DHCP サーバーから IPv4 アドレスを取得する wan インターフェースについて、本機の DHCP クライアント（dhcpcd）が現在保持している状態です。DNS サーバーはサーバーから提供された値をそのまま表示しており、本機では使用していません。",
    state: "状態",
    st_bound: "取得済み（リース使用中）",
    st_failed: "失敗",
    st_requesting: "リース要求中",
    st_stopped: "停止中",
    address: "アドレス",
    gateway: "ゲートウェイ",
    dns: "DNS サーバー",
    server: "DHCP サーバー",
    lease_time: "リース期間",
    obtained: "取得日時",
    expires: "有効期限",
    lease: "リース",
    no_lease: "リースなし",
    none: "なし",
    infinite: "無期限",
    never: "なし（無期限）",
    left: "残り {time}",
    client: "クライアント",
    running: "dhcpcd 実行中（プロセス {pid}、再起動 {n} 回）",
    not_running: "dhcpcd は動作していません",
    error: "理由",
    lease_error: "リースファイル",
    not_configured: "実行中の設定ではこのインターフェースは DHCP を使用していません",
    unavailable: "本機の特権プロセスから DHCP の状態を読み取れませんでした。",
    truncated: "ここに表示されている以上の DHCP クライアントが動作しています。",
    days: "日",
    hours: "時間",
    minutes: "分",
    seconds: "秒",
};

/// A lease in words.
#[derive(Debug, Clone)]
pub struct LeaseRow {
    pub address: String,
    pub gateway: String,
    pub dns: String,
    pub server: String,
    pub lease_time: String,
    pub obtained: String,
    pub expires: String,
}

/// One interface's client in words.
#[derive(Debug, Clone)]
pub struct DhcpRow {
    pub interface: String,
    pub state: &'static str,
    pub state_code: &'static str,
    pub lease: Option<LeaseRow>,
    pub client: String,
    pub error: Option<String>,
    pub lease_error: Option<String>,
    pub configured: bool,
}

/// What the overview shows: nothing when no interface uses DHCP and the status was read.
#[derive(Debug, Clone, Default)]
pub struct DhcpView {
    pub rows: Vec<DhcpRow>,
    pub unavailable: Option<&'static str>,
    pub truncated: bool,
}

impl DhcpView {
    /// Whether the section appears at all.
    pub fn shown(&self) -> bool {
        !self.rows.is_empty() || self.unavailable.is_some()
    }

    /// The view of what `mamori_http::handlers::network::read` answered.
    pub fn of(t: &DhcpTexts, read: Result<NetworkStatus, ApiError>) -> Self {
        match read {
            Ok(s) => Self {
                rows: s.dhcp.iter().map(|d| row(t, d)).collect(),
                unavailable: None,
                truncated: s.truncated,
            },
            Err(e) => {
                tracing::warn!(error = %e, "the DHCP status could not be read");
                Self {
                    rows: Vec::new(),
                    unavailable: Some(t.unavailable),
                    truncated: false,
                }
            }
        }
    }
}

fn state(t: &DhcpTexts, s: DhcpState) -> &'static str {
    match s {
        DhcpState::Bound => t.st_bound,
        DhcpState::Failed => t.st_failed,
        DhcpState::Requesting => t.st_requesting,
        DhcpState::Stopped => t.st_stopped,
    }
}

/// Seconds as the largest two units: `1 h 30 min`, `2 日 3 時間`.
fn span(t: &DhcpTexts, secs: u64) -> String {
    let parts = [
        (secs / 86_400, t.days),
        (secs % 86_400 / 3600, t.hours),
        (secs % 3600 / 60, t.minutes),
        (secs % 60, t.seconds),
    ];
    let words: Vec<String> = parts
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    if words.is_empty() {
        format!("0 {}", t.seconds)
    } else {
        words.join(" ")
    }
}

/// An RFC 3339 time from the API as the pages show times; the text itself if it does not
/// parse (it always does: the API wrote it).
fn when(rfc3339: &str) -> String {
    OffsetDateTime::parse(rfc3339, &Rfc3339).map_or_else(|_| rfc3339.to_owned(), at)
}

fn row(t: &DhcpTexts, d: &DhcpInterface) -> DhcpRow {
    let lease = d.lease.as_ref().map(|l| LeaseRow {
        address: l.address.clone(),
        gateway: l.gateway.clone().unwrap_or_else(|| t.none.to_owned()),
        dns: if l.dns_servers.is_empty() {
            t.none.to_owned()
        } else {
            l.dns_servers.join(", ")
        },
        server: l.server.clone(),
        lease_time: l
            .lease_seconds
            .map_or_else(|| t.infinite.to_owned(), |s| span(t, u64::from(s))),
        obtained: when(&l.obtained_at),
        expires: match (&l.expires_at, l.remaining_seconds) {
            (Some(at), Some(left)) => format!(
                "{} ({})",
                when(at),
                t.left.replace("{time}", &span(t, left))
            ),
            _ => t.never.to_owned(),
        },
    });
    DhcpRow {
        interface: d.interface.clone(),
        state: state(t, d.state),
        state_code: d.state.as_str(),
        lease,
        client: match (d.running, d.pid) {
            (true, Some(pid)) => t
                .running
                .replace("{pid}", &pid.to_string())
                .replace("{n}", &d.restarts.to_string()),
            _ => t.not_running.to_owned(),
        },
        error: d.error.clone(),
        lease_error: d.lease_error.clone(),
        configured: d.configured,
    }
}

#[cfg(test)]
mod tests {
    use mamori_http::handlers::network::LeaseView;

    use super::*;

    fn bound() -> NetworkStatus {
        NetworkStatus {
            dhcp: vec![DhcpInterface {
                interface: "wan0".into(),
                state: DhcpState::Bound,
                configured: true,
                running: true,
                pid: Some(42),
                restarts: 1,
                lease: Some(LeaseView {
                    address: "203.0.113.120/24".into(),
                    gateway: Some("203.0.113.1".into()),
                    dns_servers: vec![],
                    server: "203.0.113.1".into(),
                    lease_seconds: Some(5400),
                    obtained_at: "2026-12-06T08:36:41Z".into(),
                    expires_at: Some("2026-12-06T10:06:41Z".into()),
                    remaining_seconds: Some(3725),
                }),
                error: None,
                lease_error: None,
            }],
            truncated: false,
        }
    }

    #[test]
    fn a_bound_lease_reads_in_both_languages() {
        let v = DhcpView::of(&EN, Ok(bound()));
        assert!(v.shown());
        let r = &v.rows[0];
        assert_eq!((r.state, r.state_code), (EN.st_bound, "bound"));
        let l = r.lease.as_ref().unwrap();
        assert_eq!(l.dns, "none");
        assert_eq!(l.lease_time, "1 h 30 min");
        assert_eq!(l.obtained, "2026-12-06 08:36:41 UTC");
        assert_eq!(l.expires, "2026-12-06 10:06:41 UTC (1 h 2 min left)");
        assert_eq!(r.client, "dhcpcd runs (process 42; restarts: 1)");
        let v = DhcpView::of(&JA, Ok(bound()));
        let l = v.rows[0].lease.as_ref().unwrap();
        assert_eq!(l.lease_time, "1 時間 30 分");
        assert!(l.expires.ends_with(" (残り 1 時間 2 分)"), "{}", l.expires);
        assert_eq!(v.rows[0].state, "取得済み（リース使用中）");
    }

    #[test]
    fn no_dhcp_shows_nothing_and_a_failed_read_says_so() {
        let none = DhcpView::of(
            &EN,
            Ok(NetworkStatus {
                dhcp: vec![],
                truncated: false,
            }),
        );
        assert!(!none.shown());
        let failed = DhcpView::of(&JA, Err(ApiError::Internal("parent gone".into())));
        assert!(failed.shown());
        assert_eq!(failed.unavailable, Some(JA.unavailable));
    }

    #[test]
    fn spans_use_the_two_largest_units() {
        assert_eq!(span(&EN, 0), "0 s");
        assert_eq!(span(&EN, 59), "59 s");
        assert_eq!(span(&EN, 600), "10 min");
        assert_eq!(span(&EN, 86_400 + 7200 + 5), "1 d 2 h");
        assert_eq!(span(&EN, 86_400 + 5), "1 d");
        assert_eq!(span(&JA, 90), "1 分 30 秒");
    }
}
