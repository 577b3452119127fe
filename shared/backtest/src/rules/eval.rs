//! Column-wise evaluation of typed conditions over a bar series.
//!
//! An [`Evaluator`] holds the bars, the external series and a cache of indicator outputs keyed by indicator and
//! resolved arguments, so evaluating many parameter sets over the same bars computes each distinct indicator once.
//! A condition is evaluated in two passes: *prepare* walks the tree, checks parameter values and fills the cache;
//! *evaluate* combines whole columns node by node (constants stay scalars), drawing temporary columns from a
//! pool that is reused across calls — after the first call nothing is allocated for ordinary trees.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Timelike};
use nusatrade_ml::candles::Columns;
use nusatrade_ml::indicators as ta;

use super::{Arg, ArgKind, ArithOp, CmpOp, Cond, EQUALITY_TOLERANCE, External, Indicator, Num, PriceField, TimeField};

/// External series by name (`ml_confidence`, …; see [`External`]), one value per bar; `NaN` = unknown.
pub type ExternalSeries = BTreeMap<String, Vec<f64>>;

/// Most cached indicator values (f64s) an evaluator keeps (128 MiB); past it the cache is emptied before the next
/// evaluation.
pub const MAX_CACHED_VALUES: usize = 1 << 24;

/// Why an evaluation was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The bar columns are not all the same length.
    #[error("the bar columns differ in length: {0}")]
    RaggedColumns(String),
    /// An external series whose length is not the bar count.
    #[error("external series '{name}' has {got} values but there are {bars} bars")]
    ExternalLength {
        /// Its name.
        name: &'static str,
        /// Its length.
        got: usize,
        /// Bars.
        bars: usize,
    },
    /// A rule reads an external series that was not supplied.
    #[error("the rules need the external series '{0}', which was not supplied")]
    MissingExternal(&'static str),
    /// A parameter's value does not fit where it is used.
    #[error("parameter '{name}' = {value}: {what} {problem}")]
    BadParam {
        /// Parameter name.
        name: String,
        /// Its value.
        value: f64,
        /// Where it is used (`argument 1 of RSI`).
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// A constant argument out of range (only possible in a hand-built tree; parsed ones are checked).
    #[error("{what} {problem}")]
    BadConstant {
        /// Where it is used.
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// No value for a parameter slot.
    #[error("no value for parameter '{name}' (slot {slot})")]
    MissingParam {
        /// Its name.
        name: String,
        /// Its slot.
        slot: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ind(Indicator, [u64; 3]),
    Extreme(bool, PriceField, u64),
}

/// Evaluates conditions over one bar series (see the module docs). Create one per thread.
#[derive(Debug)]
pub struct Evaluator<'a> {
    store: Store<'a>,
    pool: Pool,
}

#[derive(Debug)]
struct Store<'a> {
    bars: &'a Columns,
    external: [Option<&'a [f64]>; External::ALL.len()],
    hour: Option<Vec<f64>>,
    day_of_week: Option<Vec<f64>>,
    cache: HashMap<Key, Vec<f64>>,
    cached_values: usize,
    /// The largest index of an indicator's first defined value among those the last evaluation used (backtesting.py's
    /// `_indicator_warmup_nbars`): where the strategy's indicators are all warmed up.
    warmup: usize,
}

#[derive(Debug)]
struct Pool {
    n: usize,
    nums: Vec<Vec<f64>>,
    bools: Vec<Vec<bool>>,
}

impl Pool {
    fn num(&mut self) -> Vec<f64> {
        self.nums.pop().unwrap_or_else(|| vec![0.0; self.n])
    }

    fn bool(&mut self) -> Vec<bool> {
        self.bools.pop().unwrap_or_else(|| vec![false; self.n])
    }

    fn give(&mut self, v: NV<'_>) {
        if let NV::B(buf) = v {
            self.nums.push(buf);
        }
    }

    fn give_bool(&mut self, v: BV) {
        if let BV::B(buf) = v {
            self.bools.push(buf);
        }
    }
}

/// A numeric value during evaluation: a scalar, a borrowed column or a pooled one.
enum NV<'s> {
    S(f64),
    R(&'s [f64]),
    B(Vec<f64>),
}

impl NV<'_> {
    fn slice(&self) -> Option<&[f64]> {
        match self {
            NV::S(_) => None,
            NV::R(r) => Some(r),
            NV::B(b) => Some(b),
        }
    }

    fn scalar(&self) -> f64 {
        match self {
            NV::S(v) => *v,
            _ => f64::NAN,
        }
    }
}

/// A condition value during evaluation.
enum BV {
    S(bool),
    B(Vec<bool>),
}

/// `out[i] = f(a[i], b[i])` with scalars broadcast.
fn fill2<T: Copy>(out: &mut [T], a: &NV<'_>, b: &NV<'_>, f: impl Fn(f64, f64) -> T) {
    match (a.slice(), b.slice()) {
        (Some(x), Some(y)) => {
            for ((o, &p), &q) in out.iter_mut().zip(x).zip(y) {
                *o = f(p, q);
            }
        }
        (Some(x), None) => {
            let q = b.scalar();
            for (o, &p) in out.iter_mut().zip(x) {
                *o = f(p, q);
            }
        }
        (None, Some(y)) => {
            let p = a.scalar();
            for (o, &q) in out.iter_mut().zip(y) {
                *o = f(p, q);
            }
        }
        (None, None) => out.fill(f(a.scalar(), b.scalar())),
    }
}

/// A binary numeric operation.
#[derive(Debug, Clone, Copy)]
enum Op2 {
    Arith(ArithOp),
    Min,
    Max,
}

fn div(a: f64, b: f64) -> f64 {
    if b == 0.0 { f64::NAN } else { a / b }
}

fn op2_scalar(op: Op2, a: f64, b: f64) -> f64 {
    match op {
        Op2::Arith(ArithOp::Add) => a + b,
        Op2::Arith(ArithOp::Sub) => a - b,
        Op2::Arith(ArithOp::Mul) => a * b,
        Op2::Arith(ArithOp::Div) => div(a, b),
        Op2::Min => nan_min(a, b),
        Op2::Max => nan_max(a, b),
    }
}

/// [`fill2`] with one monomorphised loop per operation (a function pointer would cost a call per bar).
fn op2_fill(out: &mut [f64], a: &NV<'_>, b: &NV<'_>, op: Op2) {
    match op {
        Op2::Arith(ArithOp::Add) => fill2(out, a, b, |x, y| x + y),
        Op2::Arith(ArithOp::Sub) => fill2(out, a, b, |x, y| x - y),
        Op2::Arith(ArithOp::Mul) => fill2(out, a, b, |x, y| x * y),
        Op2::Arith(ArithOp::Div) => fill2(out, a, b, div),
        Op2::Min => fill2(out, a, b, nan_min),
        Op2::Max => fill2(out, a, b, nan_max),
    }
}

fn eq(a: f64, b: f64) -> bool {
    (a - b).abs() < EQUALITY_TOLERANCE
}

fn ne(a: f64, b: f64) -> bool {
    (a - b).abs() >= EQUALITY_TOLERANCE
}

fn cmp_scalar(op: CmpOp, a: f64, b: f64) -> bool {
    match op {
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Eq => eq(a, b),
        CmpOp::Ne => ne(a, b),
    }
}

fn cmp_fill(out: &mut [bool], a: &NV<'_>, b: &NV<'_>, op: CmpOp) {
    match op {
        CmpOp::Lt => fill2(out, a, b, |x, y| x < y),
        CmpOp::Le => fill2(out, a, b, |x, y| x <= y),
        CmpOp::Gt => fill2(out, a, b, |x, y| x > y),
        CmpOp::Ge => fill2(out, a, b, |x, y| x >= y),
        CmpOp::Eq => fill2(out, a, b, eq),
        CmpOp::Ne => fill2(out, a, b, ne),
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// Rolling max/min over `period` bars; a window holding a `NaN` is `NaN`.
fn rolling_extreme(x: &[f64], period: usize, max: bool) -> Vec<f64> {
    let mut out = if max { ta::rolling_max(x, period) } else { ta::rolling_min(x, period) };
    let mut last_nan: Option<usize> = None;
    for (i, o) in out.iter_mut().enumerate() {
        if x[i].is_nan() {
            last_nan = Some(i);
        }
        if last_nan.is_some_and(|j| i - j < period) {
            *o = f64::NAN;
        }
    }
    out
}

/// The value of an argument, checked against `kind`; `what` names the place for an error.
fn arg_value(arg: &Arg, kind: ArgKind, params: &[f64], what: impl FnOnce() -> String) -> Result<f64, EvalError> {
    match arg {
        Arg::Const(v) => {
            kind.check(*v).map_err(|problem| EvalError::BadConstant { what: what(), problem })?;
            Ok(*v)
        }
        Arg::Param(p) => {
            let value =
                *params.get(p.slot).ok_or_else(|| EvalError::MissingParam { name: p.name.clone(), slot: p.slot })?;
            kind.check(value).map_err(|problem| EvalError::BadParam {
                name: p.name.clone(),
                value,
                what: what(),
                problem,
            })?;
            Ok(value)
        }
    }
}

/// `out[i] = src[i − k]`, `fill` for the first `k` bars (`src` is as long as `out`).
fn shift_into<T: Copy>(out: &mut [T], src: &[T], k: usize, fill: T) {
    let k = k.min(out.len());
    out[..k].fill(fill);
    for (o, &s) in out[k..].iter_mut().zip(src) {
        *o = s;
    }
}

/// `out` filled with `fill` for the first `k` bars and `v` after.
fn constant_after<T: Copy>(mut out: Vec<T>, v: T, k: usize, fill: T) -> Vec<T> {
    let k = k.min(out.len());
    out[..k].fill(fill);
    out[k..].fill(v);
    out
}

/// Whole number (checked by [`ArgKind::check`]) as a count.
fn count(v: f64) -> usize {
    v as usize
}

fn indicator_key(ind: Indicator, args: &[Arg], params: &[f64]) -> Result<Key, EvalError> {
    let specs = ind.args();
    if args.len() != specs.len() {
        return Err(EvalError::BadConstant {
            what: ind.name().to_string(),
            problem: format!("takes {} arguments, got {}", specs.len(), args.len()),
        });
    }
    let mut bits = [0u64; 3];
    for (i, (arg, spec)) in args.iter().zip(specs).enumerate() {
        let v = arg_value(arg, spec.kind, params, || format!("argument {} of {}", i + 1, ind.name()))?;
        bits[i] = v.to_bits();
    }
    Ok(Key::Ind(ind, bits))
}

fn extreme_what(max: bool) -> String {
    format!("argument 2 of {}", if max { "HIGHEST" } else { "LOWEST" })
}

impl<'a> Store<'a> {
    fn n(&self) -> usize {
        self.bars.close.len()
    }

    fn price(&self, field: PriceField) -> &'a [f64] {
        let b = self.bars;
        match field {
            PriceField::Open => &b.open,
            PriceField::High => &b.high,
            PriceField::Low => &b.low,
            PriceField::Close => &b.close,
            PriceField::Volume => &b.volume,
        }
    }

    fn insert(&mut self, key: Key, values: Vec<f64>) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.cache.entry(key) {
            self.cached_values += values.len();
            e.insert(values);
        }
    }

    /// Computes `key` (and the other outputs of the same indicator) unless cached, and takes its first defined
    /// bar into the warm-up.
    fn ensure(&mut self, key: Key) {
        self.compute(key);
        if let Some(first) = self.cache.get(&key).map(|v| v.iter().position(|x| !x.is_nan()).unwrap_or(v.len())) {
            self.warmup = self.warmup.max(first);
        }
    }

    fn compute(&mut self, key: Key) {
        if self.cache.contains_key(&key) {
            return;
        }
        let b = self.bars;
        let (h, l, c) = (&b.high[..], &b.low[..], &b.close[..]);
        let (ind, bits) = match key {
            Key::Extreme(max, field, period) => {
                let values = rolling_extreme(self.price(field), count(f64::from_bits(period)), max);
                self.insert(key, values);
                return;
            }
            Key::Ind(ind, bits) => (ind, bits),
        };
        let a = bits.map(f64::from_bits);
        let p = count(a[0]);
        let k = |i: Indicator, bits: [u64; 3]| Key::Ind(i, bits);
        match ind {
            Indicator::Sma => self.insert(key, ta::sma(c, p)),
            Indicator::Ema => self.insert(key, ta::ema(c, p)),
            Indicator::Rsi => self.insert(key, ta::rsi(c, p)),
            Indicator::Mom => self.insert(key, ta::momentum(c, p)),
            Indicator::Roc => self.insert(key, ta::roc(c, p)),
            Indicator::Stddev => self.insert(key, ta::stddev(c, p, 0)),
            Indicator::Atr => self.insert(key, ta::atr(h, l, c, p)),
            Indicator::Cci => self.insert(key, ta::cci(h, l, c, p)),
            Indicator::Willr => self.insert(key, ta::williams_r(h, l, c, p)),
            Indicator::Macd | Indicator::MacdSignal | Indicator::MacdHist => {
                let m = ta::macd(c, p, count(a[1]), count(a[2]));
                self.insert(k(Indicator::Macd, bits), m.line);
                self.insert(k(Indicator::MacdSignal, bits), m.signal);
                self.insert(k(Indicator::MacdHist, bits), m.hist);
            }
            Indicator::Adx | Indicator::PlusDi | Indicator::MinusDi => {
                let d = ta::dmi(h, l, c, p);
                self.insert(k(Indicator::Adx, bits), d.adx);
                self.insert(k(Indicator::PlusDi, bits), d.plus_di);
                self.insert(k(Indicator::MinusDi, bits), d.minus_di);
            }
            Indicator::StochK => self.insert(key, ta::stochastic(h, l, c, p, 1).k),
            Indicator::StochD => {
                let s = ta::stochastic(h, l, c, p, count(a[1]));
                self.insert(key, s.d);
                self.insert(k(Indicator::StochK, [bits[0], 0, 0]), s.k);
            }
            Indicator::BbUpper | Indicator::BbMiddle | Indicator::BbLower => {
                let bb = ta::bollinger(c, p, a[1]);
                self.insert(k(Indicator::BbUpper, bits), bb.upper);
                self.insert(k(Indicator::BbMiddle, bits), bb.middle);
                self.insert(k(Indicator::BbLower, bits), bb.lower);
            }
        }
    }

    fn prepare_cond(&mut self, c: &Cond, params: &[f64]) -> Result<(), EvalError> {
        match c {
            Cond::Compare(_, a, b) | Cond::CrossesAbove(a, b) | Cond::CrossesBelow(a, b) => {
                self.prepare_num(a, params)?;
                self.prepare_num(b, params)
            }
            Cond::And(a, b) | Cond::Or(a, b) => {
                self.prepare_cond(a, params)?;
                self.prepare_cond(b, params)
            }
            Cond::Not(a) => self.prepare_cond(a, params),
            Cond::Prev(a, n) => {
                arg_value(n, ArgKind::Lookback, params, || "the lookback".to_string())?;
                self.prepare_cond(a, params)
            }
        }
    }

    fn prepare_num(&mut self, num: &Num, params: &[f64]) -> Result<(), EvalError> {
        match num {
            Num::Const(_) | Num::Price(_) => Ok(()),
            Num::Param(p) => match params.get(p.slot) {
                Some(_) => Ok(()),
                None => Err(EvalError::MissingParam { name: p.name.clone(), slot: p.slot }),
            },
            Num::Time(t) => {
                let bars = self.bars;
                let slot = match t {
                    TimeField::Hour => &mut self.hour,
                    TimeField::DayOfWeek => &mut self.day_of_week,
                };
                if slot.is_none() {
                    let f = |d: &chrono::DateTime<chrono::Utc>| match t {
                        TimeField::Hour => f64::from(d.hour()),
                        TimeField::DayOfWeek => f64::from(d.weekday().num_days_from_monday()),
                    };
                    *slot = Some(bars.time.iter().map(f).collect());
                }
                Ok(())
            }
            Num::External(e) => match self.external[e.index()] {
                Some(_) => Ok(()),
                None => Err(EvalError::MissingExternal(e.name())),
            },
            Num::Indicator(ind, args) => {
                let key = indicator_key(*ind, args, params)?;
                self.ensure(key);
                Ok(())
            }
            Num::Highest(x, p) | Num::Lowest(x, p) => {
                let max = matches!(num, Num::Highest(..));
                let period = arg_value(p, ArgKind::Period, params, || extreme_what(max))?;
                match **x {
                    Num::Price(field) => {
                        self.ensure(Key::Extreme(max, field, period.to_bits()));
                        Ok(())
                    }
                    _ => self.prepare_num(x, params),
                }
            }
            Num::Prev(x, n) => {
                arg_value(n, ArgKind::Lookback, params, || "the lookback".to_string())?;
                self.prepare_num(x, params)
            }
            Num::Neg(x) | Num::Abs(x) => self.prepare_num(x, params),
            Num::Arith(_, a, b) | Num::Min(a, b) | Num::Max(a, b) => {
                self.prepare_num(a, params)?;
                self.prepare_num(b, params)
            }
        }
    }

    fn cached(&self, key: &Key) -> Result<&[f64], EvalError> {
        // `prepare` filled it; a miss would be a bug, reported rather than panicking.
        self.cache.get(key).map(|v| &v[..]).ok_or_else(|| EvalError::BadConstant {
            what: "internal".to_string(),
            problem: "indicator missing from the cache".to_string(),
        })
    }

    fn num<'s>(&'s self, pool: &mut Pool, num: &Num, params: &[f64]) -> Result<NV<'s>, EvalError> {
        Ok(match num {
            Num::Const(v) => NV::S(*v),
            Num::Param(p) => NV::S(
                *params.get(p.slot).ok_or_else(|| EvalError::MissingParam { name: p.name.clone(), slot: p.slot })?,
            ),
            Num::Price(f) => NV::R(self.price(*f)),
            Num::Time(t) => {
                let series = match t {
                    TimeField::Hour => &self.hour,
                    TimeField::DayOfWeek => &self.day_of_week,
                };
                match series {
                    Some(v) => NV::R(v),
                    None => return Err(EvalError::MissingExternal(t.name())),
                }
            }
            Num::External(e) => NV::R(self.external[e.index()].ok_or(EvalError::MissingExternal(e.name()))?),
            Num::Indicator(ind, args) => NV::R(self.cached(&indicator_key(*ind, args, params)?)?),
            Num::Highest(x, p) | Num::Lowest(x, p) => {
                let max = matches!(num, Num::Highest(..));
                let period = arg_value(p, ArgKind::Period, params, || extreme_what(max))?;
                if let Num::Price(field) = **x {
                    return Ok(NV::R(self.cached(&Key::Extreme(max, field, period.to_bits()))?));
                }
                match self.num(pool, x, params)? {
                    NV::S(v) if count(period) <= 1 => NV::S(v),
                    // A constant's extreme is the constant once the window is full.
                    NV::S(v) => NV::B(constant_after(pool.num(), v, count(period) - 1, f64::NAN)),
                    v => {
                        let out = rolling_extreme(v.slice().unwrap_or(&[]), count(period), max);
                        pool.give(v);
                        NV::B(out)
                    }
                }
            }
            Num::Prev(x, n) => {
                let k = count(arg_value(n, ArgKind::Lookback, params, || "the lookback".to_string())?);
                match self.num(pool, x, params)? {
                    NV::S(v) if k == 0 => NV::S(v),
                    NV::S(v) => NV::B(constant_after(pool.num(), v, k, f64::NAN)),
                    v => {
                        let mut out = pool.num();
                        shift_into(&mut out, v.slice().unwrap_or(&[]), k, f64::NAN);
                        pool.give(v);
                        NV::B(out)
                    }
                }
            }
            Num::Neg(x) => self.map1(pool, x, params, |v| -v)?,
            Num::Abs(x) => self.map1(pool, x, params, f64::abs)?,
            Num::Arith(op, a, b) => self.map2(pool, a, b, params, Op2::Arith(*op))?,
            Num::Min(a, b) => self.map2(pool, a, b, params, Op2::Min)?,
            Num::Max(a, b) => self.map2(pool, a, b, params, Op2::Max)?,
        })
    }

    fn map1<'s>(
        &'s self,
        pool: &mut Pool,
        x: &Num,
        params: &[f64],
        f: impl Fn(f64) -> f64,
    ) -> Result<NV<'s>, EvalError> {
        Ok(match self.num(pool, x, params)? {
            NV::S(v) => NV::S(f(v)),
            NV::B(mut b) => {
                b.iter_mut().for_each(|v| *v = f(*v));
                NV::B(b)
            }
            NV::R(r) => {
                let mut out = pool.num();
                out.iter_mut().zip(r).for_each(|(o, &v)| *o = f(v));
                NV::B(out)
            }
        })
    }

    fn map2<'s>(&'s self, pool: &mut Pool, a: &Num, b: &Num, params: &[f64], op: Op2) -> Result<NV<'s>, EvalError> {
        let a = self.num(pool, a, params)?;
        let b = self.num(pool, b, params)?;
        if let (NV::S(x), NV::S(y)) = (&a, &b) {
            return Ok(NV::S(op2_scalar(op, *x, *y)));
        }
        let mut out = pool.num();
        op2_fill(&mut out, &a, &b, op);
        pool.give(a);
        pool.give(b);
        Ok(NV::B(out))
    }

    fn cond(&self, pool: &mut Pool, c: &Cond, params: &[f64]) -> Result<BV, EvalError> {
        Ok(match c {
            Cond::Compare(op, a, b) => {
                let a = self.num(pool, a, params)?;
                let b = self.num(pool, b, params)?;
                if let (NV::S(x), NV::S(y)) = (&a, &b) {
                    return Ok(BV::S(cmp_scalar(*op, *x, *y)));
                }
                let mut out = pool.bool();
                cmp_fill(&mut out, &a, &b, *op);
                pool.give(a);
                pool.give(b);
                BV::B(out)
            }
            Cond::And(a, b) => match self.cond(pool, a, params)? {
                BV::S(false) => BV::S(false),
                BV::S(true) => self.cond(pool, b, params)?,
                BV::B(mut x) => match self.cond(pool, b, params)? {
                    BV::S(true) => BV::B(x),
                    BV::S(false) => {
                        pool.bools.push(x);
                        BV::S(false)
                    }
                    BV::B(y) => {
                        x.iter_mut().zip(&y).for_each(|(p, &q)| *p &= q);
                        pool.bools.push(y);
                        BV::B(x)
                    }
                },
            },
            Cond::Or(a, b) => match self.cond(pool, a, params)? {
                BV::S(true) => BV::S(true),
                BV::S(false) => self.cond(pool, b, params)?,
                BV::B(mut x) => match self.cond(pool, b, params)? {
                    BV::S(false) => BV::B(x),
                    BV::S(true) => {
                        pool.bools.push(x);
                        BV::S(true)
                    }
                    BV::B(y) => {
                        x.iter_mut().zip(&y).for_each(|(p, &q)| *p |= q);
                        pool.bools.push(y);
                        BV::B(x)
                    }
                },
            },
            Cond::Not(a) => match self.cond(pool, a, params)? {
                BV::S(v) => BV::S(!v),
                BV::B(mut x) => {
                    x.iter_mut().for_each(|v| *v = !*v);
                    BV::B(x)
                }
            },
            Cond::CrossesAbove(a, b) | Cond::CrossesBelow(a, b) => {
                let above = matches!(c, Cond::CrossesAbove(..));
                // a < b ⇔ a − b < 0 for every pair of non-NaN f64s (IEEE subtraction of distinct values is
                // never zero), and NaN propagates: the sign of the difference decides both comparisons.
                let d = self.map2(pool, a, b, params, Op2::Arith(ArithOp::Sub))?;
                let Some(d_slice) = d.slice() else { return Ok(BV::S(false)) };
                let mut out = pool.bool();
                if let Some(first) = out.first_mut() {
                    *first = false;
                }
                let pairs = out.iter_mut().skip(1).zip(d_slice.windows(2));
                if above {
                    pairs.for_each(|(o, w)| *o = w[0] < 0.0 && w[1] > 0.0);
                } else {
                    pairs.for_each(|(o, w)| *o = w[0] > 0.0 && w[1] < 0.0);
                }
                pool.give(d);
                BV::B(out)
            }
            Cond::Prev(x, n) => {
                let k = count(arg_value(n, ArgKind::Lookback, params, || "the lookback".to_string())?);
                match self.cond(pool, x, params)? {
                    BV::S(v) if k == 0 => BV::S(v),
                    BV::S(v) => BV::B(constant_after(pool.bool(), v, k, false)),
                    BV::B(src) => {
                        let mut out = pool.bool();
                        shift_into(&mut out, &src, k, false);
                        pool.bools.push(src);
                        BV::B(out)
                    }
                }
            }
        })
    }
}

impl<'a> Evaluator<'a> {
    /// An evaluator over `bars` with the caller's `external` series (names as in [`External::name`], matched
    /// case-insensitively; other keys are ignored). Refuses ragged columns and external series of the wrong length.
    pub fn new(bars: &'a Columns, external: &'a ExternalSeries) -> Result<Self, EvalError> {
        let n = bars.close.len();
        let lens = [
            ("time", bars.time.len()),
            ("open", bars.open.len()),
            ("high", bars.high.len()),
            ("low", bars.low.len()),
            ("close", n),
            ("volume", bars.volume.len()),
        ];
        if lens.iter().any(|&(_, len)| len != n) {
            let list: Vec<String> = lens.iter().map(|(name, len)| format!("{name} {len}")).collect();
            return Err(EvalError::RaggedColumns(list.join(", ")));
        }
        let mut ext: [Option<&'a [f64]>; External::ALL.len()] = [None; External::ALL.len()];
        for e in External::ALL {
            let found = external
                .get(e.name())
                .or_else(|| external.iter().find(|(k, _)| k.eq_ignore_ascii_case(e.name())).map(|(_, v)| v));
            if let Some(v) = found {
                if v.len() != n {
                    return Err(EvalError::ExternalLength { name: e.name(), got: v.len(), bars: n });
                }
                ext[e.index()] = Some(&v[..]);
            }
        }
        Ok(Evaluator {
            store: Store {
                bars,
                external: ext,
                hour: None,
                day_of_week: None,
                cache: HashMap::new(),
                cached_values: 0,
                warmup: 0,
            },
            pool: Pool { n, nums: Vec::new(), bools: Vec::new() },
        })
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.store.n()
    }

    /// Whether there are no bars.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the external series `e` was supplied.
    pub fn has_external(&self, e: External) -> bool {
        self.store.external[e.index()].is_some()
    }

    /// Distinct indicator series in the cache.
    pub fn cached_series(&self) -> usize {
        self.store.cache.len()
    }

    /// Empties the indicator cache.
    pub fn clear_cache(&mut self) {
        self.store.cache.clear();
        self.store.cached_values = 0;
    }

    fn begin(&mut self) {
        if self.store.cached_values > MAX_CACHED_VALUES {
            self.clear_cache();
        }
    }

    /// Starts a new warm-up measure (the next evaluations' indicators).
    pub fn reset_warmup(&mut self) {
        self.store.warmup = 0;
    }

    /// The index of the first bar where every indicator evaluated since [`reset_warmup`](Self::reset_warmup) is
    /// defined (backtesting.py's warm-up: 19 for an SMA(20)); capped at the last bar.
    pub fn warmup(&self) -> usize {
        self.store.warmup.min(self.len().saturating_sub(1))
    }

    /// `cond` at every bar, with parameter values by slot.
    pub fn condition(&mut self, cond: &Cond, params: &[f64]) -> Result<Vec<bool>, EvalError> {
        let mut out = vec![false; self.len()];
        self.combine_into(std::slice::from_ref(cond), params, false, &mut out)?;
        Ok(out)
    }

    /// `expr` at every bar (`NaN` where undefined).
    pub fn number(&mut self, expr: &Num, params: &[f64]) -> Result<Vec<f64>, EvalError> {
        self.begin();
        self.store.prepare_num(expr, params)?;
        let v = self.store.num(&mut self.pool, expr, params)?;
        let out = match &v {
            NV::S(x) => vec![*x; self.len()],
            NV::R(r) => r.to_vec(),
            NV::B(b) => b.clone(),
        };
        self.pool.give(v);
        Ok(out)
    }

    /// Writes into `out` (resized to the bar count) the OR (`all = false`) or the AND (`all = true`) of `conds`
    /// at every bar; no conditions gives false everywhere either way.
    pub fn combine_into(
        &mut self,
        conds: &[Cond],
        params: &[f64],
        all: bool,
        out: &mut Vec<bool>,
    ) -> Result<(), EvalError> {
        self.begin();
        for c in conds {
            self.store.prepare_cond(c, params)?;
        }
        let n = self.len();
        out.clear();
        out.resize(n, all && !conds.is_empty());
        for c in conds {
            match self.store.cond(&mut self.pool, c, params)? {
                BV::S(v) => {
                    if v != all {
                        out.fill(v);
                        break;
                    }
                }
                BV::B(v) => {
                    if all {
                        out.iter_mut().zip(&v).for_each(|(o, &x)| *o &= x);
                    } else {
                        out.iter_mut().zip(&v).for_each(|(o, &x)| *o |= x);
                    }
                    self.pool.give_bool(BV::B(v));
                }
            }
        }
        Ok(())
    }
}
