//! The audit log forwarded to syslog collectors: the log seen as the forwarder's [`Backlog`],
//! and the running [`Forwarder`] behind the API's [`ForwardingControl`].
//!
//! - Records are read from the log (decrypted) and mapped to [`ForwardRecord`]s: a severity
//!   per event kind and outcome, the device's host name, a one-line English summary.
//! - New records are noticed by a small task polling the log's durable sequence number four
//!   times a second. The log has no public hook for "fsynced up to here" and adding one would
//!   mean changing the audit crate's writer; the poll takes one mutex and reads a few numbers,
//!   and a quarter of a second of delay is nothing against the forwarder's batching and TCP
//!   acknowledgement waits.
//! - The log is told what all collectors have received (the *minimum* of their cursors), so
//!   that records it overwrites before every collector had them count as overwritten unread.
//! - Changing the settings restarts the forwarder: the old one is stopped (an unacknowledged
//!   batch is resent) before the new one starts, one change at a time, by one manager task.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mamori_audit::log::AuditLog;
use mamori_audit::{EventKind, Outcome, Record};
use mamori_forward::{
    Backlog, BacklogError, ClientIdentity, CollectorConfig, Facility, ForwardRecord, Forwarder,
    ForwarderConfig, Severity, SpkiPin, StartAt, TlsSettings, Transport, Tuning,
};
use mamori_http::handlers::forwarding::{
    CollectorSettings, ForwardingControl, ForwardingSettings, SyslogFacility,
};
use tokio::sync::watch;

/// How often the log's durable sequence number is looked at.
const POLL: Duration = Duration::from_millis(250);
/// How often the minimum cursor is handed to the log.
const ACK_EVERY: Duration = Duration::from_secs(2);

/// The audit log as the forwarder's backlog.
pub struct LogBacklog {
    log: Arc<AuditLog>,
    hostname: String,
    last: watch::Sender<u64>,
}

impl LogBacklog {
    /// Wraps the log and starts the task that follows its durable sequence number (on the
    /// current tokio runtime; it ends when the backlog is dropped).
    pub fn start(log: Arc<AuditLog>, hostname: String) -> Arc<Self> {
        let this = Arc::new(Self {
            last: watch::Sender::new(log.status().durable_seq),
            log,
            hostname,
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(b) = weak.upgrade() else { break };
                let seq = b.log.status().durable_seq;
                b.last.send_if_modified(|v| {
                    let changed = *v != seq;
                    *v = seq;
                    changed
                });
            }
        });
        this
    }

    fn map(&self, r: Record) -> ForwardRecord {
        let e = r.event;
        let time =
            time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let event = kind_name(e.event);
        let outcome = match e.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        };
        ForwardRecord {
            seq: e.seq,
            time,
            hostname: self.hostname.clone(),
            severity: severity(e.event, e.outcome),
            message: summary(&event, outcome, e.actor.as_deref(), e.source.as_deref()),
            event,
            outcome: outcome.to_string(),
            actor: e.actor,
            source: e.source,
            details: e.details,
        }
    }
}

impl Backlog for LogBacklog {
    fn read_from(&self, from: u64, limit: usize) -> Result<Vec<ForwardRecord>, BacklogError> {
        // Only what is durable: `last_seq` promises nothing beyond it.
        let durable = self.log.status().durable_seq;
        let records = self
            .log
            .read(from.max(1), limit)
            .map_err(|e| BacklogError(e.to_string()))?;
        Ok(records
            .into_iter()
            .filter(|r| r.event.seq <= durable)
            .map(|r| self.map(r))
            .collect())
    }

    fn last_seq(&self) -> u64 {
        self.log.status().durable_seq
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }
}

/// The stable name of an event kind (as in the API), e.g. `login_failed`.
fn kind_name(kind: EventKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{kind:?}"),
    }
}

/// Syslog severity: trouble with the log itself is an error (records may be lost), refused
/// access a warning, security changes a notice, routine sessions informational.
fn severity(kind: EventKind, outcome: Outcome) -> Severity {
    use EventKind as K;
    match kind {
        K::AuditLogCapacity
        | K::AuditLogOverwritten
        | K::AuditLogWriteFailed
        | K::AuditLogReplaced => Severity::Error,
        K::AuditLogVerified if outcome == Outcome::Failure => Severity::Error,
        K::LoginThresholdExceeded
        | K::SourceThrottled
        | K::ConnectionRefused
        | K::AccessDenied
        | K::LoginFailed => Severity::Warning,
        _ if outcome == Outcome::Failure => Severity::Warning,
        K::LoginSucceeded | K::Logout | K::SessionExpired | K::TokenUsed => Severity::Informational,
        _ => Severity::Notice,
    }
}

/// One line of English: what happened, how it ended, who and from where.
fn summary(event: &str, outcome: &str, actor: Option<&str>, source: Option<&str>) -> String {
    let mut s = format!("{} ({outcome})", event.replace('_', " "));
    if let Some(a) = actor {
        s.push_str(&format!(" by {a}"));
    }
    if let Some(src) = source {
        s.push_str(&format!(" from {src}"));
    }
    s
}

/// Builds the forwarder's collectors from the stored settings.
fn collectors(
    settings: &ForwardingSettings,
    identity: &ClientIdentity,
) -> Result<Vec<CollectorConfig>, String> {
    settings
        .collectors
        .iter()
        .map(|c| collector(c, identity))
        .collect()
}

fn collector(c: &CollectorSettings, identity: &ClientIdentity) -> Result<CollectorConfig, String> {
    let transport = if c.insecure_plaintext {
        Transport::InsecurePlaintext
    } else {
        let pin = c
            .pin
            .as_deref()
            .map(SpkiPin::parse)
            .transpose()
            .map_err(|e| format!("collector {:?}: pin: {e}", c.id))?;
        Transport::Tls(TlsSettings {
            ca_pem: c.ca_pem.clone(),
            server_name: c.server_name.clone(),
            pin,
            client_identity: c.send_device_identity.then(|| identity.clone()),
        })
    };
    Ok(CollectorConfig {
        id: c.id.clone(),
        address: c.address.clone(),
        transport,
        facility: match c.facility {
            SyslogFacility::Auth => Facility::Auth,
            SyslogFacility::Authpriv => Facility::AuthPriv,
        },
        start_at: StartAt::Oldest,
    })
}

/// The running forwarder behind the API.
pub struct Control {
    settings: Mutex<ForwardingSettings>,
    /// Settings to put in force, read by the manager task.
    wanted: watch::Sender<ForwardingSettings>,
    running: Arc<Mutex<Running>>,
    identity: ClientIdentity,
}

#[derive(Default)]
struct Running {
    forwarder: Option<Forwarder>,
    /// Why the settings in force could not be started, if they could not.
    error: Option<String>,
}

impl Control {
    /// Starts forwarding with `settings` (from the store) on the current tokio runtime; cursors
    /// are kept in `state_dir`.
    pub fn start(
        log: Arc<AuditLog>,
        hostname: String,
        identity: ClientIdentity,
        state_dir: PathBuf,
        settings: ForwardingSettings,
    ) -> Arc<Self> {
        let backlog = LogBacklog::start(log.clone(), hostname);
        let (wanted, rx) = watch::channel(settings.clone());
        let running = Arc::new(Mutex::new(Running::default()));
        let control = Arc::new(Self {
            settings: Mutex::new(settings),
            wanted,
            running: running.clone(),
            identity: identity.clone(),
        });
        tokio::spawn(manage(backlog, log, identity, state_dir, rx, running));
        control
    }
}

impl ForwardingControl for Control {
    fn settings(&self) -> ForwardingSettings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn apply(&self, settings: ForwardingSettings) -> Result<(), String> {
        // Refuse before anything changes if the forwarder would refuse it.
        collectors(&settings, &self.identity)?;
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = settings.clone();
        self.wanted.send_replace(settings);
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = running
            .forwarder
            .as_ref()
            .map(|f| serde_json::to_value(f.status()).unwrap_or_default())
            .unwrap_or_else(|| serde_json::json!([]));
        if let (Some(e), Some(list)) = (&running.error, out.as_array_mut()) {
            list.push(serde_json::json!({"error": e}));
        }
        out
    }
}

async fn manage(
    backlog: Arc<LogBacklog>,
    log: Arc<AuditLog>,
    identity: ClientIdentity,
    state_dir: PathBuf,
    mut wanted: watch::Receiver<ForwardingSettings>,
    running: Arc<Mutex<Running>>,
) {
    let mut acked = log.status().acknowledged;
    let mut tick = tokio::time::interval(ACK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut restart = true;
    loop {
        if restart {
            let settings = wanted.borrow_and_update().clone();
            let old = running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forwarder
                .take();
            if let Some(old) = old {
                old.shutdown().await;
            }
            let started = collectors(&settings, &identity).and_then(|collectors| {
                if collectors.is_empty() {
                    return Ok(None);
                }
                Forwarder::start(
                    backlog.clone(),
                    ForwarderConfig {
                        state_dir: state_dir.clone(),
                        collectors,
                        tuning: Tuning::default(),
                    },
                )
                .map(Some)
                .map_err(|e| e.to_string())
            });
            let mut r = running.lock().unwrap_or_else(PoisonError::into_inner);
            match started {
                Ok(f) => {
                    if f.is_some() {
                        tracing::info!(
                            collectors = settings.collectors.len(),
                            "audit forwarding started"
                        );
                    }
                    *r = Running {
                        forwarder: f,
                        error: None,
                    };
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit forwarding could not start");
                    *r = Running {
                        forwarder: None,
                        error: Some(e),
                    };
                }
            }
        }
        tokio::select! {
            changed = wanted.changed() => {
                if changed.is_err() {
                    break;
                }
                restart = true;
            }
            _ = tick.tick() => {
                restart = false;
                // Everything below the lowest cursor has reached every collector.
                let min_cursor = {
                    let r = running.lock().unwrap_or_else(PoisonError::into_inner);
                    r.forwarder
                        .as_ref()
                        .and_then(|f| f.status().iter().map(|s| s.cursor).min())
                };
                if let Some(delivered) = min_cursor.and_then(|c| c.checked_sub(1))
                    && delivered > acked
                {
                    let l = log.clone();
                    match tokio::task::spawn_blocking(move || l.set_acknowledged(delivered)).await {
                        Ok(Ok(())) => acked = delivered,
                        Ok(Err(e)) => tracing::warn!(error = %e, "saving the forwarded position failed"),
                        Err(e) => tracing::warn!(error = %e, "saving the forwarded position failed"),
                    }
                }
            }
        }
    }
    let old = running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .forwarder
        .take();
    if let Some(old) = old {
        old.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_kind_and_outcome() {
        assert_eq!(
            severity(EventKind::LoginFailed, Outcome::Failure),
            Severity::Warning
        );
        assert_eq!(
            severity(EventKind::AccessDenied, Outcome::Failure),
            Severity::Warning
        );
        assert_eq!(
            severity(EventKind::AuditLogOverwritten, Outcome::Success),
            Severity::Error
        );
        assert_eq!(
            severity(EventKind::AuditLogWriteFailed, Outcome::Failure),
            Severity::Error
        );
        assert_eq!(
            severity(EventKind::SettingsChanged, Outcome::Success),
            Severity::Notice
        );
        assert_eq!(
            severity(EventKind::LoginSucceeded, Outcome::Success),
            Severity::Informational
        );
        assert_eq!(
            severity(EventKind::SettingsChanged, Outcome::Failure),
            Severity::Warning
        );
    }

    #[test]
    fn summaries_are_one_english_line() {
        assert_eq!(kind_name(EventKind::LoginFailed), "login_failed");
        assert_eq!(
            summary(
                "login_failed",
                "failure",
                Some("admin"),
                Some("192.0.2.1:5000")
            ),
            "login failed (failure) by admin from 192.0.2.1:5000"
        );
        assert_eq!(
            summary("service_started", "success", None, None),
            "service started (success)"
        );
    }
}
