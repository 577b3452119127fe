//! Backtest runs and their sessions (contract §2.7 `run`, `sessions`; quick backtests of §2.5): the strategy is
//! compiled, the candles read ([`super::data`]), the engine run ([`nusatrade_backtest`]) off the async threads, and
//! the session written — its summary in the item store, its trades and curves as one gzip JSON blob. A run over more
//! bars than [`BacktestConfig::sync_max_bars`] is queued on the `backtest` queue instead ([`super::jobs`]) and the
//! session answers `queued`; the worker writes the same session. A failed run leaves a `failed` session with its
//! reason; a result is visible only once its blob is written (the session turns `completed` last).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use nusatrade_backtest::engine::{self, Commission, EngineConfig, OrderMode, Outcome, Sizing, Trade};
use nusatrade_backtest::ml_signals;
use nusatrade_backtest::rules::ExternalSeries;
use nusatrade_backtest::stats::{self, Stats};
use nusatrade_backtest::strategy::{BacktestMetrics, CompiledStrategy, StrategySpec};
use nusatrade_domain::instrument::{self, Instrument};
use nusatrade_ml::candles::Columns;
use nusatrade_ml::{CandleSeries, Timeframe};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};
use uuid::Uuid;

use super::data::{self, DataSource};
use super::error::{BacktestError, BacktestResult};
use super::store::{
    RunSettings, SESSION_PREFIX, SessionKind, SessionRecord, SessionStatus, StrategyRecord, key_of, result_blob,
    session_key,
};
use super::strategies::{self, StrategyService};
use crate::keys::user_pk;
use crate::ml::datasets::Datasets;
use crate::ml::store::tf_name;
use crate::ports::{BlobStore, Clock, Condition, Cursor, IdGenerator, Item, ItemStore, Ports, Query, Queue, Update};

/// The queue of long backtests and optimizer chunks.
pub const BACKTEST_QUEUE: &str = "backtest";
/// Env: most bars a run answers synchronously (more are queued).
pub const ENV_SYNC_MAX_BARS: &str = "NUSATRADE_BACKTEST_SYNC_MAX_BARS";
/// Largest result blob read back.
pub const MAX_RESULT_BYTES: u64 = 64 << 20;
/// Most sessions a list returns per page.
pub const MAX_SESSIONS_PAGE: u32 = 100;
/// Trades shown in a run's answer (the original's 50) and stored summaries.
pub const ANSWER_TRADES: usize = 50;
/// Equity points shown in a run's answer (the original's last 100).
pub const ANSWER_EQUITY: usize = 100;
/// Longest quick backtest, days.
pub const MAX_QUICK_DAYS: u32 = 3_650;

/// Settings of the backtest use cases.
#[derive(Clone, Debug, PartialEq)]
pub struct BacktestConfig {
    /// Most bars a run answers synchronously (default 100,000).
    pub sync_max_bars: usize,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig { sync_max_bars: 100_000 }
    }
}

impl BacktestConfig {
    pub fn from_env() -> Result<Self, String> {
        let mut c = BacktestConfig::default();
        if let Ok(v) = std::env::var(ENV_SYNC_MAX_BARS) {
            c.sync_max_bars = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (2..=10_000_000).contains(n))
                .ok_or_else(|| format!("{ENV_SYNC_MAX_BARS} must be an integer in 2..=10000000, got {v:?}"))?;
        }
        Ok(c)
    }
}

/// A run as requested (already validated at the edge).
#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    pub strategy_id: Uuid,
    pub symbol: &'static str,
    pub timeframe: Timeframe,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub initial_balance: f64,
    pub commission: f64,
    pub slippage: f64,
    pub spread_pips: f64,
    pub lot_size: f64,
    pub leverage: f64,
    pub data: DataSource,
    pub params: std::collections::BTreeMap<String, f64>,
    /// The caller's trained model whose signals the rules read (`ml_signal`, `ml_confidence`).
    pub model_id: Option<Uuid>,
}

/// A run's trades and curves (the result blob).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Bar times (epoch seconds).
    pub times: Vec<i64>,
    pub equity: Vec<f64>,
    pub drawdown: Vec<f64>,
    pub trades: Vec<Trade>,
}

/// A stored session's strategy, candles and external series ([`BacktestService::inputs`]).
pub(super) struct Inputs {
    pub spec: StrategySpec,
    pub compiled: CompiledStrategy,
    pub series: CandleSeries,
    pub external: ExternalSeries,
}

/// A session and, once completed, its result.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionView {
    pub session: SessionRecord,
    pub result: Option<RunResult>,
}

/// The backtest use cases over the ports.
#[derive(Clone)]
pub struct BacktestService {
    pub store: Arc<dyn ItemStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub datasets: Datasets,
    pub strategies: StrategyService,
    pub config: BacktestConfig,
}

impl BacktestService {
    pub fn new(ports: &Ports, config: BacktestConfig) -> Self {
        BacktestService {
            store: ports.store.clone(),
            blobs: ports.blobs.clone(),
            queue: ports.queue.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            datasets: Datasets::new(ports.store.clone(), ports.blobs.clone(), ports.clock.clone()),
            strategies: StrategyService::new(ports),
            config,
        }
    }

    // ------------------------------------------------------------------ runs

    /// `POST /backtest/run`: runs at once when the data fits [`BacktestConfig::sync_max_bars`], else queues it.
    pub async fn run(&self, user: Uuid, req: RunRequest) -> BacktestResult<SessionView> {
        let record = self.strategies.get_visible(user, req.strategy_id).await?;
        let (spec, compiled) = strategies::compile(&record)?;
        check_params(&spec, &req.params)?;
        let run =
            data::load(&self.datasets, user, req.symbol, req.timeframe, req.start_date, req.end_date, req.data).await?;
        let now = self.clock.now();
        let mut session = SessionRecord {
            id: self.ids.time_ordered(now),
            user_id: user,
            kind: SessionKind::Backtest,
            status: SessionStatus::Running,
            settings: settings_of(&req, &record),
            optimization: None,
            bars: run.series.len() as u64,
            progress: 0,
            chunks: 0,
            chunks_done: 0,
            stats: None,
            error: None,
            generated_data: run.generated,
            created_at: now,
            completed_at: None,
        };
        if run.series.len() > self.config.sync_max_bars {
            session.status = SessionStatus::Queued;
            self.put_session(&session).await?;
            let body = serde_json::json!({"kind": "run", "user": user, "session": session.id}).to_string();
            if let Err(e) = self.queue.send(BACKTEST_QUEUE, &body, StdDuration::ZERO).await {
                self.fail(&session, &format!("could not queue the run: {e}")).await;
                return Err(e.into());
            }
            info!(%user, session = %session.id, bars = session.bars, "backtest queued");
            return Ok(SessionView { session, result: None });
        }
        self.put_session(&session).await?;
        let external = self.externals(user, &compiled, &run.series, req.model_id).await?;
        self.execute(session, spec, compiled, run.series, external).await
    }

    /// Runs a stored session (the queue consumer's `run`): reads its strategy and data again.
    pub async fn run_stored(&self, user: Uuid, session_id: Uuid) -> BacktestResult<()> {
        let Some(mut session) = self.session(user, session_id).await? else { return Ok(()) };
        if matches!(session.status, SessionStatus::Completed | SessionStatus::Failed) {
            return Ok(()); // a redelivery of a finished job
        }
        let inputs = match self.inputs(&session).await {
            Ok(i) => i,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                self.fail(&session, &e.to_string()).await;
                return Ok(());
            }
        };
        session.status = SessionStatus::Running;
        session.bars = inputs.series.len() as u64;
        self.put_session(&session).await?;
        let Inputs { spec, compiled, series, external } = inputs;
        match self.execute(session, spec, compiled, series, external).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_transient() => Err(e),
            Err(_) => Ok(()), // the session says why
        }
    }

    /// What a queued job needs of its stored session: the strategy (compiled), the candles of its range and the
    /// external series its rules read — read again, as the request would have.
    pub(super) async fn inputs(&self, session: &SessionRecord) -> BacktestResult<Inputs> {
        let s = &session.settings;
        let record = self.strategies.get_visible(session.user_id, s.strategy_id).await?;
        let (spec, compiled) = strategies::compile(&record)?;
        let symbol = instrument::lookup(&s.symbol).map_err(|e| BacktestError::InvalidRequest(e.to_string()))?.symbol;
        let tf = Timeframe::parse(&s.timeframe)
            .ok_or_else(|| BacktestError::InvalidRequest(format!("unsupported timeframe {}", s.timeframe)))?;
        let source = DataSource::parse(&s.data).unwrap_or(DataSource::Stored);
        let run = data::load(&self.datasets, session.user_id, symbol, tf, s.start_date, s.end_date, source).await?;
        let external = self.externals(session.user_id, &compiled, &run.series, s.model_id).await?;
        Ok(Inputs { spec, compiled, series: run.series, external })
    }

    /// Runs the engine and completes (or fails) the session.
    async fn execute(
        &self,
        mut session: SessionRecord,
        spec: StrategySpec,
        compiled: CompiledStrategy,
        series: CandleSeries,
        external: ExternalSeries,
    ) -> BacktestResult<SessionView> {
        let settings = session.settings.clone();
        let started = std::time::Instant::now();
        let computed = tokio::task::spawn_blocking(move || simulate(&spec, &compiled, &series, &settings, &external))
            .await
            .map_err(|e| BacktestError::InvalidRequest(format!("the backtest stopped unexpectedly: {e}")));
        let (result, stats) = match computed.and_then(|r| r) {
            Ok(v) => v,
            Err(e) => {
                self.fail(&session, &e.to_string()).await;
                return Err(e);
            }
        };
        self.write_result(session.user_id, session.id, &result).await?;
        session.status = SessionStatus::Completed;
        session.progress = 100;
        session.stats = Some(stats);
        session.completed_at = Some(self.clock.now());
        self.put_session(&session).await?;
        info!(
            user = %session.user_id, session = %session.id, bars = session.bars, trades = result.trades.len(),
            elapsed_ms = started.elapsed().as_millis() as u64, "backtest completed"
        );
        Ok(SessionView { session, result: Some(result) })
    }

    /// Marks a session failed with `reason` (best effort: the failure is logged either way).
    pub(super) async fn fail(&self, session: &SessionRecord, reason: &str) {
        warn!(user = %session.user_id, session = %session.id, reason, "backtest failed");
        let mut failed = session.clone();
        failed.status = SessionStatus::Failed;
        failed.error = Some(reason.chars().take(1_000).collect());
        failed.completed_at = Some(self.clock.now());
        if let Err(e) = self.put_session(&failed).await {
            warn!(session = %session.id, error = %e, "could not mark the backtest failed");
        }
    }

    /// `POST /strategies/{id}/quick-backtest`: the newest `days` days of the stored data, the original's engine
    /// settings (balance 10,000, no commission, 0.5 pip slippage, 1 pip spread); the metrics are cached on the
    /// strategy. No session is written.
    pub async fn quick(
        &self,
        user: Uuid,
        strategy_id: Uuid,
        symbol: &'static str,
        tf: Timeframe,
        days: u32,
    ) -> BacktestResult<(BacktestMetrics, usize)> {
        let record = self.strategies.get(user, strategy_id).await?;
        let (spec, compiled) = strategies::compile(&record)?;
        let series = data::latest(&self.datasets, user, symbol, tf, days).await?.ok_or_else(|| {
            BacktestError::NoData(format!(
                "no {symbol} {} candles are stored: upload a dataset (POST /api/v1/ml/datasets?symbol={symbol}&timeframe={}) first",
                tf_name(tf),
                tf_name(tf)
            ))
        })?;
        let pip = instrument::lookup(symbol).map(|i| i.pip_size.to_f64().unwrap_or(0.0001)).unwrap_or(0.0001);
        let settings = RunSettings {
            strategy_id,
            strategy_owner: user,
            symbol: symbol.to_owned(),
            timeframe: tf_name(tf).to_owned(),
            start_date: series.candles()[0].time.date_naive(),
            end_date: series.candles()[series.len() - 1].time.date_naive(),
            initial_balance: 10_000.0,
            commission: 0.0,
            slippage: 0.5 * pip,
            spread_pips: 1.0,
            lot_size: 0.1,
            leverage: 100.0,
            data: DataSource::Stored.as_str().into(),
            params: Default::default(),
            model_id: None,
        };
        let bars = series.len();
        let external = self.externals(user, &compiled, &series, None).await?;
        let (_, stats) = tokio::task::spawn_blocking(move || simulate(&spec, &compiled, &series, &settings, &external))
            .await
            .map_err(|e| BacktestError::InvalidRequest(format!("the backtest stopped unexpectedly: {e}")))??;
        let metrics = metrics_of(&stats);
        self.strategies.set_metrics(user, strategy_id, metrics.clone()).await?;
        Ok((metrics, bars))
    }

    /// The external series the strategy's rules read: the volatility regimes, and the signals of the caller's
    /// trained model `model_id` (required when the rules read `ml_signal` or `ml_confidence`).
    pub async fn externals(
        &self,
        user: Uuid,
        compiled: &CompiledStrategy,
        series: &CandleSeries,
        model_id: Option<Uuid>,
    ) -> BacktestResult<ExternalSeries> {
        let needs = compiled.external_inputs();
        let mut out = ExternalSeries::new();
        if needs.is_empty() {
            return Ok(out);
        }
        let names: Vec<&str> = needs.iter().map(|e| e.name()).collect();
        if names.iter().any(|n| n.starts_with("vol_regime")) {
            out.extend(ml_signals::volatility_regimes(series));
        }
        if names.iter().any(|n| n.starts_with("ml_")) {
            let Some(id) = model_id else {
                return Err(BacktestError::InvalidRequest(format!(
                    "the strategy's rules read {}: give model_id, one of your trained models",
                    names.join(", ")
                )));
            };
            let model: crate::ml::store::ModelRecord = self
                .store
                .get(&crate::ml::store::model_key(user, id))
                .await?
                .ok_or_else(|| BacktestError::InvalidRequest("Model not found".into()))?
                .to_record()?;
            let (Some(location), Some(checksum)) = (model.artefact, model.artefact_checksum.clone()) else {
                return Err(BacktestError::InvalidRequest("Model not trained. Please train the model first.".into()));
            };
            let owner = crate::ml::artefacts::owner_of(&location, user);
            let artefact = crate::ml::artefacts::read(self.blobs.as_ref(), owner, &location, &checksum)
                .await
                .map_err(|e| BacktestError::InvalidRequest(format!("the model cannot be read: {e}")))?;
            let series = series.clone();
            let signals = tokio::task::spawn_blocking(move || ml_signals::model_signals(&artefact, &series))
                .await
                .map_err(|e| BacktestError::InvalidRequest(format!("the model's signals stopped unexpectedly: {e}")))?;
            out.extend(signals);
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ sessions

    pub(super) async fn put_session(&self, session: &SessionRecord) -> BacktestResult<()> {
        let item = Item::from_record(&key_of(session), session)?;
        self.store.put(item, None).await?;
        Ok(())
    }

    /// One of the user's sessions (`None` when unknown or another user's).
    pub async fn session(&self, user: Uuid, id: Uuid) -> BacktestResult<Option<SessionRecord>> {
        let Some(item) = self.store.get(&session_key(user, id)).await? else { return Ok(None) };
        let s: SessionRecord = item.to_record()?;
        Ok((s.user_id == user).then_some(s))
    }

    /// One of the user's sessions with its result (404 otherwise).
    pub async fn session_with_result(&self, user: Uuid, id: Uuid) -> BacktestResult<SessionView> {
        let session = self.session(user, id).await?.ok_or(BacktestError::SessionNotFound)?;
        let result = if session.status == SessionStatus::Completed && session.kind == SessionKind::Backtest {
            self.read_result(user, id).await?
        } else {
            None
        };
        Ok(SessionView { session, result })
    }

    /// The user's sessions, newest first, a page at a time.
    pub async fn sessions(
        &self,
        user: Uuid,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> BacktestResult<(Vec<SessionRecord>, Option<Cursor>)> {
        let query = Query::partition(user_pk(user))
            .sk_prefix(SESSION_PREFIX)
            .descending()
            .limit(limit.clamp(1, MAX_SESSIONS_PAGE))
            .after(cursor);
        let page = self.store.query(query).await?;
        let sessions = page.items.iter().map(|i| i.to_record::<SessionRecord>()).collect::<Result<Vec<_>, _>>()?;
        Ok((sessions, page.cursor))
    }

    async fn write_result(&self, user: Uuid, session: Uuid, result: &RunResult) -> BacktestResult<()> {
        let bytes = gzip_json(result)?;
        self.blobs.put(&result_blob(user, session)?, Bytes::from(bytes), "application/gzip").await?;
        Ok(())
    }

    async fn read_result(&self, user: Uuid, session: Uuid) -> BacktestResult<Option<RunResult>> {
        match self.blobs.get(&result_blob(user, session)?, MAX_RESULT_BYTES).await? {
            Some(bytes) => Ok(Some(gunzip_json(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Records a running job's progress (0–99; completion writes 100).
    pub(super) async fn update_progress(&self, key: &crate::ports::Key, progress: u8) -> BacktestResult<()> {
        let update = Update::new().set("progress", i64::from(progress.min(99)));
        match self.store.update(key, update, Some(Condition::Exists)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_condition_failure() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

pub(super) fn settings_of(req: &RunRequest, strategy: &StrategyRecord) -> RunSettings {
    RunSettings {
        strategy_id: strategy.id,
        strategy_owner: strategy.user_id,
        symbol: req.symbol.to_owned(),
        timeframe: tf_name(req.timeframe).to_owned(),
        start_date: req.start_date,
        end_date: req.end_date,
        initial_balance: req.initial_balance,
        commission: req.commission,
        slippage: req.slippage,
        spread_pips: req.spread_pips,
        lot_size: req.lot_size,
        leverage: req.leverage,
        data: req.data.as_str().to_owned(),
        params: req.params.clone(),
        model_id: req.model_id,
    }
}

/// Refuses parameter overrides the strategy does not declare.
pub fn check_params(spec: &StrategySpec, params: &std::collections::BTreeMap<String, f64>) -> BacktestResult<()> {
    for name in params.keys() {
        if !spec.parameters.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
            return Err(BacktestError::InvalidRequest(format!("the strategy has no parameter named {name:?}")));
        }
    }
    Ok(())
}

/// The engine settings of a run: the strategy's risk management, the request's costs, the instrument's contract.
/// Positions are sized by risk to the stop when the strategy has a stop and a risk percent, else by the request's
/// fixed lots; one position at a time, an opposite entry reverses it; open positions close at the last bar.
pub fn engine_config(spec: &StrategySpec, s: &RunSettings) -> BacktestResult<(EngineConfig, &'static Instrument)> {
    let instrument = instrument::lookup(&s.symbol).map_err(|e| BacktestError::InvalidRequest(e.to_string()))?;
    let rm = spec.risk_management.clone().unwrap_or_default();
    let risk = rm.to_risk().map_err(|ps| BacktestError::InvalidStrategy(ps.iter().map(|p| p.to_string()).collect()))?;
    let sizing = match (risk.stop_loss, rm.risk_sizing()) {
        (engine::StopRule::None, _) | (_, None) => Sizing::FixedLots(decimal(s.lot_size)?),
        (_, Some(by_risk)) => by_risk,
    };
    let pip = instrument.pip_size.to_f64().unwrap_or(0.0001);
    let config = EngineConfig {
        initial_cash: s.initial_balance,
        commission: if s.commission > 0.0 { Commission::PerLot(s.commission) } else { Commission::None },
        spread: s.spread_pips * pip,
        slippage: s.slippage,
        leverage: s.leverage,
        sizing,
        mode: OrderMode::Reverse,
        risk,
        swap: None,
        atr_period: 14,
        close_at_end: true,
    };
    Ok((config, instrument))
}

fn decimal(v: f64) -> BacktestResult<rust_decimal::Decimal> {
    rust_decimal::Decimal::from_f64(v).ok_or_else(|| BacktestError::InvalidRequest(format!("{v} is not a number")))
}

/// Signals, engine and statistics of one run (CPU-bound: called off the async threads).
pub fn simulate(
    spec: &StrategySpec,
    compiled: &CompiledStrategy,
    series: &CandleSeries,
    settings: &RunSettings,
    external: &ExternalSeries,
) -> BacktestResult<(RunResult, Stats)> {
    let (config, instrument) = engine_config(spec, settings)?;
    let bars: Columns = series.columns();
    let signals = compiled
        .signals_with(&bars, external, &settings.params)
        .map_err(|e| BacktestError::InvalidRequest(e.to_string()))?;
    let outcome: Outcome = engine::run(&bars, &signals, Some(instrument), &config)
        .map_err(|e| BacktestError::InvalidRequest(e.to_string()))?;
    let stats = stats::compute(&outcome, &bars, &config);
    let result = RunResult {
        times: bars.time.iter().map(DateTime::<Utc>::timestamp).collect(),
        equity: outcome.equity,
        drawdown: outcome.drawdown,
        trades: outcome.trades,
    };
    Ok((result, stats))
}

/// The full statistics table as JSON (finite numbers; undefined ones null).
pub fn stats_view(s: &Stats) -> Value {
    match serde_json::to_value(s) {
        Ok(Value::Object(mut m)) => {
            for v in m.values_mut() {
                if v.as_f64().is_some_and(|f| !f.is_finite()) {
                    *v = Value::Null;
                }
            }
            Value::Object(m)
        }
        _ => Value::Null,
    }
}

/// The original's `BacktestMetrics` (rounded as it rounds them).
pub fn metrics_of(s: &Stats) -> BacktestMetrics {
    BacktestMetrics::from_stats(s)
}

pub(super) fn gzip_json<T: Serialize>(v: &T) -> BacktestResult<Vec<u8>> {
    let json = serde_json::to_vec(v).map_err(|e| BacktestError::Corrupt(e.to_string()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&json).and_then(|_| gz.finish()).map_err(|e| BacktestError::Corrupt(e.to_string()))
}

pub(super) fn gunzip_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> BacktestResult<T> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_RESULT_BYTES * 8)
        .read_to_end(&mut json)
        .map_err(|e| BacktestError::Corrupt(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| BacktestError::Corrupt(e.to_string()))
}

pub(super) use gunzip_json as read_gzip_json;
pub(super) use gzip_json as write_gzip_json;
