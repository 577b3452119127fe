//! The two WebSocket APIs as [`WsHandler`]s (contract §3.2, §3.3; design §5), shared by the Lambda
//! WebSocket functions and the local gateway:
//!
//! * [`ConnectorChannel`] (`/connector/ws?token=…&connection_id=…`): `$connect` verifies an *access*
//!   token with a live session and that the broker connection belongs to the token's user (401/403
//!   before the upgrade otherwise), then records the link. API Gateway cannot post from `$connect`, so
//!   `WELCOME` answers the connector's first message (`AUTH`, which the original connector always sends,
//!   or a heartbeat). `TRADE_RESULT` goes to the order use case (acks applied by conditional writes) and
//!   is relayed to the user's dashboards; account reports feed the margin check and the dashboard.
//! * [`BrowserChannel`] (`/connector/client?token=…`): `PING` → `PONG`; order changes and connector
//!   events fan out to every dashboard of the user.
//!
//! Messages from a connection only ever touch its own user's data: the user comes from the connection
//! record written at `$connect`, never from the message.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tracing::{info, warn};
use uuid::Uuid;

use super::protocol::{TradeResult, decimal};
use super::registry::{AccountSnapshot, ConnectorRegistry, WsConnection};
use crate::auth::Authenticator;
use crate::brokers::service::BrokerService;
use crate::trading::orders::OrderService;
use crate::ws::{ConnectDecision, ConnectRequest, InboundMessage, WsHandler};

/// The heartbeat interval advertised in `WELCOME` (the original's 30 s).
pub const HEARTBEAT_INTERVAL_SECS: u64 = 30;

fn now_iso() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn error_reply(msg: &str) -> Option<String> {
    Some(json!({"type": "ERROR", "error": msg}).to_string())
}

fn reject(status: u16, reason: &str) -> ConnectDecision {
    ConnectDecision::Reject { status, reason: reason.into() }
}

/// Parses a frame into its JSON object and `type`.
fn parse(body: &str) -> Result<(Map<String, Value>, String), &'static str> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(m)) => {
            let kind = m.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
            Ok((m, kind))
        }
        Ok(_) => Err("Invalid message format"),
        Err(_) => Err("Invalid JSON format"),
    }
}

/// `/connector/ws`.
#[derive(Clone)]
pub struct ConnectorChannel {
    pub auth: Authenticator,
    pub registry: ConnectorRegistry,
    pub orders: OrderService,
    pub brokers: BrokerService,
}

impl ConnectorChannel {
    pub fn new(auth: Authenticator, orders: OrderService, brokers: BrokerService) -> Self {
        ConnectorChannel { auth, registry: orders.registry.clone(), orders, brokers }
    }

    async fn account(&self, conn: &WsConnection, m: &Map<String, Value>) -> Option<String> {
        let broker = conn.broker_connection_id?;
        let src = m.get("account").and_then(Value::as_object).unwrap_or(m);
        let n = |k: &str| src.get(k).and_then(decimal);
        let (Some(balance), Some(equity)) = (n("balance"), n("equity")) else {
            return error_reply("balance and equity are required");
        };
        let snapshot = AccountSnapshot {
            broker_connection_id: broker,
            balance,
            equity,
            margin: n("margin").unwrap_or_default(),
            free_margin: n("free_margin").unwrap_or(equity),
            profit: n("profit").unwrap_or(Decimal::ZERO),
            leverage: src.get("leverage").and_then(Value::as_u64).and_then(|l| u32::try_from(l).ok()),
            currency: src.get("currency").and_then(Value::as_str).and_then(|c| c.parse().ok()),
            reported_at: self.registry.clock.now(),
        };
        if let Err(e) = self.registry.save_account(conn.user_id, &snapshot).await {
            warn!(error = %e, "could not store the account snapshot");
        }
        let mut relay = json!({
            "type": "ACCOUNT_UPDATE", "connection_id": broker,
            "balance": src.get("balance"), "equity": src.get("equity"), "margin": src.get("margin"),
            "free_margin": src.get("free_margin"), "profit": src.get("profit"),
        });
        if let Some(l) = src.get("leverage") {
            relay["leverage"] = l.clone();
        }
        self.orders.broadcast(conn.user_id, &relay).await;
        None
    }

    async fn trade_result(&self, conn: &WsConnection, m: &Map<String, Value>) -> Option<String> {
        let result = match TradeResult::parse(m) {
            Ok(r) => r,
            Err(e) => return error_reply(&e.to_string()),
        };
        let mut relay = m.clone();
        relay.insert("type".into(), "TRADE_RESULT".into());
        relay.insert("connection_id".into(), json!(conn.broker_connection_id));
        if let Some(rid) = result.command() {
            relay.insert("order_id".into(), json!(rid.order_id));
        }
        match self.orders.apply_trade_result_and_relay(conn.user_id, &result, Some(Value::Object(relay))).await {
            Ok(outcome) => info!(ws = %conn.ws_connection_id, ?outcome, "TRADE_RESULT"),
            // The ack is not lost: the order stays in flight and reconciliation reads MT5.
            Err(e) => warn!(ws = %conn.ws_connection_id, error = %e, "could not apply TRADE_RESULT"),
        }
        None
    }
}

#[async_trait]
impl WsHandler for ConnectorChannel {
    fn routes(&self) -> &[&'static str] {
        &["AUTH", "HEARTBEAT", "PING", "PONG", "TRADE_RESULT", "ACCOUNT_INFO", "ACCOUNT_UPDATE", "ERROR"]
    }

    async fn connect(&self, req: ConnectRequest) -> ConnectDecision {
        let Some(token) = req.param("token").filter(|t| !t.is_empty()) else {
            return reject(403, "Missing token");
        };
        let user = match self.auth.authenticate(token).await {
            Ok(u) => u,
            Err(_) => return reject(401, "Invalid or expired token"),
        };
        let Some(broker) = req.param("connection_id").and_then(|c| Uuid::try_parse(c.trim()).ok()) else {
            return reject(403, "Connection not found or access denied");
        };
        match self.brokers.owns(user.id, broker).await {
            Ok(true) => {}
            Ok(false) => return reject(403, "Connection not found or access denied"),
            Err(e) => {
                warn!(error = %e, "connector $connect: store unavailable");
                return reject(503, "Service unavailable");
            }
        }
        match self.registry.register_connector(&req.connection_id, user.id, &user.email, broker).await {
            Ok(replaced) => {
                info!(ws = %req.connection_id, user = %user.id, broker = %broker, ?replaced, "connector connected");
                if let Some(old) = replaced {
                    // The newer connector holds the broker connection; the older socket is closed.
                    let _ = self.orders.push.close(&old).await;
                }
                if let Err(e) = self.brokers.mark_connected(user.id, broker, self.registry.clock.now()).await {
                    warn!(error = %e, "could not mark the broker connection active");
                }
                ConnectDecision::Accept
            }
            Err(e) => {
                warn!(error = %e, "connector $connect: cannot record the link");
                reject(503, "Service unavailable")
            }
        }
    }

    async fn message(&self, msg: InboundMessage) -> Option<String> {
        let (m, kind) = match parse(&msg.body) {
            Ok(v) => v,
            Err(e) => return error_reply(e),
        };
        let conn = match self.registry.connection(&msg.connection_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return error_reply("Unknown connection: reconnect"),
            Err(e) => {
                warn!(error = %e, "connector message: store unavailable");
                return error_reply("Service unavailable");
            }
        };
        match kind.as_str() {
            "AUTH" => Some(
                json!({
                    "type": "WELCOME",
                    "message": "Connector connected successfully",
                    "connection_id": conn.broker_connection_id,
                    "heartbeat_interval": HEARTBEAT_INTERVAL_SECS,
                })
                .to_string(),
            ),
            "HEARTBEAT" => Some(json!({"type": "HEARTBEAT_ACK", "timestamp": now_iso()}).to_string()),
            "PING" => Some(json!({"type": "PONG", "timestamp": now_iso()}).to_string()),
            "PONG" => None,
            "TRADE_RESULT" => self.trade_result(&conn, &m).await,
            "ACCOUNT_INFO" | "ACCOUNT_UPDATE" => self.account(&conn, &m).await,
            "ERROR" => {
                let error = m.get("error").and_then(Value::as_str).unwrap_or("Unknown error");
                let relay =
                    json!({"type": "CONNECTOR_ERROR", "connection_id": conn.broker_connection_id, "error": error});
                self.orders.broadcast(conn.user_id, &relay).await;
                None
            }
            _ => error_reply("Unknown message type"),
        }
    }

    async fn disconnect(&self, connection_id: &str) {
        match self.registry.unregister(connection_id).await {
            Ok(Some(conn)) => {
                info!(ws = %connection_id, user = %conn.user_id, "connector disconnected");
                if let Some(broker) = conn.broker_connection_id
                    && let Err(e) = self.brokers.mark_disconnected(conn.user_id, broker).await
                {
                    warn!(error = %e, "could not mark the broker connection inactive");
                }
                let msg = json!({"type": "CONNECTOR_DISCONNECTED", "connection_id": conn.broker_connection_id, "timestamp": now_iso()});
                self.orders.broadcast(conn.user_id, &msg).await;
            }
            Ok(None) => {}
            Err(e) => warn!(ws = %connection_id, error = %e, "could not remove the connector link"),
        }
    }
}

/// `/connector/client`.
#[derive(Clone)]
pub struct BrowserChannel {
    pub auth: Authenticator,
    pub registry: ConnectorRegistry,
}

impl BrowserChannel {
    pub fn new(auth: Authenticator, registry: ConnectorRegistry) -> Self {
        BrowserChannel { auth, registry }
    }
}

#[async_trait]
impl WsHandler for BrowserChannel {
    fn routes(&self) -> &[&'static str] {
        &["PING"]
    }

    async fn connect(&self, req: ConnectRequest) -> ConnectDecision {
        let Some(token) = req.param("token").filter(|t| !t.is_empty()) else {
            return reject(403, "Missing token");
        };
        let user = match self.auth.authenticate(token).await {
            Ok(u) => u,
            Err(_) => return reject(401, "Invalid or expired token"),
        };
        match self.registry.register_browser(&req.connection_id, user.id, &user.email).await {
            Ok(()) => ConnectDecision::Accept,
            Err(e) => {
                warn!(error = %e, "browser $connect: cannot record the connection");
                reject(503, "Service unavailable")
            }
        }
    }

    async fn message(&self, msg: InboundMessage) -> Option<String> {
        match parse(&msg.body) {
            Ok((_, kind)) if kind == "PING" => Some(json!({"type": "PONG"}).to_string()),
            Ok(_) => None,
            Err(e) => error_reply(e),
        }
    }

    async fn disconnect(&self, connection_id: &str) {
        if let Err(e) = self.registry.unregister(connection_id).await {
            warn!(ws = %connection_id, error = %e, "could not remove the browser connection");
        }
    }
}

/// Both channels over one order service.
pub fn channels(
    auth: Authenticator,
    orders: OrderService,
    brokers: BrokerService,
) -> (Arc<ConnectorChannel>, Arc<BrowserChannel>) {
    let browser = BrowserChannel::new(auth.clone(), orders.registry.clone());
    (Arc::new(ConnectorChannel::new(auth, orders, brokers)), Arc::new(browser))
}
