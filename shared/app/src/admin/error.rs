//! Errors of the admin use cases (mapped to statuses once, in [`super::routes`]).

use crate::ports::{SecretsError, StoreError};
use crate::settings::record::MAX_SETTINGS;

/// One refused input, in the terms of the request (`location`: `body`, `path` or `query`). `input` is echoed back
/// only where it is not a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub location: &'static str,
    pub field: &'static str,
    pub kind: &'static str,
    pub message: String,
    pub input: Option<String>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AdminError {
    /// The contract's message.
    #[error("Setting '{0}' not found")]
    NotFound(String),
    #[error("invalid input")]
    Invalid(Vec<Invalid>),
    #[error("At most {MAX_SETTINGS} settings can be stored: delete unused ones first")]
    TooMany,
    /// Another admin's change won every retry.
    #[error("The setting changed while it was being written; try again")]
    Conflict,
    /// A secret could not be sealed (the key service is down or not configured): nothing was written.
    #[error("The setting could not be encrypted, so it was not saved: {0}")]
    Encryption(SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
