//! Handlers of `/backtest/run`, `/backtest/sessions/*` and `/backtest/optimize/*` (contract §2.7).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use nusatrade_backtest::strategy::parse_timeframe;
use serde::Deserialize;
use serde_json::{Value, json};

use super::strategies::timeframe_error;
use super::views::{session_view, trade_view};
use super::{BacktestState, NEXT_CURSOR_HEADER, path_id};
use crate::auth::CurrentUser;
use crate::backtest::data::DataSource;
use crate::backtest::optimize::{MonteCarloRequest, OptimizeRequest};
use crate::backtest::runs::{MAX_SESSIONS_PAGE, RunRequest};
use crate::backtest::store::SessionStatus;
use crate::http::fields::instrument;
use crate::http::{ApiError, ApiJson, ApiQuery, ApiResult, FieldError};
use crate::ports::Cursor;

/// Body of `POST /backtest/run` (and the data part of `POST /backtest/optimize`).
#[derive(Debug, Deserialize)]
pub struct RunBody {
    pub strategy_id: String,
    pub symbol: Option<String>,
    pub timeframe: Option<String>,
    pub start_date: String,
    pub end_date: String,
    pub initial_balance: Option<f64>,
    pub commission: Option<f64>,
    pub slippage: Option<f64>,
    pub lot_size: Option<f64>,
    pub spread_pips: Option<f64>,
    pub leverage: Option<f64>,
    pub data: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
    /// One of the caller's trained models, whose signals the rules read (`ml_signal`, `ml_confidence`).
    pub model_id: Option<String>,
}

/// Longest date range of a run, days.
pub const MAX_RANGE_DAYS: i64 = 366 * 50;
/// Most parameter overrides.
pub const MAX_PARAMS: usize = 30;

fn range_error(field: &str, msg: String, input: f64) -> FieldError {
    FieldError::new("value_error", &["body", field], msg, json!(input))
}

fn date(field: &str, raw: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|e| {
        ApiError::BadRequest(format!(
            "{field}: time data {:?} does not match format '%Y-%m-%d' ({e})",
            raw.chars().take(32).collect::<String>()
        ))
    })
}

/// Validates a run body: every range error at once (422), bad dates 400 as the original.
pub fn run_request(body: RunBody) -> ApiResult<RunRequest> {
    let strategy_id = path_id(&body.strategy_id, "strategy")?;
    let model_id = body.model_id.as_deref().map(|m| path_id(m, "model")).transpose()?;
    let symbol = instrument(body.symbol.as_deref().unwrap_or("EURUSD").trim())?.symbol;
    let tf_raw = body.timeframe.as_deref().unwrap_or("H1");
    let timeframe = parse_timeframe(tf_raw).ok_or_else(|| timeframe_error(tf_raw))?;
    let start_date = date("start_date", &body.start_date)?;
    let end_date = date("end_date", &body.end_date)?;
    if end_date < start_date {
        return Err(ApiError::BadRequest(format!("end_date {end_date} is before start_date {start_date}")));
    }
    if (end_date - start_date).num_days() > MAX_RANGE_DAYS {
        return Err(ApiError::BadRequest(format!("the date range is longer than {MAX_RANGE_DAYS} days")));
    }
    let mut errors = Vec::new();
    let mut num = |field: &str, v: Option<f64>, default: f64, min: f64, min_inclusive: bool, max: f64| {
        let x = v.unwrap_or(default);
        let low_ok = if min_inclusive { x >= min } else { x > min };
        if !x.is_finite() || !low_ok || x > max {
            let op = if min_inclusive { ">=" } else { ">" };
            errors.push(range_error(field, format!("{field} must be {op} {min} and <= {max}"), x));
        }
        x
    };
    let initial_balance = num("initial_balance", body.initial_balance, 10_000.0, 0.0, false, 1e9);
    let commission = num("commission", body.commission, 0.0, 0.0, true, 1_000.0);
    let slippage = num("slippage", body.slippage, 0.0001, 0.0, true, 1_000.0);
    let lot_size = num("lot_size", body.lot_size, 0.1, 0.0, false, 100.0);
    let spread_pips = num("spread_pips", body.spread_pips, 1.0, 0.0, true, 1_000.0);
    let leverage = num("leverage", body.leverage, 100.0, 1.0, true, 1_000.0);
    let data = match body.data.as_deref() {
        None => DataSource::Stored,
        Some(raw) => DataSource::parse(raw).unwrap_or_else(|| {
            errors.push(FieldError::new("enum", &["body", "data"], "data must be stored or generated", json!(raw)));
            DataSource::Stored
        }),
    };
    if body.params.len() > MAX_PARAMS {
        errors.push(FieldError::new(
            "too_long",
            &["body", "params"],
            format!("at most {MAX_PARAMS} parameters"),
            Value::Null,
        ));
    }
    for (name, v) in &body.params {
        if !v.is_finite() || name.len() > 64 {
            errors.push(FieldError::new("value_error", &["body", "params", name], "a finite number", json!(v)));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Unprocessable(errors));
    }
    Ok(RunRequest {
        strategy_id,
        symbol,
        timeframe,
        start_date,
        end_date,
        initial_balance,
        commission,
        slippage,
        spread_pips,
        lot_size,
        leverage,
        data,
        params: body.params,
        model_id,
    })
}

pub(super) async fn run(
    user: CurrentUser,
    State(s): State<BacktestState>,
    ApiJson(body): ApiJson<RunBody>,
) -> ApiResult<Response> {
    let req = run_request(body)?;
    let view = s.backtests.run(user.id, req).await?;
    let status = if view.session.status == SessionStatus::Queued { StatusCode::ACCEPTED } else { StatusCode::OK };
    let mut body = super::views::result_view(&view.session, view.result.as_ref(), true);
    if let Some(m) = body.as_object_mut() {
        m.insert("symbol".into(), json!(view.session.settings.symbol));
        m.insert("timeframe".into(), json!(view.session.settings.timeframe));
    }
    Ok((status, axum::Json(body)).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

pub(super) async fn sessions(
    user: CurrentUser,
    State(s): State<BacktestState>,
    ApiQuery(q): ApiQuery<SessionsQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_SESSIONS_PAGE).contains(&limit) {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "less_than_equal",
            &["query", "limit"],
            format!("limit must be between 1 and {MAX_SESSIONS_PAGE}"),
            json!(limit),
        )]));
    }
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Cursor::parse(c).map_err(|_| {
            ApiError::Unprocessable(vec![FieldError::new(
                "value_error",
                &["query", "cursor"],
                "Invalid pagination cursor",
                json!(c),
            )])
        })?),
    };
    let (list, next) = s.backtests.sessions(user.id, limit, cursor).await?;
    let views: Vec<Value> = list
        .into_iter()
        .map(|session| session_view(&crate::backtest::runs::SessionView { session, result: None }, false))
        .collect();
    let mut resp = axum::Json(views).into_response();
    if let Some(v) = next.and_then(|c| HeaderValue::from_str(c.as_str()).ok()) {
        resp.headers_mut().insert(NEXT_CURSOR_HEADER, v);
    }
    Ok(resp)
}

pub(super) async fn session(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let view = s.backtests.session_with_result(user.id, path_id(&id, "session")?).await?;
    Ok(axum::Json(session_view(&view, true)).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct TradesQuery {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Most trades per page of `GET /backtest/sessions/{id}/trades`.
pub const MAX_TRADES_PAGE: usize = 1_000;

pub(super) async fn trades(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TradesQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_TRADES_PAGE).contains(&limit) {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "less_than_equal",
            &["query", "limit"],
            format!("limit must be between 1 and {MAX_TRADES_PAGE}"),
            json!(limit),
        )]));
    }
    let view = s.backtests.session_with_result(user.id, path_id(&id, "session")?).await?;
    let Some(r) = view.result else {
        return Ok(axum::Json(json!({"trades": [], "equity_curve": [], "total": 0})).into_response());
    };
    let offset = q.offset.unwrap_or(0).min(r.trades.len());
    let page: Vec<Value> =
        r.trades[offset..].iter().take(limit).map(|t| trade_view(&view.session.settings.symbol, t)).collect();
    let equity: Vec<Value> = r.equity.iter().map(|v| if v.is_finite() { json!(v) } else { Value::Null }).collect();
    Ok(axum::Json(json!({"trades": page, "equity_curve": equity, "total": r.trades.len(), "offset": offset}))
        .into_response())
}

fn svg(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=60"));
    r
}

pub(super) async fn chart(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let text = s.backtests.chart(user.id, path_id(&id, "session")?).await?;
    Ok(svg(text))
}

pub(super) async fn monte_carlo(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MonteCarloRequest>,
) -> ApiResult<Response> {
    let out = s.backtests.monte_carlo(user.id, path_id(&id, "session")?, body).await?;
    Ok(axum::Json(out).into_response())
}

/// Body of `POST /backtest/optimize`: a run's fields plus the search.
#[derive(Debug, Deserialize)]
pub struct OptimizeBody {
    #[serde(flatten)]
    pub run: RunBody,
    #[serde(flatten)]
    pub search: OptimizeRequest,
}

pub(super) async fn optimize(
    user: CurrentUser,
    State(s): State<BacktestState>,
    ApiJson(body): ApiJson<OptimizeBody>,
) -> ApiResult<Response> {
    let run = run_request(body.run)?;
    let out = s.backtests.start_optimization(user.id, run, body.search).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(out)).into_response())
}

pub(super) async fn optimization(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let out = s.backtests.optimization(user.id, path_id(&id, "optimization")?).await?;
    Ok(axum::Json(out).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct HeatmapQuery {
    x: Option<String>,
    y: Option<String>,
}

pub(super) async fn heatmap(
    user: CurrentUser,
    State(s): State<BacktestState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HeatmapQuery>,
) -> ApiResult<Response> {
    let text = s.backtests.heatmap(user.id, path_id(&id, "optimization")?, q.x.as_deref(), q.y.as_deref()).await?;
    Ok(svg(text))
}
