//! Settings of the trading rules (environment names in [`TradingConfig::from_env`]).

use chrono::Duration;
use nusatrade_domain::instrument::MAX_LOT_SIZE;
use nusatrade_domain::money::Currency;
use rust_decimal::Decimal;

/// Settings of the trading rules (environment names in [`TradingConfig::from_env`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TradingConfig {
    /// Open-position reservations per user (`NUSATRADE_MAX_OPEN_POSITIONS`, default 20, the original's
    /// `MAX_POSITIONS_PER_USER`).
    pub max_open_positions: u32,
    /// Largest lot size of one order (the original's `MAX_LOT_SIZE`, 10), on top of the instrument's maximum.
    pub max_lot: Decimal,
    /// How long an idempotency key is remembered (24 h).
    pub idempotency_ttl: Duration,
    /// Account currency assumed when the connector does not report one (the original connector never did).
    pub default_account_currency: Currency,
    /// Leverage assumed for the margin check when the connector does not report one.
    pub default_leverage: u32,
    /// How far (percent) an order's price may be from the last price a connector reported.
    pub max_price_deviation_percent: Decimal,
    /// How old that last price may be to be used.
    pub quote_max_age: Duration,
}

impl Default for TradingConfig {
    fn default() -> Self {
        TradingConfig {
            max_open_positions: 20,
            max_lot: MAX_LOT_SIZE,
            idempotency_ttl: Duration::hours(24),
            default_account_currency: Currency::USD,
            default_leverage: 100,
            max_price_deviation_percent: Decimal::TEN,
            quote_max_age: Duration::minutes(10),
        }
    }
}

impl TradingConfig {
    /// Largest accepted `NUSATRADE_MAX_OPEN_POSITIONS`.
    pub const MAX_OPEN_POSITIONS_LIMIT: u32 = 1000;

    /// Reads `NUSATRADE_MAX_OPEN_POSITIONS` (1..=1000); other settings keep their defaults.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut c = TradingConfig::default();
        if let Some(v) = get("NUSATRADE_MAX_OPEN_POSITIONS") {
            c.max_open_positions =
                v.trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=Self::MAX_OPEN_POSITIONS_LIMIT).contains(n))
                    .ok_or_else(|| format!("NUSATRADE_MAX_OPEN_POSITIONS must be 1..=1000, got {v:?}"))?;
        }
        Ok(c)
    }
}
