//! The order use cases (design §3): place, close, modify, trailing-stop settings, and the application of
//! MT5 acknowledgements and timeouts. The REST routes and the browser WebSocket's `SEND_TRADE_COMMAND`
//! both call these, so risk checks, idempotency and ownership are the same on every path. Every write goes
//! through the [`OrderBook`](super::book::OrderBook); acknowledgements and timeouts are applied in [`super::acks`].
//!
//! Write first, then send: an order is written `pending` together with its reservation (and its
//! idempotency record) in one conditional transaction before the command goes to the connector. What
//! the push says decides the rest:
//!
//! | push outcome | order | outcome (HTTP, by the routes) |
//! |---|---|---|
//! | delivered | stays `pending` until the ack | [`Delivery::Sent`] (201, `mt5_execution.success = true`) |
//! | gone (410) / no connector | `rejected`, reservation released, idempotency key freed — it never left | [`TradingError::NotSent`] (503) |
//! | error (outcome unknown) | `unknown`, reservation kept; a late ack or reconciliation decides | [`Delivery::Uncertain`] (202) |
//!
//! Close and modify follow the same rules (`close_pending` / `modify_pending`, back to `open` when the
//! command provably never left).

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use nusatrade_domain::instrument::Instrument;
use nusatrade_domain::money::{Lots, Side};
use nusatrade_domain::order::command::not_sent_event;
use nusatrade_domain::order::{self as rules, ClientOrderId, OrderEvent, OrderStatus, Refused, Transition};
use nusatrade_domain::sizing::margin_required;
use nusatrade_domain::trailing::TrailingStopSettings;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tracing::{info, warn};
use uuid::Uuid;

use super::book::{OrderBook, Reserved, Written, backoff};
use super::config::TradingConfig;
use super::error::{TradingError, TradingResult};
use super::store::IdempotencyKey;
use super::store::OrderRecord;
use super::timeouts::AckTimeouts;
use super::views::{order_update, trade_with_mt5};
use crate::auth::CurrentUser;
use crate::connector::{AccountSnapshot, Command, CommandKind, ConnectorLink, ConnectorRegistry, Fanout, RequestId};
use crate::ports::{Clock, IdGenerator, PushError, PushOutcome};
use crate::settings::RuntimeSettings;
use crate::telemetry;
use crate::wire::num;

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

/// How an accepted command reached the connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to the connector; its ack decides.
    Sent,
    /// May or may not have reached the connector; a late ack or reconciliation decides.
    Uncertain,
    /// The same command is already in flight: nothing was sent again.
    InFlight,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Sent => "sent",
            Delivery::Uncertain => "uncertain",
            Delivery::InFlight => "in_flight",
        }
    }

    pub fn parse(s: &str) -> Option<Delivery> {
        Some(match s {
            "sent" => Delivery::Sent,
            "uncertain" => Delivery::Uncertain,
            "in_flight" => Delivery::InFlight,
            _ => return None,
        })
    }
}

/// An order command accepted (placed, or a close/modify issued): which command, how it was delivered, and the
/// order as the client reads it (`{"trade": …, "mt5_execution": …}`). Idempotent repeats get the same back.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    pub order_id: Uuid,
    pub kind: CommandKind,
    pub delivery: Delivery,
    pub body: Value,
}

impl Placed {
    fn new(order: &OrderRecord, kind: CommandKind, delivery: Delivery, execution: Value) -> Self {
        Placed { order_id: order.id, kind, delivery, body: trade_with_mt5(order, execution) }
    }
}

/// How often a write that lost a race is re-read and retried.
pub(super) const MAX_ATTEMPTS: u32 = 8;

/// The order use cases over the ports.
#[derive(Clone)]
pub struct OrderService {
    /// Every read and write of orders.
    pub book: OrderBook,
    /// The user's sockets: commands to connectors, `ORDER_UPDATE`s to dashboards.
    pub dashboards: Fanout,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub config: Arc<TradingConfig>,
    /// Schedules the delayed ack-timeout message of every trade command sent (issue #6; `None`: not scheduled).
    pub ack_timeouts: Option<AckTimeouts>,
    /// The operator's run-time settings (`max_lot_size`, `max_positions_per_user`) over `config`; `None`: `config`
    /// alone.
    pub settings: Option<RuntimeSettings>,
}

impl OrderService {
    /// With ack timeouts on the ports' `reconcile` queue (delay `NUSATRADE_ACK_TIMEOUT_SECS`, default 30 s).
    pub fn new(ports: &crate::ports::Ports, config: TradingConfig) -> Self {
        let registry = ConnectorRegistry::new(ports.store.clone(), ports.clock.clone());
        OrderService::with_parts(
            OrderBook::new(ports.store.clone(), ports.clock.clone()),
            Fanout::new(ports.push.clone(), registry),
            ports.ids.clone(),
            config,
        )
        .with_ack_timeouts(Some(AckTimeouts::from_env(ports.queue.clone())))
    }

    /// From its parts, without ack timeouts.
    pub fn with_parts(book: OrderBook, dashboards: Fanout, ids: Arc<dyn IdGenerator>, config: TradingConfig) -> Self {
        let clock = book.clock.clone();
        OrderService { book, dashboards, clock, ids, config: Arc::new(config), ack_timeouts: None, settings: None }
    }

    /// Reads the largest lot and the open-position limit from the operator's settings (`None`: from `config`).
    pub fn with_settings(mut self, settings: Option<RuntimeSettings>) -> Self {
        self.settings = settings;
        self
    }

    /// The largest lot of one order and the open-position limit now: the stored settings' (`max_lot_size`,
    /// `max_positions_per_user`, from the cached snapshot: no store read but its refresh) over the configuration's.
    pub async fn limits(&self) -> (Decimal, u32) {
        let (lot, positions) = (self.config.max_lot, self.config.max_open_positions);
        match &self.settings {
            None => (lot, positions),
            Some(settings) => {
                let o = &settings.snapshot().await.overrides;
                (o.max_lot_size.unwrap_or(lot), o.max_positions_per_user.unwrap_or(positions))
            }
        }
    }

    /// Replaces how ack timeouts are scheduled (`None`: not at all).
    pub fn with_ack_timeouts(mut self, ack_timeouts: Option<AckTimeouts>) -> Self {
        self.ack_timeouts = ack_timeouts;
        self
    }

    /// The connector registry (links, snapshots, quotes).
    pub fn registry(&self) -> &ConnectorRegistry {
        &self.dashboards.registry
    }

    /// A time-ordered (v7) order id: newest-first listings come from the sort key.
    fn new_order_id(&self, now: DateTime<Utc>) -> Uuid {
        self.ids.time_ordered(now)
    }

    // ------------------------------------------------------------------ reads

    /// One order of the user (404 for unknown ids and other users' ids alike).
    pub async fn get(&self, user: Uuid, order_id: Uuid) -> TradingResult<OrderRecord> {
        let record = self.book.get(user, order_id).await?.ok_or(TradingError::NotFound)?;
        rules::check_owner(record.user_id, user).map_err(TradingError::Refused)?;
        Ok(record)
    }

    // ------------------------------------------------------------------ place

    /// `POST /trading/orders` (counted by outcome: `sent`, `uncertain` — a command that may not have left —,
    /// `refused`).
    pub async fn place(
        &self,
        user: &CurrentUser,
        req: PlaceOrder,
        idem: Option<IdempotencyKey>,
    ) -> TradingResult<Placed> {
        let out = self.place_order(user, req, idem).await;
        telemetry::order_placed(match &out {
            Ok(p) if p.delivery == Delivery::Uncertain => "uncertain",
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
    ) -> TradingResult<Placed> {
        if !user.may_trade() {
            return Err(TradingError::NotVerified);
        }
        // A repeat answers as the first request did, even if the operator's limits changed since.
        if let Some(i) = &idem
            && let Some(placed) = self.replay(user.id, i).await?
        {
            return Ok(placed);
        }
        let (max_lot, max_open_positions) = self.limits().await;
        if req.lots.value() > max_lot {
            return Err(TradingError::Invalid(format!("Lot size cannot exceed {}", max_lot.normalize())));
        }
        let link = self
            .registry()
            .find_connector(user.id, req.broker_connection_id)
            .await?
            .ok_or(TradingError::ConnectorOffline)?;
        let (account, quote) = tokio::join!(
            self.registry().account(user.id, link.broker_connection_id),
            self.registry().quote(user.id, req.instrument.symbol, self.config.quote_max_age)
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
            close_unconfirmed: false,
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
            lot_size: num(order.lots),
            comment: order.client_order_id.clone(),
            client_order_id: ClientOrderId::from_uuid(id),
            stop_loss: order.stop_loss.map(num),
            take_profit: order.take_profit.map(num),
        };
        if let Some(placed) = self.reserve(user.id, &order, idem.as_ref(), &cmd, max_open_positions).await? {
            return Ok(placed);
        }
        info!(order = %id, user = %user.id, symbol = %order.symbol, side = order.side.as_str(), lots = %order.lots, "order written pending");

        let exec = |success: bool| json!({"success": success, "request_id": request_id, "connection_id": link.broker_connection_id});
        let placed = match self.send(&link, &cmd).await {
            Sending::Delivered => Placed::new(&order, CommandKind::Open, Delivery::Sent, exec(true)),
            Sending::Refused(reason) => {
                let event = not_sent_event(CommandKind::Open, &reason);
                self.apply_event(user.id, id, |_| Some(event.clone()), |o| o.error = Some(reason.clone()), None, true)
                    .await?;
                self.forget(user.id, idem.as_ref()).await;
                return Err(TradingError::NotSent(reason));
            }
            Sending::Uncertain(reason) => {
                let out =
                    self.apply_event(user.id, id, |_| Some(OrderEvent::OpenTimedOut), |_| {}, None, false).await?;
                let order = out.into_order().unwrap_or(order);
                let mut exec = exec(false);
                exec["error"] =
                    json!(format!("The command may not have reached MT5 ({reason}); the order will be reconciled"));
                Placed::new(&order, CommandKind::Open, Delivery::Uncertain, exec)
            }
        };
        self.remember(user.id, idem.as_ref(), &placed).await;
        Ok(placed)
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

    /// Writes the pending order, its reservation, the idempotency claim and the open command in one transaction
    /// (retrying lost races). `Some`: a concurrent request with the same key finished first — its outcome stands.
    async fn reserve(
        &self,
        user: Uuid,
        order: &OrderRecord,
        idem: Option<&IdempotencyKey>,
        cmd: &Command,
        max: u32,
    ) -> TradingResult<Option<Placed>> {
        for attempt in 0..MAX_ATTEMPTS {
            let claim = idem.map(|i| self.claim(user, i, order.id)).transpose()?;
            match self.book.reserve(order, max, claim, cmd).await? {
                Reserved::Yes => return Ok(None),
                Reserved::LimitReached => return Err(TradingError::LimitReached(max)),
                Reserved::KeyTaken => {
                    let Some(i) = idem else { unreachable!("a key was claimed") };
                    // A concurrent request with the same key won the race: its outcome (or "in progress") stands.
                    return match self.replay(user, i).await? {
                        Some(placed) => Ok(Some(placed)),
                        None => Err(TradingError::IdempotencyInFlight),
                    };
                }
                Reserved::Retry => backoff(attempt).await,
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
    ) -> TradingResult<Placed> {
        self.command(user, order_id, idem, CommandKind::Close, None).await
    }

    /// `PUT /trading/orders/{id}/modify`.
    pub async fn modify(
        &self,
        user: &CurrentUser,
        order_id: Uuid,
        change: ModifyOrder,
        idem: Option<IdempotencyKey>,
    ) -> TradingResult<Placed> {
        self.command(user, order_id, idem, CommandKind::Modify, Some(change)).await
    }

    async fn command(
        &self,
        user: &CurrentUser,
        order_id: Uuid,
        idem: Option<IdempotencyKey>,
        kind: CommandKind,
        change: Option<ModifyOrder>,
    ) -> TradingResult<Placed> {
        if let Some(i) = &idem
            && let Some(placed) = self.replay(user.id, i).await?
        {
            return Ok(placed);
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
                    return Ok(Placed::new(&order, kind, Delivery::InFlight, exec));
                }
            };
            let link = self
                .registry()
                .find_connector(user.id, order.broker_connection_id)
                .await?
                .ok_or(TradingError::ConnectorOffline)?;
            let ticket = order.ticket.ok_or_else(|| {
                TradingError::Refused(Refused::NotOpen { status: order.status, action: kind.as_str() })
            })?;

            let mut next = order.moved(&applied, self.clock.now());
            next.command_seq = applied.to.version;
            next.error = None;
            next.retcode = None;
            if let Some(c) = change_ref {
                next.pending_stop_loss = c.stop_loss.or(order.stop_loss);
                next.pending_take_profit = c.take_profit.or(order.take_profit);
            }
            let rid = RequestId { order_id, kind, seq: next.command_seq };
            let cmd = match kind {
                CommandKind::Modify => Command::TradeModify {
                    request_id: rid.to_string(),
                    ticket: ticket.0,
                    stop_loss: next.pending_stop_loss.map(num),
                    take_profit: next.pending_take_profit.map(num),
                    action: "modify",
                },
                _ => Command::TradeClose {
                    request_id: rid.to_string(),
                    symbol: next.symbol.clone(),
                    ticket: ticket.0,
                    lot_size: num(next.lots),
                    client_order_id: ClientOrderId::from_uuid(order_id),
                },
            };
            // The command waits in the outbox until acked, written with the transition that issues it.
            let claim = idem.as_ref().map(|i| self.claim(user.id, i, order_id)).transpose()?;
            match self.book.issue(&order, &next, claim, &cmd).await? {
                Reserved::Yes => {}
                Reserved::KeyTaken => return Err(TradingError::IdempotencyInFlight),
                Reserved::LimitReached | Reserved::Retry => {
                    backoff(attempt).await;
                    continue;
                }
            }

            let exec = |success: bool| json!({"success": success, "request_id": rid.to_string(), "connection_id": link.broker_connection_id});
            let placed = match self.send(&link, &cmd).await {
                Sending::Delivered => Placed::new(&next, kind, Delivery::Sent, exec(true)),
                Sending::Refused(reason) => {
                    let event = not_sent_event(kind, &reason);
                    self.apply_event(
                        user.id,
                        order_id,
                        |_| Some(event.clone()),
                        |o| o.error = Some(reason.clone()),
                        None,
                        true,
                    )
                    .await?;
                    self.forget(user.id, idem.as_ref()).await;
                    return Err(TradingError::NotSent(reason));
                }
                Sending::Uncertain(reason) => {
                    let mut exec = exec(false);
                    exec["error"] =
                        json!(format!("The command may not have reached MT5 ({reason}); the order will be reconciled"));
                    Placed::new(&next, kind, Delivery::Uncertain, exec)
                }
            };
            self.remember(user.id, idem.as_ref(), &placed).await;
            self.notify(&next).await;
            return Ok(placed);
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
            match self.book.touch(&order, &next).await? {
                Written::Yes => return Ok(next),
                Written::Lost => backoff(attempt).await,
            }
        }
        Err(TradingError::Busy)
    }

    // ------------------------------------------------------------------ delivery

    async fn send(&self, link: &ConnectorLink, cmd: &Command) -> Sending {
        let body = Bytes::from(cmd.to_json());
        // A trade command is already in the connection's outbox (connector::outbox), written with the
        // order; it is removed again below when it provably never left.
        let (user, broker) = (link.user_id, link.broker_connection_id);
        let delivery = match self.dashboards.push.post(&link.ws_connection_id, body).await {
            Ok(PushOutcome::Delivered) => {
                telemetry::order_command_sent();
                Sending::Delivered
            }
            Ok(PushOutcome::Gone) => {
                info!(ws = %link.ws_connection_id, "connector gone (410): removing its link");
                if let Err(e) = self.registry().unregister(&link.ws_connection_id).await {
                    warn!(error = %e, "could not remove a gone connection");
                }
                Sending::Refused("Connector is not online".into())
            }
            Err(PushError::Invalid(m)) => Sending::Refused(m),
            Err(PushError::Unavailable(m)) => Sending::Uncertain(m),
        };
        if matches!(delivery, Sending::Refused(_))
            && cmd.is_trade()
            && let Err(e) = self.book.dequeue(user, broker, cmd.request_id()).await
        {
            warn!(error = %e, "could not remove an undelivered command from the outbox");
        }
        // A command that may have left gets its ack timeout (reconcile::timeouts).
        if cmd.is_trade()
            && !matches!(delivery, Sending::Refused(_))
            && let Some(t) = &self.ack_timeouts
        {
            t.schedule(user, broker, cmd.request_id(), self.clock.now()).await;
        }
        delivery
    }

    /// Tells the user's dashboards about an order change (`ORDER_UPDATE`). Best effort: a browser that is
    /// gone is forgotten; failures are logged, never fail the use case.
    pub async fn notify(&self, order: &OrderRecord) {
        self.dashboards.broadcast(order.user_id, &order_update(order)).await;
    }
}

/// What a push of a command gave.
enum Sending {
    Delivered,
    /// Provably never left (no such connection).
    Refused(String),
    /// May or may not have reached the connector.
    Uncertain(String),
}

/// SL/TP of a modify must be on the protective side of the position's reference price (the last known
/// price, else the open price).
fn validate_modify(order: &OrderRecord, c: &ModifyOrder) -> TradingResult<()> {
    let reference = order.current_price.or(order.open_price).unwrap_or(order.requested_price);
    rules::validate_stops(order.side, reference, c.stop_loss, c.take_profit)
        .map_err(|e| TradingError::Invalid(e.to_string()))
}
