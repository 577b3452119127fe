//! SQS events → a [`QueueConsumer`]: the runner of every queue-worker function (`reconcile`, `backup`, ...).
//!
//! The SQS event source hands the function a batch of records; each record becomes a [`ReceivedMessage`] (id,
//! body, receipt handle, `ApproximateReceiveCount`) and is handled on its own, the records of a batch concurrently.
//! The answer is an [`SqsBatchResponse`] listing the records that failed (`batchItemFailures`, with the template's
//! `FunctionResponseTypes: [ReportBatchItemFailures]`): Lambda deletes the others and leaves the failed ones for
//! redelivery after the visibility timeout, and after the queue's `maxReceiveCount` SQS parks them in the
//! dead-letter queue, whose alarm tells an operator. A record without a message id cannot be reported alone: the
//! invocation fails and the whole batch is redelivered (consumers are idempotent).

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{LambdaEvent, service_fn};
use nusatrade_app::jobs::{JobError, QueueConsumer};
use nusatrade_app::ports::ReceivedMessage;
use tracing::{info, warn};

/// Why a batch could not be answered record by record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("SQS record {index} has no messageId: the batch cannot report it alone")]
    NoMessageId { index: usize },
}

/// The port's view of an SQS record; `Err` (with the message id) when the record has no body.
fn received(record: &SqsMessage, id: String) -> Result<ReceivedMessage, JobError> {
    let body = record.body.clone().ok_or_else(|| JobError::Invalid("SQS record without a body".into()))?;
    let receive_count =
        record.attributes.get("ApproximateReceiveCount").and_then(|n| n.trim().parse().ok()).unwrap_or(1);
    Ok(ReceivedMessage { id, body, receipt: record.receipt_handle.clone().unwrap_or_default(), receive_count })
}

/// Handles every record of `event` with `consumer`; the failed ones are listed in the response.
pub async fn handle_batch(consumer: &dyn QueueConsumer, event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
    let mut ids = Vec::with_capacity(event.records.len());
    for (index, r) in event.records.iter().enumerate() {
        match r.message_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => ids.push(id.to_owned()),
            None => return Err(BatchError::NoMessageId { index }),
        }
    }
    let handled = futures::future::join_all(event.records.iter().zip(ids).map(|(record, id)| async move {
        let outcome = match received(record, id.clone()) {
            Ok(message) => nusatrade_app::jobs::handle_counted(consumer, &message).await,
            Err(e) => Err(e),
        };
        (id, outcome)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    let total = handled.len();
    for (id, outcome) in handled {
        if let Err(e) = outcome {
            warn!(queue = consumer.queue(), message_id = %id, error = %e, "message failed: left for redelivery");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    info!(queue = consumer.queue(), records = total, failed = response.batch_item_failures.len(), "SQS batch handled");
    Ok(response)
}

/// Serves `consumer` on the Lambda runtime (an SQS event source with `ReportBatchItemFailures`).
pub async fn run(consumer: Arc<dyn QueueConsumer>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let consumer = consumer.clone();
        async move {
            let out = handle_batch(consumer.as_ref(), event.payload).await.map_err(lambda_runtime::Error::from);
            crate::emf::flush();
            out
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serde_json::{Value, json};

    use super::*;

    /// Fails messages whose body says so; records what it saw.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<ReceivedMessage>>,
    }

    #[async_trait]
    impl QueueConsumer for Recorder {
        fn queue(&self) -> &'static str {
            "reconcile"
        }
        async fn handle(&self, message: &ReceivedMessage) -> Result<(), JobError> {
            self.seen.lock().unwrap().push(message.clone());
            match message.body.as_str() {
                b if b.contains("transient") => Err(JobError::Unavailable("store down".into())),
                b if b.contains("poison") => Err(JobError::Invalid("unknown kind".into())),
                _ => Ok(()),
            }
        }
    }

    fn sample() -> Value {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/_samples/sqs-batch.json"))
                .expect("events/_samples/sqs-batch.json");
        serde_json::from_str(&text).unwrap()
    }

    fn event(v: Value) -> SqsEvent {
        serde_json::from_value(v).unwrap()
    }

    #[tokio::test]
    async fn every_record_is_handled_and_only_failures_are_reported() {
        let mut v = sample();
        let mut third = v["Records"][1].clone();
        third["messageId"] = json!("m-3");
        third["body"] = json!(r#"{"kind":"poison"}"#);
        v["Records"][1]["body"] = json!(r#"{"kind":"transient"}"#);
        v["Records"].as_array_mut().unwrap().push(third);
        let r = Recorder::default();
        let response = handle_batch(&r, event(v.clone())).await.unwrap();
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, [v["Records"][1]["messageId"].as_str().unwrap(), "m-3"]);
        let seen = r.seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].id, v["Records"][0]["messageId"].as_str().unwrap());
        assert_eq!(seen[0].receipt, v["Records"][0]["receiptHandle"].as_str().unwrap());
        assert_eq!((seen[0].receive_count, seen[1].receive_count), (1, 3), "ApproximateReceiveCount");
        assert!(seen[0].body.contains(r#""kind":"reconcile""#));
        // The response is what Lambda reads.
        let wire = serde_json::to_value(&response).unwrap();
        assert_eq!(wire["batchItemFailures"][1]["itemIdentifier"], "m-3");
    }

    #[tokio::test]
    async fn an_empty_batch_and_a_clean_batch_report_nothing() {
        let r = Recorder::default();
        let response = handle_batch(&r, event(json!({"Records": []}))).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        let response = handle_batch(&r, event(sample())).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(serde_json::to_value(&response).unwrap(), json!({"batchItemFailures": []}));
    }

    #[tokio::test]
    async fn a_record_without_body_fails_alone_one_without_id_fails_the_batch() {
        let mut v = sample();
        v["Records"][0].as_object_mut().unwrap().remove("body");
        let r = Recorder::default();
        let response = handle_batch(&r, event(v.clone())).await.unwrap();
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(r.seen.lock().unwrap().len(), 1, "the other record is still handled");

        v["Records"][1].as_object_mut().unwrap().remove("messageId");
        let r = Recorder::default();
        assert_eq!(handle_batch(&r, event(v)).await.unwrap_err(), BatchError::NoMessageId { index: 1 });
        assert!(r.seen.lock().unwrap().is_empty(), "nothing is handled when the batch cannot be reported");
    }
}
