//! The AI supervisor's per-user daily token budget on a store adapter ([`crate::ai::budget`]): reservations hold
//! under concurrency, settlements and releases count, the day resets, users are counted apart.

use std::sync::Arc;

use chrono::{Duration, Utc};
use uuid::Uuid;

use crate::ai::AiError;
use crate::ai::budget::TokenBudget;
use crate::contract::store::StoreFactory;
use crate::ports::*;

async fn budget(f: &impl StoreFactory) -> (TokenBudget, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store = f.store(clock.clone()).await;
    (TokenBudget::new(store, clock.clone()), clock)
}

/// 24 concurrent reservations of 1,000 tokens against a 10,000-token budget: exactly 10 succeed, the rest are
/// refused with the reset time, and the counter reads 10,000.
pub async fn concurrent_reservations_respect_the_budget(f: &impl StoreFactory) {
    let (b, _) = budget(f).await;
    let user = Uuid::new_v4();
    let tries = (0..24).map(|_| {
        let b = b.clone();
        async move { b.reserve(user, 1_000, 10_000).await }
    });
    let results = futures::future::join_all(tries).await;
    let granted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(granted, 10, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, AiError::BudgetExhausted { limit: 10_000, .. }), "{e:?}");
        }
    }
    assert_eq!(b.usage(user, 10_000).await.unwrap().used, 10_000);
    // Another user has their own budget.
    let other = Uuid::new_v4();
    let r = b.reserve(other, 1_000, 10_000).await.unwrap();
    assert_eq!(b.usage(other, 10_000).await.unwrap().used, 1_000);
    b.release(r).await;
    assert_eq!(b.usage(other, 10_000).await.unwrap().used, 0);
}

/// A settlement replaces the reservation by the provider's count; a release gives it back; a call larger than the
/// whole budget is refused; a limit of 0 means no limit; the next UTC day starts from zero.
pub async fn settlements_releases_and_the_next_day(f: &impl StoreFactory) {
    let (b, clock) = budget(f).await;
    let user = Uuid::new_v4();
    let r = b.reserve(user, 2_500, 5_000).await.unwrap();
    b.settle(r, 600).await.unwrap();
    assert_eq!(b.usage(user, 5_000).await.unwrap().used, 600);
    let r = b.reserve(user, 4_000, 5_000).await.unwrap();
    b.settle(r, 4_100).await.unwrap();
    assert_eq!(b.usage(user, 5_000).await.unwrap().used, 4_700);
    let refused = b.reserve(user, 400, 5_000).await.unwrap_err();
    let AiError::BudgetExhausted { resets_at, .. } = refused else { panic!("{refused:?}") };
    assert!(resets_at > clock.now() && resets_at - clock.now() <= Duration::days(1));
    assert!(matches!(b.reserve(Uuid::new_v4(), 6_000, 5_000).await, Err(AiError::BudgetExhausted { .. })));
    let r = b.reserve(user, 1_000_000, 0).await.unwrap();
    b.settle(r, 10).await.unwrap();
    assert_eq!(b.usage(user, 5_000).await.unwrap().used, 4_700, "an unlimited call is not counted");
    let r = b.reserve(user, 300, 5_000).await.unwrap();
    b.release(r).await;
    assert_eq!(b.usage(user, 5_000).await.unwrap().used, 4_700);
    clock.advance(Duration::days(1));
    assert_eq!(b.usage(user, 5_000).await.unwrap().used, 0);
    let r = b.reserve(user, 4_900, 5_000).await.unwrap();
    b.settle(r, 4_900).await.unwrap();
}
