use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::instrument::lookup;
use crate::money::{Currency, d};

const T: Ticket = Ticket(7);

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 12, 13, 10, 20, 30).unwrap()
}

fn failure(code: Option<u32>) -> Failure {
    Failure { retcode: code.map(Retcode), message: "failed".into() }
}

/// The 18 event columns of the table: every event kind, failures in both classes.
fn columns() -> Vec<(&'static str, OrderEvent)> {
    vec![
        ("open filled", OrderEvent::OpenFilled(Fill { ticket: T, price: d("1.1"), time: at() })),
        ("open failed (no money)", OrderEvent::OpenFailed(failure(Some(10019)))),
        ("open failed (timeout code)", OrderEvent::OpenFailed(failure(Some(10012)))),
        ("not sent", OrderEvent::NotSent { reason: "Connector is not online".into() }),
        ("open timed out", OrderEvent::OpenTimedOut),
        ("close requested", OrderEvent::CloseRequested),
        ("close filled", OrderEvent::CloseFilled { price: d("1.105"), time: at() }),
        ("close failed (no code)", OrderEvent::CloseFailed(failure(None))),
        ("close failed (connection)", OrderEvent::CloseFailed(failure(Some(10031)))),
        ("close timed out", OrderEvent::CloseTimedOut),
        ("modify requested", OrderEvent::ModifyRequested),
        ("modify acked", OrderEvent::ModifyAcked),
        ("modify failed (invalid stops)", OrderEvent::ModifyFailed(failure(Some(10016)))),
        ("modify failed (error)", OrderEvent::ModifyFailed(failure(Some(10011)))),
        ("modify timed out", OrderEvent::ModifyTimedOut),
        (
            "reconciled open",
            OrderEvent::ReconciledOpen(PositionEvidence { ticket: T, open_price: d("1.1"), open_time: at() }),
        ),
        (
            "reconciled closed",
            OrderEvent::ReconciledClosed(ClosedEvidence { ticket: T, close_price: d("1.1"), close_time: at() }),
        ),
        ("reconciled absent", OrderEvent::ReconciledAbsent),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    To(OrderStatus),
    Dup,
    Stale,
    Still,
    NotOpen,
    InFlight,
    Terminal,
    Conflict,
    External,
}

use OrderStatus::{
    ClosePending as CP, Closed as C, ClosedExternally as CE, External as EX, ModifyPending as MP, Open as O,
    Pending as P, Rejected as R, Unknown as U,
};
use Want::{Conflict as X, Dup, External as Ext, InFlight as Fl, NotOpen as No, Stale, Still, Terminal as Term, To};

#[rustfmt::skip]
fn table() -> Vec<(OrderStatus, [Want; 18])> {
    // Columns:       filled     fail-def   fail-unk   not-sent   o-timeout  close-req  close-fill close-fd   close-fu   c-timeout  mod-req    mod-ack    mod-fd     mod-fu     m-timeout  rec-open   rec-closed rec-absent
    vec![
        (P,  [To(O),     To(R),     To(U),     To(R),     To(U),     No,        No,        No,        No,        No,        No,        No,        No,        No,        No,        To(O),     To(CE),    To(R)]),
        (U,  [To(O),     To(R),     Still,     Still,     Dup,       No,        No,        No,        No,        No,        No,        No,        No,        No,        No,        To(O),     To(CE),    To(R)]),
        (R,  [X,         Dup,       Dup,       Stale,     Stale,     No,        No,        No,        No,        No,        No,        No,        No,        No,        No,        X,         X,         Dup]),
        (O,  [Dup,       X,         X,         Stale,     Stale,     To(CP),    To(C),     Stale,     Stale,     Stale,     To(MP),    Dup,       Dup,       Dup,       Stale,     Dup,       To(CE),    To(CE)]),
        (CP, [Dup,       X,         X,         Stale,     Stale,     Dup,       To(C),     To(O),     Still,     Still,     Fl,        Stale,     Stale,     Stale,     Stale,     To(O),     To(C),     To(C)]),
        (C,  [Dup,       X,         X,         Stale,     Stale,     Term,      Dup,       Stale,     Stale,     Stale,     Term,      Stale,     Stale,     Stale,     Stale,     X,         Dup,       Dup]),
        (MP, [Dup,       X,         X,         Stale,     Stale,     Fl,        To(C),     Stale,     Stale,     Stale,     Fl,        To(O),     To(O),     Still,     Still,     To(O),     To(CE),    To(CE)]),
        (CE, [Dup,       X,         X,         Stale,     Stale,     Term,      Dup,       Stale,     Stale,     Stale,     Term,      Stale,     Stale,     Stale,     Stale,     X,         Dup,       Dup]),
        (EX, [Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Ext,       Dup,       To(CE),    To(CE)]),
    ]
}

fn state_of(status: OrderStatus) -> OrderState {
    let ticket = (!matches!(status, P | U | R)).then_some(T);
    OrderState { status, version: 5, ticket }
}

fn outcome(r: Result<Transition, Refused>) -> Want {
    match r {
        Ok(Transition::Applied(c)) => To(c.to.status),
        Ok(Transition::Unchanged(NoOp::Duplicate)) => Dup,
        Ok(Transition::Unchanged(NoOp::Stale)) => Stale,
        Ok(Transition::Unchanged(NoOp::StillInFlight)) => Still,
        Err(Refused::NotOpen { .. }) => No,
        Err(Refused::InFlight { .. }) => Fl,
        Err(Refused::Terminal { .. }) => Term,
        Err(Refused::Conflict { .. }) => X,
        Err(Refused::External { .. }) => Ext,
        Err(Refused::NotOwner) => unreachable!("transition never checks owners"),
    }
}

#[test]
fn every_state_event_pair() {
    let table = table();
    for s in OrderStatus::ALL {
        assert_eq!(table.iter().filter(|(t, _)| *t == s).count(), 1, "{s}: exactly one row");
    }
    let cols = columns();
    let mut checked = 0;
    for (status, row) in &table {
        for ((label, event), want) in cols.iter().zip(row) {
            let state = state_of(*status);
            let got = transition(state, event);
            assert_eq!(outcome(got), *want, "{status} + {label}");
            if let Ok(Transition::Applied(c)) = got {
                assert_eq!(c.from, state, "{status} + {label}: conditioned on the current state");
                assert_eq!(c.to.version, state.version + 1, "{status} + {label}: version bump");
                let wants_release = matches!(c.to.status, R | C | CE);
                assert_eq!(c.releases_reservation(), wants_release, "{status} + {label}: reservation");
                if matches!(c.to.status, O) {
                    assert_eq!(c.to.ticket, Some(T), "{status} + {label}: an open order knows its ticket");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 9 * 18);
}

#[test]
fn other_ticket_is_a_conflict() {
    let open = state_of(O);
    let other = Ticket(8);
    let cases = [
        (
            "duplicate ack with another ticket",
            OrderEvent::OpenFilled(Fill { ticket: other, price: d("1"), time: at() }),
        ),
        (
            "evidence of another ticket",
            OrderEvent::ReconciledOpen(PositionEvidence { ticket: other, open_price: d("1"), open_time: at() }),
        ),
        (
            "closed evidence of another ticket",
            OrderEvent::ReconciledClosed(ClosedEvidence { ticket: other, close_price: d("1"), close_time: at() }),
        ),
    ];
    for (label, e) in cases {
        assert!(matches!(transition(open, &e), Err(Refused::Conflict { .. })), "{label}");
    }
}

#[test]
fn happy_path_versions() {
    let mut s = OrderState::new_pending();
    let events = [
        OrderEvent::OpenTimedOut,
        OrderEvent::OpenFilled(Fill { ticket: T, price: d("1.1"), time: at() }),
        OrderEvent::OpenFilled(Fill { ticket: T, price: d("1.1"), time: at() }),
        OrderEvent::ModifyRequested,
        OrderEvent::ModifyAcked,
        OrderEvent::CloseRequested,
        OrderEvent::CloseFilled { price: d("1.105"), time: at() },
        OrderEvent::CloseFilled { price: d("1.105"), time: at() },
    ];
    let mut path = vec![(s.status, s.version)];
    for e in &events {
        if let Transition::Applied(c) = transition(s, e).unwrap() {
            s = c.to;
            path.push((s.status, s.version));
        }
    }
    assert_eq!(path, vec![(P, 0), (U, 1), (O, 2), (MP, 3), (O, 4), (CP, 5), (C, 6)]);
}

#[test]
fn retcode_classes() {
    let cases: &[(&str, u32, RetcodeClass)] = &[
        ("DONE", 10009, RetcodeClass::Success),
        ("PLACED", 10008, RetcodeClass::Success),
        ("DONE_PARTIAL", 10010, RetcodeClass::Success),
        ("REQUOTE", 10004, RetcodeClass::PriceMoved),
        ("PRICE_CHANGED", 10020, RetcodeClass::PriceMoved),
        ("PRICE_OFF", 10021, RetcodeClass::PriceMoved),
        ("TIMEOUT", 10012, RetcodeClass::Unknown),
        ("CONNECTION", 10031, RetcodeClass::Unknown),
        ("ERROR", 10011, RetcodeClass::Unknown),
        ("REJECT", 10006, RetcodeClass::Rejected),
        ("INVALID_VOLUME", 10014, RetcodeClass::Rejected),
        ("MARKET_CLOSED", 10018, RetcodeClass::Rejected),
        ("NO_MONEY", 10019, RetcodeClass::Rejected),
        ("TOO_MANY_REQUESTS", 10024, RetcodeClass::Rejected),
        ("LIMIT_POSITIONS", 10040, RetcodeClass::Rejected),
        ("HEDGE_PROHIBITED", 10046, RetcodeClass::Rejected),
        ("unassigned 10037", 10037, RetcodeClass::Unknown),
        ("unrecognised", 4756, RetcodeClass::Unknown),
        ("zero", 0, RetcodeClass::Unknown),
    ];
    for (label, code, want) in cases {
        assert_eq!(Retcode(*code).class(), *want, "{label}");
        if label.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            assert_eq!(Retcode(*code).name(), Some(*label), "{label} name");
        }
    }
    assert!(RetcodeClass::PriceMoved.never_executed() && RetcodeClass::Rejected.never_executed());
    assert!(!RetcodeClass::Unknown.never_executed() && !RetcodeClass::Success.never_executed());
    assert_eq!(failure(None).class(), RetcodeClass::Rejected, "explicit failure text without a code");
    assert_eq!(failure(Some(10009)).class(), RetcodeClass::Unknown, "a success code in a failure ack");
    assert_eq!(failure(Some(10004)).class(), RetcodeClass::PriceMoved);
}

#[test]
fn closed_profit_from_fills() {
    // (label, symbol, account, side, lots, open, close, expected profit in the account currency)
    type Case<'a> = (&'a str, &'a str, Currency, Side, &'a str, &'a str, &'a str, &'a str);
    let cases: &[Case] = &[
        // (1.1050 − 1.1000) × 1 × 100 000 = 500.00 USD (contract §4.3 example; the original's tests said 5000).
        ("EURUSD buy +50 pips", "EURUSD", Currency::USD, Side::Buy, "1", "1.1000", "1.1050", "500.00"),
        // −(1.1050 − 1.1000) × 0.5 × 100 000 = −250.00 USD.
        ("EURUSD sell −50 pips", "EURUSD", Currency::USD, Side::Sell, "0.5", "1.1000", "1.1050", "-250.00"),
        // 500 USD ÷ 1.1050 (USD→EUR at close) = 452.4886… → 452.49 EUR.
        ("EURUSD in EUR account", "EURUSD", Currency::EUR, Side::Buy, "1", "1.1000", "1.1050", "452.49"),
        // 0.50 × 1 × 100 000 = 50 000 JPY ÷ 150.50 = 332.2259… → 332.23 USD.
        ("USDJPY buy +50 pips", "USDJPY", Currency::USD, Side::Buy, "1", "150.00", "150.50", "332.23"),
        // 0.75 × 0.3 × 100 000 = 22 500 JPY ÷ 149.25 = 150.7537… → 150.75 USD.
        ("USDJPY sell +75 pips", "USDJPY", Currency::USD, Side::Sell, "0.3", "150.000", "149.250", "150.75"),
        // 10.00 × 0.1 × 100 oz = 100.00 USD.
        ("XAUUSD sell +$10", "XAUUSD", Currency::USD, Side::Sell, "0.1", "2050.00", "2040.00", "100.00"),
        // −0.75 × 0.25 × 100 oz = −18.75 USD.
        ("XAUUSD buy −$0.75", "XAUUSD", Currency::USD, Side::Buy, "0.25", "2050.10", "2049.35", "-18.75"),
    ];
    for (label, sym, acct, side, lots, open, close, want) in cases {
        let i = lookup(sym).unwrap();
        let conv = i.quote_to_account(*acct, Some(d(close)), None).unwrap();
        let p = closed_profit(i, *side, Lots::new_unchecked(d(lots)), d(open), d(close), &conv).unwrap();
        assert_eq!(p, Money::new(d(want), *acct), "{label}");
    }
}

#[test]
fn client_order_ids() {
    let cases = [
        ("nil", Uuid::nil(), "0000000000000000000000"),
        ("max", Uuid::max(), "7n42DGM5Tflk9n8mt7Fhc7"),
        ("one", Uuid::from_u128(1), "0000000000000000000001"),
        ("sixty-two", Uuid::from_u128(62), "0000000000000000000010"),
    ];
    for (label, id, want) in cases {
        let c = ClientOrderId::from_uuid(id);
        assert_eq!(c.as_str(), want, "{label}");
        assert_eq!(c.to_uuid(), id, "{label} round trip");
        assert_eq!(ClientOrderId::parse(want), Some(c), "{label} parse");
        assert_eq!(ClientOrderId::from_comment(&c.comment()), Some(c), "{label} comment");
        assert!(c.comment().len() <= MT5_COMMENT_MAX_LEN, "{label} fits the MT5 comment");
    }
    let id = Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
    let c = ClientOrderId::from_uuid(id);
    assert_eq!(c, ClientOrderId::from_uuid(id), "deterministic");
    assert_eq!(c.comment().len(), 25);
    assert!(c.comment().starts_with("NT-"));
    let invalid = ["", "short", "7n42DGM5Tflk9n8mt7Fhc8", "0000000000000000000-01", "00000000000000000000000"];
    for s in invalid {
        assert_eq!(ClientOrderId::parse(s), None, "{s:?}");
    }
    assert_eq!(ClientOrderId::from_comment("Close by connector"), None);
    assert_eq!(
        ClientOrderId::from_comment(" NT-0000000000000000000001 "),
        Some(ClientOrderId::from_uuid(Uuid::from_u128(1)))
    );
}

#[test]
fn status_wire_values() {
    for s in OrderStatus::ALL {
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{}\"", s.as_str()), "{s}");
        let upper: OrderStatus = serde_json::from_str(&json.to_ascii_uppercase()).unwrap();
        assert_eq!(upper, s, "{s} upper-case accepted");
        assert_eq!(OrderStatus::parse(&s.as_str().to_ascii_uppercase()), Some(s));
    }
    assert_eq!(OrderStatus::Open.as_str(), "open", "the original's trades.status value");
    assert_eq!(OrderStatus::parse("bogus"), None);
    let positions: Vec<_> = OrderStatus::ALL.into_iter().filter(|s| s.is_position()).collect();
    assert_eq!(positions, vec![O, CP, MP, EX]);
    let terminal: Vec<_> = OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
    assert_eq!(terminal, vec![R, C, CE]);
}

#[test]
fn owner_check() {
    let a = Uuid::from_u128(1);
    assert_eq!(check_owner(a, a), Ok(()));
    assert_eq!(check_owner(a, Uuid::from_u128(2)), Err(Refused::NotOwner));
}

fn any_event() -> impl Strategy<Value = OrderEvent> {
    let ticket = prop_oneof![Just(T), Just(Ticket(8))];
    let code = prop_oneof![Just(None), (10004u32..10047).prop_map(Some)];
    prop_oneof![
        ticket.clone().prop_map(|t| OrderEvent::OpenFilled(Fill { ticket: t, price: d("1.1"), time: at() })),
        code.clone().prop_map(|c| OrderEvent::OpenFailed(failure(c))),
        Just(OrderEvent::NotSent { reason: "gone".into() }),
        Just(OrderEvent::OpenTimedOut),
        Just(OrderEvent::CloseRequested),
        Just(OrderEvent::CloseFilled { price: d("1.2"), time: at() }),
        code.clone().prop_map(|c| OrderEvent::CloseFailed(failure(c))),
        Just(OrderEvent::CloseTimedOut),
        Just(OrderEvent::ModifyRequested),
        Just(OrderEvent::ModifyAcked),
        code.prop_map(|c| OrderEvent::ModifyFailed(failure(c))),
        Just(OrderEvent::ModifyTimedOut),
        ticket.clone().prop_map(|t| OrderEvent::ReconciledOpen(PositionEvidence {
            ticket: t,
            open_price: d("1.1"),
            open_time: at()
        })),
        ticket.prop_map(|t| OrderEvent::ReconciledClosed(ClosedEvidence {
            ticket: t,
            close_price: d("1.2"),
            close_time: at()
        })),
        Just(OrderEvent::ReconciledAbsent),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// (b) Random event sequences from a fresh order: no position without open evidence (a success ack or
    /// reconciliation seeing it), never rejected from unknown without evidence, versions +1 per applied change,
    /// refused and no-op events change nothing, and terminal states stay terminal.
    #[test]
    fn order_machine_invariants(events in prop::collection::vec(any_event(), 0..40)) {
        let mut s = OrderState::new_pending();
        let mut opened_by_evidence = false;
        for e in &events {
            let before = s;
            match transition(s, e) {
                Ok(Transition::Applied(c)) => {
                    prop_assert_eq!(c.from, before);
                    prop_assert_eq!(c.to.version, before.version + 1);
                    prop_assert!(!before.status.is_terminal(), "terminal {} left by {}", before.status, e.name());
                    if before.status == U && c.to.status == R {
                        let evidence = matches!(e, OrderEvent::OpenFailed(f) if f.class().never_executed())
                            || matches!(e, OrderEvent::ReconciledAbsent);
                        prop_assert!(evidence, "unknown rejected by {}", e.name());
                    }
                    if matches!(e, OrderEvent::OpenFilled(_) | OrderEvent::ReconciledOpen(_)) {
                        opened_by_evidence = true;
                    }
                    if matches!(c.to.status, O | CP | MP | C) {
                        prop_assert!(opened_by_evidence, "{} without open evidence (via {})", c.to.status, e.name());
                        prop_assert!(c.to.ticket.is_some());
                    }
                    s = c.to;
                }
                Ok(Transition::Unchanged(_)) | Err(_) => {}
            }
            prop_assert!(s.version >= before.version);
        }
    }
}

#[test]
fn stop_sides() {
    type Case<'a> = (&'a str, Side, Option<&'a str>, Option<&'a str>, Result<(), &'a str>);
    let cases: &[Case] = &[
        ("buy ok", Side::Buy, Some("1.09"), Some("1.11"), Ok(())),
        ("sell ok", Side::Sell, Some("1.11"), Some("1.09"), Ok(())),
        ("none", Side::Buy, None, None, Ok(())),
        ("buy sl above", Side::Buy, Some("1.11"), None, Err("Stop loss for BUY order must be below entry price")),
        ("buy sl at entry", Side::Buy, Some("1.1"), None, Err("Stop loss for BUY order must be below entry price")),
        ("sell sl below", Side::Sell, Some("1.09"), None, Err("Stop loss for SELL order must be above entry price")),
        ("sl zero", Side::Buy, Some("0"), None, Err("Stop loss must be positive")),
        ("buy tp below", Side::Buy, None, Some("1.09"), Err("Take profit for BUY order must be above entry price")),
        ("sell tp above", Side::Sell, None, Some("1.11"), Err("Take profit for SELL order must be below entry price")),
        ("tp negative", Side::Sell, None, Some("-1"), Err("Take profit must be positive")),
    ];
    for (label, side, sl, tp, want) in cases {
        let got = validate_stops(*side, d("1.1"), sl.map(d), tp.map(d)).map_err(|e| e.to_string());
        assert_eq!(got, want.map_err(str::to_string), "{label}");
    }
}
