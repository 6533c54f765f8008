//! Who holds which audit-log key.
//!
//! The management process writes the audit log: it needs the log's master key (derived from
//! the data key it already gets) and holds only the *current* sealing epoch key. The
//! verification key — which can check every past seal, and could also forge them — is made when
//! the log is created and never reaches the management process: the privileged side creates the
//! log before the management process starts and keeps the verification key beside the KEK in
//! the root-only `keys` directory. So a compromised management process can forge at most its
//! current epoch (see `mamori_audit::log`), and `mamori audit verify` (root, on the device)
//! checks everything.
//!
//! A log that cannot be opened (damaged beyond a torn tail, or keys that do not match) is moved
//! aside, kept for inspection, and a new log is started: a device that refuses to start because
//! of its log would take the management plane down with it. The caller records that as an
//! event.

use std::path::{Path, PathBuf};

use mamori_audit::log::{AuditLog, LogConfig, LogError, VerificationKey};
use mamori_audit::{Event, EventKind, Outcome};
use mamori_crypto::aead::Key;
use mamori_keys::{FileKeyProvider, load_or_create_data_key};

use crate::parent::{DATA_KEY_FILE, KEK_FILE};
use crate::{PrivsepError, Result};

/// The audit log's directory, under the state directory (inside the management process's
/// writable `audit`).
pub const AUDIT_LOG_DIR: &str = "audit/log";
/// The sealed verification key, in the root-only keys directory.
pub const VERIFICATION_KEY_FILE: &str = "keys/audit-verification.sealed";

const MASTER_PURPOSE: &str = "audit-log/master";
const VK_PURPOSE: &str = "audit-log/verification-key";
const VK_CONTEXT: &[u8] = b"mamori/audit-log/verification-key/v1";

/// The audit log's master key, from the data key (both processes derive the same one).
pub fn master_key(data_key: &Key) -> Result<Key> {
    Ok(data_key.derive(MASTER_PURPOSE)?)
}

/// What [`ensure_audit_log`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The log was there and opens.
    Present,
    /// There was no log; a new one was created.
    Created,
    /// The log could not be opened; it was moved to `moved_to` and a new one created.
    Replaced {
        /// Where the old log now is.
        moved_to: PathBuf,
        /// Why it could not be opened.
        reason: String,
    },
}

fn data_key(state_dir: &Path) -> Result<Key> {
    let kek = FileKeyProvider::open(&state_dir.join(KEK_FILE))?;
    Ok(load_or_create_data_key(&kek, &state_dir.join(DATA_KEY_FILE))?.0)
}

/// Makes sure the audit log exists and opens, creating it (and storing its verification key)
/// if not. Run by the side that can read `keys/`: the privileged parent before it starts the
/// management process, or the single process. The KEK must exist.
pub fn ensure_audit_log(state_dir: &Path, config: &LogConfig) -> Result<Ensured> {
    crate::parent::ensure_kek(state_dir)?;
    let dek = data_key(state_dir)?;
    let master = master_key(&dek)?;
    let dir = state_dir.join(AUDIT_LOG_DIR);
    let vk_present = state_dir.join(VERIFICATION_KEY_FILE).exists();
    let moved = match open_waiting(&dir, &master, config) {
        Ok(log) if vk_present => {
            record_notices(&log)?;
            log.close().map_err(log_err)?;
            return Ok(Ensured::Present);
        }
        Ok(log) => {
            // A log whose verification key is gone cannot be checked: start a new one that can.
            record_notices(&log)?;
            log.close().map_err(log_err)?;
            Some(move_aside(&dir, "its verification key is missing".into())?)
        }
        Err(LogError::NotFound { .. }) => None,
        Err(e @ LogError::Locked { .. }) => return Err(log_err(e)),
        Err(e) => Some(move_aside(&dir, e.to_string())?),
    };
    let (log, vk) = AuditLog::create(&dir, &master, config.clone()).map_err(log_err)?;
    if let Some((moved_to, reason)) = &moved {
        // The new log's first record says what happened to the old one.
        log.append_durable(
            Event::new(EventKind::AuditLogReplaced, Outcome::Failure).details(
                serde_json::json!({"kept_at": moved_to.display().to_string(), "reason": reason}),
            ),
        )
        .map_err(log_err)?;
    }
    log.close().map_err(log_err)?;
    store_verification_key(state_dir, &dek, &vk)?;
    Ok(match moved {
        None => Ensured::Created,
        Some((moved_to, reason)) => Ensured::Replaced { moved_to, reason },
    })
}

/// How long a start waits for a management process that is still ending (after a crash of the
/// parent, or a power-cut test) to let go of the log.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

fn open_waiting(dir: &Path, master: &Key, config: &LogConfig) -> Result<AuditLog, LogError> {
    let start = std::time::Instant::now();
    loop {
        match AuditLog::open(dir, master, config.clone()) {
            Err(LogError::Locked { .. }) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// What opening found (a cut tail above all: a crash, or tampering) goes into the log itself,
/// before the management process starts writing.
fn record_notices(log: &AuditLog) -> Result<()> {
    for notice in log.take_notices() {
        tracing::warn!(target: "mamori::privsep", audit = true, %notice, "audit log at start");
        log.append_durable(notice.to_event()).map_err(log_err)?;
    }
    Ok(())
}

fn move_aside(dir: &Path, reason: String) -> Result<(PathBuf, String)> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let to = dir.with_file_name(format!("log.unreadable-{stamp}"));
    std::fs::rename(dir, &to).map_err(|source| PrivsepError::StateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    tracing::error!(
        target: "mamori::privsep",
        audit = true,
        moved_to = %to.display(),
        %reason,
        "the audit log could not be opened; kept it aside and started a new one"
    );
    Ok((to, reason))
}

fn store_verification_key(state_dir: &Path, dek: &Key, vk: &VerificationKey) -> Result<()> {
    let path = state_dir.join(VERIFICATION_KEY_FILE);
    let sealed = dek
        .derive(VK_PURPOSE)?
        .seal(VK_CONTEXT, vk.dangerous_to_text().as_bytes())?;
    mamori_durable::write(&path, &sealed, 0o600).map_err(|source| PrivsepError::StateDir {
        path: path.clone(),
        source,
    })
}

/// Everything `verify` needs, read from the state directory by root: the log's directory, its
/// master key and its verification key.
pub struct VerifyKeys {
    /// The log's directory.
    pub dir: PathBuf,
    /// Opens the records.
    pub master: Key,
    /// Checks the seals.
    pub verification: VerificationKey,
}

/// Loads what verification needs. Root only (it reads `keys/`).
pub fn verify_keys(state_dir: &Path) -> Result<VerifyKeys> {
    let dek = data_key(state_dir)?;
    let path = state_dir.join(VERIFICATION_KEY_FILE);
    let sealed = std::fs::read(&path).map_err(|source| PrivsepError::StateDir {
        path: path.clone(),
        source,
    })?;
    let text = dek.derive(VK_PURPOSE)?.open(VK_CONTEXT, &sealed)?;
    let text = std::str::from_utf8(&text).map_err(|_| PrivsepError::StateDirUnsafe {
        path: path.clone(),
        reason: "the verification key is not text",
    })?;
    let verification =
        VerificationKey::from_text(text).map_err(|_| PrivsepError::StateDirUnsafe {
            path: path.clone(),
            reason: "the verification key does not parse",
        })?;
    Ok(VerifyKeys {
        dir: state_dir.join(AUDIT_LOG_DIR),
        master: master_key(&dek)?,
        verification,
    })
}

fn log_err(e: LogError) -> PrivsepError {
    PrivsepError::AuditLog(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parent::ensure_kek;

    fn state() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        mamori_durable::create_dir(&dir.path().join("keys"), 0o700).unwrap();
        mamori_durable::create_dir(&dir.path().join("audit"), 0o700).unwrap();
        ensure_kek(dir.path()).unwrap();
        dir
    }

    #[test]
    fn the_log_is_created_once_and_its_verification_key_checks_what_the_writer_wrote() {
        let s = state();
        let cfg = LogConfig::default();
        assert_eq!(ensure_audit_log(s.path(), &cfg).unwrap(), Ensured::Created);
        assert_eq!(ensure_audit_log(s.path(), &cfg).unwrap(), Ensured::Present);
        // The writer (management process) opens it with the master key only.
        let dek = data_key(s.path()).unwrap();
        let log = AuditLog::open(
            &s.path().join(AUDIT_LOG_DIR),
            &master_key(&dek).unwrap(),
            cfg,
        )
        .unwrap();
        log.append_durable(Event::new(EventKind::LoginFailed, Outcome::Failure).actor("a"))
            .unwrap();
        log.close().unwrap();
        let keys = verify_keys(s.path()).unwrap();
        let report =
            mamori_audit::log::verify(&keys.dir, Some(&keys.verification), Some(&keys.master));
        assert!(report.first_break.is_none(), "{report}");
        assert!(report.records >= 1);
    }

    #[test]
    fn a_tail_cut_at_start_is_recorded_in_the_log() {
        let s = state();
        let cfg = LogConfig::default();
        ensure_audit_log(s.path(), &cfg).unwrap();
        let keys = verify_keys(s.path()).unwrap();
        let log = AuditLog::open(&keys.dir, &keys.master, cfg.clone()).unwrap();
        for _ in 0..5 {
            log.append_durable(Event::new(EventKind::LoginFailed, Outcome::Failure))
                .unwrap();
        }
        log.close().unwrap();
        // Garbage after the last record: what a torn write (or a tamperer) leaves.
        let seg = std::fs::read_dir(&keys.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
            .unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        std::io::Write::write_all(&mut f, &[0x5a; 40]).unwrap();
        drop(f);
        assert_eq!(ensure_audit_log(s.path(), &cfg).unwrap(), Ensured::Present);
        let log = AuditLog::open(&keys.dir, &keys.master, cfg).unwrap();
        let repaired: Vec<_> = log
            .read(1, 100)
            .unwrap()
            .into_iter()
            .filter(|r| r.event.event == EventKind::AuditLogRepaired)
            .collect();
        assert_eq!(repaired.len(), 1, "the cut is on record");
        assert_eq!(repaired[0].event.details["bytes"], 40);
    }

    #[test]
    fn an_unreadable_log_is_kept_aside_and_replaced() {
        let s = state();
        let cfg = LogConfig::default();
        ensure_audit_log(s.path(), &cfg).unwrap();
        // Someone replaced the sealed state with garbage.
        let dir = s.path().join(AUDIT_LOG_DIR);
        std::fs::write(dir.join("seal.state"), b"garbage").unwrap();
        match ensure_audit_log(s.path(), &cfg).unwrap() {
            Ensured::Replaced { moved_to, .. } => assert!(moved_to.exists()),
            other => panic!("expected a replacement, got {other:?}"),
        }
        assert_eq!(ensure_audit_log(s.path(), &cfg).unwrap(), Ensured::Present);
        let keys = verify_keys(s.path()).unwrap();
        let log = AuditLog::open(&keys.dir, &keys.master, LogConfig::default()).unwrap();
        let first = log.read(1, 1).unwrap();
        assert_eq!(first[0].event.event, EventKind::AuditLogReplaced);
    }
}
