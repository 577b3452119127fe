//! Password hashing: argon2id off the async executor, with a bounded number of hashes in flight.
//!
//! Each hash holds `memory_kib` of memory and a CPU for its duration, so a login storm is queued on
//! a semaphore (permits = `hash_concurrency`) instead of starving the runtime's worker threads or
//! exhausting memory; other routes keep being served. Verification of an unknown user runs against a
//! dummy hash with the same parameters, so "no such user" and "wrong password" take the same time.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

use super::config::Argon2Params;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2 parameters are invalid: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    permits: Semaphore,
    dummy: OnceCell<String>,
}

impl PasswordHasher {
    pub fn new(p: Argon2Params, concurrency: usize) -> Result<Self, HashError> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| HashError::Params(e.to_string()))?;
        Ok(PasswordHasher {
            inner: Arc::new(Inner { params, permits: Semaphore::new(concurrency.max(1)), dummy: OnceCell::new() }),
        })
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Runs `f` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let _permit = self.inner.permits.acquire().await.map_err(|e| HashError::Failed(e.to_string()))?;
        tokio::task::spawn_blocking(f).await.map_err(|e| HashError::Failed(e.to_string()))
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
    /// against a dummy hash and the answer is false. A malformed stored hash is false, never an error.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => match self.dummy().await {
                Ok(h) => (h, false),
                Err(_) => return false,
            },
        };
        let pw = password.as_bytes().to_vec();
        let params = self.inner.params.clone();
        let ok = self
            // the stored hash carries its own parameters: older hashes keep verifying
            .run(move || Self::argon2(params).verify_password(&pw, hash.as_str()).is_ok())
            .await
            .unwrap_or(false);
        ok && real
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

    /// Hashes waiting for or holding a permit can be observed through this (tests, metrics).
    pub fn available_permits(&self) -> usize {
        self.inner.permits.available_permits()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        assert!(h.verify("Str0ng!pass", Some(&stored)).await);
        assert!(!h.verify("Str0ng!pasS", Some(&stored)).await);
        assert!(!h.verify("Str0ng!pass", None).await, "unknown users never verify");
        assert!(!h.verify("x", Some("not a phc string")).await);
        // a hash made with other parameters still verifies
        let other = PasswordHasher::new(Argon2Params { memory_kib: 2048, iterations: 2, parallelism: 1 }, 1).unwrap();
        let old = other.hash("Old!pass1").await.unwrap();
        assert!(h.verify("Old!pass1", Some(&old)).await);
        assert_ne!(h.hash("Str0ng!pass").await.unwrap(), stored, "salts are random");
    }
}
