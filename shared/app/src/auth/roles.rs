//! The admin role: granted and revoked by e-mail by an operator (`nusatrade admin grant|revoke|list` on a data dir or
//! on the deployed table), never through a request. Admins may call the `/admin` routes
//! ([`CurrentUser::is_admin`](super::CurrentUser::is_admin)); the role is read from the profile on every request, so a
//! grant or a revocation applies to the user's next request.
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `ADMINS` | `USER#<uuid>` | one item per admin (`email`, `granted_at`): the list without a table scan |
//!
//! The profile's `role` and the index item are written in one transaction; the user's activity trail gets a
//! `role_granted` / `role_revoked` event.

use std::sync::Arc;

use nusatrade_domain::auth as rules;
use serde_json::json;
use uuid::Uuid;

use super::audit::{AuditLog, RequestMeta, events};
use super::store::{UserRecord, email_key, user_key};
use crate::keys::user_pk;
use crate::ports::{Clock, Condition, IdGenerator, Item, ItemStore, Key, Query, StoreError, TxOp, Update};

pub const ADMIN_ROLE: &str = "admin";
/// The role every account is registered with.
pub const TRADER_ROLE: &str = "trader";
pub const ADMINS_PK: &str = "ADMINS";
/// Most admins listed.
pub const MAX_ADMINS_LISTED: u32 = 1000;

fn admin_index_key(user: Uuid) -> Key {
    Key::new(ADMINS_PK, user_pk(user))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoleError {
    #[error("{0}")]
    InvalidEmail(String),
    #[error("no account with the e-mail {0}")]
    UnknownUser(String),
    #[error("the account changed while its role was being written; try again")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a grant or a revocation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleChange {
    pub user_id: Uuid,
    pub email: String,
    /// The role before.
    pub previous: String,
    /// False when the user already had the role asked for (nothing written).
    pub changed: bool,
}

/// One admin, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminEntry {
    pub user_id: Uuid,
    pub email: String,
    pub granted_at: String,
}

/// The role use cases over the store.
#[derive(Clone)]
pub struct Roles {
    store: Arc<dyn ItemStore>,
    clock: Arc<dyn Clock>,
    audit: AuditLog,
}

impl Roles {
    pub fn new(store: Arc<dyn ItemStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        let audit = AuditLog::new(store.clone(), clock.clone(), ids);
        Roles { store, clock, audit }
    }

    async fn user(&self, email: &str) -> Result<UserRecord, RoleError> {
        let email = rules::normalize_email(email).map_err(|e| RoleError::InvalidEmail(e.to_string()))?;
        let unknown = || RoleError::UnknownUser(email.clone());
        let guard = self.store.get(&email_key(&email)).await?.ok_or_else(unknown)?;
        let id = guard.get_s("user_id").and_then(|s| s.parse::<Uuid>().ok()).ok_or_else(unknown)?;
        self.store.get(&user_key(id)).await?.ok_or_else(unknown)?.to_record().map_err(RoleError::from)
    }

    /// Makes the account with this e-mail an admin.
    pub async fn grant_admin(&self, email: &str, by: &str) -> Result<RoleChange, RoleError> {
        self.set_role(email, ADMIN_ROLE, by).await
    }

    /// Makes the admin with this e-mail a trader again.
    pub async fn revoke_admin(&self, email: &str, by: &str) -> Result<RoleChange, RoleError> {
        self.set_role(email, TRADER_ROLE, by).await
    }

    /// `by` names the operator path in the audit event (`cli`, `cli:aws`).
    async fn set_role(&self, email: &str, role: &str, by: &str) -> Result<RoleChange, RoleError> {
        let user = self.user(email).await?;
        let change =
            |changed| RoleChange { user_id: user.id, email: user.email.clone(), previous: user.role.clone(), changed };
        let index = admin_index_key(user.id);
        let indexed = self.store.get(&index).await?.is_some();
        if user.role == role && indexed == (role == ADMIN_ROLE) {
            return Ok(change(false));
        }
        let now = self.clock.now();
        let profile = TxOp::Update {
            key: user_key(user.id),
            update: Update::new().set("role", role).set("updated_at", crate::wire::iso(now)),
            // the role it was read with: a concurrent change is not overwritten blindly
            condition: Some(Condition::Exists.and(Condition::eq("role", user.role.as_str()))),
        };
        let index_op = if role == ADMIN_ROLE {
            let item = Item::new(&index)
                .with("user_id", user.id.to_string())
                .with("email", user.email.clone())
                .with("granted_at", crate::wire::iso(now));
            TxOp::Put { item, condition: None }
        } else {
            TxOp::Delete { key: index, condition: None }
        };
        match self.store.transact_write(vec![profile, index_op]).await {
            Ok(()) => {}
            Err(e) if e.is_condition_failure() => return Err(RoleError::Conflict),
            Err(e) => return Err(e.into()),
        }
        let event = if role == ADMIN_ROLE { events::ROLE_GRANTED } else { events::ROLE_REVOKED };
        let meta = RequestMeta { ip: by.to_owned(), user_agent: "nusatrade admin".to_owned() };
        self.audit.record(Some(user.id), event, &meta, json!({"role": role, "previous": user.role, "by": by})).await;
        Ok(change(true))
    }

    /// The admins, by user id.
    pub async fn admins(&self) -> Result<Vec<AdminEntry>, RoleError> {
        let page = self.store.query(Query::partition(ADMINS_PK).limit(MAX_ADMINS_LISTED)).await?;
        Ok(page
            .items
            .iter()
            .filter_map(|i| {
                Some(AdminEntry {
                    user_id: i.get_s("user_id")?.parse().ok()?,
                    email: i.get_s("email")?.to_owned(),
                    granted_at: i.get_s("granted_at").unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::ports::{ManualClock, SequentialIds};
    use crate::settings::tests::MemoryStore;

    async fn world() -> (Arc<dyn ItemStore>, Roles, Uuid) {
        let store: Arc<dyn ItemStore> = Arc::new(MemoryStore::default());
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()));
        let id = Uuid::new_v4();
        let now = clock.now();
        let user = UserRecord {
            id,
            email: "ana@example.com".into(),
            full_name: None,
            role: TRADER_ROLE.into(),
            subscription_tier: "free".into(),
            password_hash: "x".into(),
            email_verified: true,
            totp_enabled: false,
            totp_secret: None,
            totp_last_step: None,
            settings: Default::default(),
            created_at: now,
            updated_at: now,
        };
        store.put(Item::from_record(&user_key(id), &user).unwrap(), None).await.unwrap();
        store.put(Item::new(&email_key("ana@example.com")).with("user_id", id.to_string()), None).await.unwrap();
        let roles = Roles::new(store.clone(), clock, Arc::new(SequentialIds::default()));
        (store, roles, id)
    }

    async fn role(store: &Arc<dyn ItemStore>, id: Uuid) -> String {
        store.get(&user_key(id)).await.unwrap().unwrap().to_record::<UserRecord>().unwrap().role
    }

    #[tokio::test]
    async fn grant_list_and_revoke_by_email() {
        let (store, roles, id) = world().await;
        let c = roles.grant_admin(" Ana@Example.com ", "cli").await.unwrap();
        assert_eq!((c.user_id, c.previous.as_str(), c.changed), (id, "trader", true));
        assert_eq!(role(&store, id).await, "admin");
        let listed = roles.admins().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].user_id, listed[0].email.as_str()), (id, "ana@example.com"));
        assert!(!roles.grant_admin("ana@example.com", "cli").await.unwrap().changed, "already an admin");
        let c = roles.revoke_admin("ana@example.com", "cli").await.unwrap();
        assert_eq!((c.previous.as_str(), c.changed), ("admin", true));
        assert_eq!(role(&store, id).await, "trader");
        assert!(roles.admins().await.unwrap().is_empty());
        assert!(!roles.revoke_admin("ana@example.com", "cli").await.unwrap().changed);
        // the user's activity trail has both events
        let trail =
            AuditLog::new(store.clone(), Arc::new(crate::ports::SystemClock), Arc::new(SequentialIds::default()))
                .list(id, 10, None)
                .await
                .unwrap()
                .0;
        let names: Vec<&str> = trail.iter().map(|e| e.event.as_str()).collect();
        assert!(names.contains(&"role_granted") && names.contains(&"role_revoked"), "{names:?}");
    }

    #[tokio::test]
    async fn unknown_and_invalid_emails_are_refused() {
        let (_, roles, _) = world().await;
        assert_eq!(
            roles.grant_admin("bob@example.com", "cli").await.unwrap_err(),
            RoleError::UnknownUser("bob@example.com".into())
        );
        assert!(matches!(roles.grant_admin("not-an-email", "cli").await, Err(RoleError::InvalidEmail(_))));
    }
}
