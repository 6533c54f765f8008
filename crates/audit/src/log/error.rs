//! Errors of the audit log. Messages never contain record contents or key material.

use std::io;
use std::path::{Path, PathBuf};

use mamori_crypto::CryptoError;

use super::Seq;

/// What went wrong in the audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// `create` found a log already there.
    #[error("an audit log already exists at {dir}")]
    AlreadyExists {
        /// The log directory.
        dir: PathBuf,
    },
    /// The writer has stopped (the log was closed).
    #[error("the audit log is closed")]
    Closed,
    /// The configuration is not usable.
    #[error("invalid audit log configuration: {0}")]
    Config(&'static str),
    /// A cryptographic operation failed (random source, key limit).
    #[error("audit log crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// A file of the log is damaged in a way `open` will not repair by itself (repairing only
    /// ever means cutting a torn tail off the last segment).
    #[error("{path} is damaged at byte {offset}: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record did not decrypt: wrong key, or the record was modified.
    #[error("record {seq} could not be decrypted ({reason})")]
    Decrypt {
        /// The record.
        seq: Seq,
        /// Which part failed.
        reason: &'static str,
    },
    /// A file of the log could not be read or written.
    #[error("audit log file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A sealed file of the log (keyring or sealing state) does not open with the master key.
    #[error(
        "the audit log's {what} does not open with the given master key (wrong key or modified file)"
    )]
    KeyMismatch {
        /// Which file.
        what: &'static str,
    },
    /// Another process has the log open for writing.
    #[error("another process has the audit log at {dir} open")]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },
    /// The files of the directory belong to different logs.
    #[error("the audit log's files belong to different logs")]
    LogIdMismatch,
    /// `open` found no log.
    #[error("no audit log at {dir}")]
    NotFound {
        /// The log directory.
        dir: PathBuf,
    },
    /// The record is queued but did not reach the disk within the configured wait. It stays
    /// queued and is written when the disk allows.
    #[error("record {seq} is queued but not yet on disk (the log is writing slowly or failing)")]
    NotDurable {
        /// The record.
        seq: Seq,
    },
    /// The queue stayed full for the whole wait: the event was refused and counted as dropped.
    #[error("the audit queue is full: the event was refused and counted as dropped")]
    QueueFull,
    /// The persisted sealing key does not verify the last sealed record: the state file or the
    /// log was replaced. The log is not written to, so the evidence stays as found.
    #[error(
        "the audit log's sealing state does not verify its last record (state or log replaced)"
    )]
    SealStateMismatch,
    /// A verification key in text form could not be parsed.
    #[error("not a mamori audit verification key")]
    VerificationKey,
    /// The writer cannot write at the moment (disk full, I/O error); it keeps retrying.
    #[error("the audit log cannot write at the moment: {0}")]
    WriteFailing(String),
}

/// Maps an I/O error on `path` to [`LogError::Io`].
pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}
