use nusatrade_domain::trailing::{TrailingStopSettings, TrailingType};
use nusatrade_ml::candles::Timeframe;
use nusatrade_ml::indicators as ta;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::engine::{Sizing, StopRule, TargetRule};
use crate::rules::tests::bars;

fn rule(id: &str, condition: &str, action: &str) -> StrategyRule {
    StrategyRule {
        id: id.to_string(),
        condition: condition.to_string(),
        action: action.to_string(),
        description: String::new(),
    }
}

fn num_param(name: &str, default: DefaultValue, min: Option<f64>, max: Option<f64>) -> StrategyParameter {
    StrategyParameter {
        name: name.to_string(),
        param_type: "number".to_string(),
        default_value: default,
        description: None,
        min,
        max,
    }
}

fn spec(entry: Vec<StrategyRule>, exit: Vec<StrategyRule>, params: Vec<StrategyParameter>) -> StrategySpec {
    StrategySpec {
        name: "Test".to_string(),
        description: None,
        strategy_type: "custom".to_string(),
        parameters: params,
        indicators: vec![],
        entry_rules: entry,
        exit_rules: exit,
        risk_management: Some(RiskManagement::default()),
    }
}

fn messages(s: &StrategySpec) -> Vec<String> {
    s.validate().into_iter().map(|p| p.message).collect()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- wire shapes

#[test]
fn wire_types_read_the_contract_shapes() {
    let p: StrategyParameter = serde_json::from_value(json!({"name": "n", "default_value": 14})).unwrap();
    assert_eq!(p.param_type, "number");
    assert_eq!(p.default_value, DefaultValue::Int(14));
    assert_eq!((p.description, p.min, p.max), (None, None, None));
    let p: StrategyParameter = serde_json::from_value(
        json!({"name": "n", "type": "number", "default_value": 0.7, "min": 0.5, "max": 0.95, "extra": 1}),
    )
    .unwrap();
    assert_eq!(p.default_value, DefaultValue::Float(0.7));
    for (v, want) in [(json!(true), DefaultValue::Bool(true)), (json!("sma"), DefaultValue::Str("sma".to_string()))] {
        let p: StrategyParameter = serde_json::from_value(json!({"name": "n", "default_value": v})).unwrap();
        assert_eq!(p.default_value, want);
    }
    // default_value is required (null included).
    assert!(serde_json::from_value::<StrategyParameter>(json!({"name": "n"})).is_err());
    assert!(serde_json::from_value::<StrategyParameter>(json!({"name": "n", "default_value": null})).is_err());
    // Rules: every field required.
    assert!(serde_json::from_value::<StrategyRule>(json!({"id": "a", "condition": "x", "action": "BUY"})).is_err());

    let t: TrailingStopConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(
        serde_json::to_value(&t).unwrap(),
        json!({"enabled": false, "trailing_type": "atr_based", "activation_pips": 20.0, "trail_distance_pips": 15.0,
               "atr_multiplier": 1.5, "breakeven_enabled": true, "breakeven_pips": 15.0})
    );
    let r: RiskManagement = serde_json::from_value(json!({"max_holding_hours": 8})).unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"stop_loss_type": "atr_based", "stop_loss_value": 2.0, "take_profit_type": "risk_reward",
               "take_profit_value": 2.0, "trailing_stop": null, "max_position_size": 0.1,
               "risk_per_trade_percent": 2.0, "max_daily_loss": null})
    );
    assert_eq!(
        serde_json::to_value(BacktestMetrics::default()).unwrap(),
        json!({"net_profit": 0.0, "total_trades": 0, "winning_trades": 0, "win_rate": 0.0, "profit_factor": 0.0,
               "max_drawdown_pct": 0.0, "sharpe_ratio": 0.0})
    );

    // A StrategyResponse reads as a spec: extra keys dropped, null lists empty, null type "custom".
    let s: StrategySpec = serde_json::from_value(json!({
        "id": "x", "name": "S", "description": null, "strategy_type": null, "code": null, "parameters": null,
        "indicators": ["RSI"], "entry_rules": [{"id": "a", "condition": "RSI < 30", "action": "BUY", "description": ""}],
        "exit_rules": [], "risk_management": null, "is_active": false, "backtest_results": null,
    }))
    .unwrap();
    assert_eq!(s.strategy_type, "custom");
    assert!(s.parameters.is_empty());
    assert_eq!(s.entry_rules.len(), 1);
    let back: StrategySpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn metrics_from_stats_are_rounded_like_the_original() {
    let stats = crate::stats::Stats {
        net_profit: 1234.5678,
        trades: 12,
        winning_trades: 7,
        win_rate_pct: 58.3333,
        profit_factor: f64::INFINITY,
        max_drawdown_pct: -12.345,
        sharpe_ratio: 1.23456,
        ..Default::default()
    };
    let m = BacktestMetrics::from_stats(&stats);
    assert_eq!(
        m,
        BacktestMetrics {
            net_profit: 1234.57,
            total_trades: 12,
            winning_trades: 7,
            win_rate: 58.3,
            profit_factor: 0.0,
            max_drawdown_pct: 12.3,
            sharpe_ratio: 1.23,
        }
    );
}

// ---------------------------------------------------------------- validation

#[test]
fn the_four_original_messages_verbatim() {
    let s = StrategySpec {
        name: "  ".to_string(),
        description: None,
        strategy_type: "custom".to_string(),
        parameters: vec![],
        indicators: vec![],
        entry_rules: vec![],
        exit_rules: vec![],
        risk_management: None,
    };
    assert_eq!(
        messages(&s),
        [
            "Strategy name is required",
            "At least one entry rule is required",
            "At least one exit rule is required",
            "Risk management configuration is required",
        ]
    );
    let fields: Vec<String> = s.validate().into_iter().map(|p| p.field).collect();
    assert_eq!(fields, ["name", "entry_rules", "exit_rules", "risk_management"]);
    assert!(s.compile().is_err());
}

#[test]
fn validation_returns_every_problem_at_once() {
    let mut s = spec(
        vec![
            rule("r1", "RSX(14) < 30", "BUY"),
            rule("r2", "RSI(14) AND 3", "HOLD"),
            rule("r1", "CLOSE > SMA(period)", "SELL"),
            rule("", "hit_stop_loss", "BUY"),
        ],
        vec![rule("x1", "CLOSE < 1", "EXIT"), rule("x2", "CLOSE < (1", "CLOSE")],
        vec![
            num_param("period", DefaultValue::Float(14.5), Some(1.0), Some(50.0)),
            num_param("PERIOD", DefaultValue::Int(3), None, None),
            num_param("lvl", DefaultValue::Int(80), Some(0.0), Some(70.0)),
            num_param("band", DefaultValue::Int(5), Some(10.0), Some(1.0)),
            num_param("word", DefaultValue::Str("abc".to_string()), None, None),
            num_param("close", DefaultValue::Int(1), None, None),
            num_param("2bad", DefaultValue::Int(1), None, None),
            StrategyParameter { param_type: "color".to_string(), ..num_param("c", DefaultValue::Int(1), None, None) },
        ],
    );
    s.risk_management = Some(RiskManagement { stop_loss_type: "trailing".to_string(), ..RiskManagement::default() });
    assert_eq!(
        messages(&s),
        [
            "duplicate parameter name 'PERIOD'",
            "parameter 'lvl': default 80 is outside [0, 70]",
            "parameter 'band': min 10 is greater than max 1",
            "parameter 'word': default 'abc' is not a number",
            "parameter 'close': the name is reserved by the rule language",
            "parameter '2bad': the name must start with a letter or '_' and hold only letters, digits and '_'",
            "parameter 'c': unknown type 'color' (expected number, integer, boolean or string)",
            "risk management: unknown stop_loss_type 'trailing' (expected atr_based, fixed_pips, percentage or none)",
            "entry rule 'r1': unknown indicator 'RSX' at 1",
            "entry rule 'r2': unknown action 'HOLD' (expected BUY or SELL)",
            "entry rule 'r2': type error at 1: AND needs a condition on each side, found a number",
            "entry rule 'r2': type error at 13: AND needs a condition on each side, found a number",
            "entry rule 'r1': duplicate rule id",
            "entry rule 'r1': argument 1 of SMA is parameter 'period', whose default must be a whole number from 1 to 500, got 14.5",
            "entry rule #4: the id is required",
            "entry rule #4: 'hit_stop_loss' can only be an exit rule",
            "exit rule 'x1': unknown action 'EXIT' (expected CLOSE, CLOSE_LONG, CLOSE_SHORT, BUY or SELL)",
            "exit rule 'x2': expected ')' at 11, found the end of the condition",
        ]
    );
    let p = s.validate();
    assert_eq!(p[8].field, "entry_rules[0].condition");
    assert_eq!(p[9].field, "entry_rules[1].action");
    assert_eq!(p[1].field, "parameters[2].default_value");
    assert_eq!(s.compile().unwrap_err(), p);
}

#[test]
fn limits_on_lists_and_names() {
    let many: Vec<StrategyRule> = (0..21).map(|i| rule(&format!("r{i}"), "CLOSE > 1", "BUY")).collect();
    let params: Vec<StrategyParameter> =
        (0..31).map(|i| num_param(&format!("p{i}"), DefaultValue::Int(1), None, None)).collect();
    let mut s = spec(many.clone(), many, params);
    s.name = "n".repeat(201);
    s.exit_rules.iter_mut().for_each(|r| r.action = "CLOSE".to_string());
    assert_eq!(
        messages(&s),
        [
            "Strategy name is too long (201 characters; the limit is 200)",
            "too many parameters (31; the limit is 30)",
            "too many entry rules (21; the limit is 20)",
            "too many exit rules (21; the limit is 20)",
        ]
    );
    s.name = "n".repeat(200);
    s.entry_rules.truncate(20);
    s.exit_rules.truncate(20);
    s.parameters.truncate(30);
    assert!(s.validate().is_empty());
    s.entry_rules[0].condition = "x".repeat(501);
    assert_eq!(messages(&s), ["entry rule 'r0': the condition is 501 characters long; the limit is 500"]);
}

#[test]
fn parameter_kinds_and_defaults() {
    let mut s = spec(
        vec![rule("r", "RSI(n) < lvl AND flag == 1", "BUY")],
        vec![rule("x", "CLOSE < 0", "CLOSE")],
        vec![
            StrategyParameter {
                param_type: "integer".to_string(),
                ..num_param("n", DefaultValue::Str("14".to_string()), Some(2.0), Some(50.0))
            },
            num_param("lvl", DefaultValue::Float(30.5), None, None),
            StrategyParameter {
                param_type: "boolean".to_string(),
                ..num_param("flag", DefaultValue::Bool(true), None, None)
            },
            StrategyParameter {
                param_type: "string".to_string(),
                ..num_param("note", DefaultValue::Str("hello".to_string()), None, None)
            },
            num_param("numeric_bool", DefaultValue::Bool(false), None, None),
        ],
    );
    let c = s.compile().unwrap();
    let info = c.parameters();
    assert_eq!(info[0].default, 14.0);
    assert!(info[0].integer && info[0].used);
    assert_eq!(info[0].bounds, (1.0, 500.0));
    assert_eq!((info[0].min, info[0].max), (Some(2.0), Some(50.0)));
    assert!(!info[1].integer && info[1].used && info[1].bounds == (f64::NEG_INFINITY, f64::INFINITY));
    assert_eq!(
        (info[2].kind, info[2].default, info[2].integer, info[2].bounds),
        (ParamKind::Boolean, 1.0, true, (0.0, 1.0))
    );
    assert_eq!(info[3].kind, ParamKind::Text);
    assert!(info[3].default.is_nan() && !info[3].used);
    assert_eq!(info[4].default, 0.0);

    s.entry_rules[0].condition = "RSI(n) < lvl AND note == 1".to_string();
    assert_eq!(messages(&s), ["entry rule 'r': parameter 'note' is text and cannot be used in a condition"]);
    s.entry_rules[0].condition = "CLOSE > 0".to_string();
    s.parameters[0].default_value = DefaultValue::Float(2.5);
    s.parameters[2].default_value = DefaultValue::Int(2);
    assert_eq!(
        messages(&s),
        ["parameter 'n': default 2.5 is not a whole number", "parameter 'flag': default 2 is not a boolean (0/1)"]
    );
}

#[test]
fn actions_map_to_sides() {
    let s = spec(
        vec![rule("l", "HOUR == 1", "buy"), rule("s", "HOUR == 2", " SELL ")],
        vec![
            rule("a", "HOUR == 3", "CLOSE"),
            rule("b", "HOUR == 4", "CLOSE_LONG"),
            rule("c", "HOUR == 5", "CLOSE_SHORT"),
            rule("d", "HOUR == 6", "SELL"),
            rule("e", "HOUR == 7", "BUY"),
            rule("f", "hit_take_profit", "CLOSE"),
        ],
        vec![],
    );
    let c = s.compile().unwrap();
    let b = bars(48, 1);
    let sig = c.signals(&b, &ParamValues::new());
    let hours = |v: &[bool]| -> Vec<usize> { (0..24).filter(|&h| v[h]).collect() };
    assert_eq!(hours(&sig.enter_long), [1]);
    assert_eq!(hours(&sig.enter_short), [2]);
    assert_eq!(hours(&sig.exit_long), [3, 4, 6]);
    assert_eq!(hours(&sig.exit_short), [3, 5, 7]);
    assert_eq!(sig.enter_long.len(), 48);
}

#[test]
fn risk_managed_exits_need_the_matching_risk() {
    let mut s = spec(
        vec![rule("r", "CLOSE > 0", "BUY")],
        vec![rule("sl", " HIT_STOP_LOSS ", "CLOSE"), rule("tp", "hit_take_profit", "CLOSE")],
        vec![],
    );
    let c = s.compile().unwrap();
    assert!(c.conditions()[2].is_empty() && c.conditions()[3].is_empty());
    s.risk_management = Some(RiskManagement {
        stop_loss_type: "none".to_string(),
        take_profit_type: "none".to_string(),
        ..RiskManagement::default()
    });
    assert_eq!(
        messages(&s),
        [
            "exit rule 'sl': 'HIT_STOP_LOSS' needs a stop loss in the risk management",
            "exit rule 'tp': 'hit_take_profit' needs a take profit in the risk management",
        ]
    );
}

// ---------------------------------------------------------------- risk management

#[test]
fn risk_management_maps_to_the_engine() {
    let r = RiskManagement::default().to_risk().unwrap();
    assert_eq!(r.stop_loss, StopRule::Atr(2.0));
    assert_eq!(r.take_profit, TargetRule::RiskReward(2.0));
    assert_eq!(r.trailing, None);
    assert_eq!(r.max_lots, Some(dec("0.1")));
    assert_eq!(RiskManagement::default().risk_sizing(), Some(Sizing::RiskPercent(dec("2"))));

    let cases = [
        ("fixed_pips", 50.0, "percentage", 1.5, StopRule::Pips(50.0), TargetRule::Percent(1.5)),
        ("pips", 30.0, "atr_based", 3.0, StopRule::Pips(30.0), TargetRule::Atr(3.0)),
        ("PERCENTAGE", 1.0, "fixed_pips", 100.0, StopRule::Percent(1.0), TargetRule::Pips(100.0)),
        ("none", 0.0, "none", 0.0, StopRule::None, TargetRule::None),
        ("atr", 1.2, "rr", 3.0, StopRule::Atr(1.2), TargetRule::RiskReward(3.0)),
    ];
    for (st, sv, tt, tv, stop, target) in cases {
        let rm = RiskManagement {
            stop_loss_type: st.to_string(),
            stop_loss_value: sv,
            take_profit_type: tt.to_string(),
            take_profit_value: tv,
            ..RiskManagement::default()
        };
        let r = rm.to_risk().unwrap();
        assert_eq!((r.stop_loss, r.take_profit), (stop, target), "{st}/{tt}");
    }

    let trailing = TrailingStopConfig {
        enabled: true,
        trailing_type: "fixed_pips".to_string(),
        activation_pips: 10.0,
        trail_distance_pips: 12.5,
        atr_multiplier: 2.0,
        breakeven_enabled: false,
        breakeven_pips: 8.0,
    };
    let rm =
        RiskManagement { trailing_stop: Some(trailing.clone()), max_position_size: 0.25, ..RiskManagement::default() };
    let r = rm.to_risk().unwrap();
    assert_eq!(
        r.trailing,
        Some(TrailingStopSettings {
            enabled: true,
            trailing_type: TrailingType::FixedPips,
            activation_pips: dec("10"),
            trail_distance_pips: dec("12.5"),
            atr_multiplier: dec("2"),
            percentage: dec("0.5"),
            breakeven_enabled: false,
            breakeven_pips: dec("8"),
            lock_profit_pips: dec("2"),
        })
    );
    assert_eq!(r.max_lots, Some(dec("0.25")));
    // A present but disabled block (the wire default) turns off trailing and breakeven.
    let off = RiskManagement { trailing_stop: Some(TrailingStopConfig::default()), ..RiskManagement::default() };
    assert_eq!(off.to_risk().unwrap().trailing, None);

    let bad = RiskManagement {
        stop_loss_type: "none".to_string(),
        take_profit_type: "risk_reward".to_string(),
        take_profit_value: -1.0,
        trailing_stop: Some(TrailingStopConfig {
            trailing_type: "chandelier".to_string(),
            activation_pips: -5.0,
            ..trailing
        }),
        max_position_size: 0.0,
        risk_per_trade_percent: 150.0,
        max_daily_loss: Some(-3.0),
        ..RiskManagement::default()
    };
    let msgs: Vec<String> = bad.to_risk().unwrap_err().into_iter().map(|p| p.message).collect();
    assert_eq!(
        msgs,
        [
            "risk management: take_profit_value must be a number above 0 and at most 100, got -1",
            "risk management: unknown trailing_type 'chandelier' (expected atr_based, fixed_pips or percentage)",
            "risk management: trailing_stop.activation_pips must be a number from 0 to 100000, got -5",
            "risk management: max_position_size must be above 0 and at most 1000 lots, got 0",
            "risk management: risk_per_trade_percent must be above 0 and at most 100, got 150",
            "risk management: max_daily_loss must be a number of at least 0, got -3",
        ]
    );
    assert_eq!(bad.risk_sizing(), None);
    let rr_without_stop = RiskManagement { stop_loss_type: "none".to_string(), ..RiskManagement::default() };
    assert_eq!(
        rr_without_stop.to_risk().unwrap_err()[0].message,
        "risk management: take_profit_type 'risk_reward' needs a stop loss"
    );
    let unknown_tp = RiskManagement { take_profit_type: "moon".to_string(), ..RiskManagement::default() };
    assert!(unknown_tp.to_risk().unwrap_err()[0].message.contains("unknown take_profit_type 'moon'"));
}

// ---------------------------------------------------------------- compiled strategies

fn ma_spec() -> StrategySpec {
    legacy_strategy("ma_crossover", &serde_json::Value::Null).unwrap()
}

#[test]
fn signals_match_a_hand_computed_crossover() {
    let c = ma_spec().compile().unwrap();
    let b = bars(400, 21);
    let mut params = ParamValues::new();
    params.insert("fast_period".to_string(), 5.0);
    params.insert("SLOW_PERIOD".to_string(), 13.0);
    let sig = c.signals(&b, &params);
    let fast = ta::sma(&b.close, 5);
    let slow = ta::sma(&b.close, 13);
    for i in 0..b.close.len() {
        let up = i > 0 && fast[i - 1] < slow[i - 1] && fast[i] > slow[i];
        let down = i > 0 && fast[i - 1] > slow[i - 1] && fast[i] < slow[i];
        assert_eq!((sig.enter_long[i], sig.enter_short[i]), (up, down), "bar {i}");
    }
    assert!(sig.exit_long.iter().chain(&sig.exit_short).all(|x| !x));
    assert!(sig.enter_long.iter().any(|x| *x));
    // Defaults (10/20) when nothing is given.
    let d = c.signals(&b, &ParamValues::new());
    let mut ten_twenty = ParamValues::new();
    ten_twenty.insert("fast_period".to_string(), 10.0);
    ten_twenty.insert("slow_period".to_string(), 20.0);
    assert_eq!(d, c.signals(&b, &ten_twenty));
}

#[test]
fn check_params_refuses_bad_values_without_panicking() {
    let c = ma_spec().compile().unwrap();
    let b = bars(50, 2);
    let p = |name: &str, v: f64| ParamValues::from([(name.to_string(), v)]);
    assert_eq!(c.check_params(&p("fast_period", 7.0)).unwrap(), vec![7.0, 20.0]);
    assert_eq!(c.check_params(&p("nope", 1.0)).unwrap_err().to_string(), "unknown parameter 'nope'");
    assert_eq!(
        c.check_params(&p("fast_period", 0.0)).unwrap_err().to_string(),
        "parameter 'fast_period' = 0: argument 1 of SMA must be a whole number from 1 to 500, got 0"
    );
    assert!(c.check_params(&p("fast_period", 9.5)).is_err());
    assert!(c.check_params(&p("fast_period", 501.0)).is_err());
    assert_eq!(
        c.check_params(&p("fast_period", f64::INFINITY)).unwrap_err().to_string(),
        "parameter 'fast_period' = inf: not a finite number"
    );
    // The infallible form decides nothing on bad parameters.
    assert_eq!(c.signals(&b, &p("fast_period", 0.0)), Signals::none(50));
    // Declared min/max are the optimizer's range, not a hard limit.
    assert!(c.check_params(&p("slow_period", 450.0)).is_ok());
}

#[test]
fn the_evaluator_reuses_indicators_across_parameter_sets() {
    let c = ma_spec().compile().unwrap();
    let b = bars(1_000, 3);
    let ext = ExternalSeries::new();
    let mut ev = c.evaluator(&b, &ext).unwrap();
    let mut out = Signals::default();
    for fast in 2..12 {
        for slow in [20.0, 30.0, 40.0] {
            let params =
                ParamValues::from([("fast_period".to_string(), f64::from(fast)), ("slow_period".to_string(), slow)]);
            let fresh = c.signals(&b, &params);
            assert_eq!(ev.signals(&params).unwrap(), fresh);
            let values = c.check_params(&params).unwrap();
            ev.signals_into(&values, &mut out).unwrap();
            assert_eq!(out, fresh);
        }
    }
    // 10 fast + 3 slow SMAs, each computed once.
    assert_eq!(ev.cached_series(), 13);
}

#[test]
fn the_ml_template_is_exact_and_compiles() {
    let t = ml_profitable_template();
    assert_eq!(t.name, "ML Profitable Strategy (XGBoost)");
    assert_eq!(
        t.description.as_deref(),
        Some("Profitable ML strategy using XGBoost with session + volatility filters")
    );
    assert_eq!(t.strategy_type, "ai_generated");
    assert_eq!(t.indicators, ["RSI", "EMA", "SMA", "MACD", "ADX", "ATR", "STOCH", "BB", "CCI"]);
    let params: Vec<(&str, &DefaultValue, Option<f64>, Option<f64>)> =
        t.parameters.iter().map(|p| (p.name.as_str(), &p.default_value, p.min, p.max)).collect();
    assert_eq!(
        params,
        [
            ("confidence_threshold", &DefaultValue::Float(0.70), Some(0.50), Some(0.95)),
            ("use_session_filter", &DefaultValue::Bool(true), None, None),
            ("use_volatility_filter", &DefaultValue::Bool(true), None, None),
            ("stop_loss_atr_multiplier", &DefaultValue::Float(1.2), Some(0.5), Some(3.0)),
            ("take_profit_atr_multiplier", &DefaultValue::Float(0.8), Some(0.5), Some(5.0)),
            ("default_lot_size", &DefaultValue::Float(0.01), Some(0.01), Some(1.0)),
        ]
    );
    let entries: Vec<(&str, &str, &str)> =
        t.entry_rules.iter().map(|r| (r.id.as_str(), r.condition.as_str(), r.action.as_str())).collect();
    assert_eq!(
        entries,
        [
            ("ml_confidence_70", "ml_confidence >= 0.70", "BUY"),
            ("london_ny_session", "hour >= 8 AND hour <= 21", "BUY"),
            ("medium_volatility", "vol_regime_low == 0 AND vol_regime_high == 0", "BUY"),
        ]
    );
    let exits: Vec<(&str, &str)> = t.exit_rules.iter().map(|r| (r.id.as_str(), r.action.as_str())).collect();
    assert_eq!(exits, [("hit_stop_loss", "CLOSE"), ("hit_take_profit", "CLOSE")]);
    let rm = t.risk_management.clone().unwrap();
    assert_eq!((rm.stop_loss_type.as_str(), rm.stop_loss_value), ("atr_based", 1.2));
    assert_eq!((rm.take_profit_type.as_str(), rm.take_profit_value), ("atr_based", 0.8));
    assert_eq!((rm.max_position_size, rm.risk_per_trade_percent), (0.10, 2.0));
    assert!(t.validate().is_empty(), "{:?}", t.validate());

    let c = t.compile().unwrap();
    assert_eq!(c.external_inputs(), [External::MlConfidence, External::VolRegimeLow, External::VolRegimeHigh]);
    assert_eq!(c.risk().stop_loss, StopRule::Atr(1.2));
    assert_eq!(c.risk().take_profit, TargetRule::Atr(0.8));
    assert_eq!(c.risk().max_lots, Some(dec("0.1")));
    assert_eq!(c.risk_per_trade_percent(), dec("2"));

    let b = bars(72, 4);
    let conf: Vec<f64> = (0..72).map(|i| (i % 10) as f64 / 10.0).collect();
    let low: Vec<f64> = (0..72).map(|i| f64::from(u8::from(i % 3 == 0))).collect();
    let high: Vec<f64> = (0..72).map(|i| f64::from(u8::from(i % 5 == 0))).collect();
    let ext = ExternalSeries::from([
        ("ml_confidence".to_string(), conf.clone()),
        ("vol_regime_low".to_string(), low.clone()),
        ("vol_regime_high".to_string(), high.clone()),
    ]);
    let any = c.signals_with(&b, &ext, &ParamValues::new()).unwrap();
    let all_c = c.clone().with_entry_logic(RuleLogic::All);
    let all = all_c.signals_with(&b, &ext, &ParamValues::new()).unwrap();
    for i in 0..72 {
        let hour = i % 24;
        let rules = [conf[i] >= 0.7, (8..=21).contains(&hour), low[i] == 0.0 && high[i] == 0.0];
        assert_eq!(any.enter_long[i], rules.iter().any(|x| *x), "bar {i}");
        assert_eq!(all.enter_long[i], rules.iter().all(|x| *x), "bar {i}");
    }
    assert!(any.enter_short.iter().chain(&any.exit_long).all(|x| !x));
    // Without its external series it refuses (or, infallibly, decides nothing).
    let missing = c.evaluator(&b, &ExternalSeries::new()).unwrap_err();
    assert_eq!(missing.to_string(), "the rules need the external series 'ml_confidence', which was not supplied");
    assert_eq!(c.signals(&b, &ParamValues::new()), Signals::none(72));
}

// ---------------------------------------------------------------- legacy

#[test]
fn legacy_types_map_to_rule_strategies() {
    let ma = ma_spec();
    assert_eq!(ma.strategy_type, "ma_crossover");
    assert_eq!(ma.entry_rules[0].condition, "CROSSES_ABOVE(SMA(fast_period), SMA(slow_period))");
    assert_eq!(ma.entry_rules[1].condition, "CROSSES_BELOW(SMA(fast_period), SMA(slow_period))");
    assert_eq!(ma.parameters[0].default_value, DefaultValue::Int(10));
    assert_eq!(ma.parameters[1].default_value, DefaultValue::Int(20));
    let r = ma.compile().unwrap().risk();
    assert_eq!(
        (r.stop_loss, r.take_profit, r.max_lots),
        (StopRule::Pips(50.0), TargetRule::Pips(100.0), Some(dec("0.1")))
    );

    let cfg = json!({"fast_period": 5, "slow_period": 30, "ma_type": "EMA", "lot_size": 0.5, "stop_loss_pips": 20, "take_profit_pips": 60});
    let ema = legacy_strategy("MA_Crossover", &cfg).unwrap();
    assert_eq!(ema.entry_rules[0].condition, "CROSSES_ABOVE(EMA(fast_period), EMA(slow_period))");
    assert_eq!(ema.indicators, ["EMA"]);
    assert_eq!(ema.parameters[0].default_value, DefaultValue::Int(5));
    let r = ema.compile().unwrap().risk();
    assert_eq!(
        (r.stop_loss, r.take_profit, r.max_lots),
        (StopRule::Pips(20.0), TargetRule::Pips(60.0), Some(dec("0.5")))
    );

    let rsi = legacy_strategy("rsi", &json!({"period": 7, "oversold": 25})).unwrap();
    let names: Vec<(&str, &DefaultValue)> =
        rsi.parameters.iter().map(|p| (p.name.as_str(), &p.default_value)).collect();
    assert_eq!(
        names,
        [
            ("rsi_period", &DefaultValue::Int(7)),
            ("oversold", &DefaultValue::Int(25)),
            ("overbought", &DefaultValue::Int(70))
        ]
    );
    assert_eq!(rsi.entry_rules[0].condition, "RSI(rsi_period) < oversold");
    assert_eq!(rsi.entry_rules[1].condition, "RSI(rsi_period) > overbought");
    let b = bars(200, 8);
    let sig = rsi.compile().unwrap().signals(&b, &ParamValues::new());
    let values = ta::rsi(&b.close, 7);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(sig.enter_long[i], *v < 25.0);
        assert_eq!(sig.enter_short[i], *v > 70.0);
    }

    let macd = legacy_strategy("macd", &json!({"fast": 8, "slow": 17, "signal": 9})).unwrap();
    assert_eq!(
        macd.entry_rules[0].condition,
        "CROSSES_ABOVE(MACD(fast_period, slow_period, signal_period), MACD_SIGNAL(fast_period, slow_period, signal_period))"
    );
    let c = macd.compile().unwrap();
    assert_eq!(c.default_values(), [8.0, 17.0, 9.0]);
    let sig = c.signals(&b, &ParamValues::new());
    let m = ta::macd(&b.close, 8, 17, 9);
    for i in 1..200 {
        let up = m.line[i - 1] < m.signal[i - 1] && m.line[i] > m.signal[i];
        assert_eq!(sig.enter_long[i], up, "bar {i}");
    }

    let custom = legacy_strategy(
        "custom",
        &json!({"entry_rules": [{"id": "a", "condition": "CLOSE > OPEN", "action": "BUY", "description": ""}],
                "exit_rules": [{"id": "b", "condition": "CLOSE < OPEN", "action": "CLOSE", "description": ""}],
                "risk_management": {}}),
    )
    .unwrap();
    assert_eq!((custom.name.as_str(), custom.strategy_type.as_str()), ("Custom", "custom"));
    assert!(custom.compile().is_ok());
    // custom without rules: the MA crossover, as the original ran it.
    let fallback = legacy_strategy("custom", &json!({"fast_period": 3})).unwrap();
    assert_eq!(fallback.entry_rules, legacy_strategy("ma_crossover", &json!({"fast_period": 3})).unwrap().entry_rules);
}

#[test]
fn legacy_errors_are_reported_together() {
    let e = legacy_strategy("rsi", &json!({"rsi_period": "x", "foo": 1, "oversold": 150})).unwrap_err();
    assert_eq!(e.field, "config");
    assert_eq!(
        e.message,
        "setting 'rsi_period' must be a number, got \"x\"; unknown setting 'foo' for strategy type 'rsi'; \
         parameter 'oversold': default 150 is outside [0, 100]"
    );
    let e = legacy_strategy("ma_crossover", &json!({"fast_period": 0, "ma_type": "wma"})).unwrap_err();
    assert_eq!(
        e.message,
        "setting 'ma_type' must be 'sma' or 'ema', got 'wma'; parameter 'fast_period': default 0 is outside [1, 500]; \
         entry rule 'ma_cross_up': argument 1 of SMA is parameter 'fast_period', whose default must be a whole number from 1 to 500, got 0; \
         entry rule 'ma_cross_down': argument 1 of SMA is parameter 'fast_period', whose default must be a whole number from 1 to 500, got 0"
    );
    assert_eq!(
        legacy_strategy("bollinger", &json!({})).unwrap_err().message,
        "unknown strategy type 'bollinger' (expected ma_crossover, rsi, macd or custom)"
    );
    assert_eq!(
        legacy_strategy("rsi", &json!([1])).unwrap_err().message,
        "the strategy config must be an object, got [1]"
    );
    let bad_custom = legacy_strategy("custom", &json!({"entry_rules": 5})).unwrap_err();
    assert!(bad_custom.message.starts_with("the custom strategy's rules cannot be read"), "{}", bad_custom.message);
    let invalid_custom = legacy_strategy("custom", &json!({"entry_rules": []})).unwrap_err();
    assert!(invalid_custom.message.contains("At least one entry rule is required"));
    let e = legacy_strategy("macd", &json!({"stop_loss_pips": -1})).unwrap_err();
    assert_eq!(e.message, "risk management: stop_loss_value must be a number above 0 and at most 100000, got -1");
}

#[test]
fn timeframes_with_aliases() {
    let cases = [
        (&["M1", "1m", "1min", "m1"][..], Timeframe::M1),
        (&["M5", "5m"][..], Timeframe::M5),
        (&["M15", "15m", "m15", "15MIN"][..], Timeframe::M15),
        (&["M30", "30m"][..], Timeframe::M30),
        (&["H1", "h1", "1h", "60m", " H1 "][..], Timeframe::H1),
        (&["H4", "4h", "240m"][..], Timeframe::H4),
        (&["D1", "1d", "d", "daily", "24h"][..], Timeframe::D1),
        (&["W1", "1w", "w", "weekly", "7d"][..], Timeframe::W1),
    ];
    for (names, tf) in cases {
        for name in names {
            assert_eq!(parse_timeframe(name), Some(tf), "{name}");
        }
    }
    for monthly in ["MN1", "mn", "1mo", "Monthly"] {
        assert_eq!(parse_timeframe(monthly), None);
        assert!(matches!(timeframe(monthly), Err(TimeframeError::Monthly(_))), "{monthly}");
    }
    assert_eq!(timeframe("H2").unwrap_err().to_string(), "Unsupported timeframe: H2");
    assert_eq!(timeframe("MN1").unwrap_err().to_string(), "monthly bars (MN1) are not supported; use W1 or shorter");
    assert_eq!(parse_timeframe(""), None);
    assert!(matches!(timeframe(&"H".repeat(1_000)), Err(TimeframeError::Unsupported(s)) if s.len() == 16));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn strategy_signals_at_a_bar_ignore_later_bars(seed in any::<u64>(), other in any::<u64>(), cut in 10usize..140) {
        let s = spec(
            vec![
                rule("l", "CROSSES_ABOVE(EMA(f), SMA(s)) AND RSI(5) < 70", "BUY"),
                rule("s", "CROSSES_BELOW(EMA(f), SMA(s)) OR CLOSE < LOWEST(LOW, 10)[1]", "SELL"),
            ],
            vec![rule("x", "ADX(5) > 40 OR STOCH_K(5) > 95", "CLOSE"), rule("y", "BB_LOWER(10, 2) > CLOSE", "BUY")],
            vec![num_param("f", DefaultValue::Int(4), None, None), num_param("s", DefaultValue::Int(9), None, None)],
        );
        let c = s.compile().unwrap();
        let a = bars(150, seed);
        let mut b = bars(150, other);
        b.time[..=cut].copy_from_slice(&a.time[..=cut]);
        b.open[..=cut].copy_from_slice(&a.open[..=cut]);
        b.high[..=cut].copy_from_slice(&a.high[..=cut]);
        b.low[..=cut].copy_from_slice(&a.low[..=cut]);
        b.close[..=cut].copy_from_slice(&a.close[..=cut]);
        b.volume[..=cut].copy_from_slice(&a.volume[..=cut]);
        let x = c.signals(&a, &ParamValues::new());
        let y = c.signals(&b, &ParamValues::new());
        prop_assert_eq!(&x.enter_long[..=cut], &y.enter_long[..=cut]);
        prop_assert_eq!(&x.enter_short[..=cut], &y.enter_short[..=cut]);
        prop_assert_eq!(&x.exit_long[..=cut], &y.exit_long[..=cut]);
        prop_assert_eq!(&x.exit_short[..=cut], &y.exit_short[..=cut]);
    }

    #[test]
    fn arbitrary_specs_never_panic(
        name in ".{0,30}",
        conds in proptest::collection::vec("[A-Za-z_()0-9<>=!&|,. +*/-]{0,40}", 1..4),
        actions in proptest::collection::vec(proptest::sample::select(vec!["BUY", "SELL", "CLOSE", "x", ""]), 1..4),
        default in -1000.0f64..1000.0,
    ) {
        let rules: Vec<StrategyRule> =
            conds.iter().zip(actions.iter().cycle()).enumerate().map(|(i, (c, a))| rule(&format!("r{i}"), c, a)).collect();
        let mut s = spec(rules.clone(), rules, vec![num_param("p", DefaultValue::Float(default), None, None)]);
        s.name = name;
        let problems = s.validate();
        if let Ok(c) = s.compile() {
            prop_assert!(problems.is_empty());
            let b = bars(30, 1);
            let _ = c.signals(&b, &ParamValues::from([("p".to_string(), default)]));
        } else {
            prop_assert!(!problems.is_empty());
        }
    }
}

#[test]
fn the_fallback_strategy_compiles_for_every_profile_with_the_documented_values() {
    use super::{RiskProfile, fallback_strategy};
    for (profile, sl, rr, activation, max_lots) in [
        (RiskProfile::Conservative, 2.5, 1.5, 30.0, 0.05),
        (RiskProfile::Moderate, 2.0, 2.0, 20.0, 0.1),
        (RiskProfile::Aggressive, 1.5, 3.0, 10.0, 0.2),
    ] {
        let s = fallback_strategy(profile, "EURUSD", "H1");
        assert!(s.validate().is_empty(), "{profile:?}: {:?}", s.validate());
        s.compile().expect("compiles");
        let rm = s.risk_management.as_ref().unwrap();
        assert_eq!((rm.stop_loss_value, rm.take_profit_value, rm.max_position_size), (sl, rr, max_lots));
        assert_eq!(rm.trailing_stop.as_ref().unwrap().activation_pips, activation);
    }
    assert_eq!(RiskProfile::parse(" Aggressive"), Some(RiskProfile::Aggressive));
    assert_eq!(RiskProfile::parse("yolo"), None);
}
