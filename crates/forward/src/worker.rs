//! The task of one collector: connect, deliver batches from the cursor, wait for each to be
//! acknowledged, save the cursor, and on any failure wait (exponential backoff with jitter)
//! and start again from the saved cursor.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backlog::Backlog;
use crate::config::{Prepared, StartAt, Tuning};
use crate::conn::{self, Failure, Stream};
use crate::status::{CollectorStatus, ErrorKind, LinkState, StatusError};
use crate::{cursor, outq, rfc5424};

pub(crate) struct Worker {
    pub p: Prepared,
    pub tuning: Tuning,
    pub backlog: Arc<dyn Backlog>,
    pub cursor_path: PathBuf,
    pub status: watch::Sender<CollectorStatus>,
    pub shutdown: watch::Receiver<bool>,
}

/// What the task keeps between sessions.
struct State {
    /// The next sequence number to deliver; `None` until the collector has a position.
    cursor: Option<u64>,
    failures: u32,
}

/// Why a session ended without a failure.
struct Stopped;

impl Worker {
    pub(crate) async fn run(mut self, cursor: Option<u64>) {
        let mut state = State {
            cursor,
            failures: 0,
        };

        while !*self.shutdown.borrow() {
            self.status.send_modify(|s| {
                s.state = LinkState::Connecting;
                s.next_attempt = None;
            });
            let connected = tokio::select! {
                r = conn::connect(&self.p, self.tuning.connect_timeout) => r,
                _ = self.shutdown.changed() => break,
            };
            let outcome = match connected {
                Ok(stream) => self.session(stream, &mut state).await,
                Err(f) => Err(f),
            };
            match outcome {
                Ok(Stopped) => break,
                Err(f) => {
                    self.failed(&mut state, f, true);
                    if self.back_off(state.failures).await.is_err() {
                        break;
                    }
                }
            }
        }
        self.status.send_modify(|s| {
            s.state = LinkState::Stopped;
            s.connected = false;
            s.next_attempt = None;
            s.tls_version = None;
            s.cipher_suite = None;
            s.connected_since = None;
        });
    }

    /// A failure that ended (or prevented) a session.
    fn failed(&self, state: &mut State, f: Failure, counts: bool) {
        if counts {
            state.failures = state.failures.saturating_add(1);
        }
        let failures = state.failures;
        self.status.send_modify(|s| {
            s.connected = false;
            s.tls_version = None;
            s.cipher_suite = None;
            s.connected_since = None;
            s.consecutive_failures = failures;
        });
        self.note(f);
    }

    /// Shows a failure as the latest error.
    fn note(&self, f: Failure) {
        tracing::warn!(collector = %self.p.id, kind = ?f.kind, "log forwarding: {}", f.message);
        self.status.send_modify(|s| {
            s.last_error = Some(StatusError {
                kind: f.kind,
                message: f.message,
                at: OffsetDateTime::now_utc(),
            });
        });
    }

    /// Waits before the next attempt; `Err` when the forwarder stops meanwhile.
    async fn back_off(&mut self, failures: u32) -> Result<(), ()> {
        let wait = backoff_delay(&self.tuning, failures, jitter());
        let at = OffsetDateTime::now_utc() + wait;
        self.status.send_modify(|s| {
            s.state = LinkState::Waiting;
            s.next_attempt = Some(at);
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = self.shutdown.changed() => Err(()),
        }
    }

    /// Delivers records until the connection fails (`Err`) or the forwarder stops.
    async fn session(&mut self, mut stream: Stream, state: &mut State) -> Result<Stopped, Failure> {
        let opened = Instant::now();
        let confirm_at = opened + self.tuning.confirm_after;
        let mut confirmed = false;
        let (version, suite) = stream.tls_info();
        tracing::info!(collector = %self.p.id, version = ?version, suite = ?suite, "log forwarding: connected");
        self.status.send_modify(|s| {
            s.state = LinkState::Connected;
            s.connected = true;
            s.tls_version = version;
            s.cipher_suite = suite;
            s.connected_since = Some(OffsetDateTime::now_utc());
            s.next_attempt = None;
        });
        let mut new_records = self.backlog.subscribe();
        let mut buf = vec![0u8; 4096];
        loop {
            if *self.shutdown.borrow() {
                stream.close().await;
                return Ok(Stopped);
            }
            let last = self.backlog.last_seq();
            let next = self.position(state, last).await;
            if next <= last {
                let mut records = self.read(next).await?;
                // Never go back, whatever the backlog returns.
                records.retain(|r| r.seq >= next);
                if !records.is_empty() {
                    let (bytes, last_in_batch, count, skipped) =
                        self.batch(state.cursor, next, &records);
                    self.send(&mut stream, &bytes, !confirmed).await?;
                    let not_before = if confirmed { opened } else { confirm_at };
                    if self.wait_acked(&mut stream, not_before, !confirmed).await? {
                        stream.close().await;
                        return Ok(Stopped);
                    }
                    if !confirmed {
                        confirmed = true;
                        state.failures = 0;
                    }
                    self.delivered(state, last_in_batch + 1, count, skipped)
                        .await;
                    continue;
                }
            }
            // Caught up: wait for new records, watch the connection, confirm it once it has
            // stayed up long enough.
            if !confirmed && Instant::now() >= confirm_at {
                confirmed = true;
                state.failures = 0;
                self.status.send_modify(|s| s.consecutive_failures = 0);
            }
            let wake = if confirmed {
                Instant::now() + Duration::from_secs(3600)
            } else {
                confirm_at
            };
            tokio::select! {
                _ = self.shutdown.changed() => {}
                changed = new_records.changed() => {
                    if changed.is_err() {
                        // The log is gone (the daemon is stopping): poll gently until stopped.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                r = stream.read(&mut buf) => match r {
                    Ok(0) => return Err(conn::closed_by_peer(!confirmed)),
                    Ok(_) => {} // collectors have nothing to say; ignore it
                    Err(e) => return Err(conn::classify_session(&e, !confirmed)),
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The next sequence number to deliver, giving a new collector its position.
    async fn position(&self, state: &mut State, last: u64) -> u64 {
        match state.cursor {
            Some(c) if c <= last.saturating_add(1) => c,
            Some(c) => {
                // The log holds fewer records than were delivered: it was reset or replaced.
                // Deliver what it holds rather than wait for numbers it may never reach.
                self.note(Failure::new(
                    ErrorKind::Cursor,
                    format!(
                        "the cursor ({c}) is past the end of the log ({last}): the log was \
                         reset; delivering from its oldest record"
                    ),
                ));
                state.cursor = None;
                1
            }
            None => match self.p.start_at {
                StartAt::Oldest => 1,
                StartAt::Newest => {
                    let c = last.saturating_add(1);
                    state.cursor = Some(c);
                    self.save(c).await;
                    c
                }
            },
        }
    }

    async fn read(&self, from: u64) -> Result<Vec<crate::ForwardRecord>, Failure> {
        let backlog = self.backlog.clone();
        let limit = self.tuning.batch_records;
        match tokio::task::spawn_blocking(move || backlog.read_from(from, limit)).await {
            Ok(Ok(records)) => Ok(records),
            Ok(Err(e)) => Err(Failure::new(ErrorKind::Backlog, e.to_string())),
            Err(e) => Err(Failure::new(
                ErrorKind::Backlog,
                format!("reading the audit log: {e}"),
            )),
        }
    }

    /// Frames records into one batch of at most `batch_bytes` (at least one record). Returns
    /// the bytes, the last sequence number in it, how many records, and how many sequence
    /// numbers were skipped (overwritten before delivery).
    fn batch(
        &self,
        cursor: Option<u64>,
        next: u64,
        records: &[crate::ForwardRecord],
    ) -> (Vec<u8>, u64, u64, u64) {
        let mut bytes = Vec::new();
        let mut expected = next;
        let mut last = next.saturating_sub(1);
        let mut count = 0u64;
        let mut skipped = 0u64;
        for r in records {
            if count > 0 && bytes.len() >= self.tuning.batch_bytes {
                break;
            }
            if r.seq > expected && (cursor.is_some() || count > 0) {
                skipped += r.seq - expected;
            }
            let message =
                rfc5424::format_message(r, self.p.facility, self.tuning.max_message_bytes);
            rfc5424::frame(&message, &mut bytes);
            count += 1;
            last = r.seq;
            expected = r.seq + 1;
        }
        (bytes, last, count, skipped)
    }

    async fn send(&self, stream: &mut Stream, bytes: &[u8], fresh: bool) -> Result<(), Failure> {
        match tokio::time::timeout(self.tuning.ack_timeout, stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(conn::classify_session(&e, fresh)),
            Err(_) => Err(Failure::new(
                ErrorKind::NotAcknowledged,
                format!(
                    "the collector took no data for {} s (it stopped reading)",
                    self.tuning.ack_timeout.as_secs_f32()
                ),
            )),
        }
    }

    /// Waits until the collector's TCP has acknowledged every byte written (and, for a fresh
    /// session, until `not_before`), watching the connection meanwhile. `Ok(true)` if the
    /// forwarder stopped first.
    async fn wait_acked(
        &mut self,
        stream: &mut Stream,
        not_before: Instant,
        fresh: bool,
    ) -> Result<bool, Failure> {
        let deadline = Instant::now() + self.tuning.ack_timeout;
        let mut delay = Duration::from_micros(200);
        let mut buf = [0u8; 1024];
        loop {
            let pending = outq::unacknowledged(stream.tcp())
                .map_err(|e| conn::classify_session(&e, fresh))?;
            let now = Instant::now();
            if pending == 0 && now >= not_before {
                return Ok(false);
            }
            if now >= deadline {
                return Err(Failure::new(
                    ErrorKind::NotAcknowledged,
                    format!(
                        "the collector's TCP left {pending} bytes unacknowledged for {} s",
                        self.tuning.ack_timeout.as_secs_f32()
                    ),
                ));
            }
            let wake = if pending == 0 {
                not_before
            } else {
                now + delay
            };
            delay = (delay * 2).min(Duration::from_millis(20));
            tokio::select! {
                _ = self.shutdown.changed() => return Ok(true),
                r = stream.read(&mut buf) => match r {
                    Ok(0) => return Err(conn::closed_by_peer(fresh)),
                    Ok(_) => {}
                    Err(e) => return Err(conn::classify_session(&e, fresh)),
                },
                _ = tokio::time::sleep_until(wake.min(deadline)) => {}
            }
        }
    }

    async fn delivered(&self, state: &mut State, next: u64, count: u64, skipped: u64) {
        state.cursor = Some(next);
        self.save(next).await;
        if skipped > 0 {
            tracing::warn!(collector = %self.p.id, skipped, "log forwarding: records were overwritten before delivery");
        }
        self.status.send_modify(|s| {
            s.cursor = next;
            s.delivered += count;
            s.skipped += skipped;
            s.last_success = Some(OffsetDateTime::now_utc());
            s.consecutive_failures = 0;
        });
    }

    /// Saves the cursor. A failure is shown but does not stop delivery: at worst the
    /// collector gets duplicates after a restart, never a gap.
    async fn save(&self, next: u64) {
        let (path, id) = (self.cursor_path.clone(), self.p.id.clone());
        let saved = tokio::task::spawn_blocking(move || cursor::store(&path, &id, next)).await;
        let err = match saved {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        self.note(Failure::new(
            ErrorKind::Cursor,
            format!("cannot save the cursor: {err}"),
        ));
    }
}

/// The wait after the `failures`-th consecutive failure: `backoff_min` doubled per failure up
/// to `backoff_max`, then a random point in its upper half (`jitter` in 0..=1) so that many
/// devices do not reconnect in step.
pub(crate) fn backoff_delay(t: &Tuning, failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let full = t
        .backoff_min
        .saturating_mul(1u32 << doublings)
        .min(t.backoff_max);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A number in 0..=1 from the system random generator (0.5 if it fails: jitter is not a
/// security property).
fn jitter() -> f64 {
    mamori_crypto::random::bytes::<4>()
        .map(|b| f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX))
        .unwrap_or(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_min_to_max_with_jitter_in_the_upper_half() {
        let t = Tuning::default();
        let secs = |f, j| backoff_delay(&t, f, j).as_secs_f64();
        assert_eq!(secs(1, 1.0), 1.0);
        assert_eq!(secs(1, 0.0), 0.5);
        assert_eq!(secs(2, 1.0), 2.0);
        assert_eq!(secs(4, 1.0), 8.0);
        assert_eq!(secs(6, 1.0), 32.0);
        assert_eq!(secs(7, 1.0), 60.0);
        assert_eq!(secs(1000, 1.0), 60.0);
        assert_eq!(secs(1000, 0.0), 30.0);
        for _ in 0..100 {
            let d = backoff_delay(&t, 3, jitter()).as_secs_f64();
            assert!((2.0..=4.0).contains(&d), "{d}");
        }
    }
}
