//! What an administrator configures per collector, and the limits of the forwarder.
//!
//! These are runtime types: the caller keeps the settings in its configuration store (the
//! device identity's key lives with the device keys, never in a collector's settings) and
//! builds them when it starts the [`crate::Forwarder`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mamori_crypto::tls::{ClientIdentity, SpkiPin};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsConnector;

use crate::record::Facility;
use crate::rfc5424::{DEFAULT_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES};

/// The whole forwarder: where cursors live, the collectors, and the limits.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// A directory only the daemon can read and write; one cursor file per collector id.
    pub state_dir: PathBuf,
    /// The collectors; each is forwarded to independently.
    pub collectors: Vec<CollectorConfig>,
    /// Limits and timings shared by all collectors.
    pub tuning: Tuning,
}

/// One collector.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// A stable name (1–64 of `A-Z a-z 0-9 _ -`): it names the cursor file, so renaming a
    /// collector starts it afresh.
    pub id: String,
    /// `host:port` (`[v6]:port` for an IPv6 literal); 6514 is the RFC 5425 port.
    pub address: String,
    /// TLS (the only normal choice) or, by an explicit administrator decision, plain TCP.
    pub transport: Transport,
    /// The facility of every message (authpriv by default).
    pub facility: Facility,
    /// Where a collector without a cursor starts.
    pub start_at: StartAt,
}

/// How messages travel to a collector.
#[derive(Debug, Clone)]
pub enum Transport {
    /// RFC 5425: TLS per the crypto policy, the collector's certificate verified.
    Tls(TlsSettings),
    /// Plain TCP: every record readable and changeable on the wire (S3.1-20 R5/R6).
    ///
    /// It exists only as an explicit administrator choice, which the caller gates behind
    /// re-authentication and shows as a standing warning. The forwarder never falls back to
    /// it: a TLS collector that fails stays failed.
    InsecurePlaintext,
}

/// How the collector is authenticated, and how the device authenticates itself.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The CA certificate(s), PEM, that the collector's certificate must chain to. Only these
    /// are trusted: no system or browser roots.
    pub ca_pem: String,
    /// The name the collector's certificate must be valid for (a DNS name or an IP address).
    pub server_name: String,
    /// If set, the collector's public key must also match this pin.
    pub pin: Option<SpkiPin>,
    /// The device's certificate and key, sent if the collector asks for a client certificate.
    pub client_identity: Option<ClientIdentity>,
}

/// Where a collector without a cursor (a new one) starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// From the oldest record the log still holds (the default: the collector gets history).
    #[default]
    Oldest,
    /// From the next record written after the collector is added.
    Newest,
}

/// Limits and timings. The defaults suit a collector on a LAN or WAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// At most this many records in one batch (and so duplicated after a broken connection).
    pub batch_records: usize,
    /// At most about this many octets in one batch (at least one record is always sent).
    pub batch_bytes: usize,
    /// The bound of one message; see [`crate::rfc5424`].
    pub max_message_bytes: usize,
    /// The first wait after a failure; it doubles up to `backoff_max`, with random jitter.
    pub backoff_min: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// How long a written batch may stay unacknowledged by the collector's TCP before the
    /// connection is given up and the batch resent on a new one.
    pub ack_timeout: Duration,
    /// A new connection counts its first batch as delivered only once it has stayed open this
    /// long: a collector that refuses the device (no or wrong client certificate) closes it
    /// right after the handshake, after its TCP has acknowledged bytes its TLS layer discards.
    pub confirm_after: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            batch_records: 1000,
            batch_bytes: 512 * 1024,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(30),
            confirm_after: Duration::from_secs(1),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A collector id is empty, too long or has other characters than `A-Z a-z 0-9 _ -`.
    #[error("collector id {0:?} must be 1 to 64 of A-Z a-z 0-9 _ -")]
    Id(String),
    /// Two collectors share an id.
    #[error("two collectors have the id {0:?}")]
    DuplicateId(String),
    /// The address is not `host:port`.
    #[error("collector address {0:?} must be host:port (with [ ] around an IPv6 address)")]
    Address(String),
    /// The CA PEM holds no usable certificate.
    #[error("the collector CA must be one or more PEM certificates: {0}")]
    Ca(String),
    /// The expected name is neither a DNS name nor an IP address.
    #[error("the collector name {0:?} is not a DNS name or an IP address")]
    ServerName(String),
    /// The TLS configuration could not be built (e.g. an unusable client key).
    #[error("TLS settings: {0}")]
    Tls(#[from] mamori_crypto::CryptoError),
    /// A limit is out of range.
    #[error("tuning: {0}")]
    Tuning(&'static str),
    /// The state directory could not be created.
    #[error("state directory: {0}")]
    StateDir(std::io::Error),
}

/// A collector ready to connect.
pub(crate) struct Prepared {
    pub id: String,
    pub address: String,
    pub facility: Facility,
    pub start_at: StartAt,
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    pub server_name: Option<String>,
}

impl Tuning {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.batch_records == 0 || self.batch_bytes == 0 {
            return Err(ConfigError::Tuning(
                "batches must allow at least one record",
            ));
        }
        if self.max_message_bytes < MIN_MAX_MESSAGE_BYTES {
            return Err(ConfigError::Tuning(
                "max_message_bytes must be at least 2048 (RFC 5425)",
            ));
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return Err(ConfigError::Tuning(
                "backoff_min must be positive and at most backoff_max",
            ));
        }
        if self.connect_timeout.is_zero() || self.ack_timeout.is_zero() {
            return Err(ConfigError::Tuning("timeouts must be positive"));
        }
        Ok(())
    }
}

impl CollectorConfig {
    pub(crate) fn prepare(&self) -> Result<Prepared, ConfigError> {
        let id_ok = (1..=64).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !id_ok {
            return Err(ConfigError::Id(self.id.clone()));
        }
        check_address(&self.address)?;
        let (tls, server_name) = match &self.transport {
            Transport::InsecurePlaintext => (None, None),
            Transport::Tls(t) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(t.ca_pem.as_bytes()) {
                    let cert = cert.map_err(|e| ConfigError::Ca(e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| ConfigError::Ca(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(ConfigError::Ca("no certificate found".into()));
                }
                let name = ServerName::try_from(t.server_name.clone())
                    .map_err(|_| ConfigError::ServerName(t.server_name.clone()))?;
                let config = mamori_crypto::tls::peer_client_config(
                    roots,
                    t.pin,
                    t.client_identity.clone(),
                )?;
                (
                    Some((TlsConnector::from(Arc::new(config)), name)),
                    Some(t.server_name.clone()),
                )
            }
        };
        Ok(Prepared {
            id: self.id.clone(),
            address: self.address.clone(),
            facility: self.facility,
            start_at: self.start_at,
            tls,
            server_name,
        })
    }
}

fn check_address(address: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::Address(address.to_string());
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && !host.contains(':')
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        for ok in [
            "127.0.0.1:6514",
            "log.example:6514",
            "[::1]:6514",
            "a-b_c.d:1",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            ":6514",
            "::1:6514",
            "[::1]",
            "host:0",
            "host:65536",
            "ho st:6514",
            "[nope]:6514",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_limits_are_refused() {
        assert!(Tuning::default().validate().is_ok());
        for t in [
            Tuning {
                batch_records: 0,
                ..Tuning::default()
            },
            Tuning {
                max_message_bytes: 1024,
                ..Tuning::default()
            },
            Tuning {
                backoff_max: Duration::from_millis(1),
                ..Tuning::default()
            },
        ] {
            assert!(t.validate().is_err(), "{t:?}");
        }
    }

    #[test]
    fn a_collector_needs_a_ca_and_a_valid_name() {
        let base = CollectorConfig {
            id: "siem-1".into(),
            address: "127.0.0.1:6514".into(),
            transport: Transport::Tls(TlsSettings {
                ca_pem: "not a certificate".into(),
                server_name: "collector.test".into(),
                pin: None,
                client_identity: None,
            }),
            facility: Facility::AuthPriv,
            start_at: StartAt::Oldest,
        };
        assert!(matches!(base.prepare(), Err(ConfigError::Ca(_))));
        let mut c = base.clone();
        c.id = "../etc".into();
        assert!(matches!(c.prepare(), Err(ConfigError::Id(_))));
        let mut c = base;
        c.transport = Transport::InsecurePlaintext;
        assert!(c.prepare().is_ok());
    }
}
