//! The hash chain: h_i = SHA-256(h_{i-1} || frame_i without its hash and tag).
//!
//! It runs over the ciphertext, so anyone can check it without decryption or sealing keys, and
//! it runs across segments: each segment header stores the hash of the record before it (its
//! anchor). On its own the chain detects accidental damage and any change made by someone who
//! does not recompute it; the seal tags (seal.rs) make recomputing it useless for past epochs.

use mamori_crypto::digest::sha256;

/// Length of a chain hash.
pub(crate) const HASH_LEN: usize = 32;

/// One link of the chain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ChainHash(pub(crate) [u8; HASH_LEN]);

impl ChainHash {
    /// The anchor of a log's very first segment.
    pub(crate) const GENESIS: ChainHash = ChainHash([0; HASH_LEN]);

    /// The next link over `hashed` (a frame's bytes up to its hash). `scratch` is reused so the
    /// writer does not allocate per record.
    pub(crate) fn next(&self, hashed: &[u8], scratch: &mut Vec<u8>) -> ChainHash {
        scratch.clear();
        scratch.extend_from_slice(&self.0);
        scratch.extend_from_slice(hashed);
        ChainHash(sha256(scratch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_link_depends_on_the_previous_link_and_the_bytes() {
        let mut s = Vec::new();
        let a = ChainHash::GENESIS.next(b"frame", &mut s);
        assert_ne!(a, ChainHash::GENESIS.next(b"framf", &mut s));
        assert_ne!(a.next(b"x", &mut s), ChainHash::GENESIS.next(b"x", &mut s));
        assert_eq!(a, ChainHash::GENESIS.next(b"frame", &mut s));
    }
}
