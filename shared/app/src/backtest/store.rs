//! Store layout of strategies and backtests (contract §5 `strategies`, `backtest_sessions`, `backtest_results`):
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `USER#<uid>` | `STRATEGY#<strategy uuidv7>` | one strategy ([`StrategyRecord`]); v7 ids sort by creation, so a listing newest first is one descending query; a public one also carries `GSI1PK = STRATEGY#PUBLIC`, `GSI1SK = <id>` |
//! | `USER#<uid>` | `COUNT#STRATEGIES` | the user's strategy count (`count`), kept in the create/delete transactions so [`MAX_STRATEGIES_PER_USER`](super::MAX_STRATEGIES_PER_USER) holds under concurrency |
//! | `USER#<uid>` | `BTSESSION#<session uuidv7>` | one backtest run ([`SessionRecord`]): request, status, progress, summary statistics, reason of a failure; newest first by sort key |
//! | `USER#<uid>` | `BTOPT#<session uuidv7>` | one optimization (a [`SessionRecord`] of kind `optimization`): request, chunks and finished chunks, status |
//! | `USER#<uid>` | `BTCHUNK#<session>#<chunk>` | marks a finished optimizer chunk; written in the same transaction as the session's `chunks_done` increment, so a redelivered chunk is counted once |
//!
//! The large parts live in the blob store under keys built here from UUIDs and integers only, never from request
//! strings: `backtests/<user>/<session>/result.json.gz` (trades, equity and drawdown curves, times),
//! `backtests/<user>/<session>/chunks/<n>.json.gz` (an optimizer chunk's partial result) and
//! `backtests/<user>/<session>/optimization.json.gz` (the merged optimization).

use chrono::{DateTime, NaiveDate, Utc};
use nusatrade_backtest::stats::Stats;
use nusatrade_backtest::strategy::{BacktestMetrics, RiskManagement, StrategyParameter, StrategyRule, StrategySpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::keys::user_pk;
use crate::ports::{BlobError, BlobKey, Key};

/// Sort-key prefix of a user's strategies.
pub const STRATEGY_PREFIX: &str = "STRATEGY#";
/// Sort key of the user's strategy counter.
pub const STRATEGY_COUNT_SK: &str = "COUNT#STRATEGIES";
/// Attribute of the counter.
pub const COUNT_ATTR: &str = "count";
/// `GSI1PK` of public strategies.
pub const PUBLIC_INDEX_PK: &str = "STRATEGY#PUBLIC";
/// Sort-key prefix of a user's backtest sessions.
pub const SESSION_PREFIX: &str = "BTSESSION#";

pub fn strategy_key(user: Uuid, id: Uuid) -> Key {
    Key::new(user_pk(user), format!("{STRATEGY_PREFIX}{id}"))
}
pub fn strategy_count_key(user: Uuid) -> Key {
    Key::new(user_pk(user), STRATEGY_COUNT_SK)
}
/// Sort-key prefix of a user's optimizations.
pub const OPTIMIZATION_PREFIX: &str = "BTOPT#";

pub fn session_key(user: Uuid, id: Uuid) -> Key {
    Key::new(user_pk(user), format!("{SESSION_PREFIX}{id}"))
}
pub fn optimization_key(user: Uuid, id: Uuid) -> Key {
    Key::new(user_pk(user), format!("{OPTIMIZATION_PREFIX}{id}"))
}
/// The key of a session of either kind.
pub fn key_of(session: &SessionRecord) -> Key {
    match session.kind {
        SessionKind::Backtest => session_key(session.user_id, session.id),
        SessionKind::Optimization => optimization_key(session.user_id, session.id),
    }
}
pub fn chunk_marker_key(user: Uuid, session: Uuid, chunk: u32) -> Key {
    Key::new(user_pk(user), format!("BTCHUNK#{session}#{chunk}"))
}
/// Blob of a run's trades and curves.
pub fn result_blob(user: Uuid, session: Uuid) -> Result<BlobKey, BlobError> {
    BlobKey::new(format!("backtests/{user}/{session}/result.json.gz"))
}
/// Blob of one optimizer chunk's partial result.
pub fn chunk_blob(user: Uuid, session: Uuid, chunk: u32) -> Result<BlobKey, BlobError> {
    BlobKey::new(format!("backtests/{user}/{session}/chunks/{chunk}.json.gz"))
}
/// Blob of a merged optimization.
pub fn optimization_blob(user: Uuid, session: Uuid) -> Result<BlobKey, BlobError> {
    BlobKey::new(format!("backtests/{user}/{session}/optimization.json.gz"))
}

/// One strategy (rule-based, AI-generated, or a legacy `/backtest/strategies` one with a `config`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The stored type (`custom`, `ai_generated`, `ma_crossover`, `rsi`, `macd`, …).
    pub strategy_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default)]
    pub parameters: Vec<StrategyParameter>,
    #[serde(default)]
    pub indicators: Vec<String>,
    #[serde(default)]
    pub entry_rules: Vec<StrategyRule>,
    #[serde(default)]
    pub exit_rules: Vec<StrategyRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_management: Option<RiskManagement>,
    /// Legacy backtest parameters (`fast_period`, …) or a template's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default)]
    pub is_public: bool,
    /// The last quick-backtest's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtest_results: Option<BacktestMetrics>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StrategyRecord {
    /// Its rule-strategy fields, as stored (a legacy record's rules come from its config: `strategies::spec_of`).
    pub fn spec(&self) -> StrategySpec {
        StrategySpec {
            name: self.name.clone(),
            description: self.description.clone(),
            strategy_type: self.strategy_type.clone(),
            parameters: self.parameters.clone(),
            indicators: self.indicators.clone(),
            entry_rules: self.entry_rules.clone(),
            exit_rules: self.exit_rules.clone(),
            risk_management: self.risk_management.clone(),
        }
    }

    /// An empty `custom` strategy of `user` (inactive, private), created and updated `now`.
    pub fn draft(id: Uuid, user: Uuid, now: DateTime<Utc>) -> Self {
        StrategyRecord {
            id,
            user_id: user,
            name: String::new(),
            description: None,
            strategy_type: "custom".into(),
            code: None,
            parameters: Vec::new(),
            indicators: Vec::new(),
            entry_rules: Vec::new(),
            exit_rules: Vec::new(),
            risk_management: None,
            config: None,
            is_active: false,
            is_public: false,
            backtest_results: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// What a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// One backtest run.
    Backtest,
    /// A parameter optimization (grid or random search, maybe walk-forward).
    Optimization,
}

/// Where a session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// On the `backtest` queue.
    Queued,
    /// A worker is on it.
    Running,
    Completed,
    /// Ended with `error`; nothing half-written is shown.
    Failed,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Queued => "queued",
            SessionStatus::Running => "running",
            SessionStatus::Completed => "completed",
            SessionStatus::Failed => "failed",
        }
    }
}

/// The settings of a run, as requested and resolved (stored so a queued job and a reader see the same).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub strategy_id: Uuid,
    /// Owner of the strategy (the caller, or the author of a public one).
    pub strategy_owner: Uuid,
    pub symbol: String,
    pub timeframe: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub initial_balance: f64,
    /// Account currency per lot per side.
    pub commission: f64,
    /// Price units, against every fill.
    pub slippage: f64,
    /// Pips.
    pub spread_pips: f64,
    pub lot_size: f64,
    pub leverage: f64,
    /// `stored` (the user's dataset, else the platform's) or `generated` (a seeded random walk, labelled so).
    pub data: String,
    /// Parameter values replacing the strategy's defaults.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, f64>,
    /// The model whose signals the rules read, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<Uuid>,
}

fn lenient_stats<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Stats>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => nusatrade_backtest::optimize::wire::lenient(v).map(Some).map_err(serde::de::Error::custom),
    }
}

/// One backtest or optimization session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: SessionKind,
    pub status: SessionStatus,
    pub settings: RunSettings,
    /// The optimization's request (parameter space, objective, …), for `Optimization` sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimization: Option<Value>,
    /// Bars the run covers (known once the data is read).
    #[serde(default)]
    pub bars: u64,
    /// Progress 0–100.
    #[serde(default)]
    pub progress: u8,
    /// Optimizer chunks: total and finished.
    #[serde(default)]
    pub chunks: u32,
    #[serde(default)]
    pub chunks_done: u32,
    /// The statistics of a finished backtest (undefined ones, e.g. a Sharpe ratio without trades, are NaN: stored
    /// as null and read back as NaN).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_stats")]
    pub stats: Option<Stats>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The data was generated, not stored candles.
    #[serde(default)]
    pub generated_data: bool,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}
