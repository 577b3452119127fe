//! Ports: what the application needs from the outside world, as traits with no AWS types.
//! `infra/aws` and `infra/local` implement each one; `crate::contract` checks both alike.

pub mod blob;
pub mod clock;
pub mod llm;
pub mod mail;
pub mod push;
pub mod queue;
pub mod secrets;
pub mod store;

use std::sync::Arc;

pub use blob::{BlobError, BlobInfo, BlobKey, BlobStore};
pub use clock::{Clock, IdGenerator, ManualClock, RandomIds, SequentialIds, SystemClock};
pub use llm::{
    ChatMessage, Completion, CompletionRequest, LanguageModel, LlmConfig, LlmError, ModelFactory, Provider, Role, Usage,
};
pub use mail::{Email, MailError, Mailer};
pub use push::{Push, PushError, PushOutcome};
pub use queue::{Queue, QueueError, ReceivedMessage};
pub use secrets::{DataKey, DataKeyBytes, KeyWrapper, NoKeys, Secret, SecretsError};
pub use store::{
    CancelReason, CmpOp, Condition, Cursor, Index, Item, ItemStore, Key, Page, Query, Scan, SkCondition, StoreError,
    TxOp, Update, UpdateAction, Value,
};

/// Every port an application service may use, built once per process (Lambda init or gateway start).
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn ItemStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn Queue>,
    pub push: Arc<dyn Push>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
}
