//! Key-encryption keys and the wrapped data key.
//!
//! The store's values are sealed under a data-encryption key (DEK). The DEK is kept on disk only
//! wrapped (AES-256-GCM) under a key-encryption key (KEK) that a [`KeyProvider`] holds: a
//! root-only key file now ([`FileKeyProvider`]), a TPM later. In the privilege-separated daemon
//! only the privileged parent touches the provider; the management process receives the
//! unwrapped DEK once over the privsep channel.
//!
//! Crypto-erase (factory reset) is [`KeyProvider::destroy`] plus removing the wrapped DEK: after
//! that, the sealed store is unreadable by anyone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use mamori_crypto::aead::{KEY_LEN, Key};

/// Associated data binding a wrapped DEK to its purpose and format version.
const DEK_WRAP_CONTEXT: &[u8] = b"mamori/data-key/v1";

/// Errors of key handling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A key file exists but is not a valid key; refusing to replace it (that would lose data).
    #[error("key file {0} is corrupt; refusing to replace it")]
    Corrupt(PathBuf),
    /// The wrapped data key does not open under this KEK.
    #[error("the data key does not unwrap under the key-encryption key")]
    Unwrap,
    /// A key file has permissions that let others read it.
    #[error("key file {0} is readable by group or others")]
    Permissions(PathBuf),
    /// A cryptographic operation failed.
    #[error(transparent)]
    Crypto(#[from] mamori_crypto::CryptoError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Holds the key-encryption key and wraps and unwraps data keys with it.
pub trait KeyProvider: Send + Sync {
    /// A short name for status pages ("file", "tpm").
    fn kind(&self) -> &'static str;
    /// Wraps a data key for storage.
    fn wrap(&self, dek: &Key) -> Result<Vec<u8>, KeyError>;
    /// Unwraps a stored data key.
    fn unwrap(&self, wrapped: &[u8]) -> Result<Key, KeyError>;
    /// Destroys the key-encryption key (crypto-erase).
    fn destroy(&self) -> Result<(), KeyError>;
}

/// A KEK kept in a root-only file (mode 0600 in a 0700 directory), apart from the data.
#[derive(Debug)]
pub struct FileKeyProvider {
    path: PathBuf,
    kek: Key,
}

impl FileKeyProvider {
    /// Opens the KEK at `path`, creating it with a fresh random key if it does not exist.
    ///
    /// Returns the provider and whether the key was created now.
    pub fn open_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        if let Some(dir) = path.parent().filter(|d| !d.exists()) {
            mamori_durable::create_dir(dir, 0o700).map_err(io_err(dir))?;
        }
        let fresh = Key::generate()?;
        let created = mamori_durable::create_new(path, fresh.dangerous_raw_bytes(), 0o600)
            .map_err(io_err(path))?;
        Ok((Self::open(path)?, created))
    }

    /// Opens an existing KEK file.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(io_err(path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(KeyError::Permissions(path.to_path_buf()));
        }
        let raw = zeroize::Zeroizing::new(fs::read(path).map_err(io_err(path))?);
        if raw.len() != KEY_LEN {
            return Err(KeyError::Corrupt(path.to_path_buf()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            kek: Key::from_bytes(&raw)?,
        })
    }
}

impl KeyProvider for FileKeyProvider {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn wrap(&self, dek: &Key) -> Result<Vec<u8>, KeyError> {
        Ok(self.kek.seal(DEK_WRAP_CONTEXT, dek.dangerous_raw_bytes())?)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Key, KeyError> {
        let raw = self
            .kek
            .open(DEK_WRAP_CONTEXT, wrapped)
            .map_err(|_| KeyError::Unwrap)?;
        Ok(Key::from_bytes(&raw)?)
    }

    fn destroy(&self) -> Result<(), KeyError> {
        overwrite_and_remove(&self.path)
    }
}

/// Loads the wrapped data key at `path` and unwraps it, or creates, wraps and stores a new one
/// if the file does not exist. Returns the key and whether it was created now.
pub fn load_or_create_data_key(
    provider: &dyn KeyProvider,
    path: &Path,
) -> Result<(Key, bool), KeyError> {
    match fs::read(path) {
        Ok(wrapped) => Ok((provider.unwrap(&wrapped)?, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dek = Key::generate()?;
            let wrapped = provider.wrap(&dek)?;
            if mamori_durable::create_new(path, &wrapped, 0o600).map_err(io_err(path))? {
                Ok((dek, true))
            } else {
                // Lost a race with another creator: use theirs.
                let wrapped = fs::read(path).map_err(io_err(path))?;
                Ok((provider.unwrap(&wrapped)?, false))
            }
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Overwrites a small key file with zeros, syncs, and removes it.
///
/// On flash with wear levelling the overwrite is best effort; the guarantee comes from the key
/// being gone (crypto-erase), which is why the KEK and the wrapped DEK are destroyed first.
pub fn overwrite_and_remove(path: &Path) -> Result<(), KeyError> {
    use std::io::Write;
    match fs::metadata(path) {
        Ok(meta) => {
            let len = usize::try_from(meta.len())
                .unwrap_or(usize::MAX)
                .min(1 << 20);
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            f.write_all(&vec![0u8; len]).map_err(io_err(path))?;
            f.sync_all().map_err(io_err(path))?;
            fs::remove_file(path).map_err(io_err(path))?;
            if let Some(dir) = path.parent() {
                mamori_durable::sync_dir(dir).map_err(io_err(dir))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn kek_file_is_created_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys/kek");
        let (_, created) = FileKeyProvider::open_or_create(&p).unwrap();
        assert!(created);
        let (_, created) = FileKeyProvider::open_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }

    #[test]
    fn data_key_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (kp, _) = FileKeyProvider::open_or_create(&dir.path().join("kek")).unwrap();
        let (dek, created) = load_or_create_data_key(&kp, &dir.path().join("dek")).unwrap();
        assert!(created);
        let sealed = dek.seal(b"t", b"value").unwrap();
        let kp2 = FileKeyProvider::open(&dir.path().join("kek")).unwrap();
        let (dek2, created) = load_or_create_data_key(&kp2, &dir.path().join("dek")).unwrap();
        assert!(!created);
        assert_eq!(&dek2.open(b"t", &sealed).unwrap()[..], b"value");
    }

    #[test]
    fn wrapped_data_key_does_not_open_under_another_kek() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = FileKeyProvider::open_or_create(&dir.path().join("a")).unwrap();
        let (b, _) = FileKeyProvider::open_or_create(&dir.path().join("b")).unwrap();
        let wrapped = a.wrap(&Key::generate().unwrap()).unwrap();
        assert!(matches!(b.unwrap(&wrapped), Err(KeyError::Unwrap)));
    }

    #[test]
    fn a_corrupt_kek_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kek");
        fs::write(&p, b"short").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            FileKeyProvider::open_or_create(&p),
            Err(KeyError::Corrupt(_))
        ));
        assert_eq!(fs::read(&p).unwrap(), b"short");
    }

    #[test]
    fn a_world_readable_kek_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kek");
        FileKeyProvider::open_or_create(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            FileKeyProvider::open(&p),
            Err(KeyError::Permissions(_))
        ));
    }

    #[test]
    fn destroy_makes_the_data_key_unrecoverable() {
        let dir = tempfile::tempdir().unwrap();
        let kek = dir.path().join("kek");
        let (kp, _) = FileKeyProvider::open_or_create(&kek).unwrap();
        load_or_create_data_key(&kp, &dir.path().join("dek")).unwrap();
        kp.destroy().unwrap();
        assert!(!kek.exists());
        let (fresh, created) = FileKeyProvider::open_or_create(&kek).unwrap();
        assert!(created);
        assert!(load_or_create_data_key(&fresh, &dir.path().join("dek")).is_err());
    }
}
