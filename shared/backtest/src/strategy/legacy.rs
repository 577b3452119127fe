//! The legacy strategy types of contract §2.7 as rule strategies, the ML template of §4.10, and timeframe names.
//!
//! Legacy types (`POST /backtest/strategies`, `config` = the original strategy class's keyword arguments):
//!
//! | type | parameters (defaults) | entry rules | exits and risk |
//! |---|---|---|---|
//! | `ma_crossover` | `fast_period` 10, `slow_period` 20 (`ma_type` `sma`/`ema` picks the average, default `sma`) | BUY `CROSSES_ABOVE(SMA(fast_period), SMA(slow_period))`, SELL `CROSSES_BELOW(…)` | stop `stop_loss_pips` 50, target `take_profit_pips` 100 (fixed pips), `lot_size` 0.1 → `max_position_size` |
//! | `rsi` | `rsi_period` (alias `period`) 14, `oversold` 30, `overbought` 70 | BUY `RSI(rsi_period) < oversold`, SELL `RSI(rsi_period) > overbought` | as above |
//! | `macd` | `fast_period` 12, `slow_period` 26, `signal_period` (aliases `fast`, `slow`, `signal`) 9 | BUY `CROSSES_ABOVE(MACD(…), MACD_SIGNAL(…))`, SELL `CROSSES_BELOW(…)` | as above |
//! | `custom` | the config's own `parameters` | the config's `entry_rules` / `exit_rules` (and `risk_management`) | — |
//!
//! As in the original, positions leave only at the stop or target (exit rules `hit_stop_loss` /
//! `hit_take_profit`), and an unknown config key is an error (the original's constructor raised). `custom` without
//! `entry_rules` is the MA crossover with the config's settings — what the original ran for every type but `rsi`.
//! Differences from the original: the MA cross is backtesting.py's strict one (`a[i−1] < b[i−1]`, where the
//! original accepted `≤`), the RSI is Wilder's (the original's used simple averages), and `macd` is a real MACD
//! strategy (the original ran the MA crossover for it).

use nusatrade_ml::candles::Timeframe;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{DefaultValue, Problem, RiskManagement, StrategyParameter, StrategyRule, StrategySpec, TrailingStopConfig};

fn param(name: &str, default: f64, min: f64, max: f64, description: &str) -> StrategyParameter {
    let default_value =
        if default.fract() == 0.0 { DefaultValue::Int(default as i64) } else { DefaultValue::Float(default) };
    StrategyParameter {
        name: name.to_string(),
        param_type: "number".to_string(),
        default_value,
        description: Some(description.to_string()),
        min: Some(min),
        max: Some(max),
    }
}

fn rule(id: &str, condition: &str, action: &str, description: &str) -> StrategyRule {
    StrategyRule {
        id: id.to_string(),
        condition: condition.to_string(),
        action: action.to_string(),
        description: description.to_string(),
    }
}

fn risk_exits() -> Vec<StrategyRule> {
    vec![
        rule("hit_stop_loss", "hit_stop_loss", "CLOSE", "Exit at the stop loss"),
        rule("hit_take_profit", "hit_take_profit", "CLOSE", "Exit at the take profit"),
    ]
}

/// Reads the config's settings: every key must be known (aliases map to the canonical name).
struct Settings<'a> {
    map: &'a Map<String, Value>,
    problems: Vec<String>,
    used: Vec<&'a str>,
}

impl<'a> Settings<'a> {
    /// The number under `names` (the first is canonical), or `default`.
    fn number(&mut self, names: &[&str], default: f64) -> f64 {
        for (key, v) in self.map {
            if names.contains(&key.as_str()) {
                self.used.push(key);
                return match v.as_f64() {
                    Some(x) if x.is_finite() => x,
                    _ => {
                        self.problems.push(format!("setting '{key}' must be a number, got {v}"));
                        default
                    }
                };
            }
        }
        default
    }

    fn text(&mut self, name: &str) -> Option<&'a str> {
        let (key, v) = self.map.get_key_value(name)?;
        self.used.push(key);
        match v.as_str() {
            Some(s) => Some(s),
            None => {
                self.problems.push(format!("setting '{name}' must be a string, got {v}"));
                None
            }
        }
    }

    fn finish(mut self, strategy_type: &str) -> Vec<String> {
        for key in self.map.keys() {
            if !self.used.contains(&key.as_str()) {
                self.problems.push(format!("unknown setting '{key}' for strategy type '{strategy_type}'"));
            }
        }
        self.problems
    }
}

fn risk(settings: &mut Settings<'_>) -> RiskManagement {
    let lot_size = settings.number(&["lot_size"], 0.1);
    let stop = settings.number(&["stop_loss_pips"], 50.0);
    let target = settings.number(&["take_profit_pips"], 100.0);
    RiskManagement {
        stop_loss_type: "fixed_pips".to_string(),
        stop_loss_value: stop,
        take_profit_type: "fixed_pips".to_string(),
        take_profit_value: target,
        max_position_size: lot_size,
        ..RiskManagement::default()
    }
}

const PERIOD_MAX: f64 = crate::rules::MAX_PERIOD as f64;

fn ma_crossover(settings: &mut Settings<'_>, strategy_type: &str) -> StrategySpec {
    let fast = settings.number(&["fast_period"], 10.0);
    let slow = settings.number(&["slow_period"], 20.0);
    let ma = match settings.text("ma_type").map(str::to_ascii_lowercase).as_deref() {
        None | Some("sma") => "SMA",
        Some("ema") => "EMA",
        Some(other) => {
            settings.problems.push(format!("setting 'ma_type' must be 'sma' or 'ema', got '{other}'"));
            "SMA"
        }
    };
    StrategySpec {
        name: "MA Crossover".to_string(),
        description: Some(format!(
            "Moving-average crossover: buy when the fast {ma} crosses above the slow one, sell when it crosses below"
        )),
        strategy_type: strategy_type.to_string(),
        parameters: vec![
            param("fast_period", fast, 1.0, PERIOD_MAX, "Fast moving-average period"),
            param("slow_period", slow, 1.0, PERIOD_MAX, "Slow moving-average period"),
        ],
        indicators: vec![ma.to_string()],
        entry_rules: vec![
            rule(
                "ma_cross_up",
                &format!("CROSSES_ABOVE({ma}(fast_period), {ma}(slow_period))"),
                "BUY",
                "Fast average crosses above the slow average",
            ),
            rule(
                "ma_cross_down",
                &format!("CROSSES_BELOW({ma}(fast_period), {ma}(slow_period))"),
                "SELL",
                "Fast average crosses below the slow average",
            ),
        ],
        exit_rules: risk_exits(),
        risk_management: Some(risk(settings)),
    }
}

fn rsi(settings: &mut Settings<'_>) -> StrategySpec {
    let period = settings.number(&["rsi_period", "period"], 14.0);
    let oversold = settings.number(&["oversold"], 30.0);
    let overbought = settings.number(&["overbought"], 70.0);
    StrategySpec {
        name: "RSI".to_string(),
        description: Some("RSI mean reversion: buy when oversold, sell when overbought".to_string()),
        strategy_type: "rsi".to_string(),
        parameters: vec![
            param("rsi_period", period, 1.0, PERIOD_MAX, "RSI period"),
            param("oversold", oversold, 0.0, 100.0, "Buy below this RSI"),
            param("overbought", overbought, 0.0, 100.0, "Sell above this RSI"),
        ],
        indicators: vec!["RSI".to_string()],
        entry_rules: vec![
            rule("rsi_oversold", "RSI(rsi_period) < oversold", "BUY", "RSI below the oversold level"),
            rule("rsi_overbought", "RSI(rsi_period) > overbought", "SELL", "RSI above the overbought level"),
        ],
        exit_rules: risk_exits(),
        risk_management: Some(risk(settings)),
    }
}

fn macd(settings: &mut Settings<'_>) -> StrategySpec {
    let fast = settings.number(&["fast_period", "fast"], 12.0);
    let slow = settings.number(&["slow_period", "slow"], 26.0);
    let signal = settings.number(&["signal_period", "signal"], 9.0);
    let args = "fast_period, slow_period, signal_period";
    StrategySpec {
        name: "MACD".to_string(),
        description: Some("MACD crossover: buy when the MACD line crosses above its signal, sell below".to_string()),
        strategy_type: "macd".to_string(),
        parameters: vec![
            param("fast_period", fast, 1.0, PERIOD_MAX, "Fast EMA period"),
            param("slow_period", slow, 1.0, PERIOD_MAX, "Slow EMA period"),
            param("signal_period", signal, 1.0, PERIOD_MAX, "Signal EMA period"),
        ],
        indicators: vec!["MACD".to_string()],
        entry_rules: vec![
            rule(
                "macd_cross_up",
                &format!("CROSSES_ABOVE(MACD({args}), MACD_SIGNAL({args}))"),
                "BUY",
                "MACD crosses above its signal line",
            ),
            rule(
                "macd_cross_down",
                &format!("CROSSES_BELOW(MACD({args}), MACD_SIGNAL({args}))"),
                "SELL",
                "MACD crosses below its signal line",
            ),
        ],
        exit_rules: risk_exits(),
        risk_management: Some(risk(settings)),
    }
}

fn custom(map: &Map<String, Value>) -> Result<StrategySpec, Vec<String>> {
    let mut body = map.clone();
    body.entry("name").or_insert_with(|| Value::String("Custom".to_string()));
    body.insert("strategy_type".to_string(), Value::String("custom".to_string()));
    serde_json::from_value::<StrategySpec>(Value::Object(body))
        .map_err(|e| vec![format!("the custom strategy's rules cannot be read: {e}")])
}

/// The rule strategy for a legacy `strategy_type` (`ma_crossover`, `rsi`, `macd`, `custom`; case-insensitive) and
/// its `config` (`null` or an object; see the module table). The result is validated; every problem (unknown or
/// non-numeric settings, out-of-range values, invalid custom rules) comes back in one [`Problem`] on `config`, its
/// messages joined by `; `.
pub fn legacy_strategy(strategy_type: &str, config: &Value) -> Result<StrategySpec, Problem> {
    let empty = Map::new();
    let map = match config {
        Value::Null => &empty,
        Value::Object(m) => m,
        other => return Err(Problem::new("config", format!("the strategy config must be an object, got {other}"))),
    };
    let kind = strategy_type.trim().to_ascii_lowercase();
    let mut settings = Settings { map, problems: Vec::new(), used: Vec::new() };
    let (spec, mut problems) = match kind.as_str() {
        "ma_crossover" => (ma_crossover(&mut settings, "ma_crossover"), settings.finish(&kind)),
        "rsi" => (rsi(&mut settings), settings.finish(&kind)),
        "macd" => (macd(&mut settings), settings.finish(&kind)),
        "custom" if map.contains_key("entry_rules") => match custom(map) {
            Ok(spec) => (spec, Vec::new()),
            Err(problems) => return Err(Problem::new("config", problems.join("; "))),
        },
        "custom" => (ma_crossover(&mut settings, "custom"), settings.finish(&kind)),
        _ => {
            let msg = format!("unknown strategy type '{strategy_type}' (expected ma_crossover, rsi, macd or custom)");
            return Err(Problem::new("strategy_type", msg));
        }
    };
    problems.extend(spec.validate().into_iter().map(|p| p.message));
    if problems.is_empty() { Ok(spec) } else { Err(Problem::new("config", problems.join("; "))) }
}

/// Name of the ML template (§4.10), also the clone route's duplicate check.
pub const ML_TEMPLATE_NAME: &str = "ML Profitable Strategy (XGBoost)";

/// The ML profitable strategy template of §4.10 (XAUUSD only): names, description, type, indicators, parameters,
/// rules and risk management as the contract lists them (the rule and parameter descriptions are ours: the
/// contract does not give them). Its entry rules read the external series `ml_confidence`, `vol_regime_low` and
/// `vol_regime_high` and the bar `hour`; its exits are the risk-managed `hit_stop_loss` / `hit_take_profit`
/// (SL 1.2 × ATR, TP 0.8 × ATR).
pub fn ml_profitable_template() -> StrategySpec {
    let p = |name: &str, default: DefaultValue, kind: &str, range: Option<(f64, f64)>, description: &str| {
        StrategyParameter {
            name: name.to_string(),
            param_type: kind.to_string(),
            default_value: default,
            description: Some(description.to_string()),
            min: range.map(|r| r.0),
            max: range.map(|r| r.1),
        }
    };
    StrategySpec {
        name: ML_TEMPLATE_NAME.to_string(),
        description: Some("Profitable ML strategy using XGBoost with session + volatility filters".to_string()),
        strategy_type: "ai_generated".to_string(),
        parameters: vec![
            p(
                "confidence_threshold",
                DefaultValue::Float(0.70),
                "number",
                Some((0.50, 0.95)),
                "Minimum model confidence to trade",
            ),
            p("use_session_filter", DefaultValue::Bool(true), "boolean", None, "Trade only in the London/NY session"),
            p("use_volatility_filter", DefaultValue::Bool(true), "boolean", None, "Skip low and high volatility"),
            p(
                "stop_loss_atr_multiplier",
                DefaultValue::Float(1.2),
                "number",
                Some((0.5, 3.0)),
                "Stop loss distance in ATRs",
            ),
            p(
                "take_profit_atr_multiplier",
                DefaultValue::Float(0.8),
                "number",
                Some((0.5, 5.0)),
                "Take profit distance in ATRs",
            ),
            p("default_lot_size", DefaultValue::Float(0.01), "number", Some((0.01, 1.0)), "Lot size per trade"),
        ],
        indicators: ["RSI", "EMA", "SMA", "MACD", "ADX", "ATR", "STOCH", "BB", "CCI"].map(String::from).to_vec(),
        entry_rules: vec![
            rule("ml_confidence_70", "ml_confidence >= 0.70", "BUY", "Model confidence of at least 70%"),
            rule("london_ny_session", "hour >= 8 AND hour <= 21", "BUY", "London / New York session (08-21 UTC)"),
            rule(
                "medium_volatility",
                "vol_regime_low == 0 AND vol_regime_high == 0",
                "BUY",
                "Medium volatility regime",
            ),
        ],
        exit_rules: vec![
            rule("hit_stop_loss", "hit_stop_loss", "CLOSE", "Stop loss at 1.2 x ATR"),
            rule("hit_take_profit", "hit_take_profit", "CLOSE", "Take profit at 0.8 x ATR"),
        ],
        risk_management: Some(RiskManagement {
            stop_loss_type: "atr_based".to_string(),
            stop_loss_value: 1.2,
            take_profit_type: "atr_based".to_string(),
            take_profit_value: 0.8,
            trailing_stop: None,
            max_position_size: 0.10,
            risk_per_trade_percent: 2.0,
            max_daily_loss: None,
        }),
    }
}

/// The risk profiles of the AI strategy generator (contract §2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskProfile {
    Conservative,
    Moderate,
    Aggressive,
}

impl RiskProfile {
    /// Parses `conservative` / `moderate` / `aggressive` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "conservative" => Some(RiskProfile::Conservative),
            "moderate" => Some(RiskProfile::Moderate),
            "aggressive" => Some(RiskProfile::Aggressive),
            _ => None,
        }
    }
}

/// The AI strategy generator's documented fallback (contract §2.10): RSI(14) with an EMA 9/21 crossover, risk values
/// by profile (conservative / moderate / aggressive): stop 2.5 / 2.0 / 1.5 × ATR, reward:risk 1.5 / 2.0 / 3.0,
/// trailing from 30 / 20 / 10 pips, breakeven at 20 / 15 / 10 pips, trail distance 15 pips and ATR × 1.5, largest
/// position 0.05 / 0.1 / 0.2 lots, risk 1 / 2 / 3 % per trade. It validates and compiles like any strategy.
pub fn fallback_strategy(profile: RiskProfile, symbol: &str, timeframe: &str) -> StrategySpec {
    let (sl, rr, activation, breakeven, max_lots, risk) = match profile {
        RiskProfile::Conservative => (2.5, 1.5, 30.0, 20.0, 0.05, 1.0),
        RiskProfile::Moderate => (2.0, 2.0, 20.0, 15.0, 0.1, 2.0),
        RiskProfile::Aggressive => (1.5, 3.0, 10.0, 10.0, 0.2, 3.0),
    };
    let p = |name: &str, default: i64, range: (f64, f64), description: &str| StrategyParameter {
        name: name.to_string(),
        param_type: "number".to_string(),
        default_value: DefaultValue::Int(default),
        description: Some(description.to_string()),
        min: Some(range.0),
        max: Some(range.1),
    };
    StrategySpec {
        name: format!("RSI + EMA crossover ({symbol} {timeframe})"),
        description: Some(
            "Trend entries on an EMA 9/21 crossover confirmed by RSI(14), exits on RSI extremes; ATR-based stop, \
             reward:risk target, trailing stop and breakeven."
                .to_string(),
        ),
        strategy_type: "ai_generated".to_string(),
        parameters: vec![
            p("rsi_period", 14, (7.0, 28.0), "RSI period"),
            p("ema_fast", 9, (5.0, 20.0), "Fast EMA period"),
            p("ema_slow", 21, (15.0, 60.0), "Slow EMA period"),
        ],
        indicators: ["RSI", "EMA", "ATR"].map(String::from).to_vec(),
        entry_rules: vec![
            rule(
                "ema_cross_up",
                "CROSSES_ABOVE(EMA(ema_fast), EMA(ema_slow)) AND RSI(rsi_period) < 70",
                "BUY",
                "Fast EMA crosses above the slow EMA, RSI not overbought",
            ),
            rule(
                "ema_cross_down",
                "CROSSES_BELOW(EMA(ema_fast), EMA(ema_slow)) AND RSI(rsi_period) > 30",
                "SELL",
                "Fast EMA crosses below the slow EMA, RSI not oversold",
            ),
        ],
        exit_rules: vec![
            rule("rsi_overbought", "RSI(rsi_period) > 75", "CLOSE_LONG", "Close longs when RSI is overbought"),
            rule("rsi_oversold", "RSI(rsi_period) < 25", "CLOSE_SHORT", "Close shorts when RSI is oversold"),
        ],
        risk_management: Some(RiskManagement {
            stop_loss_type: "atr_based".to_string(),
            stop_loss_value: sl,
            take_profit_type: "risk_reward".to_string(),
            take_profit_value: rr,
            trailing_stop: Some(TrailingStopConfig {
                enabled: true,
                trailing_type: "atr_based".to_string(),
                activation_pips: activation,
                trail_distance_pips: 15.0,
                atr_multiplier: 1.5,
                breakeven_enabled: true,
                breakeven_pips: breakeven,
            }),
            max_position_size: max_lots,
            risk_per_trade_percent: risk,
            max_daily_loss: None,
        }),
    }
}

/// Why a timeframe name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeframeError {
    /// Monthly bars: accepted by the original's data manager, not by this system's candle store.
    #[error("monthly bars ({0}) are not supported; use W1 or shorter")]
    Monthly(String),
    /// Anything else (the original's message).
    #[error("Unsupported timeframe: {0}")]
    Unsupported(String),
}

/// Longest timeframe name considered.
const MAX_TIMEFRAME_CHARS: usize = 16;

/// [`timeframe`] without the reason.
pub fn parse_timeframe(s: &str) -> Option<Timeframe> {
    timeframe(s).ok()
}

/// The timeframe named `s`, case-insensitive, with aliases: `M1`/`1m`/`1min`, `M5`/`5m`, `M15`/`15m`,
/// `M30`/`30m`, `H1`/`1h`/`60m`, `H4`/`4h`/`240m`, `D1`/`1d`/`D`/`daily`/`24h`, `W1`/`1w`/`W`/`weekly`/`7d`
/// (`1m` is one minute, never a month). Monthly names (`MN1`, `MN`, `1mo`, `monthly`) are refused with their own
/// error, as is anything else ("Unsupported timeframe: X", the original's message).
pub fn timeframe(s: &str) -> Result<Timeframe, TimeframeError> {
    let shown: String = s.chars().take(MAX_TIMEFRAME_CHARS).collect();
    if s.chars().count() > MAX_TIMEFRAME_CHARS {
        return Err(TimeframeError::Unsupported(shown));
    }
    let key = s.trim().to_ascii_uppercase();
    Ok(match key.as_str() {
        "M1" | "1M" | "1MIN" | "MIN1" => Timeframe::M1,
        "M5" | "5M" | "5MIN" | "MIN5" => Timeframe::M5,
        "M15" | "15M" | "15MIN" | "MIN15" => Timeframe::M15,
        "M30" | "30M" | "30MIN" | "MIN30" => Timeframe::M30,
        "H1" | "1H" | "60M" | "60MIN" | "1HOUR" => Timeframe::H1,
        "H4" | "4H" | "240M" | "240MIN" | "4HOUR" => Timeframe::H4,
        "D1" | "1D" | "D" | "DAILY" | "24H" | "1DAY" => Timeframe::D1,
        "W1" | "1W" | "W" | "WEEKLY" | "7D" | "1WEEK" => Timeframe::W1,
        "MN1" | "MN" | "1MN" | "1MO" | "1MON" | "MONTHLY" | "1MONTH" => return Err(TimeframeError::Monthly(shown)),
        _ => return Err(TimeframeError::Unsupported(shown)),
    })
}
