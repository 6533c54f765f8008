//! Accounts, roles, passwords, brute-force defence, sessions, API tokens, second factors (TOTP,
//! WebAuthn security keys, recovery codes) and re-authentication: everything that decides who
//! may do what on the device.
//!
//! Security properties (JC-STAR ★3):
//! - no account exists that an administrator did not create, except the one initial `admin`
//!   whose label password must be changed at first login (S3.1-01 R4, S3.1-02);
//! - passwords are checked against rules A–D and stored as PBKDF2-HMAC-SHA-256 (S3.1-02);
//! - consecutive failures lock the account (for untrusted network sources) and throttle the
//!   source address, without ever sleeping; unknown users behave like wrong passwords
//!   (S3.1-04);
//! - changes to credentials, users and security settings need a re-authentication within the
//!   last five minutes (S3.1-01 R2, S3.1-03 R3);
//! - sessions time out when idle and absolutely (S3.1-01 R3); the session id changes at login
//!   and whenever the session gains privilege;
//! - a second factor is checked after the password, in the same request or in a second step
//!   whose ticket is short-lived, bound to its source and limited to three attempts; a wrong
//!   second factor counts like a wrong password.
//!
//! What it does not do: it speaks no HTTP (see `mamori-http`) and keeps no audit log of its own
//! (it reports to an `mamori_audit::Sink`). Password hashing is CPU-bound; callers run these
//! functions on a blocking thread pool with bounded concurrency.

pub mod error;
pub mod model;
pub mod service;
pub mod sessions;
pub mod settings;
pub mod throttle;

pub use error::{AuthError, Confirmation, Conflict, Invalid};
pub use service::{AuthService, DeviceFacts, Origin, Principal, SecondFactor, Via};

/// Alphabet for generated passwords and recovery codes: no 0/O/o, 1/l/I/i, to be read off a
/// label without ambiguity.
pub const UNAMBIGUOUS_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";

/// Length of generated one-time passwords (label, reset, recovery).
pub const GENERATED_PASSWORD_LEN: usize = 16;

/// How long a re-authentication stays valid.
pub const REAUTH_VALIDITY_SECONDS: u64 = 300;

/// A source of the current time, so timeouts can be tested without waiting.
pub trait Clock: Send + Sync {
    /// Unix seconds now.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
