//! HTTP routes of the `ml` function (contract §2.8 and §2.9), shared by the Lambda and the local gateway.
//!
//! | route | success |
//! |---|---|
//! | `POST /api/v1/ml/datasets?symbol=&timeframe=[&scope=system]` (CSV body, ≤ 4 MiB) | 201 dataset + what the merge did |
//! | `GET /api/v1/ml/datasets[?scope=system]` | 200 datasets |
//! | `DELETE /api/v1/ml/datasets/{symbol}/{timeframe}[?scope=system]` | 200 `{"deleted": "EURUSD/H1"}` |
//! | `GET /api/v1/ml/models?skip=0&limit=20` | 200 `ModelResponse[]`, oldest first |
//! | `POST /api/v1/ml/models` | 201 `ModelResponse` |
//! | `GET` / `PUT` / `DELETE /api/v1/ml/models/{id}` | 200 `ModelResponse` / `ModelResponse` / `{"deleted": id}` |
//! | `POST /api/v1/ml/models/{id}/train` | **202** `{id, status: "queued", job_id, ...}` — the job runs on the `ml-train` queue |
//! | `GET /api/v1/ml/models/{id}/status` | 200 status, progress, metrics |
//! | `POST /api/v1/ml/models/{id}/predict` | 200 `PredictionResponse` |
//! | `GET /api/v1/ml/models/{id}/predictions?limit=50&cursor=` | 200 `PredictionResponse[]`, newest first; next page's cursor in `X-Next-Cursor` |
//! | `POST /api/v1/ml/models/{id}/activate` / `deactivate` | 200 `{id, status}` |
//! | `POST /api/v1/ml/models/{id}/execute` | 200 (202 when delivery to MT5 is uncertain) |
//! | `POST /api/v1/ml/models/import-default/{symbol}` | 201 `ModelResponse` |
//! | `GET /api/v1/ml/dashboard/active-bots` | 200 |
//! | `POST /api/v1/ml/auto-trading/trigger` | 200 `{status: "completed", result}` or `{status: "skipped", reason: "already_running"}`; 400 without an active model |
//! | `GET /api/v1/ml/auto-trading/status` | 200 last run, today's (UTC) predictions and trades, the applied config |
//! | `GET /api/v1/ml/auto-trading/health` (**no token**) | 200 `{status: "healthy" \| "stale", ...}` |
//! | `GET /api/v1/ml-models/models`, `/ml-models/models/{symbol}` | 200 |
//! | `GET /api/v1/ml-models/defaults`, `GET`/`POST`/`DELETE /ml-models/defaults/{symbol}` | 200 |
//! | `POST /api/v1/ml-models/defaults/{symbol}/retrain` (admin) | 202 |
//!
//! All routes but `auto-trading/health` need a bearer token; model lookups are scoped to the caller (another
//! user's id is 404 "Model not found", as an unknown one). Malformed ids are 400 `Invalid model_id format. Must
//! be a valid UUID.`; bad bodies are the framework-style 422 list; bad CSV is 422 with the line
//! (`loc: ["body", "line", n]`).
//!
//! `training_status` keeps the contract's values (`idle`, `training`, `completed`, `failed`): a queued job
//! reports `training` with `training_progress.stage = "queued"`.

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use nusatrade_ml::candles::parse_timestamp;
use nusatrade_ml::metrics::BacktestConfig;
use nusatrade_ml::models::{ForestParams, GbdtParams, LogisticParams};
use nusatrade_ml::predict::SignalConfig;
use nusatrade_ml::split::SplitConfig;
use nusatrade_ml::{Candle, CandleSeries, LabelSpec, ModelConfig, ModelKind, Timeframe, TrainConfig};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::artefacts::owner_of;
use super::auto::{
    AutoTradingSettings, CycleOutcome, CycleResult, INTERVAL_MINUTES, SETTING_KEYS, STALE_AFTER_MINUTES,
};
use super::datasets::{MAX_UPLOAD_BYTES, UploadSummary};
use super::defaults::{DEFAULT_SYMBOLS, default_symbol};
use super::service::{
    ActiveBot, EffectiveDefault, ExecuteInput, MAX_REQUEST_CANDLES, MlError, MlService, ModelFile, ModelInput,
    PredictCandles, StoredPrediction, TrainRequest, model_path,
};
use super::store::{DatasetRecord, ModelRecord, Owner, TrainingStatus, tf_name};
use crate::auth::{Authenticator, CurrentUser, RequestLimits, limit_requests};
use crate::http::{ApiError, ApiJson, ApiQuery, ApiResult, FieldError, optional_object};
use crate::ports::Cursor;
use crate::trading::fields::{Fields, gt, instrument};
use crate::trading::orders::views::iso;

/// Largest body of `POST /ml/models/{id}/predict` (candles in the request).
pub const MAX_PREDICT_BODY_BYTES: usize = 1 << 20;
/// Routes accepting more than the platform's default body limit: `(path prefix, path suffix, limit)`.
pub const LARGE_BODY_ROUTES: &[(&str, &str, usize)] = &[
    ("/api/v1/ml/datasets", "/api/v1/ml/datasets", MAX_UPLOAD_BYTES),
    ("/api/v1/ml/models/", "/predict", MAX_PREDICT_BODY_BYTES),
];
/// The response header carrying the next page's cursor.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";
/// Longest model name, in characters.
pub const MAX_NAME: usize = 100;
/// Longest `model_path` accepted in an override request.
pub const MAX_MODEL_PATH: usize = 300;

/// State of the ML routes.
#[derive(Clone)]
pub struct MlState {
    pub auth: Authenticator,
    pub ml: MlService,
}

impl FromRef<MlState> for Authenticator {
    fn from_ref(s: &MlState) -> Self {
        s.auth.clone()
    }
}

/// The routes under `/api/v1/ml` and `/api/v1/ml-models`. `limits`: the per-user request limit (local
/// gateway); the Lambda relies on API Gateway throttling.
pub fn router(state: MlState, limits: Option<RequestLimits>) -> Router {
    let mut routes = Router::new()
        .route("/ml/datasets", get(list_datasets).post(upload_dataset))
        .route("/ml/datasets/{symbol}/{timeframe}", delete(delete_dataset))
        .route("/ml/models", get(list_models).post(create_model))
        .route("/ml/models/import-default/{symbol}", post(import_default))
        .route("/ml/models/{id}", get(get_model).put(update_model).delete(delete_model))
        .route("/ml/models/{id}/train", post(train))
        .route("/ml/models/{id}/status", get(status))
        .route("/ml/models/{id}/predict", post(predict))
        .route("/ml/models/{id}/predictions", get(predictions))
        .route("/ml/models/{id}/activate", post(activate))
        .route("/ml/models/{id}/deactivate", post(deactivate))
        .route("/ml/models/{id}/execute", post(execute))
        .route("/ml/dashboard/active-bots", get(active_bots))
        .route("/ml/auto-trading/trigger", post(trigger_auto_trading))
        .route("/ml/auto-trading/status", get(auto_trading_status))
        .route("/ml/auto-trading/health", get(auto_trading_health))
        .route("/ml-models/models", get(model_files_all))
        .route("/ml-models/models/{symbol}", get(model_files_symbol))
        .route("/ml-models/defaults", get(defaults_all))
        .route("/ml-models/defaults/{symbol}", get(default_one).post(set_default).delete(reset_default))
        .route("/ml-models/defaults/{symbol}/retrain", post(retrain_default))
        .with_state(state);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    Router::new().nest("/api/v1", routes)
}

// ------------------------------------------------------------------ parsing

/// A path id: 400 with the original's `validate_uuid` wording.
pub fn model_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(raw).map_err(|_| ApiError::BadRequest("Invalid model_id format. Must be a valid UUID.".into()))
}

fn query_error(field: &str, msg: impl Into<String>, input: &str) -> ApiError {
    ApiError::Unprocessable(vec![FieldError::new("value_error", &["query", field], msg, Value::from(input))])
}

fn body_error(field: &str, kind: &str, msg: impl Into<String>, input: Value) -> FieldError {
    FieldError::new(kind, &["body", field], msg, input)
}

/// A catalogue symbol (400 for malformed or unknown ones, the trading routes' wording).
fn symbol(raw: &str) -> ApiResult<&'static str> {
    Ok(instrument(raw.trim())?.symbol)
}

fn timeframe(raw: &str, loc: &[&str]) -> ApiResult<Timeframe> {
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
fn serde_msg(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn part<T: serde::de::DeserializeOwned + Default>(
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
const FLAT_KEYS: &[&str] = &[
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
fn default_section(section: &str) -> Value {
    let v = match section {
        "label" => serde_json::to_value(LabelSpec::default()),
        "split" => serde_json::to_value(SplitConfig::default()),
        "signal" => serde_json::to_value(SignalConfig::default()),
        _ => Ok(Value::Object(Map::new())),
    };
    v.unwrap_or_else(|_| Value::Object(Map::new()))
}

/// Moves the original's flat keys into their sections (see [`flat_alias`]).
fn unflatten(kind: ModelKind, config: &Map<String, Value>) -> Result<Map<String, Value>, Vec<FieldError>> {
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
fn parse_model(body: &Map<String, Value>) -> ApiResult<ModelInput> {
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
    let kind = model_type.as_deref().and_then(|t| {
        let k = ModelKind::from_model_type(t);
        if k.is_none() {
            errors.push(body_error(
                "model_type",
                "enum",
                "model_type must be one of gradient_boosting, xgboost, random_forest, logistic_regression",
                Value::from(t),
            ));
        }
        k
    });
    let tf = tf_raw.as_deref().and_then(|t| {
        let tf = Timeframe::parse(t.trim());
        if tf.is_none() {
            errors.push(body_error(
                "timeframe",
                "enum",
                "Input should be one of M1, M5, M15, M30, H1, H4, D1, W1",
                Value::from(t),
            ));
        }
        tf
    });
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
            Err(mut e) => {
                errors.append(&mut e);
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
fn train_date(v: &Value) -> ApiResult<DateTime<Utc>> {
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
fn parse_train(body: &Map<String, Value>) -> ApiResult<TrainRequest> {
    let get = |k: &str| body.get(k).filter(|v| !v.is_null());
    let start = get("start_date").map(train_date).transpose()?;
    let end = get("end_date").map(train_date).transpose()?;
    if let (Some(s), Some(e)) = (start, end) {
        if e <= s {
            return Err(ApiError::BadRequest("End date must be after start date".into()));
        }
        if e - s > chrono::Duration::days(super::service::MAX_TRAIN_SPAN_DAYS) {
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
fn parse_candles(v: &Value) -> ApiResult<CandleSeries> {
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

// ------------------------------------------------------------------ views

fn json_of(text: &Option<String>) -> Value {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

fn opt_iso(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::from(iso(t))).unwrap_or(Value::Null)
}

/// The contract's status values: `queued` is reported as `training` (the progress says `queued`).
fn status_str(s: TrainingStatus) -> &'static str {
    match s {
        TrainingStatus::Queued => "training",
        other => other.as_str(),
    }
}

fn progress(m: &ModelRecord) -> Value {
    match &m.job.progress_stage {
        None => Value::Null,
        Some(stage) => json!({
            "stage": stage,
            "fraction": m.job.progress_fraction.unwrap_or(0.0),
            "updated_at": opt_iso(m.job.progress_at),
            "attempt": m.job.job_attempt,
        }),
    }
}

/// `ModelResponse` (§2.8) plus the config, version, progress and data source.
pub fn model_view(m: &ModelRecord) -> Value {
    json!({
        "id": m.id,
        "name": m.name,
        "model_type": m.model_type,
        "symbol": m.symbol,
        "timeframe": tf_name(m.timeframe),
        "strategy_id": m.strategy_id,
        "strategy_name": null,
        "is_active": m.is_active,
        "is_pretrained": m.is_pretrained,
        "performance_metrics": json_of(&m.summary),
        "training_status": status_str(m.training_status),
        "training_error": m.training_error,
        "training_started_at": opt_iso(m.training_started_at),
        "training_completed_at": opt_iso(m.training_completed_at),
        "training_progress": progress(m),
        "version": m.artefact.map(|a| a.version),
        "config": config_view(m),
        "data_source": json_of(&m.data_source),
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    })
}

/// The model's `config`: the training config with the auto-trading knobs it applies.
fn config_view(m: &ModelRecord) -> Value {
    let mut config = serde_json::from_str::<Value>(&m.config).unwrap_or(Value::Null);
    if let (Value::Object(c), Value::Object(a)) = (&mut config, m.auto_trading.to_json()) {
        c.extend(a);
    }
    config
}

fn status_view(m: &ModelRecord) -> Value {
    let path = m.artefact.map(|loc| model_path(owner_of(&loc, m.user_id), &loc));
    json!({
        "id": m.id,
        "training_status": status_str(m.training_status),
        "training_error": m.training_error,
        "training_started_at": opt_iso(m.training_started_at),
        "training_completed_at": opt_iso(m.training_completed_at),
        "performance_metrics": json_of(&m.summary),
        "file_path": path,
        "job_id": m.job.job_id,
        "queued": m.training_status == TrainingStatus::Queued,
        "progress": progress(m),
        "version": m.artefact.map(|a| a.version),
        "checksum": m.artefact_checksum,
        "versions": m.versions.iter().map(|v| json!({"version": v.version, "checksum": v.checksum,
            "size_bytes": v.size_bytes, "trained_at": iso(v.trained_at)})).collect::<Vec<_>>(),
        "metrics": json_of(&m.metrics),
        "data_source": json_of(&m.data_source),
    })
}

/// `PredictionResponse` (§2.8).
fn prediction_view(p: &StoredPrediction) -> Value {
    json!({
        "id": p.record.id,
        "model_id": p.record.model_id,
        "symbol": p.record.symbol,
        "prediction": p.prediction,
        "confidence": p.record.confidence,
        "strategy_rules": null,
        "executed_order_id": p.record.executed_order_id,
        "created_at": iso(p.record.created_at),
    })
}

fn dataset_view(d: &DatasetRecord) -> Value {
    json!({
        "symbol": d.symbol,
        "timeframe": tf_name(d.timeframe),
        "bars": d.bars,
        "first": iso(d.first),
        "last": iso(d.last),
        "size_bytes": d.size_bytes,
        "months": d.chunks.len(),
        "source": d.source,
        "revision": d.rev,
        "updated_at": iso(d.updated_at),
    })
}

fn upload_view(s: &UploadSummary) -> Value {
    let mut v = dataset_view(&s.record);
    if let Value::Object(m) = &mut v {
        m.insert("received".into(), s.received.into());
        m.insert("added".into(), s.added.into());
        m.insert("replaced".into(), s.replaced.into());
        m.insert("unchanged".into(), s.unchanged.into());
        m.insert("months_written".into(), s.months_written.into());
    }
    v
}

/// `DefaultModelResponse` (§2.9): metrics only for the system default. `win_rate` and `accuracy` are percentages
/// with one decimal, as the original stored and the dashboard shows them ("Win Rate 58.3%"); the models keep
/// fractions.
fn default_view(d: &EffectiveDefault) -> Value {
    let metric = |k: &str| d.summary.as_ref().and_then(|s| s.get(k)).cloned().unwrap_or(Value::Null);
    json!({
        "model_path": d.model_path,
        "model_id": d.model_id,
        "symbol": d.symbol,
        "is_user_override": d.is_user_override,
        "win_rate": percent(metric("win_rate")),
        "profit_factor": metric("profit_factor"),
        "accuracy": percent(metric("accuracy")),
        "total_trades": metric("total_trades"),
    })
}

/// A fraction as a percentage with one decimal (`0.5834` → `58.3`); anything else unchanged.
fn percent(v: Value) -> Value {
    match v.as_f64() {
        Some(f) if f.is_finite() => json!((f * 1000.0).round() / 10.0),
        _ => v,
    }
}

fn file_view(f: &ModelFile) -> Value {
    json!({
        "model_id": f.model_id,
        "model_path": f.model_path,
        "symbol": f.symbol,
        "file_size": f.size_bytes,
        "created_at": iso(f.created_at),
        "metadata": f.metadata,
    })
}

fn bot_view(b: &ActiveBot) -> Value {
    let accuracy = json_of(&b.model.summary).get("accuracy").cloned().unwrap_or(Value::from(0));
    let last = b.last_prediction.as_ref().map(|p| {
        let pred: Value = serde_json::from_str(&p.prediction).unwrap_or(Value::Null);
        json!({"direction": p.direction, "confidence": p.confidence,
               "entry_price": pred.get("entry_price").cloned().unwrap_or(Value::Null), "created_at": iso(p.created_at)})
    });
    json!({
        "id": b.model.id,
        "name": b.model.name,
        "model_type": b.model.model_type,
        "symbol": b.model.symbol,
        "timeframe": tf_name(b.model.timeframe),
        "strategy_name": null,
        "accuracy": accuracy,
        "last_prediction": last,
        "today_signals": b.today_signals,
        "is_active": true,
    })
}

// ------------------------------------------------------------------ datasets

#[derive(Debug, Default, Deserialize)]
pub struct DatasetParams {
    pub symbol: Option<String>,
    pub timeframe: Option<String>,
    pub scope: Option<String>,
}

/// The owner a dataset route acts on: the caller, or (admins, `?scope=system`) the platform.
fn scope_owner(user: &CurrentUser, scope: Option<&str>) -> ApiResult<Owner> {
    match scope.map(str::trim) {
        None | Some("") | Some("user") => Ok(Owner::User(user.id)),
        Some("system") if user.is_admin() => Ok(Owner::System),
        Some("system") => Err(ApiError::Forbidden("Admin access required".into())),
        Some(other) => Err(query_error("scope", "scope must be user or system", other)),
    }
}

async fn upload_dataset(
    user: CurrentUser,
    State(s): State<MlState>,
    ApiQuery(q): ApiQuery<DatasetParams>,
    body: Bytes,
) -> ApiResult<Response> {
    let owner = scope_owner(&user, q.scope.as_deref())?;
    let missing = |f: &str| {
        ApiError::Unprocessable(vec![FieldError::new("missing", &["query", f], "Field required", Value::Null)])
    };
    let sym = symbol(q.symbol.as_deref().ok_or_else(|| missing("symbol"))?)?;
    let tf = timeframe(q.timeframe.as_deref().ok_or_else(|| missing("timeframe"))?, &["query", "timeframe"])?;
    let summary = s.ml.upload_dataset(owner, sym, tf, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(upload_view(&summary))).into_response())
}

async fn list_datasets(
    user: CurrentUser,
    State(s): State<MlState>,
    ApiQuery(q): ApiQuery<DatasetParams>,
) -> ApiResult<Response> {
    let owner = scope_owner(&user, q.scope.as_deref())?;
    let list = s.ml.datasets.list(owner).await.map_err(MlError::from)?;
    Ok(axum::Json(list.iter().map(dataset_view).collect::<Vec<_>>()).into_response())
}

async fn delete_dataset(
    user: CurrentUser,
    State(s): State<MlState>,
    Path((sym, tf)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<DatasetParams>,
) -> ApiResult<Response> {
    let owner = scope_owner(&user, q.scope.as_deref())?;
    let sym = symbol(&sym)?;
    let tf = timeframe(&tf, &["path", "timeframe"])?;
    if !s.ml.datasets.delete(owner, sym, tf).await.map_err(MlError::from)? {
        return Err(ApiError::NotFound("Dataset not found".into()));
    }
    Ok(axum::Json(json!({"deleted": format!("{sym}/{}", tf_name(tf))})).into_response())
}

// ------------------------------------------------------------------ models

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub skip: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

fn int_param(v: &Option<String>, name: &str, default: u32, range: std::ops::RangeInclusive<u32>) -> ApiResult<u32> {
    match v {
        None => Ok(default),
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(query_error(
                name,
                format!("{name} must be an integer from {} to {}", range.start(), range.end()),
                s,
            )),
        },
    }
}

async fn list_models(
    user: CurrentUser,
    State(s): State<MlState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let skip = int_param(&q.skip, "skip", 0, 0..=100_000)?;
    let limit = int_param(&q.limit, "limit", 20, 1..=1_000)?;
    let models = s.ml.list_models(user.id, skip as usize, limit as usize).await?;
    Ok(axum::Json(models.iter().map(model_view).collect::<Vec<_>>()).into_response())
}

async fn create_model(
    user: CurrentUser,
    State(s): State<MlState>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let input = parse_model(&body)?;
    let m = s.ml.create_model(user.id, input).await?;
    Ok((StatusCode::CREATED, axum::Json(model_view(&m))).into_response())
}

async fn get_model(user: CurrentUser, State(s): State<MlState>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = s.ml.get_model(user.id, model_id(&id)?).await?;
    Ok(axum::Json(model_view(&m)).into_response())
}

async fn update_model(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let id = model_id(&id)?;
    let input = parse_model(&body)?;
    let m = s.ml.update_model(user.id, id, input).await?;
    Ok(axum::Json(model_view(&m)).into_response())
}

async fn delete_model(user: CurrentUser, State(s): State<MlState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = model_id(&id)?;
    s.ml.delete_model(user.id, id).await?;
    Ok(axum::Json(json!({"deleted": id})).into_response())
}

async fn train(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = model_id(&id)?;
    let req = parse_train(&optional_object(&body)?)?;
    let m = s.ml.request_training(user.id, id, req).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "id": m.id,
            "status": "queued",
            "training_status": status_str(m.training_status),
            "job_id": m.job.job_id,
            "message": "Training queued",
            "status_url": format!("/api/v1/ml/models/{}/status", m.id),
            "training_completed_at": null,
        })),
    )
        .into_response())
}

async fn status(user: CurrentUser, State(s): State<MlState>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = s.ml.get_model(user.id, model_id(&id)?).await?;
    Ok(axum::Json(status_view(&m)).into_response())
}

async fn predict(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = model_id(&id)?;
    let body = optional_object(&body)?;
    let sym = match body.get("symbol") {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => {
            let up = raw.trim().to_ascii_uppercase();
            if !(3..=10).contains(&up.len()) || !up.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ApiError::BadRequest(
                    "Invalid symbol format. Must be 3-10 alphanumeric characters (e.g., EURUSD, XAUUSD)".into(),
                ));
            }
            Some(symbol(&up)?)
        }
        Some(v) => {
            return Err(ApiError::Unprocessable(vec![body_error(
                "symbol",
                "string_type",
                "Input should be a valid string",
                v.clone(),
            )]));
        }
    };
    let candles = match body.get("candles") {
        None | Some(Value::Null) => PredictCandles::Stored,
        Some(v) => PredictCandles::Given(parse_candles(v)?),
    };
    let p = s.ml.predict(user.id, id, sym, candles).await?;
    Ok(axum::Json(prediction_view(&p)).into_response())
}

async fn predictions(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let id = model_id(&id)?;
    let limit = int_param(&q.limit, "limit", 50, 1..=200)?;
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Cursor::parse(c).map_err(|_| query_error("cursor", "Invalid pagination cursor", c))?),
    };
    let (items, next) = s.ml.predictions(user.id, id, limit, cursor).await?;
    let mut resp = axum::Json(items.iter().map(prediction_view).collect::<Vec<_>>()).into_response();
    if let Some(c) = next
        && let Ok(v) = HeaderValue::from_str(c.as_str())
    {
        resp.headers_mut().insert(NEXT_CURSOR_HEADER, v);
    }
    Ok(resp)
}

async fn activate(user: CurrentUser, State(s): State<MlState>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = s.ml.activate(user.id, model_id(&id)?).await?;
    Ok(axum::Json(json!({"id": m.id, "status": "active", "is_active": true, "symbol": m.symbol,
        "message": "Model activated for live trading"}))
    .into_response())
}

async fn deactivate(user: CurrentUser, State(s): State<MlState>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = s.ml.deactivate(user.id, model_id(&id)?).await?;
    Ok(axum::Json(json!({"id": m.id, "status": "inactive", "is_active": false,
        "message": "Model deactivated"}))
    .into_response())
}

async fn execute(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let id = model_id(&id)?;
    let prediction_id = match body.get("prediction_id") {
        Some(Value::String(p)) => Uuid::try_parse(p.trim())
            .map_err(|_| ApiError::BadRequest("Invalid prediction_id format. Must be a valid UUID.".into()))?,
        None | Some(Value::Null) => {
            return Err(ApiError::Unprocessable(vec![body_error(
                "prediction_id",
                "missing",
                "Field required",
                Value::Null,
            )]));
        }
        Some(v) => {
            return Err(ApiError::Unprocessable(vec![body_error(
                "prediction_id",
                "string_type",
                "Input should be a valid string",
                v.clone(),
            )]));
        }
    };
    let mut f = Fields::new(&body);
    let lot_size = f.number_or("lot_size", gt(Decimal::ZERO, Decimal::ONE_HUNDRED), Some(Decimal::new(1, 1)));
    let connection = f.string_max("connection_id", false, 64);
    f.finish()?;
    let connection_id = connection
        .map(|c| Uuid::try_parse(c.trim()).map_err(|_| ApiError::BadRequest("Invalid connection_id format".into())))
        .transpose()?;
    let input = ExecuteInput { prediction_id, lot_size: lot_size.unwrap_or(Decimal::new(1, 1)), connection_id };
    let (reply, p) = s.ml.execute(&user, id, input).await?;
    let trade = reply.body.get("trade").cloned().unwrap_or(Value::Null);
    let mt5 = reply.body.get("mt5_execution").cloned().unwrap_or(Value::Null);
    let delivered = reply.status == 201;
    let pick = |k: &str| p.prediction.get(k).cloned().unwrap_or(Value::Null);
    let body = json!({
        "success": delivered,
        "trade_id": trade.get("id").cloned().unwrap_or(Value::Null),
        "prediction_id": prediction_id,
        "direction": p.record.direction,
        "entry_price": pick("entry_price"),
        "stop_loss": pick("stop_loss"),
        "take_profit": pick("take_profit"),
        "lot_size": trade.get("lot_size").cloned().unwrap_or(Value::Null),
        "mt5_execution": mt5.clone(),
        "connection_id": mt5.get("connection_id").cloned().unwrap_or(Value::Null),
        "trade": trade,
    });
    let status = if delivered { StatusCode::OK } else { StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK) };
    Ok((status, axum::Json(body)).into_response())
}

async fn import_default(user: CurrentUser, State(s): State<MlState>, Path(sym): Path<String>) -> ApiResult<Response> {
    let sym = default_symbol(&sym)
        .ok_or_else(|| ApiError::BadRequest("Invalid symbol. Supported: XAUUSD, EURUSD, BTCUSD".into()))?;
    let m = s.ml.import_default(user.id, sym).await?;
    Ok((StatusCode::CREATED, axum::Json(model_view(&m))).into_response())
}

async fn active_bots(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
    let bots = s.ml.active_bots(user.id).await?;
    let total: usize = bots.iter().map(|b| b.today_signals).sum();
    Ok(axum::Json(json!({
        "active_count": bots.len(),
        "bots": bots.iter().map(bot_view).collect::<Vec<_>>(),
        "total_signals_today": total,
    }))
    .into_response())
}

// ------------------------------------------------------------------ auto-trading

/// A cycle's summary as `viewer` sees it: the counts, and only the error lines of their own models.
fn cycle_view(r: &CycleResult, viewer: Uuid) -> Value {
    json!({
        "started_at": iso(r.started_at),
        "models_checked": r.models_checked,
        "predictions_generated": r.predictions_generated,
        "trades_executed": r.trades_executed,
        "errors": r.errors_seen_by(viewer),
        "completed_at": iso(r.completed_at),
        "origin": r.origin,
        "run_id": r.run_id,
    })
}

async fn trigger_auto_trading(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
    let body = match s.ml.trigger_auto_trading(user.id).await? {
        CycleOutcome::Completed(r) => json!({"status": "completed", "result": cycle_view(&r, user.id)}),
        CycleOutcome::AlreadyRunning => json!({"status": "skipped", "reason": "already_running"}),
    };
    Ok(axum::Json(body).into_response())
}

async fn auto_trading_status(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
    let st = s.ml.auto_trading_status(user.id).await?;
    let defaults = AutoTradingSettings::default();
    let models: Vec<Value> = st
        .models
        .iter()
        .map(|m| {
            let mut v = json!({"id": m.model.id, "name": m.model.name, "symbol": m.model.symbol,
                               "predictions_today": m.predictions_today, "trades_today": m.trades_today});
            if let (Value::Object(o), Value::Object(a)) = (&mut v, m.model.auto_trading.to_json()) {
                o.extend(a);
            }
            v
        })
        .collect();
    Ok(axum::Json(json!({
        "scheduler_running": true,
        "cycle_running": st.running,
        "interval_minutes": INTERVAL_MINUTES,
        "active_models": st.models.len(),
        "predictions_today": st.models.iter().map(|m| m.predictions_today).sum::<usize>(),
        "trades_today": st.models.iter().map(|m| u64::from(m.trades_today)).sum::<u64>(),
        "last_run": opt_iso(st.cycle.last_run),
        "last_result": st.cycle.result().map(|r| cycle_view(&r, user.id)),
        "config": {
            "default_confidence_threshold": defaults.confidence_threshold,
            "default_max_trades_per_day": defaults.max_trades_per_day,
            "default_cooldown_minutes": defaults.cooldown_minutes,
            "default_lot_size": defaults.to_json()["lot_size"],
        },
        "models": models,
    }))
    .into_response())
}

/// Public: no token (monitoring).
async fn auto_trading_health(State(s): State<MlState>) -> ApiResult<Response> {
    let h = s.ml.auto_trading_health().await?;
    Ok(axum::Json(json!({
        "status": if h.is_stale { "stale" } else { "healthy" },
        "is_running": h.is_running,
        "last_run": opt_iso(h.last_run),
        "loaded_models_in_cache": h.loaded_models,
        "is_stale": h.is_stale,
        "stale_after_minutes": STALE_AFTER_MINUTES,
        "checks": {
            "scheduler_initialized": true,
            "last_run_recent": !h.is_stale,
            "not_stuck": h.not_stuck,
        },
        "timestamp": iso(h.now),
    }))
    .into_response())
}

// ------------------------------------------------------------------ ml-models

/// A symbol of the `/ml-models` routes: any catalogue symbol (400 otherwise).
fn files_symbol(raw: &str) -> ApiResult<&'static str> {
    symbol(raw)
}

async fn model_files_all(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
    s.ml.ensure_defaults().await?;
    let mut out = Map::new();
    for sym in DEFAULT_SYMBOLS {
        let files = s.ml.model_files(user.id, sym).await?;
        out.insert(sym.to_owned(), Value::Array(files.iter().map(file_view).collect()));
    }
    Ok(axum::Json(Value::Object(out)).into_response())
}

async fn model_files_symbol(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(sym): Path<String>,
) -> ApiResult<Response> {
    let sym = files_symbol(&sym)?;
    s.ml.ensure_defaults().await?;
    let files = s.ml.model_files(user.id, sym).await?;
    let system = s.ml.system_default(sym).await?;
    let effective = s.ml.effective_default(user.id, sym).await?;
    Ok(axum::Json(json!({
        "symbol": sym,
        "models": files.iter().map(file_view).collect::<Vec<_>>(),
        "system_default": system.as_ref().map(default_view),
        "user_default": effective.as_ref().map(default_view),
    }))
    .into_response())
}

async fn defaults_all(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
    s.ml.ensure_defaults().await?;
    let mut out = Map::new();
    for sym in DEFAULT_SYMBOLS {
        if let Some(d) = s.ml.effective_default(user.id, sym).await? {
            out.insert(sym.to_owned(), default_view(&d));
        }
    }
    Ok(axum::Json(Value::Object(out)).into_response())
}

async fn default_one(user: CurrentUser, State(s): State<MlState>, Path(sym): Path<String>) -> ApiResult<Response> {
    let sym = files_symbol(&sym)?;
    s.ml.ensure_defaults().await?;
    let d =
        s.ml.effective_default(user.id, sym)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("No default model configured for symbol: {sym}")))?;
    let mut v = default_view(&d);
    if !d.is_user_override
        && let (Value::Object(m), Some(rec)) = (&mut v, s.ml.default_record(sym).await?)
    {
        m.insert("data_source".into(), json_of(&rec.data_source));
        m.insert("version".into(), json!(rec.version));
    }
    Ok(axum::Json(v).into_response())
}

async fn set_default(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(sym): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let sym = files_symbol(&sym)?;
    let mut errors = Vec::new();
    let mut field = |k: &str| match body.get(k) {
        Some(Value::String(v)) if !v.is_empty() && v.len() <= MAX_MODEL_PATH => Some(v.clone()),
        None | Some(Value::Null) => {
            errors.push(body_error(k, "missing", "Field required", Value::Null));
            None
        }
        Some(v) => {
            errors.push(body_error(
                k,
                "string_type",
                format!("Input should be a string of 1-{MAX_MODEL_PATH} characters"),
                v.clone(),
            ));
            None
        }
    };
    let (path, id) = (field("model_path"), field("model_id"));
    let (Some(path), Some(id)) = (path, id) else { return Err(ApiError::Unprocessable(errors)) };
    let d = s.ml.set_override(user.id, sym, &id, &path).await?;
    Ok(axum::Json(default_view(&d)).into_response())
}

async fn reset_default(user: CurrentUser, State(s): State<MlState>, Path(sym): Path<String>) -> ApiResult<Response> {
    let sym = files_symbol(&sym)?;
    if !s.ml.delete_override(user.id, sym).await? {
        return Err(ApiError::NotFound(format!("No user override found for symbol: {sym}")));
    }
    Ok(axum::Json(json!({"status": "success", "message": format!("Reset to system default for {sym}")}))
        .into_response())
}

async fn retrain_default(user: CurrentUser, State(s): State<MlState>, Path(sym): Path<String>) -> ApiResult<Response> {
    if !user.is_admin() {
        return Err(ApiError::Forbidden("Admin access required".into()));
    }
    let sym = default_symbol(&sym)
        .ok_or_else(|| ApiError::BadRequest("Invalid symbol. Supported: XAUUSD, EURUSD, BTCUSD".into()))?;
    let d = s.ml.retrain_default(sym).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"symbol": sym, "status": "queued", "job_id": d.job.job_id})))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e =
            parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&json!({"hyperparameters": {"trees": 5}})))
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
        assert_eq!(
            (p.iterations, p.max_depth, p.learning_rate, p.subsample, p.min_leaf_weight),
            (50, 4, 0.05, 0.8, 3.0)
        );
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
        let e =
            parse_config(ModelKind::GradientBoosting, Timeframe::H1, Some(&json!({"n_estimatorz": 5}))).unwrap_err();
        assert_eq!((e[0].kind.as_str(), &e[0].loc[2]), ("extra_forbidden", &json!("n_estimatorz")));
    }

    #[test]
    fn model_bodies() {
        let ok = parse_model(json!({"name": " m ", "model_type": "xgboost", "symbol": "eurusd"}).as_object().unwrap())
            .unwrap();
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
        assert_eq!(
            msg(json!({"start_date": "2018-01-01", "end_date": "2017-01-01"})),
            "End date must be after start date"
        );
        assert_eq!(
            msg(json!({"start_date": "2010-01-01", "end_date": "2017-01-01"})),
            "Date range cannot exceed 2 years"
        );
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
}
