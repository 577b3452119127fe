//! What this process is busy with right now: how many requests are in flight, whether the current one hashes a
//! password, and when a request that did not last finished. The HTTP envelope (the platform middleware) feeds
//! these signals (`InFlight`, `watch_hashing`); the password hasher reads them to decide whether its spare
//! slots may be used ([`requests_in_flight`], [`since_other_request`]) and marks its callers (`mark_hashing`).
//! Plain process state, no HTTP types, so use cases can read it without depending on the HTTP layer.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests being handled right now in this process.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// When (ms since [`clock_origin`]) a request that did no password hashing last finished (0: none yet).
static LAST_OTHER_MS: AtomicU64 = AtomicU64::new(0);

fn clock_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(clock_origin().elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
}

tokio::task_local! {
    /// Set while a request is handled: whether it hashed a password ([`mark_hashing`]).
    static HASHED: std::cell::Cell<bool>;
}

/// How many requests this process is handling right now (the password hasher's spare slots are used only
/// while all of them are password checks).
pub fn requests_in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// How long ago a request that did no password hashing finished (`None`: none yet).
pub fn since_other_request() -> Option<Duration> {
    match LAST_OTHER_MS.load(Ordering::Relaxed) {
        0 => None,
        t => Some(Duration::from_millis(now_ms().saturating_sub(t))),
    }
}

/// Marks the current request as a password-hashing one (called by the hasher; no-op outside a request).
pub(crate) fn mark_hashing() {
    let _ = HASHED.try_with(|h| h.set(true));
}

/// Runs one request's handling: whether it hashed a password is tracked while it runs ([`mark_hashing`]); if it
/// did not, its end is recorded for [`since_other_request`].
pub(crate) async fn watch_hashing<T>(request: impl Future<Output = T>) -> T {
    let (out, hashed) = HASHED
        .scope(std::cell::Cell::new(false), async {
            let out = request.await;
            (out, HASHED.with(|h| h.get()))
        })
        .await;
    if !hashed {
        LAST_OTHER_MS.store(now_ms(), Ordering::Relaxed);
    }
    out
}

/// One request counted in [`requests_in_flight`] while it lives.
pub(crate) struct InFlight;

impl InFlight {
    pub(crate) fn enter() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}
