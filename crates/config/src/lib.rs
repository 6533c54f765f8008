//! Configuration revisions and the commit-confirm window, kept durably in the encrypted store
//! (issue 5, item 2; the pipeline of spec/DESIGN.md).
//!
//! - Every committed configuration is a [`Revision`]: a monotonic id, author, [`Channel`], UTC
//!   time, comment and the whole [`NetworkConfig`]. [`Configs::history`], [`Configs::get`],
//!   [`Configs::diff`] and [`Configs::rollback_to`] (a new candidate equal to revision N, through
//!   the same commit path) work on them. At least [`MIN_KEEP`] are kept ([`DEFAULT_KEEP`] by
//!   default); pruning never removes the running revision, the revisions a pending commit
//!   names, or the rescue configuration (the factory one for the device's interfaces).
//! - [`Configs::commit`] runs validate → anti-lockout check (when a session is given) →
//!   [`Apply::check`] (dry run) → **the pending marker is persisted** → [`Apply::apply`] →
//!   [`Apply::probe`]. A failing apply or probe reverts at once. With a confirm window the
//!   marker stays until [`Configs::confirm`]; [`Configs::tick`] reverts in place when its UTC
//!   deadline has passed and [`Configs::recover_at_start`] reverts a marker that survived a
//!   restart (kill -9, power cut) before anything else is applied.
//! - Every call answers with an [`Outcome`] the daemon turns into an audit event; this crate
//!   writes no audit record.
//!
//! Durability comes from the store: a [`mamori_store::Store::write`] is on disk when it
//! returns, and the marker is written in the same transaction as the new revision, before the
//! kernel is touched. So whatever instant the process dies at, a restart finds either no trace of
//! the commit, or the marker and the previous revision to go back to. See docs/config.md.
//!
//! No `unsafe`; the privileged apply is the caller's ([`Apply`]).

mod boot;
mod types;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mamori_netconfig::{NetworkConfig, check_keeps_management};
use mamori_store::{Store, StoreError, Table, WriteTxn};
use time::OffsetDateTime;

pub use boot::BootNote;
pub use types::{
    Apply, ApplyError, ApplyFailure, Channel, CommitMeta, ConfigError, Outcome, PendingMarker,
    Refusal, RevertReason, Revision, RevisionInfo, RevisionNote, Step,
};

/// The fewest revisions kept (the issue asks for at least 100).
pub const MIN_KEEP: usize = 100;
/// Revisions kept unless configured otherwise.
pub const DEFAULT_KEEP: usize = 200;
/// Default confirm window for the API and the CLI: 10 minutes, as Junos and VyOS
/// (research/mgmt-plane.md §1.2). Long enough to reconnect after a change that moved the
/// management address.
pub const CONFIRM_WINDOW_API: Duration = Duration::from_secs(600);
/// Default confirm window for the CLI (same as the API).
pub const CONFIRM_WINDOW_CLI: Duration = CONFIRM_WINDOW_API;
/// Default confirm window for the web UI: 3 minutes. The page shows a countdown and the author
/// confirms with an explicit click after checking the change from a new connection (a page
/// reloading over a connection opened before the change proves little: the firewall keeps
/// established connections), so a shorter window limits how long a bad change from a browser
/// stays.
pub const CONFIRM_WINDOW_UI: Duration = Duration::from_secs(180);

const STATE_KEY: &str = "state";
const PENDING_KEY: &str = "pending";
/// The author recorded on revisions mamori makes by itself (rescue, reverts).
pub const SYSTEM_AUTHOR: &str = "mamori";

/// Options of [`Configs`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Revisions kept; values below [`MIN_KEEP`] are raised to it.
    pub keep: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { keep: DEFAULT_KEEP }
    }
}

/// What the store holds beside the revisions: which one runs, which is the rescue, the next
/// id, and the index of revision metadata (oldest first) so that the history needs no
/// revision opened.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    running: u64,
    rescue: u64,
    next_id: u64,
    index: Vec<RevisionInfo>,
}

fn revision_key(id: u64) -> String {
    format!("{id:020}")
}

/// The configuration history and the commit pipeline over one store.
///
/// Calls that change anything are serialised by a lock of their own: one commit, confirm, tick
/// or recovery at a time.
pub struct Configs {
    store: Arc<Store>,
    keep: usize,
    lock: Mutex<()>,
}

impl std::fmt::Debug for Configs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configs").field("keep", &self.keep).finish()
    }
}

impl Configs {
    /// Opens the history in `store`. The first time, `rescue` becomes revision 1 and the
    /// running one. Later, when `rescue` differs from the stored rescue (other interfaces), it
    /// is recorded as a new rescue revision; the running revision is left alone.
    ///
    /// A marker left by a commit is *not* acted on here: call [`Configs::recover_at_start`]
    /// before applying anything.
    pub fn open(
        store: Arc<Store>,
        rescue: NetworkConfig,
        options: Options,
    ) -> Result<Self, ConfigError> {
        rescue.validate().map_err(ConfigError::RescueInvalid)?;
        let this = Self {
            store,
            keep: options.keep.max(MIN_KEEP),
            lock: Mutex::new(()),
        };
        this.store.write(|tx| -> Result<(), ConfigError> {
            let info = |id| RevisionInfo {
                id,
                author: SYSTEM_AUTHOR.to_string(),
                channel: Channel::Boot,
                time: OffsetDateTime::now_utc(),
                comment: "rescue configuration (factory defaults for this device's interfaces)"
                    .to_string(),
                note: Some(RevisionNote::Rescue),
            };
            match tx.get::<State>(Table::ConfigState, STATE_KEY)? {
                None => {
                    let mut state = State {
                        running: 1,
                        rescue: 1,
                        next_id: 1,
                        index: Vec::new(),
                    };
                    let id = record(tx, &mut state, info(1), &rescue)?;
                    state.running = id;
                    state.rescue = id;
                    tx.put(Table::ConfigState, STATE_KEY, &state)?;
                }
                Some(mut state) => {
                    let stored = read_revision(tx, state.rescue)?;
                    if stored.config.to_canonical_json() != rescue.to_canonical_json() {
                        let id = state.next_id;
                        state.rescue = record(tx, &mut state, info(id), &rescue)?;
                        let pending = tx.get::<PendingMarker>(Table::ConfigState, PENDING_KEY)?;
                        prune(tx, &mut state, pending.as_ref(), this.keep)?;
                        tx.put(Table::ConfigState, STATE_KEY, &state)?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(this)
    }

    /// How many revisions are kept.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// Every kept revision's metadata, oldest first.
    pub fn history(&self) -> Result<Vec<RevisionInfo>, ConfigError> {
        Ok(self.state()?.index)
    }

    /// One revision.
    pub fn get(&self, id: u64) -> Result<Revision, ConfigError> {
        self.store
            .get::<Revision>(Table::ConfigRevisions, &revision_key(id))?
            .ok_or(ConfigError::NotFound(id))
    }

    /// The id of the revision the kernel runs (or, during a confirm window, is trying).
    pub fn running_id(&self) -> Result<u64, ConfigError> {
        Ok(self.state()?.running)
    }

    /// The running revision.
    pub fn running(&self) -> Result<Revision, ConfigError> {
        self.get(self.running_id()?)
    }

    /// The id of the rescue configuration's revision.
    pub fn rescue_id(&self) -> Result<u64, ConfigError> {
        Ok(self.state()?.rescue)
    }

    /// The pending marker, if a commit waits for confirmation (or was cut short).
    pub fn pending(&self) -> Result<Option<PendingMarker>, ConfigError> {
        Ok(self
            .store
            .get::<PendingMarker>(Table::ConfigState, PENDING_KEY)?)
    }

    /// A unified diff from revision `a` to revision `b` (empty when equal).
    pub fn diff(&self, a: u64, b: u64) -> Result<String, ConfigError> {
        let (ra, rb) = (self.get(a)?, self.get(b)?);
        Ok(mamori_netconfig::diff(
            &ra.config,
            &rb.config,
            &format!("r{a}"),
            &format!("r{b}"),
        ))
    }

    /// Commits revision `id`'s configuration again, as a new revision, through
    /// [`Configs::commit`] (same checks, same window). An empty comment becomes
    /// `rollback to rN`.
    pub fn rollback_to(
        &self,
        id: u64,
        mut meta: CommitMeta,
        confirm: Option<Duration>,
        apply: &dyn Apply,
    ) -> Result<Outcome, ConfigError> {
        let old = self.get(id)?;
        let mut note = None;
        if meta.comment.is_empty() {
            meta.comment = format!("rollback to r{id}");
            note = Some(RevisionNote::RollbackTo { revision: id });
        }
        self.commit_noted(old.config, meta, note, confirm, apply)
    }

    /// Commits `candidate`.
    ///
    /// Refused (nothing changed, in the store or through `apply`) when a commit is pending, when
    /// it does not validate, when it would cut `meta.session` off, or when [`Apply::check`]
    /// fails. Otherwise the new revision and the pending marker are written in one durable
    /// transaction, then applied and probed; a failure of either is reverted at once (the
    /// previous revision applied again, the new revision and the marker removed). Without
    /// `confirm` the commit is final when this returns; with it, the marker stays until
    /// [`Configs::confirm`] or the deadline.
    pub fn commit(
        &self,
        candidate: NetworkConfig,
        meta: CommitMeta,
        confirm: Option<Duration>,
        apply: &dyn Apply,
    ) -> Result<Outcome, ConfigError> {
        self.commit_noted(candidate, meta, None, confirm, apply)
    }

    /// [`Configs::commit`], with the note the new revision gets.
    fn commit_noted(
        &self,
        candidate: NetworkConfig,
        meta: CommitMeta,
        note: Option<RevisionNote>,
        confirm: Option<Duration>,
        apply: &dyn Apply,
    ) -> Result<Outcome, ConfigError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = self.pending()? {
            return Ok(Outcome::Refused {
                step: Step::Pending,
                error: Refusal::Pending {
                    revision: p.new_revision,
                },
            });
        }
        if let Err(e) = candidate.validate() {
            return Ok(Outcome::Refused {
                step: Step::Validate,
                error: Refusal::Invalid(e),
            });
        }
        if let Some(session) = &meta.session
            && let Err(e) = check_keeps_management(&candidate, session)
        {
            return Ok(Outcome::Refused {
                step: Step::Management,
                error: Refusal::CutsManagement(e),
            });
        }
        // The dry run, unless the apply checks in the same pass (one kernel pass, not two).
        let one_pass = apply.checks_while_applying();
        if !one_pass && let Err(e) = apply.check(&candidate) {
            return Ok(Outcome::Refused {
                step: Step::Check,
                error: Refusal::Check(e),
            });
        }

        // Persist the revision and the marker first: from here on a restart reverts.
        let now = OffsetDateTime::now_utc();
        let window = confirm.map(|d| time::Duration::try_from(d).unwrap_or(time::Duration::MAX));
        let deadline = window.map(|w| now.saturating_add(w));
        let (new_id, previous) = self.store.write(|tx| -> Result<_, ConfigError> {
            let mut state = load_state(tx)?;
            let previous = state.running;
            let info = RevisionInfo {
                id: state.next_id,
                author: meta.author.clone(),
                channel: meta.channel,
                time: now,
                comment: meta.comment.clone(),
                note: note.clone(),
            };
            let id = record(tx, &mut state, info, &candidate)?;
            let marker = PendingMarker {
                new_revision: id,
                previous_revision: previous,
                written: now,
                deadline,
                boot: BootNote::now(confirm),
                author: meta.author.clone(),
                channel: meta.channel,
            };
            tx.put(Table::ConfigState, PENDING_KEY, &marker)?;
            tx.put(Table::ConfigState, STATE_KEY, &state)?;
            Ok((id, previous))
        })?;

        let applied = if one_pass {
            apply.apply_checked(&candidate)
        } else {
            apply.apply(&candidate).map_err(ApplyFailure::Failed)
        };
        match applied {
            Ok(()) => {}
            Err(ApplyFailure::Refused(e)) => {
                // Nothing changed in the kernel: the revision and the marker go, as if the dry
                // run had refused it.
                self.store.write(|tx| -> Result<(), ConfigError> {
                    let mut state = load_state(tx)?;
                    tx.delete(Table::ConfigRevisions, &revision_key(new_id))?;
                    state.index.retain(|i| i.id != new_id);
                    state.running = previous;
                    tx.delete(Table::ConfigState, PENDING_KEY)?;
                    tx.put(Table::ConfigState, STATE_KEY, &state)?;
                    Ok(())
                })?;
                return Ok(Outcome::Refused {
                    step: Step::Check,
                    error: Refusal::Check(e),
                });
            }
            Err(ApplyFailure::Failed(e)) => {
                return self.undo(new_id, previous, apply, RevertReason::ApplyFailed(e));
            }
        }
        if let Err(e) = apply.probe() {
            return self.undo(new_id, previous, apply, RevertReason::ProbeFailed(e));
        }

        let keep = self.keep;
        self.store.write(|tx| -> Result<(), ConfigError> {
            let mut state = load_state(tx)?;
            state.running = new_id;
            let pending = if deadline.is_none() {
                tx.delete(Table::ConfigState, PENDING_KEY)?;
                None
            } else {
                tx.get::<PendingMarker>(Table::ConfigState, PENDING_KEY)?
            };
            prune(tx, &mut state, pending.as_ref(), keep)?;
            tx.put(Table::ConfigState, STATE_KEY, &state)?;
            Ok(())
        })?;
        Ok(Outcome::Committed {
            revision: new_id,
            previous,
            deadline,
        })
    }

    /// Confirms the pending commit: the marker is removed and its revision stays the running
    /// one. Refused after the deadline (the revert is due: call [`Configs::tick`]).
    pub fn confirm(&self) -> Result<Outcome, ConfigError> {
        self.confirm_inner(None)
    }

    /// [`Configs::confirm`], accepted only from the account that committed (as rpcd accepts a
    /// confirmation only from the applying session): another administrator's confirmation is
    /// refused with [`ConfigError::NotCommitter`] and changes nothing.
    pub fn confirm_by(&self, author: &str) -> Result<Outcome, ConfigError> {
        self.confirm_inner(Some(author))
    }

    fn confirm_inner(&self, author: Option<&str>) -> Result<Outcome, ConfigError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let now = OffsetDateTime::now_utc();
        let keep = self.keep;
        self.store.write(|tx| -> Result<Outcome, ConfigError> {
            let marker = tx
                .get::<PendingMarker>(Table::ConfigState, PENDING_KEY)?
                .ok_or(ConfigError::NoPending)?;
            let Some(deadline) = marker.deadline else {
                // A commit without a window whose apply was cut short: recovery reverts it.
                return Err(ConfigError::NoPending);
            };
            if now >= deadline {
                return Err(ConfigError::WindowExpired { deadline });
            }
            if let Some(a) = author
                && a != marker.author
            {
                return Err(ConfigError::NotCommitter {
                    committer: marker.author,
                });
            }
            let mut state = load_state(tx)?;
            if state.running != marker.new_revision {
                return Err(ConfigError::NoPending);
            }
            tx.delete(Table::ConfigState, PENDING_KEY)?;
            prune(tx, &mut state, None, keep)?;
            tx.put(Table::ConfigState, STATE_KEY, &state)?;
            Ok(Outcome::Confirmed {
                revision: marker.new_revision,
            })
        })
    }

    /// Reverts the pending commit in place if its deadline is at or before `now` (UTC wall
    /// time), or if the window has run out by the boot-relative clock of the boot that wrote
    /// the marker ([`BootNote`]): the previous revision is applied again and recorded as a new revision with
    /// channel [`Channel::Timeout`]. `Ok(None)` when nothing is due.
    pub fn tick(
        &self,
        now: OffsetDateTime,
        apply: &dyn Apply,
    ) -> Result<Option<Outcome>, ConfigError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(marker) = self.pending()? else {
            return Ok(None);
        };
        // Due by the wall clock, or by this boot's own clock: a wall clock stepped back (a bad
        // NTP answer, a manual set) must not hold a window open. A step forward can only make
        // the revert early, which is the safe side.
        let boot_due = marker.boot.remaining() == Some(Duration::ZERO);
        match marker.deadline {
            Some(deadline) if now < deadline && !boot_due => Ok(None),
            Some(deadline) => self
                .revert(
                    &marker,
                    Channel::Timeout,
                    RevertReason::Timeout { deadline },
                    apply,
                )
                .map(Some),
            // Only left by a failed undo (the lock excludes a commit in flight): retry it.
            None => self
                .revert(&marker, Channel::Timeout, RevertReason::Interrupted, apply)
                .map(Some),
        }
    }

    /// Run once at start, before any configuration is applied. If a marker survived (the
    /// process was killed or the power cut during a commit or its window), the previous
    /// revision is applied and recorded as a new revision with channel [`Channel::Boot`], and
    /// the outcome says so. `Ok(None)`: there was nothing to revert; apply the running revision.
    pub fn recover_at_start(&self, apply: &dyn Apply) -> Result<Option<Outcome>, ConfigError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(marker) = self.pending()? else {
            return Ok(None);
        };
        let reason = RevertReason::Restart {
            same_boot: marker.boot.same_boot(),
            deadline: marker.deadline,
        };
        self.revert(&marker, Channel::Boot, reason, apply).map(Some)
    }

    /// Applies the running revision again, as it is (under the same lock as a commit): the
    /// kernel drops a link's routes, and IPv6 its addresses, when the link goes down; when it
    /// comes back the daemon puts the configuration back with this. Returns the revision.
    pub fn reapply(&self, apply: &dyn Apply) -> Result<Result<u64, ApplyError>, ConfigError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let running = self.running()?;
        Ok(apply.apply(&running.config).map(|()| running.info.id))
    }

    fn state(&self) -> Result<State, ConfigError> {
        self.store
            .get::<State>(Table::ConfigState, STATE_KEY)?
            .ok_or(ConfigError::Corrupt("no configuration state"))
    }

    /// Undoes a commit whose apply or probe failed: the kernel gets the previous revision
    /// again, and the new revision and the marker leave the store.
    fn undo(
        &self,
        new_id: u64,
        previous: u64,
        apply: &dyn Apply,
        reason: RevertReason,
    ) -> Result<Outcome, ConfigError> {
        let old = self.get(previous)?;
        if let Err(e) = apply.apply(&old.config) {
            // Leave the marker, due now: the next tick (or start) retries, with the rescue
            // configuration as the last resort.
            let now = OffsetDateTime::now_utc();
            self.store.write(|tx| -> Result<(), ConfigError> {
                if let Some(mut m) = tx.get::<PendingMarker>(Table::ConfigState, PENDING_KEY)? {
                    m.deadline = Some(now);
                    tx.put(Table::ConfigState, PENDING_KEY, &m)?;
                }
                Ok(())
            })?;
            return Err(ConfigError::RevertFailed {
                revision: previous,
                cause: Box::new(reason),
                error: e,
            });
        }
        self.store.write(|tx| -> Result<(), ConfigError> {
            let mut state = load_state(tx)?;
            tx.delete(Table::ConfigRevisions, &revision_key(new_id))?;
            state.index.retain(|i| i.id != new_id);
            state.running = previous;
            tx.delete(Table::ConfigState, PENDING_KEY)?;
            tx.put(Table::ConfigState, STATE_KEY, &state)?;
            Ok(())
        })?;
        Ok(Outcome::Reverted {
            from: new_id,
            to: previous,
            recorded: None,
            reason,
        })
    }

    /// Applies the marker's previous revision (the rescue one if that fails), records it as a
    /// new revision and clears the marker.
    fn revert(
        &self,
        marker: &PendingMarker,
        channel: Channel,
        reason: RevertReason,
        apply: &dyn Apply,
    ) -> Result<Outcome, ConfigError> {
        let state = self.state()?;
        let previous = self.get(marker.previous_revision)?;
        let restored = match apply.apply(&previous.config) {
            Ok(()) => previous,
            Err(first) => {
                let rescue = self.get(state.rescue)?;
                if apply.apply(&rescue.config).is_err() {
                    return Err(ConfigError::RevertFailed {
                        revision: marker.previous_revision,
                        cause: Box::new(reason),
                        error: first,
                    });
                }
                rescue
            }
        };
        let now = OffsetDateTime::now_utc();
        let keep = self.keep;
        let comment = format!(
            "revert r{} to r{}: {reason}",
            marker.new_revision, restored.info.id
        );
        let recorded = self.store.write(|tx| -> Result<u64, ConfigError> {
            let mut state = load_state(tx)?;
            let info = RevisionInfo {
                id: state.next_id,
                author: SYSTEM_AUTHOR.to_string(),
                channel,
                time: now,
                comment,
                note: Some(RevisionNote::Revert {
                    from: marker.new_revision,
                    to: restored.info.id,
                    reason: reason.clone(),
                }),
            };
            let id = record(tx, &mut state, info, &restored.config)?;
            state.running = id;
            tx.delete(Table::ConfigState, PENDING_KEY)?;
            prune(tx, &mut state, None, keep)?;
            tx.put(Table::ConfigState, STATE_KEY, &state)?;
            Ok(id)
        })?;
        Ok(Outcome::Reverted {
            from: marker.new_revision,
            to: restored.info.id,
            recorded: Some(recorded),
            reason,
        })
    }
}

fn load_state(tx: &WriteTxn<'_>) -> Result<State, ConfigError> {
    tx.get::<State>(Table::ConfigState, STATE_KEY)?
        .ok_or(ConfigError::Corrupt("no configuration state"))
}

fn read_revision(tx: &WriteTxn<'_>, id: u64) -> Result<Revision, ConfigError> {
    tx.get::<Revision>(Table::ConfigRevisions, &revision_key(id))?
        .ok_or(ConfigError::NotFound(id))
}

/// Writes a revision under `info.id` (which must be `state.next_id`) and indexes it.
fn record(
    tx: &mut WriteTxn<'_>,
    state: &mut State,
    info: RevisionInfo,
    config: &NetworkConfig,
) -> Result<u64, StoreError> {
    let id = info.id;
    let rev = RevisionRef {
        info: &info,
        config,
    };
    tx.put(Table::ConfigRevisions, &revision_key(id), &rev)?;
    state.index.push(info);
    state.next_id = id.saturating_add(1);
    Ok(id)
}

/// A revision to serialise without cloning its configuration; same shape as [`Revision`].
#[derive(serde::Serialize)]
struct RevisionRef<'a> {
    info: &'a RevisionInfo,
    config: &'a NetworkConfig,
}

/// Removes the oldest revisions beyond `keep`, never the running one, the rescue one, or those
/// the marker names.
fn prune(
    tx: &mut WriteTxn<'_>,
    state: &mut State,
    pending: Option<&PendingMarker>,
    keep: usize,
) -> Result<(), StoreError> {
    let mut protected = vec![state.running, state.rescue];
    if let Some(p) = pending {
        protected.extend([p.new_revision, p.previous_revision]);
    }
    while state.index.len() > keep {
        let Some(pos) = state.index.iter().position(|i| !protected.contains(&i.id)) else {
            break;
        };
        let id = state.index.remove(pos).id;
        tx.delete(Table::ConfigRevisions, &revision_key(id))?;
    }
    Ok(())
}
