use serde_json::{Value, json};

use super::*;

fn body(v: Value) -> Map<String, Value> {
    v.as_object().expect("object").clone()
}

fn size(v: Value) -> ApiResult<Value> {
    let input = PositionSizeIn::parse(&body(v))?;
    position_size(&input).map(|o| serde_json::to_value(o).unwrap())
}

fn sltp(v: Value) -> ApiResult<Value> {
    let input = SlTpIn::parse(&body(v))?;
    sl_tp(&input).map(|o| serde_json::to_value(o).unwrap())
}

/// The 422 list of an error: `(type, loc field)` pairs.
fn fields(e: ApiError) -> Vec<(String, String)> {
    match e {
        ApiError::Unprocessable(list) => list
            .into_iter()
            .map(|f| (f.kind, f.loc.iter().map(|l| l.as_str().unwrap().to_owned()).collect::<Vec<_>>().join(".")))
            .collect(),
        other => panic!("expected 422, got {other:?}"),
    }
}

fn eurusd() -> Value {
    json!({"symbol": "EURUSD", "account_balance": 10000, "risk_percent": 1, "entry_price": 1.085, "stop_loss": 1.08})
}

#[test]
fn eurusd_usd_account_numbers_in_and_out() {
    let out = size(eurusd()).unwrap();
    assert_eq!(
        out,
        json!({
            "lot_size": 0.2, "risk_amount": 100.0, "stop_loss_pips": 50.0, "margin_required": 217.0,
            "symbol": "EURUSD", "account_currency": "USD", "leverage": 100.0,
            "pip_value": 2.0, "pip_value_per_lot": 10.0, "risk_at_size": 100.0, "capped": false
        })
    );
    for k in ["lot_size", "risk_amount", "stop_loss_pips", "margin_required", "pip_value"] {
        assert!(out[k].is_number(), "{k} must be a JSON number: {out}");
    }
}

#[test]
fn numeric_strings_are_accepted_like_pydantic_lax_mode() {
    let out = size(json!({"symbol": "eurusd.m", "account_balance": "10000", "risk_percent": "1",
        "entry_price": " 1.0850", "stop_loss": "1.0800"}))
    .unwrap();
    assert_eq!((out["lot_size"].as_f64(), out["symbol"].as_str()), (Some(0.2), Some("EURUSD")));
}

#[test]
fn usdjpy_and_xauusd_use_their_own_specs() {
    let jpy = size(json!({"symbol": "USDJPY", "account_balance": 10000, "risk_percent": 1,
        "entry_price": 150.0, "stop_loss": 149.5}))
    .unwrap();
    assert_eq!(jpy["lot_size"], 0.3);
    assert_eq!(jpy["stop_loss_pips"], 50.0);
    assert_eq!(jpy["pip_value_per_lot"], 6.6667);
    assert_eq!(jpy["margin_required"], 300.0, "USD margin currency = account: 0.3 × 100 000 / 100");

    let xau = size(json!({"symbol": "XAUUSD", "account_balance": 10000, "risk_percent": 1,
        "entry_price": 2000, "stop_loss": 1990, "leverage": 200}))
    .unwrap();
    assert_eq!(xau["lot_size"], 0.1);
    assert_eq!(xau["stop_loss_pips"], 1000.0);
    assert_eq!(xau["pip_value_per_lot"], 1.0);
    assert_eq!(xau["margin_required"], 100.0, "0.1 × 100 oz × 2000 / 200");
    assert_eq!(xau["leverage"], 200.0);
}

#[test]
fn conversion_rate_for_crosses_and_margin_in_base_currency() {
    // EURJPY on a USD account: quote JPY → USD needs the rate; margin (EUR) is derived as entry × rate.
    let mut b = json!({"symbol": "EURJPY", "account_balance": 10000, "risk_percent": 1,
        "entry_price": 160.0, "stop_loss": 159.5});
    let e = size(b.clone()).unwrap_err();
    assert_eq!(fields(e), vec![("value_error".to_owned(), "body.conversion_rate".to_owned())]);
    b["conversion_rate"] = json!(0.00625); // 1 JPY = 1/160 USD
    let out = size(b).unwrap();
    // loss per lot = 0.5 × 100 000 JPY = 312.5 USD → 0.32 lots (rounded down)
    assert_eq!(out["lot_size"], 0.32);
    assert_eq!(out["margin_required"], 320.0, "0.32 × 100 000 EUR / 100 × (160 × 0.00625 = 1 USD/EUR)");
    // EUR account on EURUSD: the rate is derived from the entry price, the margin needs none.
    let eur = size(json!({"symbol": "EURUSD", "account_balance": 10000, "risk_percent": 1,
        "entry_price": 1.25, "stop_loss": 1.245, "account_currency": "eur"}))
    .unwrap();
    assert_eq!(eur["account_currency"], "EUR");
    assert_eq!(eur["lot_size"], 0.25, "500 USD per lot = 400 EUR → 100 / 400");
    assert_eq!(eur["margin_required"], 250.0);
}

#[test]
fn capped_at_the_maximum_volume() {
    let out = size(json!({"symbol": "EURUSD", "account_balance": 1000000, "risk_percent": 10,
        "entry_price": 1.085, "stop_loss": 1.0849}))
    .unwrap();
    assert_eq!((out["lot_size"].as_f64(), out["capped"].as_bool()), (Some(10.0), Some(true)));
}

#[test]
fn entry_equal_to_stop_loss_is_a_422_not_a_500() {
    let mut b = eurusd();
    b["stop_loss"] = json!(1.085);
    let e = size(b).unwrap_err();
    assert_eq!(e.status(), 422);
    assert_eq!(fields(e), vec![("value_error".to_owned(), "body.stop_loss".to_owned())]);
}

#[test]
fn budget_below_the_minimum_volume_is_a_422() {
    let e = size(json!({"symbol": "EURUSD", "account_balance": 10, "risk_percent": 0.1,
        "entry_price": 1.085, "stop_loss": 1.0}))
    .unwrap_err();
    match e {
        ApiError::Unprocessable(list) => assert!(list[0].msg.contains("minimum volume of 0.01 lots"), "{list:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_field_is_validated_and_all_errors_are_reported() {
    let e = size(json!({})).unwrap_err();
    assert_eq!(
        fields(e),
        ["symbol", "account_balance", "risk_percent", "entry_price", "stop_loss"]
            .map(|f| ("missing".to_owned(), format!("body.{f}")))
            .to_vec()
    );
    let cases: &[(&str, Value, &str)] = &[
        ("account_balance", json!(-1), "greater_than"),
        ("account_balance", json!(0), "greater_than"),
        ("account_balance", json!(1e13), "less_than_equal"),
        ("account_balance", json!(1e300), "less_than_equal"),
        ("account_balance", json!("NaN"), "finite_number"),
        ("account_balance", json!("Infinity"), "finite_number"),
        ("account_balance", json!("ten"), "float_parsing"),
        ("account_balance", json!(true), "float_type"),
        ("account_balance", json!(null), "float_type"),
        ("account_balance", json!([1]), "float_type"),
        ("risk_percent", json!(10.5), "less_than_equal"),
        ("risk_percent", json!(0), "greater_than"),
        ("entry_price", json!(1e-20), "value_error"),
        ("entry_price", json!(2e7), "less_than_equal"),
        ("stop_loss", json!(-1.08), "greater_than"),
        ("conversion_rate", json!(0), "greater_than"),
        ("conversion_rate", json!(1e7), "less_than_equal"),
        ("leverage", json!(0.5), "greater_than_equal"),
        ("leverage", json!(10000), "less_than_equal"),
        ("account_currency", json!("US"), "value_error"),
        ("account_currency", json!(840), "string_type"),
        ("symbol", json!(42), "string_type"),
        ("symbol", json!("X".repeat(100)), "string_too_long"),
    ];
    for (field, value, kind) in cases {
        let mut b = eurusd();
        b[*field] = value.clone();
        let e = size(b).unwrap_err();
        assert_eq!(fields(e), vec![(kind.to_string(), format!("body.{field}"))], "{field} = {value}");
    }
    // Optional fields may be null.
    let mut b = eurusd();
    b["conversion_rate"] = Value::Null;
    b["leverage"] = Value::Null;
    b["account_currency"] = Value::Null;
    assert_eq!(size(b).unwrap()["leverage"], 100.0);
}

#[test]
fn unknown_or_malformed_symbols_are_400_with_a_message() {
    for (sym, msg) in [("ABCXYZ", "Symbol ABCXYZ is not supported"), ("$$$", "Invalid symbol format")] {
        let mut b = eurusd();
        b["symbol"] = json!(sym);
        match size(b).unwrap_err() {
            ApiError::BadRequest(m) => assert!(m.contains(msg), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn sl_tp_defaults_match_the_original_fallbacks_with_instrument_pips() {
    // atr_based without an ATR: 50 pips SL, risk_reward 2 → 100 pips TP.
    let out = sltp(json!({"symbol": "EURUSD", "direction": "BUY", "entry_price": 1.085})).unwrap();
    assert_eq!(
        out,
        json!({"stop_loss": 1.08, "take_profit": 1.095, "sl_distance_pips": 50.0, "tp_distance_pips": 100.0,
               "risk_reward_ratio": 2.0, "symbol": "EURUSD"})
    );
    let jpy = sltp(json!({"symbol": "USDJPY", "direction": "SELL", "entry_price": 150.0, "sl_type": "fixed_pips",
        "sl_value": 30, "tp_type": "fixed_pips", "tp_value": 45}))
    .unwrap();
    assert_eq!((jpy["stop_loss"].as_f64(), jpy["take_profit"].as_f64()), (Some(150.3), Some(149.55)));
    assert_eq!(jpy["risk_reward_ratio"], 1.5);
    let atr =
        sltp(json!({"symbol": "XAUUSD", "direction": "BUY", "entry_price": 2000, "atr": 15, "sl_value": 1.5})).unwrap();
    assert_eq!((atr["stop_loss"].as_f64(), atr["take_profit"].as_f64()), (Some(1977.5), Some(2045.0)));
}

#[test]
fn sl_tp_validation() {
    let base = json!({"symbol": "EURUSD", "direction": "BUY", "entry_price": 1.085});
    let cases: &[(&str, Value, &str)] = &[
        ("direction", json!("buy"), "string_pattern_mismatch"),
        ("direction", json!("HOLD"), "string_pattern_mismatch"),
        ("sl_type", json!("magic"), "string_pattern_mismatch"),
        ("tp_type", json!("percentage"), "string_pattern_mismatch"),
        ("sl_value", json!(-1), "greater_than_equal"),
        ("tp_value", json!(1e9), "less_than_equal"),
        ("atr", json!(-0.1), "greater_than_equal"),
        ("entry_price", json!(0), "greater_than"),
    ];
    for (field, value, kind) in cases {
        let mut b = base.clone();
        b[*field] = value.clone();
        assert_eq!(fields(sltp(b).unwrap_err()), vec![(kind.to_string(), format!("body.{field}"))], "{field}");
    }
    // A SELL whose take profit would go below zero: a 422, not a negative price.
    let e = sltp(json!({"symbol": "EURUSD", "direction": "SELL", "entry_price": 0.5, "sl_type": "percentage",
        "sl_value": 60, "tp_value": 2}))
    .unwrap_err();
    assert_eq!(e.status(), 422);
    match sltp(json!({"symbol": "NOPE1", "direction": "BUY", "entry_price": 1})).unwrap_err() {
        ApiError::BadRequest(m) => assert_eq!(m, "Symbol NOPE1 is not supported"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn risk_profiles_emit_type_and_trailing_type_and_numbers() {
    let v = risk_profiles_json();
    let p = &v["profiles"];
    assert_eq!(p.as_object().unwrap().len(), 3);
    let c = &p["conservative"];
    assert_eq!(c["sl_type"], "atr_based");
    assert_eq!(c["sl_value"], 2.5);
    assert_eq!(c["tp_type"], "risk_reward");
    assert_eq!(c["tp_value"], 1.5);
    assert_eq!(c["risk_per_trade_percent"], 1.0);
    assert_eq!(c["max_position_size"], 0.05);
    let t = &c["trailing_stop"];
    assert_eq!((t["type"].as_str(), t["trailing_type"].as_str()), (Some("atr_based"), Some("atr_based")));
    assert_eq!(t["activation_pips"], 30.0);
    assert_eq!(t["atr_multiplier"], 2.0);
    assert_eq!(t["breakeven_pips"], 20.0);
    assert_eq!(t["enabled"], true);
    let a = &p["aggressive"]["trailing_stop"];
    assert_eq!((a["type"].as_str(), a["trailing_type"].as_str()), (Some("fixed_pips"), Some("fixed_pips")));
    assert_eq!(p["moderate"]["max_position_size"], 0.1);
    assert_eq!(p["aggressive"]["risk_per_trade_percent"], 3.0);
}
