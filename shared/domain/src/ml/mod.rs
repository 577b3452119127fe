//! Market data and features for the ML pipeline (issue 7): pure, `f64`, no I/O.
//!
//! * [`candles`]: [`Candle`] and the validated [`Series`] (finite positive prices, `high ≥ max(open, close)`,
//!   `low ≤ min(open, close)`, strictly increasing timestamps; errors name the bar's index);
//! * [`indicators`]: technical indicators as pure functions over slices, aligned with their input, `NaN` during
//!   warm-up;
//! * [`features`]: the runtime feature set of contract §6.1 computed causally, as a [`FeatureMatrix`].
//!
//! **Reference library: TA-Lib** (default compatibility mode, unstable periods 0). SMA, EMA (SMA-seeded), MACD,
//! RSI (Wilder), STOCHF, MOM, ROC, CCI, STDDEV/BBANDS (population σ), TRANGE, ATR (Wilder), PLUS_DI/MINUS_DI/ADX
//! (Wilder) and OBV follow its definitions, lookbacks and degenerate-case values; the few deliberate
//! differences (exact zero tests instead of TA-Lib's 1e-8, the MACD line reported before the signal exists,
//! two-pass window deviations) are listed in [`indicators`], and the differences from the original system's
//! pandas definitions in [`features`].
//!
//! **Causality:** a value at bar `t` depends on bars `0..=t` only — computing on a prefix of a series gives
//! bit-identical values for the prefix's bars, whatever follows (tested, including with random future bars).
//! Warm-up values are `NaN` and are dropped, never filled.

pub mod candles;
pub mod features;
pub mod indicators;

pub use candles::{Candle, CandleProblem, Columns, Series, SeriesError};
pub use features::{
    FeatureMatrix, NAMES as FEATURE_NAMES, STABLE_HISTORY_BARS, WARMUP_BARS, compute as compute_features,
};
