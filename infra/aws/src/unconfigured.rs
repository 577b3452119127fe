//! Stand-in for a port whose setting is missing: every call fails with "<VAR> is not set", so a
//! function that never uses the port starts fine and one that does gets a clear error.

use async_trait::async_trait;
use bytes::Bytes;
use nusatrade_app::ports::{
    BlobError, BlobInfo, BlobKey, BlobStore, Condition, Email, Item, ItemStore, Key, MailError, Mailer, Page, Push,
    PushError, PushOutcome, Query, Scan, StoreError, TxOp, Update,
};

/// The name of the missing environment variable.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unconfigured(pub &'static str);

impl Unconfigured {
    fn message(&self) -> String {
        format!("{} is not set", self.0)
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
