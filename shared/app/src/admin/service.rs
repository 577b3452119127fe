//! The admin use cases (free of HTTP): the operator settings (list, read, write, soft delete — each change audited
//! in the same transaction), their audit trail, and the language-model and Redis checks.
//!
//! Secret values are sealed before they are written ([`crate::settings::envelope`]) and never leave this module
//! in the clear: a read shows [`ENCRYPTED_MASK`], the logs and the audit items name the key only. Keys the platform
//! reads (`max_lot_size`, `llm_provider`…) have their values checked here, so a typo is a 422 rather than a setting
//! the platform later ignores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::audit::{self, Action, Actor, AuditEntry};
use super::error::{AdminError, Invalid};
use crate::ports::{ChatMessage, Clock, CompletionRequest, IdGenerator, ItemStore, ModelFactory, Ports, StoreError};
use crate::settings::record::{
    MAX_DESCRIPTION_CHARS, MAX_SETTINGS, MAX_VALUE_CHARS, Typed, always_encrypted, check_key, keys, read_value,
    seal_context,
};
use crate::settings::{Category, RuntimeSettings, SettingRecord, SettingsRepo, envelope};
use chrono::{DateTime, Utc};

/// What a read shows instead of an encrypted value (the original's).
pub const ENCRYPTED_MASK: &str = "***ENCRYPTED***";
/// How often a write that lost a race with another admin's is retried.
const MAX_ATTEMPTS: u32 = 5;
/// The longest a `test-llm` call waits for the model (API Gateway gives up at 29 s).
pub const LLM_TEST_TIMEOUT: Duration = Duration::from_secs(25);

/// A setting as the admin page reads it (`SettingResponse`).
#[derive(Clone, Debug, PartialEq)]
pub struct SettingView {
    pub key: String,
    /// The value, or [`ENCRYPTED_MASK`] for an encrypted setting.
    pub value: Option<String>,
    pub category: Category,
    pub is_encrypted: bool,
    pub description: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
}

impl SettingView {
    fn of(r: &SettingRecord) -> Self {
        SettingView {
            key: r.key.clone(),
            value: if r.is_encrypted { Some(ENCRYPTED_MASK.to_owned()) } else { r.value.clone() },
            category: r.category,
            is_encrypted: r.is_encrypted,
            description: r.description.clone(),
            updated_at: r.updated_at,
            updated_by: r.updated_by.clone(),
        }
    }
}

/// A write of one setting (`PUT /admin/settings/{key}`).
#[derive(Clone, PartialEq)]
pub struct PutSetting {
    pub value: Option<String>,
    pub category: Category,
    pub is_encrypted: bool,
    pub description: Option<String>,
}

impl std::fmt::Debug for PutSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSetting")
            .field("value", &self.value.as_ref().map(|_| "***"))
            .field("category", &self.category)
            .field("is_encrypted", &self.is_encrypted)
            .field("description", &self.description)
            .finish()
    }
}

/// The answer of `POST /admin/test-llm`.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmCheck {
    pub success: bool,
    pub message: String,
    pub details: Option<LlmCheckDetails>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlmCheckDetails {
    pub provider: &'static str,
    pub model: String,
    pub response_time_ms: u64,
}

/// The answer of `POST /admin/test-redis`.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisCheck {
    pub success: bool,
    pub message: String,
}

#[derive(Clone)]
pub struct AdminService {
    repo: SettingsRepo,
    store: Arc<dyn ItemStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: RuntimeSettings,
    models: Option<Arc<dyn ModelFactory>>,
}

impl AdminService {
    /// Over `ports`' store; `settings` seals and opens secrets (its master key: [`RuntimeSettings::with_keys`]) and
    /// is refreshed at once after every change made here; `models` builds the model `test-llm` calls (`None`: the
    /// check says no adapter is built in).
    pub fn new(ports: &Ports, settings: RuntimeSettings, models: Option<Arc<dyn ModelFactory>>) -> Self {
        Self::with_parts(ports.store.clone(), ports.clock.clone(), ports.ids.clone(), settings, models)
    }

    /// [`new`](Self::new) from the ports it uses.
    pub fn with_parts(
        store: Arc<dyn ItemStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: RuntimeSettings,
        models: Option<Arc<dyn ModelFactory>>,
    ) -> Self {
        AdminService { repo: settings.repo().clone(), store, clock, ids, settings, models }
    }

    pub fn settings(&self) -> &RuntimeSettings {
        &self.settings
    }

    fn key(key: &str) -> Result<(), AdminError> {
        check_key(key).map_err(|m| {
            AdminError::Invalid(vec![Invalid {
                location: "path",
                field: "key",
                kind: "string_pattern_mismatch",
                message: m,
                input: Some(key.chars().take(MAX_VALUE_CHARS.min(128)).collect()),
            }])
        })
    }

    /// The active settings (of one category), by key.
    pub async fn list(&self, category: Option<Category>) -> Result<Vec<SettingView>, AdminError> {
        let mut all = self.repo.all().await?;
        all.retain(|r| r.is_active && category.is_none_or(|c| r.category == c));
        all.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all.iter().map(SettingView::of).collect())
    }

    /// One active setting.
    pub async fn get(&self, key: &str) -> Result<SettingView, AdminError> {
        Self::key(key)?;
        match self.repo.get(key).await? {
            Some(r) if r.is_active => Ok(SettingView::of(&r)),
            _ => Err(AdminError::NotFound(key.to_owned())),
        }
    }

    /// Checks a write before anything is sealed or stored; returns whether the value is stored encrypted.
    fn check_put(key: &str, req: &PutSetting) -> Result<bool, AdminError> {
        Self::key(key)?;
        let encrypted = req.is_encrypted || always_encrypted(key);
        let mut errors = Vec::new();
        let value = req.value.as_deref().unwrap_or_default();
        if value.chars().count() > MAX_VALUE_CHARS {
            errors.push(Invalid {
                location: "body",
                field: "value",
                kind: "string_too_long",
                message: format!("String should have at most {MAX_VALUE_CHARS} characters"),
                input: None,
            });
        } else if !value.trim().is_empty() {
            match read_value(key, value) {
                Ok(Typed::Unread) => {}
                Ok(_) if encrypted => errors.push(Invalid {
                    location: "body",
                    field: "is_encrypted",
                    kind: "value_error",
                    message: format!("{key} is read by the platform and is not a secret: store it unencrypted"),
                    input: None,
                }),
                Ok(_) => {}
                Err(rule) => errors.push(Invalid {
                    location: "body",
                    field: "value",
                    kind: "value_error",
                    message: rule,
                    input: Some(value.chars().take(64).collect()),
                }),
            }
        }
        if let Some(d) = &req.description
            && d.chars().count() > MAX_DESCRIPTION_CHARS
        {
            errors.push(Invalid {
                location: "body",
                field: "description",
                kind: "string_too_long",
                message: format!("String should have at most {MAX_DESCRIPTION_CHARS} characters"),
                input: None,
            });
        }
        if errors.is_empty() { Ok(encrypted) } else { Err(AdminError::Invalid(errors)) }
    }

    /// Creates or replaces a setting — a deleted one is active again (the original left it deleted, so the page
    /// showed nothing after saving) — and records the change. Keys named like secrets are always encrypted.
    pub async fn put(&self, actor: &Actor, key: &str, req: PutSetting) -> Result<Action, AdminError> {
        let encrypted = Self::check_put(key, &req)?;
        let value = req.value.filter(|v| !(encrypted && v.is_empty()));
        let sealed = match (&value, encrypted) {
            (Some(v), true) => {
                let keys = self.settings.keys().ok_or_else(|| {
                    AdminError::Encryption(crate::ports::SecretsError::Unavailable(
                        "no master key is configured here".into(),
                    ))
                })?;
                Some(envelope::seal(keys.as_ref(), &seal_context(key), v).await.map_err(AdminError::Encryption)?)
            }
            _ => None,
        };
        let plain = if encrypted { None } else { value };
        for _ in 0..MAX_ATTEMPTS {
            let current = self.repo.get(key).await?;
            if current.is_none() && self.repo.all().await?.len() >= MAX_SETTINGS {
                return Err(AdminError::TooMany);
            }
            let now = self.clock.now();
            let action = match &current {
                None => Action::Created,
                Some(c) if !c.is_active => Action::Reactivated,
                Some(_) => Action::Updated,
            };
            let record = SettingRecord {
                key: key.to_owned(),
                value: plain.clone(),
                sealed: sealed.clone(),
                category: req.category,
                is_encrypted: encrypted,
                is_active: true,
                description: req.description.clone(),
                created_at: current.as_ref().map_or(now, |c| c.created_at),
                updated_at: now,
                updated_by: Some(actor.id.to_string()),
                version: current.as_ref().map_or(1, |c| c.version + 1),
            };
            if self.write(actor, action, &record, current.as_ref().map(|c| c.version), now).await? {
                return Ok(action);
            }
        }
        Err(AdminError::Conflict)
    }

    /// Soft-deletes an active setting (`is_active = false`) and records it.
    pub async fn delete(&self, actor: &Actor, key: &str) -> Result<(), AdminError> {
        Self::key(key)?;
        for _ in 0..MAX_ATTEMPTS {
            let current = match self.repo.get(key).await? {
                Some(c) if c.is_active => c,
                _ => return Err(AdminError::NotFound(key.to_owned())),
            };
            let now = self.clock.now();
            let record = SettingRecord {
                is_active: false,
                updated_at: now,
                updated_by: Some(actor.id.to_string()),
                version: current.version + 1,
                ..current.clone()
            };
            if self.write(actor, Action::Deleted, &record, Some(current.version), now).await? {
                return Ok(());
            }
        }
        Err(AdminError::Conflict)
    }

    /// The setting and its audit item in one transaction; false when another write came first (retry).
    async fn write(
        &self,
        actor: &Actor,
        action: Action,
        record: &SettingRecord,
        previous_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<bool, AdminError> {
        let ops = vec![
            SettingsRepo::write_op(record, previous_version)?,
            audit::audit_op(now, self.ids.uuid(), actor, action, record)?,
        ];
        match self.store.transact_write(ops).await {
            Ok(()) => {}
            Err(e) if e.is_condition_failure() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        // This instance sees the change at once; the others within the settings' TTL.
        self.settings.invalidate();
        tracing::info!(
            target: "audit",
            key = %record.key,
            category = %record.category,
            encrypted = record.is_encrypted,
            action = ?action,
            admin = %actor.id,
            "setting changed"
        );
        Ok(true)
    }

    /// The newest audit entries, newest first.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AdminError> {
        Ok(audit::newest(self.store.as_ref(), limit).await?)
    }

    /// Sends a tiny completion ("test", 10 tokens) to the configured model. Never an error: what went wrong is the
    /// answer's message.
    pub async fn test_llm(&self) -> LlmCheck {
        let fail = |message: String, details| LlmCheck { success: false, message, details };
        let config = match self.settings.llm_config().await {
            Ok(Some(c)) => c,
            Ok(None) => return fail("LLM API key not configured".into(), None),
            Err(e) => return fail(format!("The language-model settings could not be read: {e}"), None),
        };
        let details = |ms: u64, model: &str| {
            Some(LlmCheckDetails { provider: config.provider.as_str(), model: model.to_owned(), response_time_ms: ms })
        };
        let Some(factory) = &self.models else {
            return fail(
                format!("No {} adapter is built into this function", config.provider.as_str()),
                details(0, &config.model),
            );
        };
        let model = match factory.connect(&config) {
            Ok(m) => m,
            Err(e) => return fail(e.to_string(), details(0, &config.model)),
        };
        let request = CompletionRequest {
            system: "You are a connectivity check. Answer with one word.".into(),
            messages: vec![ChatMessage::user("test")],
            max_tokens: 10,
            temperature: 0.0,
        };
        let started = Instant::now();
        let answer = tokio::time::timeout(LLM_TEST_TIMEOUT, model.complete(&request)).await;
        let ms = started.elapsed().as_millis() as u64;
        match answer {
            Ok(Ok(c)) => LlmCheck {
                success: true,
                message: "LLM connection successful".into(),
                details: details(ms, if c.model.is_empty() { &config.model } else { &c.model }),
            },
            Ok(Err(e)) => fail(e.to_string(), details(ms, &config.model)),
            Err(_) => fail(
                format!("the language model did not answer within {} s", LLM_TEST_TIMEOUT.as_secs()),
                details(ms, &config.model),
            ),
        }
    }

    /// The platform uses no Redis: its request limits, lock-outs, idempotency keys and caches live in its own store
    /// (DynamoDB in AWS, the embedded store locally), shared by every instance. So this checks what Redis would
    /// have been for: `success` is whether that store answers now, and the message says plainly that no Redis is
    /// contacted and that a stored `redis_url` is kept but unused.
    pub async fn test_redis(&self) -> RedisCheck {
        let started = Instant::now();
        let read = self.repo.get(keys::REDIS_URL).await;
        let ms = started.elapsed().as_millis();
        let stored = match &read {
            Ok(Some(r)) if r.is_active => " A stored redis_url is kept but never contacted.",
            _ => "",
        };
        match read {
            Ok(_) => RedisCheck {
                success: true,
                message: format!(
                    "No Redis is used: rate limits, lock-outs and caches are kept in the platform's own store, which \
                     answered in {ms} ms.{stored}"
                ),
            },
            Err(e) => RedisCheck {
                success: false,
                message: format!(
                    "No Redis is used: rate limits, lock-outs and caches are kept in the platform's own store, which \
                     did not answer: {}",
                    store_error(&e)
                ),
            },
        }
    }
}

fn store_error(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(_) | StoreError::Throttled => "it is unavailable".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::TimeZone;

    use super::*;
    use crate::ports::{Completion, KeyWrapper, LanguageModel, LlmConfig, LlmError, ManualClock, SequentialIds, Usage};
    use crate::settings::SettingsEnv;
    use crate::settings::envelope::tests::MemoryKeys;
    use crate::settings::tests::MemoryStore;

    struct World {
        store: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        admin: AdminService,
        actor: Actor,
    }

    fn world_with(keys: Option<Arc<dyn KeyWrapper>>, models: Option<Arc<dyn ModelFactory>>) -> World {
        let store = Arc::new(MemoryStore::default());
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()));
        let mut settings = RuntimeSettings::new(store.clone(), clock.clone(), SettingsEnv::default());
        if let Some(k) = keys {
            settings = settings.with_keys(k);
        }
        let admin = AdminService::with_parts(
            store.clone(),
            clock.clone(),
            Arc::new(SequentialIds::default()),
            settings,
            models,
        );
        World { store, clock, admin, actor: Actor { id: uuid::Uuid::from_u128(7), email: "root@example.com".into() } }
    }

    fn world() -> World {
        world_with(Some(Arc::new(MemoryKeys::new())), None)
    }

    fn put(value: &str, category: Category, is_encrypted: bool) -> PutSetting {
        PutSetting { value: Some(value.into()), category, is_encrypted, description: Some("x configuration".into()) }
    }

    fn stored_text(w: &World) -> String {
        w.store.dump().iter().map(|i| serde_json::to_string(&i.0).unwrap()).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn an_encrypted_value_is_sealed_masked_and_readable_by_the_platform_only() {
        let w = world();
        let a = w.admin.put(&w.actor, "llm_api_key", put("sk-live-0123456789", Category::AiProvider, true)).await;
        assert_eq!(a.unwrap(), Action::Created);
        let v = w.admin.get("llm_api_key").await.unwrap();
        assert_eq!((v.value.as_deref(), v.is_encrypted), (Some(ENCRYPTED_MASK), true));
        assert_eq!(v.updated_by.as_deref(), Some(w.actor.id.to_string().as_str()));
        let text = stored_text(&w);
        assert!(text.contains("nt-sealed.v1.local."), "{text}");
        assert!(!text.contains("sk-live"), "the plaintext is nowhere in the store: {text}");
        // the platform reads it at once in this instance
        assert_eq!(w.admin.settings().secret("llm_api_key").await.unwrap().unwrap().expose(), "sk-live-0123456789");
        // a key named like a secret is encrypted even when the request says not
        w.admin.put(&w.actor, "smtp_password", put("hunter2", Category::Email, false)).await.unwrap();
        assert_eq!(w.admin.get("smtp_password").await.unwrap().value.as_deref(), Some(ENCRYPTED_MASK));
        assert!(!stored_text(&w).contains("hunter2"));
    }

    #[tokio::test]
    async fn without_a_master_key_a_secret_is_refused_and_nothing_written() {
        let w = world_with(None, None);
        let e = w.admin.put(&w.actor, "llm_api_key", put("sk-live", Category::AiProvider, true)).await.unwrap_err();
        assert!(matches!(e, AdminError::Encryption(crate::ports::SecretsError::Unavailable(_))), "{e:?}");
        assert!(w.store.dump().is_empty());
        // plain settings still work
        w.admin.put(&w.actor, "llm_model", put("gpt-4o", Category::AiProvider, false)).await.unwrap();
    }

    #[tokio::test]
    async fn list_filters_by_category_and_hides_deleted_keys() {
        let w = world();
        w.admin.put(&w.actor, "max_lot_size", put("5", Category::Trading, false)).await.unwrap();
        w.admin.put(&w.actor, "llm_model", put("gpt-4o", Category::AiProvider, false)).await.unwrap();
        w.admin.put(&w.actor, "email_from", put("a@b.c", Category::Email, false)).await.unwrap();
        let keys = |l: Vec<SettingView>| l.into_iter().map(|s| s.key).collect::<Vec<_>>();
        assert_eq!(keys(w.admin.list(None).await.unwrap()), ["email_from", "llm_model", "max_lot_size"]);
        assert_eq!(keys(w.admin.list(Some(Category::Trading)).await.unwrap()), ["max_lot_size"]);
        w.admin.delete(&w.actor, "email_from").await.unwrap();
        assert_eq!(keys(w.admin.list(None).await.unwrap()), ["llm_model", "max_lot_size"]);
        assert_eq!(w.admin.get("email_from").await.unwrap_err(), AdminError::NotFound("email_from".into()));
        assert_eq!(
            w.admin.delete(&w.actor, "email_from").await.unwrap_err(),
            AdminError::NotFound("email_from".into())
        );
        assert_eq!(w.admin.get("nope").await.unwrap_err().to_string(), "Setting 'nope' not found");
    }

    #[tokio::test]
    async fn a_put_after_a_delete_reactivates_and_every_change_is_audited() {
        let w = world();
        w.admin.put(&w.actor, "max_positions_per_user", put("5", Category::Trading, false)).await.unwrap();
        w.clock.advance(chrono::Duration::seconds(1));
        w.admin.delete(&w.actor, "max_positions_per_user").await.unwrap();
        assert_eq!(w.admin.settings().max_positions_per_user().await, None, "deleted: no effect");
        w.clock.advance(chrono::Duration::seconds(1));
        let a = w.admin.put(&w.actor, "max_positions_per_user", put("7", Category::Trading, false)).await.unwrap();
        assert_eq!(a, Action::Reactivated);
        assert_eq!(w.admin.get("max_positions_per_user").await.unwrap().value.as_deref(), Some("7"));
        assert_eq!(w.admin.settings().max_positions_per_user().await, Some(7));
        w.clock.advance(chrono::Duration::seconds(1));
        w.admin.put(&w.actor, "llm_api_key", put("sk-audit-secret", Category::AiProvider, true)).await.unwrap();
        let trail = w.admin.audit(10).await.unwrap();
        let seen: Vec<(Action, &str)> = trail.iter().map(|e| (e.action, e.key.as_str())).collect();
        assert_eq!(
            seen,
            [
                (Action::Created, "llm_api_key"),
                (Action::Reactivated, "max_positions_per_user"),
                (Action::Deleted, "max_positions_per_user"),
                (Action::Created, "max_positions_per_user"),
            ],
            "newest first"
        );
        assert!(trail[0].is_encrypted && trail[0].actor_email == "root@example.com");
        assert_eq!(w.admin.audit(1).await.unwrap().len(), 1);
        assert!(!stored_text(&w).contains("sk-audit-secret"));
    }

    #[tokio::test]
    async fn bad_input_is_refused_field_by_field() {
        let w = world();
        let fields = |e: AdminError| match e {
            AdminError::Invalid(v) => v.into_iter().map(|i| (i.location, i.field)).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let e = w.admin.put(&w.actor, "bad key", put("1", Category::General, false)).await.unwrap_err();
        assert_eq!(fields(e), [("path", "key")]);
        let mut long = put(&"x".repeat(MAX_VALUE_CHARS + 1), Category::General, false);
        long.description = Some("d".repeat(MAX_DESCRIPTION_CHARS + 1));
        assert_eq!(
            fields(w.admin.put(&w.actor, "k", long).await.unwrap_err()),
            [("body", "value"), ("body", "description")]
        );
        let e = w.admin.put(&w.actor, "max_lot_size", put("50", Category::Trading, false)).await.unwrap_err();
        assert_eq!(fields(e), [("body", "value")]);
        let e = w.admin.put(&w.actor, "max_lot_size", put("5", Category::Trading, true)).await.unwrap_err();
        assert_eq!(fields(e), [("body", "is_encrypted")]);
        assert!(w.store.dump().is_empty(), "nothing written");
        // an empty value of a known key is stored (the admin page saves every field) and has no effect
        w.admin.put(&w.actor, "max_lot_size", put("", Category::Trading, false)).await.unwrap();
        assert_eq!(w.admin.settings().max_lot_size().await, None);
    }

    #[tokio::test]
    async fn at_most_max_settings_keys() {
        let w = world();
        for i in 0..MAX_SETTINGS {
            w.admin.put(&w.actor, &format!("k{i}"), put("v", Category::General, false)).await.unwrap();
        }
        assert_eq!(
            w.admin.put(&w.actor, "one_more", put("v", Category::General, false)).await,
            Err(AdminError::TooMany)
        );
        // an existing key can still be written
        w.admin.put(&w.actor, "k0", put("w", Category::General, false)).await.unwrap();
    }

    struct FakeModels {
        answer: Result<&'static str, LlmError>,
        seen: Mutex<Vec<(LlmConfig, CompletionRequest)>>,
    }

    struct FakeModel(Arc<FakeModels>, LlmConfig);

    #[async_trait]
    impl LanguageModel for FakeModel {
        fn provider(&self) -> &'static str {
            self.1.provider.as_str()
        }
        fn model(&self) -> &str {
            &self.1.model
        }
        async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
            self.0.seen.lock().unwrap().push((self.1.clone(), request.clone()));
            let text = self.0.answer.clone()?;
            Ok(Completion { text: text.into(), usage: Usage::default(), model: "gpt-4o-2024".into(), truncated: false })
        }
    }

    struct Factory(Arc<FakeModels>);

    impl ModelFactory for Factory {
        fn connect(&self, config: &LlmConfig) -> Result<Arc<dyn LanguageModel>, LlmError> {
            Ok(Arc::new(FakeModel(self.0.clone(), config.clone())))
        }
    }

    #[tokio::test]
    async fn test_llm_reports_not_configured_success_and_provider_errors() {
        let w = world();
        let c = w.admin.test_llm().await;
        assert_eq!((c.success, c.message.as_str(), c.details), (false, "LLM API key not configured", None));

        let fake = Arc::new(FakeModels { answer: Ok("ok"), seen: Mutex::new(Vec::new()) });
        let w = world_with(Some(Arc::new(MemoryKeys::new())), Some(Arc::new(Factory(fake.clone()))));
        w.admin.put(&w.actor, "llm_api_key", put("sk-test", Category::AiProvider, true)).await.unwrap();
        let c = w.admin.test_llm().await;
        assert!(c.success, "{c:?}");
        let d = c.details.unwrap();
        assert_eq!((d.provider, d.model.as_str()), ("openai", "gpt-4o-2024"));
        let (config, request) = fake.seen.lock().unwrap()[0].clone();
        assert_eq!(config.api_key.unwrap().expose(), "sk-test", "the decrypted key reaches the adapter");
        assert_eq!((request.messages[0].content.as_str(), request.max_tokens), ("test", 10));

        let failing = Arc::new(FakeModels {
            answer: Err(LlmError::Provider { status: 401, message: "invalid api key".into() }),
            seen: Mutex::new(Vec::new()),
        });
        let w = world_with(Some(Arc::new(MemoryKeys::new())), Some(Arc::new(Factory(failing))));
        w.admin.put(&w.actor, "llm_api_key", put("sk-bad", Category::AiProvider, true)).await.unwrap();
        let c = w.admin.test_llm().await;
        assert!(!c.success);
        assert!(c.message.contains("401") && c.message.contains("invalid api key"), "{}", c.message);
        assert!(!c.message.contains("sk-bad"));

        // configured, but no adapter built in
        let w = world();
        w.admin.put(&w.actor, "llm_base_url", put("http://127.0.0.1:9/v1", Category::AiProvider, false)).await.unwrap();
        let c = w.admin.test_llm().await;
        assert!(!c.success && c.message.contains("No openai adapter"), "{c:?}");
    }

    #[tokio::test]
    async fn test_redis_answers_honestly() {
        let w = world();
        let c = w.admin.test_redis().await;
        assert!(c.success && c.message.starts_with("No Redis is used"), "{c:?}");
        w.admin.put(&w.actor, "redis_url", put("redis://secret@host", Category::Redis, true)).await.unwrap();
        assert!(w.admin.test_redis().await.message.contains("kept but never contacted"));
    }
}
