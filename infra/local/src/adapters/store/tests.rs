use super::queries::{prefix_successor, segment_of};
use super::*;
use chrono::DateTime;
use nusatrade_app::ports::ManualClock;
use nusatrade_app::ports::store::{PK, SK};
use nusatrade_app::ports::{SkCondition, Value};
use std::time::Duration;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap()))
}

fn mem() -> (Arc<ManualClock>, EmbeddedStore) {
    let c = clock();
    let s = EmbeddedStore::temporary(c.clone()).unwrap();
    (c, s)
}

fn k(pk: &str, sk: &str) -> Key {
    Key::new(pk, sk)
}

async fn all(store: &EmbeddedStore, q: Query) -> Vec<Item> {
    let mut out = Vec::new();
    let mut q = q;
    loop {
        let page = store.query(q.clone()).await.unwrap();
        out.extend(page.items);
        match page.cursor {
            Some(c) => q = q.after(Some(c)),
            None => return out,
        }
    }
}

fn sks(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| i.get_s(SK).unwrap().to_owned()).collect()
}

#[test]
fn prefix_successor_bounds_every_extension() {
    assert_eq!(prefix_successor("ab"), Some("ac".into()));
    assert_eq!(prefix_successor("a\u{10FFFF}"), Some("b".into()));
    assert_eq!(prefix_successor("\u{D7FF}"), Some("\u{E000}".into()));
    assert_eq!(prefix_successor("\u{10FFFF}"), None);
    assert_eq!(prefix_successor(""), None);
    let succ = prefix_successor("ORDER#").unwrap();
    for s in ["ORDER#", "ORDER#\u{10FFFF}\u{10FFFF}", "ORDER#zzz"] {
        assert!(s < succ.as_str());
    }
}

#[tokio::test]
async fn persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("store.redb");
    {
        let s = EmbeddedStore::open(&path, clock()).unwrap();
        s.put(Item::new(&k("U#1", "P")).with("name", "ana").with("GSI1PK", "E#a").with("GSI1SK", "U#1"), None)
            .await
            .unwrap();
        s.increment(&k("C", "n"), "n", 5, None).await.unwrap();
    }
    let s = EmbeddedStore::open(&path, clock()).unwrap();
    assert_eq!(s.get(&k("U#1", "P")).await.unwrap().unwrap().get_s("name"), Some("ana"));
    assert_eq!(s.increment(&k("C", "n"), "n", 1, None).await.unwrap().to_string(), "6");
    let by_email = s.query(Query::index(Index::Gsi1, "E#a")).await.unwrap();
    assert_eq!(by_email.items.len(), 1);
}

/// What a killed process leaves: the files as they are now (page cache included), the store open.
fn crash_copy(from: &Path, to: &Path, with_log: bool) -> std::path::PathBuf {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("store.redb"), to.join("store.redb")).unwrap();
    if with_log {
        std::fs::copy(from.join("store.wal"), to.join("store.wal")).unwrap();
    }
    to.join("store.redb")
}

async fn write_a_history(s: &EmbeddedStore) {
    for i in 0..50 {
        let item = Item::new(&k("O", &format!("{i:03}"))).with("GSI1PK", "OPEN").with("GSI1SK", format!("{i:03}"));
        s.put(item, Some(Condition::NotExists)).await.unwrap();
    }
    s.update(&k("O", "007"), Update::new().set("GSI1PK", "CLOSED").set("profit", 12i64), None).await.unwrap();
    s.delete(&k("O", "008"), None).await.unwrap();
    s.transact_write(vec![
        TxOp::Update { key: k("L", "limits"), update: Update::new().add("n", 3), condition: None },
        TxOp::Delete { key: k("O", "009"), condition: Some(Condition::Exists) },
    ])
    .await
    .unwrap();
}

async fn assert_history(s: &EmbeddedStore) {
    assert_eq!(all(s, Query::partition("O")).await.len(), 48);
    assert_eq!(all(s, Query::index(Index::Gsi1, "OPEN")).await.len(), 47);
    let closed = all(s, Query::index(Index::Gsi1, "CLOSED")).await;
    assert_eq!(sks(&closed), vec!["007"]);
    assert_eq!(closed[0].get("profit"), Some(&Value::from(12i64)));
    assert_eq!(s.get(&k("L", "limits")).await.unwrap().unwrap().get("n"), Some(&Value::from(3i64)));
}

#[tokio::test]
async fn a_crash_loses_no_acknowledged_write_the_log_replays_them() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    // No checkpoint during the test: every batch is made durable by the log alone.
    let opts = WalOptions { max_bytes: 64 << 20, interval: Duration::from_secs(3600) };
    let s = EmbeddedStore::open_with(&live.join("store.redb"), clock(), opts).unwrap();
    write_a_history(&s).await;

    // Without the log, the database file alone holds none of it (the commits were not synced) ...
    let bare = EmbeddedStore::open(&crash_copy(&live, &dir.path().join("bare"), false), clock()).unwrap();
    assert!(all(&bare, Query::partition("O")).await.is_empty(), "the writes went through the log");
    // ... with it, everything acknowledged is back, the index in step.
    let copy = crash_copy(&live, &dir.path().join("crashed"), true);
    let recovered = EmbeddedStore::open(&copy, clock()).unwrap();
    assert_history(&recovered).await;
    // Replaying is idempotent, and the replay was checkpointed: a second open finds the same.
    recovered.put(Item::new(&k("N", "after")), None).await.unwrap();
    drop(recovered);
    let again = EmbeddedStore::open(&copy, clock()).unwrap();
    assert!(again.get(&k("N", "after")).await.unwrap().is_some());
    assert_history(&again).await;
    drop(s);
    // A clean close checkpoints: the database file alone has everything.
    let closed = EmbeddedStore::open(&crash_copy(&live, &dir.path().join("closed"), false), clock()).unwrap();
    assert_history(&closed).await;
}

#[tokio::test]
async fn checkpoints_make_the_database_file_durable_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    // A log too small for any batch: every batch is committed durably as a checkpoint.
    let opts = WalOptions { max_bytes: 1, interval: Duration::from_secs(3600) };
    let s = EmbeddedStore::open_with(&live.join("store.redb"), clock(), opts).unwrap();
    write_a_history(&s).await;
    let bare = EmbeddedStore::open(&crash_copy(&live, &dir.path().join("bare"), false), clock()).unwrap();
    assert_history(&bare).await;
    // The idle checkpoint: a short interval, the writer checkpoints without any further write.
    let opts = WalOptions { max_bytes: 64 << 20, interval: Duration::from_millis(50) };
    let idle = dir.path().join("idle");
    let s = EmbeddedStore::open_with(&idle.join("store.redb"), clock(), opts).unwrap();
    s.put(Item::new(&k("O", "a")), None).await.unwrap();
    let mut waited = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let bare =
            EmbeddedStore::open(&crash_copy(&idle, &dir.path().join(format!("idle{waited}")), false), clock()).unwrap();
        if bare.get(&k("O", "a")).await.unwrap().is_some() {
            break;
        }
        waited += 1;
        assert!(waited < 100, "no idle checkpoint after 5 s");
    }
}

#[tokio::test]
async fn conditional_writes() {
    let (_, s) = mem();
    let key = k("A", "1");
    s.put(Item::new(&key).with("version", 1i64), Some(Condition::NotExists)).await.unwrap();
    assert_eq!(s.put(Item::new(&key), Some(Condition::NotExists)).await, Err(StoreError::ConditionFailed));
    let u = s.update(&key, Update::new().add("version", 1).set("x", "y"), Some(Condition::version_is(1))).await;
    assert_eq!(u.unwrap().get("version"), Some(&Value::from(2i64)));
    assert_eq!(
        s.update(&key, Update::new().set("x", "z"), Some(Condition::version_is(1))).await,
        Err(StoreError::ConditionFailed)
    );
    assert_eq!(s.delete(&key, Some(Condition::version_is(1))).await, Err(StoreError::ConditionFailed));
    let gone = s.delete(&key, Some(Condition::version_is(2))).await.unwrap().unwrap();
    assert_eq!(gone.get_s("x"), Some("y"));
    assert_eq!(s.delete(&key, None).await, Ok(None));
    assert_eq!(s.get(&key).await, Ok(None));
    // Validation as DynamoDB.
    assert!(matches!(s.get(&k("", "x")).await, Err(StoreError::Validation(_))));
    assert!(matches!(s.update(&key, Update::new().set(PK, "B"), None).await, Err(StoreError::Validation(_))));
    assert!(matches!(s.put(Item::new(&key).with("GSI1PK", 3i64), None).await, Err(StoreError::Validation(_))));
}

#[tokio::test]
async fn expired_items_are_absent() {
    let (c, s) = mem();
    let key = k("S", "1");
    s.put(Item::new(&key).with("ttl", 1_700_000_010i64).with("n", 7i64).with("GSI1PK", "G").with("GSI1SK", "1"), None)
        .await
        .unwrap();
    assert!(s.get(&key).await.unwrap().is_some());
    c.advance(chrono::Duration::seconds(10));
    assert_eq!(s.get(&key).await, Ok(None));
    assert!(s.query(Query::partition("S")).await.unwrap().items.is_empty());
    assert!(s.query(Query::index(Index::Gsi1, "G")).await.unwrap().items.is_empty());
    // Conditions see no item, updates start from scratch, deletes return nothing.
    assert_eq!(
        s.update(&key, Update::new().add("n", 1), Some(Condition::Exists)).await,
        Err(StoreError::ConditionFailed)
    );
    let fresh = s.update(&key, Update::new().add("n", 1), None).await.unwrap();
    assert_eq!(fresh, Item::new(&key).with("n", 1i64));
    // The stale index entry went away with the expired item.
    assert!(s.query(Query::index(Index::Gsi1, "G")).await.unwrap().items.is_empty());
    s.put(Item::new(&key).with("ttl", 1_700_000_010i64), None).await.unwrap();
    assert_eq!(s.delete(&key, None).await, Ok(None));
    s.put(Item::new(&key).with("ttl", 1_700_000_010i64), Some(Condition::NotExists)).await.unwrap();
    s.put(Item::new(&k("S", "2")), None).await.unwrap();
    assert_eq!(s.purge_expired().await, Ok(1));
    assert_eq!(s.purge_expired().await, Ok(0));
}

#[tokio::test]
async fn index_follows_the_items() {
    let (_, s) = mem();
    let key = k("U#1", "PROFILE");
    s.put(Item::new(&key).with("GSI1PK", "EMAIL#a").with("GSI1SK", "U#1"), None).await.unwrap();
    // Sparse: no index entry without both attributes.
    s.put(Item::new(&k("U#2", "PROFILE")).with("GSI1PK", "EMAIL#a"), None).await.unwrap();
    assert_eq!(all(&s, Query::index(Index::Gsi1, "EMAIL#a")).await.len(), 1);
    s.update(&key, Update::new().set("GSI1PK", "EMAIL#b"), None).await.unwrap();
    assert!(all(&s, Query::index(Index::Gsi1, "EMAIL#a")).await.is_empty());
    assert_eq!(all(&s, Query::index(Index::Gsi1, "EMAIL#b")).await.len(), 1);
    s.update(&key, Update::new().remove("GSI1SK"), None).await.unwrap();
    assert!(all(&s, Query::index(Index::Gsi1, "EMAIL#b")).await.is_empty());
    s.update(&key, Update::new().set("GSI1SK", "X"), None).await.unwrap();
    s.delete(&key, None).await.unwrap();
    assert!(all(&s, Query::index(Index::Gsi1, "EMAIL#b")).await.is_empty());
}

#[tokio::test]
async fn queries_page_in_byte_order() {
    let (c, s) = mem();
    let sks_in = ["a", "b", "b\0", "b0", "ba", "c", "é", "\u{10FFFF}"];
    for sk in sks_in {
        s.put(Item::new(&k("P", sk)).with("GSI1PK", "G").with("GSI1SK", "same"), None).await.unwrap();
    }
    // Neighbouring partitions must not leak in.
    s.put(Item::new(&k("P\0", "a")), None).await.unwrap();
    s.put(Item::new(&k("O", "z")), None).await.unwrap();
    s.put(Item::new(&k("PP", "a")), None).await.unwrap();
    for limit in 1..=9 {
        let got = all(&s, Query::partition("P").limit(limit)).await;
        assert_eq!(sks(&got), sks_in, "limit {limit}");
        let got = all(&s, Query::partition("P").limit(limit).descending()).await;
        let mut rev = sks_in.to_vec();
        rev.reverse();
        assert_eq!(sks(&got), rev, "limit {limit}");
        let got = all(&s, Query::index(Index::Gsi1, "G").limit(limit)).await;
        assert_eq!(sks(&got), sks_in, "index, limit {limit}");
        let got = all(&s, Query::index(Index::Gsi1, "G").limit(limit).descending()).await;
        assert_eq!(sks(&got), rev, "index desc, limit {limit}");
    }
    let cases: Vec<(SkCondition, Vec<&str>)> = vec![
        (SkCondition::BeginsWith("b".into()), vec!["b", "b\0", "b0", "ba"]),
        (SkCondition::Eq("b0".into()), vec!["b0"]),
        (SkCondition::Between("b\0".into(), "c".into()), vec!["b\0", "b0", "ba", "c"]),
        (SkCondition::Lt("b0".into()), vec!["a", "b", "b\0"]),
        (SkCondition::Le("b0".into()), vec!["a", "b", "b\0", "b0"]),
        (SkCondition::Gt("c".into()), vec!["é", "\u{10FFFF}"]),
        (SkCondition::Ge("c".into()), vec!["c", "é", "\u{10FFFF}"]),
        (SkCondition::BeginsWith("\u{10FFFF}".into()), vec!["\u{10FFFF}"]),
        (SkCondition::BeginsWith("zz".into()), vec![]),
    ];
    for (cond, want) in cases {
        for limit in [1, 2, 100] {
            let got = all(&s, Query::partition("P").sk(cond.clone()).limit(limit)).await;
            assert_eq!(sks(&got), want, "{cond:?} limit {limit}");
            let got = all(&s, Query::partition("P").sk(cond.clone()).limit(limit).descending()).await;
            let mut rev = want.clone();
            rev.reverse();
            assert_eq!(sks(&got), rev, "{cond:?} desc limit {limit}");
            // The same conditions on the index sort key.
            let gcond = match &cond {
                SkCondition::BeginsWith(_) => SkCondition::BeginsWith("sa".into()),
                _ => SkCondition::Between("same".into(), "same".into()),
            };
            let got = all(&s, Query::index(Index::Gsi1, "G").sk(gcond).limit(limit)).await;
            assert_eq!(got.len(), sks_in.len());
        }
    }
    // A page peeks ahead: no cursor when the range is exhausted.
    let page = s.query(Query::partition("P").limit(8)).await.unwrap();
    assert_eq!((page.items.len(), page.cursor.is_none()), (8, true));
    let page = s.query(Query::partition("P").limit(7)).await.unwrap();
    assert_eq!((page.items.len(), page.cursor.is_some()), (7, true));
    // Expired items count toward the limit but are dropped.
    s.put(Item::new(&k("P", "b")).with("ttl", 1_700_000_001i64), None).await.unwrap();
    c.advance(chrono::Duration::seconds(5));
    let page = s.query(Query::partition("P").limit(2)).await.unwrap();
    assert_eq!(sks(&page.items), vec!["a"]);
    assert!(page.cursor.is_some());
    assert_eq!(all(&s, Query::partition("P").limit(2)).await.len(), sks_in.len() - 1);
    // Bad requests.
    assert!(matches!(s.query(Query::partition("")).await, Err(StoreError::Validation(_))));
    assert!(matches!(s.query(Query::partition("P").limit(0)).await, Err(StoreError::Validation(_))));
    assert!(matches!(
        s.query(Query::partition("P").sk(SkCondition::Between("b".into(), "a".into()))).await,
        Err(StoreError::Validation(_))
    ));
    let cursor = s.query(Query::partition("P").limit(1)).await.unwrap().cursor;
    assert_eq!(s.query(Query::partition("PP").after(cursor)).await, Err(StoreError::InvalidCursor));
}

#[tokio::test]
async fn transactions_are_all_or_nothing() {
    let (_, s) = mem();
    s.put(Item::new(&k("ACC", "1")).with("balance", 100i64), None).await.unwrap();
    s.put(Item::new(&k("ACC", "2")).with("balance", 0i64), None).await.unwrap();
    let ops = |amount: i64| {
        vec![
            TxOp::Update {
                key: k("ACC", "1"),
                update: Update::new().add("balance", -amount),
                condition: Some(Condition::ge("balance", amount)),
            },
            TxOp::Update { key: k("ACC", "2"), update: Update::new().add("balance", amount), condition: None },
            TxOp::Put {
                item: Item::new(&k("LOG", &amount.to_string())).with("GSI1PK", "L").with("GSI1SK", "x"),
                condition: Some(Condition::NotExists),
            },
            TxOp::ConditionCheck { key: k("ACC", "2"), condition: Condition::Exists }.clone(),
        ]
    };
    // ConditionCheck on ACC#2 duplicates the update's key: refused as DynamoDB does.
    assert!(matches!(s.transact_write(ops(10)).await, Err(StoreError::Validation(_))));
    let ops = |amount: i64| ops(amount).into_iter().take(3).collect::<Vec<_>>();
    s.transact_write(ops(60)).await.unwrap();
    let err = s.transact_write(ops(60)).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::TransactionCanceled(vec![
            CancelReason::ConditionalCheckFailed,
            CancelReason::None,
            CancelReason::ConditionalCheckFailed
        ])
    );
    assert!(err.is_condition_failure());
    assert_eq!(s.get(&k("ACC", "1")).await.unwrap().unwrap().get("balance"), Some(&Value::from(40i64)));
    assert_eq!(s.get(&k("ACC", "2")).await.unwrap().unwrap().get("balance"), Some(&Value::from(60i64)));
    assert_eq!(all(&s, Query::index(Index::Gsi1, "L")).await.len(), 1);
    // Deletes and checks in a transaction.
    s.transact_write(vec![
        TxOp::Delete { key: k("LOG", "60"), condition: Some(Condition::Exists) },
        TxOp::ConditionCheck { key: k("ACC", "1"), condition: Condition::eq("balance", 40i64) },
    ])
    .await
    .unwrap();
    assert!(all(&s, Query::index(Index::Gsi1, "L")).await.is_empty());
    // A type error inside a transaction cancels it with a reason for that operation.
    s.put(Item::new(&k("S", "1")).with("n", "text"), None).await.unwrap();
    let err = s
        .transact_write(vec![
            TxOp::Put { item: Item::new(&k("S", "2")), condition: None },
            TxOp::Update { key: k("S", "1"), update: Update::new().add("n", 1), condition: None },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TransactionCanceled(r) if r[0] == CancelReason::None && matches!(r[1], CancelReason::Other(_)))
    );
    assert_eq!(s.get(&k("S", "2")).await, Ok(None));
}

#[test]
fn scan_segments_are_stable() {
    // Part of what a scan cursor means: must not change between versions.
    assert_eq!(segment_of("", 7), (0xcbf2_9ce4_8422_2325u64 % 7) as u32);
    assert_eq!(segment_of("USER#1", 1), 0);
    let counts = (0..1000).fold([0u32; 4], |mut c, i| {
        c[segment_of(&format!("USER#{i}"), 4) as usize] += 1;
        c
    });
    assert!(counts.iter().all(|&n| n > 150), "partitions spread over the segments: {counts:?}");
}

#[tokio::test]
async fn scan_walks_a_segment_in_key_order_across_pages() {
    let (c, s) = mem();
    for p in 0..20 {
        for i in 0..3 {
            s.put(Item::new(&k(&format!("P{p:02}"), &format!("S{i}"))).with("n", i as i64), None).await.unwrap();
        }
    }
    s.put(Item::new(&k("P00", "S9")).with("ttl", 1_700_000_005i64), None).await.unwrap();
    c.advance(chrono::Duration::seconds(10));
    let mut total = 0;
    for seg in 0..3 {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = s.scan(Scan::segment(seg, 3).limit(2).after(cursor)).await.unwrap();
            assert!(page.items.len() <= 2);
            keys.extend(page.items.iter().map(|i| i.key().unwrap()));
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "key order within a segment");
        assert!(keys.iter().all(|k| segment_of(&k.pk, 3) == seg));
        total += keys.len();
    }
    assert_eq!(total, 60, "the expired item is skipped, every other one seen once");
    // put_many replaces whole items and keeps the index in step.
    s.put(Item::new(&k("Q", "1")).with("GSI1PK", "G").with("GSI1SK", "a").with("old", true), None).await.unwrap();
    s.put_many(vec![Item::new(&k("Q", "1")).with("GSI1PK", "H").with("GSI1SK", "a"), Item::new(&k("Q", "2"))])
        .await
        .unwrap();
    assert_eq!(s.get(&k("Q", "1")).await.unwrap().unwrap().get("old"), None);
    assert!(all(&s, Query::index(Index::Gsi1, "G")).await.is_empty());
    assert_eq!(all(&s, Query::index(Index::Gsi1, "H")).await.len(), 1);
}

#[tokio::test]
async fn a_failing_request_does_not_affect_its_batch() {
    let (_, s) = mem();
    // Submitted together (likely one batch): a write that panics, one that fails after writing, and
    // good writes around them.
    let good = |n: &'static str| s.put(Item::new(&k("OK", n)), None);
    let panics = s.write(|_| -> Result<(), StoreError> { panic!("bug in a request") });
    let half_done = s.write(|t| -> Result<(), StoreError> {
        store_item(t, &k("HALF", "1"), None, Some(&Item::new(&k("HALF", "1"))))?;
        Err(StoreError::Unavailable("disk full".into()))
    });
    let refused = s.put(Item::new(&k("OK", "a")), Some(Condition::Exists));
    let (a, p, h, r, b) = futures::join!(good("a"), panics, half_done, refused, good("b"));
    assert_eq!((a, r, b), (Ok(()), Ok(()), Ok(())));
    assert!(matches!(p, Err(StoreError::Unavailable(m)) if m.contains("bug in a request")));
    assert_eq!(h, Err(StoreError::Unavailable("disk full".into())));
    assert_eq!(s.get(&k("HALF", "1")).await, Ok(None));
    assert!(s.get(&k("OK", "a")).await.unwrap().is_some());
    assert!(s.get(&k("OK", "b")).await.unwrap().is_some());
    // The writer is still there.
    s.put(Item::new(&k("OK", "c")), Some(Condition::NotExists)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_conditional_writes_are_linearizable() {
    let (_, s) = mem();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = 0;
            for _ in 0..20 {
                s.increment(&k("C", "hits"), "n", 1, None).await.unwrap();
            }
            // Only one creator wins.
            if s.put(Item::new(&k("LOCK", "1")).with("owner", i as i64), Some(Condition::NotExists)).await.is_ok() {
                won += 1;
            }
            won
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap();
    }
    assert_eq!(winners, 1);
    assert_eq!(s.get(&k("C", "hits")).await.unwrap().unwrap().get("n"), Some(&Value::from(320i64)));
}
