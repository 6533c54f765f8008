//! The writer thread: seals, chains and appends records in group commits.
//!
//! Callers only enqueue (state.rs); this thread owns the files. Each round it takes what is
//! queued (up to a batch), frames it into one buffer, writes it with one `write` and one
//! `fdatasync`, then wakes everyone waiting for durability: at high load one fsync covers
//! thousands of records, at low load a record is on disk within one fsync.
//!
//! When a write fails (disk full, I/O error) the framed bytes are kept, the file is cut back to
//! its last good length and the write retried every `retry_interval`; new events wait in the
//! bounded queue meanwhile and, once that is full, are refused and counted (never silently
//! lost). The sealing key still evolves during an outage (its "epoch closed" seal waits in the
//! buffer with the records), so an outage does not stretch the forgery window.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::Seq;
use super::capacity::{self, Thresholds};
use super::chain::ChainHash;
use super::clock;
use super::error::{LogError, io_at};
use super::frame::{self, FrameHead, FrameKind};
use super::keyring::{Closed, Keyring, MasterKeys};
use super::notice::LogNotice;
use super::record::{self, Part, Plain};
use super::recover::Recovered;
use super::seal::EpochKey;
use super::segment::{self, HEADER_LEN, SegmentHeader};
use super::state::{Command, Pending, PurgeReport, SegView, Shared, View};

/// The writer's state; lives on the writer thread.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    keys: Arc<MasterKeys>,
    keyring: Keyring,
    /// Oldest first; when `cur` is set, the last one is it.
    segs: Vec<SegView>,
    cur: Option<Current>,
    /// The hash of the last frame framed (in `pending` or on disk).
    chain: ChainHash,
    /// The last record framed.
    last_seq: Seq,
    epoch_key: EpochKey,
    next_evolve: Instant,
    /// The evolved key is not persisted yet (it is, after the close seal is on disk).
    state_dirty: bool,
    /// Framed bytes not yet on disk.
    pending: Vec<u8>,
    /// Events taken from the queue, not yet framed.
    carry: VecDeque<Pending>,
    scratch: Vec<u8>,
    thresholds: Thresholds,
    failed_attempts: u64,
}

/// The segment being appended to.
struct Current {
    file: File,
    first_seq: Seq,
    /// Bytes known good on disk.
    len: u64,
    /// A failed write may have left bytes after `len`.
    dirty: bool,
    /// UTC day of its first record; `None` while it has none.
    day: Option<i64>,
    newest_utc_ms: Option<i64>,
    /// Its end frame is framed: nothing else may follow.
    ended: bool,
}

impl Writer {
    /// Takes over the recovered log and starts a fresh epoch: the epoch found is sealed closed,
    /// the key evolves and the new state is persisted, all before `open` returns.
    pub(crate) fn start(
        shared: Arc<Shared>,
        keys: Arc<MasterKeys>,
        keyring: Keyring,
        rec: Recovered,
        state_key: EpochKey,
    ) -> Result<Self, LogError> {
        let mut epoch_key = state_key;
        if let Some(last) = rec.last_frame {
            // A state older than the log (a crash between the close seal and persisting the
            // evolved key) is evolved forward; HMAC only goes that way.
            epoch_key.advance_to(last.epoch)?;
            if last.epoch == epoch_key.epoch() {
                if !epoch_key.check(&last.hash, &last.tag) {
                    return Err(LogError::SealStateMismatch);
                }
            } else if last.kind != FrameKind::EpochClose {
                // The state is ahead of an epoch that was never sealed closed: the writer never
                // persists a key before the close seal is on disk, so the log was cut or the
                // state replaced.
                return Err(LogError::SealStateMismatch);
            }
        }
        if rec.keyring_changed {
            keyring.save(&shared.dir, &keys.keyring)?;
        }
        let cur = rec.tail.map(|t| Current {
            file: t.file,
            first_seq: t.first_seq,
            len: t.len,
            dirty: false,
            day: t.day,
            newest_utc_ms: t.newest_utc_ms,
            ended: false,
        });
        let next_evolve = Instant::now() + shared.config.epoch_interval;
        let mut w = Writer {
            shared,
            keys,
            keyring,
            segs: rec.segments,
            cur,
            chain: rec.chain,
            last_seq: rec.last_seq,
            epoch_key,
            next_evolve,
            state_dirty: false,
            pending: Vec::with_capacity(1 << 16),
            carry: VecDeque::new(),
            scratch: Vec::with_capacity(512),
            thresholds: Thresholds::default(),
            failed_attempts: 0,
        };
        if !w.writable() {
            w.roll()?;
        }
        if !rec
            .last_frame
            .is_some_and(|f| f.kind == FrameKind::EpochClose)
        {
            w.frame_seal(FrameKind::EpochClose);
        }
        w.epoch_key.evolve()?;
        w.state_dirty = true;
        w.flush()?;
        w.publish();
        Ok(w)
    }

    /// The thread body: until stopped and drained.
    pub(crate) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let mut shutdown_attempts = 0u32;
        loop {
            let (commands, stop) = self.wait_for_work();
            let result = self.work();
            self.answer(commands, &result);
            self.report(result);
            if stop {
                let queue_empty = shared.queue().items.is_empty();
                if queue_empty && self.idle() {
                    break;
                }
                if self.failed_attempts > 0 {
                    shutdown_attempts += 1;
                    if shutdown_attempts >= 3 {
                        let lost = shared.queue().items.len() + self.carry.len();
                        tracing::error!(
                            lost,
                            "audit log closed while writing fails: queued events are lost"
                        );
                        break;
                    }
                }
            }
        }
        let mut q = shared.queue();
        q.writer_gone = true;
        shared.progress.notify_all();
    }

    fn idle(&self) -> bool {
        self.carry.is_empty() && self.pending.is_empty()
    }

    fn writable(&self) -> bool {
        self.cur.as_ref().is_some_and(|c| !c.ended)
    }

    /// Blocks until there is something to do, then takes a batch of events and the commands.
    fn wait_for_work(&mut self) -> (Vec<Command>, bool) {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let mut q = shared.queue();
        if self.failed_attempts > 0 {
            // Writing fails: pause before retrying, and take no new events meanwhile (they
            // wait, bounded, in the queue).
            q.writer_waiting = true;
            q = shared
                .wake_writer
                .wait_timeout_while(q, config.retry_interval, |q| !q.stop)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            q.writer_waiting = false;
        } else {
            while q.items.is_empty() && q.commands.is_empty() && !q.stop && self.idle() {
                let now = Instant::now();
                if now >= self.next_evolve {
                    break;
                }
                q.writer_waiting = true;
                q = shared
                    .wake_writer
                    .wait_timeout(q, self.next_evolve - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                q.writer_waiting = false;
            }
            let room = config.batch_records.saturating_sub(self.carry.len());
            let n = q.items.len().min(room);
            if n > 0 {
                self.carry.extend(q.items.drain(..n));
                shared.progress.notify_all();
            }
        }
        if q.dropped_unreported > 0 {
            let count = std::mem::take(&mut q.dropped_unreported);
            tracing::warn!(count, "audit events refused: the log cannot keep up");
            shared.notices.push(LogNotice::EventsDropped {
                count,
                total: q.dropped_total,
            });
        }
        (std::mem::take(&mut q.commands), q.stop)
    }

    /// One round: leftovers, a due evolution, the batch, one flush.
    fn work(&mut self) -> Result<(), LogError> {
        if Instant::now() >= self.next_evolve {
            // The close seal needs a segment to go into (a failed roll may have left none).
            if !self.writable() {
                self.roll()?;
            }
            self.evolve()?;
        }
        self.flush()?;
        while let Some(item) = self.carry.pop_front() {
            if let Err(e) = self.place(&item) {
                self.carry.push_front(item);
                return Err(e);
            }
        }
        self.flush()
    }

    fn answer(&mut self, commands: Vec<Command>, result: &Result<(), LogError>) {
        for c in commands {
            match c {
                Command::Purge { before_ms, reply } => {
                    let r = match result {
                        Ok(()) => self.purge(before_ms),
                        Err(e) => Err(LogError::WriteFailing(e.to_string())),
                    };
                    // The caller may have given up waiting; nothing to do then.
                    let _ = reply.send(r);
                }
            }
        }
    }

    fn report(&mut self, result: Result<(), LogError>) {
        let shared = Arc::clone(&self.shared);
        match result {
            Ok(()) if self.failed_attempts > 0 => {
                shared.notices.push(LogNotice::WriteRecovered {
                    failed_attempts: self.failed_attempts,
                });
                tracing::info!(
                    failed_attempts = self.failed_attempts,
                    "audit log writes again"
                );
                self.failed_attempts = 0;
                shared.queue().failing = None;
            }
            Ok(()) => {}
            Err(e) => {
                self.failed_attempts += 1;
                let error = e.to_string();
                if self.failed_attempts == 1 {
                    tracing::error!(%error, "audit log cannot write; retrying");
                    shared.notices.push(LogNotice::WriteFailing {
                        error: error.clone(),
                    });
                }
                shared.queue().failing = Some(error);
            }
        }
    }

    /// Seals, chains and buffers one record, rolling to a new segment first when needed.
    fn place(&mut self, item: &Pending) -> Result<(), LogError> {
        debug_assert_eq!(item.seq, self.last_seq + 1);
        let plain = Plain::of(&item.event);
        let (data_len, personal_len) = plain.sealed_lens();
        if self.needs_roll(item.utc_ms, frame::encoded_len(data_len, personal_len)) {
            self.roll()?;
        }
        let (Some(cur), Some(view)) = (self.cur.as_mut(), self.segs.last()) else {
            return Err(LogError::WriteFailing("no segment to write to".into()));
        };
        let head = FrameHead {
            kind: FrameKind::Record,
            seq: item.seq,
            epoch: self.epoch_key.epoch(),
            utc_ms: item.utc_ms,
            mono_ms: item.mono_ms,
        };
        let log_id = &self.shared.log_id;
        let data = view.data_key.seal(
            &record::aad(Part::Data, log_id, cur.first_seq, &head),
            &plain.data,
        )?;
        let personal = match (&plain.personal, &view.personal_key) {
            (None, _) => Vec::new(),
            (Some(p), Some(k)) => k.seal(
                &record::aad(Part::Personal, log_id, cur.first_seq, &head),
                p,
            )?,
            // The current segment's personal key is never purged (purge rolls first).
            (Some(_), None) => {
                return Err(LogError::WriteFailing(
                    "the current segment has no personal key".into(),
                ));
            }
        };
        self.chain = frame::encode(
            &mut self.pending,
            &head,
            &data,
            &personal,
            &self.chain,
            &self.epoch_key,
            &mut self.scratch,
        );
        self.last_seq = item.seq;
        cur.day.get_or_insert(clock::day_of(item.utc_ms));
        cur.newest_utc_ms = Some(
            cur.newest_utc_ms
                .map_or(item.utc_ms, |t| t.max(item.utc_ms)),
        );
        Ok(())
    }

    /// Whether a record of `frame_len` bytes at `utc_ms` needs a new segment: no writable
    /// segment, the size limit (keeping room for the end frame), or a new UTC day. A segment
    /// without records is never rolled, so segments are never empty of records.
    fn needs_roll(&self, utc_ms: i64, frame_len: usize) -> bool {
        let Some(cur) = &self.cur else {
            return true;
        };
        if cur.ended {
            return true;
        }
        let Some(day) = cur.day else {
            return false;
        };
        let after =
            cur.len + bytes(self.pending.len()) + bytes(frame_len) + bytes(frame::FIXED_LEN);
        after > self.shared.config.segment_bytes || day != clock::day_of(utc_ms)
    }

    /// Ends the current segment and starts the next. Every step can be retried after a failure:
    /// end frame (durable) → capacity → keyring (durable) → new segment file (durable).
    fn roll(&mut self) -> Result<(), LogError> {
        if self.writable() {
            self.frame_seal(FrameKind::SegmentEnd);
            if let Some(c) = self.cur.as_mut() {
                c.ended = true;
            }
        }
        self.flush()?;
        if let Some(c) = self.cur.take()
            && let Some(k) = self.keyring.segments.get_mut(&c.first_seq)
        {
            k.closed = Some(Closed {
                last_seq: self.last_seq,
                newest_utc_ms: c.newest_utc_ms,
            });
        }
        self.make_room()?;
        let dir = self.shared.dir.clone();
        let first = self.last_seq + 1;
        let now = clock::utc_ms();
        if !self.keyring.segments.contains_key(&first) {
            self.keyring.add(first, now)?;
        }
        self.keyring.save(&dir, &self.keys.keyring)?;
        let header = SegmentHeader {
            log_id: self.shared.log_id,
            first_seq: first,
            anchor: self.chain,
            epoch: self.epoch_key.epoch(),
            created_utc_ms: now,
            created_mono_ms: clock::mono_ms(),
        }
        .encode(&self.epoch_key);
        let path = dir.join(segment::file_name(first));
        let file = segment::create(&path, &header).map_err(io_at(&path))?;
        let keys = self
            .keyring
            .segments
            .get(&first)
            .ok_or_else(|| LogError::WriteFailing("new segment keys missing".into()))?;
        self.segs.push(SegView {
            first_seq: first,
            path,
            len: bytes(HEADER_LEN),
            last_seq: None,
            newest_utc_ms: None,
            data_key: Arc::clone(&keys.data),
            personal_key: keys.personal.clone(),
        });
        self.cur = Some(Current {
            file,
            first_seq: first,
            len: bytes(HEADER_LEN),
            dirty: false,
            day: None,
            newest_utc_ms: None,
            ended: false,
        });
        self.publish();
        Ok(())
    }

    /// Deletes the oldest segments until a full new segment fits in the capacity.
    fn make_room(&mut self) -> Result<(), LogError> {
        let shared = Arc::clone(&self.shared);
        let (capacity, need) = (shared.config.capacity_bytes, shared.config.segment_bytes);
        let mut removed = false;
        while !self.segs.is_empty() && self.used() + need > capacity {
            let oldest = &self.segs[0];
            match std::fs::remove_file(&oldest.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&oldest.path)(e)),
            }
            for extra in segment::companions(&shared.dir, oldest.first_seq) {
                let _ = std::fs::remove_file(extra);
            }
            let next_first = self.segs.get(1).map_or(self.last_seq + 1, |s| s.first_seq);
            let oldest = self.segs.remove(0);
            self.keyring.segments.remove(&oldest.first_seq);
            removed = true;
            let acknowledged = shared.cursor.get().acknowledged;
            let unread = capacity::unread(oldest.first_seq, next_first, acknowledged);
            if let Err(e) = shared.cursor.add_overwritten_unread(unread) {
                tracing::warn!(error = %e, "audit log: overwrite count not persisted");
            }
            if unread > 0 {
                tracing::warn!(
                    unread,
                    "audit records overwritten before they were forwarded"
                );
            }
            shared.notices.push(LogNotice::RecordsOverwritten {
                records: next_first - oldest.first_seq,
                unread,
                first_kept_seq: next_first,
            });
        }
        if removed {
            mamori_durable::sync_dir(&shared.dir).map_err(io_at(&shared.dir))?;
            self.publish();
        }
        Ok(())
    }

    /// Seals the current epoch closed and moves to the next. The old key is overwritten in
    /// memory at once; the new one is persisted after the close seal is on disk (flush), so a
    /// crash in between leaves the older key on disk, from which `open` derives forward.
    fn evolve(&mut self) -> Result<(), LogError> {
        self.frame_seal(FrameKind::EpochClose);
        self.epoch_key.evolve()?;
        self.state_dirty = true;
        self.next_evolve = Instant::now() + self.shared.config.epoch_interval;
        Ok(())
    }

    /// Buffers a seal frame (epoch closed, segment end) carrying the last record's seq.
    fn frame_seal(&mut self, kind: FrameKind) {
        let head = FrameHead {
            kind,
            seq: self.last_seq,
            epoch: self.epoch_key.epoch(),
            utc_ms: clock::utc_ms(),
            mono_ms: clock::mono_ms(),
        };
        self.chain = frame::encode(
            &mut self.pending,
            &head,
            &[],
            &[],
            &self.chain,
            &self.epoch_key,
            &mut self.scratch,
        );
    }

    /// Writes and fsyncs the buffer, then publishes the progress.
    fn flush(&mut self) -> Result<(), LogError> {
        if let Some(cur) = self.cur.as_mut()
            && (!self.pending.is_empty() || cur.dirty)
        {
            let path = self.segs.last().map(|s| s.path.clone()).unwrap_or_default();
            if cur.dirty {
                cur.file.set_len(cur.len).map_err(io_at(&path))?;
                cur.dirty = false;
            }
            if let Err(e) = cur
                .file
                .write_all(&self.pending)
                .and_then(|()| cur.file.sync_data())
            {
                // Whatever part reached the file is cut off before the retry (fsync errors may
                // also have dropped dirty pages: rewriting is the only safe answer).
                cur.dirty = true;
                return Err(io_at(&path)(e));
            }
            cur.len += bytes(self.pending.len());
            self.pending.clear();
            if let Some(v) = self.segs.last_mut() {
                v.len = cur.len;
                v.newest_utc_ms = cur.newest_utc_ms;
                if cur.day.is_some() {
                    v.last_seq = Some(self.last_seq);
                }
            }
            // Readers must see the new length before anyone is told the records are durable.
            self.publish();
            {
                let mut q = self.shared.queue();
                q.durable_seq = q.durable_seq.max(self.last_seq);
            }
            self.shared.progress.notify_all();
            let (used, capacity) = (self.used(), self.shared.config.capacity_bytes);
            for n in self.thresholds.check(used, capacity) {
                tracing::warn!(%n, "audit log capacity");
                self.shared.notices.push(n);
            }
        }
        if self.state_dirty && self.pending.is_empty() {
            self.epoch_key
                .save(&self.shared.dir, &self.keys.state, &self.shared.log_id)?;
            self.state_dirty = false;
        }
        Ok(())
    }

    /// Destroys the personal keys of segments whose records are all older than `before_ms`.
    /// The current segment is rolled first when all of it qualifies, so its key can go too.
    fn purge(&mut self, before_ms: i64) -> Result<PurgeReport, LogError> {
        if self
            .cur
            .as_ref()
            .is_some_and(|c| !c.ended && c.newest_utc_ms.is_some_and(|t| t < before_ms))
        {
            self.roll()?;
        }
        let mut ring = self.keyring.clone();
        let mut report = PurgeReport::default();
        for (first, k) in &mut ring.segments {
            let Some(closed) = k.closed else {
                continue;
            };
            if k.personal.is_none() || closed.newest_utc_ms.is_some_and(|t| t >= before_ms) {
                continue;
            }
            k.personal = None;
            report.segments += 1;
            if closed.last_seq >= *first {
                report.records += closed.last_seq - first + 1;
                report.up_to_seq = report.up_to_seq.max(Some(closed.last_seq));
            }
        }
        if report.segments > 0 {
            ring.save(&self.shared.dir, &self.keys.keyring)?;
            self.keyring = ring;
            for v in &mut self.segs {
                if let Some(k) = self.keyring.segments.get(&v.first_seq) {
                    v.personal_key = k.personal.clone();
                }
            }
            self.publish();
        }
        Ok(report)
    }

    fn used(&self) -> u64 {
        self.segs.iter().map(|s| s.len).sum::<u64>() + bytes(self.pending.len())
    }

    fn publish(&self) {
        self.shared.publish(View {
            segments: self.segs.clone(),
            epoch: self.epoch_key.epoch(),
        });
    }
}

fn bytes(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
