//! The WebSocket links end to end (issue #5): the real gateway binary, a scripted connector and dashboards on
//! real WebSockets. Positions reports become the broker status's snapshot and health; POSITION_UPDATE and
//! MT5_STATUS reach the dashboards; a dashboard's SEND_TRADE_COMMAND places orders under the REST rules; a
//! command in flight when the connector dies is resent once after it reconnects; floods close the socket.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nusatrade_tests::{
    Gateway, TEST_ENV, TestConnector, WsClient, dashboard, eventually, find_listed, next_of, online_trader, place,
    register, send, trader,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

async fn next_json(ws: &mut WsClient) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame within the wait").unwrap().unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            _ => continue,
        }
    }
}

async fn say(ws: &mut WsClient, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn status(gw: &Gateway, token: &str, conn: &str) -> Value {
    let (s, v) = send(gw, "GET", &format!("/api/v1/brokers/connections/{conn}/status"), token, None).await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test]
async fn reports_become_status_and_reach_the_dashboards() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "links@example.com").await.unwrap();

    // A dashboard gets the connections at once, unasked (the original dashboard's first PING comes after 30 s):
    // none online yet. It is sent once: asking again answers, the first message adds no second one.
    let started = std::time::Instant::now();
    let mut dash = dashboard(&gw, &token).await;
    // "At once" against the original's 30 s; 5 s of slack for a loaded CI machine (typically a few ms here).
    let first = next_of(&mut dash, "CONNECTIONS_STATUS", Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "CONNECTIONS_STATUS after {:?}", started.elapsed());
    assert_eq!(first["connections"], json!([]));
    say(&mut dash, json!({"type": "PING"})).await;
    let pong = next_json(&mut dash).await;
    assert_eq!(pong["type"], "PONG", "the first message adds no second CONNECTIONS_STATUS: {pong}");
    say(&mut dash, json!({"type": "GET_CONNECTIONS_STATUS"})).await;
    assert_eq!(next_of(&mut dash, "CONNECTIONS_STATUS", WAIT).await.unwrap()["connections"], json!([]));

    // The connector comes online: the dashboard hears it; the connector is asked for a full re-sync and probed.
    let connector = TestConnector::connect(&gw, &token, &conn).await.unwrap();
    let online = next_of(&mut dash, "CONNECTIONS_STATUS", WAIT).await.unwrap();
    assert_eq!(online["connections"][0]["connection_id"], conn.as_str(), "{online}");
    eventually(WAIT, || async {
        let kinds: Vec<Value> = connector.received.lock().await.iter().map(|v| v["type"].clone()).collect();
        (kinds == [json!("GET_POSITIONS"), json!("GET_ACCOUNT"), json!("PING")]).then_some(())
    })
    .await
    .unwrap();
    // Its PONG gives the latency.
    let st = eventually(WAIT, || async { Some(status(&gw, &token, &conn).await).filter(|s| s["latency_ms"].is_u64()) })
        .await
        .unwrap();
    assert!(st["latency_ms"].as_u64().unwrap() < 5_000, "{st}");
    assert_eq!((&st["status"], &st["positions_snapshot"]), (&json!("online"), &Value::Null));

    // The answer to GET_POSITIONS (the original connector's shape) becomes the snapshot.
    connector.send(json!({"type": "POSITIONS", "data": [
        {"ticket": 4242, "symbol": "EURUSD", "type": "BUY", "volume": 0.3, "price": 1.1, "profit": 12.5},
        {"ticket": 4243, "symbol": "XAUUSD", "type": "SELL", "volume": 0.1, "price": 2000.0, "price_current": 1990.0,
            "profit": 100.0, "sl": 2010.0, "tp": 0.0}]}));
    let st = eventually(WAIT, || async {
        // The snapshot and the link's health are two records: wait for both.
        Some(status(&gw, &token, &conn).await)
            .filter(|s| s["positions_snapshot"]["count"] == 2 && s["positions_synced"] == 2)
    })
    .await
    .unwrap();
    assert_eq!((&st["positions_synced"], &st["mt5_connected"]), (&json!(2), &json!(true)), "{st}");
    assert_eq!(st["positions_snapshot"]["complete"], true);
    assert_eq!(st["positions_snapshot"]["positions"][1]["stop_loss"], 2010.0);
    assert_eq!(st["positions_snapshot"]["positions"][1]["take_profit"], Value::Null);
    assert!(st["last_message_at"].is_string() && st["positions_synced_at"].is_string());

    // Live position prices reach every dashboard of the user, and feed the order price check.
    connector.send(json!({"type": "POSITION_UPDATE", "positions": [
        {"ticket": 4242, "symbol": "EURUSD", "order_type": "BUY", "volume": 0.3, "open_price": 1.1,
            "current_price": 1.1050, "stop_loss": null, "take_profit": null, "profit": 150.0}]}));
    let update = next_of(&mut dash, "POSITION_UPDATE", WAIT).await.unwrap();
    assert_eq!(update["connection_id"], conn.as_str());
    assert_eq!(update["positions"][0]["current_price"], 1.105);
    let far = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.5});
    let (s, b) = send(&gw, "POST", "/api/v1/trading/orders", &token, Some(far)).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("outside reasonable range"), "{b}");

    // MT5 goes down: the dashboards hear it and the status says so.
    connector.send(json!({"type": "MT5_STATUS", "connected": false, "broker_name": "Paper", "account_number": "1"}));
    let mt5 = next_of(&mut dash, "MT5_STATUS_UPDATE", WAIT).await.unwrap();
    assert_eq!((&mt5["connected"], &mt5["connection_id"]), (&json!(false), &json!(conn)));
    assert_eq!(status(&gw, &token, &conn).await["mt5_connected"], false);

    // The connector goes: CONNECTOR_DISCONNECTED, and the snapshot stays readable.
    connector.kill();
    let gone = next_of(&mut dash, "CONNECTOR_DISCONNECTED", WAIT).await.unwrap();
    assert_eq!(gone["connection_id"], conn.as_str());
    let st = status(&gw, &token, &conn).await;
    assert_eq!((&st["status"], &st["positions_snapshot"]["count"]), (&json!("offline"), &json!(2)));
}

#[tokio::test]
async fn dashboard_trade_commands_follow_the_order_rules() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, _conn, connector) = online_trader(&gw, "dash-trader@example.com").await.unwrap();
    connector.set_price("EURUSD", 1.1003);
    let mut dash = dashboard(&gw, &token).await;

    // A bad symbol is refused with the REST route's 400; nothing reaches the connector.
    say(
        &mut dash,
        json!({"type": "SEND_TRADE_COMMAND", "command_id": "bad-1", "action": "BUY", "symbol": "NOPE42",
        "lot_size": 0.1, "price": 1.0}),
    )
    .await;
    let r = next_of(&mut dash, "TRADE_COMMAND_RESULT", WAIT).await.unwrap();
    assert_eq!((&r["success"], &r["status"], &r["command_id"]), (&json!(false), &json!(400), &json!("bad-1")), "{r}");

    // A BUY goes through the order use case: written pending, TRADE_OPEN, the ack, ORDER_UPDATE open.
    let buy = json!({"type": "SEND_TRADE_COMMAND", "command_id": "dash-cmd-1", "action": "BUY", "symbol": "EURUSD",
        "lot_size": 0.2, "price": 1.1, "stop_loss": 1.09});
    say(&mut dash, buy.clone()).await;
    let r = next_of(&mut dash, "TRADE_COMMAND_RESULT", WAIT).await.unwrap();
    assert_eq!((&r["success"], &r["status"]), (&json!(true), &json!(201)), "{r}");
    let id = r["trade"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r["trade"]["source"], "websocket");
    let result = next_of(&mut dash, "TRADE_RESULT", WAIT).await.unwrap();
    assert_eq!((&result["order_id"], &result["success"]), (&json!(id), &json!(true)));
    let open = eventually(WAIT, || find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open")).await.unwrap();
    assert_eq!((&open["open_price"], &open["stop_loss"]), (&json!(1.1003), &json!(1.09)));

    // The same command again (a retry after a dropped socket): the first answer, one TRADE_OPEN in all.
    say(&mut dash, buy).await;
    let again = next_of(&mut dash, "TRADE_COMMAND_RESULT", WAIT).await.unwrap();
    assert_eq!(again["trade"]["id"], id.as_str());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let opens = connector.commands("TRADE_OPEN").await;
    assert_eq!(opens.len(), 1, "{opens:?}");

    // Close through the socket as well.
    say(
        &mut dash,
        json!({"type": "SEND_TRADE_COMMAND", "command_id": "dash-cmd-2", "action": "CLOSE", "order_id": id}),
    )
    .await;
    let r = next_of(&mut dash, "TRADE_COMMAND_RESULT", WAIT).await.unwrap();
    assert_eq!(r["status"], 200, "{r}");
    eventually(WAIT, || find_listed(&gw, &token, "/api/v1/trading/history", &id, "closed")).await.unwrap();
}

/// A dashboard's SEND_TRADE_COMMAND counts against the open-position limit like the REST route (the
/// original forwarded it raw): over the limit it is refused and nothing reaches the connector.
#[tokio::test]
async fn dashboard_trade_commands_over_the_limit_are_refused() {
    let mut env = TEST_ENV.to_vec();
    env.push(("NUSATRADE_MAX_OPEN_POSITIONS", "1"));
    let gw = Gateway::start_with_env(&[], &env).await.unwrap();
    let (token, _conn, connector) = online_trader(&gw, "limit-dash@example.com").await.unwrap();
    connector.set_price("EURUSD", 1.1);
    let mut dash = dashboard(&gw, &token).await;
    let buy = |id: &str| {
        json!({"type": "SEND_TRADE_COMMAND", "command_id": id, "action": "BUY", "symbol": "EURUSD",
            "lot_size": 0.1, "price": 1.1})
    };
    say(&mut dash, buy("first")).await;
    let r = next_of(&mut dash, "TRADE_COMMAND_RESULT", WAIT).await.unwrap();
    assert_eq!(r["status"], 201, "{r}");
    say(&mut dash, buy("second")).await;
    let r = next_of(&mut dash, "TRADE_COMMAND_RESULT", WAIT).await.unwrap();
    assert_eq!((&r["success"], &r["status"], &r["command_id"]), (&json!(false), &json!(400), &json!("second")), "{r}");
    assert!(r.to_string().contains("Maximum 1 open positions reached"), "{r}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connector.commands("TRADE_OPEN").await.len(), 1, "the refused command never left");
}

#[tokio::test]
async fn a_command_in_flight_when_the_connector_dies_is_resent_once_after_it_reconnects() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn) = trader(&gw, "reconnect@example.com").await.unwrap();

    // The connector receives the command and dies before acknowledging it.
    let first = TestConnector::connect_with(&gw, "/connector/ws", &token, &conn, false).await.unwrap();
    let order = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1});
    let (_, id) = place(&gw, &token, order).await;
    eventually(WAIT, || async { (!first.commands("TRADE_OPEN").await.is_empty()).then_some(()) }).await.unwrap();
    first.kill();
    eventually(WAIT, || async {
        let (_, list) = send(&gw, "GET", "/api/v1/brokers/connections", &token, None).await;
        (list[0]["is_active"] == false).then_some(())
    })
    .await
    .unwrap();
    let (_, still) = send(&gw, "GET", &format!("/api/v1/trading/orders/{id}"), &token, None).await;
    assert_eq!(still["status"], "pending", "no ack yet: {still}");

    // It comes back: the same TRADE_OPEN (same request id) arrives once, its ack opens the order.
    let second = TestConnector::connect(&gw, &token, &conn).await.unwrap();
    second.set_price("EURUSD", 1.1001);
    let open = eventually(WAIT, || find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open")).await.unwrap();
    assert_eq!(open["open_price"], 1.1001);
    let resent = second.commands("TRADE_OPEN").await;
    assert_eq!(resent.len(), 1, "{resent:?}");
    assert_eq!(resent[0]["request_id"], id.as_str());
    // The first frames after WELCOME: the resent command, then the re-sync.
    let kinds: Vec<Value> = second.received.lock().await.iter().take(3).map(|v| v["type"].clone()).collect();
    assert_eq!(kinds, [json!("TRADE_OPEN"), json!("GET_POSITIONS"), json!("GET_ACCOUNT")]);

    // Acknowledged: a later reconnect resends nothing.
    drop(second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = TestConnector::connect(&gw, &token, &conn).await.unwrap();
    eventually(WAIT, || async { (!third.commands("GET_ACCOUNT").await.is_empty()).then_some(()) }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(third.commands("TRADE_OPEN").await.is_empty());
}

#[tokio::test]
async fn a_flood_closes_the_socket() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let token = register(&gw, "flood@example.com").await.unwrap();
    let mut dash = dashboard(&gw, &token).await;
    // Default limits: 50 messages/s, bursts of 100. 400 at once is a flood.
    let started = std::time::Instant::now();
    for _ in 0..400 {
        if dash.send(Message::Text(r#"{"type":"PING"}"#.into())).await.is_err() {
            break;
        }
    }
    // The socket ends: an ERROR saying why, then the close — or, when the server closed while frames it no
    // longer reads were still arriving, a reset that may swallow them.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        let (mut pongs, mut error) = (0, None);
        loop {
            match dash.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("PONG") => pongs += 1,
                        Some("ERROR") => error = Some(v),
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return (pongs, error),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the server closed the flooding socket");
    let (pongs, error) = ended;
    let allowed = 100.0 + 50.0 * started.elapsed().as_secs_f64() + 1.0;
    assert!(
        f64::from(pongs) <= allowed,
        "answered {pongs} PINGs (at most {allowed:.0} allowed): the flood was not cut"
    );
    if let Some(e) = error {
        assert!(e["error"].as_str().unwrap().starts_with("Too many messages"), "{e}");
    }
    eventually(WAIT, || async { gw.log().contains("closing a WebSocket connection over its limits").then_some(()) })
        .await
        .unwrap();

    // Another connection of the same user is unaffected.
    let mut other = dashboard(&gw, &token).await;
    say(&mut other, json!({"type": "PING"})).await;
    next_of(&mut other, "PONG", WAIT).await.unwrap();
}
