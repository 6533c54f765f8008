//! Where records come from: the audit log, seen through a narrow trait.
//!
//! The forwarder only ever *reads* the backlog, from its own cursor; it never holds a lock the
//! writer needs, so a slow or absent collector never slows down or blocks the producers of
//! audit events. The audit log implements [`Backlog`]; [`MemoryBacklog`] is an in-memory one
//! for tests, examples and measurements.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::record::ForwardRecord;

/// Read access to the audit log, in sequence order.
///
/// Sequence numbers start at 1 and grow by one per record. When the log is full it overwrites
/// its oldest records, so the oldest sequence number still held may grow too.
pub trait Backlog: Send + Sync + 'static {
    /// Records with `seq >= from`, oldest first, at most `limit` of them, contiguous.
    ///
    /// If records at `from` were already overwritten, the result starts at the oldest record
    /// still held (the forwarder counts the gap as skipped). Empty when there is no record at
    /// or after `from` yet. Called from a blocking thread: it may read and decrypt from disk.
    fn read_from(&self, from: u64, limit: usize) -> Result<Vec<ForwardRecord>, BacklogError>;

    /// The highest sequence number written so far; 0 when the log is empty.
    ///
    /// It must count only records that [`Backlog::read_from`] can already return, and be right
    /// from the first call: a value below a collector's saved cursor is taken to mean the log
    /// was reset, and that collector starts again from the oldest record.
    fn last_seq(&self) -> u64;

    /// A receiver that sees [`Backlog::last_seq`] change, so the forwarder waits for new
    /// records without polling.
    fn subscribe(&self) -> watch::Receiver<u64>;
}

/// The backlog could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("reading the audit log failed: {0}")]
pub struct BacklogError(pub String);

/// An in-memory backlog with an optional capacity (oldest records dropped beyond it), for
/// tests, examples and measurements.
#[derive(Debug)]
pub struct MemoryBacklog {
    records: Mutex<VecDeque<ForwardRecord>>,
    capacity: Option<usize>,
    last: watch::Sender<u64>,
}

impl Default for MemoryBacklog {
    fn default() -> Self {
        Self::new(None)
    }
}

impl MemoryBacklog {
    /// An empty backlog that keeps at most `capacity` records (all if `None`).
    pub fn new(capacity: Option<usize>) -> Self {
        Self {
            records: Mutex::new(VecDeque::new()),
            capacity,
            last: watch::Sender::new(0),
        }
    }

    /// Appends a record, giving it the next sequence number, which it returns.
    pub fn append(&self, mut record: ForwardRecord) -> u64 {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seq = *self.last.borrow() + 1;
        record.seq = seq;
        records.push_back(record);
        if let Some(cap) = self.capacity {
            while records.len() > cap {
                records.pop_front();
            }
        }
        self.last.send_replace(seq);
        seq
    }
}

impl Backlog for MemoryBacklog {
    fn read_from(&self, from: u64, limit: usize) -> Result<Vec<ForwardRecord>, BacklogError> {
        let records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(first) = records.front().map(|r| r.seq) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
        Ok(records.iter().skip(skip).take(limit).cloned().collect())
    }

    fn last_seq(&self) -> u64 {
        *self.last.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // unwraps are assertions here

    use super::*;
    use crate::record::Severity;

    fn rec() -> ForwardRecord {
        ForwardRecord {
            seq: 0,
            time: time::OffsetDateTime::UNIX_EPOCH,
            hostname: "h".into(),
            severity: Severity::Notice,
            event: "e".into(),
            outcome: "success".into(),
            actor: None,
            source: None,
            message: String::new(),
            details: serde_json::Value::Null,
        }
    }

    #[test]
    fn memory_backlog_numbers_reads_and_overwrites_in_order() {
        let b = MemoryBacklog::new(Some(3));
        let rx = b.subscribe();
        assert!(b.read_from(0, 10).unwrap().is_empty());
        for _ in 0..5 {
            b.append(rec());
        }
        assert_eq!(b.last_seq(), 5);
        assert_eq!(*rx.borrow(), 5);
        let seqs = |v: Vec<ForwardRecord>| v.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(b.read_from(1, 10).unwrap()), vec![3, 4, 5]);
        assert_eq!(seqs(b.read_from(4, 10).unwrap()), vec![4, 5]);
        assert_eq!(seqs(b.read_from(3, 1).unwrap()), vec![3]);
        assert!(b.read_from(6, 10).unwrap().is_empty());
    }
}
