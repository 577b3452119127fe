//! Why an AI use case refused or failed (mapped to HTTP once, in [`super::routes`]).

use crate::ml::datasets::DatasetError;
use crate::ports::StoreError;
use crate::trading::orders::TradingError;

#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// Not enough stored candles to analyse (the message says what to upload).
    #[error("{0}")]
    NoData(String),
    /// Unknown conversation id, or another user's (the original's text).
    #[error("Conversation not found")]
    ConversationNotFound,
    /// A request the use case refuses (the message says why).
    #[error("{0}")]
    Refused(String),
    /// The user's daily token budget is used up.
    #[error("Your daily AI budget of {limit} tokens is used up; it resets at {resets_at} (UTC midnight)")]
    BudgetExhausted { limit: u64, resets_at: chrono::DateTime<chrono::Utc> },
    /// The language model failed (the chat answers computed instead; strategy generation falls back).
    #[error(transparent)]
    Model(#[from] crate::ports::LlmError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Trading(#[from] TradingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type AiResult<T> = Result<T, AiError>;
