//! The keyring: each segment's data key and personal-data key, sealed under the master key.
//!
//! Per-segment keys are what make purging possible on append-only files: destroying a segment's
//! personal key (crypto-shredding) makes its actors and source addresses unreadable while the
//! ciphertext, and so the chain and the seals, stay untouched. Closed segments also keep their
//! last seq and newest record time here, so `open` does not rescan them and purge can tell which
//! segments lie wholly before a date. Written atomically (mamori-durable) on each roll and purge.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use mamori_crypto::aead::Key;
use zeroize::Zeroizing;

use super::Seq;
use super::error::{LogError, io_at};
use super::segment::LogId;

/// The keyring file name.
pub(crate) const KEYRING_FILE: &str = "keyring";
const MAGIC: &[u8; 15] = b"MAMORI-KEYRING\0";
const VERSION: u16 = 1;
const AAD: &[u8] = b"mamori/audit/keyring/v1";
const ENTRY_LEN: usize = 8 + 8 + 1 + 8 + 8 + 32 + 32;
const HAS_PERSONAL: u8 = 1;
const CLOSED: u8 = 2;
const HAS_LAST_UTC: u8 = 4;

/// The keys the log derives from the master key it is opened with.
pub(crate) struct MasterKeys {
    /// Seals the keyring.
    pub(crate) keyring: Key,
    /// Seals the sealing state (epoch and key).
    pub(crate) state: Key,
}

impl MasterKeys {
    pub(crate) fn derive(master: &Key) -> Result<Self, LogError> {
        Ok(Self {
            keyring: master.derive("audit-log/keyring")?,
            state: master.derive("audit-log/seal-state")?,
        })
    }
}

/// What is known about a segment that was rolled (it never changes again).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Closed {
    /// The last record's seq (first seq − 1 if it holds no record).
    pub(crate) last_seq: Seq,
    /// The newest record time (UTC) in it, if it holds a record.
    pub(crate) newest_utc_ms: Option<i64>,
}

/// One segment's keys.
#[derive(Clone, Debug)]
pub(crate) struct SegmentKeys {
    pub(crate) data: Arc<Key>,
    /// `None` once purged.
    pub(crate) personal: Option<Arc<Key>>,
    pub(crate) created_utc_ms: i64,
    pub(crate) closed: Option<Closed>,
}

/// All segments' keys, by first seq.
#[derive(Clone, Debug)]
pub(crate) struct Keyring {
    pub(crate) log_id: LogId,
    pub(crate) segments: BTreeMap<Seq, SegmentKeys>,
}

impl Keyring {
    pub(crate) fn new(log_id: LogId) -> Self {
        Self {
            log_id,
            segments: BTreeMap::new(),
        }
    }

    /// New random keys for the segment starting at `first_seq`.
    pub(crate) fn add(&mut self, first_seq: Seq, created_utc_ms: i64) -> Result<(), LogError> {
        self.segments.insert(
            first_seq,
            SegmentKeys {
                data: Arc::new(Key::generate()?),
                personal: Some(Arc::new(Key::generate()?)),
                created_utc_ms,
                closed: None,
            },
        );
        Ok(())
    }

    /// Writes the keyring atomically, sealed under `kek`.
    pub(crate) fn save(&self, dir: &Path, kek: &Key) -> Result<(), LogError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(
            MAGIC.len() + 22 + ENTRY_LEN * self.segments.len(),
        ));
        plain.extend_from_slice(MAGIC);
        plain.extend_from_slice(&VERSION.to_le_bytes());
        plain.extend_from_slice(&self.log_id.0);
        let count = u32::try_from(self.segments.len())
            .map_err(|_| LogError::Config("too many segments"))?;
        plain.extend_from_slice(&count.to_le_bytes());
        for (first, k) in &self.segments {
            let mut flags = 0;
            if k.personal.is_some() {
                flags |= HAS_PERSONAL;
            }
            if let Some(c) = k.closed {
                flags |= CLOSED;
                if c.newest_utc_ms.is_some() {
                    flags |= HAS_LAST_UTC;
                }
            }
            plain.extend_from_slice(&first.to_le_bytes());
            plain.extend_from_slice(&k.created_utc_ms.to_le_bytes());
            plain.push(flags);
            let closed = k.closed.unwrap_or(Closed {
                last_seq: 0,
                newest_utc_ms: None,
            });
            plain.extend_from_slice(&closed.last_seq.to_le_bytes());
            plain.extend_from_slice(&closed.newest_utc_ms.unwrap_or(0).to_le_bytes());
            plain.extend_from_slice(k.data.dangerous_raw_bytes());
            match &k.personal {
                Some(p) => plain.extend_from_slice(p.dangerous_raw_bytes()),
                None => plain.extend_from_slice(&[0u8; 32]),
            }
        }
        let sealed = kek.seal(AAD, &plain)?;
        let path = dir.join(KEYRING_FILE);
        mamori_durable::write(&path, &sealed, 0o600).map_err(io_at(&path))
    }

    /// Reads the keyring, or `None` if there is none.
    pub(crate) fn load(dir: &Path, kek: &Key) -> Result<Option<Self>, LogError> {
        let path = dir.join(KEYRING_FILE);
        let sealed = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let bad = || LogError::KeyMismatch { what: "keyring" };
        let plain = kek.open(AAD, &sealed).map_err(|_| bad())?;
        let head = MAGIC.len() + 2 + 16 + 4;
        if plain.len() < head || &plain[..MAGIC.len()] != MAGIC {
            return Err(bad());
        }
        let mut at = MAGIC.len();
        if plain[at..at + 2] != VERSION.to_le_bytes() {
            return Err(bad());
        }
        at += 2;
        let mut id = [0u8; 16];
        id.copy_from_slice(&plain[at..at + 16]);
        at += 16;
        let mut n = [0u8; 4];
        n.copy_from_slice(&plain[at..at + 4]);
        at += 4;
        let count = usize::try_from(u32::from_le_bytes(n)).map_err(|_| bad())?;
        if plain.len() != head + count * ENTRY_LEN {
            return Err(bad());
        }
        let mut ring = Self::new(LogId(id));
        for e in plain[at..].chunks_exact(ENTRY_LEN) {
            let u64_at = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&e[i..i + 8]);
                b
            };
            let flags = e[16];
            let closed = (flags & CLOSED != 0).then(|| Closed {
                last_seq: u64::from_le_bytes(u64_at(17)),
                newest_utc_ms: (flags & HAS_LAST_UTC != 0).then(|| i64::from_le_bytes(u64_at(25))),
            });
            let personal = if flags & HAS_PERSONAL != 0 {
                Some(Arc::new(Key::from_bytes(&e[65..97])?))
            } else {
                None
            };
            ring.segments.insert(
                u64::from_le_bytes(u64_at(0)),
                SegmentKeys {
                    data: Arc::new(Key::from_bytes(&e[33..65])?),
                    personal,
                    created_utc_ms: i64::from_le_bytes(u64_at(8)),
                    closed,
                },
            );
        }
        Ok(Some(ring))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyring_round_trips_with_purged_and_closed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Key::generate().unwrap();
        let mut ring = Keyring::new(LogId([2; 16]));
        ring.add(1, 10).unwrap();
        ring.add(100, 20).unwrap();
        let first = ring.segments.get_mut(&1).unwrap();
        first.personal = None;
        first.closed = Some(Closed {
            last_seq: 99,
            newest_utc_ms: Some(-3),
        });
        ring.save(dir.path(), &kek).unwrap();
        let back = Keyring::load(dir.path(), &kek).unwrap().unwrap();
        assert_eq!(back.log_id, LogId([2; 16]));
        let a = &back.segments[&1];
        assert!(a.personal.is_none());
        assert_eq!(a.closed.unwrap().newest_utc_ms, Some(-3));
        let b = &back.segments[&100];
        assert_eq!(b.closed, None);
        assert_eq!(
            b.data.dangerous_raw_bytes(),
            ring.segments[&100].data.dangerous_raw_bytes()
        );
        assert!(Keyring::load(dir.path(), &Key::generate().unwrap()).is_err());
    }
}
