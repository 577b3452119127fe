//! Test helpers shared by the crate's unit tests.

use nusatrade_domain::instrument::Symbol;
use rust_decimal::Decimal;

/// A decimal from its exact text.
pub(crate) fn d(s: &str) -> Decimal {
    Decimal::from_str_exact(s).expect("test decimal")
}

/// A catalogue symbol.
pub(crate) fn sym(s: &str) -> Symbol {
    Symbol::parse(s).expect("catalogue symbol")
}
