//! HTTP routes of strategies (contract §2.5) and backtests (§2.7), shared by the Lambda functions and the local
//! gateway. The `strategies` function serves [`strategies_router`], the `backtest` function [`backtest_router`].
//! This is the one place a [`BacktestError`] becomes a status and a `{"detail": …}` body.

mod runs;
mod strategies;
pub(crate) mod views;

use axum::Router;
use axum::extract::FromRef;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};
use serde_json::Value;
use uuid::Uuid;

use super::error::BacktestError;
use super::runs::BacktestService;
use crate::auth::{Authenticator, RequestLimits, limit_requests};
use crate::http::{ApiError, ApiResult, FieldError};
use crate::ml::datasets::DatasetError;
use crate::ml::error::MlError;
use crate::ports::BlobError;

/// Response header carrying the next page's cursor of `GET /backtest/sessions`.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// State of the strategy and backtest routes.
#[derive(Clone)]
pub struct BacktestState {
    pub auth: Authenticator,
    pub backtests: BacktestService,
}

impl FromRef<BacktestState> for Authenticator {
    fn from_ref(s: &BacktestState) -> Self {
        s.auth.clone()
    }
}

fn limited(routes: Router<BacktestState>, state: BacktestState, limits: Option<RequestLimits>) -> Router {
    let mut routes = routes.with_state(state);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    Router::new().nest("/api/v1", routes)
}

/// The routes under `/api/v1/strategies` (the `strategies` function).
pub fn strategies_router(state: BacktestState, limits: Option<RequestLimits>) -> Router {
    let routes = Router::new()
        .route("/strategies", get(strategies::list).post(strategies::create))
        .route("/strategies/validate", post(strategies::validate_body))
        .route("/strategies/{id}", get(strategies::get_one).put(strategies::update).delete(strategies::delete))
        .route("/strategies/{id}/toggle", patch(strategies::toggle))
        .route("/strategies/{id}/validate", post(strategies::validate))
        .route("/strategies/{id}/quick-backtest", post(strategies::quick_backtest))
        .route("/strategies/templates/{name}", get(strategies::template))
        .route("/strategies/templates/{name}/clone", post(strategies::clone_template));
    limited(routes, state, limits)
}

/// The routes under `/api/v1/backtest` (the `backtest` function).
pub fn backtest_router(state: BacktestState, limits: Option<RequestLimits>) -> Router {
    use strategies as s;
    let routes = Router::new()
        .route("/backtest/strategies", get(s::legacy_list).post(s::legacy_create))
        .route("/backtest/strategies/{id}", get(s::legacy_get).put(s::legacy_update).delete(s::delete))
        .route("/backtest/run", post(runs::run))
        .route("/backtest/sessions", get(runs::sessions))
        .route("/backtest/sessions/{id}", get(runs::session))
        .route("/backtest/sessions/{id}/trades", get(runs::trades))
        .route("/backtest/sessions/{id}/chart.svg", get(runs::chart))
        .route("/backtest/sessions/{id}/monte-carlo", post(runs::monte_carlo))
        .route("/backtest/optimize", post(runs::optimize))
        .route("/backtest/optimize/{id}", get(runs::optimization))
        .route("/backtest/optimize/{id}/heatmap.svg", get(runs::heatmap));
    limited(routes, state, limits)
}

/// A path id: 400 when malformed (the original answered 500), 404 when unknown comes from the use case.
fn path_id(raw: &str, what: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(raw.trim()).map_err(|_| ApiError::BadRequest(format!("Invalid {what} id: must be a UUID")))
}

fn blob_api_error(e: BlobError) -> ApiError {
    match e {
        BlobError::Unavailable(m) => ApiError::Unavailable(m),
        other => ApiError::Internal(other.to_string()),
    }
}

impl From<BacktestError> for ApiError {
    fn from(e: BacktestError) -> Self {
        match e {
            e @ (BacktestError::StrategyNotFound | BacktestError::SessionNotFound) => ApiError::NotFound(e.to_string()),
            e @ (BacktestError::TooManyStrategies(_) | BacktestError::AlreadyCloned) => {
                ApiError::BadRequest(e.to_string())
            }
            BacktestError::InvalidStrategy(problems) => ApiError::Unprocessable(
                problems.into_iter().map(|p| FieldError::new("strategy_invalid", &["body"], p, Value::Null)).collect(),
            ),
            BacktestError::InvalidRequest(m) | BacktestError::NoData(m) => ApiError::BadRequest(m),
            BacktestError::NotReady(m) => ApiError::Conflict(m),
            BacktestError::Corrupt(m) => ApiError::Internal(m),
            BacktestError::Dataset(d @ DatasetError::Busy) => ApiError::ServiceUnavailable(d.to_string()),
            BacktestError::Dataset(d) => MlError::Dataset(d).into(),
            BacktestError::Store(s) => s.into(),
            BacktestError::Blob(b) => blob_api_error(b),
            BacktestError::Queue(q) => ApiError::Unavailable(format!("backtest queue: {q}")),
        }
    }
}
