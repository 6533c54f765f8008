//! Server-side sessions, held in memory only.
//!
//! The session id is 256 random bits, handed to the client once; the table is keyed by its
//! SHA-256, so not even a memory dump of this table yields a usable cookie. Sessions end at
//! restart, by idle or absolute timeout, at logout, or when the account changes.

use std::collections::HashMap;
use std::net::IpAddr;

use data_encoding::HEXLOWER;
use mamori_crypto::{CryptoError, digest::sha256, random};

use crate::model::{Channel, Role, Username};

/// Most sessions one user may hold; the oldest is ended when a new one would exceed it.
pub const MAX_PER_USER: usize = 16;
/// Most sessions in total; a login beyond it ends the least recently used session.
pub const MAX_TOTAL: usize = 4096;

/// Why a session may do only a few things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restriction {
    /// Logged in with a password someone else set: change it first.
    PasswordChangeRequired,
    /// The role requires a second factor: enrol one first.
    MfaEnrollmentRequired,
}

/// One session.
#[derive(Debug, Clone)]
pub struct Session {
    /// A public handle for listing and revoking; not the secret.
    pub public_id: String,
    /// Whose session.
    pub username: Username,
    /// The role at login.
    pub role: Role,
    /// Where it was opened.
    pub channel: Channel,
    /// From which address (none for the console).
    pub source: Option<IpAddr>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub last_seen_at: u64,
    /// What it is limited to, if anything.
    pub restriction: Option<Restriction>,
    /// Re-authentication is valid until this unix time.
    pub reauth_until: Option<u64>,
}

/// The session table.
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: HashMap<[u8; 32], Session>,
}

/// Hash under which a session secret is stored.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    sha256(secret.as_bytes())
}

impl Sessions {
    /// Adds a session and returns its secret (the cookie value).
    pub fn create(&mut self, session: Session) -> Result<String, CryptoError> {
        let secret = HEXLOWER.encode(&random::bytes::<32>()?);
        let user_sessions: Vec<([u8; 32], u64)> = self
            .by_hash
            .iter()
            .filter(|(_, s)| s.username == session.username)
            .map(|(h, s)| (*h, s.created_at))
            .collect();
        if user_sessions.len() >= MAX_PER_USER
            && let Some((h, _)) = user_sessions.iter().min_by_key(|(_, t)| *t)
        {
            self.by_hash.remove(h);
        }
        if self.by_hash.len() >= MAX_TOTAL {
            let lru = self
                .by_hash
                .iter()
                .min_by_key(|(_, s)| s.last_seen_at)
                .map(|(h, _)| *h);
            if let Some(h) = lru {
                self.by_hash.remove(&h);
            }
        }
        self.by_hash.insert(secret_hash(&secret), session);
        Ok(secret)
    }

    /// The session for a secret.
    pub fn get_mut(&mut self, hash: &[u8; 32]) -> Option<&mut Session> {
        self.by_hash.get_mut(hash)
    }

    /// Ends one session by its secret's hash.
    pub fn remove(&mut self, hash: &[u8; 32]) -> Option<Session> {
        self.by_hash.remove(hash)
    }

    /// Ends a user's session by its public id.
    pub fn remove_public(&mut self, username: &Username, public_id: &str) -> Option<Session> {
        let h = self
            .by_hash
            .iter()
            .find(|(_, s)| &s.username == username && s.public_id == public_id)
            .map(|(h, _)| *h)?;
        self.by_hash.remove(&h)
    }

    /// Ends every session of a user except `keep`; returns how many ended.
    pub fn remove_user(&mut self, username: &Username, keep: Option<&[u8; 32]>) -> usize {
        let before = self.by_hash.len();
        self.by_hash
            .retain(|h, s| &s.username != username || Some(h) == keep);
        before - self.by_hash.len()
    }

    /// A user's sessions.
    pub fn of_user<'a>(
        &'a self,
        username: &'a Username,
    ) -> impl Iterator<Item = (&'a [u8; 32], &'a Session)> + 'a {
        self.by_hash
            .iter()
            .filter(move |(_, s)| &s.username == username)
    }

    /// Removes and returns the sessions past their idle or absolute timeout.
    pub fn expire(&mut self, now: u64, idle: u64, absolute: u64) -> Vec<(Session, &'static str)> {
        let mut out = Vec::new();
        self.by_hash
            .retain(|_, s| match expiry(s, now, idle, absolute) {
                Some(why) => {
                    out.push((s.clone(), why));
                    false
                }
                None => true,
            });
        out
    }
}

/// Whether a session is past a timeout, and which.
pub fn expiry(s: &Session, now: u64, idle: u64, absolute: u64) -> Option<&'static str> {
    if now.saturating_sub(s.created_at) >= absolute {
        Some("absolute_timeout")
    } else if now.saturating_sub(s.last_seen_at) >= idle {
        Some("idle_timeout")
    } else {
        None
    }
}
