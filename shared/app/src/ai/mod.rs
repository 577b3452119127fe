//! The AI supervisor (issue 17), first part: what it answers **without a language model** — analyses computed from
//! the platform's own data and labelled as computed, so a fresh `nusatrade serve` has a working AI page:
//!
//! * `GET /ai/analysis/{symbol}`: trend, RSI regime, ATR volatility, MACD, Bollinger position, recent ranges of the
//!   symbol's stored candles (`nusatrade_ml::analysis`, every number from the TA-Lib-checked indicator library);
//! * `GET /ai/analysis/daily`: the same over the symbols the caller (or the platform) has candles for;
//! * `GET /ai/recommendations`: a review of the caller's last 50 closed trades (`nusatrade_domain::performance`:
//!   win rate, P/L, style, sessions, streaks, per symbol) with rule-based advice — the original divided by zero when
//!   a trader had no losing trade; here wins only, losses only and no trades all answer.
//!
//! The use cases are in [`service`] (free of HTTP, [`AiError`]), the routes and their one error mapping in
//! [`routes`], their description in [`docs`]. Everything is read per user: no answer contains another user's data.

pub mod budget;
pub mod chat;
pub mod context;
pub mod docs;
pub mod error;
pub mod generate;
pub mod model;
pub mod prompts;
pub mod routes;
pub mod service;

pub use error::AiError;
pub use routes::{AiState, router};
pub use service::AiService;
