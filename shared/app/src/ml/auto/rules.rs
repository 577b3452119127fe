//! The auto-trading rules, apart from the cycle that applies them: a model's knobs ([`AutoTradingSettings`],
//! validated from its `config`), the UTC day, the cooldown, the trade decision and the idempotency key of an
//! auto-trade.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The `config` keys of a model that steer auto-trading.
pub const SETTING_KEYS: [&str; 4] = ["confidence_threshold", "max_trades_per_day", "cooldown_minutes", "lot_size"];

/// A model's auto-trading knobs (contract §4.9 defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoTradingSettings {
    /// Smallest confidence that trades (0–1; default 0.65 — what the original applied, not the 0.70 it showed).
    pub confidence_threshold: f64,
    /// Most auto-trades per UTC day (1–100; default 5).
    pub max_trades_per_day: u32,
    /// Minutes after the model's newest prediction during which it is not checked (1–1,440; default 30).
    pub cooldown_minutes: u32,
    /// Lots per auto-trade (0.01–100 in 0.01 steps, and within the instrument's limits when placed; default 0.01).
    pub lot_size: Decimal,
}

impl Default for AutoTradingSettings {
    fn default() -> Self {
        AutoTradingSettings {
            confidence_threshold: 0.65,
            max_trades_per_day: 5,
            cooldown_minutes: 30,
            lot_size: Decimal::new(1, 2),
        }
    }
}

/// A refused auto-trading knob: its `config` key, why, and the value given (the routes report it as a field
/// error at `body.config.<key>`).
#[derive(Clone, Debug, PartialEq)]
pub struct SettingError {
    /// The `config` key.
    pub key: String,
    /// What is wrong with the value.
    pub msg: String,
    /// The value given.
    pub input: Value,
}

fn config_error(key: &str, msg: &str, input: &Value) -> SettingError {
    SettingError { key: key.into(), msg: msg.into(), input: input.clone() }
}

impl AutoTradingSettings {
    /// The knobs from a model's `config` object (an absent or null key keeps its default); every out-of-range value
    /// is a [`SettingError`].
    pub fn from_config(config: &Map<String, Value>) -> Result<Self, Vec<SettingError>> {
        let mut s = AutoTradingSettings::default();
        let mut errors = Vec::new();
        let get = |k: &str| config.get(k).filter(|v| !v.is_null());
        if let Some(v) = get("confidence_threshold") {
            match v.as_f64() {
                Some(f) if (0.0..=1.0).contains(&f) => s.confidence_threshold = f,
                _ => errors.push(config_error(
                    "confidence_threshold",
                    "confidence_threshold must be a number in [0, 1]",
                    v,
                )),
            }
        }
        let int = |k: &str, range: std::ops::RangeInclusive<u64>, errors: &mut Vec<SettingError>| -> Option<u32> {
            let v = get(k)?;
            match v.as_u64() {
                Some(n) if range.contains(&n) => Some(n as u32),
                _ => {
                    errors.push(config_error(
                        k,
                        &format!("{k} must be an integer from {} to {}", range.start(), range.end()),
                        v,
                    ));
                    None
                }
            }
        };
        if let Some(n) = int("max_trades_per_day", 1..=100, &mut errors) {
            s.max_trades_per_day = n;
        }
        if let Some(n) = int("cooldown_minutes", 1..=1_440, &mut errors) {
            s.cooldown_minutes = n;
        }
        if let Some(v) = get("lot_size") {
            let lot = match v {
                Value::Number(n) => n.to_string().parse::<Decimal>().ok(),
                Value::String(t) => t.trim().parse::<Decimal>().ok(),
                _ => None,
            };
            match lot {
                Some(l)
                    if l >= Decimal::new(1, 2)
                        && l <= Decimal::ONE_HUNDRED
                        && (l * Decimal::ONE_HUNDRED).fract().is_zero() =>
                {
                    s.lot_size = l.normalize()
                }
                _ => errors.push(config_error("lot_size", "lot_size must be from 0.01 to 100 in 0.01 steps", v)),
            }
        }
        if errors.is_empty() { Ok(s) } else { Err(errors) }
    }

    /// The knobs as the `config` keys show them.
    pub fn to_json(&self) -> Value {
        json!({
            "confidence_threshold": self.confidence_threshold,
            "max_trades_per_day": self.max_trades_per_day,
            "cooldown_minutes": self.cooldown_minutes,
            "lot_size": self.lot_size.to_f64(),
        })
    }

    pub(super) fn cooldown(&self) -> Duration {
        Duration::minutes(i64::from(self.cooldown_minutes))
    }
}

/// Midnight (UTC) of `now`'s UTC day: "today" of the daily limit and of the counts.
pub fn utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive().and_time(NaiveTime::MIN).and_utc()
}

/// The UTC day of `now`.
pub fn utc_day(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive()
}

/// True while the newest prediction (made at `last`) is younger than the cooldown.
pub fn in_cooldown(last: Option<DateTime<Utc>>, now: DateTime<Utc>, settings: &AutoTradingSettings) -> bool {
    last.is_some_and(|t| now - t < settings.cooldown())
}

/// What a prediction means for the cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Trade,
    Hold,
    BelowThreshold,
}

impl Decision {
    pub(super) fn outcome(self) -> &'static str {
        match self {
            Decision::Trade => "executed",
            Decision::Hold => "hold",
            Decision::BelowThreshold => "below_threshold",
        }
    }
}

/// HOLD (or anything but BUY/SELL) never trades; BUY/SELL trade from `threshold` up.
pub fn decide(direction: &str, confidence: f64, threshold: f64) -> Decision {
    match direction {
        "BUY" | "SELL" if confidence >= threshold => Decision::Trade,
        "BUY" | "SELL" => Decision::BelowThreshold,
        _ => Decision::Hold,
    }
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(25);
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// The idempotency key of a model's auto-trade of one prediction (≤ 56 characters of `[a-z0-9:]`): the same
/// model and prediction always give the same key, so placing it again answers with the first order.
pub fn auto_trade_key(model: Uuid, prediction: Uuid) -> String {
    format!("auto:{}:{}", base36(model.as_u128()), base36(prediction.as_u128()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::store::auto_day_key;
    use crate::trading::orders::IdempotencyKey;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn defaults_are_the_applied_ones_and_ranges_are_validated() {
        let d = AutoTradingSettings::from_config(&Map::new()).unwrap();
        assert_eq!(d, AutoTradingSettings::default());
        assert_eq!((d.confidence_threshold, d.max_trades_per_day, d.cooldown_minutes), (0.65, 5, 30));
        assert_eq!(d.lot_size, Decimal::new(1, 2));
        let ok = json!({"confidence_threshold": 0.5, "max_trades_per_day": 2, "cooldown_minutes": 1, "lot_size": 0.1});
        let s = AutoTradingSettings::from_config(ok.as_object().unwrap()).unwrap();
        assert_eq!((s.confidence_threshold, s.max_trades_per_day, s.cooldown_minutes), (0.5, 2, 1));
        assert_eq!(s.lot_size, Decimal::new(1, 1));
        let bad = json!({"confidence_threshold": 1.5, "max_trades_per_day": 0, "cooldown_minutes": 2000,
                         "lot_size": 0.015});
        let e = AutoTradingSettings::from_config(bad.as_object().unwrap()).unwrap_err();
        let keys: Vec<Value> = e.iter().map(|f| json!(f.key)).collect();
        let keys: Vec<&Value> = keys.iter().collect();
        assert_eq!(
            keys,
            [
                &json!("confidence_threshold"),
                &json!("max_trades_per_day"),
                &json!("cooldown_minutes"),
                &json!("lot_size")
            ]
        );
        for v in [
            json!({"lot_size": 0}),
            json!({"lot_size": 101}),
            json!({"lot_size": "x"}),
            json!({"max_trades_per_day": 2.5}),
            json!({"confidence_threshold": "0.7"}),
            json!({"cooldown_minutes": -1}),
        ] {
            assert!(AutoTradingSettings::from_config(v.as_object().unwrap()).is_err(), "{v}");
        }
        // Round trip through the view.
        assert_eq!(s.to_json()["lot_size"], 0.1);
    }

    #[test]
    fn cooldown_counts_from_the_newest_prediction() {
        let s = AutoTradingSettings { cooldown_minutes: 30, ..AutoTradingSettings::default() };
        let now = at("2026-03-01T12:00:00Z");
        assert!(!in_cooldown(None, now, &s), "no prediction yet");
        assert!(in_cooldown(Some(at("2026-03-01T11:30:01Z")), now, &s));
        assert!(!in_cooldown(Some(at("2026-03-01T11:30:00Z")), now, &s), "exactly the cooldown ago");
        assert!(!in_cooldown(Some(at("2026-02-28T12:00:00Z")), now, &s));
    }

    #[test]
    fn today_is_the_utc_day() {
        // 23:30 UTC is already tomorrow in Jakarta (UTC+7): the day is still the UTC one.
        let late = DateTime::parse_from_rfc3339("2026-03-01T23:30:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(utc_day(late), NaiveDate::from_ymd_opt(2026, 3, 1).unwrap());
        let early_local = DateTime::parse_from_rfc3339("2026-03-02T06:30:00+07:00").unwrap().with_timezone(&Utc);
        assert_eq!(utc_day(early_local), NaiveDate::from_ymd_opt(2026, 3, 1).unwrap());
        assert_eq!(utc_midnight(late), at("2026-03-01T00:00:00Z"));
        assert_eq!(
            auto_day_key(Uuid::from_u128(1), Uuid::from_u128(2), utc_day(late)).sk,
            format!("AUTOTRADE#{}#2026-03-01", Uuid::from_u128(2))
        );
    }

    #[test]
    fn hold_never_trades_and_the_threshold_is_inclusive() {
        assert_eq!(decide("HOLD", 0.99, 0.65), Decision::Hold);
        assert_eq!(decide("", 0.99, 0.0), Decision::Hold);
        assert_eq!(decide("BUY", 0.65, 0.65), Decision::Trade);
        assert_eq!(decide("SELL", 0.64, 0.65), Decision::BelowThreshold);
        assert_eq!(decide("SELL", 0.9, 0.65), Decision::Trade);
    }

    #[test]
    fn trade_keys_are_deterministic_short_and_distinct() {
        let (m, p) = (Uuid::new_v4(), Uuid::new_v4());
        let k = auto_trade_key(m, p);
        assert_eq!(k, auto_trade_key(m, p));
        assert!(k.len() <= IdempotencyKey::MAX_LEN, "{k}");
        assert_ne!(k, auto_trade_key(p, m));
        assert_ne!(k, auto_trade_key(m, Uuid::new_v4()));
        assert_eq!(auto_trade_key(Uuid::from_u128(u128::MAX), Uuid::nil()).len(), 5 + 25 + 1 + 1);
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert!(IdempotencyKey::new(&k, "r", &json!({})).is_ok());
    }
}
