//! Render time and `nft -f` load time for 100, 1,000 and 10,000 rules and a 50,000-entry set,
//! each in a fresh network namespace (as root). Prints figures; asserts nothing.
//!
//! `cargo run --release -p mamori-netconfig --example timings`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::Instant;

use mamori_netconfig::{
    Action, AddressMatch, AddressSet, Family, IfName, Interface, NetworkConfig, Nft, PortRange,
    Prefix, Proto, Role, Rule, SetName, ZoneName, render,
};

fn base() -> NetworkConfig {
    let mut wan = Interface::new(IfName::parse("eth0").unwrap(), Role::Wan);
    wan.addresses = vec!["203.0.113.2/24".parse().unwrap()];
    let mut lan = Interface::new(IfName::parse("eth1").unwrap(), Role::Lan);
    lan.addresses = vec!["192.168.1.1/24".parse().unwrap()];
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

fn with_set(n: u32) -> NetworkConfig {
    let mut cfg = base();
    let entries = (0..n)
        .map(|i| {
            let net = ipnet::Ipv4Net::new((0x0a00_0000 + (i << 8)).into(), 24).unwrap();
            Prefix::new(net.into()).unwrap()
        })
        .collect();
    cfg.firewall.sets.push(AddressSet {
        name: SetName::parse("big").unwrap(),
        family: Family::Ipv4,
        entries,
    });
    let mut rule = Rule::new(
        ZoneName::parse("wan").unwrap(),
        ZoneName::device(),
        Action::Drop,
    );
    rule.source = Some(AddressMatch::Set(SetName::parse("big").unwrap()));
    cfg.firewall.rules.push(rule);
    cfg
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let ns = format!("mamori-nc-bench-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap();
    assert!(ok.success(), "needs root");
    let nft = Nft::in_netns(&ns);
    println!(
        "| workload | validate+render | bytes | nft -c -f | nft -f (first) | nft -f (replace) |"
    );
    println!("|---|---|---|---|---|---|");
    let cases: Vec<(String, NetworkConfig)> = vec![
        ("100 rules".into(), with_rules(100)),
        ("1,000 rules".into(), with_rules(1000)),
        ("10,000 rules".into(), with_rules(10_000)),
        ("50,000-entry set".into(), with_set(50_000)),
    ];
    for (name, cfg) in cases {
        // Start from an empty ruleset for each case.
        Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "flush", "ruleset"])
            .status()
            .unwrap();
        let t = Instant::now();
        let ruleset = render(&cfg).unwrap();
        let render_ms = ms(t);
        let t = Instant::now();
        nft.check(&ruleset).unwrap();
        let check_ms = ms(t);
        let t = Instant::now();
        nft.load(&ruleset).unwrap();
        let load_ms = ms(t);
        let t = Instant::now();
        nft.load(&ruleset).unwrap();
        let replace_ms = ms(t);
        println!(
            "| {name} | {render_ms:.1} ms | {} | {check_ms:.0} ms | {load_ms:.0} ms | {replace_ms:.0} ms |",
            ruleset.as_str().len()
        );
    }
    Command::new("ip")
        .args(["netns", "del", &ns])
        .status()
        .unwrap();
}
