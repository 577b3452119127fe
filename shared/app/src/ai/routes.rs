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
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::chat::{MAX_CONVERSATIONS_PAGE, MAX_MESSAGE_CHARS};
use super::error::AiError;
use super::generate::{GeneratedStrategy, Progress, StrategyAsk};
use super::prompts::ContextType;
use super::service::{AiService, SymbolAnalysis};
use crate::auth::{Authenticator, CurrentUser, RequestLimits, limit_requests};
use crate::backtest::routes::views::spec_view;
use crate::http::fields::instrument;
use crate::http::{ApiError, ApiJson, ApiQuery, ApiResult, FieldError};
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
        .route("/ai/chat", post(chat))
        .route("/ai/conversations", get(conversations))
        .route("/ai/conversations/{id}", get(conversation).delete(delete_conversation))
        .route("/ai/generate-strategy", post(generate_strategy))
        .route("/ai/generate-strategy-stream", post(generate_strategy_stream))
        .with_state(state);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    Router::new().nest("/api/v1", routes)
}

impl From<AiError> for ApiError {
    fn from(e: AiError) -> Self {
        match e {
            AiError::NoData(m) | AiError::Refused(m) => ApiError::BadRequest(m),
            e @ AiError::BudgetExhausted { resets_at, .. } => {
                let retry_after = (resets_at - chrono::Utc::now()).num_seconds().max(1) as u64;
                ApiError::TooManyRequests { detail: e.to_string(), retry_after }
            }
            AiError::Model(e) => ApiError::ServiceUnavailable(format!("The language model could not answer: {e}")),
            e @ AiError::ConversationNotFound => ApiError::NotFound(e.to_string()),
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

/// Most preferred indicators in a strategy request.
pub const MAX_PREFERRED: usize = 20;

fn too_long(field: &str, max: usize, value: &str) -> ApiError {
    ApiError::Unprocessable(vec![FieldError::new(
        "string_too_long",
        &["body", field],
        format!("String should have at most {max} characters"),
        Value::from(value.chars().take(64).collect::<String>()),
    )])
}

fn conversation_id(raw: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::try_parse(raw.trim())
        .map_err(|_| ApiError::BadRequest("Invalid conversation id: must be a UUID".into()))
}

/// Body of `POST /ai/chat`.
#[derive(Debug, serde::Deserialize)]
pub struct ChatBody {
    message: String,
    conversation_id: Option<String>,
    context_type: Option<String>,
}

async fn chat(user: CurrentUser, State(s): State<AiState>, ApiJson(body): ApiJson<ChatBody>) -> ApiResult<Response> {
    let message = body.message.trim();
    if message.is_empty() {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "string_too_short",
            &["body", "message"],
            "String should have at least 1 character",
            Value::from(""),
        )]));
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(too_long("message", MAX_MESSAGE_CHARS, message));
    }
    let conversation = body.conversation_id.as_deref().filter(|c| !c.is_empty()).map(conversation_id).transpose()?;
    let kind = ContextType::parse(body.context_type.as_deref());
    let r = s.ai.chat(user.id, message, conversation, kind).await?;
    let mut out = json!({
        "reply": r.reply,
        "conversation_id": r.conversation_id.to_string(),
        "tokens_used": r.tokens_used,
        "computed": r.model.is_none(),
    });
    if let Some(m) = r.model {
        out["model"] = json!(m);
    }
    if let Some(e) = r.model_error {
        out["model_error"] = json!(e);
    }
    Ok(axum::Json(out).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ConversationsQuery {
    limit: Option<u32>,
}

async fn conversations(
    user: CurrentUser,
    State(s): State<AiState>,
    ApiQuery(q): ApiQuery<ConversationsQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_CONVERSATIONS_PAGE).contains(&limit) {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "less_than_equal",
            &["query", "limit"],
            format!("limit must be between 1 and {MAX_CONVERSATIONS_PAGE}"),
            json!(limit),
        )]));
    }
    let list = s.ai.conversations(user.id, limit).await?;
    Ok(axum::Json(
        list.iter()
            .map(|c| {
                json!({
                    "id": c.id.to_string(),
                    "title": if c.title.is_empty() { "Untitled" } else { c.title.as_str() },
                    "created_at": iso(c.created_at),
                    "message_count": c.message_count,
                })
            })
            .collect::<Vec<_>>(),
    )
    .into_response())
}

async fn conversation(user: CurrentUser, State(s): State<AiState>, Path(id): Path<String>) -> ApiResult<Response> {
    let messages = s.ai.messages(user.id, conversation_id(&id)?).await?;
    Ok(axum::Json(
        messages
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content, "created_at": iso(m.created_at)}))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

async fn delete_conversation(
    user: CurrentUser,
    State(s): State<AiState>,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    s.ai.delete_conversation(user.id, conversation_id(&raw)?).await?;
    Ok(axum::Json(json!({"deleted": raw})).into_response())
}

/// Body of the strategy generation routes (`AIStrategyRequest`).
#[derive(Debug, serde::Deserialize)]
pub struct StrategyRequest {
    prompt: String,
    symbol: Option<String>,
    timeframe: Option<String>,
    risk_profile: Option<String>,
    preferred_indicators: Option<Vec<String>>,
}

/// The request, validated (before any stream starts).
fn strategy_ask(body: StrategyRequest) -> ApiResult<StrategyAsk> {
    let prompt = body.prompt.trim();
    if prompt.is_empty() {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "string_too_short",
            &["body", "prompt"],
            "String should have at least 1 character",
            Value::from(""),
        )]));
    }
    if prompt.chars().count() > MAX_MESSAGE_CHARS {
        return Err(too_long("prompt", MAX_MESSAGE_CHARS, prompt));
    }
    let symbol = instrument(body.symbol.as_deref().unwrap_or("EURUSD").trim())?.symbol;
    let tf_raw = body.timeframe.as_deref().unwrap_or("H1");
    let tf = nusatrade_backtest::strategy::parse_timeframe(tf_raw).ok_or_else(|| {
        ApiError::Unprocessable(vec![FieldError::new(
            "enum",
            &["body", "timeframe"],
            "timeframe must be one of M1, M5, M15, M30, H1, H4, D1, W1 (or 1m … 1w)",
            Value::from(tf_raw.chars().take(16).collect::<String>()),
        )])
    })?;
    let profile_raw = body.risk_profile.as_deref().unwrap_or("moderate");
    let profile = nusatrade_backtest::strategy::RiskProfile::parse(profile_raw).ok_or_else(|| {
        ApiError::Unprocessable(vec![FieldError::new(
            "enum",
            &["body", "risk_profile"],
            "risk_profile must be conservative, moderate or aggressive",
            Value::from(profile_raw.chars().take(32).collect::<String>()),
        )])
    })?;
    let preferred = body.preferred_indicators.unwrap_or_default();
    if preferred.len() > MAX_PREFERRED || preferred.iter().any(|p| p.chars().count() > 50) {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "too_long",
            &["body", "preferred_indicators"],
            format!("at most {MAX_PREFERRED} names of at most 50 characters"),
            Value::Null,
        )]));
    }
    Ok(StrategyAsk { prompt: prompt.to_owned(), symbol, timeframe: crate::ml::store::tf_name(tf), profile, preferred })
}

fn strategy_view(g: &GeneratedStrategy) -> Value {
    json!({
        "strategy": spec_view(&g.id.to_string(), &g.strategy, json!({})),
        "explanation": g.explanation,
        "warnings": g.warnings,
        "suggested_improvements": g.suggested_improvements,
        "computed": g.computed(),
        "model": g.model,
        "tokens_used": g.tokens_used,
    })
}

async fn generate_strategy(
    user: CurrentUser,
    State(s): State<AiState>,
    ApiJson(body): ApiJson<StrategyRequest>,
) -> ApiResult<Response> {
    let ask = strategy_ask(body)?;
    Ok(axum::Json(strategy_view(&s.ai.generate_strategy(user.id, &ask, None).await?)).into_response())
}

/// Seconds between `keepalive` events while the model is working (the original's 5 s).
pub const KEEPALIVE_SECS: u64 = 5;
/// Characters of the answer between two "Receiving" progress events.
const RECEIVED_STEP: usize = 200;

/// Where a strategy stream is.
struct StreamState {
    progress: Option<mpsc::Receiver<Progress>>,
    task: Option<tokio::task::JoinHandle<Result<GeneratedStrategy, AiError>>>,
    keepalive: tokio::time::Interval,
    keepalives: u64,
    reported: usize,
}

/// The next SSE frame of a strategy stream, `None` after the `result` or `error`.
async fn next_frame(mut st: StreamState) -> Option<((&'static str, Value), StreamState)> {
    loop {
        if let Some(rx) = st.progress.as_mut() {
            tokio::select! {
                p = rx.recv() => match p {
                    Some(Progress::Status(status)) => return Some((("progress", json!({"status": status})), st)),
                    Some(Progress::Received(n)) if st.reported == 0 || n >= st.reported + RECEIVED_STEP => {
                        st.reported = n.max(1);
                        return Some((("progress", json!({"status": "Receiving the model's answer...", "received_chars": n})), st));
                    }
                    Some(Progress::Received(_)) => continue,
                    None => st.progress = None,
                },
                _ = st.keepalive.tick() => {
                    st.keepalives += 1;
                    return Some((("keepalive", json!({"count": st.keepalives, "message": "Still generating..."})), st));
                }
            }
        } else {
            let task = st.task.take()?;
            let frame = match task.await {
                Ok(Ok(g)) => ("result", strategy_view(&g)),
                Ok(Err(e)) => ("error", json!({"error": ApiError::from(e).to_string()})),
                Err(join) => {
                    tracing::error!(error = %join, "strategy generation task failed");
                    ("error", json!({"error": "Strategy generation failed unexpectedly"}))
                }
            };
            return Some((frame, st));
        }
    }
}

/// `POST /ai/generate-strategy-stream`: Server-Sent Events (`event: <name>\ndata: <json>\n\n`): `progress` as the
/// generation moves (starting, calling the model, the answer's received length, parsing, a repair round),
/// `keepalive` every [`KEEPALIVE_SECS`] s, then `result` (or `error`). Validation errors answer before the stream
/// starts, with their status. A client that goes away does not cancel the model call (its tokens are counted).
async fn generate_strategy_stream(
    user: CurrentUser,
    State(s): State<AiState>,
    ApiJson(body): ApiJson<StrategyRequest>,
) -> ApiResult<Response> {
    use axum::response::sse::{Event, Sse};
    let ask = strategy_ask(body)?;
    let (tx, rx) = mpsc::channel(32);
    let ai = s.ai.clone();
    let task = tokio::spawn(async move { ai.generate_strategy(user.id, &ask, Some(tx)).await });
    let period = std::time::Duration::from_secs(KEEPALIVE_SECS);
    let keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let state = StreamState { progress: Some(rx), task: Some(task), keepalive, keepalives: 0, reported: 0 };
    let events = futures::stream::unfold(state, next_frame)
        .map(|(name, data)| Ok::<_, std::convert::Infallible>(Event::default().event(name).data(data.to_string())));
    let mut response = Sse::new(events).into_response();
    let h = response.headers_mut();
    h.insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    Ok(response)
}
