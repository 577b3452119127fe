//! Ack timeouts without a table scan: every command sent to a connector gets one delayed `ack_timeout` message on
//! the `reconcile` queue (delay `NUSATRADE_ACK_TIMEOUT_SECS`, default 30 s). When it comes due the reconciliation
//! consumer applies the timeout to the order ([`OrderService::apply_timeout`](super::OrderService::apply_timeout)) —
//! a no-op when the ack came in time — and, for a command still unacknowledged, asks the connection for evidence.
//!
//! The message is the order side's to write; the reconciliation consumer reads it (`ReconcileJob::AckTimeout`, a
//! test there parses what [`AckTimeoutMessage`] writes).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::warn;
use uuid::Uuid;

use crate::connector::RequestId;
use crate::ports::Queue;
use crate::ports::queue::MAX_DELAY;

/// The logical queue the reconciliation consumer reads.
pub const RECONCILE_QUEUE: &str = "reconcile";
/// `NUSATRADE_ACK_TIMEOUT_SECS`: how long a command sent to a connector may wait for its `TRADE_RESULT`.
pub const ENV_ACK_TIMEOUT: &str = "NUSATRADE_ACK_TIMEOUT_SECS";
/// The default ack timeout.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The `ack_timeout` message of the `reconcile` queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AckTimeoutMessage {
    pub kind: &'static str,
    pub user_id: Uuid,
    pub connection_id: Uuid,
    pub request_id: String,
    pub sent_at: DateTime<Utc>,
}

impl AckTimeoutMessage {
    pub fn new(user: Uuid, broker: Uuid, request_id: &str, sent_at: DateTime<Utc>) -> Self {
        AckTimeoutMessage {
            kind: "ack_timeout",
            user_id: user,
            connection_id: broker,
            request_id: request_id.to_owned(),
            sent_at,
        }
    }

    /// The message body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Reads an ack timeout in seconds (1 to the queue's largest delay); `Ok(None)` when not set.
pub fn parse_ack_timeout(value: Option<String>) -> Result<Option<Duration>, String> {
    let Some(v) = value else { return Ok(None) };
    let max = MAX_DELAY.as_secs();
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .map(|n| Some(Duration::from_secs(n)))
        .ok_or_else(|| format!("{ENV_ACK_TIMEOUT} must be 1..={max} seconds, got {v:?}"))
}

/// Schedules the ack-timeout message of each command sent.
#[derive(Clone)]
pub struct AckTimeouts {
    pub queue: Arc<dyn Queue>,
    pub delay: Duration,
}

impl AckTimeouts {
    pub fn new(queue: Arc<dyn Queue>, delay: Duration) -> Self {
        AckTimeouts { queue, delay }
    }

    /// With the delay of `NUSATRADE_ACK_TIMEOUT_SECS` (the default 30 s, with a warning, when it is malformed;
    /// the entry points refuse to start on a malformed value: `ReconcileSettings::from_env`).
    pub fn from_env(queue: Arc<dyn Queue>) -> Self {
        let delay = parse_ack_timeout(std::env::var(ENV_ACK_TIMEOUT).ok()).unwrap_or_else(|e| {
            warn!(error = %e, "ack timeout: using the default");
            None
        });
        AckTimeouts { queue, delay: delay.unwrap_or(DEFAULT_ACK_TIMEOUT) }
    }

    /// Schedules the timeout of command `request_id` (an order command: open, close or modify) sent at `sent_at`
    /// to the connector of `broker`. Best effort: when the queue is unavailable the order is still settled by the
    /// next snapshot of its connection (the 5-minute sweep), where a `pending` order past its timeout counts as
    /// unknown.
    pub async fn schedule(&self, user: Uuid, broker: Uuid, request_id: &str, sent_at: DateTime<Utc>) {
        if request_id.parse::<RequestId>().is_err() {
            return;
        }
        let message = AckTimeoutMessage::new(user, broker, request_id, sent_at);
        if let Err(e) = self.queue.send(RECONCILE_QUEUE, &message.to_json(), self.delay).await {
            warn!(error = %e, request_id, "could not schedule the ack timeout; the connection sweep will settle the order");
        }
    }
}
