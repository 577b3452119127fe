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

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

mod record;

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

/// Comparison operators of conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition on the current item (top-level attribute names only).
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// The item exists.
    Exists,
    /// The item does not exist.
    NotExists,
    AttrExists(String),
    AttrNotExists(String),
    /// `attr <op> value`; false when the attribute is missing or of another type (except `Ne`,
    /// which is true then, as in DynamoDB).
    Cmp(String, CmpOp, Value),
    /// String attribute starts with the prefix.
    BeginsWith(String, String),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    pub fn eq(attr: impl Into<String>, v: impl Into<Value>) -> Self {
        Condition::Cmp(attr.into(), CmpOp::Eq, v.into())
    }
    pub fn ne(attr: impl Into<String>, v: impl Into<Value>) -> Self {
        Condition::Cmp(attr.into(), CmpOp::Ne, v.into())
    }
    pub fn lt(attr: impl Into<String>, v: impl Into<Value>) -> Self {
        Condition::Cmp(attr.into(), CmpOp::Lt, v.into())
    }
    pub fn le(attr: impl Into<String>, v: impl Into<Value>) -> Self {
        Condition::Cmp(attr.into(), CmpOp::Le, v.into())
    }
    pub fn gt(attr: impl Into<String>, v: impl Into<Value>) -> Self {
        Condition::Cmp(attr.into(), CmpOp::Gt, v.into())
    }
    pub fn ge(attr: impl Into<String>, v: impl Into<Value>) -> Self {
        Condition::Cmp(attr.into(), CmpOp::Ge, v.into())
    }
    /// Optimistic concurrency: the item's `version` attribute equals `v`.
    pub fn version_is(v: u64) -> Self {
        Condition::eq("version", v)
    }
    pub fn and(self, other: Condition) -> Self {
        match self {
            Condition::And(mut v) => {
                v.push(other);
                Condition::And(v)
            }
            c => Condition::And(vec![c, other]),
        }
    }
    pub fn or(self, other: Condition) -> Self {
        Condition::Or(vec![self, other])
    }
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        Condition::Not(Box::new(self))
    }
}

/// One action of an update.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateAction {
    Set(String, Value),
    /// Sets the attribute only when it does not exist yet (`if_not_exists`).
    SetIfNotExists(String, Value),
    Remove(String),
    /// Atomic counter: adds to a number attribute (a missing attribute counts as 0).
    Add(String, Decimal),
}

/// An update: actions applied in order to the current item (or to a new one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    pub actions: Vec<UpdateAction>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set(mut self, attr: impl Into<String>, v: impl Into<Value>) -> Self {
        self.actions.push(UpdateAction::Set(attr.into(), v.into()));
        self
    }
    pub fn set_if_not_exists(mut self, attr: impl Into<String>, v: impl Into<Value>) -> Self {
        self.actions.push(UpdateAction::SetIfNotExists(attr.into(), v.into()));
        self
    }
    pub fn remove(mut self, attr: impl Into<String>) -> Self {
        self.actions.push(UpdateAction::Remove(attr.into()));
        self
    }
    pub fn add(mut self, attr: impl Into<String>, by: impl Into<Decimal>) -> Self {
        self.actions.push(UpdateAction::Add(attr.into(), by.into()));
        self
    }
}

/// One operation of a write transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum TxOp {
    Put { item: Item, condition: Option<Condition> },
    Update { key: Key, update: Update, condition: Option<Condition> },
    Delete { key: Key, condition: Option<Condition> },
    ConditionCheck { key: Key, condition: Condition },
}

impl TxOp {
    pub fn key(&self) -> Option<Key> {
        match self {
            TxOp::Put { item, .. } => item.key(),
            TxOp::Update { key, .. } | TxOp::Delete { key, .. } | TxOp::ConditionCheck { key, .. } => Some(key.clone()),
        }
    }
    pub fn condition(&self) -> Option<&Condition> {
        match self {
            TxOp::Put { condition, .. } | TxOp::Update { condition, .. } | TxOp::Delete { condition, .. } => {
                condition.as_ref()
            }
            TxOp::ConditionCheck { condition, .. } => Some(condition),
        }
    }
}

/// Why one operation of a cancelled transaction failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// This operation was fine; another one cancelled the transaction.
    None,
    ConditionalCheckFailed,
    /// Anything else the backend reported (conflict with another transaction, throttling, ...).
    Other(String),
}

/// The global secondary indexes of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Index {
    /// `GSI1`: partition `GSI1PK`, sort `GSI1SK`, all attributes projected.
    Gsi1,
}

impl Index {
    pub const ALL: [Index; 1] = [Index::Gsi1];
    pub fn name(self) -> &'static str {
        match self {
            Index::Gsi1 => "GSI1",
        }
    }
    pub fn pk_attr(self) -> &'static str {
        match self {
            Index::Gsi1 => "GSI1PK",
        }
    }
    pub fn sk_attr(self) -> &'static str {
        match self {
            Index::Gsi1 => "GSI1SK",
        }
    }
}

/// A condition on the sort key of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum SkCondition {
    Eq(String),
    BeginsWith(String),
    /// Inclusive on both ends.
    Between(String, String),
    Lt(String),
    Le(String),
    Gt(String),
    Ge(String),
}

impl SkCondition {
    pub fn matches(&self, sk: &str) -> bool {
        match self {
            SkCondition::Eq(v) => sk == v,
            SkCondition::BeginsWith(p) => sk.starts_with(p.as_str()),
            SkCondition::Between(a, b) => sk >= a.as_str() && sk <= b.as_str(),
            SkCondition::Lt(v) => sk < v.as_str(),
            SkCondition::Le(v) => sk <= v.as_str(),
            SkCondition::Gt(v) => sk > v.as_str(),
            SkCondition::Ge(v) => sk >= v.as_str(),
        }
    }
}

/// A query's or scan's page size: the default when unset, else 1..=[`MAX_QUERY_LIMIT`].
fn page_size(limit: Option<u32>, what: &str) -> Result<u32, StoreError> {
    match limit {
        None => Ok(DEFAULT_QUERY_LIMIT),
        Some(n) if (1..=MAX_QUERY_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(StoreError::Validation(format!("{what} limit {n} outside 1..={MAX_QUERY_LIMIT}"))),
    }
}

/// A query over one partition of the table or of an index.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub index: Option<Index>,
    pub pk: String,
    pub sk: Option<SkCondition>,
    pub descending: bool,
    /// Items evaluated per page (1..=[`MAX_QUERY_LIMIT`]); `None` means [`DEFAULT_QUERY_LIMIT`].
    pub limit: Option<u32>,
    pub cursor: Option<Cursor>,
}

impl Query {
    pub fn partition(pk: impl Into<String>) -> Self {
        Query { index: None, pk: pk.into(), sk: None, descending: false, limit: None, cursor: None }
    }
    pub fn index(index: Index, pk: impl Into<String>) -> Self {
        Query { index: Some(index), ..Query::partition(pk) }
    }
    pub fn sk(mut self, c: SkCondition) -> Self {
        self.sk = Some(c);
        self
    }
    pub fn sk_prefix(self, prefix: impl Into<String>) -> Self {
        self.sk(SkCondition::BeginsWith(prefix.into()))
    }
    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }
    /// The effective page size, validated.
    pub fn page_size(&self) -> Result<u32, StoreError> {
        page_size(self.limit, "query")
    }
    /// The attribute names a cursor of this query carries: the table key, plus the index key.
    pub fn cursor_attrs(&self) -> Vec<&'static str> {
        let mut v = vec![PK, SK];
        if let Some(ix) = self.index {
            v.push(ix.pk_attr());
            v.push(ix.sk_attr());
        }
        v
    }
    /// Decodes and checks this query's cursor: it must carry exactly the expected key attributes and
    /// belong to the queried partition (a cursor cannot be used to read another partition).
    pub fn decode_cursor(&self) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let Some(c) = &self.cursor else { return Ok(None) };
        let attrs = c.decode()?;
        let expected = self.cursor_attrs();
        if attrs.len() != expected.len() || expected.iter().any(|a| !attrs.contains_key(*a)) {
            return Err(StoreError::InvalidCursor);
        }
        let pk_attr = self.index.map(Index::pk_attr).unwrap_or(PK);
        if attrs.get(pk_attr) != Some(&self.pk) {
            return Err(StoreError::InvalidCursor);
        }
        Ok(Some(attrs))
    }
}

/// One segment of a full-table scan (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// Which segment, `0..total_segments`.
    pub segment: u32,
    /// Into how many segments the table is split (1..=[`MAX_SCAN_SEGMENTS`]).
    pub total_segments: u32,
    /// Items evaluated per page (1..=[`MAX_QUERY_LIMIT`]); `None` means [`DEFAULT_QUERY_LIMIT`].
    pub limit: Option<u32>,
    pub cursor: Option<Cursor>,
}

impl Scan {
    /// Name of the cursor entry that binds a scan cursor to its segment (`"<segment>/<total>"`).
    /// Attribute names never reach DynamoDB from it: the adapters strip it.
    pub const CURSOR_SEGMENT: &'static str = "#segment";

    /// Segment `segment` of `total_segments`.
    pub fn segment(segment: u32, total_segments: u32) -> Self {
        Scan { segment, total_segments, limit: None, cursor: None }
    }
    /// The whole table as one segment.
    pub fn all() -> Self {
        Scan::segment(0, 1)
    }
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }
    /// The effective page size, validated.
    pub fn page_size(&self) -> Result<u32, StoreError> {
        page_size(self.limit, "scan")
    }
    fn segment_tag(&self) -> String {
        format!("{}/{}", self.segment, self.total_segments)
    }
    /// The cursor that continues this segment after the item with key `last`.
    pub fn cursor_after(&self, last: &Key) -> Cursor {
        let mut attrs = BTreeMap::new();
        attrs.insert(PK.to_owned(), last.pk.clone());
        attrs.insert(SK.to_owned(), last.sk.clone());
        attrs.insert(Self::CURSOR_SEGMENT.to_owned(), self.segment_tag());
        Cursor::encode(&attrs)
    }
    /// Decodes and checks this scan's cursor: the key of the last evaluated item, from a cursor of
    /// this very segment and segment count.
    pub fn decode_cursor(&self) -> Result<Option<Key>, StoreError> {
        let Some(c) = &self.cursor else { return Ok(None) };
        let attrs = c.decode()?;
        if attrs.len() != 3 || attrs.get(Self::CURSOR_SEGMENT) != Some(&self.segment_tag()) {
            return Err(StoreError::InvalidCursor);
        }
        let key = match (attrs.get(PK), attrs.get(SK)) {
            (Some(pk), Some(sk)) => Key::new(pk.as_str(), sk.as_str()),
            _ => return Err(StoreError::InvalidCursor),
        };
        validate::key(&key).map_err(|_| StoreError::InvalidCursor)?;
        Ok(Some(key))
    }
}

/// An opaque pagination cursor: base64url of the last evaluated key. Clients hand it back unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// Encodes the last evaluated key attributes.
    pub fn encode(attrs: &BTreeMap<String, String>) -> Cursor {
        let json = serde_json::to_vec(attrs).unwrap_or_default();
        Cursor(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }
    /// Accepts a cursor string from a client (length-limited; decoding is checked by the query).
    pub fn parse(s: &str) -> Result<Cursor, StoreError> {
        if s.is_empty() || s.len() > MAX_CURSOR_LEN {
            return Err(StoreError::InvalidCursor);
        }
        let c = Cursor(s.to_owned());
        c.decode()?;
        Ok(c)
    }
    pub fn decode(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&self.0).map_err(|_| StoreError::InvalidCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One page of a query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Where the next page starts; `None` when the query is complete.
    pub cursor: Option<Cursor>,
}

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

/// Checks shared by every adapter, so that both refuse the same requests.
pub mod validate {
    use super::*;

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
        let mut seen = std::collections::HashSet::new();
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
        let mut seen = std::collections::HashSet::new();
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
        let mut seen = std::collections::HashSet::new();
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
}

/// Pure evaluation of conditions and updates on an item, used by in-process adapters.
pub mod eval {
    use super::*;
    use std::cmp::Ordering;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        Item::new(&Key::new("USER#1", "PROFILE")).with("version", 3i64).with("name", "ana").with("ok", true)
    }

    #[test]
    fn conditions_follow_dynamodb_rules() {
        let i = item();
        assert!(eval::condition(&Condition::Exists, Some(&i)));
        assert!(!eval::condition(&Condition::Exists, None));
        assert!(eval::condition(&Condition::NotExists, None));
        assert!(eval::condition(&Condition::version_is(3), Some(&i)));
        assert!(!eval::condition(&Condition::version_is(4), Some(&i)));
        // missing attribute: comparisons are false, `<>` is true
        assert!(!eval::condition(&Condition::lt("missing", 1i64), Some(&i)));
        assert!(eval::condition(&Condition::ne("missing", 1i64), Some(&i)));
        // type mismatch is false
        assert!(!eval::condition(&Condition::lt("name", 1i64), Some(&i)));
        assert!(eval::condition(&Condition::BeginsWith("name".into(), "an".into()), Some(&i)));
        assert!(eval::condition(&Condition::lt("version", 10i64).and(Condition::AttrExists("ok".into())), Some(&i)));
        assert!(eval::condition(&Condition::AttrExists("nope".into()).not(), Some(&i)));
    }

    #[test]
    fn updates_upsert_and_count() {
        let k = Key::new("C", "1");
        let a = eval::apply_update(None, &k, &Update::new().add("n", 2)).unwrap();
        assert_eq!(a.get_n("n"), Some(Decimal::from(2)));
        let b = eval::apply_update(Some(a), &k, &Update::new().add("n", -5).set_if_not_exists("m", 9i64)).unwrap();
        assert_eq!(b.get_n("n"), Some(Decimal::from(-3)));
        assert_eq!(b.get_n("m"), Some(Decimal::from(9)));
        assert!(validate::update(&Update::new().add("n", 1).set("n", 2i64)).is_err(), "one action per attribute");
        assert!(validate::update(&Update::new().set("GSI1PK", 1i64)).is_err());
        assert!(validate::update(&Update::new().set("GSI1PK", "")).is_err());
        assert!(validate::update(&Update::new().add("GSI1SK", 1)).is_err());
        assert!(validate::update(&Update::new().set(TTL_ATTR, "soon")).is_err());
        assert!(validate::update(&Update::new().set("GSI1PK", "X").add(TTL_ATTR, 5i64)).is_ok());
        let err = eval::apply_update(Some(b.with("s", "x")), &k, &Update::new().add("s", 1)).unwrap_err();
        assert!(matches!(err, StoreError::Validation(_)));
    }

    #[test]
    fn transactions_refuse_duplicates_and_size() {
        let k = Key::new("A", "1");
        let dup = vec![
            TxOp::ConditionCheck { key: k.clone(), condition: Condition::Exists },
            TxOp::Delete { key: k, condition: None },
        ];
        assert!(matches!(validate::transaction(&dup), Err(StoreError::Validation(_))));
        let many: Vec<_> =
            (0..101).map(|i| TxOp::Delete { key: Key::new("A", i.to_string()), condition: None }).collect();
        assert!(validate::transaction(&many).is_err());
        assert!(validate::transaction(&[]).is_err());
    }

    #[test]
    fn cursor_is_bound_to_its_partition() {
        let mut attrs = BTreeMap::new();
        attrs.insert(PK.to_string(), "P1".to_string());
        attrs.insert(SK.to_string(), "S".to_string());
        let c = Cursor::encode(&attrs);
        assert!(Query::partition("P1").after(Some(c.clone())).decode_cursor().unwrap().is_some());
        assert_eq!(Query::partition("P2").after(Some(c.clone())).decode_cursor(), Err(StoreError::InvalidCursor));
        assert_eq!(Query::index(Index::Gsi1, "P1").after(Some(c)).decode_cursor(), Err(StoreError::InvalidCursor));
        assert!(Cursor::parse("not base64 !").is_err());
    }

    #[test]
    fn scan_cursor_is_bound_to_its_segment() {
        let k = Key::new("P", "S");
        let s = Scan::segment(2, 4).limit(10);
        let c = s.cursor_after(&k);
        assert_eq!(s.clone().after(Some(c.clone())).decode_cursor(), Ok(Some(k.clone())));
        assert!(validate::scan(&s.clone().after(Some(c.clone()))).is_ok());
        for other in [Scan::segment(1, 4), Scan::segment(2, 5), Scan::all()] {
            assert_eq!(other.after(Some(c.clone())).decode_cursor(), Err(StoreError::InvalidCursor));
        }
        // A query's cursor is not a scan's, and the other way round.
        let mut attrs = BTreeMap::new();
        attrs.insert(PK.to_string(), "P".to_string());
        attrs.insert(SK.to_string(), "S".to_string());
        let qc = Cursor::encode(&attrs);
        assert_eq!(Scan::all().after(Some(qc)).decode_cursor(), Err(StoreError::InvalidCursor));
        assert_eq!(Query::partition("P").after(Some(c)).decode_cursor(), Err(StoreError::InvalidCursor));
        for bad in [Scan::segment(0, 0), Scan::segment(4, 4), Scan::segment(0, MAX_SCAN_SEGMENTS + 1)] {
            assert!(matches!(validate::scan(&bad), Err(StoreError::Validation(_))), "{bad:?}");
        }
        assert!(validate::scan(&Scan::all().limit(0)).is_err());
        assert!(validate::scan(&Scan::all().limit(MAX_QUERY_LIMIT + 1)).is_err());
        assert!(validate::scan(&Scan::segment(MAX_SCAN_SEGMENTS - 1, MAX_SCAN_SEGMENTS)).is_ok());
    }

    #[test]
    fn batch_writes_are_validated() {
        let items: Vec<Item> = (0..MAX_BATCH_WRITE_ITEMS).map(|i| Item::new(&Key::new("P", i.to_string()))).collect();
        assert_eq!(validate::put_many(&items).unwrap().len(), MAX_BATCH_WRITE_ITEMS);
        let mut too_many = items.clone();
        too_many.push(Item::new(&Key::new("P", "x")));
        assert!(validate::put_many(&too_many).is_err());
        assert!(validate::put_many(&[]).is_err());
        let dup = vec![Item::new(&Key::new("P", "1")), Item::new(&Key::new("P", "1")).with("a", 1i64)];
        assert!(validate::put_many(&dup).is_err());
        assert!(validate::put_many(&[Item::default()]).is_err());
    }

    #[test]
    fn records_round_trip() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct R {
            a: String,
            n: u32,
            f: f64,
            d: Decimal,
            o: Option<String>,
        }
        let r = R { a: "x".into(), n: 7, f: 1.5, d: Decimal::new(12345, 4), o: None };
        let it = Item::from_record(&Key::new("P", "S"), &r).unwrap();
        assert_eq!(it.get_n("n"), Some(Decimal::from(7)));
        let back: R = it.to_record().unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn ttl_expiry_is_inclusive() {
        let i = item().with(TTL_ATTR, 100i64);
        assert!(i.is_expired(100));
        assert!(!i.is_expired(99));
        assert!(!item().is_expired(i64::MAX));
    }
}
