//! Load tool: order round trips through the local gateway (issue 4 benchmark).
//!
//! Starts the gateway binary (`NUSATRADE_BIN`, e.g. `target/release/nusatrade`), registers `--users`
//! traders, each with a broker connection and a scripted connector on the real WebSocket that fills
//! every `TRADE_OPEN` at once, and a dashboard WebSocket per user, then runs `--concurrency` workers
//! for `--seconds`: each places an order (`POST /trading/orders`), waits for the dashboard's
//! `ORDER_UPDATE` saying `open` (no busy polling competing with the gateway for the CPU), and reads
//! `GET /trading/orders/{id}` to confirm `open` is readable. The latency of one round trip is POST sent
//! → `open` read back. Prints throughput and latency percentiles.
//!
//! ```sh
//! cargo build --release -p nusatrade-local
//! NUSATRADE_BIN=target/release/nusatrade cargo run --release -p nusatrade-tests --example order_roundtrip -- \
//!     --users 16 --concurrency 16 --seconds 10
//! ```
//!
//! Request limits and the WebSocket flood limit are switched off and each user may hold 1,000 open
//! positions, so the run measures the order path, not the limiters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use nusatrade_tests::{Gateway, TEST_ENV, TestConnector, arg, broker_connection, http, percentile, register};
use serde_json::{Value, json};

/// Order id → who waits for its `open` update (or the update that came first).
enum Slot {
    Waiting(oneshot::Sender<()>),
    Arrived,
}
type Waiters = Arc<Mutex<HashMap<String, Slot>>>;

/// Reads a user's dashboard socket and wakes the worker waiting for each order's `open` update.
async fn dashboard(gw: &Gateway, token: &str) -> anyhow::Result<Waiters> {
    let (mut ws, _) = tokio_tungstenite::connect_async(gw.ws_url(&format!("/connector/client?token={token}"))).await?;
    let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
    let w = waiters.clone();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(t) = msg else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
            if v["type"] != "ORDER_UPDATE" || v["order"]["status"] != "open" {
                continue;
            }
            let id = v["order"]["id"].as_str().unwrap_or_default().to_owned();
            let mut map = w.lock().unwrap();
            match map.remove(&id) {
                Some(Slot::Waiting(tx)) => {
                    let _ = tx.send(());
                }
                _ => {
                    map.insert(id, Slot::Arrived);
                }
            }
        }
    });
    Ok(waiters)
}

async fn opened(waiters: &Waiters, id: &str) {
    let rx = {
        let mut map = waiters.lock().unwrap();
        match map.remove(id) {
            Some(Slot::Arrived) => return,
            _ => {
                let (tx, rx) = oneshot::channel();
                map.insert(id.to_owned(), Slot::Waiting(tx));
                rx
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users = arg("--users", 16) as usize;
    let concurrency = arg("--concurrency", 16) as usize;
    let seconds = arg("--seconds", 10);
    let mut env: Vec<(&str, &str)> = TEST_ENV.to_vec();
    env.push(("NUSATRADE_RATE_LIMIT_ENABLED", "false"));
    env.push(("NUSATRADE_MAX_OPEN_POSITIONS", "1000"));
    // One connector acknowledges hundreds of orders a second here: lift the WebSocket flood limit too.
    env.push(("NUSATRADE_WS_RATE", "100000"));
    env.push(("NUSATRADE_WS_BURST", "1000000"));
    env.push(("RUST_LOG", "warn"));
    let gw = Arc::new(Gateway::start_with_env(&[], &env).await?);

    let mut traders = Vec::new();
    for u in 0..users {
        let token = register(&gw, &format!("load{u}@example.com")).await?;
        let conn = broker_connection(&gw, &token).await?;
        let connector = TestConnector::connect(&gw, &token, &conn).await?;
        connector.set_price("EURUSD", 1.0850);
        let waiters = dashboard(&gw, &token).await?;
        traders.push((token, connector, waiters));
    }
    let tokens: Arc<Vec<(String, Waiters)>> =
        Arc::new(traders.iter().map(|(t, _, w)| (t.clone(), w.clone())).collect());
    println!("gateway {} · {users} users · {concurrency} workers · {seconds} s", gw.base);

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let client = http();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (gw, tokens, client) = (gw.clone(), tokens.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut phases = [Vec::new(), Vec::new(), Vec::new()];
            let mut failures = 0u64;
            let mut n = 0usize;
            while Instant::now() < deadline {
                // Workers rotate over the users, so every user's position limit is used.
                let (token, waiters) = &tokens[(w + n * concurrency) % tokens.len()];
                n += 1;
                let t0 = Instant::now();
                let r = client
                    .post(gw.url("/api/v1/trading/orders"))
                    .bearer_auth(token)
                    .json(&json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.01, "price": 1.085}))
                    .send()
                    .await;
                let Ok(r) = r else {
                    failures += 1;
                    continue;
                };
                if r.status() != 201 {
                    failures += 1;
                    continue;
                }
                let b: Value = r.json().await.unwrap_or(Value::Null);
                let id = b["trade"]["id"].as_str().unwrap_or_default().to_owned();
                let url = gw.url(&format!("/api/v1/trading/orders/{id}"));
                let posted = t0.elapsed();
                opened(waiters, &id).await;
                let acked = t0.elapsed();
                loop {
                    let o: Value = client.get(&url).bearer_auth(token).send().await?.json().await?;
                    if o["status"] == "open" {
                        break;
                    }
                    if t0.elapsed() > Duration::from_secs(5) {
                        anyhow::bail!("order {id} not open after 5 s: {o}");
                    }
                }
                let done = t0.elapsed();
                lat.push(done);
                phases[0].push(posted);
                phases[1].push(acked - posted);
                phases[2].push(done - acked);
            }
            anyhow::Ok((lat, phases, failures))
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut phases = [Vec::new(), Vec::new(), Vec::new()];
    let mut failures = 0;
    for t in tasks {
        let (lat, p, f) = t.await??;
        all.extend(lat);
        for (all, p) in phases.iter_mut().zip(p) {
            all.extend(p);
        }
        failures += f;
    }
    let elapsed = started.elapsed();
    all.sort();
    println!(
        "round trips: {}  failures: {failures}  throughput: {:.0} orders/s",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency POST → open readable: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.90).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    // Where the time goes: the three legs of a round trip.
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let legs = ["POST /trading/orders → 201", "201 → ORDER_UPDATE open", "GET /trading/orders/{id}"];
    for (name, p) in legs.iter().zip(&mut phases) {
        p.sort();
        println!(
            "  {name:<28} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms",
            ms(percentile(p, 0.5)),
            ms(percentile(p, 0.9)),
            ms(percentile(p, 0.99))
        );
    }
    drop(traders);
    Ok(())
}
