//! TLS configurations restricted to the crypto policy.
//!
//! rustls already has no CBC suites, no RSA key transport, no renegotiation and nothing older than
//! TLS 1.2. On top of that the provider here offers only AES-GCM suites and the NIST P-256/P-384
//! groups; ChaCha20-Poly1305 is added only when an administrator enables it.
//!
//! Extended master secret is offered by rustls but not *required* for TLS 1.2: scanners send
//! TLS 1.2 probes without it and would report "TLS 1.2 not offered" (research/crates.md §1).

use std::sync::Arc;

use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
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
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        sig::ECDSA_P256_SHA256,
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
            &[sig::ECDSA_P384_SHA384],
        ),
        (
            rustls::SignatureScheme::ECDSA_NISTP256_SHA256,
            &[sig::ECDSA_P256_SHA256],
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

/// Names of the cipher suites a configuration offers, for status pages and evidence.
pub fn offered_suites(options: TlsOptions) -> Vec<String> {
    cipher_suites(options)
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect()
}
