//! The ML pipeline's application layer (issue #7) on top of `nusatrade_ml`: candle datasets ([`datasets`]),
//! model records, training jobs on the `ml-train` queue ([`jobs`]), artefacts in the blob store and the warm model
//! cache ([`artefacts`]), predictions, activation, execution through the order use case, system defaults
//! ([`defaults`]) — the use cases in [`service`] (their outcomes and [`MlError`]s free of HTTP), the store layout in
//! [`store`], the HTTP routes in [`routes`] (the one place an [`MlError`] becomes a status and a `{"detail": …}`;
//! [`docs`] describes them).
//!
//! Request flow of a training: `POST /ml/models/{id}/train` writes the job id on the model (`queued`) and puts
//! `{"kind":"train_model",...}` on the `ml-train` queue, answering 202 at once; the consumer
//! ([`jobs::MlTrainConsumer`]) takes a lease on the model, trains on the user's stored candles (progress written as
//! it goes), writes the artefact to `models/{user}/{model}/v{n}/model.json.gz` and completes the model with its
//! metrics; `GET /ml/models/{id}/status` shows each step.
//!
//! Auto-trading ([`auto`]): every 15 minutes a `{"kind":"auto_trading_cycle"}` message on the same queue runs one
//! cycle over every user's active models (one at a time across all processes: a lease item), placing orders
//! through the order use case; `POST /ml/auto-trading/trigger` runs one at once.

pub mod artefacts;
pub mod auto;
pub mod datasets;
pub mod defaults;
pub mod docs;
pub mod error;
pub mod import;
pub mod jobs;
pub mod routes;
pub mod service;
pub mod store;

pub use artefacts::ModelCache;
pub use auto::{AUTO_TRADING_BODY, AUTO_TRADING_SCHEDULE, AutoTradingSettings, CycleOrigin, CycleOutcome, CycleResult};
pub use error::{MlError, MlResult};
pub use import::HistoryImports;
pub use jobs::{MlTrainConsumer, TrainJob};
pub use routes::{MlState, router};
pub use service::{MAX_MODELS_PER_USER, ML_TRAIN_QUEUE, MlConfig, MlService};
