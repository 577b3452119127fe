//! MT5 acknowledgements and ack timeouts applied to orders (design §3): the domain reads an ack or a timeout as a
//! state-machine event (`nusatrade_domain::order::command`), the state machine decides, and the order book writes
//! the transition — one conditional write on the order's state and version, with the reservation release, the
//! closed-trade aggregates and the acknowledged command leaving the outbox in the same transaction. Duplicate,
//! late and stale acks change nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::money::{Currency, Lots};
use nusatrade_domain::order::command::{ack_event, effect, timeout_event};
use nusatrade_domain::order::{self as rules, NoOp, OrderEvent, OrderStatus, Refused, Transition};
use rust_decimal::Decimal;
use serde_json::Value;
use tracing::{info, warn};
use uuid::Uuid;

use super::book::{Step, Written, backoff};
use super::error::{TradingError, TradingResult};
use super::service::{MAX_ATTEMPTS, OrderService};
use super::store::OrderRecord;
use super::views::order_update;
use crate::connector::{CommandKind, RequestId, TradeResult};
use crate::ports::StoreError;
use crate::telemetry;

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

impl AckOutcome {
    /// The order as it stands after the ack or event, when there is one.
    pub fn into_order(self) -> Option<OrderRecord> {
        match self {
            AckOutcome::Applied(o) | AckOutcome::Unchanged(o, _) | AckOutcome::Refused(o, _) => Some(*o),
            _ => None,
        }
    }
}

impl OrderService {
    /// Applies a `TRADE_RESULT` from a connector of `user` (design §3): one conditional write on the order's
    /// state and version; duplicates, late and stale acks change nothing; an ack naming another user's order
    /// finds nothing (the key includes the connection's user).
    pub async fn apply_trade_result(&self, user: Uuid, result: &TradeResult) -> TradingResult<AckOutcome> {
        self.apply_trade_result_and_relay(user, None, result, None).await
    }

    /// [`apply_trade_result`](Self::apply_trade_result), also relaying `relay` (the connector's
    /// `TRADE_RESULT` as the dashboards receive it) in the same fan-out as the `ORDER_UPDATE`: one lookup
    /// of the user's dashboards per ack. `broker`: the connection the ack came from — its acknowledged command
    /// leaves the outbox whatever the ack says (with the transition when one is applied, on its own otherwise).
    pub async fn apply_trade_result_and_relay(
        &self,
        user: Uuid,
        broker: Option<Uuid>,
        result: &TradeResult,
        relay: Option<Value>,
    ) -> TradingResult<AckOutcome> {
        let Some(rid) = result.command() else {
            self.dequeue_acked(user, broker, result).await;
            if let Some(r) = relay {
                self.dashboards.broadcast_all(user, &[r]).await;
            }
            return Ok(AckOutcome::NotAnOrderCommand);
        };
        let now = self.clock.now();
        let (had_price, profit) = (result.price.is_some(), result.profit);
        let ack = result.ack();
        // When the acknowledged command went out (an open's order is written just before sending; a close or
        // modify sets the order's update time), for the ack-latency histogram.
        let sent_at = Arc::new(std::sync::Mutex::new(None));
        let sent = sent_at.clone();
        let event = move |o: &OrderRecord| -> Option<OrderEvent> {
            let t = if rid.kind == CommandKind::Open { o.created_at } else { o.updated_at };
            *sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
            ack_event(&o.awaiting(), rid, &ack, now)
        };
        // What the ack says beyond the event: whether the fill price is MT5's, and MT5's own profit figure.
        let extra = move |o: &mut OrderRecord| match (rid.kind, o.status) {
            (CommandKind::Open, OrderStatus::Open) => o.fill_price_confirmed = had_price,
            (CommandKind::Close, OrderStatus::Closed) => o.profit = profit.map(|p| p.round_dp(2)),
            _ => {}
        };
        // The acknowledged command leaves the outbox in the same transaction (connector::outbox).
        let out = self.apply_event(user, rid.order_id, event, extra, Some(rid.to_string()), false).await;
        if !matches!(out, Ok(AckOutcome::Applied(_))) {
            self.dequeue_acked(user, broker, result).await;
        }
        let out = match out {
            Err(TradingError::NotFound) => AckOutcome::UnknownOrder,
            Err(e) => {
                if let Some(r) = relay {
                    self.dashboards.broadcast_all(user, &[r]).await;
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
        self.dashboards.broadcast_all(user, &messages).await;
        Ok(out)
    }

    /// The acknowledged command leaves its connection's outbox (an ack that applied no transition: duplicate,
    /// stale, refused, unknown order, not an order command, or an error).
    async fn dequeue_acked(&self, user: Uuid, broker: Option<Uuid>, result: &TradeResult) {
        if let (Some(broker), Some(rid)) = (broker, result.request_id.as_deref())
            && let Err(e) = self.book.dequeue(user, broker, rid).await
        {
            warn!(error = %e, "could not remove an acknowledged command from the outbox");
        }
    }

    /// An ack timeout (the reconciliation issue's delayed queue message): the command's order becomes
    /// unknown (open) or stays in flight (close/modify) until evidence arrives.
    pub async fn apply_timeout(&self, user: Uuid, rid: RequestId) -> TradingResult<AckOutcome> {
        let event = move |o: &OrderRecord| timeout_event(&o.awaiting(), rid);
        self.apply_event(user, rid.order_id, event, |_| {}, None, true).await
    }

    /// Reads the order, decides with the state machine, writes the change through the order book, retrying on
    /// races. `event` returns `None` for an event that is stale before the state machine sees it; `extra` sets
    /// what the event says beyond the domain's [`effect`]; `acked` is the request id of the acknowledged command
    /// (it leaves the outbox in the same write); `notify`: an applied change is pushed to the dashboards.
    pub(super) async fn apply_event(
        &self,
        user: Uuid,
        order_id: Uuid,
        event: impl Fn(&OrderRecord) -> Option<OrderEvent>,
        extra: impl Fn(&mut OrderRecord),
        acked: Option<String>,
        notify: bool,
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
            let mut next = order.moved(&change, self.clock.now());
            next.apply_effect(&order, &effect(&ev));
            extra(&mut next);
            if next.status == OrderStatus::Closed && next.profit.is_none() {
                next.profit = self.realised_profit(&next).await;
            }
            let step = Step { before: &order, after: &next, releases_reservation: change.releases_reservation() };
            match self.book.apply(step, None, acked.as_deref()).await {
                Ok(Written::Yes) => {
                    if notify {
                        self.notify(&next).await;
                    }
                    return Ok(AckOutcome::Applied(Box::new(next)));
                }
                Ok(Written::Lost) | Err(StoreError::Throttled) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TradingError::Busy)
    }

    /// Profit of a close without MT5's own figure (an ack without one, a close found by reconciliation): from the
    /// fills, in the account currency.
    pub async fn realised_profit(&self, o: &OrderRecord) -> Option<Decimal> {
        let currency = self.account_currency(o).await;
        profit_at(o, o.close_price?, currency)
    }

    /// The currency of the account an order's connection trades in (its last snapshot), else the configured default.
    pub(crate) async fn account_currency(&self, o: &OrderRecord) -> Currency {
        let account = match o.broker_connection_id {
            Some(b) => self.registry().account(o.user_id, b).await.ok().flatten(),
            None => None,
        };
        account.and_then(|a| a.currency).unwrap_or(self.config.default_account_currency)
    }
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
