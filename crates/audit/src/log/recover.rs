//! Opening a log after a clean stop or a crash: find the last valid frame, cut a torn tail.
//!
//! Only the last segment is ever written, so only it can end in a torn write. Its frames are
//! walked from the header's anchor, checking structure, chain hash and seq order (no key
//! needed); the first frame that fails and everything after it is the torn tail. The tail is cut
//! (a notice says so) and, unless it is all zeros, kept beside the segment as
//! `<segment>.torn-<offset>`, so a damaged write is never silently destroyed. Anything else that
//! does not fit (a valid frame out of order, data after a segment end, a header that does not
//! parse in a file longer than a header) is not a crash artefact: `open` refuses with
//! [`LogError::Damaged`] and changes nothing.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::Seq;
use super::chain::ChainHash;
use super::clock;
use super::error::{LogError, io_at};
use super::frame::{self, FrameKind};
use super::keyring::{Closed, Keyring};
use super::notice::LogNotice;
use super::seal::TAG_LEN;
use super::segment::{self, HEADER_LEN, HeaderError, LogId, SegmentHeader};
use super::state::SegView;

/// The log as found.
pub(crate) struct Recovered {
    /// Oldest first, the last one included.
    pub(crate) segments: Vec<SegView>,
    /// The last segment, open for appending, unless it was ended (then a roll comes first).
    pub(crate) tail: Option<Tail>,
    pub(crate) chain: ChainHash,
    pub(crate) last_seq: Seq,
    pub(crate) last_frame: Option<LastFrame>,
    pub(crate) notices: Vec<LogNotice>,
    /// The keyring was corrected (keys of deleted segments dropped, a closed segment recorded).
    pub(crate) keyring_changed: bool,
}

/// The segment being continued.
pub(crate) struct Tail {
    pub(crate) file: File,
    pub(crate) first_seq: Seq,
    pub(crate) len: u64,
    pub(crate) day: Option<i64>,
    pub(crate) newest_utc_ms: Option<i64>,
}

/// The last frame of the log, to continue the epoch sequence and check the sealing state.
#[derive(Clone, Copy)]
pub(crate) struct LastFrame {
    pub(crate) kind: FrameKind,
    pub(crate) epoch: u32,
    pub(crate) hash: ChainHash,
    pub(crate) tag: [u8; TAG_LEN],
}

/// One segment walked frame by frame.
pub(crate) struct Scan {
    pub(crate) header: SegmentHeader,
    pub(crate) chain: ChainHash,
    pub(crate) last_seq: Seq,
    /// Bytes up to the end of the last valid frame.
    pub(crate) good_len: usize,
    pub(crate) first_utc_ms: Option<i64>,
    pub(crate) newest_utc_ms: Option<i64>,
    pub(crate) last_frame: Option<LastFrame>,
    pub(crate) ended: bool,
    pub(crate) stop: Option<Stop>,
}

/// Why a walk stopped before the end of the bytes.
pub(crate) enum Stop {
    /// Incomplete, malformed or not chained: a torn write.
    Torn,
    /// A valid, chained frame that does not belong there.
    Inconsistent(&'static str),
}

/// Walks a segment's frames (no key needed).
pub(crate) fn scan(bytes: &[u8]) -> Result<Scan, HeaderError> {
    let p = SegmentHeader::parse(bytes)?;
    let mut s = Scan {
        header: p.header,
        chain: p.header.anchor,
        last_seq: p.header.first_seq.saturating_sub(1),
        good_len: HEADER_LEN,
        first_utc_ms: None,
        newest_utc_ms: None,
        last_frame: None,
        ended: false,
        stop: None,
    };
    let mut scratch = Vec::new();
    while s.good_len < bytes.len() {
        if s.ended {
            s.stop = Some(Stop::Inconsistent("data after the segment end"));
            break;
        }
        let Ok(f) = frame::parse(&bytes[s.good_len..]) else {
            s.stop = Some(Stop::Torn);
            break;
        };
        if s.chain.next(f.hashed, &mut scratch) != f.hash {
            s.stop = Some(Stop::Torn);
            break;
        }
        let record = f.head.kind == FrameKind::Record;
        let expected = if record { s.last_seq + 1 } else { s.last_seq };
        if f.head.seq != expected {
            s.stop = Some(Stop::Inconsistent("sequence numbers do not follow"));
            break;
        }
        if record {
            s.last_seq = f.head.seq;
            s.first_utc_ms.get_or_insert(f.head.utc_ms);
            s.newest_utc_ms = Some(
                s.newest_utc_ms
                    .map_or(f.head.utc_ms, |t| t.max(f.head.utc_ms)),
            );
        }
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(f.tag);
        s.last_frame = Some(LastFrame {
            kind: f.head.kind,
            epoch: f.head.epoch,
            hash: f.hash,
            tag,
        });
        s.ended = f.head.kind == FrameKind::SegmentEnd;
        s.chain = f.hash;
        s.good_len += f.len;
    }
    Ok(s)
}

/// Finds the log's end, repairing a torn tail, and lists its segments with their keys.
pub(crate) fn recover(
    dir: &Path,
    log_id: LogId,
    keyring: &mut Keyring,
) -> Result<Recovered, LogError> {
    let mut files = segment::list(dir).map_err(io_at(dir))?;
    let mut notices = Vec::new();
    // Never reuse a seq, even if every segment file was deleted behind the log's back.
    let known_last = keyring
        .segments
        .iter()
        .map(|(first, k)| k.closed.map_or(first.saturating_sub(1), |c| c.last_seq))
        .max()
        .unwrap_or(0);
    // Keys of segments that no longer exist: a crash between deleting a segment and saving the
    // keyring, or a roll that saved the keys and crashed before creating the file.
    let present: BTreeSet<Seq> = files.iter().map(|(s, _)| *s).collect();
    let before = keyring.segments.len();
    keyring.segments.retain(|s, _| present.contains(s));
    let mut keyring_changed = before != keyring.segments.len();

    let mut last = None;
    while let Some((first, path)) = files.pop() {
        let bytes = std::fs::read(&path).map_err(io_at(&path))?;
        match scan(&bytes) {
            Ok(s) => {
                last = Some((first, path, s, bytes));
                break;
            }
            // A crash while creating the segment: durable::create_new writes the header and
            // fsyncs before any frame is written, so a short file holds nothing else.
            Err(_) if bytes.len() <= HEADER_LEN => {
                std::fs::remove_file(&path).map_err(io_at(&path))?;
                mamori_durable::sync_dir(dir).map_err(io_at(dir))?;
                keyring.segments.remove(&first);
                keyring_changed = true;
                notices.push(LogNotice::TornTailCut {
                    file: path,
                    offset: 0,
                    bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                    kept_as: None,
                });
            }
            Err(e) => {
                return Err(LogError::Damaged {
                    path,
                    offset: 0,
                    reason: e.describe().to_string(),
                });
            }
        }
    }

    let mut segments = Vec::with_capacity(files.len() + 1);
    for (first, path) in &files {
        segments.push(closed_view(*first, path, keyring, &mut keyring_changed)?);
    }
    let Some((first, path, s, bytes)) = last else {
        return Ok(Recovered {
            segments,
            tail: None,
            chain: ChainHash::GENESIS,
            last_seq: known_last,
            last_frame: None,
            notices,
            keyring_changed,
        });
    };
    if s.header.log_id != log_id {
        return Err(LogError::LogIdMismatch);
    }
    if s.header.first_seq != first {
        return Err(damaged(
            &path,
            0,
            "file name and header disagree on the first seq",
        ));
    }
    match s.stop {
        Some(Stop::Inconsistent(reason)) => {
            return Err(damaged(&path, offset(s.good_len), reason));
        }
        Some(Stop::Torn) => notices.push(cut_tail(dir, &path, &bytes, s.good_len)?),
        None => {}
    }
    let keys = keyring
        .segments
        .get_mut(&first)
        .ok_or_else(|| damaged(&path, 0, "the keyring holds no keys for this segment"))?;
    if s.ended && keys.closed.is_none() {
        // The roll crashed after ending this segment and before saving the keyring.
        keys.closed = Some(Closed {
            last_seq: s.last_seq,
            newest_utc_ms: s.newest_utc_ms,
        });
        keyring_changed = true;
    }
    segments.push(SegView {
        first_seq: first,
        path: path.clone(),
        len: offset(s.good_len),
        last_seq: (s.last_seq >= first).then_some(s.last_seq),
        newest_utc_ms: s.newest_utc_ms,
        data_key: keys.data.clone(),
        personal_key: keys.personal.clone(),
    });
    let tail = if s.ended {
        None
    } else {
        Some(Tail {
            file: segment::open_append(&path).map_err(io_at(&path))?,
            first_seq: first,
            len: offset(s.good_len),
            day: s.first_utc_ms.map(clock::day_of),
            newest_utc_ms: s.newest_utc_ms,
        })
    };
    Ok(Recovered {
        segments,
        tail,
        chain: s.chain,
        last_seq: s.last_seq,
        last_frame: s.last_frame,
        notices,
        keyring_changed,
    })
}

fn closed_view(
    first: Seq,
    path: &Path,
    keyring: &mut Keyring,
    changed: &mut bool,
) -> Result<SegView, LogError> {
    let len = std::fs::metadata(path).map_err(io_at(path))?.len();
    let keys = keyring
        .segments
        .get_mut(&first)
        .ok_or_else(|| damaged(path, 0, "the keyring holds no keys for this segment"))?;
    let closed = match keys.closed {
        Some(c) => c,
        None => {
            // Only an old keyring lacks this; read it once and remember.
            let bytes = std::fs::read(path).map_err(io_at(path))?;
            let s = scan(&bytes).map_err(|e| damaged(path, 0, e.describe()))?;
            let c = Closed {
                last_seq: s.last_seq,
                newest_utc_ms: s.newest_utc_ms,
            };
            keys.closed = Some(c);
            *changed = true;
            c
        }
    };
    Ok(SegView {
        first_seq: first,
        path: path.to_path_buf(),
        len,
        last_seq: (closed.last_seq >= first).then_some(closed.last_seq),
        newest_utc_ms: closed.newest_utc_ms,
        data_key: keys.data.clone(),
        personal_key: keys.personal.clone(),
    })
}

/// Cuts the segment at `good_len`, keeping the cut bytes unless they are all zero.
fn cut_tail(dir: &Path, path: &Path, bytes: &[u8], good_len: usize) -> Result<LogNotice, LogError> {
    let cut = &bytes[good_len..];
    let kept_as = if cut.iter().any(|&b| b != 0) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment");
        let keep: PathBuf = dir.join(format!("{name}.torn-{good_len}"));
        mamori_durable::write(&keep, cut, 0o600).map_err(io_at(&keep))?;
        Some(keep)
    } else {
        None
    };
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    f.set_len(offset(good_len)).map_err(io_at(path))?;
    f.sync_all().map_err(io_at(path))?;
    tracing::warn!(file = %path.display(), offset = good_len, bytes = cut.len(), "audit log: torn tail cut after a crash");
    Ok(LogNotice::TornTailCut {
        file: path.to_path_buf(),
        offset: offset(good_len),
        bytes: offset(cut.len()),
        kept_as,
    })
}

fn offset(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn damaged(path: &Path, offset: u64, reason: &str) -> LogError {
    LogError::Damaged {
        path: path.to_path_buf(),
        offset,
        reason: reason.to_string(),
    }
}
