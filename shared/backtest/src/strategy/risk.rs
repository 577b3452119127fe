//! `RiskManagement` → the engine's [`Risk`], with every problem of the types and values reported.

use nusatrade_domain::trailing::{TrailingStopSettings, TrailingType};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;

use super::{Problem, RiskManagement, TrailingStopConfig};
use crate::engine::{Risk, Sizing, StopRule, TargetRule};

/// Largest stop or target in pips.
const MAX_PIPS: f64 = 100_000.0;
/// Largest ATR multiple or risk:reward ratio.
const MAX_MULTIPLE: f64 = 100.0;
/// Largest position, lots.
const MAX_LOTS: f64 = 1_000.0;

/// `x` as a decimal (shortest representation), if it fits.
pub(super) fn decimal(x: f64) -> Option<Decimal> {
    Decimal::from_f64(x)
}

fn stop_kind(s: &str) -> Option<&'static str> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "atr_based" | "atr" => "atr",
        "fixed_pips" | "pips" | "fixed" => "pips",
        "percentage" | "percent" => "percent",
        "none" | "" => "none",
        _ => return None,
    })
}

fn target_kind(s: &str) -> Option<&'static str> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "risk_reward" | "rr" | "risk_reward_ratio" => "rr",
        other => return stop_kind(other),
    })
}

/// Checks a value of kind `kind` (`atr`, `pips`, `percent`, `rr`): finite, positive, below the kind's cap.
fn check_value(kind: &str, value: f64, field: &str, problems: &mut Vec<Problem>) -> bool {
    let max = match kind {
        "pips" => MAX_PIPS,
        "percent" => 100.0,
        _ => MAX_MULTIPLE,
    };
    if value.is_finite() && value > 0.0 && value <= max {
        return true;
    }
    let msg = format!("risk management: {field} must be a number above 0 and at most {max}, got {value}");
    problems.push(Problem::new(format!("risk_management.{field}"), msg));
    false
}

fn trailing(cfg: &TrailingStopConfig, problems: &mut Vec<Problem>) -> Option<TrailingStopSettings> {
    let before = problems.len();
    let trailing_type = match cfg.trailing_type.trim().to_ascii_lowercase().as_str() {
        "atr_based" | "atr" => TrailingType::AtrBased,
        "fixed_pips" | "pips" | "fixed" => TrailingType::FixedPips,
        "percentage" | "percent" => TrailingType::Percentage,
        _ => {
            let msg = format!(
                "risk management: unknown trailing_type '{}' (expected atr_based, fixed_pips or percentage)",
                cfg.trailing_type
            );
            problems.push(Problem::new("risk_management.trailing_stop.trailing_type", msg));
            TrailingType::AtrBased
        }
    };
    let mut num = |field: &str, v: f64, max: f64| -> Decimal {
        match decimal(v) {
            Some(d) if v.is_finite() && (0.0..=max).contains(&v) => d,
            _ => {
                let msg = format!("risk management: trailing_stop.{field} must be a number from 0 to {max}, got {v}");
                problems.push(Problem::new(format!("risk_management.trailing_stop.{field}"), msg));
                Decimal::ZERO
            }
        }
    };
    let settings = TrailingStopSettings {
        enabled: true,
        trailing_type,
        activation_pips: num("activation_pips", cfg.activation_pips, MAX_PIPS),
        trail_distance_pips: num("trail_distance_pips", cfg.trail_distance_pips, MAX_PIPS),
        atr_multiplier: num("atr_multiplier", cfg.atr_multiplier, MAX_MULTIPLE),
        breakeven_enabled: cfg.breakeven_enabled,
        breakeven_pips: num("breakeven_pips", cfg.breakeven_pips, MAX_PIPS),
        ..TrailingStopSettings::default()
    };
    (problems.len() == before).then_some(settings)
}

/// Checks `rm`, pushing every problem, and returns the engine's risk settings when there are none (mapping on
/// [`RiskManagement::to_risk`]).
pub(super) fn check(rm: &RiskManagement, problems: &mut Vec<Problem>) -> Option<Risk> {
    let before = problems.len();
    let stop = match stop_kind(&rm.stop_loss_type) {
        Some(kind) => {
            let ok = kind == "none" || check_value(kind, rm.stop_loss_value, "stop_loss_value", problems);
            match kind {
                _ if !ok => StopRule::None,
                "atr" => StopRule::Atr(rm.stop_loss_value),
                "pips" => StopRule::Pips(rm.stop_loss_value),
                "percent" => StopRule::Percent(rm.stop_loss_value),
                _ => StopRule::None,
            }
        }
        None => {
            let msg = format!(
                "risk management: unknown stop_loss_type '{}' (expected atr_based, fixed_pips, percentage or none)",
                rm.stop_loss_type
            );
            problems.push(Problem::new("risk_management.stop_loss_type", msg));
            StopRule::None
        }
    };
    let target = match target_kind(&rm.take_profit_type) {
        Some(kind) => {
            let ok = kind == "none" || check_value(kind, rm.take_profit_value, "take_profit_value", problems);
            match kind {
                _ if !ok => TargetRule::None,
                "rr" => {
                    if stop_kind(&rm.stop_loss_type) == Some("none") {
                        let msg = "risk management: take_profit_type 'risk_reward' needs a stop loss";
                        problems.push(Problem::new("risk_management.take_profit_type", msg));
                    }
                    TargetRule::RiskReward(rm.take_profit_value)
                }
                "atr" => TargetRule::Atr(rm.take_profit_value),
                "pips" => TargetRule::Pips(rm.take_profit_value),
                "percent" => TargetRule::Percent(rm.take_profit_value),
                _ => TargetRule::None,
            }
        }
        None => {
            let msg = format!(
                "risk management: unknown take_profit_type '{}' (expected risk_reward, atr_based, fixed_pips, percentage or none)",
                rm.take_profit_type
            );
            problems.push(Problem::new("risk_management.take_profit_type", msg));
            TargetRule::None
        }
    };
    let trailing = rm.trailing_stop.as_ref().filter(|t| t.enabled).and_then(|t| trailing(t, problems));
    let max_lots = match decimal(rm.max_position_size) {
        Some(d)
            if rm.max_position_size.is_finite() && rm.max_position_size > 0.0 && rm.max_position_size <= MAX_LOTS =>
        {
            Some(d)
        }
        _ => {
            let msg = format!(
                "risk management: max_position_size must be above 0 and at most {MAX_LOTS} lots, got {}",
                rm.max_position_size
            );
            problems.push(Problem::new("risk_management.max_position_size", msg));
            None
        }
    };
    let r = rm.risk_per_trade_percent;
    if !(r.is_finite() && r > 0.0 && r <= 100.0) {
        let msg = format!("risk management: risk_per_trade_percent must be above 0 and at most 100, got {r}");
        problems.push(Problem::new("risk_management.risk_per_trade_percent", msg));
    }
    if let Some(loss) = rm.max_daily_loss
        && !(loss.is_finite() && loss >= 0.0)
    {
        let msg = format!("risk management: max_daily_loss must be a number of at least 0, got {loss}");
        problems.push(Problem::new("risk_management.max_daily_loss", msg));
    }
    (problems.len() == before).then_some(Risk { stop_loss: stop, take_profit: target, trailing, max_lots })
}

impl RiskManagement {
    /// The engine's risk settings, or every problem (unknown types, values out of range).
    ///
    /// Mapping: stop `atr_based` → [`StopRule::Atr`], `fixed_pips` → [`StopRule::Pips`], `percentage` →
    /// [`StopRule::Percent`], `none` → [`StopRule::None`]; target likewise plus `risk_reward` →
    /// [`TargetRule::RiskReward`] (needs a stop); `trailing_stop` with `enabled: true` → the live trailing rules
    /// (breakeven per `breakeven_enabled`, the 0.5 % percentage and 2-pip breakeven lock of §4.6), absent or
    /// `enabled: false` → none (neither trailing nor breakeven); `max_position_size` → `max_lots`.
    pub fn to_risk(&self) -> Result<Risk, Vec<Problem>> {
        let mut problems = Vec::new();
        check(self, &mut problems).ok_or(problems)
    }

    /// [`Sizing::RiskPercent`] with `risk_per_trade_percent`, if it is valid (in (0, 100]).
    pub fn risk_sizing(&self) -> Option<Sizing> {
        let r = self.risk_per_trade_percent;
        (r.is_finite() && r > 0.0 && r <= 100.0).then(|| decimal(r).map(Sizing::RiskPercent)).flatten()
    }
}
