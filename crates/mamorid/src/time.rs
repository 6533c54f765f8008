//! Time in the management process: the configuration sent to the privileged parent (which runs
//! chronyd), the step watcher beside the audit log, the synchronisation poller, and the manual
//! set-time, behind the API's [`TimeControl`].
//!
//! - At start, and on every change, the stored [`TimeConfig`] goes to the parent
//!   (`ApplyTime`), which starts, restarts or stops chronyd.
//! - The poller asks the parent for the status (`TimeStatus`) every 10 s, every second for 30 s
//!   after a start or a change, and at once after a change; each reading feeds a
//!   [`SyncTracker`], whose records (`time_sync_changed`) go to the audit log. chronyd's step
//!   notices come with each reading.
//! - The [`StepWatcher`] (a thread, started after confinement) records every step of the clock
//!   as `time_changed`. To attribute a step to NTP it asks the parent for chronyd's newest
//!   step notices (chronyd logs the step just after making it, so it asks a few times within
//!   about a second before calling the cause `unknown`).
//! - A manual set-time is `mamori_time::set_time` through the parent's `SetTime`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mamori_audit::Sink;
use mamori_audit::log::AuditLog;
use mamori_http::handlers::time::TimeControl;
use mamori_privsep::client::Parent;
use mamori_time::step::{DetectedStep, NtpSteps};
use mamori_time::{
    Attribution, ChronyStepLog, ManualSetTime, ManualStep, ManualSteps, NtpApplied, NtpReport,
    StepWatcher, SyncTracker, SystemClocks, TimeConfig, TimeError, WatcherConfig,
};
use tokio::sync::Notify;

/// How often the status is read when nothing changed.
const POLL: Duration = Duration::from_secs(10);
/// How often it is read just after a start or a change (the first synchronisation takes
/// about a second with `iburst`).
const POLL_FAST: Duration = Duration::from_secs(1);
/// How long the fast polling lasts.
const FAST_FOR: Duration = Duration::from_secs(30);

/// The management process's time functions.
pub struct TimeService {
    parent: Arc<Parent>,
    audit: Arc<AuditLog>,
    config: Mutex<TimeConfig>,
    manual: ManualSteps,
    ntp_steps: Arc<ParentSteps>,
    changed: Notify,
    /// Kept for the life of the service (dropping it stops the thread).
    _watcher: Option<StepWatcher>,
}

impl TimeService {
    /// Starts the step watcher (a thread: call after confinement) and the poller (on the
    /// current tokio runtime), which first sends `config` to the parent.
    pub fn start(parent: Arc<Parent>, audit: Arc<AuditLog>, config: TimeConfig) -> Arc<Self> {
        let ntp_steps = Arc::new(ParentSteps {
            parent: parent.clone(),
            log: ChronyStepLog::default(),
        });
        let manual = ManualSteps::default();
        let watcher = SystemClocks::new().and_then(|clocks| {
            let sink: Arc<dyn Sink> = audit.clone();
            let ntp: Arc<dyn NtpSteps> = ntp_steps.clone();
            StepWatcher::spawn(
                WatcherConfig::default(),
                clocks,
                sink,
                Attribution {
                    manual: manual.clone(),
                    ntp: Some(ntp),
                },
            )
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, "the clock-step watcher could not start");
                None
            }
        };
        let this = Arc::new(Self {
            parent,
            audit,
            config: Mutex::new(config),
            manual,
            ntp_steps,
            changed: Notify::new(),
            _watcher: watcher,
        });
        tokio::spawn(poll(Arc::downgrade(&this)));
        this
    }

    fn read(&self) -> Result<NtpReport, String> {
        let report = self.parent.time_status().map_err(|e| e.to_string())?;
        self.ntp_steps.log.merge(&report.steps);
        Ok(report)
    }
}

impl TimeControl for TimeService {
    fn config(&self) -> TimeConfig {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn apply(&self, config: TimeConfig) -> Result<NtpApplied, String> {
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = config.clone();
        let applied = self.parent.apply_time(config).map_err(|e| e.to_string());
        self.changed.notify_one();
        applied
    }

    fn report(&self) -> Result<NtpReport, String> {
        self.read()
    }

    fn set_time(&self, req: ManualSetTime) -> Result<ManualStep, TimeError> {
        mamori_time::set_time(&*self.parent, &*self.audit, &self.manual, &req)
    }
}

/// Sends the configuration, then reads the status and records changes of synchronisation
/// until the service is gone.
async fn poll(service: std::sync::Weak<TimeService>) {
    let mut tracker = SyncTracker::new();
    let mut fast_until = Instant::now() + FAST_FOR;
    if let Some(s) = service.upgrade() {
        let config = s.config();
        let servers = config.servers.len();
        let sent = tokio::task::spawn_blocking(move || s.parent.apply_time(config)).await;
        match sent {
            Ok(Ok(a)) => tracing::info!(
                servers,
                chronyd_running = a.running,
                error = a.error.as_deref(),
                "time configuration sent to the parent"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "the time configuration was not applied"),
            Err(e) => tracing::error!(error = %e, "the time configuration was not applied"),
        }
    }
    loop {
        let Some(s) = service.upgrade() else { break };
        let reading = {
            let s = s.clone();
            tokio::task::spawn_blocking(move || s.read())
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
        };
        let event = match &reading {
            Ok(r) => match &r.status {
                Some(status) => tracker.observe(status),
                None => tracker.observe_failure(&TimeError::Parent(
                    r.error
                        .clone()
                        .unwrap_or_else(|| "NTP synchronisation is off".into()),
                )),
            },
            Err(e) => tracker.observe_failure(&TimeError::Parent(e.clone())),
        };
        if let Some(event) = event {
            s.audit.record(event);
        }
        let wait = if Instant::now() < fast_until {
            POLL_FAST
        } else {
            POLL
        };
        let changed = tokio::select! {
            () = s.changed.notified() => true,
            () = tokio::time::sleep(wait) => false,
        };
        if changed {
            fast_until = Instant::now() + FAST_FOR;
        }
    }
}

/// chronyd's step notices, fetched from the parent when the watcher asks.
struct ParentSteps {
    parent: Arc<Parent>,
    log: ChronyStepLog,
}

impl NtpSteps for ParentSteps {
    fn explains(&self, step: &DetectedStep) -> bool {
        for attempt in 0..4 {
            if self.log.explains(step) {
                return true;
            }
            match self.parent.time_status() {
                Ok(report) => {
                    self.log.merge(&report.steps);
                    if self.log.explains(step) {
                        return true;
                    }
                    if !report.running {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "clock step: chronyd's step notices could not be read");
                    return false;
                }
            }
            if attempt < 3 {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        false
    }
}
