//! The audit log storage engine (issue 4): encrypted, hash-chained, forward-secure sealed,
//! bounded, crash-safe.
//!
//! # What it guarantees
//! - **Confidential at rest** (S3.1-16): every record is AES-256-GCM encrypted under a
//!   per-segment data key; actor and source address (the personal fields, S3.1-40) under a
//!   separate per-segment personal key. The keys live in a keyring sealed under the master key
//!   given to [`AuditLog::open`].
//! - **Tamper-evident**: records are hash-chained (SHA-256, over the ciphertext, across
//!   segments), and each frame is tagged with HMAC-SHA-256 under an epoch key that evolves
//!   (every 15 minutes and at every open) and is erased: someone who takes over the writer
//!   later can forge only the current epoch, never rewrite earlier history undetected
//!   ([`verify`] with the [`VerificationKey`]). See seal.rs for the scheme.
//! - **Bounded** (S3.1-35 R2/R3): total size is capped, the oldest segments are deleted when
//!   full, and the owner gets [`LogNotice`]s at 80 % and 90 % and when records the forwarder had
//!   not acknowledged are overwritten.
//! - **Crash-safe**: a record [`AuditLog::append_durable`] acknowledged survives `kill -9` and
//!   power loss; `open` cuts a torn tail and says so.
//! - **Never blocks a producer long, never drops silently**: a bounded queue in front of a
//!   writer thread with group commit; when the disk fails events wait, then are refused with an
//!   error and counted.
//! - **Personal data can be purged** (S3.1-41): [`AuditLog::purge_personal_data`] destroys the
//!   personal keys of segments wholly before a date (segments roll at UTC midnight, so by whole
//!   days). The files are not rewritten, the chain still verifies, actor and source then read
//!   [`PURGED`].
//!
//! # What it does not do
//! It does not forward (the forwarder reads with [`AuditLog::read`] and reports progress with
//! [`AuditLog::set_acknowledged`]), and it does not decide which events exist (crate root).
//! It cannot detect the newest records being cut off, nor whole oldest segments deleted by
//! someone with write access (that looks like the capacity limit): the forwarded copy covers
//! both. Destroyed keys may survive in old flash blocks of the (sealed) keyring file; their
//! confidentiality then rests on the master key.
//!
//! # On disk (`dir`, mode 0700)
//! - `seg-<first seq, 20 digits>.log`: a header then frames (segment.rs, frame.rs).
//! - `keyring`: per-segment keys, AES-256-GCM under a key derived from the master key.
//! - `seal.state`: the current epoch and its sealing key, same protection.
//! - `cursor`: the forwarder's acknowledged seq and the count of records overwritten unread.
//! - `lock`: held (flock) by the process that has the log open.
//! - `seg-….log.torn-<offset>`: bytes a crash recovery cut off, kept for inspection.
//!
//! Three kinds of frame share one chain: records, "epoch closed" seals (the last frame of each
//! epoch) and "segment end" frames (the last frame of every rolled segment, so a segment cut at
//! a frame boundary is still found).

mod capacity;
mod chain;
mod clock;
mod config;
mod cursor;
mod error;
mod frame;
mod keyring;
mod notice;
mod reader;
mod record;
mod recover;
mod seal;
mod segment;
mod state;
#[cfg(test)]
mod tests;
mod verify;
mod writer;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mamori_crypto::aead::Key;
use nix::fcntl::{Flock, FlockArg};
use time::OffsetDateTime;

pub use config::LogConfig;
pub use error::LogError;
pub use notice::LogNotice;
pub use reader::{Filter, Records};
pub use record::{PURGED, Record};
pub use seal::VerificationKey;
pub use state::{LogStatus, PurgeReport};
pub use verify::{Break, BreakReason, Start, TornTail, VerifyReport, verify};

use crate::{Event, Sink};
use error::io_at;
use keyring::{Keyring, MasterKeys};
use seal::{EpochKey, STATE_FILE};
use segment::LogId;
use state::{Command, Pending, Queue, Shared, View};
use writer::Writer;

/// A record's sequence number: 1, 2, 3, … for the life of the log, never reused.
pub type Seq = u64;

const LOCK_FILE: &str = "lock";

/// An open audit log. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct AuditLog {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    _lock: Flock<File>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Creates a new log in `dir` (created if missing, mode 0700) and opens it.
    ///
    /// Returns the [`VerificationKey`] — the only time it is available. Keep it away from the
    /// writing process (with the privileged parent, or offline): it can check every seal, and
    /// also forge them.
    pub fn create(
        dir: &Path,
        master: &Key,
        config: LogConfig,
    ) -> Result<(Self, VerificationKey), LogError> {
        config.validate()?;
        mamori_durable::create_dir(dir, 0o700).map_err(io_at(dir))?;
        let lock = lock(dir)?;
        let has_segments = !segment::list(dir).map_err(io_at(dir))?.is_empty();
        if dir.join(STATE_FILE).exists() || has_segments {
            return Err(LogError::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }
        let keys = MasterKeys::derive(master)?;
        let log_id = LogId::generate()?;
        let k0 = EpochKey::generate()?;
        let vk = VerificationKey::from_epoch_zero(log_id, &k0);
        Keyring::new(log_id).save(dir, &keys.keyring)?;
        k0.save(dir, &keys.state, &log_id)?;
        drop(k0);
        let log = Self::open_locked(dir, keys, config, lock)?;
        Ok((log, vk))
    }

    /// Opens the log in `dir`: repairs a torn tail, continues seq and chain, seals the previous
    /// epoch closed and starts a new one. Take [`AuditLog::take_notices`] right after: a repair
    /// is reported there.
    pub fn open(dir: &Path, master: &Key, config: LogConfig) -> Result<Self, LogError> {
        config.validate()?;
        if !dir.join(STATE_FILE).exists() {
            return Err(LogError::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let lock = lock(dir)?;
        Self::open_locked(dir, MasterKeys::derive(master)?, config, lock)
    }

    /// Opens the log in `dir`, creating it first if there is none; the verification key is
    /// returned only when it was created.
    pub fn open_or_create(
        dir: &Path,
        master: &Key,
        config: LogConfig,
    ) -> Result<(Self, Option<VerificationKey>), LogError> {
        if dir.join(STATE_FILE).exists() {
            Ok((Self::open(dir, master, config)?, None))
        } else {
            let (log, vk) = Self::create(dir, master, config)?;
            Ok((log, Some(vk)))
        }
    }

    fn open_locked(
        dir: &Path,
        keys: MasterKeys,
        config: LogConfig,
        lock: Flock<File>,
    ) -> Result<Self, LogError> {
        let (log_id, state_key) =
            EpochKey::load(dir, &keys.state)?.ok_or_else(|| LogError::NotFound {
                dir: dir.to_path_buf(),
            })?;
        let mut ring = Keyring::load(dir, &keys.keyring)?.unwrap_or_else(|| Keyring::new(log_id));
        if ring.log_id != log_id {
            return Err(LogError::LogIdMismatch);
        }
        let recovered = recover::recover(dir, log_id, &mut ring)?;
        let notices = recovered.notices.clone();
        let last_seq = recovered.last_seq;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            config,
            log_id,
            queue: Mutex::new(Queue {
                next_seq: last_seq + 1,
                durable_seq: last_seq,
                ..Queue::default()
            }),
            wake_writer: Condvar::new(),
            progress: Condvar::new(),
            view: RwLock::new(View::default()),
            notices: notice::NoticeBox::default(),
            cursor: cursor::Cursor::load(dir)?,
        });
        for n in notices {
            shared.notices.push(n);
        }
        let writer = Writer::start(
            Arc::clone(&shared),
            Arc::new(keys),
            ring,
            recovered,
            state_key,
        )?;
        let handle = std::thread::Builder::new()
            .name("mamori-audit-writer".into())
            .spawn(move || writer.run())
            .map_err(io_at(dir))?;
        Ok(Self {
            shared,
            writer: Some(handle),
            _lock: lock,
        })
    }

    /// Queues `event` and returns its seq at once; the log sets `seq`, `time` and `mono_ms`.
    ///
    /// Waits only while the queue is full, at most `enqueue_wait`; then the event is refused
    /// with [`LogError::QueueFull`] and counted (status and a notice), never silently lost.
    pub fn append(&self, event: Event) -> Result<Seq, LogError> {
        let sh = &self.shared;
        let mut q = sh.queue();
        if q.stop || q.writer_gone {
            return Err(LogError::Closed);
        }
        if q.items.len() >= sh.config.queue_records {
            let deadline = Instant::now() + sh.config.enqueue_wait;
            while q.items.len() >= sh.config.queue_records {
                let now = Instant::now();
                if now >= deadline || q.writer_gone || q.stop {
                    q.dropped_total += 1;
                    q.dropped_unreported += 1;
                    sh.wake_writer.notify_one();
                    return Err(LogError::QueueFull);
                }
                q = sh
                    .progress
                    .wait_timeout(q, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let seq = q.next_seq;
        q.next_seq += 1;
        // Stamped under the lock, so time follows seq order (unless the clock itself steps).
        q.items.push_back(Pending {
            seq,
            utc_ms: clock::utc_ms(),
            mono_ms: clock::mono_ms(),
            event,
        });
        if q.writer_waiting {
            sh.wake_writer.notify_one();
        }
        Ok(seq)
    }

    /// Like [`AuditLog::append`], then waits until the record is fsynced (group commit: one
    /// fsync serves every waiter), at most `durable_wait`. On [`LogError::NotDurable`] the
    /// record is still queued and will be written.
    pub fn append_durable(&self, event: Event) -> Result<Seq, LogError> {
        let seq = self.append(event)?;
        self.wait_durable(seq)?;
        Ok(seq)
    }

    /// Waits until every record accepted so far is fsynced, at most `durable_wait`.
    pub fn sync(&self) -> Result<(), LogError> {
        let last = self.shared.queue().next_seq - 1;
        self.wait_durable(last)
    }

    fn wait_durable(&self, seq: Seq) -> Result<(), LogError> {
        let sh = &self.shared;
        let deadline = Instant::now() + sh.config.durable_wait;
        let mut q = sh.queue();
        while q.durable_seq < seq {
            if q.writer_gone {
                return Err(LogError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LogError::NotDurable { seq });
            }
            q = sh
                .progress
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(())
    }

    /// Space, range, epoch, forwarding and failure state.
    pub fn status(&self) -> LogStatus {
        let view = self.shared.view();
        let (next_seq, durable_seq, queued, dropped, write_error) = {
            let q = self.shared.queue();
            (
                q.next_seq,
                q.durable_seq,
                q.items.len(),
                q.dropped_total,
                q.failing.clone(),
            )
        };
        let cursor = self.shared.cursor.get();
        let used = view.used_bytes();
        let capacity = self.shared.config.capacity_bytes;
        let first_seq = view
            .segments
            .iter()
            .find(|s| s.last_seq.is_some())
            .map(|s| s.first_seq);
        LogStatus {
            used_bytes: used,
            capacity_bytes: capacity,
            percent: capacity::percent(used, capacity),
            first_seq,
            last_seq: (next_seq > 1).then(|| next_seq - 1),
            durable_seq,
            queued,
            epoch: view.epoch,
            segments: view.segments.len(),
            acknowledged: cursor.acknowledged,
            overwritten_unread: cursor.overwritten_unread,
            dropped,
            write_error,
        }
    }

    /// Records that the forwarder has delivered everything up to `seq` (persisted; never moves
    /// back). Records overwritten after this seq are counted as overwritten unread.
    pub fn set_acknowledged(&self, seq: Seq) -> Result<(), LogError> {
        self.shared.cursor.acknowledge(seq)
    }

    /// The notices since the last call (capacity, overwrites, drops, failures, repairs). Log
    /// an audit event for each as fits; appending from here never deadlocks.
    pub fn take_notices(&self) -> Vec<LogNotice> {
        self.shared.notices.take()
    }

    /// Like [`AuditLog::take_notices`], waiting up to `timeout` for one, for a notice thread.
    pub fn wait_notices(&self, timeout: Duration) -> Vec<LogNotice> {
        self.shared.notices.wait(timeout)
    }

    /// Records from `from_seq` on, decrypted, in seq order, as an iterator (for export and for
    /// the forwarder). Sees what was fsynced when it was created.
    pub fn records(&self, from_seq: Seq) -> Records {
        Records::new(
            self.shared.log_id,
            self.shared.view().segments,
            from_seq,
            (i64::MIN, i64::MAX),
        )
    }

    /// Up to `limit` records from `from_seq` on. Call [`AuditLog::sync`] first to see records
    /// just appended.
    pub fn read(&self, from_seq: Seq, limit: usize) -> Result<Vec<Record>, LogError> {
        self.records(from_seq).take(limit).collect()
    }

    /// The first `limit` records matching `filter`, oldest first.
    pub fn query(&self, filter: &Filter, limit: usize) -> Result<Vec<Record>, LogError> {
        reader::query(
            self.shared.log_id,
            self.shared.view().segments,
            filter,
            limit,
        )
    }

    /// The newest `limit` records matching `filter`, oldest first (what a list view shows).
    pub fn tail(&self, filter: &Filter, limit: usize) -> Result<Vec<Record>, LogError> {
        reader::tail(
            self.shared.log_id,
            self.shared.view().segments,
            filter,
            limit,
        )
    }

    /// Writes every record matching `filter` to `out` as JSON lines; returns how many.
    pub fn export_json_lines(&self, filter: &Filter, out: &mut dyn Write) -> Result<u64, LogError> {
        reader::export_json_lines(self.shared.log_id, self.shared.view().segments, filter, out)
    }

    /// Destroys the personal data (actor, source) of every segment whose records are all older
    /// than `before` (S3.1-41), by destroying the segments' personal keys. The current segment
    /// is closed first if all of it qualifies. Records keep everything else; the chain and the
    /// seals still verify. Log an audit event for it (who, `before`, the report).
    pub fn purge_personal_data(&self, before: OffsetDateTime) -> Result<PurgeReport, LogError> {
        let (tx, rx) = mpsc::channel();
        {
            let mut q = self.shared.queue();
            if q.writer_gone {
                return Err(LogError::Closed);
            }
            q.commands.push(Command::Purge {
                before_ms: clock::to_ms(before),
                reply: tx,
            });
            self.shared.wake_writer.notify_one();
        }
        rx.recv().map_err(|_| LogError::Closed)?
    }

    /// Verifies the live log up to what is fsynced: structure, chain, seals (with
    /// `verification_key`) and decryption (always: the open log has the keys).
    pub fn verify(&self, verification_key: Option<&VerificationKey>) -> VerifyReport {
        let view = self.shared.view();
        let inputs = view
            .segments
            .iter()
            .map(|s| verify::Input {
                name_seq: s.first_seq,
                path: s.path.clone(),
                limit: Some(s.len),
            })
            .collect();
        let keys = |first: Seq| -> Option<verify::SegmentKeys> {
            view.segments
                .iter()
                .find(|s| s.first_seq == first)
                .map(|s| (Arc::clone(&s.data_key), s.personal_key.clone()))
        };
        verify::verify_inputs(inputs, verification_key, Some(&keys))
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Stops the writer after it wrote everything queued. Errors if records were left unwritten
    /// (writing failed until the end).
    pub fn close(mut self) -> Result<(), LogError> {
        self.stop();
        let q = self.shared.queue();
        if q.durable_seq + 1 < q.next_seq {
            return Err(LogError::WriteFailing(format!(
                "records {}..{} were not written",
                q.durable_seq + 1,
                q.next_seq - 1
            )));
        }
        Ok(())
    }

    fn stop(&mut self) {
        {
            let mut q = self.shared.queue();
            q.stop = true;
            self.shared.wake_writer.notify_one();
        }
        if let Some(h) = self.writer.take()
            && h.join().is_err()
        {
            tracing::error!("audit log writer panicked");
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Sink for AuditLog {
    /// Appends and, while the log writes normally, waits for the fsync (the [`Sink`] contract:
    /// durable before the action is confirmed). While writing fails it does not wait: the event
    /// is queued (or refused and counted), so a full disk slows no login. Failures go to the
    /// tracing log and are reported by the log itself (status, notices).
    fn record(&self, event: Event) {
        let kind = event.event;
        let failing = self.shared.queue().failing.is_some();
        let result = if failing {
            self.append(event).map(drop)
        } else {
            self.append_durable(event).map(drop)
        };
        if let Err(e) = result {
            tracing::error!(event = ?kind, error = %e, "audit record not confirmed durable");
        }
    }
}

/// Takes the directory's lock, so two processes never write one log.
fn lock(dir: &Path) -> Result<Flock<File>, LogError> {
    let path: PathBuf = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_at(&path))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| LogError::Locked {
        dir: dir.to_path_buf(),
    })
}
