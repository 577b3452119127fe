//! Money, prices, lots and currencies: small newtypes over [`rust_decimal::Decimal`].
//!
//! The original system did its money maths in floats and assumed 0.0001 / $10 per pip for every symbol
//! (contract §4.2, §9.3 item 10). Here every amount, price and volume is a `Decimal`; conversions between
//! currencies are explicit [`Conversion`]s, never implied.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// `Decimal::new` in a `const` context (the crate's own `new` is not `const`).
///
/// Panics at compile time when `scale` exceeds 28, so a typo in a constant cannot reach production.
pub(crate) const fn dec(num: i64, scale: u32) -> Decimal {
    assert!(scale <= Decimal::MAX_SCALE, "decimal scale out of range");
    let abs = num.unsigned_abs();
    Decimal::from_parts(abs as u32, (abs >> 32) as u32, 0, num < 0, scale)
}

/// Errors of the money primitives.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    /// Not a three-letter ISO-4217-like code (`USD`, `EUR`, `XAU`...).
    #[error("Invalid currency code: {0:?}. Must be 3 letters (e.g., USD, EUR)")]
    InvalidCurrency(String),
    /// A conversion rate must be a positive number.
    #[error("Conversion rate {from}->{to} must be positive, got {rate}")]
    NonPositiveRate { from: Currency, to: Currency, rate: Decimal },
    /// Converting between two different currencies needs a rate the caller did not give.
    #[error("A conversion rate {from}->{to} is required")]
    RateRequired { from: Currency, to: Currency },
    /// A rate was given for a conversion that must be 1 (same currency).
    #[error("Conversion rate {from}->{to} must be 1 for the same currency, got {rate}")]
    InconsistentRate { from: Currency, to: Currency, rate: Decimal },
    /// The arithmetic left `Decimal`'s range (about 7.9e28): the inputs are absurd.
    #[error("Arithmetic overflow")]
    Overflow,
}

/// A three-letter currency (or metal / crypto asset) code, upper case: `USD`, `EUR`, `JPY`, `XAU`, `BTC`.
///
/// Serialised as its string. Parsing trims and upper-cases (`" usd"` → `USD`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollar.
    pub const USD: Currency = Currency(*b"USD");
    /// Euro.
    pub const EUR: Currency = Currency(*b"EUR");
    /// Pound sterling.
    pub const GBP: Currency = Currency(*b"GBP");
    /// Japanese yen.
    pub const JPY: Currency = Currency(*b"JPY");
    /// Swiss franc.
    pub const CHF: Currency = Currency(*b"CHF");
    /// Canadian dollar.
    pub const CAD: Currency = Currency(*b"CAD");
    /// Australian dollar.
    pub const AUD: Currency = Currency(*b"AUD");
    /// New Zealand dollar.
    pub const NZD: Currency = Currency(*b"NZD");
    /// Gold (troy ounce).
    pub const XAU: Currency = Currency(*b"XAU");
    /// Silver (troy ounce).
    pub const XAG: Currency = Currency(*b"XAG");
    /// Bitcoin.
    pub const BTC: Currency = Currency(*b"BTC");

    /// A currency from a byte literal, checked at compile time when used in a `const`.
    pub const fn from_static(code: &[u8; 3]) -> Currency {
        let mut i = 0;
        while i < 3 {
            assert!(code[i].is_ascii_uppercase(), "currency codes are three upper-case letters");
            i += 1;
        }
        Currency(*code)
    }

    /// The code as a `&str` (always three ASCII upper-case letters).
    pub fn as_str(&self) -> &str {
        // Construction guarantees ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let b = t.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_alphabetic) {
            Ok(Currency([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase(), b[2].to_ascii_uppercase()]))
        } else {
            Err(MoneyError::InvalidCurrency(s.to_string()))
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Direction of an order or position. Wire values `"BUY"` / `"SELL"` (contract §2.4 `order_type`, `trade_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    /// Long: profits when the price rises; SL below, TP above the entry.
    Buy,
    /// Short: profits when the price falls; SL above, TP below the entry.
    Sell,
}

impl Side {
    /// `+1` for BUY, `-1` for SELL: multiply a price move by it to get the move in the position's favour.
    pub fn sign(self) -> Decimal {
        match self {
            Side::Buy => Decimal::ONE,
            Side::Sell => Decimal::NEGATIVE_ONE,
        }
    }

    /// The wire string, `"BUY"` or `"SELL"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }

    /// The opposite side (the side of the closing deal).
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

impl FromStr for Side {
    type Err = ();

    /// Exactly `BUY` or `SELL`, as the original's `^(BUY|SELL)$` validation (contract §2.4).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "BUY" => Ok(Side::Buy),
            "SELL" => Ok(Side::Sell),
            _ => Err(()),
        }
    }
}

/// A price in the instrument's quote currency. Always positive when built with [`Price::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Price(Decimal);

impl Price {
    /// A positive price, or `None` for zero / negative values.
    pub fn new(value: Decimal) -> Option<Price> {
        (value > Decimal::ZERO).then_some(Price(value))
    }

    /// The raw decimal.
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A trade volume in lots (1 lot = the instrument's contract size). Validated against an instrument's
/// volume rules by [`crate::instrument::Instrument::validate_lots`] / [`crate::instrument::Instrument::floor_lots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lots(Decimal);

impl Lots {
    /// Wraps a decimal without checks; prefer the instrument's validating constructors for input.
    pub const fn new_unchecked(value: Decimal) -> Lots {
        Lots(value)
    }

    /// The raw decimal.
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Lots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An amount of money in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount (may be negative: a loss).
    pub amount: Decimal,
    /// Its currency.
    pub currency: Currency,
}

impl Money {
    /// An amount in a currency.
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }

    /// Rounded to cents, half away from zero — as PostgreSQL's `NUMERIC(20,2)` stored the original's
    /// profits (contract §5 `trades.profit`) and as the dashboard stats round (contract §2.4).
    pub fn round_cents(self) -> Money {
        Money { amount: round_money(self.amount), currency: self.currency }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// Rounds a money amount to 2 dp, half away from zero (the PostgreSQL `NUMERIC(20,2)` rule).
pub fn round_money(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// An explicit exchange rate: one unit of `from` is worth `numerator / denominator` units of `to`.
///
/// Kept as a fraction so that a rate derived from a price (e.g. JPY→USD = 1 / USDJPY) is applied by a
/// multiplication and a final division, without a rounded reciprocal in the middle of the maths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversion {
    from: Currency,
    to: Currency,
    numerator: Decimal,
    denominator: Decimal,
}

impl Conversion {
    /// The identity conversion of a currency to itself.
    pub fn identity(c: Currency) -> Conversion {
        Conversion { from: c, to: c, numerator: Decimal::ONE, denominator: Decimal::ONE }
    }

    /// `1 from = rate to`, given by the caller (e.g. an API request's `conversion_rate`).
    pub fn rate(from: Currency, to: Currency, rate: Decimal) -> Result<Conversion, MoneyError> {
        if rate <= Decimal::ZERO {
            return Err(MoneyError::NonPositiveRate { from, to, rate });
        }
        if from == to && rate != Decimal::ONE {
            return Err(MoneyError::InconsistentRate { from, to, rate });
        }
        Ok(Conversion { from, to, numerator: rate, denominator: Decimal::ONE })
    }

    /// `1 from = 1 / rate to`: the inverse of a quoted rate (e.g. JPY→USD from USDJPY = 150 → 1/150).
    pub fn inverse_rate(from: Currency, to: Currency, rate: Decimal) -> Result<Conversion, MoneyError> {
        if rate <= Decimal::ZERO {
            return Err(MoneyError::NonPositiveRate { from, to, rate });
        }
        if from == to && rate != Decimal::ONE {
            return Err(MoneyError::InconsistentRate { from, to, rate });
        }
        Ok(Conversion { from, to, numerator: Decimal::ONE, denominator: rate })
    }

    /// Resolves `from → to`: identity for the same currency; otherwise the explicit `rate` (1 `from` =
    /// `rate` `to`), or a [`MoneyError::RateRequired`] error. An explicit rate for the same currency must be 1.
    pub fn resolve(from: Currency, to: Currency, rate: Option<Decimal>) -> Result<Conversion, MoneyError> {
        match rate {
            Some(r) => Conversion::rate(from, to, r),
            None if from == to => Ok(Conversion::identity(from)),
            None => Err(MoneyError::RateRequired { from, to }),
        }
    }

    /// Source currency.
    pub fn from(&self) -> Currency {
        self.from
    }

    /// Target currency.
    pub fn to(&self) -> Currency {
        self.to
    }

    /// The rate as one decimal (`numerator / denominator`, rounded at 28 significant digits when inexact).
    pub fn as_decimal(&self) -> Decimal {
        self.numerator / self.denominator
    }

    /// Numerator of the exact fraction.
    pub fn numerator(&self) -> Decimal {
        self.numerator
    }

    /// Denominator of the exact fraction.
    pub fn denominator(&self) -> Decimal {
        self.denominator
    }

    /// Converts an amount: `amount × numerator / denominator`.
    pub fn apply(&self, amount: Decimal) -> Result<Decimal, MoneyError> {
        amount.checked_mul(self.numerator).and_then(|x| x.checked_div(self.denominator)).ok_or(MoneyError::Overflow)
    }
}

#[cfg(test)]
pub(crate) fn d(s: &str) -> Decimal {
    Decimal::from_str_exact(s).expect("test decimal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_parsing() {
        let cases: &[(&str, &str, Option<Currency>)] = &[
            ("upper", "USD", Some(Currency::USD)),
            ("lower and padded", " eur ", Some(Currency::EUR)),
            ("metal", "xau", Some(Currency::XAU)),
            ("too short", "US", None),
            ("too long", "USDT", None),
            ("digits", "US1", None),
            ("empty", "", None),
        ];
        for (label, input, want) in cases {
            assert_eq!(input.parse::<Currency>().ok(), *want, "{label}");
        }
    }

    #[test]
    fn currency_display_is_the_code() {
        assert_eq!(Currency::JPY.to_string(), "JPY");
        assert_eq!(format!("{:?}", Currency::from_static(b"SGD")), "SGD");
    }

    #[test]
    fn side_wire_values() {
        assert_eq!("BUY".parse::<Side>(), Ok(Side::Buy));
        assert_eq!("SELL".parse::<Side>(), Ok(Side::Sell));
        assert_eq!("buy".parse::<Side>(), Err(()), "the original matched ^(BUY|SELL)$ exactly");
        assert_eq!(Side::Buy.opposite(), Side::Sell);
        assert_eq!(Side::Sell.sign(), Decimal::NEGATIVE_ONE);
    }

    #[test]
    fn price_must_be_positive() {
        assert!(Price::new(d("0")).is_none());
        assert!(Price::new(d("-1")).is_none());
        assert_eq!(Price::new(d("1.1")).map(Price::value), Some(d("1.1")));
    }

    #[test]
    fn money_rounding_is_half_away_from_zero() {
        let cases = [
            ("up", "332.225", "332.23"),
            ("down", "-0.005", "-0.01"),
            ("exact", "500", "500"),
            ("even", "0.125", "0.13"),
        ];
        for (label, input, want) in cases {
            assert_eq!(round_money(d(input)), d(want), "{label}");
        }
    }

    #[test]
    fn conversions() {
        let usd_eur = Conversion::resolve(Currency::USD, Currency::EUR, Some(d("0.9"))).unwrap();
        assert_eq!(usd_eur.apply(d("100")).unwrap(), d("90"));
        let same = Conversion::resolve(Currency::USD, Currency::USD, None).unwrap();
        assert_eq!(same.apply(d("12.34")).unwrap(), d("12.34"));
        assert_eq!(
            Conversion::resolve(Currency::JPY, Currency::USD, None),
            Err(MoneyError::RateRequired { from: Currency::JPY, to: Currency::USD })
        );
        assert!(matches!(
            Conversion::resolve(Currency::USD, Currency::USD, Some(d("1.1"))),
            Err(MoneyError::InconsistentRate { .. })
        ));
        assert!(matches!(
            Conversion::resolve(Currency::USD, Currency::EUR, Some(d("0"))),
            Err(MoneyError::NonPositiveRate { .. })
        ));
        let jpy_usd = Conversion::inverse_rate(Currency::JPY, Currency::USD, d("150")).unwrap();
        assert_eq!(jpy_usd.apply(d("1500")).unwrap(), d("10"));
    }
}
