//! [`RuntimeSettings`]: the stored settings as the running platform sees them — a snapshot of the settings
//! partition, read once and then used for [`SettingsEnv::ttl`] (default 30 s, `NUSATRADE_SETTINGS_TTL_SECS`), so a
//! change made through one Lambda instance takes effect in every instance within that delay, and the hot path
//! (an order's max lot check, a request's rate limit) costs a lock and a clock read, with one query of the
//! settings partition per instance per TTL.
//!
//! Stored values the platform cannot use are ignored with a warning that names the setting and the rule (never the
//! value): the environment's configuration applies instead, and no request fails over a bad setting. A store that
//! cannot be read keeps the previous snapshot (or the environment's configuration) for another TTL.
//!
//! Encrypted values are opened on demand ([`RuntimeSettings::secret`]) with the [`KeyWrapper`] given to
//! [`RuntimeSettings::with_keys`], and the opened value is kept with the snapshot (one KMS `Decrypt` per setting per
//! instance per TTL).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::env::{SettingsEnv, default_model};
use super::envelope;
use super::error::SettingsError;
use super::record::{SettingRecord, Typed, keys, read_value, seal_context};
use super::repo::SettingsRepo;
use crate::ports::{Clock, ItemStore, KeyWrapper, LlmConfig, Ports, Provider, Secret, SecretsError};

/// The run-time overrides read from the stored settings (`None`: not set, or set to something unusable).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `max_lot_size`: the largest lot size of one order (0.01–10).
    pub max_lot_size: Option<Decimal>,
    /// `max_positions_per_user`: open-position reservations per user (1–1000).
    pub max_positions_per_user: Option<u32>,
    /// `rate_limit_requests` per `rate_limit_window_seconds`: the per-user / per-IP request limit.
    pub rate_limit_requests: Option<u32>,
    pub rate_limit_window_seconds: Option<u64>,
    /// `default_slippage_pips`: stored and validated; nothing in the platform uses a default slippage (orders fill
    /// at the market, bounded by the price deviation check), as in the original.
    pub default_slippage_pips: Option<Decimal>,
    /// `ai_daily_token_budget`: tokens per user per UTC day.
    pub ai_daily_token_budget: Option<u64>,
    pub llm_provider: Option<Provider>,
    pub llm_base_url: Option<String>,
    pub llm_model: Option<String>,
}

impl Overrides {
    /// The overrides of the active `records`; unusable values are logged (key and rule) and left out.
    fn read<'a>(records: impl Iterator<Item = &'a SettingRecord>) -> Overrides {
        let mut o = Overrides::default();
        for r in records {
            let Some(value) = r.value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
                if r.is_encrypted && !matches!(read_value(&r.key, "x"), Ok(Typed::Unread)) {
                    // A known key stored encrypted (only possible by writing the table directly).
                    tracing::warn!(key = %r.key, "stored setting ignored: the platform reads this key unencrypted");
                }
                continue;
            };
            match read_value(&r.key, value) {
                Ok(Typed::Unread) => {}
                Ok(typed) => o.set(&r.key, typed),
                Err(rule) => tracing::warn!(key = %r.key, %rule, "stored setting ignored: invalid value"),
            }
        }
        o
    }

    fn set(&mut self, key: &str, typed: Typed) {
        match (key, typed) {
            (keys::MAX_LOT_SIZE, Typed::Decimal(d)) => self.max_lot_size = Some(d),
            (keys::MAX_POSITIONS_PER_USER, Typed::Count(n)) => self.max_positions_per_user = u32::try_from(n).ok(),
            (keys::RATE_LIMIT_REQUESTS, Typed::Count(n)) => self.rate_limit_requests = u32::try_from(n).ok(),
            (keys::RATE_LIMIT_WINDOW_SECONDS, Typed::Count(n)) => self.rate_limit_window_seconds = Some(n),
            (keys::DEFAULT_SLIPPAGE_PIPS, Typed::Decimal(d)) => self.default_slippage_pips = Some(d),
            (keys::AI_DAILY_TOKEN_BUDGET, Typed::Count(n)) => self.ai_daily_token_budget = Some(n),
            (keys::LLM_PROVIDER, Typed::Provider(p)) => self.llm_provider = Some(p),
            (keys::LLM_BASE_URL, Typed::Text(t)) => self.llm_base_url = Some(t),
            (keys::LLM_MODEL, Typed::Text(t)) => self.llm_model = Some(t).filter(|t| !t.is_empty()),
            _ => {}
        }
    }
}

/// The active settings at one moment, with their overrides read.
#[derive(Debug)]
pub struct Snapshot {
    /// When the settings were read (or, after a failed read, when the previous snapshot was kept again).
    pub taken_at: DateTime<Utc>,
    pub overrides: Overrides,
    records: BTreeMap<String, SettingRecord>,
    /// Encrypted values opened so far, by key.
    opened: Mutex<HashMap<String, Secret>>,
}

impl Snapshot {
    fn new(records: Vec<SettingRecord>, taken_at: DateTime<Utc>) -> Snapshot {
        let records: BTreeMap<String, SettingRecord> =
            records.into_iter().filter(|r| r.is_active).map(|r| (r.key.clone(), r)).collect();
        let overrides = Overrides::read(records.values());
        Snapshot { taken_at, overrides, records, opened: Mutex::new(HashMap::new()) }
    }

    fn kept(&self, taken_at: DateTime<Utc>) -> Snapshot {
        let opened = self.opened.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Snapshot {
            taken_at,
            overrides: self.overrides.clone(),
            records: self.records.clone(),
            opened: Mutex::new(opened),
        }
    }

    /// An active setting.
    pub fn get(&self, key: &str) -> Option<&SettingRecord> {
        self.records.get(key)
    }

    /// The active settings, by key.
    pub fn records(&self) -> impl Iterator<Item = &SettingRecord> {
        self.records.values()
    }
}

/// The stored settings at run time: a cached [`Snapshot`], typed getters, secrets and the language model's
/// configuration. Cheap to clone (one shared cache).
#[derive(Clone)]
pub struct RuntimeSettings {
    inner: Arc<Inner>,
}

struct Inner {
    repo: SettingsRepo,
    clock: Arc<dyn Clock>,
    env: SettingsEnv,
    keys: Option<Arc<dyn KeyWrapper>>,
    cache: RwLock<Option<Arc<Snapshot>>>,
    /// One read of the store at a time (the others wait for its snapshot).
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RuntimeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeSettings")
            .field("env", &self.inner.env)
            .field("keys", &self.inner.keys.as_ref().map(|k| k.scheme()))
            .finish_non_exhaustive()
    }
}

impl RuntimeSettings {
    /// Over the settings in `store`; the snapshot's age is measured with `clock`. No key wrapper: encrypted values
    /// cannot be opened (see [`with_keys`](Self::with_keys)).
    pub fn new(store: Arc<dyn ItemStore>, clock: Arc<dyn Clock>, env: SettingsEnv) -> Self {
        RuntimeSettings {
            inner: Arc::new(Inner {
                repo: SettingsRepo::new(store),
                clock,
                env,
                keys: None,
                cache: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// [`new`](Self::new) over the ports' store and clock.
    pub fn from_ports(ports: &Ports, env: SettingsEnv) -> Self {
        Self::new(ports.store.clone(), ports.clock.clone(), env)
    }

    /// The same settings, opening encrypted values with `keys` (a fresh cache: call before sharing).
    pub fn with_keys(self, keys: Arc<dyn KeyWrapper>) -> Self {
        let i = &self.inner;
        RuntimeSettings {
            inner: Arc::new(Inner {
                repo: i.repo.clone(),
                clock: i.clock.clone(),
                env: i.env.clone(),
                keys: Some(keys),
                cache: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn env(&self) -> &SettingsEnv {
        &self.inner.env
    }

    /// The master key encrypted values are sealed and opened with, if any.
    pub fn keys(&self) -> Option<&Arc<dyn KeyWrapper>> {
        self.inner.keys.as_ref()
    }

    /// The settings' reads and writes.
    pub fn repo(&self) -> &SettingsRepo {
        &self.inner.repo
    }

    /// How long a snapshot is used.
    pub fn ttl(&self) -> std::time::Duration {
        self.inner.env.ttl
    }

    fn cached(&self) -> Option<Arc<Snapshot>> {
        self.inner.cache.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn fresh(&self, s: &Snapshot, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(s.taken_at);
        age >= chrono::Duration::zero() && age.to_std().is_ok_and(|a| a < self.inner.env.ttl)
    }

    /// The current snapshot: the cached one while younger than the TTL, else a new read of the store (never an
    /// error: see the module documentation). One caller reads; while it does, the others keep using the expired
    /// snapshot rather than wait (only the very first read is waited for).
    pub async fn snapshot(&self) -> Arc<Snapshot> {
        let cached = self.cached();
        if let Some(s) = &cached
            && self.fresh(s, self.inner.clock.now())
        {
            return s.clone();
        }
        let _one_reader = match (self.inner.refresh.try_lock(), cached) {
            (Ok(guard), _) => guard,
            (Err(_), Some(stale)) => return stale,
            (Err(_), None) => self.inner.refresh.lock().await,
        };
        let now = self.inner.clock.now();
        let previous = self.cached();
        if let Some(s) = &previous
            && self.fresh(s, now)
        {
            return s.clone();
        }
        let snapshot = Arc::new(match self.inner.repo.all().await {
            Ok(records) => Snapshot::new(records, now),
            Err(e) => {
                tracing::warn!(error = %e, "stored settings unreadable: the previous ones (or the environment's) stay in use");
                match previous {
                    Some(p) => p.kept(now),
                    None => Snapshot::new(Vec::new(), now),
                }
            }
        });
        *self.inner.cache.write().unwrap_or_else(|e| e.into_inner()) = Some(snapshot.clone());
        snapshot
    }

    /// Forgets the snapshot: the next use reads the store (after a change made through this instance).
    pub fn invalidate(&self) {
        *self.inner.cache.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The overrides of the current snapshot.
    pub async fn overrides(&self) -> Overrides {
        self.snapshot().await.overrides.clone()
    }

    pub async fn max_lot_size(&self) -> Option<Decimal> {
        self.snapshot().await.overrides.max_lot_size
    }

    pub async fn max_positions_per_user(&self) -> Option<u32> {
        self.snapshot().await.overrides.max_positions_per_user
    }

    pub async fn rate_limit_requests(&self) -> Option<u32> {
        self.snapshot().await.overrides.rate_limit_requests
    }

    pub async fn rate_limit_window_seconds(&self) -> Option<u64> {
        self.snapshot().await.overrides.rate_limit_window_seconds
    }

    /// Stored only: nothing uses a default slippage (see [`Overrides::default_slippage_pips`]).
    pub async fn default_slippage_pips(&self) -> Option<Decimal> {
        self.snapshot().await.overrides.default_slippage_pips
    }

    /// Tokens one user may spend per UTC day: the `ai_daily_token_budget` setting, else `NUSATRADE_AI_DAILY_TOKENS`
    /// (default 200,000).
    pub async fn ai_daily_token_budget(&self) -> u64 {
        self.snapshot().await.overrides.ai_daily_token_budget.unwrap_or(self.inner.env.ai_daily_tokens)
    }

    /// The value of an active setting, decrypted when it is encrypted; `None` when unset or empty.
    pub async fn secret(&self, key: &str) -> Result<Option<Secret>, SettingsError> {
        let snapshot = self.snapshot().await;
        self.secret_in(&snapshot, key).await
    }

    async fn secret_in(&self, snapshot: &Snapshot, key: &str) -> Result<Option<Secret>, SettingsError> {
        let Some(r) = snapshot.get(key) else { return Ok(None) };
        if !r.is_encrypted {
            return Ok(r.value.as_deref().filter(|v| !v.is_empty()).map(Secret::new));
        }
        let Some(sealed) = r.sealed.as_deref() else { return Ok(None) };
        if let Some(s) = snapshot.opened.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(Some(s.clone()));
        }
        let fail = |source| SettingsError::Secret { key: key.to_owned(), source };
        let keys = self
            .inner
            .keys
            .as_ref()
            .ok_or_else(|| fail(SecretsError::Unavailable("no master key is configured here".into())))?;
        let secret = envelope::open(keys.as_ref(), &seal_context(key), sealed).await.map_err(fail)?;
        snapshot.opened.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_owned(), secret.clone());
        Ok(Some(secret))
    }

    /// The language model to use, or `None` when nothing is configured. Each part comes from its setting, else the
    /// environment ([`SettingsEnv`]): the provider (`llm_provider`, `NUSATRADE_LLM_PROVIDER`; default `openai`, or
    /// `anthropic` when the only key anywhere is `ANTHROPIC_API_KEY`), the key (`llm_api_key`, decrypted; else the
    /// provider's `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`), the base URL (`llm_base_url`, `NUSATRADE_LLM_BASE_URL`)
    /// and the model (`llm_model`, `NUSATRADE_LLM_MODEL`, else [`default_model`]). Configured means: Bedrock (IAM,
    /// no key), or a key, or a base URL (a local server may need no key). An `llm_api_key` that cannot be
    /// decrypted is an error, not "not configured".
    pub async fn llm_config(&self) -> Result<Option<LlmConfig>, SettingsError> {
        let snapshot = self.snapshot().await;
        let env = &self.inner.env;
        let o = &snapshot.overrides;
        let stored_key = self.secret_in(&snapshot, keys::LLM_API_KEY).await?;
        let base_url = o.llm_base_url.clone().or_else(|| env.llm_base_url.clone());
        let provider = o.llm_provider.or(env.llm_provider).unwrap_or(
            if stored_key.is_none()
                && base_url.is_none()
                && env.openai_api_key.is_none()
                && env.anthropic_api_key.is_some()
            {
                Provider::Anthropic
            } else {
                Provider::OpenAi
            },
        );
        let api_key = match provider {
            Provider::Bedrock => None,
            Provider::OpenAi => stored_key.or_else(|| env.openai_api_key.clone()),
            Provider::Anthropic => stored_key.or_else(|| env.anthropic_api_key.clone()),
        };
        if provider != Provider::Bedrock && api_key.is_none() && base_url.is_none() {
            return Ok(None);
        }
        let model =
            o.llm_model.clone().or_else(|| env.llm_model.clone()).unwrap_or_else(|| default_model(provider).into());
        Ok(Some(LlmConfig {
            provider,
            base_url,
            model,
            api_key,
            timeout: env.llm_timeout,
            max_retries: env.llm_max_retries,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::ports::{ManualClock, StoreError};
    use crate::settings::envelope::tests::MemoryKeys;
    use crate::settings::record::{Category, setting_key};

    pub(crate) fn memory_store() -> Arc<dyn ItemStore> {
        Arc::new(crate::settings::tests::MemoryStore::default())
    }

    fn record(key: &str, value: &str) -> SettingRecord {
        let t = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        SettingRecord {
            key: key.into(),
            value: Some(value.into()),
            sealed: None,
            category: Category::General,
            is_encrypted: false,
            is_active: true,
            description: None,
            created_at: t,
            updated_at: t,
            updated_by: None,
            version: 1,
        }
    }

    async fn put(store: &Arc<dyn ItemStore>, r: &SettingRecord) {
        store.put(crate::ports::Item::from_record(&setting_key(&r.key), r).unwrap(), None).await.unwrap();
    }

    fn world(ttl: u64) -> (Arc<dyn ItemStore>, Arc<ManualClock>, RuntimeSettings) {
        let store = memory_store();
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()));
        let env = SettingsEnv { ttl: Duration::from_secs(ttl), ..SettingsEnv::default() };
        let rt = RuntimeSettings::new(store.clone(), clock.clone(), env);
        (store, clock, rt)
    }

    #[tokio::test]
    async fn a_change_is_seen_after_the_ttl_and_not_before() {
        let (store, clock, rt) = world(30);
        assert_eq!(rt.max_lot_size().await, None);
        put(&store, &record("max_lot_size", "0.5")).await;
        assert_eq!(rt.max_lot_size().await, None, "the snapshot is used for the TTL");
        clock.advance(chrono::Duration::seconds(29));
        assert_eq!(rt.max_lot_size().await, None);
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(rt.max_lot_size().await, Some(Decimal::new(5, 1)), "read again after the TTL");
        put(&store, &SettingRecord { is_active: false, ..record("max_lot_size", "0.5") }).await;
        rt.invalidate();
        assert_eq!(rt.max_lot_size().await, None, "a deleted setting no longer applies");
    }

    #[tokio::test]
    async fn invalid_values_are_ignored_and_valid_ones_typed() {
        let (store, _, rt) = world(0);
        for (k, v) in [
            ("max_lot_size", "lots"),
            ("max_positions_per_user", "5"),
            ("rate_limit_requests", "0"),
            ("rate_limit_window_seconds", "30"),
            ("default_slippage_pips", "2"),
            ("ai_daily_token_budget", "1000"),
            ("llm_provider", "bedrock"),
        ] {
            put(&store, &record(k, v)).await;
        }
        let o = rt.overrides().await;
        assert_eq!(o.max_lot_size, None);
        assert_eq!(o.max_positions_per_user, Some(5));
        assert_eq!(o.rate_limit_requests, None);
        assert_eq!(o.rate_limit_window_seconds, Some(30));
        assert_eq!(o.default_slippage_pips, Some(Decimal::TWO));
        assert_eq!(rt.ai_daily_token_budget().await, 1000);
        assert_eq!(o.llm_provider, Some(Provider::Bedrock));
    }

    /// A store that fails after its first read.
    struct Flaky {
        inner: Arc<dyn ItemStore>,
        reads: std::sync::atomic::AtomicU32,
    }

    #[async_trait::async_trait]
    impl ItemStore for Flaky {
        async fn get(&self, k: &crate::ports::Key) -> Result<Option<crate::ports::Item>, StoreError> {
            self.inner.get(k).await
        }
        async fn put(&self, i: crate::ports::Item, c: Option<crate::ports::Condition>) -> Result<(), StoreError> {
            self.inner.put(i, c).await
        }
        async fn update(
            &self,
            k: &crate::ports::Key,
            u: crate::ports::Update,
            c: Option<crate::ports::Condition>,
        ) -> Result<crate::ports::Item, StoreError> {
            self.inner.update(k, u, c).await
        }
        async fn delete(
            &self,
            k: &crate::ports::Key,
            c: Option<crate::ports::Condition>,
        ) -> Result<Option<crate::ports::Item>, StoreError> {
            self.inner.delete(k, c).await
        }
        async fn transact_write(&self, ops: Vec<crate::ports::TxOp>) -> Result<(), StoreError> {
            self.inner.transact_write(ops).await
        }
        async fn query(&self, q: crate::ports::Query) -> Result<crate::ports::Page, StoreError> {
            if self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                return Err(StoreError::Unavailable("down".into()));
            }
            self.inner.query(q).await
        }
        async fn scan(&self, s: crate::ports::Scan) -> Result<crate::ports::Page, StoreError> {
            self.inner.scan(s).await
        }
        async fn put_many(&self, items: Vec<crate::ports::Item>) -> Result<(), StoreError> {
            self.inner.put_many(items).await
        }
    }

    #[tokio::test]
    async fn a_store_outage_keeps_the_previous_snapshot() {
        let inner = memory_store();
        put(&inner, &record("max_positions_per_user", "3")).await;
        let store: Arc<dyn ItemStore> = Arc::new(Flaky { inner, reads: 0.into() });
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()));
        let rt = RuntimeSettings::new(store, clock.clone(), SettingsEnv::default());
        assert_eq!(rt.max_positions_per_user().await, Some(3));
        clock.advance(chrono::Duration::seconds(60));
        assert_eq!(rt.max_positions_per_user().await, Some(3), "kept through the outage");
    }

    /// A store whose queries wait for a permit once `gated`.
    struct Gated {
        inner: Arc<dyn ItemStore>,
        gated: std::sync::atomic::AtomicBool,
        permits: tokio::sync::Semaphore,
    }

    #[async_trait::async_trait]
    impl ItemStore for Gated {
        async fn get(&self, k: &crate::ports::Key) -> Result<Option<crate::ports::Item>, StoreError> {
            self.inner.get(k).await
        }
        async fn put(&self, i: crate::ports::Item, c: Option<crate::ports::Condition>) -> Result<(), StoreError> {
            self.inner.put(i, c).await
        }
        async fn update(
            &self,
            k: &crate::ports::Key,
            u: crate::ports::Update,
            c: Option<crate::ports::Condition>,
        ) -> Result<crate::ports::Item, StoreError> {
            self.inner.update(k, u, c).await
        }
        async fn delete(
            &self,
            k: &crate::ports::Key,
            c: Option<crate::ports::Condition>,
        ) -> Result<Option<crate::ports::Item>, StoreError> {
            self.inner.delete(k, c).await
        }
        async fn transact_write(&self, ops: Vec<crate::ports::TxOp>) -> Result<(), StoreError> {
            self.inner.transact_write(ops).await
        }
        async fn query(&self, q: crate::ports::Query) -> Result<crate::ports::Page, StoreError> {
            if self.gated.load(std::sync::atomic::Ordering::SeqCst) {
                self.permits.acquire().await.unwrap().forget();
            }
            self.inner.query(q).await
        }
        async fn scan(&self, s: crate::ports::Scan) -> Result<crate::ports::Page, StoreError> {
            self.inner.scan(s).await
        }
        async fn put_many(&self, items: Vec<crate::ports::Item>) -> Result<(), StoreError> {
            self.inner.put_many(items).await
        }
    }

    #[tokio::test]
    async fn a_slow_refresh_keeps_the_others_on_the_expired_snapshot() {
        let inner = memory_store();
        put(&inner, &record("max_lot_size", "2")).await;
        let gated =
            Arc::new(Gated { inner: inner.clone(), gated: false.into(), permits: tokio::sync::Semaphore::new(0) });
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()));
        let rt = RuntimeSettings::new(gated.clone(), clock.clone(), SettingsEnv::default());
        assert_eq!(rt.max_lot_size().await, Some(Decimal::TWO));
        put(&inner, &record("max_lot_size", "3")).await;
        clock.advance(chrono::Duration::seconds(31));
        gated.gated.store(true, std::sync::atomic::Ordering::SeqCst);
        let reader = tokio::spawn({
            let rt = rt.clone();
            async move { rt.max_lot_size().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = tokio::time::timeout(Duration::from_millis(200), rt.max_lot_size()).await;
        assert_eq!(other, Ok(Some(Decimal::TWO)), "not held up by the refresh in progress");
        gated.permits.add_permits(1);
        assert_eq!(reader.await.unwrap(), Some(Decimal::from(3)));
        assert_eq!(rt.max_lot_size().await, Some(Decimal::from(3)));
    }

    #[tokio::test]
    async fn secrets_open_with_the_master_key_only() {
        let (store, _, rt) = world(30);
        let keys: Arc<dyn KeyWrapper> = Arc::new(MemoryKeys::new());
        let sealed = envelope::seal(keys.as_ref(), &seal_context("llm_api_key"), "sk-live-1").await.unwrap();
        put(
            &store,
            &SettingRecord { value: None, sealed: Some(sealed), is_encrypted: true, ..record("llm_api_key", "") },
        )
        .await;
        put(&store, &record("plain_token_like", "abc")).await;
        let e = rt.secret("llm_api_key").await.unwrap_err();
        assert!(
            matches!(e, SettingsError::Secret { ref key, source: SecretsError::Unavailable(_) } if key == "llm_api_key")
        );
        let rt = rt.with_keys(keys);
        assert_eq!(rt.secret("llm_api_key").await.unwrap().unwrap().expose(), "sk-live-1");
        assert_eq!(rt.secret("plain_token_like").await.unwrap().unwrap().expose(), "abc");
        assert_eq!(rt.secret("absent").await.unwrap(), None);
        let e = rt.with_keys(Arc::new(MemoryKeys::new())).secret("llm_api_key").await.unwrap_err();
        assert!(!e.to_string().contains("sk-live"), "{e}");
    }

    #[tokio::test]
    async fn the_language_model_comes_from_settings_then_the_environment() {
        let (store, clock, _) = world(0);
        let base = |env: SettingsEnv| RuntimeSettings::new(store.clone(), clock.clone(), env);
        // nothing anywhere
        assert_eq!(base(SettingsEnv::default()).llm_config().await.unwrap(), None);
        // the environment's OpenAI key
        let env = SettingsEnv { openai_api_key: Some(Secret::new("sk-env")), ..SettingsEnv::default() };
        let c = base(env.clone()).llm_config().await.unwrap().unwrap();
        assert_eq!(
            (c.provider, c.model.as_str(), c.api_key.unwrap().expose()),
            (Provider::OpenAi, "gpt-4o-mini", "sk-env")
        );
        // only an Anthropic key: Anthropic
        let env_a = SettingsEnv { anthropic_api_key: Some(Secret::new("sk-ant")), ..SettingsEnv::default() };
        assert_eq!(base(env_a).llm_config().await.unwrap().unwrap().provider, Provider::Anthropic);
        // a local server needs no key
        put(&store, &record("llm_base_url", "http://127.0.0.1:11434/v1")).await;
        put(&store, &record("llm_model", "llama3.2")).await;
        let c = base(SettingsEnv::default()).llm_config().await.unwrap().unwrap();
        assert_eq!(
            (c.provider, c.base_url.as_deref(), c.model.as_str(), c.api_key),
            (Provider::OpenAi, Some("http://127.0.0.1:11434/v1"), "llama3.2", None)
        );
        // Bedrock: no key, no URL needed
        store.delete(&setting_key("llm_base_url"), None).await.unwrap();
        put(&store, &record("llm_provider", "bedrock")).await;
        let c = base(env).llm_config().await.unwrap().unwrap();
        assert_eq!((c.provider, c.api_key), (Provider::Bedrock, None), "the OpenAI key is not sent to Bedrock");
        // anthropic chosen but no key: not configured
        put(&store, &record("llm_provider", "anthropic")).await;
        assert_eq!(base(SettingsEnv::default()).llm_config().await.unwrap(), None);
    }
}
