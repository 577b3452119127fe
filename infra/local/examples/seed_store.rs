//! Fills a data dir's embedded store with generated items shaped like the platform's (user profiles in
//! the e-mail index, orders with exact decimals and a nested fill, audit records, sessions with a
//! `ttl`), for backup/restore benchmarks:
//!
//! ```sh
//! cargo run --release -p nusatrade-local --example seed_store -- /tmp/bench/data 100000
//! ```
//!
//! 20 items per user: a profile, 12 orders, 6 audit records, a session. Written with `put_many` (25 items a
//! batch, 16 batches in flight). Refuses a store that already holds items.

use std::sync::Arc;
use std::time::Instant;

use nusatrade_app::ports::store::MAX_BATCH_WRITE_ITEMS;
use nusatrade_app::ports::{Item, ItemStore, Key, Scan, SystemClock, Value};
use nusatrade_local::adapters::EmbeddedStore;
use nusatrade_local::platform::STORE_FILE;
use rust_decimal::Decimal;

fn user_items(u: u64, now: i64) -> Vec<Item> {
    let user = format!("USER#{:08x}-{u:06}", u.wrapping_mul(0x9e37_79b9) as u32);
    let mut items = vec![
        Item::new(&Key::new(user.clone(), "PROFILE"))
            .with("GSI1PK", format!("EMAIL#trader{u}@example.com"))
            .with("GSI1SK", "USER")
            .with("email", format!("trader{u}@example.com"))
            .with("full_name", format!("Trader {u}"))
            .with("password_hash", "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo")
            .with("role", "trader")
            .with("version", 1i64),
    ];
    for o in 0..12u64 {
        let mut fill = std::collections::BTreeMap::new();
        fill.insert("price".to_owned(), Value::N(Decimal::new(1_085_000 + (u * 7 + o) as i64 % 5000, 6)));
        fill.insert("ticket".to_owned(), Value::N(Decimal::from(500_000_000 + u * 100 + o)));
        items.push(
            Item::new(&Key::new(user.clone(), format!("ORDER#2026-11-{:02}T10:00:{o:02}Z#{u}-{o}", 1 + o % 28)))
                .with("symbol", ["EURUSD", "USDJPY", "XAUUSD"][(o % 3) as usize])
                .with("side", if o % 2 == 0 { "BUY" } else { "SELL" })
                .with("volume", Value::N(Decimal::new(10 + (o as i64 % 5) * 10, 2)))
                .with("status", if o % 4 == 0 { "CLOSED" } else { "OPEN" })
                .with("sl", Value::N(Decimal::new(1_080_000, 6)))
                .with("tp", Value::N(Decimal::new(1_095_000, 6)))
                .with("fill", Value::M(fill))
                .with("GSI1PK", format!("CONN#{u}"))
                .with("GSI1SK", format!("2026-11-{:02}T10:00:{o:02}Z", 1 + o % 28))
                .with("version", 3i64),
        );
    }
    for a in 0..6u64 {
        items.push(
            Item::new(&Key::new(user.clone(), format!("AUDIT#2026-11-22T08:{a:02}:00Z#{u}-{a}")))
                .with("event", "login")
                .with("ip", "203.0.113.7")
                .with("user_agent", "Mozilla/5.0 (X11; Linux x86_64)")
                .with("ttl", now + 90 * 86_400),
        );
    }
    items.push(
        Item::new(&Key::new(user, format!("SESSION#{u}")))
            .with("refresh_hash", "ab".repeat(32))
            .with("ttl", now + 86_400),
    );
    items
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: seed_store <data-dir> <items>";
    let dir = std::path::PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let n: u64 = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let store = Arc::new(EmbeddedStore::open(&dir.join(STORE_FILE), Arc::new(SystemClock))?);
    if !store.scan(Scan::all().limit(1)).await?.items.is_empty() {
        anyhow::bail!("{} already holds items", dir.display());
    }
    let now = chrono::Utc::now().timestamp();
    let started = Instant::now();
    let mut items: Vec<Item> = (0..).flat_map(|u| user_items(u, now)).take(n as usize).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    while !items.is_empty() {
        let batch: Vec<Item> = items.drain(..items.len().min(MAX_BATCH_WRITE_ITEMS)).collect();
        let permit = permits.clone().acquire_owned().await?;
        let store = store.clone();
        tasks.spawn(async move {
            let _permit = permit;
            store.put_many(batch).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    eprintln!("{n} items written to {} in {:.2} s", dir.display(), started.elapsed().as_secs_f64());
    Ok(())
}
