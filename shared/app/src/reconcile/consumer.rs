//! The consumer of the `reconcile` queue: reads each message ([`ReconcileJob`]) and hands it to the service.

use async_trait::async_trait;

use super::jobs::{QUEUE, ReconcileJob};
use super::service::ReconcileService;
use crate::jobs::{JobError, QueueConsumer};
use crate::ports::ReceivedMessage;

/// The consumer of the `reconcile` queue.
#[derive(Clone)]
pub struct ReconcileConsumer {
    pub service: ReconcileService,
}

#[async_trait]
impl QueueConsumer for ReconcileConsumer {
    fn queue(&self) -> &'static str {
        QUEUE
    }

    async fn handle(&self, message: &ReceivedMessage) -> Result<(), JobError> {
        let job = ReconcileJob::parse(&message.body)?;
        let result = self.service.handle(job).await;
        if let Err(e) = &result {
            tracing::warn!(message_id = %message.id, receives = message.receive_count, error = %e, "reconcile message not handled");
        }
        result
    }
}
