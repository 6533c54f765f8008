//! The encrypted, crash-safe store that holds all of mamori's persistent state.
//!
//! An embedded ACID database (redb: copy-on-write B-tree, checksummed commit slots, fsync on
//! every commit) in which nothing is stored in the clear:
//! - every value is sealed with AES-256-GCM under a key derived from the data key for this one
//!   purpose, with associated data naming its
//!   table and key and the schema version, so a value copied to another row does not open;
//! - every key on disk is an HMAC of the table and the logical key, so usernames and other
//!   identifiers are not readable from the file either.
//!
//! A commit is durable when [`Store::write`] returns: an acknowledged change survives a power
//! cut, and an unacknowledged one is either wholly there or wholly absent.
//!
//! What it does not do: it does not hold the key-encryption key (see `mamori-keys`), and it keeps
//! no audit log (the audit log has its own append-only files).

use std::path::Path;

use mamori_crypto::aead::Key;
use mamori_crypto::digest::hmac_sha256;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version of the stored layout. Bound into every value's associated data.
pub const SCHEMA_VERSION: u32 = 1;

/// The tables. Each is a separate redb table; the name is part of every value's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Table {
    /// Configuration revisions (`mamori-config`), one row per revision, keyed by its id.
    ConfigRevisions,
    /// Configuration state (`mamori-config`): the running revision, the revision index, the
    /// pending commit-confirm marker.
    ConfigState,
    /// Manufacturing identity and the device's own keys.
    Identity,
    /// Store metadata (schema version).
    Meta,
    /// Settings of the device (auth policy, management access, …).
    Settings,
    /// API tokens (hashed).
    Tokens,
    /// User accounts.
    Users,
}

impl Table {
    const ALL: [Table; 7] = [
        Table::ConfigRevisions,
        Table::ConfigState,
        Table::Identity,
        Table::Meta,
        Table::Settings,
        Table::Tokens,
        Table::Users,
    ];

    fn name(self) -> &'static str {
        match self {
            Table::ConfigRevisions => "config_revisions",
            Table::ConfigState => "config_state",
            Table::Identity => "identity",
            Table::Meta => "meta",
            Table::Settings => "settings",
            Table::Tokens => "tokens",
            Table::Users => "users",
        }
    }

    fn definition(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(self.name())
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database engine reported an error (I/O, corruption, …).
    #[error("database: {0}")]
    Database(#[from] redb::Error),
    /// A value did not open: wrong data key, or the file was modified.
    #[error("a value in table {table} failed authentication; wrong key or modified store")]
    Tampered {
        /// The table.
        table: &'static str,
    },
    /// A value opened but does not decode into the expected type.
    #[error("a value in table {table} does not decode: {source}")]
    Decode {
        /// The table.
        table: &'static str,
        /// The cause.
        source: serde_json::Error,
    },
    /// The store was written by a newer version of mamori.
    #[error("store schema version {found} is newer than this software ({supported})")]
    SchemaTooNew {
        /// What the file says.
        found: u32,
        /// What this build supports.
        supported: u32,
    },
    /// Sealing failed.
    #[error(transparent)]
    Crypto(#[from] mamori_crypto::CryptoError),
}

fn engine<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Database(e.into())
}

/// A stored row: the logical key travels inside the sealed value so that listing needs no
/// plaintext key on disk.
#[derive(Serialize, serde::Deserialize)]
struct Row<K, T> {
    k: K,
    v: T,
}

/// Seals and opens rows for one data key.
struct Sealer {
    dek: Key,
    index_key: [u8; 32],
}

impl Sealer {
    fn new(dek: &Key) -> Result<Self, StoreError> {
        let index_key = *dek.derive("store/index")?.dangerous_raw_bytes();
        Ok(Self {
            dek: dek.derive("store/values")?,
            index_key,
        })
    }

    fn disk_key(&self, table: Table, key: &str) -> [u8; 32] {
        let mut msg = Vec::with_capacity(table.name().len() + 1 + key.len());
        msg.extend_from_slice(table.name().as_bytes());
        msg.push(0);
        msg.extend_from_slice(key.as_bytes());
        hmac_sha256(&self.index_key, &msg)
    }

    fn aad(table: Table, disk_key: &[u8]) -> Vec<u8> {
        let mut aad = format!("mamori/store/v{SCHEMA_VERSION}/{}/", table.name()).into_bytes();
        aad.extend_from_slice(disk_key);
        aad
    }

    fn seal<T: Serialize>(
        &self,
        table: Table,
        key: &str,
        value: &T,
    ) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let disk_key = self.disk_key(table, key);
        let plain =
            serde_json::to_vec(&Row { k: key, v: value }).map_err(|source| StoreError::Decode {
                table: table.name(),
                source,
            })?;
        let sealed = self.dek.seal(&Self::aad(table, &disk_key), &plain)?;
        Ok((disk_key.to_vec(), sealed))
    }

    fn open<T: DeserializeOwned>(
        &self,
        table: Table,
        disk_key: &[u8],
        sealed: &[u8],
    ) -> Result<(String, T), StoreError> {
        let plain = self
            .dek
            .open(&Self::aad(table, disk_key), sealed)
            .map_err(|_| StoreError::Tampered {
                table: table.name(),
            })?;
        let row: Row<String, T> =
            serde_json::from_slice(&plain).map_err(|source| StoreError::Decode {
                table: table.name(),
                source,
            })?;
        // The logical key inside must hash to the row's place, or rows were swapped.
        if self.disk_key(table, &row.k)[..] != *disk_key {
            return Err(StoreError::Tampered {
                table: table.name(),
            });
        }
        Ok((row.k, row.v))
    }
}

/// The store. Cheap to share behind an `Arc`; redb serialises writers and lets readers run
/// concurrently.
pub struct Store {
    db: Database,
    sealer: Sealer,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

const SCHEMA_KEY: &str = "schema_version";

impl Store {
    /// Opens the store at `path`, creating it if needed, and checks the schema version.
    ///
    /// A store that does not open under `dek` (wrong key, or a tampered file) is an error; the
    /// file is never replaced.
    pub fn open(path: &Path, dek: Key) -> Result<Self, StoreError> {
        let store = Self {
            db: Database::create(path).map_err(engine)?,
            sealer: Sealer::new(&dek)?,
        };
        // Create every table once so read transactions never meet a missing table, and record
        // or check the schema version.
        store.write(|tx| {
            for t in Table::ALL {
                tx.txn.open_table(t.definition()).map_err(engine)?;
            }
            match tx.get::<u32>(Table::Meta, SCHEMA_KEY)? {
                // Rows exist but none is ours: the store was made under another data key. Opening
                // every row authenticates it and reports the mismatch.
                None if !tx.is_empty(Table::Meta)? => {
                    tx.list::<serde_json::Value>(Table::Meta)?;
                    Err(StoreError::Tampered { table: "meta" })
                }
                None => tx.put(Table::Meta, SCHEMA_KEY, &SCHEMA_VERSION),
                Some(v) if v > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                }),
                Some(_) => Ok(()),
            }
        })?;
        Ok(store)
    }

    /// Reads one value.
    pub fn get<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(engine)?;
        let t = txn.open_table(table.definition()).map_err(engine)?;
        let disk_key = self.sealer.disk_key(table, key);
        match t.get(&disk_key[..]).map_err(engine)? {
            Some(v) => Ok(Some(self.sealer.open(table, &disk_key, v.value())?.1)),
            None => Ok(None),
        }
    }

    /// Reads every row of a table, as (key, value) pairs sorted by key.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        let txn = self.db.begin_read().map_err(engine)?;
        let t = txn.open_table(table.definition()).map_err(engine)?;
        list_rows(&self.sealer, table, &t)
    }

    /// Runs `f` in one write transaction and commits it durably. If `f` returns an error,
    /// nothing it wrote is kept.
    pub fn write<R, E>(&self, f: impl FnOnce(&mut WriteTxn<'_>) -> Result<R, E>) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        let txn = self.db.begin_write().map_err(engine)?;
        let mut tx = WriteTxn {
            txn,
            sealer: &self.sealer,
        };
        let out = f(&mut tx)?;
        tx.txn.commit().map_err(engine)?;
        Ok(out)
    }
}

fn list_rows<T: DeserializeOwned>(
    sealer: &Sealer,
    table: Table,
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<(String, T)>, StoreError> {
    let mut out = Vec::new();
    for entry in t.iter().map_err(engine)? {
        let (k, v) = entry.map_err(engine)?;
        out.push(sealer.open(table, k.value(), v.value())?);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// An open write transaction. Dropped without commit (on error) it leaves no trace.
pub struct WriteTxn<'a> {
    txn: redb::WriteTransaction,
    sealer: &'a Sealer,
}

impl WriteTxn<'_> {
    /// Reads one value as of this transaction (sees its own writes).
    pub fn get<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let t = self.txn.open_table(table.definition()).map_err(engine)?;
        let disk_key = self.sealer.disk_key(table, key);
        let found = t.get(&disk_key[..]).map_err(engine)?;
        match found {
            Some(v) => Ok(Some(self.sealer.open(table, &disk_key, v.value())?.1)),
            None => Ok(None),
        }
    }

    /// Reads every row of a table as of this transaction.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        let t = self.txn.open_table(table.definition()).map_err(engine)?;
        list_rows(self.sealer, table, &t)
    }

    /// True if the table has no rows.
    pub fn is_empty(&self, table: Table) -> Result<bool, StoreError> {
        let t = self.txn.open_table(table.definition()).map_err(engine)?;
        Ok(t.first().map_err(engine)?.is_none())
    }

    /// Writes (inserts or replaces) one value.
    pub fn put<T: Serialize>(
        &mut self,
        table: Table,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let (k, v) = self.sealer.seal(table, key, value)?;
        let mut t = self.txn.open_table(table.definition()).map_err(engine)?;
        t.insert(&k[..], &v[..]).map_err(engine)?;
        Ok(())
    }

    /// Removes one value; returns whether it existed.
    pub fn delete(&mut self, table: Table, key: &str) -> Result<bool, StoreError> {
        let k = self.sealer.disk_key(table, key);
        let mut t = self.txn.open_table(table.definition()).map_err(engine)?;
        let existed = t.remove(&k[..]).map_err(engine)?.is_some();
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pair() -> (Key, Key) {
        let k = Key::generate().unwrap();
        let copy = Key::from_bytes(k.dangerous_raw_bytes()).unwrap();
        (k, copy)
    }

    #[test]
    fn values_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        let (k1, k2) = key_pair();
        let s = Store::open(&p, k1).unwrap();
        s.write(|tx| tx.put(Table::Users, "alice", &"admin".to_string()))
            .unwrap();
        drop(s);
        let s = Store::open(&p, k2).unwrap();
        assert_eq!(
            s.get::<String>(Table::Users, "alice").unwrap().as_deref(),
            Some("admin")
        );
        assert_eq!(s.list::<String>(Table::Users).unwrap().len(), 1);
    }

    #[test]
    fn neither_keys_nor_values_appear_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        let s = Store::open(&p, Key::generate().unwrap()).unwrap();
        s.write(|tx| {
            tx.put(
                Table::Users,
                "username-marker",
                &"value-marker-0123456789".to_string(),
            )
        })
        .unwrap();
        drop(s);
        let raw = std::fs::read(&p).unwrap();
        for needle in [&b"username-marker"[..], b"value-marker-0123456789"] {
            assert!(
                !raw.windows(needle.len()).any(|w| w == needle),
                "plaintext in store file"
            );
        }
    }

    #[test]
    fn a_store_does_not_open_under_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        drop(Store::open(&p, Key::generate().unwrap()).unwrap());
        assert!(matches!(
            Store::open(&p, Key::generate().unwrap()),
            Err(StoreError::Tampered { .. })
        ));
    }

    #[test]
    fn a_failed_transaction_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), Key::generate().unwrap()).unwrap();
        let r: Result<(), StoreError> = s.write(|tx| {
            tx.put(Table::Users, "bob", &1u32)?;
            Err(StoreError::Tampered { table: "test" })
        });
        assert!(r.is_err());
        assert_eq!(s.get::<u32>(Table::Users, "bob").unwrap(), None);
    }

    #[test]
    fn rows_moved_to_another_key_or_table_fail_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), Key::generate().unwrap()).unwrap();
        s.write(|tx| {
            tx.put(Table::Users, "alice", &"a".to_string())?;
            tx.put(Table::Users, "bob", &"b".to_string())
        })
        .unwrap();
        let a = s.sealer.disk_key(Table::Users, "alice");
        let b = s.sealer.disk_key(Table::Users, "bob");
        let sealed_a = s
            .sealer
            .seal(Table::Users, "alice", &"a".to_string())
            .unwrap()
            .1;
        // alice's sealed value placed under bob's key, and into another table.
        assert!(
            s.sealer
                .open::<String>(Table::Users, &b, &sealed_a)
                .is_err()
        );
        assert!(
            s.sealer
                .open::<String>(Table::Tokens, &a, &sealed_a)
                .is_err()
        );
        assert!(s.sealer.open::<String>(Table::Users, &a, &sealed_a).is_ok());
    }

    #[test]
    fn every_table_has_its_own_name_and_opens_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), Key::generate().unwrap()).unwrap();
        let mut names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Table::ALL.len(), "two tables share a name");
        for t in [Table::ConfigRevisions, Table::ConfigState] {
            assert!(s.list::<u32>(t).unwrap().is_empty());
            s.write(|tx| tx.put(t, "k", &7u32)).unwrap();
            assert_eq!(s.get::<u32>(t, "k").unwrap(), Some(7));
        }
        // A config row does not open as a row of another table.
        let a = s.sealer.disk_key(Table::ConfigState, "k");
        let sealed = s.sealer.seal(Table::ConfigState, "k", &7u32).unwrap().1;
        assert!(
            s.sealer
                .open::<u32>(Table::ConfigRevisions, &a, &sealed)
                .is_err()
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        let (k1, k2) = key_pair();
        let s = Store::open(&p, k1).unwrap();
        s.write(|tx| tx.put(Table::Meta, SCHEMA_KEY, &(SCHEMA_VERSION + 1)))
            .unwrap();
        drop(s);
        assert!(matches!(
            Store::open(&p, k2),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}
