//! The candles a backtest runs on: the user's stored dataset for the symbol and timeframe, else the platform's
//! (`/ml/datasets`, the same store the ML routes fill) — never a network download. Generated bars only when the
//! request asks for them (`"data": "generated"`), and the session says so.

use chrono::{Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use nusatrade_ml::{CandleSeries, Timeframe};
use uuid::Uuid;

use super::error::{BacktestError, BacktestResult};
use crate::ml::datasets::Datasets;
use crate::ml::defaults::generated_bars;
use crate::ml::store::{Owner, tf_name};

/// Most bars generated for one run.
pub const MAX_GENERATED_BARS: usize = 50_000;

/// Where a run's candles come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The user's dataset, else the platform's.
    Stored,
    /// A seeded random walk between the dates (labelled as generated).
    Generated,
}

impl DataSource {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "stored" | "dataset" => Some(DataSource::Stored),
            "generated" | "synthetic" => Some(DataSource::Generated),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DataSource::Stored => "stored",
            DataSource::Generated => "generated",
        }
    }
}

/// A run's candles and whether they were generated.
#[derive(Clone, Debug)]
pub struct RunData {
    pub series: CandleSeries,
    pub generated: bool,
}

/// The bars of `[start, end]` (whole days, UTC).
pub async fn load(
    datasets: &Datasets,
    user: Uuid,
    symbol: &'static str,
    tf: Timeframe,
    start: NaiveDate,
    end: NaiveDate,
    source: DataSource,
) -> BacktestResult<RunData> {
    if end < start {
        return Err(BacktestError::InvalidRequest(format!("end_date {end} is before start_date {start}")));
    }
    let from = Utc.from_utc_datetime(&start.and_time(NaiveTime::MIN));
    let to = Utc.from_utc_datetime(&end.and_time(NaiveTime::MIN)) + Duration::days(1);
    if source == DataSource::Generated {
        let bars = ((to - from).num_seconds() / tf.seconds()).max(0) as usize;
        if bars < 2 {
            return Err(BacktestError::InvalidRequest("the date range holds fewer than 2 bars".into()));
        }
        if bars > MAX_GENERATED_BARS {
            return Err(BacktestError::InvalidRequest(format!(
                "the date range holds {bars} {} bars; at most {MAX_GENERATED_BARS} are generated",
                tf_name(tf)
            )));
        }
        let series = generated_bars(symbol, tf, bars, to - Duration::seconds(tf.seconds()));
        return Ok(RunData { series, generated: true });
    }
    for owner in [Owner::User(user), Owner::System] {
        let Some((record, series)) = datasets.load(owner, symbol, tf, Some(from), Some(to)).await? else { continue };
        if series.len() >= 2 {
            return Ok(RunData { series, generated: false });
        }
        return Err(BacktestError::NoData(format!(
            "no {symbol} {} candles between {start} and {end}: the dataset covers {} to {}",
            tf_name(tf),
            record.first.date_naive(),
            record.last.date_naive(),
        )));
    }
    Err(BacktestError::NoData(format!(
        "no {symbol} {} candles are stored: upload a dataset (POST /api/v1/ml/datasets?symbol={symbol}&timeframe={}) \
         or ask for generated data (\"data\": \"generated\")",
        tf_name(tf),
        tf_name(tf)
    )))
}

/// The newest `days` days of the stored data (quick backtests), or `None` when nothing is stored.
pub async fn latest(
    datasets: &Datasets,
    user: Uuid,
    symbol: &'static str,
    tf: Timeframe,
    days: u32,
) -> BacktestResult<Option<CandleSeries>> {
    for owner in [Owner::User(user), Owner::System] {
        let Some(record) = datasets.get(owner, symbol, tf).await? else { continue };
        let from = record.last - Duration::days(i64::from(days));
        if let Some((_, series)) = datasets.load(owner, symbol, tf, Some(from), None).await?
            && series.len() >= 2
        {
            return Ok(Some(series));
        }
    }
    Ok(None)
}
