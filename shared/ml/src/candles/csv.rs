//! Candle CSV: the backtesting.py layout and the common `time,open,high,low,close[,volume]` layout, read within
//! [`CsvLimits`] with 1-based line numbers in every error; [`to_csv`] writes what [`parse_csv`] reads.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{Candle, CandleProblem, CandleSeries};

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
    // Every rule was checked row by row above; `CandleSeries::new` checks them again.
    CandleSeries::new(candles).map_err(|e| CsvError::InvalidBar { line: e.index + 2, problem: e.problem })
}
