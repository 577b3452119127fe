//! Strategies: the wire shapes of contract §2.5, validation that reports every problem at once, and compilation
//! into a [`CompiledStrategy`] whose rules are parsed once ([`crate::rules`]) and evaluated column-wise into
//! per-bar [`Signals`].
//!
//! # How rules become signals
//!
//! * **Entry rules** (`action` `BUY` or `SELL`, case-insensitive): the `BUY` rules are OR-ed into
//!   `enter_long`, the `SELL` rules into `enter_short` — the original's "valid if **any** rule for the direction
//!   is satisfied" (§6.8). [`CompiledStrategy::with_entry_logic`] with [`RuleLogic::All`] AND-s them instead
//!   (filters such as the ML template's session and volatility rules read that way).
//! * **Exit rules** are always OR-ed. `CLOSE` (or `CLOSE_ALL`) closes both sides; `CLOSE_LONG` / `CLOSE_BUY`
//!   longs; `CLOSE_SHORT` / `CLOSE_SELL` shorts. `SELL` on an exit rule closes longs and `BUY` closes shorts (the
//!   order that would close the position).
//! * **Risk-managed exits:** an exit rule whose condition is exactly `hit_stop_loss` or `hit_take_profit`
//!   (case-insensitive; the ML template's, the original's "special conditions") is not an expression: it states
//!   that positions leave at the stop loss / take profit of the risk management, which the engine applies bar by
//!   bar. It produces no signal; validation requires the matching stop or target to be configured.
//! * Parameters: a rule names a parameter (`RSI(rsi_period) < oversold`); values come from [`ParamValues`] by
//!   name (case-insensitive), missing ones take the defaults. Booleans are 0/1.
//!
//! The legacy strategy types of §2.7, the ML template of §4.10 and timeframe parsing are in [`legacy`].

use std::collections::BTreeMap;
use std::fmt;

use nusatrade_ml::candles::Columns;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use crate::engine::{Risk, Signals};
use crate::rules::{self, ArgKind, Cond, EvalError, Evaluator, External, ExternalSeries};

pub mod legacy;
mod risk;
#[cfg(test)]
mod tests;

pub use legacy::{
    RiskProfile, TimeframeError, fallback_strategy, legacy_strategy, ml_profitable_template, parse_timeframe, timeframe,
};

/// Values of a strategy's parameters by name (the defaults, or what the optimizer tries).
pub type ParamValues = BTreeMap<String, f64>;

/// Longest strategy name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest strategy description.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Most entry rules, and most exit rules.
pub const MAX_RULES: usize = 20;
/// Most parameters.
pub const MAX_PARAMETERS: usize = 30;
/// Longest rule id.
pub const MAX_RULE_ID_CHARS: usize = 100;
/// Longest rule or parameter description.
pub const MAX_ITEM_DESCRIPTION_CHARS: usize = 1_000;
/// Longest parameter name.
pub const MAX_PARAM_NAME_CHARS: usize = 64;
/// Most entries in `indicators`, and the longest one.
pub const MAX_INDICATORS: usize = 50;
/// Longest entry in `indicators`.
pub const MAX_INDICATOR_CHARS: usize = 100;

/// A parameter's `default_value`: a string, an integer, a float or a boolean, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DefaultValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

impl fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultValue::Bool(b) => write!(f, "{b}"),
            DefaultValue::Int(i) => write!(f, "{i}"),
            DefaultValue::Float(x) => write!(f, "{x}"),
            DefaultValue::Str(s) => write!(f, "'{s}'"),
        }
    }
}

fn number_type() -> String {
    "number".to_string()
}

/// `StrategyParameter` (§2.5): `{name, type = "number", default_value (required), description?, min?, max?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyParameter {
    /// Name, referenced by rules.
    pub name: String,
    /// `number` (default), `integer`, `boolean` or `string` (also `int`, `float`, `bool`, `str`).
    #[serde(rename = "type", default = "number_type")]
    pub param_type: String,
    /// The default.
    pub default_value: DefaultValue,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Lower end of the range the optimizer explores.
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper end of that range.
    #[serde(default)]
    pub max: Option<f64>,
}

/// `StrategyRule` (§2.5): every field required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyRule {
    /// Identifier, unique within its list.
    pub id: String,
    /// A rule-language condition ([`crate::rules`]), or `hit_stop_loss` / `hit_take_profit` on exit rules.
    pub condition: String,
    /// Entry: `BUY` / `SELL`; exit: `CLOSE`, `CLOSE_LONG`, `CLOSE_SHORT`, `SELL` (closes longs), `BUY` (closes
    /// shorts).
    pub action: String,
    /// Free text.
    pub description: String,
}

/// `TrailingStopConfig`, strategy flavour (§2.5), with its defaults; every field optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrailingStopConfig {
    /// Master switch: `false` turns off both trailing and breakeven for the strategy (default false).
    pub enabled: bool,
    /// `atr_based` (default), `fixed_pips` or `percentage`.
    pub trailing_type: String,
    /// Profit in pips before trailing starts (20).
    pub activation_pips: f64,
    /// Trail distance in pips for `fixed_pips` (15).
    pub trail_distance_pips: f64,
    /// ATR multiple for `atr_based` (1.5).
    pub atr_multiplier: f64,
    /// Move the stop to breakeven (true).
    pub breakeven_enabled: bool,
    /// Profit in pips that triggers breakeven (15).
    pub breakeven_pips: f64,
}

impl Default for TrailingStopConfig {
    fn default() -> Self {
        TrailingStopConfig {
            enabled: false,
            trailing_type: "atr_based".to_string(),
            activation_pips: 20.0,
            trail_distance_pips: 15.0,
            atr_multiplier: 1.5,
            breakeven_enabled: true,
            breakeven_pips: 15.0,
        }
    }
}

/// `RiskManagement` (§2.5) with its defaults; unknown keys are dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RiskManagement {
    /// `atr_based` (default; alias `atr`), `fixed_pips` (`pips`, `fixed`), `percentage` (`percent`) or `none`.
    pub stop_loss_type: String,
    /// ATR multiple, pips or percent of the entry (2.0).
    pub stop_loss_value: f64,
    /// `risk_reward` (default; `rr`), `atr_based`, `fixed_pips`, `percentage` or `none`.
    pub take_profit_type: String,
    /// Multiple of the stop distance, ATR multiple, pips or percent (2.0).
    pub take_profit_value: f64,
    /// Trailing stop and breakeven (none by default).
    pub trailing_stop: Option<TrailingStopConfig>,
    /// Largest position, lots (0.1).
    pub max_position_size: f64,
    /// Percent of equity risked to the stop per trade (2.0), for [`crate::engine::Sizing::RiskPercent`].
    pub risk_per_trade_percent: f64,
    /// Daily loss limit, account currency (none).
    pub max_daily_loss: Option<f64>,
}

impl Default for RiskManagement {
    fn default() -> Self {
        RiskManagement {
            stop_loss_type: "atr_based".to_string(),
            stop_loss_value: 2.0,
            take_profit_type: "risk_reward".to_string(),
            take_profit_value: 2.0,
            trailing_stop: None,
            max_position_size: 0.1,
            risk_per_trade_percent: 2.0,
            max_daily_loss: None,
        }
    }
}

/// `BacktestMetrics` (§2.5): what quick-backtest returns and caches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BacktestMetrics {
    /// Net profit, account currency (2 dp).
    pub net_profit: f64,
    /// Closed trades.
    pub total_trades: u64,
    /// Trades with a profit.
    pub winning_trades: u64,
    /// Percent (1 dp).
    pub win_rate: f64,
    /// Gross profit / gross loss (2 dp; 0 when undefined or infinite).
    pub profit_factor: f64,
    /// Maximum drawdown, percent, positive (1 dp).
    pub max_drawdown_pct: f64,
    /// Sharpe ratio (2 dp).
    pub sharpe_ratio: f64,
}

fn round_dp(x: f64, dp: i32) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    let m = 10f64.powi(dp);
    (x * m).round() / m
}

impl BacktestMetrics {
    /// The quick-backtest summary of a run's statistics, rounded as the original (net profit 2 dp, win rate 1 dp,
    /// profit factor 2 dp, drawdown 1 dp, Sharpe 2 dp); non-finite values (an infinite profit factor) become 0.
    pub fn from_stats(stats: &crate::stats::Stats) -> Self {
        BacktestMetrics {
            net_profit: round_dp(stats.net_profit, 2),
            total_trades: stats.trades as u64,
            winning_trades: stats.winning_trades as u64,
            win_rate: round_dp(stats.win_rate_pct, 1),
            profit_factor: round_dp(stats.profit_factor, 2),
            max_drawdown_pct: round_dp(stats.max_drawdown_pct.abs(), 1),
            sharpe_ratio: round_dp(stats.sharpe_ratio, 2),
        }
    }
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

fn custom_type() -> String {
    "custom".to_string()
}

fn null_as_custom<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Option::<String>::deserialize(d).map(|s| s.unwrap_or_else(custom_type))
}

/// A rule-based strategy: the fields of §2.5's strategy body / `StrategyResponse` that define behaviour (other
/// keys — `id`, `code`, `is_active`, … — are dropped when deserialising; `null` lists read as empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategySpec {
    /// Name (required, ≤ [`MAX_NAME_CHARS`]).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `custom` (default), `ai_generated`, `preset`, or a legacy type.
    #[serde(default = "custom_type", deserialize_with = "null_as_custom")]
    pub strategy_type: String,
    /// Parameters (≤ [`MAX_PARAMETERS`]).
    #[serde(default, deserialize_with = "null_as_default")]
    pub parameters: Vec<StrategyParameter>,
    /// Indicator names shown to the user (informational).
    #[serde(default, deserialize_with = "null_as_default")]
    pub indicators: Vec<String>,
    /// Entry rules (≤ [`MAX_RULES`]).
    #[serde(default, deserialize_with = "null_as_default")]
    pub entry_rules: Vec<StrategyRule>,
    /// Exit rules (≤ [`MAX_RULES`]).
    #[serde(default, deserialize_with = "null_as_default")]
    pub exit_rules: Vec<StrategyRule>,
    /// Risk management (required for a valid strategy).
    #[serde(default)]
    pub risk_management: Option<RiskManagement>,
}

/// One validation problem: where (`entry_rules[0].condition`, `name`, …) and the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Path of the offending field, empty for the strategy as a whole.
    pub field: String,
    /// The message (the original's four messages verbatim; rule errors prefixed by the rule).
    pub message: String,
}

impl Problem {
    /// A problem at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What kind of value a parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// Any finite number.
    Number,
    /// A whole number.
    Integer,
    /// 0 or 1 (`false` / `true`).
    Boolean,
    /// Text: stored, never read by rules, not optimised.
    Text,
}

impl ParamKind {
    /// The kind named by a parameter's `type` (case-insensitive), if known.
    pub fn parse(s: &str) -> Option<ParamKind> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "number" | "float" | "double" | "decimal" => ParamKind::Number,
            "integer" | "int" => ParamKind::Integer,
            "boolean" | "bool" => ParamKind::Boolean,
            "string" | "str" | "text" => ParamKind::Text,
            _ => return None,
        })
    }
}

/// A parameter as the optimizer sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamInfo {
    /// Declared name.
    pub name: String,
    /// Kind.
    pub kind: ParamKind,
    /// Default as a number (0/1 for booleans, `NaN` for text).
    pub default: f64,
    /// Declared range, if any.
    pub min: Option<f64>,
    /// Declared range, if any.
    pub max: Option<f64>,
    /// Whether only whole numbers are valid (an `integer`/`boolean` parameter, or one used as a period or lookback).
    pub integer: bool,
    /// The values the rules accept (the intersection of where it is used, e.g. 1 ..= 500 for a period;
    /// `(-inf, inf)` when unconstrained).
    pub bounds: (f64, f64),
    /// Whether any rule reads it.
    pub used: bool,
}

/// How entry rules of one direction combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleLogic {
    /// Enter when any rule holds (the original's semantics).
    #[default]
    Any,
    /// Enter when every rule of the direction holds.
    All,
}

/// Why signals could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    /// A name in the parameter values that the strategy does not declare.
    #[error("unknown parameter '{0}'")]
    UnknownParam(String),
    /// A value that does not fit its parameter.
    #[error("parameter '{name}' = {value}: {problem}")]
    InvalidParam {
        /// Parameter.
        name: String,
        /// Value given.
        value: f64,
        /// What is wrong.
        problem: String,
    },
    /// Bars, external series or a parameter used as an argument (see [`EvalError`]).
    #[error(transparent)]
    Eval(#[from] EvalError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitSide {
    Long,
    Short,
    Both,
}

fn entry_side(action: &str) -> Option<bool> {
    match action.trim().to_ascii_uppercase().as_str() {
        "BUY" => Some(true),
        "SELL" => Some(false),
        _ => None,
    }
}

fn exit_side(action: &str) -> Option<ExitSide> {
    Some(match action.trim().to_ascii_uppercase().as_str() {
        "CLOSE" | "CLOSE_ALL" => ExitSide::Both,
        "CLOSE_LONG" | "CLOSE_BUY" | "SELL" => ExitSide::Long,
        "CLOSE_SHORT" | "CLOSE_SELL" | "BUY" => ExitSide::Short,
        _ => return None,
    })
}

/// A risk-managed exit condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RiskExit {
    StopLoss,
    TakeProfit,
}

fn risk_exit(condition: &str) -> Option<RiskExit> {
    let c = condition.trim();
    if c.eq_ignore_ascii_case("hit_stop_loss") {
        Some(RiskExit::StopLoss)
    } else if c.eq_ignore_ascii_case("hit_take_profit") {
        Some(RiskExit::TakeProfit)
    } else {
        None
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A parameter's default as a number for its kind, or why it is not one.
fn default_number(p: &StrategyParameter, kind: ParamKind) -> Result<f64, String> {
    let v = match (&p.default_value, kind) {
        (_, ParamKind::Text) => return Ok(f64::NAN),
        (DefaultValue::Bool(b), _) => f64::from(u8::from(*b)),
        (DefaultValue::Int(i), _) => *i as f64,
        (DefaultValue::Float(x), _) => *x,
        (DefaultValue::Str(s), ParamKind::Boolean) if s.trim().eq_ignore_ascii_case("true") => 1.0,
        (DefaultValue::Str(s), ParamKind::Boolean) if s.trim().eq_ignore_ascii_case("false") => 0.0,
        (DefaultValue::Str(s), _) => match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => x,
            _ => return Err(format!("default '{s}' is not a number")),
        },
    };
    if !v.is_finite() {
        return Err(format!("default {v} is not a finite number"));
    }
    match kind {
        ParamKind::Integer if v.fract() != 0.0 => Err(format!("default {v} is not a whole number")),
        ParamKind::Boolean if v != 0.0 && v != 1.0 => Err(format!("default {v} is not a boolean (0/1)")),
        _ => Ok(v),
    }
}

fn too_long(what: &str, len: usize, max: usize) -> String {
    format!("{what} is too long ({len} characters; the limit is {max})")
}

/// The parts of a checked strategy.
struct Analysis {
    problems: Vec<Problem>,
    params: Vec<ParamInfo>,
    enter_long: Vec<Cond>,
    enter_short: Vec<Cond>,
    exit_long: Vec<Cond>,
    exit_short: Vec<Cond>,
    usages: Vec<(usize, ArgKind, String)>,
    risk: Option<Risk>,
}

impl StrategySpec {
    /// Every problem of the strategy at once (empty = valid): the original's four messages ("Strategy name is
    /// required", "At least one entry rule is required", "At least one exit rule is required", "Risk management
    /// configuration is required"), limits, parameters, each rule's action and every error of its condition
    /// (prefixed `entry rule 'r1': …`), and the risk management's types and values.
    pub fn validate(&self) -> Vec<Problem> {
        self.analyze().problems
    }

    /// Compiles a valid strategy (else every problem, as [`validate`](Self::validate)).
    pub fn compile(&self) -> Result<CompiledStrategy, Vec<Problem>> {
        let a = self.analyze();
        match a.risk {
            Some(risk) if a.problems.is_empty() => {
                let rm = self.risk_management.clone().unwrap_or_default();
                let mut externals = Vec::new();
                for c in a.enter_long.iter().chain(&a.enter_short).chain(&a.exit_long).chain(&a.exit_short) {
                    externals.extend(rules::externals_used(c));
                }
                externals.sort_unstable();
                externals.dedup();
                Ok(CompiledStrategy {
                    name: self.name.trim().to_string(),
                    params: a.params,
                    enter_long: a.enter_long,
                    enter_short: a.enter_short,
                    exit_long: a.exit_long,
                    exit_short: a.exit_short,
                    usages: a.usages,
                    externals,
                    entry_logic: RuleLogic::Any,
                    risk,
                    risk_per_trade_percent: risk::decimal(rm.risk_per_trade_percent).unwrap_or_default(),
                    max_daily_loss: rm.max_daily_loss,
                })
            }
            _ => Err(a.problems),
        }
    }

    fn analyze(&self) -> Analysis {
        let mut problems = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            problems.push(Problem::new("name", "Strategy name is required"));
        } else if self.name.chars().count() > MAX_NAME_CHARS {
            problems.push(Problem::new("name", too_long("Strategy name", self.name.chars().count(), MAX_NAME_CHARS)));
        }
        if self.entry_rules.is_empty() {
            problems.push(Problem::new("entry_rules", "At least one entry rule is required"));
        }
        if self.exit_rules.is_empty() {
            problems.push(Problem::new("exit_rules", "At least one exit rule is required"));
        }
        if self.risk_management.is_none() {
            problems.push(Problem::new("risk_management", "Risk management configuration is required"));
        }
        if let Some(d) = &self.description {
            let len = d.chars().count();
            if len > MAX_DESCRIPTION_CHARS {
                problems.push(Problem::new("description", too_long("The description", len, MAX_DESCRIPTION_CHARS)));
            }
        }
        if self.indicators.len() > MAX_INDICATORS {
            let msg = format!("too many indicators ({}; the limit is {MAX_INDICATORS})", self.indicators.len());
            problems.push(Problem::new("indicators", msg));
        }
        for (i, ind) in self.indicators.iter().take(MAX_INDICATORS).enumerate() {
            let len = ind.chars().count();
            if len > MAX_INDICATOR_CHARS {
                problems.push(Problem::new(
                    format!("indicators[{i}]"),
                    too_long("An indicator name", len, MAX_INDICATOR_CHARS),
                ));
            }
        }

        let params = self.check_parameters(&mut problems);
        let names: Vec<&str> = self.parameters.iter().take(MAX_PARAMETERS).map(|p| p.name.trim()).collect();

        let risk_checked = self.risk_management.as_ref().map(|rm| risk::check(rm, &mut problems));
        let (has_stop, has_target) = match &risk_checked {
            Some(Some(r)) => {
                (r.stop_loss != crate::engine::StopRule::None, r.take_profit != crate::engine::TargetRule::None)
            }
            // Unknown or missing risk management: already reported; do not pile on.
            _ => (true, true),
        };

        let mut a = Analysis {
            problems: Vec::new(),
            params,
            enter_long: Vec::new(),
            enter_short: Vec::new(),
            exit_long: Vec::new(),
            exit_short: Vec::new(),
            usages: Vec::new(),
            risk: risk_checked.flatten(),
        };
        for (is_entry, list, field) in
            [(true, &self.entry_rules, "entry_rules"), (false, &self.exit_rules, "exit_rules")]
        {
            let kind = if is_entry { "entry" } else { "exit" };
            if list.len() > MAX_RULES {
                let msg = format!("too many {kind} rules ({}; the limit is {MAX_RULES})", list.len());
                problems.push(Problem::new(field, msg));
            }
            let mut seen_ids: Vec<String> = Vec::new();
            for (i, rule) in list.iter().take(MAX_RULES).enumerate() {
                let id = rule.id.trim();
                let label = if id.is_empty() || id.chars().count() > MAX_RULE_ID_CHARS {
                    format!("{kind} rule #{}", i + 1)
                } else {
                    format!("{kind} rule '{id}'")
                };
                let at = |sub: &str| format!("{field}[{i}].{sub}");
                if id.is_empty() {
                    problems.push(Problem::new(at("id"), format!("{label}: the id is required")));
                } else if id.chars().count() > MAX_RULE_ID_CHARS {
                    problems.push(Problem::new(
                        at("id"),
                        format!("{label}: {}", too_long("the id", id.chars().count(), MAX_RULE_ID_CHARS)),
                    ));
                } else if seen_ids.iter().any(|s| s == id) {
                    problems.push(Problem::new(at("id"), format!("{label}: duplicate rule id")));
                } else {
                    seen_ids.push(id.to_string());
                }
                let dlen = rule.description.chars().count();
                if dlen > MAX_ITEM_DESCRIPTION_CHARS {
                    problems.push(Problem::new(
                        at("description"),
                        format!("{label}: {}", too_long("the description", dlen, MAX_ITEM_DESCRIPTION_CHARS)),
                    ));
                }
                // Where the rule's signal goes.
                let target = if is_entry {
                    match entry_side(&rule.action) {
                        Some(true) => Some((true, false)),
                        Some(false) => Some((false, true)),
                        None => {
                            let msg = format!("{label}: unknown action '{}' (expected BUY or SELL)", rule.action);
                            problems.push(Problem::new(at("action"), msg));
                            None
                        }
                    }
                } else {
                    match exit_side(&rule.action) {
                        Some(ExitSide::Long) => Some((true, false)),
                        Some(ExitSide::Short) => Some((false, true)),
                        Some(ExitSide::Both) => Some((true, true)),
                        None => {
                            let msg = format!(
                                "{label}: unknown action '{}' (expected CLOSE, CLOSE_LONG, CLOSE_SHORT, BUY or SELL)",
                                rule.action
                            );
                            problems.push(Problem::new(at("action"), msg));
                            None
                        }
                    }
                };
                if let Some(special) = risk_exit(&rule.condition) {
                    let word = rule.condition.trim();
                    if is_entry {
                        problems
                            .push(Problem::new(at("condition"), format!("{label}: '{word}' can only be an exit rule")));
                    } else if special == RiskExit::StopLoss && !has_stop {
                        problems.push(Problem::new(
                            at("condition"),
                            format!("{label}: '{word}' needs a stop loss in the risk management"),
                        ));
                    } else if special == RiskExit::TakeProfit && !has_target {
                        problems.push(Problem::new(
                            at("condition"),
                            format!("{label}: '{word}' needs a take profit in the risk management"),
                        ));
                    }
                    continue;
                }
                let cond = match rules::parse(&rule.condition, &names) {
                    Ok(c) => c,
                    Err(errors) => {
                        for e in errors {
                            problems.push(Problem::new(at("condition"), format!("{label}: {e}")));
                        }
                        continue;
                    }
                };
                let before = problems.len();
                for slot in rules::params_used(&cond) {
                    if let Some(info) = a.params.get_mut(slot) {
                        info.used = true;
                        if info.kind == ParamKind::Text {
                            let msg =
                                format!("{label}: parameter '{}' is text and cannot be used in a condition", info.name);
                            problems.push(Problem::new(at("condition"), msg));
                        }
                    }
                }
                for (slot, arg_kind, what) in rules::param_usages(&cond) {
                    let Some(info) = a.params.get_mut(slot) else { continue };
                    let (lo, hi) = arg_kind.bounds();
                    info.bounds = (info.bounds.0.max(lo), info.bounds.1.min(hi));
                    info.integer |= arg_kind.integer();
                    if info.default.is_finite()
                        && let Err(problem) = arg_kind.check(info.default)
                    {
                        let msg = format!("{label}: {what} is parameter '{}', whose default {problem}", info.name);
                        problems.push(Problem::new(at("condition"), msg));
                    }
                    a.usages.push((slot, arg_kind, what));
                }
                if problems.len() > before {
                    continue;
                }
                if let Some((long, short)) = target {
                    match (is_entry, long, short) {
                        (true, true, _) => a.enter_long.push(cond),
                        (true, false, _) => a.enter_short.push(cond),
                        (false, true, true) => {
                            a.exit_long.push(cond.clone());
                            a.exit_short.push(cond);
                        }
                        (false, true, false) => a.exit_long.push(cond),
                        (false, false, _) => a.exit_short.push(cond),
                    }
                }
            }
        }
        a.problems = problems;
        a
    }

    fn check_parameters(&self, problems: &mut Vec<Problem>) -> Vec<ParamInfo> {
        if self.parameters.len() > MAX_PARAMETERS {
            let msg = format!("too many parameters ({}; the limit is {MAX_PARAMETERS})", self.parameters.len());
            problems.push(Problem::new("parameters", msg));
        }
        let mut out: Vec<ParamInfo> = Vec::new();
        for (i, p) in self.parameters.iter().take(MAX_PARAMETERS).enumerate() {
            let name = p.name.trim();
            let label = if name.is_empty() || name.chars().count() > MAX_PARAM_NAME_CHARS {
                format!("parameter #{}", i + 1)
            } else {
                format!("parameter '{name}'")
            };
            let at = |sub: &str| format!("parameters[{i}].{sub}");
            if name.is_empty() {
                problems.push(Problem::new(at("name"), format!("{label}: the name is required")));
            } else if name.chars().count() > MAX_PARAM_NAME_CHARS {
                problems.push(Problem::new(
                    at("name"),
                    format!("{label}: {}", too_long("the name", name.chars().count(), MAX_PARAM_NAME_CHARS)),
                ));
            } else if !is_identifier(name) {
                let msg =
                    format!("{label}: the name must start with a letter or '_' and hold only letters, digits and '_'");
                problems.push(Problem::new(at("name"), msg));
            } else if rules::is_reserved(name) {
                problems.push(Problem::new(at("name"), format!("{label}: the name is reserved by the rule language")));
            } else if out.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
                problems.push(Problem::new(at("name"), format!("duplicate parameter name '{name}'")));
            }
            if let Some(d) = &p.description {
                let len = d.chars().count();
                if len > MAX_ITEM_DESCRIPTION_CHARS {
                    problems.push(Problem::new(
                        at("description"),
                        format!("{label}: {}", too_long("the description", len, MAX_ITEM_DESCRIPTION_CHARS)),
                    ));
                }
            }
            let kind = match ParamKind::parse(&p.param_type) {
                Some(k) => k,
                None => {
                    let msg = format!(
                        "{label}: unknown type '{}' (expected number, integer, boolean or string)",
                        p.param_type
                    );
                    problems.push(Problem::new(at("type"), msg));
                    ParamKind::Number
                }
            };
            let default = match default_number(p, kind) {
                Ok(v) => v,
                Err(msg) => {
                    problems.push(Problem::new(at("default_value"), format!("{label}: {msg}")));
                    f64::NAN
                }
            };
            if kind != ParamKind::Text {
                for (which, v) in [("min", p.min), ("max", p.max)] {
                    if v.is_some_and(|v| !v.is_finite()) {
                        problems.push(Problem::new(at(which), format!("{label}: {which} is not a finite number")));
                    }
                }
                let inverted = matches!((p.min, p.max), (Some(lo), Some(hi)) if lo > hi);
                if let (true, Some(lo), Some(hi)) = (inverted, p.min, p.max) {
                    problems.push(Problem::new(at("min"), format!("{label}: min {lo} is greater than max {hi}")));
                }
                if default.is_finite() && !inverted {
                    let below = p.min.is_some_and(|lo| default < lo);
                    let above = p.max.is_some_and(|hi| default > hi);
                    if below || above {
                        let range = format!(
                            "[{}, {}]",
                            p.min.map_or("-inf".to_string(), |v| v.to_string()),
                            p.max.map_or("inf".to_string(), |v| v.to_string())
                        );
                        problems.push(Problem::new(
                            at("default_value"),
                            format!("{label}: default {default} is outside {range}"),
                        ));
                    }
                }
            }
            let integer = matches!(kind, ParamKind::Integer | ParamKind::Boolean);
            let bounds = if kind == ParamKind::Boolean { (0.0, 1.0) } else { (f64::NEG_INFINITY, f64::INFINITY) };
            out.push(ParamInfo {
                name: name.to_string(),
                kind,
                default,
                min: p.min,
                max: p.max,
                integer,
                bounds,
                used: false,
            });
        }
        out
    }
}

/// A strategy whose rules are parsed and checked: evaluating it cannot panic (parameter values are checked by
/// [`check_params`](Self::check_params)).
#[derive(Debug, Clone)]
pub struct CompiledStrategy {
    name: String,
    params: Vec<ParamInfo>,
    enter_long: Vec<Cond>,
    enter_short: Vec<Cond>,
    exit_long: Vec<Cond>,
    exit_short: Vec<Cond>,
    usages: Vec<(usize, ArgKind, String)>,
    externals: Vec<External>,
    entry_logic: RuleLogic,
    risk: Risk,
    risk_per_trade_percent: Decimal,
    max_daily_loss: Option<f64>,
}

impl CompiledStrategy {
    /// The strategy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its parameters, in declaration order (a parameter's index is its slot in [`check_params`](Self::check_params)'s
    /// output).
    pub fn parameters(&self) -> &[ParamInfo] {
        &self.params
    }

    /// The external series the rules read (the caller must supply them, see [`evaluator`](Self::evaluator)).
    pub fn external_inputs(&self) -> &[External] {
        &self.externals
    }

    /// The compiled conditions: `(enter_long, enter_short, exit_long, exit_short)`.
    pub fn conditions(&self) -> [&[Cond]; 4] {
        [&self.enter_long, &self.enter_short, &self.exit_long, &self.exit_short]
    }

    /// The engine's risk settings (stop, target, trailing, lot cap).
    pub fn risk(&self) -> Risk {
        self.risk
    }

    /// `risk_per_trade_percent`, for [`crate::engine::Sizing::RiskPercent`].
    pub fn risk_per_trade_percent(&self) -> Decimal {
        self.risk_per_trade_percent
    }

    /// `max_daily_loss`, if set.
    pub fn max_daily_loss(&self) -> Option<f64> {
        self.max_daily_loss
    }

    /// How entry rules of one direction combine.
    pub fn entry_logic(&self) -> RuleLogic {
        self.entry_logic
    }

    /// The same strategy with entry rules combined by `logic`.
    pub fn with_entry_logic(mut self, logic: RuleLogic) -> Self {
        self.entry_logic = logic;
        self
    }

    /// The defaults by slot.
    pub fn default_values(&self) -> Vec<f64> {
        self.params.iter().map(|p| p.default).collect()
    }

    /// Resolves `params` (by name, case-insensitive; missing ones take defaults) into values by slot, checking
    /// every value: finite, whole for integer/boolean parameters, 0/1 for booleans, and within the range of every
    /// place a rule uses it (a period 1 ..= 500, …). Declared `min`/`max` are not enforced (they are the
    /// optimizer's default search range).
    pub fn check_params(&self, params: &ParamValues) -> Result<Vec<f64>, SignalError> {
        let mut values = self.default_values();
        for (name, &value) in params {
            let slot = self
                .params
                .iter()
                .position(|p| p.name == *name)
                .or_else(|| self.params.iter().position(|p| p.name.eq_ignore_ascii_case(name)))
                .ok_or_else(|| SignalError::UnknownParam(name.clone()))?;
            let info = &self.params[slot];
            let invalid = |problem: &str| SignalError::InvalidParam {
                name: info.name.clone(),
                value,
                problem: problem.to_string(),
            };
            if info.kind == ParamKind::Text {
                return Err(invalid("a text parameter has no numeric value"));
            }
            if !value.is_finite() {
                return Err(invalid("not a finite number"));
            }
            if info.kind == ParamKind::Integer && value.fract() != 0.0 {
                return Err(invalid("not a whole number"));
            }
            if info.kind == ParamKind::Boolean && value != 0.0 && value != 1.0 {
                return Err(invalid("a boolean parameter must be 0 or 1"));
            }
            values[slot] = value;
        }
        for (slot, kind, what) in &self.usages {
            let (Some(&value), Some(info)) = (values.get(*slot), self.params.get(*slot)) else { continue };
            kind.check(value).map_err(|problem| EvalError::BadParam {
                name: info.name.clone(),
                value,
                what: what.clone(),
                problem,
            })?;
        }
        Ok(values)
    }

    /// An evaluator over `bars` that caches indicators across parameter sets (for the optimizer: one per thread).
    /// Refuses ragged bars and missing or mis-sized external series the rules need.
    pub fn evaluator<'a>(
        &'a self,
        bars: &'a Columns,
        external: &'a ExternalSeries,
    ) -> Result<StrategyEvaluator<'a>, SignalError> {
        let inner = Evaluator::new(bars, external)?;
        if let Some(missing) = self.externals.iter().find(|e| !inner.has_external(**e)) {
            return Err(EvalError::MissingExternal(missing.name()).into());
        }
        Ok(StrategyEvaluator { strategy: self, inner })
    }

    /// The per-bar decisions over `bars` with `params` and the caller's `external` series.
    pub fn signals_with(
        &self,
        bars: &Columns,
        external: &ExternalSeries,
        params: &ParamValues,
    ) -> Result<Signals, SignalError> {
        self.evaluator(bars, external)?.signals(params)
    }

    /// The per-bar decisions over `bars` with `params` (missing names take their defaults). Infallible by
    /// contract: when the parameters are invalid, the bars are ragged or the rules need external series (use
    /// [`signals_with`](Self::signals_with)), it decides nothing (`Signals::none`); call
    /// [`check_params`](Self::check_params) first to learn why.
    pub fn signals(&self, bars: &Columns, params: &ParamValues) -> Signals {
        let none = ExternalSeries::new();
        self.signals_with(bars, &none, params).unwrap_or_else(|_| Signals::none(bars.close.len()))
    }
}

/// Evaluates one compiled strategy over one bar series for many parameter sets, computing each distinct
/// indicator (by resolved arguments) once.
#[derive(Debug)]
pub struct StrategyEvaluator<'a> {
    strategy: &'a CompiledStrategy,
    inner: Evaluator<'a>,
}

impl StrategyEvaluator<'_> {
    /// The decisions with `params` by name (missing names take their defaults).
    pub fn signals(&mut self, params: &ParamValues) -> Result<Signals, SignalError> {
        let values = self.strategy.check_params(params)?;
        let mut out = Signals::default();
        self.signals_into(&values, &mut out)?;
        Ok(out)
    }

    /// The decisions with parameter values by slot (as [`CompiledStrategy::check_params`] returns them; every
    /// value used as an argument is checked again), written into `out` (its vectors are reused).
    pub fn signals_into(&mut self, values: &[f64], out: &mut Signals) -> Result<(), SignalError> {
        let s = self.strategy;
        let all = s.entry_logic == RuleLogic::All;
        self.inner.reset_warmup();
        self.inner.combine_into(&s.enter_long, values, all, &mut out.enter_long)?;
        self.inner.combine_into(&s.enter_short, values, all, &mut out.enter_short)?;
        self.inner.combine_into(&s.exit_long, values, false, &mut out.exit_long)?;
        self.inner.combine_into(&s.exit_short, values, false, &mut out.exit_short)?;
        // Where every indicator the rules read is defined: the statistics' buy & hold starts there.
        out.warmup = self.inner.warmup();
        Ok(())
    }

    /// Distinct indicator series cached so far.
    pub fn cached_series(&self) -> usize {
        self.inner.cached_series()
    }
}
