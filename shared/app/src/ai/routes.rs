//! HTTP routes of the AI supervisor's computed answers (contract §2.10; shared by the `ai` Lambda and the local
//! gateway). The one place an [`AiError`] becomes a status and a `{"detail": …}` body.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/ai/analysis/daily` | 200 `{summary, generated_at, computed: true, symbols: [...]}` |
//! | `GET /api/v1/ai/analysis/{symbol}` | 200 `{symbol, analysis, generated_at, computed: true, details}`; 400 unknown symbol or no candles |
//! | `GET /api/v1/ai/recommendations` | 200 `{recommendations, trade_stats {total_trades, win_rate, total_pnl}, trading_style, avg_trade_duration_hours, session_preferences, generated_at, computed: true, review}` |

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::error::AiError;
use super::service::{AiService, SymbolAnalysis};
use crate::auth::{Authenticator, CurrentUser, RequestLimits, limit_requests};
use crate::http::fields::instrument;
use crate::http::{ApiError, ApiResult};
use crate::ml::error::MlError;
use crate::wire::iso;

/// State of the AI routes.
#[derive(Clone)]
pub struct AiState {
    pub auth: Authenticator,
    pub ai: AiService,
}

impl FromRef<AiState> for Authenticator {
    fn from_ref(s: &AiState) -> Self {
        s.auth.clone()
    }
}

/// The routes under `/api/v1/ai`.
pub fn router(state: AiState, limits: Option<RequestLimits>) -> Router {
    let mut routes = Router::new()
        .route("/ai/analysis/daily", get(daily))
        .route("/ai/analysis/{symbol}", get(symbol))
        .route("/ai/recommendations", get(recommendations))
        .with_state(state);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    Router::new().nest("/api/v1", routes)
}

impl From<AiError> for ApiError {
    fn from(e: AiError) -> Self {
        match e {
            AiError::NoData(m) => ApiError::BadRequest(m),
            AiError::Dataset(d) => MlError::Dataset(d).into(),
            AiError::Trading(t) => t.into(),
            AiError::Store(s) => s.into(),
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn symbol_view(a: &SymbolAnalysis) -> Value {
    json!({
        "symbol": a.symbol,
        "timeframe": crate::ml::store::tf_name(a.timeframe),
        "analysis": a.text,
        "generated_at": iso(a.generated_at),
        "computed": true,
        "details": to_json(&a.analysis),
    })
}

async fn daily(user: CurrentUser, State(s): State<AiState>) -> ApiResult<Response> {
    let d = s.ai.daily(user.id).await?;
    Ok(axum::Json(json!({
        "summary": d.summary,
        "generated_at": iso(d.generated_at),
        "computed": true,
        "symbols": d.symbols.iter().map(symbol_view).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn symbol(user: CurrentUser, State(s): State<AiState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let symbol = instrument(raw.trim())?.symbol;
    Ok(axum::Json(symbol_view(&s.ai.symbol(user.id, symbol).await?)).into_response())
}

async fn recommendations(user: CurrentUser, State(s): State<AiState>) -> ApiResult<Response> {
    let r = s.ai.recommendations(user.id).await?;
    let review = to_json(&r.review);
    Ok(axum::Json(json!({
        "recommendations": r.text,
        "trade_stats": {
            "total_trades": review["total_trades"],
            "win_rate": review["win_rate"],
            "total_pnl": crate::wire::num(r.review.total_pnl),
        },
        "trading_style": review["trading_style"],
        "avg_trade_duration_hours": review["avg_trade_duration_hours"],
        "session_preferences": review["session_preferences"],
        "generated_at": iso(r.generated_at),
        "computed": true,
        "review": review,
    }))
    .into_response())
}
