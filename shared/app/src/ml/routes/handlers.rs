//! The ML route handlers: parse, call the use case, answer with a view and a status.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::parse::{body_error, model_id, parse_candles, parse_model, parse_train, query_error, symbol, timeframe};
use super::views::{
    bot_view, dataset_view, default_view, file_view, import_view, json_of, model_view, prediction_view, status_str,
    status_view, upload_view,
};
use super::{MAX_MODEL_PATH, MlState, NEXT_CURSOR_HEADER};
use crate::auth::CurrentUser;
use crate::http::fields::{Fields, gt};
use crate::http::{ApiError, ApiJson, ApiQuery, ApiResult, FieldError, optional_object};
use crate::ml::auto::{AutoTradingSettings, CycleOutcome, CycleResult, INTERVAL_MINUTES, STALE_AFTER_MINUTES};
use crate::ml::defaults::{DEFAULT_SYMBOLS, default_symbol};
use crate::ml::error::MlError;
use crate::ml::import::ImportRequest;
use crate::ml::service::{ExecuteInput, PredictCandles};
use crate::ml::store::{Owner, tf_name};
use crate::ports::Cursor;
use crate::trading::orders::Delivery;
use crate::wire::{iso, opt_iso};

// ------------------------------------------------------------------ datasets

#[derive(Debug, Default, Deserialize)]
pub struct DatasetParams {
    pub symbol: Option<String>,
    pub timeframe: Option<String>,
    pub scope: Option<String>,
}

/// The owner a dataset route acts on: the caller, or (admins, `?scope=system`) the platform.
pub(super) fn scope_owner(user: &CurrentUser, scope: Option<&str>) -> ApiResult<Owner> {
    match scope.map(str::trim) {
        None | Some("") | Some("user") => Ok(Owner::User(user.id)),
        Some("system") if user.is_admin() => Ok(Owner::System),
        Some("system") => Err(ApiError::Forbidden("Admin access required".into())),
        Some(other) => Err(query_error("scope", "scope must be user or system", other)),
    }
}

pub(super) async fn upload_dataset(
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

pub(super) async fn list_datasets(
    user: CurrentUser,
    State(s): State<MlState>,
    ApiQuery(q): ApiQuery<DatasetParams>,
) -> ApiResult<Response> {
    let owner = scope_owner(&user, q.scope.as_deref())?;
    let list = s.ml.datasets.list(owner).await.map_err(MlError::from)?;
    Ok(axum::Json(list.iter().map(dataset_view).collect::<Vec<_>>()).into_response())
}

pub(super) async fn delete_dataset(
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

/// `GET /ml/datasets/{symbol}/{timeframe}/candles`.
#[derive(Debug, Default, Deserialize)]
pub struct CandlesParams {
    pub limit: Option<String>,
    pub scope: Option<String>,
}

/// Largest `limit` of the candles route.
pub const MAX_CANDLES_PAGE: u32 = 2_000;

/// The newest `limit` bars (default 300) of a dataset, oldest first: what a chart draws. 404 without the dataset.
pub(super) async fn dataset_candles(
    user: CurrentUser,
    State(s): State<MlState>,
    Path((sym, tf)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<CandlesParams>,
) -> ApiResult<Response> {
    let owner = scope_owner(&user, q.scope.as_deref())?;
    let sym = symbol(&sym)?;
    let tf = timeframe(&tf, &["path", "timeframe"])?;
    let limit = int_param(&q.limit, "limit", 300, 1..=MAX_CANDLES_PAGE)? as usize;
    let Some(tail) = s.ml.datasets.tail(owner, sym, tf, limit).await.map_err(MlError::from)? else {
        return Err(ApiError::NotFound("Dataset not found".into()));
    };
    let all = tail.candles.as_slice();
    let bars = &all[all.len().saturating_sub(limit)..];
    let candles: Vec<Value> = bars
        .iter()
        .map(|c| {
            json!({"time": iso(c.time), "open": c.open, "high": c.high, "low": c.low, "close": c.close, "volume": c.volume})
        })
        .collect();
    Ok(axum::Json(json!({
        "symbol": sym,
        "timeframe": tf_name(tf),
        "source": tail.record.source,
        "bars": tail.record.bars,
        "revision": tail.record.rev,
        "candles": candles,
    }))
    .into_response())
}

/// `POST /ml/datasets/from-connector`.
#[derive(Debug, Deserialize)]
pub struct FromConnectorBody {
    pub symbol: String,
    pub timeframe: String,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub connection_id: Option<Uuid>,
}

/// Starts (or resumes) an import of the connector's price history into the caller's dataset: 202 with the import.
pub(super) async fn import_from_connector(
    user: CurrentUser,
    State(s): State<MlState>,
    ApiJson(b): ApiJson<FromConnectorBody>,
) -> ApiResult<Response> {
    let sym = symbol(&b.symbol)?;
    let tf = timeframe(&b.timeframe, &["body", "timeframe"])?;
    let req = ImportRequest { symbol: sym, timeframe: tf, start: b.start, end: b.end, connection_id: b.connection_id };
    req.check(s.ml.clock.now()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let record = s.ml.imports.start(user.id, req).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(import_view(&record))).into_response())
}

/// `GET /ml/datasets/imports/{id}`.
pub(super) async fn import_status(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = Uuid::try_parse(&id)
        .map_err(|_| ApiError::BadRequest("Invalid import id format. Must be a valid UUID.".into()))?;
    let record = s.ml.imports.get(user.id, id).await?;
    Ok(axum::Json(import_view(&record)).into_response())
}

// ------------------------------------------------------------------ models

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub skip: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

pub(super) fn int_param(
    v: &Option<String>,
    name: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> ApiResult<u32> {
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

pub(super) async fn list_models(
    user: CurrentUser,
    State(s): State<MlState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let skip = int_param(&q.skip, "skip", 0, 0..=100_000)?;
    let limit = int_param(&q.limit, "limit", 20, 1..=1_000)?;
    let models = s.ml.list_models(user.id, skip as usize, limit as usize).await?;
    Ok(axum::Json(models.iter().map(model_view).collect::<Vec<_>>()).into_response())
}

pub(super) async fn create_model(
    user: CurrentUser,
    State(s): State<MlState>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let input = parse_model(&body)?;
    let m = s.ml.create_model(user.id, input).await?;
    Ok((StatusCode::CREATED, axum::Json(model_view(&m))).into_response())
}

pub(super) async fn get_model(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let m = s.ml.get_model(user.id, model_id(&id)?).await?;
    Ok(axum::Json(model_view(&m)).into_response())
}

pub(super) async fn update_model(
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

pub(super) async fn delete_model(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = model_id(&id)?;
    s.ml.delete_model(user.id, id).await?;
    Ok(axum::Json(json!({"deleted": id})).into_response())
}

pub(super) async fn train(
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

pub(super) async fn status(user: CurrentUser, State(s): State<MlState>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = s.ml.get_model(user.id, model_id(&id)?).await?;
    Ok(axum::Json(status_view(&m)).into_response())
}

pub(super) async fn predict(
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

pub(super) async fn predictions(
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

pub(super) async fn activate(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let m = s.ml.activate(user.id, model_id(&id)?).await?;
    Ok(axum::Json(json!({"id": m.id, "status": "active", "is_active": true, "symbol": m.symbol,
        "message": "Model activated for live trading"}))
    .into_response())
}

pub(super) async fn deactivate(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let m = s.ml.deactivate(user.id, model_id(&id)?).await?;
    Ok(axum::Json(json!({"id": m.id, "status": "inactive", "is_active": false,
        "message": "Model deactivated"}))
    .into_response())
}

pub(super) async fn execute(
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
    // Sent to the connector: 200, `success: true`; delivery uncertain: 202; the same command already in flight
    // (an idempotent repeat): 200, `success: false`.
    let (delivered, status) = match reply.delivery {
        Delivery::Sent => (true, StatusCode::OK),
        Delivery::Uncertain => (false, StatusCode::ACCEPTED),
        Delivery::InFlight => (false, StatusCode::OK),
    };
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
    Ok((status, axum::Json(body)).into_response())
}

pub(super) async fn import_default(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(sym): Path<String>,
) -> ApiResult<Response> {
    let sym = default_symbol(&sym)
        .ok_or_else(|| ApiError::BadRequest("Invalid symbol. Supported: XAUUSD, EURUSD, BTCUSD".into()))?;
    let m = s.ml.import_default(user.id, sym).await?;
    Ok((StatusCode::CREATED, axum::Json(model_view(&m))).into_response())
}

pub(super) async fn active_bots(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
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
pub(super) fn cycle_view(r: &CycleResult, viewer: Uuid) -> Value {
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

pub(super) async fn trigger_auto_trading(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
    let body = match s.ml.trigger_auto_trading(user.id).await? {
        CycleOutcome::Completed(r) => json!({"status": "completed", "result": cycle_view(&r, user.id)}),
        CycleOutcome::AlreadyRunning => json!({"status": "skipped", "reason": "already_running"}),
    };
    Ok(axum::Json(body).into_response())
}

pub(super) async fn auto_trading_status(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
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
pub(super) async fn auto_trading_health(State(s): State<MlState>) -> ApiResult<Response> {
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
pub(super) fn files_symbol(raw: &str) -> ApiResult<&'static str> {
    symbol(raw)
}

pub(super) async fn model_files_all(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
    s.ml.ensure_defaults().await?;
    let mut out = Map::new();
    for sym in DEFAULT_SYMBOLS {
        let files = s.ml.model_files(user.id, sym).await?;
        out.insert(sym.to_owned(), Value::Array(files.iter().map(file_view).collect()));
    }
    Ok(axum::Json(Value::Object(out)).into_response())
}

pub(super) async fn model_files_symbol(
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

pub(super) async fn defaults_all(user: CurrentUser, State(s): State<MlState>) -> ApiResult<Response> {
    s.ml.ensure_defaults().await?;
    let mut out = Map::new();
    for sym in DEFAULT_SYMBOLS {
        if let Some(d) = s.ml.effective_default(user.id, sym).await? {
            out.insert(sym.to_owned(), default_view(&d));
        }
    }
    Ok(axum::Json(Value::Object(out)).into_response())
}

pub(super) async fn default_one(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(sym): Path<String>,
) -> ApiResult<Response> {
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

pub(super) async fn set_default(
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

pub(super) async fn reset_default(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(sym): Path<String>,
) -> ApiResult<Response> {
    let sym = files_symbol(&sym)?;
    if !s.ml.delete_override(user.id, sym).await? {
        return Err(ApiError::NotFound(format!("No user override found for symbol: {sym}")));
    }
    Ok(axum::Json(json!({"status": "success", "message": format!("Reset to system default for {sym}")}))
        .into_response())
}

pub(super) async fn retrain_default(
    user: CurrentUser,
    State(s): State<MlState>,
    Path(sym): Path<String>,
) -> ApiResult<Response> {
    if !user.is_admin() {
        return Err(ApiError::Forbidden("Admin access required".into()));
    }
    let sym = default_symbol(&sym)
        .ok_or_else(|| ApiError::BadRequest("Invalid symbol. Supported: XAUUSD, EURUSD, BTCUSD".into()))?;
    let d = s.ml.retrain_default(sym).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"symbol": sym, "status": "queued", "job_id": d.job.job_id})))
        .into_response())
}
