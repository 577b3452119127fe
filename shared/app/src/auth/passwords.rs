//! Password hashing: argon2id off the async executor, with a bounded number of hashes in flight.
//!
//! Each hash holds `memory_kib` of memory and a CPU for its duration, so a login storm is queued on
//! semaphores instead of starving the runtime's worker threads or exhausting memory: one hash may always
//! run, and up to `hash_concurrency − 1` more (*spare* slots, default: one per CPU) only while the process
//! serves nothing but password checks — every HTTP request in flight is a hashing caller
//! ([`crate::load::requests_in_flight`]) and no other request finished in the last 250 ms. A login storm alone uses every core (the original's pace);
//! mixed with other traffic it falls back to one core, so the other routes keep their throughput. Hashes run on a small dedicated pool of threads (one per permit) scheduled with
//! Linux's `SCHED_IDLE` policy (lowest priority elsewhere): they run only on CPU time no other thread
//! wants, and any request-handling thread that wakes up preempts them at once, so a login storm slows
//! logins, not trading.
//! Verification of an unknown user runs against a dummy hash with the same parameters, so "no such
//! user" and "wrong password" take the same time.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

use super::config::Argon2Params;
use crate::wire::hex;

#[derive(Clone, Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2 parameters are invalid: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Failed(String),
    /// No hashing slot became free within the queue timeout (a login storm): retry later.
    #[error("all password hashing slots are busy")]
    Busy,
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// The slot always open to a hash.
    permits: Semaphore,
    /// Slots taken only while the process serves nothing else (see the module docs).
    spare: Semaphore,
    /// Callers waiting for or holding a slot.
    demand: std::sync::atomic::AtomicUsize,
    queue_timeout: std::time::Duration,
    pool: HashPool,
    dummy: OnceCell<String>,
}

type Job = Box<dyn FnOnce() + Send>;

/// How often a waiting hash looks again whether a spare slot may be used.
const SPARE_RECHECK: std::time::Duration = std::time::Duration::from_millis(20);
/// How long no other request must have finished before a spare slot is used: request gaps between a busy
/// client's calls are shorter, so a spare hash does not slip in between them.
const QUIET_FOR: std::time::Duration = std::time::Duration::from_millis(250);

/// The hashing threads. They end when the hasher (the sender) is dropped.
struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl HashPool {
    fn new(threads: usize) -> Result<Self, HashError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| HashError::Failed(format!("cannot start hashing thread: {e}")))?;
        }
        Ok(HashPool { jobs: Mutex::new(tx) })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .lock()
            .map_err(|_| HashError::Failed("hashing pool poisoned".into()))?
            .send(job)
            .map_err(|_| HashError::Failed("hashing pool stopped".into()))?;
        rx.await.map_err(|_| HashError::Failed("hashing job lost".into()))
    }
}

/// Lowers the calling thread's scheduling priority: `SCHED_IDLE` on Linux, the lowest priority of
/// the normal policy elsewhere. Best effort: a failure is logged and hashing proceeds.
fn lower_priority() {
    use thread_priority::ThreadPriority;
    #[cfg(target_os = "linux")]
    let result = {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
        };
        set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        )
    };
    #[cfg(not(target_os = "linux"))]
    let result = thread_priority::set_current_thread_priority(ThreadPriority::Min);
    if let Err(e) = result {
        tracing::debug!(error = ?e, "could not lower the hashing thread's priority");
    }
}

impl PasswordHasher {
    /// A hasher with `concurrency` hashes in flight; a caller waits at most 8 s for a slot.
    pub fn new(p: Argon2Params, concurrency: usize) -> Result<Self, HashError> {
        Self::with_queue_timeout(p, concurrency, std::time::Duration::from_secs(8))
    }

    /// A hasher whose callers wait at most `queue_timeout` for a slot, then get [`HashError::Busy`].
    pub fn with_queue_timeout(
        p: Argon2Params,
        concurrency: usize,
        queue_timeout: std::time::Duration,
    ) -> Result<Self, HashError> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| HashError::Params(e.to_string()))?;
        let concurrency = concurrency.max(1);
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                params,
                permits: Semaphore::new(1),
                spare: Semaphore::new(concurrency - 1),
                demand: std::sync::atomic::AtomicUsize::new(0),
                queue_timeout,
                pool: HashPool::new(concurrency)?,
                dummy: OnceCell::new(),
            }),
        })
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Whether the process serves nothing but password checks: every HTTP request in flight is a hashing
    /// caller and no other request finished within [`QUIET_FOR`] (a spare slot may be used).
    fn only_hashing(&self) -> bool {
        use crate::load::{requests_in_flight, since_other_request};
        requests_in_flight() <= self.inner.demand.load(std::sync::atomic::Ordering::Relaxed)
            && since_other_request().is_none_or(|d| d >= QUIET_FOR)
    }

    /// Runs `f` on the hashing pool once a slot is free: the main one, or a spare one while the process serves
    /// nothing else (re-checked every [`SPARE_RECHECK`]).
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        use std::sync::atomic::Ordering;
        struct Demand<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Demand<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let asked = std::time::Instant::now();
        crate::load::mark_hashing();
        self.inner.demand.fetch_add(1, Ordering::Relaxed);
        let _demand = Demand(&self.inner.demand);
        let slot = async {
            loop {
                tokio::select! {
                    biased;
                    p = self.inner.permits.acquire() => return p,
                    p = self.inner.spare.acquire(), if self.only_hashing() => return p,
                    _ = tokio::time::sleep(SPARE_RECHECK) => {}
                }
            }
        };
        let _permit = tokio::time::timeout(self.inner.queue_timeout, slot)
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|e| HashError::Failed(e.to_string()))?;
        crate::telemetry::hash_queue_wait(asked.elapsed());
        self.inner.pool.run(f).await
    }

    /// A PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let params = self.inner.params.clone();
        let pw = password.as_bytes().to_vec();
        self.run(move || {
            Self::argon2(params).hash_password(&pw).map(|h| h.to_string()).map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// True when `password` matches `stored`. With no stored hash (unknown user) the work is done
    /// against a dummy hash and the answer is false. A malformed stored hash is false. An error means
    /// no answer (e.g. [`HashError::Busy`]): never count it as a wrong password.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashError> {
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy().await?, false),
        };
        let pw = password.as_bytes().to_vec();
        let params = self.inner.params.clone();
        // the stored hash carries its own parameters: older hashes keep verifying
        let ok = self.run(move || Self::argon2(params).verify_password(&pw, hash.as_str()).is_ok()).await?;
        Ok(ok && real)
    }

    async fn dummy(&self) -> Result<String, HashError> {
        self.inner
            .dummy
            .get_or_try_init(|| async {
                let random: [u8; 16] = rand::random();
                self.hash(&hex(&random)).await
            })
            .await
            .cloned()
    }

    /// Free slots, spare ones included (tests, metrics).
    pub fn available_permits(&self) -> usize {
        self.inner.permits.available_permits() + self.inner.spare.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(Argon2Params { memory_kib: 1024, iterations: 1, parallelism: 1 }, 2).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_carry_their_parameters() {
        let h = hasher();
        let stored = h.hash("Str0ng!pass").await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{stored}");
        assert!(h.verify("Str0ng!pass", Some(&stored)).await.unwrap());
        assert!(!h.verify("Str0ng!pasS", Some(&stored)).await.unwrap());
        assert!(!h.verify("Str0ng!pass", None).await.unwrap(), "unknown users never verify");
        assert!(!h.verify("x", Some("not a phc string")).await.unwrap());
        // a hash made with other parameters still verifies
        let other = PasswordHasher::new(Argon2Params { memory_kib: 2048, iterations: 2, parallelism: 1 }, 1).unwrap();
        let old = other.hash("Old!pass1").await.unwrap();
        assert!(h.verify("Old!pass1", Some(&old)).await.unwrap());
        assert_ne!(h.hash("Str0ng!pass").await.unwrap(), stored, "salts are random");
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_instead_of_waiting_forever() {
        let slow = Argon2Params { memory_kib: 65536, iterations: 3, parallelism: 1 };
        let h = PasswordHasher::with_queue_timeout(slow, 1, std::time::Duration::from_millis(1)).unwrap();
        let first = {
            let h = h.clone();
            tokio::spawn(async move { h.hash("Str0ng!pass").await })
        };
        // let the first hash take the only slot
        while h.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(h.verify("Str0ng!pass", None).await, Err(HashError::Busy)));
        assert!(first.await.unwrap().is_ok());
    }

    /// The spare slot is taken only while nothing but password checks is in flight.
    #[tokio::test]
    async fn the_spare_slot_waits_for_other_requests_to_finish() {
        let slow = Argon2Params { memory_kib: 65536, iterations: 3, parallelism: 1 };
        let h = PasswordHasher::new(slow, 2).unwrap();
        assert_eq!(h.available_permits(), 2);
        let other_request = crate::load::InFlight::enter();
        // Each hash is a request of its own, in flight while it runs (as the gateway's requests are).
        let spawn = || {
            let h = h.clone();
            tokio::spawn(async move {
                let _request = crate::load::InFlight::enter();
                h.hash("Str0ng!pass").await
            })
        };
        let (a, b) = (spawn(), spawn());
        let wait_for = |free: usize| {
            let h = h.clone();
            async move {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while h.available_permits() != free && std::time::Instant::now() < deadline {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                h.available_permits()
            }
        };
        // Once a hash holds a slot, and as long as neither is done, the spare slot stays free: one hash runs, the
        // other waits, as a non-hashing request is in flight.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut free = h.available_permits();
        while free == 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            free = h.available_permits();
        }
        assert_eq!(free, 1, "a hash started, alone");
        let until = std::time::Instant::now() + std::time::Duration::from_millis(150);
        while std::time::Instant::now() < until && !a.is_finished() && !b.is_finished() {
            assert_ne!(h.available_permits(), 0, "the spare slot stays free while the other request runs");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        drop(other_request);
        assert!(a.await.unwrap().is_ok() && b.await.unwrap().is_ok());
        // Nothing else in flight: both slots at once.
        let (a, b) = (spawn(), spawn());
        assert_eq!(wait_for(0).await, 0, "a login storm alone uses every slot");
        assert!(a.await.unwrap().is_ok() && b.await.unwrap().is_ok());
    }
}
