//! What a connector reports about MT5 besides acknowledgements (contract §3.2.1), read once into typed values:
//! open positions (`POSITIONS`, `SYNC_RESPONSE`, `POSITION_UPDATE`), recent deals (`SYNC_RESPONSE.deals`),
//! the account (`ACCOUNT_INFO` / `ACCOUNT_UPDATE` / `SYNC_RESPONSE.account`) and the terminal's state
//! (`MT5_STATUS`) — and the latest positions snapshot of a broker connection, kept in the store for
//! reconciliation (design §4):
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `USER#<uid>` | `POSITIONS#<broker connection id>` | the latest full positions report ([`PositionsSnapshot`]), overwritten by the next |
//!
//! Position entries come in two shapes, both read by [`BrokerPosition::parse`]: the `GET_POSITIONS` /
//! `SYNC_REQUEST` answers (`{ticket, symbol, type: "BUY"|"SELL", volume, price, price_current, profit, sl, tp,
//! comment, time}`, unset SL/TP as `0.0` like MT5) and `POSITION_UPDATE` (`{ticket, symbol, order_type,
//! volume, open_price, current_price, stop_loss, take_profit, profit, comment}`, unset SL/TP as `null`).
//! An entry without a ticket, symbol or volume is skipped and counted, so a reader knows the report was
//! not complete; a report is capped at [`MAX_REPORT_POSITIONS`] positions and [`MAX_REPORT_DEALS`] deals.
//!
//! Reconciliation (issue #6) asks with `SYNC_REQUEST {..., history_from?, tickets?}` for MT5's history since a time
//! and for targeted lookups of position tickets. A connector that supports it answers in the same `SYNC_RESPONSE`
//! with `history_from` (its deals and `orders` then list **everything** from that time on), `orders` (history
//! orders: `{ticket, state: filled|rejected|canceled|expired, time, comment}`) and `lookups` (`{ticket, status:
//! open|closed|not_found, price?, time?}`). Older connectors ignore the extra fields; their deals, if any, are
//! still read as evidence, never as a complete history.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::money::{Currency, Side};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tracing::info;
use uuid::Uuid;

use crate::keys::user_pk;
use crate::ports::{Item, Key, StoreError};
use crate::wire::decimal;
use nusatrade_domain::order::command::MAX_REQUEST_ID;

/// Most positions read from one report (more are dropped and the report marked truncated).
pub const MAX_REPORT_POSITIONS: usize = 1000;
/// Most deals read from one `SYNC_RESPONSE`.
pub const MAX_REPORT_DEALS: usize = 200;
/// Most history orders and most lookups read from one `SYNC_RESPONSE`.
pub const MAX_REPORT_HISTORY: usize = 200;
/// Longest symbol accepted from a connector (MT5 symbols with broker suffixes).
pub const MAX_SYMBOL: usize = 32;
/// Longest comment kept (MT5's limit is 31).
pub const MAX_COMMENT: usize = 64;
/// Largest stored snapshot item: below DynamoDB's 400 KB item limit with room for the key and attributes.
pub const MAX_SNAPSHOT_BYTES: usize = 350 * 1024;

/// An open MT5 position as a connector reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerPosition {
    pub ticket: u64,
    /// The broker's symbol, as reported (may carry a broker suffix such as `EURUSD.m`).
    pub symbol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    pub volume: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_price: Option<Decimal>,
    /// `None` when unset (MT5 reports 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit: Option<Decimal>,
    /// MT5 comment: `NT-<client order id>` for positions we opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_time: Option<DateTime<Utc>>,
    /// Explicit bid/ask, when the connector sends them with the position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<Decimal>,
}

/// A deal from MT5's history (`SYNC_RESPONSE.deals`): what reconciliation reads to find stop-loss and
/// take-profit closes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerDeal {
    pub ticket: u64,
    /// The position the deal belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    pub symbol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// `in`, `out`, `inout`, `out_by`, as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// `client`, `sl`, `tp`, ... as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An order from MT5's history (`SYNC_RESPONSE.orders`): how a command of ours ended when it made no deal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerHistoryOrder {
    pub ticket: u64,
    /// `filled`, `rejected`, `canceled` (`cancelled`), `expired`, lower case.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The answer to a targeted lookup of a position ticket (`SYNC_RESPONSE.lookups`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerLookup {
    pub ticket: u64,
    /// `open`, `closed` or `not_found`, lower case.
    pub status: String,
    /// The closing deal's price, for `closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
}

impl BrokerHistoryOrder {
    /// Reads one history order; `None` without a ticket or a known state.
    pub fn parse(v: &Value) -> Option<BrokerHistoryOrder> {
        let m = v.as_object()?;
        let state = text(m, &["state", "status"], 16)?.to_ascii_lowercase().replace("cancelled", "canceled");
        if !matches!(state.as_str(), "filled" | "rejected" | "canceled" | "expired") {
            return None;
        }
        Some(BrokerHistoryOrder {
            ticket: positive_int(m.get("ticket"))?,
            state,
            time: parse_time(m.get("time")),
            comment: text(m, &["comment"], MAX_COMMENT),
        })
    }
}

impl BrokerLookup {
    /// Reads one lookup answer; `None` without a ticket or a known status (a `closed` one needs its price and time).
    pub fn parse(v: &Value) -> Option<BrokerLookup> {
        let m = v.as_object()?;
        let status = text(m, &["status", "result"], 16)?.to_ascii_lowercase();
        let (price, time) = (positive(m, &["price", "close_price"]), parse_time(m.get("time")));
        let known = match status.as_str() {
            "open" | "not_found" => true,
            "closed" => price.is_some() && time.is_some(),
            _ => false,
        };
        known.then_some(BrokerLookup { ticket: positive_int(m.get("ticket"))?, status, price, time })
    }
}

/// The account figures of `ACCOUNT_INFO` / `ACCOUNT_UPDATE` / `SYNC_RESPONSE.account`.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountReport {
    pub balance: Decimal,
    pub equity: Decimal,
    pub margin: Option<Decimal>,
    pub free_margin: Option<Decimal>,
    pub profit: Option<Decimal>,
    pub leverage: Option<u32>,
    pub currency: Option<Currency>,
}

impl AccountReport {
    /// Reads the figures; balance and equity are required.
    pub fn parse(m: &Map<String, Value>) -> Result<AccountReport, String> {
        let n = |k: &str| m.get(k).and_then(decimal);
        let (Some(balance), Some(equity)) = (n("balance"), n("equity")) else {
            return Err("balance and equity are required".into());
        };
        Ok(AccountReport {
            balance,
            equity,
            margin: n("margin"),
            free_margin: n("free_margin"),
            profit: n("profit"),
            leverage: m.get("leverage").and_then(Value::as_u64).and_then(|l| u32::try_from(l).ok()).filter(|l| *l > 0),
            currency: m.get("currency").and_then(Value::as_str).and_then(|c| c.parse().ok()),
        })
    }
}

/// `MT5_STATUS {connected, broker_name, account_number, server}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mt5Status {
    pub connected: bool,
    pub broker_name: Option<String>,
    pub account_number: Option<String>,
    pub server: Option<String>,
}

impl Mt5Status {
    pub fn parse(m: &Map<String, Value>) -> Result<Mt5Status, String> {
        let connected = match m.get("connected") {
            Some(Value::Bool(b)) => *b,
            _ => return Err("connected must be a boolean".into()),
        };
        let text = |k: &str| match m.get(k) {
            Some(Value::String(s)) => Some(s.chars().filter(|c| !c.is_control()).take(100).collect()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Mt5Status {
            connected,
            broker_name: text("broker_name"),
            account_number: text("account_number"),
            server: text("server"),
        })
    }
}

/// Which message a positions report came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportSource {
    /// `POSITIONS` (answer to `GET_POSITIONS`).
    Positions,
    /// `SYNC_RESPONSE` (answer to `SYNC_REQUEST`).
    SyncResponse,
}

/// A full positions report (`POSITIONS` / `SYNC_RESPONSE`).
#[derive(Clone, Debug, PartialEq)]
pub struct PositionsReport {
    pub source: ReportSource,
    pub request_id: Option<String>,
    pub positions: Vec<BrokerPosition>,
    pub deals: Vec<BrokerDeal>,
    pub account: Option<AccountReport>,
    /// Entries that could not be read (the report is incomplete when non-zero).
    pub skipped: u32,
    /// More entries than [`MAX_REPORT_POSITIONS`] / [`MAX_REPORT_DEALS`] were sent.
    pub truncated: bool,
    /// The history part: see [`ReportHistory`].
    pub history: ReportHistory,
}

/// What a `SYNC_RESPONSE` says about MT5's history beyond its deals (reconciliation, issue #6).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportHistory {
    /// The connector lists every deal and history order from this time on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history_orders: Vec<BrokerHistoryOrder>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<BrokerLookup>,
    /// How many of the report's unreadable entries (`skipped`) were deals, history orders or lookups.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_skipped: u32,
    /// Deals or history orders were dropped (caps, item size): the history is not complete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history_truncated: bool,
    /// Positions were dropped (caps, item size).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub positions_truncated: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A `POSITION_UPDATE`: the open positions with current prices.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionUpdate {
    pub positions: Vec<BrokerPosition>,
    pub skipped: u32,
    pub truncated: bool,
}

impl PositionsReport {
    /// Reads `POSITIONS {request_id?, data: [...]}` (the original's field; `positions` accepted too) or
    /// `SYNC_RESPONSE {request_id?, positions: [...], account: {...}|null, deals?: [...]}`.
    pub fn parse(source: ReportSource, m: &Map<String, Value>) -> Result<PositionsReport, String> {
        let list = match source {
            ReportSource::Positions => m.get("data").or_else(|| m.get("positions")),
            ReportSource::SyncResponse => m.get("positions"),
        };
        let Some(Value::Array(list)) = list else {
            return Err(match source {
                ReportSource::Positions => "data must be a list of positions".into(),
                ReportSource::SyncResponse => "positions must be a list".into(),
            });
        };
        let (positions, skipped, truncated) = parse_list(list, MAX_REPORT_POSITIONS, BrokerPosition::parse);
        let (deals, skipped_deals, deals_truncated) = match m.get("deals") {
            Some(Value::Array(d)) => parse_list(d, MAX_REPORT_DEALS, BrokerDeal::parse),
            _ => (Vec::new(), 0, false),
        };
        let account = match m.get("account") {
            Some(Value::Object(a)) => AccountReport::parse(a).ok(),
            _ => None,
        };
        let (history_orders, skipped_orders, orders_truncated) = match m.get("orders") {
            Some(Value::Array(o)) => parse_list(o, MAX_REPORT_HISTORY, BrokerHistoryOrder::parse),
            _ => (Vec::new(), 0, false),
        };
        let (lookups, skipped_lookups, _) = match m.get("lookups") {
            Some(Value::Array(l)) => parse_list(l, MAX_REPORT_HISTORY, BrokerLookup::parse),
            _ => (Vec::new(), 0, false),
        };
        let history_skipped = skipped_deals + skipped_orders + skipped_lookups;
        let history = ReportHistory {
            history_from: parse_time(m.get("history_from")),
            history_orders,
            lookups,
            history_skipped,
            history_truncated: deals_truncated || orders_truncated,
            positions_truncated: truncated,
        };
        Ok(PositionsReport {
            source,
            request_id: request_id(m),
            positions,
            deals,
            account,
            skipped: skipped + history_skipped,
            truncated: truncated || deals_truncated || orders_truncated,
            history,
        })
    }
}

impl PositionUpdate {
    /// Reads `POSITION_UPDATE {positions: [...]}`.
    pub fn parse(m: &Map<String, Value>) -> Result<PositionUpdate, String> {
        let Some(Value::Array(list)) = m.get("positions") else {
            return Err("positions must be a list".into());
        };
        let (positions, skipped, truncated) = parse_list(list, MAX_REPORT_POSITIONS, BrokerPosition::parse);
        Ok(PositionUpdate { positions, skipped, truncated })
    }

    /// The update as browsers receive it (the original's field names), at most `max_positions` entries.
    pub fn relay(&self, broker_connection_id: Uuid, max_positions: usize) -> Value {
        let positions: Vec<Value> = self.positions.iter().take(max_positions).map(BrokerPosition::to_wire).collect();
        let mut v = json!({
            "type": "POSITION_UPDATE",
            "connection_id": broker_connection_id,
            "positions": positions,
        });
        if self.truncated || self.positions.len() > max_positions {
            v["truncated"] = json!(true);
        }
        v
    }
}

fn request_id(m: &Map<String, Value>) -> Option<String> {
    match m.get("request_id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.chars().take(MAX_REQUEST_ID).collect()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads up to `max` entries with `parse`; returns them, how many could not be read and whether the list
/// was longer than `max`.
fn parse_list<T>(list: &[Value], max: usize, parse: fn(&Value) -> Option<T>) -> (Vec<T>, u32, bool) {
    let mut out = Vec::with_capacity(list.len().min(max));
    let mut skipped = 0u32;
    for v in list.iter().take(max) {
        match parse(v) {
            Some(p) => out.push(p),
            None => skipped += 1,
        }
    }
    (out, skipped, list.len() > max)
}

fn positive_int(v: Option<&Value>) -> Option<u64> {
    let d = decimal(v?)?;
    if d <= Decimal::ZERO || !d.fract().is_zero() {
        return None;
    }
    u64::try_from(d).ok()
}

/// An optional number: absent/null/unreadable → `None`; `zero_is_none` for MT5's unset SL/TP.
fn number(m: &Map<String, Value>, names: &[&str], zero_is_none: bool) -> Option<Decimal> {
    let d = names.iter().find_map(|n| m.get(*n).filter(|v| !v.is_null()))?;
    let d = decimal(d)?;
    if zero_is_none && d.is_zero() { None } else { Some(d) }
}

fn positive(m: &Map<String, Value>, names: &[&str]) -> Option<Decimal> {
    number(m, names, false).filter(|d| *d > Decimal::ZERO)
}

fn text(m: &Map<String, Value>, names: &[&str], max: usize) -> Option<String> {
    let s = names.iter().find_map(|n| m.get(*n).and_then(Value::as_str))?;
    let s: String = s.trim().chars().filter(|c| !c.is_control()).take(max).collect();
    (!s.is_empty()).then_some(s)
}

/// `BUY`/`SELL` (any case), or MT5's numeric position/deal types 0 (buy) and 1 (sell).
fn side(v: Option<&Value>) -> Result<Option<Side>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.trim().to_ascii_uppercase().parse::<Side>().map(Some),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(Some(Side::Buy)),
            Some(1) => Ok(Some(Side::Sell)),
            _ => Err(()),
        },
        Some(_) => Err(()),
    }
}

/// RFC 3339, a naive ISO time (taken as UTC, as MT5 servers report), or epoch seconds.
pub fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    match v? {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc())),
        Value::Number(n) => n.as_i64().and_then(|s| DateTime::from_timestamp(s, 0)),
        _ => None,
    }
}

impl BrokerPosition {
    /// Reads one position entry (either shape); `None` when it has no usable ticket, symbol or volume, or an
    /// unreadable side.
    pub fn parse(v: &Value) -> Option<BrokerPosition> {
        let m = v.as_object()?;
        let ticket = positive_int(m.get("ticket"))?;
        let symbol = text(m, &["symbol"], MAX_SYMBOL)?;
        let side = side(m.get("type").or_else(|| m.get("order_type"))).ok()?;
        let volume = positive(m, &["volume", "lot_size"])?;
        Some(BrokerPosition {
            ticket,
            symbol,
            side,
            volume,
            open_price: positive(m, &["price", "open_price", "price_open"]),
            current_price: positive(m, &["price_current", "current_price"]),
            stop_loss: number(m, &["sl", "stop_loss"], true).filter(|d| *d > Decimal::ZERO),
            take_profit: number(m, &["tp", "take_profit"], true).filter(|d| *d > Decimal::ZERO),
            profit: number(m, &["profit"], false),
            comment: text(m, &["comment"], MAX_COMMENT),
            open_time: parse_time(m.get("time").or_else(|| m.get("open_time"))),
            bid: positive(m, &["bid"]),
            ask: positive(m, &["ask"]),
        })
    }

    /// The entry as `POSITION_UPDATE` carries it to browsers (contract §3.2.1 field names).
    pub fn to_wire(&self) -> Value {
        let n = |d: Option<Decimal>| d.map(crate::wire::num);
        json!({
            "ticket": self.ticket,
            "symbol": self.symbol,
            "order_type": self.side.map(Side::as_str),
            "volume": crate::wire::num(self.volume),
            "open_price": n(self.open_price),
            "current_price": n(self.current_price),
            "stop_loss": n(self.stop_loss),
            "take_profit": n(self.take_profit),
            "profit": n(self.profit),
            "comment": self.comment,
        })
    }
}

impl BrokerDeal {
    /// Reads one deal entry; `None` without a ticket or symbol.
    pub fn parse(v: &Value) -> Option<BrokerDeal> {
        let m = v.as_object()?;
        Some(BrokerDeal {
            ticket: positive_int(m.get("ticket"))?,
            position: positive_int(m.get("position").or_else(|| m.get("position_id"))),
            symbol: text(m, &["symbol"], MAX_SYMBOL)?,
            side: side(m.get("type").or_else(|| m.get("order_type"))).ok().flatten(),
            entry: text(m, &["entry"], 16),
            volume: positive(m, &["volume"]),
            price: positive(m, &["price"]),
            profit: number(m, &["profit"], false),
            time: parse_time(m.get("time")),
            reason: text(m, &["reason"], 16),
            comment: text(m, &["comment"], MAX_COMMENT),
        })
    }
}

/// A price a report implies for a catalogue symbol: a buy position is valued at the bid, a sell at the ask;
/// explicit `bid`/`ask` win. A side nobody reported takes the other side's price.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportedQuote {
    /// The catalogue symbol (`EURUSD.m` → `EURUSD`).
    pub symbol: &'static str,
    pub bid: Decimal,
    pub ask: Decimal,
}

/// The quotes implied by positions, one per catalogue symbol (symbols outside the catalogue are ignored).
pub fn quotes(positions: &[BrokerPosition]) -> Vec<ReportedQuote> {
    let mut sides: BTreeMap<&'static str, (Option<Decimal>, Option<Decimal>)> = BTreeMap::new();
    for p in positions {
        let Ok(instrument) = lookup(&p.symbol) else { continue };
        let (bid, ask) = match (p.side, p.current_price) {
            (Some(Side::Buy), Some(c)) => (Some(c), None),
            (Some(Side::Sell), Some(c)) => (None, Some(c)),
            _ => (None, None),
        };
        let entry = sides.entry(instrument.symbol).or_default();
        entry.0 = p.bid.or(bid).or(entry.0);
        entry.1 = p.ask.or(ask).or(entry.1);
    }
    sides
        .into_iter()
        .filter_map(|(symbol, (bid, ask))| {
            let (bid, ask) = match (bid, ask) {
                (Some(b), Some(a)) => (b, a),
                (Some(b), None) => (b, b),
                (None, Some(a)) => (a, a),
                (None, None) => return None,
            };
            Some(ReportedQuote { symbol, bid, ask })
        })
        .collect()
}

// ------------------------------------------------------------------ the stored snapshot

/// `USER#<uid>` / `POSITIONS#<broker connection id>`: the latest full positions report of a broker connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionsSnapshot {
    pub broker_connection_id: Uuid,
    pub source: ReportSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The WebSocket connection it came in on.
    pub ws_connection_id: String,
    pub received_at: DateTime<Utc>,
    pub positions: Vec<BrokerPosition>,
    #[serde(default)]
    pub deals: Vec<BrokerDeal>,
    /// Entries the connector sent that could not be read.
    #[serde(default)]
    pub skipped: u32,
    /// Entries were dropped (the report's caps, or the store's item size): not a complete picture.
    #[serde(default)]
    pub truncated: bool,
    /// History window, history orders and lookups (`SYNC_RESPONSE` to reconciliation's requests).
    #[serde(default, flatten)]
    pub history: ReportHistory,
}

impl PositionsSnapshot {
    /// A complete picture of MT5's open positions at `received_at`: nothing skipped or dropped.
    /// Reconciliation must not conclude "closed" from an incomplete one.
    pub fn is_complete(&self) -> bool {
        self.skipped == 0 && !self.truncated
    }

    /// Every open position was read (the history part may still be incomplete): absence from this snapshot means
    /// something. A snapshot stored before the history fields existed counts only when wholly complete.
    pub fn positions_complete(&self) -> bool {
        let h = &self.history;
        self.skipped == h.history_skipped && !h.positions_truncated && (!self.truncated || h.history_truncated)
    }

    /// The deals (and history orders) are every one since [`ReportHistory::history_from`]: nothing unreadable or
    /// dropped, and the connector said from when.
    pub fn history_complete(&self) -> bool {
        let h = &self.history;
        h.history_from.is_some() && h.history_skipped == 0 && !h.history_truncated
    }
}

pub fn snapshot_key(user: Uuid, broker_connection: Uuid) -> Key {
    Key::new(user_pk(user), format!("POSITIONS#{broker_connection}"))
}

/// The snapshot as a store item within [`MAX_SNAPSHOT_BYTES`]: deals are dropped first, then positions
/// halved, each drop marking it truncated.
pub fn snapshot_item(user: Uuid, snapshot: &mut PositionsSnapshot) -> Result<Item, StoreError> {
    let key = snapshot_key(user, snapshot.broker_connection_id);
    loop {
        let item = Item::from_record(&key, &*snapshot)?;
        if item.size() <= MAX_SNAPSHOT_BYTES {
            return Ok(item);
        }
        snapshot.truncated = true;
        if !snapshot.deals.is_empty() || !snapshot.history.history_orders.is_empty() {
            snapshot.deals.clear();
            snapshot.history.history_orders.clear();
            snapshot.history.history_truncated = true;
        } else if snapshot.positions.is_empty() {
            return Err(StoreError::Validation("positions snapshot too large".into()));
        } else {
            let keep = snapshot.positions.len() / 2;
            snapshot.positions.truncate(keep);
            snapshot.history.positions_truncated = true;
        }
    }
}

/// Where a stored positions snapshot goes next: reconciliation (issue #6, `nusatrade_app::reconcile`) compares it
/// with our orders, adopts unknown positions and resolves `unknown` orders. Called after the snapshot is stored;
/// it must not fail the connector's message.
#[async_trait]
pub trait SnapshotHook: Send + Sync + 'static {
    async fn positions_snapshot(&self, user_id: Uuid, snapshot: &PositionsSnapshot);

    /// Live prices of the open positions (`POSITION_UPDATE`): the trailing-stop driver's input. Best effort, like
    /// the snapshot.
    async fn position_update(&self, _user_id: Uuid, _broker_connection_id: Uuid, _positions: &[BrokerPosition]) {}

    /// The connector sent `ERROR` (`request_id` as it came): when it answers a positions request it is a failed
    /// snapshot, recorded on the connection. Returns whether to relay it to the dashboards as `CONNECTOR_ERROR`
    /// (a repeated failed snapshot is not: once per change).
    async fn connector_error(
        &self,
        _user_id: Uuid,
        _broker_connection_id: Uuid,
        _error: &str,
        _request_id: Option<&str>,
    ) -> bool {
        true
    }

    /// A connector's link came up (its first contact, after the re-sync requests went out): reconciliation keeps
    /// asking it from now on, even when its answer to the re-sync is lost.
    async fn connector_up(&self, _user_id: Uuid, _broker_connection_id: Uuid) {}
}

/// The hook until reconciliation exists: logs what arrived.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogSnapshots;

#[async_trait]
impl SnapshotHook for LogSnapshots {
    async fn positions_snapshot(&self, user_id: Uuid, s: &PositionsSnapshot) {
        info!(
            user = %user_id, connection = %s.broker_connection_id, source = ?s.source,
            positions = s.positions.len(), deals = s.deals.len(), complete = s.is_complete(),
            "positions snapshot stored (reconciliation not wired yet)"
        );
    }
}

#[cfg(test)]
mod tests;
