//! The listener registry: every socket mamori can open, and every service it deliberately does
//! not serve. A listener that is not here must not exist; [`crate::check`] reports it as
//! unexpected when it does.

use schemars::JsonSchema;
use serde::Serialize;

use crate::Transport;

/// A text in both languages of the documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Text {
    /// English.
    pub en: &'static str,
    /// Japanese.
    pub ja: &'static str,
}

/// Who can reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Exposure {
    /// An open port on the network.
    Network,
    /// A local socket, not reachable from the network.
    Local,
    /// Deliberately not served: no socket is opened for it.
    NotServed,
}

/// Where the address and port come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "source", content = "value")]
pub enum PortSource {
    /// `mamorid --listen ADDRESS:PORT` (default `127.0.0.1:8443`).
    Listen,
    /// A path under the state directory.
    Path(&'static str),
    /// A fixed port that stays closed (the service's well-known port).
    Closed(u16),
    /// A fixed port (the protocol's own) that a client of the device holds on any of its
    /// addresses, only while it runs ([`Listener::opens`] says when).
    Fixed(u16),
}

/// Who starts the conversation on this socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The device is a client: it asks, and the socket takes the answers (a DHCP client).
    Client,
    /// The device serves: others connect to it (or would, for a service not served).
    Server,
}

/// Which process holds the socket. [`crate::check`] attributes a live socket on a
/// [`PortSource::Fixed`] port to its listener only when this process holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// A dhcpcd the privileged parent started for a wan interface with `dhcp: true`, or one of
    /// its helper processes ([`crate::Role::Dhcpcd`]).
    Dhcpcd,
    /// mamorid: its management process (the only process when it runs without root).
    Mamorid,
    /// No process: the service is not served.
    Nobody,
}

/// One declared listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Listener {
    /// A stable identifier (`https`, `console`, `ntp-server`…).
    pub id: &'static str,
    /// What it is for.
    pub purpose: Text,
    /// TCP, UDP or Unix.
    pub transport: Transport,
    /// Network, local, or deliberately not served.
    pub exposure: Exposure,
    /// Where its address and port come from.
    pub port: PortSource,
    /// Server or client.
    pub direction: Direction,
    /// The process that holds it.
    pub holder: Holder,
    /// When it is open.
    pub opens: Text,
    /// The authentication it requires.
    pub authentication: Text,
    /// Which requirements it answers.
    pub answers: &'static [&'static str],
}

/// Every listener of the product, in the order of the documentation.
pub fn listeners() -> Vec<Listener> {
    vec![
        Listener {
            id: "https",
            purpose: Text {
                en: "Management: the web UI and the JSON API under /api/v1 (HTTPS, TLS 1.2/1.3 only)",
                ja: "管理：Web UI と /api/v1 の JSON API（HTTPS、TLS 1.2/1.3 のみ）",
            },
            transport: Transport::Tcp,
            exposure: Exposure::Network,
            port: PortSource::Listen,
            direction: Direction::Server,
            holder: Holder::Mamorid,
            opens: Text {
                en: "From the start of mamorid until it stops, on the address of --listen only",
                ja: "mamorid の起動から停止まで、--listen のアドレスのみ",
            },
            authentication: Text {
                en: "Password (and second factor if enrolled) or API token; only login and /healthz answer without it; source allowlist before TLS",
                ja: "パスワード（登録済みなら二要素目）または API トークン。認証なしで応答するのはログインと /healthz のみ。TLS の前に接続元の許可リストを適用",
            },
            answers: &["S3.1-23 R1", "S3.1-01 R1", "S3.1-24"],
        },
        Listener {
            id: "console",
            purpose: Text {
                en: "Local console: the CLI on the device itself (access without the network)",
                ja: "ローカルコンソール：機器上の CLI（ネットワークを介さないアクセス）",
            },
            transport: Transport::Unix,
            exposure: Exposure::Local,
            port: PortSource::Path("run/console.sock"),
            direction: Direction::Server,
            holder: Holder::Mamorid,
            opens: Text {
                en: "From the start of mamorid until it stops; mode 0600, owned by the management user",
                ja: "mamorid の起動から停止まで。モード 0600、管理ユーザ所有",
            },
            authentication: Text {
                en: "Password, as over the network (console recovery: local access only)",
                ja: "ネットワーク経由と同じくパスワード（コンソール復旧はローカルのみ）",
            },
            answers: &["S3.1-01 R6", "S3.1-23 R1"],
        },
        Listener {
            id: "dhcp-client",
            purpose: Text {
                en: "DHCP client (dhcpcd) of a wan interface with `dhcp: true`: takes the interface's IPv4 address, default route and routes from the provider's DHCP server. The firewall accepts only DHCP replies (UDP from port 67) on that interface. dhcpcd also holds a packet socket on the interface (ARP, and DHCP before it has a lease) and a raw socket to send, which this list of TCP and UDP sockets does not show",
                ja: "`dhcp: true` の wan インターフェースの DHCP クライアント（dhcpcd）：プロバイダの DHCP サーバからそのインターフェースの IPv4 アドレス、デフォルトルート、経路を取得する。ファイアウォールはそのインターフェースで DHCP の応答（送信元ポート 67 の UDP）だけを受け付ける。dhcpcd はこのほかにインターフェース上のパケットソケット（ARP と、リース取得前の DHCP）と送信用の raw ソケットも持つが、この TCP・UDP ソケットの一覧には現れない",
            },
            transport: Transport::Udp,
            exposure: Exposure::Network,
            port: PortSource::Fixed(68),
            direction: Direction::Client,
            holder: Holder::Dhcpcd,
            opens: Text {
                en: "Only while a wan interface uses DHCP (from the apply that turns `dhcp` on until the one that turns it off), held by the dhcpcd the privileged parent runs for it, bound to the leased address once it has a lease",
                ja: "wan インターフェースが DHCP を使う間だけ（`dhcp` を有効にした適用から無効にする適用まで）。特権親プロセスがそのインターフェース用に動かす dhcpcd が保持し、リース取得後はリースのアドレスにバインドする",
            },
            authentication: Text {
                en: "None (DHCP has none): only answers that name their server are taken (`require dhcp_server_identifier`), and only the address and routes are used",
                ja: "なし（DHCP に認証の仕組みはない）。サーバ識別子を含む応答だけを受け取り、使うのはアドレスと経路のみ",
            },
            answers: &["S3.1-23 R1", "S3.1-26 R1"],
        },
        Listener {
            id: "ntp-server",
            purpose: Text {
                en: "NTP server: not served. chronyd runs as a client only (`port 0`), so monlist and every other NTP request gets no answer",
                ja: "NTP サーバ：提供しない。chronyd はクライアントとしてのみ動作（`port 0`）し、monlist などの NTP 要求に応答しない",
            },
            transport: Transport::Udp,
            exposure: Exposure::NotServed,
            port: PortSource::Closed(123),
            direction: Direction::Server,
            holder: Holder::Nobody,
            opens: Text {
                en: "Never",
                ja: "開かない",
            },
            authentication: Text {
                en: "Not applicable",
                ja: "該当なし",
            },
            answers: &["S3.1-26 R1", "S3.1-26 R2"],
        },
        Listener {
            id: "chronyd-command",
            purpose: Text {
                en: "chronyd's network command port: not served (`cmdport 0`); mamorid talks to chronyd over its root-only Unix socket",
                ja: "chronyd のネットワークコマンドポート：提供しない（`cmdport 0`）。mamorid は root 専用の Unix ソケットで chronyd と通信",
            },
            transport: Transport::Udp,
            exposure: Exposure::NotServed,
            port: PortSource::Closed(323),
            direction: Direction::Server,
            holder: Holder::Nobody,
            opens: Text {
                en: "Never",
                ja: "開かない",
            },
            authentication: Text {
                en: "Not applicable",
                ja: "該当なし",
            },
            answers: &["S3.1-26 R1"],
        },
        Listener {
            id: "dns",
            purpose: Text {
                en: "DNS resolver or forwarder: not served, so DNS ANY requests get no answer",
                ja: "DNS リゾルバ・フォワーダ：提供しない。DNS ANY 要求に応答しない",
            },
            transport: Transport::Udp,
            exposure: Exposure::NotServed,
            port: PortSource::Closed(53),
            direction: Direction::Server,
            holder: Holder::Nobody,
            opens: Text {
                en: "Never",
                ja: "開かない",
            },
            authentication: Text {
                en: "Not applicable",
                ja: "該当なし",
            },
            answers: &["S3.1-26 R1", "S3.1-26 R2"],
        },
        Listener {
            id: "ssdp",
            purpose: Text {
                en: "UPnP/SSDP: not served, so M-SEARCH gets no answer",
                ja: "UPnP/SSDP：提供しない。M-SEARCH に応答しない",
            },
            transport: Transport::Udp,
            exposure: Exposure::NotServed,
            port: PortSource::Closed(1900),
            direction: Direction::Server,
            holder: Holder::Nobody,
            opens: Text {
                en: "Never",
                ja: "開かない",
            },
            authentication: Text {
                en: "Not applicable",
                ja: "該当なし",
            },
            answers: &["S3.1-26 R1", "S3.1-26 R2"],
        },
    ]
}

/// A language of the documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English (`docs/en`).
    En,
    /// Japanese (`docs/ja`).
    Ja,
}

impl Text {
    fn get(self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Ja => self.ja,
        }
    }
}

/// The registry as the Markdown table of `docs/{en,ja}/ports.md` (between the
/// `<!-- registry -->` markers; a test keeps the two equal).
pub fn markdown_table(lang: Lang) -> String {
    let header = match lang {
        Lang::En => {
            "| id | protocol | port | exposure | direction | process | purpose | when open | authentication | answers |\n"
        }
        Lang::Ja => {
            "| id | プロトコル | ポート | 公開範囲 | 方向 | プロセス | 用途 | 開くタイミング | 認証 | 対応要件 |\n"
        }
    };
    let mut out = String::from(header);
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for l in listeners() {
        let protocol = match l.transport {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
            Transport::Unix => "Unix",
        };
        let port = match (l.port, lang) {
            (PortSource::Listen, Lang::En) => {
                "`--listen` (default 127.0.0.1:8443), IPv4 or IPv6".to_string()
            }
            (PortSource::Listen, Lang::Ja) => {
                "`--listen`（既定 127.0.0.1:8443）、IPv4 または IPv6".to_string()
            }
            (PortSource::Path(p), _) => format!("`STATE/{p}`"),
            (PortSource::Closed(n), Lang::En) => format!("{n} (closed, IPv4 and IPv6)"),
            (PortSource::Closed(n), Lang::Ja) => format!("{n}（閉、IPv4 と IPv6）"),
            (PortSource::Fixed(n), Lang::En) => format!("{n} (IPv4)"),
            (PortSource::Fixed(n), Lang::Ja) => format!("{n}（IPv4）"),
        };
        let direction = match (l.direction, lang) {
            (Direction::Client, Lang::En) => "client",
            (Direction::Client, Lang::Ja) => "クライアント",
            (Direction::Server, Lang::En) => "server",
            (Direction::Server, Lang::Ja) => "サーバ",
        };
        let holder = match (l.holder, lang) {
            (Holder::Dhcpcd, Lang::En) => "dhcpcd (started by the privileged parent)",
            (Holder::Dhcpcd, Lang::Ja) => "dhcpcd（特権親プロセスが起動）",
            (Holder::Mamorid, Lang::En) => "mamorid (management process)",
            (Holder::Mamorid, Lang::Ja) => "mamorid（管理プロセス）",
            (Holder::Nobody, Lang::En) => "none",
            (Holder::Nobody, Lang::Ja) => "なし",
        };
        let exposure = match (l.exposure, lang) {
            (Exposure::Network, Lang::En) => "open on the network",
            (Exposure::Network, Lang::Ja) => "ネットワークに開く",
            (Exposure::Local, Lang::En) => "local only",
            (Exposure::Local, Lang::Ja) => "ローカルのみ",
            (Exposure::NotServed, Lang::En) => "not served",
            (Exposure::NotServed, Lang::Ja) => "提供しない",
        };
        out.push_str(&format!(
            "| `{}` | {protocol} | {port} | {exposure} | {direction} | {holder} | {} | {} | {} | {} |\n",
            l.id,
            l.purpose.get(lang),
            l.opens.get(lang),
            l.authentication.get(lang),
            l.answers.join(", "),
        ));
    }
    out
}
