//! [`ItemStore`] on DynamoDB: one table (`PK`/`SK`, index `GSI1` on `GSI1PK`/`GSI1SK`, expiry
//! attribute `ttl`), with exactly the semantics documented in `nusatrade_app::ports::store`.
//!
//! - Conditions and updates become expression strings here and nowhere else. Every attribute name
//!   and every value goes through a generated placeholder (`#n0`, `:v0`): nothing a caller passes is
//!   ever interpolated into an expression.
//! - Requests are checked with `validate::*` before they reach AWS, so that this adapter and the
//!   embedded one refuse the same requests.
//! - Expiry: DynamoDB deletes expired items lazily (up to days later) and moto never does, so expired
//!   items (`ttl <= now` per the store's clock) are filtered out of reads in code. For writes, an
//!   expired item must behave as absent: every write whose outcome depends on the current item gets
//!   the guard `(attribute_not_exists(#ttl) OR #ttl >= :now_plus_1)` AND-ed to its condition, with
//!   `ReturnValuesOnConditionCheckFailure=ALL_OLD`. When the check fails and the item that made it fail
//!   is expired, that stale item is deleted (conditionally on its exact `ttl`, so a fresh write by
//!   someone else is never removed) and the write is retried once.
//!   Writes whose outcome cannot depend on the current item (an unconditional `put`, an
//!   unconditional `delete`, and the same inside a transaction) carry no guard: replacing or deleting
//!   an expired item is the same as replacing or deleting nothing. An unconditional `delete` still
//!   reports an expired old item as `None`.
//! - Scans use DynamoDB's parallel `Scan` (`Segment`/`TotalSegments`, consistent reads); the cursor
//!   carries the segment besides `LastEvaluatedKey` and is checked before it becomes an
//!   `ExclusiveStartKey`. `put_many` is one `BatchWriteItem`; unprocessed items (throttling) are
//!   retried with exponential backoff, up to [`BATCH_WRITE_ATTEMPTS`] requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem,
    Update as DynUpdate, WriteRequest,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use nusatrade_app::ports::store::{Index, PK, SK, TTL_ATTR, validate};
use nusatrade_app::ports::{
    CancelReason, Clock, Condition, Cursor, Item, ItemStore, Key, Page, Query, Scan, SkCondition, StoreError, TxOp,
    Update, Value,
};

use crate::error::{code, describe, is_throttling};

type AttrMap = HashMap<String, AttributeValue>;

/// Most `BatchWriteItem` requests one `put_many` makes before giving up on unprocessed items.
pub const BATCH_WRITE_ATTEMPTS: u32 = 8;

/// The DynamoDB implementation of [`ItemStore`].
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore").field("table", &self.table).finish_non_exhaustive()
    }
}

impl DynamoStore {
    /// A store on `table`; `clock` decides which items have expired.
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        DynamoStore { client, table: table.into(), clock }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the platform's table (used by tests and by the local emulator setup; production tables
    /// come from the SAM template): `PK`/`SK` strings, `GSI1` (`GSI1PK`/`GSI1SK`, all attributes
    /// projected), on-demand billing, then TTL on `ttl`. Waits until the table is active.
    pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
        let build = |e: aws_smithy_types::error::operation::BuildError| StoreError::Validation(e.to_string());
        let string_attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)
        };
        let key =
            |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build().map_err(build);
        let ix = Index::Gsi1;
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(ix.name())
            .key_schema(key(ix.pk_attr(), KeyType::Hash)?)
            .key_schema(key(ix.sk_attr(), KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build)?;
        client
            .create_table()
            .table_name(name)
            .attribute_definitions(string_attr(PK)?)
            .attribute_definitions(string_attr(SK)?)
            .attribute_definitions(string_attr(ix.pk_attr())?)
            .attribute_definitions(string_attr(ix.sk_attr())?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| sdk_error("CreateTable", &e))?;
        client
            .wait_until_table_exists()
            .table_name(name)
            .wait(Duration::from_secs(120))
            .await
            .map_err(|e| StoreError::Unavailable(describe("waiting for the table", &e)))?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().enabled(true).attribute_name(TTL_ATTR).build().map_err(build)?,
            )
            .send()
            .await
            .map_err(|e| sdk_error("UpdateTimeToLive", &e))?;
        Ok(())
    }

    fn now(&self) -> i64 {
        self.clock.epoch_seconds()
    }

    /// Reads the stored item, expired or not.
    async fn get_raw(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", &e))?;
        out.item.map(from_attr_map).transpose()
    }

    /// After a failed condition check on `key`: when the item that failed it (`old`, as returned by
    /// `ReturnValuesOnConditionCheckFailure`, or read again when the backend did not return it) has
    /// expired, deletes it — only if its `ttl` is still the one seen — and returns true (retry).
    async fn clear_if_expired(&self, key: &Key, old: Option<AttrMap>, now: i64) -> Result<bool, StoreError> {
        let old = match old {
            Some(raw) => from_attr_map(raw)?,
            None => match self.get_raw(key).await? {
                Some(item) => item,
                None => return Ok(false),
            },
        };
        if !old.is_expired(now) {
            return Ok(false);
        }
        let Some(ttl) = old.get(TTL_ATTR) else { return Ok(false) };
        let mut ex = Expr::default();
        let cond = format!("{} = {}", ex.name(TTL_ATTR), ex.value(ttl)?);
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .condition_expression(cond)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values())
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            // Someone rewrote or removed it meanwhile: the retry sees their version.
            Err(e) if matches!(e.as_service_error(), Some(DeleteItemError::ConditionalCheckFailedException(_))) => {
                Ok(true)
            }
            Err(e) => Err(sdk_error("DeleteItem (expired item)", &e)),
        }
    }
}

#[async_trait]
impl ItemStore for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        validate::key(key)?;
        let now = self.now();
        Ok(self.get_raw(key).await?.filter(|i| !i.is_expired(now)))
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), StoreError> {
        let key = validate::item(&item)?;
        let attrs = to_attr_map(&item)?;
        for attempt in 0..2 {
            let now = self.now();
            let mut ex = Expr::default();
            let cond = condition.as_ref().map(|c| ex.guarded(Some(c), now)).transpose()?;
            let res = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(attrs.clone()))
                .set_condition_expression(cond)
                .set_expression_attribute_names(ex.names())
                .set_expression_attribute_values(ex.values())
                .set_return_values_on_condition_check_failure(
                    condition.as_ref().map(|_| ReturnValuesOnConditionCheckFailure::AllOld),
                )
                .send()
                .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) => match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(f)) => {
                        if attempt == 0 && self.clear_if_expired(&key, f.item().cloned(), now).await? {
                            continue;
                        }
                        return Err(StoreError::ConditionFailed);
                    }
                    _ => return Err(sdk_error("PutItem", &e)),
                },
            }
        }
        Err(StoreError::ConditionFailed)
    }

    async fn update(&self, key: &Key, update: Update, condition: Option<Condition>) -> Result<Item, StoreError> {
        validate::key(key)?;
        validate::update(&update)?;
        for attempt in 0..2 {
            let now = self.now();
            let mut ex = Expr::default();
            let update_expr = ex.update(&update)?;
            // Always guarded: an update of an expired item must start from an empty item.
            let cond = ex.guarded(condition.as_ref(), now)?;
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_map(key)))
                .update_expression(update_expr)
                .condition_expression(cond)
                .set_expression_attribute_names(ex.names())
                .set_expression_attribute_values(ex.values())
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match res {
                Ok(out) => {
                    let attrs = out.attributes.unwrap_or_default();
                    let mut item = from_attr_map(attrs)?;
                    // ALL_NEW always carries the key; make sure of it if a backend does not.
                    item.0.entry(PK.to_owned()).or_insert_with(|| Value::S(key.pk.clone()));
                    item.0.entry(SK.to_owned()).or_insert_with(|| Value::S(key.sk.clone()));
                    return Ok(item);
                }
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(f)) => {
                        if attempt == 0 && self.clear_if_expired(key, f.item().cloned(), now).await? {
                            continue;
                        }
                        return Err(StoreError::ConditionFailed);
                    }
                    _ => return Err(sdk_error("UpdateItem", &e)),
                },
            }
        }
        Err(StoreError::ConditionFailed)
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<Option<Item>, StoreError> {
        validate::key(key)?;
        for attempt in 0..2 {
            let now = self.now();
            let mut ex = Expr::default();
            let cond = condition.as_ref().map(|c| ex.guarded(Some(c), now)).transpose()?;
            let res = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key_map(key)))
                .set_condition_expression(cond)
                .set_expression_attribute_names(ex.names())
                .set_expression_attribute_values(ex.values())
                .return_values(ReturnValue::AllOld)
                .set_return_values_on_condition_check_failure(
                    condition.as_ref().map(|_| ReturnValuesOnConditionCheckFailure::AllOld),
                )
                .send()
                .await;
            match res {
                Ok(out) => {
                    let old = out.attributes.filter(|a| !a.is_empty()).map(from_attr_map).transpose()?;
                    return Ok(old.filter(|i| !i.is_expired(now)));
                }
                Err(e) => match e.as_service_error() {
                    Some(DeleteItemError::ConditionalCheckFailedException(f)) => {
                        if attempt == 0 && self.clear_if_expired(key, f.item().cloned(), now).await? {
                            continue;
                        }
                        return Err(StoreError::ConditionFailed);
                    }
                    _ => return Err(sdk_error("DeleteItem", &e)),
                },
            }
        }
        Err(StoreError::ConditionFailed)
    }

    async fn transact_write(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
        validate::transaction(&ops)?;
        let mut keys = Vec::with_capacity(ops.len());
        for op in &ops {
            keys.push(
                op.key().ok_or_else(|| StoreError::Validation("an item needs string PK and SK attributes".into()))?,
            );
        }
        for attempt in 0..2 {
            let now = self.now();
            let items = ops.iter().map(|op| self.tx_item(op, now)).collect::<Result<Vec<_>, _>>()?;
            let res = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
            let e = match res {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(c)) = e.as_service_error() else {
                return Err(sdk_error("TransactWriteItems", &e));
            };
            let reasons: Vec<CancellationReason> = c.cancellation_reasons().to_vec();
            if attempt == 0 {
                let mut cleared = false;
                for (r, key) in reasons.iter().zip(&keys) {
                    if r.code() == Some("ConditionalCheckFailed") {
                        // DynamoDB (and moto 5.2) return the failing item in the reason with
                        // ALL_OLD; should a backend not, `clear_if_expired` reads it again.
                        cleared |= self.clear_if_expired(key, r.item().cloned(), now).await?;
                    }
                }
                if cleared {
                    continue;
                }
            }
            return Err(StoreError::TransactionCanceled(cancel_reasons(&reasons, ops.len())));
        }
        Err(StoreError::TransactionCanceled(vec![CancelReason::Other("Unknown".into()); ops.len()]))
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        validate::query(&query)?;
        let limit = query.page_size()?;
        let start = query.decode_cursor()?;
        let pk_attr = query.index.map(Index::pk_attr).unwrap_or(PK);
        let sk_attr = query.index.map(Index::sk_attr).unwrap_or(SK);
        let sk = match sk_plan(query.sk.as_ref())? {
            SkPlan::All => None,
            SkPlan::Nothing => return Ok(Page::default()),
            SkPlan::Cond(c) => Some(c),
        };
        let mut ex = Expr::default();
        let mut key_cond = format!("{} = {}", ex.name(pk_attr), ex.value(&Value::S(query.pk.clone()))?);
        if let Some(c) = sk {
            let n = ex.name(sk_attr);
            let mut v = |s: &str| ex.value(&Value::S(s.to_owned()));
            let part = match &c {
                SkCondition::Eq(s) => format!("{n} = {}", v(s)?),
                SkCondition::BeginsWith(s) => format!("begins_with({n}, {})", v(s)?),
                SkCondition::Between(a, b) => format!("{n} BETWEEN {} AND {}", v(a)?, v(b)?),
                SkCondition::Lt(s) => format!("{n} < {}", v(s)?),
                SkCondition::Le(s) => format!("{n} <= {}", v(s)?),
                SkCondition::Gt(s) => format!("{n} > {}", v(s)?),
                SkCondition::Ge(s) => format!("{n} >= {}", v(s)?),
            };
            key_cond.push_str(" AND ");
            key_cond.push_str(&part);
        }
        let start_key =
            start.map(|attrs| attrs.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect::<AttrMap>());
        let now = self.now();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(query.index.map(|ix| ix.name().to_owned()))
            // Strongly consistent on the table; global secondary indexes only offer eventual consistency.
            .set_consistent_read(query.index.is_none().then_some(true))
            .key_condition_expression(key_cond)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values())
            .scan_index_forward(!query.descending)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| sdk_error("Query", &e))?;
        let mut items = Vec::new();
        for raw in out.items.unwrap_or_default() {
            let item = from_attr_map(raw)?;
            if !item.is_expired(now) {
                items.push(item);
            }
        }
        let cursor = out.last_evaluated_key.filter(|k| !k.is_empty()).map(|k| {
            let attrs: BTreeMap<String, String> = k
                .into_iter()
                .filter_map(|(name, v)| match v {
                    AttributeValue::S(s) => Some((name, s)),
                    _ => None,
                })
                .collect();
            Cursor::encode(&attrs)
        });
        Ok(Page { items, cursor })
    }

    async fn scan(&self, scan: Scan) -> Result<Page, StoreError> {
        validate::scan(&scan)?;
        let limit = scan.page_size()?;
        let start = scan.decode_cursor()?;
        let now = self.now();
        let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .segment(to_i32(scan.segment))
            .total_segments(to_i32(scan.total_segments))
            .limit(to_i32(limit))
            .set_exclusive_start_key(start.as_ref().map(key_map))
            .send()
            .await
            .map_err(|e| sdk_error("Scan", &e))?;
        let mut items = Vec::new();
        for raw in out.items.unwrap_or_default() {
            let item = from_attr_map(raw)?;
            if !item.is_expired(now) {
                items.push(item);
            }
        }
        let cursor = match out.last_evaluated_key.filter(|k| !k.is_empty()) {
            None => None,
            Some(k) => match (k.get(PK), k.get(SK)) {
                (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                    Some(scan.cursor_after(&Key::new(pk.as_str(), sk.as_str())))
                }
                _ => return Err(StoreError::Corrupt(format!("Scan returned an unexpected LastEvaluatedKey {k:?}"))),
            },
        };
        Ok(Page { items, cursor })
    }

    async fn put_many(&self, items: Vec<Item>) -> Result<(), StoreError> {
        validate::put_many(&items)?;
        let build = |e: aws_smithy_types::error::operation::BuildError| StoreError::Validation(e.to_string());
        let mut pending = items
            .iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(to_attr_map(item)?)).build().map_err(build)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for attempt in 0..BATCH_WRITE_ATTEMPTS {
            if attempt > 0 {
                // 50 ms, 100 ms, ... capped at 2 s: DynamoDB's advice for unprocessed items.
                tokio::time::sleep(Duration::from_millis((25u64 << attempt.min(7)).min(2000))).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(self.table.clone(), pending)
                .send()
                .await
                .map_err(|e| sdk_error("BatchWriteItem", &e))?;
            pending = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            tracing::debug!(unprocessed = pending.len(), attempt, "BatchWriteItem left items unprocessed");
        }
        Err(StoreError::Throttled)
    }
}

impl DynamoStore {
    /// One operation of a transaction, guarded like its single-item counterpart.
    fn tx_item(&self, op: &TxOp, now: i64) -> Result<TransactWriteItem, StoreError> {
        let build = |e: aws_smithy_types::error::operation::BuildError| StoreError::Validation(e.to_string());
        let mut ex = Expr::default();
        let all_old = ReturnValuesOnConditionCheckFailure::AllOld;
        Ok(match op {
            TxOp::Put { item, condition } => {
                let cond = condition.as_ref().map(|c| ex.guarded(Some(c), now)).transpose()?;
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_attr_map(item)?))
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(ex.names())
                    .set_expression_attribute_values(ex.values())
                    .set_return_values_on_condition_check_failure(condition.as_ref().map(|_| all_old))
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().put(put).build()
            }
            TxOp::Update { key, update, condition } => {
                let update_expr = ex.update(update)?;
                let cond = ex.guarded(condition.as_ref(), now)?;
                let upd = DynUpdate::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(key)))
                    .update_expression(update_expr)
                    .condition_expression(cond)
                    .set_expression_attribute_names(ex.names())
                    .set_expression_attribute_values(ex.values())
                    .return_values_on_condition_check_failure(all_old)
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().update(upd).build()
            }
            TxOp::Delete { key, condition } => {
                let cond = condition.as_ref().map(|c| ex.guarded(Some(c), now)).transpose()?;
                let del = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(key)))
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(ex.names())
                    .set_expression_attribute_values(ex.values())
                    .set_return_values_on_condition_check_failure(condition.as_ref().map(|_| all_old))
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().delete(del).build()
            }
            TxOp::ConditionCheck { key, condition } => {
                let cond = ex.guarded(Some(condition), now)?;
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_map(key)))
                    .condition_expression(cond)
                    .set_expression_attribute_names(ex.names())
                    .set_expression_attribute_values(ex.values())
                    .return_values_on_condition_check_failure(all_old)
                    .build()
                    .map_err(build)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
        })
    }
}

/// One reason per operation, in order (padded if the backend returned fewer).
fn cancel_reasons(reasons: &[CancellationReason], n: usize) -> Vec<CancelReason> {
    (0..n)
        .map(|i| match reasons.get(i).and_then(|r| r.code()) {
            Some("None") => CancelReason::None,
            Some("ConditionalCheckFailed") => CancelReason::ConditionalCheckFailed,
            Some(other) => CancelReason::Other(other.to_owned()),
            None if reasons.get(i).is_some() => CancelReason::None,
            None => CancelReason::Other("Unknown".to_owned()),
        })
        .collect()
}

/// Maps an SDK error (other than a failed condition, handled by the callers).
fn sdk_error<E, R>(operation: &str, err: &SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let c = code(err);
    if is_throttling(c) {
        return StoreError::Throttled;
    }
    match c {
        Some("ValidationException") => {
            StoreError::Validation(format!("{operation}: {}", err.message().unwrap_or("rejected by DynamoDB")))
        }
        _ => StoreError::Unavailable(describe(operation, err)),
    }
}

mod expr;
use expr::*;

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    #[test]
    fn expressions_use_placeholders_only() {
        let mut ex = Expr::default();
        let c = Condition::eq("status) OR (x", "a' OR '1'='1")
            .and(Condition::version_is(3))
            .and(Condition::BeginsWith("k".into(), "p".into()).not());
        let s = ex.guarded(Some(&c), 100).unwrap();
        assert!(!s.contains("status"), "{s}");
        assert!(!s.contains("OR '1'"), "{s}");
        assert_eq!(ex.names.get("#n0").map(String::as_str), Some(TTL_ATTR));
        assert!(ex.names.values().any(|n| n == "status) OR (x"));
        assert_eq!(ex.values.len(), 4);
    }

    #[test]
    fn updates_group_actions_by_clause() {
        let mut ex = Expr::default();
        let u = Update::new().set("a", 1i64).remove("b").add("c", 2i64).set_if_not_exists("d", "x");
        let s = ex.update(&u).unwrap();
        assert_eq!(s, "SET #n0 = :v0, #n3 = if_not_exists(#n3, :v2) REMOVE #n1 ADD #n2 :v1");
    }

    #[test]
    fn values_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("x".to_owned(), Value::L(vec![Value::Null, Value::Bool(true), Value::B(vec![1, 2])]));
        let v = Value::M(m);
        assert_eq!(from_attr(to_attr(&v).unwrap()).unwrap(), v);
        let n = Value::N(Decimal::new(-12_345_000, 6));
        assert_eq!(to_attr(&n).unwrap(), AttributeValue::N("-12.345".into()));
        assert_eq!(from_attr(AttributeValue::N("1E+3".into())).unwrap(), Value::N(Decimal::from(1000)));
        assert!(from_attr(AttributeValue::Ss(vec!["a".into()])).is_err());
    }

    #[test]
    fn cancel_reasons_map_in_order() {
        let r = |c: &str| CancellationReason::builder().code(c).build();
        let got = cancel_reasons(&[r("None"), r("ConditionalCheckFailed"), r("TransactionConflict")], 4);
        assert_eq!(
            got,
            vec![
                CancelReason::None,
                CancelReason::ConditionalCheckFailed,
                CancelReason::Other("TransactionConflict".into()),
                CancelReason::Other("Unknown".into()),
            ]
        );
    }
}
