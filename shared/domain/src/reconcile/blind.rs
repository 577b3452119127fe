//! The two-consecutive-reports rule for connectors without lookups ([`ReportEvidence`]): a table test per case and a
//! property over random sequences of complete, failed and late reports.

use proptest::prelude::*;

use super::tests::{CONN, USER, t0};
use super::*;
use crate::money::d;

fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

/// An OPEN buy with ticket 77, last changed at `t0`, last known price 1.1020.
fn open_order() -> BookOrder {
    let id = Uuid::from_u128(0x77);
    BookOrder {
        id,
        user_id: USER,
        client_order_id: ClientOrderId::from_uuid(id),
        state: OrderState { status: OrderStatus::Open, version: 2, ticket: Some(Ticket(77)) },
        symbol: "EURUSD".into(),
        side: Side::Buy,
        lots: Lots::new_unchecked(d("0.1")),
        open_price: Some(d("1.1")),
        stop_loss: None,
        take_profit: None,
        created_at: t0(),
        updated_at: t0(),
        last_price: Some(d("1.1020")),
    }
}

fn position(ticket: u64) -> Mt5Position {
    Mt5Position {
        ticket: Ticket(ticket),
        symbol: "EURUSD".into(),
        side: Side::Buy,
        volume: Lots::new_unchecked(d("0.1")),
        open_price: d("1.1"),
        open_time: Some(t0()),
        stop_loss: None,
        take_profit: None,
        comment: String::new(),
    }
}

fn report(at: i64, tickets: &[u64]) -> Mt5Snapshot {
    Mt5Snapshot {
        connection_id: CONN,
        owner: USER,
        taken_at: t0() + secs(at),
        positions: tickets.iter().map(|t| position(*t)).collect(),
        history: None,
        lookups: vec![],
    }
}

fn prior(s: &Mt5Snapshot) -> PriorReport {
    PriorReport { taken_at: s.taken_at, tickets: s.positions.iter().map(|p| p.ticket).collect() }
}

fn run(o: &BookOrder, s: &Mt5Snapshot, evidence: &ReportEvidence) -> Vec<Action> {
    reconcile_with(
        std::slice::from_ref(o),
        &Snapshot::Received(s.clone()),
        s.taken_at + secs(1),
        &ReconcileConfig::default(),
        evidence,
    )
}

fn blind(previous: Option<&Mt5Snapshot>) -> ReportEvidence {
    ReportEvidence { no_lookups: true, previous: previous.map(prior), ..ReportEvidence::default() }
}

fn closes(actions: &[Action]) -> Option<&Action> {
    actions.iter().find(|a| matches!(a, Action::CloseExternally { .. }))
}

#[test]
fn two_complete_reports_without_the_ticket_close_it_at_the_last_price() {
    let o = open_order();
    let (r1, r2) = (report(60, &[]), report(120, &[5]));
    // First absence: ask (a second report will come), no write.
    let first = run(&o, &r1, &blind(None));
    assert!(matches!(first.as_slice(), [Action::RequestTargetedCheck { .. }]), "{first:?}");
    let second = run(&o, &r2, &blind(Some(&r1)));
    let Some(Action::CloseExternally { close_price, source, to, close_time, .. }) = closes(&second) else {
        panic!("{second:?}")
    };
    assert_eq!((*close_price, *source), (Some(d("1.1020")), CloseSource::AbsentFromReports));
    assert_eq!((to.status, *close_time), (OrderStatus::ClosedExternally, r2.taken_at));
    assert!(source.unconfirmed());
    // No last known price: closed without a price.
    let o2 = BookOrder { last_price: None, ..o.clone() };
    let Some(Action::CloseExternally { close_price: None, .. }) = closes(&run(&o2, &r2, &blind(Some(&r1)))) else {
        panic!()
    };
}

#[test]
fn what_does_not_count() {
    let o = open_order();
    let r2 = report(120, &[]);
    // The previous report listed the ticket.
    assert!(closes(&run(&o, &r2, &blind(Some(&report(60, &[77]))))).is_none());
    // The previous report predates the order's last change (plus min_age).
    assert!(closes(&run(&o, &r2, &blind(Some(&report(5, &[]))))).is_none());
    // The "previous" report is this one (a re-run of the same snapshot).
    assert!(closes(&run(&o, &r2, &blind(Some(&r2)))).is_none());
    // A connector with lookups: ask, never close on absence.
    let with_lookups =
        ReportEvidence { no_lookups: false, previous: Some(prior(&report(60, &[]))), ..ReportEvidence::default() };
    assert!(closes(&run(&o, &r2, &with_lookups)).is_none());
    // A failed snapshot: nothing at all.
    let failed = reconcile_with(
        std::slice::from_ref(&o),
        &Snapshot::Failed { reason: "'PositionInfo' object has no attribute 'type'".into() },
        r2.taken_at,
        &ReconcileConfig::default(),
        &blind(Some(&report(60, &[]))),
    );
    assert!(matches!(failed.as_slice(), [Action::Skipped(SkipReason::Failed(_))]));
}

#[test]
fn a_later_deal_corrects_an_unconfirmed_close() {
    let closed = BookOrder {
        state: OrderState { status: OrderStatus::ClosedExternally, version: 3, ticket: Some(Ticket(77)) },
        updated_at: t0() + secs(100),
        ..open_order()
    };
    let deal = Mt5Deal {
        ticket: Ticket(9001),
        position: Ticket(77),
        entry: DealEntry::Out,
        price: d("1.0950"),
        volume: Lots::new_unchecked(d("0.1")),
        time: t0() + secs(40),
        comment: "sl 1.0950".into(),
    };
    let s = Mt5Snapshot {
        history: Some(DealHistory { from: t0(), deals: vec![deal], orders: vec![] }),
        ..report(300, &[])
    };
    let unconfirmed = ReportEvidence { unconfirmed: [closed.id].into(), ..ReportEvidence::default() };
    let actions = run(&closed, &s, &unconfirmed);
    let [Action::CorrectClose { close_price, close_time, source, expected, to, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!((*close_price, *close_time, *source), (d("1.0950"), t0() + secs(40), CloseSource::Deal(Ticket(9001))));
    assert_eq!((expected.version, to.version, to.status), (3, 4, OrderStatus::ClosedExternally));
    // A confirmed close, or no deal: nothing.
    assert!(run(&closed, &s, &ReportEvidence::default()).is_empty());
    assert!(run(&closed, &report(300, &[]), &unconfirmed).is_empty());
    // A lookup's deal corrects too.
    let lookup = TicketLookup { ticket: Ticket(77), result: LookupResult::Closed { price: d("1.0949"), time: t0() } };
    let s = Mt5Snapshot { lookups: vec![lookup], ..report(300, &[]) };
    assert!(matches!(
        run(&closed, &s, &unconfirmed).as_slice(),
        [Action::CorrectClose { source: CloseSource::Lookup, .. }]
    ));
}

/// One answer of the connector in a random sequence.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// A complete report, `gap` seconds after the previous answer; `holds`: it lists ticket 77.
    Report { gap: u8, holds: bool },
    /// `ERROR` instead of a report.
    Error { gap: u8 },
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => (1u8..90, any::<bool>()).prop_map(|(gap, holds)| Answer::Report { gap, holds }),
        1 => (1u8..90).prop_map(|gap| Answer::Error { gap }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Driving the kernel as the app does (the previous complete report kept between runs, failed ones skipped): the
    /// order is closed exactly at the first complete report that, with the complete report before it, lacks the
    /// ticket, both taken at least `min_age` after the order's last change; never on a failed answer, never
    /// before, and never at all for a connector that answers lookups.
    #[test]
    fn closed_exactly_after_two_consecutive_absences(answers in prop::collection::vec(answer(), 1..12), lookups: bool) {
        let cfg = ReconcileConfig::default();
        let o = open_order();
        let mut at = 0i64;
        let mut previous: Option<PriorReport> = None;
        let mut expected_close: Option<usize> = None;
        let mut closed_at: Option<usize> = None;
        for (i, a) in answers.iter().enumerate() {
            let (gap, snapshot) = match *a {
                Answer::Report { gap, holds } => {
                    let s = report(at + i64::from(gap), if holds { &[77] } else { &[] });
                    (gap, Snapshot::Received(s))
                }
                Answer::Error { gap } => (gap, Snapshot::Failed { reason: "ERROR".into() }),
            };
            at += i64::from(gap);
            let evidence = ReportEvidence { no_lookups: !lookups, previous: previous.clone(), ..ReportEvidence::default() };
            let actions = reconcile_with(std::slice::from_ref(&o), &snapshot, t0() + secs(at), &cfg, &evidence);
            if closes(&actions).is_some() && closed_at.is_none() {
                closed_at = Some(i);
            }
            if let Snapshot::Received(s) = &snapshot {
                let rejects = actions.iter().any(|a| matches!(a, Action::ResolveRejected { .. }));
                prop_assert!(!rejects, "an open position rejected");
                let settled = |t: DateTime<Utc>| o.updated_at + cfg.min_age <= t;
                let absent_now = s.positions.is_empty() && settled(s.taken_at);
                let absent_before = previous.as_ref().is_some_and(|p| p.tickets.is_empty() && settled(p.taken_at));
                if !lookups && absent_now && absent_before && expected_close.is_none() {
                    expected_close = Some(i);
                }
                previous = Some(PriorReport { taken_at: s.taken_at, tickets: s.positions.iter().map(|p| p.ticket).collect() });
            } else {
                prop_assert!(actions.iter().all(|a| !a.is_write()), "a failed answer wrote: {:?}", actions);
            }
            if closed_at.is_some() {
                break; // applied: the order is terminal from here on
            }
        }
        prop_assert_eq!(closed_at, expected_close);
    }
}
