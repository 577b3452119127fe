//! Walk-forward analysis: optimise on a rolling (or anchored) in-sample window, trade the winner on the
//! out-of-sample window that follows, move on; stitch the out-of-sample runs into one equity curve.

use std::ops::Range;

use chrono::{DateTime, Utc};
use nusatrade_domain::instrument::Instrument;
use nusatrade_ml::candles::Columns;
use serde::{Deserialize, Serialize};

use super::wire::{lenient, lossless_f64};
use super::{Backtest, Control, OptimizeError, OptimizeSettings, Plan, optimize};
use crate::engine::{self, EngineConfig, Outcome, Signals, Sizing, Trade};
use crate::rules::ExternalSeries;
use crate::stats::{self, Stats};
use crate::strategy::{CompiledStrategy, ParamValues};

/// Most windows in one analysis.
pub const MAX_WINDOWS: usize = 500;
/// Most evaluations in one analysis (windows × combinations per window).
pub const MAX_EVALUATIONS: u64 = 5_000_000;

/// Window lengths in bars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkForwardConfig {
    /// Bars optimised on per window (at least 2).
    pub in_sample_bars: usize,
    /// Bars traded with the winner per window (at least 1).
    pub out_of_sample_bars: usize,
    /// Bars between window starts; at least `out_of_sample_bars` (the default), so the out-of-sample windows do not
    /// overlap.
    #[serde(default)]
    pub step_bars: Option<usize>,
    /// In-sample windows all start at bar 0 and grow (anchored), instead of rolling.
    #[serde(default)]
    pub anchored: bool,
}

/// A span of bars: `start..end` (end exclusive) and the times of its first and last bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarWindow {
    /// First bar.
    pub start: usize,
    /// One past the last bar.
    pub end: usize,
    /// Time of the first bar.
    pub start_time: Option<DateTime<Utc>>,
    /// Time of the last bar.
    pub end_time: Option<DateTime<Utc>>,
}

impl BarWindow {
    fn of(bars: &Columns, r: &Range<usize>) -> BarWindow {
        BarWindow {
            start: r.start,
            end: r.end,
            start_time: bars.time.get(r.start).copied(),
            end_time: r.end.checked_sub(1).and_then(|i| bars.time.get(i)).copied(),
        }
    }
}

/// One window's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// 0-based window number.
    pub index: usize,
    /// The bars optimised on.
    pub in_sample: BarWindow,
    /// The bars traded with the winner.
    pub out_of_sample: BarWindow,
    /// The winning parameters.
    pub params: ParamValues,
    /// The winner's objective in sample.
    #[serde(with = "lossless_f64")]
    pub in_sample_objective: f64,
    /// The winner's in-sample statistics.
    #[serde(deserialize_with = "lenient")]
    pub in_sample_stats: Stats,
    /// Its out-of-sample statistics.
    #[serde(deserialize_with = "lenient")]
    pub out_of_sample_stats: Stats,
    /// Combinations evaluated in sample.
    pub evaluated: u64,
    /// Combinations skipped by a constraint.
    pub skipped: u64,
}

/// The result of a walk-forward analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalkForwardReport {
    /// Per window.
    pub windows: Vec<WindowReport>,
    /// Bar times of the stitched out-of-sample equity.
    pub times: Vec<DateTime<Utc>>,
    /// The stitched out-of-sample equity: each window starts where the previous ended (added up for fixed-lot
    /// sizing, compounded for equity-proportional sizing).
    pub equity: Vec<f64>,
    /// Its drawdown from the running peak, fractions 0 … 1.
    pub drawdown: Vec<f64>,
    /// The out-of-sample trades, bar indices into the input bars (P/L scaled like the equity).
    pub trades: Vec<Trade>,
    /// Statistics of the stitched out-of-sample run.
    #[serde(deserialize_with = "lenient")]
    pub out_of_sample_stats: Stats,
    /// Walk-forward efficiency: mean out-of-sample annualised return ÷ mean in-sample annualised return of the
    /// winners; `None` when the in-sample mean is not positive or either is not finite.
    pub efficiency: Option<f64>,
}

/// An (in-sample, out-of-sample) pair of bar ranges.
pub type WindowRanges = (Range<usize>, Range<usize>);

/// The (in-sample, out-of-sample) bar ranges of a walk-forward over `bars` bars.
pub fn windows(bars: usize, config: &WalkForwardConfig) -> Result<Vec<WindowRanges>, OptimizeError> {
    let (is, oos) = (config.in_sample_bars, config.out_of_sample_bars);
    let step = config.step_bars.unwrap_or(oos);
    if is < 2 || oos < 1 {
        return Err(OptimizeError::WalkForward(format!(
            "the in-sample window needs at least 2 bars and the out-of-sample window at least 1 (got {is} and {oos})"
        )));
    }
    if step < oos {
        return Err(OptimizeError::WalkForward(format!(
            "the step ({step} bars) must be at least the out-of-sample window ({oos} bars)"
        )));
    }
    let first = is.saturating_add(oos);
    if bars < first || first == usize::MAX {
        return Err(OptimizeError::WalkForward(format!(
            "the data has {bars} bars; one walk-forward window needs {is} in-sample + {oos} out-of-sample = {first}"
        )));
    }
    let count = (bars - first) / step + 1;
    if count > MAX_WINDOWS {
        return Err(OptimizeError::WalkForward(format!(
            "{count} walk-forward windows; at most {MAX_WINDOWS} (use a longer step)"
        )));
    }
    Ok((0..count)
        .map(|k| {
            let shift = k * step;
            let is_start = if config.anchored { 0 } else { shift };
            (is_start..shift + is, shift + is..shift + is + oos)
        })
        .collect())
}

fn slice(bars: &Columns, r: Range<usize>) -> Columns {
    Columns {
        time: bars.time[r.clone()].to_vec(),
        open: bars.open[r.clone()].to_vec(),
        high: bars.high[r.clone()].to_vec(),
        low: bars.low[r.clone()].to_vec(),
        close: bars.close[r.clone()].to_vec(),
        volume: bars.volume[r].to_vec(),
    }
}

/// The external series cut to `r` (a series of the wrong length is passed whole, for the evaluator to refuse).
fn slice_external(external: &ExternalSeries, bars: usize, r: Range<usize>) -> ExternalSeries {
    external.iter().map(|(k, v)| (k.clone(), if v.len() == bars { v[r.clone()].to_vec() } else { v.clone() })).collect()
}

fn append(to: &mut Columns, from: &Columns) {
    to.time.extend_from_slice(&from.time);
    to.open.extend_from_slice(&from.open);
    to.high.extend_from_slice(&from.high);
    to.low.extend_from_slice(&from.low);
    to.close.extend_from_slice(&from.close);
    to.volume.extend_from_slice(&from.volume);
}

/// The signals from bar `from` on; the warm-up shifted with them (and kept below the remaining length).
fn tail_signals(s: &Signals, from: usize) -> Signals {
    let len = s.enter_long.len().saturating_sub(from);
    Signals {
        warmup: s.warmup.saturating_sub(from).min(len.saturating_sub(1)),
        enter_long: s.enter_long[from..].to_vec(),
        enter_short: s.enter_short[from..].to_vec(),
        exit_long: s.exit_long[from..].to_vec(),
        exit_short: s.exit_short[from..].to_vec(),
    }
}

/// Drawdown from the running peak, fractions (0 where the peak is not positive).
fn drawdown_of(equity: &[f64]) -> Vec<f64> {
    let mut peak = f64::NEG_INFINITY;
    equity
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            if peak > 0.0 { ((peak - e) / peak).max(0.0) } else { 0.0 }
        })
        .collect()
}

/// Appends `segment` (a run from `initial`) to `stitched`, starting from its last value (or `initial`): shifted
/// when `additive`, else scaled. Returns the factor applied to P/L (1 when additive).
fn stitch(stitched: &mut Vec<f64>, segment: &[f64], initial: f64, additive: bool) -> f64 {
    let base = stitched.last().copied().unwrap_or(initial);
    if additive {
        stitched.extend(segment.iter().map(|e| base + (e - initial)));
        1.0
    } else {
        let factor = base / initial;
        stitched.extend(segment.iter().map(|e| e * factor));
        factor
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Runs a walk-forward analysis of `strategy` over `bars`: for each window of [`windows`], [`optimize`] `plan`
/// (its space; the heatmap setting is ignored) on the in-sample bars, then run the best combination on the
/// out-of-sample bars. The out-of-sample signals are computed over the in-sample and out-of-sample bars together,
/// so indicators are warmed up when the window opens (signals are causal); each out-of-sample run starts with
/// `config.initial_cash` and closes what is open at its last bar. Progress counts in-sample evaluations over all
/// windows.
#[allow(clippy::too_many_arguments)]
pub fn walk_forward(
    bars: &Columns,
    plan: &Plan,
    strategy: &CompiledStrategy,
    external: &ExternalSeries,
    instrument: Option<&'static Instrument>,
    config: &EngineConfig,
    settings: &OptimizeSettings,
    walk: &WalkForwardConfig,
    control: &Control<'_>,
) -> Result<WalkForwardReport, OptimizeError> {
    let spans = windows(bars.close.len(), walk)?;
    let evaluations = (spans.len() as u64).saturating_mul(plan.len());
    if evaluations > MAX_EVALUATIONS {
        return Err(OptimizeError::WalkForward(format!(
            "{} windows × {} combinations = {evaluations} evaluations, above the limit of {MAX_EVALUATIONS}",
            spans.len(),
            plan.len()
        )));
    }
    let settings = OptimizeSettings { heatmap: None, ..settings.clone() };
    let oos_config = EngineConfig { close_at_end: true, ..config.clone() };
    let additive = matches!(config.sizing, Sizing::FixedLots(_));
    let initial = config.initial_cash;

    let mut reports = Vec::with_capacity(spans.len());
    let mut stitched_bars = Columns::default();
    let mut equity = Vec::new();
    let mut trades = Vec::new();
    let mut trades_local = Vec::new();
    let mut exposure_bars = 0usize;
    let mut last_outcome: Option<Outcome> = None;
    let per_window = plan.len();
    let total = evaluations;

    for (w, (is_range, oos_range)) in spans.into_iter().enumerate() {
        let is_bars = slice(bars, is_range.clone());
        let is_external = slice_external(external, bars.close.len(), is_range.clone());
        let offset = w as u64 * per_window;
        let forward = |done: u64, _: u64| {
            if let Some(p) = control.progress {
                p(offset + done, total);
            }
        };
        let inner = Control { progress: Some(&forward), ..*control };
        let evaluator = Backtest { bars: &is_bars, strategy, external: &is_external, instrument, config };
        let result = optimize(plan, &evaluator, &settings, &inner)?;
        let Some(best) = result.best.first() else {
            return Err(OptimizeError::NoValidCombination);
        };

        let warm = slice(bars, is_range.start..oos_range.end);
        let warm_external = slice_external(external, bars.close.len(), is_range.start..oos_range.end);
        let signals = strategy
            .signals_with(&warm, &warm_external, &best.params)
            .map_err(|e| OptimizeError::WalkForward(format!("window {w}, out-of-sample signals: {e}")))?;
        let oos_signals = tail_signals(&signals, oos_range.start - is_range.start);
        let oos_bars = slice(bars, oos_range.clone());
        let outcome = engine::run(&oos_bars, &oos_signals, instrument, &oos_config)?;
        let oos_stats = stats::compute(&outcome, &oos_bars, &oos_config);

        let local_offset = stitched_bars.close.len();
        let factor = stitch(&mut equity, &outcome.equity, initial, additive);
        for t in &outcome.trades {
            let mut local = t.clone();
            local.pnl *= factor;
            local.commission *= factor;
            local.entry_bar += local_offset;
            local.exit_bar += local_offset;
            let mut global = local.clone();
            global.entry_bar = t.entry_bar + oos_range.start;
            global.exit_bar = t.exit_bar + oos_range.start;
            trades_local.push(local);
            trades.push(global);
        }
        exposure_bars += outcome.exposure_bars;
        append(&mut stitched_bars, &oos_bars);

        reports.push(WindowReport {
            index: w,
            in_sample: BarWindow::of(bars, &is_range),
            out_of_sample: BarWindow::of(bars, &oos_range),
            params: best.params.clone(),
            in_sample_objective: best.objective,
            in_sample_stats: best.stats.clone(),
            out_of_sample_stats: oos_stats,
            evaluated: result.evaluated,
            skipped: result.skipped,
        });
        last_outcome = Some(outcome);
    }

    let drawdown = drawdown_of(&equity);
    // `windows` returned at least one window, so there is a last outcome; the update syntax keeps any fields the
    // engine adds to `Outcome`.
    let Some(base) = last_outcome else {
        return Err(OptimizeError::WalkForward("no walk-forward window".into()));
    };
    #[allow(clippy::needless_update)]
    let stitched =
        Outcome { trades: trades_local, equity: equity.clone(), drawdown: drawdown.clone(), exposure_bars, ..base };
    let out_of_sample_stats = stats::compute(&stitched, &stitched_bars, &oos_config);

    let is_mean = mean(reports.iter().map(|r| r.in_sample_stats.return_ann_pct));
    let oos_mean = mean(reports.iter().map(|r| r.out_of_sample_stats.return_ann_pct));
    let efficiency = match (is_mean, oos_mean) {
        (Some(is), Some(oos)) if is.is_finite() && oos.is_finite() && is > 0.0 => Some(oos / is),
        _ => None,
    };

    Ok(WalkForwardReport {
        windows: reports,
        times: stitched_bars.time,
        equity,
        drawdown,
        trades,
        out_of_sample_stats,
        efficiency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(is: usize, oos: usize, step: Option<usize>, anchored: bool) -> WalkForwardConfig {
        WalkForwardConfig { in_sample_bars: is, out_of_sample_bars: oos, step_bars: step, anchored }
    }

    #[test]
    fn rolling_windows_tile_the_data() {
        let w = windows(100, &cfg(40, 20, None, false)).unwrap();
        assert_eq!(w, vec![(0..40, 40..60), (20..60, 60..80), (40..80, 80..100)]);
        // The out-of-sample windows are contiguous and follow their in-sample window.
        assert!(w.windows(2).all(|p| p[0].1.end == p[1].1.start));
        assert!(w.iter().all(|(is, oos)| is.end == oos.start && is.len() == 40 && oos.len() == 20));
    }

    #[test]
    fn anchored_windows_grow_from_zero() {
        let w = windows(95, &cfg(40, 20, None, true)).unwrap();
        assert_eq!(w, vec![(0..40, 40..60), (0..60, 60..80)]);
    }

    #[test]
    fn step_longer_than_oos_leaves_gaps() {
        let w = windows(100, &cfg(30, 10, Some(25), false)).unwrap();
        assert_eq!(w, vec![(0..30, 30..40), (25..55, 55..65), (50..80, 80..90)]);
    }

    #[test]
    fn refuses_short_data_and_bad_settings() {
        let e = windows(50, &cfg(40, 20, None, false)).unwrap_err().to_string();
        assert!(e.contains("50 bars") && e.contains("= 60"), "{e}");
        assert!(windows(100, &cfg(1, 10, None, false)).is_err());
        assert!(windows(100, &cfg(10, 0, None, false)).is_err());
        assert!(windows(100, &cfg(10, 10, Some(5), false)).is_err());
        assert!(windows(100_000, &cfg(10, 10, None, false)).unwrap_err().to_string().contains("at most 500"));
        assert!(windows(usize::MAX, &cfg(usize::MAX, 2, None, false)).is_err());
    }

    #[test]
    fn stitching_adds_or_compounds() {
        let mut s = Vec::new();
        assert_eq!(stitch(&mut s, &[100.0, 110.0], 100.0, true), 1.0);
        stitch(&mut s, &[100.0, 90.0, 120.0], 100.0, true);
        assert_eq!(s, vec![100.0, 110.0, 110.0, 100.0, 130.0]);
        let mut c = Vec::new();
        stitch(&mut c, &[100.0, 110.0], 100.0, false);
        assert_eq!(stitch(&mut c, &[100.0, 120.0], 100.0, false), 1.1);
        assert!((c[3] - 132.0).abs() < 1e-12);
        assert_eq!(drawdown_of(&[100.0, 120.0, 90.0, 130.0]), vec![0.0, 0.0, 0.25, 0.0]);
    }
}
