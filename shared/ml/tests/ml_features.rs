//! ML indicators and features on real data (issue 7): agreement with independent naive reference implementations
//! of the TA-Lib definitions on the EURUSD sample, invariants, the warm-up, and causality (no leakage).
//!
//! The EURUSD sample lives outside the repository (`$NUSATRADE_EURUSD_CSV`, else `../shared/data/EURUSD.csv`
//! next to the checkout, see its README); when it is missing the EURUSD tests say so on stderr and pass, and the
//! causality tests still run on synthetic series.

use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use nusatrade_ml::candles::{Candle, CandleSeries};
use nusatrade_ml::features::{FeatureMatrix, NAMES, STABLE_HISTORY_BARS, WARMUP_BARS, compute};
use nusatrade_ml::indicators as ind;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------------------------
// Data

/// Parses `,Open,High,Low,Close,Volume` CSV (timestamp `YYYY-MM-DD HH:MM:SS`, UTC); errors name the 1-based line.
fn parse_csv(text: &str) -> Result<Vec<Candle>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == ",Open,High,Low,Close,Volume" => {}
        other => return Err(format!("line 1: unexpected header {other:?}")),
    }
    lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let err = |what: &str| format!("line {}: {what}: {line:?}", i + 1);
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 6 {
                return Err(err("expected 6 fields"));
            }
            let time = NaiveDateTime::parse_from_str(f[0], "%Y-%m-%d %H:%M:%S").map_err(|_| err("bad timestamp"))?;
            let num = |s: &str| s.trim().parse::<f64>().map_err(|_| err("bad number"));
            Ok(Candle {
                time: time.and_utc(),
                open: num(f[1])?,
                high: num(f[2])?,
                low: num(f[3])?,
                close: num(f[4])?,
                volume: num(f[5])?,
            })
        })
        .collect()
}

/// The EURUSD sample, if present.
fn eurusd() -> Option<&'static CandleSeries> {
    static DATA: OnceLock<Option<CandleSeries>> = OnceLock::new();
    DATA.get_or_init(|| {
        let path = std::env::var_os("NUSATRADE_EURUSD_CSV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/EURUSD.csv"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            // The team's reference data sits beside the checkout (and in CI); missing it is a setup
            // error, not a pass — unless explicitly allowed.
            assert!(
                std::env::var_os("NUSATRADE_ALLOW_MISSING_DATA").is_some(),
                "{} not found: set NUSATRADE_EURUSD_CSV, or NUSATRADE_ALLOW_MISSING_DATA=1 to skip",
                path.display()
            );
            eprintln!("SKIPPED: {} not found (set NUSATRADE_EURUSD_CSV)", path.display());
            return None;
        };
        let candles = parse_csv(&text).expect("EURUSD.csv parses");
        Some(CandleSeries::new(candles).expect("EURUSD.csv is a valid series"))
    })
    .as_ref()
}

/// Features of the whole EURUSD sample, computed once.
fn eurusd_features() -> Option<&'static FeatureMatrix> {
    static DATA: OnceLock<Option<FeatureMatrix>> = OnceLock::new();
    DATA.get_or_init(|| eurusd().map(compute)).as_ref()
}

/// The deterministic generator for synthetic bars.
use nusatrade_ml::SplitMix64 as Rng;

/// A random valid bar at `time` opening at `open`; sometimes flat or with zero volume.
fn random_bar(rng: &mut Rng, time: DateTime<Utc>, open: f64) -> Candle {
    let flat = rng.unit() < 0.05;
    let wick = if flat { 0.0 } else { 0.002 };
    let close = if flat { open } else { open * (1.0 + (rng.unit() - 0.5) * 0.004) };
    let high = open.max(close) * (1.0 + rng.unit() * wick);
    let low = open.min(close) * (1.0 - rng.unit() * wick);
    let volume = if rng.unit() < 0.05 { 0.0 } else { (rng.unit() * 5000.0).floor() };
    Candle { time, open, high, low, close, volume }
}

/// A synthetic hourly random walk of `n` bars.
fn synthetic(seed: u64, n: usize) -> CandleSeries {
    let mut rng = Rng(seed);
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut candles = Vec::with_capacity(n);
    let mut price = 1.1;
    for i in 0..n {
        let bar = random_bar(&mut rng, start + Duration::hours(i as i64), price);
        price = bar.close;
        candles.push(bar);
    }
    CandleSeries::new(candles).unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// Naive reference implementations of the TA-Lib definitions: O(n·w) loops, written independently of the library.

fn ref_sma(x: &[f64], p: usize) -> Vec<f64> {
    (0..x.len()).map(|t| if t + 1 < p { f64::NAN } else { x[t + 1 - p..=t].iter().sum::<f64>() / p as f64 }).collect()
}

/// EMA as an explicit weighted sum: seed·(1−k)^(t−s) + Σ_{s<i≤t} k·(1−k)^(t−i)·x_i, seed = SMA of x[0..p].
fn ref_ema(x: &[f64], p: usize) -> Vec<f64> {
    let k = 2.0 / (p as f64 + 1.0);
    let s = p - 1;
    let seed = x[..p].iter().sum::<f64>() / p as f64;
    (0..x.len())
        .map(|t| {
            if t < s {
                return f64::NAN;
            }
            let mut v = seed * (1.0 - k).powi((t - s) as i32);
            for (i, xi) in x.iter().enumerate().take(t + 1).skip(s + 1) {
                v += k * (1.0 - k).powi((t - i) as i32) * xi;
            }
            v
        })
        .collect()
}

/// Wilder average: mean of the `p` values `x[from..from + p]`, then `avg += (x − avg)/p`.
fn ref_wilder(x: &[f64], from: usize, p: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    let first = from + p - 1;
    if first >= x.len() {
        return out;
    }
    let mut avg = x[from..=first].iter().sum::<f64>() / p as f64;
    out[first] = avg;
    for t in first + 1..x.len() {
        avg += (x[t] - avg) / p as f64;
        out[t] = avg;
    }
    out
}

fn ref_rsi(c: &[f64], p: usize) -> Vec<f64> {
    let gains: Vec<f64> = (0..c.len()).map(|t| if t == 0 { 0.0 } else { (c[t] - c[t - 1]).max(0.0) }).collect();
    let losses: Vec<f64> = (0..c.len()).map(|t| if t == 0 { 0.0 } else { (c[t - 1] - c[t]).max(0.0) }).collect();
    let (g, l) = (ref_wilder(&gains, 1, p), ref_wilder(&losses, 1, p));
    (0..c.len()).map(|t| 100.0 - 100.0 / (1.0 + g[t] / l[t])).collect()
}

fn ref_tr(h: &[f64], l: &[f64], c: &[f64]) -> Vec<f64> {
    (0..c.len())
        .map(|t| {
            if t == 0 {
                return f64::NAN;
            }
            [h[t] - l[t], (h[t] - c[t - 1]).abs(), (l[t] - c[t - 1]).abs()].into_iter().fold(f64::MIN, f64::max)
        })
        .collect()
}

fn ref_atr(h: &[f64], l: &[f64], c: &[f64], p: usize) -> Vec<f64> {
    ref_wilder(&ref_tr(h, l, c), 1, p)
}

/// Bollinger with TA-Lib's own variance formula, E[x²] − E[x]².
fn ref_bollinger(x: &[f64], p: usize, k: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mid = ref_sma(x, p);
    let sq: Vec<f64> = x.iter().map(|v| v * v).collect();
    let mean_sq = ref_sma(&sq, p);
    let sd: Vec<f64> = (0..x.len()).map(|t| (mean_sq[t] - mid[t] * mid[t]).max(0.0).sqrt()).collect();
    let upper = (0..x.len()).map(|t| mid[t] + k * sd[t]).collect();
    let lower = (0..x.len()).map(|t| mid[t] - k * sd[t]).collect();
    (upper, mid, lower)
}

fn ref_stoch_k(h: &[f64], l: &[f64], c: &[f64], p: usize) -> Vec<f64> {
    (0..c.len())
        .map(|t| {
            if t + 1 < p {
                return f64::NAN;
            }
            let hh = h[t + 1 - p..=t].iter().fold(f64::MIN, |a, &b| a.max(b));
            let ll = l[t + 1 - p..=t].iter().fold(f64::MAX, |a, &b| a.min(b));
            if hh == ll { 0.0 } else { 100.0 * (c[t] - ll) / (hh - ll) }
        })
        .collect()
}

fn ref_cci(h: &[f64], l: &[f64], c: &[f64], p: usize) -> Vec<f64> {
    let tp: Vec<f64> = (0..c.len()).map(|t| (h[t] + l[t] + c[t]) / 3.0).collect();
    (0..c.len())
        .map(|t| {
            if t + 1 < p {
                return f64::NAN;
            }
            let w = &tp[t + 1 - p..=t];
            let m = w.iter().sum::<f64>() / p as f64;
            let md = w.iter().map(|v| (v - m).abs()).sum::<f64>() / p as f64;
            (tp[t] - m) / (0.015 * md)
        })
        .collect()
}

/// Asserts `actual` ≈ `expected` (relative `tol`, absolute below 1) on every bar from `from`, and `NaN` before.
#[track_caller]
fn agree(name: &str, actual: &[f64], expected: &[f64], from: usize, tol: f64) {
    assert_eq!(actual.len(), expected.len(), "{name}: length");
    for t in 0..actual.len() {
        if t < from {
            assert!(actual[t].is_nan(), "{name}: bar {t} should be warm-up NaN, got {}", actual[t]);
        } else {
            let (a, e) = (actual[t], expected[t]);
            assert!((a - e).abs() <= tol * e.abs().max(1.0), "{name}: bar {t}: {a} vs reference {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Agreement with the references on EURUSD

#[test]
fn parser_names_bad_lines() {
    assert_eq!(parse_csv(",Open,High,Low,Close,Volume\n2024-01-01 00:00:00,1,1,1,1,1\n").unwrap().len(), 1);
    let e = parse_csv(",Open,High,Low,Close,Volume\n2024-01-01 00:00:00,1,1,1,1,1\n2024-01-01 01:00:00,1,x,1,1,1\n");
    assert!(e.unwrap_err().starts_with("line 3: bad number"));
}

#[test]
fn eurusd_sample_is_complete() {
    let Some(s) = eurusd() else { return };
    assert_eq!(s.len(), 5000);
    assert_eq!(s.candles()[0].time, Utc.with_ymd_and_hms(2017, 4, 19, 9, 0, 0).unwrap());
    assert_eq!(s.candles()[4999].time, Utc.with_ymd_and_hms(2018, 2, 7, 15, 0, 0).unwrap());
}

#[test]
fn moving_averages_agree_with_reference_on_eurusd() {
    let Some(s) = eurusd() else { return };
    let c = s.columns().close;
    for p in [5, 10, 20, 50, 100, 200] {
        agree(&format!("sma_{p}"), &ind::sma(&c, p), &ref_sma(&c, p), p - 1, 1e-12);
        agree(&format!("ema_{p}"), &ind::ema(&c, p), &ref_ema(&c, p), p - 1, 1e-10);
    }
    // MACD line = EMA12 − EMA26 where the fast EMA is seeded at bar 25 from bars 14..=25 (TA-Lib).
    let m = ind::macd(&c, 12, 26, 9);
    let fast = ref_ema(&c[14..], 12);
    let slow = ref_ema(&c, 26);
    let line: Vec<f64> = (0..c.len()).map(|t| if t < 25 { f64::NAN } else { fast[t - 14] - slow[t] }).collect();
    agree("macd", &m.line, &line, 25, 1e-10);
    let signal: Vec<f64> = std::iter::repeat_n(f64::NAN, 25).chain(ref_ema(&line[25..], 9)).collect();
    agree("macd_signal", &m.signal, &signal, 33, 1e-10);
    let hist: Vec<f64> = line.iter().zip(&signal).map(|(l, s)| l - s).collect();
    agree("macd_hist", &m.hist, &hist, 33, 1e-10);
}

#[test]
fn oscillators_agree_with_reference_on_eurusd() {
    let Some(s) = eurusd() else { return };
    let cols = s.columns();
    let (h, l, c) = (&cols.high, &cols.low, &cols.close);
    for p in [7, 14, 21] {
        agree(&format!("rsi_{p}"), &ind::rsi(c, p), &ref_rsi(c, p), p, 1e-9);
    }
    agree("atr_14", &ind::atr(h, l, c, 14), &ref_atr(h, l, c, 14), 14, 1e-9);
    agree("tr", &ind::true_range(h, l, c), &ref_tr(h, l, c), 1, 0.0);
    let (upper, mid, lower) = ref_bollinger(c, 20, 2.0);
    let bb = ind::bollinger(c, 20, 2.0);
    agree("bb_upper", &bb.upper, &upper, 19, 1e-10);
    agree("bb_middle", &bb.middle, &mid, 19, 1e-12);
    agree("bb_lower", &bb.lower, &lower, 19, 1e-10);
    agree("stoch_k", &ind::stochastic(h, l, c, 14, 3).k, &ref_stoch_k(h, l, c, 14), 13, 1e-9);
    agree("cci_20", &ind::cci(h, l, c, 20), &ref_cci(h, l, c, 20), 19, 1e-9);
}

#[test]
fn invariants_hold_on_eurusd() {
    let Some(f) = eurusd_features() else { return };
    let col = |name: &str| f.column(name).unwrap()[WARMUP_BARS..].to_vec();
    let within = |name: &str, lo: f64, hi: f64| {
        for (i, v) in col(name).into_iter().enumerate() {
            assert!((lo..=hi).contains(&v), "{name} at bar {}: {v} not in [{lo}, {hi}]", i + WARMUP_BARS);
        }
    };
    for name in ["rsi_7", "rsi_14", "rsi_21", "stoch_k", "stoch_d", "adx", "plus_di", "minus_di"] {
        within(name, 0.0, 100.0);
    }
    within("hour", 0.0, 23.0);
    within("day_of_week", 0.0, 6.0);
    assert!(col("atr").iter().all(|&a| a > 0.0));
    let (up, mid, low) = (col("bb_upper"), col("bb_middle"), col("bb_lower"));
    assert!((0..up.len()).all(|i| up[i] >= mid[i] && mid[i] >= low[i]));
    for name in NAMES {
        let values = col(name);
        assert!(values.iter().all(|v| v.is_finite()), "{name} has a non-finite value after the warm-up");
        let is_flag = name.contains("cross")
            || name.starts_with("is_")
            || name.ends_with("sold")
            || name.ends_with("bought")
            || name.ends_with("engulfing")
            || name.ends_with("_positive")
            || ["strong_trend", "doji", "hammer", "shooting_star"].contains(&name);
        if is_flag {
            assert!(values.iter().all(|&v| v == 0.0 || v == 1.0), "{name} is not a 0/1 flag");
            assert!(values.contains(&1.0), "{name} never fires on 5,000 bars");
        }
    }
    // Spot values from the file: bar 0 is Wednesday 2017-04-19 09:00 UTC, O 1.0716 H 1.0722 L 1.07083 C 1.07219.
    let at = |n: &str| f.rows[0][f.column_index(n).unwrap()];
    assert_eq!(
        [at("hour"), at("day_of_week"), at("is_asian"), at("is_london"), at("is_ny")],
        [9.0, 2.0, 0.0, 1.0, 0.0]
    );
    // body 1.07219 − 1.0716, upper wick 1.0722 − 1.07219, lower wick 1.0716 − 1.07083, range 1.0722 − 1.07083.
    for (name, expected) in
        [("body_size", 0.00059), ("upper_wick", 0.00001), ("lower_wick", 0.00077), ("high_low_range", 0.00137)]
    {
        assert!((at(name) - expected).abs() < 1e-12, "{name}: {}", at(name));
    }
}

#[test]
fn warm_up_is_explicit_and_dropped_not_filled() {
    let Some(f) = eurusd_features() else { return };
    assert_eq!(f.names, NAMES);
    assert_eq!(f.len(), 5000);
    assert!(f.rows.iter().all(|r| r.len() == NAMES.len()));
    for (t, row) in f.rows.iter().enumerate() {
        assert_eq!(row.iter().any(|v| v.is_nan()), t < WARMUP_BARS, "row {t}");
    }
    // Per-column warm-up lengths are the TA-Lib lookbacks.
    let first_defined = |name: &str| f.column(name).unwrap().iter().position(|v| !v.is_nan()).unwrap();
    for (name, lookback) in [
        ("sma_200", 199),
        ("ema_200", 199),
        ("ema_5", 4),
        ("macd", 25),
        ("macd_signal", 33),
        ("macd_cross", 33),
        ("plus_di", 14),
        ("adx", 27),
        ("strong_trend", 27),
        ("rsi_14", 14),
        ("rsi_7", 7),
        ("stoch_k", 13),
        ("stoch_d", 15),
        ("momentum_10", 10),
        ("roc_20", 20),
        ("cci", 19),
        ("bb_percent", 19),
        ("atr", 14),
        ("volume_sma_20", 19),
        ("obv_delta_20", 20),
        ("returns", 1),
        ("volatility_20", 20),
        ("bullish_engulfing", 1),
        ("doji", 0),
        ("hour", 0),
    ] {
        assert_eq!(first_defined(name), lookback, "{name}");
    }
    let kept = f.clone().drop_warmup();
    assert_eq!(kept.len(), 5000 - WARMUP_BARS);
    assert_eq!(kept.bar_index[0], WARMUP_BARS);
    assert_eq!(kept.times[0], eurusd().unwrap().candles()[WARMUP_BARS].time);
    assert_eq!(kept.rows[0], f.rows[WARMUP_BARS]);
    assert_eq!(kept.rows.last(), f.rows.last());
}

#[test]
fn a_history_of_stable_length_gives_the_same_features() {
    let Some(s) = eurusd() else { return };
    let f = eurusd_features().unwrap();
    for end in (STABLE_HISTORY_BARS..=5000).step_by(250) {
        let short = compute(&s.head(end).tail(STABLE_HISTORY_BARS));
        let (a, b) = (short.rows.last().unwrap(), &f.rows[end - 1]);
        for (i, name) in NAMES.iter().enumerate() {
            let close = (a[i] - b[i]).abs() <= 5e-6 * b[i].abs().max(1.0);
            assert!(close, "{name} at bar {}: {} over {STABLE_HISTORY_BARS} bars vs {} over all", end - 1, a[i], b[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Small hand-checked feature rows

#[test]
fn candle_patterns_and_sessions_by_hand() {
    // Monday 2024-01-01.
    let t = |h: u32| Utc.with_ymd_and_hms(2024, 1, 1, h, 0, 0).unwrap();
    let bar = |h, open, high, low, close| Candle { time: t(h), open, high, low, close, volume: 100.0 };
    let s = CandleSeries::new(vec![
        // bearish, body 0.001
        bar(7, 1.100, 1.101, 1.098, 1.099),
        // bullish, body 0.003 > 0.001 after a bearish bar → bullish engulfing; range 0.004: no doji
        bar(8, 1.099, 1.1025, 1.0985, 1.102),
        // body 0.0001 < 0.1 × range 0.004 → doji
        bar(13, 1.102, 1.104, 1.100, 1.1021),
        // bullish, body 0.001, lower wick 0.005 > 0.002, upper wick 0.0002 < 0.0005 → hammer
        bar(21, 1.100, 1.1012, 1.095, 1.101),
        // bearish, body 0.001, upper wick 0.005 > 0.002, lower wick 0.0002 < 0.0005 → shooting star;
        // bearish after bullish but the body equals the previous one → no bearish engulfing
        bar(22, 1.101, 1.106, 1.0998, 1.100),
    ])
    .unwrap();
    let f = compute(&s);
    let get = |t: usize, n: &str| f.rows[t][f.column_index(n).unwrap()];
    let pattern = |t| ["doji", "hammer", "shooting_star", "bullish_engulfing", "bearish_engulfing"].map(|n| get(t, n));
    let p0 = pattern(0);
    assert_eq!(p0[..3], [0.0, 0.0, 0.0]);
    assert!(p0[3].is_nan() && p0[4].is_nan(), "no previous bar: engulfing undefined");
    assert_eq!(pattern(1), [0.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(pattern(2), [1.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(pattern(3), [0.0, 1.0, 0.0, 0.0, 0.0]);
    assert_eq!(pattern(4), [0.0, 0.0, 1.0, 0.0, 0.0]);
    let sessions = |t| ["hour", "day_of_week", "is_asian", "is_london", "is_ny"].map(|n| get(t, n));
    assert_eq!(sessions(0), [7.0, 0.0, 1.0, 0.0, 0.0]);
    assert_eq!(sessions(1), [8.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(sessions(2), [13.0, 0.0, 0.0, 1.0, 1.0]);
    assert_eq!(sessions(3), [21.0, 0.0, 0.0, 0.0, 1.0]);
    assert_eq!(sessions(4), [22.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(get(1, "returns"), 1.102 / 1.099 - 1.0);
    assert_eq!(get(1, "log_returns"), (1.102f64 / 1.099).ln());
    assert!(get(0, "returns").is_nan());
    // sma_5 at bar 4 = (1.099 + 1.102 + 1.1021 + 1.101 + 1.100)/5; undefined at bar 3.
    assert!((get(4, "sma_5") - 5.5041 / 5.0).abs() < 1e-12);
    assert!(get(3, "sma_5").is_nan());
}

#[test]
fn empty_and_short_series_are_all_warm_up() {
    let f = compute(&CandleSeries::default());
    assert!(f.is_empty());
    assert_eq!(f.names.len(), 69);
    let f = compute(&synthetic(1, 150));
    assert_eq!(f.len(), 150);
    assert!(f.drop_warmup().is_empty());
    assert_eq!(compute(&synthetic(1, 250)).drop_warmup().len(), 250 - WARMUP_BARS);
}

#[test]
fn degenerate_flat_series_has_no_infinities() {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let flat: Vec<Candle> = (0..300)
        .map(|i| Candle { time: start + Duration::hours(i), open: 1.0, high: 1.0, low: 1.0, close: 1.0, volume: 0.0 })
        .collect();
    let f = compute(&CandleSeries::new(flat).unwrap()).drop_warmup();
    assert_eq!(f.len(), 300 - WARMUP_BARS);
    let row = &f.rows[0];
    assert!(row.iter().all(|v| v.is_finite()), "{row:?}");
    let at = |n: &str| row[f.column_index(n).unwrap()];
    assert_eq!(
        [at("rsi_14"), at("stoch_k"), at("cci"), at("bb_percent"), at("volume_ratio")],
        [0.0, 0.0, 0.0, 0.5, 1.0]
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Causality: row t never depends on bars after t.

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// Replaces every bar after `cut` with random valid bars (same timestamps).
fn with_random_future(series: &CandleSeries, cut: usize, seed: u64) -> CandleSeries {
    let mut rng = Rng(seed);
    let mut candles = series.candles().to_vec();
    let mut price = candles[cut].close;
    for bar in candles.iter_mut().skip(cut + 1) {
        // Occasional jumps as well as drift, so the windows see very different futures.
        if rng.unit() < 0.01 {
            price *= 0.5 + rng.unit();
        }
        *bar = random_bar(&mut rng, bar.time, price);
        price = bar.close;
    }
    CandleSeries::new(candles).unwrap()
}

/// Rows `0..=cut` must be bit-identical for the full series, its prefix, and the series with a random future.
fn check_no_leakage(series: &CandleSeries, full: &FeatureMatrix, cut: usize, seed: u64) {
    let prefix = compute(&series.head(cut + 1));
    let changed = compute(&with_random_future(series, cut, seed));
    assert_eq!(prefix.len(), cut + 1);
    for t in 0..=cut {
        assert!(same_bits(&prefix.rows[t], &full.rows[t]), "prefix ..={cut} differs at row {t}");
        assert!(same_bits(&changed.rows[t], &full.rows[t]), "changing bars > {cut} changed row {t}");
    }
    // The future did change (the comparison is not vacuous).
    let last = series.len() - 1;
    if cut < last {
        assert!(!same_bits(&changed.rows[last], &full.rows[last]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn features_do_not_leak_the_future_on_eurusd(cut in 0usize..5000, seed in any::<u64>()) {
        if let (Some(s), Some(f)) = (eurusd(), eurusd_features()) {
            check_no_leakage(s, f, cut, seed);
        }
    }

    #[test]
    fn features_do_not_leak_the_future_on_synthetic_series(
        series_seed in any::<u64>(),
        cut in 0usize..600,
        seed in any::<u64>(),
    ) {
        let s = synthetic(series_seed, 600);
        check_no_leakage(&s, &compute(&s), cut, seed);
    }
}
