//! Revisions, the pending marker, the apply trait, outcomes and errors.

use std::fmt;

use mamori_netconfig::{ManagementCut, ManagementSession, NetworkConfig, ValidationErrors};
use mamori_store::StoreError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::boot::BootNote;

/// Where a revision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The HTTPS JSON API.
    Api,
    /// The `mamori` command over HTTPS.
    Cli,
    /// The web UI.
    Ui,
    /// The local console.
    Console,
    /// mamori itself at start: the rescue configuration, a revert of a marker found at start.
    Boot,
    /// mamori itself: a revert because a confirm window ran out.
    Timeout,
}

impl Channel {
    /// The default confirm window of a change from this channel: [`crate::CONFIRM_WINDOW_API`]
    /// for the API and the CLI, [`crate::CONFIRM_WINDOW_UI`] for the web UI, none for the
    /// console (no network between it and the device) and for mamori's own revisions.
    pub fn default_confirm_window(self) -> Option<std::time::Duration> {
        match self {
            Self::Api => Some(crate::CONFIRM_WINDOW_API),
            Self::Cli => Some(crate::CONFIRM_WINDOW_CLI),
            Self::Ui => Some(crate::CONFIRM_WINDOW_UI),
            Self::Console | Self::Boot | Self::Timeout => None,
        }
    }

    /// The channel as the lower-case word used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Cli => "cli",
            Self::Ui => "ui",
            Self::Console => "console",
            Self::Boot => "boot",
            Self::Timeout => "timeout",
        }
    }
}

/// Who commits, from where, and why.
#[derive(Debug, Clone)]
pub struct CommitMeta {
    /// The account name.
    pub author: String,
    /// The channel.
    pub channel: Channel,
    /// Free text recorded with the revision.
    pub comment: String,
    /// The management session the change comes from; when given, a candidate that would cut
    /// it off is refused ([`mamori_netconfig::check_keeps_management`]).
    pub session: Option<ManagementSession>,
}

/// A revision's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisionInfo {
    /// Monotonic id; never reused, even for a commit that was undone.
    pub id: u64,
    /// Who committed it (`mamori` for the rescue and for reverts).
    pub author: String,
    /// Where it came from.
    pub channel: Channel,
    /// When it was committed (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The comment.
    pub comment: String,
    /// What the device recorded this revision for, when it described it itself (the comment
    /// says the same in English, for the API and the CLI); `None` for a revision someone
    /// committed with a comment, and for revisions stored before notes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<RevisionNote>,
}

/// A revision the device described itself, typed so that the web UI can say it in its
/// reader's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionNote {
    /// The rescue configuration: the factory defaults for this device's interfaces.
    Rescue,
    /// A rollback to `revision`, committed without a comment.
    RollbackTo {
        /// The revision rolled back to.
        revision: u64,
    },
    /// The device went back from revision `from` to `to` by itself.
    Revert {
        /// The revision that was tried.
        from: u64,
        /// The revision whose configuration runs again.
        to: u64,
        /// Why.
        reason: RevertReason,
    },
}

/// One committed configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revision {
    /// Its metadata.
    pub info: RevisionInfo,
    /// The whole configuration.
    pub config: NetworkConfig,
}

/// The marker of a commit in flight or waiting for confirmation, written in the same durable
/// transaction as its revision and before anything is applied.
///
/// The deadline is UTC wall time, because only wall time means anything after a reboot; the
/// [`BootNote`] adds the boot id and the boot-relative uptime at the deadline, so that a later
/// reader can tell a restart of the daemon within the same boot from a reboot, and see the
/// window in a clock that no time step moves. A marker found at start is reverted whatever the
/// clocks say: nobody can confirm a commit whose process died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingMarker {
    /// The revision being tried.
    pub new_revision: u64,
    /// The revision to go back to.
    pub previous_revision: u64,
    /// When the marker was written (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub written: OffsetDateTime,
    /// The confirm deadline (UTC); `None` for a commit without a window, whose marker lives only
    /// while it is applied and probed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deadline: Option<OffsetDateTime>,
    /// The boot it was written in, and the deadline in that boot's uptime.
    pub boot: BootNote,
    /// Who committed (the daemon accepts a confirmation only from them).
    pub author: String,
    /// From which channel.
    pub channel: Channel,
}

/// The step of the pipeline a refusal or failure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Another commit waits for confirmation.
    Pending,
    /// The configuration's own checks.
    Validate,
    /// The anti-lockout check for the committing session.
    Management,
    /// The dry run ([`Apply::check`]).
    Check,
    /// Loading into the kernel ([`Apply::apply`]).
    Apply,
    /// The health probe ([`Apply::probe`]).
    Probe,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Validate => "validate",
            Self::Management => "management",
            Self::Check => "check",
            Self::Apply => "apply",
            Self::Probe => "probe",
        })
    }
}

/// An error of the privileged side: what failed, in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// What the privileged parent does for the pipeline. Each call is synchronous and answers only
/// when the kernel is in its final state.
pub trait Apply {
    /// Dry run (`nft -c`, netlink checks): changes nothing.
    fn check(&self, cfg: &NetworkConfig) -> Result<(), ApplyError>;
    /// Loads `cfg` as the whole configuration (one nftables transaction, then addresses and
    /// routes).
    fn apply(&self, cfg: &NetworkConfig) -> Result<(), ApplyError>;
    /// Health after an apply (management listener reachable, links up, …).
    fn probe(&self) -> Result<(), ApplyError>;

    /// Whether [`Apply::apply`] checks a configuration in the same pass that loads it and
    /// refuses, changing nothing, what its dry run would refuse ([`ApplyFailure::Refused`]). Then
    /// a commit runs one pass instead of a dry run and a load: nftables loads a ruleset as one
    /// transaction the kernel checks whole before it commits it, and a dry run (`nft -c`) costs
    /// as much as the load. Default: false (the commit dry-runs first).
    fn checks_while_applying(&self) -> bool {
        false
    }

    /// [`Apply::apply`], telling a refusal that changed nothing from a failure part-way. Only
    /// called when [`Apply::checks_while_applying`] says so; the default treats every error as a
    /// failure part-way.
    fn apply_checked(&self, cfg: &NetworkConfig) -> Result<(), ApplyFailure> {
        self.apply(cfg).map_err(ApplyFailure::Failed)
    }
}

/// Why [`Apply::apply_checked`] did not put a configuration in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyFailure {
    /// Refused before anything changed (what a dry run refuses: a missing interface, a ruleset
    /// nftables rejects).
    Refused(ApplyError),
    /// Failed part-way; what it restored is in the message.
    Failed(ApplyError),
}

/// Why a candidate was refused before anything was written or applied.
///
/// This enum, [`RevertReason`] and [`ConfigError`] are not `#[non_exhaustive]`: the web UI
/// words each of them in Japanese with an exhaustive match, so a new variant does not compile
/// until it is translated (S3.1-43).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Another commit waits for confirmation.
    #[error("revision {revision} waits for confirmation")]
    Pending {
        /// Its revision.
        revision: u64,
    },
    /// The configuration's checks failed.
    #[error(transparent)]
    Invalid(ValidationErrors),
    /// It would cut the committing session off.
    #[error(transparent)]
    CutsManagement(ManagementCut),
    /// The dry run failed.
    #[error("dry run: {0}")]
    Check(ApplyError),
}

/// Why a commit was reverted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevertReason {
    /// Loading the candidate failed; the previous revision was loaded again.
    ApplyFailed(ApplyError),
    /// The health probe failed after the load.
    ProbeFailed(ApplyError),
    /// The confirm window ran out.
    Timeout {
        /// The deadline (UTC).
        #[serde(with = "time::serde::rfc3339")]
        deadline: OffsetDateTime,
    },
    /// A marker survived a restart of mamori.
    Restart {
        /// `Some(true)`: the daemon restarted within the boot that wrote the marker (kill,
        /// crash); `Some(false)`: the device rebooted (power cut); `None`: unknown.
        same_boot: Option<bool>,
        /// The deadline it had (`None`: a commit without a window, cut short while applied).
        #[serde(with = "time::serde::rfc3339::option")]
        deadline: Option<OffsetDateTime>,
    },
    /// A marker left by an undo whose own apply failed.
    Interrupted,
}

impl fmt::Display for RevertReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApplyFailed(e) => write!(f, "apply failed: {e}"),
            Self::ProbeFailed(e) => write!(f, "health probe failed: {e}"),
            Self::Timeout { .. } => f.write_str("not confirmed before the deadline"),
            Self::Restart {
                same_boot: Some(true),
                ..
            } => f.write_str("mamori restarted during the commit or its confirm window"),
            Self::Restart {
                same_boot: Some(false),
                ..
            } => f.write_str("the device restarted during the commit or its confirm window"),
            Self::Restart { .. } => {
                f.write_str("a restart during the commit or its confirm window")
            }
            Self::Interrupted => f.write_str("an earlier revert did not complete"),
        }
    }
}

/// What a call did; the daemon turns each into an audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The candidate runs as `revision`. With a deadline it waits for confirmation.
    Committed {
        /// The new revision.
        revision: u64,
        /// The revision it replaced.
        previous: u64,
        /// The confirm deadline (UTC), if any.
        deadline: Option<OffsetDateTime>,
    },
    /// The pending revision is confirmed.
    Confirmed {
        /// The revision.
        revision: u64,
    },
    /// A commit was reverted.
    Reverted {
        /// The revision that was tried.
        from: u64,
        /// The revision whose configuration runs again (the previous one, or the rescue one when
        /// the previous one could not be applied).
        to: u64,
        /// The new revision recording the revert (timeout, restart); `None` when a failed apply
        /// or probe was undone and the tried revision removed.
        recorded: Option<u64>,
        /// Why.
        reason: RevertReason,
    },
    /// Nothing was written or applied.
    Refused {
        /// The step that refused.
        step: Step,
        /// Why.
        error: Refusal,
    },
}

/// Errors of the history itself (the pipeline's refusals are [`Outcome::Refused`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such revision (never existed, or pruned).
    #[error("no revision {0}")]
    NotFound(u64),
    /// Nothing waits for confirmation.
    #[error("no commit waits for confirmation")]
    NoPending,
    /// The window has run out; the revert is due.
    #[error("the confirm window ended at {deadline}")]
    WindowExpired {
        /// The deadline.
        deadline: OffsetDateTime,
    },
    /// A confirmation from someone other than the committer.
    #[error("only {committer} may confirm this commit")]
    NotCommitter {
        /// Who committed.
        committer: String,
    },
    /// The rescue configuration does not validate.
    #[error("the rescue configuration is invalid: {0}")]
    RescueInvalid(ValidationErrors),
    /// Going back failed too: the previous revision (and, for a timeout or a restart, the
    /// rescue one) could not be applied. The marker stays, due at once, so the next tick or
    /// start tries again.
    #[error("reverting to revision {revision} failed ({error}) after: {cause}")]
    RevertFailed {
        /// The revision that could not be applied.
        revision: u64,
        /// Why the revert was needed.
        cause: Box<RevertReason>,
        /// The apply's error.
        error: ApplyError,
    },
    /// The stored state is missing or inconsistent.
    #[error("configuration store: {0}")]
    Corrupt(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_stored_before_notes_still_load_and_notes_round_trip() {
        let old = r#"{"id":3,"author":"mamori","channel":"timeout","time":"2026-12-06T05:40:18Z","comment":"revert r2 to r1: not confirmed before the deadline"}"#;
        let info: RevisionInfo = serde_json::from_str(old).unwrap();
        assert_eq!(info.note, None);
        assert!(!serde_json::to_string(&info).unwrap().contains("note"));
        let deadline = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        for note in [
            RevisionNote::Rescue,
            RevisionNote::RollbackTo { revision: 2 },
            RevisionNote::Revert {
                from: 2,
                to: 1,
                reason: RevertReason::Timeout { deadline },
            },
            RevisionNote::Revert {
                from: 2,
                to: 1,
                reason: RevertReason::Restart {
                    same_boot: Some(false),
                    deadline: None,
                },
            },
            RevisionNote::Revert {
                from: 2,
                to: 1,
                reason: RevertReason::ApplyFailed(ApplyError("nft: no".into())),
            },
        ] {
            let info = RevisionInfo {
                note: Some(note.clone()),
                ..info.clone()
            };
            let text = serde_json::to_string(&info).unwrap();
            let back: RevisionInfo = serde_json::from_str(&text).unwrap();
            assert_eq!(back.note, Some(note), "{text}");
        }
    }
}
