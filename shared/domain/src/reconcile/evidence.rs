//! What MT5 reports, as the reconciliation kernel reads it: open positions, deals, history orders, ticket lookups
//! and the snapshot that carries them (or why there is none to use).

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::{Lots, Side};
use crate::order::{ClientOrderId, Ticket};

/// An open MT5 position (`SYNC_RESPONSE.positions[]`, contract §3.2.1, plus `comment` and `time`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mt5Position {
    /// Position ticket.
    pub ticket: Ticket,
    /// Broker symbol.
    pub symbol: String,
    /// Direction (`type` 0 = BUY, 1 = SELL).
    pub side: Side,
    /// Volume in lots.
    pub volume: Lots,
    /// Open price (`price`).
    pub open_price: Decimal,
    /// Open time, when the connector sends it.
    pub open_time: Option<DateTime<Utc>>,
    /// Stop loss; MT5's `0.0` means none (normalised by [`Mt5Position::sl`]).
    pub stop_loss: Option<Decimal>,
    /// Take profit; `0.0` means none.
    pub take_profit: Option<Decimal>,
    /// Position comment (`NT-<client order id>` for ours).
    pub comment: String,
}

impl Mt5Position {
    /// Our client order id, if the comment carries one.
    pub fn client_order_id(&self) -> Option<ClientOrderId> {
        ClientOrderId::from_comment(&self.comment)
    }

    /// Stop loss, `None` when unset (MT5 reports `0.0`).
    pub fn sl(&self) -> Option<Decimal> {
        set(self.stop_loss)
    }

    /// Take profit, `None` when unset.
    pub fn tp(&self) -> Option<Decimal> {
        set(self.take_profit)
    }
}

pub(super) fn set(v: Option<Decimal>) -> Option<Decimal> {
    v.filter(|x| !x.is_zero())
}

/// Direction of a deal relative to its position (`DEAL_ENTRY_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealEntry {
    /// Opens (or adds to) the position.
    In,
    /// Closes (part of) the position.
    Out,
    /// Reversal.
    InOut,
    /// Closed by an opposite position.
    OutBy,
}

/// A deal from MT5 history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mt5Deal {
    /// Deal ticket.
    pub ticket: Ticket,
    /// Position the deal belongs to (`DEAL_POSITION_ID`).
    pub position: Ticket,
    /// Entry direction.
    pub entry: DealEntry,
    /// Execution price.
    pub price: Decimal,
    /// Volume.
    pub volume: Lots,
    /// Execution time.
    pub time: DateTime<Utc>,
    /// Deal comment (the opening deal carries `NT-<id>` for ours; brokers rewrite closing comments).
    pub comment: String,
}

/// Final state of a history order (`ORDER_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryOrderState {
    /// Filled (look for its deal).
    Filled,
    /// Rejected by the server.
    Rejected,
    /// Cancelled.
    Canceled,
    /// Expired.
    Expired,
}

/// An order from MT5 history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mt5HistoryOrder {
    /// Order ticket.
    pub ticket: Ticket,
    /// Final state.
    pub state: HistoryOrderState,
    /// Time of the final state.
    pub time: DateTime<Utc>,
    /// Comment.
    pub comment: String,
}

/// Deals and orders since a watermark, up to the snapshot time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealHistory {
    /// Window start: every deal and order from then until `taken_at` is listed.
    pub from: DateTime<Utc>,
    /// Deals.
    pub deals: Vec<Mt5Deal>,
    /// History orders.
    pub orders: Vec<Mt5HistoryOrder>,
}

/// The answer to a [`Action::RequestTargetedCheck`] of a ticket (`PositionSelectByTicket` + `HistorySelectByPosition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketLookup {
    /// The position ticket looked up.
    pub ticket: Ticket,
    /// What MT5 said.
    pub result: LookupResult,
}

/// What a targeted lookup found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LookupResult {
    /// The position is open.
    Open,
    /// The position is closed; its closing deal.
    Closed {
        /// Close price.
        price: Decimal,
        /// Close time.
        time: DateTime<Utc>,
    },
    /// Neither a position nor any deal with this ticket.
    NotFound,
}

/// A snapshot that arrived, for one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mt5Snapshot {
    /// The broker connection.
    pub connection_id: Uuid,
    /// The connection's owner (adopted positions are theirs).
    pub owner: Uuid,
    /// When MT5 was read (stamped by the server on receipt).
    pub taken_at: DateTime<Utc>,
    /// Every open position of the account.
    pub positions: Vec<Mt5Position>,
    /// Deals/orders since the watermark, if requested and delivered.
    pub history: Option<DealHistory>,
    /// Answers to targeted lookups requested by the previous run.
    pub lookups: Vec<TicketLookup>,
}

/// What the worker got when it asked the connector for a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Snapshot {
    /// No reply (connector offline, timeout).
    Missing,
    /// The connector answered with an error (MT5 disconnected, `ERROR` message...).
    Failed {
        /// The error.
        reason: String,
    },
    /// A snapshot.
    Received(Mt5Snapshot),
}

/// Why a run did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// No snapshot.
    Missing,
    /// The snapshot request failed.
    Failed(String),
    /// The snapshot is older than `max_snapshot_age`.
    Stale {
        /// Its age at `now`.
        age: TimeDelta,
    },
    /// The snapshot claims to be from after `now` (clock problem).
    FromTheFuture,
}
