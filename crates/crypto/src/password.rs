//! Password hashing: PBKDF2-HMAC-SHA-256 with the parameters stored in each hash.
//!
//! Format (PHC string): `$pbkdf2-sha256$i=<iterations>,l=<len>$<salt b64>$<hash b64>`, base64
//! without padding. Storing the parameters per hash lets the cost be raised later: hashes below
//! the current cost report [`needs_rehash`] and are replaced at the next successful login.

use std::num::NonZeroU32;

use aws_lc_rs::pbkdf2;
use data_encoding::BASE64_NOPAD;
use zeroize::Zeroizing;

use crate::policy::{PBKDF2_ITERATIONS, PBKDF2_MIN_ITERATIONS, PBKDF2_OUTPUT_LEN, PBKDF2_SALT_LEN};
use crate::{CryptoError, random};

const SCHEME: &str = "pbkdf2-sha256";
/// Upper bound on the iteration count accepted from a stored hash, so a corrupted or hostile
/// record cannot make one verification run for minutes.
const MAX_ITERATIONS: u32 = 10_000_000;

/// A parsed password hash.
struct Parsed {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// Hashes `password` with the current policy parameters and a fresh random salt.
pub fn hash(password: &str) -> Result<String, CryptoError> {
    hash_with(password, PBKDF2_ITERATIONS)
}

fn hash_with(password: &str, iterations: u32) -> Result<String, CryptoError> {
    let salt = random::bytes::<PBKDF2_SALT_LEN>()?;
    let iterations =
        NonZeroU32::new(iterations).ok_or(CryptoError::PasswordHash("zero iterations"))?;
    let mut out = Zeroizing::new([0u8; PBKDF2_OUTPUT_LEN]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        out.as_mut(),
    );
    Ok(format!(
        "${SCHEME}$i={iterations},l={PBKDF2_OUTPUT_LEN}${}${}",
        BASE64_NOPAD.encode(&salt),
        BASE64_NOPAD.encode(out.as_ref())
    ))
}

fn parse(phc: &str) -> Result<Parsed, CryptoError> {
    let mut parts = phc.split('$');
    let (Some(""), Some(scheme), Some(params), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(CryptoError::PasswordHash("not a PHC string"));
    };
    if scheme != SCHEME {
        return Err(CryptoError::PasswordHash("unknown scheme"));
    }
    let mut iterations = None;
    let mut len = None;
    for kv in params.split(',') {
        match kv.split_once('=') {
            Some(("i", v)) => iterations = v.parse::<u32>().ok(),
            Some(("l", v)) => len = v.parse::<usize>().ok(),
            _ => return Err(CryptoError::PasswordHash("unknown parameter")),
        }
    }
    let iterations = iterations
        .filter(|i| (PBKDF2_MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
        .and_then(NonZeroU32::new)
        .ok_or(CryptoError::PasswordHash("iteration count outside policy"))?;
    let salt = BASE64_NOPAD
        .decode(salt.as_bytes())
        .map_err(|_| CryptoError::PasswordHash("bad salt encoding"))?;
    let hash = BASE64_NOPAD
        .decode(hash.as_bytes())
        .map_err(|_| CryptoError::PasswordHash("bad hash encoding"))?;
    if salt.len() < PBKDF2_SALT_LEN || hash.len() != PBKDF2_OUTPUT_LEN || len != Some(hash.len()) {
        return Err(CryptoError::PasswordHash(
            "salt or output length outside policy",
        ));
    }
    Ok(Parsed {
        iterations,
        salt,
        hash,
    })
}

/// Checks `password` against a stored hash in constant time.
///
/// Returns `Ok(false)` for a wrong password and an error only for a malformed hash.
pub fn verify(password: &str, phc: &str) -> Result<bool, CryptoError> {
    let p = parse(phc)?;
    Ok(pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        p.iterations,
        &p.salt,
        password.as_bytes(),
        &p.hash,
    )
    .is_ok())
}

/// Spends the same time as [`verify`] against a real hash, for a user that does not exist, so
/// the answer's timing does not tell whether an account exists. Always returns `false`.
pub fn verify_nonexistent(password: &str) -> bool {
    let salt = [0x5au8; PBKDF2_SALT_LEN];
    let mut out = [0u8; PBKDF2_OUTPUT_LEN];
    // PBKDF2_ITERATIONS is a non-zero constant.
    let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    // Keep the derivation from being optimised away.
    std::hint::black_box(out);
    false
}

/// True if a stored hash uses a lower cost than the current policy and should be replaced.
pub fn needs_rehash(phc: &str) -> bool {
    parse(phc).map_or(true, |p| p.iterations.get() < PBKDF2_ITERATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_rejects_others() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$pbkdf2-sha256$i=600000,l=32$"));
        assert!(verify("correct horse battery", &h).unwrap());
        assert!(!verify("correct horse batterY", &h).unwrap());
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_salt() {
        assert_ne!(hash("same").unwrap(), hash("same").unwrap());
    }

    #[test]
    fn hashes_below_the_policy_floor_are_refused() {
        let weak = hash_with("pw", 1000).unwrap();
        assert!(matches!(
            verify("pw", &weak),
            Err(CryptoError::PasswordHash(_))
        ));
        assert!(needs_rehash(&weak));
    }

    #[test]
    fn malformed_hashes_are_errors_not_panics() {
        for bad in [
            "",
            "$",
            "$pbkdf2-sha256$i=600000,l=32$$",
            "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA",
            "$pbkdf2-sha256$i=99999999999,l=32$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
            "$pbkdf2-sha256$i=600000,l=32$!!$??",
        ] {
            assert!(verify("x", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn nonexistent_user_check_is_always_false() {
        assert!(!verify_nonexistent("anything"));
    }
}
