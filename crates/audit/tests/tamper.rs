//! `verify` finds every kind of tampering and points to the first break (issue 4: flipping a
//! byte, deleting a record, reordering, truncating; S3.1-35 audit log integrity).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};

use common::*;
use mamori_audit::log::{AuditLog, BreakReason, Start, VerificationKey, VerifyReport, verify};
use mamori_crypto::aead::Key;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    key: Key,
    vk: VerificationKey,
}

/// A log of several segments and several epochs (two opens), closed.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key = Key::generate().unwrap();
    let (log, vk) = AuditLog::create(&dir, &key, small_config()).unwrap();
    for i in 0..2500 {
        log.append(login(i)).unwrap();
    }
    log.close().unwrap();
    let log = AuditLog::open(&dir, &key, small_config()).unwrap();
    for i in 0..300 {
        log.append(login(i)).unwrap();
    }
    log.close().unwrap();
    assert!(segments(&dir).len() >= 5);
    let f = Fixture {
        _tmp: tmp,
        dir,
        key,
        vk,
    };
    let r = f.verify_full();
    assert!(r.is_ok(), "{r}");
    f
}

impl Fixture {
    fn seg(&self, i: usize) -> PathBuf {
        segments(&self.dir)[i].clone()
    }

    fn verify_full(&self) -> VerifyReport {
        verify(&self.dir, Some(&self.vk), Some(&self.key))
    }

    fn verify_sealed(&self) -> VerifyReport {
        verify(&self.dir, Some(&self.vk), None)
    }
}

/// The first break, which must exist.
fn first_break(r: &VerifyReport) -> (PathBuf, u64, Option<u64>, BreakReason) {
    let b = r
        .first_break
        .clone()
        .unwrap_or_else(|| panic!("no break found: {r}"));
    (b.file, b.offset, b.seq, b.reason)
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let orig = std::fs::read(path).unwrap();
    let mut b = orig.clone();
    f(&mut b);
    std::fs::write(path, &b).unwrap();
    orig
}

/// Flipping any single byte of a frame (length, clear fields, ciphertext, hash, tag) is found
/// at that frame, with its seq.
#[test]
fn flipping_any_byte_of_a_frame_is_found_at_that_frame() {
    let f = fixture();
    let seg = f.seg(1);
    let orig = std::fs::read(&seg).unwrap();
    let target = records(&orig)[10];
    for i in 0..target.len {
        let mut b = orig.clone();
        b[target.offset + i] ^= 0x01;
        std::fs::write(&seg, &b).unwrap();
        let r = f.verify_sealed();
        let (file, offset, seq, reason) = first_break(&r);
        assert_eq!(
            (&file, offset, seq),
            (&seg, target.offset as u64, Some(target.seq)),
            "flip at frame byte {i}: {r}"
        );
        assert!(
            matches!(
                reason,
                BreakReason::ContentModified
                    | BreakReason::FrameMalformed { .. }
                    | BreakReason::BadSeal { .. }
            ),
            "flip at frame byte {i}: {reason:?}"
        );
    }
    std::fs::write(&seg, &orig).unwrap();
    assert!(f.verify_full().is_ok());
}

/// A changed ciphertext byte in the newest segment is found too, also without any key.
#[test]
fn a_changed_byte_in_the_last_segment_is_found_without_keys() {
    let f = fixture();
    let segs = segments(&f.dir);
    let last = segs.last().unwrap().clone();
    let target = records(&std::fs::read(&last).unwrap())[3];
    edit(&last, |b| b[target.offset + 60] ^= 0x80);
    let r = verify(&f.dir, None, None);
    assert_eq!(
        first_break(&r),
        (
            last,
            target.offset as u64,
            Some(target.seq),
            BreakReason::ContentModified
        )
    );
}

/// A changed header byte is found at the header; a changed header tag needs the key.
#[test]
fn a_changed_header_byte_is_found_at_the_header() {
    let f = fixture();
    let seg = f.seg(2);
    let orig = edit(&seg, |b| b[40] ^= 0x01); // in the anchor
    let (file, offset, _, reason) = first_break(&f.verify_sealed());
    assert_eq!((file, offset), (seg.clone(), 0));
    assert!(
        matches!(reason, BreakReason::HeaderDamaged { .. }),
        "{reason:?}"
    );

    std::fs::write(&seg, &orig).unwrap();
    edit(&seg, |b| b[HEADER_LEN - 1] ^= 0x01); // in the header's seal tag
    assert!(
        verify(&f.dir, None, None).is_ok(),
        "a tag is only checkable with the key"
    );
    let (file, offset, _, reason) = first_break(&f.verify_sealed());
    assert_eq!((file, offset), (seg, 0));
    assert!(
        matches!(reason, BreakReason::HeaderSealInvalid { .. }),
        "{reason:?}"
    );
}

/// A record cut out of the middle of a segment is found where it was.
#[test]
fn a_deleted_record_is_found_where_it_was() {
    let f = fixture();
    let seg = f.seg(1);
    let target = records(&std::fs::read(&seg).unwrap())[20];
    edit(&seg, |b| {
        b.drain(target.offset..target.offset + target.len);
    });
    assert_eq!(
        first_break(&verify(&f.dir, None, None)),
        (
            seg,
            target.offset as u64,
            Some(target.seq),
            BreakReason::RecordMissing {
                expected: target.seq,
                found: target.seq + 1
            }
        )
    );
}

/// Two records swapped are found as reordered, at the first of them.
#[test]
fn swapped_records_are_found_as_reordered() {
    let f = fixture();
    let seg = f.seg(1);
    let recs = records(&std::fs::read(&seg).unwrap());
    let (a, b) = (recs[30], recs[31]);
    edit(&seg, |bytes| {
        let fa = bytes[a.offset..a.offset + a.len].to_vec();
        let fb = bytes[b.offset..b.offset + b.len].to_vec();
        let mut swapped = fb;
        swapped.extend(fa);
        bytes.splice(a.offset..b.offset + b.len, swapped);
    });
    assert_eq!(
        first_break(&verify(&f.dir, None, None)),
        (
            seg,
            a.offset as u64,
            Some(a.seq),
            BreakReason::Reordered {
                expected: a.seq,
                found: b.seq
            }
        )
    );
}

/// A segment that is not the last, cut in the middle of a frame, is found at that frame.
#[test]
fn a_segment_cut_mid_frame_is_found() {
    let f = fixture();
    let seg = f.seg(1);
    let target = records(&std::fs::read(&seg).unwrap())[40];
    edit(&seg, |b| b.truncate(target.offset + 17));
    assert_eq!(
        first_break(&verify(&f.dir, None, None)),
        (
            seg,
            target.offset as u64,
            Some(target.seq),
            BreakReason::SegmentTruncated
        )
    );
}

/// A segment that is not the last, cut cleanly between two frames, is still found: it lacks
/// its end frame.
#[test]
fn a_segment_cut_at_a_frame_boundary_is_found() {
    let f = fixture();
    let seg = f.seg(1);
    let target = records(&std::fs::read(&seg).unwrap())[40];
    edit(&seg, |b| b.truncate(target.offset));
    assert_eq!(
        first_break(&verify(&f.dir, None, None)),
        (
            seg,
            target.offset as u64,
            Some(target.seq),
            BreakReason::SegmentTruncated
        )
    );
}

/// A whole segment deleted from the middle is found at the next one, naming the gap.
#[test]
fn a_deleted_middle_segment_is_found() {
    let f = fixture();
    let (gone, next) = (f.seg(2), f.seg(3));
    let gone_first = records(&std::fs::read(&gone).unwrap())[0].seq;
    let next_first = records(&std::fs::read(&next).unwrap())[0].seq;
    std::fs::remove_file(&gone).unwrap();
    assert_eq!(
        first_break(&verify(&f.dir, None, None)),
        (
            next,
            0,
            Some(gone_first),
            BreakReason::SegmentMissing {
                expected_first_seq: gone_first,
                found_first_seq: next_first
            }
        )
    );
}

/// A segment moved in from another log does not fit.
#[test]
fn a_segment_from_another_log_is_found() {
    let f = fixture();
    let other = fixture();
    let seg = f.seg(2);
    std::fs::copy(other.seg(2), &seg).unwrap();
    let (file, offset, _, reason) = first_break(&verify(&f.dir, None, None));
    assert_eq!((file, offset, reason), (seg, 0, BreakReason::LogIdMismatch));
    let (_, _, _, reason) = first_break(&verify(&other.dir, Some(&f.vk), None));
    assert_eq!(reason, BreakReason::WrongVerificationKey);
}

/// Deleting the oldest segments looks exactly like the capacity limit: reported as a start
/// after overwrite, not as a break (the forwarded copy is the defence).
#[test]
fn deleting_the_oldest_segment_reads_as_a_start_after_overwrite() {
    let f = fixture();
    let second_first = records(&std::fs::read(f.seg(1)).unwrap())[0].seq;
    std::fs::remove_file(f.seg(0)).unwrap();
    let r = f.verify_full();
    assert!(r.is_ok(), "{r}");
    assert_eq!(
        r.start,
        Start::AfterOverwrite {
            first_seq: second_first
        }
    );
}

/// A record that does not decrypt is found by the decryption check (here: its segment's keys
/// were removed from the keyring by swapping in an older keyring).
#[test]
fn records_whose_keys_are_gone_fail_the_decryption_check() {
    let f = fixture();
    let old_ring = std::fs::read(f.dir.join("keyring")).unwrap();
    let log = AuditLog::open(&f.dir, &f.key, small_config()).unwrap();
    for i in 0..800 {
        log.append(login(i)).unwrap();
    }
    log.close().unwrap();
    std::fs::write(f.dir.join("keyring"), old_ring).unwrap();
    let (_, _, _, reason) = first_break(&f.verify_full());
    assert!(
        matches!(reason, BreakReason::DecryptionFailed { .. }),
        "{reason:?}"
    );
}
