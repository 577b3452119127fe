//! Model metrics: classification quality, and a simple signal backtest next to a buy-and-hold baseline.
//!
//! **Backtest.** For each test row `t` (in time order) the model's decision at the close of bar `t` sets the
//! position held over the next bar: `+1` (long) for BUY, `−1` (short) for SELL, `0` for HOLD. The bar's gross
//! return is `position · (close[t+1] / close[t] − 1)`; each change of position costs `cost_per_side · |Δposition|`
//! (a flip long → short pays twice), including the entry at the first bar and the exit after the last. A *trade*
//! is a run of consecutive bars with the same non-zero position; its return is the sum of its bars' net returns
//! (entry and exit costs included).
//!
//! * win rate = winning trades / trades; profit factor = gross profit / gross loss over trades (`None` when no
//!   trade lost: an infinite ratio cannot be stored — contract §9.3 #11);
//! * Sharpe = mean / sample σ of the per-bar net returns (flat bars count as 0) × √(bars per year); hourly FX bars
//!   use 252 × 24 = 6,048 bars per year ([`Timeframe::bars_per_year`](crate::candles::Timeframe::bars_per_year));
//!   0 when σ is 0;
//! * max drawdown = largest peak-to-trough fall of the compounded equity `Π(1 + r)`, as a fraction of the peak;
//! * total return = compounded equity − 1.
//!
//! The buy-and-hold baseline is the same computation with a position of +1 on every bar (one trade).

use serde::{Deserialize, Serialize};

use crate::labels::Class;

/// Per-class precision and recall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class.
    pub class: Class,
    /// Correct predictions of the class / predictions of the class (0 when never predicted).
    pub precision: f64,
    /// Correct predictions of the class / rows of the class (0 when absent).
    pub recall: f64,
    /// Harmonic mean of the two (0 when both are 0).
    pub f1: f64,
    /// Rows of the class.
    pub support: usize,
}

/// Classification quality on one block of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Rows scored.
    pub rows: usize,
    /// Share of rows whose most probable class is the label.
    pub accuracy: f64,
    /// Per class, in class-index order.
    pub per_class: Vec<ClassMetrics>,
    /// Unweighted mean of the per-class F1.
    pub macro_f1: f64,
    /// `confusion[actual][predicted]`, class-index order.
    pub confusion: Vec<Vec<usize>>,
}

/// Accuracy, per-class precision/recall/F1 and the confusion matrix of `predicted` against `actual` (class
/// indices into `classes`).
///
/// # Panics
/// If the slices differ in length or hold an index outside `classes`.
pub fn classification(classes: &[Class], actual: &[usize], predicted: &[usize]) -> ClassificationMetrics {
    assert_eq!(actual.len(), predicted.len(), "one prediction per row");
    let k = classes.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&a, &p) in actual.iter().zip(predicted) {
        confusion[a][p] += 1;
    }
    let ratio = |num: usize, den: usize| if den == 0 { 0.0 } else { num as f64 / den as f64 };
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted_c: usize = (0..k).map(|a| confusion[a][c]).sum();
            let support: usize = confusion[c].iter().sum();
            let precision = ratio(tp, predicted_c);
            let recall = ratio(tp, support);
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassMetrics { class: classes[c], precision, recall, f1, support }
        })
        .collect();
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    ClassificationMetrics {
        rows: actual.len(),
        accuracy: ratio(correct, actual.len()),
        macro_f1: if k == 0 { 0.0 } else { per_class.iter().map(|m| m.f1).sum::<f64>() / k as f64 },
        per_class,
        confusion,
    }
}

/// Backtest parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestConfig {
    /// Cost of one unit of position change as a fraction of price (spread + commission per side), in
    /// `[0, 0.01]`; default 0.00005 (0.5 basis point, about half a pip on EURUSD).
    pub cost_per_side: f64,
    /// Bars per year for the Sharpe ratio, (0, 600,000]; default 6,048 (hourly, 252 days × 24 h).
    pub bars_per_year: f64,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig { cost_per_side: 0.00005, bars_per_year: 6_048.0 }
    }
}

impl BacktestConfig {
    /// Checks the documented ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=0.01).contains(&self.cost_per_side) {
            return Err(format!("cost_per_side must be in [0, 0.01], got {}", self.cost_per_side));
        }
        if !(self.bars_per_year > 0.0 && self.bars_per_year <= 600_000.0) {
            return Err(format!("bars_per_year must be in (0, 600000], got {}", self.bars_per_year));
        }
        Ok(())
    }
}

/// Trading metrics of a position series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestMetrics {
    /// Bars in the backtest.
    pub bars: usize,
    /// Trades (runs of the same non-zero position).
    pub trades: usize,
    /// Winning trades / trades (0 without trades).
    pub win_rate: f64,
    /// Gross profit / gross loss over trades; `None` when no trade lost.
    pub profit_factor: Option<f64>,
    /// Annualised Sharpe ratio of the per-bar net returns.
    pub sharpe: f64,
    /// Largest fall of the compounded equity from a peak, as a fraction (0.05 = 5 %).
    pub max_drawdown: f64,
    /// Compounded net return over the backtest.
    pub total_return: f64,
    /// Share of bars with a position.
    pub exposure: f64,
}

/// Backtests `positions` (−1, 0, +1; one per bar) against the bars' returns `returns[t] = close[t+1]/close[t] − 1`.
///
/// # Panics
/// If the slices differ in length.
pub fn backtest(positions: &[i8], returns: &[f64], config: &BacktestConfig) -> BacktestMetrics {
    assert_eq!(positions.len(), returns.len(), "one return per position");
    let n = positions.len();
    let cost = config.cost_per_side;
    let mut net = Vec::with_capacity(n);
    let mut trades: Vec<f64> = Vec::new();
    let mut previous = 0i8;
    for t in 0..n {
        let p = positions[t];
        let size = f64::from(p.unsigned_abs());
        let change = f64::from((i16::from(p) - i16::from(previous)).unsigned_abs());
        // The exit after the last bar is charged to the last bar.
        let final_exit = if t + 1 == n { cost * size } else { 0.0 };
        net.push(f64::from(p) * returns[t] - cost * change - final_exit);
        if p != 0 {
            if p != previous {
                // A new trade, paying its entry.
                trades.push(-cost * size);
            }
            let trade = trades.last_mut().expect("a trade is open");
            *trade += f64::from(p) * returns[t];
            if positions.get(t + 1).copied().unwrap_or(0) != p {
                // Its exit (the next trade, if any, pays its own entry).
                *trade -= cost * size;
            }
        }
        previous = p;
    }
    let wins = trades.iter().filter(|&&r| r > 0.0).count();
    let gross_profit: f64 = trades.iter().filter(|&&r| r > 0.0).sum();
    let gross_loss: f64 = -trades.iter().filter(|&&r| r < 0.0).sum::<f64>();
    let mean = if n == 0 { 0.0 } else { net.iter().sum::<f64>() / n as f64 };
    let sd =
        if n < 2 { 0.0 } else { (net.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (n - 1) as f64).sqrt() };
    let mut equity = 1.0f64;
    let mut peak = 1.0f64;
    let mut max_drawdown = 0.0f64;
    for r in &net {
        equity *= 1.0 + r;
        peak = peak.max(equity);
        max_drawdown = max_drawdown.max((peak - equity) / peak);
    }
    BacktestMetrics {
        bars: n,
        trades: trades.len(),
        win_rate: if trades.is_empty() { 0.0 } else { wins as f64 / trades.len() as f64 },
        profit_factor: (gross_loss > 0.0).then(|| gross_profit / gross_loss),
        sharpe: if sd > 0.0 { mean / sd * config.bars_per_year.sqrt() } else { 0.0 },
        max_drawdown,
        total_return: equity - 1.0,
        exposure: if n == 0 { 0.0 } else { positions.iter().filter(|&&p| p != 0).count() as f64 / n as f64 },
    }
}

/// Rows and classes of one split block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockCounts {
    /// Rows in the block.
    pub rows: usize,
    /// Rows per class, in class-index order.
    pub per_class: Vec<usize>,
}

/// A feature and its share of the model's importance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    /// Feature column.
    pub name: String,
    /// Share (the importances of all features sum to 1).
    pub importance: f64,
}

/// Everything measured while training (stored in the artefact; audit GAP #16).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingMetrics {
    /// Training block.
    pub train: BlockCounts,
    /// Validation block.
    pub validation: BlockCounts,
    /// Test block.
    pub test: BlockCounts,
    /// Classification on the validation block.
    pub validation_metrics: ClassificationMetrics,
    /// Classification on the test block.
    pub test_metrics: ClassificationMetrics,
    /// Signal backtest on the test block.
    pub backtest: BacktestMetrics,
    /// Buy-and-hold over the same bars.
    pub buy_and_hold: BacktestMetrics,
    /// The ten most important features.
    pub top_features: Vec<FeatureImportance>,
    /// Wall-clock training time of the model itself, in milliseconds.
    pub fit_millis: u64,
}

/// The flat `performance_metrics` object a model record shows (the original's keys where they exist).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceSummary {
    /// Test accuracy.
    pub accuracy: f64,
    /// Macro-averaged test precision.
    pub precision: f64,
    /// Macro-averaged test recall.
    pub recall: f64,
    /// Macro-averaged test F1.
    pub f1_score: f64,
    /// Backtest win rate.
    pub win_rate: f64,
    /// Backtest profit factor (`None` without losing trades).
    pub profit_factor: Option<f64>,
    /// Backtest trades.
    pub total_trades: usize,
    /// Backtest Sharpe ratio (annualised).
    pub sharpe_ratio: f64,
    /// Backtest maximum drawdown (fraction).
    pub max_drawdown: f64,
    /// Backtest compounded return.
    pub total_return: f64,
    /// Buy-and-hold compounded return over the same bars.
    pub buy_and_hold_return: f64,
    /// Training rows.
    pub train_samples: usize,
    /// Test rows.
    pub test_samples: usize,
}

impl TrainingMetrics {
    /// The flat summary.
    pub fn summary(&self) -> PerformanceSummary {
        let t = &self.test_metrics;
        let k = t.per_class.len().max(1) as f64;
        PerformanceSummary {
            accuracy: t.accuracy,
            precision: t.per_class.iter().map(|c| c.precision).sum::<f64>() / k,
            recall: t.per_class.iter().map(|c| c.recall).sum::<f64>() / k,
            f1_score: t.macro_f1,
            win_rate: self.backtest.win_rate,
            profit_factor: self.backtest.profit_factor,
            total_trades: self.backtest.trades,
            sharpe_ratio: self.backtest.sharpe,
            max_drawdown: self.backtest.max_drawdown,
            total_return: self.backtest.total_return,
            buy_and_hold_return: self.buy_and_hold.total_return,
            train_samples: self.train.rows,
            test_samples: self.test.rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSES: [Class; 3] = [Class::Down, Class::Flat, Class::Up];

    #[test]
    fn classification_by_hand() {
        // actual:    D D D F F U U U U U
        // predicted: D D U F D U U U F D
        let actual = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2];
        let predicted = [0, 0, 2, 1, 0, 2, 2, 2, 1, 0];
        let m = classification(&CLASSES, &actual, &predicted);
        assert_eq!(m.confusion, vec![vec![2, 0, 1], vec![1, 1, 0], vec![1, 1, 3]]);
        assert_eq!(m.accuracy, 0.6);
        // Down: predicted 4 times, 2 right → precision 0.5; 3 actual → recall 2/3.
        assert_eq!(m.per_class[0].precision, 0.5);
        assert!((m.per_class[0].recall - 2.0 / 3.0).abs() < 1e-15);
        assert!((m.per_class[0].f1 - 4.0 / 7.0).abs() < 1e-15);
        // Flat: 1 of 2 predictions right, 1 of 2 actual.
        assert_eq!((m.per_class[1].precision, m.per_class[1].recall), (0.5, 0.5));
        // Up: 3 of 4 predictions right, 3 of 5 actual.
        assert_eq!((m.per_class[2].precision, m.per_class[2].recall, m.per_class[2].support), (0.75, 0.6, 5));
        assert_eq!(m.per_class[2].class, Class::Up);
        // A class never predicted has precision 0, not NaN.
        let m = classification(&CLASSES, &[0, 1, 2], &[0, 0, 0]);
        assert_eq!(m.per_class[2].precision, 0.0);
        assert_eq!(m.per_class[2].f1, 0.0);
    }

    #[test]
    fn backtest_by_hand() {
        // Long, long, flat, short, short; returns +1 %, −0.5 %, +2 %, −1 %, +0.5 %; cost 0.1 % per side.
        let positions = [1, 1, 0, -1, -1];
        let returns = [0.01, -0.005, 0.02, -0.01, 0.005];
        let cfg = BacktestConfig { cost_per_side: 0.001, bars_per_year: 100.0 };
        let m = backtest(&positions, &returns, &cfg);
        // Net per bar: 0.01 − 0.001 (entry); −0.005; 0 − 0.001 (exit of the long); 0.01 − 0.001 (entry short);
        // −0.005 − 0.001 (exit after the last bar).
        let net = [0.009, -0.005, -0.001, 0.009, -0.006];
        // Trades: long = 0.01 − 0.005 − 2·0.001 = 0.003; short = 0.01 − 0.005 − 2·0.001 = 0.003.
        assert_eq!(m.trades, 2);
        assert_eq!(m.win_rate, 1.0);
        assert_eq!(m.profit_factor, None);
        let total: f64 = net.iter().map(|r| 1.0 + r).product::<f64>() - 1.0;
        assert!((m.total_return - total).abs() < 1e-15);
        let mean = net.iter().sum::<f64>() / 5.0;
        let sd = (net.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((m.sharpe - mean / sd * 10.0).abs() < 1e-12);
        // Equity: 1.009, 1.003955, 1.002951, 1.011978, 1.005906: falls of 1 − 0.995·0.999 = 0.005995 from the
        // first peak and 1 − 0.994 = 0.006 from the second.
        let dd = 1.0 - 0.994;
        assert!((m.max_drawdown - dd).abs() < 1e-12, "{}", m.max_drawdown);
        assert_eq!(m.exposure, 0.8);
    }

    #[test]
    fn flips_losses_and_profit_factor() {
        // Long then immediately short: the flip costs two sides; the short loses.
        let m = backtest(&[1, -1], &[0.01, 0.02], &BacktestConfig { cost_per_side: 0.0, bars_per_year: 1.0 });
        assert_eq!(m.trades, 2);
        assert_eq!(m.win_rate, 0.5);
        assert!((m.profit_factor.unwrap() - 0.5).abs() < 1e-12);
        let m = backtest(&[1, -1], &[0.0, 0.0], &BacktestConfig { cost_per_side: 0.001, bars_per_year: 1.0 });
        // Long: −0.001 entry −0.001 exit; short: −0.001 −0.001. Bar nets: −0.001, −0.002 − 0.001.
        assert_eq!(m.trades, 2);
        assert_eq!(m.win_rate, 0.0);
        assert_eq!(m.profit_factor, Some(0.0));
        assert!((m.total_return - (0.999 * 0.997 - 1.0)).abs() < 1e-15);
        // Never in the market: no trades, no risk.
        let m = backtest(&[0, 0, 0], &[0.01, -0.02, 0.0], &BacktestConfig::default());
        assert_eq!((m.trades, m.sharpe, m.max_drawdown, m.total_return), (0, 0.0, 0.0, 0.0));
        let m = backtest(&[], &[], &BacktestConfig::default());
        assert_eq!(m.bars, 0);
    }

    #[test]
    fn config_ranges() {
        assert!(BacktestConfig::default().validate().is_ok());
        assert!(BacktestConfig { cost_per_side: -0.1, ..Default::default() }.validate().is_err());
        assert!(BacktestConfig { bars_per_year: f64::NAN, ..Default::default() }.validate().is_err());
    }
}
