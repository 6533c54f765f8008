//! What an administrator sees per collector (API, UI, CLI).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The state of one collector, serialisable for the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorStatus {
    /// The collector's id.
    pub id: String,
    /// `host:port`.
    pub address: String,
    /// The name its certificate must be valid for (none for plain TCP).
    pub server_name: Option<String>,
    /// `tls`, or `insecure_plaintext` (which the UI shows as a standing warning).
    pub transport: TransportKind,
    /// What the forwarder is doing now.
    pub state: LinkState,
    /// Whether a session is up (`state == connected`).
    pub connected: bool,
    /// The negotiated TLS version while connected, e.g. `TLSv1_3`.
    pub tls_version: Option<String>,
    /// The negotiated cipher suite while connected.
    pub cipher_suite: Option<String>,
    /// The sequence number of the next record to deliver: everything before it was
    /// acknowledged by the collector. 0 until the collector has a position in the log.
    pub cursor: u64,
    /// The highest sequence number in the log.
    pub last_seq: u64,
    /// Records in the log not yet delivered.
    pub lag: u64,
    /// Records delivered since the forwarder started.
    pub delivered: u64,
    /// Records the log overwrote before they could be delivered, since the forwarder started.
    pub skipped: u64,
    /// When a batch was last acknowledged.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
    /// When the current session started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub connected_since: Option<OffsetDateTime>,
    /// The latest failure; kept after recovery so an administrator can see what happened
    /// (compare `at` with `last_success`).
    pub last_error: Option<StatusError>,
    /// Failures since the last confirmed session.
    pub consecutive_failures: u32,
    /// When the next attempt is due, while waiting after a failure.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
}

/// Transport of a collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// RFC 5425 syslog over TLS.
    Tls,
    /// Plain TCP, chosen explicitly by an administrator.
    InsecurePlaintext,
}

/// What the forwarder is doing for a collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Opening the connection and the TLS session.
    Connecting,
    /// A session is up; records are delivered as they come.
    Connected,
    /// Waiting before the next attempt after a failure (`next_attempt`).
    Waiting,
    /// The forwarder was stopped.
    Stopped,
}

/// A failure, as shown to an administrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusError {
    /// What kind of failure, for the UI to explain and for alerts to match.
    pub kind: ErrorKind,
    /// A readable description (no secrets).
    pub message: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Kinds of failure. The certificate kinds mean the collector was *not* trusted and received
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The address could not be resolved.
    Address,
    /// No TCP connection (refused, unreachable, timed out).
    Connect,
    /// The collector's certificate does not chain to the configured CA (or is otherwise
    /// unacceptable: bad signature, wrong key usage, unsupported algorithm).
    CertificateUntrusted,
    /// The collector's certificate is expired or not yet valid (check both clocks).
    CertificateExpired,
    /// The collector's certificate is not valid for the configured name.
    CertificateNameMismatch,
    /// The collector's certificate chains to the CA but its key is not the pinned one.
    CertificatePinMismatch,
    /// The collector refused the TLS session, or closed it right after the handshake: usually
    /// it requires a client certificate and none was configured, or it does not trust ours.
    SessionRejected,
    /// Another TLS failure (no common version or cipher suite, protocol error).
    Tls,
    /// The connection broke during a session; unacknowledged records are sent again.
    ConnectionLost,
    /// The collector's TCP did not acknowledge a batch in time; it is sent again.
    NotAcknowledged,
    /// The audit log could not be read.
    Backlog,
    /// The cursor could not be read or saved.
    Cursor,
}
