//! What is asked of the store: conditions, updates, transaction operations, queries, scans and their cursors.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{DEFAULT_QUERY_LIMIT, Item, Key, MAX_CURSOR_LEN, MAX_QUERY_LIMIT, PK, SK, StoreError, Value, validate};

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

/// The paging builders queries and scans share (their `limit` and `cursor` fields), and the page size.
macro_rules! paging {
    ($what:literal) => {
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
            page_size(self.limit, $what)
        }
    };
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
    paging!("query");
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
    /// Into how many segments the table is split (1..=[`MAX_SCAN_SEGMENTS`](super::MAX_SCAN_SEGMENTS)).
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
    paging!("scan");
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
