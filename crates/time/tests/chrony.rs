//! mamori's chronyd against a real chronyd server on loopback (S3.1-35 R4: time
//! synchronisation with a time source, its status visible; NTS where offered).
//!
//! Both chronyds run with `-x`: they measure and report, and never touch the machine's clock.
//! The server binds 127.0.0.1 only and is the client's only source.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{LoopbackNtpServer, can_run, nts_identity, tempdir};
use mamori_time::status::SourceState;
use mamori_time::{
    Chrony, ChronyClient, ChronyOptions, ChronyPaths, NtpHost, NtpServer, RenderOptions,
    SyncTracker, TimeConfig, TimeError, TimeStatus,
};

/// The client config mamori would render for one loopback server, polling every second so
/// the tests do not wait minutes.
fn config_for(server: &LoopbackNtpServer, nts: bool) -> TimeConfig {
    let mut s = NtpServer::new(NtpHost::parse("127.0.0.1").unwrap(), nts);
    s.port = Some(server.port);
    s.nts_port = server.nts_port;
    s.min_poll = Some(0);
    s.max_poll = Some(0);
    TimeConfig {
        servers: vec![s],
        require_nts: false,
        min_sources: 1,
        rtc_sync: false,
    }
}

fn start_client(state: &Path, cfg: &TimeConfig, trust: Option<&str>) -> Chrony {
    let opts = match trust {
        Some(pem) => {
            let path = state.join("nts-ca.pem");
            std::fs::write(&path, pem).unwrap();
            RenderOptions {
                nts_trusted_certs: Some(path),
                system_certs: false,
            }
        }
        None => RenderOptions::default(),
    };
    // observe_only: -x, chronyd never sets the clock.
    Chrony::start(
        cfg,
        ChronyPaths::in_state_dir(state),
        &opts,
        &ChronyOptions::observe_only(),
    )
    .unwrap()
}

/// Polls the status until `pred` holds or `within` passes; returns the last status and how
/// long it took.
fn wait_for(
    chrony: &Chrony,
    within: Duration,
    pred: impl Fn(&TimeStatus) -> bool,
) -> (TimeStatus, Option<Duration>) {
    let started = Instant::now();
    loop {
        let status = chrony.status().unwrap();
        if pred(&status) {
            return (status, Some(started.elapsed()));
        }
        if started.elapsed() > within {
            return (status, None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

macro_rules! require_root_and_chrony {
    () => {
        if let Err(why) = can_run() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A client configured by mamori synchronises to a loopback server within seconds, shows it
/// as reference and selected source, and reports the loss once the server stops; the sync
/// tracker turns both into `time_sync_changed` records.
#[test]
fn mamori_chronyd_synchronises_to_a_loopback_server_and_reports_when_it_is_lost() {
    require_root_and_chrony!();
    let dir = tempdir();
    let mut server = LoopbackNtpServer::start(&dir.path().join("server"), None);
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let started = Instant::now();
    let chrony = start_client(&state, &config_for(&server, false), None);
    let startup = started.elapsed();

    // Before the first answer: not synchronised (the tracker records nothing for that).
    let mut tracker = SyncTracker::new();
    let (first, _) = wait_for(&chrony, Duration::ZERO, |_| true);
    if !first.synchronised {
        assert!(tracker.observe(&first).is_none());
    }

    let (synced, took) = wait_for(&chrony, Duration::from_secs(30), |s| s.synchronised);
    let took = took.unwrap_or_else(|| {
        panic!(
            "not synchronised within 30 s: {synced:#?}\nclient:\n{}\nserver:\n{}",
            chrony.log_tail(),
            server.log()
        )
    });
    eprintln!(
        "MEASURED chronyd start {startup:?}, first synchronisation {:?} after start",
        startup + took
    );
    assert_eq!(synced.reference.as_deref(), Some("127.0.0.1"));
    assert_eq!(synced.stratum, 9, "the server is stratum 8");
    let src = synced.selected().expect("a selected source");
    assert_eq!(src.address, "127.0.0.1");
    assert!(src.reach > 0);
    assert!(!src.nts && !src.nts_authenticated);
    assert!(synced.last_update.is_some());
    assert!(
        synced.offset_ms.abs() < 100.0,
        "same machine: {}",
        synced.offset_ms
    );
    let gained = tracker
        .observe(&synced)
        .expect("a time_sync_changed record");
    assert_eq!(gained.details["synchronised"], true);
    assert_eq!(gained.details["reference"], "127.0.0.1");

    // The pid file the privileged parent reads names this chronyd.
    let pid = std::fs::read_to_string(ChronyPaths::in_state_dir(&state).pid_file()).unwrap();
    assert_eq!(pid.trim(), chrony.pid().to_string());

    server.stop();
    let stopped = Instant::now();
    let (lost, took) = wait_for(&chrony, Duration::from_secs(60), |s| !s.synchronised);
    let took = took
        .unwrap_or_else(|| panic!("still synchronised 60 s after the server stopped: {lost:#?}"));
    eprintln!("MEASURED loss seen {took:?} after the server stopped (polls every second)");
    assert!(stopped.elapsed() >= took);
    assert_eq!(lost.sources[0].state, SourceState::Unusable);
    assert_eq!(lost.sources[0].reach, 0, "{lost:#?}");
    let lost_event = tracker.observe(&lost).expect("a record for the loss");
    assert_eq!(lost_event.details["synchronised"], false);

    let pid = chrony.pid();
    chrony.stop();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "chronyd still runs"
    );
}

/// A server marked NTS is used over NTS (TLS 1.3 key exchange against the CA we trust) and
/// the status says it is authenticated: `authdata` has cookies and `ntpdata` says the last
/// response was authenticated.
#[test]
fn an_nts_source_is_reported_authenticated() {
    require_root_and_chrony!();
    let dir = tempdir();
    let id = nts_identity("mamori");
    let server = LoopbackNtpServer::start(&dir.path().join("server"), Some(&id));
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let chrony = start_client(&state, &config_for(&server, true), Some(&id.ca_pem));
    let (s, took) = wait_for(&chrony, Duration::from_secs(30), |s| {
        s.synchronised && s.selected().is_some_and(|src| src.nts_authenticated)
    });
    let took = took.unwrap_or_else(|| {
        panic!(
            "no NTS-authenticated synchronisation within 30 s: {s:#?}\n{}\n{}",
            chrony.log_tail(),
            server.log()
        )
    });
    eprintln!("MEASURED first NTS-authenticated synchronisation {took:?} after start");
    let src = s.selected().unwrap();
    assert!(src.nts);
    assert!(src.nts_cookies > 0);
    assert_eq!(src.nts_ke_attempts, 0);
    let conf = std::fs::read_to_string(ChronyPaths::in_state_dir(&state).config_file()).unwrap();
    assert!(conf.contains(" nts ntsport "), "{conf}");
    assert!(conf.contains("authselectmode prefer"));
}

/// An NTS server whose certificate no trusted CA signed is never used: the key exchange
/// fails again and again, the source is not authenticated and the clock never synchronises
/// (there is no fallback to unauthenticated NTP).
#[test]
fn an_nts_server_with_an_untrusted_certificate_is_never_used() {
    require_root_and_chrony!();
    let dir = tempdir();
    let server_id = nts_identity("attacker");
    let trusted = nts_identity("mamori");
    let server = LoopbackNtpServer::start(&dir.path().join("server"), Some(&server_id));
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let chrony = start_client(&state, &config_for(&server, true), Some(&trusted.ca_pem));
    let (s, _) = wait_for(&chrony, Duration::from_secs(8), |s| {
        s.sources
            .first()
            .is_some_and(|src| src.nts_ke_attempts >= 2)
    });
    let src = &s.sources[0];
    assert!(src.nts, "{s:#?}");
    assert!(!src.nts_authenticated, "{s:#?}");
    assert_eq!(src.nts_cookies, 0, "{s:#?}");
    assert!(src.nts_ke_attempts >= 1, "{s:#?}\n{}", chrony.log_tail());
    assert!(!s.synchronised, "{s:#?}");
    assert_ne!(src.state, SourceState::Selected);
}

/// A bad configuration never starts chronyd, and chronyd's own refusal comes back with its
/// log; asking a chronyd that is not there is a clear error.
#[test]
fn errors_name_their_cause() {
    require_root_and_chrony!();
    let dir = tempdir();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let empty = TimeConfig::default();
    assert!(matches!(
        Chrony::start(
            &empty,
            ChronyPaths::in_state_dir(&state),
            &RenderOptions::default(),
            &ChronyOptions::observe_only()
        ),
        Err(TimeError::Config(_))
    ));
    // No chronyd binary.
    let mut opts = ChronyOptions::observe_only();
    opts.chronyd = "/nonexistent/chronyd".into();
    // One loopback server on the default port; nothing answers there, which does not matter.
    let mut cfg = TimeConfig {
        rtc_sync: false,
        ..TimeConfig::default()
    };
    cfg.servers
        .push(NtpServer::new(NtpHost::parse("127.0.0.1").unwrap(), false));
    assert!(matches!(
        Chrony::start(
            &cfg,
            ChronyPaths::in_state_dir(&state),
            &RenderOptions::default(),
            &opts
        ),
        Err(TimeError::ChronydSpawn(_))
    ));
    // chronyd itself refuses a second instance on the same pid file: start one, then another.
    let first = Chrony::start(
        &cfg,
        ChronyPaths::in_state_dir(&state),
        &RenderOptions::default(),
        &ChronyOptions::observe_only(),
    )
    .unwrap();
    match Chrony::start(
        &cfg,
        ChronyPaths::in_state_dir(&state),
        &RenderOptions::default(),
        &ChronyOptions::observe_only(),
    ) {
        Err(TimeError::ChronydExited { log, .. }) => {
            assert!(log.contains("already"), "{log}");
        }
        other => panic!("a second chronyd on the same files: {other:?}"),
    }
    let socket = ChronyPaths::in_state_dir(&state).socket();
    first.stop();
    let client = ChronyClient::new("/usr/bin/chronyc", socket);
    assert!(matches!(
        client.status(),
        Err(TimeError::ChronydUnreachable)
    ));
}

/// A chronyd that exits on its own (here: SIGKILL) is started again by the next report after
/// a short wait, the wait doubles while it keeps dying, and the report counts the restarts and
/// says why; applying the configuration again starts the count afresh.
#[test]
fn a_chronyd_that_dies_is_started_again_after_a_growing_wait() {
    require_root_and_chrony!();
    let dir = tempdir();
    let server = LoopbackNtpServer::start(&dir.path().join("server"), None);
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let first_wait = Duration::from_millis(300);
    let mut ntp = mamori_time::NtpDaemon::new(
        &state,
        RenderOptions::default(),
        ChronyOptions::observe_only(),
    )
    .with_restart_backoff(first_wait);
    let config = config_for(&server, false);
    assert!(ntp.apply(config.clone()).unwrap().running);

    let kill = |pid: u32| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // Reaped by the next report (is_running waits for it).
        std::thread::sleep(Duration::from_millis(50));
    };
    for (round, wait) in [(1, first_wait), (2, first_wait * 2)] {
        let pid = ntp.pid().unwrap();
        kill(pid);
        // The exit is reported at once, and not restarted before the wait.
        let r = ntp.report();
        assert!(!r.running, "round {round}: {r:?}");
        assert!(
            r.error.as_deref().unwrap().contains("chronyd exited"),
            "{r:?}"
        );
        assert_eq!(r.restarts, round - 1);
        std::thread::sleep(wait / 3);
        assert!(
            !ntp.report().running,
            "round {round}: restarted before the wait"
        );
        std::thread::sleep(wait);
        let r = ntp.report();
        assert!(
            r.running,
            "round {round}: not restarted after the wait: {r:?}"
        );
        assert_eq!(r.restarts, round);
        assert!(
            r.error.as_deref().unwrap().contains("started again"),
            "{r:?}"
        );
        assert_ne!(ntp.pid(), Some(pid), "a new chronyd");
    }
    // It answers again (the socket is chronyd's new one).
    let deadline = Instant::now() + Duration::from_secs(10);
    while ntp.report().status.is_none() {
        assert!(
            Instant::now() < deadline,
            "the restarted chronyd never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new configuration starts afresh.
    let mut other = config.clone();
    other.min_sources = 1;
    other.rtc_sync = !config.rtc_sync;
    ntp.apply(other).unwrap();
    assert_eq!(ntp.report().restarts, 0);
    ntp.stop();
}

/// A client of one loopback port where nothing answers: chronyd runs and never synchronises.
fn config_without_server() -> TimeConfig {
    let mut s = NtpServer::new(NtpHost::parse("127.0.0.1").unwrap(), false);
    s.port = Some(common::free_udp_port());
    TimeConfig {
        servers: vec![s],
        require_nts: false,
        min_sources: 1,
        rtc_sync: false,
    }
}

/// The blocked (`SigBlk`) and ignored (`SigIgn`) signal masks of a process or thread.
fn signal_masks(status_file: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(status_file).unwrap();
    let mask = |field: &str| {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or_else(|| panic!("no {field} in {status_file}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    (mask("SigBlk:"), mask("SigIgn:"))
}

/// Not a test of its own: mamori's chronyd started by a process that blocks SIGTERM, SIGINT
/// and SIGCHLD (as the privileged parent does, to read them from a signalfd) and ignores
/// SIGHUP (as under `nohup`), SIGUSR2 and SIGTSTP; started that way by
/// `chronyd_starts_with_the_signals_of_a_clean_start_whatever_its_parent_blocks_or_ignores`,
/// it prints chronyd's masks (without its variable it does nothing).
#[test]
#[ignore = "a helper process of chronyd_starts_with_the_signals_of_a_clean_start_whatever_its_parent_blocks_or_ignores"]
fn chronyd_started_by_a_parent_with_odd_signals() {
    let Ok(state) = std::env::var("MAMORI_TEST_CHRONY_STATE") else {
        return;
    };
    let (blocked, ignored) = signal_masks("/proc/thread-self/status");
    assert_ne!(blocked, 0, "the starting thread blocks nothing");
    assert_ne!(ignored, 0, "the starting process ignores nothing");
    let chrony = Chrony::start(
        &config_without_server(),
        ChronyPaths::in_state_dir(Path::new(&state)),
        &RenderOptions::default(),
        &ChronyOptions::observe_only(),
    )
    .unwrap();
    let (blocked, ignored) = signal_masks(&format!("/proc/{}/status", chrony.pid()));
    println!("CHRONYD-SIGNALS {blocked:x} {ignored:x}");
    chrony.stop();
}

/// chronyd runs with no signal blocked and none ignored beyond what a chronyd started from a
/// clean process has, although the privileged parent that starts it blocks SIGTERM, SIGINT
/// and SIGCHLD: the mask and ignored dispositions survive `execve`, and a chronyd that
/// inherited them would ignore SIGTERM.
#[test]
fn chronyd_starts_with_the_signals_of_a_clean_start_whatever_its_parent_blocks_or_ignores() {
    require_root_and_chrony!();
    let dir = tempdir();
    let state = dir.path();
    let out = std::process::Command::new("/usr/bin/env")
        .args([
            "--block-signal=TERM,INT,CHLD",
            "--ignore-signal=HUP,USR2,TSTP",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "chronyd_started_by_a_parent_with_odd_signals",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MAMORI_TEST_CHRONY_STATE", state)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let masks = stdout
        .lines()
        .find_map(|l| Some(l.split_once("CHRONYD-SIGNALS ")?.1))
        .unwrap_or_else(|| panic!("no masks printed: {stdout}"));
    let mamori: Vec<u64> = masks
        .split(' ')
        .map(|m| u64::from_str_radix(m, 16).unwrap())
        .collect();

    // The reference: the same chronyd command, started directly by this test's thread, which
    // blocks nothing (and whose process ignores only SIGPIPE, which std resets for a child).
    assert_eq!(signal_masks("/proc/thread-self/status").0, 0);
    let paths = ChronyPaths::in_state_dir(state);
    let mut clean = std::process::Command::new("/usr/sbin/chronyd")
        .arg("-d")
        .arg("-f")
        .arg(paths.config_file())
        .args(["-u", common::CHRONY_USER, "-x", "-F", "1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = ChronyClient::new("/usr/bin/chronyc", paths.socket());
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.tracking().is_err() {
        assert!(
            Instant::now() < deadline,
            "the reference chronyd never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let reference = signal_masks(&format!("/proc/{}/status", clean.id()));
    clean.kill().unwrap();
    clean.wait().unwrap();

    assert_eq!(
        (mamori[0], mamori[1]),
        reference,
        "mamori's chronyd (blocked, ignored) {:x?} against a clean start {reference:x?}",
        (mamori[0], mamori[1])
    );
    assert_eq!(
        reference.0, 0,
        "chronyd blocks signals itself: {reference:x?}"
    );
}
