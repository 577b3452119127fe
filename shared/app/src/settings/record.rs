//! Store layout of the operator settings (single table) and the rules of their keys and values.
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `SETTINGS` | `SETTING#<key>` | one setting ([`SettingRecord`]); soft-deleted with `is_active = false` |
//!
//! One partition holds them all (at most [`MAX_SETTINGS`]), so a run-time snapshot is one query. The admin audit
//! trail (`crate::admin`) has its own partition.

use std::fmt;

use chrono::{DateTime, Utc};
use nusatrade_domain::instrument::MAX_LOT_SIZE;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ports::{Key, Provider};

pub const SETTINGS_PK: &str = "SETTINGS";
pub const SETTING_PREFIX: &str = "SETTING#";

/// Most settings kept (active and deleted together): the dashboard writes a dozen.
pub const MAX_SETTINGS: usize = 200;
/// Longest key (the original's `varchar(100)`).
pub const MAX_KEY_CHARS: usize = 100;
/// Longest value.
pub const MAX_VALUE_CHARS: usize = 4096;
/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// The context an encrypted setting is sealed for (the envelope's associated data): its key, so a ciphertext copied onto
/// another setting does not open.
pub fn seal_context(key: &str) -> String {
    format!("setting:{key}")
}

pub fn setting_key(key: &str) -> Key {
    Key::new(SETTINGS_PK, format!("{SETTING_PREFIX}{key}"))
}

/// The original's `SettingCategory` (wire values lower-case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    AiProvider,
    Redis,
    Email,
    RateLimiting,
    Trading,
    Storage,
    General,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::AiProvider,
        Category::Redis,
        Category::Email,
        Category::RateLimiting,
        Category::Trading,
        Category::Storage,
        Category::General,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::AiProvider => "ai_provider",
            Category::Redis => "redis",
            Category::Email => "email",
            Category::RateLimiting => "rate_limiting",
            Category::Trading => "trading",
            Category::Storage => "storage",
            Category::General => "general",
        }
    }

    /// The wire value (also the original's upper-case enum names, which its database stored).
    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored setting. An encrypted value is kept only sealed ([`super::envelope`]); `value` is then `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingRecord {
    pub key: String,
    /// The value of a setting that is not encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The sealed value of an encrypted setting (`nt-sealed.v1…`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    pub category: Category,
    pub is_encrypted: bool,
    pub is_active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The admin's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// Bumped by every write (optimistic concurrency).
    pub version: u64,
}

/// Why a key is refused.
pub fn check_key(key: &str) -> Result<(), String> {
    let n = key.chars().count();
    if n == 0 || n > MAX_KEY_CHARS {
        return Err(format!("String should have between 1 and {MAX_KEY_CHARS} characters"));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err("String should match pattern '^[A-Za-z0-9_.-]+$'".into());
    }
    Ok(())
}

/// The keys the platform reads (the dashboard's admin page writes these and a few more).
pub mod keys {
    pub const LLM_PROVIDER: &str = "llm_provider";
    pub const LLM_API_KEY: &str = "llm_api_key";
    pub const LLM_BASE_URL: &str = "llm_base_url";
    pub const LLM_MODEL: &str = "llm_model";
    pub const AI_DAILY_TOKEN_BUDGET: &str = "ai_daily_token_budget";
    pub const MAX_LOT_SIZE: &str = "max_lot_size";
    pub const MAX_POSITIONS_PER_USER: &str = "max_positions_per_user";
    pub const RATE_LIMIT_REQUESTS: &str = "rate_limit_requests";
    pub const RATE_LIMIT_WINDOW_SECONDS: &str = "rate_limit_window_seconds";
    pub const DEFAULT_SLIPPAGE_PIPS: &str = "default_slippage_pips";
    pub const REDIS_URL: &str = "redis_url";
    pub const SENDGRID_API_KEY: &str = "sendgrid_api_key";
}

/// Keys whose values are secrets: always stored encrypted, whatever the request's `is_encrypted` says (the
/// dashboard's secret fields, and any key named like one).
pub fn always_encrypted(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(k.as_str(), keys::LLM_API_KEY | keys::REDIS_URL | keys::SENDGRID_API_KEY)
        || ["_api_key", "_secret", "_password", "_token"].iter().any(|s| k.ends_with(s))
}

/// Largest `max_positions_per_user` (the same bound as `NUSATRADE_MAX_OPEN_POSITIONS`).
pub const MAX_POSITIONS_LIMIT: u32 = 1000;
/// Largest `ai_daily_token_budget`.
pub const MAX_DAILY_TOKENS: u64 = 1_000_000_000;
/// Longest `llm_base_url` and `llm_model`.
pub const MAX_URL_CHARS: usize = 500;
pub const MAX_MODEL_CHARS: usize = 200;

/// A known setting's value, read: what the platform does with it.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed {
    Decimal(Decimal),
    Count(u64),
    Provider(Provider),
    Text(String),
    /// A key the platform stores but does not read.
    Unread,
}

fn decimal(v: &str) -> Option<Decimal> {
    let d: Decimal = v.trim().parse().ok()?;
    Some(d.normalize())
}

fn count(v: &str, range: std::ops::RangeInclusive<u64>) -> Option<u64> {
    let t = v.trim();
    // "20" and "20.0" (the dashboard's number inputs) alike
    let n = t.parse::<u64>().ok().or_else(|| {
        let d = decimal(t)?;
        if d.fract().is_zero() { rust_decimal::prelude::ToPrimitive::to_u64(&d) } else { None }
    })?;
    range.contains(&n).then_some(n)
}

/// Reads a non-empty value of `key`: `Ok(Typed::Unread)` for keys the platform does not read, `Err` with the rule a
/// known key's value breaks (never the value itself: it may be a secret).
pub fn read_value(key: &str, value: &str) -> Result<Typed, String> {
    let max_lot = MAX_LOT_SIZE.normalize();
    match key {
        keys::MAX_LOT_SIZE => decimal(value)
            .filter(|d| *d >= Decimal::new(1, 2) && *d <= MAX_LOT_SIZE)
            .map(Typed::Decimal)
            .ok_or_else(|| format!("max_lot_size must be a number of lots from 0.01 to {max_lot}")),
        keys::MAX_POSITIONS_PER_USER => count(value, 1..=u64::from(MAX_POSITIONS_LIMIT))
            .map(Typed::Count)
            .ok_or_else(|| format!("max_positions_per_user must be a whole number from 1 to {MAX_POSITIONS_LIMIT}")),
        keys::RATE_LIMIT_REQUESTS => count(value, 1..=1_000_000)
            .map(Typed::Count)
            .ok_or_else(|| "rate_limit_requests must be a whole number from 1 to 1000000".to_owned()),
        keys::RATE_LIMIT_WINDOW_SECONDS => count(value, 1..=86_400)
            .map(Typed::Count)
            .ok_or_else(|| "rate_limit_window_seconds must be a whole number of seconds from 1 to 86400".to_owned()),
        keys::DEFAULT_SLIPPAGE_PIPS => decimal(value)
            .filter(|d| *d >= Decimal::ZERO && *d <= Decimal::from(1000))
            .map(Typed::Decimal)
            .ok_or_else(|| "default_slippage_pips must be a number of pips from 0 to 1000".to_owned()),
        keys::AI_DAILY_TOKEN_BUDGET => count(value, 0..=MAX_DAILY_TOKENS)
            .map(Typed::Count)
            .ok_or_else(|| format!("ai_daily_token_budget must be a whole number from 0 to {MAX_DAILY_TOKENS}")),
        keys::LLM_PROVIDER => Provider::parse(value)
            .map(Typed::Provider)
            .ok_or_else(|| "llm_provider must be openai, anthropic or bedrock".to_owned()),
        keys::LLM_BASE_URL => {
            let v = value.trim();
            let ok = (v.starts_with("http://") || v.starts_with("https://"))
                && v.len() <= MAX_URL_CHARS
                && v.len() > "https://".len()
                && !v.chars().any(|c| c.is_whitespace() || c.is_control());
            if ok {
                Ok(Typed::Text(v.trim_end_matches('/').to_owned()))
            } else {
                Err(format!("llm_base_url must be an http(s) URL of at most {MAX_URL_CHARS} characters"))
            }
        }
        keys::LLM_MODEL => {
            let v = value.trim();
            if v.chars().count() <= MAX_MODEL_CHARS && !v.chars().any(char::is_control) {
                Ok(Typed::Text(v.to_owned()))
            } else {
                Err(format!("llm_model must be a model id of at most {MAX_MODEL_CHARS} characters"))
            }
        }
        _ => Ok(Typed::Unread),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_pattern_and_length() {
        for ok in ["llm_api_key", "max_lot_size", "A.b-C_9", &"k".repeat(100)] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "slash/es", "ünï", &"k".repeat(101), "a\nb"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn categories_read_their_wire_and_database_names() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
            assert_eq!(Category::parse(&c.as_str().to_uppercase()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(Category::parse("secrets"), None);
    }

    #[test]
    fn secret_keys_are_always_encrypted() {
        for k in ["llm_api_key", "redis_url", "sendgrid_api_key", "stripe_secret", "SMTP_PASSWORD", "github_token"] {
            assert!(always_encrypted(k), "{k}");
        }
        for k in ["llm_model", "max_lot_size", "email_from", "token_budget"] {
            assert!(!always_encrypted(k), "{k}");
        }
    }

    #[test]
    fn known_values_are_read_with_their_bounds() {
        assert_eq!(read_value("max_lot_size", "0.5"), Ok(Typed::Decimal(Decimal::new(5, 1))));
        assert_eq!(read_value("max_lot_size", " 10.0 "), Ok(Typed::Decimal(Decimal::TEN)));
        for bad in ["0", "0.001", "10.01", "-1", "abc", "NaN", "1e3"] {
            let e = read_value("max_lot_size", bad).unwrap_err();
            assert!(!e.contains(bad) || bad == "0", "the message names the rule, not the value: {e}");
        }
        assert_eq!(read_value("max_positions_per_user", "20"), Ok(Typed::Count(20)));
        assert_eq!(read_value("max_positions_per_user", "20.0"), Ok(Typed::Count(20)));
        assert!(read_value("max_positions_per_user", "0").is_err());
        assert!(read_value("max_positions_per_user", "1001").is_err());
        assert!(read_value("max_positions_per_user", "2.5").is_err());
        assert_eq!(read_value("rate_limit_requests", "100"), Ok(Typed::Count(100)));
        assert!(read_value("rate_limit_window_seconds", "0").is_err());
        assert_eq!(read_value("ai_daily_token_budget", "0"), Ok(Typed::Count(0)));
        assert_eq!(read_value("llm_provider", "Anthropic"), Ok(Typed::Provider(Provider::Anthropic)));
        assert!(read_value("llm_provider", "gemini").is_err());
        assert_eq!(
            read_value("llm_base_url", "http://127.0.0.1:11434/v1/"),
            Ok(Typed::Text("http://127.0.0.1:11434/v1".into()))
        );
        assert!(read_value("llm_base_url", "ftp://x").is_err());
        assert!(read_value("llm_base_url", "https://").is_err());
        assert_eq!(read_value("email_from", "anything"), Ok(Typed::Unread));
        assert_eq!(read_value("default_slippage_pips", "2.0"), Ok(Typed::Decimal(Decimal::TWO)));
    }
}
