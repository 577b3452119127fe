//! Request parsing of the ML routes: path ids, query parameters, model bodies (the training config field by
//! field, the auto-trading knobs), training and prediction bodies; refusals are 400 or framework-style 422 lists.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use nusatrade_ml::candles::parse_timestamp;
use nusatrade_ml::metrics::BacktestConfig;
use nusatrade_ml::models::{ForestParams, GbdtParams, LogisticParams};
use nusatrade_ml::predict::SignalConfig;
use nusatrade_ml::split::SplitConfig;
use nusatrade_ml::{Candle, CandleSeries, LabelSpec, ModelConfig, ModelKind, Timeframe, TrainConfig};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::MAX_NAME;
use crate::http::fields::instrument;
use crate::http::{ApiError, ApiResult, FieldError};
use crate::ml::auto::{AutoTradingSettings, SETTING_KEYS};
use crate::ml::service::{MAX_REQUEST_CANDLES, ModelInput, TrainRequest};

/// A path id: 400 with the original's `validate_uuid` wording.
pub fn model_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(raw).map_err(|_| ApiError::BadRequest("Invalid model_id format. Must be a valid UUID.".into()))
}

pub(super) fn query_error(field: &str, msg: impl Into<String>, input: &str) -> ApiError {
    ApiError::Unprocessable(vec![FieldError::new("value_error", &["query", field], msg, Value::from(input))])
}

/// `parse(raw)` when `raw` names a known value; otherwise an `enum` error for the body `field` (`msg`, with the
/// raw input) in `errors`. `None` stays `None`: a missing field was reported already.
fn one_of<T>(
    field: &str,
    raw: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    msg: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let raw = raw?;
    let parsed = parse(raw);
    if parsed.is_none() {
        errors.push(body_error(field, "enum", msg, Value::from(raw)));
    }
    parsed
}

pub(super) fn body_error(field: &str, kind: &str, msg: impl Into<String>, input: Value) -> FieldError {
    FieldError::new(kind, &["body", field], msg, input)
}

/// A catalogue symbol (400 for malformed or unknown ones, the trading routes' wording).
pub(super) fn symbol(raw: &str) -> ApiResult<&'static str> {
    Ok(instrument(raw.trim())?.symbol)
}

pub(super) fn timeframe(raw: &str, loc: &[&str]) -> ApiResult<Timeframe> {
    Timeframe::parse(raw.trim()).ok_or_else(|| {
        ApiError::Unprocessable(vec![FieldError::new(
            "enum",
            loc,
            "Input should be one of M1, M5, M15, M30, H1, H4, D1, W1",
            Value::from(raw),
        )])
    })
}

/// Serde error text without the `at line 1 column N` tail.
pub(super) fn serde_msg(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

pub(super) fn part<T: serde::de::DeserializeOwned + Default>(
    config: &Map<String, Value>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match config.get(key) {
        None | Some(Value::Null) => Some(T::default()),
        Some(v @ Value::Object(_)) => match serde_json::from_value(v.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(FieldError {
                    kind: "value_error".into(),
                    loc: vec!["body".into(), "config".into(), key.into()],
                    msg: serde_msg(&e),
                    input: v.clone(),
                });
                None
            }
        },
        Some(v) => {
            errors.push(FieldError {
                kind: "model_attributes_type".into(),
                loc: vec!["body".into(), "config".into(), key.into()],
                msg: "Input should be a valid dictionary".into(),
                input: v.clone(),
            });
            None
        }
    }
}

/// Where one of the original's flat config keys lives in the structured config: `(section, field)`, or `None`
/// for a key that is not a flat alias (or not one for this model family).
pub fn flat_alias(kind: ModelKind, key: &str) -> Option<(&'static str, &'static str)> {
    let h = "hyperparameters";
    Some(match (kind, key) {
        (ModelKind::GradientBoosting, "n_estimators") => (h, "iterations"),
        (ModelKind::RandomForest, "n_estimators") => (h, "n_trees"),
        (ModelKind::GradientBoosting | ModelKind::RandomForest, "max_depth") => (h, "max_depth"),
        (ModelKind::GradientBoosting, "learning_rate") => (h, "learning_rate"),
        (ModelKind::GradientBoosting, "subsample") => (h, "subsample"),
        (ModelKind::GradientBoosting, "colsample_bytree") => (h, "colsample_bytree"),
        (ModelKind::GradientBoosting, "gamma") => (h, "gamma"),
        (ModelKind::GradientBoosting, "min_child_weight") => (h, "min_leaf_weight"),
        (ModelKind::RandomForest, "min_samples_split") => (h, "min_samples_split"),
        (ModelKind::RandomForest, "min_samples_leaf") => (h, "min_samples_leaf"),
        (ModelKind::GradientBoosting | ModelKind::RandomForest, "random_state") => (h, "seed"),
        (ModelKind::LogisticRegression, "max_iter") => (h, "max_iterations"),
        (_, "lookahead") => ("label", "horizon"),
        (_, "threshold") => ("label", "threshold"),
        (_, "test_split") => ("split", "test"),
        (_, "stop_loss_atr") => ("signal", "sl_atr_multiplier"),
        (_, "profit_target_atr") => ("signal", "tp_atr_multiplier"),
        _ => return None,
    })
}

/// Every flat key of the original that [`flat_alias`] knows for some model family.
pub(super) const FLAT_KEYS: &[&str] = &[
    "n_estimators",
    "max_depth",
    "learning_rate",
    "subsample",
    "colsample_bytree",
    "gamma",
    "min_child_weight",
    "min_samples_split",
    "min_samples_leaf",
    "random_state",
    "max_iter",
    "lookahead",
    "threshold",
    "test_split",
    "stop_loss_atr",
    "profit_target_atr",
];

/// The default of a config section as JSON (hyperparameter sections default field by field).
pub(super) fn default_section(section: &str) -> Value {
    let v = match section {
        "label" => serde_json::to_value(LabelSpec::default()),
        "split" => serde_json::to_value(SplitConfig::default()),
        "signal" => serde_json::to_value(SignalConfig::default()),
        _ => Ok(Value::Object(Map::new())),
    };
    v.unwrap_or_else(|_| Value::Object(Map::new()))
}

/// Moves the original's flat keys into their sections (see [`flat_alias`]).
pub(super) fn unflatten(kind: ModelKind, config: &Map<String, Value>) -> Result<Map<String, Value>, Vec<FieldError>> {
    let mut out = Map::new();
    let mut moved = Vec::new();
    let mut errors = Vec::new();
    for (k, v) in config {
        match flat_alias(kind, k) {
            Some((section, field)) => moved.push((k, section, field, v)),
            None if FLAT_KEYS.contains(&k.as_str()) => errors.push(FieldError {
                kind: "extra_forbidden".into(),
                loc: vec!["body".into(), "config".into(), k.as_str().into()],
                msg: format!("{k} does not apply to a {} model", kind.as_str()),
                input: v.clone(),
            }),
            None => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, section, field, v) in moved {
        // A section made of flat keys alone starts from its defaults (not every section has a default per field).
        let given = config.contains_key(section);
        match out.entry(section).or_insert_with(|| default_section(section)) {
            Value::Object(m) if given && m.contains_key(field) => errors.push(FieldError {
                kind: "value_error".into(),
                loc: vec!["body".into(), "config".into(), k.as_str().into()],
                msg: format!("{k} is also given as {section}.{field}; give one of them"),
                input: v.clone(),
            }),
            Value::Object(m) => {
                m.insert(field.to_owned(), v.clone());
            }
            // A section that is not an object: its own parse reports it.
            _ => {}
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The training config of a model: `model_type` gives the family; `config` may hold `hyperparameters`, `label`,
/// `split`, `signal` and `backtest` objects (documented ranges; unknown keys refused) and the auto-trading knobs
/// (`confidence_threshold`, `max_trades_per_day`, `cooldown_minutes`, `lot_size`: read by
/// [`AutoTradingSettings::from_config`], not part of the training config).
///
/// The original's flat keys (`n_estimators`, `max_depth`, `learning_rate`, `lookahead`, `threshold`, …, see
/// [`flat_alias`]) are read as aliases of the structured ones; a flat key and its structured twin both given
/// is an error, as is a flat key the model family has no use for.
pub fn parse_config(kind: ModelKind, tf: Timeframe, config: Option<&Value>) -> Result<TrainConfig, Vec<FieldError>> {
    let unflattened;
    let config = match config {
        None | Some(Value::Null) => {
            unflattened = Map::new();
            &unflattened
        }
        Some(Value::Object(m)) => {
            unflattened = unflatten(kind, m)?;
            &unflattened
        }
        Some(v) => {
            return Err(vec![body_error(
                "config",
                "model_attributes_type",
                "Input should be a valid dictionary",
                v.clone(),
            )]);
        }
    };
    let mut errors = Vec::new();
    for k in config.keys() {
        if !matches!(k.as_str(), "hyperparameters" | "label" | "split" | "signal" | "backtest")
            && !SETTING_KEYS.contains(&k.as_str())
        {
            errors.push(FieldError {
                kind: "extra_forbidden".into(),
                loc: vec!["body".into(), "config".into(), k.as_str().into()],
                msg: "Unknown config key; allowed: hyperparameters, label, split, signal, backtest, \
                      confidence_threshold, max_trades_per_day, cooldown_minutes, lot_size, and the flat keys \
                      n_estimators, max_depth, learning_rate, subsample, colsample_bytree, gamma, \
                      min_child_weight, min_samples_split, min_samples_leaf, random_state, max_iter, lookahead, \
                      threshold, test_split, stop_loss_atr, profit_target_atr"
                    .into(),
                input: config[k].clone(),
            });
        }
    }
    let model = match kind {
        ModelKind::GradientBoosting => {
            part::<GbdtParams>(config, "hyperparameters", &mut errors).map(ModelConfig::GradientBoosting)
        }
        ModelKind::RandomForest => {
            part::<ForestParams>(config, "hyperparameters", &mut errors).map(ModelConfig::RandomForest)
        }
        ModelKind::LogisticRegression => {
            part::<LogisticParams>(config, "hyperparameters", &mut errors).map(ModelConfig::LogisticRegression)
        }
    };
    let label = part::<LabelSpec>(config, "label", &mut errors);
    let split = part::<SplitConfig>(config, "split", &mut errors);
    let signal = part::<SignalConfig>(config, "signal", &mut errors);
    let backtest = match config.get("backtest") {
        None | Some(Value::Null) => {
            Some(BacktestConfig { bars_per_year: tf.bars_per_year(), ..BacktestConfig::default() })
        }
        Some(_) => part::<BacktestConfig>(config, "backtest", &mut errors),
    };
    let (Some(model), Some(label), Some(split), Some(signal), Some(backtest)) = (model, label, split, signal, backtest)
    else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let c = TrainConfig { model, label, split, signal, backtest };
    c.validate().map_err(|m| vec![body_error("config", "value_error", m, Value::Null)])?;
    Ok(c)
}

/// `{name, model_type, symbol, timeframe, strategy_id, config}` of `POST`/`PUT /ml/models`.
pub(super) fn parse_model(body: &Map<String, Value>) -> ApiResult<ModelInput> {
    let mut errors = Vec::new();
    let name = match body.get("name") {
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() || t.chars().count() > MAX_NAME || t.chars().any(char::is_control) {
                errors.push(body_error(
                    "name",
                    "string_too_long",
                    format!("name must be 1-{MAX_NAME} characters without control characters"),
                    Value::from(s.as_str()),
                ));
                None
            } else {
                Some(t.to_owned())
            }
        }
        None | Some(Value::Null) => {
            errors.push(body_error("name", "missing", "Field required", Value::Null));
            None
        }
        Some(v) => {
            errors.push(body_error("name", "string_type", "Input should be a valid string", v.clone()));
            None
        }
    };
    let text = |field: &str, default: &'static str, errors: &mut Vec<FieldError>| -> Option<String> {
        match body.get(field) {
            None | Some(Value::Null) => Some(default.to_owned()),
            Some(Value::String(s)) if s.len() <= 32 => Some(s.clone()),
            Some(v) => {
                errors.push(body_error(
                    field,
                    "string_type",
                    "Input should be a string of at most 32 characters",
                    v.clone(),
                ));
                None
            }
        }
    };
    let model_type = text("model_type", "random_forest", &mut errors);
    let symbol_raw = text("symbol", "EURUSD", &mut errors);
    let tf_raw = text("timeframe", "H1", &mut errors);
    let kind = one_of(
        "model_type",
        model_type.as_deref(),
        ModelKind::from_model_type,
        "model_type must be one of gradient_boosting, xgboost, random_forest, logistic_regression",
        &mut errors,
    );
    let tf = one_of(
        "timeframe",
        tf_raw.as_deref(),
        |t| Timeframe::parse(t.trim()),
        "Input should be one of M1, M5, M15, M30, H1, H4, D1, W1",
        &mut errors,
    );
    let strategy = match body.get("strategy_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Uuid::try_parse(s.trim())
            .map(Some)
            .map_err(|_| ApiError::BadRequest("Invalid strategy_id format. Must be a valid UUID.".into())),
        Some(v) => {
            errors.push(body_error("strategy_id", "string_type", "Input should be a valid string", v.clone()));
            Ok(None)
        }
    };
    let config = match (kind, tf) {
        (Some(k), Some(tf)) => match parse_config(k, tf, body.get("config")) {
            Ok(c) => Some(c),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        },
        _ => None,
    };
    let auto_trading = match body.get("config") {
        Some(Value::Object(m)) => match AutoTradingSettings::from_config(m) {
            Ok(a) => a,
            Err(e) => {
                errors.extend(e.into_iter().map(FieldError::from));
                AutoTradingSettings::default()
            }
        },
        _ => AutoTradingSettings::default(),
    };
    if !errors.is_empty() {
        return Err(ApiError::Unprocessable(errors));
    }
    let symbol = symbol(symbol_raw.as_deref().unwrap_or("EURUSD"))?;
    let missing = || ApiError::Internal("model fields".into());
    Ok(ModelInput {
        name: name.ok_or_else(missing)?,
        symbol,
        timeframe: tf.ok_or_else(missing)?,
        strategy_id: strategy?,
        config: config.ok_or_else(missing)?,
        auto_trading,
    })
}

/// A date of the train request: `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS` (also with an offset).
pub(super) fn train_date(v: &Value) -> ApiResult<DateTime<Utc>> {
    let bad = || ApiError::BadRequest("Invalid date format. Use ISO format (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)".into());
    let s = v.as_str().ok_or_else(bad)?.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|_| bad())
}

/// `{start_date?, end_date?, test_split?}` of `POST /train` (the dashboard sends `{}`).
pub(super) fn parse_train(body: &Map<String, Value>) -> ApiResult<TrainRequest> {
    let get = |k: &str| body.get(k).filter(|v| !v.is_null());
    let start = get("start_date").map(train_date).transpose()?;
    let end = get("end_date").map(train_date).transpose()?;
    if let (Some(s), Some(e)) = (start, end) {
        if e <= s {
            return Err(ApiError::BadRequest("End date must be after start date".into()));
        }
        if e - s > chrono::Duration::days(crate::ml::service::MAX_TRAIN_SPAN_DAYS) {
            return Err(ApiError::BadRequest("Date range cannot exceed 2 years".into()));
        }
    }
    let test_split = match get("test_split") {
        None => None,
        Some(v) => match v.as_f64() {
            Some(f) if (0.05..=0.4).contains(&f) => Some(f),
            _ => {
                return Err(ApiError::Unprocessable(vec![body_error(
                    "test_split",
                    "value_error",
                    "test_split must be a number in [0.05, 0.4]",
                    v.clone(),
                )]));
            }
        },
    };
    Ok(TrainRequest { start, end, test_split })
}

/// Candles of a predict request: `[{time|timestamp, open, high, low, close, volume?}]`, oldest first.
pub(super) fn parse_candles(v: &Value) -> ApiResult<CandleSeries> {
    let err = |loc: Vec<Value>, msg: String| {
        ApiError::Unprocessable(vec![FieldError { kind: "value_error".into(), loc, msg, input: Value::Null }])
    };
    let Value::Array(rows) = v else {
        return Err(err(vec!["body".into(), "candles".into()], "Input should be a valid list".into()));
    };
    if rows.len() > MAX_REQUEST_CANDLES {
        return Err(err(
            vec!["body".into(), "candles".into()],
            format!("at most {MAX_REQUEST_CANDLES} candles per request"),
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let at = |field: &str| vec![Value::from("body"), Value::from("candles"), Value::from(i), Value::from(field)];
        let Value::Object(o) = row else {
            return Err(err(
                vec!["body".into(), "candles".into(), i.into()],
                "Input should be a valid dictionary".into(),
            ));
        };
        let time = match o.get("time").or_else(|| o.get("timestamp")) {
            Some(Value::String(s)) => parse_timestamp(s),
            Some(Value::Number(n)) => n.as_i64().and_then(|s| DateTime::from_timestamp(s, 0)),
            _ => None,
        }
        .ok_or_else(|| err(at("time"), "time must be an ISO 8601 timestamp or unix seconds".into()))?;
        let num = |f: &str, required: bool| -> ApiResult<f64> {
            match o.get(f) {
                Some(Value::Number(n)) => n.as_f64().ok_or_else(|| err(at(f), "Input should be a valid number".into())),
                None | Some(Value::Null) if !required => Ok(0.0),
                _ => Err(err(at(f), "Input should be a valid number".into())),
            }
        };
        out.push(Candle {
            time,
            open: num("open", true)?,
            high: num("high", true)?,
            low: num("low", true)?,
            close: num("close", true)?,
            volume: num("volume", false)?,
        });
    }
    CandleSeries::new(out).map_err(|e| {
        err(vec!["body".into(), "candles".into(), e.index.into()], format!("candle {}: {}", e.index, e.problem))
    })
}
