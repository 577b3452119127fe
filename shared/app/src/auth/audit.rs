//! The security audit trail: one item per event under the user's partition
//! (`USER#<id>` / `AUDIT#<rfc3339 µs>#<uuid>`, kept 400 days), plus a structured log line for every
//! event (including failures for unknown e-mails, which have no user to file them under).

use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::ports::{Clock, Cursor, IdGenerator, Item, ItemStore, Key, Query, StoreError, Value};

/// Audit items live this long.
pub const AUDIT_RETENTION_DAYS: i64 = 400;
pub const AUDIT_PREFIX: &str = "AUDIT#";

/// Where a request came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub ip: String,
    pub user_agent: String,
}

/// Event names (stable: clients may filter on them).
pub mod events {
    pub const REGISTER: &str = "register";
    pub const LOGIN_OK: &str = "login_succeeded";
    pub const LOGIN_FAILED: &str = "login_failed";
    pub const LOCKED_OUT: &str = "account_locked";
    pub const REFRESH: &str = "token_refreshed";
    pub const REFRESH_REUSE: &str = "refresh_token_reuse_detected";
    pub const LOGOUT: &str = "logout";
    pub const SESSION_REVOKED: &str = "session_revoked";
    pub const PASSWORD_RESET_REQUESTED: &str = "password_reset_requested";
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const EMAIL_VERIFIED: &str = "email_verified";
    pub const TOTP_SETUP: &str = "totp_setup_started";
    pub const TOTP_ENABLED: &str = "totp_enabled";
    pub const TOTP_DISABLED: &str = "totp_disabled";
    pub const TOTP_FAILED: &str = "totp_failed";
    pub const PROFILE_UPDATED: &str = "profile_updated";
    /// The admin role granted or revoked by an operator (`nusatrade admin grant|revoke`).
    pub const ROLE_GRANTED: &str = "role_granted";
    pub const ROLE_REVOKED: &str = "role_revoked";
}

/// One entry as `GET /users/activity` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub event: String,
    pub at: String,
    pub ip: String,
    pub user_agent: String,
    pub details: serde_json::Value,
}

#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn ItemStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl AuditLog {
    pub fn new(store: Arc<dyn ItemStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        AuditLog { store, clock, ids }
    }

    /// Records an event. A store failure is logged, never returned: the trail must not turn a
    /// completed security action (a logout, a revocation) into an error.
    pub async fn record(&self, user: Option<Uuid>, event: &str, meta: &RequestMeta, details: serde_json::Value) {
        tracing::info!(target: "audit", event, user = ?user, ip = %meta.ip, details = %details, "security event");
        let Some(user) = user else { return };
        let now = self.clock.now();
        let id = self.ids.uuid();
        let at = crate::wire::iso(now);
        let key = Key::new(format!("USER#{user}"), format!("{AUDIT_PREFIX}{at}#{id}"));
        let details = Value::from_json(details).unwrap_or(Value::Null);
        let item = Item::new(&key)
            .with("id", id.to_string())
            .with("event", event)
            .with("at", at)
            .with("ip", meta.ip.clone())
            .with("user_agent", meta.user_agent.clone())
            .with("details", details)
            .with("ttl", now.timestamp() + AUDIT_RETENTION_DAYS * 86_400);
        if let Err(e) = self.store.put(item, None).await {
            tracing::warn!(error = %e, event, %user, "audit event not stored");
        }
    }

    /// Newest first; `cursor` continues a previous page.
    pub async fn list(
        &self,
        user: Uuid,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<AuditEntry>, Option<Cursor>), StoreError> {
        let page = self
            .store
            .query(
                Query::partition(format!("USER#{user}"))
                    .sk_prefix(AUDIT_PREFIX)
                    .descending()
                    .limit(limit)
                    .after(cursor),
            )
            .await?;
        let entries = page
            .items
            .iter()
            .map(|i| AuditEntry {
                id: i.get_s("id").unwrap_or_default().to_owned(),
                event: i.get_s("event").unwrap_or_default().to_owned(),
                at: i.get_s("at").unwrap_or_default().to_owned(),
                ip: i.get_s("ip").unwrap_or_default().to_owned(),
                user_agent: i.get_s("user_agent").unwrap_or_default().to_owned(),
                details: i.get("details").map(Value::to_json).unwrap_or(serde_json::Value::Null),
            })
            .collect();
        Ok((entries, page.cursor))
    }
}
