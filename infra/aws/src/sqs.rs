//! [`Queue`] on SQS. Logical queue names map to queue URLs; the dead-letter queue and the maximum
//! receive count are SQS's redrive policy on the queue itself (see [`SqsQueue::create_queue_pair`]).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use nusatrade_app::ports::queue::{dlq_name, validate_receive, validate_send};
use nusatrade_app::ports::{Queue, QueueError, ReceivedMessage};

use crate::error::describe;

/// SQS's longest long-poll wait.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// The SQS implementation of [`Queue`].
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    /// Logical name → queue URL.
    urls: HashMap<String, String>,
}

impl SqsQueue {
    pub fn new(client: Client, urls: HashMap<String, String>) -> Self {
        SqsQueue { client, urls }
    }

    /// Adds (or replaces) a queue.
    pub fn with_queue(mut self, name: impl Into<String>, url: impl Into<String>) -> Self {
        self.urls.insert(name.into(), url.into());
        self
    }

    pub fn urls(&self) -> &HashMap<String, String> {
        &self.urls
    }

    /// Creates `<name>-dlq` and `<name>` with a redrive policy sending a message to the dead-letter
    /// queue after `max_receives` receives. Returns `(url, dlq_url)`. Used by tests and emulator
    /// setups; production queues come from the template.
    pub async fn create_queue_pair(
        client: &Client,
        name: &str,
        max_receives: u32,
    ) -> Result<(String, String), QueueError> {
        let dlq = dlq_name(name);
        let dlq_url = client
            .create_queue()
            .queue_name(&dlq)
            .send()
            .await
            .map_err(|e| unavailable("CreateQueue", &e))?
            .queue_url
            .ok_or_else(|| QueueError::Unavailable(format!("CreateQueue {dlq}: no URL returned")))?;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| unavailable("GetQueueAttributes", &e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| QueueError::Unavailable(format!("GetQueueAttributes {dlq}: no ARN returned")))?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receives.to_string(),
        });
        let url = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
            .send()
            .await
            .map_err(|e| unavailable("CreateQueue", &e))?
            .queue_url
            .ok_or_else(|| QueueError::Unavailable(format!("CreateQueue {name}: no URL returned")))?;
        Ok((url, dlq_url))
    }

    /// The URL of a logical queue (exact name first, then the environment spelling's equivalent).
    fn url(&self, queue: &str) -> Result<&str, QueueError> {
        self.urls
            .get(queue)
            .or_else(|| self.urls.get(&queue.to_ascii_lowercase().replace('_', "-")))
            .map(String::as_str)
            .ok_or_else(|| QueueError::UnknownQueue(queue.to_owned()))
    }
}

fn unavailable<E, R>(operation: &str, err: &SdkError<E, R>) -> QueueError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    QueueError::Unavailable(describe(operation, err))
}

/// Maps an SQS error: a missing queue is an unknown queue, a refused parameter an invalid request.
fn queue_error<E, R>(queue: &str, operation: &str, err: &SdkError<E, R>) -> QueueError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match err.code() {
        Some(c) if c.contains("NonExistentQueue") || c.contains("QueueDoesNotExist") => {
            QueueError::UnknownQueue(queue.to_owned())
        }
        Some(c)
            if c.contains("InvalidParameterValue")
                || c.contains("InvalidMessageContents")
                || c == "MissingParameter" =>
        {
            QueueError::Invalid(format!("{operation}: {}", err.message().unwrap_or(c)))
        }
        _ => unavailable(operation, err),
    }
}

/// Whole seconds, rounding a fraction up (a 500 ms visibility must not become 0).
fn seconds_ceil(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(s).unwrap_or(i32::MAX)
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: &str, body: &str, delay: Duration) -> Result<String, QueueError> {
        validate_send(body, delay)?;
        let url = self.url(queue)?;
        let mut req = self.client.send_message().queue_url(url).message_body(body);
        if url.ends_with(".fifo") {
            // FIFO queues: one group per logical queue; no per-message delay.
            if !delay.is_zero() {
                return Err(QueueError::Invalid(format!(
                    "queue {queue} is FIFO: per-message delays are not supported"
                )));
            }
            req = req.message_group_id(queue).message_deduplication_id(uuid::Uuid::new_v4().simple().to_string());
        } else {
            req = req.delay_seconds(seconds_ceil(delay));
        }
        let out = req.send().await.map_err(|e| queue_error(queue, "SendMessage", &e))?;
        out.message_id.ok_or_else(|| QueueError::Unavailable("SendMessage: no message id returned".into()))
    }

    async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        validate_receive(max, visibility)?;
        let url = self.url(queue)?;
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .visibility_timeout(seconds_ceil(visibility))
            .wait_time_seconds(seconds_ceil(wait.min(MAX_WAIT)))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| queue_error(queue, "ReceiveMessage", &e))?;
        let mut messages = Vec::new();
        for m in out.messages.unwrap_or_default() {
            let receive_count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(1);
            let (Some(id), Some(receipt)) = (m.message_id, m.receipt_handle) else {
                tracing::warn!(queue, "SQS returned a message without id or receipt handle; skipped");
                continue;
            };
            messages.push(ReceivedMessage { id, body: m.body.unwrap_or_default(), receipt, receive_count });
        }
        Ok(messages)
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), QueueError> {
        if receipt.is_empty() {
            return Err(QueueError::Invalid("empty receipt".into()));
        }
        let url = self.url(queue)?;
        match self.client.delete_message().queue_url(url).receipt_handle(receipt).send().await {
            Ok(_) => Ok(()),
            // An outdated receipt (the message was redelivered or already deleted) is ignored.
            Err(e) if matches!(e.as_service_error(), Some(DeleteMessageError::ReceiptHandleIsInvalid(_))) => {
                tracing::debug!(queue, "ignoring an outdated SQS receipt");
                Ok(())
            }
            Err(e) if e.code().is_some_and(|c| c.contains("ReceiptHandleIsInvalid")) => Ok(()),
            Err(e) => Err(queue_error(queue, "DeleteMessage", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds_ceil(Duration::ZERO), 0);
        assert_eq!(seconds_ceil(Duration::from_millis(500)), 1);
        assert_eq!(seconds_ceil(Duration::from_secs(30)), 30);
    }
}
