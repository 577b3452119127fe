//! Pushes to the sockets of a user: the dashboards' fan-out (`ORDER_UPDATE`, relayed `TRADE_RESULT`s, MT5 status,
//! positions) and single frames to one socket. Best effort: a socket that is gone (410) is forgotten, a failed push
//! is logged; neither fails the use case that pushed.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tracing::{info, warn};
use uuid::Uuid;

use super::registry::ConnectorRegistry;
use crate::ports::{Push, PushOutcome};

/// The user's sockets as a push target.
#[derive(Clone)]
pub struct Fanout {
    pub push: Arc<dyn Push>,
    pub registry: ConnectorRegistry,
}

impl Fanout {
    pub fn new(push: Arc<dyn Push>, registry: ConnectorRegistry) -> Self {
        Fanout { push, registry }
    }

    /// Pushes one frame to one socket; `false` when the socket is gone (its record is then removed).
    pub async fn push_to(&self, ws: &str, frame: &Value) -> bool {
        match self.push.post(ws, Bytes::from(frame.to_string())).await {
            Ok(PushOutcome::Delivered) => true,
            Ok(PushOutcome::Gone) => {
                info!(ws, "connection gone (410): removing its record");
                if let Err(e) = self.registry.unregister(ws).await {
                    warn!(ws, error = %e, "could not remove a gone connection");
                }
                false
            }
            Err(e) => {
                warn!(ws, error = %e, "push failed");
                true
            }
        }
    }

    /// Sends a message to every dashboard of a user.
    pub async fn broadcast(&self, user: Uuid, message: &Value) {
        self.broadcast_all(user, std::slice::from_ref(message)).await;
    }

    /// Sends messages, in order, to every dashboard of a user (one lookup of the dashboards).
    pub async fn broadcast_all(&self, user: Uuid, messages: &[Value]) {
        if messages.is_empty() {
            return;
        }
        let browsers = match self.registry.browsers(user).await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "could not list the user's dashboards");
                return;
            }
        };
        if browsers.is_empty() {
            return;
        }
        let bodies: Vec<Bytes> = messages.iter().map(|m| Bytes::from(m.to_string())).collect();
        'browsers: for ws in browsers {
            for body in &bodies {
                match self.push.post(&ws, body.clone()).await {
                    Ok(PushOutcome::Delivered) => {}
                    Ok(PushOutcome::Gone) => {
                        let _ = self.registry.unregister(&ws).await;
                        continue 'browsers;
                    }
                    Err(e) => warn!(ws = %ws, error = %e, "dashboard push failed"),
                }
            }
        }
    }
}
