//! Auto-trading (contract §2.8 `auto-trading/{trigger,status,health}`, §4.9 the cycle), with the original's
//! defects (§9 item 13) fixed:
//!
//! * **One cycle at a time across every process.** The original ran the scheduler in every worker, each with its
//!   own "already running" flag. Here a cycle first takes a lease item (`SYSTEM#ML` / `AUTOTRADE#LEASE`) with a
//!   conditional put (only if absent; its `ttl` is the cycle's deadline plus a margin, and an expired item counts
//!   as absent, so a crashed holder never blocks for longer than that). A second cycle anywhere — the schedule on
//!   another Lambda, a `trigger` — answers `skipped` / `already_running`. The holder deletes the lease at the end
//!   (conditional on its run id).
//! * **The daily limit counts trades**, not predictions: a per-model, per-UTC-day counter
//!   (`AUTOTRADE#<model>#<YYYY-MM-DD>`) is reserved before an order is placed, in one transaction with a mark on
//!   the prediction (so a resumed attempt never reserves twice), and released when no order was written.
//! * **The advertised config is the applied one** (0.65, 5, 30, 0.01), and each model's own knobs are shown.
//! * **"Today" is the UTC day** everywhere (counters, predictions today).
//!
//! The cycle (every 15 minutes: EventBridge Scheduler puts [`AUTO_TRADING_BODY`] on the `ml-train` queue, the local
//! scheduler the same body; `POST /ml/auto-trading/trigger` runs one at once) walks every user's active, trained
//! models (the `GSI1` partition `ML#ACTIVE` of the `ACTIVE#<SYMBOL>` items — no table scan) and per model:
//! 1. **resumes** its newest prediction if a previous cycle made it and stopped before recording what became of it
//!    (a crash or timeout between predicting and placing): the order is placed with the same idempotency key, so
//!    if it had been placed the order use case answers with that order and no second one is opened;
//! 2. skips it while its newest prediction is younger than `cooldown_minutes`;
//! 3. skips it when its trades of the UTC day reached `max_trades_per_day`;
//! 4. predicts on the newest stored candles (stored, marked `auto_trading`); a failed prediction stores a fallback
//!    HOLD (`generated_by: "fallback"`) and lists the error;
//! 5. trades nothing on HOLD or below `confidence_threshold`;
//! 6. otherwise places the order through [`OrderService::place`](crate::trading::orders::OrderService::place) —
//!    connector online, open-position limit reserved atomically, margin, price sanity, SL/TP sides, verified
//!    e-mail — as the model's owner, `source = "auto_trading"`, with the idempotency key
//!    `auto:<model id base36>:<prediction id base36>`. No connector online → not executed, an error line, the day's
//!    slot released (the order use case reserves nothing in that case either).
//!
//! A cycle has a time budget (10 minutes from the queue, 20 s from `trigger`, which answers the caller within the
//! HTTP timeout and checks the caller's models first); models it did not reach are named in `errors` and checked
//! by the next cycle.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};
use uuid::Uuid;

use super::error::{MlError, MlResult};
use super::service::{ML_TRAIN_QUEUE, MlService, PREDICTION_TTL_DAYS, PredictCandles, order_id_of, prediction_order};
use super::store::*;
use crate::auth::CurrentUser;
use crate::auth::store::{UserRecord, user_key};
use crate::jobs::Schedule;
use crate::ports::store::TTL_ATTR;
use crate::ports::{CancelReason, Condition, Index, Item, Query, StoreError, TxOp, Update, Value as StoreValue};
use crate::trading::orders::{Delivery, IdempotencyKey, TradingError};

pub mod rules;

pub use rules::{
    AutoTradingSettings, Decision, SETTING_KEYS, SettingError, auto_trade_key, decide, in_cooldown, utc_day,
    utc_midnight,
};

/// The body of the scheduled cycle message on the `ml-train` queue.
pub const AUTO_TRADING_BODY: &str = r#"{"kind":"auto_trading_cycle"}"#;
/// Minutes between scheduled cycles.
pub const INTERVAL_MINUTES: i64 = 15;
/// The cycle's schedule: EventBridge Scheduler in AWS (template.yaml's `MlAutoTradingSchedule` carries this body),
/// the local scheduler on a laptop.
pub const AUTO_TRADING_SCHEDULE: Schedule = Schedule {
    name: "ml-auto-trading",
    queue: ML_TRAIN_QUEUE,
    every: StdDuration::from_secs(INTERVAL_MINUTES as u64 * 60),
    body: AUTO_TRADING_BODY,
};
/// A last run older than this is stale (`health`).
pub const STALE_AFTER_MINUTES: i64 = 20;
/// The order `source` of auto-trades.
pub const SOURCE_AUTO_TRADING: &str = "auto_trading";
/// Time budget of a scheduled cycle (the `ml-train` function's Timeout is 900 s).
pub const SCHEDULED_BUDGET: StdDuration = StdDuration::from_secs(600);
/// Time budget of a cycle run by `trigger` (the HTTP answer comes within API Gateway's 29 s).
pub const TRIGGER_BUDGET: StdDuration = StdDuration::from_secs(20);
/// The lease outlives the budget by this much (the last model's work finishing).
pub const LEASE_MARGIN_SECONDS: i64 = 60;
/// Day counters expire after this many days.
const DAY_TTL_DAYS: i64 = 3;
/// The prediction attribute marking a reserved day slot.
const SLOT_ATTR: &str = "auto_slot";
/// The day counter's attribute.
const TRADES_ATTR: &str = "trades";

/// Who started a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CycleOrigin {
    /// The 15-minute schedule (a queue message).
    Schedule,
    /// `POST /ml/auto-trading/trigger` by this user (whose models go first).
    Trigger(Uuid),
}

impl CycleOrigin {
    fn name(self) -> &'static str {
        match self {
            CycleOrigin::Schedule => "schedule",
            CycleOrigin::Trigger(_) => "trigger",
        }
    }
}

/// The summary of one cycle (contract: `{started_at, models_checked, predictions_generated, trades_executed,
/// errors, completed_at}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CycleResult {
    pub run_id: Uuid,
    pub origin: String,
    pub started_at: DateTime<Utc>,
    pub models_checked: usize,
    pub predictions_generated: usize,
    pub trades_executed: usize,
    pub errors: Vec<CycleError>,
    pub completed_at: DateTime<Utc>,
}

/// One error line of a cycle, with the user whose model it concerns (`None`: the cycle's own, e.g. the budget).
/// A result shown to a user lists only their own lines and the cycle's: another user's model ids and failures
/// are not theirs to see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CycleError {
    #[serde(default)]
    pub user: Option<Uuid>,
    pub message: String,
}

impl CycleResult {
    /// The error lines `viewer` may see.
    pub fn errors_seen_by(&self, viewer: Uuid) -> Vec<&str> {
        self.errors.iter().filter(|e| e.user.is_none_or(|u| u == viewer)).map(|e| e.message.as_str()).collect()
    }
}

/// What a cycle request became.
#[derive(Clone, Debug, PartialEq)]
pub enum CycleOutcome {
    Completed(CycleResult),
    /// Another cycle holds the lease.
    AlreadyRunning,
}

/// The stored state of the last cycle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CycleStatus {
    #[serde(default)]
    pub last_started_at: Option<DateTime<Utc>>,
    /// When the last cycle completed.
    #[serde(default)]
    pub last_run: Option<DateTime<Utc>>,
    /// The last cycle's result (JSON text of [`CycleResult`]).
    #[serde(default)]
    pub last_result: Option<String>,
}

impl CycleStatus {
    pub fn result(&self) -> Option<CycleResult> {
        self.last_result.as_deref().and_then(|t| serde_json::from_str(t).ok())
    }
}

/// One active model in the status.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelAutoStatus {
    pub model: ModelRecord,
    pub predictions_today: usize,
    pub trades_today: u32,
}

/// `GET /ml/auto-trading/status`.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoStatus {
    pub models: Vec<ModelAutoStatus>,
    pub cycle: CycleStatus,
    pub running: bool,
}

/// `GET /ml/auto-trading/health`.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoHealth {
    pub is_running: bool,
    pub last_run: Option<DateTime<Utc>>,
    pub is_stale: bool,
    pub not_stuck: bool,
    pub loaded_models: usize,
    pub now: DateTime<Utc>,
}

/// The marker the cycle puts in its predictions (`prediction.auto_trading`): the knobs it decided with.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Marker {
    run_id: Uuid,
    confidence_threshold: f64,
    lot_size: Decimal,
}

/// What one model did in a cycle.
#[derive(Debug, Default)]
struct Step {
    checked: bool,
    predicted: bool,
    executed: bool,
    errors: Vec<String>,
}

fn ser<T: Serialize>(v: &T) -> Result<StoreValue, StoreError> {
    StoreValue::from_json(serde_json::to_value(v).map_err(|e| StoreError::Validation(e.to_string()))?)
}

impl MlService {
    /// Runs one cycle unless another holds the lease (see the module docs).
    pub async fn auto_trading_cycle(&self, origin: CycleOrigin, budget: StdDuration) -> MlResult<CycleOutcome> {
        if self.orders.is_none() {
            return Err(MlError::Busy("Trading is not available in this process".into()));
        }
        let started = self.clock.now();
        let run_id = self.ids.uuid();
        let deadline = started + Duration::from_std(budget).unwrap_or(Duration::seconds(600));
        let lease = Item::new(&auto_lease_key())
            .with("holder", run_id.to_string())
            .with("origin", origin.name())
            .with("started_at", ser(&started)?)
            .with(TTL_ATTR, deadline.timestamp() + LEASE_MARGIN_SECONDS);
        match self.store.put(lease, Some(Condition::NotExists)).await {
            Ok(()) => {}
            Err(e) if e.is_condition_failure() => {
                info!(origin = origin.name(), "auto-trading cycle skipped: another one is running");
                return Ok(CycleOutcome::AlreadyRunning);
            }
            Err(e) => return Err(e.into()),
        }
        let outcome = self.cycle_under_lease(origin, run_id, started, deadline).await;
        if let Err(e) = self.store.delete(&auto_lease_key(), Some(Condition::eq("holder", run_id.to_string()))).await
            && !e.is_condition_failure()
        {
            warn!(error = %e, "could not release the auto-trading lease (it expires by itself)");
        }
        outcome.map(CycleOutcome::Completed)
    }

    async fn cycle_under_lease(
        &self,
        origin: CycleOrigin,
        run_id: Uuid,
        started: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> MlResult<CycleResult> {
        self.store.update(&auto_status_key(), Update::new().set("last_started_at", ser(&started)?), None).await?;
        let mut models = self.active_model_refs().await?;
        if let CycleOrigin::Trigger(user) = origin {
            // The caller's models first (stable: the rest keep the index order).
            models.sort_by_key(|(u, _)| *u != user);
        }
        let mut result = CycleResult {
            run_id,
            origin: origin.name().to_owned(),
            started_at: started,
            models_checked: 0,
            predictions_generated: 0,
            trades_executed: 0,
            errors: Vec::new(),
            completed_at: started,
        };
        let mut owners: HashMap<Uuid, Option<CurrentUser>> = HashMap::new();
        for (i, (user, model)) in models.iter().enumerate() {
            if self.clock.now() >= deadline {
                result.errors.push(CycleError {
                    user: None,
                    message: format!(
                        "{} active models not checked: the cycle's time budget ran out (the next cycle checks them)",
                        models.len() - i
                    ),
                });
                break;
            }
            let step = match self.auto_model(*user, *model, run_id, &mut owners).await {
                Ok(step) => step,
                Err(e) => Step { checked: true, errors: vec![format!("model {model}: {e}")], ..Step::default() },
            };
            result.models_checked += usize::from(step.checked);
            result.predictions_generated += usize::from(step.predicted);
            result.trades_executed += usize::from(step.executed);
            result.errors.extend(step.errors.into_iter().map(|message| CycleError { user: Some(*user), message }));
        }
        result.completed_at = self.clock.now();
        let text = serde_json::to_string(&result).map_err(|e| StoreError::Validation(e.to_string()))?;
        let update = Update::new().set("last_run", ser(&result.completed_at)?).set("last_result", text);
        self.store.update(&auto_status_key(), update, None).await?;
        info!(run = %run_id, origin = origin.name(), checked = result.models_checked,
              predictions = result.predictions_generated, trades = result.trades_executed,
              errors = result.errors.len(), "auto-trading cycle completed");
        Ok(result)
    }

    /// `(user, model)` of every active model of every user (GSI1 `ML#ACTIVE`).
    async fn active_model_refs(&self) -> MlResult<Vec<(Uuid, Uuid)>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.store.query(Query::index(Index::Gsi1, ACTIVE_INDEX_PK).limit(500).after(cursor)).await?;
            for item in &page.items {
                let user =
                    item.get_s("GSI1SK").and_then(|sk| sk.split('#').next()).and_then(|u| Uuid::parse_str(u).ok());
                let model = item.get_s("model_id").and_then(|m| Uuid::parse_str(m).ok());
                if let (Some(u), Some(m)) = (user, model) {
                    out.push((u, m));
                }
            }
            cursor = page.cursor;
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// The model's owner as the order use case sees a caller (cached per cycle; `None`: the account is gone).
    async fn owner(&self, user: Uuid, cache: &mut HashMap<Uuid, Option<CurrentUser>>) -> MlResult<Option<CurrentUser>> {
        if let Some(c) = cache.get(&user) {
            return Ok(c.clone());
        }
        let record: Option<UserRecord> = self.store.get(&user_key(user)).await?.map(|i| i.to_record()).transpose()?;
        let current = record.map(|u| CurrentUser {
            id: u.id,
            email: u.email,
            role: u.role,
            email_verified: u.email_verified,
            session_id: Uuid::nil(),
            email_verification_required: self.config.require_email_verification,
        });
        cache.insert(user, current.clone());
        Ok(current)
    }

    /// One model's turn in a cycle.
    async fn auto_model(
        &self,
        user: Uuid,
        id: Uuid,
        run_id: Uuid,
        owners: &mut HashMap<Uuid, Option<CurrentUser>>,
    ) -> MlResult<Step> {
        let model = match self.get_model(user, id).await {
            Ok(m) => m,
            // Deleted since the index was read.
            Err(MlError::NotFound(_)) => return Ok(Step::default()),
            Err(e) => return Err(e),
        };
        if !model.is_active || model.artefact.is_none() {
            return Ok(Step::default());
        }
        let mut step = Step { checked: true, ..Step::default() };
        let settings = model.auto_trading;
        let now = self.clock.now();
        let latest = self.latest_prediction(user, id).await?;
        // 1. A previous cycle's prediction without an outcome: finish it (same idempotency key).
        if let Some(p) = &latest
            && p.auto_outcome.is_none()
            && now - p.created_at < settings.cooldown()
        {
            let prediction: Value = serde_json::from_str(&p.prediction).unwrap_or(Value::Null);
            if let Some(marker) =
                prediction.get("auto_trading").and_then(|m| serde_json::from_value::<Marker>(m.clone()).ok())
            {
                info!(model = %id, prediction = %p.id, "auto-trading: resuming an unfinished prediction");
                self.finish(&model, p, &prediction, marker, owners, &mut step).await?;
                return Ok(step);
            }
        }
        // 2. Cooldown.
        if in_cooldown(latest.as_ref().map(|p| p.created_at), now, &settings) {
            return Ok(step);
        }
        // 3. Daily trade limit (UTC day).
        if self.trades_on(user, id, utc_day(now)).await? >= settings.max_trades_per_day {
            return Ok(step);
        }
        // 4. Predict (a failure stores a fallback HOLD).
        let marker =
            Marker { run_id, confidence_threshold: settings.confidence_threshold, lot_size: settings.lot_size };
        let stored =
            match self.predict_model(&model, None, PredictCandles::Stored, Some(("auto_trading", json!(marker)))).await
            {
                Ok(p) => p,
                Err(e @ (MlError::Store(_) | MlError::Blob(_))) => return Err(e),
                Err(e) => {
                    self.store_fallback(&model, marker, &e.to_string()).await?;
                    step.predicted = true;
                    step.errors
                        .push(format!("model {id} ({}): prediction failed, stored a fallback HOLD: {e}", model.symbol));
                    return Ok(step);
                }
            };
        step.predicted = true;
        self.finish(&model, &stored.record, &stored.prediction, marker, owners, &mut step).await?;
        Ok(step)
    }

    /// Steps 5 and 6 for one stored prediction of the cycle.
    async fn finish(
        &self,
        model: &ModelRecord,
        record: &PredictionRecord,
        prediction: &Value,
        marker: Marker,
        owners: &mut HashMap<Uuid, Option<CurrentUser>>,
        step: &mut Step,
    ) -> MlResult<()> {
        let (user, id) = (model.user_id, model.id);
        let pkey = prediction_key(user, id, record.id);
        let decision = decide(&record.direction, record.confidence, marker.confidence_threshold);
        if decision != Decision::Trade {
            return self.set_outcome(&pkey, decision.outcome(), None).await;
        }
        let label = format!("model {id} ({})", model.symbol);
        let Some(owner) = self.owner(user, owners).await? else {
            step.errors.push(format!("{label}: not executed: the owner's account no longer exists"));
            return self.set_outcome(&pkey, "not_executed: no account", None).await;
        };
        let max = model.auto_trading.max_trades_per_day;
        let day = utc_day(record.created_at);
        if !self.reserve_slot(user, id, day, &pkey, max).await? {
            return self.set_outcome(&pkey, "not_executed: daily trade limit reached", None).await;
        }
        let orders = self.orders.as_ref().ok_or_else(|| MlError::Busy("Trading is not available".into()))?;
        let placed = async {
            let req = prediction_order(record, prediction, marker.lot_size, None, SOURCE_AUTO_TRADING)?;
            let body = json!({"model_id": id, "prediction_id": record.id,
                              "lot_size": marker.lot_size.normalize().to_string(), "source": SOURCE_AUTO_TRADING});
            let idem = IdempotencyKey::new(&auto_trade_key(id, record.id), "auto-trading cycle", &body)?;
            Ok::<_, MlError>(orders.place(&owner, req, Some(idem)).await?)
        }
        .await;
        match placed {
            Ok(reply) => {
                step.executed = true;
                let outcome = if reply.delivery == Delivery::Uncertain {
                    "executed: delivery uncertain (reconciled)"
                } else {
                    "executed"
                };
                info!(model = %id, prediction = %record.id, order = ?order_id_of(&reply), delivery = reply.delivery.as_str(), "auto-trade placed");
                self.set_outcome(&pkey, outcome, order_id_of(&reply)).await
            }
            Err(e) => {
                // Nothing was written by the order use case (or the request was refused before it): give the day's
                // slot back.
                if !matches!(e, MlError::Trading(TradingError::IdempotencyInFlight)) {
                    self.release_slot(user, id, day, &pkey).await?;
                }
                step.errors.push(format!("{label}: not executed: {e}"));
                self.set_outcome(&pkey, &format!("not_executed: {e}"), None).await
            }
        }
    }

    async fn set_outcome(&self, key: &crate::ports::Key, outcome: &str, order: Option<Uuid>) -> MlResult<()> {
        let mut update = Update::new().set("auto_outcome", outcome);
        if let Some(o) = order {
            update = update.set("executed_order_id", o.to_string());
        }
        match self.store.update(key, update, Some(Condition::Exists)).await {
            Ok(_) => Ok(()),
            // The model (and its predictions) was deleted meanwhile.
            Err(e) if e.is_condition_failure() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Auto-trades of a model on a UTC day.
    pub async fn trades_on(&self, user: Uuid, model: Uuid, day: NaiveDate) -> MlResult<u32> {
        Ok(self
            .store
            .get(&auto_day_key(user, model, day))
            .await?
            .and_then(|i| i.get_n(TRADES_ATTR))
            .and_then(|n| n.to_u32())
            .unwrap_or(0))
    }

    /// Takes one of the day's `max` slots for this prediction (once: the prediction is marked in the same
    /// transaction). `false`: the day is full.
    async fn reserve_slot(
        &self,
        user: Uuid,
        model: Uuid,
        day: NaiveDate,
        prediction: &crate::ports::Key,
        max: u32,
    ) -> MlResult<bool> {
        let expires = (day.and_time(NaiveTime::MIN).and_utc() + Duration::days(DAY_TTL_DAYS)).timestamp();
        let ops = vec![
            TxOp::Update {
                key: auto_day_key(user, model, day),
                update: Update::new().add(TRADES_ATTR, 1).set(TTL_ATTR, expires),
                condition: Some(
                    Condition::AttrNotExists(TRADES_ATTR.into()).or(Condition::lt(TRADES_ATTR, i64::from(max))),
                ),
            },
            TxOp::Update {
                key: prediction.clone(),
                update: Update::new().set(SLOT_ATTR, true),
                condition: Some(
                    Condition::Exists
                        .and(Condition::AttrNotExists(SLOT_ATTR.into()).or(Condition::eq(SLOT_ATTR, false))),
                ),
            },
        ];
        match self.store.transact_write(ops).await {
            Ok(()) => Ok(true),
            Err(StoreError::TransactionCanceled(reasons)) => {
                let failed = |i: usize| reasons.get(i) == Some(&CancelReason::ConditionalCheckFailed);
                if failed(1) {
                    // Already reserved for this prediction (a resumed attempt), or the prediction is gone.
                    return Ok(self.store.get(prediction).await?.and_then(|i| i.get_bool(SLOT_ATTR)) == Some(true));
                }
                if failed(0) {
                    return Ok(false);
                }
                Err(MlError::Busy("The model store is busy, please retry".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the prediction's slot back (no order was written).
    async fn release_slot(
        &self,
        user: Uuid,
        model: Uuid,
        day: NaiveDate,
        prediction: &crate::ports::Key,
    ) -> MlResult<()> {
        let ops = vec![
            TxOp::Update {
                key: auto_day_key(user, model, day),
                update: Update::new().add(TRADES_ATTR, -1),
                condition: Some(Condition::gt(TRADES_ATTR, 0)),
            },
            TxOp::Update {
                key: prediction.clone(),
                update: Update::new().set(SLOT_ATTR, false),
                condition: Some(Condition::eq(SLOT_ATTR, true)),
            },
        ];
        match self.store.transact_write(ops).await {
            Ok(()) | Err(StoreError::TransactionCanceled(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The contract's fallback prediction (HOLD, confidence 0, `generated_by: "fallback"`), stored.
    async fn store_fallback(&self, model: &ModelRecord, marker: Marker, error: &str) -> MlResult<()> {
        let now = self.clock.now();
        let pid = self.new_v7(now);
        let symbol = model.symbol.clone();
        // The live price a connector reported (mid), when there is one.
        let entry = match &self.orders {
            Some(o) => o
                .registry()
                .quote(model.user_id, &symbol, Duration::minutes(10))
                .await
                .ok()
                .flatten()
                .and_then(|q| ((q.bid + q.ask) / Decimal::TWO).to_f64()),
            None => None,
        };
        let object = json!({
            "direction": "HOLD", "confidence": 0.0, "ml_signal": "HOLD", "should_trade": false,
            "entry_price": entry, "stop_loss": null, "take_profit": null, "generated_by": "fallback",
            "model_type": model.model_type, "error": error, "auto_trading": marker,
            "timestamp": crate::wire::iso(now),
        });
        let record = PredictionRecord {
            id: pid,
            model_id: model.id,
            user_id: model.user_id,
            symbol,
            direction: "HOLD".into(),
            confidence: 0.0,
            prediction: object.to_string(),
            model_version: model.artefact.map_or(0, |a| a.version),
            executed_order_id: None,
            auto_outcome: Some("hold (fallback)".into()),
            created_at: now,
            ttl: (now + Duration::days(PREDICTION_TTL_DAYS)).timestamp(),
        };
        self.store
            .put(Item::from_record(&prediction_key(model.user_id, model.id, pid), &record)?, Some(Condition::NotExists))
            .await?;
        Ok(())
    }

    /// The user's trained models that are active.
    pub async fn active_trained_models(&self, user: Uuid) -> MlResult<Vec<ModelRecord>> {
        Ok(self.all_models(user).await?.into_iter().filter(|m| m.is_active && m.artefact.is_some()).collect())
    }

    /// `POST /ml/auto-trading/trigger`: one cycle now (the caller's models first), if the caller has an active model.
    pub async fn trigger_auto_trading(&self, user: Uuid) -> MlResult<CycleOutcome> {
        if self.active_trained_models(user).await?.is_empty() {
            return Err(MlError::Refused("No active models found. Activate a trained model first.".into()));
        }
        self.auto_trading_cycle(CycleOrigin::Trigger(user), TRIGGER_BUDGET).await
    }

    /// The stored state of the last cycle.
    pub async fn cycle_status(&self) -> MlResult<CycleStatus> {
        Ok(self.store.get(&auto_status_key()).await?.map(|i| i.to_record()).transpose()?.unwrap_or_default())
    }

    /// True while a cycle holds the lease (an expired lease reads as absent).
    pub async fn cycle_running(&self) -> MlResult<bool> {
        Ok(self.store.get(&auto_lease_key()).await?.is_some())
    }

    /// `GET /ml/auto-trading/status` for a user.
    pub async fn auto_trading_status(&self, user: Uuid) -> MlResult<AutoStatus> {
        let now = self.clock.now();
        let mut models = Vec::new();
        for model in self.active_trained_models(user).await? {
            let predictions_today = self.count_since(user, model.id, utc_midnight(now)).await?;
            let trades_today = self.trades_on(user, model.id, utc_day(now)).await?;
            models.push(ModelAutoStatus { model, predictions_today, trades_today });
        }
        let (cycle, running) = (self.cycle_status().await?, self.cycle_running().await?);
        Ok(AutoStatus { models, cycle, running })
    }

    /// `GET /ml/auto-trading/health` (no user).
    pub async fn auto_trading_health(&self) -> MlResult<AutoHealth> {
        let now = self.clock.now();
        let (cycle, is_running) = (self.cycle_status().await?, self.cycle_running().await?);
        let stale_after = Duration::minutes(STALE_AFTER_MINUTES);
        let is_stale = cycle.last_run.is_none_or(|t| now - t > stale_after);
        // A cycle that started, never completed and no longer holds the lease died on the way.
        let unfinished = cycle.last_started_at.is_some_and(|s| cycle.last_run.is_none_or(|r| r < s));
        let not_stuck = !(unfinished && !is_running && cycle.last_started_at.is_some_and(|s| now - s > stale_after));
        Ok(AutoHealth {
            is_running,
            last_run: cycle.last_run,
            is_stale,
            not_stuck,
            loaded_models: self.cache.stats().0,
            now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_runs_every_15_minutes_on_the_ml_train_queue() {
        assert_eq!(AUTO_TRADING_SCHEDULE.every, StdDuration::from_secs(900));
        assert_eq!(AUTO_TRADING_SCHEDULE.queue, ML_TRAIN_QUEUE);
        let job: super::super::TrainJob = serde_json::from_str(AUTO_TRADING_BODY).unwrap();
        assert_eq!(job, super::super::TrainJob::AutoTradingCycle);
        assert_eq!(job.to_body(), AUTO_TRADING_BODY);
        assert!(SCHEDULED_BUDGET < StdDuration::from_secs(900), "within the ml-train function's Timeout");
    }
}
