//! The thread that runs one monitor: waits on its socket and the stop pipe, hands datagrams to
//! the monitor, turns overruns into a resync, and reopens the socket after an error.
//!
//! One thread per socket rather than tasks on the daemon's tokio runtime, because
//! [`Sink::record`] is synchronous and may wait for an fsync: on a runtime worker it would stall
//! unrelated tasks, while here a slow sink only lets the socket queue grow, which the overrun
//! path already handles. Each loop is a plain `poll` on two descriptors, so the thread costs no
//! CPU while nothing happens and stops within one poll when the handle is stopped.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mamori_audit::{Event, EventKind, Outcome, Sink};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::json;

use crate::MonitorStatus;
use crate::nl::{NlSocket, Received};

/// Overrun records are written at most this often per monitor; overruns in between are counted
/// into the next one.
const OVERRUN_RECORD_INTERVAL: Duration = Duration::from_secs(10);
/// Datagrams handled per wake-up before timers are looked at again.
const BATCH: usize = 256;
/// Backoff when a socket fails, doubled up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What a monitor does with its socket. One implementation per module.
pub(crate) trait Watch: Send + 'static {
    /// The monitor's name, as it appears in status and events.
    fn name(&self) -> &'static str;
    /// Opens and subscribes the socket: at start, and again after a socket error.
    fn open(&self) -> io::Result<NlSocket>;
    /// The socket was just opened (or reopened): ask for the state to start from.
    fn sync(&mut self, sock: &mut NlSocket, out: &Out) -> io::Result<()>;
    /// One datagram from netlink port `sender` (0 is the kernel).
    fn datagram(
        &mut self,
        data: &[u8],
        sender: u32,
        sock: &mut NlSocket,
        out: &Out,
    ) -> io::Result<()>;
    /// Notifications were lost: read the state again. The caller has already recorded
    /// [`EventKind::MonitorEventsMissed`].
    fn overrun(&mut self, sock: &mut NlSocket, out: &Out) -> io::Result<()>;
    /// Details added to the overrun record (what the monitor knew last).
    fn overrun_details(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// When [`Watch::timer`] wants to run next.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// A deadline passed.
    fn timer(&mut self, _now: Instant, _sock: &mut NlSocket, _out: &Out) -> io::Result<()> {
        Ok(())
    }
}

/// Where a monitor's results go: the audit sink and the monitor's status.
#[derive(Clone)]
pub(crate) struct Out {
    sink: Arc<dyn Sink>,
    status: Arc<Mutex<MonitorStatus>>,
}

impl Out {
    pub(crate) fn new(sink: Arc<dyn Sink>, status: Arc<Mutex<MonitorStatus>>) -> Self {
        Self { sink, status }
    }

    /// Records an audit event.
    pub(crate) fn emit(&self, event: Event) {
        self.update(|s| s.events += 1);
        self.sink.record(event);
    }

    /// Changes the status.
    pub(crate) fn update(&self, f: impl FnOnce(&mut MonitorStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// Counts one occurrence of `key` in the status's `seen` map (debug counters). The map is
    /// bounded: keys beyond 64 are counted under `other`.
    pub(crate) fn seen(&self, key: &str) {
        self.update(|s| {
            let key = if s.seen.len() >= 64 && !s.seen.contains_key(key) {
                "other"
            } else {
                key
            };
            *s.seen.entry(key.to_string()).or_insert(0) += 1;
        });
    }

    /// Marks the monitor as having its starting state.
    pub(crate) fn ready(&self) {
        self.update(|s| s.ready = true);
    }
}

/// Runs `watch` on `sock` until `stop` becomes readable (its write end closed).
pub(crate) fn run(mut watch: Box<dyn Watch>, sock: NlSocket, out: Out, stop: Arc<OwnedFd>) {
    let name = watch.name();
    let mut backoff = BACKOFF_MIN;
    let mut overruns_unrecorded: u64 = 0;
    let mut last_overrun_record: Option<Instant> = None;
    let mut sock = Some(sock);
    if let Some(s) = sock.as_mut() {
        match watch.sync(s, &out) {
            Ok(()) => out.update(|st| st.running = true),
            Err(e) => {
                // Reopened and synced again after the backoff.
                fail(&out, name, &e, &mut backoff);
                sock = None;
            }
        }
    }
    loop {
        let Some(current) = sock.as_mut() else {
            // Reopen after a failure, after a pause that stop interrupts.
            if wait_stop(&stop, Some(backoff)) {
                break;
            }
            match watch.open() {
                Ok(mut s) => {
                    out.update(|st| st.receive_buffer = s.receive_buffer());
                    match watch.sync(&mut s, &out) {
                        Ok(()) => {
                            tracing::info!(monitor = name, "monitor socket reopened");
                            out.update(|st| st.running = true);
                            out.emit(
                                Event::new(EventKind::MonitorEventsMissed, Outcome::Failure)
                                    .details(json!({
                                        "monitor": name,
                                        "reason": "socket reopened after a failure; state read again",
                                    })),
                            );
                            backoff = BACKOFF_MIN;
                            sock = Some(s);
                        }
                        Err(e) => fail(&out, name, &e, &mut backoff),
                    }
                }
                Err(e) => fail(&out, name, &e, &mut backoff),
            }
            continue;
        };

        let now = Instant::now();
        let mut deadline = watch.deadline();
        if overruns_unrecorded > 0 {
            let due = last_overrun_record.map_or(now, |t| t + OVERRUN_RECORD_INTERVAL);
            deadline = Some(deadline.map_or(due, |d| d.min(due)));
        }
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let ms = d
                    .saturating_duration_since(now)
                    .as_millis()
                    .clamp(1, 60_000);
                // At least 1 ms, so a deadline is never polled for zero ms over and over.
                PollTimeout::from(u16::try_from(ms).unwrap_or(60_000))
            }
        };
        let (sock_ready, stop_ready) = {
            let mut fds = [
                PollFd::new(current.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    fail(&out, name, &io::Error::from(e), &mut backoff);
                    sock = None;
                    continue;
                }
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if stop_ready {
            break;
        }

        if sock_ready {
            let mut buf = Vec::new();
            for _ in 0..BATCH {
                match current.receive(&mut buf) {
                    Ok(Received::Datagram { sender }) => {
                        if let Err(e) = watch.datagram(&buf, sender, current, &out) {
                            fail(&out, name, &e, &mut backoff);
                            sock = None;
                            break;
                        }
                    }
                    Ok(Received::Empty) => break,
                    Ok(Received::Overrun) => {
                        out.update(|s| s.overruns += 1);
                        overruns_unrecorded += 1;
                        tracing::warn!(monitor = name, "netlink receive buffer overrun; resyncing");
                        if let Err(e) = watch.overrun(current, &out) {
                            fail(&out, name, &e, &mut backoff);
                            sock = None;
                            break;
                        }
                    }
                    Err(e) => {
                        fail(&out, name, &e, &mut backoff);
                        sock = None;
                        break;
                    }
                }
            }
        }

        let now = Instant::now();
        if overruns_unrecorded > 0
            && last_overrun_record.is_none_or(|t| now >= t + OVERRUN_RECORD_INTERVAL)
        {
            let mut details = json!({
                "monitor": name,
                "reason": "kernel notifications were dropped (socket receive buffer overrun); state read again from the kernel",
                "overruns": overruns_unrecorded,
            });
            if let (Some(obj), serde_json::Value::Object(extra)) =
                (details.as_object_mut(), watch.overrun_details())
            {
                obj.extend(extra);
            }
            out.emit(Event::new(EventKind::MonitorEventsMissed, Outcome::Failure).details(details));
            overruns_unrecorded = 0;
            last_overrun_record = Some(now);
        }
        if let Some(current) = sock.as_mut()
            && watch.deadline().is_some_and(|d| now >= d)
            && let Err(e) = watch.timer(now, current, &out)
        {
            fail(&out, name, &e, &mut backoff);
            sock = None;
        }
    }
    out.update(|s| s.running = false);
}

/// Records a socket failure: status, tracing, one audit event; the socket is then reopened.
fn fail(out: &Out, name: &'static str, e: &io::Error, backoff: &mut Duration) {
    tracing::error!(monitor = name, error = %e, "monitor socket failed");
    out.update(|s| {
        s.running = false;
        s.last_error = Some(e.to_string());
    });
    out.emit(
        Event::new(EventKind::MonitorFailed, Outcome::Failure).details(json!({
            "monitor": name,
            "error": e.to_string(),
            "retry_in_s": backoff.as_secs(),
        })),
    );
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// Waits up to `timeout` (forever if `None`) for the stop pipe; returns whether stop was asked.
fn wait_stop(stop: &OwnedFd, timeout: Option<Duration>) -> bool {
    let t = match timeout {
        None => PollTimeout::NONE,
        Some(d) => PollTimeout::from(u16::try_from(d.as_millis().min(60_000)).unwrap_or(60_000)),
    };
    let mut fds = [PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, t), Ok(n) if n > 0)
}
