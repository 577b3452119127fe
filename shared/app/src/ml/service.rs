//! The ML use cases over the ports: models (CRUD, training requests, activation), predictions, execution
//! through the order use case, datasets, and the system defaults. The training itself runs in the job consumer
//! ([`super::jobs`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use nusatrade_domain::money::Side;
use nusatrade_domain::order::validate_stops;
use nusatrade_ml::predict::PredictError;
use nusatrade_ml::{CandleSeries, Direction, ModelKind, Timeframe, TrainConfig};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};
use uuid::Uuid;

use super::artefacts::{self, ArtefactStoreError, ModelCache, owner_of};
use super::datasets::{DatasetError, Datasets, UploadSummary};
use super::defaults::{self, DEFAULT_SYMBOLS};
use super::store::*;
use crate::auth::CurrentUser;
use crate::http::{ApiError, FieldError};
use crate::ports::{
    BlobError, BlobStore, Clock, Condition, Cursor, IdGenerator, Item, ItemStore, Ports, Query, Queue, QueueError,
    StoreError, TxOp, Update, Value as StoreValue,
};
use crate::trading::orders::{IdempotencyKey, OrderService, PlaceOrder, Reply, TradingError};

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

/// Why an ML use case refused or failed. Mapped to HTTP once (`From<MlError> for ApiError`).
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    /// 503 whose message is for the client.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Artefact(#[from] ArtefactStoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Trading(#[from] TradingError),
}

pub type MlResult<T> = Result<T, MlError>;

fn blob_api_error(e: BlobError) -> ApiError {
    match e {
        BlobError::Unavailable(m) => ApiError::Unavailable(m),
        other => ApiError::Internal(other.to_string()),
    }
}

impl From<MlError> for ApiError {
    fn from(e: MlError) -> Self {
        match e {
            MlError::NotFound(m) => ApiError::NotFound(m),
            MlError::BadRequest(m) => ApiError::BadRequest(m),
            MlError::Invalid(v) => ApiError::Unprocessable(v),
            MlError::Conflict(m) => ApiError::Conflict(m),
            MlError::Busy(m) => ApiError::ServiceUnavailable(m),
            MlError::Dataset(d) => match d {
                DatasetError::Csv(c) => {
                    let mut loc = vec![Value::from("body")];
                    if let Some(line) = c.line() {
                        loc.push(Value::from("line"));
                        loc.push(Value::from(line));
                    }
                    ApiError::Unprocessable(vec![FieldError {
                        kind: "csv_invalid".into(),
                        loc,
                        msg: c.to_string(),
                        input: Value::Null,
                    }])
                }
                e @ DatasetError::TooManyBars { .. } => ApiError::Unprocessable(vec![FieldError::new(
                    "too_many_bars",
                    &["body"],
                    e.to_string(),
                    Value::Null,
                )]),
                e @ DatasetError::TooManyDatasets(_) => ApiError::BadRequest(e.to_string()),
                e @ DatasetError::Busy => ApiError::ServiceUnavailable(e.to_string()),
                DatasetError::Corrupt(m) => ApiError::Internal(format!("dataset: {m}")),
                DatasetError::Store(s) => s.into(),
                DatasetError::Blob(b) => blob_api_error(b),
            },
            MlError::Artefact(a) => match a {
                ArtefactStoreError::Blob(b) => blob_api_error(b),
                other => ApiError::Internal(format!("model artefact: {other}")),
            },
            MlError::Store(s) => s.into(),
            MlError::Blob(b) => blob_api_error(b),
            MlError::Queue(q) => ApiError::Unavailable(format!("ml-train queue: {q}")),
            MlError::Trading(TradingError::IdempotencyMismatch) => {
                ApiError::Conflict("This prediction was already executed with different parameters".into())
            }
            MlError::Trading(t) => t.into(),
        }
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
    pub auto_trading: super::auto::AutoTradingSettings,
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
    pub cache: ModelCache,
    /// The order use case `execute` goes through (`None`: a process without trading, e.g. the training worker).
    pub orders: Option<OrderService>,
    pub config: Arc<MlConfig>,
    defaults_ready: Arc<AtomicBool>,
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
            cache,
            orders,
            config: Arc::new(config),
            defaults_ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A time-ordered (v7) id, its random part from the id port.
    pub(crate) fn new_v7(&self, now: DateTime<Utc>) -> Uuid {
        let random = self.ids.uuid().into_bytes();
        let mut tail = [0u8; 10];
        tail.copy_from_slice(&random[6..16]);
        uuid::Builder::from_unix_timestamp_millis(now.timestamp_millis().max(0) as u64, &tail).into_uuid()
    }

    // ------------------------------------------------------------------ models

    /// One model of the user (404 for unknown ids and other users' ids alike).
    pub async fn get_model(&self, user: Uuid, id: Uuid) -> MlResult<ModelRecord> {
        let item = self.store.get(&model_key(user, id)).await?.ok_or_else(model_not_found)?;
        let record: ModelRecord = item.to_record()?;
        if record.user_id != user {
            return Err(model_not_found());
        }
        Ok(record)
    }

    /// Every model of the user, oldest first.
    pub async fn all_models(&self, user: Uuid) -> MlResult<Vec<ModelRecord>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .query(
                    Query::partition(crate::auth::store::user_pk(user))
                        .sk_prefix(MODEL_PREFIX)
                        .limit(200)
                        .after(cursor),
                )
                .await?;
            for item in &page.items {
                out.push(item.to_record::<ModelRecord>()?);
            }
            cursor = page.cursor;
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// `skip`/`limit` over the user's models, oldest first.
    pub async fn list_models(&self, user: Uuid, skip: usize, limit: usize) -> MlResult<Vec<ModelRecord>> {
        Ok(self.all_models(user).await?.into_iter().skip(skip).take(limit).collect())
    }

    fn check_strategy(strategy: Option<Uuid>) -> MlResult<()> {
        // No strategies exist on this platform (the strategies routes are not part of it): any id is unknown.
        match strategy {
            Some(_) => Err(MlError::NotFound("Strategy not found".into())),
            None => Ok(()),
        }
    }

    /// `POST /ml/models`.
    pub async fn create_model(&self, user: Uuid, input: ModelInput) -> MlResult<ModelRecord> {
        Self::check_strategy(input.strategy_id)?;
        let now = self.clock.now();
        let record = ModelRecord {
            id: self.new_v7(now),
            user_id: user,
            name: input.name,
            model_type: input.config.model.kind().as_str().to_owned(),
            symbol: input.symbol.to_owned(),
            timeframe: input.timeframe,
            strategy_id: input.strategy_id,
            config: json_text(&input.config)?,
            auto_trading: input.auto_trading,
            is_active: false,
            is_pretrained: false,
            default_symbol: None,
            training_status: TrainingStatus::Idle,
            training_error: None,
            training_started_at: None,
            training_completed_at: None,
            job: JobFields::default(),
            artefact: None,
            artefact_checksum: None,
            versions: Vec::new(),
            next_version: 1,
            summary: None,
            metrics: None,
            data_source: None,
            created_at: now,
            updated_at: now,
        };
        self.insert_model(&record, Vec::new()).await?;
        info!(user = %user, model = %record.id, symbol = %record.symbol, "ml model created");
        Ok(record)
    }

    /// Writes a new model with the counter (and `extra` operations) in one transaction.
    async fn insert_model(&self, record: &ModelRecord, extra: Vec<TxOp>) -> MlResult<()> {
        let user = record.user_id;
        let extra_len = extra.len();
        for attempt in 0..MAX_ATTEMPTS {
            let mut ops = vec![
                TxOp::Put {
                    item: Item::from_record(&model_key(user, record.id), record)?,
                    condition: Some(Condition::NotExists),
                },
                TxOp::Update {
                    key: model_count_key(user),
                    update: Update::new().add(COUNT_ATTR, 1),
                    condition: Some(
                        Condition::AttrNotExists(COUNT_ATTR.into())
                            .or(Condition::lt(COUNT_ATTR, i64::from(MAX_MODELS_PER_USER))),
                    ),
                },
            ];
            ops.extend(extra.iter().cloned());
            match self.store.transact_write(ops).await {
                Ok(()) => return Ok(()),
                Err(StoreError::TransactionCanceled(reasons)) => {
                    let failed = |i: usize| reasons.get(i) == Some(&crate::ports::CancelReason::ConditionalCheckFailed);
                    if failed(1) {
                        return Err(MlError::BadRequest(format!(
                            "Maximum {MAX_MODELS_PER_USER} models per user reached; delete one first"
                        )));
                    }
                    if (2..2 + extra_len).any(failed) {
                        return Err(MlError::Conflict("conflicting write".into()));
                    }
                    backoff(attempt).await;
                }
                Err(StoreError::Throttled) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MlError::Busy("The model store is busy, please retry".into()))
    }

    /// `PUT /ml/models/{id}`: replaces the definition. Refused while a training runs (the job would mix two
    /// configs), and a symbol change of an active model (its activation is per symbol).
    pub async fn update_model(&self, user: Uuid, id: Uuid, input: ModelInput) -> MlResult<ModelRecord> {
        Self::check_strategy(input.strategy_id)?;
        let current = self.get_model(user, id).await?;
        if current.is_active && current.symbol != input.symbol {
            return Err(MlError::BadRequest("Deactivate the model before changing its symbol".into()));
        }
        let changes_training = current.symbol != input.symbol
            || current.timeframe != input.timeframe
            || current.config != json_text(&input.config)?;
        if changes_training
            && current.training_status.in_progress()
            && !self.is_stale(&current.job, current.training_status)
        {
            return Err(MlError::BadRequest("Model is being trained; change it when training has finished".into()));
        }
        let now = self.clock.now();
        let update = Update::new()
            .set("name", input.name.as_str())
            .set("model_type", input.config.model.kind().as_str())
            .set("symbol", input.symbol)
            .set("timeframe", store_ser(&input.timeframe)?)
            .set("strategy_id", store_ser(&input.strategy_id)?)
            .set("config", json_text(&input.config)?)
            .set("auto_trading", store_ser(&input.auto_trading)?)
            .set("updated_at", store_ser(&now)?);
        let mut cond =
            Condition::Exists.and(Condition::eq("is_active", false).or(Condition::eq("symbol", input.symbol)));
        if changes_training {
            // Also under a concurrent train request.
            cond = cond.and(Condition::eq("training_status", current.training_status.as_str()));
        }
        match self.store.update(&model_key(user, id), update, Some(cond)).await {
            Ok(item) => Ok(item.to_record()?),
            Err(e) if e.is_condition_failure() => {
                Err(MlError::Conflict("The model changed while it was being updated; retry".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `DELETE /ml/models/{id}`: the model with its activation, import marker and override (one transaction),
    /// then its predictions and its artefacts (every version under `models/{user}/{model}/`).
    pub async fn delete_model(&self, user: Uuid, id: Uuid) -> MlResult<()> {
        for attempt in 0..MAX_ATTEMPTS {
            let model = self.get_model(user, id).await?;
            let mut ops = vec![
                TxOp::Delete { key: model_key(user, id), condition: Some(Condition::Exists) },
                TxOp::Update {
                    key: model_count_key(user),
                    update: Update::new().add(COUNT_ATTR, -1),
                    condition: Some(Condition::gt(COUNT_ATTR, 0)),
                },
            ];
            let own = |k: crate::ports::Key| TxOp::Delete {
                key: k,
                condition: Some(Condition::eq("model_id", id.to_string())),
            };
            for key in [active_key(user, &model.symbol), override_key(user, &model.symbol)]
                .into_iter()
                .chain(model.default_symbol.as_deref().map(|s| imported_key(user, s)))
            {
                if let Some(item) = self.store.get(&key).await?
                    && item.get_s("model_id") == Some(id.to_string().as_str())
                {
                    ops.push(own(key));
                }
            }
            match self.store.transact_write(ops).await {
                Ok(()) => break,
                Err(StoreError::TransactionCanceled(_)) | Err(StoreError::Throttled) => {
                    if attempt + 1 == MAX_ATTEMPTS {
                        return Err(MlError::Busy("The model store is busy, please retry".into()));
                    }
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.cache.forget(id);
        let deleted_predictions = self.delete_predictions(user, id).await?;
        let deleted_artefacts = artefacts::delete_all(self.blobs.as_ref(), Owner::User(user), id).await?;
        info!(user = %user, model = %id, deleted_predictions, deleted_artefacts, "ml model deleted");
        Ok(())
    }

    async fn delete_predictions(&self, user: Uuid, model: Uuid) -> MlResult<usize> {
        let mut deleted = 0;
        while deleted < MAX_PREDICTIONS_DELETED {
            let page = self
                .store
                .query(
                    Query::partition(crate::auth::store::user_pk(user)).sk_prefix(prediction_prefix(model)).limit(100),
                )
                .await?;
            if page.items.is_empty() {
                break;
            }
            let ops: Vec<TxOp> =
                page.items.iter().filter_map(|i| i.key()).map(|key| TxOp::Delete { key, condition: None }).collect();
            deleted += ops.len();
            self.store.transact_write(ops).await?;
        }
        Ok(deleted)
    }

    // ------------------------------------------------------------------ training

    /// True when a queued or running job can be considered lost: a queued job older than twice the job
    /// timeout (the local queue does not survive a restart; SQS delivers in seconds), a running one whose lease
    /// has run out.
    pub fn is_stale(&self, job: &JobFields, status: TrainingStatus) -> bool {
        let now = self.clock.now();
        match status {
            TrainingStatus::Queued => job.training_requested_at.is_none_or(|t| t + self.config.job_timeout * 2 < now),
            TrainingStatus::Training => job.lease_until.is_none_or(|l| l < now.timestamp()),
            _ => true,
        }
    }

    /// `POST /ml/models/{id}/train`: records a new job on the model (`queued`) and puts it on the queue.
    pub async fn request_training(&self, user: Uuid, id: Uuid, req: TrainRequest) -> MlResult<ModelRecord> {
        let model = self.get_model(user, id).await?;
        if model.is_pretrained {
            return Err(MlError::BadRequest(
                "Imported default models are trained by the platform; create your own model to train it".into(),
            ));
        }
        if model.training_status.in_progress() && !self.is_stale(&model.job, model.training_status) {
            return Err(MlError::BadRequest("Model is already being trained".into()));
        }
        let now = self.clock.now();
        let job_id = self.ids.uuid();
        let update = Update::new()
            .set("training_status", TrainingStatus::Queued.as_str())
            .set("job_id", job_id.to_string())
            .set("job_attempt", 0i64)
            .remove("lease_until")
            .set("progress_stage", "queued")
            .set("progress_fraction", 0i64)
            .set("progress_at", store_ser(&now)?)
            .set("training_requested_at", store_ser(&now)?)
            .remove("training_error")
            .set("updated_at", store_ser(&now)?);
        // Exactly the state read: a concurrent request queues at most one job.
        let cond = Condition::Exists.and(Condition::eq("training_status", model.training_status.as_str())).and(
            match model.job.job_id {
                Some(j) => Condition::eq("job_id", j.to_string()),
                None => Condition::eq("job_id", StoreValue::Null).or(Condition::AttrNotExists("job_id".into())),
            },
        );
        let item = match self.store.update(&model_key(user, id), update, Some(cond)).await {
            Ok(item) => item,
            Err(e) if e.is_condition_failure() => {
                return Err(MlError::BadRequest("Model is already being trained".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let job = super::jobs::TrainJob::TrainModel { user_id: user, model_id: id, job_id, request: req };
        if let Err(e) = self.queue.send(self.config.queue, &job.to_body(), StdDuration::ZERO).await {
            // Nothing was queued: put the model back as it was, so it can be trained again at once.
            let revert = Update::new()
                .set("training_status", TrainingStatus::Failed.as_str())
                .set("training_error", "The training queue was unavailable; please retry")
                .set("progress_stage", "failed");
            let _ = self
                .store
                .update(&model_key(user, id), revert, Some(Condition::eq("job_id", job_id.to_string())))
                .await;
            return Err(e.into());
        }
        info!(user = %user, model = %id, job = %job_id, "ml training queued");
        Ok(item.to_record()?)
    }

    // ------------------------------------------------------------------ predictions

    /// `POST /ml/models/{id}/predict`: the model (cached per warm process), features of the newest candles, the
    /// decision; the prediction is stored and returned.
    pub async fn predict(
        &self,
        user: Uuid,
        id: Uuid,
        symbol: Option<&'static str>,
        candles: PredictCandles,
    ) -> MlResult<StoredPrediction> {
        let model = self.get_model(user, id).await?;
        self.predict_model(&model, symbol, candles, None).await
    }

    /// A prediction of `model` (already read), stored; `extra` is added to the prediction object (the
    /// auto-trading cycle's marker).
    pub(crate) async fn predict_model(
        &self,
        model: &ModelRecord,
        symbol: Option<&'static str>,
        candles: PredictCandles,
        extra: Option<(&str, Value)>,
    ) -> MlResult<StoredPrediction> {
        let (user, id) = (model.user_id, model.id);
        let (Some(location), Some(checksum)) = (model.artefact, model.artefact_checksum.clone()) else {
            return Err(MlError::BadRequest("Model not trained. Please train the model first.".into()));
        };
        let artefact =
            self.cache.get_or_load(self.blobs.as_ref(), owner_of(&location, user), &location, &checksum).await?;
        let symbol = symbol
            .unwrap_or_else(|| crate::trading::fields::instrument(&model.symbol).map(|i| i.symbol).unwrap_or("EURUSD"));
        let (series_holder, source): (CandlesHolder, Value) = match candles {
            PredictCandles::Given(s) => {
                let last = s.candles().last().map(|c| c.time);
                (CandlesHolder::Owned(s), json!({"kind": "request", "last_bar": last}))
            }
            PredictCandles::Stored => self.stored_candles(user, symbol, model.timeframe).await?,
        };
        let prediction = match &series_holder {
            CandlesHolder::Owned(s) => predict_candles(&artefact, s.candles()),
            CandlesHolder::Shared(tail) => predict_tail(&artefact, tail),
        };
        let prediction = match prediction {
            Ok(p) => p,
            Err(e @ (PredictError::NotEnoughBars { .. } | PredictError::NonFiniteFeature(_))) => {
                return Err(MlError::BadRequest(format!("Cannot predict: {e}")));
            }
            Err(e) => {
                return Err(MlError::Artefact(ArtefactStoreError::Artefact(
                    nusatrade_ml::ArtefactError::Incompatible(e.to_string()),
                )));
            }
        };
        let now = self.clock.now();
        let pid = self.new_v7(now);
        let mut object = serde_json::to_value(&prediction).map_err(|e| StoreError::Validation(e.to_string()))?;
        if let Value::Object(m) = &mut object {
            m.insert(
                "strategy_validation".into(),
                json!({"valid": true, "matched_rules": [], "failed_rules": [], "message": "No strategy linked",
                       "current_indicators": prediction.current_indicators}),
            );
            m.insert("strategy_rules".into(), Value::Null);
            m.insert(
                "trailing_stop".into(),
                json!({"enabled": true, "activation_pips": 20, "trail_distance_pips": 15, "breakeven_pips": 15}),
            );
            m.insert("model_version".into(), Value::from(location.version));
            m.insert("candles".into(), source);
            m.insert("timestamp".into(), Value::from(crate::trading::orders::views::iso(now)));
            if let Some((k, v)) = extra {
                m.insert(k.to_owned(), v);
            }
        }
        let direction = match prediction.direction {
            Direction::Buy => "BUY",
            Direction::Sell => "SELL",
            Direction::Hold => "HOLD",
        };
        let record = PredictionRecord {
            id: pid,
            model_id: id,
            user_id: user,
            symbol: symbol.to_owned(),
            direction: direction.to_owned(),
            confidence: prediction.confidence,
            prediction: object.to_string(),
            model_version: location.version,
            executed_order_id: None,
            auto_outcome: None,
            created_at: now,
            ttl: (now + Duration::days(PREDICTION_TTL_DAYS)).timestamp(),
        };
        self.store.put(Item::from_record(&prediction_key(user, id, pid), &record)?, Some(Condition::NotExists)).await?;
        Ok(StoredPrediction { record, prediction: object })
    }

    /// The newest stored candles for a prediction: the user's dataset, else the platform's system dataset.
    async fn stored_candles(&self, user: Uuid, symbol: &str, tf: Timeframe) -> MlResult<(CandlesHolder, Value)> {
        for (owner, kind) in [(Owner::User(user), "user_dataset"), (Owner::System, "system_dataset")] {
            if let Some(tail) = self.datasets.tail(owner, symbol, tf, PREDICT_HISTORY_BARS).await? {
                let source = json!({"kind": kind, "origin": tail.record.source, "last_bar": tail.record.last,
                                    "dataset_bars": tail.record.bars});
                return Ok((CandlesHolder::Shared(tail), source));
            }
        }
        Err(MlError::BadRequest(format!(
            "No candles stored for {symbol} {}: upload them with POST /api/v1/ml/datasets or send candles with the request",
            tf_name(tf)
        )))
    }

    /// A model's predictions, newest first.
    pub async fn predictions(
        &self,
        user: Uuid,
        id: Uuid,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> MlResult<(Vec<StoredPrediction>, Option<Cursor>)> {
        self.get_model(user, id).await?;
        let now = self.clock.epoch_seconds();
        let page = self
            .store
            .query(
                Query::partition(crate::auth::store::user_pk(user))
                    .sk_prefix(prediction_prefix(id))
                    .descending()
                    .limit(limit)
                    .after(cursor),
            )
            .await?;
        let mut out = Vec::with_capacity(page.items.len());
        for item in page.items.iter().filter(|i| !i.is_expired(now)) {
            let record: PredictionRecord = item.to_record()?;
            let prediction = serde_json::from_str(&record.prediction).unwrap_or(Value::Null);
            out.push(StoredPrediction { record, prediction });
        }
        Ok((out, page.cursor))
    }

    pub(crate) async fn latest_prediction(&self, user: Uuid, model: Uuid) -> MlResult<Option<PredictionRecord>> {
        let page = self
            .store
            .query(
                Query::partition(crate::auth::store::user_pk(user))
                    .sk_prefix(prediction_prefix(model))
                    .descending()
                    .limit(5),
            )
            .await?;
        let now = self.clock.epoch_seconds();
        Ok(page.items.iter().find(|i| !i.is_expired(now)).map(|i| i.to_record()).transpose()?)
    }

    /// Predictions of a model since `since` (at most 1,000 counted).
    pub(crate) async fn count_since(&self, user: Uuid, model: Uuid, since: DateTime<Utc>) -> MlResult<usize> {
        let floor =
            uuid::Builder::from_unix_timestamp_millis(since.timestamp_millis().max(0) as u64, &[0; 10]).into_uuid();
        let mut n = 0;
        let mut cursor = None;
        loop {
            let page = self
                .store
                .query(
                    Query::partition(crate::auth::store::user_pk(user))
                        .sk(crate::ports::SkCondition::Between(
                            format!("{}{floor}", prediction_prefix(model)),
                            format!("{}~", prediction_prefix(model)),
                        ))
                        .limit(500)
                        .after(cursor),
                )
                .await?;
            n += page.items.len();
            cursor = page.cursor;
            if cursor.is_none() || n >= 1_000 {
                return Ok(n.min(1_000));
            }
        }
    }

    // ------------------------------------------------------------------ activation

    /// `POST /ml/models/{id}/activate`: makes this the user's active model for its symbol (the previous one is
    /// deactivated in the same transaction).
    pub async fn activate(&self, user: Uuid, id: Uuid) -> MlResult<ModelRecord> {
        for attempt in 0..MAX_ATTEMPTS {
            let model = self.get_model(user, id).await?;
            if model.artefact.is_none() {
                return Err(MlError::BadRequest("Cannot activate untrained model".into()));
            }
            let lock_key = active_key(user, &model.symbol);
            let lock = self
                .store
                .get(&lock_key)
                .await?
                .and_then(|i| i.get_s("model_id").and_then(|s| Uuid::parse_str(s).ok()));
            let mine = TxOp::Update {
                key: model_key(user, id),
                update: Update::new().set("is_active", true),
                condition: Some(
                    Condition::Exists
                        .and(Condition::eq("symbol", model.symbol.as_str()))
                        .and(Condition::ne("artefact", StoreValue::Null)),
                ),
            };
            let now = store_ser(&self.clock.now())?;
            let ops = match lock {
                Some(m) if m == id => {
                    if model.is_active {
                        self.index_active(user, &model.symbol, id).await?;
                        return Ok(model);
                    }
                    vec![
                        TxOp::ConditionCheck { key: lock_key, condition: Condition::eq("model_id", id.to_string()) },
                        mine,
                    ]
                }
                Some(other) => {
                    let mut ops = vec![TxOp::Update {
                        key: lock_key,
                        update: Update::new()
                            .set("model_id", id.to_string())
                            .set("activated_at", now)
                            .set("GSI1PK", ACTIVE_INDEX_PK)
                            .set("GSI1SK", active_index_sk(user, &model.symbol)),
                        condition: Some(Condition::eq("model_id", other.to_string())),
                    }];
                    if self.store.get(&model_key(user, other)).await?.is_some() {
                        ops.push(TxOp::Update {
                            key: model_key(user, other),
                            update: Update::new().set("is_active", false),
                            condition: Some(Condition::Exists),
                        });
                    }
                    ops.push(mine);
                    ops
                }
                None => vec![
                    TxOp::Put {
                        item: Item::new(&lock_key)
                            .with("model_id", id.to_string())
                            .with("symbol", model.symbol.as_str())
                            .with("activated_at", now)
                            .with("GSI1PK", ACTIVE_INDEX_PK)
                            .with("GSI1SK", active_index_sk(user, &model.symbol)),
                        condition: Some(Condition::NotExists),
                    },
                    mine,
                ],
            };
            match self.store.transact_write(ops).await {
                Ok(()) => {
                    info!(user = %user, model = %id, symbol = %model.symbol, "ml model activated");
                    return self.get_model(user, id).await;
                }
                Err(StoreError::TransactionCanceled(_)) | Err(StoreError::Throttled) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MlError::Busy("The model store is busy, please retry".into()))
    }

    /// Puts an `ACTIVE#<SYMBOL>` item written before the auto-trading index existed into it (activating an
    /// active model again does it).
    async fn index_active(&self, user: Uuid, symbol: &str, id: Uuid) -> MlResult<()> {
        let key = active_key(user, symbol);
        if let Some(item) = self.store.get(&key).await?
            && item.get_s("GSI1PK").is_none()
        {
            let update = Update::new().set("GSI1PK", ACTIVE_INDEX_PK).set("GSI1SK", active_index_sk(user, symbol));
            match self.store.update(&key, update, Some(Condition::eq("model_id", id.to_string()))).await {
                Ok(_) => {}
                Err(e) if e.is_condition_failure() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// `POST /ml/models/{id}/deactivate`.
    pub async fn deactivate(&self, user: Uuid, id: Uuid) -> MlResult<ModelRecord> {
        for attempt in 0..MAX_ATTEMPTS {
            let model = self.get_model(user, id).await?;
            let lock_key = active_key(user, &model.symbol);
            let holds =
                self.store.get(&lock_key).await?.is_some_and(|i| i.get_s("model_id") == Some(id.to_string().as_str()));
            let flag = TxOp::Update {
                key: model_key(user, id),
                update: Update::new().set("is_active", false),
                condition: Some(Condition::Exists),
            };
            let result = if holds {
                let ops = vec![
                    TxOp::Delete { key: lock_key, condition: Some(Condition::eq("model_id", id.to_string())) },
                    flag,
                ];
                self.store.transact_write(ops).await
            } else if model.is_active {
                self.store.transact_write(vec![flag]).await
            } else {
                return Ok(model);
            };
            match result {
                Ok(()) => return self.get_model(user, id).await,
                Err(StoreError::TransactionCanceled(_)) | Err(StoreError::Throttled) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MlError::Busy("The model store is busy, please retry".into()))
    }

    /// `GET /ml/dashboard/active-bots`: active models with their last prediction and today's (UTC) count.
    pub async fn active_bots(&self, user: Uuid) -> MlResult<Vec<ActiveBot>> {
        let today = self.clock.now().date_naive().and_time(NaiveTime::MIN).and_utc();
        let mut out = Vec::new();
        for model in self.all_models(user).await?.into_iter().filter(|m| m.is_active) {
            let last_prediction = self.latest_prediction(user, model.id).await?;
            let today_signals = self.count_since(user, model.id, today).await?;
            out.push(ActiveBot { model, last_prediction, today_signals });
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ execute

    /// `POST /ml/models/{id}/execute`: places the prediction's order through the order use case, with every
    /// check it makes (connector online, limits reserved atomically, margin, price sanity, SL/TP sides,
    /// verified e-mail) and an idempotency key derived from the prediction, so a prediction is executed once.
    pub async fn execute(
        &self,
        user: &CurrentUser,
        id: Uuid,
        input: ExecuteInput,
    ) -> MlResult<(Reply, StoredPrediction)> {
        let orders =
            self.orders.as_ref().ok_or_else(|| MlError::Busy("Trading is not available in this process".into()))?;
        self.get_model(user.id, id).await?;
        let item = self
            .store
            .get(&prediction_key(user.id, id, input.prediction_id))
            .await?
            .filter(|i| !i.is_expired(self.clock.epoch_seconds()))
            .ok_or_else(|| MlError::NotFound("Prediction not found".into()))?;
        let record: PredictionRecord = item.to_record()?;
        let prediction: Value = serde_json::from_str(&record.prediction).unwrap_or(Value::Null);
        let req = prediction_order(&record, &prediction, input.lot_size, input.connection_id, SOURCE_ML)?;
        let body = json!({"prediction_id": input.prediction_id, "lot_size": input.lot_size.normalize().to_string(),
                          "connection_id": input.connection_id});
        let idem = IdempotencyKey::new(
            &format!("ml-exec:{}", input.prediction_id.simple()),
            &format!("POST /ml/models/{id}/execute"),
            &body,
        )?;
        let reply = orders.place(user, req, Some(idem)).await?;
        if let Some(order_id) = order_id_of(&reply)
            && record.executed_order_id.is_none()
        {
            let update = Update::new().set("executed_order_id", order_id.to_string());
            if let Err(e) = self
                .store
                .update(&prediction_key(user.id, id, input.prediction_id), update, Some(Condition::Exists))
                .await
            {
                warn!(error = %e, "could not record the executed order on the prediction");
            }
        }
        Ok((reply, StoredPrediction { record, prediction }))
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

    // ------------------------------------------------------------------ defaults

    /// The system default record of a symbol.
    pub async fn default_record(&self, symbol: &str) -> MlResult<Option<DefaultRecord>> {
        Ok(self.store.get(&default_key(symbol)).await?.map(|i| i.to_record()).transpose()?)
    }

    /// Makes sure every default symbol has a default model or a training job for one (see [`super::defaults`]).
    /// Cheap once all are trained (a per-process flag).
    pub async fn ensure_defaults(&self) -> MlResult<()> {
        if self.defaults_ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut ready = true;
        for symbol in DEFAULT_SYMBOLS {
            let record = self.default_record(symbol).await?;
            match &record {
                Some(r) if r.status == TrainingStatus::Completed => continue,
                Some(r) if r.status == TrainingStatus::Failed => {}
                Some(r) if !self.is_stale(&r.job, r.status) => {}
                _ => {
                    self.queue_default(symbol, record.as_ref()).await?;
                }
            }
            ready = false;
        }
        if ready {
            self.defaults_ready.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Queues a (re)training of a symbol's default: conditional on the record as read, so concurrent callers
    /// queue one job.
    async fn queue_default(&self, symbol: &'static str, current: Option<&DefaultRecord>) -> MlResult<bool> {
        let now = self.clock.now();
        let job_id = self.ids.uuid();
        let mut record = match current {
            Some(r) => r.clone(),
            None => DefaultRecord {
                symbol: symbol.to_owned(),
                model_id: self.ids.uuid(),
                model_type: defaults::default_config(symbol).model.kind().as_str().to_owned(),
                status: TrainingStatus::Queued,
                error: None,
                job: JobFields::default(),
                version: None,
                checksum: None,
                next_version: 1,
                summary: None,
                data_source: None,
                completed_at: None,
                created_at: now,
            },
        };
        record.status = TrainingStatus::Queued;
        record.job = JobFields {
            job_id: Some(job_id),
            progress_stage: Some("queued".into()),
            progress_fraction: Some(0.0),
            progress_at: Some(now),
            training_requested_at: Some(now),
            ..JobFields::default()
        };
        let cond = match current.and_then(|r| r.job.job_id) {
            None if current.is_none() => Condition::NotExists,
            None => Condition::Exists,
            Some(j) => Condition::eq("job_id", j.to_string()),
        };
        match self.store.put(Item::from_record(&default_key(symbol), &record)?, Some(cond)).await {
            Ok(()) => {}
            Err(e) if e.is_condition_failure() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let job = super::jobs::TrainJob::TrainDefault { symbol: symbol.to_owned(), job_id };
        if let Err(e) = self.queue.send(self.config.queue, &job.to_body(), StdDuration::ZERO).await {
            warn!(symbol, error = %e, "could not queue the default model's training");
            let revert = Update::new()
                .set("status", TrainingStatus::Failed.as_str())
                .set("error", "The training queue was unavailable");
            let _ = self
                .store
                .update(&default_key(symbol), revert, Some(Condition::eq("job_id", job_id.to_string())))
                .await;
            return Err(e.into());
        }
        info!(symbol, job = %job_id, "default model training queued");
        Ok(true)
    }

    /// `POST /ml-models/defaults/{symbol}/retrain` (admin): queues a new training of the default (e.g. after
    /// system candles were uploaded).
    pub async fn retrain_default(&self, symbol: &'static str) -> MlResult<DefaultRecord> {
        let current = self.default_record(symbol).await?;
        if let Some(r) = &current
            && r.status.in_progress()
            && !self.is_stale(&r.job, r.status)
        {
            return Err(MlError::BadRequest(format!("The default {symbol} model is already being trained")));
        }
        if !self.queue_default(symbol, current.as_ref()).await? {
            return Err(MlError::Conflict("The default model changed meanwhile; retry".into()));
        }
        self.defaults_ready.store(false, Ordering::Relaxed);
        self.default_record(symbol).await?.ok_or_else(|| MlError::NotFound("No default model".into()))
    }

    /// The completed system default of a symbol, or why there is none yet (404 / 503 while it trains).
    pub async fn completed_default(&self, symbol: &'static str) -> MlResult<DefaultRecord> {
        self.ensure_defaults().await?;
        match self.default_record(symbol).await? {
            Some(r) if r.status == TrainingStatus::Completed && r.version.is_some() => Ok(r),
            Some(r) if r.version.is_some() && r.checksum.is_some() => Ok(r),
            Some(r) if r.status.in_progress() => {
                Err(MlError::Busy(format!("The default {symbol} model is being trained; try again in a minute")))
            }
            Some(r) => Err(MlError::NotFound(format!(
                "No default model configured for {symbol} (training failed: {})",
                r.error.unwrap_or_default()
            ))),
            None => Err(MlError::NotFound(format!("No default model configured for {symbol}"))),
        }
    }

    /// `POST /ml/models/import-default/{symbol}`: a model of the user pointing at the default's artefact
    /// (immutable version), one per symbol (a marker written in the same transaction).
    pub async fn import_default(&self, user: Uuid, symbol: &'static str) -> MlResult<ModelRecord> {
        if self.store.get(&imported_key(user, symbol)).await?.is_some() {
            return Err(MlError::BadRequest(format!("You already imported the default {symbol} model")));
        }
        let default = self.completed_default(symbol).await?;
        let (Some(version), Some(checksum)) = (default.version, default.checksum.clone()) else {
            return Err(MlError::NotFound(format!("No default model configured for {symbol}")));
        };
        let now = self.clock.now();
        let location = ArtefactLocation { system: true, model_id: default.model_id, version };
        let record = ModelRecord {
            id: self.new_v7(now),
            user_id: user,
            name: format!("{symbol} Default Model (System)"),
            model_type: default.model_type.clone(),
            symbol: symbol.to_owned(),
            timeframe: Timeframe::H1,
            strategy_id: None,
            config: json_text(&defaults::default_config(symbol))?,
            auto_trading: super::auto::AutoTradingSettings::default(),
            is_active: false,
            is_pretrained: true,
            default_symbol: Some(symbol.to_owned()),
            training_status: TrainingStatus::Completed,
            training_error: None,
            training_started_at: None,
            training_completed_at: default.completed_at,
            job: JobFields::default(),
            artefact: Some(location),
            artefact_checksum: Some(checksum),
            versions: Vec::new(),
            next_version: 1,
            summary: default.summary.clone(),
            metrics: None,
            data_source: default.data_source.clone(),
            created_at: now,
            updated_at: now,
        };
        let marker = TxOp::Put {
            item: Item::new(&imported_key(user, symbol)).with("model_id", record.id.to_string()),
            condition: Some(Condition::NotExists),
        };
        match self.insert_model(&record, vec![marker]).await {
            Err(MlError::Conflict(_)) => {
                Err(MlError::BadRequest(format!("You already imported the default {symbol} model")))
            }
            other => other.map(|_| record),
        }
    }

    /// The user's override for a symbol, if any.
    pub async fn user_override(&self, user: Uuid, symbol: &str) -> MlResult<Option<OverrideRecord>> {
        Ok(self.store.get(&override_key(user, symbol)).await?.map(|i| i.to_record()).transpose()?)
    }

    /// The default a user sees for a symbol: their override (when its model still exists and is trained), else
    /// the completed system default.
    pub async fn effective_default(&self, user: Uuid, symbol: &'static str) -> MlResult<Option<EffectiveDefault>> {
        if let Some(o) = self.user_override(user, symbol).await?
            && let Ok(m) = self.get_model(user, o.model_id).await
            && let Some(loc) = m.artefact
        {
            return Ok(Some(EffectiveDefault {
                symbol,
                model_id: m.id,
                model_path: model_path(owner_of(&loc, user), &loc),
                is_user_override: true,
                summary: None,
            }));
        }
        self.system_default(symbol).await
    }

    /// The completed system default of a symbol, as a user sees it.
    pub async fn system_default(&self, symbol: &'static str) -> MlResult<Option<EffectiveDefault>> {
        Ok(self.default_record(symbol).await?.and_then(|d| {
            let version = d.version?;
            let loc = ArtefactLocation { system: true, model_id: d.model_id, version };
            Some(EffectiveDefault {
                symbol,
                model_id: d.model_id,
                model_path: model_path(Owner::System, &loc),
                is_user_override: false,
                summary: parse_json(&d.summary),
            })
        }))
    }

    /// `POST /ml-models/defaults/{symbol}`: the user's override. `model_id` must be one of the user's trained
    /// models of that symbol (or the system default), and `model_path` its artefact path as listed by
    /// `/ml-models/models` — both are looked up, never used to build a key.
    pub async fn set_override(
        &self,
        user: Uuid,
        symbol: &'static str,
        model_id: &str,
        path: &str,
    ) -> MlResult<EffectiveDefault> {
        let not_found = || MlError::NotFound(format!("Model not found: {path}"));
        let id = Uuid::parse_str(model_id.trim()).map_err(|_| not_found())?;
        if let Some(system) = self.system_default(symbol).await?
            && system.model_id == id
        {
            if system.model_path != path {
                return Err(not_found());
            }
            // Choosing the system default is removing the override.
            self.store.delete(&override_key(user, symbol), None).await?;
            return Ok(system);
        }
        let model = self.get_model(user, id).await.map_err(|_| not_found())?;
        let loc = model.artefact.ok_or_else(not_found)?;
        if model.symbol != symbol || model_path(owner_of(&loc, user), &loc) != path {
            return Err(not_found());
        }
        let record = OverrideRecord { symbol: symbol.to_owned(), model_id: id, created_at: self.clock.now() };
        self.store.put(Item::from_record(&override_key(user, symbol), &record)?, None).await?;
        self.effective_default(user, symbol).await?.ok_or_else(not_found)
    }

    /// `DELETE /ml-models/defaults/{symbol}`: `false` when there was no override.
    pub async fn delete_override(&self, user: Uuid, symbol: &str) -> MlResult<bool> {
        Ok(self.store.delete(&override_key(user, symbol), None).await?.is_some())
    }

    /// The model artefacts a user can use for a symbol: the system default's versions and the user's own
    /// trained models, newest first.
    pub async fn model_files(&self, user: Uuid, symbol: &str) -> MlResult<Vec<ModelFile>> {
        let mut out = Vec::new();
        if let Some(d) = self.default_record(symbol).await?
            && let Some(version) = d.version
        {
            let loc = ArtefactLocation { system: true, model_id: d.model_id, version };
            let size = self
                .blobs
                .list(&artefact_key(Owner::System, d.model_id, version)?.to_string())
                .await?
                .first()
                .map_or(0, |b| b.size);
            out.push(ModelFile {
                model_id: d.model_id,
                model_path: model_path(Owner::System, &loc),
                symbol: symbol.to_owned(),
                size_bytes: size,
                created_at: d.completed_at.unwrap_or(d.created_at),
                metadata: json!({"system_default": true, "model_type": d.model_type, "version": version,
                                 "performance_metrics": parse_json(&d.summary), "data_source": parse_json(&d.data_source)}),
            });
        }
        for m in self.all_models(user).await?.into_iter().filter(|m| m.symbol == symbol && !m.is_pretrained) {
            for v in &m.versions {
                let loc = ArtefactLocation { system: false, model_id: m.id, version: v.version };
                out.push(ModelFile {
                    model_id: m.id,
                    model_path: model_path(Owner::User(user), &loc),
                    symbol: symbol.to_owned(),
                    size_bytes: v.size_bytes,
                    created_at: v.trained_at,
                    metadata: json!({"system_default": false, "name": m.name, "model_type": m.model_type,
                                     "version": v.version, "current": m.artefact == Some(loc)}),
                });
            }
        }
        out.sort_by_key(|f| std::cmp::Reverse(f.created_at));
        Ok(out)
    }
}

/// Candles for a prediction: sent with the request, or a stored tail shared with the tail cache.
enum CandlesHolder {
    Owned(CandleSeries),
    Shared(super::datasets::Tail),
}

/// A prediction on a cached tail: its feature row is computed once per dataset revision, so a warm prediction
/// is the model alone.
pub fn predict_tail(
    artefact: &nusatrade_ml::Artefact,
    tail: &super::datasets::Tail,
) -> Result<nusatrade_ml::Prediction, PredictError> {
    use nusatrade_ml::features::{STABLE_HISTORY_BARS, WARMUP_BARS};
    let (candles, row) = tail.last_row();
    let (Some(last), Some(row), true) = (candles.last(), row, candles.len() > WARMUP_BARS) else {
        return Err(PredictError::NotEnoughBars {
            got: candles.len(),
            needed: WARMUP_BARS + 1,
            recommended: STABLE_HISTORY_BARS,
        });
    };
    nusatrade_ml::predict::predict_row(artefact, row, last, candles.len(), &artefact.header.signal)
}

/// `nusatrade_ml::predict` over a slice of candles (the stored tail is shared, not re-validated: it was validated
/// when written): at most the newest `4 × STABLE_HISTORY_BARS` bars, the feature row of the last one, the decision
/// with the artefact's own signal settings.
pub fn predict_candles(
    artefact: &nusatrade_ml::Artefact,
    candles: &[nusatrade_ml::Candle],
) -> Result<nusatrade_ml::Prediction, PredictError> {
    use nusatrade_ml::features::{STABLE_HISTORY_BARS, WARMUP_BARS, last_row};
    let candles = &candles[candles.len().saturating_sub(4 * STABLE_HISTORY_BARS)..];
    let (Some(last), true) = (candles.last(), candles.len() > WARMUP_BARS) else {
        return Err(PredictError::NotEnoughBars {
            got: candles.len(),
            needed: WARMUP_BARS + 1,
            recommended: STABLE_HISTORY_BARS,
        });
    };
    let row = last_row(candles).expect("non-empty");
    nusatrade_ml::predict::predict_row(artefact, &row, last, candles.len(), &artefact.header.signal)
}

/// The order a stored prediction asks for: BUY/SELL (HOLD is 400 "Cannot execute HOLD signal"), the lot checked
/// against the instrument, the entry price and SL/TP from the prediction (rounded to the instrument, on the right
/// sides). `execute` and the auto-trading cycle place it through `OrderService::place`.
pub fn prediction_order(
    record: &PredictionRecord,
    prediction: &Value,
    lot_size: Decimal,
    connection_id: Option<Uuid>,
    source: &'static str,
) -> MlResult<PlaceOrder> {
    let side = match record.direction.as_str() {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => return Err(MlError::BadRequest("Cannot execute HOLD signal".into())),
    };
    let instrument = crate::trading::fields::instrument(&record.symbol)
        .map_err(|_| MlError::BadRequest(format!("{} is not a tradable symbol", record.symbol)))?;
    let lots = instrument.validate_lots(lot_size).map_err(|e| {
        use nusatrade_domain::instrument::VolumeError as V;
        MlError::BadRequest(match e {
            V::NotPositive | V::BelowMinimum { .. } => {
                format!("Lot size must be at least {}", instrument.min_volume.normalize())
            }
            V::AboveMaximum { max, .. } => format!("Lot size cannot exceed {}", max.normalize()),
            V::NotOnStep { step, .. } => format!("Lot size must be in {} increments", step.normalize()),
        })
    })?;
    let price_of = |field: &str| -> Option<Decimal> {
        prediction.get(field).and_then(Value::as_f64).and_then(Decimal::from_f64).map(|d| instrument.round_price(d))
    };
    let price = price_of("entry_price")
        .filter(|p| *p > Decimal::ZERO)
        .ok_or_else(|| MlError::BadRequest("The prediction has no entry price".into()))?;
    let (stop_loss, take_profit) = (price_of("stop_loss"), price_of("take_profit"));
    validate_stops(side, price, stop_loss, take_profit).map_err(|e| MlError::BadRequest(e.to_string()))?;
    Ok(PlaceOrder {
        instrument,
        side,
        lots,
        price,
        stop_loss,
        take_profit,
        broker_connection_id: connection_id,
        trailing_stop: None,
        source,
    })
}

/// The order id of a `place` reply (`trade.id`).
pub fn order_id_of(reply: &Reply) -> Option<Uuid> {
    reply.body.pointer("/trade/id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
}

/// The `model_type` strings accepted on input → the family.
pub fn model_kind(model_type: &str) -> Option<ModelKind> {
    ModelKind::from_model_type(model_type)
}
