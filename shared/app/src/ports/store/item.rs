//! The data: attribute values, keys and items, and reading a record from an item.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{PK, SK, StoreError, TTL_ATTR, record};

/// An attribute value: DynamoDB's types that the platform uses (no sets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    S(String),
    N(Decimal),
    B(Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<Value>),
    M(BTreeMap<String, Value>),
}

impl Value {
    pub fn as_s(&self) -> Option<&str> {
        match self {
            Value::S(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_n(&self) -> Option<Decimal> {
        match self {
            Value::N(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Approximate stored size in bytes, as DynamoDB counts it.
    pub fn size(&self) -> usize {
        match self {
            Value::S(s) => s.len(),
            Value::N(_) => 21,
            Value::B(b) => b.len(),
            Value::Bool(_) | Value::Null => 1,
            Value::L(l) => 3 + l.iter().map(|v| 1 + v.size()).sum::<usize>(),
            Value::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + v.size()).sum::<usize>(),
        }
    }

    /// Converts a JSON value: numbers become `N`, objects `M`, arrays `L`.
    pub fn from_json(v: serde_json::Value) -> Result<Value, StoreError> {
        Ok(match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::N(json_number_to_decimal(&n)?),
            serde_json::Value::String(s) => Value::S(s),
            serde_json::Value::Array(a) => Value::L(a.into_iter().map(Value::from_json).collect::<Result<_, _>>()?),
            serde_json::Value::Object(o) => {
                Value::M(o.into_iter().map(|(k, v)| Ok((k, Value::from_json(v)?))).collect::<Result<_, StoreError>>()?)
            }
        })
    }

    /// Converts back to JSON: integral numbers become JSON integers, others JSON floats,
    /// binary becomes base64 text.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::S(s) => serde_json::Value::String(s.clone()),
            Value::N(n) => decimal_to_json_number(*n),
            Value::B(b) => serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Null => serde_json::Value::Null,
            Value::L(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::M(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
}

fn json_number_to_decimal(n: &serde_json::Number) -> Result<Decimal, StoreError> {
    if let Some(i) = n.as_i64() {
        return Ok(Decimal::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Decimal::from(u));
    }
    let text = n.to_string();
    text.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| StoreError::Validation(format!("number {text} cannot be stored")))
}

fn decimal_to_json_number(n: Decimal) -> serde_json::Value {
    use rust_decimal::prelude::ToPrimitive;
    if n.fract().is_zero()
        && let Some(i) = n.to_i64()
    {
        return serde_json::Value::from(i);
    }
    n.to_f64().map(serde_json::Value::from).unwrap_or(serde_json::Value::Null)
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::S(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::S(s)
    }
}
impl From<Decimal> for Value {
    fn from(n: Decimal) -> Self {
        Value::N(n)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::N(Decimal::from(n))
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::N(Decimal::from(n))
    }
}
impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::N(Decimal::from(n))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// The primary key of an item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key { pk: pk.into(), sk: sk.into() }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.pk, self.sk)
    }
}

/// An item: named attributes. `PK` and `SK` (strings) are required.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Item(pub BTreeMap<String, Value>);

impl Item {
    /// A new item with its key attributes set.
    pub fn new(key: &Key) -> Self {
        let mut m = BTreeMap::new();
        m.insert(PK.to_owned(), Value::S(key.pk.clone()));
        m.insert(SK.to_owned(), Value::S(key.sk.clone()));
        Item(m)
    }

    /// Builder: sets an attribute.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
    pub fn get_s(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_s)
    }
    pub fn get_n(&self, name: &str) -> Option<Decimal> {
        self.0.get(name).and_then(Value::as_n)
    }
    pub fn get_bool(&self, name: &str) -> Option<bool> {
        self.0.get(name).and_then(Value::as_bool)
    }
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    /// The item's primary key, if both key attributes are strings.
    pub fn key(&self) -> Option<Key> {
        Some(Key::new(self.get_s(PK)?, self.get_s(SK)?))
    }

    /// The expiry (epoch seconds), when the item has one.
    pub fn ttl(&self) -> Option<i64> {
        use rust_decimal::prelude::ToPrimitive;
        self.get_n(TTL_ATTR).and_then(|n| n.floor().to_i64())
    }

    /// True when the item has expired at `now_epoch` (expiry is inclusive: `ttl <= now`).
    pub fn is_expired(&self, now_epoch: i64) -> bool {
        self.ttl().is_some_and(|t| t <= now_epoch)
    }

    /// Approximate size as DynamoDB counts it (names + values).
    pub fn size(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.size()).sum()
    }

    /// Builds an item from any serialisable record: its fields become attributes beside the key.
    /// The record must serialise to a JSON object.
    pub fn from_record<T: Serialize>(key: &Key, record: &T) -> Result<Self, StoreError> {
        let json = serde_json::to_value(record).map_err(|e| StoreError::Validation(e.to_string()))?;
        let serde_json::Value::Object(fields) = json else {
            return Err(StoreError::Validation("a record must serialise to an object".into()));
        };
        let mut item = Item::new(key);
        for (k, v) in fields {
            if k == PK || k == SK {
                return Err(StoreError::Validation(format!("record field {k} clashes with the key")));
            }
            item.0.insert(k, Value::from_json(v)?);
        }
        Ok(item)
    }

    /// Reads the record back (key attributes and other extra attributes are ignored by serde unless the
    /// record asks for them).
    pub fn to_record<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        record::from_attrs(&self.0).map_err(|e| {
            StoreError::Corrupt(format!("item {}: {e}", self.key().map(|k| k.to_string()).unwrap_or_default()))
        })
    }
}
