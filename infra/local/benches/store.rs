//! Embedded store latency: put, get and a 3-item conditional transaction, on disk (every write is a
//! durable redb commit), through the async port as the application uses it; and write throughput
//! under concurrency (`put_concurrent_64`: 64 puts in flight at once, as many concurrent requests
//! each writing a rate-limit counter), where group commit batches writes into one durable commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nusatrade_app::ports::{Condition, Item, ItemStore, Key, SystemClock, TxOp, Update};
use nusatrade_local::adapters::EmbeddedStore;

fn bench_store(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(&dir.path().join("store.redb"), Arc::new(SystemClock)).expect("open store");
    let n = AtomicU64::new(0);

    let item = |i: u64| {
        Item::new(&Key::new(format!("USER#{}", i % 1000), format!("ORDER#{i:010}")))
            .with("status", "PENDING")
            .with("symbol", "EURUSD")
            .with("volume", 10i64)
            .with("GSI1PK", format!("CONN#{}", i % 10))
            .with("GSI1SK", format!("2026-11-22T00:00:{:02}", i % 60))
    };

    // Seed items for the reads.
    rt.block_on(async {
        for i in 0..1000 {
            store.put(item(i), None).await.expect("seed");
        }
    });

    let mut group = c.benchmark_group("embedded_store");
    group.bench_function("put", |b| {
        b.to_async(&rt).iter(|| async {
            let i = 1_000_000 + n.fetch_add(1, Ordering::Relaxed);
            store.put(item(i), None).await.expect("put");
        })
    });
    group.bench_function("get", |b| {
        b.to_async(&rt).iter(|| async {
            let i = n.fetch_add(1, Ordering::Relaxed) % 1000;
            let key = Key::new(format!("USER#{}", i % 1000), format!("ORDER#{i:010}"));
            assert!(store.get(&key).await.expect("get").is_some());
        })
    });
    group.bench_function("transact_write_3", |b| {
        b.to_async(&rt).iter(|| async {
            let i = 2_000_000 + n.fetch_add(1, Ordering::Relaxed);
            let user = format!("USER#{}", i % 1000);
            store
                .transact_write(vec![
                    TxOp::Put { item: item(i), condition: Some(Condition::NotExists) },
                    TxOp::Update {
                        key: Key::new(user.clone(), "LIMITS"),
                        update: Update::new().add("open", 1),
                        condition: None,
                    },
                    TxOp::Put {
                        item: Item::new(&Key::new(user, format!("IDEMP#{i}"))).with("state", "INPROGRESS"),
                        condition: Some(Condition::NotExists),
                    },
                ])
                .await
                .expect("transaction");
        })
    });
    group.finish();

    const CONCURRENT: u64 = 64;
    let mut group = c.benchmark_group("embedded_store_throughput");
    group.throughput(Throughput::Elements(CONCURRENT));
    group.bench_function("put_concurrent_64", |b| {
        b.to_async(&rt).iter(|| async {
            let base = 3_000_000 + n.fetch_add(CONCURRENT, Ordering::Relaxed);
            let tasks: Vec<_> = (0..CONCURRENT)
                .map(|j| {
                    let store = store.clone();
                    tokio::spawn(async move { store.put(item(base + j), None).await })
                })
                .collect();
            for t in tasks {
                t.await.expect("task").expect("put");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
