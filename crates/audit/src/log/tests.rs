//! Attacks that need the writer's own secrets: someone who took over the running writer (the
//! current sealing key, the master key) and rewrites history, recomputing the chain.

use std::path::Path;

use mamori_crypto::aead::Key;

use super::chain::ChainHash;
use super::frame::{self, FrameKind};
use super::keyring::MasterKeys;
use super::seal::EpochKey;
use super::segment::{self, HEADER_LEN, SegmentHeader};
use super::{AuditLog, BreakReason, LogConfig, VerificationKey, verify};
use crate::{Event, EventKind, Outcome};

/// One segment, three epochs with records (create, then two opens), closed. The newest
/// records are in the current epoch (the state file's).
fn three_epochs() -> (tempfile::TempDir, std::path::PathBuf, Key, VerificationKey) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key = Key::generate().unwrap();
    let (log, vk) = AuditLog::create(&dir, &key, LogConfig::default()).unwrap();
    append(&log, 20);
    log.close().unwrap();
    for _ in 0..2 {
        let log = AuditLog::open(&dir, &key, LogConfig::default()).unwrap();
        append(&log, 20);
        log.close().unwrap();
    }
    (tmp, dir, key, vk)
}

fn append(log: &AuditLog, n: u64) {
    for i in 0..n {
        log.append(Event::new(EventKind::LoginFailed, Outcome::Failure).actor(format!("u{i}")))
            .unwrap();
    }
}

/// The frames of the only segment: (offset, kind, seq, epoch).
fn frames(bytes: &[u8]) -> Vec<(usize, FrameKind, u64, u32)> {
    let mut out = Vec::new();
    let mut off = HEADER_LEN;
    while off < bytes.len() {
        let f = frame::parse(&bytes[off..]).unwrap();
        out.push((off, f.head.kind, f.head.seq, f.head.epoch));
        off += f.len;
    }
    out
}

/// Rewrites the segment: `edit` changes frame `target`'s hashed bytes (or drops the frame when
/// it returns false); the chain is recomputed from there on, and every frame from there on is
/// re-tagged with `key` when given.
fn rewrite(
    path: &Path,
    target: usize,
    key: Option<&EpochKey>,
    edit: impl Fn(&mut Vec<u8>) -> bool,
) {
    let bytes = std::fs::read(path).unwrap();
    let mut prev = SegmentHeader::parse(&bytes).unwrap().header.anchor;
    let mut out = bytes[..HEADER_LEN].to_vec();
    let (mut off, mut idx, mut scratch) = (HEADER_LEN, 0, Vec::new());
    while off < bytes.len() {
        let f = frame::parse(&bytes[off..]).unwrap();
        let mut hashed = f.hashed.to_vec();
        let keep = idx != target || edit(&mut hashed);
        if keep {
            let h: ChainHash = prev.next(&hashed, &mut scratch);
            out.extend_from_slice(&hashed);
            out.extend_from_slice(&h.0);
            match key {
                Some(k) if idx >= target => out.extend_from_slice(&k.tag(&h)),
                _ => out.extend_from_slice(f.tag),
            }
            prev = h;
        }
        off += f.len;
        idx += 1;
    }
    std::fs::write(path, out).unwrap();
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let segs = segment::list(dir).unwrap();
    assert_eq!(segs.len(), 1);
    segs[0].1.clone()
}

/// The current sealing key, as a thief of the running writer (with the master key) has it.
fn stolen_current_key(dir: &Path, master: &Key) -> EpochKey {
    EpochKey::load(dir, &MasterKeys::derive(master).unwrap().state)
        .unwrap()
        .unwrap()
        .1
}

/// Issue 4: "a later compromise cannot rewrite earlier history undetected". A record of a past
/// epoch changed, the chain recomputed and everything re-sealed with the stolen current key:
/// the chain alone is satisfied, the seal check is not, and it points at the changed record.
#[test]
fn a_past_record_resealed_with_the_current_key_fails_the_seal_check() {
    let (_tmp, dir, master, vk) = three_epochs();
    let seg = only_segment(&dir);
    let stolen = stolen_current_key(&dir, &master);
    let fs = frames(&std::fs::read(&seg).unwrap());
    let (idx, &(offset, _, seq, epoch)) = fs
        .iter()
        .enumerate()
        .find(|(_, f)| f.1 == FrameKind::Record && f.3 < stolen.epoch())
        .unwrap();
    // Move the record's time by one millisecond (bytes 17..25 of a frame hold the UTC time).
    rewrite(&seg, idx, Some(&stolen), |h| {
        h[17] ^= 1;
        true
    });
    assert!(
        verify(&dir, None, None).is_ok(),
        "the chain alone cannot tell"
    );
    let r = verify(&dir, Some(&vk), None);
    let b = r.first_break.unwrap();
    assert_eq!((b.file, b.offset, b.seq), (seg, offset as u64, Some(seq)));
    assert_eq!(b.reason, BreakReason::BadSeal { epoch });
}

/// What the scheme does not promise, stated as a test: with the current key, records of the
/// current epoch can be forged undetected. The epoch interval (and each restart) bounds this.
#[test]
fn the_current_key_can_forge_the_current_epoch() {
    let (_tmp, dir, master, vk) = three_epochs();
    let seg = only_segment(&dir);
    let stolen = stolen_current_key(&dir, &master);
    let fs = frames(&std::fs::read(&seg).unwrap());
    let (idx, newest) = fs
        .iter()
        .enumerate()
        .rev()
        .find(|(_, f)| f.1 == FrameKind::Record)
        .unwrap();
    assert_eq!(
        newest.3,
        stolen.epoch(),
        "the newest records are in the current epoch"
    );
    rewrite(&seg, idx, Some(&stolen), |h| {
        h[17] ^= 1;
        true
    });
    let r = verify(&dir, Some(&vk), None);
    assert!(r.is_ok(), "{r}");
}

/// A frame whose epoch was lowered (chain recomputed) is found as the epoch going backwards.
#[test]
fn an_epoch_going_backwards_is_found() {
    let (_tmp, dir, _, _) = three_epochs();
    let seg = only_segment(&dir);
    let fs = frames(&std::fs::read(&seg).unwrap());
    // A record in the middle of an epoch above the first, preceded by a record of the same epoch.
    let idx = (1..fs.len())
        .find(|&i| fs[i].1 == FrameKind::Record && fs[i - 1].1 == FrameKind::Record && fs[i].3 > 1)
        .unwrap();
    let (offset, _, seq, epoch) = fs[idx];
    rewrite(&seg, idx, None, |h| {
        h[13..17].copy_from_slice(&(epoch - 1).to_le_bytes());
        true
    });
    let b = verify(&dir, None, None).first_break.unwrap();
    assert_eq!((b.offset, b.seq), (offset as u64, Some(seq)));
    assert_eq!(
        b.reason,
        BreakReason::EpochWentBackwards {
            from: epoch,
            to: epoch - 1
        }
    );
}

/// An epoch's closing seal removed (chain recomputed) is found at the next epoch's first frame:
/// the records at the end of that epoch could have been cut.
#[test]
fn a_removed_epoch_seal_is_found() {
    let (_tmp, dir, _, _) = three_epochs();
    let seg = only_segment(&dir);
    let fs = frames(&std::fs::read(&seg).unwrap());
    let idx = (1..fs.len())
        .find(|&i| fs[i].1 == FrameKind::EpochClose && fs[i - 1].1 == FrameKind::Record)
        .unwrap();
    let closed_epoch = fs[idx].3;
    rewrite(&seg, idx, None, |_| false);
    let b = verify(&dir, None, None).first_break.unwrap();
    assert_eq!(
        b.offset, fs[idx].0 as u64,
        "the next frame now sits where the seal was"
    );
    assert_eq!(
        b.reason,
        BreakReason::EpochNotClosed {
            epoch: closed_epoch
        }
    );
}

/// A sealing state whose key does not verify the log's last seal (replaced) is refused at open,
/// leaving the log as found; an older genuine state is fine (keys only derive forward).
#[test]
fn a_replaced_sealing_state_is_refused_and_an_older_one_is_evolved_forward() {
    let (_tmp, dir, master, vk) = three_epochs();
    let kek = MasterKeys::derive(&master).unwrap().state;
    let (log_id, current) = EpochKey::load(&dir, &kek).unwrap().unwrap();

    let mut forged = EpochKey::generate().unwrap();
    forged.advance_to(current.epoch()).unwrap();
    forged.save(&dir, &kek, &log_id).unwrap();
    let seg = only_segment(&dir);
    let before = std::fs::read(&seg).unwrap();
    assert!(matches!(
        AuditLog::open(&dir, &master, LogConfig::default()),
        Err(super::LogError::SealStateMismatch)
    ));
    assert_eq!(std::fs::read(&seg).unwrap(), before, "nothing written");

    // The epoch-0 key is an older genuine state: the log derives forward and goes on.
    let k0 = vk.epoch_key(0).unwrap();
    k0.save(&dir, &kek, &log_id).unwrap();
    let log = AuditLog::open(&dir, &master, LogConfig::default()).unwrap();
    assert_eq!(log.status().epoch, current.epoch() + 1);
    assert!(log.verify(Some(&vk)).is_ok());
}
