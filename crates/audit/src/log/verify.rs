//! Verifying a log: headers, frame structure, seq continuity, the chain across segments, the
//! seals of every epoch (with the verification key), decryptability (with the master key).
//! The report gives counts when all is well, or the *first* break: file, offset, seq, reason.
//!
//! What it can prove, and what not:
//! - without keys: accidental damage and any edit that did not recompute the chain;
//! - with the verification key: any change, insertion, deletion or reordering before the start
//!   of the current epoch, even by someone holding the current sealing key and recomputing the
//!   chain, because a past epoch's tags need that epoch's key, which no longer exists;
//! - not: cutting off the newest records (the tail looks like a log that ended earlier; compare
//!   with the forwarded copy), and not deleting whole oldest segments (indistinguishable from
//!   the capacity limit: reported as a start "after overwrite", not as a break).
//! - A torn frame at the very end of the last segment is reported (`torn_tail`), not a break: a
//!   crash leaves one (`open` cuts it), and a live log may be mid-write.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mamori_crypto::aead::Key;

use super::Seq;
use super::chain::ChainHash;
use super::clock;
use super::frame::{self, CLEAR_LEN, Frame, FrameKind, ParseError};
use super::keyring::{Keyring, MasterKeys};
use super::record;
use super::seal::{EpochKey, VerificationKey};
use super::segment::{self, HEADER_LEN, LogId, SegmentHeader};

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: u64,
    /// Records checked.
    pub records: u64,
    /// The first record checked.
    pub first_seq: Option<Seq>,
    /// The last record checked.
    pub last_seq: Option<Seq>,
    /// UTC time of the first record checked.
    pub first_time: Option<String>,
    /// UTC time of the last record checked.
    pub last_time: Option<String>,
    /// The sealing epoch of the first frame checked.
    pub first_epoch: Option<u32>,
    /// The sealing epoch of the last frame checked.
    pub last_epoch: Option<u32>,
    /// "Epoch closed" seals found.
    pub epochs_closed: u64,
    /// Where the log starts.
    pub start: Start,
    /// Whether the seal tags were checked (a verification key was given).
    pub seals_checked: bool,
    /// Whether every record was decrypted (the master key was given).
    pub decryption_checked: bool,
    /// Records whose personal data was purged (counted when decrypting).
    pub personal_purged: u64,
    /// An incomplete frame at the very end of the log (crash or write in progress).
    pub torn_tail: Option<TornTail>,
    /// The first break, if any.
    pub first_break: Option<Break>,
}

impl VerifyReport {
    /// No break found.
    pub fn is_ok(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Where a log starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Start {
    /// No segment.
    #[default]
    Empty,
    /// Its first record ever, anchored to the genesis hash.
    Genesis,
    /// Older segments were deleted (capacity limit): the chain is anchored at this record's
    /// predecessor, whose hash the first segment's header carries.
    AfterOverwrite {
        /// The first record still present.
        first_seq: Seq,
    },
}

/// An incomplete last frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The last segment.
    pub file: PathBuf,
    /// Where the incomplete frame starts.
    pub offset: u64,
    /// Bytes from there to the end.
    pub bytes: u64,
}

/// The first place where the log is not as written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Break {
    /// The segment file.
    pub file: PathBuf,
    /// Byte offset in it (0: the header).
    pub offset: u64,
    /// The record concerned (for a gap: the first record missing), when known.
    pub seq: Option<Seq>,
    /// What is wrong.
    pub reason: BreakReason,
}

/// What is wrong at a [`Break`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakReason {
    /// A segment's anchor is not the hash of the previous segment's last frame.
    AnchorMismatch,
    /// The first segment's anchor does not fit its first seq (genesis anchor only at seq 1).
    AnchorInvalid,
    /// A frame's seal does not verify with its epoch's key: forged, or re-sealed with a later
    /// epoch's key.
    BadSeal {
        /// The epoch the frame claims.
        epoch: u32,
    },
    /// Bytes of a frame were changed: its chain hash does not match.
    ContentModified,
    /// A frame follows the segment's end frame.
    DataAfterSegmentEnd,
    /// A record does not decrypt (or its keys are missing).
    DecryptionFailed {
        /// Which part.
        part: &'static str,
    },
    /// An epoch ended without its "epoch closed" seal (records cut from its end).
    EpochNotClosed {
        /// The epoch left open.
        epoch: u32,
    },
    /// A frame or header has an older epoch than the one before it.
    EpochWentBackwards {
        /// The epoch before.
        from: u32,
        /// The older epoch found.
        to: u32,
    },
    /// A frame after its epoch's closing seal claims that epoch.
    EpochReopened {
        /// The epoch.
        epoch: u32,
    },
    /// The bytes at this offset are not a frame.
    FrameMalformed {
        /// Why.
        detail: &'static str,
    },
    /// A segment header is damaged or was changed.
    HeaderDamaged {
        /// How.
        detail: &'static str,
    },
    /// A segment header's seal does not verify.
    HeaderSealInvalid {
        /// The epoch the header claims.
        epoch: u32,
    },
    /// Segments of different logs are mixed.
    LogIdMismatch,
    /// Records are missing: the seq jumps.
    RecordMissing {
        /// The seq that should come next.
        expected: Seq,
        /// The seq found.
        found: Seq,
    },
    /// Records are out of order (the expected one comes later, or an earlier one repeats).
    Reordered {
        /// The seq that should come next.
        expected: Seq,
        /// The seq found.
        found: Seq,
    },
    /// One or more whole segments between two present ones are missing.
    SegmentMissing {
        /// The first seq the missing part held.
        expected_first_seq: Seq,
        /// The first seq of the segment found instead.
        found_first_seq: Seq,
    },
    /// A segment starts before its predecessor ended.
    SegmentOverlap {
        /// The first seq expected.
        expected_first_seq: Seq,
        /// The first seq found.
        found_first_seq: Seq,
    },
    /// A segment that is not the last ends without its end frame (cut short), or mid-frame.
    SegmentTruncated,
    /// A file could not be read.
    Unreadable {
        /// The error.
        error: String,
    },
    /// The verification key belongs to another log.
    WrongVerificationKey,
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AnchorMismatch => f.write_str(
                "chain broken between segments (anchor does not match the previous segment)",
            ),
            Self::AnchorInvalid => {
                f.write_str("the first segment's anchor does not fit its first record")
            }
            Self::BadSeal { epoch } => write!(
                f,
                "bad seal: the tag does not verify with the key of epoch {epoch} (forged or re-sealed)"
            ),
            Self::ContentModified => f.write_str("bytes changed: the chain hash does not match"),
            Self::DataAfterSegmentEnd => f.write_str("data after the segment's end frame"),
            Self::DecryptionFailed { part } => write!(f, "does not decrypt: {part}"),
            Self::EpochNotClosed { epoch } => write!(
                f,
                "epoch {epoch} ended without its closing seal (records cut)"
            ),
            Self::EpochWentBackwards { from, to } => {
                write!(f, "epoch went backwards from {from} to {to}")
            }
            Self::EpochReopened { epoch } => write!(
                f,
                "a frame of epoch {epoch} after that epoch's closing seal"
            ),
            Self::FrameMalformed { detail } => write!(f, "not a frame: {detail}"),
            Self::HeaderDamaged { detail } => write!(f, "segment header: {detail}"),
            Self::HeaderSealInvalid { epoch } => write!(
                f,
                "segment header seal does not verify with the key of epoch {epoch}"
            ),
            Self::LogIdMismatch => f.write_str("segments of different logs are mixed"),
            Self::RecordMissing { expected, found } => {
                write!(f, "record missing: expected {expected}, found {found}")
            }
            Self::Reordered { expected, found } => {
                write!(f, "records reordered: expected {expected}, found {found}")
            }
            Self::SegmentMissing {
                expected_first_seq,
                found_first_seq,
            } => write!(
                f,
                "segment missing: records {expected_first_seq}..{} are gone",
                found_first_seq.saturating_sub(1)
            ),
            Self::SegmentOverlap {
                expected_first_seq,
                found_first_seq,
            } => write!(
                f,
                "segment overlaps its predecessor: starts at {found_first_seq}, expected {expected_first_seq}"
            ),
            Self::SegmentTruncated => {
                f.write_str("segment truncated (no end frame, or cut mid-frame)")
            }
            Self::Unreadable { error } => write!(f, "unreadable: {error}"),
            Self::WrongVerificationKey => {
                f.write_str("the verification key belongs to another log")
            }
        }
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.file.display(), self.offset)?;
        if let Some(seq) = self.seq {
            write!(f, " (record {seq})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first_break {
            Some(b) => write!(f, "BROKEN: {b}")?,
            None => write!(
                f,
                "OK: {} records in {} segments, seq {}..{}, epochs {}..{}",
                self.records,
                self.segments,
                self.first_seq.unwrap_or(0),
                self.last_seq.unwrap_or(0),
                self.first_epoch.unwrap_or(0),
                self.last_epoch.unwrap_or(0)
            )?,
        }
        match self.start {
            Start::AfterOverwrite { first_seq } => {
                write!(
                    f,
                    "; starts at record {first_seq} (older records overwritten)"
                )?;
            }
            Start::Genesis => write!(f, "; complete from the first record")?,
            Start::Empty => write!(f, "; empty")?,
        }
        if !self.seals_checked {
            write!(f, "; seals NOT checked (no verification key)")?;
        }
        if !self.decryption_checked {
            write!(f, "; decryption NOT checked (no master key)")?;
        }
        if let Some(t) = &self.torn_tail {
            write!(
                f,
                "; incomplete last frame at byte {} of {} ({} bytes)",
                t.offset,
                t.file.display(),
                t.bytes
            )?;
        }
        Ok(())
    }
}

/// Keys of a segment for the decryption check.
pub(crate) type SegmentKeys = (Arc<Key>, Option<Arc<Key>>);

/// One segment to check: its first seq (from its name), path, and how much of it to read
/// (`None`: all; a live log passes the fsynced length).
pub(crate) struct Input {
    pub(crate) name_seq: Seq,
    pub(crate) path: PathBuf,
    pub(crate) limit: Option<u64>,
}

/// Verifies the log in `dir`: structure and chain always; seals with `verification_key`;
/// decryption with `decryption` (the master key the log is opened with). Never modifies it.
pub fn verify(
    dir: &Path,
    verification_key: Option<&VerificationKey>,
    decryption: Option<&Key>,
) -> VerifyReport {
    let unreadable = |file: &Path, error: String, part: Option<&'static str>| VerifyReport {
        first_break: Some(Break {
            file: file.to_path_buf(),
            offset: 0,
            seq: None,
            reason: match part {
                Some(part) => BreakReason::DecryptionFailed { part },
                None => BreakReason::Unreadable { error },
            },
        }),
        ..VerifyReport::default()
    };
    let files = match segment::list(dir) {
        Ok(f) => f,
        Err(e) => return unreadable(dir, e.to_string(), None),
    };
    let keyring = match decryption {
        None => None,
        Some(master) => {
            let path = dir.join(super::keyring::KEYRING_FILE);
            match MasterKeys::derive(master).and_then(|k| Keyring::load(dir, &k.keyring)) {
                Ok(Some(ring)) => Some(ring),
                Ok(None) => return unreadable(&path, String::new(), Some("keyring missing")),
                Err(_) => {
                    return unreadable(
                        &path,
                        String::new(),
                        Some("keyring does not open with this key"),
                    );
                }
            }
        }
    };
    let lookup = keyring.as_ref().map(|ring| {
        move |first: Seq| -> Option<SegmentKeys> {
            ring.segments
                .get(&first)
                .map(|k| (Arc::clone(&k.data), k.personal.clone()))
        }
    });
    let inputs = files
        .into_iter()
        .map(|(name_seq, path)| Input {
            name_seq,
            path,
            limit: None,
        })
        .collect();
    verify_inputs(
        inputs,
        verification_key,
        lookup
            .as_ref()
            .map(|f| f as &dyn Fn(Seq) -> Option<SegmentKeys>),
    )
}

/// The verification proper, shared by [`verify`] and the live log's `verify`.
pub(crate) fn verify_inputs(
    inputs: Vec<Input>,
    vk: Option<&VerificationKey>,
    keys: Option<&dyn Fn(Seq) -> Option<SegmentKeys>>,
) -> VerifyReport {
    let mut v = Verifier {
        report: VerifyReport {
            seals_checked: vk.is_some(),
            decryption_checked: keys.is_some(),
            ..VerifyReport::default()
        },
        vk,
        seal: None,
        keys,
        log_id: None,
        prev: None,
        scratch: Vec::with_capacity(512),
    };
    let n = inputs.len();
    for (i, input) in inputs.into_iter().enumerate() {
        let bytes = match read(&input) {
            Ok(b) => b,
            // Deleted by the capacity limit while we were on our way: the log now starts later.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && v.prev.is_none() => continue,
            Err(e) => {
                v.report.first_break = Some(Break {
                    file: input.path,
                    offset: 0,
                    seq: None,
                    reason: BreakReason::Unreadable {
                        error: e.to_string(),
                    },
                });
                break;
            }
        };
        if let Err(b) = v.segment(&input, &bytes, i + 1 == n) {
            v.report.first_break = Some(b);
            break;
        }
    }
    v.report
}

fn read(input: &Input) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(&input.path)?;
    let mut buf = Vec::new();
    match input.limit {
        Some(n) => f.take(n).read_to_end(&mut buf)?,
        None => (&f).read_to_end(&mut buf)?,
    };
    Ok(buf)
}

/// The chain state after the last frame checked.
#[derive(Clone, Copy)]
struct Prev {
    hash: ChainHash,
    last_seq: Seq,
    epoch: u32,
    /// The last frame was the closing seal of `epoch`.
    closed: bool,
}

struct Verifier<'a> {
    report: VerifyReport,
    vk: Option<&'a VerificationKey>,
    seal: Option<EpochKey>,
    keys: Option<&'a dyn Fn(Seq) -> Option<SegmentKeys>>,
    log_id: Option<LogId>,
    prev: Option<Prev>,
    scratch: Vec<u8>,
}

impl Verifier<'_> {
    fn segment(&mut self, input: &Input, bytes: &[u8], is_last: bool) -> Result<(), Break> {
        let file = &input.path;
        let brk = |offset: usize, seq: Option<Seq>, reason: BreakReason| Break {
            file: file.clone(),
            offset: u64::try_from(offset).unwrap_or(u64::MAX),
            seq,
            reason,
        };
        let p = SegmentHeader::parse(bytes).map_err(|e| {
            brk(
                0,
                None,
                BreakReason::HeaderDamaged {
                    detail: e.describe(),
                },
            )
        })?;
        let h = p.header;
        if h.first_seq != input.name_seq {
            return Err(brk(
                0,
                None,
                BreakReason::HeaderDamaged {
                    detail: "file name and header disagree on the first seq",
                },
            ));
        }
        match self.log_id {
            None => {
                if self.vk.is_some_and(|vk| vk.log_id_raw() != h.log_id) {
                    return Err(brk(0, None, BreakReason::WrongVerificationKey));
                }
                self.log_id = Some(h.log_id);
            }
            Some(id) if id != h.log_id => return Err(brk(0, None, BreakReason::LogIdMismatch)),
            Some(_) => {}
        }
        match self.prev {
            None => {
                let genesis = h.anchor == ChainHash::GENESIS;
                self.report.start = match (h.first_seq, genesis) {
                    (1, true) => Start::Genesis,
                    (s, false) if s > 1 => Start::AfterOverwrite { first_seq: s },
                    _ => return Err(brk(0, Some(h.first_seq), BreakReason::AnchorInvalid)),
                };
                self.prev = Some(Prev {
                    hash: h.anchor,
                    last_seq: h.first_seq - 1,
                    epoch: h.epoch,
                    closed: false,
                });
            }
            Some(prev) => {
                let expected = prev.last_seq + 1;
                let seq = Some(expected);
                if h.first_seq > expected {
                    return Err(brk(
                        0,
                        seq,
                        BreakReason::SegmentMissing {
                            expected_first_seq: expected,
                            found_first_seq: h.first_seq,
                        },
                    ));
                }
                if h.first_seq < expected {
                    return Err(brk(
                        0,
                        seq,
                        BreakReason::SegmentOverlap {
                            expected_first_seq: expected,
                            found_first_seq: h.first_seq,
                        },
                    ));
                }
                if h.anchor != prev.hash {
                    return Err(brk(0, seq, BreakReason::AnchorMismatch));
                }
                // A segment starts in the epoch of its predecessor's end frame.
                if h.epoch < prev.epoch {
                    return Err(brk(
                        0,
                        seq,
                        BreakReason::EpochWentBackwards {
                            from: prev.epoch,
                            to: h.epoch,
                        },
                    ));
                }
                if h.epoch > prev.epoch {
                    return Err(brk(
                        0,
                        seq,
                        BreakReason::EpochNotClosed { epoch: prev.epoch },
                    ));
                }
            }
        }
        if let Some(k) = self.seal_key(h.epoch)
            && !k.check(&p.hash, &p.tag)
        {
            return Err(brk(
                0,
                None,
                BreakReason::HeaderSealInvalid { epoch: h.epoch },
            ));
        }
        self.report.segments += 1;

        let mut off = HEADER_LEN;
        let mut ended = false;
        while off < bytes.len() {
            let next_seq = self.prev.map_or(h.first_seq, |p| p.last_seq + 1);
            if ended {
                return Err(brk(off, None, BreakReason::DataAfterSegmentEnd));
            }
            let f = match frame::parse(&bytes[off..]) {
                Ok(f) => f,
                Err(ParseError::Incomplete) if is_last => {
                    self.report.torn_tail = Some(TornTail {
                        file: file.clone(),
                        offset: u64::try_from(off).unwrap_or(u64::MAX),
                        bytes: u64::try_from(bytes.len() - off).unwrap_or(u64::MAX),
                    });
                    break;
                }
                Err(ParseError::Incomplete) => {
                    return Err(brk(off, Some(next_seq), BreakReason::SegmentTruncated));
                }
                Err(ParseError::Malformed(detail)) => {
                    return Err(brk(
                        off,
                        Some(next_seq),
                        BreakReason::FrameMalformed { detail },
                    ));
                }
            };
            if let Err((seq, reason)) = self.frame(&f, &bytes[off..], h.first_seq) {
                return Err(brk(off, seq, reason));
            }
            ended = f.head.kind == FrameKind::SegmentEnd;
            off += f.len;
        }
        if !is_last && !ended {
            let next_seq = self.prev.map(|p| p.last_seq + 1);
            return Err(brk(bytes.len(), next_seq, BreakReason::SegmentTruncated));
        }
        Ok(())
    }

    /// Checks one frame against the state before it; `rest` starts at the frame.
    fn frame(
        &mut self,
        f: &Frame<'_>,
        rest: &[u8],
        segment_first: Seq,
    ) -> Result<(), (Option<Seq>, BreakReason)> {
        let Some(prev) = self.prev else {
            return Err((None, BreakReason::AnchorInvalid));
        };
        let h = f.head;
        let record = h.kind == FrameKind::Record;
        let missing = prev.last_seq + 1;
        let expected = if record { missing } else { prev.last_seq };
        if h.seq != expected {
            return Err((
                Some(missing),
                self.classify_seq(f, rest, &prev, expected, missing),
            ));
        }
        if prev.hash.next(f.hashed, &mut self.scratch) != f.hash {
            return Err((Some(h.seq), BreakReason::ContentModified));
        }
        if h.epoch < prev.epoch {
            return Err((
                Some(h.seq),
                BreakReason::EpochWentBackwards {
                    from: prev.epoch,
                    to: h.epoch,
                },
            ));
        }
        if h.epoch > prev.epoch && !prev.closed {
            return Err((
                Some(h.seq),
                BreakReason::EpochNotClosed { epoch: prev.epoch },
            ));
        }
        if h.epoch == prev.epoch && prev.closed {
            return Err((Some(h.seq), BreakReason::EpochReopened { epoch: h.epoch }));
        }
        if let Some(k) = self.seal_key(h.epoch)
            && !k.check(&f.hash, f.tag)
        {
            return Err((Some(h.seq), BreakReason::BadSeal { epoch: h.epoch }));
        }
        if record && let (Some(keys), Some(log_id)) = (self.keys, self.log_id) {
            let Some((data, personal)) = keys(segment_first) else {
                return Err((
                    Some(h.seq),
                    BreakReason::DecryptionFailed {
                        part: "no keys for this segment in the keyring",
                    },
                ));
            };
            match record::open(f, &log_id, segment_first, &data, personal.as_deref()) {
                Ok(r) if r.personal_purged => self.report.personal_purged += 1,
                Ok(_) => {}
                Err(crate::log::LogError::Decrypt { reason, .. }) => {
                    return Err((Some(h.seq), BreakReason::DecryptionFailed { part: reason }));
                }
                Err(_) => {
                    return Err((
                        Some(h.seq),
                        BreakReason::DecryptionFailed { part: "record" },
                    ));
                }
            }
        }
        let r = &mut self.report;
        if record {
            r.records += 1;
            r.first_seq.get_or_insert(h.seq);
            r.last_seq = Some(h.seq);
            if r.first_time.is_none() {
                r.first_time = Some(clock::rfc3339(h.utc_ms));
            }
            r.last_time = Some(clock::rfc3339(h.utc_ms));
        }
        if h.kind == FrameKind::EpochClose {
            r.epochs_closed += 1;
        }
        r.first_epoch.get_or_insert(h.epoch);
        r.last_epoch = Some(h.epoch);
        self.prev = Some(Prev {
            hash: f.hash,
            last_seq: if record { h.seq } else { prev.last_seq },
            epoch: h.epoch,
            closed: h.kind == FrameKind::EpochClose,
        });
        Ok(())
    }

    /// Why a frame has the wrong seq: its seq field was edited in place (the frame hashes
    /// correctly with the expected seq put back), records were reordered (the missing one
    /// comes later in the segment, or an earlier one repeats), or records are missing.
    fn classify_seq(
        &mut self,
        f: &Frame<'_>,
        rest: &[u8],
        prev: &Prev,
        expected: Seq,
        missing: Seq,
    ) -> BreakReason {
        // The seq sits at bytes 5..13 of a frame (after the length and the kind).
        const { assert!(CLEAR_LEN >= 9) };
        let mut patched = f.hashed.to_vec();
        patched[5..13].copy_from_slice(&expected.to_le_bytes());
        if prev.hash.next(&patched, &mut self.scratch) == f.hash {
            return BreakReason::ContentModified;
        }
        let found = f.head.seq;
        let mut at = f.len;
        while let Some(Ok(next)) = rest.get(at..).map(frame::parse) {
            if next.head.kind == FrameKind::Record && next.head.seq == missing {
                return BreakReason::Reordered {
                    expected: missing,
                    found,
                };
            }
            at += next.len;
        }
        if found < expected {
            BreakReason::Reordered {
                expected: missing,
                found,
            }
        } else {
            BreakReason::RecordMissing {
                expected: missing,
                found,
            }
        }
    }

    /// The sealing key of `epoch`, derived from the verification key (None without one).
    fn seal_key(&mut self, epoch: u32) -> Option<&EpochKey> {
        let vk = self.vk?;
        let fresh = match &mut self.seal {
            Some(k) if k.epoch() <= epoch => k.advance_to(epoch).is_err(),
            _ => true,
        };
        if fresh {
            self.seal = vk.epoch_key(epoch).ok();
        }
        self.seal.as_ref()
    }
}
