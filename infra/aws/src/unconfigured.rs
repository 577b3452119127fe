//! Stand-in for a port whose setting is missing (every call fails with "<VAR> is not set", so a function that never
//! uses the port starts fine and one that does gets a clear error), or that the function does not build at all
//! ([`crate::config::PortsBuilder`]: its SDK is not linked).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use nusatrade_app::ports::{
    BlobError, BlobInfo, BlobKey, BlobStore, Condition, Email, Item, ItemStore, Key, MailError, Mailer, Page, Push,
    PushError, PushOutcome, Query, Queue, QueueError, ReceivedMessage, Scan, StoreError, TxOp, Update,
};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Unconfigured {
    /// The port's setting (this environment variable) is not set.
    #[cfg_attr(not(any(feature = "dynamodb", feature = "s3", feature = "apigw", feature = "ses")), allow(dead_code))]
    Missing(&'static str),
    /// The function does not use the port (its adapter is not built).
    Unused,
}

impl Unconfigured {
    fn message(&self) -> String {
        match self {
            Unconfigured::Missing(var) => format!("{var} is not set"),
            Unconfigured::Unused => "not used by this function".to_owned(),
        }
    }
}

#[async_trait]
impl ItemStore for Unconfigured {
    async fn get(&self, _: &Key) -> Result<Option<Item>, StoreError> {
        Err(StoreError::Unavailable(self.message()))
    }
    async fn put(&self, _: Item, _: Option<Condition>) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(self.message()))
    }
    async fn update(&self, _: &Key, _: Update, _: Option<Condition>) -> Result<Item, StoreError> {
        Err(StoreError::Unavailable(self.message()))
    }
    async fn delete(&self, _: &Key, _: Option<Condition>) -> Result<Option<Item>, StoreError> {
        Err(StoreError::Unavailable(self.message()))
    }
    async fn transact_write(&self, _: Vec<TxOp>) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(self.message()))
    }
    async fn query(&self, _: Query) -> Result<Page, StoreError> {
        Err(StoreError::Unavailable(self.message()))
    }
    async fn scan(&self, _: Scan) -> Result<Page, StoreError> {
        Err(StoreError::Unavailable(self.message()))
    }
    async fn put_many(&self, _: Vec<Item>) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(self.message()))
    }
}

#[async_trait]
impl BlobStore for Unconfigured {
    async fn put(&self, _: &BlobKey, _: Bytes, _: &str) -> Result<(), BlobError> {
        Err(BlobError::Unavailable(self.message()))
    }
    async fn get(&self, _: &BlobKey, _: u64) -> Result<Option<Bytes>, BlobError> {
        Err(BlobError::Unavailable(self.message()))
    }
    async fn delete(&self, _: &BlobKey) -> Result<(), BlobError> {
        Err(BlobError::Unavailable(self.message()))
    }
    async fn list(&self, _: &str) -> Result<Vec<BlobInfo>, BlobError> {
        Err(BlobError::Unavailable(self.message()))
    }
}

#[async_trait]
impl Push for Unconfigured {
    async fn post(&self, _: &str, _: Bytes) -> Result<PushOutcome, PushError> {
        Err(PushError::Unavailable(self.message()))
    }
    async fn close(&self, _: &str) -> Result<(), PushError> {
        Err(PushError::Unavailable(self.message()))
    }
}

#[async_trait]
impl Mailer for Unconfigured {
    async fn send(&self, _: &Email) -> Result<(), MailError> {
        Err(MailError::Unavailable(self.message()))
    }
}

#[async_trait]
impl Queue for Unconfigured {
    async fn send(&self, _: &str, _: &str, _: Duration) -> Result<String, QueueError> {
        Err(QueueError::Unavailable(self.message()))
    }
    async fn receive(&self, _: &str, _: u32, _: Duration, _: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        Err(QueueError::Unavailable(self.message()))
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), QueueError> {
        Err(QueueError::Unavailable(self.message()))
    }
}
