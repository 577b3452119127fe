//! "Honest reconciliation with a blind connector" (issue 18) over the real gateway, with a scripted connector
//! speaking exactly the original NusaTrade connector's protocol (no capabilities, no lookups):
//!
//! * while MT5 holds a position the original answers positions requests with `ERROR "'PositionInfo' object has no
//!   attribute 'type'"`: a failed snapshot — nothing changes, the connection's health says reconciliation is
//!   unavailable, and the dashboards hear it once, not at every answer;
//! * its stop loss hit in MT5, MT5 is flat and the original's report is valid (`POSITIONS` with an empty `data`):
//!   after two such complete reports, taken after the order's last change, the order is closed externally, flagged
//!   unconfirmed (one report is not enough).

use std::time::Duration;

use futures::StreamExt;
use nusatrade_tests::{
    AckMode, ConnectorOptions, Gateway, TEST_ENV, Terminal, TestConnector, WsClient, dashboard, eventually, next_of,
    place, send, trader,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const UNAVAILABLE: &str = "unavailable — connector cannot report positions";
const PYTHON_ERROR: &str = "'PositionInfo' object has no attribute 'type'";

async fn order(gw: &Gateway, token: &str, id: &str) -> Value {
    let (s, o) = send(gw, "GET", &format!("/api/v1/trading/orders/{id}"), token, None).await;
    assert_eq!(s, 200, "{o}");
    o
}

async fn status(gw: &Gateway, token: &str, conn: &str) -> Value {
    let (s, v) = send(gw, "GET", &format!("/api/v1/brokers/connections/{conn}/status"), token, None).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Every text frame a dashboard receives within `within`.
async fn frames(ws: &mut WsClient, within: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            out.push(serde_json::from_str(&t).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn a_stop_loss_hit_behind_the_original_connector_is_closed_after_two_complete_reports() {
    let mut env = TEST_ENV.to_vec();
    env.push(("NUSATRADE_RECONCILE_MIN_AGE_SECS", "1"));
    let gw = Gateway::start_with_env(&[], &env).await.unwrap();
    let (token, conn) = trader(&gw, "blind@example.com").await.unwrap();
    let terminal = Terminal::default();
    let c = TestConnector::connect_opts(&gw, &token, &conn, ConnectorOptions::original(&terminal, AckMode::Ack))
        .await
        .unwrap();
    c.set_price("EURUSD", 1.1);
    let mut dash = dashboard(&gw, &token).await;
    next_of(&mut dash, "CONNECTIONS_STATUS", WAIT).await.unwrap();

    // Opened: the original's ack carries the ticket only.
    let body = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1, "stop_loss": 1.09});
    let (_, id) = place(&gw, &token, body).await;
    let open = eventually(WAIT, || async { Some(order(&gw, &token, &id).await).filter(|o| o["status"] == "open") })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let ticket = open["ticket"].as_u64().unwrap();
    assert_eq!(open["close_unconfirmed"], false);

    // While MT5 holds it, every positions request is answered with the original's ERROR (no request id).
    for _ in 0..3 {
        c.send(json!({"type": "ERROR", "error": PYTHON_ERROR}));
    }
    // Until both kinds arrived (10 s at most, CI is loaded), then one more second: nothing repeats.
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while !["CONNECTOR_ERROR", "CONNECTIONS_STATUS"].iter().all(|k| seen.iter().any(|v: &Value| v["type"] == *k))
        && tokio::time::Instant::now() < until
    {
        seen.extend(frames(&mut dash, Duration::from_millis(200)).await);
    }
    seen.extend(frames(&mut dash, Duration::from_secs(1)).await);
    let of = |kind: &str| seen.iter().filter(|v| v["type"] == kind).cloned().collect::<Vec<_>>();
    let errors = of("CONNECTOR_ERROR");
    assert_eq!(errors.len(), 1, "once per change, not at every answer: {errors:?}");
    assert_eq!(errors[0]["error"], PYTHON_ERROR);
    let statuses = of("CONNECTIONS_STATUS");
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0]["connections"][0]["connection_id"], conn.as_str());
    assert_eq!(statuses[0]["connections"][0]["reconciliation"], UNAVAILABLE);
    let s = status(&gw, &token, &conn).await;
    assert_eq!((s["reconciliation"].as_str(), s["report_error"].as_str()), (Some(UNAVAILABLE), Some(PYTHON_ERROR)));
    // A failed snapshot is never "flat": the order stays open.
    let still = order(&gw, &token, &id).await;
    assert_eq!(still, open, "nothing written");

    // The stop loss is hit in MT5; MT5 is flat and the original's report is valid again.
    assert!(terminal.close_in_mt5(ticket));
    tokio::time::sleep(Duration::from_millis(1100)).await; // the reports come after the order's last change
    c.send(json!({"type": "POSITIONS", "data": []}));
    // One report: asked again (a SYNC_REQUEST for the ticket), nothing written; the health is no longer unavailable.
    let ask = eventually(WAIT, || async { c.commands("SYNC_REQUEST").await.pop() })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert_eq!(ask["tickets"], json!([ticket]));
    assert_eq!(order(&gw, &token, &id).await["status"], "open", "one report is not enough");
    let s = status(&gw, &token, &conn).await;
    assert!(s["reconciliation"].as_str().unwrap().starts_with("limited"), "{s}");
    assert!(s["report_error"].is_null());

    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.send(json!({"type": "POSITIONS", "data": []}));
    let closed = eventually(WAIT, || async {
        Some(order(&gw, &token, &id).await).filter(|o| o["status"] == "closed_externally")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert_eq!(closed["close_unconfirmed"], true, "{closed}");
    assert_eq!(closed["ticket"], ticket);
    // The original never told a price (no fill price, no positions, no quotes): closed without one, said so.
    assert!(closed["close_price"].is_null(), "{closed}");
    assert!(closed["error"].as_str().unwrap().contains("unknown price"), "{closed}");
    let (_, positions) = send(&gw, "GET", "/api/v1/trading/positions", &token, None).await;
    assert_eq!(positions.as_array().map(Vec::len), Some(0), "{positions}");
}
