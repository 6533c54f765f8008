//! The device's own TLS identity: an ECDSA P-256 key generated on the device and a
//! self-signed certificate for it.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::CryptoError;

/// A generated key and certificate.
pub struct TlsIdentity {
    /// The certificate in PEM, as written for clients to pin.
    pub cert_pem: String,
    /// The certificate in DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER. Zeroized on drop.
    pub key_pkcs8_der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &self.cert_pem)
            .field("key_pkcs8_der", &"<redacted>")
            .finish()
    }
}

/// What goes into a device certificate.
#[derive(Debug, Clone)]
pub struct IdentityRequest {
    /// Subject common name. Seen by anyone before login, so it names nothing about the device
    /// (S3.1-24).
    pub common_name: String,
    /// DNS names the certificate is valid for.
    pub dns_names: Vec<String>,
    /// IP addresses the certificate is valid for.
    pub ip_addresses: Vec<IpAddr>,
    /// Validity in days from now.
    pub validity_days: u32,
}

fn err(e: rcgen::Error) -> CryptoError {
    CryptoError::Certificate(e.to_string())
}

/// Generates a new ECDSA P-256 key and a self-signed certificate for it.
pub fn generate(req: &IdentityRequest) -> Result<TlsIdentity, CryptoError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, req.common_name.as_str());
    params.distinguished_name = dn;
    for name in &req.dns_names {
        params
            .subject_alt_names
            .push(SanType::DnsName(name.clone().try_into().map_err(err)?));
    }
    for ip in &req.ip_addresses {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(i64::from(req.validity_days));
    params.serial_number = Some(rcgen::SerialNumber::from_slice(
        &crate::random::bytes::<16>()?,
    ));
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(TlsIdentity {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pkcs8_der: Zeroizing::new(key.serialize_der()),
    })
}

/// Converts stored DER bytes back into the types rustls takes.
pub fn rustls_parts(
    cert_der: &[u8],
    key_pkcs8_der: &[u8],
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        vec![CertificateDer::from(cert_der.to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8_der.to_vec())),
    )
}
