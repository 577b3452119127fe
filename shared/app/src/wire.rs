//! Wire formatting shared by every feature: how times, numbers and digests are written in (and numbers read from)
//! JSON bodies, WebSocket frames and stored fingerprints. One home, so the dashboard and the connector read one format.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 UTC with microseconds and `Z` (the original's datetime form): every time on the wire.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// [`iso`] for an optional time.
pub fn opt_iso(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(iso)
}

/// The original's other timestamp form: naive UTC ISO 8601 with microseconds and no zone suffix (health answers,
/// user profiles, sessions).
pub fn naive_iso(t: DateTime<Utc>) -> String {
    t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// A decimal as a JSON number (presentation only; stored values stay exact).
pub fn num(d: rust_decimal::Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive as _;
    d.to_f64().unwrap_or(0.0)
}

/// A JSON number or numeric string as a decimal (shortest round-trip form of floats; exponents accepted).
pub fn decimal(v: &serde_json::Value) -> Option<rust_decimal::Decimal> {
    let text = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) if s.len() <= 64 => s.trim().to_owned(),
        _ => return None,
    };
    use std::str::FromStr as _;
    let d = rust_decimal::Decimal::from_str(&text).ok();
    d.or_else(|| rust_decimal::Decimal::from_scientific(&text).ok())
}

/// Lower-case hex of a digest (token hashes, idempotency fingerprints).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_micros_utc_with_z() {
        let t = Utc.with_ymd_and_hms(2026, 12, 5, 9, 30, 0).unwrap() + chrono::Duration::microseconds(1_500);
        assert_eq!(iso(t), "2026-12-05T09:30:00.001500Z");
        assert_eq!(opt_iso(None), None);
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }
}
