//! Trailing stop and breakeven (contract §4.6), with the instrument's pips instead of 0.0001.
//!
//! Per price update, at most one stop-loss change:
//! 1. `profit_pips` = move in the position's favour, in pips, rounded to 1 dp.
//! 2. **Breakeven** (if `breakeven_enabled` and not yet hit): once `profit_pips ≥ breakeven_pips`, the candidate
//!    SL is entry ± `lock_profit_pips` (the original's fixed 2-pip offset). Applied (and `breakeven_hit` set)
//!    only if it improves the SL; otherwise trailing is evaluated.
//! 3. **Trailing** (if `enabled`): once `profit_pips ≥ activation_pips`, candidate = best price seen ∓ distance
//!    (fixed pips, ATR × multiplier — 15 pips without an ATR — or a percentage of the price). Applied only if it
//!    improves the SL **and** is on the profit side of the entry ("lock profit").
//!
//! Two safety rules added to the original: a new SL is always strictly on the protective side of the current
//! price (an SL at or through the price would be refused by MT5 as invalid stops, or close at once), and it is
//! rounded to the instrument's digits before being compared with the current SL. The best price seen is updated
//! on every call (the original skipped the update on the call that moved to breakeven).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::instrument::Instrument;
use crate::money::{Side, dec};

/// Trail distance used by the ATR method when no ATR is known (contract §4.6: 15 pips).
pub const ATR_FALLBACK_TRAIL_PIPS: Decimal = dec(15, 0);

/// How the trail distance is computed. Wire values are snake_case (contract §2.4 `trailing_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TrailingType {
    /// `trail_distance_pips` pips.
    FixedPips,
    /// `atr × atr_multiplier` (15 pips without an ATR). The original's default.
    #[default]
    AtrBased,
    /// `price × percentage / 100`.
    Percentage,
}

/// Trailing-stop settings of a position or a risk profile (the original's `TrailingStopSettings`, contract §2.4,
/// defaults from §4.6).
///
/// Serialised with both `type` and `trailing_type` (the original emitted `type`, the dashboard reads
/// `trailing_type`, contract §9.2 item 2); deserialised from either (both present must agree). Missing fields take
/// the defaults; negative numbers are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SettingsWire", into = "SettingsWire")]
pub struct TrailingStopSettings {
    /// Trailing on/off (default true). Breakeven has its own flag.
    pub enabled: bool,
    /// Distance method (default `atr_based`).
    pub trailing_type: TrailingType,
    /// Profit in pips before trailing starts (default 20).
    pub activation_pips: Decimal,
    /// Trail distance in pips for `fixed_pips` (default 15).
    pub trail_distance_pips: Decimal,
    /// ATR multiple for `atr_based` (default 1.5).
    pub atr_multiplier: Decimal,
    /// Percent of the price for `percentage` (default 0.5).
    pub percentage: Decimal,
    /// Breakeven on/off (default true).
    pub breakeven_enabled: bool,
    /// Profit in pips that triggers the breakeven move (default 15).
    pub breakeven_pips: Decimal,
    /// Pips of profit locked by the breakeven move: SL = entry ± this (default 2, the original's offset).
    pub lock_profit_pips: Decimal,
}

impl Default for TrailingStopSettings {
    fn default() -> Self {
        TrailingStopSettings {
            enabled: true,
            trailing_type: TrailingType::AtrBased,
            activation_pips: dec(20, 0),
            trail_distance_pips: dec(15, 0),
            atr_multiplier: dec(15, 1),
            percentage: dec(5, 1),
            breakeven_enabled: true,
            breakeven_pips: dec(15, 0),
            lock_profit_pips: dec(2, 0),
        }
    }
}

impl TrailingStopSettings {
    /// Settings that never move the stop (the "disable" of `PUT /trading/positions/{id}/trailing-stop`).
    pub fn disabled() -> Self {
        TrailingStopSettings { enabled: false, breakeven_enabled: false, ..Self::default() }
    }
}

#[derive(Serialize, Deserialize)]
struct SettingsWire {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<TrailingType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trailing_type: Option<TrailingType>,
    #[serde(default = "d20")]
    activation_pips: Decimal,
    #[serde(default = "d15")]
    trail_distance_pips: Decimal,
    #[serde(default = "d1_5")]
    atr_multiplier: Decimal,
    #[serde(default = "d0_5")]
    percentage: Decimal,
    #[serde(default = "yes")]
    breakeven_enabled: bool,
    #[serde(default = "d15")]
    breakeven_pips: Decimal,
    #[serde(default = "d2")]
    lock_profit_pips: Decimal,
}

fn yes() -> bool {
    true
}
fn d20() -> Decimal {
    dec(20, 0)
}
fn d15() -> Decimal {
    dec(15, 0)
}
fn d1_5() -> Decimal {
    dec(15, 1)
}
fn d0_5() -> Decimal {
    dec(5, 1)
}
fn d2() -> Decimal {
    dec(2, 0)
}

impl From<TrailingStopSettings> for SettingsWire {
    fn from(s: TrailingStopSettings) -> Self {
        SettingsWire {
            enabled: s.enabled,
            kind: Some(s.trailing_type),
            trailing_type: Some(s.trailing_type),
            activation_pips: s.activation_pips,
            trail_distance_pips: s.trail_distance_pips,
            atr_multiplier: s.atr_multiplier,
            percentage: s.percentage,
            breakeven_enabled: s.breakeven_enabled,
            breakeven_pips: s.breakeven_pips,
            lock_profit_pips: s.lock_profit_pips,
        }
    }
}

impl TryFrom<SettingsWire> for TrailingStopSettings {
    type Error = String;

    fn try_from(w: SettingsWire) -> Result<Self, Self::Error> {
        let trailing_type = match (w.kind, w.trailing_type) {
            (Some(a), Some(b)) if a != b => return Err("type and trailing_type disagree".into()),
            (a, b) => a.or(b).unwrap_or_default(),
        };
        let numbers = [
            ("activation_pips", w.activation_pips),
            ("trail_distance_pips", w.trail_distance_pips),
            ("atr_multiplier", w.atr_multiplier),
            ("percentage", w.percentage),
            ("breakeven_pips", w.breakeven_pips),
            ("lock_profit_pips", w.lock_profit_pips),
        ];
        if let Some((name, _)) = numbers.iter().find(|(_, v)| *v < Decimal::ZERO) {
            return Err(format!("{name} must not be negative"));
        }
        Ok(TrailingStopSettings {
            enabled: w.enabled,
            trailing_type,
            activation_pips: w.activation_pips,
            trail_distance_pips: w.trail_distance_pips,
            atr_multiplier: w.atr_multiplier,
            percentage: w.percentage,
            breakeven_enabled: w.breakeven_enabled,
            breakeven_pips: w.breakeven_pips,
            lock_profit_pips: w.lock_profit_pips,
        })
    }
}

/// Why the stop moved; also the `action` of the `TRADE_MODIFY` command (contract §3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// Moved to entry ± lock profit.
    Breakeven,
    /// Trailing the best price.
    Trailing,
}

/// A stop-loss move decided by the trailing logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StopUpdate {
    /// The new stop-loss price, rounded to the instrument's digits.
    pub new_stop_loss: Decimal,
    /// Breakeven or trailing.
    pub reason: StopReason,
}

/// Per-position trailing state (contract §4.6 "State per position").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailingState {
    /// Position direction.
    pub side: Side,
    /// Open price.
    pub entry: Decimal,
    /// Current stop loss, if any.
    pub stop_loss: Option<Decimal>,
    /// Best price seen: highest for BUY, lowest for SELL (starts at the entry).
    pub best_price: Decimal,
    /// Whether the breakeven move has been made.
    pub breakeven_hit: bool,
}

impl TrailingState {
    /// A fresh state for an open position.
    pub fn new(side: Side, entry: Decimal, stop_loss: Option<Decimal>) -> Self {
        TrailingState { side, entry, stop_loss, best_price: entry, breakeven_hit: false }
    }

    /// Is `candidate` a better (more protective) stop than the current one? Higher for BUY, lower for SELL.
    fn improves(&self, candidate: Decimal) -> bool {
        match (self.side, self.stop_loss) {
            (_, None) => true,
            (Side::Buy, Some(sl)) => candidate > sl,
            (Side::Sell, Some(sl)) => candidate < sl,
        }
    }

    /// Is `candidate` strictly on the protective side of `price` (below it for BUY, above for SELL)?
    fn behind(&self, candidate: Decimal, price: Decimal) -> bool {
        match self.side {
            Side::Buy => candidate < price && candidate > Decimal::ZERO,
            Side::Sell => candidate > price,
        }
    }

    /// Processes one price update; returns the stop move, if any, and records it in the state.
    /// `atr` is the average true range in price units, when known.
    pub fn on_price(
        &mut self,
        instrument: &Instrument,
        settings: &TrailingStopSettings,
        price: Decimal,
        atr: Option<Decimal>,
    ) -> Option<StopUpdate> {
        if price <= Decimal::ZERO {
            return None;
        }
        let sign = self.side.sign();
        self.best_price = match self.side {
            Side::Buy => self.best_price.max(price),
            Side::Sell => self.best_price.min(price),
        };
        let profit_pips = instrument.to_pips(sign * (price - self.entry)).round_dp(1);

        if settings.breakeven_enabled && !self.breakeven_hit && profit_pips >= settings.breakeven_pips {
            let candidate = instrument.round_price(self.entry + sign * instrument.from_pips(settings.lock_profit_pips));
            if self.improves(candidate) && self.behind(candidate, price) {
                self.stop_loss = Some(candidate);
                self.breakeven_hit = true;
                return Some(StopUpdate { new_stop_loss: candidate, reason: StopReason::Breakeven });
            }
        }

        if settings.enabled && profit_pips >= settings.activation_pips {
            let distance = match settings.trailing_type {
                TrailingType::FixedPips => instrument.from_pips(settings.trail_distance_pips),
                TrailingType::AtrBased => match atr.filter(|a| *a > Decimal::ZERO) {
                    Some(a) => a * settings.atr_multiplier,
                    None => instrument.from_pips(ATR_FALLBACK_TRAIL_PIPS),
                },
                TrailingType::Percentage => price * settings.percentage / Decimal::ONE_HUNDRED,
            };
            if distance <= Decimal::ZERO {
                return None;
            }
            let candidate = instrument.round_price(self.best_price - sign * distance);
            let beyond_entry = sign * (candidate - self.entry) > Decimal::ZERO;
            if beyond_entry && self.improves(candidate) && self.behind(candidate, price) {
                self.stop_loss = Some(candidate);
                return Some(StopUpdate { new_stop_loss: candidate, reason: StopReason::Trailing });
            }
        }
        None
    }
}

/// Stateless form: the new stop for a position given only its side, open price, current price and current SL
/// (best price seen = the better of entry and the current price; breakeven not yet hit). `None` = leave it.
pub fn next_stop_loss(
    instrument: &Instrument,
    settings: &TrailingStopSettings,
    side: Side,
    entry: Decimal,
    price: Decimal,
    stop_loss: Option<Decimal>,
    atr: Option<Decimal>,
) -> Option<StopUpdate> {
    TrailingState::new(side, entry, stop_loss).on_price(instrument, settings, price, atr)
}

/// The SL-hit check (contract §4.6 step 5): BUY closes when `price ≤ SL`, SELL when `price ≥ SL`.
pub fn stop_hit(side: Side, price: Decimal, stop_loss: Decimal) -> bool {
    match side {
        Side::Buy => price <= stop_loss,
        Side::Sell => price >= stop_loss,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::instrument::{INSTRUMENTS, lookup};
    use crate::money::d;

    fn fixed(activation: &str, distance: &str, breakeven: Option<&str>) -> TrailingStopSettings {
        TrailingStopSettings {
            trailing_type: TrailingType::FixedPips,
            activation_pips: d(activation),
            trail_distance_pips: d(distance),
            breakeven_enabled: breakeven.is_some(),
            breakeven_pips: breakeven.map_or(Decimal::ZERO, d),
            ..TrailingStopSettings::default()
        }
    }

    #[test]
    fn stateless_table() {
        type Case<'a> = (
            &'a str,
            &'a str,
            Side,
            &'a str,
            &'a str,
            Option<&'a str>,
            TrailingStopSettings,
            Option<(&'a str, StopReason)>,
        );
        use Side::{Buy, Sell};
        let trailed = |p| Some((p, StopReason::Trailing));
        let to_breakeven = |p| Some((p, StopReason::Breakeven));
        let no_be = fixed("20", "15", None);
        let be = fixed("20", "15", Some("15"));
        let cases: &[Case] = &[
            // EURUSD BUY 1.10000, +10 pips: below activation and no breakeven.
            ("buy below activation", "EURUSD", Buy, "1.10000", "1.10100", Some("1.09800"), no_be, None),
            // +30 pips: candidate 1.10300 − 15 pips = 1.10150 > entry and > SL.
            ("buy trails", "EURUSD", Buy, "1.10000", "1.10300", Some("1.09800"), no_be, trailed("1.10150")),
            // +30 pips but SL already 1.10200 (better than 1.10150): no move against the position.
            ("buy never loosens", "EURUSD", Buy, "1.10000", "1.10300", Some("1.10200"), no_be, None),
            // +20 pips exactly: activation reached, candidate 1.10050 (> entry).
            ("buy at activation", "EURUSD", Buy, "1.10000", "1.10200", None, no_be, trailed("1.10050")),
            // +16 pips with breakeven at 15: SL → entry + 2 pips = 1.10020.
            ("buy breakeven", "EURUSD", Buy, "1.10000", "1.10160", Some("1.09800"), be, to_breakeven("1.10020")),
            // Breakeven candidate 1.10020 does not improve SL 1.10050 → trailing evaluated: 1.10400 − 15 = 1.10250.
            (
                "buy breakeven not improving falls to trailing",
                "EURUSD",
                Buy,
                "1.10000",
                "1.10400",
                Some("1.10050"),
                be,
                trailed("1.10250"),
            ),
            // SELL EURUSD 1.10000 at 1.09700 (+30 pips): 1.09700 + 15 pips = 1.09850 < SL 1.10200.
            ("sell trails", "EURUSD", Sell, "1.10000", "1.09700", Some("1.10200"), no_be, trailed("1.09850")),
            // SELL losing: price above entry.
            ("sell losing", "EURUSD", Sell, "1.10000", "1.10300", Some("1.10500"), be, None),
            // SELL breakeven: +15 pips → entry − 2 pips = 1.09980.
            ("sell breakeven", "EURUSD", Sell, "1.10000", "1.09850", None, be, to_breakeven("1.09980")),
            // USDJPY BUY 150.000, +30 pips = 150.300 (pip 0.01): 150.300 − 0.150 = 150.150.
            ("jpy pips", "USDJPY", Buy, "150.000", "150.300", Some("149.500"), no_be, trailed("150.150")),
            // USDJPY +0.0030 is 0.3 pips, not 30: the original's 0.0001 pip would have trailed here.
            ("jpy not fooled by 4-digit pips", "USDJPY", Buy, "150.000", "150.003", Some("149.500"), no_be, None),
            // XAUUSD BUY 2050.00 with pip 0.01: +25 pips = 2050.25 → 2050.25 − 0.15 = 2050.10.
            ("gold pips", "XAUUSD", Buy, "2050.00", "2050.25", None, no_be, trailed("2050.10")),
            // Trail distance wider than the profit: candidate 1.10300 − 50 pips = 1.09800 < entry → not applied.
            ("trail never below entry", "EURUSD", Buy, "1.10000", "1.10300", None, fixed("20", "50", None), None),
            // Breakeven threshold 0 with a 2-pip lock at +1 pip: entry + 2 pips would be above the price → refused.
            (
                "breakeven never through the price",
                "EURUSD",
                Buy,
                "1.10000",
                "1.10010",
                None,
                fixed("100", "15", Some("0")),
                None,
            ),
            // Disabled entirely.
            ("disabled", "EURUSD", Buy, "1.10000", "1.11000", Some("1.09000"), TrailingStopSettings::disabled(), None),
        ];
        for (label, sym, side, entry, price, sl, settings, want) in cases {
            let i = lookup(sym).unwrap();
            let got = next_stop_loss(i, settings, *side, d(entry), d(price), sl.map(d), None);
            let want = want.map(|(p, r)| StopUpdate { new_stop_loss: d(p), reason: r });
            assert_eq!(got, want, "{label}");
        }
    }

    #[test]
    fn atr_and_percentage_distances() {
        let eurusd = lookup("EURUSD").unwrap();
        let atr = TrailingStopSettings { breakeven_enabled: false, ..TrailingStopSettings::default() };
        // +40 pips at 1.10400; ATR 0.0008 × 1.5 = 0.0012 → 1.10280.
        let got = next_stop_loss(eurusd, &atr, Side::Buy, d("1.1"), d("1.104"), None, Some(d("0.0008")));
        assert_eq!(got.map(|u| u.new_stop_loss), Some(d("1.10280")), "atr");
        // No ATR: 15 pips → 1.10250.
        let got = next_stop_loss(eurusd, &atr, Side::Buy, d("1.1"), d("1.104"), None, None);
        assert_eq!(got.map(|u| u.new_stop_loss), Some(d("1.10250")), "atr fallback");
        // Percentage 0.1 % of 1.104 = 0.001104 → 1.102896 → 1.10290 (5 digits).
        let pct = TrailingStopSettings {
            trailing_type: TrailingType::Percentage,
            percentage: d("0.1"),
            breakeven_enabled: false,
            ..TrailingStopSettings::default()
        };
        let got = next_stop_loss(eurusd, &pct, Side::Buy, d("1.1"), d("1.104"), None, None);
        assert_eq!(got.map(|u| u.new_stop_loss), Some(d("1.10290")), "percentage");
    }

    #[test]
    fn stateful_sequence_tracks_best_price() {
        let eurusd = lookup("EURUSD").unwrap();
        let s = fixed("20", "15", Some("15"));
        let mut st = TrailingState::new(Side::Buy, d("1.10000"), Some(d("1.09500")));
        let prices = ["1.10100", "1.10160", "1.10300", "1.10200", "1.10500", "1.10400"];
        let want = [
            None,
            Some(("1.10020", StopReason::Breakeven)),
            Some(("1.10150", StopReason::Trailing)),
            None, // pull-back: best price still 1.10300, candidate 1.10150 = SL.
            Some(("1.10350", StopReason::Trailing)),
            None,
        ];
        for (p, w) in prices.iter().zip(want) {
            let got = st.on_price(eurusd, &s, d(p), None);
            assert_eq!(got, w.map(|(x, r)| StopUpdate { new_stop_loss: d(x), reason: r }), "price {p}");
        }
        assert!(st.breakeven_hit);
        assert_eq!(st.best_price, d("1.10500"));
        assert!(stop_hit(Side::Buy, d("1.10350"), st.stop_loss.unwrap()));
        assert!(!stop_hit(Side::Sell, d("1.1"), d("1.2")));
    }

    #[test]
    fn settings_wire_format() {
        let json = serde_json::to_value(TrailingStopSettings::default()).unwrap();
        assert_eq!(json["type"], "atr_based");
        assert_eq!(json["trailing_type"], "atr_based");
        let parsed: TrailingStopSettings = serde_json::from_str(r#"{"type":"fixed_pips"}"#).unwrap();
        assert_eq!(parsed.trailing_type, TrailingType::FixedPips);
        assert_eq!(parsed.activation_pips, d("20"), "defaults");
        let parsed: TrailingStopSettings =
            serde_json::from_str(r#"{"trailing_type":"percentage","type":"percentage","enabled":false}"#).unwrap();
        assert_eq!((parsed.trailing_type, parsed.enabled), (TrailingType::Percentage, false));
        assert!(
            serde_json::from_str::<TrailingStopSettings>(r#"{"trailing_type":"percentage","type":"atr_based"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<TrailingStopSettings>(r#"{"activation_pips":"-1"}"#).is_err());
        let round: TrailingStopSettings = serde_json::from_value(json).unwrap();
        assert_eq!(round, TrailingStopSettings::default());
    }

    fn any_settings() -> impl Strategy<Value = TrailingStopSettings> {
        let tt =
            prop_oneof![Just(TrailingType::FixedPips), Just(TrailingType::AtrBased), Just(TrailingType::Percentage)];
        (any::<bool>(), tt, 0i64..60, 0i64..60, 0i64..40, 0i64..30, any::<bool>(), 0i64..40, 0i64..10).prop_map(
            |(enabled, trailing_type, act, dist, atr_m, pct, be, be_pips, lock)| TrailingStopSettings {
                enabled,
                trailing_type,
                activation_pips: Decimal::from(act),
                trail_distance_pips: Decimal::from(dist),
                atr_multiplier: Decimal::new(atr_m, 1),
                percentage: Decimal::new(pct, 2),
                breakeven_enabled: be,
                breakeven_pips: Decimal::from(be_pips),
                lock_profit_pips: Decimal::from(lock),
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// (c) Over any price path, the stop only ever moves in the protective direction (up for BUY, down for
        /// SELL), never onto or through the current price, and a trailing move never sits on the losing side of
        /// the entry.
        #[test]
        fn stop_never_moves_against_the_position(
            idx in 0..INSTRUMENTS.len(),
            buy in any::<bool>(),
            entry_points in 1_000i64..10_000_000,
            initial_sl_points in prop::option::of(1i64..2_000),
            steps in prop::collection::vec(-400i64..400, 1..60),
            settings in any_settings(),
            atr_points in prop::option::of(0i64..500),
        ) {
            let i = &INSTRUMENTS[idx];
            let side = if buy { Side::Buy } else { Side::Sell };
            let sign = side.sign();
            let pt = i.point();
            let entry = Decimal::from(entry_points) * pt;
            let initial = initial_sl_points.map(|p| entry - sign * Decimal::from(p) * pt).filter(|p| *p > Decimal::ZERO);
            let atr = atr_points.map(|a| Decimal::from(a) * pt);
            let mut st = TrailingState::new(side, entry, initial);
            let mut price = entry;
            for step in steps {
                price += Decimal::from(step) * pt;
                if price <= Decimal::ZERO {
                    break;
                }
                let before = st.stop_loss;
                let update = st.on_price(i, &settings, price, atr);
                match update {
                    None => prop_assert_eq!(st.stop_loss, before),
                    Some(u) => {
                        let new = u.new_stop_loss;
                        prop_assert_eq!(st.stop_loss, Some(new));
                        if let Some(old) = before {
                            prop_assert!(sign * (new - old) > Decimal::ZERO, "{:?} moved {} -> {}", side, old, new);
                        }
                        prop_assert!(sign * (price - new) > Decimal::ZERO, "{:?} stop {} not behind price {}", side, new, price);
                        if u.reason == StopReason::Trailing {
                            prop_assert!(sign * (new - entry) > Decimal::ZERO, "trailing stop {} on the losing side", new);
                        }
                        prop_assert_eq!(new, i.round_price(new), "rounded to digits");
                    }
                }
            }
        }
    }
}
