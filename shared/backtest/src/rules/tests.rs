use chrono::{Duration, TimeZone, Utc};
use nusatrade_ml::candles::Columns;
use nusatrade_ml::indicators as ta;
use nusatrade_ml::rng::SplitMix64;
use proptest::prelude::*;

use super::*;

fn canon(text: &str, params: &[&str]) -> String {
    match parse(text, params) {
        Ok(c) => c.to_string(),
        Err(e) => panic!("{text}: {e:?}"),
    }
}

fn errors(text: &str, params: &[&str]) -> Vec<String> {
    match parse(text, params) {
        Ok(c) => panic!("{text} parsed as {c}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn error(text: &str) -> String {
    let e = errors(text, &[]);
    assert_eq!(e.len(), 1, "{text}: {e:?}");
    e[0].clone()
}

/// A random-walk series of `n` hourly bars from Monday 2024-01-01 00:00 UTC.
pub(crate) fn bars(n: usize, seed: u64) -> Columns {
    let mut rng = SplitMix64(seed);
    let mut unit = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut c = Columns::default();
    let mut price = 1.1;
    for i in 0..n {
        let open = price;
        let close = (open + (unit() - 0.5) * 0.004).max(0.5);
        let high = open.max(close) + unit() * 0.001;
        let low = open.min(close) - unit() * 0.001;
        c.time.push(start + Duration::hours(i as i64));
        c.open.push(open);
        c.high.push(high);
        c.low.push(low);
        c.close.push(close);
        c.volume.push((unit() * 1000.0).round());
        price = close;
    }
    c
}

fn bars_from_closes(closes: &[f64]) -> Columns {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    Columns {
        time: (0..closes.len()).map(|i| start + Duration::hours(i as i64)).collect(),
        open: closes.to_vec(),
        high: closes.to_vec(),
        low: closes.to_vec(),
        close: closes.to_vec(),
        volume: vec![1.0; closes.len()],
    }
}

fn eval_cond(bars: &Columns, text: &str, params: &[&str], values: &[f64]) -> Vec<bool> {
    let ext = ExternalSeries::new();
    let cond = parse(text, params).unwrap();
    Evaluator::new(bars, &ext).unwrap().condition(&cond, values).unwrap()
}

fn eval_num(bars: &Columns, text: &str) -> Vec<f64> {
    // A number is evaluated through `x == x`-free access: parse `x > 0` and take the left side.
    let cond = parse(&format!("{text} > 0"), &[]).unwrap();
    let Cond::Compare(_, num, _) = cond else { panic!("not a comparison") };
    let ext = ExternalSeries::new();
    Evaluator::new(bars, &ext).unwrap().number(&num, &[]).unwrap()
}

fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

// ---------------------------------------------------------------- parsing

#[test]
fn parses_every_construct() {
    let p = &["rsi_period", "oversold"];
    let cases = [
        ("RSI(14) < 30 AND CLOSE > EMA(50)", "((RSI(14) < 30) AND (CLOSE > EMA(50)))"),
        ("CROSSES_ABOVE(SMA(10), SMA(20))", "CROSSES_ABOVE(SMA(10), SMA(20))"),
        (
            "CROSSES_BELOW(MACD(12,26,9), MACD_SIGNAL(12,26,9))",
            "CROSSES_BELOW(MACD(12, 26, 9), MACD_SIGNAL(12, 26, 9))",
        ),
        ("hour >= 8 AND hour <= 21", "((HOUR >= 8) AND (HOUR <= 21))"),
        ("ml_confidence >= 0.70", "(ml_confidence >= 0.7)"),
        ("vol_regime_low == 0 AND vol_regime_high == 0", "((vol_regime_low == 0) AND (vol_regime_high == 0))"),
        ("CLOSE > HIGHEST(HIGH, 20)[1]", "(CLOSE > (HIGHEST(HIGH, 20))[1])"),
        ("RSI(rsi_period) < oversold", "(RSI(rsi_period) < oversold)"),
        ("rsi(RSI_PERIOD) < OverSold", "(RSI(rsi_period) < oversold)"),
        ("close > open && !(volume == 0) || low < high", "(((CLOSE > OPEN) AND NOT ((VOLUME == 0))) OR (LOW < HIGH))"),
        ("not close < open", "NOT ((CLOSE < OPEN))"),
        ("ABS(CLOSE - OPEN) > MAX(ATR(14), 0.001) * 2", "(ABS((CLOSE - OPEN)) > (MAX(ATR(14), 0.001) * 2))"),
        ("MIN(LOW, OPEN) <= LOWEST(LOW, 10)", "(MIN(LOW, OPEN) <= LOWEST(LOW, 10))"),
        (
            "BB_UPPER(20, 2.5) > BB_MIDDLE(20,2) - BB_LOWER(20, 2)",
            "(BB_UPPER(20, 2.5) > (BB_MIDDLE(20, 2) - BB_LOWER(20, 2)))",
        ),
        ("STOCH_K(14) > STOCH_D(14, 3)", "(STOCH_K(14) > STOCH_D(14, 3))"),
        ("PLUS_DI(14) > MINUS_DI(14) AND ADX(14) > 25", "((PLUS_DI(14) > MINUS_DI(14)) AND (ADX(14) > 25))"),
        ("CCI(20) < -100 OR WILLR(14) < -80", "((CCI(20) < -100) OR (WILLR(14) < -80))"),
        ("MOM(10) > 0 AND ROC(10) > 0 AND STDDEV(20) > 0", "(((MOM(10) > 0) AND (ROC(10) > 0)) AND (STDDEV(20) > 0))"),
        ("DAY_OF_WEEK < 5", "(DAY_OF_WEEK < 5)"),
        ("price = 1 OR close <> 2", "((CLOSE == 1) OR (CLOSE != 2))"),
        ("CLOSE > 1e-3 AND CLOSE > .5", "((CLOSE > 0.001) AND (CLOSE > 0.5))"),
        ("ml_signal == 1 AND vol_regime_medium == 1", "((ml_signal == 1) AND (vol_regime_medium == 1))"),
        ("CROSSES_ABOVE(RSI(14), 30)[1]", "(CROSSES_ABOVE(RSI(14), 30))[1]"),
        ("CLOSE[rsi_period] < CLOSE", "((CLOSE)[rsi_period] < CLOSE)"),
        ("SMA(rsi_period) > EMA(RSI_PERIOD)", "(SMA(rsi_period) > EMA(rsi_period))"),
        ("HIGHEST(CLOSE - OPEN, 5) > 0", "(HIGHEST((CLOSE - OPEN), 5) > 0)"),
    ];
    for (text, expected) in cases {
        assert_eq!(canon(text, p), expected, "{text}");
    }
}

#[test]
fn bare_indicators_take_their_defaults() {
    let cases = [
        ("RSI < 30", "(RSI(14) < 30)"),
        ("RSI() < 30", "(RSI(14) < 30)"),
        ("MACD > MACD_SIGNAL", "(MACD(12, 26, 9) > MACD_SIGNAL(12, 26, 9))"),
        ("MACD_HIST > 0", "(MACD_HIST(12, 26, 9) > 0)"),
        ("ADX > 25 AND ATR > 0", "((ADX(14) > 25) AND (ATR(14) > 0))"),
        ("STOCH_K > STOCH_D", "(STOCH_K(14) > STOCH_D(14, 3))"),
        ("close > bb_upper", "(CLOSE > BB_UPPER(20, 2))"),
        ("SMA > EMA", "(SMA(20) > EMA(20))"),
        (
            "CCI > 0 AND WILLR < 0 AND MOM > 0 AND ROC > 0",
            "((((CCI(20) > 0) AND (WILLR(14) < 0)) AND (MOM(10) > 0)) AND (ROC(10) > 0))",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(canon(text, &[]), expected, "{text}");
    }
}

#[test]
fn precedence_and_associativity() {
    let cases = [
        ("1 + 2 * 3 > 6", "((1 + (2 * 3)) > 6)"),
        ("10 - 3 - 2 > 0", "(((10 - 3) - 2) > 0)"),
        ("8 / 4 / 2 > 0", "(((8 / 4) / 2) > 0)"),
        ("(1 + 2) * 3 > 6", "(((1 + 2) * 3) > 6)"),
        ("CLOSE > 1 OR CLOSE > 2 AND CLOSE > 3", "((CLOSE > 1) OR ((CLOSE > 2) AND (CLOSE > 3)))"),
        ("(CLOSE > 1 OR CLOSE > 2) AND CLOSE > 3", "(((CLOSE > 1) OR (CLOSE > 2)) AND (CLOSE > 3))"),
        ("NOT CLOSE > 1 AND CLOSE > 2", "(NOT ((CLOSE > 1)) AND (CLOSE > 2))"),
        ("NOT NOT CLOSE > 1", "NOT (NOT ((CLOSE > 1)))"),
        ("-CLOSE[1] * 2 < 0", "((-((CLOSE)[1]) * 2) < 0)"),
        ("CLOSE > -3", "(CLOSE > -3)"),
        ("CLOSE > - -3", "(CLOSE > 3)"),
        ("CLOSE - -3 > 0", "((CLOSE - -3) > 0)"),
        ("CLOSE > 1 OR CLOSE > 2 OR CLOSE > 3", "(((CLOSE > 1) OR (CLOSE > 2)) OR (CLOSE > 3))"),
        ("((((CLOSE)))) > 1", "(CLOSE > 1)"),
    ];
    for (text, expected) in cases {
        assert_eq!(canon(text, &[]), expected, "{text}");
    }
}

#[test]
fn syntax_errors_name_position_and_token() {
    assert_eq!(error("RSX(14) < 30"), "unknown indicator 'RSX' at 1");
    assert_eq!(error("(CLOSE > 1 30"), "expected ')' at 12, found '30'");
    assert_eq!(error("(CLOSE > 1"), "expected ')' at 11, found the end of the condition");
    assert_eq!(error("1 < SMA(1, 2)"), "wrong number of arguments to SMA at 5: expected 1, got 2");
    assert_eq!(error("CLOSE > 1 $"), "unexpected character '$' at 11");
    assert_eq!(error("RSI(14) <"), "expected a number, a name or '(' at 10, found the end of the condition");
    assert_eq!(error("CLOSE > 1 30"), "expected AND, OR or the end of the condition at 11, found '30'");
    assert_eq!(error("SMA(10 20) > 1"), "expected ',' or ')' at 8, found '20'");
    assert_eq!(error("CLOSE[1 > 0"), "expected ']' at 12, found the end of the condition");
    assert_eq!(error("1 < 2 < 3"), "comparisons cannot be chained at 7: combine them with AND");
    assert_eq!(error("1e999 > 1"), "invalid number '1e999' at 1");
    assert_eq!(error("CLOSE > 1 & CLOSE > 2"), "unexpected character '&' at 11");
    assert_eq!(error(""), "the condition is empty");
    assert_eq!(error("  \t "), "the condition is empty");
    assert_eq!(error("close AND"), "expected a number, a name or '(' at 10, found the end of the condition");
    // Positions count characters, not bytes.
    assert_eq!(error("CLOSE > 1 ≥ 2"), "unexpected character '≥' at 11");
    assert_eq!(error("é > 1"), "unexpected character 'é' at 1");
}

#[test]
fn name_argument_and_type_errors() {
    assert_eq!(error("foo > 1"), "unknown name 'foo' at 1");
    assert_eq!(error("SMA(0) > 1"), "argument 1 of SMA at 5 must be a whole number from 1 to 500, got 0");
    assert_eq!(error("SMA(501) > 1"), "argument 1 of SMA at 5 must be a whole number from 1 to 500, got 501");
    assert_eq!(error("SMA(14.5) > 1"), "argument 1 of SMA at 5 must be a whole number from 1 to 500, got 14.5");
    assert_eq!(error("SMA(-3) > 1"), "argument 1 of SMA at 5 must be a whole number from 1 to 500, got -3");
    assert_eq!(error("SMA(CLOSE) > 1"), "argument 1 of SMA at 5 must be a constant or a parameter name");
    assert_eq!(error("SMA(2 + 3) > 1"), "argument 1 of SMA at 5 must be a constant or a parameter name");
    assert_eq!(error("SMA(bogus) > 1"), "unknown name 'bogus' at 5");
    assert_eq!(error("BB_UPPER(20, 11) > 1"), "argument 2 of BB_UPPER at 14 must be a number from 0 to 10, got 11");
    assert_eq!(
        error("HIGHEST(HIGH, 0) > 1"),
        "argument 2 of HIGHEST at 15 must be a whole number from 1 to 500, got 0"
    );
    assert_eq!(error("CLOSE[-1] > 1"), "the lookback at 7 must be a whole number from 0 to 500, got -1");
    assert_eq!(error("CLOSE[501] > 1"), "the lookback at 7 must be a whole number from 0 to 500, got 501");
    assert_eq!(error("CLOSE[0.5] > 1"), "the lookback at 7 must be a whole number from 0 to 500, got 0.5");
    assert_eq!(error("CROSSES_ABOVE > 1"), "wrong number of arguments to CROSSES_ABOVE at 1: expected 2, got 0");
    assert_eq!(error("HIGHEST(HIGH) > 1"), "wrong number of arguments to HIGHEST at 1: expected 2, got 1");
    assert_eq!(error("ABS(1, 2) > 1"), "wrong number of arguments to ABS at 1: expected 1, got 2");
    assert_eq!(error("MACD(12, 26) > 1"), "wrong number of arguments to MACD at 1: expected 3, got 2");
    assert_eq!(error("CLOSE(1) > 2"), "type error at 1: CLOSE is not a function (write CLOSE[1] for the previous bar)");
    assert_eq!(error("RSI(14)"), "type error at 1: a rule must be a condition (true or false), found a number");
    assert_eq!(error("CLOSE > (1 < 2)"), "type error at 10: '>' compares numbers, found a condition");
    assert_eq!(error("NOT CLOSE"), "type error at 5: NOT needs a condition, found a number");
    assert_eq!(error("-(CLOSE > 1)"), "type error at 3: '-' needs a number, found a condition");
    assert_eq!(error("(CLOSE > 1) + 1 > 0"), "type error at 2: '+' needs numbers, found a condition");
    assert_eq!(error("ABS(CLOSE > 1) > 0"), "type error at 5: argument 1 of ABS must be a number, found a condition");
    assert_eq!(
        errors("RSI(14) AND 3", &[]),
        vec![
            "type error at 1: AND needs a condition on each side, found a number",
            "type error at 13: AND needs a condition on each side, found a number",
        ]
    );
    assert_eq!(error("x(1) > 0"), "unknown indicator 'x' at 1");
    assert_eq!(
        errors("rsi_period(1) > 0", &["rsi_period"]),
        vec!["type error at 1: parameter 'rsi_period' is not a function"]
    );
}

#[test]
fn every_non_syntax_error_is_reported() {
    let e = errors("RSX(1) > foo AND SMA(0) > 1 OR CROSSES_ABOVE(CLOSE > 1, 2) OR CLOSE[600] > ml_nope", &[]);
    assert_eq!(
        e,
        vec![
            "unknown indicator 'RSX' at 1",
            "unknown name 'foo' at 10",
            "argument 1 of SMA at 22 must be a whole number from 1 to 500, got 0",
            "type error at 46: argument 1 of CROSSES_ABOVE must be a number, found a condition",
            "the lookback at 69 must be a whole number from 0 to 500, got 600",
            "unknown name 'ml_nope' at 76",
        ]
    );
}

#[test]
fn limits_are_enforced_with_clear_errors() {
    let long = format!("CLOSE > 1{}", " ".repeat(492));
    assert_eq!(long.chars().count(), 501);
    assert_eq!(error(&long), "the condition is 501 characters long; the limit is 500");
    // Exactly at the limit parses.
    assert!(parse(&long[..500], &[]).is_ok());

    let deep = format!("{}CLOSE{} > 1", "(".repeat(40), ")".repeat(40));
    assert_eq!(error(&deep), "nesting deeper than 32 levels at 33");
    let ok = format!("{}CLOSE{} > 1", "(".repeat(32), ")".repeat(32));
    assert!(parse(&ok, &[]).is_ok());
    assert_eq!(error(&format!("{}CLOSE > 1", "NOT ".repeat(33))), "nesting deeper than 32 levels at 129");
    assert_eq!(error(&format!("CLOSE > {}1", "-".repeat(40))), "nesting deeper than 32 levels at 41");
    assert_eq!(error(&format!("{}1 > 0", "ABS(".repeat(40))), "nesting deeper than 32 levels at 129");

    let many = format!("CLOSE > 1{}", " OR CLOSE > 1".repeat(70));
    assert!(many.len() <= 1_000);
    let big = Limits { max_chars: 10_000, ..Limits::default() };
    let e = parse_with(&many, &[], big).unwrap_err();
    assert!(matches!(e[..], [RuleError::TooManyNodes { max: 200, .. }]), "{e:?}");
}

#[test]
fn ten_thousand_deep_is_refused_without_overflow() {
    let limits = Limits { max_chars: 1_000_000, ..Limits::default() };
    for bomb in [
        format!("{}CLOSE{} > 1", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{}CLOSE > 1", "NOT ".repeat(10_000)),
        format!("{}CLOSE > 1", "!".repeat(10_000)),
        format!("CLOSE > {}1", "-".repeat(10_000)),
        "(".repeat(10_000),
        format!("CLOSE{} > 1", "[1]".repeat(10_000)),
        format!("{}1{} > 0", "ABS(".repeat(10_000), ")".repeat(10_000)),
    ] {
        let e = parse_with(&bomb, &[], limits).unwrap_err();
        assert!(matches!(e[..], [RuleError::TooDeep { .. }] | [RuleError::TooManyNodes { .. }]), "{e:?}");
    }
    // And with the default limits the length check comes first.
    let e = parse(&"(".repeat(10_000), &[]).unwrap_err();
    assert_eq!(e, vec![RuleError::TooLong { len: 10_000, max: MAX_CONDITION_CHARS }]);
}

#[test]
fn reserved_names_and_usage_queries() {
    for name in [
        "close",
        "CLOSE",
        "Price",
        "hour",
        "day_of_week",
        "rsi",
        "macd_signal",
        "highest",
        "crosses_above",
        "ml_confidence",
        "AND",
        "not",
    ] {
        assert!(is_reserved(name), "{name}");
    }
    for name in ["rsi_period", "oversold", "fast", "x"] {
        assert!(!is_reserved(name), "{name}");
    }
    let c = parse(
        "RSI(p) < lvl AND CLOSE[k] > BB_UPPER(p, k2) AND ml_signal == 1 AND vol_regime_high == 0",
        &["p", "lvl", "k", "k2", "unused"],
    )
    .unwrap();
    assert_eq!(params_used(&c), vec![0, 1, 2, 3]);
    let usages = param_usages(&c);
    assert_eq!(
        usages,
        vec![
            (0, ArgKind::Period, "argument 1 of RSI".to_string()),
            (2, ArgKind::Lookback, "the lookback".to_string()),
            (0, ArgKind::Period, "argument 1 of BB_UPPER".to_string()),
            (3, ArgKind::Multiplier, "argument 2 of BB_UPPER".to_string()),
        ]
    );
    assert_eq!(externals_used(&c), vec![External::MlSignal, External::VolRegimeHigh]);
}

// ---------------------------------------------------------------- evaluation

#[test]
fn indicators_match_the_indicator_library() {
    let b = bars(400, 7);
    let (h, l, c) = (&b.high[..], &b.low[..], &b.close[..]);
    let m = ta::macd(c, 8, 21, 5);
    let d = ta::dmi(h, l, c, 10);
    let s = ta::stochastic(h, l, c, 9, 4);
    let bb = ta::bollinger(c, 15, 1.5);
    let cases: Vec<(&str, Vec<f64>)> = vec![
        ("SMA(7)", ta::sma(c, 7)),
        ("EMA(9)", ta::ema(c, 9)),
        ("RSI(11)", ta::rsi(c, 11)),
        ("MACD(8, 21, 5)", m.line.clone()),
        ("MACD_SIGNAL(8, 21, 5)", m.signal.clone()),
        ("MACD_HIST(8, 21, 5)", m.hist.clone()),
        ("ATR(13)", ta::atr(h, l, c, 13)),
        ("ADX(10)", d.adx.clone()),
        ("PLUS_DI(10)", d.plus_di.clone()),
        ("MINUS_DI(10)", d.minus_di.clone()),
        ("STOCH_K(9)", s.k.clone()),
        ("STOCH_D(9, 4)", s.d.clone()),
        ("BB_UPPER(15, 1.5)", bb.upper.clone()),
        ("BB_MIDDLE(15, 1.5)", bb.middle.clone()),
        ("BB_LOWER(15, 1.5)", bb.lower.clone()),
        ("CCI(12)", ta::cci(h, l, c, 12)),
        ("WILLR(14)", ta::williams_r(h, l, c, 14)),
        ("MOM(6)", ta::momentum(c, 6)),
        ("ROC(6)", ta::roc(c, 6)),
        ("STDDEV(10)", ta::stddev(c, 10, 0)),
        ("HIGHEST(HIGH, 20)", ta::rolling_max(h, 20)),
        ("LOWEST(LOW, 20)", ta::rolling_min(l, 20)),
        ("VOLUME", b.volume.clone()),
        ("OPEN", b.open.clone()),
    ];
    for (text, expected) in cases {
        assert!(same(&eval_num(&b, text), &expected), "{text}");
    }
}

#[test]
fn arithmetic_lookback_and_time() {
    let b = bars(100, 3);
    let n = b.close.len();
    let diff: Vec<f64> = (0..n).map(|i| (b.close[i] - b.open[i]) * 2.0 + 1.0).collect();
    assert!(same(&eval_num(&b, "(CLOSE - OPEN) * 2 + 1"), &diff));
    let prev: Vec<f64> = (0..n).map(|i| if i < 3 { f64::NAN } else { b.close[i - 3] }).collect();
    assert!(same(&eval_num(&b, "CLOSE[3]"), &prev));
    assert!(same(&eval_num(&b, "CLOSE[0]"), &b.close));
    assert!(eval_num(&b, "CLOSE[500]").iter().all(|v| v.is_nan()));
    let hour: Vec<f64> = (0..n).map(|i| (i % 24) as f64).collect();
    assert!(same(&eval_num(&b, "HOUR"), &hour));
    // 2024-01-01 is a Monday (0).
    let dow: Vec<f64> = (0..n).map(|i| ((i / 24) % 7) as f64).collect();
    assert!(same(&eval_num(&b, "DAY_OF_WEEK"), &dow));
    assert!(eval_num(&b, "CLOSE / 0").iter().all(|v| v.is_nan()));
    assert!(same(
        &eval_num(&b, "ABS(OPEN - CLOSE)"),
        &(0..n).map(|i| (b.open[i] - b.close[i]).abs()).collect::<Vec<_>>()
    ));
    let mx: Vec<f64> = (0..n).map(|i| b.open[i].max(b.close[i])).collect();
    assert!(same(&eval_num(&b, "MAX(OPEN, CLOSE)"), &mx));
    // MIN/MAX propagate NaN (unlike f64::min).
    let m = eval_num(&b, "MIN(SMA(5), 1000)");
    assert!(m[..4].iter().all(|v| v.is_nan()) && m[4..].iter().all(|v| !v.is_nan()));
    // Constants stay constants; looking back or over a window of one has the warm-up of any series.
    assert!(eval_num(&b, "2 * 3 - 1").iter().all(|&v| v == 5.0));
    let shifted = eval_num(&b, "(2 * 3)[2]");
    assert!(shifted[..2].iter().all(|v| v.is_nan()) && shifted[2..].iter().all(|&v| v == 6.0));
    let highest = eval_num(&b, "HIGHEST(7, 4)");
    assert!(highest[..3].iter().all(|v| v.is_nan()) && highest[3..].iter().all(|&v| v == 7.0));
    assert!(eval_num(&b, "HIGHEST(7, 1)").iter().all(|&v| v == 7.0));
    assert_eq!(&eval_cond(&b, "(1 < 2)[3]", &[], &[])[..5], [false, false, false, true, true]);
    // HIGHEST of an expression, with a NaN warm-up in the source.
    let src: Vec<f64> = ta::sma(&b.close, 4).iter().zip(&b.open).map(|(s, o)| s - o).collect();
    let expected: Vec<f64> =
        (0..n)
            .map(|i| {
                if i + 1 < 3 + 3 { f64::NAN } else { src[i - 2..=i].iter().copied().fold(f64::NEG_INFINITY, f64::max) }
            })
            .collect();
    assert!(same(&eval_num(&b, "HIGHEST(SMA(4) - OPEN, 3)"), &expected));
}

#[test]
fn crosses_follow_backtesting_py() {
    let b = bars_from_closes(&[1.0, 3.0, 2.0, 2.0, 3.0, 1.0, 1.0, 2.5]);
    assert_eq!(
        eval_cond(&b, "CROSSES_ABOVE(CLOSE, 2)", &[], &[]),
        [false, true, false, false, false, false, false, true]
    );
    assert_eq!(
        eval_cond(&b, "CROSSES_BELOW(CLOSE, 2)", &[], &[]),
        [false, false, false, false, false, true, false, false]
    );
    // Mirror: a crosses above b ⇔ b crosses below a.
    assert_eq!(eval_cond(&b, "CROSSES_BELOW(2, CLOSE)", &[], &[]), eval_cond(&b, "CROSSES_ABOVE(CLOSE, 2)", &[], &[]));
    // Two constants never cross; NaN on either bar is no cross.
    assert!(eval_cond(&b, "CROSSES_ABOVE(1, 2)", &[], &[]).iter().all(|x| !x));
    assert_eq!(
        eval_cond(&b, "CROSSES_ABOVE(SMA(2), 2.2)", &[], &[]),
        [false, false, true, false, true, false, false, false]
    );

    // Against a per-bar reference on random data.
    let r = bars(500, 11);
    let fast = ta::sma(&r.close, 3);
    let slow = ta::sma(&r.close, 7);
    let up = eval_cond(&r, "CROSSES_ABOVE(SMA(3), SMA(7))", &[], &[]);
    let down = eval_cond(&r, "CROSSES_BELOW(SMA(3), SMA(7))", &[], &[]);
    for i in 0..r.close.len() {
        let want_up = i > 0 && fast[i - 1] < slow[i - 1] && fast[i] > slow[i];
        let want_down = i > 0 && fast[i - 1] > slow[i - 1] && fast[i] < slow[i];
        assert_eq!(up[i], want_up, "bar {i}");
        assert_eq!(down[i], want_down, "bar {i}");
    }
    assert!(up.iter().filter(|x| **x).count() > 5);
}

#[test]
fn nan_compares_false_and_equality_has_tolerance() {
    let b = bars(60, 5);
    let defined = eval_cond(&b, "RSI(14) > -1", &[], &[]);
    assert!(defined[..14].iter().all(|x| !x) && defined[14..].iter().all(|x| *x));
    assert!(eval_cond(&b, "RSI(14) != 1000", &[], &[])[..14].iter().all(|x| !x));
    assert!(eval_cond(&b, "RSI(14) == RSI(14)", &[], &[])[..14].iter().all(|x| !x));
    assert!(eval_cond(&b, "NOT (RSI(14) > 1000)", &[], &[]).iter().all(|x| *x));
    assert!(eval_cond(&b, "CLOSE == CLOSE + 0.00005", &[], &[]).iter().all(|x| *x));
    assert!(eval_cond(&b, "CLOSE != CLOSE + 0.00005", &[], &[]).iter().all(|x| !x));
    assert!(eval_cond(&b, "CLOSE == CLOSE + 0.0002", &[], &[]).iter().all(|x| !x));
    assert!(eval_cond(&b, "CLOSE[1] > 0", &[], &[])[0..1] == [false]);
    assert!(!eval_cond(&b, "(CLOSE > 0)[2]", &[], &[])[1]);
    assert!(eval_cond(&b, "(CLOSE > 0)[2]", &[], &[])[2]);
    assert!(eval_cond(&b, "1 < 2", &[], &[]).iter().all(|x| *x));
    assert!(eval_cond(&b, "1 > 2 OR 1 < 2 AND CLOSE > 0", &[], &[]).iter().all(|x| *x));
}

#[test]
fn parameters_are_read_and_checked_at_evaluation() {
    let b = bars(80, 9);
    let with_param = eval_cond(&b, "RSI(p) < lvl", &["p", "lvl"], &[10.0, 45.0]);
    let constant = eval_cond(&b, "RSI(10) < 45", &[], &[]);
    assert_eq!(with_param, constant);

    let ext = ExternalSeries::new();
    let cond = parse("SMA(p) > CLOSE[k]", &["p", "k"]).unwrap();
    let mut ev = Evaluator::new(&b, &ext).unwrap();
    let e = ev.condition(&cond, &[0.0, 1.0]).unwrap_err();
    assert_eq!(e.to_string(), "parameter 'p' = 0: argument 1 of SMA must be a whole number from 1 to 500, got 0");
    let e = ev.condition(&cond, &[5.5, 1.0]).unwrap_err();
    assert!(matches!(e, EvalError::BadParam { .. }), "{e}");
    let e = ev.condition(&cond, &[5.0, f64::NAN]).unwrap_err();
    assert_eq!(e.to_string(), "parameter 'k' = NaN: the lookback must be a whole number from 0 to 500, got NaN");
    let e = ev.condition(&cond, &[5.0]).unwrap_err();
    assert_eq!(e, EvalError::MissingParam { name: "k".to_string(), slot: 1 });
    // A hand-built tree with an invalid constant is refused, not a panic.
    let bad = Cond::Compare(CmpOp::Gt, Num::Indicator(Indicator::Sma, vec![Arg::Const(0.0)]), Num::Const(1.0));
    assert!(matches!(ev.condition(&bad, &[]), Err(EvalError::BadConstant { .. })));
    let short = Cond::Compare(CmpOp::Gt, Num::Indicator(Indicator::Macd, vec![Arg::Const(3.0)]), Num::Const(1.0));
    assert!(matches!(ev.condition(&short, &[]), Err(EvalError::BadConstant { .. })));
}

#[test]
fn external_series_are_checked() {
    let b = bars(30, 1);
    let cond = parse("ml_confidence >= 0.7 AND vol_regime_low == 0", &[]).unwrap();
    let mut ext = ExternalSeries::new();
    {
        let mut ev = Evaluator::new(&b, &ext).unwrap();
        assert_eq!(ev.condition(&cond, &[]).unwrap_err(), EvalError::MissingExternal("ml_confidence"));
    }
    ext.insert("ml_confidence".to_string(), (0..30).map(|i| i as f64 / 30.0).collect());
    ext.insert("VOL_REGIME_LOW".to_string(), (0..30).map(|i| f64::from(u8::from(i % 2 == 0))).collect());
    let got = Evaluator::new(&b, &ext).unwrap().condition(&cond, &[]).unwrap();
    let want: Vec<bool> = (0..30).map(|i| i as f64 / 30.0 >= 0.7 && i % 2 == 1).collect();
    assert_eq!(got, want);
    ext.insert("vol_regime_high".to_string(), vec![0.0; 29]);
    assert_eq!(
        Evaluator::new(&b, &ext).unwrap_err().to_string(),
        "external series 'vol_regime_high' has 29 values but there are 30 bars"
    );
}

#[test]
fn ragged_and_empty_bars() {
    let mut b = bars(10, 1);
    b.volume.pop();
    let ext = ExternalSeries::new();
    assert!(matches!(Evaluator::new(&b, &ext), Err(EvalError::RaggedColumns(_))));
    let empty = Columns::default();
    let cond = parse("CROSSES_ABOVE(SMA(3), CLOSE[2]) AND HOUR > 1 OR HIGHEST(CLOSE - 1, 3) > 0", &[]).unwrap();
    assert_eq!(Evaluator::new(&empty, &ext).unwrap().condition(&cond, &[]).unwrap(), Vec::<bool>::new());
    // Fewer bars than any warm-up.
    let tiny = bars(2, 1);
    let all = "RSI > 0 OR MACD > 0 OR ADX > 0 OR ATR > 0 OR STOCH_D > 0 OR BB_LOWER > 0 OR CCI > 0 OR WILLR < 1 OR MOM > 0 OR ROC > 0 OR STDDEV > 0 OR PLUS_DI > 0";
    assert_eq!(eval_cond(&tiny, all, &[], &[]), [false, false]);
}

#[test]
fn indicator_cache_is_keyed_by_resolved_arguments() {
    let b = bars(300, 2);
    let ext = ExternalSeries::new();
    let cond = parse("CROSSES_ABOVE(SMA(f), SMA(s)) AND MACD(f, s, 9) > 0", &["f", "s"]).unwrap();
    let mut ev = Evaluator::new(&b, &ext).unwrap();
    let first = ev.condition(&cond, &[5.0, 20.0]).unwrap();
    // SMA 5, SMA 20, MACD line/signal/hist.
    assert_eq!(ev.cached_series(), 5);
    assert_eq!(ev.condition(&cond, &[5.0, 20.0]).unwrap(), first);
    assert_eq!(ev.cached_series(), 5);
    ev.condition(&cond, &[20.0, 5.0]).unwrap();
    // SMA(20) and SMA(5) reused; MACD(20, 5, 9) is a new key.
    assert_eq!(ev.cached_series(), 8);
    for f in 2..12 {
        ev.condition(&cond, &[f as f64, 30.0]).unwrap();
    }
    assert!(ev.cached_series() <= 8 + 10 * 4 + 1);
    ev.clear_cache();
    assert_eq!(ev.cached_series(), 0);
    assert_eq!(ev.condition(&cond, &[5.0, 20.0]).unwrap(), first);
}

#[test]
fn combine_any_and_all() {
    let b = bars(50, 4);
    let ext = ExternalSeries::new();
    let conds = [parse("CLOSE > OPEN", &[]).unwrap(), parse("HOUR >= 12", &[]).unwrap()];
    let mut ev = Evaluator::new(&b, &ext).unwrap();
    let mut any = Vec::new();
    let mut all = Vec::new();
    ev.combine_into(&conds, &[], false, &mut any).unwrap();
    ev.combine_into(&conds, &[], true, &mut all).unwrap();
    for i in 0..50 {
        let (a, h) = (b.close[i] > b.open[i], i % 24 >= 12);
        assert_eq!(any[i], a || h);
        assert_eq!(all[i], a && h);
    }
    ev.combine_into(&[], &[], true, &mut all).unwrap();
    assert!(all.len() == 50 && all.iter().all(|x| !x));
    let constant = [parse("1 > 0", &[]).unwrap(), parse("CLOSE > OPEN", &[]).unwrap()];
    ev.combine_into(&constant, &[], false, &mut any).unwrap();
    assert!(any.iter().all(|x| *x));
}

// ---------------------------------------------------------------- properties

const NAMES: [&str; 3] = ["alpha", "beta_2", "_g"];

fn arb_arg(kind: ArgKind) -> BoxedStrategy<Arg> {
    let (lo, hi) = kind.bounds();
    let constant = if kind.integer() {
        (lo as i64..=hi as i64).prop_map(|v| Arg::Const(v as f64)).boxed()
    } else {
        (0u32..=1000).prop_map(|v| Arg::Const(f64::from(v) / 100.0)).boxed()
    };
    let param = (0..NAMES.len()).prop_map(|slot| Arg::Param(ParamRef { slot, name: NAMES[slot].to_string() }));
    prop_oneof![3 => constant, 1 => param].boxed()
}

fn arb_leaf() -> BoxedStrategy<Num> {
    let constant = prop_oneof![
        (-100_000i64..100_000).prop_map(|v| Num::Const(v as f64 / 100.0)),
        (-1e12f64..1e12).prop_map(Num::Const),
    ];
    let indicator = proptest::sample::select(Indicator::ALL.to_vec()).prop_flat_map(|ind| {
        let args: Vec<BoxedStrategy<Arg>> = ind.args().iter().map(|a| arb_arg(a.kind)).collect();
        args.prop_map(move |args| Num::Indicator(ind, args))
    });
    prop_oneof![
        constant,
        (0..NAMES.len()).prop_map(|slot| Num::Param(ParamRef { slot, name: NAMES[slot].to_string() })),
        proptest::sample::select(vec![
            PriceField::Open,
            PriceField::High,
            PriceField::Low,
            PriceField::Close,
            PriceField::Volume
        ])
        .prop_map(Num::Price),
        proptest::sample::select(vec![TimeField::Hour, TimeField::DayOfWeek]).prop_map(Num::Time),
        proptest::sample::select(External::ALL.to_vec()).prop_map(Num::External),
        indicator,
    ]
    .boxed()
}

fn arb_num() -> BoxedStrategy<Num> {
    arb_leaf()
        .prop_recursive(4, 24, 2, |inner| {
            let b = |x: Num| Box::new(x);
            prop_oneof![
                (inner.clone(), arb_arg(ArgKind::Period)).prop_map(move |(x, p)| Num::Highest(b(x), p)),
                (inner.clone(), arb_arg(ArgKind::Period)).prop_map(move |(x, p)| Num::Lowest(b(x), p)),
                inner.clone().prop_filter("folded", |x| !matches!(x, Num::Const(_))).prop_map(move |x| Num::Neg(b(x))),
                (
                    proptest::sample::select(vec![ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div]),
                    inner.clone(),
                    inner.clone()
                )
                    .prop_map(move |(op, x, y)| Num::Arith(op, b(x), b(y))),
                inner.clone().prop_map(move |x| Num::Abs(b(x))),
                (inner.clone(), inner.clone()).prop_map(move |(x, y)| Num::Min(b(x), b(y))),
                (inner.clone(), inner.clone()).prop_map(move |(x, y)| Num::Max(b(x), b(y))),
                (inner, arb_arg(ArgKind::Lookback)).prop_map(move |(x, n)| Num::Prev(b(x), n)),
            ]
        })
        .boxed()
}

fn arb_cond() -> BoxedStrategy<Cond> {
    let ops = vec![CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge, CmpOp::Eq, CmpOp::Ne];
    let leaf = prop_oneof![
        (proptest::sample::select(ops), arb_num(), arb_num()).prop_map(|(op, a, b)| Cond::Compare(op, a, b)),
        (arb_num(), arb_num()).prop_map(|(a, b)| Cond::CrossesAbove(a, b)),
        (arb_num(), arb_num()).prop_map(|(a, b)| Cond::CrossesBelow(a, b)),
    ];
    leaf.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::Or(Box::new(a), Box::new(b))),
            inner.clone().prop_map(|a| Cond::Not(Box::new(a))),
            (inner, arb_arg(ArgKind::Lookback)).prop_map(|(a, n)| Cond::Prev(Box::new(a), n)),
        ]
    })
    .boxed()
}

const ROOMY: Limits = Limits { max_chars: 1_000_000, max_depth: 10_000, max_nodes: 1_000_000 };

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn printed_trees_parse_back_to_the_same_tree(tree in arb_cond()) {
        let text = tree.to_string();
        let parsed = parse_with(&text, &NAMES, ROOMY);
        prop_assert_eq!(parsed.as_ref(), Ok(&tree), "{}", text);
        // Case does not matter.
        let lower = parse_with(&text.to_ascii_lowercase(), &NAMES, ROOMY);
        prop_assert_eq!(lower.as_ref(), Ok(&tree));
    }

    #[test]
    fn garbage_never_panics(text in "[ -~]{0,120}", unicode in any::<String>()) {
        let _ = parse(&text, &NAMES);
        let _ = parse(&unicode, &NAMES);
    }

    #[test]
    fn near_miss_text_never_panics_and_parsed_rules_evaluate(
        words in proptest::collection::vec(proptest::sample::select(vec![
            "(", ")", "[", "]", ",", "+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "AND", "OR", "NOT", "!",
            "CLOSE", "HIGH", "1", "14", "0.5", "RSI", "SMA(", "MACD(", "HIGHEST(", "CROSSES_ABOVE(", "ABS(", "alpha",
            "ml_signal", "HOUR", "BB_UPPER(", "3", "1e2",
        ]), 0..40)
    ) {
        let text = words.join(" ");
        if let Ok(cond) = parse(&text, &NAMES) {
            let b = bars(40, 1);
            let mut ext = ExternalSeries::new();
            ext.insert("ml_signal".to_string(), vec![1.0; 40]);
            let mut ev = Evaluator::new(&b, &ext).unwrap();
            // Any parameter values: an error or a result, never a panic.
            let _ = ev.condition(&cond, &[14.0, 2.0, 0.5]);
            let _ = ev.condition(&cond, &[-1.0, 1e300, f64::NAN]);
        }
    }

    #[test]
    fn depth_bombs_are_refused(n in 33usize..3_000, kind in 0usize..4) {
        let text = match kind {
            0 => format!("{}CLOSE{} > 1", "(".repeat(n), ")".repeat(n)),
            1 => format!("{}CLOSE > 1", "NOT ".repeat(n)),
            2 => format!("CLOSE > {}1", "-".repeat(n)),
            _ => format!("{}1{} > 0", "ABS(".repeat(n), ")".repeat(n)),
        };
        let limits = Limits { max_chars: 1_000_000, ..Limits::default() };
        let e = parse_with(&text, &[], limits).unwrap_err();
        prop_assert!(matches!(e[..], [RuleError::TooDeep { max: MAX_DEPTH, .. }]), "{:?}", e);
    }

    #[test]
    fn signals_at_a_bar_ignore_later_bars(seed in any::<u64>(), cut in 5usize..115, other in any::<u64>()) {
        let conds = [
            "CROSSES_ABOVE(SMA(3), EMA(8)) OR CROSSES_BELOW(MACD(3, 8, 4), MACD_SIGNAL(3, 8, 4))",
            "RSI(5) < 40 AND ADX(4) > 10 OR PLUS_DI(4) > MINUS_DI(4) AND STOCH_K(5) > STOCH_D(5, 2)",
            "CLOSE > HIGHEST(HIGH, 6)[1] OR CLOSE < LOWEST(LOW - ATR(3), 4) OR CLOSE > BB_UPPER(6, 1.5)",
            "CCI(5) > 0 AND WILLR(5) < -20 OR MOM(3) / STDDEV(4) > ROC(2) OR (CLOSE > OPEN)[2] AND HOUR > 3",
            "ABS(CLOSE - OPEN) > MIN(ATR(3), MAX(STDDEV(3), 0.0001)) OR CLOSE[1] == CLOSE",
        ];
        let a = bars(120, seed);
        let mut b = bars(120, other);
        // Same history up to `cut`, anything after.
        for i in 0..=cut {
            b.time[i] = a.time[i];
            b.open[i] = a.open[i];
            b.high[i] = a.high[i];
            b.low[i] = a.low[i];
            b.close[i] = a.close[i];
            b.volume[i] = a.volume[i];
        }
        for text in conds {
            let x = eval_cond(&a, text, &[], &[]);
            let y = eval_cond(&b, text, &[], &[]);
            prop_assert_eq!(&x[..=cut], &y[..=cut], "{}", text);
        }
    }
}
