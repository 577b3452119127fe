//! Reconciliation, ack timeouts and trailing stops (issue #6) on a real store adapter: each scenario drives the
//! order use cases and `ReconcileService` the way the connector channel and the `reconcile` worker do, with a
//! [`RecordingPush`] standing in for the connector and the dashboards, a queue that records what is sent, and a
//! manual clock. Run on the embedded store (in memory and on disk, `infra/local/tests/reconcile.rs`) and on
//! DynamoDB (moto, `infra/aws/tests/reconcile.rs`).

use crate::trading::orders::routes::placed_status;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use nusatrade_domain::money::Side;
use nusatrade_domain::order::{OrderStatus, Ticket};
use nusatrade_domain::reconcile::external_order_id;
use nusatrade_domain::trailing::{TrailingStopSettings, TrailingType};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::connector::reports::{
    BrokerDeal, BrokerLookup, BrokerPosition, PositionsSnapshot, ReportHistory, ReportSource,
};
use crate::contract::queue::RecordingQueue;
use crate::contract::store::StoreFactory;
use crate::jobs::QueueConsumer;
use crate::ports::*;
use crate::reconcile::store::{IndexKind, SHARDS, index_key, run_key, trail_key};
use crate::reconcile::{
    AckTimeouts, ReconcileConsumer, ReconcileHook, ReconcileJob, ReconcileService, ReconcileSettings,
};
use crate::suites::orders::{Bench, PushMode, dec, order};
use crate::trading::orders::store::{OPEN_ORDERS_ATTR, limits_key, stats_key};
use crate::trading::orders::{OrderRecord, TradingConfig, TradingError};

// ------------------------------------------------------------------ harness

struct World {
    b: Bench,
    queue: Arc<RecordingQueue>,
    svc: ReconcileService,
    browser: String,
}

impl World {
    /// The ack-timeout messages sent so far (request id, delay); the other messages stay.
    fn timeouts(&self) -> Vec<(String, StdDuration)> {
        self.queue
            .take_where(|m| m.body.contains("\"ack_timeout\""))
            .into_iter()
            .map(|m| match ReconcileJob::parse(&m.body).unwrap() {
                ReconcileJob::AckTimeout { request_id, .. } => (request_id, m.delay),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// Every job sent so far.
    fn jobs(&self) -> Vec<ReconcileJob> {
        self.queue.take().into_iter().map(|m| ReconcileJob::parse(&m.body).unwrap()).collect()
    }

    async fn new(f: &impl StoreFactory, config: TradingConfig) -> World {
        let mut b = Bench::new(f, config).await;
        let queue = Arc::new(RecordingQueue::new(b.clock.clone()));
        // Every command sent schedules its ack timeout, as `OrderService::new` wires it.
        b.orders =
            b.orders.clone().with_ack_timeouts(Some(AckTimeouts::new(queue.clone(), StdDuration::from_secs(30))));
        let svc = ReconcileService::new(b.orders.clone(), queue.clone(), ReconcileSettings::default());
        let browser = format!("browser-{}", Uuid::new_v4().simple());
        b.orders.registry().register_browser(&browser, b.user.id, &b.user.email).await.unwrap();
        World { b, queue, svc, browser }
    }

    fn now(&self) -> DateTime<Utc> {
        self.b.clock.now()
    }

    fn advance(&self, secs: i64) {
        self.b.clock.advance(Duration::seconds(secs));
    }

    async fn place(&self, side: Side) -> OrderRecord {
        let reply = self.b.orders.place(&self.b.user, order("EURUSD", side, "0.1", "1.0850"), None).await.unwrap();
        assert_eq!(placed_status(&reply).as_u16(), 201, "{}", reply.body);
        let id = Uuid::try_parse(reply.body["trade"]["id"].as_str().unwrap()).unwrap();
        self.get(id).await
    }

    async fn get(&self, id: Uuid) -> OrderRecord {
        self.b.orders.get(self.b.user.id, id).await.unwrap()
    }

    async fn reservations(&self) -> Decimal {
        self.b.open_orders().await
    }

    /// Stores a positions report received now, as the connector channel does.
    async fn report(&self, positions: Vec<BrokerPosition>, deals: Vec<BrokerDeal>, history: ReportHistory) {
        let s = PositionsSnapshot {
            broker_connection_id: self.b.broker,
            source: ReportSource::SyncResponse,
            request_id: Some("reconcile_test".into()),
            ws_connection_id: self.b.ws.clone(),
            received_at: self.now(),
            positions,
            deals,
            skipped: 0,
            truncated: false,
            history,
        };
        self.b.orders.registry().save_positions(self.b.user.id, s).await.unwrap();
    }

    async fn run(&self) -> crate::reconcile::RunReport {
        self.svc.reconcile_connection(self.b.user.id, self.b.broker).await.unwrap()
    }

    fn connector_frames(&self, kind: &str) -> Vec<Value> {
        self.b.push.of_type(&self.b.ws, kind)
    }

    fn order_updates(&self, id: Uuid) -> Vec<Value> {
        self.b
            .push
            .of_type(&self.browser, "ORDER_UPDATE")
            .into_iter()
            .filter(|u| u["order"]["id"] == id.to_string())
            .collect()
    }

    async fn audit_events(&self) -> Vec<String> {
        let page = self
            .b
            .store
            .query(Query::partition(format!("USER#{}", self.b.user.id)).sk_prefix("AUDIT#").limit(100))
            .await
            .unwrap();
        page.items.iter().map(|i| i.get_s("event").unwrap_or_default().to_owned()).collect()
    }

    async fn watched(&self) -> bool {
        self.b.store.get(&index_key(IndexKind::Watch, self.b.user.id, self.b.broker)).await.unwrap().is_some()
    }
}

fn position(ticket: u64, comment: &str, side: Side, price: &str) -> BrokerPosition {
    BrokerPosition {
        ticket,
        symbol: "EURUSD".into(),
        side: Some(side),
        volume: dec("0.1"),
        open_price: Some(dec(price)),
        current_price: Some(dec(price)),
        stop_loss: None,
        take_profit: None,
        profit: Some(Decimal::ZERO),
        comment: Some(comment.into()),
        open_time: None,
        bid: None,
        ask: None,
    }
}

fn mine(o: &OrderRecord, ticket: u64, price: &str) -> BrokerPosition {
    position(ticket, &o.client_order_id, o.side, price)
}

fn window(from: DateTime<Utc>) -> ReportHistory {
    ReportHistory { history_from: Some(from), ..ReportHistory::default() }
}

// ------------------------------------------------------------------ scenarios

pub async fn timeout_makes_unknown_then_the_snapshot_opens_with_the_real_fill(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    let o = w.place(Side::Buy).await;
    assert_eq!((o.status, w.reservations().await), (OrderStatus::Pending, Decimal::ONE));
    // The command sent got its delayed ack-timeout message (no table scan finds it later).
    assert_eq!(w.timeouts(), vec![(o.id.to_string(), StdDuration::from_secs(30))]);

    // No ack within the timeout: unknown, watched, and MT5 is asked for its history since the order.
    w.advance(31);
    w.svc.ack_timeout(w.b.user.id, w.b.broker, &o.id.to_string()).await.unwrap();
    let o1 = w.get(o.id).await;
    assert_eq!(o1.status, OrderStatus::Unknown);
    assert!(w.watched().await);
    let asks = w.connector_frames("SYNC_REQUEST");
    assert_eq!(asks.len(), 1, "{asks:?}");
    let from = DateTime::parse_from_rfc3339(asks[0]["history_from"].as_str().unwrap()).unwrap();
    assert!(from <= o.created_at, "history covers the order");
    assert!(asks[0]["request_id"].as_str().unwrap().starts_with("reconcile_timeout_"));
    // A redelivered timeout changes nothing more.
    w.svc.ack_timeout(w.b.user.id, w.b.broker, &o.id.to_string()).await.unwrap();
    assert_eq!(w.get(o.id).await.version, o1.version);

    // A report right away cannot settle an order that changed just now (minimum age 10 s): nothing written, and
    // the connection is asked again once it is old enough (a delayed message, not the next sweep).
    w.report(vec![mine(&o, 777, "1.0862")], vec![], ReportHistory::default()).await;
    let early = w.run().await;
    assert_eq!((early.applied.len(), early.unresolved), (0, 1), "{early:?}");
    let later =
        w.queue.take().into_iter().map(|m| (ReconcileJob::parse(&m.body).unwrap(), m.delay)).collect::<Vec<_>>();
    assert!(
        matches!(later.as_slice(), [(ReconcileJob::Ask { history_from, .. }, d)] if *history_from <= o.created_at && *d == StdDuration::from_secs(11)),
        "{later:?}"
    );
    w.svc.handle(later[0].0.clone()).await.unwrap();
    // Asked three times: the timeout, its redelivery (asking again is harmless), the delayed look.
    let asks = w.connector_frames("SYNC_REQUEST");
    assert_eq!(asks.len(), 3);
    assert!(asks[2]["request_id"].as_str().unwrap().starts_with("reconcile_settle_"));

    // MT5 has it (our comment), filled at another price: open with the real fill.
    w.advance(11);
    w.report(vec![mine(&o, 777, "1.0862")], vec![], ReportHistory::default()).await;
    let r = w.run().await;
    assert_eq!((r.outcome.as_str(), r.applied.len(), r.unresolved), ("reconciled", 1, 0), "{r:?}");
    let open = w.get(o.id).await;
    assert_eq!(
        (open.status, open.ticket, open.open_price),
        (OrderStatus::Open, Some(Ticket(777)), Some(dec("1.0862")))
    );
    assert!(open.fill_price_confirmed);
    assert_eq!(w.reservations().await, Decimal::ONE, "still one live position");
    assert!(!w.watched().await, "nothing left in flight");
    assert_eq!(w.order_updates(o.id).last().unwrap()["order"]["status"], "open");
    assert!(w.audit_events().await.contains(&"order_reconciled_open".to_owned()));

    // Reconciling again changes nothing.
    let again = w.run().await;
    assert_eq!((again.applied.len(), again.drift), (0, 0), "{again:?}");
    assert_eq!(w.get(o.id).await, open);
}

pub async fn an_ack_in_time_makes_the_timeout_a_no_op(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    let o = w.place(Side::Sell).await;
    w.b.ack(&o.id.to_string(), true, json!({"ticket": 5, "price": 1.0849})).await;
    w.advance(31);
    w.svc.ack_timeout(w.b.user.id, w.b.broker, &o.id.to_string()).await.unwrap();
    assert_eq!(w.get(o.id).await.status, OrderStatus::Open);
    assert!(w.connector_frames("SYNC_REQUEST").is_empty(), "nothing asked");
    assert!(!w.watched().await);
    // Malformed request ids are poison (DLQ), unknown orders are simply done.
    assert!(w.svc.ack_timeout(w.b.user.id, w.b.broker, "resync_abc").await.is_err());
    w.svc.ack_timeout(w.b.user.id, w.b.broker, &Uuid::new_v4().to_string()).await.unwrap();
}

pub async fn absence_from_a_covering_history_rejects_and_releases(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    let o = w.place(Side::Buy).await;
    w.advance(31);
    w.svc.ack_timeout(w.b.user.id, w.b.broker, &o.id.to_string()).await.unwrap();

    // History since before the order, no deal, but the command may still be resent (outbox): wait.
    w.advance(60);
    w.report(vec![], vec![], window(o.created_at - Duration::minutes(1))).await;
    let r = w.run().await;
    assert_eq!((r.applied.len(), r.unresolved), (0, 1), "{r:?}");
    assert_eq!(w.get(o.id).await.status, OrderStatus::Unknown);
    assert!(w.watched().await);

    // Past the command's expiry and still absent from a covering history: never executed.
    w.advance(6 * 60);
    w.report(vec![], vec![], window(o.created_at - Duration::minutes(1))).await;
    let r = w.run().await;
    assert_eq!(r.applied.len(), 1, "{r:?}");
    let rejected = w.get(o.id).await;
    assert_eq!(rejected.status, OrderStatus::Rejected);
    assert!(rejected.error.unwrap().contains("Never executed"));
    assert_eq!(w.reservations().await, Decimal::ZERO, "the reservation is released in the same write");
    assert!(!w.watched().await);
    assert_eq!(w.run().await.applied.len(), 0);
}

pub async fn open_absent_is_checked_then_closed_externally(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    let o = w.place(Side::Buy).await;
    w.b.ack(&o.id.to_string(), true, json!({"ticket": 900, "price": 1.0850})).await;
    w.advance(20);
    // Gone from MT5, no history: a targeted check of the ticket first, nothing written.
    w.report(vec![], vec![], ReportHistory::default()).await;
    let r = w.run().await;
    assert_eq!((r.applied.len(), r.checks), (0, 1), "{r:?}");
    assert_eq!(w.get(o.id).await.status, OrderStatus::Open);
    let ask = w.connector_frames("SYNC_REQUEST").pop().unwrap();
    assert_eq!(ask["tickets"], json!([900]));
    assert!(ask["request_id"].as_str().unwrap().starts_with("reconcile_check_"));
    // A second run at once does not ask again (one check per 30 s).
    w.run().await;
    assert_eq!(w.connector_frames("SYNC_REQUEST").len(), 1);

    // The lookup says closed at 1.0900 (its stop loss / take profit, or by hand): closed externally.
    w.advance(2);
    let closed_at = w.now() - Duration::seconds(1);
    let h = ReportHistory {
        lookups: vec![BrokerLookup {
            ticket: 900,
            status: "closed".into(),
            price: Some(dec("1.0900")),
            time: Some(closed_at),
        }],
        ..ReportHistory::default()
    };
    w.report(vec![], vec![], h).await;
    let r = w.run().await;
    assert_eq!(r.applied.len(), 1, "{r:?}");
    let c = w.get(o.id).await;
    assert_eq!(
        (c.status, c.close_price, c.close_time),
        (OrderStatus::ClosedExternally, Some(dec("1.0900")), Some(closed_at))
    );
    // 0.1 lot EURUSD, +50 pips: USD 50.
    assert_eq!(c.profit, Some(dec("50")));
    assert_eq!(w.reservations().await, Decimal::ZERO);
    let stats = w.b.store.get(&stats_key(w.b.user.id)).await.unwrap().unwrap();
    assert_eq!((stats.get_n("closed_trades"), stats.get_n("total_pnl")), (Some(Decimal::ONE), Some(dec("50"))));
    assert_eq!(w.order_updates(o.id).last().unwrap()["order"]["status"], "closed_externally");
    assert_eq!(w.run().await.applied.len(), 0);
}

pub async fn manual_trades_are_adopted_once_and_count_against_the_limit(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig { max_open_positions: 2, ..TradingConfig::default() }).await;
    let mut manual = position(4242, "", Side::Sell, "1.0900");
    manual.open_time = Some(w.now() - Duration::hours(1));
    manual.take_profit = Some(dec("1.0800"));
    w.report(vec![manual.clone()], vec![], ReportHistory::default()).await;
    let r = w.run().await;
    assert_eq!(r.applied.len(), 1, "{r:?}");
    let id = external_order_id(w.b.broker, Ticket(4242), manual.open_time);
    assert_eq!(id.get_version_num(), 7);
    let ext = w.get(id).await;
    assert_eq!(
        (ext.status, ext.ticket, ext.side, ext.take_profit),
        (OrderStatus::External, Some(Ticket(4242)), Side::Sell, Some(dec("1.0800")))
    );
    assert_eq!(ext.source, "mt5_external");
    assert_eq!(w.reservations().await, Decimal::ONE, "adopted positions count against the limit");
    assert!(w.order_updates(id).len() == 1 && w.audit_events().await.contains(&"position_adopted".to_owned()));
    // Listed among the positions.
    let listed = w.b.orders.positions(w.b.user.id, &Default::default(), 10, None).await.unwrap();
    assert!(listed.items.iter().any(|p| p.id == id));

    // Adopting twice changes nothing.
    w.advance(5);
    w.report(vec![manual.clone()], vec![], ReportHistory::default()).await;
    assert_eq!(w.run().await.applied.len(), 0);
    assert_eq!(w.reservations().await, Decimal::ONE);

    // The limit counts it: one more order fits, the next does not.
    w.place(Side::Buy).await;
    let refused = w.b.orders.place(&w.b.user, order("EURUSD", Side::Buy, "0.1", "1.0850"), None).await;
    assert!(matches!(refused, Err(TradingError::LimitReached(2))), "{refused:?}");

    // Closed by hand in the terminal: the closing deal closes it externally and gives the reservation back.
    w.advance(20);
    let deal = BrokerDeal {
        ticket: 99,
        position: Some(4242),
        symbol: "EURUSD".into(),
        side: Some(Side::Buy),
        entry: Some("out".into()),
        volume: Some(dec("0.1")),
        price: Some(dec("1.0850")),
        profit: Some(dec("50")),
        time: Some(w.now() - Duration::seconds(3)),
        reason: Some("client".into()),
        comment: None,
    };
    w.report(vec![], vec![deal], ReportHistory::default()).await;
    let r = w.run().await;
    assert!(r.applied.iter().any(|o| o.id == id && o.status == OrderStatus::ClosedExternally), "{r:?}");
    let closed = w.get(id).await;
    assert_eq!((closed.close_price, closed.profit), (Some(dec("1.0850")), Some(dec("50"))), "MT5's own profit");
    assert_eq!(w.reservations().await, Decimal::ONE, "only the order placed is left");
}

pub async fn unusable_snapshots_change_nothing(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    let o = w.place(Side::Buy).await;
    w.b.ack(&o.id.to_string(), true, json!({"ticket": 31, "price": 1.0850})).await;
    w.advance(30);
    // Missing.
    let r = w.run().await;
    assert_eq!(r.outcome, "skipped: no snapshot");
    // Stale: an empty report two minutes old must not close anything.
    w.report(vec![], vec![], ReportHistory::default()).await;
    w.advance(120);
    let r = w.run().await;
    assert!(r.outcome.starts_with("skipped: stale snapshot"), "{r:?}");
    // Incomplete: an unreadable entry.
    let s = PositionsSnapshot {
        broker_connection_id: w.b.broker,
        source: ReportSource::Positions,
        request_id: None,
        ws_connection_id: w.b.ws.clone(),
        received_at: w.now(),
        positions: vec![],
        deals: vec![],
        skipped: 1,
        truncated: false,
        history: ReportHistory::default(),
    };
    w.b.orders.registry().save_positions(w.b.user.id, s).await.unwrap();
    let r = w.run().await;
    assert!(r.outcome.starts_with("skipped: snapshot failed (incomplete"), "{r:?}");
    let after = w.get(o.id).await;
    assert_eq!((after.status, after.version), (OrderStatus::Open, 1));
    assert!(w.connector_frames("SYNC_REQUEST").is_empty());
    // The status route shows the last outcome.
    let run: crate::reconcile::store::ConnectionRun =
        w.b.store.get(&run_key(w.b.user.id, w.b.broker)).await.unwrap().unwrap().to_record().unwrap();
    assert_eq!((run.runs_total, run.last_actions), (3, 0));
    assert!(run.last_outcome.unwrap().contains("incomplete"));
}

pub async fn books_follow_mt5_stops(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    let o = w.place(Side::Buy).await;
    w.b.ack(&o.id.to_string(), true, json!({"ticket": 12, "price": 1.0850})).await;
    w.advance(15);
    let mut p = mine(&o, 12, "1.0850");
    p.stop_loss = Some(dec("1.0800"));
    p.take_profit = Some(dec("1.0950"));
    w.report(vec![p], vec![], ReportHistory::default()).await;
    assert_eq!(w.run().await.applied.len(), 1);
    let o2 = w.get(o.id).await;
    assert_eq!(
        (o2.status, o2.stop_loss, o2.take_profit),
        (OrderStatus::Open, Some(dec("1.0800")), Some(dec("1.0950")))
    );
    assert_eq!(w.run().await.applied.len(), 0);
    assert!(w.audit_events().await.contains(&"order_followed_mt5".to_owned()));
}

pub async fn sweeps_fan_out_and_ask_the_connectors(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    // A snapshot indexes the connection and queues a run.
    w.report(vec![], vec![], ReportHistory::default()).await;
    let stored = w.b.orders.registry().positions(w.b.user.id, w.b.broker).await.unwrap().unwrap();
    w.svc.snapshot_stored(w.b.user.id, &stored).await;
    assert!(matches!(w.jobs().as_slice(), [ReconcileJob::Snapshot { .. }]));

    // The scheduled message fans out one message per shard.
    w.svc.handle(ReconcileJob::parse(r#"{"kind":"sweep_connections"}"#).unwrap()).await.unwrap();
    let shards = w.jobs();
    assert_eq!(shards.len(), SHARDS as usize);
    for job in shards {
        w.svc.handle(job).await.unwrap();
    }
    let asks = w.connector_frames("GET_POSITIONS");
    assert_eq!(asks.len(), 1, "only the active connection is asked: {asks:?}");
    assert!(asks[0]["request_id"].as_str().unwrap().starts_with("reconcile_sweep_"));

    // An unresolved order puts the connection on the every-minute watch list.
    let o = w.place(Side::Buy).await;
    assert_eq!(w.timeouts().len(), 1);
    w.advance(31);
    w.svc.ack_timeout(w.b.user.id, w.b.broker, &o.id.to_string()).await.unwrap();
    let before = w.connector_frames("SYNC_REQUEST").len();
    w.svc.handle(ReconcileJob::parse(r#"{"kind":"sweep_in_flight"}"#).unwrap()).await.unwrap();
    for job in w.jobs() {
        w.svc.handle(job).await.unwrap();
    }
    assert_eq!(w.connector_frames("SYNC_REQUEST").len(), before + 1);

    // The connector left: the 5-minute sweep drops the connection from its index, the watch list keeps it.
    w.b.orders.registry().unregister(&w.b.ws).await.unwrap();
    w.svc
        .handle(ReconcileJob::SweepConnections {
            shard: Some(crate::reconcile::store::shard_of(w.b.broker)),
            cursor: None,
        })
        .await
        .unwrap();
    assert!(w.b.store.get(&index_key(IndexKind::Link, w.b.user.id, w.b.broker)).await.unwrap().is_none());
    assert!(w.watched().await);
    assert!(w.svc.handle(ReconcileJob::SweepInFlight { shard: Some(SHARDS), cursor: None }).await.is_err());
}

pub async fn the_hook_queues_a_run_and_redelivery_changes_nothing(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    let o = w.place(Side::Buy).await;
    w.timeouts();
    w.advance(31);
    w.svc.ack_timeout(w.b.user.id, w.b.broker, &o.id.to_string()).await.unwrap();
    w.advance(11);
    let hook = ReconcileHook::new(w.svc.clone());
    let s = PositionsSnapshot {
        broker_connection_id: w.b.broker,
        source: ReportSource::Positions,
        request_id: None,
        ws_connection_id: w.b.ws.clone(),
        received_at: w.now(),
        positions: vec![mine(&o, 55, "1.0851")],
        deals: vec![],
        skipped: 0,
        truncated: false,
        history: ReportHistory::default(),
    };
    let stored = w.b.orders.registry().save_positions(w.b.user.id, s).await.unwrap();
    crate::connector::SnapshotHook::positions_snapshot(&hook, w.b.user.id, &stored).await;
    let jobs = w.jobs();
    let [job @ ReconcileJob::Snapshot { .. }] = jobs.as_slice() else { panic!("{jobs:?}") };
    let consumer = ReconcileConsumer { service: w.svc.clone() };
    let message = ReceivedMessage { id: "m".into(), body: job.to_json(), receipt: "r".into(), receive_count: 1 };
    consumer.handle(&message).await.unwrap();
    let open = w.get(o.id).await;
    assert_eq!(open.status, OrderStatus::Open);
    // Redelivered (the first delete was lost): nothing changes.
    consumer.handle(&ReceivedMessage { receive_count: 2, ..message }).await.unwrap();
    assert_eq!(w.get(o.id).await, open);
    assert_eq!(w.order_updates(o.id).iter().filter(|u| u["order"]["status"] == "open").count(), 1);
    let poison =
        ReceivedMessage { id: "p".into(), body: "{\"kind\":\"x\"}".into(), receipt: "r".into(), receive_count: 1 };
    assert!(consumer.handle(&poison).await.is_err());
}

pub async fn trailing_stops_move_protectively_at_most_every_15_seconds(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    let o = w.place(Side::Buy).await;
    w.b.ack(&o.id.to_string(), true, json!({"ticket": 70, "price": 1.0850})).await;
    let settings = TrailingStopSettings {
        trailing_type: TrailingType::FixedPips,
        activation_pips: dec("20"),
        trail_distance_pips: dec("15"),
        breakeven_enabled: false,
        ..TrailingStopSettings::default()
    };
    w.b.orders.set_trailing_stop(&w.b.user, o.id, settings).await.unwrap();
    let hook = ReconcileHook::new(w.svc.clone());
    let at = |price: &str, sl: Option<&str>| {
        let mut p = mine(&o, 70, "1.0850");
        p.current_price = Some(dec(price));
        p.stop_loss = sl.map(dec);
        vec![p]
    };
    // Not far enough in profit: nothing.
    assert!(hook.trailing.on_positions(w.b.user.id, w.b.broker, &at("1.0860", None)).await.is_empty());
    // 30 pips up: SL = 1.0880 - 15 pips = 1.0865.
    w.advance(2);
    let moves = hook.trailing.on_positions(w.b.user.id, w.b.broker, &at("1.0880", None)).await;
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(moves[0].to, dec("1.0865"));
    let cmd = w.connector_frames("TRADE_MODIFY").pop().unwrap();
    assert_eq!((cmd["ticket"].as_u64(), cmd["stop_loss"].as_f64()), (Some(70), Some(1.0865)));
    let m = w.get(o.id).await;
    assert_eq!((m.status, m.pending_stop_loss), (OrderStatus::ModifyPending, Some(dec("1.0865"))));
    let timeouts = w.timeouts();
    assert_eq!(timeouts.last().map(|(r, _)| r.as_str()), cmd["request_id"].as_str(), "the modify has its ack timeout");
    // The ack follows the trading rules.
    w.b.ack(cmd["request_id"].as_str().unwrap(), true, json!({})).await;
    assert_eq!(w.get(o.id).await.stop_loss, Some(dec("1.0865")));

    // Higher again 5 s later: the 15 s gap holds it back.
    w.advance(5);
    assert!(hook.trailing.on_positions(w.b.user.id, w.b.broker, &at("1.0900", Some("1.0865"))).await.is_empty());
    // A falling price never loosens the stop.
    w.advance(20);
    assert!(hook.trailing.on_positions(w.b.user.id, w.b.broker, &at("1.0870", Some("1.0865"))).await.is_empty());
    // Past the gap and higher: moved again, only upwards.
    w.advance(1);
    let moves = hook.trailing.on_positions(w.b.user.id, w.b.broker, &at("1.0900", Some("1.0865"))).await;
    assert_eq!(moves.iter().map(|m| m.to).collect::<Vec<_>>(), [dec("1.0885")]);
    assert_eq!(w.connector_frames("TRADE_MODIFY").len(), 2);
    assert!(w.b.store.get(&trail_key(w.b.user.id, o.id)).await.unwrap().is_some());
    // A position without settings, or another connection's, is never touched.
    let other = w.place(Side::Sell).await;
    w.b.ack(&other.id.to_string(), true, json!({"ticket": 71, "price": 1.0850})).await;
    w.advance(20);
    let mut p = mine(&other, 71, "1.0850");
    p.current_price = Some(dec("1.0700"));
    assert!(hook.trailing.on_positions(w.b.user.id, w.b.broker, &[p]).await.is_empty());
}

pub async fn position_monitor_status_and_sync(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    let asked = w.svc.sync(w.b.user.id).await.unwrap();
    assert_eq!(asked, vec![w.b.broker]);
    let frame = w.connector_frames("GET_POSITIONS").pop().unwrap();
    assert_eq!(frame["request_id"], format!("manual_sync_{}", w.b.broker));
    w.report(vec![position(1, "", Side::Buy, "1.1")], vec![], ReportHistory::default()).await;
    w.run().await;
    let st = w.svc.status(w.b.user.id).await.unwrap();
    assert_eq!((st.connections.len(), st.total_positions), (1, 1));
    let c = &st.connections[0];
    assert_eq!((c.online, c.run.last_actions, c.run.last_drift, c.snapshot_positions), (true, 1, 1, Some(1)));
    // A connector that is gone is not asked.
    w.b.push.set_mode(&w.b.ws, PushMode::Gone);
    assert!(w.svc.sync(w.b.user.id).await.unwrap().is_empty());
    let limits = w.b.store.get(&limits_key(w.b.user.id)).await.unwrap().unwrap();
    assert_eq!(limits.get_n(OPEN_ORDERS_ATTR), Some(Decimal::ONE));
}

// ------------------------------------------------------------------ blind connectors (issue 18)

/// The original connector (no capabilities, no lookups): a position of ours missing from two consecutive complete
/// reports taken after its last change is closed externally at the last known price, flagged unconfirmed; one
/// report is not enough, nor the same report twice; a connector with lookups is asked instead.
pub async fn a_blind_connector_closes_what_two_complete_reports_lack(f: &impl StoreFactory) {
    use crate::connector::capabilities::Capabilities;
    use crate::connector::registry::Quote;
    let w = World::new(f, TradingConfig::default()).await;
    let o = w.place(Side::Buy).await;
    // The original's open ack: the ticket only.
    w.b.ack(&o.id.to_string(), true, json!({"ticket": 900})).await;
    w.advance(20);
    w.report(vec![], vec![], ReportHistory::default()).await;
    let r = w.run().await;
    assert_eq!((r.applied.len(), r.checks), (0, 1), "one report: asked again, nothing written: {r:?}");
    assert_eq!(w.run().await.applied.len(), 0, "the same report twice is one report");
    assert_eq!(w.get(o.id).await.status, OrderStatus::Open);
    // A report that lists it in between resets the count.
    w.advance(30);
    w.report(vec![mine(&o, 900, "1.0850")], vec![], ReportHistory::default()).await;
    assert_eq!(w.run().await.applied.len(), 0);
    w.advance(30);
    w.report(vec![], vec![], ReportHistory::default()).await;
    assert_eq!(w.run().await.applied.len(), 0, "absent once since it was last listed");
    w.advance(30);
    w.report(vec![], vec![], ReportHistory::default()).await;
    let r = w.run().await;
    assert_eq!(r.applied.len(), 1, "{r:?}");
    let c = w.get(o.id).await;
    // No price was ever known (the original's acks and reports carry none, no quote): closed without one.
    assert_eq!((c.status, c.close_price, c.profit), (OrderStatus::ClosedExternally, None, None));
    assert!(c.close_unconfirmed, "no deal confirms it");
    assert!(c.error.as_deref().unwrap().contains("unknown price"));
    assert_eq!(w.reservations().await, Decimal::ZERO);
    let view = serde_json::to_value(crate::trading::orders::views::TradeOut::from(&c)).unwrap();
    assert_eq!((view["status"].clone(), view["close_unconfirmed"].clone()), (json!("closed_externally"), json!(true)));
    assert!(w.audit_events().await.iter().any(|e| e == "order_closed_externally"));
    assert_eq!(w.run().await.applied.len(), 0);

    // Never reported by MT5: the close takes the symbol's last quote (a buy closes at the bid).
    let o2 = w.place(Side::Buy).await;
    w.b.ack(&o2.id.to_string(), true, json!({"ticket": 901})).await;
    let quote = Quote { symbol: "EURUSD".into(), bid: dec("1.0900"), ask: dec("1.0902"), time: w.now() };
    w.b.orders.registry().save_quote(w.b.user.id, &quote).await.unwrap();
    for _ in 0..2 {
        w.advance(20);
        w.report(vec![], vec![], ReportHistory::default()).await;
        w.run().await;
    }
    let c2 = w.get(o2.id).await;
    assert_eq!(
        (c2.status, c2.close_price, c2.close_unconfirmed),
        (OrderStatus::ClosedExternally, Some(dec("1.0900")), true)
    );
    assert_eq!(c2.profit, Some(dec("50")), "0.1 lot EURUSD +50 pips from the requested 1.0850");

    // Later, MT5's closing deal of the first one is reported (say, by a newer connector): the close is corrected, its
    // profit and the aggregates follow, and the flag goes.
    w.advance(20);
    let deal = BrokerDeal {
        ticket: 7000,
        position: Some(900),
        symbol: "EURUSD".into(),
        side: Some(Side::Sell),
        entry: Some("out".into()),
        volume: Some(dec("0.1")),
        price: Some(dec("1.0950")),
        profit: Some(dec("100")),
        time: Some(w.now() - Duration::seconds(200)),
        reason: Some("sl".into()),
        comment: None,
    };
    w.report(vec![], vec![deal], ReportHistory::default()).await;
    let r = w.run().await;
    assert_eq!(r.applied.len(), 1, "{r:?}");
    let fixed = w.get(o.id).await;
    assert_eq!(
        (fixed.status, fixed.close_price, fixed.profit, fixed.close_unconfirmed, fixed.error.clone()),
        (OrderStatus::ClosedExternally, Some(dec("1.0950")), Some(dec("100")), false, None)
    );
    assert_eq!(fixed.version, c.version + 1);
    let stats = w.b.store.get(&stats_key(w.b.user.id)).await.unwrap().unwrap();
    assert_eq!(
        (stats.get_n("closed_trades"), stats.get_n("winning_trades"), stats.get_n("total_pnl")),
        (Some(dec("2")), Some(dec("2")), Some(dec("150")))
    );
    assert!(w.audit_events().await.iter().any(|e| e == "order_close_corrected"));
    assert_eq!(w.run().await.applied.len(), 0, "corrected once");

    // A connector with lookups is asked, never closed on absence alone.
    w.b.orders.registry().record_capabilities(&w.b.ws, w.b.user.id, w.b.broker, &Capabilities::all()).await.unwrap();
    let o3 = w.place(Side::Buy).await;
    w.b.ack(&o3.id.to_string(), true, json!({"ticket": 902, "price": 1.0850})).await;
    for _ in 0..3 {
        w.advance(40);
        w.report(vec![], vec![], ReportHistory::default()).await;
        assert_eq!(w.run().await.applied.len(), 0);
    }
    assert_eq!(w.get(o3.id).await.status, OrderStatus::Open);
}

/// An `ERROR` answering a positions request is a failed snapshot: nothing changes, the connection's health says
/// reconciliation is unavailable, the dashboards hear it once per change, and a complete report clears it.
pub async fn an_error_report_is_a_failed_snapshot_told_once(f: &impl StoreFactory) {
    use crate::connector::capabilities::Capabilities;
    use crate::connector::reporting::{AVAILABLE, LIMITED, UNAVAILABLE};
    let w = World::new(f, TradingConfig::default()).await;
    let (user, broker) = (w.b.user.id, w.b.broker);
    let o = w.place(Side::Buy).await;
    w.b.ack(&o.id.to_string(), true, json!({"ticket": 31})).await;
    w.advance(30);
    let link = || async { w.b.orders.registry().link(user, broker).await.unwrap().unwrap() };
    assert_eq!(link().await.reconciliation(), LIMITED, "the original promises no reports");
    let statuses = || w.b.push.of_type(&w.browser, "CONNECTIONS_STATUS");
    let before = statuses().len();
    let error = "'PositionInfo' object has no attribute 'type'";
    // The original's ERROR carries no request id: it answers the positions request.
    assert!(w.svc.connector_error(user, broker, error, None).await, "first: relayed");
    for _ in 0..3 {
        assert!(!w.svc.connector_error(user, broker, error, None).await, "repeated: not relayed");
    }
    let l = link().await;
    assert_eq!((l.reconciliation(), l.reporting.report_error.as_deref()), (UNAVAILABLE, Some(error)));
    let sent = statuses();
    assert_eq!(sent.len(), before + 1, "one status message per change");
    // (Its content, `reconciliation` per connection, is checked over the gateway: this bench has no connection
    // record to list.)

    // Nothing written: the order stays open, the run says why.
    let after = w.get(o.id).await;
    assert_eq!((after.status, after.version), (OrderStatus::Open, o.version + 1));
    let run: crate::reconcile::store::ConnectionRun =
        w.b.store.get(&run_key(user, broker)).await.unwrap().unwrap().to_record().unwrap();
    assert!(run.last_outcome.unwrap().contains("snapshot failed ('PositionInfo'"));
    // Another error (not a positions request) is relayed and recorded nowhere.
    assert!(w.svc.connector_error(user, broker, "Failed to get account info", Some("resync_ab_account")).await);
    assert_eq!(link().await.reporting.report_error.as_deref(), Some(error));
    // A complete report clears it (one more status message).
    let s = PositionsSnapshot {
        broker_connection_id: broker,
        source: ReportSource::Positions,
        request_id: None,
        ws_connection_id: w.b.ws.clone(),
        received_at: w.now(),
        positions: vec![mine_position(&o)],
        deals: vec![],
        skipped: 0,
        truncated: false,
        history: ReportHistory::default(),
    };
    let stored = w.b.orders.registry().save_positions(user, s).await.unwrap();
    w.svc.snapshot_stored(user, &stored).await;
    assert_eq!((link().await.reconciliation(), statuses().len()), (LIMITED, before + 2));
    // A connector promising reports: an uncorrelated ERROR is just relayed.
    w.b.orders.registry().record_capabilities(&w.b.ws, user, broker, &Capabilities::all()).await.unwrap();
    assert!(w.svc.connector_error(user, broker, "boom", None).await);
    assert!(w.svc.connector_error(user, broker, "boom", None).await);
    assert_eq!(link().await.reconciliation(), AVAILABLE);
    // ...but an ERROR to one of our positions requests is a failed snapshot whatever it promised.
    assert!(w.svc.connector_error(user, broker, "boom", Some("reconcile_sweep_1")).await);
    assert_eq!(link().await.reconciliation(), UNAVAILABLE);
}

fn mine_position(o: &OrderRecord) -> BrokerPosition {
    mine(o, 31, "1.0850")
}

/// Evidence the original does give: its close ack's price (and profit, when one is sent) settles the close — the
/// ack's profit as MT5 reported it, else the profit at the ack's price from the order's entry.
pub async fn the_close_acks_price_and_profit_are_used(f: &impl StoreFactory) {
    let w = World::new(f, TradingConfig::default()).await;
    for (ticket, ack, profit) in
        [(41, json!({"price": 1.0900, "profit": 12.34}), dec("12.34")), (42, json!({"price": 1.0900}), dec("50"))]
    {
        let o = w.place(Side::Buy).await;
        w.b.ack(&o.id.to_string(), true, json!({"ticket": ticket})).await; // the original's open ack
        w.b.orders.close(&w.b.user, o.id, None).await.unwrap();
        let close = w.connector_frames("TRADE_CLOSE").pop().unwrap();
        assert_eq!(close["ticket"], ticket);
        w.b.ack(close["request_id"].as_str().unwrap(), true, ack).await;
        let c = w.get(o.id).await;
        assert_eq!((c.status, c.close_price, c.profit), (OrderStatus::Closed, Some(dec("1.0900")), Some(profit)));
        assert!(!c.close_unconfirmed);
    }
}

/// A positions report listing a ticket bound to another connection's order (issue 18, "Bad input"): the position is
/// not adopted — the same MT5 position is never a second order in other books — the connection is flagged
/// `foreign_ticket` once and its dashboards get one `CONNECTOR_WARNING`; an unbound ticket beside it is adopted.
pub async fn a_reported_ticket_bound_to_another_connection_is_not_adopted(f: &impl StoreFactory) {
    use crate::brokers::{BrokerService, ConnectionInput};
    use crate::connector::flags::FlagKind;
    use crate::connector::tickets::{TicketBinding, ticket_key};

    let w = World::new(f, TradingConfig::default()).await;
    let registry = w.b.orders.registry().clone();
    let brokers = BrokerService {
        store: w.b.store.clone(),
        push: w.b.push.clone(),
        clock: w.b.clock.clone(),
        ids: Arc::new(RandomIds),
        registry: registry.clone(),
    };
    let input =
        ConnectionInput { broker_name: "B".into(), account_number: Some("5001".into()), server: Some("Demo".into()) };
    let user = w.b.user.id;
    let conn = brokers.create(user, input).await.unwrap().record.id;
    let ws = format!("ws-{}", Uuid::new_v4().simple());
    registry.register_connector(&ws, user, &w.b.user.email, conn).await.unwrap();
    // Ticket 5151 of that trade server and account was acknowledged for another user's order on another connection.
    let other = TicketBinding {
        ticket: 5151,
        user_id: Uuid::new_v4(),
        broker_connection_id: Uuid::new_v4(),
        order_id: Uuid::new_v4(),
        orphan: false,
    };
    assert!(registry.bind_ticket(&ticket_key(Some("demo"), Some("5001"), user, 5151), &other).await.unwrap());

    let opened = Some(w.now() - Duration::hours(1));
    let (mut bound, mut free) = (position(5151, "", Side::Buy, "1.0900"), position(5152, "", Side::Sell, "1.0910"));
    (bound.open_time, free.open_time) = (opened, opened);
    let report = |at: DateTime<Utc>| PositionsSnapshot {
        broker_connection_id: conn,
        source: ReportSource::SyncResponse,
        request_id: Some("reconcile_test".into()),
        ws_connection_id: ws.clone(),
        received_at: at,
        positions: vec![bound.clone(), free.clone()],
        deals: vec![],
        skipped: 0,
        truncated: false,
        history: ReportHistory::default(),
    };
    registry.save_positions(user, report(w.now())).await.unwrap();
    let r = w.svc.reconcile_connection(user, conn).await.unwrap();
    assert_eq!((r.applied.len(), r.dropped), (1, 1), "{r:?}");
    assert_eq!(r.applied[0].ticket, Some(Ticket(5152)), "the unbound ticket is adopted");
    let foreign = external_order_id(conn, Ticket(5151), opened);
    assert!(w.b.orders.get(user, foreign).await.is_err(), "the bound ticket is not");
    let flags = brokers.flags(user, conn).await.unwrap();
    assert_eq!(flags.iter().map(|f| (f.kind, f.ticket)).collect::<Vec<_>>(), [(FlagKind::ForeignTicket, Some(5151))]);
    let warnings = w.b.push.of_type(&w.browser, "CONNECTOR_WARNING");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!((&warnings[0]["kind"], &warnings[0]["ticket"]), (&json!("foreign_ticket"), &json!(5151)));
    assert_eq!(warnings[0]["connection_id"], json!(conn));
    assert!(!warnings[0].to_string().contains(&other.user_id.to_string()), "nothing of the other user is shown");

    // Reported again: still not adopted, flagged and told once.
    w.advance(60);
    registry.save_positions(user, report(w.now())).await.unwrap();
    let again = w.svc.reconcile_connection(user, conn).await.unwrap();
    assert!(again.applied.is_empty(), "{again:?}");
    assert!(w.b.orders.get(user, foreign).await.is_err());
    assert_eq!(brokers.flags(user, conn).await.unwrap().len(), 1);
    assert_eq!(w.b.push.of_type(&w.browser, "CONNECTOR_WARNING").len(), 1);
}
