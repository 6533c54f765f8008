//! The privileged parent: root, no sockets to the outside.
//!
//! [`run_parent`] is the whole life of the parent, in order:
//!
//! 1. check that it runs as root;
//! 2. make sure the management user exists (create it with `useradd --system` if not);
//! 3. lay out the state directory with the right owners and modes, and create the
//!    key-encryption key if there is none;
//! 4. when it manages the network ([`ParentConfig::factory_network`]), put the last network
//!    configuration it applied successfully in force, or the factory one
//!    ([`Dispatcher::boot_network`]), so the firewall stands before the management process
//!    binds its listener;
//! 5. start the management process: a socketpair, then a re-exec of `/proc/self/exe` with the
//!    child's end as its standard input;
//! 6. serve that child's requests, one frame at a time, through [`Dispatcher::dispatch`];
//! 7. when the child dies or breaks the protocol, end its session and start a new one after a
//!    backoff (1 s doubling to 60 s, back to 1 s once a child stayed up 60 s);
//! 8. on SIGTERM or SIGINT, stop the child (SIGTERM, SIGKILL after 5 s) and return.
//!
//! The [`Dispatcher`] is also what runs in-process in single-process mode
//! ([`crate::client::Parent::in_process`]), so the same code answers in both modes.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mamori_keys::{FileKeyProvider, load_or_create_data_key};
use mamori_netconfig::{Applier, DhcpClients, NetworkConfig, NftablesListener, Rollback};
use mamori_time::{NtpDaemon, TimeConfig};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime, clock_settime};
use nix::unistd::{Gid, Pid, Uid, User};
use zeroize::Zeroizing;

use crate::op::{Reply, Request, check_clock_time};
use crate::{PrivsepError, Result, wire};

/// The management process's user unless configured otherwise.
pub const DEFAULT_CHILD_USER: &str = "_mamori";

/// The directory (under the state directory) that only the parent may enter: the KEK and the
/// wrapped data key.
pub const KEYS_DIR: &str = "keys";
/// The key-encryption key file, relative to the state directory.
pub const KEK_FILE: &str = "keys/kek";
/// The wrapped data key file, relative to the state directory.
pub const DATA_KEY_FILE: &str = "keys/data-key.wrapped";
/// mamori's chronyd pid file, relative to the state directory. The parent reads it to know
/// whether NTP synchronisation runs ([`Request::SetTime`] is refused then unless forced). The
/// time crate's chrony driver writes its files under the same directory.
pub use mamori_time::render::CHRONY_PID_FILE;
/// The directory (under the state directory) of the network applier's record: root, 0700.
pub const NETWORK_DIR: &str = "network";
/// The record of the addresses the parent set (`ApplyNetwork`), relative to the state
/// directory. Only addresses listed here are ever removed.
pub const NETWORK_RECORD_FILE: &str = "network/addresses.json";
/// The last network configuration the parent applied successfully (JSON, root 0600), relative
/// to the state directory: what [`Dispatcher::boot_network`] puts in force at the next start.
pub const NETWORK_APPLIED_FILE: &str = "network/applied.json";
/// The directories (under the state directory) that belong to the management process: the
/// encrypted store, the audit segments, the TLS identity and runtime files (sockets).
pub const CHILD_DIRS: [&str; 4] = ["store", "audit", "tls", "run"];

const USERADD: &str = "/usr/sbin/useradd";
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);
/// A child that stayed up this long was healthy; the next restart starts from `RESTART_MIN`.
const STABLE_UPTIME: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Once a frame has started to arrive, the whole of it must follow within this time (and a
/// reply must be taken within it). 16 MiB over a socketpair take milliseconds.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// The signals the parent blocks to read them from a signalfd. The signal mask survives
/// `execve`, so the child unblocks them again ([`crate::client::Parent::from_stdin`]).
pub(crate) const PARENT_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD];
/// Environment variables the child inherits; everything else is dropped.
const CHILD_ENV_KEEP: [&str; 3] = ["RUST_LOG", "RUST_BACKTRACE", "TZ"];
const CHILD_ENV_KEEP_PREFIX: &str = "MAMORI_";

/// How to run the privileged parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentConfig {
    /// The state directory (for example `/var/lib/mamori`).
    pub state_dir: PathBuf,
    /// The management process's user; created as a system user if missing.
    pub child_user: String,
    /// The arguments to re-execute this binary with to get the management process (without
    /// `argv[0]`), for example `["--child"]`.
    pub child_args: Vec<OsString>,
    /// The device's factory network configuration (a JSON `NetworkConfig`). Set, mamori
    /// manages the network: before the first management process starts, the parent puts the
    /// last configuration it applied successfully in force, or this one
    /// ([`Dispatcher::boot_network`]). `None`: the parent changes no network state at start.
    pub factory_network: Option<PathBuf>,
}

impl ParentConfig {
    /// A configuration with the default child user, managing no network at start.
    pub fn new(state_dir: impl Into<PathBuf>, child_args: Vec<OsString>) -> Self {
        Self {
            state_dir: state_dir.into(),
            child_user: DEFAULT_CHILD_USER.to_owned(),
            child_args,
            factory_network: None,
        }
    }
}

/// Which network configuration [`Dispatcher::boot_network`] put in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootNetwork {
    /// The last one applied successfully (`STATE/network/applied.json`).
    LastApplied,
    /// The factory configuration (no last one, or it could not be read or applied).
    Factory,
    /// Neither (logged); the management process applies its running revision at its start.
    Failed,
}

/// How the parent ended (it only ends on a signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentExit {
    /// The signal that asked the parent to stop (SIGTERM or SIGINT).
    pub signal: Signal,
    /// How many times the management process was restarted.
    pub child_restarts: u32,
}

/// Executes privileged operations. One per parent (or per single-process daemon).
///
/// [`Dispatcher::dispatch`] holds the one `match` over [`Request`]; both the parent's loop and
/// the in-process mode call it. It keeps mamori's chronyd, which outlives a restarted
/// management process and stops when the dispatcher is dropped (the parent stops).
#[derive(Debug)]
pub struct Dispatcher {
    state_dir: PathBuf,
    started_at_unix: u64,
    child_restarts: AtomicU32,
    data_key_given: AtomicBool,
    ntp: Mutex<NtpDaemon>,
    /// One network apply at a time.
    network: Mutex<Applier>,
    /// The DHCP clients of the wan interfaces, put in line after every apply; dropping the
    /// dispatcher (the parent stops) stops them, as it stops chronyd.
    dhcp: DhcpClients,
    /// The nftables notification socket of the applier's namespace, handed to the firewall
    /// monitor ([`Request::NftablesListener`]) and paused by the applier around its loads;
    /// the error when it could not be opened (no CAP_NET_ADMIN: a development run).
    nft_listener: std::result::Result<Arc<NftablesListener>, String>,
}

/// The receive buffer of the nftables notification socket: every object of another
/// program's large transaction is announced (mamori's own loads are not).
const NFT_LISTENER_BUFFER: usize = 4 << 20;

/// Opens the nftables notification socket in `applier`'s namespace and gives it to the
/// applier as its [`mamori_netconfig::LoadQuiet`].
fn listen(applier: Applier) -> (Applier, std::result::Result<Arc<NftablesListener>, String>) {
    match NftablesListener::open(applier.netns(), NFT_LISTENER_BUFFER) {
        Ok(l) => {
            let l = Arc::new(l);
            (applier.with_quiet(l.clone()), Ok(l))
        }
        Err(e) => {
            tracing::debug!(target: "mamori::privsep", error = %e, "no nftables notification socket");
            (applier, Err(e.to_string()))
        }
    }
}

impl Dispatcher {
    /// A dispatcher for the state directory `state_dir`, started now.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        let started_at_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let state_dir = state_dir.into();
        let (applier, nft_listener) = listen(Applier::new(state_dir.join(NETWORK_RECORD_FILE)));
        Self {
            ntp: Mutex::new(NtpDaemon::for_device(&state_dir)),
            network: Mutex::new(applier),
            nft_listener,
            dhcp: DhcpClients::for_device(&state_dir),
            state_dir,
            started_at_unix,
            child_restarts: AtomicU32::new(0),
            data_key_given: AtomicBool::new(false),
        }
    }

    /// Like [`Dispatcher::new`], with its own chronyd keeper (tests: another chronyd binary).
    pub fn with_ntp(state_dir: impl Into<PathBuf>, ntp: NtpDaemon) -> Self {
        let d = Self::new(state_dir);
        *d.ntp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ntp;
        d
    }

    /// Like [`Dispatcher::new`], with its own network applier (tests: another namespace).
    pub fn with_network(state_dir: impl Into<PathBuf>, applier: Applier) -> Self {
        let mut d = Self::new(state_dir);
        let (applier, listener) = listen(applier);
        *d.network
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = applier;
        d.nft_listener = listener;
        d
    }

    /// A duplicate of the nftables notification socket ([`Request::NftablesListener`]).
    pub fn share_nftables_listener(&self) -> std::io::Result<OwnedFd> {
        match &self.nft_listener {
            Ok(l) => l.share(),
            Err(e) => Err(std::io::Error::other(format!(
                "no nftables notification socket: {e}"
            ))),
        }
    }

    /// Executes one request. This is the only place a request turns into an action.
    pub fn dispatch(&self, request: Request) -> Reply {
        match request {
            Request::DataKey => self.data_key(),
            Request::Status => self.status(),
            Request::SetTime { unix_ms, force } => self.set_time(unix_ms, force),
            Request::ApplyTime { config } => self.apply_time(config),
            Request::TimeStatus => self.time_status(),
            Request::CheckNetwork { config } => self.network(&config, false, "CheckNetwork"),
            Request::ApplyNetwork { config } => self.network(&config, true, "ApplyNetwork"),
            Request::Sockets => self.sockets(),
            Request::DhcpStatus => self.dhcp_status(),
            Request::NftablesListener => self.answer(Request::NftablesListener).0,
        }
    }

    /// Executes one request; the reply, and the descriptor to pass with it (only for
    /// [`Request::NftablesListener`]).
    pub fn answer(&self, request: Request) -> (Reply, Option<OwnedFd>) {
        match request {
            Request::NftablesListener => match self.share_nftables_listener() {
                Ok(fd) => (Reply::NftablesListener {}, Some(fd)),
                Err(e) => {
                    tracing::warn!(target: "mamori::privsep", op = "NftablesListener", error = %e, "refused");
                    (
                        Reply::Refused {
                            reason: e.to_string(),
                        },
                        None,
                    )
                }
            },
            other => (self.dispatch(other), None),
        }
    }

    /// At start, before the management process exists: puts the last network configuration
    /// applied successfully ([`NETWORK_APPLIED_FILE`]) in force, or, when there is none or it
    /// cannot be read or applied, the factory configuration in `factory`. Both are parsed as
    /// typed `NetworkConfig` and go through the same checks and applier as `ApplyNetwork`.
    /// Failures are logged (audit) and do not stop the parent: the management process applies
    /// its running revision again at its start.
    ///
    /// The point is the order: the firewall stands before the management listener (which
    /// binds `[::]:443` on a device) accepts its first connection. The factory configuration
    /// is the fallback after a failed last one (for example an interface it names is missing)
    /// because a firewall that differs from the last one is better than none while the
    /// management process starts.
    pub fn boot_network(&self, factory: &Path) -> BootNetwork {
        let last = self.state_dir.join(NETWORK_APPLIED_FILE);
        match read_network_config(&last) {
            Ok(Some(config)) => {
                if matches!(
                    self.network(&config, true, "boot (last applied)"),
                    Reply::NetworkApplied { .. }
                ) {
                    return BootNetwork::LastApplied;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "mamori::privsep", audit = true, op = "boot", path = %last.display(), error = %e, "the last applied network configuration cannot be read; using the factory configuration");
            }
        }
        match read_network_config(factory) {
            Ok(Some(config)) => {
                if matches!(
                    self.network(&config, true, "boot (factory)"),
                    Reply::NetworkApplied { .. }
                ) {
                    return BootNetwork::Factory;
                }
            }
            Ok(None) => {
                tracing::error!(target: "mamori::privsep", audit = true, op = "boot", path = %factory.display(), "the factory network configuration does not exist");
            }
            Err(e) => {
                tracing::error!(target: "mamori::privsep", audit = true, op = "boot", path = %factory.display(), error = %e, "the factory network configuration cannot be read");
            }
        }
        tracing::error!(target: "mamori::privsep", audit = true, op = "boot", "no network configuration was put in force at start; the management process applies its running revision at its start");
        BootNetwork::Failed
    }

    /// `CheckNetwork` (`apply` false) and `ApplyNetwork`. The configuration parsed as typed
    /// values on the way in; [`Applier::check`] validates it again across fields before nft or
    /// ip run, and renders the ruleset here. After a successful apply the configuration is
    /// written to [`NETWORK_APPLIED_FILE`] for the next start.
    fn network(&self, config: &NetworkConfig, apply: bool, op: &'static str) -> Reply {
        let interfaces = config.interfaces.len();
        let rules = config.firewall.rules.len();
        // A panic while holding it left the kernel as the applier's restore left it.
        let mut applier = self
            .network
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(errors) = config.validate() {
            let reply = Reply::NetworkRefused {
                step: mamori_netconfig::ApplyStep::Validate,
                detail: mamori_netconfig::apply::bounded(
                    &errors
                        .0
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                rollback: Rollback::NothingChanged,
            };
            tracing::warn!(target: "mamori::privsep", audit = true, op, ?reply, "refused: invalid network configuration");
            return reply;
        }
        if apply {
            let me = (Uid::effective(), Gid::effective());
            let applied_dir = self.state_dir.join(NETWORK_DIR);
            let dirs = [applier.record_path().parent(), Some(applied_dir.as_path())];
            for dir in dirs.into_iter().flatten() {
                if let Err(e) = ensure_dir(dir, 0o700, me) {
                    tracing::error!(target: "mamori::privsep", op, error = %e, "network record directory");
                    return Reply::Failed {
                        reason: "the network record directory could not be prepared".to_owned(),
                    };
                }
            }
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let result = if apply {
            applier.apply(config).map(|a| Reply::NetworkApplied {
                render_ms: ms(a.render),
                snapshot_ms: ms(a.snapshot),
                snapshot_listed: a.snapshot_listed,
                load_ms: a.load.map(ms),
                addresses_ms: ms(a.addresses),
                generations: a.generations,
            })
        } else {
            applier.check(config).map(|p| Reply::NetworkChecked {
                render_ms: ms(p.render),
                // check always dry-runs.
                check_ms: p.check.map_or(0, ms),
            })
        };
        if apply && result.is_ok() {
            // Forwarding, bridged frames out of the IP firewall, hardening: with every apply, so
            // a setting changed behind mamori's back is put back too.
            for failed in mamori_netconfig::sysctl::set_router(applier.netns()) {
                tracing::warn!(target: "mamori::privsep", op, %failed, "kernel setting not applied");
            }
            // A dhcpcd for each `dhcp: true` interface, none for the others (logs each change).
            self.dhcp.reconcile(config, applier.netns());
        }
        match result {
            Ok(reply) => {
                if apply {
                    self.record_applied(config);
                }
                tracing::warn!(target: "mamori::privsep", audit = apply, op, interfaces, rules, ?reply, "network configuration accepted");
                reply
            }
            Err(e) => {
                tracing::warn!(target: "mamori::privsep", audit = true, op, step = %e.step, detail = %e.detail, rollback = ?e.rollback, "network configuration refused");
                Reply::NetworkRefused {
                    step: e.step,
                    detail: e.detail,
                    rollback: e.rollback,
                }
            }
        }
    }

    /// Writes the configuration just applied to [`NETWORK_APPLIED_FILE`] (root, 0600, durably:
    /// temp + fsync + rename + directory fsync), unless the file holds exactly it already. A
    /// failure is logged; the kernel holds the configuration either way, and the next start
    /// would put an older one in force until the management process applies its own.
    fn record_applied(&self, config: &NetworkConfig) {
        let path = self.state_dir.join(NETWORK_APPLIED_FILE);
        let bytes = match serde_json::to_vec(config) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(target: "mamori::privsep", audit = true, error = %e, "the applied network configuration could not be encoded");
                return;
            }
        };
        let me = Uid::effective().as_raw();
        let same = fs::symlink_metadata(&path).is_ok_and(|m| {
            m.is_file() && m.uid() == me && m.permissions().mode() & 0o7777 == 0o600
        }) && fs::read(&path).is_ok_and(|old| old == bytes);
        if same {
            return;
        }
        if let Err(e) = mamori_durable::write(&path, &bytes, 0o600) {
            tracing::error!(target: "mamori::privsep", audit = true, path = %path.display(), error = %e, "the applied network configuration could not be recorded; the next start puts an older one in force first");
        }
    }

    fn ntp(&self) -> std::sync::MutexGuard<'_, NtpDaemon> {
        // A panic while holding it left a usable keeper (at worst chronyd half-restarted).
        self.ntp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply_time(&self, config: TimeConfig) -> Reply {
        let servers = config.servers.len();
        match self.ntp().apply(config) {
            Ok(applied) => {
                tracing::warn!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "ApplyTime",
                    servers,
                    running = applied.running,
                    error = applied.error.as_deref(),
                    "time configuration applied"
                );
                Reply::TimeApplied {
                    running: applied.running,
                    error: applied.error,
                }
            }
            Err(reason) => {
                tracing::warn!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "ApplyTime",
                    %reason,
                    "refused: invalid time configuration"
                );
                Reply::Refused { reason }
            }
        }
    }

    fn time_status(&self) -> Reply {
        Reply::TimeStatus {
            report: Box::new(self.ntp().report()),
        }
    }

    fn sockets(&self) -> Reply {
        let known = mamori_inventory::KnownPids {
            chronyd: self.ntp().pid(),
            dhcpcd: self.dhcp.process_groups(),
        };
        match mamori_inventory::scan(known) {
            Ok(mut sockets) => {
                let truncated = sockets.len() > crate::op::MAX_SOCKETS;
                sockets.truncate(crate::op::MAX_SOCKETS);
                Reply::Sockets { sockets, truncated }
            }
            Err(e) => {
                tracing::error!(target: "mamori::privsep", op = "Sockets", error = %e, "the socket tables could not be read");
                Reply::Failed {
                    reason: "the socket tables could not be read".into(),
                }
            }
        }
    }

    fn dhcp_status(&self) -> Reply {
        let mut clients = self.dhcp.status();
        let truncated = clients.len() > crate::op::MAX_DHCP_CLIENTS;
        clients.truncate(crate::op::MAX_DHCP_CLIENTS);
        for c in &clients {
            if let Some(e) = &c.lease_error {
                tracing::warn!(target: "mamori::privsep", op = "DhcpStatus", interface = %c.interface.as_str(), error = %e, "the DHCP lease file is not a lease");
            }
        }
        Reply::DhcpStatus { clients, truncated }
    }

    /// The state directory this dispatcher serves.
    pub(crate) fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// A new management process replaced the old one: count it, and let the new one have the
    /// data key once.
    pub(crate) fn child_restarted(&self) {
        self.child_restarts.fetch_add(1, Ordering::Relaxed);
        self.data_key_given.store(false, Ordering::SeqCst);
    }

    fn data_key(&self) -> Reply {
        if self.data_key_given.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                target: "mamori::privsep",
                audit = true,
                op = "DataKey",
                "refused: the data key was already given to this management process"
            );
            return Reply::Refused {
                reason: "the data key was already given to this management process".into(),
            };
        }
        let loaded = FileKeyProvider::open(&self.state_dir.join(KEK_FILE))
            .and_then(|kek| load_or_create_data_key(&kek, &self.state_dir.join(DATA_KEY_FILE)));
        match loaded {
            Ok((key, created)) => {
                tracing::info!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "DataKey",
                    created,
                    "data key handed to the management process"
                );
                Reply::DataKey {
                    key: Zeroizing::new(key.dangerous_raw_bytes().to_vec()),
                }
            }
            Err(e) => {
                // Not an answer: the child may ask again once the cause is fixed.
                self.data_key_given.store(false, Ordering::SeqCst);
                tracing::error!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "DataKey",
                    error = %e,
                    "the data key could not be loaded"
                );
                Reply::Failed {
                    reason: "the data key could not be loaded".into(),
                }
            }
        }
    }

    fn set_time(&self, unix_ms: i64, force: bool) -> Reply {
        if let Err(reason) = check_clock_time(unix_ms) {
            tracing::warn!(
                target: "mamori::privsep",
                audit = true,
                op = "SetTime",
                unix_ms,
                reason,
                "refused: time out of range"
            );
            return Reply::Refused {
                reason: reason.into(),
            };
        }
        let ntp_running = chronyd_running(&self.state_dir);
        if ntp_running && !force {
            tracing::warn!(
                target: "mamori::privsep",
                audit = true,
                op = "SetTime",
                unix_ms,
                "refused: NTP synchronisation is running and the request is not forced"
            );
            return Reply::Refused {
                reason: "NTP synchronisation is running; stop it or force the change".into(),
            };
        }
        let target = TimeSpec::new(
            unix_ms.div_euclid(1000),
            unix_ms.rem_euclid(1000) * 1_000_000,
        );
        let before = clock_gettime(ClockId::CLOCK_REALTIME);
        let set = clock_settime(ClockId::CLOCK_REALTIME, target);
        let after = clock_gettime(ClockId::CLOCK_REALTIME);
        match (before, set, after) {
            (Ok(before), Ok(()), Ok(after)) => {
                let (before_unix_ms, after_unix_ms) = (unix_ms_of(before), unix_ms_of(after));
                tracing::warn!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "SetTime",
                    before_unix_ms,
                    after_unix_ms,
                    ntp_running,
                    "system clock set"
                );
                Reply::ClockSet {
                    before_unix_ms,
                    after_unix_ms,
                    ntp_running,
                }
            }
            (before, set, after) => {
                let error = [before.err(), set.err(), after.err()]
                    .into_iter()
                    .flatten()
                    .next();
                tracing::error!(
                    target: "mamori::privsep",
                    audit = true,
                    op = "SetTime",
                    unix_ms,
                    error = ?error,
                    "the system clock could not be set"
                );
                Reply::Failed {
                    reason: "the system clock could not be set".into(),
                }
            }
        }
    }

    fn status(&self) -> Reply {
        Reply::Status {
            parent_pid: std::process::id(),
            parent_uid: Uid::current().as_raw(),
            started_at_unix: self.started_at_unix,
            child_restarts: self.child_restarts.load(Ordering::Relaxed),
        }
    }
}

/// A network configuration from a file (the last applied one, the factory one): `None` when
/// the file does not exist; at most [`wire::MAX_REQUEST_FRAME`] bytes, parsed as typed values.
fn read_network_config(path: &Path) -> std::result::Result<Option<NetworkConfig>, String> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let limit = wire::MAX_REQUEST_FRAME;
    let mut bytes = Vec::new();
    file.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Milliseconds since the Unix epoch of a `CLOCK_REALTIME` reading.
fn unix_ms_of(t: TimeSpec) -> i64 {
    t.tv_sec()
        .saturating_mul(1000)
        .saturating_add(t.tv_nsec() / 1_000_000)
}

/// Whether mamori's chronyd runs: its pid file ([`CHRONY_PID_FILE`]) names a live process
/// called `chronyd`. The pid file lies in a directory the chrony user can write, so its content
/// is only trusted this far: a forged pid can at most make [`Request::SetTime`] need `force`.
fn chronyd_running(state_dir: &Path) -> bool {
    let Ok(text) = fs::read_to_string(state_dir.join(CHRONY_PID_FILE)) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return false;
    };
    pid > 0
        && fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == "chronyd")
}

/// Runs the privileged parent until SIGTERM or SIGINT. See the module documentation for the
/// steps.
///
/// Call it from `main` before any thread exists: it blocks SIGTERM, SIGINT and SIGCHLD in the
/// calling thread to receive them through a signalfd, and a second thread would still get them
/// delivered the default way. The signal mask is restored before it returns.
pub fn run_parent(cfg: ParentConfig) -> Result<ParentExit> {
    if !Uid::effective().is_root() {
        return Err(PrivsepError::NotRoot);
    }
    let user = ensure_child_user(&cfg.child_user)?;
    prepare_state_dir(&cfg.state_dir, user.uid, user.gid)?;
    let signals = Signals::block()?;
    let dispatcher = Dispatcher::new(&cfg.state_dir);
    if let Some(factory) = &cfg.factory_network {
        // Before the first management process: its listener must find the firewall standing.
        let booted = dispatcher.boot_network(factory);
        tracing::info!(target: "mamori::privsep", ?booted, "network at start");
    }
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        match spawn_child(&cfg) {
            Ok((mut child, mut channel)) => {
                tracing::info!(
                    target: "mamori::privsep",
                    pid = child.id(),
                    user = %cfg.child_user,
                    "management process started"
                );
                let end = match serve_session(&mut child, &mut channel, &dispatcher, &signals) {
                    Ok(end) => end,
                    Err(e) => {
                        stop_child(&mut child);
                        return Err(e);
                    }
                };
                drop(channel);
                match end {
                    SessionEnd::Signal(signal) => {
                        tracing::info!(target: "mamori::privsep", %signal, "stopping");
                        let status = stop_child(&mut child);
                        tracing::info!(target: "mamori::privsep", ?status, "management process stopped");
                        return Ok(ParentExit {
                            signal,
                            child_restarts: dispatcher.child_restarts.load(Ordering::Relaxed),
                        });
                    }
                    SessionEnd::Exited(status) => {
                        tracing::warn!(target: "mamori::privsep", ?status, "management process exited");
                    }
                    SessionEnd::ChannelClosed => {
                        let status = stop_child(&mut child);
                        tracing::warn!(
                            target: "mamori::privsep",
                            ?status,
                            "management process closed the privsep channel; session ended"
                        );
                    }
                    SessionEnd::Violation(e) => {
                        tracing::error!(
                            target: "mamori::privsep",
                            audit = true,
                            error = %e,
                            "protocol violation by the management process; killing it"
                        );
                        let status = stop_child(&mut child);
                        tracing::warn!(target: "mamori::privsep", ?status, "management process ended");
                    }
                }
            }
            Err(e) => {
                tracing::error!(target: "mamori::privsep", error = %e, "could not start the management process");
            }
        }
        let delay = backoff.next_delay(started.elapsed());
        tracing::info!(
            target: "mamori::privsep",
            delay_secs = delay.as_secs(),
            "restarting the management process after a delay"
        );
        if let Some(signal) = signals.wait(delay)? {
            return Ok(ParentExit {
                signal,
                child_restarts: dispatcher.child_restarts.load(Ordering::Relaxed),
            });
        }
        dispatcher.child_restarted();
    }
}

/// Makes sure the system user `name` exists, creating it with
/// `useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin
/// --user-group` if it does not. Returns the user.
pub fn ensure_child_user(name: &str) -> Result<User> {
    validate_user_name(name)?;
    if let Some(user) = lookup_user(name)? {
        return Ok(user);
    }
    let out = Command::new(USERADD)
        .args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            name,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PrivsepError::UserAdd {
            user: name.to_owned(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        tracing::warn!(
            target: "mamori::privsep",
            audit = true,
            user = name,
            "created the system user for the management process"
        );
    } else if lookup_user(name)?.is_none() {
        return Err(PrivsepError::UserAdd {
            user: name.to_owned(),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    // else: someone else created it at the same time; fine.
    lookup_user(name)?.ok_or_else(|| PrivsepError::UserMissing(name.to_owned()))
}

fn lookup_user(name: &str) -> Result<Option<User>> {
    User::from_name(name).map_err(|source| PrivsepError::UserLookup {
        user: name.to_owned(),
        source,
    })
}

/// A name `useradd` accepts and that cannot be read as an option: `[a-z_][a-z0-9_-]{0,31}`.
fn validate_user_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
        && name.len() <= 32;
    if ok {
        Ok(())
    } else {
        Err(PrivsepError::InvalidUserName(name.to_owned()))
    }
}

/// Lays out the state directory for a separated daemon and creates the key-encryption key if
/// there is none.
///
/// - `DIR`: 0755, root.
/// - `DIR/keys`: 0700, root, with everything in it (the KEK and the wrapped data key).
/// - `DIR/store`, `DIR/audit`, `DIR/tls`, `DIR/run`: 0700, owned by `uid:gid`, with everything
///   in them (so a state directory first used in single-process mode keeps working).
///
/// Ownership changes never follow symlinks, and a regular file with more than one hard link is
/// left alone and logged: it could be a link to a file outside the state directory. Run this
/// only while no management process is running.
pub fn prepare_state_dir(dir: &Path, uid: Uid, gid: Gid) -> Result<()> {
    let root = (Uid::from_raw(0), Gid::from_raw(0));
    ensure_dir(dir, 0o755, root)?;
    ensure_dir(&dir.join(KEYS_DIR), 0o700, root)?;
    chown_tree(&dir.join(KEYS_DIR), root)?;
    for sub in CHILD_DIRS {
        ensure_dir(&dir.join(sub), 0o700, (uid, gid))?;
        chown_tree(&dir.join(sub), (uid, gid))?;
    }
    ensure_kek(dir)?;
    mamori_durable::sync_dir(dir).map_err(state_err(dir))
}

/// The directories the management process may write: [`CHILD_DIRS`] under `state_dir`. This is
/// what its landlock ruleset should allow.
pub fn child_writable_dirs(state_dir: &Path) -> Vec<PathBuf> {
    CHILD_DIRS.iter().map(|d| state_dir.join(d)).collect()
}

/// Creates the key-encryption key if it does not exist yet. Returns whether it was created.
pub(crate) fn ensure_kek(state_dir: &Path) -> Result<bool> {
    let path = state_dir.join(KEK_FILE);
    if path.exists() {
        return Ok(false);
    }
    let (_, created) = FileKeyProvider::open_or_create(&path)?;
    if created {
        tracing::warn!(
            target: "mamori::privsep",
            audit = true,
            path = %path.display(),
            "created a new key-encryption key"
        );
    }
    Ok(created)
}

fn state_err(path: &Path) -> impl FnOnce(io::Error) -> PrivsepError + '_ {
    move |source| PrivsepError::StateDir {
        path: path.to_path_buf(),
        source,
    }
}

fn ensure_dir(path: &Path, mode: u32, (uid, gid): (Uid, Gid)) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(state_err(path))?;
        }
        Err(e) => return Err(state_err(path)(e)),
    }
    let meta = fs::symlink_metadata(path).map_err(state_err(path))?;
    if !meta.file_type().is_dir() {
        return Err(PrivsepError::StateDirUnsafe {
            path: path.to_path_buf(),
            reason: "exists and is not a directory (or is a symlink)",
        });
    }
    if meta.uid() != uid.as_raw() || meta.gid() != gid.as_raw() {
        std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw()))
            .map_err(state_err(path))?;
    }
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(state_err(path))?;
    }
    Ok(())
}

/// Gives everything beneath `top` to `uid:gid`, without following symlinks and without touching
/// hard-linked regular files.
fn chown_tree(top: &Path, (uid, gid): (Uid, Gid)) -> Result<()> {
    let mut pending = vec![top.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(state_err(&dir))? {
            let path = entry.map_err(state_err(&dir))?.path();
            let meta = fs::symlink_metadata(&path).map_err(state_err(&path))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                pending.push(path.clone());
            }
            if meta.uid() == uid.as_raw() && meta.gid() == gid.as_raw() {
                continue;
            }
            if kind.is_file() && meta.nlink() > 1 {
                tracing::warn!(
                    target: "mamori::privsep",
                    audit = true,
                    path = %path.display(),
                    links = meta.nlink(),
                    "not changing the owner of a hard-linked file in the state directory"
                );
                continue;
            }
            std::os::unix::fs::lchown(&path, Some(uid.as_raw()), Some(gid.as_raw()))
                .map_err(state_err(&path))?;
        }
    }
    Ok(())
}

/// Starts the management process: `/proc/self/exe` with `child_args`, the child's end of a new
/// socketpair as its standard input, standard output and error inherited, a filtered
/// environment, and `/` as its working directory.
fn spawn_child(cfg: &ParentConfig) -> Result<(Child, UnixStream)> {
    let (ours, theirs) = UnixStream::pair().map_err(PrivsepError::Spawn)?;
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("mamorid"));
    // The Command holds the child's end until it is dropped; it must go at the end of this
    // block, or the parent would never see the channel close when the child dies.
    let child = {
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0(argv0)
            .args(&cfg.child_args)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .current_dir("/")
            .env_clear()
            .envs(std::env::vars_os().filter(|(k, _)| {
                k.to_str().is_some_and(|k| {
                    CHILD_ENV_KEEP.contains(&k) || k.starts_with(CHILD_ENV_KEEP_PREFIX)
                })
            }));
        cmd.spawn().map_err(PrivsepError::Spawn)?
    };
    Ok((child, ours))
}

/// Why a child's session ended.
#[derive(Debug)]
enum SessionEnd {
    /// The parent was asked to stop.
    Signal(Signal),
    /// The child exited (or was killed) on its own.
    Exited(ExitStatus),
    /// The child closed the channel between frames.
    ChannelClosed,
    /// The child sent something that is not a valid request.
    Violation(PrivsepError),
}

fn serve_session(
    child: &mut Child,
    channel: &mut UnixStream,
    dispatcher: &Dispatcher,
    signals: &Signals,
) -> Result<SessionEnd> {
    loop {
        let (signal_ready, channel_ready) = {
            let mut fds = [
                PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN),
                PollFd::new(channel.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(source) => {
                    return Err(PrivsepError::Sys {
                        what: "poll",
                        source,
                    });
                }
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if signal_ready {
            if let Some(signal) = signals.take_stop_signal()? {
                return Ok(SessionEnd::Signal(signal));
            }
            if let Some(status) = child.try_wait().map_err(PrivsepError::Spawn)? {
                return Ok(SessionEnd::Exited(status));
            }
        }
        if channel_ready {
            match serve_one(channel, dispatcher) {
                Ok(()) => {}
                Err(PrivsepError::ChannelClosed) => return Ok(SessionEnd::ChannelClosed),
                Err(e) => return Ok(SessionEnd::Violation(e)),
            }
        }
    }
}

/// Reads one request from the channel, executes it and writes the reply. The request must
/// arrive whole, and the reply be taken, within [`FRAME_TIMEOUT`] each.
pub(crate) fn serve_one(channel: &mut UnixStream, dispatcher: &Dispatcher) -> Result<()> {
    let request: Request = wire::read_frame(&mut Deadline::new(channel))?;
    tracing::debug!(target: "mamori::privsep", op = request.name(), "request");
    match dispatcher.answer(request) {
        (reply, Some(fd)) => wire::write_frame_with_fd(channel, &reply, fd.as_fd()),
        (reply, None) => wire::write_frame(&mut Deadline::new(channel), &reply),
    }
}

/// The channel with one deadline for a whole frame: every read or write waits at most for the
/// time left, so a peer that trickles a frame byte by byte cannot hold the parent (and its
/// signal handling) longer than [`FRAME_TIMEOUT`].
struct Deadline<'a> {
    stream: &'a UnixStream,
    until: Instant,
}

impl<'a> Deadline<'a> {
    fn new(stream: &'a UnixStream) -> Self {
        Self {
            stream,
            until: Instant::now() + FRAME_TIMEOUT,
        }
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "privsep frame not complete within its time",
            ))
        } else {
            Ok(left)
        }
    }
}

impl io::Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        io::Read::read(&mut &*self.stream, buf)
    }
}

impl io::Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        io::Write::write(&mut &*self.stream, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stops the child: SIGTERM, then SIGKILL if it is still there after [`STOP_GRACE`]. Returns
/// its exit status if it could be collected.
fn stop_child(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // The child is ours and not yet reaped, so the pid cannot have been reused.
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break,
        }
    }
    tracing::warn!(
        target: "mamori::privsep",
        pid = child.id(),
        "management process ignored SIGTERM; killing it"
    );
    let _ = child.kill();
    child.wait().ok()
}

/// Restart delays: 1 s doubling to 60 s; back to 1 s after a child that stayed up 60 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: RESTART_MIN }
    }
}

impl Backoff {
    fn next_delay(&mut self, uptime: Duration) -> Duration {
        if uptime >= STABLE_UPTIME {
            self.next = RESTART_MIN;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(RESTART_MAX);
        delay
    }
}

/// SIGTERM, SIGINT and SIGCHLD, blocked and read through a signalfd. Restores the previous
/// mask when dropped.
struct Signals {
    fd: SignalFd,
    previous: SigSet,
}

impl Signals {
    fn block() -> Result<Self> {
        let mut set = SigSet::empty();
        for signal in PARENT_SIGNALS {
            set.add(signal);
        }
        let previous = set
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .map_err(|source| PrivsepError::Sys {
                what: "blocking signals",
                source,
            })?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|source| PrivsepError::Sys {
                what: "signalfd",
                source,
            })?;
        Ok(Self { fd, previous })
    }

    /// Drains pending signals; returns SIGTERM or SIGINT if one came.
    fn take_stop_signal(&self) -> Result<Option<Signal>> {
        let mut stop = None;
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    let signal = i32::try_from(info.ssi_signo)
                        .ok()
                        .and_then(|n| Signal::try_from(n).ok());
                    if let Some(s @ (Signal::SIGTERM | Signal::SIGINT)) = signal {
                        stop = stop.or(Some(s));
                    }
                }
                Ok(None) => return Ok(stop),
                Err(nix::Error::EINTR) => {}
                Err(source) => {
                    return Err(PrivsepError::Sys {
                        what: "reading the signalfd",
                        source,
                    });
                }
            }
        }
    }

    /// Waits `delay`, or less if SIGTERM or SIGINT arrives (then returns it).
    fn wait(&self, delay: Duration) -> Result<Option<Signal>> {
        let deadline = Instant::now() + delay;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(nix::Error::EINTR) => {}
                Ok(_) => {
                    if let Some(signal) = self.take_stop_signal()? {
                        return Ok(Some(signal));
                    }
                }
                Err(source) => {
                    return Err(PrivsepError::Sys {
                        what: "poll",
                        source,
                    });
                }
            }
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = self.previous.thread_set_mask();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use mamori_crypto::aead::Key;

    use super::*;
    use crate::wire::{read_frame, write_frame};

    fn key_of(reply: Reply) -> Key {
        match reply {
            Reply::DataKey { key } => Key::from_bytes(&key).unwrap(),
            other => panic!("expected a data key, got {other:?}"),
        }
    }

    fn state_with_kek() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure_kek(dir.path()).unwrap());
        assert!(!ensure_kek(dir.path()).unwrap());
        dir
    }

    #[test]
    fn the_data_key_is_given_once_per_child_and_refused_the_second_time() {
        let dir = state_with_kek();
        let d = Dispatcher::new(dir.path());
        let _ = key_of(d.dispatch(Request::DataKey));
        assert!(matches!(
            d.dispatch(Request::DataKey),
            Reply::Refused { .. }
        ));
        assert!(matches!(
            d.dispatch(Request::DataKey),
            Reply::Refused { .. }
        ));
        // A restarted child may have it once again.
        d.child_restarted();
        let _ = key_of(d.dispatch(Request::DataKey));
        assert!(matches!(
            d.dispatch(Request::DataKey),
            Reply::Refused { .. }
        ));
    }

    #[test]
    fn the_data_key_opens_what_it_sealed_after_a_reopen_with_the_same_kek() {
        let dir = state_with_kek();
        let first = key_of(Dispatcher::new(dir.path()).dispatch(Request::DataKey));
        let sealed = first.seal(b"store/test", b"value").unwrap();
        assert!(dir.path().join(DATA_KEY_FILE).exists());
        let second = key_of(Dispatcher::new(dir.path()).dispatch(Request::DataKey));
        assert_eq!(&second.open(b"store/test", &sealed).unwrap()[..], b"value");
    }

    #[test]
    fn a_missing_kek_fails_without_using_up_the_one_answer() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dispatcher::new(dir.path());
        assert!(matches!(d.dispatch(Request::DataKey), Reply::Failed { .. }));
        assert!(
            !dir.path().join(KEK_FILE).exists(),
            "DataKey must not create a KEK"
        );
        ensure_kek(dir.path()).unwrap();
        let _ = key_of(d.dispatch(Request::DataKey));
    }

    #[test]
    fn status_reports_this_process_and_the_restart_count() {
        let d = Dispatcher::new("/nonexistent");
        d.child_restarted();
        d.child_restarted();
        match d.dispatch(Request::Status) {
            Reply::Status {
                parent_pid,
                parent_uid,
                started_at_unix,
                child_restarts,
            } => {
                assert_eq!(parent_pid, std::process::id());
                assert_eq!(parent_uid, Uid::current().as_raw());
                assert!(started_at_unix > 1_600_000_000);
                assert_eq!(child_restarts, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn set_time_out_of_range_is_refused_before_the_clock_is_touched() {
        let d = Dispatcher::new("/nonexistent");
        for unix_ms in [
            i64::MIN,
            -1,
            0,
            crate::op::clock_floor_unix_ms() - 1,
            crate::op::CLOCK_END_UNIX_MS,
            i64::MAX,
        ] {
            for force in [false, true] {
                match d.dispatch(Request::SetTime { unix_ms, force }) {
                    Reply::Refused { reason } => assert!(
                        reason.contains("built") || reason.contains("2100"),
                        "{reason}"
                    ),
                    other => panic!("{unix_ms}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn time_requests_are_answered_without_chronyd_and_invalid_configurations_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dispatcher::with_ntp(
            dir.path(),
            NtpDaemon::new(
                dir.path(),
                mamori_time::RenderOptions::default(),
                mamori_time::ChronyOptions {
                    chronyd: "/nonexistent/chronyd".into(),
                    user: "root".into(),
                    ..mamori_time::ChronyOptions::for_device()
                },
            ),
        );
        match d.dispatch(Request::TimeStatus) {
            Reply::TimeStatus { report } => assert!(!report.enabled && !report.running),
            other => panic!("{other:?}"),
        }
        let config: TimeConfig =
            serde_json::from_str(r#"{"servers":[{"host":"127.0.0.1"}],"min_sources":2}"#).unwrap();
        assert!(matches!(
            d.dispatch(Request::ApplyTime { config }),
            Reply::Refused { .. }
        ));
        let config: TimeConfig =
            serde_json::from_str(r#"{"servers":[{"host":"127.0.0.1"}]}"#).unwrap();
        match d.dispatch(Request::ApplyTime { config }) {
            Reply::TimeApplied { running, error } => {
                assert!(!running);
                assert!(error.is_some());
            }
            other => panic!("{other:?}"),
        }
        match d.dispatch(Request::TimeStatus) {
            Reply::TimeStatus { report } => {
                assert!(report.enabled && !report.running && report.error.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    /// A stand-in for chronyd: a copy of `sleep` named `chronyd` (the name is what the parent
    /// checks), with its pid in the chrony pid file.
    fn fake_chronyd(state: &Path) -> Child {
        let bin = state.join("chronyd");
        fs::copy("/bin/sleep", &bin).unwrap();
        let child = Command::new(&bin).arg("30").spawn().unwrap();
        let pid_file = state.join(CHRONY_PID_FILE);
        fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
        fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
        child
    }

    #[test]
    fn set_time_is_refused_while_chronyd_runs_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let mut chronyd = fake_chronyd(dir.path());
        // comm is set at exec; wait until the child has exec'd.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !chronyd_running(dir.path()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(chronyd_running(dir.path()));
        let d = Dispatcher::new(dir.path());
        let in_range = crate::op::clock_floor_unix_ms() + 1000;
        match d.dispatch(Request::SetTime {
            unix_ms: in_range,
            force: false,
        }) {
            Reply::Refused { reason } => assert!(reason.contains("NTP"), "{reason}"),
            other => panic!("{other:?}"),
        }
        chronyd.kill().unwrap();
        chronyd.wait().unwrap();
        assert!(!chronyd_running(dir.path()), "a dead pid is not chronyd");
    }

    #[test]
    fn only_a_live_process_named_chronyd_counts_as_ntp_running() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!chronyd_running(dir.path()), "no pid file");
        let pid_file = dir.path().join(CHRONY_PID_FILE);
        fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
        for forged in [
            "garbage".to_string(),
            String::new(),
            "0".into(),
            "-1".into(),
            std::process::id().to_string(),
            "1".into(),
        ] {
            fs::write(&pid_file, &forged).unwrap();
            assert!(!chronyd_running(dir.path()), "{forged:?}");
        }
    }

    #[test]
    fn serve_one_answers_over_a_socketpair_and_rejects_garbage() {
        let dir = state_with_kek();
        let d = Dispatcher::new(dir.path());
        let (mut parent_end, mut child_end) = UnixStream::pair().unwrap();
        write_frame(&mut child_end, &Request::Status).unwrap();
        serve_one(&mut parent_end, &d).unwrap();
        assert!(matches!(
            read_frame::<_, Reply>(&mut child_end).unwrap(),
            Reply::Status { .. }
        ));
        child_end
            .write_all(&[0, 0, 0, 3, b'x', b'y', b'z'])
            .unwrap();
        assert!(matches!(
            serve_one(&mut parent_end, &d),
            Err(PrivsepError::Malformed(_))
        ));
        drop(child_end);
        assert!(matches!(
            serve_one(&mut parent_end, &d),
            Err(PrivsepError::ChannelClosed)
        ));
    }

    #[test]
    fn a_frame_that_stalls_half_way_is_a_violation_not_a_hang() {
        let d = Dispatcher::new("/nonexistent");
        let (mut parent_end, mut child_end) = UnixStream::pair().unwrap();
        child_end.write_all(&[0, 0, 0, 100, b'{']).unwrap();
        let started = Instant::now();
        let err = serve_one(&mut parent_end, &d).unwrap_err();
        assert!(matches!(err, PrivsepError::Channel(_)), "{err}");
        assert!(started.elapsed() >= FRAME_TIMEOUT);
    }

    #[test]
    fn a_frame_trickled_byte_by_byte_is_cut_off_at_the_frame_deadline() {
        let d = Dispatcher::new("/nonexistent");
        let (mut parent_end, mut child_end) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            // 100 bytes announced, one every 400 ms: each read would succeed within its own
            // timeout, the frame would take 40 s.
            if child_end.write_all(&[0, 0, 0, 100, b'{']).is_err() {
                return;
            }
            for _ in 0..99 {
                std::thread::sleep(Duration::from_millis(400));
                if child_end.write_all(b" ").is_err() {
                    return;
                }
            }
        });
        let started = Instant::now();
        let err = serve_one(&mut parent_end, &d).unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, PrivsepError::Channel(_)), "{err}");
        assert!(took >= FRAME_TIMEOUT, "{took:?}");
        assert!(took < FRAME_TIMEOUT + Duration::from_secs(2), "{took:?}");
        drop(parent_end);
        writer.join().unwrap();
    }

    #[test]
    fn restart_backoff_doubles_to_a_minute_and_resets_after_a_stable_run() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(2);
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.next_delay(STABLE_UPTIME).as_secs(), 1);
        assert_eq!(b.next_delay(quick).as_secs(), 2);
    }

    #[test]
    fn user_names_that_could_be_options_or_paths_are_refused() {
        for good in ["_mamori", "mamori", "m-1_x"] {
            validate_user_name(good).unwrap();
        }
        for bad in [
            "",
            "-o",
            "--help",
            "Root",
            "a/b",
            "a b",
            "a\n",
            &"a".repeat(33),
        ] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_state_layout_gives_keys_to_root_and_the_rest_to_the_child() {
        if !Uid::effective().is_root() {
            eprintln!("skipped: needs root to change owners");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        // A state directory first used in single-process mode: files owned by someone else.
        fs::create_dir_all(state.join("store")).unwrap();
        fs::write(state.join("store/db"), b"x").unwrap();
        fs::create_dir_all(state.join("store/sub")).unwrap();
        fs::write(state.join("store/sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", state.join("store/link")).unwrap();
        fs::write(dir.path().join("outside"), b"x").unwrap();
        fs::hard_link(dir.path().join("outside"), state.join("store/hard")).unwrap();
        let (uid, gid) = (Uid::from_raw(4242), Gid::from_raw(4243));
        prepare_state_dir(&state, uid, gid).unwrap();

        let owner = |p: &str| {
            let m = fs::symlink_metadata(state.join(p)).unwrap();
            (m.uid(), m.gid(), m.permissions().mode() & 0o7777)
        };
        assert_eq!(owner(""), (0, 0, 0o755));
        assert_eq!(owner("keys"), (0, 0, 0o700));
        assert_eq!(owner("keys/kek"), (0, 0, 0o600));
        for d in CHILD_DIRS {
            assert_eq!(owner(d), (4242, 4243, 0o700), "{d}");
        }
        assert_eq!(owner("store/db").0, 4242);
        assert_eq!(owner("store/sub").0, 4242);
        assert_eq!(owner("store/sub/f").0, 4242);
        assert_eq!(owner("store/link").0, 4242, "the link itself is chowned");
        assert_eq!(
            fs::metadata("/etc/passwd").unwrap().uid(),
            0,
            "its target is not"
        );
        assert_eq!(owner("store/hard").0, 0, "hard-linked files are left alone");
        // Idempotent.
        prepare_state_dir(&state, uid, gid).unwrap();
    }

    #[test]
    fn a_symlink_in_place_of_a_state_directory_is_refused() {
        if !Uid::effective().is_root() {
            eprintln!("skipped: needs root to change owners");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap();
        std::os::unix::fs::symlink("/etc", state.join("tls")).unwrap();
        let err = prepare_state_dir(&state, Uid::from_raw(4242), Gid::from_raw(4242)).unwrap_err();
        assert!(matches!(err, PrivsepError::StateDirUnsafe { .. }), "{err}");
        assert_eq!(fs::metadata("/etc").unwrap().uid(), 0);
    }
}
