//! Store layout of broker connections (contract §2.6, §5 `broker_connections`):
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `USER#<uid>` | `BROKER#<connection id>` | one broker connection ([`BrokerConnectionRecord`]) |
//!
//! The connector's WebSocket `$connect` accepts a `connection_id` only if this item exists under the
//! token's user (ownership by key: another user's id simply is not there).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::store::user_pk;
use crate::ports::Key;

pub const BROKER_PREFIX: &str = "BROKER#";

pub fn broker_key(user: Uuid, connection: Uuid) -> Key {
    Key::new(user_pk(user), format!("{BROKER_PREFIX}{connection}"))
}

/// One broker connection (an MT5 account the user's connector logs into).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerConnectionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub broker_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// True while a connector holds it (set at `$connect`, cleared at `$disconnect`).
    #[serde(default)]
    pub is_active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}
