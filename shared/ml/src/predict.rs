//! Inference: an artefact and the latest candles → a trading signal in the shape of the original's prediction
//! object (contract §6.6, the `prediction` of §2.8's `PredictionResponse`).
//!
//! 1. The feature row of the last bar is computed with [`last_row`](crate::features::last_row) (bit-identical to
//!    the training features of that bar); at least [`WARMUP_BARS`]` + 1` bars are required, and
//!    [`STABLE_HISTORY_BARS`] are recommended (training saw the whole history, so recursive indicators only agree
//!    to ~1e-6 after that many bars).
//! 2. The model gives one probability per class of its label ([`LabelSpec::classes`]); the decision
//!    ([`decide`]) takes the most probable class: `up` → BUY, `down` → SELL, `flat` → HOLD, and HOLD as well when its
//!    probability is below [`SignalConfig::min_confidence`] (the original: 0.60). `confidence` is that
//!    probability; `ml_signal` is the direction before the threshold.
//! 3. Entry is the last close; for BUY/SELL, SL and TP are `entry ∓/± multiplier × ATR(14)` (Wilder, the feature
//!    column), rounded to the instrument's decimals — the contract's `atr_based` rule (§4.4); HOLD has neither.
//!
//! Strategy-rule validation, trailing-stop settings and the stored ids are the application's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::artefact::Artefact;
use crate::candles::{Candle, CandleSeries};
use crate::features::{self, N_FEATURES, NAMES, STABLE_HISTORY_BARS, WARMUP_BARS};
use crate::labels::{Class, LabelSpec};

pub use crate::signal::SignalConfig;

/// A trading direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Direction {
    /// Go long.
    Buy,
    /// Go short.
    Sell,
    /// Stay out.
    Hold,
}

impl Direction {
    /// Position sign: +1, −1, 0.
    pub fn position(self) -> i8 {
        match self {
            Direction::Buy => 1,
            Direction::Sell => -1,
            Direction::Hold => 0,
        }
    }
}

/// Class probabilities by name.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Probabilities {
    /// P(down) (binary labels: P(not up)).
    pub down: f64,
    /// P(flat); absent for binary labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat: Option<f64>,
    /// P(up).
    pub up: f64,
}

/// The decision for one probability vector (class-index order of `label`): the final direction, the direction
/// before the confidence threshold, and the confidence (probability of the most probable class; ties go to the
/// lower class index).
pub fn decide(label: &LabelSpec, probabilities: &[f64], min_confidence: f64) -> (Direction, Direction, f64) {
    let mut best = 0;
    for (i, p) in probabilities.iter().enumerate() {
        if *p > probabilities[best] {
            best = i;
        }
    }
    let confidence = probabilities.get(best).copied().unwrap_or(0.0);
    let raw = match label.classes().get(best) {
        Some(Class::Up) => Direction::Buy,
        Some(Class::Down) => Direction::Sell,
        _ => Direction::Hold,
    };
    let direction = if confidence >= min_confidence { raw } else { Direction::Hold };
    (direction, raw, confidence)
}

/// A prediction (serialises to the §6.6 field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Final direction.
    pub direction: Direction,
    /// Probability of the most probable class, 0–1.
    pub confidence: f64,
    /// Direction before the confidence threshold.
    pub ml_signal: Direction,
    /// Per-class probabilities.
    pub probabilities: Probabilities,
    /// True unless the direction is HOLD (the application may veto with strategy rules).
    pub should_trade: bool,
    /// Last close.
    pub entry_price: f64,
    /// For BUY/SELL: `entry ∓ sl_atr_multiplier × ATR`.
    pub stop_loss: Option<f64>,
    /// For BUY/SELL: `entry ± tp_atr_multiplier × ATR`.
    pub take_profit: Option<f64>,
    /// `|TP − entry| / |entry − SL|`, 2 decimals.
    pub risk_reward_ratio: Option<f64>,
    /// ATR(14) of the last bar.
    pub atr: f64,
    /// The §6.6 indicator snapshot (price, RSI(14), SMA(20), SMA(50), MACD, MACD_Signal, ADX, ATR, CCI, BB_Upper,
    /// BB_Lower, Stoch_K), 5 decimals.
    pub current_indicators: BTreeMap<String, f64>,
    /// Always `ml_model`.
    pub generated_by: String,
    /// The model family (`gradient_boosting`, …).
    pub model_type: String,
    /// Time of the bar the prediction is for (its close is the entry).
    pub bar_time: DateTime<Utc>,
    /// Bars the features were computed over.
    pub history_bars: usize,
}

/// Why no prediction could be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PredictError {
    /// Fewer bars than the longest indicator needs.
    #[error("{got} bars given; at least {needed} are needed ({recommended} recommended)")]
    NotEnoughBars {
        /// Bars given.
        got: usize,
        /// Minimum.
        needed: usize,
        /// Recommended.
        recommended: usize,
    },
    /// Settings out of range.
    #[error("invalid signal config: {0}")]
    InvalidConfig(String),
    /// The artefact's features are not this build's.
    #[error("incompatible model: {0}")]
    Incompatible(String),
    /// A feature is not finite (degenerate input).
    #[error("feature `{0}` is not finite for the last bar")]
    NonFiniteFeature(&'static str),
}

fn round_to(x: f64, decimals: u32) -> f64 {
    let f = 10f64.powi(decimals as i32);
    (x * f).round() / f
}

/// Predicts from the last bars of `series` (see the module docs). Uses at most the last
/// [`STABLE_HISTORY_BARS`]` × 4` bars (more history changes nothing measurable).
pub fn predict(artefact: &Artefact, series: &CandleSeries, config: &SignalConfig) -> Result<Prediction, PredictError> {
    let candles = series.candles();
    let candles = &candles[candles.len().saturating_sub(4 * STABLE_HISTORY_BARS)..];
    if candles.len() <= WARMUP_BARS {
        return Err(PredictError::NotEnoughBars {
            got: candles.len(),
            needed: WARMUP_BARS + 1,
            recommended: STABLE_HISTORY_BARS,
        });
    }
    let row = features::last_row(candles).expect("non-empty");
    predict_row(artefact, &row, candles.last().expect("non-empty"), candles.len(), config)
}

/// Predicts from a feature row already computed for `last` (e.g. by a [`FeatureState`](crate::features::FeatureState)
/// kept warm between calls); `history_bars` is reported back.
pub fn predict_row(
    artefact: &Artefact,
    row: &[f64; N_FEATURES],
    last: &Candle,
    history_bars: usize,
    config: &SignalConfig,
) -> Result<Prediction, PredictError> {
    config.validate().map_err(PredictError::InvalidConfig)?;
    artefact.header.features.check_compatible().map_err(PredictError::Incompatible)?;
    if let Some(j) = row.iter().position(|v| !v.is_finite()) {
        return Err(PredictError::NonFiniteFeature(NAMES[j]));
    }
    let label = &artefact.header.label;
    let probs = artefact.model.predict_proba(row);
    let (direction, ml_signal, confidence) = decide(label, &probs, config.min_confidence);
    let p = |c: Class| label.index_of(c).map(|i| probs[i]);
    let probabilities =
        Probabilities { down: p(Class::Down).unwrap_or(0.0), flat: p(Class::Flat), up: p(Class::Up).unwrap_or(0.0) };

    let column = |name: &str| row[NAMES.iter().position(|n| *n == name).expect("known feature column")];
    let atr = column("atr");
    let entry = last.close;
    let (stop_loss, take_profit, risk_reward_ratio) = match direction {
        Direction::Hold => (None, None, None),
        d => {
            let sign = f64::from(d.position());
            let sl = round_to(entry - sign * config.sl_atr_multiplier * atr, config.price_decimals);
            let tp = round_to(entry + sign * config.tp_atr_multiplier * atr, config.price_decimals);
            let risk = (entry - sl).abs();
            let rr = (risk > 0.0).then(|| round_to((tp - entry).abs() / risk, 2));
            (Some(sl), Some(tp), rr)
        }
    };
    let indicators = [
        ("price", entry),
        ("RSI(14)", column("rsi_14")),
        ("SMA(20)", column("sma_20")),
        ("SMA(50)", column("sma_50")),
        ("MACD", column("macd")),
        ("MACD_Signal", column("macd_signal")),
        ("ADX", column("adx")),
        ("ATR", atr),
        ("CCI", column("cci")),
        ("BB_Upper", column("bb_upper")),
        ("BB_Lower", column("bb_lower")),
        ("Stoch_K", column("stoch_k")),
    ];
    Ok(Prediction {
        direction,
        confidence,
        ml_signal,
        probabilities,
        should_trade: direction != Direction::Hold,
        entry_price: entry,
        stop_loss,
        take_profit,
        risk_reward_ratio,
        atr,
        current_indicators: indicators.iter().map(|(k, v)| ((*k).to_owned(), round_to(*v, 5))).collect(),
        generated_by: "ml_model".to_owned(),
        model_type: artefact.header.model_kind.as_str().to_owned(),
        bar_time: last.time,
        history_bars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelKind;

    #[test]
    fn decisions_follow_the_named_classes() {
        let three = LabelSpec::default();
        // [down, flat, up]
        assert_eq!(decide(&three, &[0.1, 0.2, 0.7], 0.6), (Direction::Buy, Direction::Buy, 0.7));
        assert_eq!(decide(&three, &[0.7, 0.2, 0.1], 0.6), (Direction::Sell, Direction::Sell, 0.7));
        assert_eq!(decide(&three, &[0.2, 0.7, 0.1], 0.6), (Direction::Hold, Direction::Hold, 0.7));
        // Below the threshold: HOLD, but the raw signal is kept.
        assert_eq!(decide(&three, &[0.3, 0.2, 0.5], 0.6), (Direction::Hold, Direction::Buy, 0.5));
        // The original's misreading: class 1 of a 3-class model is FLAT, never BUY.
        assert_eq!(decide(&three, &[0.05, 0.9, 0.05], 0.0).0, Direction::Hold);
        let binary = LabelSpec { kind: LabelKind::Binary, threshold: 0.0, horizon: 5 };
        // [down, up]: class 1 is BUY here.
        assert_eq!(decide(&binary, &[0.35, 0.65], 0.6), (Direction::Buy, Direction::Buy, 0.65));
        assert_eq!(decide(&binary, &[0.65, 0.35], 0.6), (Direction::Sell, Direction::Sell, 0.65));
        assert_eq!(decide(&binary, &[0.55, 0.45], 0.6).0, Direction::Hold);
    }

    #[test]
    fn config_ranges_and_serde() {
        assert!(SignalConfig::default().validate().is_ok());
        assert!(SignalConfig { min_confidence: 1.5, ..Default::default() }.validate().is_err());
        assert!(SignalConfig { sl_atr_multiplier: 0.0, ..Default::default() }.validate().is_err());
        assert!(SignalConfig { tp_atr_multiplier: f64::NAN, ..Default::default() }.validate().is_err());
        assert!(SignalConfig { price_decimals: 11, ..Default::default() }.validate().is_err());
        let c: SignalConfig = serde_json::from_str(r#"{"min_confidence":0.7}"#).unwrap();
        assert_eq!(c, SignalConfig { min_confidence: 0.7, ..Default::default() });
        assert_eq!(serde_json::to_string(&Direction::Buy).unwrap(), "\"BUY\"");
        let p = Probabilities { down: 0.4, flat: None, up: 0.6 };
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"down":0.4,"up":0.6}"#);
    }

    #[test]
    fn rounding() {
        assert_eq!(round_to(1.234_567, 5), 1.234_57);
        assert_eq!(round_to(2.0 / 3.0, 2), 0.67);
    }
}
