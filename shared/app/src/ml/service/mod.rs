//! The ML use cases over the ports, by what they do: model records and training requests ([`models`]),
//! predictions and their execution through the order use case ([`predictions`]), activation and the dashboard's
//! active bots ([`bots`]), the system defaults and users' overrides ([`default_models`]); here the settings, the
//! validated inputs and the service itself. The training runs in the job consumer ([`super::jobs`]). Every use case
//! answers a [`MlError`] on refusal or failure; none speaks HTTP.

mod bots;
mod default_models;
mod models;
mod predictions;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use nusatrade_ml::{CandleSeries, ModelKind, Timeframe, TrainConfig};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::info;
use uuid::Uuid;

use super::artefacts::ModelCache;
use super::datasets::{Datasets, UploadSummary};
use super::error::{MlError, MlResult};
use super::store::*;
use crate::ports::{BlobStore, Clock, IdGenerator, ItemStore, Ports, Queue, StoreError, Value as StoreValue};
use crate::trading::orders::OrderService;

pub use predictions::{order_id_of, predict_candles, predict_tail, prediction_order};

/// Models per user.
pub const MAX_MODELS_PER_USER: u32 = 100;
/// Bars loaded for a prediction from a stored dataset (the recursive indicators agree with training after
/// `STABLE_HISTORY_BARS`; twice that is margin).
pub const PREDICT_HISTORY_BARS: usize = 2 * nusatrade_ml::features::STABLE_HISTORY_BARS;
/// Most candles a predict request may carry.
pub const MAX_REQUEST_CANDLES: usize = 5_000;
/// Stored predictions expire after this many days (DynamoDB TTL).
pub const PREDICTION_TTL_DAYS: i64 = 365;
/// Predictions deleted with a model in one request (older ones expire by TTL).
pub const MAX_PREDICTIONS_DELETED: usize = 5_000;
/// The order `source` of orders placed by `execute`.
pub const SOURCE_ML: &str = "ml";
/// Largest training date span (the original's).
pub const MAX_TRAIN_SPAN_DAYS: i64 = 730;
/// How often a lost write race is retried.
const MAX_ATTEMPTS: u32 = 8;

/// Settings of the ML use cases.
#[derive(Clone, Debug, PartialEq)]
pub struct MlConfig {
    /// The logical queue of training jobs.
    pub queue: &'static str,
    /// How long a consumer holds a job (its own timeout): after that a redelivered message may restart it.
    pub job_timeout: Duration,
    /// Smallest interval between two progress writes of one job.
    pub progress_interval: StdDuration,
    /// Artefact versions kept per model (older ones are deleted after a training).
    pub keep_versions: usize,
    /// `NUSATRADE_REQUIRE_EMAIL_VERIFICATION` (default true): the auto-trading cycle places orders for a model's
    /// owner as the owner would, so an unverified owner's models do not trade.
    pub require_email_verification: bool,
}

/// The logical queue of training jobs.
pub const ML_TRAIN_QUEUE: &str = "ml-train";

impl Default for MlConfig {
    fn default() -> Self {
        MlConfig {
            queue: ML_TRAIN_QUEUE,
            job_timeout: Duration::seconds(900),
            progress_interval: StdDuration::from_secs(1),
            keep_versions: 3,
            require_email_verification: true,
        }
    }
}

impl MlConfig {
    /// `NUSATRADE_ML_JOB_TIMEOUT_SECONDS` (30–43,200; set it to the training function's Timeout).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut c = MlConfig::default();
        if let Some(v) = get("NUSATRADE_ML_JOB_TIMEOUT_SECONDS") {
            let s: i64 = v
                .trim()
                .parse()
                .ok()
                .filter(|s| (30..=43_200).contains(s))
                .ok_or_else(|| format!("NUSATRADE_ML_JOB_TIMEOUT_SECONDS must be 30..=43200, got {v:?}"))?;
            c.job_timeout = Duration::seconds(s);
        }
        if let Some(v) = get("NUSATRADE_REQUIRE_EMAIL_VERIFICATION") {
            c.require_email_verification = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(format!("NUSATRADE_REQUIRE_EMAIL_VERIFICATION must be true or false, got {v:?}")),
            };
        }
        Ok(c)
    }
}

fn model_not_found() -> MlError {
    MlError::NotFound("Model not found".into())
}

/// A validated model definition (create and full update).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInput {
    pub name: String,
    pub symbol: &'static str,
    pub timeframe: Timeframe,
    pub strategy_id: Option<Uuid>,
    /// Family and hyperparameters, label, split, signal and backtest settings.
    pub config: TrainConfig,
    /// The auto-trading knobs (validated).
    pub auto_trading: super::auto::rules::AutoTradingSettings,
}

/// A validated training request (`POST /ml/models/{id}/train`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    /// Train on bars at or after this time.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// Train on bars before this time.
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// The test share (the original's `test_split`), overriding the model's split config.
    #[serde(default)]
    pub test_split: Option<f64>,
}

/// The candles a prediction uses.
#[derive(Clone, Debug)]
pub enum PredictCandles {
    /// The newest stored bars (the user's dataset, else the platform's).
    Stored,
    /// Candles sent with the request.
    Given(CandleSeries),
}

/// A validated execute request.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecuteInput {
    pub prediction_id: Uuid,
    pub lot_size: Decimal,
    pub connection_id: Option<Uuid>,
}

/// A stored prediction and the prediction object it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPrediction {
    pub record: PredictionRecord,
    pub prediction: Value,
}

/// One active bot of the dashboard.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveBot {
    pub model: ModelRecord,
    pub last_prediction: Option<PredictionRecord>,
    pub today_signals: usize,
}

/// A default model as a user sees it: their override or the system default.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveDefault {
    pub symbol: &'static str,
    pub model_id: Uuid,
    pub model_path: String,
    pub is_user_override: bool,
    /// The system default's summary (none for overrides, as in the original).
    pub summary: Option<Value>,
}

/// A model artefact as `/ml-models/models` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFile {
    pub model_id: Uuid,
    pub model_path: String,
    pub symbol: String,
    pub size_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub metadata: Value,
}

/// The ML use cases.
#[derive(Clone)]
pub struct MlService {
    pub store: Arc<dyn ItemStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub datasets: Datasets,
    /// Datasets imported from the user's connector (`POST /ml/datasets/from-connector`).
    pub imports: super::import::HistoryImports,
    pub cache: ModelCache,
    /// The order use case `execute` goes through (`None`: a process without trading, e.g. the training worker).
    pub orders: Option<OrderService>,
    pub config: Arc<MlConfig>,
    /// Which strategies a model may reference (`None`: none exist in this process, every id is unknown).
    pub strategies: Option<Arc<dyn StrategyLookup>>,
    defaults_ready: Arc<AtomicBool>,
}

/// The port the ML use cases need from the strategies feature: whether a strategy id is the user's own or a public
/// one (a model's `strategy_id`, contract §2.8). Implemented by `crate::backtest::StrategyService`; wired in
/// `crate::compose`, so ml never imports the backtest feature.
#[async_trait::async_trait]
pub trait StrategyLookup: Send + Sync + 'static {
    async fn is_visible(&self, user: Uuid, strategy: Uuid) -> Result<bool, StoreError>;
    /// The strategy's risk management and rules as a model's predictions use them (`None`: gone, or its risk
    /// management does not compile).
    async fn linked(&self, user: Uuid, strategy: Uuid) -> Result<Option<LinkedStrategy>, StoreError>;
}

/// The strategy a model references: its predictions take their stop loss, take profit and trailing settings from
/// its risk management (the same level rules as the backtest engine, `nusatrade_backtest::engine::levels`).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkedStrategy {
    pub id: Uuid,
    pub name: String,
    pub risk: nusatrade_backtest::engine::Risk,
    pub entry_rules: Vec<nusatrade_backtest::strategy::StrategyRule>,
    pub exit_rules: Vec<nusatrade_backtest::strategy::StrategyRule>,
}

/// `models/`-relative path of an artefact, as the `/ml-models` routes show it.
pub fn model_path(owner: Owner, location: &ArtefactLocation) -> String {
    format!("{}/{}/v{}/model.json.gz", owner.segment(), location.model_id, location.version)
}

fn json_text<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Validation(e.to_string()))
}

fn parse_json(text: &Option<String>) -> Option<Value> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

fn store_ser<T: Serialize>(v: &T) -> Result<StoreValue, StoreError> {
    StoreValue::from_json(serde_json::to_value(v).map_err(|e| StoreError::Validation(e.to_string()))?)
}

/// Exponential backoff for lost races.
async fn backoff(attempt: u32) {
    let ms = 5u64 << attempt.min(6);
    tokio::time::sleep(StdDuration::from_millis(ms + rand::random::<u64>() % ms)).await;
}

impl MlService {
    /// The use cases over a process's ports. `orders`: the order use case for `execute`.
    pub fn new(ports: &Ports, orders: Option<OrderService>, config: MlConfig, cache: ModelCache) -> Self {
        MlService {
            store: ports.store.clone(),
            blobs: ports.blobs.clone(),
            queue: ports.queue.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            datasets: Datasets::new(ports.store.clone(), ports.blobs.clone(), ports.clock.clone()),
            imports: super::import::HistoryImports::new(ports),
            cache,
            orders,
            config: Arc::new(config),
            strategies: None,
            defaults_ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same service, checking models' `strategy_id`s with `lookup`.
    pub fn with_strategies(mut self, lookup: Arc<dyn StrategyLookup>) -> Self {
        self.strategies = Some(lookup);
        self
    }

    /// A time-ordered (v7) id, its random part from the id port.
    pub(crate) fn new_v7(&self, now: DateTime<Utc>) -> Uuid {
        self.ids.time_ordered(now)
    }

    // ------------------------------------------------------------------ datasets

    /// `POST /ml/datasets`.
    pub async fn upload_dataset(
        &self,
        owner: Owner,
        symbol: &'static str,
        tf: Timeframe,
        csv: &[u8],
    ) -> MlResult<UploadSummary> {
        let summary = self.datasets.upload_csv(owner, symbol, tf, csv, DatasetSource::Upload).await?;
        info!(owner = %owner.segment(), symbol, timeframe = tf_name(tf), bars = summary.record.bars,
              added = summary.added, replaced = summary.replaced, "dataset uploaded");
        Ok(summary)
    }
}

/// The `model_type` strings accepted on input → the family.
pub fn model_kind(model_type: &str) -> Option<ModelKind> {
    ModelKind::from_model_type(model_type)
}
