//! Strategies and backtests (issue 16) on top of `nusatrade_backtest`: rule strategies stored per user
//! ([`strategies`]), the candles a run reads ([`data`]), runs and their sessions ([`runs`]), the optimizer, walk-forward
//! and Monte Carlo ([`optimize`]), the `backtest` queue's consumer ([`jobs`]) — use cases free of HTTP, their
//! [`BacktestError`]s mapped to statuses once in [`routes`] ([`docs`] describes them); the store layout is in
//! [`store`].
//!
//! Request flow of a run: `POST /backtest/run` compiles the strategy (every problem at once when it does not), reads
//! the candles of the range from the user's dataset (else the platform's), runs signals → engine → statistics on a
//! blocking thread and answers with the result; the session item holds the summary, a blob the trades and curves.
//! A run over more bars than the synchronous budget is queued (202, `queued`) and finished by the consumer.
//!
//! Request flow of an optimization: `POST /backtest/optimize` checks the parameter space (a cap on combinations,
//! constraints over parameter names), writes an optimization session and puts one message per chunk of the grid on
//! the `backtest` queue (202). Each worker evaluates its chunk, writes the partial result as a blob and counts the
//! chunk once (a marker item in the same transaction); the worker that completes the count merges the partials —
//! `GET /backtest/optimize/{id}` shows progress, then the best combinations and the heatmap.

pub mod data;
pub mod docs;
pub mod error;
pub mod jobs;
pub mod optimize;
pub mod routes;
pub mod runs;
pub mod store;
pub mod strategies;

pub use error::{BacktestError, BacktestResult};
pub use jobs::BacktestConsumer;
pub use routes::{BacktestState, backtest_router, strategies_router};
pub use runs::{BACKTEST_QUEUE, BacktestConfig, BacktestService};
pub use strategies::{MAX_STRATEGIES_PER_USER, StrategyService};
