//! The order lifecycle: a pure state machine driven by MT5 acknowledgements and reconciliation evidence
//! (design §3; issue 4 "Order lifecycle"; contract §4.8 for the original's status values).
//!
//! * An order is written `pending` (with its risk reservation) **before** any command is sent.
//! * Only evidence opens it: a success ack (ticket, fill price, fill time) or a reconciliation snapshot that
//!   shows the position. A definitive failure ack rejects it and releases the reservation.
//! * A timeout or a lost connection makes it `unknown` — never failed. `unknown` is resolved only by a late ack
//!   or by reconciliation evidence.
//! * Every applied transition increments the version: the store applies it as one conditional write
//!   (`status = from.status AND version = from.version`), so duplicate, late and out-of-order acks are harmless.
//!
//! Status strings on the wire are lower-case snake_case (`"pending"`, `"open"`, `"close_pending"`...), the same
//! vocabulary as the original's `trades.status` (`"open"`, `"closed"`, `"pending"`, contract §4.8 and §5);
//! upper-case spellings (`"OPEN"`) are accepted on input.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

pub mod command;

pub use command::{Ack, Awaiting, CommandKind, Effect, RequestId};

use crate::instrument::Instrument;
use crate::money::{Conversion, Lots, Money, MoneyError, Side};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Written, reservation held; the open command is being sent or awaits its ack.
    #[serde(alias = "PENDING")]
    Pending,
    /// MT5 confirmed the position (ticket and fill known).
    #[serde(alias = "OPEN")]
    Open,
    /// Definitively not executed (failure ack, not sent, or confirmed absent). Terminal.
    #[serde(alias = "REJECTED")]
    Rejected,
    /// The open command may or may not have executed (timeout, lost connection). Resolved only by evidence.
    #[serde(alias = "UNKNOWN")]
    Unknown,
    /// A close command is in flight.
    #[serde(alias = "CLOSE_PENDING")]
    ClosePending,
    /// Closed by our close command (fill price known, or gone after our close). Terminal.
    #[serde(alias = "CLOSED")]
    Closed,
    /// An SL/TP modification is in flight; the position is open.
    #[serde(alias = "MODIFY_PENDING")]
    ModifyPending,
    /// Closed outside our commands (SL/TP hit, closed in the terminal), learnt by reconciliation. Terminal.
    #[serde(alias = "CLOSED_EXTERNALLY")]
    ClosedExternally,
    /// A position found in MT5 that no order of ours opened, adopted by reconciliation. Read-only to commands.
    #[serde(alias = "EXTERNAL")]
    External,
}

impl OrderStatus {
    /// Every status, for exhaustive tables.
    pub const ALL: [OrderStatus; 9] = [
        OrderStatus::Pending,
        OrderStatus::Open,
        OrderStatus::Rejected,
        OrderStatus::Unknown,
        OrderStatus::ClosePending,
        OrderStatus::Closed,
        OrderStatus::ModifyPending,
        OrderStatus::ClosedExternally,
        OrderStatus::External,
    ];

    /// The wire string (lower-case snake_case).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Open => "open",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Unknown => "unknown",
            OrderStatus::ClosePending => "close_pending",
            OrderStatus::Closed => "closed",
            OrderStatus::ModifyPending => "modify_pending",
            OrderStatus::ClosedExternally => "closed_externally",
            OrderStatus::External => "external",
        }
    }

    /// Parses a status, case-insensitively (for `?status=` filters and stored values).
    pub fn parse(s: &str) -> Option<OrderStatus> {
        let lower = s.trim().to_ascii_lowercase();
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == lower)
    }

    /// No further transition changes it (except refusals and no-ops).
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Rejected | OrderStatus::Closed | OrderStatus::ClosedExternally)
    }

    /// Holds one of the user's open-position reservations (counted against the max-open-positions limit).
    /// Adopted `external` positions count too (issue 6: manual MT5 trades are counted against the limits): the
    /// adoption takes a reservation without the limit's condition — the position exists in MT5 whatever the limit
    /// says — and its close gives it back.
    pub fn holds_reservation(self) -> bool {
        matches!(
            self,
            OrderStatus::Pending
                | OrderStatus::Unknown
                | OrderStatus::Open
                | OrderStatus::ClosePending
                | OrderStatus::ModifyPending
                | OrderStatus::External
        )
    }

    /// Shown as a live position (`GET /trading/positions`).
    pub fn is_position(self) -> bool {
        matches!(
            self,
            OrderStatus::Open | OrderStatus::ClosePending | OrderStatus::ModifyPending | OrderStatus::External
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An MT5 ticket (position / order number), a 64-bit integer on the wire (contract §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ticket(pub u64);

/// An MT5 trade server return code (`MqlTradeResult.retcode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Retcode(pub u32);

/// What a return code says about a trade request (design §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetcodeClass {
    /// Executed or placed (10008 PLACED, 10009 DONE, 10010 DONE_PARTIAL).
    Success,
    /// Never executed because the price moved (requote, price changed, off quotes): a new attempt with a fresh
    /// price is allowed.
    PriceMoved,
    /// Never executed, definitively (invalid request, no money, market closed, limits...). Do not retry as is.
    Rejected,
    /// The outcome is unknown (timeout, connection, processing error, unrecognised code): check the account
    /// before any retry; never treat as failed.
    Unknown,
}

impl RetcodeClass {
    /// The request certainly did not leave / did not execute.
    pub fn never_executed(self) -> bool {
        matches!(self, RetcodeClass::PriceMoved | RetcodeClass::Rejected)
    }
}

impl Retcode {
    /// 10004 TRADE_RETCODE_REQUOTE.
    pub const REQUOTE: Retcode = Retcode(10004);
    /// 10006 TRADE_RETCODE_REJECT.
    pub const REJECT: Retcode = Retcode(10006);
    /// 10008 TRADE_RETCODE_PLACED.
    pub const PLACED: Retcode = Retcode(10008);
    /// 10009 TRADE_RETCODE_DONE.
    pub const DONE: Retcode = Retcode(10009);
    /// 10010 TRADE_RETCODE_DONE_PARTIAL.
    pub const DONE_PARTIAL: Retcode = Retcode(10010);
    /// 10011 TRADE_RETCODE_ERROR (request processing error).
    pub const ERROR: Retcode = Retcode(10011);
    /// 10012 TRADE_RETCODE_TIMEOUT.
    pub const TIMEOUT: Retcode = Retcode(10012);
    /// 10019 TRADE_RETCODE_NO_MONEY.
    pub const NO_MONEY: Retcode = Retcode(10019);
    /// 10020 TRADE_RETCODE_PRICE_CHANGED.
    pub const PRICE_CHANGED: Retcode = Retcode(10020);
    /// 10021 TRADE_RETCODE_PRICE_OFF.
    pub const PRICE_OFF: Retcode = Retcode(10021);
    /// 10031 TRADE_RETCODE_CONNECTION.
    pub const CONNECTION: Retcode = Retcode(10031);

    /// Classifies the code. Known definitive rejections are listed; anything unrecognised is `Unknown`, the safe
    /// side (an order is never assumed failed on a code we do not understand).
    pub fn class(self) -> RetcodeClass {
        match self.0 {
            10008..=10010 => RetcodeClass::Success,
            10004 | 10020 | 10021 => RetcodeClass::PriceMoved,
            10011 | 10012 | 10031 => RetcodeClass::Unknown,
            10006 | 10007 | 10013..=10019 | 10022..=10030 | 10032..=10036 | 10038..=10046 => RetcodeClass::Rejected,
            _ => RetcodeClass::Unknown,
        }
    }

    /// The MQL5 name of the code, when known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            10004 => "REQUOTE",
            10006 => "REJECT",
            10007 => "CANCEL",
            10008 => "PLACED",
            10009 => "DONE",
            10010 => "DONE_PARTIAL",
            10011 => "ERROR",
            10012 => "TIMEOUT",
            10013 => "INVALID",
            10014 => "INVALID_VOLUME",
            10015 => "INVALID_PRICE",
            10016 => "INVALID_STOPS",
            10017 => "TRADE_DISABLED",
            10018 => "MARKET_CLOSED",
            10019 => "NO_MONEY",
            10020 => "PRICE_CHANGED",
            10021 => "PRICE_OFF",
            10022 => "INVALID_EXPIRATION",
            10023 => "ORDER_CHANGED",
            10024 => "TOO_MANY_REQUESTS",
            10025 => "NO_CHANGES",
            10026 => "SERVER_DISABLES_AT",
            10027 => "CLIENT_DISABLES_AT",
            10028 => "LOCKED",
            10029 => "FROZEN",
            10030 => "INVALID_FILL",
            10031 => "CONNECTION",
            10032 => "ONLY_REAL",
            10033 => "LIMIT_ORDERS",
            10034 => "LIMIT_VOLUME",
            10035 => "INVALID_ORDER",
            10036 => "POSITION_CLOSED",
            10038 => "INVALID_CLOSE_VOLUME",
            10039 => "CLOSE_ORDER_EXIST",
            10040 => "LIMIT_POSITIONS",
            10041 => "REJECT_CANCEL",
            10042 => "LONG_ONLY",
            10043 => "SHORT_ONLY",
            10044 => "CLOSE_ONLY",
            10045 => "FIFO_CLOSE",
            10046 => "HEDGE_PROHIBITED",
            _ => return None,
        })
    }
}

/// A fill reported by a success ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// MT5 ticket.
    pub ticket: Ticket,
    /// Execution price.
    pub price: Decimal,
    /// Execution time.
    pub time: DateTime<Utc>,
}

/// A failure reported by an ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// MT5 return code, when the connector sent one. The original connector sends only an error text.
    pub retcode: Option<Retcode>,
    /// Error text (`"Order failed: ..."`, `"Symbol X not found"`...).
    pub message: String,
}

impl Failure {
    /// What the failure means: a failure without a code is an explicit, definitive failure from the connector;
    /// with a code, the code's class — and a "success" code in a failure ack is contradictory, so `Unknown`.
    pub fn class(&self) -> RetcodeClass {
        match self.retcode.map(Retcode::class) {
            None => RetcodeClass::Rejected,
            Some(RetcodeClass::Success) => RetcodeClass::Unknown,
            Some(c) => c,
        }
    }

    fn definitive(&self) -> bool {
        self.class().never_executed()
    }
}

/// An MT5 position carrying our client order id, seen by reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionEvidence {
    /// Position ticket.
    pub ticket: Ticket,
    /// Open price.
    pub open_price: Decimal,
    /// Open time.
    pub open_time: DateTime<Utc>,
}

/// Deals showing a position of ours opened and closed, seen by reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedEvidence {
    /// Position ticket.
    pub ticket: Ticket,
    /// Close price.
    pub close_price: Decimal,
    /// Close time.
    pub close_time: DateTime<Utc>,
}

/// Something that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// Success ack of the open command (`TRADE_RESULT success=true`).
    OpenFilled(Fill),
    /// Failure ack of the open command. A definitive failure rejects; an unknown-class one makes it unknown.
    OpenFailed(Failure),
    /// The open command could not be handed to any connector (gone / none online): it never left.
    NotSent {
        /// Why (`"Connector is not online"`...).
        reason: String,
    },
    /// No ack in time, or the push outcome is unknown.
    OpenTimedOut,
    /// The user asked to close the position.
    CloseRequested,
    /// Success ack of the close command.
    CloseFilled {
        /// Close price.
        price: Decimal,
        /// Close time.
        time: DateTime<Utc>,
    },
    /// Failure ack of the close command (also used when the close could not be sent).
    CloseFailed(Failure),
    /// No ack in time for the close command.
    CloseTimedOut,
    /// The user asked to change SL/TP.
    ModifyRequested,
    /// Success ack of the modify command.
    ModifyAcked,
    /// Failure ack of the modify command (also used when it could not be sent).
    ModifyFailed(Failure),
    /// No ack in time for the modify command.
    ModifyTimedOut,
    /// Reconciliation: MT5 has an open position with our client order id.
    ReconciledOpen(PositionEvidence),
    /// Reconciliation: deals show the position opened and closed.
    ReconciledClosed(ClosedEvidence),
    /// Reconciliation: confirmed (snapshot + targeted lookup) that MT5 has neither a position nor a deal for it.
    ReconciledAbsent,
}

impl OrderEvent {
    /// A short name for logs and refusals.
    pub fn name(&self) -> &'static str {
        match self {
            OrderEvent::OpenFilled(_) => "open_filled",
            OrderEvent::OpenFailed(_) => "open_failed",
            OrderEvent::NotSent { .. } => "not_sent",
            OrderEvent::OpenTimedOut => "open_timed_out",
            OrderEvent::CloseRequested => "close_requested",
            OrderEvent::CloseFilled { .. } => "close_filled",
            OrderEvent::CloseFailed(_) => "close_failed",
            OrderEvent::CloseTimedOut => "close_timed_out",
            OrderEvent::ModifyRequested => "modify_requested",
            OrderEvent::ModifyAcked => "modify_acked",
            OrderEvent::ModifyFailed(_) => "modify_failed",
            OrderEvent::ModifyTimedOut => "modify_timed_out",
            OrderEvent::ReconciledOpen(_) => "reconciled_open",
            OrderEvent::ReconciledClosed(_) => "reconciled_closed",
            OrderEvent::ReconciledAbsent => "reconciled_absent",
        }
    }
}

/// The part of an order the state machine decides on: its status, its version and (once known) its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderState {
    /// Current status.
    pub status: OrderStatus,
    /// Version, incremented by every applied transition (the conditional-write guard).
    pub version: u64,
    /// MT5 ticket once known.
    pub ticket: Option<Ticket>,
}

impl OrderState {
    /// A new order, as first written: `pending`, version 0.
    pub fn new_pending() -> OrderState {
        OrderState { status: OrderStatus::Pending, version: 0, ticket: None }
    }
}

/// An applied transition: write `to` on condition that the stored state still equals `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The state the write is conditioned on.
    pub from: OrderState,
    /// The state to write (`version = from.version + 1`).
    pub to: OrderState,
}

impl Change {
    /// The transition gives back the user's open-position reservation (write it in the same transaction).
    pub fn releases_reservation(&self) -> bool {
        self.from.status.holds_reservation() && !self.to.status.holds_reservation()
    }
}

/// Why an event changed nothing (no write, nothing to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoOp {
    /// The event repeats one already applied (duplicate ack, repeated request).
    Duplicate,
    /// The event is late: the order has moved on (a timeout after the ack, an ack after a later state).
    Stale,
    /// The event keeps the order where it is (e.g. a timeout while a command is in flight).
    StillInFlight,
}

/// The outcome of [`transition`] when the event is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Write this change (one conditional write).
    Applied(Change),
    /// Nothing to do.
    Unchanged(NoOp),
}

/// An event the order cannot accept in its state. Nothing is written; the HTTP layer maps request refusals to
/// 409/422 and ack refusals are logged as anomalies for reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refused {
    /// The order has no open position yet (or never had one).
    #[error("order is {status}: no open position to {action}")]
    NotOpen { status: OrderStatus, action: &'static str },
    /// Another command is in flight.
    #[error("order is {status}: wait for the command in flight before {action}")]
    InFlight { status: OrderStatus, action: &'static str },
    /// The order is finished.
    #[error("order is already {status}")]
    Terminal { status: OrderStatus },
    /// The event contradicts what is known (e.g. a success after a definitive rejection, another ticket).
    #[error("{event} contradicts an order that is {status}")]
    Conflict { status: OrderStatus, event: &'static str },
    /// Adopted external positions are not driven by our commands.
    #[error("external positions cannot be {action} through orders")]
    External { action: &'static str },
    /// The ack or request comes from a user who does not own the order.
    #[error("order belongs to another user")]
    NotOwner,
}

/// Refuses an ack or request for an order owned by someone else (design §3: "an ack for another user's order is
/// refused"). The HTTP layer answers 404, not 403, to avoid leaking existence.
pub fn check_owner(order_owner: Uuid, actor: Uuid) -> Result<(), Refused> {
    if order_owner == actor { Ok(()) } else { Err(Refused::NotOwner) }
}

/// Decides what an event does to an order (see the module docs and the table tests for every pair).
pub fn transition(state: OrderState, event: &OrderEvent) -> Result<Transition, Refused> {
    use OrderEvent as E;
    use OrderStatus as S;

    let go = |to: OrderStatus, ticket: Option<Ticket>| {
        Ok(Transition::Applied(Change {
            from: state,
            to: OrderState { status: to, version: state.version + 1, ticket: ticket.or(state.ticket) },
        }))
    };
    let noop = |why| Ok(Transition::Unchanged(why));
    let conflict = || Err(Refused::Conflict { status: state.status, event: event.name() });
    let same_ticket = |t: Ticket| state.ticket.is_none_or(|mine| mine == t);
    let st = state.status;

    match (st, event) {
        // External positions: only reconciliation drives them.
        (S::External, E::ReconciledOpen(_)) => noop(NoOp::Duplicate),
        (S::External, E::ReconciledClosed(c)) => go(S::ClosedExternally, Some(c.ticket)),
        (S::External, E::ReconciledAbsent) => go(S::ClosedExternally, None),
        (S::External, E::CloseRequested | E::CloseFilled { .. } | E::CloseFailed(_) | E::CloseTimedOut) => {
            Err(Refused::External { action: "closed" })
        }
        (S::External, _) => Err(Refused::External { action: "opened or modified" }),

        // --- The open command's outcome.
        (S::Pending | S::Unknown, E::OpenFilled(f)) => go(S::Open, Some(f.ticket)),
        (S::Open | S::ClosePending | S::ModifyPending | S::Closed | S::ClosedExternally, E::OpenFilled(f)) => {
            if same_ticket(f.ticket) {
                noop(NoOp::Duplicate)
            } else {
                conflict()
            }
        }
        (S::Rejected, E::OpenFilled(_)) => conflict(),

        (S::Pending | S::Unknown, E::OpenFailed(f)) if f.definitive() => go(S::Rejected, None),
        (S::Pending, E::OpenFailed(_)) => go(S::Unknown, None),
        (S::Unknown, E::OpenFailed(_)) => noop(NoOp::StillInFlight),
        (S::Rejected, E::OpenFailed(_)) => noop(NoOp::Duplicate),
        (_, E::OpenFailed(_)) => conflict(),

        (S::Pending, E::NotSent { .. }) => go(S::Rejected, None),
        // Once unknown, an earlier attempt may have executed: a later "not sent" proves nothing.
        (S::Unknown, E::NotSent { .. }) => noop(NoOp::StillInFlight),
        (_, E::NotSent { .. }) => noop(NoOp::Stale),

        (S::Pending, E::OpenTimedOut) => go(S::Unknown, None),
        (S::Unknown, E::OpenTimedOut) => noop(NoOp::Duplicate),
        (_, E::OpenTimedOut) => noop(NoOp::Stale),

        // --- Requests.
        (S::Open, E::CloseRequested) => go(S::ClosePending, None),
        (S::Open, E::ModifyRequested) => go(S::ModifyPending, None),
        (S::ClosePending, E::CloseRequested) => noop(NoOp::Duplicate),
        (S::ClosePending, E::ModifyRequested) => Err(Refused::InFlight { status: st, action: "modifying" }),
        (S::ModifyPending, E::CloseRequested) => Err(Refused::InFlight { status: st, action: "closing" }),
        (S::ModifyPending, E::ModifyRequested) => Err(Refused::InFlight { status: st, action: "modifying" }),
        (S::Pending | S::Unknown | S::Rejected, E::CloseRequested) => {
            Err(Refused::NotOpen { status: st, action: "close" })
        }
        (S::Pending | S::Unknown | S::Rejected, E::ModifyRequested) => {
            Err(Refused::NotOpen { status: st, action: "modify" })
        }
        (S::Closed | S::ClosedExternally, E::CloseRequested | E::ModifyRequested) => {
            Err(Refused::Terminal { status: st })
        }

        // --- Close and modify acks before any position existed: no such command was ever sent.
        (
            S::Pending | S::Unknown | S::Rejected,
            E::CloseFilled { .. }
            | E::CloseFailed(_)
            | E::CloseTimedOut
            | E::ModifyAcked
            | E::ModifyFailed(_)
            | E::ModifyTimedOut,
        ) => Err(Refused::NotOpen { status: st, action: "acknowledge" }),

        // --- Close outcome. A close fill is evidence the position is gone, whatever we thought.
        (S::ClosePending | S::Open | S::ModifyPending, E::CloseFilled { .. }) => go(S::Closed, None),
        (S::Closed | S::ClosedExternally, E::CloseFilled { .. }) => noop(NoOp::Duplicate),
        (S::ClosePending, E::CloseFailed(f)) if f.definitive() => go(S::Open, None),
        (S::ClosePending, E::CloseFailed(_) | E::CloseTimedOut) => noop(NoOp::StillInFlight),
        (S::Open | S::ModifyPending | S::Closed | S::ClosedExternally, E::CloseFailed(_) | E::CloseTimedOut) => {
            noop(NoOp::Stale)
        }

        // --- Modify outcome.
        (S::ModifyPending, E::ModifyAcked) => go(S::Open, None),
        (S::ModifyPending, E::ModifyFailed(f)) if f.definitive() => go(S::Open, None),
        (S::ModifyPending, E::ModifyFailed(_) | E::ModifyTimedOut) => noop(NoOp::StillInFlight),
        (S::Open, E::ModifyAcked | E::ModifyFailed(_)) => noop(NoOp::Duplicate),
        (
            S::Open | S::ClosePending | S::Closed | S::ClosedExternally,
            E::ModifyAcked | E::ModifyFailed(_) | E::ModifyTimedOut,
        ) => noop(NoOp::Stale),

        // --- Reconciliation evidence.
        (S::Pending | S::Unknown, E::ReconciledOpen(p)) => go(S::Open, Some(p.ticket)),
        (S::Open, E::ReconciledOpen(p)) => {
            if same_ticket(p.ticket) {
                noop(NoOp::Duplicate)
            } else {
                conflict()
            }
        }
        // The position is still there: the in-flight close/modify did not (or no longer needs to) happen.
        (S::ClosePending | S::ModifyPending, E::ReconciledOpen(p)) => {
            if same_ticket(p.ticket) {
                go(S::Open, None)
            } else {
                conflict()
            }
        }
        (S::Rejected | S::Closed | S::ClosedExternally, E::ReconciledOpen(_)) => conflict(),

        (S::ClosePending, E::ReconciledClosed(c)) => go(S::Closed, Some(c.ticket)),
        (S::Pending | S::Unknown | S::Open | S::ModifyPending, E::ReconciledClosed(c)) => {
            if same_ticket(c.ticket) {
                go(S::ClosedExternally, Some(c.ticket))
            } else {
                conflict()
            }
        }
        (S::Closed | S::ClosedExternally, E::ReconciledClosed(_)) => noop(NoOp::Duplicate),
        (S::Rejected, E::ReconciledClosed(_)) => conflict(),

        (S::Pending | S::Unknown, E::ReconciledAbsent) => go(S::Rejected, None),
        (S::ClosePending, E::ReconciledAbsent) => go(S::Closed, None),
        (S::Open | S::ModifyPending, E::ReconciledAbsent) => go(S::ClosedExternally, None),
        (S::Rejected | S::Closed | S::ClosedExternally, E::ReconciledAbsent) => noop(NoOp::Duplicate),
    }
}

/// A stop loss or take profit on the wrong side of the entry, or not a positive price. Messages are the original's
/// (contract §2.4 `POST /trading/orders` validation step 4), answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StopsError {
    /// SL ≤ 0.
    #[error("Stop loss must be positive")]
    StopLossNotPositive,
    /// SL not strictly on the losing side of the entry.
    #[error("Stop loss for {} order must be {} entry price", .0.as_str(), if matches!(.0, Side::Buy) { "below" } else { "above" })]
    StopLossWrongSide(Side),
    /// TP ≤ 0.
    #[error("Take profit must be positive")]
    TakeProfitNotPositive,
    /// TP not strictly on the winning side of the entry.
    #[error("Take profit for {} order must be {} entry price", .0.as_str(), if matches!(.0, Side::Buy) { "above" } else { "below" })]
    TakeProfitWrongSide(Side),
}

/// Checks SL/TP against the entry (or reference) price: BUY needs SL < price < TP, SELL needs TP < price < SL.
/// Absent values are fine. Order of checks as in the original.
pub fn validate_stops(
    side: Side,
    price: Decimal,
    stop_loss: Option<Decimal>,
    take_profit: Option<Decimal>,
) -> Result<(), StopsError> {
    let sign = side.sign();
    if let Some(sl) = stop_loss {
        if sl <= Decimal::ZERO {
            return Err(StopsError::StopLossNotPositive);
        }
        if sign * (price - sl) <= Decimal::ZERO {
            return Err(StopsError::StopLossWrongSide(side));
        }
    }
    if let Some(tp) = take_profit {
        if tp <= Decimal::ZERO {
            return Err(StopsError::TakeProfitNotPositive);
        }
        if sign * (tp - price) <= Decimal::ZERO {
            return Err(StopsError::TakeProfitWrongSide(side));
        }
    }
    Ok(())
}

/// The `price` the original dashboard sends on a market order when its chart has no price under the mouse.
///
/// On a market order `price` is the trader's reference: it bounds slippage (an order whose price is further from
/// the last reported market price than the configured deviation is refused) and SL/TP sides are checked against
/// it. Exactly this value, when it is not a plausible price (outside the deviation band of the last reported
/// price), means "no reference": the order goes ahead at the market with the last reported price as its
/// reference. Without any reported price it cannot be told from a real one and is kept, but SL/TP sides are then
/// left to MT5 (which refuses invalid stops) instead of being checked against it.
pub const MARKET_PRICE_PLACEHOLDER: Decimal = Decimal::ONE;

/// Realised profit of a closed position in the account currency, from the fill prices (contract §4.3 with real
/// specs): `(close − open) × side × lots × contract_size`, in the quote currency, converted with
/// `quote_to_account` (use the rate at close; [`Instrument::quote_to_account`] derives it from the close price when
/// the account is in the base currency), rounded to cents half away from zero (the original's `NUMERIC(20,2)`).
pub fn closed_profit(
    instrument: &Instrument,
    side: Side,
    lots: Lots,
    open_price: Decimal,
    close_price: Decimal,
    quote_to_account: &Conversion,
) -> Result<Money, MoneyError> {
    let in_quote = (close_price - open_price)
        .checked_mul(side.sign())
        .and_then(|x| x.checked_mul(lots.value()))
        .and_then(|x| x.checked_mul(instrument.contract_size))
        .ok_or(MoneyError::Overflow)?;
    Ok(Money::new(quote_to_account.apply(in_quote)?, quote_to_account.to()).round_cents())
}

/// Prefix of the MT5 comment that carries a client order id.
pub const CLIENT_ORDER_ID_PREFIX: &str = "NT-";

/// Maximum length of an MT5 order comment (`MqlTradeRequest.comment`, 31 characters).
pub const MT5_COMMENT_MAX_LEN: usize = 31;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CLIENT_ID_LEN: usize = 22;

/// A server-generated client order id: the order's UUID in base62, fixed 22 characters (62^22 > 2^128).
///
/// Deterministic and reversible, so reconciliation can map an MT5 comment (`NT-` + id, 25 characters, within the
/// 31-character comment limit) straight back to the order (design §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientOrderId([u8; CLIENT_ID_LEN]);

impl ClientOrderId {
    /// The id of an order.
    pub fn from_uuid(id: Uuid) -> ClientOrderId {
        let mut n = id.as_u128();
        let mut out = [b'0'; CLIENT_ID_LEN];
        for slot in out.iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        ClientOrderId(out)
    }

    /// The order UUID back.
    pub fn to_uuid(&self) -> Uuid {
        let n = self.0.iter().fold(0u128, |acc, c| acc * 62 + digit(*c).unwrap_or(0) as u128);
        Uuid::from_u128(n)
    }

    /// Parses a 22-character base62 id (rejects values beyond 128 bits).
    pub fn parse(s: &str) -> Option<ClientOrderId> {
        let b = s.as_bytes();
        if b.len() != CLIENT_ID_LEN {
            return None;
        }
        let mut n: u128 = 0;
        for c in b {
            n = n.checked_mul(62)?.checked_add(digit(*c)? as u128)?;
        }
        let id = ClientOrderId::from_uuid(Uuid::from_u128(n));
        (id.as_str() == s).then_some(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The MT5 comment: `NT-` + id.
    pub fn comment(&self) -> String {
        format!("{CLIENT_ORDER_ID_PREFIX}{}", self.as_str())
    }

    /// Reads a client order id back from an MT5 comment (leading/trailing whitespace ignored).
    pub fn from_comment(comment: &str) -> Option<ClientOrderId> {
        comment.trim().strip_prefix(CLIENT_ORDER_ID_PREFIX).and_then(ClientOrderId::parse)
    }
}

fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ClientOrderId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ClientOrderId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ClientOrderId::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid client order id"))
    }
}

#[cfg(test)]
mod tests;
