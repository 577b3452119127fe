//! The simulated MT5 connector (issue #5), a crate of its own: `nusatrade-local` depends on it for the
//! `nusatrade connector` command and `nusatrade serve --with-sim-connector`; it depends only on the domain and the
//! application's connector protocol, never on the local platform.
//!
//! The paper MT5 broker: price feeds ([`feed`]) and a paper trading account ([`paper`]) that fills market orders
//! at bid/ask, tracks floating P/L and margin, and closes positions on stop loss / take profit. Pure and
//! deterministic: no I/O except reading a candle file on request, no networking, no wall clock (times come from
//! ticks and requests), no protocol JSON. Money, prices and volumes are [`rust_decimal::Decimal`]; the instrument
//! rules come from [`nusatrade_domain::instrument`].
//!
//! Around it: the connector itself ([`connector`]: HTTP login, broker connection, the WebSocket session and the
//! command handler) and its command line ([`cli`], `nusatrade connector`). The in-process demo
//! (`nusatrade serve --with-sim-connector`) lives in `nusatrade-local`, beside the mailer it reads.

pub mod cli;
pub mod connector;
pub mod feed;
pub mod mt5;
pub mod paper;
#[cfg(test)]
mod testing;

pub use feed::{
    Candle, CandleReplay, FeedError, FeedSource, PriceFeed, RandomWalk, RowProblem, Spread, Spreads, Tick,
    parse_candles,
};
pub use paper::{
    AccountSnapshot, AccountState, CloseFill, ClosedPosition, Deal, DealEntry, DealReason, OpenFill, OpenRequest,
    PaperAccount, PaperPosition, Reject,
};
