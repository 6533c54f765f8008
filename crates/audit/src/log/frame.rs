//! Frames: what a segment holds after its header, one after another.
//!
//! ```text
//! u32 frame_len (whole frame, this field included)        little endian throughout
//! u8  kind      1 record, 2 epoch closed, 3 segment end   ┐
//! u64 seq       (closed/end: the last record's seq)       │ clear: ordering, filtering and
//! u32 epoch     sealing epoch of the tag                  │ verifying need no key
//! i64 utc_ms    UTC milliseconds                          │
//! u64 mono_ms   CLOCK_BOOTTIME milliseconds               ┘
//! u32 data_len,     data      AES-256-GCM (event, outcome, details) under the segment data key
//! u32 personal_len, personal  AES-256-GCM (actor, source) under the segment personal key, or empty
//! [32] chain hash  h_i = SHA-256(h_{i-1} || every byte above)
//! [32] seal tag    HMAC-SHA-256(K_epoch, h_i)
//! ```
//!
//! Times stay in clear because purging (day granularity), time queries and clock-step forensics
//! must work without decrypting, and they reveal no more than the file's growth already does.
//! The event kind is encrypted: which security events happened is itself sensitive (S3.1-16).

use super::Seq;
use super::chain::{ChainHash, HASH_LEN};
use super::seal::{EpochKey, TAG_LEN};

/// Bytes of the clear header fields (kind to mono_ms), also bound into the AEAD associated data.
pub(crate) const CLEAR_LEN: usize = 1 + 8 + 4 + 8 + 8;
/// Bytes of a frame without ciphertext.
pub(crate) const FIXED_LEN: usize = 4 + CLEAR_LEN + 4 + 4 + HASH_LEN + TAG_LEN;
/// Largest frame accepted; larger events have their details cut by the writer (record.rs).
pub(crate) const MAX_FRAME_LEN: usize = 64 * 1024;

/// What a frame is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FrameKind {
    /// An audit record.
    Record = 1,
    /// The seal that ends an epoch: after it only later epochs may follow.
    EpochClose = 2,
    /// The last frame of a segment that was rolled; its absence in a non-last segment means the
    /// segment was cut short.
    SegmentEnd = 3,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Record),
            2 => Some(Self::EpochClose),
            3 => Some(Self::SegmentEnd),
            _ => None,
        }
    }
}

/// The clear fields of a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FrameHead {
    pub(crate) kind: FrameKind,
    pub(crate) seq: Seq,
    pub(crate) epoch: u32,
    pub(crate) utc_ms: i64,
    pub(crate) mono_ms: u64,
}

impl FrameHead {
    /// The clear fields as stored.
    pub(crate) fn clear_bytes(&self) -> [u8; CLEAR_LEN] {
        let mut b = [0u8; CLEAR_LEN];
        b[0] = self.kind as u8;
        b[1..9].copy_from_slice(&self.seq.to_le_bytes());
        b[9..13].copy_from_slice(&self.epoch.to_le_bytes());
        b[13..21].copy_from_slice(&self.utc_ms.to_le_bytes());
        b[21..29].copy_from_slice(&self.mono_ms.to_le_bytes());
        b
    }
}

/// A frame parsed in place.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) head: FrameHead,
    pub(crate) data: &'a [u8],
    pub(crate) personal: &'a [u8],
    /// The bytes the chain hash covers.
    pub(crate) hashed: &'a [u8],
    pub(crate) hash: ChainHash,
    pub(crate) tag: &'a [u8],
    /// Total length in bytes.
    pub(crate) len: usize,
}

/// Why bytes are not a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ParseError {
    /// The buffer ends inside the frame.
    Incomplete,
    /// The bytes cannot be a frame.
    Malformed(&'static str),
}

/// Parses the frame at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Result<Frame<'_>, ParseError> {
    let len = usize::try_from(u32_at(buf, 0).ok_or(ParseError::Incomplete)?)
        .map_err(|_| ParseError::Malformed("frame length does not fit"))?;
    if len < FIXED_LEN {
        return Err(ParseError::Malformed("frame length below the minimum"));
    }
    if len > MAX_FRAME_LEN {
        return Err(ParseError::Malformed("frame length above the maximum"));
    }
    let f = buf.get(..len).ok_or(ParseError::Incomplete)?;
    let kind = FrameKind::from_byte(f[4]).ok_or(ParseError::Malformed("unknown frame kind"))?;
    let head = FrameHead {
        kind,
        seq: u64_at(f, 5).ok_or(ParseError::Incomplete)?,
        epoch: u32_at(f, 13).ok_or(ParseError::Incomplete)?,
        utc_ms: i64::from_le_bytes(array_at(f, 17).ok_or(ParseError::Incomplete)?),
        mono_ms: u64_at(f, 25).ok_or(ParseError::Incomplete)?,
    };
    let bad_parts = ParseError::Malformed("frame part lengths do not add up");
    let hashed_end = len - HASH_LEN - TAG_LEN;
    let data_len = part_len(f, 4 + CLEAR_LEN, hashed_end).ok_or(bad_parts)?;
    let data_start = 4 + CLEAR_LEN + 4;
    let personal_at = data_start + data_len;
    let personal_len = part_len(f, personal_at, hashed_end).ok_or(bad_parts)?;
    if personal_at + 4 + personal_len != hashed_end {
        return Err(bad_parts);
    }
    match kind {
        FrameKind::Record if data_len == 0 => {
            return Err(ParseError::Malformed("record frame without data"));
        }
        FrameKind::EpochClose | FrameKind::SegmentEnd if data_len + personal_len != 0 => {
            return Err(ParseError::Malformed("seal frame with content"));
        }
        _ => {}
    }
    let hash: [u8; HASH_LEN] = array_at(f, hashed_end).ok_or(bad_parts)?;
    Ok(Frame {
        head,
        data: &f[data_start..personal_at],
        personal: &f[personal_at + 4..hashed_end],
        hashed: &f[..hashed_end],
        hash: ChainHash(hash),
        tag: &f[hashed_end + HASH_LEN..],
        len,
    })
}

/// The encoded length of a frame with these ciphertext lengths.
pub(crate) fn encoded_len(data_len: usize, personal_len: usize) -> usize {
    FIXED_LEN + data_len + personal_len
}

/// Appends a frame to `out`, chaining it to `prev` and sealing it with `key` (whose epoch must
/// be `head.epoch`). Returns the frame's chain hash. The caller keeps the frame under
/// [`MAX_FRAME_LEN`].
pub(crate) fn encode(
    out: &mut Vec<u8>,
    head: &FrameHead,
    data: &[u8],
    personal: &[u8],
    prev: &ChainHash,
    key: &EpochKey,
    scratch: &mut Vec<u8>,
) -> ChainHash {
    debug_assert_eq!(head.epoch, key.epoch());
    let len = encoded_len(data.len(), personal.len());
    debug_assert!(len <= MAX_FRAME_LEN);
    // Lengths are below MAX_FRAME_LEN (64 KiB), so they fit in u32.
    let as_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let start = out.len();
    out.reserve(len);
    out.extend_from_slice(&as_u32(len).to_le_bytes());
    out.extend_from_slice(&head.clear_bytes());
    out.extend_from_slice(&as_u32(data.len()).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&as_u32(personal.len()).to_le_bytes());
    out.extend_from_slice(personal);
    let h = prev.next(&out[start..], scratch);
    out.extend_from_slice(&h.0);
    out.extend_from_slice(&key.tag(&h));
    h
}

fn part_len(f: &[u8], at: usize, hashed_end: usize) -> Option<usize> {
    let n = usize::try_from(u32_at(f, at)?).ok()?;
    (at + 4 + n <= hashed_end).then_some(n)
}

fn array_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    array_at(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    array_at(b, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: FrameKind) -> FrameHead {
        FrameHead {
            kind,
            seq: 42,
            epoch: 0,
            utc_ms: -5,
            mono_ms: 9,
        }
    }

    #[test]
    fn a_frame_round_trips_and_chains() {
        let key = EpochKey::generate().unwrap();
        let mut out = Vec::new();
        let mut s = Vec::new();
        let h = encode(
            &mut out,
            &head(FrameKind::Record),
            b"data",
            b"pers",
            &ChainHash::GENESIS,
            &key,
            &mut s,
        );
        assert_eq!(out.len(), encoded_len(4, 4));
        let f = parse(&out).unwrap();
        assert_eq!(f.head, head(FrameKind::Record));
        assert_eq!(
            (f.data, f.personal, f.len),
            (&b"data"[..], &b"pers"[..], out.len())
        );
        assert_eq!(f.hash, h);
        assert_eq!(ChainHash::GENESIS.next(f.hashed, &mut s), h);
        assert!(key.check(&h, f.tag));
    }

    #[test]
    fn a_cut_frame_is_incomplete_and_garbage_is_malformed() {
        let key = EpochKey::generate().unwrap();
        let mut out = Vec::new();
        encode(
            &mut out,
            &head(FrameKind::EpochClose),
            b"",
            b"",
            &ChainHash::GENESIS,
            &key,
            &mut Vec::new(),
        );
        for cut in 0..out.len() {
            assert_eq!(
                parse(&out[..cut]).unwrap_err(),
                ParseError::Incomplete,
                "cut at {cut}"
            );
        }
        assert!(matches!(parse(&[0xff; 200]), Err(ParseError::Malformed(_))));
        let mut bad_kind = out.clone();
        bad_kind[4] = 9;
        assert!(matches!(parse(&bad_kind), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn seal_frames_carry_no_content_and_records_carry_data() {
        let key = EpochKey::generate().unwrap();
        let mut out = Vec::new();
        encode(
            &mut out,
            &head(FrameKind::SegmentEnd),
            b"x",
            b"",
            &ChainHash::GENESIS,
            &key,
            &mut Vec::new(),
        );
        assert!(matches!(parse(&out), Err(ParseError::Malformed(_))));
        out.clear();
        encode(
            &mut out,
            &head(FrameKind::Record),
            b"",
            b"",
            &ChainHash::GENESIS,
            &key,
            &mut Vec::new(),
        );
        assert!(matches!(parse(&out), Err(ParseError::Malformed(_))));
    }
}
