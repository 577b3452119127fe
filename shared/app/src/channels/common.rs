//! What both WebSocket channels share: the first-contact check of a socket, `ERROR` replies, `$connect` refusals,
//! closing a socket over its limits.

use bytes::Bytes;
use chrono::Utc;
use serde_json::json;
use tracing::warn;

use crate::auth::Authenticator;
use crate::auth::sockets::SESSION_REVOKED;
use crate::auth::store::{SessionRecord, session_key};
use crate::connector::fanout::Fanout;
use crate::connector::limits::{Admission, LinkLimits};
use crate::connector::registry::{ConnectorRegistry, WsConnection};
use crate::ports::StoreError;
use crate::ws::ConnectDecision;

pub(crate) fn now_iso() -> String {
    crate::wire::iso(Utc::now())
}

pub(crate) fn error_reply(msg: &str) -> Option<String> {
    Some(json!({"type": "ERROR", "error": msg}).to_string())
}

/// The connection record of the socket a message arrived on (`known` when the caller has read it already) and
/// whether this is its first message — decided once, by [`ConnectorRegistry::mark_greeted`]'s conditional
/// write. `Err` holds the ERROR reply for an unknown socket or an unavailable store.
pub(crate) async fn contact(
    registry: &ConnectorRegistry,
    ws: &str,
    known: Option<Option<WsConnection>>,
) -> Result<(WsConnection, bool), Option<String>> {
    let looked_up = match known {
        Some(record) => Ok(record),
        None => registry.connection(ws).await,
    };
    let conn = match looked_up {
        Ok(Some(c)) => c,
        Ok(None) => return Err(error_reply("Unknown connection: reconnect")),
        Err(e) => {
            warn!(ws, error = %e, "message on a socket: store unavailable");
            return Err(error_reply("Service unavailable"));
        }
    };
    let first = conn.greeted_at.is_none()
        && match registry.mark_greeted(ws).await {
            Ok(first) => first,
            Err(e) => {
                warn!(ws, error = %e, "could not mark the first contact");
                false
            }
        };
    Ok((conn, first))
}

/// Whether the auth session a socket was opened with is still live: not revoked, not expired, the socket user's. A
/// record without a session (written by internal paths and tests, never by `$connect`) is bound to none.
pub(crate) async fn session_live(auth: &Authenticator, conn: &WsConnection) -> Result<bool, StoreError> {
    let Some(sid) = conn.session_id else { return Ok(true) };
    let Some(item) = auth.store.get(&session_key(conn.user_id, sid)).await? else { return Ok(false) };
    let session: SessionRecord = item.to_record()?;
    Ok(!session.revoked && session.user_id == conn.user_id && session.ttl > auth.clock.epoch_seconds())
}

/// A message on the socket of a revoked or expired session: refused with an `ERROR` (code `SESSION_REVOKED`),
/// and the socket is closed. Nothing in the message is applied.
pub(crate) async fn refuse_dead_session(fanout: &Fanout, conn: &WsConnection) {
    let ws = conn.ws_connection_id.as_str();
    warn!(ws, user = %conn.user_id, session = ?conn.session_id, "message on the socket of a dead session: refused, closing");
    let frame = json!({"type": "ERROR", "code": SESSION_REVOKED, "error": "Session expired or revoked: message refused, connect again with a new login"});
    let _ = fanout.push.post(ws, Bytes::from(frame.to_string())).await;
    if let Err(e) = fanout.push.close(ws).await {
        warn!(ws, error = %e, "could not close the socket of a dead session");
    }
}

pub(crate) fn reject(status: u16, reason: &str) -> ConnectDecision {
    ConnectDecision::Reject { status, reason: reason.into() }
}

/// Answers a message over the limits with an `ERROR`, then closes the connection.
pub(crate) async fn refuse(fanout: &Fanout, ws: &str, admission: Admission, limits: &LinkLimits) {
    let error = match admission {
        Admission::TooLarge { bytes } => {
            format!("Message of {bytes} bytes exceeds the {} byte limit: connection closed", limits.max_message_bytes)
        }
        _ => format!(
            "Too many messages (more than {} per second, bursts of {}): connection closed",
            limits.messages_per_second, limits.burst
        ),
    };
    warn!(ws, %error, "closing a WebSocket connection over its limits");
    let _ = fanout.push.post(ws, Bytes::from(json!({"type": "ERROR", "error": error}).to_string())).await;
    if let Err(e) = fanout.push.close(ws).await {
        warn!(ws, error = %e, "could not close the connection");
    }
}
