//! The `position-sizing` function (contract §2.4, §4.2–§4.5; issue #4): thin JSON mapping around
//! `nusatrade_domain::sizing`.
//!
//! | route | auth | body → response |
//! |---|---|---|
//! | `POST /api/v1/trading/position-size/calculate` | bearer | [`PositionSizeIn`] → [`PositionSizeOut`] |
//! | `POST /api/v1/trading/calculate-sl-tp` | bearer | [`SlTpIn`] → [`SlTpOut`] |
//! | `GET /api/v1/trading/risk-profiles` | bearer | `{"profiles": {conservative, moderate, aggressive}}` |
//!
//! Input rules (the original's pydantic models, plus a range on every number):
//! * numbers are JSON numbers (numeric strings are accepted, as pydantic's lax mode did); NaN, Infinity,
//!   booleans and out-of-range magnitudes are 422 `{"detail":[{type, loc:["body", field], msg, input}]}`;
//! * a symbol outside the catalogue is 400 `{"detail": "Symbol XYZ is not supported"}` (the original's
//!   custom validators answered 400 with a string; its sizing routes ignored the symbol);
//! * domain refusals (entry == stop loss, a risk budget below the minimum volume, a missing conversion
//!   rate...) are 422 in the same list format, located at the field concerned — never a 500.
//!
//! Outputs are JSON numbers (rounded for presentation: money 2 dp, pips 1 dp, pip values 4 dp, prices to
//! the instrument's digits), never strings.

use std::str::FromStr;
use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use nusatrade_domain::instrument::{Instrument, VolumeError};
use nusatrade_domain::money::{Currency, MoneyError, Side};
use nusatrade_domain::sizing::{
    self as rules, DEFAULT_LEVERAGE, MAX_RISK_PERCENT, RiskProfile, RiskProfiles, SizingError, SizingRequest,
    SlTpRequest, SlType, StopLoss, TpType,
};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::{Authenticator, CurrentUser, RequestLimits, limit_requests};
use crate::http::fields::{Fields, fmt_dec, ge, gt, instrument, num, unprocessable};
use crate::http::{ApiError, ApiJson, ApiResult};
use crate::trading::views::TrailingOut;

// ------------------------------------------------------------------ limits

/// Largest accepted account balance (any currency; 1e12 covers IDR and JPY accounts).
pub const MAX_BALANCE: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0); // 1e12
/// Largest accepted price (entry, stop loss): indices and BTC stay far below.
pub const MAX_PRICE: Decimal = Decimal::from_parts(10_000_000, 0, 0, false, 0);
/// Largest accepted quote→account conversion rate (1 USD ≈ 16 000 IDR fits easily).
pub const MAX_CONVERSION_RATE: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
/// Largest accepted leverage (1:5000); the smallest is 1:1.
pub const MAX_LEVERAGE: Decimal = Decimal::from_parts(5_000, 0, 0, false, 0);
/// Largest `sl_value` / `tp_value` (pips, ATR multiples, percent or a ratio, depending on the type).
pub const MAX_SLTP_VALUE: Decimal = Decimal::from_parts(100_000, 0, 0, false, 0);

// ------------------------------------------------------------------ router

/// The routes under `/api/v1/trading`. `limits`: the store-backed per-user/per-IP request limit
/// ([`limit_requests`]); the local gateway passes it, the Lambda function relies on API Gateway's
/// throttling instead (its role may only read the table).
pub fn router(auth: Authenticator, limits: Option<RequestLimits>) -> Router {
    let mut routes = Router::new()
        .route("/trading/position-size/calculate", post(calculate_position_size))
        .route("/trading/calculate-sl-tp", post(calculate_sl_tp))
        .route("/trading/risk-profiles", get(risk_profiles))
        .with_state(auth);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    Router::new().nest("/api/v1", routes)
}

async fn calculate_position_size(
    _user: CurrentUser,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<axum::Json<PositionSizeOut>> {
    let input = PositionSizeIn::parse(&body)?;
    Ok(axum::Json(position_size(&input)?))
}

async fn calculate_sl_tp(
    _user: CurrentUser,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<axum::Json<SlTpOut>> {
    let input = SlTpIn::parse(&body)?;
    Ok(axum::Json(sl_tp(&input)?))
}

async fn risk_profiles(_user: CurrentUser) -> Response {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    let body = BODY.get_or_init(|| Bytes::from(risk_profiles_json().to_string()));
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

/// A domain refusal as a 422 located at the field concerned.
fn sizing_error(e: SizingError, instrument: &Instrument) -> ApiError {
    let field = match &e {
        SizingError::InvalidBalance => Some("account_balance"),
        SizingError::InvalidRiskPercent => Some("risk_percent"),
        SizingError::InvalidEntry => Some("entry_price"),
        SizingError::InvalidStopLoss | SizingError::EntryEqualsStopLoss => Some("stop_loss"),
        SizingError::InvalidLeverage => Some("leverage"),
        SizingError::Negative(f) => Some(*f),
        SizingError::NonPositivePrice(_) => None,
        SizingError::Money(MoneyError::InvalidCurrency(_)) => Some("account_currency"),
        SizingError::Money(MoneyError::Overflow) => None,
        SizingError::Money(_) => Some("conversion_rate"),
        SizingError::Volume(_) => None,
    };
    let msg = match &e {
        SizingError::Volume(VolumeError::BelowMinimum { min, .. }) => format!(
            "The risk amount does not cover the minimum volume of {} lots of {}: widen the risk or tighten the stop loss",
            fmt_dec(*min),
            instrument.symbol
        ),
        SizingError::Money(MoneyError::RateRequired { from, to }) => format!(
            "conversion_rate is required: the value of 1 {from} in {to} (the quote currency of {} in the account currency)",
            instrument.symbol
        ),
        other => other.to_string(),
    };
    unprocessable(field, msg)
}

// ------------------------------------------------------------------ position size

/// Body of `POST /trading/position-size/calculate`: the original's fields (`account_balance`,
/// `risk_percent`, `entry_price`, `stop_loss`, `symbol`) plus optional `account_currency` (default
/// USD), `conversion_rate` (1 unit of the instrument's quote currency in the account currency; needed
/// when the account is neither the quote nor the base currency) and `leverage` (default 100).
#[derive(Clone, Debug, PartialEq)]
pub struct PositionSizeIn {
    pub symbol: String,
    pub account_balance: Decimal,
    pub risk_percent: Decimal,
    pub entry_price: Decimal,
    pub stop_loss: Decimal,
    pub account_currency: Currency,
    pub conversion_rate: Option<Decimal>,
    pub leverage: Decimal,
}

impl PositionSizeIn {
    pub fn parse(body: &Map<String, Value>) -> ApiResult<Self> {
        let mut f = Fields::new(body);
        let symbol = f.string("symbol", true);
        let account_balance = f.number("account_balance", gt(Decimal::ZERO, MAX_BALANCE));
        let risk_percent = f.number("risk_percent", gt(Decimal::ZERO, MAX_RISK_PERCENT));
        let entry_price = f.number("entry_price", gt(Decimal::ZERO, MAX_PRICE));
        let stop_loss = f.number("stop_loss", gt(Decimal::ZERO, MAX_PRICE));
        let conversion_rate = f.number_or("conversion_rate", gt(Decimal::ZERO, MAX_CONVERSION_RATE), None);
        let leverage = f.number_or("leverage", ge(Decimal::ONE, MAX_LEVERAGE), Some(DEFAULT_LEVERAGE));
        let account_currency = match f.string("account_currency", false) {
            None => Some(Currency::USD),
            Some(s) => match Currency::from_str(s) {
                Ok(c) => Some(c),
                Err(e) => {
                    f.err("value_error", "account_currency", format!("Value error, {e}"), &Value::String(s.into()));
                    None
                }
            },
        };
        f.finish()?;
        // Every Option is Some once no error was recorded.
        let missing = || ApiError::Internal("position size fields".into());
        Ok(PositionSizeIn {
            symbol: symbol.ok_or_else(missing)?.to_owned(),
            account_balance: account_balance.ok_or_else(missing)?,
            risk_percent: risk_percent.ok_or_else(missing)?,
            entry_price: entry_price.ok_or_else(missing)?,
            stop_loss: stop_loss.ok_or_else(missing)?,
            account_currency: account_currency.ok_or_else(missing)?,
            conversion_rate,
            leverage: leverage.ok_or_else(missing)?,
        })
    }
}

/// Response of `POST /trading/position-size/calculate`: the original's `{lot_size, risk_amount,
/// stop_loss_pips, margin_required}` plus the instrument-aware details.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PositionSizeOut {
    /// Lots, rounded DOWN to the instrument's volume step, within its [min, max].
    pub lot_size: f64,
    /// `balance × risk% / 100`, account currency, 2 dp.
    pub risk_amount: f64,
    /// Stop distance in the instrument's pips, 1 dp.
    pub stop_loss_pips: f64,
    /// Margin for `lot_size` at `entry_price` and `leverage`, account currency, 2 dp.
    pub margin_required: f64,
    /// Canonical catalogue symbol.
    pub symbol: &'static str,
    pub account_currency: Currency,
    pub leverage: f64,
    /// Value of one pip for `lot_size`, account currency, 4 dp.
    pub pip_value: f64,
    /// Value of one pip for one lot, account currency, 4 dp.
    pub pip_value_per_lot: f64,
    /// Loss at the stop with `lot_size` (≤ `risk_amount`), account currency, 2 dp.
    pub risk_at_size: f64,
    /// True when the budget allowed more than the maximum volume and the size was capped to it.
    pub capped: bool,
}

/// The margin currency → account conversion implied by the caller's quote → account `rate`: the same
/// rate when margin is computed in the quote currency (metals, crypto, indices); `entry × rate` when it
/// is the base currency (1 base = entry quote); none needed when the margin currency is the account's.
fn margin_rate(instrument: &Instrument, input: &PositionSizeIn) -> Option<Decimal> {
    let rate = input.conversion_rate?;
    if instrument.margin_currency == input.account_currency {
        None
    } else if instrument.margin_currency == instrument.quote {
        Some(rate)
    } else {
        input.entry_price.checked_mul(rate)
    }
}

/// The use case: domain position size and margin, rounded for presentation.
pub fn position_size(input: &PositionSizeIn) -> ApiResult<PositionSizeOut> {
    let inst = instrument(&input.symbol)?;
    let req = SizingRequest {
        account_balance: input.account_balance,
        risk_percent: input.risk_percent,
        entry_price: input.entry_price,
        stop_loss: StopLoss::Price(input.stop_loss),
        account_currency: input.account_currency,
        conversion_rate: input.conversion_rate,
    };
    let size = rules::position_size(inst, &req).map_err(|e| sizing_error(e, inst))?;
    let margin = rules::margin_required(
        inst,
        size.lot_size,
        input.entry_price,
        input.leverage,
        input.account_currency,
        margin_rate(inst, input),
    )
    .map_err(|e| sizing_error(e, inst))?;
    let lots = size.lot_size.value();
    let pip_value =
        size.pip_value_per_lot.checked_mul(lots).ok_or_else(|| unprocessable(None, "Arithmetic overflow"))?;
    Ok(PositionSizeOut {
        lot_size: num(lots),
        risk_amount: num(size.risk_amount.round_dp(2)),
        stop_loss_pips: num(size.stop_loss_pips.round_dp(1)),
        margin_required: num(margin.amount.round_dp(2)),
        symbol: inst.symbol,
        account_currency: input.account_currency,
        leverage: num(input.leverage),
        pip_value: num(pip_value.round_dp(4)),
        pip_value_per_lot: num(size.pip_value_per_lot.round_dp(4)),
        risk_at_size: num(size.risk_at_size.round_dp(2)),
        capped: size.capped,
    })
}

// ------------------------------------------------------------------ SL / TP

/// Body of `POST /trading/calculate-sl-tp` (`CalculateSLTPRequest`, contract §2.4); the symbol now
/// selects the instrument (pip size, digits).
#[derive(Clone, Debug, PartialEq)]
pub struct SlTpIn {
    pub symbol: String,
    pub side: Side,
    pub entry_price: Decimal,
    pub sl_type: SlType,
    pub sl_value: Decimal,
    pub tp_type: TpType,
    pub tp_value: Decimal,
    pub atr: Option<Decimal>,
}

const TWO: Decimal = Decimal::from_parts(2, 0, 0, false, 0);

impl SlTpIn {
    pub fn parse(body: &Map<String, Value>) -> ApiResult<Self> {
        let mut f = Fields::new(body);
        let symbol = f.string("symbol", true);
        let side = f.choice::<Side>("direction", "^(BUY|SELL)$", true);
        let entry_price = f.number("entry_price", gt(Decimal::ZERO, MAX_PRICE));
        let sl_type = if f.raw("sl_type").is_some() {
            f.choice("sl_type", "^(fixed_pips|atr_based|percentage)$", false)
        } else {
            Some(SlType::default())
        };
        let sl_value = f.number_or("sl_value", ge(Decimal::ZERO, MAX_SLTP_VALUE), Some(TWO));
        let tp_type = if f.raw("tp_type").is_some() {
            f.choice("tp_type", "^(fixed_pips|risk_reward|atr_based)$", false)
        } else {
            Some(TpType::default())
        };
        let tp_value = f.number_or("tp_value", ge(Decimal::ZERO, MAX_SLTP_VALUE), Some(TWO));
        let atr = f.number_or("atr", ge(Decimal::ZERO, MAX_PRICE), None);
        f.finish()?;
        let missing = || ApiError::Internal("sl/tp fields".into());
        Ok(SlTpIn {
            symbol: symbol.ok_or_else(missing)?.to_owned(),
            side: side.ok_or_else(missing)?,
            entry_price: entry_price.ok_or_else(missing)?,
            sl_type: sl_type.ok_or_else(missing)?,
            sl_value: sl_value.ok_or_else(missing)?,
            tp_type: tp_type.ok_or_else(missing)?,
            tp_value: tp_value.ok_or_else(missing)?,
            atr,
        })
    }
}

/// Response of `POST /trading/calculate-sl-tp`: the original's fields plus the canonical symbol.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlTpOut {
    /// Rounded to the instrument's digits.
    pub stop_loss: f64,
    pub take_profit: f64,
    /// In the instrument's pips, 1 dp.
    pub sl_distance_pips: f64,
    pub tp_distance_pips: f64,
    /// 2 dp; 0 when the SL distance is 0.
    pub risk_reward_ratio: f64,
    pub symbol: &'static str,
}

/// The use case: domain SL/TP as numbers.
pub fn sl_tp(input: &SlTpIn) -> ApiResult<SlTpOut> {
    let inst = instrument(&input.symbol)?;
    let req = SlTpRequest {
        side: input.side,
        entry_price: input.entry_price,
        sl_type: input.sl_type,
        sl_value: input.sl_value,
        tp_type: input.tp_type,
        tp_value: input.tp_value,
        atr: input.atr,
    };
    let r = rules::calculate_sl_tp(inst, &req).map_err(|e| sizing_error(e, inst))?;
    Ok(SlTpOut {
        stop_loss: num(r.stop_loss),
        take_profit: num(r.take_profit),
        sl_distance_pips: num(r.sl_distance_pips),
        tp_distance_pips: num(r.tp_distance_pips),
        risk_reward_ratio: num(r.risk_reward_ratio),
        symbol: inst.symbol,
    })
}

// ------------------------------------------------------------------ risk profiles

/// One profile (`P` of contract §2.4) with numbers as numbers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RiskProfileOut {
    pub sl_type: SlType,
    pub sl_value: f64,
    pub tp_type: TpType,
    pub tp_value: f64,
    pub risk_per_trade_percent: f64,
    pub max_position_size: f64,
    pub trailing_stop: TrailingOut,
}

impl From<&RiskProfile> for RiskProfileOut {
    fn from(p: &RiskProfile) -> Self {
        RiskProfileOut {
            sl_type: p.sl_type,
            sl_value: num(p.sl_value),
            tp_type: p.tp_type,
            tp_value: num(p.tp_value),
            risk_per_trade_percent: num(p.risk_per_trade_percent),
            max_position_size: num(p.max_position_size),
            trailing_stop: TrailingOut::from(&p.trailing_stop),
        }
    }
}

/// The body of `GET /trading/risk-profiles`.
pub fn risk_profiles_json() -> Value {
    let p = RiskProfiles::builtin();
    serde_json::json!({
        "profiles": {
            "conservative": RiskProfileOut::from(&p.conservative),
            "moderate": RiskProfileOut::from(&p.moderate),
            "aggressive": RiskProfileOut::from(&p.aggressive),
        }
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
