//! Language-model adapters for [`nusatrade_app::ports::LanguageModel`] over HTTP: [`OpenAiCompatible`] (an
//! OpenAI-compatible Chat Completions endpoint: OpenAI, Azure-style gateways, Ollama, vLLM…) and [`Anthropic`]
//! (Messages), both streaming (Server-Sent Events), and [`HttpModels`], the [`ModelFactory`] that builds them from
//! an [`LlmConfig`]. Amazon Bedrock's adapter is in `nusatrade-aws` (feature `bedrock`); it shares this crate's
//! [`retry`] policy.
//!
//! Every adapter bounds each attempt by [`LlmConfig::timeout`] (a streamed answer: the wait for its headers, then
//! for each event), retries [`LlmConfig::max_retries`] times on 429 (honouring `Retry-After`, capped), 5xx,
//! timeouts and connection errors with exponential backoff and jitter ([`Backoff`]); a stream is retried only
//! before its first delta was forwarded. Error messages are cut to [`retry::MAX_MESSAGE_CHARS`] characters and
//! never carry the key or the request. Each call is logged (provider, model, status, attempts, latency, tokens);
//! no prompt, answer or key ever is.
//!
//! With the `fake` feature, [`fake`] serves scripted fake providers in-process for tests.

mod anthropic;
mod engine;
mod openai;
pub mod retry;

#[cfg(feature = "fake")]
pub mod fake;

use std::sync::Arc;
use std::time::Duration;

use nusatrade_app::ports::{LanguageModel, LlmConfig, LlmError, ModelFactory, Provider};

pub use anthropic::{ANTHROPIC_BASE_URL, ANTHROPIC_VERSION, Anthropic};
pub use engine::check_model;
pub use openai::{OPENAI_BASE_URL, OpenAiCompatible};
pub use retry::Backoff;

/// Builds [`OpenAiCompatible`] and [`Anthropic`] models over one shared HTTP client (one connection pool).
/// Bedrock is [`LlmError::NotConfigured`] here: `nusatrade_aws::AwsModels` builds it in AWS.
#[derive(Clone)]
pub struct HttpModels {
    client: reqwest::Client,
    backoff: Backoff,
}

impl HttpModels {
    /// A factory with its own HTTP client (rustls, connect timeout 10 s) and the default [`Backoff`].
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("nusatrade/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client's TLS backend initialises");
        HttpModels::with_client(client)
    }

    /// A factory over `client`.
    pub fn with_client(client: reqwest::Client) -> Self {
        HttpModels { client, backoff: Backoff::default() }
    }

    /// The delays between attempts (tests shorten them).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn backoff(&self) -> Backoff {
        self.backoff
    }
}

impl Default for HttpModels {
    fn default() -> Self {
        HttpModels::new()
    }
}

impl ModelFactory for HttpModels {
    fn connect(&self, config: &LlmConfig) -> Result<Arc<dyn LanguageModel>, LlmError> {
        match config.provider {
            Provider::OpenAi => Ok(Arc::new(OpenAiCompatible::new(self.client.clone(), config, self.backoff)?)),
            Provider::Anthropic => Ok(Arc::new(Anthropic::new(self.client.clone(), config, self.backoff)?)),
            Provider::Bedrock => Err(LlmError::NotConfigured("Amazon Bedrock is only available in AWS".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use nusatrade_app::ports::{ChatMessage, CompletionRequest, Secret};

    use super::*;

    fn config(provider: Provider, base_url: Option<&str>, key: Option<&str>) -> LlmConfig {
        LlmConfig {
            provider,
            base_url: base_url.map(Into::into),
            model: "m-1".into(),
            api_key: key.map(Secret::new),
            timeout: Duration::from_secs(2),
            max_retries: 1,
        }
    }

    #[test]
    fn the_factory_builds_each_provider() {
        let f = HttpModels::new();
        let m = f.connect(&config(Provider::OpenAi, None, Some("sk-1"))).unwrap();
        assert_eq!((m.provider(), m.model()), ("openai", "m-1"));
        let m = f.connect(&config(Provider::Anthropic, None, Some("sk-ant"))).unwrap();
        assert_eq!((m.provider(), m.model()), ("anthropic", "m-1"));
        assert_eq!(
            f.connect(&config(Provider::Bedrock, None, None)).err(),
            Some(LlmError::NotConfigured("Amazon Bedrock is only available in AWS".into()))
        );
        assert!(matches!(f.connect(&config(Provider::Anthropic, None, None)), Err(LlmError::NotConfigured(_))));
        assert!(matches!(
            f.connect(&config(Provider::OpenAi, Some("not a url"), None)),
            Err(LlmError::NotConfigured(_))
        ));
    }

    /// Nothing listens on the port: unreachable, after the retries.
    #[tokio::test]
    async fn an_unreachable_provider() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let fast = Backoff {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            retry_after_cap: Duration::from_millis(2),
        };
        let f = HttpModels::new().with_backoff(fast);
        let url = format!("http://127.0.0.1:{port}/v1");
        let m = f.connect(&config(Provider::OpenAi, Some(&url), Some("sk-secret-key"))).unwrap();
        let req = CompletionRequest {
            system: "s".into(),
            messages: vec![ChatMessage::user("q")],
            max_tokens: 5,
            temperature: 0.0,
        };
        let err = m.complete(&req).await.unwrap_err();
        assert!(matches!(err, LlmError::Unreachable(_)), "{err:?}");
        assert!(!err.to_string().contains("sk-secret-key"));
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        assert!(matches!(m.stream(&req, tx).await, Err(LlmError::Unreachable(_))));
    }
}
