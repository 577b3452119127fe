//! Position sizing, margin, SL/TP calculation and risk profiles (contract §2.4 `position-size/calculate`,
//! `calculate-sl-tp`, `risk-profiles`; §4.3–§4.5).
//!
//! Differences from the original, all deliberate:
//! * pips, pip values and contract sizes come from the [`Instrument`], never 0.0001 / $10 / 100 000 (§4.2);
//! * the account currency and the quote→account conversion are explicit ([`Instrument::quote_to_account`]);
//! * lots are rounded **down** to the volume step (the original rounded to nearest 2 dp and clamped up to 0.01,
//!   which can risk more than the budget); a size below the minimum volume is an error;
//! * entry == stop loss is [`SizingError::EntryEqualsStopLoss`] (the HTTP layer answers 422), not a division by
//!   zero (500);
//! * SL/TP are rounded to the instrument's digits, not 5 dp for everything.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::instrument::{Instrument, VolumeError};
use crate::money::{Currency, Lots, Money, MoneyError, Side, dec};
use crate::trailing::{TrailingStopSettings, TrailingType};

/// Largest accepted risk per trade, in percent of the balance (`risk_percent ≤ 10`, contract §2.4).
pub const MAX_RISK_PERCENT: Decimal = dec(10, 0);

/// Leverage of the original's margin estimate (`price × lot × 100000 / 100`, contract §4.3).
pub const DEFAULT_LEVERAGE: Decimal = dec(100, 0);

/// SL distance used when an ATR-based stop has no ATR (contract §4.4: 50 pips).
pub const FALLBACK_SL_PIPS: Decimal = dec(50, 0);

/// TP distance used when an ATR-based or risk:reward target cannot be computed (contract §4.4: 100 pips).
pub const FALLBACK_TP_PIPS: Decimal = dec(100, 0);

/// Errors of the sizing and SL/TP calculations: all are input errors (HTTP 422), never server errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizingError {
    /// `account_balance` must be > 0.
    #[error("account_balance must be greater than 0")]
    InvalidBalance,
    /// `risk_percent` must be in (0, 10].
    #[error("risk_percent must be greater than 0 and at most 10")]
    InvalidRiskPercent,
    /// `entry_price` must be > 0.
    #[error("entry_price must be greater than 0")]
    InvalidEntry,
    /// `stop_loss` must be > 0 (a price) or a positive distance in pips.
    #[error("stop_loss must be greater than 0")]
    InvalidStopLoss,
    /// Entry and stop loss are the same price: the risk per lot is zero, no size exists.
    #[error("stop_loss must differ from entry_price")]
    EntryEqualsStopLoss,
    /// Leverage must be > 0.
    #[error("leverage must be greater than 0")]
    InvalidLeverage,
    /// A value that must not be negative was (`sl_value`, `tp_value`, `atr`).
    #[error("{0} must not be negative")]
    Negative(&'static str),
    /// The computed stop loss or take profit is not a positive price (e.g. a SELL target below zero).
    #[error("computed {0} is not a positive price")]
    NonPositivePrice(&'static str),
    /// Currency conversion problem (missing or invalid rate).
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// The risk budget does not reach the instrument's minimum volume, or another volume rule failed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

/// Where the stop loss is: an absolute price or a distance in the instrument's pips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopLoss {
    /// An absolute stop-loss price (the original's `stop_loss` field).
    Price(Decimal),
    /// A distance from the entry in pips of the instrument.
    Pips(Decimal),
}

/// Inputs of [`position_size`] (`POST /trading/position-size/calculate`, original fields plus the account
/// currency and an optional explicit quote→account conversion rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizingRequest {
    /// Account balance in the account currency (> 0).
    pub account_balance: Decimal,
    /// Risk per trade in percent of the balance, (0, 10].
    pub risk_percent: Decimal,
    /// Entry price (> 0).
    pub entry_price: Decimal,
    /// Stop loss, as a price or a pip distance.
    pub stop_loss: StopLoss,
    /// Currency of the account.
    pub account_currency: Currency,
    /// 1 unit of the instrument's quote currency = `rate` units of the account currency. Optional when the
    /// account currency is the quote (identity) or the base (derived as 1 / entry price).
    pub conversion_rate: Option<Decimal>,
}

/// Result of [`position_size`]. Amounts are unrounded decimals in the account currency; presentation rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PositionSize {
    /// Volume: a multiple of the instrument's step, within [min, max], rounded down.
    pub lot_size: Lots,
    /// True when the budget allowed more than the maximum volume and the size was capped.
    pub capped: bool,
    /// The risk budget: `balance × risk% / 100`.
    pub risk_amount: Decimal,
    /// The loss at the stop with `lot_size`: always ≤ `risk_amount`.
    pub risk_at_size: Decimal,
    /// Stop distance in the instrument's pips.
    pub stop_loss_pips: Decimal,
    /// Value of one pip for one lot, in the account currency.
    pub pip_value_per_lot: Decimal,
    /// The account currency.
    pub account_currency: Currency,
}

fn positive(v: Decimal, err: SizingError) -> Result<Decimal, SizingError> {
    if v > Decimal::ZERO { Ok(v) } else { Err(err) }
}

fn mul(a: Decimal, b: Decimal) -> Result<Decimal, SizingError> {
    a.checked_mul(b).ok_or(SizingError::Money(MoneyError::Overflow))
}

fn div(a: Decimal, b: Decimal) -> Result<Decimal, SizingError> {
    a.checked_div(b).ok_or(SizingError::Money(MoneyError::Overflow))
}

/// Position size for a risk budget (contract §4.3 "Position size", with real instrument specs).
///
/// `risk = balance × risk% / 100`; `loss per lot = |entry − SL| × contract_size × (quote → account)`;
/// `lots = floor_to_step(risk / loss per lot)`, capped at the maximum. The result never risks more than the
/// budget: after rounding, the loss at the stop is re-checked with exact multiplications.
pub fn position_size(instrument: &Instrument, req: &SizingRequest) -> Result<PositionSize, SizingError> {
    let balance = positive(req.account_balance, SizingError::InvalidBalance)?;
    let risk_pct = positive(req.risk_percent, SizingError::InvalidRiskPercent)?;
    if risk_pct > MAX_RISK_PERCENT {
        return Err(SizingError::InvalidRiskPercent);
    }
    let entry = positive(req.entry_price, SizingError::InvalidEntry)?;
    let distance = match req.stop_loss {
        StopLoss::Price(sl) => (entry - positive(sl, SizingError::InvalidStopLoss)?).abs(),
        StopLoss::Pips(p) if p < Decimal::ZERO => return Err(SizingError::InvalidStopLoss),
        StopLoss::Pips(p) => mul(p, instrument.pip_size)?,
    };
    if distance.is_zero() {
        return Err(SizingError::EntryEqualsStopLoss);
    }
    let risk_amount = div(mul(balance, risk_pct)?, Decimal::ONE_HUNDRED)?;
    let conv = instrument.quote_to_account(req.account_currency, Some(entry), req.conversion_rate)?;

    // loss(lots) = lots × distance × contract × num / den ≤ risk  ⇔  lots × loss_num ≤ risk × den.
    let loss_num = mul(mul(distance, instrument.contract_size)?, conv.numerator())?;
    let budget = mul(risk_amount, conv.denominator())?;
    let wanted = div(budget, loss_num)?;
    let mut fitted = instrument.floor_lots(wanted)?;
    // Decimal division rounds at 28 significant digits: a quotient a hair above a step boundary could floor
    // one step too high. Re-check exactly and step down once if needed.
    if mul(fitted.lots.value(), loss_num)? > budget {
        fitted = instrument.floor_lots(fitted.lots.value() - instrument.volume_step)?;
    }
    let lots = fitted.lots;
    let risk_at_size = conv.apply(mul(mul(lots.value(), distance)?, instrument.contract_size)?)?;
    let pip_value_per_lot = instrument.pip_value(Lots::new_unchecked(Decimal::ONE), &conv)?;
    Ok(PositionSize {
        lot_size: lots,
        capped: fitted.capped,
        risk_amount,
        risk_at_size,
        stop_loss_pips: instrument.to_pips(distance),
        pip_value_per_lot,
        account_currency: req.account_currency,
    })
}

/// Margin required to open `lots` at `price` with `leverage` (1:leverage), in the account currency.
///
/// MT5's rule: forex (margin currency = base) `lots × contract_size / leverage` in the base currency; CFDs, metals,
/// crypto, indices (margin currency = quote) `lots × contract_size × price / leverage`; then margin currency →
/// account currency, explicit `rate` or derived from `price` ([`Instrument::margin_to_account`]).
/// The original's estimate was `price × lot × 100000 / 100` for every symbol (contract §4.3).
pub fn margin_required(
    instrument: &Instrument,
    lots: Lots,
    price: Decimal,
    leverage: Decimal,
    account_currency: Currency,
    rate: Option<Decimal>,
) -> Result<Money, SizingError> {
    let price = positive(price, SizingError::InvalidEntry)?;
    let leverage = positive(leverage, SizingError::InvalidLeverage)?;
    let units = mul(lots.value(), instrument.contract_size)?;
    let notional = if instrument.margin_currency == instrument.base && instrument.base != instrument.quote {
        units
    } else {
        mul(units, price)?
    };
    let conv = instrument.margin_to_account(account_currency, Some(price), rate)?;
    Ok(Money::new(conv.apply(div(notional, leverage)?)?, account_currency))
}

/// How the stop-loss distance is computed (`sl_type`, contract §4.4). Wire values are snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SlType {
    /// `sl_value` pips of the instrument.
    FixedPips,
    /// `atr × sl_value`; without an ATR, 50 pips. The original's default.
    #[default]
    AtrBased,
    /// `entry × sl_value / 100`.
    Percentage,
}

/// How the take-profit distance is computed (`tp_type`, contract §4.4). Wire values are snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TpType {
    /// `tp_value` pips of the instrument.
    FixedPips,
    /// `|entry − SL| × tp_value`. The original's default.
    #[default]
    RiskReward,
    /// `atr × tp_value`; without an ATR, 100 pips.
    AtrBased,
}

/// Inputs of [`calculate_sl_tp`] (`CalculateSLTPRequest`, contract §2.4; the symbol selects the instrument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlTpRequest {
    /// Direction of the trade.
    pub side: Side,
    /// Entry price (> 0).
    pub entry_price: Decimal,
    /// Stop-loss method.
    pub sl_type: SlType,
    /// Its parameter (≥ 0; original default 2.0).
    pub sl_value: Decimal,
    /// Take-profit method.
    pub tp_type: TpType,
    /// Its parameter (≥ 0; original default 2.0).
    pub tp_value: Decimal,
    /// Average true range in price units, when known (≥ 0; 0 counts as missing).
    pub atr: Option<Decimal>,
}

/// Result of [`calculate_sl_tp`], the response fields of `calculate-sl-tp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlTp {
    /// Stop-loss price, rounded to the instrument's digits.
    pub stop_loss: Decimal,
    /// Take-profit price, rounded to the instrument's digits.
    pub take_profit: Decimal,
    /// `|entry − stop_loss|` in pips, 1 dp.
    pub sl_distance_pips: Decimal,
    /// `|take_profit − entry|` in pips, 1 dp.
    pub tp_distance_pips: Decimal,
    /// TP distance / SL distance, 2 dp; 0 when the SL distance is 0.
    pub risk_reward_ratio: Decimal,
}

/// Stop loss and take profit from pips, ATR multiples, a percentage or a risk:reward ratio (contract §4.4),
/// with pips of the instrument and prices rounded to its digits (banker's rounding, like the original's `round`).
///
/// SL = entry ∓ d_sl (BUY −, SELL +); TP = entry ± d_tp. `risk_reward` uses the distance to the rounded SL, so
/// the returned ratio matches the prices actually placed.
pub fn calculate_sl_tp(instrument: &Instrument, req: &SlTpRequest) -> Result<SlTp, SizingError> {
    let entry = positive(req.entry_price, SizingError::InvalidEntry)?;
    for (name, v) in [("sl_value", Some(req.sl_value)), ("tp_value", Some(req.tp_value)), ("atr", req.atr)] {
        if v.is_some_and(|v| v < Decimal::ZERO) {
            return Err(SizingError::Negative(name));
        }
    }
    let atr = req.atr.filter(|a| !a.is_zero());
    let sl_distance = match (req.sl_type, atr) {
        (SlType::FixedPips, _) => mul(req.sl_value, instrument.pip_size)?,
        (SlType::AtrBased, Some(a)) => mul(a, req.sl_value)?,
        (SlType::AtrBased, None) => instrument.from_pips(FALLBACK_SL_PIPS),
        (SlType::Percentage, _) => div(mul(entry, req.sl_value)?, Decimal::ONE_HUNDRED)?,
    };
    let sign = req.side.sign();
    let stop_loss = instrument.round_price(entry - sign * sl_distance);
    if stop_loss <= Decimal::ZERO {
        return Err(SizingError::NonPositivePrice("stop_loss"));
    }
    let sl_gap = (entry - stop_loss).abs();
    let tp_distance = match (req.tp_type, atr) {
        (TpType::FixedPips, _) => mul(req.tp_value, instrument.pip_size)?,
        (TpType::RiskReward, _) => mul(sl_gap, req.tp_value)?,
        (TpType::AtrBased, Some(a)) => mul(a, req.tp_value)?,
        (TpType::AtrBased, None) => instrument.from_pips(FALLBACK_TP_PIPS),
    };
    let take_profit = instrument.round_price(entry + sign * tp_distance);
    if take_profit <= Decimal::ZERO {
        return Err(SizingError::NonPositivePrice("take_profit"));
    }
    let tp_gap = (take_profit - entry).abs();
    let risk_reward_ratio = if sl_gap.is_zero() { Decimal::ZERO } else { (tp_gap / sl_gap).round_dp(2) };
    Ok(SlTp {
        stop_loss,
        take_profit,
        sl_distance_pips: instrument.to_pips(sl_gap).round_dp(1),
        tp_distance_pips: instrument.to_pips(tp_gap).round_dp(1),
        risk_reward_ratio,
    })
}

/// Name of a built-in risk profile (contract §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskProfileName {
    /// Small risk, wide stops.
    Conservative,
    /// The default.
    Moderate,
    /// Larger risk, tight fixed-pip trailing.
    Aggressive,
}

impl RiskProfileName {
    /// Parses a profile name; anything unknown is `moderate`, as in the original (contract §4.5).
    pub fn parse_or_moderate(name: &str) -> RiskProfileName {
        match name.trim().to_ascii_lowercase().as_str() {
            "conservative" => RiskProfileName::Conservative,
            "aggressive" => RiskProfileName::Aggressive,
            _ => RiskProfileName::Moderate,
        }
    }
}

/// One risk profile, as `GET /trading/risk-profiles` serialises it (`P` in contract §2.4). Its `trailing_stop`
/// serialises both `type` and `trailing_type` (the dashboard reads the latter, contract §9.2 item 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RiskProfile {
    /// Stop-loss method.
    pub sl_type: SlType,
    /// Its parameter (ATR multiple for all built-in profiles).
    pub sl_value: Decimal,
    /// Take-profit method.
    pub tp_type: TpType,
    /// Its parameter (risk:reward ratio for all built-in profiles).
    pub tp_value: Decimal,
    /// Risk per trade, percent of the balance.
    pub risk_per_trade_percent: Decimal,
    /// Largest position, in lots.
    pub max_position_size: Decimal,
    /// Trailing stop settings.
    pub trailing_stop: TrailingStopSettings,
}

impl RiskProfile {
    /// The built-in profile of that name, with the values of contract §4.5.
    pub fn builtin(name: RiskProfileName) -> RiskProfile {
        // All three: an ATR-based stop, a risk:reward target, the trailing stop and breakeven on.
        let profile =
            |sl_atr, rr, risk, max_lots, trailing_type, activation, distance, atr_multiplier, breakeven| RiskProfile {
                sl_type: SlType::AtrBased,
                sl_value: sl_atr,
                tp_type: TpType::RiskReward,
                tp_value: rr,
                risk_per_trade_percent: risk,
                max_position_size: max_lots,
                trailing_stop: TrailingStopSettings {
                    enabled: true,
                    trailing_type,
                    activation_pips: dec(activation, 0),
                    trail_distance_pips: dec(distance, 0),
                    atr_multiplier,
                    breakeven_enabled: true,
                    breakeven_pips: dec(breakeven, 0),
                    ..TrailingStopSettings::default()
                },
            };
        let (atr, fixed) = (TrailingType::AtrBased, TrailingType::FixedPips);
        match name {
            RiskProfileName::Conservative => {
                profile(dec(25, 1), dec(15, 1), dec(10, 1), dec(5, 2), atr, 30, 15, dec(20, 1), 20)
            }
            RiskProfileName::Moderate => {
                profile(dec(20, 1), dec(20, 1), dec(20, 1), dec(1, 1), atr, 20, 15, dec(15, 1), 15)
            }
            RiskProfileName::Aggressive => {
                profile(dec(15, 1), dec(30, 1), dec(30, 1), dec(2, 1), fixed, 10, 10, dec(15, 1), 10)
            }
        }
    }
}

/// The body of `GET /trading/risk-profiles` inside `{"profiles": ...}` (contract §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RiskProfiles {
    /// `conservative` profile.
    pub conservative: RiskProfile,
    /// `moderate` profile.
    pub moderate: RiskProfile,
    /// `aggressive` profile.
    pub aggressive: RiskProfile,
}

impl RiskProfiles {
    /// The three built-in profiles.
    pub fn builtin() -> RiskProfiles {
        RiskProfiles {
            conservative: RiskProfile::builtin(RiskProfileName::Conservative),
            moderate: RiskProfile::builtin(RiskProfileName::Moderate),
            aggressive: RiskProfile::builtin(RiskProfileName::Aggressive),
        }
    }
}

#[cfg(test)]
mod tests;
