//! Merge by timestamp, time ranges, and per-month partitions (the chunks of candle storage).

use std::ops::Range;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use super::{Candle, CandleSeries};

/// What to keep when both series have a bar at the same timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conflict {
    /// The stored bar stays.
    KeepExisting,
    /// The incoming bar replaces the stored one (an upsert; corrections win).
    ReplaceWithIncoming,
}

/// Result of a [`merge`].
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The merged series.
    pub series: CandleSeries,
    /// Incoming bars at new timestamps.
    pub added: usize,
    /// Incoming bars at existing timestamps that replaced a different stored bar.
    pub replaced: usize,
    /// Incoming bars at existing timestamps that changed nothing (identical, or kept by the policy).
    pub unchanged: usize,
}

/// Merges `incoming` into `existing` by timestamp (a sorted two-way merge, O(n + m)); duplicates are resolved
/// with `conflict`. The result is a valid series: both inputs are, and the merge keeps one bar per timestamp in
/// increasing order.
pub fn merge(existing: &CandleSeries, incoming: &CandleSeries, conflict: Conflict) -> Merged {
    let (a, b) = (existing.candles(), incoming.candles());
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    let (mut added, mut replaced, mut unchanged) = (0, 0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.time == y.time => {
                let keep_incoming = conflict == Conflict::ReplaceWithIncoming && x != y;
                if keep_incoming {
                    replaced += 1;
                } else {
                    unchanged += 1;
                }
                out.push(if keep_incoming { *y } else { *x });
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.time < y.time => {
                out.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                out.push(*y);
                added += 1;
                j += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
    }
    let series = CandleSeries::new(out).expect("a merge of two valid series by timestamp is a valid series");
    Merged { series, added, replaced, unchanged }
}

/// Index range of the bars with `from ≤ time < to`.
pub fn index_range(series: &CandleSeries, from: DateTime<Utc>, to: DateTime<Utc>) -> Range<usize> {
    let c = series.candles();
    let start = c.partition_point(|x| x.time < from);
    let end = c.partition_point(|x| x.time < to).max(start);
    start..end
}

/// The bars with `from ≤ time < to`, as a series.
pub fn range(series: &CandleSeries, from: DateTime<Utc>, to: DateTime<Utc>) -> CandleSeries {
    let r = index_range(series, from, to);
    CandleSeries::new(series.candles()[r].to_vec()).expect("a slice of a valid series is valid")
}

/// A calendar month (UTC), the chunk of candle storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
}

impl Month {
    /// The month containing `t`.
    pub fn of(t: DateTime<Utc>) -> Month {
        Month { year: t.year(), month: t.month() }
    }

    /// `YYYY-MM`, e.g. for a storage key.
    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// Splits a series into consecutive per-month series (UTC), oldest first.
pub fn partition_by_month(series: &CandleSeries) -> Vec<(Month, CandleSeries)> {
    let mut out: Vec<(Month, Vec<Candle>)> = Vec::new();
    for c in series.candles() {
        let m = Month::of(c.time);
        match out.last_mut() {
            Some((last, bars)) if *last == m => bars.push(*c),
            _ => out.push((m, vec![*c])),
        }
    }
    out.into_iter().map(|(m, bars)| (m, CandleSeries::new(bars).expect("a slice of a valid series is valid"))).collect()
}
