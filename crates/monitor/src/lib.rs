//! System-event monitors: they watch the kernel and record what they see as audit events
//! (JC-STAR ★3 S3.1-35 R1 A, F, G and H).
//!
//! | module | watches | records | capability |
//! |---|---|---|---|
//! | [`links`] | rtnetlink `RTNLGRP_LINK`, `RTNLGRP_IPV4_ROUTE`, `RTNLGRP_IPV6_ROUTE` | `link_down`, `link_up`, `link_events_suppressed`, `upstream_lost`, `upstream_restored` | none |
//! | [`interfaces`] | rtnetlink `RTNLGRP_LINK` | `interface_added`, `interface_removed` | none |
//! | [`usb`] | `NETLINK_KOBJECT_UEVENT` group 1 | `usb_device_added`, `usb_device_removed` | none |
//! | [`firewall`] | `NETLINK_NETFILTER` `NFNLGRP_NFTABLES` | `firewall_ruleset_changed` | CAP_NET_ADMIN to open |
//! | [`drops`] | nfnetlink_log, the drop-log group | `firewall_dropped` (one summary per interval) | CAP_NET_ADMIN to open |
//! | [`software`] | the running executable, once at start | `software_changed` | read `/proc/self/exe`, write the state dir |
//!
//! Every monitor also records `monitor_events_missed` when the kernel dropped notifications
//! (receive buffer overrun: it then reads the state again and records the differences) and
//! `monitor_failed` when its socket fails (it reopens it with a backoff of 1 s doubling to 60 s).
//!
//! **What it does not do.** It changes nothing in the kernel (every socket only listens, and the
//! only requests sent are dumps of links and routes, the nftables generation, and the drop
//! summary's binding of its nflog group, which only makes this process the group's listener).
//! It records no packet contents, no rule contents and no set elements; the drop summary reads
//! the first bytes of logged packets (their headers) and keeps only counts, the source
//! addresses and the destination ports. It records no event for the state
//! found at start (that is the baseline), except the software check, whose point is the
//! comparison with the previous start.
//!
//! **Threads.** One thread per socket (see `worker.rs` for why not tokio). Opening and starting
//! are separate steps ([`Monitors::open`], [`Prepared::start`]), so sockets can be opened before
//! a process is confined (seccomp forbids `socket` in the management process) or by a more
//! privileged process, and run afterwards.
//!
//! **Security properties.** Only datagrams from the kernel (netlink port 0) are read; the
//! uevent parser refuses udev re-broadcasts and anything that is not the kernel's format; the
//! amount recorded is bounded (flap damping per interface, one firewall record per generation
//! with names capped, one drop summary per interval with its counts capped, overrun records at
//! most every 10 s per monitor), so a flapping port, a ruleset storm or a flood of dropped
//! packets cannot flood the audit log. No `unsafe` here: the system calls are in
//! `netlink-sys` and `nix`.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mamori_audit::{Event, EventKind, Outcome, Sink};
use serde::Serialize;
use serde_json::json;

pub mod drops;
pub mod firewall;
pub mod interfaces;
pub mod links;
pub mod software;
pub mod uevent;
pub mod usb;

mod nflog;
mod nl;
mod rtnl;
mod worker;

pub use drops::DropConfig;
pub use firewall::{FirewallConfig, OwnLoads};
pub use interfaces::InterfaceConfig;
pub use links::LinkConfig;
pub use software::{SoftwareCheck, SoftwareConfig, SoftwareError};
pub use usb::UsbConfig;

use nl::NlSocket;
use worker::{Out, Watch};

/// The receive buffer each monitor asks for by default (1 MiB; granted in full when the process
/// may use `SO_RCVBUFFORCE`, else capped at `net.core.rmem_max`).
pub const DEFAULT_RECEIVE_BUFFER: usize = 1024 * 1024;

/// Which monitors to run and how. `None` leaves a monitor off.
#[derive(Debug, Clone)]
pub struct Config {
    /// Link and upstream monitor.
    pub links: Option<LinkConfig>,
    /// Network interface monitor.
    pub interfaces: Option<InterfaceConfig>,
    /// USB device monitor.
    pub usb: Option<UsbConfig>,
    /// Firewall ruleset monitor (needs CAP_NET_ADMIN to open).
    pub firewall: Option<FirewallConfig>,
    /// Drop summary: the nflog group of the firewall's drop logs (needs CAP_NET_ADMIN to open).
    /// Off in [`Config::all`]: the group comes from the network configuration, and a device
    /// whose firewall mamori does not manage has no drop logs of mamori's to listen to.
    pub drops: Option<DropConfig>,
    /// Software check at start.
    pub software: Option<SoftwareConfig>,
}

impl Config {
    /// Every monitor with its defaults except the drop summary (see [`Config::drops`]), and
    /// the software check with `software`.
    pub fn all(software: Option<SoftwareConfig>) -> Self {
        Self {
            links: Some(LinkConfig::default()),
            interfaces: Some(InterfaceConfig::default()),
            usb: Some(UsbConfig::default()),
            firewall: Some(FirewallConfig::default()),
            drops: None,
            software,
        }
    }

    /// These monitors and the drop summary on nflog `group` (the running network
    /// configuration's `protection.drop_log.group`; 1 when drop logging is off, where rule
    /// logs still go).
    pub fn with_drops(mut self, group: u16) -> Self {
        self.drops = Some(DropConfig::new(group));
        self
    }
}

/// What one monitor is doing, for the status API and the tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorStatus {
    /// `links`, `interfaces`, `usb`, `firewall`, `drops` or `software`.
    pub name: &'static str,
    /// Its thread runs and its socket is open.
    pub running: bool,
    /// It has read the state it starts from; changes from now on are recorded.
    pub ready: bool,
    /// The last error (open, receive or check), if any.
    pub last_error: Option<String>,
    /// The receive buffer the kernel granted, in bytes.
    pub receive_buffer: usize,
    /// Netlink messages handled.
    pub messages: u64,
    /// Audit events recorded.
    pub events: u64,
    /// Receive-buffer overruns (each followed by a resync).
    pub overruns: u64,
    /// Messages that did not parse.
    pub malformed: u64,
    /// Datagrams ignored because they did not come from the kernel.
    pub ignored: u64,
    /// Debug counters: messages seen per kind (uevent subsystem, nftables message type).
    pub seen: std::collections::BTreeMap<String, u64>,
}

/// Monitors whose sockets are open but whose threads have not started.
pub struct Prepared {
    items: Vec<(Box<dyn Watch>, NlSocket)>,
    /// Monitors that could not open, with the error.
    failed: Vec<(&'static str, String)>,
    software: Option<SoftwareConfig>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field(
                "monitors",
                &self.items.iter().map(|(w, _)| w.name()).collect::<Vec<_>>(),
            )
            .field("failed", &self.failed)
            .finish()
    }
}

impl Prepared {
    fn one(watch: Box<dyn Watch>, sock: NlSocket) -> Self {
        Self {
            items: vec![(watch, sock)],
            failed: Vec::new(),
            software: None,
        }
    }

    /// Adds the monitors of `other`.
    pub fn merge(mut self, other: Prepared) -> Self {
        self.items.extend(other.items);
        self.failed.extend(other.failed);
        self.software = self.software.or(other.software);
        self
    }

    /// Monitors that could not open, with the error.
    pub fn failed(&self) -> &[(&'static str, String)] {
        &self.failed
    }

    /// Runs the software check (if configured), records a `monitor_failed` event for each
    /// monitor that could not open, and starts one thread per open socket.
    pub fn start(self, sink: Arc<dyn Sink>) -> MonitorHandle {
        let mut handle = MonitorHandle {
            workers: Vec::new(),
            stop: Vec::new(),
            software: None,
        };
        if let Some(cfg) = &self.software {
            let status = Arc::new(Mutex::new(MonitorStatus {
                name: "software",
                ..MonitorStatus::default()
            }));
            match software::check(cfg, &sink) {
                Ok(result) => {
                    if let Ok(mut s) = status.lock() {
                        s.ready = true;
                        s.events = u64::from(matches!(result, SoftwareCheck::Changed { .. }));
                    }
                    handle.software = Some(result);
                }
                Err(e) => {
                    tracing::error!(error = %e, "software check failed");
                    if let Ok(mut s) = status.lock() {
                        s.last_error = Some(e.to_string());
                    }
                    sink.record(
                        Event::new(EventKind::MonitorFailed, Outcome::Failure).details(json!({
                            "monitor": "software",
                            "error": e.to_string(),
                        })),
                    );
                }
            }
            handle.workers.push(Worker {
                status,
                thread: None,
            });
        }
        for (name, error) in self.failed {
            tracing::error!(monitor = name, error = %error, "monitor could not start");
            sink.record(
                Event::new(EventKind::MonitorFailed, Outcome::Failure).details(json!({
                    "monitor": name,
                    "error": error,
                })),
            );
            handle.workers.push(Worker {
                status: Arc::new(Mutex::new(MonitorStatus {
                    name,
                    last_error: Some(error),
                    ..MonitorStatus::default()
                })),
                thread: None,
            });
        }
        if self.items.is_empty() {
            return handle;
        }
        let (read, write) = match nix::unistd::pipe() {
            Ok(p) => p,
            Err(e) => {
                // No stop pipe, no threads: report every monitor as failed.
                for (w, _) in self.items {
                    let error = format!("stop pipe: {e}");
                    sink.record(
                        Event::new(EventKind::MonitorFailed, Outcome::Failure)
                            .details(json!({ "monitor": w.name(), "error": error })),
                    );
                    handle.workers.push(Worker {
                        status: Arc::new(Mutex::new(MonitorStatus {
                            name: w.name(),
                            last_error: Some(error),
                            ..MonitorStatus::default()
                        })),
                        thread: None,
                    });
                }
                return handle;
            }
        };
        let read = Arc::new(read);
        handle.stop.push(write);
        for (watch, sock) in self.items {
            let name = watch.name();
            let status = Arc::new(Mutex::new(MonitorStatus {
                name,
                receive_buffer: sock.receive_buffer(),
                ..MonitorStatus::default()
            }));
            let out = Out::new(sink.clone(), status.clone());
            let stop = read.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("mon-{name}"))
                .spawn(move || worker::run(watch, sock, out, stop));
            let thread = match spawned {
                Ok(t) => Some(t),
                Err(e) => {
                    if let Ok(mut s) = status.lock() {
                        s.last_error = Some(format!("thread: {e}"));
                    }
                    None
                }
            };
            handle.workers.push(Worker { status, thread });
        }
        handle
    }
}

/// Entry point for the daemon: all configured monitors at once.
#[derive(Debug)]
pub struct Monitors;

impl Monitors {
    /// Opens the socket of every configured monitor. A monitor that cannot open is listed in
    /// [`Prepared::failed`] and recorded as `monitor_failed` by [`Prepared::start`]; the others
    /// still run.
    pub fn open(config: Config) -> Prepared {
        let mut p = Prepared {
            items: Vec::new(),
            failed: Vec::new(),
            software: config.software,
        };
        let mut add = |name: &'static str, r: std::io::Result<Prepared>| match r {
            Ok(o) => p.items.extend(o.items),
            Err(e) => p.failed.push((name, e.to_string())),
        };
        if let Some(c) = config.links {
            add("links", links::open(c));
        }
        if let Some(c) = config.interfaces {
            add("interfaces", interfaces::open(c));
        }
        if let Some(c) = config.usb {
            add("usb", usb::open(c));
        }
        if let Some(c) = config.firewall {
            add("firewall", firewall::open(c));
        }
        if let Some(c) = config.drops {
            add("drops", drops::open(c));
        }
        p
    }

    /// Opens and starts every configured monitor (see [`Monitors::open`], [`Prepared::start`]).
    pub fn start(config: Config, sink: Arc<dyn Sink>) -> MonitorHandle {
        Self::open(config).start(sink)
    }
}

struct Worker {
    status: Arc<Mutex<MonitorStatus>>,
    thread: Option<JoinHandle<()>>,
}

/// Running monitors. Dropping it stops them, as [`MonitorHandle::stop`] does.
pub struct MonitorHandle {
    workers: Vec<Worker>,
    /// Write ends of the stop pipes; closing them wakes every worker.
    stop: Vec<OwnedFd>,
    software: Option<SoftwareCheck>,
}

impl std::fmt::Debug for MonitorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorHandle")
            .field("status", &self.status())
            .finish()
    }
}

impl MonitorHandle {
    /// The status of every monitor, in start order.
    pub fn status(&self) -> Vec<MonitorStatus> {
        self.workers
            .iter()
            .filter_map(|w| w.status.lock().ok().map(|s| s.clone()))
            .collect()
    }

    /// The status of the monitor called `name`.
    pub fn monitor(&self, name: &str) -> Option<MonitorStatus> {
        self.status().into_iter().find(|s| s.name == name)
    }

    /// The result of the software check, if it ran and succeeded.
    pub fn software(&self) -> Option<&SoftwareCheck> {
        self.software.as_ref()
    }

    /// Waits until every running monitor has read its starting state; returns whether they all
    /// did within `timeout`.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let all = self
                .workers
                .iter()
                .all(|w| w.thread.is_none() || w.status.lock().map(|s| s.ready).unwrap_or(false));
            if all {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Adds the monitors of `other` to this handle.
    pub fn merge(&mut self, mut other: MonitorHandle) {
        self.workers.append(&mut other.workers);
        self.stop.append(&mut other.stop);
        self.software = self.software.take().or(other.software.take());
    }

    /// Stops every monitor and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.clear(); // closing the write ends wakes every poll
        for w in &mut self.workers {
            if let Some(t) = w.thread.take()
                && t.join().is_err()
            {
                tracing::error!("a monitor thread panicked");
            }
        }
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
