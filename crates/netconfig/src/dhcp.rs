//! The DHCP client on wan interfaces: one `dhcpcd` per interface with `dhcp: true`, started,
//! supervised and stopped by the privileged parent ([`DhcpClients`]).
//!
//! # How each client runs
//!
//! ```text
//! /usr/bin/env --default-signal -- [ip netns exec NS] /usr/sbin/dhcpcd --nobackground \
//!     --config STATE/dhcp/IF/dhcpcd.conf -- IF
//! ```
//!
//! - **In the foreground, as our child**: its pid is known without trusting a pid file, and its
//!   log (standard error) comes to us: every line goes to `tracing` (target `mamori::dhcp`), the
//!   last [`LOG_TAIL`] lines are kept for error messages.
//! - **One interface**: dhcpcd's per-interface mode, and `allowinterfaces IF` in its
//!   configuration, so it never touches another interface.
//! - **The configuration is rendered whole** ([`render`]) into `STATE/dhcp/IF/dhcpcd.conf`
//!   (root, 0600), like `chrony.conf`. The only value from the network configuration in it is
//!   the interface name, an [`IfName`] (`[A-Za-z0-9._-]{1,15}`: no space, quote, `#` or
//!   newline can reach the file). `--` ends dhcpcd's options, so a name starting with `-` is
//!   still a name.
//! - **No hook script** (`script ""`): dhcpcd itself adds the lease's address (with the lease's
//!   lifetimes) and routes (route protocol `dhcp`, not mamori's 109, so the applier leaves them
//!   alone) through its privileged proxy, and changes nothing else: no `resolv.conf`, host name,
//!   NTP or time zone.
//! - **Least privilege**: dhcpcd's own privilege separation (Debian's `dhcpcd-base` creates its
//!   `dhcpcd` user): the master and the processes that parse packets run as `dhcpcd`, chrooted;
//!   only the privileged proxy, which changes addresses and routes, stays root.
//! - **A mount namespace of its own**, in which `STATE/dhcp/IF/lib` is `/var/lib/dhcpcd` and
//!   `STATE/dhcp/IF/run` is `/run/dhcpcd` (dhcpcd's paths are compiled in). Its lease, pid file
//!   and control sockets live under the state directory (root, 0700), and two clients for
//!   interfaces of the same name in different network namespaces (labs, tests) do not find each
//!   other's pid file. The namespace is made by the thread that starts dhcpcd
//!   (`unshare(CLONE_NEWNS)` acts on the calling thread only), never by the parent's main
//!   thread.
//! - **Signals as from init**: the parent blocks SIGTERM, SIGINT and SIGCHLD to read them from a
//!   signalfd; the mask survives `execve` (std's `Command` does not reset it): a dhcpcd started
//!   with it ignores SIGTERM, and SIGCHLD (a helper exited) stays blocked too.
//!   [`mamori_spawn::with_default_signals`] (coreutils' `env --default-signal`) unblocks every
//!   signal and resets its handler before dhcpcd is executed.
//! - **Its own process group**: dhcpcd's helpers (the root privileged proxy, the BPF and network
//!   proxies) outlive a master that was killed; the group goes with it.
//!
//! # Stopping
//!
//! - DHCP turned off on an interface, or the interface gone from the configuration: SIGALRM,
//!   which makes dhcpcd release the lease (DHCPRELEASE), remove the address and routes, and exit.
//!   A dhcpcd that had not bound its lease yet (just started again, the server unreachable)
//!   releases nothing; what is left, the interface's dynamic IPv4 addresses and its
//!   protocol-`dhcp` routes, is then removed here.
//! - The rendered configuration changed: SIGTERM (the configuration says `persistent`, so the
//!   address and routes stay), then a new dhcpcd, which rebinds the same lease.
//! - The parent stops ([`DhcpClients::stop_all`], also when the keeper is dropped): SIGTERM.
//!   The address and routes stay, so the uplink keeps working while mamorid restarts, and the
//!   kernel removes the address when the lease's lifetime ends if nobody renewed it.
//!
//! A dhcpcd that has not exited [`STOP_GRACE`] after the signal is killed; whatever is left of
//! its process group then gets SIGKILL.
//!
//! # Supervision
//!
//! A thread looks at the clients every [`TICK`]: a dhcpcd that exited on its own (a crash, a
//! `kill -9`) is started again after [`RESTART_MIN`], doubling to [`RESTART_MAX`] while it
//! keeps dying, back to the minimum once one ran for [`RESTART_MAX`] (the parent's backoff for
//! the management process). A start that fails waits the same way. Every start and stop is
//! logged with target `mamori::privsep` and `audit = true`, like the parent's operations.
//!
//! # Status
//!
//! [`DhcpClients::status`] says per interface whether dhcpcd runs and what it holds
//! ([`DhcpStatus`], [`DhcpState`]): the lease is read from dhcpcd's own lease file
//! (`STATE/dhcp/IF/lib/IF.lease`, [`crate::lease`]), and counts as bound only while it has not
//! run out and the kernel holds its address on the interface. A lease file that does not parse
//! makes the state `failed` with the reason; it never stops the client.
//!
//! # What this does not do
//!
//! No DHCPv6 and no router advertisements on wan (`ipv4only`): the model's `dhcp` is IPv4, the
//! ruleset opens only DHCPv4 replies, and an IPv6 uplink needs prefix delegation to the lans,
//! which mamori does not do yet. Nothing from the lease other than the address and the routes
//! is used (no DNS servers, host name, NTP servers or MTU); the DNS servers are asked for only
//! so that administrators see them in the status.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::lease::{self, Lease};
use crate::model::NetworkConfig;
use crate::names::IfName;

/// The directory under the state directory that holds the clients' files (root, 0700).
pub const DHCP_DIR: &str = "dhcp";
/// Debian's dhcpcd (package `dhcpcd-base`).
pub const DHCPCD: &str = "/usr/sbin/dhcpcd";
/// dhcpcd's compiled-in database directory (leases), replaced in its mount namespace.
const DHCPCD_DB_DIR: &str = "/var/lib/dhcpcd";
/// dhcpcd's compiled-in run directory (pid file, control sockets), replaced likewise.
const DHCPCD_RUN_DIR: &str = "/run/dhcpcd";
/// The first wait before a client that exited is started again.
pub const RESTART_MIN: Duration = Duration::from_secs(1);
/// The longest wait between restarts; a client that ran this long was healthy.
pub const RESTART_MAX: Duration = Duration::from_secs(60);
/// How long dhcpcd may take to exit after the signal before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the supervisor looks at the clients.
pub const TICK: Duration = Duration::from_millis(500);
/// How many of dhcpcd's last log lines are kept.
pub const LOG_TAIL: usize = 20;
/// The longest log line kept (bytes).
const MAX_LINE: usize = 256;
/// The longest error text in a status (bytes).
pub const MAX_ERROR: usize = 512;

/// dhcpcd's configuration for one interface: the whole file, the same bytes for the same name.
pub fn render(interface: &IfName) -> String {
    let name = interface.as_str();
    format!(
        "\
# dhcpcd.conf for {name}: written whole by mamori's privileged parent from the network
# configuration, replaced on every change; do not edit.
# This interface only; IPv4 only (no DHCPv6, no router solicitations, no IPv4 link-local).
allowinterfaces {name}
ipv4only
noipv4ll
# No hook script: dhcpcd sets the lease's address and routes itself and changes nothing else
# (no resolv.conf, host name, NTP servers or time zone).
script \"\"
nodev
# Wait for a lease however long it takes (one interface's dhcpcd would exit after 30 s).
timeout 0
# Keep the address and routes when dhcpcd stops (mamorid restarting); the kernel removes the
# address when the lease runs out. Turning DHCP off releases the lease.
persistent
# Identify by the interface's MAC address; send no vendor class (dhcpcd's version) and no
# host name.
clientid
vendorclassid
# Accept only answers that name their server (RFC 2131).
require dhcp_server_identifier
# Routes the server hands out besides the default route (RFC 3442).
option classless_static_routes
# DNS servers: asked for only to show them to administrators; nothing uses them.
option domain_name_servers
"
    )
}

/// How to run the clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOptions {
    /// The dhcpcd binary.
    pub dhcpcd: PathBuf,
    /// `STATE/dhcp`: one directory per interface beneath it.
    pub dir: PathBuf,
    /// The first wait before a restart ([`RESTART_MIN`]; tests use less).
    pub restart_min: Duration,
    /// The longest wait between restarts ([`RESTART_MAX`]).
    pub restart_max: Duration,
}

impl DhcpOptions {
    /// The device: Debian's dhcpcd and env, files under `STATE/dhcp`.
    pub fn for_device(state_dir: &Path) -> Self {
        Self {
            dhcpcd: DHCPCD.into(),
            dir: state_dir.join(DHCP_DIR),
            restart_min: RESTART_MIN,
            restart_max: RESTART_MAX,
        }
    }
}

/// What one client is doing, in a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DhcpState {
    /// dhcpcd runs and holds a lease that has not run out, whose address the kernel holds on
    /// the interface.
    Bound,
    /// dhcpcd could not be started (its last try failed; it is tried again with backoff), or
    /// its lease file does not parse ([`DhcpStatus::lease_error`]).
    Failed,
    /// dhcpcd runs and has no usable lease yet: asking a server for one, or for the old one
    /// again after a restart or when it ran out.
    Requesting,
    /// dhcpcd does not run: it exited and waits to be started again (with backoff), or no
    /// client runs for the interface at all (the management process says so when the running
    /// configuration names one the parent does not run).
    Stopped,
}

impl DhcpState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bound => "bound",
            Self::Failed => "failed",
            Self::Requesting => "requesting",
            Self::Stopped => "stopped",
        }
    }
}

/// One client as [`DhcpClients::status`] sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpStatus {
    /// The interface.
    pub interface: IfName,
    /// Bound, requesting, failed or stopped.
    pub state: DhcpState,
    /// dhcpcd runs.
    pub running: bool,
    /// Its process id, while it runs.
    pub pid: Option<u32>,
    /// The address the lease gave, as the kernel holds it (dhcpcd adds it with the lease's
    /// lifetimes, so it is the interface's dynamic IPv4 address); `None` before a lease or when
    /// it could not be read.
    pub address: Option<IpNet>,
    /// How often it exited on its own and was started again.
    pub restarts: u32,
    /// Why it does not run, or why it last exited (with the end of its log), at most
    /// [`MAX_ERROR`] bytes.
    pub error: Option<String>,
    /// The lease in dhcpcd's lease file (also one that ran out or whose address the kernel no
    /// longer holds; [`DhcpStatus::state`] says whether it is bound).
    pub lease: Option<Lease>,
    /// Why the lease file could not be read or is not a lease, at most [`MAX_ERROR`] bytes.
    pub lease_error: Option<String>,
}

/// The state of a client from what is known of it: whether dhcpcd runs (and if not, whether its
/// last start failed), its lease file, and the dynamic address the kernel holds on the
/// interface, at `now_unix`.
pub fn state_of(
    running: bool,
    start_failed: bool,
    lease: &Result<Option<Lease>, lease::LeaseError>,
    kernel: Option<IpNet>,
    now_unix: i64,
) -> DhcpState {
    match (running, lease) {
        (false, _) if start_failed => DhcpState::Failed,
        (false, _) => DhcpState::Stopped,
        (true, Err(_)) => DhcpState::Failed,
        (true, Ok(Some(l))) if !l.expired(now_unix) && kernel == Some(IpNet::V4(l.address)) => {
            DhcpState::Bound
        }
        (true, Ok(_)) => DhcpState::Requesting,
    }
}

/// The DHCP clients of one network namespace, kept in line with the network configuration.
/// Dropping it stops them ([`DhcpClients::stop_all`]).
#[derive(Debug)]
pub struct DhcpClients {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug)]
struct State {
    options: DhcpOptions,
    clients: BTreeMap<IfName, Client>,
    shutdown: bool,
}

#[derive(Debug)]
struct Client {
    netns: Option<String>,
    config: String,
    phase: Phase,
    restarts: u32,
    backoff: Backoff,
    error: Option<String>,
    /// The last start failed (not: dhcpcd exited after running).
    start_failed: bool,
}

#[derive(Debug)]
enum Phase {
    Running(Process),
    /// Not running; started again at this instant.
    Waiting(Instant),
}

/// A running dhcpcd: our child, the leader of its own process group.
#[derive(Debug)]
struct Process {
    child: Child,
    started: Instant,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// How a client is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGALRM: release the lease, remove the address and routes.
    Release,
    /// SIGTERM: keep the address and routes (`persistent`).
    Keep,
}

impl Stop {
    fn signal(self) -> Signal {
        match self {
            Self::Release => Signal::SIGALRM,
            Self::Keep => Signal::SIGTERM,
        }
    }
}

impl DhcpClients {
    /// A keeper with explicit options. Nothing runs until [`DhcpClients::reconcile`].
    pub fn new(options: DhcpOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    options,
                    clients: BTreeMap::new(),
                    shutdown: false,
                }),
                wake: Condvar::new(),
            }),
            supervisor: Mutex::new(None),
        }
    }

    /// The device's keeper ([`DhcpOptions::for_device`]).
    pub fn for_device(state_dir: &Path) -> Self {
        Self::new(DhcpOptions::for_device(state_dir))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding it left the clients as they were; carry on with them.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `cfg` in force in network namespace `netns` (`None`: this process's): a client for
    /// every interface with `dhcp: true` that has none, a restart for one whose configuration
    /// (or namespace) changed, a release and stop for every other. Answers the status after.
    pub fn reconcile(&self, cfg: &NetworkConfig, netns: Option<&str>) -> Vec<DhcpStatus> {
        let wanted: BTreeMap<IfName, String> = cfg
            .interfaces
            .iter()
            .filter(|i| i.dhcp)
            .map(|i| (i.name.clone(), render(&i.name)))
            .collect();
        let mut state = self.state();
        state.shutdown = false;
        let gone: Vec<IfName> = state
            .clients
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(client) = state.clients.remove(&name) {
                client.stop(&name, Stop::Release, "dhcp turned off");
            }
        }
        for (name, config) in wanted {
            let netns = netns.map(str::to_owned);
            if let Some(client) = state.clients.get(&name)
                && client.config == config
                && client.netns == netns
            {
                continue;
            }
            if let Some(old) = state.clients.remove(&name) {
                old.stop(&name, Stop::Keep, "configuration changed");
            }
            let options = state.options.clone();
            let mut client = Client {
                netns,
                config,
                phase: Phase::Waiting(Instant::now()),
                restarts: 0,
                backoff: Backoff::new(options.restart_min, options.restart_max),
                error: None,
                start_failed: false,
            };
            client.start(&name, &options, "configured");
            state.clients.insert(name, client);
        }
        let any = !state.clients.is_empty();
        let status = state.status();
        drop(state);
        if any {
            self.ensure_supervisor();
        }
        self.shared.wake.notify_all();
        status
    }

    /// The clients now.
    pub fn status(&self) -> Vec<DhcpStatus> {
        self.state().status()
    }

    /// The process groups of the dhcpcds that run: each is led by the dhcpcd this keeper
    /// started (its pid), and holds that dhcpcd's helper processes. The port inventory
    /// attributes the sockets of these groups' `dhcpcd` processes to the DHCP client.
    pub fn process_groups(&self) -> Vec<u32> {
        self.state()
            .clients
            .values()
            .filter_map(|c| match &c.phase {
                Phase::Running(p) => Some(p.child.id()),
                Phase::Waiting(_) => None,
            })
            .collect()
    }

    /// Stops every client, keeping their addresses and routes (SIGTERM; the leases run out on
    /// their own), and the supervisor. [`DhcpClients::reconcile`] starts them again.
    pub fn stop_all(&self) {
        let mut state = self.state();
        state.shutdown = true;
        let clients = std::mem::take(&mut state.clients);
        drop(state);
        self.shared.wake.notify_all();
        for (name, client) in clients {
            client.stop(&name, Stop::Keep, "mamorid stopping");
        }
        let handle = self
            .supervisor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    fn ensure_supervisor(&self) {
        let mut slot = self
            .supervisor
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Some(old) = slot.take() {
            let _ = old.join();
        }
        let shared = Arc::clone(&self.shared);
        match std::thread::Builder::new()
            .name("dhcp-supervisor".into())
            .spawn(move || supervise(&shared))
        {
            Ok(h) => *slot = Some(h),
            Err(e) => {
                tracing::error!(target: "mamori::privsep", error = %e, "the DHCP supervisor thread could not start");
            }
        }
    }
}

impl Drop for DhcpClients {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The supervisor: restarts clients that exited, with backoff, until shut down.
fn supervise(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if state.shutdown {
            return;
        }
        let options = state.options.clone();
        for (name, client) in &mut state.clients {
            client.tick(name, &options);
        }
        let wait = if state.clients.is_empty() {
            Duration::from_secs(3600)
        } else {
            TICK
        };
        state = shared
            .wake
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

impl State {
    fn status(&self) -> Vec<DhcpStatus> {
        self.clients
            .iter()
            .map(|(name, c)| {
                let (running, pid) = match &c.phase {
                    Phase::Running(p) => (true, Some(p.child.id())),
                    Phase::Waiting(_) => (false, None),
                };
                let address = lease_address(name, c.netns.as_deref());
                let dirs = ClientDirs::new(&self.options, name);
                let lease = lease::read(&lease::lease_file(&dirs.lib, name.as_str()));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                let state = state_of(running, c.start_failed, &lease, address, now);
                let (lease, lease_error) = match lease {
                    Ok(l) => (l, None),
                    Err(e) => (None, Some(shorten(&e.to_string()))),
                };
                DhcpStatus {
                    interface: name.clone(),
                    state,
                    running,
                    pid,
                    address,
                    restarts: c.restarts,
                    error: c.error.clone(),
                    lease,
                    lease_error,
                }
            })
            .collect()
    }
}

impl Client {
    /// Starts dhcpcd; on failure notes why and waits for the next try.
    fn start(&mut self, name: &IfName, options: &DhcpOptions, why: &str) {
        match spawn(name, self.netns.as_deref(), &self.config, options) {
            Ok(p) => {
                tracing::warn!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "DhcpClient",
                    interface = %name.as_str(),
                    pid = p.child.id(),
                    restarts = self.restarts,
                    reason = why,
                    "dhcp client started"
                );
                self.phase = Phase::Running(p);
                self.start_failed = false;
            }
            Err(e) => {
                let delay = self.backoff.next_delay(Duration::ZERO);
                tracing::error!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "DhcpClient",
                    interface = %name.as_str(),
                    error = %e,
                    retry_secs = delay.as_secs_f32(),
                    "dhcp client could not start"
                );
                self.error = Some(shorten(&format!("dhcpcd could not start: {e}")));
                self.phase = Phase::Waiting(Instant::now() + delay);
                self.start_failed = true;
            }
        }
    }

    /// One look from the supervisor.
    fn tick(&mut self, name: &IfName, options: &DhcpOptions) {
        match &mut self.phase {
            Phase::Running(p) => {
                let Some(status) = p.exited() else { return };
                let uptime = p.started.elapsed();
                let detail = shorten(&format!("dhcpcd exited ({status}):\n{}", p.tail()));
                let delay = self.backoff.next_delay(uptime);
                tracing::warn!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "DhcpClient",
                    interface = %name.as_str(),
                    %status,
                    uptime_secs = uptime.as_secs(),
                    restart_in_secs = delay.as_secs_f32(),
                    "dhcp client exited"
                );
                self.error = Some(detail);
                self.phase = Phase::Waiting(Instant::now() + delay);
            }
            Phase::Waiting(at) => {
                if Instant::now() < *at {
                    return;
                }
                self.restarts = self.restarts.saturating_add(1);
                self.start(name, options, "restart after an exit");
            }
        }
    }

    /// Stops dhcpcd (if it runs) the way `how` says.
    fn stop(mut self, name: &IfName, how: Stop, why: &str) {
        match std::mem::replace(&mut self.phase, Phase::Waiting(Instant::now())) {
            Phase::Running(p) => {
                let pid = p.child.id();
                let status = p.stop(how);
                tracing::warn!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "DhcpClient",
                    interface = %name.as_str(),
                    pid,
                    release = how == Stop::Release,
                    status = ?status.map(|s| s.to_string()),
                    reason = why,
                    "dhcp client stopped"
                );
            }
            Phase::Waiting(_) => {
                tracing::warn!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "DhcpClient",
                    interface = %name.as_str(),
                    reason = why,
                    "dhcp client removed (it was not running)"
                );
            }
        }
        if how == Stop::Release {
            self.remove_leftovers(name);
        }
    }

    /// After a release: a dhcpcd that had not (re)bound its lease yet (started again after an
    /// exit, the server unreachable) releases nothing and leaves the address it found. The
    /// client is gone by the operator's decision, so the interface's dynamic IPv4 addresses
    /// (only a DHCP client sets those) and its protocol-`dhcp` routes go too.
    fn remove_leftovers(&self, name: &IfName) {
        let Some(address) = lease_address(name, self.netns.as_deref()) else {
            return;
        };
        let ip = |args: &[&str]| {
            let mut cmd = Command::new("ip");
            if let Some(ns) = &self.netns {
                cmd.args(["-n", ns]);
            }
            cmd.args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    if o.status.success() {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
                    }
                })
        };
        let dev = name.as_str();
        let result = ip(&["-4", "address", "flush", "dev", dev, "dynamic"])
            .and_then(|()| ip(&["-4", "route", "flush", "dev", dev, "proto", "dhcp"]));
        tracing::warn!(
            target: "mamori::privsep",
            audit = true,
            op = "DhcpClient",
            interface = %dev,
            %address,
            error = result.err(),
            "the lease's address and routes removed after the client stopped"
        );
    }
}

impl Process {
    fn pid(&self) -> Option<Pid> {
        i32::try_from(self.child.id()).ok().map(Pid::from_raw)
    }

    /// Whether dhcpcd exited; if so, kills what is left of its process group and reaps it.
    fn exited(&mut self) -> Option<ExitStatus> {
        let pid = self.pid()?;
        // WNOWAIT: the exited leader stays a zombie, so its pid (the group's id) cannot be
        // reused before the group is killed.
        match waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Ok(WaitStatus::StillAlive) => None,
            Ok(_) => {
                let _ = killpg(pid, Signal::SIGKILL);
                self.child.wait().ok()
            }
            // ECHILD: reaped already (cannot happen: only we wait for it).
            Err(_) => self.child.try_wait().ok().flatten(),
        }
    }

    /// Sends `how`'s signal, waits up to [`STOP_GRACE`], kills it if need be, then the rest of
    /// its group, and reaps it.
    fn stop(mut self, how: Stop) -> Option<ExitStatus> {
        let pid = self.pid()?;
        let _ = kill(pid, how.signal());
        let deadline = Instant::now() + STOP_GRACE;
        let mut done = false;
        while Instant::now() < deadline {
            if let Ok(WaitStatus::StillAlive) = waitid(
                Id::Pid(pid),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
            ) {
                std::thread::sleep(Duration::from_millis(20));
            } else {
                done = true;
                break;
            }
        }
        if done {
            // Its helpers follow the master within moments.
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until && group_has_others(pid) {
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            tracing::warn!(target: "mamori::privsep", pid = pid.as_raw(), "dhcpcd did not stop; killing it");
        }
        let _ = killpg(pid, Signal::SIGKILL);
        self.child.wait().ok()
    }

    fn tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

/// Whether a process other than the (exited, unreaped) leader is still in group `pgid`.
fn group_has_others(pgid: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            return false;
        };
        pid != pgid.as_raw()
            && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
                    let rest = s.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(2)?.parse::<i32>().ok()
                })
                == Some(pgid.as_raw())
    })
}

/// The files of one client: `STATE/dhcp/IF/{dhcpcd.conf, lib/, run/}`.
struct ClientDirs {
    top: PathBuf,
    config: PathBuf,
    lib: PathBuf,
    run: PathBuf,
}

impl ClientDirs {
    fn new(options: &DhcpOptions, name: &IfName) -> Self {
        let top = options.dir.join(name.as_str());
        Self {
            config: top.join("dhcpcd.conf"),
            lib: top.join("lib"),
            run: top.join("run"),
            top,
        }
    }
}

/// Lays out the client's directories, writes its configuration, stops a dhcpcd a previous
/// parent left running on them, and starts dhcpcd in a mount namespace of its own.
fn spawn(
    name: &IfName,
    netns: Option<&str>,
    config: &str,
    options: &DhcpOptions,
) -> Result<Process, String> {
    if !options.dhcpcd.is_file() {
        return Err(format!(
            "{} does not exist (Debian package dhcpcd-base)",
            options.dhcpcd.display()
        ));
    }
    let dirs = ClientDirs::new(options, name);
    for dir in [&options.dir, &dirs.top, &dirs.lib, &dirs.run] {
        ensure_root_dir(dir)?;
    }
    mamori_durable::write(&dirs.config, config.as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", dirs.config.display()))?;
    stop_stale(&dirs.run.join(format!("{}.pid", name.as_str())));
    // The mount points must exist outside (dhcpcd would create /run/dhcpcd itself).
    for dir in [DHCPCD_DB_DIR, DHCPCD_RUN_DIR] {
        if !Path::new(dir).is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| format!("{dir}: {e}"))?;
        }
    }

    let mut cmd = match netns {
        Some(ns) => {
            let mut c = mamori_spawn::with_default_signals("ip");
            c.args(["netns", "exec", ns]).arg(&options.dhcpcd);
            c
        }
        None => mamori_spawn::with_default_signals(&options.dhcpcd),
    };
    cmd.arg("--nobackground")
        .arg("--config")
        .arg(&dirs.config)
        .arg("--")
        .arg(name.as_str())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let (lib, run) = (dirs.lib.clone(), dirs.run.clone());
    let mut child = std::thread::scope(|s| {
        s.spawn(move || -> Result<Child, String> {
            // This thread alone enters a new mount namespace; the child inherits it.
            unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|e| format!("making the mount namespace private: {e}"))?;
            for (from, to) in [(&lib, DHCPCD_DB_DIR), (&run, DHCPCD_RUN_DIR)] {
                mount(
                    Some(from.as_path()),
                    to,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| format!("bind {} on {to}: {e}", from.display()))?;
            }
            cmd.spawn().map_err(|e| format!("starting dhcpcd: {e}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the thread starting dhcpcd panicked".to_owned()))
    })?;
    let log = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(stderr) = child.stderr.take() {
        let (log, iface) = (Arc::clone(&log), name.as_str().to_owned());
        // Ends when dhcpcd and its helpers have all closed their standard error.
        let spawned = std::thread::Builder::new()
            .name("dhcpcd-log".into())
            .spawn(move || read_log(stderr, &log, &iface));
        if let Err(e) = spawned {
            tracing::warn!(target: "mamori::dhcp", error = %e, "dhcpcd's log cannot be read");
        }
    }
    Ok(Process {
        child,
        started: Instant::now(),
        log,
    })
}

/// Creates `dir` (root, 0700) or checks it is a directory and not a symlink, and sets its
/// owner and mode.
fn ensure_root_dir(dir: &Path) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    if !meta.file_type().is_dir() {
        return Err(format!(
            "{}: not a directory (a symlink?); refused",
            dir.display()
        ));
    }
    if meta.uid() != 0 || meta.gid() != 0 {
        std::os::unix::fs::lchown(dir, Some(0), Some(0)).map_err(io)?;
    }
    if meta.permissions().mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// A dhcpcd that an earlier parent started on these files (it was killed without stopping its
/// clients) holds the pid file's lock, and a new one would refuse to start: ask it to stop
/// (SIGTERM keeps the address), kill it after [`STOP_GRACE`]. The pid file lies in a root-only
/// directory; the process must also be called `dhcpcd`.
fn stop_stale(pid_file: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    let is_dhcpcd = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "dhcpcd")
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
    };
    if !is_dhcpcd(pid) {
        return;
    }
    tracing::warn!(target: "mamori::privsep", audit = true, op = "DhcpClient", pid, pid_file = %pid_file.display(), "stopping a dhcpcd left by an earlier run");
    let target = Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline && is_dhcpcd(pid) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if is_dhcpcd(pid) {
        let _ = kill(target, Signal::SIGKILL);
    }
}

/// Reads dhcpcd's standard error until it closes: every line to `tracing`, the last
/// [`LOG_TAIL`] kept (each cut to 256 bytes).
fn read_log(stderr: impl Read, log: &Mutex<VecDeque<String>>, iface: &str) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        tracing::info!(target: "mamori::dhcp", interface = iface, "{line}");
        if let Ok(mut l) = log.lock() {
            if l.len() == LOG_TAIL {
                l.pop_front();
            }
            l.push_back(cut(&line, MAX_LINE).to_owned());
        }
    }
}

/// The interface's dynamic IPv4 address, which is the lease's (dhcpcd adds it with the
/// lease's lifetimes; static addresses are permanent).
fn lease_address(name: &IfName, netns: Option<&str>) -> Option<IpNet> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let out = cmd
        .args(["-json", "-4", "address", "show", "dev", name.as_str()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let links: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    links
        .iter()
        .flat_map(|l| l["addr_info"].as_array().into_iter().flatten())
        .filter(|a| a["dynamic"].as_bool() == Some(true))
        .find_map(|a| {
            format!("{}/{}", a["local"].as_str()?, a["prefixlen"].as_u64()?)
                .parse()
                .ok()
        })
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// At most [`MAX_ERROR`] bytes of `text`, marked when cut.
fn shorten(text: &str) -> String {
    let short = cut(text, MAX_ERROR);
    if short.len() == text.len() {
        text.to_owned()
    } else {
        format!("{short}…")
    }
}

/// Restart delays: `min` doubling to `max`; back to `min` after a run of `max` or longer.
#[derive(Debug, Clone)]
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            next: min,
            min,
            max: max.max(min),
        }
    }

    fn next_delay(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.max {
            self.next = self.min;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> IfName {
        IfName::parse(n).unwrap()
    }

    #[test]
    fn the_configuration_is_rendered_whole_and_names_only_the_interface() {
        let text = render(&name("wan0"));
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        assert_eq!(
            lines,
            [
                "allowinterfaces wan0",
                "ipv4only",
                "noipv4ll",
                "script \"\"",
                "nodev",
                "timeout 0",
                "persistent",
                "clientid",
                "vendorclassid",
                "require dhcp_server_identifier",
                "option classless_static_routes",
                "option domain_name_servers",
            ]
        );
        assert!(text.ends_with('\n'));
        assert_eq!(text, render(&name("wan0")), "deterministic");
        // The name appears in the allow line and the first comment, nowhere else.
        assert_eq!(text.matches("wan0").count(), 2);
        let other = render(&name("eth1.100"));
        assert!(other.contains("\nallowinterfaces eth1.100\n"));
        assert_eq!(
            other.replace("eth1.100", "wan0"),
            text,
            "only the name differs"
        );
    }

    #[test]
    fn nothing_but_a_plain_name_can_reach_the_file() {
        // What would end a dhcpcd.conf line, start a comment, quote or add an option.
        for bad in [
            "wan0\nscript /tmp/x",
            "wan0 eth1",
            "wan0\"",
            "wan#0",
            "wan0;",
            "wan0\\",
            "",
            "a234567890123456",
            "..",
        ] {
            assert!(IfName::parse(bad).is_err(), "{bad:?}");
        }
        // A name dhcpcd could read as an option is still only a name to it: it comes after `--`.
        let dash = render(&name("-x"));
        assert!(dash.contains("\nallowinterfaces -x\n"));
    }

    #[test]
    fn restart_backoff_doubles_to_the_maximum_and_resets_after_a_healthy_run() {
        let mut b = Backoff::new(RESTART_MIN, RESTART_MAX);
        let quick = Duration::from_secs(2);
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.next_delay(RESTART_MAX).as_secs(), 1);
        assert_eq!(b.next_delay(quick).as_secs(), 2);
    }

    #[test]
    fn errors_are_bounded_at_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR);
        let s = shorten(&long);
        assert!(s.len() <= MAX_ERROR + '…'.len_utf8());
        assert!(s.ends_with('…'));
        assert_eq!(shorten("short"), "short");
        assert_eq!(cut("あいう", 4), "あ");
    }

    #[test]
    fn the_state_is_bound_only_with_a_running_client_a_current_lease_and_its_address() {
        let l =
            crate::lease::parse(include_bytes!("../tests/data/dhcpcd-9.4.1.lease"), 1000).unwrap();
        let held: Option<IpNet> = Some("10.99.0.128/24".parse().unwrap());
        let other: Option<IpNet> = Some("10.99.0.129/24".parse().unwrap());
        let bad = Err(crate::lease::LeaseError::NoMagicCookie);
        let some = Ok(Some(l));
        for (running, start_failed, lease, kernel, now, want) in [
            (true, false, &some, held, 1000, DhcpState::Bound),
            (true, false, &some, held, 1599, DhcpState::Bound),
            // Ran out, not the kernel's address, no lease at all: asking for one.
            (true, false, &some, held, 1600, DhcpState::Requesting),
            (true, false, &some, other, 1000, DhcpState::Requesting),
            (true, false, &some, None, 1000, DhcpState::Requesting),
            (true, false, &Ok(None), held, 1000, DhcpState::Requesting),
            // A lease file that is not one.
            (true, false, &bad, held, 1000, DhcpState::Failed),
            // Not running: exited (waits for its restart), or could not start.
            (false, false, &some, held, 1000, DhcpState::Stopped),
            (false, true, &some, held, 1000, DhcpState::Failed),
        ] {
            assert_eq!(
                state_of(running, start_failed, lease, kernel, now),
                want,
                "{running} {start_failed} {lease:?} {kernel:?} {now}"
            );
        }
        for s in [
            DhcpState::Bound,
            DhcpState::Failed,
            DhcpState::Requesting,
            DhcpState::Stopped,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn a_keeper_without_dhcp_interfaces_runs_nothing_and_touches_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let clients = DhcpClients::new(DhcpOptions::for_device(dir.path()));
        let cfg = NetworkConfig::factory(vec![crate::model::Interface::new(
            name("eth0"),
            crate::model::Role::Wan,
        )]);
        assert!(clients.reconcile(&cfg, None).is_empty());
        assert!(clients.status().is_empty());
        assert!(!dir.path().join(DHCP_DIR).exists());
        assert!(clients.supervisor.lock().unwrap().is_none());
        clients.stop_all();
    }

    #[test]
    fn a_missing_dhcpcd_is_reported_and_retried_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let clients = DhcpClients::new(DhcpOptions {
            dhcpcd: "/nonexistent/dhcpcd".into(),
            ..DhcpOptions::for_device(dir.path())
        });
        let mut wan = crate::model::Interface::new(name("eth0"), crate::model::Role::Wan);
        wan.dhcp = true;
        let cfg = NetworkConfig::factory(vec![wan]);
        let status = clients.reconcile(&cfg, None);
        assert_eq!(status.len(), 1);
        assert!(!status[0].running && status[0].pid.is_none());
        assert!(
            status[0].error.as_deref().unwrap().contains("dhcpcd-base"),
            "{status:?}"
        );
        assert_eq!(status[0].state, DhcpState::Failed);
        assert_eq!((&status[0].lease, &status[0].lease_error), (&None, &None));
        // A lease file left where dhcpcd keeps it is read (and a broken one reported), whether
        // or not the client runs.
        let lib = dir.path().join(DHCP_DIR).join("eth0/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(
            lib.join("eth0.lease"),
            include_bytes!("../tests/data/dhcpcd-9.4.1.lease"),
        )
        .unwrap();
        let now = clients.status();
        let lease = now[0].lease.as_ref().unwrap();
        assert_eq!(lease.address.to_string(), "10.99.0.128/24");
        assert_eq!(now[0].state, DhcpState::Failed, "it still does not run");
        std::fs::write(lib.join("eth0.lease"), b"\x02 not a lease").unwrap();
        let now = clients.status();
        assert_eq!(now[0].lease, None);
        assert!(
            now[0]
                .lease_error
                .as_deref()
                .unwrap()
                .contains("shorter than"),
            "{now:?}"
        );
        // Turned off again: the client is gone.
        let off = NetworkConfig::factory(vec![crate::model::Interface::new(
            name("eth0"),
            crate::model::Role::Wan,
        )]);
        assert!(clients.reconcile(&off, None).is_empty());
        drop(clients);
    }
}
