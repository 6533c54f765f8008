//! The crypto policy of mamori.
//!
//! Every algorithm the product uses is chosen here and nowhere else (spec/CRYPTO-POLICY.md): the
//! rest of the code asks for "seal this value", "hash this password" or "a TLS server config",
//! never for an algorithm by name. [`policy::ALGORITHMS`] is the table of what is used, printed by
//! the evidence generator and by `docs/crypto-policy.md`, so the shipped list and the documented
//! list cannot drift.
//!
//! All primitives come from one backend, aws-lc-rs, which also backs rustls.
//!
//! What this crate does not do: it keeps no keys on disk (see `mamori-keys`) and it opens no
//! sockets.

pub mod aead;
pub mod cert;
pub mod digest;
pub mod otp;
pub mod password;
pub mod policy;
pub mod random;
pub mod tls;

/// A failure of a cryptographic operation.
///
/// Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authenticated decryption failed: wrong key, wrong context, or the data was modified.
    #[error("sealed data failed authentication (wrong key, wrong context, or modified data)")]
    AuthenticationFailed,
    /// Sealed data is too short or carries an unknown format version.
    #[error("sealed data is malformed")]
    Malformed,
    /// A key of the wrong length was given.
    #[error("key has the wrong length")]
    KeyLength,
    /// The key has sealed as many messages as the policy allows for random nonces.
    #[error("key reached its message limit; it must be rotated")]
    KeyExhausted,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A stored password hash could not be parsed or uses parameters below the policy floor.
    #[error("password hash is malformed or below policy: {0}")]
    PasswordHash(&'static str),
    /// Certificate or key generation or parsing failed.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// A TLS configuration could not be built.
    #[error("TLS configuration error: {0}")]
    Tls(#[from] rustls::Error),
}
