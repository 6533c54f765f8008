//! The apply module against the real kernel, each test in a network namespace of its own with
//! veth interfaces (as root; skipped otherwise): the factory configuration applies, a second
//! configuration replaces addresses, routes and the ruleset and leaves foreign ones alone, a
//! ruleset nft refuses changes nothing, and an address step failing half-way puts everything
//! back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Netns, can_run, from_json, iface};
use mamori_netconfig::{
    Applier, ApplyStep, NetworkConfig, NetworkState, Role, Rollback, Ruleset, render,
};

/// A namespace with veth pairs eth0–eth1 and x0–x1 (x0/x1 are never configured) and an
/// address record in a temporary directory.
struct Lab {
    ns: Netns,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        let ns = Netns::new();
        for (a, b) in [("eth0", "eth1"), ("x0", "x1")] {
            common::run(
                "ip",
                &[
                    "-n", &ns.name, "link", "add", a, "type", "veth", "peer", "name", b,
                ],
            );
        }
        Self {
            ns,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn applier(&self) -> Applier {
        Applier::in_netns(&self.ns.name, self.dir.path().join("addresses.json"))
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.ns.name.as_str()];
        all.extend_from_slice(args);
        common::run("ip", &all)
    }

    fn state(&self) -> NetworkState {
        self.applier().state(["eth0", "eth1", "x0", "x1"]).unwrap()
    }

    /// `ip -j addr` and `nft -s list ruleset` once IPv6 duplicate address detection is over
    /// (so two readings of an unchanged kernel are byte-identical).
    fn settled(&self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let addr = self.ip(&["-j", "addr"]);
            if !addr.contains("tentative") || Instant::now() > deadline {
                let rules = self.ns.exec(&["nft", "-s", "list", "ruleset"]);
                return (addr, rules);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// wan eth0, lan eth1 (v4 and v6), a v4 and a v6 route through lan.
fn first() -> NetworkConfig {
    from_json(
        r#"{
  "interfaces": [
    {"name": "eth0", "role": "wan", "addresses": ["203.0.113.2/24", "2001:db8:1::2/64"]},
    {"name": "eth1", "role": "lan", "addresses": ["192.168.1.1/24", "fd00:1::1/64"]}
  ],
  "routes": [
    {"destination": "10.20.0.0/16", "gateway": "192.168.1.254"},
    {"destination": "fd00:20::/48", "gateway": "fd00:1::fe", "metric": 7}
  ],
  "nat": {"masquerade": [{"out_zone": "wan"}]},
  "firewall": {
    "zones": [{"name": "wan", "interfaces": ["eth0"]}, {"name": "lan", "interfaces": ["eth1"]}],
    "policies": [{"from": "lan", "to": "wan", "action": "accept"}],
    "rules": [{"from": "lan", "to": "self", "proto": "udp", "ports": [53], "action": "accept",
               "comment": "first"}]
  },
  "management": {"port": 443, "zones": ["lan"], "sources": ["192.168.1.0/24", "fd00:1::/64"]}
}"#,
    )
}

/// The same interfaces, new lan addresses, another route, another rule.
fn second() -> NetworkConfig {
    from_json(
        r#"{
  "interfaces": [
    {"name": "eth0", "role": "wan", "addresses": ["203.0.113.2/24"]},
    {"name": "eth1", "role": "lan", "addresses": ["192.168.2.1/24", "fd00:2::1/64"]}
  ],
  "routes": [{"destination": "10.30.0.0/16", "gateway": "192.168.2.254"}],
  "nat": {"masquerade": [{"out_zone": "wan"}]},
  "firewall": {
    "zones": [{"name": "wan", "interfaces": ["eth0"]}, {"name": "lan", "interfaces": ["eth1"]}],
    "policies": [{"from": "lan", "to": "wan", "action": "accept"}],
    "rules": [{"from": "lan", "to": "self", "proto": "tcp", "ports": [22], "action": "accept",
               "comment": "second"}]
  },
  "management": {"port": 443, "zones": ["lan"], "sources": ["192.168.2.0/24", "fd00:2::/64"]}
}"#,
    )
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_factory_configuration_for_two_interfaces_applies() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let cfg = NetworkConfig::factory(vec![
        iface("eth0", Role::Wan, &["203.0.113.2/24", "2001:db8:1::2/64"]),
        iface("eth1", Role::Lan, &["192.168.1.1/24", "fd00:1::1/64"]),
    ]);
    let applied = lab.applier().apply(&cfg).unwrap();
    eprintln!("factory, 2 interfaces: {applied:?}");
    lab.ns.exec(&["nft", "list", "table", "inet", "mamori"]);
    lab.ns.exec(&["nft", "list", "table", "inet", "mamori_nat"]);
    let state = lab.state();
    assert_eq!(
        state.addresses["eth0"],
        strings(&["203.0.113.2/24", "2001:db8:1::2/64"])
    );
    assert_eq!(
        state.addresses["eth1"],
        strings(&["192.168.1.1/24", "fd00:1::1/64"])
    );
    assert!(state.addresses["x0"].is_empty());
    assert!(state.ruleset.contains("table inet mamori {"));
    assert!(state.ruleset.contains("table inet mamori_nat {"));
    // Applying the same configuration again changes nothing.
    lab.applier().apply(&cfg).unwrap();
    assert_eq!(lab.state(), state);
}

#[test]
fn a_second_configuration_replaces_addresses_routes_and_rules_and_leaves_foreign_ones() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    // Foreign things: an address on an interface mamori does not manage, one on an interface
    // it manages but did not set, a table of another program.
    lab.ip(&["link", "set", "x0", "up"]);
    lab.ip(&["addr", "add", "10.77.0.1/24", "dev", "x0"]);
    lab.ip(&["addr", "add", "fd77::1/64", "dev", "x0"]);
    lab.ip(&["addr", "add", "172.16.9.1/24", "dev", "eth1"]);
    lab.ns.exec(&["nft", "add table ip collector"]);
    lab.ns.exec(&[
        "nft",
        "add chain ip collector c { type filter hook input priority 10; }",
    ]);
    let collector = lab.ns.exec(&["nft", "list", "table", "ip", "collector"]);

    lab.applier().apply(&first()).unwrap();
    let one = lab.state();
    assert_eq!(
        one.addresses["eth1"],
        strings(&["172.16.9.1/24", "192.168.1.1/24", "fd00:1::1/64"])
    );
    assert_eq!(
        one.routes,
        strings(&[
            "10.20.0.0/16 via 192.168.1.254 dev eth1 metric 0",
            "fd00:20::/48 via fd00:1::fe dev eth1 metric 7",
        ])
    );
    assert!(
        one.ruleset.contains("comment \"r0: first\""),
        "{}",
        one.ruleset
    );

    lab.applier().apply(&second()).unwrap();
    let two = lab.state();
    assert_eq!(two.addresses["eth0"], strings(&["203.0.113.2/24"]));
    assert_eq!(
        two.addresses["eth1"],
        strings(&["172.16.9.1/24", "192.168.2.1/24", "fd00:2::1/64"])
    );
    assert_eq!(
        two.addresses["x0"],
        strings(&["10.77.0.1/24", "fd77::1/64"])
    );
    assert_eq!(
        two.routes,
        strings(&["10.30.0.0/16 via 192.168.2.254 dev eth1 metric 0"])
    );
    assert!(two.ruleset.contains("comment \"r0: second\""));
    assert!(!two.ruleset.contains("first"));
    assert_eq!(
        lab.ns.exec(&["nft", "list", "table", "ip", "collector"]),
        collector
    );
}

#[test]
fn a_ruleset_nft_refuses_changes_nothing() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    lab.applier().apply(&first()).unwrap();
    let before = lab.settled();
    // A stored revision's text, corrupted: the lower layer checks text rendered elsewhere.
    let good = render(&second()).unwrap().into_string();
    let broken = good.replace("policy drop;", "policy drip;");
    assert_ne!(good, broken);
    let err = lab
        .applier()
        .apply_rendered(&second(), Ruleset::dangerous_from_text(broken))
        .unwrap_err();
    assert_eq!(err.step, ApplyStep::Check);
    assert_eq!(err.rollback, Rollback::NothingChanged);
    assert!(err.detail.contains("drip"), "{}", err.detail);
    assert!(err.detail.lines().count() <= 8);
    assert_eq!(lab.settled(), before);
    // An invalid configuration stops at validation, before nft runs.
    let mut invalid = second();
    invalid.interfaces[1].addresses = invalid.interfaces[0].addresses.clone();
    let err = lab.applier().apply(&invalid).unwrap_err();
    assert_eq!(err.step, ApplyStep::Validate);
    assert_eq!(lab.settled(), before);
}

#[test]
fn an_interface_vanishing_between_check_and_apply_restores_the_previous_state() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    lab.applier().apply(&first()).unwrap();
    let before = lab.settled();
    let state_before = lab.state();
    // The second configuration also names x0, which goes away after the check.
    let mut cfg = second();
    cfg.interfaces
        .push(iface("x0", Role::Mgmt, &["10.99.0.1/24"]));
    cfg.firewall
        .zones
        .push(serde_json::from_str(r#"{"name": "mgmt", "interfaces": ["x0"]}"#).unwrap());
    let prepared = lab.applier().check(&cfg).unwrap();
    lab.ip(&["link", "del", "x0"]);
    let err = lab.applier().commit(prepared).unwrap_err();
    assert_eq!(err.step, ApplyStep::Addresses, "{err}");
    assert_eq!(err.rollback, Rollback::Restored, "{err}");
    assert!(err.detail.contains("x0"), "{}", err.detail);
    let after = lab.state();
    assert_eq!(after.ruleset, state_before.ruleset);
    assert_eq!(after.routes, state_before.routes);
    assert_eq!(after.addresses["eth0"], state_before.addresses["eth0"]);
    assert_eq!(after.addresses["eth1"], state_before.addresses["eth1"]);
    // Byte for byte, but for the pair that was deleted.
    let (addr, rules) = lab.settled();
    assert_eq!(rules, before.1);
    let without_x = |text: &str| -> Vec<serde_json::Value> {
        serde_json::from_str::<Vec<serde_json::Value>>(text)
            .unwrap()
            .into_iter()
            .filter(|l| !l["ifname"].as_str().unwrap().starts_with('x'))
            .collect()
    };
    assert_eq!(without_x(&addr), without_x(&before.0));
    // And the next apply of the first configuration is a no-op on the kernel.
    lab.applier().apply(&first()).unwrap();
    let again = lab.state();
    assert_eq!(again.ruleset, state_before.ruleset);
    assert_eq!(again.routes, state_before.routes);
    assert_eq!(again.addresses["eth1"], state_before.addresses["eth1"]);
}

#[test]
fn one_applier_skips_a_load_the_kernel_holds_and_loads_again_after_any_other_transaction() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let mut applier = lab.applier();
    let nft = lab.ns.nft();
    let g0 = nft.generation().unwrap();
    let first_apply = applier.apply(&first()).unwrap();
    assert!(first_apply.snapshot_listed, "nothing loaded yet: listed");
    assert!(first_apply.load.is_some());
    assert_eq!(first_apply.check, None, "apply does not dry-run");
    assert_eq!(
        nft.generation().unwrap(),
        g0.wrapping_add(1),
        "one transaction"
    );
    let (_, rules) = lab.settled();

    // The same configuration again: the kernel holds exactly it, nft does not run.
    let again = applier.apply(&first()).unwrap();
    assert_eq!(again.load, None, "{again:?}");
    assert!(!again.snapshot_listed);
    assert_eq!(nft.generation().unwrap(), g0.wrapping_add(1));
    // A dry run does not move the generation either.
    applier.check(&second()).unwrap();
    assert_eq!(applier.apply(&first()).unwrap().load, None);

    // Someone changes mamori's table: the next apply loads again and overwrites it.
    lab.ns.exec(&["nft", "flush chain inet mamori input"]);
    assert_ne!(lab.settled().1, rules);
    let reloaded = applier.apply(&first()).unwrap();
    assert!(reloaded.load.is_some(), "{reloaded:?}");
    assert_eq!(lab.settled().1, rules);
    assert_eq!(applier.apply(&first()).unwrap().load, None);

    // Any other transaction, even in another table, makes the next apply load (and leaves
    // that table alone).
    lab.ns.exec(&["nft", "add table ip collector"]);
    assert!(applier.apply(&first()).unwrap().load.is_some());
    lab.ns.exec(&["nft", "list", "table", "ip", "collector"]);

    // A fresh applier (a restarted parent) knows nothing: it lists and loads.
    let fresh = lab.applier().apply(&first()).unwrap();
    assert!(fresh.snapshot_listed && fresh.load.is_some(), "{fresh:?}");
}

#[test]
fn a_refused_load_without_a_dry_run_changes_nothing() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let mut applier = lab.applier();
    applier.apply(&first()).unwrap();
    let before = lab.settled();
    let good = render(&second()).unwrap().into_string();
    let broken = Ruleset::dangerous_from_text(good.replace("policy drop;", "policy drip;"));
    let prepared = applier.prepare_rendered(&second(), broken).unwrap();
    let err = applier.commit(prepared).unwrap_err();
    assert_eq!(err.step, ApplyStep::Load, "{err}");
    assert_eq!(err.rollback, Rollback::NothingChanged);
    assert!(err.detail.contains("drip"), "{}", err.detail);
    assert_eq!(lab.settled(), before);
    // What was loaded before still is, and the applier knows it.
    assert_eq!(applier.apply(&first()).unwrap().load, None);
}

#[test]
fn a_failure_half_way_restores_the_ruleset_from_memory() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let mut applier = lab.applier();
    applier.apply(&first()).unwrap();
    let before = lab.settled();
    let state_before = lab.state();
    let mut cfg = second();
    cfg.interfaces
        .push(iface("x0", Role::Mgmt, &["10.99.0.1/24"]));
    cfg.firewall
        .zones
        .push(serde_json::from_str(r#"{"name": "mgmt", "interfaces": ["x0"]}"#).unwrap());
    let prepared = applier.prepare(&cfg).unwrap();
    lab.ip(&["link", "del", "x0"]);
    let err = applier.commit(prepared).unwrap_err();
    assert_eq!(err.step, ApplyStep::Addresses, "{err}");
    assert_eq!(err.rollback, Rollback::Restored, "{err}");
    let after = lab.state();
    assert_eq!(after.ruleset, state_before.ruleset);
    assert_eq!(after.routes, state_before.routes);
    assert_eq!(after.addresses["eth1"], state_before.addresses["eth1"]);
    assert_eq!(
        lab.settled().1,
        before.1,
        "nft -s list ruleset byte-identical"
    );
    // The restore put back exactly the first configuration's text: applying it again skips
    // nft.
    let again = applier.apply(&first()).unwrap();
    assert_eq!(again.load, None, "{again:?}");
    assert!(!again.snapshot_listed);
}

/// Datagrams queued on a listener's socket (read without waiting, then gone).
fn queued(fd: &std::os::fd::OwnedFd) -> usize {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while nix::sys::socket::recv(
        fd.as_raw_fd(),
        &mut buf,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    )
    .is_ok()
    {
        n += 1;
    }
    n
}

#[test]
fn a_quiet_applier_announces_nothing_of_its_own_loads_and_listens_again_after() {
    if !can_run() {
        return;
    }
    let lab = Lab::new();
    let listener = std::sync::Arc::new(
        mamori_netconfig::NftablesListener::open(Some(&lab.ns.name), 1 << 20).unwrap(),
    );
    let monitor = listener.share().unwrap();
    let nft = lab.ns.nft();

    // Without the pause the kernel announces every object of the load: the listener hears.
    let mut loud = lab.applier();
    let a = loud.apply(&first()).unwrap();
    let g = a.generations.expect("generations read");
    assert!(!g.quiet && g.others() == 0, "{g:?}");
    assert!(queued(&monitor) > 0, "a load is announced to a listener");

    // With it, the load of a changed configuration announces nothing, and reports its
    // generation as the only one of its window.
    let mut quiet = lab.applier().with_quiet(listener.clone());
    let a = quiet.apply(&second()).unwrap();
    let g = a.generations.expect("generations read");
    assert!(g.quiet, "{g:?}");
    assert_eq!(g.after, g.before.wrapping_add(1));
    assert_eq!(g.others(), 0);
    assert_eq!(nft.generation().unwrap(), g.after);
    assert_eq!(queued(&monitor), 0, "mamori's own load is not announced");
    // The same configuration again: nft does not run, no generations.
    assert_eq!(quiet.apply(&second()).unwrap().generations, None);

    // The socket is in the group again: another program's change is heard.
    lab.ns.exec(&["nft", "add table ip collector"]);
    assert!(queued(&monitor) > 0, "listening again after the load");
}
