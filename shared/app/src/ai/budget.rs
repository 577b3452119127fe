//! The per-user daily token budget: one user cannot run up the language-model bill.
//!
//! A call **reserves** its worst case (the prompt's estimate plus `max_tokens`) before it is sent, with one
//! conditional update of the user's counter for the UTC day — `USER#<uid>` / `AITOKENS#<yyyy-mm-dd>`, attribute
//! `used`, expiring two days later — that succeeds only while `used + reservation ≤ budget`. So concurrent calls
//! cannot overshoot the budget together: the store serialises the reservations. When the answer arrives the
//! reservation is **settled** to the provider's count (the difference is added back, or taken when the provider
//! counted more than estimated); a failed call releases it.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use uuid::Uuid;

use super::error::{AiError, AiResult};
use crate::keys::user_pk;
use crate::ports::{Clock, Condition, ItemStore, Key, StoreError, Update};

const PREFIX: &str = "AITOKENS#";

/// Characters per token assumed when estimating a prompt (English text averages about four).
pub const CHARS_PER_TOKEN: usize = 4;

/// An estimate of the tokens of `text` (rounded up; used only to reserve, the provider's count settles it).
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(CHARS_PER_TOKEN)).unwrap_or(u32::MAX)
}

/// The daily counters.
#[derive(Clone)]
pub struct TokenBudget {
    store: Arc<dyn ItemStore>,
    clock: Arc<dyn Clock>,
}

/// Tokens held for one call until it is settled or released.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a reservation is settled or released"]
pub struct Reservation {
    key: Option<Key>,
    pub tokens: u32,
}

/// Today's use of a user's budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetUse {
    pub used: u64,
    pub limit: u64,
    pub resets_at: DateTime<Utc>,
}

impl TokenBudget {
    pub fn new(store: Arc<dyn ItemStore>, clock: Arc<dyn Clock>) -> Self {
        TokenBudget { store, clock }
    }

    /// Today's counter of `user`, when it resets, and its expiry (two days on, for late settlements).
    fn key(&self, user: Uuid) -> (Key, DateTime<Utc>, i64) {
        let day = self.clock.now().date_naive();
        let resets_at = (day + Duration::days(1)).and_time(NaiveTime::MIN).and_utc();
        (Key::new(user_pk(user), format!("{PREFIX}{day}")), resets_at, resets_at.timestamp() + 86_400)
    }

    /// Today's use.
    pub async fn usage(&self, user: Uuid, limit: u64) -> AiResult<BudgetUse> {
        let (key, resets_at, _) = self.key(user);
        let used = match self.store.get(&key).await? {
            Some(item) => item.get_n("used").and_then(|d| rust_decimal::prelude::ToPrimitive::to_u64(&d)).unwrap_or(0),
            None => 0,
        };
        Ok(BudgetUse { used, limit, resets_at })
    }

    /// Holds `tokens` of today's `limit` for `user`, or [`AiError::BudgetExhausted`]. A limit of 0 means no limit.
    pub async fn reserve(&self, user: Uuid, tokens: u32, limit: u64) -> AiResult<Reservation> {
        let (key, resets_at, ttl) = self.key(user);
        if limit == 0 {
            return Ok(Reservation { key: None, tokens });
        }
        if u64::from(tokens) > limit {
            return Err(AiError::BudgetExhausted { limit, resets_at });
        }
        let room = i64::try_from(limit - u64::from(tokens)).unwrap_or(i64::MAX);
        let update = Update::new().add("used", tokens).set("ttl", ttl);
        let condition = Condition::NotExists.or(Condition::le("used", room));
        match self.store.update(&key, update, Some(condition)).await {
            Ok(_) => Ok(Reservation { key: Some(key), tokens }),
            Err(StoreError::ConditionFailed) => Err(AiError::BudgetExhausted { limit, resets_at }),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the reservation by the tokens the provider counted.
    pub async fn settle(&self, reservation: Reservation, used: u32) -> AiResult<()> {
        let Some(key) = reservation.key else { return Ok(()) };
        let delta = i64::from(used) - i64::from(reservation.tokens);
        if delta != 0 {
            self.store.update(&key, Update::new().add("used", delta), Some(Condition::Exists)).await?;
        }
        Ok(())
    }

    /// Gives a failed call's reservation back.
    pub async fn release(&self, reservation: Reservation) {
        let tokens = reservation.tokens;
        if let Err(e) = self.settle(reservation, 0).await {
            tracing::warn!(error = %e, tokens, "could not release a token reservation; it expires with the day");
        }
    }
}
