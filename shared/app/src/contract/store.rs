//! Item store contract cases. See [`crate::ports::store`] for the semantics they pin down.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use rust_decimal::Decimal;

use super::unique;
use crate::ports::store::{MAX_BATCH_WRITE_ITEMS, MAX_QUERY_LIMIT, MAX_TRANSACTION_OPS, TTL_ATTR};
use crate::ports::*;

/// Builds a fresh, empty store (its own table or data dir) that reads time from `clock`.
#[async_trait]
pub trait StoreFactory: Sync {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore>;
}

async fn fresh(f: &impl StoreFactory) -> (Arc<dyn ItemStore>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    (f.store(clock.clone()).await, clock)
}

fn n(v: i64) -> Value {
    Value::N(Decimal::from(v))
}

pub async fn put_get_round_trip(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("USER#"), "PROFILE");
    assert_eq!(s.get(&k).await.unwrap(), None);
    let item = Item::new(&k).with("email", "a@b.c").with("n", 5i64);
    s.put(item.clone(), None).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap(), Some(item.clone()));
    // put replaces the whole item
    let replaced = Item::new(&k).with("other", true);
    s.put(replaced.clone(), None).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap(), Some(replaced));
    // another sort key in the same partition is another item
    assert_eq!(s.get(&Key::new(k.pk.clone(), "OTHER")).await.unwrap(), None);
}

pub async fn put_conditions(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("U#"), "A");
    let item = Item::new(&k).with("v", 1i64);
    s.put(item.clone(), Some(Condition::NotExists)).await.unwrap();
    let err = s.put(item.clone().with("v", 2i64), Some(Condition::NotExists)).await.unwrap_err();
    assert_eq!(err, StoreError::ConditionFailed);
    assert!(err.is_condition_failure());
    assert_eq!(s.get(&k).await.unwrap().unwrap().get_n("v"), Some(Decimal::ONE), "a failed put writes nothing");
    // Exists on a missing item fails
    let k2 = Key::new(k.pk.clone(), "B");
    assert_eq!(s.put(Item::new(&k2), Some(Condition::Exists)).await.unwrap_err(), StoreError::ConditionFailed);
    assert_eq!(s.get(&k2).await.unwrap(), None);
    // attribute comparisons
    s.put(item.clone().with("v", 2i64), Some(Condition::lt("v", 2i64))).await.unwrap();
    assert_eq!(s.put(item.clone(), Some(Condition::lt("v", 2i64))).await.unwrap_err(), StoreError::ConditionFailed);
    s.put(item.clone(), Some(Condition::ge("v", 2i64).and(Condition::AttrNotExists("gone".into())))).await.unwrap();
    s.put(item, Some(Condition::BeginsWith("PK".into(), "U#".into()))).await.unwrap();
}

pub async fn update_upserts_and_returns_new(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("ORDER#"), "META");
    let created =
        s.update(&k, Update::new().set("status", "PENDING").set_if_not_exists("created", "t0"), None).await.unwrap();
    assert_eq!(created.get_s("status"), Some("PENDING"));
    assert_eq!(created.get_s("PK"), Some(k.pk.as_str()));
    let updated = s
        .update(
            &k,
            Update::new()
                .set("status", "OPEN")
                .set_if_not_exists("created", "t1")
                .remove("missing")
                .set("ticket", 42i64),
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated.get_s("status"), Some("OPEN"));
    assert_eq!(updated.get_s("created"), Some("t0"), "if_not_exists keeps the first value");
    assert_eq!(updated.get_n("ticket"), Some(Decimal::from(42)));
    let removed = s.update(&k, Update::new().remove("ticket"), None).await.unwrap();
    assert_eq!(removed.get("ticket"), None);
    assert_eq!(s.get(&k).await.unwrap(), Some(removed));
}

pub async fn update_conditions_and_version_check(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("ORDER#"), "META");
    // Exists refuses to create
    let err = s.update(&k, Update::new().set("a", 1i64), Some(Condition::Exists)).await.unwrap_err();
    assert_eq!(err, StoreError::ConditionFailed);
    assert_eq!(s.get(&k).await.unwrap(), None, "a refused update creates nothing");
    s.put(Item::new(&k).with("version", 1i64).with("status", "PENDING"), None).await.unwrap();
    let next = Update::new().set("status", "OPEN").add("version", 1);
    let after = s.update(&k, next.clone(), Some(Condition::version_is(1))).await.unwrap();
    assert_eq!(after.get_n("version"), Some(Decimal::from(2)));
    // the same transition again (a duplicate ack) is refused and changes nothing
    assert_eq!(s.update(&k, next, Some(Condition::version_is(1))).await.unwrap_err(), StoreError::ConditionFailed);
    let now = s.get(&k).await.unwrap().unwrap();
    assert_eq!(now.get_n("version"), Some(Decimal::from(2)));
    assert_eq!(now.get_s("status"), Some("OPEN"));
    // state guard with Or/Not
    let guard = Condition::eq("status", "PENDING").or(Condition::eq("status", "UNKNOWN")).not();
    s.update(&k, Update::new().set("seen", true), Some(guard)).await.unwrap();
}

pub async fn atomic_counters(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("COUNTER#"), "C");
    assert_eq!(s.increment(&k, "count", 1, None).await.unwrap(), Decimal::from(1));
    assert_eq!(s.increment(&k, "count", 5, None).await.unwrap(), Decimal::from(6));
    assert_eq!(s.increment(&k, "count", -2, None).await.unwrap(), Decimal::from(4));
    // a counter with a ceiling: refuse when the limit is reached
    let cap = Condition::AttrNotExists("count".into()).or(Condition::lt("count", 5i64));
    assert_eq!(s.increment(&k, "count", 1, Some(cap.clone())).await.unwrap(), Decimal::from(5));
    assert_eq!(s.increment(&k, "count", 1, Some(cap)).await.unwrap_err(), StoreError::ConditionFailed);
    assert_eq!(s.get(&k).await.unwrap().unwrap().get_n("count"), Some(Decimal::from(5)));
    // fractional amounts stay exact
    s.update(&k, Update::new().add("money", Decimal::new(1, 1)), None).await.unwrap();
    let m = s.update(&k, Update::new().add("money", Decimal::new(2, 1)), None).await.unwrap();
    assert_eq!(m.get_n("money"), Some(Decimal::new(3, 1)));
}

pub async fn delete_returns_old_item(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("X#"), "1");
    assert_eq!(s.delete(&k, None).await.unwrap(), None, "deleting a missing item is fine");
    let item = Item::new(&k).with("status", "OPEN");
    s.put(item.clone(), None).await.unwrap();
    assert_eq!(s.delete(&k, Some(Condition::eq("status", "CLOSED"))).await.unwrap_err(), StoreError::ConditionFailed);
    assert_eq!(s.get(&k).await.unwrap(), Some(item.clone()));
    assert_eq!(s.delete(&k, Some(Condition::eq("status", "OPEN"))).await.unwrap(), Some(item));
    assert_eq!(s.get(&k).await.unwrap(), None);
}

pub async fn transaction_commits_all(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let user = unique("USER#");
    let order = Key::new(unique("ORDER#"), "META");
    let limits = Key::new(user.clone(), "LIMITS");
    let gone = Key::new(user.clone(), "OLD");
    s.put(Item::new(&limits).with("open", 3i64), None).await.unwrap();
    s.put(Item::new(&gone), None).await.unwrap();
    s.transact_write(vec![
        TxOp::Put { item: Item::new(&order).with("status", "PENDING"), condition: Some(Condition::NotExists) },
        TxOp::Update {
            key: limits.clone(),
            update: Update::new().add("open", 1),
            condition: Some(Condition::lt("open", 20i64)),
        },
        TxOp::Delete { key: gone.clone(), condition: Some(Condition::Exists) },
        TxOp::ConditionCheck { key: Key::new(unique("OTHER#"), "X"), condition: Condition::NotExists },
    ])
    .await
    .unwrap();
    assert_eq!(s.get(&order).await.unwrap().unwrap().get_s("status"), Some("PENDING"));
    assert_eq!(s.get(&limits).await.unwrap().unwrap().get_n("open"), Some(Decimal::from(4)));
    assert_eq!(s.get(&gone).await.unwrap(), None);
}

pub async fn transaction_one_failed_condition_writes_nothing(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let user = unique("USER#");
    let order = Key::new(unique("ORDER#"), "META");
    let limits = Key::new(user.clone(), "LIMITS");
    let idem = Key::new(user.clone(), "IDEMP#k1");
    s.put(Item::new(&limits).with("open", 20i64), None).await.unwrap();
    let err = s
        .transact_write(vec![
            TxOp::Put { item: Item::new(&order).with("status", "PENDING"), condition: Some(Condition::NotExists) },
            TxOp::Update {
                key: limits.clone(),
                update: Update::new().add("open", 1),
                condition: Some(Condition::lt("open", 20i64)),
            },
            TxOp::Put { item: Item::new(&idem).with("state", "INPROGRESS"), condition: Some(Condition::NotExists) },
        ])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::TransactionCanceled(vec![
            CancelReason::None,
            CancelReason::ConditionalCheckFailed,
            CancelReason::None
        ])
    );
    assert!(err.is_condition_failure());
    assert_eq!(s.get(&order).await.unwrap(), None, "nothing written");
    assert_eq!(s.get(&idem).await.unwrap(), None, "nothing written");
    assert_eq!(s.get(&limits).await.unwrap().unwrap().get_n("open"), Some(Decimal::from(20)));
    // a failing ConditionCheck cancels too
    let err = s
        .transact_write(vec![
            TxOp::ConditionCheck { key: Key::new(user.clone(), "MISSING"), condition: Condition::Exists },
            TxOp::Put { item: Item::new(&idem), condition: None },
        ])
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::TransactionCanceled(vec![CancelReason::ConditionalCheckFailed, CancelReason::None]));
    assert_eq!(s.get(&idem).await.unwrap(), None);
}

pub async fn transaction_validation(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("T#"), "1");
    let dup = vec![
        TxOp::Put { item: Item::new(&k), condition: None },
        TxOp::Update { key: k.clone(), update: Update::new().set("a", 1i64), condition: None },
    ];
    assert!(matches!(s.transact_write(dup).await, Err(StoreError::Validation(_))));
    assert_eq!(s.get(&k).await.unwrap(), None);
    assert!(matches!(s.transact_write(vec![]).await, Err(StoreError::Validation(_))));
    let too_many: Vec<_> = (0..=MAX_TRANSACTION_OPS)
        .map(|i| TxOp::Put { item: Item::new(&Key::new(k.pk.clone(), format!("{i:03}"))), condition: None })
        .collect();
    assert!(matches!(s.transact_write(too_many).await, Err(StoreError::Validation(_))));
    // exactly the maximum is fine
    let max: Vec<_> = (0..MAX_TRANSACTION_OPS)
        .map(|i| TxOp::Put { item: Item::new(&Key::new(k.pk.clone(), format!("{i:03}"))), condition: None })
        .collect();
    s.transact_write(max).await.unwrap();
    let page = s.query(Query::partition(k.pk.clone()).limit(1000)).await.unwrap();
    assert_eq!(page.items.len(), MAX_TRANSACTION_OPS);
}

pub async fn concurrent_conditional_updates_only_one_wins(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("ORDER#"), "META");
    s.put(Item::new(&k).with("version", 1i64).with("status", "PENDING"), None).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            let k = k.clone();
            tokio::spawn(async move {
                s.update(
                    &k,
                    Update::new().set("status", "OPEN").set("winner", i as i64).add("version", 1),
                    Some(Condition::version_is(1)),
                )
                .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert!(e.is_condition_failure(), "unexpected error {e:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one conditional update wins");
    assert_eq!(s.get(&k).await.unwrap().unwrap().get_n("version"), Some(Decimal::from(2)));
    // and a limit reserved by concurrent transactions holds exactly
    let limits = Key::new(unique("USER#"), "LIMITS");
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let s = s.clone();
            let limits = limits.clone();
            tokio::spawn(async move {
                s.transact_write(vec![
                    TxOp::Update {
                        key: limits,
                        update: Update::new().add("open", 1),
                        condition: Some(Condition::AttrNotExists("open".into()).or(Condition::lt("open", 5i64))),
                    },
                    TxOp::Put {
                        item: Item::new(&Key::new(unique("ORDER#"), "META")).with("i", i as i64),
                        condition: Some(Condition::NotExists),
                    },
                ])
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::TransactionCanceled(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(ok, 5, "the limit of 5 holds under concurrency");
    assert_eq!(s.get(&limits).await.unwrap().unwrap().get_n("open"), Some(Decimal::from(5)));
}

pub async fn concurrent_counter_increments_are_not_lost(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("RL#"), "W");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            let k = k.clone();
            tokio::spawn(async move { s.increment(&k, "hits", 1, None).await.unwrap() })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert_eq!(seen.len(), 20, "every increment observed a distinct value");
    assert_eq!(s.get(&k).await.unwrap().unwrap().get_n("hits"), Some(Decimal::from(20)));
}

async fn seed(s: &Arc<dyn ItemStore>, pk: &str, sks: &[&str]) {
    for sk in sks {
        s.put(Item::new(&Key::new(pk, *sk)).with("sk_copy", *sk), None).await.unwrap();
    }
}

fn sks(page: &Page) -> Vec<String> {
    page.items.iter().map(|i| i.get_s("SK").unwrap().to_owned()).collect()
}

pub async fn query_prefix_order_and_direction(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let pk = unique("USER#");
    seed(&s, &pk, &["ORDER#2", "ORDER#10", "ORDER#1", "PROFILE", "AUDIT#1", "ORDER#", "ORDEX"]).await;
    seed(&s, &unique("USER#"), &["ORDER#1"]).await;
    let asc = s.query(Query::partition(pk.clone()).sk_prefix("ORDER#")).await.unwrap();
    assert_eq!(sks(&asc), ["ORDER#", "ORDER#1", "ORDER#10", "ORDER#2"], "byte order, prefix only");
    assert_eq!(asc.cursor, None);
    let desc = s.query(Query::partition(pk.clone()).sk_prefix("ORDER#").descending()).await.unwrap();
    assert_eq!(sks(&desc), ["ORDER#2", "ORDER#10", "ORDER#1", "ORDER#"]);
    let all = s.query(Query::partition(pk.clone())).await.unwrap();
    assert_eq!(all.items.len(), 7);
    let none = s.query(Query::partition(unique("NOBODY#"))).await.unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.cursor, None);
}

pub async fn query_sort_key_ranges(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let pk = unique("CANDLES#");
    let keys = ["T#2026-01-01", "T#2026-01-02", "T#2026-01-03", "T#2026-01-04", "T#2026-01-05"];
    seed(&s, &pk, &keys).await;
    let q = |c| Query::partition(pk.clone()).sk(c);
    let between = s.query(q(SkCondition::Between("T#2026-01-02".into(), "T#2026-01-04".into()))).await.unwrap();
    assert_eq!(sks(&between), &keys[1..4]);
    assert_eq!(sks(&s.query(q(SkCondition::Lt("T#2026-01-02".into()))).await.unwrap()), &keys[..1]);
    assert_eq!(sks(&s.query(q(SkCondition::Le("T#2026-01-02".into()))).await.unwrap()), &keys[..2]);
    assert_eq!(sks(&s.query(q(SkCondition::Gt("T#2026-01-04".into()))).await.unwrap()), &keys[4..]);
    assert_eq!(sks(&s.query(q(SkCondition::Ge("T#2026-01-04".into()))).await.unwrap()), &keys[3..]);
    assert_eq!(sks(&s.query(q(SkCondition::Eq("T#2026-01-03".into()))).await.unwrap()), &keys[2..3]);
}

pub async fn pagination_over_several_pages(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let pk = unique("USER#");
    let all: Vec<String> = (0..23).map(|i| format!("ORDER#{i:04}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    seed(&s, &pk, &refs).await;
    for descending in [false, true] {
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let mut q = Query::partition(pk.clone()).sk_prefix("ORDER#").limit(5).after(cursor);
            q.descending = descending;
            let page = s.query(q).await.unwrap();
            assert!(page.items.len() <= 5);
            seen.extend(sks(&page));
            pages += 1;
            assert!(pages < 20, "pagination does not terminate");
            match page.cursor {
                Some(c) => cursor = Some(Cursor::parse(c.as_str()).unwrap()),
                None => break,
            }
        }
        let mut expected = all.clone();
        if descending {
            expected.reverse();
        }
        assert_eq!(seen, expected, "every item exactly once, in order (descending={descending})");
        assert!(pages >= 5);
    }
}

pub async fn gsi_query_and_pagination(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let email_pk = unique("EMAIL#");
    let conn = unique("CONN#");
    // users found by email through GSI1; orders of a connection by time
    s.put(
        Item::new(&Key::new(unique("USER#"), "PROFILE")).with("GSI1PK", email_pk.as_str()).with("GSI1SK", "USER"),
        None,
    )
    .await
    .unwrap();
    for i in 0..7 {
        s.put(
            Item::new(&Key::new(unique("ORDER#"), "META"))
                .with("GSI1PK", conn.as_str())
                .with("GSI1SK", format!("2026-11-22T00:00:0{i}"))
                .with("i", i as i64),
            None,
        )
        .await
        .unwrap();
    }
    // an item without index keys is not in the (sparse) index
    s.put(Item::new(&Key::new(unique("ORDER#"), "META")).with("GSI1PK", conn.as_str()), None).await.unwrap();
    let users = s.query(Query::index(Index::Gsi1, email_pk.clone())).await.unwrap();
    assert_eq!(users.items.len(), 1);
    assert_eq!(users.items[0].get_s("GSI1SK"), Some("USER"));
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.query(Query::index(Index::Gsi1, conn.clone()).descending().limit(3).after(cursor)).await.unwrap();
        seen.extend(page.items.iter().map(|i| i.get_n("i").unwrap()));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<Decimal> = (0..7).rev().map(Decimal::from).collect();
    assert_eq!(seen, expected);
    let after = s
        .query(Query::index(Index::Gsi1, conn.clone()).sk(SkCondition::Gt("2026-11-22T00:00:04".into())))
        .await
        .unwrap();
    assert_eq!(after.items.len(), 2);
    // updates move items within the index
    let k = users.items[0].key().unwrap();
    s.update(&k, Update::new().set("GSI1PK", conn.as_str()).set("GSI1SK", "2026-11-22T00:00:09"), None).await.unwrap();
    assert!(s.query(Query::index(Index::Gsi1, email_pk)).await.unwrap().items.is_empty());
    assert_eq!(s.query(Query::index(Index::Gsi1, conn.clone())).await.unwrap().items.len(), 8);
    s.delete(&k, None).await.unwrap();
    assert_eq!(s.query(Query::index(Index::Gsi1, conn)).await.unwrap().items.len(), 7);
}

pub async fn ttl_expired_items_are_not_returned(f: &impl StoreFactory) {
    let (s, clock) = fresh(f).await;
    let now = clock.epoch_seconds();
    let pk = unique("SESSION#");
    let live = Key::new(pk.clone(), "LIVE");
    let dead = Key::new(pk.clone(), "DEAD");
    let soon = Key::new(pk.clone(), "SOON");
    s.put(Item::new(&live).with(TTL_ATTR, now + 3600), None).await.unwrap();
    s.put(Item::new(&dead).with(TTL_ATTR, now - 10).with("GSI1PK", pk.as_str()).with("GSI1SK", "x"), None)
        .await
        .unwrap();
    s.put(Item::new(&soon).with(TTL_ATTR, now + 60), None).await.unwrap();
    assert!(s.get(&live).await.unwrap().is_some());
    assert_eq!(s.get(&dead).await.unwrap(), None);
    assert_eq!(sks(&s.query(Query::partition(pk.clone())).await.unwrap()), ["LIVE", "SOON"]);
    assert!(s.query(Query::index(Index::Gsi1, pk.clone())).await.unwrap().items.is_empty());
    clock.advance(Duration::seconds(61));
    assert_eq!(s.get(&soon).await.unwrap(), None, "expiry follows the store's clock");
    assert_eq!(sks(&s.query(Query::partition(pk.clone())).await.unwrap()), ["LIVE"]);
    // pagination still reaches items behind expired ones
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.query(Query::partition(pk.clone()).limit(1).after(cursor)).await.unwrap();
        seen.extend(sks(&page));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["LIVE"]);
}

pub async fn ttl_expired_items_are_absent_for_writes(f: &impl StoreFactory) {
    let (s, clock) = fresh(f).await;
    let now = clock.epoch_seconds();
    let pk = unique("IDEMP#");
    let k = Key::new(pk.clone(), "KEY");
    s.put(Item::new(&k).with(TTL_ATTR, now - 1).with("state", "COMPLETED").with("n", 7i64), None).await.unwrap();
    // an expired idempotency record no longer blocks a new one
    s.put(Item::new(&k).with(TTL_ATTR, now + 60).with("state", "INPROGRESS"), Some(Condition::NotExists))
        .await
        .unwrap();
    assert_eq!(s.get(&k).await.unwrap().unwrap().get_s("state"), Some("INPROGRESS"));
    // an expired counter starts again from zero
    let c = Key::new(pk.clone(), "COUNTER");
    s.put(Item::new(&c).with(TTL_ATTR, now - 1).with("hits", 99i64), None).await.unwrap();
    let fresh_count =
        s.update(&c, Update::new().add("hits", 1).set(TTL_ATTR, now + 60), Some(Condition::NotExists)).await.unwrap();
    assert_eq!(fresh_count.get_n("hits"), Some(Decimal::ONE));
    // an expired item does not satisfy Exists, and deleting it returns nothing
    let d = Key::new(pk, "DEL");
    s.put(Item::new(&d).with(TTL_ATTR, now - 1), None).await.unwrap();
    assert_eq!(
        s.update(&d, Update::new().set("a", 1i64), Some(Condition::Exists)).await.unwrap_err(),
        StoreError::ConditionFailed
    );
    assert_eq!(s.delete(&d, None).await.unwrap(), None);
}

pub async fn cursor_from_another_partition_is_refused(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let mine = unique("USER#");
    let theirs = unique("USER#");
    seed(&s, &mine, &["A", "B", "C"]).await;
    seed(&s, &theirs, &["A", "B", "C"]).await;
    let page = s.query(Query::partition(theirs.clone()).limit(1)).await.unwrap();
    let their_cursor = page.cursor.expect("more items follow");
    let err = s.query(Query::partition(mine.clone()).after(Some(their_cursor))).await.unwrap_err();
    assert_eq!(err, StoreError::InvalidCursor);
    assert_eq!(Cursor::parse("%%%").unwrap_err(), StoreError::InvalidCursor);
    let garbage = Cursor::encode(&[("PK".to_string(), mine.clone())].into_iter().collect());
    assert_eq!(s.query(Query::partition(mine).after(Some(garbage))).await.unwrap_err(), StoreError::InvalidCursor);
}

pub async fn invalid_requests_are_refused(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("V#"), "1");
    let bad = |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::Validation(_))), "{r:?}");
    bad(s.put(Item::default().with("a", 1i64), None).await);
    bad(s.put(Item::new(&Key::new("", "x")), None).await);
    bad(s.put(Item::new(&k).with("GSI1PK", 5i64), None).await);
    bad(s.put(Item::new(&k).with(TTL_ATTR, "tomorrow"), None).await);
    bad(s.put(Item::new(&k).with("big", "x".repeat(401 * 1024)), None).await);
    bad(s.update(&k, Update::new().set("SK", "other"), None).await.map(|_| ()));
    bad(s.update(&k, Update::new(), None).await.map(|_| ()));
    s.put(Item::new(&k).with("s", "text"), None).await.unwrap();
    bad(s.update(&k, Update::new().add("s", 1), None).await.map(|_| ()));
    assert_eq!(s.get(&k).await.unwrap().unwrap().get_s("s"), Some("text"));
    bad(s.query(Query::partition(k.pk.clone()).limit(0)).await.map(|_| ()));
    bad(s.query(Query::partition(k.pk.clone()).limit(100_000)).await.map(|_| ()));
    bad(s.query(Query::partition("")).await.map(|_| ()));
    bad(s.query(Query::partition(k.pk.clone()).sk(SkCondition::Between("b".into(), "a".into()))).await.map(|_| ()));
}

pub async fn values_round_trip(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let k = Key::new(unique("V#"), "ALL");
    let mut map = std::collections::BTreeMap::new();
    map.insert("price".to_string(), Value::N("1.23456".parse().unwrap()));
    map.insert("symbol".to_string(), Value::S("EURUSD".into()));
    map.insert("empty_list".to_string(), Value::L(vec![]));
    let item = Item::new(&k)
        .with("s", "héllo ✓")
        .with("n", Value::N("-12345678901234.5678".parse().unwrap()))
        .with("big", Value::N(Decimal::from(i64::MAX)))
        .with("b", Value::B(vec![0, 1, 2, 255]))
        .with("t", true)
        .with("nul", Value::Null)
        .with("l", Value::L(vec![n(1), Value::S("x".into()), Value::M(map.clone())]))
        .with("m", Value::M(map));
    s.put(item.clone(), None).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap(), Some(item));
}

/// Reads one scan segment to the end, checking every page against the limit. Returns the items.
async fn scan_segment(s: &Arc<dyn ItemStore>, segment: u32, total: u32, limit: u32) -> Vec<Item> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = s.scan(Scan::segment(segment, total).limit(limit).after(cursor)).await.unwrap();
        assert!(page.items.len() <= limit as usize, "a page holds at most `limit` items");
        out.extend(page.items);
        match page.cursor {
            Some(c) => cursor = Some(Cursor::parse(c.as_str()).unwrap()),
            None => return out,
        }
    }
    panic!("scan of segment {segment}/{total} does not terminate");
}

/// Every segment of a scan, read concurrently (as a backup does). One vector per segment.
async fn scan_segments(s: &Arc<dyn ItemStore>, total: u32, limit: u32) -> Vec<Vec<Item>> {
    let tasks: Vec<_> = (0..total)
        .map(|seg| {
            let s = s.clone();
            tokio::spawn(async move { scan_segment(&s, seg, total, limit).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn sorted_keys(items: &[Item]) -> Vec<Key> {
    let mut keys: Vec<Key> = items.iter().map(|i| i.key().unwrap()).collect();
    keys.sort();
    keys
}

pub async fn scan_segments_cover_every_item_once(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    // 30 partitions of 1 to 4 items, some in the index, one item with every value type.
    let mut expected = Vec::new();
    for p in 0..30 {
        let pk = unique(&format!("P{p}#"));
        for i in 0..(p % 4 + 1) {
            let mut item = Item::new(&Key::new(pk.clone(), format!("S#{i}"))).with("i", i as i64);
            if i % 2 == 0 {
                item = item.with("GSI1PK", "SCAN").with("GSI1SK", format!("{p:02}#{i}"));
            }
            expected.push(item);
        }
    }
    let mut map = std::collections::BTreeMap::new();
    map.insert("price".to_string(), Value::N("1.23456".parse().unwrap()));
    expected.push(
        Item::new(&Key::new(unique("V#"), "ALL"))
            .with("s", "héllo ✓")
            .with("n", Value::N("-12345678901234.5678".parse().unwrap()))
            .with("b", Value::B(vec![0, 1, 2, 255]))
            .with("t", true)
            .with("nul", Value::Null)
            .with("l", Value::L(vec![n(1), Value::S("x".into()), Value::M(map.clone())]))
            .with("m", Value::M(map)),
    );
    for chunk in expected.chunks(MAX_BATCH_WRITE_ITEMS) {
        s.put_many(chunk.to_vec()).await.unwrap();
    }
    expected.sort_by_key(|i| i.key().unwrap());
    for (total, limit) in [(1, 1000), (1, 7), (3, 4), (4, 1), (7, 5)] {
        let segments = scan_segments(&s, total, limit).await;
        let mut all: Vec<Item> = segments.iter().flatten().cloned().collect();
        assert_eq!(
            sorted_keys(&all),
            sorted_keys(&expected),
            "every item exactly once ({total} segments, limit {limit})"
        );
        all.sort_by_key(|i| i.key().unwrap());
        assert_eq!(all, expected, "items come back whole");
        // A partition never straddles two segments.
        let mut owner = std::collections::HashMap::new();
        for (seg, items) in segments.iter().enumerate() {
            for item in items {
                let pk = item.key().unwrap().pk;
                assert_eq!(*owner.entry(pk.clone()).or_insert(seg), seg, "partition {pk} in two segments");
            }
        }
        if total > 1 {
            assert!(segments.iter().filter(|s| !s.is_empty()).count() > 1, "items spread over several segments");
        }
    }
    // A segment count larger than the number of partitions still covers everything once.
    let segments = scan_segments(&s, 64, 100).await;
    assert_eq!(segments.iter().map(Vec::len).sum::<usize>(), expected.len());
}

pub async fn scan_skips_expired_items(f: &impl StoreFactory) {
    let (s, clock) = fresh(f).await;
    let now = clock.epoch_seconds();
    let pk = unique("SESSION#");
    let mut live = Vec::new();
    for i in 0..10 {
        let item = Item::new(&Key::new(pk.clone(), format!("{i:02}")));
        let item = match i % 3 {
            0 => item.with(TTL_ATTR, now - 5),
            1 => item.with(TTL_ATTR, now + 60),
            _ => item,
        };
        if i % 3 != 0 {
            live.push(item.clone());
        }
        s.put(item, None).await.unwrap();
    }
    for (total, limit) in [(1, 1), (1, 100), (2, 2)] {
        let all: Vec<Item> = scan_segments(&s, total, limit).await.into_iter().flatten().collect();
        assert_eq!(sorted_keys(&all), sorted_keys(&live), "expired items are not scanned (limit {limit})");
    }
    clock.advance(Duration::seconds(61));
    let all: Vec<Item> = scan_segments(&s, 1, 1).await.into_iter().flatten().collect();
    assert_eq!(all.len(), 3, "expiry follows the store's clock: {all:?}");
    assert!(all.iter().all(|i| i.get(TTL_ATTR).is_none()));
}

pub async fn scan_pages_and_cursors(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    // An empty table: every segment ends at once.
    for seg in 0..3 {
        let page = s.scan(Scan::segment(seg, 3)).await.unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.cursor, None);
    }
    let pk = unique("USER#");
    let items: Vec<Item> = (0..12).map(|i| Item::new(&Key::new(pk.clone(), format!("{i:02}")))).collect();
    s.put_many(items.clone()).await.unwrap();
    // One partition: all of it in one segment, read in pages of 5.
    let mut seen = 0;
    let mut owner = None;
    for seg in 0..2 {
        let first = s.scan(Scan::segment(seg, 2).limit(5)).await.unwrap();
        if first.items.is_empty() {
            continue;
        }
        owner = Some(seg);
        assert_eq!(first.items.len(), 5);
        let cursor = first.cursor.clone().expect("more items follow");
        // The cursor belongs to this segment and this segment count only, and never to a query.
        let other = 1 - seg;
        let refused = [
            s.scan(Scan::segment(other, 2).after(Some(cursor.clone()))).await,
            s.scan(Scan::segment(seg, 3).after(Some(cursor.clone()))).await,
            s.scan(Scan::all().after(Some(cursor.clone()))).await,
        ];
        for r in refused {
            assert_eq!(r.unwrap_err(), StoreError::InvalidCursor);
        }
        assert_eq!(
            s.query(Query::partition(pk.clone()).after(Some(cursor.clone()))).await,
            Err(StoreError::InvalidCursor)
        );
        let query_cursor = s.query(Query::partition(pk.clone()).limit(1)).await.unwrap().cursor.unwrap();
        assert_eq!(s.scan(Scan::segment(seg, 2).after(Some(query_cursor))).await, Err(StoreError::InvalidCursor));
        seen = scan_segment(&s, seg, 2, 5).await.len();
    }
    assert!(owner.is_some(), "the partition is in one of the segments");
    assert_eq!(seen, 12);
    let bad = |r: Result<Page, StoreError>| assert!(matches!(r, Err(StoreError::Validation(_))), "{r:?}");
    bad(s.scan(Scan::segment(0, 0)).await);
    bad(s.scan(Scan::segment(2, 2)).await);
    bad(s.scan(Scan::segment(0, 1001)).await);
    bad(s.scan(Scan::all().limit(0)).await);
    bad(s.scan(Scan::all().limit(MAX_QUERY_LIMIT + 1)).await);
    assert_eq!(
        s.scan(Scan::all().after(Some(Cursor::parse("e30").unwrap()))).await.unwrap_err(),
        StoreError::InvalidCursor,
        "an empty cursor object"
    );
}

pub async fn put_many_writes_and_replaces(f: &impl StoreFactory) {
    let (s, clock) = fresh(f).await;
    let now = clock.epoch_seconds();
    let pk = unique("ORDER#");
    let email = unique("EMAIL#");
    // Existing items: one live (replaced whole), one expired (replaced: the new one is live).
    s.put(
        Item::new(&Key::new(pk.clone(), "00")).with("old", true).with("GSI1PK", email.as_str()).with("GSI1SK", "x"),
        None,
    )
    .await
    .unwrap();
    s.put(Item::new(&Key::new(pk.clone(), "01")).with("old", true).with(TTL_ATTR, now - 1), None).await.unwrap();
    let batch: Vec<Item> = (0..MAX_BATCH_WRITE_ITEMS)
        .map(|i| Item::new(&Key::new(pk.clone(), format!("{i:02}"))).with("i", i as i64))
        .collect();
    s.put_many(batch.clone()).await.unwrap();
    let page = s.query(Query::partition(pk.clone()).limit(100)).await.unwrap();
    assert_eq!(page.items, batch, "every item written, whole");
    assert!(s.query(Query::index(Index::Gsi1, email.clone())).await.unwrap().items.is_empty(), "index follows");
    // Index attributes and expiry in a batch behave as with put.
    s.put_many(vec![
        Item::new(&Key::new(pk.clone(), "00")).with("GSI1PK", email.as_str()).with("GSI1SK", "y"),
        Item::new(&Key::new(pk.clone(), "01")).with(TTL_ATTR, now - 1),
    ])
    .await
    .unwrap();
    assert_eq!(s.query(Query::index(Index::Gsi1, email)).await.unwrap().items.len(), 1);
    assert_eq!(s.get(&Key::new(pk.clone(), "01")).await.unwrap(), None, "an expired item written is absent");
    // Repeating a batch is harmless (a retried restore).
    s.put_many(batch[2..].to_vec()).await.unwrap();
    s.put_many(batch[2..].to_vec()).await.unwrap();
    assert_eq!(s.query(Query::partition(pk).limit(100)).await.unwrap().items.len(), MAX_BATCH_WRITE_ITEMS - 1);
}

pub async fn put_many_refuses_invalid_batches(f: &impl StoreFactory) {
    let (s, _) = fresh(f).await;
    let pk = unique("B#");
    let item = |sk: &str| Item::new(&Key::new(pk.clone(), sk));
    let bad = |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::Validation(_))), "{r:?}");
    bad(s.put_many(vec![]).await);
    bad(s.put_many((0..=MAX_BATCH_WRITE_ITEMS).map(|i| item(&i.to_string())).collect()).await);
    bad(s.put_many(vec![item("a"), item("b"), item("a").with("x", 1i64)]).await);
    bad(s.put_many(vec![item("a"), Item::default().with("x", 1i64)]).await);
    bad(s.put_many(vec![item("a"), item("b").with("GSI1PK", 5i64)]).await);
    bad(s.put_many(vec![item("a"), item("b").with("big", "x".repeat(401 * 1024))]).await);
    let page = s.scan(Scan::all()).await.unwrap();
    assert!(page.items.is_empty(), "a refused batch writes nothing: {:?}", page.items);
}
