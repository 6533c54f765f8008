//! Clock-step detection: the wall clock against the clock that never jumps.
//!
//! `CLOCK_BOOTTIME` counts time since boot (suspend included) and nothing can set it;
//! `CLOCK_REALTIME` is the wall clock. Between two readings both advance by the same amount,
//! except for what slewing adds (the kernel slews at most about 0.1 s per second: ±10 % tick
//! adjustment plus 500 ppm of frequency) and what a step adds. So
//!
//! ```text
//! step = (realtime_now - realtime_then) - (boottime_now - boottime_then)
//! ```
//!
//! measured over one period (1 s by default) is the step, give or take at most 0.1 s of slew,
//! and a threshold of 1 s separates steps from slews.
//!
//! To react at once rather than at the next period, the watcher also waits on a timerfd armed
//! on `CLOCK_REALTIME` with `TFD_TIMER_CANCEL_ON_SET`: the kernel cancels it, and wakes the
//! watcher, whenever anyone sets the clock (`clock_settime`, `settimeofday`, `adjtimex` with
//! `ADJ_SETOFFSET`, which is how chronyd steps). Slewing does not cancel it.
//!
//! Each step is reported with the time the old clock would show now (`before`), the time the
//! clock shows now (`after`), the step in milliseconds, and a cause: `manual` when it matches a
//! set-time an administrator asked for (then [`crate::set_time`] writes the one record),
//! `ntp` when chronyd says it stepped the clock by that much, `unknown` otherwise.
//!
//! Steps below the threshold that the kernel signalled (a set, not a slew) are summed, so a
//! series of small steps cannot move the clock unnoticed: once the sum crosses the threshold it
//! is reported as one step with the number of sets.
//!
//! A time namespace would not help testing: Linux time namespaces offset only the monotonic
//! and boot-time clocks, never `CLOCK_REALTIME`. The unit tests use [`ClockSource`] with a fake
//! clock; one integration test steps the real clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mamori_audit::Sink;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{
    ClockId as TimerClock, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags,
};
use nix::time::{ClockId, clock_gettime};

use crate::TimeError;
use crate::events::{Cause, StepFigures, time_changed};
use crate::manual::ManualSteps;

/// Both clocks, read back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    /// `CLOCK_REALTIME`, nanoseconds since the Unix epoch.
    pub realtime_ns: i64,
    /// `CLOCK_BOOTTIME`, nanoseconds since boot.
    pub boottime_ns: i64,
}

/// Where the watcher reads the clocks and waits. [`SystemClocks`] in the product; a fake in
/// tests.
pub trait ClockSource: Send + 'static {
    /// Reads both clocks.
    fn read(&mut self) -> Result<ClockReading, TimeError>;
    /// Waits up to `timeout`. Returns `true` if the kernel said the wall clock was set
    /// meanwhile, `false` on timeout.
    fn wait(&mut self, timeout: Duration) -> Result<bool, TimeError>;
}

/// The real clocks, and a timerfd the kernel cancels when the wall clock is set.
#[derive(Debug)]
pub struct SystemClocks {
    timer: TimerFd,
}

/// A step of the wall clock, as the watcher saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectedStep {
    /// How far the wall clock moved beyond the elapsed time, in nanoseconds (negative:
    /// backwards).
    pub step_ns: i64,
    /// The wall clock when the step was seen, nanoseconds since the Unix epoch.
    pub after_ns: i64,
    /// `CLOCK_BOOTTIME` when the step was seen.
    pub boottime_ns: i64,
    /// The kernel signalled a set (not only the comparison of the clocks).
    pub kernel_signalled: bool,
    /// How many sets make up this step (more than one: small steps that added up).
    pub sets: u32,
}

impl DetectedStep {
    /// The time the clock would show now without the step.
    pub fn before_ns(&self) -> i64 {
        self.after_ns.saturating_sub(self.step_ns)
    }

    /// The figures for the audit record.
    pub fn figures(&self) -> StepFigures {
        StepFigures {
            before_ns: self.before_ns(),
            after_ns: self.after_ns,
            sets: self.sets,
        }
    }
}

/// What one observation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Nothing beyond slew.
    Quiet,
    /// The kernel signalled a set smaller than the threshold.
    Small(DetectedStep),
    /// A step at least as large as the threshold.
    Step(DetectedStep),
}

/// Compares consecutive readings. Pure: no clock, no thread.
#[derive(Debug, Clone)]
pub struct StepDetector {
    threshold_ns: i64,
    last: ClockReading,
    pending_ns: i64,
    pending_sets: u32,
}

impl StepDetector {
    /// Starts from `first`; steps of at least `threshold` are reported.
    pub fn new(threshold: Duration, first: ClockReading) -> Self {
        Self {
            threshold_ns: duration_ns(threshold),
            last: first,
            pending_ns: 0,
            pending_sets: 0,
        }
    }

    /// Takes the next reading; `signalled` says whether the kernel reported a set since the
    /// last one.
    pub fn observe(&mut self, now: ClockReading, signalled: bool) -> Observation {
        let real = now.realtime_ns.saturating_sub(self.last.realtime_ns);
        let boot = now.boottime_ns.saturating_sub(self.last.boottime_ns);
        self.last = now;
        let step = DetectedStep {
            step_ns: real.saturating_sub(boot),
            after_ns: now.realtime_ns,
            boottime_ns: now.boottime_ns,
            kernel_signalled: signalled,
            sets: 1,
        };
        if step.step_ns.saturating_abs() >= self.threshold_ns {
            Observation::Step(step)
        } else if signalled {
            Observation::Small(step)
        } else {
            Observation::Quiet
        }
    }

    /// Adds a small step nobody explained; once the sum reaches the threshold, returns it as
    /// one step (and starts a new sum).
    pub fn accumulate(&mut self, small: DetectedStep) -> Option<DetectedStep> {
        self.pending_ns = self.pending_ns.saturating_add(small.step_ns);
        self.pending_sets = self.pending_sets.saturating_add(1);
        if self.pending_ns.saturating_abs() < self.threshold_ns {
            return None;
        }
        let total = DetectedStep {
            step_ns: self.pending_ns,
            sets: self.pending_sets,
            ..small
        };
        self.pending_ns = 0;
        self.pending_sets = 0;
        Some(total)
    }
}

/// Something that can tell whether NTP made a step (chronyd logs each step it makes).
pub trait NtpSteps: Send + Sync {
    /// Whether NTP stepped the clock by about `step` at about that time.
    fn explains(&self, step: &DetectedStep) -> bool;
}

/// How the watcher finds a step's cause.
#[derive(Clone, Default)]
pub struct Attribution {
    /// The set-time requests in flight; a step that matches one is not recorded by the watcher.
    pub manual: ManualSteps,
    /// Where to ask whether chronyd stepped the clock.
    pub ntp: Option<Arc<dyn NtpSteps>>,
}

impl std::fmt::Debug for Attribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attribution")
            .field("manual", &self.manual)
            .field("ntp", &self.ntp.is_some())
            .finish()
    }
}

/// The watcher's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatcherConfig {
    /// The smallest step reported (default 1 s).
    pub threshold: Duration,
    /// How often the clocks are compared when the kernel says nothing (default 1 s). The
    /// threshold must exceed what slewing can add in one period (0.1 s per second).
    pub period: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        Self {
            threshold: Duration::from_secs(1),
            period: Duration::from_secs(1),
        }
    }
}

impl WatcherConfig {
    /// Whether a slew at the kernel's highest rate over one period stays below the threshold.
    pub fn is_sound(&self) -> bool {
        !self.period.is_zero()
            && self.period.as_secs_f64() * MAX_SLEW_RATE < self.threshold.as_secs_f64()
    }
}

/// The kernel slews at most this many seconds per second (±10 % tick adjustment and 500 ppm).
pub const MAX_SLEW_RATE: f64 = 0.1005;

/// A running watcher thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct StepWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    steps: Arc<Mutex<u64>>,
}

impl StepWatcher {
    /// Starts watching: reads the clocks once (so a broken clock source fails here, not later)
    /// and starts the thread. Every step it does not attribute to a manual set-time becomes a
    /// `time_changed` record in `sink`.
    pub fn spawn<C: ClockSource>(
        config: WatcherConfig,
        mut clocks: C,
        sink: Arc<dyn Sink>,
        attribution: Attribution,
    ) -> Result<Self, TimeError> {
        if !config.is_sound() {
            return Err(TimeError::WatcherConfig);
        }
        let first = clocks.read()?;
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(Mutex::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let steps = Arc::clone(&steps);
            std::thread::Builder::new()
                .name("clock-steps".into())
                .spawn(move || {
                    let mut detector = StepDetector::new(config.threshold, first);
                    watch(
                        &mut clocks,
                        &mut detector,
                        config,
                        &stop,
                        &*sink,
                        &attribution,
                        &steps,
                    );
                })
                .map_err(TimeError::Thread)?
        };
        Ok(Self {
            stop,
            thread: Some(thread),
            steps,
        })
    }

    /// How many steps the watcher recorded so far (manual ones excluded).
    pub fn recorded(&self) -> u64 {
        self.steps.lock().map_or(0, |n| *n)
    }

    /// Stops the thread and waits for it (at most one period).
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StepWatcher {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn watch<C: ClockSource>(
    clocks: &mut C,
    detector: &mut StepDetector,
    config: WatcherConfig,
    stop: &AtomicBool,
    sink: &dyn Sink,
    attribution: &Attribution,
    steps: &Mutex<u64>,
) {
    while !stop.load(Ordering::SeqCst) {
        let signalled = match clocks.wait(config.period) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(target: "mamori::time", error = %e, "clock-step watcher: waiting failed");
                std::thread::sleep(config.period);
                false
            }
        };
        let now = match clocks.read() {
            Ok(now) => now,
            Err(e) => {
                tracing::error!(target: "mamori::time", error = %e, "clock-step watcher: reading the clocks failed");
                continue;
            }
        };
        let step = match detector.observe(now, signalled) {
            Observation::Quiet => continue,
            Observation::Small(small) => {
                if attribution.manual.claim(&small) {
                    continue;
                }
                match detector.accumulate(small) {
                    Some(total) => total,
                    None => continue,
                }
            }
            Observation::Step(step) => {
                if attribution.manual.claim(&step) {
                    tracing::info!(
                        target: "mamori::time",
                        step_ms = step.step_ns / 1_000_000,
                        "clock step matches a manual set-time; recorded by the request"
                    );
                    continue;
                }
                step
            }
        };
        let cause = if attribution.ntp.as_ref().is_some_and(|n| n.explains(&step)) {
            Cause::Ntp
        } else {
            Cause::Unknown
        };
        tracing::warn!(
            target: "mamori::time",
            step_ms = step.step_ns / 1_000_000,
            ?cause,
            "the wall clock was stepped"
        );
        sink.record(time_changed(&step.figures(), cause));
        if let Ok(mut n) = steps.lock() {
            *n += 1;
        }
    }
}

/// An absolute expiry so far ahead that only a clock set past it reaches it (then the timer is
/// re-armed): about 100 years after now.
const TIMER_HORIZON_SECS: i64 = 100 * 366 * 86_400;

impl SystemClocks {
    /// Creates and arms the timerfd.
    pub fn new() -> Result<Self, TimeError> {
        let timer = TimerFd::new(
            TimerClock::CLOCK_REALTIME,
            TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK,
        )
        .map_err(|source| TimeError::Clock {
            what: "timerfd_create",
            source,
        })?;
        let clocks = Self { timer };
        clocks.arm()?;
        Ok(clocks)
    }

    fn arm(&self) -> Result<(), TimeError> {
        let now = clock_gettime(ClockId::CLOCK_REALTIME).map_err(|source| TimeError::Clock {
            what: "clock_gettime(CLOCK_REALTIME)",
            source,
        })?;
        let at = TimeSpec::new(now.tv_sec().saturating_add(TIMER_HORIZON_SECS), 0);
        self.timer
            .set(
                Expiration::OneShot(at),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
            )
            .map_err(|source| TimeError::Clock {
                what: "timerfd_settime",
                source,
            })
    }
}

impl ClockSource for SystemClocks {
    fn read(&mut self) -> Result<ClockReading, TimeError> {
        let b1 = boottime_ns()?;
        let real = read_ns(ClockId::CLOCK_REALTIME, "clock_gettime(CLOCK_REALTIME)")?;
        let b2 = boottime_ns()?;
        Ok(ClockReading {
            realtime_ns: real,
            boottime_ns: b1 + (b2 - b1) / 2,
        })
    }

    fn wait(&mut self, timeout: Duration) -> Result<bool, TimeError> {
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let ready = {
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(&self.timer),
                PollFlags::POLLIN,
            )];
            match poll(&mut fds, timeout) {
                Ok(n) => n > 0,
                Err(nix::Error::EINTR) => false,
                Err(source) => {
                    return Err(TimeError::Clock {
                        what: "poll",
                        source,
                    });
                }
            }
        };
        if !ready {
            return Ok(false);
        }
        let mut ticks = [0u8; 8];
        match nix::unistd::read(&self.timer, &mut ticks) {
            // The kernel cancelled the timer: the clock was set.
            Err(nix::Error::ECANCELED) => {
                self.arm()?;
                Ok(true)
            }
            // The far expiry was reached (the clock was set past it): re-arm.
            Ok(_) => {
                self.arm()?;
                Ok(true)
            }
            Err(nix::Error::EAGAIN | nix::Error::EINTR) => Ok(false),
            Err(source) => Err(TimeError::Clock {
                what: "reading the timerfd",
                source,
            }),
        }
    }
}

fn read_ns(clock: ClockId, what: &'static str) -> Result<i64, TimeError> {
    let t = clock_gettime(clock).map_err(|source| TimeError::Clock { what, source })?;
    Ok(t.tv_sec()
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec()))
}

/// `CLOCK_BOOTTIME` in nanoseconds.
pub fn boottime_ns() -> Result<i64, TimeError> {
    read_ns(ClockId::CLOCK_BOOTTIME, "clock_gettime(CLOCK_BOOTTIME)")
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> Result<i64, TimeError> {
    read_ns(ClockId::CLOCK_REALTIME, "clock_gettime(CLOCK_REALTIME)")
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Nanoseconds since the Unix epoch as RFC 3339 in UTC with milliseconds
/// (`2026-12-06T01:34:27.743Z`); none outside the years 0–9999.
pub fn rfc3339_ms(unix_ns: i64) -> Option<String> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    // Truncate to the millisecond towards the past, so `before` never shows a later time.
    let ms = unix_ns.div_euclid(1_000_000);
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()?
        .format(&format)
        .ok()
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test figures are small and exact
mod tests {
    use std::sync::mpsc;

    use mamori_audit::{Event, EventKind, Outcome};

    use super::*;

    const S: i64 = 1_000_000_000;
    const MS: i64 = 1_000_000;

    fn at(real_s: f64, boot_s: f64) -> ClockReading {
        ClockReading {
            realtime_ns: (real_s * 1e9) as i64,
            boottime_ns: (boot_s * 1e9) as i64,
        }
    }

    #[test]
    fn ticking_and_slewing_are_quiet_and_steps_are_reported_with_before_and_after() {
        let t0 = 1_800_000_000.0;
        let mut d = StepDetector::new(Duration::from_secs(1), at(t0, 100.0));
        // One second passes on both clocks.
        assert_eq!(d.observe(at(t0 + 1.0, 101.0), false), Observation::Quiet);
        // The fastest slew for a second: 0.1 s more on the wall clock.
        assert_eq!(d.observe(at(t0 + 2.1, 102.0), false), Observation::Quiet);
        // Slewing backwards just as fast.
        assert_eq!(d.observe(at(t0 + 3.0, 103.0), false), Observation::Quiet);
        // A step of +5 s.
        let Observation::Step(step) = d.observe(at(t0 + 9.0, 104.0), true) else {
            panic!("no step");
        };
        assert_eq!(step.step_ns, 5 * S);
        assert_eq!(step.after_ns, ((t0 + 9.0) * 1e9) as i64);
        assert_eq!(step.before_ns(), ((t0 + 4.0) * 1e9) as i64);
        assert!(step.kernel_signalled);
        // And back by 5 s, seen only by comparison (no timerfd).
        let Observation::Step(back) = d.observe(at(t0 + 5.0, 105.0), false) else {
            panic!("no step back");
        };
        assert_eq!(back.step_ns, -5 * S);
        assert!(!back.kernel_signalled);
        // Exactly the threshold counts; just under does not.
        assert!(matches!(
            d.observe(at(t0 + 7.0, 106.0), false),
            Observation::Step(_)
        ));
        assert_eq!(d.observe(at(t0 + 8.999, 107.0), false), Observation::Quiet);
    }

    #[test]
    fn suspend_is_not_a_step() {
        // Boot time counts suspend, so a long sleep of the whole machine moves both clocks.
        let t0 = 1_800_000_000.0;
        let mut d = StepDetector::new(Duration::from_secs(1), at(t0, 100.0));
        assert_eq!(
            d.observe(at(t0 + 3600.0, 3700.0), false),
            Observation::Quiet
        );
    }

    #[test]
    fn small_sets_add_up_to_a_reported_step() {
        let t0 = 1_800_000_000.0;
        let mut d = StepDetector::new(Duration::from_secs(1), at(t0, 0.0));
        let mut boot = 0.0;
        let mut real = t0;
        let mut total = None;
        for _ in 0..3 {
            boot += 1.0;
            real += 1.4; // 0.4 s set each time
            match d.observe(at(real, boot), true) {
                Observation::Small(s) => total = d.accumulate(s),
                other => panic!("{other:?}"),
            }
        }
        let total = total.expect("three 0.4 s sets make 1.2 s");
        assert_eq!(total.sets, 3);
        assert!((total.step_ns - 1_200 * MS).abs() < MS, "{}", total.step_ns);
        // A slew of the same size without kernel sets is not added.
        assert_eq!(
            d.observe(at(real + 1.09, boot + 1.0), false),
            Observation::Quiet
        );
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_ms(1_796_520_867_743_908_434).unwrap(),
            "2026-12-06T01:34:27.743Z"
        );
        assert_eq!(rfc3339_ms(-1).unwrap(), "1969-12-31T23:59:59.999Z");
        assert!(rfc3339_ms(i64::MAX).is_some());
    }

    #[test]
    fn an_unsound_configuration_is_refused() {
        assert!(WatcherConfig::default().is_sound());
        let too_slow = WatcherConfig {
            threshold: Duration::from_secs(1),
            period: Duration::from_secs(10),
        };
        assert!(!too_slow.is_sound());
        assert!(
            !WatcherConfig {
                period: Duration::ZERO,
                ..WatcherConfig::default()
            }
            .is_sound()
        );
    }

    // ---- the watcher with a fake clock ---------------------------------------------------

    /// A clock the test moves. `wait` returns as soon as the test calls `tick` or `set`.
    #[derive(Clone)]
    struct FakeClock {
        state: Arc<(Mutex<FakeState>, std::sync::Condvar)>,
    }

    struct FakeState {
        now: ClockReading,
        set_signalled: bool,
        wakeups: u64,
        waits: u64,
        waits_at_change: u64,
    }

    impl FakeClock {
        fn new(real_s: i64) -> Self {
            Self {
                state: Arc::new((
                    Mutex::new(FakeState {
                        now: ClockReading {
                            realtime_ns: real_s * S,
                            boottime_ns: 10 * S,
                        },
                        set_signalled: false,
                        wakeups: 0,
                        waits: 0,
                        waits_at_change: 0,
                    }),
                    std::sync::Condvar::new(),
                )),
            }
        }

        fn change(&self, f: impl FnOnce(&mut FakeState)) {
            let (lock, cv) = &*self.state;
            let mut s = lock.lock().unwrap();
            f(&mut s);
            s.wakeups += 1;
            s.waits_at_change = s.waits;
            cv.notify_all();
        }

        /// Waits until the watcher has handled the last change and waits again.
        fn settle(&self) {
            let (lock, cv) = &*self.state;
            let s = lock.lock().unwrap();
            let (s, timeout) = cv
                .wait_timeout_while(s, WAIT, |s| s.waits <= s.waits_at_change)
                .unwrap();
            assert!(!timeout.timed_out(), "the watcher did not come back");
            drop(s);
        }

        /// Time passes on both clocks, with `slew_ns` more on the wall clock.
        fn tick(&self, ns: i64, slew_ns: i64) {
            self.change(|s| {
                s.now.boottime_ns += ns;
                s.now.realtime_ns += ns + slew_ns;
            });
        }

        /// Someone sets the wall clock by `step_ns` (the kernel signals it).
        fn set(&self, step_ns: i64) {
            self.change(|s| {
                s.now.realtime_ns += step_ns;
                s.set_signalled = true;
            });
        }

        fn now(&self) -> ClockReading {
            self.state.0.lock().unwrap().now
        }
    }

    impl ClockSource for FakeClock {
        fn read(&mut self) -> Result<ClockReading, TimeError> {
            Ok(self.now())
        }

        fn wait(&mut self, timeout: Duration) -> Result<bool, TimeError> {
            let (lock, cv) = &*self.state;
            let mut s = lock.lock().unwrap();
            s.waits += 1;
            cv.notify_all();
            let seen = s.wakeups;
            let (mut s, _) = cv
                .wait_timeout_while(s, timeout, |s| s.wakeups == seen)
                .unwrap();
            Ok(std::mem::take(&mut s.set_signalled))
        }
    }

    /// A sink that hands every record to the test.
    struct ChannelSink(Mutex<mpsc::Sender<Event>>);

    impl Sink for ChannelSink {
        fn record(&self, event: Event) {
            let _ = self.0.lock().unwrap().send(event);
        }
    }

    fn sink() -> (Arc<dyn Sink>, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        (Arc::new(ChannelSink(Mutex::new(tx))), rx)
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn the_watcher_records_an_unexplained_step_with_before_after_and_cause() {
        let clock = FakeClock::new(1_800_000_000);
        let (sink, events) = sink();
        let w = StepWatcher::spawn(
            WatcherConfig::default(),
            clock.clone(),
            sink,
            Attribution::default(),
        )
        .unwrap();
        clock.settle();
        clock.tick(S, 50 * MS); // a slew: nothing
        clock.settle();
        clock.set(5 * S); // +5 s
        let e = events.recv_timeout(WAIT).expect("a time_changed record");
        assert_eq!(e.event, EventKind::TimeChanged);
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.actor, None);
        assert_eq!(e.details["cause"], "unknown");
        assert_eq!(e.details["step_ms"], 5000);
        assert_eq!(e.details["before"], "2027-01-15T08:00:01.050Z");
        assert_eq!(e.details["after"], "2027-01-15T08:00:06.050Z");
        clock.set(-5 * S);
        let back = events.recv_timeout(WAIT).expect("the step back");
        assert_eq!(back.details["step_ms"], -5000);
        assert_eq!(back.details["before"], "2027-01-15T08:00:06.050Z");
        assert_eq!(back.details["after"], "2027-01-15T08:00:01.050Z");
        assert!(events.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(w.recorded(), 2);
        w.stop();
    }

    struct ChronySaid(i64);

    impl NtpSteps for ChronySaid {
        fn explains(&self, step: &DetectedStep) -> bool {
            (step.step_ns - self.0).abs() < 100 * MS
        }
    }

    #[test]
    fn a_step_chronyd_made_is_attributed_to_ntp() {
        let clock = FakeClock::new(1_800_000_000);
        let (sink, events) = sink();
        let attribution = Attribution {
            ntp: Some(Arc::new(ChronySaid(-3 * S))),
            ..Attribution::default()
        };
        let _w =
            StepWatcher::spawn(WatcherConfig::default(), clock.clone(), sink, attribution).unwrap();
        clock.set(-3 * S);
        assert_eq!(events.recv_timeout(WAIT).unwrap().details["cause"], "ntp");
        clock.set(7 * S);
        assert_eq!(
            events.recv_timeout(WAIT).unwrap().details["cause"],
            "unknown"
        );
    }

    #[test]
    fn a_step_matching_a_manual_set_time_is_left_to_the_request() {
        let clock = FakeClock::new(1_800_000_000);
        let (sink, events) = sink();
        let manual = ManualSteps::default();
        let _w = StepWatcher::spawn(
            WatcherConfig::default(),
            clock.clone(),
            sink,
            Attribution {
                manual: manual.clone(),
                ntp: None,
            },
        )
        .unwrap();
        let now = clock.now();
        let target_ms = now.realtime_ns / MS + 3_600_000;
        let ticket = manual.expect(target_ms, now.boottime_ns);
        clock.settle();
        clock.tick(20 * MS, 0);
        clock.settle();
        clock.set(3600 * S); // the parent sets it
        clock.settle();
        // The watcher stays silent about it ...
        assert!(events.recv_timeout(Duration::from_millis(300)).is_err());
        assert!(
            manual.finish(ticket, true).is_some(),
            "the watcher claimed it"
        );
        // ... but not about the next, unrelated one.
        clock.set(-2 * S);
        let e = events.recv_timeout(WAIT).unwrap();
        assert_eq!(e.details["cause"], "unknown");
        assert_eq!(e.details["step_ms"], -2000);
    }

    #[test]
    fn small_sets_that_add_up_are_recorded_once_with_their_count() {
        let clock = FakeClock::new(1_800_000_000);
        let (sink, events) = sink();
        let _w = StepWatcher::spawn(
            WatcherConfig::default(),
            clock.clone(),
            sink,
            Attribution::default(),
        )
        .unwrap();
        for _ in 0..3 {
            clock.settle();
            clock.set(400 * MS);
        }
        let e = events.recv_timeout(WAIT).unwrap();
        assert_eq!(e.details["step_ms"], 1200);
        assert_eq!(e.details["sets"], 3);
    }
}
