//! Helpers shared by the audit log integration tests. The frame walker reads the documented
//! on-disk format on its own, so the tests also pin that format.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::path::{Path, PathBuf};
use std::time::Duration;

use mamori_audit::log::LogConfig;
use mamori_audit::{Event, EventKind, Outcome};
use mamori_crypto::aead::Key;

/// Bytes of a segment header (docs: segment.rs).
pub const HEADER_LEN: usize = 155;

/// Small segments so a few thousand records span many of them.
pub fn small_config() -> LogConfig {
    let mut c = LogConfig::default();
    c.segment_bytes = 128 * 1024;
    c.capacity_bytes = 64 * 1024 * 1024;
    c
}

pub fn key_copy(k: &Key) -> Key {
    Key::from_bytes(k.dangerous_raw_bytes()).unwrap()
}

/// A login event of user `user-<i>` from a documentation address.
pub fn login(i: u64) -> Event {
    Event::new(EventKind::LoginFailed, Outcome::Failure)
        .actor(format!("user-{i}"))
        .source(format!("192.0.2.{}", i % 250))
        .details(serde_json::json!({ "method": "password", "n": i }))
}

/// One frame as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAt {
    pub offset: usize,
    pub len: usize,
    /// 1 record, 2 epoch closed, 3 segment end.
    pub kind: u8,
    pub seq: u64,
    pub epoch: u32,
}

/// The frames of a segment file's bytes (stops at the first incomplete one).
pub fn frames(bytes: &[u8]) -> Vec<FrameAt> {
    let mut out = Vec::new();
    let mut off = HEADER_LEN;
    while off + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        if len < 33 || off + len > bytes.len() {
            break;
        }
        out.push(FrameAt {
            offset: off,
            len,
            kind: bytes[off + 4],
            seq: u64::from_le_bytes(bytes[off + 5..off + 13].try_into().unwrap()),
            epoch: u32::from_le_bytes(bytes[off + 13..off + 17].try_into().unwrap()),
        });
        off += len;
    }
    out
}

pub fn records(bytes: &[u8]) -> Vec<FrameAt> {
    frames(bytes).into_iter().filter(|f| f.kind == 1).collect()
}

/// The segment files, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("seg-") && n.ends_with(".log")
        })
        .collect();
    v.sort();
    v
}

/// Every byte of every file in `dir`.
pub fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.extend(std::fs::read(p).unwrap());
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}
