//! Statistics of a run, with backtesting.py 0.6.6's definitions (`backtesting/_stats.py`, `compute_stats`) where
//! it has the statistic, checked against it to 1e-9 on the EURUSD sample (`tests/backtesting_py.rs`).
//! Percentages are in percent (12.5 = 12.5 %), as backtesting.py prints them; durations in seconds.
//!
//! Definitions (equity = the per-bar equity at each close, trades = the listed trades):
//! * **Return** `(equity[-1] − equity[0]) / equity[0]`; **Buy & Hold** from the close of the strategy's warm-up
//!   bar ([`Outcome::warmup`], backtesting.py's first trading bar) to the last close.
//! * **Annualised figures** come from the equity resampled to calendar days (weeks, months or years when the bars
//!   are that long — pandas `resample(...).last()`, empty periods dropped) and its percentage changes `r`:
//!   `g` = the geometric mean of `r`; **Return (Ann.)** `(1 + g)^D − 1` with `D` = 252 trading days (365 when more
//!   than 60 % of the weekend share of days has bars; 52 / 12 / 1 for weekly / monthly / yearly bars);
//!   **Volatility (Ann.)** `sqrt((var(r) + (1 + g)²)^D − (1 + g)^(2D))`; **Sharpe** = Return (Ann.) / Volatility
//!   (Ann.); **Sortino** `((1 + g)^D − 1) / (sqrt(mean(min(r, 0)²)) × sqrt(D))`; **Calmar** = annualised return /
//!   max drawdown; **CAGR** `(equity[-1] / equity[0])^(1 / years) − 1` with years = duration / 365.25 days.
//! * **Alpha / Beta**: beta = cov(equity log returns, close log returns) / var(close log returns) per bar;
//!   alpha = Return − beta × Buy & Hold.
//! * **Drawdown** `1 − equity / running max`; **Max. Drawdown** and **Avg. Drawdown** are **negative**
//!   percentages, as backtesting.py prints them (the average over drawdown episodes: stretches between two bars at
//!   a new peak, or up to the last bar, of at least one bar, each counted with its deepest point); their
//!   durations (peak to recovery) are rounded **up** to the data's resolution (the hour for hourly bars), as are
//!   trade durations.
//! * **Win Rate** share of trades with P/L > 0; **Best/Worst Trade** the extreme `return_pct`; **Avg. Trade** the
//!   geometric mean of the trade returns; **Profit Factor** `Σ positive returns / |Σ negative returns|` (of the
//!   returns, not the money); **Expectancy [%]** the mean return; **SQN** `sqrt(trades) × mean(P/L) /
//!   std(P/L)`; **Kelly** `win rate − (1 − win rate) / (mean win / mean loss)`; **Exposure Time** the share of
//!   bars between the entry and exit bar (inclusive) of a listed trade.
//! * Sums and means use numpy's pairwise summation order; NaN where backtesting.py gives NaN (e.g. win rate
//!   without trades; `serde_json` writes NaN as `null`); durations it cannot define are 0.
//!
//! Speed: [`compute`] derives the bars' own figures (times, resampling, the close's log returns) on every call;
//! a caller running many backtests over the same bars builds a [`Market`] once and calls [`compute_with`].
//! Log returns near 1 use a series of `ln(1 + x)` (the same to an ulp or two, a few times faster than `ln`).
//!
//! Added (not in backtesting.py): `net_profit` = final equity − initial cash; `commissions` (its "Commissions
//! [$]"); `winning_trades` / `losing_trades` (P/L > 0 / < 0); `expectancy` = mean P/L per trade; `avg_win`,
//! `avg_loss` (a positive number) — NaN without such trades.

mod numpy;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Datelike, Utc};
use nusatrade_ml::candles::Columns;
use serde::{Deserialize, Serialize};

use crate::engine::{EngineConfig, Outcome};

/// The statistics table (backtesting.py's definitions where it has the statistic; see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Stats {
    /// First bar's time.
    pub start: Option<DateTime<Utc>>,
    /// Last bar's time.
    pub end: Option<DateTime<Utc>>,
    /// `end − start`, seconds.
    pub duration_secs: i64,
    /// Share of bars inside a listed trade, percent.
    pub exposure_time_pct: f64,
    /// Equity at the last close.
    pub equity_final: f64,
    /// Highest equity at a close.
    pub equity_peak: f64,
    /// Commissions of the listed trades.
    pub commissions: f64,
    /// Final equity − initial cash.
    pub net_profit: f64,
    /// Return over the run, percent.
    pub return_pct: f64,
    /// Buy & hold from the warm-up bar's close to the last close, percent.
    pub buy_hold_return_pct: f64,
    /// Annualised (compounded) return, percent.
    pub return_ann_pct: f64,
    /// Annualised volatility, percent.
    pub volatility_ann_pct: f64,
    /// Compound annual growth rate, percent.
    pub cagr_pct: f64,
    /// Return (Ann.) / Volatility (Ann.).
    pub sharpe_ratio: f64,
    /// Annualised return / annualised downside deviation.
    pub sortino_ratio: f64,
    /// Annualised return / max drawdown.
    pub calmar_ratio: f64,
    /// Jensen's alpha against buy & hold, percent.
    pub alpha_pct: f64,
    /// Beta of the equity's bar returns against the close's.
    pub beta: f64,
    /// Deepest drawdown, percent, **negative** (−12.5 = 12.5 % below the peak), as backtesting.py prints it.
    pub max_drawdown_pct: f64,
    /// Mean of the drawdown episodes' depths, percent, negative.
    pub avg_drawdown_pct: f64,
    /// Longest drawdown episode, seconds (rounded up to the data's resolution).
    pub max_drawdown_duration_secs: i64,
    /// Mean drawdown episode, seconds (rounded up to the data's resolution).
    pub avg_drawdown_duration_secs: i64,
    /// Listed (closed) trades.
    pub trades: usize,
    /// Trades with P/L > 0.
    pub winning_trades: usize,
    /// Trades with P/L < 0.
    pub losing_trades: usize,
    /// Winning trades / trades, percent.
    pub win_rate_pct: f64,
    /// Best trade return, percent.
    pub best_trade_pct: f64,
    /// Worst trade return, percent.
    pub worst_trade_pct: f64,
    /// Geometric mean trade return, percent.
    pub avg_trade_pct: f64,
    /// Longest trade, seconds (rounded up to the data's resolution).
    pub max_trade_duration_secs: i64,
    /// Mean trade duration, seconds (rounded up to the data's resolution).
    pub avg_trade_duration_secs: i64,
    /// Σ positive trade returns / |Σ negative trade returns|.
    pub profit_factor: f64,
    /// Mean trade return, percent.
    pub expectancy_pct: f64,
    /// Average P/L per trade, account currency.
    pub expectancy: f64,
    /// Average winning trade, account currency.
    pub avg_win: f64,
    /// Average losing trade, as a positive number.
    pub avg_loss: f64,
    /// System quality number.
    pub sqn: f64,
    /// Kelly criterion (a fraction).
    pub kelly_criterion: f64,
}

const NS: i128 = 1_000_000_000;
const DAY_NS: i128 = 86_400 * NS;

fn nanos(t: &DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * NS + i128::from(t.timestamp_subsec_nanos())
}

fn secs(ns: i128) -> i64 {
    i64::try_from(ns / NS).unwrap_or(i64::MAX)
}

/// backtesting.py's `_data_period`: the median spacing of the last 100 bars, nanoseconds (0 with one bar).
fn data_period(times: &[DateTime<Utc>]) -> i128 {
    let tail = &times[times.len().saturating_sub(100)..];
    let mut diffs: Vec<i128> = tail.windows(2).map(|w| nanos(&w[1]) - nanos(&w[0])).collect();
    if diffs.is_empty() {
        return 0;
    }
    diffs.sort_unstable();
    let m = diffs.len() / 2;
    if diffs.len() % 2 == 1 { diffs[m] } else { (diffs[m - 1] + diffs[m]) / 2 }
}

/// pandas `Timedelta.resolution_string` of `period` as a length in nanoseconds (the smallest non-zero component).
fn resolution(period: i128) -> i128 {
    // The largest unit that divides the period is the one of its smallest non-zero component.
    [DAY_NS, 3_600 * NS, 60 * NS, NS, 1_000_000, 1_000].into_iter().find(|u| period % u == 0).unwrap_or(1)
}

/// pandas `Timedelta.ceil(resolution)`.
fn ceil_to(value: i128, res: i128) -> i128 {
    -(-value).div_euclid(res) * res
}

/// The resampling period of the annualised figures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Period {
    Day,
    /// Weeks ending on Sunday (pandas `W`).
    Week,
    Month,
    Year,
}

impl Period {
    fn key(self, t: &DateTime<Utc>) -> i64 {
        let day = t.timestamp().div_euclid(86_400);
        match self {
            Period::Day => day,
            // 1970-01-01 was a Thursday: (day + 3) mod 7 is the weekday from Monday = 0; key = that week's Sunday.
            Period::Week => day + 6 - (day + 3).rem_euclid(7),
            Period::Month => i64::from(t.year()) * 12 + i64::from(t.month0()),
            Period::Year => i64::from(t.year()),
        }
    }
}

/// What the statistics take from the bars alone: times, the resampling and annualisation of the equity, the
/// close's log returns. [`compute`] builds it on every call; a caller that runs many backtests over the same bars
/// (the optimizer) builds it once with [`Market::new`] and calls [`compute_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct Market {
    /// Bars, first and last time and close: [`compute_with`] rebuilds the market when they differ from its bars.
    fingerprint: Fingerprint,
    /// Rounding unit of the durations (pandas' resolution of the bar spacing), ns.
    resolution: i128,
    /// Periods per year: 252 or 365 (days), 52, 12 or 1.
    annual: f64,
    /// Index of the last bar of each resampling period (day, week, month or year).
    period_ends: Vec<usize>,
    /// `ln(close[i + 1] / close[i])`.
    close_log_returns: Vec<f64>,
}

impl Market {
    /// The market figures of `bars`.
    pub fn new(bars: &Columns) -> Market {
        let n = bars.time.len().min(bars.close.len());
        let (times, close) = (&bars.time[..n], &bars.close[..n]);
        let period_ns = data_period(times);
        let weekend = times.iter().filter(|t| t.weekday().num_days_from_monday() >= 5).count() as f64 / n as f64;
        let (annual, period) = match period_ns.div_euclid(DAY_NS) {
            7 => (52.0, Period::Week),
            31 => (12.0, Period::Month),
            365 => (1.0, Period::Year),
            _ if weekend > 2.0 / 7.0 * 0.6 => (365.0, Period::Day),
            _ => (252.0, Period::Day),
        };
        let keys: Vec<i64> = times.iter().map(|t| period.key(t)).collect();
        let mut period_ends: Vec<usize> = (1..n).filter(|&i| keys[i] != keys[i - 1]).map(|i| i - 1).collect();
        if n > 0 {
            period_ends.push(n - 1);
        }
        Market {
            fingerprint: fingerprint(bars),
            resolution: resolution(period_ns),
            annual,
            period_ends,
            close_log_returns: close.windows(2).map(|w| ln_ratio(w[1], w[0])).collect(),
        }
    }
}

/// Bars, first and last time, first and last close (bits, so that NaN equals NaN).
type Fingerprint = (usize, Option<DateTime<Utc>>, Option<DateTime<Utc>>, u64, u64);

fn fingerprint(bars: &Columns) -> Fingerprint {
    let n = bars.time.len().min(bars.close.len());
    match n.checked_sub(1) {
        Some(last) => {
            (n, Some(bars.time[0]), Some(bars.time[last]), bars.close[0].to_bits(), bars.close[last].to_bits())
        }
        None => (0, None, None, 0, 0),
    }
}

/// `ln(a / b)`: for a ratio within 2⁻⁶ of 1 the series of `ln(1 + x)` to `x¹⁰` (truncation below 2⁻⁵⁴ relative;
/// a few times faster than `ln`, the same to an ulp or two), else `ln`.
fn ln_ratio(a: f64, b: f64) -> f64 {
    let r = a / b;
    let x = r - 1.0; // exact (Sterbenz) for r within [0.5, 2]
    if x.abs() < 0.015_625 {
        let tail = -1.0 / 2.0
            + x * (1.0 / 3.0
                + x * (-1.0 / 4.0
                    + x * (1.0 / 5.0
                        + x * (-1.0 / 6.0
                            + x * (1.0 / 7.0 + x * (-1.0 / 8.0 + x * (1.0 / 9.0 + x * (-1.0 / 10.0))))))));
        x + x * x * tail
    } else {
        r.ln()
    }
}

/// The statistics of `outcome`, a run over `bars` with `config` (see the module docs for the definitions).
pub fn compute(outcome: &Outcome, bars: &Columns, config: &EngineConfig) -> Stats {
    compute_with(outcome, bars, config, &Market::new(bars))
}

/// [`compute`] with the market figures of `bars` computed beforehand (rebuilt if `market` is not of `bars`).
pub fn compute_with(outcome: &Outcome, bars: &Columns, config: &EngineConfig, market: &Market) -> Stats {
    let rebuilt;
    let market = if market.fingerprint == fingerprint(bars) {
        market
    } else {
        rebuilt = Market::new(bars);
        &rebuilt
    };
    let n = outcome.equity.len().min(bars.time.len()).min(bars.close.len());
    let equity = &outcome.equity[..n];
    let times = &bars.time[..n];
    let close = &bars.close[..n];
    let res = market.resolution;
    let mut s = trade_stats(outcome, n, res);
    s.net_profit = equity.last().map_or(f64::NAN, |e| e - config.initial_cash);
    let (Some(&first), Some(&last)) = (equity.first(), equity.last()) else {
        return empty_equity(s);
    };
    s.start = times.first().copied();
    s.end = times.last().copied();
    let duration = nanos(&times[n - 1]) - nanos(&times[0]);
    s.duration_secs = secs(duration);
    s.equity_final = last;
    s.return_pct = (last - first) / first * 100.0;
    let w = outcome.warmup.min(n - 1);
    s.buy_hold_return_pct = (close[n - 1] - close[w]) / close[w] * 100.0;

    // Drawdowns, in one pass: the running peak, the drawdown, its maximum and the bars at a peak (drawdown 0).
    let mut peak = f64::NEG_INFINITY;
    let mut max_dd = f64::NEG_INFINITY;
    let mut dd = Vec::with_capacity(n);
    let mut marks = Vec::new();
    for (i, &e) in equity.iter().enumerate() {
        peak = peak.max(e);
        let d = 1.0 - e / peak;
        if d > max_dd {
            max_dd = d;
        }
        if d == 0.0 {
            marks.push(i);
        }
        dd.push(d);
    }
    s.equity_peak = peak;
    let max_dd = if max_dd == f64::NEG_INFINITY { 0.0 } else { max_dd };
    let episodes = drawdown_episodes(&dd, marks, times);
    s.max_drawdown_pct = -max_dd * 100.0;
    // pandas' mean of the per-bar peaks series: NaN rows count as 0 in the (pairwise) sum, not in the count.
    let (peaks, count) = if episodes.is_empty() {
        let count = dd.iter().filter(|d| **d != 0.0 && !d.is_nan()).count();
        (dd, count)
    } else {
        let mut p = vec![0.0; n];
        for &(end, _, depth) in &episodes {
            p[end] = depth;
        }
        (p, episodes.len())
    };
    s.avg_drawdown_pct = -(numpy::sum(&peaks) / count as f64) * 100.0;
    if !episodes.is_empty() {
        let longest = episodes.iter().map(|e| e.1).max().unwrap_or(0);
        s.max_drawdown_duration_secs = secs(ceil_to(longest, res));
        let mean = episodes.iter().map(|e| e.1).sum::<i128>() / episodes.len() as i128;
        s.avg_drawdown_duration_secs = secs(ceil_to(mean, res));
    }

    // Annualised figures from the returns of the last equity of each period.
    let days = market.annual;
    let ends = &market.period_ends;
    let r: Vec<f64> = ends
        .windows(2)
        .filter(|w| w[1] < n)
        .map(|w| equity[w[1]] / equity[w[0]] - 1.0)
        .filter(|r| !r.is_nan())
        .collect();
    let g = numpy::geometric_mean(&r);
    let annualized = (1.0 + g).powf(days) - 1.0;
    s.return_ann_pct = annualized * 100.0;
    s.volatility_ann_pct =
        ((numpy::var(&r, 1) + (1.0 + g).powf(2.0)).powf(days) - (1.0 + g).powf(2.0 * days)).sqrt() * 100.0;
    let years = (duration.div_euclid(DAY_NS) as f64 + (duration.rem_euclid(DAY_NS) / NS) as f64 / 86_400.0) / 365.25;
    s.cagr_pct = if years != 0.0 { ((last / first).powf(1.0 / years) - 1.0) * 100.0 } else { f64::NAN };
    s.sharpe_ratio = (s.return_ann_pct - 0.0) / numpy::or_nan(s.volatility_ann_pct);
    let downside: Vec<f64> = r.iter().map(|x| x.min(0.0) * x.min(0.0)).collect();
    s.sortino_ratio = annualized / (numpy::mean(&downside).sqrt() * days.sqrt());
    s.calmar_ratio = annualized / numpy::or_nan(max_dd);

    // Alpha and beta against the close.
    s.beta = if n > 2 {
        let equity_log_returns: Vec<f64> = equity.windows(2).map(|w| ln_ratio(w[1], w[0])).collect();
        numpy::beta(&equity_log_returns, &market.close_log_returns[..n - 1])
    } else {
        f64::NAN
    };
    s.alpha_pct = s.return_pct - 0.0 - s.beta * (s.buy_hold_return_pct - 0.0);
    s
}

/// Drawdown episodes from the bars at a peak (`marks`, ascending): (bar index where each ends, its duration in
/// ns, its deepest drawdown). An episode runs between two consecutive marks at least two bars apart, or from the
/// last mark to the last bar.
fn drawdown_episodes(dd: &[f64], mut marks: Vec<usize>, times: &[DateTime<Utc>]) -> Vec<(usize, i128, f64)> {
    let n = dd.len();
    if n > 0 && marks.last() != Some(&(n - 1)) {
        marks.push(n - 1);
    }
    marks
        .windows(2)
        .filter(|w| w[1] > w[0] + 1)
        .map(|w| {
            let (prev, end) = (w[0], w[1]);
            let depth = numpy::max(&dd[prev..=end]);
            (end, nanos(&times[end]) - nanos(&times[prev]), depth)
        })
        .collect()
}

/// Statistics without any bar (backtesting.py refuses empty data): NaN figures, the trade counts.
fn empty_equity(s: Stats) -> Stats {
    let nan = f64::NAN;
    Stats {
        exposure_time_pct: nan,
        equity_final: nan,
        equity_peak: nan,
        return_pct: nan,
        buy_hold_return_pct: nan,
        return_ann_pct: nan,
        volatility_ann_pct: nan,
        cagr_pct: nan,
        sharpe_ratio: nan,
        sortino_ratio: nan,
        calmar_ratio: nan,
        alpha_pct: nan,
        beta: nan,
        max_drawdown_pct: nan,
        avg_drawdown_pct: nan,
        ..s
    }
}

/// The statistics of the listed trades (and the exposure they make) over `n` bars.
fn trade_stats(outcome: &Outcome, n: usize, res: i128) -> Stats {
    let trades = &outcome.trades;
    let pl: Vec<f64> = trades.iter().map(|t| t.pnl).collect();
    let returns: Vec<f64> = trades.iter().map(|t| t.return_pct).collect();
    let durations: Vec<i128> = trades.iter().map(|t| nanos(&t.exit_time) - nanos(&t.entry_time)).collect();
    let count = trades.len();
    let wins: Vec<f64> = pl.iter().copied().filter(|p| *p > 0.0).collect();
    let losses: Vec<f64> = pl.iter().copied().filter(|p| *p < 0.0).collect();
    let win_rate = if count == 0 { f64::NAN } else { wins.len() as f64 / count as f64 };

    let mut exposed = vec![false; n];
    for t in trades {
        let end = t.exit_bar.min(n.saturating_sub(1));
        if t.entry_bar <= end && end < n {
            exposed[t.entry_bar..=end].fill(true);
        }
    }
    let exposure = if n == 0 { f64::NAN } else { exposed.iter().filter(|e| **e).count() as f64 / n as f64 };

    let positive: Vec<f64> = returns.iter().copied().filter(|r| *r > 0.0).collect();
    let negative: Vec<f64> = returns.iter().copied().filter(|r| *r < 0.0).collect();
    let mean_win = numpy::mean(&wins);
    let mean_loss = numpy::mean(&losses);
    Stats {
        exposure_time_pct: exposure * 100.0,
        // Python's sum(): left to right.
        commissions: trades.iter().fold(0.0, |acc, t| acc + t.commission),
        trades: count,
        winning_trades: wins.len(),
        losing_trades: losses.len(),
        win_rate_pct: win_rate * 100.0,
        best_trade_pct: numpy::max(&returns) * 100.0,
        worst_trade_pct: numpy::min(&returns) * 100.0,
        avg_trade_pct: numpy::geometric_mean(&returns) * 100.0,
        max_trade_duration_secs: durations.iter().copied().max().map_or(0, |d| secs(ceil_to(d, res))),
        avg_trade_duration_secs: if count == 0 {
            0
        } else {
            secs(ceil_to(durations.iter().sum::<i128>() / count as i128, res))
        },
        profit_factor: numpy::sum(&positive) / numpy::or_nan(numpy::sum(&negative).abs()),
        expectancy_pct: numpy::mean(&returns) * 100.0,
        expectancy: numpy::mean(&pl),
        avg_win: mean_win,
        avg_loss: -mean_loss,
        sqn: (count as f64).sqrt() * numpy::mean(&pl) / numpy::or_nan(numpy::std(&pl)),
        kelly_criterion: win_rate - (1.0 - win_rate) / (mean_win / -mean_loss),
        ..Stats::default()
    }
}
