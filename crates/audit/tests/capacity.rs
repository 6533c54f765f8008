//! Capacity: the log stays within its size by overwriting the oldest segments, warns at 80 %
//! and 90 %, counts records overwritten before the forwarder acknowledged them, and still
//! verifies (S3.1-35 R2, R3).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use common::*;
use mamori_audit::log::{AuditLog, LogNotice, Start, verify};
use mamori_crypto::aead::Key;

#[test]
fn filling_past_capacity_overwrites_the_oldest_warns_and_still_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key = Key::generate().unwrap();
    let mut c = small_config();
    c.capacity_bytes = 1024 * 1024; // 8 segments of 128 KiB
    let (log, vk) = AuditLog::create(&dir, &key, c.clone()).unwrap();
    let mut notices = Vec::new();
    for i in 0..2000 {
        log.append(login(i)).unwrap();
    }
    log.sync().unwrap();
    log.set_acknowledged(500).unwrap();
    for i in 0..5000 {
        log.append(login(i)).unwrap();
    }
    // Logins still work on a full log: a durable append succeeds.
    log.append_durable(login(1)).unwrap();
    notices.extend(log.take_notices());

    let st = log.status();
    assert!(st.used_bytes <= st.capacity_bytes, "{st:?}");
    let first = st.first_seq.unwrap();
    assert!(first > 1000, "the oldest records are gone: {st:?}");
    assert!(segments(&dir).len() <= 8);

    let thresholds: Vec<u8> = notices
        .iter()
        .filter_map(|n| match n {
            LogNotice::CapacityThresholdCrossed { percent, .. } => Some(*percent),
            _ => None,
        })
        .collect();
    assert_eq!(thresholds, [80, 90], "each threshold warns once");
    let first_overwrite = notices
        .iter()
        .position(|n| matches!(n, LogNotice::RecordsOverwritten { .. }))
        .unwrap();
    let warn_90 = notices
        .iter()
        .position(|n| matches!(n, LogNotice::CapacityThresholdCrossed { percent: 90, .. }))
        .unwrap();
    assert!(
        warn_90 < first_overwrite,
        "the warning comes before the overwrite"
    );
    let (mut records, mut unread) = (0, 0);
    for n in &notices {
        if let LogNotice::RecordsOverwritten {
            records: r,
            unread: u,
            first_kept_seq,
        } = n
        {
            records += r;
            unread += u;
            assert!(*first_kept_seq <= first);
        }
    }
    assert_eq!(records, first - 1, "every deleted record is reported");
    assert_eq!(
        unread,
        first - 1 - 500,
        "those after the acknowledged seq were unread"
    );
    assert_eq!(st.overwritten_unread, unread);

    assert_eq!(log.read(1, 1).unwrap()[0].event.seq, first);
    let r = log.verify(Some(&vk));
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.start, Start::AfterOverwrite { first_seq: first });
    log.close().unwrap();

    let r = verify(&dir, Some(&vk), Some(&key));
    assert!(r.is_ok(), "{r}");
    let log = AuditLog::open(&dir, &key, c).unwrap();
    let st = log.status();
    assert_eq!(
        (st.acknowledged, st.overwritten_unread),
        (500, unread),
        "persisted"
    );
}
