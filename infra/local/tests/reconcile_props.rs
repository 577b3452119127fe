//! Property tests of reconciliation at the application level (issue #6 "Done when"): the real order use cases,
//! the `reconcile` consumer and service, on the embedded store (in memory, and on disk), against a simulated
//! connector + MT5 driven by random interleavings of: order placed, command delivered or lost, executed or
//! refused, ack success/failure/ambiguous, duplicated, delayed past the timeout, out of order, connector restarts
//! with positions kept, snapshots before/after fills (and stale ones), manual MT5 trades, stop changes and closes
//! in the terminal, and redelivered queue messages.
//!
//! Invariants after every step (read back from the store): no order open (or ever opened) without MT5 evidence
//! (its ticket existed in MT5); none lost (every placed order is still there); none doubled (one position per
//! client order id in MT5, one live order per ticket in our books); reservations equal the live orders. After the
//! final phase — everything in flight lost, time past the command expiry, every due timeout delivered, one fresh
//! snapshot and reconciliation — our books equal MT5 exactly, and reconciling again changes nothing.
//!
//! The simulated connector follows the platform's rules: it de-duplicates commands by request id (and opens by
//! their `NT-` comment), and a command older than the outbox's lifetime (5 min) never reaches it.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use nusatrade_app::auth::CurrentUser;
use nusatrade_app::connector::outbox::OUTBOX_TTL;
use nusatrade_app::connector::reports::{
    BrokerDeal, BrokerLookup, BrokerPosition, PositionsSnapshot, ReportHistory, ReportSource,
};
use nusatrade_app::connector::{ConnectorRegistry, Fanout, TradeResult};
use nusatrade_app::contract::queue::RecordingQueue;
use nusatrade_app::jobs::QueueConsumer;
use nusatrade_app::ports::*;
use nusatrade_app::reconcile::{AckTimeouts, ReconcileConsumer, ReconcileService, ReconcileSettings};
use nusatrade_app::trading::orders::queries::ListFilter;
use nusatrade_app::trading::orders::store::{OPEN_ORDERS_ATTR, limits_key};
use nusatrade_app::trading::orders::{ModifyOrder, OrderBook, OrderRecord, OrderService, PlaceOrder, TradingConfig};
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::money::{Lots, Side};
use nusatrade_domain::order::OrderStatus;
use nusatrade_local::adapters::EmbeddedStore;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

// ------------------------------------------------------------------ operations

#[derive(Debug, Clone)]
enum Op {
    Place {
        sell: bool,
    },
    /// The connector receives queued command `pick` (any of them: out of order); `dup`: a copy stays queued.
    /// `exec`: MT5 accepts an open; `ack`: 0–1 truthful, 2 an ambiguous failure (timeout retcode) whatever happened.
    Deliver {
        pick: usize,
        dup: bool,
        exec: bool,
        ack: u8,
    },
    LoseCommand {
        pick: usize,
    },
    /// The server receives ack `pick`; `dup`: it is delivered again later.
    Ack {
        pick: usize,
        dup: bool,
    },
    LoseAck {
        pick: usize,
    },
    /// A due ack-timeout message is handled by the consumer; `dup`: redelivered later.
    Timeout {
        pick: usize,
        dup: bool,
    },
    Tick {
        secs: u16,
    },
    Close {
        pick: usize,
    },
    Modify {
        pick: usize,
        pips: u8,
    },
    ManualOpen {
        sell: bool,
    },
    ManualClose {
        pick: usize,
    },
    ManualModify {
        pick: usize,
        pips: u8,
    },
    /// The connector restarts: commands in flight, unsent acks and its memory are gone; MT5's positions stay.
    Restart,
    /// The connector reports its positions now (`history`: with a complete history window and lookups).
    Snapshot {
        history: bool,
    },
    /// A reconciliation run on the latest stored snapshot (possibly stale: reported before later fills).
    Reconcile,
    /// A report now and its run (what the connector channel's hook triggers).
    Report {
        history: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(|sell| Op::Place { sell }),
        6 => (any::<usize>(), prop::bool::weighted(0.15), prop::bool::weighted(0.75), 0..3u8)
            .prop_map(|(pick, dup, exec, ack)| Op::Deliver { pick, dup, exec, ack }),
        1 => any::<usize>().prop_map(|pick| Op::LoseCommand { pick }),
        5 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(pick, dup)| Op::Ack { pick, dup }),
        2 => any::<usize>().prop_map(|pick| Op::LoseAck { pick }),
        3 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(pick, dup)| Op::Timeout { pick, dup }),
        4 => (1..120u16).prop_map(|secs| Op::Tick { secs }),
        1 => (120..500u16).prop_map(|secs| Op::Tick { secs }),
        2 => any::<usize>().prop_map(|pick| Op::Close { pick }),
        2 => (any::<usize>(), 5..60u8).prop_map(|(pick, pips)| Op::Modify { pick, pips }),
        1 => any::<bool>().prop_map(|sell| Op::ManualOpen { sell }),
        1 => any::<usize>().prop_map(|pick| Op::ManualClose { pick }),
        1 => (any::<usize>(), 5..60u8).prop_map(|(pick, pips)| Op::ManualModify { pick, pips }),
        1 => Just(Op::Restart),
        2 => any::<bool>().prop_map(|history| Op::Snapshot { history }),
        3 => Just(Op::Reconcile),
        3 => any::<bool>().prop_map(|history| Op::Report { history }),
    ]
}

// ------------------------------------------------------------------ the connector's side

/// Trade commands pushed to the connector's socket, with when they were sent.
#[derive(Default)]
struct Wire {
    commands: Mutex<Vec<(Value, DateTime<Utc>)>>,
}

struct WirePush {
    wire: Arc<Wire>,
    clock: Arc<ManualClock>,
}

#[async_trait]
impl Push for WirePush {
    async fn post(&self, _connection_id: &str, data: Bytes) -> Result<PushOutcome, PushError> {
        let v: Value = serde_json::from_slice(&data).map_err(|e| PushError::Invalid(e.to_string()))?;
        if v["type"].as_str().is_some_and(|t| t.starts_with("TRADE_")) {
            self.wire.commands.lock().unwrap().push((v, self.clock.now()));
        }
        Ok(PushOutcome::Delivered)
    }
    async fn close(&self, _: &str) -> Result<(), PushError> {
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Position {
    ticket: u64,
    side: Side,
    lots: Decimal,
    open_price: Decimal,
    open_time: DateTime<Utc>,
    sl: Option<Decimal>,
    comment: String,
}

/// The paper MT5 account behind the connector.
#[derive(Default)]
struct Mt5 {
    next_ticket: u64,
    positions: BTreeMap<u64, Position>,
    deals: Vec<BrokerDeal>,
    /// Every position ticket that ever existed.
    ever: BTreeSet<u64>,
    /// Comment → the position it opened.
    opened: BTreeMap<String, u64>,
}

impl Mt5 {
    fn price(side: Side) -> Decimal {
        match side {
            Side::Buy => d("1.08515"),
            Side::Sell => d("1.08500"),
        }
    }

    fn open(&mut self, side: Side, lots: Decimal, comment: &str, sl: Option<Decimal>, now: DateTime<Utc>) -> u64 {
        self.next_ticket += 1;
        let ticket = 500_000 + self.next_ticket;
        let p =
            Position { ticket, side, lots, open_price: Self::price(side), open_time: now, sl, comment: comment.into() };
        self.deals.push(deal(ticket * 10, ticket, "in", p.open_price, lots, now, comment));
        self.positions.insert(ticket, p);
        self.ever.insert(ticket);
        if !comment.is_empty() {
            self.opened.insert(comment.to_owned(), ticket);
        }
        ticket
    }

    fn close(&mut self, ticket: u64, now: DateTime<Utc>) -> Option<Decimal> {
        let p = self.positions.remove(&ticket)?;
        let price = d("1.08600");
        self.deals.push(deal(ticket * 10 + 1, ticket, "out", price, p.lots, now, ""));
        Some(price)
    }

    fn snapshot(
        &self,
        broker: Uuid,
        ws: &str,
        now: DateTime<Utc>,
        start: DateTime<Utc>,
        history: bool,
    ) -> PositionsSnapshot {
        let positions = self
            .positions
            .values()
            .map(|p| BrokerPosition {
                ticket: p.ticket,
                symbol: "EURUSD".into(),
                side: Some(p.side),
                volume: p.lots,
                open_price: Some(p.open_price),
                current_price: Some(p.open_price),
                stop_loss: p.sl,
                take_profit: None,
                profit: Some(Decimal::ZERO),
                comment: Some(p.comment.clone()),
                open_time: Some(p.open_time),
                bid: None,
                ask: None,
            })
            .collect();
        let lookups = if history {
            self.ever
                .iter()
                .map(|t| match self.positions.get(t) {
                    Some(_) => BrokerLookup { ticket: *t, status: "open".into(), price: None, time: None },
                    None => {
                        let out = self
                            .deals
                            .iter()
                            .rev()
                            .find(|x| x.position == Some(*t) && x.entry.as_deref() == Some("out"));
                        BrokerLookup {
                            ticket: *t,
                            status: "closed".into(),
                            price: out.and_then(|x| x.price),
                            time: out.and_then(|x| x.time),
                        }
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        PositionsSnapshot {
            broker_connection_id: broker,
            source: ReportSource::SyncResponse,
            request_id: None,
            ws_connection_id: ws.to_owned(),
            received_at: now,
            positions,
            deals: if history { self.deals.clone() } else { Vec::new() },
            skipped: 0,
            truncated: false,
            history: ReportHistory { history_from: history.then_some(start), lookups, ..ReportHistory::default() },
        }
    }
}

fn deal(
    ticket: u64,
    position: u64,
    entry: &str,
    price: Decimal,
    lots: Decimal,
    at: DateTime<Utc>,
    comment: &str,
) -> BrokerDeal {
    BrokerDeal {
        ticket,
        position: Some(position),
        symbol: "EURUSD".into(),
        side: None,
        entry: Some(entry.into()),
        volume: Some(lots),
        price: Some(price),
        profit: None,
        time: Some(at),
        reason: None,
        comment: Some(comment.into()),
    }
}

// ------------------------------------------------------------------ the world

#[derive(Default, Debug, Clone, Copy)]
struct Coverage {
    cases: u64,
    steps: u64,
    placed: u64,
    timeouts_applied: u64,
    opened_by_reconcile: u64,
    rejected_by_reconcile: u64,
    closed_externally: u64,
    adopted: u64,
    restarts: u64,
}

impl Coverage {
    fn add(&mut self, o: &Coverage) {
        self.cases += o.cases;
        self.steps += o.steps;
        self.placed += o.placed;
        self.timeouts_applied += o.timeouts_applied;
        self.opened_by_reconcile += o.opened_by_reconcile;
        self.rejected_by_reconcile += o.rejected_by_reconcile;
        self.closed_externally += o.closed_externally;
        self.adopted += o.adopted;
        self.restarts += o.restarts;
    }
}

struct World {
    clock: Arc<ManualClock>,
    store: Arc<dyn ItemStore>,
    wire: Arc<Wire>,
    queue: Arc<RecordingQueue>,
    orders: OrderService,
    svc: ReconcileService,
    consumer: ReconcileConsumer,
    user: CurrentUser,
    broker: Uuid,
    ws: String,
    start: DateTime<Utc>,
    mt5: Mt5,
    acks: Vec<Value>,
    /// The connector's memory: request id → its first result.
    memory: BTreeMap<String, Value>,
    placed: Vec<Uuid>,
    cov: Coverage,
}

impl World {
    async fn new(store: Arc<dyn ItemStore>, clock: Arc<ManualClock>) -> World {
        let wire = Arc::new(Wire::default());
        let clock_dyn: Arc<dyn Clock> = clock.clone();
        let queue = Arc::new(RecordingQueue::new(clock_dyn.clone()));
        let settings = ReconcileSettings::default();
        let orders = OrderService::with_parts(
            OrderBook::new(store.clone(), clock_dyn.clone()),
            Fanout::new(
                Arc::new(WirePush { wire: wire.clone(), clock: clock.clone() }),
                ConnectorRegistry::new(store.clone(), clock_dyn),
            ),
            Arc::new(RandomIds),
            TradingConfig::default(),
        )
        .with_ack_timeouts(Some(AckTimeouts::new(queue.clone(), settings.ack_timeout)));
        let svc = ReconcileService::new(orders.clone(), queue.clone(), settings);
        let user = CurrentUser {
            id: Uuid::new_v4(),
            email: "prop@example.com".into(),
            role: "user".into(),
            email_verified: true,
            session_id: Uuid::new_v4(),
            email_verification_required: true,
        };
        let broker = Uuid::new_v4();
        let ws = format!("ws-{}", Uuid::new_v4().simple());
        orders.registry().register_connector(&ws, user.id, &user.email, broker).await.unwrap();
        let start = clock.now();
        World {
            clock,
            store,
            wire,
            consumer: ReconcileConsumer { service: svc.clone() },
            queue,
            orders,
            svc,
            user,
            broker,
            ws,
            start,
            mt5: Mt5::default(),
            acks: Vec::new(),
            memory: BTreeMap::new(),
            placed: Vec::new(),
            cov: Coverage { cases: 1, ..Coverage::default() },
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn all_orders(&self) -> Vec<OrderRecord> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.orders.history(self.user.id, &ListFilter::default(), 200, cursor).await.unwrap();
            out.extend(page.items);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    async fn pick_order(&self, pick: usize, want: impl Fn(&OrderRecord) -> bool) -> Option<OrderRecord> {
        let list: Vec<OrderRecord> = self.all_orders().await.into_iter().filter(|o| want(o)).collect();
        (!list.is_empty()).then(|| list[pick % list.len()].clone())
    }

    async fn step(&mut self, op: &Op) {
        self.cov.steps += 1;
        let now = self.now();
        match op {
            Op::Place { sell } => {
                let side = if *sell { Side::Sell } else { Side::Buy };
                let req = PlaceOrder {
                    instrument: lookup("EURUSD").unwrap(),
                    side,
                    lots: Lots::new_unchecked(d("0.1")),
                    price: d("1.085"),
                    stop_loss: None,
                    take_profit: None,
                    broker_connection_id: None,
                    trailing_stop: None,
                    source: "api",
                };
                if let Ok(reply) = self.orders.place(&self.user, req, None).await {
                    let id = Uuid::try_parse(reply.body["trade"]["id"].as_str().unwrap()).unwrap();
                    self.placed.push(id);
                    self.cov.placed += 1;
                }
            }
            Op::Deliver { pick, dup, exec, ack } => {
                let cmd = {
                    let mut q = self.wire.commands.lock().unwrap();
                    if q.is_empty() {
                        return;
                    }
                    let i = pick % q.len();
                    if *dup { q[i].clone() } else { q.remove(i) }
                };
                let (frame, sent_at) = cmd;
                if now - sent_at > OUTBOX_TTL {
                    return; // the outbox never delivers a command this old
                }
                let rid = frame["request_id"].as_str().unwrap().to_owned();
                let result = match self.memory.get(&rid) {
                    Some(first) => first.clone(),
                    None => {
                        let r = self.execute(&frame, *exec, now);
                        self.memory.insert(rid.clone(), r.clone());
                        r
                    }
                };
                let result = if *ack == 2 {
                    json!({"request_id": rid, "success": false, "retcode": 10012, "error": "Request timeout"})
                } else {
                    result
                };
                self.acks.push(result);
            }
            Op::LoseCommand { pick } => {
                let mut q = self.wire.commands.lock().unwrap();
                if !q.is_empty() {
                    let i = pick % q.len();
                    q.remove(i);
                }
            }
            Op::Ack { pick, dup } => {
                if self.acks.is_empty() {
                    return;
                }
                let i = pick % self.acks.len();
                let ack = if *dup { self.acks[i].clone() } else { self.acks.remove(i) };
                let Value::Object(m) = ack else { unreachable!() };
                let r = TradeResult::parse(&m).unwrap();
                self.orders.apply_trade_result(self.user.id, &r).await.unwrap();
            }
            Op::LoseAck { pick } => {
                if !self.acks.is_empty() {
                    let i = pick % self.acks.len();
                    self.acks.remove(i);
                }
            }
            Op::Timeout { pick, dup } => {
                let body = {
                    let mut q = self.queue.sent.lock().unwrap();
                    let due: Vec<usize> =
                        (0..q.len()).filter(|i| q[*i].due <= now && q[*i].body.contains("\"ack_timeout\"")).collect();
                    if due.is_empty() {
                        return;
                    }
                    let i = due[pick % due.len()];
                    if *dup { q[i].body.clone() } else { q.remove(i).body }
                };
                self.deliver_message(&body).await;
            }
            Op::Tick { secs } => self.clock.advance(Duration::seconds(i64::from(*secs))),
            Op::Close { pick } => {
                if let Some(o) = self.pick_order(*pick, |o| o.status == OrderStatus::Open).await {
                    let _ = self.orders.close(&self.user, o.id, None).await;
                }
            }
            Op::Modify { pick, pips } => {
                if let Some(o) = self.pick_order(*pick, |o| o.status == OrderStatus::Open).await {
                    let reference = o.current_price.or(o.open_price).unwrap_or(o.requested_price);
                    let distance = Decimal::from(*pips) * d("0.0001");
                    let sl = match o.side {
                        Side::Buy => reference - distance,
                        Side::Sell => reference + distance,
                    };
                    let _ = self
                        .orders
                        .modify(&self.user, o.id, ModifyOrder { stop_loss: Some(sl), take_profit: None }, None)
                        .await;
                }
            }
            Op::ManualOpen { sell } => {
                let side = if *sell { Side::Sell } else { Side::Buy };
                self.mt5.open(side, d("0.2"), "", None, now);
            }
            Op::ManualClose { pick } => {
                let tickets: Vec<u64> = self.mt5.positions.keys().copied().collect();
                if !tickets.is_empty() {
                    self.mt5.close(tickets[pick % tickets.len()], now);
                }
            }
            Op::ManualModify { pick, pips } => {
                let tickets: Vec<u64> = self.mt5.positions.keys().copied().collect();
                if !tickets.is_empty() {
                    let p = self.mt5.positions.get_mut(&tickets[pick % tickets.len()]).unwrap();
                    let distance = Decimal::from(*pips) * d("0.0001");
                    p.sl = Some(match p.side {
                        Side::Buy => p.open_price - distance,
                        Side::Sell => p.open_price + distance,
                    });
                }
            }
            Op::Restart => {
                self.wire.commands.lock().unwrap().clear();
                self.acks.clear();
                self.memory.clear();
                self.cov.restarts += 1;
            }
            Op::Snapshot { history } => {
                let s = self.mt5.snapshot(self.broker, &self.ws, now, self.start, *history);
                self.orders.registry().save_positions(self.user.id, s).await.unwrap();
            }
            Op::Reconcile => self.reconcile().await,
            Op::Report { history } => {
                let s = self.mt5.snapshot(self.broker, &self.ws, now, self.start, *history);
                self.orders.registry().save_positions(self.user.id, s).await.unwrap();
                self.reconcile().await;
            }
        }
    }

    /// What the connector answers to a new command (MT5 executes it, or refuses).
    fn execute(&mut self, frame: &Value, exec: bool, now: DateTime<Utc>) -> Value {
        let rid = frame["request_id"].clone();
        match frame["type"].as_str().unwrap() {
            "TRADE_OPEN" => {
                let comment = frame["comment"].as_str().unwrap().to_owned();
                if let Some(t) = self.mt5.opened.get(&comment) {
                    // Already opened with this comment: answered with that position, never twice.
                    return json!({"request_id": rid, "success": true, "ticket": t, "price": 1.08515, "retcode": 10009});
                }
                if !exec {
                    return json!({"request_id": rid, "success": false, "retcode": 10006, "error": "Request rejected"});
                }
                let side = if frame["order_type"] == "SELL" { Side::Sell } else { Side::Buy };
                let lots = Decimal::from_str(&frame["lot_size"].to_string()).unwrap();
                let ticket = self.mt5.open(side, lots, &comment, None, now);
                let price = self.mt5.positions[&ticket].open_price;
                json!({"request_id": rid, "success": true, "ticket": ticket, "price": price.to_string(), "retcode": 10009})
            }
            "TRADE_CLOSE" => {
                let ticket = frame["ticket"].as_u64().unwrap();
                match self.mt5.close(ticket, now) {
                    Some(price) => {
                        json!({"request_id": rid, "success": true, "ticket": ticket, "price": price.to_string(), "retcode": 10009})
                    }
                    None => json!({"request_id": rid, "success": false, "retcode": 10036, "error": "Position closed"}),
                }
            }
            _ => {
                let ticket = frame["ticket"].as_u64().unwrap();
                match self.mt5.positions.get_mut(&ticket) {
                    Some(p) => {
                        p.sl = frame["stop_loss"].as_f64().map(|f| Decimal::from_str(&f.to_string()).unwrap());
                        json!({"request_id": rid, "success": true, "ticket": ticket, "retcode": 10009})
                    }
                    None => json!({"request_id": rid, "success": false, "retcode": 10036, "error": "Position closed"}),
                }
            }
        }
    }

    async fn deliver_message(&mut self, body: &str) {
        let m = ReceivedMessage { id: "m".into(), body: body.to_owned(), receipt: "r".into(), receive_count: 1 };
        let before: BTreeMap<Uuid, OrderStatus> = self.all_orders().await.iter().map(|o| (o.id, o.status)).collect();
        self.consumer.handle(&m).await.unwrap();
        let after = self.all_orders().await;
        self.cov.timeouts_applied += after
            .iter()
            .filter(|o| o.status == OrderStatus::Unknown && before.get(&o.id) == Some(&OrderStatus::Pending))
            .count() as u64;
    }

    async fn reconcile(&mut self) {
        let before: BTreeMap<Uuid, OrderStatus> = self.all_orders().await.iter().map(|o| (o.id, o.status)).collect();
        let r = self.svc.reconcile_connection(self.user.id, self.broker).await.unwrap();
        for o in &r.applied {
            match (before.get(&o.id), o.status) {
                (None, OrderStatus::External) => self.cov.adopted += 1,
                (Some(OrderStatus::Pending | OrderStatus::Unknown), OrderStatus::Open) => {
                    self.cov.opened_by_reconcile += 1
                }
                (_, OrderStatus::Rejected) => self.cov.rejected_by_reconcile += 1,
                (_, OrderStatus::ClosedExternally) => self.cov.closed_externally += 1,
                _ => {}
            }
        }
    }

    /// The invariants of every step.
    async fn check(&self) -> Result<(), TestCaseError> {
        use OrderStatus as S;
        let orders = self.all_orders().await;
        for o in &orders {
            if matches!(o.status, S::Open | S::ClosePending | S::ModifyPending | S::External) {
                let t = o.ticket.map(|t| t.0);
                prop_assert!(t.is_some_and(|t| self.mt5.ever.contains(&t)), "{} without MT5 evidence: {o:?}", o.status);
            }
            if let Some(t) = o.ticket {
                prop_assert!(self.mt5.ever.contains(&t.0), "a ticket MT5 never had: {o:?}");
            }
        }
        let live = orders.iter().filter(|o| o.is_live()).count();
        let reserved = self
            .store
            .get(&limits_key(self.user.id))
            .await
            .unwrap()
            .and_then(|i| i.get_n(OPEN_ORDERS_ATTR))
            .unwrap_or_default();
        prop_assert_eq!(reserved, Decimal::from(live), "reservations equal the live orders");
        let mut tickets = BTreeSet::new();
        for o in orders.iter().filter(|o| o.status.is_position()) {
            prop_assert!(tickets.insert(o.ticket), "position doubled in our books: {:?}", o);
        }
        let mut comments = BTreeSet::new();
        for p in self.mt5.positions.values().filter(|p| !p.comment.is_empty()) {
            prop_assert!(comments.insert(&p.comment), "order doubled in MT5: {}", p.comment);
        }
        let ids: BTreeSet<Uuid> = orders.iter().map(|o| o.id).collect();
        for id in &self.placed {
            prop_assert!(ids.contains(id), "order lost");
        }
        Ok(())
    }

    /// Everything in flight is lost; time passes beyond the command expiry; every timeout comes due and is
    /// handled; then fresh, complete snapshots are reconciled until nothing is left in flight.
    async fn settle(&mut self) -> Result<(), TestCaseError> {
        self.wire.commands.lock().unwrap().clear();
        self.acks.clear();
        self.clock.advance(Duration::minutes(7));
        let due: Vec<String> =
            self.queue.take().into_iter().map(|m| m.body).filter(|b| b.contains("\"ack_timeout\"")).collect();
        for body in due {
            self.deliver_message(&body).await;
        }
        self.wire.commands.lock().unwrap().clear();
        for _ in 0..2 {
            self.clock.advance(Duration::seconds(15));
            let s = self.mt5.snapshot(self.broker, &self.ws, self.now(), self.start, true);
            self.orders.registry().save_positions(self.user.id, s).await.unwrap();
            self.reconcile().await;
            self.check().await?;
        }
        Ok(())
    }

    /// Our books equal MT5.
    async fn check_converged(&self) -> Result<(), TestCaseError> {
        use OrderStatus as S;
        let orders = self.all_orders().await;
        for o in &orders {
            prop_assert!(
                !matches!(o.status, S::Pending | S::Unknown | S::ClosePending | S::ModifyPending),
                "unresolved {o:?}"
            );
            if o.status.is_position() {
                let t = o.ticket.unwrap().0;
                prop_assert!(self.mt5.positions.contains_key(&t), "phantom {o:?}");
            }
            if let Some(t) = self.mt5.opened.get(&o.client_order_id) {
                prop_assert_eq!(o.ticket.map(|x| x.0), Some(*t), "{:?}", o);
                prop_assert!(matches!(o.status, S::Open | S::Closed | S::ClosedExternally), "executed but {o:?}");
            }
        }
        for p in self.mt5.positions.values() {
            let holders: Vec<&OrderRecord> =
                orders.iter().filter(|o| o.status.is_position() && o.ticket.map(|t| t.0) == Some(p.ticket)).collect();
            prop_assert_eq!(holders.len(), 1, "exactly one order holds position {}", p.ticket);
            let o = holders[0];
            prop_assert_eq!((o.side, o.lots, o.stop_loss), (p.side, p.lots, p.sl), "{:?} vs {:?}", o, p);
            prop_assert_eq!(o.status == S::External, p.comment.is_empty(), "{:?}", o);
        }
        Ok(())
    }
}

async fn run_case(store: Arc<dyn ItemStore>, clock: Arc<ManualClock>, ops: Vec<Op>) -> Result<Coverage, TestCaseError> {
    let mut w = World::new(store, clock).await;
    for op in &ops {
        w.step(op).await;
        w.check().await.map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))?;
    }
    w.settle().await?;
    w.check_converged().await?;
    // Once more: nothing changes.
    w.clock.advance(Duration::seconds(15));
    let s = w.mt5.snapshot(w.broker, &w.ws, w.now(), w.start, true);
    w.orders.registry().save_positions(w.user.id, s).await.unwrap();
    let again = w.svc.reconcile_connection(w.user.id, w.broker).await.unwrap();
    prop_assert!(again.applied.is_empty() && again.drift == 0, "a second run changed something: {again:?}");
    Ok(w.cov)
}

fn run(cases: u32, store: impl Fn(Arc<dyn Clock>) -> Arc<dyn ItemStore>) -> Coverage {
    let total = Arc::new(Mutex::new(Coverage::default()));
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let strategy = prop::collection::vec(op(), 1..45);
    let sum = total.clone();
    runner
        .run(&strategy, |ops| {
            let clock = Arc::new(ManualClock::new(Utc::now()));
            let s = store(clock.clone());
            let cov = rt.block_on(run_case(s, clock, ops))?;
            sum.lock().unwrap().add(&cov);
            Ok(())
        })
        .unwrap();
    *total.lock().unwrap()
}

fn assert_coverage(c: &Coverage) {
    eprintln!("reconciliation property test: {c:?}");
    assert!(c.timeouts_applied > 0 && c.opened_by_reconcile > 0, "{c:?}");
    assert!(c.rejected_by_reconcile > 0 && c.closed_externally > 0 && c.adopted > 0 && c.restarts > 0, "{c:?}");
}

/// Cases on the embedded store in memory.
const CASES_IN_MEMORY: u32 = 256;
/// Cases on the embedded store on disk (every write durable: slower).
const CASES_ON_DISK: u32 = 24;

#[test]
fn books_converge_to_mt5_on_the_embedded_store_in_memory() {
    let c = run(CASES_IN_MEMORY, |clock| Arc::new(EmbeddedStore::temporary(clock).unwrap()));
    assert!(c.cases >= u64::from(CASES_IN_MEMORY));
    assert_coverage(&c);
}

#[test]
fn books_converge_to_mt5_on_the_embedded_store_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let c = run(CASES_ON_DISK, move |clock| {
        Arc::new(EmbeddedStore::open(&path.join(format!("{}.redb", Uuid::new_v4().simple())), clock).unwrap())
    });
    assert!(c.cases >= u64::from(CASES_ON_DISK));
}
