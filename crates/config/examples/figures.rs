//! Figures for docs/config.md: commit latency without apply (a recorder that does nothing) for
//! a configuration of 10,000 rules, and the store's size per revision.
//!
//! `cargo run -p mamori-config --example figures`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mamori_config::{Apply, ApplyError, Channel, CommitMeta, Configs, Options};
use mamori_crypto::aead::Key;
use mamori_netconfig::{
    Action, AddressMatch, IfName, Interface, NetworkConfig, PortRange, Prefix, Proto, Role, Rule,
    ZoneName,
};
use mamori_store::Store;

struct Nothing;

impl Apply for Nothing {
    fn check(&self, _: &NetworkConfig) -> Result<(), ApplyError> {
        Ok(())
    }
    fn apply(&self, _: &NetworkConfig) -> Result<(), ApplyError> {
        Ok(())
    }
    fn probe(&self) -> Result<(), ApplyError> {
        Ok(())
    }
}

fn factory() -> NetworkConfig {
    let iface = |n: &str, role, a: &str| {
        let mut i = Interface::new(IfName::parse(n).unwrap(), role);
        i.addresses = vec![a.parse().unwrap()];
        i
    };
    NetworkConfig::factory(vec![
        iface("eth0", Role::Wan, "203.0.113.2/24"),
        iface("eth1", Role::Lan, "192.168.1.1/24"),
    ])
}

fn with_rules(n: u32, port_base: u16) -> NetworkConfig {
    let mut cfg = factory();
    for i in 0..n {
        let mut rule = Rule::new(
            ZoneName::parse("wan").unwrap(),
            ZoneName::parse("lan").unwrap(),
            Action::Accept,
        );
        let p = Prefix::parse(&format!("10.{}.{}.0/24", (i >> 8) & 255, i & 255)).unwrap();
        rule.source = Some(AddressMatch::Prefixes(vec![p]));
        rule.proto = Some(Proto::Tcp);
        rule.ports =
            vec![PortRange::single(port_base + u16::try_from(i % 50_000).unwrap()).unwrap()];
        cfg.firewall.rules.push(rule);
    }
    cfg
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = Arc::new(Store::open(&path, Key::generate().unwrap()).unwrap());
    let c = Configs::open(store, factory(), Options::default()).unwrap();
    let meta = || CommitMeta {
        author: "bench".into(),
        channel: Channel::Api,
        comment: String::new(),
        session: None,
    };
    let json_bytes = with_rules(10_000, 1024).to_canonical_json().len();
    let compact = serde_json::to_vec(&with_rules(10_000, 1024)).unwrap().len();
    println!(
        "10,000 rules: canonical (pretty) JSON {json_bytes} bytes, compact JSON as stored {compact} bytes (+ 28 bytes of AEAD nonce and tag)"
    );

    let t = Instant::now();
    with_rules(10_000, 1024).validate().unwrap();
    println!("validate alone: {:.1} ms", ms(t.elapsed()));

    let mut lat = Vec::new();
    let size0 = std::fs::metadata(&path).unwrap().len();
    const N: u16 = 40;
    for i in 0..N {
        let cfg = with_rules(10_000, 1024 + i);
        let t = Instant::now();
        c.commit(cfg, meta(), None, &Nothing).unwrap();
        lat.push(t.elapsed());
        if i % 10 == 9 {
            println!(
                "  after {} revisions of 10,000 rules: store file {} bytes",
                i + 1,
                std::fs::metadata(&path).unwrap().len()
            );
        }
    }
    lat.sort();
    let size1 = std::fs::metadata(&path).unwrap().len();
    println!(
        "commit (validate + marker + revision + final write, no apply), 10,000 rules, {N} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(lat[lat.len() / 2]),
        ms(lat[0]),
        ms(lat[lat.len() - 1])
    );
    println!(
        "store file: {size0} bytes before, {size1} after {N} revisions of 10,000 rules: {} bytes per revision",
        (size1 - size0) / u64::from(N)
    );

    // Small revisions: the factory configuration with 10 rules.
    println!(
        "factory configuration: {} bytes stored; with 10 rules: {} bytes",
        serde_json::to_vec(&factory()).unwrap().len(),
        serde_json::to_vec(&with_rules(10, 2000)).unwrap().len()
    );
    let before = std::fs::metadata(&path).unwrap().len();
    let mut lat = Vec::new();
    for i in 0..100u16 {
        let t = Instant::now();
        c.commit(with_rules(10, 2000 + i), meta(), None, &Nothing)
            .unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    let after = std::fs::metadata(&path).unwrap().len();
    println!(
        "commit of 10 rules, 100 runs: median {:.1} ms; store grew {} bytes ({} per revision)",
        ms(lat[50]),
        after - before,
        (after - before) / 100
    );
    println!("history: {} revisions kept", c.history().unwrap().len());
}
