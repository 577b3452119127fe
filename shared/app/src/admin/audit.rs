//! The admin audit trail: one item per settings change, written in the same transaction as the change (who, when,
//! which key, what happened, its category, whether it is encrypted — never the value), kept 400 days.
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `ADMIN_AUDIT` | `<rfc3339 µs>#<uuid>` | one change ([`AuditEntry`]) |

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ports::{Item, ItemStore, Key, Query, StoreError, TxOp};
use crate::settings::{Category, SettingRecord};

pub const ADMIN_AUDIT_PK: &str = "ADMIN_AUDIT";
/// Audit items live this long.
pub const RETENTION_DAYS: i64 = 400;
/// Most entries one read returns.
pub const MAX_AUDIT_PAGE: u32 = 200;

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A key written for the first time.
    Created,
    /// An active key written again.
    Updated,
    /// A deleted key written again: it is active once more.
    Reactivated,
    /// Soft-deleted (`is_active = false`).
    Deleted,
}

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub id: Uuid,
    pub email: String,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: String,
    pub actor_id: Uuid,
    pub actor_email: String,
    pub action: Action,
    pub key: String,
    pub category: Category,
    pub is_encrypted: bool,
}

/// The audit item of a change to `record`, as a transaction operation.
pub fn audit_op(
    now: DateTime<Utc>,
    id: Uuid,
    actor: &Actor,
    action: Action,
    record: &SettingRecord,
) -> Result<TxOp, StoreError> {
    let at = crate::wire::iso(now);
    let entry = AuditEntry {
        id,
        at: at.clone(),
        actor_id: actor.id,
        actor_email: actor.email.clone(),
        action,
        key: record.key.clone(),
        category: record.category,
        is_encrypted: record.is_encrypted,
    };
    let key = Key::new(ADMIN_AUDIT_PK, format!("{at}#{id}"));
    let item = Item::from_record(&key, &entry)?.with("ttl", now.timestamp() + RETENTION_DAYS * 86_400);
    Ok(TxOp::Put { item, condition: Some(crate::ports::Condition::NotExists) })
}

/// The newest `limit` entries, newest first.
pub async fn newest(store: &dyn ItemStore, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
    let page = store.query(Query::partition(ADMIN_AUDIT_PK).descending().limit(limit.clamp(1, MAX_AUDIT_PAGE))).await?;
    Ok(page
        .items
        .iter()
        .filter_map(|i| match i.to_record::<AuditEntry>() {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable admin audit item skipped");
                None
            }
        })
        .collect())
}
