//! Bad input from a connector (issue 18, "Bad input") over the real gateway, with scripted connectors whose acks the
//! test writes by hand (they record the commands and answer nothing themselves):
//!
//! * a connector stating `dedupe_request_id` that answers one `TRADE_OPEN` with two tickets: the order keeps the
//!   first, the connection is flagged `dedupe_violated` (status, `CONNECTOR_WARNING`, WARN log with both tickets), and
//!   its unacknowledged opens are never resent again — also after it reconnects stating the capability again;
//! * acks priced off by orders of magnitude: the position is recorded (ticket), the price and the profit are not;
//! * a ticket already bound to another user's order, and an ack for an order of another broker connection: refused
//!   with an `ERROR`, nothing applied, nothing of the other side shown;
//! * `AUTH` with unknown and oversized capability names; a positions report with huge comments; a frame over the limit.

use std::time::Duration;

use nusatrade_tests::{
    AckMode, ConnectorOptions, DEDUPE, Gateway, TEST_ENV, Terminal, TestConnector, WsClient, broker_connection,
    dashboard, eventually, next_of, place, send, trader,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn order(gw: &Gateway, token: &str, id: &str) -> Value {
    let (s, o) = send(gw, "GET", &format!("/api/v1/trading/orders/{id}"), token, None).await;
    assert_eq!(s, 200, "{o}");
    o
}

async fn status(gw: &Gateway, token: &str, conn: &str) -> Value {
    let (s, st) = send(gw, "GET", &format!("/api/v1/brokers/connections/{conn}/status"), token, None).await;
    assert_eq!(s, 200, "{st}");
    st
}

/// A connector that states `capabilities` and records commands without answering them.
async fn silent(gw: &Gateway, token: &str, conn: &str, capabilities: Option<Vec<String>>) -> TestConnector {
    let opts = ConnectorOptions {
        mode: AckMode::Silent,
        capabilities,
        terminal: Terminal::default(),
        ..ConnectorOptions::default()
    };
    TestConnector::connect_opts(gw, token, conn, opts).await.unwrap()
}

fn dedupe() -> Option<Vec<String>> {
    Some(vec![DEDUPE.into()])
}

/// Places a EURUSD BUY at 1.1 and waits until `c` received its `TRADE_OPEN`: the order's id.
async fn placed(gw: &Gateway, token: &str, c: &TestConnector) -> String {
    placed_on(gw, token, c, None).await
}

/// [`placed`] through broker connection `conn` when given.
async fn placed_on(gw: &Gateway, token: &str, c: &TestConnector, conn: Option<&str>) -> String {
    let before = c.commands("TRADE_OPEN").await.len();
    let mut body = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1});
    if let Some(conn) = conn {
        body["connection_id"] = json!(conn);
    }
    let (_, id) = place(gw, token, body).await;
    eventually(WAIT, || async { (c.commands("TRADE_OPEN").await.len() > before).then_some(()) })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    id
}

fn open_ack(request_id: &str, ticket: u64, price: f64) -> Value {
    json!({"type": "TRADE_RESULT", "request_id": request_id, "success": true, "ticket": ticket, "price": price,
        "retcode": 10009, "error": null})
}

async fn wait_order(gw: &Gateway, token: &str, id: &str, status: &str) -> Value {
    eventually(WAIT, || async { Some(order(gw, token, id).await).filter(|o| o["status"] == status) })
        .await
        .unwrap_or_else(|e| panic!("order never {status}: {e}\n{}", gw.log()))
}

async fn warning(ws: &mut WsClient) -> Value {
    next_of(ws, "CONNECTOR_WARNING", WAIT).await.unwrap()
}

#[tokio::test]
async fn a_connector_filling_twice_is_flagged_and_never_trusted_to_dedupe_again() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "twice@example.com").await.unwrap();
    let mut dash = dashboard(&gw, &token).await;
    let c1 = silent(&gw, &token, &conn, dedupe()).await;
    let before = status(&gw, &token, &conn).await;
    assert_eq!(before["capabilities"]["effective"], json!([DEDUPE]), "{before}");
    assert_eq!(before["flags"], json!([]));

    let id = placed(&gw, &token, &c1).await;
    c1.send(open_ack(&id, 7001, 1.1));
    assert_eq!(wait_order(&gw, &token, &id, "open").await["ticket"], 7001);
    // The same request answered by a second, different ticket: a second fill.
    c1.send(open_ack(&id, 7002, 1.1));
    let w = warning(&mut dash).await;
    assert_eq!(w["kind"], "dedupe_violated", "{w}");
    assert_eq!(w["ticket"], 7002);
    assert_eq!(w["order_id"], id.as_str());
    assert_eq!(w["connection_id"], conn.as_str());
    let o = order(&gw, &token, &id).await;
    assert_eq!((o["status"].as_str(), o["ticket"].as_u64()), (Some("open"), Some(7001)), "first ticket kept: {o}");
    let st = status(&gw, &token, &conn).await;
    assert_eq!(st["flags"].as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(st["flags"][0]["kind"], "dedupe_violated");
    assert_eq!(st["capabilities"], json!({"stated": [DEDUPE], "effective": []}), "{st}");
    let log = gw.log();
    assert!(log.contains("filled one TRADE_OPEN twice") && log.contains("7001") && log.contains("7002"), "{log}");
    // Repeating the bad ack does not grow the record.
    c1.send(open_ack(&id, 7002, 1.1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&gw, &token, &conn).await["flags"].as_array().map(Vec::len), Some(1));

    // An unacknowledged open, the link lost, the connector back stating dedupe_request_id again: not resent.
    let second = placed(&gw, &token, &c1).await;
    c1.kill();
    eventually(WAIT, || async {
        let (_, list) = send(&gw, "GET", "/api/v1/brokers/connections", &token, None).await;
        (list[0]["is_active"] == false).then_some(())
    })
    .await
    .unwrap();
    let c2 = silent(&gw, &token, &conn, dedupe()).await;
    eventually(WAIT, || async { (!c2.commands("GET_ACCOUNT").await.is_empty()).then_some(()) }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c2.commands("TRADE_OPEN").await.is_empty(), "no resend: {:?}", c2.commands("TRADE_OPEN").await);
    assert_eq!(order(&gw, &token, &second).await["status"], "unknown");
    let st = status(&gw, &token, &conn).await;
    assert_eq!(st["capabilities"], json!({"stated": [DEDUPE], "effective": []}), "persisted: {st}");
}

#[tokio::test]
async fn a_report_with_two_positions_of_one_order_flags_the_connection() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "report-twice@example.com").await.unwrap();
    let c = silent(&gw, &token, &conn, Some(vec![DEDUPE.into(), "report_positions".into(), "report_comments".into()]))
        .await;
    let position = |ticket: u64| {
        json!({"ticket": ticket, "symbol": "EURUSD", "type": 0, "volume": 0.1, "price_open": 1.1,
            "price_current": 1.1, "comment": "NT-abc123"})
    };
    c.send(json!({"type": "POSITIONS", "positions": [position(9101), position(9102)]}));
    let flagged = eventually(WAIT, || async {
        let st = status(&gw, &token, &conn).await;
        (st["flags"].as_array().is_some_and(|f| !f.is_empty())).then_some(st)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert_eq!(flagged["flags"][0]["kind"], "dedupe_violated", "{flagged}");
    assert!(flagged["flags"][0]["detail"].as_str().unwrap().contains("9101, 9102"), "{flagged}");
    assert_eq!(flagged["capabilities"]["effective"], json!(["report_positions", "report_comments"]), "{flagged}");
}

#[tokio::test]
async fn acks_priced_off_by_orders_of_magnitude_keep_the_position_not_the_price() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "price@example.com").await.unwrap();
    let mut dash = dashboard(&gw, &token).await;
    let c = silent(&gw, &token, &conn, dedupe()).await;
    let id = placed(&gw, &token, &c).await;
    c.send(open_ack(&id, 8001, 108.5));
    let open = wait_order(&gw, &token, &id, "open").await;
    assert_eq!(open["ticket"], 8001, "the position is recorded: {open}");
    assert_eq!(open["open_price"], 1.1, "the requested price, not 108.5: {open}");
    let w = warning(&mut dash).await;
    assert_eq!(w["kind"], "price_suspect", "{w}");
    assert_eq!(w["ticket"], 8001);

    let (s, body) = send(&gw, "PUT", &format!("/api/v1/trading/orders/{id}/close"), &token, None).await;
    assert!(s.is_success(), "{s} {body}");
    let close = eventually(WAIT, || async { c.commands("TRADE_CLOSE").await.pop() }).await.unwrap();
    c.send(json!({"type": "TRADE_RESULT", "request_id": close["request_id"], "success": true, "price": 0.0108,
        "profit": -118_000.0, "retcode": 10009, "error": null}));
    let closed = wait_order(&gw, &token, &id, "closed").await;
    assert_ne!(closed["close_price"], 0.0108, "{closed}");
    assert_ne!(closed["profit"], -118_000.0, "no P/L from the bad number: {closed}");
    assert!(closed["profit"].as_f64().is_some_and(|p| p.abs() < 1000.0), "{closed}");
    let st = status(&gw, &token, &conn).await;
    let kinds: Vec<&str> = st["flags"].as_array().unwrap().iter().filter_map(|f| f["kind"].as_str()).collect();
    assert_eq!(kinds, ["price_suspect", "price_suspect"], "{st}");
    assert_eq!(st["capabilities"]["effective"], json!([DEDUPE]), "a price flag withdraws nothing: {st}");
}

#[tokio::test]
async fn tickets_bound_elsewhere_and_foreign_orders_are_refused() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (alice, alice_conn) = trader(&gw, "alice-tickets@example.com").await.unwrap();
    let (bob, bob_conn) = trader(&gw, "bob-tickets@example.com").await.unwrap();
    let a = silent(&gw, &alice, &alice_conn, dedupe()).await;
    let b = silent(&gw, &bob, &bob_conn, dedupe()).await;
    let mut bob_dash = dashboard(&gw, &bob).await;
    let alice_order = placed(&gw, &alice, &a).await;
    a.send(open_ack(&alice_order, 9001, 1.1));
    wait_order(&gw, &alice, &alice_order, "open").await;

    // Bob's connector binds Alice's ticket (same trade server) to Bob's order: refused.
    let bob_order = placed(&gw, &bob, &b).await;
    b.send(open_ack(&bob_order, 9001, 1.1));
    let err = eventually(WAIT, || async { b.commands("ERROR").await.pop() }).await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("already bound"), "{err}");
    let w = warning(&mut bob_dash).await;
    assert_eq!(w["kind"], "foreign_ticket", "{w}");
    assert!(!w.to_string().contains(&alice_order), "nothing of Alice's order reaches Bob: {w}");
    assert!(!err.to_string().contains(&alice_order), "{err}");
    let o = order(&gw, &bob, &bob_order).await;
    assert!(o["ticket"].is_null() && o["status"] == "pending", "not applied: {o}");
    assert_eq!(order(&gw, &alice, &alice_order).await["ticket"], 9001, "Alice's order untouched");

    // Alice's second connection acknowledging her first connection's order: refused too.
    let second_conn = broker_connection(&gw, &alice).await.unwrap();
    let a2 = silent(&gw, &alice, &second_conn, dedupe()).await;
    let other = placed_on(&gw, &alice, &a, Some(&alice_conn)).await;
    a2.send(open_ack(&other, 9002, 1.1));
    let err = eventually(WAIT, || async { a2.commands("ERROR").await.pop() }).await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("another broker connection"), "{err}");
    assert_eq!(order(&gw, &alice, &other).await["status"], "pending");
    // Its own connection's ack still applies.
    a.send(open_ack(&other, 9002, 1.1));
    assert_eq!(wait_order(&gw, &alice, &other, "open").await["ticket"], 9002);
    assert_eq!(status(&gw, &alice, &second_conn).await["flags"][0]["kind"], "foreign_ticket");
}

#[tokio::test]
async fn unknown_capabilities_and_oversized_reports_are_cut_not_fatal() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "caps@example.com").await.unwrap();
    let long = "z".repeat(5000);
    let caps = vec![DEDUPE.to_owned(), "teleport".to_owned(), long.clone()];
    let c = silent(&gw, &token, &conn, Some(caps)).await;
    let st = status(&gw, &token, &conn).await;
    assert_eq!(st["capabilities"], json!({"stated": [DEDUPE], "effective": [DEDUPE]}), "{st}");
    let log = gw.log();
    assert!(log.contains("teleport"), "unknown names logged: {log}");
    assert!(!log.contains(&long[..100]), "a long name is cut in the log");

    // Huge comments (a frame under the gateway's 32 KB frame limit): stored cut to 64 characters.
    let positions: Vec<Value> = (0..50u64)
        .map(|i| json!({"ticket": 100 + i, "symbol": "EURUSD", "type": 0, "volume": 0.01, "comment": "c".repeat(500)}))
        .collect();
    let frame = json!({"type": "POSITIONS", "positions": positions});
    assert!(frame.to_string().len() < 32 * 1024);
    c.send(frame);
    let snap = eventually(WAIT, || async {
        let st = status(&gw, &token, &conn).await;
        Some(st["positions_snapshot"].clone()).filter(|s| !s.is_null())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert_eq!(snap["count"], 50, "{snap}");
    let longest = snap["positions"].as_array().unwrap().iter().map(|p| p["comment"].as_str().unwrap().len()).max();
    assert_eq!(longest, Some(64), "comments cut");
    // Over the message limit: refused (the local gateway closes with 1009, as API Gateway does), the gateway fine.
    c.send(json!({"type": "POSITIONS", "positions": vec![json!({"comment": "x".repeat(1000)}); 200]}));
    eventually(WAIT, || async { c.is_closed().then_some(()) }).await.unwrap();
    assert_eq!(status(&gw, &token, &conn).await["id"], conn.as_str());
}
