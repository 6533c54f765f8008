//! The lab: network namespaces wired with veths, the demo and the test bed of the gateway
//! (docs/lab.md).
//!
//! ```text
//!  wan host ── gateway (mamorid; bridge lan0) ──┬── lan host 1
//!                  │ mgmt                        └── lan host 2
//!                 host (root namespace, the browser)
//! ```
//!
//! [`Lab::up`] builds a lab (idempotent; it repairs a half-built one), [`Lab::down`] removes
//! everything of it and nothing else, [`Lab::status`] compares what exists with the plan. All of
//! it needs root. The topology is built with `ip -batch` (iproute2), read back with `ip -json`.

mod device;
mod ip;
pub mod network;
pub mod plan;
mod rundir;
mod status;

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use device::{DeviceInfo, DeviceSpec, url};
pub use network::{gateway_config, write_gateway_config};
pub use plan::{LabName, Mgmt, Role};
pub use rundir::RUN_ROOT;
pub use status::{DeviceStatus, Forwarding, LabState, LabStatus, LinkStatus, NsStatus};

use plan::{Plan, SLOTS};

/// The name of the lab when none is given.
pub const DEFAULT_NAME: &str = "demo";

/// The device's HTTPS port when none is given.
pub const DEFAULT_PORT: u16 = 443;

/// Why the lab could not be built, read or removed. Each names the step.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Namespaces and veths need root.
    #[error("the lab needs root (network namespaces and veths): run it as root")]
    NotRoot,
    /// A lab name must fit the interface names made from it.
    #[error("invalid lab name {0:?}: 1 to 10 of a-z and 0-9")]
    InvalidName(String),
    /// A program could not be run at all.
    #[error("{step}: cannot run ip: {source}")]
    Spawn {
        /// The step.
        step: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{step}: `{command}` failed: {detail}")]
    Step {
        /// The step.
        step: String,
        /// The command.
        command: String,
        /// Its error output.
        detail: String,
    },
    /// An answer could not be read.
    #[error("{step}: cannot read the answer: {detail}")]
    Parse {
        /// The step.
        step: String,
        /// Why.
        detail: String,
    },
    /// A file of the run directory.
    #[error("{step}: {}: {source}", path.display())]
    Io {
        /// The step.
        step: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Every management /30 of 198.51.100.0/24 overlaps a route of the host.
    #[error(
        "allocate the management link: all {SLOTS} /30s of 198.51.100.0/24 overlap routes of \
         the host (other labs, or a network the host uses)"
    )]
    NoFreeSlot,
    /// The device did not start.
    #[error("{step}: {detail}")]
    Device {
        /// The step.
        step: String,
        /// Why, with the end of its output.
        detail: String,
    },
    /// The lab was built but does not match its plan afterwards.
    #[error("check the built lab: still missing: {0}")]
    Incomplete(String),
}

/// What to bring up.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// The lab's name.
    pub name: LabName,
    /// Start the device in the gateway too.
    pub device: Option<DeviceSpec>,
}

/// What `up` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpReport {
    /// The lab.
    pub name: LabName,
    /// False when the lab was already up and nothing was built.
    pub built: bool,
    /// Leftovers of a half-built lab removed first (what `down` removed).
    pub repaired: Vec<String>,
    /// The management link.
    pub mgmt: Mgmt,
    /// The device, when asked for.
    pub device: Option<DeviceInfo>,
    /// How long `up` took, in milliseconds.
    pub elapsed_ms: u64,
}

/// What `down` removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownReport {
    /// The lab.
    pub name: LabName,
    /// Processes stopped, namespaces and links deleted, the run directory.
    pub removed: Vec<String>,
}

/// The lab operations.
pub struct Lab;

fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// Holds `/run/mamori-lab/.lock` while labs are built, so parallel `up`s pick different
/// management /30s.
fn build_lock() -> Result<nix::fcntl::Flock<std::fs::File>, LabError> {
    let path = PathBuf::from(RUN_ROOT).join(".lock");
    let io = |source| LabError::Io {
        step: "lock the lab builder".into(),
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(RUN_ROOT).map_err(io)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io(std::io::Error::from(e)))
}

/// A prefix as a 128-bit number and length (IPv4 mapped into the top of `::ffff:0:0/96`'s
/// space, so both families compare alike).
fn prefix(text: &str, v4: bool) -> Option<(u128, u32)> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u32>().ok()?)),
        None => (text, None),
    };
    if v4 {
        let a: std::net::Ipv4Addr = addr.parse().ok()?;
        Some(((u128::from(u32::from(a))) << 96, len.unwrap_or(32).min(32)))
    } else {
        let a: std::net::Ipv6Addr = addr.parse().ok()?;
        Some((u128::from(a), len.unwrap_or(128).min(128)))
    }
}

fn overlaps((a, alen): (u128, u32), (b, blen): (u128, u32)) -> bool {
    let len = alen.min(blen);
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    a & mask == b & mask
}

/// The first slot whose /30 and /64 overlap no route of the host (any table) but a default
/// route: a host that already uses part of 198.51.100.0/24 (a test network, another lab) keeps
/// it, and the lab never shadows part of a network the host reaches.
fn free_slot() -> Result<u8, LabError> {
    let mut taken: Vec<(u128, u32)> = Vec::new();
    for (fam, v4) in [("-4", true), ("-6", false)] {
        let routes = ip::json(
            "allocate the management link: read the host's routes",
            None,
            &[fam, "route", "show", "table", "all"],
        )?;
        taken.extend(
            routes
                .iter()
                .filter_map(|r| r["dst"].as_str())
                .filter(|d| *d != "default")
                .filter_map(|d| prefix(d, v4)),
        );
    }
    (0..SLOTS)
        .find(|&s| {
            let m = Mgmt::slot(s);
            let mine = [
                prefix(&format!("{}/30", m.host_v4), true),
                prefix(&format!("{}/64", m.host_v6), false),
            ];
            !mine
                .into_iter()
                .flatten()
                .any(|p| taken.iter().any(|&t| overlaps(p, t)))
        })
        .ok_or(LabError::NoFreeSlot)
}

impl Lab {
    /// Brings the lab up: nothing to do if it is up already (a device asked for is started if
    /// it is not running); otherwise removes what is left of it and builds it whole.
    pub fn up(spec: &LabSpec) -> Result<UpReport, LabError> {
        require_root()?;
        let t0 = Instant::now();
        let name = &spec.name;
        let lock = build_lock()?;
        let now = status::read(name)?;
        let (built, repaired, mgmt) = match (now.state, now.mgmt) {
            (LabState::Up, Some(m)) => (false, Vec::new(), m),
            (state, _) => {
                let repaired = if state == LabState::Partial || now.anything_exists() {
                    Self::down_unlocked(name)?.removed
                } else {
                    Vec::new()
                };
                let mgmt = Mgmt::slot(free_slot()?);
                Self::build(&Plan::new(name.clone(), mgmt.slot))?;
                (true, repaired, mgmt)
            }
        };
        drop(lock);
        if built {
            let check = status::read(name)?;
            if check.state != LabState::Up {
                return Err(LabError::Incomplete(check.missing.join(", ")));
            }
        }
        let device = match &spec.device {
            None => None,
            Some(d) => {
                let st = status::read(name)?;
                match (&st.device.pids[..], st.device.url, st.device.state_dir) {
                    ([pid, ..], Some(url), Some(state_dir)) if !built => Some(DeviceInfo {
                        pid: st.device.pid_file.unwrap_or(*pid),
                        url,
                        cert: state_dir.join("tls/device-cert.pem"),
                        state_dir,
                        log: rundir::log_file(name),
                        label_password: None,
                        started: false,
                    }),
                    _ => Some(device::start(name, &mgmt, d)?),
                }
            }
        };
        Ok(UpReport {
            name: name.clone(),
            built,
            repaired,
            mgmt,
            device,
            elapsed_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    fn build(plan: &Plan) -> Result<(), LabError> {
        let name = &plan.name;
        rundir::create(name)?;
        rundir::save_lab(
            name,
            &rundir::Saved {
                mgmt: plan.mgmt,
                device: None,
            },
        )?;
        ip::batch(None, &plan.root_batch())?;
        for (role, ns) in plan.namespaces() {
            ip::batch(Some(&ns), &plan.ns_batch(role))?;
        }
        let gw = name.netns(Role::Gw);
        ip::exec(
            &format!("enable forwarding in {gw}"),
            &gw,
            &[
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        )?;
        Ok(())
    }

    /// Removes everything of the lab `name`: its processes (the device first, SIGTERM then
    /// SIGKILL), its namespaces (and with them every veth and the bridge), the host's end of the
    /// management link, and its run directory. Nothing else; idempotent.
    pub fn down(name: &LabName) -> Result<DownReport, LabError> {
        require_root()?;
        Self::down_unlocked(name)
    }

    fn down_unlocked(name: &LabName) -> Result<DownReport, LabError> {
        let existing = ip::netns_list()?;
        let ours: Vec<String> = Role::ALL
            .iter()
            .map(|&r| name.netns(r))
            .filter(|n| existing.contains(n))
            .collect();
        let mut removed = device::stop_all(name, &ours)?;
        for ns in &ours {
            ip::run(
                &format!("delete namespace {ns}"),
                None,
                &["netns", "delete", ns],
            )?;
            removed.push(format!("namespace {ns}"));
        }
        // Deleting the gateway's namespace takes the management veth with it, unless the
        // gateway's end never got there (a crash mid-up). The kernel tears a deleted namespace
        // down asynchronously, so the host's end is usually still listed here and may vanish
        // between the look and the delete: gone either way is what counts.
        let host_if = name.host_if();
        let present = || {
            ip::run(
                "look for the management link",
                None,
                &["link", "show", "dev", &host_if],
            )
            .is_ok()
        };
        if present() {
            match ip::run(
                &format!("delete {host_if}"),
                None,
                &["link", "delete", "dev", &host_if],
            ) {
                Ok(_) => removed.push(format!("link {host_if}")),
                Err(e) if present() => return Err(e),
                Err(_) => {}
            }
        }
        if rundir::remove(name)? {
            removed.push(format!("run directory {}", rundir::dir(name).display()));
        }
        Ok(DownReport {
            name: name.clone(),
            removed,
        })
    }

    /// The lab's status: namespaces, links with their state and addresses, forwarding, the
    /// device; and what is missing compared with the plan.
    pub fn status(name: &LabName) -> Result<LabStatus, LabError> {
        require_root()?;
        status::read(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_overlapping_a_host_route_is_taken() {
        let p = |s, v4| prefix(s, v4).unwrap();
        let slot1 = p("198.51.100.4/30", true);
        assert!(overlaps(slot1, p("198.51.100.0/24", true)));
        assert!(overlaps(slot1, p("198.51.100.6", true)));
        assert!(overlaps(slot1, p("198.0.0.0/8", true)));
        assert!(!overlaps(slot1, p("198.51.100.8/30", true)));
        assert!(!overlaps(slot1, p("192.0.2.0/24", true)));
        let v6 = p("fd6d:616d:6f72:ff01::1/64", false);
        assert!(overlaps(v6, p("fd6d:616d:6f72::/48", false)));
        assert!(!overlaps(v6, p("fd00::/64", false)));
        assert!(!overlaps(v6, p("ff00::/8", false)));
        // An IPv4 prefix never meets an IPv6 one of ordinary ranges.
        assert!(!overlaps(p("0.0.0.0/1", true), v6));
    }
}
