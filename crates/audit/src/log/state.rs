//! What callers, the writer thread and readers share, and the small types they exchange.
//!
//! One mutex guards the queue (seq assignment and order, durability progress, failure state);
//! a read-write lock guards the view readers use (segments, their readable lengths and keys).
//! The writer is the only one that changes files; readers only ever read up to lengths the
//! writer has fsynced.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};

use mamori_crypto::aead::Key;

use super::Seq;
use super::config::LogConfig;
use super::cursor::Cursor;
use super::error::LogError;
use super::notice::NoticeBox;
use super::segment::LogId;
use crate::Event;

/// Everything shared.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) log_id: LogId,
    pub(crate) queue: Mutex<Queue>,
    /// Wakes the writer: an event or command arrived, or stop.
    pub(crate) wake_writer: Condvar,
    /// Wakes callers: queue room, durability progress, writer gone.
    pub(crate) progress: Condvar,
    pub(crate) view: RwLock<View>,
    pub(crate) notices: NoticeBox,
    pub(crate) cursor: Cursor,
}

impl Shared {
    pub(crate) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn view(&self) -> View {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn publish(&self, view: View) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = view;
    }
}

/// An event with its seq and times, waiting for the writer.
pub(crate) struct Pending {
    pub(crate) seq: Seq,
    pub(crate) utc_ms: i64,
    pub(crate) mono_ms: u64,
    pub(crate) event: Event,
}

/// Work for the writer besides events.
pub(crate) enum Command {
    /// Destroy the personal keys of segments wholly older than `before_ms`.
    Purge {
        before_ms: i64,
        reply: Sender<Result<PurgeReport, LogError>>,
    },
}

/// The queue and the writer's progress.
#[derive(Default)]
pub(crate) struct Queue {
    pub(crate) items: VecDeque<Pending>,
    pub(crate) commands: Vec<Command>,
    /// The seq the next event gets.
    pub(crate) next_seq: Seq,
    /// Every record up to this seq is fsynced.
    pub(crate) durable_seq: Seq,
    pub(crate) stop: bool,
    pub(crate) writer_gone: bool,
    pub(crate) writer_waiting: bool,
    /// The last write error while writing fails.
    pub(crate) failing: Option<String>,
    pub(crate) dropped_total: u64,
    pub(crate) dropped_unreported: u64,
}

/// What readers see.
#[derive(Clone, Default)]
pub(crate) struct View {
    /// Oldest first; the last one is being written.
    pub(crate) segments: Vec<SegView>,
    pub(crate) epoch: u32,
}

impl View {
    pub(crate) fn used_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }
}

/// One segment as readers see it.
#[derive(Clone)]
pub(crate) struct SegView {
    pub(crate) first_seq: Seq,
    pub(crate) path: PathBuf,
    /// Bytes fsynced: whole frames only.
    pub(crate) len: u64,
    /// The last record in it, if any.
    pub(crate) last_seq: Option<Seq>,
    /// The newest record time in it, if any.
    pub(crate) newest_utc_ms: Option<i64>,
    pub(crate) data_key: Arc<Key>,
    /// `None` once purged.
    pub(crate) personal_key: Option<Arc<Key>>,
}

/// The outcome of [`AuditLog::purge_personal_data`](super::AuditLog::purge_personal_data).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Segments whose personal key was destroyed now.
    pub segments: u64,
    /// Records in those segments.
    pub records: u64,
    /// The newest record whose personal data is now gone, if any.
    pub up_to_seq: Option<Seq>,
}

/// The log's state, for the API status, the UI banner and `mamori audit status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LogStatus {
    /// Bytes of all segments.
    pub used_bytes: u64,
    /// The configured capacity.
    pub capacity_bytes: u64,
    /// `used_bytes` in percent of `capacity_bytes`.
    pub percent: u8,
    /// The oldest record still in the log, if any.
    pub first_seq: Option<Seq>,
    /// The newest record accepted (queued or written), if any.
    pub last_seq: Option<Seq>,
    /// Every record up to this seq is on disk (fsynced).
    pub durable_seq: Seq,
    /// Events waiting for the writer.
    pub queued: usize,
    /// The current sealing epoch.
    pub epoch: u32,
    /// Segment files.
    pub segments: usize,
    /// The forwarder's acknowledged seq ([`AuditLog::set_acknowledged`](super::AuditLog::set_acknowledged)).
    pub acknowledged: Seq,
    /// Records overwritten before the forwarder acknowledged them, since the log was created.
    pub overwritten_unread: u64,
    /// Events refused because the queue stayed full, since the log was opened.
    pub dropped: u64,
    /// Why writing fails, while it fails.
    pub write_error: Option<String>,
}
