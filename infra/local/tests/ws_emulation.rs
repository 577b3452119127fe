//! The gateway's API Gateway WebSocket emulation with a recording handler: `$connect` sees the query
//! and can reject, messages are routed by `type`, the server pushes to connection ids (gone after
//! close), and `$disconnect` arrives exactly once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use nusatrade_app::ports::PushOutcome;
use nusatrade_app::ws::{ConnectDecision, ConnectRequest, InboundMessage, WsHandler};
use nusatrade_local::gateway::{Gateway, GatewayConfig, WsApis, WsLimits};
use nusatrade_local::platform::LocalPlatform;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Recorder {
    connected: Mutex<Vec<ConnectRequest>>,
    messages: Mutex<Vec<InboundMessage>>,
    disconnected: Mutex<Vec<String>>,
}

#[async_trait]
impl WsHandler for Recorder {
    fn routes(&self) -> &[&'static str] {
        &["ECHO"]
    }
    async fn connect(&self, req: ConnectRequest) -> ConnectDecision {
        let decision = match req.param("token") {
            Some("good") => ConnectDecision::Accept,
            Some(_) => ConnectDecision::Reject { status: 401, reason: "Invalid or expired token".into() },
            None => ConnectDecision::Reject { status: 403, reason: "Missing token".into() },
        };
        self.connected.lock().unwrap().push(req);
        decision
    }
    async fn message(&self, msg: InboundMessage) -> Option<String> {
        self.messages.lock().unwrap().push(msg.clone());
        (msg.route_key == "ECHO").then_some(msg.body)
    }
    async fn disconnect(&self, connection_id: &str) {
        self.disconnected.lock().unwrap().push(connection_id.to_owned());
    }
}

async fn start(handler: Arc<Recorder>) -> (LocalPlatform, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let platform = LocalPlatform::open(dir.path()).unwrap();
    let apis = WsApis { connector: handler.clone(), client: handler.clone(), stage: handler };
    let config = GatewayConfig { addr: "127.0.0.1:0".parse().unwrap(), ws_limits: WsLimits::default(), metrics: None };
    let gw = Gateway::bind(&platform, apis, &config).await.unwrap();
    let base = format!("ws://{}", gw.local_addr().unwrap());
    tokio::spawn(gw.serve(std::future::pending()));
    (platform, base, dir)
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A recording gateway with one connector socket accepted on `/connector/ws`: the recorder, the platform, the
/// socket, its connection id and the platform's dir.
async fn one_connector() -> (Arc<Recorder>, LocalPlatform, Socket, String, tempfile::TempDir) {
    let rec = Arc::new(Recorder::default());
    let (platform, base, dir) = start(rec.clone()).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("{base}/connector/ws?token=good")).await.unwrap();
    let id = rec.connected.lock().unwrap()[0].connection_id.clone();
    (rec, platform, ws, id, dir)
}

/// The next frame is a close with code 1000.
async fn expect_normal_close(ws: &mut Socket) {
    match ws.next().await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn connect_rejections_carry_the_handler_status() {
    let rec = Arc::new(Recorder::default());
    let (_p, base, _d) = start(rec.clone()).await;
    for (q, status) in [("?token=bad", 401), ("", 403)] {
        match tokio_tungstenite::connect_async(format!("{base}/connector/ws{q}")).await.unwrap_err() {
            tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status().as_u16(), status),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(rec.connected.lock().unwrap().len(), 2);
    assert!(rec.disconnected.lock().unwrap().is_empty(), "no $disconnect for a refused $connect");
}

#[tokio::test]
async fn routing_push_and_disconnect_follow_api_gateway() {
    let rec = Arc::new(Recorder::default());
    let (platform, base, _d) = start(rec.clone()).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{base}/connector/client?token=good&x=1%202")).await.unwrap();
    let connect = rec.connected.lock().unwrap()[0].clone();
    assert_eq!(connect.param("x"), Some("1 2"), "query string is decoded");
    assert_eq!(connect.source_ip.as_deref(), Some("127.0.0.1"));
    let id = connect.connection_id.clone();

    // route selection on $request.body.type, route response back to the sender
    ws.send(Message::Text(r#"{"type":"ECHO","n":1}"#.into())).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed, Message::Text(r#"{"type":"ECHO","n":1}"#.into()));
    ws.send(Message::Text(r#"{"type":"OTHER"}"#.into())).await.unwrap();
    ws.send(Message::Text("plain text".into())).await.unwrap();
    eventually(|| rec.messages.lock().unwrap().len() == 3).await;
    let routes: Vec<_> = rec.messages.lock().unwrap().iter().map(|m| m.route_key.clone()).collect();
    assert_eq!(routes, ["ECHO", "$default", "$default"]);
    assert!(rec.messages.lock().unwrap().iter().all(|m| m.connection_id == id));

    // the server pushes to the connection id
    let push = platform.ports.push.clone();
    assert_eq!(push.post(&id, Bytes::from_static(br#"{"type":"WELCOME"}"#)).await.unwrap(), PushOutcome::Delivered);
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Text(r#"{"type":"WELCOME"}"#.into()));

    // the client leaves: $disconnect once, and the id is gone
    ws.close(None).await.unwrap();
    eventually(|| rec.disconnected.lock().unwrap().len() == 1).await;
    assert_eq!(rec.disconnected.lock().unwrap()[0], id);
    assert_eq!(push.post(&id, Bytes::from_static(b"{}")).await.unwrap(), PushOutcome::Gone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rec.disconnected.lock().unwrap().len(), 1, "$disconnect delivered exactly once");
}

#[tokio::test]
async fn server_side_close_disconnects_the_client() {
    let (rec, platform, mut ws, id, _d) = one_connector().await;
    platform.ports.push.close(&id).await.unwrap();
    expect_normal_close(&mut ws).await;
    eventually(|| rec.disconnected.lock().unwrap().len() == 1).await;
}

#[tokio::test]
async fn queued_pushes_arrive_in_order_before_a_queued_close() {
    let (_rec, platform, mut ws, id, _d) = one_connector().await;
    // Queued back to back (the socket task sends what is queued in one write), then the close.
    for n in 0..5 {
        let body = bytes::Bytes::from(format!(r#"{{"type":"UPDATE","n":{n}}}"#));
        platform.ports.push.post(&id, body).await.unwrap();
    }
    platform.ports.push.close(&id).await.unwrap();
    for n in 0..5 {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), format!(r#"{{"type":"UPDATE","n":{n}}}"#)),
            other => panic!("expected update {n}, got {other:?}"),
        }
    }
    expect_normal_close(&mut ws).await;
}
