//! Request-body field parsing shared by the trading routes: pydantic-compatible 422 lists
//! (`{"detail":[{type, loc:["body", field], msg, input}]}`), numbers accepted as JSON numbers or numeric
//! strings, a range on every number, a length limit on every string.

use std::str::FromStr;

use nusatrade_domain::instrument::{Instrument, InstrumentError, lookup};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value};

use crate::http::{ApiError, ApiResult, FieldError};

/// Smallest non-zero magnitude accepted for any number: below it, values are noise (and overflow the
/// 28-digit decimal scale).
const MIN_MAGNITUDE: f64 = 1e-12;
/// Longest accepted symbol or currency string.
pub(crate) const MAX_STRING: usize = 32;

/// A numeric range: `min` (exclusive when `gt`), `max` inclusive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Range {
    pub min: Decimal,
    pub gt: bool,
    pub max: Decimal,
}

pub(crate) const fn gt(min: Decimal, max: Decimal) -> Range {
    Range { min, gt: true, max }
}

pub(crate) const fn ge(min: Decimal, max: Decimal) -> Range {
    Range { min, gt: false, max }
}

/// Collects the field errors of one body, pydantic style (all errors at once).
pub(crate) struct Fields<'a> {
    body: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

pub(crate) fn fmt_dec(d: Decimal) -> String {
    d.normalize().to_string()
}

impl<'a> Fields<'a> {
    pub(crate) fn new(body: &'a Map<String, Value>) -> Self {
        Fields { body, errors: Vec::new() }
    }

    pub(crate) fn err(&mut self, kind: &str, field: &str, msg: impl Into<String>, input: &Value) {
        self.errors.push(FieldError::new(kind, &["body", field], msg, input.clone()));
    }

    /// The value of `field`, `None` when absent or null.
    pub(crate) fn raw(&self, field: &str) -> Option<&'a Value> {
        self.body.get(field).filter(|v| !v.is_null())
    }

    /// A required number.
    pub(crate) fn number(&mut self, field: &str, range: Range) -> Option<Decimal> {
        match self.body.get(field) {
            None => {
                self.err("missing", field, "Field required", &Value::Null);
                None
            }
            Some(v) => self.parse_number(field, v, range),
        }
    }

    /// An optional number (absent or null → `default`).
    pub(crate) fn number_or(&mut self, field: &str, range: Range, default: Option<Decimal>) -> Option<Decimal> {
        match self.raw(field) {
            None => default,
            Some(v) => self.parse_number(field, v, range),
        }
    }

    pub(crate) fn parse_number(&mut self, field: &str, v: &Value, range: Range) -> Option<Decimal> {
        let f = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.len() <= 64 => match s.trim().parse::<f64>() {
                Ok(f) if !f.is_finite() => {
                    self.err("finite_number", field, "Input should be a finite number", v);
                    return None;
                }
                Ok(f) => Some(f),
                Err(_) => {
                    self.err(
                        "float_parsing",
                        field,
                        "Input should be a valid number, unable to parse string as a number",
                        v,
                    );
                    return None;
                }
            },
            _ => None,
        };
        let Some(f) = f.filter(|f| f.is_finite()) else {
            self.err("float_type", field, "Input should be a valid number", v);
            return None;
        };
        // Range checks on the float first, so absurd magnitudes never reach the decimal conversion.
        let max = range.max.to_f64().unwrap_or(f64::MAX);
        let min = range.min.to_f64().unwrap_or(0.0);
        if f > max {
            self.err(
                "less_than_equal",
                field,
                format!("Input should be less than or equal to {}", fmt_dec(range.max)),
                v,
            );
            return None;
        }
        if (range.gt && f <= min) || (!range.gt && f < min) {
            let (kind, op) = if range.gt {
                ("greater_than", "greater than")
            } else {
                ("greater_than_equal", "greater than or equal to")
            };
            self.err(kind, field, format!("Input should be {op} {}", fmt_dec(range.min)), v);
            return None;
        }
        if f != 0.0 && f.abs() < MIN_MAGNITUDE {
            self.err("value_error", field, format!("Value error, {field} is too small (smallest magnitude 1e-12)"), v);
            return None;
        }
        // Rust's float formatting is the shortest round-trip decimal without an exponent: 1.085 → "1.085".
        match Decimal::from_str(&f.to_string()) {
            Ok(d) => Some(d),
            Err(_) => {
                self.err("float_type", field, "Input should be a valid number", v);
                None
            }
        }
    }

    /// A string of at most [`MAX_STRING`] bytes (`required`: absent or null is "Field required").
    pub(crate) fn string(&mut self, field: &str, required: bool) -> Option<&'a str> {
        self.string_max(field, required, MAX_STRING)
    }

    /// A string of at most `max` bytes.
    pub(crate) fn string_max(&mut self, field: &str, required: bool, max: usize) -> Option<&'a str> {
        match self.body.get(field) {
            None if required => {
                self.err("missing", field, "Field required", &Value::Null);
                None
            }
            None => None,
            Some(Value::Null) if !required => None,
            Some(Value::String(s)) if s.len() <= max => Some(s.as_str()),
            Some(v @ Value::String(_)) => {
                self.err("string_too_long", field, format!("String should have at most {max} characters"), v);
                None
            }
            Some(v) => {
                self.err("string_type", field, "Input should be a valid string", v);
                None
            }
        }
    }

    /// An optional string restricted to a set of values (serde's snake_case/UPPERCASE enum wire forms).
    pub(crate) fn choice<T: serde::de::DeserializeOwned>(
        &mut self,
        field: &str,
        pattern: &str,
        required: bool,
    ) -> Option<T> {
        let s = self.string(field, required)?;
        match serde_json::from_value(Value::String(s.to_owned())) {
            Ok(t) => Some(t),
            Err(_) => {
                self.err(
                    "string_pattern_mismatch",
                    field,
                    format!("String should match pattern '{pattern}'"),
                    &Value::String(s.to_owned()),
                );
                None
            }
        }
    }

    /// An optional boolean (absent or null → `default`).
    pub(crate) fn boolean(&mut self, field: &str, default: bool) -> Option<bool> {
        match self.raw(field) {
            None => Some(default),
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.err("bool_type", field, "Input should be a valid boolean", v);
                None
            }
        }
    }

    /// No error recorded so far.
    pub(crate) fn errors_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Takes over the errors of a nested object's collector, located under `at` (`["body", at, field]`).
    pub(crate) fn absorb(&mut self, nested: Fields<'_>, at: Option<&str>) {
        for mut e in nested.errors {
            if let Some(at) = at {
                e.loc.insert(1, Value::from(at));
            }
            self.errors.push(e);
        }
    }

    pub(crate) fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::Unprocessable(self.errors)) }
    }
}

/// The catalogue instrument for a symbol: 400 with a readable message when unknown or malformed.
pub fn instrument(symbol: &str) -> ApiResult<&'static Instrument> {
    lookup(symbol).map_err(|e| match e {
        InstrumentError::InvalidFormat(_) | InstrumentError::Unknown(_) => ApiError::BadRequest(e.to_string()),
    })
}

pub(crate) fn unprocessable(field: Option<&str>, msg: impl Into<String>) -> ApiError {
    let loc: Vec<&str> = match field {
        Some(f) => vec!["body", f],
        None => vec!["body"],
    };
    ApiError::Unprocessable(vec![FieldError::new("value_error", &loc, msg, Value::Null)])
}

pub(crate) use crate::wire::num;
