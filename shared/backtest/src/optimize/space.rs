//! The parameter space: each parameter's values, the constraints between them, and the mixed-radix numbering of
//! the combinations.

use std::collections::HashSet;

use nusatrade_ml::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::OptimizeError;
use crate::rules::{self, ArithOp, CmpOp, Cond, Num};
use crate::strategy::ParamValues;

/// Most parameters in a space.
pub const MAX_PARAMS: usize = 16;
/// Most combinations a grid search may have, and most samples a random search may draw.
pub const MAX_COMBINATIONS: u64 = 1_000_000;
/// Most values over all parameters (what a space keeps in memory).
pub const MAX_TOTAL_VALUES: usize = 1_000_000;
/// Most constraints.
pub const MAX_CONSTRAINTS: usize = 32;
/// Longest parameter name.
pub const MAX_NAME_CHARS: usize = 64;
/// Most decimals a range value is rounded to (so `0.1 + 2 × 0.1` is `0.3`).
const MAX_DECIMALS: usize = 10;

/// The values one parameter takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamRange {
    /// `min, min + step, …` up to `max` inclusive (within a 1e-9 step tolerance).
    Range {
        /// First value.
        min: f64,
        /// Last value (included when it is on the step grid).
        max: f64,
        /// Positive step.
        step: f64,
    },
    /// An explicit list, in the order given, without repeats.
    Values {
        /// The values.
        values: Vec<f64>,
    },
}

/// One parameter of the space: `{"name": "fast", "min": 5, "max": 50, "step": 5}` or
/// `{"name": "mode", "values": [1, 2]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The strategy parameter's name.
    pub name: String,
    /// Its values.
    #[serde(flatten)]
    pub range: ParamRange,
}

/// What a space is built from (the API's and CLI's wire shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SpaceSpec {
    /// The parameters, outermost first (the last one varies fastest in the numbering).
    pub params: Vec<ParamSpec>,
    /// Conditions every combination must meet, in the rule language over parameter names and numbers:
    /// `fast_period < slow_period`, `a * 2 <= b`, `NOT (x == 3) OR y > 1`. Combinations that fail one are
    /// skipped (and counted).
    #[serde(default)]
    pub constraints: Vec<String>,
}

/// A constraint's arithmetic over parameter values.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Const(f64),
    Param(usize),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Abs(Box<Expr>),
    Min(Box<Expr>, Box<Expr>),
    Max(Box<Expr>, Box<Expr>),
}

/// A constraint's logic.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    Compare(CmpOp, Expr, Expr),
    And(Box<Check>, Box<Check>),
    Or(Box<Check>, Box<Check>),
    Not(Box<Check>),
}

impl Expr {
    fn eval(&self, v: &[f64]) -> f64 {
        match self {
            Expr::Const(c) => *c,
            Expr::Param(i) => v[*i],
            Expr::Neg(a) => -a.eval(v),
            Expr::Arith(op, a, b) => {
                let (a, b) = (a.eval(v), b.eval(v));
                match op {
                    ArithOp::Add => a + b,
                    ArithOp::Sub => a - b,
                    ArithOp::Mul => a * b,
                    ArithOp::Div if b == 0.0 => f64::NAN,
                    ArithOp::Div => a / b,
                }
            }
            Expr::Abs(a) => a.eval(v).abs(),
            // NaN in, NaN out (the rule language's MIN/MAX).
            Expr::Min(a, b) => {
                let (a, b) = (a.eval(v), b.eval(v));
                if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
            }
            Expr::Max(a, b) => {
                let (a, b) = (a.eval(v), b.eval(v));
                if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
            }
        }
    }
}

impl Check {
    fn eval(&self, v: &[f64]) -> bool {
        match self {
            Check::Compare(op, a, b) => {
                let (a, b) = (a.eval(v), b.eval(v));
                if a.is_nan() || b.is_nan() {
                    return false;
                }
                match op {
                    CmpOp::Lt => a < b,
                    CmpOp::Le => a <= b,
                    CmpOp::Gt => a > b,
                    CmpOp::Ge => a >= b,
                    CmpOp::Eq => (a - b).abs() < rules::EQUALITY_TOLERANCE,
                    CmpOp::Ne => (a - b).abs() >= rules::EQUALITY_TOLERANCE,
                }
            }
            Check::And(a, b) => a.eval(v) && b.eval(v),
            Check::Or(a, b) => a.eval(v) || b.eval(v),
            Check::Not(a) => !a.eval(v),
        }
    }
}

fn convert_num(n: &Num) -> Result<Expr, String> {
    Ok(match n {
        Num::Const(c) => Expr::Const(*c),
        Num::Param(p) => Expr::Param(p.slot),
        Num::Neg(a) => Expr::Neg(Box::new(convert_num(a)?)),
        Num::Arith(op, a, b) => Expr::Arith(*op, Box::new(convert_num(a)?), Box::new(convert_num(b)?)),
        Num::Abs(a) => Expr::Abs(Box::new(convert_num(a)?)),
        Num::Min(a, b) => Expr::Min(Box::new(convert_num(a)?), Box::new(convert_num(b)?)),
        Num::Max(a, b) => Expr::Max(Box::new(convert_num(a)?), Box::new(convert_num(b)?)),
        Num::Price(_) | Num::Time(_) | Num::External(_) | Num::Indicator(..) => {
            return Err("a constraint may only use parameters and numbers, not prices, times or indicators".into());
        }
        Num::Highest(..) | Num::Lowest(..) | Num::Prev(..) => {
            return Err("a constraint may only use parameters and numbers, not series functions or lookbacks".into());
        }
    })
}

fn convert_cond(c: &Cond) -> Result<Check, String> {
    Ok(match c {
        Cond::Compare(op, a, b) => Check::Compare(*op, convert_num(a)?, convert_num(b)?),
        Cond::And(a, b) => Check::And(Box::new(convert_cond(a)?), Box::new(convert_cond(b)?)),
        Cond::Or(a, b) => Check::Or(Box::new(convert_cond(a)?), Box::new(convert_cond(b)?)),
        Cond::Not(a) => Check::Not(Box::new(convert_cond(a)?)),
        Cond::CrossesAbove(..) | Cond::CrossesBelow(..) | Cond::Prev(..) => {
            return Err("a constraint may only compare parameters and numbers, not crossings or lookbacks".into());
        }
    })
}

/// A parsed constraint.
#[derive(Debug, Clone, PartialEq)]
struct Constraint {
    text: String,
    check: Check,
}

/// A validated parameter space: each parameter's values, the constraints, and the numbering of the combinations
/// (mixed radix, the last parameter fastest: index `i` ↔ one value per parameter).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpace {
    names: Vec<String>,
    values: Vec<Vec<f64>>,
    size: u64,
    constraints: Vec<Constraint>,
}

/// Decimals in the shortest representation of `v` (`0.25` → 2, `5` → 0, `1e-3` → 3), at most [`MAX_DECIMALS`].
fn decimals(v: f64) -> usize {
    let s = format!("{v}");
    let d = s.split_once('.').map_or(0, |(_, f)| f.len());
    d.min(MAX_DECIMALS)
}

fn round_to(v: f64, decimals: usize) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    let r = (v * scale).round() / scale;
    if r.is_finite() { r } else { v }
}

fn check_name(name: &str) -> Result<(), OptimizeError> {
    let bad = |reason: &str| Err(OptimizeError::ParamName { name: name.to_string(), reason: reason.to_string() });
    if name.is_empty() {
        return bad("empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return bad("longer than 64 characters");
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return bad("use letters, digits and `_`, not starting with a digit");
    }
    if rules::is_reserved(name) {
        return bad("reserved by the rule language");
    }
    Ok(())
}

/// The values of a range, or the grid-size error when there are more than `limit`.
fn range_values(name: &str, min: f64, max: f64, step: f64, limit: u64) -> Result<Vec<f64>, OptimizeError> {
    let bad = |reason: String| Err(OptimizeError::ParamRange { name: name.to_string(), reason });
    if !(min.is_finite() && max.is_finite() && step.is_finite()) {
        return bad("min, max and step must be finite numbers".into());
    }
    if step <= 0.0 {
        return bad(format!("the step must be positive, got {step}"));
    }
    if min > max {
        return bad(format!("min {min} is above max {max}"));
    }
    let count = ((max - min) / step + 1e-9).floor() + 1.0;
    if !count.is_finite() || count > limit as f64 {
        let combinations = if count.is_finite() && count < u64::MAX as f64 { Some(count as u64) } else { None };
        return Err(OptimizeError::GridTooLarge { combinations, limit });
    }
    let d = decimals(min).max(decimals(step));
    let count = count as u64;
    Ok((0..count).map(|k| round_to(min + k as f64 * step, d)).collect())
}

impl ParamSpace {
    /// Validates `spec`: 1 ..= [`MAX_PARAMS`] parameters with distinct names (case-insensitive, not reserved by the
    /// rule language), finite values without repeats, at most [`MAX_TOTAL_VALUES`] values in all, a number of
    /// combinations that fits in 64 bits, and at most [`MAX_CONSTRAINTS`] constraints that parse and name only
    /// parameters.
    pub fn new(spec: &SpaceSpec) -> Result<Self, OptimizeError> {
        if spec.params.is_empty() {
            return Err(OptimizeError::NoParams);
        }
        if spec.params.len() > MAX_PARAMS {
            return Err(OptimizeError::TooManyParams { count: spec.params.len(), max: MAX_PARAMS });
        }
        let mut seen = HashSet::new();
        let mut names = Vec::with_capacity(spec.params.len());
        let mut values = Vec::with_capacity(spec.params.len());
        let mut total_values = 0usize;
        for p in &spec.params {
            check_name(&p.name)?;
            if !seen.insert(p.name.to_ascii_lowercase()) {
                return Err(OptimizeError::ParamName { name: p.name.clone(), reason: "named twice".into() });
            }
            let v = match &p.range {
                ParamRange::Range { min, max, step } => range_values(&p.name, *min, *max, *step, MAX_COMBINATIONS)?,
                ParamRange::Values { values } => {
                    if values.is_empty() {
                        return Err(OptimizeError::ParamRange { name: p.name.clone(), reason: "no values".into() });
                    }
                    if values.len() as u64 > MAX_COMBINATIONS {
                        return Err(OptimizeError::GridTooLarge {
                            combinations: Some(values.len() as u64),
                            limit: MAX_COMBINATIONS,
                        });
                    }
                    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                        return Err(OptimizeError::ParamRange {
                            name: p.name.clone(),
                            reason: format!("{bad} is not a finite number"),
                        });
                    }
                    let mut sorted = values.clone();
                    sorted.sort_by(f64::total_cmp);
                    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                        return Err(OptimizeError::ParamRange {
                            name: p.name.clone(),
                            reason: format!("{} is listed twice", w[0]),
                        });
                    }
                    values.clone()
                }
            };
            total_values += v.len();
            if total_values > MAX_TOTAL_VALUES {
                return Err(OptimizeError::TooManyValues { max: MAX_TOTAL_VALUES });
            }
            names.push(p.name.clone());
            values.push(v);
        }
        let size = values.iter().try_fold(1u64, |acc, v| acc.checked_mul(v.len() as u64));
        let Some(size) = size else {
            return Err(OptimizeError::GridTooLarge { combinations: None, limit: MAX_COMBINATIONS });
        };

        if spec.constraints.len() > MAX_CONSTRAINTS {
            return Err(OptimizeError::TooManyConstraints { count: spec.constraints.len(), max: MAX_CONSTRAINTS });
        }
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut constraints = Vec::with_capacity(spec.constraints.len());
        for text in &spec.constraints {
            let cond = rules::parse(text, &name_refs).map_err(|errors| OptimizeError::Constraint {
                constraint: text.clone(),
                message: errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            })?;
            let check = convert_cond(&cond)
                .map_err(|message| OptimizeError::Constraint { constraint: text.clone(), message })?;
            constraints.push(Constraint { text: text.clone(), check });
        }
        Ok(ParamSpace { names, values, size, constraints })
    }

    /// The parameter names, in numbering order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The values of parameter `k`.
    pub fn values(&self, k: usize) -> &[f64] {
        &self.values[k]
    }

    /// Position of the parameter called `name` (exact match).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Number of combinations (before constraints).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The constraint texts.
    pub fn constraints(&self) -> Vec<&str> {
        self.constraints.iter().map(|c| c.text.as_str()).collect()
    }

    /// The value indices (one per parameter) of combination `index`, or `None` past the end. O(#params).
    pub fn digits(&self, index: u64) -> Option<Vec<usize>> {
        let mut digits = vec![0; self.values.len()];
        self.digits_into(index, &mut digits).then_some(digits)
    }

    /// [`Self::digits`] into a buffer of the parameter count; false past the end.
    pub(crate) fn digits_into(&self, index: u64, digits: &mut [usize]) -> bool {
        if index >= self.size {
            return false;
        }
        let mut rest = index;
        for (k, v) in self.values.iter().enumerate().rev() {
            let radix = v.len() as u64;
            digits[k] = (rest % radix) as usize;
            rest /= radix;
        }
        true
    }

    /// The index of the combination with these value indices (the inverse of [`Self::digits`]).
    pub fn index_of(&self, digits: &[usize]) -> Option<u64> {
        if digits.len() != self.values.len() {
            return None;
        }
        let mut index = 0u64;
        for (d, v) in digits.iter().zip(&self.values) {
            if *d >= v.len() {
                return None;
            }
            index = index * v.len() as u64 + *d as u64;
        }
        Some(index)
    }

    /// The parameter values of combination `index` (numbering order), or `None` past the end.
    pub fn combination(&self, index: u64) -> Option<Vec<f64>> {
        let digits = self.digits(index)?;
        Some(digits.iter().zip(&self.values).map(|(d, v)| v[*d]).collect())
    }

    /// The combination as named values (what a strategy takes).
    pub fn param_values(&self, values: &[f64]) -> ParamValues {
        self.names.iter().cloned().zip(values.iter().copied()).collect()
    }

    /// Whether `values` (one per parameter, numbering order) meets every constraint.
    pub fn satisfies(&self, values: &[f64]) -> bool {
        self.constraints.iter().all(|c| c.check.eval(values))
    }

    /// `n` distinct combination indices drawn uniformly with `seed` (Floyd's algorithm), ascending; every index when
    /// `n` ≥ the size.
    pub(crate) fn sample(&self, n: u64, seed: u64) -> Vec<u64> {
        if n >= self.size {
            return (0..self.size).collect();
        }
        let mut rng = SplitMix64(seed);
        let mut chosen = HashSet::with_capacity(n as usize);
        let mut out = Vec::with_capacity(n as usize);
        for j in (self.size - n)..self.size {
            // Uniform in 0..=j.
            let t = ((u128::from(rng.next_u64()) * (u128::from(j) + 1)) >> 64) as u64;
            let pick = if chosen.contains(&t) { j } else { t };
            chosen.insert(pick);
            out.push(pick);
        }
        out.sort_unstable();
        out
    }
}
