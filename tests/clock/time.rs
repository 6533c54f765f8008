//! Time through the running device: status, manual set-time and clock steps recorded
//! (S3.1-35 ③, R1 D, R4).
//!
//! These tests change the machine's clock (+5 s and back) and run a device chronyd that keeps
//! it. Every test holds a [`ClockGuard`] — one test at a time — which puts the clock back where
//! it would have been (from `CLOCK_BOOTTIME`) when it is dropped, also when the test fails; a
//! device started while another test steps the clock would record that step. The NTP server is a chronyd on 127.0.0.1
//! serving this machine's own clock (`local stratum 8`, `-x`), so the device's chronyd finds
//! an offset of about zero and never steps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime, clock_settime};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

#[path = "../../crates/time/tests/common/mod.rs"]
mod ntp;

// ---- the clock ---------------------------------------------------------------------------

fn read_ns(clock: ClockId) -> i64 {
    let t = clock_gettime(clock).unwrap();
    t.tv_sec() * 1_000_000_000 + t.tv_nsec()
}

fn set_clock_ns(ns: i64) {
    clock_settime(
        ClockId::CLOCK_REALTIME,
        TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000)),
    )
    .expect("clock_settime");
}

/// One test at a time may hold the clock.
static CLOCK: Mutex<()> = Mutex::new(());

/// The wall clock and boot time when a test started; on drop the wall clock is set to where it
/// would be had nobody stepped it.
struct ClockGuard {
    real0: i64,
    boot0: i64,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl ClockGuard {
    fn new() -> Self {
        let lock = CLOCK.lock().unwrap_or_else(|p| p.into_inner());
        Self {
            boot0: read_ns(ClockId::CLOCK_BOOTTIME),
            real0: read_ns(ClockId::CLOCK_REALTIME),
            _lock: lock,
        }
    }

    /// Where the wall clock should be now, in nanoseconds.
    fn expected_ns(&self) -> i64 {
        self.real0 + (read_ns(ClockId::CLOCK_BOOTTIME) - self.boot0)
    }

    /// How far the wall clock is from where it should be, in milliseconds.
    fn drift_ms(&self) -> i64 {
        (read_ns(ClockId::CLOCK_REALTIME) - self.expected_ns()) / 1_000_000
    }

    fn restore(&self) {
        set_clock_ns(self.expected_ns());
    }
}

impl Drop for ClockGuard {
    fn drop(&mut self) {
        self.restore();
    }
}

fn rfc3339(ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn parse_ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s}: {e}"));
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
}

// ---- the audit log -----------------------------------------------------------------------

fn time_changed(admin: &Client) -> Vec<Value> {
    audit_events(admin)
        .into_iter()
        .filter(|e| e["event"] == "time_changed")
        .collect()
}

/// Waits for a `time_changed` record with `cause` whose step is `step_ms` ± 300 ms.
fn wait_step(admin: &Client, cause: &str, step_ms: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(e) = time_changed(admin).into_iter().find(|e| {
            e["details"]["cause"] == cause
                && e["details"]["step_ms"]
                    .as_i64()
                    .is_some_and(|s| (s - step_ms).abs() <= 300)
        }) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no time_changed with cause {cause} and a step of {step_ms} ms: {:#?}",
            time_changed(admin)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_before_after(e: &Value, step_ms: i64) {
    let (before, after) = (
        parse_ms(&e["details"]["before"]),
        parse_ms(&e["details"]["after"]),
    );
    assert_eq!(after - before, e["details"]["step_ms"].as_i64().unwrap());
    assert!(((after - before) - step_ms).abs() <= 300, "{e}");
}

// ---- manual set-time ---------------------------------------------------------------------

/// R1 D with an administrator: a set-time through the API needs a fresh re-authentication, is
/// recorded once as `time_changed` cause `manual` with the admin and before/after 5 s apart,
/// and a time out of range is a 400 that leaves the clock alone.
#[test]
fn manual_set_time_needs_reauth_is_recorded_as_manual_and_refuses_out_of_range() {
    let guard = ClockGuard::new();
    let d = Device::start();
    let admin = d.admin();
    let plus5 = |g: &ClockGuard| rfc3339(g.expected_ns() + 5_000_000_000);

    // No fresh re-authentication: refused, nothing changed.
    let r = admin.post("/api/v1/time/set", &json!({"time": plus5(&guard)}));
    expect(&r, StatusCode::FORBIDDEN, "reauth_required");
    assert!(guard.drift_ms().abs() < 200, "the clock moved");

    admin.reauth(ADMIN_PASSWORD);
    let started = Instant::now();
    let r = admin.post("/api/v1/time/set", &json!({"time": plus5(&guard)}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let answered = started.elapsed();
    assert!(
        (guard.drift_ms() - 5000).abs() < 300,
        "drift {} ms",
        guard.drift_ms()
    );
    let step = r.body["step_ms"].as_i64().unwrap();
    assert!((step - 5000).abs() < 300, "{}", r.body);
    assert_eq!(r.body["forced"], false);
    assert_eq!(
        parse_ms(&r.body["after"]) - parse_ms(&r.body["before"]),
        step
    );
    let e = wait_step(&admin, "manual", 5000, Duration::from_secs(5));
    assert_eq!(e["actor"], "admin");
    assert_eq!(e["outcome"], "success");
    assert_before_after(&e, 5000);

    // Back through the API: −5 s, recorded the same way.
    let back = rfc3339(guard.expected_ns());
    let r = admin.post("/api/v1/time/set", &json!({"time": back}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        guard.drift_ms().abs() < 300,
        "drift {} ms",
        guard.drift_ms()
    );
    let e = wait_step(&admin, "manual", -5000, Duration::from_secs(5));
    assert_eq!(e["actor"], "admin");
    assert_before_after(&e, -5000);

    // The watcher saw both steps and left them to the request: no `unknown` records.
    std::thread::sleep(Duration::from_millis(1500));
    let unknown: Vec<Value> = time_changed(&admin)
        .into_iter()
        .filter(|e| e["details"]["cause"] != "manual")
        .collect();
    assert!(unknown.is_empty(), "recorded twice: {unknown:#?}");

    // Out of range: 400, the clock untouched, the refusal recorded.
    for t in ["2000-01-01T00:00:00Z", "2200-01-01T00:00:00Z"] {
        let r = admin.post("/api/v1/time/set", &json!({"time": t, "force": true}));
        expect(&r, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(guard.drift_ms().abs() < 300, "{t} moved the clock");
    }
    let refused = time_changed(&admin)
        .into_iter()
        .filter(|e| e["outcome"] == "failure" && e["details"]["cause"] == "manual")
        .count();
    assert_eq!(refused, 2);
    eprintln!("set-time answered in {answered:?}");
}

// ---- a step from outside ----------------------------------------------------------------

/// R1 D without mamori: the machine's clock stepped +5 s and back by another process is
/// recorded by the daemon's watcher as `time_changed` cause `unknown` with before and after.
#[test]
fn a_step_made_outside_mamori_is_recorded_as_unknown_with_before_and_after() {
    let guard = ClockGuard::new();
    let d = Device::start();
    let admin = d.admin();

    let t0 = Instant::now();
    set_clock_ns(read_ns(ClockId::CLOCK_REALTIME) + 5_000_000_000);
    let fwd = wait_step(&admin, "unknown", 5000, Duration::from_secs(10));
    let fwd_seen = t0.elapsed();
    assert_before_after(&fwd, 5000);
    assert!(fwd["actor"].is_null(), "{fwd}");

    let t1 = Instant::now();
    set_clock_ns(read_ns(ClockId::CLOCK_REALTIME) - 5_000_000_000);
    let back = wait_step(&admin, "unknown", -5000, Duration::from_secs(10));
    let back_seen = t1.elapsed();
    assert_before_after(&back, -5000);
    assert!(
        guard.drift_ms().abs() < 300,
        "drift {} ms",
        guard.drift_ms()
    );
    eprintln!("steps visible through the API after {fwd_seen:?} and {back_seen:?}");
}

// ---- NTP ---------------------------------------------------------------------------------

fn wait_until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// R4: servers set through the API (re-authenticated, recorded with before and after) start
/// the device's chronyd; it synchronises to a loopback server, the status shows it, and
/// `time_sync_changed` is recorded; a manual set-time without force is refused while NTP runs;
/// no servers stops chronyd and the loss is recorded.
#[test]
fn ntp_servers_set_through_the_api_synchronise_and_block_an_unforced_set_time() {
    if let Err(why) = ntp::can_run() {
        panic!("NTP test cannot run: {why}");
    }
    let guard = ClockGuard::new();
    let dir = ntp::tempdir();
    let server = ntp::LoopbackNtpServer::start(&dir.path().join("server"), None);
    let d = Device::start();
    let admin = d.admin();

    let r = admin.get("/api/v1/time");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ntp_enabled"], false, "default: no servers");
    assert_eq!(r.body["synchronised"], false);
    assert_eq!(
        admin.get("/api/v1/settings/time").body["servers"],
        json!([])
    );

    let config = json!({
        "servers": [{"host": "127.0.0.1", "port": server.port, "iburst": true,
                     "min_poll": 0, "max_poll": 0}],
        "rtc_sync": false,
    });
    let r = admin.put("/api/v1/settings/time", &config);
    expect(&r, StatusCode::FORBIDDEN, "reauth_required");
    admin.reauth(ADMIN_PASSWORD);
    let put_at = Instant::now();
    let r = admin.put("/api/v1/settings/time", &config);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["chronyd_running"], true, "{}", r.body);
    let started = put_at.elapsed();
    // Started by the privileged parent, which blocks SIGTERM, SIGINT and SIGCHLD for its
    // signalfd: chronyd blocks none of them (crates/time/tests/chrony.rs compares its masks
    // with a clean start in full).
    let pid = std::fs::read_to_string(d.state.join("chrony/var/chronyd.pid")).unwrap();
    let proc_status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let blocked = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .unwrap()
        .trim();
    assert_eq!(
        u64::from_str_radix(blocked, 16).unwrap(),
        0,
        "chronyd blocks {blocked}"
    );

    let synced = wait_until(Duration::from_secs(30), || {
        let r = admin.get("/api/v1/time");
        (r.body["synchronised"] == true).then_some(r.body)
    })
    .unwrap_or_else(|| {
        panic!(
            "not synchronised within 30 s: {}\nserver log:\n{}",
            admin.get("/api/v1/time").text,
            server.log()
        )
    });
    let to_sync = put_at.elapsed();
    assert_eq!(synced["chronyd_running"], true);
    let status = &synced["status"];
    assert_eq!(status["reference"], "127.0.0.1", "{synced}");
    assert!(
        status["offset_ms"].as_f64().unwrap().abs() < 50.0,
        "{synced}"
    );
    let source = &status["sources"][0];
    assert_eq!(source["address"], "127.0.0.1");
    assert_eq!(source["state"], "selected");
    assert_eq!(source["nts"], false);
    assert_eq!(source["nts_authenticated"], false);
    assert!(parse_ms(&synced["device_time"]) > 0);

    let gained = wait_until(Duration::from_secs(15), || {
        audit_events(&admin)
            .into_iter()
            .find(|e| e["event"] == "time_sync_changed" && e["details"]["synchronised"] == true)
    })
    .expect("time_sync_changed recorded");
    let to_record = put_at.elapsed();
    assert_eq!(gained["outcome"], "success");
    assert_eq!(gained["details"]["reference"], "127.0.0.1");

    let changed = audit_events(&admin)
        .into_iter()
        .find(|e| e["event"] == "settings_changed" && e["details"]["setting"] == "time")
        .expect("settings_changed recorded");
    assert_eq!(changed["actor"], "admin");
    assert_eq!(changed["details"]["before"]["servers"], json!([]));
    assert_eq!(
        changed["details"]["after"]["servers"][0]["host"],
        "127.0.0.1"
    );
    assert_eq!(
        admin.get("/api/v1/settings/time").body["servers"][0]["port"],
        server.port
    );

    // While NTP runs, a manual time needs force: 409, the clock untouched.
    let r = admin.post(
        "/api/v1/time/set",
        &json!({"time": rfc3339(guard.expected_ns() + 5_000_000_000)}),
    );
    expect(&r, StatusCode::CONFLICT, "conflict");
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains("NTP"),
        "{}",
        r.text
    );
    assert!(
        guard.drift_ms().abs() < 300,
        "drift {} ms",
        guard.drift_ms()
    );

    // No servers: chronyd stops, the loss of synchronisation is recorded.
    let r = admin.put("/api/v1/settings/time", &json!({"servers": []}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["chronyd_running"], false);
    let r = admin.get("/api/v1/time");
    assert_eq!(r.body["ntp_enabled"], false, "{}", r.text);
    assert_eq!(r.body["chronyd_running"], false);
    wait_until(Duration::from_secs(15), || {
        audit_events(&admin)
            .into_iter()
            .find(|e| e["event"] == "time_sync_changed" && e["details"]["synchronised"] == false)
    })
    .expect("the loss of synchronisation is recorded");
    assert!(
        !std::process::Command::new("pgrep")
            .args(["-f", &format!("{}/chrony/chrony.conf", d.state.display())])
            .status()
            .unwrap()
            .success(),
        "the device's chronyd still runs"
    );
    assert!(
        guard.drift_ms().abs() < 300,
        "drift {} ms",
        guard.drift_ms()
    );
    eprintln!(
        "PUT answered (chronyd started) after {started:?}; synchronised (GET /api/v1/time) after \
         {to_sync:?}; time_sync_changed recorded after {to_record:?}"
    );
}

// ---- input validation --------------------------------------------------------------------

/// S3.1-38: a time configuration or set-time that is not exactly right is a 400 with a clear
/// message, and nothing changes; a viewer reads the status but not the settings.
#[test]
fn invalid_time_settings_and_times_are_refused_and_change_nothing() {
    // Moves no clock, but asserts that nothing did: no other test may step it meanwhile.
    let _clock = ClockGuard::new();
    let d = Device::start();
    let admin = d.admin();
    admin.reauth(ADMIN_PASSWORD);
    let before = admin.get("/api/v1/settings/time").body;
    let server = |host: &str| json!({"servers": [{"host": host}]});
    let nine: Vec<Value> = (1..=9)
        .map(|i| json!({"host": format!("192.0.2.{i}")}))
        .collect();
    let bad = [
        server("ntp.example\nallow all"),
        server("ntp example"),
        server("ntp.example;allow"),
        server("ntp.example #x"),
        server(""),
        json!({"servers": [], "extra": 1}),
        json!({"servers": [{"host": "192.0.2.1", "key": 1}]}),
        json!({"servers": nine}),
        json!({"servers": [{"host": "192.0.2.1"}], "min_sources": 2}),
        json!({"servers": [{"host": "192.0.2.1", "port": 0}]}),
        json!({"servers": [{"host": "192.0.2.1"}], "require_nts": true}),
        json!({"servers": [{"host": "192.0.2.1", "min_poll": 30}]}),
        json!({"servers": [{"host": "192.0.2.1"}, {"host": "192.0.2.1"}]}),
        json!({"servers": "192.0.2.1"}),
    ];
    for body in &bad {
        let r = admin.put("/api/v1/settings/time", body);
        expect(&r, StatusCode::BAD_REQUEST, "invalid_request");
        let m = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(!m.is_empty() && !m.contains("allow all"), "{m}");
    }
    for body in [
        json!({"time": "tomorrow"}),
        json!({"time": "2027-03-01"}),
        json!({"time": 1_803_859_200}),
        json!({"time": "2027-03-01T00:00:00Z", "force": "yes"}),
        json!({"time": "2027-03-01T00:00:00Z", "clock": "tai"}),
        json!({}),
    ] {
        let r = admin.post("/api/v1/time/set", &body);
        expect(&r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(admin.get("/api/v1/settings/time").body, before);
    assert!(
        !audit_events(&admin)
            .iter()
            .any(|e| e["event"] == "settings_changed" && e["details"]["setting"] == "time"),
        "a refused change was recorded as a change"
    );
    assert!(
        !audit_events(&admin)
            .iter()
            .any(|e| e["event"] == "time_changed"),
        "a malformed set-time reached the clock"
    );

    // Roles: the status is for everyone who reads the device; the settings are the admin's.
    let viewer = new_user(
        &d,
        &admin,
        "zz-time-viewer",
        "viewer",
        "Lantern-Quartz-48-meadow",
        "127.0.0.2",
    );
    assert_eq!(viewer.get("/api/v1/time").status, StatusCode::OK);
    expect(
        &viewer.get("/api/v1/settings/time"),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    expect(
        &viewer.post("/api/v1/time/set", &json!({"time": "2027-03-01T00:00:00Z"})),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

// ---- the CLI -----------------------------------------------------------------------------

/// `mamori ARGS...` over HTTPS as admin: (exit code, stdout, stderr).
fn mamori(d: &Device, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(bin("mamori"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MAMORI_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("MAMORI_PASSWORD", ADMIN_PASSWORD)
        .stdin(std::process::Stdio::null())
        .arg("--url")
        .arg(format!("https://{}", d.addr))
        .arg("--cacert")
        .arg(d.cert_path())
        .args(args)
        .output()
        .expect("run mamori");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `mamori time status|config show|config set FILE|set TIME`: the configuration goes through
/// the re-authenticated PUT, a time out of range is refused with a message and a non-zero exit.
#[test]
fn the_cli_shows_the_status_replaces_the_configuration_and_refuses_a_bad_time() {
    let guard = ClockGuard::new();
    let d = Device::start();
    let _admin = d.admin();
    let (code, out, err) = mamori(&d, &["time", "status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("synchronised"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("time.json");
    std::fs::write(&file, r#"{"servers": [], "rtc_sync": false}"#).unwrap();
    let (code, out, err) = mamori(&d, &["time", "config", "set", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = mamori(&d, &["--json", "time", "config", "show"]);
    assert_eq!(code, 0, "{out}{err}");
    let shown: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(shown["rtc_sync"], false);

    std::fs::write(&file, r#"{"servers": [{"host": "a b"}]}"#).unwrap();
    let (code, out, err) = mamori(&d, &["time", "config", "set", file.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");

    let (code, out, err) = mamori(&d, &["time", "set", "2000-01-01T00:00:00Z"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("built"), "{err}");
    assert!(
        guard.drift_ms().abs() < 300,
        "drift {} ms",
        guard.drift_ms()
    );
}
