//! A recorder standing in for the privileged parent, configurations, and a store to reopen.

#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mamori_config::{Apply, ApplyError, Channel, CommitMeta, Configs, Options};
use mamori_crypto::aead::Key;
use mamori_netconfig::{
    Action, AddressMatch, IfName, Interface, NetworkConfig, PortRange, Prefix, Proto, Role, Rule,
    ZoneName,
};
use mamori_store::Store;

pub fn iface(name: &str, role: Role, addrs: &[&str]) -> Interface {
    let mut i = Interface::new(IfName::parse(name).unwrap(), role);
    i.addresses = addrs.iter().map(|a| a.parse().unwrap()).collect();
    i
}

/// The rescue configuration: factory defaults for wan eth0, lan eth1, mgmt eth2.
pub fn factory() -> NetworkConfig {
    NetworkConfig::factory(vec![
        iface("eth0", Role::Wan, &["203.0.113.2/24"]),
        iface("eth1", Role::Lan, &["192.168.1.1/24", "fd00:1::1/64"]),
        iface("eth2", Role::Mgmt, &["10.99.0.1/24"]),
    ])
}

/// The factory configuration with `n` distinct wan → lan rules.
pub fn with_rules(n: u32) -> NetworkConfig {
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
        rule.ports = vec![PortRange::single(u16::try_from(1024 + i % 60_000).unwrap()).unwrap()];
        cfg.firewall.rules.push(rule);
    }
    cfg
}

pub fn json(cfg: &NetworkConfig) -> String {
    cfg.to_canonical_json()
}

pub fn meta(author: &str, channel: Channel, comment: &str) -> CommitMeta {
    CommitMeta {
        author: author.into(),
        channel,
        comment: comment.into(),
        session: None,
    }
}

/// Where a step of the recorder fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct Failures {
    pub check: bool,
    /// The next this-many applies fail (after leaving a torn state behind).
    pub apply: u32,
    pub probe: bool,
}

/// "The kernel": the canonical JSON of what was applied last, and every call in order. Kept in a
/// file when `file` is set, so that it outlives a killed process.
#[derive(Debug, Default)]
pub struct Recorder {
    pub kernel: Mutex<Option<String>>,
    pub calls: Mutex<Vec<String>>,
    pub fail: Mutex<Failures>,
    pub file: Option<PathBuf>,
}

pub const TORN: &str = "torn: half of a failed load";

impl Recorder {
    pub fn in_file(path: &Path) -> Self {
        let r = Self {
            file: Some(path.to_path_buf()),
            ..Self::default()
        };
        if let Ok(text) = std::fs::read_to_string(path) {
            *r.kernel.lock().unwrap() = Some(text);
        }
        r
    }

    pub fn kernel(&self) -> Option<String> {
        self.kernel.lock().unwrap().clone()
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn fail(&self, f: Failures) {
        *self.fail.lock().unwrap() = f;
    }

    fn set_kernel(&self, text: &str) {
        *self.kernel.lock().unwrap() = Some(text.to_string());
        if let Some(p) = &self.file {
            std::fs::write(p, text).unwrap();
        }
    }
}

impl Apply for Recorder {
    fn check(&self, _cfg: &NetworkConfig) -> Result<(), ApplyError> {
        self.calls.lock().unwrap().push("check".into());
        if self.fail.lock().unwrap().check {
            return Err(ApplyError("nft -c: syntax error".into()));
        }
        Ok(())
    }

    fn apply(&self, cfg: &NetworkConfig) -> Result<(), ApplyError> {
        self.calls.lock().unwrap().push("apply".into());
        {
            let mut f = self.fail.lock().unwrap();
            if f.apply > 0 {
                f.apply -= 1;
                drop(f);
                self.set_kernel(TORN);
                return Err(ApplyError("netlink: address in use".into()));
            }
        }
        self.set_kernel(&cfg.to_canonical_json());
        Ok(())
    }

    fn probe(&self) -> Result<(), ApplyError> {
        self.calls.lock().unwrap().push("probe".into());
        if self.fail.lock().unwrap().probe {
            return Err(ApplyError("management listener unreachable".into()));
        }
        Ok(())
    }
}

/// A store directory and its data key, reopened as often as a test likes.
pub struct Disk {
    pub dir: tempfile::TempDir,
    pub key: [u8; 32],
}

impl Disk {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            key: *Key::generate().unwrap().dangerous_raw_bytes(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("store.redb")
    }

    pub fn open(&self) -> Configs {
        self.open_with(Options::default())
    }

    pub fn open_with(&self, o: Options) -> Configs {
        open_at(&self.path(), &self.key, o)
    }
}

pub fn open_at(path: &Path, key: &[u8], o: Options) -> Configs {
    let store = Store::open(path, Key::from_bytes(key).unwrap()).unwrap();
    Configs::open(Arc::new(store), factory(), o).unwrap()
}
