//! The forwarder's cursor: the last seq it has acknowledged, and how many records were
//! overwritten before it read them. Persisted so the count survives restarts (S3.1-35 R3).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::Seq;
use super::error::{LogError, io_at};

/// The cursor file name.
pub(crate) const CURSOR_FILE: &str = "cursor";

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct CursorState {
    pub(crate) acknowledged: Seq,
    pub(crate) overwritten_unread: u64,
}

pub(crate) struct Cursor {
    path: PathBuf,
    state: Mutex<CursorState>,
}

impl Cursor {
    pub(crate) fn load(dir: &Path) -> Result<Self, LogError> {
        let path = dir.join(CURSOR_FILE);
        let state = match std::fs::read(&path) {
            // A cursor that does not parse only costs a recount; it is not evidence.
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CursorState::default(),
            Err(e) => return Err(io_at(&path)(e)),
        };
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    pub(crate) fn get(&self) -> CursorState {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the acknowledged seq forward (never back) and persists it.
    pub(crate) fn acknowledge(&self, seq: Seq) -> Result<(), LogError> {
        self.update(|s| {
            let moved = seq > s.acknowledged;
            s.acknowledged = s.acknowledged.max(seq);
            moved
        })
    }

    pub(crate) fn add_overwritten_unread(&self, n: u64) -> Result<(), LogError> {
        self.update(|s| {
            s.overwritten_unread = s.overwritten_unread.saturating_add(n);
            n > 0
        })
    }

    fn update(&self, f: impl FnOnce(&mut CursorState) -> bool) -> Result<(), LogError> {
        let mut g = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !f(&mut g) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&*g).unwrap_or_default();
        mamori_durable::write(&self.path, &bytes, 0o600).map_err(io_at(&self.path))
    }
}
