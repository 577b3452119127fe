//! Price feeds for the paper engine: bid/ask [`Tick`]s replayed from a candle CSV ([`CandleReplay`]) or generated
//! by a seeded random walk ([`RandomWalk`]), merged in time order by a [`PriceFeed`].
//!
//! Every price is a [`Decimal`] on the instrument's digits; the spread ([`Spread`]) is added to the bid to make
//! the ask. Source prices (CSV candles, the walk) are taken as **bid** prices.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use nusatrade_domain::instrument::{Instrument, InstrumentKind, Symbol};
use nusatrade_domain::money::Side;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use thiserror::Error;

/// One quote: the price at which the market buys (`bid`) and sells (`ask`) a symbol at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tick {
    /// The canonical catalogue symbol.
    pub symbol: Symbol,
    /// Bid: SELL orders fill here, BUY positions close here.
    pub bid: Decimal,
    /// Ask: BUY orders fill here, SELL positions close here. Never below the bid.
    pub ask: Decimal,
    /// Quote time (UTC).
    pub time: DateTime<Utc>,
}

impl Tick {
    /// A tick from a bid and a spread (a price distance): `ask = bid + spread`, both rounded to the instrument's
    /// digits.
    pub fn from_bid(symbol: Symbol, bid: Decimal, spread: Decimal, time: DateTime<Utc>) -> Tick {
        let inst = symbol.instrument();
        let bid = inst.round_price(bid);
        Tick { symbol, bid, ask: inst.round_price(bid + spread), time }
    }

    /// True when the quote can be traded on: a positive bid and an ask not below it.
    pub fn is_valid(&self) -> bool {
        self.bid > Decimal::ZERO && self.ask >= self.bid
    }

    /// The price a new position of `side` fills at: ask for BUY, bid for SELL.
    pub fn open_price(&self, side: Side) -> Decimal {
        match side {
            Side::Buy => self.ask,
            Side::Sell => self.bid,
        }
    }

    /// The price a position of `side` closes (and is valued) at: bid for BUY, ask for SELL.
    pub fn close_price(&self, side: Side) -> Decimal {
        match side {
            Side::Buy => self.bid,
            Side::Sell => self.ask,
        }
    }

    /// `(bid + ask) / 2`, used for currency conversions.
    pub fn mid(&self) -> Decimal {
        (self.bid + self.ask) / Decimal::TWO
    }

    /// `ask − bid`.
    pub fn spread(&self) -> Decimal {
        self.ask - self.bid
    }
}

/// A spread, in the instrument's points (last quoted digit) or pips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Points: `n × 10^-digits` (EURUSD: 15 points = 1.5 pips).
    Points(Decimal),
    /// Pips: `n × pip_size`.
    Pips(Decimal),
}

impl Spread {
    /// The default spread of an instrument: 1.5 pips for the seven FX majors, 2.5 pips for other FX pairs,
    /// 30 points for metals (XAUUSD 0.30), 30 pips for crypto (BTCUSD 30.00), 2 points of the index for indices.
    pub fn default_for(instrument: &Instrument) -> Spread {
        const MAJORS: [&str; 7] = ["EURUSD", "GBPUSD", "USDJPY", "USDCHF", "USDCAD", "AUDUSD", "NZDUSD"];
        match instrument.kind {
            InstrumentKind::Forex if MAJORS.contains(&instrument.symbol) => Spread::Pips(Decimal::new(15, 1)),
            InstrumentKind::Forex => Spread::Pips(Decimal::new(25, 1)),
            InstrumentKind::Metal => Spread::Points(Decimal::from(30)),
            InstrumentKind::Crypto => Spread::Pips(Decimal::from(30)),
            InstrumentKind::Index => Spread::Pips(Decimal::TWO),
        }
    }

    /// The spread as a price distance for `instrument`, rounded to its digits (never negative).
    pub fn to_price(self, instrument: &Instrument) -> Decimal {
        let raw = match self {
            Spread::Points(n) => n * instrument.point(),
            Spread::Pips(n) => instrument.from_pips(n),
        };
        instrument.round_price(raw).max(Decimal::ZERO)
    }
}

/// Per-symbol spreads: explicit overrides, else [`Spread::default_for`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spreads {
    overrides: HashMap<&'static str, Spread>,
}

impl Spreads {
    /// Every symbol at its default spread.
    pub fn new() -> Spreads {
        Spreads::default()
    }

    /// Sets the spread of one symbol.
    pub fn with(mut self, symbol: Symbol, spread: Spread) -> Spreads {
        self.overrides.insert(symbol.as_str(), spread);
        self
    }

    /// The spread of `symbol` as a price distance.
    pub fn price(&self, symbol: Symbol) -> Decimal {
        let inst = symbol.instrument();
        self.overrides.get(symbol.as_str()).copied().unwrap_or_else(|| Spread::default_for(inst)).to_price(inst)
    }
}

/// What is wrong with a CSV row.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RowProblem {
    /// Not six comma-separated fields.
    #[error("expected 6 fields (time,Open,High,Low,Close,Volume), found {0}")]
    FieldCount(usize),
    /// The timestamp is not `YYYY-MM-DD HH:MM:SS` (or `YYYY-MM-DD`).
    #[error("invalid timestamp {0:?} (expected YYYY-MM-DD HH:MM:SS, UTC)")]
    Time(String),
    /// A number does not parse.
    #[error("{field} is not a decimal number: {value:?}")]
    Number {
        /// `Open`, `High`, `Low`, `Close` or `Volume`.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// A price is zero or negative (after rounding to the instrument's digits).
    #[error("{0} must be greater than 0")]
    NonPositive(&'static str),
    /// Negative volume.
    #[error("Volume must not be negative")]
    NegativeVolume,
    /// `High < max(Open, Close)`.
    #[error("High {high} is below max(Open, Close) {body}")]
    HighBelowBody {
        /// The high.
        high: Decimal,
        /// `max(open, close)`.
        body: Decimal,
    },
    /// `Low > min(Open, Close)`.
    #[error("Low {low} is above min(Open, Close) {body}")]
    LowAboveBody {
        /// The low.
        low: Decimal,
        /// `min(open, close)`.
        body: Decimal,
    },
    /// The timestamp is not after the previous row's.
    #[error("time {time} is not after the previous row's {previous}")]
    TimeNotIncreasing {
        /// This row's time.
        time: DateTime<Utc>,
        /// The previous row's time.
        previous: DateTime<Utc>,
    },
}

/// Errors of the price feeds.
#[derive(Debug, Error)]
pub enum FeedError {
    /// The CSV could not be read.
    #[error("cannot read candles: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV is empty (no header).
    #[error("empty candle file: expected the header ,Open,High,Low,Close,Volume")]
    Empty,
    /// The first line is not the expected header.
    #[error("line 1: expected the header ,Open,High,Low,Close,Volume, found {0:?}")]
    Header(String),
    /// A data row is invalid. `line` is 1-based and counts the header (the first data row is line 2).
    #[error("line {line}: {problem}")]
    Row {
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong.
        problem: RowProblem,
    },
    /// The random walk's interval must be positive.
    #[error("the tick interval must be positive, got {0}")]
    NonPositiveInterval(TimeDelta),
    /// A random-walk volatility must be a finite number ≥ 0.
    #[error("volatility for {symbol} must be a finite number >= 0, got {value}")]
    InvalidVolatility {
        /// The symbol.
        symbol: Symbol,
        /// The rejected value.
        value: f64,
    },
    /// A start price must be positive.
    #[error("start price for {symbol} must be greater than 0, got {value}")]
    InvalidStartPrice {
        /// The symbol.
        symbol: Symbol,
        /// The rejected value.
        value: Decimal,
    },
}

/// One OHLCV bar with decimal prices (bid side), on the instrument's digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candle {
    /// Bar open time (UTC).
    pub time: DateTime<Utc>,
    /// First price.
    pub open: Decimal,
    /// Highest price.
    pub high: Decimal,
    /// Lowest price.
    pub low: Decimal,
    /// Last price.
    pub close: Decimal,
    /// Volume (unused by the engine).
    pub volume: Decimal,
}

/// Parses and validates candles from a CSV with the header `,Open,High,Low,Close,Volume` (column names
/// case-insensitive, the first one free) and a first column `YYYY-MM-DD HH:MM:SS` (or `YYYY-MM-DD`) in UTC.
///
/// Prices are rounded to the instrument's digits, then checked: all positive, `High ≥ max(Open, Close)`,
/// `Low ≤ min(Open, Close)`, volume ≥ 0, time strictly increasing. Blank lines are skipped; CRLF and a UTF-8 BOM
/// are accepted. The first bad row stops the parse with its line number.
pub fn parse_candles(instrument: &Instrument, reader: impl BufRead) -> Result<Vec<Candle>, FeedError> {
    let mut lines = reader.lines();
    let header = lines.next().ok_or(FeedError::Empty)??;
    let header = header.trim_start_matches('\u{feff}').trim_end();
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let expected = ["open", "high", "low", "close", "volume"];
    if cols.len() != 6 || !cols[1..].iter().zip(expected).all(|(c, e)| c.eq_ignore_ascii_case(e)) {
        return Err(FeedError::Header(header.to_string()));
    }
    let mut candles: Vec<Candle> = Vec::new();
    for (index, line) in lines.enumerate() {
        let line_no = index + 2;
        let line = line?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let candle = parse_row(instrument, text, candles.last().map(|c| c.time))
            .map_err(|problem| FeedError::Row { line: line_no, problem })?;
        candles.push(candle);
    }
    Ok(candles)
}

fn parse_row(instrument: &Instrument, text: &str, previous: Option<DateTime<Utc>>) -> Result<Candle, RowProblem> {
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    let [time, open, high, low, close, volume] = fields[..] else {
        return Err(RowProblem::FieldCount(fields.len()));
    };
    let time = parse_time(time).ok_or_else(|| RowProblem::Time(time.to_string()))?;
    let price = |field: &'static str, value: &str| -> Result<Decimal, RowProblem> {
        let number = parse_decimal(value).ok_or_else(|| RowProblem::Number { field, value: value.to_string() })?;
        let rounded = instrument.round_price(number);
        if rounded <= Decimal::ZERO { Err(RowProblem::NonPositive(field)) } else { Ok(rounded) }
    };
    let (open, high, low, close) =
        (price("Open", open)?, price("High", high)?, price("Low", low)?, price("Close", close)?);
    let volume =
        parse_decimal(volume).ok_or_else(|| RowProblem::Number { field: "Volume", value: volume.to_string() })?;
    if volume < Decimal::ZERO {
        return Err(RowProblem::NegativeVolume);
    }
    if high < open.max(close) {
        return Err(RowProblem::HighBelowBody { high, body: open.max(close) });
    }
    if low > open.min(close) {
        return Err(RowProblem::LowAboveBody { low, body: open.min(close) });
    }
    if let Some(previous) = previous
        && time <= previous
    {
        return Err(RowProblem::TimeNotIncreasing { time, previous });
    }
    Ok(Candle { time, open, high, low, close, volume })
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
        .map(|t| t.and_utc())
}

fn parse_decimal(s: &str) -> Option<Decimal> {
    Decimal::from_str_exact(s).ok().or_else(|| Decimal::from_scientific(s).ok())
}

/// Replays candles of one symbol as ticks: each bar expands into four ticks at `time`, `+¼`, `+½` and `+¾` of the
/// bar length: open, then for a rising bar (close ≥ open) low then high, for a falling bar high then low, then
/// close — the usual "OHLC" tester path, so a stop loss and a take profit can both be reached inside a bar.
#[derive(Debug, Clone)]
pub struct CandleReplay {
    symbol: Symbol,
    candles: Vec<Candle>,
    spread: Decimal,
    bar: TimeDelta,
    next: usize,
}

impl CandleReplay {
    /// A replay of candles with the symbol's default spread. The candles are replayed as given (use
    /// [`parse_candles`] or [`CandleReplay::from_reader`] to validate input); prices are rounded to the digits.
    /// The bar length is the smallest gap between two consecutive candles (one minute for a single candle);
    /// change it with [`CandleReplay::with_bar`].
    pub fn new(symbol: Symbol, candles: Vec<Candle>) -> CandleReplay {
        let bar = candles
            .windows(2)
            .map(|w| w[1].time - w[0].time)
            .filter(|gap| *gap > TimeDelta::zero())
            .min()
            .unwrap_or(TimeDelta::minutes(1));
        let spread = Spreads::new().price(symbol);
        CandleReplay { symbol, candles, spread, bar, next: 0 }
    }

    /// Parses a CSV (see [`parse_candles`]) into a replay.
    pub fn from_reader(symbol: Symbol, reader: impl BufRead) -> Result<CandleReplay, FeedError> {
        Ok(CandleReplay::new(symbol, parse_candles(symbol.instrument(), reader)?))
    }

    /// Reads a CSV file (see [`parse_candles`]) into a replay.
    pub fn from_path(symbol: Symbol, path: impl AsRef<Path>) -> Result<CandleReplay, FeedError> {
        let file = std::fs::File::open(path)?;
        CandleReplay::from_reader(symbol, std::io::BufReader::new(file))
    }

    /// Sets the spread added to the candle (bid) prices.
    pub fn with_spread(mut self, spread: Spread) -> CandleReplay {
        self.spread = spread.to_price(self.symbol.instrument());
        self
    }

    /// Sets the bar length used to time the ticks inside a bar (ignored unless positive).
    pub fn with_bar(mut self, bar: TimeDelta) -> CandleReplay {
        if bar > TimeDelta::zero() {
            self.bar = bar;
        }
        self
    }

    /// The candles being replayed.
    pub fn candles(&self) -> &[Candle] {
        &self.candles
    }

    /// The symbol replayed.
    pub fn symbol(&self) -> Symbol {
        self.symbol
    }

    /// Ticks of one candle, in the order described on [`CandleReplay`].
    pub fn expand(&self, candle: &Candle) -> [Tick; 4] {
        let (first, second) =
            if candle.close >= candle.open { (candle.low, candle.high) } else { (candle.high, candle.low) };
        let quarter = self.bar / 4;
        let tick = |bid, n: i32| Tick::from_bid(self.symbol, bid, self.spread, candle.time + quarter * n);
        [tick(candle.open, 0), tick(first, 1), tick(second, 2), tick(candle.close, 3)]
    }
}

impl Iterator for CandleReplay {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        let candle = self.candles.get(self.next / 4)?;
        let tick = self.expand(candle)[self.next % 4];
        self.next += 1;
        Some(tick)
    }
}

/// The start price of a symbol in a [`RandomWalk`] unless overridden: recent-ish market levels (EURUSD 1.0850,
/// USDJPY 149.50, XAUUSD 2050.00, BTCUSD 42000.00...), crosses consistent with the majors; 1 for anything else.
pub fn default_start_price(symbol: Symbol) -> Decimal {
    let (mantissa, scale) = match symbol.as_str() {
        "EURUSD" => (10850, 4),
        "GBPUSD" => (12650, 4),
        "USDJPY" => (14950, 2),
        "AUDUSD" => (6550, 4),
        "USDCAD" => (13650, 4),
        "USDCHF" => (8850, 4),
        "NZDUSD" => (6150, 4),
        "EURGBP" => (8580, 4),
        "EURCHF" => (9600, 4),
        "EURAUD" => (16565, 4),
        "EURCAD" => (14810, 4),
        "EURNZD" => (17640, 4),
        "GBPCHF" => (11195, 4),
        "GBPAUD" => (19315, 4),
        "GBPCAD" => (17265, 4),
        "AUDCAD" => (8940, 4),
        "AUDNZD" => (10650, 4),
        "EURJPY" => (16220, 2),
        "GBPJPY" => (18910, 2),
        "AUDJPY" => (9790, 2),
        "NZDJPY" => (9195, 2),
        "CADJPY" => (10950, 2),
        "CHFJPY" => (16890, 2),
        "XAUUSD" => (205000, 2),
        "XAGUSD" => (2350, 2),
        "BTCUSD" => (4200000, 2),
        "US30" => (37500, 0),
        "US500" => (4750, 0),
        "NAS100" => (16800, 0),
        "GER40" => (16700, 0),
        "UK100" => (7650, 0),
        _ => (1, 0),
    };
    Decimal::new(mantissa, scale)
}

/// Default relative volatility of one random-walk step (standard deviation of the step as a fraction of the
/// price): FX 0.008 % (about 0.9 pip on EURUSD), metals 0.015 %, crypto 0.04 %, indices 0.01 %.
pub fn default_volatility(instrument: &Instrument) -> f64 {
    match instrument.kind {
        InstrumentKind::Forex => 0.000_08,
        InstrumentKind::Metal => 0.000_15,
        InstrumentKind::Crypto => 0.000_4,
        InstrumentKind::Index => 0.000_1,
    }
}

#[derive(Debug, Clone)]
struct Walker {
    symbol: Symbol,
    bid: Decimal,
    volatility: f64,
}

/// A seeded random walk over one or more symbols: at `start`, `start + interval`, `start + 2 × interval`... it
/// emits one tick per symbol (in the order given). Each step moves the bid by `bid × σ × z`, `z` approximately
/// standard normal (the sum of twelve uniforms minus six: plain arithmetic, no platform-dependent maths), rounded
/// to the instrument's digits and never below one point.
///
/// The same seed, symbols and settings give the same ticks (with this crate's `rand` version: `StdRng` is not
/// guaranteed stable across `rand` releases). The first tick of each symbol is its start price. The walk never ends.
#[derive(Debug, Clone)]
pub struct RandomWalk {
    rng: StdRng,
    walkers: Vec<Walker>,
    spreads: Spreads,
    time: DateTime<Utc>,
    interval: TimeDelta,
    cursor: usize,
    started: bool,
}

impl RandomWalk {
    /// A walk from each symbol's [`default_start_price`] with [`default_volatility`] and default spreads.
    /// Duplicated symbols are kept once.
    pub fn new(
        seed: u64,
        symbols: impl IntoIterator<Item = Symbol>,
        start: DateTime<Utc>,
        interval: TimeDelta,
    ) -> Result<RandomWalk, FeedError> {
        if interval <= TimeDelta::zero() {
            return Err(FeedError::NonPositiveInterval(interval));
        }
        let mut walkers: Vec<Walker> = Vec::new();
        for symbol in symbols {
            if walkers.iter().all(|w| w.symbol != symbol) {
                let inst = symbol.instrument();
                let bid = inst.round_price(default_start_price(symbol)).max(inst.point());
                walkers.push(Walker { symbol, bid, volatility: default_volatility(inst) });
            }
        }
        Ok(RandomWalk {
            rng: StdRng::seed_from_u64(seed),
            walkers,
            spreads: Spreads::new(),
            time: start,
            interval,
            cursor: 0,
            started: false,
        })
    }

    /// Uses these spreads.
    pub fn with_spreads(mut self, spreads: Spreads) -> RandomWalk {
        self.spreads = spreads;
        self
    }

    /// Sets a symbol's start price (rounded to its digits). Ignored for a symbol not in the walk; only meaningful
    /// before the first tick.
    pub fn with_start_price(mut self, symbol: Symbol, price: Decimal) -> Result<RandomWalk, FeedError> {
        let inst = symbol.instrument();
        let rounded = inst.round_price(price);
        if rounded <= Decimal::ZERO {
            return Err(FeedError::InvalidStartPrice { symbol, value: price });
        }
        for w in self.walkers.iter_mut().filter(|w| w.symbol == symbol) {
            w.bid = rounded;
        }
        Ok(self)
    }

    /// Sets a symbol's per-step relative volatility (0 freezes the price).
    pub fn with_volatility(mut self, symbol: Symbol, volatility: f64) -> Result<RandomWalk, FeedError> {
        if !volatility.is_finite() || volatility < 0.0 {
            return Err(FeedError::InvalidVolatility { symbol, value: volatility });
        }
        for w in self.walkers.iter_mut().filter(|w| w.symbol == symbol) {
            w.volatility = volatility;
        }
        Ok(self)
    }

    fn gaussian(&mut self) -> f64 {
        (0..12).map(|_| self.rng.random::<f64>()).sum::<f64>() - 6.0
    }
}

impl Iterator for RandomWalk {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        if self.walkers.is_empty() {
            return None;
        }
        if self.cursor == self.walkers.len() {
            self.cursor = 0;
            self.time += self.interval;
        }
        if self.cursor == 0 && self.started {
            // A new step: move every walker (in order, so the draws do not depend on how far the caller read).
            for i in 0..self.walkers.len() {
                let z = self.gaussian();
                let w = &mut self.walkers[i];
                let inst = w.symbol.instrument();
                let noise = w.bid.to_f64().unwrap_or(0.0) * w.volatility * z;
                let step = Decimal::from_f64(noise).map(|d| inst.round_price(d)).unwrap_or(Decimal::ZERO);
                w.bid = (w.bid + step).max(inst.point());
            }
        }
        self.started = true;
        let w = &self.walkers[self.cursor];
        self.cursor += 1;
        Some(Tick::from_bid(w.symbol, w.bid, self.spreads.price(w.symbol), self.time))
    }
}

/// One source of a [`PriceFeed`].
#[derive(Debug, Clone)]
pub enum FeedSource {
    /// A candle replay.
    Replay(CandleReplay),
    /// A random walk (boxed: its generator state is large).
    Random(Box<RandomWalk>),
}

impl Iterator for FeedSource {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        match self {
            FeedSource::Replay(r) => r.next(),
            FeedSource::Random(w) => w.next(),
        }
    }
}

/// Ticks of one or more sources merged in time order (ties go to the source added first). Ends when every source
/// has ended.
#[derive(Debug, Clone, Default)]
pub struct PriceFeed {
    sources: Vec<FeedSource>,
    heads: Vec<Option<Tick>>,
}

impl PriceFeed {
    /// An empty feed.
    pub fn new() -> PriceFeed {
        PriceFeed::default()
    }

    /// Adds a source.
    pub fn with(mut self, mut source: FeedSource) -> PriceFeed {
        self.heads.push(source.next());
        self.sources.push(source);
        self
    }

    /// A feed of one candle replay.
    pub fn replay(replay: CandleReplay) -> PriceFeed {
        PriceFeed::new().with(FeedSource::Replay(replay))
    }

    /// A feed of one random walk.
    pub fn random(walk: RandomWalk) -> PriceFeed {
        PriceFeed::new().with(FeedSource::Random(Box::new(walk)))
    }

    /// The next tick (same as [`Iterator::next`]).
    pub fn next_tick(&mut self) -> Option<Tick> {
        let (index, _) = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|t| (i, t.time)))
            .min_by_key(|(i, time)| (*time, *i))?;
        let tick = self.heads[index].take();
        self.heads[index] = self.sources[index].next();
        tick
    }
}

impl Iterator for PriceFeed {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        self.next_tick()
    }
}

#[cfg(test)]
mod tests;
