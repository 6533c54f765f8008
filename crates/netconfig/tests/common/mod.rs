//! Shared configurations and a private network namespace for the kernel tests.

#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use mamori_netconfig::{IfName, Interface, NetworkConfig, Role};

pub fn iface(name: &str, role: Role, addrs: &[&str]) -> Interface {
    let mut i = Interface::new(IfName::parse(name).unwrap(), role);
    i.addresses = addrs.iter().map(|a| a.parse().unwrap()).collect();
    i
}

/// wan eth0 (DHCP and a static address), lan eth1, mgmt eth2.
pub fn interfaces() -> Vec<Interface> {
    let mut wan = iface("eth0", Role::Wan, &["203.0.113.2/24", "2001:db8:1::2/64"]);
    wan.dhcp = true;
    vec![
        wan,
        iface("eth1", Role::Lan, &["192.168.1.1/24", "fd00:1::1/64"]),
        iface("eth2", Role::Mgmt, &["10.99.0.1/24"]),
    ]
}

pub fn factory() -> NetworkConfig {
    NetworkConfig::factory(interfaces())
}

/// A configuration from JSON, panicking with serde's message.
pub fn from_json(text: &str) -> NetworkConfig {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A larger configuration: a set, rules with logs and comments, a port forward, a route.
pub const FULL: &str = r#"{
  "interfaces": [
    {"name": "eth0", "role": "wan", "addresses": ["203.0.113.2/24"], "dhcp": true},
    {"name": "eth1", "role": "lan", "addresses": ["192.168.1.1/24", "fd00:1::1/64"]},
    {"name": "eth2", "role": "mgmt", "addresses": ["10.99.0.1/24"]}
  ],
  "routes": [{"destination": "10.20.0.0/16", "gateway": "192.168.1.254"}],
  "nat": {
    "masquerade": [{"out_zone": "wan"}],
    "port_forwards": [
      {"from_zone": "wan", "proto": "tcp", "external_ports": "8080-8090",
       "internal_address": "192.168.1.10", "internal_port": 80,
       "source": "198.51.100.0/24", "comment": "web \"cam\"; }"},
      {"from_zone": "wan", "proto": "udp", "external_ports": 5353,
       "internal_address": "fd00:1::10"}
    ]
  },
  "firewall": {
    "zones": [
      {"name": "wan", "interfaces": ["eth0"]},
      {"name": "lan", "interfaces": ["eth1"]},
      {"name": "mgmt", "interfaces": ["eth2"]}
    ],
    "policies": [{"from": "lan", "to": "wan", "action": "accept"}],
    "rules": [
      {"from": "wan", "to": "self", "source": {"set": "blocklist"}, "action": "drop",
       "log": {"per_minute": 10}, "comment": "known bad"},
      {"from": "lan", "to": "self", "proto": "udp", "ports": [53, "67-68"], "action": "accept"},
      {"from": "lan", "to": "wan", "family": "ipv6", "proto": "tcp", "ports": [25],
       "destination": {"prefixes": ["2001:db8::/32", "2001:db8:ffff::/48"]}, "action": "reject"}
    ],
    "sets": [{"name": "blocklist", "family": "ipv4",
              "entries": ["198.51.100.0/24", "192.0.2.0/24"]}]
  },
  "management": {"port": 443, "zones": ["lan", "mgmt"], "sources": ["192.168.1.0/24", "10.99.0.0/24", "fd00:1::/64"]}
}"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace of this test alone, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Self {
        let name = format!(
            "mamori-nc-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    /// Runs a command inside the namespace; panics unless it succeeds.
    pub fn exec(&self, argv: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(argv);
        run("ip", &args)
    }

    pub fn nft(&self) -> mamori_netconfig::Nft {
        mamori_netconfig::Nft::in_netns(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether the kernel tests can run here (root, nft and ip present); prints why not.
pub fn can_run() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let tools = Command::new("nft").arg("--version").output().is_ok()
        && Command::new("ip").arg("-V").output().is_ok();
    if !(root && tools) {
        eprintln!("skipped: needs root, nft and ip");
    }
    root && tools
}
