//! What the account use cases answer with: the token pair, the profile and the session list in the original's
//! shapes (serialisable, never a secret), and the settings defaults.

use chrono::DateTime;
use serde::Serialize;
use serde_json::{Map, Value as Json, json};
use uuid::Uuid;

use super::store::{SessionRecord, UserRecord};
use super::tokens::TokenPair;
use crate::wire::naive_iso;

/// `TokenWithRefresh` of the original (the connector reads `user_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: String,
    pub token_type: &'static str,
}

impl TokenResponse {
    pub(crate) fn from_pair(p: &TokenPair) -> Self {
        TokenResponse {
            access_token: p.access_token.clone(),
            refresh_token: p.refresh_token.clone(),
            user_id: p.access_claims.sub.to_string(),
            token_type: "bearer",
        }
    }
}

/// `UserOut` of the original plus `email_verified` and `totp_enabled`. Never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserOut {
    pub id: String,
    pub email: String,
    pub full_name: Option<String>,
    pub role: String,
    pub subscription_tier: String,
    pub created_at: String,
    pub email_verified: bool,
    pub totp_enabled: bool,
}

impl From<&UserRecord> for UserOut {
    fn from(u: &UserRecord) -> Self {
        UserOut {
            id: u.id.to_string(),
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            role: u.role.clone(),
            subscription_tier: u.subscription_tier.clone(),
            created_at: naive_iso(u.created_at),
            email_verified: u.email_verified,
            totp_enabled: u.totp_enabled,
        }
    }
}

/// One live session of the caller (`GET /auth/sessions`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionOut {
    pub id: String,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    pub ip: String,
    pub user_agent: String,
    pub current: bool,
}

impl SessionOut {
    /// The session as listed to its user; `current`: the session of the caller's token.
    pub(crate) fn new(s: SessionRecord, current: Uuid) -> Self {
        SessionOut {
            id: s.sid.to_string(),
            created_at: naive_iso(s.created_at),
            last_used_at: naive_iso(s.last_used_at),
            expires_at: DateTime::from_timestamp(s.ttl, 0).map(naive_iso).unwrap_or_default(),
            ip: s.ip,
            user_agent: s.user_agent,
            current: s.sid == current,
        }
    }
}

/// The original's settings defaults (camelCase keys, string-typed numbers).
pub fn default_settings() -> Map<String, Json> {
    let v = json!({
        "defaultLotSize": "0.1", "maxLotSize": "1.0", "maxOpenPositions": "5", "defaultStopLoss": "50",
        "defaultTakeProfit": "100", "riskPerTrade": "2", "emailNotifications": true, "tradeAlerts": true,
        "dailySummary": false, "theme": "dark", "timezone": "Asia/Jakarta", "language": "en",
    });
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}
