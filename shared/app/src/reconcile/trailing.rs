//! Trailing stops on live positions (audit GAP #8; contract §4.6): on each price report from a connector
//! (`POSITION_UPDATE`, positions snapshots), every open position of that connection with trailing-stop settings gets
//! the stop the domain rule computes (`nusatrade_domain::trailing::next_stop_loss`: activation, distance, breakeven +
//! lock) — only in the protective direction, from the stop MT5 reports — sent as `TRADE_MODIFY` through the order
//! use case (`OrderService::modify`: `modify_pending`, then the ack decides, by the trading rules), at most once per
//! [`ReconcileSettings::trailing_gap`] per position.
//!
//! The gap holds across function instances: it is a conditional write of `USER#<uid>` / `TRAIL#<order id>`
//! (`sent_at` at least the gap ago, or absent). Price reports of one connection are evaluated at most every
//! [`ReconcileSettings::trailing_every`] per process (one read of the live-orders index each). Without a known ATR the
//! ATR method uses its 15-pip fallback (contract §4.6).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::money::Side;
use nusatrade_domain::order::OrderStatus;
use nusatrade_domain::trailing::next_stop_loss;
use rust_decimal::Decimal;
use tracing::{info, warn};
use uuid::Uuid;

use super::books::closing_price;
use super::config::ReconcileSettings;
use super::store::trail_key;
use crate::auth::CurrentUser;
use crate::connector::reports::BrokerPosition;
use crate::ports::{Condition, Item, StoreError};
use crate::trading::orders::book::Written;
use crate::trading::orders::{ModifyOrder, OrderRecord, OrderService};

/// A stop move the driver sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopMove {
    pub order_id: Uuid,
    pub from: Option<Decimal>,
    pub to: Decimal,
}

/// Moves stops of positions with trailing-stop settings.
#[derive(Clone)]
pub struct TrailingDriver {
    pub orders: OrderService,
    pub settings: Arc<ReconcileSettings>,
    evaluated: Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>,
}

/// The caller of a stop move: the owner, as the system acts for them (no session; modify needs no verified e-mail).
fn system_user(user: Uuid) -> CurrentUser {
    CurrentUser {
        id: user,
        email: String::new(),
        role: "system".into(),
        email_verified: true,
        session_id: Uuid::nil(),
        email_verification_required: false,
    }
}

/// `candidate` protects more than `current` (higher for a buy, lower for a sell).
fn protects_more(side: Side, candidate: Decimal, current: Option<Decimal>) -> bool {
    match (side, current) {
        (_, None) => true,
        (Side::Buy, Some(c)) => candidate > c,
        (Side::Sell, Some(c)) => candidate < c,
    }
}

impl TrailingDriver {
    pub fn new(orders: OrderService, settings: Arc<ReconcileSettings>) -> Self {
        TrailingDriver { orders, settings, evaluated: Arc::new(Mutex::new(HashMap::new())) }
    }

    fn due(&self, broker: Uuid, now: DateTime<Utc>) -> bool {
        let mut m = self.evaluated.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(&broker).is_some_and(|t| now - *t < self.settings.trailing_every) {
            return false;
        }
        m.insert(broker, now);
        if m.len() > 10_000 {
            let horizon = now - Duration::minutes(5);
            m.retain(|_, t| *t > horizon);
        }
        true
    }

    /// Evaluates a price report of `broker`'s connector; returns the moves sent.
    pub async fn on_positions(&self, user: Uuid, broker: Uuid, positions: &[BrokerPosition]) -> Vec<StopMove> {
        let now = self.orders.clock.now();
        if positions.is_empty() || !self.due(broker, now) {
            return Vec::new();
        }
        let orders = match self.trailed(user, broker).await {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, "trailing stops: could not read the live orders");
                return Vec::new();
            }
        };
        let by_ticket: HashMap<u64, &BrokerPosition> = positions.iter().map(|p| (p.ticket, p)).collect();
        let mut moves = Vec::new();
        for o in orders {
            let Some(p) = o.ticket.and_then(|t| by_ticket.get(&t.0)) else { continue };
            if let Some(m) = self.evaluate(user, &o, p, now).await {
                moves.push(m);
            }
        }
        moves
    }

    /// The connection's open positions with trailing settings that can move the stop.
    async fn trailed(&self, user: Uuid, broker: Uuid) -> Result<Vec<OrderRecord>, StoreError> {
        let mut live = self.orders.book.live_orders_of(user, broker).await?;
        live.retain(|o| {
            let trails = o.trailing_stop.is_some_and(|s| s.enabled || s.breakeven_enabled);
            trails && o.status == OrderStatus::Open && o.ticket.is_some()
        });
        Ok(live)
    }

    async fn evaluate(&self, user: Uuid, o: &OrderRecord, p: &BrokerPosition, now: DateTime<Utc>) -> Option<StopMove> {
        let settings = o.trailing_stop?;
        let instrument = lookup(&o.symbol).ok()?;
        let price = closing_price(p)?;
        let entry = o.open_price.or(p.open_price)?;
        // MT5's stop is the truth; the books' may lag a modify not yet acknowledged.
        let current = p.stop_loss;
        let update = next_stop_loss(instrument, &settings, o.side, entry, price, current, None)?;
        let new = update.new_stop_loss;
        if !protects_more(o.side, new, current) || !protects_more(o.side, new, o.stop_loss) {
            return None;
        }
        if !self.take_slot(user, o.id, now).await {
            return None;
        }
        // The order use case checks a stop against the position's last price: record it first.
        let mut fresh = o.clone();
        fresh.current_price = Some(price);
        fresh.floating_profit = p.profit.or(o.floating_profit);
        fresh.version += 1;
        fresh.updated_at = now;
        match self.orders.book.touch(o, &fresh).await {
            Ok(Written::Yes) => {}
            Ok(Written::Lost) => {
                info!(order = %o.id, "trailing stop: the order changed meanwhile; next price report");
                return None;
            }
            Err(e) => {
                warn!(error = %e, "trailing stop: could not record the price");
                return None;
            }
        }
        let change = ModifyOrder { stop_loss: Some(new), take_profit: None };
        match self.orders.modify(&system_user(user), o.id, change, None).await {
            Ok(_) => {
                info!(order = %o.id, from = ?current, to = %new, reason = ?update.reason, price = %price, "trailing stop moved");
                Some(StopMove { order_id: o.id, from: current, to: new })
            }
            Err(e) => {
                info!(order = %o.id, error = %e, "trailing stop not sent");
                None
            }
        }
    }

    /// Takes the position's slot for a move: `false` when the last move is less than the gap ago.
    async fn take_slot(&self, user: Uuid, order: Uuid, now: DateTime<Utc>) -> bool {
        let key = trail_key(user, order);
        let item = Item::new(&key).with("sent_at", now.timestamp()).with("ttl", (now + Duration::days(1)).timestamp());
        let free = Condition::NotExists.or(Condition::le("sent_at", (now - self.settings.trailing_gap).timestamp()));
        match self.orders.book.store.put(item, Some(free)).await {
            Ok(()) => true,
            Err(e) if e.is_condition_failure() => false,
            Err(e) => {
                warn!(error = %e, "trailing stop: could not take the rate-limit slot");
                false
            }
        }
    }
}
