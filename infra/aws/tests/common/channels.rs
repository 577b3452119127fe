//! The WebSocket channels over API Gateway events on moto: a fresh table, the fake API Gateway Management endpoint
//! as the push port, the auth, order and broker use cases, and the events API Gateway sends (`events/_samples`).

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use nusatrade_app::auth::{AuthConfig, AuthService, Authenticator, RequestMeta};
use nusatrade_app::brokers::service::{BrokerService, ConnectionInput};
use nusatrade_app::channels::connector::channels;
use nusatrade_app::channels::router::ChannelRouter;
use nusatrade_app::ports::SystemClock;
use nusatrade_app::trading::orders::{OrderService, PlaceOrder, TradingConfig};
use nusatrade_aws::websocket::handle;
use nusatrade_aws::{ApiGwPush, AwsSettings, DynamoStore, build_ports_from};
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::money::{Lots, Side};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use super::fake_apigw::FakeApiGw;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";
pub const PW: &str = "Str0ng!pass";

pub struct World {
    pub router: ChannelRouter,
    pub auth: AuthService,
    pub authn: Authenticator,
    pub orders: OrderService,
    pub brokers: BrokerService,
    pub fake: FakeApiGw,
}

/// A world on a new table named after `prefix`.
pub async fn world(prefix: &str) -> World {
    let sdk = super::sdk().await;
    let table = super::unique(prefix);
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    let (fake, endpoint) = FakeApiGw::start().await;
    let apigw = nusatrade_aws::sdk_config_for_endpoint(&endpoint).await;
    let mut ports = build_ports_from(&sdk, &AwsSettings::for_endpoint(super::moto_endpoint()));
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

pub fn meta() -> RequestMeta {
    RequestMeta { ip: "10.0.0.1".into(), user_agent: "tests".into() }
}

impl World {
    /// Answers one API Gateway event.
    pub async fn send(&self, event: Value) -> ApiGatewayProxyResponse {
        handle(&self.router, serde_json::from_value(event).unwrap()).await
    }

    /// Every JSON frame pushed to a socket so far.
    pub fn frames(&self, ws: &str) -> Vec<Value> {
        self.fake.received(ws).iter().map(|f| serde_json::from_str(f).unwrap()).collect()
    }

    /// A broker connection of `user`.
    pub async fn connection(&self, user: Uuid) -> Uuid {
        let input = ConnectionInput { broker_name: "Sim".into(), account_number: Some("1001".into()), server: None };
        self.brokers.create(user, input).await.unwrap().record.id
    }
}

/// An event of `events/_samples`.
/// The order both channel tests place: buy 1 lot of EURUSD at 1.1, no stops, on the user's only connection.
pub fn eurusd_buy() -> PlaceOrder {
    PlaceOrder {
        instrument: lookup("EURUSD").unwrap(),
        side: Side::Buy,
        lots: Lots::new_unchecked(Decimal::ONE),
        price: "1.1".parse().unwrap(),
        stop_loss: None,
        take_profit: None,
        broker_connection_id: None,
        trailing_stop: None,
        source: "api",
    }
}

pub fn sample(name: &str) -> Value {
    let path = format!("{}/../../events/_samples/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `$connect` of socket `ws` with a query string (repeated keys kept in the multi-value map).
pub fn connect_event(ws: &str, query: &[(&str, &str)]) -> Value {
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

/// A message on socket `ws`, routed by its `type` as the WebSocket API's route selection does.
pub fn message_event(ws: &str, body: Value) -> Value {
    let mut ev = sample("websocket-message.json");
    ev["requestContext"]["connectionId"] = json!(ws);
    ev["requestContext"]["routeKey"] = body.get("type").cloned().unwrap_or(json!("$default"));
    ev["body"] = json!(body.to_string());
    ev
}

/// `$disconnect` of socket `ws`.
pub fn disconnect_event(ws: &str) -> Value {
    let mut ev = sample("websocket-disconnect.json");
    ev["requestContext"]["connectionId"] = json!(ws);
    ev
}
