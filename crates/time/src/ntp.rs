//! chronyd kept in line with the time configuration, on the privileged parent's side.
//!
//! The management process stores the [`TimeConfig`] and sends it to the parent at start and on
//! every change; the parent hands it to one [`NtpDaemon`], which checks it again, and then:
//!
//! - with no servers, stops chronyd (synchronisation off);
//! - with the configuration chronyd already runs with, leaves it alone (a restarted management
//!   process sends the same configuration again; restarting chronyd would re-arm its start-up
//!   steps, `makestep 1.0 3`);
//! - otherwise stops the old chronyd and starts a new one ([`Chrony::start`]).
//!
//! [`NtpDaemon::report`] is what the management process polls: the status read from chronyd
//! ([`TimeStatus`]), whether it runs, why not, and chronyd's recent step notices for the step
//! watcher. A chronyd that cannot start (chrony not installed, its user missing) is not fatal:
//! the daemon keeps serving and the report says why NTP does not run.
//!
//! A chronyd that exits on its own (a crash, an OOM kill) is started again by the next
//! [`NtpDaemon::report`] — the management process polls every 10 s — but no sooner than
//! [`RESTART_BACKOFF_MIN`] after the previous restart, doubling up to [`RESTART_BACKOFF_MAX`]
//! while it keeps dying, so a chronyd that cannot run does not spin. The report counts the
//! restarts and keeps the reason of the last exit.
//!
//! Dropping the [`NtpDaemon`] stops chronyd (the parent drops it when it stops).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::chrony::{Chrony, ChronyOptions, StepNotice};
use crate::config::TimeConfig;
use crate::render::{ChronyPaths, RenderOptions};
use crate::status::TimeStatus;

/// The shortest wait before a chronyd that exited is started again.
pub const RESTART_BACKOFF_MIN: Duration = Duration::from_secs(5);
/// The longest wait between restarts of a chronyd that keeps exiting.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(600);

/// The longest reason carried in a report (chronyd's log tail can be long).
pub const MAX_REASON_BYTES: usize = 512;

/// What the parent says about NTP ([`NtpDaemon::report`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NtpReport {
    /// At least one server is configured (synchronisation is on).
    pub enabled: bool,
    /// mamori's chronyd runs.
    pub running: bool,
    /// chronyd's status, when it runs and answered.
    pub status: Option<TimeStatus>,
    /// Why chronyd does not run or did not answer (chrony not installed, exited, …).
    pub error: Option<String>,
    /// The steps chronyd reported recently (for the step watcher's `ntp` cause).
    pub steps: Vec<StepNotice>,
    /// How often chronyd exited on its own and was started again since the configuration was
    /// last applied.
    #[serde(default)]
    pub restarts: u32,
}

impl NtpReport {
    /// Whether the clock is synchronised to an NTP source.
    pub fn synchronised(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.synchronised)
    }
}

/// The answer to a new configuration ([`NtpDaemon::apply`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NtpApplied {
    /// chronyd runs with the configuration (false: synchronisation off, or it failed).
    pub running: bool,
    /// Why chronyd does not run although servers are configured.
    pub error: Option<String>,
}

/// mamori's chronyd, as the privileged parent keeps it.
#[derive(Debug)]
pub struct NtpDaemon {
    state_dir: PathBuf,
    render: RenderOptions,
    options: ChronyOptions,
    config: Option<TimeConfig>,
    chrony: Option<Chrony>,
    error: Option<String>,
    restarts: u32,
    /// When the next restart may happen, if chronyd exited.
    next_restart: Option<Instant>,
    backoff: Duration,
    first_backoff: Duration,
}

impl NtpDaemon {
    /// A keeper for chronyd under `state_dir` (`STATE/chrony`), with the device's options
    /// ([`ChronyOptions::for_device`], the system's CAs for NTS). Nothing runs until
    /// [`NtpDaemon::apply`].
    pub fn for_device(state_dir: impl Into<PathBuf>) -> Self {
        Self::new(
            state_dir,
            RenderOptions::default(),
            ChronyOptions::for_device(),
        )
    }

    /// A keeper with explicit options.
    pub fn new(
        state_dir: impl Into<PathBuf>,
        render: RenderOptions,
        options: ChronyOptions,
    ) -> Self {
        Self {
            state_dir: state_dir.into(),
            render,
            options,
            config: None,
            chrony: None,
            error: None,
            restarts: 0,
            next_restart: None,
            backoff: RESTART_BACKOFF_MIN,
            first_backoff: RESTART_BACKOFF_MIN,
        }
    }

    /// Puts `config` in force; see the module documentation. A configuration that does not
    /// validate is refused (`Err`) and nothing changes.
    pub fn apply(&mut self, config: TimeConfig) -> Result<NtpApplied, String> {
        config.validate().map_err(|e| e.to_string())?;
        let running = self.chrony.as_mut().is_some_and(Chrony::is_running);
        if running && self.config.as_ref() == Some(&config) {
            return Ok(self.applied());
        }
        if let Some(old) = self.chrony.take() {
            let _ = old.stop();
        }
        self.error = None;
        self.restarts = 0;
        self.next_restart = None;
        self.backoff = self.first_backoff;
        if config.is_enabled() {
            match Chrony::start(
                &config,
                ChronyPaths::in_state_dir(&self.state_dir),
                &self.render,
                &self.options,
            ) {
                Ok(c) => self.chrony = Some(c),
                Err(e) => {
                    tracing::error!(target: "mamori::chrony", error = %e, "chronyd could not start");
                    self.error = Some(shorten(&e.to_string()));
                }
            }
        } else {
            tracing::info!(target: "mamori::chrony", "no time servers: NTP synchronisation off");
        }
        self.config = Some(config);
        Ok(self.applied())
    }

    fn applied(&self) -> NtpApplied {
        NtpApplied {
            running: self.chrony.is_some(),
            error: self.error.clone(),
        }
    }

    /// The state of NTP now: asks chronyd (`chronyc`) when it runs.
    pub fn report(&mut self) -> NtpReport {
        let enabled = self.config.as_ref().is_some_and(TimeConfig::is_enabled);
        if self.chrony.is_none() && enabled && self.restarts > 0 && self.restart_due() {
            // A restart that failed: try again after the (longer) wait.
            self.restart("chronyd could not start again");
            if self.chrony.is_some() {
                return self.report();
            }
        }
        let Some(chrony) = self.chrony.as_mut() else {
            return NtpReport {
                enabled,
                running: false,
                status: None,
                error: self.error.clone(),
                steps: Vec::new(),
                restarts: self.restarts,
            };
        };
        let steps = chrony.steps().notices();
        if !chrony.is_running() {
            let error = shorten(&format!("chronyd exited:\n{}", chrony.log_tail()));
            if self.restart_due() {
                self.restart(&error);
                return self.report();
            }
            return NtpReport {
                enabled,
                running: false,
                status: None,
                error: Some(error),
                steps,
                restarts: self.restarts,
            };
        }
        let (status, error) = match chrony.status() {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(shorten(&e.to_string()))),
        };
        NtpReport {
            enabled,
            running: true,
            status,
            error: error.or_else(|| self.error.clone()),
            steps,
            restarts: self.restarts,
        }
    }

    /// The wait before the first restart of a chronyd that exited ([`RESTART_BACKOFF_MIN`]
    /// unless changed here; tests use a short one).
    pub fn with_restart_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self.first_backoff = first;
        self
    }

    /// The process id of mamori's chronyd, while one was started.
    pub fn pid(&self) -> Option<u32> {
        self.chrony.as_ref().map(Chrony::pid)
    }

    /// Whether a chronyd that exited may be started again now; the first exit arms the wait.
    fn restart_due(&mut self) -> bool {
        let now = Instant::now();
        match self.next_restart {
            None => {
                // Right after an exit: a short wait, so a chronyd that dies at start (a bad
                // key file, its user missing) is not restarted in a loop.
                self.next_restart = Some(now + self.backoff);
                false
            }
            Some(at) => now >= at,
        }
    }

    /// Starts chronyd again with the configuration it had; the wait before the next restart
    /// doubles.
    fn restart(&mut self, why: &str) {
        let Some(config) = self.config.clone() else {
            return;
        };
        if let Some(old) = self.chrony.take() {
            let _ = old.stop();
        }
        self.restarts = self.restarts.saturating_add(1);
        self.backoff = (self.backoff * 2).min(RESTART_BACKOFF_MAX);
        self.next_restart = None;
        tracing::warn!(target: "mamori::chrony", restarts = self.restarts, reason = why, "chronyd exited; starting it again");
        match Chrony::start(
            &config,
            ChronyPaths::in_state_dir(&self.state_dir),
            &self.render,
            &self.options,
        ) {
            Ok(c) => {
                self.chrony = Some(c);
                self.error = Some(shorten(&format!(
                    "chronyd was started again after it exited ({} time(s)); last exit: {why}",
                    self.restarts
                )));
            }
            Err(e) => {
                tracing::error!(target: "mamori::chrony", error = %e, "chronyd could not start again");
                self.error = Some(shorten(&format!(
                    "chronyd exited and could not start again: {e}"
                )));
            }
        }
    }

    /// Stops chronyd (also done when the keeper is dropped).
    pub fn stop(&mut self) {
        if let Some(c) = self.chrony.take() {
            let _ = c.stop();
        }
    }
}

/// At most [`MAX_REASON_BYTES`] of `text`, cut at a character boundary.
fn shorten(text: &str) -> String {
    if text.len() <= MAX_REASON_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_REASON_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NtpHost, NtpServer};

    fn one_server() -> TimeConfig {
        TimeConfig {
            servers: vec![NtpServer::new(NtpHost::parse("127.0.0.1").unwrap(), false)],
            require_nts: false,
            min_sources: 1,
            rtc_sync: false,
        }
    }

    #[test]
    fn no_servers_runs_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = NtpDaemon::for_device(dir.path());
        let r = d.report();
        assert!(!r.enabled && !r.running && r.error.is_none());
        let off = TimeConfig {
            servers: Vec::new(),
            require_nts: false,
            min_sources: 1,
            rtc_sync: true,
        };
        assert_eq!(
            d.apply(off).unwrap(),
            NtpApplied {
                running: false,
                error: None
            }
        );
        assert!(!d.report().synchronised());
    }

    #[test]
    fn a_missing_chronyd_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = NtpDaemon::new(
            dir.path(),
            RenderOptions::default(),
            ChronyOptions {
                chronyd: "/nonexistent/chronyd".into(),
                user: "root".into(),
                ..ChronyOptions::for_device()
            },
        );
        let applied = d.apply(one_server()).unwrap();
        assert!(!applied.running);
        assert!(applied.error.is_some(), "{applied:?}");
        let r = d.report();
        assert!(r.enabled && !r.running && r.error.is_some(), "{r:?}");
    }

    #[test]
    fn an_invalid_configuration_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = NtpDaemon::for_device(dir.path());
        let mut bad = one_server();
        bad.min_sources = 2;
        assert!(d.apply(bad).is_err());
        assert!(!d.report().enabled);
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let s = shorten(&long);
        assert!(s.len() <= MAX_REASON_BYTES + '…'.len_utf8());
        assert_eq!(shorten("short"), "short");
    }
}
