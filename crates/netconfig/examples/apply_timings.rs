//! Apply times through [`Applier`] (validate + render, `nft -c`, `nft -f`, then links and
//! addresses of two veth interfaces with one `ip -batch`) for the factory configuration and for
//! 1,000 and 10,000 rules, each in a fresh network namespace (as root). Prints figures; asserts
//! nothing.
//!
//! `cargo run --release -p mamori-netconfig --example apply_timings`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use mamori_netconfig::{
    Action, AddressMatch, Applied, Applier, IfName, Interface, NetworkConfig, PortRange, Prefix,
    Proto, Role, Rule, ZoneName,
};

fn base() -> NetworkConfig {
    let mut wan = Interface::new(IfName::parse("eth0").unwrap(), Role::Wan);
    wan.addresses = vec![
        "203.0.113.2/24".parse().unwrap(),
        "2001:db8:1::2/64".parse().unwrap(),
    ];
    let mut lan = Interface::new(IfName::parse("eth1").unwrap(), Role::Lan);
    lan.addresses = vec![
        "192.168.1.1/24".parse().unwrap(),
        "fd00:1::1/64".parse().unwrap(),
    ];
    NetworkConfig::factory(vec![wan, lan])
}

fn with_rules(n: u32) -> NetworkConfig {
    let mut cfg = base();
    for i in 0..n {
        let mut rule = Rule::new(
            ZoneName::parse("wan").unwrap(),
            ZoneName::parse("lan").unwrap(),
            Action::Accept,
        );
        let net = ipnet::Ipv4Net::new((0x0a00_0000 + (i << 8)).into(), 24).unwrap();
        rule.source = Some(AddressMatch::Prefixes(vec![
            Prefix::new(net.into()).unwrap(),
        ]));
        rule.proto = Some(Proto::Tcp);
        rule.ports = vec![PortRange::single(u16::try_from(1024 + i % 60_000).unwrap()).unwrap()];
        cfg.firewall.rules.push(rule);
    }
    cfg
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().unwrap().success();
    assert!(ok, "ip {args:?}");
}

fn row(name: &str, what: &str, a: &Applied, total: Duration) {
    println!(
        "| {name} | {what} | {:.1} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
        ms(a.render),
        ms(a.check),
        ms(a.snapshot),
        ms(a.load),
        ms(a.addresses),
        ms(total)
    );
}

fn main() {
    let dir = std::env::temp_dir().join(format!("mamori-apply-timings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "| workload | apply | validate + render | nft -c | snapshot | nft -f | addresses (2 interfaces) | total |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, cfg) in [
        ("factory", base()),
        ("1,000 rules", with_rules(1000)),
        ("10,000 rules", with_rules(10_000)),
    ] {
        let ns = format!("mamori-at-{}-{}", std::process::id(), name.len());
        ip(&["netns", "add", &ns]);
        ip(&[
            "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ]);
        let record = dir.join(format!("{}.json", name.len()));
        let _ = std::fs::remove_file(&record);
        let applier = Applier::in_netns(&ns, &record);
        let started = Instant::now();
        let first = applier.apply(&cfg).unwrap();
        row(name, "first", &first, started.elapsed());
        let started = Instant::now();
        let again = applier.apply(&cfg).unwrap();
        row(name, "again", &again, started.elapsed());
        ip(&["netns", "del", &ns]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
