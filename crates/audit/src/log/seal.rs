//! Forward-secure sealing: one HMAC key per epoch, each derived from the one before and the old
//! one erased.
//!
//! K_{e+1} = HMAC-SHA-256(K_e, "mamori/audit/evolve"), and every frame's tag is
//! HMAC-SHA-256(K_e, h_i) over its chain hash. The writer holds only the current K_e. Whoever
//! steals it (or the master key and the state file) can forge records of the *current* epoch and
//! of later ones, but cannot produce a valid tag for an earlier epoch, because HMAC cannot be run
//! backwards; each epoch ends with a sealed "epoch closed" frame, so earlier epochs cannot be cut
//! short either. This is the property of journald's Forward Secure Sealing, built here only from
//! HMAC-SHA-256 (a CRYPTREC-listed MAC) instead of FSPRG.
//!
//! The verification key is K_0. It derives every later key, so it can also forge: it belongs with
//! the privileged parent or offline, never with the network-facing writer.

use std::fmt;
use std::path::Path;

use data_encoding::HEXLOWER;
use mamori_crypto::aead::Key;
use mamori_crypto::digest::{constant_time_eq, hmac_sha256};
use mamori_crypto::random;
use zeroize::Zeroizing;

use super::chain::ChainHash;
use super::error::{LogError, io_at};
use super::segment::LogId;

/// Length of a seal tag.
pub(crate) const TAG_LEN: usize = 32;
const EVOLVE_LABEL: &[u8] = b"mamori/audit/evolve";
/// The file holding the current epoch and its key, sealed under the master key.
pub(crate) const STATE_FILE: &str = "seal.state";
const STATE_MAGIC: &[u8; 12] = b"MAMORI-SEAL\0";
const STATE_VERSION: u16 = 1;
const STATE_AAD: &[u8] = b"mamori/audit/seal-state/v1";
const STATE_LEN: usize = 12 + 2 + 16 + 4 + 32;
const VK_PREFIX: &str = "mamori-audit-vk1:";

/// The sealing key of one epoch. Erased from memory when it evolves or is dropped.
pub(crate) struct EpochKey {
    epoch: u32,
    key: Zeroizing<[u8; 32]>,
}

impl EpochKey {
    /// A fresh random epoch-0 key for a new log.
    pub(crate) fn generate() -> Result<Self, LogError> {
        let mut key = Zeroizing::new([0u8; 32]);
        random::fill(key.as_mut())?;
        Ok(Self { epoch: 0, key })
    }

    /// The epoch this key seals.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Moves to the next epoch, overwriting the old key in place.
    pub(crate) fn evolve(&mut self) -> Result<(), LogError> {
        let next = Zeroizing::new(hmac_sha256(self.key.as_ref(), EVOLVE_LABEL));
        self.epoch = self.epoch.checked_add(1).ok_or(LogError::Config(
            "the sealing epoch counter is exhausted; start a new log",
        ))?;
        *self.key = *next;
        Ok(())
    }

    /// Evolves forward until `epoch` (no-op if already there; a key never goes backwards).
    pub(crate) fn advance_to(&mut self, epoch: u32) -> Result<(), LogError> {
        while self.epoch < epoch {
            self.evolve()?;
        }
        Ok(())
    }

    /// The tag of a frame or header whose chain hash (or header hash) is `h`.
    pub(crate) fn tag(&self, h: &ChainHash) -> [u8; TAG_LEN] {
        hmac_sha256(self.key.as_ref(), &h.0)
    }

    /// Whether `tag` is this epoch's tag over `h` (constant time).
    pub(crate) fn check(&self, h: &ChainHash, tag: &[u8]) -> bool {
        constant_time_eq(&self.tag(h), tag)
    }

    /// Persists the state (log id, epoch, key) atomically, sealed under `kek`.
    pub(crate) fn save(&self, dir: &Path, kek: &Key, log_id: &LogId) -> Result<(), LogError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(STATE_LEN));
        plain.extend_from_slice(STATE_MAGIC);
        plain.extend_from_slice(&STATE_VERSION.to_le_bytes());
        plain.extend_from_slice(&log_id.0);
        plain.extend_from_slice(&self.epoch.to_le_bytes());
        plain.extend_from_slice(self.key.as_ref());
        let sealed = kek.seal(STATE_AAD, &plain)?;
        let path = dir.join(STATE_FILE);
        mamori_durable::write(&path, &sealed, 0o600).map_err(io_at(&path))
    }

    /// Loads the persisted state, or `None` if there is no log here.
    pub(crate) fn load(dir: &Path, kek: &Key) -> Result<Option<(LogId, Self)>, LogError> {
        let path = dir.join(STATE_FILE);
        let sealed = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let mismatch = || LogError::KeyMismatch {
            what: "sealing state",
        };
        let plain = kek.open(STATE_AAD, &sealed).map_err(|_| mismatch())?;
        if plain.len() != STATE_LEN
            || &plain[..12] != STATE_MAGIC
            || plain[12..14] != STATE_VERSION.to_le_bytes()
        {
            return Err(mismatch());
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&plain[14..30]);
        let mut epoch = [0u8; 4];
        epoch.copy_from_slice(&plain[30..34]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain[34..66]);
        Ok(Some((
            LogId(id),
            Self {
                epoch: u32::from_le_bytes(epoch),
                key,
            },
        )))
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EpochKey(epoch {}, <redacted>)", self.epoch)
    }
}

/// The key that checks every seal of one log: its epoch-0 sealing key and the log's id.
///
/// Handed out once, when the log is created. It can derive every epoch's sealing key, so it can
/// forge as well as verify: keep it with the privileged parent or offline, never with the
/// network-facing writer. `Debug` is redacted and the bytes are erased on drop.
pub struct VerificationKey {
    log_id: LogId,
    key: Zeroizing<[u8; 32]>,
}

impl VerificationKey {
    pub(crate) fn from_epoch_zero(log_id: LogId, k0: &EpochKey) -> Self {
        Self {
            log_id,
            key: Zeroizing::new(*k0.key),
        }
    }

    /// The id of the log this key belongs to (hex), safe to show.
    pub fn log_id(&self) -> String {
        HEXLOWER.encode(&self.log_id.0)
    }

    pub(crate) fn log_id_raw(&self) -> LogId {
        self.log_id
    }

    /// The sealing key of `epoch`, derived forward from K_0.
    pub(crate) fn epoch_key(&self, epoch: u32) -> Result<EpochKey, LogError> {
        let mut k = EpochKey {
            epoch: 0,
            key: Zeroizing::new(*self.key),
        };
        k.advance_to(epoch)?;
        Ok(k)
    }

    /// The key as text (`mamori-audit-vk1:<hex log id><hex key>`), for storing it elsewhere.
    /// Named loudly: the text can forge seals.
    pub fn dangerous_to_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(Vec::with_capacity(48));
        raw.extend_from_slice(&self.log_id.0);
        raw.extend_from_slice(self.key.as_ref());
        Zeroizing::new(format!("{VK_PREFIX}{}", HEXLOWER.encode(&raw)))
    }

    /// Parses the text form made by [`VerificationKey::dangerous_to_text`].
    pub fn from_text(text: &str) -> Result<Self, LogError> {
        let hex = text
            .trim()
            .strip_prefix(VK_PREFIX)
            .ok_or(LogError::VerificationKey)?;
        let raw = Zeroizing::new(
            HEXLOWER
                .decode(hex.as_bytes())
                .map_err(|_| LogError::VerificationKey)?,
        );
        if raw.len() != 48 {
            return Err(LogError::VerificationKey);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&raw[..16]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&raw[16..]);
        Ok(Self {
            log_id: LogId(id),
            key,
        })
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerificationKey(log {}, <redacted>)", self.log_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evolved_key_cannot_make_the_previous_epochs_tag() {
        let mut k = EpochKey::generate().unwrap();
        let h = ChainHash([7; 32]);
        let t0 = k.tag(&h);
        k.evolve().unwrap();
        assert_eq!(k.epoch(), 1);
        assert!(!k.check(&h, &t0));
        assert_ne!(k.tag(&h), t0);
    }

    #[test]
    fn the_verification_key_derives_every_epoch_key() {
        let mut k = EpochKey::generate().unwrap();
        let vk = VerificationKey::from_epoch_zero(LogId([1; 16]), &k);
        k.advance_to(40).unwrap();
        let h = ChainHash([9; 32]);
        assert!(vk.epoch_key(40).unwrap().check(&h, &k.tag(&h)));
        assert!(!vk.epoch_key(39).unwrap().check(&h, &k.tag(&h)));
    }

    #[test]
    fn the_verification_key_text_round_trips_and_debug_is_redacted() {
        let k = EpochKey::generate().unwrap();
        let vk = VerificationKey::from_epoch_zero(LogId([3; 16]), &k);
        let text = vk.dangerous_to_text();
        let back = VerificationKey::from_text(&text).unwrap();
        assert_eq!(back.key.as_ref(), vk.key.as_ref());
        assert_eq!(back.log_id(), "03".repeat(16));
        assert!(!format!("{vk:?}").contains(&HEXLOWER.encode(vk.key.as_ref())));
        assert!(VerificationKey::from_text("mamori-audit-vk1:00").is_err());
    }

    #[test]
    fn the_state_file_round_trips_and_needs_the_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Key::generate().unwrap();
        let mut k = EpochKey::generate().unwrap();
        k.advance_to(5).unwrap();
        k.save(dir.path(), &kek, &LogId([4; 16])).unwrap();
        let (id, back) = EpochKey::load(dir.path(), &kek).unwrap().unwrap();
        assert_eq!((id, back.epoch()), (LogId([4; 16]), 5));
        let h = ChainHash([1; 32]);
        assert!(back.check(&h, &k.tag(&h)));
        assert!(matches!(
            EpochKey::load(dir.path(), &Key::generate().unwrap()),
            Err(LogError::KeyMismatch { .. })
        ));
    }
}
