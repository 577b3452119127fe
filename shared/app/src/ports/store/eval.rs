//! Pure evaluation of conditions and updates on an item, used by in-process adapters.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::{CmpOp, Condition, Item, Key, StoreError, Update, UpdateAction, Value, validate};

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::S(x), Value::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::N(x), Value::N(y)) => Some(x.cmp(y)),
        (Value::B(x), Value::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Evaluates a condition against the current item (`None`: no item).
pub fn condition(c: &Condition, item: Option<&Item>) -> bool {
    let attr = |n: &str| item.and_then(|i| i.get(n));
    match c {
        Condition::Exists => item.is_some(),
        Condition::NotExists => item.is_none(),
        Condition::AttrExists(n) => attr(n).is_some(),
        Condition::AttrNotExists(n) => attr(n).is_none(),
        Condition::Cmp(n, op, v) => match attr(n) {
            None => *op == CmpOp::Ne,
            Some(cur) => match op {
                CmpOp::Eq => cur == v,
                CmpOp::Ne => cur != v,
                _ => match compare(cur, v) {
                    None => false,
                    Some(o) => match op {
                        CmpOp::Lt => o == Ordering::Less,
                        CmpOp::Le => o != Ordering::Greater,
                        CmpOp::Gt => o == Ordering::Greater,
                        CmpOp::Ge => o != Ordering::Less,
                        CmpOp::Eq | CmpOp::Ne => unreachable!(),
                    },
                },
            },
        },
        Condition::BeginsWith(n, p) => matches!(attr(n), Some(Value::S(s)) if s.starts_with(p.as_str())),
        Condition::And(cs) => cs.iter().all(|c| condition(c, item)),
        Condition::Or(cs) => cs.iter().any(|c| condition(c, item)),
        Condition::Not(c) => !condition(c, item),
    }
}

/// Applies an update to the current item (or a new one with the key) and returns the result.
pub fn apply_update(current: Option<Item>, key: &Key, update: &Update) -> Result<Item, StoreError> {
    let mut item = current.unwrap_or_else(|| Item::new(key));
    for a in &update.actions {
        match a {
            UpdateAction::Set(n, v) => {
                item.0.insert(n.clone(), v.clone());
            }
            UpdateAction::SetIfNotExists(n, v) => {
                item.0.entry(n.clone()).or_insert_with(|| v.clone());
            }
            UpdateAction::Remove(n) => {
                item.0.remove(n);
            }
            UpdateAction::Add(n, by) => {
                let cur = match item.0.get(n) {
                    None => Decimal::ZERO,
                    Some(Value::N(x)) => *x,
                    Some(_) => {
                        return Err(StoreError::Validation(format!("cannot add to non-number attribute {n}")));
                    }
                };
                let sum =
                    cur.checked_add(*by).ok_or_else(|| StoreError::Validation(format!("counter {n} overflow")))?;
                item.0.insert(n.clone(), Value::N(sum));
            }
        }
    }
    validate::item(&item)?;
    Ok(item)
}
