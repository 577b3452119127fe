//! WebSocket endpoints that behave like API Gateway WebSocket APIs:
//! - `$connect`: the handler sees the query string and accepts or rejects *before* the upgrade
//!   completes (a rejection is a plain HTTP status, as API Gateway answers);
//! - each text message is routed by its `type` field (`$request.body.type`) to the handler, whose
//!   optional route response is sent back to the sender;
//! - the server pushes to a connection id through the [`LocalPush`] registry (gone after close);
//! - idle timeout (no message from the client) and maximum connection duration close the socket;
//! - messages over 128 KB or frames over 32 KB close the connection (API Gateway's limits);
//! - `$disconnect` is delivered once, however the socket ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use nusatrade_app::telemetry;
use nusatrade_app::ws::{self, ConnectDecision, ConnectRequest, InboundMessage, WsHandler};
use serde_json::json;
use tokio::sync::watch;

use crate::adapters::{LocalPush, Outbound};

/// Per-socket read and write buffers. Protocol frames are small (heartbeats, acks, updates: well under
/// 1 KB); larger messages still arrive whole (the buffer is the read chunk, not a limit). tungstenite's
/// default of 128 KiB each cost ~120 KiB of memory per idle connection (measured with
/// `tests/examples/ws_fanout.rs`).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// API Gateway's WebSocket limits, configurable for tests and demos.
#[derive(Clone, Copy, Debug)]
pub struct WsLimits {
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    pub max_message_bytes: usize,
    pub max_frame_bytes: usize,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            idle_timeout: Duration::from_secs(600),
            max_duration: Duration::from_secs(7200),
            max_message_bytes: ws::MAX_MESSAGE_BYTES,
            max_frame_bytes: 32 * 1024,
        }
    }
}

#[derive(Clone)]
struct Endpoint {
    /// The path, as the `channel` label of the open-sockets gauge.
    channel: &'static str,
    handler: Arc<dyn WsHandler>,
    push: Arc<LocalPush>,
    limits: WsLimits,
    shutdown: watch::Receiver<bool>,
}

/// A router serving one WebSocket API at `path`.
pub fn endpoint(
    path: &'static str,
    handler: Arc<dyn WsHandler>,
    push: Arc<LocalPush>,
    limits: WsLimits,
    shutdown: watch::Receiver<bool>,
) -> Router {
    Router::new().route(path, get(upgrade)).with_state(Endpoint { channel: path, handler, push, limits, shutdown })
}

/// API Gateway style connection id: 16 characters of URL-safe base64.
fn new_connection_id() -> String {
    let bytes: [u8; 12] = rand_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rand_bytes() -> [u8; 12] {
    let u = uuid::Uuid::new_v4();
    let mut out = [0u8; 12];
    out.copy_from_slice(&u.as_bytes()[..12]);
    out
}

async fn upgrade(
    State(ep): State<Endpoint>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rej) => {
            return (rej.status(), Json(json!({ "detail": "This endpoint expects a WebSocket upgrade" })))
                .into_response();
        }
    };
    let connection_id = new_connection_id();
    let req = ConnectRequest {
        connection_id: connection_id.clone(),
        query: query.map(|Query(q)| q).unwrap_or_default(),
        source_ip: Some(peer.ip().to_string()),
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    };
    // Registered before the handler decides: whatever it (or work it queues, such as a dashboard's greeting) pushes
    // once it accepted is buffered and goes out first after the upgrade — API Gateway answers such early posts
    // 410, which the pushers retry — and a refusal drops it.
    let outbound = ep.push.register(&connection_id);
    match ep.handler.connect(req).await {
        ConnectDecision::Reject { status, reason } => {
            ep.push.unregister(&connection_id);
            tracing::info!(%connection_id, %peer, status, %reason, "websocket connect rejected");
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            (status, Json(json!({ "detail": reason }))).into_response()
        }
        ConnectDecision::Accept => {
            tracing::info!(%connection_id, %peer, "websocket connected");
            upgrade
                .max_message_size(ep.limits.max_message_bytes)
                .max_frame_size(ep.limits.max_frame_bytes)
                .read_buffer_size(SOCKET_BUFFER_BYTES)
                .write_buffer_size(SOCKET_BUFFER_BYTES)
                .on_failed_upgrade({
                    let ep = ep.clone();
                    let id = connection_id.clone();
                    move |e| {
                        tracing::warn!(connection_id = %id, error = %e, "websocket upgrade failed");
                        ep.push.unregister(&id);
                        let handler = ep.handler.clone();
                        tokio::spawn(async move { handler.disconnect(&id).await });
                    }
                })
                .on_upgrade(move |socket| run(socket, ep, connection_id, outbound))
        }
    }
}

#[derive(Debug)]
enum Ended {
    ClientClosed,
    ServerClosed,
    Idle,
    MaxDuration,
    TooLarge(String),
    Unsupported,
    Shutdown,
    Error(String),
}

async fn run(socket: WebSocket, mut ep: Endpoint, id: String, mut outbound: tokio::sync::mpsc::Receiver<Outbound>) {
    let open = metrics::gauge!(telemetry::WEBSOCKETS, "channel" => ep.channel);
    open.increment(1.0);
    let (mut tx, mut rx) = socket.split();
    let routes = ep.handler.routes();
    let max_duration = tokio::time::sleep(ep.limits.max_duration);
    tokio::pin!(max_duration);
    let idle = tokio::time::sleep(ep.limits.idle_timeout);
    tokio::pin!(idle);
    // What was pushed while the socket was being accepted (a dashboard's CONNECTIONS_STATUS) goes out before
    // anything the client says is answered.
    let (mut early, mut early_close) = (false, false);
    loop {
        match outbound.try_recv() {
            Ok(Outbound::Text(t)) => {
                early = true;
                if tx.feed(Message::Text(t.into())).await.is_err() {
                    break;
                }
            }
            Ok(Outbound::Close) => {
                early_close = true;
                break;
            }
            Err(_) => break,
        }
    }
    if early {
        let _ = tx.flush().await;
    }
    let ended = if early_close {
        Ended::ServerClosed
    } else {
        loop {
            tokio::select! {
                frame = rx.next() => match frame {
                    None => break Ended::ClientClosed,
                    Some(Err(e)) => {
                        let msg = e.to_string();
                        break if msg.contains("too long") || msg.contains("too big") || msg.contains("Space limit") {
                            Ended::TooLarge(msg)
                        } else {
                            Ended::Error(msg)
                        };
                    }
                    Some(Ok(Message::Text(text))) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + ep.limits.idle_timeout);
                        let body = text.to_string();
                        let route_key = ws::select_route(&body, routes);
                        let reply = ep.handler.message(InboundMessage { connection_id: id.clone(), route_key, body }).await;
                        if let Some(reply) = reply
                            && tx.send(Message::Text(reply.into())).await.is_err()
                        {
                            break Ended::ClientClosed;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        // Protocol pings are answered by the socket itself; they keep the link alive.
                        idle.as_mut().reset(tokio::time::Instant::now() + ep.limits.idle_timeout);
                    }
                    Some(Ok(Message::Binary(_))) => break Ended::Unsupported,
                    Some(Ok(Message::Close(_))) => break Ended::ClientClosed,
                },
                out = outbound.recv() => match out {
                    Some(Outbound::Text(t)) => {
                        // Whatever else is already queued goes out with it: one write (and one wake-up of
                        // the client) for an update and the messages that follow it, e.g. an ack's
                        // TRADE_RESULT and ORDER_UPDATE.
                        let mut sent = tx.feed(Message::Text(t.into())).await;
                        let mut close = false;
                        while sent.is_ok() {
                            match outbound.try_recv() {
                                Ok(Outbound::Text(t)) => sent = tx.feed(Message::Text(t.into())).await,
                                Ok(Outbound::Close) => {
                                    close = true;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if sent.is_err() || tx.flush().await.is_err() {
                            break Ended::ClientClosed;
                        }
                        if close {
                            break Ended::ServerClosed;
                        }
                    }
                    Some(Outbound::Close) | None => break Ended::ServerClosed,
                },
                _ = &mut idle => break Ended::Idle,
                _ = &mut max_duration => break Ended::MaxDuration,
                _ = ep.shutdown.changed() => break Ended::Shutdown,
            }
        }
    };
    ep.push.unregister(&id);
    let close = |code: u16, reason: &'static str| Message::Close(Some(CloseFrame { code, reason: reason.into() }));
    let frame = match &ended {
        Ended::ClientClosed | Ended::Error(_) => None,
        Ended::ServerClosed => Some(close(1000, "closed by server")),
        Ended::Idle => Some(close(1001, "Going away: idle timeout")),
        Ended::MaxDuration => Some(close(1001, "Going away: maximum connection duration")),
        Ended::TooLarge(_) => Some(close(1009, "Message too big")),
        Ended::Unsupported => Some(close(1003, "Binary frames are not supported")),
        Ended::Shutdown => Some(close(1001, "Server shutting down")),
    };
    if let Some(frame) = frame {
        let _ = tokio::time::timeout(Duration::from_secs(1), tx.send(frame)).await;
    }
    let detail = match &ended {
        Ended::TooLarge(m) | Ended::Error(m) => m.as_str(),
        _ => "",
    };
    tracing::info!(connection_id = %id, reason = ?ended, %detail, "websocket disconnected");
    open.decrement(1.0);
    ep.handler.disconnect(&id).await;
}
