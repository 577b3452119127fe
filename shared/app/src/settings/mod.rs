//! Operator settings (issue 17, contract §2.12): stored in the item store, secret values sealed with envelope
//! encryption ([`envelope`]), and read at run time through [`RuntimeSettings`] — a snapshot cached for a short,
//! documented delay (`NUSATRADE_SETTINGS_TTL_SECS`, default 30 s), so a change made through one Lambda instance
//! takes effect in every instance within it.
//!
//! What the platform reads ([`Overrides`]): `max_lot_size` and `max_positions_per_user` (the order use cases),
//! `rate_limit_requests` / `rate_limit_window_seconds` (the request limiter), `ai_daily_token_budget`, and the
//! language model (`llm_provider`, `llm_api_key`, `llm_base_url`, `llm_model`: [`RuntimeSettings::llm_config`]).
//! `default_slippage_pips` is stored and validated but, as in the original, nothing uses a default slippage.
//!
//! The admin routes that write settings are `crate::admin`; this feature folder imports neither `admin` nor `ai`.

pub mod env;
pub mod envelope;
pub mod error;
pub mod record;
pub mod repo;
pub mod runtime;

pub use env::{SettingsEnv, SettingsEnvError, default_model};
pub use error::SettingsError;
pub use record::{Category, SettingRecord, keys};
pub use repo::SettingsRepo;
pub use runtime::{Overrides, RuntimeSettings, Snapshot};

#[cfg(test)]
pub(crate) mod tests {
    //! An in-memory item store for this crate's unit tests: conditions and updates evaluated by
    //! `ports::store::eval`, transactions all-or-nothing, queries of one table partition (cursors are offsets). The
    //! adapters' own semantics are the contract suites'.

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use crate::ports::store::eval;
    use crate::ports::{
        CancelReason, Condition, Cursor, Item, ItemStore, Key, Page, Query, Scan, StoreError, TxOp, Update,
    };

    #[derive(Default)]
    pub(crate) struct MemoryStore {
        items: Mutex<BTreeMap<Key, Item>>,
    }

    impl MemoryStore {
        /// Every item, for tests that look at what was stored.
        pub(crate) fn dump(&self) -> Vec<Item> {
            self.items.lock().unwrap().values().cloned().collect()
        }
    }

    fn key_of(item: &Item) -> Result<Key, StoreError> {
        item.key().ok_or_else(|| StoreError::Validation("no key".into()))
    }

    #[async_trait]
    impl ItemStore for MemoryStore {
        async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
            Ok(self.items.lock().unwrap().get(key).cloned())
        }
        async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), StoreError> {
            self.transact_write(vec![TxOp::Put { item, condition }]).await.map_err(single)
        }
        async fn update(&self, key: &Key, update: Update, condition: Option<Condition>) -> Result<Item, StoreError> {
            let mut items = self.items.lock().unwrap();
            let cur = items.get(key).cloned();
            if let Some(c) = &condition
                && !eval::condition(c, cur.as_ref())
            {
                return Err(StoreError::ConditionFailed);
            }
            let new = eval::apply_update(cur, key, &update)?;
            items.insert(key.clone(), new.clone());
            Ok(new)
        }
        async fn delete(&self, key: &Key, condition: Option<Condition>) -> Result<Option<Item>, StoreError> {
            let mut items = self.items.lock().unwrap();
            if let Some(c) = &condition
                && !eval::condition(c, items.get(key))
            {
                return Err(StoreError::ConditionFailed);
            }
            Ok(items.remove(key))
        }
        async fn transact_write(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
            let mut items = self.items.lock().unwrap();
            let reasons: Vec<CancelReason> = ops
                .iter()
                .map(|op| {
                    let cur = op.key().and_then(|k| items.get(&k));
                    match op.condition() {
                        Some(c) if !eval::condition(c, cur) => CancelReason::ConditionalCheckFailed,
                        _ => CancelReason::None,
                    }
                })
                .collect();
            if reasons.iter().any(|r| *r != CancelReason::None) {
                return Err(StoreError::TransactionCanceled(reasons));
            }
            for op in ops {
                match op {
                    TxOp::Put { item, .. } => {
                        items.insert(key_of(&item)?, item);
                    }
                    TxOp::Update { key, update, .. } => {
                        let new = eval::apply_update(items.get(&key).cloned(), &key, &update)?;
                        items.insert(key, new);
                    }
                    TxOp::Delete { key, .. } => {
                        items.remove(&key);
                    }
                    TxOp::ConditionCheck { .. } => {}
                }
            }
            Ok(())
        }
        async fn query(&self, query: Query) -> Result<Page, StoreError> {
            assert!(query.index.is_none(), "MemoryStore: table queries only");
            let items = self.items.lock().unwrap();
            let mut found: Vec<Item> = items
                .iter()
                .filter(|(k, _)| k.pk == query.pk && query.sk.as_ref().is_none_or(|c| c.matches(&k.sk)))
                .map(|(_, i)| i.clone())
                .collect();
            if query.descending {
                found.reverse();
            }
            let offset: usize = match &query.cursor {
                Some(c) => c.decode()?.get("offset").and_then(|o| o.parse().ok()).ok_or(StoreError::InvalidCursor)?,
                None => 0,
            };
            let size = query.page_size()? as usize;
            let rest: Vec<Item> = found.into_iter().skip(offset).collect();
            let cursor = (rest.len() > size)
                .then(|| Cursor::encode(&BTreeMap::from([("offset".to_owned(), (offset + size).to_string())])));
            Ok(Page { items: rest.into_iter().take(size).collect(), cursor })
        }
        async fn scan(&self, _: Scan) -> Result<Page, StoreError> {
            unimplemented!("MemoryStore: no scans")
        }
        async fn put_many(&self, items: Vec<Item>) -> Result<(), StoreError> {
            for i in items {
                self.put(i, None).await?;
            }
            Ok(())
        }
    }

    /// A one-operation transaction's failure as the single write's.
    fn single(e: StoreError) -> StoreError {
        match e {
            StoreError::TransactionCanceled(r) if r.contains(&CancelReason::ConditionalCheckFailed) => {
                StoreError::ConditionFailed
            }
            other => other,
        }
    }
}
