//! The trader's own market data (issue 18): `POST /api/v1/ml/datasets/from-connector` asks the connector for OHLC
//! history page by page and stores it as the caller's candle dataset, over the real gateway binary.
//!
//! * The simulated connector (`nusatrade connector`, a child process) answers from its price source: the import
//!   completes, the dataset is listed with `source: connector`, the AI analysis is computed from it, and the same
//!   request again changes nothing.
//! * A scripted connector stating `history_candles`: a re-delivered page changes nothing (no bar, no revision, no
//!   extra request); a page the connector fails fails the import, and the same request resumes it at that page.
//! * A connector that does not state the capability is refused with 409; no connector online is the 503 of trading.

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use nusatrade_tests::{
    ConnectorOptions, Gateway, TEST_ENV, TestConnector, binary, eventually, online_trader, register, send, trader,
};
use serde_json::{Value, json};
use tokio::process::Command;

const PASSWORD: &str = "Str0ng!pass";

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A range of `hours` H1 bars ending at the start of yesterday (UTC).
fn range(hours: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = Utc::now().duration_trunc(TimeDelta::days(1)).unwrap() - TimeDelta::days(1);
    (end - TimeDelta::hours(hours), end)
}

async fn import(gw: &Gateway, token: &str, body: &Value) -> (u16, Value) {
    let (s, v) = send(gw, "POST", "/api/v1/ml/datasets/from-connector", token, Some(body.clone())).await;
    (s.as_u16(), v)
}

async fn import_status(gw: &Gateway, token: &str, id: &str) -> Value {
    let (s, v) = send(gw, "GET", &format!("/api/v1/ml/datasets/imports/{id}"), token, None).await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn dataset(gw: &Gateway, token: &str, symbol: &str, tf: &str) -> Option<Value> {
    let (s, list) = send(gw, "GET", "/api/v1/ml/datasets", token, None).await;
    assert_eq!(s, 200, "{list}");
    list.as_array().unwrap().iter().find(|d| d["symbol"] == symbol && d["timeframe"] == tf).cloned()
}

#[tokio::test]
async fn the_simulated_connectors_history_becomes_the_traders_dataset() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let email = "history-trader@example.com";
    let token = register(&gw, email).await.unwrap();
    // No connector online yet: trading's 503.
    let (start, end) = range(24 * 45);
    let body = json!({"symbol": "EURUSD", "timeframe": "H1", "start": iso(start), "end": iso(end)});
    let (s, v) = import(&gw, &token, &body).await;
    assert_eq!(s, 503, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("not online"), "{v}");

    let log = gw.data_dir.path().join("connector.log");
    let _connector = Command::new(binary().unwrap())
        .arg("connector")
        .args(["--server", &gw.base, "--email", email, "--password", PASSWORD])
        .args(["--tick-ms", "50", "--heartbeat-secs", "1"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually(Duration::from_secs(20), || async { logs().contains("connector online").then_some(()) })
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", logs()));

    // 45 days of H1 bars: 1,080 slots, three pages.
    let (s, job) = import(&gw, &token, &body).await;
    assert_eq!(s, 202, "{job}");
    assert_eq!((job["pages"].as_u64(), job["symbol"].as_str()), (Some(3), Some("EURUSD")), "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = eventually(Duration::from_secs(20), || async {
        let v = import_status(&gw, &token, &id).await;
        assert_ne!(v["status"], "failed", "{v}");
        (v["status"] == "completed").then_some(v)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", logs()));
    let bars = done["bars_received"].as_u64().unwrap();
    // weekdays only: about 5/7 of the slots
    assert!((600..=1_080).contains(&bars), "{done}");
    assert_eq!((done["pages_done"].as_u64(), done["bars_added"].as_u64()), (Some(3), Some(bars)), "{done}");
    let d = dataset(&gw, &token, "EURUSD", "H1").await.expect("the dataset");
    assert_eq!((d["bars"].as_u64(), d["source"].as_str()), (Some(bars), Some("connector")), "{d}");

    // The same request again: the same import, completed, nothing asked or stored.
    let (s, again) = import(&gw, &token, &body).await;
    assert_eq!(s, 202, "{again}");
    assert_eq!(again, done);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dataset(&gw, &token, "EURUSD", "H1").await.unwrap()["revision"], d["revision"]);

    // The AI analysis is computed from it.
    let (s, a) = send(&gw, "GET", "/api/v1/ai/analysis/EURUSD", &token, None).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["computed"], true, "{a}");
    assert!(a["analysis"].as_str().unwrap().contains("RSI"), "{a}");

    // A backtest runs on it.
    let strategy = json!({
        "name": "SMA cross", "description": "on the connector's candles",
        "parameters": [{"name": "fast", "default_value": 5, "min": 2, "max": 50},
            {"name": "slow", "default_value": 20, "min": 5, "max": 200}],
        "indicators": ["SMA"],
        "entry_rules": [
            {"id": "up", "condition": "CROSSES_ABOVE(SMA(fast), SMA(slow))", "action": "BUY", "description": "up"},
            {"id": "down", "condition": "CROSSES_BELOW(SMA(fast), SMA(slow))", "action": "SELL", "description": "down"}],
        "exit_rules": [{"id": "rsi", "condition": "RSI(14) > 80", "action": "CLOSE", "description": "overbought"}],
        "risk_management": {"stop_loss_type": "fixed_pips", "stop_loss_value": 30, "take_profit_type": "risk_reward",
            "take_profit_value": 2, "max_position_size": 1.0, "risk_per_trade_percent": 1.0}
    });
    let (s, created) = send(&gw, "POST", "/api/v1/strategies", &token, Some(strategy)).await;
    assert_eq!(s, 201, "{created}");
    let run = json!({"strategy_id": created["id"], "symbol": "EURUSD", "timeframe": "1h",
        "start_date": start.format("%Y-%m-%d").to_string(), "end_date": end.format("%Y-%m-%d").to_string(),
        "initial_balance": 10000});
    let (s, r) = send(&gw, "POST", "/api/v1/backtest/run", &token, Some(run)).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "completed", "{r}");
    assert!(r["total_trades"].as_u64().unwrap() > 0, "the generated market moves: {r}");

    // A symbol the connector does not quote: the connector's ERROR fails the import with its reason.
    let other = json!({"symbol": "NZDJPY", "timeframe": "D1", "start": iso(start), "end": iso(end)});
    let (s, job) = import(&gw, &token, &other).await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let failed = eventually(Duration::from_secs(20), || async {
        let v = import_status(&gw, &token, &id).await;
        (v["status"] == "failed").then_some(v)
    })
    .await
    .unwrap();
    assert!(failed["error"].as_str().unwrap().contains("not found"), "{failed}");
    assert!(dataset(&gw, &token, "NZDJPY", "D1").await.is_none());

    // Bad requests, refused at the edge.
    for (bad, status) in [
        (json!({"symbol": "EURUSD", "timeframe": "H1", "start": iso(end), "end": iso(start)}), 400),
        (json!({"symbol": "EURUSD", "timeframe": "M1", "start": iso(start), "end": iso(end)}), 400),
        (
            json!({"symbol": "EURUSD", "timeframe": "H1", "start": iso(start), "end": iso(Utc::now() + TimeDelta::days(3))}),
            400,
        ),
        (json!({"symbol": "EURUSD", "timeframe": "H2", "start": iso(start), "end": iso(end)}), 422),
        (json!({"symbol": "EURUSD", "timeframe": "H1", "start": "yesterday", "end": iso(end)}), 422),
        (json!({"symbol": "NOTASYMBOL", "timeframe": "H1", "start": iso(start), "end": iso(end)}), 400),
    ] {
        let (s, v) = import(&gw, &token, &bad).await;
        assert_eq!(s, status, "{bad} → {v}");
    }
    let (s, _) = send(&gw, "GET", "/api/v1/ml/datasets/imports/not-a-uuid", &token, None).await;
    assert_eq!(s, 400);
    let (s, _) =
        send(&gw, "GET", "/api/v1/ml/datasets/imports/4f1c2a9e-0000-4000-8000-000000000000", &token, None).await;
    assert_eq!(s, 404);
    gw.stop().await.unwrap();
}

/// `n` plausible hourly bars from `from`, as `HISTORY_CANDLES` rows.
fn rows(from: DateTime<Utc>, n: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let o = 1.08 + i as f64 * 0.0001;
            json!([(from + TimeDelta::hours(i)).timestamp(), o, o + 0.0003, o - 0.0002, o + 0.0001, 10])
        })
        .collect()
}

fn page(request: &Value, rows: Vec<Value>) -> Value {
    json!({"type": "HISTORY_CANDLES", "request_id": request["request_id"], "symbol": request["symbol"],
        "timeframe": request["timeframe"], "candles": rows})
}

#[tokio::test]
async fn pages_are_idempotent_resumable_and_need_the_capability() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();

    // The default scripted connector states dedupe_request_id only: it cannot provide history.
    let (token, _conn, connector) = online_trader(&gw, "no-history@example.com").await.unwrap();
    let (start, end) = range(500);
    let body = json!({"symbol": "EURUSD", "timeframe": "H1", "start": iso(start), "end": iso(end)});
    let (s, v) = import(&gw, &token, &body).await;
    assert_eq!(s, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("cannot provide price history"), "{v}");
    assert!(connector.commands("HISTORY_REQUEST").await.is_empty());

    // A connector stating history_candles, answering by hand.
    let (token, conn) = trader(&gw, "scripted-history@example.com").await.unwrap();
    let opts = ConnectorOptions { capabilities: Some(vec!["history_candles".into()]), ..ConnectorOptions::default() };
    let c = TestConnector::connect_opts(&gw, &token, &conn, opts).await.unwrap();
    let (s, job) = import(&gw, &token, &body).await;
    assert_eq!(s, 202, "{job}");
    assert_eq!((job["pages"].as_u64(), job["status"].as_str()), (Some(2), Some("running")), "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let asked = |n: usize| {
        let c = &c;
        async move {
            eventually(Duration::from_secs(10), || async {
                let r = c.commands("HISTORY_REQUEST").await;
                (r.len() >= n).then_some(r)
            })
            .await
            .unwrap()
        }
    };
    let r0 = asked(1).await[0].clone();
    assert_eq!(r0["max_bars"], 400, "{r0}");
    let page0 = page(&r0, rows(start, 400));
    c.send(page0.clone());
    let r1 = asked(2).await[1].clone();
    assert!(r1["request_id"].as_str().unwrap().ends_with(":1"), "{r1}");
    let d = dataset(&gw, &token, "EURUSD", "H1").await.unwrap();
    assert_eq!(d["bars"], 400, "{d}");

    // Page 0 again (a re-delivery): nothing changes, nothing more is asked.
    c.send(page0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = import_status(&gw, &token, &id).await;
    assert_eq!((v["pages_done"].as_u64(), v["bars_received"].as_u64()), (Some(1), Some(400)), "{v}");
    assert_eq!(dataset(&gw, &token, "EURUSD", "H1").await.unwrap()["revision"], d["revision"]);
    assert_eq!(c.commands("HISTORY_REQUEST").await.len(), 2);

    // The connector fails page 1: the import fails with its reason; the same request resumes at page 1.
    c.send(json!({"type": "ERROR", "request_id": r1["request_id"], "error": "terminal busy"}));
    let failed = eventually(Duration::from_secs(10), || async {
        let v = import_status(&gw, &token, &id).await;
        (v["status"] == "failed").then_some(v)
    })
    .await
    .unwrap();
    assert!(failed["error"].as_str().unwrap().contains("terminal busy"), "{failed}");
    let (s, resumed) = import(&gw, &token, &body).await;
    assert_eq!(s, 202, "{resumed}");
    assert_eq!((resumed["id"].as_str(), resumed["status"].as_str()), (Some(id.as_str()), Some("running")));
    let r1b = asked(3).await[2].clone();
    assert_eq!(r1b["request_id"], r1["request_id"], "the page it waits for is asked again");
    let from1 = DateTime::parse_from_rfc3339(r1b["start"].as_str().unwrap()).unwrap().with_timezone(&Utc);
    c.send(page(&r1b, rows(from1, 100)));
    let done = eventually(Duration::from_secs(10), || async {
        let v = import_status(&gw, &token, &id).await;
        (v["status"] == "completed").then_some(v)
    })
    .await
    .unwrap();
    assert_eq!(done["bars_received"], 500, "{done}");
    assert_eq!(dataset(&gw, &token, "EURUSD", "H1").await.unwrap()["bars"], 500);

    // An implausible page is refused by the protocol (high below the body): an ERROR back, nothing stored.
    let bad = json!({"type": "HISTORY_CANDLES", "request_id": r1["request_id"], "symbol": "EURUSD", "timeframe": "H1",
        "candles": [[start.timestamp(), 1.1, 1.0, 1.05, 1.2, 1]]});
    c.send(bad);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dataset(&gw, &token, "EURUSD", "H1").await.unwrap()["bars"], 500);

    // A backtest-free check that the dataset is the caller's own: another user has none.
    let other = register(&gw, "someone-else@example.com").await.unwrap();
    assert!(dataset(&gw, &other, "EURUSD", "H1").await.is_none());
    gw.stop().await.unwrap();
}
