//! API Gateway WebSocket events → the shared [`WsHandler`]s, the same handlers the local gateway
//! serves (`nusatrade_app::ws`).
//!
//! The `ws-connect`, `ws-disconnect` and `ws-message` functions each run [`run_channels`]: API Gateway
//! sends them `$connect`, `$disconnect` and every message route respectively (the event's
//! `requestContext.eventType` says which, so any of them answers any event correctly).
//!
//! * `$connect`: the query string (repeated names kept, as the original connector repeats `token`) goes
//!   to the handler; acceptance is a 200, a refusal the handler's status (401/403/503) with its reason
//!   as the body, which API Gateway returns to the client before the upgrade.
//! * message: the body (base64 frames decoded) goes to the handler; a reply is the response body, which
//!   API Gateway sends back to the sender on routes with a route response (`$default` in the template).
//! * `$disconnect`: the handler cleans up; the answer is ignored by API Gateway.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use lambda_runtime::{LambdaEvent, service_fn};
use nusatrade_app::ws::{ConnectDecision, ConnectRequest, InboundMessage, MAX_MESSAGE_BYTES, WsHandler, select_route};
#[cfg(all(feature = "dynamodb", feature = "s3", feature = "sqs", feature = "apigw"))]
use nusatrade_app::{
    auth::AuthConfig, channels::router::ChannelRouter, compose::Trading, reconcile::ReconcileSettings,
    trading::orders::TradingConfig,
};
use tracing::warn;

/// Answers one API Gateway WebSocket event with `handler`.
pub async fn handle(handler: &dyn WsHandler, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let ctx = &event.request_context;
    let Some(connection_id) = ctx.connection_id.clone().filter(|c| !c.is_empty()) else {
        warn!(event_type = ?ctx.event_type, "WebSocket event without a connection id");
        return response(400, Some("missing requestContext.connectionId".into()));
    };
    match ctx.event_type.as_deref() {
        Some("CONNECT") => {
            let query = if event.multi_value_query_string_parameters.is_empty() {
                &event.query_string_parameters
            } else {
                &event.multi_value_query_string_parameters
            };
            let req = ConnectRequest {
                connection_id,
                query: query.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
                source_ip: ctx.identity.source_ip.clone(),
                user_agent: ctx.identity.user_agent.clone(),
            };
            match handler.connect(req).await {
                ConnectDecision::Accept => response(200, None),
                ConnectDecision::Reject { status, reason } => response(i64::from(status), Some(reason)),
            }
        }
        Some("DISCONNECT") => {
            handler.disconnect(&connection_id).await;
            response(200, None)
        }
        _ => {
            let body = match message_body(&event) {
                Ok(b) => b,
                Err(reason) => {
                    let reply = serde_json::json!({"type": "ERROR", "error": reason}).to_string();
                    return response(200, Some(reply));
                }
            };
            let route_key = ctx.route_key.clone().unwrap_or_else(|| select_route(&body, handler.routes()));
            let reply = handler.message(InboundMessage { connection_id, route_key, body }).await;
            response(200, reply)
        }
    }
}

/// The message text: base64 frames decoded, at most [`MAX_MESSAGE_BYTES`], UTF-8.
fn message_body(event: &ApiGatewayWebsocketProxyRequest) -> Result<String, &'static str> {
    let raw = event.body.clone().unwrap_or_default();
    let text = if event.is_base64_encoded {
        let bytes = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|_| "Invalid message encoding")?;
        String::from_utf8(bytes).map_err(|_| "Invalid JSON format")?
    } else {
        raw
    };
    if text.len() > MAX_MESSAGE_BYTES {
        return Err("Message too large");
    }
    Ok(text)
}

fn response(status: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r.body = body.map(Body::Text);
    r
}

/// Serves `handler` on the Lambda runtime.
pub async fn run(handler: Arc<dyn WsHandler>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
        let handler = handler.clone();
        async move {
            let response = handle(handler.as_ref(), event.payload).await;
            crate::emf::flush();
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}

/// A WebSocket function: the ports it uses (DynamoDB, SQS for the reconcile queue, the API Gateway Management API),
/// the auth, trading and reconciliation settings from the environment (once per execution environment), both
/// channels ([`nusatrade_app::compose::Trading::channels`]) behind one [`ChannelRouter`], served on the Lambda
/// runtime.
#[cfg(all(feature = "dynamodb", feature = "s3", feature = "sqs", feature = "apigw"))]
pub async fn run_channels(function: &str) -> Result<(), lambda_runtime::Error> {
    // blobs: pages of a connector's price history are merged into the user's candle dataset (ml::import).
    let ports = crate::runtime::init(function, |p| p.store().queue().push().blobs()).await?;
    let auth = AuthConfig::from_env()?;
    let trading = Trading::new(&ports, TradingConfig::from_env()?, ReconcileSettings::from_env()?);
    // `$connect` cannot post: the dashboard's CONNECTIONS_STATUS is queued to the reconcile function, which pushes
    // it as soon as the connection exists.
    let (connector, browser) = trading.channels(nusatrade_app::trading::authenticator(&auth, &ports), &ports, false);
    tracing::info!(function, "WebSocket function initialised");
    run(Arc::new(ChannelRouter::new(connector, browser))).await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serde_json::{Value, json};

    use super::*;

    /// Records what it is given; refuses `$connect` without a token; echoes messages.
    #[derive(Default)]
    struct Recorder {
        connects: Mutex<Vec<ConnectRequest>>,
        messages: Mutex<Vec<InboundMessage>>,
        disconnects: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl WsHandler for Recorder {
        fn routes(&self) -> &[&'static str] {
            &["PING"]
        }
        async fn connect(&self, req: ConnectRequest) -> ConnectDecision {
            let ok = req.param("token").is_some();
            self.connects.lock().unwrap().push(req);
            if ok {
                ConnectDecision::Accept
            } else {
                ConnectDecision::Reject { status: 403, reason: "Missing token".into() }
            }
        }
        async fn message(&self, msg: InboundMessage) -> Option<String> {
            self.messages.lock().unwrap().push(msg.clone());
            Some(format!("echo:{}", msg.body))
        }
        async fn disconnect(&self, connection_id: &str) {
            self.disconnects.lock().unwrap().push(connection_id.to_owned());
        }
    }

    fn sample(name: &str) -> Value {
        let path = format!("{}/../../events/_samples/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    async fn call(h: &Recorder, event: Value) -> ApiGatewayProxyResponse {
        handle(h, serde_json::from_value(event).unwrap()).await
    }

    fn text(r: &ApiGatewayProxyResponse) -> Option<String> {
        match &r.body {
            Some(Body::Text(t)) => Some(t.clone()),
            None => None,
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[tokio::test]
    async fn connect_passes_every_query_value_and_maps_refusals() {
        let h = Recorder::default();
        let mut ev = sample("websocket-connect.json");
        ev["multiValueQueryStringParameters"]["token"] = json!(["first", "second"]);
        let r = call(&h, ev.clone()).await;
        assert_eq!((r.status_code, text(&r)), (200, None));
        let req = h.connects.lock().unwrap()[0].clone();
        assert_eq!(req.connection_id, "Qx2AbcXYZoECFaw=");
        assert_eq!(req.param("connection_id"), Some("5b1f7c2e-8d3a-4e6f-9a10-2c4b6d8e0f12"));
        let tokens: Vec<_> = req.query.iter().filter(|(k, _)| k == "token").map(|(_, v)| v.as_str()).collect();
        assert_eq!(tokens, ["first", "second"], "repeated parameters are kept, in order");
        assert_eq!(req.source_ip.as_deref(), Some("198.51.100.7"));

        // Only the single-value map (some test tools send just that): still read.
        let mut single = ev.clone();
        single.as_object_mut().unwrap().remove("multiValueQueryStringParameters");
        assert_eq!(call(&h, single).await.status_code, 200);
        assert_eq!(h.connects.lock().unwrap()[1].param("token").map(str::len), Some(146));

        ev.as_object_mut().unwrap().remove("multiValueQueryStringParameters");
        ev.as_object_mut().unwrap().remove("queryStringParameters");
        let r = call(&h, ev).await;
        assert_eq!((r.status_code, text(&r).as_deref()), (403, Some("Missing token")));
    }

    #[tokio::test]
    async fn messages_reach_the_handler_and_replies_are_the_body() {
        let h = Recorder::default();
        let ev = sample("websocket-message.json");
        let body = ev["body"].as_str().unwrap().to_owned();
        let r = call(&h, ev.clone()).await;
        assert_eq!((r.status_code, text(&r)), (200, Some(format!("echo:{body}"))));
        let got = h.messages.lock().unwrap()[0].clone();
        assert_eq!((got.connection_id.as_str(), got.route_key.as_str()), ("Qx2AbcXYZoECFaw=", "TRADE_RESULT"));

        // A binary frame arrives base64-encoded.
        let mut b64 = ev.clone();
        b64["body"] = json!(base64::engine::general_purpose::STANDARD.encode(r#"{"type":"PING"}"#));
        b64["isBase64Encoded"] = json!(true);
        b64["requestContext"].as_object_mut().unwrap().remove("routeKey");
        let r = call(&h, b64).await;
        assert_eq!(text(&r).as_deref(), Some(r#"echo:{"type":"PING"}"#));
        assert_eq!(h.messages.lock().unwrap()[1].route_key, "PING", "route selected from the body's type");

        // Not base64 / too large: the original's ERROR, the handler is not called.
        let mut bad = ev.clone();
        bad["body"] = json!("%%%");
        bad["isBase64Encoded"] = json!(true);
        let v: Value = serde_json::from_str(&text(&call(&h, bad).await).unwrap()).unwrap();
        assert_eq!(v, json!({"type": "ERROR", "error": "Invalid message encoding"}));
        let mut big = ev;
        big["body"] = json!("x".repeat(MAX_MESSAGE_BYTES + 1));
        let v: Value = serde_json::from_str(&text(&call(&h, big).await).unwrap()).unwrap();
        assert_eq!(v["error"], "Message too large");
        assert_eq!(h.messages.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn disconnect_and_malformed_events() {
        let h = Recorder::default();
        let r = call(&h, sample("websocket-disconnect.json")).await;
        assert_eq!(r.status_code, 200);
        assert_eq!(*h.disconnects.lock().unwrap(), ["Qx2AbcXYZoECFaw="]);

        let mut ev = sample("websocket-message.json");
        ev["requestContext"].as_object_mut().unwrap().remove("connectionId");
        assert_eq!(call(&h, ev).await.status_code, 400);
        assert!(h.messages.lock().unwrap().is_empty());
    }
}
