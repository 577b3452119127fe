//! The store's layout in redb and the upkeep of its index: every write of an item goes through [`store_item`],
//! which keeps the sparse `GSI1` table in step and records the change for the write-ahead log.

use nusatrade_app::ports::store::Index;
use nusatrade_app::ports::{Item, Key, StoreError};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use super::codec::{decode, encode};
use super::wal;

/// The table of items, keyed by `(PK, SK)`.
pub(super) const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
/// The sparse `GSI1` index, keyed by `(GSI1PK, GSI1SK, PK, SK)`.
pub(super) const GSI1: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi1");
/// Store metadata: the write-ahead log's epoch.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const WAL_EPOCH: &str = "wal_epoch";

type ItemsTable<'t> = Table<'t, (&'static str, &'static str), &'static [u8]>;
type IndexTable<'t> = Table<'t, (&'static str, &'static str, &'static str, &'static str), ()>;

/// The tables a write works on, and what it changed (the write-ahead log's record, when there is a log).
pub(super) struct Tables<'t> {
    pub(super) items: ItemsTable<'t>,
    pub(super) gsi: IndexTable<'t>,
    pub(super) log: Option<Vec<u8>>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction, log: bool) -> Result<Self, StoreError> {
        Ok(Tables {
            items: txn.open_table(ITEMS).map_err(db_err)?,
            gsi: txn.open_table(GSI1).map_err(db_err)?,
            log: log.then(Vec::new),
        })
    }
}

/// Maps any redb error: corruption is reported as such, everything else as unavailability.
pub(super) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Corrupted(m) => StoreError::Corrupt(m),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// The item's `GSI1` key, when it has both attributes as strings (sparse index).
pub(super) fn index_key(ix: Index, item: &Item) -> Option<(&str, &str)> {
    Some((item.get_s(ix.pk_attr())?, item.get_s(ix.sk_attr())?))
}

/// Reads the stored item, expired or not.
pub(super) fn load_raw(
    items: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    key: &Key,
) -> Result<Option<Item>, StoreError> {
    match items.get((key.pk.as_str(), key.sk.as_str())).map_err(db_err)? {
        Some(v) => decode(v.value()).map(Some),
        None => Ok(None),
    }
}

/// Replaces the stored item `old` (as stored, expired or not) by `new` (`None`: delete), keeping the
/// index in sync.
pub(super) fn store_item(
    t: &mut Tables<'_>,
    key: &Key,
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<(), StoreError> {
    let Tables { items, gsi, log } = t;
    let old_ix = old.and_then(|i| index_key(Index::Gsi1, i));
    let new_ix = new.and_then(|i| index_key(Index::Gsi1, i));
    if let Some((gpk, gsk)) = old_ix
        && old_ix != new_ix
    {
        gsi.remove((gpk, gsk, key.pk.as_str(), key.sk.as_str())).map_err(db_err)?;
    }
    match new {
        Some(item) => {
            let bytes = encode(item);
            items.insert((key.pk.as_str(), key.sk.as_str()), bytes.as_slice()).map_err(db_err)?;
            if let Some(log) = log {
                wal::encode_change(log, &key.pk, &key.sk, Some(&bytes));
            }
            if let Some((gpk, gsk)) = new_ix
                && old_ix != new_ix
            {
                gsi.insert((gpk, gsk, key.pk.as_str(), key.sk.as_str()), ()).map_err(db_err)?;
            }
        }
        None => {
            if old.is_some() {
                items.remove((key.pk.as_str(), key.sk.as_str())).map_err(db_err)?;
                if let Some(log) = log {
                    wal::encode_change(log, &key.pk, &key.sk, None);
                }
            }
        }
    }
    Ok(())
}
