//! Link status at once: a dashboard gets its `CONNECTIONS_STATUS` right after it connects, on both platforms.
//!
//! The original sent it right after accepting the socket. API Gateway cannot post to a connection during its
//! `$connect` (the connection exists only once the handler has answered), and the original dashboard's first
//! message is a `PING` 30 s later. So the browser channel's `$connect` queues a `greet_dashboard` message (on the
//! `reconcile` work queue, whose consumer already holds the store and the push port) and the consumer pushes the
//! status as soon as the connection exists:
//!
//! * the first attempt claims the greeting with the same conditional write as a first message does
//!   ([`ConnectorRegistry::mark_greeted`]), so the status goes out once whichever comes first — the queued greeting
//!   or the dashboard's own first message (which then sends it before its answer, as before);
//! * a post answered `Gone` while the connection record still exists means the socket is not up yet: tried again a
//!   few times [`RETRY_GAP`] apart, then re-queued with a [`REQUEUE_DELAY`] up to [`MAX_ATTEMPTS`] times; a socket
//!   that closed meanwhile has no record any more and ends the greeting;
//! * queueing failures at `$connect` only log: the first-message path still sends the status;
//! * where the push port takes posts to a socket being accepted (the local gateway, [`Greeter::immediate`]),
//!   `$connect` greets at once and the status is always the socket's first frame.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::service::BrokerService;
use super::status::connections_status;
use crate::connector::registry::LinkKind;
use crate::jobs::JobError;
use crate::ports::{PushOutcome, Queue};

/// The `kind` of the queued message.
pub const KIND: &str = "greet_dashboard";
/// Pushes tried within one handling before the message is re-queued.
pub const TRIES_PER_ATTEMPT: u32 = 4;
/// Pause between two tries within one handling (the socket is usually up within a few milliseconds of `$connect`).
pub const RETRY_GAP: Duration = Duration::from_millis(150);
/// Delay of a re-queued greeting.
pub const REQUEUE_DELAY: Duration = Duration::from_secs(1);
/// Handlings at most (the first plus re-queues).
pub const MAX_ATTEMPTS: u8 = 5;

/// The queued message's fields (tagged with `kind` by the queue's job enum).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greet {
    pub connection_id: String,
    /// 0 for the message queued at `$connect`; re-queued messages count up.
    #[serde(default)]
    pub attempt: u8,
}

impl Greet {
    /// The message body.
    pub fn body(&self) -> String {
        serde_json::json!({"kind": KIND, "connection_id": self.connection_id, "attempt": self.attempt}).to_string()
    }
}

/// Where `$connect` queues greetings.
#[derive(Clone)]
pub struct Greeter {
    pub queue: Arc<dyn Queue>,
    /// The logical queue whose consumer calls [`greet`].
    pub queue_name: &'static str,
    /// The push port takes posts to a socket being accepted (the local gateway buffers them until the upgrade):
    /// `$connect` then greets at once, and the status is the socket's first frame whatever the browser sends.
    /// API Gateway answers such posts 410: there the greeting is only queued.
    pub immediate: bool,
}

impl Greeter {
    /// Greets a just-accepted dashboard socket: at once where the push port allows it, else through the queue.
    pub async fn welcome(&self, brokers: &BrokerService, ws: &str, user: uuid::Uuid) {
        let mut claimed = false;
        if self.immediate {
            match brokers.registry.mark_greeted(ws).await {
                Ok(false) => return,
                Ok(true) => {
                    claimed = true;
                    let status = Bytes::from(connections_status(brokers, user).await.to_string());
                    match brokers.push.post(ws, status).await {
                        Ok(PushOutcome::Delivered) => return,
                        Ok(PushOutcome::Gone) => debug!(ws, "greeting at $connect: not deliverable yet; queued"),
                        Err(e) => warn!(ws, error = %e, "greeting at $connect failed; queued"),
                    }
                }
                Err(e) => warn!(ws, error = %e, "could not claim the dashboard greeting; queued"),
            }
        }
        // A claimed greeting is re-queued as attempt 1: its consumer pushes without claiming again.
        let body = Greet { connection_id: ws.to_owned(), attempt: u8::from(claimed) }.body();
        if let Err(e) = self.queue.send(self.queue_name, &body, Duration::ZERO).await {
            warn!(ws, error = %e, "could not queue the dashboard greeting: CONNECTIONS_STATUS waits for its first message");
        }
    }
}

/// Handles one greeting (see the module docs). `requeue` is where a not-yet-open socket's greeting goes again.
pub async fn greet(brokers: &BrokerService, requeue: &Greeter, g: &Greet) -> Result<(), JobError> {
    let ws = g.connection_id.as_str();
    let unavailable = |e: &dyn std::fmt::Display| JobError::Unavailable(e.to_string());
    let Some(conn) = brokers.registry.connection(ws).await.map_err(|e| unavailable(&e))? else {
        debug!(ws, "greeting: the socket closed meanwhile");
        return Ok(());
    };
    if conn.kind != LinkKind::Browser {
        return Err(JobError::Invalid(format!("greeting for a socket that is not a dashboard's: {ws}")));
    }
    if g.attempt == 0 {
        if conn.greeted_at.is_some() {
            return Ok(());
        }
        if !brokers.registry.mark_greeted(ws).await.map_err(|e| unavailable(&e))? {
            return Ok(()); // the dashboard's first message came first and sent it
        }
    }
    let status = Bytes::from(connections_status(brokers, conn.user_id).await.to_string());
    for tried in 1..=TRIES_PER_ATTEMPT {
        match brokers.push.post(ws, status.clone()).await.map_err(|e| unavailable(&e))? {
            PushOutcome::Delivered => {
                debug!(ws, attempt = g.attempt, tried, "greeting: CONNECTIONS_STATUS sent");
                return Ok(());
            }
            PushOutcome::Gone if tried < TRIES_PER_ATTEMPT => tokio::time::sleep(RETRY_GAP).await,
            PushOutcome::Gone => {}
        }
    }
    // Not up yet, or gone without its record removed yet: once more later, then give up.
    if g.attempt + 1 >= MAX_ATTEMPTS {
        info!(ws, "greeting: the socket never came up; giving up");
        return Ok(());
    }
    let next = Greet { connection_id: g.connection_id.clone(), attempt: g.attempt + 1 };
    requeue.queue.send(requeue.queue_name, &next.body(), REQUEUE_DELAY).await.map_err(|e| unavailable(&e))?;
    Ok(())
}
