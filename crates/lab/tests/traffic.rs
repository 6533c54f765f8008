//! Real traffic through the gateway configured with the product's factory configuration
//! (`mamori_lab::gateway_config`), as root, each test in a lab of its own (docs/lab.md, "Traffic
//! tests"). Every negative assertion is paired with a positive one in the same test, with the
//! same servers and probes, so a probe that cannot see anything never passes for a firewall that
//! blocks.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::IpAddr;
use std::time::Duration;

use mamori_lab::Role;
use mamori_lab::plan::{self, ifname};
use mamori_netconfig::{Action, ApplyStep, Policy, Rollback, ZoneName};
use support::traffic::{Tcp, TrafficLab, UdpProbe, conntrack_count, counters};

const SECOND: Duration = Duration::from_secs(1);

fn zone(name: &str) -> ZoneName {
    ZoneName::parse(name).unwrap()
}

fn v4(a: std::net::Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

fn v6(a: std::net::Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}

/// Asserts every attempt connected; returns them.
fn all_ok(what: &str, results: Vec<Tcp>) -> Vec<Tcp> {
    for r in &results {
        assert!(r.ok, "{what}: {:?} failed: {r:?}", r.target);
    }
    results
}

/// Asserts no attempt connected.
fn none_ok(what: &str, results: &[Tcp]) {
    for r in results {
        assert!(!r.ok, "{what}: {:?} connected: {r:?}", r.target);
    }
}

#[test]
fn the_gateway_config_applies_over_the_labs_own_addresses_and_routes_leaving_one_copy_of_each() {
    let lab = TrafficLab::up("tapp");
    let cfg = lab.factory();
    let applied = lab.configure(&cfg).unwrap();
    eprintln!("gateway config applied over the lab's own setup: {applied:?}");
    for iface in &cfg.interfaces {
        let have = lab.gw_addresses(iface.name.as_str());
        for a in &iface.addresses {
            let n = have.iter().filter(|h| **h == a.addr()).count();
            assert_eq!(n, 1, "{a} on {}: {have:?}", iface.name);
        }
    }
    for (fam, via) in [
        ("-4", v4(plan::WAN_HOST_V4)),
        ("-6", v6(plan::wan_host_v6())),
    ] {
        let routes: Vec<serde_json::Value> =
            serde_json::from_str(&lab.ip(Some(Role::Gw), &[fam, "-j", "route", "show", "default"]))
                .unwrap();
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0]["gateway"], via.to_string());
        // The applier took the lab's route over: it carries mamori's mark now.
        assert_eq!(
            routes[0]["protocol"].to_string().trim_matches('"'),
            "109",
            "{routes:?}"
        );
    }
    // Once applied, applying again changes nothing.
    let before = lab.kernel_state();
    lab.configure(&cfg).unwrap();
    assert_eq!(lab.kernel_state(), before);
}

#[test]
fn a_lan_host_reaches_the_wan_host_through_nat_over_ipv4_and_routed_over_ipv6() {
    let lab = TrafficLab::up("tnat");
    let _wan = lab.serve(Role::Wan, &[8000], &[], &[]);
    lab.configure(&lab.factory()).unwrap();
    let r = all_ok(
        "lan1 -> wan host",
        lab.tcp(
            Some(Role::Lan1),
            &[
                (v4(plan::WAN_HOST_V4), 8000),
                (v6(plan::wan_host_v6()), 8000),
            ],
            3 * SECOND,
        ),
    );
    // IPv4 leaves masqueraded to the gateway's wan address (the wan host could route the lan
    // back, so an unmasqueraded source would show here).
    assert_eq!(
        r[0].peer(),
        Some(plan::GW_WAN_V4.to_string().as_str()),
        "{r:?}"
    );
    // IPv6 is routed, not translated: the wan host sees the lan host's own address.
    assert_eq!(
        r[1].peer(),
        Some(plan::lan1_v6().to_string().as_str()),
        "{r:?}"
    );
}

/// A switch does not filter, and neither must the gateway's bridge: with br_netfilter loaded
/// (built into the build machine's kernel, loaded by Docker and others) every bridged frame
/// would pass the forward chain as lan0 -> lan0 and meet its policy drop, unless the router's
/// settings keep bridged frames out of the IP firewall.
#[test]
fn lan_hosts_reach_each_other_across_the_lan_bridge() {
    let lab = TrafficLab::up("tbr");
    let _lan2 = lab.serve(Role::Lan2, &[8000], &[], &[]);
    lab.configure(&lab.factory()).unwrap();
    all_ok(
        "lan1 -> lan2 under the factory configuration",
        lab.tcp(
            Some(Role::Lan1),
            &[(v4(plan::LAN2_V4), 8000), (v6(plan::lan2_v6()), 8000)],
            2 * SECOND,
        ),
    );
}

#[test]
fn the_wan_host_reaches_no_lan_host_and_no_gateway_listener_while_the_lan_and_the_management_link_reach_the_gateway()
 {
    let lab = TrafficLab::up("tblk");
    let _lan1 = lab.serve(Role::Lan1, &[8000], &[8000], &[]);
    let _lan2 = lab.serve(Role::Lan2, &[8000], &[8000], &[]);
    let _gw = lab.serve(Role::Gw, &[443], &[], &[]);
    lab.wan_routes_to_mgmt();
    let m = lab.mgmt;
    let lan_hosts = [
        v4(plan::LAN1_V4),
        v6(plan::lan1_v6()),
        v4(plan::LAN2_V4),
        v6(plan::lan2_v6()),
    ];
    let gw_addrs = [
        v4(plan::GW_WAN_V4),
        v6(plan::gw_wan_v6()),
        v4(plan::GW_LAN_V4),
        v6(plan::gw_lan_v6()),
        v4(m.gw_v4),
        v6(m.gw_v6),
    ];
    let tcp_targets: Vec<(IpAddr, u16)> = lan_hosts
        .iter()
        .map(|a| (*a, 8000))
        .chain(gw_addrs.iter().map(|a| (*a, 443)))
        .collect();
    let udp_probes = |sport: u16| -> Vec<UdpProbe> {
        lan_hosts
            .iter()
            .enumerate()
            .map(|(i, a)| UdpProbe {
                addr: *a,
                port: 8000,
                payload: b"hello".to_vec(),
                ifname: None,
                sport: Some(sport + u16::try_from(i).unwrap()),
            })
            .collect()
    };

    // The same probes get through a gateway that lets the wan in (wan -> lan accepted, wan a
    // management zone): servers, routes and probes work.
    let mut open = lab.factory();
    open.firewall.policies.push(Policy {
        from: zone("wan"),
        to: zone("lan"),
        action: Action::Accept,
    });
    open.management.zones.push(zone("wan"));
    lab.configure(&open).unwrap();
    all_ok(
        "wan host, gateway open to it",
        lab.tcp(Some(Role::Wan), &tcp_targets, 2 * SECOND),
    );
    for u in lab.udp(Role::Wan, &udp_probes(41000), SECOND) {
        assert!(!u.replies.is_empty(), "wan host, gateway open to it: {u:?}");
    }

    // The factory configuration: nothing from the wan gets in.
    lab.configure(&lab.factory()).unwrap();
    let t = lab.tcp(Some(Role::Wan), &tcp_targets, SECOND);
    none_ok("wan host under the factory configuration", &t);
    for u in lab.udp(Role::Wan, &udp_probes(42000), SECOND) {
        assert!(
            u.replies.is_empty(),
            "wan host under the factory configuration: {u:?}"
        );
    }
    // The lan reaches the gateway's listener on its lan addresses, the host reaches it over
    // the management link.
    all_ok(
        "lan1 -> gateway listener",
        lab.tcp(
            Some(Role::Lan1),
            &[(v4(plan::GW_LAN_V4), 443), (v6(plan::gw_lan_v6()), 443)],
            2 * SECOND,
        ),
    );
    all_ok(
        "host -> management address",
        lab.tcp(None, &[(v4(m.gw_v4), 443), (v6(m.gw_v6), 443)], 2 * SECOND),
    );
}

#[test]
fn a_port_forward_from_the_wan_reaches_lan_host_1_and_without_it_the_same_connect_fails() {
    let lab = TrafficLab::up("tpf");
    let _lan1 = lab.serve(Role::Lan1, &[80], &[], &[]);
    let mut cfg = lab.factory();
    cfg.nat.port_forwards.push(
        serde_json::from_value(serde_json::json!({
            "from_zone": "wan", "proto": "tcp", "external_ports": 8080,
            "internal_address": plan::LAN1_V4.to_string(), "internal_port": 80
        }))
        .unwrap(),
    );
    lab.configure(&cfg).unwrap();
    let fwd = (v4(plan::GW_WAN_V4), 8080);
    let r = all_ok(
        "wan host -> port forward",
        lab.tcp(Some(Role::Wan), &[fwd], 2 * SECOND),
    );
    // Lan host 1's server answered, and saw the wan host (a port forward keeps the source).
    assert_eq!(r[0].me(), Some(plan::LAN1_V4.to_string().as_str()), "{r:?}");
    assert_eq!(
        r[0].peer(),
        Some(plan::WAN_HOST_V4.to_string().as_str()),
        "{r:?}"
    );
    // The forward opens that port and nothing else: not its neighbour, not the lan host
    // directly.
    none_ok(
        "wan host, beside the port forward",
        &lab.tcp(
            Some(Role::Wan),
            &[(v4(plan::GW_WAN_V4), 8081), (v4(plan::LAN1_V4), 80)],
            SECOND,
        ),
    );

    lab.configure(&lab.factory()).unwrap();
    none_ok(
        "wan host -> port forward removed",
        &lab.tcp(Some(Role::Wan), &[fwd], SECOND),
    );
}

#[test]
fn management_sources_restricted_to_lan_host_2_let_lan_host_2_in_and_keep_lan_host_1_out() {
    let lab = TrafficLab::up("tsrc");
    let _gw = lab.serve(Role::Gw, &[443], &[], &[]);
    let listener = [(v4(plan::GW_LAN_V4), 443), (v6(plan::gw_lan_v6()), 443)];
    let m = lab.mgmt;
    // Under the factory configuration both lan hosts reach it.
    lab.configure(&lab.factory()).unwrap();
    all_ok(
        "lan1 under the factory configuration",
        lab.tcp(Some(Role::Lan1), &listener, 2 * SECOND),
    );

    let mut cfg = lab.factory();
    cfg.management.sources = vec![
        mamori_netconfig::Prefix::parse(&format!("{}/32", plan::LAN2_V4)).unwrap(),
        mamori_netconfig::Prefix::parse(&format!("{}/128", plan::lan2_v6())).unwrap(),
    ];
    lab.configure(&cfg).unwrap();
    all_ok(
        "lan2, a management source",
        lab.tcp(Some(Role::Lan2), &listener, 2 * SECOND),
    );
    none_ok(
        "lan1, not a management source",
        &lab.tcp(Some(Role::Lan1), &listener, SECOND),
    );
    // The sources bind in every management zone: the management link's host is out too.
    none_ok(
        "host over the management link, not a management source",
        &lab.tcp(None, &[(v4(m.gw_v4), 443), (v6(m.gw_v6), 443)], SECOND),
    );
}

#[test]
fn a_broken_candidate_changes_nothing_in_the_kernel() {
    let lab = TrafficLab::up("tbad");
    let _wan = lab.serve(Role::Wan, &[8000], &[], &[]);
    let cfg = lab.factory();
    lab.configure(&cfg).unwrap();
    let before = lab.kernel_state();

    // An interface that does not exist: valid, nft accepts the ruleset, the applier refuses.
    // (A configuration that validates and that nft refuses was not found: nft 1.0.6 merges
    // overlapping set elements, and the validator catches family mismatches.)
    let mut missing = cfg.clone();
    let lan9: mamori_netconfig::Interface = serde_json::from_value(serde_json::json!({
        "name": "lan9", "role": "lan", "addresses": ["192.168.78.1/24"]
    }))
    .unwrap();
    missing.interfaces.push(lan9);
    missing
        .firewall
        .zones
        .iter_mut()
        .find(|z| z.name.as_str() == "lan")
        .unwrap()
        .interfaces
        .push(mamori_netconfig::IfName::parse("lan9").unwrap());
    missing.validate().unwrap();
    let err = lab.configure(&missing).unwrap_err();
    assert_eq!(err.step, ApplyStep::Interfaces, "{err}");
    assert_eq!(err.rollback, Rollback::NothingChanged);
    assert!(err.detail.contains("lan9"), "{err}");
    assert_eq!(lab.kernel_state(), before);

    // A ruleset nft refuses (a stored revision's text, corrupted in its last table): only the
    // applier takes text, so this goes to it directly.
    let good = mamori_netconfig::render(&cfg).unwrap().into_string();
    let broken = good.replace("masquerade", "masquerade bogus");
    assert_ne!(good, broken);
    let err = lab
        .applier()
        .apply_rendered(&cfg, mamori_netconfig::Ruleset::dangerous_from_text(broken))
        .unwrap_err();
    assert_eq!(err.step, ApplyStep::Check, "{err}");
    assert_eq!(err.rollback, Rollback::NothingChanged);
    assert_eq!(lab.kernel_state(), before);

    // And the configuration in force still carries traffic.
    let r = all_ok(
        "lan1 -> wan host after the refusals",
        lab.tcp(
            Some(Role::Lan1),
            &[(v4(plan::WAN_HOST_V4), 8000)],
            2 * SECOND,
        ),
    );
    assert_eq!(r[0].peer(), Some(plan::GW_WAN_V4.to_string().as_str()));
}

/// A DNS `. ANY` query (id 0x6d6d, recursion desired): the classic amplification probe.
fn dns_any() -> Vec<u8> {
    vec![
        0x6d, 0x6d, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header: one question
        0, 0, 255, 0, 1, // root, type ANY, class IN
    ]
}

/// NTP mode 7 (private), implementation 3 (xntpd), request 42 (MON_GETLIST_1): `monlist`.
fn ntp_monlist() -> Vec<u8> {
    let mut p = vec![0x17, 0x00, 0x03, 0x2a];
    p.resize(48, 0);
    p
}

/// An SSDP discovery for everything.
fn ssdp_msearch(v6: bool) -> Vec<u8> {
    let host = if v6 {
        "[FF02::C]:1900"
    } else {
        "239.255.255.250:1900"
    };
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {host}\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n"
    )
    .into_bytes()
}

const SSDP_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 255, 255, 250);
const SSDP_V6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xc);
const REFLECTION_PORTS: [u16; 3] = [53, 123, 1900];

/// DNS ANY, NTP monlist and SSDP M-SEARCH to every target (the link-local and multicast ones
/// sent out of the host's eth0), each from its own source port `sport..`; SSDP only to the
/// multicast groups.
fn reflection_probes(targets: &[IpAddr], sport: u16) -> Vec<UdpProbe> {
    let mut probes = Vec::new();
    for &addr in targets {
        let scoped = match addr {
            IpAddr::V6(a) => a.is_unicast_link_local() || a.is_multicast(),
            IpAddr::V4(a) => a.is_multicast(),
        };
        let services: Vec<(u16, Vec<u8>)> = if addr.is_multicast() {
            vec![(1900, ssdp_msearch(addr.is_ipv6()))]
        } else {
            vec![
                (53, dns_any()),
                (123, ntp_monlist()),
                (1900, ssdp_msearch(addr.is_ipv6())),
            ]
        };
        for (port, payload) in services {
            probes.push(UdpProbe {
                addr,
                port,
                payload,
                ifname: scoped.then(|| ifname::HOST.to_owned()),
                sport: Some(sport + u16::try_from(probes.len()).unwrap()),
            });
        }
    }
    probes
}

/// S3.1-26 R2: the gateway is no reflector, whatever listens on it.
#[test]
fn dns_ntp_and_ssdp_probes_to_every_gateway_address_get_no_reply_from_the_wan_or_the_lan() {
    let lab = TrafficLab::up("trefl");
    lab.wan_routes_to_mgmt();
    // A responder on the gateway that answers every datagram on the three ports, and listens
    // to the SSDP groups on the lan: the ruleset, not a missing service, must keep it silent.
    let mut responder = lab.serve(
        Role::Gw,
        &[],
        &REFLECTION_PORTS,
        &[
            (&SSDP_V4.to_string(), ifname::GW_LAN),
            (&SSDP_V6.to_string(), ifname::GW_LAN),
        ],
    );
    // Every address of the gateway, read from its kernel: the global ones of all interfaces,
    // and the link-local one of the interface facing the sender.
    let globals: Vec<IpAddr> = [ifname::GW_WAN, ifname::GW_LAN, ifname::GW_MGMT]
        .iter()
        .flat_map(|i| lab.gw_addresses(i))
        .filter(|a| !matches!(a, IpAddr::V6(v) if v.is_unicast_link_local()))
        .collect();
    assert_eq!(globals.len(), 6, "{globals:?}");
    let link_local = |i: &str| -> IpAddr {
        *lab.gw_addresses(i)
            .iter()
            .find(|a| matches!(a, IpAddr::V6(v) if v.is_unicast_link_local()))
            .unwrap()
    };
    let mut from_wan = globals.clone();
    from_wan.push(link_local(ifname::GW_WAN));
    let mut from_lan = globals.clone();
    from_lan.extend([link_local(ifname::GW_LAN), v4(SSDP_V4), v6(SSDP_V6)]);

    let run = |sport: u16| {
        let (wan, lan) = (
            reflection_probes(&from_wan, sport),
            reflection_probes(&from_lan, sport + 200),
        );
        std::thread::scope(|s| {
            let w = s.spawn(|| lab.udp(Role::Wan, &wan, SECOND));
            let l = s.spawn(|| lab.udp(Role::Lan1, &lan, SECOND));
            (w.join().unwrap(), l.join().unwrap())
        })
    };

    // With the three ports opened to the gateway from wan and lan, every probe is answered:
    // the probes and the responder work, on every address and both groups.
    let mut open = lab.factory();
    for from in ["wan", "lan"] {
        open.firewall.rules.push(
            serde_json::from_value(serde_json::json!({
                "from": from, "to": "self", "proto": "udp", "ports": REFLECTION_PORTS,
                "action": "accept"
            }))
            .unwrap(),
        );
    }
    lab.configure(&open).unwrap();
    let (wan, lan) = run(40000);
    for u in wan.iter().chain(&lan) {
        assert!(
            !u.replies.is_empty() && u.error.is_none(),
            "ports opened, no answer: {u:?}"
        );
    }
    eprintln!(
        "reflection probes with the ports opened: {} from the wan, {} from the lan, all answered",
        wan.len(),
        lan.len()
    );

    // The factory configuration: not one UDP reply, from any address.
    lab.configure(&lab.factory()).unwrap();
    let (wan, lan) = run(41000);
    for u in wan.iter().chain(&lan) {
        assert!(u.error.is_none(), "{u:?}");
        assert!(u.replies.is_empty(), "the gateway answered: {u:?}");
    }
    assert!(
        responder.alive(),
        "the responder died: silence proves nothing"
    );
}

#[test]
fn a_syn_flood_and_a_udp_flood_from_the_wan_leave_the_lan_served_and_the_gateway_normal() {
    support::traffic::require("hping3", "--version");
    let lab = TrafficLab::up("tfld");
    let _listener = lab.serve(Role::Gw, &[443], &[], &[]);
    let _wan = lab.serve(Role::Wan, &[8000], &[], &[]);
    lab.configure(&lab.factory()).unwrap();
    // The lan client must run while the floods do: no waiting for the lab in between.
    lab.settle();
    let target = plan::GW_WAN_V4.to_string();
    let (_, _, tx0) = lab.link_stats(Role::Wan, ifname::HOST);
    let (rx0, drop0, _) = lab.link_stats(Role::Gw, ifname::GW_WAN);

    // Bounded: SIGINT after FLOOD_SECS (hping3 prints its statistics on SIGINT). Niced, so the
    // two floods on a 2-core machine leave the lan client and the listener some CPU.
    const FLOOD_SECS: &str = "4";
    let flood = |args: &[&str]| {
        let mut argv = vec!["timeout", "-s", "INT", FLOOD_SECS, "nice", "-n", "10"];
        argv.extend_from_slice(&["hping3", "-q", "--flood"]);
        argv.extend_from_slice(args);
        argv.push(&target);
        lab.spawn(Role::Wan, &argv)
    };
    // One source (the per-source SYN limit's case), random sources (each under the limit, each
    // a new entry of its dynamic set), and UDP.
    let syn = flood(&["-S", "-p", "443"]);
    let spoofed = flood(&["-S", "-p", "443", "--rand-source"]);
    let udp = flood(&["--udp", "-p", "53"]);
    std::thread::sleep(Duration::from_millis(300));
    let peak = std::sync::atomic::AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let attempts = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(conntrack_count(&lab), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let a = lab.connect_loop(Role::Lan1, (v4(plan::GW_LAN_V4), 443), 3.0, SECOND);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        a
    });
    let (syn, spoofed, udp) = (syn.finish(), spoofed.finish(), udp.finish());
    let (_, _, tx1) = lab.link_stats(Role::Wan, ifname::HOST);
    let (rx1, drop1, _) = lab.link_stats(Role::Gw, ifname::GW_WAN);
    let ruleset = lab.chains();
    let stats = |o: &std::process::Output| {
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        text.lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or("(no statistics)")
            .to_owned()
    };
    let slowest = attempts.iter().map(|a| a.1).fold(0.0, f64::max);
    eprintln!(
        "flood ({FLOOD_SECS} s each): SYN {}; SYN from random sources {}; UDP {}; wan host sent \
         {} packets, gateway wan0 received {} (dropped at the device {}); conntrack peak {}; \
         syn_v4 entries {}",
        stats(&syn),
        stats(&spoofed),
        stats(&udp),
        tx1 - tx0,
        rx1 - rx0,
        drop1 - drop0,
        peak.load(std::sync::atomic::Ordering::Relaxed),
        lab.exec(
            Role::Gw,
            &["nft", "list", "set", "inet", "mamori", "syn_v4"]
        )
        .matches("expires")
        .count()
    );
    for (packets, rule) in counters(&ruleset) {
        eprintln!("  {packets:>9} {rule}");
    }
    eprintln!(
        "lan1 -> 192.168.77.1:443 during the flood: {} attempts, slowest {slowest:.1} ms",
        attempts.len()
    );

    // The flood happened and was dropped by the ruleset.
    assert!(
        tx1 - tx0 > 20_000,
        "the flood sent only {} packets",
        tx1 - tx0
    );
    // The SYNs to the management port die in mgmt_guard (not from a management zone) before
    // the SYN limit: only what the device would accept reaches the limiter, so the wan cannot
    // fill its set.
    let zone_drops: u64 = counters(&ruleset)
        .iter()
        .filter(|(_, r)| r.starts_with("iifname != {"))
        .map(|(p, _)| p)
        .sum();
    assert!(
        zone_drops > 1_000,
        "mgmt_guard dropped only {zone_drops} of the wan's SYNs"
    );
    let syn_entries = lab
        .exec(
            Role::Gw,
            &["nft", "list", "set", "inet", "mamori", "syn_v4"],
        )
        .matches("expires")
        .count();
    assert!(
        syn_entries < 100,
        "the wan's SYNs took {syn_entries} entries of the SYN limiter's set"
    );
    // The lan was served throughout.
    assert!(attempts.len() >= 10, "{attempts:?}");
    for (i, (ok, ms)) in attempts.iter().enumerate() {
        assert!(
            *ok && *ms < 1000.0,
            "attempt {i} during the flood: ok {ok}, {ms:.0} ms"
        );
    }
    // And afterwards the gateway is normal: NAT works, the connection table is small.
    let r = all_ok(
        "lan1 -> wan host after the flood",
        lab.tcp(
            Some(Role::Lan1),
            &[(v4(plan::WAN_HOST_V4), 8000)],
            2 * SECOND,
        ),
    );
    assert_eq!(r[0].peer(), Some(target.as_str()));
    let count = conntrack_count(&lab);
    eprintln!("conntrack after the flood: {count}");
    assert!(
        count < 1_000,
        "conntrack holds {count} entries after the flood"
    );
}

/// A comparable view of the gateway: per interface its flags and addresses, the routes of
/// both families, mamori's filter table (without counters).
type View = (Vec<String>, Vec<String>, String);

fn settled_view(lab: &TrafficLab) -> View {
    let links: Vec<serde_json::Value> =
        serde_json::from_str(&lab.ip(Some(Role::Gw), &["-j", "addr"])).unwrap();
    let mut addrs: Vec<String> = links
        .iter()
        .flat_map(|l| {
            let name = l["ifname"].as_str().unwrap().to_owned();
            let flags = l["flags"].to_string();
            let mut v = vec![format!("{name} {flags} {}", l["operstate"])];
            for a in l["addr_info"].as_array().unwrap() {
                v.push(format!(
                    "{name} {}/{} {}",
                    a["local"], a["prefixlen"], a["scope"]
                ));
            }
            v
        })
        .collect();
    addrs.sort();
    let mut routes = Vec::new();
    for fam in ["-4", "-6"] {
        let list: Vec<serde_json::Value> = serde_json::from_str(&lab.ip(
            Some(Role::Gw),
            &[fam, "-j", "route", "show", "table", "all"],
        ))
        .unwrap();
        routes.extend(list.iter().map(ToString::to_string));
    }
    routes.sort();
    let table = lab.exec(Role::Gw, &["nft", "-s", "list", "table", "inet", "mamori"]);
    (addrs, routes, table)
}

/// What differs between two views: (what, lines) for each non-empty difference, and whether
/// mamori's table is unchanged.
fn differences(before: &View, after: &View) -> Vec<(&'static str, Vec<String>)> {
    let missing = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|x| !b.contains(x)).cloned().collect()
    };
    let mut diff = vec![
        ("addresses gone", missing(&before.0, &after.0)),
        ("addresses new", missing(&after.0, &before.0)),
        ("routes gone", missing(&before.1, &after.1)),
        ("routes new", missing(&after.1, &before.1)),
    ];
    if before.2 != after.2 {
        diff.push(("mamori's table changed", vec![after.2.clone()]));
    }
    diff.retain(|(_, d)| !d.is_empty());
    diff
}

/// Sets `links` (role, interface) down or up.
fn set_links(lab: &TrafficLab, links: &[(Role, &str)], state: &str) {
    for (role, link) in links {
        lab.ip(Some(*role), &["link", "set", link, state]);
    }
}

/// Waits up to 10 s for the gateway's view to come back to `before`; what still differs.
/// Carrier and the bridge port's forwarding state (STP off) come back at once; an IPv6 address
/// added again gets its local route only after duplicate address detection (1-2 s, longer on
/// a loaded machine).
fn settle(lab: &TrafficLab, before: &View) -> Vec<(&'static str, Vec<String>)> {
    let deadline = std::time::Instant::now() + 10 * SECOND;
    loop {
        let diff = differences(before, &settled_view(lab));
        if diff.is_empty() || std::time::Instant::now() > deadline {
            return diff;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The gateway's links' flags (`NO-CARRIER`, `UP`, ...).
fn gw_flags(lab: &TrafficLab, link: &str) -> String {
    let out = lab.ip(Some(Role::Gw), &["-j", "link", "show", "dev", link]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    v[0]["flags"].to_string()
}

/// lan1 reaches the wan host again: NAT over IPv4, routed over IPv6, and the gateway listener.
fn traffic_flows_again(lab: &TrafficLab) {
    lab.wait_for_link_local();
    let r = all_ok(
        "lan1 after the flap",
        lab.tcp(
            Some(Role::Lan1),
            &[
                (v4(plan::WAN_HOST_V4), 8000),
                (v6(plan::wan_host_v6()), 8000),
                (v4(plan::GW_LAN_V4), 443),
            ],
            3 * SECOND,
        ),
    );
    assert_eq!(r[0].peer(), Some(plan::GW_WAN_V4.to_string().as_str()));
}

#[test]
fn cables_pulled_and_replugged_on_wan_and_lan_keep_addresses_routes_and_tables_and_traffic_flows_again()
 {
    let lab = TrafficLab::up("tcab");
    let _wan = lab.serve(Role::Wan, &[8000], &[], &[]);
    let _gw = lab.serve(Role::Gw, &[443], &[], &[]);
    lab.configure(&lab.factory()).unwrap();
    // Read once duplicate address detection is over: a link-local address gets its local
    // route only then.
    lab.settle();
    let before = settled_view(&lab);
    // The far ends of the veths going down is what a pulled cable is to the gateway: wan0 and
    // lan0p1 lose carrier and stay administratively up.
    let far_ends = [(Role::Wan, ifname::HOST), (Role::Lan1, ifname::HOST)];
    set_links(&lab, &far_ends, "down");
    for link in [ifname::GW_WAN, ifname::GW_LAN1] {
        let flags = gw_flags(&lab, link);
        assert!(
            flags.contains("NO-CARRIER") && flags.contains("\"UP\""),
            "{link} with its cable pulled: {flags}"
        );
    }
    set_links(&lab, &far_ends, "up");
    let diff = settle(&lab, &before);
    assert!(diff.is_empty(), "after the cables came back: {diff:#?}");
    // The far ends are hosts of their own, which lost their IPv6 addresses and routes when
    // their link went down: put them back as the lab builds them.
    lab.rebuild_host(Role::Wan);
    lab.rebuild_host(Role::Lan1);
    traffic_flows_again(&lab);
}

#[test]
#[ignore = "needs the daemon: the kernel deletes on `ip link set wan0 down` wan0's IPv6 \
            address (keep_addr_on_down=0), both default routes (proto 109) and the IPv6 \
            connected routes, and only a re-apply brings them back; mamorid re-applies the \
            running configuration when a link comes back (tests/gateway checks it), but this \
            file configures through the parent's applier, not the daemon. Un-ignore when \
            TrafficLab::configure commits through the daemon's API"]
fn a_gateway_port_set_down_and_up_keeps_addresses_routes_and_tables_and_traffic_flows_again() {
    let lab = TrafficLab::up("tflap");
    let _wan = lab.serve(Role::Wan, &[8000], &[], &[]);
    let _gw = lab.serve(Role::Gw, &[443], &[], &[]);
    lab.configure(&lab.factory()).unwrap();
    // Read once duplicate address detection is over: a link-local address gets its local
    // route only then.
    lab.settle();
    let before = settled_view(&lab);
    let ports = [(Role::Gw, ifname::GW_LAN1), (Role::Gw, ifname::GW_WAN)];
    set_links(&lab, &ports, "down");
    set_links(&lab, &ports, "up");
    let diff = settle(&lab, &before);
    assert!(diff.is_empty(), "after the flap: {diff:#?}");
    traffic_flows_again(&lab);
}

#[test]
fn after_a_gateway_port_is_set_down_and_up_configuring_again_restores_addresses_and_routes() {
    let lab = TrafficLab::up("tre");
    let _wan = lab.serve(Role::Wan, &[8000], &[], &[]);
    let _gw = lab.serve(Role::Gw, &[443], &[], &[]);
    lab.configure(&lab.factory()).unwrap();
    // Read once duplicate address detection is over: a link-local address gets its local
    // route only then.
    lab.settle();
    let before = settled_view(&lab);
    let ports = [(Role::Gw, ifname::GW_LAN1), (Role::Gw, ifname::GW_WAN)];
    set_links(&lab, &ports, "down");
    set_links(&lab, &ports, "up");
    // What the kernel lost (the ignored test above asserts it should not).
    std::thread::sleep(Duration::from_millis(200));
    eprintln!(
        "lost with the admin flap: {:#?}",
        differences(&before, &settled_view(&lab))
    );
    lab.configure(&lab.factory()).unwrap();
    let diff = settle(&lab, &before);
    assert!(diff.is_empty(), "after configuring again: {diff:#?}");
    traffic_flows_again(&lab);
}

/// 300 SYNs from `role` to the gateway's listener on 192.168.77.1:443, one every 2 ms (hping3,
/// no handshake completed); how many were answered.
fn syn_burst(lab: &TrafficLab, role: Role) -> u64 {
    let out = lab
        .spawn(
            role,
            &[
                "hping3",
                "-S",
                "-p",
                "443",
                "-c",
                "300",
                "-i",
                "u2000",
                &plan::GW_LAN_V4.to_string(),
            ],
        )
        .finish();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("packets received"))
        .unwrap_or_else(|| panic!("hping3: {text}"));
    line.split(", ")
        .find_map(|p| p.strip_suffix(" packets received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("hping3: {line}"))
}

#[test]
fn a_wan_flood_from_random_sources_leaves_the_lan_hosts_syn_limit_in_force() {
    support::traffic::require("hping3", "--version");
    let lab = TrafficLab::up("tsyn");
    let _listener = lab.serve(Role::Gw, &[443], &[], &[]);
    lab.configure(&lab.factory()).unwrap();
    lab.settle();
    // The limit works: of 300 SYNs in 0.6 s, the burst (100) and the rate (25/s) are answered.
    let before = syn_burst(&lab, Role::Lan1);
    eprintln!("lan1's 300 SYNs with room in the set: {before} answered");
    assert!((50..=200).contains(&before), "{before}");
    lab.spawn(
        Role::Wan,
        &[
            "timeout",
            "-s",
            "INT",
            "4",
            "hping3",
            "-q",
            "--flood",
            "-S",
            "-p",
            "443",
            "--rand-source",
            &plan::GW_WAN_V4.to_string(),
        ],
    )
    .finish();
    // A lan host the set has not seen yet is limited all the same.
    let after = syn_burst(&lab, Role::Lan2);
    eprintln!("lan2's 300 SYNs after the wan flood: {after} answered");
    assert!(
        after <= 200,
        "lan2's SYN burst went unlimited: {after} of 300 answered"
    );
}
