//! The local master key of envelope encryption ([`KeyWrapper`]): 32 random bytes in `<data-dir>/settings.key`,
//! created (mode 0600) the first time a secret is sealed, read when one is opened. A data key is wrapped with
//! AES-256-GCM under it (`nusatrade_app::settings::envelope::aead_seal`, a random nonce per key):
//!
//! ```text
//! wrapped = 0x01 (format) ‖ nonce (12) ‖ AES-256-GCM(master, data key, aad = "nusatrade-keyfile/v1") (32 + 16)
//! ```
//!
//! Whoever reads the file reads every encrypted setting of the data dir (as whoever may call KMS Decrypt in AWS):
//! keep it with the data dir, out of backups that leave the machine, and copy it along when the store is restored
//! elsewhere — without it, encrypted settings do not open (write them again).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use nusatrade_app::ports::secrets::DATA_KEY_BYTES;
use nusatrade_app::ports::{DataKey, DataKeyBytes, KeyWrapper, SecretsError};
use nusatrade_app::settings::envelope::{NONCE_BYTES, TAG_BYTES, aead_open, aead_seal, random_key};
use zeroize::Zeroizing;

/// The key file's name in the data dir.
pub const KEY_FILE: &str = "settings.key";
const FORMAT: u8 = 1;
const AAD: &[u8] = b"nusatrade-keyfile/v1";
const WRAPPED_BYTES: usize = 1 + NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES;

/// The data dir's master key, loaded (or created) on first use.
pub struct KeyFile {
    path: PathBuf,
    key: Mutex<Option<DataKeyBytes>>,
}

impl KeyFile {
    /// The key file at `path` (nothing is read or written yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KeyFile { path: path.into(), key: Mutex::new(None) }
    }

    /// `<data_dir>/settings.key`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join(KEY_FILE))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> SecretsError {
        SecretsError::Unavailable(format!("the settings key file {}: {what}", self.path.display()))
    }

    /// The key, read from the file; with `create`, a new file when there is none.
    fn master(&self, create: bool) -> Result<DataKeyBytes, SecretsError> {
        let mut slot = self.key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = slot.as_ref() {
            return Ok(k.clone());
        }
        let key = match self.read()? {
            Some(k) => k,
            None if create => self.create()?,
            None => return Err(self.unavailable("is missing, so no encrypted setting can be opened")),
        };
        *slot = Some(key.clone());
        Ok(key)
    }

    fn read(&self) -> Result<Option<DataKeyBytes>, SecretsError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.unavailable(e)),
        };
        if bytes.len() != DATA_KEY_BYTES {
            return Err(self.unavailable(format_args!(
                "holds {} bytes, not {DATA_KEY_BYTES}: restore it, or move it away to start a new key (encrypted \
                 settings sealed with the old one will not open)",
                bytes.len()
            )));
        }
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(&self.path) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %self.path.display(), "the settings key file is readable by others: chmod 600 it");
            }
        }
        let mut key = random_key()?;
        key.copy_from_slice(&bytes);
        Ok(Some(key))
    }

    fn create(&self) -> Result<DataKeyBytes, SecretsError> {
        let key = random_key()?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        match opts.open(&self.path) {
            Ok(mut f) => {
                f.write_all(&key[..]).map_err(|e| self.unavailable(e))?;
                f.sync_all().map_err(|e| self.unavailable(e))?;
                if let Some(dir) = self.path.parent()
                    && let Ok(d) = std::fs::File::open(dir)
                {
                    let _ = d.sync_all();
                }
                tracing::info!(path = %self.path.display(), "settings key file created");
                Ok(key)
            }
            // another process (or task) created it first: use theirs
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.read()?.ok_or_else(|| self.unavailable("vanished while being created"))
            }
            Err(e) => Err(self.unavailable(e)),
        }
    }
}

#[async_trait]
impl KeyWrapper for KeyFile {
    fn scheme(&self) -> &'static str {
        "local"
    }

    async fn generate_data_key(&self) -> Result<DataKey, SecretsError> {
        let master = self.master(true)?;
        let plaintext = random_key()?;
        let (nonce, ciphertext) = aead_seal(&master, AAD, &plaintext[..])?;
        let mut wrapped = Vec::with_capacity(WRAPPED_BYTES);
        wrapped.push(FORMAT);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&ciphertext);
        Ok(DataKey { plaintext, wrapped })
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<DataKeyBytes, SecretsError> {
        if wrapped.len() != WRAPPED_BYTES || wrapped[0] != FORMAT {
            return Err(SecretsError::Undecryptable("not a data key wrapped by a settings key file".into()));
        }
        let master = self.master(false)?;
        let nonce: [u8; NONCE_BYTES] = wrapped[1..1 + NONCE_BYTES].try_into().expect("length checked");
        let plain = aead_open(&master, &nonce, AAD, &wrapped[1 + NONCE_BYTES..]).map_err(|_| {
            SecretsError::Undecryptable("not wrapped by this data dir's settings.key (was it replaced?)".into())
        });
        let plain = Zeroizing::new(plain?);
        let mut key = random_key()?;
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let k = KeyFile::new(&path);
        assert!(matches!(k.unwrap(&[1; WRAPPED_BYTES]).await, Err(SecretsError::Unavailable(_))), "no file yet");
        assert!(!path.exists(), "opening never creates the key");
        let key = k.generate_data_key().await.unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), DATA_KEY_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // a new process on the same data dir opens what the first sealed
        let again = KeyFile::new(&path);
        assert_eq!(again.unwrap(&key.wrapped).await.unwrap()[..], key.plaintext[..]);
        again.generate_data_key().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "the key is never replaced");
    }

    #[tokio::test]
    async fn a_damaged_key_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, b"short").unwrap();
        let e = KeyFile::new(&path).generate_data_key().await.unwrap_err();
        assert!(
            matches!(&e, SecretsError::Unavailable(m) if m.contains("settings.key") && m.contains("5 bytes")),
            "{e}"
        );
    }
}
