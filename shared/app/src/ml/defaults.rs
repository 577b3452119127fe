//! System default models: one per symbol of [`DEFAULT_SYMBOLS`] (the original's XAUUSD, EURUSD, BTCUSD), trained
//! by the project itself on first use — no model file ships with the product.
//!
//! **How a default is made.** The first request that needs one (`GET /ml-models/defaults`,
//! `POST /ml/models/import-default/{symbol}`, ...) finds no default record, writes one in state `queued` (a
//! conditional put: concurrent first requests enqueue one job) and puts a `train_default` job on the `ml-train`
//! queue. The job trains on the platform's **system dataset** for the symbol (H1):
//!
//! * candles an operator supplied — uploaded by an admin with `POST /api/v1/ml/datasets?scope=system`, or (local
//!   platform) read at start from `NUSATRADE_ML_SEED_DIR/<SYMBOL>.csv` — when there are at least
//!   [`MIN_DEFAULT_BARS`] of them;
//! * otherwise a **generated** series ([`generated_series`]: a seeded random walk with volatility clustering at a
//!   typical price and hourly volatility of the symbol) which is stored as the system dataset with source
//!   `generated`. It is not market data: a default trained on it has no predictive value, and every response
//!   that shows the default says so (`data_source.origin = "generated"` and its note).
//!
//! An admin retrains a default (e.g. after uploading real candles) with
//! `POST /api/v1/ml-models/defaults/{symbol}/retrain`; users who imported the old version keep it (versions are
//! immutable) until they import again.

use chrono::{DateTime, Duration, DurationRound, Utc};
use nusatrade_ml::models::GbdtParams;
use nusatrade_ml::{Candle, CandleSeries, LabelKind, LabelSpec, ModelConfig, Timeframe, TrainConfig};

/// Symbols with a system default model (the original's three).
pub const DEFAULT_SYMBOLS: [&str; 3] = ["XAUUSD", "EURUSD", "BTCUSD"];
/// Fewest operator-supplied bars a default is trained on (else generated data is used).
pub const MIN_DEFAULT_BARS: usize = 1_500;
/// Bars of a generated series (about 7 months of hourly bars).
pub const GENERATED_BARS: usize = 5_000;

/// The symbol if it has a default (upper-cased), else `None`.
pub fn default_symbol(raw: &str) -> Option<&'static str> {
    let up = raw.trim().to_ascii_uppercase();
    DEFAULT_SYMBOLS.iter().copied().find(|s| *s == up)
}

/// `(typical price, hourly volatility of log returns, label threshold)` of a default symbol.
fn profile(symbol: &str) -> (f64, f64, f64) {
    match symbol {
        "XAUUSD" => (2_000.0, 0.0018, 0.001),
        "BTCUSD" => (40_000.0, 0.0065, 0.003),
        _ => (1.10, 0.0011, 0.0005),
    }
}

/// The training config of a default model: gradient boosting (the original's defaults were XGBoost), kept small
/// enough to train in seconds on a Lambda; three-class labels over 5 bars with a threshold scaled to the symbol's
/// volatility.
pub fn default_config(symbol: &str) -> TrainConfig {
    let (_, _, threshold) = profile(symbol);
    TrainConfig {
        model: ModelConfig::GradientBoosting(GbdtParams {
            iterations: 60,
            learning_rate: 0.1,
            max_depth: 4,
            nbins: 64,
            ..GbdtParams::default()
        }),
        label: LabelSpec { kind: LabelKind::ThreeClass, horizon: 5, threshold },
        ..TrainConfig::new(nusatrade_ml::ModelKind::GradientBoosting)
    }
}

/// SplitMix64: small, seedable, good enough for a demo price path.
struct SplitMix(nusatrade_ml::SplitMix64);

impl SplitMix {
    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.0.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A generated hourly series for `symbol` ending at the hour of `end`: log returns with GARCH(1,1)-style
/// volatility clustering around the symbol's typical hourly volatility, four sub-steps per bar for the high and
/// low, volumes loosely following volatility. Deterministic for a symbol and `end`. **Not market data.**
pub fn generated_series(symbol: &str, bars: usize, end: DateTime<Utc>) -> CandleSeries {
    generated_bars(symbol, Timeframe::H1, bars, end)
}

/// [`generated_series`] on any timeframe: the bar's volatility scales with the square root of its length. Bars
/// are evenly spaced (no weekend gaps). Deterministic for a symbol, timeframe and `end`. **Not market data.**
pub fn generated_bars(symbol: &str, tf: Timeframe, bars: usize, end: DateTime<Utc>) -> CandleSeries {
    let (price0, hourly_sigma, _) = profile(symbol);
    let step = Duration::seconds(tf.seconds());
    let sigma = hourly_sigma * (tf.seconds() as f64 / 3_600.0).sqrt();
    let seed = symbol.bytes().fold(0xC0FF_EE00_u64, |h, b| h.rotate_left(7) ^ u64::from(b));
    let mut rng = SplitMix(nusatrade_ml::SplitMix64(seed));
    let end = end.duration_trunc(step).unwrap_or(end);
    let start = end - step * (bars as i32 - 1);
    let mut price = price0;
    let mut variance = sigma * sigma;
    let mut out = Vec::with_capacity(bars);
    for i in 0..bars {
        let open = price;
        let (mut high, mut low) = (open, open);
        let mut moved = 0.0;
        for _ in 0..4 {
            let shock = rng.normal() * (variance / 4.0).sqrt();
            // A faint pull back to the typical price keeps the walk in a plausible range.
            let pull = -0.0005 * (price / price0).ln();
            price *= (shock + pull).exp();
            high = high.max(price);
            low = low.min(price);
            moved += shock * shock;
        }
        variance = 0.05 * sigma * sigma + 0.85 * variance + 0.10 * moved;
        let volume = (1_000.0 * (1.0 + moved.sqrt() / sigma) * (0.5 + rng.unit())).round();
        out.push(Candle { time: start + step * i as i32, open, high, low, close: price, volume });
    }
    CandleSeries::new(out).expect("a generated walk is a valid series")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_series_are_valid_deterministic_and_plausible() {
        let end = DateTime::from_timestamp(1_700_000_123, 0).unwrap();
        let a = generated_series("EURUSD", 3_000, end);
        assert_eq!(a, generated_series("EURUSD", 3_000, end));
        assert_eq!(a.len(), 3_000);
        let c = a.candles();
        assert_eq!(c[2_999].time.timestamp() % 3_600, 0, "whole hours");
        assert!(c.iter().all(|b| b.close > 0.8 && b.close < 1.4), "EURUSD stays plausible");
        let r: Vec<f64> = c.windows(2).map(|w| (w[1].close / w[0].close).ln()).collect();
        let sd = (r.iter().map(|x| x * x).sum::<f64>() / r.len() as f64).sqrt();
        assert!(sd > 0.0005 && sd < 0.003, "hourly σ {sd}");
        assert_ne!(generated_series("BTCUSD", 10, end).candles()[0].close, c[0].close);
    }

    #[test]
    fn default_configs_are_valid() {
        for s in DEFAULT_SYMBOLS {
            default_config(s).validate().unwrap();
        }
        assert_eq!(default_symbol(" eurusd"), Some("EURUSD"));
        assert_eq!(default_symbol("GBPUSD"), None);
    }
}
