//! Recovery at open, made deterministic: what a crash or a power loss can leave at the end of
//! the log is cut, reported and kept for inspection, and the log continues (issue 4: "after
//! kill -9 at any point, open() finds the last complete, valid frame, truncates a torn tail
//! (and records that it did)"). kill -9 itself rarely tears a frame (it mostly lands in fsync),
//! so these tests write the torn states directly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::*;
use mamori_audit::log::{AuditLog, LogNotice, verify};
use mamori_crypto::aead::Key;

fn log_with(
    n: u64,
) -> (
    tempfile::TempDir,
    PathBuf,
    Key,
    mamori_audit::VerificationKey,
) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key = Key::generate().unwrap();
    let (log, vk) = AuditLog::create(&dir, &key, small_config()).unwrap();
    for i in 0..n {
        log.append(login(i)).unwrap();
    }
    log.close().unwrap();
    (tmp, dir, key, vk)
}

fn append_raw(path: &std::path::Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Half a frame at the end (a write cut short): cut at the last whole frame, kept beside the
/// segment, reported; the chain and the seq continue from the last whole frame.
#[test]
fn a_torn_frame_is_cut_kept_reported_and_the_log_continues() {
    let (_tmp, dir, key, vk) = log_with(100);
    let last = segments(&dir).pop().unwrap();
    let bytes = std::fs::read(&last).unwrap();
    let rec = records(&bytes)[50];
    let torn = &bytes[rec.offset..rec.offset + rec.len / 2];
    append_raw(&last, torn);
    let raw = verify(&dir, Some(&vk), Some(&key));
    assert!(raw.is_ok() && raw.torn_tail.is_some(), "{raw}");

    let log = AuditLog::open(&dir, &key, small_config()).unwrap();
    let notices = log.take_notices();
    let Some(LogNotice::TornTailCut {
        file,
        offset,
        bytes: cut,
        kept_as: Some(kept),
    }) = notices.first()
    else {
        panic!("no torn-tail notice: {notices:?}");
    };
    assert_eq!(
        (file, *offset, *cut),
        (&last, bytes.len() as u64, torn.len() as u64)
    );
    assert_eq!(std::fs::read(kept).unwrap(), torn, "the cut bytes are kept");
    assert_eq!(log.append_durable(login(1)).unwrap(), 101);
    let r = log.verify(Some(&vk));
    assert!(r.is_ok() && r.torn_tail.is_none(), "{r}");
    log.close().unwrap();
    assert!(verify(&dir, Some(&vk), Some(&key)).is_ok());
}

/// Zeros after the last frame (blocks allocated but never written before a power loss): cut
/// and not kept, since they hold nothing.
#[test]
fn zeros_from_a_power_loss_are_cut_and_not_kept() {
    let (_tmp, dir, key, vk) = log_with(10);
    let last = segments(&dir).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    append_raw(&last, &[0u8; 4096]);
    let log = AuditLog::open(&dir, &key, small_config()).unwrap();
    assert!(matches!(
        log.take_notices().first(),
        Some(LogNotice::TornTailCut { offset, bytes: 4096, kept_as: None, .. }) if *offset == len
    ));
    assert_eq!(log.append_durable(login(1)).unwrap(), 11);
    assert!(log.verify(Some(&vk)).is_ok());
}

/// A whole frame whose bytes were damaged at the end (its chain hash does not match) is cut
/// like a torn one: at open only the tail can be a crash artefact.
#[test]
fn a_damaged_last_frame_is_cut() {
    let (_tmp, dir, key, vk) = log_with(10);
    let last = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let f = *frames(&bytes).last().unwrap();
    bytes[f.offset + 40] ^= 0xff;
    std::fs::write(&last, &bytes).unwrap();
    let log = AuditLog::open(&dir, &key, small_config()).unwrap();
    assert!(matches!(
        log.take_notices().first(),
        Some(LogNotice::TornTailCut { offset, .. }) if *offset == f.offset as u64
    ));
    assert!(log.verify(Some(&vk)).is_ok());
}

/// A segment file cut inside its header (a crash while a roll created it) is removed, and the
/// roll is done again.
#[test]
fn a_segment_cut_inside_its_header_is_removed_and_the_roll_redone() {
    let (_tmp, dir, key, vk) = log_with(3000);
    let segs = segments(&dir);
    let last = segs.last().unwrap();
    let header = std::fs::read(last).unwrap()[..60].to_vec();
    // The file the next roll would create, with only the start of a header in it.
    let bogus = dir.join(format!("seg-{:020}.log", 3001));
    std::fs::write(&bogus, &header).unwrap();
    let log = AuditLog::open(&dir, &key, small_config()).unwrap();
    assert!(!bogus.exists());
    assert!(
        log.take_notices()
            .iter()
            .any(|n| matches!(n, LogNotice::TornTailCut { file, offset: 0, .. } if *file == bogus))
    );
    for i in 0..1000 {
        log.append(login(i)).unwrap();
    }
    log.sync().unwrap();
    let r = log.verify(Some(&vk));
    assert!(r.is_ok(), "{r}");
}

/// Anything else that does not fit is not a crash artefact: open refuses and changes nothing.
#[test]
fn a_segment_whose_header_is_damaged_is_refused_not_repaired() {
    let (_tmp, dir, key, _) = log_with(10);
    let last = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&last, &bytes).unwrap();
    assert!(AuditLog::open(&dir, &key, small_config()).is_err());
    assert_eq!(std::fs::read(&last).unwrap(), bytes, "nothing was changed");
}
