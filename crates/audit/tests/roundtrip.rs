//! The audit log keeps what it is given, in order, across restarts (S3.1-35 R1, issue 4).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use common::*;
use mamori_audit::log::{AuditLog, Filter, Start, verify};
use mamori_audit::{Event, EventKind, Outcome};
use mamori_crypto::aead::Key;

/// Records come back decrypted, numbered from 1, with the log's times, in order.
#[test]
fn appended_events_read_back_in_order_with_seq_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("audit");
    let k = Key::generate().unwrap();
    let (log, vk) = AuditLog::create(&d, &k, small_config()).unwrap();
    let mut seqs = Vec::new();
    for i in 0..100 {
        seqs.push(log.append(login(i)).unwrap());
    }
    log.append_durable(Event::new(EventKind::ServiceStarted, Outcome::Success))
        .unwrap();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    let recs = log.read(1, 1000).unwrap();
    assert_eq!(recs.len(), 101);
    for (i, r) in recs.iter().take(100).enumerate() {
        assert_eq!(r.event.seq, i as u64 + 1);
        assert_eq!(r.event.actor.as_deref(), Some(format!("user-{i}").as_str()));
        assert_eq!(r.event.details["n"], i as u64);
        assert!(r.event.time.ends_with('Z') && r.event.mono_ms > 0);
        assert!(!r.personal_purged);
    }
    assert_eq!(recs[100].event.event, EventKind::ServiceStarted);
    assert_eq!(recs[100].event.actor, None);
    assert_eq!(log.read(50, 2).unwrap()[0].event.seq, 50);
    let report = log.verify(Some(&vk));
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.records, report.start), (101, Start::Genesis));
    let s = log.status();
    assert_eq!(
        (s.first_seq, s.last_seq, s.durable_seq),
        (Some(1), Some(101), 101)
    );
    assert!(s.used_bytes > 0 && s.write_error.is_none() && s.dropped == 0);
}

/// Stopping and opening again continues the seq and the chain, and starts a new epoch.
#[test]
fn a_restart_continues_seq_and_chain_and_starts_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("audit");
    let k = Key::generate().unwrap();
    let (log, vk) = AuditLog::create(&d, &k, small_config()).unwrap();
    let first_epoch = log.status().epoch;
    for i in 0..10 {
        log.append(login(i)).unwrap();
    }
    log.close().unwrap();
    for round in 1..=3u32 {
        let log = AuditLog::open(&d, &k, small_config()).unwrap();
        assert_eq!(log.status().epoch, first_epoch + round);
        let seq = log.append_durable(login(99)).unwrap();
        assert_eq!(seq, 10 + u64::from(round));
        log.close().unwrap();
    }
    let report = verify(&d, Some(&vk), Some(&k));
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.records, 13);
    // Each open closed the epoch before it with a seal.
    assert!(report.epochs_closed >= 4, "{report:?}");
    assert_eq!(report.last_epoch, Some(first_epoch + 3));
}

/// Many records roll over many segments; the chain runs across them.
#[test]
fn records_span_segments_and_the_chain_runs_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("audit");
    let k = Key::generate().unwrap();
    let (log, vk) = AuditLog::create(&d, &k, small_config()).unwrap();
    for i in 0..3000 {
        log.append(login(i)).unwrap();
    }
    log.sync().unwrap();
    assert!(segments(&d).len() >= 5, "{:?}", segments(&d));
    let all: Vec<u64> = log.records(1).map(|r| r.unwrap().event.seq).collect();
    assert!(
        all.iter().copied().eq(1..=3000),
        "{} records read",
        all.len()
    );
    let report = log.verify(Some(&vk));
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.segments, segments(&d).len() as u64);
    drop(log);
    assert!(verify(&d, Some(&vk), Some(&k)).is_ok());
}

/// Queries filter by kind, actor, outcome and time; tail gives the newest; export is JSON lines.
#[test]
fn query_tail_and_export_filter_records() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("audit");
    let k = Key::generate().unwrap();
    let (log, _) = AuditLog::create(&d, &k, small_config()).unwrap();
    for i in 0..50 {
        log.append(login(i % 5)).unwrap();
        log.append(Event::new(EventKind::LoginSucceeded, Outcome::Success).actor("admin"))
            .unwrap();
    }
    log.sync().unwrap();
    let mut f = Filter::all();
    f.actor = Some("admin".into());
    let admin = log.query(&f, 1000).unwrap();
    assert_eq!(admin.len(), 50);
    assert!(
        admin
            .iter()
            .all(|r| r.event.event == EventKind::LoginSucceeded)
    );
    let mut f = Filter::all();
    f.kinds = vec![EventKind::LoginFailed];
    f.outcome = Some(Outcome::Failure);
    assert_eq!(log.query(&f, 1000).unwrap().len(), 50);
    assert_eq!(log.query(&f, 7).unwrap().len(), 7);
    let tail = log.tail(&Filter::all(), 3).unwrap();
    assert_eq!(
        tail.iter().map(|r| r.event.seq).collect::<Vec<_>>(),
        [98, 99, 100]
    );
    let mut f = Filter::all();
    f.until = Some(time::OffsetDateTime::now_utc() - time::Duration::hours(1));
    assert!(log.query(&f, 10).unwrap().is_empty());
    let mut out = Vec::new();
    assert_eq!(
        log.export_json_lines(&Filter::all(), &mut out).unwrap(),
        100
    );
    let lines: Vec<serde_json::Value> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 100);
    assert_eq!(lines[1]["actor"], "admin");
    assert_eq!(lines[1]["seq"], 2);
    assert!(lines[1]["mono_ms"].as_u64().unwrap() > 0);
}

/// The content is not readable from the disk, and the log needs its master key.
#[test]
fn the_files_hold_no_plaintext_and_need_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("audit");
    let k = Key::generate().unwrap();
    let (log, _) = AuditLog::create(&d, &k, small_config()).unwrap();
    log.append_durable(
        Event::new(EventKind::PasswordChanged, Outcome::Success)
            .actor("alice-marker")
            .details(serde_json::json!({ "note": "details-marker" })),
    )
    .unwrap();
    log.close().unwrap();
    let raw = all_bytes(&d);
    for marker in ["alice-marker", "details-marker", "password_changed"] {
        assert!(!contains(&raw, marker.as_bytes()), "{marker} in clear");
    }
    assert!(AuditLog::open(&d, &Key::generate().unwrap(), small_config()).is_err());
    let wrong = verify(&d, None, Some(&Key::generate().unwrap()));
    assert!(!wrong.is_ok());
}

/// Two processes (or two opens) never write one log.
#[test]
fn a_log_is_opened_by_one_writer_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("audit");
    let k = Key::generate().unwrap();
    let (log, _) = AuditLog::create(&d, &k, small_config()).unwrap();
    assert!(AuditLog::open(&d, &k, small_config()).is_err());
    assert!(AuditLog::create(&d, &k, small_config()).is_err());
    drop(log);
    assert!(
        AuditLog::create(&d, &k, small_config()).is_err(),
        "create never overwrites"
    );
    AuditLog::open(&d, &k, small_config()).unwrap();
}

/// The epoch also evolves on its schedule while the log runs.
#[test]
fn the_sealing_key_evolves_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("audit");
    let k = Key::generate().unwrap();
    let mut c = small_config();
    c.epoch_interval = std::time::Duration::from_millis(20);
    let (log, vk) = AuditLog::create(&d, &k, c).unwrap();
    let start = log.status().epoch;
    for i in 0..20 {
        log.append(login(i)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(eventually(std::time::Duration::from_secs(2), || log
        .status()
        .epoch
        >= start + 3));
    log.sync().unwrap();
    let report = log.verify(Some(&vk));
    assert!(report.is_ok(), "{report}");
    assert!(report.last_epoch.unwrap() > report.first_epoch.unwrap());
}
