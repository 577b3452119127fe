//! Reads and writes of the stored settings ([`super::record`] describes the layout).

use std::sync::Arc;

use super::record::{MAX_SETTINGS, SETTING_PREFIX, SETTINGS_PK, SettingRecord, setting_key};
use crate::ports::{Condition, Item, ItemStore, Query, StoreError, TxOp};

/// Pages read at most by [`SettingsRepo::all`] (of 100 items: twice [`MAX_SETTINGS`]).
const MAX_PAGES: usize = 4;

#[derive(Clone)]
pub struct SettingsRepo {
    store: Arc<dyn ItemStore>,
}

impl SettingsRepo {
    pub fn new(store: Arc<dyn ItemStore>) -> Self {
        SettingsRepo { store }
    }

    pub fn store(&self) -> &Arc<dyn ItemStore> {
        &self.store
    }

    /// Every setting, active and deleted, by key (one query of the settings partition). An unreadable item is
    /// skipped with a warning: one bad item must not hide the others.
    pub async fn all(&self) -> Result<Vec<SettingRecord>, StoreError> {
        let mut out = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .store
                .query(Query::partition(SETTINGS_PK).sk_prefix(SETTING_PREFIX).limit(100).after(cursor))
                .await?;
            for item in &page.items {
                match item.to_record::<SettingRecord>() {
                    Ok(r) => out.push(r),
                    Err(e) => tracing::warn!(error = %e, "unreadable setting item skipped"),
                }
            }
            cursor = page.cursor;
            if cursor.is_none() {
                return Ok(out);
            }
        }
        tracing::warn!(read = out.len(), max = MAX_SETTINGS, "more settings stored than expected: the rest is ignored");
        Ok(out)
    }

    pub async fn get(&self, key: &str) -> Result<Option<SettingRecord>, StoreError> {
        match self.store.get(&setting_key(key)).await? {
            Some(item) => Ok(Some(item.to_record()?)),
            None => Ok(None),
        }
    }

    /// The write of `record` as a transaction operation: a new key must not exist yet (`previous_version` `None`),
    /// an existing one must still be at `previous_version` (another admin's concurrent change wins, this one
    /// retries).
    pub fn write_op(record: &SettingRecord, previous_version: Option<u64>) -> Result<TxOp, StoreError> {
        let item = Item::from_record(&setting_key(&record.key), record)?;
        let condition = match previous_version {
            None => Condition::NotExists,
            Some(v) => Condition::version_is(v),
        };
        Ok(TxOp::Put { item, condition: Some(condition) })
    }
}
