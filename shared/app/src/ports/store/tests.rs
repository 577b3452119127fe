use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;

fn item() -> Item {
    Item::new(&Key::new("USER#1", "PROFILE")).with("version", 3i64).with("name", "ana").with("ok", true)
}

#[test]
fn conditions_follow_dynamodb_rules() {
    let i = item();
    assert!(eval::condition(&Condition::Exists, Some(&i)));
    assert!(!eval::condition(&Condition::Exists, None));
    assert!(eval::condition(&Condition::NotExists, None));
    assert!(eval::condition(&Condition::version_is(3), Some(&i)));
    assert!(!eval::condition(&Condition::version_is(4), Some(&i)));
    // missing attribute: comparisons are false, `<>` is true
    assert!(!eval::condition(&Condition::lt("missing", 1i64), Some(&i)));
    assert!(eval::condition(&Condition::ne("missing", 1i64), Some(&i)));
    // type mismatch is false
    assert!(!eval::condition(&Condition::lt("name", 1i64), Some(&i)));
    assert!(eval::condition(&Condition::BeginsWith("name".into(), "an".into()), Some(&i)));
    assert!(eval::condition(&Condition::lt("version", 10i64).and(Condition::AttrExists("ok".into())), Some(&i)));
    assert!(eval::condition(&Condition::AttrExists("nope".into()).not(), Some(&i)));
}

#[test]
fn updates_upsert_and_count() {
    let k = Key::new("C", "1");
    let a = eval::apply_update(None, &k, &Update::new().add("n", 2)).unwrap();
    assert_eq!(a.get_n("n"), Some(Decimal::from(2)));
    let b = eval::apply_update(Some(a), &k, &Update::new().add("n", -5).set_if_not_exists("m", 9i64)).unwrap();
    assert_eq!(b.get_n("n"), Some(Decimal::from(-3)));
    assert_eq!(b.get_n("m"), Some(Decimal::from(9)));
    assert!(validate::update(&Update::new().add("n", 1).set("n", 2i64)).is_err(), "one action per attribute");
    assert!(validate::update(&Update::new().set("GSI1PK", 1i64)).is_err());
    assert!(validate::update(&Update::new().set("GSI1PK", "")).is_err());
    assert!(validate::update(&Update::new().add("GSI1SK", 1)).is_err());
    assert!(validate::update(&Update::new().set(TTL_ATTR, "soon")).is_err());
    assert!(validate::update(&Update::new().set("GSI1PK", "X").add(TTL_ATTR, 5i64)).is_ok());
    let err = eval::apply_update(Some(b.with("s", "x")), &k, &Update::new().add("s", 1)).unwrap_err();
    assert!(matches!(err, StoreError::Validation(_)));
}

#[test]
fn transactions_refuse_duplicates_and_size() {
    let k = Key::new("A", "1");
    let dup = vec![
        TxOp::ConditionCheck { key: k.clone(), condition: Condition::Exists },
        TxOp::Delete { key: k, condition: None },
    ];
    assert!(matches!(validate::transaction(&dup), Err(StoreError::Validation(_))));
    let many: Vec<_> = (0..101).map(|i| TxOp::Delete { key: Key::new("A", i.to_string()), condition: None }).collect();
    assert!(validate::transaction(&many).is_err());
    assert!(validate::transaction(&[]).is_err());
}

#[test]
fn cursor_is_bound_to_its_partition() {
    let mut attrs = BTreeMap::new();
    attrs.insert(PK.to_string(), "P1".to_string());
    attrs.insert(SK.to_string(), "S".to_string());
    let c = Cursor::encode(&attrs);
    assert!(Query::partition("P1").after(Some(c.clone())).decode_cursor().unwrap().is_some());
    assert_eq!(Query::partition("P2").after(Some(c.clone())).decode_cursor(), Err(StoreError::InvalidCursor));
    assert_eq!(Query::index(Index::Gsi1, "P1").after(Some(c)).decode_cursor(), Err(StoreError::InvalidCursor));
    assert!(Cursor::parse("not base64 !").is_err());
}

#[test]
fn scan_cursor_is_bound_to_its_segment() {
    let k = Key::new("P", "S");
    let s = Scan::segment(2, 4).limit(10);
    let c = s.cursor_after(&k);
    assert_eq!(s.clone().after(Some(c.clone())).decode_cursor(), Ok(Some(k.clone())));
    assert!(validate::scan(&s.clone().after(Some(c.clone()))).is_ok());
    for other in [Scan::segment(1, 4), Scan::segment(2, 5), Scan::all()] {
        assert_eq!(other.after(Some(c.clone())).decode_cursor(), Err(StoreError::InvalidCursor));
    }
    // A query's cursor is not a scan's, and the other way round.
    let mut attrs = BTreeMap::new();
    attrs.insert(PK.to_string(), "P".to_string());
    attrs.insert(SK.to_string(), "S".to_string());
    let qc = Cursor::encode(&attrs);
    assert_eq!(Scan::all().after(Some(qc)).decode_cursor(), Err(StoreError::InvalidCursor));
    assert_eq!(Query::partition("P").after(Some(c)).decode_cursor(), Err(StoreError::InvalidCursor));
    for bad in [Scan::segment(0, 0), Scan::segment(4, 4), Scan::segment(0, MAX_SCAN_SEGMENTS + 1)] {
        assert!(matches!(validate::scan(&bad), Err(StoreError::Validation(_))), "{bad:?}");
    }
    assert!(validate::scan(&Scan::all().limit(0)).is_err());
    assert!(validate::scan(&Scan::all().limit(MAX_QUERY_LIMIT + 1)).is_err());
    assert!(validate::scan(&Scan::segment(MAX_SCAN_SEGMENTS - 1, MAX_SCAN_SEGMENTS)).is_ok());
}

#[test]
fn batch_writes_are_validated() {
    let items: Vec<Item> = (0..MAX_BATCH_WRITE_ITEMS).map(|i| Item::new(&Key::new("P", i.to_string()))).collect();
    assert_eq!(validate::put_many(&items).unwrap().len(), MAX_BATCH_WRITE_ITEMS);
    let mut too_many = items.clone();
    too_many.push(Item::new(&Key::new("P", "x")));
    assert!(validate::put_many(&too_many).is_err());
    assert!(validate::put_many(&[]).is_err());
    let dup = vec![Item::new(&Key::new("P", "1")), Item::new(&Key::new("P", "1")).with("a", 1i64)];
    assert!(validate::put_many(&dup).is_err());
    assert!(validate::put_many(&[Item::default()]).is_err());
}

#[test]
fn records_round_trip() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct R {
        a: String,
        n: u32,
        f: f64,
        d: Decimal,
        o: Option<String>,
    }
    let r = R { a: "x".into(), n: 7, f: 1.5, d: Decimal::new(12345, 4), o: None };
    let it = Item::from_record(&Key::new("P", "S"), &r).unwrap();
    assert_eq!(it.get_n("n"), Some(Decimal::from(7)));
    let back: R = it.to_record().unwrap();
    assert_eq!(back, r);
}

#[test]
fn ttl_expiry_is_inclusive() {
    let i = item().with(TTL_ATTR, 100i64);
    assert!(i.is_expired(100));
    assert!(!i.is_expired(99));
    assert!(!item().is_expired(i64::MAX));
}
