//! One WebSocket endpoint for both channels, as API Gateway deploys them.
//!
//! Locally the two channels have their own paths (`/connector/ws`, `/connector/client`, the original's
//! URLs). An API Gateway WebSocket API has one URL per stage, so in AWS both kinds of client connect
//! to the stage URL and [`ChannelRouter`] tells them apart:
//!
//! * `$connect`: a connector names its broker connection (`connection_id`, which the original
//!   connector always sends); a dashboard does not. The chosen channel verifies the token and records
//!   the connection with its kind.
//! * messages and `$disconnect`: the connection record written at `$connect` says which channel owns
//!   the socket. A socket without a record (never accepted, or already gone) is answered by the
//!   connector channel, which replies `ERROR` "Unknown connection: reconnect".

use std::sync::Arc;

use async_trait::async_trait;
use tracing::warn;

use super::browser::BrowserChannel;
use super::connector::ConnectorChannel;
use crate::connector::registry::{ConnectorRegistry, LinkKind, WsConnection};
use crate::ws::{ConnectDecision, ConnectRequest, InboundMessage, WsHandler};

/// The query parameter that marks a connector at `$connect`.
pub const CONNECTOR_PARAM: &str = "connection_id";

/// Both channels behind one WebSocket endpoint (see the module docs).
#[derive(Clone)]
pub struct ChannelRouter {
    connector: Arc<ConnectorChannel>,
    browser: Arc<BrowserChannel>,
    registry: ConnectorRegistry,
    routes: Vec<&'static str>,
}

impl ChannelRouter {
    pub fn new(connector: Arc<ConnectorChannel>, browser: Arc<BrowserChannel>) -> Self {
        let mut routes: Vec<&'static str> = connector.routes().to_vec();
        for r in browser.routes() {
            if !routes.contains(r) {
                routes.push(r);
            }
        }
        let registry = connector.registry.clone();
        ChannelRouter { connector, browser, registry, routes }
    }

    /// The socket's connection record, read once: it says which channel owns the socket, and that channel
    /// gets it so it does not read it again. On a store error the connector channel reads it itself and answers
    /// the error.
    async fn record(&self, connection_id: &str) -> (bool, Option<Option<WsConnection>>) {
        match self.registry.connection(connection_id).await {
            Ok(record) => (record.as_ref().is_some_and(|c| c.kind == LinkKind::Browser), Some(record)),
            Err(e) => {
                warn!(ws = %connection_id, error = %e, "cannot read the connection record");
                (false, None)
            }
        }
    }
}

#[async_trait]
impl WsHandler for ChannelRouter {
    fn routes(&self) -> &[&'static str] {
        &self.routes
    }

    async fn connect(&self, req: ConnectRequest) -> ConnectDecision {
        if req.param(CONNECTOR_PARAM).is_some() {
            self.connector.connect(req).await
        } else {
            self.browser.connect(req).await
        }
    }

    async fn message(&self, msg: InboundMessage) -> Option<String> {
        match self.record(&msg.connection_id).await {
            (true, known) => self.browser.message_on(msg, known).await,
            (false, known) => self.connector.message_on(msg, known).await,
        }
    }

    async fn disconnect(&self, connection_id: &str) {
        match self.record(connection_id).await {
            (true, _) => self.browser.disconnect(connection_id).await,
            (false, _) => self.connector.disconnect(connection_id).await,
        }
    }
}
