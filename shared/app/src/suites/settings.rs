//! The admin settings over a store adapter (see [`crate::admin`], [`crate::settings`]): the round trip with an
//! encrypted value (sealed in the stored item, masked in answers, opened by the run-time settings), the category
//! filter, soft delete and reactivation, the audit trail newest first; concurrent writes of one key (optimistic
//! concurrency: every write lands once, each with its audit item); and the admin role's grant, list and revoke.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use uuid::Uuid;

use crate::admin::{Action, Actor, AdminError, AdminService, ENCRYPTED_MASK, PutSetting};
use crate::auth::roles::Roles;
use crate::auth::store::{UserRecord, email_key, user_key};
use crate::contract::store::StoreFactory;
use crate::contract::unique;
use crate::ports::secrets::DATA_KEY_BYTES;
use crate::ports::*;
use crate::settings::envelope::{NONCE_BYTES, aead_open, aead_seal, random_key};
use crate::settings::record::setting_key;
use crate::settings::{Category, RuntimeSettings, SettingsEnv};

/// A master key in memory (the adapters' own master keys run the key-wrapper contract).
struct SuiteKeys([u8; DATA_KEY_BYTES]);

#[async_trait]
impl KeyWrapper for SuiteKeys {
    fn scheme(&self) -> &'static str {
        "local"
    }
    async fn generate_data_key(&self) -> Result<DataKey, SecretsError> {
        let plaintext = random_key()?;
        let (nonce, ct) = aead_seal(&self.0, b"suite", &plaintext[..])?;
        Ok(DataKey { plaintext, wrapped: [&nonce[..], &ct].concat() })
    }
    async fn unwrap(&self, wrapped: &[u8]) -> Result<DataKeyBytes, SecretsError> {
        let bad = || SecretsError::Undecryptable("not a suite key".into());
        let (nonce, ct) = wrapped.split_at_checked(NONCE_BYTES).ok_or_else(bad)?;
        let plain = aead_open(&self.0, nonce.try_into().map_err(|_| bad())?, b"suite", ct)?;
        let mut key = random_key()?;
        key.copy_from_slice(plain.get(..DATA_KEY_BYTES).ok_or_else(bad)?);
        Ok(key)
    }
}

struct World {
    store: Arc<dyn ItemStore>,
    clock: Arc<ManualClock>,
    admin: AdminService,
    actor: Actor,
}

async fn world(f: &impl StoreFactory) -> World {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store = f.store(clock.clone()).await;
    let env = SettingsEnv { ttl: std::time::Duration::from_secs(30), ..SettingsEnv::default() };
    let settings =
        RuntimeSettings::new(store.clone(), clock.clone(), env).with_keys(Arc::new(SuiteKeys(*random_key().unwrap())));
    let admin = AdminService::with_parts(store.clone(), clock.clone(), Arc::new(RandomIds), settings, None);
    World { store, clock, admin, actor: Actor { id: Uuid::new_v4(), email: "root@example.com".into() } }
}

fn put(value: &str, category: Category, is_encrypted: bool) -> PutSetting {
    PutSetting { value: Some(value.into()), category, is_encrypted, description: None }
}

pub async fn settings_round_trip_with_an_encrypted_value(f: &impl StoreFactory) {
    let w = world(f).await;
    let secret = unique("sk-suite-");
    w.admin.put(&w.actor, "llm_api_key", put(&secret, Category::AiProvider, true)).await.unwrap();
    w.admin.put(&w.actor, "llm_model", put("gpt-4o", Category::AiProvider, false)).await.unwrap();
    w.admin.put(&w.actor, "max_positions_per_user", put("3", Category::Trading, false)).await.unwrap();

    let item = w.store.get(&setting_key("llm_api_key")).await.unwrap().expect("stored");
    let text = serde_json::to_string(&item.0).unwrap();
    assert!(!text.contains(&secret), "the plaintext is in the stored item: {text}");
    assert!(item.get_s("sealed").is_some_and(|s| s.starts_with("nt-sealed.v1.local.")), "{text}");
    let v = w.admin.get("llm_api_key").await.unwrap();
    assert_eq!((v.value.as_deref(), v.is_encrypted), (Some(ENCRYPTED_MASK), true));
    assert_eq!(w.admin.settings().secret("llm_api_key").await.unwrap().unwrap().expose(), secret);
    let c = w.admin.settings().llm_config().await.unwrap().expect("configured by the stored key");
    assert_eq!((c.model.as_str(), c.api_key.unwrap().expose()), ("gpt-4o", secret.as_str()));
    assert_eq!(w.admin.settings().max_positions_per_user().await, Some(3));

    let keys = |l: Vec<crate::admin::SettingView>| l.into_iter().map(|s| s.key).collect::<Vec<_>>();
    assert_eq!(keys(w.admin.list(Some(Category::AiProvider)).await.unwrap()), ["llm_api_key", "llm_model"]);
    assert_eq!(keys(w.admin.list(None).await.unwrap()).len(), 3);

    w.clock.advance(Duration::seconds(1));
    w.admin.delete(&w.actor, "llm_model").await.unwrap();
    assert!(matches!(w.admin.get("llm_model").await, Err(AdminError::NotFound(_))));
    assert_eq!(keys(w.admin.list(None).await.unwrap()).len(), 2);
    w.clock.advance(Duration::seconds(1));
    let again = w.admin.put(&w.actor, "llm_model", put("gpt-4.1", Category::AiProvider, false)).await.unwrap();
    assert_eq!(again, Action::Reactivated);
    assert_eq!(w.admin.get("llm_model").await.unwrap().value.as_deref(), Some("gpt-4.1"));

    let trail = w.admin.audit(10).await.unwrap();
    let seen: Vec<(Action, &str)> = trail.iter().map(|e| (e.action, e.key.as_str())).collect();
    assert_eq!(seen[..2], [(Action::Reactivated, "llm_model"), (Action::Deleted, "llm_model")]);
    assert_eq!(trail.len(), 5);
    assert!(!serde_json::to_string(&trail).unwrap().contains(&secret));
}

pub async fn concurrent_writes_of_one_key_each_land_once(f: &impl StoreFactory) {
    let w = world(f).await;
    let writes = futures::future::join_all((0..6).map(|i| {
        let (admin, actor) = (w.admin.clone(), w.actor.clone());
        async move {
            admin.put(&actor, "rate_limit_requests", put(&format!("{}", 10 + i), Category::RateLimiting, false)).await
        }
    }))
    .await;
    let landed = writes.iter().filter(|r| r.is_ok()).count();
    assert!(writes.iter().all(|r| matches!(r, Ok(_) | Err(AdminError::Conflict))), "{writes:?}");
    assert!(landed >= 1);
    let item = w.store.get(&setting_key("rate_limit_requests")).await.unwrap().unwrap();
    assert_eq!(item.get_n("version").map(|v| v.to_string()), Some(landed.to_string()), "one version per write");
    let trail = w.admin.audit(50).await.unwrap();
    assert_eq!(trail.len(), landed, "one audit item per write that landed");
    assert_eq!(trail.iter().filter(|e| e.action == Action::Created).count(), 1, "created once");
}

pub async fn the_admin_role_is_granted_listed_and_revoked(f: &impl StoreFactory) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store = f.store(clock.clone()).await;
    let id = Uuid::new_v4();
    let email = format!("{}@example.com", unique("ops"));
    let now = clock.now();
    let user = UserRecord {
        id,
        email: email.clone(),
        full_name: None,
        role: "trader".into(),
        subscription_tier: "free".into(),
        password_hash: "$argon2id$unused".into(),
        email_verified: true,
        totp_enabled: false,
        totp_secret: None,
        totp_last_step: None,
        settings: Default::default(),
        created_at: now,
        updated_at: now,
    };
    store.put(Item::from_record(&user_key(id), &user).unwrap(), None).await.unwrap();
    store.put(Item::new(&email_key(&email)).with("user_id", id.to_string()), None).await.unwrap();
    let roles = Roles::new(store.clone(), clock, Arc::new(RandomIds));
    let role = || async { store.get(&user_key(id)).await.unwrap().unwrap().to_record::<UserRecord>().unwrap().role };

    assert!(roles.grant_admin(&email, "cli").await.unwrap().changed);
    assert_eq!(role().await, "admin");
    assert_eq!(roles.admins().await.unwrap().iter().map(|a| a.user_id).collect::<Vec<_>>(), [id]);
    assert!(!roles.grant_admin(&email, "cli").await.unwrap().changed);
    assert!(roles.revoke_admin(&email, "cli").await.unwrap().changed);
    assert_eq!(role().await, "trader");
    assert!(roles.admins().await.unwrap().is_empty());
}
