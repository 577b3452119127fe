//! Orders end to end (issue 4): the real gateway binary, a registered user, a scripted connector on
//! the real WebSocket. place → TRADE_OPEN received → ack → OPEN in positions → close → TRADE_CLOSE →
//! ack → CLOSED in history with the right profit, for EURUSD, USDJPY and XAUUSD; idempotency, refusals
//! and the dashboard figures over HTTP.

use std::time::Duration;

use futures::StreamExt;
use nusatrade_tests::{
    Gateway, TEST_ENV, TestConnector, WsClient, broker_connection, dashboard, eventually, find_listed, http,
    online_trader, place, register, send, send_with, trader,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// One round trip: returns the closed trade from the history.
async fn round_trip(
    gw: &Gateway,
    token: &str,
    conn: &TestConnector,
    (symbol, lots, open, close): (&str, f64, f64, f64),
) -> Value {
    conn.set_price(symbol, open);
    let (placed, id) =
        place(gw, token, json!({"symbol": symbol, "order_type": "BUY", "lot_size": lots, "price": open})).await;
    assert_eq!(placed["trade"]["status"], "pending", "written pending before any ack");
    assert_eq!(placed["mt5_execution"]["success"], true);
    assert_eq!(placed["mt5_execution"]["request_id"], id.as_str());

    let pos = eventually(Duration::from_secs(5), || find_listed(gw, token, "/api/v1/trading/positions", &id, "open"))
        .await
        .expect("the ack makes it open");
    assert_eq!(pos["open_price"], open);
    assert!(pos["ticket"].as_u64().unwrap() > 500_000_000);
    let cmd = conn.commands("TRADE_OPEN").await.into_iter().find(|c| c["request_id"] == id.as_str()).unwrap();
    assert_eq!((&cmd["symbol"], &cmd["order_type"], &cmd["lot_size"]), (&json!(symbol), &json!("BUY"), &json!(lots)));
    assert!(cmd["comment"].as_str().unwrap().starts_with("NT-"));

    conn.set_price(symbol, close);
    // The dashboard sends the position id (the same id here) and a close price.
    let (s, closing) =
        send(gw, "PUT", &format!("/api/v1/trading/orders/{id}/close"), token, Some(json!({"close_price": close})))
            .await;
    assert_eq!(s, 200, "{closing}");
    assert_eq!(closing["trade"]["status"], "close_pending");
    let trade = eventually(Duration::from_secs(5), || find_listed(gw, token, "/api/v1/trading/history", &id, "closed"))
        .await
        .expect("the close ack closes it");
    assert_eq!(trade["close_price"], close);
    trade
}

#[tokio::test]
async fn orders_follow_the_connector_acks_end_to_end() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let token = register(&gw, "trader@example.com").await.unwrap();

    // No connector online: 503 with the original's message, nothing written.
    let body = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1});
    let (s, b) = send(&gw, "POST", "/api/v1/trading/orders", &token, Some(body.clone())).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["detail"], "MT5 connector is not online. Please ensure the connector is running.");

    let conn_id = broker_connection(&gw, &token).await.unwrap();
    let connector = TestConnector::connect(&gw, &token, &conn_id).await.unwrap();
    // A dashboard listening for updates.
    let mut browser = dashboard(&gw, &token).await;

    let eur = round_trip(&gw, &token, &connector, ("EURUSD", 1.0, 1.10000, 1.10500)).await;
    assert_eq!(eur["profit"], 500.0, "1 lot EURUSD +50 pips");
    let jpy = round_trip(&gw, &token, &connector, ("USDJPY", 1.0, 150.000, 150.500)).await;
    assert_eq!(jpy["profit"], 332.23, "50 000 JPY at 150.5");
    let xau = round_trip(&gw, &token, &connector, ("XAUUSD", 0.1, 2000.00, 2010.00)).await;
    assert_eq!(xau["profit"], 100.0, "0.1 lot × 100 oz × 10 USD");

    let closes = connector.commands("TRADE_CLOSE").await;
    assert_eq!(closes.len(), 3);
    assert!(closes.iter().all(|c| c["ticket"].as_u64().is_some()), "closes carry the ticket: {closes:?}");

    // The dashboard saw the order updates.
    let mut kinds = Vec::new();
    while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_millis(300), browser.next()).await {
        let v: Value = serde_json::from_str(&t).unwrap();
        kinds.push((v["type"].as_str().unwrap_or_default().to_owned(), v["order"]["status"].clone()));
    }
    assert!(kinds.iter().any(|(k, s)| k == "ORDER_UPDATE" && s == "open"), "{kinds:?}");
    assert!(kinds.iter().any(|(k, s)| k == "ORDER_UPDATE" && s == "closed"), "{kinds:?}");
    assert!(kinds.iter().any(|(k, _)| k == "TRADE_RESULT"), "{kinds:?}");

    let (s, stats) = send(&gw, "GET", "/api/v1/trading/dashboard/stats", &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        (&stats["total_trades"], &stats["total_pnl"], &stats["win_rate"], &stats["open_positions"]),
        (&json!(3), &json!(932.23), &json!(100.0), &json!(0))
    );
    assert_eq!(stats["has_live_connection"], false, "no account report yet: the original's fallback");
    assert_eq!(stats["balance"], 10932.23);

    // One order by id; another user's view of it is a 404.
    let id = eur["id"].as_str().unwrap();
    let (s, one) = send(&gw, "GET", &format!("/api/v1/trading/orders/{id}"), &token, None).await;
    assert_eq!((s, &one["status"]), (StatusCode::OK, &json!("closed")));
    let stranger = register(&gw, "stranger@example.com").await.unwrap();
    for (method, path) in
        [("GET", format!("/api/v1/trading/orders/{id}")), ("PUT", format!("/api/v1/trading/orders/{id}/close"))]
    {
        let (s, b) = send(&gw, method, &path, &stranger, Some(json!({}))).await;
        assert_eq!((s, &b["detail"]), (StatusCode::NOT_FOUND, &json!("Order not found")), "{method} {path}");
    }
    // Closing a closed order is a conflict, not a silent overwrite (the original recomputed it).
    let (s, b) = send(&gw, "PUT", &format!("/api/v1/trading/orders/{id}/close"), &token, Some(json!({}))).await;
    assert_eq!(s, 409, "{b}");
}

#[tokio::test]
async fn idempotency_validation_modify_and_pagination_over_http() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, _, connector) = online_trader(&gw, "careful@example.com").await.unwrap();
    connector.set_price("GBPUSD", 1.265);

    // The same Idempotency-Key twice: one command, the same answer.
    let body = json!({"symbol": "gbpusd", "order_type": "SELL", "lot_size": 0.2, "price": 1.265, "stop_loss": 1.27});
    let first = send_with(&gw, "POST", "/api/v1/trading/orders", &token, Some(body.clone()), Some("dash-1")).await;
    let again = send_with(&gw, "POST", "/api/v1/trading/orders", &token, Some(body.clone()), Some("dash-1")).await;
    assert_eq!(first.0, 201, "{}", first.1);
    assert_eq!(first, again);
    let id = first.1["trade"]["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(5), || find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open"))
        .await
        .unwrap();
    assert_eq!(connector.commands("TRADE_OPEN").await.len(), 1);
    let mut other = body.clone();
    other["lot_size"] = json!(0.3);
    let (s, _) = send_with(&gw, "POST", "/api/v1/trading/orders", &token, Some(other), Some("dash-1")).await;
    assert_eq!(s, 422, "same key, another body");

    // Bad input: 4xx with the original's messages, never a 500.
    for (bad, status, detail) in [
        (
            json!({"symbol": "EUR/USD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1}),
            400,
            json!("Invalid symbol format. Must be 3-10 alphanumeric characters (e.g., EURUSD, XAUUSD)"),
        ),
        (json!({"symbol": "ABCDEF", "order_type": "BUY", "lot_size": 0.1, "price": 1.1}), 400, Value::Null),
        (
            json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.001, "price": 1.1}),
            400,
            json!("Lot size must be at least 0.01"),
        ),
        (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 10.5, "price": 1.1}), 400, Value::Null),
        (
            json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.015, "price": 1.1}),
            400,
            json!("Lot size must be in 0.01 increments"),
        ),
        (
            json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1, "stop_loss": 1.2}),
            400,
            json!("Stop loss for BUY order must be below entry price"),
        ),
        (
            json!({"symbol": "EURUSD", "order_type": "SELL", "lot_size": 0.1, "price": 1.1, "take_profit": 1.2}),
            400,
            json!("Take profit for SELL order must be below entry price"),
        ),
        (json!({"symbol": "EURUSD", "order_type": "buy", "lot_size": 0.1, "price": 1.1}), 422, Value::Null),
        (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": "NaN", "price": 1.1}), 422, Value::Null),
        (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": -1, "price": 1.1}), 422, Value::Null),
        (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1}), 422, Value::Null),
    ] {
        let (s, b) = send(&gw, "POST", "/api/v1/trading/orders", &token, Some(bad.clone())).await;
        assert_eq!(s.as_u16(), status, "{bad} → {b}");
        if !detail.is_null() {
            assert_eq!(b["detail"], detail, "{bad}");
        }
    }
    let (s, b) = send(&gw, "PUT", "/api/v1/trading/orders/not-a-uuid/close", &token, None).await;
    assert_eq!((s.as_u16(), &b["detail"]), (400, &json!("Invalid order_id format. Must be a valid UUID.")));

    // Modify SL/TP: TRADE_MODIFY with the ticket; the ack applies the new stops.
    let (s, b) = send(
        &gw,
        "PUT",
        &format!("/api/v1/trading/orders/{id}/modify"),
        &token,
        Some(json!({"stop_loss": 1.275, "take_profit": 1.25})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let pos = eventually(Duration::from_secs(5), || async {
        find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open").await.filter(|p| p["stop_loss"] == 1.275)
    })
    .await
    .unwrap();
    assert_eq!(pos["take_profit"], 1.25);
    assert_eq!(connector.commands("TRADE_MODIFY").await[0]["stop_loss"], 1.275);

    // Trailing stop on the position; both `type` and `trailing_type` come back.
    let (s, b) = send(
        &gw,
        "PUT",
        &format!("/api/v1/trading/positions/{id}/trailing-stop"),
        &token,
        Some(json!({"trailing_type": "fixed_pips", "activation_pips": 10, "trail_distance_pips": 8})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["trailing_stop"]["type"], &b["trailing_stop"]["trailing_type"]),
        (&json!("fixed_pips"), &json!("fixed_pips"))
    );

    // Pagination: the cursor travels in X-Next-Cursor; bodies stay arrays.
    for _ in 0..4 {
        let (s, b) = send(
            &gw,
            "POST",
            "/api/v1/trading/orders",
            &token,
            Some(json!({"symbol": "GBPUSD", "order_type": "BUY", "lot_size": 0.01, "price": 1.265})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = gw.url("/api/v1/trading/history?limit=2");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = http().get(url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        cursor = r.headers().get("x-next-cursor").map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.into_iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 5);
    let (s, _) = send(&gw, "GET", "/api/v1/trading/history?limit=1000", &token, None).await;
    assert_eq!(s, 422);
    let (s, _) = send(&gw, "GET", "/api/v1/trading/history?cursor=garbage", &token, None).await;
    assert_eq!(s, 422);
    let (s, b) = send(&gw, "GET", "/api/v1/trading/positions?status=pending,open&symbol=GBPUSD", &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(b.as_array().unwrap().len(), 5);
}

/// The single endpoint of an API Gateway stage (`/ws` locally): a connector (it names its broker
/// connection) and a dashboard (it does not) share it; each gets its own channel's behaviour, and an
/// order placed over HTTP reaches the connector and its ack reaches the dashboard.
#[tokio::test]
async fn one_endpoint_serves_connectors_and_dashboards() {
    use futures::SinkExt;

    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn_id) = trader(&gw, "stage@example.com").await.unwrap();

    // A connector on /ws gets WELCOME for its AUTH (connector channel).
    let connector = TestConnector::connect_with(&gw, "/ws", &token, &conn_id, true).await.unwrap();
    connector.set_price("EURUSD", 1.1);
    // A dashboard on /ws: PING → PONG (the browser channel's reply, no timestamp), and AUTH is not a
    // browser message (no WELCOME).
    let (mut browser, _) = tokio_tungstenite::connect_async(gw.ws_url(&format!("/ws?token={token}"))).await.unwrap();
    browser.send(Message::Text(json!({"type": "AUTH"}).to_string().into())).await.unwrap();
    browser.send(Message::Text(json!({"type": "PING"}).to_string().into())).await.unwrap();
    // The browser channel answers: CONNECTIONS_STATUS on first contact, then PONG; never WELCOME.
    let first = next_json(&mut browser).await;
    assert_eq!(first["type"], "CONNECTIONS_STATUS", "{first}");
    loop {
        let v = next_json(&mut browser).await;
        assert_ne!(v["type"], "WELCOME", "the connector channel must not answer a dashboard");
        if v["type"] == "PONG" {
            break;
        }
    }

    // Someone else's broker connection on /ws: refused at the handshake.
    let other = register(&gw, "other@example.com").await.unwrap();
    let refused =
        tokio_tungstenite::connect_async(gw.ws_url(&format!("/ws?token={other}&connection_id={conn_id}"))).await;
    assert!(refused.is_err(), "a foreign broker connection is refused");
    // A bad token without connection_id (a dashboard): refused too.
    assert!(tokio_tungstenite::connect_async(gw.ws_url("/ws?token=not-a-token")).await.is_err());

    let body = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1});
    let (_, id) = place(&gw, &token, body).await;
    let update = loop {
        let v = next_json(&mut browser).await;
        if v["type"] == "ORDER_UPDATE" && v["order"]["status"] == "open" {
            break v;
        }
    };
    assert_eq!(update["order"]["id"], id.as_str());
    assert_eq!(connector.commands("TRADE_OPEN").await.len(), 1);
}

/// The next JSON text frame (5 s at most).
async fn next_json(ws: &mut WsClient) -> Value {
    loop {
        let msg =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame in time").unwrap().unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Parses Prometheus text exposition (format 0.0.4): `# HELP`/`# TYPE` comments and `name{labels} value` samples.
/// Returns the samples; panics on a malformed line.
fn prometheus_samples(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix('#') {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert!(matches!(words.first(), Some(&"HELP") | Some(&"TYPE")), "comment: {line}");
            if words[0] == "TYPE" {
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&words[2]), "{line}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample without value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "labels: {line}");
            for pair in series[name_end + 1..series.len() - 1].split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("label: {line}"));
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "label name: {line}");
                assert!(!v.contains('\n'), "{line}");
            }
        }
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("value: {line}")),
        };
        samples.push((series.to_owned(), v));
    }
    samples
}

async fn metrics_text(gw: &Gateway) -> String {
    let r = http().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    r.text().await.unwrap()
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples.iter().filter(|(s, _)| s == series).map(|(_, v)| *v).sum()
}

/// `/metrics` on the local gateway: Prometheus text that moves when orders are placed and acknowledged, by route
/// template (no ids in labels), and no user data at all.
#[tokio::test]
async fn metrics_move_with_orders_and_hold_no_user_data() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (token, conn_id, conn) = online_trader(&gw, "metrics-trader@example.com").await.unwrap();
    let before = prometheus_samples(&metrics_text(&gw).await);
    round_trip(&gw, &token, &conn, ("EURUSD", 0.1, 1.1, 1.101)).await;
    let text = eventually(Duration::from_secs(5), || async {
        let text = metrics_text(&gw).await;
        text.contains("order_ack_latency_seconds_bucket").then_some(text)
    })
    .await
    .expect("ack latency recorded");
    let after = prometheus_samples(&text);
    let sent = r#"orders_total{outcome="sent"}"#;
    assert_eq!(sample(&after, sent) - sample(&before, sent), 1.0, "{text}");
    assert!(sample(&after, "order_commands_sent_total") >= 2.0, "the open and the close went out");
    assert!(sample(&after, r#"order_acks_total{kind="open",result="applied"}"#) >= 1.0, "{text}");
    assert!(
        after.iter().any(|(s, v)| s.starts_with("http_requests_total{")
            && s.contains(r#"route="/api/v1/trading/orders/{id}/close""#)
            && *v >= 1.0),
        "requests counted by route template: {text}"
    );
    assert!(sample(&after, r#"websocket_connections{channel="/connector/ws"}"#) >= 1.0, "{text}");
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"), "{text}");
    // No user data: no e-mail, no order, user or connection id.
    assert!(!text.contains("metrics-trader") && !text.contains(&conn_id), "{text}");
    let uuid_like = text
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .any(|w| w.len() == 36 && w.matches('-').count() == 4);
    assert!(!uuid_like, "ids in metrics: {text}");
}

/// `/metrics` can be switched off, or moved to its own address.
#[tokio::test]
async fn metrics_can_be_switched_off_or_moved() {
    let gw = Gateway::start_with_env(&[], &[TEST_ENV, &[("NUSATRADE_METRICS", "false")]].concat()).await.unwrap();
    let r = http().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    drop(gw);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let gw = Gateway::start_with_env(&["--metrics-addr", &addr], TEST_ENV).await.unwrap();
    assert_eq!(http().get(gw.url("/metrics")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let text = eventually(Duration::from_secs(5), || async {
        http().get(format!("http://{addr}/metrics")).send().await.ok()?.text().await.ok()
    })
    .await
    .expect("metrics on their own address");
    prometheus_samples(&text);
}
