//! Audit events and the audit log.
//!
//! Every security-relevant action of the device produces one [`Event`] of one [`EventKind`]
//! (the classes A–I of JC-STAR S3.1-35 R1 among them) and hands it to a [`Sink`]. The sink of
//! the device is the audit log ([`log::AuditLog`]): encrypted, hash-chained, forward-secure
//! sealed, bounded, crash-safe.

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
    /// At start, bytes at the end of the audit log that did not form valid records were cut off
    /// and kept aside for inspection: the trace of a crash, or of tampering (details: file,
    /// offset, bytes, where they were kept).
    AuditLogRepaired,
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
    /// A network configuration was committed through the pipeline (details: revision, previous
    /// revision, channel, confirm deadline) or refused before anything changed (details: step,
    /// reason); S3.1-35 H for the firewall part.
    ConfigCommitted,
    /// A committed configuration waiting for confirmation was confirmed (details: revision).
    ConfigConfirmed,
    /// A committed configuration was reverted: its apply or health probe failed, its confirm
    /// window ran out, or mamori restarted during the window (details: from, to, reason).
    ConfigReverted,
    /// The network configuration was applied at start (details: revision, step times) or could
    /// not be (the firewall's start; S3.1-35 H).
    ConfigApplied,
    /// Packets dropped by the firewall, summarised over an interval (details: interval, total,
    /// counts per chain and protocol, the busiest sources and ports); S3.1-35 H.
    FirewallDropped,
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
    /// clock step shows as a jump of `time` against `mono_ms`. Zero where unknown and then left
    /// out of the JSON.
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

/// The fields of `details` that hold personal data (S3.1-40), for an event of kind `kind`.
///
/// The audit log keeps these beside `actor` and `source`, under the segment's personal key, so
/// a purge (S3.1-41) destroys them with the rest; the data part keeps the key with the value
/// [`log::PURGED`]. docs/en/audit.md section 8 lists the same fields and why each is needed.
pub fn personal_details(kind: EventKind, details: &serde_json::Value) -> &'static [&'static str] {
    match kind {
        // The account acted on.
        EventKind::UserCreated
        | EventKind::UserChanged
        | EventKind::UserDeleted
        | EventKind::CredentialReset => &["user"],
        // A request path may name an account (`/api/v1/users/alice`).
        EventKind::AccessDenied => &["path"],
        // Names users give their tokens and security keys.
        EventKind::TokenCreated | EventKind::MfaChanged => &["name"],
        // The management allowlist: a /32 or /128 entry is one station's address.
        EventKind::SettingsChanged if details["setting"] == "access" => &["before", "after"],
        // The busiest sources of dropped packets: each is one station's address.
        EventKind::FirewallDropped => &["top_sources"],
        _ => &[],
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

/// The current UTC time as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
