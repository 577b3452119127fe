//! The language-model port (issue 17): one chat-completion interface with adapters for an OpenAI-compatible Chat
//! Completions endpoint and Anthropic Messages (`infra/llm`), and Amazon Bedrock's Converse API (`infra/aws`,
//! feature `bedrock`). Adapters own their timeouts and their retries with backoff (429 and 5xx only); they report
//! the provider's token counts. The use cases ([`crate::ai`]) own the prompts, the per-user token budget and what a
//! failure means to the caller.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::secrets::Secret;

/// Who wrote a message of the conversation (the system prompt is [`CompletionRequest::system`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One message of the conversation sent to the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::User, content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage { role: Role::Assistant, content: content.into() }
    }
}

/// A completion request: the system prompt, the conversation (oldest first, ending with the user's message) and
/// the sampling limits.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    pub system: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    pub temperature: f32,
}

/// Tokens the provider counted for one completion (0 when it did not say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

impl Usage {
    pub fn total(&self) -> u32 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The model's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
    /// The model that answered, as the provider named it.
    pub model: String,
    /// True when the provider stopped at `max_tokens` (the text is cut).
    pub truncated: bool,
}

/// Why a completion failed. None of these is the caller's fault; the use cases decide what the user sees.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// No answer within the adapter's timeout (after its retries).
    #[error("the language model did not answer within {0} s")]
    Timeout(u64),
    /// The provider kept answering 429 after the retries.
    #[error("the language model provider is rate limiting requests")]
    RateLimited { retry_after_secs: Option<u64> },
    /// Any other non-success answer of the provider (a 5xx after the retries, a 4xx at once). `message` is the
    /// provider's error text, cut short; never the request or a key.
    #[error("the language model provider answered {status}: {message}")]
    Provider { status: u16, message: String },
    /// The provider answered something that is not a completion (bad JSON, no text, a broken stream).
    #[error("the language model's answer could not be read: {0}")]
    Malformed(String),
    /// The provider could not be reached (DNS, connection refused, TLS).
    #[error("the language model provider could not be reached: {0}")]
    Unreachable(String),
    /// A stream ended before the provider said the answer was complete; `partial` is what arrived.
    #[error("the language model's answer stopped half way")]
    Incomplete { partial: String },
    /// The configuration cannot work (unknown provider, missing key or model).
    #[error("{0}")]
    NotConfigured(String),
}

/// A chat-completion model.
#[async_trait]
pub trait LanguageModel: Send + Sync + 'static {
    /// `openai`, `anthropic` or `bedrock`.
    fn provider(&self) -> &'static str;
    /// The configured model id.
    fn model(&self) -> &str;
    /// One completion.
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError>;
    /// One completion, sending text deltas to `deltas` as the provider streams them (a closed receiver is not an
    /// error: the completion still finishes). Returns the whole completion. The default completes, then sends the
    /// text as one delta (for adapters whose provider does not stream).
    async fn stream(&self, request: &CompletionRequest, deltas: mpsc::Sender<String>) -> Result<Completion, LlmError> {
        let done = self.complete(request).await?;
        let _ = deltas.send(done.text.clone()).await;
        Ok(done)
    }
}

/// The providers an adapter exists for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// An OpenAI-compatible Chat Completions endpoint (OpenAI, Azure-style gateways, Ollama, vLLM…).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Amazon Bedrock Converse (IAM role, no key).
    Bedrock,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Bedrock => "bedrock",
        }
    }
    pub fn parse(s: &str) -> Option<Provider> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" | "openai-compatible" | "openai_compatible" | "ollama" | "vllm" | "azure" => {
                Some(Provider::OpenAi)
            }
            "anthropic" | "claude" => Some(Provider::Anthropic),
            "bedrock" | "aws-bedrock" | "aws_bedrock" => Some(Provider::Bedrock),
            _ => None,
        }
    }
}

/// How to reach a model.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmConfig {
    pub provider: Provider,
    /// The endpoint's base URL (`https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`…); `None` = the
    /// provider's public endpoint (Bedrock: the function's region).
    pub base_url: Option<String>,
    pub model: String,
    /// The API key (none for Bedrock, or for a local server that needs none).
    pub api_key: Option<Secret>,
    /// Per attempt.
    pub timeout: Duration,
    /// Further attempts after a 429, a 5xx or a timeout.
    pub max_retries: u32,
}

/// Builds a model for a configuration (the configuration can change at run time: the admin settings).
pub trait ModelFactory: Send + Sync + 'static {
    fn connect(&self, config: &LlmConfig) -> Result<Arc<dyn LanguageModel>, LlmError>;
}
