//! Audit events and the interim audit sink.
//!
//! Every security-relevant action of the device produces one [`Event`]. This crate holds the
//! event type and, for now, an append-only sink ([`FileSink`]): one record per line, each record
//! sealed with AES-256-GCM under the store's data key and fsynced before the call returns, so an
//! acknowledged event survives a power cut and its content (usernames, addresses) is not
//! readable from the disk. The full audit log storage engine ([`log`]: encrypted segments, hash
//! chain, forward-secure sealing, capacity management) replaces the sink once the daemon is
//! switched over; the event type stays.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use data_encoding::BASE64;
use mamori_crypto::aead::Key;
use serde::{Deserialize, Serialize};

pub mod log;

pub use log::{AuditLog, LogConfig, LogError, LogNotice, LogStatus, Record, Seq, VerificationKey};

/// What happened. Names are stable identifiers (they appear in logs and in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The device was provisioned on first start.
    DeviceProvisioned,
    /// The management service started.
    ServiceStarted,
    /// The management service stopped.
    ServiceStopped,
    /// A login succeeded.
    LoginSucceeded,
    /// A login failed.
    LoginFailed,
    /// An account reached the failure threshold and was locked.
    LoginThresholdExceeded,
    /// A source address reached the failure threshold and was throttled.
    SourceThrottled,
    /// A user logged out.
    Logout,
    /// A session ended by idle or absolute timeout.
    SessionExpired,
    /// A session was revoked by its owner or by an account change.
    SessionRevoked,
    /// A re-authentication succeeded or failed.
    Reauthenticated,
    /// A password was changed by its owner.
    PasswordChanged,
    /// A credential was reset by an administrator or through the console.
    CredentialReset,
    /// A second factor was enrolled, confirmed or removed.
    MfaChanged,
    /// A recovery code was used.
    RecoveryCodeUsed,
    /// An API token was created, revoked, or used.
    TokenCreated,
    /// An API token was revoked.
    TokenRevoked,
    /// An API token authenticated a request (first use per session of the daemon).
    TokenUsed,
    /// A user account was created.
    UserCreated,
    /// A user account was changed (role, enabled/disabled).
    UserChanged,
    /// A user account was deleted.
    UserDeleted,
    /// A security setting was changed.
    SettingsChanged,
    /// A connection was refused because its source is not on the allowlist.
    ConnectionRefused,
    /// Access was denied to an authenticated principal.
    AccessDenied,
    /// The audit log could not be opened at start; it was kept aside and a new one started
    /// (details: where the old one is, and why).
    AuditLogReplaced,
    /// The audit log crossed a capacity threshold (80 % or 90 %).
    AuditLogCapacity,
    /// The oldest audit records were overwritten to make room (details: how many, how many of
    /// them no collector had received).
    AuditLogOverwritten,
    /// Writing the audit log failed, or recovered; events waited or were refused (counted).
    AuditLogWriteFailed,
    /// The audit log's integrity was verified (outcome: whether it held).
    AuditLogVerified,
    /// Audit records were exported.
    AuditLogExported,
    /// Personal data (actor, source) older than a date was purged from the audit log.
    PersonalDataPurged,
    /// A network interface lost its link (administratively down or no carrier); S3.1-35 A.
    LinkDown,
    /// A network interface got its link back (up with carrier); S3.1-35 A.
    LinkUp,
    /// Link changes of one interface were too frequent to record one by one: a counted summary
    /// of the `link_down`/`link_up` events held back (flap damping); S3.1-35 A.
    LinkEventsSuppressed,
    /// The upstream was lost: the default route disappeared or its interface lost its link;
    /// S3.1-35 A.
    UpstreamLost,
    /// The upstream is back: a default route exists again over an interface with link; S3.1-35 A.
    UpstreamRestored,
    /// A network interface appeared; S3.1-35 G.
    InterfaceAdded,
    /// A network interface disappeared; S3.1-35 G.
    InterfaceRemoved,
    /// A USB device was attached; S3.1-35 G.
    UsbDeviceAdded,
    /// A USB device was detached; S3.1-35 G.
    UsbDeviceRemoved,
    /// The firewall ruleset changed (one nftables generation: what changed, and which process
    /// committed it when the kernel tells); S3.1-35 H.
    FirewallRulesetChanged,
    /// The running software differs from the software of the previous start (version or
    /// executable digest, before and after); S3.1-35 F.
    SoftwareChanged,
    /// A system-event monitor lost kernel notifications (receive buffer overrun) and
    /// resynchronised from the kernel's current state: changes in between may be missing or
    /// recorded late.
    MonitorEventsMissed,
    /// A system-event monitor could not start or stopped working; the events it watches are not
    /// recorded until it recovers.
    MonitorFailed,
    /// The wall clock was stepped, or an administrator set it (details: `before` and `after`
    /// in RFC 3339 with milliseconds, `step_ms`, and `cause`: `manual`, `ntp` or `unknown`);
    /// S3.1-35 D.
    TimeChanged,
    /// Time synchronisation was gained or lost (details: `synchronised`, the reference, and
    /// whether it is NTS-authenticated); S3.1-35 R4.
    TimeSyncChanged,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was refused or failed.
    Failure,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number, assigned by the sink.
    #[serde(default)]
    pub seq: u64,
    /// UTC time, RFC 3339, assigned by the sink.
    #[serde(default)]
    pub time: String,
    /// Monotonic time in milliseconds (CLOCK_BOOTTIME), assigned by the audit log, so a wall
    /// clock step shows as a jump of `time` against `mono_ms`. Zero where unknown (the interim
    /// sink) and then left out of the JSON.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mono_ms: u64,
    /// What happened.
    pub event: EventKind,
    /// Who did it (a username), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// From where (an address, `console`, or `local`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Anything else worth knowing; never secrets.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl Event {
    /// A new event with no actor, source or details.
    pub fn new(event: EventKind, outcome: Outcome) -> Self {
        Self {
            seq: 0,
            time: String::new(),
            mono_ms: 0,
            event,
            actor: None,
            source: None,
            outcome,
            details: serde_json::Value::Null,
        }
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the source.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Where events go.
pub trait Sink: Send + Sync {
    /// Records an event durably. Never blocks on the network and never fails the caller: a
    /// sink that cannot write reports it through its own status and the tracing log.
    fn record(&self, event: Event);
}

/// Errors of the file sink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The audit file could not be opened, read or written.
    #[error("audit file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

const CONTEXT: &[u8] = b"mamori/audit/interim/v1";

struct Inner {
    file: File,
    next_seq: u64,
}

/// The interim sink: an append-only file of sealed records, one per line.
pub struct FileSink {
    path: PathBuf,
    key: Key,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("path", &self.path)
            .finish()
    }
}

impl FileSink {
    /// Opens (or creates) the sink at `path`, sealing with `key`.
    pub fn open(path: &Path, key: Key) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Count existing records so sequence numbers continue across restarts.
        let next_seq = match File::open(path) {
            Ok(f) => BufReader::new(f).lines().count() as u64 + 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(io(e)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            key,
            inner: Mutex::new(Inner { file, next_seq }),
        })
    }

    fn append(&self, mut event: Event) -> Result<(), String> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| "audit lock poisoned".to_string())?;
        event.seq = inner.next_seq;
        event.time = now_rfc3339();
        let plain = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        let sealed = self.key.seal(CONTEXT, &plain).map_err(|e| e.to_string())?;
        let mut line = BASE64.encode(&sealed).into_bytes();
        line.push(b'\n');
        inner.file.write_all(&line).map_err(|e| e.to_string())?;
        inner.file.sync_data().map_err(|e| e.to_string())?;
        inner.next_seq += 1;
        Ok(())
    }

    /// Reads the last `limit` records, oldest first. Records that do not open are reported as
    /// an error rather than skipped.
    pub fn tail(&self, limit: usize) -> Result<Vec<Event>, AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        // Hold the lock so a concurrent append is not read half-written.
        let _guard = self.inner.lock();
        let lines: Vec<String> = BufReader::new(File::open(&self.path).map_err(io)?)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(io)?;
        let start = lines.len().saturating_sub(limit);
        let mut out = Vec::with_capacity(lines.len() - start);
        for line in &lines[start..] {
            let bad = || {
                io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "audit record failed authentication",
                ))
            };
            let sealed = BASE64.decode(line.as_bytes()).map_err(|_| bad())?;
            let plain = self.key.open(CONTEXT, &sealed).map_err(|_| bad())?;
            out.push(serde_json::from_slice(&plain).map_err(|_| bad())?);
        }
        Ok(out)
    }
}

impl Sink for FileSink {
    fn record(&self, event: Event) {
        let kind = event.event;
        if let Err(e) = self.append(event) {
            // The full audit log issue adds capacity handling and a visible notice; here the
            // failure at least reaches the operator's console log.
            tracing::error!(event = ?kind, error = %e, "audit record could not be written");
        }
    }
}

/// The current UTC time as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_copy(k: &Key) -> Key {
        Key::from_bytes(k.dangerous_raw_bytes()).unwrap()
    }

    #[test]
    fn events_are_numbered_sealed_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let k = Key::generate().unwrap();
        let sink = FileSink::open(&p, key_copy(&k)).unwrap();
        sink.record(Event::new(EventKind::LoginFailed, Outcome::Failure).actor("alice-marker"));
        sink.record(Event::new(EventKind::LoginSucceeded, Outcome::Success).actor("alice-marker"));
        drop(sink);
        let sink = FileSink::open(&p, k).unwrap();
        sink.record(Event::new(EventKind::Logout, Outcome::Success));
        let events = sink.tail(10).unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(events[0].event, EventKind::LoginFailed);
        let raw = std::fs::read(&p).unwrap();
        assert!(!raw.windows(12).any(|w| w == b"alice-marker"));
    }

    #[test]
    fn a_modified_record_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let sink = FileSink::open(&p, Key::generate().unwrap()).unwrap();
        sink.record(Event::new(EventKind::Logout, Outcome::Success));
        let mut raw = std::fs::read(&p).unwrap();
        raw[5] = if raw[5] == b'A' { b'B' } else { b'A' };
        std::fs::write(&p, raw).unwrap();
        assert!(sink.tail(10).is_err());
    }
}
