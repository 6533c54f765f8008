//! Applying a configuration to the kernel: the ruleset with `nft`, addresses and static routes
//! with `ip -batch` (iproute2). Run by the privileged parent, in its own network namespace, or
//! by tests inside a namespace of their own ([`Applier::in_netns`]).
//!
//! # Order
//!
//! 1. [`Applier::check`] (the dry run, `CheckNetwork`): validate, render, `nft -c -f -`, and
//!    check that every interface the configuration names exists. Nothing changes; a failure
//!    names its step.
//! 2. [`Applier::apply`] (`ApplyNetwork`): validate, render, the interfaces exist
//!    ([`Applier::prepare`]; no dry run), then [`Applier::commit`]: read what a failure would
//!    put back (the restore point of mamori's tables, the addresses of the configured
//!    interfaces, mamori's routes), write the address record (below) as the union of old and
//!    new, load the ruleset with `nft -f -`, then one `ip -batch -` that sets the configured
//!    interfaces up, deletes mamori's stale routes and addresses and adds the missing ones. If
//!    the batch stops half-way, the addresses, routes, link states and mamori's tables are put
//!    back and the error names the step ([`ApplyStep`]) and whether the restore was complete
//!    ([`Rollback`]).
//!
//! # Why the apply does not dry-run, and where the restore point comes from
//!
//! `nft -f` is itself one transaction: the kernel commits the whole file or, if it refuses any
//! part of it, nothing (tested: a refused load leaves the ruleset byte-identical). A dry run
//! before the load would only repeat, at the same cost, the check the load makes anyway; the
//! dry run belongs to [`Applier::check`], which the configuration pipeline calls before it
//! persists a candidate. A refused load answers step `load`, nothing changed.
//!
//! To put mamori's tables back after a half-way failure, the applier keeps the text it last
//! loaded, in memory, instead of listing the tables back (`nft -s list table` of 10,000 rules
//! costs as much as loading them). The rendered text replaces exactly mamori's two tables
//! (`table X` / `delete table X` / `table X { … }`), so loading it again restores them. Only
//! when it has loaded nothing yet (the first apply after the parent started, or after a
//! restore that failed) does it list the tables. This is safe because mamori's tables are
//! mamori's: a change another program made to them between two loads is overwritten by the
//! next load anyway, and the restore point is the last state mamori put there, which is what
//! the previous configuration means. Other tables are never part of either script.
//!
//! # Applying the configuration in force again
//!
//! The management process applies the running revision at each start, so an apply of the
//! configuration the kernel already holds must be cheap. The load is skipped only when both
//! hold: the rendered text is byte-identical to the text this applier loaded last, and the
//! kernel's nftables generation ([`Nft::generation`], moved by every committed nftables
//! transaction of any program) is the one read right after that load, and that load was the
//! only transaction in between (generation before + 1). Then no table can have changed since
//! the kernel took exactly this text. Comparing the text alone would miss a flushed chain or a
//! deleted table; checking that the tables exist would miss a rule added to them; listing them
//! costs as much as the load. Any other transaction since (another program's table, a restore)
//! makes the next apply load again. Links, addresses and routes are always compared and
//! corrected. [`Applied::load`] says whether nft ran.
//!
//! # Not announcing its own loads
//!
//! While any socket listens to the nftables notification group, the kernel builds one
//! notification for every object a transaction adds or deletes, inside the commit: at 10,000
//! rules that was 15–20 % of the load's time, and 50 % for a 50,000-entry set, measured with the
//! firewall monitor listening (docs/benchmarks.md). The monitor has nothing to learn from
//! mamori's own loads (the configuration pipeline records them, with revision and diff), so an
//! applier given a [`LoadQuiet`] ([`Applier::with_quiet`]) asks it to stop listening around
//! each `nft -f` and reports the generations the load went from and to
//! ([`Applied::generations`]): the load's own, and any other program's commit in that window,
//! which the caller records as unseen.
//!
//! # What is mamori's
//!
//! - Routes carry the route protocol [`ROUTE_PROTO`] (109, unassigned in `rt_protos`): the
//!   kernel keeps the mark, `ip route show proto 109` lists exactly mamori's routes.
//! - Addresses cannot be marked with the iproute2 this targets (`ip address add … proto` needs
//!   iproute2 ≥ 6.2; Debian 12 ships 6.1), so the applier keeps a record file of the addresses
//!   it set, per interface (JSON, written durably before the kernel changes). Only recorded
//!   addresses are ever deleted; addresses set by someone else (a DHCP client, an operator)
//!   stay, and so do link-local addresses. Interfaces the configuration does not name are never
//!   touched, not even their recorded addresses.
//!
//! # Why `ip -batch` and not rtnetlink
//!
//! The lab crate made the same choice (`docs/lab.md`): one process per step, a failing line
//! reported by number (`Command failed -:N`), the same text an operator would type, no async
//! runtime in the parent, and no netlink message building in our code. A few milliseconds of
//! `execve` are noise next to `nft` (tens of milliseconds); the privileged parent is allowed to
//! `execve`, the management process is not.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::NetworkConfig;
use crate::nft::{Nft, NftError};
use crate::render::{FILTER_TABLE, NAT_TABLE, Ruleset, render};

/// The route protocol number that marks mamori's routes (`ip route … proto 109`).
pub const ROUTE_PROTO: u8 = 109;
/// At most this many lines of a tool's standard error are kept in an error.
pub const DETAIL_MAX_LINES: usize = 8;
/// At most this many bytes of a tool's standard error are kept in an error.
pub const DETAIL_MAX_BYTES: usize = 1024;

/// The step of an apply that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyStep {
    /// The configuration's checks ([`NetworkConfig::validate`]).
    Validate,
    /// `nft -c -f -`: nft refused the rendered ruleset.
    Check,
    /// An interface the configuration names does not exist.
    Interfaces,
    /// Reading the current state (tables, addresses, routes, the record).
    Snapshot,
    /// Writing the address record.
    Record,
    /// `nft -f -`: the load was refused (nothing changed).
    Load,
    /// Setting links up, deleting or adding addresses.
    Addresses,
    /// Deleting or adding routes.
    Routes,
}

impl ApplyStep {
    /// The step's name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Check => "check",
            Self::Interfaces => "interfaces",
            Self::Snapshot => "snapshot",
            Self::Record => "record",
            Self::Load => "load",
            Self::Addresses => "addresses",
            Self::Routes => "routes",
        }
    }
}

impl std::fmt::Display for ApplyStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of the kernel's state after a failed apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum Rollback {
    /// The failure came before anything changed.
    NothingChanged,
    /// Things had changed; the previous addresses, routes and ruleset were put back.
    Restored,
    /// Things had changed and putting them back failed too (bounded detail).
    Incomplete(String),
}

/// Why an apply did not happen or did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network apply failed at {step}: {detail} ({rollback:?})")]
pub struct ApplyError {
    /// The step that failed.
    pub step: ApplyStep,
    /// The first lines of the tool's standard error, or the first validation problems; at most
    /// [`DETAIL_MAX_LINES`] lines and [`DETAIL_MAX_BYTES`] bytes.
    pub detail: String,
    /// What became of the state.
    pub rollback: Rollback,
}

impl ApplyError {
    fn early(step: ApplyStep, detail: impl AsRef<str>) -> Self {
        Self {
            step,
            detail: bounded(detail.as_ref()),
            rollback: Rollback::NothingChanged,
        }
    }
}

/// The first [`DETAIL_MAX_LINES`] lines of `text`, cut to [`DETAIL_MAX_BYTES`] bytes on a
/// character boundary.
pub fn bounded(text: &str) -> String {
    let mut out = text
        .lines()
        .take(DETAIL_MAX_LINES)
        .collect::<Vec<_>>()
        .join("\n");
    if out.len() > DETAIL_MAX_BYTES {
        let mut end = DETAIL_MAX_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

fn nft_detail(e: &NftError) -> String {
    match e {
        NftError::Rejected { stderr, .. } => bounded(stderr),
        other => bounded(&other.to_string()),
    }
}

/// A configuration that passed [`Applier::check`] or [`Applier::prepare`], ready for
/// [`Applier::commit`].
#[derive(Debug, Clone)]
pub struct Prepared {
    ruleset: Ruleset,
    addresses: BTreeMap<String, BTreeSet<IpNet>>,
    routes: BTreeSet<RouteKey>,
    /// How long validate + render and the interface check (`ip -j address`) took.
    pub render: Duration,
    /// How long `nft -c` took; `None` when it was not run ([`Applier::prepare`]).
    pub check: Option<Duration>,
}

impl Prepared {
    /// The ruleset that will be loaded.
    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }
}

/// How long the steps of a successful apply took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Validate + render and the interface check.
    pub render: Duration,
    /// `nft -c`, when this apply dry-ran ([`Applier::apply_rendered`]); `None` for
    /// [`Applier::apply`], whose load is its own check.
    pub check: Option<Duration>,
    /// Reading what a failure would put back (links, addresses, routes, the nftables
    /// generation; mamori's tables only when listed) and writing the address record when it
    /// grows.
    pub snapshot: Duration,
    /// The restore point of mamori's tables was listed from the kernel (`nft -s list table`,
    /// which grows with the ruleset in force): the first apply since this applier was made, or
    /// the first after a failed restore. Otherwise it is the text loaded last, from memory.
    pub snapshot_listed: bool,
    /// `nft -f`; `None` when the kernel already held exactly this ruleset (the text loaded
    /// last, no nftables transaction since) and nft did not run.
    pub load: Option<Duration>,
    /// The one `ip -batch` of links, addresses and routes.
    pub addresses: Duration,
    /// The nftables generations around the load, when nft ran and both readings worked.
    pub generations: Option<Generations>,
}

/// What the kernel holds of what mamori manages, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkState {
    /// `nft -s list table inet mamori` and `… mamori_nat` (empty for a missing table).
    pub ruleset: String,
    /// Per interface asked about: its addresses other than link-local, as `addr/len`, sorted.
    /// A missing interface has no entry.
    pub addresses: BTreeMap<String, Vec<String>>,
    /// mamori's routes (protocol [`ROUTE_PROTO`]) as `DST via GW dev DEV metric M`, sorted.
    pub routes: Vec<String>,
}

/// A route as mamori adds it: destination, gateway, metric (the kernel's default filled in).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RouteKey {
    dst: IpNet,
    gateway: IpAddr,
    metric: u32,
    dev: Option<String>,
}

impl RouteKey {
    fn same(&self, other: &Self) -> bool {
        self.dst == other.dst && self.gateway == other.gateway && self.metric == other.metric
    }
}

/// The address record: per interface, the addresses mamori set.
type Record = BTreeMap<String, BTreeSet<IpNet>>;

/// One interface as read back.
#[derive(Debug, Clone)]
struct Link {
    up: bool,
    /// Non-link-local addresses.
    addresses: BTreeSet<IpNet>,
}

/// Stops the nftables notifications of this namespace from being built around a load of
/// mamori's own: the privileged parent's handle on the firewall monitor's socket (it leaves
/// the notification group and joins it again).
pub trait LoadQuiet: Send + Sync {
    /// Stop listening. An error is logged by the caller and the load goes on announced.
    fn pause(&self) -> std::io::Result<()>;
    /// Listen again. Called after every successful [`LoadQuiet::pause`], whatever the load did.
    fn resume(&self) -> std::io::Result<()>;
}

/// The nftables generations around one load (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generations {
    /// Read before the load (after notifications were paused).
    pub before: u32,
    /// Read after the load (before they were resumed). `after - before - 1` transactions of
    /// other programs committed meanwhile, unannounced.
    pub after: u32,
    /// Notifications were paused around the load (a [`LoadQuiet`] was given and paused).
    pub quiet: bool,
}

impl Generations {
    /// Transactions of other programs committed during the load's window.
    pub fn others(&self) -> u32 {
        self.after.wrapping_sub(self.before).saturating_sub(1)
    }
}

/// What [`Applier::commit`] reads before changing anything, to put it back.
#[derive(Debug, Clone)]
struct Snapshot {
    /// A script that replaces mamori's two tables with what they held (see [`RESET`]).
    tables: String,
    /// `tables` was listed from the kernel rather than taken from memory.
    listed: bool,
    links: BTreeMap<String, Link>,
    routes: Vec<RouteKey>,
}

/// The start of every restore: both of mamori's tables are made to exist and deleted, so the
/// script that follows rebuilds exactly what it names, whatever the failed apply left.
const RESET: &str = "table inet mamori\ndelete table inet mamori\ntable inet mamori_nat\ndelete table inet mamori_nat\n";

/// The text this applier loaded last into mamori's tables.
#[derive(Clone)]
struct Loaded {
    /// A rendered ruleset, or a restore point put back.
    script: String,
    /// The nftables generation right after that load, if the load was the only transaction
    /// between the readings before and after it; `None`: unknown (never skips a load).
    generation: Option<u32>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("bytes", &self.script.len())
            .field("generation", &self.generation)
            .finish()
    }
}

/// Applies configurations in one network namespace.
///
/// It remembers the ruleset text it loaded last (the restore point of the next apply, and
/// what lets an apply of the configuration in force skip nft), so keep one applier per
/// namespace for as long as the process runs: the privileged parent has one.
#[derive(Clone)]
pub struct Applier {
    netns: Option<String>,
    record: PathBuf,
    loaded: Option<Loaded>,
    quiet: Option<std::sync::Arc<dyn LoadQuiet>>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("netns", &self.netns)
            .field("record", &self.record)
            .field("loaded", &self.loaded)
            .field("quiet", &self.quiet.is_some())
            .finish()
    }
}

impl Applier {
    /// In the caller's network namespace, keeping the address record at `record`.
    pub fn new(record: impl Into<PathBuf>) -> Self {
        Self {
            netns: None,
            record: record.into(),
            loaded: None,
            quiet: None,
        }
    }

    /// Pauses the nftables notifications through `quiet` around each load (see the module
    /// documentation).
    pub fn with_quiet(mut self, quiet: std::sync::Arc<dyn LoadQuiet>) -> Self {
        self.quiet = Some(quiet);
        self
    }

    /// The network namespace it works in (`None`: this process's).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// In the named network namespace (`ip -n NAME`, `ip netns exec NAME nft`).
    pub fn in_netns(name: &str, record: impl Into<PathBuf>) -> Self {
        Self {
            netns: Some(name.to_owned()),
            record: record.into(),
            loaded: None,
            quiet: None,
        }
    }

    /// Whether the kernel holds exactly `ruleset` as this applier loaded it: the same text,
    /// and no nftables transaction since (the generation read right after the load).
    pub fn holds(&self, ruleset: &Ruleset) -> bool {
        match &self.loaded {
            Some(Loaded {
                script,
                generation: Some(after),
            }) if script == ruleset.as_str() => self.nft().generation().ok() == Some(*after),
            _ => false,
        }
    }

    /// Loads `script` into mamori's tables and remembers it with the generation after the
    /// load, if the load was the only transaction between the two readings.
    ///
    /// With a [`LoadQuiet`], notifications are paused first (so `before` already counts every
    /// transaction the listener saw) and resumed after `after` was read. Returns the
    /// generations around the load when both readings worked.
    fn load_and_remember(&mut self, script: &Ruleset) -> Result<Option<Generations>, NftError> {
        let nft = self.nft();
        let quiet = self.quiet.clone().filter(|q| match q.pause() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "nftables notifications not paused for the load");
                false
            }
        });
        let before = nft.generation().ok();
        self.loaded = None;
        let loaded = nft.load(script);
        let after = nft.generation().ok();
        if let Some(q) = &quiet
            && let Err(e) = q.resume()
        {
            tracing::error!(error = %e, "nftables notifications not resumed after the load");
        }
        loaded?;
        self.loaded = Some(Loaded {
            script: script.as_str().to_owned(),
            generation: after.filter(|a| before.is_some_and(|b| b.wrapping_add(1) == *a)),
        });
        Ok(before.zip(after).map(|(before, after)| Generations {
            before,
            after,
            quiet: quiet.is_some(),
        }))
    }

    /// The address record's path.
    pub fn record_path(&self) -> &Path {
        &self.record
    }

    fn nft(&self) -> Nft {
        match &self.netns {
            Some(ns) => Nft::in_netns(ns),
            None => Nft::new(),
        }
    }

    /// Validates, renders, dry-runs with `nft -c`, and checks the interfaces exist. Changes
    /// nothing. This is `CheckNetwork`.
    pub fn check(&self, cfg: &NetworkConfig) -> Result<Prepared, ApplyError> {
        let started = Instant::now();
        let ruleset = render(cfg).map_err(|e| validation_error(&e))?;
        self.check_inner(cfg, ruleset, started.elapsed(), true)
    }

    /// Validates, renders, and checks the interfaces exist, without the dry run: for
    /// [`Applier::commit`], whose `nft -f` refuses a bad ruleset as a whole (one transaction).
    pub fn prepare(&self, cfg: &NetworkConfig) -> Result<Prepared, ApplyError> {
        let started = Instant::now();
        let ruleset = render(cfg).map_err(|e| validation_error(&e))?;
        self.check_inner(cfg, ruleset, started.elapsed(), false)
    }

    /// Like [`Applier::prepare`] with a ruleset rendered elsewhere: nothing checks the text
    /// before [`Applier::commit`] loads it, where nft refuses a bad one as a whole.
    pub fn prepare_rendered(
        &self,
        cfg: &NetworkConfig,
        ruleset: Ruleset,
    ) -> Result<Prepared, ApplyError> {
        let started = Instant::now();
        cfg.validate().map_err(|e| validation_error(&e))?;
        self.check_inner(cfg, ruleset, started.elapsed(), false)
    }

    /// Like [`Applier::check`] with a ruleset rendered elsewhere (a stored revision's text):
    /// the configuration is validated again for its addresses and routes, and `nft -c` is the
    /// only check of the text.
    pub fn check_rendered(
        &self,
        cfg: &NetworkConfig,
        ruleset: Ruleset,
    ) -> Result<Prepared, ApplyError> {
        let started = Instant::now();
        cfg.validate().map_err(|e| validation_error(&e))?;
        self.check_inner(cfg, ruleset, started.elapsed(), true)
    }

    /// [`Applier::check_rendered`], then [`Applier::commit`]: text that was not rendered here
    /// is dry-run first, so a bad one is refused at step `check`.
    pub fn apply_rendered(
        &mut self,
        cfg: &NetworkConfig,
        ruleset: Ruleset,
    ) -> Result<Applied, ApplyError> {
        let prepared = self.check_rendered(cfg, ruleset)?;
        self.commit(prepared)
    }

    fn check_inner(
        &self,
        cfg: &NetworkConfig,
        ruleset: Ruleset,
        render_time: Duration,
        dry_run: bool,
    ) -> Result<Prepared, ApplyError> {
        let check = if dry_run {
            let started = Instant::now();
            self.nft()
                .check(&ruleset)
                .map_err(|e| ApplyError::early(ApplyStep::Check, nft_detail(&e)))?;
            Some(started.elapsed())
        } else {
            None
        };
        let started = Instant::now();
        let links = self
            .links()
            .map_err(|d| ApplyError::early(ApplyStep::Interfaces, d))?;
        let interfaces_time = started.elapsed();
        let missing: Vec<&str> = cfg
            .interfaces
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !links.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            return Err(ApplyError::early(
                ApplyStep::Interfaces,
                format!("no such interface: {}", missing.join(", ")),
            ));
        }
        let addresses = cfg
            .interfaces
            .iter()
            .map(|i| {
                (
                    i.name.as_str().to_owned(),
                    i.addresses.iter().copied().collect(),
                )
            })
            .collect();
        let routes = cfg
            .routes
            .iter()
            .map(|r| RouteKey {
                dst: r.destination.net(),
                gateway: r.gateway,
                metric: r.metric.unwrap_or(default_metric(r.gateway)),
                dev: None,
            })
            .collect();
        Ok(Prepared {
            ruleset,
            addresses,
            routes,
            render: render_time + interfaces_time,
            check,
        })
    }

    /// [`Applier::prepare`], then [`Applier::commit`]. This is `ApplyNetwork`: no dry run
    /// (the pipeline ran [`Applier::check`] first, and the load is one transaction).
    pub fn apply(&mut self, cfg: &NetworkConfig) -> Result<Applied, ApplyError> {
        let prepared = self.prepare(cfg)?;
        self.commit(prepared)
    }

    /// Loads a prepared configuration: the ruleset (unless the kernel holds exactly it
    /// already, [`Applier::holds`]), then links, addresses and routes; puts the previous state
    /// back if the second part fails.
    pub fn commit(&mut self, p: Prepared) -> Result<Applied, ApplyError> {
        let started = Instant::now();
        let record = self
            .read_record()
            .map_err(|d| ApplyError::early(ApplyStep::Snapshot, d))?;
        let unchanged = self.holds(&p.ruleset);
        let snapshot = self
            .snapshot(p.addresses.keys())
            .map_err(|d| ApplyError::early(ApplyStep::Snapshot, d))?;
        // Everything this apply may add is in the record before the kernel has it.
        let mut union = record.clone();
        for (name, addrs) in &p.addresses {
            union.entry(name.clone()).or_default().extend(addrs);
        }
        // (Written only when it changes: the same configuration again costs no fsync.)
        let grew = union != record;
        if grew {
            self.write_record(&union)
                .map_err(|d| ApplyError::early(ApplyStep::Record, d))?;
        }
        let before_load = started.elapsed();

        let started = Instant::now();
        let (load, generations) = if unchanged {
            (None, None)
        } else {
            let previous = self.loaded.clone();
            match self.load_and_remember(&p.ruleset) {
                Ok(generations) => (Some(started.elapsed()), generations),
                Err(e) => {
                    // nft -f is one transaction: nothing changed, what was loaded last still is.
                    self.loaded = previous;
                    if grew {
                        let _ = self.write_record(&record);
                    }
                    return Err(ApplyError::early(ApplyStep::Load, nft_detail(&e)));
                }
            }
        };

        let started = Instant::now();
        let lines = plan(&p, &snapshot, &record);
        if let Err((step, detail)) = self.batch(&lines, false) {
            let rollback = match self.restore(&snapshot, &p.addresses, load.is_some()) {
                Ok(()) => {
                    // Back where it was: the old record is true again.
                    if grew {
                        let _ = self.write_record(&record);
                    }
                    Rollback::Restored
                }
                Err(d) => Rollback::Incomplete(bounded(&d)),
            };
            return Err(ApplyError {
                step,
                detail: bounded(&detail),
                rollback,
            });
        }
        let mut done = record;
        for (name, addrs) in &p.addresses {
            done.insert(name.clone(), addrs.clone());
        }
        // On disk now: `union`.
        if done != union {
            self.write_record(&done).map_err(|d| ApplyError {
                step: ApplyStep::Record,
                detail: bounded(&d),
                // The kernel has the new configuration; the record still lists every address
                // set.
                rollback: Rollback::Incomplete("the kernel holds the new configuration".to_owned()),
            })?;
        }
        Ok(Applied {
            render: p.render,
            check: p.check,
            snapshot: before_load,
            snapshot_listed: snapshot.listed,
            load,
            addresses: started.elapsed(),
            generations,
        })
    }

    /// What the kernel holds: mamori's tables, the addresses of `interfaces`, mamori's routes.
    pub fn state<'a>(
        &self,
        interfaces: impl IntoIterator<Item = &'a str>,
    ) -> Result<NetworkState, ApplyError> {
        let fail = |d: String| ApplyError::early(ApplyStep::Snapshot, d);
        let mut ruleset = String::new();
        for (_, text) in self.tables().map_err(fail)? {
            if let Some(text) = text {
                ruleset.push_str(&text);
            }
        }
        let links = self.links().map_err(fail)?;
        let addresses = interfaces
            .into_iter()
            .filter_map(|n| {
                links.get(n).map(|l| {
                    (
                        n.to_owned(),
                        l.addresses.iter().map(ToString::to_string).collect(),
                    )
                })
            })
            .collect();
        let mut routes: Vec<String> = self
            .routes()
            .map_err(fail)?
            .iter()
            .map(|r| {
                format!(
                    "{} via {} dev {} metric {}",
                    r.dst,
                    r.gateway,
                    r.dev.as_deref().unwrap_or("?"),
                    r.metric
                )
            })
            .collect();
        routes.sort();
        Ok(NetworkState {
            ruleset,
            addresses,
            routes,
        })
    }

    // ---- reading ------------------------------------------------------------------------

    fn ip(&self) -> Command {
        let mut c = Command::new("ip");
        if let Some(ns) = &self.netns {
            c.args(["-n", ns]);
        }
        c
    }

    fn ip_json(&self, args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
        let out = self
            .ip()
            .arg("-json")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip -json {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(&text).map_err(|e| format!("ip -json {}: {e}", args.join(" ")))
    }

    /// Every interface with its state and non-link-local addresses.
    fn links(&self) -> Result<BTreeMap<String, Link>, String> {
        let mut links = BTreeMap::new();
        for l in self.ip_json(&["address", "show"])? {
            let Some(name) = l["ifname"].as_str() else {
                continue;
            };
            let up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("UP")));
            let mut addresses = BTreeSet::new();
            for a in l["addr_info"].as_array().into_iter().flatten() {
                if a["scope"].as_str() == Some("link") {
                    continue;
                }
                let (Some(local), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64())
                else {
                    continue;
                };
                if let Ok(net) = format!("{local}/{len}").parse::<IpNet>() {
                    addresses.insert(net);
                }
            }
            links.insert(name.to_owned(), Link { up, addresses });
        }
        Ok(links)
    }

    /// mamori's routes (protocol [`ROUTE_PROTO`]) in the main table, both families.
    fn routes(&self) -> Result<Vec<RouteKey>, String> {
        let proto = ROUTE_PROTO.to_string();
        let mut routes = Vec::new();
        for family in ["-4", "-6"] {
            for r in self.ip_json(&[family, "route", "show", "proto", &proto])? {
                let dst = match r["dst"].as_str() {
                    Some("default") if family == "-4" => "0.0.0.0/0".to_owned(),
                    Some("default") => "::/0".to_owned(),
                    Some(d) if d.contains('/') => d.to_owned(),
                    Some(d) if family == "-4" => format!("{d}/32"),
                    Some(d) => format!("{d}/128"),
                    None => continue,
                };
                let (Ok(dst), Some(Ok(gateway))) = (
                    dst.parse::<IpNet>(),
                    r["gateway"].as_str().map(str::parse::<IpAddr>),
                ) else {
                    continue;
                };
                let metric = r["metric"]
                    .as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(0);
                routes.push(RouteKey {
                    dst,
                    gateway,
                    metric,
                    dev: r["dev"].as_str().map(str::to_owned),
                });
            }
        }
        Ok(routes)
    }

    /// mamori's two tables as `nft -s list table` (None: the table does not exist).
    fn tables(&self) -> Result<Vec<(&'static str, Option<String>)>, String> {
        let nft = self.nft();
        let listed = nft
            .list_tables()
            .map_err(|e| format!("nft list tables: {}", nft_detail(&e)))?;
        let mut out = Vec::new();
        for name in [FILTER_TABLE, NAT_TABLE] {
            let text = if listed.iter().any(|t| t == &format!("table inet {name}")) {
                Some(
                    nft.list_table_stateless(name)
                        .map_err(|e| format!("nft list table: {}", nft_detail(&e)))?,
                )
            } else {
                None
            };
            out.push((name, text));
        }
        Ok(out)
    }

    /// The restore point of mamori's tables: the text loaded last, or (none yet) the tables
    /// as listed, as one script after [`RESET`]. The second says whether it was listed.
    fn restore_point(&self) -> Result<(String, bool), String> {
        if let Some(loaded) = &self.loaded {
            return Ok((loaded.script.clone(), false));
        }
        let mut script = String::new();
        for (name, text) in self.tables()? {
            if let Some(text) = text {
                script.push_str(&format!("table inet {name}\ndelete table inet {name}\n"));
                script.push_str(&text);
                script.push('\n');
            }
        }
        Ok((script, true))
    }

    fn snapshot<'a>(
        &self,
        interfaces: impl Iterator<Item = &'a String>,
    ) -> Result<Snapshot, String> {
        let (tables, listed) = self.restore_point()?;
        let all = self.links()?;
        let links = interfaces
            .filter_map(|n| all.get(n).map(|l| (n.clone(), l.clone())))
            .collect();
        Ok(Snapshot {
            tables,
            listed,
            links,
            routes: self.routes()?,
        })
    }

    fn read_record(&self) -> Result<Record, String> {
        match std::fs::read(&self.record) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("address record {}: {e}", self.record.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::new()),
            Err(e) => Err(format!("address record {}: {e}", self.record.display())),
        }
    }

    fn write_record(&self, record: &Record) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
        mamori_durable::write(&self.record, &text, 0o600)
            .map_err(|e| format!("address record {}: {e}", self.record.display()))
    }

    // ---- changing -----------------------------------------------------------------------

    /// Runs `lines` as one `ip -batch -` (with `-force`: on, not stopping at a failing line).
    /// A failure names the step of the line iproute2 reports.
    fn batch(&self, lines: &[(ApplyStep, String)], force: bool) -> Result<(), (ApplyStep, String)> {
        if lines.is_empty() {
            return Ok(());
        }
        let first_step = lines.first().map_or(ApplyStep::Addresses, |l| l.0);
        let mut cmd = self.ip();
        if force {
            cmd.arg("-force");
        }
        let mut child = cmd
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| (first_step, format!("could not run ip: {e}")))?;
        let script: String = lines.iter().map(|(_, c)| format!("{c}\n")).collect();
        if let Some(mut stdin) = child.stdin.take() {
            // A write error means ip stopped early; its exit status and stderr say why.
            let _ = stdin.write_all(script.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| (first_step, format!("waiting for ip: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let line = stderr
            .rsplit("Command failed -:")
            .next()
            .filter(|_| stderr.contains("Command failed -:"))
            .and_then(|r| r.split_whitespace().next()?.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| lines.get(i));
        Err(match line {
            Some((step, command)) => (*step, format!("ip {command}: {stderr}")),
            None => (first_step, stderr),
        })
    }

    /// Puts back the links, addresses, routes and (`tables`: the apply loaded a ruleset) the
    /// tables of `snap`. Only addresses this apply meant to add (`added`) are deleted, so one
    /// that another program set meanwhile stays.
    fn restore(
        &mut self,
        snap: &Snapshot,
        added: &BTreeMap<String, BTreeSet<IpNet>>,
        tables: bool,
    ) -> Result<(), String> {
        let mut problems = Vec::new();
        let now_links = self.links()?;
        let now_routes = self.routes()?;
        let mut lines = Vec::new();
        for r in &now_routes {
            if !snap.routes.iter().any(|s| s.same(r)) {
                lines.push((ApplyStep::Routes, route_del(r)));
            }
        }
        for (name, was) in &snap.links {
            let Some(now) = now_links.get(name) else {
                continue;
            };
            let ours = added.get(name);
            for a in now.addresses.difference(&was.addresses) {
                if ours.is_some_and(|o| o.contains(a)) {
                    lines.push((ApplyStep::Addresses, format!("address del {a} dev {name}")));
                }
            }
            for a in was.addresses.difference(&now.addresses) {
                lines.push((ApplyStep::Addresses, format!("address add {a} dev {name}")));
            }
            if now.up != was.up {
                let state = if was.up { "up" } else { "down" };
                lines.push((ApplyStep::Addresses, format!("link set dev {name} {state}")));
            }
        }
        for r in &snap.routes {
            if !now_routes.iter().any(|n| n.same(r)) {
                lines.push((ApplyStep::Routes, route_replace(r)));
            }
        }
        if let Err((_, d)) = self.batch(&lines, true) {
            problems.push(d);
        }
        if tables {
            let script = Ruleset::dangerous_from_text(format!("{RESET}{}", snap.tables));
            match self.load_and_remember(&script) {
                // What the kernel holds now is the restore point itself.
                Ok(_) => {
                    if let Some(loaded) = &mut self.loaded {
                        loaded.script.clone_from(&snap.tables);
                    }
                }
                // Unknown: the next apply lists the tables again.
                Err(e) => {
                    self.loaded = None;
                    problems.push(format!("restoring the ruleset: {}", nft_detail(&e)));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

fn validation_error(e: &crate::ValidationErrors) -> ApplyError {
    let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    ApplyError::early(ApplyStep::Validate, lines.join("\n"))
}

fn default_metric(gateway: IpAddr) -> u32 {
    // What the kernel fills in when no metric is given.
    if gateway.is_ipv4() { 0 } else { 1024 }
}

/// Deletes one of mamori's routes. Only typed values reach the line (no device name read from
/// the kernel).
fn route_del(r: &RouteKey) -> String {
    format!(
        "route del {} via {} metric {} proto {ROUTE_PROTO}",
        r.dst, r.gateway, r.metric
    )
}

fn route_replace(r: &RouteKey) -> String {
    format!(
        "route replace {} via {} metric {} proto {ROUTE_PROTO}",
        r.dst, r.gateway, r.metric
    )
}

/// The `ip -batch` lines that take the snapshot's state to the prepared one: links up, stale
/// routes and recorded stale addresses deleted, missing addresses and routes added.
fn plan(p: &Prepared, snap: &Snapshot, record: &Record) -> Vec<(ApplyStep, String)> {
    let mut lines = Vec::new();
    for (name, link) in &snap.links {
        if !link.up {
            lines.push((ApplyStep::Addresses, format!("link set dev {name} up")));
        }
    }
    // Routes first: a stale route through a gateway on a subnet about to go would vanish with
    // it, and deleting it afterwards would fail.
    for r in &snap.routes {
        if !p.routes.iter().any(|want| want.same(r)) {
            lines.push((ApplyStep::Routes, route_del(r)));
        }
    }
    let empty = BTreeSet::new();
    for (name, want) in &p.addresses {
        let have = snap.links.get(name).map_or(&empty, |l| &l.addresses);
        let ours = record.get(name).unwrap_or(&empty);
        for a in have.intersection(ours) {
            if !want.contains(a) {
                lines.push((ApplyStep::Addresses, format!("address del {a} dev {name}")));
            }
        }
    }
    for (name, want) in &p.addresses {
        let have = snap.links.get(name).map_or(&empty, |l| &l.addresses);
        for a in want.difference(have) {
            lines.push((ApplyStep::Addresses, format!("address add {a} dev {name}")));
        }
    }
    for r in &p.routes {
        if !snap.routes.iter().any(|s| s.same(r)) {
            lines.push((ApplyStep::Routes, route_replace(r)));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_bounded_in_lines_and_bytes() {
        let many: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(bounded(&many).lines().count(), DETAIL_MAX_LINES);
        let long = "あ".repeat(1000);
        let cut = bounded(&long);
        assert!(cut.len() <= DETAIL_MAX_BYTES);
        assert!(cut.chars().all(|c| c == 'あ'));
    }

    #[test]
    fn steps_have_stable_names() {
        assert_eq!(
            serde_json::to_string(&ApplyStep::Addresses).unwrap(),
            r#""addresses""#
        );
        assert_eq!(ApplyStep::Check.to_string(), "check");
        assert_eq!(
            serde_json::to_string(&Rollback::Restored).unwrap(),
            r#"{"state":"restored"}"#
        );
    }
}
