//! The commands an order sends to MT5 and what their acknowledgements mean for it: the request id that names a
//! command (`<order id>` for the open, `<order id>:close:<n>` / `<order id>:modify:<n>` for the others, `n` the order
//! version that issued it), the state-machine event of an ack or a timeout, which command an order still waits for,
//! and the fields a transition writes beside its status, version and ticket ([`Effect`]).
//!
//! The connector protocol parses a `TRADE_RESULT` into an [`Ack`]; reconciliation and the order use cases apply the
//! resulting [`OrderEvent`] the same way (one conditional write of the order).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Failure, Fill, OrderEvent, OrderStatus, Retcode, Ticket};

/// Longest `request_id` accepted from a connector.
pub const MAX_REQUEST_ID: usize = 128;

/// Which command of an order a request id belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandKind {
    Open,
    Close,
    Modify,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Open => "open",
            CommandKind::Close => "close",
            CommandKind::Modify => "modify",
        }
    }
}

/// A command's `request_id`: the order id, plus the command kind and sequence for close/modify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId {
    pub order_id: Uuid,
    pub kind: CommandKind,
    /// The order version that issued the command (0 for the open command).
    pub seq: u64,
}

impl RequestId {
    pub fn open(order_id: Uuid) -> Self {
        RequestId { order_id, kind: CommandKind::Open, seq: 0 }
    }
    pub fn close(order_id: Uuid, seq: u64) -> Self {
        RequestId { order_id, kind: CommandKind::Close, seq }
    }
    pub fn modify(order_id: Uuid, seq: u64) -> Self {
        RequestId { order_id, kind: CommandKind::Modify, seq }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            CommandKind::Open => write!(f, "{}", self.order_id),
            k => write!(f, "{}:{}:{}", self.order_id, k.as_str(), self.seq),
        }
    }
}

impl FromStr for RequestId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_REQUEST_ID {
            return Err(());
        }
        let mut parts = s.split(':');
        let id = Uuid::try_parse(parts.next().ok_or(())?).map_err(|_| ())?;
        match (parts.next(), parts.next(), parts.next()) {
            (None, None, None) => Ok(RequestId::open(id)),
            (Some(kind), Some(seq), None) => {
                let seq: u64 = seq.parse().map_err(|_| ())?;
                match kind {
                    "close" => Ok(RequestId::close(id, seq)),
                    "modify" => Ok(RequestId::modify(id, seq)),
                    _ => Err(()),
                }
            }
            _ => Err(()),
        }
    }
}

/// What the order itself tells about a command's acknowledgement (the parts of the order an ack is read against).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Awaiting {
    pub status: OrderStatus,
    /// The version that issued the close/modify command in flight.
    pub command_seq: u64,
    /// The price the client quoted (stands in for an open fill price the ack does not carry).
    pub requested_price: Decimal,
    /// The last known price (stands in for a close price the ack does not carry).
    pub current_price: Option<Decimal>,
}

/// A `TRADE_RESULT` in the order's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub success: bool,
    pub ticket: Option<Ticket>,
    /// Fill price (open) or close price (close).
    pub price: Option<Decimal>,
    pub retcode: Option<Retcode>,
    pub error: Option<String>,
    /// Execution time reported by the connector.
    pub time: Option<DateTime<Utc>>,
}

/// Whether an order still waits for the command `rid` names (a later command makes an earlier one's ack stale).
pub fn waits_for(order: &Awaiting, rid: RequestId) -> bool {
    use OrderStatus as S;
    match rid.kind {
        CommandKind::Open => matches!(order.status, S::Pending | S::Unknown),
        CommandKind::Close => order.status == S::ClosePending && order.command_seq == rid.seq,
        CommandKind::Modify => order.status == S::ModifyPending && order.command_seq == rid.seq,
    }
}

/// What becomes of a command still unacknowledged when the connector comes back after its link dropped (design
/// §5b). Whether it executed is unknown: MT5 may hold its fill while the ack was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redelivery {
    /// Sent again, verbatim (same request id).
    Resend,
    /// Not sent again; the order takes this event (if any) and waits for evidence: a late ack, reconciliation.
    Withhold(Option<OrderEvent>),
}

/// The delivery rule per command kind, for a connector that de-duplicates by request id (`dedupes`) or not (the
/// original connector):
///
/// * **open** — re-sent only when the connector de-duplicates (it answers the repeat with its first result). To any
///   other connector a repeated `TRADE_OPEN` is a second market order: a second fill, an orphaned MT5 position. So it
///   is withheld, the order becomes `unknown` (`OpenTimedOut`) and waits for evidence — never auto-retry a
///   non-idempotent place.
/// * **close** — re-sent to any connector: a close names the position's ticket and its whole volume (our closes are
///   never partial), so once one executed the ticket is gone and MT5 refuses a repeat ("position not found"); the
///   refusal of a close in flight changes nothing (`close_pending` stays until evidence). A partial close would not be
///   harmless and must not be added without revisiting this rule.
/// * **modify** — re-sent to any connector: it sets absolute stop-loss / take-profit prices on a ticket, so a repeat
///   sets the same values (MT5 answers "no changes" at worst, which leaves `modify_pending` until evidence).
pub fn redelivery(kind: CommandKind, dedupes: bool) -> Redelivery {
    match kind {
        CommandKind::Open if !dedupes => Redelivery::Withhold(Some(OrderEvent::OpenTimedOut)),
        CommandKind::Open | CommandKind::Close | CommandKind::Modify => Redelivery::Resend,
    }
}

/// The state-machine event of an ack for an order (`None`: stale before the state machine looks, e.g. the ack of
/// an older close/modify command). `now` stands in for an execution time the ack does not carry.
pub fn ack_event(order: &Awaiting, rid: RequestId, ack: &Ack, now: DateTime<Utc>) -> Option<OrderEvent> {
    let failure =
        || Failure { retcode: ack.retcode, message: ack.error.clone().unwrap_or_else(|| "Unknown error".to_owned()) };
    let time = ack.time.unwrap_or(now);
    match rid.kind {
        CommandKind::Open => Some(match (ack.success, ack.ticket) {
            (true, Some(ticket)) => {
                OrderEvent::OpenFilled(Fill { ticket, price: ack.price.unwrap_or(order.requested_price), time })
            }
            // "Success" without a ticket proves nothing: unknown until reconciliation finds the position.
            (true, None) => OrderEvent::OpenFailed(Failure {
                retcode: Some(Retcode::ERROR),
                message: "success reported without a ticket".into(),
            }),
            (false, _) => OrderEvent::OpenFailed(failure()),
        }),
        _ if rid.seq != order.command_seq => None,
        CommandKind::Close if ack.success => Some(OrderEvent::CloseFilled {
            price: ack.price.or(order.current_price).unwrap_or(order.requested_price),
            time,
        }),
        // "No such position" does not say our close failed: MT5 no longer holds the position (our close executed and
        // its ack was lost — then this answers a resend — or a stop closed it). Never back to `open`: the order stays
        // `close_pending` until evidence says at what price it closed.
        CommandKind::Close if position_gone(ack) => Some(OrderEvent::CloseTimedOut),
        CommandKind::Close => Some(OrderEvent::CloseFailed(failure())),
        CommandKind::Modify if ack.success => Some(OrderEvent::ModifyAcked),
        CommandKind::Modify => Some(OrderEvent::ModifyFailed(failure())),
    }
}

/// 10036 TRADE_RETCODE_POSITION_CLOSED: the position named by the request does not exist (any more).
const POSITION_CLOSED: Retcode = Retcode(10036);

/// Whether a failed close says the position does not exist (MT5's 10036 POSITION_CLOSED, or — without a retcode — the
/// original connector's `"Position <ticket> not found"`).
pub fn position_gone(ack: &Ack) -> bool {
    if ack.success {
        return false;
    }
    match ack.retcode {
        Some(code) => code == POSITION_CLOSED,
        None => ack.error.as_deref().is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e.starts_with("position ") && e.ends_with(" not found")
        }),
    }
}

/// The event of a command's ack timeout (`None`: an older close/modify command, stale).
pub fn timeout_event(order: &Awaiting, rid: RequestId) -> Option<OrderEvent> {
    match rid.kind {
        CommandKind::Open => Some(OrderEvent::OpenTimedOut),
        _ if rid.seq != order.command_seq => None,
        CommandKind::Close => Some(OrderEvent::CloseTimedOut),
        CommandKind::Modify => Some(OrderEvent::ModifyTimedOut),
    }
}

/// The event of a command that provably never left (no connector took it).
pub fn not_sent_event(kind: CommandKind, reason: &str) -> OrderEvent {
    let failure = || Failure { retcode: None, message: reason.to_owned() };
    match kind {
        CommandKind::Open => OrderEvent::NotSent { reason: reason.to_owned() },
        CommandKind::Modify => OrderEvent::ModifyFailed(failure()),
        CommandKind::Close => OrderEvent::CloseFailed(failure()),
    }
}

/// The fields an applied event writes beside status, version and ticket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    /// Open fill: open price and time, the fill price confirmed, the last error cleared.
    pub filled: Option<Fill>,
    /// Close fill: close price and time.
    pub closed: Option<(Decimal, DateTime<Utc>)>,
    /// A failed command: its error text and retcode recorded.
    pub failed: Option<Failure>,
    /// The modify in flight was acknowledged: its pending SL/TP become the order's, the last error cleared.
    pub stops_confirmed: bool,
    /// The pending SL/TP of a command in flight are dropped.
    pub clear_pending_stops: bool,
}

/// What an event writes when the state machine applies it.
pub fn effect(event: &OrderEvent) -> Effect {
    match event {
        OrderEvent::OpenFilled(f) => Effect { filled: Some(f.clone()), ..Effect::default() },
        OrderEvent::OpenFailed(f) | OrderEvent::CloseFailed(f) | OrderEvent::ModifyFailed(f) => {
            Effect { failed: Some(f.clone()), clear_pending_stops: true, ..Effect::default() }
        }
        OrderEvent::CloseFilled { price, time } => {
            Effect { closed: Some((*price, *time)), clear_pending_stops: true, ..Effect::default() }
        }
        OrderEvent::ModifyAcked => Effect { stops_confirmed: true, clear_pending_stops: true, ..Effect::default() },
        _ => Effect::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awaiting(status: OrderStatus, seq: u64) -> Awaiting {
        Awaiting { status, command_seq: seq, requested_price: Decimal::ONE, current_price: None }
    }

    fn ack(success: bool, ticket: Option<u64>) -> Ack {
        Ack { success, ticket: ticket.map(Ticket), price: None, retcode: None, error: None, time: None }
    }

    #[test]
    fn request_ids_round_trip_and_refuse_garbage() {
        let id = Uuid::from_u128(7);
        for rid in [RequestId::open(id), RequestId::close(id, 3), RequestId::modify(id, 9)] {
            assert_eq!(rid.to_string().parse::<RequestId>(), Ok(rid));
        }
        assert!("x".parse::<RequestId>().is_err());
        assert!(format!("{id}:open:1").parse::<RequestId>().is_err());
        assert!("a".repeat(MAX_REQUEST_ID + 1).parse::<RequestId>().is_err());
    }

    #[test]
    fn an_older_commands_ack_or_timeout_is_stale() {
        let o = awaiting(OrderStatus::ClosePending, 5);
        let id = Uuid::from_u128(1);
        assert_eq!(ack_event(&o, RequestId::close(id, 4), &ack(true, None), Utc::now()), None);
        assert_eq!(timeout_event(&o, RequestId::close(id, 4)), None);
        assert_eq!(timeout_event(&o, RequestId::close(id, 5)), Some(OrderEvent::CloseTimedOut));
        assert!(waits_for(&o, RequestId::close(id, 5)));
        assert!(!waits_for(&o, RequestId::close(id, 4)));
        assert!(!waits_for(&o, RequestId::modify(id, 5)));
    }

    #[test]
    fn a_success_without_a_ticket_proves_nothing() {
        let o = awaiting(OrderStatus::Pending, 0);
        let ev = ack_event(&o, RequestId::open(Uuid::nil()), &ack(true, None), Utc::now()).unwrap();
        assert!(matches!(ev, OrderEvent::OpenFailed(f) if f.retcode == Some(Retcode::ERROR)));
        let ev = ack_event(&o, RequestId::open(Uuid::nil()), &ack(true, Some(9)), Utc::now()).unwrap();
        assert!(matches!(ev, OrderEvent::OpenFilled(f) if f.ticket == Ticket(9) && f.price == Decimal::ONE));
    }

    #[test]
    fn a_trade_open_is_resent_only_to_a_connector_that_deduplicates() {
        use CommandKind as K;
        let table = [
            (K::Open, true, Redelivery::Resend),
            (K::Open, false, Redelivery::Withhold(Some(OrderEvent::OpenTimedOut))),
            (K::Close, true, Redelivery::Resend),
            (K::Close, false, Redelivery::Resend),
            (K::Modify, true, Redelivery::Resend),
            (K::Modify, false, Redelivery::Resend),
        ];
        for (kind, dedupes, expected) in table {
            assert_eq!(redelivery(kind, dedupes), expected, "{kind:?}, dedupes: {dedupes}");
        }
        // The withheld open's event makes a pending order unknown, and leaves an unknown one as it is.
        let Redelivery::Withhold(Some(event)) = redelivery(K::Open, false) else { unreachable!() };
        let pending = crate::order::OrderState::new_pending();
        match crate::order::transition(pending, &event) {
            Ok(crate::order::Transition::Applied(c)) => assert_eq!(c.to.status, OrderStatus::Unknown),
            other => panic!("{other:?}"),
        }
        let unknown = crate::order::OrderState { status: OrderStatus::Unknown, ..pending };
        assert!(matches!(crate::order::transition(unknown, &event), Ok(crate::order::Transition::Unchanged(_))));
    }

    #[test]
    fn a_close_refused_for_a_missing_position_never_reopens_the_order() {
        let o = awaiting(OrderStatus::ClosePending, 4);
        let rid = RequestId::close(Uuid::from_u128(5), 4);
        let failed = |retcode: Option<u32>, error: &str| Ack {
            success: false,
            ticket: None,
            price: None,
            retcode: retcode.map(Retcode),
            error: Some(error.into()),
            time: None,
        };
        for gone in [failed(None, "Position 500000002 not found"), failed(Some(10036), "Position closed")] {
            assert!(position_gone(&gone));
            assert_eq!(ack_event(&o, rid, &gone, Utc::now()), Some(OrderEvent::CloseTimedOut), "{gone:?}");
        }
        for other in [failed(None, "Market closed"), failed(Some(10018), "Market closed"), failed(Some(10013), "x")] {
            assert!(!position_gone(&other));
            assert!(matches!(ack_event(&o, rid, &other, Utc::now()), Some(OrderEvent::CloseFailed(_))), "{other:?}");
        }
        // Only a close: a modify refused for a missing position is the modify's failure.
        let m = awaiting(OrderStatus::ModifyPending, 4);
        let gone = failed(Some(10036), "Position closed");
        assert!(matches!(
            ack_event(&m, RequestId::modify(Uuid::nil(), 4), &gone, Utc::now()),
            Some(OrderEvent::ModifyFailed(_))
        ));
    }

    #[test]
    fn effects_name_the_fields_written() {
        let fill = Fill { ticket: Ticket(1), price: Decimal::TWO, time: Utc::now() };
        assert_eq!(effect(&OrderEvent::OpenFilled(fill.clone())).filled, Some(fill));
        let e = effect(&OrderEvent::ModifyAcked);
        assert!(e.stops_confirmed && e.clear_pending_stops);
        assert_eq!(effect(&OrderEvent::OpenTimedOut), Effect::default());
        assert_eq!(not_sent_event(CommandKind::Open, "gone"), OrderEvent::NotSent { reason: "gone".into() });
    }
}
