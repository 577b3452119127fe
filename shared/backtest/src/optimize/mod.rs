//! Parameter optimisation: grid and random search over a [`ParamSpace`] with constraints, ranked by an
//! [`Objective`], split into ranges for workers and merged back; and walk-forward analysis ([`walk_forward`]).
//!
//! # Pieces
//!
//! * [`ParamSpace`] — the parameters' values (ranges or lists), constraints in the rule language
//!   (`fast < slow`), and a mixed-radix numbering of the combinations: [`ParamSpace::digits`] /
//!   [`ParamSpace::combination`] are O(#params), so any worker can start anywhere.
//! * [`Plan`] — what to evaluate: the whole grid (at most [`MAX_COMBINATIONS`]) or `n` distinct random samples
//!   (seeded). Its positions `0..len()` split with [`Plan::chunks`].
//! * [`evaluate_range`] — evaluates one range of positions on all cores (std threads pulling small batches), with
//!   a progress callback and a cancellation flag, into a [`Partial`]: the best `top_n` combinations, the best
//!   value per cell of an optional two-parameter heatmap, and counts. [`merge`] combines partials (the result does
//!   not depend on how the plan was split or scheduled); [`finish`] checks that they cover the plan and turns them
//!   into an [`OptimizeResult`]. [`optimize`] does all three.
//! * [`Evaluator`] — what a combination is worth: [`Backtest`] runs strategy → engine → statistics; tests and
//!   other callers can pass a closure ([`FnEvaluator`]).
//!
//! # Ranking
//!
//! Combinations with fewer than [`OptimizeSettings::min_trades`] trades rank after all others; then by the
//! objective (higher first, or lower first for `max_drawdown`), `NaN` last; ties by combination index. The order is
//! total, so the top list is the same however the work was split.

mod space;
#[cfg(test)]
mod tests;
mod walk;
pub mod wire;

use std::cmp::Ordering;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};

use nusatrade_domain::instrument::Instrument;
use nusatrade_ml::candles::Columns;
use serde::{Deserialize, Serialize};

pub use space::{
    MAX_COMBINATIONS, MAX_CONSTRAINTS, MAX_NAME_CHARS, MAX_PARAMS, MAX_TOTAL_VALUES, ParamRange, ParamSpace, ParamSpec,
    SpaceSpec,
};
pub use walk::{
    BarWindow, MAX_WINDOWS, WalkForwardConfig, WalkForwardReport, WindowRanges, WindowReport, walk_forward, windows,
};

use crate::chart::{HeatmapData, MAX_HEATMAP_AXIS};
use crate::engine::{self, EngineConfig, EngineError};
use crate::rules::ExternalSeries;
use crate::stats::{self, Stats};
use crate::strategy::{CompiledStrategy, ParamValues, StrategyEvaluator};
use wire::{lenient, lossless_f64};

/// Most entries in a top list.
pub const MAX_TOP_N: usize = 1_000;

/// Why an optimisation was refused or stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimizeError {
    /// The space has no parameters.
    #[error("the parameter space is empty")]
    NoParams,
    /// More parameters than [`MAX_PARAMS`].
    #[error("{count} parameters; at most {max} can be optimised at once")]
    TooManyParams {
        /// Parameters given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A bad parameter name.
    #[error("parameter name {name:?}: {reason}")]
    ParamName {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A bad range or value list.
    #[error("parameter {name}: {reason}")]
    ParamRange {
        /// The parameter.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// More combinations than allowed (`combinations` is `None` when the count does not fit in 64 bits).
    #[error("grid has {} combinations, above the limit of {limit}", .combinations.map_or_else(|| "more than 18446744073709551615".to_string(), |c| c.to_string()))]
    GridTooLarge {
        /// The grid size.
        combinations: Option<u64>,
        /// The limit.
        limit: u64,
    },
    /// More values over all parameters than [`MAX_TOTAL_VALUES`].
    #[error("the parameters have more than {max} values in all")]
    TooManyValues {
        /// The limit.
        max: usize,
    },
    /// More constraints than [`MAX_CONSTRAINTS`].
    #[error("{count} constraints; at most {max} are accepted")]
    TooManyConstraints {
        /// Constraints given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A constraint that does not parse or uses something other than parameters and numbers.
    #[error("constraint {constraint:?}: {message}")]
    Constraint {
        /// The constraint.
        constraint: String,
        /// What is wrong.
        message: String,
    },
    /// A random search sample count out of range.
    #[error("{count} samples requested; between 1 and {max} are accepted")]
    Samples {
        /// Samples asked for.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A setting out of range.
    #[error("{0}")]
    Settings(String),
    /// A range of positions outside the plan.
    #[error("positions {start}..{end} are outside the plan of {len} combinations")]
    BadRange {
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// Plan length.
        len: u64,
    },
    /// Partial results that cannot be merged (different settings).
    #[error("partial results do not match: {0}")]
    Mismatch(String),
    /// The merged partials do not cover the plan.
    #[error("the results cover {covered} of {total} combinations")]
    Incomplete {
        /// Positions accounted for.
        covered: u64,
        /// The plan length.
        total: u64,
    },
    /// Every evaluated combination failed.
    #[error("every combination failed; combination {index}: {message}")]
    AllFailed {
        /// Index of the first failure.
        index: u64,
        /// Its error.
        message: String,
    },
    /// No combination satisfied the constraints (walk-forward needs one).
    #[error("no combination satisfies the constraints")]
    NoValidCombination,
    /// Stopped by the cancellation flag.
    #[error("cancelled")]
    Cancelled,
    /// The walk-forward windows do not fit the data.
    #[error("{0}")]
    WalkForward(String),
    /// The engine refused a walk-forward out-of-sample run.
    #[error("out-of-sample run: {0}")]
    Engine(#[from] EngineError),
}

/// What the optimizer ranks by (a field of [`Stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Net profit, account currency.
    NetProfit,
    /// Total return, %.
    ReturnPct,
    /// Sharpe ratio.
    #[default]
    SharpeRatio,
    /// Sortino ratio.
    SortinoRatio,
    /// Calmar ratio.
    CalmarRatio,
    /// Profit factor.
    ProfitFactor,
    /// System quality number.
    Sqn,
    /// Win rate, %.
    WinRatePct,
    /// Average P/L per trade, account currency.
    Expectancy,
    /// Maximum drawdown, % (its magnitude; minimised).
    MaxDrawdown,
}

impl Objective {
    /// Every objective.
    pub const ALL: [Objective; 10] = [
        Objective::NetProfit,
        Objective::ReturnPct,
        Objective::SharpeRatio,
        Objective::SortinoRatio,
        Objective::CalmarRatio,
        Objective::ProfitFactor,
        Objective::Sqn,
        Objective::WinRatePct,
        Objective::Expectancy,
        Objective::MaxDrawdown,
    ];

    /// The wire name (`sharpe_ratio`).
    pub fn name(self) -> &'static str {
        match self {
            Objective::NetProfit => "net_profit",
            Objective::ReturnPct => "return_pct",
            Objective::SharpeRatio => "sharpe_ratio",
            Objective::SortinoRatio => "sortino_ratio",
            Objective::CalmarRatio => "calmar_ratio",
            Objective::ProfitFactor => "profit_factor",
            Objective::Sqn => "sqn",
            Objective::WinRatePct => "win_rate_pct",
            Objective::Expectancy => "expectancy",
            Objective::MaxDrawdown => "max_drawdown",
        }
    }

    /// The objective with this wire name.
    pub fn from_name(name: &str) -> Option<Objective> {
        Objective::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Whether higher is better (every objective but `max_drawdown`).
    pub fn maximise(self) -> bool {
        self != Objective::MaxDrawdown
    }

    /// The objective's value in `stats` (`max_drawdown`: the drawdown's magnitude, a non-negative percent).
    pub fn value(self, stats: &Stats) -> f64 {
        match self {
            Objective::NetProfit => stats.net_profit,
            Objective::ReturnPct => stats.return_pct,
            Objective::SharpeRatio => stats.sharpe_ratio,
            Objective::SortinoRatio => stats.sortino_ratio,
            Objective::CalmarRatio => stats.calmar_ratio,
            Objective::ProfitFactor => stats.profit_factor,
            Objective::Sqn => stats.sqn,
            Objective::WinRatePct => stats.win_rate_pct,
            Objective::Expectancy => stats.expectancy,
            Objective::MaxDrawdown => stats.max_drawdown_pct.abs(),
        }
    }

    /// `value` oriented so that higher is better.
    fn score(self, value: f64) -> f64 {
        if self.maximise() { value } else { -value }
    }
}

/// The two parameters of a heatmap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeatmapAxes {
    /// Parameter along the horizontal axis.
    pub x: String,
    /// Parameter along the vertical axis.
    pub y: String,
}

/// How to rank and what to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizeSettings {
    /// What to rank by.
    pub objective: Objective,
    /// Combinations with fewer closed trades rank after all others (and are left out of the heatmap).
    pub min_trades: usize,
    /// How many of the best combinations to keep, 1 ..= [`MAX_TOP_N`].
    pub top_n: usize,
    /// Keep the best value per combination of these two parameters (over the others) for a heatmap.
    pub heatmap: Option<HeatmapAxes>,
}

impl Default for OptimizeSettings {
    /// Sharpe ratio, at least 1 trade, top 20, no heatmap.
    fn default() -> Self {
        OptimizeSettings { objective: Objective::SharpeRatio, min_trades: 1, top_n: 20, heatmap: None }
    }
}

/// What to evaluate: a grid or random samples of a space, as positions `0..len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    space: ParamSpace,
    /// Grid indices of a random search (ascending); `None`: the whole grid.
    samples: Option<Vec<u64>>,
    seed: Option<u64>,
}

impl Plan {
    /// Every combination of `space`; refused above [`MAX_COMBINATIONS`].
    pub fn grid(space: ParamSpace) -> Result<Plan, OptimizeError> {
        Plan::grid_with_limit(space, MAX_COMBINATIONS)
    }

    /// Every combination, refused above `limit` (itself capped at [`MAX_COMBINATIONS`]).
    pub fn grid_with_limit(space: ParamSpace, limit: u64) -> Result<Plan, OptimizeError> {
        let limit = limit.min(MAX_COMBINATIONS);
        if space.size() > limit {
            return Err(OptimizeError::GridTooLarge { combinations: Some(space.size()), limit });
        }
        Ok(Plan { space, samples: None, seed: None })
    }

    /// `n` distinct combinations drawn with `seed` (1 ..= [`MAX_COMBINATIONS`]); the whole grid, in order, when
    /// `n` is at least its size. The same space, `n` and seed always give the same plan.
    pub fn random(space: ParamSpace, n: u64, seed: u64) -> Result<Plan, OptimizeError> {
        if n == 0 || n > MAX_COMBINATIONS {
            return Err(OptimizeError::Samples { count: n, max: MAX_COMBINATIONS });
        }
        if n >= space.size() {
            return Ok(Plan { space, samples: None, seed: Some(seed) });
        }
        let samples = space.sample(n, seed);
        Ok(Plan { space, samples: Some(samples), seed: Some(seed) })
    }

    /// The space.
    pub fn space(&self) -> &ParamSpace {
        &self.space
    }

    /// The random-search seed, when this is one.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// Number of positions.
    pub fn len(&self) -> u64 {
        self.samples.as_ref().map_or(self.space.size(), |s| s.len() as u64)
    }

    /// Whether there is nothing to evaluate (never, for a valid space).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The grid index at `position` (`position < len()`).
    pub fn grid_index(&self, position: u64) -> Option<u64> {
        match &self.samples {
            None => (position < self.space.size()).then_some(position),
            Some(s) => usize::try_from(position).ok().and_then(|p| s.get(p).copied()),
        }
    }

    /// Consecutive ranges of at most `chunk_size` positions (at least 1) covering `0..len()` exactly once.
    pub fn chunks(&self, chunk_size: u64) -> Vec<Range<u64>> {
        let size = chunk_size.max(1);
        let len = self.len();
        let mut out = Vec::with_capacity(len.div_ceil(size) as usize);
        let mut start = 0;
        while start < len {
            let end = start.saturating_add(size).min(len);
            out.push(start..end);
            start = end;
        }
        out
    }
}

/// One evaluated combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Its grid index.
    pub index: u64,
    /// Its parameter values.
    pub params: ParamValues,
    /// The objective's value.
    #[serde(with = "lossless_f64")]
    pub objective: f64,
    /// Closed trades.
    pub trades: usize,
    /// At least [`OptimizeSettings::min_trades`] trades.
    pub qualified: bool,
    /// The run's statistics (read back with NaN where JSON has `null`).
    #[serde(deserialize_with = "lenient")]
    pub stats: Stats,
}

/// The ranking key of a combination.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct RankKey {
    qualified: bool,
    #[serde(with = "lossless_f64")]
    score: f64,
    index: u64,
}

impl RankKey {
    /// `Less` when `self` ranks before `other`.
    fn cmp(&self, other: &RankKey) -> Ordering {
        other
            .qualified
            .cmp(&self.qualified)
            .then_with(|| self.score.is_nan().cmp(&other.score.is_nan()))
            .then_with(|| other.score.total_cmp(&self.score))
            .then_with(|| self.index.cmp(&other.index))
    }
}

fn key_of(e: &Evaluation, objective: Objective) -> RankKey {
    RankKey { qualified: e.qualified, score: objective.score(e.objective), index: e.index }
}

/// The best combination seen for one heatmap cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeatmapCell {
    rank: RankKey,
    /// The objective's value.
    #[serde(with = "lossless_f64")]
    pub value: f64,
}

/// The heatmap part of a [`Partial`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeatmapCells {
    /// Position of the horizontal parameter in the space.
    pub x: usize,
    /// Position of the vertical parameter.
    pub y: usize,
    /// Columns (values of `x`).
    pub nx: usize,
    /// `cells[row * nx + column]`, row = value index of `y`.
    pub cells: Vec<Option<HeatmapCell>>,
}

/// A failed combination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Its grid index.
    pub index: u64,
    /// The error.
    pub message: String,
}

/// The result of evaluating some positions of a plan; [`merge`] combines them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// The ranking objective.
    pub objective: Objective,
    /// The minimum-trades filter.
    pub min_trades: usize,
    /// How many best entries are kept.
    pub top_n: usize,
    /// Combinations evaluated (successfully).
    pub evaluated: u64,
    /// Combinations skipped by a constraint.
    pub skipped: u64,
    /// Combinations whose evaluation failed.
    pub failed: u64,
    /// The failure with the lowest index.
    pub first_failure: Option<Failure>,
    /// The best `top_n`, best first.
    pub best: Vec<Evaluation>,
    /// Best value per heatmap cell.
    pub heatmap: Option<HeatmapCells>,
}

impl Partial {
    fn empty(setup: &Setup) -> Partial {
        Partial {
            objective: setup.objective,
            min_trades: setup.min_trades,
            top_n: setup.top_n,
            evaluated: 0,
            skipped: 0,
            failed: 0,
            first_failure: None,
            best: Vec::new(),
            heatmap: setup.heatmap.map(|(x, y, nx, ny)| HeatmapCells { x, y, nx, cells: vec![None; nx * ny] }),
        }
    }

    fn covered(&self) -> u64 {
        self.evaluated + self.skipped + self.failed
    }

    fn fail(&mut self, index: u64, message: String) {
        self.failed += 1;
        if self.first_failure.as_ref().is_none_or(|f| index < f.index) {
            self.first_failure = Some(Failure { index, message });
        }
    }

    fn record(&mut self, digits: &[usize], evaluation: Evaluation) {
        self.evaluated += 1;
        let key = key_of(&evaluation, self.objective);
        if let Some(h) = &mut self.heatmap {
            let cell = &mut h.cells[digits[h.y] * h.nx + digits[h.x]];
            if cell.is_none_or(|c| key.cmp(&c.rank) == Ordering::Less) {
                *cell = Some(HeatmapCell { rank: key, value: evaluation.objective });
            }
        }
        self.best.push(evaluation);
        if self.best.len() >= 2 * self.top_n {
            self.compact();
        }
    }

    /// Sorts the top list and cuts it to `top_n`.
    fn compact(&mut self) {
        let objective = self.objective;
        self.best.sort_by(|a, b| key_of(a, objective).cmp(&key_of(b, objective)));
        self.best.truncate(self.top_n);
    }
}

/// Validated settings against a plan.
#[derive(Debug, Clone, Copy)]
struct Setup {
    objective: Objective,
    min_trades: usize,
    top_n: usize,
    /// (x position, y position, x values, y values).
    heatmap: Option<(usize, usize, usize, usize)>,
}

fn setup(plan: &Plan, settings: &OptimizeSettings) -> Result<Setup, OptimizeError> {
    if settings.top_n == 0 || settings.top_n > MAX_TOP_N {
        return Err(OptimizeError::Settings(format!(
            "top_n must be between 1 and {MAX_TOP_N}, got {}",
            settings.top_n
        )));
    }
    let heatmap = match &settings.heatmap {
        None => None,
        Some(axes) => {
            let find = |name: &str| {
                plan.space().position(name).ok_or_else(|| {
                    OptimizeError::Settings(format!(
                        "heatmap parameter {name:?} is not one of the optimised parameters ({})",
                        plan.space().names().join(", ")
                    ))
                })
            };
            let (x, y) = (find(&axes.x)?, find(&axes.y)?);
            if x == y {
                return Err(OptimizeError::Settings("the heatmap needs two different parameters".into()));
            }
            let (nx, ny) = (plan.space().values(x).len(), plan.space().values(y).len());
            if nx > MAX_HEATMAP_AXIS || ny > MAX_HEATMAP_AXIS {
                return Err(OptimizeError::Settings(format!(
                    "a heatmap axis has at most {MAX_HEATMAP_AXIS} values; {} has {nx} and {} has {ny}",
                    axes.x, axes.y
                )));
            }
            Some((x, y, nx, ny))
        }
    };
    Ok(Setup { objective: settings.objective, min_trades: settings.min_trades, top_n: settings.top_n, heatmap })
}

/// What one combination is worth.
pub trait Evaluator: Sync {
    /// Per-worker reusable state (buffers, caches); each worker thread makes one.
    type Scratch;

    /// A fresh scratch state.
    fn scratch(&self) -> Self::Scratch;

    /// The statistics of a run with `params`, or why it could not run.
    fn evaluate(&self, scratch: &mut Self::Scratch, params: &ParamValues) -> Result<Stats, String>;
}

/// A closure as an [`Evaluator`].
pub struct FnEvaluator<F>(pub F);

impl<F> Evaluator for FnEvaluator<F>
where
    F: Fn(&ParamValues) -> Result<Stats, String> + Sync,
{
    type Scratch = ();

    fn scratch(&self) {}

    fn evaluate(&self, _: &mut (), params: &ParamValues) -> Result<Stats, String> {
        (self.0)(params)
    }
}

/// The real evaluation: the strategy's signals with the combination's parameters, the engine, the statistics.
/// Each worker keeps its own [`StrategyEvaluator`], so an indicator series (by resolved arguments) is computed
/// once per worker, not once per combination.
#[derive(Debug, Clone, Copy)]
pub struct Backtest<'a> {
    /// The bars.
    pub bars: &'a Columns,
    /// The strategy.
    pub strategy: &'a CompiledStrategy,
    /// External series the rules read (ML signals, volatility regimes), aligned with the bars; usually empty.
    pub external: &'a ExternalSeries,
    /// The instrument (contract size, pips, conversion), if known.
    pub instrument: Option<&'static Instrument>,
    /// Engine settings.
    pub config: &'a EngineConfig,
}

impl<'a> Evaluator for Backtest<'a> {
    /// The worker's strategy evaluator (indicator cache) and the bars-only statistics inputs, built once.
    type Scratch = (Result<StrategyEvaluator<'a>, String>, stats::Market);

    fn scratch(&self) -> Self::Scratch {
        (self.strategy.evaluator(self.bars, self.external).map_err(|e| e.to_string()), stats::Market::new(self.bars))
    }

    fn evaluate(&self, scratch: &mut Self::Scratch, params: &ParamValues) -> Result<Stats, String> {
        let (strategy, market) = scratch;
        let strategy = strategy.as_mut().map_err(|e| e.clone())?;
        let signals = strategy.signals(params).map_err(|e| e.to_string())?;
        let outcome = engine::run(self.bars, &signals, self.instrument, self.config).map_err(|e| e.to_string())?;
        Ok(stats::compute_with(&outcome, self.bars, self.config, market))
    }
}

/// Progress, cancellation and threads of a run.
#[derive(Clone, Copy, Default)]
pub struct Control<'a> {
    /// Called as `(done, total)` positions after each small batch, from worker threads.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// When set, workers stop after their current batch and the run returns [`OptimizeError::Cancelled`].
    pub cancel: Option<&'a AtomicBool>,
    /// Worker threads; 0 = the machine's available parallelism.
    pub threads: usize,
}

impl std::fmt::Debug for Control<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .field("threads", &self.threads)
            .finish()
    }
}

impl Control<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(AtomicOrdering::Relaxed))
    }

    fn threads(&self, work: u64) -> usize {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wanted = if self.threads == 0 { available } else { self.threads };
        wanted.clamp(1, 64).min(usize::try_from(work).unwrap_or(usize::MAX).max(1))
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("evaluation panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("evaluation panicked: {s}")
    } else {
        "evaluation panicked".into()
    }
}

/// Evaluates the positions `range` of `plan` on all cores (see [`Control`]) into a [`Partial`].
pub fn evaluate_range<E: Evaluator>(
    plan: &Plan,
    range: Range<u64>,
    evaluator: &E,
    settings: &OptimizeSettings,
    control: &Control<'_>,
) -> Result<Partial, OptimizeError> {
    let setup = setup(plan, settings)?;
    if range.start > range.end || range.end > plan.len() {
        return Err(OptimizeError::BadRange { start: range.start, end: range.end, len: plan.len() });
    }
    let total = range.end - range.start;
    let threads = control.threads(total);
    let batch = (total / (threads as u64 * 32)).clamp(1, 64);
    let next = AtomicU64::new(range.start);
    let done = AtomicU64::new(0);
    let space = plan.space();
    let n_params = space.names().len();

    let worker = || -> Partial {
        let mut part = Partial::empty(&setup);
        let mut scratch = evaluator.scratch();
        let mut digits = vec![0usize; n_params];
        let mut values = vec![0.0f64; n_params];
        loop {
            if control.cancelled() {
                break;
            }
            let start = next.fetch_add(batch, AtomicOrdering::Relaxed);
            if start >= range.end {
                break;
            }
            let end = start.saturating_add(batch).min(range.end);
            for position in start..end {
                let Some(index) = plan.grid_index(position) else { continue };
                if !space.digits_into(index, &mut digits) {
                    continue;
                }
                for (k, d) in digits.iter().enumerate() {
                    values[k] = space.values(k)[*d];
                }
                if !space.satisfies(&values) {
                    part.skipped += 1;
                    continue;
                }
                let params = space.param_values(&values);
                match catch_unwind(AssertUnwindSafe(|| evaluator.evaluate(&mut scratch, &params))) {
                    Ok(Ok(stats)) => {
                        let objective = setup.objective.value(&stats);
                        let trades = stats.trades;
                        let evaluation = Evaluation {
                            index,
                            params,
                            objective,
                            trades,
                            qualified: trades >= setup.min_trades,
                            stats,
                        };
                        part.record(&digits, evaluation);
                    }
                    Ok(Err(message)) => part.fail(index, message),
                    Err(payload) => part.fail(index, panic_message(payload.as_ref())),
                }
            }
            let finished = done.fetch_add(end - start, AtomicOrdering::Relaxed) + (end - start);
            if let Some(progress) = control.progress {
                progress(finished, total);
            }
        }
        part.compact();
        part
    };

    let parts: Vec<Partial> = if threads <= 1 {
        vec![worker()]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
            handles.into_iter().map(|h| h.join()).collect::<Result<Vec<_>, _>>()
        })
        .map_err(|payload| OptimizeError::Settings(panic_message(payload.as_ref())))?
    };
    if control.cancelled() {
        return Err(OptimizeError::Cancelled);
    }
    merge(parts)
}

/// Combines partial results of the same settings (any split, any order) into one.
pub fn merge(parts: impl IntoIterator<Item = Partial>) -> Result<Partial, OptimizeError> {
    let mut parts = parts.into_iter();
    let Some(mut acc) = parts.next() else {
        return Err(OptimizeError::Mismatch("nothing to merge".into()));
    };
    for p in parts {
        if p.objective != acc.objective || p.min_trades != acc.min_trades || p.top_n != acc.top_n {
            return Err(OptimizeError::Mismatch("objective, min_trades or top_n differ".into()));
        }
        match (&mut acc.heatmap, p.heatmap) {
            (None, None) => {}
            (Some(a), Some(b)) if a.x == b.x && a.y == b.y && a.nx == b.nx && a.cells.len() == b.cells.len() => {
                for (mine, theirs) in a.cells.iter_mut().zip(b.cells) {
                    if let Some(t) = theirs
                        && mine.is_none_or(|m| t.rank.cmp(&m.rank) == Ordering::Less)
                    {
                        *mine = Some(t);
                    }
                }
            }
            _ => return Err(OptimizeError::Mismatch("heatmap axes differ".into())),
        }
        acc.evaluated += p.evaluated;
        acc.skipped += p.skipped;
        acc.failed += p.failed;
        if let Some(f) = p.first_failure
            && acc.first_failure.as_ref().is_none_or(|a| f.index < a.index)
        {
            acc.first_failure = Some(f);
        }
        acc.best.extend(p.best);
        if acc.best.len() >= 2 * acc.top_n {
            acc.compact();
        }
    }
    acc.compact();
    Ok(acc)
}

/// The outcome of an optimisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizeResult {
    /// The ranking objective.
    pub objective: Objective,
    /// Combinations in the plan.
    pub total: u64,
    /// Evaluated.
    pub evaluated: u64,
    /// Skipped by a constraint.
    pub skipped: u64,
    /// Failed to evaluate.
    pub failed: u64,
    /// The first failure, by index.
    pub first_failure: Option<Failure>,
    /// The best combinations, best first.
    pub best: Vec<Evaluation>,
    /// The heatmap (best value per cell over the other parameters; `None` cells: nothing qualified there).
    pub heatmap: Option<HeatmapData>,
}

/// Checks that `partial` covers all of `plan` and builds the result (with the heatmap's axes and values).
pub fn finish(plan: &Plan, partial: Partial) -> Result<OptimizeResult, OptimizeError> {
    if partial.covered() != plan.len() {
        return Err(OptimizeError::Incomplete { covered: partial.covered(), total: plan.len() });
    }
    if partial.evaluated == 0
        && let Some(f) = &partial.first_failure
    {
        return Err(OptimizeError::AllFailed { index: f.index, message: f.message.clone() });
    }
    let space = plan.space();
    let heatmap = partial.heatmap.as_ref().map(|h| HeatmapData {
        x_label: space.names()[h.x].clone(),
        x_values: space.values(h.x).to_vec(),
        y_label: space.names()[h.y].clone(),
        y_values: space.values(h.y).to_vec(),
        values: h.cells.iter().map(|c| c.filter(|c| c.rank.qualified).map(|c| c.value)).collect(),
        value_label: partial.objective.name().to_string(),
        higher_is_better: partial.objective.maximise(),
    });
    Ok(OptimizeResult {
        objective: partial.objective,
        total: plan.len(),
        evaluated: partial.evaluated,
        skipped: partial.skipped,
        failed: partial.failed,
        first_failure: partial.first_failure,
        best: partial.best,
        heatmap,
    })
}

/// Evaluates the whole plan: [`evaluate_range`] over every position, then [`finish`].
pub fn optimize<E: Evaluator>(
    plan: &Plan,
    evaluator: &E,
    settings: &OptimizeSettings,
    control: &Control<'_>,
) -> Result<OptimizeResult, OptimizeError> {
    let partial = evaluate_range(plan, 0..plan.len(), evaluator, settings, control)?;
    finish(plan, partial)
}
