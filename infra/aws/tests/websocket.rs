//! The WebSocket functions' path in AWS, end to end without AWS: API Gateway WebSocket events (the
//! samples in events/_samples, with real tokens and connection ids) go through
//! `nusatrade_aws::websocket::handle` to the shared `ChannelRouter`, over DynamoDB on moto and the API
//! Gateway Management push adapter (`ApiGwPush`) against the local fake of the management API (moto's
//! is a stub that never answers 410). The same scenarios run over real sockets on the local gateway in
//! tests/tests/links.rs and orders.rs: the handlers are the same code.

mod common;

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use common::fake_apigw::FakeApiGw;
use nusatrade_app::auth::{AuthConfig, AuthService, Authenticator, RequestMeta};
use nusatrade_app::brokers::service::{BrokerService, ConnectionInput};
use nusatrade_app::connector::channels::channels;
use nusatrade_app::connector::router::ChannelRouter;
use nusatrade_app::ports::*;
use nusatrade_app::trading::orders::{OrderService, PlaceOrder, TradingConfig};
use nusatrade_aws::websocket::handle;
use nusatrade_aws::{ApiGwPush, AwsSettings, DynamoStore, build_ports_from};
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::money::{Lots, Side};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

const SECRET: &str = "test-secret-test-secret-test-secret!";

struct World {
    router: ChannelRouter,
    auth: AuthService,
    authn: Authenticator,
    orders: OrderService,
    brokers: BrokerService,
    fake: FakeApiGw,
}

async fn world() -> World {
    let sdk = common::sdk().await;
    let table = common::unique("ws");
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    let (fake, endpoint) = FakeApiGw::start().await;
    let apigw = nusatrade_aws::sdk_config_for_endpoint(&endpoint).await;
    let mut ports = build_ports_from(&sdk, &AwsSettings::for_endpoint(common::moto_endpoint()));
    ports.store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table, Arc::new(SystemClock)));
    ports.push = Arc::new(ApiGwPush::from_sdk(&apigw, &endpoint));
    let mut config = AuthConfig::for_tests(SECRET);
    config.require_email_verification = false;
    let auth = AuthService::new(config, ports.clone()).unwrap();
    let authn = auth.authenticator();
    let orders = OrderService::new(&ports, TradingConfig::default());
    let brokers = BrokerService::new(&ports);
    let (connector, browser) = channels(authn.clone(), orders.clone(), brokers.clone());
    World { router: ChannelRouter::new(connector, browser), auth, authn, orders, brokers, fake }
}

impl World {
    /// A registered user's id and access token.
    async fn user(&self) -> (Uuid, String) {
        let meta = RequestMeta { ip: "10.0.0.1".into(), user_agent: "tests".into() };
        let email = format!("{}@example.com", common::unique("trader"));
        let (out, pair) = self.auth.register(&email, "Str0ng!pass", None, &meta).await.unwrap();
        (out.id.parse().unwrap(), pair.access_token)
    }

    async fn connection(&self, user: Uuid) -> Uuid {
        let input = ConnectionInput { broker_name: "Sim".into(), account_number: Some("1001".into()), server: None };
        self.brokers.create(user, input).await.unwrap().record.id
    }

    async fn send(&self, event: Value) -> ApiGatewayProxyResponse {
        handle(&self.router, serde_json::from_value(event).unwrap()).await
    }

    /// Every JSON frame pushed to a socket so far.
    fn frames(&self, ws: &str) -> Vec<Value> {
        self.fake.received(ws).iter().map(|f| serde_json::from_str(f).unwrap()).collect()
    }

    fn types(&self, ws: &str) -> Vec<String> {
        self.frames(ws).iter().map(|f| f["type"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/_samples/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn connect_event(ws: &str, query: &[(&str, &str)]) -> Value {
    let mut ev = sample("websocket-connect.json");
    ev["requestContext"]["connectionId"] = json!(ws);
    let mut single = serde_json::Map::new();
    let mut multi = serde_json::Map::new();
    for (k, v) in query {
        single.insert((*k).into(), json!(v));
        multi.entry(k.to_string()).or_insert_with(|| json!([])).as_array_mut().unwrap().push(json!(v));
    }
    ev["queryStringParameters"] = Value::Object(single);
    ev["multiValueQueryStringParameters"] = Value::Object(multi);
    ev
}

fn message_event(ws: &str, body: Value) -> Value {
    let mut ev = sample("websocket-message.json");
    ev["requestContext"]["connectionId"] = json!(ws);
    ev["requestContext"]["routeKey"] = body.get("type").cloned().unwrap_or(json!("$default"));
    ev["body"] = json!(body.to_string());
    ev
}

fn disconnect_event(ws: &str) -> Value {
    let mut ev = sample("websocket-disconnect.json");
    ev["requestContext"]["connectionId"] = json!(ws);
    ev
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
    let w = world().await;
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
    let w = world().await;
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
    let place = PlaceOrder {
        instrument: lookup("EURUSD").unwrap(),
        side: Side::Buy,
        lots: Lots::new_unchecked(Decimal::ONE),
        price: "1.1".parse().unwrap(),
        stop_loss: None,
        take_profit: None,
        broker_connection_id: None,
        trailing_stop: None,
        source: "api",
    };
    let reply = w.orders.place(&user, place, None).await.unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
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
