//! The rule language: a strategy rule's `condition` such as `RSI(14) < 30 AND CLOSE > EMA(50)`, parsed **once**
//! into a typed expression tree ([`Cond`] / [`Num`]) and then evaluated column-wise over a whole bar series by an
//! [`Evaluator`]. Nothing is interpreted from text at run time.
//!
//! # Syntax
//!
//! Identifiers and keywords are case-insensitive (`rsi(14)` = `RSI(14)`, `and` = `AND`). Precedence, loosest
//! first:
//!
//! | level | operators | notes |
//! |---|---|---|
//! | or | `OR`, `\|\|` | left-associative |
//! | and | `AND`, `&&` | left-associative |
//! | not | `NOT`, `!` | prefix; `NOT RSI(14) < 30` negates the comparison |
//! | comparison | `<` `<=` `>` `>=` `==` (or `=`) `!=` (or `<>`) | between two numbers; not chainable (`1 < x < 2` is an error) |
//! | additive | `+` `-` | |
//! | multiplicative | `*` `/` | `x / 0` is undefined (`NaN`) |
//! | unary | `-` | |
//! | lookback | `x[n]` | the value `n` bars ago (`CLOSE[1]` = previous close); `n` a whole number `0..=500` or a parameter |
//!
//! Parentheses group. Numbers: `14`, `0.70`, `.5`, `1e-3`.
//!
//! **Lookback.** The one lookback syntax is the postfix `[n]`, on any number or condition:
//! `CLOSE > HIGHEST(HIGH, 20)[1]` (above the previous bar's 20-bar high), `CROSSES_ABOVE(SMA(10), SMA(20))[1]`.
//! The first `n` bars have no value (`NaN` for numbers, false for conditions).
//!
//! # Names
//!
//! * Prices: `OPEN`, `HIGH`, `LOW`, `CLOSE` (alias `PRICE`), `VOLUME`.
//! * Time of the bar's open, UTC: `HOUR` (0–23), `DAY_OF_WEEK` (Monday 0 … Sunday 6, Python's `weekday()`).
//! * External series supplied by the caller ([`External`]): `ml_confidence`, `ml_signal` (1 buy, −1 sell, 0
//!   hold), `vol_regime_low`, `vol_regime_medium`, `vol_regime_high`.
//! * Strategy parameters by name (`RSI(rsi_period) < oversold`); a parameter may not reuse a built-in name
//!   ([`is_reserved`]).
//! * Indicators ([`Indicator`], TA-Lib definitions from `nusatrade_ml::indicators`), all on the close unless
//!   noted: `SMA(p)`, `EMA(p)`, `RSI(p)`, `MACD(f,s,g)` / `MACD_SIGNAL(f,s,g)` / `MACD_HIST(f,s,g)`, `ATR(p)`,
//!   `ADX(p)`, `PLUS_DI(p)`, `MINUS_DI(p)` (high/low/close), `STOCH_K(k)` / `STOCH_D(k,d)` (fast stochastic),
//!   `BB_UPPER(p,k)` / `BB_MIDDLE(p,k)` / `BB_LOWER(p,k)`, `CCI(p)`, `WILLR(p)` (high/low/close), `MOM(p)`,
//!   `ROC(p)`, `STDDEV(p)` (population). Written without arguments (`RSI`, `MACD`) or with empty parentheses
//!   they take their defaults (the original's columns: RSI 14, EMA/SMA 20, MACD 12/26/9, ADX/ATR 14, STOCH 14/3,
//!   BB 20/2, CCI 20, WILLR 14, MOM/ROC 10, STDDEV 20); otherwise every argument must be given. Indicator
//!   arguments are constants or parameter names: periods are whole numbers `1..=500`, the Bollinger `k` is in
//!   `0..=10`.
//! * Functions: `HIGHEST(x, p)` / `LOWEST(x, p)` (of any number, over `p` bars including the current one),
//!   `CROSSES_ABOVE(a, b)` / `CROSSES_BELOW(a, b)` (conditions), `ABS(x)`, `MIN(a, b)`, `MAX(a, b)`.
//!
//! # Semantics
//!
//! Every number is a series aligned with the bars; every value at bar *i* depends only on bars `0..=i`.
//! Indicators are undefined (`NaN`) during their warm-up; arithmetic on `NaN` is `NaN` (`MIN`/`MAX` included); a
//! comparison with `NaN` is **false** (`!=` included) — so `NOT (RSI(14) > 70)` is true during the warm-up.
//! `a == b` means `|a − b| < 0.0001` ([`EQUALITY_TOLERANCE`], the original's tolerance), `a != b` its negation
//! for defined values. `CROSSES_ABOVE(a, b)` at bar *i* ⇔ `a[i−1] < b[i−1]` and `a[i] > b[i]` (backtesting.py's
//! `crossover`); `CROSSES_BELOW` mirrors it; both are false at bar 0.
//!
//! # Limits and errors
//!
//! A condition has at most [`MAX_CONDITION_CHARS`] characters, [`MAX_DEPTH`] levels of nesting (parentheses,
//! function calls, prefix operators — checked before descending, so a 10,000-deep `((((…` is an error, not a
//! stack overflow) and [`MAX_NODES`] terms. Errors ([`RuleError`]) name the 1-based character position and the
//! offending token: `unknown indicator 'RSX' at 1`, `expected ')' at 12, found 'AND'`,
//! `wrong number of arguments to SMA at 5: expected 1, got 2`, `type error at 1: AND needs a condition on each
//! side, found a number`. A syntax error stops the parse (one error); name, argument and type errors are all
//! reported.

use std::fmt;

mod eval;
mod lexer;
mod parser;
#[cfg(test)]
pub(crate) mod tests;

pub use eval::{EvalError, Evaluator, ExternalSeries};

/// Most characters in one condition.
pub const MAX_CONDITION_CHARS: usize = 500;
/// Deepest nesting of parentheses, calls and prefix operators.
pub const MAX_DEPTH: usize = 32;
/// Most terms (syntax nodes) in one condition.
pub const MAX_NODES: usize = 200;
/// Largest indicator period.
pub const MAX_PERIOD: usize = 500;
/// Largest lookback `[n]`.
pub const MAX_LOOKBACK: usize = 500;
/// Largest Bollinger-band multiplier `k`.
pub const MAX_MULTIPLIER: f64 = 10.0;
/// `a == b` ⇔ `|a − b| <` this (the original rule engine's tolerance).
pub const EQUALITY_TOLERANCE: f64 = 1e-4;

/// Parse limits (the defaults are the `MAX_*` constants; tests raise them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most characters.
    pub max_chars: usize,
    /// Deepest nesting.
    pub max_depth: usize,
    /// Most syntax nodes.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_chars: MAX_CONDITION_CHARS, max_depth: MAX_DEPTH, max_nodes: MAX_NODES }
    }
}

/// Why a condition was refused. Positions are 1-based character positions in the condition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// Nothing but blanks.
    #[error("the condition is empty")]
    Empty,
    /// Longer than the limit.
    #[error("the condition is {len} characters long; the limit is {max}")]
    TooLong {
        /// Characters given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character that starts no token.
    #[error("unexpected character '{ch}' at {pos}")]
    UnexpectedChar {
        /// The character.
        ch: char,
        /// Its position.
        pos: usize,
    },
    /// A number that is not a finite `f64`.
    #[error("invalid number '{text}' at {pos}")]
    BadNumber {
        /// As written.
        text: String,
        /// Its position.
        pos: usize,
    },
    /// The grammar wanted something else here.
    #[error("expected {expected} at {pos}, found {found}")]
    Expected {
        /// What would have been accepted.
        expected: String,
        /// What was there, quoted (`'AND'`), or `the end of the condition`.
        found: String,
        /// Position of what was found.
        pos: usize,
    },
    /// `a < b < c`.
    #[error("comparisons cannot be chained at {pos}: combine them with AND")]
    ChainedComparison {
        /// Position of the second comparison operator.
        pos: usize,
    },
    /// Nesting deeper than the limit.
    #[error("nesting deeper than {max} levels at {pos}")]
    TooDeep {
        /// Where the limit was passed.
        pos: usize,
        /// The limit.
        max: usize,
    },
    /// More terms than the limit.
    #[error("more than {max} terms in the condition (at {pos})")]
    TooManyNodes {
        /// Where the limit was passed.
        pos: usize,
        /// The limit.
        max: usize,
    },
    /// `NAME(` with a name that is no indicator or function.
    #[error("unknown indicator '{name}' at {pos}")]
    UnknownIndicator {
        /// As written.
        name: String,
        /// Its position.
        pos: usize,
    },
    /// A bare name that is no series, indicator, external input or parameter.
    #[error("unknown name '{name}' at {pos}")]
    UnknownName {
        /// As written.
        name: String,
        /// Its position.
        pos: usize,
    },
    /// A call with the wrong argument count.
    #[error("wrong number of arguments to {name} at {pos}: expected {expected}, got {got}")]
    ArgumentCount {
        /// The function (canonical spelling).
        name: &'static str,
        /// Position of the call.
        pos: usize,
        /// How many it takes.
        expected: usize,
        /// How many were given.
        got: usize,
    },
    /// An indicator argument or lookback that is not an allowed constant or a parameter.
    #[error("{what} at {pos} {problem}")]
    BadArgument {
        /// `argument 1 of SMA`, `the lookback`.
        what: String,
        /// Position of the argument.
        pos: usize,
        /// What is wrong (`must be a whole number from 1 to 500, got 0`).
        problem: String,
    },
    /// A number where a condition is needed or the reverse.
    #[error("type error at {pos}: {message}")]
    Type {
        /// Position of the offending operand.
        pos: usize,
        /// What was expected and found.
        message: String,
    },
}

/// A price column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriceField {
    /// Open.
    Open,
    /// High.
    High,
    /// Low.
    Low,
    /// Close.
    Close,
    /// Volume.
    Volume,
}

impl PriceField {
    /// Canonical name.
    pub fn name(self) -> &'static str {
        match self {
            PriceField::Open => "OPEN",
            PriceField::High => "HIGH",
            PriceField::Low => "LOW",
            PriceField::Close => "CLOSE",
            PriceField::Volume => "VOLUME",
        }
    }
}

/// A calendar field of the bar's open time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeField {
    /// Hour 0–23.
    Hour,
    /// Monday 0 … Sunday 6.
    DayOfWeek,
}

impl TimeField {
    /// Canonical name.
    pub fn name(self) -> &'static str {
        match self {
            TimeField::Hour => "HOUR",
            TimeField::DayOfWeek => "DAY_OF_WEEK",
        }
    }
}

/// A series the caller supplies alongside the bars (ML model outputs and regime flags, one value per bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum External {
    /// Model confidence of its predicted class, 0…1.
    MlConfidence,
    /// Model signal: 1 buy, −1 sell, 0 hold.
    MlSignal,
    /// 1 when volatility is in the low regime, else 0.
    VolRegimeLow,
    /// 1 when volatility is in the medium regime, else 0.
    VolRegimeMedium,
    /// 1 when volatility is in the high regime, else 0.
    VolRegimeHigh,
}

impl External {
    /// Every external series.
    pub const ALL: [External; 5] = [
        External::MlConfidence,
        External::MlSignal,
        External::VolRegimeLow,
        External::VolRegimeMedium,
        External::VolRegimeHigh,
    ];

    /// The name used in rules and as the key of [`ExternalSeries`].
    pub fn name(self) -> &'static str {
        match self {
            External::MlConfidence => "ml_confidence",
            External::MlSignal => "ml_signal",
            External::VolRegimeLow => "vol_regime_low",
            External::VolRegimeMedium => "vol_regime_medium",
            External::VolRegimeHigh => "vol_regime_high",
        }
    }

    /// The series named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<External> {
        External::ALL.into_iter().find(|e| e.name().eq_ignore_ascii_case(name))
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What an indicator argument (or a lookback) must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgKind {
    /// A whole number `1..=`[`MAX_PERIOD`].
    Period,
    /// A number `0..=`[`MAX_MULTIPLIER`] (Bollinger `k`).
    Multiplier,
    /// A whole number `0..=`[`MAX_LOOKBACK`].
    Lookback,
}

impl ArgKind {
    /// Checks `value`; the error completes a sentence ("must be a whole number from 1 to 500, got 0").
    pub fn check(self, value: f64) -> Result<(), String> {
        let (lo, hi) = self.bounds();
        let whole = self != ArgKind::Multiplier;
        let ok = value.is_finite() && (lo..=hi).contains(&value) && (!whole || value.fract() == 0.0);
        if ok {
            return Ok(());
        }
        let what = if whole { "a whole number" } else { "a number" };
        Err(format!("must be {what} from {lo} to {hi}, got {value}"))
    }

    /// Smallest and largest allowed values.
    pub fn bounds(self) -> (f64, f64) {
        match self {
            ArgKind::Period => (1.0, MAX_PERIOD as f64),
            ArgKind::Multiplier => (0.0, MAX_MULTIPLIER),
            ArgKind::Lookback => (0.0, MAX_LOOKBACK as f64),
        }
    }

    /// Whether only whole numbers are allowed.
    pub fn integer(self) -> bool {
        self != ArgKind::Multiplier
    }
}

/// One formal argument of an indicator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArgSpec {
    /// What it must be.
    pub kind: ArgKind,
    /// Value when the indicator is written without arguments.
    pub default: f64,
}

const fn period(default: f64) -> ArgSpec {
    ArgSpec { kind: ArgKind::Period, default }
}

/// A technical indicator of the language (TA-Lib definitions, `nusatrade_ml::indicators`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Indicator {
    /// `SMA(p)` of the close.
    Sma,
    /// `EMA(p)` of the close (SMA-seeded).
    Ema,
    /// `RSI(p)` (Wilder).
    Rsi,
    /// `MACD(fast, slow, signal)`: the MACD line.
    Macd,
    /// `MACD_SIGNAL(fast, slow, signal)`.
    MacdSignal,
    /// `MACD_HIST(fast, slow, signal)`.
    MacdHist,
    /// `ATR(p)`.
    Atr,
    /// `ADX(p)`.
    Adx,
    /// `PLUS_DI(p)`.
    PlusDi,
    /// `MINUS_DI(p)`.
    MinusDi,
    /// `STOCH_K(k)`: fast %K.
    StochK,
    /// `STOCH_D(k, d)`: SMA(d) of %K.
    StochD,
    /// `BB_UPPER(p, k)`.
    BbUpper,
    /// `BB_MIDDLE(p, k)`.
    BbMiddle,
    /// `BB_LOWER(p, k)`.
    BbLower,
    /// `CCI(p)`.
    Cci,
    /// `WILLR(p)`: Williams %R.
    Willr,
    /// `MOM(p)`: momentum of the close.
    Mom,
    /// `ROC(p)`: rate of change of the close, percent.
    Roc,
    /// `STDDEV(p)`: population standard deviation of the close.
    Stddev,
}

impl Indicator {
    /// Every indicator.
    pub const ALL: [Indicator; 20] = [
        Indicator::Sma,
        Indicator::Ema,
        Indicator::Rsi,
        Indicator::Macd,
        Indicator::MacdSignal,
        Indicator::MacdHist,
        Indicator::Atr,
        Indicator::Adx,
        Indicator::PlusDi,
        Indicator::MinusDi,
        Indicator::StochK,
        Indicator::StochD,
        Indicator::BbUpper,
        Indicator::BbMiddle,
        Indicator::BbLower,
        Indicator::Cci,
        Indicator::Willr,
        Indicator::Mom,
        Indicator::Roc,
        Indicator::Stddev,
    ];

    /// Canonical (upper-case) name.
    pub fn name(self) -> &'static str {
        match self {
            Indicator::Sma => "SMA",
            Indicator::Ema => "EMA",
            Indicator::Rsi => "RSI",
            Indicator::Macd => "MACD",
            Indicator::MacdSignal => "MACD_SIGNAL",
            Indicator::MacdHist => "MACD_HIST",
            Indicator::Atr => "ATR",
            Indicator::Adx => "ADX",
            Indicator::PlusDi => "PLUS_DI",
            Indicator::MinusDi => "MINUS_DI",
            Indicator::StochK => "STOCH_K",
            Indicator::StochD => "STOCH_D",
            Indicator::BbUpper => "BB_UPPER",
            Indicator::BbMiddle => "BB_MIDDLE",
            Indicator::BbLower => "BB_LOWER",
            Indicator::Cci => "CCI",
            Indicator::Willr => "WILLR",
            Indicator::Mom => "MOM",
            Indicator::Roc => "ROC",
            Indicator::Stddev => "STDDEV",
        }
    }

    /// The indicator spelled `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Indicator> {
        Indicator::ALL.into_iter().find(|i| i.name().eq_ignore_ascii_case(name))
    }

    /// Its arguments, with the defaults used when it is written without any.
    pub fn args(self) -> &'static [ArgSpec] {
        const P20: [ArgSpec; 1] = [period(20.0)];
        const P14: [ArgSpec; 1] = [period(14.0)];
        const P10: [ArgSpec; 1] = [period(10.0)];
        const MACD: [ArgSpec; 3] = [period(12.0), period(26.0), period(9.0)];
        const STOCH_D: [ArgSpec; 2] = [period(14.0), period(3.0)];
        const BB: [ArgSpec; 2] = [period(20.0), ArgSpec { kind: ArgKind::Multiplier, default: 2.0 }];
        match self {
            Indicator::Sma | Indicator::Ema | Indicator::Cci | Indicator::Stddev => &P20,
            Indicator::Rsi
            | Indicator::Atr
            | Indicator::Adx
            | Indicator::PlusDi
            | Indicator::MinusDi
            | Indicator::StochK
            | Indicator::Willr => &P14,
            Indicator::Mom | Indicator::Roc => &P10,
            Indicator::Macd | Indicator::MacdSignal | Indicator::MacdHist => &MACD,
            Indicator::StochD => &STOCH_D,
            Indicator::BbUpper | Indicator::BbMiddle | Indicator::BbLower => &BB,
        }
    }
}

/// A strategy parameter referenced by a rule: its slot in the parameter-value array and its declared name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParamRef {
    /// Index into the values passed to the evaluator.
    pub slot: usize,
    /// The declared name (as printed).
    pub name: String,
}

/// An indicator argument or lookback: a constant or a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A constant, already range-checked.
    Const(f64),
    /// A parameter, range-checked when its value is known (see [`Evaluator`] and [`param_usages`]).
    Param(ParamRef),
}

/// `+ - * /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/` (`NaN` on a zero divisor).
    Div,
}

impl ArithOp {
    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }
}

/// `< <= > >= == !=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `==` within [`EQUALITY_TOLERANCE`].
    Eq,
    /// `!=` (both sides defined and not `==`).
    Ne,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

/// A numeric expression (a series over the bars, or a constant).
#[derive(Debug, Clone, PartialEq)]
pub enum Num {
    /// A literal.
    Const(f64),
    /// A strategy parameter's value.
    Param(ParamRef),
    /// A price column.
    Price(PriceField),
    /// A calendar field of the bar time.
    Time(TimeField),
    /// A caller-supplied series.
    External(External),
    /// An indicator with its arguments (as many as [`Indicator::args`]).
    Indicator(Indicator, Vec<Arg>),
    /// `HIGHEST(x, p)`.
    Highest(Box<Num>, Arg),
    /// `LOWEST(x, p)`.
    Lowest(Box<Num>, Arg),
    /// `-x`.
    Neg(Box<Num>),
    /// `a op b`.
    Arith(ArithOp, Box<Num>, Box<Num>),
    /// `ABS(x)`.
    Abs(Box<Num>),
    /// `MIN(a, b)`.
    Min(Box<Num>, Box<Num>),
    /// `MAX(a, b)`.
    Max(Box<Num>, Box<Num>),
    /// `x[n]`.
    Prev(Box<Num>, Arg),
}

/// A condition (a true/false series over the bars, or a constant).
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// `a op b`.
    Compare(CmpOp, Num, Num),
    /// `a AND b`.
    And(Box<Cond>, Box<Cond>),
    /// `a OR b`.
    Or(Box<Cond>, Box<Cond>),
    /// `NOT a`.
    Not(Box<Cond>),
    /// `CROSSES_ABOVE(a, b)`.
    CrossesAbove(Num, Num),
    /// `CROSSES_BELOW(a, b)`.
    CrossesBelow(Num, Num),
    /// `c[n]`.
    Prev(Box<Cond>, Arg),
}

/// Parses `text` into a condition with the default [`Limits`]; `params` are the strategy's parameter names
/// (matched case-insensitively; a name's index is its slot). On failure returns every error found (one after a
/// syntax error).
pub fn parse(text: &str, params: &[&str]) -> Result<Cond, Vec<RuleError>> {
    parse_with(text, params, Limits::default())
}

/// [`parse`] with explicit limits.
pub fn parse_with(text: &str, params: &[&str], limits: Limits) -> Result<Cond, Vec<RuleError>> {
    parser::parse(text, params, limits)
}

/// Whether `name` is taken by the language (keyword, price, time, external series, indicator or function), and so
/// cannot name a parameter. Case-insensitive.
pub fn is_reserved(name: &str) -> bool {
    parser::builtin_kind(name).is_some()
}

/// Every place a parameter is used as an indicator argument or lookback in `cond`: `(slot, what it must be, where
/// it is used)`, e.g. `(0, Period, "argument 1 of RSI")`.
pub fn param_usages(cond: &Cond) -> Vec<(usize, ArgKind, String)> {
    let mut out = Vec::new();
    visit_cond(cond, &mut |arg, kind, what| {
        if let Arg::Param(p) = arg {
            out.push((p.slot, kind, what.to_string()));
        }
    });
    out
}

/// The parameter slots `cond` reads anywhere (as numbers or arguments), sorted, without repeats.
pub fn params_used(cond: &Cond) -> Vec<usize> {
    let mut out = Vec::new();
    walk_cond(cond, &mut |n| {
        if let Num::Param(p) = n {
            out.push(p.slot);
        }
    });
    visit_cond(cond, &mut |arg, _, _| {
        if let Arg::Param(p) = arg {
            out.push(p.slot);
        }
    });
    out.sort_unstable();
    out.dedup();
    out
}

/// The external series `cond` reads, sorted, without repeats.
pub fn externals_used(cond: &Cond) -> Vec<External> {
    let mut out = Vec::new();
    walk_cond(cond, &mut |n| {
        if let Num::External(e) = n {
            out.push(*e);
        }
    });
    out.sort_unstable();
    out.dedup();
    out
}

/// Calls `f` on every numeric node of `cond` (pre-order).
fn walk_cond(cond: &Cond, f: &mut impl FnMut(&Num)) {
    match cond {
        Cond::Compare(_, a, b) | Cond::CrossesAbove(a, b) | Cond::CrossesBelow(a, b) => {
            walk_num(a, f);
            walk_num(b, f);
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            walk_cond(a, f);
            walk_cond(b, f);
        }
        Cond::Not(a) | Cond::Prev(a, _) => walk_cond(a, f),
    }
}

fn walk_num(num: &Num, f: &mut impl FnMut(&Num)) {
    f(num);
    match num {
        Num::Const(_) | Num::Param(_) | Num::Price(_) | Num::Time(_) | Num::External(_) | Num::Indicator(..) => {}
        Num::Highest(x, _) | Num::Lowest(x, _) | Num::Neg(x) | Num::Abs(x) | Num::Prev(x, _) => walk_num(x, f),
        Num::Arith(_, a, b) | Num::Min(a, b) | Num::Max(a, b) => {
            walk_num(a, f);
            walk_num(b, f);
        }
    }
}

/// Calls `f(arg, kind, description)` on every indicator argument and lookback of `cond`.
fn visit_cond(cond: &Cond, f: &mut impl FnMut(&Arg, ArgKind, &str)) {
    match cond {
        Cond::Prev(c, arg) => {
            f(arg, ArgKind::Lookback, "the lookback");
            visit_cond(c, f);
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            visit_cond(a, f);
            visit_cond(b, f);
        }
        Cond::Not(a) => visit_cond(a, f),
        Cond::Compare(_, a, b) | Cond::CrossesAbove(a, b) | Cond::CrossesBelow(a, b) => {
            let mut g = |n: &Num| visit_num_args(n, f);
            walk_num(a, &mut g);
            walk_num(b, &mut g);
        }
    }
}

fn visit_num_args(num: &Num, f: &mut impl FnMut(&Arg, ArgKind, &str)) {
    match num {
        Num::Indicator(ind, args) => {
            for (i, (arg, spec)) in args.iter().zip(ind.args()).enumerate() {
                f(arg, spec.kind, &format!("argument {} of {}", i + 1, ind.name()));
            }
        }
        Num::Highest(_, arg) => f(arg, ArgKind::Period, "argument 2 of HIGHEST"),
        Num::Lowest(_, arg) => f(arg, ArgKind::Period, "argument 2 of LOWEST"),
        Num::Prev(_, arg) => f(arg, ArgKind::Lookback, "the lookback"),
        _ => {}
    }
}

fn write_num(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    write!(f, "{v}")
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Const(v) => write_num(f, *v),
            Arg::Param(p) => f.write_str(&p.name),
        }
    }
}

/// Prints the canonical text of the expression (fully parenthesised); parsing it gives the same tree.
impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Const(v) => write_num(f, *v),
            Num::Param(p) => f.write_str(&p.name),
            Num::Price(p) => f.write_str(p.name()),
            Num::Time(t) => f.write_str(t.name()),
            Num::External(e) => f.write_str(e.name()),
            Num::Indicator(ind, args) => {
                write!(f, "{}(", ind.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Num::Highest(x, p) => write!(f, "HIGHEST({x}, {p})"),
            Num::Lowest(x, p) => write!(f, "LOWEST({x}, {p})"),
            Num::Neg(x) => write!(f, "-({x})"),
            Num::Arith(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            Num::Abs(x) => write!(f, "ABS({x})"),
            Num::Min(a, b) => write!(f, "MIN({a}, {b})"),
            Num::Max(a, b) => write!(f, "MAX({a}, {b})"),
            Num::Prev(x, n) => write!(f, "({x})[{n}]"),
        }
    }
}

/// Prints the canonical text of the condition (fully parenthesised); parsing it gives the same tree.
impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::Compare(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            Cond::And(a, b) => write!(f, "({a} AND {b})"),
            Cond::Or(a, b) => write!(f, "({a} OR {b})"),
            Cond::Not(a) => write!(f, "NOT ({a})"),
            Cond::CrossesAbove(a, b) => write!(f, "CROSSES_ABOVE({a}, {b})"),
            Cond::CrossesBelow(a, b) => write!(f, "CROSSES_BELOW({a}, {b})"),
            Cond::Prev(c, n) => write!(f, "({c})[{n}]"),
        }
    }
}
