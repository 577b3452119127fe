//! Table tests, one block per rule of the module docs, and the in-test "apply" shared with the property tests.

use chrono::TimeZone;

use super::*;
use crate::money::d;
use crate::order::Change;

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 12, 13, 10, 0, 0).unwrap()
}

fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

pub(super) const CONN: Uuid = Uuid::from_u128(0xC0);
pub(super) const USER: Uuid = Uuid::from_u128(0x05E);

/// Applies one action to the books as the app would: a conditional write on `expected` (dropped when the stored
/// state moved on), or a conditional insert for an adoption. Returns whether something was written.
pub(super) fn apply(books: &mut Vec<BookOrder>, action: &Action, now: DateTime<Utc>) -> bool {
    if let Action::AdoptExternal { order_id, user_id, position: p, .. } = action {
        if books.iter().any(|o| o.id == *order_id) {
            return false;
        }
        books.push(BookOrder {
            id: *order_id,
            user_id: *user_id,
            client_order_id: ClientOrderId::from_uuid(*order_id),
            state: action.target().expect("adoption writes"),
            symbol: p.symbol.clone(),
            side: p.side,
            lots: p.volume,
            open_price: Some(p.open_price),
            stop_loss: p.sl(),
            take_profit: p.tp(),
            created_at: now,
            updated_at: now,
            last_price: None,
        });
        return true;
    }
    let (Some(expected), Some(to), Some(id)) = (action.expected(), action.target(), action.order_id()) else {
        return false;
    };
    let Some(o) = books.iter_mut().find(|o| o.id == id) else { return false };
    if o.state != expected {
        return false;
    }
    if let Some(event) = action.event() {
        // Every evented write is exactly what the order model decides.
        assert_eq!(transition(expected, event), Ok(Transition::Applied(Change { from: expected, to })), "{action:?}");
    }
    o.state = to;
    o.updated_at = now;
    match action {
        Action::ResolveOpen { position: p, .. } => {
            o.open_price = Some(p.open_price);
            o.lots = p.volume;
            o.stop_loss = p.sl();
            o.take_profit = p.tp();
        }
        Action::CloseExternally { open_price, .. } => {
            o.open_price = o.open_price.or(*open_price);
        }
        Action::FollowMt5 { stop_loss, take_profit, lots, .. } => {
            o.stop_loss = *stop_loss;
            o.take_profit = *take_profit;
            o.lots = *lots;
        }
        _ => {}
    }
    true
}

fn order(n: u128, status: OrderStatus, ticket: Option<u64>) -> BookOrder {
    let id = Uuid::from_u128(0x1000 + n);
    BookOrder {
        id,
        user_id: USER,
        client_order_id: ClientOrderId::from_uuid(id),
        state: OrderState { status, version: 3, ticket: ticket.map(Ticket) },
        symbol: "EURUSD".into(),
        side: Side::Buy,
        lots: Lots::new_unchecked(d("0.1")),
        open_price: ticket.map(|_| d("1.1000")),
        stop_loss: Some(d("1.0950")),
        take_profit: Some(d("1.1100")),
        created_at: t0(),
        updated_at: t0(),
        last_price: Some(d("1.1020")),
    }
}

fn position(ticket: u64, comment: &str) -> Mt5Position {
    Mt5Position {
        ticket: Ticket(ticket),
        symbol: "EURUSD".into(),
        side: Side::Buy,
        volume: Lots::new_unchecked(d("0.1")),
        open_price: d("1.1003"),
        open_time: Some(t0() + secs(2)),
        stop_loss: Some(d("1.0950")),
        take_profit: Some(d("1.1100")),
        comment: comment.into(),
    }
}

fn mine(o: &BookOrder, ticket: u64) -> Mt5Position {
    position(ticket, &o.client_order_id.comment())
}

fn deal(ticket: u64, pos: u64, entry: DealEntry, price: &str, at: i64, comment: &str) -> Mt5Deal {
    Mt5Deal {
        ticket: Ticket(ticket),
        position: Ticket(pos),
        entry,
        price: d(price),
        volume: Lots::new_unchecked(d("0.1")),
        time: t0() + secs(at),
        comment: comment.into(),
    }
}

/// A snapshot taken 5 minutes after the orders were written; `now` is 5 s later.
fn snap(positions: Vec<Mt5Position>) -> Mt5Snapshot {
    Mt5Snapshot {
        connection_id: CONN,
        owner: USER,
        taken_at: t0() + secs(300),
        positions,
        history: None,
        lookups: vec![],
    }
}

fn history(from: i64, deals: Vec<Mt5Deal>, orders: Vec<Mt5HistoryOrder>) -> Option<DealHistory> {
    Some(DealHistory { from: t0() + secs(from), deals, orders })
}

fn run(books: &[BookOrder], s: &Mt5Snapshot) -> Vec<Action> {
    reconcile(books, &Snapshot::Received(s.clone()), s.taken_at + secs(5), &ReconcileConfig::default())
}

/// Applies the actions, then reconciles again with a fresh snapshot of the same MT5 state: nothing more to do.
fn assert_settles(mut books: Vec<BookOrder>, s: &Mt5Snapshot) {
    let actions = run(&books, s);
    let now = s.taken_at + secs(5);
    for a in &actions {
        apply(&mut books, a, now);
    }
    assert!(run(&books, s).is_empty(), "same snapshot again: nothing");
    let later = Mt5Snapshot { taken_at: now + secs(60), ..s.clone() };
    let again: Vec<_> = run(&books, &later).into_iter().filter(Action::is_write).collect();
    assert!(again.is_empty(), "fresh snapshot after applying: no further writes, got {again:?}");
}

fn status_to(a: &Action) -> OrderStatus {
    a.target().expect("a write").status
}

// --- Unusable snapshots never mean "flat".

#[test]
fn unusable_snapshots_change_nothing() {
    let books = vec![order(1, OrderStatus::Open, Some(11)), order(2, OrderStatus::Unknown, None)];
    let cfg = ReconcileConfig::default();
    let empty = snap(vec![]);
    let at = empty.taken_at;
    let cases = [
        ("missing", Snapshot::Missing, at, SkipReason::Missing),
        (
            "failed",
            Snapshot::Failed { reason: "MT5 not connected".into() },
            at,
            SkipReason::Failed("MT5 not connected".into()),
        ),
        ("stale", Snapshot::Received(empty.clone()), at + secs(61), SkipReason::Stale { age: secs(61) }),
        ("future", Snapshot::Received(empty.clone()), at - secs(1), SkipReason::FromTheFuture),
    ];
    for (label, s, now, why) in cases {
        assert_eq!(reconcile(&books, &s, now, &cfg), vec![Action::Skipped(why)], "{label}");
    }
    // At exactly the maximum age it is still usable.
    let ok = reconcile(&books, &Snapshot::Received(empty), at + secs(60), &cfg);
    assert!(ok.iter().all(|a| !matches!(a, Action::Skipped(_))));
}

// --- Only settled orders are compared.

#[test]
fn recent_orders_and_their_positions_are_left_alone() {
    let mut recent_open = order(1, OrderStatus::Open, Some(11));
    recent_open.updated_at = t0() + secs(295); // 5 s before the snapshot: its events may postdate it
    let mut recent_unknown = order(2, OrderStatus::Unknown, None);
    recent_unknown.updated_at = t0() + secs(299);
    let mut recent_rejected = order(3, OrderStatus::Rejected, None);
    recent_rejected.updated_at = t0() + secs(299);
    let p = mine(&recent_rejected, 33);
    let s = snap(vec![p]);
    assert_eq!(run(&[recent_open, recent_unknown, recent_rejected], &s), vec![], "nothing compared, nothing adopted");
}

#[test]
fn commands_in_flight_wait_for_their_ack() {
    for status in [OrderStatus::Pending, OrderStatus::ClosePending, OrderStatus::ModifyPending] {
        let mut o = order(1, status, (status != OrderStatus::Pending).then_some(11));
        o.updated_at = t0() + secs(280); // 20 s before the snapshot: settled, but within the 30 s ack timeout
        assert_eq!(run(&[o], &snap(vec![])), vec![], "{status}");
    }
}

// --- UNKNOWN / PENDING past the timeout, position present.

#[test]
fn unknown_with_its_position_opens_with_the_real_fill() {
    for status in [OrderStatus::Unknown, OrderStatus::Pending] {
        let o = order(1, status, None);
        let mut p = mine(&o, 77);
        p.stop_loss = Some(d("1.0940"));
        p.take_profit = Some(Decimal::ZERO); // MT5: no TP
        p.volume = Lots::new_unchecked(d("0.09"));
        let s = snap(vec![p.clone(), position(78, "manual")]);
        let actions = run(std::slice::from_ref(&o), &s);
        assert_eq!(actions.len(), 2, "{actions:?}");
        let Action::ResolveOpen { order_id, expected, to, event, position } = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!((*order_id, *expected), (o.id, o.state));
        assert_eq!(*to, OrderState { status: OrderStatus::Open, version: 4, ticket: Some(Ticket(77)) });
        assert_eq!(
            *event,
            OrderEvent::ReconciledOpen(PositionEvidence {
                ticket: Ticket(77),
                open_price: d("1.1003"),
                open_time: t0() + secs(2)
            })
        );
        assert_eq!(*position, p);
        assert!(matches!(&actions[1], Action::AdoptExternal { position, .. } if position.ticket == Ticket(78)));
        assert_settles(vec![o], &s);
    }
}

#[test]
fn a_known_ticket_matches_even_when_the_comment_was_rewritten() {
    let mut o = order(1, OrderStatus::Unknown, None);
    o.state.ticket = Some(Ticket(77));
    let s = snap(vec![position(77, "broker rewrote it")]);
    let actions = run(std::slice::from_ref(&o), &s);
    assert!(matches!(actions.as_slice(), [Action::ResolveOpen { .. }]), "{actions:?}");
}

#[test]
fn one_order_claims_one_position_the_duplicate_is_adopted() {
    let o = order(1, OrderStatus::Unknown, None);
    let s = snap(vec![mine(&o, 80), mine(&o, 81)]);
    let actions = run(std::slice::from_ref(&o), &s);
    assert!(matches!(&actions[0], Action::ResolveOpen { to, .. } if to.ticket == Some(Ticket(80))), "{actions:?}");
    assert!(
        matches!(&actions[1], Action::AdoptExternal { position, claimed_by, .. }
            if position.ticket == Ticket(81) && *claimed_by == Some(o.id)),
        "{actions:?}"
    );
    assert_settles(vec![o], &s);
}

// --- UNKNOWN without position.

#[test]
fn unknown_rejected_by_history() {
    let o = order(1, OrderStatus::Unknown, None);
    for state in [HistoryOrderState::Rejected, HistoryOrderState::Canceled, HistoryOrderState::Expired] {
        let failed =
            Mt5HistoryOrder { ticket: Ticket(5), state, time: t0() + secs(1), comment: o.client_order_id.comment() };
        // The window starts after the order: absence alone would not be evidence, the failed order is.
        let s = Mt5Snapshot { history: history(60, vec![], vec![failed]), ..snap(vec![]) };
        let actions = run(std::slice::from_ref(&o), &s);
        let [a @ Action::ResolveRejected { evidence, event, .. }] = actions.as_slice() else { panic!("{actions:?}") };
        assert_eq!(*evidence, AbsenceEvidence::HistoryOrder { ticket: Ticket(5), state });
        assert_eq!(*event, OrderEvent::ReconciledAbsent);
        assert_eq!(status_to(a), OrderStatus::Rejected);
        assert!(a.releases_reservation());
        assert_settles(vec![o.clone()], &s);
    }
}

#[test]
fn unknown_absent_from_a_covering_history_after_the_command_expired() {
    let o = order(1, OrderStatus::Unknown, None);
    let other = deal(9, 99, DealEntry::In, "1.2", 5, "NT-someoneelse");
    let s = Mt5Snapshot { history: history(-10, vec![other], vec![]), ..snap(vec![]) };
    let actions = run(std::slice::from_ref(&o), &s);
    assert!(
        matches!(actions.as_slice(), [Action::ResolveRejected { evidence: AbsenceEvidence::NotInHistory { .. }, .. }]),
        "{actions:?}"
    );
    assert_settles(vec![o.clone()], &s);

    // The command has not expired yet (created 100 s before the snapshot, expiry 120 s): it may still execute.
    let mut young = o.clone();
    young.created_at = t0() + secs(200);
    young.updated_at = t0() + secs(230);
    let s = Mt5Snapshot { history: history(150, vec![], vec![]), ..snap(vec![]) };
    assert_eq!(run(&[young], &s), vec![]);
}

#[test]
fn unknown_without_covering_history_asks_for_it() {
    let o = order(1, OrderStatus::Unknown, None);
    let want = vec![Action::RequestTargetedCheck { order_id: o.id, ticket: None, history_since: o.created_at }];
    assert_eq!(run(std::slice::from_ref(&o), &snap(vec![])), want, "no history");
    let late_window = Mt5Snapshot { history: history(1, vec![], vec![]), ..snap(vec![]) };
    assert_eq!(run(std::slice::from_ref(&o), &late_window), want, "window starts after the order");
}

#[test]
fn unknown_that_opened_and_closed_meanwhile() {
    let o = order(1, OrderStatus::Unknown, None);
    let c = o.client_order_id.comment();
    let deals =
        vec![deal(1, 50, DealEntry::In, "1.1001", 3, &c), deal(2, 50, DealEntry::Out, "1.0950", 90, "[sl 1.0950]")];
    let s = Mt5Snapshot { history: history(-10, deals, vec![]), ..snap(vec![]) };
    let actions = run(std::slice::from_ref(&o), &s);
    let [a @ Action::CloseExternally { open_price, close_price, close_time, source, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(status_to(a), OrderStatus::ClosedExternally);
    assert_eq!(a.target().unwrap().ticket, Some(Ticket(50)));
    assert_eq!((*open_price, *close_price, *close_time), (Some(d("1.1001")), Some(d("1.0950")), t0() + secs(90)));
    assert_eq!(*source, CloseSource::Deal(Ticket(2)));
    assert!(a.releases_reservation());
    assert_settles(vec![o.clone()], &s);

    // Opening deal only, position not listed: look the position up before deciding.
    let s =
        Mt5Snapshot { history: history(-10, vec![deal(1, 50, DealEntry::In, "1.1", 3, &c)], vec![]), ..snap(vec![]) };
    assert_eq!(
        run(std::slice::from_ref(&o), &s),
        vec![Action::RequestTargetedCheck { order_id: o.id, ticket: Some(Ticket(50)), history_since: o.created_at }]
    );
    let closed =
        TicketLookup { ticket: Ticket(50), result: LookupResult::Closed { price: d("1.2"), time: t0() + secs(9) } };
    let s2 = Mt5Snapshot { lookups: vec![closed], ..s.clone() };
    assert!(matches!(
        run(std::slice::from_ref(&o), &s2).as_slice(),
        [Action::CloseExternally { source: CloseSource::Lookup, .. }]
    ));
    let nothing = TicketLookup { ticket: Ticket(50), result: LookupResult::NotFound };
    let s3 = Mt5Snapshot { lookups: vec![nothing], ..s };
    assert!(matches!(run(&[o], &s3).as_slice(), [Action::Conflict { .. }]), "history and lookup disagree");
}

// --- Position-holding orders whose position is gone.

#[test]
fn open_absent_is_looked_up_before_being_closed() {
    let o = order(1, OrderStatus::Open, Some(11));
    let s = snap(vec![]);
    assert_eq!(
        run(std::slice::from_ref(&o), &s),
        vec![Action::RequestTargetedCheck { order_id: o.id, ticket: Some(Ticket(11)), history_since: o.updated_at }]
    );
    let lookup = |result| Mt5Snapshot { lookups: vec![TicketLookup { ticket: Ticket(11), result }], ..s.clone() };

    let s1 = lookup(LookupResult::Closed { price: d("1.1050"), time: t0() + secs(100) });
    let actions = run(std::slice::from_ref(&o), &s1);
    let [a @ Action::CloseExternally { close_price, source: CloseSource::Lookup, event, .. }] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    assert_eq!(*close_price, Some(d("1.1050")));
    assert!(matches!(event, OrderEvent::ReconciledClosed(_)));
    assert_eq!(status_to(a), OrderStatus::ClosedExternally);
    assert_settles(vec![o.clone()], &s1);

    let s2 = lookup(LookupResult::NotFound);
    let actions = run(std::slice::from_ref(&o), &s2);
    assert!(
        matches!(actions.as_slice(), [Action::CloseExternally { source: CloseSource::LastKnownPrice, close_price: Some(p), .. }] if *p == d("1.1020")),
        "{actions:?}"
    );
    let mut no_price = o.clone();
    no_price.last_price = None;
    let actions = run(&[no_price], &s2);
    assert!(
        matches!(
            actions.as_slice(),
            [Action::CloseExternally { source: CloseSource::NoPrice, event: OrderEvent::ReconciledAbsent, .. }]
        ),
        "{actions:?}"
    );

    let s3 = lookup(LookupResult::Open);
    assert_eq!(run(&[o], &s3), vec![], "lookup contradicts the list: wait");
}

#[test]
fn closing_deal_in_history_closes_without_lookup() {
    for (status, want) in [
        (OrderStatus::Open, OrderStatus::ClosedExternally),
        (OrderStatus::ModifyPending, OrderStatus::ClosedExternally),
        (OrderStatus::ClosePending, OrderStatus::Closed),
        (OrderStatus::External, OrderStatus::ClosedExternally),
    ] {
        let o = order(1, status, Some(11));
        let deals = vec![deal(3, 11, DealEntry::Out, "1.1080", 200, "[tp 1.1080]")];
        let s = Mt5Snapshot { history: history(100, deals, vec![]), ..snap(vec![]) };
        let actions = run(std::slice::from_ref(&o), &s);
        let [a @ Action::CloseExternally { close_price, source, .. }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!((status_to(a), *close_price, *source), (want, Some(d("1.1080")), CloseSource::Deal(Ticket(3))));
        assert!(a.releases_reservation(), "{status}: external positions count against the limits too");
        assert_settles(vec![o], &s);
    }
}

#[test]
fn position_without_ticket_is_a_conflict() {
    let o = order(1, OrderStatus::Open, None);
    assert!(matches!(run(&[o], &snap(vec![])).as_slice(), [Action::Conflict { .. }]));
}

// --- Commands in flight past their timeout, position still there.

#[test]
fn close_or_modify_without_ack_returns_to_open_with_mt5_values() {
    for status in [OrderStatus::ClosePending, OrderStatus::ModifyPending] {
        let o = order(1, status, Some(11));
        let mut p = mine(&o, 11);
        p.stop_loss = Some(d("1.0990")); // the modify did execute
        let s = snap(vec![p]);
        let actions = run(std::slice::from_ref(&o), &s);
        let [a @ Action::ResolveOpen { position, .. }] = actions.as_slice() else { panic!("{actions:?}") };
        assert_eq!((status_to(a), position.sl()), (OrderStatus::Open, Some(d("1.0990"))));
        assert!(!a.releases_reservation());
        assert_settles(vec![o], &s);
    }
}

// --- SL/TP drift.

#[test]
fn books_follow_mt5_stops_and_volume() {
    let o = order(1, OrderStatus::Open, Some(11));
    assert_eq!(run(std::slice::from_ref(&o), &snap(vec![mine(&o, 11)])), vec![], "no drift");

    let mut p = mine(&o, 11);
    p.stop_loss = Some(Decimal::ZERO); // removed in the terminal
    p.take_profit = Some(d("1.1200"));
    p.volume = Lots::new_unchecked(d("0.05")); // partial close in the terminal
    let s = snap(vec![p]);
    let actions = run(std::slice::from_ref(&o), &s);
    let want = Action::FollowMt5 {
        order_id: o.id,
        expected: o.state,
        to: OrderState { version: 4, ..o.state },
        stop_loss: None,
        take_profit: Some(d("1.1200")),
        lots: Lots::new_unchecked(d("0.05")),
    };
    assert_eq!(actions, vec![want]);
    assert!(actions[0].event().is_none());
    assert_settles(vec![o], &s);
}

// --- Manual MT5 trades.

#[test]
fn manual_positions_are_adopted_once() {
    let s = snap(vec![position(500, ""), position(501, "NT-notabase62id!")]);
    let actions = run(&[], &s);
    assert_eq!(actions.len(), 2);
    for (a, t) in actions.iter().zip([500, 501]) {
        let Action::AdoptExternal { order_id, user_id, connection_id, position, claimed_by } = a else {
            panic!("{a:?}")
        };
        assert_eq!(*order_id, external_order_id(CONN, Ticket(t), position.open_time));
        assert!(a.takes_reservation() && !a.releases_reservation());
        assert_eq!((*user_id, *connection_id, position.ticket, *claimed_by), (USER, CONN, Ticket(t), None));
        assert_eq!(a.target().unwrap().status, OrderStatus::External);
    }
    assert_settles(vec![], &s);
}

#[test]
fn a_position_of_a_finished_order_is_adopted_not_resurrected() {
    let o = order(1, OrderStatus::Rejected, None);
    let s = snap(vec![mine(&o, 90)]);
    let actions = run(std::slice::from_ref(&o), &s);
    assert!(
        matches!(actions.as_slice(), [Action::AdoptExternal { claimed_by: Some(id), .. }] if *id == o.id),
        "{actions:?}"
    );
    assert_settles(vec![o], &s);
}

#[test]
fn external_ids_are_deterministic_distinct_and_time_ordered() {
    let at = |s: i64| Some(t0() + secs(s));
    let a = external_order_id(CONN, Ticket(1), at(0));
    assert_eq!(a, external_order_id(CONN, Ticket(1), at(0)));
    assert_eq!(a.get_version_num(), 7);
    assert_ne!(a, external_order_id(CONN, Ticket(2), at(0)));
    assert_ne!(a, external_order_id(Uuid::from_u128(0xC1), Ticket(1), at(0)));
    // Time-ordered like every order id: a later open sorts after, whatever the ticket.
    assert!(external_order_id(CONN, Ticket(1), at(1)) > external_order_id(CONN, Ticket(2), at(0)));
    let ts = a.get_timestamp().unwrap().to_unix();
    assert_eq!((ts.0 as i64, ts.1 / 1_000_000), (t0().timestamp(), 0));
    // No open time from the connector: the epoch, still deterministic.
    assert_eq!(external_order_id(CONN, Ticket(1), None), external_order_id(CONN, Ticket(1), None));
    assert_eq!(external_order_id(CONN, Ticket(1), None).get_timestamp().unwrap().to_unix().0, 0);
    // Pinned: the id is stored, so the derivation must never change.
    assert_eq!(external_order_id(CONN, Ticket(123_456_789), at(0)).to_string(), "019b1727-2500-7261-8752-8c5bfffad1be");
}

#[test]
fn actions_follow_the_books_order_and_adoptions_come_last() {
    let mut b = order(2, OrderStatus::Open, Some(12));
    b.created_at = t0() - secs(10);
    let a = order(1, OrderStatus::Unknown, None);
    let s = snap(vec![position(999, "manual"), mine(&a, 13)]);
    let actions = run(&[a.clone(), b.clone()], &s);
    let ids: Vec<_> = actions.iter().map(|x| x.order_id().unwrap()).collect();
    assert_eq!(ids, vec![b.id, a.id, external_order_id(CONN, Ticket(999), Some(t0() + secs(2)))]);
}
