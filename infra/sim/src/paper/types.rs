//! What the paper account takes and gives: requests, fills, deals, positions, account figures and snapshots, and
//! the MT5 return codes it rejects with.

use chrono::{DateTime, Utc};
use nusatrade_domain::instrument::Symbol;
use nusatrade_domain::money::{Currency, Side};
use nusatrade_domain::order::{Retcode, Ticket};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::feed::Tick;

/// 10013 TRADE_RETCODE_INVALID: invalid request (here: unknown symbol).
pub const INVALID: Retcode = Retcode(10013);
/// 10014 TRADE_RETCODE_INVALID_VOLUME.
pub const INVALID_VOLUME: Retcode = Retcode(10014);
/// 10016 TRADE_RETCODE_INVALID_STOPS.
pub const INVALID_STOPS: Retcode = Retcode(10016);
/// 10018 TRADE_RETCODE_MARKET_CLOSED. Not produced by the engine (it has no sessions); for callers that model them.
pub const MARKET_CLOSED: Retcode = Retcode(10018);
/// 10025 TRADE_RETCODE_NO_CHANGES: a modify with the current SL and TP.
pub const NO_CHANGES: Retcode = Retcode(10025);
/// 10036 TRADE_RETCODE_POSITION_CLOSED, used for `"Position <t> not found"`: MT5 has no dedicated code, and an
/// unknown ticket is most often a position already closed (e.g. by its stop).
pub const POSITION_NOT_FOUND: Retcode = Retcode(10036);
/// 10038 TRADE_RETCODE_INVALID_CLOSE_VOLUME: closing more than the position, or leaving less than the minimum.
pub const INVALID_CLOSE_VOLUME: Retcode = Retcode(10038);

/// First position ticket of a new account.
pub const DEFAULT_FIRST_TICKET: u64 = 100_000_001;
/// First deal ticket of a new account.
pub const DEFAULT_FIRST_DEAL: u64 = 200_000_001;

/// A refused request: the MT5 return code and a message in the connector's style.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} (retcode {})", retcode.0)]
pub struct Reject {
    /// MT5 `retcode`.
    pub retcode: Retcode,
    /// Human-readable reason (`"Symbol X not found"`, `"Position 1 not found"`...).
    pub message: String,
}

impl Reject {
    pub(super) fn new(retcode: Retcode, message: impl Into<String>) -> Reject {
        Reject { retcode, message: message.into() }
    }
}

/// A market order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    /// Symbol as sent by the caller (normalised with [`Symbol::parse`]: `eurusd.m` is EURUSD).
    pub symbol: String,
    /// BUY or SELL.
    pub side: Side,
    /// Volume in lots.
    pub lots: Decimal,
    /// Stop loss price; `None` or `0` for none.
    pub stop_loss: Option<Decimal>,
    /// Take profit price; `None` or `0` for none.
    pub take_profit: Option<Decimal>,
    /// Order comment (cut to 31 characters).
    pub comment: String,
    /// Request time: the position's open time.
    pub time: DateTime<Utc>,
}

/// An executed market order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFill {
    /// The new position's ticket.
    pub ticket: Ticket,
    /// The opening deal's ticket.
    pub deal: Ticket,
    /// Fill price.
    pub price: Decimal,
    /// Fill time (the request's).
    pub time: DateTime<Utc>,
}

/// An executed close (full or partial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFill {
    /// The position's ticket.
    pub ticket: Ticket,
    /// The closing deal's ticket.
    pub deal: Ticket,
    /// Volume closed.
    pub lots: Decimal,
    /// Fill price.
    pub price: Decimal,
    /// Realised profit in the account currency (added to the balance).
    pub profit: Decimal,
    /// Fill time (the request's).
    pub time: DateTime<Utc>,
}

/// Why a deal happened (MT5 `DEAL_REASON_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealReason {
    /// A request (open, close).
    Client,
    /// The stop loss was hit.
    StopLoss,
    /// The take profit was hit.
    TakeProfit,
}

/// Whether a deal opens or closes (MT5 `DEAL_ENTRY_IN` / `DEAL_ENTRY_OUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealEntry {
    /// Opens the position.
    In,
    /// Closes the position, fully or partly.
    Out,
}

/// One execution in the account history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// Deal ticket.
    pub ticket: Ticket,
    /// The position it belongs to.
    pub position: Ticket,
    /// Symbol.
    pub symbol: Symbol,
    /// Direction of the deal itself (a closing deal of a BUY position is a SELL).
    pub side: Side,
    /// Opening or closing.
    pub entry: DealEntry,
    /// Volume.
    pub lots: Decimal,
    /// Execution price.
    pub price: Decimal,
    /// Realised profit in the account currency (0 for opening deals).
    pub profit: Decimal,
    /// Execution time.
    pub time: DateTime<Utc>,
    /// Why.
    pub reason: DealReason,
    /// The position's comment.
    pub comment: String,
}

/// A position closed by its stop loss or take profit during [`PaperAccount::on_tick`](super::PaperAccount::on_tick).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedPosition {
    /// Position ticket.
    pub ticket: Ticket,
    /// Closing deal ticket.
    pub deal: Ticket,
    /// Symbol.
    pub symbol: Symbol,
    /// Side of the position.
    pub side: Side,
    /// Volume closed (all of it).
    pub lots: Decimal,
    /// Open price.
    pub open_price: Decimal,
    /// Close price (see the module docs for gaps).
    pub close_price: Decimal,
    /// Realised profit in the account currency.
    pub profit: Decimal,
    /// Tick time.
    pub time: DateTime<Utc>,
    /// [`DealReason::StopLoss`] or [`DealReason::TakeProfit`].
    pub reason: DealReason,
    /// The position's comment.
    pub comment: String,
}

/// An open position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperPosition {
    /// Position ticket.
    pub ticket: Ticket,
    /// Symbol.
    pub symbol: Symbol,
    /// BUY or SELL.
    pub side: Side,
    /// Current volume (less than opened after a partial close).
    pub lots: Decimal,
    /// Open price.
    pub open_price: Decimal,
    /// Open time.
    pub open_time: DateTime<Utc>,
    /// Stop loss, if any.
    pub stop_loss: Option<Decimal>,
    /// Take profit, if any.
    pub take_profit: Option<Decimal>,
    /// Current closing price (bid for BUY, ask for SELL).
    pub current_price: Decimal,
    /// Floating profit in the account currency, at `current_price`, rounded to cents.
    pub profit: Decimal,
    /// Margin held, in the account currency.
    pub margin: Decimal,
    /// Comment (at most 31 characters).
    pub comment: String,
}

/// The account summary (MT5 `AccountInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    /// Account currency.
    pub currency: Currency,
    /// Realised balance.
    pub balance: Decimal,
    /// `balance + profit`.
    pub equity: Decimal,
    /// Margin held by open positions.
    pub margin: Decimal,
    /// `equity − margin`.
    pub free_margin: Decimal,
    /// Floating profit of open positions.
    pub profit: Decimal,
    /// Leverage (1:`leverage`).
    pub leverage: u32,
    /// `equity / margin × 100`, rounded to 2 dp; `None` without margin.
    pub margin_level: Option<Decimal>,
}

/// Everything a [`PaperAccount`](super::PaperAccount) is ([`snapshot`](super::PaperAccount::snapshot),
/// [`restore`](super::PaperAccount::restore)): the simulated connector's state file keeps it across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    /// Account currency.
    pub currency: Currency,
    /// Realised balance.
    pub balance: Decimal,
    /// Leverage (1:`leverage`).
    pub leverage: u32,
    /// The next position ticket.
    pub next_ticket: u64,
    /// The next deal ticket.
    pub next_deal: u64,
    /// Open positions, by ticket.
    pub positions: Vec<PaperPosition>,
    /// The last tick of each symbol, by symbol.
    pub quotes: Vec<Tick>,
    /// The most recent deals, oldest first (the snapshot may keep fewer than the whole history).
    pub deals: Vec<Deal>,
}
