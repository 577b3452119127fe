//! The feature computation as a stream ([`FeatureState`]): the same floating-point operations in the same order
//! as [`compute`](super::compute), so the row is bit-identical to the matrix's row for the same bars.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::{N_FEATURES, RING};
use crate::candles::Candle;

/// Running sum over the last `period` values, updated exactly as `indicators::rolling_sum` (add the new value,
/// then subtract the one leaving the window), so the sums are bit-identical.
#[derive(Debug, Clone, Copy, Default)]
struct RollingSum {
    total: f64,
    seen: usize,
}

impl RollingSum {
    /// Adds `v`; `leaving` is the value `period` steps back, when there is one.
    fn push(&mut self, v: f64, leaving: Option<f64>) {
        self.total += v;
        if let Some(old) = leaving {
            self.total -= old;
        }
        self.seen += 1;
    }

    /// Mean over `period`, `NaN` before the window is full.
    fn mean(&self, period: usize) -> f64 {
        if self.seen >= period { self.total / period as f64 } else { f64::NAN }
    }

    fn sum(&self, period: usize) -> f64 {
        if self.seen >= period { self.total } else { f64::NAN }
    }
}

/// SMA-seeded EMA, updated exactly as `indicators::ema`: the seed is the sequential sum of the first `period`
/// values divided by `period`, then `prev += (x − prev)·k`.
#[derive(Debug, Clone, Copy)]
struct Ema {
    period: usize,
    k: f64,
    seed_sum: f64,
    seen: usize,
    value: f64,
}

impl Ema {
    fn new(period: usize) -> Self {
        Ema { period, k: 2.0 / (period as f64 + 1.0), seed_sum: -0.0, seen: 0, value: f64::NAN }
    }

    fn push(&mut self, x: f64) {
        self.seen += 1;
        if self.seen < self.period {
            self.seed_sum += x;
        } else if self.seen == self.period {
            self.seed_sum += x;
            self.value = self.seed_sum / self.period as f64;
        } else {
            self.value += (x - self.value) * self.k;
        }
    }
}

/// The three Wilder RSIs of the set (periods [`RSI_PERIODS`]), updated exactly as `indicators::rsi`. Once every
/// seed is taken (bar 21) the three recurrences run side by side on arrays, which the compiler vectorises (lane 3
/// is padding); the RSI value itself is only computed when a row is read.
#[derive(Debug, Clone, Copy)]
struct Rsis {
    changes: usize,
    p: [f64; 4],
    pm1: [f64; 4],
    gain: [f64; 4],
    loss: [f64; 4],
}

impl Rsis {
    fn new() -> Self {
        let p = [RSI_PERIODS[0] as f64, RSI_PERIODS[1] as f64, RSI_PERIODS[2] as f64, RSI_PERIODS[0] as f64];
        Rsis { changes: 0, p, pm1: p.map(|p| p - 1.0), gain: [0.0; 4], loss: [0.0; 4] }
    }

    fn push(&mut self, d: f64) {
        self.changes += 1;
        if self.changes > RSI_SEEDED {
            // `(x·(p − 1) + gain_or_0) / p`: adding 0.0 to a non-negative product and subtracting d as adding −d
            // are exact, so this equals the branchy scalar update bit for bit.
            let (up, down) = if d < 0.0 { (0.0, -d) } else { (d, 0.0) };
            for j in 0..4 {
                self.gain[j] = (self.gain[j] * self.pm1[j] + up) / self.p[j];
                self.loss[j] = (self.loss[j] * self.pm1[j] + down) / self.p[j];
            }
            return;
        }
        for (j, &period) in RSI_PERIODS.iter().enumerate() {
            let (p, gain, loss) = (self.p[j], &mut self.gain[j], &mut self.loss[j]);
            if self.changes > period {
                *gain *= p - 1.0;
                *loss *= p - 1.0;
            }
            if d < 0.0 {
                *loss -= d
            } else {
                *gain += d
            }
            if self.changes >= period {
                *gain /= p;
                *loss /= p;
            }
        }
    }

    /// RSI of lane `j`, `NaN` before its first value.
    fn value(&self, j: usize) -> f64 {
        if self.changes < RSI_PERIODS[j] {
            return f64::NAN;
        }
        let (g, l) = (self.gain[j], self.loss[j]);
        if g + l == 0.0 { 0.0 } else { 100.0 * g / (g + l) }
    }
}

/// Wilder ATR, updated exactly as `indicators::atr`.
#[derive(Debug, Clone, Copy)]
struct Atr {
    period: usize,
    seen: usize,
    sum: f64,
    value: f64,
}

impl Atr {
    fn push(&mut self, tr: f64) {
        let p = self.period as f64;
        self.seen += 1;
        if self.seen < self.period {
            self.sum += tr;
        } else if self.seen == self.period {
            self.sum += tr;
            self.value = self.sum / p;
        } else {
            self.value = (self.value * (p - 1.0) + tr) / p;
        }
    }
}

/// Wilder's directional movement, updated exactly as `indicators::dmi`.
#[derive(Debug, Clone, Copy)]
struct Dmi {
    period: usize,
    s_plus: f64,
    s_minus: f64,
    s_tr: f64,
    dx_sum: f64,
    adx: f64,
    plus_di: f64,
    minus_di: f64,
}

impl Dmi {
    fn new(period: usize) -> Self {
        Dmi {
            period,
            s_plus: 0.0,
            s_minus: 0.0,
            s_tr: 0.0,
            dx_sum: 0.0,
            adx: f64::NAN,
            plus_di: f64::NAN,
            minus_di: f64::NAN,
        }
    }

    /// Bar `i ≥ 1` with its predecessor.
    fn push(&mut self, i: usize, prev: &Candle, c: &Candle) {
        let period = self.period;
        let p = period as f64;
        let (pdm, mdm) = crate::indicators::directional_movement(c.high - prev.high, prev.low - c.low);
        let tr = true_range(prev, c);
        if i < period {
            self.s_plus += pdm;
            self.s_minus += mdm;
            self.s_tr += tr;
            return;
        }
        self.s_plus = self.s_plus - self.s_plus / p + pdm;
        self.s_minus = self.s_minus - self.s_minus / p + mdm;
        self.s_tr = self.s_tr - self.s_tr / p + tr;
        let (pdi, mdi) = if self.s_tr == 0.0 {
            (0.0, 0.0)
        } else {
            (100.0 * self.s_plus / self.s_tr, 100.0 * self.s_minus / self.s_tr)
        };
        self.plus_di = pdi;
        self.minus_di = mdi;
        let dx = (pdi + mdi != 0.0).then(|| 100.0 * (pdi - mdi).abs() / (pdi + mdi));
        if i < 2 * period - 1 {
            self.dx_sum += dx.unwrap_or(0.0);
        } else if i == 2 * period - 1 {
            self.dx_sum += dx.unwrap_or(0.0);
            self.adx = self.dx_sum / p;
        } else if let Some(dx) = dx {
            self.adx = (self.adx * (p - 1.0) + dx) / p;
        }
    }
}

fn true_range(prev: &Candle, c: &Candle) -> f64 {
    (c.high - c.low).max((c.high - prev.close).abs()).max((c.low - prev.close).abs())
}

/// Ring capacity: a power of two above [`RING`], so positions are masks rather than divisions.
const CAP: usize = 256;

/// Fixed-capacity ring of the last bars (at least [`RING`]) and their typical prices.
#[derive(Debug, Clone)]
struct Ring {
    bars: Box<[Candle; CAP]>,
    typical: Box<[f64; CAP]>,
    /// Bars pushed so far (all time).
    count: usize,
}

impl Ring {
    fn push(&mut self, c: Candle, typical: f64) {
        self.bars[self.count & (CAP - 1)] = c;
        self.typical[self.count & (CAP - 1)] = typical;
        self.count += 1;
    }

    /// The bar `back` steps before the newest (0 = newest), if still held.
    fn back(&self, back: usize) -> Option<&Candle> {
        (back < self.count && back < RING).then(|| self.at(back))
    }

    /// The bar `back` steps before the newest; the caller has checked that it exists (`back < count`, `< RING`).
    fn at(&self, back: usize) -> &Candle {
        &self.bars[(self.count - 1 - back) & (CAP - 1)]
    }

    /// The typical price of the bar `back` steps before the newest (same contract as [`at`](Self::at)).
    fn typical_at(&self, back: usize) -> f64 {
        self.typical[(self.count - 1 - back) & (CAP - 1)]
    }
}

/// The feature computation as a stream (see the module docs): [`push`](Self::push) bars oldest first, read
/// [`row`](Self::row). The row after pushing bars `0..=t` equals row `t` of [`compute`] over any series starting
/// with those bars, bit for bit. Bars are not validated here: feed bars of a valid [`CandleSeries`].
#[derive(Debug, Clone)]
pub struct FeatureState {
    ring: Ring,
    sma_close: [RollingSum; 6],
    ema_close: [Ema; 6],
    macd_fast: Ema,
    macd_slow: Ema,
    macd_signal: Ema,
    dmi: Dmi,
    rsi: Rsis,
    /// %K of the last three bars (newest last) and their running sum (%D).
    stoch_k: [f64; 3],
    stoch_d: RollingSum,
    tp_sum: RollingSum,
    atr: Atr,
    volume_sum: RollingSum,
    signed_volume_sum: RollingSum,
    /// Signed volumes of the last 20 bars (ring), for the value leaving the window.
    signed_volume: [f64; 20],
}

const MA_PERIODS: [usize; 6] = [5, 10, 20, 50, 100, 200];
const RSI_PERIODS: [usize; 3] = [14, 7, 21];
/// Changes after which every RSI has its seed.
const RSI_SEEDED: usize = 21;

impl Default for FeatureState {
    fn default() -> Self {
        Self::new()
    }
}

impl FeatureState {
    /// An empty state.
    pub fn new() -> Self {
        let blank =
            Candle { time: DateTime::<Utc>::UNIX_EPOCH, open: 0.0, high: 0.0, low: 0.0, close: 0.0, volume: 0.0 };
        FeatureState {
            ring: Ring { bars: Box::new([blank; CAP]), typical: Box::new([0.0; CAP]), count: 0 },
            sma_close: [RollingSum::default(); 6],
            ema_close: MA_PERIODS.map(Ema::new),
            macd_fast: Ema::new(12),
            macd_slow: Ema::new(26),
            macd_signal: Ema::new(9),
            dmi: Dmi::new(14),
            rsi: Rsis::new(),
            stoch_k: [f64::NAN; 3],
            stoch_d: RollingSum::default(),
            tp_sum: RollingSum::default(),
            atr: Atr { period: 14, seen: 0, sum: 0.0, value: f64::NAN },
            volume_sum: RollingSum::default(),
            signed_volume_sum: RollingSum::default(),
            signed_volume: [0.0; 20],
        }
    }

    /// Bars pushed so far.
    pub fn len(&self) -> usize {
        self.ring.count
    }

    /// True before the first bar.
    pub fn is_empty(&self) -> bool {
        self.ring.count == 0
    }

    /// The newest bar.
    pub fn last_candle(&self) -> Option<&Candle> {
        self.ring.back(0)
    }

    /// Adds the next bar. O(1) apart from the 14-bar window of the stochastic.
    pub fn push(&mut self, c: &Candle) {
        let i = self.ring.count;
        // The value `p` bars back (the one leaving a window of `p` after this push), read before overwriting.
        // The value `p` bars back (the one leaving a window of `p` after this push), read before overwriting.
        for (sum, &p) in self.sma_close.iter_mut().zip(&MA_PERIODS) {
            let old = (i >= p).then(|| self.ring.at(p - 1).close);
            sum.push(c.close, old);
        }
        let tp = typical(c);
        let old_tp = (i >= 20).then(|| self.ring.typical_at(19));
        self.tp_sum.push(tp, old_tp);
        let old_volume = (i >= 20).then(|| self.ring.at(19).volume);
        self.volume_sum.push(c.volume, old_volume);
        let prev = (i > 0).then(|| *self.ring.at(0));
        self.ring.push(*c, tp);

        for ema in &mut self.ema_close {
            ema.push(c.close);
        }
        // MACD: both EMAs start at bar 25 (slow − 1); the fast one is seeded with the 12 closes ending there.
        self.macd_slow.push(c.close);
        if i >= 14 {
            self.macd_fast.push(c.close);
        }
        if i >= 25 {
            self.macd_signal.push(self.macd_fast.value - self.macd_slow.value);
        }

        if let Some(prev) = prev {
            self.dmi.push(i, &prev, c);
            let d = c.close - prev.close;
            self.rsi.push(d);
            self.atr.push(true_range(&prev, c));
            let sv = match c.close.partial_cmp(&prev.close) {
                Some(std::cmp::Ordering::Greater) => c.volume,
                Some(std::cmp::Ordering::Less) => -c.volume,
                _ => 0.0,
            };
            // Signed volume exists from bar 1; its 20-sum is over signed volumes 1..: index j = i − 1.
            let j = i - 1;
            let old = (j >= 20).then(|| self.signed_volume[j % 20]);
            self.signed_volume_sum.push(sv, old);
            self.signed_volume[j % 20] = sv;
        }

        // Fast %K (14) and its 3-SMA, which starts with the first defined %K (bar 13).
        if i >= 13 {
            let (mut hh, mut ll) = (f64::NEG_INFINITY, f64::INFINITY);
            for b in 0..14 {
                let bar = self.ring.at(b);
                hh = hh.max(bar.high);
                ll = ll.min(bar.low);
            }
            let range = hh - ll;
            let k = if range == 0.0 { 0.0 } else { 100.0 * (c.close - ll) / range };
            let old = (i >= 16).then(|| self.stoch_k[0]);
            self.stoch_d.push(k, old);
            self.stoch_k = [self.stoch_k[1], self.stoch_k[2], k];
        }
    }

    /// The feature row of the newest bar (columns of [`NAMES`]); `None` before the first bar. Cells still in
    /// their warm-up are `NaN`, as in [`compute`].
    pub fn row(&self) -> Option<[f64; N_FEATURES]> {
        let c = *self.ring.back(0)?;
        let i = self.ring.count - 1;
        let n = |ok: bool, v: f64| if ok { v } else { f64::NAN };
        let flag = |v: f64, pred: bool| if v.is_nan() { f64::NAN } else { f64::from(u8::from(pred)) };
        let flag2 =
            |a: f64, b: f64, pred: bool| if a.is_nan() || b.is_nan() { f64::NAN } else { f64::from(u8::from(pred)) };
        let f = |b: bool| f64::from(u8::from(b));
        let close_back = |k: usize| self.ring.back(k).map_or(f64::NAN, |b| b.close);

        let sma: [f64; 6] = std::array::from_fn(|j| self.sma_close[j].mean(MA_PERIODS[j]));
        let ema: [f64; 6] = std::array::from_fn(|j| self.ema_close[j].value);
        let (sma_10, sma_20, sma_50) = (sma[1], sma[2], sma[3]);
        let (ema_10, ema_20) = (ema[1], ema[2]);

        let macd = n(i >= 25, self.macd_fast.value - self.macd_slow.value);
        let macd_signal = n(i >= 33, self.macd_signal.value);
        let macd_hist = macd - macd_signal;

        let rsi_14 = self.rsi.value(0);
        let stoch_k = n(i >= 13, self.stoch_k[2]);
        let stoch_d = n(i >= 15, self.stoch_d.mean(3));

        let momentum_10 = c.close - close_back(10);
        let roc = |p: usize| match self.ring.back(p).map(|b| b.close) {
            None => f64::NAN,
            Some(0.0) => 0.0,
            Some(prev) => (c.close / prev - 1.0) * 100.0,
        };

        // CCI(20) with the mean absolute deviation over the window, oldest first (as `indicators::cci`).
        let cci = if i >= 19 {
            let m = self.tp_sum.mean(20);
            let mad = (0..20).rev().map(|b| (self.ring.typical_at(b) - m).abs()).sum::<f64>() / 20.0;
            let dev = typical(&c) - m;
            if dev == 0.0 || mad == 0.0 { 0.0 } else { dev / (0.015 * mad) }
        } else {
            f64::NAN
        };

        // Bollinger(20, 2): SMA middle, population σ computed in two passes over the window.
        let sd = if i >= 19 { window_std((0..20).rev().map(|b| self.ring.at(b).close), 20, 0) } else { f64::NAN };
        let (bb_upper, bb_lower) = (sma_20 + 2.0 * sd, sma_20 - 2.0 * sd);
        let bb_width = (bb_upper - bb_lower) / sma_20 * 100.0;
        let bb_range = bb_upper - bb_lower;
        let bb_percent = if bb_range == 0.0 { 0.5 } else { (c.close - bb_lower) / bb_range };

        let atr = self.atr.value;
        let volume_sma_20 = self.volume_sum.mean(20);
        let volume_ratio = if volume_sma_20 == 0.0 { 1.0 } else { c.volume / volume_sma_20 };
        let obv_delta_20 = n(i >= 20, self.signed_volume_sum.sum(20));

        let returns = close_back(0) / close_back(1) - 1.0;
        let log_returns = (close_back(0) / close_back(1)).ln();
        let volatility_20 = if i >= 20 {
            let r = (0..20).rev().map(|b| self.ring.at(b).close / self.ring.at(b + 1).close - 1.0);
            window_std(r, 20, 1) * 252f64.sqrt()
        } else {
            f64::NAN
        };

        let body = (c.close - c.open).abs();
        let range = c.high - c.low;
        let upper_wick = c.high - c.open.max(c.close);
        let lower_wick = c.open.min(c.close) - c.low;
        let (bull, bear) = (c.close > c.open, c.close < c.open);
        let engulfing = |bullish: bool| match self.ring.back(1) {
            None => f64::NAN,
            Some(p) => {
                let prev_body = (p.close - p.open).abs();
                let pattern = if bullish { p.close < p.open && bull } else { p.close > p.open && bear };
                f(pattern && body > prev_body)
            }
        };
        let hour = c.time.hour();

        Some([
            sma[0],
            ema[0],
            sma_10,
            ema_10,
            sma_20,
            ema_20,
            sma_50,
            ema[3],
            sma[4],
            ema[4],
            sma[5],
            ema[5],
            flag2(sma_10, sma_20, sma_10 > sma_20),
            flag2(sma_20, sma_50, sma_20 > sma_50),
            flag2(ema_10, ema_20, ema_10 > ema_20),
            (c.close - sma_20) / sma_20 * 100.0,
            (c.close - sma_50) / sma_50 * 100.0,
            macd,
            macd_signal,
            macd_hist,
            flag2(macd, macd_signal, macd > macd_signal),
            flag(macd_hist, macd_hist > 0.0),
            self.dmi.plus_di,
            self.dmi.minus_di,
            self.dmi.adx,
            flag(self.dmi.adx, self.dmi.adx > 25.0),
            rsi_14,
            self.rsi.value(1),
            self.rsi.value(2),
            flag(rsi_14, rsi_14 < 30.0),
            flag(rsi_14, rsi_14 > 70.0),
            stoch_k,
            stoch_d,
            flag(stoch_k, stoch_k < 20.0),
            flag(stoch_k, stoch_k > 80.0),
            momentum_10,
            roc(10),
            roc(20),
            cci,
            cci,
            flag(cci, cci > 100.0),
            flag(cci, cci < -100.0),
            bb_upper,
            sma_20,
            bb_lower,
            bb_width,
            bb_percent,
            atr,
            atr / c.close * 100.0,
            volume_sma_20,
            volume_ratio,
            obv_delta_20,
            returns,
            log_returns,
            range,
            body,
            upper_wick,
            lower_wick,
            volatility_20,
            f(body < 0.1 * range),
            f(lower_wick > 2.0 * body && upper_wick < 0.5 * body && bull),
            f(upper_wick > 2.0 * body && lower_wick < 0.5 * body && bear),
            engulfing(true),
            engulfing(false),
            f64::from(hour),
            f64::from(c.time.weekday().num_days_from_monday()),
            f(hour <= 7),
            f((8..=15).contains(&hour)),
            f((13..=21).contains(&hour)),
        ])
    }
}

fn typical(c: &Candle) -> f64 {
    (c.high + c.low + c.close) / 3.0
}

/// Two-pass standard deviation of a window (oldest first), as `indicators::stddev`.
fn window_std(values: impl Iterator<Item = f64> + Clone, period: usize, ddof: usize) -> f64 {
    let mean = values.clone().sum::<f64>() / period as f64;
    let ss = values.map(|v| (v - mean) * (v - mean)).sum::<f64>();
    (ss / (period - ddof) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candles::CandleSeries;
    use crate::features::{FeatureSpec, NAMES, WARMUP_BARS, compute, last_row, training_matrix};
    use chrono::TimeZone;

    /// A random walk with flat bars, zero volumes, repeated closes and gaps, to reach the degenerate branches.
    fn synthetic(seed: u64, n: usize) -> CandleSeries {
        let mut rng = crate::SplitMix64(seed);
        let mut t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut price = 1.1;
        let mut bars = Vec::with_capacity(n);
        for _ in 0..n {
            let u = rng.unit();
            let (open, close) =
                if u < 0.05 { (price, price) } else { (price, price * (1.0 + (rng.unit() - 0.5) * 0.004)) };
            let wick = if u < 0.03 { 0.0 } else { 0.002 };
            let high = open.max(close) * (1.0 + rng.unit() * wick);
            let low = open.min(close) * (1.0 - rng.unit() * wick);
            let volume = if rng.unit() < 0.1 { 0.0 } else { (rng.unit() * 5000.0).floor() };
            bars.push(Candle { time: t, open, high, low, close, volume });
            price = close;
            t += chrono::Duration::hours(if rng.unit() < 0.02 { 49 } else { 1 });
        }
        CandleSeries::new(bars).unwrap()
    }

    #[track_caller]
    fn assert_bit_identical(stream: &[f64], matrix: &[f64], bar: usize) {
        for (j, (a, b)) in stream.iter().zip(matrix).enumerate() {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "bar {bar}, column {} ({}): stream {a:e}, matrix {b:e}",
                j,
                NAMES[j]
            );
        }
    }

    #[test]
    fn stream_equals_matrix_at_every_bar() {
        for seed in [1, 2, 3] {
            let series = synthetic(seed, 600);
            let matrix = compute(&series);
            let mut state = FeatureState::new();
            assert!(state.row().is_none() && state.is_empty());
            for (t, c) in series.candles().iter().enumerate() {
                state.push(c);
                assert_bit_identical(&state.row().unwrap(), &matrix.rows[t], t);
            }
            assert_eq!(state.len(), 600);
            assert_eq!(state.last_candle(), series.candles().last());
            // Not all NaN at the end, and the warm-up is exactly WARMUP_BARS rows.
            assert!(matrix.rows[WARMUP_BARS].iter().all(|v| v.is_finite()));
            assert!(matrix.rows[WARMUP_BARS - 1].iter().any(|v| v.is_nan()));
        }
    }

    #[test]
    fn last_row_of_a_slice() {
        let series = synthetic(9, 300);
        let matrix = compute(&series);
        assert!(last_row(&[]).is_none());
        for n in [1, 2, 14, 15, 26, 34, 200, 300] {
            let row = last_row(&series.candles()[..n]).unwrap();
            assert_bit_identical(&row, &matrix.rows[n - 1], n - 1);
        }
    }

    #[test]
    fn training_matrix_drops_only_the_warmup() {
        let series = synthetic(4, 260);
        let m = training_matrix(&series);
        assert_eq!(m.len(), 260 - WARMUP_BARS);
        assert_eq!(m.bar_index[0], WARMUP_BARS);
        assert!(m.rows.iter().all(|r| r.iter().all(|v| v.is_finite())));
    }

    #[test]
    fn spec_compatibility() {
        let spec = FeatureSpec::current();
        assert_eq!(spec.names.len(), N_FEATURES);
        spec.check_compatible().unwrap();
        let round: FeatureSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(round, spec);
        let mut other = spec.clone();
        other.names.swap(0, 1);
        assert!(other.check_compatible().unwrap_err().contains("columns"));
        let mut other = spec.clone();
        other.parameters.rsi = vec![14];
        assert!(other.check_compatible().unwrap_err().contains("parameters"));
        let mut other = spec;
        other.set = "something.else".into();
        assert!(other.check_compatible().is_err());
    }
}
