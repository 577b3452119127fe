//! The dashboard WebSocket API, `/connector/client?token=…` (contract §3.3), as a [`WsHandler`]:
//!
//! * `$connect` verifies an access token with a live session (401/403 before the upgrade otherwise) and
//!   records the socket in the user's fan-out set, with its session: revoking that session closes the socket
//!   ([`crate::auth::sockets`]). A user holds at most [`LinkLimits::max_dashboards`] dashboard sockets
//!   (`NUSATRADE_WS_MAX_DASHBOARDS`, default 10): one more is refused with 429 "Too many open dashboards: at most
//!   N per user; close one and connect again".
//! * **`CONNECTIONS_STATUS` at once.** The original sent it right after accepting; API Gateway cannot post during
//!   `$connect`, so `$connect` queues a greeting that pushes it as soon as the socket is up ([`crate::brokers::greeting`]),
//!   typically well within a second. Should the browser's first message (whatever its type) come first, it goes
//!   out then — before that message's answer, which is then pushed as well, so the order is the same on both
//!   platforms. Either way it is sent once.
//!   A dashboard that wants it at once sends `{"type":"GET_CONNECTIONS_STATUS"}` right after opening (answered
//!   with `CONNECTIONS_STATUS` at any time); the dashboards also get a fresh one whenever a connector comes
//!   online.
//! * `PING` → `PONG`.
//! * `SEND_TRADE_COMMAND {action, command_id?, connection_id?, symbol, order_type?, lot_size, price?,
//!   stop_loss?, take_profit?, trailing_stop?, order_id?}` goes through the very order use cases of the REST
//!   routes ([`OrderService::place`] / [`close`](OrderService::close) / [`modify`](OrderService::modify)):
//!   the same validation, risk checks (open-position limit, margin, price deviation, verified e-mail),
//!   idempotency (`command_id`, else `client_order_id` or `request_id`, is the idempotency key) and
//!   ownership (the user is the socket's; another user's order or connection is not found) — the original
//!   forwarded it unchecked. `action` is `OPEN`, `BUY`, `SELL` (the side), `CLOSE` or `MODIFY` (with
//!   `order_id`, also accepted as `position_id` / `trade_id`). An open without `price` takes the last price
//!   a connector reported for the symbol (ask to buy, bid to sell). The answer is
//!   `TRADE_COMMAND_RESULT {command_id, action, success, status, trade?, mt5_execution?, error?, detail?}`
//!   (`status` is the REST route's HTTP status); the execution itself arrives later as `TRADE_RESULT` /
//!   `ORDER_UPDATE`, as for REST orders. The socket's session is checked again for every command: a revoked
//!   session gets status 401 and the socket is closed.
//! * Everything else is ignored (as the original); invalid JSON gets the `ERROR` reply.
//! * Fan-out to every dashboard of the user ([`OrderService::broadcast`]): `TRADE_RESULT`, `ORDER_UPDATE`,
//!   `POSITION_UPDATE`, `ACCOUNT_UPDATE`, `MT5_STATUS_UPDATE`, `CONNECTOR_ERROR`, `CONNECTOR_DISCONNECTED`,
//!   `CONNECTIONS_STATUS`.
//! * A message over 128 KB or a flood beyond the per-connection rate closes the socket ([`crate::connector::limits`]).

use std::sync::Arc;

use async_trait::async_trait;
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::money::Side;
use serde_json::{Map, Value, json};
use tracing::{info, warn};
use uuid::Uuid;

use super::common::{contact, error_reply, refuse, reject};
use crate::auth::store::{SessionRecord, UserRecord, session_key, user_key};
use crate::auth::{Authenticator, CurrentUser};
use crate::brokers::greeting::Greeter;
use crate::brokers::service::BrokerService;
use crate::brokers::status::connections_status;
use crate::connector::limits::{Admission, LinkGuard, LinkLimits};
use crate::connector::registry::{ConnectorRegistry, WsConnection};
use crate::http::ApiError;
use crate::trading::orders::routes::parse_order;
use crate::trading::orders::routes::{parse_modify, placed_status};
use crate::trading::orders::store::SOURCE_WEBSOCKET;
use crate::trading::orders::{IdempotencyKey, OrderService, Placed};
use crate::ws::{ConnectDecision, ConnectRequest, InboundMessage, WsHandler};

/// `/connector/client`.
#[derive(Clone)]
pub struct BrowserChannel {
    pub auth: Authenticator,
    pub registry: ConnectorRegistry,
    pub orders: OrderService,
    pub brokers: BrokerService,
    pub guard: Arc<LinkGuard>,
    /// Queues the `CONNECTIONS_STATUS` of a socket just accepted ([`crate::brokers::greeting`]); `None`: it goes out with
    /// the answer to the socket's first message only.
    pub greeter: Option<Greeter>,
}

/// The message types a browser may send (the API Gateway route keys).
pub const BROWSER_TYPES: &[&str] = &["PING", "GET_CONNECTIONS_STATUS", "SEND_TRADE_COMMAND"];

impl BrowserChannel {
    pub fn new(auth: Authenticator, orders: OrderService, brokers: BrokerService) -> Self {
        Self::with_limits(auth, orders, brokers, LinkLimits::default())
    }

    pub fn with_limits(auth: Authenticator, orders: OrderService, brokers: BrokerService, limits: LinkLimits) -> Self {
        BrowserChannel {
            auth,
            registry: orders.registry().clone(),
            orders,
            brokers,
            guard: Arc::new(LinkGuard::new(limits)),
            greeter: None,
        }
    }

    /// Greets every accepted socket with its `CONNECTIONS_STATUS` at once, through `greeter`'s queue.
    pub fn with_greeter(mut self, greeter: Greeter) -> Self {
        self.greeter = Some(greeter);
        self
    }

    /// The socket's user, with its session checked again (revoked or expired → 401).
    async fn current_user(&self, conn: &WsConnection) -> Result<CurrentUser, ApiError> {
        let gone = || ApiError::Unauthorized("Session expired or revoked: reconnect".into());
        let sid = conn.session_id.ok_or_else(gone)?;
        let (sk, uk) = (session_key(conn.user_id, sid), user_key(conn.user_id));
        let (session, user) = tokio::join!(self.auth.store.get(&sk), self.auth.store.get(&uk));
        let session: SessionRecord = session?.ok_or_else(gone)?.to_record()?;
        if session.revoked || session.user_id != conn.user_id || session.ttl <= self.auth.clock.epoch_seconds() {
            return Err(gone());
        }
        let user: UserRecord = user?.ok_or_else(gone)?.to_record()?;
        Ok(CurrentUser {
            id: user.id,
            email: user.email,
            role: user.role,
            email_verified: user.email_verified,
            session_id: sid,
            email_verification_required: self.auth.require_email_verification,
        })
    }

    /// `SEND_TRADE_COMMAND` → `TRADE_COMMAND_RESULT`.
    async fn trade_command(&self, conn: &WsConnection, m: &Map<String, Value>) -> Value {
        let command_id = ["command_id", "client_order_id", "request_id"].iter().find_map(|k| match m.get(*k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        });
        let action = m.get("action").and_then(Value::as_str).map(|a| a.trim().to_ascii_uppercase()).unwrap_or_default();
        let outcome = self.execute(conn, &action, command_id.as_deref(), m).await;
        let mut out = json!({
            "type": "TRADE_COMMAND_RESULT",
            "command_id": command_id,
            "action": action,
        });
        match outcome {
            Ok(placed) => {
                let status = placed_status(&placed).as_u16();
                let body = placed.body;
                out["success"] = json!(matches!(status, 200 | 201));
                out["status"] = json!(status);
                if let Value::Object(fields) = body {
                    for (k, v) in fields {
                        out[k.as_str()] = v;
                    }
                }
                if let Some(e) = out["mt5_execution"]["error"].as_str() {
                    out["error"] = json!(e);
                }
            }
            Err(e) => {
                out["success"] = json!(false);
                out["status"] = json!(e.status().as_u16());
                let (error, detail) = describe(&e);
                out["error"] = json!(error);
                if let Some(d) = detail {
                    out["detail"] = d;
                }
                if matches!(e, ApiError::Unauthorized(_)) {
                    info!(ws = %conn.ws_connection_id, "trade command on a dead session: closing the socket");
                    let _ = self.orders.dashboards.push.close(&conn.ws_connection_id).await;
                }
            }
        }
        out
    }

    async fn execute(
        &self,
        conn: &WsConnection,
        action: &str,
        command_id: Option<&str>,
        m: &Map<String, Value>,
    ) -> Result<Placed, ApiError> {
        let supported = ["OPEN", "BUY", "SELL", "CLOSE", "MODIFY"];
        if !supported.contains(&action) {
            let shown = if action.is_empty() { "(none)" } else { action };
            return Err(ApiError::BadRequest(format!(
                "Unknown action: {shown}. Supported: OPEN, BUY, SELL, CLOSE, MODIFY"
            )));
        }
        let user = self.current_user(conn).await?;
        // The idempotency fingerprint: the command as sent, without its type.
        let mut fingerprint = m.clone();
        fingerprint.remove("type");
        let idem = command_id
            .map(|k| IdempotencyKey::new(k, &format!("WS SEND_TRADE_COMMAND {action}"), &Value::Object(fingerprint)))
            .transpose()?;
        match action {
            "CLOSE" => {
                let id = order_id(m)?;
                Ok(self.orders.close(&user, id, idem).await?)
            }
            "MODIFY" => {
                let id = order_id(m)?;
                let change = parse_modify(m)?;
                Ok(self.orders.modify(&user, id, change, idem).await?)
            }
            _ => {
                let body = self.order_body(conn, action, m).await?;
                let mut order = parse_order(&body)?;
                order.source = SOURCE_WEBSOCKET;
                Ok(self.orders.place(&user, order, idem).await?)
            }
        }
    }

    /// The REST `OrderCreate` body of an open command: `BUY`/`SELL` actions set the side; a missing price is
    /// the last reported one.
    async fn order_body(
        &self,
        conn: &WsConnection,
        action: &str,
        m: &Map<String, Value>,
    ) -> Result<Map<String, Value>, ApiError> {
        let mut body = Map::new();
        for k in
            ["symbol", "order_type", "lot_size", "price", "stop_loss", "take_profit", "trailing_stop", "connection_id"]
        {
            if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
                body.insert(k.to_owned(), v.clone());
            }
        }
        if action != "OPEN" {
            body.insert("order_type".into(), json!(action));
        }
        if body.contains_key("price") {
            return Ok(body);
        }
        let side = body.get("order_type").and_then(Value::as_str).and_then(|s| s.parse::<Side>().ok());
        let instrument = body.get("symbol").and_then(Value::as_str).and_then(|s| lookup(s).ok());
        if let (Some(side), Some(instrument)) = (side, instrument) {
            let quote = self.registry.quote(conn.user_id, instrument.symbol, self.orders.config.quote_max_age).await?;
            let Some(q) = quote else {
                return Err(ApiError::BadRequest(format!(
                    "price is required: no recent price reported for {}",
                    instrument.symbol
                )));
            };
            let price = match side {
                Side::Buy => q.ask,
                Side::Sell => q.bid,
            };
            body.insert("price".into(), json!(crate::wire::num(price)));
        }
        // Otherwise parse_order reports the bad symbol or side (and the missing price) itself.
        Ok(body)
    }
}

fn order_id(m: &Map<String, Value>) -> Result<Uuid, ApiError> {
    let raw = ["order_id", "position_id", "trade_id"].iter().find_map(|k| m.get(*k).and_then(Value::as_str));
    raw.and_then(|s| Uuid::try_parse(s.trim()).ok())
        .ok_or_else(|| ApiError::BadRequest("Invalid order_id format. Must be a valid UUID.".into()))
}

/// The error text for a toast, and the structured detail when there is one (422 lists).
fn describe(e: &ApiError) -> (String, Option<Value>) {
    match e {
        ApiError::Unprocessable(errors) => {
            let msgs: Vec<String> = errors
                .iter()
                .map(|f| {
                    let at: Vec<String> =
                        f.loc.iter().skip(1).map(|l| l.as_str().map_or(l.to_string(), str::to_owned)).collect();
                    format!("{}: {}", at.join("."), f.msg)
                })
                .collect();
            (msgs.join("; "), Some(json!(errors)))
        }
        ApiError::Internal(m) => {
            warn!(error = %m, "trade command failed");
            ("Internal server error".into(), None)
        }
        ApiError::Unavailable(m) => {
            warn!(error = %m, "trade command: dependency unavailable");
            ("Service temporarily unavailable".into(), None)
        }
        other => (other.to_string(), None),
    }
}

#[async_trait]
impl WsHandler for BrowserChannel {
    fn routes(&self) -> &[&'static str] {
        BROWSER_TYPES
    }

    async fn connect(&self, req: ConnectRequest) -> ConnectDecision {
        let Some(token) = req.param("token").filter(|t| !t.is_empty()) else {
            return reject(403, "Missing token");
        };
        let user = match self.auth.authenticate(token).await {
            Ok(u) => u,
            Err(_) => return reject(401, "Invalid or expired token"),
        };
        let cap = self.guard.limits.max_dashboards;
        match self.registry.browsers(user.id).await {
            Ok(open) if open.len() >= cap as usize => {
                info!(user = %user.id, open = open.len(), cap, "dashboard refused: too many open");
                return reject(
                    429,
                    &format!("Too many open dashboards: at most {cap} per user; close one and connect again"),
                );
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "browser $connect: cannot count the open dashboards");
                return reject(503, "Service unavailable");
            }
        }
        match self
            .registry
            .register_browser_session(&req.connection_id, user.id, &user.email, Some(user.session_id))
            .await
        {
            Ok(()) => {
                if let Some(g) = &self.greeter {
                    g.welcome(&self.brokers, &req.connection_id, user.id).await;
                }
                ConnectDecision::Accept
            }
            Err(e) => {
                warn!(error = %e, "browser $connect: cannot record the connection");
                reject(503, "Service unavailable")
            }
        }
    }

    async fn message(&self, msg: InboundMessage) -> Option<String> {
        self.message_on(msg, None).await
    }

    async fn disconnect(&self, connection_id: &str) {
        self.guard.forget(connection_id);
        if let Err(e) = self.registry.unregister(connection_id).await {
            warn!(ws = %connection_id, error = %e, "could not remove the browser connection");
        }
    }
}

impl BrowserChannel {
    /// A message on one of this channel's sockets. `known`: the socket's connection record when the caller
    /// has just read it ([`ChannelRouter`](super::router::ChannelRouter)), so it is not read twice.
    pub(crate) async fn message_on(&self, msg: InboundMessage, known: Option<Option<WsConnection>>) -> Option<String> {
        let ws = msg.connection_id.as_str();
        match self.guard.admit(ws, msg.body.len(), self.registry.clock.now()) {
            Admission::Admit => {}
            Admission::Closing => return None,
            refused => {
                refuse(&self.orders.dashboards, ws, refused, &self.guard.limits).await;
                return None;
            }
        }
        let (m, kind) = match serde_json::from_str::<Value>(&msg.body) {
            Ok(Value::Object(m)) => {
                let kind = m.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
                (m, kind)
            }
            Ok(_) => return error_reply("Invalid message format"),
            Err(_) => return error_reply("Invalid JSON format"),
        };
        let (conn, first) = match contact(&self.registry, ws, known).await {
            Ok(c) => c,
            Err(reply) => return reply,
        };
        // First contact: CONNECTIONS_STATUS before anything else, then the answer, pushed as well so the two
        // arrive in this order on both platforms.
        if first && kind != "GET_CONNECTIONS_STATUS" {
            let status = connections_status(&self.brokers, conn.user_id).await;
            if !self.orders.dashboards.push_to(ws, &status).await {
                return None;
            }
        }
        let reply = match kind.as_str() {
            "PING" => Some(json!({"type": "PONG"})),
            "GET_CONNECTIONS_STATUS" => Some(connections_status(&self.brokers, conn.user_id).await),
            "SEND_TRADE_COMMAND" => Some(self.trade_command(&conn, &m).await),
            _ => None,
        };
        match reply {
            Some(r) if first => {
                self.orders.dashboards.push_to(ws, &r).await;
                None
            }
            r => r.map(|r| r.to_string()),
        }
    }
}
