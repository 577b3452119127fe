//! OHLCV candles: the validated series, CSV import with line-numbered validation errors, a compact compressed
//! blob format, and merge/append by time range.
//!
//! A [`CandleSeries`] is a list of [`Candle`]s that has passed validation: every value finite, prices strictly
//! positive, volume non-negative, `high ≥ max(open, close)`, `low ≤ min(open, close)` and timestamps strictly
//! increasing (no duplicates). A failed check names the offending bar's index (0-based position in the input), so
//! an upload route can report the line. Deserialising a [`CandleSeries`] runs the same validation. Everything here
//! takes and returns bytes or values; storage (S3, files) belongs to the adapters.
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

mod blob;
mod csv;
mod merge;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use blob::{BLOB_MAGIC, BlobError, BlobLimits, decode_blob, encode_blob};
pub use csv::{CsvError, CsvLimits, parse_csv, parse_timestamp, to_csv};
pub use merge::{Conflict, Merged, Month, index_range, merge, partition_by_month, range};

/// One OHLCV bar. `time` is the bar's open time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    /// Bar open time, UTC.
    pub time: DateTime<Utc>,
    /// First price of the bar.
    pub open: f64,
    /// Highest price of the bar.
    pub high: f64,
    /// Lowest price of the bar.
    pub low: f64,
    /// Last price of the bar.
    pub close: f64,
    /// Traded volume (tick volume for most FX feeds; may be 0).
    pub volume: f64,
}

/// Why a bar was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CandleProblem {
    /// A value is NaN or infinite.
    #[error("{field} is not a finite number")]
    NonFinite {
        /// `open`, `high`, `low`, `close` or `volume`.
        field: &'static str,
    },
    /// A price is zero or negative.
    #[error("{field} must be greater than 0")]
    NonPositivePrice {
        /// `open`, `high`, `low` or `close`.
        field: &'static str,
    },
    /// Volume below zero.
    #[error("volume must not be negative")]
    NegativeVolume,
    /// `high < max(open, close)`.
    #[error("high is below max(open, close)")]
    HighBelowBody,
    /// `low > min(open, close)`.
    #[error("low is above min(open, close)")]
    LowAboveBody,
    /// The timestamp is not strictly after the previous bar's.
    #[error("timestamp is not after the previous bar's (series must be sorted, without duplicates)")]
    TimestampNotIncreasing,
}

/// A refused bar: its 0-based index in the input and the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bar {index}: {problem}")]
pub struct SeriesError {
    /// 0-based index of the offending bar in the input.
    pub index: usize,
    /// What is wrong with it.
    pub problem: CandleProblem,
}

impl Candle {
    /// Checks one bar on its own (everything except timestamp order).
    pub fn check(&self) -> Result<(), CandleProblem> {
        let fields = [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
            ("volume", self.volume),
        ];
        if let Some((field, _)) = fields.iter().find(|(_, v)| !v.is_finite()) {
            return Err(CandleProblem::NonFinite { field });
        }
        if let Some((field, _)) = fields[..4].iter().find(|(_, v)| *v <= 0.0) {
            return Err(CandleProblem::NonPositivePrice { field });
        }
        if self.volume < 0.0 {
            return Err(CandleProblem::NegativeVolume);
        }
        if self.high < self.open.max(self.close) {
            return Err(CandleProblem::HighBelowBody);
        }
        if self.low > self.open.min(self.close) {
            return Err(CandleProblem::LowAboveBody);
        }
        Ok(())
    }
}

/// A validated, chronologically ordered OHLCV series (see the module docs for the rules).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<Candle>", into = "Vec<Candle>")]
pub struct CandleSeries {
    candles: Vec<Candle>,
}

/// The series as columns (what the indicator functions take).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Columns {
    /// Bar times.
    pub time: Vec<DateTime<Utc>>,
    /// Opens.
    pub open: Vec<f64>,
    /// Highs.
    pub high: Vec<f64>,
    /// Lows.
    pub low: Vec<f64>,
    /// Closes.
    pub close: Vec<f64>,
    /// Volumes.
    pub volume: Vec<f64>,
}

impl CandleSeries {
    /// Validates `candles` (in order) and wraps them. The error names the first offending bar.
    pub fn new(candles: Vec<Candle>) -> Result<Self, SeriesError> {
        for (index, candle) in candles.iter().enumerate() {
            let previous = index.checked_sub(1).map(|i| &candles[i]);
            check_next(previous, candle).map_err(|problem| SeriesError { index, problem })?;
        }
        Ok(Self { candles })
    }

    /// Appends one bar after validating it against the current last bar; the error's index is the position the
    /// bar would have had.
    pub fn push(&mut self, candle: Candle) -> Result<(), SeriesError> {
        check_next(self.candles.last(), &candle)
            .map_err(|problem| SeriesError { index: self.candles.len(), problem })?;
        self.candles.push(candle);
        Ok(())
    }

    /// The bars, oldest first.
    pub fn candles(&self) -> &[Candle] {
        &self.candles
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.candles.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.candles.is_empty()
    }

    /// The first `len` bars (all of them if `len` is larger) as a new series. Any prefix of a valid series is valid.
    pub fn head(&self, len: usize) -> CandleSeries {
        CandleSeries { candles: self.candles[..len.min(self.candles.len())].to_vec() }
    }

    /// The last `len` bars (all of them if `len` is larger) as a new series.
    pub fn tail(&self, len: usize) -> CandleSeries {
        CandleSeries { candles: self.candles[self.candles.len().saturating_sub(len)..].to_vec() }
    }

    /// The bars as columns.
    pub fn columns(&self) -> Columns {
        let n = self.candles.len();
        let mut cols = Columns {
            time: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
        };
        for c in &self.candles {
            cols.time.push(c.time);
            cols.open.push(c.open);
            cols.high.push(c.high);
            cols.low.push(c.low);
            cols.close.push(c.close);
            cols.volume.push(c.volume);
        }
        cols
    }

    /// Unwraps the bars.
    pub fn into_candles(self) -> Vec<Candle> {
        self.candles
    }
}

fn check_next(previous: Option<&Candle>, candle: &Candle) -> Result<(), CandleProblem> {
    candle.check()?;
    match previous {
        Some(p) if candle.time <= p.time => Err(CandleProblem::TimestampNotIncreasing),
        _ => Ok(()),
    }
}

impl TryFrom<Vec<Candle>> for CandleSeries {
    type Error = SeriesError;

    fn try_from(candles: Vec<Candle>) -> Result<Self, Self::Error> {
        CandleSeries::new(candles)
    }
}

impl From<CandleSeries> for Vec<Candle> {
    fn from(series: CandleSeries) -> Self {
        series.candles
    }
}

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

    /// The MT5 name: `M1` … `W1`.
    pub fn name(self) -> &'static str {
        match self {
            Timeframe::M1 => "M1",
            Timeframe::M5 => "M5",
            Timeframe::M15 => "M15",
            Timeframe::M30 => "M30",
            Timeframe::H1 => "H1",
            Timeframe::H4 => "H4",
            Timeframe::D1 => "D1",
            Timeframe::W1 => "W1",
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod series_tests {
    use super::*;
    use chrono::TimeZone;

    fn bar(hour: u32, o: f64, h: f64, l: f64, c: f64, v: f64) -> Candle {
        Candle {
            time: Utc.with_ymd_and_hms(2024, 1, 2, hour, 0, 0).unwrap(),
            open: o,
            high: h,
            low: l,
            close: c,
            volume: v,
        }
    }

    fn err(candles: Vec<Candle>) -> SeriesError {
        CandleSeries::new(candles).unwrap_err()
    }

    #[test]
    fn accepts_valid_series_including_flat_bars() {
        let s = CandleSeries::new(vec![bar(0, 1.1, 1.2, 1.0, 1.15, 10.0), bar(1, 1.1, 1.1, 1.1, 1.1, 0.0)]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.columns().close, vec![1.15, 1.1]);
        assert_eq!(s.head(1).len(), 1);
        assert_eq!(s.tail(1).candles()[0].close, 1.1);
        assert_eq!(s.head(10).len(), 2);
        assert!(CandleSeries::new(vec![]).unwrap().is_empty());
    }

    #[test]
    fn names_the_offending_row() {
        let ok = bar(0, 1.1, 1.2, 1.0, 1.15, 10.0);
        let e = err(vec![ok, bar(1, 1.1, 1.12, 1.0, 1.15, 1.0)]);
        assert_eq!(e, SeriesError { index: 1, problem: CandleProblem::HighBelowBody });
        assert_eq!(e.to_string(), "bar 1: high is below max(open, close)");
        assert_eq!(err(vec![bar(0, 1.1, 1.2, 1.12, 1.15, 1.0)]).problem, CandleProblem::LowAboveBody);
        assert_eq!(
            err(vec![ok, bar(1, 1.1, 1.2, 1.0, 1.1, 1.0), bar(2, f64::NAN, 1.2, 1.0, 1.1, 1.0)]),
            SeriesError { index: 2, problem: CandleProblem::NonFinite { field: "open" } }
        );
        assert_eq!(
            err(vec![bar(0, 1.1, 1.2, 1.0, 1.1, f64::INFINITY)]).problem,
            CandleProblem::NonFinite { field: "volume" }
        );
        assert_eq!(
            err(vec![bar(0, 1.1, 1.2, 0.0, 1.1, 1.0)]).problem,
            CandleProblem::NonPositivePrice { field: "low" }
        );
        assert_eq!(err(vec![bar(0, 1.1, 1.2, 1.0, 1.1, -1.0)]).problem, CandleProblem::NegativeVolume);
    }

    #[test]
    fn timestamps_must_strictly_increase() {
        let a = bar(3, 1.1, 1.2, 1.0, 1.1, 1.0);
        let dup = err(vec![bar(1, 1.1, 1.2, 1.0, 1.1, 1.0), a, a]);
        assert_eq!(dup, SeriesError { index: 2, problem: CandleProblem::TimestampNotIncreasing });
        let back = err(vec![a, bar(2, 1.1, 1.2, 1.0, 1.1, 1.0)]);
        assert_eq!(back.index, 1);

        let mut s = CandleSeries::new(vec![a]).unwrap();
        assert_eq!(s.push(a).unwrap_err(), SeriesError { index: 1, problem: CandleProblem::TimestampNotIncreasing });
        s.push(bar(4, 1.1, 1.2, 1.0, 1.1, 1.0)).unwrap();
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn deserialising_validates() {
        let good = CandleSeries::new(vec![bar(0, 1.1, 1.2, 1.0, 1.15, 10.0)]).unwrap();
        let json = serde_json::to_string(&good).unwrap();
        assert_eq!(serde_json::from_str::<CandleSeries>(&json).unwrap(), good);
        let bad = json.replace("\"high\":1.2", "\"high\":1.0");
        let e = serde_json::from_str::<CandleSeries>(&bad).unwrap_err().to_string();
        assert!(e.contains("bar 0: high is below"), "{e}");
    }
}
