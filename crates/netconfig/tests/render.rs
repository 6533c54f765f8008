//! The rendered ruleset as text: the factory golden file, determinism, only mamori's tables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{FULL, factory, from_json};
use mamori_netconfig::render;

/// The factory ruleset for wan eth0 (DHCP), lan eth1, mgmt eth2, byte for byte. Set
/// `UPDATE_GOLDEN=1` to rewrite the file after a deliberate change, then read the diff.
#[test]
fn the_factory_ruleset_matches_the_golden_file() {
    let text = render(&factory()).unwrap().into_string();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/factory.nft");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        expected,
        "the factory ruleset changed; see {}",
        path.display()
    );
}

#[test]
fn rendering_is_deterministic() {
    let a = render(&from_json(FULL)).unwrap();
    let b = render(&from_json(FULL)).unwrap();
    assert_eq!(a, b);
    // Set entries come out sorted whatever their order in the configuration.
    let mut cfg = from_json(FULL);
    cfg.firewall.sets[0].entries.reverse();
    assert_eq!(render(&cfg).unwrap(), a);
}

#[test]
fn the_ruleset_replaces_only_mamoris_tables() {
    let text = render(&from_json(FULL)).unwrap().into_string();
    assert!(!text.contains("flush ruleset"));
    let tables: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("table ") || l.starts_with("delete "))
        .collect();
    assert_eq!(
        tables,
        [
            "table inet mamori",
            "delete table inet mamori",
            "table inet mamori {",
            "table inet mamori_nat",
            "delete table inet mamori_nat",
            "table inet mamori_nat {",
        ]
    );
}

#[test]
fn the_full_configuration_renders_its_parts() {
    let text = render(&from_json(FULL)).unwrap().into_string();
    for expected in [
        "set u_blocklist {",
        "\t\t\t192.0.2.0/24,\n\t\t\t198.51.100.0/24\n",
        "iifname \"eth0\" meta nfproto ipv4 ip saddr @u_blocklist limit rate 10/minute log prefix \"mamori r0: \" group 1",
        "iifname \"eth0\" meta nfproto ipv4 ip saddr @u_blocklist counter drop comment \"r0: known bad\"",
        "iifname \"eth1\" meta l4proto udp udp dport { 53, 67-68 } counter jump self_accept comment \"r1\"",
        "iifname \"eth1\" oifname \"eth0\" meta nfproto ipv6 ip6 daddr { 2001:db8::/32, 2001:db8:ffff::/48 } meta l4proto tcp tcp dport 25 counter reject comment \"r2\"",
        "iifname \"eth0\" meta nfproto ipv4 ip saddr 198.51.100.0/24 meta l4proto tcp tcp dport 8080-8090 dnat ip to 192.168.1.10:80 comment \"pf0: web _cam__ _\"",
        "iifname \"eth0\" meta nfproto ipv6 meta l4proto udp udp dport 5353 dnat ip6 to fd00:1::10 comment \"pf1\"",
        "ct status dnat accept",
        "iifname != { \"eth1\", \"eth2\" } counter drop",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}
