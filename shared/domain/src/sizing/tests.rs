use proptest::prelude::*;

use super::*;
use crate::instrument::{INSTRUMENTS, lookup};
use crate::money::d;

struct Case {
    label: &'static str,
    symbol: &'static str,
    account: Currency,
    balance: &'static str,
    risk: &'static str,
    entry: &'static str,
    stop: StopLoss,
    rate: Option<&'static str>,
    /// (lots, risk amount, stop pips, risk at size rounded to cents, pip value per lot rounded to 4 dp, capped)
    want: Result<(&'static str, &'static str, &'static str, &'static str, &'static str, bool), SizingError>,
}

impl Case {
    fn ok(
        self,
        lots: &'static str,
        risk: &'static str,
        pips: &'static str,
        at: &'static str,
        pv: &'static str,
        capped: bool,
    ) -> Case {
        Case { want: Ok((lots, risk, pips, at, pv, capped)), ..self }
    }

    fn err(self, e: SizingError) -> Case {
        Case { want: Err(e), ..self }
    }
}

/// A case without its expectation (see [`Case::ok`], [`Case::err`]): `balance` in `account`, `risk` percent,
/// `entry`, `stop`, and the quote → account `rate` when given.
#[allow(clippy::too_many_arguments)]
fn case(
    label: &'static str,
    symbol: &'static str,
    account: Currency,
    balance: &'static str,
    risk: &'static str,
    entry: &'static str,
    stop: StopLoss,
    rate: Option<&'static str>,
) -> Case {
    // `want` until `ok` or `err` sets it.
    Case { label, symbol, account, balance, risk, entry, stop, rate, want: Err(SizingError::InvalidEntry) }
}

fn sl(p: &str) -> StopLoss {
    StopLoss::Price(d(p))
}

const USD: Currency = Currency::USD;
const EUR: Currency = Currency::EUR;

/// The sizing cases of issue 4. Arithmetic: risk = balance × risk% / 100; loss per lot = |entry − SL| × contract ×
/// (quote → account); lots = floor_step(risk / loss per lot).
fn cases() -> Vec<Case> {
    vec![
        // 1. 10 000 × 1% = 100 USD; 1.1000 − 1.0950 = 0.0050 = 50 pips; loss/lot = 0.005 × 100 000 = 500 USD;
        //    100 / 500 = 0.20.
        case("EURUSD, USD account, 50 pips", "EURUSD", USD, "10000", "1", "1.1000", sl("1.0950"), None)
            .ok("0.2", "100", "50", "100.00", "10", false),
        // 2. 10 000 × 2.9% = 290; 100 pips → loss/lot 1 000; 290 / 1 000 = 0.29 exactly.
        //    Naive f64: 1.1 − 1.09 = 0.010000000000000009 → 100.00000000000009 pips → 0.28999999999999976 lots →
        //    floor to 0.01 = 0.28, one step less (see `naive_float_rounding_loses_a_step`).
        case("EURUSD, exact 0.29 that f64 floors to 0.28", "EURUSD", USD, "10000", "2.9", "1.1000", sl("1.0900"), None)
            .ok("0.29", "290", "100", "290.00", "10", false),
        // 3. 5 000 × 2% = 100; 1.2650 − 1.2610 = 40 pips → loss/lot 400; 100 / 400 = 0.25.
        case("GBPUSD, USD account", "GBPUSD", USD, "5000", "2", "1.2650", sl("1.2610"), None)
            .ok("0.25", "100", "40", "100.00", "10", false),
        // 4. 100 / (30 pips × 10) = 0.3333… → rounded DOWN to 0.33 (never up); risk at size 0.33 × 300 = 99.
        case("EURUSD, non-terminating quotient", "EURUSD", USD, "10000", "1", "1.1000", sl("1.0970"), None)
            .ok("0.33", "100", "30", "99.00", "10", false),
        // 5. USDJPY, USD account (= base): JPY→USD = 1/150. 150.00 − 149.50 = 0.50 = 50 pips (pip 0.01);
        //    loss/lot = 0.5 × 100 000 = 50 000 JPY = 333.33 USD; lots = 100 × 150 / 50 000 = 0.30 exactly.
        //    (With a rounded reciprocal 1/150 = 0.0066666…67 the quotient is 0.2999…98 → 0.29: the exact fraction
        //    matters.) Pip value = 1 000 JPY / 150 = 6.6667 USD.
        case("USDJPY, USD account, derived rate", "USDJPY", USD, "10000", "1", "150.00", sl("149.50"), None)
            .ok("0.3", "100", "50", "100.00", "6.6667", false),
        // 6. USDJPY, EUR account, JPY→EUR 0.0062: 150 − 149 = 1.00 = 100 pips; loss/lot = 100 000 JPY × 0.0062 =
        //    620 EUR; 100 / 620 = 0.1612… → 0.16; risk at size 0.16 × 620 = 99.20. Pip value 1 000 × 0.0062 = 6.2.
        case("USDJPY, EUR account, explicit rate", "USDJPY", EUR, "10000", "1", "150.00", sl("149.00"), Some("0.0062"))
            .ok("0.16", "100", "100", "99.20", "6.2", false),
        // 7. EURUSD, EUR account (= base): USD→EUR = 1/1.1. loss/lot = 500 USD / 1.1 = 454.54 EUR;
        //    lots = 100 × 1.1 / 500 = 0.22 exactly; risk at size = 0.22 × 500 / 1.1 = 100. Pip value 10/1.1 = 9.0909.
        case("EURUSD, EUR account, derived rate", "EURUSD", EUR, "10000", "1", "1.1000", sl("1.0950"), None)
            .ok("0.22", "100", "50", "100.00", "9.0909", false),
        // 8. EURUSD, EUR account, USD→EUR 0.92: 10 000 × 2% = 200; 50 pips → 500 USD × 0.92 = 460 EUR/lot;
        //    200 / 460 = 0.4347… → 0.43; 0.43 × 460 = 197.80.
        case("EURUSD, EUR account, explicit rate", "EURUSD", EUR, "10000", "2", "1.0850", sl("1.0800"), Some("0.92"))
            .ok("0.43", "200", "50", "197.80", "9.2", false),
        // 9. XAUUSD: 2050.00 − 2040.00 = 10.00 = 1 000 pips (pip 0.01); loss/lot = 10 × 100 oz = 1 000 USD;
        //    100 / 1 000 = 0.10. Pip value 0.01 × 100 = 1 USD. (The original: 1 000 pips × $10 → 0.01 lot.)
        case("XAUUSD, USD account", "XAUUSD", USD, "10000", "1", "2050.00", sl("2040.00"), None)
            .ok("0.1", "100", "1000", "100.00", "1", false),
        // 10. XAUUSD, EUR account, USD→EUR 0.92: 5 000 × 1.5% = 75; 14.50 = 1 450 pips; loss/lot = 1 450 USD ×
        //     0.92 = 1 334 EUR; 75 / 1 334 = 0.0562… → 0.05; 0.05 × 1 334 = 66.70.
        case("XAUUSD, EUR account", "XAUUSD", EUR, "5000", "1.5", "2050.00", sl("2035.50"), Some("0.92"))
            .ok("0.05", "75", "1450", "66.70", "0.92", false),
        // 11. EURGBP cross, USD account, GBP→USD 1.25: 30 pips; loss/lot = 300 GBP × 1.25 = 375 USD;
        //     100 / 375 = 0.2666… → 0.26; 0.26 × 375 = 97.50. Pip value 10 GBP × 1.25 = 12.5 USD.
        case("EURGBP cross, USD account", "EURGBP", USD, "10000", "1", "0.8500", sl("0.8470"), Some("1.25"))
            .ok("0.26", "100", "30", "97.50", "12.5", false),
        // 12. GBPJPY cross, USD account, JPY→USD 0.0067: 20 000 × 0.5% = 100; 0.80 = 80 pips; loss/lot = 80 000 JPY
        //     × 0.0067 = 536 USD; 100 / 536 = 0.1865… → 0.18; 0.18 × 536 = 96.48. Pip value 1 000 × 0.0067 = 6.7.
        case("GBPJPY cross, USD account", "GBPJPY", USD, "20000", "0.5", "190.00", sl("189.20"), Some("0.0067"))
            .ok("0.18", "100", "80", "96.48", "6.7", false),
        // 13. EURJPY, EUR account (= base): JPY→EUR = 1/160; 80 pips; loss/lot = 80 000 JPY / 160 = 500 EUR;
        //     lots = 100 × 160 / 80 000 = 0.20. Pip value 1 000 / 160 = 6.25 EUR.
        case("EURJPY, EUR account, derived rate", "EURJPY", EUR, "10000", "1", "160.00", sl("159.20"), None)
            .ok("0.2", "100", "80", "100.00", "6.25", false),
        // 14. USDCHF SELL (SL above), USD account: CHF→USD = 1/0.885; 50 pips; loss/lot = 500 CHF / 0.885 =
        //     564.97 USD; lots = 100 × 0.885 / 500 = 0.177 → 0.17; risk at size 85 / 0.885 = 96.045… → 96.05.
        //     Pip value 10 / 0.885 = 11.2994.
        case("USDCHF short, USD account", "USDCHF", USD, "10000", "1", "0.8850", sl("0.8900"), None)
            .ok("0.17", "100", "50", "96.05", "11.2994", false),
        // 15. XAGUSD: 24.500 − 24.300 = 0.200 = 200 pips (pip 0.001); loss/lot = 0.2 × 5 000 oz = 1 000; 0.10.
        case("XAGUSD, USD account", "XAGUSD", USD, "10000", "1", "24.500", sl("24.300"), None)
            .ok("0.1", "100", "200", "100.00", "5", false),
        // 16. BTCUSD: 10 000 × 2% = 200; 1 000 USD move = 1 000 pips (pip 1); loss/lot = 1 000 × 1 BTC; 0.20.
        case("BTCUSD, USD account", "BTCUSD", USD, "10000", "2", "42000.00", sl("41000.00"), None)
            .ok("0.2", "200", "1000", "200.00", "1", false),
        // 17. US30: 100 points; loss/lot = 100 × 1 = 100 USD; 100 / 100 = 1.0 (step 0.1).
        case("US30 index", "US30", USD, "10000", "1", "39000.0", sl("38900.0"), None)
            .ok("1", "100", "100", "100.00", "1", false),
        // 18. GER40 in EUR: 10 000 × 0.5% = 50; 70 points → 70 EUR/lot; 50 / 70 = 0.714… → 0.7 (step 0.1); 49.00.
        case("GER40 index, step 0.1", "GER40", EUR, "10000", "0.5", "18000", sl("17930"), None)
            .ok("0.7", "50", "70", "49.00", "1", false),
        // 19. 1 000 000 × 5% = 50 000; 10 pips → 100/lot; 500 lots → capped at 10; risk at size 10 × 100 = 1 000.
        case("capped at max volume", "EURUSD", USD, "1000000", "5", "1.1000", sl("1.0990"), None)
            .ok("10", "50000", "10", "1000.00", "10", true),
        // 20. 100 × 0.5% = 0.50; 100 pips → 1 000/lot; 0.0005 lots < 0.01 minimum → refused (the original clamped up
        //     to 0.01 and risked 10 instead of 0.50).
        case("budget below minimum volume", "EURUSD", USD, "100", "0.5", "1.1000", sl("1.0900"), None)
            .err(SizingError::Volume(VolumeError::BelowMinimum { lots: d("0.0005"), min: d("0.01") })),
        // 21. entry == SL → 422, never a division by zero.
        case("entry equals stop loss", "EURUSD", USD, "10000", "1", "1.1000", sl("1.1000"), None)
            .err(SizingError::EntryEqualsStopLoss),
        // 22. Stop given in pips: 25 pips × 0.0001 = 0.0025 → 250/lot; 100 / 250 = 0.40.
        case("stop in pips", "EURUSD", USD, "10000", "1", "1.1000", StopLoss::Pips(d("25")), None)
            .ok("0.4", "100", "25", "100.00", "10", false),
        // 23. USDJPY 3-digit prices: 150.000 − 149.250 = 0.750 = 75 pips; 75 000 JPY / 150 = 500 USD; 0.20.
        case("USDJPY 3-digit prices", "USDJPY", USD, "10000", "1", "150.000", sl("149.250"), None)
            .ok("0.2", "100", "75", "100.00", "6.6667", false),
        // 24. A cross with an unrelated account currency and no rate: refused, never assumed 1.
        case("cross without a rate", "EURGBP", USD, "10000", "1", "0.8500", sl("0.8470"), None)
            .err(SizingError::Money(MoneyError::RateRequired { from: Currency::GBP, to: USD })),
        case("risk above 10%", "EURUSD", USD, "10000", "10.5", "1.1", sl("1.09"), None)
            .err(SizingError::InvalidRiskPercent),
        case("zero balance", "EURUSD", USD, "0", "1", "1.1", sl("1.09"), None).err(SizingError::InvalidBalance),
        case("negative stop", "EURUSD", USD, "1000", "1", "1.1", sl("-1"), None).err(SizingError::InvalidStopLoss),
        case("USD account with a rate other than 1", "EURUSD", USD, "1000", "1", "1.1", sl("1.09"), Some("1.1"))
            .err(SizingError::Money(MoneyError::InconsistentRate { from: USD, to: USD, rate: d("1.1") })),
    ]
}

#[test]
fn sizing_cases() {
    let cases = cases();
    assert!(cases.len() >= 20);
    for c in &cases {
        let i = lookup(c.symbol).unwrap();
        let req = SizingRequest {
            account_balance: d(c.balance),
            risk_percent: d(c.risk),
            entry_price: d(c.entry),
            stop_loss: c.stop,
            account_currency: c.account,
            conversion_rate: c.rate.map(d),
        };
        let got = position_size(i, &req).map(|p| {
            assert!(p.risk_at_size <= p.risk_amount, "{}: risk at size within budget", c.label);
            assert!(i.validate_lots(p.lot_size.value()).is_ok(), "{}: valid volume", c.label);
            (
                p.lot_size.value(),
                p.risk_amount,
                p.stop_loss_pips,
                crate::money::round_money(p.risk_at_size),
                p.pip_value_per_lot.round_dp(4),
                p.capped,
            )
        });
        let want = c.want.clone().map(|(l, r, pips, at, pv, cap)| (d(l), d(r), d(pips), d(at), d(pv), cap));
        assert_eq!(got, want, "{}", c.label);
    }
}

#[test]
fn naive_float_rounding_loses_a_step() {
    // The original's formula in f64 (contract §4.3), with floor-to-step instead of round: one step short.
    let (balance, risk, entry, stop) = (10000.0_f64, 2.9_f64, 1.1_f64, 1.09_f64);
    let pips = (entry - stop).abs() / 0.0001;
    let lots = balance * risk / 100.0 / (pips * 10.0);
    let naive = (lots / 0.01).floor() * 0.01;
    assert!((naive - 0.28).abs() < 1e-9, "f64 gives {naive}");
    let exact = position_size(
        lookup("EURUSD").unwrap(),
        &SizingRequest {
            account_balance: d("10000"),
            risk_percent: d("2.9"),
            entry_price: d("1.1"),
            stop_loss: sl("1.09"),
            account_currency: USD,
            conversion_rate: None,
        },
    )
    .unwrap();
    assert_eq!(exact.lot_size.value(), d("0.29"));
}

#[test]
fn margin_cases() {
    // (label, symbol, lots, price, leverage, account, rate (margin → account), expected margin)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, Currency, Option<&'a str>, Result<&'a str, ()>);
    let cases: &[Case] = &[
        // 1 × 100 000 EUR / 100 = 1 000 EUR × 1.1 = 1 100 USD (the original's estimate agrees for EURUSD).
        ("EURUSD, USD account", "EURUSD", "1", "1.1", "100", USD, None, Ok("1100")),
        // 1 000 EUR, account in EUR.
        ("EURUSD, EUR account", "EURUSD", "1", "1.1", "100", EUR, None, Ok("1000")),
        // 100 000 USD / 100 = 1 000 USD (the original said 150 × 100 000 / 100 = 150 000).
        ("USDJPY, USD account", "USDJPY", "1", "150", "100", USD, None, Ok("1000")),
        // 0.1 × 100 oz × 2 050 / 100 = 205 USD.
        ("XAUUSD", "XAUUSD", "0.1", "2050", "100", USD, None, Ok("205")),
        // 1 × 18 000 / 20 = 900 EUR; × 1.08 = 972 USD.
        ("GER40, EUR account", "GER40", "1", "18000", "20", EUR, None, Ok("900")),
        ("GER40, USD account", "GER40", "1", "18000", "20", USD, Some("1.08"), Ok("972")),
        // 100 000 EUR / 50 = 2 000 EUR × 1.1 = 2 200 USD.
        ("EURGBP, USD account", "EURGBP", "1", "0.85", "50", USD, Some("1.1"), Ok("2200")),
        ("EURGBP, USD account, no rate", "EURGBP", "1", "0.85", "50", USD, None, Err(())),
        ("zero leverage", "EURUSD", "1", "1.1", "0", USD, None, Err(())),
    ];
    for (label, sym, lots, price, lev, acct, rate, want) in cases {
        let i = lookup(sym).unwrap();
        let got = margin_required(i, Lots::new_unchecked(d(lots)), d(price), d(lev), *acct, rate.map(d));
        let got = got.map(|m| (m.amount, m.currency)).map_err(|_| ());
        assert_eq!(got, want.map(|w| (d(w), *acct)), "{label}");
    }
}

#[test]
fn sl_tp_cases() {
    /// (stop loss, take profit, SL pips, TP pips, risk:reward)
    type Want = Result<(&'static str, &'static str, &'static str, &'static str, &'static str), SizingError>;
    struct Case(&'static str, &'static str, SlTpRequest);
    impl Case {
        fn ok(
            self,
            sl: &'static str,
            tp: &'static str,
            sl_pips: &'static str,
            tp_pips: &'static str,
            rr: &'static str,
        ) -> (Self, Want) {
            (self, Ok((sl, tp, sl_pips, tp_pips, rr)))
        }
        fn err(self, e: SizingError) -> (Self, Want) {
            (self, Err(e))
        }
    }
    /// `label`, the symbol, and the request: side, entry, (SL method, value), (TP method, value), ATR.
    fn case(
        label: &'static str,
        symbol: &'static str,
        side: Side,
        entry: &str,
        (sl_type, sl_value): (SlType, &str),
        (tp_type, tp_value): (TpType, &str),
        atr: Option<&str>,
    ) -> Case {
        let req = SlTpRequest {
            side,
            entry_price: d(entry),
            sl_type,
            sl_value: d(sl_value),
            tp_type,
            tp_value: d(tp_value),
            atr: atr.map(d),
        };
        Case(label, symbol, req)
    }
    use Side::{Buy, Sell};
    use SlType as Sl;
    use TpType as Tp;
    let cases = [
        // 20 pips → SL 1.09800; RR 2 → 40 pips → TP 1.10400.
        case("EURUSD buy fixed + rr", "EURUSD", Buy, "1.10000", (Sl::FixedPips, "20"), (Tp::RiskReward, "2"), None)
            .ok("1.09800", "1.10400", "20.0", "40.0", "2.00"),
        // USDJPY pips are 0.01: SELL 30 pips → 150.300; fixed TP 60 → 149.400.
        case("USDJPY sell fixed", "USDJPY", Sell, "150.000", (Sl::FixedPips, "30"), (Tp::FixedPips, "60"), None)
            .ok("150.300", "149.400", "30.0", "60.0", "2.00"),
        // ATR 7.5 × 2 = 15.00 → 2035.00; RR 2 → 30.00 → 2080.00; pips of 0.01.
        case("XAUUSD buy atr + rr", "XAUUSD", Buy, "2050.00", (Sl::AtrBased, "2"), (Tp::RiskReward, "2"), Some("7.5"))
            .ok("2035.00", "2080.00", "1500.0", "3000.0", "2.00"),
        // No ATR: SL 50 pips, TP (atr_based) 100 pips — the dashboard's case.
        case("EURUSD atr fallbacks", "EURUSD", Buy, "1.10000", (Sl::AtrBased, "2"), (Tp::AtrBased, "2"), None)
            .ok("1.09500", "1.11000", "50.0", "100.0", "2.00"),
        // ATR 0 counts as missing.
        case("USDJPY atr zero", "USDJPY", Sell, "150.000", (Sl::AtrBased, "2"), (Tp::RiskReward, "1"), Some("0"))
            .ok("150.500", "149.500", "50.0", "50.0", "1.00"),
        // 1 % of 42 000 = 420 → SELL SL 42 420.00; RR 1.5 → 630 → TP 41 370.00; BTC pip = 1.
        case("BTCUSD sell percentage", "BTCUSD", Sell, "42000", (Sl::Percentage, "1"), (Tp::RiskReward, "1.5"), None)
            .ok("42420.00", "41370.00", "420.0", "630.0", "1.50"),
        // ATR 0.000123 × 1.5 = 0.0001845 → 1.10003 − 0.0001845 = 1.0998455 → 5 digits: 1.09985; gap 0.00018 =
        // 1.8 pips; RR 2 on the rounded gap → 0.00036 → 1.10039.
        case(
            "EURUSD rounding to digits",
            "EURUSD",
            Buy,
            "1.10003",
            (Sl::AtrBased, "1.5"),
            (Tp::RiskReward, "2"),
            Some("0.000123"),
        )
        .ok("1.09985", "1.10039", "1.8", "3.6", "2.00"),
        // 0.1 % of 150.123 = 0.150123 → 149.972877 → 3 digits 149.973; gap 0.150 = 15 pips; TP 25 pips 150.373;
        // ratio 25 / 15 = 1.67.
        case(
            "USDJPY rounding to 3 digits",
            "USDJPY",
            Buy,
            "150.123",
            (Sl::Percentage, "0.1"),
            (Tp::FixedPips, "25"),
            None,
        )
        .ok("149.973", "150.373", "15.0", "25.0", "1.67"),
        // A zero SL distance: ratio 0.
        case("zero SL distance", "EURUSD", Buy, "1.1", (Sl::FixedPips, "0"), (Tp::FixedPips, "10"), None)
            .ok("1.10000", "1.10100", "0.0", "10.0", "0"),
        // SELL TP 2 000 pips × 0.001 = 2.000 below 1.000: not a price.
        case("negative take profit", "XAGUSD", Sell, "1.000", (Sl::FixedPips, "10"), (Tp::FixedPips, "2000"), None)
            .err(SizingError::NonPositivePrice("take_profit")),
        case("negative sl_value", "EURUSD", Buy, "1.1", (Sl::FixedPips, "-1"), (Tp::FixedPips, "10"), None)
            .err(SizingError::Negative("sl_value")),
        case("zero entry", "EURUSD", Buy, "0", (Sl::FixedPips, "1"), (Tp::FixedPips, "10"), None)
            .err(SizingError::InvalidEntry),
    ];
    for (Case(label, sym, r), want) in cases {
        let got = calculate_sl_tp(lookup(sym).unwrap(), &r)
            .map(|s| (s.stop_loss, s.take_profit, s.sl_distance_pips, s.tp_distance_pips, s.risk_reward_ratio));
        let want = want.map(|(a, b, c, e, f)| (d(a), d(b), d(c), d(e), d(f)));
        assert_eq!(got, want, "{label}");
    }
}

#[test]
fn risk_profiles_match_the_contract() {
    let p = RiskProfiles::builtin();
    let rows = [
        ("conservative", p.conservative, "2.5", "1.5", "1.0", "0.05", TrailingType::AtrBased, "30", "15", "2.0", "20"),
        ("moderate", p.moderate, "2.0", "2.0", "2.0", "0.1", TrailingType::AtrBased, "20", "15", "1.5", "15"),
        ("aggressive", p.aggressive, "1.5", "3.0", "3.0", "0.2", TrailingType::FixedPips, "10", "10", "1.5", "10"),
    ];
    for (label, r, sl, tp, risk, max, tt, act, dist, atr, be) in rows {
        assert_eq!((r.sl_type, r.tp_type), (SlType::AtrBased, TpType::RiskReward), "{label}");
        assert_eq!(
            (r.sl_value, r.tp_value, r.risk_per_trade_percent, r.max_position_size),
            (d(sl), d(tp), d(risk), d(max)),
            "{label}"
        );
        let t = r.trailing_stop;
        assert!(t.enabled && t.breakeven_enabled, "{label}");
        assert_eq!(t.trailing_type, tt, "{label}");
        assert_eq!(
            (t.activation_pips, t.trail_distance_pips, t.atr_multiplier, t.breakeven_pips),
            (d(act), d(dist), d(atr), d(be)),
            "{label}"
        );
        assert_eq!(t.lock_profit_pips, d("2"), "{label}: breakeven offset 2 pips");
    }
    assert_eq!(RiskProfileName::parse_or_moderate("Aggressive"), RiskProfileName::Aggressive);
    assert_eq!(RiskProfileName::parse_or_moderate("yolo"), RiskProfileName::Moderate);
    let json = serde_json::to_value(p).unwrap();
    let ts = &json["aggressive"]["trailing_stop"];
    assert_eq!((&ts["type"], &ts["trailing_type"]), (&"fixed_pips".into(), &"fixed_pips".into()), "both keys emitted");
    assert_eq!(json["moderate"]["sl_type"], "atr_based");
    assert_eq!(json["moderate"]["tp_type"], "risk_reward");
}

fn decimal(lo: i64, hi: i64, scale: u32) -> impl Strategy<Value = Decimal> {
    (lo..hi).prop_map(move |m| Decimal::new(m, scale))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// (a) Whatever the inputs, a size never risks more than the budget (checked with exact products), and the
    /// volume is a whole multiple of the step within [min, max].
    #[test]
    fn sizing_never_exceeds_the_budget(
        idx in 0..INSTRUMENTS.len(),
        balance in decimal(1, 100_000_000, 2),
        risk in decimal(1, 1000, 2),
        entry_units in 1i64..10_000_000,
        stop_offset in -5_000i64..5_000,
        rate in prop::option::of(decimal(1, 1_000_000, 6)),
        use_base_account in any::<bool>(),
    ) {
        let i = &INSTRUMENTS[idx];
        let entry = Decimal::new(entry_units, i.digits);
        let stop = entry + Decimal::from(stop_offset) * i.point();
        let account = if use_base_account { i.base } else { i.quote };
        let req = SizingRequest {
            account_balance: balance,
            risk_percent: risk,
            entry_price: entry,
            stop_loss: StopLoss::Price(stop),
            account_currency: account,
            conversion_rate: if account == i.quote { None } else { rate },
        };
        match position_size(i, &req) {
            Ok(p) => {
                let lots = p.lot_size.value();
                prop_assert!((lots % i.volume_step).is_zero(), "{} not on step {}", lots, i.volume_step);
                prop_assert!(lots >= i.min_volume && lots <= i.max_volume);
                let conv = i.quote_to_account(account, Some(entry), req.conversion_rate).unwrap();
                let loss_num = (entry - stop).abs() * i.contract_size * conv.numerator();
                prop_assert!(lots * loss_num <= p.risk_amount * conv.denominator(), "over budget: {:?}", p);
                prop_assert!(p.risk_at_size <= p.risk_amount);
                if !p.capped {
                    // Maximal: one more step would exceed the budget.
                    prop_assert!((lots + i.volume_step) * loss_num > p.risk_amount * conv.denominator());
                }
            }
            Err(SizingError::EntryEqualsStopLoss) => prop_assert_eq!(entry, stop),
            Err(SizingError::InvalidStopLoss) => prop_assert!(stop <= Decimal::ZERO),
            Err(SizingError::InvalidRiskPercent) => prop_assert!(risk > MAX_RISK_PERCENT),
            Err(SizingError::Volume(VolumeError::BelowMinimum { .. })) => {}
            Err(SizingError::Money(_)) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
