//! Engine unit tests: timeline, order modes, costs, currency conversion, sizing, stops/targets (conservative
//! intrabar rule, gaps), trailing equivalence with the live rule (property), causality (property), validation.

use chrono::{DateTime, Duration, TimeZone, Utc};
use nusatrade_domain::instrument::{Instrument, lookup};
use nusatrade_domain::money::{Currency, Side};
use nusatrade_domain::sizing::{SizingRequest, StopLoss, position_size};
use nusatrade_domain::trailing::{TrailingState, TrailingStopSettings, TrailingType};
use nusatrade_ml::candles::Columns;
use nusatrade_ml::indicators;
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

use super::sim::{FULL_EQUITY, py_floordiv};
use super::*;

fn d(s: &str) -> Decimal {
    Decimal::from_str_exact(s).expect("test decimal")
}

fn inst(symbol: &str) -> &'static Instrument {
    lookup(symbol).expect("catalogue symbol")
}

fn t0() -> DateTime<Utc> {
    // A Tuesday.
    Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap()
}

/// Bars `(open, high, low, close)` one `step` apart from `t0`.
fn bars_every(ohlc: &[(f64, f64, f64, f64)], step: Duration) -> Columns {
    let mut c = Columns::default();
    for (i, &(o, h, l, cl)) in ohlc.iter().enumerate() {
        c.time.push(t0() + step * i as i32);
        c.open.push(o);
        c.high.push(h);
        c.low.push(l);
        c.close.push(cl);
        c.volume.push(0.0);
    }
    c
}

fn hourly(ohlc: &[(f64, f64, f64, f64)]) -> Columns {
    bars_every(ohlc, Duration::hours(1))
}

/// `n` bars: open 100 + i, high open + 2, low open − 2, close open + 1.
fn ramp(n: usize) -> Columns {
    let v: Vec<_> = (0..n).map(|i| 100.0 + i as f64).map(|o| (o, o + 2.0, o - 2.0, o + 1.0)).collect();
    hourly(&v)
}

fn signals(n: usize, long: &[usize], short: &[usize], exit_long: &[usize], exit_short: &[usize]) -> Signals {
    let mut s = Signals::none(n);
    for (v, at) in [
        (&mut s.enter_long, long),
        (&mut s.enter_short, short),
        (&mut s.exit_long, exit_long),
        (&mut s.exit_short, exit_short),
    ] {
        for &i in at {
            v[i] = true;
        }
    }
    s
}

fn config() -> EngineConfig {
    EngineConfig {
        initial_cash: 10_000.0,
        commission: Commission::None,
        spread: 0.0,
        slippage: 0.0,
        leverage: 1.0,
        sizing: Sizing::FixedLots(d("1")),
        mode: OrderMode::Exclusive,
        risk: Risk::default(),
        swap: None,
        atr_period: 14,
        close_at_end: false,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn summary(o: &Outcome) -> Vec<(Side, usize, f64, usize, f64, ExitReason)> {
    o.trades.iter().map(|t| (t.side, t.entry_bar, t.entry_price, t.exit_bar, t.exit_price, t.exit_reason)).collect()
}

#[test]
fn python_floor_division_bit_for_bit() {
    // Values CPython prints for `a // b`.
    let cases = [
        (7.0, 2.0, 3.0),
        (-7.0, 2.0, -4.0),
        (7.0, -2.0, -4.0),
        (1.0, 0.1, 9.0), // 0.1 is a hair above 1/10: Python gives 9.0 where floor(1.0 / 0.1) gives 10.0
        (0.3, 0.1, 2.0), // floor(0.3 / 0.1) = floor(2.9999999999999996) = 2.0 as well
        (6.0, 3.0, 2.0),
        (0.0, 5.0, 0.0),
        (9_999.999_999_999_998, 1.071_6, 9_331.0),
    ];
    for (a, b, want) in cases {
        assert_eq!(py_floordiv(a, b), want, "{a} // {b}");
    }
    assert!(py_floordiv(-0.0, 5.0).is_sign_negative(), "the zero keeps the quotient's sign");
    assert_eq!(FULL_EQUITY, 0.999_999_999_999_999_8);
}

#[test]
fn price_validation_table() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, -1.0, MAX_PRICE, 1e300] {
        for len in 1..11 {
            for at in 0..len {
                let mut col = vec![1.5; len];
                col[at] = bad;
                assert!(!prices_in_range(&col), "{bad} at {at} of {len}");
            }
        }
    }
    assert!(prices_in_range(&[]));
    assert!(prices_in_range(&[1e-300, 0.999e12, 1.0, 2.0, 3.0]));
}

#[test]
fn decision_fills_at_next_open_and_last_bar_never_fills() {
    let bars = ramp(6);
    let s = signals(6, &[0, 5], &[], &[2], &[]);
    let o = run(&bars, &s, None, &config()).unwrap();
    assert_eq!(summary(&o), vec![(Side::Buy, 1, 101.0, 3, 103.0, ExitReason::Signal)]);
    assert_eq!(o.trades[0].pnl, 2.0);
    assert_eq!(o.equity[5], 10_002.0, "the last bar's entry is never filled");
    assert_eq!(o.exposure_bars, 3, "bars 1, 2 and 3 (closed at 3's open)");
    // Marked to market at each close while open: entry 101, closes 102 and 103.
    assert_eq!(&o.equity[..4], &[10_000.0, 10_001.0, 10_002.0, 10_002.0]);
}

#[test]
fn order_modes() {
    let bars = ramp(6);
    let run_mode = |mode, s: &Signals| {
        let c = EngineConfig { mode, close_at_end: true, ..config() };
        summary(&run(&bars, s, None, &c).unwrap())
    };
    use ExitReason::{EndOfData, Reversal};
    use Side::{Buy, Sell};
    // Exclusive: a same-side entry closes and re-opens.
    let s = signals(6, &[0, 2], &[], &[], &[]);
    assert_eq!(
        run_mode(OrderMode::Exclusive, &s),
        vec![(Buy, 1, 101.0, 3, 103.0, Reversal), (Buy, 3, 103.0, 5, 106.0, EndOfData)]
    );
    // Reverse: the same-side entry is ignored; the opposite one reverses.
    let s = signals(6, &[0, 1], &[3], &[], &[]);
    assert_eq!(
        run_mode(OrderMode::Reverse, &s),
        vec![(Buy, 1, 101.0, 4, 104.0, Reversal), (Sell, 4, 104.0, 5, 106.0, EndOfData)]
    );
    // Pyramid(2): two longs (the third entry is ignored), closed oldest first by the short entry.
    let s = signals(6, &[0, 1, 2], &[3], &[], &[]);
    assert_eq!(
        run_mode(OrderMode::Pyramid(2), &s),
        vec![
            (Buy, 1, 101.0, 4, 104.0, Reversal),
            (Buy, 2, 102.0, 4, 104.0, Reversal),
            (Sell, 4, 104.0, 5, 106.0, EndOfData)
        ]
    );
    // Both entries at once: contradictory, ignored. An exit of the other side: nothing to close.
    let s = signals(6, &[0], &[0], &[], &[]);
    assert!(run_mode(OrderMode::Exclusive, &s).is_empty());
    let s = signals(6, &[0], &[], &[], &[1]);
    assert_eq!(run_mode(OrderMode::Exclusive, &s), vec![(Buy, 1, 101.0, 5, 106.0, EndOfData)]);
    // Exit and entry of the same side on one bar: the exit closes (Signal), the entry opens again.
    let s = signals(6, &[0, 2], &[], &[2], &[]);
    let got = run_mode(OrderMode::Reverse, &s);
    assert_eq!(got[0], (Buy, 1, 101.0, 3, 103.0, ExitReason::Signal));
    assert_eq!(got[1], (Buy, 3, 103.0, 5, 106.0, EndOfData));
}

#[test]
fn costs_table() {
    // FixedLots(10) = 10 units without an instrument; entry at bar 1's open (101), exit at bar 3's open (103).
    let bars = ramp(5);
    // (label, long, spread, slippage, commission, entry fill, exit fill, commission paid)
    let cases = [
        ("long, no costs", true, 0.0, 0.0, Commission::None, 101.0, 103.0, 0.0),
        ("long, spread and slippage", true, 0.2, 0.05, Commission::None, 101.15, 102.85, 0.0),
        ("short, spread and slippage", false, 0.2, 0.05, Commission::None, 100.85, 103.15, 0.0),
        ("long, fraction", true, 0.2, 0.05, Commission::Fraction(0.001), 101.15, 102.85, 1.0115 + 1.0285),
        ("long, per lot (per unit here)", true, 0.0, 0.0, Commission::PerLot(0.5), 101.0, 103.0, 10.0),
    ];
    for (label, long, spread, slippage, commission, entry, exit, paid) in cases {
        let s = if long { signals(5, &[0], &[], &[2], &[]) } else { signals(5, &[], &[0], &[], &[2]) };
        let c = EngineConfig { spread, slippage, commission, sizing: Sizing::FixedLots(d("10")), ..config() };
        let o = run(&bars, &s, None, &c).unwrap();
        let t = &o.trades[0];
        assert!(close(t.entry_price, entry) && close(t.exit_price, exit), "{label}: fills {t:?}");
        assert!(close(t.commission, paid), "{label}: commission {}", t.commission);
        let sign = if long { 1.0 } else { -1.0 };
        let gross = sign * 10.0 * (exit - entry);
        assert!(close(t.pnl, gross - paid), "{label}: pnl {} vs {}", t.pnl, gross - paid);
        assert!(close(*o.equity.last().unwrap(), 10_000.0 + gross - paid), "{label}: cash");
        let ret = sign * (exit / entry - 1.0) - paid / (10.0 * entry);
        assert!(close(t.return_pct, ret), "{label}: return {}", t.return_pct);
    }
}

#[test]
fn per_lot_commission_and_swap_with_an_instrument() {
    // Daily bars: entry at bar 1, exit at bar 4's open: rollovers before bars 2, 3 and 4.
    let v: Vec<_> = (0..6).map(|_| (1.1, 1.1005, 1.0995, 1.1)).collect();
    let bars = bars_every(&v, Duration::days(1));
    for (long, swap, charged) in [(true, 5.0, 15.0), (false, -2.0, -6.0)] {
        let s = if long { signals(6, &[0], &[], &[3], &[]) } else { signals(6, &[], &[0], &[], &[3]) };
        let c = EngineConfig {
            commission: Commission::PerLot(3.5),
            leverage: 100.0,
            swap: Some(if long { (swap, 0.0) } else { (0.0, swap) }),
            ..config()
        };
        let o = run(&bars, &s, Some(inst("EURUSD")), &c).unwrap();
        let t = &o.trades[0];
        assert_eq!((t.lots, t.units), (Some(d("1")), 100_000.0));
        assert_eq!(t.commission, 7.0, "3.5 per lot per side");
        assert_eq!(t.swap, charged, "3 nights");
        assert!(close(t.pnl, -7.0 - charged));
        assert!(close(o.equity[5], 10_000.0 - 7.0 - charged));
    }
}

#[test]
fn currency_conversion() {
    // USDJPY (account = base): P/L in JPY divided by the exit price.
    let bars = hourly(&[(150.0, 150.1, 149.9, 150.0), (150.0, 151.6, 149.9, 151.5), (151.5, 151.6, 151.4, 151.5)]);
    let s = signals(3, &[0], &[], &[1], &[]);
    let c = EngineConfig { sizing: Sizing::FixedLots(d("0.1")), ..config() };
    let t = &run(&bars, &s, Some(inst("USDJPY")), &c).unwrap().trades[0];
    assert_eq!(t.units, 10_000.0);
    assert!(close(t.pnl, 10_000.0 * 1.5 / 151.5), "{}", t.pnl);
    // A cross (EURGBP): the account is taken in the quote currency, P/L as is.
    let bars = hourly(&[(0.85, 0.851, 0.849, 0.85), (0.85, 0.86, 0.849, 0.855), (0.855, 0.856, 0.854, 0.855)]);
    let t = &run(&bars, &s, Some(inst("EURGBP")), &c).unwrap().trades[0];
    assert!(close(t.pnl, 10_000.0 * 0.005), "{}", t.pnl);
}

#[test]
fn sizing_table() {
    let bars = ramp(4);
    let long = signals(4, &[0], &[], &[], &[]);
    let opened = |c: &EngineConfig, i: Option<&'static Instrument>| {
        let o = run(&bars, &long, i, &EngineConfig { close_at_end: true, ..c.clone() }).unwrap();
        (o.trades.first().map(|t| (t.units, t.lots)), o.skipped_entries)
    };
    // AllEquityUnits: int(10 000 × (1 − ε) // (101 + 101 × 1 %)) = 98 units.
    let c = EngineConfig { sizing: Sizing::AllEquityUnits, commission: Commission::Fraction(0.01), ..config() };
    assert_eq!(opened(&c, None), (Some((98.0, None)), 0));
    // EquityFraction 0.5 at 101: floor(5 000 / 101) = 49 units; with leverage 3: floor(15 000 / 101) = 148.
    let c = EngineConfig { sizing: Sizing::EquityFraction(0.5), ..config() };
    assert_eq!(opened(&c, None).0, Some((49.0, None)));
    assert_eq!(opened(&EngineConfig { leverage: 3.0, ..c }, None).0, Some((148.0, None)));
    // Margin: 200 units at 101 need 20 200; skipped with 10 000 at leverage 1, opened at leverage 3.
    let c = EngineConfig { sizing: Sizing::FixedLots(d("200")), ..config() };
    assert_eq!(opened(&c, None), (None, 1));
    assert_eq!(opened(&EngineConfig { leverage: 3.0, ..c.clone() }, None).0, Some((200.0, None)));
    // max_lots caps (units without an instrument).
    let capped = EngineConfig { risk: Risk { max_lots: Some(d("30")), ..Risk::default() }, ..c };
    assert_eq!(opened(&capped, None).0, Some((30.0, None)));

    // With an instrument: lots floored to the step and capped.
    let fx = hourly(&[(1.1, 1.1005, 1.0995, 1.1); 4]);
    let run_fx = |c: &EngineConfig| {
        let o = run(&fx, &long, Some(inst("EURUSD")), &EngineConfig { close_at_end: true, ..c.clone() }).unwrap();
        o.trades.first().map(|t| (t.units, t.lots))
    };
    let c = EngineConfig { sizing: Sizing::FixedLots(d("0.129")), leverage: 100.0, ..config() };
    assert_eq!(run_fx(&c), Some((12_000.0, Some(d("0.12")))));
    let c = EngineConfig {
        sizing: Sizing::FixedLots(d("5")),
        leverage: 100.0,
        risk: Risk { max_lots: Some(d("2")), ..Risk::default() },
        ..config()
    };
    assert_eq!(run_fx(&c), Some((200_000.0, Some(d("2")))));
    // RiskPercent: the live calculator's size. 1 % of 10 000 to a 20-pip stop: 100 / (0.0020 × 100 000) = 0.5.
    let c = EngineConfig {
        sizing: Sizing::RiskPercent(d("1")),
        leverage: 100.0,
        risk: Risk { stop_loss: StopRule::Pips(20.0), ..Risk::default() },
        ..config()
    };
    let live = position_size(
        inst("EURUSD"),
        &SizingRequest {
            account_balance: d("10000"),
            risk_percent: d("1"),
            entry_price: d("1.1"),
            stop_loss: StopLoss::Price(d("1.098")),
            account_currency: Currency::USD,
            conversion_rate: None,
        },
    )
    .unwrap();
    assert_eq!(live.lot_size.value(), d("0.5"));
    assert_eq!(run_fx(&c), Some((50_000.0, Some(d("0.5")))));
    // Generic RiskPercent: 1 % of 10 000 over a 1 % stop of 101 → floor(100 / 1.01) = 99 units.
    let c = EngineConfig {
        sizing: Sizing::RiskPercent(d("1")),
        leverage: 2.0,
        risk: Risk { stop_loss: StopRule::Percent(1.0), ..Risk::default() },
        ..config()
    };
    assert_eq!(opened(&c, None).0, Some((99.0, None)));
}

/// EURUSD long or short entered at bar 1's open (1.1), 20-pip stop, 40-pip target; bar 2 is the case's bar.
fn stop_target_case(long: bool, bar2: (f64, f64, f64, f64), spread: f64) -> Trade {
    let bars = hourly(&[(1.1, 1.1002, 1.0998, 1.1), (1.1, 1.1005, 1.0995, 1.1), bar2, (1.1, 1.1, 1.1, 1.1)]);
    let s = if long { signals(4, &[0], &[], &[], &[]) } else { signals(4, &[], &[0], &[], &[]) };
    let c = EngineConfig {
        spread,
        leverage: 100.0,
        close_at_end: true,
        risk: Risk { stop_loss: StopRule::Pips(20.0), take_profit: TargetRule::Pips(40.0), ..Risk::default() },
        ..config()
    };
    let o = run(&bars, &s, Some(inst("EURUSD")), &c).unwrap();
    o.trades[0].clone()
}

#[test]
fn stops_and_targets_inside_a_bar() {
    use ExitReason::{StopLoss, TakeProfit};
    // (label, long, bar 2, exit price, reason)
    let cases = [
        ("long stop", true, (1.1, 1.101, 1.0975, 1.098), 1.098, StopLoss),
        ("long target", true, (1.1, 1.1045, 1.099, 1.104), 1.104, TakeProfit),
        ("long both: the stop first", true, (1.1, 1.105, 1.097, 1.1), 1.098, StopLoss),
        ("long gap through the stop: the open", true, (1.097, 1.099, 1.096, 1.098), 1.097, StopLoss),
        ("long gap over the target: the open", true, (1.105, 1.106, 1.097, 1.1), 1.105, TakeProfit),
        ("short stop", false, (1.1, 1.1025, 1.099, 1.1), 1.102, StopLoss),
        ("short target", false, (1.1, 1.1005, 1.0955, 1.096), 1.096, TakeProfit),
        ("short both: the stop first", false, (1.1, 1.103, 1.095, 1.1), 1.102, StopLoss),
        ("short gap through the stop", false, (1.103, 1.104, 1.1, 1.1), 1.103, StopLoss),
        ("short gap under the target", false, (1.095, 1.104, 1.094, 1.1), 1.095, TakeProfit),
    ];
    for (label, long, bar, price, reason) in cases {
        let t = stop_target_case(long, bar, 0.0);
        assert_eq!((t.exit_bar, t.exit_price, t.exit_reason), (2, price, reason), "{label}");
    }
    // Untouched: held to the end.
    let t = stop_target_case(true, (1.1, 1.1039, 1.0981, 1.1), 0.0);
    assert_eq!(t.exit_reason, ExitReason::EndOfData);
    // With a 2-pip spread the long pays 1.1001 and its stop is 1.0981, on the bid: a low of 1.09815 (above the
    // stop) is a bid of 1.09805 (through it).
    let t = stop_target_case(true, (1.1, 1.1005, 1.09815, 1.1), 0.0002);
    assert!(close(t.entry_price, 1.1001));
    assert_eq!((t.exit_bar, t.exit_price, t.exit_reason), (2, 1.0981, StopLoss));
    // The entry bar itself is checked: a stop hit on the bar of the entry.
    let bars = hourly(&[(1.1, 1.1, 1.1, 1.1), (1.1, 1.1001, 1.097, 1.098), (1.1, 1.1, 1.1, 1.1)]);
    let c =
        EngineConfig { leverage: 100.0, risk: Risk { stop_loss: StopRule::Pips(20.0), ..Risk::default() }, ..config() };
    let o = run(&bars, &signals(3, &[0], &[], &[], &[]), Some(inst("EURUSD")), &c).unwrap();
    assert_eq!(summary(&o), vec![(Side::Buy, 1, 1.1, 1, 1.098, StopLoss)]);
}

#[test]
fn atr_and_risk_reward_levels() {
    // Bars 0–5 vary (for the ATR); bar 6 (the entry bar) is quiet; bar 7 is the probe.
    let eurusd = inst("EURUSD");
    let mut v: Vec<_> = (0..6)
        .map(|i| {
            let o = 1.1 + 0.001 * ((i * 7 % 5) as f64);
            (o, o + 0.0015, o - 0.001, o + 0.0004)
        })
        .collect();
    let entry = v[5].3;
    v.push((entry, entry + 0.0001, entry - 0.0001, entry));
    let c = EngineConfig {
        leverage: 100.0,
        atr_period: 3,
        close_at_end: true,
        risk: Risk { stop_loss: StopRule::Atr(2.0), take_profit: TargetRule::RiskReward(1.5), ..Risk::default() },
        ..config()
    };
    let probe = |bar7: (f64, f64, f64, f64), decided: usize| {
        let mut v = v.clone();
        v.push(bar7);
        let bars = hourly(&v);
        let o = run(&bars, &signals(8, &[decided], &[], &[], &[]), Some(eurusd), &c).unwrap();
        (o, indicators::atr(&bars.high, &bars.low, &bars.close, 3))
    };
    // Decided at bar 1: the ATR(3) is still warming up: skipped.
    let (o, _) = probe((entry, entry, entry, entry), 1);
    assert_eq!((o.trades.len(), o.skipped_entries), (0, 1));
    // Decided at bar 5, filled at bar 6's open: stop = entry − 2 × ATR(bar 5), target = entry + 1.5 × distance,
    // both rounded to 5 digits. A bar 7 through both exits at the stop; one only up through the target at it.
    let round = |x: f64| eurusd.round_price(Decimal::from_f64(x).unwrap()).to_f64().unwrap();
    let (o, atr) = probe((entry, entry + 0.05, entry - 0.05, entry), 5);
    let sl = round(entry - 2.0 * atr[5]);
    let tp = round(entry + 1.5 * (entry - sl));
    assert!(sl < entry - 0.001 && tp > entry + 0.001, "levels {sl} {tp} around {entry}");
    assert_eq!(summary(&o), vec![(Side::Buy, 6, entry, 7, sl, ExitReason::StopLoss)]);
    let (o, _) = probe((entry, entry + 0.05, entry - 0.0002, entry), 5);
    assert_eq!(summary(&o), vec![(Side::Buy, 6, entry, 7, tp, ExitReason::TakeProfit)]);
}

#[test]
fn excursions_exposure_and_close_at_end() {
    // Long at 100 (bar 1's open); bars 1–2 reach 105 and 97; exit at bar 3's open 102.
    let bars = hourly(&[
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 105.0, 99.0, 101.0),
        (101.0, 103.0, 97.0, 102.0),
        (102.0, 110.0, 90.0, 100.0),
        (100.0, 100.0, 100.0, 100.0),
    ]);
    let o = run(&bars, &signals(5, &[0], &[], &[2], &[]), None, &config()).unwrap();
    let t = &o.trades[0];
    assert_eq!((t.mfe, t.mae), (5.0, 3.0), "the exit bar's own range is not counted");
    assert_eq!(o.exposure_bars, 3);
    // close_at_end: listed with EndOfData at the last close; the last equity is the cash.
    let c = EngineConfig { close_at_end: true, ..config() };
    let o = run(&bars, &signals(5, &[], &[0], &[], &[]), None, &c).unwrap();
    assert_eq!(summary(&o), vec![(Side::Sell, 1, 100.0, 4, 100.0, ExitReason::EndOfData)]);
    assert_eq!((o.trades[0].mfe, o.trades[0].mae), (10.0, 10.0));
    assert_eq!(o.equity[4], 10_000.0);
    assert_eq!(o.exposure_bars, 4);
    // Without it: not listed, valued at the last close.
    let o = run(&bars, &signals(5, &[], &[0], &[], &[]), None, &config()).unwrap();
    assert!(o.trades.is_empty());
    assert_eq!(o.equity[3], 10_000.0, "short 1 unit from 100, close 100");
}

#[test]
fn out_of_money_closes_everything_and_stops() {
    let bars = hourly(&[
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 100.0, 98.0, 99.5),
        (99.5, 99.5, 97.0, 98.0),
        (98.0, 120.0, 98.0, 110.0),
    ]);
    let c = EngineConfig { leverage: 100.0, sizing: Sizing::EquityFraction(1.0), ..config() };
    let o = run(&bars, &signals(4, &[0], &[], &[], &[]), None, &c).unwrap();
    // 10 000 units at 100: −5 000 at 99.5, −20 000 at 98 → out of money at bar 2's close.
    assert_eq!(summary(&o), vec![(Side::Buy, 1, 100.0, 2, 98.0, ExitReason::MarginCall)]);
    assert_eq!(o.equity, vec![10_000.0, 5_000.0, 0.0, 0.0]);
    assert_eq!(o.drawdown, vec![0.0, 0.5, 1.0, 1.0]);
}

#[test]
fn trailing_moves_on_closes_and_reports_trailing_stop() {
    // Long EURUSD at 1.1; bar 1 closes +30 pips → the stop trails to 1.1015 (15 pips behind); bar 2 dips to 1.1010.
    let bars = hourly(&[
        (1.1, 1.1, 1.1, 1.1),
        (1.1, 1.1031, 1.0999, 1.103),
        (1.103, 1.1035, 1.101, 1.102),
        (1.1, 1.1, 1.1, 1.1),
    ]);
    let trailing = TrailingStopSettings {
        trailing_type: TrailingType::FixedPips,
        activation_pips: d("20"),
        trail_distance_pips: d("15"),
        breakeven_enabled: false,
        ..TrailingStopSettings::default()
    };
    let c = EngineConfig {
        leverage: 100.0,
        risk: Risk { stop_loss: StopRule::Pips(50.0), trailing: Some(trailing), ..Risk::default() },
        ..config()
    };
    let o = run(&bars, &signals(4, &[0], &[], &[], &[]), Some(inst("EURUSD")), &c).unwrap();
    assert_eq!(summary(&o), vec![(Side::Buy, 1, 1.1, 2, 1.1015, ExitReason::TrailingStop)]);
    // The same bar 1 with only a 60-pip stop and no trailing: nothing happens.
    let c = EngineConfig { risk: Risk { stop_loss: StopRule::Pips(60.0), ..Risk::default() }, ..c };
    assert!(run(&bars, &signals(4, &[0], &[], &[], &[]), Some(inst("EURUSD")), &c).unwrap().trades.is_empty());
}

#[test]
fn configuration_limits() {
    type Mutate = fn(&mut EngineConfig);
    let cases: &[(&str, Option<&str>, Mutate)] = &[
        ("cash", None, |c| c.initial_cash = 0.0),
        ("cash nan", None, |c| c.initial_cash = f64::NAN),
        ("spread", None, |c| c.spread = -1.0),
        ("slippage", None, |c| c.slippage = f64::INFINITY),
        ("leverage", None, |c| c.leverage = 0.5),
        ("fraction", None, |c| c.commission = Commission::Fraction(0.1)),
        ("per lot", None, |c| c.commission = Commission::PerLot(-1.0)),
        ("atr period", None, |c| c.atr_period = 0),
        ("pyramid 0", None, |c| c.mode = OrderMode::Pyramid(0)),
        ("pyramid too many", None, |c| c.mode = OrderMode::Pyramid(MAX_PYRAMID + 1)),
        ("swap", None, |c| c.swap = Some((f64::NAN, 0.0))),
        ("pips without instrument", None, |c| c.risk.stop_loss = StopRule::Pips(10.0)),
        ("target pips without instrument", None, |c| c.risk.take_profit = TargetRule::Pips(10.0)),
        ("trailing without instrument", None, |c| c.risk.trailing = Some(TrailingStopSettings::default())),
        ("trailing percentage", Some("EURUSD"), |c| {
            c.risk.trailing =
                Some(TrailingStopSettings { percentage: Decimal::from(101), ..TrailingStopSettings::default() })
        }),
        ("trailing atr multiplier", Some("EURUSD"), |c| {
            c.risk.trailing =
                Some(TrailingStopSettings { atr_multiplier: Decimal::from(10_000), ..TrailingStopSettings::default() })
        }),
        ("risk reward without stop", None, |c| c.risk.take_profit = TargetRule::RiskReward(2.0)),
        ("risk percent without stop", Some("EURUSD"), |c| c.sizing = Sizing::RiskPercent(Decimal::ONE)),
        ("risk percent above 10", Some("EURUSD"), |c| {
            c.sizing = Sizing::RiskPercent(Decimal::from(11));
            c.risk.stop_loss = StopRule::Pips(10.0);
        }),
        ("negative stop", None, |c| c.risk.stop_loss = StopRule::Percent(-1.0)),
        ("fixed lots below the minimum", Some("EURUSD"), |c| c.sizing = Sizing::FixedLots(Decimal::new(1, 3))),
        ("fixed lots zero", None, |c| c.sizing = Sizing::FixedLots(Decimal::ZERO)),
        ("equity fraction", None, |c| c.sizing = Sizing::EquityFraction(1.5)),
        ("max lots", None, |c| c.risk.max_lots = Some(Decimal::ZERO)),
    ];
    let bars = ramp(3);
    let s = Signals::none(3);
    for (label, symbol, mutate) in cases {
        let mut c = config();
        mutate(&mut c);
        let got = run(&bars, &s, symbol.map(inst), &c);
        assert!(matches!(got, Err(EngineError::InvalidConfig(_))), "{label}: {got:?}");
    }
    assert_eq!(
        run(&bars, &Signals::none(2), None, &config()),
        Err(EngineError::LengthMismatch { signals: 2, bars: 3 })
    );
    let mut warm = Signals::none(3);
    warm.warmup = 3;
    assert!(matches!(run(&bars, &warm, None, &config()), Err(EngineError::InvalidConfig(_))));
    let mut bad = ramp(3);
    bad.low[1] = f64::NAN;
    let err = run(&bad, &s, None, &config()).unwrap_err();
    assert!(err.to_string().contains("bar 1"), "{err}");
    bad.low.pop();
    assert!(matches!(run(&bad, &s, None, &config()), Err(EngineError::InvalidBars(_))));
    // No bars at all: an empty outcome.
    let o = run(&Columns::default(), &Signals::none(0), None, &config()).unwrap();
    assert!(o.equity.is_empty() && o.trades.is_empty());
}

/// Random OHLC bars around 1.1 (EURUSD points), hourly; `moves` drives the closes, `wicks` the ranges.
fn random_bars(moves: &[i64], wicks: &[(u8, u8)]) -> Columns {
    let mut price = 110_000_i64;
    let mut v = Vec::with_capacity(moves.len());
    for (m, (up, down)) in moves.iter().zip(wicks) {
        let open = price;
        price = (price + m).max(1_000);
        let high = open.max(price) + i64::from(*up);
        let low = (open.min(price) - i64::from(*down)).max(500);
        v.push((open as f64 / 1e5, high as f64 / 1e5, low as f64 / 1e5, price as f64 / 1e5));
    }
    hourly(&v)
}

fn any_trailing() -> impl Strategy<Value = TrailingStopSettings> {
    let kind = prop_oneof![Just(TrailingType::FixedPips), Just(TrailingType::AtrBased), Just(TrailingType::Percentage)];
    (any::<bool>(), kind, 0i64..40, 1i64..30, 1i64..30, 1i64..20, any::<bool>(), 0i64..30, 0i64..5).prop_map(
        |(enabled, trailing_type, act, dist, atr_m, pct, be, be_pips, lock)| TrailingStopSettings {
            enabled,
            trailing_type,
            activation_pips: Decimal::from(act),
            trail_distance_pips: Decimal::from(dist),
            atr_multiplier: Decimal::new(atr_m, 1),
            percentage: Decimal::new(pct, 2),
            breakeven_enabled: be,
            breakeven_pips: Decimal::from(be_pips),
            lock_profit_pips: Decimal::from(lock),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The engine's stop path is the live rule's: feeding `TrailingState::on_price` the same closes (and ATRs)
    /// and checking its stop against each next bar gives the same exit bar, price and reason.
    #[test]
    fn trailing_matches_the_live_rule(
        moves in prop::collection::vec(-40i64..40, 10..80),
        wicks in prop::collection::vec((0u8..30, 0u8..30), 80),
        long in any::<bool>(),
        initial in prop::option::of(5i64..60),
        settings in any_trailing(),
    ) {
        let bars = random_bars(&moves, &wicks);
        let n = bars.close.len();
        let eurusd = inst("EURUSD");
        let c = EngineConfig {
            leverage: 100.0,
            atr_period: 5,
            close_at_end: true,
            risk: Risk {
                stop_loss: initial.map_or(StopRule::None, |p| StopRule::Pips(p as f64)),
                trailing: Some(settings),
                ..Risk::default()
            },
            ..config()
        };
        let s = if long { signals(n, &[0], &[], &[], &[]) } else { signals(n, &[], &[0], &[], &[]) };
        let o = run(&bars, &s, Some(eurusd), &c).unwrap();

        // The live rule, driven by hand.
        let side = if long { Side::Buy } else { Side::Sell };
        let sign = if long { Decimal::ONE } else { Decimal::NEGATIVE_ONE };
        let entry = bars.open[1];
        let entry_d = Decimal::from_f64(entry).unwrap();
        let sl = initial.map(|p| eurusd.round_price(entry_d - sign * eurusd.from_pips(Decimal::from(p))));
        let mut state = TrailingState::new(side, entry_d, sl);
        let atr = indicators::atr(&bars.high, &bars.low, &bars.close, 5);
        let mut want = (n - 1, bars.close[n - 1], ExitReason::EndOfData);
        for (j, a) in atr.iter().enumerate().skip(1) {
            if let Some(stop) = state.stop_loss.and_then(|s| s.to_f64()) {
                let reason = if state.stop_loss == sl { ExitReason::StopLoss } else { ExitReason::TrailingStop };
                let (open, extreme) = if long { (bars.open[j], bars.low[j]) } else { (bars.open[j], bars.high[j]) };
                let beyond = |p: f64| if long { p <= stop } else { p >= stop };
                if beyond(open) {
                    want = (j, open, reason);
                    break;
                }
                if beyond(extreme) {
                    want = (j, stop, reason);
                    break;
                }
            }
            let a = Some(*a).filter(|a| *a > 0.0).and_then(Decimal::from_f64);
            state.on_price(eurusd, &settings, Decimal::from_f64(bars.close[j]).unwrap(), a);
        }
        let t = &o.trades[0];
        prop_assert_eq!((t.entry_bar, t.entry_price), (1, entry));
        prop_assert_eq!((t.exit_bar, t.exit_price, t.exit_reason), want);
    }

    /// Causality: truncating the data after any bar, or altering every bar and decision after a random one,
    /// changes no equity value and no trade exited up to that bar.
    #[test]
    fn later_bars_never_change_the_past(
        moves in prop::collection::vec(-60i64..60, 20..90),
        wicks in prop::collection::vec((0u8..40, 0u8..40), 90),
        other_moves in prop::collection::vec(-200i64..200, 90),
        decisions in prop::collection::vec(0u8..40, 90),
        other_decisions in prop::collection::vec(0u8..40, 90),
        cut in 0.0f64..1.0,
        variant in 0usize..6,
        leverage in 1.0f64..50.0,
        spread in 0u8..5,
    ) {
        let bars = random_bars(&moves, &wicks);
        let n = bars.close.len();
        let k = ((n as f64 * cut) as usize).clamp(1, n - 1);
        let make_signals = |d: &[u8], len: usize| {
            let mut s = Signals::none(len);
            for (i, x) in d.iter().take(len).enumerate() {
                match x {
                    0 => s.enter_long[i] = true,
                    1 => s.enter_short[i] = true,
                    2 => s.exit_long[i] = true,
                    3 => s.exit_short[i] = true,
                    _ => {}
                }
            }
            s
        };
        let s = make_signals(&decisions, n);
        let (instrument, c) = causality_config(variant, leverage, f64::from(spread) * 1e-5);

        let full = run(&bars, &s, instrument, &c).unwrap();
        let past = |o: &Outcome| o.trades.iter().filter(|t| t.exit_bar < k).cloned().collect::<Vec<_>>();

        // Truncated after bar k − 1, for every k.
        for k in 1..n {
            let mut head = bars.clone();
            for col in [&mut head.open, &mut head.high, &mut head.low, &mut head.close, &mut head.volume] {
                col.truncate(k);
            }
            head.time.truncate(k);
            let head_out = run(&head, &make_signals(&decisions, k), instrument, &c).unwrap();
            let past = |o: &Outcome| o.trades.iter().filter(|t| t.exit_bar < k).cloned().collect::<Vec<_>>();
            prop_assert_eq!(&head_out.equity[..], &full.equity[..k], "truncated at {}", k);
            prop_assert_eq!(past(&head_out), past(&full), "truncated at {}", k);
        }

        // Bars and decisions from k on replaced.
        let mut altered_moves = moves.clone();
        altered_moves[k..].copy_from_slice(&other_moves[k..n]);
        let mut altered = random_bars(&altered_moves, &wicks);
        // random_bars rebuilds the path: the first k bars are the same by construction.
        prop_assert_eq!(&altered.close[..k], &bars.close[..k]);
        altered.volume[k..].fill(1.0);
        let mut mixed = decisions.clone();
        mixed[k..].copy_from_slice(&other_decisions[k..]);
        let alt_out = run(&altered, &make_signals(&mixed, n), instrument, &c).unwrap();
        prop_assert_eq!(&alt_out.equity[..k], &full.equity[..k]);
        prop_assert_eq!(past(&alt_out), past(&full));
    }
}

/// The configurations of the causality property: generic and EURUSD, every mode, stops and targets of each
/// kind, trailing, swap, all sizings.
fn causality_config(variant: usize, leverage: f64, spread: f64) -> (Option<&'static Instrument>, EngineConfig) {
    let base = EngineConfig { leverage, spread, slippage: spread / 2.0, ..config() };
    match variant {
        0 => (None, EngineConfig { sizing: Sizing::AllEquityUnits, commission: Commission::Fraction(0.002), ..base }),
        1 => (
            None,
            EngineConfig {
                sizing: Sizing::EquityFraction(0.3),
                mode: OrderMode::Pyramid(3),
                risk: Risk {
                    stop_loss: StopRule::Percent(0.2),
                    take_profit: TargetRule::RiskReward(2.0),
                    ..Risk::default()
                },
                ..base
            },
        ),
        2 => (
            Some(inst("EURUSD")),
            EngineConfig {
                sizing: Sizing::RiskPercent(Decimal::ONE),
                mode: OrderMode::Reverse,
                commission: Commission::PerLot(7.0),
                swap: Some((3.0, -1.0)),
                risk: Risk {
                    stop_loss: StopRule::Atr(1.5),
                    take_profit: TargetRule::Atr(3.0),
                    trailing: Some(TrailingStopSettings::default()),
                    max_lots: Some(Decimal::from(3)),
                },
                atr_period: 5,
                ..base
            },
        ),
        3 => (
            Some(inst("EURUSD")),
            EngineConfig {
                sizing: Sizing::FixedLots(Decimal::new(5, 1)),
                mode: OrderMode::Pyramid(2),
                risk: Risk {
                    stop_loss: StopRule::Pips(15.0),
                    take_profit: TargetRule::Pips(25.0),
                    trailing: Some(TrailingStopSettings {
                        trailing_type: TrailingType::FixedPips,
                        activation_pips: Decimal::from(5),
                        trail_distance_pips: Decimal::from(5),
                        ..TrailingStopSettings::default()
                    }),
                    ..Risk::default()
                },
                ..base
            },
        ),
        4 => (Some(inst("USDJPY")), EngineConfig { sizing: Sizing::AllEquityUnits, ..base }),
        _ => (None, EngineConfig { sizing: Sizing::FixedLots(Decimal::from(5_000)), ..base }),
    }
}
