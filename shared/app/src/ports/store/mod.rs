//! The item store port: DynamoDB's data model and write semantics expressed as Rust types.
//!
//! One table, generic keys `PK`/`SK`, an overloaded global secondary index `GSI1` (`GSI1PK`/`GSI1SK`)
//! and an expiry attribute `ttl` (epoch seconds). No expression strings exist at this level: the
//! DynamoDB adapter turns [`Condition`] and [`Update`] into expressions; the embedded adapter evaluates
//! them with [`eval`]. Both adapters run the same contract suite (`crate::contract::store`).
//!
//! Semantics every adapter gives (and the contract suite checks):
//! - `get` and `query` are strongly consistent on the table; an item whose `ttl` is in the past
//!   (per the store's [`Clock`](crate::ports::Clock)) is treated as absent everywhere: reads skip it,
//!   conditions see no item, `update` starts from an empty item.
//! - `put` replaces the whole item; `update` creates the item when it does not exist (upsert), unless
//!   the condition forbids it; `delete` returns the old item.
//! - `transact_write` applies up to [`MAX_TRANSACTION_OPS`] operations on distinct keys atomically; if
//!   any condition fails nothing is written and the error carries one [`CancelReason`] per operation,
//!   in order.
//! - `query` returns items of one partition in sort-key order (byte order of the UTF-8 strings), at
//!   most `limit` evaluated items per page; a page may hold fewer items than `limit` (expired items are
//!   dropped after the limit is applied, as DynamoDB does with filters). The query is complete when
//!   `cursor` is `None`.
//! - `scan` reads the whole table in `total_segments` disjoint segments that can be read in parallel
//!   (full-table export for backups): every item belongs to exactly one segment, all the items of a
//!   partition to the same one, so reading every segment to the end returns every item that exists
//!   for the whole scan exactly once (an item written or deleted meanwhile may or may not be seen).
//!   Each page is a strongly consistent read; the scan as a whole is not a snapshot. Order within a
//!   segment is unspecified. Pages follow the query rules: at most `limit` evaluated items, expired
//!   items evaluated and dropped (so a backup never holds an item that had already expired, and a
//!   restore cannot resurrect one), complete when `cursor` is `None`. A scan cursor is bound to its
//!   segment and segment count: another segment's cursor, or a query's, is an [`StoreError::InvalidCursor`].
//! - `put_many` writes up to [`MAX_BATCH_WRITE_ITEMS`] items with distinct keys, unconditionally, each
//!   replacing any stored item (restores). It is not atomic: when it fails, some of the items may have
//!   been written; every put being idempotent, the caller retries the whole batch. Requests are
//!   validated first, so an invalid batch writes nothing.
//!
//! The port ([`ItemStore`], [`StoreError`], the limits) is here; the data in [`item`](Item), the requests
//! (conditions, updates, queries, scans, cursors) in `request`, and the reference semantics both adapters call
//! back into in [`validate`] (what every adapter refuses) and [`eval`] (conditions and updates on an item).

use async_trait::async_trait;
use rust_decimal::Decimal;

pub mod eval;
mod item;
mod record;
mod request;
pub mod validate;

pub use item::{Item, Key, Value};
pub use request::{
    CancelReason, CmpOp, Condition, Cursor, Index, Page, Query, Scan, SkCondition, TxOp, Update, UpdateAction,
};

/// Partition key attribute of the table.
pub const PK: &str = "PK";
/// Sort key attribute of the table.
pub const SK: &str = "SK";
/// Expiry attribute: epoch seconds (a number). Items past it are treated as absent.
pub const TTL_ATTR: &str = "ttl";
/// DynamoDB's limit on the number of operations in one `TransactWriteItems`.
pub const MAX_TRANSACTION_OPS: usize = 100;
/// DynamoDB's maximum item size (400 KB, names and values counted).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Largest page a query may ask for.
pub const MAX_QUERY_LIMIT: u32 = 1000;
/// Page size when a query names none.
pub const DEFAULT_QUERY_LIMIT: u32 = 100;
/// Partition key values are at most 2048 bytes, sort key values at most 1024 (DynamoDB's limits).
pub const MAX_PK_BYTES: usize = 2048;
pub const MAX_SK_BYTES: usize = 1024;
/// Longest cursor a client may hand back.
pub const MAX_CURSOR_LEN: usize = 4096;
/// DynamoDB's limit on the number of puts in one `BatchWriteItem` (and so in one `put_many`).
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;
/// Most segments a scan may be split into.
pub const MAX_SCAN_SEGMENTS: u32 = 1000;
/// Version of the table's layout (key attributes, index, item shapes). Backups record it; a restore
/// refuses a backup written by a newer layout than this code knows. Bump it (and teach the restore
/// to migrate older items) whenever stored items change incompatibly.
pub const TABLE_SCHEMA_VERSION: u32 = 1;

/// Errors of the item store.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum StoreError {
    #[error("the condition of the write was not met")]
    ConditionFailed,
    #[error("transaction cancelled: {0:?}")]
    TransactionCanceled(Vec<CancelReason>),
    #[error("invalid store request: {0}")]
    Validation(String),
    #[error("invalid pagination cursor")]
    InvalidCursor,
    #[error("the store is throttling requests")]
    Throttled,
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// True when the write was refused by a condition (alone or inside a transaction).
    pub fn is_condition_failure(&self) -> bool {
        match self {
            StoreError::ConditionFailed => true,
            StoreError::TransactionCanceled(r) => r.contains(&CancelReason::ConditionalCheckFailed),
            _ => false,
        }
    }
}

/// The item store.
#[async_trait]
pub trait ItemStore: Send + Sync + 'static {
    /// Strongly consistent read of one item.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;
    /// Writes the whole item if the condition holds.
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), StoreError>;
    /// Applies the update if the condition holds and returns the item as it is after the update.
    async fn update(&self, key: &Key, update: Update, condition: Option<Condition>) -> Result<Item, StoreError>;
    /// Deletes the item if the condition holds and returns what was deleted.
    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<Option<Item>, StoreError>;
    /// All-or-nothing write of up to [`MAX_TRANSACTION_OPS`] operations on distinct items.
    async fn transact_write(&self, ops: Vec<TxOp>) -> Result<(), StoreError>;
    /// One page of a partition (table or index).
    async fn query(&self, query: Query) -> Result<Page, StoreError>;
    /// One page of one segment of a full-table scan.
    async fn scan(&self, scan: Scan) -> Result<Page, StoreError>;
    /// Unconditional puts of up to [`MAX_BATCH_WRITE_ITEMS`] items with distinct keys (not atomic).
    async fn put_many(&self, items: Vec<Item>) -> Result<(), StoreError>;

    /// Atomic counter: adds `by` to `attr` (creating the item and attribute as needed) and returns
    /// the new value.
    async fn increment(
        &self,
        key: &Key,
        attr: &str,
        by: i64,
        condition: Option<Condition>,
    ) -> Result<Decimal, StoreError> {
        let item = self.update(key, Update::new().add(attr, by), condition).await?;
        item.get_n(attr).ok_or_else(|| StoreError::Corrupt(format!("counter {attr} of {key} is not a number")))
    }
}

#[cfg(test)]
mod tests;
