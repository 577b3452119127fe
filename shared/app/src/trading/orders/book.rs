//! The order book: the one owner of order writes (design §3). Orders, their open-position reservations, the
//! idempotency claims of the requests that issued them, the outbox entries of their commands, the closed-trade
//! aggregates and the sparse live-order index are read and written here and nowhere else, by typed operations:
//!
//! | operation | one transaction of |
//! |---|---|
//! | [`reserve`](OrderBook::reserve) | the new `pending` order, its reservation (the limit), the idempotency claim, the open command's outbox entry |
//! | [`issue`](OrderBook::issue) | the order moved to `close_pending`/`modify_pending`, the idempotency claim, the command's outbox entry |
//! | [`apply`](OrderBook::apply) | a state-machine transition (ack, timeout, not sent, reconciliation repair): the order conditioned on what was read, the reservation released, the closed-trade aggregates, the audit item, the acknowledged command leaving the outbox |
//! | [`adopt`](OrderBook::adopt) | an external MT5 position taken into the books, its reservation, its audit item |
//! | [`touch`](OrderBook::touch) | fields outside the state machine (trailing settings, last price), conditioned on what was read |
//!
//! Every write is conditioned on the order's version and status as read, so duplicate, late and concurrent writers
//! cannot both win; a lost condition comes back as [`Written::Lost`] (re-read and decide again) — never as an error.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use nusatrade_domain::order::{Effect, OrderStatus};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::store::{OPEN_ORDERS_ATTR, ORDER_PREFIX, OrderRecord, day_key, limits_key, live_pk, order_key, stats_key};
use crate::connector::Command;
use crate::connector::outbox::{outbox_delete_op, outbox_key, outbox_put_op};
use crate::ports::{CancelReason, Clock, Condition, Index, Item, ItemStore, Query, StoreError, TxOp, Update};

/// How a conditional write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Written.
    Yes,
    /// A condition failed: something newer happened (re-read and decide again).
    Lost,
}

/// How a reservation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// The order, its reservation, its claim and its command are written.
    Yes,
    /// The user holds the maximum of open-position reservations.
    LimitReached,
    /// The idempotency key is claimed by another request.
    KeyTaken,
    /// Another condition failed or the transaction conflicted: retry.
    Retry,
}

/// The transition half of a write: what was read, what is written.
pub struct Step<'a> {
    pub before: &'a OrderRecord,
    pub after: &'a OrderRecord,
    /// The transition gives the user's open-position reservation back.
    pub releases_reservation: bool,
}

/// Reads and writes of orders and everything written with them.
#[derive(Clone)]
pub struct OrderBook {
    pub store: Arc<dyn ItemStore>,
    pub clock: Arc<dyn Clock>,
}

impl OrderBook {
    pub fn new(store: Arc<dyn ItemStore>, clock: Arc<dyn Clock>) -> Self {
        OrderBook { store, clock }
    }

    // ------------------------------------------------------------------ reads

    /// One order of a user (strongly consistent).
    pub async fn get(&self, user: Uuid, order: Uuid) -> Result<Option<OrderRecord>, StoreError> {
        match self.store.get(&order_key(user, order)).await? {
            Some(item) => Ok(Some(item.to_record()?)),
            None => Ok(None),
        }
    }

    /// The query of a user's live orders (the sparse `LIVE#` index), oldest first.
    pub fn live_query(user: Uuid) -> Query {
        Query::index(Index::Gsi1, live_pk(user)).sk_prefix(ORDER_PREFIX)
    }

    /// Every live order of a user (every page of the live index).
    pub async fn live_orders(&self, user: Uuid) -> Result<Vec<OrderRecord>, StoreError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.store.query(Self::live_query(user).after(cursor.take())).await?;
            for item in &page.items {
                let o: OrderRecord = item.to_record()?;
                if o.user_id == user {
                    out.push(o);
                }
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// The live orders of one broker connection of a user.
    pub async fn live_orders_of(&self, user: Uuid, broker: Uuid) -> Result<Vec<OrderRecord>, StoreError> {
        let mut all = self.live_orders(user).await?;
        all.retain(|o| o.broker_connection_id == Some(broker) && o.is_live());
        Ok(all)
    }

    // ------------------------------------------------------------------ writes

    /// Writes a new `pending` order with its reservation (at most `max` held), its idempotency claim and its open
    /// command's outbox entry, in one transaction.
    pub async fn reserve(
        &self,
        order: &OrderRecord,
        max: u32,
        claim: Option<TxOp>,
        command: &Command,
    ) -> Result<Reserved, StoreError> {
        let broker =
            order.broker_connection_id.ok_or_else(|| StoreError::Validation("order without connection".into()))?;
        let mut ops = vec![
            TxOp::Put { item: order.to_item()?, condition: Some(Condition::NotExists) },
            TxOp::Update {
                key: limits_key(order.user_id),
                update: Update::new().add(OPEN_ORDERS_ATTR, 1),
                condition: Some(
                    Condition::AttrNotExists(OPEN_ORDERS_ATTR.into()).or(Condition::lt(OPEN_ORDERS_ATTR, max as i64)),
                ),
            },
        ];
        let claimed = claim.is_some();
        ops.extend(claim);
        ops.push(outbox_put_op(order.user_id, broker, command, order.created_at)?);
        match self.store.transact_write(ops).await {
            Ok(()) => Ok(Reserved::Yes),
            Err(StoreError::TransactionCanceled(reasons)) => {
                let failed = |i: usize| reasons.get(i) == Some(&CancelReason::ConditionalCheckFailed);
                Ok(if failed(1) {
                    Reserved::LimitReached
                } else if claimed && failed(2) {
                    Reserved::KeyTaken
                } else {
                    Reserved::Retry
                })
            }
            Err(StoreError::Throttled) => Ok(Reserved::Retry),
            Err(e) => Err(e),
        }
    }

    /// Moves an order to a command in flight (`close_pending`/`modify_pending`) with the idempotency claim and the
    /// command's outbox entry. `Reserved::KeyTaken` when the claim lost, `Reserved::Retry` when the order changed.
    pub async fn issue(
        &self,
        before: &OrderRecord,
        after: &OrderRecord,
        claim: Option<TxOp>,
        command: &Command,
    ) -> Result<Reserved, StoreError> {
        let broker =
            after.broker_connection_id.ok_or_else(|| StoreError::Validation("order without connection".into()))?;
        let mut ops = vec![TxOp::Put { item: after.to_item()?, condition: Some(before.unchanged()) }];
        let claimed = claim.is_some();
        ops.extend(claim);
        ops.push(outbox_put_op(after.user_id, broker, command, after.updated_at)?);
        match self.store.transact_write(ops).await {
            Ok(()) => Ok(Reserved::Yes),
            Err(StoreError::TransactionCanceled(r))
                if claimed && r.get(1) == Some(&CancelReason::ConditionalCheckFailed) =>
            {
                Ok(Reserved::KeyTaken)
            }
            Err(e) if e.is_condition_failure() || matches!(e, StoreError::TransactionCanceled(_)) => {
                Ok(Reserved::Retry)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes one transition: the order conditioned on what was read, the reservation released when the transition
    /// gives it back, the closed-trade aggregates when it closes, the audit item (reconciliation's), and the
    /// acknowledged command (`acked`: its request id) leaving the outbox. A lone order write is a conditional put.
    pub async fn apply(&self, step: Step<'_>, audit: Option<Item>, acked: Option<&str>) -> Result<Written, StoreError> {
        let Step { before, after, releases_reservation } = step;
        let user = after.user_id;
        let mut ops = vec![TxOp::Put { item: after.to_item()?, condition: Some(before.unchanged()) }];
        ops.extend(audit.map(|item| TxOp::Put { item, condition: None }));
        if releases_reservation {
            ops.push(TxOp::Update {
                key: limits_key(user),
                update: Update::new().add(OPEN_ORDERS_ATTR, -1),
                condition: None,
            });
        }
        ops.extend(closed_trade_ops(before, after));
        if let (Some(rid), Some(broker)) = (acked, after.broker_connection_id) {
            ops.push(outbox_delete_op(user, broker, rid));
        }
        self.commit(ops).await
    }

    /// Takes an external MT5 position into the books (status `external`, version 0) with its reservation and its
    /// audit item. `Lost` when the order exists already.
    pub async fn adopt(&self, order: &OrderRecord, audit: Item) -> Result<Written, StoreError> {
        let ops = vec![
            TxOp::Put { item: order.to_item()?, condition: Some(Condition::NotExists) },
            TxOp::Update {
                key: limits_key(order.user_id),
                update: Update::new().add(OPEN_ORDERS_ATTR, 1),
                condition: None,
            },
            TxOp::Put { item: audit, condition: None },
        ];
        self.commit(ops).await
    }

    /// Writes fields outside the state machine (trailing settings, the last price), conditioned on what was read.
    pub async fn touch(&self, before: &OrderRecord, after: &OrderRecord) -> Result<Written, StoreError> {
        match self.store.put(after.to_item()?, Some(before.unchanged())).await {
            Ok(()) => Ok(Written::Yes),
            Err(e) if e.is_condition_failure() => Ok(Written::Lost),
            Err(e) => Err(e),
        }
    }

    /// Removes a command from its connection's outbox: acknowledged without a transition, or provably never sent.
    pub async fn dequeue(&self, user: Uuid, broker: Uuid, request_id: &str) -> Result<(), StoreError> {
        self.store.delete(&outbox_key(user, broker, request_id), None).await.map(|_| ())
    }

    /// One write: a lone put conditioned as given, or a transaction. A failed condition is `Lost`.
    async fn commit(&self, ops: Vec<TxOp>) -> Result<Written, StoreError> {
        let result = if ops.len() == 1 {
            let Some(TxOp::Put { item, condition }) = ops.into_iter().next() else {
                unreachable!("a single-op write is the order's put")
            };
            self.store.put(item, condition).await
        } else {
            self.store.transact_write(ops).await
        };
        match result {
            Ok(()) => Ok(Written::Yes),
            Err(e) if e.is_condition_failure() || matches!(e, StoreError::TransactionCanceled(_)) => Ok(Written::Lost),
            Err(e) => Err(e),
        }
    }
}

/// The closed-trade aggregates of a transition that closes a position (`closed_trades`, `winning_trades`,
/// `total_pnl` and the UTC day's `pnl`); none otherwise.
fn closed_trade_ops(before: &OrderRecord, after: &OrderRecord) -> Vec<TxOp> {
    let closed = |s: OrderStatus| matches!(s, OrderStatus::Closed | OrderStatus::ClosedExternally);
    if !closed(after.status) || closed(before.status) {
        return Vec::new();
    }
    let profit = after.profit.unwrap_or_default();
    let day = after.close_time.unwrap_or(after.updated_at).date_naive();
    vec![
        TxOp::Update {
            key: stats_key(after.user_id),
            update: Update::new()
                .add("closed_trades", 1)
                .add("winning_trades", i64::from(profit > Decimal::ZERO))
                .add("total_pnl", profit),
            condition: None,
        },
        TxOp::Update { key: day_key(after.user_id, day), update: Update::new().add("pnl", profit), condition: None },
    ]
}

impl OrderRecord {
    /// Writes what an applied event sets beside status, version and ticket ([`Effect`], the domain's).
    pub fn apply_effect(&mut self, before: &OrderRecord, effect: &Effect) {
        if let Some(f) = &effect.filled {
            self.open_price = Some(f.price);
            self.open_time = Some(f.time);
            self.fill_price_confirmed = true;
            self.error = None;
            self.retcode = None;
        }
        if let Some((price, time)) = effect.closed {
            self.close_price = Some(price);
            self.close_time = Some(time);
        }
        if let Some(f) = &effect.failed {
            self.error = Some(f.message.clone());
            self.retcode = f.retcode.map(|r| r.0);
        }
        if effect.stops_confirmed {
            self.stop_loss = before.pending_stop_loss.or(before.stop_loss);
            self.take_profit = before.pending_take_profit.or(before.take_profit);
            self.error = None;
        }
        if effect.clear_pending_stops {
            self.pending_stop_loss = None;
            self.pending_take_profit = None;
        }
    }

    /// What the order tells about its commands' acknowledgements.
    pub fn awaiting(&self) -> nusatrade_domain::order::Awaiting {
        nusatrade_domain::order::Awaiting {
            status: self.status,
            command_seq: self.command_seq,
            requested_price: self.requested_price,
            current_price: self.current_price,
        }
    }

    /// The state and version written by `change`, at `now`.
    pub fn moved(&self, change: &nusatrade_domain::order::Change, now: DateTime<Utc>) -> OrderRecord {
        let mut next = self.clone();
        next.status = change.to.status;
        next.version = change.to.version;
        next.ticket = change.to.ticket;
        next.updated_at = now;
        next
    }
}

/// Waits before retrying a write that lost a race (exponential, with jitter).
pub async fn backoff(attempt: u32) {
    let ms = (1u64 << attempt.min(6)) + u64::from(rand::random::<u8>() % 8);
    tokio::time::sleep(StdDuration::from_millis(ms)).await;
}
