//! Software change check (S3.1-35 F): at start, compares the running software — its version and
//! the SHA-256 of its executable — with what the previous start recorded, and records
//! `software_changed` with both when they differ.
//!
//! The record of the previous start is a small JSON file (`software.json`) in a directory the
//! caller gives, written with [`mamori_durable::write`] (temp file, fsync, rename, directory
//! fsync) *after* the event went to the sink: a crash in between records the change twice,
//! never not at all. A first start (no file) records the change from nothing; an unreadable file
//! is treated the same way and says so.
//!
//! What changes the software (install, slot switch, rollback) is the update issue's to record;
//! this event only says that what runs now differs from what ran before, whichever way it came.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mamori_audit::{Event, EventKind, Outcome, Sink};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The state file's name inside [`SoftwareConfig::state_dir`].
pub const STATE_FILE: &str = "software.json";

/// Settings of the software check.
#[derive(Debug, Clone)]
pub struct SoftwareConfig {
    /// Directory for the state file (kept with the daemon's state).
    pub state_dir: PathBuf,
    /// The running software's version (the daemon passes its own).
    pub version: String,
    /// The executable to hash. Default `/proc/self/exe`: the binary actually running, even if
    /// the file at its path was replaced since.
    pub executable: PathBuf,
}

impl SoftwareConfig {
    /// The check for the running executable, version `version`, state in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>, version: impl Into<String>) -> Self {
        Self {
            state_dir: state_dir.into(),
            version: version.into(),
            executable: PathBuf::from("/proc/self/exe"),
        }
    }
}

/// What ran: version and executable digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Software {
    /// Version string.
    pub version: String,
    /// SHA-256 of the executable, lowercase hex.
    pub sha256: String,
}

/// The state file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    software: Software,
    /// When it was recorded (UTC, RFC 3339).
    recorded: String,
}

/// The result of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SoftwareCheck {
    /// Same version and digest as at the previous start: nothing recorded.
    Unchanged(Software),
    /// Different (or no usable previous record): `software_changed` recorded.
    Changed {
        /// What the previous start recorded, if anything usable.
        before: Option<Software>,
        /// What runs now.
        after: Software,
    },
}

/// Errors of the software check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SoftwareError {
    /// The executable could not be read.
    #[error("reading the executable {path}: {source}")]
    Executable {
        /// The path read.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The state file could not be written.
    #[error("writing {path}: {source}")]
    State {
        /// The state file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// SHA-256 of a file, streamed, as lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(data_encoding::HEXLOWER.encode(ctx.finish().as_ref()))
}

/// Compares the running software with the previous start's record, records `software_changed`
/// through `sink` if they differ, and writes the new record.
pub fn check(
    config: &SoftwareConfig,
    sink: &Arc<dyn Sink>,
) -> Result<SoftwareCheck, SoftwareError> {
    let sha256 = sha256_file(&config.executable).map_err(|source| SoftwareError::Executable {
        path: config.executable.clone(),
        source,
    })?;
    let now = Software {
        version: config.version.clone(),
        sha256,
    };
    let path = config.state_dir.join(STATE_FILE);
    let (before, unreadable) = match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
            Ok(s) => (Some(s.software), None),
            Err(e) => (None, Some(format!("previous record unreadable: {e}"))),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => (None, None),
        Err(e) => (None, Some(format!("previous record unreadable: {e}"))),
    };
    if before.as_ref() == Some(&now) {
        return Ok(SoftwareCheck::Unchanged(now));
    }
    let executable = std::fs::read_link(&config.executable)
        .unwrap_or_else(|_| config.executable.clone())
        .display()
        .to_string();
    let mut details = json!({
        "before": before,
        "after": now,
        "executable": executable,
    });
    if let Some(b) = &before {
        details["version_changed"] = json!(b.version != now.version);
        details["digest_changed"] = json!(b.sha256 != now.sha256);
    } else {
        details["note"] =
            json!(unreadable.unwrap_or_else(|| "no previous record (first start)".into()));
    }
    sink.record(
        Event::new(EventKind::SoftwareChanged, Outcome::Success)
            .source("local")
            .details(details),
    );
    let state = State {
        software: now.clone(),
        recorded: mamori_audit::now_rfc3339(),
    };
    let bytes = serde_json::to_vec_pretty(&state).unwrap_or_default();
    mamori_durable::write(&path, &bytes, 0o600)
        .map_err(|source| SoftwareError::State { path, source })?;
    Ok(SoftwareCheck::Changed { before, after: now })
}
