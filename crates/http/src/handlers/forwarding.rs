//! Forwarding of the audit log to syslog collectors (S3.1-35 R5, S3.1-20): the settings an
//! administrator keeps in the store, and the forwarder's status.
//!
//! The forwarder itself runs in the daemon (mamorid); this crate only knows it through
//! [`ForwardingControl`], so the API does not depend on how records are sent.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mamori_audit::{Event, EventKind, Outcome};
use mamori_store::Table;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;

/// Where the settings are stored (`Table::Settings`).
pub const SETTINGS_KEY: &str = "forwarding";

/// At most this many collectors: each is a task, a connection and a cursor.
pub const MAX_COLLECTORS: usize = 8;

/// The largest CA bundle accepted for one collector.
const MAX_CA_PEM_BYTES: usize = 64 * 1024;

/// The collectors the audit log is forwarded to. None by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardingSettings {
    /// At most eight collectors, each forwarded to independently.
    #[serde(default)]
    pub collectors: Vec<CollectorSettings>,
}

/// One syslog collector (RFC 5424 over TLS, RFC 5425).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectorSettings {
    /// A stable name, 1–32 of `a-z 0-9 -`. It names the collector's delivery cursor: renaming
    /// a collector makes it start again from the oldest record.
    pub id: String,
    /// `host:port` (`[v6]:port` for an IPv6 address); 6514 is the RFC 5425 port.
    pub address: String,
    /// PEM certificate(s) of the CA the collector's certificate must chain to (TLS only).
    #[serde(default)]
    pub ca_pem: String,
    /// The name the collector's certificate must be valid for: a DNS name or an IP address
    /// (TLS only).
    #[serde(default)]
    pub server_name: String,
    /// Optionally, the collector's public key as `sha256//BASE64` (TLS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Send the device's own certificate when the collector asks for one (mutual TLS).
    #[serde(default)]
    pub send_device_identity: bool,
    /// Send in PLAIN TEXT over TCP: every record readable and changeable on the network.
    /// Only by this explicit choice (with re-authentication); the device then shows a standing
    /// warning. Without TLS, `ca_pem`, `server_name`, `pin` and `send_device_identity` must be
    /// left empty.
    #[serde(default)]
    pub insecure_plaintext: bool,
    /// The syslog facility of every message.
    #[serde(default)]
    pub facility: SyslogFacility,
}

/// Syslog facility.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFacility {
    /// 4: security/authorization.
    Auth,
    /// 10: security/authorization, private (the default).
    #[default]
    Authpriv,
}

/// The running forwarder, as the API sees it. Implemented by the daemon.
pub trait ForwardingControl: Send + Sync {
    /// The settings in force.
    fn settings(&self) -> ForwardingSettings;
    /// Replaces the settings (already validated and stored) and restarts the forwarder with
    /// them. An error means they could not be put in force.
    fn apply(&self, settings: ForwardingSettings) -> Result<(), String>;
    /// Per-collector status (JSON array), in configuration order.
    fn status(&self) -> serde_json::Value;
}

/// A device without forwarding (tests of the HTTP layer alone).
#[derive(Debug, Default)]
pub struct NoForwarding;

impl ForwardingControl for NoForwarding {
    fn settings(&self) -> ForwardingSettings {
        ForwardingSettings::default()
    }
    fn apply(&self, _: ForwardingSettings) -> Result<(), String> {
        Err("forwarding is not available in this process".into())
    }
    fn status(&self) -> serde_json::Value {
        json!([])
    }
}

impl ForwardingSettings {
    /// Whether any collector receives records in plain text.
    pub fn any_plaintext(&self) -> bool {
        self.collectors.iter().any(|c| c.insecure_plaintext)
    }

    /// Checks everything that can be checked without connecting.
    pub fn validate(&self) -> Result<(), String> {
        if self.collectors.len() > MAX_COLLECTORS {
            return Err(format!("at most {MAX_COLLECTORS} collectors"));
        }
        for (i, c) in self.collectors.iter().enumerate() {
            if self.collectors[..i].iter().any(|o| o.id == c.id) {
                return Err(format!("two collectors have the id {:?}", c.id));
            }
            c.validate()
                .map_err(|e| format!("collector {:?}: {e}", c.id))?;
        }
        Ok(())
    }

    /// The settings for the audit record: CA bodies left out (their SHA-256 shown instead).
    pub fn for_audit(&self) -> serde_json::Value {
        let collectors: Vec<serde_json::Value> = self
            .collectors
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.remove("ca_pem");
                    if !c.ca_pem.is_empty() {
                        let digest = mamori_crypto::digest::sha256(c.ca_pem.as_bytes());
                        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                        o.insert("ca_pem_sha256".into(), json!(hex));
                    }
                }
                v
            })
            .collect();
        json!({ "collectors": collectors })
    }
}

impl CollectorSettings {
    fn validate(&self) -> Result<(), String> {
        let id_ok = (1..=32).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err("id must be 1 to 32 of a-z 0-9 -".into());
        }
        check_address(&self.address)?;
        if self.insecure_plaintext {
            if !self.ca_pem.is_empty()
                || !self.server_name.is_empty()
                || self.pin.is_some()
                || self.send_device_identity
            {
                return Err(
                    "a plain-text collector takes no ca_pem, server_name, pin or \
                            send_device_identity"
                        .into(),
                );
            }
            return Ok(());
        }
        if self.ca_pem.len() > MAX_CA_PEM_BYTES {
            return Err(format!("ca_pem is larger than {MAX_CA_PEM_BYTES} bytes"));
        }
        let mut certs = 0;
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("ca_pem: {e}"))?;
            // Parse it as the TLS verifier will (a PEM block holding garbage is refused here).
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            roots
                .add(cert)
                .map_err(|e| format!("ca_pem is not a usable certificate: {e}"))?;
            certs += 1;
        }
        if certs == 0 {
            return Err(
                "ca_pem must hold at least one PEM certificate (TLS is required unless \
                        insecure_plaintext is set)"
                    .into(),
            );
        }
        if self.server_name.is_empty() || ServerName::try_from(self.server_name.as_str()).is_err() {
            return Err("server_name must be a DNS name or an IP address".into());
        }
        if let Some(pin) = &self.pin {
            mamori_crypto::tls::SpkiPin::parse(pin)
                .map_err(|e| format!("pin must be sha256//BASE64: {e}"))?;
        }
        Ok(())
    }
}

fn check_address(address: &str) -> Result<(), String> {
    let bad = || format!("address {address:?} must be host:port ([v6]:port for IPv6)");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else if host.parse::<IpAddr>().is_ok() {
        // A bare IPv6 address would be ambiguous; an IPv4 one is fine.
        !host.contains(':')
    } else {
        (1..=253).contains(&host.len())
            && host.split('.').all(|l| {
                (1..=63).contains(&l.len())
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(())
}

/// `GET /api/v1/settings/forwarding`: the collectors configured.
pub async fn get(State(state): State<AppState>) -> Json<ForwardingSettings> {
    Json(state.forwarding.settings())
}

/// `PUT /api/v1/settings/forwarding`: replaces the collectors (validated, stored, then put in
/// force: the forwarder restarts); recorded with before and after.
pub async fn put(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<ForwardingSettings>,
) -> Result<StatusCode, ApiError> {
    req.validate().map_err(ApiError::BadRequest)?;
    let before = state.forwarding.settings();
    let store = state.store.clone();
    let stored = req.clone();
    tokio::task::spawn_blocking(move || {
        store.write(|tx| tx.put(Table::Settings, SETTINGS_KEY, &stored))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let applied = state.forwarding.apply(req.clone());
    let outcome = if applied.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    state.audit_record(
        Event::new(EventKind::SettingsChanged, outcome)
            .actor(p.username.as_str())
            .source(p.origin.label())
            .details(json!({
                "setting": "forwarding",
                "before": before.for_audit(),
                "after": req.for_audit(),
                "insecure_plaintext": req.any_plaintext(),
                "error": applied.as_ref().err(),
            })),
    );
    applied.map_err(ApiError::Internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/audit/forwarding`: the forwarder's status per collector.
pub async fn status(State(state): State<AppState>) -> Json<serde_json::Value> {
    let settings = state.forwarding.settings();
    Json(json!({
        "collectors": state.forwarding.status(),
        "insecure_plaintext": settings.any_plaintext(),
        "insecure_collectors": settings.collectors.iter()
            .filter(|c| c.insecure_plaintext).map(|c| c.id.as_str()).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(id: &str) -> CollectorSettings {
        CollectorSettings {
            id: id.into(),
            address: "127.0.0.1:514".into(),
            ca_pem: String::new(),
            server_name: String::new(),
            pin: None,
            send_device_identity: false,
            insecure_plaintext: true,
            facility: SyslogFacility::default(),
        }
    }

    #[test]
    fn addresses_ids_and_counts_are_checked() {
        for ok in ["127.0.0.1:6514", "log.example:6514", "[::1]:6514"] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "::1:6514",
            "host:0",
            "ho st:1",
            "-a.b:1",
            "[x]:1",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        let ok = ForwardingSettings {
            collectors: vec![plain("siem-1"), plain("b")],
        };
        assert!(ok.validate().is_ok());
        assert!(ok.any_plaintext());
        for bad_id in ["", "Upper", "a_b", &"x".repeat(33)] {
            let s = ForwardingSettings {
                collectors: vec![plain(bad_id)],
            };
            assert!(s.validate().is_err(), "{bad_id:?}");
        }
        let dup = ForwardingSettings {
            collectors: vec![plain("a"), plain("a")],
        };
        assert!(dup.validate().is_err());
        let many = ForwardingSettings {
            collectors: (0..9).map(|i| plain(&format!("c{i}"))).collect(),
        };
        assert!(many.validate().is_err());
    }

    #[test]
    fn tls_needs_a_ca_and_a_name_and_plaintext_takes_none() {
        let mut c = plain("a");
        c.insecure_plaintext = false;
        assert!(c.validate().unwrap_err().contains("ca_pem"));
        c.ca_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();
        c.server_name = "collector.test".into();
        assert!(c.validate().is_err(), "garbage in a PEM block");
        let mut p = plain("a");
        p.server_name = "x".into();
        assert!(p.validate().is_err());
    }
}
