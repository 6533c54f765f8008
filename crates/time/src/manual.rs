//! Setting the clock by hand, through the privileged parent.
//!
//! Only the parent has `CAP_SYS_TIME`. [`set_time`] is what the API handler calls in the
//! management process: it checks the range, tells the step watcher that a step of this shape is
//! coming (so the watcher does not record it a second time as `unknown`), asks the parent
//! (through [`SetClock`], which the privsep crate implements for its client), and writes one `time_changed` record with cause
//! `manual`, the administrator as the actor, and the parent's readings of the clock before and
//! after. Refusals and failures are recorded too, with the reason.
//!
//! # While NTP runs
//!
//! The parent refuses a manual time while mamori's chronyd runs, unless the request is forced:
//! chronyd would slew the clock back to NTP time (at most 0.1 s per second, so a 5 s change
//! lingers for about a minute) and the two would disagree in the log. The normal use of a manual
//! time is a device that cannot reach a time server; then NTP is off or unsynchronised and the
//! administrator forces it or turns NTP off first. A forced change says so in the record
//! (`forced: true`).

use std::sync::{Arc, Mutex};

use mamori_audit::Sink;
use serde::{Deserialize, Serialize};

use crate::TimeError;
use crate::events::{StepFigures, manual_time_changed};
use crate::step::{DetectedStep, boottime_ns, rfc3339_ms};

/// The earliest time a manual set-time accepts when the build does not say otherwise:
/// 2026-12-01T00:00:00Z. Raise it with each release.
pub const CLOCK_FLOOR_FIXED_UNIX_MS: i64 = 1_796_083_200_000;

/// The first instant a manual set-time refuses: 2100-01-01T00:00:00Z.
pub const CLOCK_END_UNIX_MS: i64 = 4_102_444_800_000;

/// The earliest time a manual set-time accepts: this build's date, which is the later of
/// [`CLOCK_FLOOR_FIXED_UNIX_MS`] and `SOURCE_DATE_EPOCH` when the build sets it (reproducible
/// release builds do). A device cannot have been set up before its software was built, so an
/// earlier time is a mistake or an attack (certificates and update metadata would look valid
/// again).
pub fn clock_floor_unix_ms() -> i64 {
    let from_build = option_env!("SOURCE_DATE_EPOCH")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| secs.checked_mul(1000))
        .unwrap_or(0);
    from_build.max(CLOCK_FLOOR_FIXED_UNIX_MS)
}

/// Whether `unix_ms` may be set as the system time: from [`clock_floor_unix_ms`] (inclusive) to
/// [`CLOCK_END_UNIX_MS`] (exclusive). The error says which bound was crossed. Both sides use
/// it: the management process before asking, the privileged parent again before acting.
pub fn check_clock_time(unix_ms: i64) -> Result<(), &'static str> {
    if unix_ms < clock_floor_unix_ms() {
        Err("the time is before this software was built")
    } else if unix_ms >= CLOCK_END_UNIX_MS {
        Err("the time is not before 2100")
    } else {
        Ok(())
    }
}

/// What the privileged parent did when it set the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClockSet {
    /// The clock just before it was set, in milliseconds since the Unix epoch.
    pub before_unix_ms: i64,
    /// The clock just after it was set.
    pub after_unix_ms: i64,
    /// Whether mamori's chronyd was running (the request was forced).
    pub ntp_running: bool,
}

/// Why the privileged side did not set the clock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetClockError {
    /// It understood the request and refused it (out of range, NTP running without `force`).
    #[error("{0}")]
    Refused(String),
    /// Asking failed, or the parent tried and failed; the clock may or may not have changed.
    #[error("{0}")]
    Failed(String),
}

/// The one way to the clock: the privileged parent's `SetTime` (implemented by
/// `mamori_privsep::client::Parent`; a fake in tests).
pub trait SetClock {
    /// Sets `CLOCK_REALTIME` to `unix_ms`, even while NTP runs if `force`.
    fn set_clock(&self, unix_ms: i64, force: bool) -> Result<ClockSet, SetClockError>;
}

/// How long an expected manual step stays claimable (boot time).
const EXPECTATION_TTL_NS: i64 = 60 * 1_000_000_000;
/// Slack around the expected wall-clock time when matching a seen step.
const MATCH_SLACK_NS: i64 = 500_000_000;

/// A manual set-time, as the API handler receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualSetTime {
    /// The new time, milliseconds since the Unix epoch.
    pub unix_ms: i64,
    /// Set it even while NTP runs.
    pub force: bool,
    /// Who asks (the audit record's actor).
    pub actor: String,
    /// From where (an address or `console`).
    pub source: String,
}

/// What a manual set-time did, for the API's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ManualStep {
    /// The clock just before, RFC 3339 UTC with milliseconds.
    pub before: String,
    /// The clock just after.
    pub after: String,
    /// `after - before` in milliseconds.
    pub step_ms: i64,
    /// NTP was running and the change was forced.
    pub forced: bool,
}

/// The manual steps in flight, shared by [`set_time`] and the step watcher: a step that
/// matches one is the request's to record, not the watcher's.
#[derive(Debug, Clone, Default)]
pub struct ManualSteps {
    inner: Arc<Mutex<Ledger>>,
}

#[derive(Debug, Default)]
struct Ledger {
    next: u64,
    expected: Vec<Expected>,
}

#[derive(Debug)]
struct Expected {
    id: u64,
    target_ns: i64,
    since_boot_ns: i64,
    done: bool,
    claimed: Option<DetectedStep>,
}

/// One expected step, returned by [`ManualSteps::expect`].
#[derive(Debug)]
#[must_use = "finish the ticket when the request is answered"]
pub struct Ticket(u64);

impl ManualSteps {
    /// Announces a set-time to `target_unix_ms`, asked at boot time `now_boot_ns`.
    pub fn expect(&self, target_unix_ms: i64, now_boot_ns: i64) -> Ticket {
        let mut l = self.lock();
        l.prune(now_boot_ns);
        l.next += 1;
        let id = l.next;
        l.expected.push(Expected {
            id,
            target_ns: target_unix_ms.saturating_mul(1_000_000),
            since_boot_ns: now_boot_ns,
            done: false,
            claimed: None,
        });
        Ticket(id)
    }

    /// Whether `step` is an announced set-time (then it is marked as seen and the caller
    /// records nothing). A step matches when, after it, the clock shows the requested time plus
    /// at most the time that passed since the request (with half a second of slack).
    pub fn claim(&self, step: &DetectedStep) -> bool {
        let mut l = self.lock();
        l.prune(step.boottime_ns);
        let found = l.expected.iter_mut().find(|e| {
            let elapsed = step.boottime_ns.saturating_sub(e.since_boot_ns);
            let ahead = step.after_ns.saturating_sub(e.target_ns);
            e.claimed.is_none()
                && elapsed >= -MATCH_SLACK_NS
                && (-MATCH_SLACK_NS..=elapsed.saturating_add(MATCH_SLACK_NS)).contains(&ahead)
        });
        match found {
            Some(e) => {
                e.claimed = Some(*step);
                true
            }
            None => false,
        }
    }

    /// The request is answered. On success the expectation stays until the watcher has seen
    /// the step (or it expires); on failure it is dropped, and the step the watcher matched to
    /// it, if any, is returned: the clock did change although the answer was lost. Returns the
    /// watcher's step either way.
    pub fn finish(&self, ticket: Ticket, succeeded: bool) -> Option<DetectedStep> {
        let mut l = self.lock();
        let i = l.expected.iter().position(|e| e.id == ticket.0)?;
        let claimed = l.expected[i].claimed;
        if succeeded && claimed.is_none() {
            l.expected[i].done = true;
        } else {
            l.expected.remove(i);
        }
        claimed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A poisoned ledger still holds valid entries; keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Ledger {
    fn prune(&mut self, now_boot_ns: i64) {
        self.expected.retain(|e| {
            let fresh = now_boot_ns.saturating_sub(e.since_boot_ns) <= EXPECTATION_TTL_NS;
            fresh && !(e.done && e.claimed.is_some())
        });
    }
}

/// Sets the clock by hand through the privileged parent and records it; see the module
/// documentation. Refused: [`TimeError::OutOfRange`] (checked here first) or
/// [`TimeError::Refused`] (the parent's own checks, such as NTP running without `force`).
pub fn set_time(
    parent: &dyn SetClock,
    audit: &dyn Sink,
    steps: &ManualSteps,
    req: &ManualSetTime,
) -> Result<ManualStep, TimeError> {
    let record = |outcome: Result<(StepFigures, bool), &str>| {
        audit.record(manual_time_changed(
            &req.actor,
            &req.source,
            req.unix_ms,
            outcome,
        ));
    };
    if let Err(reason) = check_clock_time(req.unix_ms) {
        record(Err(reason));
        return Err(TimeError::OutOfRange(reason));
    }
    let ticket = steps.expect(req.unix_ms, boottime_ns()?);
    match parent.set_clock(req.unix_ms, req.force) {
        Ok(set) => {
            let _ = steps.finish(ticket, true);
            let figures = StepFigures {
                before_ns: set.before_unix_ms.saturating_mul(1_000_000),
                after_ns: set.after_unix_ms.saturating_mul(1_000_000),
                sets: 1,
            };
            let forced = set.ntp_running;
            record(Ok((figures, forced)));
            Ok(ManualStep {
                before: rfc3339_ms(figures.before_ns).unwrap_or_default(),
                after: rfc3339_ms(figures.after_ns).unwrap_or_default(),
                step_ms: figures.step_ms(),
                forced,
            })
        }
        Err(e) => {
            let seen = steps.finish(ticket, false);
            match (e, seen) {
                (SetClockError::Refused(reason), _) => {
                    record(Err(&reason));
                    Err(TimeError::Refused(reason))
                }
                (e, Some(step)) => {
                    // The clock moved as asked, but the answer did not come back.
                    tracing::error!(target: "mamori::time", error = %e, "set-time: the parent's answer was lost after the clock changed");
                    record(Ok((step.figures(), false)));
                    Err(TimeError::Parent(e.to_string()))
                }
                (e, None) => {
                    record(Err("the privileged parent could not set the clock"));
                    Err(TimeError::Parent(e.to_string()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use mamori_audit::{Event, EventKind, Outcome};

    use super::*;

    const S: i64 = 1_000_000_000;

    fn step(step_s: i64, after_s: i64, boot_s: f64) -> DetectedStep {
        #[allow(clippy::cast_possible_truncation)]
        DetectedStep {
            step_ns: step_s * S,
            after_ns: after_s * S,
            boottime_ns: (boot_s * 1e9) as i64,
            kernel_signalled: true,
            sets: 1,
        }
    }

    #[test]
    fn the_clock_range_is_the_build_date_to_the_end_of_2099() {
        let floor = clock_floor_unix_ms();
        assert!(floor >= CLOCK_FLOOR_FIXED_UNIX_MS);
        assert!(check_clock_time(floor).is_ok());
        assert!(check_clock_time(floor - 1).is_err());
        assert!(check_clock_time(i64::MIN).is_err());
        assert!(check_clock_time(CLOCK_END_UNIX_MS - 1).is_ok());
        assert!(check_clock_time(CLOCK_END_UNIX_MS).is_err());
        assert!(check_clock_time(i64::MAX).is_err());
        assert_eq!(CLOCK_END_UNIX_MS, 4_102_444_800 * 1000);
    }

    #[test]
    fn a_step_to_the_requested_time_is_claimed_once() {
        let m = ManualSteps::default();
        let t = m.expect(1_800_000_005_000, 100 * S);
        assert!(!m.claim(&step(5, 1_800_000_009, 100.5)), "4 s off");
        assert!(m.claim(&step(5, 1_800_000_005, 100.2)));
        assert!(!m.claim(&step(5, 1_800_000_005, 100.3)), "claimed already");
        assert!(m.finish(t, true).is_some());
        assert!(!m.claim(&step(5, 1_800_000_005, 100.4)), "gone after both");
    }

    #[test]
    fn a_step_seen_after_the_answer_is_still_claimed() {
        let m = ManualSteps::default();
        let t = m.expect(1_800_000_005_000, 100 * S);
        assert!(m.finish(t, true).is_none(), "not seen yet");
        // The watcher only compares once a second: it sees the step a little later.
        assert!(m.claim(&step(5, 1_800_000_006, 101.0)));
    }

    #[test]
    fn expectations_expire_and_failed_requests_are_dropped() {
        let m = ManualSteps::default();
        let t = m.expect(1_800_000_005_000, 100 * S);
        let _ = m.finish(t, true);
        assert!(!m.claim(&step(5, 1_800_000_066, 161.0)), "a minute later");
        let t = m.expect(1_800_000_005_000, 200 * S);
        assert!(m.finish(t, false).is_none());
        assert!(
            !m.claim(&step(5, 1_800_000_005, 200.1)),
            "the request failed"
        );
    }

    struct ChannelSink(Mutex<mpsc::Sender<Event>>);

    impl Sink for ChannelSink {
        fn record(&self, event: Event) {
            let _ = self.0.lock().unwrap().send(event);
        }
    }

    #[test]
    fn out_of_range_is_refused_here_and_recorded() {
        let (tx, rx) = mpsc::channel();
        let sink = ChannelSink(Mutex::new(tx));
        struct NeverCalled;
        impl SetClock for NeverCalled {
            fn set_clock(&self, _: i64, _: bool) -> Result<ClockSet, SetClockError> {
                panic!("the range is checked before the parent is asked")
            }
        }
        let parent = NeverCalled;
        for unix_ms in [0, CLOCK_END_UNIX_MS] {
            let req = ManualSetTime {
                unix_ms,
                force: false,
                actor: "alice".into(),
                source: "console".into(),
            };
            let err = set_time(&parent, &sink, &ManualSteps::default(), &req).unwrap_err();
            assert!(matches!(err, TimeError::OutOfRange(_)), "{err}");
            let e = rx.try_recv().unwrap();
            assert_eq!(e.event, EventKind::TimeChanged);
            assert_eq!(e.outcome, Outcome::Failure);
            assert_eq!(e.actor.as_deref(), Some("alice"));
            assert_eq!(e.details["cause"], "manual");
        }
    }
}
