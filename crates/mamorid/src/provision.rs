//! First-start provisioning: the device's identity, its TLS key and certificate, and the
//! initial administrator with a per-device random label password.
//!
//! The label password is generated from the OS CSPRNG (never derived from the serial, a MAC,
//! the model or the host name), checked against the password policy, printed once on the
//! console and kept only as a hash. Identity and administrator are written in one transaction,
//! so a power cut leaves either an unprovisioned device or a fully provisioned one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, bail};
use mamori_auth::DeviceFacts;
use mamori_auth::service::install_initial_admin;
use mamori_crypto::cert::{self, IdentityRequest};
use mamori_crypto::{password, random};
use mamori_store::{Store, Table};
use serde::{Deserialize, Serialize};

const DEVICE_KEY: &str = "device";
const TLS_KEY: &str = "tls";
/// Validity of the device's self-signed certificate.
const CERT_DAYS: u32 = 825;
/// Renew the certificate at start when it has less than this left.
const RENEW_BEFORE_SECONDS: u64 = 30 * 86_400;
const DEFAULT_MODEL: &str = "mamori-gw";

/// What manufacturing says about the device (provisioning file or flags).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manufacturing {
    /// Model name.
    pub model: String,
    /// Serial number.
    pub serial: String,
}

/// The device's identity as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    /// Model name.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Unix seconds.
    pub provisioned_at: u64,
    /// Hash of the label password (kept for the factory reset, which restores it).
    pub label_password_hash: String,
}

/// The device's TLS key and certificate, as stored (sealed, like every value).
#[derive(Serialize, Deserialize)]
pub struct TlsRecord {
    /// Certificate, DER.
    pub cert_der: Vec<u8>,
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// Unix seconds.
    pub not_after: u64,
    /// IP addresses in the certificate's subject alternative names.
    #[serde(default)]
    pub ip_addresses: Vec<IpAddr>,
}

fn valid_model(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._-".contains(c))
}

fn valid_serial(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Reads the manufacturing facts from a provisioning file or flags. Without either, a lab
/// device gets the default model and a random serial.
pub fn manufacturing(
    file: Option<&Path>,
    model: Option<&str>,
    serial: Option<&str>,
) -> anyhow::Result<Manufacturing> {
    let m = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading provisioning file {}", path.display()))?;
            toml::from_str::<Manufacturing>(&text)
                .with_context(|| format!("provisioning file {}", path.display()))?
        }
        None => Manufacturing {
            model: model.unwrap_or(DEFAULT_MODEL).to_string(),
            serial: match serial {
                Some(s) => s.to_string(),
                None => format!(
                    "LAB-{}",
                    random::string(b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", 10)?
                ),
            },
        },
    };
    if !valid_model(&m.model) {
        bail!("model must be 1-64 characters: letters, digits, space, '.', '_' or '-'");
    }
    if !valid_serial(&m.serial) {
        bail!("serial must be 1-64 characters: letters, digits, '.', '_' or '-'");
    }
    Ok(m)
}

/// The stored identity, if the device is provisioned.
pub fn identity(store: &Store) -> anyhow::Result<Option<Identity>> {
    Ok(store.get(Table::Identity, DEVICE_KEY)?)
}

/// Provisions the device if it is not yet: identity and initial administrator in one
/// transaction. Returns the identity and, on first start only, the label password to print.
pub fn provision(
    store: &Store,
    m: &Manufacturing,
    facts: &DeviceFacts,
) -> anyhow::Result<(Identity, Option<String>)> {
    if let Some(id) = identity(store)? {
        if id.model != m.model || id.serial != m.serial {
            tracing::debug!(
                "manufacturing identity is fixed at first start; later flags are ignored"
            );
        }
        return Ok((id, None));
    }
    let facts = DeviceFacts {
        model: m.model.clone(),
        serial: m.serial.clone(),
        ..facts.clone()
    };
    let label = mamori_auth::service::generate_password(&facts, mamori_auth::model::INITIAL_ADMIN)?;
    let hash = password::hash(&label)?;
    let now = unix_now();
    let id = Identity {
        model: m.model.clone(),
        serial: m.serial.clone(),
        provisioned_at: now,
        label_password_hash: hash.clone(),
    };
    let created = store.write(|tx| {
        if tx.get::<Identity>(Table::Identity, DEVICE_KEY)?.is_some() {
            return Ok::<_, mamori_store::StoreError>(false);
        }
        tx.put(Table::Identity, DEVICE_KEY, &id)?;
        install_initial_admin(tx, &hash, now)?;
        Ok(true)
    })?;
    if !created {
        return Ok((identity(store)?.context("identity vanished")?, None));
    }
    Ok((id, Some(label)))
}

/// The device's TLS identity: loaded from the store, or generated (first start, or when the
/// certificate is about to expire). The certificate is also written to `cert_path` for clients
/// to pin.
pub fn tls(
    store: &Store,
    listen: SocketAddr,
    host_ips: &[IpAddr],
    cert_path: &Path,
) -> anyhow::Result<TlsRecord> {
    let now = unix_now();
    let record = match store.get::<TlsRecord>(Table::Identity, TLS_KEY)? {
        Some(r) if r.not_after > now + RENEW_BEFORE_SECONDS && covers(&r, listen) => r,
        existing => {
            if let Some(r) = existing {
                tracing::info!(
                    expiring = r.not_after <= now + RENEW_BEFORE_SECONDS,
                    "device certificate expires within 30 days or does not name the listen \
                     address; generating a new key and certificate (clients must pin it again)"
                );
            }
            let ips = certificate_ips(listen, host_ips);
            let generated = cert::generate(&IdentityRequest {
                // Readable before login: no model, serial or software name (S3.1-24).
                common_name: "device management".into(),
                dns_names: vec!["localhost".into()],
                ip_addresses: ips.clone(),
                validity_days: CERT_DAYS,
            })?;
            let r = TlsRecord {
                cert_der: generated.cert_der.clone(),
                cert_pem: generated.cert_pem.clone(),
                key_der: generated.key_pkcs8_der.to_vec(),
                not_after: now + u64::from(CERT_DAYS) * 86_400,
                ip_addresses: ips,
            };
            store.write(|tx| tx.put(Table::Identity, TLS_KEY, &r))?;
            r
        }
    };
    if std::fs::read_to_string(cert_path).ok().as_deref() != Some(record.cert_pem.as_str()) {
        mamori_durable::write(cert_path, record.cert_pem.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", cert_path.display()))?;
    }
    Ok(record)
}

/// The addresses a new certificate names: loopback, and the listen address, or every address of
/// the host when listening on all of them (then a later address change needs a new certificate
/// by hand; rotating the key whenever DHCP moves would break every client's pin).
fn certificate_ips(listen: SocketAddr, host_ips: &[IpAddr]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    let extra: Vec<IpAddr> = if listen.ip().is_unspecified() {
        host_ips.to_vec()
    } else {
        vec![listen.ip()]
    };
    for ip in extra {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// Whether a stored certificate names a specific listen address.
fn covers(r: &TlsRecord, listen: SocketAddr) -> bool {
    listen.ip().is_unspecified()
        || listen.ip().is_loopback() && r.ip_addresses.is_empty()
        || r.ip_addresses.contains(&listen.ip())
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_names_the_listen_address_or_the_host_addresses() {
        let host: Vec<IpAddr> = vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()];
        let specific = certificate_ips("192.0.2.1:443".parse().unwrap(), &host);
        assert!(specific.contains(&"192.0.2.1".parse().unwrap()));
        assert!(!specific.contains(&"192.0.2.7".parse().unwrap()));
        let any = certificate_ips("0.0.0.0:443".parse().unwrap(), &host);
        assert!(host.iter().all(|ip| any.contains(ip)));
        assert!(any.contains(&IpAddr::from(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn a_changed_listen_address_is_not_covered_by_the_old_certificate() {
        let r = TlsRecord {
            cert_der: vec![],
            cert_pem: String::new(),
            key_der: vec![],
            not_after: 0,
            ip_addresses: vec![Ipv4Addr::LOCALHOST.into(), "192.0.2.1".parse().unwrap()],
        };
        assert!(covers(&r, "192.0.2.1:443".parse().unwrap()));
        assert!(!covers(&r, "192.0.2.2:443".parse().unwrap()));
        assert!(covers(&r, "[::]:443".parse().unwrap()));
    }
}
