//! Reconciliation at scale (issue #6 benchmark note): 1,000 orders against a 1,000-position snapshot.
//!
//! * `kernel_1000_vs_1000`: the pure kernel (`nusatrade_domain::reconcile::reconcile`) alone, 1,000 open orders
//!   matched with 1,000 positions, 100 of them with SL drift (100 `FollowMt5` actions).
//! * `run_steady_1000_vs_1000`: a whole run on the embedded store (in memory): read the snapshot and the
//!   live-orders index (1,000 orders), compare, write the run record — nothing to repair.
//! * `run_adopt_1000`: a first run adopting 1,000 manual positions (1,000 conditional transactions, each with its
//!   audit item and reservation), on the embedded store on disk (every commit durable).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{Duration, TimeDelta, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use nusatrade_app::connector::reports::{BrokerPosition, PositionsSnapshot, ReportHistory, ReportSource};
use nusatrade_app::contract::queue::RecordingQueue;
use nusatrade_app::contract::store::StoreFactory;
use nusatrade_app::ports::{Clock, ItemStore};
use nusatrade_app::reconcile::{ReconcileService, ReconcileSettings};
use nusatrade_app::suites::orders::Bench;
use nusatrade_app::trading::orders::TradingConfig;
use nusatrade_domain::money::{Lots, Side};
use nusatrade_domain::order::{ClientOrderId, OrderState, OrderStatus, Ticket};
use nusatrade_domain::reconcile::{BookOrder, Mt5Position, Mt5Snapshot, ReconcileConfig, Snapshot, reconcile};
use nusatrade_local::adapters::EmbeddedStore;
use rust_decimal::Decimal;
use uuid::Uuid;

const N: u64 = 1000;

fn dec(n: i64, scale: u32) -> Decimal {
    Decimal::new(n, scale)
}

fn kernel(c: &mut Criterion) {
    let now = Utc::now();
    let (user, conn) = (Uuid::new_v4(), Uuid::new_v4());
    let books: Vec<BookOrder> = (0..N)
        .map(|i| {
            let id = Uuid::from_u128(0x1000 + u128::from(i));
            BookOrder {
                id,
                user_id: user,
                client_order_id: ClientOrderId::from_uuid(id),
                state: OrderState { status: OrderStatus::Open, version: 1, ticket: Some(Ticket(100_000 + i)) },
                symbol: "EURUSD".into(),
                side: Side::Buy,
                lots: Lots::new_unchecked(dec(1, 1)),
                open_price: Some(dec(110_000, 5)),
                stop_loss: Some(dec(109_000, 5)),
                take_profit: None,
                created_at: now - Duration::hours(1),
                updated_at: now - Duration::minutes(5),
                last_price: None,
            }
        })
        .collect();
    let positions: Vec<Mt5Position> = books
        .iter()
        .enumerate()
        .map(|(i, o)| Mt5Position {
            ticket: o.state.ticket.unwrap(),
            symbol: "EURUSD".into(),
            side: Side::Buy,
            volume: o.lots,
            open_price: dec(110_000, 5),
            open_time: Some(now - Duration::hours(1)),
            stop_loss: Some(if i % 10 == 0 { dec(109_500, 5) } else { dec(109_000, 5) }),
            take_profit: None,
            comment: o.client_order_id.comment(),
        })
        .collect();
    let snapshot = Snapshot::Received(Mt5Snapshot {
        connection_id: conn,
        owner: user,
        taken_at: now,
        positions,
        history: None,
        lookups: Vec::new(),
    });
    let cfg = ReconcileConfig::default();
    assert_eq!(reconcile(&books, &snapshot, now, &cfg).len(), 100);
    c.bench_function("reconcile/kernel_1000_vs_1000", |b| b.iter(|| reconcile(&books, &snapshot, now, &cfg)));
}

struct InMemory;

#[async_trait]
impl StoreFactory for InMemory {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
        Arc::new(EmbeddedStore::temporary(clock).unwrap())
    }
}

struct OnDisk(std::path::PathBuf);

#[async_trait]
impl StoreFactory for OnDisk {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
        Arc::new(EmbeddedStore::open(&self.0.join(format!("{}.redb", Uuid::new_v4().simple())), clock).unwrap())
    }
}

/// A user with one connector and a stored report of `N` manual positions.
async fn world(f: &impl StoreFactory) -> (Bench, ReconcileService) {
    let b = Bench::new(f, TradingConfig::default()).await;
    let svc = ReconcileService::new(
        b.orders.clone(),
        Arc::new(RecordingQueue::new(b.clock.clone())),
        ReconcileSettings::default(),
    );
    let now = b.clock.now();
    let positions = (0..N)
        .map(|i| BrokerPosition {
            ticket: 100_000 + i,
            symbol: "EURUSD".into(),
            side: Some(Side::Buy),
            volume: dec(1, 1),
            open_price: Some(dec(110_000, 5)),
            current_price: Some(dec(110_100, 5)),
            stop_loss: None,
            take_profit: None,
            profit: Some(dec(10, 0)),
            comment: Some(String::new()),
            open_time: Some(now - TimeDelta::seconds(i as i64)),
            bid: None,
            ask: None,
        })
        .collect();
    let s = PositionsSnapshot {
        broker_connection_id: b.broker,
        source: ReportSource::Positions,
        request_id: None,
        ws_connection_id: b.ws.clone(),
        received_at: now,
        positions,
        deals: Vec::new(),
        skipped: 0,
        truncated: false,
        history: ReportHistory::default(),
    };
    b.orders.registry().save_positions(b.user.id, s).await.unwrap();
    (b, svc)
}

fn runs(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10).measurement_time(StdDuration::from_secs(20));

    // Steady state: adopt once, then every run finds the books equal to MT5.
    let (b, svc) = rt.block_on(world(&InMemory));
    let first = rt.block_on(svc.reconcile_connection(b.user.id, b.broker)).unwrap();
    assert_eq!(first.applied.len() as u64, N);
    group.bench_function("run_steady_1000_vs_1000", |bench| {
        bench.iter(|| {
            let r = rt.block_on(svc.reconcile_connection(b.user.id, b.broker)).unwrap();
            assert!(r.applied.is_empty() && r.drift == 0);
        })
    });

    let dir = tempfile::tempdir().unwrap();
    group.bench_function("run_adopt_1000_on_disk", |bench| {
        bench.iter_batched(
            || rt.block_on(world(&OnDisk(dir.path().to_path_buf()))),
            |(b, svc)| {
                let r = rt.block_on(svc.reconcile_connection(b.user.id, b.broker)).unwrap();
                assert_eq!(r.applied.len() as u64, N);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, kernel, runs);
criterion_main!(benches);
