//! [`OpenAiCompatible`]: an OpenAI-compatible Chat Completions endpoint (OpenAI, Azure-style gateways, Ollama,
//! vLLM…): `POST {base_url}/chat/completions`, `Authorization: Bearer <key>` when a key is set.

use async_trait::async_trait;
use nusatrade_app::ports::{Completion, CompletionRequest, LanguageModel, LlmConfig, LlmError, Role, Usage};
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::engine::{Engine, StreamDecoder, StreamError, Wire, base_url, check_model, configured_key, key_header};
use crate::retry::Backoff;

/// OpenAI's public endpoint, the default base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// A model behind an OpenAI-compatible Chat Completions endpoint.
pub struct OpenAiCompatible {
    engine: Engine<OpenAiWire>,
}

impl OpenAiCompatible {
    /// The model of `config` (`base_url` default [`OPENAI_BASE_URL`]; a key is required there, optional elsewhere:
    /// local servers need none), reached through `client`, retrying with `backoff`.
    pub fn new(client: reqwest::Client, config: &LlmConfig, backoff: Backoff) -> Result<Self, LlmError> {
        check_model(config)?;
        let base = base_url(config, OPENAI_BASE_URL)?;
        let mut headers = HeaderMap::new();
        match configured_key(config) {
            Some(key) => {
                headers.insert(AUTHORIZATION, key_header("Bearer ", key)?);
            }
            None if base == OPENAI_BASE_URL => {
                return Err(LlmError::NotConfigured("an API key is needed for OpenAI".into()));
            }
            None => {}
        }
        let wire = OpenAiWire { endpoint: format!("{base}/chat/completions"), headers };
        Ok(OpenAiCompatible { engine: Engine::new(client, wire, config, backoff)? })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.engine.wire().endpoint()
    }
}

#[async_trait]
impl LanguageModel for OpenAiCompatible {
    fn provider(&self) -> &'static str {
        OpenAiWire::PROVIDER
    }
    fn model(&self) -> &str {
        self.engine.model()
    }
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
        self.engine.complete(request).await
    }
    async fn stream(&self, request: &CompletionRequest, deltas: mpsc::Sender<String>) -> Result<Completion, LlmError> {
        self.engine.stream(request, deltas).await
    }
}

pub(crate) struct OpenAiWire {
    endpoint: String,
    headers: HeaderMap,
}

#[derive(Deserialize)]
struct ChatResponse {
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<ResponseMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    content: Option<String>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl From<OpenAiUsage> for Usage {
    fn from(u: OpenAiUsage) -> Usage {
        Usage { input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens }
    }
}

#[derive(Deserialize)]
struct Chunk {
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<OpenAiUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

fn role(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

impl Wire for OpenAiWire {
    const PROVIDER: &'static str = "openai";
    type Decoder = OpenAiStream;

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    fn body(&self, model: &str, request: &CompletionRequest, stream: bool) -> Value {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !request.system.is_empty() {
            messages.push(json!({"role": "system", "content": request.system}));
        }
        messages.extend(request.messages.iter().map(|m| json!({"role": role(m.role), "content": m.content})));
        let mut body = json!({
            "model": model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        });
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    fn parse(&self, model: &str, body: &[u8]) -> Result<Completion, LlmError> {
        let answer: ChatResponse =
            serde_json::from_slice(body).map_err(|e| LlmError::Malformed(format!("not a chat completion: {e}")))?;
        let choice = answer.choices.into_iter().next().ok_or_else(|| LlmError::Malformed("no choices".into()))?;
        let message = choice.message.ok_or_else(|| LlmError::Malformed("a choice without a message".into()))?;
        Ok(Completion {
            text: message.content.unwrap_or_default(),
            usage: answer.usage.unwrap_or_default().into(),
            model: answer.model.filter(|m| !m.is_empty()).unwrap_or_else(|| model.to_owned()),
            truncated: choice.finish_reason.as_deref() == Some("length"),
        })
    }

    fn decoder(&self, model: &str) -> OpenAiStream {
        OpenAiStream { model: model.to_owned(), usage: Usage::default(), finish_reason: None, done: false }
    }
}

/// A streamed chat completion: `data:` chunks with `choices[0].delta.content`, a `finish_reason`, a last chunk with
/// `usage` (asked for by `stream_options.include_usage`), then `data: [DONE]`.
pub(crate) struct OpenAiStream {
    model: String,
    usage: Usage,
    finish_reason: Option<String>,
    done: bool,
}

impl StreamDecoder for OpenAiStream {
    fn event(&mut self, _event: &str, data: &str) -> Result<Option<String>, StreamError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        if data.is_empty() {
            return Ok(None);
        }
        let chunk: Chunk =
            serde_json::from_str(data).map_err(|e| StreamError::Malformed(format!("not a completion chunk: {e}")))?;
        if let Some(error) = chunk.error {
            let status = error.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok());
            let message = error.get("message").and_then(Value::as_str).unwrap_or("an error in the stream");
            return Err(StreamError::Provider {
                status: status.filter(|s| (400..600).contains(s)).unwrap_or(500),
                message: message.to_owned(),
            });
        }
        if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
            self.model = model;
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage.into();
        }
        let Some(choice) = chunk.choices.into_iter().next() else { return Ok(None) };
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(reason);
        }
        Ok(choice.delta.and_then(|d| d.content))
    }

    fn ended(&self) -> bool {
        self.done
    }

    fn complete(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }

    fn finish(self, text: String) -> Completion {
        Completion {
            text,
            usage: self.usage,
            model: self.model,
            truncated: self.finish_reason.as_deref() == Some("length"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nusatrade_app::ports::{ChatMessage, Provider, Secret};

    use super::*;

    fn config(base_url: Option<&str>, key: Option<&str>) -> LlmConfig {
        LlmConfig {
            provider: Provider::OpenAi,
            base_url: base_url.map(Into::into),
            model: "gpt-test".into(),
            api_key: key.map(Secret::new),
            timeout: Duration::from_secs(5),
            max_retries: 1,
        }
    }

    fn wire() -> OpenAiWire {
        OpenAiWire { endpoint: "http://x/chat/completions".into(), headers: HeaderMap::new() }
    }

    #[test]
    fn endpoints_and_keys() {
        let c = reqwest::Client::new();
        let m = OpenAiCompatible::new(c.clone(), &config(None, Some("sk-1")), Backoff::default()).unwrap();
        assert_eq!(m.endpoint(), "https://api.openai.com/v1/chat/completions");
        assert!(matches!(
            OpenAiCompatible::new(c.clone(), &config(None, None), Backoff::default()),
            Err(LlmError::NotConfigured(_))
        ));
        let local = OpenAiCompatible::new(c, &config(Some("http://127.0.0.1:11434/v1/"), None), Backoff::default());
        assert_eq!(local.unwrap().endpoint(), "http://127.0.0.1:11434/v1/chat/completions");
    }

    #[test]
    fn request_body() {
        let req = CompletionRequest {
            system: "sys".into(),
            messages: vec![ChatMessage::user("q"), ChatMessage::assistant("a")],
            max_tokens: 10,
            temperature: 0.25,
        };
        let b = wire().body("gpt-test", &req, false);
        assert_eq!(
            b,
            json!({"model": "gpt-test", "max_tokens": 10, "temperature": 0.25, "messages": [
                {"role": "system", "content": "sys"}, {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"}]})
        );
        let s = wire().body("gpt-test", &CompletionRequest { system: String::new(), ..req }, true);
        assert_eq!(s["stream"], json!(true));
        assert_eq!(s["stream_options"], json!({"include_usage": true}));
        assert_eq!(s["messages"][0]["role"], "user", "no empty system message");
    }

    #[test]
    fn parse_answers() {
        let body = br#"{"model":"gpt-4o-2024","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},
            "finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        let c = wire().parse("gpt-4o", body).unwrap();
        assert_eq!((c.text.as_str(), c.model.as_str(), c.truncated), ("hi", "gpt-4o-2024", true));
        assert_eq!(c.usage, Usage { input_tokens: 5, output_tokens: 2 });
        // No usage, no model (some local servers): zeros and the configured model.
        let c = wire().parse("m", br#"{"choices":[{"message":{"content":"x"},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!((c.usage, c.model.as_str(), c.truncated), (Usage::default(), "m", false));
        for bad in [&b"not json"[..], br#"{"choices":[]}"#, br#"{"choices":[{"finish_reason":"stop"}]}"#, b"[1]"] {
            assert!(matches!(wire().parse("m", bad), Err(LlmError::Malformed(_))));
        }
    }

    #[test]
    fn stream_decoding() {
        let mut d = wire().decoder("m");
        assert_eq!(
            d.event("", r#"{"model":"m-1","choices":[{"delta":{"role":"assistant","content":""}}]}"#),
            Ok(Some(String::new()))
        );
        assert_eq!(
            d.event("", r#"{"choices":[{"delta":{"content":"Hel"},"finish_reason":null}]}"#),
            Ok(Some("Hel".into()))
        );
        assert!(!d.complete());
        assert_eq!(d.event("", r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#), Ok(None));
        assert!(d.complete() && !d.ended());
        assert_eq!(d.event("", r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#), Ok(None));
        assert_eq!(d.event("", "[DONE]"), Ok(None));
        assert!(d.ended());
        let c = d.finish("Hel".into());
        assert_eq!((c.model.as_str(), c.usage.total(), c.truncated), ("m-1", 4, false));

        let mut d = wire().decoder("m");
        assert!(matches!(d.event("", "{oops"), Err(StreamError::Malformed(_))));
        assert_eq!(
            d.event("", r#"{"error":{"message":"overloaded","code":503}}"#),
            Err(StreamError::Provider { status: 503, message: "overloaded".into() })
        );
        assert!(matches!(
            d.event("", r#"{"error":{"message":"x","code":"bad"}}"#),
            Err(StreamError::Provider { status: 500, .. })
        ));
    }
}
