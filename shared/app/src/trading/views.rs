//! Wire shapes both trading groups show: an order's trailing stop ([`super::orders`]) and a risk profile's
//! default one ([`super::sizing`]).

use nusatrade_domain::trailing::{TrailingStopSettings, TrailingType};
use serde::Serialize;

use crate::wire::num;

/// `trailing_stop` of an order or a risk profile, with both `type` (the original's key) and `trailing_type` (what
/// the dashboard reads, contract §9.2 item 2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrailingOut {
    pub enabled: bool,
    #[serde(rename = "type")]
    pub kind: TrailingType,
    pub trailing_type: TrailingType,
    pub activation_pips: f64,
    pub trail_distance_pips: f64,
    pub atr_multiplier: f64,
    /// Percent of the price for the `percentage` type.
    pub percentage: f64,
    pub breakeven_enabled: bool,
    pub breakeven_pips: f64,
    /// Pips locked by the breakeven move (the original's hidden 2-pip offset).
    pub lock_profit_pips: f64,
}

impl From<&TrailingStopSettings> for TrailingOut {
    fn from(t: &TrailingStopSettings) -> Self {
        TrailingOut {
            enabled: t.enabled,
            kind: t.trailing_type,
            trailing_type: t.trailing_type,
            activation_pips: num(t.activation_pips),
            trail_distance_pips: num(t.trail_distance_pips),
            atr_multiplier: num(t.atr_multiplier),
            percentage: num(t.percentage),
            breakeven_enabled: t.breakeven_enabled,
            breakeven_pips: num(t.breakeven_pips),
            lock_profit_pips: num(t.lock_profit_pips),
        }
    }
}
