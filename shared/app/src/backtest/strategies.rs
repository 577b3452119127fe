//! The strategy use cases (contract §2.5 and the legacy `/backtest/strategies` of §2.7): one item per strategy under
//! its owner's partition, so another user's private strategy is simply absent (404, as an unknown id).
//!
//! * Rules are parsed when a strategy is written: a condition that does not parse is refused with every problem at
//!   once (rule, position, token), so nothing unparseable is ever stored; a draft may still lack rules or risk
//!   management — `validate` reports those (the original's four messages) with the rest.
//! * At most [`MAX_STRATEGIES_PER_USER`] strategies per user: a counter item moves in the same transaction as every
//!   create and delete.
//! * Writes to an existing strategy are conditional on its existence, so an update racing a delete never
//!   resurrects it.
//! * Legacy strategies (`ma_crossover`, `rsi`, `macd` with a `config`) are compiled into rule strategies
//!   ([`nusatrade_backtest::strategy::legacy_strategy`]), so every strategy backtests through the same engine.

use std::sync::Arc;

use nusatrade_backtest::strategy::{
    self as spec, BacktestMetrics, CompiledStrategy, RiskManagement, RuleLogic, StrategyParameter, StrategyRule,
    StrategySpec,
};
use serde_json::Value;
use tracing::info;
use uuid::Uuid;

use super::error::{BacktestError, BacktestResult};
use super::store::{COUNT_ATTR, PUBLIC_INDEX_PK, STRATEGY_PREFIX, StrategyRecord, strategy_count_key, strategy_key};
use crate::keys::user_pk;
use crate::ml::service::LinkedStrategy;
use crate::ports::{
    CancelReason, Clock, Condition, IdGenerator, Index, Item, ItemStore, Ports, Query, StoreError, TxOp, Update,
};

/// Most strategies one user may hold.
pub const MAX_STRATEGIES_PER_USER: u32 = 100;
/// Name of the ML template strategy (§4.10); a second clone is refused.
pub const TEMPLATE_NAME: &str = "ML Profitable Strategy (XGBoost)";
/// Most public strategies a legacy listing reads.
pub const MAX_PUBLIC_LISTED: usize = 200;

/// The fields a create writes (or a `PUT` replaces where present).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StrategyInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub strategy_type: Option<String>,
    pub code: Option<String>,
    pub parameters: Option<Vec<StrategyParameter>>,
    pub indicators: Option<Vec<String>>,
    pub entry_rules: Option<Vec<StrategyRule>>,
    pub exit_rules: Option<Vec<StrategyRule>>,
    pub risk_management: Option<RiskManagement>,
    pub config: Option<Value>,
    pub is_public: Option<bool>,
}

/// Which template to clone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// `ml-profitable`: XAUUSD only, as the original.
    MlProfitable,
    /// `ml-profitable-eurusd`: the same rules on EURUSD (the dashboard calls it; the original answered 404).
    MlProfitableEurusd,
}

/// The strategy use cases over the ports.
#[derive(Clone)]
pub struct StrategyService {
    pub store: Arc<dyn ItemStore>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
}

impl StrategyService {
    pub fn new(ports: &Ports) -> Self {
        StrategyService { store: ports.store.clone(), clock: ports.clock.clone(), ids: ports.ids.clone() }
    }

    // ------------------------------------------------------------------ reads

    /// One of the user's own strategies.
    pub async fn get(&self, user: Uuid, id: Uuid) -> BacktestResult<StrategyRecord> {
        let item = self.store.get(&strategy_key(user, id)).await?.ok_or(BacktestError::StrategyNotFound)?;
        let record: StrategyRecord = item.to_record()?;
        if record.user_id != user {
            return Err(BacktestError::StrategyNotFound);
        }
        Ok(record)
    }

    /// One of the user's strategies, or a public one (what a backtest may run).
    pub async fn get_visible(&self, user: Uuid, id: Uuid) -> BacktestResult<StrategyRecord> {
        match self.get(user, id).await {
            Err(BacktestError::StrategyNotFound) => {}
            other => return other,
        }
        let query = Query::index(Index::Gsi1, PUBLIC_INDEX_PK).sk_prefix(id.to_string()).limit(1);
        let page = self.store.query(query).await?;
        match page.items.first() {
            Some(item) => {
                let record: StrategyRecord = item.to_record()?;
                if record.id == id && record.is_public { Ok(record) } else { Err(BacktestError::StrategyNotFound) }
            }
            None => Err(BacktestError::StrategyNotFound),
        }
    }

    /// The user's strategies, newest first.
    pub async fn list(&self, user: Uuid) -> BacktestResult<Vec<StrategyRecord>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let query =
                Query::partition(user_pk(user)).sk_prefix(STRATEGY_PREFIX).descending().limit(100).after(cursor);
            let page = self.store.query(query).await?;
            for item in page.items {
                out.push(item.to_record::<StrategyRecord>()?);
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// The user's strategies plus, when asked, every public one (legacy `GET /backtest/strategies`).
    pub async fn list_with_public(&self, user: Uuid, include_public: bool) -> BacktestResult<Vec<StrategyRecord>> {
        let mut out = self.list(user).await?;
        if include_public {
            let mut cursor = None;
            let mut public = Vec::new();
            while public.len() < MAX_PUBLIC_LISTED {
                let query = Query::index(Index::Gsi1, PUBLIC_INDEX_PK).limit(100).after(cursor);
                let page = self.store.query(query).await?;
                for item in page.items {
                    let r: StrategyRecord = item.to_record()?;
                    if r.user_id != user && r.is_public {
                        public.push(r);
                    }
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            public.truncate(MAX_PUBLIC_LISTED);
            out.extend(public);
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ writes

    /// Creates a strategy (`is_active = false`).
    pub async fn create(&self, user: Uuid, input: StrategyInput) -> BacktestResult<StrategyRecord> {
        let now = self.clock.now();
        let mut record = StrategyRecord::draft(self.ids.time_ordered(now), user, now);
        apply(&mut record, input);
        check_rules(&record)?;
        self.insert(user, record).await
    }

    async fn insert(&self, user: Uuid, record: StrategyRecord) -> BacktestResult<StrategyRecord> {
        let item = strategy_item(&record)?;
        for attempt in 0..2 {
            let below = Condition::AttrNotExists(COUNT_ATTR.into())
                .or(Condition::lt(COUNT_ATTR, i64::from(MAX_STRATEGIES_PER_USER)));
            let ops = vec![
                TxOp::Update {
                    key: strategy_count_key(user),
                    update: Update::new().add(COUNT_ATTR, 1),
                    condition: Some(below),
                },
                TxOp::Put { item: item.clone(), condition: Some(Condition::NotExists) },
            ];
            match self.store.transact_write(ops).await {
                Ok(()) => {
                    info!(%user, strategy = %record.id, name = %record.name, "strategy created");
                    return Ok(record);
                }
                Err(StoreError::TransactionCanceled(reasons))
                    if reasons.first() == Some(&CancelReason::ConditionalCheckFailed) =>
                {
                    if attempt > 0 || !self.repair_count(user).await? {
                        return Err(BacktestError::TooManyStrategies(MAX_STRATEGIES_PER_USER));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(BacktestError::TooManyStrategies(MAX_STRATEGIES_PER_USER))
    }

    /// Sets the counter to the real number of strategies when it is higher. Returns whether it changed.
    async fn repair_count(&self, user: Uuid) -> BacktestResult<bool> {
        let real = self.list(user).await?.len() as i64;
        let key = strategy_count_key(user);
        let stored = self.store.get(&key).await?.and_then(|i| i.get_n(COUNT_ATTR));
        let Some(stored) = stored.filter(|s| *s > rust_decimal::Decimal::from(real)) else { return Ok(false) };
        let update = Update::new().set(COUNT_ATTR, real);
        match self.store.update(&key, update, Some(Condition::eq(COUNT_ATTR, stored))).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_condition_failure() => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the fields present in `input` (`PUT /strategies/{id}`; legacy `PUT` passes every field).
    pub async fn update(&self, user: Uuid, id: Uuid, input: StrategyInput) -> BacktestResult<StrategyRecord> {
        let mut record = self.get(user, id).await?;
        apply(&mut record, input);
        record.updated_at = self.clock.now();
        check_rules(&record)?;
        self.replace(record).await
    }

    /// Writes `record` over the stored one, if it still exists.
    async fn replace(&self, record: StrategyRecord) -> BacktestResult<StrategyRecord> {
        match self.store.put(strategy_item(&record)?, Some(Condition::Exists)).await {
            Ok(()) => Ok(record),
            Err(e) if e.is_condition_failure() => Err(BacktestError::StrategyNotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// `PATCH /strategies/{id}/toggle`.
    pub async fn set_active(&self, user: Uuid, id: Uuid, active: bool) -> BacktestResult<StrategyRecord> {
        let mut record = self.get(user, id).await?;
        record.is_active = active;
        record.updated_at = self.clock.now();
        self.replace(record).await
    }

    /// Caches a quick-backtest's metrics on the strategy.
    pub async fn set_metrics(&self, user: Uuid, id: Uuid, metrics: BacktestMetrics) -> BacktestResult<()> {
        let mut record = self.get(user, id).await?;
        record.backtest_results = Some(metrics);
        self.replace(record).await.map(|_| ())
    }

    /// Deletes one of the user's strategies (sessions keep their copy of its settings).
    pub async fn delete(&self, user: Uuid, id: Uuid) -> BacktestResult<()> {
        self.get(user, id).await?;
        let ops = vec![
            TxOp::Delete { key: strategy_key(user, id), condition: Some(Condition::Exists) },
            TxOp::Update {
                key: strategy_count_key(user),
                update: Update::new().add(COUNT_ATTR, -1),
                condition: Some(Condition::gt(COUNT_ATTR, 0)),
            },
        ];
        match self.store.transact_write(ops).await {
            Ok(()) => {
                info!(%user, strategy = %id, "strategy deleted");
                Ok(())
            }
            Err(StoreError::TransactionCanceled(reasons)) => match reasons.first() {
                Some(CancelReason::ConditionalCheckFailed) => Err(BacktestError::StrategyNotFound),
                // The counter was already 0 (drifted): delete the strategy alone.
                _ => match self.store.delete(&strategy_key(user, id), Some(Condition::Exists)).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_condition_failure() => Err(BacktestError::StrategyNotFound),
                    Err(e) => Err(e.into()),
                },
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Clones the ML template for the user (`POST /strategies/templates/{name}/clone`).
    pub async fn clone_template(&self, user: Uuid, template: Template) -> BacktestResult<StrategyRecord> {
        let (spec, config) = template_spec(template);
        if self.list(user).await?.iter().any(|s| s.name == spec.name) {
            return Err(BacktestError::AlreadyCloned);
        }
        let input = StrategyInput {
            name: Some(spec.name),
            description: spec.description,
            strategy_type: Some(spec.strategy_type),
            code: None,
            parameters: Some(spec.parameters),
            indicators: Some(spec.indicators),
            entry_rules: Some(spec.entry_rules),
            exit_rules: Some(spec.exit_rules),
            risk_management: spec.risk_management,
            config: Some(config),
            is_public: None,
        };
        self.create(user, input).await
    }
}

#[async_trait::async_trait]
impl crate::ml::service::StrategyLookup for StrategyService {
    async fn is_visible(&self, user: Uuid, strategy: Uuid) -> Result<bool, StoreError> {
        match self.get_visible(user, strategy).await {
            Ok(_) => Ok(true),
            Err(BacktestError::StrategyNotFound) => Ok(false),
            Err(BacktestError::Store(e)) => Err(e),
            Err(other) => Err(StoreError::Validation(other.to_string())),
        }
    }

    async fn linked(&self, user: Uuid, strategy: Uuid) -> Result<Option<LinkedStrategy>, StoreError> {
        let record = match self.get_visible(user, strategy).await {
            Ok(r) => r,
            Err(BacktestError::StrategyNotFound) => return Ok(None),
            Err(BacktestError::Store(e)) => return Err(e),
            Err(other) => return Err(StoreError::Validation(other.to_string())),
        };
        let Ok(spec) = spec_of(&record) else { return Ok(None) };
        let Ok(risk) = spec.risk_management.clone().unwrap_or_default().to_risk() else { return Ok(None) };
        Ok(Some(LinkedStrategy {
            id: record.id,
            name: record.name,
            risk,
            entry_rules: spec.entry_rules,
            exit_rules: spec.exit_rules,
        }))
    }
}

/// The template of §4.10 and its stored `config` (symbol, supported symbols, model, filters).
pub fn template_spec(template: Template) -> (StrategySpec, Value) {
    let mut spec = spec::ml_profitable_template();
    let symbol = match template {
        Template::MlProfitable => "XAUUSD",
        Template::MlProfitableEurusd => "EURUSD",
    };
    let suffix = match template {
        Template::MlProfitable => " (XAUUSD Only - trained exclusively on Gold data)",
        Template::MlProfitableEurusd => " (EURUSD - uses your active EURUSD model's signals)",
    };
    if template == Template::MlProfitableEurusd {
        spec.name = format!("{TEMPLATE_NAME} - EURUSD");
    }
    spec.description = Some(format!("{}{suffix}", spec.description.unwrap_or_default()));
    let config = serde_json::json!({
        "symbol": symbol,
        "supported_symbols": [symbol],
        "confidence_threshold": 0.70,
        "use_session_filter": true,
        "use_volatility_filter": true,
        "use_trend_filter": false,
        "entry_logic": "all",
    });
    (spec, config)
}

/// Applies the present fields of `input`.
pub fn apply(r: &mut StrategyRecord, input: StrategyInput) {
    if let Some(v) = input.name {
        r.name = v;
    }
    if input.description.is_some() {
        r.description = input.description;
    }
    if let Some(v) = input.strategy_type {
        r.strategy_type = v;
    }
    if input.code.is_some() {
        r.code = input.code;
    }
    if let Some(v) = input.parameters {
        r.parameters = v;
    }
    if let Some(v) = input.indicators {
        r.indicators = v;
    }
    if let Some(v) = input.entry_rules {
        r.entry_rules = v;
    }
    if let Some(v) = input.exit_rules {
        r.exit_rules = v;
    }
    if input.risk_management.is_some() {
        r.risk_management = input.risk_management;
    }
    if input.config.is_some() {
        r.config = input.config;
    }
    if let Some(v) = input.is_public {
        r.is_public = v;
    }
}

fn strategy_item(record: &StrategyRecord) -> BacktestResult<Item> {
    let mut item = Item::from_record(&strategy_key(record.user_id, record.id), record)?;
    if record.is_public {
        item.set("GSI1PK", PUBLIC_INDEX_PK);
        item.set("GSI1SK", record.id.to_string());
    }
    Ok(item)
}

/// The rule strategy a record runs as: its own rules, or a legacy type's rules from its `config`.
pub fn spec_of(record: &StrategyRecord) -> BacktestResult<StrategySpec> {
    let own = record.spec();
    if !own.entry_rules.is_empty() {
        return Ok(own);
    }
    let config = record.config.clone().unwrap_or(Value::Null);
    spec::legacy_strategy(&record.strategy_type, &config)
        .map(|mut s| {
            s.name = record.name.clone();
            s
        })
        .map_err(|p| BacktestError::InvalidStrategy(vec![p.to_string()]))
}

/// The strategy compiled for a run: every problem at once when it does not compile.
pub fn compile(record: &StrategyRecord) -> BacktestResult<(StrategySpec, CompiledStrategy)> {
    let spec = spec_of(record)?;
    let compiled =
        spec.compile().map_err(|ps| BacktestError::InvalidStrategy(ps.iter().map(|p| p.to_string()).collect()))?;
    // Entry rules of one direction are alternatives (the original's reading), unless the strategy's config says
    // they are filters that must all hold (the ML template: confidence AND session AND volatility).
    let all = record.config.as_ref().and_then(|c| c.get("entry_logic")).and_then(Value::as_str) == Some("all");
    let compiled = if all { compiled.with_entry_logic(RuleLogic::All) } else { compiled };
    Ok((spec, compiled))
}

/// `POST /strategies/{id}/validate`: every problem, the original's four messages first.
pub fn validate(record: &StrategyRecord) -> Vec<String> {
    record.spec().validate().iter().map(|p| p.to_string()).collect()
}

/// Refuses a record whose rules do not parse (drafts without rules or risk management pass).
fn check_rules(record: &StrategyRecord) -> BacktestResult<()> {
    let problems: Vec<String> =
        validate(record).into_iter().filter(|p| !DRAFT_PROBLEMS.contains(&p.as_str())).collect();
    if problems.is_empty() { Ok(()) } else { Err(BacktestError::InvalidStrategy(problems)) }
}

/// The original's structural messages: a stored draft may have these (`validate` reports them), never a rule
/// that does not parse.
pub const DRAFT_PROBLEMS: [&str; 4] = [
    "Strategy name is required",
    "At least one entry rule is required",
    "At least one exit rule is required",
    "Risk management configuration is required",
];
