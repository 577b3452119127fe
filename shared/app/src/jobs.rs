//! Queue consumers, written once: the SQS Lambda functions feed them the records of an SQS event
//! (`nusatrade_aws`), the local platform feeds them messages from its in-process queue
//! (`nusatrade_local`), with the same semantics — at-least-once delivery, so every consumer is
//! idempotent under redelivery.
//!
//! A consumer handles one message at a time and says what became of it. `Err` leaves the message on
//! the queue: it is redelivered after the visibility timeout and, after the queue's maximum receive
//! count (5 in the template), parked in the dead-letter queue, whose alarm tells an operator. In a
//! Lambda batch only the failed records are reported (`batchItemFailures`), so the others are not
//! redone.

use async_trait::async_trait;

use crate::ports::ReceivedMessage;

/// Why a message was not handled.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JobError {
    /// A dependency failed (store, blob store, queue, push): worth retrying as is.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// The message can never be handled (malformed, unknown kind). Retrying will not help; the
    /// message is still left on the queue so that it ends in the dead-letter queue for inspection,
    /// never silently dropped.
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// A consumer of one logical queue.
#[async_trait]
pub trait QueueConsumer: Send + Sync + 'static {
    /// The logical queue it consumes (`reconcile`, `backup`, ...: see `ports::Queue`).
    fn queue(&self) -> &'static str;
    /// Handles one message. `Ok` deletes it; `Err` leaves it for redelivery.
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), JobError>;
}

/// Handles one message with `consumer`, counting it ([`crate::telemetry`]: result and redeliveries). Both the SQS
/// event source and the local worker call this.
pub async fn handle_counted(consumer: &dyn QueueConsumer, message: &ReceivedMessage) -> Result<(), JobError> {
    let out = consumer.handle(message).await;
    let result = match &out {
        Ok(()) => "done",
        Err(JobError::Unavailable(_)) => "retried",
        Err(JobError::Invalid(_)) => "invalid",
    };
    crate::telemetry::queue_message(consumer.queue(), result, message.receive_count);
    out
}

/// A message put on a queue at a fixed rate: by EventBridge Scheduler in AWS (template.yaml), by the local
/// scheduler of `nusatrade serve` on a laptop — the same bodies, so the consumers cannot tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// A name for logs (the template's schedule carries the same body).
    pub name: &'static str,
    /// The logical queue.
    pub queue: &'static str,
    /// How often.
    pub every: std::time::Duration,
    /// The message body.
    pub body: &'static str,
}
