//! [`KeyWrapper`] on AWS KMS: the master key of the settings' envelope encryption never leaves KMS. A data key is
//! `GenerateDataKey` (`AES_256`) under the configured key (`NUSATRADE_KMS_KEY_ID`: a key id, ARN or alias), its
//! ciphertext blob stored beside the value; opening is `Decrypt` of that blob, restricted to the same key. Both
//! calls carry the encryption context `{"purpose": "nusatrade-settings"}`, so a blob made for anything else under
//! the key does not decrypt here (and CloudTrail shows what each call was for). One `Decrypt` per setting per
//! instance per settings TTL (`nusatrade_app::settings::RuntimeSettings` keeps the opened value with its snapshot).
//!
//! Errors of `Decrypt`: a blob KMS refuses (`InvalidCiphertextException`, `IncorrectKeyException`, a key that does
//! not exist, `AccessDeniedException`) is [`SecretsError::Undecryptable`]: the value does not open here and a retry
//! will not help; anything else (throttling, a disabled key, the network) is [`SecretsError::Unavailable`].

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_types::SdkConfig;
use nusatrade_app::ports::secrets::DATA_KEY_BYTES;
use nusatrade_app::ports::{DataKey, DataKeyBytes, KeyWrapper, NoKeys, SecretsError};
use zeroize::Zeroizing;

use crate::config::{AwsSettings, ConfigError, load_sdk_config};
use crate::error::describe;

/// The KMS key of the settings' envelope encryption.
pub const ENV_KMS_KEY_ID: &str = "NUSATRADE_KMS_KEY_ID";
/// The encryption context of every call.
pub const CONTEXT_KEY: &str = "purpose";
pub const CONTEXT_VALUE: &str = "nusatrade-settings";

/// The KMS implementation of [`KeyWrapper`].
#[derive(Clone, Debug)]
pub struct KmsKeys {
    client: Client,
    key_id: String,
}

impl KmsKeys {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        KmsKeys { client, key_id: key_id.into() }
    }

    /// Over the shared SDK configuration.
    pub fn from_sdk(sdk: &SdkConfig, key_id: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), key_id)
    }

    /// Creates a symmetric encryption key and returns its id (tests and emulator setups; the template creates the
    /// real one).
    pub async fn create_key(client: &Client) -> Result<String, String> {
        let out = client
            .create_key()
            .description("nusatrade settings (test)")
            .send()
            .await
            .map_err(|e| describe("CreateKey", &e))?;
        out.key_metadata().map(|m| m.key_id().to_owned()).ok_or_else(|| "CreateKey returned no key".to_owned())
    }
}

/// A 256-bit key from KMS's plaintext blob (zeroed once copied).
fn key_bytes(blob: Option<Blob>, operation: &str) -> Result<DataKeyBytes, SecretsError> {
    let bytes = Zeroizing::new(blob.map(Blob::into_inner).unwrap_or_default());
    let arr: [u8; DATA_KEY_BYTES] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SecretsError::Unavailable(format!("{operation} returned a {}-byte key", bytes.len())))?;
    Ok(Zeroizing::new(arr))
}

#[async_trait]
impl KeyWrapper for KmsKeys {
    fn scheme(&self) -> &'static str {
        "kms"
    }

    async fn generate_data_key(&self) -> Result<DataKey, SecretsError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, CONTEXT_VALUE)
            .send()
            .await
            .map_err(|e| SecretsError::Unavailable(describe("GenerateDataKey", &e)))?;
        let wrapped = out.ciphertext_blob().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        if wrapped.is_empty() {
            return Err(SecretsError::Unavailable("GenerateDataKey returned no ciphertext blob".into()));
        }
        let plaintext = key_bytes(out.plaintext, "GenerateDataKey")?;
        Ok(DataKey { plaintext, wrapped })
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<DataKeyBytes, SecretsError> {
        if wrapped.is_empty() {
            return Err(SecretsError::Undecryptable("an empty ciphertext blob".into()));
        }
        let res = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .key_id(&self.key_id)
            .encryption_context(CONTEXT_KEY, CONTEXT_VALUE)
            .send()
            .await;
        match res {
            Ok(out) => key_bytes(out.plaintext, "Decrypt"),
            Err(e) => match e.as_service_error() {
                Some(
                    s @ (DecryptError::InvalidCiphertextException(_)
                    | DecryptError::IncorrectKeyException(_)
                    | DecryptError::NotFoundException(_)),
                ) => Err(SecretsError::Undecryptable(format!(
                    "KMS refused the data key: {}",
                    s.meta().code().unwrap_or("?")
                ))),
                // A blob naming a key this role may not use (moto says so for a blob whose key id was edited), or
                // the role lacks kms:Decrypt: either way the value does not open here, and a retry will not help.
                Some(s) if s.meta().code() == Some("AccessDeniedException") => Err(SecretsError::Undecryptable(
                    "KMS denied the decryption (AccessDeniedException): the data key names a key this role may not \
                     use, or the role lacks kms:Decrypt"
                        .into(),
                )),
                _ => Err(SecretsError::Unavailable(describe("Decrypt", &e))),
            },
        }
    }
}

/// The settings' master key of a function: KMS with `NUSATRADE_KMS_KEY_ID`, over the SDK configuration the other
/// adapters use ([`load_sdk_config`]); without the variable, a stand-in whose every call answers
/// "NUSATRADE_KMS_KEY_ID is not set" (logged here), so the function starts and only secrets fail.
pub async fn key_wrapper_from_env() -> Result<Arc<dyn KeyWrapper>, ConfigError> {
    let settings = AwsSettings::from_env()?;
    match std::env::var(ENV_KMS_KEY_ID).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(key_id) => Ok(Arc::new(KmsKeys::from_sdk(&load_sdk_config(&settings).await, key_id))),
        None => {
            tracing::warn!("{ENV_KMS_KEY_ID} is not set: encrypted settings can be neither written nor read");
            Ok(Arc::new(NoKeys(format!("{ENV_KMS_KEY_ID} is not set"))))
        }
    }
}
