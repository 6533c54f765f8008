//! Apply times through [`Applier`] against raw `nft -f` of the same rendered ruleset, for the
//! factory configuration, 100, 1,000 and 10,000 rules and a 50,000-entry set, on two veth
//! interfaces with a v4 and a v6 address each, every run in a fresh network namespace (as
//! root). Prints a markdown table of medians; asserts nothing.
//!
//! Per run and workload: raw `nft -f` into an empty namespace and again over itself (the
//! reference); then in a second fresh namespace with one applier, as the parent keeps it:
//! `check` (the dry run, `CheckNetwork`), the first `apply` (restore point listed: nothing to
//! list yet), the same configuration again (the kernel holds it: nft skipped), and a changed
//! configuration (one rule's port; the restore point from memory).
//!
//! `cargo run --release -p mamori-netconfig --example apply_timings` (`RUNS=5` for more runs)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use mamori_netconfig::{
    Action, AddressMatch, AddressSet, Applied, Applier, Comment, Family, IfName, Interface,
    NetworkConfig, Nft, PortRange, Prefix, Proto, Role, Rule, SetName, ZoneName, render,
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

/// The same configuration with one thing changed: the last rule's port, or (no rules) the
/// management port.
fn changed(cfg: &NetworkConfig) -> NetworkConfig {
    let mut c = cfg.clone();
    match c.firewall.rules.last_mut() {
        Some(rule) if rule.proto.is_some() => {
            rule.ports = vec![PortRange::single(65_000).unwrap()];
        }
        Some(rule) => rule.comment = Some(Comment::parse("changed").unwrap()),
        None => c.management.port = 8443,
    }
    c
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().unwrap().success();
    assert!(ok, "ip {args:?}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A fresh namespace with the veth pair eth0–eth1; deleted by [`Ns::drop`].
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Self {
        let name = format!("mamori-at-{}-{tag}", std::process::id());
        ip(&["netns", "add", &name]);
        ip(&[
            "-n", &name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ]);
        Self(name)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[derive(Default)]
struct Figures {
    raw_first: Vec<f64>,
    raw_replace: Vec<f64>,
    check: Vec<f64>,
    first: Vec<f64>,
    first_load: Vec<f64>,
    again: Vec<f64>,
    changed: Vec<f64>,
    changed_load: Vec<f64>,
    changed_snapshot: Vec<f64>,
    again_skipped: bool,
    first_listed: bool,
    changed_listed: bool,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let out = f();
    (out, ms(started.elapsed()))
}

fn load_ms(a: &Applied) -> f64 {
    a.load.map_or(0.0, ms)
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let dir = std::env::temp_dir().join(format!("mamori-apply-timings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "| workload | ruleset | raw nft -f, empty | raw nft -f, replace | check (nft -c) | apply, first (nft -f) | apply, same again | apply, changed (nft -f; snapshot) | first / raw empty | changed / raw replace | check + first / raw empty |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, cfg) in [
        ("factory", base()),
        ("100 rules", with_rules(100)),
        ("1,000 rules", with_rules(1000)),
        ("10,000 rules", with_rules(10_000)),
        ("50,000-entry set", with_set(50_000)),
    ] {
        let ruleset = render(&cfg).unwrap();
        let other = changed(&cfg);
        let mut f = Figures {
            again_skipped: true,
            ..Figures::default()
        };
        for run in 0..runs {
            {
                let ns = Ns::new(&format!("raw{run}"));
                let nft = Nft::in_netns(&ns.0);
                let ((), t) = timed(|| nft.load(&ruleset).unwrap());
                f.raw_first.push(t);
                let ((), t) = timed(|| nft.load(&ruleset).unwrap());
                f.raw_replace.push(t);
            }
            let ns = Ns::new(&format!("app{run}"));
            let record = dir.join(format!("{run}.json"));
            let _ = std::fs::remove_file(&record);
            let mut applier = Applier::in_netns(&ns.0, &record);
            let (_, t) = timed(|| applier.check(&cfg).unwrap());
            f.check.push(t);
            let (a, t) = timed(|| applier.apply(&cfg).unwrap());
            f.first.push(t);
            f.first_load.push(load_ms(&a));
            f.first_listed = a.snapshot_listed;
            let (a, t) = timed(|| applier.apply(&cfg).unwrap());
            f.again.push(t);
            f.again_skipped &= a.load.is_none();
            let (a, t) = timed(|| applier.apply(&other).unwrap());
            f.changed.push(t);
            f.changed_load.push(load_ms(&a));
            f.changed_snapshot.push(ms(a.snapshot));
            f.changed_listed = a.snapshot_listed;
        }
        let (rf, rr, c, first, again, ch) = (
            median(f.raw_first),
            median(f.raw_replace),
            median(f.check),
            median(f.first),
            median(f.again),
            median(f.changed),
        );
        println!(
            "| {name} | {:.0} kB | {rf:.0} ms | {rr:.0} ms | {c:.0} ms | {first:.0} ms ({:.0} ms{}) | {again:.0} ms ({}) | {ch:.0} ms ({:.0} ms; {:.0} ms{}) | {:.2}× | {:.2}× | {:.2}× |",
            ruleset.as_str().len() as f64 / 1000.0,
            median(f.first_load),
            if f.first_listed { ", listed" } else { "" },
            if f.again_skipped {
                "nft skipped"
            } else {
                "nft ran"
            },
            median(f.changed_load),
            median(f.changed_snapshot),
            if f.changed_listed { ", listed" } else { "" },
            first / rf,
            ch / rr,
            (c + first) / rf,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
