//! The order use cases (design §3): place, close, modify, trailing-stop settings, and the application of
//! MT5 acknowledgements and timeouts. The REST routes and the browser WebSocket's `SEND_TRADE_COMMAND`
//! both call these, so risk checks, idempotency and ownership are the same on every path.
//!
//! Write first, then send: an order is written `pending` together with its reservation (and its
//! idempotency record) in one conditional transaction before the command goes to the connector. What
//! the push says decides the rest:
//!
//! | push outcome | order | HTTP |
//! |---|---|---|
//! | delivered | stays `pending` until the ack | 201 (`mt5_execution.success = true`) |
//! | gone (410) / no connector | `rejected`, reservation released, idempotency key freed — it never left | 503 |
//! | error (outcome unknown) | `unknown`, reservation kept; a late ack or reconciliation decides | 202 |
//!
//! Close and modify follow the same rules (`close_pending` / `modify_pending`, back to `open` when the
//! command provably never left).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use nusatrade_domain::instrument::{Instrument, MAX_LOT_SIZE, lookup};
use nusatrade_domain::money::{Currency, Lots, Side};
use nusatrade_domain::order::{
    self as rules, ClientOrderId, Failure, Fill, NoOp, OrderEvent, OrderStatus, Refused, Ticket, Transition,
};
use nusatrade_domain::sizing::margin_required;
use nusatrade_domain::trailing::TrailingStopSettings;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use uuid::Uuid;

use super::store::{IdempotencyRecord, OPEN_ORDERS_ATTR, OrderRecord, day_key, idempotency_key, limits_key, stats_key};
use super::views::{order_update, trade_with_mt5};
use crate::auth::CurrentUser;
use crate::connector::outbox::{outbox_delete_op, outbox_put_op};
use crate::connector::{
    AccountSnapshot, Command, CommandKind, ConnectorLink, ConnectorRegistry, RequestId, TradeResult,
};
use crate::http::ApiError;
use crate::ports::{
    CancelReason, Clock, Condition, IdGenerator, Item, ItemStore, Push, PushError, PushOutcome, StoreError, TxOp,
    Update,
};
use crate::reconcile::AckTimeouts;
use crate::telemetry;

/// Settings of the trading rules (environment names in [`TradingConfig::from_env`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TradingConfig {
    /// Open-position reservations per user (`NUSATRADE_MAX_OPEN_POSITIONS`, default 20, the original's
    /// `MAX_POSITIONS_PER_USER`).
    pub max_open_positions: u32,
    /// Largest lot size of one order (the original's `MAX_LOT_SIZE`, 10), on top of the instrument's maximum.
    pub max_lot: Decimal,
    /// How long an idempotency key is remembered (24 h).
    pub idempotency_ttl: Duration,
    /// Account currency assumed when the connector does not report one (the original connector never did).
    pub default_account_currency: Currency,
    /// Leverage assumed for the margin check when the connector does not report one.
    pub default_leverage: u32,
    /// How far (percent) an order's price may be from the last price a connector reported.
    pub max_price_deviation_percent: Decimal,
    /// How old that last price may be to be used.
    pub quote_max_age: Duration,
}

impl Default for TradingConfig {
    fn default() -> Self {
        TradingConfig {
            max_open_positions: 20,
            max_lot: MAX_LOT_SIZE,
            idempotency_ttl: Duration::hours(24),
            default_account_currency: Currency::USD,
            default_leverage: 100,
            max_price_deviation_percent: Decimal::TEN,
            quote_max_age: Duration::minutes(10),
        }
    }
}

impl TradingConfig {
    /// Largest accepted `NUSATRADE_MAX_OPEN_POSITIONS`.
    pub const MAX_OPEN_POSITIONS_LIMIT: u32 = 1000;

    /// Reads `NUSATRADE_MAX_OPEN_POSITIONS` (1..=1000); other settings keep their defaults.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut c = TradingConfig::default();
        if let Some(v) = get("NUSATRADE_MAX_OPEN_POSITIONS") {
            c.max_open_positions =
                v.trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=Self::MAX_OPEN_POSITIONS_LIMIT).contains(n))
                    .ok_or_else(|| format!("NUSATRADE_MAX_OPEN_POSITIONS must be 1..=1000, got {v:?}"))?;
        }
        Ok(c)
    }
}

/// Why an order use case refused or failed. Mapped to HTTP once ([`From<TradingError> for ApiError`]).
#[derive(Debug, thiserror::Error)]
pub enum TradingError {
    #[error("{0}")]
    Invalid(String),
    #[error("Please verify your e-mail address before trading")]
    NotVerified,
    #[error("Order not found")]
    NotFound,
    #[error("{0}")]
    Refused(Refused),
    #[error("Maximum {0} open positions reached")]
    LimitReached(u32),
    #[error("Insufficient free margin: {required} {currency} required, {free} {currency} free")]
    InsufficientMargin { required: Decimal, free: Decimal, currency: Currency },
    #[error("MT5 connector is not online. Please ensure the connector is running.")]
    ConnectorOffline,
    #[error("Failed to execute trade on MT5: {0}")]
    NotSent(String),
    #[error("This Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    #[error("A request with this Idempotency-Key is still being processed")]
    IdempotencyInFlight,
    #[error("The order store is busy, please retry")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
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

pub type TradingResult<T> = Result<T, TradingError>;

/// A response that idempotent replays give back verbatim.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// An idempotency key and the fingerprint of the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyKey {
    /// Longest accepted key.
    pub const MAX_LEN: usize = 64;

    /// A key (1–64 characters of `[A-Za-z0-9_.:-]`) for a request, fingerprinted by route and canonical body.
    pub fn new(key: &str, route: &str, body: &Value) -> Result<Self, TradingError> {
        let ok = !key.is_empty()
            && key.len() <= Self::MAX_LEN
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        if !ok {
            return Err(TradingError::Invalid(
                "Idempotency-Key must be 1-64 characters of letters, digits, '_', '.', ':' or '-'".into(),
            ));
        }
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        // serde_json's Map is ordered by key: the same fields in another order hash the same.
        h.update(body.to_string().as_bytes());
        Ok(IdempotencyKey { key: key.to_owned(), request_hash: crate::auth::passwords::hex(&h.finalize()) })
    }
}

/// A validated order request.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaceOrder {
    pub instrument: &'static Instrument,
    pub side: Side,
    pub lots: Lots,
    /// The client's reference price (entry for SL/TP checks and the margin estimate).
    pub price: Decimal,
    pub stop_loss: Option<Decimal>,
    pub take_profit: Option<Decimal>,
    pub broker_connection_id: Option<Uuid>,
    pub trailing_stop: Option<TrailingStopSettings>,
    pub source: &'static str,
}

/// A validated SL/TP change (`None` keeps the current value).
#[derive(Clone, Debug, PartialEq)]
pub struct ModifyOrder {
    pub stop_loss: Option<Decimal>,
    pub take_profit: Option<Decimal>,
}

/// What an acknowledgement did.
#[derive(Clone, Debug, PartialEq)]
pub enum AckOutcome {
    /// The order moved to a new state.
    Applied(Box<OrderRecord>),
    /// Nothing changed (duplicate, stale, still in flight).
    Unchanged(Box<OrderRecord>, NoOp),
    /// The ack contradicts the order (logged for reconciliation); nothing written.
    Refused(Box<OrderRecord>, Refused),
    /// No order of this user has that id (another user's order, or not one of our request ids).
    UnknownOrder,
    /// The request id is not one of ours (a relayed dashboard command, a sync request...).
    NotAnOrderCommand,
}

/// How often a write that lost a race is re-read and retried.
const MAX_ATTEMPTS: u32 = 8;

/// The order use cases over the ports.
#[derive(Clone)]
pub struct OrderService {
    pub store: Arc<dyn ItemStore>,
    pub push: Arc<dyn Push>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub registry: ConnectorRegistry,
    pub config: Arc<TradingConfig>,
    /// Schedules the delayed ack-timeout message of every trade command sent (issue #6; `None`: not scheduled).
    pub ack_timeouts: Option<AckTimeouts>,
}

impl OrderService {
    /// With ack timeouts on the ports' `reconcile` queue (delay `NUSATRADE_ACK_TIMEOUT_SECS`, default 30 s).
    pub fn new(ports: &crate::ports::Ports, config: TradingConfig) -> Self {
        OrderService {
            store: ports.store.clone(),
            push: ports.push.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            registry: ConnectorRegistry::new(ports.store.clone(), ports.clock.clone()),
            config: Arc::new(config),
            ack_timeouts: Some(AckTimeouts::from_env(ports.queue.clone())),
        }
    }

    /// Replaces how ack timeouts are scheduled (`None`: not at all).
    pub fn with_ack_timeouts(mut self, ack_timeouts: Option<AckTimeouts>) -> Self {
        self.ack_timeouts = ack_timeouts;
        self
    }

    /// A time-ordered (v7) order id: newest-first listings come from the sort key.
    fn new_order_id(&self, now: DateTime<Utc>) -> Uuid {
        let random = self.ids.uuid().into_bytes();
        let mut tail = [0u8; 10];
        tail.copy_from_slice(&random[6..16]);
        uuid::Builder::from_unix_timestamp_millis(now.timestamp_millis().max(0) as u64, &tail).into_uuid()
    }

    // ------------------------------------------------------------------ reads

    /// One order of the user (404 for unknown ids and other users' ids alike).
    pub async fn get(&self, user: Uuid, order_id: Uuid) -> TradingResult<OrderRecord> {
        let item = self.store.get(&super::store::order_key(user, order_id)).await?;
        let record: OrderRecord = item.ok_or(TradingError::NotFound)?.to_record()?;
        rules::check_owner(record.user_id, user).map_err(TradingError::Refused)?;
        Ok(record)
    }

    // ------------------------------------------------------------------ idempotency

    /// The stored reply of a repeated request, or `None` for a first use of the key.
    async fn replay(&self, user: Uuid, idem: &IdempotencyKey) -> TradingResult<Option<Reply>> {
        let Some(item) = self.store.get(&idempotency_key(user, &idem.key)).await? else { return Ok(None) };
        if item.is_expired(self.clock.epoch_seconds()) {
            return Ok(None);
        }
        let rec: IdempotencyRecord = item.to_record()?;
        if rec.request_hash != idem.request_hash {
            return Err(TradingError::IdempotencyMismatch);
        }
        match (rec.response_status, rec.response_body) {
            (Some(status), Some(body)) => {
                let body = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(Some(Reply { status, body }))
            }
            _ => Err(TradingError::IdempotencyInFlight),
        }
    }

    fn idempotency_put(&self, user: Uuid, idem: &IdempotencyKey, order_id: Uuid) -> TradingResult<TxOp> {
        let now = self.clock.now();
        let rec = IdempotencyRecord {
            request_hash: idem.request_hash.clone(),
            order_id,
            response_status: None,
            response_body: None,
            created_at: now,
            ttl: (now + self.config.idempotency_ttl).timestamp(),
        };
        // An expired record may still be there (TTL deletion is lazy): it may be replaced.
        let free = Condition::NotExists.or(Condition::le("ttl", now.timestamp()));
        Ok(TxOp::Put { item: Item::from_record(&idempotency_key(user, &idem.key), &rec)?, condition: Some(free) })
    }

    /// Stores the reply of the first request made with a key.
    async fn remember(&self, user: Uuid, idem: Option<&IdempotencyKey>, reply: &Reply) {
        let Some(idem) = idem else { return };
        let update =
            Update::new().set("response_status", reply.status as i64).set("response_body", reply.body.to_string());
        let cond = Condition::eq("request_hash", idem.request_hash.as_str());
        if let Err(e) = self.store.update(&idempotency_key(user, &idem.key), update, Some(cond)).await {
            // The order is written and the command sent: a repeat will answer 409 "still being processed"
            // until the key expires rather than send twice.
            warn!(error = %e, "could not store the idempotent reply");
        }
    }

    async fn forget(&self, user: Uuid, idem: Option<&IdempotencyKey>) {
        if let Some(idem) = idem {
            let cond = Condition::eq("request_hash", idem.request_hash.as_str());
            if let Err(e) = self.store.delete(&idempotency_key(user, &idem.key), Some(cond)).await {
                warn!(error = %e, "could not free the idempotency key");
            }
        }
    }

    // ------------------------------------------------------------------ place

    /// `POST /trading/orders` (counted by outcome: `sent`, `uncertain` — the 202 of a command that may not have
    /// left —, `refused`).
    pub async fn place(
        &self,
        user: &CurrentUser,
        req: PlaceOrder,
        idem: Option<IdempotencyKey>,
    ) -> TradingResult<Reply> {
        let out = self.place_order(user, req, idem).await;
        telemetry::order_placed(match &out {
            Ok(r) if r.status == 202 => "uncertain",
            Ok(_) => "sent",
            Err(_) => "refused",
        });
        out
    }

    async fn place_order(
        &self,
        user: &CurrentUser,
        mut req: PlaceOrder,
        idem: Option<IdempotencyKey>,
    ) -> TradingResult<Reply> {
        if !user.may_trade() {
            return Err(TradingError::NotVerified);
        }
        if req.lots.value() > self.config.max_lot {
            return Err(TradingError::Invalid(format!("Lot size cannot exceed {}", self.config.max_lot.normalize())));
        }
        if let Some(i) = &idem
            && let Some(reply) = self.replay(user.id, i).await?
        {
            return Ok(reply);
        }
        let link = self
            .registry
            .find_connector(user.id, req.broker_connection_id)
            .await?
            .ok_or(TradingError::ConnectorOffline)?;
        let (account, quote) = tokio::join!(
            self.registry.account(user.id, link.broker_connection_id),
            self.registry.quote(user.id, req.instrument.symbol, self.config.quote_max_age)
        );
        if let Some(q) = quote? {
            let reference = match req.side {
                Side::Buy => q.ask,
                Side::Sell => q.bid,
            };
            if let Some(reference) = nusatrade_domain::money::Price::new(reference) {
                let near =
                    req.instrument.check_price_near(req.price, reference, self.config.max_price_deviation_percent);
                match near {
                    // A plausible 1.0 is a price like any other: its stops were left for here by the edge.
                    Ok(_) if req.price == rules::MARKET_PRICE_PLACEHOLDER => {
                        rules::validate_stops(req.side, req.price, req.stop_loss, req.take_profit)
                            .map_err(|e| TradingError::Invalid(e.to_string()))?;
                    }
                    Ok(_) => {}
                    // The dashboard's "no price" placeholder: the market's price is the reference (see the const).
                    Err(_) if req.price == rules::MARKET_PRICE_PLACEHOLDER => {
                        info!(symbol = req.instrument.symbol, reference = %reference.value(),
                            "market order with the placeholder price 1.0: the last reported price is its reference");
                        req.price = reference.value();
                        rules::validate_stops(req.side, req.price, req.stop_loss, req.take_profit)
                            .map_err(|e| TradingError::Invalid(e.to_string()))?;
                    }
                    Err(_) => {
                        return Err(TradingError::Invalid(format!(
                            "Price {} is outside reasonable range for {} (last price {})",
                            req.price.normalize(),
                            req.instrument.symbol,
                            reference.value().normalize()
                        )));
                    }
                }
            }
        }
        if let Some(account) = account? {
            self.check_margin(&req, &account)?;
        }

        let now = self.clock.now();
        let id = self.new_order_id(now);
        let order = OrderRecord {
            id,
            user_id: user.id,
            client_order_id: ClientOrderId::from_uuid(id).comment(),
            symbol: req.instrument.symbol.to_owned(),
            side: req.side,
            lots: req.lots.value(),
            requested_price: req.price,
            stop_loss: req.stop_loss,
            take_profit: req.take_profit,
            status: OrderStatus::Pending,
            version: 0,
            ticket: None,
            broker_connection_id: Some(link.broker_connection_id),
            command_seq: 0,
            open_price: None,
            fill_price_confirmed: false,
            open_time: None,
            close_price: None,
            close_time: None,
            profit: None,
            current_price: None,
            floating_profit: None,
            pending_stop_loss: None,
            pending_take_profit: None,
            trailing_stop: req.trailing_stop,
            error: None,
            retcode: None,
            source: req.source.to_owned(),
            created_at: now,
            updated_at: now,
        };
        let request_id = RequestId::open(id).to_string();
        let cmd = Command::TradeOpen {
            request_id: request_id.clone(),
            symbol: order.symbol.clone(),
            order_type: order.side.as_str(),
            lot_size: crate::trading::fields::num(order.lots),
            comment: order.client_order_id.clone(),
            client_order_id: ClientOrderId::from_uuid(id),
            stop_loss: order.stop_loss.map(crate::trading::fields::num),
            take_profit: order.take_profit.map(crate::trading::fields::num),
        };
        let queued = outbox_put_op(user.id, link.broker_connection_id, &cmd, now)?;
        if let Some(reply) = self.reserve(user.id, &order, idem.as_ref(), queued).await? {
            return Ok(reply);
        }
        info!(order = %id, user = %user.id, symbol = %order.symbol, side = order.side.as_str(), lots = %order.lots, "order written pending");

        let reply = match self.send(&link, &cmd).await {
            Delivery::Delivered => {
                let exec =
                    json!({"success": true, "request_id": request_id, "connection_id": link.broker_connection_id});
                Reply { status: 201, body: trade_with_mt5(&order, exec) }
            }
            Delivery::Refused(reason) => {
                let event = OrderEvent::NotSent { reason: reason.clone() };
                let rejected = self
                    .apply_event(user.id, id, |_| Some(event.clone()), |o| o.error = Some(reason.clone()), None)
                    .await?;
                self.forget(user.id, idem.as_ref()).await;
                if let AckOutcome::Applied(o) = &rejected {
                    self.notify(o).await;
                }
                return Err(TradingError::NotSent(reason));
            }
            Delivery::Uncertain(reason) => {
                let out = self.apply_event(user.id, id, |_| Some(OrderEvent::OpenTimedOut), |_| {}, None).await?;
                let order = outcome_order(out).unwrap_or(order);
                let exec = json!({"success": false, "request_id": request_id, "connection_id": link.broker_connection_id,
                    "error": format!("The command may not have reached MT5 ({reason}); the order will be reconciled")});
                Reply { status: 202, body: trade_with_mt5(&order, exec) }
            }
        };
        self.remember(user.id, idem.as_ref(), &reply).await;
        Ok(reply)
    }

    /// The margin check against the connector's last reported free margin.
    fn check_margin(&self, req: &PlaceOrder, account: &AccountSnapshot) -> TradingResult<()> {
        let currency = account.currency.unwrap_or(self.config.default_account_currency);
        let leverage = Decimal::from(account.leverage.unwrap_or(self.config.default_leverage).max(1));
        match margin_required(req.instrument, req.lots, req.price, leverage, currency, None) {
            Ok(m) if m.amount > account.free_margin => Err(TradingError::InsufficientMargin {
                required: m.amount.round_dp(2),
                free: account.free_margin.round_dp(2),
                currency,
            }),
            Ok(_) => Ok(()),
            // No conversion derivable (a cross in a third currency): the connector's own check decides.
            Err(_) => Ok(()),
        }
    }

    /// Writes the pending order, its reservation and the idempotency record in one transaction. `Some`: a
    /// concurrent request with the same key finished first — its reply stands.
    async fn reserve(
        &self,
        user: Uuid,
        order: &OrderRecord,
        idem: Option<&IdempotencyKey>,
        queued: TxOp,
    ) -> TradingResult<Option<Reply>> {
        let max = self.config.max_open_positions;
        for attempt in 0..MAX_ATTEMPTS {
            let mut ops = vec![
                TxOp::Put { item: order.to_item()?, condition: Some(Condition::NotExists) },
                TxOp::Update {
                    key: limits_key(user),
                    update: Update::new().add(OPEN_ORDERS_ATTR, 1),
                    condition: Some(
                        Condition::AttrNotExists(OPEN_ORDERS_ATTR.into())
                            .or(Condition::lt(OPEN_ORDERS_ATTR, max as i64)),
                    ),
                },
            ];
            if let Some(i) = idem {
                ops.push(self.idempotency_put(user, i, order.id)?);
            }
            // Last, so the indexes above stay those of the cancellation reasons; it has no condition.
            ops.push(queued.clone());
            match self.store.transact_write(ops).await {
                Ok(()) => return Ok(None),
                Err(StoreError::TransactionCanceled(reasons)) => {
                    let failed = |i: usize| reasons.get(i) == Some(&CancelReason::ConditionalCheckFailed);
                    if failed(1) {
                        return Err(TradingError::LimitReached(max));
                    }
                    if failed(2)
                        && let Some(i) = idem
                    {
                        // A concurrent request with the same key won the race: its reply (or 409) stands.
                        return match self.replay(user, i).await? {
                            Some(reply) => Ok(Some(reply)),
                            None => Err(TradingError::IdempotencyInFlight),
                        };
                    }
                    backoff(attempt).await;
                }
                Err(StoreError::Throttled) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TradingError::Busy)
    }

    // ------------------------------------------------------------------ close / modify

    /// `PUT /trading/orders/{id}/close`.
    pub async fn close(
        &self,
        user: &CurrentUser,
        order_id: Uuid,
        idem: Option<IdempotencyKey>,
    ) -> TradingResult<Reply> {
        self.command(user, order_id, idem, CommandKind::Close, None).await
    }

    /// `PUT /trading/orders/{id}/modify`.
    pub async fn modify(
        &self,
        user: &CurrentUser,
        order_id: Uuid,
        change: ModifyOrder,
        idem: Option<IdempotencyKey>,
    ) -> TradingResult<Reply> {
        self.command(user, order_id, idem, CommandKind::Modify, Some(change)).await
    }

    async fn command(
        &self,
        user: &CurrentUser,
        order_id: Uuid,
        idem: Option<IdempotencyKey>,
        kind: CommandKind,
        change: Option<ModifyOrder>,
    ) -> TradingResult<Reply> {
        if let Some(i) = &idem
            && let Some(reply) = self.replay(user.id, i).await?
        {
            return Ok(reply);
        }
        let request_event = match kind {
            CommandKind::Modify => OrderEvent::ModifyRequested,
            _ => OrderEvent::CloseRequested,
        };
        for attempt in 0..MAX_ATTEMPTS {
            let order = self.get(user.id, order_id).await?;
            let change_ref = change.as_ref();
            if let Some(c) = change_ref {
                validate_modify(&order, c)?;
            }
            let applied = match rules::transition(order.state(), &request_event).map_err(TradingError::Refused)? {
                Transition::Applied(ch) => ch,
                Transition::Unchanged(_) => {
                    // Already closing: the command in flight stands, nothing is sent twice.
                    let rid = RequestId { order_id, kind, seq: order.command_seq }.to_string();
                    let exec = json!({"success": true, "request_id": rid, "connection_id": order.broker_connection_id,
                        "message": "A close command is already in flight"});
                    return Ok(Reply { status: 200, body: trade_with_mt5(&order, exec) });
                }
            };
            let link = self
                .registry
                .find_connector(user.id, order.broker_connection_id)
                .await?
                .ok_or(TradingError::ConnectorOffline)?;
            let ticket = order.ticket.ok_or_else(|| {
                TradingError::Refused(Refused::NotOpen { status: order.status, action: kind.as_str() })
            })?;

            let mut next = order.clone();
            next.status = applied.to.status;
            next.version = applied.to.version;
            next.command_seq = applied.to.version;
            next.error = None;
            next.retcode = None;
            next.updated_at = self.clock.now();
            if let Some(c) = change_ref {
                next.pending_stop_loss = c.stop_loss.or(order.stop_loss);
                next.pending_take_profit = c.take_profit.or(order.take_profit);
            }
            let rid = RequestId { order_id, kind, seq: next.command_seq };
            let cmd = match kind {
                CommandKind::Modify => Command::TradeModify {
                    request_id: rid.to_string(),
                    ticket: ticket.0,
                    stop_loss: next.pending_stop_loss.map(crate::trading::fields::num),
                    take_profit: next.pending_take_profit.map(crate::trading::fields::num),
                    action: "modify",
                },
                _ => Command::TradeClose {
                    request_id: rid.to_string(),
                    symbol: next.symbol.clone(),
                    ticket: ticket.0,
                    lot_size: crate::trading::fields::num(next.lots),
                    client_order_id: ClientOrderId::from_uuid(order_id),
                },
            };
            let mut ops = vec![TxOp::Put { item: next.to_item()?, condition: Some(order.unchanged()) }];
            if let Some(i) = &idem {
                ops.push(self.idempotency_put(user.id, i, order_id)?);
            }
            // The command waits in the outbox until acked, written with the transition that issues it.
            ops.push(outbox_put_op(user.id, link.broker_connection_id, &cmd, next.updated_at)?);
            match self.store.transact_write(ops).await {
                Ok(()) => {}
                Err(StoreError::TransactionCanceled(r))
                    if idem.is_some() && r.get(1) == Some(&CancelReason::ConditionalCheckFailed) =>
                {
                    return Err(TradingError::IdempotencyInFlight);
                }
                Err(e) if e.is_condition_failure() || matches!(e, StoreError::TransactionCanceled(_)) => {
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }

            let reply = match self.send(&link, &cmd).await {
                Delivery::Delivered => {
                    let exec = json!({"success": true, "request_id": rid.to_string(), "connection_id": link.broker_connection_id});
                    Reply { status: 200, body: trade_with_mt5(&next, exec) }
                }
                Delivery::Refused(reason) => {
                    let failure = Failure { retcode: None, message: reason.clone() };
                    let event = match kind {
                        CommandKind::Modify => OrderEvent::ModifyFailed(failure),
                        _ => OrderEvent::CloseFailed(failure),
                    };
                    let out = self
                        .apply_event(
                            user.id,
                            order_id,
                            |_| Some(event.clone()),
                            |o| o.error = Some(reason.clone()),
                            None,
                        )
                        .await?;
                    self.forget(user.id, idem.as_ref()).await;
                    if let AckOutcome::Applied(o) = &out {
                        self.notify(o).await;
                    }
                    return Err(TradingError::NotSent(reason));
                }
                Delivery::Uncertain(reason) => {
                    let exec = json!({"success": false, "request_id": rid.to_string(), "connection_id": link.broker_connection_id,
                        "error": format!("The command may not have reached MT5 ({reason}); the order will be reconciled")});
                    Reply { status: 202, body: trade_with_mt5(&next, exec) }
                }
            };
            self.remember(user.id, idem.as_ref(), &reply).await;
            self.notify(&next).await;
            return Ok(reply);
        }
        Err(TradingError::Busy)
    }

    /// `PUT /trading/positions/{id}/trailing-stop`: stores (or disables) the trailing-stop settings of an
    /// open position. The trailing driver (reconciliation issue) moves the stop.
    pub async fn set_trailing_stop(
        &self,
        user: &CurrentUser,
        order_id: Uuid,
        settings: TrailingStopSettings,
    ) -> TradingResult<OrderRecord> {
        for attempt in 0..MAX_ATTEMPTS {
            let order = self.get(user.id, order_id).await?;
            match order.status {
                OrderStatus::Open | OrderStatus::ModifyPending => {}
                OrderStatus::External => return Err(TradingError::Refused(Refused::External { action: "modified" })),
                s if s.is_terminal() => return Err(TradingError::Refused(Refused::Terminal { status: s })),
                s => {
                    return Err(TradingError::Refused(Refused::NotOpen { status: s, action: "trail" }));
                }
            }
            let mut next = order.clone();
            next.trailing_stop = (settings.enabled || settings.breakeven_enabled).then_some(settings);
            next.version += 1;
            next.updated_at = self.clock.now();
            match self.store.put(next.to_item()?, Some(order.unchanged())).await {
                Ok(()) => return Ok(next),
                Err(e) if e.is_condition_failure() => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TradingError::Busy)
    }

    // ------------------------------------------------------------------ acknowledgements

    /// Applies a `TRADE_RESULT` from a connector of `user` (design §3): one conditional write on the order's
    /// state and version; duplicates, late and stale acks change nothing; an ack naming another user's order
    /// finds nothing (the key includes the connection's user).
    pub async fn apply_trade_result(&self, user: Uuid, result: &TradeResult) -> TradingResult<AckOutcome> {
        self.apply_trade_result_and_relay(user, result, None).await
    }

    /// [`apply_trade_result`](Self::apply_trade_result), also relaying `relay` (the connector's
    /// `TRADE_RESULT` as the dashboards receive it) in the same fan-out as the `ORDER_UPDATE`: one lookup
    /// of the user's dashboards per ack.
    pub async fn apply_trade_result_and_relay(
        &self,
        user: Uuid,
        result: &TradeResult,
        relay: Option<Value>,
    ) -> TradingResult<AckOutcome> {
        let Some(rid) = result.command() else {
            if let Some(r) = relay {
                self.broadcast_all(user, &[r]).await;
            }
            return Ok(AckOutcome::NotAnOrderCommand);
        };
        let now = self.clock.now();
        let (had_price, profit) = (result.price.is_some(), result.profit);
        let result = result.clone();
        // When the acknowledged command went out (an open's order is written just before sending; a close or
        // modify sets the order's update time), for the ack-latency histogram.
        let sent_at = Arc::new(std::sync::Mutex::new(None));
        let sent = sent_at.clone();
        let event = move |o: &OrderRecord| -> Option<OrderEvent> {
            let t = if rid.kind == CommandKind::Open { o.created_at } else { o.updated_at };
            *sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
            ack_event(o, rid, &result, now)
        };
        // What the ack says beyond the event: whether the fill price is MT5's, and MT5's own profit figure.
        let extra = move |o: &mut OrderRecord| match (rid.kind, o.status) {
            (CommandKind::Open, OrderStatus::Open) => o.fill_price_confirmed = had_price,
            (CommandKind::Close, OrderStatus::Closed) => o.profit = profit.map(|p| p.round_dp(2)),
            _ => {}
        };
        // The acknowledged command leaves the outbox in the same transaction (connector::outbox).
        let out = self.apply_event(user, rid.order_id, event, extra, Some(rid.to_string())).await;
        let out = match out {
            Err(TradingError::NotFound) => AckOutcome::UnknownOrder,
            Err(e) => {
                if let Some(r) = relay {
                    self.broadcast_all(user, &[r]).await;
                }
                return Err(e);
            }
            Ok(out) => out,
        };
        let kind = rid.kind.as_str();
        let latency = |sent: Option<DateTime<Utc>>| sent.and_then(|t| (now - t).to_std().ok());
        let sent = *sent_at.lock().unwrap_or_else(|e| e.into_inner());
        match &out {
            AckOutcome::Applied(_) => telemetry::order_ack(kind, "applied", latency(sent)),
            AckOutcome::Unchanged(..) => telemetry::order_ack(kind, "unchanged", None),
            AckOutcome::Refused(..) => telemetry::order_ack(kind, "refused", None),
            _ => telemetry::order_ack(kind, "unknown_order", None),
        }
        let mut messages: Vec<Value> = relay.into_iter().collect();
        match &out {
            AckOutcome::Applied(o) => {
                info!(order = %o.id, status = %o.status, version = o.version, "ack applied");
                messages.push(order_update(o));
            }
            AckOutcome::Refused(o, why) => {
                warn!(order = %o.id, status = %o.status, refused = %why, "ack refused; reconciliation will look at it");
            }
            _ => {}
        }
        self.broadcast_all(user, &messages).await;
        Ok(out)
    }

    /// An ack timeout (the reconciliation issue's delayed queue message): the command's order becomes
    /// unknown (open) or stays in flight (close/modify) until evidence arrives.
    pub async fn apply_timeout(&self, user: Uuid, rid: RequestId) -> TradingResult<AckOutcome> {
        let event = move |o: &OrderRecord| -> Option<OrderEvent> {
            match rid.kind {
                CommandKind::Open => Some(OrderEvent::OpenTimedOut),
                _ if rid.seq != o.command_seq => None,
                CommandKind::Close => Some(OrderEvent::CloseTimedOut),
                CommandKind::Modify => Some(OrderEvent::ModifyTimedOut),
            }
        };
        let out = self.apply_event(user, rid.order_id, event, |_| {}, None).await?;
        if let AckOutcome::Applied(o) = &out {
            self.notify(o).await;
        }
        Ok(out)
    }

    /// Reads the order, decides with the state machine, writes the change conditionally (with the
    /// reservation release and the closed-trade aggregates in the same transaction), retrying on races.
    /// `event` returns `None` for an event that is stale before the state machine sees it.
    async fn apply_event(
        &self,
        user: Uuid,
        order_id: Uuid,
        event: impl Fn(&OrderRecord) -> Option<OrderEvent>,
        extra: impl Fn(&mut OrderRecord),
        dequeue: Option<String>,
    ) -> TradingResult<AckOutcome> {
        for attempt in 0..MAX_ATTEMPTS {
            let order = self.get(user, order_id).await.map_err(|e| match e {
                TradingError::Refused(Refused::NotOwner) => TradingError::NotFound,
                e => e,
            })?;
            let Some(ev) = event(&order) else {
                return Ok(AckOutcome::Unchanged(Box::new(order), NoOp::Stale));
            };
            let change = match rules::transition(order.state(), &ev) {
                Ok(Transition::Applied(c)) => c,
                Ok(Transition::Unchanged(why)) => return Ok(AckOutcome::Unchanged(Box::new(order), why)),
                Err(why) => return Ok(AckOutcome::Refused(Box::new(order), why)),
            };
            let mut next = order.clone();
            next.status = change.to.status;
            next.version = change.to.version;
            next.ticket = change.to.ticket;
            next.updated_at = self.clock.now();
            apply_fields(&mut next, &order, &ev);
            extra(&mut next);
            if next.status == OrderStatus::Closed && next.profit.is_none() {
                next.profit = self.realised_profit(&next).await;
            }
            let mut ops = self.transition_ops(&order, &next, change.releases_reservation())?;
            if let (Some(rid), Some(broker)) = (&dequeue, next.broker_connection_id) {
                ops.push(outbox_delete_op(user, broker, rid));
            }
            let result = if ops.len() == 1 {
                let Some(TxOp::Put { item, condition }) = ops.into_iter().next() else { unreachable!() };
                self.store.put(item, condition).await
            } else {
                self.store.transact_write(ops).await
            };
            match result {
                Ok(()) => return Ok(AckOutcome::Applied(Box::new(next))),
                Err(e) if e.is_condition_failure() || matches!(e, StoreError::TransactionCanceled(_)) => {
                    backoff(attempt).await
                }
                Err(StoreError::Throttled) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TradingError::Busy)
    }

    /// The writes of one transition: the order (conditioned on what was read), the reservation release and
    /// the closed-trade aggregates.
    fn transition_ops(&self, before: &OrderRecord, after: &OrderRecord, releases: bool) -> TradingResult<Vec<TxOp>> {
        let mut ops = vec![TxOp::Put { item: after.to_item()?, condition: Some(before.unchanged()) }];
        if releases {
            ops.push(TxOp::Update {
                key: limits_key(after.user_id),
                update: Update::new().add(OPEN_ORDERS_ATTR, -1),
                condition: None,
            });
        }
        let closed = |s: OrderStatus| matches!(s, OrderStatus::Closed | OrderStatus::ClosedExternally);
        if closed(after.status) && !closed(before.status) {
            let profit = after.profit.unwrap_or_default();
            let won = i64::from(profit > Decimal::ZERO);
            ops.push(TxOp::Update {
                key: stats_key(after.user_id),
                update: Update::new().add("closed_trades", 1).add("winning_trades", won).add("total_pnl", profit),
                condition: None,
            });
            let day = after.close_time.unwrap_or(after.updated_at).date_naive();
            ops.push(TxOp::Update {
                key: day_key(after.user_id, day),
                update: Update::new().add("pnl", profit),
                condition: None,
            });
        }
        Ok(ops)
    }

    /// Profit of a close whose ack carried no MT5 profit: from the fills, in the account currency.
    async fn realised_profit(&self, o: &OrderRecord) -> Option<Decimal> {
        let currency = self.account_currency(o).await;
        profit_at(o, o.close_price?, currency)
    }

    /// The currency of the account an order's connection trades in (its last snapshot), else the configured default.
    pub(crate) async fn account_currency(&self, o: &OrderRecord) -> Currency {
        let account = match o.broker_connection_id {
            Some(b) => self.registry.account(o.user_id, b).await.ok().flatten(),
            None => None,
        };
        account.and_then(|a| a.currency).unwrap_or(self.config.default_account_currency)
    }

    // ------------------------------------------------------------------ delivery

    async fn send(&self, link: &ConnectorLink, cmd: &Command) -> Delivery {
        let body = Bytes::from(cmd.to_json());
        // A trade command is already in the connection's outbox (connector::outbox), written with the
        // order; it is removed again below when it provably never left.
        let (user, broker) = (link.user_id, link.broker_connection_id);
        let delivery = match self.push.post(&link.ws_connection_id, body).await {
            Ok(PushOutcome::Delivered) => {
                telemetry::order_command_sent();
                Delivery::Delivered
            }
            Ok(PushOutcome::Gone) => {
                info!(ws = %link.ws_connection_id, "connector gone (410): removing its link");
                if let Err(e) = self.registry.unregister(&link.ws_connection_id).await {
                    warn!(error = %e, "could not remove a gone connection");
                }
                Delivery::Refused("Connector is not online".into())
            }
            Err(PushError::Invalid(m)) => Delivery::Refused(m),
            Err(PushError::Unavailable(m)) => Delivery::Uncertain(m),
        };
        if matches!(delivery, Delivery::Refused(_))
            && cmd.is_trade()
            && let Err(e) = self.registry.outbox_remove(user, broker, cmd.request_id()).await
        {
            warn!(error = %e, "could not remove an undelivered command from the outbox");
        }
        // A command that may have left gets its ack timeout (reconcile::timeouts).
        if cmd.is_trade()
            && !matches!(delivery, Delivery::Refused(_))
            && let Some(t) = &self.ack_timeouts
        {
            t.schedule(user, broker, cmd.request_id(), self.clock.now()).await;
        }
        delivery
    }

    /// Tells the user's dashboards about an order change (`ORDER_UPDATE`). Best effort: a browser that is
    /// gone is forgotten; failures are logged, never fail the use case.
    pub async fn notify(&self, order: &OrderRecord) {
        self.broadcast(order.user_id, &order_update(order)).await;
    }

    /// Sends a message to every dashboard of a user.
    pub async fn broadcast(&self, user: Uuid, message: &Value) {
        self.broadcast_all(user, std::slice::from_ref(message)).await;
    }

    /// Sends messages, in order, to every dashboard of a user (one lookup of the dashboards).
    pub async fn broadcast_all(&self, user: Uuid, messages: &[Value]) {
        if messages.is_empty() {
            return;
        }
        let browsers = match self.registry.browsers(user).await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "could not list the user's dashboards");
                return;
            }
        };
        if browsers.is_empty() {
            return;
        }
        let bodies: Vec<Bytes> = messages.iter().map(|m| Bytes::from(m.to_string())).collect();
        'browsers: for ws in browsers {
            for body in &bodies {
                match self.push.post(&ws, body.clone()).await {
                    Ok(PushOutcome::Delivered) => {}
                    Ok(PushOutcome::Gone) => {
                        let _ = self.registry.unregister(&ws).await;
                        continue 'browsers;
                    }
                    Err(e) => warn!(ws = %ws, error = %e, "dashboard push failed"),
                }
            }
        }
    }
}

enum Delivery {
    Delivered,
    /// Provably never left (no such connection).
    Refused(String),
    /// May or may not have reached the connector.
    Uncertain(String),
}

fn outcome_order(out: AckOutcome) -> Option<OrderRecord> {
    match out {
        AckOutcome::Applied(o) | AckOutcome::Unchanged(o, _) | AckOutcome::Refused(o, _) => Some(*o),
        _ => None,
    }
}

/// The state-machine event of a `TRADE_RESULT` for an order (`None`: stale before the state machine looks,
/// e.g. the ack of an older close/modify command).
fn ack_event(o: &OrderRecord, rid: RequestId, r: &TradeResult, now: DateTime<Utc>) -> Option<OrderEvent> {
    let failure =
        || Failure { retcode: r.retcode, message: r.error.clone().unwrap_or_else(|| "Unknown error".to_owned()) };
    let time = r.time.unwrap_or(now);
    match rid.kind {
        CommandKind::Open => Some(match (r.success, r.ticket) {
            (true, Some(t)) => {
                OrderEvent::OpenFilled(Fill { ticket: Ticket(t), price: r.price.unwrap_or(o.requested_price), time })
            }
            // "Success" without a ticket proves nothing: unknown until reconciliation finds the position.
            (true, None) => OrderEvent::OpenFailed(Failure {
                retcode: Some(nusatrade_domain::order::Retcode::ERROR),
                message: "success reported without a ticket".into(),
            }),
            (false, _) => OrderEvent::OpenFailed(failure()),
        }),
        _ if rid.seq != o.command_seq => None,
        CommandKind::Close if r.success => {
            Some(OrderEvent::CloseFilled { price: r.price.or(o.current_price).unwrap_or(o.requested_price), time })
        }
        CommandKind::Close => Some(OrderEvent::CloseFailed(failure())),
        CommandKind::Modify if r.success => Some(OrderEvent::ModifyAcked),
        CommandKind::Modify => Some(OrderEvent::ModifyFailed(failure())),
    }
}

/// The record fields an applied event sets.
fn apply_fields(next: &mut OrderRecord, before: &OrderRecord, ev: &OrderEvent) {
    match ev {
        OrderEvent::OpenFilled(f) => {
            next.open_price = Some(f.price);
            next.open_time = Some(f.time);
            next.fill_price_confirmed = true;
            next.error = None;
            next.retcode = None;
        }
        OrderEvent::OpenFailed(f) | OrderEvent::CloseFailed(f) | OrderEvent::ModifyFailed(f) => {
            next.error = Some(f.message.clone());
            next.retcode = f.retcode.map(|r| r.0);
            next.pending_stop_loss = None;
            next.pending_take_profit = None;
        }
        OrderEvent::CloseFilled { price, time } => {
            next.close_price = Some(*price);
            next.close_time = Some(*time);
            next.pending_stop_loss = None;
            next.pending_take_profit = None;
        }
        OrderEvent::ModifyAcked => {
            next.stop_loss = before.pending_stop_loss.or(before.stop_loss);
            next.take_profit = before.pending_take_profit.or(before.take_profit);
            next.pending_stop_loss = None;
            next.pending_take_profit = None;
            next.error = None;
        }
        _ => {}
    }
}

/// SL/TP of a modify must be on the protective side of the position's reference price (the last known
/// price, else the open price).
fn validate_modify(order: &OrderRecord, c: &ModifyOrder) -> TradingResult<()> {
    let reference = order.current_price.or(order.open_price).unwrap_or(order.requested_price);
    rules::validate_stops(order.side, reference, c.stop_loss, c.take_profit)
        .map_err(|e| TradingError::Invalid(e.to_string()))
}

async fn backoff(attempt: u32) {
    let ms = (1u64 << attempt.min(6)) + u64::from(rand::random::<u8>() % 8);
    tokio::time::sleep(StdDuration::from_millis(ms)).await;
}

/// What a position would make if closed at `price`, in the account currency `currency` (the domain's
/// [`rules::closed_profit`]); `None` when the order has no entry price or an unknown instrument.
pub(crate) fn profit_at(o: &OrderRecord, price: Decimal, currency: Currency) -> Option<Decimal> {
    let open = o.open_price?;
    let instrument = lookup(&o.symbol).ok()?;
    let conversion = instrument.quote_to_account(currency, Some(price), None).ok()?;
    rules::closed_profit(instrument, o.side, Lots::new_unchecked(o.lots), open, price, &conversion)
        .ok()
        .map(|m| m.amount)
}
