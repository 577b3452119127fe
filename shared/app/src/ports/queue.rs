//! The queue port (SQS in AWS, in-process locally): at-least-once delivery with a visibility timeout,
//! a receive count, a dead-letter queue after N receives, and delayed messages. Consumers must be
//! idempotent: a message can be delivered more than once.

use std::time::Duration;

use async_trait::async_trait;

/// SQS's largest message body.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SQS's longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// SQS's largest receive batch.
pub const MAX_RECEIVE_BATCH: u32 = 10;

/// A received message. Delete it with its `receipt` once handled; otherwise it becomes visible again
/// after the visibility timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub id: String,
    pub body: String,
    pub receipt: String,
    /// How many times this message has been received, this time included (1 on first delivery).
    pub receive_count: u32,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum QueueError {
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    #[error("invalid queue request: {0}")]
    Invalid(String),
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

/// Checks shared by the adapters.
pub fn validate_send(body: &str, delay: Duration) -> Result<(), QueueError> {
    if body.is_empty() || body.len() > MAX_MESSAGE_BYTES {
        return Err(QueueError::Invalid(format!(
            "message body of {} bytes outside 1..={MAX_MESSAGE_BYTES}",
            body.len()
        )));
    }
    if delay > MAX_DELAY {
        return Err(QueueError::Invalid(format!("delay {delay:?} exceeds {MAX_DELAY:?}")));
    }
    Ok(())
}

/// Checks shared by the adapters.
pub fn validate_receive(max: u32, visibility: Duration) -> Result<(), QueueError> {
    if !(1..=MAX_RECEIVE_BATCH).contains(&max) {
        return Err(QueueError::Invalid(format!("receive batch {max} outside 1..={MAX_RECEIVE_BATCH}")));
    }
    if visibility > MAX_VISIBILITY {
        return Err(QueueError::Invalid(format!("visibility {visibility:?} exceeds {MAX_VISIBILITY:?}")));
    }
    Ok(())
}

/// Queues are named logically (`reconcile`, `backup`, ...); each adapter maps a name to its queue and
/// knows its dead-letter queue (`<name>-dlq` by convention) and its maximum receive count.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Enqueues a message, invisible for `delay` (at most 15 minutes). Returns the message id.
    async fn send(&self, queue: &str, body: &str, delay: Duration) -> Result<String, QueueError>;
    /// Receives up to `max` (1..=10) visible messages, hiding them for `visibility`; waits up to
    /// `wait` for one to arrive. A message received more than the queue's maximum receive count is
    /// moved to the dead-letter queue instead of being delivered.
    async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;
    /// Deletes a handled message. An outdated receipt (the message was redelivered since) is ignored.
    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), QueueError>;
}

/// The dead-letter queue's logical name for a queue.
pub fn dlq_name(queue: &str) -> String {
    format!("{queue}-dlq")
}
