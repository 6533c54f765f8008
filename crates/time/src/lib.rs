//! Trustworthy time for the audit log (S3.1-35 ③ and R4, and R1 D: time changes with the time
//! before and after).
//!
//! Three parts:
//!
//! - **Synchronisation with chrony, configured by mamori** ([`config`], [`render`](mod@render),
//!   [`chrony`], [`status`]). An administrator's [`TimeConfig`] (servers, NTS, policy) is
//!   validated, rendered to a `chrony.conf` that mamori owns, and chronyd is started with it;
//!   its state is read back with `chronyc -c` into a [`TimeStatus`] for the API and UI. NTS
//!   (RFC 8915) is used on every server marked for it and then preferred: unauthenticated
//!   servers are not selected once one server uses NTS.
//! - **Clock-step detection** ([`step`]): a watcher compares the wall clock with
//!   `CLOCK_BOOTTIME` and waits on a timerfd the kernel cancels on every clock set; a step of
//!   1 s or more becomes a `time_changed` audit record with `before`, `after`, the step and its
//!   cause. [`events::SyncTracker`] turns status readings into `time_sync_changed` records.
//! - **Setting the time by hand** ([`manual`]): [`set_time`] asks the privileged parent
//!   (`SetTime`, the only way to get `CAP_SYS_TIME`) and records the change with the
//!   administrator as the actor.
//!
//! # Where each part runs
//!
//! chronyd and chronyc run under the privileged parent (root; the management process may not
//! `execve` or open sockets), kept by [`NtpDaemon`]. The step watcher and [`set_time`] run in the management process,
//! beside the audit log; the watcher needs `timerfd_create` and `timerfd_settime`, which the
//! management process's seccomp list allows for it.
//!
//! # What this crate does not do
//!
//! It does not start anything by itself (the daemon decides when chronyd starts and where the
//! watcher runs), serves no NTP to other hosts (`port 0`), and opens no network socket of its
//! own: chronyd does the network. No `unsafe`: nix provides the clocks and the timerfd.

pub mod chrony;
pub mod config;
pub mod events;
pub mod manual;
pub mod ntp;
pub mod render;
pub mod status;
pub mod step;

use std::io;
use std::path::PathBuf;

pub use chrony::{Chrony, ChronyClient, ChronyOptions, ChronyStepLog, StepNotice};
pub use config::{ConfigError, NtpHost, NtpServer, TimeConfig};
pub use events::{Cause, SyncTracker};
pub use manual::{
    ClockSet, ManualSetTime, ManualStep, ManualSteps, SetClock, SetClockError, check_clock_time,
    set_time,
};
pub use ntp::{NtpApplied, NtpDaemon, NtpReport};
pub use render::{ChronyPaths, RenderOptions, render};
pub use status::TimeStatus;
pub use step::{Attribution, ClockSource, StepWatcher, SystemClocks, WatcherConfig};

/// Everything that can go wrong with time.
///
/// Sorted by who is at fault: the request (configuration, range, refusal), the privilege
/// boundary, the clocks, chronyd and chronyc.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The time configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A manual time outside the accepted range (checked before asking the parent).
    #[error("the time cannot be set: {0}")]
    OutOfRange(&'static str),
    /// The privileged parent refused to set the clock (for example NTP runs and the request
    /// was not forced).
    #[error("the time was not set: {0}")]
    Refused(String),
    /// Talking to the privileged parent failed, or the parent failed.
    #[error("{0}")]
    Parent(String),

    /// Reading a clock, or the timerfd, failed.
    #[error("{what}: {source}")]
    Clock {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// The watcher's threshold does not exceed what slewing can add in one period.
    #[error("the step threshold must exceed 0.1 s per second of the watch period")]
    WatcherConfig,
    /// The watcher's thread could not be started.
    #[error("starting the clock-step watcher: {0}")]
    Thread(#[source] io::Error),

    /// The chrony user does not exist (is the chrony package installed?).
    #[error("user {0} does not exist; is chrony installed?")]
    ChronyUserMissing(String),
    /// Creating chronyd's directories or writing `chrony.conf` failed.
    #[error("{path}: {source}")]
    ChronyDir {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A path where chronyd's directory belongs is not a directory.
    #[error("{path}: {reason}")]
    ChronyDirUnsafe {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// chronyd could not be started (not installed?).
    #[error("starting chronyd: {0}")]
    ChronydSpawn(#[source] io::Error),
    /// chronyd exited during start-up; its last log lines say why.
    #[error("chronyd exited ({status}):\n{log}")]
    ChronydExited {
        /// Its exit status.
        status: String,
        /// Its last log lines.
        log: String,
    },
    /// chronyd did not open its command socket in time.
    #[error("chronyd did not answer on its command socket within 10 s:\n{log}")]
    ChronydNotReady {
        /// Its last log lines.
        log: String,
    },
    /// chronyc could not be run (not installed?).
    #[error("running chronyc: {0}")]
    ChronycSpawn(#[source] io::Error),
    /// chronyc did not finish in time.
    #[error("chronyc {command} did not finish within 10 s")]
    ChronycTimeout {
        /// The command.
        command: &'static str,
    },
    /// chronyd is not running or does not answer on its command socket.
    #[error("chronyd is not running or does not answer on its command socket")]
    ChronydUnreachable,
    /// chronyc reported an error.
    #[error("chronyc {command} failed: {detail}")]
    Chronyc {
        /// The command.
        command: &'static str,
        /// Its exit status and message.
        detail: String,
    },
    /// chronyc's output is not what this version understands.
    #[error("chronyc {command}: unexpected output: {detail}")]
    ChronycOutput {
        /// The command.
        command: &'static str,
        /// What did not parse.
        detail: String,
    },
}
