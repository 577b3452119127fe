//! What went wrong in an ML use case, said in the use case's terms. The routes turn it into an HTTP status and a
//! `{"detail": …}` body once (`impl From<MlError> for ApiError` in [`super::routes`]); the job consumers turn it
//! into a retry or a dropped message.

use super::artefacts::ArtefactStoreError;
use super::datasets::DatasetError;
use crate::ports::{BlobError, QueueError, StoreError};
use crate::trading::orders::TradingError;

/// Why an ML use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// The model, prediction or default does not exist (or is another user's: the same answer).
    #[error("{0}")]
    NotFound(String),
    /// A rule refuses the request as it stands: an untrained model, a HOLD signal, a model in training, a limit
    /// reached, a lot size outside the instrument's range. The message says which, for the client.
    #[error("{0}")]
    Refused(String),
    /// A concurrent change won; the caller may read again and retry.
    #[error("{0}")]
    Conflict(String),
    /// Not possible right now (lost write races, a default model still training, no trading in this process); the
    /// message, for the client, says to retry later.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Artefact(#[from] ArtefactStoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Trading(#[from] TradingError),
}

/// The result of an ML use case.
pub type MlResult<T> = Result<T, MlError>;
