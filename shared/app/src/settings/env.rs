//! What the environment says about the run-time settings: how long a snapshot of the stored settings is used, and
//! the language model and token budget used when no stored setting says otherwise.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NUSATRADE_SETTINGS_TTL_SECS` | 30 | how long an instance uses its snapshot of the stored settings (0–3600; 0: re-read on every use) |
//! | `NUSATRADE_LLM_PROVIDER` | `openai` (`anthropic` when only `ANTHROPIC_API_KEY` is set) | `openai`, `anthropic` or `bedrock` |
//! | `NUSATRADE_LLM_BASE_URL` | the provider's | an OpenAI-compatible or Anthropic endpoint (a local Ollama/vLLM server…) |
//! | `NUSATRADE_LLM_MODEL` | per provider ([`default_model`]) | the model id |
//! | `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` | none | the provider's key |
//! | `NUSATRADE_LLM_TIMEOUT_SECS` | 60 | per attempt (1–600) |
//! | `NUSATRADE_LLM_MAX_RETRIES` | 2 | further attempts after a 429, a 5xx or a timeout (0–5) |
//! | `NUSATRADE_AI_DAILY_TOKENS` | 200000 | tokens one user may spend per UTC day (0–1e9; 0: no model use) |

use std::fmt;
use std::time::Duration;

use crate::ports::{Provider, Secret};

pub const ENV_SETTINGS_TTL: &str = "NUSATRADE_SETTINGS_TTL_SECS";
pub const ENV_LLM_PROVIDER: &str = "NUSATRADE_LLM_PROVIDER";
pub const ENV_LLM_BASE_URL: &str = "NUSATRADE_LLM_BASE_URL";
pub const ENV_LLM_MODEL: &str = "NUSATRADE_LLM_MODEL";
pub const ENV_OPENAI_API_KEY: &str = "OPENAI_API_KEY";
pub const ENV_ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";
pub const ENV_LLM_TIMEOUT: &str = "NUSATRADE_LLM_TIMEOUT_SECS";
pub const ENV_LLM_MAX_RETRIES: &str = "NUSATRADE_LLM_MAX_RETRIES";
pub const ENV_AI_DAILY_TOKENS: &str = "NUSATRADE_AI_DAILY_TOKENS";

/// The default snapshot lifetime: a change reaches every instance within this long.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
pub const DEFAULT_AI_DAILY_TOKENS: u64 = 200_000;

/// The model used when neither a setting nor the environment names one.
pub fn default_model(provider: Provider) -> &'static str {
    match provider {
        Provider::OpenAi => "gpt-4o-mini",
        Provider::Anthropic => "claude-3-5-haiku-latest",
        Provider::Bedrock => "anthropic.claude-3-haiku-20240307-v1:0",
    }
}

/// A malformed variable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{var} = {value:?} is not valid: {why}")]
pub struct SettingsEnvError {
    pub var: &'static str,
    /// The value as set (never a key's: the key variables are not checked).
    pub value: String,
    pub why: &'static str,
}

#[derive(Clone, PartialEq)]
pub struct SettingsEnv {
    pub ttl: Duration,
    pub llm_provider: Option<Provider>,
    pub llm_base_url: Option<String>,
    pub llm_model: Option<String>,
    pub openai_api_key: Option<Secret>,
    pub anthropic_api_key: Option<Secret>,
    pub llm_timeout: Duration,
    pub llm_max_retries: u32,
    pub ai_daily_tokens: u64,
}

impl Default for SettingsEnv {
    fn default() -> Self {
        SettingsEnv {
            ttl: DEFAULT_TTL,
            llm_provider: None,
            llm_base_url: None,
            llm_model: None,
            openai_api_key: None,
            anthropic_api_key: None,
            llm_timeout: Duration::from_secs(60),
            llm_max_retries: 2,
            ai_daily_tokens: DEFAULT_AI_DAILY_TOKENS,
        }
    }
}

impl fmt::Debug for SettingsEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettingsEnv")
            .field("ttl", &self.ttl)
            .field("llm_provider", &self.llm_provider)
            .field("llm_base_url", &self.llm_base_url)
            .field("llm_model", &self.llm_model)
            .field("openai_api_key", &self.openai_api_key.as_ref().map(|_| "***"))
            .field("anthropic_api_key", &self.anthropic_api_key.as_ref().map(|_| "***"))
            .field("llm_timeout", &self.llm_timeout)
            .field("llm_max_retries", &self.llm_max_retries)
            .field("ai_daily_tokens", &self.ai_daily_tokens)
            .finish()
    }
}

impl SettingsEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsEnvError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get`. Unset (or empty) variables take their defaults; a set but malformed one
    /// is an error (a typo must not silently change what the platform does).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsEnvError> {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let num = |var: &'static str, max: u64| -> Result<Option<u64>, SettingsEnvError> {
            let Some(v) = get(var) else { return Ok(None) };
            match v.parse::<u64>() {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(SettingsEnvError { var, value: v, why: "not a whole number in range" }),
            }
        };
        let mut e = SettingsEnv::default();
        if let Some(n) = num(ENV_SETTINGS_TTL, 3600)? {
            e.ttl = Duration::from_secs(n);
        }
        if let Some(v) = get(ENV_LLM_PROVIDER) {
            e.llm_provider = Some(Provider::parse(&v).ok_or(SettingsEnvError {
                var: ENV_LLM_PROVIDER,
                value: v,
                why: "expected openai, anthropic or bedrock",
            })?);
        }
        if let Some(v) = get(ENV_LLM_BASE_URL) {
            match super::record::read_value(super::record::keys::LLM_BASE_URL, &v) {
                Ok(super::record::Typed::Text(url)) => e.llm_base_url = Some(url),
                _ => return Err(SettingsEnvError { var: ENV_LLM_BASE_URL, value: v, why: "expected an http(s) URL" }),
            }
        }
        if let Some(v) = get(ENV_LLM_MODEL) {
            if v.chars().count() > super::record::MAX_MODEL_CHARS {
                return Err(SettingsEnvError { var: ENV_LLM_MODEL, value: v, why: "too long" });
            }
            e.llm_model = Some(v);
        }
        e.openai_api_key = get(ENV_OPENAI_API_KEY).map(Secret::new);
        e.anthropic_api_key = get(ENV_ANTHROPIC_API_KEY).map(Secret::new);
        if let Some(n) = num(ENV_LLM_TIMEOUT, 600)? {
            if n == 0 {
                return Err(SettingsEnvError { var: ENV_LLM_TIMEOUT, value: n.to_string(), why: "at least 1" });
            }
            e.llm_timeout = Duration::from_secs(n);
        }
        if let Some(n) = num(ENV_LLM_MAX_RETRIES, 5)? {
            e.llm_max_retries = n as u32;
        }
        if let Some(n) = num(ENV_AI_DAILY_TOKENS, super::record::MAX_DAILY_TOKENS)? {
            e.ai_daily_tokens = n;
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<SettingsEnv, SettingsEnvError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        SettingsEnv::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let e = env(&[]).unwrap();
        assert_eq!((e.ttl, e.ai_daily_tokens, e.llm_provider), (DEFAULT_TTL, 200_000, None));
        let e = env(&[
            ("NUSATRADE_SETTINGS_TTL_SECS", "1"),
            ("NUSATRADE_LLM_PROVIDER", "anthropic"),
            ("NUSATRADE_LLM_BASE_URL", "http://127.0.0.1:11434/v1/"),
            ("NUSATRADE_LLM_MODEL", "llama3"),
            ("OPENAI_API_KEY", "sk-1"),
            ("NUSATRADE_LLM_TIMEOUT_SECS", "5"),
            ("NUSATRADE_AI_DAILY_TOKENS", "1000"),
        ])
        .unwrap();
        assert_eq!(e.ttl, Duration::from_secs(1));
        assert_eq!(e.llm_provider, Some(Provider::Anthropic));
        assert_eq!(e.llm_base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(e.openai_api_key.as_ref().map(Secret::expose), Some("sk-1"));
        assert_eq!((e.llm_timeout, e.ai_daily_tokens), (Duration::from_secs(5), 1000));
        assert!(!format!("{e:?}").contains("sk-1"), "keys never print");
    }

    #[test]
    fn malformed_values_are_refused_by_name() {
        for (var, bad) in [
            ("NUSATRADE_SETTINGS_TTL_SECS", "-1"),
            ("NUSATRADE_SETTINGS_TTL_SECS", "3601"),
            ("NUSATRADE_LLM_PROVIDER", "gemini"),
            ("NUSATRADE_LLM_BASE_URL", "localhost:11434"),
            ("NUSATRADE_LLM_TIMEOUT_SECS", "0"),
            ("NUSATRADE_AI_DAILY_TOKENS", "lots"),
        ] {
            assert_eq!(env(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
        }
    }
}
