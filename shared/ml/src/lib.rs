//! NusaTrade's ML pipeline (issue 7), pure and self-contained: no AWS, no file or network I/O — functions take
//! and return bytes and values; storage, queues and routes belong to the application and adapters.
//!
//! | module | what |
//! |---|---|
//! | [`candles`] | the validated OHLCV series, CSV import with line-numbered errors, compressed blobs, merge by timestamp, timeframes |
//! | [`indicators`] | causal technical indicators following TA-Lib |
//! | [`features`] | the contract §6.1 feature set: whole matrix for training, bit-identical last row (streaming) for inference |
//! | [`labels`] | forward-return labels (3-class or binary) over a horizon |
//! | [`split`] | labelled dataset and chronological, purged train / validation / test split |
//! | [`models`] | gradient boosting (forust-ml), random forest (smartcore), logistic regression (linfa-logistic) |
//! | [`metrics`] | classification metrics and a signal backtest with a buy-and-hold baseline |
//! | [`artefact`] | versioned, self-describing, checksummed JSON artefact |
//! | [`train`] | candles + config → artefact, with progress |
//! | [`predict`] | artefact + latest candles → BUY/SELL/HOLD with confidence, probabilities, entry, SL/TP |
//! | [`rng`] | SplitMix64, a seedable generator for generated series and synthetic bars |
//! | [`analysis`] | market analysis computed from candles (trend, RSI, ATR regime, MACD, Bollinger, ranges, levels) with a plain-text summary; multi-symbol overview |

pub mod analysis;
pub mod artefact;
pub mod candles;
pub mod features;
pub mod indicators;
pub mod labels;
pub mod metrics;
pub mod models;
pub mod predict;
pub mod rng;
pub mod signal;
pub mod split;
pub mod train;

pub use candles::{Candle, CandleSeries, CsvError, CsvLimits, Timeframe, to_csv};
pub use labels::{Class, LabelKind, LabelSpec};
pub use models::{ModelConfig, ModelKind, TrainedModel};

pub use artefact::{Artefact, ArtefactError, ArtefactHeader, Decoded, Encoding};
pub use predict::{Direction, Prediction, SignalConfig, predict};
pub use rng::SplitMix64;
pub use train::{Stage, TrainConfig, TrainError, TrainMeta, train};
