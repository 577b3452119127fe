//! Why a strategy or backtest use case refused or failed; mapped to a status and a `{"detail": …}` body once, in
//! [`super::routes`].

use crate::ml::datasets::DatasetError;
use crate::ports::{BlobError, QueueError, StoreError};

/// The strategies and backtests feature's errors.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// Unknown strategy id, or another user's private one.
    #[error("Strategy not found")]
    StrategyNotFound,
    /// Unknown session id, or another user's.
    #[error("Session not found")]
    SessionNotFound,
    /// The user has [`super::MAX_STRATEGIES_PER_USER`] strategies.
    #[error("at most {0} strategies per user; delete one first")]
    TooManyStrategies(u32),
    /// The template was cloned already (the original's wording).
    #[error("You already have this strategy. Please edit the existing one or delete it first.")]
    AlreadyCloned,
    /// The strategy's rules or settings do not compile: every problem, each naming its rule and position.
    #[error("{}", .0.join("; "))]
    InvalidStrategy(Vec<String>),
    /// A request value is out of range or inconsistent (dates, balance, grid, …).
    #[error("{0}")]
    InvalidRequest(String),
    /// There are no candles for the request (no dataset, or none in the range).
    #[error("{0}")]
    NoData(String),
    /// The session is not finished (or failed), so it has no result yet.
    #[error("{0}")]
    NotReady(String),
    /// Stored data that does not decode.
    #[error("stored backtest data is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl BacktestError {
    /// A dependency failed (store, blobs, queue, datasets): worth retrying as is. Anything else is the request's or
    /// the strategy's problem, which a retry cannot fix (a job records it on its session instead).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BacktestError::Store(_) | BacktestError::Blob(_) | BacktestError::Queue(_) | BacktestError::Dataset(_)
        )
    }
}

/// Result of the feature's use cases.
pub type BacktestResult<T> = Result<T, BacktestError>;
