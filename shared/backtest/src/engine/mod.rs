//! The causal bar-by-bar engine: a strategy decides at the close of bar *i* ([`Signals`]), the engine fills at bar
//! *i + 1*'s open; stops and targets are checked inside every bar; the equity is marked to market at every close.
//!
//! # Timeline of one bar *i*
//! 1. **Swap** (when configured): positions held across a daily rollover (a change of the UTC calendar date between
//!    bar *i − 1* and bar *i*) are charged `swap × lots × nights` (nights = the number of dates crossed; no triple
//!    Wednesday). Positive swap values are a cost, negative ones a credit.
//! 2. **The decision of bar *i − 1*** fills at bar *i*'s open: first `exit_long` / `exit_short` close every open
//!    position of that side ([`ExitReason::Signal`]); then an entry (`enter_long` xor `enter_short`: both at once
//!    are contradictory and ignored) is handled by the [`OrderMode`] — positions it closes end with
//!    [`ExitReason::Reversal`], at the same open. The last bar's decisions are never filled.
//! 3. **Stops and targets** of every open position (including one opened at this open) are checked against the
//!    bar, in this order: the open beyond the stop (a gap: filled at the open, the worse price), the open beyond
//!    the target (filled at the open, the better price), the low/high reaching the stop (filled at the stop), the
//!    high/low reaching the target (filled at the target). **When one bar touches both the stop and the target,
//!    the stop is assumed to have been hit first** (conservative: nothing inside an OHLC bar says which came
//!    first). Stops and targets are compared with the quote the position closes at (bid = price − spread/2 for a
//!    long, ask = price + spread/2 for a short), as a broker does.
//! 4. **Excursions and trailing**: a position that survives the bar records the bar's high and low (MAE/MFE, in
//!    price units from the entry fill; on the exit bar only the exit price counts, the path inside that bar being
//!    unknown). With trailing settings, the live rule [`TrailingState::on_price`] is then fed the bar's **close**
//!    (on the position's closing quote, converted to `Decimal`) and the ATR of that bar: the stop moves on closes,
//!    and a moved stop is checked from the next bar on. A position stopped by a stop that trailing or breakeven
//!    moved ends with [`ExitReason::TrailingStop`].
//! 5. **Equity** = cash + open P/L at the close (on the closing quote), converted to the account currency. When
//!    it is zero or below, every position is closed at that close ([`ExitReason::MarginCall`]), the cash is set to
//!    0 and the run stops (equity 0 to the end) — backtesting.py's out-of-money rule.
//!
//! A decision at bar *i* therefore depends on bars `0..=i` only (the strategy's concern) and every fill, equity
//! and statistic up to bar *i* on bars `0..=i` only: truncating or altering later bars changes nothing before
//! them (property-tested).
//!
//! # backtesting.py 0.6.6 definitions followed
//! With `instrument = None`, [`Commission::Fraction`], [`Sizing::AllEquityUnits`], no spread or slippage and
//! [`OrderMode::Exclusive`], a run reproduces `Backtest(data, strategy, commission=c, margin=1/leverage,
//! exclusive_orders=True).run()` trade for trade and to the last bit of every cash flow
//! (`tests/backtesting_py.rs`):
//! * market orders fill at the next bar's open; exclusive orders close every open trade at the same open first;
//! * `Fraction` commission is `|units| × price × rate` per side: paid from the cash at entry, at exit the cash
//!   gets `units × (exit − entry) − exit commission`; a trade's P/L is `units × (exit − entry) − (exit + entry
//!   commissions)` and its return `sign × (exit / entry − 1) − commissions / (|units| × entry)` (its `pl_pct`);
//! * the default size (`AllEquityUnits`) is `int(margin_available × leverage × (1 − ε) // (price + commission
//!   per unit))` whole units, with Python's float floor division and its `1 − ε` "all equity" fraction; an entry
//!   the margin cannot fund (`units × that price > margin_available × leverage`) or that buys no unit is
//!   skipped, as the broker cancels it; `margin_available = max(0, equity − Σ |units| × price / leverage)`;
//! * equity = `cash + (price × Σ units − Σ units × entry)` at each close; before the first fill it is the
//!   initial cash;
//! * a trade still open at the end stays out of the trade list and is valued in the final equity
//!   (`close_at_end = false`, backtesting.py's `finalize_trades=False`);
//! * equity ≤ 0 closes everything at that close and ends the run.
//!
//! # Where the forex configuration differs
//! * **Lots and steps**: with an [`Instrument`], sizes are lots (`units = lots × contract_size`), floored to the
//!   volume step and capped by the instrument's maximum ([`Instrument::floor_lots`]); a size that floors below the
//!   minimum volume skips the entry. Without one, sizes are whole units (`FixedLots` taken as units).
//! * **Pips**: stop/target/trailing distances in pips use the instrument's pip size (an instrument is required);
//!   stop and target prices are rounded to its digits, as the live SL/TP calculator does.
//! * **Spread** is absolute (price units) and split: a long buys at `price + spread/2` and sells at
//!   `price − spread/2`, a short the reverse (backtesting.py's spread is relative and only paid at entry);
//!   **slippage** moves every fill against the trade. Open P/L is valued at the closing quote.
//! * **Commission** may also be [`Commission::PerLot`] (account currency per lot per side).
//! * **Currency**: prices and raw P/L are in the instrument's quote currency; the account currency is USD.
//!   Quote USD (EURUSD, XAUUSD, US30): as is. Base USD (USDJPY, USDCHF, USDCAD): divided by the price of the fill
//!   (or of the close, for open P/L) — exact, as the rate is the instrument itself. **Crosses** (EURGBP, GBPJPY,
//!   GER40...): a single series carries no rate to USD, so the account is taken to be in the quote currency
//!   (cash, P/L, `PerLot` commission and swap are all read in it); percentages are unaffected.
//! * **Margin** is valued at the fill bar's open (backtesting.py values open trades at that bar's close, which is
//!   a look-ahead; both agree when no position is open at the fill, as always in exclusive mode).
//! * **Intrabar**: backtesting.py has no conflicting stop/target rule of its own to match here: the engine's is
//!   conservative (stop first, see above).
//!
//! # Sizing decisions
//! * [`Sizing::RiskPercent`] needs a stop rule: without one, [`run`] refuses the configuration
//!   ([`EngineError::InvalidConfig`]). Lots come from the live calculator
//!   ([`nusatrade_domain::sizing::position_size`]: risk to the stop, floored to the step, never above the budget);
//!   an entry whose size it refuses (below the minimum volume) is skipped. Without an instrument: whole units.
//! * [`Sizing::EquityFraction`]: `units = equity × fraction × leverage / (price + commission per unit)`.
//! * `Risk::max_lots` caps every size (units without an instrument).
//! * An entry whose stop or target cannot be computed (ATR still warming up, a price at or below zero) is
//!   skipped: opening without the protection the strategy asked for would not be the strategy.
//! * Skipped entries are counted in [`Outcome::skipped_entries`].
//!
//! # Limits
//! At most [`MAX_BARS`] bars, every price within `(0, MAX_PRICE)`; columns and signals of one length;
//! [`Signals::warmup`] below the number of bars (it only sets where the buy & hold statistic starts, as
//! backtesting.py's first trading bar). Settings: cash, spread, slippage, per-lot commission and swap finite and
//! within [`MAX_AMOUNT`]; leverage 1..=[`MAX_LEVERAGE`]; commission fraction in [−0.1, 0.1) (backtesting.py's);
//! `Pyramid` 1..=[`MAX_PYRAMID`]; ATR period 1..=[`MAX_ATR_PERIOD`]; risk percent (0, 10] (the live limit); stop
//! and target distances positive and bounded; trailing settings bounded (pips ≤ 10⁶, ATR multiple ≤ 1000,
//! percentage ≤ 100) so that the live rule's `Decimal` arithmetic stays in range. Anything else is an
//! [`EngineError`], never a panic.

mod sim;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use nusatrade_domain::instrument::Instrument;
use nusatrade_domain::sizing::MAX_RISK_PERCENT;
#[cfg(doc)]
use nusatrade_domain::trailing::TrailingState;
use nusatrade_domain::trailing::TrailingStopSettings;
use nusatrade_ml::candles::Columns;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Largest number of bars a run accepts (about 570 years of hourly bars).
pub const MAX_BARS: usize = 5_000_000;
/// Largest `Pyramid(n)`.
pub const MAX_PYRAMID: usize = 100;
/// Largest leverage (1:10 000).
pub const MAX_LEVERAGE: f64 = 10_000.0;
/// Largest ATR period.
pub const MAX_ATR_PERIOD: usize = 1_000;
/// Prices must be below this (10¹²): the live trailing and sizing rules compute in `Decimal`, whose range ends
/// near 7.9 × 10²⁸ (a stop distance in pips of a price of 10²⁸ would not fit).
pub const MAX_PRICE: f64 = 1e12;
/// Largest initial cash, spread, slippage, per-lot commission, swap and pip distance (absolute values).
pub const MAX_AMOUNT: f64 = 1e15;

/// What the strategy decided at the close of each bar `i` (all vectors have the candles' length); the engine acts
/// on a decision at bar `i + 1`'s open. A bar's decision only ever depends on bars `0..=i`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signals {
    /// Open (or reverse into) a long position.
    pub enter_long: Vec<bool>,
    /// Open (or reverse into) a short position.
    pub enter_short: Vec<bool>,
    /// Close every open long position.
    pub exit_long: Vec<bool>,
    /// Close every open short position.
    pub exit_short: Vec<bool>,
    /// Bars at the start during which the strategy's indicators are still warming up: backtesting.py's
    /// `_indicator_warmup_nbars` (the index of the first bar where every indicator is defined, e.g. 19 for an
    /// SMA(20)). Only the statistics use it: the buy & hold return starts at this bar's close. Must be below the
    /// number of bars (0 for an empty series).
    pub warmup: usize,
}

impl Signals {
    /// No decision on any of `len` bars.
    pub fn none(len: usize) -> Self {
        Signals {
            enter_long: vec![false; len],
            enter_short: vec![false; len],
            exit_long: vec![false; len],
            exit_short: vec![false; len],
            warmup: 0,
        }
    }
}

/// Commission per side (charged at entry and again at exit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Commission {
    /// None.
    #[default]
    None,
    /// Account currency per lot per side (the original's `commission`, "USD per lot").
    PerLot(f64),
    /// A fraction of the traded value per side (backtesting.py's `commission=`).
    Fraction(f64),
}

/// How big each new position is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Sizing {
    /// A fixed number of lots (floored to the instrument's volume step, capped at its maximum).
    FixedLots(Decimal),
    /// Risk this percent of equity to the stop loss (the live position-size calculator's rule); needs a stop.
    RiskPercent(Decimal),
    /// Notional = this fraction of equity × leverage.
    EquityFraction(f64),
    /// backtesting.py's default `size`: as many whole units as the available margin buys (a unit = 1 of the base).
    AllEquityUnits,
}

/// Stop-loss distance rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum StopRule {
    /// No stop.
    #[default]
    None,
    /// This many pips from the entry.
    Pips(f64),
    /// ATR (at the decision bar) × this.
    Atr(f64),
    /// This percent of the entry price.
    Percent(f64),
}

/// Take-profit distance rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum TargetRule {
    /// No target.
    #[default]
    None,
    /// This many pips from the entry.
    Pips(f64),
    /// ATR (at the decision bar) × this.
    Atr(f64),
    /// This percent of the entry price.
    Percent(f64),
    /// This multiple of the stop distance (needs a stop).
    RiskReward(f64),
}

/// Risk management of every position (the strategy's `risk_management`, compiled).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Risk {
    /// Stop loss.
    pub stop_loss: StopRule,
    /// Take profit.
    pub take_profit: TargetRule,
    /// Trailing stop and breakeven: the live rules (`nusatrade_domain::trailing`), applied bar by bar.
    pub trailing: Option<TrailingStopSettings>,
    /// Cap on a position's lots (the strategy's `max_position_size`).
    pub max_lots: Option<Decimal>,
}

/// What a new entry does to the positions already open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum OrderMode {
    /// Every entry first closes all open positions (backtesting.py's `exclusive_orders=True`).
    #[default]
    Exclusive,
    /// An opposite entry closes and reverses; a same-side entry while open is ignored (one position at a time).
    Reverse,
    /// Up to this many positions open at once (same side adds, opposite side closes first).
    Pyramid(usize),
}

/// Settings of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Starting balance, account currency.
    pub initial_cash: f64,
    /// Commission per side.
    pub commission: Commission,
    /// Spread in price units (a long pays the ask = price + spread / 2, a short the bid, on entry and exit).
    pub spread: f64,
    /// Slippage in price units, always against the trade, on every fill.
    pub slippage: f64,
    /// Leverage (margin requirement = 1 / leverage); 1 = no leverage.
    pub leverage: f64,
    /// Position sizing.
    pub sizing: Sizing,
    /// What a new entry does to open positions.
    pub mode: OrderMode,
    /// Risk management.
    pub risk: Risk,
    /// Swap per lot per night, account currency (long, short), charged at each daily rollover; `None`: no swap.
    pub swap: Option<(f64, f64)>,
    /// ATR period for ATR-based stops, targets and trailing (14).
    pub atr_period: usize,
    /// Close positions still open at the last bar's close and list them (`false`: backtesting.py's default —
    /// left out of the trade list, valued in the final equity).
    pub close_at_end: bool,
}

impl EngineConfig {
    /// backtesting.py's configuration (`Backtest(data, strategy, cash, commission=fraction, exclusive_orders=True)`,
    /// margin 1, default `size`): fills at the next open, commission as a fraction of traded value at entry and
    /// exit, all-equity sizing in whole units, exclusive orders, no spread, slippage, stops or swap, the open trade
    /// left out of the trade list (valued in the final equity).
    pub fn backtesting_py(initial_cash: f64, commission_fraction: f64) -> Self {
        EngineConfig {
            initial_cash,
            commission: if commission_fraction > 0.0 {
                Commission::Fraction(commission_fraction)
            } else {
                Commission::None
            },
            spread: 0.0,
            slippage: 0.0,
            leverage: 1.0,
            sizing: Sizing::AllEquityUnits,
            mode: OrderMode::Exclusive,
            risk: Risk::default(),
            swap: None,
            atr_period: 14,
            close_at_end: false,
        }
    }
}

/// Why a trade ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The strategy's exit rule.
    Signal,
    /// Closed by an opposite or exclusive entry.
    Reversal,
    /// Stop loss (including a moved one).
    StopLoss,
    /// Trailing or breakeven stop.
    TrailingStop,
    /// Take profit.
    TakeProfit,
    /// Still open at the end (`close_at_end`).
    EndOfData,
    /// The equity reached zero: everything closed at that bar's close and the run stopped.
    MarginCall,
}

/// One closed trade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    /// Long or short.
    pub side: nusatrade_domain::money::Side,
    /// Size in units of the base (negative never: see `side`).
    pub units: f64,
    /// Size in lots (units / contract size), when an instrument is known.
    pub lots: Option<Decimal>,
    /// Bar index of the entry fill, and its time and price.
    pub entry_bar: usize,
    pub entry_time: DateTime<Utc>,
    pub entry_price: f64,
    /// Bar index of the exit fill, and its time and price.
    pub exit_bar: usize,
    pub exit_time: DateTime<Utc>,
    pub exit_price: f64,
    /// Profit or loss, account currency, after commissions and swap.
    pub pnl: f64,
    /// P/L as a fraction of the entry value: `sign × (exit / entry − 1) − (commissions + swap) / entry value`
    /// (backtesting.py's `pl_pct`).
    pub return_pct: f64,
    /// Commission paid (both sides), account currency.
    pub commission: f64,
    /// Swap paid (positive) or received (negative) while open, account currency.
    pub swap: f64,
    /// Maximum adverse and favourable excursion, price units (both ≥ 0).
    pub mae: f64,
    pub mfe: f64,
    /// Why it ended.
    pub exit_reason: ExitReason,
}

/// A run's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Closed trades in exit order.
    pub trades: Vec<Trade>,
    /// Equity at each bar's close (length = bars).
    pub equity: Vec<f64>,
    /// Drawdown from the running peak at each bar, as a fraction (0 … 1).
    pub drawdown: Vec<f64>,
    /// Bars on which a position was open (at any moment of the bar; a position still open at the end counts).
    pub exposure_bars: usize,
    /// Entries decided but not opened: the margin could not fund them, the size came to nothing, or their stop
    /// or target could not be computed.
    pub skipped_entries: usize,
    /// The strategy's warm-up ([`Signals::warmup`]), kept for the statistics.
    pub warmup: usize,
}

/// Errors a run refuses with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A setting is out of range.
    #[error("{0}")]
    InvalidConfig(String),
    /// Signals and candles differ in length.
    #[error("signals cover {signals} bars but the data has {bars}")]
    LengthMismatch { signals: usize, bars: usize },
    /// The bar columns are unusable: different lengths, too many bars, or a price that is not a number within
    /// `(0, MAX_PRICE)` (the message names the first offending bar).
    #[error("invalid bars: {0}")]
    InvalidBars(String),
}

/// Runs the engine over `bars` (`instrument` gives contract size, pip size, volume steps and the conversion of
/// P/L to the account currency; `None` = a generic instrument, 1 unit, P/L in the quote currency).
///
/// See the module documentation for the rules. Errors: an out-of-range setting, mismatched lengths, or bars with
/// a price that is not a number within `(0, MAX_PRICE)`.
pub fn run(
    bars: &Columns,
    signals: &Signals,
    instrument: Option<&'static Instrument>,
    config: &EngineConfig,
) -> Result<Outcome, EngineError> {
    check_bars(bars)?;
    check_signals(signals, bars.close.len())?;
    check_config(instrument, config)?;
    Ok(sim::simulate(bars, signals, instrument, config))
}

fn check_bars(bars: &Columns) -> Result<(), EngineError> {
    let n = bars.close.len();
    if n > MAX_BARS {
        return Err(EngineError::InvalidBars(format!("{n} bars; at most {MAX_BARS} are accepted")));
    }
    let lens = [bars.time.len(), bars.open.len(), bars.high.len(), bars.low.len()];
    if lens.iter().any(|&l| l != n) {
        return Err(EngineError::InvalidBars(format!(
            "columns differ in length (time {}, open {}, high {}, low {}, close {n})",
            lens[0], lens[1], lens[2], lens[3]
        )));
    }
    if [&bars.open, &bars.high, &bars.low, &bars.close].iter().all(|c| prices_in_range(c)) {
        return Ok(());
    }
    let ok = |x: f64| x > 0.0 && x < MAX_PRICE;
    let index = (0..n).find(|&i| !(ok(bars.open[i]) && ok(bars.high[i]) && ok(bars.low[i]) && ok(bars.close[i])));
    Err(EngineError::InvalidBars(format!(
        "bar {}: every price must be a number above 0 and below {MAX_PRICE:e}",
        index.unwrap_or(0)
    )))
}

/// Every value of `col` is within `(0, MAX_PRICE)`, in a pass that vectorises: four lanes of running minima and
/// maxima (a NaN never replaces either) and of `x × 0`, which is 0 for finite numbers and NaN for NaN and ±∞.
fn prices_in_range(col: &[f64]) -> bool {
    let mut lowest = [f64::INFINITY; 4];
    let mut highest = [f64::NEG_INFINITY; 4];
    let mut zero = [0.0_f64; 4];
    let chunks = col.chunks_exact(4);
    let rest = chunks.remainder();
    let mut lane = |k: usize, x: f64| {
        lowest[k] = if x < lowest[k] { x } else { lowest[k] };
        highest[k] = if x > highest[k] { x } else { highest[k] };
        zero[k] += x * 0.0;
    };
    for c in chunks {
        for (k, &x) in c.iter().enumerate() {
            lane(k, x);
        }
    }
    for &x in rest {
        lane(0, x);
    }
    lowest.iter().all(|l| *l > 0.0) && highest.iter().all(|h| *h < MAX_PRICE) && zero.iter().all(|z| *z == 0.0)
}

fn check_signals(s: &Signals, bars: usize) -> Result<(), EngineError> {
    for len in [s.enter_long.len(), s.enter_short.len(), s.exit_long.len(), s.exit_short.len()] {
        if len != bars {
            return Err(EngineError::LengthMismatch { signals: len, bars });
        }
    }
    if s.warmup > 0 && s.warmup >= bars {
        return Err(EngineError::InvalidConfig(format!("signals.warmup is {} but the data has {bars} bars", s.warmup)));
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidConfig(msg.into())
}

/// `x` finite and within `[lo, hi]`.
fn within(x: f64, lo: f64, hi: f64) -> bool {
    x.is_finite() && x >= lo && x <= hi
}

fn check_config(instrument: Option<&'static Instrument>, c: &EngineConfig) -> Result<(), EngineError> {
    if !(within(c.initial_cash, 0.0, MAX_AMOUNT) && c.initial_cash > 0.0) {
        return Err(invalid(format!("initial_cash must be > 0 and at most {MAX_AMOUNT:e}")));
    }
    if !within(c.spread, 0.0, MAX_AMOUNT) {
        return Err(invalid("spread must be a finite number ≥ 0"));
    }
    if !within(c.slippage, 0.0, MAX_AMOUNT) {
        return Err(invalid("slippage must be a finite number ≥ 0"));
    }
    if !within(c.leverage, 1.0, MAX_LEVERAGE) {
        return Err(invalid(format!("leverage must be within 1..={MAX_LEVERAGE}")));
    }
    match c.commission {
        Commission::None => {}
        Commission::PerLot(r) if within(r, 0.0, MAX_AMOUNT) => {}
        Commission::PerLot(_) => return Err(invalid("commission per lot must be a finite number ≥ 0")),
        // backtesting.py's range: −10 % (rebates) up to, excluding, 10 %.
        Commission::Fraction(r) if r.is_finite() && (-0.1..0.1).contains(&r) => {}
        Commission::Fraction(_) => return Err(invalid("commission fraction must be within -0.1 and 0.1")),
    }
    if !(1..=MAX_ATR_PERIOD).contains(&c.atr_period) {
        return Err(invalid(format!("atr_period must be within 1..={MAX_ATR_PERIOD}")));
    }
    if let OrderMode::Pyramid(n) = c.mode
        && !(1..=MAX_PYRAMID).contains(&n)
    {
        return Err(invalid(format!("pyramid size must be within 1..={MAX_PYRAMID}")));
    }
    if let Some((long, short)) = c.swap
        && !(within(long, -MAX_AMOUNT, MAX_AMOUNT) && within(short, -MAX_AMOUNT, MAX_AMOUNT))
    {
        return Err(invalid("swap values must be finite numbers"));
    }
    check_risk(instrument, c)?;
    check_sizing(instrument, c)
}

fn check_distance(name: &str, rule: &str, v: f64, max: f64) -> Result<(), EngineError> {
    if within(v, 0.0, max) && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(format!("{name} {rule} must be > 0 and at most {max}")))
    }
}

fn check_risk(instrument: Option<&'static Instrument>, c: &EngineConfig) -> Result<(), EngineError> {
    let need_instrument = |what: &str| {
        if instrument.is_none() {
            Err(invalid(format!("{what} needs an instrument (pips and digits)")))
        } else {
            Ok(())
        }
    };
    match c.risk.stop_loss {
        StopRule::None => {}
        StopRule::Pips(p) => {
            need_instrument("a stop loss in pips")?;
            check_distance("stop loss", "pips", p, MAX_AMOUNT)?;
        }
        StopRule::Atr(m) => check_distance("stop loss", "ATR multiple", m, 1_000.0)?,
        StopRule::Percent(p) => check_distance("stop loss", "percent", p, 99.0)?,
    }
    match c.risk.take_profit {
        TargetRule::None => {}
        TargetRule::Pips(p) => {
            need_instrument("a take profit in pips")?;
            check_distance("take profit", "pips", p, MAX_AMOUNT)?;
        }
        TargetRule::Atr(m) => check_distance("take profit", "ATR multiple", m, 1_000.0)?,
        TargetRule::Percent(p) => check_distance("take profit", "percent", p, 1_000.0)?,
        TargetRule::RiskReward(r) => {
            if c.risk.stop_loss == StopRule::None {
                return Err(invalid("a risk:reward take profit needs a stop loss"));
            }
            check_distance("take profit", "risk:reward", r, 1_000.0)?;
        }
    }
    if let Some(t) = c.risk.trailing {
        need_instrument("trailing stop and breakeven")?;
        // The live rule computes in Decimal: bounded settings keep its products far from Decimal's range.
        let pips = Decimal::from(1_000_000);
        let bounds = [
            ("activation_pips", t.activation_pips, pips),
            ("trail_distance_pips", t.trail_distance_pips, pips),
            ("breakeven_pips", t.breakeven_pips, pips),
            ("lock_profit_pips", t.lock_profit_pips, pips),
            ("atr_multiplier", t.atr_multiplier, Decimal::from(1_000)),
            ("percentage", t.percentage, Decimal::ONE_HUNDRED),
        ];
        if let Some((name, _, max)) = bounds.iter().find(|(_, v, max)| *v < Decimal::ZERO || v > max) {
            return Err(invalid(format!("trailing {name} must be within 0..={max}")));
        }
    }
    if let Some(max) = c.risk.max_lots {
        if max <= Decimal::ZERO {
            return Err(invalid("max_lots must be > 0"));
        }
        if let Some(i) = instrument {
            i.floor_lots(max).map_err(|e| invalid(format!("max_lots {max}: {e}")))?;
        }
    }
    Ok(())
}

fn check_sizing(instrument: Option<&'static Instrument>, c: &EngineConfig) -> Result<(), EngineError> {
    match c.sizing {
        Sizing::FixedLots(l) => {
            if l <= Decimal::ZERO || l > Decimal::from(1_000_000_000_i64) {
                return Err(invalid("fixed lots must be > 0 and at most 1e9"));
            }
            if let Some(i) = instrument {
                i.floor_lots(l).map_err(|e| invalid(format!("fixed lots {l}: {e}")))?;
            }
        }
        Sizing::RiskPercent(p) => {
            if p <= Decimal::ZERO || p > MAX_RISK_PERCENT {
                return Err(invalid(format!("risk percent must be > 0 and at most {MAX_RISK_PERCENT}")));
            }
            if c.risk.stop_loss == StopRule::None {
                return Err(invalid("risk-percent sizing needs a stop loss"));
            }
        }
        Sizing::EquityFraction(f) => {
            if !(within(f, 0.0, 1.0) && f > 0.0) {
                return Err(invalid("equity fraction must be > 0 and at most 1"));
            }
        }
        Sizing::AllEquityUnits => {}
    }
    Ok(())
}

/// The stop-loss and take-profit prices of an entry at `fill` (`long` or short) under `risk`: pips by the
/// instrument's pip size, `atr` (the decision bar's ATR) multiples, percent of the fill, or a multiple of the stop
/// distance; rounded to the instrument's digits. `None` when a rule cannot be computed (no ATR yet, a level at or
/// below zero). The engine places every entry's levels with it, and a live ML bot whose model references a strategy
/// places its orders' levels with it too — the same prices for the same bar.
pub fn levels(
    risk: &Risk,
    instrument: Option<&Instrument>,
    long: bool,
    fill: f64,
    atr: Option<f64>,
) -> Option<(Option<f64>, Option<f64>)> {
    use rust_decimal::prelude::ToPrimitive;
    let sign = if long { 1.0 } else { -1.0 };
    let pip = instrument.and_then(|i| i.pip_size.to_f64()).unwrap_or(f64::NAN);
    let atr = || atr.filter(|a| *a > 0.0);
    let stop_distance = match risk.stop_loss {
        StopRule::None => None,
        StopRule::Pips(p) => Some(p * pip),
        StopRule::Atr(m) => Some(atr()? * m),
        StopRule::Percent(x) => Some(fill * x / 100.0),
    };
    let sl = match stop_distance {
        Some(dist) => Some(round_price(instrument, fill - sign * dist).filter(|p| *p > 0.0)?),
        None => None,
    };
    let target_distance = match risk.take_profit {
        TargetRule::None => None,
        TargetRule::Pips(p) => Some(p * pip),
        TargetRule::Atr(m) => Some(atr()? * m),
        TargetRule::Percent(x) => Some(fill * x / 100.0),
        TargetRule::RiskReward(r) => Some((fill - sl?).abs() * r),
    };
    let tp = match target_distance {
        Some(dist) => Some(round_price(instrument, fill + sign * dist).filter(|p| *p > 0.0)?),
        None => None,
    };
    Some((sl, tp))
}

/// A price rounded to the instrument's digits (the live rule, banker's rounding); as is without one.
pub(crate) fn round_price(instrument: Option<&Instrument>, p: f64) -> Option<f64> {
    use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
    if !p.is_finite() {
        return None;
    }
    match instrument {
        Some(i) => i.round_price(Decimal::from_f64(p)?).to_f64(),
        None => Some(p),
    }
}
