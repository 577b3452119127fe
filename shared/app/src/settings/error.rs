//! Errors of the settings feature.

use crate::ports::{SecretsError, StoreError};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An encrypted setting that could not be opened (the key service is down, the value was tampered with…).
    /// Names the setting, never its value.
    #[error("setting '{key}': {source}")]
    Secret { key: String, source: SecretsError },
}
