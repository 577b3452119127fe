//! Market analysis computed from candles alone (issue 17, "AI supervisor" without a language model).
//!
//! [`analyse`] reads the newest [`ANALYSIS_WINDOW`] bars of a [`CandleSeries`] and describes the last bar with the
//! [`indicators`] (TA-Lib definitions): trend (EMA 20 / EMA 50 / SMA 200 and the slope of EMA 50), RSI(14) regime,
//! ATR(14) and its volatility regime, MACD(12, 26, 9) and recent crosses, Bollinger(20, 2) %B, the 24- and 120-bar
//! ranges, the 24-bar change and the nearest support / resistance. [`MarketAnalysis::summary`] turns those numbers
//! into a few plain sentences; every number in it is a field of the struct, printed with the formats documented on
//! [`analyse`]. [`daily_summary`] composes a short multi-symbol overview.
//!
//! Everything is pure: no I/O, no clock. The text carries no "computed" label — the caller adds it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::candles::{CandleSeries, Timeframe};
use crate::indicators;

/// Only the newest this many bars are read (bounds the cost; EMA seeds 1,000 bars back have no visible effect).
pub const ANALYSIS_WINDOW: usize = 1_000;
/// Fast trend average: EMA period.
pub const EMA_FAST: usize = 20;
/// Slow trend average: EMA period.
pub const EMA_SLOW: usize = 50;
/// Long-term average: SMA period.
pub const SMA_LONG: usize = 200;
/// Bars over which the slope of the slow EMA is measured.
pub const SLOPE_BARS: usize = 10;
/// RSI period.
pub const RSI_PERIOD: usize = 14;
/// ATR period.
pub const ATR_PERIOD: usize = 14;
/// Bars (ending at the last one) over which the percentile of the current ATR % is taken.
pub const VOLATILITY_WINDOW: usize = 250;
/// MACD periods (fast, slow, signal).
pub const MACD_PERIODS: (usize, usize, usize) = (12, 26, 9);
/// A MACD cross counts when it happened within this many bars (the last bar included).
pub const MACD_CROSS_BARS: usize = 5;
/// Bollinger period.
pub const BOLLINGER_PERIOD: usize = 20;
/// Bollinger width in (population) standard deviations.
pub const BOLLINGER_K: f64 = 2.0;
/// Short range and change window, in bars.
pub const SHORT_RANGE: usize = 24;
/// Long range window (support / resistance), in bars.
pub const LONG_RANGE: usize = 120;
/// Bars needed: the ATR lookback plus [`VOLATILITY_WINDOW`] ATR values (this also covers SMA 200, MACD and ranges).
pub const MIN_BARS: usize = ATR_PERIOD + VOLATILITY_WINDOW;
/// Longest accepted symbol, in characters.
pub const MAX_SYMBOL_LEN: usize = 32;
/// Largest accepted pip size.
pub const MAX_PIP_SIZE: f64 = 1_000.0;
/// At most this many analyses are read by [`daily_summary`].
pub const MAX_DAILY_SYMBOLS: usize = 100;

/// Why an analysis could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// The series is shorter than [`MIN_BARS`].
    #[error(
        "not enough bars: {needed} are needed (ATR({ATR_PERIOD}) over a {VOLATILITY_WINDOW}-bar volatility window, \
         which also covers SMA {SMA_LONG}), got {got}"
    )]
    NotEnoughBars {
        /// [`MIN_BARS`].
        needed: usize,
        /// Bars in the series.
        got: usize,
    },
    /// The symbol is empty, longer than [`MAX_SYMBOL_LEN`] or has characters other than ASCII letters, digits and
    /// `. _ - / #`.
    #[error("invalid symbol: 1 to {MAX_SYMBOL_LEN} ASCII letters, digits or . _ - / # are accepted")]
    InvalidSymbol,
    /// The pip size is not finite, not positive or above [`MAX_PIP_SIZE`].
    #[error("invalid pip size {0}: it must be a finite number greater than 0 and at most {MAX_PIP_SIZE}")]
    InvalidPipSize(f64),
    /// A value came out non-finite (only possible for degenerate inputs, e.g. a pip size so small that the change in
    /// pips overflows).
    #[error("{0} is not a finite number for this series")]
    NotFinite(&'static str),
}

/// Direction of the trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrendDirection {
    /// Trend score ≥ 3.
    Uptrend,
    /// Trend score ≤ −3.
    Downtrend,
    /// Anything in between.
    Sideways,
}

impl TrendDirection {
    /// From the trend score (−4..=4, see [`Trend::score`]): ≥ 3 uptrend, ≤ −3 downtrend, otherwise sideways.
    pub fn classify(score: i8) -> Self {
        match score {
            3.. => TrendDirection::Uptrend,
            ..=-3 => TrendDirection::Downtrend,
            _ => TrendDirection::Sideways,
        }
    }

    /// `"uptrend"`, `"downtrend"` or `"sideways"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrendDirection::Uptrend => "uptrend",
            TrendDirection::Downtrend => "downtrend",
            TrendDirection::Sideways => "sideways",
        }
    }
}

/// How strong the trend is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrendStrength {
    /// Sideways (|score| < 3).
    Weak,
    /// |score| = 3, or 4 with the EMAs less than one ATR apart.
    Moderate,
    /// |score| = 4 and |EMA 20 − EMA 50| ≥ 1 ATR.
    Strong,
}

impl TrendStrength {
    /// From the trend score and the EMA 20 − EMA 50 separation in ATRs (rules on the variants).
    pub fn classify(score: i8, separation_atr: f64) -> Self {
        match score.unsigned_abs() {
            4 if separation_atr.abs() >= 1.0 => TrendStrength::Strong,
            3 | 4 => TrendStrength::Moderate,
            _ => TrendStrength::Weak,
        }
    }

    /// `"weak"`, `"moderate"` or `"strong"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrendStrength::Weak => "weak",
            TrendStrength::Moderate => "moderate",
            TrendStrength::Strong => "strong",
        }
    }
}

/// RSI regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RsiRegime {
    /// RSI < 30.
    Oversold,
    /// 30 ≤ RSI < 45.
    Weak,
    /// 45 ≤ RSI ≤ 55.
    Neutral,
    /// 55 < RSI ≤ 70.
    Strong,
    /// RSI > 70.
    Overbought,
}

impl RsiRegime {
    /// Classifies an RSI value (bounds on the variants).
    pub fn classify(rsi: f64) -> Self {
        if rsi < 30.0 {
            RsiRegime::Oversold
        } else if rsi < 45.0 {
            RsiRegime::Weak
        } else if rsi > 70.0 {
            RsiRegime::Overbought
        } else if rsi > 55.0 {
            RsiRegime::Strong
        } else {
            RsiRegime::Neutral
        }
    }

    /// `"oversold"`, `"weak"`, `"neutral"`, `"strong"` or `"overbought"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RsiRegime::Oversold => "oversold",
            RsiRegime::Weak => "weak",
            RsiRegime::Neutral => "neutral",
            RsiRegime::Strong => "strong",
            RsiRegime::Overbought => "overbought",
        }
    }
}

/// Volatility regime from the percentile of the current ATR %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VolatilityRegime {
    /// Percentile < 33.
    Low,
    /// 33 ≤ percentile ≤ 67.
    Normal,
    /// Percentile > 67.
    High,
}

impl VolatilityRegime {
    /// Classifies a percentile (0–100).
    pub fn classify(percentile: f64) -> Self {
        if percentile < 33.0 {
            VolatilityRegime::Low
        } else if percentile > 67.0 {
            VolatilityRegime::High
        } else {
            VolatilityRegime::Normal
        }
    }

    /// `"low"`, `"normal"` or `"high"`.
    pub fn as_str(self) -> &'static str {
        match self {
            VolatilityRegime::Low => "low",
            VolatilityRegime::Normal => "normal",
            VolatilityRegime::High => "high",
        }
    }
}

/// Trend: the averages, their agreement and the slope of EMA 50.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// Uptrend / downtrend / sideways, from `score`.
    pub direction: TrendDirection,
    /// Weak / moderate / strong, from `score` and `separation_atr`.
    pub strength: TrendStrength,
    /// Sum of the signs (+1 above / rising, −1 below / falling, 0 equal) of: close − EMA 20, EMA 20 − EMA 50,
    /// EMA 50 − SMA 200 and the EMA 50 slope. −4..=4.
    pub score: i8,
    /// EMA 20 at the last bar.
    pub ema20: f64,
    /// EMA 50 at the last bar.
    pub ema50: f64,
    /// SMA 200 at the last bar.
    pub sma200: f64,
    /// Change of EMA 50 over the last [`SLOPE_BARS`] bars, in percent of its value then.
    pub ema50_slope_pct: f64,
    /// (EMA 20 − EMA 50) / ATR(14); 0 when the ATR is 0.
    pub separation_atr: f64,
}

/// RSI at the last bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rsi {
    /// RSI(14), 0–100.
    pub value: f64,
    /// Its regime.
    pub regime: RsiRegime,
}

/// ATR and the volatility regime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Volatility {
    /// ATR(14) in price units.
    pub atr: f64,
    /// ATR as a percentage of the close.
    pub atr_pct: f64,
    /// Share (percent) of the last [`VOLATILITY_WINDOW`] bars, the last included, whose ATR % is at or below the
    /// current one: 100 means the most volatile bar of the window.
    pub percentile: f64,
    /// Regime from `percentile`.
    pub regime: VolatilityRegime,
}

/// Direction of a MACD / signal cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CrossDirection {
    /// The histogram went from ≤ 0 to > 0.
    Bullish,
    /// The histogram went from ≥ 0 to < 0.
    Bearish,
}

/// The most recent MACD cross within the last [`MACD_CROSS_BARS`] bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MacdCross {
    /// Bullish or bearish.
    pub direction: CrossDirection,
    /// 0 = on the last bar.
    pub bars_ago: usize,
}

/// MACD(12, 26, 9) at the last bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MacdState {
    /// MACD line.
    pub line: f64,
    /// Signal line.
    pub signal: f64,
    /// Histogram (line − signal).
    pub histogram: f64,
    /// The latest cross in the last [`MACD_CROSS_BARS`] bars, if any.
    pub cross: Option<MacdCross>,
}

/// Bollinger bands (20, 2) at the last bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BollingerState {
    /// Upper band.
    pub upper: f64,
    /// Middle band (SMA 20).
    pub middle: f64,
    /// Lower band.
    pub lower: f64,
    /// %B = (close − lower) / (upper − lower): 0 at the lower band, 1 at the upper; `None` when the bands coincide.
    pub percent_b: Option<f64>,
}

/// High and low of the last `bars` bars (the last included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceRange {
    /// Window length.
    pub bars: usize,
    /// Highest high.
    pub high: f64,
    /// Lowest low.
    pub low: f64,
    /// Where the close sits: 0 at the low, 100 at the high; `None` when high = low.
    pub position_pct: Option<f64>,
}

/// Change of the close over the last `bars` bars.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceChange {
    /// Window length.
    pub bars: usize,
    /// The close `bars` bars before the last.
    pub from: f64,
    /// Close − `from`, in price units.
    pub abs: f64,
    /// In percent of `from` (TA-Lib `ROC`).
    pub pct: f64,
    /// In pips (`abs / pip_size`).
    pub pips: f64,
}

/// Nearest support and resistance: the rolling [`LONG_RANGE`]-bar low and high.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Levels {
    /// Lowest low of the last 120 bars.
    pub support: f64,
    /// Highest high of the last 120 bars.
    pub resistance: f64,
    /// (close − support) / pip size, ≥ 0.
    pub support_distance_pips: f64,
    /// (resistance − close) / pip size, ≥ 0.
    pub resistance_distance_pips: f64,
}

/// The computed analysis of one symbol at its last bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketAnalysis {
    /// Symbol, upper-cased.
    pub symbol: String,
    /// Bar length.
    pub timeframe: Timeframe,
    /// Bars read (at most [`ANALYSIS_WINDOW`]).
    pub bars_used: usize,
    /// Open time of the last bar.
    pub last_time: DateTime<Utc>,
    /// Close of the last bar.
    pub close: f64,
    /// Pip size used for the pip figures.
    pub pip_size: f64,
    /// Decimals used to print prices: the pip size's decimals + 1 (5 for 0.0001, 3 for 0.01), at most 8.
    pub price_decimals: usize,
    /// Trend.
    pub trend: Trend,
    /// RSI(14).
    pub rsi: Rsi,
    /// ATR(14) and volatility regime.
    pub volatility: Volatility,
    /// MACD(12, 26, 9).
    pub macd: MacdState,
    /// Bollinger(20, 2).
    pub bollinger: BollingerState,
    /// Last 24 bars' range.
    pub range_24: PriceRange,
    /// Last 120 bars' range.
    pub range_120: PriceRange,
    /// Change over the last 24 bars.
    pub change_24: PriceChange,
    /// Support and resistance.
    pub levels: Levels,
    /// 8 plain sentences built from the fields above.
    pub summary: String,
}

/// The value of an indicator at the last bar, which [`MIN_BARS`] guarantees to be defined.
fn last(values: &[f64], what: &'static str) -> Result<f64, AnalysisError> {
    values.last().copied().filter(|v| v.is_finite()).ok_or(AnalysisError::NotFinite(what))
}

fn at(values: &[f64], index: usize, what: &'static str) -> Result<f64, AnalysisError> {
    values.get(index).copied().filter(|v| v.is_finite()).ok_or(AnalysisError::NotFinite(what))
}

fn finite(value: f64, what: &'static str) -> Result<f64, AnalysisError> {
    if value.is_finite() { Ok(value) } else { Err(AnalysisError::NotFinite(what)) }
}

fn sign(x: f64) -> i8 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

/// Decimals of a pip size (0.0001 → 4, 0.01 → 2, 1 → 0), at most 7.
fn pip_decimals(pip_size: f64) -> usize {
    (0..7)
        .find(|&d| {
            let scaled = pip_size * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() <= 1e-9 * scaled.max(1.0)
        })
        .unwrap_or(7)
}

fn valid_symbol(symbol: &str) -> bool {
    (1..=MAX_SYMBOL_LEN).contains(&symbol.len())
        && symbol.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b'#'))
}

/// `"M1"` … `"W1"`.
pub fn timeframe_label(tf: Timeframe) -> &'static str {
    tf.name()
}

/// The percentile of `window`'s last value within `window` (see [`Volatility::percentile`]).
fn percentile_of_last(window: &[f64]) -> Option<f64> {
    let current = *window.last()?;
    let at_or_below = window.iter().filter(|&&v| v <= current).count();
    Some(100.0 * at_or_below as f64 / window.len() as f64)
}

fn range(high: &[f64], low: &[f64], close: f64, bars: usize) -> Result<PriceRange, AnalysisError> {
    let hi = last(&indicators::rolling_max(high, bars), "range high")?;
    let lo = last(&indicators::rolling_min(low, bars), "range low")?;
    let position_pct = (hi > lo).then(|| 100.0 * (close - lo) / (hi - lo));
    Ok(PriceRange { bars, high: hi, low: lo, position_pct })
}

/// Analyses `symbol` from the newest [`ANALYSIS_WINDOW`] bars of `series` (bar length `tf`), with pips of
/// `pip_size` price units (0.0001 for most FX pairs, 0.01 for JPY quotes; the instrument catalogue has it).
///
/// Every value is the [`indicators`] function's output at the last bar over those bars. The summary prints prices
/// (and EMAs, SMA, ATR, bands, ranges, levels) with [`MarketAnalysis::price_decimals`], MACD values with two more,
/// RSI with 1 decimal, percentages (ATR %, change, slope with 3) with 2, %B with 2, range positions and the
/// percentile with 0, pips with 1, the EMA separation with 2.
///
/// # Errors
/// [`AnalysisError::InvalidSymbol`], [`AnalysisError::InvalidPipSize`], [`AnalysisError::NotEnoughBars`] when the
/// series has fewer than [`MIN_BARS`] bars, [`AnalysisError::NotFinite`] for degenerate numbers.
pub fn analyse(
    symbol: &str,
    series: &CandleSeries,
    tf: Timeframe,
    pip_size: f64,
) -> Result<MarketAnalysis, AnalysisError> {
    if !valid_symbol(symbol) {
        return Err(AnalysisError::InvalidSymbol);
    }
    if !(pip_size.is_finite() && pip_size > 0.0 && pip_size <= MAX_PIP_SIZE) {
        return Err(AnalysisError::InvalidPipSize(pip_size));
    }
    if series.len() < MIN_BARS {
        return Err(AnalysisError::NotEnoughBars { needed: MIN_BARS, got: series.len() });
    }
    let window = series.tail(ANALYSIS_WINDOW);
    let cols = window.columns();
    let n = cols.close.len();
    let (high, low, close) = (&cols.high, &cols.low, &cols.close);
    let last_close = last(close, "close")?;
    let last_time = *cols.time.last().ok_or(AnalysisError::NotEnoughBars { needed: MIN_BARS, got: 0 })?;

    // Volatility first: the trend's separation is measured in ATRs.
    let atr_series = indicators::atr(high, low, close, ATR_PERIOD);
    let atr = last(&atr_series, "ATR")?;
    let atr_pct_series: Vec<f64> = atr_series.iter().zip(close).map(|(a, c)| 100.0 * a / c).collect();
    let atr_pct = last(&atr_pct_series, "ATR %")?;
    let percentile = percentile_of_last(&atr_pct_series[n - VOLATILITY_WINDOW..])
        .filter(|p| p.is_finite())
        .ok_or(AnalysisError::NotFinite("ATR percentile"))?;
    let volatility = Volatility { atr, atr_pct, percentile, regime: VolatilityRegime::classify(percentile) };

    let ema20 = last(&indicators::ema(close, EMA_FAST), "EMA 20")?;
    let ema50_series = indicators::ema(close, EMA_SLOW);
    let ema50 = last(&ema50_series, "EMA 50")?;
    let ema50_before = at(&ema50_series, n - 1 - SLOPE_BARS, "EMA 50")?;
    let sma200 = last(&indicators::sma(close, SMA_LONG), "SMA 200")?;
    let ema50_slope_pct = finite(100.0 * (ema50 - ema50_before) / ema50_before, "EMA 50 slope")?;
    let separation_atr = if atr == 0.0 { 0.0 } else { finite((ema20 - ema50) / atr, "EMA separation")? };
    let score = sign(last_close - ema20) + sign(ema20 - ema50) + sign(ema50 - sma200) + sign(ema50_slope_pct);
    let trend = Trend {
        direction: TrendDirection::classify(score),
        strength: TrendStrength::classify(score, separation_atr),
        score,
        ema20,
        ema50,
        sma200,
        ema50_slope_pct,
        separation_atr,
    };

    let rsi_value = last(&indicators::rsi(close, RSI_PERIOD), "RSI")?;
    let rsi = Rsi { value: rsi_value, regime: RsiRegime::classify(rsi_value) };

    let (fast, slow, signal) = MACD_PERIODS;
    let m = indicators::macd(close, fast, slow, signal);
    let hist = &m.hist;
    let cross = (0..MACD_CROSS_BARS).find_map(|bars_ago| {
        let i = n - 1 - bars_ago;
        let (prev, cur) = (hist[i - 1], hist[i]);
        if prev <= 0.0 && cur > 0.0 {
            Some(MacdCross { direction: CrossDirection::Bullish, bars_ago })
        } else if prev >= 0.0 && cur < 0.0 {
            Some(MacdCross { direction: CrossDirection::Bearish, bars_ago })
        } else {
            None
        }
    });
    let macd = MacdState {
        line: last(&m.line, "MACD line")?,
        signal: last(&m.signal, "MACD signal")?,
        histogram: last(hist, "MACD histogram")?,
        cross,
    };

    let bb = indicators::bollinger(close, BOLLINGER_PERIOD, BOLLINGER_K);
    let (upper, middle, lower) = (
        last(&bb.upper, "Bollinger upper")?,
        last(&bb.middle, "Bollinger middle")?,
        last(&bb.lower, "Bollinger lower")?,
    );
    let percent_b = (upper > lower).then(|| (last_close - lower) / (upper - lower));
    let bollinger = BollingerState { upper, middle, lower, percent_b };

    let range_24 = range(high, low, last_close, SHORT_RANGE)?;
    let range_120 = range(high, low, last_close, LONG_RANGE)?;

    let change_abs = last(&indicators::momentum(close, SHORT_RANGE), "24-bar change")?;
    let change_24 = PriceChange {
        bars: SHORT_RANGE,
        from: at(close, n - 1 - SHORT_RANGE, "close")?,
        abs: change_abs,
        pct: last(&indicators::roc(close, SHORT_RANGE), "24-bar change %")?,
        pips: finite(change_abs / pip_size, "24-bar change in pips")?,
    };
    let levels = Levels {
        support: range_120.low,
        resistance: range_120.high,
        support_distance_pips: finite((last_close - range_120.low) / pip_size, "support distance")?,
        resistance_distance_pips: finite((range_120.high - last_close) / pip_size, "resistance distance")?,
    };

    let mut analysis = MarketAnalysis {
        symbol: symbol.to_ascii_uppercase(),
        timeframe: tf,
        bars_used: n,
        last_time,
        close: last_close,
        pip_size,
        price_decimals: (pip_decimals(pip_size) + 1).min(8),
        trend,
        rsi,
        volatility,
        macd,
        bollinger,
        range_24,
        range_120,
        change_24,
        levels,
        summary: String::new(),
    };
    analysis.summary = summarise(&analysis);
    Ok(analysis)
}

fn relation(a: f64, b: f64) -> &'static str {
    match sign(a - b) {
        1 => "above",
        -1 => "below",
        _ => "at",
    }
}

fn rsi_words(regime: RsiRegime) -> &'static str {
    match regime {
        RsiRegime::Oversold => "oversold",
        RsiRegime::Weak => "weak momentum",
        RsiRegime::Neutral => "neutral momentum",
        RsiRegime::Strong => "strong momentum",
        RsiRegime::Overbought => "overbought",
    }
}

/// The eight summary sentences (formats on [`analyse`]).
fn summarise(a: &MarketAnalysis) -> String {
    let d = a.price_decimals;
    let p = |v: f64| format!("{v:.d$}");
    let t = &a.trend;
    let name = format!("{} {}", a.symbol, timeframe_label(a.timeframe));
    let mut s = Vec::with_capacity(8);

    let head = match t.direction {
        TrendDirection::Uptrend | TrendDirection::Downtrend => {
            format!("{name} is in a {} {} (trend score {:+} of ±4)", t.strength.as_str(), t.direction.as_str(), t.score)
        }
        TrendDirection::Sideways => format!("{name} is moving sideways (trend score {:+} of ±4)", t.score),
    };
    let slope = match sign(t.ema50_slope_pct) {
        1 => format!("has risen {:.3} %", t.ema50_slope_pct),
        -1 => format!("has fallen {:.3} %", -t.ema50_slope_pct),
        _ => "is unchanged".to_owned(),
    };
    s.push(format!(
        "{head}: the close {} is {} EMA 20 ({}), EMA 20 is {} EMA 50 ({}) and EMA 50 is {} SMA 200 ({}); EMA 50 {slope} \
         over the last {SLOPE_BARS} bars and EMA 20 is {:.2} ATR {} EMA 50.",
        p(a.close),
        relation(a.close, t.ema20),
        p(t.ema20),
        relation(t.ema20, t.ema50),
        p(t.ema50),
        relation(t.ema50, t.sma200),
        p(t.sma200),
        t.separation_atr.abs(),
        relation(t.ema20, t.ema50),
    ));
    s.push(format!("RSI({RSI_PERIOD}) is {:.1} ({}).", a.rsi.value, rsi_words(a.rsi.regime)));
    let v = &a.volatility;
    s.push(format!(
        "ATR({ATR_PERIOD}) is {} ({:.2} % of price), at the {:.0}th percentile of the last {VOLATILITY_WINDOW} bars: {} \
         volatility.",
        p(v.atr),
        v.atr_pct,
        v.percentile,
        v.regime.as_str()
    ));
    let md = d + 2;
    let cross = match a.macd.cross {
        Some(MacdCross { direction, bars_ago: 0 }) => {
            format!(
                "a {} cross happened on the last bar",
                if direction == CrossDirection::Bullish { "bullish" } else { "bearish" }
            )
        }
        Some(MacdCross { direction, bars_ago }) => format!(
            "a {} cross happened {bars_ago} bar{} ago",
            if direction == CrossDirection::Bullish { "bullish" } else { "bearish" },
            if bars_ago == 1 { "" } else { "s" }
        ),
        None => format!("no cross in the last {MACD_CROSS_BARS} bars"),
    };
    let (fast, slow, signal) = MACD_PERIODS;
    s.push(format!(
        "MACD({fast}, {slow}, {signal}): line {:.md$}, signal {:.md$}, histogram {:.md$}; {cross}.",
        a.macd.line, a.macd.signal, a.macd.histogram
    ));
    let b = &a.bollinger;
    let bands = format!("lower {}, middle {}, upper {}", p(b.lower), p(b.middle), p(b.upper));
    s.push(match b.percent_b {
        Some(pb) if pb > 1.0 => format!("The close is above the upper Bollinger band (%B {pb:.2}; {bands})."),
        Some(pb) if pb < 0.0 => format!("The close is below the lower Bollinger band (%B {pb:.2}; {bands})."),
        Some(pb) => format!("The close is inside the Bollinger bands at %B {pb:.2} ({bands})."),
        None => format!("The Bollinger bands are flat ({bands})."),
    });
    let position = |r: &PriceRange| match r.position_pct {
        Some(pos) => format!("the close at {pos:.0} % of it"),
        None => "no movement".to_owned(),
    };
    s.push(format!(
        "Over the last {} bars the range was {}–{} with {}; over the last {} bars {}–{} with {}.",
        a.range_24.bars,
        p(a.range_24.low),
        p(a.range_24.high),
        position(&a.range_24),
        a.range_120.bars,
        p(a.range_120.low),
        p(a.range_120.high),
        position(&a.range_120),
    ));
    let c = &a.change_24;
    s.push(format!(
        "Over the last {} bars the close moved from {} by {:+.2} % ({:+.1} pips).",
        c.bars,
        p(c.from),
        c.pct,
        c.pips
    ));
    let l = &a.levels;
    s.push(format!(
        "Nearest support is the {LONG_RANGE}-bar low {} ({:.1} pips below the close), nearest resistance the \
         {LONG_RANGE}-bar high {} ({:.1} pips above).",
        p(l.support),
        l.support_distance_pips,
        p(l.resistance),
        l.resistance_distance_pips
    ));
    s.join(" ")
}

fn label(a: &MarketAnalysis) -> String {
    format!("{} {}", a.symbol, timeframe_label(a.timeframe))
}

/// The first element with the greatest key (ties keep the earlier one).
fn first_max<'a, K: PartialOrd>(
    items: impl Iterator<Item = &'a MarketAnalysis>,
    key: impl Fn(&MarketAnalysis) -> K,
) -> Option<&'a MarketAnalysis> {
    let mut best: Option<(&MarketAnalysis, K)> = None;
    for a in items {
        let k = key(a);
        if best.as_ref().is_none_or(|(_, bk)| k > *bk) {
            best = Some((a, k));
        }
    }
    best.map(|(a, _)| a)
}

/// A short overview of several analyses (at most the first [`MAX_DAILY_SYMBOLS`]): how many trend which way, the
/// strongest trend (highest |score|, then the largest |EMA separation| in ATRs), the most volatile (highest ATR
/// percentile, then ATR %), the overbought / oversold ones and recent MACD crosses. Numbers use the same formats
/// as the per-symbol summary. Ties keep the input order.
pub fn daily_summary(analyses: &[MarketAnalysis]) -> String {
    let list = &analyses[..analyses.len().min(MAX_DAILY_SYMBOLS)];
    if list.is_empty() {
        return "No symbol could be analysed, so there is no overview.".to_owned();
    }
    let mut s = Vec::new();
    let count = |d: TrendDirection| list.iter().filter(|a| a.trend.direction == d).count();
    let skipped = analyses.len() - list.len();
    s.push(format!(
        "{} symbol{} analysed{}: {} in an uptrend, {} in a downtrend, {} sideways.",
        list.len(),
        if list.len() == 1 { "" } else { "s" },
        if skipped > 0 { format!(" ({skipped} more left out)") } else { String::new() },
        count(TrendDirection::Uptrend),
        count(TrendDirection::Downtrend),
        count(TrendDirection::Sideways),
    ));
    let trending = list.iter().filter(|a| a.trend.direction != TrendDirection::Sideways);
    match first_max(trending, |a| (a.trend.score.unsigned_abs(), a.trend.separation_atr.abs())) {
        Some(a) => s.push(format!(
            "Strongest trend: {} ({} {}, score {:+} of ±4, EMA 20 {:.2} ATR {} EMA 50).",
            label(a),
            a.trend.strength.as_str(),
            a.trend.direction.as_str(),
            a.trend.score,
            a.trend.separation_atr.abs(),
            relation(a.trend.ema20, a.trend.ema50),
        )),
        None => s.push("No symbol is trending.".to_owned()),
    }
    if let Some(a) = first_max(list.iter(), |a| (a.volatility.percentile, a.volatility.atr_pct)) {
        s.push(format!(
            "Most volatile: {} (ATR {:.2} % of price, {:.0}th percentile of its last {VOLATILITY_WINDOW} bars, {} \
             volatility).",
            label(a),
            a.volatility.atr_pct,
            a.volatility.percentile,
            a.volatility.regime.as_str()
        ));
    }
    let rsi_list = |regime: RsiRegime| {
        let names: Vec<String> = list
            .iter()
            .filter(|a| a.rsi.regime == regime)
            .map(|a| format!("{} (RSI {:.1})", label(a), a.rsi.value))
            .collect();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    };
    s.push(format!(
        "Overbought (RSI above 70): {}. Oversold (RSI below 30): {}.",
        rsi_list(RsiRegime::Overbought),
        rsi_list(RsiRegime::Oversold)
    ));
    let crosses: Vec<String> = list
        .iter()
        .filter_map(|a| {
            a.macd.cross.map(|c| {
                let dir = if c.direction == CrossDirection::Bullish { "bullish" } else { "bearish" };
                format!("{} ({dir}, {} bar{} ago)", label(a), c.bars_ago, if c.bars_ago == 1 { "" } else { "s" })
            })
        })
        .collect();
    if !crosses.is_empty() {
        s.push(format!("MACD crosses in the last {MACD_CROSS_BARS} bars: {}.", crosses.join(", ")));
    }
    s.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candles::{Candle, CsvLimits, parse_csv};
    use crate::rng::SplitMix64;
    use chrono::TimeZone;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/EURUSD.csv");

    /// A random walk of `n` hourly bars with `drift` per bar (relative) and noise of ±`noise`.
    fn walk(seed: u64, n: usize, drift: f64, noise: f64) -> CandleSeries {
        let mut rng = SplitMix64(seed);
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut price = 1.1;
        let candles = (0..n)
            .map(|i| {
                let open = price;
                price *= 1.0 + drift + noise * (2.0 * rng.unit() - 1.0);
                let wick = 1.0 + 0.0005 * rng.unit();
                Candle {
                    time: start + chrono::Duration::hours(i as i64),
                    open,
                    high: open.max(price) * wick,
                    low: open.min(price) / wick,
                    close: price,
                    volume: 100.0,
                }
            })
            .collect();
        CandleSeries::new(candles).unwrap()
    }

    /// Checks every number of `a` against the indicator library on the same bars.
    fn check_against_library(a: &MarketAnalysis, series: &CandleSeries, pip: f64) {
        let cols = series.tail(ANALYSIS_WINDOW).columns();
        let (h, l, c) = (&cols.high, &cols.low, &cols.close);
        let n = c.len();
        let lastv = |v: Vec<f64>| v[n - 1];
        assert_eq!(a.bars_used, n.min(ANALYSIS_WINDOW));
        assert_eq!(a.close, c[n - 1]);
        assert_eq!(a.last_time, cols.time[n - 1]);
        let e50 = indicators::ema(c, 50);
        assert_eq!(a.trend.ema20, lastv(indicators::ema(c, 20)));
        assert_eq!(a.trend.ema50, e50[n - 1]);
        assert_eq!(a.trend.sma200, lastv(indicators::sma(c, 200)));
        assert_eq!(a.trend.ema50_slope_pct, 100.0 * (e50[n - 1] - e50[n - 11]) / e50[n - 11]);
        let atr = indicators::atr(h, l, c, 14);
        assert_eq!(a.volatility.atr, atr[n - 1]);
        assert_eq!(a.volatility.atr_pct, 100.0 * atr[n - 1] / c[n - 1]);
        assert_eq!(a.trend.separation_atr, (a.trend.ema20 - a.trend.ema50) / atr[n - 1]);
        // Percentile recomputed independently: rank among the last 250 ATR % values.
        let pcts: Vec<f64> = (n - 250..n).map(|i| 100.0 * atr[i] / c[i]).collect();
        let rank = pcts.iter().filter(|&&x| x <= a.volatility.atr_pct).count();
        assert_eq!(a.volatility.percentile, rank as f64 * 100.0 / 250.0);
        assert_eq!(a.rsi.value, lastv(indicators::rsi(c, 14)));
        let m = indicators::macd(c, 12, 26, 9);
        assert_eq!((a.macd.line, a.macd.signal, a.macd.histogram), (m.line[n - 1], m.signal[n - 1], m.hist[n - 1]));
        let expected_cross = (0..5).find_map(|k| {
            let (prev, cur) = (m.hist[n - 2 - k], m.hist[n - 1 - k]);
            let direction = if prev <= 0.0 && cur > 0.0 {
                CrossDirection::Bullish
            } else if prev >= 0.0 && cur < 0.0 {
                CrossDirection::Bearish
            } else {
                return None;
            };
            Some(MacdCross { direction, bars_ago: k })
        });
        assert_eq!(a.macd.cross, expected_cross);
        let bb = indicators::bollinger(c, 20, 2.0);
        assert_eq!(
            (a.bollinger.upper, a.bollinger.middle, a.bollinger.lower),
            (bb.upper[n - 1], bb.middle[n - 1], bb.lower[n - 1])
        );
        assert_eq!(a.bollinger.percent_b, Some((c[n - 1] - bb.lower[n - 1]) / (bb.upper[n - 1] - bb.lower[n - 1])));
        for (r, bars) in [(&a.range_24, 24), (&a.range_120, 120)] {
            assert_eq!(r.high, lastv(indicators::rolling_max(h, bars)));
            assert_eq!(r.low, lastv(indicators::rolling_min(l, bars)));
            assert_eq!(r.high, h[n - bars..].iter().cloned().fold(f64::MIN, f64::max));
            assert_eq!(r.low, l[n - bars..].iter().cloned().fold(f64::MAX, f64::min));
            assert_eq!(r.position_pct, Some(100.0 * (c[n - 1] - r.low) / (r.high - r.low)));
        }
        assert_eq!(a.change_24.from, c[n - 25]);
        assert_eq!(a.change_24.abs, lastv(indicators::momentum(c, 24)));
        assert_eq!(a.change_24.pct, lastv(indicators::roc(c, 24)));
        assert_eq!(a.change_24.pips, (c[n - 1] - c[n - 25]) / pip);
        assert_eq!((a.levels.support, a.levels.resistance), (a.range_120.low, a.range_120.high));
        assert_eq!(a.levels.support_distance_pips, (c[n - 1] - a.range_120.low) / pip);
        assert_eq!(a.levels.resistance_distance_pips, (a.range_120.high - c[n - 1]) / pip);
        assert_eq!(a.rsi.regime, RsiRegime::classify(a.rsi.value));
        assert_eq!(a.volatility.regime, VolatilityRegime::classify(a.volatility.percentile));
    }

    /// The numbers the summary must quote, formatted as documented on [`analyse`].
    fn expected_numbers(a: &MarketAnalysis) -> Vec<String> {
        let d = a.price_decimals;
        let md = d + 2;
        let mut v = vec![
            format!("{:.d$}", a.close),
            format!("{:.d$}", a.trend.ema20),
            format!("{:.d$}", a.trend.ema50),
            format!("{:.d$}", a.trend.sma200),
            format!("{:.3} %", a.trend.ema50_slope_pct.abs()),
            format!("{:.2} ATR {} EMA 50", a.trend.separation_atr.abs(), relation(a.trend.ema20, a.trend.ema50)),
            format!("score {:+} of", a.trend.score),
            format!("RSI(14) is {:.1} (", a.rsi.value),
            format!("ATR(14) is {:.d$} ({:.2} % of price)", a.volatility.atr, a.volatility.atr_pct),
            format!("{:.0}th percentile", a.volatility.percentile),
            format!("line {:.md$}, signal {:.md$}, histogram {:.md$}", a.macd.line, a.macd.signal, a.macd.histogram),
            format!("{:.d$}", a.bollinger.upper),
            format!("{:.d$}", a.bollinger.middle),
            format!("{:.d$}", a.bollinger.lower),
            format!("{:.d$}–{:.d$}", a.range_24.low, a.range_24.high),
            format!("{:.d$}–{:.d$}", a.range_120.low, a.range_120.high),
            format!("{:+.2} % ({:+.1} pips)", a.change_24.pct, a.change_24.pips),
            format!("{:.d$}", a.change_24.from),
            format!("{:.1} pips below", a.levels.support_distance_pips),
            format!("{:.1} pips above", a.levels.resistance_distance_pips),
        ];
        if let Some(pb) = a.bollinger.percent_b {
            v.push(format!("%B {pb:.2}"));
        }
        for r in [&a.range_24, &a.range_120] {
            if let Some(pos) = r.position_pct {
                v.push(format!("at {pos:.0} %"));
            }
        }
        v
    }

    fn check_summary(a: &MarketAnalysis) {
        for number in expected_numbers(a) {
            assert!(a.summary.contains(&number), "summary lacks {number:?}:\n{}", a.summary);
        }
        assert!(a.summary.starts_with(&format!("{} {} is ", a.symbol, timeframe_label(a.timeframe))));
        let sentences = a.summary.matches(". ").count() + 1;
        assert!((4..=8).contains(&sentences), "{sentences} sentences");
        assert!(a.summary.contains(a.trend.direction.as_str()) || a.trend.direction == TrendDirection::Sideways);
        assert!(a.summary.contains(&format!("{} volatility", a.volatility.regime.as_str())));
    }

    #[test]
    fn numbers_equal_the_indicator_library() {
        for (seed, n) in [(1, 300), (2, MIN_BARS), (3, 1_500)] {
            let series = walk(seed, n, 0.0, 0.002);
            let a = analyse("eurusd", &series, Timeframe::H1, 0.0001).unwrap();
            assert_eq!(a.symbol, "EURUSD");
            check_against_library(&a, &series, 0.0001);
            check_summary(&a);
        }
    }

    #[test]
    fn generated_trends_are_classified() {
        let up = analyse("EURUSD", &walk(7, 400, 0.0008, 0.002), Timeframe::H1, 0.0001).unwrap();
        assert_eq!(up.trend.direction, TrendDirection::Uptrend, "{}", up.summary);
        assert!(up.trend.score >= 3 && up.trend.ema50_slope_pct > 0.0);
        assert!(up.summary.contains("uptrend"));
        let down = analyse("USDJPY", &walk(8, 400, -0.0008, 0.002), Timeframe::H4, 0.01).unwrap();
        assert_eq!(down.trend.direction, TrendDirection::Downtrend, "{}", down.summary);
        assert!(down.trend.score <= -3 && down.trend.ema50_slope_pct < 0.0);
        assert!(down.summary.starts_with("USDJPY H4 is in a ") && down.summary.contains("downtrend"));
        assert_eq!(down.price_decimals, 3);
        assert!(down.change_24.pips < 0.0);
        check_summary(&up);
        check_summary(&down);
    }

    #[test]
    fn too_few_bars_is_an_error_naming_the_need() {
        let series = walk(4, MIN_BARS - 1, 0.0, 0.002);
        let err = analyse("EURUSD", &series, Timeframe::H1, 0.0001).unwrap_err();
        assert_eq!(err, AnalysisError::NotEnoughBars { needed: 264, got: 263 });
        assert!(err.to_string().contains("264 are needed") && err.to_string().contains("got 263"));
        assert!(analyse("EURUSD", &CandleSeries::default(), Timeframe::H1, 0.0001).is_err());
    }

    #[test]
    fn inputs_are_limited() {
        let series = walk(5, 300, 0.0, 0.002);
        for bad in ["", "EUR USD", "A".repeat(33).as_str(), "EURUSD\n", "ÉURUSD"] {
            assert_eq!(analyse(bad, &series, Timeframe::H1, 0.0001), Err(AnalysisError::InvalidSymbol), "{bad:?}");
        }
        assert!(analyse(&"A".repeat(32), &series, Timeframe::H1, 0.0001).is_ok());
        for pip in [0.0, -0.0001, f64::NAN, f64::INFINITY, 1_000.5] {
            assert!(matches!(analyse("X", &series, Timeframe::H1, pip), Err(AnalysisError::InvalidPipSize(_))));
        }
        // A pip so small that the pip figures overflow is refused, not returned as infinity.
        assert!(matches!(analyse("X", &series, Timeframe::H1, 1e-320), Err(AnalysisError::NotFinite(_))));
        // Long series: only the newest ANALYSIS_WINDOW bars are read.
        let long = walk(6, 2_500, 0.0, 0.002);
        let a = analyse("X", &long, Timeframe::H1, 0.0001).unwrap();
        assert_eq!(a.bars_used, ANALYSIS_WINDOW);
        assert_eq!(a, analyse("X", &long.tail(ANALYSIS_WINDOW), Timeframe::H1, 0.0001).unwrap());
    }

    #[test]
    fn regimes_at_their_boundaries() {
        let rsi = [
            (0.0, RsiRegime::Oversold),
            (29.999, RsiRegime::Oversold),
            (30.0, RsiRegime::Weak),
            (44.999, RsiRegime::Weak),
            (45.0, RsiRegime::Neutral),
            (55.0, RsiRegime::Neutral),
            (55.001, RsiRegime::Strong),
            (70.0, RsiRegime::Strong),
            (70.001, RsiRegime::Overbought),
            (100.0, RsiRegime::Overbought),
        ];
        for (value, regime) in rsi {
            assert_eq!(RsiRegime::classify(value), regime, "RSI {value}");
        }
        let vol = [
            (0.4, VolatilityRegime::Low),
            (32.99, VolatilityRegime::Low),
            (33.0, VolatilityRegime::Normal),
            (67.0, VolatilityRegime::Normal),
            (67.2, VolatilityRegime::High),
            (100.0, VolatilityRegime::High),
        ];
        for (p, regime) in vol {
            assert_eq!(VolatilityRegime::classify(p), regime, "percentile {p}");
        }
        let trend = [
            (4, 1.0, TrendDirection::Uptrend, TrendStrength::Strong),
            (4, 0.99, TrendDirection::Uptrend, TrendStrength::Moderate),
            (3, 5.0, TrendDirection::Uptrend, TrendStrength::Moderate),
            (2, 5.0, TrendDirection::Sideways, TrendStrength::Weak),
            (0, 0.0, TrendDirection::Sideways, TrendStrength::Weak),
            (-2, -5.0, TrendDirection::Sideways, TrendStrength::Weak),
            (-3, -5.0, TrendDirection::Downtrend, TrendStrength::Moderate),
            (-4, -0.5, TrendDirection::Downtrend, TrendStrength::Moderate),
            (-4, -1.0, TrendDirection::Downtrend, TrendStrength::Strong),
        ];
        for (score, sep, direction, strength) in trend {
            assert_eq!(TrendDirection::classify(score), direction, "score {score}");
            assert_eq!(TrendStrength::classify(score, sep), strength, "score {score}, separation {sep}");
        }
        assert_eq!(percentile_of_last(&[3.0, 1.0, 2.0, 2.0]), Some(75.0));
        assert_eq!(percentile_of_last(&[1.0, 2.0, 3.0, 4.0]), Some(100.0));
        assert_eq!(percentile_of_last(&[2.0, 2.0, 3.0, 1.0]), Some(25.0));
        assert_eq!(pip_decimals(0.0001), 4);
        assert_eq!(pip_decimals(0.01), 2);
        assert_eq!(pip_decimals(1.0), 0);
    }

    #[test]
    fn flat_series_has_no_division_by_zero() {
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let candles = (0..300)
            .map(|i| Candle {
                time: start + chrono::Duration::hours(i),
                open: 1.5,
                high: 1.5,
                low: 1.5,
                close: 1.5,
                volume: 0.0,
            })
            .collect();
        let a = analyse("FLAT", &CandleSeries::new(candles).unwrap(), Timeframe::D1, 0.0001).unwrap();
        assert_eq!((a.volatility.atr, a.trend.separation_atr, a.trend.score), (0.0, 0.0, 0));
        assert_eq!(a.trend.direction, TrendDirection::Sideways);
        assert_eq!((a.bollinger.percent_b, a.range_24.position_pct), (None, None));
        assert!(
            a.summary.contains("moving sideways") && a.summary.contains("flat") && a.summary.contains("no movement")
        );
        assert!(a.summary.contains("1.50000"));
    }

    #[test]
    fn macd_cross_is_detected_within_five_bars() {
        // A slow move, an acceleration (the histogram turns clearly to the move's side), then a sharp reversal:
        // the histogram crosses zero within a few bars of the reversal.
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        for (sign, direction) in [(-1.0, CrossDirection::Bullish), (1.0, CrossDirection::Bearish)] {
            let mut crossed_at = Vec::new();
            for extra in 0..12 {
                let steps = (0..270).map(|_| 0.0002 * sign).chain((0..20).map(|_| 0.003 * sign));
                let steps = steps.chain((0..extra).map(|_| -0.004 * sign));
                let mut price: f64 = 1.2;
                let candles = steps
                    .enumerate()
                    .map(|(i, step)| {
                        let open = price;
                        price *= 1.0 + step;
                        let (high, low) = (open.max(price), open.min(price));
                        Candle {
                            time: start + chrono::Duration::hours(i as i64),
                            open,
                            high,
                            low,
                            close: price,
                            volume: 1.0,
                        }
                    })
                    .collect();
                let series = CandleSeries::new(candles).unwrap();
                let a = analyse("X", &series, Timeframe::H1, 0.0001).unwrap();
                let hist = indicators::macd(&series.columns().close, 12, 26, 9).hist;
                let n = hist.len();
                // Before the reversal the histogram is on the move's side for all of the last 5 bars.
                if extra == 0 {
                    assert!(hist[n - 6..].iter().all(|h| h * sign > 0.0), "{:?}", &hist[n - 6..]);
                    assert_eq!(a.macd.cross, None);
                }
                match a.macd.cross {
                    Some(c) => {
                        assert_eq!(c.direction, direction, "extra {extra}");
                        assert!(hist[n - 1 - c.bars_ago] * sign < 0.0 && hist[n - 2 - c.bars_ago] * sign >= 0.0);
                        let dir = if direction == CrossDirection::Bullish { "bullish" } else { "bearish" };
                        let when = match c.bars_ago {
                            0 => "on the last bar".to_owned(),
                            1 => "1 bar ago".to_owned(),
                            k => format!("{k} bars ago"),
                        };
                        assert!(a.summary.contains(&format!("a {dir} cross happened {when}")), "{}", a.summary);
                        crossed_at.push(extra - c.bars_ago);
                    }
                    None => assert!(a.summary.contains("no cross in the last 5 bars"), "{}", a.summary),
                }
            }
            // One cross, reported on each of the 5 bars from the one where it happened, then forgotten.
            assert_eq!(crossed_at.len(), 5, "{crossed_at:?}");
            assert!(crossed_at.iter().all(|&k| k == crossed_at[0]), "{crossed_at:?}");
        }
    }

    #[test]
    fn daily_summary_ranks_and_lists() {
        assert!(daily_summary(&[]).contains("No symbol"));
        let up = analyse("UP", &walk(7, 400, 0.0008, 0.002), Timeframe::H1, 0.0001).unwrap();
        let down = analyse("DOWN", &walk(8, 400, -0.0008, 0.002), Timeframe::H1, 0.0001).unwrap();
        let calm = analyse("CALM", &walk(10, 400, 0.0, 0.0005), Timeframe::H1, 0.0001).unwrap();
        let mut hot = calm.clone();
        hot.symbol = "HOT".into();
        hot.volatility.percentile = 100.0;
        hot.volatility.atr_pct = 9.0;
        hot.volatility.regime = VolatilityRegime::High;
        hot.rsi = Rsi { value: 75.5, regime: RsiRegime::Overbought };
        let mut cold = calm.clone();
        cold.symbol = "COLD".into();
        cold.rsi = Rsi { value: 21.25, regime: RsiRegime::Oversold };
        cold.trend.direction = TrendDirection::Sideways;
        let all = [up.clone(), down.clone(), calm, hot, cold];
        let text = daily_summary(&all);
        let ups = all.iter().filter(|a| a.trend.direction == TrendDirection::Uptrend).count();
        assert!(text.starts_with(&format!("5 symbols analysed: {ups} in an uptrend")), "{text}");
        let strongest = if (up.trend.score.unsigned_abs(), up.trend.separation_atr.abs())
            >= (down.trend.score.unsigned_abs(), down.trend.separation_atr.abs())
        {
            &up
        } else {
            &down
        };
        assert!(
            text.contains(&format!("Strongest trend: {} H1", strongest.symbol))
                && text.contains(&format!("{:.2} ATR", strongest.trend.separation_atr.abs())),
            "{text}"
        );
        assert!(text.contains("Most volatile: HOT H1 (ATR 9.00 % of price, 100th percentile"), "{text}");
        assert!(text.contains("high volatility"), "{text}");
        let listed = |regime: RsiRegime| {
            let v: Vec<String> = all
                .iter()
                .filter(|a| a.rsi.regime == regime)
                .map(|a| format!("{} H1 (RSI {:.1})", a.symbol, a.rsi.value))
                .collect();
            v.join(", ")
        };
        assert!(text.contains(&format!("Overbought (RSI above 70): {}.", listed(RsiRegime::Overbought))), "{text}");
        assert!(text.contains(&format!("Oversold (RSI below 30): {}.", listed(RsiRegime::Oversold))), "{text}");
        assert!(text.contains("HOT H1 (RSI 75.5)") && text.contains("COLD H1 (RSI 21.2)"), "{text}");
        let too_many = vec![up; MAX_DAILY_SYMBOLS + 3];
        assert!(daily_summary(&too_many).contains("100 symbols analysed (3 more left out)"));
    }

    #[test]
    fn eurusd_sample() {
        let bytes = match std::fs::read(DATA) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("SKIPPED: {DATA} not readable ({e})");
                return;
            }
        };
        let series = parse_csv(&bytes, &CsvLimits::default()).unwrap();
        let a = analyse("EURUSD", &series, Timeframe::H1, 0.0001).unwrap();
        assert_eq!(a.last_time, Utc.with_ymd_and_hms(2018, 2, 7, 15, 0, 0).unwrap());
        assert_eq!(a.bars_used, ANALYSIS_WINDOW);
        check_against_library(&a, &series, 0.0001);
        check_summary(&a);
        // The EMAs over the window agree with those over the whole file (the seed 1,000 bars back has faded).
        let all = series.columns().close;
        let full = indicators::ema(&all, 50);
        assert!((full[all.len() - 1] - a.trend.ema50).abs() < 1e-12);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["timeframe"], "H1");
        assert_eq!(json["trend"]["direction"], a.trend.direction.as_str());
        eprintln!("{}", a.summary);
    }
}
