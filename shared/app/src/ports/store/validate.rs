//! Checks shared by every adapter, so that both refuse the same requests.

use std::collections::HashSet;

use super::{
    Condition, Index, Item, Key, MAX_BATCH_WRITE_ITEMS, MAX_ITEM_BYTES, MAX_PK_BYTES, MAX_SCAN_SEGMENTS, MAX_SK_BYTES,
    MAX_TRANSACTION_OPS, PK, Query, SK, Scan, SkCondition, StoreError, TTL_ATTR, TxOp, Update, UpdateAction, Value,
};

fn key_value(name: &str, v: &str, max: usize) -> Result<(), StoreError> {
    if v.is_empty() {
        return Err(StoreError::Validation(format!("{name} must not be empty")));
    }
    if v.len() > max {
        return Err(StoreError::Validation(format!("{name} longer than {max} bytes")));
    }
    Ok(())
}

pub fn key(k: &Key) -> Result<(), StoreError> {
    key_value(PK, &k.pk, MAX_PK_BYTES)?;
    key_value(SK, &k.sk, MAX_SK_BYTES)
}

/// An item to be written: string keys, string index keys, valid ttl, within the size limit.
pub fn item(item: &Item) -> Result<Key, StoreError> {
    let k = item.key().ok_or_else(|| StoreError::Validation("an item needs string PK and SK attributes".into()))?;
    key(&k)?;
    for ix in Index::ALL {
        for (attr, max) in [(ix.pk_attr(), MAX_PK_BYTES), (ix.sk_attr(), MAX_SK_BYTES)] {
            match item.get(attr) {
                None => {}
                Some(Value::S(s)) => key_value(attr, s, max)?,
                Some(_) => return Err(StoreError::Validation(format!("{attr} must be a string"))),
            }
        }
    }
    if item.get(TTL_ATTR).is_some_and(|v| !matches!(v, Value::N(_))) {
        return Err(StoreError::Validation(format!("{TTL_ATTR} must be a number (epoch seconds)")));
    }
    let size = item.size();
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::Validation(format!("item of {size} bytes exceeds {MAX_ITEM_BYTES}")));
    }
    Ok(k)
}

/// An update: at least one action, each attribute touched once (DynamoDB applies all actions of
/// one update at once and rejects overlapping paths), never the key attributes, index keys set to
/// non-empty strings, `ttl` set to a number.
pub fn update(u: &Update) -> Result<(), StoreError> {
    if u.actions.is_empty() {
        return Err(StoreError::Validation("an update needs at least one action".into()));
    }
    let mut seen = HashSet::new();
    for a in &u.actions {
        let (name, value) = match a {
            UpdateAction::Set(n, v) | UpdateAction::SetIfNotExists(n, v) => (n, Some(v)),
            UpdateAction::Remove(n) => (n, None),
            UpdateAction::Add(n, _) => (n, None),
        };
        let is_add = matches!(a, UpdateAction::Add(..));
        if name.is_empty() {
            return Err(StoreError::Validation("empty attribute name".into()));
        }
        if name == PK || name == SK {
            return Err(StoreError::Validation(format!("cannot update key attribute {name}")));
        }
        if !seen.insert(name.as_str()) {
            return Err(StoreError::Validation(format!("an update touches attribute {name} more than once")));
        }
        for ix in Index::ALL {
            for (attr, max) in [(ix.pk_attr(), MAX_PK_BYTES), (ix.sk_attr(), MAX_SK_BYTES)] {
                if name != attr {
                    continue;
                }
                match value {
                    None if !is_add => {}
                    Some(Value::S(s)) => key_value(attr, s, max)?,
                    _ => return Err(StoreError::Validation(format!("{attr} must be a string"))),
                }
            }
        }
        if name == TTL_ATTR && !matches!(value, None | Some(Value::N(_))) {
            return Err(StoreError::Validation(format!("{TTL_ATTR} must be a number (epoch seconds)")));
        }
    }
    Ok(())
}

/// A condition: attribute names must not be empty.
pub fn condition(c: &Condition) -> Result<(), StoreError> {
    match c {
        Condition::Exists | Condition::NotExists => Ok(()),
        Condition::AttrExists(n)
        | Condition::AttrNotExists(n)
        | Condition::Cmp(n, ..)
        | Condition::BeginsWith(n, _) => {
            if n.is_empty() {
                Err(StoreError::Validation("empty attribute name".into()))
            } else {
                Ok(())
            }
        }
        Condition::And(cs) | Condition::Or(cs) => cs.iter().try_for_each(condition),
        Condition::Not(c) => condition(c),
    }
}

/// A query: a valid partition key, a sane sort-key range, a page size in bounds, a cursor that
/// belongs to it.
pub fn query(q: &Query) -> Result<(), StoreError> {
    key_value(q.index.map(Index::pk_attr).unwrap_or(PK), &q.pk, MAX_PK_BYTES)?;
    if let Some(SkCondition::Between(a, b)) = &q.sk
        && a > b
    {
        return Err(StoreError::Validation(format!("sort key range {a:?}..={b:?} is empty")));
    }
    q.page_size()?;
    q.decode_cursor()?;
    Ok(())
}

/// A scan: a segment within a sane segment count, a page size in bounds, a cursor that belongs
/// to it.
pub fn scan(s: &Scan) -> Result<(), StoreError> {
    if !(1..=MAX_SCAN_SEGMENTS).contains(&s.total_segments) {
        return Err(StoreError::Validation(format!(
            "total segments {} outside 1..={MAX_SCAN_SEGMENTS}",
            s.total_segments
        )));
    }
    if s.segment >= s.total_segments {
        return Err(StoreError::Validation(format!(
            "segment {} is not below the total of {}",
            s.segment, s.total_segments
        )));
    }
    s.page_size()?;
    s.decode_cursor()?;
    Ok(())
}

/// A batch of puts: 1..=25 valid items with distinct keys. Returns their keys, in order.
pub fn put_many(items: &[Item]) -> Result<Vec<Key>, StoreError> {
    if items.is_empty() || items.len() > MAX_BATCH_WRITE_ITEMS {
        return Err(StoreError::Validation(format!(
            "a batch write holds 1..={MAX_BATCH_WRITE_ITEMS} items, not {}",
            items.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut keys = Vec::with_capacity(items.len());
    for it in items {
        let k = item(it)?;
        if !seen.insert(k.clone()) {
            return Err(StoreError::Validation(format!("a batch write holds item {k} more than once")));
        }
        keys.push(k);
    }
    Ok(keys)
}

/// A transaction: 1..=100 operations, each on a distinct item.
pub fn transaction(ops: &[TxOp]) -> Result<(), StoreError> {
    if ops.is_empty() || ops.len() > MAX_TRANSACTION_OPS {
        return Err(StoreError::Validation(format!(
            "a transaction holds 1..={MAX_TRANSACTION_OPS} operations, not {}",
            ops.len()
        )));
    }
    let mut seen = HashSet::new();
    for op in ops {
        let k = match op {
            TxOp::Put { item: it, .. } => item(it)?,
            TxOp::Update { key: k, update: u, .. } => {
                key(k)?;
                update(u)?;
                k.clone()
            }
            TxOp::Delete { key: k, .. } | TxOp::ConditionCheck { key: k, .. } => {
                key(k)?;
                k.clone()
            }
        };
        if let Some(c) = op.condition() {
            condition(c)?;
        }
        if !seen.insert(k.clone()) {
            return Err(StoreError::Validation(format!(
                "a transaction cannot include multiple operations on one item ({k})"
            )));
        }
    }
    Ok(())
}
