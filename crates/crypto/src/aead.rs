//! Authenticated encryption of stored values: AES-256-GCM with random 96-bit nonces.
//!
//! Sealed format: `version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`. The caller supplies
//! associated data that names the value's place (for the store: table, key and schema version),
//! so a sealed value moved to another place fails to open.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::policy::{AEAD_MESSAGE_LIMIT, AEAD_NONCE_LEN};
use crate::{CryptoError, random};

const FORMAT_V1: u8 = 1;
const TAG_LEN: usize = 16;
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// An AES-256-GCM key (a data key or a key-encryption key).
///
/// The raw bytes are zeroized on drop; `Debug` never shows them.
pub struct Key {
    raw: Zeroizing<[u8; KEY_LEN]>,
    key: LessSafeKey,
    sealed: AtomicU64,
}

impl Key {
    /// A new random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(raw.as_mut())?;
        Self::from_raw(raw)
    }

    /// A key from its raw bytes (for example after unwrapping).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let raw: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::KeyLength)?;
        Self::from_raw(Zeroizing::new(raw))
    }

    fn from_raw(raw: Zeroizing<[u8; KEY_LEN]>) -> Result<Self, CryptoError> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, raw.as_ref()).map_err(|_| CryptoError::KeyLength)?;
        Ok(Self {
            raw,
            key: LessSafeKey::new(unbound),
            sealed: AtomicU64::new(0),
        })
    }

    /// A key for one purpose, derived from this one with HMAC-SHA-256 (the HKDF-Expand step for a
    /// single block; only listed primitives). Keys for different `purpose` strings are
    /// independent, so the store, the audit log and the store's index never share a key.
    pub fn derive(&self, purpose: &str) -> Result<Self, CryptoError> {
        let mut info = Vec::with_capacity(purpose.len() + 24);
        info.extend_from_slice(b"mamori/subkey/v1\0");
        info.extend_from_slice(purpose.as_bytes());
        info.push(0x01);
        let okm = Zeroizing::new(crate::digest::hmac_sha256(self.raw.as_ref(), &info));
        Self::from_raw(Zeroizing::new(*okm))
    }

    /// The raw key bytes, for wrapping under another key or handing across the privilege
    /// boundary. Named loudly because it exposes secret material.
    pub fn dangerous_raw_bytes(&self) -> &[u8; KEY_LEN] {
        &self.raw
    }

    /// Encrypts and authenticates `plaintext`, binding it to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if self.sealed.fetch_add(1, Ordering::Relaxed) >= AEAD_MESSAGE_LIMIT {
            return Err(CryptoError::KeyExhausted);
        }
        let nonce_bytes = random::bytes::<AEAD_NONCE_LEN>()?;
        let mut out = Vec::with_capacity(1 + AEAD_NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| CryptoError::AuthenticationFailed)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Authenticates and decrypts a value made by [`Key::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < 1 + AEAD_NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, body) = sealed[1..].split_at(AEAD_NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Malformed)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), buf.as_mut())
            .map_err(|_| CryptoError::AuthenticationFailed)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("aead::Key(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_with_the_same_key_and_context() {
        let k = Key::generate().unwrap();
        let sealed = k.seal(b"users/alice", b"secret").unwrap();
        assert_eq!(&k.open(b"users/alice", &sealed).unwrap()[..], b"secret");
    }

    #[test]
    fn sealed_value_does_not_open_in_another_context() {
        let k = Key::generate().unwrap();
        let sealed = k.seal(b"users/alice", b"secret").unwrap();
        assert!(matches!(
            k.open(b"users/bob", &sealed),
            Err(CryptoError::AuthenticationFailed)
        ));
    }

    #[test]
    fn sealed_value_does_not_open_with_another_key() {
        let sealed = Key::generate().unwrap().seal(b"x", b"secret").unwrap();
        assert!(Key::generate().unwrap().open(b"x", &sealed).is_err());
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let k = Key::generate().unwrap();
        let sealed = k.seal(b"x", b"some secret value").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                k.open(b"x", &bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn ciphertext_does_not_contain_the_plaintext_and_nonces_differ() {
        let k = Key::generate().unwrap();
        let a = k.seal(b"x", b"plaintext-marker").unwrap();
        let b = k.seal(b"x", b"plaintext-marker").unwrap();
        assert_ne!(a, b);
        assert!(!a.windows(16).any(|w| w == b"plaintext-marker"));
    }

    #[test]
    fn truncated_input_is_malformed() {
        let k = Key::generate().unwrap();
        assert!(matches!(
            k.open(b"x", &[1, 2, 3]),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn derived_keys_are_independent_per_purpose() {
        let k = Key::generate().unwrap();
        let a = k.derive("store").unwrap();
        let b = k.derive("audit").unwrap();
        assert_ne!(a.dangerous_raw_bytes(), b.dangerous_raw_bytes());
        assert_ne!(a.dangerous_raw_bytes(), k.dangerous_raw_bytes());
        assert_eq!(
            a.dangerous_raw_bytes(),
            k.derive("store").unwrap().dangerous_raw_bytes()
        );
        let sealed = a.seal(b"x", b"v").unwrap();
        assert!(b.open(b"x", &sealed).is_err());
    }

    #[test]
    fn debug_output_is_redacted() {
        let k = Key::generate().unwrap();
        assert_eq!(format!("{k:?}"), "aead::Key(<redacted>)");
    }
}
