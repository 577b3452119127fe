//! The WebSocket functions' path in AWS, end to end without AWS: API Gateway WebSocket events (the
//! samples in events/_samples, with real tokens and connection ids) go through
//! `nusatrade_aws::websocket::handle` to the shared `ChannelRouter`, over DynamoDB on moto and the API
//! Gateway Management push adapter (`ApiGwPush`) against the local fake of the management API (moto's
//! is a stub that never answers 410). The same scenarios run over real sockets on the local gateway in
//! tests/tests/links.rs and orders.rs: the handlers are the same code.

mod common;

use nusatrade_app::trading::orders::routes::placed_status;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use common::channels::{World, connect_event, disconnect_event, eurusd_buy, message_event, world};
use nusatrade_app::auth::RequestMeta;
use nusatrade_app::channels::connector::channels;
use nusatrade_app::channels::router::ChannelRouter;
use nusatrade_app::ports::*;
use nusatrade_aws::websocket::handle;
use serde_json::{Value, json};
use uuid::Uuid;

impl World {
    /// A registered user's id and access token.
    async fn user(&self) -> (Uuid, String) {
        let meta = RequestMeta { ip: "10.0.0.1".into(), user_agent: "tests".into() };
        let email = format!("{}@example.com", common::unique("trader"));
        let (out, pair) = self.auth.register(&email, "Str0ng!pass", None, &meta).await.unwrap();
        (out.id.parse().unwrap(), pair.access_token)
    }

    fn types(&self, ws: &str) -> Vec<String> {
        self.frames(ws).iter().map(|f| f["type"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

fn body(r: &ApiGatewayProxyResponse) -> Option<Value> {
    match &r.body {
        Some(Body::Text(t)) => Some(serde_json::from_str(t).unwrap_or(Value::String(t.clone()))),
        _ => None,
    }
}

/// The status `$connect` answers for a query string, on a fresh socket.
async fn refused(w: &World, query: Vec<(&str, String)>) -> i64 {
    let ws = w.fake.open();
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.send(connect_event(&ws, &query)).await.status_code
}

#[tokio::test]
async fn handshakes_are_decided_like_the_local_gateway() {
    let w = world("ws").await;
    let (ana, token) = w.user().await;
    let (_, other_token) = w.user().await;
    let conn = w.connection(ana).await.to_string();

    assert_eq!(refused(&w, vec![("connection_id", conn.clone())]).await, 403, "no token");
    assert_eq!(refused(&w, vec![("token", "forged".into()), ("connection_id", conn.clone())]).await, 401);
    assert_eq!(refused(&w, vec![("token", other_token.clone()), ("connection_id", conn.clone())]).await, 403);
    assert_eq!(refused(&w, vec![("token", token.clone()), ("connection_id", Uuid::new_v4().to_string())]).await, 403);
    assert_eq!(refused(&w, vec![("token", "forged".into())]).await, 401, "a dashboard with a bad token");

    // The original connector repeats `token`: accepted.
    let ws = w.fake.open();
    let ev = connect_event(&ws, &[("token", &token), ("connection_id", &conn), ("token", &token)]);
    assert_eq!(w.send(ev).await.status_code, 200);
}

#[tokio::test]
async fn an_order_round_trip_through_api_gateway_events() {
    let w = world("ws").await;
    let (ana, token) = w.user().await;
    let conn = w.connection(ana).await;

    // $connect: a connector (names its broker connection) and a dashboard (does not).
    let connector = w.fake.open();
    let browser = w.fake.open();
    let r = w.send(connect_event(&connector, &[("token", &token), ("connection_id", &conn.to_string())])).await;
    assert_eq!(r.status_code, 200, "{:?}", body(&r));
    assert_eq!(w.send(connect_event(&browser, &[("token", &token)])).await.status_code, 200);

    // First message: WELCOME then the re-sync requests, pushed through the management API.
    let r = w.send(message_event(&connector, json!({"type": "AUTH", "token": token}))).await;
    assert_eq!(r.status_code, 200);
    let types = w.types(&connector);
    assert_eq!(types.first().map(String::as_str), Some("WELCOME"), "{types:?}");
    assert!(types.contains(&"GET_POSITIONS".to_owned()) && types.contains(&"GET_ACCOUNT".to_owned()), "{types:?}");
    assert_eq!(w.frames(&connector)[0]["heartbeat_interval"], 30);
    // A heartbeat is answered (route response or push: either reaches the connector).
    let r = w.send(message_event(&connector, json!({"type": "HEARTBEAT"}))).await;
    let acked =
        body(&r).is_some_and(|b| b["type"] == "HEARTBEAT_ACK") || w.types(&connector).contains(&"HEARTBEAT_ACK".into());
    assert!(acked, "HEARTBEAT_ACK");
    // The dashboard's first message: CONNECTIONS_STATUS, then PONG; never the connector's WELCOME.
    w.send(message_event(&browser, json!({"type": "PING"}))).await;
    let types = w.types(&browser);
    assert!(types.contains(&"CONNECTIONS_STATUS".to_owned()) && types.contains(&"PONG".to_owned()), "{types:?}");
    assert!(!types.contains(&"WELCOME".to_owned()));

    // An order placed by the use case reaches the connector as TRADE_OPEN through ApiGwPush.
    let user = w.authn.authenticate(&token).await.unwrap();
    let reply = w.orders.place(&user, eurusd_buy(), None).await.unwrap();
    assert_eq!(placed_status(&reply).as_u16(), 201, "{}", reply.body);
    let id = reply.body["trade"]["id"].as_str().unwrap().to_owned();
    let open = w.frames(&connector).into_iter().find(|f| f["type"] == "TRADE_OPEN").expect("TRADE_OPEN pushed");
    assert_eq!(open["request_id"], id.as_str());

    // The ack as an API Gateway message event: the order opens, the dashboard hears of it.
    let ack = json!({"type": "TRADE_RESULT", "request_id": id, "success": true, "ticket": 7001, "price": 1.1002, "retcode": 10009});
    assert_eq!(w.send(message_event(&connector, ack.clone())).await.status_code, 200);
    let order = w.orders.get(ana, id.parse().unwrap()).await.unwrap();
    assert_eq!((order.status.to_string(), order.ticket.map(|t| t.0)), ("open".to_owned(), Some(7001)));
    let updates: Vec<Value> = w.frames(&browser).into_iter().filter(|f| f["type"] == "ORDER_UPDATE").collect();
    assert!(updates.iter().any(|u| u["order"]["id"] == id.as_str() && u["order"]["status"] == "open"), "{updates:?}");
    // A redelivered ack (API Gateway/Lambda retry) changes nothing.
    w.send(message_event(&connector, ack)).await;
    assert_eq!(w.orders.get(ana, id.parse().unwrap()).await.unwrap().version, order.version);

    // A dashboard that went away: the next fan-out gets 410 and forgets it; the connector's
    // $disconnect tells the remaining dashboard.
    let second = w.fake.open();
    assert_eq!(w.send(connect_event(&second, &[("token", &token)])).await.status_code, 200);
    w.fake.hang_up(&browser);
    assert_eq!(w.send(disconnect_event(&connector)).await.status_code, 200);
    assert!(w.types(&second).contains(&"CONNECTOR_DISCONNECTED".to_owned()), "{:?}", w.types(&second));
    let status = w.brokers.status(ana, conn).await.unwrap();
    assert_eq!(status.connection.link, None, "the connector link is gone after $disconnect");
}

/// Link status at once (issue #14): `$connect` cannot post, so the dashboard channel queues a greeting on the
/// reconcile queue (SQS on moto) and the reconcile consumer pushes CONNECTIONS_STATUS once API Gateway has made the
/// connection — here the fake management API answers 410 until the test opens the socket, as API Gateway does
/// during `$connect`.
#[tokio::test]
async fn a_dashboard_gets_its_connections_status_within_a_second_of_connecting() {
    use nusatrade_app::jobs::QueueConsumer;
    use nusatrade_app::reconcile::{ReconcileConsumer, ReconcileService, ReconcileSettings};

    let w = world("ws").await;
    let sdk = common::sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs.create_queue().queue_name(common::unique("reconcile")).send().await.unwrap().queue_url.unwrap();
    let queue: Arc<dyn Queue> = Arc::new(nusatrade_aws::SqsQueue::new(sqs, [("reconcile".into(), url)].into()));
    let mut orders = w.orders.clone();
    orders.ack_timeouts = None;
    let reconcile = ReconcileService::new(orders, queue.clone(), ReconcileSettings::default());
    let (connector, browser) = channels(w.authn.clone(), w.orders.clone(), w.brokers.clone());
    let browser = Arc::new(
        nusatrade_app::channels::browser::BrowserChannel::clone(&browser).with_greeter(reconcile.greeter(false)),
    );
    let router = ChannelRouter::new(connector, browser);
    let consumer = ReconcileConsumer { service: reconcile };
    let (ana, token) = w.user().await;
    let conn = w.connection(ana).await;

    // Connect: accepted, and the socket exists only after the answer.
    let started = std::time::Instant::now();
    let ws = format!("{}=", &Uuid::new_v4().simple().to_string()[..14]);
    let r = handle(&router, serde_json::from_value(connect_event(&ws, &[("token", &token)])).unwrap()).await;
    assert_eq!(r.status_code, 200);
    w.fake.open_as(&ws);
    // The reconcile function's SQS event: one greeting, which pushes the status.
    let msgs = queue
        .receive("reconcile", 10, std::time::Duration::from_secs(30), std::time::Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(msgs.len(), 1, "one greeting queued");
    assert!(msgs[0].body.contains("greet_dashboard"), "{}", msgs[0].body);
    consumer.handle(&msgs[0]).await.unwrap();
    let frames = w.frames(&ws);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "CONNECTIONS_STATUS");
    assert_eq!(frames[0]["connections"], json!([]), "no connector online yet");
    let elapsed = started.elapsed();
    // Unasked and at once (the original's first PING comes after 30 s); the bound is loose: every step goes
    // through moto, which serialises requests (the local end-to-end test, `links.rs`, holds 5 s).
    assert!(elapsed < std::time::Duration::from_secs(10), "CONNECTIONS_STATUS after {elapsed:?}");
    // Redelivered (SQS at least once): nothing doubled. The first PING then gets only its PONG.
    consumer.handle(&msgs[0]).await.unwrap();
    let r = handle(&router, serde_json::from_value(message_event(&ws, json!({"type": "PING"}))).unwrap()).await;
    let pong = body(&r).map(|b| b["type"] == "PONG").unwrap_or(false) || w.types(&ws).contains(&"PONG".to_owned());
    assert!(pong);
    assert_eq!(w.types(&ws).iter().filter(|t| *t == "CONNECTIONS_STATUS").count(), 1, "sent once");

    // A socket that is not up yet when the greeting runs: tried a few times, then re-queued (1 s) and delivered.
    let late = format!("{}=", &Uuid::new_v4().simple().to_string()[..14]);
    let connector_ws = w.fake.open();
    let r = handle(
        &router,
        serde_json::from_value(connect_event(
            &connector_ws,
            &[("token", &token), ("connection_id", &conn.to_string())],
        ))
        .unwrap(),
    )
    .await;
    assert_eq!(r.status_code, 200);
    handle(
        &router,
        serde_json::from_value(message_event(&connector_ws, json!({"type": "AUTH", "token": token}))).unwrap(),
    )
    .await;
    assert_eq!(
        handle(&router, serde_json::from_value(connect_event(&late, &[("token", &token)])).unwrap()).await.status_code,
        200
    );
    let msgs = queue
        .receive("reconcile", 10, std::time::Duration::from_secs(30), std::time::Duration::from_secs(2))
        .await
        .unwrap();
    let greeting = msgs.iter().find(|m| m.body.contains(&late)).expect("greeting queued");
    consumer.handle(greeting).await.unwrap();
    assert!(w.frames(&late).is_empty());
    w.fake.open_as(&late);
    let again = queue
        .receive("reconcile", 10, std::time::Duration::from_secs(30), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let retry = again.iter().find(|m| m.body.contains(&late)).expect("greeting re-queued");
    assert!(retry.body.contains(r#""attempt":1"#), "{}", retry.body);
    consumer.handle(retry).await.unwrap();
    let frames = w.frames(&late);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "CONNECTIONS_STATUS");
    assert_eq!(frames[0]["connections"][0]["connection_id"], conn.to_string(), "the connector online now");
}
