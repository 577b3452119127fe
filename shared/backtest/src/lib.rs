//! NusaTrade strategies and backtests (issue 16), pure and self-contained: no AWS, no file or network I/O.
//!
//! | module | what |
//! |---|---|
//! | [`rules`] | the rule language: `RSI(14) < 30 AND CLOSE > EMA(50)` parsed into a typed expression tree, errors with positions |
//! | [`strategy`] | a strategy (parameters, entry/exit rules, risk management) compiled once, evaluated into per-bar signals |
//! | [`ml_signals`] | an ML model's signals and the volatility regimes as series the rules read, computed causally |
//! | [`engine`] | the causal bar-by-bar engine: decide on bar *i*, fill at bar *i + 1*'s open; costs, sizing, SL/TP/trailing |
//! | [`stats`] | the statistics of a run (backtesting.py's definitions where they exist) |
//! | [`optimize`] | grid and random search with constraints and an objective, chunks for workers, walk-forward |
//! | [`montecarlo`] | resampling and reshuffling of the trade sequence: final equity and drawdown distributions |
//! | [`chart`] | SVG pictures: equity + drawdown, optimizer heatmap, Monte Carlo bands |

pub mod chart;
pub mod engine;
pub mod ml_signals;
pub mod montecarlo;
pub mod optimize;
pub mod rules;
pub mod stats;
pub mod strategy;
