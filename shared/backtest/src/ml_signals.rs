//! The external series an ML strategy's rules read (`ml_confidence`, `ml_signal`, `vol_regime_*`), computed over a
//! whole bar series — causally, so a backtest of an ML model's signals sees at bar *i* only what a live bot would
//! have seen at bar *i*'s close.
//!
//! * `ml_signal` / `ml_confidence`: the model's decision on the features of each bar (the same feature code as live
//!   predictions, `nusatrade_ml::features`, whose values at a bar depend only on bars up to it) — 1 buy, −1 sell,
//!   0 hold, and the probability of the predicted class; `NaN` during the features' warm-up.
//! * `vol_regime_low` / `_medium` / `_high`: 1 when ATR(14) as a fraction of the close is in the lower, middle or
//!   upper third of its own trailing [`REGIME_WINDOW`] bars (the bar itself included), else 0; `NaN` until the window
//!   is full.

use nusatrade_ml::artefact::Artefact;
use nusatrade_ml::predict::{Direction, decide};
use nusatrade_ml::{CandleSeries, features, indicators};

use crate::rules::{External, ExternalSeries};

/// Bars of the trailing window the volatility regime is ranked in.
pub const REGIME_WINDOW: usize = 250;

/// The volatility regimes over `series` (`vol_regime_low`, `vol_regime_medium`, `vol_regime_high`).
pub fn volatility_regimes(series: &CandleSeries) -> ExternalSeries {
    let c = series.columns();
    let atr = indicators::atr(&c.high, &c.low, &c.close, 14);
    let rel: Vec<f64> = atr.iter().zip(&c.close).map(|(a, p)| a / p).collect();
    let n = rel.len();
    let (mut low, mut mid, mut high) = (vec![f64::NAN; n], vec![f64::NAN; n], vec![f64::NAN; n]);
    let mut window: Vec<f64> = Vec::with_capacity(REGIME_WINDOW);
    for i in 0..n {
        if i + 1 < REGIME_WINDOW || !rel[i].is_finite() {
            continue;
        }
        window.clear();
        window.extend(rel[i + 1 - REGIME_WINDOW..=i].iter().copied().filter(|v| v.is_finite()));
        if window.len() < REGIME_WINDOW / 2 {
            continue;
        }
        // Rank of today's value in its window: below a third, above two thirds, or between.
        let below = window.iter().filter(|v| **v < rel[i]).count() as f64 / window.len() as f64;
        let (l, h) = (below < 1.0 / 3.0, below >= 2.0 / 3.0);
        low[i] = f64::from(u8::from(l));
        high[i] = f64::from(u8::from(h));
        mid[i] = f64::from(u8::from(!l && !h));
    }
    let mut out = ExternalSeries::new();
    out.insert(External::VolRegimeLow.name().to_owned(), low);
    out.insert(External::VolRegimeMedium.name().to_owned(), mid);
    out.insert(External::VolRegimeHigh.name().to_owned(), high);
    out
}

/// The model's signal and confidence at every bar of `series` (see the module docs).
pub fn model_signals(artefact: &Artefact, series: &CandleSeries) -> ExternalSeries {
    let matrix = features::compute(series);
    let n = series.len();
    let (mut signal, mut confidence) = (vec![f64::NAN; n], vec![f64::NAN; n]);
    let width = artefact.model.n_features();
    for (row, &bar) in matrix.rows.iter().zip(&matrix.bar_index) {
        if bar >= n || row.len() != width || row.iter().any(|v| !v.is_finite()) {
            continue;
        }
        let probabilities = artefact.model.predict_proba(row);
        let (_, raw, conf) = decide(&artefact.header.label, &probabilities, 0.0);
        signal[bar] = match raw {
            Direction::Buy => 1.0,
            Direction::Sell => -1.0,
            Direction::Hold => 0.0,
        };
        confidence[bar] = conf;
    }
    let mut out = ExternalSeries::new();
    out.insert(External::MlSignal.name().to_owned(), signal);
    out.insert(External::MlConfidence.name().to_owned(), confidence);
    out
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use nusatrade_ml::Candle;

    use super::*;

    fn bars(n: usize) -> CandleSeries {
        let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut rng = nusatrade_ml::SplitMix64(7);
        let mut price = 1.1;
        let candles = (0..n)
            .map(|i| {
                // Volatility that changes over time, so every regime occurs.
                let vol = 0.0005 * (1.0 + (i as f64 / 150.0).sin().abs() * 3.0);
                let open = price;
                price *= 1.0 + (rng.unit() - 0.5) * vol;
                let (hi, lo) = (open.max(price) * (1.0 + vol / 4.0), open.min(price) * (1.0 - vol / 4.0));
                Candle { time: t0 + Duration::hours(i as i64), open, high: hi, low: lo, close: price, volume: 1.0 }
            })
            .collect();
        CandleSeries::new(candles).unwrap()
    }

    #[test]
    fn regimes_partition_every_ranked_bar_and_are_causal() {
        let s = bars(1_200);
        let r = volatility_regimes(&s);
        let (low, mid, high) = (&r["vol_regime_low"], &r["vol_regime_medium"], &r["vol_regime_high"]);
        assert!(low[..REGIME_WINDOW - 1].iter().all(|v| v.is_nan()), "nothing before the window is full");
        let ranked: Vec<usize> = (0..s.len()).filter(|i| !low[*i].is_nan()).collect();
        assert!(ranked.len() > 800);
        for &i in &ranked {
            assert_eq!(low[i] + mid[i] + high[i], 1.0, "exactly one regime at bar {i}");
        }
        for regime in [low, mid, high] {
            assert!(ranked.iter().any(|i| regime[*i] == 1.0), "every regime occurs");
        }
        // Causal: the first 900 bars alone give the same regimes on those bars.
        let head = volatility_regimes(&s.head(900));
        for (name, full) in &r {
            let h = &head[name];
            for i in 0..900 {
                assert!(h[i] == full[i] || (h[i].is_nan() && full[i].is_nan()), "{name}[{i}]");
            }
        }
    }
}
