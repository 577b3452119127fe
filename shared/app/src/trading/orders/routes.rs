//! HTTP routes of the `orders` function (contract §2.4), shared by the Lambda and the local gateway.
//!
//! | route | auth | success |
//! |---|---|---|
//! | `POST /api/v1/trading/orders` | bearer | 201 `{trade, mt5_execution}` (202 when delivery is uncertain) |
//! | `GET /api/v1/trading/orders/{id}` | bearer | 200 `TradeOut` |
//! | `PUT /api/v1/trading/orders/{id}/close` | bearer | 200 `{trade, mt5_execution}` — `id` is the order id, which is also the position id |
//! | `PUT /api/v1/trading/orders/{id}/modify` | bearer | 200 `{trade, mt5_execution}` |
//! | `PUT /api/v1/trading/positions/{id}/trailing-stop` | bearer | 200 `PositionOut` |
//! | `GET /api/v1/trading/positions` | bearer | 200 `PositionOut[]` |
//! | `GET /api/v1/trading/history` | bearer | 200 `TradeOut[]` |
//! | `GET /api/v1/trading/dashboard/stats` | bearer | 200 stats |
//! | `GET /api/v1/trading/signals` | public | 200 `[]` (the original's) |
//!
//! Lists take `?limit=` (1–200), `?cursor=` (opaque), `?symbol=` and `?status=` (comma-separated); the
//! body stays a JSON array (what the dashboard reads) and the next page's cursor travels in the
//! `X-Next-Cursor` response header (absent on the last page).
//!
//! Order-changing routes take an `Idempotency-Key` header (or, for `POST /orders`, a `client_order_id`
//! body field): a repeat returns the first response and sends nothing twice; the same key with another
//! request is a 422.

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use nusatrade_domain::instrument::Instrument;
use nusatrade_domain::money::Side;
use nusatrade_domain::order::{MARKET_PRICE_PLACEHOLDER, OrderStatus, validate_stops};
use nusatrade_domain::trailing::{TrailingStopSettings, TrailingType};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::TradingError;
use super::queries::{DEFAULT_HISTORY_PAGE, DEFAULT_POSITIONS_PAGE, ListFilter, MAX_PAGE, OrderPage};
use super::service::{Delivery, ModifyOrder, OrderService, PlaceOrder, Placed};
use super::store::IdempotencyKey;
use super::store::SOURCE_API;
use super::views::{PositionOut, TradeOut};
use crate::auth::{Authenticator, CurrentUser, RequestLimits, limit_requests};
use crate::connector::CommandKind;
use crate::http::fields::{Fields, ge, gt, instrument, num};
use crate::http::{ApiError, ApiJson, ApiQuery, ApiResult, FieldError, optional_object};
use crate::ports::Cursor;
use crate::trading::sizing::MAX_PRICE;
use nusatrade_domain::order::Refused;

/// The header carrying an idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The response header carrying the next page's cursor.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";
/// Largest pip figure in trailing-stop settings.
const MAX_PIPS: Decimal = Decimal::from_parts(100_000, 0, 0, false, 0);

/// State of the orders routes.
#[derive(Clone)]
pub struct OrdersState {
    pub auth: Authenticator,
    pub orders: OrderService,
}

impl FromRef<OrdersState> for Authenticator {
    fn from_ref(s: &OrdersState) -> Self {
        s.auth.clone()
    }
}

/// The routes under `/api/v1/trading`. `limits`: the per-user/per-IP request limit (local gateway); the
/// Lambda relies on API Gateway throttling.
pub fn router(state: OrdersState, limits: Option<RequestLimits>) -> Router {
    let mut routes = Router::new()
        .route("/trading/orders", post(place))
        .route("/trading/orders/{id}", get(get_order))
        .route("/trading/orders/{id}/close", put(close))
        .route("/trading/orders/{id}/modify", put(modify))
        .route("/trading/positions/{id}/trailing-stop", put(trailing_stop))
        .route("/trading/positions", get(positions))
        .route("/trading/history", get(history))
        .route("/trading/dashboard/stats", get(stats))
        .with_state(state);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    // Public: the original answered `[]` without authentication.
    let public = Router::new().route("/trading/signals", get(|| async { axum::Json(json!([])) }));
    Router::new().nest("/api/v1", routes.merge(public))
}

/// The status of an accepted order command: a placed order 201, a close/modify 200 (also when the same command is
/// already in flight); a command that may not have reached MT5 202.
pub fn placed_status(p: &Placed) -> StatusCode {
    match (p.delivery, p.kind) {
        (Delivery::Uncertain, _) => StatusCode::ACCEPTED,
        (Delivery::Sent, CommandKind::Open) => StatusCode::CREATED,
        _ => StatusCode::OK,
    }
}

fn reply(p: Placed) -> Response {
    (placed_status(&p), axum::Json(p.body)).into_response()
}

impl From<TradingError> for ApiError {
    fn from(e: TradingError) -> Self {
        let msg = e.to_string();
        match e {
            TradingError::Invalid(_) | TradingError::LimitReached(_) | TradingError::InsufficientMargin { .. } => {
                ApiError::BadRequest(msg)
            }
            TradingError::NotVerified => ApiError::Forbidden(msg),
            TradingError::NotFound => ApiError::NotFound(msg),
            // Refusing another user's order answers 404: its existence is not revealed.
            TradingError::Refused(Refused::NotOwner) => ApiError::NotFound("Order not found".into()),
            TradingError::Refused(_) | TradingError::IdempotencyInFlight => ApiError::Conflict(msg),
            TradingError::IdempotencyMismatch => ApiError::Unprocessable(vec![crate::http::FieldError::new(
                "idempotency_mismatch",
                &["header", "Idempotency-Key"],
                msg,
                Value::Null,
            )]),
            TradingError::ConnectorOffline | TradingError::NotSent(_) | TradingError::Busy => {
                ApiError::ServiceUnavailable(msg)
            }
            TradingError::Store(s) => s.into(),
        }
    }
}

fn order_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(raw).map_err(|_| ApiError::BadRequest("Invalid order_id format. Must be a valid UUID.".into()))
}

fn header_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    match headers.get(IDEMPOTENCY_HEADER) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
            ApiError::BadRequest(
                "Idempotency-Key must be 1-64 characters of letters, digits, '_', '.', ':' or '-'".into(),
            )
        }),
    }
}

fn idempotency(key: Option<&str>, route: String, body: &Map<String, Value>) -> ApiResult<Option<IdempotencyKey>> {
    key.map(|k| IdempotencyKey::new(k, &route, &Value::Object(body.clone()))).transpose().map_err(ApiError::from)
}

// ------------------------------------------------------------------ place

/// Parses `OrderCreate` (contract §2.4): types and ranges are 422 lists; the original's custom validation
/// steps answer 400 with its messages, in its order (symbol, lot size, price, SL/TP sides).
pub fn parse_order(body: &Map<String, Value>) -> ApiResult<PlaceOrder> {
    let mut f = Fields::new(body);
    let symbol = f.string("symbol", true);
    let side = f.choice::<Side>("order_type", "^(BUY|SELL)$", true);
    let lots = f.number("lot_size", gt(Decimal::ZERO, Decimal::ONE_THOUSAND));
    let price = f.number("price", gt(Decimal::ZERO, MAX_PRICE));
    let stop_loss = f.number_or("stop_loss", ge(Decimal::ZERO, MAX_PRICE), None);
    let take_profit = f.number_or("take_profit", ge(Decimal::ZERO, MAX_PRICE), None);
    let connection = f.string_max("connection_id", false, 64);
    // Accepted and ignored, as in the original.
    let _ = f.number_or("sl_atr_multiplier", ge(Decimal::ZERO, MAX_PIPS), None);
    let _ = f.number_or("tp_risk_reward", ge(Decimal::ZERO, MAX_PIPS), None);
    let _ = f.boolean("use_atr_sl", false);
    let _ = f.string_max("client_order_id", false, IdempotencyKey::MAX_LEN);
    let trailing = match body.get("trailing_stop") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => Some(parse_trailing(t, &mut f, Some("trailing_stop"))),
        Some(v) => {
            f.err("model_attributes_type", "trailing_stop", "Input should be a valid dictionary", v);
            None
        }
    };
    f.finish()?;
    let missing = || ApiError::Internal("order fields".into());
    let (symbol, side, lots, price) =
        (symbol.ok_or_else(missing)?, side.ok_or_else(missing)?, lots.ok_or_else(missing)?, price.ok_or_else(missing)?);

    // 1. symbol
    let normalized = symbol.trim().to_ascii_uppercase();
    let well_formed = (3..=10).contains(&normalized.len()) && normalized.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(ApiError::BadRequest(
            "Invalid symbol format. Must be 3-10 alphanumeric characters (e.g., EURUSD, XAUUSD)".into(),
        ));
    }
    let instrument = instrument(&normalized)?;
    // 2. lot size, against the instrument's volume rules
    let lots = check_lots(instrument, lots)?;
    // 3. price (the original's fixed ranges rejected BTCUSD and XAGUSD: the check against the last
    //    reported price happens in the use case)
    // 4. SL/TP sides
    // 0 means "none" (the original stored SL/TP only when truthy).
    let stop_loss = stop_loss.filter(|v| !v.is_zero());
    let take_profit = take_profit.filter(|v| !v.is_zero());
    //    (the dashboard's placeholder price is resolved against the market in the use case, which checks them there)
    if price != MARKET_PRICE_PLACEHOLDER {
        validate_stops(side, price, stop_loss, take_profit).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let broker_connection_id = connection
        .map(|c| Uuid::try_parse(c.trim()).map_err(|_| ApiError::BadRequest("Invalid connection_id format".into())))
        .transpose()?;
    Ok(PlaceOrder {
        instrument,
        side,
        lots,
        price,
        stop_loss,
        take_profit,
        broker_connection_id,
        trailing_stop: trailing.flatten().filter(|t| t.enabled || t.breakeven_enabled),
        source: SOURCE_API,
    })
}

fn check_lots(instrument: &Instrument, lots: Decimal) -> ApiResult<nusatrade_domain::money::Lots> {
    use nusatrade_domain::instrument::VolumeError as V;
    instrument.validate_lots(lots).map_err(|e| {
        ApiError::BadRequest(match e {
            V::NotPositive | V::BelowMinimum { .. } => {
                format!("Lot size must be at least {}", instrument.min_volume.normalize())
            }
            V::AboveMaximum { max, .. } => format!("Lot size cannot exceed {}", max.normalize()),
            V::NotOnStep { step, .. } => format!("Lot size must be in {} increments", step.normalize()),
        })
    })
}

/// Trailing-stop settings (the original's `TrailingStopSettings`: `trailing_type` or `type`, pips ≥ 0).
fn parse_trailing(t: &Map<String, Value>, outer: &mut Fields<'_>, at: Option<&str>) -> Option<TrailingStopSettings> {
    let mut f = Fields::new(t);
    let d = TrailingStopSettings::default();
    let enabled = f.boolean("enabled", true);
    let kind = f
        .choice::<TrailingType>("trailing_type", "^(fixed_pips|atr_based|percentage)$", false)
        .or_else(|| f.choice::<TrailingType>("type", "^(fixed_pips|atr_based|percentage)$", false));
    let pips = ge(Decimal::ZERO, MAX_PIPS);
    let s = TrailingStopSettings {
        enabled: enabled.unwrap_or(true),
        trailing_type: kind.unwrap_or(d.trailing_type),
        activation_pips: f.number_or("activation_pips", pips, Some(d.activation_pips)).unwrap_or_default(),
        trail_distance_pips: f.number_or("trail_distance_pips", pips, Some(d.trail_distance_pips)).unwrap_or_default(),
        atr_multiplier: f.number_or("atr_multiplier", pips, Some(d.atr_multiplier)).unwrap_or_default(),
        percentage: f
            .number_or("percentage", ge(Decimal::ZERO, Decimal::ONE_HUNDRED), Some(d.percentage))
            .unwrap_or_default(),
        breakeven_enabled: f.boolean("breakeven_enabled", d.breakeven_enabled).unwrap_or(true),
        breakeven_pips: f.number_or("breakeven_pips", pips, Some(d.breakeven_pips)).unwrap_or_default(),
        lock_profit_pips: f.number_or("lock_profit_pips", pips, Some(d.lock_profit_pips)).unwrap_or_default(),
    };
    let ok = f.errors_empty();
    outer.absorb(f, at);
    ok.then_some(s)
}

async fn place(
    user: CurrentUser,
    State(s): State<OrdersState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let input = parse_order(&body)?;
    let key = match header_key(&headers)? {
        Some(k) => Some(k),
        None => body.get("client_order_id").and_then(Value::as_str).map(str::trim).filter(|k| !k.is_empty()),
    };
    let idem = idempotency(key, "POST /trading/orders".into(), &body)?;
    Ok(reply(s.orders.place(&user, input, idem).await?))
}

// ------------------------------------------------------------------ one order

async fn get_order(user: CurrentUser, State(s): State<OrdersState>, Path(id): Path<String>) -> ApiResult<Response> {
    let order = s.orders.get(user.id, order_id(&id)?).await?;
    Ok(axum::Json(TradeOut::from(&order)).into_response())
}

async fn close(
    user: CurrentUser,
    State(s): State<OrdersState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let id = order_id(&id)?;
    let body = optional_object(&body)?;
    // `close_price` (required by the original, whose close was DB-only) is accepted and checked; the close
    // itself is a market order at MT5's price.
    let mut f = Fields::new(&body);
    let _ = f.number_or("close_price", gt(Decimal::ZERO, MAX_PRICE), None);
    f.finish()?;
    let idem = idempotency(header_key(&headers)?, format!("PUT /trading/orders/{id}/close"), &body)?;
    Ok(reply(s.orders.close(&user, id, idem).await?))
}

async fn modify(
    user: CurrentUser,
    State(s): State<OrdersState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let id = order_id(&id)?;
    let change = parse_modify(&body)?;
    let idem = idempotency(header_key(&headers)?, format!("PUT /trading/orders/{id}/modify"), &body)?;
    Ok(reply(s.orders.modify(&user, id, change, idem).await?))
}

/// Parses an SL/TP change (REST `PUT …/modify` and the dashboard socket's `MODIFY`): positive prices, at least one.
pub fn parse_modify(body: &Map<String, Value>) -> ApiResult<ModifyOrder> {
    let mut f = Fields::new(body);
    let stop_loss = f.number_or("stop_loss", gt(Decimal::ZERO, MAX_PRICE), None);
    let take_profit = f.number_or("take_profit", gt(Decimal::ZERO, MAX_PRICE), None);
    f.finish()?;
    if stop_loss.is_none() && take_profit.is_none() {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "missing",
            &["body"],
            "Provide stop_loss and/or take_profit",
            Value::Null,
        )]));
    }
    Ok(ModifyOrder { stop_loss, take_profit })
}

async fn trailing_stop(
    user: CurrentUser,
    State(s): State<OrdersState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let id = Uuid::try_parse(&id)
        .map_err(|_| ApiError::BadRequest("Invalid position_id format. Must be a valid UUID.".into()))?;
    let mut f = Fields::new(&body);
    let settings = parse_trailing(&body, &mut f, None);
    f.finish()?;
    let settings = settings.ok_or_else(|| ApiError::Internal("trailing fields".into()))?;
    let order = s.orders.set_trailing_stop(&user, id, settings).await?;
    Ok(axum::Json(PositionOut::from(&order)).into_response())
}

// ------------------------------------------------------------------ lists

/// `?limit=&cursor=&symbol=&status=` of the list routes.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub symbol: Option<String>,
    pub status: Option<String>,
}

fn query_error(field: &str, msg: impl Into<String>, input: &str) -> ApiError {
    ApiError::Unprocessable(vec![FieldError::new("value_error", &["query", field], msg, Value::from(input))])
}

impl ListParams {
    /// Validated `(filter, limit, cursor)`.
    pub fn parse(&self, default_limit: u32) -> ApiResult<(ListFilter, u32, Option<Cursor>)> {
        let limit = match &self.limit {
            None => default_limit,
            Some(l) => match l.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => return Err(query_error("limit", format!("limit must be an integer from 1 to {MAX_PAGE}"), l)),
            },
        };
        let cursor = match &self.cursor {
            None => None,
            Some(c) if c.is_empty() => None,
            Some(c) => Some(Cursor::parse(c).map_err(|_| query_error("cursor", "Invalid pagination cursor", c))?),
        };
        let symbol = match &self.symbol {
            None => None,
            Some(s) if s.trim().is_empty() => None,
            Some(s) => Some(instrument(s.trim()).map(|i| i.symbol.to_owned())?),
        };
        let statuses = match &self.status {
            None => None,
            Some(s) if s.trim().is_empty() => None,
            Some(s) if s.len() > 200 => return Err(query_error("status", "status list too long", s)),
            Some(s) => Some(
                s.split(',')
                    .map(|p| {
                        OrderStatus::parse(p).ok_or_else(|| {
                            let all: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
                            query_error("status", format!("Unknown status {p:?}; one of {}", all.join(", ")), s)
                        })
                    })
                    .collect::<ApiResult<Vec<_>>>()?,
            ),
        };
        Ok((ListFilter { symbol, statuses }, limit, cursor))
    }
}

fn page_response<T: serde::Serialize>(page: &OrderPage, view: impl Fn(&super::store::OrderRecord) -> T) -> Response {
    let items: Vec<T> = page.items.iter().map(view).collect();
    let mut resp = axum::Json(items).into_response();
    if let Some(c) = &page.cursor
        && let Ok(v) = HeaderValue::from_str(c.as_str())
    {
        resp.headers_mut().insert(NEXT_CURSOR_HEADER, v);
    }
    resp
}

async fn positions(
    user: CurrentUser,
    State(s): State<OrdersState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let (filter, limit, cursor) = params.parse(DEFAULT_POSITIONS_PAGE)?;
    let page = s.orders.positions(user.id, &filter, limit, cursor).await?;
    Ok(page_response(&page, |o| PositionOut::from(o)))
}

async fn history(
    user: CurrentUser,
    State(s): State<OrdersState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let (filter, limit, cursor) = params.parse(DEFAULT_HISTORY_PAGE)?;
    let page = s.orders.history(user.id, &filter, limit, cursor).await?;
    Ok(page_response(&page, |o| TradeOut::from(o)))
}

async fn stats(user: CurrentUser, State(s): State<OrdersState>) -> ApiResult<Response> {
    let st = s.orders.stats(user.id).await?;
    Ok(axum::Json(json!({
        "balance": num(st.balance),
        "equity": num(st.equity),
        "open_positions": st.open_positions,
        "today_pnl": num(st.today_pnl),
        "total_pnl": num(st.total_pnl),
        "unrealized_pnl": num(st.unrealized_pnl),
        "total_trades": st.total_trades,
        "win_rate": num(st.win_rate),
        "has_live_connection": st.has_live_connection,
    }))
    .into_response())
}
