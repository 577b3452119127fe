//! "Never double a fill" (issue 18) over the real gateway: a scripted connector speaking exactly the original
//! NusaTrade connector's protocol (its `AUTH` is `{type, token, client_type, timestamp}`: no capabilities, and it
//! executes every `TRADE_OPEN` it receives) against one stating `dedupe_request_id` (and honouring it), both on a
//! stand-in MT5 terminal shared across their reconnections.
//!
//! * The original's two reproduced double fills — the link cut between fill and ack, and a lost ack followed by a
//!   reconnect: no second `TRADE_OPEN` reaches it, MT5 holds one position, the order is `unknown` (never a second
//!   ticket) and waits for evidence.
//! * The same scenarios with a de-duplicating connector still get the resend, answered from its memory: one
//!   position, the order open with the first ticket.
//! * Closes are resent to the original too (harmless: whole position, by ticket): a close lost before MT5 executes
//!   on the resend; a close executed before the cut is refused by MT5 on the resend ("position not found").

use std::time::Duration;

use nusatrade_tests::{
    AckMode, ConnectorOptions, Gateway, TEST_ENV, Terminal, TestConnector, eventually, place, send, trader,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn order(gw: &Gateway, token: &str, id: &str) -> Value {
    let (s, o) = send(gw, "GET", &format!("/api/v1/trading/orders/{id}"), token, None).await;
    assert_eq!(s, 200, "{o}");
    o
}

/// Waits until the gateway saw the connector's socket go (the broker connection inactive).
async fn link_down(gw: &Gateway, token: &str) {
    eventually(WAIT, || async {
        let (_, list) = send(gw, "GET", "/api/v1/brokers/connections", token, None).await;
        (list[0]["is_active"] == false).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
}

/// Waits until a reconnected connector got its first contact (the re-sync comes after the outbox), plus a margin
/// for anything that would still follow.
async fn first_contact_done(c: &TestConnector) {
    eventually(WAIT, || async { (!c.commands("GET_ACCOUNT").await.is_empty()).then_some(()) }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// A BUY order placed over HTTP, once the connector has executed it on the terminal: the order's id.
async fn placed_and_filled(gw: &Gateway, token: &str, terminal: &Terminal) -> String {
    let body = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1});
    let (_, id) = place(gw, token, body).await;
    eventually(WAIT, || async { (terminal.positions().len() == 1).then_some(()) }).await.unwrap();
    id
}

/// After the reconnect of an original connector: nothing resent, one MT5 position, the order `unknown` with no ticket.
async fn assert_not_filled_twice(gw: &Gateway, token: &str, id: &str, terminal: &Terminal, second: &TestConnector) {
    first_contact_done(second).await;
    assert!(
        second.commands("TRADE_OPEN").await.is_empty(),
        "no second TRADE_OPEN: {:?}",
        second.commands("TRADE_OPEN").await
    );
    assert_eq!(terminal.positions().len(), 1, "one MT5 position: {:?}", terminal.positions());
    assert_eq!(terminal.executions(), 1);
    let o = order(gw, token, id).await;
    assert_eq!(o["status"], "unknown", "{o}\n{}", gw.log());
    assert!(o["ticket"].is_null(), "no ticket of a second fill: {o}");
    assert!(gw.log().contains("not resent: the connector cannot de-duplicate"), "{}", gw.log());
}

/// After the reconnect of a de-duplicating connector: the open resent once, answered from memory; one position, the
/// order open with its ticket.
async fn assert_resent_and_deduplicated(
    gw: &Gateway,
    token: &str,
    id: &str,
    terminal: &Terminal,
    second: &TestConnector,
) {
    let open = eventually(WAIT, || async { Some(order(gw, token, id).await).filter(|o| o["status"] == "open") })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let resent = second.commands("TRADE_OPEN").await;
    assert_eq!(resent.len(), 1, "{resent:?}");
    assert_eq!(resent[0]["request_id"], id);
    let positions = terminal.positions();
    assert_eq!(positions.len(), 1, "{positions:?}");
    assert_eq!(terminal.executions(), 1, "the resend was answered from the connector's memory");
    assert_eq!(open["ticket"], positions[0].0, "{open}");
}

#[tokio::test]
async fn the_original_connector_cut_between_fill_and_ack_is_not_filled_twice() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "cut@example.com").await.unwrap();
    let terminal = Terminal::default();
    let first =
        TestConnector::connect_opts(&gw, &token, &conn, ConnectorOptions::original(&terminal, AckMode::FillThenCut))
            .await
            .unwrap();
    let id = placed_and_filled(&gw, &token, &terminal).await;
    link_down(&gw, &token).await;
    assert!(first.is_closed());
    assert_eq!(order(&gw, &token, &id).await["status"], "pending", "no ack yet");

    let second = TestConnector::connect_opts(&gw, &token, &conn, ConnectorOptions::original(&terminal, AckMode::Ack))
        .await
        .unwrap();
    assert_not_filled_twice(&gw, &token, &id, &terminal, &second).await;

    // A later reconnect has nothing to resend either (the entry is gone, not just skipped).
    drop(second);
    link_down(&gw, &token).await;
    let third = TestConnector::connect_opts(&gw, &token, &conn, ConnectorOptions::original(&terminal, AckMode::Ack))
        .await
        .unwrap();
    first_contact_done(&third).await;
    assert!(third.commands("TRADE_OPEN").await.is_empty());
    assert_eq!(terminal.positions().len(), 1);
}

#[tokio::test]
async fn the_original_connector_with_a_lost_ack_then_a_reconnect_is_not_filled_twice() {
    // A 1 s ack timeout: the order is `unknown` already when the connector comes back (the open would have been resent).
    let mut env = TEST_ENV.to_vec();
    env.push(("NUSATRADE_ACK_TIMEOUT_SECS", "1"));
    let gw = Gateway::start_with_env(&[], &env).await.unwrap();
    let (token, conn) = trader(&gw, "lost@example.com").await.unwrap();
    let terminal = Terminal::default();
    let first =
        TestConnector::connect_opts(&gw, &token, &conn, ConnectorOptions::original(&terminal, AckMode::FillAckLost))
            .await
            .unwrap();
    let id = placed_and_filled(&gw, &token, &terminal).await;
    eventually(WAIT, || async { Some(order(&gw, &token, &id).await).filter(|o| o["status"] == "unknown") })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert!(!first.is_closed(), "the link stayed up");

    // The link drops (routine: API Gateway's idle / 2 h limits) and the connector redials.
    first.kill();
    link_down(&gw, &token).await;
    let second = TestConnector::connect_opts(&gw, &token, &conn, ConnectorOptions::original(&terminal, AckMode::Ack))
        .await
        .unwrap();
    assert_not_filled_twice(&gw, &token, &id, &terminal, &second).await;
}

#[tokio::test]
async fn a_deduplicating_connector_cut_between_fill_and_ack_gets_the_resend() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "dedupe-cut@example.com").await.unwrap();
    let terminal = Terminal::default();
    let opts = ConnectorOptions::deduplicating(&terminal, AckMode::FillThenCut);
    let _first = TestConnector::connect_opts(&gw, &token, &conn, opts).await.unwrap();
    let id = placed_and_filled(&gw, &token, &terminal).await;
    link_down(&gw, &token).await;

    let opts = ConnectorOptions::deduplicating(&terminal, AckMode::Ack);
    let second = TestConnector::connect_opts(&gw, &token, &conn, opts).await.unwrap();
    assert_resent_and_deduplicated(&gw, &token, &id, &terminal, &second).await;
}

#[tokio::test]
async fn a_deduplicating_connector_with_a_lost_ack_gets_the_resend() {
    let mut env = TEST_ENV.to_vec();
    env.push(("NUSATRADE_ACK_TIMEOUT_SECS", "1"));
    let gw = Gateway::start_with_env(&[], &env).await.unwrap();
    let (token, conn) = trader(&gw, "dedupe-lost@example.com").await.unwrap();
    let terminal = Terminal::default();
    let opts = ConnectorOptions::deduplicating(&terminal, AckMode::FillAckLost);
    let first = TestConnector::connect_opts(&gw, &token, &conn, opts).await.unwrap();
    let id = placed_and_filled(&gw, &token, &terminal).await;
    eventually(WAIT, || async { Some(order(&gw, &token, &id).await).filter(|o| o["status"] == "unknown") })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    first.kill();
    link_down(&gw, &token).await;

    let opts = ConnectorOptions::deduplicating(&terminal, AckMode::Ack);
    let second = TestConnector::connect_opts(&gw, &token, &conn, opts).await.unwrap();
    assert_resent_and_deduplicated(&gw, &token, &id, &terminal, &second).await;
}

#[tokio::test]
async fn closes_are_resent_to_the_original_connector_where_harmless() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "close@example.com").await.unwrap();
    let terminal = Terminal::default();
    let original = |mode| ConnectorOptions::original(&terminal, mode);
    let close = |id: String| {
        let (gw, token) = (&gw, &token);
        async move {
            let path = format!("/api/v1/trading/orders/{id}/close");
            let (s, b) = send(gw, "PUT", &path, token, Some(json!({"close_price": 1.2}))).await;
            assert_eq!((s.as_u16(), &b["trade"]["status"]), (200, &json!("close_pending")), "{b}");
        }
    };

    // Two orders open through an acknowledging original connector.
    let c1 = TestConnector::connect_opts(&gw, &token, &conn, original(AckMode::Ack)).await.unwrap();
    let body = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1});
    let (_, lost) = place(&gw, &token, body.clone()).await;
    let (_, done) = place(&gw, &token, body).await;
    for id in [&lost, &done] {
        eventually(WAIT, || async { Some(order(&gw, &token, id).await).filter(|o| o["status"] == "open") })
            .await
            .unwrap();
    }
    assert_eq!(terminal.positions().len(), 2);

    // The first close never reaches MT5; the second executes and the link breaks before its ack.
    c1.set_mode(AckMode::Silent);
    close(lost.clone()).await;
    eventually(WAIT, || async { (c1.commands("TRADE_CLOSE").await.len() == 1).then_some(()) }).await.unwrap();
    c1.set_mode(AckMode::FillThenCut);
    close(done.clone()).await;
    link_down(&gw, &token).await;
    assert_eq!(terminal.positions().len(), 1, "one close executed");

    // Both closes are resent (same request ids): the lost one closes the position, the executed one is refused by
    // MT5 (the ticket is gone) — no position is touched twice, and that order waits in close_pending for evidence.
    let c2 = TestConnector::connect_opts(&gw, &token, &conn, original(AckMode::Ack)).await.unwrap();
    first_contact_done(&c2).await;
    let resent: Vec<Value> = c2.commands("TRADE_CLOSE").await;
    assert_eq!(resent.len(), 2, "{resent:?}");
    assert!(c2.commands("TRADE_OPEN").await.is_empty());
    eventually(WAIT, || async { Some(order(&gw, &token, &lost).await).filter(|o| o["status"] == "closed") })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert!(terminal.positions().is_empty());
    assert_eq!(order(&gw, &token, &done).await["status"], "close_pending");
}
