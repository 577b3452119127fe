//! OHLCV candles: CSV import with line-numbered validation errors, a compact compressed blob format, and
//! merge/append by time range.
//!
//! The candle types are the domain's ([`Candle`] and the validated [`CandleSeries`], re-exported): every value
//! finite, prices strictly positive, volume non-negative, `high ≥ max(open, close)`, `low ≤ min(open, close)`,
//! timestamps strictly increasing (no duplicates). Everything here takes and returns bytes or values; storage
//! (S3, files) belongs to the adapters.
//!
//! * [`parse_csv`] reads the backtesting.py layout of `EURUSD.csv` (`,Open,High,Low,Close,Volume`, timestamp in the
//!   unnamed first column) and the common `time,open,high,low,close[,volume]` layout (any column order, names
//!   case-insensitive, a few aliases), within [`CsvLimits`]; errors carry the 1-based line number.
//! * [`encode_blob`]/[`decode_blob`]: gzip-compressed text, one bar per line (`unix seconds,o,h,l,c,v` with
//!   shortest round-trip floats, so decoding gives back bit-identical values) behind a versioned magic line;
//!   decoding is size-bounded and re-validates.
//! * [`merge`] upserts one series into another (duplicates by timestamp resolved by a [`Conflict`] policy);
//!   [`range`] cuts a time range; [`partition_by_month`] splits a series into per-month chunks, so an append only
//!   rewrites the chunks it touches.

use std::io::{Read, Write};
use std::ops::Range;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

pub use nusatrade_domain::ml::{Candle, CandleProblem, Series as CandleSeries, SeriesError};

// ---------------------------------------------------------------------------------------------------------------
// Timeframes

/// Bar length of a series, with the annualisation used by the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Timeframe {
    /// 1 minute.
    M1,
    /// 5 minutes.
    M5,
    /// 15 minutes.
    M15,
    /// 30 minutes.
    M30,
    /// 1 hour (the original's default).
    H1,
    /// 4 hours.
    H4,
    /// 1 day.
    D1,
    /// 1 week.
    W1,
}

impl Timeframe {
    /// Bar length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Timeframe::M1 => 60,
            Timeframe::M5 => 300,
            Timeframe::M15 => 900,
            Timeframe::M30 => 1_800,
            Timeframe::H1 => 3_600,
            Timeframe::H4 => 14_400,
            Timeframe::D1 => 86_400,
            Timeframe::W1 => 604_800,
        }
    }

    /// Bars per year for annualising (Sharpe ratio): 252 trading days of 24 hours for intraday FX bars
    /// (`H1` → 6,048), 252 for `D1`, 52 for `W1`.
    pub fn bars_per_year(self) -> f64 {
        match self {
            Timeframe::D1 => 252.0,
            Timeframe::W1 => 52.0,
            intraday => 252.0 * 86_400.0 / intraday.seconds() as f64,
        }
    }

    /// Parses `M1`…`W1` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "M1" => Timeframe::M1,
            "M5" => Timeframe::M5,
            "M15" => Timeframe::M15,
            "M30" => Timeframe::M30,
            "H1" => Timeframe::H1,
            "H4" => Timeframe::H4,
            "D1" => Timeframe::D1,
            "W1" => Timeframe::W1,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// CSV

/// Size limits for a CSV upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvLimits {
    /// Maximum size of the whole input in bytes.
    pub max_bytes: usize,
    /// Maximum number of data rows (the header and blank lines not counted).
    pub max_rows: usize,
}

impl Default for CsvLimits {
    /// 16 MiB and 200,000 rows (about 23 years of hourly bars; `EURUSD.csv` is 280 kB and 5,000 rows).
    fn default() -> Self {
        CsvLimits { max_bytes: 16 << 20, max_rows: 200_000 }
    }
}

/// Why a CSV was refused. `line` is 1-based and counts the header (line 1).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsvError {
    /// The input is larger than [`CsvLimits::max_bytes`].
    #[error("the file is {size} bytes; at most {max} are accepted")]
    TooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// More data rows than [`CsvLimits::max_rows`]; `line` is the first row over the limit.
    #[error("line {line}: more than {max} rows")]
    TooManyRows {
        /// First line over the limit.
        line: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8 text.
    #[error("line {line}: not UTF-8 text")]
    NotUtf8 {
        /// Line of the first invalid byte.
        line: usize,
    },
    /// No header line.
    #[error("the file is empty")]
    Empty,
    /// A header without data rows.
    #[error("the file has a header but no rows")]
    NoRows,
    /// The header lacks a required column.
    #[error("line 1: no `{column}` column in the header")]
    MissingColumn {
        /// `time`, `open`, `high`, `low` or `close`.
        column: &'static str,
    },
    /// Two header columns map to the same field.
    #[error("line 1: more than one `{column}` column in the header")]
    DuplicateColumn {
        /// The field.
        column: &'static str,
    },
    /// A row with the wrong number of fields.
    #[error("line {line}: {found} fields, expected {expected}")]
    FieldCount {
        /// The row's line.
        line: usize,
        /// Number of header columns.
        expected: usize,
        /// Number of fields found.
        found: usize,
    },
    /// A timestamp that none of the accepted formats parses.
    #[error("line {line}: unreadable timestamp {value:?} (use YYYY-MM-DD HH:MM:SS, RFC 3339 or unix seconds)")]
    BadTimestamp {
        /// The row's line.
        line: usize,
        /// The field as found.
        value: String,
    },
    /// A number that does not parse.
    #[error("line {line}: {column} is not a number: {value:?}")]
    BadNumber {
        /// The row's line.
        line: usize,
        /// The field.
        column: &'static str,
        /// The field as found.
        value: String,
    },
    /// A bar that parses but breaks a series rule (NaN/∞, non-positive price, negative volume, high/low outside the
    /// body, timestamp not after the previous row's).
    #[error("line {line}: {problem}")]
    InvalidBar {
        /// The row's line.
        line: usize,
        /// The broken rule.
        problem: CandleProblem,
    },
}

impl CsvError {
    /// The 1-based line the error refers to, when it refers to one (for a 422 body).
    pub fn line(&self) -> Option<usize> {
        match self {
            CsvError::TooManyRows { line, .. }
            | CsvError::NotUtf8 { line }
            | CsvError::FieldCount { line, .. }
            | CsvError::BadTimestamp { line, .. }
            | CsvError::BadNumber { line, .. }
            | CsvError::InvalidBar { line, .. } => Some(*line),
            CsvError::MissingColumn { .. } | CsvError::DuplicateColumn { .. } => Some(1),
            CsvError::TooLarge { .. } | CsvError::Empty | CsvError::NoRows => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Time,
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Time => "time",
            Field::Open => "open",
            Field::High => "high",
            Field::Low => "low",
            Field::Close => "close",
            Field::Volume => "volume",
        }
    }

    /// Header name → field. An empty name is the unnamed index column of pandas' `to_csv` (backtesting.py data).
    fn from_header(name: &str) -> Option<Field> {
        let name = name.trim().trim_matches('"').to_ascii_lowercase();
        Some(match name.as_str() {
            "" | "time" | "timestamp" | "date" | "datetime" | "date_time" | "open_time" => Field::Time,
            "open" | "o" => Field::Open,
            "high" | "h" => Field::High,
            "low" | "l" => Field::Low,
            "close" | "c" => Field::Close,
            "volume" | "vol" | "v" | "tick_volume" | "tickvol" | "real_volume" => Field::Volume,
            _ => return None,
        })
    }
}

/// Column positions found in the header.
struct Layout {
    columns: usize,
    time: usize,
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    volume: Option<usize>,
}

fn layout(header: &str) -> Result<Layout, CsvError> {
    let mut found: [Option<usize>; 6] = [None; 6];
    let names: Vec<&str> = header.split(',').collect();
    for (i, name) in names.iter().enumerate() {
        if let Some(field) = Field::from_header(name) {
            let slot = &mut found[field as usize];
            if slot.is_some() {
                return Err(CsvError::DuplicateColumn { column: field.name() });
            }
            *slot = Some(i);
        }
    }
    let need = |f: Field| found[f as usize].ok_or(CsvError::MissingColumn { column: f.name() });
    Ok(Layout {
        columns: names.len(),
        time: need(Field::Time)?,
        open: need(Field::Open)?,
        high: need(Field::High)?,
        low: need(Field::Low)?,
        close: need(Field::Close)?,
        volume: found[Field::Volume as usize],
    })
}

/// Parses a timestamp: `YYYY-MM-DD HH:MM:SS` (also with `T`, fractional seconds, or without seconds),
/// `YYYY-MM-DD` (midnight), RFC 3339 with an offset (converted to UTC), or integer unix seconds. Timestamps
/// without an offset are taken as UTC.
pub fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    let v = value.trim().trim_matches('"');
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, format) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<i64>().ok().and_then(|s| Utc.timestamp_opt(s, 0).single());
    }
    None
}

/// Writes a series as the CSV [`parse_csv`] reads (`time,open,high,low,close,volume`, UTC times to the second,
/// shortest exact decimals), e.g. a connector's history to upload as a dataset.
pub fn to_csv(series: &CandleSeries) -> String {
    let mut out = String::from("time,open,high,low,close,volume\n");
    for c in series.candles() {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            c.time.format("%Y-%m-%d %H:%M:%S"),
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume
        ));
    }
    out
}

/// Parses and validates a candle CSV (see the module docs for the layouts). Blank lines are skipped, `\r\n` line
/// ends and a UTF-8 byte-order mark are accepted, a missing volume column gives volume 0. The first problem found,
/// in file order, is reported with its line.
pub fn parse_csv(bytes: &[u8], limits: &CsvLimits) -> Result<CandleSeries, CsvError> {
    if bytes.len() > limits.max_bytes {
        return Err(CsvError::TooLarge { size: bytes.len(), max: limits.max_bytes });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| CsvError::NotUtf8 {
        line: 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let header = lines.by_ref().find(|(_, l)| !l.trim().is_empty()).ok_or(CsvError::Empty)?;
    let layout = layout(header.1)?;

    let mut candles: Vec<Candle> = Vec::new();
    for (line, row) in lines {
        if row.trim().is_empty() {
            continue;
        }
        if candles.len() == limits.max_rows {
            return Err(CsvError::TooManyRows { line, max: limits.max_rows });
        }
        let fields: Vec<&str> = row.split(',').collect();
        if fields.len() != layout.columns {
            return Err(CsvError::FieldCount { line, expected: layout.columns, found: fields.len() });
        }
        let time = parse_timestamp(fields[layout.time])
            .ok_or_else(|| CsvError::BadTimestamp { line, value: fields[layout.time].to_owned() })?;
        let number = |index: usize, column: &'static str| {
            let value = fields[index].trim().trim_matches('"');
            value.parse::<f64>().map_err(|_| CsvError::BadNumber { line, column, value: value.to_owned() })
        };
        let candle = Candle {
            time,
            open: number(layout.open, "open")?,
            high: number(layout.high, "high")?,
            low: number(layout.low, "low")?,
            close: number(layout.close, "close")?,
            volume: match layout.volume {
                Some(i) => number(i, "volume")?,
                None => 0.0,
            },
        };
        candle.check().map_err(|problem| CsvError::InvalidBar { line, problem })?;
        if candles.last().is_some_and(|previous| candle.time <= previous.time) {
            return Err(CsvError::InvalidBar { line, problem: CandleProblem::TimestampNotIncreasing });
        }
        candles.push(candle);
    }
    if candles.is_empty() {
        return Err(CsvError::NoRows);
    }
    // Every rule was checked row by row above; the domain constructor checks them again.
    CandleSeries::new(candles).map_err(|e| CsvError::InvalidBar { line: e.index + 2, problem: e.problem })
}

// ---------------------------------------------------------------------------------------------------------------
// Blob

/// First line of a decoded candle blob.
pub const BLOB_MAGIC: &str = "nusatrade-candles v1";

/// Why a blob could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BlobError {
    /// The compressed input is larger than allowed.
    #[error("candle blob is {size} bytes compressed; at most {max} are accepted")]
    TooLarge {
        /// Compressed size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The decompressed content would exceed the limit (a decompression bomb, or a limit set too low).
    #[error("candle blob decompresses to more than {max} bytes")]
    DecompressedTooLarge {
        /// The limit.
        max: usize,
    },
    /// Not gzip, or corrupt.
    #[error("candle blob is not valid gzip: {0}")]
    Compression(String),
    /// Not a candle blob of a known version.
    #[error("not a `{BLOB_MAGIC}` blob")]
    BadMagic,
    /// A malformed line (1-based, the magic line is line 1).
    #[error("candle blob line {line}: malformed")]
    Malformed {
        /// The line.
        line: usize,
    },
    /// The bars break a series rule (index is the bar's 0-based position).
    #[error("candle blob: {0}")]
    Invalid(#[from] SeriesError),
}

/// Size limits for decoding a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobLimits {
    /// Maximum compressed size.
    pub max_compressed: usize,
    /// Maximum decompressed size.
    pub max_decompressed: usize,
}

impl Default for BlobLimits {
    /// 32 MiB compressed, 128 MiB decompressed (about 2 million bars at ~60 bytes each).
    fn default() -> Self {
        BlobLimits { max_compressed: 32 << 20, max_decompressed: 128 << 20 }
    }
}

/// Encodes a series as a gzip-compressed blob (deterministic: same series, same bytes). EURUSD's 5,000 hourly
/// bars take about 90 kB.
pub fn encode_blob(series: &CandleSeries) -> Vec<u8> {
    let mut text = String::with_capacity(24 + series.len() * 64);
    text.push_str(BLOB_MAGIC);
    text.push('\n');
    for c in series.candles() {
        use std::fmt::Write as _;
        // `{}` prints f64 in the shortest form that parses back to the same value.
        let _ = writeln!(text, "{},{},{},{},{},{}", c.time.timestamp(), c.open, c.high, c.low, c.close, c.volume);
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 3), Compression::default());
    // Writing into a Vec cannot fail.
    encoder.write_all(text.as_bytes()).expect("in-memory gzip write");
    encoder.finish().expect("in-memory gzip finish")
}

/// Decodes and validates a blob made by [`encode_blob`], within `limits`.
pub fn decode_blob(bytes: &[u8], limits: &BlobLimits) -> Result<CandleSeries, BlobError> {
    if bytes.len() > limits.max_compressed {
        return Err(BlobError::TooLarge { size: bytes.len(), max: limits.max_compressed });
    }
    let mut text = Vec::new();
    GzDecoder::new(bytes)
        .take(limits.max_decompressed as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| BlobError::Compression(e.to_string()))?;
    if text.len() > limits.max_decompressed {
        return Err(BlobError::DecompressedTooLarge { max: limits.max_decompressed });
    }
    let text = std::str::from_utf8(&text).map_err(|_| BlobError::BadMagic)?;
    let mut lines = text.lines();
    if lines.next() != Some(BLOB_MAGIC) {
        return Err(BlobError::BadMagic);
    }
    let mut candles = Vec::new();
    for (i, line) in lines.enumerate() {
        let malformed = || BlobError::Malformed { line: i + 2 };
        let mut f = line.split(',');
        let mut next = || f.next().ok_or_else(malformed);
        let secs: i64 = next()?.parse().map_err(|_| malformed())?;
        let time = Utc.timestamp_opt(secs, 0).single().ok_or_else(malformed)?;
        let mut num = || -> Result<f64, BlobError> { next()?.parse().map_err(|_| malformed()) };
        let candle = Candle { time, open: num()?, high: num()?, low: num()?, close: num()?, volume: num()? };
        if f.next().is_some() {
            return Err(malformed());
        }
        candles.push(candle);
    }
    Ok(CandleSeries::new(candles)?)
}

// ---------------------------------------------------------------------------------------------------------------
// Merge and ranges

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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 31, 20, 0, 0).unwrap() + chrono::Duration::hours(h)
    }

    fn bar(h: i64, close: f64) -> Candle {
        Candle { time: t(h), open: close, high: close + 0.001, low: close - 0.001, close, volume: 10.0 }
    }

    fn series(bars: &[(i64, f64)]) -> CandleSeries {
        CandleSeries::new(bars.iter().map(|&(h, c)| bar(h, c)).collect()).unwrap()
    }

    const EURUSD_HEAD: &str = ",Open,High,Low,Close,Volume\n\
        2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413\n\
        2017-04-19 10:00:00,1.07214,1.07296,1.07214,1.0726,1241\n";

    fn csv(text: &str) -> Result<CandleSeries, CsvError> {
        parse_csv(text.as_bytes(), &CsvLimits::default())
    }

    #[test]
    fn to_csv_is_read_back_exactly() {
        let s = csv(EURUSD_HEAD).unwrap();
        assert_eq!(csv(&to_csv(&s)).unwrap(), s);
        assert!(to_csv(&s).starts_with("time,open,high,low,close,volume\n2017-04-19 09:00:00,1.0716,1.0722,"));
    }

    #[test]
    fn parses_the_backtesting_py_layout() {
        let s = csv(EURUSD_HEAD).unwrap();
        assert_eq!(s.len(), 2);
        let c = s.candles()[1];
        assert_eq!(c.time, Utc.with_ymd_and_hms(2017, 4, 19, 10, 0, 0).unwrap());
        assert_eq!((c.open, c.high, c.low, c.close, c.volume), (1.07214, 1.07296, 1.07214, 1.0726, 1241.0));
    }

    #[test]
    fn parses_the_common_layout_in_any_order_with_crlf_bom_and_offsets() {
        let text = "\u{feff}Volume,Close,Low,High,Open,Timestamp\r\n\
                    5,1.2,1.0,1.3,1.1,2024-03-01T12:00:00+02:00\r\n\
                    \r\n\
                    6,1.25,1.15,1.3,1.2,1709298000\r\n";
        let s = csv(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.candles()[0].time, Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap());
        assert_eq!(s.candles()[0].open, 1.1);
        assert_eq!(s.candles()[1].time, Utc.with_ymd_and_hms(2024, 3, 1, 13, 0, 0).unwrap());
        // Without a volume column, volume is 0; dates alone are midnight.
        let s = csv("date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n").unwrap();
        assert_eq!(s.candles()[0].volume, 0.0);
        assert_eq!(s.candles()[0].time, Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap());
    }

    #[test]
    fn errors_name_the_line() {
        let e = |text: &str| csv(text).unwrap_err();
        // NaN price on line 3.
        let err = e(",Open,High,Low,Close,Volume\n2017-01-01 00:00:00,1,1,1,1,1\n2017-01-01 01:00:00,NaN,1,1,1,1\n");
        assert_eq!(err, CsvError::InvalidBar { line: 3, problem: CandleProblem::NonFinite { field: "open" } });
        assert_eq!(err.line(), Some(3));
        assert_eq!(err.to_string(), "line 3: open is not a finite number");
        // Unsorted (line 3 before line 2's time), duplicate, high below body, low above body, negative, inf.
        let base = "time,open,high,low,close,volume\n2024-01-01 01:00:00,1,1,1,1,1\n";
        let with = |row: &str| e(&format!("{base}{row}\n"));
        assert_eq!(
            with("2024-01-01 00:00:00,1,1,1,1,1"),
            CsvError::InvalidBar { line: 3, problem: CandleProblem::TimestampNotIncreasing }
        );
        assert_eq!(
            with("2024-01-01 01:00:00,1,1,1,1,1"),
            CsvError::InvalidBar { line: 3, problem: CandleProblem::TimestampNotIncreasing }
        );
        assert_eq!(
            with("2024-01-01 02:00:00,1,1.1,0.9,1.2,1"),
            CsvError::InvalidBar { line: 3, problem: CandleProblem::HighBelowBody }
        );
        assert_eq!(
            with("2024-01-01 02:00:00,1,1.3,1.05,1.2,1"),
            CsvError::InvalidBar { line: 3, problem: CandleProblem::LowAboveBody }
        );
        assert_eq!(
            with("2024-01-01 02:00:00,-1,1,-2,1,1"),
            CsvError::InvalidBar { line: 3, problem: CandleProblem::NonPositivePrice { field: "open" } }
        );
        assert_eq!(
            with("2024-01-01 02:00:00,1,inf,1,1,1"),
            CsvError::InvalidBar { line: 3, problem: CandleProblem::NonFinite { field: "high" } }
        );
        assert_eq!(
            with("2024-01-01 02:00:00,1,1,1,1,-5"),
            CsvError::InvalidBar { line: 3, problem: CandleProblem::NegativeVolume }
        );
        assert_eq!(
            with("2024-01-01 02:00:00,1,x,1,1,1"),
            CsvError::BadNumber { line: 3, column: "high", value: "x".into() }
        );
        assert_eq!(with("yesterday,1,1,1,1,1"), CsvError::BadTimestamp { line: 3, value: "yesterday".into() });
        assert_eq!(with("2024-01-01 02:00:00,1,1,1,1"), CsvError::FieldCount { line: 3, expected: 6, found: 5 });
        // Blank lines still count for line numbers.
        assert_eq!(e(&format!("{base}\n\n2024-01-01 02:00:00,1,1,1,1,-5\n")).line(), Some(5));
        // Header problems.
        assert_eq!(e("time,open,high,close\n"), CsvError::MissingColumn { column: "low" });
        assert_eq!(e("time,open,open,high,low,close\n"), CsvError::DuplicateColumn { column: "open" });
        assert_eq!(e(""), CsvError::Empty);
        assert_eq!(e(base.lines().next().unwrap()), CsvError::NoRows);
        assert_eq!(parse_csv(b"time\xff", &CsvLimits::default()).unwrap_err(), CsvError::NotUtf8 { line: 1 });
    }

    #[test]
    fn size_limits() {
        let small = CsvLimits { max_bytes: 40, max_rows: 10 };
        assert_eq!(
            parse_csv(EURUSD_HEAD.as_bytes(), &small).unwrap_err(),
            CsvError::TooLarge { size: EURUSD_HEAD.len(), max: 40 }
        );
        let one_row = CsvLimits { max_bytes: 1 << 20, max_rows: 1 };
        assert_eq!(parse_csv(EURUSD_HEAD.as_bytes(), &one_row).unwrap_err(), CsvError::TooManyRows { line: 3, max: 1 });
        let two_rows = CsvLimits { max_bytes: 1 << 20, max_rows: 2 };
        assert_eq!(parse_csv(EURUSD_HEAD.as_bytes(), &two_rows).unwrap().len(), 2);
    }

    #[test]
    fn timestamps() {
        let at = |y, mo, d, h, mi, s| Some(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap());
        assert_eq!(parse_timestamp("2017-04-19 09:00:00"), at(2017, 4, 19, 9, 0, 0));
        assert_eq!(parse_timestamp("2017-04-19T09:00"), at(2017, 4, 19, 9, 0, 0));
        assert_eq!(parse_timestamp("2017-04-19T09:00:00Z"), at(2017, 4, 19, 9, 0, 0));
        assert_eq!(parse_timestamp("2017-04-19T09:00:00-05:00"), at(2017, 4, 19, 14, 0, 0));
        assert_eq!(parse_timestamp("0"), at(1970, 1, 1, 0, 0, 0));
        assert_eq!(parse_timestamp("2017-13-01"), None);
        assert_eq!(parse_timestamp("-5"), None);
    }

    #[test]
    fn blob_round_trip_is_exact_and_bounded() {
        let s = CandleSeries::new(vec![
            Candle { time: t(0), open: 1.07219, high: 1.1, low: 0.1 + 0.2, close: 1.0, volume: 0.0 },
            Candle { time: t(1), open: 1.0 / 3.0, high: 2.0, low: 1e-9, close: 1.5, volume: 32318.5 },
        ])
        .unwrap();
        let blob = encode_blob(&s);
        assert_eq!(&blob[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(encode_blob(&s), blob, "deterministic");
        assert_eq!(decode_blob(&blob, &BlobLimits::default()).unwrap(), s);

        let limits = BlobLimits { max_compressed: blob.len() - 1, max_decompressed: 1 << 20 };
        assert!(matches!(decode_blob(&blob, &limits), Err(BlobError::TooLarge { .. })));
        let limits = BlobLimits { max_compressed: 1 << 20, max_decompressed: 30 };
        assert_eq!(decode_blob(&blob, &limits), Err(BlobError::DecompressedTooLarge { max: 30 }));
        assert!(matches!(decode_blob(b"not gzip", &BlobLimits::default()), Err(BlobError::Compression(_))));
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn blob_decoding_validates() {
        let limits = BlobLimits::default();
        assert_eq!(decode_blob(&gzip("something else\n"), &limits), Err(BlobError::BadMagic));
        assert_eq!(
            decode_blob(&gzip("nusatrade-candles v1\n0,1,1,1\n"), &limits),
            Err(BlobError::Malformed { line: 2 })
        );
        assert_eq!(
            decode_blob(&gzip("nusatrade-candles v1\n0,1,1,1,1,1,9\n"), &limits),
            Err(BlobError::Malformed { line: 2 })
        );
        let unsorted = "nusatrade-candles v1\n3600,1,1,1,1,1\n0,1,1,1,1,1\n";
        assert_eq!(
            decode_blob(&gzip(unsorted), &limits),
            Err(BlobError::Invalid(SeriesError { index: 1, problem: CandleProblem::TimestampNotIncreasing }))
        );
        assert_eq!(decode_blob(&gzip("nusatrade-candles v1\n"), &limits).unwrap().len(), 0);
    }

    #[test]
    fn merge_dedupes_by_timestamp() {
        let stored = series(&[(0, 1.0), (1, 1.1), (2, 1.2)]);
        let incoming = series(&[(2, 1.25), (3, 1.3), (4, 1.4)]);
        let m = merge(&stored, &incoming, Conflict::ReplaceWithIncoming);
        let closes: Vec<f64> = m.series.candles().iter().map(|c| c.close).collect();
        assert_eq!(closes, [1.0, 1.1, 1.25, 1.3, 1.4]);
        assert_eq!((m.added, m.replaced, m.unchanged), (2, 1, 0));

        let m = merge(&stored, &incoming, Conflict::KeepExisting);
        let closes: Vec<f64> = m.series.candles().iter().map(|c| c.close).collect();
        assert_eq!(closes, [1.0, 1.1, 1.2, 1.3, 1.4]);
        assert_eq!((m.added, m.replaced, m.unchanged), (2, 0, 1));

        // Interleaved and earlier bars (a back-fill), identical duplicates change nothing.
        let older = series(&[(-2, 0.9), (0, 1.0), (1, 1.1)]);
        let m = merge(&stored, &older, Conflict::ReplaceWithIncoming);
        assert_eq!(m.series.len(), 4);
        assert_eq!(m.series.candles()[0].time, t(-2));
        assert_eq!((m.added, m.replaced, m.unchanged), (1, 0, 2));
        // Merging into nothing.
        assert_eq!(merge(&CandleSeries::default(), &stored, Conflict::KeepExisting).series, stored);
    }

    #[test]
    fn ranges_and_months() {
        // t(0) is 2024-01-31 20:00: bars 0..=3 are in January, 4.. in February.
        let s = series(&[(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.0)]);
        assert_eq!(index_range(&s, t(1), t(3)), 1..3);
        assert_eq!(range(&s, t(-10), t(1)).len(), 1);
        assert_eq!(range(&s, t(5), t(4)).len(), 0);
        assert_eq!(range(&s, t(6), t(100)).len(), 0);
        let parts = partition_by_month(&s);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0.key(), "2024-01");
        assert_eq!(parts[0].1.len(), 4);
        assert_eq!(parts[1].0, Month { year: 2024, month: 2 });
        assert_eq!(parts[1].1.len(), 2);
    }

    #[test]
    fn timeframes() {
        assert_eq!(Timeframe::H1.bars_per_year(), 6048.0);
        assert_eq!(Timeframe::M15.bars_per_year(), 24192.0);
        assert_eq!(Timeframe::D1.bars_per_year(), 252.0);
        assert_eq!(Timeframe::parse("h4"), Some(Timeframe::H4));
        assert_eq!(Timeframe::parse("H2"), None);
        assert_eq!(serde_json::to_string(&Timeframe::H1).unwrap(), "\"H1\"");
    }
}
