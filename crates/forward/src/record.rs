//! What the forwarder sends: one audit record, already decrypted, as RFC 5424 inputs.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One audit record as the forwarder reads it from the backlog.
///
/// The audit log fills it from its own record; the forwarder never changes it, it only formats
/// it ([`crate::rfc5424`]). Header fields that RFC 5424 restricts (HOSTNAME, MSGID) are made
/// valid at formatting time, not here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardRecord {
    /// The record's sequence number in the audit log: starts at 1, one more for each record.
    pub seq: u64,
    /// When the event happened. Sent as UTC with milliseconds.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The device's host name when the record was written (HOSTNAME).
    pub hostname: String,
    /// How severe the event is (the severity half of PRI).
    pub severity: Severity,
    /// The event kind, e.g. `login.failure` (MSGID: at most 32 printable ASCII characters).
    pub event: String,
    /// The outcome, e.g. `success`, `failure`, `denied` (SD parameter `outcome`).
    pub outcome: String,
    /// Who acted: a user name, `system`, or none (SD parameter `actor`).
    pub actor: Option<String>,
    /// Where the action came from: an address, `console`, or none (SD parameter `source`).
    pub source: Option<String>,
    /// A short human-readable summary (MSG `message`); may be empty.
    pub message: String,
    /// The event's details (MSG `details`), any JSON value.
    pub details: serde_json::Value,
}

/// Syslog severity (RFC 5424 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// 0: system is unusable.
    Emergency,
    /// 1: action must be taken immediately.
    Alert,
    /// 2: critical conditions.
    Critical,
    /// 3: error conditions.
    Error,
    /// 4: warning conditions.
    Warning,
    /// 5: normal but significant condition.
    Notice,
    /// 6: informational messages.
    Informational,
    /// 7: debug-level messages.
    Debug,
}

impl Severity {
    /// The numerical code.
    pub fn code(self) -> u8 {
        match self {
            Self::Emergency => 0,
            Self::Alert => 1,
            Self::Critical => 2,
            Self::Error => 3,
            Self::Warning => 4,
            Self::Notice => 5,
            Self::Informational => 6,
            Self::Debug => 7,
        }
    }
}

/// Syslog facility (RFC 5424 §6.2.1): security and authorization messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facility {
    /// 4: security/authorization messages.
    Auth,
    /// 10: security/authorization messages, the private variant that collectors usually keep
    /// apart from general logs. The default.
    #[default]
    AuthPriv,
}

impl Facility {
    /// The numerical code.
    pub fn code(self) -> u8 {
        match self {
            Self::Auth => 4,
            Self::AuthPriv => 10,
        }
    }
}
