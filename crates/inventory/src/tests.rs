use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use procfs::FromBufReadSI;
use procfs::net::{TcpNetEntries, UdpNetEntries};

use super::*;

// Captured on a Debian 12 host (x86_64): a v4 listener, an established connection, a v6
// listener on ::1, a dual-stack listener on :: and a v4-mapped connection on it.
const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41211 1 0000000000000000 100 0 0 10 0
   1: 0100007F:20FB 0100007F:B2C4 01 00000000:00000000 02:000AB8B4 00000000   999        0 51234 2 0000000000000000 20 4 30 10 -1
";
const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61000 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61001 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0016 0000000000000000FFFF00000100007F:D6A2 01 00000000:00000000 02:0009E7A1 00000000     0        0 61002 2 0000000000000000 20 4 1 10 -1
   3: 0000000000000000FFFF00000100007F:1389 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 61003 1 0000000000000000 100 0 0 10 0
";
// A bound UDP socket on 0.0.0.0:5353 and a connected one (an NTP client's) to 10.0.0.1:123.
const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000   104        0 71000 2 0000000000000000 0
  200: 0F00000A:A1B2 0100000A:007B 01 00000000:00000000 00:00000000 00000000   105        0 71001 2 0000000000000000 0
";

fn tcp(text: &str, family: Family) -> Vec<LiveSocket> {
    let e = TcpNetEntries::from_buf_read(text.as_bytes(), procfs::current_system_info()).unwrap();
    from_tcp(family, e.0)
}

#[test]
fn tcp_tables_give_listeners_only() {
    let v4 = tcp(TCP, Family::Ipv4);
    assert_eq!(v4.len(), 1);
    assert_eq!(v4[0].address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(v4[0].port, 8443);
    assert_eq!(v4[0].inode, 41211);
    let v6 = tcp(TCP6, Family::Ipv6);
    let got: Vec<_> = v6.iter().map(|s| (s.address, s.port, s.family)).collect();
    assert_eq!(
        got,
        [
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 8080, Family::Ipv6),
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 22, Family::Ipv6),
            // v4-mapped: shown as IPv4, read from the v6 table.
            (IpAddr::V4(Ipv4Addr::LOCALHOST), 5001, Family::Ipv6),
        ]
    );
}

#[test]
fn udp_tables_give_unconnected_sockets_only() {
    let e = UdpNetEntries::from_buf_read(UDP.as_bytes(), procfs::current_system_info()).unwrap();
    let udp = from_udp(Family::Ipv4, e.0);
    assert_eq!(udp.len(), 1);
    assert_eq!(
        (udp[0].address, udp[0].port),
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5353)
    );
}

#[test]
fn the_https_listener_is_expected_and_anything_else_is_not() {
    let configured = Configured {
        https: "127.0.0.1:8443".parse().unwrap(),
    };
    let mut live = tcp(TCP, Family::Ipv4);
    let inv = check(&configured, live.clone());
    assert!(inv.consistent(), "{inv:?}");
    assert_eq!(inv.live[0].listener, Some("https"));

    live.extend(tcp(TCP6, Family::Ipv6));
    let inv = check(&configured, live);
    let unexpected: Vec<_> = inv.unexpected.iter().map(|s| s.port).collect();
    assert_eq!(unexpected, [22, 5001, 8080]);
    assert!(inv.missing.is_empty());

    let inv = check(&configured, Vec::new());
    assert_eq!(inv.missing.len(), 1);
    assert_eq!(inv.missing[0].listener, "https");
    assert_eq!(inv.missing[0].port, 8443);
}

#[test]
fn a_v6_listener_matches_a_v6_configuration_only() {
    let configured = Configured {
        https: "[::1]:8080".parse().unwrap(),
    };
    let inv = check(&configured, tcp(TCP6, Family::Ipv6));
    let https: Vec<_> = inv
        .live
        .iter()
        .filter(|c| c.listener == Some("https"))
        .collect();
    assert_eq!(https.len(), 1);
    assert_eq!(https[0].socket.family, Family::Ipv6);
    // Same port on another transport or address does not count.
    let configured = Configured {
        https: "[::2]:8080".parse().unwrap(),
    };
    assert_eq!(check(&configured, tcp(TCP6, Family::Ipv6)).missing.len(), 1);
}

#[test]
fn every_listener_is_declared_once_and_fully() {
    let all = listeners();
    let mut ids: Vec<_> = all.iter().map(|l| l.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
    for l in &all {
        for t in [l.purpose, l.opens, l.authentication] {
            assert!(!t.en.is_empty() && !t.ja.is_empty(), "{}", l.id);
        }
        assert!(!l.answers.is_empty(), "{}", l.id);
        // A network server's port comes from the configuration, a client's is its protocol's
        // and held by a process of its own; not-served ones name the port that stays closed
        // and no process.
        match (l.exposure, l.direction) {
            (Exposure::Network, Direction::Server) => {
                assert_eq!((l.port, l.holder), (PortSource::Listen, Holder::Mamorid));
            }
            (Exposure::Network, Direction::Client) => {
                assert!(matches!(l.port, PortSource::Fixed(_)), "{}", l.id);
                assert_ne!(l.holder, Holder::Nobody, "{}", l.id);
            }
            (Exposure::NotServed, _) => {
                assert!(matches!(l.port, PortSource::Closed(_)));
                assert_eq!(l.holder, Holder::Nobody);
            }
            (Exposure::Local, _) => assert_eq!(l.transport, Transport::Unix),
        }
    }
    // The only server on the network is the management HTTPS listener (S3.1-23 R1-A2); the
    // only other open port is the wan's DHCP client.
    let open: Vec<_> = all
        .iter()
        .filter(|l| l.exposure == Exposure::Network)
        .map(|l| (l.id, l.direction))
        .collect();
    assert_eq!(
        open,
        [
            ("https", Direction::Server),
            ("dhcp-client", Direction::Client)
        ]
    );
}

fn owned(mut s: LiveSocket, pid: u32, name: &str, role: Role) -> LiveSocket {
    s.owner = Some(Owner {
        pid,
        name: name.into(),
        role,
    });
    s
}

/// A bound UDP socket on `address:port`, as the v4 table shows dhcpcd's after a lease.
fn udp4(address: [u8; 4], port: u16, inode: u64) -> LiveSocket {
    LiveSocket {
        transport: Transport::Udp,
        family: Family::Ipv4,
        address: IpAddr::V4(Ipv4Addr::from(address)),
        port,
        inode,
        owner: None,
    }
}

/// S3.1-23 R1: the DHCP client's socket (UDP 68 on the leased address, held by the dhcpcd the
/// parent started) is the declared `dhcp-client`, and never missing when it is not open.
#[test]
fn the_parents_dhcpcd_on_udp_68_is_the_dhcp_client() {
    let configured = Configured {
        https: "127.0.0.1:8443".parse().unwrap(),
    };
    let mut live = tcp(TCP, Family::Ipv4);
    live.push(owned(
        udp4([203, 0, 113, 120], 68, 9001),
        4242,
        "dhcpcd",
        Role::Dhcpcd,
    ));
    let inv = check(&configured, live.clone());
    assert!(inv.consistent(), "{inv:?}");
    let dhcp: Vec<_> = inv
        .live
        .iter()
        .filter(|c| c.listener == Some("dhcp-client"))
        .collect();
    assert_eq!(dhcp.len(), 1);
    assert_eq!(dhcp[0].socket.port, 68);
    // Bound to 0.0.0.0 (some dhcpcd versions, before a lease) it is the same client.
    let mut any = live.clone();
    any[1].address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    assert!(check(&configured, any).consistent());
    // No DHCP on any wan: nothing on 68, and nothing missing.
    let inv = check(&configured, tcp(TCP, Family::Ipv4));
    assert!(inv.consistent(), "{inv:?}");
    let entry = inv.declared.iter().find(|l| l.id == "dhcp-client").unwrap();
    assert_eq!(
        (entry.transport, entry.port, entry.direction, entry.holder),
        (
            Transport::Udp,
            PortSource::Fixed(68),
            Direction::Client,
            Holder::Dhcpcd
        )
    );
    assert!(
        entry
            .opens
            .en
            .contains("Only while a wan interface uses DHCP")
    );
    assert!(entry.opens.ja.contains("DHCP を使う間だけ"));
}

/// S3.1-23 R1, S3.1-26 R1: port 68 is the DHCP client's only when the parent's dhcpcd holds
/// it. Any other process there — unknown, unattributed, another dhcpcd, mamorid itself — and
/// dhcpcd on any other port, TCP 68 or IPv6 are unexpected.
#[test]
fn anything_else_on_port_68_is_still_unexpected() {
    let configured = Configured {
        https: "127.0.0.1:8443".parse().unwrap(),
    };
    let strangers = [
        owned(udp4([0, 0, 0, 0], 68, 1), 777, "python3", Role::Other),
        udp4([0, 0, 0, 0], 68, 2),
        owned(udp4([203, 0, 113, 9], 68, 3), 778, "dhcpcd", Role::Other),
        owned(udp4([0, 0, 0, 0], 68, 4), 779, "dhclient", Role::Chronyd),
        owned(
            udp4([0, 0, 0, 0], 68, 5),
            780,
            "mamorid",
            Role::MamoridManagement,
        ),
        owned(udp4([0, 0, 0, 0], 546, 6), 4242, "dhcpcd", Role::Dhcpcd),
        owned(udp4([0, 0, 0, 0], 67, 7), 4242, "dhcpcd", Role::Dhcpcd),
        {
            let mut s = owned(udp4([0, 0, 0, 0], 68, 8), 4242, "dhcpcd", Role::Dhcpcd);
            s.transport = Transport::Tcp;
            s
        },
        {
            let mut s = owned(udp4([0, 0, 0, 0], 68, 9), 4242, "dhcpcd", Role::Dhcpcd);
            s.family = Family::Ipv6;
            s.address = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            s
        },
    ];
    for stranger in strangers {
        let mut live = tcp(TCP, Family::Ipv4);
        live.push(stranger.clone());
        let inv = check(&configured, live);
        assert!(!inv.consistent(), "{stranger:?}");
        assert_eq!(
            inv.unexpected,
            std::slice::from_ref(&stranger),
            "{stranger:?}"
        );
        assert!(inv.missing.is_empty());
    }
}

#[test]
fn the_inventory_serialises_with_its_owner() {
    let mut s = tcp(TCP, Family::Ipv4);
    s[0].owner = Some(Owner {
        pid: 7,
        name: "mamorid".into(),
        role: Role::MamoridManagement,
    });
    let v = serde_json::to_value(&s[0]).unwrap();
    assert_eq!(v["owner"]["role"], "mamorid_management");
    let back: LiveSocket = serde_json::from_value(v).unwrap();
    assert_eq!(back, s[0]);
}

/// `docs/{en,ja}/ports.md` carry the registry's table between `<!-- registry -->` and
/// `<!-- /registry -->`. Run with `MAMORI_BLESS=1` to rewrite them after changing the registry.
#[test]
fn the_ports_documents_carry_the_registry() {
    for (lang, file) in [(Lang::En, "en"), (Lang::Ja, "ja")] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../docs/{file}/ports.md"));
        let doc = std::fs::read_to_string(&path).unwrap();
        let (start, end) = ("<!-- registry -->\n", "<!-- /registry -->");
        let a = doc.find(start).expect("start marker") + start.len();
        let b = doc.find(end).expect("end marker");
        let table = markdown_table(lang);
        if std::env::var_os("MAMORI_BLESS").is_some() {
            std::fs::write(&path, format!("{}{table}{}", &doc[..a], &doc[b..])).unwrap();
            continue;
        }
        assert_eq!(
            doc[a..b],
            table,
            "{} disagrees with the listener registry (MAMORI_BLESS=1 rewrites it)",
            path.display()
        );
    }
}
