//! The local gateway, end to end: the real binary over HTTP and WebSocket.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nusatrade_tests::{Gateway, TEST_ENV, broker_connection, http, register, trader};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::StatusCode};

#[tokio::test]
async fn health_answers_with_the_contract_shape_and_headers() {
    let gw = Gateway::start(&[]).await.unwrap();
    let resp = http().get(gw.url("/api/v1/health")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-request-id"], "abc-123");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["x-response-time"].to_str().unwrap().ends_with("ms"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert!(body["version"].is_string());
    let ts = body["timestamp"].as_str().unwrap();
    assert!(chrono_like(ts), "naive ISO timestamp, got {ts}");

    // the double mount and the other health routes
    for path in ["/api/v1/health/health", "/api/v1/health/live", "/api/v1/health/ready", "/api/v1/info"] {
        let r = http().get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().contains_key("x-request-id"), "{path} has a request id");
    }
    let ready: Value = http().get(gw.url("/api/v1/health/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready, serde_json::json!({"ready": true}));
    let detailed: Value = http().get(gw.url("/api/v1/health/detailed")).send().await.unwrap().json().await.unwrap();
    assert_eq!(detailed["components"]["database"]["status"], "healthy");
}

fn chrono_like(ts: &str) -> bool {
    // 2026-11-22T10:20:30.123456
    ts.len() == 26 && &ts[4..5] == "-" && &ts[10..11] == "T" && &ts[19..20] == "." && !ts.ends_with('Z')
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let gw = Gateway::start(&[]).await.unwrap();
    let r = http().get(gw.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap(), serde_json::json!({"detail": "Not Found"}));
    let r = http().post(gw.url("/api/v1/health")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.json::<Value>().await.unwrap(), serde_json::json!({"detail": "Method Not Allowed"}));
    // a plain GET on a WebSocket endpoint is not an upgrade
    let r = http().get(gw.url("/connector/ws?token=x")).send().await.unwrap();
    assert!(r.status().is_client_error());
    assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
}

/// A browser URL with a real token.
async fn client_url(gw: &Gateway) -> String {
    let token = register(gw, "browser@example.com").await.unwrap();
    gw.ws_url(&format!("/connector/client?token={token}"))
}

/// A connector URL with a real token and broker connection, the token repeated as the original
/// connector does.
async fn connector_url(gw: &Gateway, email: &str) -> String {
    let (token, conn) = trader(gw, email).await.unwrap();
    gw.ws_url(&format!("/connector/ws?token={token}&connection_id={conn}&token={token}"))
}

fn rejected_with(err: tokio_tungstenite::tungstenite::Error) -> StatusCode {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => resp.status(),
        other => panic!("expected an HTTP rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_connect_is_decided_before_the_upgrade() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    // Missing parameters: 403 like the original; a bad token: 401.
    for path in ["/connector/ws?connection_id=x", "/connector/client"] {
        let err = tokio_tungstenite::connect_async(gw.ws_url(path)).await.unwrap_err();
        assert_eq!(rejected_with(err), StatusCode::FORBIDDEN, "{path}");
    }
    for path in ["/connector/ws?token=bad&connection_id=x", "/connector/client?token=bad"] {
        let err = tokio_tungstenite::connect_async(gw.ws_url(path)).await.unwrap_err();
        assert_eq!(rejected_with(err), StatusCode::UNAUTHORIZED, "{path}");
    }
    // A valid token with someone else's (or no such) broker connection: 403.
    let owner = register(&gw, "owner@example.com").await.unwrap();
    let conn = broker_connection(&gw, &owner).await.unwrap();
    let other = register(&gw, "other@example.com").await.unwrap();
    for (token, id) in
        [(&other, conn.as_str()), (&owner, "not-a-uuid"), (&owner, "0190f0b2-7c1e-7a3d-9b2c-5e4f3a2b1c0d")]
    {
        let url = gw.ws_url(&format!("/connector/ws?token={token}&connection_id={id}"));
        let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
        assert_eq!(rejected_with(err), StatusCode::FORBIDDEN);
    }
    // A refresh token is not an access token: 401 on both channels.
    let login = http()
        .post(gw.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "owner@example.com", "password": "Str0ng!pass"}))
        .send()
        .await
        .unwrap();
    let refresh = login.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
    for path in
        [format!("/connector/ws?token={refresh}&connection_id={conn}"), format!("/connector/client?token={refresh}")]
    {
        let err = tokio_tungstenite::connect_async(gw.ws_url(&path)).await.unwrap_err();
        assert_eq!(rejected_with(err), StatusCode::UNAUTHORIZED, "refresh token on {}", &path[..16]);
    }
    let url = gw.ws_url(&format!("/connector/ws?token={owner}&connection_id={conn}"));
    tokio_tungstenite::connect_async(url).await.expect("the owner's connector is accepted");
}

async fn next_json<S>(ws: &mut S) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a message").unwrap().unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn websocket_messages_are_routed_by_type() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    // the original connector repeats the token parameter; that is accepted
    let (mut ws, _) = tokio_tungstenite::connect_async(connector_url(&gw, "conn@example.com").await).await.unwrap();
    ws.send(Message::Text(r#"{"type":"AUTH","client_type":"connector"}"#.into())).await.unwrap();
    let welcome = next_json(&mut ws).await;
    assert_eq!((&welcome["type"], &welcome["heartbeat_interval"]), (&Value::from("WELCOME"), &Value::from(30)));
    // first contact: a full re-sync and a latency probe follow WELCOME
    for kind in ["GET_POSITIONS", "GET_ACCOUNT", "PING"] {
        assert_eq!(next_json(&mut ws).await["type"], kind);
    }
    ws.send(Message::Text(r#"{"type":"PING"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "PONG");
    ws.send(Message::Text(r#"{"type":"HEARTBEAT"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "HEARTBEAT_ACK");
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await, serde_json::json!({"type": "ERROR", "error": "Invalid JSON format"}));
    ws.send(Message::Text(r#"{"type":"SOMETHING_ELSE"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["error"], "Unknown message type");
    ws.close(None).await.unwrap();
}

async fn close_code<S>(ws: &mut S, within: Duration) -> Option<u16>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("connection still open after {within:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code.into()),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return None,
        }
    }
}

#[tokio::test]
async fn idle_websocket_is_closed_and_activity_keeps_it_open() {
    let gw = Gateway::start_with_env(&["--ws-idle-timeout", "2"], TEST_ENV).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(client_url(&gw).await).await.unwrap();
    // the first message is answered after CONNECTIONS_STATUS
    ws.send(Message::Text(r#"{"type":"PING"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "CONNECTIONS_STATUS");
    assert_eq!(next_json(&mut ws).await["type"], "PONG");
    // activity every 0.5 s for 3 s keeps it open past the 2 s idle timeout
    let mut started = tokio::time::Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        started = tokio::time::Instant::now(); // before the PING: the server's idle time starts at its read, later
        ws.send(Message::Text(r#"{"type":"PING"}"#.into())).await.unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "PONG");
    }
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, Some(1001));
    assert!(started.elapsed() >= Duration::from_millis(1500), "closed early");
}

#[tokio::test]
async fn websocket_maximum_duration_is_enforced() {
    let gw = Gateway::start_with_env(&["--ws-max-duration", "2"], TEST_ENV).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(client_url(&gw).await).await.unwrap();
    let keep_busy = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::select! {
        code = close_code(&mut ws, Duration::from_secs(6)) => assert_eq!(code, Some(1001)),
        _ = keep_busy => unreachable!(),
    }
}

/// Socket buffers are small (4 KiB, for memory per idle connection) but are not a size limit: a frame of
/// 30 KB (under API Gateway's 32 KB frame limit) arrives whole and is answered.
#[tokio::test]
async fn frames_larger_than_the_socket_buffer_arrive_whole() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(client_url(&gw).await).await.unwrap();
    let big = format!(r#"{{"type":"PING","pad":"{}"}}"#, "x".repeat(30 * 1024));
    ws.send(Message::Text(big.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "CONNECTIONS_STATUS");
    assert_eq!(next_json(&mut ws).await["type"], "PONG");
}

#[tokio::test]
async fn oversized_websocket_message_closes_the_connection() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let req = connector_url(&gw, "big@example.com").await.into_client_request().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let big = format!(r#"{{"type":"PING","pad":"{}"}}"#, "x".repeat(129 * 1024));
    let _ = ws.send(Message::Text(big.into())).await;
    let code = close_code(&mut ws, Duration::from_secs(5)).await;
    assert!(matches!(code, Some(1009) | None), "closed with {code:?}");
}

#[tokio::test]
async fn sigterm_closes_websockets_and_exits_cleanly() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(client_url(&gw).await).await.unwrap();
    ws.send(Message::Text(r#"{"type":"PING"}"#.into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "CONNECTIONS_STATUS");
    assert_eq!(next_json(&mut ws).await["type"], "PONG");
    let closed = tokio::spawn(async move { close_code(&mut ws, Duration::from_secs(10)).await });
    let status = gw.terminate().await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(closed.await.unwrap(), Some(1001));
}

#[tokio::test]
async fn the_data_dir_persists_across_restarts_and_bad_addresses_fail_loudly() {
    let gw = Gateway::start(&[]).await.unwrap();
    assert!(gw.data_dir.path().join("data/store.redb").exists());
    assert!(gw.ready_after < Duration::from_secs(30));
    // a second gateway on the same port must fail with a clear message, not hang
    let port = gw.base.rsplit(':').next().unwrap().to_owned();
    let out = tokio::process::Command::new(nusatrade_tests::binary().unwrap())
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(gw.data_dir.path().join("other"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot listen on"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
