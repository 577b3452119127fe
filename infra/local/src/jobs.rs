//! Queue workers and schedules on a laptop: what the SQS event sources and EventBridge Scheduler do in AWS.
//!
//! * [`spawn_worker`]: one loop per [`QueueConsumer`] on the in-process queue — receive with a long poll (a batch of
//!   up to 10, hidden for the visibility timeout), handle the batch's messages concurrently, delete each handled one
//!   (`Ok`), leave a failed one (`Err`) to reappear after the visibility timeout, and after the queue's maximum
//!   receive count (the template's 5) to be moved to `<queue>-dlq` by the queue itself. It stops on shutdown
//!   (between batches; a batch in hand is finished first).
//! * [`spawn_scheduler`]: puts each [`Schedule`]'s body on its queue every `every` (first after one period, as a
//!   rate schedule does), until shutdown.

use std::sync::Arc;
use std::time::Duration;

use nusatrade_app::jobs::{QueueConsumer, Schedule};
use nusatrade_app::ports::{Queue, ReceivedMessage};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// How a worker polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Messages per receive (1–10).
    pub batch: u32,
    /// How long a received message stays hidden; also the longest a message may take to handle.
    pub visibility: Duration,
    /// Long-poll wait of one receive.
    pub wait: Duration,
    /// Pause after the queue itself failed.
    pub retry_after: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            batch: 10,
            visibility: Duration::from_secs(60),
            wait: Duration::from_secs(20),
            retry_after: Duration::from_secs(1),
        }
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // A dropped sender counts as a shutdown too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Handles one message: `Ok` deletes it, `Err` (or running past the visibility timeout) leaves it.
async fn handle_one(queue: &dyn Queue, consumer: &dyn QueueConsumer, cfg: WorkerConfig, m: ReceivedMessage) {
    let name = consumer.queue();
    match tokio::time::timeout(cfg.visibility, nusatrade_app::jobs::handle_counted(consumer, &m)).await {
        Ok(Ok(())) => {
            if let Err(e) = queue.delete(name, &m.receipt).await {
                warn!(queue = name, message_id = %m.id, error = %e, "handled message not deleted: it will be redelivered");
            }
        }
        Ok(Err(e)) => {
            warn!(queue = name, message_id = %m.id, receives = m.receive_count, error = %e, "message failed: left for redelivery")
        }
        Err(_) => {
            warn!(queue = name, message_id = %m.id, "message took longer than its visibility timeout: left for redelivery")
        }
    }
}

/// Runs `consumer` on `queue` until `shutdown` turns true.
pub fn spawn_worker(
    queue: Arc<dyn Queue>,
    consumer: Arc<dyn QueueConsumer>,
    cfg: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let name = consumer.queue();
        info!(queue = name, "queue worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let received = tokio::select! {
                _ = stopped(&mut shutdown) => break,
                r = queue.receive(name, cfg.batch, cfg.visibility, cfg.wait) => r,
            };
            let messages = match received {
                Ok(m) => m,
                Err(e) => {
                    warn!(queue = name, error = %e, "receive failed");
                    tokio::select! {
                        _ = stopped(&mut shutdown) => break,
                        _ = tokio::time::sleep(cfg.retry_after) => continue,
                    }
                }
            };
            if !messages.is_empty() {
                debug!(queue = name, messages = messages.len(), "batch received");
            }
            let batch = messages.into_iter().map(|m| handle_one(queue.as_ref(), consumer.as_ref(), cfg, m));
            futures::future::join_all(batch).await;
        }
        info!(queue = name, "queue worker stopped");
    })
}

/// Puts every schedule's body on its queue at its rate until `shutdown` turns true.
pub fn spawn_scheduler(
    queue: Arc<dyn Queue>,
    schedules: Vec<Schedule>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    schedules
        .into_iter()
        .map(|s| {
            let queue = queue.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval_at(tokio::time::Instant::now() + s.every, s.every);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stopped(&mut shutdown) => break,
                        _ = every.tick() => {}
                    }
                    match queue.send(s.queue, s.body, Duration::ZERO).await {
                        Ok(_) => debug!(schedule = s.name, queue = s.queue, "scheduled message sent"),
                        Err(e) => warn!(schedule = s.name, queue = s.queue, error = %e, "scheduled message not sent"),
                    }
                }
            })
        })
        .collect()
}

/// How often [`spawn_depth_sampler`] reads the queues' depths.
pub const DEPTH_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Sets the `queue_depth` gauge of every work queue (and its dead-letter queue) every [`DEPTH_SAMPLE_EVERY`]
/// until `shutdown` turns true (SQS publishes its own depth metrics in AWS).
pub fn spawn_depth_sampler(
    queue: Arc<crate::adapters::LocalQueue>,
    queues: &'static [(&'static str, u32)],
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(DEPTH_SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => break,
                _ = every.tick() => {}
            }
            for (name, _) in queues {
                let dlq = nusatrade_app::ports::queue::dlq_name(name);
                for q in [name.to_string(), dlq] {
                    if let Ok(n) = queue.message_count(&q) {
                        metrics::gauge!(nusatrade_app::telemetry::QUEUE_DEPTH, "queue" => q).set(n as f64);
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use nusatrade_app::jobs::JobError;
    use nusatrade_app::ports::{Clock, SystemClock};

    use super::*;
    use crate::adapters::LocalQueue;

    /// Fails a message until it has been received `fail_until` times; records deliveries.
    struct Flaky {
        fail_until: u32,
        seen: Mutex<Vec<(String, u32)>>,
    }

    #[async_trait]
    impl QueueConsumer for Flaky {
        fn queue(&self) -> &'static str {
            "work"
        }
        async fn handle(&self, m: &ReceivedMessage) -> Result<(), JobError> {
            self.seen.lock().unwrap().push((m.body.clone(), m.receive_count));
            if m.body == "poison" {
                return Err(JobError::Invalid("never".into()));
            }
            if m.receive_count < self.fail_until { Err(JobError::Unavailable("later".into())) } else { Ok(()) }
        }
    }

    fn fast() -> WorkerConfig {
        WorkerConfig {
            batch: 10,
            visibility: Duration::from_millis(100),
            wait: Duration::from_millis(50),
            retry_after: Duration::from_millis(10),
        }
    }

    async fn until(f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "condition not met in time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn handled_messages_are_deleted_failed_ones_redelivered_poison_ends_in_the_dlq() {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let q = LocalQueue::new(clock).with_queue("work", 3);
        let queue: Arc<dyn Queue> = Arc::new(q.clone());
        let consumer = Arc::new(Flaky { fail_until: 2, seen: Mutex::new(Vec::new()) });
        let (stop, rx) = watch::channel(false);
        let worker = spawn_worker(queue.clone(), consumer.clone(), fast(), rx);
        queue.send("work", "a", Duration::ZERO).await.unwrap();
        queue.send("work", "poison", Duration::ZERO).await.unwrap();
        until(|| q.message_count("work").unwrap() == 0 && q.message_count("work-dlq").unwrap() == 1).await;
        let seen = consumer.seen.lock().unwrap().clone();
        assert_eq!(
            seen.iter().filter(|(b, _)| b == "a").map(|(_, n)| *n).collect::<Vec<_>>(),
            [1, 2],
            "retried once, then deleted"
        );
        assert_eq!(seen.iter().filter(|(b, _)| b == "poison").count(), 3, "three receives, then the dead-letter queue");
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), worker).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_worker_stops_while_waiting_and_the_scheduler_sends_at_its_rate() {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let q = LocalQueue::new(clock).with_queue("work", 5);
        let queue: Arc<dyn Queue> = Arc::new(q.clone());
        let (stop, rx) = watch::channel(false);
        let slow = WorkerConfig { wait: Duration::from_secs(20), ..fast() };
        let consumer = Arc::new(Flaky { fail_until: 0, seen: Mutex::new(Vec::new()) });
        let worker = spawn_worker(queue.clone(), consumer, slow, rx.clone());
        let schedule = Schedule { name: "tick", queue: "work-dlq", every: Duration::from_millis(40), body: "{}" };
        let tasks = spawn_scheduler(queue.clone(), vec![schedule], rx);
        until(|| q.message_count("work-dlq").unwrap() >= 3).await;
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), worker).await.expect("stops during a long poll").unwrap();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(1), t).await.unwrap().unwrap();
        }
        let n = q.message_count("work-dlq").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(q.message_count("work-dlq").unwrap(), n, "nothing sent after shutdown");
    }
}
