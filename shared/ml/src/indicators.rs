//! Technical indicators as pure functions over slices, following **TA-Lib**'s definitions (default compatibility
//! mode, unstable period 0).
//!
//! Every function returns a `Vec<f64>` aligned with its input (output `i` belongs to input bar `i`). The first
//! bars, where the indicator is not yet defined (its *warm-up* or *lookback*), are `NaN`: nothing is back-filled,
//! and every value at bar `t` depends only on inputs at bars `≤ t`. Inputs must be finite (a validated
//! [`CandleSeries`](crate::candles::CandleSeries) guarantees it); the lookback of each function is documented on it and equals
//! TA-Lib's `TA_<NAME>_Lookback`.
//!
//! Cost: O(n) per indicator, except [`cci`] and the windowed standard deviations, which are O(n·w) with the (small)
//! window w — as in TA-Lib for CCI; for the deviations, recomputing each window in two passes is exact, where a
//! running sum of squares loses digits on prices like 1.1 ± 0.001.
//!
//! Deliberate differences from TA-Lib (all only in degenerate cases):
//! * "zero" tests are exact (`== 0.0`); TA-Lib treats |x| < 1e-8 as zero, which would misfire on instruments
//!   quoted in very small units;
//! * [`macd`] also reports the MACD line during the signal's warm-up (TA-Lib starts all three outputs at the
//!   signal's first value); where both are defined the values are TA-Lib's;
//! * [`stddev`] and [`bollinger`] compute each window in two passes (same definition, better numerics).
//!
//! All periods must be at least 1 (the functions panic otherwise: periods are constants of the feature set).
//!
//! Williams %R ([`williams_r`]) is not in the feature set. Agreement with TA-Lib itself is checked in
//! `tests/talib_reference.rs` against values that the TA-Lib C library (0.8.1, through its Python wrapper) computed
//! on the EURUSD sample (fixture and the script that made it in `tests/fixtures/`); causality of the whole feature
//! set in [`features`](crate::features) and `tests/ml_features.rs`.

use std::collections::VecDeque;

fn check_period(period: usize) {
    assert!(period >= 1, "indicator period must be at least 1");
}

/// `x` full of `NaN`.
fn nans(n: usize) -> Vec<f64> {
    vec![f64::NAN; n]
}

/// Applies `f` to the part of `x` after its leading `NaN`s (an indicator's warm-up) and re-aligns the result.
/// Used to chain indicators (e.g. the SMA of %K) without letting the `NaN`s poison running sums.
fn on_defined(x: &[f64], f: impl FnOnce(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let start = x.iter().position(|v| !v.is_nan()).unwrap_or(x.len());
    let mut out = nans(start);
    out.extend(f(&x[start..]));
    out
}

/// Rolling sum over `period` bars (lookback `period − 1`), kept as a running total.
pub fn rolling_sum(x: &[f64], period: usize) -> Vec<f64> {
    check_period(period);
    let mut out = nans(x.len());
    let mut total = 0.0;
    for (i, &v) in x.iter().enumerate() {
        total += v;
        if i >= period {
            total -= x[i - period];
        }
        if i + 1 >= period {
            out[i] = total;
        }
    }
    out
}

/// Simple moving average (TA-Lib `SMA`): mean of the last `period` values. Lookback `period − 1`.
pub fn sma(x: &[f64], period: usize) -> Vec<f64> {
    rolling_sum(x, period).into_iter().map(|s| s / period as f64).collect()
}

/// Exponential moving average (TA-Lib `EMA`), `k = 2 / (period + 1)`, `ema_t = ema_{t−1} + k·(x_t − ema_{t−1})`.
///
/// **Seeding (TA-Lib's default mode):** the first value, at bar `period − 1`, is the SMA of the first `period`
/// values — not the first price (TA-Lib's Metastock mode, pandas `ewm(adjust=False)`). Lookback `period − 1`.
pub fn ema(x: &[f64], period: usize) -> Vec<f64> {
    ema_seeded(x, period, period - 1)
}

/// EMA whose SMA seed is the window of `period` values ending at bar `seed_at` (`seed_at ≥ period − 1`); `NaN`
/// before. TA-Lib's `MACD` seeds its fast EMA this way at the slow EMA's first bar.
fn ema_seeded(x: &[f64], period: usize, seed_at: usize) -> Vec<f64> {
    check_period(period);
    let mut out = nans(x.len());
    if seed_at >= x.len() {
        return out;
    }
    let k = 2.0 / (period as f64 + 1.0);
    let mut prev = x[seed_at + 1 - period..=seed_at].iter().sum::<f64>() / period as f64;
    out[seed_at] = prev;
    for i in seed_at + 1..x.len() {
        prev += (x[i] - prev) * k;
        out[i] = prev;
    }
    out
}

/// MACD line, signal and histogram.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Macd {
    /// `ema_fast − ema_slow`, from bar `slow − 1`.
    pub line: Vec<f64>,
    /// EMA(`signal`) of the line, from bar `slow + signal − 2` (TA-Lib's MACD lookback).
    pub signal: Vec<f64>,
    /// `line − signal`.
    pub hist: Vec<f64>,
}

/// MACD (TA-Lib `MACD`, e.g. 12/26/9). As in TA-Lib, both EMAs start at bar `slow − 1`: the slow one seeded with
/// the SMA of bars `0..slow`, the **fast one with the SMA of the `fast` bars ending at `slow − 1`** (not at
/// `fast − 1`); the signal is an SMA-seeded EMA of the line. Periods are swapped if `slow < fast`, as TA-Lib does.
pub fn macd(close: &[f64], fast: usize, slow: usize, signal: usize) -> Macd {
    let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
    check_period(fast);
    check_period(signal);
    let fast_ema = ema_seeded(close, fast, slow - 1);
    let slow_ema = ema(close, slow);
    let line: Vec<f64> = fast_ema.iter().zip(&slow_ema).map(|(f, s)| f - s).collect();
    let signal = on_defined(&line, |l| ema(l, signal));
    let hist = line.iter().zip(&signal).map(|(l, s)| l - s).collect();
    Macd { line, signal, hist }
}

/// Relative strength index (TA-Lib `RSI`), Wilder smoothing. Lookback `period`.
///
/// The first value, at bar `period`, uses the plain averages of the first `period` gains and losses (changes
/// 1..=period); then `avg = (avg·(period − 1) + current) / period`. `RSI = 100·avg_gain / (avg_gain + avg_loss)`,
/// and 0 when both averages are 0 (TA-Lib's choice for a flat window).
pub fn rsi(close: &[f64], period: usize) -> Vec<f64> {
    check_period(period);
    let mut out = nans(close.len());
    if close.len() <= period {
        return out;
    }
    let p = period as f64;
    let value = |gain: f64, loss: f64| {
        if gain + loss == 0.0 { 0.0 } else { 100.0 * gain / (gain + loss) }
    };
    let (mut gain, mut loss) = (0.0, 0.0);
    for i in 1..=period {
        let d = close[i] - close[i - 1];
        if d < 0.0 { loss -= d } else { gain += d }
    }
    gain /= p;
    loss /= p;
    out[period] = value(gain, loss);
    for i in period + 1..close.len() {
        let d = close[i] - close[i - 1];
        gain *= p - 1.0;
        loss *= p - 1.0;
        if d < 0.0 {
            loss -= d
        } else {
            gain += d
        }
        gain /= p;
        loss /= p;
        out[i] = value(gain, loss);
    }
    out
}

/// Rolling maximum (`is_max`) or minimum over `period` bars with a monotonic deque: O(n). Lookback `period − 1`.
fn rolling_extreme(x: &[f64], period: usize, is_max: bool) -> Vec<f64> {
    check_period(period);
    let mut out = nans(x.len());
    let mut window: VecDeque<usize> = VecDeque::with_capacity(period + 1);
    let dominated = |old: f64, new: f64| if is_max { old <= new } else { old >= new };
    for (i, &v) in x.iter().enumerate() {
        while window.back().is_some_and(|&j| dominated(x[j], v)) {
            window.pop_back();
        }
        window.push_back(i);
        if window.front().is_some_and(|&j| j + period <= i) {
            window.pop_front();
        }
        if i + 1 >= period {
            out[i] = x[window[0]];
        }
    }
    out
}

/// Highest value over the last `period` bars (TA-Lib `MAX`). Lookback `period − 1`.
pub fn rolling_max(x: &[f64], period: usize) -> Vec<f64> {
    rolling_extreme(x, period, true)
}

/// Lowest value over the last `period` bars (TA-Lib `MIN`). Lookback `period − 1`.
pub fn rolling_min(x: &[f64], period: usize) -> Vec<f64> {
    rolling_extreme(x, period, false)
}

/// Fast stochastic %K and %D.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stochastic {
    /// `100·(close − LL) / (HH − LL)` over `k_period` bars; 0 when HH = LL (TA-Lib). From bar `k_period − 1`.
    pub k: Vec<f64>,
    /// SMA(`d_period`) of %K, from bar `k_period + d_period − 2`.
    pub d: Vec<f64>,
}

/// Fast stochastic (TA-Lib `STOCHF` with an SMA %D): raw %K over `k_period` bars and its `d_period` SMA. The
/// original's `stoch_k`/`stoch_d` (14, 3) are these (TA-Lib's `STOCH` would smooth %K once more).
pub fn stochastic(high: &[f64], low: &[f64], close: &[f64], k_period: usize, d_period: usize) -> Stochastic {
    let hh = rolling_max(high, k_period);
    let ll = rolling_min(low, k_period);
    let k: Vec<f64> = (0..close.len())
        .map(|i| {
            let range = hh[i] - ll[i];
            if range.is_nan() {
                f64::NAN
            } else if range == 0.0 {
                0.0
            } else {
                100.0 * (close[i] - ll[i]) / range
            }
        })
        .collect();
    let d = on_defined(&k, |k| sma(k, d_period));
    Stochastic { k, d }
}

/// Momentum (TA-Lib `MOM`): `x_t − x_{t−period}`. Lookback `period`.
pub fn momentum(x: &[f64], period: usize) -> Vec<f64> {
    check_period(period);
    (0..x.len()).map(|i| if i < period { f64::NAN } else { x[i] - x[i - period] }).collect()
}

/// Rate of change in percent (TA-Lib `ROC`): `100·(x_t / x_{t−period} − 1)`; 0 when `x_{t−period}` is 0 (TA-Lib).
/// Lookback `period`.
pub fn roc(x: &[f64], period: usize) -> Vec<f64> {
    check_period(period);
    (0..x.len())
        .map(|i| match i.checked_sub(period).map(|j| x[j]) {
            None => f64::NAN,
            Some(0.0) => 0.0,
            Some(prev) => (x[i] / prev - 1.0) * 100.0,
        })
        .collect()
}

/// Typical price `(high + low + close) / 3`.
pub fn typical_price(high: &[f64], low: &[f64], close: &[f64]) -> Vec<f64> {
    (0..close.len()).map(|i| (high[i] + low[i] + close[i]) / 3.0).collect()
}

/// Commodity channel index (TA-Lib `CCI`): `(TP − SMA(TP)) / (0.015 · mean absolute deviation of TP)` over
/// `period` bars, TP the typical price; 0 when the numerator or the deviation is 0 (TA-Lib). Lookback
/// `period − 1`. O(n·period).
pub fn cci(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    check_period(period);
    let tp = typical_price(high, low, close);
    let mean = sma(&tp, period);
    (0..tp.len())
        .map(|i| {
            if i + 1 < period {
                return f64::NAN;
            }
            let m = mean[i];
            let mad = tp[i + 1 - period..=i].iter().map(|v| (v - m).abs()).sum::<f64>() / period as f64;
            let dev = tp[i] - m;
            if dev == 0.0 || mad == 0.0 { 0.0 } else { dev / (0.015 * mad) }
        })
        .collect()
}

/// Windowed standard deviation over `period` bars with `ddof` (0: population, as TA-Lib `STDDEV`; 1: sample, as
/// pandas' default), each window computed in two passes. Lookback `period − 1` (`NaN` too when
/// `period ≤ ddof`). O(n·period).
pub fn stddev(x: &[f64], period: usize, ddof: usize) -> Vec<f64> {
    check_period(period);
    (0..x.len())
        .map(|i| {
            if i + 1 < period || period <= ddof {
                return f64::NAN;
            }
            let w = &x[i + 1 - period..=i];
            let mean = w.iter().sum::<f64>() / period as f64;
            let ss = w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
            (ss / (period - ddof) as f64).sqrt()
        })
        .collect()
}

/// Bollinger bands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bollinger {
    /// `middle + k·σ`.
    pub upper: Vec<f64>,
    /// SMA(`period`).
    pub middle: Vec<f64>,
    /// `middle − k·σ`.
    pub lower: Vec<f64>,
}

/// Bollinger bands (TA-Lib `BBANDS`, SMA middle): `middle ± k·σ` with σ the **population** standard deviation of
/// the last `period` values (TA-Lib; pandas' `rolling().std()`, used by the original, is the sample one).
/// Lookback `period − 1`.
pub fn bollinger(x: &[f64], period: usize, k: f64) -> Bollinger {
    let middle = sma(x, period);
    let sd = stddev(x, period, 0);
    let upper = middle.iter().zip(&sd).map(|(m, s)| m + k * s).collect();
    let lower = middle.iter().zip(&sd).map(|(m, s)| m - k * s).collect();
    Bollinger { upper, middle, lower }
}

/// True range (TA-Lib `TRANGE`): `max(high − low, |high − prev close|, |low − prev close|)`. Lookback 1 (bar 0 has
/// no previous close).
pub fn true_range(high: &[f64], low: &[f64], close: &[f64]) -> Vec<f64> {
    (0..close.len()).map(|i| if i == 0 { f64::NAN } else { tr(high[i], low[i], close[i - 1]) }).collect()
}

/// Wilder's directional movement of a bar from the high's rise `up` and the low's fall `down`: `(+DM, −DM)`,
/// the larger move when positive, the other zero.
pub(crate) fn directional_movement(up: f64, down: f64) -> (f64, f64) {
    if down > 0.0 && up < down {
        (0.0, down)
    } else if up > 0.0 && up > down {
        (up, 0.0)
    } else {
        (0.0, 0.0)
    }
}

fn tr(high: f64, low: f64, prev_close: f64) -> f64 {
    (high - low).max((high - prev_close).abs()).max((low - prev_close).abs())
}

/// Average true range (TA-Lib `ATR`), Wilder smoothing: the first value, at bar `period`, is the mean of the true
/// ranges of bars `1..=period`; then `atr = (atr·(period − 1) + TR) / period`. Lookback `period`.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    check_period(period);
    let trs = true_range(high, low, close);
    let mut out = nans(close.len());
    if close.len() <= period {
        return out;
    }
    let p = period as f64;
    let mut prev = trs[1..=period].iter().sum::<f64>() / p;
    out[period] = prev;
    for i in period + 1..close.len() {
        prev = (prev * (p - 1.0) + trs[i]) / p;
        out[i] = prev;
    }
    out
}

/// Directional movement: +DI, −DI and ADX.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dmi {
    /// +DI, from bar `period`.
    pub plus_di: Vec<f64>,
    /// −DI, from bar `period`.
    pub minus_di: Vec<f64>,
    /// ADX, from bar `2·period − 1`.
    pub adx: Vec<f64>,
}

/// Wilder's directional movement system (TA-Lib `PLUS_DI`, `MINUS_DI`, `ADX`).
///
/// Per bar: `up = high − prev high`, `down = prev low − low`; `+DM = up` if `up > down` and `up > 0`, `−DM = down`
/// if `down > up` and `down > 0`, else 0 (equal moves count for neither). +DM, −DM and TR are Wilder-summed the
/// TA-Lib way: the plain sums of bars `1..period` start the smoothing, then `s = s − s/period + x` from bar
/// `period` on. `±DI = 100·s(±DM)/s(TR)` (0 when `s(TR)` is 0); `DX = 100·|+DI − −DI| / (+DI + −DI)`. ADX at bar
/// `2·period − 1` is the mean of the first `period` DX (an undefined DX, i.e. both DI 0, counts as 0), then
/// `adx = (adx·(period − 1) + DX) / period` (kept unchanged on an undefined DX), as TA-Lib does.
pub fn dmi(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Dmi {
    check_period(period);
    let n = close.len();
    let (mut plus_di, mut minus_di, mut adx) = (nans(n), nans(n), nans(n));
    let p = period as f64;
    let (mut s_plus, mut s_minus, mut s_tr) = (0.0, 0.0, 0.0);
    let mut dx_sum = 0.0;
    let mut prev_adx = f64::NAN;
    for i in 1..n {
        let (pdm, mdm) = directional_movement(high[i] - high[i - 1], low[i - 1] - low[i]);
        let tr = tr(high[i], low[i], close[i - 1]);
        if i < period {
            s_plus += pdm;
            s_minus += mdm;
            s_tr += tr;
            continue;
        }
        s_plus = s_plus - s_plus / p + pdm;
        s_minus = s_minus - s_minus / p + mdm;
        s_tr = s_tr - s_tr / p + tr;
        let (pdi, mdi) = if s_tr == 0.0 { (0.0, 0.0) } else { (100.0 * s_plus / s_tr, 100.0 * s_minus / s_tr) };
        plus_di[i] = pdi;
        minus_di[i] = mdi;
        let dx = (pdi + mdi != 0.0).then(|| 100.0 * (pdi - mdi).abs() / (pdi + mdi));
        if i < 2 * period - 1 {
            dx_sum += dx.unwrap_or(0.0);
        } else if i == 2 * period - 1 {
            dx_sum += dx.unwrap_or(0.0);
            prev_adx = dx_sum / p;
            adx[i] = prev_adx;
        } else {
            if let Some(dx) = dx {
                prev_adx = (prev_adx * (p - 1.0) + dx) / p;
            }
            adx[i] = prev_adx;
        }
    }
    Dmi { plus_di, minus_di, adx }
}

/// On-balance volume (TA-Lib `OBV`): starts at bar 0's volume, then adds the volume on an up close, subtracts it
/// on a down close, keeps it on an unchanged close. Defined from bar 0 — but its level depends on where the
/// series starts (see [`signed_volume`] for a window-invariant form).
pub fn obv(close: &[f64], volume: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(close.len());
    let mut total = 0.0;
    for i in 0..close.len() {
        total += if i == 0 { volume[0] } else { signed_volume_at(close, volume, i) };
        out.push(total);
    }
    out
}

fn signed_volume_at(close: &[f64], volume: &[f64], i: usize) -> f64 {
    match close[i].partial_cmp(&close[i - 1]) {
        Some(std::cmp::Ordering::Greater) => volume[i],
        Some(std::cmp::Ordering::Less) => -volume[i],
        _ => 0.0,
    }
}

/// `sign(close_t − close_{t−1}) · volume_t`, the increment of [`obv`]. Lookback 1. Its rolling sum over w bars is
/// `OBV_t − OBV_{t−w}`, which, unlike OBV, does not depend on where the series starts.
pub fn signed_volume(close: &[f64], volume: &[f64]) -> Vec<f64> {
    (0..close.len()).map(|i| if i == 0 { f64::NAN } else { signed_volume_at(close, volume, i) }).collect()
}

/// Simple return `x_t / x_{t−1} − 1`. Lookback 1.
pub fn pct_change(x: &[f64]) -> Vec<f64> {
    (0..x.len()).map(|i| if i == 0 { f64::NAN } else { x[i] / x[i - 1] - 1.0 }).collect()
}

/// Log return `ln(x_t / x_{t−1})`. Lookback 1.
pub fn log_return(x: &[f64]) -> Vec<f64> {
    (0..x.len()).map(|i| if i == 0 { f64::NAN } else { (x[i] / x[i - 1]).ln() }).collect()
}

/// Applies `f` to an indicator output whose leading `NaN`s are its warm-up (re-aligned). Public so feature code can
/// chain indicators, e.g. a rolling standard deviation of returns.
pub fn chain(x: &[f64], f: impl FnOnce(&[f64]) -> Vec<f64>) -> Vec<f64> {
    on_defined(x, f)
}

/// Williams %R (TA-Lib `WILLR`): `−100 · (HH − close) / (HH − LL)` over the last `period` bars, in `[−100, 0]`;
/// 0 when `HH = LL` (TA-Lib). Lookback `period − 1`.
///
/// # Panics
/// If `period` is 0, or the slices differ in length.
pub fn williams_r(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    assert!(period >= 1, "indicator period must be at least 1");
    assert!(high.len() == close.len() && low.len() == close.len(), "high, low and close must have the same length");
    let hh = rolling_max(high, period);
    let ll = rolling_min(low, period);
    (0..close.len())
        .map(|i| {
            let range = hh[i] - ll[i];
            if range.is_nan() {
                f64::NAN
            } else if range == 0.0 {
                0.0
            } else {
                -100.0 * (hh[i] - close[i]) / range
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-9;

    /// Asserts equal lengths, `NaN` exactly where `expected` is `NaN`, and values within `EPS`.
    #[track_caller]
    fn close_to(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "length: {actual:?} vs {expected:?}");
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            if e.is_nan() {
                assert!(a.is_nan(), "bar {i}: expected NaN, got {a} ({actual:?})");
            } else {
                assert!((a - e).abs() <= EPS * e.abs().max(1.0), "bar {i}: expected {e}, got {a} ({actual:?})");
            }
        }
    }

    const N: f64 = f64::NAN;

    #[test]
    fn sma_and_rolling_sum() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        // Sums of 3: 1+2+3 = 6, 2+3+4 = 9, 3+4+5 = 12; means 2, 3, 4.
        close_to(&rolling_sum(&x, 3), &[N, N, 6.0, 9.0, 12.0]);
        close_to(&sma(&x, 3), &[N, N, 2.0, 3.0, 4.0]);
        close_to(&sma(&x, 1), &x);
        close_to(&sma(&x, 6), &[N; 5]);
        close_to(&sma(&[], 3), &[]);
    }

    #[test]
    fn ema_is_sma_seeded() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0];
        // period 3: k = 2/4 = 0.5; seed at bar 2 = (1+2+3)/3 = 2;
        // bar 3: 2 + 0.5·(4 − 2) = 3; bar 4: 3 + 0.5·(5 − 3) = 4; bar 5: 4 + 0.5·(10 − 4) = 7.
        close_to(&ema(&x, 3), &[N, N, 2.0, 3.0, 4.0, 7.0]);
        // period 1: k = 1, the EMA is the input.
        close_to(&ema(&x, 1), &x);
        close_to(&ema(&x[..2], 3), &[N, N]);
    }

    #[test]
    fn macd_seeds_the_fast_ema_at_the_slow_ones_first_bar() {
        let x = [1.0, 2.0, 4.0, 8.0, 6.0, 7.0];
        // fast 2 (k = 2/3), slow 3 (k = 1/2), signal 2 (k = 2/3).
        // Both EMAs start at bar 2: fast seed = (2+4)/2 = 3 (bars 1..=2, TA-Lib), slow seed = (1+2+4)/3 = 7/3.
        // bar 3: fast = 3 + 2/3·(8 − 3) = 19/3; slow = 7/3 + 1/2·(8 − 7/3) = 31/6.
        // bar 4: fast = 19/3 + 2/3·(6 − 19/3) = 55/9; slow = 31/6 + 1/2·(6 − 31/6) = 67/12.
        // bar 5: fast = 55/9 + 2/3·(7 − 55/9) = 181/27; slow = 67/12 + 1/2·(7 − 67/12) = 151/24.
        // line: bar 2: 3 − 7/3 = 2/3; bar 3: 19/3 − 31/6 = 7/6; bar 4: 55/9 − 67/12 = 19/36;
        //       bar 5: 181/27 − 151/24 = 89/216.
        // signal seed at bar 3 = (2/3 + 7/6)/2 = 11/12; bar 4: 11/12 + 2/3·(19/36 − 11/12) = 71/108;
        // bar 5: 71/108 + 2/3·(89/216 − 71/108) = 71/108 − 53/324 = 160/324 = 40/81.
        let m = macd(&x, 2, 3, 2);
        close_to(&m.line, &[N, N, 2.0 / 3.0, 7.0 / 6.0, 19.0 / 36.0, 89.0 / 216.0]);
        close_to(&m.signal, &[N, N, N, 11.0 / 12.0, 71.0 / 108.0, 40.0 / 81.0]);
        close_to(&m.hist, &[N, N, N, 7.0 / 6.0 - 11.0 / 12.0, 19.0 / 36.0 - 71.0 / 108.0, 89.0 / 216.0 - 40.0 / 81.0]);
        // Swapped periods give the same result.
        assert_eq!(format!("{:?}", macd(&x, 3, 2, 2)), format!("{m:?}"));
    }

    #[test]
    fn rsi_wilder() {
        let x = [10.0, 11.0, 10.5, 11.5, 11.0, 12.0];
        // changes: +1, −0.5, +1, −0.5, +1. period 3:
        // bar 3: gain = (1 + 1)/3 = 2/3, loss = 0.5/3 = 1/6 → RSI = 100·(2/3)/(5/6) = 80.
        // bar 4 (−0.5): gain = (2/3·2 + 0)/3 = 4/9, loss = (1/6·2 + 0.5)/3 = 5/18 → 100·(8/18)/(13/18) = 800/13.
        // bar 5 (+1): gain = (4/9·2 + 1)/3 = 17/27, loss = (5/18·2)/3 = 5/27 → 100·17/22 = 1700/22.
        close_to(&rsi(&x, 3), &[N, N, N, 80.0, 800.0 / 13.0, 1700.0 / 22.0]);
        // Flat window: TA-Lib answers 0.
        close_to(&rsi(&[1.0, 1.0, 1.0], 2), &[N, N, 0.0]);
        // Only gains: 100.
        close_to(&rsi(&[1.0, 2.0, 3.0, 4.0], 2), &[N, N, 100.0, 100.0]);
        close_to(&rsi(&[1.0, 2.0], 2), &[N, N]);
    }

    #[test]
    fn rolling_extremes() {
        let x = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        close_to(&rolling_max(&x, 3), &[N, N, 4.0, 4.0, 5.0, 9.0, 9.0, 9.0]);
        close_to(&rolling_min(&x, 3), &[N, N, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0]);
        close_to(&rolling_max(&x, 1), &x);
    }

    #[test]
    fn stochastic_fast() {
        let high = [10.0, 12.0, 11.0, 13.0, 12.0];
        let low = [8.0, 9.0, 9.0, 10.0, 11.0];
        let close = [9.0, 11.0, 10.0, 12.0, 11.5];
        // k 3: bar 2: HH 12, LL 8 → 100·(10 − 8)/4 = 50; bar 3: HH 13, LL 9 → 100·3/4 = 75;
        // bar 4: HH 13, LL 9 → 100·2.5/4 = 62.5. d 2: (50 + 75)/2 = 62.5, (75 + 62.5)/2 = 68.75.
        let s = stochastic(&high, &low, &close, 3, 2);
        close_to(&s.k, &[N, N, 50.0, 75.0, 62.5]);
        close_to(&s.d, &[N, N, N, 62.5, 68.75]);
        // HH = LL: 0 (TA-Lib).
        close_to(&stochastic(&[1.0; 2], &[1.0; 2], &[1.0; 2], 2, 1).k, &[N, 0.0]);
    }

    #[test]
    fn momentum_and_roc() {
        let x = [100.0, 102.0, 99.0, 110.0];
        // period 2: 99 − 100 = −1, 110 − 102 = 8; ROC: 100·(99/100 − 1) = −1, 100·(110/102 − 1) = 7.843…
        close_to(&momentum(&x, 2), &[N, N, -1.0, 8.0]);
        close_to(&roc(&x, 2), &[N, N, -1.0, 100.0 * (110.0 / 102.0 - 1.0)]);
        close_to(&pct_change(&x), &[N, 0.02, 99.0 / 102.0 - 1.0, 110.0 / 99.0 - 1.0]);
        close_to(&log_return(&x), &[N, 1.02f64.ln(), (99.0f64 / 102.0).ln(), (110.0f64 / 99.0).ln()]);
    }

    #[test]
    fn cci_mean_deviation() {
        // TP = (H + L + C)/3 = 2, 4, 6, 5 (H = L = C).
        let x = [2.0, 4.0, 6.0, 5.0];
        // period 3: bar 2: mean 4, MAD (2 + 0 + 2)/3 = 4/3, CCI = (6 − 4)/(0.015·4/3) = 2/0.02 = 100.
        // bar 3: mean 5, MAD (1 + 1 + 0)/3 = 2/3, TP − mean = 0 → 0.
        close_to(&cci(&x, &x, &x, 3), &[N, N, 100.0, 0.0]);
        // Different H/L/C: TP = (3 + 1 + 2)/3 = 2, (6 + 3 + 3)/3 = 4 … same series → same CCI.
        close_to(&typical_price(&[3.0, 6.0], &[1.0, 3.0], &[2.0, 3.0]), &[2.0, 4.0]);
        close_to(&cci(&[1.0; 3], &[1.0; 3], &[1.0; 3], 2), &[N, 0.0, 0.0]);
    }

    #[test]
    fn bollinger_population_std() {
        let x = [1.0, 2.0, 3.0, 4.0];
        // period 2: windows (1,2), (2,3), (3,4): mean m, population σ = 0.5 → m ± 2·0.5.
        let b = bollinger(&x, 2, 2.0);
        close_to(&b.middle, &[N, 1.5, 2.5, 3.5]);
        close_to(&b.upper, &[N, 2.5, 3.5, 4.5]);
        close_to(&b.lower, &[N, 0.5, 1.5, 2.5]);
        // period 3 over (1,2,3): Σ(x − 2)² = 2 → population σ = √(2/3), sample σ = 1.
        close_to(&stddev(&x, 3, 0), &[N, N, (2.0f64 / 3.0).sqrt(), (2.0f64 / 3.0).sqrt()]);
        close_to(&stddev(&x, 3, 1), &[N, N, 1.0, 1.0]);
        close_to(&stddev(&x, 1, 1), &[N; 4]);
    }

    #[test]
    fn true_range_and_wilder_atr() {
        let high = [10.0, 11.0, 12.0, 11.5, 13.0];
        let low = [9.0, 10.0, 10.5, 9.0, 12.0];
        let close = [9.5, 10.8, 11.0, 9.5, 12.5];
        // TR: bar 1: max(1, |11 − 9.5|, |10 − 9.5|) = 1.5; bar 2: max(1.5, 1.2, 0.3) = 1.5;
        // bar 3: max(2.5, 0.5, 2) = 2.5; bar 4: max(1, 3.5, 2.5) = 3.5.
        close_to(&true_range(&high, &low, &close), &[N, 1.5, 1.5, 2.5, 3.5]);
        // ATR 2: bar 2 = (1.5 + 1.5)/2 = 1.5; bar 3 = (1.5·1 + 2.5)/2 = 2; bar 4 = (2 + 3.5)/2 = 2.75.
        close_to(&atr(&high, &low, &close, 2), &[N, N, 1.5, 2.0, 2.75]);
        close_to(&atr(&high[..2], &low[..2], &close[..2], 2), &[N, N]);
    }

    #[test]
    fn dmi_wilder() {
        let high = [10.0, 11.0, 10.8, 12.0, 11.0, 11.5];
        let low = [9.0, 9.5, 9.0, 10.0, 9.2, 10.0];
        let close = [9.5, 10.5, 9.5, 11.5, 9.5, 11.0];
        // bar 1: up 1, down −0.5 → +DM 1;      TR max(1.5, 1.5, 0) = 1.5
        // bar 2: up −0.2, down 0.5 → −DM 0.5;  TR max(1.8, 0.3, 1.5) = 1.8
        // bar 3: up 1.2, down −1 → +DM 1.2;    TR max(2, 2.5, 0.5) = 2.5
        // bar 4: up −1, down 0.8 → −DM 0.8;    TR max(1.8, 0.5, 2.3) = 2.3
        // bar 5: up 0.5, down −0.8 → +DM 0.5;  TR max(1.5, 2, 0.5) = 2
        // period 2: start sums with bar 1 only: s+ = 1, s− = 0, sTR = 1.5.
        // bar 2: s+ = 1 − 0.5 + 0 = 0.5; s− = 0 + 0.5 = 0.5; sTR = 1.5 − 0.75 + 1.8 = 2.55
        //        +DI = −DI = 50/2.55 = 19.6078…, DX = 0.
        // bar 3: s+ = 0.25 + 1.2 = 1.45; s− = 0.25; sTR = 1.275 + 2.5 = 3.775
        //        +DI = 145/3.775, −DI = 25/3.775, DX = 100·120/170 = 70.588…; ADX = (0 + DX)/2 = 35.294…
        // bar 4: s+ = 0.725; s− = 0.125 + 0.8 = 0.925; sTR = 1.8875 + 2.3 = 4.1875
        //        DX = 100·0.2/1.65 = 12.1212…; ADX = (35.294… + 12.1212…)/2.
        // bar 5: s+ = 0.3625 + 0.5 = 0.8625; s− = 0.4625; sTR = 2.09375 + 2 = 4.09375
        //        DX = 100·0.4/1.325 = 30.188…; ADX = (ADX₄ + DX)/2.
        let d = dmi(&high, &low, &close, 2);
        let dx3 = 100.0 * 1.2 / 1.7;
        let adx4 = (dx3 / 2.0 + 100.0 * 0.2 / 1.65) / 2.0;
        close_to(&d.plus_di, &[N, N, 50.0 / 2.55, 145.0 / 3.775, 72.5 / 4.1875, 86.25 / 4.09375]);
        close_to(&d.minus_di, &[N, N, 50.0 / 2.55, 25.0 / 3.775, 92.5 / 4.1875, 46.25 / 4.09375]);
        close_to(&d.adx, &[N, N, N, dx3 / 2.0, adx4, (adx4 + 100.0 * 0.4 / 1.325) / 2.0]);
        // Flat bars: TR 0 → both DI 0, DX undefined → counts 0 in the seed, ADX stays.
        let flat = dmi(&[1.0; 5], &[1.0; 5], &[1.0; 5], 2);
        close_to(&flat.plus_di, &[N, N, 0.0, 0.0, 0.0]);
        close_to(&flat.adx, &[N, N, N, 0.0, 0.0]);
    }

    #[test]
    fn obv_and_signed_volume() {
        let close = [1.0, 2.0, 2.0, 1.5, 3.0];
        let volume = [10.0, 20.0, 30.0, 40.0, 50.0];
        // 10; +20 = 30; unchanged 30; −40 = −10; +50 = 40.
        close_to(&obv(&close, &volume), &[10.0, 30.0, 30.0, -10.0, 40.0]);
        close_to(&signed_volume(&close, &volume), &[N, 20.0, 0.0, -40.0, 50.0]);
        // Rolling 2 of the increments = OBV_t − OBV_{t−2}: (20 + 0), (0 − 40), (−40 + 50).
        close_to(&chain(&signed_volume(&close, &volume), |v| rolling_sum(v, 2)), &[N, N, 20.0, -40.0, 10.0]);
    }
}

#[cfg(test)]
mod williams_r_tests {
    use super::*;

    const N: f64 = f64::NAN;

    #[track_caller]
    fn close_to(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            if e.is_nan() {
                assert!(a.is_nan(), "bar {i}: expected NaN, got {a}");
            } else {
                assert!((a - e).abs() < 1e-12, "bar {i}: expected {e}, got {a}");
            }
        }
    }

    #[test]
    fn williams_r_by_hand() {
        let high = [10.0, 12.0, 11.0, 13.0, 12.0];
        let low = [8.0, 9.0, 9.0, 10.0, 11.0];
        let close = [9.0, 11.0, 10.0, 12.0, 11.5];
        // period 3: bar 2: HH 12, LL 8 → −100·(12 − 10)/4 = −50; bar 3: HH 13, LL 9 → −100·1/4 = −25;
        // bar 4: HH 13, LL 9 → −100·1.5/4 = −37.5. (%R = %K − 100 for the same window.)
        close_to(&williams_r(&high, &low, &close, 3), &[N, N, -50.0, -25.0, -37.5]);
        // Close at the high → 0, at the low → −100; flat window → 0 (TA-Lib).
        close_to(&williams_r(&[2.0, 3.0], &[1.0, 1.0], &[2.0, 3.0], 2), &[N, 0.0]);
        close_to(&williams_r(&[2.0, 3.0], &[1.0, 1.0], &[2.0, 1.0], 2), &[N, -100.0]);
        close_to(&williams_r(&[1.0; 3], &[1.0; 3], &[1.0; 3], 2), &[N, 0.0, 0.0]);
        close_to(&williams_r(&high, &low, &close, 1), &[-50.0, -100.0 / 3.0, -50.0, -100.0 / 3.0, -50.0]);
    }

    #[test]
    fn williams_r_is_causal() {
        let high = [10.0, 12.0, 11.0, 13.0, 12.0, 14.0];
        let low = [8.0, 9.0, 9.0, 10.0, 11.0, 12.0];
        let close = [9.0, 11.0, 10.0, 12.0, 11.5, 13.0];
        let full = williams_r(&high, &low, &close, 3);
        for n in 1..=close.len() {
            let prefix = williams_r(&high[..n], &low[..n], &close[..n], 3);
            assert_eq!(format!("{prefix:?}"), format!("{:?}", &full[..n]));
        }
    }
}
