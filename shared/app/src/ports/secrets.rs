//! Secrets: a value that never prints ([`Secret`]), and the key-wrapping port behind envelope encryption of stored
//! secrets (KMS in AWS, a key file in the data dir locally).

use std::fmt;

use async_trait::async_trait;
use zeroize::Zeroizing;

/// A secret value (an API key, a password…): `Debug` and `Display` print `***`, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that sends it (an `Authorization` header, a decrypted setting).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Bytes of a data key (AES-256).
pub const DATA_KEY_BYTES: usize = 32;

/// Longest wrapped data key an adapter may hand out (a KMS ciphertext blob of a 256-bit data key is ~184 bytes).
pub const MAX_WRAPPED_KEY_BYTES: usize = 1024;

/// The plaintext of a data key, zeroed when dropped.
pub type DataKeyBytes = Zeroizing<[u8; DATA_KEY_BYTES]>;

/// A fresh data key for one value: the plaintext to encrypt with (then dropped, zeroed), and the same key wrapped
/// by the master key, stored beside the ciphertext. `Debug` never shows the plaintext.
pub struct DataKey {
    pub plaintext: DataKeyBytes,
    pub wrapped: Vec<u8>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").field("plaintext", &"***").field("wrapped_bytes", &self.wrapped.len()).finish()
    }
}

/// Why a key could not be made or unwrapped, or a sealed value not opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// The master key cannot be used now (KMS unreachable, throttled or denied, the key id not configured, the key
    /// file unreadable). Nothing is wrong with the value; a retry may succeed.
    #[error("the encryption key service is unavailable: {0}")]
    Unavailable(String),
    /// The value does not decrypt: tampered with, moved to another setting, or sealed under another master key.
    #[error("the encrypted value cannot be decrypted: {0}")]
    Undecryptable(String),
    /// Not a sealed value this code reads (unknown format or version, truncated).
    #[error("the encrypted value is not in a known format: {0}")]
    Malformed(String),
}

/// The master key of envelope encryption: it makes data keys and unwraps them, and never leaves its service (KMS in
/// AWS, a key file in the data dir locally). The sealing itself (AES-256-GCM with a fresh data key per value) is
/// `crate::settings::envelope`; one contract suite (`crate::contract::secrets`) runs on every adapter.
#[async_trait]
pub trait KeyWrapper: Send + Sync + 'static {
    /// The master key's kind, written into every sealed value (`local`, `kms`): a value sealed under another kind
    /// is refused with a message that says so.
    fn scheme(&self) -> &'static str;
    /// A fresh random 256-bit data key and its wrapped form (at most [`MAX_WRAPPED_KEY_BYTES`]).
    async fn generate_data_key(&self) -> Result<DataKey, SecretsError>;
    /// The plaintext of a data key this master key wrapped; [`SecretsError::Undecryptable`] for anything else
    /// (tampered, another master key's, garbage).
    async fn unwrap(&self, wrapped: &[u8]) -> Result<DataKeyBytes, SecretsError>;
}

/// A key wrapper that is not configured (e.g. `NUSATRADE_KMS_KEY_ID` unset): every call answers
/// [`SecretsError::Unavailable`] with the reason, so a function that never touches a secret still starts.
#[derive(Clone, Debug)]
pub struct NoKeys(pub String);

#[async_trait]
impl KeyWrapper for NoKeys {
    fn scheme(&self) -> &'static str {
        "none"
    }
    async fn generate_data_key(&self) -> Result<DataKey, SecretsError> {
        Err(SecretsError::Unavailable(self.0.clone()))
    }
    async fn unwrap(&self, _: &[u8]) -> Result<DataKeyBytes, SecretsError> {
        Err(SecretsError::Unavailable(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn a_data_key_never_prints_its_plaintext() {
        let k = DataKey { plaintext: Zeroizing::new([7u8; DATA_KEY_BYTES]), wrapped: vec![1, 2, 3] };
        assert_eq!(format!("{k:?}"), "DataKey { plaintext: \"***\", wrapped_bytes: 3 }");
    }

    #[tokio::test]
    async fn an_unconfigured_wrapper_says_why() {
        let k = NoKeys("NUSATRADE_KMS_KEY_ID is not set".into());
        assert_eq!(
            k.generate_data_key().await.unwrap_err(),
            SecretsError::Unavailable("NUSATRADE_KMS_KEY_ID is not set".into())
        );
        assert!(matches!(k.unwrap(b"x").await, Err(SecretsError::Unavailable(_))));
    }
}
