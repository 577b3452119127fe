//! Request limits and the login lock-out, kept in the item store with atomic counters and `ttl`, so
//! they hold across Lambda instances and gateway processes (the original kept them in each worker's
//! memory and keyed every authenticated user to one bucket).
//!
//! [`RateLimiter`] is reusable by any router: fixed windows, one item per bucket and window
//! (`RL#<bucket>` / `W#<window start>`), incremented atomically and expiring with the window.
//! The middleware over it, [`limit_requests`](super::extract::limit_requests), sits at the HTTP edge:
//! authenticated requests count against their user, others against their client IP.

use std::sync::Arc;

use super::config::Limit;
use super::error::AuthError;
use super::tokens::TokenService;
use crate::ports::{Clock, Condition, Item, ItemStore, Key, StoreError, Update};
use crate::settings::RuntimeSettings;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed { limit: u32, remaining: u32, reset_at: i64 },
    Limited { retry_after: u64 },
}

#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn ItemStore>,
    clock: Arc<dyn Clock>,
}

impl RateLimiter {
    pub fn new(store: Arc<dyn ItemStore>, clock: Arc<dyn Clock>) -> Self {
        RateLimiter { store, clock }
    }

    /// Counts one request in `bucket` (e.g. `ip:1.2.3.4`, `user:<uuid>`, `auth:ip:1.2.3.4`).
    pub async fn hit(&self, bucket: &str, limit: Limit) -> Result<Decision, StoreError> {
        let now = self.clock.epoch_seconds();
        let w = limit.window.as_secs().max(1) as i64;
        let start = now - now.rem_euclid(w);
        let end = start + w;
        let key = Key::new(format!("RL#{bucket}"), format!("W#{start}"));
        let item = self.store.update(&key, Update::new().add("count", 1).set("ttl", end), None).await?;
        let count = item.get_n("count").and_then(|n| u64::try_from(n).ok()).unwrap_or(u64::MAX);
        if count > u64::from(limit.requests) {
            Ok(Decision::Limited { retry_after: (end - now).max(1) as u64 })
        } else {
            Ok(Decision::Allowed { limit: limit.requests, remaining: limit.requests - count as u32, reset_at: end })
        }
    }

    /// [`hit`](Self::hit) as an error: [`AuthError::TooManyAttempts`] when the budget is spent.
    pub async fn check(&self, bucket: &str, limit: Limit) -> Result<Decision, AuthError> {
        match self.hit(bucket, limit).await? {
            Decision::Limited { retry_after } => Err(AuthError::TooManyAttempts { retry_after }),
            allowed => Ok(allowed),
        }
    }
}

/// State of the request-limit middleware ([`limit_requests`](super::extract::limit_requests)).
#[derive(Clone)]
pub struct RequestLimits {
    pub limiter: RateLimiter,
    pub tokens: TokenService,
    pub limit: Limit,
    pub enabled: bool,
    /// The operator's `rate_limit_requests` / `rate_limit_window_seconds` over `limit` (`None`: `limit` alone).
    pub settings: Option<RuntimeSettings>,
}

impl RequestLimits {
    /// The limit now: each part from the stored settings (the cached snapshot) when set, else from `limit`.
    pub async fn current(&self) -> Limit {
        let Some(settings) = &self.settings else { return self.limit };
        let o = &settings.snapshot().await.overrides;
        Limit {
            requests: o.rate_limit_requests.unwrap_or(self.limit.requests),
            window: o.rate_limit_window_seconds.map(std::time::Duration::from_secs).unwrap_or(self.limit.window),
        }
    }
}

/// The login lock-out: `max_failures` failed attempts within `window` (counted from the first) lock
/// the account (keyed by normalised e-mail) for `lock`. Items: `RL#login#<email>` / `FAILS` (counter,
/// expires with the window) and `RL#login#<email>` / `LOCK` (expires with the lock).
#[derive(Clone)]
pub struct Lockout {
    store: Arc<dyn ItemStore>,
    clock: Arc<dyn Clock>,
    pub max_failures: u32,
    pub window_secs: i64,
    pub lock_secs: i64,
}

/// What a recorded failure led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Attempts left before the lock (the original's "N attempts remaining").
    pub remaining: u32,
    /// True for the one failure that set the lock.
    pub locked_now: bool,
}

impl Lockout {
    pub fn new(
        store: Arc<dyn ItemStore>,
        clock: Arc<dyn Clock>,
        max_failures: u32,
        window: std::time::Duration,
        lock: std::time::Duration,
    ) -> Self {
        Lockout { store, clock, max_failures, window_secs: window.as_secs() as i64, lock_secs: lock.as_secs() as i64 }
    }

    fn pk(email: &str) -> String {
        format!("RL#login#{email}")
    }

    /// Seconds left on the lock, if the account is locked.
    pub async fn locked_for(&self, email: &str) -> Result<Option<u64>, StoreError> {
        let now = self.clock.epoch_seconds();
        let lock = self.store.get(&Key::new(Self::pk(email), "LOCK")).await?;
        Ok(lock.and_then(|l| l.ttl()).map(|until| (until - now).max(1) as u64))
    }

    pub async fn record_failure(&self, email: &str) -> Result<Failure, StoreError> {
        let now = self.clock.epoch_seconds();
        let fails = Key::new(Self::pk(email), "FAILS");
        let item = self
            .store
            .update(&fails, Update::new().add("count", 1).set_if_not_exists("ttl", now + self.window_secs), None)
            .await?;
        let count = item.get_n("count").and_then(|n| u32::try_from(n).ok()).unwrap_or(u32::MAX);
        let remaining = self.max_failures.saturating_sub(count);
        let mut locked_now = false;
        if count >= self.max_failures {
            let lock = Item::new(&Key::new(Self::pk(email), "LOCK")).with("ttl", now + self.lock_secs);
            match self.store.put(lock, Some(Condition::NotExists)).await {
                Ok(()) => locked_now = true,
                Err(e) if e.is_condition_failure() => {}
                Err(e) => return Err(e),
            }
            self.store.delete(&fails, None).await?;
        }
        Ok(Failure { remaining, locked_now })
    }

    /// A successful login clears the failure count.
    pub async fn reset(&self, email: &str) -> Result<(), StoreError> {
        self.store.delete(&Key::new(Self::pk(email), "FAILS"), None).await.map(|_| ())
    }

    /// A password reset also lifts the lock.
    pub async fn unlock(&self, email: &str) -> Result<(), StoreError> {
        self.reset(email).await?;
        self.store.delete(&Key::new(Self::pk(email), "LOCK"), None).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ports::SystemClock;
    use crate::settings::record::{Category, SettingRecord, setting_key};
    use crate::settings::tests::MemoryStore;
    use crate::settings::{RuntimeSettings, SettingsEnv};

    #[tokio::test]
    async fn the_operators_settings_override_the_configured_limit_part_by_part() {
        let store: Arc<dyn ItemStore> = Arc::new(MemoryStore::default());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let configured = Limit { requests: 100, window: Duration::from_secs(60) };
        let mut limits = RequestLimits {
            limiter: RateLimiter::new(store.clone(), clock.clone()),
            tokens: TokenService::new(&[7u8; 32], Duration::from_secs(60), Duration::from_secs(60), clock.clone()),
            limit: configured,
            enabled: true,
            settings: None,
        };
        assert_eq!(limits.current().await, configured);
        let env = SettingsEnv { ttl: Duration::ZERO, ..SettingsEnv::default() };
        limits.settings = Some(RuntimeSettings::new(store.clone(), clock.clone(), env));
        assert_eq!(limits.current().await, configured, "nothing stored");
        let now = clock.now();
        let record = |key: &str, value: &str| SettingRecord {
            key: key.into(),
            value: Some(value.into()),
            sealed: None,
            category: Category::RateLimiting,
            is_encrypted: false,
            is_active: true,
            description: None,
            created_at: now,
            updated_at: now,
            updated_by: None,
            version: 1,
        };
        for (k, v) in [("rate_limit_requests", "5"), ("rate_limit_window_seconds", "not a number")] {
            store.put(Item::from_record(&setting_key(k), &record(k, v)).unwrap(), None).await.unwrap();
        }
        assert_eq!(
            limits.current().await,
            Limit { requests: 5, window: Duration::from_secs(60) },
            "the valid part applies, the invalid one is ignored"
        );
    }
}
