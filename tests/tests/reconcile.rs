//! Reconciliation end to end (issue #6): the real gateway binary with a short ack timeout
//! (`NUSATRADE_ACK_TIMEOUT_SECS=1`) and a short minimum age, its in-process `reconcile` worker and schedules.
//!
//! * A scripted connector that never acknowledges: the order becomes `unknown` when its ack-timeout message comes
//!   due, the connector is asked for MT5's history (`SYNC_REQUEST`), and the positions it then reports open the
//!   order with the real fill; a manual MT5 trade in the same report is adopted as an `external` position; the
//!   position monitor reports the run and asks connectors for positions.
//! * The simulated MT5 connector with its fault flags (30 % of acks dropped, 30 % duplicated, 20 % of opens
//!   refused, the link dropped after every fourth command before its ack): after the timeouts and
//!   reconciliation, every order placed is open exactly once or rejected, and our books equal the paper MT5
//!   account.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nusatrade_tests::{
    Gateway, TEST_ENV, TestConnector, binary, dashboard, eventually, find_listed, next_of, place, register, send,
    trader,
};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(10);

fn env() -> Vec<(&'static str, &'static str)> {
    let mut env = TEST_ENV.to_vec();
    env.extend([("NUSATRADE_ACK_TIMEOUT_SECS", "1"), ("NUSATRADE_RECONCILE_MIN_AGE_SECS", "1")]);
    env
}

async fn order(gw: &Gateway, token: &str, id: &str) -> Value {
    let (s, o) = send(gw, "GET", &format!("/api/v1/trading/orders/{id}"), token, None).await;
    assert_eq!(s, 200, "{o}");
    o
}

/// The positions in a JSON list as (ticket, `label`, open price), by ticket.
fn fills(list: &Value, label: impl Fn(&Value) -> String) -> Vec<(u64, String, f64)> {
    let mut fills: Vec<(u64, String, f64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["ticket"].as_u64().unwrap(), label(p), p["open_price"].as_f64().unwrap()))
        .collect();
    fills.sort_by_key(|p| p.0);
    fills
}

#[tokio::test]
async fn an_unacknowledged_order_turns_unknown_and_mt5_evidence_opens_it() {
    let gw = Gateway::start_with_env(&[], &env()).await.unwrap();
    let (token, conn) = trader(&gw, "unacked@example.com").await.unwrap();
    let connector = TestConnector::connect_with(&gw, "/connector/ws", &token, &conn, false).await.unwrap();
    let mut dash = dashboard(&gw, &token).await;

    let body = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.085});
    let (placed, id) = place(&gw, &token, body).await;
    let comment = placed["trade"]["client_order_id"].as_str().unwrap().to_owned();

    // No ack within a second: unknown (never failed), and the connector is asked for MT5's history.
    let unknown =
        eventually(WAIT, || async { Some(order(&gw, &token, &id).await).filter(|o| o["status"] == "unknown") })
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert!(unknown["ticket"].is_null());
    let ask = eventually(WAIT, || async { connector.commands("SYNC_REQUEST").await.pop() }).await.unwrap();
    assert!(ask["request_id"].as_str().unwrap().starts_with("reconcile_timeout_"), "{ask}");
    assert!(ask["history_from"].is_string(), "{ask}");

    // MT5 has it, filled at 1.08512 (the connector never said), and a trade made by hand in the terminal.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    connector.send(json!({"type": "POSITIONS", "request_id": ask["request_id"], "data": [
        {"ticket": 880001, "symbol": "EURUSD", "type": "BUY", "volume": 0.1, "price": 1.08512, "price_current": 1.0852,
            "profit": 0.8, "sl": 0.0, "tp": 0.0, "comment": comment, "time": "2026-01-05T10:00:00Z"},
        {"ticket": 880002, "symbol": "GBPUSD", "type": "SELL", "volume": 0.2, "price": 1.27, "price_current": 1.2698,
            "profit": 4.0, "sl": 1.28, "tp": 0.0, "comment": "", "time": "2026-01-05T09:00:00Z"}]}));
    let open = eventually(WAIT, || find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert_eq!((&open["ticket"], &open["open_price"]), (&json!(880001), &json!(1.08512)), "{open}");
    let update = next_of(&mut dash, "ORDER_UPDATE", WAIT).await.unwrap();
    assert_eq!(update["order"]["id"], id.as_str());
    // The manual trade is adopted in the same run, just after.
    let external = eventually(WAIT, || async {
        let (_, positions) = send(&gw, "GET", "/api/v1/trading/positions", &token, None).await;
        positions.as_array()?.iter().find(|p| p["status"] == "external").cloned()
    })
    .await
    .unwrap();
    assert_eq!((&external["ticket"], &external["symbol"]), (&json!(880002), &json!("GBPUSD")), "{external}");

    // The monitor shows the run; a sync asks the connector for its positions (the original's request id).
    // (The run record is written after the repairs: wait for it.)
    let st = eventually(WAIT, || async {
        let (s, st) = send(&gw, "GET", "/api/v1/trading/position-monitor/status", &token, None).await;
        assert_eq!(s, 200, "{st}");
        (st["connections"][0]["actions_total"].as_u64() >= Some(2)).then_some(st)
    })
    .await
    .unwrap();
    assert_eq!(
        (&st["is_running"], &st["managed_connections"], &st["total_positions"]),
        (&json!(true), &json!(1), &json!(2))
    );
    assert!(st["last_sync"].is_string() && st["connections"][0]["runs_total"].as_u64() >= Some(1), "{st}");
    let (s, sync) = send(&gw, "POST", "/api/v1/trading/position-monitor/sync", &token, None).await;
    assert_eq!(s, 200, "{sync}");
    assert_eq!(sync, json!({"status": "sync_requested", "connections_synced": 1, "connection_ids": [conn]}));
    let asked = eventually(WAIT, || async {
        connector.commands("GET_POSITIONS").await.into_iter().find(|c| c["request_id"] == format!("manual_sync_{conn}"))
    })
    .await;
    assert!(asked.is_ok());
    // The same report again changes nothing.
    let before = order(&gw, &token, &id).await;
    connector.send(json!({"type": "POSITIONS", "data": [
        {"ticket": 880001, "symbol": "EURUSD", "type": "BUY", "volume": 0.1, "price": 1.08512, "sl": 0.0, "tp": 0.0,
            "comment": comment},
        {"ticket": 880002, "symbol": "GBPUSD", "type": "SELL", "volume": 0.2, "price": 1.27, "sl": 1.28, "tp": 0.0,
            "comment": "", "time": "2026-01-05T09:00:00Z"}]}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(order(&gw, &token, &id).await["updated_at"], before["updated_at"]);
    let (_, again) = send(&gw, "GET", "/api/v1/trading/positions", &token, None).await;
    assert_eq!(again.as_array().unwrap().len(), 2, "{again}");
}

/// `nusatrade connector` as a child process (log in the gateway's data dir). Killed on drop.
struct SimConnector {
    _child: Child,
    log: PathBuf,
}

impl SimConnector {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test]
async fn with_dropped_duplicated_acks_and_broken_links_the_books_equal_the_paper_mt5() {
    let gw = Gateway::start_with_env(&[], &env()).await.unwrap();
    let email = "faults@example.com";
    let token = register(&gw, email).await.unwrap();
    let csv = gw.data_dir.path().join("eurusd-flat.csv");
    std::fs::write(&csv, ",Open,High,Low,Close,Volume\n2024-01-02 09:00:00,1.10000,1.10000,1.10000,1.10000,1\n")
        .unwrap();
    let log = gw.data_dir.path().join("connector.log");
    let child = Command::new(binary().unwrap())
        .arg("connector")
        .args(["--server", &gw.base, "--email", email, "--password", "Str0ng!pass"])
        .args(["--prices", csv.to_str().unwrap(), "--symbol", "EURUSD", "--account-login", "7100001"])
        .args(["--tick-ms", "50", "--heartbeat-secs", "1", "--account-update-secs", "1"])
        .args(["--reconnect-base-ms", "100", "--reconnect-max-secs", "1"])
        .args(["--drop-acks", "30", "--duplicate-acks", "30", "--disconnect-every", "4", "--reject", "20"])
        .args(["--fault-seed", "3"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let sim = SimConnector { _child: child, log };
    let online = || async { sim.log().contains("connector online").then_some(()) };
    eventually(Duration::from_secs(20), online).await.unwrap_or_else(|e| panic!("{e}\n{}", sim.log()));

    // Ten orders; while the link is down (dropped by the connector after a command) a placement is refused
    // (503, nothing written) and tried again.
    let mut ids = Vec::new();
    for _ in 0..10 {
        let id = eventually(Duration::from_secs(20), || async {
            let body = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1});
            let (s, placed) = send(&gw, "POST", "/api/v1/trading/orders", &token, Some(body)).await;
            match s.as_u16() {
                201 | 202 => placed["trade"]["id"].as_str().map(str::to_owned),
                503 => None,
                other => panic!("{other}: {placed}"),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sim.log()));
        ids.push(id);
    }

    // Every order ends open or rejected: acked, resent after a broken link and answered from the connector's
    // memory, or — its ack dropped — unknown after the timeout, then opened from the positions MT5 reports or
    // rejected from the refusal in MT5's history.
    let mut opened = Vec::new();
    for id in &ids {
        let o = eventually(Duration::from_secs(30), || async {
            Some(order(&gw, &token, id).await).filter(|o| o["status"] == "open" || o["status"] == "rejected")
        })
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}\nconnector:\n{}\ngateway:\n{}", sim.log(), gw.log()));
        if o["status"] == "open" {
            opened.push(id.clone());
        }
    }
    let log = sim.log();
    assert!(log.contains("injected fault (--drop-acks)"), "the faults were exercised:\n{log}");
    assert!(log.contains("injected fault (--reject)"), "the faults were exercised:\n{log}");
    assert!(!opened.is_empty() && opened.len() < ids.len(), "{} of {} open", opened.len(), ids.len());
    eprintln!();

    // One more reconciliation from a fresh report: the books equal the paper account, position for position.
    let (_, list) = send(&gw, "GET", "/api/v1/brokers/connections", &token, None).await;
    let conn = list.as_array().unwrap().iter().find(|c| c["account_number"] == "7100001").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = send(&gw, "GET", &format!("/api/v1/brokers/connections/{conn}/status"), &token, None).await.1
        ["positions_snapshot"]["received_at"]
        .clone();
    let (s, _) = send(&gw, "POST", "/api/v1/trading/position-monitor/sync", &token, None).await;
    assert_eq!(s, 200);
    let st = eventually(WAIT, || async {
        let st = send(&gw, "GET", &format!("/api/v1/brokers/connections/{conn}/status"), &token, None).await.1;
        (st["positions_snapshot"]["received_at"] != before).then_some(st)
    })
    .await
    .unwrap();
    let mt5 = fills(&st["positions_snapshot"]["positions"], |p| p["comment"].as_str().unwrap_or_default().to_owned());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, positions) = send(&gw, "GET", "/api/v1/trading/positions?limit=200", &token, None).await;
    let books = fills(&positions, |p| p["client_order_id"].as_str().unwrap().to_owned());
    assert_eq!(books, mt5, "our books equal MT5 (tickets, comments, fill prices)");
    assert_eq!(books.len(), opened.len(), "none lost, none doubled");
    for id in &opened {
        assert!(positions.as_array().unwrap().iter().any(|p| p["id"] == id.as_str() && p["status"] == "open"));
    }
    let (_, pending) = send(&gw, "GET", "/api/v1/trading/history?status=pending,unknown", &token, None).await;
    assert_eq!(pending, json!([]));
    // Nothing moved the reservations off the live positions.
    let (_, stats) = send(&gw, "GET", "/api/v1/trading/dashboard/stats", &token, None).await;
    assert_eq!(stats["open_positions"], json!(opened.len()), "{stats}");
}
