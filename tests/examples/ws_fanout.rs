//! Load tool: WebSocket messages through the local gateway (issue 5 benchmark).
//!
//! Starts the gateway binary (`NUSATRADE_BIN`, e.g. `target/release/nusatrade`), registers `--users`
//! traders, each with a broker connection, a connector socket and a dashboard socket, then for
//! `--seconds` every connector sends `ERROR` reports (`--inflight` at a time) that the connector channel
//! relays to the user's dashboards as `CONNECTOR_ERROR`: connector → handler (connection lookup,
//! per-connection limits) → dashboard lookup → push → browser. The latency of a message is connector
//! send → dashboard receive (one clock: both ends are in this process). Prints messages/s and latency
//! percentiles, then opens `--idle` more dashboard sockets that stay silent and prints the gateway's
//! resident memory per idle connection (`VmRSS` from /proc before and after).
//!
//! ```sh
//! cargo build --release -p nusatrade-local
//! NUSATRADE_BIN=target/release/nusatrade cargo run --release -p nusatrade-tests --example ws_fanout -- \
//!     --users 100 --seconds 10 --idle 1000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use nusatrade_tests::{Gateway, TEST_ENV, arg, broker_connection, percentile, register};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;

/// The gateway's resident set size in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users = arg("--users", 100) as usize;
    let seconds = arg("--seconds", 10);
    let inflight = arg("--inflight", 1) as usize;
    let idle = arg("--idle", 1000) as usize;
    let mut env: Vec<(&str, &str)> = TEST_ENV.to_vec();
    env.extend([
        ("NUSATRADE_RATE_LIMIT_ENABLED", "false"),
        // The per-connection flood limit would (rightly) close a connector sending this fast.
        ("NUSATRADE_WS_RATE", "100000"),
        ("NUSATRADE_WS_BURST", "1000000"),
        ("RUST_LOG", "warn"),
    ]);
    let gw = Arc::new(Gateway::start_with_env(&[], &env).await?);
    let base = Instant::now();

    // Connect everyone first: connector (AUTH → WELCOME) and dashboard (first contact done).
    let mut pairs = Vec::new();
    for u in 0..users {
        let token = register(&gw, &format!("fan{u}@example.com")).await?;
        let conn = broker_connection(&gw, &token).await?;
        let url = gw.ws_url(&format!("/connector/ws?token={token}&connection_id={conn}"));
        let (mut connector, _) = tokio_tungstenite::connect_async(url).await?;
        connector.send(Message::Text(json!({"type": "AUTH", "token": token}).to_string().into())).await?;
        let (mut browser, _) =
            tokio_tungstenite::connect_async(gw.ws_url(&format!("/connector/client?token={token}"))).await?;
        browser.send(Message::Text(json!({"type": "PING"}).to_string().into())).await?;
        while let Some(Ok(m)) = browser.next().await {
            if matches!(&m, Message::Text(t) if t.contains("\"PONG\"")) {
                break;
            }
        }
        pairs.push((connector, browser));
    }
    println!("gateway {} · {users} connectors + {users} dashboards · {inflight} in flight each · {seconds} s", gw.base);

    let stop = Arc::new(AtomicBool::new(false));
    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel::<Duration>();
    let started = Instant::now();
    for (connector, mut browser) in pairs {
        let window = Arc::new(Semaphore::new(inflight));
        let (w, stop_b, lat_tx) = (window.clone(), stop.clone(), lat_tx.clone());
        // Dashboard: every relayed report frees a slot for its connector.
        tokio::spawn(async move {
            while let Some(Ok(msg)) = browser.next().await {
                let Message::Text(t) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
                if v["type"] != "CONNECTOR_ERROR" {
                    continue;
                }
                let sent =
                    v["error"].as_str().and_then(|e| e.strip_prefix("bench ")).and_then(|n| n.parse::<u64>().ok());
                if let Some(ns) = sent {
                    let _ = lat_tx.send(base.elapsed().saturating_sub(Duration::from_nanos(ns)));
                }
                w.add_permits(1);
                if stop_b.load(Ordering::Relaxed) {
                    break;
                }
            }
        });
        let stop_c = stop.clone();
        tokio::spawn(async move {
            // The connector's own frames (WELCOME, re-sync requests, PING) are read and dropped.
            let (mut tx, mut rx) = connector.split();
            tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
            while !stop_c.load(Ordering::Relaxed) {
                let Ok(permit) = tokio::time::timeout(Duration::from_secs(5), window.acquire()).await else { break };
                permit.expect("semaphore open").forget();
                let frame = json!({"type": "ERROR", "error": format!("bench {}", base.elapsed().as_nanos())});
                if tx.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(lat_tx);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut lat = Vec::new();
    while let Ok(d) = lat_rx.try_recv() {
        lat.push(d);
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("messages relayed: {}  throughput: {:.0} messages/s", lat.len(), lat.len() as f64 / elapsed.as_secs_f64());
    println!(
        "latency connector → dashboard: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.9)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );

    // Idle connections: memory per socket held by the gateway.
    if idle > 0
        && let Some(pid) = gw.pid()
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A user holds at most 10 dashboards (NUSATRADE_WS_MAX_DASHBOARDS): a new user every 10 sockets.
        let mut tokens = Vec::new();
        for u in 0..idle.div_ceil(10) {
            tokens.push(register(&gw, &format!("idle{u}@example.com")).await?);
        }
        let before = rss_kib(pid);
        let mut sockets = Vec::with_capacity(idle);
        for i in 0..idle {
            let token = &tokens[i / 10];
            let (ws, _) =
                tokio_tungstenite::connect_async(gw.ws_url(&format!("/connector/client?token={token}"))).await?;
            sockets.push(ws);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib(pid);
        println!(
            "idle dashboards: {idle}  gateway RSS {before} KiB → {after} KiB  ≈ {:.1} KiB per idle connection",
            after.saturating_sub(before) as f64 / idle as f64
        );
        drop(sockets);
    }
    Ok(())
}
