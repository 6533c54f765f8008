//! Segment files: `seg-<first seq, 20 digits>.log`, a sealed header and then frames, append-only.
//!
//! ```text
//! [13] magic "MAMORI-AUDIT\0"     [2] format version (1)       [16] log id
//! u64  first seq                   [32] anchor: chain hash of the record before it (zeros at genesis)
//! u32  epoch at creation           i64 created UTC ms           u64 created CLOCK_BOOTTIME ms
//! [32] header hash: SHA-256 of the above (damage is found without keys)
//! [32] header tag: HMAC-SHA-256(K_epoch, header hash) (forgery is found with the verification key)
//! ```

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use mamori_crypto::digest::sha256;
use mamori_crypto::random;

use super::Seq;
use super::chain::{ChainHash, HASH_LEN};
use super::error::LogError;
use super::seal::{EpochKey, TAG_LEN};

const MAGIC: &[u8; 13] = b"MAMORI-AUDIT\0";
const VERSION: u16 = 1;
const HASHED_LEN: usize = 13 + 2 + 16 + 8 + HASH_LEN + 4 + 8 + 8;
/// Bytes of a segment header.
pub(crate) const HEADER_LEN: usize = HASHED_LEN + HASH_LEN + TAG_LEN;

/// Identifies one log, so segments, keyring and state of different logs are never mixed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct LogId(pub(crate) [u8; 16]);

impl LogId {
    pub(crate) fn generate() -> Result<Self, LogError> {
        Ok(Self(random::bytes::<16>()?))
    }
}

/// The fields of a segment header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SegmentHeader {
    pub(crate) log_id: LogId,
    pub(crate) first_seq: Seq,
    pub(crate) anchor: ChainHash,
    pub(crate) epoch: u32,
    pub(crate) created_utc_ms: i64,
    pub(crate) created_mono_ms: u64,
}

/// A parsed header with its stored hash and tag.
#[derive(Debug)]
pub(crate) struct ParsedHeader {
    pub(crate) header: SegmentHeader,
    pub(crate) hash: ChainHash,
    pub(crate) tag: [u8; TAG_LEN],
}

/// Why bytes are not a valid header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HeaderError {
    /// The header's hash does not match its fields: a byte was changed.
    HashMismatch,
    /// Not a mamori audit segment.
    Magic,
    /// The file is shorter than a header.
    Short,
    /// A format version this build does not read.
    Version,
}

impl HeaderError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::HashMismatch => "header bytes changed (hash mismatch)",
            Self::Magic => "not a mamori audit segment (magic)",
            Self::Short => "file shorter than a segment header",
            Self::Version => "unknown segment format version",
        }
    }
}

impl SegmentHeader {
    fn hashed_bytes(&self) -> [u8; HASHED_LEN] {
        let mut b = [0u8; HASHED_LEN];
        b[..13].copy_from_slice(MAGIC);
        b[13..15].copy_from_slice(&VERSION.to_le_bytes());
        b[15..31].copy_from_slice(&self.log_id.0);
        b[31..39].copy_from_slice(&self.first_seq.to_le_bytes());
        b[39..71].copy_from_slice(&self.anchor.0);
        b[71..75].copy_from_slice(&self.epoch.to_le_bytes());
        b[75..83].copy_from_slice(&self.created_utc_ms.to_le_bytes());
        b[83..91].copy_from_slice(&self.created_mono_ms.to_le_bytes());
        b
    }

    /// The header bytes, sealed with the epoch key of `self.epoch`.
    pub(crate) fn encode(&self, key: &EpochKey) -> [u8; HEADER_LEN] {
        debug_assert_eq!(self.epoch, key.epoch());
        let hashed = self.hashed_bytes();
        let hash = ChainHash(sha256(&hashed));
        let mut b = [0u8; HEADER_LEN];
        b[..HASHED_LEN].copy_from_slice(&hashed);
        b[HASHED_LEN..HASHED_LEN + HASH_LEN].copy_from_slice(&hash.0);
        b[HASHED_LEN + HASH_LEN..].copy_from_slice(&key.tag(&hash));
        b
    }

    /// Parses and checks the hash (not the tag, which needs a key).
    pub(crate) fn parse(b: &[u8]) -> Result<ParsedHeader, HeaderError> {
        let b = b.get(..HEADER_LEN).ok_or(HeaderError::Short)?;
        if &b[..13] != MAGIC {
            return Err(HeaderError::Magic);
        }
        if b[13..15] != VERSION.to_le_bytes() {
            return Err(HeaderError::Version);
        }
        let stored = &b[HASHED_LEN..HASHED_LEN + HASH_LEN];
        let hash = sha256(&b[..HASHED_LEN]);
        if hash[..] != stored[..] {
            return Err(HeaderError::HashMismatch);
        }
        let arr = |at: usize| -> [u8; 8] {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            a
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[15..31]);
        let mut anchor = [0u8; HASH_LEN];
        anchor.copy_from_slice(&b[39..71]);
        let mut epoch = [0u8; 4];
        epoch.copy_from_slice(&b[71..75]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&b[HASHED_LEN + HASH_LEN..]);
        Ok(ParsedHeader {
            header: SegmentHeader {
                log_id: LogId(id),
                first_seq: u64::from_le_bytes(arr(31)),
                anchor: ChainHash(anchor),
                epoch: u32::from_le_bytes(epoch),
                created_utc_ms: i64::from_le_bytes(arr(75)),
                created_mono_ms: u64::from_le_bytes(arr(83)),
            },
            hash: ChainHash(hash),
            tag,
        })
    }
}

/// The file name of the segment starting at `first_seq`.
pub(crate) fn file_name(first_seq: Seq) -> String {
    format!("seg-{first_seq:020}.log")
}

/// The first seq named by a segment file name, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<Seq> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files of `dir`, oldest first.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<(Seq, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_file_name) {
            out.push((seq, entry.path()));
        }
    }
    out.sort_by_key(|(seq, _)| *seq);
    Ok(out)
}

/// Creates a segment file holding only `header`, durably, and opens it for appending.
pub(crate) fn create(path: &Path, header: &[u8]) -> io::Result<File> {
    if !mamori_durable::create_new(path, header, 0o600)? {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "segment file already exists",
        ));
    }
    open_append(path)
}

/// Opens an existing segment for appending (O_APPEND: every write lands at the end, also after
/// a failed write was cut back).
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).read(true).open(path)
}

/// Files that belong to the segment starting at `first_seq` besides the segment itself (torn
/// tails cut off by recovery), removed with it.
pub(crate) fn companions(dir: &Path, first_seq: Seq) -> Vec<PathBuf> {
    let prefix = format!("{}.torn-", file_name(first_seq));
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            log_id: LogId([5; 16]),
            first_seq: 77,
            anchor: ChainHash([6; 32]),
            epoch: 0,
            created_utc_ms: 1_700_000_000_000,
            created_mono_ms: 12,
        }
    }

    #[test]
    fn a_header_round_trips_with_a_valid_tag() {
        let key = EpochKey::generate().unwrap();
        let bytes = header().encode(&key);
        let p = SegmentHeader::parse(&bytes).unwrap();
        assert_eq!(p.header, header());
        assert!(key.check(&p.hash, &p.tag));
    }

    #[test]
    fn any_changed_header_byte_before_the_tag_is_found_without_a_key() {
        let bytes = header().encode(&EpochKey::generate().unwrap());
        for i in 0..HASHED_LEN + HASH_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert!(SegmentHeader::parse(&bad).is_err(), "byte {i}");
        }
        assert_eq!(
            SegmentHeader::parse(&bytes[..10]).unwrap_err(),
            HeaderError::Short
        );
    }

    #[test]
    fn segment_names_sort_by_first_seq() {
        assert_eq!(file_name(12), "seg-00000000000000000012.log");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("seg-12.log"), None);
        assert_eq!(parse_file_name("seg-00000000000000000012.log.torn-5"), None);
    }
}
