use axum::http::StatusCode;
use nusatrade_ml::models::{ForestParams, GbdtParams};
use nusatrade_ml::{ModelConfig, ModelKind, Timeframe};
use serde_json::{Value, json};
use uuid::Uuid;

use super::parse::{model_id, parse_candles, parse_config, parse_model, parse_train};
use crate::http::ApiError;
use crate::ml::service::TrainRequest;

#[test]
fn configs_are_validated_field_by_field() {
    let c = parse_config(ModelKind::GradientBoosting, Timeframe::H1, None).unwrap();
    assert_eq!(c.model, ModelConfig::GradientBoosting(GbdtParams::default()));
    assert_eq!(c.backtest.bars_per_year, 6_048.0);
    let d1 = parse_config(ModelKind::RandomForest, Timeframe::D1, Some(&json!({}))).unwrap();
    assert_eq!(d1.backtest.bars_per_year, 252.0, "annualisation follows the timeframe");
    let ok = parse_config(
        ModelKind::GradientBoosting,
        Timeframe::H1,
        Some(&json!({"hyperparameters": {"iterations": 20, "max_depth": 3}, "label": {"kind": "binary", "horizon": 3, "threshold": 0.0}})),
    )
    .unwrap();
    assert!(matches!(ok.model, ModelConfig::GradientBoosting(GbdtParams { iterations: 20, max_depth: 3, .. })));
    // Unknown keys, wrong types, out-of-range values: 422 entries naming the place.
    let e = parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&json!({"risk": 1}))).unwrap_err();
    assert_eq!(e[0].kind, "extra_forbidden");
    let e = parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&json!({"hyperparameters": {"trees": 5}})))
        .unwrap_err();
    assert_eq!(e[0].loc, vec![json!("body"), json!("config"), json!("hyperparameters")]);
    assert!(e[0].msg.contains("trees"), "{}", e[0].msg);
    let e = parse_config(ModelKind::RandomForest, Timeframe::H1, Some(&json!({"hyperparameters": {"n_trees": 0}})))
        .unwrap_err();
    assert!(e[0].msg.contains("n_trees"), "{}", e[0].msg);
    let e = parse_config(ModelKind::LogisticRegression, Timeframe::H1, Some(&json!([1]))).unwrap_err();
    assert_eq!(e[0].kind, "model_attributes_type");
}

#[test]
fn the_originals_flat_config_keys_are_aliases() {
    let flat = json!({"n_estimators": 50, "max_depth": 4, "learning_rate": 0.05, "subsample": 0.8,
        "min_child_weight": 3, "lookahead": 8, "threshold": 0.001, "test_split": 0.25, "stop_loss_atr": 1.2,
        "profit_target_atr": 0.8, "confidence_threshold": 0.7});
    let c = parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&flat)).unwrap();
    let ModelConfig::GradientBoosting(p) = &c.model else { panic!("{:?}", c.model) };
    assert_eq!((p.iterations, p.max_depth, p.learning_rate, p.subsample, p.min_leaf_weight), (50, 4, 0.05, 0.8, 3.0));
    assert_eq!((c.label.horizon, c.label.threshold, c.split.test), (8, 0.001, 0.25));
    assert_eq!((c.signal.sl_atr_multiplier, c.signal.tp_atr_multiplier), (1.2, 0.8));
    // The same as the structured form.
    let structured = json!({"hyperparameters": {"iterations": 50, "max_depth": 4, "learning_rate": 0.05,
        "subsample": 0.8, "min_leaf_weight": 3.0}, "label": {"kind": "three_class", "horizon": 8,
        "threshold": 0.001}, "split": {"validation": 0.2, "test": 0.25}, "signal": {"sl_atr_multiplier": 1.2, "tp_atr_multiplier": 0.8}});
    assert_eq!(parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&structured)).unwrap(), c);
    let rf = parse_config(
        ModelKind::RandomForest,
        Timeframe::H1,
        Some(&json!({"n_estimators": 30, "min_samples_split": 4, "random_state": 7})),
    )
    .unwrap();
    assert!(matches!(
        rf.model,
        ModelConfig::RandomForest(ForestParams { n_trees: 30, min_samples_split: 4, seed: 7, .. })
    ));
    // A flat key the family has no use for, one given twice, out of range, or unknown: errors naming it.
    let e = parse_config(ModelKind::RandomForest, Timeframe::H1, Some(&json!({"learning_rate": 0.1}))).unwrap_err();
    assert_eq!((e[0].kind.as_str(), &e[0].loc[2]), ("extra_forbidden", &json!("learning_rate")));
    assert!(e[0].msg.contains("random_forest"), "{}", e[0].msg);
    let twice = json!({"max_depth": 3, "hyperparameters": {"max_depth": 4}});
    let e = parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&twice)).unwrap_err();
    assert!(e[0].msg.contains("hyperparameters.max_depth"), "{}", e[0].msg);
    let e = parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&json!({"lookahead": 0}))).unwrap_err();
    assert!(!e.is_empty());
    let e = parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&json!({"n_estimatorz": 5}))).unwrap_err();
    assert_eq!((e[0].kind.as_str(), &e[0].loc[2]), ("extra_forbidden", &json!("n_estimatorz")));
}

#[test]
fn model_bodies() {
    let ok =
        parse_model(json!({"name": " m ", "model_type": "xgboost", "symbol": "eurusd"}).as_object().unwrap()).unwrap();
    assert_eq!((ok.name.as_str(), ok.symbol, ok.timeframe), ("m", "EURUSD", Timeframe::H1));
    assert_eq!(ok.config.model.kind(), ModelKind::GradientBoosting);
    let status = |b: Value| parse_model(b.as_object().unwrap()).unwrap_err().status().as_u16();
    assert_eq!(status(json!({})), 422, "name required");
    assert_eq!(status(json!({"name": "m", "model_type": "lstm"})), 422);
    assert_eq!(status(json!({"name": "m", "timeframe": "H2"})), 422);
    assert_eq!(status(json!({"name": "m", "symbol": "../../etc"})), 400);
    assert_eq!(status(json!({"name": "m", "symbol": "ZZZUSD"})), 400);
    assert_eq!(status(json!({"name": "m", "strategy_id": "nope"})), 400);
    assert_eq!(status(json!({"name": "x".repeat(101)})), 422);
}

#[test]
fn train_bodies() {
    let p = |b: Value| parse_train(b.as_object().unwrap());
    assert_eq!(p(json!({})).unwrap(), TrainRequest::default());
    let r = p(json!({"start_date": "2017-05-01", "end_date": "2017-12-31T00:00:00", "test_split": 0.25})).unwrap();
    assert_eq!(r.test_split, Some(0.25));
    assert!(r.start.unwrap() < r.end.unwrap());
    let msg = |b: Value| match p(b).unwrap_err() {
        ApiError::BadRequest(m) => m,
        other => panic!("{other:?}"),
    };
    assert!(msg(json!({"start_date": "yesterday"})).starts_with("Invalid date format"));
    assert_eq!(msg(json!({"start_date": "2018-01-01", "end_date": "2017-01-01"})), "End date must be after start date");
    assert_eq!(msg(json!({"start_date": "2010-01-01", "end_date": "2017-01-01"})), "Date range cannot exceed 2 years");
    assert_eq!(p(json!({"test_split": 0.9})).unwrap_err().status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn request_candles() {
    let good = json!([{"time": "2024-01-01T00:00:00Z", "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.05},
                      {"time": 1704070800, "open": 1.05, "high": 1.1, "low": 1.0, "close": 1.07, "volume": 5}]);
    let s = parse_candles(&good).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s.candles()[1].volume, 5.0);
    let e = parse_candles(&json!([{"time": "2024-01-01", "open": 1.0, "high": 0.5, "low": 0.4, "close": 1.0}]))
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e = parse_candles(&json!([{"time": "x", "open": 1, "high": 1, "low": 1, "close": 1}])).unwrap_err();
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(parse_candles(&json!("nope")).is_err());
}

#[test]
fn ids() {
    assert!(model_id("../../etc/passwd").is_err());
    assert!(model_id("..%2F..%2Fx").is_err());
    assert!(model_id(&Uuid::from_u128(5).to_string()).is_ok());
}
