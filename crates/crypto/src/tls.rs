//! TLS configurations restricted to the crypto policy.
//!
//! rustls already has no CBC suites, no RSA key transport, no renegotiation and nothing older than
//! TLS 1.2. On top of that the provider here offers only AES-GCM suites and the NIST P-256/P-384
//! groups; ChaCha20-Poly1305 is added only when an administrator enables it.
//!
//! Extended master secret is offered by rustls but not *required* for TLS 1.2: scanners send
//! TLS 1.2 probes without it and would report "TLS 1.2 not offered" (research/crates.md §1).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use webpki::aws_lc_rs as sig;

use crate::CryptoError;

/// Choices an administrator may make within the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsOptions {
    /// Also offer TLS_CHACHA20_POLY1305_SHA256 (on the CRYPTREC list, off by default).
    pub allow_chacha20: bool,
}

/// Certificate signature algorithms we accept from peers: ECDSA P-256/P-384 and RSA (PSS or
/// PKCS#1 v1.5) with SHA-256 or stronger. No SHA-1, no Ed25519 (not needed by any peer yet).
///
/// In TLS 1.2 a signature scheme does not fix the curve: GnuTLS (rsyslog's TLS module) signs
/// with a P-256 key and SHA-384, so each ECDSA scheme maps to both curves, as rustls' own table
/// does. TLS 1.3 binds the curve and uses only the first entry.
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        sig::ECDSA_P256_SHA256,
        sig::ECDSA_P256_SHA384,
        sig::ECDSA_P384_SHA256,
        sig::ECDSA_P384_SHA384,
        sig::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        sig::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        sig::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        sig::RSA_PKCS1_2048_8192_SHA256,
        sig::RSA_PKCS1_2048_8192_SHA384,
        sig::RSA_PKCS1_2048_8192_SHA512,
    ],
    mapping: &[
        (
            rustls::SignatureScheme::ECDSA_NISTP384_SHA384,
            &[sig::ECDSA_P384_SHA384, sig::ECDSA_P256_SHA384],
        ),
        (
            rustls::SignatureScheme::ECDSA_NISTP256_SHA256,
            &[sig::ECDSA_P256_SHA256, sig::ECDSA_P384_SHA256],
        ),
        (
            rustls::SignatureScheme::RSA_PSS_SHA512,
            &[sig::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            rustls::SignatureScheme::RSA_PSS_SHA384,
            &[sig::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            rustls::SignatureScheme::RSA_PSS_SHA256,
            &[sig::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            rustls::SignatureScheme::RSA_PKCS1_SHA512,
            &[sig::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            rustls::SignatureScheme::RSA_PKCS1_SHA384,
            &[sig::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            rustls::SignatureScheme::RSA_PKCS1_SHA256,
            &[sig::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

fn cipher_suites(options: TlsOptions) -> Vec<SupportedCipherSuite> {
    let mut suites = vec![
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
    ];
    if options.allow_chacha20 {
        suites.push(cipher_suite::TLS13_CHACHA20_POLY1305_SHA256);
    }
    suites.extend([
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ]);
    if options.allow_chacha20 {
        suites.extend([
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ]);
    }
    suites
}

/// The rustls crypto provider restricted to the policy.
pub fn provider(options: TlsOptions) -> CryptoProvider {
    CryptoProvider {
        cipher_suites: cipher_suites(options),
        kx_groups: vec![kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        ..default_provider()
    }
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A server configuration for the management listener.
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    options: TlsOptions,
) -> Result<ServerConfig, CryptoError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider(options)))
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Tickets would keep session keys in memory across connections; the management plane does
    // not need resumption speed.
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A client configuration that trusts exactly `roots` (the CLI, the tests, later the log
/// forwarder and the update client).
pub fn client_config(roots: RootCertStore) -> Result<ClientConfig, CryptoError> {
    Ok(
        ClientConfig::builder_with_provider(Arc::new(provider(TlsOptions::default())))
            .with_protocol_versions(VERSIONS)?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The SHA-256 hash of a certificate's SubjectPublicKeyInfo: a pin on a peer's public key
/// (the `pin-sha256` of RFC 7469, also what `curl --pinnedpubkey sha256//…` takes).
///
/// A pin survives the peer renewing its certificate with the same key, and fails when the key
/// changes. Shown and parsed as base64 (RFC 7469) or hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin([u8; 32]);

impl SpkiPin {
    /// The pin of a DER certificate's public key.
    pub fn of_certificate(cert: &CertificateDer<'_>) -> Result<Self, CryptoError> {
        let ee = webpki::EndEntityCert::try_from(cert)
            .map_err(|e| CryptoError::Certificate(format!("cannot parse the certificate: {e}")))?;
        Ok(Self(crate::digest::sha256(
            ee.subject_public_key_info().as_ref(),
        )))
    }

    /// The pin of a DER SubjectPublicKeyInfo (a public key as `openssl pkey -pubout` writes it).
    pub fn of_spki(spki_der: &[u8]) -> Self {
        Self(crate::digest::sha256(spki_der))
    }

    /// Parses a pin written as base64 of the 32 hash bytes (optionally after `sha256//`, as curl
    /// writes it) or as 64 hex digits (colons allowed, as openssl prints digests).
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let text = text.strip_prefix("sha256//").unwrap_or(text);
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        let bytes = if hex.len() == 64 {
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(hex.as_bytes())
                .ok()
        } else {
            data_encoding::BASE64.decode(text.as_bytes()).ok()
        };
        bytes
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .map(Self)
            .ok_or_else(|| {
                CryptoError::Certificate(
                    "a public key pin is the SHA-256 of the key: 32 bytes in base64 or 64 hex digits"
                        .into(),
                )
            })
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&data_encoding::BASE64.encode(&self.0))
    }
}

impl std::fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpkiPin({self})")
    }
}

/// The error inside `rustls::CertificateError::Other` when a peer's certificate chains to a
/// trusted root but its public key is not the pinned one. Callers find it with
/// [`is_pin_mismatch`] to tell the administrator exactly that.
#[derive(Debug, thiserror::Error)]
#[error(
    "the certificate's public key does not match the configured pin (expected {expected}, presented {presented})"
)]
pub struct PinMismatch {
    /// The configured pin.
    pub expected: SpkiPin,
    /// The pin of the key the peer presented.
    pub presented: SpkiPin,
}

/// Whether a rustls error is a [`PinMismatch`].
pub fn is_pin_mismatch(error: &rustls::Error) -> Option<&PinMismatch> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<PinMismatch>()
        }
        _ => None,
    }
}

/// The device's certificate chain and key, sent when a server asks for a client certificate.
pub struct ClientIdentity {
    /// The certificate chain, device certificate first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The private key (PKCS#8 for the device's own ECDSA P-256 key).
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        Self {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.cert_chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// WebPKI verification against the configured roots, then the pin on the end-entity key.
#[derive(Debug)]
struct PinnedServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pin: SpkiPin,
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain, validity and name first: a pin never replaces them.
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let presented = SpkiPin::of_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if presented != self.pin {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected: self.pin,
                    presented,
                })),
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client configuration for an outbound connection to a peer an administrator configured (the
/// log forwarder; later the update client).
///
/// The peer's certificate must chain to one of `roots` and be valid for the name given at
/// connect time, as with [`client_config`]. If `pin` is set, the end-entity certificate's public
/// key must also match it ([`PinMismatch`] otherwise). If `identity` is set, it is sent when the
/// server asks for a client certificate; without one the client answers such a request with no
/// certificate, and the server decides. Session resumption is off, so every connection verifies
/// the peer's certificate (and pin) again.
pub fn peer_client_config(
    roots: RootCertStore,
    pin: Option<SpkiPin>,
    identity: Option<ClientIdentity>,
) -> Result<ClientConfig, CryptoError> {
    let provider = Arc::new(provider(TlsOptions::default()));
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(VERSIONS)?;
    let builder = match pin {
        None => builder.with_root_certificates(roots),
        Some(pin) => {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| CryptoError::Certificate(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier { inner, pin }))
        }
    };
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder.with_client_auth_cert(id.cert_chain, id.key)?,
    };
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Names of the cipher suites a configuration offers, for status pages and evidence.
pub fn offered_suites(options: TlsOptions) -> Vec<String> {
    cipher_suites(options)
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // unwraps are assertions here

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
    };
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConnection, ServerConnection};
    use rustls_pki_types::PrivatePkcs8KeyDer;

    use super::*;

    struct Issued {
        der: CertificateDer<'static>,
        key: KeyPair,
    }

    impl Issued {
        fn key_der(&self) -> PrivateKeyDer<'static> {
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
        }
    }

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        CertifiedIssuer::self_signed(params, key).unwrap()
    }

    fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, name: &str) -> Issued {
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        Issued {
            der: cert.der().clone(),
            key,
        }
    }

    fn roots(ca: &CertifiedIssuer<'static, KeyPair>) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        roots
    }

    /// Runs a handshake in memory (this crate opens no sockets) and returns the first error, or
    /// the certificates the server saw from the client.
    fn handshake(
        client: ClientConfig,
        server: ServerConfig,
        name: &str,
    ) -> Result<Option<Vec<CertificateDer<'static>>>, rustls::Error> {
        let name = ServerName::try_from(name.to_string()).unwrap();
        let mut c = ClientConnection::new(Arc::new(client), name)?;
        let mut s = ServerConnection::new(Arc::new(server))?;
        for _ in 0..20 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                s.read_tls(&mut buf.as_slice()).unwrap();
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                c.read_tls(&mut buf.as_slice()).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
                return Ok(s.peer_certificates().map(|certs| certs.to_vec()));
            }
        }
        panic!("handshake did not finish");
    }

    fn server(
        cert: &Issued,
        client_ca: Option<&CertifiedIssuer<'static, KeyPair>>,
    ) -> ServerConfig {
        let Some(client_ca) = client_ca else {
            return server_config(
                vec![cert.der.clone()],
                cert.key_der(),
                TlsOptions::default(),
            )
            .unwrap();
        };
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(client_ca)),
            Arc::new(provider(TlsOptions::default())),
        )
        .build()
        .unwrap();
        ServerConfig::builder_with_provider(Arc::new(provider(TlsOptions::default())))
            .with_protocol_versions(VERSIONS)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.der.clone()], cert.key_der())
            .unwrap()
    }

    fn ca_other() -> CertifiedIssuer<'static, KeyPair> {
        ca("another CA")
    }

    #[test]
    fn a_pin_is_the_sha256_of_the_subject_public_key_info() {
        let ca = ca("pin CA");
        let cert = leaf(&ca, "collector.test");
        let pin = SpkiPin::of_certificate(&cert.der).unwrap();
        // rcgen writes the key's SubjectPublicKeyInfo on its own: an independent computation.
        assert_eq!(
            pin,
            SpkiPin::of_spki(&rcgen::PublicKeyData::subject_public_key_info(&cert.key))
        );
        assert_eq!(SpkiPin::parse(&pin.to_string()).unwrap(), pin);
        assert_eq!(
            SpkiPin::parse(&format!("sha256//{pin}")).unwrap(),
            pin,
            "curl's form"
        );
        let hex = data_encoding::HEXUPPER.encode(pin.as_bytes());
        let colons: Vec<&str> = (0..32).map(|i| &hex[2 * i..2 * i + 2]).collect();
        assert_eq!(
            SpkiPin::parse(&colons.join(":")).unwrap(),
            pin,
            "openssl's form"
        );
        assert!(SpkiPin::parse("abc").is_err());
        assert!(SpkiPin::parse(&data_encoding::BASE64.encode(&[0u8; 31])).is_err());
    }

    #[test]
    fn the_peer_must_chain_to_the_configured_roots_and_match_the_name() {
        let ca = ca("collector CA");
        let other = ca_other();
        let cert = leaf(&ca, "collector.test");
        let ok = peer_client_config(roots(&ca), None, None).unwrap();
        handshake(ok.clone(), server(&cert, None), "collector.test").unwrap();

        let err = handshake(
            peer_client_config(roots(&other), None, None).unwrap(),
            server(&cert, None),
            "collector.test",
        )
        .unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );

        let err = handshake(ok, server(&cert, None), "other.test").unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_pin_is_checked_after_the_chain() {
        let ca = ca("collector CA");
        let cert = leaf(&ca, "collector.test");
        let right = SpkiPin::of_certificate(&cert.der).unwrap();
        handshake(
            peer_client_config(roots(&ca), Some(right), None).unwrap(),
            server(&cert, None),
            "collector.test",
        )
        .unwrap();

        // Same CA, same name, another key: only the pin refuses it.
        let twin = leaf(&ca, "collector.test");
        let err = handshake(
            peer_client_config(roots(&ca), Some(right), None).unwrap(),
            server(&twin, None),
            "collector.test",
        )
        .unwrap_err();
        let mismatch = is_pin_mismatch(&err).expect("a pin mismatch");
        assert_eq!(mismatch.expected, right);
        assert_eq!(
            mismatch.presented,
            SpkiPin::of_certificate(&twin.der).unwrap()
        );

        // A pin never replaces the chain: the right key from an untrusted issuer is refused.
        let err = handshake(
            peer_client_config(roots(&ca_other()), Some(right), None).unwrap(),
            server(&cert, None),
            "collector.test",
        )
        .unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn the_client_identity_is_sent_when_the_server_asks() {
        let ca = ca("collector CA");
        let device_ca = ca_other();
        let cert = leaf(&ca, "collector.test");
        let device = leaf(&device_ca, "device.test");
        let identity = ClientIdentity {
            cert_chain: vec![device.der.clone()],
            key: device.key_der(),
        };
        let seen = handshake(
            peer_client_config(roots(&ca), None, Some(identity.clone())).unwrap(),
            server(&cert, Some(&device_ca)),
            "collector.test",
        )
        .unwrap();
        assert_eq!(seen, Some(vec![device.der.clone()]));

        // Without one, a server that requires it refuses the session.
        let err = handshake(
            peer_client_config(roots(&ca), None, None).unwrap(),
            server(&cert, Some(&device_ca)),
            "collector.test",
        )
        .unwrap_err();
        assert_eq!(err, rustls::Error::NoCertificatesPresented);

        // And a server that does not ask gets none.
        let seen = handshake(
            peer_client_config(roots(&ca), None, Some(identity)).unwrap(),
            server(&cert, None),
            "collector.test",
        )
        .unwrap();
        assert_eq!(seen, None);
    }
}
