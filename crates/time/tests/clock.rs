//! The real clock: a step of the machine's wall clock is seen and recorded with the time before
//! and after (S3.1-35 R1 D), and an administrator's set-time goes through the root parent.
//!
//! These are the only tests that change the machine's clock, each by +5 s and back (or by a
//! few milliseconds), restoring it from `CLOCK_BOOTTIME` in a guard: on return, on drop and in
//! a panic hook, so the clock ends where it would have been. They run one at a time in this
//! binary (`harness = false`): the demo child confines itself, which needs a process without
//! threads, and two tests stepping the clock at once would see each other's steps.
//!
//! With `--demo-parent STATE` this binary is the privileged parent, which re-executes it with
//! `--demo-child STATE` as the confined management process; the child runs the step watcher
//! and asks for set-times, and prints what it got and what it recorded (`RAW`, `MANUAL`,
//! `AUDIT` lines).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../privsep/tests/common/mod.rs"]
mod harness;

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use harness::{Case, Lines, TestResult};
use mamori_audit::{Event, EventKind, Outcome, Sink};
use mamori_privsep::PrivsepError;
use mamori_privsep::client::Parent;
use mamori_privsep::op::{CLOCK_END_UNIX_MS, clock_floor_unix_ms};
use mamori_time::step::{boottime_ns, realtime_ns};
use mamori_time::{
    Attribution, Chrony, ChronyOptions, ChronyPaths, ManualSetTime, ManualSteps, NtpHost,
    NtpServer, RenderOptions, StepWatcher, SystemClocks, TimeConfig, TimeError, WatcherConfig,
    set_time,
};
use nix::sys::signal::{Signal, kill};
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_settime};
use nix::unistd::Pid;
use serde_json::{Value, json};

fn main() -> ExitCode {
    if let Some(code) = harness::demo_main(demo_child) {
        return code;
    }
    install_restore_hook();
    harness::run(&[
        Case {
            name: "a_real_clock_step_forward_and_back_is_recorded_with_before_and_after",
            needs_root: true,
            run: a_real_clock_step_forward_and_back_is_recorded_with_before_and_after,
        },
        Case {
            name: "set_time_through_the_root_parent_refuses_out_of_range_and_records_a_five_second_step_once",
            needs_root: true,
            run: set_time_through_the_root_parent_refuses_out_of_range_and_records_a_five_second_step_once,
        },
        Case {
            name: "set_time_is_refused_while_mamori_chronyd_runs_unless_forced",
            needs_root: true,
            run: set_time_is_refused_while_mamori_chronyd_runs_unless_forced,
        },
    ])
}

// ---- restoring the clock -----------------------------------------------------------------

/// The wall clock and boot time when a test started changing the clock.
static REFERENCE: Mutex<Option<(i64, i64)>> = Mutex::new(None);

/// Sets the wall clock to where it would be had nobody stepped it since `reference`.
fn restore_to(reference: (i64, i64)) -> Result<i64, String> {
    let (real0, boot0) = reference;
    let target = real0 + (boottime_ns().map_err(|e| e.to_string())? - boot0);
    clock_settime(
        ClockId::CLOCK_REALTIME,
        TimeSpec::new(
            target.div_euclid(1_000_000_000),
            target.rem_euclid(1_000_000_000),
        ),
    )
    .map_err(|e| format!("restoring the clock: {e}"))?;
    Ok(target)
}

/// A panic anywhere restores the clock before the process goes (with `panic = "abort"` too:
/// the hook runs first).
fn install_restore_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(reference) = REFERENCE.lock().ok().and_then(|mut r| r.take()) {
            let _ = restore_to(reference);
        }
        previous(info);
    }));
}

/// Holds the reference while a test may have moved the clock; restores it when dropped.
struct ClockGuard;

impl ClockGuard {
    fn new() -> Self {
        let boot = boottime_ns().unwrap();
        let real = realtime_ns().unwrap();
        *REFERENCE.lock().unwrap() = Some((real, boot));
        Self
    }

    /// Restores now; returns the wall-clock time set, in nanoseconds.
    fn restore(&self) -> Result<i64, String> {
        let reference = REFERENCE.lock().unwrap().ok_or("no reference")?;
        restore_to(reference)
    }
}

impl Drop for ClockGuard {
    fn drop(&mut self) {
        if let Some(reference) = REFERENCE.lock().ok().and_then(|mut r| r.take()) {
            let _ = restore_to(reference);
        }
    }
}

fn set_clock_ns(ns: i64) -> Result<(), String> {
    clock_settime(
        ClockId::CLOCK_REALTIME,
        TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000)),
    )
    .map_err(|e| format!("clock_settime: {e}"))
}

fn parse_rfc3339_ms(v: &Value) -> Result<i64, String> {
    let s = v.as_str().ok_or_else(|| format!("not a time: {v}"))?;
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s}: {e}"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|e| e.to_string())
}

// ---- sinks -------------------------------------------------------------------------------

/// Hands each record to the test with the boot time it arrived at.
struct ChannelSink(Mutex<mpsc::Sender<(Event, i64)>>);

impl Sink for ChannelSink {
    fn record(&self, event: Event) {
        let at = boottime_ns().unwrap_or(0);
        if let Ok(tx) = self.0.lock() {
            let _ = tx.send((event, at));
        }
    }
}

/// Prints each record as an `AUDIT` line (the demo child's audit log).
struct PrintSink;

impl Sink for PrintSink {
    fn record(&self, event: Event) {
        println!(
            "AUDIT {}",
            serde_json::to_string(&event).unwrap_or_default()
        );
        let _ = std::io::stdout().flush();
    }
}

// ---- 1. a real step, seen by the watcher -------------------------------------------------

/// Stepping the machine's clock +5 s and back: the watcher (real clocks, the timerfd) records
/// both steps as `time_changed` with cause `unknown`, the step, and before/after that match
/// what was done, within milliseconds.
fn a_real_clock_step_forward_and_back_is_recorded_with_before_and_after() -> TestResult {
    let guard = ClockGuard::new();
    let (tx, rx) = mpsc::channel();
    let sink: Arc<dyn Sink> = Arc::new(ChannelSink(Mutex::new(tx)));
    let watcher = StepWatcher::spawn(
        WatcherConfig::default(),
        SystemClocks::new().map_err(|e| e.to_string())?,
        sink,
        Attribution::default(),
    )
    .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));

    let before_fwd = realtime_ns().map_err(|e| e.to_string())?;
    let set_at = boottime_ns().map_err(|e| e.to_string())?;
    set_clock_ns(before_fwd + 5_000_000_000)?;
    let (fwd, seen_at) = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the +5 s step was not recorded".to_string())?;
    let fwd_latency = Duration::from_nanos(u64::try_from(seen_at - set_at).unwrap_or(0));

    std::thread::sleep(Duration::from_millis(300));
    let before_back = realtime_ns().map_err(|e| e.to_string())?;
    let restored_at = boottime_ns().map_err(|e| e.to_string())?;
    guard.restore()?;
    let (back, seen_back_at) = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the step back was not recorded".to_string())?;
    let back_latency = Duration::from_nanos(u64::try_from(seen_back_at - restored_at).unwrap_or(0));
    drop(guard);
    let extra = rx.recv_timeout(Duration::from_millis(1500)).ok();
    watcher.stop();

    println!(
        "  MEASURED step detection latency: +5 s seen after {fwd_latency:?}, -5 s after {back_latency:?}"
    );
    for e in [&fwd, &back] {
        check!(e.event == EventKind::TimeChanged, "{e:?}");
        check!(e.outcome == Outcome::Success, "{e:?}");
        check!(e.details["cause"] == "unknown", "{e:?}");
        check!(e.actor.is_none(), "{e:?}");
    }
    let step = |e: &Event| e.details["step_ms"].as_i64().unwrap_or(0);
    check!(
        (step(&fwd) - 5000).abs() < 100,
        "forward step {}",
        step(&fwd)
    );
    check!(
        (step(&back) + 5000).abs() < 100,
        "back step {}",
        step(&back)
    );
    let (b, a) = (
        parse_rfc3339_ms(&fwd.details["before"])?,
        parse_rfc3339_ms(&fwd.details["after"])?,
    );
    check!(a - b == step(&fwd), "{fwd:?}");
    check!(
        (b - before_fwd / 1_000_000).abs() < 200,
        "before {b} vs the clock before the step {}",
        before_fwd / 1_000_000
    );
    let (b2, a2) = (
        parse_rfc3339_ms(&back.details["before"])?,
        parse_rfc3339_ms(&back.details["after"])?,
    );
    check!(a2 - b2 == step(&back), "{back:?}");
    check!(
        (b2 - before_back / 1_000_000).abs() < 200,
        "before {b2} vs the clock before the restore {}",
        before_back / 1_000_000
    );
    check!(extra.is_none(), "an extra record: {extra:?}");
    check!(
        fwd_latency < Duration::from_millis(500) && back_latency < Duration::from_millis(500),
        "the timerfd should wake the watcher at once: {fwd_latency:?} {back_latency:?}"
    );
    Ok(())
}

// ---- 2. set-time through the real parent -------------------------------------------------

fn line(tag: &str, v: &Value) {
    println!("{tag} {v}");
    let _ = std::io::stdout().flush();
}

fn demo_child(state: &Path) -> u8 {
    let (parent, _) = match harness::confined_child(state) {
        Ok(started) => started,
        Err(code) => return code,
    };
    // The watcher runs confined, under the management process's seccomp list.
    let sink: Arc<dyn Sink> = Arc::new(PrintSink);
    let steps = ManualSteps::default();
    let clocks = match SystemClocks::new() {
        Ok(c) => c,
        Err(e) => {
            println!("CHILD-ERROR clocks: {e}");
            return 1;
        }
    };
    let _watcher = match StepWatcher::spawn(
        WatcherConfig::default(),
        clocks,
        Arc::clone(&sink),
        Attribution {
            manual: steps.clone(),
            ntp: None,
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            println!("CHILD-ERROR watcher: {e}");
            return 1;
        }
    };
    // The parent's own range check, asked directly.
    for unix_ms in [i64::MIN, 0, clock_floor_unix_ms() - 1, CLOCK_END_UNIX_MS] {
        let r = parent.set_time(unix_ms, true);
        let refused = match &r {
            Err(PrivsepError::Refused { reason, .. }) => Some(reason.clone()),
            _ => None,
        };
        line(
            "RAW",
            &json!({"unix_ms": unix_ms, "refused": refused, "other": format!("{r:?}")}),
        );
    }
    // The management side's call, out of range and in range (+5 s).
    let request = |unix_ms| ManualSetTime {
        unix_ms,
        force: false,
        actor: "test-admin".into(),
        source: "console".into(),
    };
    let r = set_time(&parent, &*sink, &steps, &request(0));
    line(
        "LOCAL",
        &json!({"out_of_range": matches!(r, Err(TimeError::OutOfRange(_)))}),
    );
    let now_ms = realtime_ns().map(|ns| ns / 1_000_000).unwrap_or(0);
    match set_time(&parent, &*sink, &steps, &request(now_ms + 5000)) {
        Ok(step) => line("MANUAL", &json!({"ok": step})),
        Err(e) => line("MANUAL", &json!({"error": e.to_string()})),
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

struct Daemon {
    parent: Child,
    lines: Lines,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.parent.try_wait() {
            let _ = kill(Pid::from_raw(self.parent.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.parent.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.parent.kill();
            let _ = self.parent.wait();
        }
    }
}

fn json_after(lines: &Lines, tag: &str) -> Result<Value, String> {
    let text = lines.next_with(&format!("{tag} "), Duration::from_secs(30))?;
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}

/// The confined management process asks the root parent to set the clock: out-of-range times
/// are refused by the parent itself (and by the management side before asking); +5 s is set,
/// answered with before and after, and recorded once, with cause `manual` and the actor; the
/// watcher running beside it does not record the same step again, but records the restore
/// that follows (cause `unknown`).
fn set_time_through_the_root_parent_refuses_out_of_range_and_records_a_five_second_step_once()
-> TestResult {
    harness::user()?;
    let dir = harness::tempdir()?;
    let state = dir.path().join("state");
    let guard = ClockGuard::new();
    let mut parent = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--demo-parent")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = parent.stdout.take().ok_or("no stdout")?;
    let d = Daemon {
        parent,
        lines: Lines::new(stdout),
        _dir: dir,
    };

    for _ in 0..4 {
        let raw = json_after(&d.lines, "RAW")?;
        check!(
            raw["refused"].is_string(),
            "not refused by the parent: {raw}"
        );
    }
    let local_refusal = json_after(&d.lines, "AUDIT")?;
    check!(local_refusal["event"] == "time_changed", "{local_refusal}");
    check!(local_refusal["outcome"] == "failure", "{local_refusal}");
    check!(local_refusal["actor"] == "test-admin", "{local_refusal}");
    let local = json_after(&d.lines, "LOCAL")?;
    check!(local["out_of_range"] == true, "{local}");

    let recorded = json_after(&d.lines, "AUDIT")?;
    let manual = json_after(&d.lines, "MANUAL")?;
    let step = &manual["ok"];
    check!(step.is_object(), "set-time failed: {manual}");
    let restored_at = guard.restore()?;
    check!(
        (step["step_ms"].as_i64().unwrap_or(0) - 5000).abs() < 200,
        "{manual}"
    );
    check!(step["forced"] == false, "{manual}");
    check!(recorded["event"] == "time_changed", "{recorded}");
    check!(recorded["outcome"] == "success", "{recorded}");
    check!(recorded["actor"] == "test-admin", "{recorded}");
    check!(recorded["source"] == "console", "{recorded}");
    check!(recorded["details"]["cause"] == "manual", "{recorded}");
    check!(
        recorded["details"]["before"] == step["before"],
        "{recorded} {manual}"
    );
    check!(
        recorded["details"]["after"] == step["after"],
        "{recorded} {manual}"
    );
    check!(
        (parse_rfc3339_ms(&recorded["details"]["after"])?
            - parse_rfc3339_ms(&recorded["details"]["requested"])?)
        .abs()
            < 50,
        "{recorded}"
    );

    // The next record is the restore, not the manual step a second time.
    let restore = json_after(&d.lines, "AUDIT")?;
    check!(restore["details"]["cause"] == "unknown", "{restore}");
    let back = restore["details"]["step_ms"].as_i64().unwrap_or(0);
    check!((back + 5000).abs() < 300, "{restore}");
    check!(
        (parse_rfc3339_ms(&restore["details"]["after"])? - restored_at / 1_000_000).abs() < 1500,
        "{restore}"
    );
    check!(
        d.lines
            .next_with("AUDIT ", Duration::from_millis(1500))
            .is_err(),
        "an extra record"
    );
    drop(guard);
    Ok(())
}

// ---- 3. NTP running ----------------------------------------------------------------------

/// While mamori's chronyd runs (its pid file names it), the parent refuses a manual time, and
/// the refusal is recorded with the reason; forced, it is set and the record says `forced`.
/// The forced time is "now", so the clock moves by milliseconds only.
fn set_time_is_refused_while_mamori_chronyd_runs_unless_forced() -> TestResult {
    common::ensure_chrony()?;
    let dir = common::tempdir();
    let state = dir.path();
    // A client with one loopback server that does not answer: chronyd runs, never
    // synchronises, and never sets the clock (-x).
    let mut server = NtpServer::new(
        NtpHost::parse("127.0.0.1").map_err(|e| e.to_string())?,
        false,
    );
    server.port = Some(common::free_udp_port());
    let cfg = TimeConfig {
        servers: vec![server],
        rtc_sync: false,
        ..TimeConfig::default()
    };
    let chrony = Chrony::start(
        &cfg,
        ChronyPaths::in_state_dir(state),
        &RenderOptions::default(),
        &ChronyOptions::observe_only(),
    )
    .map_err(|e| e.to_string())?;

    let guard = ClockGuard::new();
    let (tx, rx) = mpsc::channel();
    let sink = ChannelSink(Mutex::new(tx));
    let parent = Parent::in_process(state);
    let steps = ManualSteps::default();
    let now_ms = || realtime_ns().map(|ns| ns / 1_000_000).unwrap_or(0);
    let req = |force| ManualSetTime {
        unix_ms: now_ms(),
        force,
        actor: "test-admin".into(),
        source: "127.0.0.1".into(),
    };
    let refused = set_time(&parent, &sink, &steps, &req(false));
    let (refusal, _) = rx.try_recv().map_err(|_| "no record of the refusal")?;
    let forced = set_time(&parent, &sink, &steps, &req(true));
    let (forced_record, _) = rx
        .try_recv()
        .map_err(|_| "no record of the forced change")?;
    guard.restore()?;
    drop(guard);
    chrony.stop();

    check!(
        matches!(&refused, Err(TimeError::Refused(r)) if r.contains("NTP")),
        "{refused:?}"
    );
    check!(refusal.outcome == Outcome::Failure, "{refusal:?}");
    check!(
        refusal.details["reason"]
            .as_str()
            .is_some_and(|r| r.contains("NTP")),
        "{refusal:?}"
    );
    let forced = forced.map_err(|e| format!("forced set-time failed: {e}"))?;
    check!(forced.forced, "{forced:?}");
    check!(forced.step_ms.abs() < 100, "{forced:?}");
    check!(
        forced_record.outcome == Outcome::Success,
        "{forced_record:?}"
    );
    check!(forced_record.details["forced"] == true, "{forced_record:?}");
    check!(
        forced_record.source.as_deref() == Some("127.0.0.1"),
        "{forced_record:?}"
    );
    Ok(())
}
