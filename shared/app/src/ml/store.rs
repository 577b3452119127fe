//! Store layout of the ML pipeline (one table, single-table design):
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `USER#<uid>` | `MODEL#<model id>` | one model ([`ModelRecord`]): config, training status and progress, artefact versions, metrics |
//! | `USER#<uid>` | `COUNT#MLMODELS` | the user's model count (`count`), kept in the create/delete transactions so [`MAX_MODELS_PER_USER`](super::MAX_MODELS_PER_USER) holds under concurrency |
//! | `USER#<uid>` | `PRED#<model id>#<prediction uuidv7>` | one stored prediction ([`PredictionRecord`]); v7 ids sort by time, so a model's predictions are one sort-key prefix, newest first when read descending; `ttl` one year |
//! | `USER#<uid>` | `ACTIVE#<SYMBOL>` | the active model for a symbol (`model_id`): activation is a conditional transaction on this item and the models' `is_active` flags, so one model per user per symbol is active, also under concurrency; `GSI1PK = ML#ACTIVE`, `GSI1SK = <uid>#<SYMBOL>` list every user's active models for the auto-trading cycle |
//! | `USER#<uid>` | `AUTOTRADE#<model id>#<YYYY-MM-DD>` | the auto-trading cycle's trades of a model on a UTC day (`trades`), reserved before an order is placed (conditional on `max_trades_per_day`), released when none was; `ttl` 3 days |
//! | `USER#<uid>` | `IMPORTED#<SYMBOL>` | marks the user's imported default model of a symbol (`model_id`), written with the model in one transaction (one import per symbol) |
//! | `USER#<uid>` | `DEFAULT#<SYMBOL>` | the user's default-model override ([`OverrideRecord`]) |
//! | `USER#<uid>` | `DATASET#<SYMBOL>#<TF>` | a candle dataset's metadata ([`DatasetRecord`]); the candles are blobs |
//! | `SYSTEM#ML` | `DEFAULT#<SYMBOL>` | the system default model of a symbol ([`DefaultRecord`]) |
//! | `SYSTEM#ML` | `DATASET#<SYMBOL>#<TF>` | the platform's own candle dataset (what defaults are trained on) |
//! | `SYSTEM#ML` | `AUTOTRADE#LEASE` | the auto-trading cycle's lease (`holder` run id, `origin`, `started_at`; `ttl` = its deadline): put only if absent (an expired lease counts as absent), deleted by its holder — one cycle at a time across every process |
//! | `SYSTEM#ML` | `AUTOTRADE#STATUS` | the last cycle: `last_started_at`, `last_run` (completion), its result summary |
//!
//! Blob keys are built here only, from UUIDs, catalogue symbols (`&'static str` from the instrument catalogue),
//! [`Timeframe`] names, months and integers — never from request strings (audit GAP #1):
//!
//! * `models/{user uuid | system}/{model uuid}/v{n}/model.json.gz` — artefacts ([`artefact_key`]);
//! * `datasets/{user uuid | system}/{SYMBOL}/{TF}/{YYYY-MM}/{write uuid}.csv.gz` — one month of candles, under a key
//!   fresh for every write ([`chunk_key`]): chunks are copy-on-write, so a writer that loses a race deletes only
//!   its own keys, never live data.

use chrono::{DateTime, Utc};
use nusatrade_ml::Timeframe;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::user_pk;
use crate::ports::{BlobError, BlobKey, Key};

/// Partition of the platform's own ML items (defaults, system datasets).
pub const SYSTEM_PK: &str = "SYSTEM#ML";
/// Sort-key prefix of a user's models.
pub const MODEL_PREFIX: &str = "MODEL#";
/// Sort-key prefix of predictions.
pub const PRED_PREFIX: &str = "PRED#";
/// Sort-key prefix of datasets.
pub const DATASET_PREFIX: &str = "DATASET#";
/// Sort key of the user's model counter.
pub const MODEL_COUNT_SK: &str = "COUNT#MLMODELS";
/// Attribute of the counter.
pub const COUNT_ATTR: &str = "count";

/// Whose data: a user's or the platform's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    User(Uuid),
    System,
}

impl Owner {
    /// The partition key.
    pub fn pk(self) -> String {
        match self {
            Owner::User(u) => user_pk(u),
            Owner::System => SYSTEM_PK.to_owned(),
        }
    }
    /// The blob-key segment: the user's UUID, or `system` (never a UUID's spelling).
    pub fn segment(self) -> String {
        match self {
            Owner::User(u) => u.to_string(),
            Owner::System => "system".to_owned(),
        }
    }
}

pub fn model_key(user: Uuid, model: Uuid) -> Key {
    Key::new(user_pk(user), format!("{MODEL_PREFIX}{model}"))
}
pub fn model_count_key(user: Uuid) -> Key {
    Key::new(user_pk(user), MODEL_COUNT_SK)
}
/// Sort-key prefix of one model's predictions.
pub fn prediction_prefix(model: Uuid) -> String {
    format!("{PRED_PREFIX}{model}#")
}
pub fn prediction_key(user: Uuid, model: Uuid, prediction: Uuid) -> Key {
    Key::new(user_pk(user), format!("{}{prediction}", prediction_prefix(model)))
}
pub fn active_key(user: Uuid, symbol: &str) -> Key {
    Key::new(user_pk(user), format!("ACTIVE#{symbol}"))
}
/// GSI1 partition of every user's `ACTIVE#<SYMBOL>` items (what the auto-trading cycle reads; no table scan).
pub const ACTIVE_INDEX_PK: &str = "ML#ACTIVE";
/// GSI1 sort key of an `ACTIVE#<SYMBOL>` item.
pub fn active_index_sk(user: Uuid, symbol: &str) -> String {
    format!("{user}#{symbol}")
}
/// The auto-trading cycle's lease.
pub fn auto_lease_key() -> Key {
    Key::new(SYSTEM_PK, "AUTOTRADE#LEASE")
}
/// The auto-trading cycle's last run.
pub fn auto_status_key() -> Key {
    Key::new(SYSTEM_PK, "AUTOTRADE#STATUS")
}
/// A model's auto-trades on one UTC day.
pub fn auto_day_key(user: Uuid, model: Uuid, day: chrono::NaiveDate) -> Key {
    Key::new(user_pk(user), format!("AUTOTRADE#{model}#{}", day.format("%Y-%m-%d")))
}
pub fn imported_key(user: Uuid, symbol: &str) -> Key {
    Key::new(user_pk(user), format!("IMPORTED#{symbol}"))
}
pub fn override_key(user: Uuid, symbol: &str) -> Key {
    Key::new(user_pk(user), format!("DEFAULT#{symbol}"))
}
pub fn default_key(symbol: &str) -> Key {
    Key::new(SYSTEM_PK, format!("DEFAULT#{symbol}"))
}
pub fn dataset_key(owner: Owner, symbol: &str, timeframe: Timeframe) -> Key {
    Key::new(owner.pk(), format!("{DATASET_PREFIX}{symbol}#{}", tf_name(timeframe)))
}

/// `H1`, `M15`, ...
pub fn tf_name(tf: Timeframe) -> &'static str {
    tf.name()
}

/// Where an artefact lives: whose, which model, which version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArtefactLocation {
    /// True for a system default's artefact (`models/system/...`).
    pub system: bool,
    /// The owning model (a user's model, or the default's model id).
    pub model_id: Uuid,
    pub version: u32,
}

/// `models/{owner}/{model}/v{n}/model.json.gz`.
pub fn artefact_key(owner: Owner, model: Uuid, version: u32) -> Result<BlobKey, BlobError> {
    BlobKey::new(format!("models/{}/{model}/v{version}/model.json.gz", owner.segment()))
}

/// Prefix of every artefact of one model (`models/{owner}/{model}/`).
pub fn artefact_prefix(owner: Owner, model: Uuid) -> String {
    format!("models/{}/{model}/", owner.segment())
}

/// `datasets/{owner}/{SYMBOL}/{TF}/{YYYY-MM}/{write id}.csv.gz`.
pub fn chunk_key(owner: Owner, symbol: &str, tf: Timeframe, month: &str, id: Uuid) -> Result<BlobKey, BlobError> {
    BlobKey::new(format!("datasets/{}/{symbol}/{}/{month}/{}.csv.gz", owner.segment(), tf_name(tf), id.simple()))
}

/// Prefix of every chunk of one dataset.
pub fn dataset_prefix(owner: Owner, symbol: &str, tf: Timeframe) -> String {
    format!("datasets/{}/{symbol}/{}/", owner.segment(), tf_name(tf))
}

/// Training state of a model (and of a system default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingStatus {
    /// Never trained.
    Idle,
    /// A job is on the queue.
    Queued,
    /// A job holds the lease and is running.
    Training,
    Completed,
    Failed,
}

impl TrainingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TrainingStatus::Idle => "idle",
            TrainingStatus::Queued => "queued",
            TrainingStatus::Training => "training",
            TrainingStatus::Completed => "completed",
            TrainingStatus::Failed => "failed",
        }
    }
    /// Queued or running.
    pub fn in_progress(self) -> bool {
        matches!(self, TrainingStatus::Queued | TrainingStatus::Training)
    }
}

/// One stored artefact version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionRef {
    pub version: u32,
    /// SHA-256 (hex) the artefact was written with; verified again on every load.
    pub checksum: String,
    pub size_bytes: u64,
    pub trained_at: DateTime<Utc>,
}

/// The training job currently attached to a model (or default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFields {
    /// The job id the latest `POST .../train` queued; a message with another id is stale.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// Attempts so far (a redelivered message after a crash is a new attempt of the same job).
    #[serde(default)]
    pub job_attempt: u32,
    /// While a consumer runs the job: until when it holds it (epoch seconds; the consumer's own deadline).
    #[serde(default)]
    pub lease_until: Option<i64>,
    #[serde(default)]
    pub progress_stage: Option<String>,
    #[serde(default)]
    pub progress_fraction: Option<f64>,
    #[serde(default)]
    pub progress_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub training_requested_at: Option<DateTime<Utc>>,
}

/// One model of a user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The family (`gradient_boosting`, `random_forest`, `logistic_regression`).
    pub model_type: String,
    pub symbol: String,
    pub timeframe: Timeframe,
    #[serde(default)]
    pub strategy_id: Option<Uuid>,
    /// The validated training config (`nusatrade_ml::TrainConfig` as JSON text, so floats stay exact).
    pub config: String,
    /// The auto-trading knobs (the `config` keys `confidence_threshold`, `max_trades_per_day`,
    /// `cooldown_minutes`, `lot_size`; defaults for records written before they existed).
    #[serde(default)]
    pub auto_trading: super::auto::rules::AutoTradingSettings,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default)]
    pub is_pretrained: bool,
    /// For an imported default: its symbol.
    #[serde(default)]
    pub default_symbol: Option<String>,
    pub training_status: TrainingStatus,
    #[serde(default)]
    pub training_error: Option<String>,
    #[serde(default)]
    pub training_started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub training_completed_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub job: JobFields,
    /// The artefact predictions use (`None` until trained).
    #[serde(default)]
    pub artefact: Option<ArtefactLocation>,
    /// Its checksum (the cache key and the load-time check).
    #[serde(default)]
    pub artefact_checksum: Option<String>,
    /// Stored versions of this model's own artefacts, newest last (the last few are kept).
    #[serde(default)]
    pub versions: Vec<VersionRef>,
    /// Version number the next training writes.
    #[serde(default = "one")]
    pub next_version: u32,
    /// The flat performance summary (`PerformanceSummary` JSON).
    #[serde(default)]
    pub summary: Option<String>,
    /// The full training metrics (`TrainingMetrics` JSON, audit GAP #16).
    #[serde(default)]
    pub metrics: Option<String>,
    /// The data the artefact was trained on (`DataSource` JSON).
    #[serde(default)]
    pub data_source: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn one() -> u32 {
    1
}

/// One stored prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    pub id: Uuid,
    pub model_id: Uuid,
    pub user_id: Uuid,
    pub symbol: String,
    /// `BUY`, `SELL`, `HOLD`.
    pub direction: String,
    pub confidence: f64,
    /// The prediction object (§6.6) as JSON text.
    pub prediction: String,
    pub model_version: u32,
    #[serde(default)]
    pub executed_order_id: Option<Uuid>,
    /// For a prediction of the auto-trading cycle: what the cycle did with it (`executed`, `hold`,
    /// `below_threshold`, `not_executed: <why>`); absent while its order is being placed.
    #[serde(default)]
    pub auto_outcome: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ttl: i64,
}

/// One month of candles of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// `YYYY-MM`.
    pub month: String,
    /// The write that produced it (its blob key's last segment).
    pub id: Uuid,
    /// The dataset revision it was written at.
    pub rev: u64,
    pub bars: u64,
    pub size_bytes: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// Where a dataset's candles came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetSource {
    /// `POST /api/v1/ml/datasets`.
    Upload,
    /// A CSV the local platform imported from `NUSATRADE_ML_SEED_DIR` at start.
    SeedFile,
    /// Generated by the platform (a seeded random walk): **not market data**.
    Generated,
    /// The user's own connector's price history (`POST /api/v1/ml/datasets/from-connector`).
    Connector,
}

/// A candle dataset: metadata and its month chunks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub symbol: String,
    pub timeframe: Timeframe,
    pub bars: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub size_bytes: u64,
    /// Month chunks, oldest first.
    pub chunks: Vec<ChunkRef>,
    /// Bumped by every write (optimistic concurrency).
    pub rev: u64,
    /// The latest write's source.
    pub source: DatasetSource,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user's default-model override for a symbol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverrideRecord {
    pub symbol: String,
    pub model_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// The system default model of a symbol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefaultRecord {
    pub symbol: String,
    /// The default's id (its artefacts live under `models/system/{model_id}/`).
    pub model_id: Uuid,
    pub model_type: String,
    pub status: TrainingStatus,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(flatten)]
    pub job: JobFields,
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default = "one")]
    pub next_version: u32,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub data_source: Option<String>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What a model was trained on (stored with the model, shown by the routes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// `user_dataset`, `system_dataset`.
    pub kind: String,
    /// The dataset's source (`upload`, `seed_file`, `generated`).
    pub origin: DatasetSource,
    pub symbol: String,
    pub timeframe: Timeframe,
    pub bars: usize,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// Plain words, e.g. that generated data is not market data.
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_ids_and_catalogue_symbols_only() {
        let u = Uuid::from_u128(7);
        let m = Uuid::from_u128(9);
        let k = artefact_key(Owner::User(u), m, 3).unwrap();
        assert_eq!(k.as_str(), format!("models/{u}/{m}/v3/model.json.gz"));
        assert_eq!(artefact_key(Owner::System, m, 1).unwrap().as_str(), format!("models/system/{m}/v1/model.json.gz"));
        assert!(k.as_str().starts_with(&artefact_prefix(Owner::User(u), m)));
        let c = chunk_key(Owner::User(u), "EURUSD", Timeframe::H1, "2024-01", m).unwrap();
        assert_eq!(c.as_str(), format!("datasets/{u}/EURUSD/H1/2024-01/{}.csv.gz", m.simple()));
        assert!(c.as_str().starts_with(&dataset_prefix(Owner::User(u), "EURUSD", Timeframe::H1)));
        // Another model's prefix is not a prefix of this one's keys.
        assert!(!k.as_str().starts_with(&artefact_prefix(Owner::User(u), Uuid::from_u128(90))));
        assert_eq!(prediction_key(u, m, Uuid::from_u128(1)).sk, format!("PRED#{m}#{}", Uuid::from_u128(1)));
    }

    #[test]
    fn records_round_trip_through_items() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let r = ModelRecord {
            id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            name: "m".into(),
            model_type: "gradient_boosting".into(),
            symbol: "EURUSD".into(),
            timeframe: Timeframe::H1,
            strategy_id: None,
            config: "{}".into(),
            auto_trading: crate::ml::auto::rules::AutoTradingSettings {
                confidence_threshold: 0.55,
                max_trades_per_day: 3,
                cooldown_minutes: 45,
                lot_size: rust_decimal::Decimal::new(2, 2),
            },
            is_active: false,
            is_pretrained: false,
            default_symbol: None,
            training_status: TrainingStatus::Training,
            training_error: None,
            training_started_at: Some(now),
            training_completed_at: None,
            job: JobFields {
                job_id: Some(Uuid::from_u128(3)),
                job_attempt: 2,
                lease_until: Some(1_700_000_900),
                progress_stage: Some("training".into()),
                progress_fraction: Some(0.35),
                progress_at: Some(now),
                training_requested_at: Some(now),
            },
            artefact: Some(ArtefactLocation { system: false, model_id: Uuid::from_u128(1), version: 2 }),
            artefact_checksum: Some("ab".into()),
            versions: vec![VersionRef { version: 2, checksum: "ab".into(), size_bytes: 10, trained_at: now }],
            next_version: 3,
            summary: Some("{\"accuracy\":0.5}".into()),
            metrics: None,
            data_source: None,
            created_at: now,
            updated_at: now,
        };
        let item = crate::ports::Item::from_record(&model_key(r.user_id, r.id), &r).unwrap();
        assert_eq!(item.get_s("job_id"), Some(Uuid::from_u128(3).to_string().as_str()), "job fields are top-level");
        let back: ModelRecord = item.to_record().unwrap();
        assert_eq!(back, r);
    }
}
