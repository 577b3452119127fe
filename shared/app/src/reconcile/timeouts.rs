//! Ack timeouts without a table scan: every command sent to a connector gets one delayed `ack_timeout` message on
//! the `reconcile` queue (delay `NUSATRADE_ACK_TIMEOUT_SECS`, default 30 s). When it comes due the consumer applies
//! the timeout to the order — a no-op when the ack came in time — and, for a command still unacknowledged, asks the
//! connection for evidence.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::warn;
use uuid::Uuid;

use super::config::ReconcileSettings;
use super::jobs::{QUEUE, ReconcileJob};
use crate::connector::RequestId;
use crate::ports::Queue;

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
        let delay = ReconcileSettings::from_env().map(|s| s.ack_timeout).unwrap_or_else(|e| {
            warn!(error = %e, "ack timeout: using the default");
            ReconcileSettings::default().ack_timeout
        });
        AckTimeouts { queue, delay }
    }

    /// Schedules the timeout of command `request_id` (an order command: open, close or modify) sent at `sent_at`
    /// to the connector of `broker`. Best effort: when the queue is unavailable the order is still settled by the
    /// next snapshot of its connection (the 5-minute sweep), where a `pending` order past its timeout counts as
    /// unknown.
    pub async fn schedule(&self, user: Uuid, broker: Uuid, request_id: &str, sent_at: DateTime<Utc>) {
        if request_id.parse::<RequestId>().is_err() {
            return;
        }
        let job = ReconcileJob::AckTimeout {
            user_id: user,
            connection_id: broker,
            request_id: request_id.to_owned(),
            sent_at,
        };
        if let Err(e) = self.queue.send(QUEUE, &job.to_json(), self.delay).await {
            warn!(error = %e, request_id, "could not schedule the ack timeout; the connection sweep will settle the order");
        }
    }
}
