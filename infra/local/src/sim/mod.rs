//! A paper MT5 broker for the simulated connector: price feeds ([`feed`]) and a paper trading account
//! ([`paper`]) that fills market orders at bid/ask, tracks floating P/L and margin, and closes positions on stop
//! loss / take profit.
//!
//! Pure and deterministic: no I/O except reading a candle file on request, no networking, no wall clock (times
//! come from ticks and requests), no protocol JSON. Money, prices and volumes are [`rust_decimal::Decimal`]; the
//! instrument rules come from [`nusatrade_domain::instrument`].

pub mod feed;
pub mod paper;

pub use feed::{
    Candle, CandleReplay, FeedError, FeedSource, PriceFeed, RandomWalk, RowProblem, Spread, Spreads, Tick,
    parse_candles,
};
pub use paper::{
    AccountState, CloseFill, ClosedPosition, Deal, DealEntry, DealReason, OpenFill, OpenRequest, PaperAccount,
    PaperPosition, Reject,
};
