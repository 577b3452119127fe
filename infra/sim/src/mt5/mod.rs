//! The MetaTrader 5 terminal as the connector sees it: the [`Mt5`] trait mirrors the calls of the official
//! `MetaTrader5` Python package the connector needs (`account_info`, `symbols_get`, `symbol_info`, `symbol_info_tick`,
//! `symbol_select`, `positions_get`, `history_deals_get`, `history_orders_get`, `order_send`, `copy_rates_range`)
//! with the package's own field names and constants, so the protocol logic ([`engine::TerminalEngine`]) is written
//! once, in Rust, against any terminal:
//!
//! * [`paper::PaperTerminal`]: the paper account ([`crate::paper::PaperAccount`]) answering as a terminal would;
//! * [`bridge::BridgeTerminal`]: a real terminal on Windows, through a small Python bridge ([`bridge`]) that maps
//!   JSON lines on its stdio to `MetaTrader5` calls.
//!
//! A real terminal is wrapped in a [`broker::BrokerTerminal`], which speaks the platform's symbols and UTC to the
//! engine and the broker's symbol names ([`symbols`]) and the trade server's clock ([`server_time`]) to the
//! terminal.
//!
//! [`connector::TerminalConnector`] runs the connector session (`nusatrade connector --mt5 terminal`) over it.

pub mod bridge;
pub mod broker;
pub mod connector;
pub mod engine;
pub mod paper;
pub mod server_time;
pub mod symbols;

use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// `ORDER_TYPE_BUY`.
pub const ORDER_TYPE_BUY: i64 = 0;
/// `ORDER_TYPE_SELL`.
pub const ORDER_TYPE_SELL: i64 = 1;
/// `TRADE_ACTION_DEAL`: a market order.
pub const TRADE_ACTION_DEAL: i64 = 1;
/// `TRADE_ACTION_SLTP`: change a position's stop loss / take profit.
pub const TRADE_ACTION_SLTP: i64 = 6;
/// `DEAL_ENTRY_IN`.
pub const DEAL_ENTRY_IN: i64 = 0;
/// `DEAL_ENTRY_OUT`.
pub const DEAL_ENTRY_OUT: i64 = 1;
/// `DEAL_REASON_CLIENT` (a desktop terminal's manual order).
pub const DEAL_REASON_CLIENT: i64 = 0;
/// `DEAL_REASON_EXPERT` (an order sent by a program: the connector's).
pub const DEAL_REASON_EXPERT: i64 = 3;
/// `DEAL_REASON_SL`.
pub const DEAL_REASON_SL: i64 = 4;
/// `DEAL_REASON_TP`.
pub const DEAL_REASON_TP: i64 = 5;
/// `DEAL_REASON_SO` (stop out).
pub const DEAL_REASON_SO: i64 = 6;
/// `ORDER_STATE_REJECTED`.
pub const ORDER_STATE_REJECTED: i64 = 5;
/// `ORDER_FILLING_FOK`.
pub const ORDER_FILLING_FOK: i64 = 0;
/// `ORDER_FILLING_IOC`.
pub const ORDER_FILLING_IOC: i64 = 1;
/// `ORDER_FILLING_RETURN`.
pub const ORDER_FILLING_RETURN: i64 = 2;
/// `ORDER_TIME_GTC`.
pub const ORDER_TIME_GTC: i64 = 0;
/// `SYMBOL_FILLING_FOK` bit of `symbol_info().filling_mode`.
pub const SYMBOL_FILLING_FOK: i64 = 1;
/// `SYMBOL_FILLING_IOC` bit of `symbol_info().filling_mode`.
pub const SYMBOL_FILLING_IOC: i64 = 2;
/// `TRADE_RETCODE_PLACED`.
pub const RETCODE_PLACED: u32 = 10008;
/// `TRADE_RETCODE_DONE`.
pub const RETCODE_DONE: u32 = 10009;
/// `TRADE_RETCODE_DONE_PARTIAL`.
pub const RETCODE_DONE_PARTIAL: u32 = 10010;
/// `TRADE_RETCODE_NO_CHANGES`.
pub const RETCODE_NO_CHANGES: u32 = 10025;
/// The connector's magic number on its orders (`magic` of `order_send`).
pub const MAGIC: i64 = 20_251_205;

/// Why a terminal call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Mt5Error {
    /// The terminal (or the bridge to it) is not reachable: the outcome of a call in flight is unknown.
    #[error("MT5 terminal disconnected: {0}")]
    Disconnected(String),
    /// No answer within the timeout: the outcome of the call is unknown (the bridge is restarted).
    #[error("no answer from the MT5 terminal within {0} ms")]
    Timeout(u64),
    /// The terminal answered with an error (`last_error()`: code and message).
    #[error("MT5 error {code}: {message}")]
    Terminal {
        /// `last_error()[0]`.
        code: i64,
        /// `last_error()[1]`.
        message: String,
    },
    /// The answer cannot be read.
    #[error("unreadable answer from the MT5 bridge: {0}")]
    Protocol(String),
    /// The platform's symbol has no broker symbol in this terminal (ambiguous or missing, [`symbols`]): nothing
    /// was sent; the text says why and how to name it.
    #[error("{0}")]
    UnknownSymbol(String),
}

impl Mt5Error {
    /// Whether the outcome of the call is unknown (it may have been executed).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Mt5Error::Disconnected(_) | Mt5Error::Timeout(_))
    }
}

/// `account_info()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Login.
    pub login: u64,
    /// Trade server name.
    #[serde(default)]
    pub server: String,
    /// Broker company.
    #[serde(default)]
    pub company: String,
    /// Deposit currency.
    #[serde(default)]
    pub currency: String,
    /// 1:`leverage`.
    #[serde(default)]
    pub leverage: u32,
    /// Balance.
    #[serde(with = "float")]
    pub balance: Decimal,
    /// Equity.
    #[serde(with = "float")]
    pub equity: Decimal,
    /// Margin in use.
    #[serde(with = "float", default)]
    pub margin: Decimal,
    /// Free margin.
    #[serde(with = "float", default)]
    pub margin_free: Decimal,
    /// Margin level, percent (0 without margin).
    #[serde(with = "float", default)]
    pub margin_level: Decimal,
    /// Floating profit.
    #[serde(with = "float", default)]
    pub profit: Decimal,
}

/// `symbol_info()` (the fields used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolInfo {
    /// Symbol name.
    pub name: String,
    /// Shown in Market Watch (`symbol_select` makes it so).
    #[serde(default)]
    pub visible: bool,
    /// Price digits.
    #[serde(default)]
    pub digits: u32,
    /// Allowed filling modes (`SYMBOL_FILLING_*` bits).
    #[serde(default)]
    pub filling_mode: i64,
}

/// `symbol_info_tick()`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SymbolTick {
    /// Unix seconds (trade server time).
    pub time: i64,
    /// Bid.
    #[serde(with = "float")]
    pub bid: Decimal,
    /// Ask.
    #[serde(with = "float")]
    pub ask: Decimal,
}

/// `positions_get()` rows (`TradePosition`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradePosition {
    /// Position ticket.
    pub ticket: u64,
    /// Open time, Unix seconds.
    #[serde(default)]
    pub time: i64,
    /// Open time, Unix milliseconds.
    #[serde(default)]
    pub time_msc: i64,
    /// `POSITION_TYPE_BUY` (0) or `POSITION_TYPE_SELL` (1).
    #[serde(rename = "type")]
    pub kind: i64,
    /// Magic number.
    #[serde(default)]
    pub magic: i64,
    /// Volume in lots.
    #[serde(with = "float")]
    pub volume: Decimal,
    /// Open price.
    #[serde(with = "float")]
    pub price_open: Decimal,
    /// Stop loss, 0 when none.
    #[serde(with = "float", default)]
    pub sl: Decimal,
    /// Take profit, 0 when none.
    #[serde(with = "float", default)]
    pub tp: Decimal,
    /// Current price.
    #[serde(with = "float", default)]
    pub price_current: Decimal,
    /// Floating profit.
    #[serde(with = "float", default)]
    pub profit: Decimal,
    /// Symbol.
    pub symbol: String,
    /// Comment.
    #[serde(default)]
    pub comment: String,
}

/// `history_deals_get()` rows (`TradeDeal`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeDeal {
    /// Deal ticket.
    pub ticket: u64,
    /// The order that made it.
    #[serde(default)]
    pub order: u64,
    /// Unix seconds.
    #[serde(default)]
    pub time: i64,
    /// Unix milliseconds.
    #[serde(default)]
    pub time_msc: i64,
    /// `DEAL_TYPE_BUY` (0), `DEAL_TYPE_SELL` (1), others (balance operations…).
    #[serde(rename = "type")]
    pub kind: i64,
    /// `DEAL_ENTRY_IN` / `DEAL_ENTRY_OUT` / …
    #[serde(default)]
    pub entry: i64,
    /// Magic number.
    #[serde(default)]
    pub magic: i64,
    /// The position it belongs to.
    #[serde(default)]
    pub position_id: u64,
    /// `DEAL_REASON_*`.
    #[serde(default)]
    pub reason: i64,
    /// Volume.
    #[serde(with = "float", default)]
    pub volume: Decimal,
    /// Price.
    #[serde(with = "float", default)]
    pub price: Decimal,
    /// Realised profit.
    #[serde(with = "float", default)]
    pub profit: Decimal,
    /// Symbol.
    #[serde(default)]
    pub symbol: String,
    /// Comment.
    #[serde(default)]
    pub comment: String,
}

/// `history_orders_get()` rows (`TradeOrder`, the fields used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeOrder {
    /// Order ticket.
    pub ticket: u64,
    /// Setup time, Unix seconds.
    #[serde(default)]
    pub time_setup: i64,
    /// Setup time, Unix milliseconds (0 when the terminal does not give them).
    #[serde(default)]
    pub time_setup_msc: i64,
    /// `ORDER_TYPE_*`.
    #[serde(rename = "type", default)]
    pub kind: i64,
    /// `ORDER_STATE_*`.
    #[serde(default)]
    pub state: i64,
    /// The position it opened or closed.
    #[serde(default)]
    pub position_id: u64,
    /// Symbol.
    #[serde(default)]
    pub symbol: String,
    /// Comment.
    #[serde(default)]
    pub comment: String,
}

/// `order_send()`'s request (`MqlTradeRequest`, the fields used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeRequest {
    /// `TRADE_ACTION_DEAL` or `TRADE_ACTION_SLTP`.
    pub action: i64,
    /// Symbol.
    pub symbol: String,
    /// Volume (deals).
    #[serde(with = "float_opt", default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Decimal>,
    /// `ORDER_TYPE_BUY` / `ORDER_TYPE_SELL` (deals).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<i64>,
    /// The position to close or modify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Requested price (deals).
    #[serde(with = "float_opt", default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// Stop loss (0: none).
    #[serde(with = "float_opt", default, skip_serializing_if = "Option::is_none")]
    pub sl: Option<Decimal>,
    /// Take profit (0: none).
    #[serde(with = "float_opt", default, skip_serializing_if = "Option::is_none")]
    pub tp: Option<Decimal>,
    /// Allowed slippage in points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<u32>,
    /// Magic number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magic: Option<i64>,
    /// Comment (the terminal keeps 31 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `ORDER_TIME_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_time: Option<i64>,
    /// `ORDER_FILLING_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_filling: Option<i64>,
}

/// `order_send()`'s result (`OrderSendResult`, the fields used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSendResult {
    /// `TRADE_RETCODE_*`.
    pub retcode: u32,
    /// The deal ticket, when executed.
    #[serde(default)]
    pub deal: u64,
    /// The order ticket.
    #[serde(default)]
    pub order: u64,
    /// Volume executed.
    #[serde(with = "float", default)]
    pub volume: Decimal,
    /// Price executed.
    #[serde(with = "float", default)]
    pub price: Decimal,
    /// The trade server's comment.
    #[serde(default)]
    pub comment: String,
}

/// `copy_rates_range()` rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Bar open time, Unix seconds.
    pub time: i64,
    /// Open.
    #[serde(with = "float")]
    pub open: Decimal,
    /// High.
    #[serde(with = "float")]
    pub high: Decimal,
    /// Low.
    #[serde(with = "float")]
    pub low: Decimal,
    /// Close.
    #[serde(with = "float")]
    pub close: Decimal,
    /// Tick volume.
    #[serde(default)]
    pub tick_volume: u64,
}

/// Which positions `positions_get` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PositionFilter {
    /// All.
    All,
    /// `ticket=`.
    Ticket(u64),
}

/// Which history `history_deals_get` / `history_orders_get` return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryQuery {
    /// `(date_from, date_to)`.
    Range(DateTime<Utc>, DateTime<Utc>),
    /// `ticket=`: an order ticket (for deals: the deals of that order, `DEAL_ORDER`, as the package documents).
    Order(u64),
    /// `position=`.
    Position(u64),
}

/// The MT5 calls the connector makes. Every method may fail with [`Mt5Error`]; a failed `order_send` whose
/// error [is of unknown outcome](Mt5Error::outcome_unknown) may have been executed.
pub trait Mt5: Send {
    /// `account_info()`.
    fn account_info(&mut self) -> impl Future<Output = Result<AccountInfo, Mt5Error>> + Send;
    /// The names of `symbols_get()`: every symbol the terminal offers (not only Market Watch's).
    fn symbols_get(&mut self) -> impl Future<Output = Result<Vec<String>, Mt5Error>> + Send;
    /// `symbol_info(symbol)`; `None` for an unknown symbol.
    fn symbol_info(&mut self, symbol: &str) -> impl Future<Output = Result<Option<SymbolInfo>, Mt5Error>> + Send;
    /// `symbol_select(symbol, True)`.
    fn symbol_select(&mut self, symbol: &str) -> impl Future<Output = Result<bool, Mt5Error>> + Send;
    /// `symbol_info_tick(symbol)`; `None` without prices.
    fn symbol_info_tick(&mut self, symbol: &str) -> impl Future<Output = Result<Option<SymbolTick>, Mt5Error>> + Send;
    /// `positions_get(...)`.
    fn positions_get(
        &mut self,
        filter: PositionFilter,
    ) -> impl Future<Output = Result<Vec<TradePosition>, Mt5Error>> + Send;
    /// `history_deals_get(...)`.
    fn history_deals_get(
        &mut self,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<Vec<TradeDeal>, Mt5Error>> + Send;
    /// `history_orders_get(...)`.
    fn history_orders_get(
        &mut self,
        query: HistoryQuery,
    ) -> impl Future<Output = Result<Vec<TradeOrder>, Mt5Error>> + Send;
    /// `order_send(request)`.
    fn order_send(&mut self, request: TradeRequest) -> impl Future<Output = Result<OrderSendResult, Mt5Error>> + Send;
    /// `copy_rates_range(symbol, timeframe, date_from, date_to)`; `timeframe` is `M1` … `W1`.
    fn copy_rates_range(
        &mut self,
        symbol: &str,
        timeframe: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Rate>, Mt5Error>> + Send;
    /// Since when the terminal's history (its deals and refused orders) is known to be complete: `None` for a real
    /// terminal (its history may be trimmed, so an unknown ticket proves nothing), `Some(t)` for one that keeps
    /// everything since `t`; [`HISTORY_COMPLETE`] (the Unix epoch) means since the account began, so a ticket it
    /// does not know was never one of its positions (lookups answer `not_found`).
    fn history_complete_since(&self) -> Option<DateTime<Utc>> {
        None
    }
    /// An open refused before `order_send` (unknown symbol, no prices: `retcode`, `message`). A real terminal
    /// keeps no trace of it; the paper terminal lists it among its rejected history orders, as its broker refused it.
    fn refused_before_send(&mut self, _request: &TradeRequest, _retcode: u32, _message: &str) {}
    /// The trade server's offset from UTC (seconds) as read from its clock, worth keeping across restarts
    /// (the state file): `None` when not known yet, set by a flag, or the terminal's times are UTC already.
    fn learned_server_offset(&self) -> Option<i64> {
        None
    }
    /// An offset a state file kept ([`learned_server_offset`](Self::learned_server_offset) of an earlier run):
    /// used until the server's own clock shows one (a start while the market is closed).
    fn recall_server_offset(&mut self, _secs: i64) {}
}

/// [`Mt5::history_complete_since`] of a terminal that knows its account's whole history.
pub const HISTORY_COMPLETE: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// A float on the wire (MT5's doubles) as a decimal: the shortest decimal that reads back as the same double.
pub(crate) fn decimal_of(f: f64) -> Option<Decimal> {
    if !f.is_finite() {
        return None;
    }
    Decimal::from_str(&f.to_string()).ok()
}

/// Decimals as JSON numbers (MT5's doubles).
pub(crate) mod float {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.to_f64().unwrap_or(0.0))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let f = f64::deserialize(d)?;
        decimal_of(f).ok_or_else(|| serde::de::Error::custom(format!("{f} is not a usable number")))
    }
}

/// Optional decimals as JSON numbers.
pub(crate) mod float_opt {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.to_f64().unwrap_or(0.0)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(f) => decimal_of(f).map(Some).ok_or_else(|| serde::de::Error::custom(format!("{f} is not a number"))),
        }
    }
}
