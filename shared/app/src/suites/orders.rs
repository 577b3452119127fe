//! The order use cases on a real store adapter (issue #4 "Contract/integration tests on both store
//! adapters"): reservations, idempotency and acknowledgements rely on conditional writes and transactions,
//! so they run against every [`StoreFactory`] (embedded on disk and in memory, DynamoDB on moto).
//!
//! Commands go to a [`RecordingPush`] that records every frame and answers as told (delivered, gone,
//! unavailable), standing in for the connector.

use crate::trading::orders::routes::placed_status;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::money::{Lots, Side};
use nusatrade_domain::order::{NoOp, OrderStatus, Refused};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::connector::{AccountSnapshot, ConnectorRegistry, Fanout, RequestId, TradeResult};
use crate::contract::store::StoreFactory;
use crate::ports::{Clock, ItemStore, ManualClock, Push, PushError, PushOutcome, RandomIds};
use crate::trading::orders::queries::ListFilter;
use crate::trading::orders::store::{OPEN_ORDERS_ATTR, limits_key};
use crate::trading::orders::{
    AckOutcome, IdempotencyKey, ModifyOrder, OrderBook, OrderService, PlaceOrder, TradingConfig, TradingError,
};

/// How a [`RecordingPush`] answers posts to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushMode {
    Deliver,
    Gone,
    Unavailable,
}

/// A push port that records every frame (per connection) and answers per connection as configured.
#[derive(Default)]
pub struct RecordingPush {
    sent: Mutex<Vec<(String, Value)>>,
    modes: Mutex<HashMap<String, PushMode>>,
}

impl RecordingPush {
    pub fn set_mode(&self, ws: &str, mode: PushMode) {
        self.modes.lock().unwrap().insert(ws.to_owned(), mode);
    }
    /// Frames delivered to `ws`.
    pub fn frames(&self, ws: &str) -> Vec<Value> {
        self.sent.lock().unwrap().iter().filter(|(c, _)| c == ws).map(|(_, v)| v.clone()).collect()
    }
    /// Frames of one `type` delivered to `ws`.
    pub fn of_type(&self, ws: &str, kind: &str) -> Vec<Value> {
        self.frames(ws).into_iter().filter(|v| v["type"] == kind).collect()
    }
}

#[async_trait]
impl Push for RecordingPush {
    async fn post(&self, connection_id: &str, data: Bytes) -> Result<PushOutcome, PushError> {
        let mode = self.modes.lock().unwrap().get(connection_id).copied().unwrap_or(PushMode::Deliver);
        match mode {
            PushMode::Deliver => {
                let v = serde_json::from_slice(&data).map_err(|e| PushError::Invalid(e.to_string()))?;
                self.sent.lock().unwrap().push((connection_id.to_owned(), v));
                Ok(PushOutcome::Delivered)
            }
            PushMode::Gone => Ok(PushOutcome::Gone),
            PushMode::Unavailable => Err(PushError::Unavailable("connection reset".into())),
        }
    }
    async fn close(&self, _connection_id: &str) -> Result<(), PushError> {
        Ok(())
    }
}

/// One user with one online connector over a fresh store.
pub struct Bench {
    pub orders: OrderService,
    pub push: Arc<RecordingPush>,
    pub store: Arc<dyn ItemStore>,
    pub clock: Arc<ManualClock>,
    pub user: CurrentUser,
    pub broker: Uuid,
    pub ws: String,
}

pub fn user(id: Uuid) -> CurrentUser {
    CurrentUser {
        id,
        email: format!("{}@example.com", id.simple()),
        role: "user".into(),
        email_verified: true,
        session_id: Uuid::new_v4(),
        email_verification_required: true,
    }
}

impl Bench {
    pub async fn new(f: &impl StoreFactory, config: TradingConfig) -> Bench {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let store = f.store(clock.clone()).await;
        let push = Arc::new(RecordingPush::default());
        let clock_dyn: Arc<dyn Clock> = clock.clone();
        let registry = ConnectorRegistry::new(store.clone(), clock_dyn.clone());
        let orders = OrderService::with_parts(
            OrderBook::new(store.clone(), clock_dyn),
            Fanout::new(push.clone(), registry),
            Arc::new(RandomIds),
            config,
        );
        let user = user(Uuid::new_v4());
        let broker = Uuid::new_v4();
        let ws = format!("ws-{}", Uuid::new_v4().simple());
        orders.registry().register_connector(&ws, user.id, &user.email, broker).await.unwrap();
        Bench { orders, push, store, clock, user, broker, ws }
    }

    pub async fn open_orders(&self) -> Decimal {
        self.store
            .get(&limits_key(self.user.id))
            .await
            .unwrap()
            .and_then(|i| i.get_n(OPEN_ORDERS_ATTR))
            .unwrap_or_default()
    }

    pub async fn history_statuses(&self) -> Vec<OrderStatus> {
        let page = self.orders.history(self.user.id, &ListFilter::default(), 200, None).await.unwrap();
        page.items.iter().map(|o| o.status).collect()
    }

    /// Acks a command as the connector would (`fields` merged into `{request_id, success}`).
    pub async fn ack(&self, request_id: &str, success: bool, fields: Value) -> AckOutcome {
        let mut obj = Map::new();
        obj.insert("request_id".into(), Value::from(request_id));
        obj.insert("success".into(), Value::from(success));
        if let Value::Object(extra) = fields {
            obj.extend(extra);
        }
        let r = TradeResult::parse(&obj).unwrap();
        self.orders.apply_trade_result(self.user.id, &r).await.unwrap()
    }
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A 1-lot-or-given EURUSD/USDJPY/XAUUSD market order request.
pub fn order(symbol: &str, side: Side, lots: &str, price: &str) -> PlaceOrder {
    PlaceOrder {
        instrument: lookup(symbol).unwrap(),
        side,
        lots: Lots::new_unchecked(dec(lots)),
        price: dec(price),
        stop_loss: None,
        take_profit: None,
        broker_connection_id: None,
        trailing_stop: None,
        source: "api",
    }
}

fn key(k: &str, body: &Value) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::new(k, "POST /trading/orders", body).unwrap())
}

fn order_id(reply_body: &Value) -> Uuid {
    Uuid::try_parse(reply_body["trade"]["id"].as_str().unwrap()).unwrap()
}

/// Places an order and acks it open; returns its id.
async fn opened(b: &Bench, symbol: &str, side: Side, lots: &str, price: &str, ticket: u64, fill: &str) -> Uuid {
    let reply = b.orders.place(&b.user, order(symbol, side, lots, price), None).await.unwrap();
    assert_eq!(placed_status(&reply).as_u16(), 201);
    let id = order_id(&reply.body);
    let out = b.ack(&id.to_string(), true, json!({"ticket": ticket, "price": fill})).await;
    assert!(matches!(out, AckOutcome::Applied(ref o) if o.status == OrderStatus::Open), "{out:?}");
    id
}

// ------------------------------------------------------------------ cases

/// 1,000 concurrent placements against a limit of 20 leave exactly 20 reservations and 20 pending orders,
/// and 20 commands sent.
pub async fn concurrent_placements_respect_the_limit(f: &impl StoreFactory) {
    let b = Arc::new(Bench::new(f, TradingConfig::default()).await);
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            b.orders.place(&b.user, order("EURUSD", side, "0.01", "1.0850"), None).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(placed_status(&r).as_u16(), 201);
                ok += 1;
            }
            Err(TradingError::LimitReached(20)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(ok, 20);
    assert_eq!(b.open_orders().await, Decimal::from(20));
    let statuses = b.history_statuses().await;
    assert_eq!(statuses.len(), 20, "refused placements write nothing");
    assert!(statuses.iter().all(|s| *s == OrderStatus::Pending));
    assert_eq!(b.push.of_type(&b.ws, "TRADE_OPEN").len(), 20);
}

/// A repeated Idempotency-Key returns the first reply and sends one command; another body is refused.
pub async fn idempotency_key_sends_once(f: &impl StoreFactory) {
    let b = Arc::new(Bench::new(f, TradingConfig::default()).await);
    let body = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.085});
    let first = b.orders.place(&b.user, order("EURUSD", Side::Buy, "0.1", "1.085"), key("k-1", &body)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (b, body) = (b.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            b.orders.place(&b.user, order("EURUSD", Side::Buy, "0.1", "1.085"), key("k-1", &body)).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), first, "a repeat returns the first reply");
    }
    assert_eq!(b.push.of_type(&b.ws, "TRADE_OPEN").len(), 1, "one command for one key");
    assert_eq!(b.open_orders().await, Decimal::ONE);

    let other = json!({"symbol": "EURUSD", "order_type": "SELL", "lot_size": 0.1, "price": 1.085});
    let err = b.orders.place(&b.user, order("EURUSD", Side::Sell, "0.1", "1.085"), key("k-1", &other)).await;
    assert!(matches!(err, Err(TradingError::IdempotencyMismatch)), "{err:?}");

    // Concurrent first uses of one key: exactly one order.
    let body2 = json!({"n": 2});
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (b, body2) = (b.clone(), body2.clone());
        tasks.push(tokio::spawn(async move {
            b.orders.place(&b.user, order("USDJPY", Side::Buy, "0.1", "150"), key("k-2", &body2)).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                ids.insert(order_id(&r.body));
            }
            Err(TradingError::IdempotencyInFlight) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(ids.len() <= 1);
    assert_eq!(b.open_orders().await, Decimal::from(2));
    assert_eq!(b.push.of_type(&b.ws, "TRADE_OPEN").len(), 2);
}

/// Success ack opens once; duplicates, late failures and other users' acks change nothing.
pub async fn acks_apply_once(f: &impl StoreFactory) {
    let b = Arc::new(Bench::new(f, TradingConfig::default()).await);
    let reply = b.orders.place(&b.user, order("EURUSD", Side::Buy, "1", "1.1000"), None).await.unwrap();
    let id = order_id(&reply.body);
    let cmd = &b.push.of_type(&b.ws, "TRADE_OPEN")[0];
    assert_eq!(cmd["request_id"], id.to_string());
    assert!(cmd["comment"].as_str().unwrap().starts_with("NT-"));

    // Another user's connector acking this order finds nothing.
    let stranger = Uuid::new_v4();
    let mut obj = Map::new();
    obj.insert("request_id".into(), Value::from(id.to_string()));
    obj.insert("success".into(), Value::from(true));
    obj.insert("ticket".into(), Value::from(1));
    let r = TradeResult::parse(&obj).unwrap();
    assert_eq!(b.orders.apply_trade_result(stranger, &r).await.unwrap(), AckOutcome::UnknownOrder);

    // 20 concurrent duplicate success acks: one applies.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let b = b.clone();
        let rid = id.to_string();
        tasks.push(tokio::spawn(async move { b.ack(&rid, true, json!({"ticket": 5551, "price": 1.10012})).await }));
    }
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            AckOutcome::Applied(o) => {
                applied += 1;
                assert_eq!(o.status, OrderStatus::Open);
                assert_eq!(o.open_price, Some(dec("1.10012")));
                assert!(o.fill_price_confirmed);
            }
            AckOutcome::Unchanged(_, NoOp::Duplicate) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(applied, 1);
    // A late failure for the same open contradicts the fill: refused, nothing written.
    let late = b.ack(&id.to_string(), false, json!({"error": "Order failed"})).await;
    assert!(matches!(late, AckOutcome::Refused(_, Refused::Conflict { .. })), "{late:?}");
    let o = b.orders.get(b.user.id, id).await.unwrap();
    assert_eq!((o.status, o.version), (OrderStatus::Open, 1));
    // Not our request id.
    assert_eq!(b.ack("manual_sync_x", true, json!({})).await, AckOutcome::NotAnOrderCommand);
    assert_eq!(b.ack(&Uuid::new_v4().to_string(), true, json!({"ticket": 9})).await, AckOutcome::UnknownOrder);
}

/// Every trade command is in the connection's outbox from the write that issues it until its ack:
/// written with the pending order (open) and with the `close_pending` transition (close), removed by the
/// ack's own transaction; a command that provably never left is not kept.
pub async fn commands_wait_in_the_outbox_until_acked(f: &impl StoreFactory) {
    let b = Bench::new(f, TradingConfig::default()).await;
    let waiting = |b: &Bench| {
        let (registry, user, broker) = (b.orders.registry().clone(), b.user.id, b.broker);
        async move { registry.outbox(user, broker).await.unwrap().into_iter().map(|e| e.request_id).collect::<Vec<_>>() }
    };
    let id = order_id(&b.orders.place(&b.user, order("EURUSD", Side::Buy, "1", "1.1"), None).await.unwrap().body);
    assert_eq!(waiting(&b).await, [id.to_string()], "queued with the pending order");
    let queued = &b.orders.registry().outbox(b.user.id, b.broker).await.unwrap()[0];
    let sent = &b.push.of_type(&b.ws, "TRADE_OPEN")[0];
    assert_eq!(serde_json::from_str::<Value>(&queued.command).unwrap(), *sent, "the frame that was pushed");

    assert!(matches!(b.ack(&id.to_string(), true, json!({"ticket": 42, "price": 1.1})).await, AckOutcome::Applied(_)));
    assert!(waiting(&b).await.is_empty(), "the ack's transaction removed it");

    b.orders.close(&b.user, id, None).await.unwrap();
    let close = RequestId { order_id: id, kind: crate::connector::CommandKind::Close, seq: 2 }.to_string();
    assert_eq!(waiting(&b).await, std::slice::from_ref(&close), "queued with close_pending");
    assert!(matches!(b.ack(&close, true, json!({"price": 1.1})).await, AckOutcome::Applied(_)));
    assert!(waiting(&b).await.is_empty());

    // Gone at send time: the order is rejected and nothing stays queued to be resent.
    b.push.set_mode(&b.ws, PushMode::Gone);
    let refused = b.orders.place(&b.user, order("EURUSD", Side::Buy, "1", "1.1"), None).await;
    assert!(matches!(refused, Err(TradingError::NotSent(_))), "{refused:?}");
    assert!(waiting(&b).await.is_empty());
}

/// A definitive failure rejects the order and gives its reservation back in the same write.
pub async fn failure_ack_rejects_and_releases(f: &impl StoreFactory) {
    let config = TradingConfig { max_open_positions: 1, ..TradingConfig::default() };
    let b = Bench::new(f, config).await;
    let reply = b.orders.place(&b.user, order("EURUSD", Side::Buy, "1", "1.1"), None).await.unwrap();
    let id = order_id(&reply.body);
    let second = b.orders.place(&b.user, order("EURUSD", Side::Buy, "1", "1.1"), None).await;
    assert!(matches!(second, Err(TradingError::LimitReached(1))));
    let out = b.ack(&id.to_string(), false, json!({"ticket": 0, "retcode": 10019, "error": "No money"})).await;
    assert!(matches!(out, AckOutcome::Applied(ref o) if o.status == OrderStatus::Rejected && o.retcode == Some(10019)));
    assert_eq!(b.open_orders().await, Decimal::ZERO);
    // Duplicate failure: nothing released twice.
    let dup = b.ack(&id.to_string(), false, json!({"retcode": 10019, "error": "No money"})).await;
    assert!(matches!(dup, AckOutcome::Unchanged(_, NoOp::Duplicate)), "{dup:?}");
    assert_eq!(b.open_orders().await, Decimal::ZERO);
    b.orders.place(&b.user, order("EURUSD", Side::Buy, "1", "1.1"), None).await.unwrap();
    // An unknown-class failure (timeout retcode) is not a rejection.
    let b2 = Bench::new(f, TradingConfig::default()).await;
    let id2 = order_id(&b2.orders.place(&b2.user, order("EURUSD", Side::Buy, "1", "1.1"), None).await.unwrap().body);
    let out = b2.ack(&id2.to_string(), false, json!({"retcode": 10012, "error": "Request timeout"})).await;
    assert!(matches!(out, AckOutcome::Applied(ref o) if o.status == OrderStatus::Unknown));
    assert_eq!(b2.open_orders().await, Decimal::ONE, "unknown keeps the reservation");
}

/// Close: one TRADE_CLOSE with the ticket; the ack closes with the profit from the fills, releases the
/// reservation and adds to the statistics once.
pub async fn close_follows_the_acks(f: &impl StoreFactory) {
    let b = Bench::new(f, TradingConfig::default()).await;
    let id = opened(&b, "EURUSD", Side::Buy, "1", "1.1000", 777, "1.1000").await;
    let reply = b.orders.close(&b.user, id, None).await.unwrap();
    assert_eq!(placed_status(&reply).as_u16(), 200);
    assert_eq!(reply.body["trade"]["status"], "close_pending");
    let cmd = b.push.of_type(&b.ws, "TRADE_CLOSE");
    assert_eq!(cmd.len(), 1);
    assert_eq!(cmd[0]["ticket"], 777);
    let rid = cmd[0]["request_id"].as_str().unwrap().to_owned();
    assert_eq!(rid.parse::<RequestId>().unwrap(), RequestId::close(id, 2));
    // A repeated close while closing sends nothing.
    let again = b.orders.close(&b.user, id, None).await.unwrap();
    assert_eq!(placed_status(&again).as_u16(), 200);
    assert_eq!(b.push.of_type(&b.ws, "TRADE_CLOSE").len(), 1);
    // Modify while closing is refused.
    let m = b.orders.modify(&b.user, id, ModifyOrder { stop_loss: Some(dec("1.09")), take_profit: None }, None).await;
    assert!(matches!(m, Err(TradingError::Refused(Refused::InFlight { .. }))), "{m:?}");

    let out = b.ack(&rid, true, json!({"price": 1.1050})).await;
    let AckOutcome::Applied(o) = out else { panic!("{out:?}") };
    assert_eq!(o.status, OrderStatus::Closed);
    assert_eq!(o.profit, Some(dec("500.00")), "1 lot EURUSD +50 pips = 500.00 USD");
    assert_eq!(b.open_orders().await, Decimal::ZERO);
    assert!(matches!(b.ack(&rid, true, json!({"price": 1.1050})).await, AckOutcome::Unchanged(_, NoOp::Duplicate)));
    let st = b.orders.stats(b.user.id).await.unwrap();
    assert_eq!((st.total_trades, st.total_pnl, st.today_pnl, st.win_rate), (1, dec("500"), dec("500"), dec("100")));
    assert_eq!(st.open_positions, 0);
    let again = b.orders.close(&b.user, id, None).await;
    assert!(matches!(again, Err(TradingError::Refused(Refused::Terminal { .. }))), "{again:?}");
    // Closing an unknown id, or someone else's order, is "not found".
    let other = user(Uuid::new_v4());
    assert!(matches!(b.orders.close(&other, id, None).await, Err(TradingError::NotFound)));
}

/// Modify: TRADE_MODIFY with the new stops; the ack of an older command is stale; the right one applies.
pub async fn modify_follows_the_acks(f: &impl StoreFactory) {
    let b = Bench::new(f, TradingConfig::default()).await;
    let id = opened(&b, "USDJPY", Side::Sell, "0.5", "150.00", 4242, "150.000").await;
    let bad = b.orders.modify(&b.user, id, ModifyOrder { stop_loss: Some(dec("149")), take_profit: None }, None).await;
    assert!(matches!(bad, Err(TradingError::Invalid(_))), "SL of a SELL must be above: {bad:?}");
    let r = b
        .orders
        .modify(&b.user, id, ModifyOrder { stop_loss: Some(dec("151.2")), take_profit: Some(dec("148")) }, None)
        .await
        .unwrap();
    assert_eq!(r.body["trade"]["status"], "modify_pending");
    let cmd = &b.push.of_type(&b.ws, "TRADE_MODIFY")[0];
    assert_eq!((cmd["ticket"].as_u64(), cmd["stop_loss"].as_f64()), (Some(4242), Some(151.2)));
    let rid: RequestId = cmd["request_id"].as_str().unwrap().parse().unwrap();
    let stale = RequestId::modify(id, rid.seq - 1).to_string();
    assert!(matches!(b.ack(&stale, true, json!({})).await, AckOutcome::Unchanged(_, NoOp::Stale)));
    let AckOutcome::Applied(o) = b.ack(&rid.to_string(), true, json!({})).await else { panic!() };
    assert_eq!((o.status, o.stop_loss, o.take_profit), (OrderStatus::Open, Some(dec("151.2")), Some(dec("148"))));
    assert!(matches!(b.ack(&rid.to_string(), true, json!({})).await, AckOutcome::Unchanged(_, _)));

    // Close it: USDJPY profit converts JPY → USD at the close price.
    b.orders.close(&b.user, id, None).await.unwrap();
    let rid = b.push.of_type(&b.ws, "TRADE_CLOSE")[0]["request_id"].as_str().unwrap().to_owned();
    let AckOutcome::Applied(o) = b.ack(&rid, true, json!({"price": 149.5})).await else { panic!() };
    // 0.5 lot × 100 000 × 0.5 JPY = 25 000 JPY = 25 000 / 149.5 USD
    assert_eq!(o.profit, Some(dec("167.22")));
}

/// A connector that is gone (410) or absent: the order never left, so it is rejected with its reservation
/// released, its idempotency key freed and the link removed.
pub async fn undeliverable_orders_are_rejected(f: &impl StoreFactory) {
    let b = Bench::new(f, TradingConfig::default()).await;
    b.push.set_mode(&b.ws, PushMode::Gone);
    let body = json!({"k": 1});
    let err = b.orders.place(&b.user, order("XAUUSD", Side::Buy, "0.1", "2050"), key("gone-1", &body)).await;
    assert!(matches!(err, Err(TradingError::NotSent(_))), "{err:?}");
    assert_eq!(b.open_orders().await, Decimal::ZERO);
    assert_eq!(b.history_statuses().await, vec![OrderStatus::Rejected]);
    assert!(b.orders.registry().link(b.user.id, b.broker).await.unwrap().is_none(), "a gone link is removed");
    // No connector now: refused before anything is written.
    let err = b.orders.place(&b.user, order("XAUUSD", Side::Buy, "0.1", "2050"), key("gone-1", &body)).await;
    assert!(matches!(err, Err(TradingError::ConnectorOffline)), "{err:?}");
    assert_eq!(b.history_statuses().await.len(), 1);
    // The connector comes back: the same key places the order for real.
    let ws2 = "ws-back";
    b.orders.registry().register_connector(ws2, b.user.id, &b.user.email, b.broker).await.unwrap();
    let ok = b.orders.place(&b.user, order("XAUUSD", Side::Buy, "0.1", "2050"), key("gone-1", &body)).await.unwrap();
    assert_eq!(placed_status(&ok).as_u16(), 201);
    assert_eq!(b.push.of_type(ws2, "TRADE_OPEN").len(), 1);
}

/// An unknown push outcome keeps the order (and its reservation) until evidence: a late ack opens it;
/// a timeout makes a pending order unknown, never rejected.
pub async fn uncertain_delivery_stays_unknown(f: &impl StoreFactory) {
    let b = Bench::new(f, TradingConfig::default()).await;
    b.push.set_mode(&b.ws, PushMode::Unavailable);
    let r = b.orders.place(&b.user, order("EURUSD", Side::Buy, "1", "1.1"), None).await.unwrap();
    assert_eq!(placed_status(&r).as_u16(), 202);
    assert_eq!(r.body["trade"]["status"], "unknown");
    assert_eq!(b.open_orders().await, Decimal::ONE);
    let id = order_id(&r.body);
    let AckOutcome::Applied(o) = b.ack(&id.to_string(), true, json!({"ticket": 99})).await else { panic!() };
    assert_eq!(o.status, OrderStatus::Open);
    assert!(!o.fill_price_confirmed, "no price in the ack: the requested price stands in");

    b.push.set_mode(&b.ws, PushMode::Deliver);
    let id2 = order_id(&b.orders.place(&b.user, order("EURUSD", Side::Sell, "1", "1.1"), None).await.unwrap().body);
    let out = b.orders.apply_timeout(b.user.id, RequestId::open(id2)).await.unwrap();
    assert!(matches!(out, AckOutcome::Applied(ref o) if o.status == OrderStatus::Unknown));
    assert!(matches!(
        b.orders.apply_timeout(b.user.id, RequestId::open(id2)).await.unwrap(),
        AckOutcome::Unchanged(_, NoOp::Duplicate)
    ));
    assert_eq!(b.open_orders().await, Decimal::from(2));
    let AckOutcome::Applied(o) = b.ack(&id2.to_string(), true, json!({"ticket": 100, "price": 1.0999})).await else {
        panic!()
    };
    assert_eq!(o.status, OrderStatus::Open);
}

/// The margin check uses the connector's last account snapshot; unverified users cannot trade; the lists
/// filter and paginate.
pub async fn margin_verification_and_lists(f: &impl StoreFactory) {
    let b = Bench::new(f, TradingConfig::default()).await;
    let snap = AccountSnapshot {
        broker_connection_id: b.broker,
        balance: dec("1000"),
        equity: dec("1000"),
        margin: dec("0"),
        free_margin: dec("1000"),
        profit: dec("0"),
        leverage: Some(100),
        currency: None,
        reported_at: Utc::now(),
    };
    b.orders.registry().save_account(b.user.id, &snap).await.unwrap();
    // 1 lot EURUSD at 1:100 needs 1 085 USD margin.
    let err = b.orders.place(&b.user, order("EURUSD", Side::Buy, "1", "1.085"), None).await;
    assert!(matches!(err, Err(TradingError::InsufficientMargin { .. })), "{err:?}");
    b.orders.place(&b.user, order("EURUSD", Side::Buy, "0.5", "1.085"), None).await.unwrap();
    let mut unverified = b.user.clone();
    unverified.email_verified = false;
    let err = b.orders.place(&unverified, order("EURUSD", Side::Buy, "0.01", "1.085"), None).await;
    assert!(matches!(err, Err(TradingError::NotVerified)));

    for i in 0..4 {
        opened(&b, "USDJPY", Side::Buy, "0.01", "150", 1000 + i, "150").await;
    }
    let all = b.orders.positions(b.user.id, &ListFilter::default(), 3, None).await.unwrap();
    assert_eq!(all.items.len(), 3);
    let rest = b.orders.positions(b.user.id, &ListFilter::default(), 3, all.cursor.clone()).await.unwrap();
    assert_eq!(rest.items.len(), 1, "4 open positions; the pending order is not a position");
    assert!(
        rest.cursor.is_none()
            || b.orders.positions(b.user.id, &ListFilter::default(), 3, rest.cursor).await.unwrap().items.is_empty()
    );
    let pending = ListFilter { symbol: None, statuses: Some(vec![OrderStatus::Pending]) };
    assert_eq!(b.orders.positions(b.user.id, &pending, 10, None).await.unwrap().items.len(), 1);
    let eur = ListFilter { symbol: Some("EURUSD".into()), statuses: None };
    assert_eq!(b.orders.history(b.user.id, &eur, 10, None).await.unwrap().items.len(), 1);
    let hist = b.orders.history(b.user.id, &ListFilter::default(), 10, None).await.unwrap();
    assert_eq!(hist.items.len(), 5);
    assert!(hist.items.windows(2).all(|w| w[0].created_at >= w[1].created_at), "newest first");
}

/// A connector's capabilities are kept with its connection record and, while it holds it, its broker connection's
/// link (the delivery rules read them at first contact); stating none removes them; a gone or replaced connection is
/// left alone.
pub async fn connector_capabilities_are_kept_with_the_connection(f: &impl StoreFactory) {
    use crate::connector::{Capabilities, Capability};
    let b = Bench::new(f, TradingConfig::default()).await;
    let registry = b.orders.registry();
    let read = || async {
        let conn = registry.connection(&b.ws).await.unwrap().expect("connection");
        let link = registry.link(b.user.id, b.broker).await.unwrap().expect("link");
        (conn.capabilities, link.capabilities)
    };
    assert_eq!(read().await, (Capabilities::none(), Capabilities::none()), "the original connector: none");

    let stated: Capabilities = [Capability::DedupeRequestId, Capability::ReportComments].into_iter().collect();
    registry.record_capabilities(&b.ws, b.user.id, b.broker, &stated).await.unwrap();
    assert_eq!(read().await, (stated.clone(), stated.clone()));
    assert!(read().await.1.dedupes());
    registry.record_capabilities(&b.ws, b.user.id, b.broker, &Capabilities::none()).await.unwrap();
    assert_eq!(read().await, (Capabilities::none(), Capabilities::none()), "stating none removes them");

    // A newer connector holds the link: the older one's statement touches only its own record.
    let newer = format!("{}-newer", b.ws);
    registry.register_connector(&newer, b.user.id, &b.user.email, b.broker).await.unwrap();
    registry.record_capabilities(&b.ws, b.user.id, b.broker, &Capabilities::all()).await.unwrap();
    assert_eq!(registry.connection(&b.ws).await.unwrap().unwrap().capabilities, Capabilities::all());
    assert!(registry.link(b.user.id, b.broker).await.unwrap().unwrap().capabilities.is_empty());
    // A gone connection: nothing is written, nothing created.
    registry.unregister(&b.ws).await.unwrap();
    registry.record_capabilities(&b.ws, b.user.id, b.broker, &stated).await.unwrap();
    assert!(registry.connection(&b.ws).await.unwrap().is_none());
    assert!(registry.link(b.user.id, b.broker).await.unwrap().unwrap().capabilities.is_empty());
}

/// Issue 18, bad input: a broker connection's flags (kept once, capped, never lost to a concurrent flag, kept by an
/// update of the connection's fields), what they withdraw from the live link, and ticket bindings written once.
pub async fn connection_flags_and_ticket_bindings(f: &impl StoreFactory) {
    use crate::brokers::service::{BrokerService, ConnectionInput};
    use crate::connector::flags::{ConnectionFlag, FlagKind, MAX_FLAGS, effective};
    use crate::connector::tickets::{TicketBinding, ticket_key};
    use crate::connector::{Capabilities, Capability};
    let b = Bench::new(f, TradingConfig::default()).await;
    let registry = b.orders.registry().clone();
    let brokers = BrokerService {
        store: b.store.clone(),
        push: b.push.clone(),
        clock: b.clock.clone(),
        ids: Arc::new(RandomIds),
        registry: registry.clone(),
    };
    let input =
        || ConnectionInput { broker_name: "P".into(), account_number: Some("1".into()), server: Some("S".into()) };
    let user = b.user.id;
    let conn = brokers.create(user, input()).await.unwrap().record.id;
    assert!(brokers.flags(user, conn).await.unwrap().is_empty());
    let at = b.clock.now();
    let flag = |kind, t: u64| ConnectionFlag::new(kind, at, &format!("ticket {t}"), Some(t), None);

    // Concurrent flags are all kept (a conditional write on the flags' sequence, read again on a lost race).
    let writes = (0..4).map(|t| brokers.flag(user, conn, flag(FlagKind::PriceSuspect, t)));
    for r in futures::future::join_all(writes).await {
        assert!(matches!(r, Ok(Some(_))), "{r:?}");
    }
    assert_eq!(brokers.flags(user, conn).await.unwrap().len(), 4);
    assert!(brokers.flag(user, conn, flag(FlagKind::PriceSuspect, 2)).await.unwrap().is_none(), "kept once");
    let flags = brokers.flag(user, conn, flag(FlagKind::DedupeViolated, 9)).await.unwrap().unwrap();
    assert!(!effective(&Capabilities::all(), &flags).dedupes());
    for t in 10..10 + MAX_FLAGS as u64 {
        brokers.flag(user, conn, flag(FlagKind::ForeignTicket, t)).await.unwrap();
    }
    let kept = brokers.flags(user, conn).await.unwrap();
    assert_eq!(kept.len(), MAX_FLAGS);
    assert_eq!(kept.last().unwrap().ticket, Some(9 + MAX_FLAGS as u64), "the newest kept");
    let updated = brokers.update(user, conn, input()).await.unwrap();
    assert_eq!(updated.record.flags, kept, "an update of the fields keeps the flags");
    assert_eq!(brokers.flag(Uuid::new_v4(), conn, flag(FlagKind::PriceSuspect, 1)).await.unwrap(), None);

    // What the connector stated and what is trusted, on its records.
    let stated = Capabilities::all();
    let trusted: Capabilities = stated.iter().filter(|c| *c != Capability::DedupeRequestId).collect();
    registry.record_stated_capabilities(&b.ws, user, b.broker, &stated, &trusted).await.unwrap();
    let link = registry.link(user, b.broker).await.unwrap().unwrap();
    assert_eq!((link.capabilities, link.stated_capabilities), (trusted.clone(), Some(stated.clone())));
    let ws = registry.connection(&b.ws).await.unwrap().unwrap();
    assert_eq!((ws.capabilities, ws.stated_capabilities), (trusted, Some(stated.clone())));
    registry.record_capabilities(&b.ws, user, b.broker, &stated).await.unwrap();
    let link = registry.link(user, b.broker).await.unwrap().unwrap();
    assert_eq!((link.capabilities, link.stated_capabilities), (stated, None));

    // A ticket is bound once, whoever races for it.
    let key = ticket_key(Some("S"), Some("1"), user, 77);
    let binding = |order: u128| TicketBinding {
        ticket: 77,
        user_id: user,
        broker_connection_id: conn,
        order_id: Uuid::from_u128(order),
        orphan: false,
    };
    let (first, second) = (binding(1), binding(2));
    let (one, two) = futures::join!(registry.bind_ticket(&key, &first), registry.bind_ticket(&key, &second));
    assert!(one.unwrap() ^ two.unwrap(), "exactly one binds");
    let bound = registry.ticket_binding(&key).await.unwrap().unwrap();
    assert!(bound == first || bound == second);
    assert_eq!(registry.ticket_binding(&ticket_key(Some("S"), Some("2"), user, 77)).await.unwrap(), None);
}
