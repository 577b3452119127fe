//! The instrument catalogue: per-symbol contract specifications.
//!
//! The original hard-coded pip = 0.0001, 100 000 units per lot and $10 per pip for every symbol (contract §4.2),
//! so its maths was off by orders of magnitude for USDJPY, XAUUSD or BTCUSD, and its price sanity ranges rejected
//! BTC and silver outright (§2.4, §9.3 item 10). Here every symbol carries its own specification.
//!
//! ## Assumptions (typical retail MT5 specifications; a broker may differ)
//! * **Forex**: 1 lot = 100 000 units of the base currency. Non-JPY pairs quote 5 digits with a pip of 0.0001;
//!   JPY-quoted pairs quote 3 digits with a pip of 0.01. Margin currency = base currency.
//! * **XAUUSD**: 1 lot = 100 oz, 2 digits, pip = 0.01 (one point) — the original's own per-symbol table
//!   (`MarketDataFetcher.get_symbol_info`, contract §4.2: 0.01 / $1.0 per lot). Margin in USD (CFD calculation).
//! * **XAGUSD**: 1 lot = 5 000 oz, 3 digits, pip = 0.001 (one point, the same convention as gold). Margin in USD.
//! * **BTCUSD**: 1 lot = 1 BTC, 2 digits, pip = 1.0 (the original's table: 1.0 / $1.0 per lot). Margin in USD.
//! * **Indices** (US30, US500, NAS100 in USD; GER40 in EUR; UK100 in GBP): cash CFDs, 1 lot = 1 × the index
//!   (one quote-currency unit per index point per lot), 2 digits, pip = 1 index point. Base = quote = margin
//!   currency (there is no base currency). Volume min/step 0.1, unlike the 0.01 of FX.
//! * Every instrument's maximum volume is 10 lots, the original's `MAX_LOT_SIZE` (contract §4.1).
//!
//! ## Symbol normalisation ([`lookup`])
//! Case-insensitive and trimmed; a `/` separator is dropped (`eur/usd`); a broker suffix introduced by `.`, `-`,
//! `_`, `#` or `+` is ignored (`EURUSD.m`, `XAUUSD-ecn`, `US30#`), and so is a trailing lower-case suffix glued to a
//! known symbol (`EURUSDm`, `XAUUSDpro`). A few common aliases map to catalogue symbols (`GOLD` → `XAUUSD`,
//! `DE40` → `GER40`...). The result is the canonical catalogue symbol; the application decides which string it
//! sends to the broker (a broker with suffixed symbols needs the suffix back).

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::money::{Conversion, Currency, Lots, MoneyError, Price, dec};

/// Largest volume of a single order, in lots (the original's `MAX_LOT_SIZE`, contract §4.1).
pub const MAX_LOT_SIZE: Decimal = dec(100, 1);

/// Asset class of an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    /// A currency pair (majors, crosses, JPY pairs).
    Forex,
    /// A precious metal against a currency (XAUUSD, XAGUSD).
    Metal,
    /// A cryptocurrency against a currency (BTCUSD).
    Crypto,
    /// A stock index cash CFD (US30, GER40...).
    Index,
}

/// The contract specification of one tradable symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instrument {
    /// Canonical symbol, `[A-Z0-9]{3,10}` (contract §4.1 symbol format).
    pub symbol: &'static str,
    /// Asset class.
    pub kind: InstrumentKind,
    /// Base currency / asset (for indices: the quote currency).
    pub base: Currency,
    /// Quote (profit) currency: prices, pip values and profits are in this currency before conversion.
    pub quote: Currency,
    /// Currency in which the broker computes margin (MT5 `SYMBOL_CURRENCY_MARGIN`).
    pub margin_currency: Currency,
    /// Decimal places of a quoted price (MT5 `SYMBOL_DIGITS`); SL/TP are rounded to this.
    pub digits: u32,
    /// Size of one pip in price units (0.0001 for EURUSD, 0.01 for USDJPY...).
    pub pip_size: Decimal,
    /// Units of the base asset in one lot (100 000 for FX, 100 oz for gold, 1 for indices and BTC).
    pub contract_size: Decimal,
    /// Smallest order volume, in lots.
    pub min_volume: Decimal,
    /// Largest order volume, in lots.
    pub max_volume: Decimal,
    /// Volume increment, in lots: every volume is a whole multiple of it.
    pub volume_step: Decimal,
}

/// Errors of symbol lookup.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstrumentError {
    /// Not a symbol at all (the original's message, contract §2.4 validation step 1).
    #[error("Invalid symbol format. Must be 3-10 alphanumeric characters (e.g., EURUSD, XAUUSD)")]
    InvalidFormat(String),
    /// Well-formed but not in the catalogue.
    #[error("Symbol {0} is not supported")]
    Unknown(String),
}

/// Errors of volume validation. Messages follow the original's (contract §2.4 validation step 2), with the
/// instrument's own limits in place of the fixed 0.01 / 10.0.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VolumeError {
    /// Zero or negative.
    #[error("Lot size must be positive")]
    NotPositive,
    /// Below the instrument's minimum (for sizing: the minimum volume would risk more than the budget).
    #[error("Lot size must be at least {min}")]
    BelowMinimum { lots: Decimal, min: Decimal },
    /// Above the instrument's maximum.
    #[error("Lot size cannot exceed {max}")]
    AboveMaximum { lots: Decimal, max: Decimal },
    /// Not a whole multiple of the volume step.
    #[error("Lot size must be in {step} increments")]
    NotOnStep { lots: Decimal, step: Decimal },
}

/// A volume fitted to an instrument by [`Instrument::floor_lots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FittedLots {
    /// The volume: a multiple of the step within [min, max].
    pub lots: Lots,
    /// True when the wanted volume exceeded the maximum and was capped to it.
    pub capped: bool,
}

/// A price too far from a reference price (e.g. the last known market price).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("Price {price} is outside reasonable range for {symbol}")]
pub struct PriceOutOfRange {
    /// The rejected price.
    pub price: Decimal,
    /// The instrument's symbol.
    pub symbol: &'static str,
}

impl Instrument {
    /// Size of one point (the last quoted digit): `10^-digits`.
    pub fn point(&self) -> Decimal {
        Decimal::new(1, self.digits)
    }

    /// A price rounded to the instrument's digits (banker's rounding, like Python's `round` in the original,
    /// which used 5 dp for every symbol — contract §1.7).
    pub fn round_price(&self, price: Decimal) -> Decimal {
        price.round_dp(self.digits)
    }

    /// Converts a price distance to pips: `distance / pip_size` (unrounded).
    pub fn to_pips(&self, distance: Decimal) -> Decimal {
        distance / self.pip_size
    }

    /// Converts pips to a price distance: `pips × pip_size`.
    pub fn from_pips(&self, pips: Decimal) -> Decimal {
        pips * self.pip_size
    }

    /// How one unit of the quote currency converts to the account currency:
    /// identity when they are equal; else the caller's explicit `rate` (1 quote = `rate` account); else, when the
    /// account is in the base currency and a `price` is known, `1 / price` (e.g. JPY→USD for USDJPY); else an error.
    pub fn quote_to_account(
        &self,
        account: Currency,
        price: Option<Decimal>,
        rate: Option<Decimal>,
    ) -> Result<Conversion, MoneyError> {
        match (rate, price) {
            (Some(_), _) | (None, None) => Conversion::resolve(self.quote, account, rate),
            (None, Some(p)) if account == self.base && account != self.quote => {
                Conversion::inverse_rate(self.quote, account, p)
            }
            (None, Some(_)) => Conversion::resolve(self.quote, account, None),
        }
    }

    /// How one unit of the margin currency converts to the account currency: identity when equal; the explicit
    /// `rate`; else derived from `price` when the margin currency is the base and the account the quote (× price)
    /// or the reverse (÷ price); else an error.
    pub fn margin_to_account(
        &self,
        account: Currency,
        price: Option<Decimal>,
        rate: Option<Decimal>,
    ) -> Result<Conversion, MoneyError> {
        let m = self.margin_currency;
        match (rate, price) {
            (None, Some(p)) if m != account && m == self.base && account == self.quote => {
                Conversion::rate(m, account, p)
            }
            (None, Some(p)) if m != account && m == self.quote && account == self.base => {
                Conversion::inverse_rate(m, account, p)
            }
            _ => Conversion::resolve(m, account, rate),
        }
    }

    /// Value of one pip for `lots` in the conversion's target currency:
    /// `pip_size × contract_size × lots × (quote → account)`.
    ///
    /// The conversion must start from the quote currency ([`Instrument::quote_to_account`]).
    pub fn pip_value(&self, lots: Lots, quote_to_account: &Conversion) -> Result<Decimal, MoneyError> {
        debug_assert_eq!(quote_to_account.from(), self.quote, "pip value conversion must start at the quote currency");
        let in_quote = self
            .pip_size
            .checked_mul(self.contract_size)
            .and_then(|x| x.checked_mul(lots.value()))
            .ok_or(MoneyError::Overflow)?;
        quote_to_account.apply(in_quote)
    }

    /// Rounds a wanted volume DOWN to the volume step (the safe side: never more risk than asked), capping it at
    /// the maximum. A volume that floors below the minimum is an error, not silently raised to the minimum
    /// (the original clamped to 0.01, which can risk more than the budget — contract §4.3).
    pub fn floor_lots(&self, wanted: Decimal) -> Result<FittedLots, VolumeError> {
        if wanted <= Decimal::ZERO {
            return Err(VolumeError::NotPositive);
        }
        if wanted > self.max_volume {
            return Ok(FittedLots { lots: Lots::new_unchecked(self.max_volume), capped: true });
        }
        let steps = (wanted / self.volume_step).floor();
        let lots = steps * self.volume_step;
        if lots < self.min_volume {
            return Err(VolumeError::BelowMinimum { lots: wanted, min: self.min_volume });
        }
        Ok(FittedLots { lots: Lots::new_unchecked(lots.normalize()), capped: false })
    }

    /// Validates a requested volume exactly (no rounding): positive, within [min, max], a multiple of the step.
    /// Order of checks follows the original (minimum, maximum, increment — contract §2.4 step 2).
    pub fn validate_lots(&self, lots: Decimal) -> Result<Lots, VolumeError> {
        if lots <= Decimal::ZERO {
            return Err(VolumeError::NotPositive);
        }
        if lots < self.min_volume {
            return Err(VolumeError::BelowMinimum { lots, min: self.min_volume });
        }
        if lots > self.max_volume {
            return Err(VolumeError::AboveMaximum { lots, max: self.max_volume });
        }
        if !(lots % self.volume_step).is_zero() {
            return Err(VolumeError::NotOnStep { lots, step: self.volume_step });
        }
        Ok(Lots::new_unchecked(lots))
    }

    /// Checks that `price` is within `max_deviation_percent` % of a `reference` price (e.g. the last known market
    /// price). Replaces the original's fixed ranges (JPY 50–200, XAU 500–5000, others 0.1–10; contract §4.1), which
    /// rejected BTCUSD and XAGUSD.
    pub fn check_price_near(
        &self,
        price: Decimal,
        reference: Price,
        max_deviation_percent: Decimal,
    ) -> Result<Price, PriceOutOfRange> {
        let err = PriceOutOfRange { price, symbol: self.symbol };
        let p = Price::new(price).ok_or_else(|| err.clone())?;
        let r = reference.value();
        let allowed = r * max_deviation_percent / Decimal::ONE_HUNDRED;
        if (price - r).abs() > allowed {
            return Err(err);
        }
        Ok(p)
    }
}

const FX_CONTRACT: Decimal = dec(100_000, 0);
const STEP_001: Decimal = dec(1, 2);
const STEP_01: Decimal = dec(1, 1);

const fn fx(symbol: &'static str, base: &[u8; 3], quote: &[u8; 3], jpy: bool) -> Instrument {
    Instrument {
        symbol,
        kind: InstrumentKind::Forex,
        base: Currency::from_static(base),
        quote: Currency::from_static(quote),
        margin_currency: Currency::from_static(base),
        digits: if jpy { 3 } else { 5 },
        pip_size: if jpy { dec(1, 2) } else { dec(1, 4) },
        contract_size: FX_CONTRACT,
        min_volume: STEP_001,
        max_volume: MAX_LOT_SIZE,
        volume_step: STEP_001,
    }
}

const fn index(symbol: &'static str, quote: &[u8; 3]) -> Instrument {
    Instrument {
        symbol,
        kind: InstrumentKind::Index,
        base: Currency::from_static(quote),
        quote: Currency::from_static(quote),
        margin_currency: Currency::from_static(quote),
        digits: 2,
        pip_size: Decimal::ONE,
        contract_size: Decimal::ONE,
        min_volume: STEP_01,
        max_volume: MAX_LOT_SIZE,
        volume_step: STEP_01,
    }
}

/// Every instrument the platform trades. Validated by this module's tests (unique, well-formed symbols; pip a
/// multiple of the point; volumes on their step).
pub static INSTRUMENTS: &[Instrument] = &[
    // Majors.
    fx("EURUSD", b"EUR", b"USD", false),
    fx("GBPUSD", b"GBP", b"USD", false),
    fx("USDJPY", b"USD", b"JPY", true),
    fx("USDCHF", b"USD", b"CHF", false),
    fx("USDCAD", b"USD", b"CAD", false),
    fx("AUDUSD", b"AUD", b"USD", false),
    fx("NZDUSD", b"NZD", b"USD", false),
    // Crosses.
    fx("EURGBP", b"EUR", b"GBP", false),
    fx("EURCHF", b"EUR", b"CHF", false),
    fx("EURAUD", b"EUR", b"AUD", false),
    fx("EURCAD", b"EUR", b"CAD", false),
    fx("EURNZD", b"EUR", b"NZD", false),
    fx("GBPCHF", b"GBP", b"CHF", false),
    fx("GBPAUD", b"GBP", b"AUD", false),
    fx("GBPCAD", b"GBP", b"CAD", false),
    fx("AUDCAD", b"AUD", b"CAD", false),
    fx("AUDNZD", b"AUD", b"NZD", false),
    // JPY crosses.
    fx("EURJPY", b"EUR", b"JPY", true),
    fx("GBPJPY", b"GBP", b"JPY", true),
    fx("AUDJPY", b"AUD", b"JPY", true),
    fx("NZDJPY", b"NZD", b"JPY", true),
    fx("CADJPY", b"CAD", b"JPY", true),
    fx("CHFJPY", b"CHF", b"JPY", true),
    // Metals.
    Instrument {
        symbol: "XAUUSD",
        kind: InstrumentKind::Metal,
        base: Currency::XAU,
        quote: Currency::USD,
        margin_currency: Currency::USD,
        digits: 2,
        pip_size: dec(1, 2),
        contract_size: dec(100, 0),
        min_volume: STEP_001,
        max_volume: MAX_LOT_SIZE,
        volume_step: STEP_001,
    },
    Instrument {
        symbol: "XAGUSD",
        kind: InstrumentKind::Metal,
        base: Currency::XAG,
        quote: Currency::USD,
        margin_currency: Currency::USD,
        digits: 3,
        pip_size: dec(1, 3),
        contract_size: dec(5_000, 0),
        min_volume: STEP_001,
        max_volume: MAX_LOT_SIZE,
        volume_step: STEP_001,
    },
    // Crypto.
    Instrument {
        symbol: "BTCUSD",
        kind: InstrumentKind::Crypto,
        base: Currency::BTC,
        quote: Currency::USD,
        margin_currency: Currency::USD,
        digits: 2,
        pip_size: Decimal::ONE,
        contract_size: Decimal::ONE,
        min_volume: STEP_001,
        max_volume: MAX_LOT_SIZE,
        volume_step: STEP_001,
    },
    // Indices (cash CFDs, 1 quote-currency unit per point per lot).
    index("US30", b"USD"),
    index("US500", b"USD"),
    index("NAS100", b"USD"),
    index("GER40", b"EUR"),
    index("UK100", b"GBP"),
];

/// Common alternative names → catalogue symbols.
const ALIASES: &[(&str, &str)] = &[
    ("GOLD", "XAUUSD"),
    ("SILVER", "XAGUSD"),
    ("XBTUSD", "BTCUSD"),
    ("DJ30", "US30"),
    ("DJI30", "US30"),
    ("SPX500", "US500"),
    ("US100", "NAS100"),
    ("USTEC", "NAS100"),
    ("DE40", "GER40"),
    ("DAX40", "GER40"),
    ("FTSE100", "UK100"),
];

fn exact(upper: &str) -> Option<&'static Instrument> {
    let canonical = ALIASES.iter().find(|(a, _)| *a == upper).map_or(upper, |(_, s)| s);
    INSTRUMENTS.iter().find(|i| i.symbol == canonical)
}

fn well_formed(upper: &str) -> bool {
    (3..=10).contains(&upper.len()) && upper.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Finds the instrument for a user- or broker-supplied symbol (see the module docs for the normalisation rules).
pub fn lookup(raw: &str) -> Result<&'static Instrument, InstrumentError> {
    let invalid = || InstrumentError::InvalidFormat(raw.to_string());
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.len() > 24 {
        return Err(invalid());
    }
    let joined: String = trimmed.chars().filter(|c| *c != '/').collect();
    let core = joined.split(['.', '-', '_', '#', '+']).next().unwrap_or_default();
    if core.is_empty() || !core.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid());
    }
    let upper = core.to_ascii_uppercase();
    if let Some(i) = exact(&upper) {
        return Ok(i);
    }
    let unsuffixed = core.trim_end_matches(|c: char| c.is_ascii_lowercase());
    if !unsuffixed.is_empty()
        && unsuffixed.len() < core.len()
        && let Some(i) = exact(&unsuffixed.to_ascii_uppercase())
    {
        return Ok(i);
    }
    if well_formed(&upper) { Err(InstrumentError::Unknown(upper)) } else { Err(invalid()) }
}

/// A symbol known to the catalogue: proof that its [`Instrument`] exists. Serialised as the canonical symbol;
/// deserialised through [`lookup`] (so `"eurusd.m"` reads as `EURUSD`).
#[derive(Clone, Copy)]
pub struct Symbol(&'static Instrument);

impl Symbol {
    /// Looks the symbol up in the catalogue.
    pub fn parse(raw: &str) -> Result<Symbol, InstrumentError> {
        lookup(raw).map(Symbol)
    }

    /// The canonical symbol string.
    pub fn as_str(&self) -> &'static str {
        self.0.symbol
    }

    /// The instrument's specification.
    pub fn instrument(&self) -> &'static Instrument {
        self.0
    }
}

impl PartialEq for Symbol {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Symbol {}

impl std::hash::Hash for Symbol {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({})", self.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Symbol::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::d;

    #[test]
    fn catalogue_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for i in INSTRUMENTS {
            let s = i.symbol;
            assert!(seen.insert(s), "{s}: duplicate symbol");
            assert!(well_formed(s), "{s}: symbol format");
            assert!(i.digits <= 8, "{s}: digits");
            assert!(i.pip_size >= i.point(), "{s}: pip smaller than a point");
            assert!((i.pip_size % i.point()).is_zero(), "{s}: pip not a multiple of the point");
            assert!(i.contract_size > Decimal::ZERO, "{s}: contract size");
            assert!(i.volume_step > Decimal::ZERO, "{s}: step");
            assert!(i.min_volume > Decimal::ZERO && i.min_volume <= i.max_volume, "{s}: min/max");
            assert!(i.max_volume <= MAX_LOT_SIZE, "{s}: above MAX_LOT_SIZE");
            assert!((i.min_volume % i.volume_step).is_zero(), "{s}: min not on step");
            assert!((i.max_volume % i.volume_step).is_zero(), "{s}: max not on step");
            assert!(i.margin_currency == i.base || i.margin_currency == i.quote, "{s}: margin currency");
            match i.kind {
                InstrumentKind::Forex | InstrumentKind::Metal | InstrumentKind::Crypto => {
                    assert_eq!(format!("{}{}", i.base, i.quote), s, "{s}: base+quote");
                }
                InstrumentKind::Index => assert_eq!(i.base, i.quote, "{s}: index base = quote"),
            }
            if i.kind == InstrumentKind::Forex {
                let jpy = i.quote == Currency::JPY;
                assert_eq!(i.pip_size, if jpy { d("0.01") } else { d("0.0001") }, "{s}: FX pip");
                assert_eq!(i.digits, if jpy { 3 } else { 5 }, "{s}: FX digits");
            }
            assert_eq!(lookup(s).map(|x| x.symbol), Ok(s), "{s}: looks itself up");
        }
        for (alias, target) in ALIASES {
            assert!(INSTRUMENTS.iter().any(|i| i.symbol == *target), "alias {alias} → unknown {target}");
        }
        let required = [
            "EURUSD", "GBPUSD", "USDJPY", "USDCHF", "USDCAD", "AUDUSD", "NZDUSD", "EURGBP", "EURJPY", "GBPJPY",
            "EURCHF", "AUDJPY", "XAUUSD", "XAGUSD", "BTCUSD", "US30", "US500", "NAS100", "GER40",
        ];
        for s in required {
            assert!(exact(s).is_some(), "{s} missing from the catalogue");
        }
    }

    #[test]
    fn symbol_lookup_normalisation() {
        let cases: &[(&str, &str, Result<&str, InstrumentError>)] = &[
            ("canonical", "EURUSD", Ok("EURUSD")),
            ("lower case", "eurusd", Ok("EURUSD")),
            ("padded", "  GBPJPY ", Ok("GBPJPY")),
            ("slash", "EUR/USD", Ok("EURUSD")),
            ("dot suffix", "EURUSD.m", Ok("EURUSD")),
            ("dash suffix", "XAUUSD-ecn", Ok("XAUUSD")),
            ("hash suffix", "US30#", Ok("US30")),
            ("glued lower-case suffix", "EURUSDm", Ok("EURUSD")),
            ("glued pro suffix", "XAUUSDpro", Ok("XAUUSD")),
            ("alias gold", "gold", Ok("XAUUSD")),
            ("alias DE40", "DE40", Ok("GER40")),
            ("unknown but well formed", "USDTRY", Err(InstrumentError::Unknown("USDTRY".into()))),
            ("empty", "   ", Err(InstrumentError::InvalidFormat("   ".into()))),
            ("punctuation", "EU$USD", Err(InstrumentError::InvalidFormat("EU$USD".into()))),
            ("too short", "EU", Err(InstrumentError::InvalidFormat("EU".into()))),
            ("too long", "ABCDEFGHIJK", Err(InstrumentError::InvalidFormat("ABCDEFGHIJK".into()))),
            ("only a suffix", ".m", Err(InstrumentError::InvalidFormat(".m".into()))),
        ];
        for (label, input, want) in cases {
            assert_eq!(lookup(input).map(|i| i.symbol), want.clone(), "{label}");
        }
        assert_eq!(Symbol::parse("usdjpy.x").unwrap().as_str(), "USDJPY");
        assert_eq!(Symbol::parse("USDJPY").unwrap(), Symbol::parse("usdjpy").unwrap());
    }

    #[test]
    fn pip_values_per_lot() {
        // (label, symbol, account, price, explicit rate, expected pip value of 1 lot in the account currency)
        type Case<'a> = (&'a str, &'a str, Currency, &'a str, Option<&'a str>, &'a str);
        let cases: &[Case] = &[
            // 0.0001 × 100 000 = 10 USD.
            ("EURUSD in USD", "EURUSD", Currency::USD, "1.1", None, "10"),
            // 0.01 × 100 000 = 1 000 JPY; ÷ 150 (derived from the price: account = base) = 6.666… USD.
            ("USDJPY in USD", "USDJPY", Currency::USD, "150", None, "6.6666666666666666666666666667"),
            // 1 000 JPY × 0.0062 (explicit JPY→EUR) = 6.2 EUR.
            ("USDJPY in EUR", "USDJPY", Currency::EUR, "150", Some("0.0062"), "6.2"),
            // 0.01 × 100 oz = 1 USD.
            ("XAUUSD in USD", "XAUUSD", Currency::USD, "2050", None, "1"),
            // 0.001 × 5 000 oz = 5 USD.
            ("XAGUSD in USD", "XAGUSD", Currency::USD, "24.5", None, "5"),
            // 1 × 1 = 1 USD.
            ("BTCUSD in USD", "BTCUSD", Currency::USD, "42000", None, "1"),
            // 0.0001 × 100 000 = 10 GBP × 1.25 = 12.5 USD.
            ("EURGBP in USD", "EURGBP", Currency::USD, "0.85", Some("1.25"), "12.5"),
            // 1 point × 1 = 1 EUR.
            ("GER40 in EUR", "GER40", Currency::EUR, "18000", None, "1"),
            // 10 USD × 0.92 = 9.2 EUR.
            ("EURUSD in EUR (explicit)", "EURUSD", Currency::EUR, "1.1", Some("0.92"), "9.2"),
            // 10 CAD ÷ 1.365 (derived; account = base) = 7.326… USD — the original's table said "$7.5".
            ("USDCAD in USD", "USDCAD", Currency::USD, "1.365", None, "7.3260073260073260073260073260"),
        ];
        for (label, sym, acct, price, rate, want) in cases {
            let i = lookup(sym).unwrap();
            let conv = i.quote_to_account(*acct, Some(d(price)), rate.map(d)).unwrap();
            let pv = i.pip_value(Lots::new_unchecked(Decimal::ONE), &conv).unwrap();
            assert_eq!(pv, d(want), "{label}");
        }
        let eurusd = lookup("EURUSD").unwrap();
        assert_eq!(
            eurusd.quote_to_account(Currency::EUR, Some(d("1.1")), None).map(|c| c.as_decimal()),
            Ok(d("1") / d("1.1")),
            "EUR account on EURUSD: USD→EUR derived as 1/price"
        );
        assert_eq!(
            lookup("EURGBP").unwrap().quote_to_account(Currency::USD, Some(d("0.85")), None),
            Err(MoneyError::RateRequired { from: Currency::GBP, to: Currency::USD }),
            "a cross with an unrelated account currency needs an explicit rate"
        );
    }

    #[test]
    fn floor_lots_rounds_down_and_caps() {
        let eurusd = lookup("EURUSD").unwrap();
        let us30 = lookup("US30").unwrap();
        type Case<'a> = (&'a str, &'a Instrument, &'a str, Result<(&'a str, bool), VolumeError>);
        let cases: &[Case] = &[
            ("exact step", eurusd, "0.29", Ok(("0.29", false))),
            ("rounds down, never up", eurusd, "0.2999999", Ok(("0.29", false))),
            ("minimum", eurusd, "0.01", Ok(("0.01", false))),
            ("below minimum", eurusd, "0.0099", Err(VolumeError::BelowMinimum { lots: d("0.0099"), min: d("0.01") })),
            ("capped at max", eurusd, "12.345", Ok(("10", true))),
            ("exactly max", eurusd, "10", Ok(("10", false))),
            ("zero", eurusd, "0", Err(VolumeError::NotPositive)),
            ("index step 0.1", us30, "0.39", Ok(("0.3", false))),
            ("index below min", us30, "0.09", Err(VolumeError::BelowMinimum { lots: d("0.09"), min: d("0.1") })),
        ];
        for (label, inst, wanted, want) in cases {
            let got = inst.floor_lots(d(wanted)).map(|f| (f.lots.value(), f.capped));
            let want = want.clone().map(|(l, c)| (d(l), c));
            assert_eq!(got, want, "{label}");
        }
    }

    #[test]
    fn validate_lots_messages() {
        let eurusd = lookup("EURUSD").unwrap();
        let cases: &[(&str, &str, Result<(), &str>)] = &[
            ("ok", "0.25", Ok(())),
            ("max ok", "10", Ok(())),
            ("below min", "0.001", Err("Lot size must be at least 0.01")),
            ("above max", "10.01", Err("Lot size cannot exceed 10.0")),
            ("off step", "0.015", Err("Lot size must be in 0.01 increments")),
            ("negative", "-1", Err("Lot size must be positive")),
        ];
        for (label, lots, want) in cases {
            let got = eurusd.validate_lots(d(lots)).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{label}");
        }
        assert!(lookup("US30").unwrap().validate_lots(d("0.15")).is_err(), "index step is 0.1");
    }

    #[test]
    fn price_near_reference() {
        let btc = lookup("BTCUSD").unwrap();
        let r = Price::new(d("42000")).unwrap();
        assert!(btc.check_price_near(d("42500"), r, d("5")).is_ok(), "BTC accepted (the original rejected it)");
        assert_eq!(
            btc.check_price_near(d("50000"), r, d("5")).unwrap_err().to_string(),
            "Price 50000 is outside reasonable range for BTCUSD"
        );
        assert!(btc.check_price_near(d("0"), r, d("5")).is_err());
    }

    #[test]
    fn margin_conversions() {
        let eurusd = lookup("EURUSD").unwrap();
        // Margin in EUR, account in USD: 1 EUR = price USD.
        assert_eq!(eurusd.margin_to_account(Currency::USD, Some(d("1.1")), None).unwrap().as_decimal(), d("1.1"));
        // Margin in EUR, account in EUR: identity.
        assert_eq!(eurusd.margin_to_account(Currency::EUR, Some(d("1.1")), None).unwrap().as_decimal(), d("1"));
        // Margin in EUR, account in GBP: explicit rate required.
        assert!(eurusd.margin_to_account(Currency::GBP, Some(d("1.1")), None).is_err());
        let xau = lookup("XAUUSD").unwrap();
        assert_eq!(xau.margin_to_account(Currency::USD, Some(d("2050")), None).unwrap().as_decimal(), d("1"));
    }
}
