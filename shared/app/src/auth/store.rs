//! Store layout of accounts (single table):
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `USER#<uuid>` | `PROFILE` | the user ([`UserRecord`]); `GSI1PK = EMAIL#<email>`, `GSI1SK = USER` |
//! | `EMAIL#<email>` | `EMAIL` | uniqueness guard + strongly consistent lookup by e-mail (`user_id`) |
//! | `USER#<uuid>` | `SESSION#<sid>` | a session ([`SessionRecord`]): current refresh `jti`, revoked flag; `ttl` |
//! | `USER#<uuid>` | `AUDIT#<ts>#<uuid>` | audit events (see `audit`) |
//! | `RESET#<sha256(token)>` | `RESET` | password reset token (`user_id`), `ttl` 1 h, consumed by conditional delete |
//! | `VERIFY#<sha256(token)>` | `VERIFY` | e-mail verification token (`user_id`), `ttl` 48 h |
//! | `RL#<bucket>` | `W#<window start>` | request counters (see `ratelimit`) |
//! | `RL#login#<email>` | `FAILS` / `LOCK` | login failures and lock-out |
//!
//! The e-mail item is written in the same transaction as the profile (condition: not exists):
//! GSIs are eventually consistent and cannot guard uniqueness.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ports::Key;

pub const PROFILE_SK: &str = "PROFILE";
pub const SESSION_PREFIX: &str = "SESSION#";

use crate::keys::user_pk;

pub fn user_key(id: Uuid) -> Key {
    Key::new(user_pk(id), PROFILE_SK)
}
pub fn email_key(email: &str) -> Key {
    Key::new(format!("EMAIL#{email}"), "EMAIL")
}
pub fn session_key(user: Uuid, sid: Uuid) -> Key {
    Key::new(user_pk(user), format!("{SESSION_PREFIX}{sid}"))
}
pub fn reset_key(token: &str) -> Key {
    Key::new(format!("RESET#{}", token_hash(token)), "RESET")
}
pub fn verify_key(token: &str) -> Key {
    Key::new(format!("VERIFY#{}", token_hash(token)), "VERIFY")
}

/// Tokens sent by mail are stored only as their SHA-256 (hex).
pub fn token_hash(token: &str) -> String {
    crate::wire::hex(&Sha256::digest(token.as_bytes()))
}

/// A 256-bit random token, URL-safe (43 characters, like the original's `token_urlsafe(32)`).
pub fn random_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    pub role: String,
    pub subscription_tier: String,
    pub password_hash: String,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub totp_enabled: bool,
    /// Set by `totp/setup` (pending until verified), cleared by `totp/disable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
    /// Last accepted TOTP time step: codes of this step or earlier are refused (no replays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_last_step: Option<u64>,
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub sid: Uuid,
    pub user_id: Uuid,
    /// The `jti` of the only refresh token that may be used next.
    pub refresh_jti: Uuid,
    #[serde(default)]
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub ip: String,
    pub user_agent: String,
    /// Epoch seconds; also the item's `ttl`.
    pub ttl: i64,
}
