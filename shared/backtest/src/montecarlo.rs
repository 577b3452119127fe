//! Monte Carlo analysis of a run's closed trades: how much of the result is the luck of the trade order, and how
//! much could a similar sequence of trades have gone differently.
//!
//! Two resampling methods ([`Method`]):
//!
//! * **Reshuffle** — the same trades in a random order. The final equity is the same in every simulation (up to
//!   float rounding); the drawdowns differ, which shows how lucky the realised order was.
//! * **Bootstrap** — as many trades as the run had, drawn with replacement: both the final equity and the drawdowns
//!   vary.
//!
//! Trades combine in one of two ways ([`Compounding`]): their P/L in account currency added up, or each trade's
//! P/L as a fraction of the equity before it in the realised order, compounded (a fixed-fractional sizing view).
//!
//! Every simulation is drawn from [`SplitMix64`] seeded with [`MonteCarloConfig::seed`]: the same input and seed
//! always give the same report. Work is bounded: at most [`MAX_SIMULATIONS`] simulations, [`MAX_TRADES`] trades and
//! [`MAX_WORK`] simulated trades in all.

use nusatrade_ml::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::engine::Trade;

/// Most simulations in one analysis.
pub const MAX_SIMULATIONS: usize = 10_000;
/// Most trades in the input.
pub const MAX_TRADES: usize = 100_000;
/// Most simulated trades in all (simulations × trades).
pub const MAX_WORK: u64 = 50_000_000;
/// Most points per percentile band (the path is sampled at evenly spaced trade indices beyond that).
pub const MAX_BAND_POINTS: usize = 1_000;

/// How the simulations are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The same trades in a random order (a permutation per simulation).
    #[default]
    Reshuffle,
    /// As many trades as the input, drawn with replacement.
    Bootstrap,
}

/// How trades add up to an equity path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compounding {
    /// Equity = initial cash + the sum of the trades' P/L (account currency).
    #[default]
    Additive,
    /// Each trade's P/L is taken as a fraction of the equity before it in the realised order, and those returns
    /// are compounded: equity = initial cash × Π (1 + r).
    Compounded,
}

/// Settings of an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonteCarloConfig {
    /// Number of simulations, 1 ..= [`MAX_SIMULATIONS`].
    pub simulations: usize,
    /// Reshuffle or bootstrap.
    pub method: Method,
    /// Additive P/L or compounded returns.
    pub compounding: Compounding,
    /// Seed of the generator.
    pub seed: u64,
    /// Ruin level as a fraction of the initial cash, in [0, 1): a simulation whose equity touches
    /// `initial_cash × ruin_fraction` or less at any point counts as ruined (0.5: a 50 % loss of the start).
    pub ruin_fraction: f64,
    /// Level of the central intervals reported with each distribution, in (0, 1) (0.95: the 2.5th to the 97.5th
    /// percentile).
    pub confidence: f64,
    /// Points per percentile band, 2 ..= [`MAX_BAND_POINTS`].
    pub band_points: usize,
}

impl Default for MonteCarloConfig {
    /// 1,000 reshuffles of additive P/L, seed 0, ruin at half the initial cash, 95 % intervals, 200 band points.
    fn default() -> Self {
        MonteCarloConfig {
            simulations: 1_000,
            method: Method::Reshuffle,
            compounding: Compounding::Additive,
            seed: 0,
            ruin_fraction: 0.5,
            confidence: 0.95,
            band_points: 200,
        }
    }
}

/// Why an analysis was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MonteCarloError {
    /// No trades to resample.
    #[error("no closed trades to resample")]
    NoTrades,
    /// More trades than [`MAX_TRADES`].
    #[error("{count} trades, at most {max} are accepted")]
    TooManyTrades {
        /// Trades given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The simulation count is out of range.
    #[error("{count} simulations requested; between 1 and {max} are accepted")]
    Simulations {
        /// Simulations asked for.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Simulations × trades above [`MAX_WORK`].
    #[error("{simulations} simulations of {trades} trades is {work} simulated trades, above the limit of {max}")]
    TooMuchWork {
        /// Simulations asked for.
        simulations: usize,
        /// Trades given.
        trades: usize,
        /// Their product.
        work: u64,
        /// The limit.
        max: u64,
    },
    /// A trade's P/L is NaN or infinite.
    #[error("trade {index} has a P/L that is not a finite number")]
    NonFinite {
        /// Position of the trade in the input.
        index: usize,
    },
    /// Initial cash not finite and positive.
    #[error("the initial cash must be a finite positive amount")]
    InitialCash,
    /// In compounded mode, the realised equity before a trade was not positive (no return can be taken).
    #[error("trade {index}: the equity before it is not positive, so its return cannot be compounded")]
    NonPositiveEquity {
        /// Position of the trade.
        index: usize,
    },
    /// Another setting is out of range.
    #[error("{0}")]
    InvalidConfig(String),
    /// A simulated equity path left the range of floating-point numbers (extreme compounded returns).
    #[error("a simulated equity path overflowed")]
    Overflow,
}

/// Summary of a sample of values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation (population, ddof = 0).
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// Percentiles (linear interpolation between order statistics, numpy's default).
    pub p5: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
    /// Largest value.
    pub max: f64,
    /// Central interval at [`MonteCarloConfig::confidence`]: the (1 − c)/2 and (1 + c)/2 percentiles.
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Percentile bands of the equity path: at each of `trade_index` (0 = before the first trade), the 5th, 50th and
/// 95th percentile of the simulated equity, with the realised path for comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Bands {
    /// Trade counts at which the paths are sampled (ascending, starting at 0, ending at the trade count).
    pub trade_index: Vec<usize>,
    /// 5th percentile of equity.
    pub p5: Vec<f64>,
    /// Median equity.
    pub p50: Vec<f64>,
    /// 95th percentile of equity.
    pub p95: Vec<f64>,
    /// The realised equity path at the same points.
    pub actual: Vec<f64>,
}

/// The result of an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonteCarloReport {
    /// Simulations run.
    pub simulations: usize,
    /// Trades per simulation.
    pub trades: usize,
    /// Starting equity.
    pub initial_cash: f64,
    /// Final equity of the realised sequence.
    pub actual_final_equity: f64,
    /// Maximum drawdown (%) of the realised sequence (a positive number: 12.5 = 12.5 %).
    pub actual_max_drawdown_pct: f64,
    /// Distribution of the final equity.
    pub final_equity: Distribution,
    /// Distribution of the maximum drawdown in percent of the running peak (positive numbers).
    pub max_drawdown_pct: Distribution,
    /// Share of simulations ending below the initial cash, 0 … 1.
    pub probability_of_loss: f64,
    /// Share of simulations whose equity touched the ruin level at any point, 0 … 1.
    pub probability_of_ruin: f64,
    /// The ruin level, account currency.
    pub ruin_equity: f64,
    /// Equity percentile bands for a chart.
    pub bands: Bands,
}

/// The P/L of each trade, account currency, in exit order (what [`run`] takes).
pub fn trade_pnls(trades: &[Trade]) -> Vec<f64> {
    trades.iter().map(|t| t.pnl).collect()
}

/// Runs the analysis over `pnls` (each closed trade's P/L, account currency, in exit order) from `initial_cash`.
pub fn run(pnls: &[f64], initial_cash: f64, config: &MonteCarloConfig) -> Result<MonteCarloReport, MonteCarloError> {
    validate(pnls, initial_cash, config)?;
    let n = pnls.len();
    // Per-trade steps in the chosen combination rule.
    let steps: Vec<f64> = match config.compounding {
        Compounding::Additive => pnls.to_vec(),
        Compounding::Compounded => {
            let mut equity = initial_cash;
            let mut returns = Vec::with_capacity(n);
            for (index, &pnl) in pnls.iter().enumerate() {
                if equity <= 0.0 {
                    return Err(MonteCarloError::NonPositiveEquity { index });
                }
                returns.push(pnl / equity);
                equity += pnl;
            }
            returns
        }
    };
    let ruin_equity = initial_cash * config.ruin_fraction;
    let checkpoints = checkpoints(n, config.band_points);

    let mut actual_path = vec![0.0; checkpoints.len()];
    let actual = simulate_path(&steps, initial_cash, config.compounding, ruin_equity, &checkpoints, &mut actual_path);
    if !actual.final_equity.is_finite() {
        return Err(MonteCarloError::Overflow);
    }

    let sims = config.simulations;
    let mut rng = SplitMix64(config.seed);
    let mut finals = Vec::with_capacity(sims);
    let mut drawdowns = Vec::with_capacity(sims);
    let mut losses = 0usize;
    let mut ruins = 0usize;
    // paths[c * sims + s]: equity of simulation s at checkpoint c (column-major, so each band sorts a slice).
    let mut paths = vec![0.0; checkpoints.len() * sims];
    let mut order: Vec<f64> = steps.clone();
    let mut path = vec![0.0; checkpoints.len()];
    for s in 0..sims {
        match config.method {
            Method::Reshuffle => {
                // Fisher–Yates over the previous permutation (still uniform).
                for i in (1..n).rev() {
                    let j = below(&mut rng, i + 1);
                    order.swap(i, j);
                }
            }
            Method::Bootstrap => {
                for slot in order.iter_mut() {
                    *slot = steps[below(&mut rng, n)];
                }
            }
        }
        let sim = simulate_path(&order, initial_cash, config.compounding, ruin_equity, &checkpoints, &mut path);
        if !(sim.final_equity.is_finite() && sim.max_drawdown_pct.is_finite()) || path.iter().any(|v| !v.is_finite()) {
            return Err(MonteCarloError::Overflow);
        }
        finals.push(sim.final_equity);
        drawdowns.push(sim.max_drawdown_pct);
        losses += usize::from(sim.final_equity < initial_cash);
        ruins += usize::from(sim.ruined);
        for (c, &v) in path.iter().enumerate() {
            paths[c * sims + s] = v;
        }
    }

    let mut bands = Bands {
        trade_index: checkpoints.clone(),
        p5: Vec::with_capacity(checkpoints.len()),
        p50: Vec::with_capacity(checkpoints.len()),
        p95: Vec::with_capacity(checkpoints.len()),
        actual: actual_path,
    };
    for column in paths.chunks_mut(sims) {
        column.sort_by(f64::total_cmp);
        bands.p5.push(percentile_sorted(column, 5.0));
        bands.p50.push(percentile_sorted(column, 50.0));
        bands.p95.push(percentile_sorted(column, 95.0));
    }

    Ok(MonteCarloReport {
        simulations: sims,
        trades: n,
        initial_cash,
        actual_final_equity: actual.final_equity,
        actual_max_drawdown_pct: actual.max_drawdown_pct,
        final_equity: distribution(&mut finals, config.confidence),
        max_drawdown_pct: distribution(&mut drawdowns, config.confidence),
        probability_of_loss: losses as f64 / sims as f64,
        probability_of_ruin: ruins as f64 / sims as f64,
        ruin_equity,
        bands,
    })
}

fn validate(pnls: &[f64], initial_cash: f64, config: &MonteCarloConfig) -> Result<(), MonteCarloError> {
    if pnls.is_empty() {
        return Err(MonteCarloError::NoTrades);
    }
    if pnls.len() > MAX_TRADES {
        return Err(MonteCarloError::TooManyTrades { count: pnls.len(), max: MAX_TRADES });
    }
    if config.simulations == 0 || config.simulations > MAX_SIMULATIONS {
        return Err(MonteCarloError::Simulations { count: config.simulations, max: MAX_SIMULATIONS });
    }
    let work = config.simulations as u64 * pnls.len() as u64;
    if work > MAX_WORK {
        return Err(MonteCarloError::TooMuchWork {
            simulations: config.simulations,
            trades: pnls.len(),
            work,
            max: MAX_WORK,
        });
    }
    if let Some(index) = pnls.iter().position(|p| !p.is_finite()) {
        return Err(MonteCarloError::NonFinite { index });
    }
    if !(initial_cash.is_finite() && initial_cash > 0.0) {
        return Err(MonteCarloError::InitialCash);
    }
    if !(config.ruin_fraction.is_finite() && (0.0..1.0).contains(&config.ruin_fraction)) {
        return Err(MonteCarloError::InvalidConfig(format!(
            "the ruin fraction must be in [0, 1), got {}",
            config.ruin_fraction
        )));
    }
    if !(config.confidence.is_finite() && config.confidence > 0.0 && config.confidence < 1.0) {
        return Err(MonteCarloError::InvalidConfig(format!(
            "the confidence level must be in (0, 1), got {}",
            config.confidence
        )));
    }
    if !(2..=MAX_BAND_POINTS).contains(&config.band_points) {
        return Err(MonteCarloError::InvalidConfig(format!(
            "band points must be between 2 and {MAX_BAND_POINTS}, got {}",
            config.band_points
        )));
    }
    Ok(())
}

/// A uniform integer in `0..n` (`n ≥ 1`): Lemire's multiply-shift (bias below 2⁻⁴⁰ for any `n` here).
fn below(rng: &mut SplitMix64, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// The trade counts at which the paths are sampled: every one when they fit, else `points` evenly spaced ones
/// (always 0 and `n`).
fn checkpoints(n: usize, points: usize) -> Vec<usize> {
    if n < points {
        return (0..=n).collect();
    }
    let mut out: Vec<usize> = (0..points).map(|k| (k as u128 * n as u128 / (points as u128 - 1)) as usize).collect();
    out.dedup();
    out
}

struct PathSummary {
    final_equity: f64,
    max_drawdown_pct: f64,
    ruined: bool,
}

/// Walks one sequence of steps, writing the equity at each checkpoint into `path`.
fn simulate_path(
    steps: &[f64],
    initial_cash: f64,
    compounding: Compounding,
    ruin_equity: f64,
    checkpoints: &[usize],
    path: &mut [f64],
) -> PathSummary {
    let mut equity = initial_cash;
    let mut peak = initial_cash;
    let mut max_dd = 0.0f64;
    let mut ruined = equity <= ruin_equity;
    let mut next = 0usize;
    if checkpoints.first() == Some(&0) {
        path[0] = equity;
        next = 1;
    }
    for (k, &step) in steps.iter().enumerate() {
        equity = match compounding {
            Compounding::Additive => equity + step,
            Compounding::Compounded => equity * (1.0 + step),
        };
        if equity > peak {
            peak = equity;
        }
        // peak ≥ initial cash > 0.
        let dd = (peak - equity) / peak;
        if dd > max_dd {
            max_dd = dd;
        }
        ruined |= equity <= ruin_equity;
        if checkpoints.get(next) == Some(&(k + 1)) {
            path[next] = equity;
            next += 1;
        }
    }
    PathSummary { final_equity: equity, max_drawdown_pct: max_dd * 100.0, ruined }
}

/// The `q`-th percentile (0 ..= 100) of ascending `sorted` (non-empty), linear interpolation.
fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len() - 1;
    let rank = q / 100.0 * last as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    let (a, b) = (sorted[lo.min(last)], sorted[hi.min(last)]);
    if frac == 0.0 || a == b { a } else { a + (b - a) * frac }
}

/// Summary of `values` (non-empty, finite); sorts them.
fn distribution(values: &mut [f64], confidence: f64) -> Distribution {
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let (min, max) = (values[0], values[values.len() - 1]);
    // Clamped: the rounded sum of n equal values divided by n can land an ulp outside them.
    let mean = (values.iter().sum::<f64>() / n).clamp(min, max);
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let tail = (1.0 - confidence) / 2.0 * 100.0;
    Distribution {
        mean,
        std: var.sqrt(),
        min,
        p5: percentile_sorted(values, 5.0),
        p25: percentile_sorted(values, 25.0),
        p50: percentile_sorted(values, 50.0),
        p75: percentile_sorted(values, 75.0),
        p95: percentile_sorted(values, 95.0),
        max,
        ci_low: percentile_sorted(values, tail),
        ci_high: percentile_sorted(values, 100.0 - tail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_pnls() -> Vec<f64> {
        vec![120.0, -80.0, 45.5, -200.0, 310.0, -15.0, 60.0, -90.0, 25.0, 140.0, -60.0, 10.0]
    }

    fn cfg(method: Method, sims: usize, seed: u64) -> MonteCarloConfig {
        MonteCarloConfig { simulations: sims, method, seed, ..MonteCarloConfig::default() }
    }

    fn ordered(d: &Distribution) -> bool {
        d.min <= d.p5
            && d.p5 <= d.p25
            && d.p25 <= d.p50
            && d.p50 <= d.p75
            && d.p75 <= d.p95
            && d.p95 <= d.max
            && d.ci_low <= d.p50
            && d.p50 <= d.ci_high
            && d.min <= d.mean
            && d.mean <= d.max
    }

    #[test]
    fn reshuffle_keeps_final_equity_and_varies_drawdown() {
        let pnls = sample_pnls();
        let r = run(&pnls, 10_000.0, &cfg(Method::Reshuffle, 500, 7)).unwrap();
        let expected = 10_000.0 + pnls.iter().sum::<f64>();
        assert!((r.actual_final_equity - expected).abs() < 1e-9);
        assert!((r.final_equity.min - expected).abs() < 1e-9 && (r.final_equity.max - expected).abs() < 1e-9);
        assert!(r.final_equity.std < 1e-9);
        assert!(r.max_drawdown_pct.max > r.max_drawdown_pct.min, "drawdowns should differ between orders");
        assert_eq!(r.probability_of_loss, 0.0);
    }

    #[test]
    fn compounded_reshuffle_keeps_final_equity() {
        let pnls = sample_pnls();
        let mut c = cfg(Method::Reshuffle, 300, 3);
        c.compounding = Compounding::Compounded;
        let r = run(&pnls, 1_000.0, &c).unwrap();
        let expected = 1_000.0 + pnls.iter().sum::<f64>();
        assert!((r.actual_final_equity - expected).abs() < 1e-9);
        assert!((r.final_equity.max - r.final_equity.min).abs() < 1e-6);
        assert!((r.final_equity.mean - expected).abs() < 1e-6);
    }

    #[test]
    fn actual_drawdown_matches_hand_computation() {
        // 100 → 150 → 90 → 120: peak 150, trough 90 → 40 %.
        let r = run(&[50.0, -60.0, 30.0], 100.0, &cfg(Method::Reshuffle, 10, 1)).unwrap();
        assert!((r.actual_max_drawdown_pct - 40.0).abs() < 1e-12);
        assert_eq!(r.bands.trade_index, vec![0, 1, 2, 3]);
        assert_eq!(r.bands.actual, vec![100.0, 150.0, 90.0, 120.0]);
    }

    #[test]
    fn bootstrap_varies_final_equity_and_is_ordered() {
        let r = run(&sample_pnls(), 10_000.0, &cfg(Method::Bootstrap, 2_000, 11)).unwrap();
        assert!(r.final_equity.std > 0.0);
        assert!(ordered(&r.final_equity));
        assert!(ordered(&r.max_drawdown_pct));
        assert!(r.probability_of_loss > 0.0 && r.probability_of_loss < 1.0);
        // The bootstrap mean is close to the realised final equity (the sample mean P/L × n).
        let expected = 10_000.0 + sample_pnls().iter().sum::<f64>();
        assert!((r.final_equity.mean - expected).abs() < 100.0, "{} vs {expected}", r.final_equity.mean);
    }

    #[test]
    fn deterministic_by_seed() {
        let a = run(&sample_pnls(), 5_000.0, &cfg(Method::Bootstrap, 400, 42)).unwrap();
        let b = run(&sample_pnls(), 5_000.0, &cfg(Method::Bootstrap, 400, 42)).unwrap();
        let c = run(&sample_pnls(), 5_000.0, &cfg(Method::Bootstrap, 400, 43)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.final_equity, c.final_equity);
    }

    #[test]
    fn ruin_and_loss_probabilities() {
        // Every trade loses: every simulation ends at a loss; 4 × −150 from 1,000 reaches 400 ≤ 500 (ruin).
        let r = run(&[-150.0; 4], 1_000.0, &cfg(Method::Bootstrap, 50, 5)).unwrap();
        assert_eq!(r.probability_of_loss, 1.0);
        assert_eq!(r.probability_of_ruin, 1.0);
        assert_eq!(r.ruin_equity, 500.0);
        // Three losses reach 550 only: no ruin.
        let r = run(&[-150.0; 3], 1_000.0, &cfg(Method::Reshuffle, 50, 5)).unwrap();
        assert_eq!(r.probability_of_ruin, 0.0);
    }

    #[test]
    fn bands_are_ordered_and_sampled() {
        let pnls: Vec<f64> = (0..1_000).map(|i| if i % 3 == 0 { -40.0 } else { 25.0 + (i % 7) as f64 }).collect();
        let mut c = cfg(Method::Bootstrap, 300, 9);
        c.band_points = 101;
        let r = run(&pnls, 10_000.0, &c).unwrap();
        let b = &r.bands;
        assert_eq!(b.trade_index.len(), 101);
        assert_eq!(b.trade_index.first(), Some(&0));
        assert_eq!(b.trade_index.last(), Some(&1_000));
        assert!(b.trade_index.windows(2).all(|w| w[0] < w[1]));
        assert!(b.p5.iter().zip(&b.p50).zip(&b.p95).all(|((a, m), z)| a <= m && m <= z));
        assert_eq!(b.p5[0], 10_000.0);
        assert_eq!(b.p95[0], 10_000.0);
        assert!((b.actual[100] - r.actual_final_equity).abs() < 1e-9);
    }

    #[test]
    fn refuses_bad_input() {
        let c = MonteCarloConfig::default();
        assert_eq!(run(&[], 1_000.0, &c), Err(MonteCarloError::NoTrades));
        assert_eq!(run(&[1.0, f64::NAN], 1_000.0, &c), Err(MonteCarloError::NonFinite { index: 1 }));
        assert_eq!(run(&[1.0, f64::INFINITY], 1_000.0, &c), Err(MonteCarloError::NonFinite { index: 1 }));
        assert_eq!(run(&[1.0], 0.0, &c), Err(MonteCarloError::InitialCash));
        assert_eq!(run(&[1.0], f64::NAN, &c), Err(MonteCarloError::InitialCash));
        let zero = cfg(Method::Reshuffle, 0, 0);
        assert!(matches!(run(&[1.0], 1_000.0, &zero), Err(MonteCarloError::Simulations { count: 0, .. })));
        let many = cfg(Method::Reshuffle, MAX_SIMULATIONS + 1, 0);
        assert!(matches!(run(&[1.0], 1_000.0, &many), Err(MonteCarloError::Simulations { .. })));
        let big = vec![1.0; MAX_TRADES + 1];
        assert!(matches!(run(&big, 1_000.0, &c), Err(MonteCarloError::TooManyTrades { .. })));
        let work = vec![1.0; 10_000];
        let msg = run(&work, 1_000.0, &cfg(Method::Reshuffle, MAX_SIMULATIONS, 0)).unwrap_err().to_string();
        assert!(msg.contains("above the limit"), "{msg}");
        let mut bad = c.clone();
        bad.ruin_fraction = 1.0;
        assert!(matches!(run(&[1.0], 1_000.0, &bad), Err(MonteCarloError::InvalidConfig(_))));
        let mut bad = c.clone();
        bad.confidence = 1.0;
        assert!(matches!(run(&[1.0], 1_000.0, &bad), Err(MonteCarloError::InvalidConfig(_))));
        let mut bad = c;
        bad.band_points = 1;
        assert!(matches!(run(&[1.0], 1_000.0, &bad), Err(MonteCarloError::InvalidConfig(_))));
        let mut comp = cfg(Method::Reshuffle, 10, 0);
        comp.compounding = Compounding::Compounded;
        assert_eq!(run(&[-1_000.0, 5.0], 1_000.0, &comp), Err(MonteCarloError::NonPositiveEquity { index: 1 }));
    }

    #[test]
    fn overflow_is_an_error() {
        // The first trade multiplies the equity by ~1e300 in compounded mode: drawing it twice overflows (a
        // simulation of 3 draws does so with probability 0.26; 100 simulations all miss with ~1e-13).
        let mut c = cfg(Method::Bootstrap, 100, 0);
        c.compounding = Compounding::Compounded;
        assert_eq!(run(&[1e303, 1e303, 1e303], 1_000.0, &c), Err(MonteCarloError::Overflow));
        let big = vec![f64::MAX / 2.0; 4];
        assert_eq!(run(&big, 1_000.0, &cfg(Method::Reshuffle, 10, 0)), Err(MonteCarloError::Overflow));
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&v, 0.0), 1.0);
        assert_eq!(percentile_sorted(&v, 100.0), 4.0);
        assert!((percentile_sorted(&v, 50.0) - 2.5).abs() < 1e-12);
        // numpy.percentile([1,2,3,4], 5) = 1.15
        assert!((percentile_sorted(&v, 5.0) - 1.15).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[7.0], 95.0), 7.0);
    }

    proptest! {
        #[test]
        fn prop_invariants(
            pnls in proptest::collection::vec(-500.0f64..500.0, 1..60),
            seed in any::<u64>(),
            bootstrap in any::<bool>(),
        ) {
            let method = if bootstrap { Method::Bootstrap } else { Method::Reshuffle };
            let r = run(&pnls, 10_000.0, &cfg(method, 64, seed)).unwrap();
            prop_assert!(ordered(&r.final_equity));
            prop_assert!(ordered(&r.max_drawdown_pct));
            prop_assert!(r.max_drawdown_pct.min >= 0.0);
            prop_assert!((0.0..=1.0).contains(&r.probability_of_loss));
            prop_assert!(r.probability_of_ruin <= 1.0);
            if !bootstrap {
                let expected = 10_000.0 + pnls.iter().sum::<f64>();
                prop_assert!((r.final_equity.max - expected).abs() < 1e-6);
                prop_assert!((r.final_equity.min - expected).abs() < 1e-6);
            }
            prop_assert_eq!(r.bands.trade_index.len(), r.bands.p50.len());
        }
    }
}
