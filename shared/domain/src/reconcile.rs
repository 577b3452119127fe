//! Position reconciliation: a pure kernel comparing our books with an MT5 snapshot (design §4, issue 6).
//!
//! [`reconcile`]`(books, snapshot, now) → actions`. The caller (the `reconcile` worker) reads the connection's
//! orders *after* the snapshot arrived, calls this function, and applies every write action as one conditional write
//! on [`Action::expected`] (status, version, ticket), writing [`Action::target`] (version + 1). A write whose
//! condition fails is dropped (something newer happened; the next sweep looks again). Re-running with the same inputs
//! after applying the actions yields nothing (the property tests check it).
//!
//! Rules (learnt from nautilus_trader, hummingbot and freqtrade, `reference/anchors.md` §C):
//!
//! | ours | MT5 evidence | action |
//! |---|---|---|
//! | any | snapshot missing, failed, stale or from the future | [`Action::Skipped`] only — never "flat" |
//! | any | order changed less than `min_age` before the snapshot | nothing (the snapshot may predate its events) |
//! | PENDING (within the ack timeout), CLOSE/MODIFY_PENDING (within it) | — | nothing (in flight) |
//! | UNKNOWN, or PENDING past the ack timeout | position with our ticket or `NT-<id>` comment | [`Action::ResolveOpen`] with the real fill (price, volume, SL/TP) |
//! | same | opening deal and closing deal in history | [`Action::CloseExternally`] (opened and closed while we did not know) |
//! | same | opening deal, no position, no closing deal | [`Action::RequestTargetedCheck`] of that position |
//! | same | history order with our comment rejected/cancelled/expired, no deal | [`Action::ResolveRejected`] (reservation released) |
//! | same | history window covers the order's whole life, no deal, command expired | [`Action::ResolveRejected`] |
//! | same | history covers it but the command has not expired yet | nothing (it may still be delivered) |
//! | same | no history covering the order | [`Action::RequestTargetedCheck`] (history since its creation) |
//! | CLOSE/MODIFY_PENDING past the ack timeout | position still there | [`Action::ResolveOpen`] (back to OPEN with MT5's values) |
//! | OPEN, MODIFY/CLOSE_PENDING, EXTERNAL | position absent, closing deal in history | [`Action::CloseExternally`] at the deal price (CLOSED after our close) |
//! | same | absent, targeted lookup says closed | [`Action::CloseExternally`] at the lookup's deal price |
//! | same | absent, targeted lookup says not found | [`Action::CloseExternally`] at the last known price |
//! | same | absent, no lookup yet | [`Action::RequestTargetedCheck`] of the ticket |
//! | same, connector without lookups ([`ReportEvidence::no_lookups`]) | absent from this complete report *and* from the previous one ([`ReportEvidence::previous`]), both taken at least `min_age` after the order's last change | [`Action::CloseExternally`] at the last known price ([`CloseSource::AbsentFromReports`]): unconfirmed until a deal says otherwise |
//! | OPEN, EXTERNAL | position present, SL/TP or volume differ | [`Action::FollowMt5`] |
//! | CLOSED_EXTERNALLY unconfirmed ([`ReportEvidence::unconfirmed`]) | closing deal (or a lookup's) for its ticket | [`Action::CorrectClose`] with the deal's price and time |
//! | — | position matching no live order of ours | [`Action::AdoptExternal`] with a time-ordered id derived from (connection, ticket, MT5 open time), taking a reservation (counted against the limits) |
//! | anything contradictory | e.g. an OPEN order without ticket, a lookup contradicting history | [`Action::Conflict`] (log + alert, no write) |
//!
//! "Older than the history window" is read as: the history window (deals since the watermark) starts before the
//! order was created, so the whole life of the order is covered; an order created before the window start may have
//! opened *and closed* before it, which is not evidence of "never executed".

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod evidence;

use evidence::set;
pub use evidence::*;

use crate::money::{Lots, Side};
use crate::order::{
    ClientOrderId, ClosedEvidence, OrderEvent, OrderState, OrderStatus, PositionEvidence, Ticket, Transition,
    transition,
};

/// Thresholds of the reconciliation rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// Only orders whose last change is at least this much older than the snapshot are compared.
    pub min_age: TimeDelta,
    /// A PENDING / CLOSE_PENDING / MODIFY_PENDING order without ack for this long is settled by evidence
    /// (`NUSATRADE_ACK_TIMEOUT_SECS`, default 30 s).
    pub ack_timeout: TimeDelta,
    /// The connector refuses a command older than this (the command carries its expiry): after it, absence from a
    /// covering history proves the open never executed.
    pub command_expiry: TimeDelta,
    /// A snapshot older than this (at `now`) is stale and ignored.
    pub max_snapshot_age: TimeDelta,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            min_age: TimeDelta::seconds(10),
            ack_timeout: TimeDelta::seconds(30),
            command_expiry: TimeDelta::seconds(120),
            max_snapshot_age: TimeDelta::seconds(60),
        }
    }
}

/// One order or position of ours on the snapshot's connection, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookOrder {
    /// Order id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Client order id (the MT5 comment is `NT-` + it).
    pub client_order_id: ClientOrderId,
    /// Status, version, ticket.
    pub state: OrderState,
    /// Symbol as sent to the connector.
    pub symbol: String,
    /// Direction.
    pub side: Side,
    /// Volume.
    pub lots: Lots,
    /// Fill price, once known.
    pub open_price: Option<Decimal>,
    /// Stop loss in our books.
    pub stop_loss: Option<Decimal>,
    /// Take profit in our books.
    pub take_profit: Option<Decimal>,
    /// Written at.
    pub created_at: DateTime<Utc>,
    /// Last change (any write, including acks).
    pub updated_at: DateTime<Utc>,
    /// Last known market price of the symbol (close price fallback).
    pub last_price: Option<Decimal>,
}

/// Why an unknown open is declared never executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbsenceEvidence {
    /// MT5 history has the order in a failed final state and no deal.
    HistoryOrder {
        /// The MT5 order.
        ticket: Ticket,
        /// Its final state.
        state: HistoryOrderState,
    },
    /// History since `window_from` (before the order was created) has no deal and no order with its comment, and the
    /// command has expired.
    NotInHistory {
        /// Window start.
        window_from: DateTime<Utc>,
    },
}

/// Where a close price comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseSource {
    /// The closing deal in the snapshot's history.
    Deal(Ticket),
    /// A targeted lookup's closing deal.
    Lookup,
    /// The lookup found nothing: the last known market price.
    LastKnownPrice,
    /// Nothing found and no price known: closed without a price (profit unknown, flagged for audit).
    NoPrice,
    /// A connector without lookups left the ticket out of two consecutive complete positions reports taken after
    /// the order's last change: closed at the last known price (`None`: no price known), unconfirmed.
    AbsentFromReports,
}

impl CloseSource {
    /// The close is not backed by MT5's closing deal (a lookup's deal counts as confirmation).
    pub fn unconfirmed(self) -> bool {
        matches!(self, CloseSource::LastKnownPrice | CloseSource::NoPrice | CloseSource::AbsentFromReports)
    }
}

/// A complete positions report seen before (kept by the caller between runs): when MT5 was read and which position
/// tickets it listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorReport {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Every position ticket it listed.
    pub tickets: BTreeSet<Ticket>,
}

/// What the caller knows besides the snapshot: what the connector can answer, and the complete report before this
/// one. The default (lookups available, no previous report) is [`reconcile`]'s behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportEvidence {
    /// The connector cannot answer targeted lookups or deal history (the original connector): a missing position
    /// is settled by two consecutive complete reports instead.
    pub no_lookups: bool,
    /// The latest complete positions report taken *before* this snapshot (the caller keeps it).
    pub previous: Option<PriorReport>,
    /// Orders closed externally without MT5's closing deal (flagged unconfirmed): a closing deal (or a lookup's) for
    /// their ticket corrects the close ([`Action::CorrectClose`]).
    pub unconfirmed: BTreeSet<Uuid>,
}

/// A write (or request) decided by reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing was compared.
    Skipped(SkipReason),
    /// MT5 has the position: OPEN with the real fill (ticket, open price, volume, SL/TP). Event `ReconciledOpen`.
    ResolveOpen {
        /// Order.
        order_id: Uuid,
        /// The conditional write's guard.
        expected: OrderState,
        /// The state written.
        to: OrderState,
        /// The event validated by [`transition`].
        event: OrderEvent,
        /// MT5's position (write its price, volume, SL, TP into the books).
        position: Mt5Position,
    },
    /// Never executed: REJECTED, reservation released. Event `ReconciledAbsent`.
    ResolveRejected {
        /// Order.
        order_id: Uuid,
        /// Guard.
        expected: OrderState,
        /// The state written.
        to: OrderState,
        /// The event.
        event: OrderEvent,
        /// Why.
        evidence: AbsenceEvidence,
    },
    /// Ask the connector about one position ticket (or, without ticket, for history since `history_since`), then run
    /// again with the answer in [`Mt5Snapshot::lookups`] / [`Mt5Snapshot::history`]. No write.
    RequestTargetedCheck {
        /// Order concerned.
        order_id: Uuid,
        /// Ticket to look up.
        ticket: Option<Ticket>,
        /// History needed from.
        history_since: DateTime<Utc>,
    },
    /// The position is gone: CLOSED_EXTERNALLY (or CLOSED after our own close command). Event `ReconciledClosed`
    /// with a price, else `ReconciledAbsent`.
    CloseExternally {
        /// Order.
        order_id: Uuid,
        /// Guard.
        expected: OrderState,
        /// The state written.
        to: OrderState,
        /// The event.
        event: OrderEvent,
        /// Open price from the opening deal, when the order never knew it.
        open_price: Option<Decimal>,
        /// Close price, if known.
        close_price: Option<Decimal>,
        /// Close time.
        close_time: DateTime<Utc>,
        /// Where the price comes from.
        source: CloseSource,
    },
    /// A position no live order of ours holds: insert an EXTERNAL order (version 0) with a deterministic id, only if
    /// no item with that id exists (conditional put).
    AdoptExternal {
        /// `external_order_id(connection, ticket, open time)`.
        order_id: Uuid,
        /// Owner of the connection.
        user_id: Uuid,
        /// Connection.
        connection_id: Uuid,
        /// The position.
        position: Mt5Position,
        /// Our order whose client id the comment carries, if any (a terminal one: anomaly worth an alert).
        claimed_by: Option<Uuid>,
    },
    /// The position differs from our books in SL/TP (or volume, after a partial close in the terminal): our books
    /// follow MT5. No status change; the write bumps the version.
    FollowMt5 {
        /// Order.
        order_id: Uuid,
        /// Guard.
        expected: OrderState,
        /// Same status and ticket, version + 1.
        to: OrderState,
        /// MT5's SL.
        stop_loss: Option<Decimal>,
        /// MT5's TP.
        take_profit: Option<Decimal>,
        /// MT5's volume.
        lots: Lots,
    },
    /// An order closed externally without a deal (unconfirmed) whose closing deal has now been reported: its close
    /// price and time become the deal's and the flag goes. No status change; the write bumps the version.
    CorrectClose {
        /// Order.
        order_id: Uuid,
        /// Guard.
        expected: OrderState,
        /// Same status and ticket, version + 1.
        to: OrderState,
        /// The deal's price.
        close_price: Decimal,
        /// The deal's time.
        close_time: DateTime<Utc>,
        /// The deal, or [`CloseSource::Lookup`].
        source: CloseSource,
    },
    /// Evidence contradicts our books in a way no rule resolves: log, alert, no write.
    Conflict {
        /// Order (or the adopted id for a position).
        order_id: Uuid,
        /// Ticket involved.
        ticket: Option<Ticket>,
        /// What is wrong.
        reason: String,
    },
}

impl Action {
    /// A short name of the action's kind (metrics, logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Skipped(_) => "skipped",
            Action::ResolveOpen { .. } => "resolve_open",
            Action::ResolveRejected { .. } => "resolve_rejected",
            Action::RequestTargetedCheck { .. } => "targeted_check",
            Action::CloseExternally { .. } => "close_externally",
            Action::AdoptExternal { .. } => "adopt_external",
            Action::FollowMt5 { .. } => "follow_mt5",
            Action::CorrectClose { .. } => "correct_close",
            Action::Conflict { .. } => "conflict",
        }
    }

    /// The order the action concerns (`None` for [`Action::Skipped`]).
    pub fn order_id(&self) -> Option<Uuid> {
        match self {
            Action::Skipped(_) => None,
            Action::ResolveOpen { order_id, .. }
            | Action::ResolveRejected { order_id, .. }
            | Action::RequestTargetedCheck { order_id, .. }
            | Action::CloseExternally { order_id, .. }
            | Action::AdoptExternal { order_id, .. }
            | Action::FollowMt5 { order_id, .. }
            | Action::CorrectClose { order_id, .. }
            | Action::Conflict { order_id, .. } => Some(*order_id),
        }
    }

    /// The guard of the conditional write (`None`: no write, or an insert).
    pub fn expected(&self) -> Option<OrderState> {
        self.transition().map(|(expected, _)| expected)
    }

    /// The state written (for an adoption: EXTERNAL, version 0, the position's ticket).
    pub fn target(&self) -> Option<OrderState> {
        match self {
            Action::AdoptExternal { position, .. } => {
                Some(OrderState { status: OrderStatus::External, version: 0, ticket: Some(position.ticket) })
            }
            _ => self.transition().map(|(_, to)| to),
        }
    }

    /// The guarded update of the actions that move an existing order: (expected, written).
    fn transition(&self) -> Option<(OrderState, OrderState)> {
        match self {
            Action::ResolveOpen { expected, to, .. }
            | Action::ResolveRejected { expected, to, .. }
            | Action::CloseExternally { expected, to, .. }
            | Action::FollowMt5 { expected, to, .. }
            | Action::CorrectClose { expected, to, .. } => Some((*expected, *to)),
            _ => None,
        }
    }

    /// The order event behind the write, if any.
    pub fn event(&self) -> Option<&OrderEvent> {
        match self {
            Action::ResolveOpen { event, .. }
            | Action::ResolveRejected { event, .. }
            | Action::CloseExternally { event, .. } => Some(event),
            _ => None,
        }
    }

    /// Writes something (an audit item and a browser `ORDER_UPDATE` each).
    pub fn is_write(&self) -> bool {
        self.target().is_some()
    }

    /// The write takes one of the user's open-position reservations (same transaction): an adoption, counted
    /// against the limits without being refused by them (the position exists in MT5 either way).
    pub fn takes_reservation(&self) -> bool {
        matches!(self, Action::AdoptExternal { .. })
    }

    /// The write gives back the user's open-position reservation (same transaction).
    pub fn releases_reservation(&self) -> bool {
        match (self.expected(), self.target()) {
            (Some(from), Some(to)) => from.status.holds_reservation() && !to.status.holds_reservation(),
            _ => false,
        }
    }
}

/// The deterministic id of the EXTERNAL order adopting MT5 position `ticket` of `connection_id`: a time-ordered
/// UUIDv7 whose timestamp is the position's MT5 open time (milliseconds; the Unix epoch when the connector sends no
/// time) and whose 74 other bits come from a 128-bit FNV-1a hash of `"nusatrade/external/"`, the connection id and
/// the ticket (big-endian). Stable across runs, processes and releases, so adopting twice targets the same item; and,
/// like every order id, it sorts by time, so newest-first listings place an adopted position by when it was opened.
pub fn external_order_id(connection_id: Uuid, ticket: Ticket, open_time: Option<DateTime<Utc>>) -> Uuid {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    let ticket = ticket.0.to_be_bytes();
    let bytes = b"nusatrade/external/".iter().chain(connection_id.as_bytes()).chain(&ticket);
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    let millis = open_time.map_or(0, |t| t.timestamp_millis().max(0) as u64);
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&h.to_be_bytes()[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid()
}

/// Compares our books with a snapshot (see the module docs for the rules). Pure and deterministic: actions come in
/// the order of the books sorted by (created_at, id), then adoptions by ticket.
pub fn reconcile(books: &[BookOrder], snapshot: &Snapshot, now: DateTime<Utc>, cfg: &ReconcileConfig) -> Vec<Action> {
    reconcile_with(books, snapshot, now, cfg, &ReportEvidence::default())
}

/// [`reconcile`] with what the caller knows of the connector and of its previous complete report (the
/// two-consecutive-reports rule for connectors without lookups).
pub fn reconcile_with(
    books: &[BookOrder],
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    cfg: &ReconcileConfig,
    evidence: &ReportEvidence,
) -> Vec<Action> {
    let snap = match snapshot {
        Snapshot::Missing => return vec![Action::Skipped(SkipReason::Missing)],
        Snapshot::Failed { reason } => return vec![Action::Skipped(SkipReason::Failed(reason.clone()))],
        Snapshot::Received(s) => s,
    };
    if snap.taken_at > now {
        return vec![Action::Skipped(SkipReason::FromTheFuture)];
    }
    let age = now - snap.taken_at;
    if age > cfg.max_snapshot_age {
        return vec![Action::Skipped(SkipReason::Stale { age })];
    }
    Run::new(books, snap, cfg, evidence).run()
}

struct Run<'a> {
    snap: &'a Mt5Snapshot,
    cfg: &'a ReconcileConfig,
    evidence: &'a ReportEvidence,
    books: Vec<&'a BookOrder>,
    positions: BTreeMap<Ticket, &'a Mt5Position>,
    /// Order id → the position it holds in MT5.
    matched: HashMap<Uuid, Ticket>,
    /// Positions held by an order of ours (matched, or left alone because the order is in flight).
    claimed: BTreeSet<Ticket>,
}

impl<'a> Run<'a> {
    fn new(
        books: &'a [BookOrder],
        snap: &'a Mt5Snapshot,
        cfg: &'a ReconcileConfig,
        evidence: &'a ReportEvidence,
    ) -> Run<'a> {
        let mut books: Vec<&BookOrder> = books.iter().collect();
        books.sort_by_key(|o| (o.created_at, o.id));
        let positions = snap.positions.iter().map(|p| (p.ticket, p)).collect();
        let mut run = Run { snap, cfg, evidence, books, positions, matched: HashMap::new(), claimed: BTreeSet::new() };
        run.match_positions();
        run
    }

    fn settled(&self, o: &BookOrder) -> bool {
        o.updated_at + self.cfg.min_age <= self.snap.taken_at
    }

    fn past_ack_timeout(&self, o: &BookOrder) -> bool {
        o.updated_at + self.cfg.ack_timeout <= self.snap.taken_at
    }

    /// An order that may still hold a position (terminal ones whose write is recent too: leave their positions alone
    /// until the snapshot is newer than the write).
    fn may_hold(&self, o: &BookOrder) -> bool {
        !o.state.status.is_terminal() || !self.settled(o)
    }

    /// Matches positions to orders: first by ticket, then by the comment's client id for orders without ticket.
    fn match_positions(&mut self) {
        let by_ticket: Vec<(Uuid, Ticket)> =
            self.books.iter().filter(|o| self.may_hold(o)).filter_map(|o| o.state.ticket.map(|t| (o.id, t))).collect();
        for (id, t) in by_ticket {
            if self.positions.contains_key(&t) && self.claimed.insert(t) {
                self.matched.insert(id, t);
            }
        }
        let mut by_comment: BTreeMap<ClientOrderId, Vec<Ticket>> = BTreeMap::new();
        for p in self.positions.values() {
            if let Some(c) = p.client_order_id() {
                by_comment.entry(c).or_default().push(p.ticket);
            }
        }
        let candidates: Vec<(Uuid, ClientOrderId)> = self
            .books
            .iter()
            .filter(|o| self.may_hold(o) && o.state.ticket.is_none())
            .map(|o| (o.id, o.client_order_id))
            .collect();
        for (id, c) in candidates {
            let free = by_comment.get(&c).and_then(|ts| ts.iter().find(|t| !self.claimed.contains(t)).copied());
            if let Some(t) = free {
                self.claimed.insert(t);
                self.matched.insert(id, t);
            }
        }
    }

    fn run(&self) -> Vec<Action> {
        let mut out = Vec::new();
        for o in &self.books {
            if !self.settled(o) {
                continue;
            }
            if let Some(a) = self.decide(o) {
                out.push(a);
            }
        }
        out.extend(self.adoptions());
        out
    }

    fn decide(&self, o: &BookOrder) -> Option<Action> {
        use OrderStatus as S;
        let position = self.matched.get(&o.id).and_then(|t| self.positions.get(t)).copied();
        match o.state.status {
            S::ClosedExternally if self.evidence.unconfirmed.contains(&o.id) => self.confirm_close(o),
            S::Rejected | S::Closed | S::ClosedExternally => None,
            S::Pending | S::ClosePending | S::ModifyPending if !self.past_ack_timeout(o) => None,
            S::Pending | S::Unknown => match position {
                Some(p) => self.resolve_open(o, p),
                None => self.unresolved_absent(o),
            },
            S::ClosePending | S::ModifyPending => match position {
                Some(p) => self.resolve_open(o, p),
                None => self.position_absent(o),
            },
            S::Open | S::External => match position {
                Some(p) => self.follow(o, p),
                None => self.position_absent(o),
            },
        }
    }

    /// Validates `event` with [`transition`]: the action built from the new state, or a conflict.
    fn write(&self, o: &BookOrder, event: OrderEvent, build: impl FnOnce(OrderState, OrderEvent) -> Action) -> Action {
        match transition(o.state, &event) {
            Ok(Transition::Applied(c)) => build(c.to, event),
            Ok(Transition::Unchanged(why)) => {
                self.conflict(o, o.state.ticket, format!("{} changes nothing ({why:?})", event.name()))
            }
            Err(refused) => self.conflict(o, o.state.ticket, refused.to_string()),
        }
    }

    fn conflict(&self, o: &BookOrder, ticket: Option<Ticket>, reason: String) -> Action {
        Action::Conflict { order_id: o.id, ticket, reason }
    }

    fn resolve_open(&self, o: &BookOrder, p: &Mt5Position) -> Option<Action> {
        let event = OrderEvent::ReconciledOpen(PositionEvidence {
            ticket: p.ticket,
            open_price: p.open_price,
            open_time: p.open_time.unwrap_or(self.snap.taken_at),
        });
        Some(self.write(o, event, |to, event| Action::ResolveOpen {
            order_id: o.id,
            expected: o.state,
            to,
            event,
            position: p.clone(),
        }))
    }

    fn follow(&self, o: &BookOrder, p: &Mt5Position) -> Option<Action> {
        let (sl, tp) = (p.sl(), p.tp());
        if set(o.stop_loss) == sl && set(o.take_profit) == tp && o.lots == p.volume {
            return None;
        }
        let to = OrderState { version: o.state.version + 1, ..o.state };
        Some(Action::FollowMt5 {
            order_id: o.id,
            expected: o.state,
            to,
            stop_loss: sl,
            take_profit: tp,
            lots: p.volume,
        })
    }

    fn history(&self) -> Option<&DealHistory> {
        self.snap.history.as_ref()
    }

    fn closing_deal(&self, position: Ticket) -> Option<&Mt5Deal> {
        self.history()?
            .deals
            .iter()
            .filter(|d| d.position == position && matches!(d.entry, DealEntry::Out | DealEntry::OutBy))
            .max_by_key(|d| (d.time, d.ticket))
    }

    fn lookup(&self, ticket: Ticket) -> Option<&LookupResult> {
        self.snap.lookups.iter().find(|l| l.ticket == ticket).map(|l| &l.result)
    }

    /// UNKNOWN (or PENDING past its timeout) with no position of its own in MT5.
    fn unresolved_absent(&self, o: &BookOrder) -> Option<Action> {
        let comment = o.client_order_id.comment();
        let history = self.history();
        let opening = history.and_then(|h| {
            h.deals
                .iter()
                .filter(|d| matches!(d.entry, DealEntry::In | DealEntry::InOut) && d.comment.trim() == comment)
                .min_by_key(|d| (d.time, d.ticket))
        });
        if let Some(open) = opening {
            // It executed; the position is not open (any more): closed while we did not know.
            return self.closed(o, open.position, Some(open.price), o.created_at);
        }
        if let Some(h) = history {
            let failed = h.orders.iter().filter(|x| x.comment.trim() == comment).find(|x| {
                matches!(
                    x.state,
                    HistoryOrderState::Rejected | HistoryOrderState::Canceled | HistoryOrderState::Expired
                )
            });
            if let Some(f) = failed {
                return self.rejected(o, AbsenceEvidence::HistoryOrder { ticket: f.ticket, state: f.state });
            }
            if h.from <= o.created_at {
                return if o.created_at + self.cfg.command_expiry <= self.snap.taken_at {
                    self.rejected(o, AbsenceEvidence::NotInHistory { window_from: h.from })
                } else {
                    None // The command may still reach MT5.
                };
            }
        }
        Some(Action::RequestTargetedCheck { order_id: o.id, ticket: o.state.ticket, history_since: o.created_at })
    }

    fn rejected(&self, o: &BookOrder, evidence: AbsenceEvidence) -> Option<Action> {
        Some(self.write(o, OrderEvent::ReconciledAbsent, |to, event| Action::ResolveRejected {
            order_id: o.id,
            expected: o.state,
            to,
            event,
            evidence,
        }))
    }

    /// A position-holding order whose position is not in the snapshot.
    fn position_absent(&self, o: &BookOrder) -> Option<Action> {
        let Some(ticket) = o.state.ticket else {
            return Some(self.conflict(o, None, format!("{} order without ticket", o.state.status)));
        };
        self.closed(o, ticket, None, o.updated_at)
    }

    /// Position `ticket` (of order `o`) executed but is not open: close it from history, a lookup, or ask.
    fn closed(
        &self,
        o: &BookOrder,
        ticket: Ticket,
        open_price: Option<Decimal>,
        since: DateTime<Utc>,
    ) -> Option<Action> {
        let (price, time, source) = if let Some(d) = self.closing_deal(ticket) {
            (Some(d.price), d.time, CloseSource::Deal(d.ticket))
        } else {
            match self.lookup(ticket) {
                Some(LookupResult::Closed { price, time }) => (Some(*price), *time, CloseSource::Lookup),
                Some(LookupResult::NotFound) if open_price.is_some() => {
                    return Some(self.conflict(
                        o,
                        Some(ticket),
                        "history has the opening deal, lookup finds nothing".into(),
                    ));
                }
                Some(LookupResult::NotFound) => match o.last_price {
                    Some(p) => (Some(p), self.snap.taken_at, CloseSource::LastKnownPrice),
                    None => (None, self.snap.taken_at, CloseSource::NoPrice),
                },
                // Open according to the lookup but not in the list: inconsistent reads, wait for the next snapshot.
                Some(LookupResult::Open) => return None,
                None if open_price.is_none() && self.absent_twice(o, ticket) => {
                    (o.last_price, self.snap.taken_at, CloseSource::AbsentFromReports)
                }
                None => {
                    return Some(Action::RequestTargetedCheck {
                        order_id: o.id,
                        ticket: Some(ticket),
                        history_since: since,
                    });
                }
            }
        };
        let event = match price {
            Some(close_price) => OrderEvent::ReconciledClosed(ClosedEvidence { ticket, close_price, close_time: time }),
            None => OrderEvent::ReconciledAbsent,
        };
        Some(self.write(o, event, |to, event| Action::CloseExternally {
            order_id: o.id,
            expected: o.state,
            to,
            event,
            open_price,
            close_price: price,
            close_time: time,
            source,
        }))
    }

    /// An unconfirmed external close: MT5's closing deal (or a lookup's) corrects it, if the snapshot has one.
    fn confirm_close(&self, o: &BookOrder) -> Option<Action> {
        let ticket = o.state.ticket?;
        let (close_price, close_time, source) = match (self.closing_deal(ticket), self.lookup(ticket)) {
            (Some(d), _) => (d.price, d.time, CloseSource::Deal(d.ticket)),
            (None, Some(LookupResult::Closed { price, time })) => (*price, *time, CloseSource::Lookup),
            _ => return None,
        };
        let to = OrderState { version: o.state.version + 1, ..o.state };
        Some(Action::CorrectClose { order_id: o.id, expected: o.state, to, close_price, close_time, source })
    }

    /// A connector without lookups: `ticket` is missing from this complete report and from the previous one, both
    /// taken at least `min_age` after the order's last change (this one is, or the order would not be compared).
    fn absent_twice(&self, o: &BookOrder, ticket: Ticket) -> bool {
        let Some(prev) = self.evidence.previous.as_ref().filter(|_| self.evidence.no_lookups) else { return false };
        prev.taken_at < self.snap.taken_at
            && o.updated_at + self.cfg.min_age <= prev.taken_at
            && !prev.tickets.contains(&ticket)
    }

    fn adoptions(&self) -> Vec<Action> {
        let ids: HashMap<Uuid, &BookOrder> = self.books.iter().map(|o| (o.id, *o)).collect();
        let by_client: HashMap<ClientOrderId, Uuid> = self.books.iter().map(|o| (o.client_order_id, o.id)).collect();
        let mut out = Vec::new();
        for (ticket, p) in &self.positions {
            if self.claimed.contains(ticket) {
                continue;
            }
            let order_id = external_order_id(self.snap.connection_id, *ticket, p.open_time);
            if let Some(existing) = ids.get(&order_id) {
                out.push(self.conflict(
                    existing,
                    Some(*ticket),
                    format!("adopted id already {}", existing.state.status),
                ));
                continue;
            }
            let claimed_by = p.client_order_id().map(|c| by_client.get(&c).copied().unwrap_or_else(|| c.to_uuid()));
            out.push(Action::AdoptExternal {
                order_id,
                user_id: self.snap.owner,
                connection_id: self.snap.connection_id,
                position: (*p).clone(),
                claimed_by,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod blind;
