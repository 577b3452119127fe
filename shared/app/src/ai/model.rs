//! Which language model answers, if any. The configuration can change at run time (the admin settings), so the use
//! cases ask a [`ModelSource`] for the current choice on every call; [`SettingsModels`] resolves it from the
//! settings (cached by them) and rebuilds the adapter only when the configuration changed.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::{LanguageModel, LlmConfig, LlmError, ModelFactory};

/// The model to use now and the per-user daily token budget that goes with it (0 = no limit).
#[derive(Clone)]
pub struct ModelChoice {
    pub model: Arc<dyn LanguageModel>,
    pub daily_tokens: u64,
}

/// Where the current model comes from.
#[async_trait]
pub trait ModelSource: Send + Sync + 'static {
    /// The model to use now; `Ok(None)` when none is configured (the computed answers apply). An `Err` is a
    /// configuration that cannot work (reported to the caller, never a 500).
    async fn current(&self) -> Result<Option<ModelChoice>, LlmError>;
}

/// No language model: every answer is computed.
pub struct NoModel;

#[async_trait]
impl ModelSource for NoModel {
    async fn current(&self) -> Result<Option<ModelChoice>, LlmError> {
        Ok(None)
    }
}

/// Always the same model (tests, demos).
pub struct FixedModel(pub ModelChoice);

#[async_trait]
impl ModelSource for FixedModel {
    async fn current(&self) -> Result<Option<ModelChoice>, LlmError> {
        Ok(Some(self.0.clone()))
    }
}

/// What [`SettingsModels`] reads: the configured model and the budget (the admin settings over the environment).
#[async_trait]
pub trait ModelSettings: Send + Sync + 'static {
    async fn llm_config(&self) -> Result<Option<LlmConfig>, LlmError>;
    async fn daily_tokens(&self) -> u64;
}

/// The model the settings name, built by `factory`, rebuilt only when the configuration changes.
pub struct SettingsModels {
    settings: Arc<dyn ModelSettings>,
    factory: Arc<dyn ModelFactory>,
    built: Mutex<Option<(LlmConfig, Arc<dyn LanguageModel>)>>,
}

impl SettingsModels {
    pub fn new(settings: Arc<dyn ModelSettings>, factory: Arc<dyn ModelFactory>) -> Self {
        SettingsModels { settings, factory, built: Mutex::new(None) }
    }
}

#[async_trait]
impl ModelSource for SettingsModels {
    async fn current(&self) -> Result<Option<ModelChoice>, LlmError> {
        let Some(config) = self.settings.llm_config().await? else { return Ok(None) };
        let daily_tokens = self.settings.daily_tokens().await;
        let cached = {
            let built = self.built.lock().unwrap_or_else(|p| p.into_inner());
            built.as_ref().filter(|(c, _)| *c == config).map(|(_, m)| m.clone())
        };
        let model = match cached {
            Some(m) => m,
            None => {
                let m = self.factory.connect(&config)?;
                tracing::info!(provider = config.provider.as_str(), model = %config.model, "language model configured");
                *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Some((config, m.clone()));
                m
            }
        };
        Ok(Some(ModelChoice { model, daily_tokens }))
    }
}

/// The admin settings over the environment ([`crate::settings`]), read through their cached snapshot.
#[async_trait]
impl ModelSettings for crate::settings::RuntimeSettings {
    async fn llm_config(&self) -> Result<Option<LlmConfig>, LlmError> {
        crate::settings::RuntimeSettings::llm_config(self)
            .await
            .map_err(|e| LlmError::NotConfigured(format!("the language-model settings cannot be used: {e}")))
    }
    async fn daily_tokens(&self) -> u64 {
        self.ai_daily_token_budget().await
    }
}
