//! The decision and risk settings a trained model trades with ([`SignalConfig`]): kept in its artefact's header,
//! read by [`crate::predict`].

use serde::{Deserialize, Serialize};

/// Decision and risk settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    /// Minimum probability of the winning class to trade, in `[0, 1]` (default 0.6, the original's).
    pub min_confidence: f64,
    /// Stop-loss distance in ATRs, `(0, 20]` (default 2.0, the `moderate` risk profile).
    pub sl_atr_multiplier: f64,
    /// Take-profit distance in ATRs, `(0, 50]` (default 4.0: the `moderate` profile's 2:1 reward to risk).
    pub tp_atr_multiplier: f64,
    /// Decimals of SL/TP prices, 0–10 (default 5, 4-digit FX with pipettes).
    pub price_decimals: u32,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig { min_confidence: 0.6, sl_atr_multiplier: 2.0, tp_atr_multiplier: 4.0, price_decimals: 5 }
    }
}

impl SignalConfig {
    /// Checks the documented ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.min_confidence) {
            return Err(format!("min_confidence must be in [0, 1], got {}", self.min_confidence));
        }
        if !(self.sl_atr_multiplier > 0.0 && self.sl_atr_multiplier <= 20.0) {
            return Err(format!("sl_atr_multiplier must be in (0, 20], got {}", self.sl_atr_multiplier));
        }
        if !(self.tp_atr_multiplier > 0.0 && self.tp_atr_multiplier <= 50.0) {
            return Err(format!("tp_atr_multiplier must be in (0, 50], got {}", self.tp_atr_multiplier));
        }
        if self.price_decimals > 10 {
            return Err(format!("price_decimals must be 0–10, got {}", self.price_decimals));
        }
        Ok(())
    }
}
