//! Reads of many items: a query over one partition of the table or of the index, and a page of a scan segment,
//! each in one read transaction, walking redb's key order from the cursor.

use std::ops::Bound;

use nusatrade_app::ports::store::{Index, PK, SK};
use nusatrade_app::ports::{Cursor, Item, Key, Page, Query, Scan, SkCondition, StoreError};
use redb::ReadableTable;

use super::codec::decode;
use super::tables::{db_err, load_raw};

/// The scan segment of a partition key: FNV-1a (64 bit) of its bytes, modulo the segment count.
pub(super) fn segment_of(pk: &str, total_segments: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pk.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(total_segments)) as u32
}

/// One page of a scan segment: the segment's items after the cursor, in key order.
pub(super) fn scan_segment(
    items: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    scan: &Scan,
    after: Option<Key>,
    limit: usize,
    now: i64,
) -> Result<Page, StoreError> {
    let range = match &after {
        Some(k) => items.range::<(&str, &str)>((Bound::Excluded((k.pk.as_str(), k.sk.as_str())), Bound::Unbounded)),
        None => items.range::<(&str, &str)>(..),
    }
    .map_err(db_err)?;
    // Each entry: the key and the item, or `None` when it has expired (evaluated but dropped).
    let mut evaluated: Vec<(Key, Option<Item>)> = Vec::with_capacity(limit + 1);
    // The partition seen last and whether it is in the segment (a partition's items are adjacent).
    let mut current: Option<(String, bool)> = None;
    for entry in range {
        let (k, v) = entry.map_err(db_err)?;
        let (pk, sk) = k.value();
        let inside = match &current {
            Some((p, inside)) if p == pk => *inside,
            _ => {
                let inside = segment_of(pk, scan.total_segments) == scan.segment;
                current = Some((pk.to_owned(), inside));
                inside
            }
        };
        if !inside {
            continue;
        }
        // The entry after the page is only peeked at (is there more?): no need to decode it.
        let item = if evaluated.len() < limit { Some(decode(v.value())?).filter(|i| !i.is_expired(now)) } else { None };
        evaluated.push((Key::new(pk, sk), item));
        if evaluated.len() > limit {
            break;
        }
    }
    page_from(evaluated, limit, |(_, item)| Ok(item.clone()), |(key, _)| scan.cursor_after(key))
}

/// Bounds on composite keys, as vectors of strings (compared element by element in byte order, which
/// is how redb orders tuples of `&str`).
type Bounds = (Bound<Vec<String>>, Bound<Vec<String>>);

/// The smallest string greater than every string starting with `prefix` (`None`: there is none).
/// UTF-8 byte order is code point order, so incrementing the last incrementable char works.
pub(super) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let next = match c {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The immediate successor of `s` in byte order: `s` followed by NUL.
fn successor(s: &str) -> String {
    format!("{s}\0")
}

/// Sort key bounds of the condition.
fn sk_bounds(c: Option<&SkCondition>) -> (Bound<String>, Bound<String>) {
    use Bound::{Excluded, Included, Unbounded};
    match c {
        None => (Unbounded, Unbounded),
        Some(SkCondition::Eq(v)) => (Included(v.clone()), Included(v.clone())),
        Some(SkCondition::BeginsWith(p)) => (Included(p.clone()), prefix_successor(p).map_or(Unbounded, Excluded)),
        Some(SkCondition::Between(a, b)) => (Included(a.clone()), Included(b.clone())),
        Some(SkCondition::Lt(v)) => (Unbounded, Excluded(v.clone())),
        Some(SkCondition::Le(v)) => (Unbounded, Included(v.clone())),
        Some(SkCondition::Gt(v)) => (Excluded(v.clone()), Unbounded),
        Some(SkCondition::Ge(v)) => (Included(v.clone()), Unbounded),
    }
}

/// Composite key bounds for partition `pk` of a table whose keys are `(pk, sort, rest...)`, where
/// `rest` holds `extra` more elements (0 for the table, 2 for an index).
fn key_bounds(pk: &str, sk: (Bound<String>, Bound<String>), extra: usize) -> Bounds {
    use Bound::{Excluded, Included, Unbounded};
    let key = |sort: String| {
        let mut v = vec![pk.to_owned(), sort];
        v.extend(std::iter::repeat_n(String::new(), extra));
        v
    };
    let lower = match sk.0 {
        Unbounded => Included(key(String::new())),
        Included(s) => Included(key(s)),
        // With more elements after the sort key, "after s" is "at or after s + NUL".
        Excluded(s) if extra > 0 => Included(key(successor(&s))),
        Excluded(s) => Excluded(key(s)),
    };
    let upper = match sk.1 {
        Unbounded => {
            let mut v = vec![successor(pk), String::new()];
            v.extend(std::iter::repeat_n(String::new(), extra));
            Excluded(v)
        }
        Included(s) if extra > 0 => Excluded(key(successor(&s))),
        Included(s) => Included(key(s)),
        Excluded(s) => Excluded(key(s)),
    };
    (lower, upper)
}

/// Narrows the bounds to what comes strictly after the cursor key, in the query's direction.
fn after_cursor(bounds: Bounds, cursor: Vec<String>, descending: bool) -> Bounds {
    let (lower, upper) = bounds;
    if descending {
        let keep = matches!(&upper, Bound::Included(u) | Bound::Excluded(u) if *u < cursor);
        (lower, if keep { upper } else { Bound::Excluded(cursor) })
    } else {
        let keep = matches!(&lower, Bound::Included(l) | Bound::Excluded(l) if *l > cursor);
        (if keep { lower } else { Bound::Excluded(cursor) }, upper)
    }
}

/// True when no key lies within the bounds (redb must not be handed an inverted range).
fn is_empty(b: &Bounds) -> bool {
    use Bound::{Excluded, Included};
    match (&b.0, &b.1) {
        (Included(l), Included(u)) => l > u,
        (Included(l) | Excluded(l), Included(u) | Excluded(u)) => l >= u,
        _ => false,
    }
}

fn key2(v: &[String]) -> (&str, &str) {
    (&v[0], &v[1])
}

fn key4(v: &[String]) -> (&str, &str, &str, &str) {
    (&v[0], &v[1], &v[2], &v[3])
}

/// Builds the page from the evaluated keys (in query order, at most `limit + 1`: one to peek).
fn page_from<K>(
    evaluated: Vec<K>,
    limit: usize,
    mut load: impl FnMut(&K) -> Result<Option<Item>, StoreError>,
    cursor_of: impl Fn(&K) -> Cursor,
) -> Result<Page, StoreError> {
    let more = evaluated.len() > limit;
    let mut items = Vec::with_capacity(evaluated.len().min(limit));
    for k in evaluated.iter().take(limit) {
        if let Some(item) = load(k)? {
            items.push(item);
        }
    }
    let cursor = if more { evaluated.get(limit - 1).map(cursor_of) } else { None };
    Ok(Page { items, cursor })
}

pub(super) fn query_table(
    items: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    q: &Query,
    after: Option<std::collections::BTreeMap<String, String>>,
    limit: usize,
    now: i64,
) -> Result<Page, StoreError> {
    let mut bounds = key_bounds(&q.pk, sk_bounds(q.sk.as_ref()), 0);
    if let Some(a) = after {
        let cursor = vec![a.get(PK).cloned().unwrap_or_default(), a.get(SK).cloned().unwrap_or_default()];
        bounds = after_cursor(bounds, cursor, q.descending);
    }
    if is_empty(&bounds) {
        return Ok(Page::default());
    }
    let range =
        items.range((bounds.0.as_ref().map(|v| key2(v)), bounds.1.as_ref().map(|v| key2(v)))).map_err(db_err)?;
    // Each entry: the key and the item, or `None` when it has expired (evaluated but dropped).
    let mut evaluated: Vec<(Key, Option<Item>)> = Vec::with_capacity(limit + 1);
    let entries: Box<dyn Iterator<Item = _>> = if q.descending { Box::new(range.rev()) } else { Box::new(range) };
    for (n, entry) in entries.take(limit + 1).enumerate() {
        let (k, v) = entry.map_err(db_err)?;
        let (pk, sk) = k.value();
        // The entry after the page is only peeked at (is there more?): no need to decode it.
        let item = if n < limit { Some(decode(v.value())?).filter(|i| !i.is_expired(now)) } else { None };
        evaluated.push((Key::new(pk, sk), item));
    }
    page_from(
        evaluated,
        limit,
        |(_, item)| Ok(item.clone()),
        |(key, _)| {
            let mut attrs = std::collections::BTreeMap::new();
            attrs.insert(PK.to_owned(), key.pk.clone());
            attrs.insert(SK.to_owned(), key.sk.clone());
            Cursor::encode(&attrs)
        },
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn query_index(
    items: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    gsi: &impl ReadableTable<(&'static str, &'static str, &'static str, &'static str), ()>,
    ix: Index,
    q: &Query,
    after: Option<std::collections::BTreeMap<String, String>>,
    limit: usize,
    now: i64,
) -> Result<Page, StoreError> {
    let mut bounds = key_bounds(&q.pk, sk_bounds(q.sk.as_ref()), 2);
    if let Some(a) = after {
        let get = |n: &str| a.get(n).cloned().unwrap_or_default();
        let cursor = vec![get(ix.pk_attr()), get(ix.sk_attr()), get(PK), get(SK)];
        bounds = after_cursor(bounds, cursor, q.descending);
    }
    if is_empty(&bounds) {
        return Ok(Page::default());
    }
    let range = gsi.range((bounds.0.as_ref().map(|v| key4(v)), bounds.1.as_ref().map(|v| key4(v)))).map_err(db_err)?;
    // Each evaluated entry: (GSI1PK, GSI1SK, PK, SK).
    let mut evaluated: Vec<[String; 4]> = Vec::with_capacity(limit + 1);
    let entries: Box<dyn Iterator<Item = _>> = if q.descending { Box::new(range.rev()) } else { Box::new(range) };
    for entry in entries.take(limit + 1) {
        let (k, _) = entry.map_err(db_err)?;
        let (gpk, gsk, pk, sk) = k.value();
        evaluated.push([gpk.to_owned(), gsk.to_owned(), pk.to_owned(), sk.to_owned()]);
    }
    page_from(
        evaluated,
        limit,
        |[_, _, pk, sk]| {
            let key = Key::new(pk.as_str(), sk.as_str());
            match load_raw(items, &key)? {
                Some(item) => Ok(Some(item).filter(|i| !i.is_expired(now))),
                None => Err(StoreError::Corrupt(format!("index {} points at missing item {key}", ix.name()))),
            }
        },
        |[gpk, gsk, pk, sk]| {
            let mut attrs = std::collections::BTreeMap::new();
            attrs.insert(ix.pk_attr().to_owned(), gpk.clone());
            attrs.insert(ix.sk_attr().to_owned(), gsk.clone());
            attrs.insert(PK.to_owned(), pk.clone());
            attrs.insert(SK.to_owned(), sk.clone());
            Cursor::encode(&attrs)
        },
    )
}
