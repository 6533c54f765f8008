//! The drop summary (S3.1-35 R1 H) against the real kernel: a ruleset in a private network
//! namespace logs its drops with mamori's prefixes to an nflog group, a second namespace sends
//! packets that are dropped, and the summary record says what was dropped, by chain, protocol,
//! source, port and interface.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Collect, Netns, dump};
use mamori_audit::{EventKind, Sink};
use mamori_monitor::{DropConfig, MonitorHandle, drops};
use serde_json::json;

/// Two namespaces joined by a veth pair: the gateway (`gw0`, 10.99.0.1/24, fd00:99::1/64; a
/// `lan0`, 10.98.0.1/24, a veth whose peer stays there; forwarding on) with a ruleset logging to `group`, and a peer
/// (`peer0`, 10.99.0.2/24, fd00:99::2/64, 10.98.0.0/24 through the gateway).
struct Lab {
    gw: Netns,
    peer: Netns,
}

fn lab(group: u16) -> Lab {
    let gw = Netns::new();
    let peer = Netns::new();
    gw.run(&[
        "ip", "link", "add", "gw0", "type", "veth", "peer", "name", "peer0", "netns", &peer.name,
    ]);
    gw.ip_batch(&[
        "addr add 10.99.0.1/24 dev gw0".into(),
        "addr add fd00:99::1/64 dev gw0 nodad".into(),
        "link set gw0 up".into(),
        "link add lan0 type veth peer name lan0p".into(),
        "addr add 10.98.0.1/24 dev lan0".into(),
        "link set lan0p up".into(),
        "link set lan0 up".into(),
    ]);
    gw.run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    peer.ip_batch(&[
        "addr add 10.99.0.2/24 dev peer0".into(),
        "addr add fd00:99::2/64 dev peer0 nodad".into(),
        "link set peer0 up".into(),
        "route add 10.98.0.0/24 via 10.99.0.1".into(),
    ]);
    // As mamori_netconfig::render logs: rate-limited per chain, `mamori drop <chain>: `, the
    // anti-spoofing check in prerouting, a rule's own log `mamori r<N>: `. The limits are high
    // so every test packet is logged; ICMPv6 (neighbour discovery, MLD) is let in so that only
    // the test's packets are logged; a foreign prefix logs to the same group.
    let rules = format!(
        "table inet mamori_t {{\n\
         chain prerouting {{ type filter hook prerouting priority raw; policy accept;\n\
           iifname \"lo\" accept\n\
           meta nfproto ipv4 fib saddr . iif oif missing limit rate 10000/second burst 20000 packets log prefix \"mamori drop spoofed: \" group {group}\n\
           meta nfproto ipv4 fib saddr . iif oif missing counter drop comment \"anti-spoofing\"\n\
         }}\n\
         chain input {{ type filter hook input priority filter; policy drop;\n\
           iifname \"lo\" accept\n\
           ct state established,related accept\n\
           meta l4proto ipv6-icmp accept\n\
           udp dport 7777 log prefix \"ulogd: \" group {group} accept\n\
           udp dport 6000 limit rate 6000/minute log prefix \"mamori r3: \" group {group}\n\
           udp dport 6000 counter drop comment \"r3\"\n\
           limit rate 10000/second burst 20000 packets log prefix \"mamori drop input: \" group {group}\n\
         }}\n\
         chain forward {{ type filter hook forward priority filter; policy drop;\n\
           ct state established,related accept\n\
           limit rate 10000/second burst 20000 packets log prefix \"mamori drop forward: \" group {group}\n\
         }}\n\
         }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.nft");
    std::fs::write(&file, rules).unwrap();
    gw.run(&["nft", "-f", file.to_str().unwrap()]);
    Lab { gw, peer }
}

fn start(ns: &Netns, sink: Arc<dyn Sink>, config: DropConfig) -> MonitorHandle {
    let handle = ns.enter(|| drops::open(config).unwrap().start(sink));
    assert!(handle.wait_ready(Duration::from_secs(10)));
    handle
}

fn seen(handle: &MonitorHandle, key: &str) -> u64 {
    handle
        .monitor("drops")
        .unwrap()
        .seen
        .get(key)
        .copied()
        .unwrap_or(0)
}

/// Waits until the monitor has closed `n` more intervals than `from`.
fn wait_intervals(handle: &MonitorHandle, from: u64, n: u64) {
    let end = Instant::now() + Duration::from_secs(30);
    while seen(handle, "interval") < from + n {
        assert!(Instant::now() < end, "intervals did not pass: {handle:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `n` UDP datagrams to `to` from the namespace the thread is in.
fn udp(to: &str, n: usize) {
    let to: SocketAddr = to.parse().unwrap();
    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = UdpSocket::bind(bind).unwrap();
    for _ in 0..n {
        s.send_to(b"x", to).unwrap();
    }
}

/// Sends a UDP datagram from a forged IPv4 source (raw socket, `IPPROTO_RAW`: the kernel fills
/// in the length, identification and checksum).
fn spoofed_udp(src: Ipv4Addr, dst: Ipv4Addr, dport: u16) {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, sendto, socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::empty(),
        SockProtocol::Raw,
    )
    .unwrap();
    let mut p = vec![0x45, 0, 0, 29, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, b'x']);
    let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
    sendto(fd.as_raw_fd(), &p, &to, MsgFlags::empty()).unwrap();
}

/// S3.1-35 R1 H: one record per interval with what was dropped; nothing in an interval with no
/// drops; a foreign prefix on the same group is counted as foreign and records nothing alone.
#[test]
fn drops_are_summarised_once_per_interval_by_chain_source_port_and_interface() {
    let lab = lab(7);
    let sink = Collect::new();
    let mut config = DropConfig::new(7);
    config.interval = Duration::from_secs(2);
    let handle = start(&lab.gw, sink.clone(), config);
    let status = handle.monitor("drops").unwrap();
    assert!(status.running && status.ready, "{status:?}");

    // Send right after an interval closed, so that everything falls into the next one.
    wait_intervals(&handle, seen(&handle, "interval"), 1);
    let ticks = seen(&handle, "interval");
    lab.peer.enter(|| {
        udp("10.99.0.1:5353", 5); // input
        udp("10.99.0.1:6000", 2); // rule r3
        udp("10.99.0.1:7777", 1); // foreign prefix, accepted
        udp("[fd00:99::1]:9999", 3); // input, IPv6
        udp("10.98.0.5:53", 2); // forward, out of lan0
        // One SYN: the socket is closed while the SYN is unanswered, so no retransmission.
        let _ = TcpStream::connect_timeout(
            &"10.99.0.1:2222".parse().unwrap(),
            Duration::from_millis(50),
        );
        for _ in 0..4 {
            spoofed_udp(
                Ipv4Addr::new(192, 0, 2, 1),
                Ipv4Addr::new(10, 99, 0, 1),
                4444,
            );
        }
        spoofed_udp(
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(10, 99, 0, 1),
            4444,
        );
    });
    let ev = sink
        .wait_for(EventKind::FirewallDropped, |_| true)
        .unwrap_or_else(|| panic!("no record: {handle:?}\n{}", dump(&sink.events())));
    assert!(seen(&handle, "interval") > ticks);
    let d = &ev.details;
    assert_eq!(d["interval_s"], 2, "{d:#}");
    assert_eq!(d["group"], 7);
    assert_eq!(d["sampled"], true);
    assert!(d["note"].as_str().unwrap().contains("rate-limited"));
    assert_eq!(d["logged"], 18, "{d:#}");
    assert_eq!(
        d["by_chain"],
        json!({"input": 9, "forward": 2, "r3": 2, "spoofed": 5}),
        "{d:#}"
    );
    assert_eq!(d["by_proto"], json!({"udp": 17, "tcp": 1}), "{d:#}");
    assert_eq!(d["foreign"], 1, "{d:#}");
    assert_eq!(
        d["top_sources"],
        json!([
            {"address": "10.99.0.2", "count": 10},
            {"address": "192.0.2.1", "count": 4},
            {"address": "fd00:99::2", "count": 3},
            {"address": "192.0.2.2", "count": 1},
        ]),
        "{d:#}"
    );
    assert_eq!(
        d["top_ports"],
        json!([
            {"proto": "udp", "port": 4444, "count": 5},
            {"proto": "udp", "port": 5353, "count": 5},
            {"proto": "udp", "port": 9999, "count": 3},
            {"proto": "udp", "port": 53, "count": 2},
            {"proto": "udp", "port": 6000, "count": 2},
            {"proto": "tcp", "port": 2222, "count": 1},
        ]),
        "{d:#}"
    );
    assert_eq!(
        d["interfaces"],
        json!({"in": {"gw0": 18}, "out": {"lan0": 2}}),
        "{d:#}"
    );
    assert_eq!(d["sources"], json!({"tracked": 4, "other": 0, "cap": 4096}));
    assert!(d.get("incomplete").is_none());
    assert_eq!(ev.outcome, mamori_audit::Outcome::Success);

    // Two intervals with no drops: no record.
    wait_intervals(&handle, seen(&handle, "interval"), 2);
    assert_eq!(
        sink.of(EventKind::FirewallDropped).len(),
        1,
        "{}",
        dump(&sink.events())
    );

    // Only a foreign prefix: counted, no record.
    let foreign = seen(&handle, "foreign");
    let ticks = seen(&handle, "interval");
    lab.peer.enter(|| udp("10.99.0.1:7777", 2));
    wait_intervals(&handle, ticks, 2);
    assert_eq!(seen(&handle, "foreign"), foreign + 2);
    assert_eq!(
        sink.of(EventKind::FirewallDropped).len(),
        1,
        "{}",
        dump(&sink.events())
    );
    let status = handle.monitor("drops").unwrap();
    assert_eq!(status.malformed, 0, "{status:?}");
    assert_eq!(status.events, 1, "{status:?}");
    assert!(status.running);
    handle.stop();
}

/// 300 forged sources in one interval against a cap of 64: 64 are tracked, 236 counted as
/// other, the record lists ten; every message is still counted in `logged` and `by_chain`.
#[test]
fn the_source_cap_holds_with_many_forged_sources() {
    let lab = lab(9);
    let sink = Collect::new();
    let mut config = DropConfig::new(9);
    config.interval = Duration::from_secs(2);
    config.max_tracked = 64;
    let handle = start(&lab.gw, sink.clone(), config);
    wait_intervals(&handle, seen(&handle, "interval"), 1);
    let ticks = seen(&handle, "interval");
    lab.peer.enter(|| {
        for i in 0..300u32 {
            let src = Ipv4Addr::from(0xc612_0000 + i); // 198.18.0.0/15, benchmarking space
            spoofed_udp(
                src,
                Ipv4Addr::new(10, 99, 0, 1),
                1000 + u16::try_from(i % 3).unwrap(),
            );
        }
    });
    let ev = sink
        .wait_for(EventKind::FirewallDropped, |_| true)
        .unwrap_or_else(|| panic!("no record: {handle:?}"));
    assert!(seen(&handle, "interval") > ticks);
    let d = &ev.details;
    assert_eq!(d["logged"], 300, "{d:#}");
    assert_eq!(d["by_chain"], json!({"spoofed": 300}));
    assert_eq!(
        d["sources"],
        json!({"tracked": 64, "other": 236, "cap": 64})
    );
    assert_eq!(d["top_sources"].as_array().unwrap().len(), 10);
    assert_eq!(d["ports"], json!({"tracked": 3, "other": 0, "cap": 64}));
    assert_eq!(d["top_ports"][0]["count"], 100);
    handle.stop();
}

/// One listener per group: a second monitor on the same group is refused (the kernel says
/// EPERM), and is listed as failed and recorded as `monitor_failed`; once the first stops, the
/// group is free again.
#[test]
fn a_group_has_one_listener_and_is_released_on_stop() {
    let ns = Netns::new();
    let sink = Collect::new();
    let first = start(&ns, sink.clone(), DropConfig::new(5));
    let err = ns.enter(|| drops::open(DropConfig::new(5)).unwrap_err());
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("group 5"), "{err}");
    // Through the daemon's entry point: the failure is listed and recorded.
    let prepared = ns.enter(|| {
        let mut c = mamori_monitor::Config::all(None);
        c.links = None;
        c.interfaces = None;
        c.usb = None;
        c.firewall = None;
        mamori_monitor::Monitors::open(c.with_drops(5))
    });
    assert_eq!(prepared.failed().len(), 1);
    assert_eq!(prepared.failed()[0].0, "drops");
    let second = prepared.start(sink.clone());
    let failed = sink
        .wait_for(EventKind::MonitorFailed, |d| d["monitor"] == "drops")
        .expect("monitor_failed");
    assert!(
        failed.details["error"]
            .as_str()
            .unwrap()
            .contains("group 5")
    );
    assert!(!second.monitor("drops").unwrap().running);
    // Another group is fine meanwhile.
    let other = start(&ns, sink.clone(), DropConfig::new(6));
    first.stop();
    let again = start(&ns, sink.clone(), DropConfig::new(5));
    assert!(again.monitor("drops").unwrap().running);
    again.stop();
    other.stop();
}
