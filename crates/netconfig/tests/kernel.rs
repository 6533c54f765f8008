//! The rendered ruleset against the real kernel, each test in a network namespace of its own
//! (as root; skipped otherwise): `nft -c` accepts it, `nft -f` loads it as one transaction that
//! replaces only mamori's tables, a refused candidate changes nothing, and the factory defaults
//! filter real TCP connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{FULL, Netns, can_run, factory, from_json, iface};
use mamori_netconfig::{
    AddressSet, Family, NetworkConfig, NftError, Prefix, Role, Ruleset, SetName, render,
    render_check,
};

/// The full example configuration with a 50,000-entry set.
fn big_config() -> NetworkConfig {
    let mut cfg = from_json(FULL);
    let entries = (0..50_000u32)
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
    cfg
}

fn tables(ns: &Netns) -> Vec<(String, String)> {
    let json: serde_json::Value =
        serde_json::from_str(&ns.nft().list_ruleset(true).unwrap()).unwrap();
    json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("table"))
        .map(|t| {
            (
                t["family"].as_str().unwrap().to_owned(),
                t["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_factory_ruleset_passes_nft_check_and_loads() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let ruleset = render(&factory()).unwrap();
    ns.nft().check(&ruleset).unwrap();
    ns.nft().load(&ruleset).unwrap();
    assert_eq!(
        tables(&ns),
        [
            ("inet".to_owned(), "mamori".to_owned()),
            ("inet".to_owned(), "mamori_nat".to_owned())
        ]
    );
    // The file-based check, as the privileged parent would run it.
    let dir = std::env::temp_dir().join(format!("mamori-nc-{}.nft", std::process::id()));
    std::fs::write(&dir, ruleset.as_str()).unwrap();
    let checked = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "-c", "-f"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(checked.success());
    render_check(&dir).unwrap();
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn rules_sets_of_50000_entries_and_port_forwards_check_and_load() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let ruleset = render(&big_config()).unwrap();
    ns.nft().check(&ruleset).unwrap();
    ns.nft().load(&ruleset).unwrap();
    let listed = ns.nft().list_ruleset(false).unwrap();
    assert!(listed.contains("set u_big"), "{}", &listed[..2000]);
    assert!(
        listed.contains("10.195.79.0/24"),
        "the last of the 50,000 entries"
    );
    assert!(listed.contains("dnat ip to 192.168.1.10:80"));
    assert!(listed.contains("comment \"pf0: web _cam__ _\""));
}

#[test]
fn loading_twice_is_idempotent() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    let ruleset = render(&from_json(FULL)).unwrap();
    ns.nft().load(&ruleset).unwrap();
    let first = ns.nft().list_ruleset(false).unwrap();
    ns.nft().load(&ruleset).unwrap();
    assert_eq!(ns.nft().list_ruleset(false).unwrap(), first);
}

#[test]
fn a_foreign_table_survives_a_load() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    ns.exec(&["nft", "add table ip collector"]);
    ns.exec(&[
        "nft",
        "add chain ip collector in { type filter hook input priority 10; }",
    ]);
    ns.exec(&["nft", "add rule ip collector in tcp dport 6514 counter"]);
    let foreign = ns.exec(&["nft", "list", "table", "ip", "collector"]);
    ns.nft().load(&render(&factory()).unwrap()).unwrap();
    ns.nft().load(&render(&from_json(FULL)).unwrap()).unwrap();
    assert_eq!(
        ns.exec(&["nft", "list", "table", "ip", "collector"]),
        foreign
    );
    assert_eq!(tables(&ns).len(), 3);
}

/// S3.1 pipeline: a candidate nft refuses (here a reference the validator cannot see, made by
/// corrupting the rendered text) fails the dry run with nft's message, and neither the check nor
/// a load attempt changes the loaded ruleset by a byte.
#[test]
fn a_broken_candidate_fails_the_check_and_changes_nothing() {
    if !can_run() {
        return;
    }
    let ns = Netns::new();
    ns.nft().load(&render(&factory()).unwrap()).unwrap();
    let before = ns.nft().list_ruleset(false).unwrap();
    let good = render(&from_json(FULL)).unwrap().into_string();
    let broken = Ruleset::dangerous_from_text(good.replace("@u_blocklist", "@u_missing"));
    match ns.nft().check(&broken) {
        Err(NftError::Rejected { stderr, .. }) => {
            assert!(stderr.contains("u_missing"), "{stderr}")
        }
        other => panic!("check passed a broken ruleset: {other:?}"),
    }
    assert_eq!(ns.nft().list_ruleset(false).unwrap(), before);
    assert!(ns.nft().load(&broken).is_err());
    assert_eq!(ns.nft().list_ruleset(false).unwrap(), before);
    // A broken first table after a valid one: the batch is all or nothing.
    let half = Ruleset::dangerous_from_text(good.replace("masquerade", "masquerade bogus"));
    assert!(ns.nft().load(&half).is_err());
    assert_eq!(ns.nft().list_ruleset(false).unwrap(), before);
}

/// A TCP listener on the gateway, killed on drop.
struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn connects(ns: &Netns, addr: &str, port: u16) -> bool {
    let script = format!(
        "import socket,sys\ntry:\n socket.create_connection(('{addr}',{port}),timeout=1.5).close()\nexcept Exception:\n sys.exit(1)"
    );
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .status()
        .unwrap()
        .success()
}

/// Factory defaults with real traffic: a TCP connection to the management port from the lan
/// side is accepted, the same from the wan side is dropped.
#[test]
fn factory_defaults_drop_management_from_wan_and_allow_it_from_lan() {
    if !can_run()
        || Command::new("python3")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_err()
    {
        return;
    }
    let gw = Netns::new();
    let wan = Netns::new();
    let lan = Netns::new();
    let link = |name: &str, peer: &Netns, peer_addr: &str, gw_addr: &str| {
        common::run(
            "ip",
            &[
                "link", "add", name, "netns", &gw.name, "type", "veth", "peer", "name", "p0",
                "netns", &peer.name,
            ],
        );
        gw.exec(&["ip", "addr", "add", gw_addr, "dev", name]);
        gw.exec(&["ip", "link", "set", name, "up"]);
        peer.exec(&["ip", "addr", "add", peer_addr, "dev", "p0"]);
        peer.exec(&["ip", "link", "set", "p0", "up"]);
    };
    link("eth0", &wan, "203.0.113.9/24", "203.0.113.2/24");
    link("eth1", &lan, "192.168.1.50/24", "192.168.1.1/24");
    let cfg = NetworkConfig::factory(vec![
        iface("eth0", Role::Wan, &["203.0.113.2/24"]),
        iface("eth1", Role::Lan, &["192.168.1.1/24"]),
    ]);
    gw.nft().load(&render(&cfg).unwrap()).unwrap();
    let _server = Listener(
        Command::new("ip")
            .args(["netns", "exec", &gw.name, "python3", "-c"])
            .arg("import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',443))\ns.listen(16)\nwhile True:\n c,_=s.accept(); c.close()")
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !connects(&lan, "192.168.1.1", 443) {
        assert!(
            Instant::now() < deadline,
            "lan never reached the management port"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !connects(&wan, "203.0.113.2", 443),
        "wan reached the management port"
    );
    // Any other port is closed to the lan too (no service opened by the defaults).
    assert!(!connects(&lan, "192.168.1.1", 22));
}
