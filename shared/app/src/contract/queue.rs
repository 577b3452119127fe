//! Queue contract cases. They run on real time with short timeouts (SQS has no fake clock).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::unique;
use crate::ports::queue::dlq_name;
use crate::ports::*;

/// Builds a queue adapter on which `name` exists with a dead-letter queue (`name-dlq`) that
/// receives a message after `max_receives` receives.
#[async_trait]
pub trait QueueFactory: Sync {
    async fn queue(&self, name: &str, max_receives: u32) -> Arc<dyn Queue>;
}

/// A queue double for tests and benchmarks of the queue's producers: it records every message sent and
/// delivers nothing (the test hands the messages it wants to the consumer itself).
pub struct RecordingQueue {
    clock: Arc<dyn Clock>,
    /// What was sent, in order.
    pub sent: Mutex<Vec<SentMessage>>,
}

/// A message a [`RecordingQueue`] recorded.
#[derive(Clone, Debug)]
pub struct SentMessage {
    pub queue: String,
    pub body: String,
    pub delay: Duration,
    /// When it would become visible: sent time (by the queue's clock) + delay.
    pub due: DateTime<Utc>,
}

impl RecordingQueue {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        RecordingQueue { clock, sent: Mutex::new(Vec::new()) }
    }

    /// Removes and returns the messages `pick` selects; the others stay, in order.
    pub fn take_where(&self, pick: impl Fn(&SentMessage) -> bool) -> Vec<SentMessage> {
        let mut sent = self.sent.lock().unwrap();
        let (picked, rest) = sent.drain(..).partition(|m| pick(m));
        *sent = rest;
        picked
    }

    /// Removes and returns every message.
    pub fn take(&self) -> Vec<SentMessage> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

#[async_trait]
impl Queue for RecordingQueue {
    async fn send(&self, queue: &str, body: &str, delay: Duration) -> Result<String, QueueError> {
        let due = self.clock.now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        let message = SentMessage { queue: queue.to_owned(), body: body.to_owned(), delay, due };
        self.sent.lock().unwrap().push(message);
        Ok(uuid::Uuid::new_v4().to_string())
    }
    async fn receive(&self, _: &str, _: u32, _: Duration, _: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), QueueError> {
        Ok(())
    }
}

const NO_WAIT: Duration = Duration::ZERO;

async fn receive_within(
    q: &Arc<dyn Queue>,
    name: &str,
    visibility: Duration,
    within: Duration,
) -> Vec<ReceivedMessage> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = q.receive(name, 10, visibility, Duration::from_secs(1)).await.unwrap();
        if !got.is_empty() || tokio::time::Instant::now() >= deadline {
            return got;
        }
    }
}

pub async fn send_receive_delete(f: &impl QueueFactory) {
    let name = unique("work");
    let q = f.queue(&name, 5).await;
    let id = q.send(&name, r#"{"job":"reconcile","n":1}"#, Duration::ZERO).await.unwrap();
    assert!(!id.is_empty());
    let got = receive_within(&q, &name, Duration::from_secs(30), Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, r#"{"job":"reconcile","n":1}"#);
    assert_eq!(got[0].receive_count, 1);
    assert_eq!(got[0].id, id);
    // invisible while being handled
    assert!(q.receive(&name, 10, Duration::from_secs(30), NO_WAIT).await.unwrap().is_empty());
    q.delete(&name, &got[0].receipt).await.unwrap();
    assert!(q.receive(&name, 10, Duration::from_secs(1), NO_WAIT).await.unwrap().is_empty());
}

pub async fn visibility_timeout_redelivers_with_count(f: &impl QueueFactory) {
    let name = unique("work");
    let q = f.queue(&name, 5).await;
    q.send(&name, "m", Duration::ZERO).await.unwrap();
    let first = receive_within(&q, &name, Duration::from_secs(1), Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    // not deleted: it comes back after the visibility timeout, counted
    let second = receive_within(&q, &name, Duration::from_secs(1), Duration::from_secs(6)).await;
    assert_eq!(second.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt, first[0].receipt);
    q.delete(&name, &second[0].receipt).await.unwrap();
}

pub async fn dead_letter_after_max_receives(f: &impl QueueFactory) {
    let name = unique("work");
    let q = f.queue(&name, 2).await;
    q.send(&name, "poison", Duration::ZERO).await.unwrap();
    for expected in 1..=2 {
        let got = receive_within(&q, &name, Duration::from_secs(1), Duration::from_secs(6)).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, expected);
    }
    // a third receive moves it to the dead-letter queue instead of delivering it
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut dead = Vec::new();
    while dead.is_empty() && tokio::time::Instant::now() < deadline {
        let again = q.receive(&name, 10, Duration::from_secs(1), Duration::from_secs(1)).await.unwrap();
        assert!(again.is_empty(), "delivered beyond max receives: {again:?}");
        dead = q.receive(&dlq_name(&name), 10, Duration::from_secs(30), NO_WAIT).await.unwrap();
    }
    assert_eq!(dead.len(), 1, "message reached the dead-letter queue");
    assert_eq!(dead[0].body, "poison");
}

pub async fn delayed_message_is_invisible_until_due(f: &impl QueueFactory) {
    let name = unique("work");
    let q = f.queue(&name, 5).await;
    // 5 s: the receive right after must land before it is due even on a slow emulator.
    q.send(&name, "later", Duration::from_secs(5)).await.unwrap();
    assert!(q.receive(&name, 10, Duration::from_secs(30), NO_WAIT).await.unwrap().is_empty());
    let got = receive_within(&q, &name, Duration::from_secs(30), Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "later");
}

pub async fn stale_receipt_delete_is_harmless(f: &impl QueueFactory) {
    let name = unique("work");
    let q = f.queue(&name, 5).await;
    q.send(&name, "m", Duration::ZERO).await.unwrap();
    let first = receive_within(&q, &name, Duration::from_secs(1), Duration::from_secs(5)).await;
    let second = receive_within(&q, &name, Duration::from_secs(30), Duration::from_secs(6)).await;
    assert_eq!(second.len(), 1);
    // deleting twice with the same receipt is fine (redelivered consumers race like this)
    q.delete(&name, &second[0].receipt).await.unwrap();
    q.delete(&name, &second[0].receipt).await.unwrap();
    let _ = q.delete(&name, &first[0].receipt).await;
    assert!(q.receive(&name, 10, Duration::from_secs(1), NO_WAIT).await.unwrap().is_empty());
}

pub async fn invalid_requests_are_refused(f: &impl QueueFactory) {
    let name = unique("work");
    let q = f.queue(&name, 5).await;
    assert!(matches!(q.send(&name, "", Duration::ZERO).await, Err(QueueError::Invalid(_))));
    assert!(matches!(q.send(&name, &"x".repeat(256 * 1024 + 1), Duration::ZERO).await, Err(QueueError::Invalid(_))));
    assert!(matches!(q.send(&name, "m", Duration::from_secs(901)).await, Err(QueueError::Invalid(_))));
    assert!(matches!(q.receive(&name, 11, Duration::from_secs(1), NO_WAIT).await, Err(QueueError::Invalid(_))));
    assert!(matches!(q.receive(&name, 0, Duration::from_secs(1), NO_WAIT).await, Err(QueueError::Invalid(_))));
    assert!(matches!(q.send(&unique("missing"), "m", Duration::ZERO).await, Err(QueueError::UnknownQueue(_))));
}
