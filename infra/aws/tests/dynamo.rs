//! DynamoStore beyond the shared contract: expiry inside transactions, condition edge cases, sort-key
//! edge cases, error mapping — and the places where moto differs from DynamoDB.
//!
//! moto (5.2.1 and 5.2.5) vs. DynamoDB, as observed here:
//! 1. moto never deletes expired items (DynamoDB does, lazily, within days). Either way the adapter
//!    filters `ttl <= now` on reads and clears stale items before conditional writes
//!    (`moto_keeps_expired_items`).
//! 2. moto stores numbers verbatim ("1.50" comes back as "1.50"); DynamoDB normalises ("1.5"). The
//!    adapter sends `Decimal::normalize()`d text, so both return the same.
//! 3. With `Limit`, moto omits `LastEvaluatedKey` when the page ends exactly on the partition's last
//!    item; DynamoDB returns it whenever the limit was reached, so a last, empty page may follow.
//!    Callers must loop until `cursor` is `None` and accept empty pages (the port says so).
//! 4. moto accepts a non-string `GSI1PK` and numbers of more than 38 digits; DynamoDB refuses both.
//!    `validate::item` refuses the first before any call; the second cannot come from a `Decimal`.
//! 5. moto evaluates `attr < :bool` as false; DynamoDB refuses the expression (ValidationException).
//!    The adapter never sends it: an ordered comparison with a non-scalar is compiled to "false".
//! 6. moto simulates no write contention: concurrent transactions never get `TransactionConflict`,
//!    which DynamoDB may report (mapped to `CancelReason::Other("TransactionConflict")`).
//! 8. moto crashes (HTTP 500) on an ordered comparison across types (`#s < :n` with a string
//!    attribute and a number value, or the reverse); DynamoDB evaluates it as false. The adapter
//!    guards every ordered comparison with `attribute_type(#n, :t)`, which gives "false" on both.
//! 9. Plain `moto_server` handles each request on its own thread and does not lock an item between
//!    evaluating a condition and writing: two concurrent conditional updates can both succeed (seen as
//!    a flaky `concurrent_conditional_updates_only_one_wins`). DynamoDB is atomic. Run moto through
//!    `tests/lambda/moto_server.py`, which serialises DynamoDB requests (`tests/run.sh` does).
//! 10. Same as DynamoDB (checked): redundant parentheses `((a))` and unused `ExpressionAttributeNames`
//!     are refused; `ReturnValuesOnConditionCheckFailure=ALL_OLD` returns the item for put, update,
//!     delete and in transaction cancellation reasons; `<>` on a missing attribute is true; consistent
//!     reads on a GSI are refused; `begins_with(SK, "")` is refused (the adapter drops that condition).

mod common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use nusatrade_app::ports::store::TTL_ATTR;
use nusatrade_app::ports::{
    CancelReason, Clock, Condition, Item, ItemStore, Key, ManualClock, Query, SkCondition, StoreError, TxOp, Update,
    Value,
};
use nusatrade_aws::DynamoStore;
use rust_decimal::Decimal;

use common::{sdk, unique};

async fn store() -> (DynamoStore, Arc<ManualClock>) {
    let client = aws_sdk_dynamodb::Client::new(&sdk().await);
    let table = unique("nusatrade");
    DynamoStore::create_table(&client, &table).await.expect("create table");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    (DynamoStore::new(client, table, clock.clone()), clock)
}

async fn raw_get(s: &DynamoStore, k: &Key) -> Option<std::collections::HashMap<String, AttributeValue>> {
    s.client()
        .get_item()
        .table_name(s.table())
        .key("PK", AttributeValue::S(k.pk.clone()))
        .key("SK", AttributeValue::S(k.sk.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn table_has_gsi_and_ttl() {
    let (s, _) = store().await;
    let d = s.client().describe_table().table_name(s.table()).send().await.unwrap();
    let t = d.table.unwrap();
    assert_eq!(t.global_secondary_indexes()[0].index_name(), Some("GSI1"));
    let ttl = s.client().describe_time_to_live().table_name(s.table()).send().await.unwrap();
    assert_eq!(ttl.time_to_live_description.unwrap().attribute_name(), Some(TTL_ATTR));
}

#[tokio::test]
async fn moto_keeps_expired_items() {
    let (s, clock) = store().await;
    let k = Key::new(unique("S"), "1");
    s.put(Item::new(&k).with(TTL_ATTR, clock.epoch_seconds() - 100), None).await.unwrap();
    assert!(raw_get(&s, &k).await.is_some(), "moto keeps the expired item");
    assert_eq!(s.get(&k).await.unwrap(), None, "the adapter hides it");
}

#[tokio::test]
async fn numbers_are_sent_normalised() {
    let (s, _) = store().await;
    let k = Key::new(unique("N"), "1");
    s.put(Item::new(&k).with("v", Value::N("1.50".parse().unwrap())), None).await.unwrap();
    let raw = raw_get(&s, &k).await.unwrap();
    assert_eq!(raw.get("v"), Some(&AttributeValue::N("1.5".into())));
    assert_eq!(s.get(&k).await.unwrap().unwrap().get_n("v"), Some(Decimal::new(15, 1)));
}

#[tokio::test]
async fn expired_items_are_absent_inside_transactions() {
    let (s, clock) = store().await;
    let now = clock.epoch_seconds();
    let pk = unique("IDEMP");
    let lock = Key::new(pk.clone(), "LOCK");
    let counter = Key::new(pk.clone(), "COUNTER");
    let check = Key::new(pk.clone(), "CHECK");
    s.put(Item::new(&lock).with(TTL_ATTR, now - 1).with("state", "COMPLETED"), None).await.unwrap();
    s.put(Item::new(&counter).with(TTL_ATTR, now).with("n", 41i64), None).await.unwrap();
    s.put(Item::new(&check).with(TTL_ATTR, now - 5), None).await.unwrap();
    // all three items are expired: NotExists holds, the counter starts from zero
    s.transact_write(vec![
        TxOp::Put { item: Item::new(&lock).with("state", "INPROGRESS"), condition: Some(Condition::NotExists) },
        TxOp::Update { key: counter.clone(), update: Update::new().add("n", 1), condition: None },
        TxOp::ConditionCheck { key: check.clone(), condition: Condition::NotExists },
    ])
    .await
    .unwrap();
    assert_eq!(s.get(&lock).await.unwrap().unwrap().get_s("state"), Some("INPROGRESS"));
    assert_eq!(s.get(&counter).await.unwrap().unwrap().get_n("n"), Some(Decimal::ONE));
    assert!(raw_get(&s, &check).await.is_none(), "the stale item was cleared");
    // an expired item does not satisfy Exists, inside a transaction either
    let gone = Key::new(pk, "GONE");
    s.put(Item::new(&gone).with(TTL_ATTR, now - 1), None).await.unwrap();
    let err = s
        .transact_write(vec![
            TxOp::ConditionCheck { key: gone.clone(), condition: Condition::Exists },
            TxOp::Delete { key: lock.clone(), condition: None },
        ])
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::TransactionCanceled(vec![CancelReason::ConditionalCheckFailed, CancelReason::None]));
    assert!(s.get(&lock).await.unwrap().is_some(), "nothing written");
}

#[tokio::test]
async fn conditional_delete_of_expired_item() {
    let (s, clock) = store().await;
    let now = clock.epoch_seconds();
    let k = Key::new(unique("D"), "1");
    s.put(Item::new(&k).with(TTL_ATTR, now + 10).with("a", 1i64), None).await.unwrap();
    clock.advance(Duration::seconds(10));
    assert_eq!(s.delete(&k, Some(Condition::Exists)).await.unwrap_err(), StoreError::ConditionFailed);
    s.put(Item::new(&k).with(TTL_ATTR, now).with("a", 1i64), None).await.unwrap();
    assert_eq!(s.delete(&k, Some(Condition::NotExists)).await.unwrap(), None);
    assert!(raw_get(&s, &k).await.is_none());
}

#[tokio::test]
async fn a_live_item_is_never_cleared() {
    let (s, clock) = store().await;
    let k = Key::new(unique("L"), "1");
    let item = Item::new(&k).with(TTL_ATTR, clock.epoch_seconds() + 1);
    s.put(item.clone(), None).await.unwrap();
    assert_eq!(s.put(Item::new(&k), Some(Condition::NotExists)).await.unwrap_err(), StoreError::ConditionFailed);
    assert_eq!(s.get(&k).await.unwrap(), Some(item));
}

#[tokio::test]
async fn condition_edge_cases_match_the_port() {
    let (s, _) = store().await;
    let k = Key::new(unique("C"), "1");
    let item = Item::new(&k).with("n", 5i64).with("s", "abc").with("flag", true);
    s.put(item.clone(), None).await.unwrap();
    let holds = |c: Condition| {
        let s = &s;
        let item = item.clone();
        async move {
            match s.put(item, Some(c.clone())).await {
                Ok(()) => true,
                Err(StoreError::ConditionFailed) => false,
                Err(e) => panic!("{c:?}: {e:?}"),
            }
        }
    };
    assert!(holds(Condition::ne("missing", 1i64)).await, "<> on a missing attribute is true");
    assert!(!holds(Condition::lt("missing", 1i64)).await);
    // type mismatch is false (moto alone would answer HTTP 500 here: note 8)
    assert!(!holds(Condition::lt("s", 1i64)).await, "type mismatch is false");
    assert!(!holds(Condition::ge("n", "a")).await, "type mismatch is false");
    assert!(!holds(Condition::lt("flag", true)).await, "ordered comparison of booleans is false");
    assert!(holds(Condition::Cmp("flag".into(), nusatrade_app::ports::CmpOp::Ne, Value::Bool(false))).await);
    assert!(holds(Condition::BeginsWith("s".into(), String::new())).await, "every string starts with \"\"");
    assert!(!holds(Condition::BeginsWith("n".into(), String::new())).await, "a number is not a string");
    assert!(holds(Condition::And(vec![])).await, "empty AND is true");
    assert!(!holds(Condition::Or(vec![])).await, "empty OR is false");
    assert!(holds(Condition::And(vec![Condition::Exists])).await);
    assert!(holds(Condition::Exists.not().not()).await);
    let nested = Condition::Or(vec![
        Condition::And(vec![Condition::eq("n", 4i64), Condition::Exists]),
        Condition::And(vec![
            Condition::eq("n", 5i64),
            Condition::Or(vec![Condition::eq("s", "x"), Condition::eq("s", "abc")]),
        ]),
    ]);
    assert!(holds(nested.clone()).await);
    assert!(!holds(nested.not()).await);
    // names that could break an expression are only ever placeholders
    let odd = Item::new(&k).with("a) OR (b", 1i64).with("#x", 2i64).with(":v0", 3i64);
    s.put(odd.clone(), Some(Condition::Exists)).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap(), Some(odd));
    assert!(matches!(s.put(item, Some(Condition::AttrExists(String::new()))).await, Err(StoreError::Validation(_))));
}

#[tokio::test]
async fn sort_key_edge_cases() {
    let (s, _) = store().await;
    let pk = unique("Q");
    for sk in ["A", "B", "C"] {
        s.put(Item::new(&Key::new(pk.as_str(), sk)), None).await.unwrap();
    }
    let q = |c| Query::partition(pk.clone()).sk(c);
    let count = |c| {
        let s = &s;
        let q = q(c);
        async move { s.query(q).await.unwrap().items.len() }
    };
    assert_eq!(count(SkCondition::BeginsWith(String::new())).await, 3);
    assert_eq!(count(SkCondition::Gt(String::new())).await, 3);
    assert_eq!(count(SkCondition::Eq(String::new())).await, 0);
    assert_eq!(count(SkCondition::Le(String::new())).await, 0);
    assert_eq!(count(SkCondition::Between(String::new(), "B".into())).await, 2);
    assert!(matches!(s.query(q(SkCondition::Between("C".into(), "A".into()))).await, Err(StoreError::Validation(_))));
    assert!(matches!(s.query(Query::partition("")).await, Err(StoreError::Validation(_))));
}

#[tokio::test]
async fn update_refusals_happen_before_aws() {
    let (s, _) = store().await;
    let k = Key::new(unique("U"), "1");
    for u in [
        Update::new().add("n", 1).set_if_not_exists("n", 9i64),
        Update::new().set("GSI1PK", 5i64),
        Update::new().set(TTL_ATTR, "soon"),
    ] {
        assert!(matches!(s.update(&k, u, None).await, Err(StoreError::Validation(_))));
    }
    assert_eq!(s.get(&k).await.unwrap(), None);
    // REMOVE-only upserts the bare key, like the embedded store
    let created = s.update(&k, Update::new().remove("nothing"), None).await.unwrap();
    assert_eq!(created, Item::new(&k));
}

#[tokio::test]
async fn missing_table_is_unavailable_with_a_useful_message() {
    let client = aws_sdk_dynamodb::Client::new(&sdk().await);
    let s = DynamoStore::new(client, unique("missing"), Arc::new(ManualClock::new(Utc::now())));
    match s.get(&Key::new("A", "B")).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("GetItem") && m.contains("ResourceNotFound"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn limit_reached_on_the_last_item() {
    // moto: no cursor when the page ends on the last item; DynamoDB: a cursor, then an empty page.
    let (s, _) = store().await;
    let pk = unique("P");
    for sk in ["A", "B"] {
        s.put(Item::new(&Key::new(pk.as_str(), sk)), None).await.unwrap();
    }
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.query(Query::partition(pk.clone()).limit(2).after(cursor)).await.unwrap();
        pages.push(page.items.len());
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert!(pages == [2] || pages == [2, 0], "{pages:?}");
}

#[tokio::test]
async fn fractional_expiry_follows_item_is_expired() {
    // `Item::is_expired` floors the ttl: 0.5 s after `now` is already expired at `now`.
    let (s, clock) = store().await;
    let k = Key::new(unique("F"), "1");
    let ttl = Decimal::from(clock.epoch_seconds()) + Decimal::new(5, 1);
    s.put(Item::new(&k).with(TTL_ATTR, Value::N(ttl)), None).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap(), None);
    s.put(Item::new(&k).with("fresh", true), Some(Condition::NotExists)).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap().unwrap().get_bool("fresh"), Some(true));
}
