//! In-process queues with SQS's delivery semantics: at-least-once delivery, a visibility timeout, a
//! receive count, delayed messages, long polling and a dead-letter queue.
//!
//! - Time (delays, visibility) follows the queue's [`Clock`], so tests drive it with a
//!   `ManualClock`. Long polling waits in real (tokio) time: a receiver wakes at once when a message
//!   is sent, and otherwise re-checks the clock at least every [`POLL_INTERVAL`] until `wait` ends.
//! - Messages are handed out oldest first (SQS standard queues promise no order; this is one valid
//!   order). A redelivered message keeps its place.
//! - Every delivery gets a fresh receipt; deleting with an outdated receipt (the message has been
//!   delivered again since) or an unknown one is a no-op.
//! - A queue made by [`LocalQueue::with_queue`] has a dead-letter queue `<name>-dlq` (see
//!   [`dlq_name`]). When a visible message has already been received `max_receives` times, the next
//!   receive moves it to the dead-letter queue instead of delivering it. There it keeps its id and
//!   body but its receive count starts again from zero (its first receive from the dead-letter queue
//!   reports 1; SQS would carry the count over). Dead-letter queues have no dead-letter queue of their
//!   own: their messages are redelivered indefinitely.
//! - Nothing is persisted: queued messages are lost when the process stops.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nusatrade_app::ports::queue::{dlq_name, validate_receive, validate_send};
use nusatrade_app::ports::{Clock, Queue, QueueError, ReceivedMessage};
use tokio::sync::Notify;

/// Longest a waiting receiver goes without re-checking the queue's clock.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

#[derive(Debug)]
struct Message {
    id: String,
    body: String,
    visible_at: DateTime<Utc>,
    receive_count: u32,
    /// The receipt of the latest delivery.
    receipt: Option<String>,
}

#[derive(Debug)]
struct QueueState {
    /// `None`: never moved to a dead-letter queue.
    max_receives: Option<u32>,
    dlq: Option<String>,
    /// Every message, by arrival order (`seq`).
    messages: BTreeMap<u64, Message>,
    /// The visible messages' `seq`s, oldest first.
    ready: BTreeSet<u64>,
    /// The hidden (delayed or in flight) messages, by the time they become visible.
    hidden: BTreeSet<(DateTime<Utc>, u64)>,
    notify: Arc<Notify>,
}

impl QueueState {
    fn new(max_receives: Option<u32>, dlq: Option<String>) -> Self {
        QueueState {
            max_receives,
            dlq,
            messages: BTreeMap::new(),
            ready: BTreeSet::new(),
            hidden: BTreeSet::new(),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Moves the messages whose time has come from `hidden` to `ready` (each step O(log n), so a queue holding
    /// many delayed messages — an ack timeout per trade command — costs nothing per receive).
    fn reveal(&mut self, now: DateTime<Utc>) {
        while let Some(&(at, seq)) = self.hidden.first() {
            if at > now {
                break;
            }
            self.hidden.pop_first();
            self.ready.insert(seq);
        }
    }

    /// Hides a message until `at` (it must be in `messages`).
    fn hide(&mut self, seq: u64, at: DateTime<Utc>) {
        self.ready.remove(&seq);
        if let Some(m) = self.messages.get_mut(&seq) {
            self.hidden.remove(&(m.visible_at, seq));
            m.visible_at = at;
        }
        self.hidden.insert((at, seq));
    }

    fn remove(&mut self, seq: u64) -> Option<Message> {
        let m = self.messages.remove(&seq)?;
        self.ready.remove(&seq);
        self.hidden.remove(&(m.visible_at, seq));
        Some(m)
    }
}

#[derive(Debug, Default)]
struct Inner {
    queues: HashMap<String, QueueState>,
    next_seq: u64,
}

impl Inner {
    fn queue(&mut self, name: &str) -> Result<&mut QueueState, QueueError> {
        self.queues.get_mut(name).ok_or_else(|| QueueError::UnknownQueue(name.to_owned()))
    }

    /// Adds a message; receivers are woken only when it is visible at once (a delayed one is found by the
    /// receivers' timed re-checks).
    fn push(&mut self, queue: &str, message: Message, now: DateTime<Utc>) -> Result<(), QueueError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let q = self.queue(queue)?;
        let visible_at = message.visible_at;
        q.messages.insert(seq, message);
        if visible_at <= now {
            q.ready.insert(seq);
            q.notify.notify_waiters();
        } else {
            q.hidden.insert((visible_at, seq));
        }
        Ok(())
    }
}

/// The in-process implementation of [`Queue`]. Cheap to clone (clones share the queues).
#[derive(Clone)]
pub struct LocalQueue {
    clock: Arc<dyn Clock>,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for LocalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQueue").finish_non_exhaustive()
    }
}

fn chrono_duration(d: Duration) -> Result<chrono::Duration, QueueError> {
    chrono::Duration::from_std(d).map_err(|_| QueueError::Invalid(format!("duration {d:?} out of range")))
}

impl LocalQueue {
    /// No queues yet: add them with [`LocalQueue::with_queue`].
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        LocalQueue { clock, inner: Arc::new(Mutex::new(Inner::default())) }
    }

    /// Adds queue `name`, whose messages move to `<name>-dlq` (also created) when received more than
    /// `max_receives` times (at least 1). Re-adding a queue changes its settings and keeps its
    /// messages.
    pub fn with_queue(self, name: &str, max_receives: u32) -> Self {
        {
            let mut inner = self.lock();
            let dlq = dlq_name(name);
            inner.queues.entry(dlq.clone()).or_insert_with(|| QueueState::new(None, None));
            let q = inner.queues.entry(name.to_owned()).or_insert_with(|| QueueState::new(None, None));
            q.max_receives = Some(max_receives.max(1));
            q.dlq = Some(dlq);
        }
        self
    }

    /// How many messages the queue holds (visible, in flight or delayed).
    pub fn message_count(&self, queue: &str) -> Result<usize, QueueError> {
        Ok(self.lock().queue(queue)?.messages.len())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent even if a holder panicked: every mutation is a single step.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One non-blocking receive attempt. Also returns, when nothing was received, how long (by the
    /// clock) until the next hidden message becomes visible.
    fn try_receive(
        &self,
        queue: &str,
        max: u32,
        visibility: chrono::Duration,
    ) -> Result<(Vec<ReceivedMessage>, Option<Duration>), QueueError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let q = inner.queue(queue)?;
        q.reveal(now);
        let mut out = Vec::new();
        let mut dead = Vec::new();
        while out.len() < max as usize {
            let Some(&seq) = q.ready.first() else { break };
            let receives = q.messages.get(&seq).map_or(0, |m| m.receive_count);
            if q.dlq.is_some() && q.max_receives.is_some_and(|n| receives >= n) {
                dead.extend(q.remove(seq));
                continue;
            }
            q.hide(seq, now + visibility);
            let Some(m) = q.messages.get_mut(&seq) else { continue };
            // The receipt names the message's place, so a delete finds it without a search.
            let receipt = format!("{seq}.{}.{}", m.id, uuid::Uuid::new_v4().simple());
            m.receive_count += 1;
            m.receipt = Some(receipt.clone());
            out.push(ReceivedMessage {
                id: m.id.clone(),
                body: m.body.clone(),
                receipt,
                receive_count: m.receive_count,
            });
        }
        let next_visible = q.hidden.first().and_then(|(at, _)| (*at - now).to_std().ok());
        if let Some(dlq) = q.dlq.clone() {
            for mut m in dead {
                tracing::warn!(queue, dlq = %dlq, message_id = %m.id, receives = m.receive_count, "message moved to the dead-letter queue");
                m.receive_count = 0;
                m.receipt = None;
                m.visible_at = now;
                inner.push(&dlq, m, now)?;
            }
        }
        Ok((out, next_visible))
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn send(&self, queue: &str, body: &str, delay: Duration) -> Result<String, QueueError> {
        validate_send(body, delay)?;
        let visible_at = self.clock.now() + chrono_duration(delay)?;
        let id = uuid::Uuid::new_v4().to_string();
        let message = Message { id: id.clone(), body: body.to_owned(), visible_at, receive_count: 0, receipt: None };
        self.lock().push(queue, message, self.clock.now())?;
        Ok(id)
    }

    async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        validate_receive(max, visibility)?;
        let visibility = chrono_duration(visibility)?;
        let notify = Arc::clone(&self.lock().queue(queue)?.notify);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register for wake-ups before looking, so that a send in between is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (got, next_visible) = self.try_receive(queue, max, visibility)?;
            if !got.is_empty() {
                return Ok(got);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(got);
            }
            let mut nap = (deadline - now).min(POLL_INTERVAL);
            if let Some(d) = next_visible {
                nap = nap.min(d.max(Duration::from_millis(1)));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), QueueError> {
        if receipt.is_empty() {
            return Err(QueueError::Invalid("empty receipt".into()));
        }
        let mut inner = self.lock();
        let q = inner.queue(queue)?;
        // An unknown, malformed or outdated receipt is a no-op.
        let seq = receipt.split_once('.').and_then(|(seq, _)| seq.parse::<u64>().ok());
        if let Some(seq) = seq
            && q.messages.get(&seq).is_some_and(|m| m.receipt.as_deref() == Some(receipt))
        {
            q.remove(seq);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nusatrade_app::ports::ManualClock;

    fn setup() -> (Arc<ManualClock>, LocalQueue) {
        let clock = Arc::new(ManualClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap()));
        let q = LocalQueue::new(clock.clone()).with_queue("work", 2);
        (clock, q)
    }

    const NO_WAIT: Duration = Duration::ZERO;
    const VIS: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn unknown_queue_and_invalid_requests_are_refused() {
        let (_, q) = setup();
        assert_eq!(q.send("nope", "x", NO_WAIT).await, Err(QueueError::UnknownQueue("nope".into())));
        assert!(matches!(q.receive("nope", 1, VIS, NO_WAIT).await, Err(QueueError::UnknownQueue(_))));
        assert!(matches!(q.delete("nope", "r").await, Err(QueueError::UnknownQueue(_))));
        assert!(matches!(q.send("work", "", NO_WAIT).await, Err(QueueError::Invalid(_))));
        assert!(matches!(q.send("work", "x", Duration::from_secs(901)).await, Err(QueueError::Invalid(_))));
        assert!(matches!(q.receive("work", 0, VIS, NO_WAIT).await, Err(QueueError::Invalid(_))));
        assert!(matches!(q.receive("work", 11, VIS, NO_WAIT).await, Err(QueueError::Invalid(_))));
        // The dead-letter queue exists.
        assert_eq!(q.receive("work-dlq", 1, VIS, NO_WAIT).await, Ok(vec![]));
    }

    #[tokio::test]
    async fn visibility_timeout_redelivers_with_fresh_receipts() {
        let (clock, q) = setup();
        let id = q.send("work", "hello", NO_WAIT).await.unwrap();
        let first = q.receive("work", 10, VIS, NO_WAIT).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].id.as_str(), first[0].body.as_str(), first[0].receive_count), (id.as_str(), "hello", 1));
        // Hidden while in flight.
        assert!(q.receive("work", 10, VIS, NO_WAIT).await.unwrap().is_empty());
        clock.advance(chrono::Duration::seconds(29));
        assert!(q.receive("work", 10, VIS, NO_WAIT).await.unwrap().is_empty());
        clock.advance(chrono::Duration::seconds(1));
        let second = q.receive("work", 10, VIS, NO_WAIT).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].receive_count, 2);
        assert_ne!(second[0].receipt, first[0].receipt);
        // The outdated receipt deletes nothing.
        q.delete("work", &first[0].receipt).await.unwrap();
        assert_eq!(q.message_count("work").unwrap(), 1);
        q.delete("work", &second[0].receipt).await.unwrap();
        assert_eq!(q.message_count("work").unwrap(), 0);
        // Deleting twice is fine.
        q.delete("work", &second[0].receipt).await.unwrap();
    }

    #[tokio::test]
    async fn delayed_messages_wait_for_the_clock() {
        let (clock, q) = setup();
        q.send("work", "later", Duration::from_secs(60)).await.unwrap();
        q.send("work", "now", NO_WAIT).await.unwrap();
        let got = q.receive("work", 10, VIS, NO_WAIT).await.unwrap();
        assert_eq!(got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["now"]);
        q.delete("work", &got[0].receipt).await.unwrap();
        clock.advance(chrono::Duration::seconds(60));
        let got = q.receive("work", 10, VIS, NO_WAIT).await.unwrap();
        assert_eq!(got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["later"]);
    }

    /// Thousands of delayed messages (one ack timeout per trade command) around immediate ones: the immediate
    /// ones come at once, oldest first; the delayed ones when due, in arrival order, a redelivered one keeping its
    /// place; receipts of deleted, redelivered or made-up messages change nothing.
    #[tokio::test]
    async fn many_delayed_messages_among_immediate_ones() {
        let (clock, q) = setup();
        for i in 0..5_000 {
            q.send("work", &format!("late{i}"), Duration::from_secs(30 + (i % 3))).await.unwrap();
            if i % 1_000 == 0 {
                q.send("work", &format!("now{i}"), NO_WAIT).await.unwrap();
            }
        }
        let got = q.receive("work", 10, VIS, NO_WAIT).await.unwrap();
        let bodies: Vec<_> = got.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, vec!["now0", "now1000", "now2000", "now3000", "now4000"]);
        for m in &got {
            q.delete("work", &m.receipt).await.unwrap();
        }
        for junk in ["", "x", "12", "99999999.a.b", "0.nope.receipt"] {
            let _ = q.delete("work", junk).await;
        }
        assert_eq!(q.message_count("work").unwrap(), 5_000);
        clock.advance(chrono::Duration::seconds(30));
        let first = q.receive("work", 3, VIS, NO_WAIT).await.unwrap();
        assert_eq!(first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["late0", "late3", "late6"]);
        clock.advance(chrono::Duration::seconds(2));
        let mut seen = 3;
        loop {
            let batch = q.receive("work", 10, VIS, NO_WAIT).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for m in batch {
                seen += 1;
                q.delete("work", &m.receipt).await.unwrap();
            }
        }
        assert_eq!(seen, 5_000);
        // The first three were not deleted: back after their visibility timeout, in their old order.
        clock.advance(chrono::Duration::seconds(30));
        let again = q.receive("work", 10, VIS, NO_WAIT).await.unwrap();
        assert_eq!(
            again.iter().map(|m| (m.body.as_str(), m.receive_count)).collect::<Vec<_>>(),
            vec![("late0", 2), ("late3", 2), ("late6", 2)]
        );
        q.delete("work", &first[0].receipt).await.unwrap();
        assert_eq!(q.message_count("work").unwrap(), 3, "an outdated receipt deletes nothing");
    }

    #[tokio::test]
    async fn batches_are_capped_and_oldest_first() {
        let (_, q) = setup();
        for i in 0..5 {
            q.send("work", &format!("m{i}"), NO_WAIT).await.unwrap();
        }
        let a = q.receive("work", 3, VIS, NO_WAIT).await.unwrap();
        let b = q.receive("work", 3, VIS, NO_WAIT).await.unwrap();
        assert_eq!(a.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["m0", "m1", "m2"]);
        assert_eq!(b.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["m3", "m4"]);
    }

    #[tokio::test]
    async fn poison_messages_move_to_the_dead_letter_queue() {
        let (clock, q) = setup();
        let id = q.send("work", "poison", NO_WAIT).await.unwrap();
        for n in 1..=2 {
            let got = q.receive("work", 1, VIS, NO_WAIT).await.unwrap();
            assert_eq!(got[0].receive_count, n);
            clock.advance(chrono::Duration::seconds(31));
        }
        // The third receive would exceed max_receives = 2: moved instead of delivered.
        assert!(q.receive("work", 1, VIS, NO_WAIT).await.unwrap().is_empty());
        assert_eq!(q.message_count("work").unwrap(), 0);
        let dead = q.receive("work-dlq", 1, VIS, NO_WAIT).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].id.as_str(), dead[0].body.as_str(), dead[0].receive_count), (id.as_str(), "poison", 1));
        q.delete("work-dlq", &dead[0].receipt).await.unwrap();
        assert_eq!(q.message_count("work-dlq").unwrap(), 0);
    }

    #[tokio::test]
    async fn long_poll_returns_as_soon_as_a_message_arrives() {
        let (_, q) = setup();
        let sender = q.clone();
        let started = std::time::Instant::now();
        let send = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sender.send("work", "wake", NO_WAIT).await.unwrap();
        });
        let got = q.receive("work", 1, VIS, Duration::from_secs(10)).await.unwrap();
        send.await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(5), "long poll did not wake up");
        // With nothing to receive, the wait is honoured.
        let started = std::time::Instant::now();
        assert!(q.receive("work", 1, VIS, Duration::from_millis(120)).await.unwrap().is_empty());
        assert!(started.elapsed() >= Duration::from_millis(120));
    }

    #[tokio::test]
    async fn long_poll_notices_a_manual_clock_moving() {
        let (clock, q) = setup();
        q.send("work", "delayed", Duration::from_secs(5)).await.unwrap();
        let mover = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            clock.advance(chrono::Duration::seconds(5));
        });
        let got = q.receive("work", 1, VIS, Duration::from_secs(5)).await.unwrap();
        mover.await.unwrap();
        assert_eq!(got.len(), 1);
    }
}
