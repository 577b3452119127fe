//! Store layout of broker connections (contract §2.6, §5 `broker_connections`):
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `USER#<uid>` | `BROKER#<connection id>` | one broker connection ([`BrokerConnectionRecord`]), with the `flags` of bad input from its connectors |
//! | `USER#<uid>` | `COUNT#BROKERS` | how many broker connections the user has (`count`), kept in the same transaction as every create and delete, so the per-user limit holds under concurrency |
//!
//! The connector's WebSocket `$connect` accepts a `connection_id` only if this item exists under the
//! token's user (ownership by key: another user's id simply is not there).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::connector::flags::ConnectionFlag;
use crate::keys::user_pk;
use crate::ports::Key;

/// Sort-key prefix of a user's broker connections.
pub const BROKER_PREFIX: &str = "BROKER#";
/// Sort key of the user's broker-connection counter.
pub const BROKER_COUNT_SK: &str = "COUNT#BROKERS";
/// Attribute of the counter item holding the count.
pub const BROKER_COUNT_ATTR: &str = "count";

/// Key of one broker connection.
pub fn broker_key(user: Uuid, connection: Uuid) -> Key {
    Key::new(user_pk(user), format!("{BROKER_PREFIX}{connection}"))
}

/// Key of the user's broker-connection counter.
pub fn broker_count_key(user: Uuid) -> Key {
    Key::new(user_pk(user), BROKER_COUNT_SK)
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
    /// Bad input seen from its connectors ([`crate::connector::flags`]), newest last; written with
    /// [`FLAGS_SEQ_ATTR`] as an optimistic-concurrency guard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<ConnectionFlag>,
}

/// Attribute counting the writes of `flags` (the guard of [`super::service::BrokerService::flag`]).
pub const FLAGS_SEQ_ATTR: &str = "flags_seq";
