//! Sockets bound to sessions. Every connector and dashboard socket records the session (`sid` of the access token)
//! it was opened with ([`WsConnection::session_id`](crate::connector::registry::WsConnection)); revoking a session
//! — logout, password reset, revoke one / revoke others, refresh-token reuse, a lock-out triggered from an
//! authenticated route — closes that session's sockets at once through the push port (the local gateway's socket
//! registry; API Gateway's `DeleteConnection` in AWS, which runs `$disconnect` like any other close).
//!
//! Each socket first gets an `ERROR` frame saying why (`{"type":"ERROR","code":"SESSION_REVOKED","error":...}`:
//! API Gateway's `DeleteConnection` carries no close reason), then the close. A close that fails (push port
//! unavailable) removes the socket's record instead: nothing more is routed to it, and its messages are answered
//! "Unknown connection: reconnect". Either way the channels check the session again on every connector message
//! and every dashboard trade command, so a socket that outlives its session by a race cannot touch the books.
//!
//! Closing never fails the revocation: the session is revoked first, and errors here are logged.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use tracing::{info, warn};
use uuid::Uuid;

use crate::connector::registry::ConnectorRegistry;
use crate::ports::{Clock, ItemStore, Push};

/// The `code` of the frame a socket gets before it is closed for its session.
pub const SESSION_REVOKED: &str = "SESSION_REVOKED";

/// Why a session ended (shown to the sockets it closes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Logout,
    PasswordReset,
    Revoked,
    RefreshReuse,
    Locked,
}

impl Ended {
    pub fn text(self) -> &'static str {
        match self {
            Ended::Logout => "Session ended (logged out): connect again with a new login",
            Ended::PasswordReset => "Session ended (password reset): connect again with a new login",
            Ended::Revoked => "Session revoked: connect again with a new login",
            Ended::RefreshReuse => "Session revoked (refresh token reused): connect again with a new login",
            Ended::Locked => "Session revoked (account locked after failed checks): connect again later",
        }
    }
}

/// Closes the sockets of revoked sessions (see the module docs).
#[derive(Clone)]
pub struct SessionSockets {
    registry: ConnectorRegistry,
    push: Arc<dyn Push>,
}

impl SessionSockets {
    pub fn new(store: Arc<dyn ItemStore>, clock: Arc<dyn Clock>, push: Arc<dyn Push>) -> Self {
        SessionSockets { registry: ConnectorRegistry::new(store, clock), push }
    }

    /// Closes every live socket of `user` opened with one of `sessions`. Returns how many sockets it ended.
    pub async fn close(&self, user: Uuid, sessions: &[Uuid], why: Ended) -> usize {
        let sockets = match self.registry.session_sockets(user, sessions).await {
            Ok(s) => s,
            Err(e) => {
                warn!(%user, error = %e, "revoked sessions: cannot list their sockets; messages are still refused");
                return 0;
            }
        };
        let frame = Bytes::from(json!({"type": "ERROR", "code": SESSION_REVOKED, "error": why.text()}).to_string());
        let mut ended = 0;
        for (ws, kind) in sockets {
            // The frame is best effort: a gone socket or a failed post changes nothing about the close.
            let _ = self.push.post(&ws, frame.clone()).await;
            match self.push.close(&ws).await {
                Ok(()) => info!(%user, ws = %ws, ?kind, reason = ?why, "socket of a revoked session closed"),
                Err(e) => {
                    warn!(%user, ws = %ws, error = %e, "cannot close the socket of a revoked session: record removed");
                    if let Err(e) = self.registry.unregister(&ws).await {
                        warn!(ws = %ws, error = %e, "cannot remove the socket record either");
                    }
                }
            }
            ended += 1;
        }
        ended
    }
}
