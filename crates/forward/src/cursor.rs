//! The per-collector cursor: the sequence number of the next record to deliver, saved with
//! an atomic, durable write (mamori-durable) after every acknowledged batch.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorFile {
    version: u32,
    collector: String,
    next_seq: u64,
}

/// The cursor file of a collector in `state_dir`.
pub(crate) fn path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(format!("{id}.cursor"))
}

/// The saved cursor: `Ok(None)` when the collector has none yet.
pub(crate) fn load(path: &Path, id: &str) -> io::Result<Option<u64>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file: CursorFile = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if file.version != VERSION || file.collector != id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "cursor file of another version or collector",
        ));
    }
    Ok(Some(file.next_seq))
}

/// Saves the cursor atomically and durably (owner read/write only).
pub(crate) fn store(path: &Path, id: &str, next_seq: u64) -> io::Result<()> {
    let file = CursorFile {
        version: VERSION,
        collector: id.to_string(),
        next_seq,
    };
    let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
    mamori_durable::write(path, &bytes, 0o600)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // unwraps are assertions here

    use super::*;

    #[test]
    fn a_cursor_round_trips_and_belongs_to_its_collector() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "a");
        assert_eq!(load(&p, "a").unwrap(), None);
        store(&p, "a", 17).unwrap();
        store(&p, "a", 18).unwrap();
        assert_eq!(load(&p, "a").unwrap(), Some(18));
        assert!(
            load(&p, "b").is_err(),
            "a file copied from another collector"
        );
        std::fs::write(&p, b"{").unwrap();
        assert!(load(&p, "a").is_err());
    }
}
