//! Store layout of orders (single table):
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `USER#<uid>` | `ORDER#<order id>` | the order ([`OrderRecord`]); while live (reservation held, or an adopted external position) also `GSI1PK = LIVE#<uid>`, `GSI1SK = ORDER#<order id>` |
//! | `USER#<uid>` | `LIMITS` | `open_orders`: the user's open-position reservations (the max-open-positions limit) |
//! | `USER#<uid>` | `IDEM#<key>` | an idempotency record ([`IdempotencyRecord`]); `ttl` 24 h |
//! | `USER#<uid>` | `STATS` | closed-trade aggregates: `closed_trades`, `winning_trades`, `total_pnl` |
//! | `USER#<uid>` | `DAY#<yyyy-mm-dd>` | `pnl` realised on that UTC day |
//!
//! Order ids are UUIDv7 (time-ordered), so `ORDER#` sort keys list orders newest-first without another
//! index; the sparse `LIVE#` index lists positions without reading the history. Every write of an order is
//! a put conditioned on its `version` (and the state machine's `status`), and every transition that gives a
//! reservation back, or realises a profit, writes the counter and the aggregates in the same transaction,
//! so they stay exact under duplicate, late and concurrent acknowledgements.

use chrono::{DateTime, NaiveDate, Utc};
use nusatrade_domain::money::Side;
use nusatrade_domain::order::{OrderState, OrderStatus, Ticket};
use nusatrade_domain::trailing::TrailingStopSettings;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::error::TradingError;
use crate::keys::user_pk;
use crate::ports::{Condition, Item, Key, StoreError};

pub const ORDER_PREFIX: &str = "ORDER#";
pub const LIMITS_SK: &str = "LIMITS";
pub const OPEN_ORDERS_ATTR: &str = "open_orders";
pub const STATS_SK: &str = "STATS";

pub fn order_key(user: Uuid, order: Uuid) -> Key {
    Key::new(user_pk(user), format!("{ORDER_PREFIX}{order}"))
}
pub fn limits_key(user: Uuid) -> Key {
    Key::new(user_pk(user), LIMITS_SK)
}
pub fn idempotency_key(user: Uuid, key: &str) -> Key {
    Key::new(user_pk(user), format!("IDEM#{key}"))
}
pub fn stats_key(user: Uuid) -> Key {
    Key::new(user_pk(user), STATS_SK)
}
pub fn day_key(user: Uuid, day: NaiveDate) -> Key {
    Key::new(user_pk(user), format!("DAY#{day}"))
}
/// The partition of the sparse live-orders index.
pub fn live_pk(user: Uuid) -> String {
    format!("LIVE#{user}")
}

/// Where an order came from (the original's `trades.source`).
pub const SOURCE_API: &str = "api";
pub const SOURCE_WEBSOCKET: &str = "websocket";

/// One order and, once filled, its position (the original kept `trades` and `positions` apart and matched
/// them by symbol; here the position *is* the order, so a "position id" and a "trade id" are the same id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `NT-…` travels in the MT5 comment.
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub lots: Decimal,
    /// The price the client quoted when placing (the market order fills at the market).
    pub requested_price: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<Decimal>,
    pub status: OrderStatus,
    /// Incremented by every write: the conditional-write guard.
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,
    /// The broker connection whose connector was commanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_connection_id: Option<Uuid>,
    /// The version that issued the close/modify command in flight (its request id carries it).
    #[serde(default)]
    pub command_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_price: Option<Decimal>,
    /// False when the ack carried no fill price (the original connector sends none, contract §9.1 item 5):
    /// the requested price stands in until reconciliation reads the real one.
    #[serde(default)]
    pub fill_price_confirmed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_time: Option<DateTime<Utc>>,
    /// Closed by reconciliation without MT5's closing deal (absent from two complete reports of a connector without
    /// lookups, or a lookup that found nothing): the price is the last known one until a deal says otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub close_unconfirmed: bool,
    /// Realised profit in the account currency (2 dp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit: Option<Decimal>,
    /// Last price and floating profit reported for the open position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating_profit: Option<Decimal>,
    /// SL/TP requested by the modify command in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_stop_loss: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_take_profit: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailing_stop: Option<TrailingStopSettings>,
    /// The last MT5 error for this order (failed open/close/modify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retcode: Option<u32>,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OrderRecord {
    pub fn key(&self) -> Key {
        order_key(self.user_id, self.id)
    }

    pub fn state(&self) -> OrderState {
        OrderState { status: self.status, version: self.version, ticket: self.ticket }
    }

    /// Listed by `GET /trading/positions` (and counted against the limits, for adopted positions).
    pub fn is_live(&self) -> bool {
        self.status.holds_reservation() || self.status == OrderStatus::External
    }

    /// The item, with the live-index attributes while live.
    pub fn to_item(&self) -> Result<Item, StoreError> {
        let mut item = Item::from_record(&self.key(), self)?;
        if self.is_live() {
            item.set("GSI1PK", live_pk(self.user_id));
            item.set("GSI1SK", format!("{ORDER_PREFIX}{}", self.id));
        }
        Ok(item)
    }

    /// The condition of a write that replaces the record `self` was read as.
    pub fn unchanged(&self) -> Condition {
        Condition::version_is(self.version).and(Condition::eq("status", self.status.as_str()))
    }
}

/// `IDEM#<key>`: the first request made with an idempotency key and, once answered, its response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 of the method, route and canonical body: the same key with another request is refused.
    pub request_hash: String,
    pub order_id: Uuid,
    /// The HTTP status of the first request, as records written before #15 kept it (read, never written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    /// The command the first request issued (`open`, `close`, `modify`) and how it was delivered (`sent`,
    /// `uncertain`, `in_flight`); `None` while the first request is still being handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ttl: i64,
}

/// An idempotency key and the fingerprint of the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    /// Longest accepted key.
    pub const MAX_LEN: usize = 64;

    /// A key (1–64 characters of `[A-Za-z0-9_.:-]`) for a request, fingerprinted by route and canonical body.
    pub fn new(key: &str, route: &str, body: &Value) -> Result<Self, TradingError> {
        let ok = !key.is_empty()
            && key.len() <= Self::MAX_LEN
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        if !ok {
            return Err(TradingError::Invalid(
                "Idempotency-Key must be 1-64 characters of letters, digits, '_', '.', ':' or '-'".into(),
            ));
        }
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        // serde_json's Map is ordered by key: the same fields in another order hash the same.
        h.update(body.to_string().as_bytes());
        Ok(IdempotencyKey { key: key.to_owned(), request_hash: crate::wire::hex(&h.finalize()) })
    }
}
