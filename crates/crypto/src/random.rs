//! Randomness from the operating system's CSPRNG, and nothing else.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::CryptoError;

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// Returns `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// A random string of `len` characters drawn uniformly from `alphabet`.
///
/// Uses rejection sampling, so no character is more likely than another.
pub fn string(alphabet: &[u8], len: usize) -> Result<String, CryptoError> {
    assert!(
        !alphabet.is_empty() && alphabet.len() <= 256,
        "alphabet must have 1..=256 symbols"
    );
    // Largest multiple of the alphabet size that fits in a byte; bytes above it are rejected.
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut pool = [0u8; 64];
    while out.len() < len {
        fill(&mut pool)?;
        for &b in pool.iter() {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_uses_only_the_alphabet_and_the_length() {
        let s = string(b"abc", 200).unwrap();
        assert_eq!(s.len(), 200);
        assert!(s.bytes().all(|c| b"abc".contains(&c)));
        // 200 draws from 3 symbols: every symbol appears.
        assert!(s.contains('a') && s.contains('b') && s.contains('c'));
    }

    #[test]
    fn two_draws_differ() {
        assert_ne!(bytes::<32>().unwrap(), bytes::<32>().unwrap());
    }
}
