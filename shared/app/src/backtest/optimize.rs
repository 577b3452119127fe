//! Analyses of finished runs and parameter searches: the equity/drawdown chart and Monte Carlo of a session, and
//! optimizations (grid or random search split into chunks on the `backtest` queue, merged by the worker that
//! finishes the last chunk; walk-forward as one job).
//!
//! Chunk accounting is redelivery-safe: a worker writes its chunk's partial result (a blob under a key of its own),
//! then in ONE transaction puts the chunk's marker item (condition: absent) and adds 1 to the session's
//! `chunks_done`. A redelivered chunk fails the marker's condition and is not counted twice. Whoever sees
//! `chunks_done == chunks` merges every partial (deterministically, so two mergers write the same result) and
//! completes the session.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use nusatrade_backtest::chart::{self, ChartOptions};
use nusatrade_backtest::montecarlo::{self, Method, MonteCarloConfig};
use nusatrade_backtest::optimize::{
    self as opt, Backtest, Control, HeatmapAxes, Objective, OptimizeError, OptimizeResult, OptimizeSettings,
    ParamRange, ParamSpace, ParamSpec, Partial, Plan, SpaceSpec, WalkForwardConfig, WalkForwardReport,
};
use nusatrade_backtest::strategy::{DefaultValue, StrategySpec};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;
use uuid::Uuid;

use super::data;
use super::error::{BacktestError, BacktestResult};
use super::runs::{BACKTEST_QUEUE, BacktestService, Inputs, RunRequest, read_gzip_json, write_gzip_json};
use super::store::{
    SessionKind, SessionRecord, SessionStatus, chunk_blob, chunk_marker_key, key_of, optimization_blob,
    optimization_key,
};
use super::strategies;
use crate::ports::{CancelReason, StoreError, TxOp, Update};

/// Body of `POST /backtest/sessions/{id}/monte-carlo`.
#[derive(Debug, Default, Deserialize)]
pub struct MonteCarloRequest {
    pub simulations: Option<usize>,
    pub method: Option<Method>,
    pub seed: Option<u64>,
    /// Ruin level: a loss of this percent of the initial balance (default 50).
    pub ruin_pct: Option<f64>,
}

impl BacktestService {
    /// `GET /backtest/sessions/{id}/chart.svg`.
    pub async fn chart(&self, user: Uuid, id: Uuid) -> BacktestResult<String> {
        let view = self.session_with_result(user, id).await?;
        let Some(result) = view.result else {
            return Err(BacktestError::NotReady(format!("the session is {}", view.session.status.as_str())));
        };
        let s = &view.session.settings;
        let times: Vec<DateTime<Utc>> =
            result.times.iter().map(|t| DateTime::from_timestamp(*t, 0).unwrap_or_default()).collect();
        let options = ChartOptions {
            title: format!("{} {} {} – {}", s.symbol, s.timeframe, s.start_date, s.end_date),
            ..ChartOptions::default()
        };
        chart::equity_chart(&times, &result.equity, &result.drawdown, &options)
            .map_err(|e| BacktestError::Corrupt(e.to_string()))
    }

    /// `POST /backtest/sessions/{id}/monte-carlo`: resampling of the session's trades.
    pub async fn monte_carlo(&self, user: Uuid, id: Uuid, req: MonteCarloRequest) -> BacktestResult<Value> {
        let view = self.session_with_result(user, id).await?;
        let Some(result) = view.result else {
            return Err(BacktestError::NotReady(format!("the session is {}", view.session.status.as_str())));
        };
        let defaults = MonteCarloConfig::default();
        let ruin_pct = req.ruin_pct.unwrap_or(50.0);
        if !(ruin_pct > 0.0 && ruin_pct <= 100.0) {
            return Err(BacktestError::InvalidRequest("ruin_pct must be > 0 and <= 100".into()));
        }
        let config = MonteCarloConfig {
            simulations: req.simulations.unwrap_or(defaults.simulations),
            method: req.method.unwrap_or(defaults.method),
            seed: req.seed.unwrap_or(defaults.seed),
            ruin_fraction: 1.0 - ruin_pct / 100.0,
            ..defaults
        };
        let pnls = montecarlo::trade_pnls(&result.trades);
        let initial = view.session.settings.initial_balance;
        let method = config.method;
        let seed = config.seed;
        let report = tokio::task::spawn_blocking(move || montecarlo::run(&pnls, initial, &config))
            .await
            .map_err(|e| BacktestError::InvalidRequest(format!("the analysis stopped unexpectedly: {e}")))?
            .map_err(|e| BacktestError::InvalidRequest(e.to_string()))?;
        let svg = chart::montecarlo_chart(
            &report.bands,
            &ChartOptions {
                title: format!(
                    "Monte Carlo: {} {}",
                    report.simulations,
                    match method {
                        Method::Reshuffle => "reshuffles",
                        Method::Bootstrap => "bootstrap resamples",
                    }
                ),
                ..ChartOptions::default()
            },
        )
        .ok();
        let mut out = serde_json::to_value(&report).map_err(|e| BacktestError::Corrupt(e.to_string()))?;
        if let Some(m) = out.as_object_mut() {
            m.insert("session_id".into(), json!(id.to_string()));
            m.insert("method".into(), serde_json::to_value(method).unwrap_or(Value::Null));
            m.insert("seed".into(), json!(seed));
            m.insert("chart_svg".into(), json!(svg));
        }
        Ok(out)
    }
}

// ------------------------------------------------------------------ optimizations

/// Most combinations of one optimization (more: 400 with the grid's size).
pub const MAX_COMBINATIONS: u64 = 1_000_000;
/// Most chunks (queue messages) of one optimization.
pub const MAX_CHUNKS: u64 = 1_000;
/// Combinations per chunk when the request does not say.
pub const DEFAULT_CHUNK: u64 = 2_000;
/// Values per parameter when the space is taken from the strategy's own `min`/`max`.
pub const DEFAULT_STEPS: usize = 10;

/// The search part of `POST /backtest/optimize` (the run's fields are beside it).
#[derive(Debug, Default, Deserialize)]
pub struct OptimizeRequest {
    /// Parameter → `{min, max, step}` or `{values: [...]}`; default: every numeric parameter with `min` and `max`
    /// over [`DEFAULT_STEPS`] values.
    #[serde(default)]
    pub parameters: Option<BTreeMap<String, ParamRange>>,
    /// Conditions over parameter names, e.g. `fast < slow`.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// What to rank by (default `sharpe_ratio`).
    pub objective: Option<Objective>,
    /// `grid` (default) or `random`.
    pub method: Option<String>,
    /// Random search: how many combinations (default 100).
    pub samples: Option<u64>,
    /// Random search: the seed (default 0).
    pub seed: Option<u64>,
    /// Combinations with fewer trades rank last (default 1).
    pub min_trades: Option<usize>,
    /// How many of the best to keep (default 20).
    pub top_n: Option<usize>,
    /// Combinations per queue message (default [`DEFAULT_CHUNK`]).
    pub chunk_size: Option<u64>,
    /// Walk-forward analysis instead of one optimization over the whole range.
    pub walk_forward: Option<WalkForwardConfig>,
}

/// What an optimization session stores of its request (enough to rebuild the plan in any worker).
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct StoredSearch {
    pub space: SpaceSpec,
    /// `None`: the grid; `Some((n, seed))`: random search.
    pub random: Option<(u64, u64)>,
    pub settings: OptimizeSettings,
    pub chunk_size: u64,
    pub walk_forward: Option<WalkForwardConfig>,
}

impl StoredSearch {
    /// The plan (the same positions in every worker).
    pub fn plan(&self) -> Result<Plan, OptimizeError> {
        let space = ParamSpace::new(&self.space)?;
        match self.random {
            None => Plan::grid_with_limit(space, MAX_COMBINATIONS),
            Some((n, seed)) => Plan::random(space, n, seed),
        }
    }
}

fn invalid(e: OptimizeError) -> BacktestError {
    BacktestError::InvalidRequest(e.to_string())
}

/// The space of a request: its parameters, or the strategy's declared ranges.
fn space_of(spec: &StrategySpec, req: &OptimizeRequest) -> BacktestResult<SpaceSpec> {
    let declared = |name: &str| spec.parameters.iter().find(|p| p.name.eq_ignore_ascii_case(name));
    let params = match &req.parameters {
        Some(map) => map
            .iter()
            .map(|(name, range)| match declared(name) {
                Some(p) => Ok(ParamSpec { name: p.name.clone(), range: range.clone() }),
                None => Err(BacktestError::InvalidRequest(format!("the strategy has no parameter named {name:?}"))),
            })
            .collect::<BacktestResult<Vec<_>>>()?,
        None => spec
            .parameters
            .iter()
            .filter_map(|p| {
                let (min, max) = (p.min?, p.max?);
                (min < max && !matches!(p.default_value, DefaultValue::Bool(_))).then(|| {
                    let integer =
                        matches!(&p.default_value, DefaultValue::Int(_)) && min.fract() == 0.0 && max.fract() == 0.0;
                    let raw = (max - min) / (DEFAULT_STEPS - 1) as f64;
                    let step = if integer { raw.round().max(1.0) } else { raw };
                    ParamSpec { name: p.name.clone(), range: ParamRange::Range { min, max, step } }
                })
            })
            .collect(),
    };
    if params.is_empty() {
        return Err(BacktestError::InvalidRequest(
            "nothing to optimize: give `parameters`, or declare min and max on the strategy's parameters".into(),
        ));
    }
    Ok(SpaceSpec { params, constraints: req.constraints.clone() })
}

/// The stored form of a search over `spec`: its space (the request's, or the strategy's declared ranges), method,
/// ranking settings and chunk size — everything checked except the data.
pub fn search_of(spec: &StrategySpec, req: OptimizeRequest) -> BacktestResult<StoredSearch> {
    let space = space_of(spec, &req)?;
    let random = match req.method.as_deref().map(str::trim) {
        None | Some("") | Some("grid") => None,
        Some("random") => Some((req.samples.unwrap_or(100), req.seed.unwrap_or(0))),
        Some(other) => {
            return Err(BacktestError::InvalidRequest(format!("method must be grid or random, not {other:?}")));
        }
    };
    let heatmap = (space.params.len() >= 2)
        .then(|| HeatmapAxes { x: space.params[0].name.clone(), y: space.params[1].name.clone() });
    let settings = OptimizeSettings {
        objective: req.objective.unwrap_or_default(),
        min_trades: req.min_trades.unwrap_or(1),
        top_n: req.top_n.unwrap_or(20),
        heatmap,
    };
    let chunk_size = req.chunk_size.unwrap_or(DEFAULT_CHUNK);
    if chunk_size == 0 || chunk_size > MAX_COMBINATIONS {
        return Err(BacktestError::InvalidRequest(format!("chunk_size must be between 1 and {MAX_COMBINATIONS}")));
    }
    let search = StoredSearch { space, random, settings, chunk_size, walk_forward: req.walk_forward };
    let plan = search.plan().map_err(invalid)?;
    opt::evaluate_range(
        &plan,
        0..0,
        &opt::FnEvaluator(|_: &_| Err(String::new())),
        &search.settings,
        &Control::default(),
    )
    .map_err(invalid)?;
    Ok(search)
}

impl BacktestService {
    /// `POST /backtest/optimize`: checks the search, writes the session and queues its chunks (or its walk-forward).
    pub async fn start_optimization(&self, user: Uuid, run: RunRequest, req: OptimizeRequest) -> BacktestResult<Value> {
        let record = self.strategies.get_visible(user, run.strategy_id).await?;
        let (spec, _) = strategies::compile(&record)?;
        let search = search_of(&spec, req)?;
        let plan = search.plan().map_err(invalid)?;
        let chunk_size = search.chunk_size;
        let chunks = if search.walk_forward.is_some() { 1 } else { plan.chunks(chunk_size).len() as u64 };
        if chunks > MAX_CHUNKS {
            return Err(BacktestError::InvalidRequest(format!(
                "{} combinations in chunks of {chunk_size} make {chunks} jobs; at most {MAX_CHUNKS} (use a larger chunk_size)",
                plan.len()
            )));
        }
        let data =
            data::load(&self.datasets, user, run.symbol, run.timeframe, run.start_date, run.end_date, run.data).await?;
        if let Some(w) = &search.walk_forward {
            opt::windows(data.series.len(), w).map_err(invalid)?;
        }
        let now = self.clock.now();
        let session = SessionRecord {
            id: self.ids.time_ordered(now),
            user_id: user,
            kind: SessionKind::Optimization,
            status: SessionStatus::Queued,
            settings: super::runs::settings_of(&run, &record),
            optimization: Some(serde_json::to_value(&search).map_err(|e| BacktestError::Corrupt(e.to_string()))?),
            bars: data.series.len() as u64,
            progress: 0,
            chunks: chunks as u32,
            chunks_done: 0,
            stats: None,
            error: None,
            generated_data: data.generated,
            created_at: now,
            completed_at: None,
        };
        self.put_session(&session).await?;
        let bodies: Vec<String> = if search.walk_forward.is_some() {
            vec![json!({"kind": "walk_forward", "user": user, "session": session.id}).to_string()]
        } else {
            (0..chunks)
                .map(|c| json!({"kind": "optimize_chunk", "user": user, "session": session.id, "chunk": c}).to_string())
                .collect()
        };
        for body in &bodies {
            if let Err(e) = self.queue.send(BACKTEST_QUEUE, body, StdDuration::ZERO).await {
                self.fail(&session, &format!("could not queue the optimization: {e}")).await;
                return Err(e.into());
            }
        }
        info!(%user, session = %session.id, combinations = plan.len(), chunks, "optimization queued");
        Ok(json!({
            "id": session.id.to_string(),
            "status": session.status.as_str(),
            "combinations": plan.len(),
            "chunks": chunks,
            "objective": search.settings.objective,
            "walk_forward": search.walk_forward.is_some(),
            "bars": session.bars,
            "created_at": crate::wire::iso(now),
        }))
    }

    async fn optimization_session(
        &self,
        user: Uuid,
        id: Uuid,
    ) -> BacktestResult<Option<(SessionRecord, StoredSearch)>> {
        let Some(item) = self.store.get(&optimization_key(user, id)).await? else { return Ok(None) };
        let session: SessionRecord = item.to_record()?;
        if session.user_id != user {
            return Ok(None);
        }
        let search: StoredSearch = serde_json::from_value(session.optimization.clone().unwrap_or(Value::Null))
            .map_err(|e| BacktestError::Corrupt(format!("optimization request: {e}")))?;
        Ok(Some((session, search)))
    }

    /// A queue message's chunk: evaluates it (unless its partial is written already), counts it once, and merges
    /// when it was the last.
    pub async fn run_chunk(&self, user: Uuid, id: Uuid, chunk: u32) -> BacktestResult<()> {
        let Some((session, search)) = self.optimization_session(user, id).await? else { return Ok(()) };
        if matches!(session.status, SessionStatus::Completed | SessionStatus::Failed) {
            return Ok(());
        }
        let plan = match search.plan() {
            Ok(p) => p,
            Err(e) => return self.fail_optimization(&session, &e.to_string()).await,
        };
        let ranges = plan.chunks(search.chunk_size);
        let Some(range) = ranges.get(chunk as usize).cloned() else {
            return Err(BacktestError::InvalidRequest(format!("chunk {chunk} of {} does not exist", ranges.len())));
        };
        let blob = chunk_blob(user, id, chunk)?;
        if self.blobs.get(&blob, super::runs::MAX_RESULT_BYTES).await?.is_none() {
            let Inputs { spec, compiled, series, external } = match self.inputs(&session).await {
                Ok(v) => v,
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => return self.fail_optimization(&session, &e.to_string()).await,
            };
            let bars = series.columns();
            let (config, instrument) = super::runs::engine_config(&spec, &session.settings)?;
            let settings = search.settings.clone();
            let started = std::time::Instant::now();
            let partial = tokio::task::spawn_blocking(move || {
                let evaluator = Backtest {
                    bars: &bars,
                    strategy: &compiled,
                    external: &external,
                    instrument: Some(instrument),
                    config: &config,
                };
                opt::evaluate_range(&plan, range, &evaluator, &settings, &Control::default())
            })
            .await
            .map_err(|e| BacktestError::InvalidRequest(format!("the chunk stopped unexpectedly: {e}")))?;
            let partial = match partial {
                Ok(p) => p,
                Err(e) => return self.fail_optimization(&session, &e.to_string()).await,
            };
            self.blobs.put(&blob, Bytes::from(write_gzip_json(&partial)?), "application/gzip").await?;
            info!(%user, session = %id, chunk, evaluated = partial.evaluated, elapsed_ms = started.elapsed().as_millis() as u64, "optimizer chunk done");
        }
        // Count the chunk once: its marker and the increment in one transaction.
        let ops = vec![
            TxOp::Put {
                item: crate::ports::Item::new(&chunk_marker_key(user, id, chunk)),
                condition: Some(crate::ports::Condition::NotExists),
            },
            TxOp::Update {
                key: key_of(&session),
                update: Update::new().add("chunks_done", 1).set("status", SessionStatus::Running.as_str()),
                condition: Some(crate::ports::Condition::Exists),
            },
        ];
        match self.store.transact_write(ops).await {
            Ok(()) => {}
            Err(StoreError::TransactionCanceled(reasons))
                if reasons.contains(&CancelReason::ConditionalCheckFailed) => {}
            Err(e) => return Err(e.into()),
        }
        let Some((mut session, search)) = self.optimization_session(user, id).await? else { return Ok(()) };
        if session.chunks_done < session.chunks {
            let progress = (u64::from(session.chunks_done) * 100 / u64::from(session.chunks.max(1))) as u8;
            return self.update_progress(&key_of(&session), progress).await;
        }
        if session.status == SessionStatus::Completed {
            return Ok(());
        }
        // The last chunk: merge every partial.
        let mut parts: Vec<Partial> = Vec::with_capacity(session.chunks as usize);
        for c in 0..session.chunks {
            match self.blobs.get(&chunk_blob(user, id, c)?, super::runs::MAX_RESULT_BYTES).await? {
                Some(bytes) => parts.push(read_gzip_json(&bytes)?),
                None => return Err(BacktestError::Corrupt(format!("chunk {c} is counted but its result is missing"))),
            }
        }
        let result = opt::merge(parts).and_then(|merged| opt::finish(&search.plan()?, merged));
        let result = match result {
            Ok(r) => r,
            Err(e) => return self.fail_optimization(&session, &e.to_string()).await,
        };
        self.blobs
            .put(&optimization_blob(user, id)?, Bytes::from(write_gzip_json(&result)?), "application/gzip")
            .await?;
        session.status = SessionStatus::Completed;
        session.progress = 100;
        session.completed_at = Some(self.clock.now());
        self.put_session(&session).await?;
        info!(%user, session = %id, evaluated = result.evaluated, skipped = result.skipped, failed = result.failed, "optimization completed");
        Ok(())
    }

    /// A walk-forward job: one analysis over every window.
    pub async fn run_walk_forward(&self, user: Uuid, id: Uuid) -> BacktestResult<()> {
        let Some((mut session, search)) = self.optimization_session(user, id).await? else { return Ok(()) };
        if matches!(session.status, SessionStatus::Completed | SessionStatus::Failed) {
            return Ok(());
        }
        let Some(walk) = search.walk_forward.clone() else {
            return self.fail_optimization(&session, "not a walk-forward analysis").await;
        };
        let plan = match search.plan() {
            Ok(p) => p,
            Err(e) => return self.fail_optimization(&session, &e.to_string()).await,
        };
        let Inputs { spec, compiled, series, external } = match self.inputs(&session).await {
            Ok(v) => v,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => return self.fail_optimization(&session, &e.to_string()).await,
        };
        let bars = series.columns();
        let (config, instrument) = super::runs::engine_config(&spec, &session.settings)?;
        session.status = SessionStatus::Running;
        self.put_session(&session).await?;
        let settings = search.settings.clone();
        let report = tokio::task::spawn_blocking(move || {
            opt::walk_forward(
                &bars,
                &plan,
                &compiled,
                &external,
                Some(instrument),
                &config,
                &settings,
                &walk,
                &Control::default(),
            )
        })
        .await
        .map_err(|e| BacktestError::InvalidRequest(format!("the analysis stopped unexpectedly: {e}")))?;
        let report: WalkForwardReport = match report {
            Ok(r) => r,
            Err(e) => return self.fail_optimization(&session, &e.to_string()).await,
        };
        self.blobs
            .put(&optimization_blob(user, id)?, Bytes::from(write_gzip_json(&report)?), "application/gzip")
            .await?;
        session.status = SessionStatus::Completed;
        session.chunks_done = session.chunks;
        session.progress = 100;
        session.completed_at = Some(self.clock.now());
        self.put_session(&session).await?;
        info!(%user, session = %id, windows = report.windows.len(), "walk-forward completed");
        Ok(())
    }

    async fn fail_optimization(&self, session: &SessionRecord, reason: &str) -> BacktestResult<()> {
        self.fail(session, reason).await;
        Ok(())
    }

    /// `GET /backtest/optimize/{id}`: progress, then the best combinations (or the walk-forward windows).
    pub async fn optimization(&self, user: Uuid, id: Uuid) -> BacktestResult<Value> {
        let (session, search) = self.optimization_session(user, id).await?.ok_or(BacktestError::SessionNotFound)?;
        let mut out = json!({
            "id": session.id.to_string(),
            "strategy_id": session.settings.strategy_id.to_string(),
            "symbol": session.settings.symbol,
            "timeframe": session.settings.timeframe,
            "start_date": session.settings.start_date.to_string(),
            "end_date": session.settings.end_date.to_string(),
            "status": session.status.as_str(),
            "progress": session.progress,
            "chunks": session.chunks,
            "chunks_done": session.chunks_done,
            "objective": search.settings.objective,
            "parameters": search.space.params,
            "constraints": search.space.constraints,
            "method": if search.random.is_some() { "random" } else { "grid" },
            "data": if session.generated_data { "generated" } else { "stored" },
            "error": session.error,
            "created_at": crate::wire::iso(session.created_at),
            "completed_at": session.completed_at.map(crate::wire::iso),
        });
        if session.status == SessionStatus::Completed
            && let Some(bytes) = self.blobs.get(&optimization_blob(user, id)?, super::runs::MAX_RESULT_BYTES).await?
            && let Some(m) = out.as_object_mut()
        {
            if search.walk_forward.is_some() {
                let report: WalkForwardReport = read_gzip_json(&bytes)?;
                m.insert("walk_forward".into(), walk_view(&report));
            } else {
                let result: OptimizeResult = read_gzip_json(&bytes)?;
                m.insert("combinations".into(), json!(result.total));
                m.insert("evaluated".into(), json!(result.evaluated));
                m.insert("skipped".into(), json!(result.skipped));
                m.insert("failed".into(), json!(result.failed));
                m.insert("first_failure".into(), serde_json::to_value(&result.first_failure).unwrap_or(Value::Null));
                m.insert(
                    "results".into(),
                    Value::Array(
                        result
                            .best
                            .iter()
                            .map(|e| {
                                json!({
                                    "params": e.params,
                                    "objective": finite(e.objective),
                                    "trades": e.trades,
                                    "qualified": e.qualified,
                                    "statistics": super::runs::stats_view(&e.stats),
                                })
                            })
                            .collect(),
                    ),
                );
                m.insert("heatmap".into(), serde_json::to_value(result.heatmap.as_ref().map(|h| json!({
                    "x": h.x_label, "y": h.y_label, "x_values": h.x_values, "y_values": h.y_values,
                    "values": h.values.iter().map(|v| v.and_then(|f| f.is_finite().then_some(f))).collect::<Vec<_>>(),
                }))).unwrap_or(Value::Null));
            }
        }
        Ok(out)
    }

    /// `GET /backtest/optimize/{id}/heatmap.svg`.
    pub async fn heatmap(&self, user: Uuid, id: Uuid, x: Option<&str>, y: Option<&str>) -> BacktestResult<String> {
        let (session, search) = self.optimization_session(user, id).await?.ok_or(BacktestError::SessionNotFound)?;
        if session.status != SessionStatus::Completed || search.walk_forward.is_some() {
            return Err(BacktestError::NotReady(format!(
                "the optimization is {} and has no heatmap",
                session.status.as_str()
            )));
        }
        let Some(axes) = &search.settings.heatmap else {
            return Err(BacktestError::InvalidRequest("a heatmap needs at least two parameters".into()));
        };
        for (asked, have) in [(x, &axes.x), (y, &axes.y)] {
            if let Some(a) = asked.filter(|a| !a.eq_ignore_ascii_case(have)) {
                return Err(BacktestError::InvalidRequest(format!(
                    "the heatmap's axes are {} × {} (the first two parameters), not {a}",
                    axes.x, axes.y
                )));
            }
        }
        let bytes = self
            .blobs
            .get(&optimization_blob(user, id)?, super::runs::MAX_RESULT_BYTES)
            .await?
            .ok_or_else(|| BacktestError::Corrupt("the optimization's result is missing".into()))?;
        let result: OptimizeResult = read_gzip_json(&bytes)?;
        let data = result.heatmap.ok_or_else(|| BacktestError::Corrupt("the result has no heatmap".into()))?;
        let options = ChartOptions {
            title: format!("{} by {} × {}", search.settings.objective.name(), data.x_label, data.y_label),
            ..ChartOptions::default()
        };
        chart::heatmap(&data, &options).map_err(|e| BacktestError::Corrupt(e.to_string()))
    }
}

fn finite(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

fn walk_view(r: &WalkForwardReport) -> Value {
    json!({
        "efficiency": r.efficiency.and_then(|e| e.is_finite().then_some(e)),
        "windows": r.windows.iter().map(|w| json!({
            "index": w.index,
            "in_sample": {"start": w.in_sample.start_time.map(crate::wire::iso), "end": w.in_sample.end_time.map(crate::wire::iso), "bars": w.in_sample.end - w.in_sample.start},
            "out_of_sample": {"start": w.out_of_sample.start_time.map(crate::wire::iso), "end": w.out_of_sample.end_time.map(crate::wire::iso), "bars": w.out_of_sample.end - w.out_of_sample.start},
            "params": w.params,
            "in_sample_objective": finite(w.in_sample_objective),
            "out_of_sample": super::runs::stats_view(&w.out_of_sample_stats),
        })).collect::<Vec<_>>(),
        "out_of_sample": super::runs::stats_view(&r.out_of_sample_stats),
        "trades": r.trades.len(),
        "equity_final": r.equity.last().copied().and_then(|e| e.is_finite().then_some(e)),
    })
}
