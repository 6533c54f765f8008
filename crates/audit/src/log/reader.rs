//! Reading records back: by seq, by filter, newest last, or as JSON lines for export.
//!
//! Readers work on a snapshot of the segment list and read each file only up to the length the
//! writer had fsynced, so they never see a half-written frame and never block the writer. A
//! segment deleted by the capacity limit while a reader is on its way is skipped (its records
//! are gone; the reader sees the log as it is now).

use std::io::{Read, Write};
use std::path::PathBuf;

use time::OffsetDateTime;

use super::Seq;
use super::clock;
use super::error::{LogError, io_at};
use super::frame::{self, FrameKind};
use super::record::{self, Record};
use super::segment::{HEADER_LEN, LogId};
use super::state::SegView;
use crate::{EventKind, Outcome};

/// Which records a query returns. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Filter {
    /// Only records at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only records before this time.
    pub until: Option<OffsetDateTime>,
    /// Only these kinds of event.
    pub kinds: Vec<EventKind>,
    /// Only records of this actor (exact match; purged records never match).
    pub actor: Option<String>,
    /// Only records with this outcome.
    pub outcome: Option<Outcome>,
    /// Only records with a seq at or above this one (for paging).
    pub from_seq: Option<Seq>,
}

impl Filter {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    fn time_range(&self) -> (i64, i64) {
        (
            self.since.map_or(i64::MIN, clock::to_ms),
            self.until.map_or(i64::MAX, clock::to_ms),
        )
    }

    fn matches(&self, r: &Record) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&r.event.event))
            && self
                .actor
                .as_ref()
                .is_none_or(|a| !r.personal_purged && r.event.actor.as_ref() == Some(a))
            && self.outcome.is_none_or(|o| o == r.event.outcome)
    }
}

/// Records in seq order, decrypted; see [`AuditLog::records`](super::AuditLog::records).
///
/// An item is an error when a record inside the fsynced part of a segment does not parse or
/// decrypt: that is damage or tampering, and the iteration stops there (run `verify`).
pub struct Records {
    log_id: LogId,
    segments: std::vec::IntoIter<SegView>,
    current: Option<(SegView, Vec<u8>, usize)>,
    from_seq: Seq,
    utc_range: (i64, i64),
    done: bool,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("from_seq", &self.from_seq)
            .finish_non_exhaustive()
    }
}

impl Records {
    pub(crate) fn new(
        log_id: LogId,
        mut segments: Vec<SegView>,
        from_seq: Seq,
        utc_range: (i64, i64),
    ) -> Self {
        // Start at the segment holding `from_seq`, and skip segments wholly before the range.
        let start = segments
            .iter()
            .rposition(|s| s.first_seq <= from_seq)
            .unwrap_or(0);
        segments.drain(..start);
        segments.retain(|s| s.newest_utc_ms.is_none_or(|t| t >= utc_range.0));
        Self {
            log_id,
            segments: segments.into_iter(),
            current: None,
            from_seq,
            utc_range,
            done: false,
        }
    }

    fn load(seg: &SegView) -> Result<Option<Vec<u8>>, LogError> {
        let file = match std::fs::File::open(&seg.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&seg.path)(e)),
        };
        let mut buf = Vec::with_capacity(usize::try_from(seg.len).unwrap_or(0));
        file.take(seg.len)
            .read_to_end(&mut buf)
            .map_err(io_at(&seg.path))?;
        Ok(Some(buf))
    }

    fn damaged(path: &std::path::Path, at: usize, reason: &str) -> LogError {
        LogError::Damaged {
            path: path.to_path_buf(),
            offset: u64::try_from(at).unwrap_or(u64::MAX),
            reason: reason.to_string(),
        }
    }
}

impl Iterator for Records {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some((seg, buf, pos)) = &mut self.current else {
                let seg = self.segments.next()?;
                match Self::load(&seg) {
                    Ok(Some(buf)) => self.current = Some((seg, buf, HEADER_LEN)),
                    Ok(None) => {}
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                continue;
            };
            if *pos >= buf.len() {
                self.current = None;
                continue;
            }
            let f = match frame::parse(&buf[*pos..]) {
                Ok(f) => f,
                Err(_) => {
                    self.done = true;
                    return Some(Err(Self::damaged(&seg.path, *pos, "frame does not parse")));
                }
            };
            *pos += f.len;
            let h = f.head;
            if h.kind != FrameKind::Record
                || h.seq < self.from_seq
                || h.utc_ms < self.utc_range.0
                || h.utc_ms >= self.utc_range.1
            {
                continue;
            }
            let r = record::open(
                &f,
                &self.log_id,
                seg.first_seq,
                &seg.data_key,
                seg.personal_key.as_deref(),
            );
            if r.is_err() {
                self.done = true;
            }
            return Some(r);
        }
        None
    }
}

/// The last `limit` records matching `filter`, oldest first, reading segments newest first.
pub(crate) fn tail(
    log_id: LogId,
    segments: Vec<SegView>,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<Record>, LogError> {
    let mut out: Vec<Record> = Vec::new();
    let from = filter.from_seq.unwrap_or(0);
    for seg in segments.into_iter().rev() {
        if out.len() >= limit || seg.last_seq.is_some_and(|l| l < from) {
            break;
        }
        let mut found = Vec::new();
        for r in Records::new(log_id, vec![seg], from, filter.time_range()) {
            let r = r?;
            if filter.matches(&r) {
                found.push(r);
            }
        }
        found.append(&mut out);
        out = found;
    }
    let skip = out.len().saturating_sub(limit);
    out.drain(..skip);
    Ok(out)
}

/// The first `limit` records matching `filter`.
pub(crate) fn query(
    log_id: LogId,
    segments: Vec<SegView>,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<Record>, LogError> {
    let mut out = Vec::new();
    for r in Records::new(
        log_id,
        segments,
        filter.from_seq.unwrap_or(0),
        filter.time_range(),
    ) {
        if out.len() >= limit {
            break;
        }
        let r = r?;
        if filter.matches(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Writes every record matching `filter` as one JSON object per line; returns the count.
pub(crate) fn export_json_lines(
    log_id: LogId,
    segments: Vec<SegView>,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<u64, LogError> {
    let mut n = 0;
    let mut line = Vec::with_capacity(512);
    for r in Records::new(
        log_id,
        segments,
        filter.from_seq.unwrap_or(0),
        filter.time_range(),
    ) {
        let r = r?;
        if !filter.matches(&r) {
            continue;
        }
        line.clear();
        serde_json::to_writer(&mut line, &r).map_err(|e| LogError::WriteFailing(e.to_string()))?;
        line.push(b'\n');
        out.write_all(&line).map_err(|source| LogError::Io {
            path: PathBuf::from("<export>"),
            source,
        })?;
        n += 1;
    }
    Ok(n)
}
