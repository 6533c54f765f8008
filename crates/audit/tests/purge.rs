//! Purging personal data (S3.1-41): actors and source addresses of old records are destroyed by
//! destroying their segments' personal keys. The files are never rewritten, the raw bytes never
//! held the names in clear, and the log still verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::time::Duration;

use common::*;
use mamori_audit::log::{AuditLog, PURGED, verify};
use mamori_audit::{Event, EventKind, Outcome};
use mamori_crypto::aead::Key;
use time::OffsetDateTime;

const MARKER: &str = "sentinel-user";

fn login_of_marker(i: u64) -> Event {
    Event::new(EventKind::LoginSucceeded, Outcome::Success)
        .actor(MARKER)
        .source("198.51.100.77")
        .details(serde_json::json!({ "n": i }))
}

#[test]
fn purging_destroys_old_personal_data_and_the_log_still_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key = Key::generate().unwrap();
    let (log, vk) = AuditLog::create(&dir, &key, small_config()).unwrap();
    for i in 0..1500 {
        log.append(login_of_marker(i)).unwrap();
    }
    log.sync().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let cut = OffsetDateTime::now_utc();
    std::thread::sleep(Duration::from_millis(20));
    for i in 0..10 {
        log.append(login_of_marker(i)).unwrap();
    }
    log.sync().unwrap();
    let bytes_before = all_bytes(&dir).len();

    let report = log.purge_personal_data(cut).unwrap();
    assert!(report.segments >= 2, "{report:?}");
    let up_to = report.up_to_seq.unwrap();
    let all: Vec<_> = log.records(1).map(|r| r.unwrap()).collect();
    assert_eq!(all.len(), 1510);
    for r in &all {
        if r.event.seq <= up_to {
            assert!(r.personal_purged, "{}", r.event.seq);
            assert_eq!(r.event.actor.as_deref(), Some(PURGED));
            assert_eq!(r.event.source.as_deref(), Some(PURGED));
            assert_eq!(r.event.event, EventKind::LoginSucceeded, "the rest stays");
        } else {
            assert_eq!(r.event.actor.as_deref(), Some(MARKER), "{}", r.event.seq);
        }
    }
    assert!(
        all[1500..].iter().all(|r| !r.personal_purged),
        "newer records keep theirs"
    );
    // The segments were not rewritten: the log only grew by the keyring's rewrite.
    assert!(all_bytes(&dir).len() <= bytes_before + 4096);

    // A purge of everything closes the current segment first; new records keep their actor.
    let report = log
        .purge_personal_data(OffsetDateTime::now_utc() + time::Duration::seconds(1))
        .unwrap();
    assert!(report.up_to_seq.unwrap() >= 1510, "{report:?}");
    assert!(log.records(1).all(|r| r.unwrap().personal_purged));
    let seq = log.append_durable(login_of_marker(0)).unwrap();
    assert_eq!(
        log.read(seq, 1).unwrap()[0].event.actor.as_deref(),
        Some(MARKER)
    );
    log.close().unwrap();

    // The raw files never contain the marker in clear (S3.1-41 test idea: grep -a the storage).
    assert!(!contains(&all_bytes(&dir), MARKER.as_bytes()));
    assert!(!contains(&all_bytes(&dir), b"198.51.100.77"));
    let r = verify(&dir, Some(&vk), Some(&key));
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.personal_purged, 1510);
    let log = AuditLog::open(&dir, &key, small_config()).unwrap();
    assert!(
        log.read(1, 1).unwrap()[0].personal_purged,
        "a purge survives a restart"
    );
}

#[test]
fn purging_also_destroys_the_personal_fields_of_details() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key = Key::generate().unwrap();
    let (log, _vk) = AuditLog::create(&dir, &key, small_config()).unwrap();
    let events = [
        Event::new(EventKind::UserCreated, Outcome::Success)
            .actor("admin")
            .details(serde_json::json!({ "user": MARKER, "role": "operator" })),
        Event::new(EventKind::AccessDenied, Outcome::Failure)
            .actor("op")
            .details(serde_json::json!({ "method": "GET", "path": format!("/api/v1/users/{MARKER}") })),
        Event::new(EventKind::SettingsChanged, Outcome::Success)
            .actor("admin")
            .details(serde_json::json!({ "setting": "access", "before": [], "after": ["198.51.100.77/32"] })),
    ];
    let mut seqs = Vec::new();
    for e in events {
        seqs.push(log.append_durable(e).unwrap());
    }
    // Before the purge the reader sees every field as it was written.
    let read = log.read(seqs[0], 3).unwrap();
    assert_eq!(read[0].event.details["user"], MARKER);
    assert_eq!(read[0].event.details["role"], "operator");
    assert!(
        read[1].event.details["path"]
            .as_str()
            .unwrap()
            .ends_with(MARKER)
    );
    assert_eq!(read[2].event.details["after"][0], "198.51.100.77/32");
    log.sync().unwrap();
    assert!(
        !contains(&all_bytes(&dir), MARKER.as_bytes()),
        "encrypted at rest"
    );

    log.purge_personal_data(OffsetDateTime::now_utc() + time::Duration::seconds(1))
        .unwrap();
    let read = log.read(seqs[0], 3).unwrap();
    assert_eq!(read[0].event.details["user"], PURGED);
    assert_eq!(read[0].event.details["role"], "operator", "the rest stays");
    assert_eq!(read[1].event.details["path"], PURGED);
    assert_eq!(read[1].event.details["method"], "GET");
    assert_eq!(read[2].event.details["after"], PURGED);
    assert_eq!(read[2].event.details["setting"], "access");
    assert!(read.iter().all(|r| r.personal_purged));
    log.close().unwrap();
}
