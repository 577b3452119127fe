//! WebSocket APIs as API Gateway shapes them: `$connect` (accept or reject before the upgrade
//! completes, with the query string), messages routed by their `type` field
//! (route selection expression `$request.body.type`, falling back to `$default`), `$disconnect`, and
//! pushes to a connection id through the [`Push`](crate::ports::Push) port.
//!
//! A [`WsHandler`] is written once; the Lambda WebSocket functions feed it API Gateway events and the
//! local gateway feeds it its own sockets, so both behave the same.

use async_trait::async_trait;

/// The route key API Gateway uses when no declared route matches.
pub const DEFAULT_ROUTE: &str = "$default";
/// API Gateway's largest WebSocket message (frames are reassembled up to this size).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// A connection attempt (`$connect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub connection_id: String,
    /// Query parameters in order, repeated names kept (the original connector repeats `token`).
    pub query: Vec<(String, String)>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl ConnectRequest {
    /// The last value of a query parameter (API Gateway's `queryStringParameters` keeps the last).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The handler's answer to `$connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectDecision {
    Accept,
    /// Refuses the upgrade with an HTTP status (401, 403, 429...) and a reason for the logs/body.
    Reject {
        status: u16,
        reason: String,
    },
}

/// An inbound message routed to a handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundMessage {
    pub connection_id: String,
    pub route_key: String,
    pub body: String,
}

#[async_trait]
pub trait WsHandler: Send + Sync + 'static {
    /// Route keys this API declares besides `$connect`, `$disconnect` and `$default`.
    fn routes(&self) -> &[&'static str];
    async fn connect(&self, req: ConnectRequest) -> ConnectDecision;
    /// Handles one message; a returned text is the route response, sent back to the sender
    /// (API Gateway two-way route). Replies may also be pushed through the Push port.
    async fn message(&self, msg: InboundMessage) -> Option<String>;
    async fn disconnect(&self, connection_id: &str);
}

/// API Gateway route selection on `$request.body.type`.
pub fn select_route(body: &str, routes: &[&str]) -> String {
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_str::<Typed<'_>>(body) {
        Ok(Typed { kind: Some(k) }) if routes.contains(&k.as_ref()) => k.into_owned(),
        _ => DEFAULT_ROUTE.to_owned(),
    }
}

/// The connector/browser protocol's keep-alive and error replies, without accounts: the channel the
/// gateway serves until the authenticated connector and browser handlers are mounted (they verify
/// the token at `$connect`). It requires the `token` query parameter like the original (missing →
/// 403), answers `PING` → `PONG`, `HEARTBEAT` → `HEARTBEAT_ACK`, invalid JSON → the original's
/// `ERROR`, anything else → `ERROR` "Unknown message type".
#[derive(Clone, Debug, Default)]
pub struct KeepAliveProtocol;

#[async_trait]
impl WsHandler for KeepAliveProtocol {
    fn routes(&self) -> &[&'static str] {
        &["PING", "HEARTBEAT"]
    }

    async fn connect(&self, req: ConnectRequest) -> ConnectDecision {
        match req.param("token") {
            Some(t) if !t.is_empty() => ConnectDecision::Accept,
            _ => ConnectDecision::Reject { status: 403, reason: "Missing token".into() },
        }
    }

    async fn message(&self, msg: InboundMessage) -> Option<String> {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let reply = match msg.route_key.as_str() {
            "PING" => serde_json::json!({ "type": "PONG", "timestamp": now }),
            "HEARTBEAT" => serde_json::json!({ "type": "HEARTBEAT_ACK", "timestamp": now }),
            _ if serde_json::from_str::<serde_json::Value>(&msg.body).is_err() => {
                serde_json::json!({ "type": "ERROR", "error": "Invalid JSON format" })
            }
            _ => serde_json::json!({ "type": "ERROR", "error": "Unknown message type" }),
        };
        Some(reply.to_string())
    }

    async fn disconnect(&self, _connection_id: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_type_with_default_fallback() {
        let routes = ["HEARTBEAT", "TRADE_RESULT"];
        assert_eq!(select_route(r#"{"type":"HEARTBEAT"}"#, &routes), "HEARTBEAT");
        assert_eq!(select_route(r#"{"type":"OTHER"}"#, &routes), DEFAULT_ROUTE);
        assert_eq!(select_route("not json", &routes), DEFAULT_ROUTE);
        assert_eq!(select_route(r#"{"type":7}"#, &routes), DEFAULT_ROUTE);
        assert_eq!(select_route(r#"[1]"#, &routes), DEFAULT_ROUTE);
    }

    #[test]
    fn last_query_value_wins() {
        let r = ConnectRequest {
            connection_id: "c".into(),
            query: vec![("token".into(), "a".into()), ("token".into(), "b".into())],
            source_ip: None,
            user_agent: None,
        };
        assert_eq!(r.param("token"), Some("b"));
        assert_eq!(r.param("x"), None);
    }
}
