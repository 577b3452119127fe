//! [`Anthropic`]: the Anthropic Messages API, `POST {base_url}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`.

use async_trait::async_trait;
use nusatrade_app::ports::{Completion, CompletionRequest, LanguageModel, LlmConfig, LlmError, Role, Usage};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::engine::{Engine, StreamDecoder, StreamError, Wire, base_url, check_model, configured_key, key_header};
use crate::retry::Backoff;

/// Anthropic's public endpoint, the default base URL.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// The API version sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A model behind the Anthropic Messages API.
pub struct Anthropic {
    engine: Engine<AnthropicWire>,
}

impl Anthropic {
    /// The model of `config` (`base_url` default [`ANTHROPIC_BASE_URL`]; a key is required), reached through
    /// `client`, retrying with `backoff`.
    pub fn new(client: reqwest::Client, config: &LlmConfig, backoff: Backoff) -> Result<Self, LlmError> {
        check_model(config)?;
        let base = base_url(config, ANTHROPIC_BASE_URL)?;
        let key = configured_key(config)
            .ok_or_else(|| LlmError::NotConfigured("an API key is needed for Anthropic".into()))?;
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-api-key"), key_header("", key)?);
        headers.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(ANTHROPIC_VERSION));
        let wire = AnthropicWire { endpoint: format!("{base}/v1/messages"), headers };
        Ok(Anthropic { engine: Engine::new(client, wire, config, backoff)? })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.engine.wire().endpoint()
    }
}

#[async_trait]
impl LanguageModel for Anthropic {
    fn provider(&self) -> &'static str {
        AnthropicWire::PROVIDER
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

pub(crate) struct AnthropicWire {
    endpoint: String,
    headers: HeaderMap,
}

#[derive(Deserialize)]
struct Message {
    model: Option<String>,
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct AnthropicUsage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
}

/// The status an Anthropic error type stands for (in a stream's `error` event).
fn error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

impl Wire for AnthropicWire {
    const PROVIDER: &'static str = "anthropic";
    type Decoder = AnthropicStream;

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    fn body(&self, model: &str, request: &CompletionRequest, stream: bool) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({"role": role, "content": m.content})
            })
            .collect();
        let mut body = json!({
            "model": model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        });
        if !request.system.is_empty() {
            body["system"] = json!(request.system);
        }
        if stream {
            body["stream"] = json!(true);
        }
        body
    }

    fn parse(&self, model: &str, body: &[u8]) -> Result<Completion, LlmError> {
        let answer: Message =
            serde_json::from_slice(body).map_err(|e| LlmError::Malformed(format!("not a message: {e}")))?;
        let text = answer.content.iter().filter(|b| b.kind == "text").filter_map(|b| b.text.as_deref()).collect();
        let usage = answer.usage.unwrap_or_default();
        Ok(Completion {
            text,
            usage: Usage {
                input_tokens: usage.input_tokens.unwrap_or(0),
                output_tokens: usage.output_tokens.unwrap_or(0),
            },
            model: answer.model.filter(|m| !m.is_empty()).unwrap_or_else(|| model.to_owned()),
            truncated: answer.stop_reason.as_deref() == Some("max_tokens"),
        })
    }

    fn decoder(&self, model: &str) -> AnthropicStream {
        AnthropicStream { model: model.to_owned(), usage: Usage::default(), stop_reason: None, stopped: false }
    }
}

/// A streamed message: `message_start` (model, input tokens), `content_block_delta`s (`text_delta`),
/// `message_delta` (stop reason, output tokens), `message_stop`; `ping`s and an `error` event may come between.
pub(crate) struct AnthropicStream {
    model: String,
    usage: Usage,
    stop_reason: Option<String>,
    stopped: bool,
}

impl StreamDecoder for AnthropicStream {
    fn event(&mut self, event: &str, data: &str) -> Result<Option<String>, StreamError> {
        let v: Value =
            serde_json::from_str(data).map_err(|e| StreamError::Malformed(format!("not a stream event: {e}")))?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
        let tokens = |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_u64).map(|t| t as u32);
        match kind {
            "message_start" => {
                if let Some(model) = v.pointer("/message/model").and_then(Value::as_str).filter(|m| !m.is_empty()) {
                    self.model = model.to_owned();
                }
                if let Some(t) = tokens(&v, "/message/usage/input_tokens") {
                    self.usage.input_tokens = t;
                }
                if let Some(t) = tokens(&v, "/message/usage/output_tokens") {
                    self.usage.output_tokens = t;
                }
                Ok(None)
            }
            "content_block_delta" => {
                let delta =
                    v.get("delta").ok_or_else(|| StreamError::Malformed("a delta event without delta".into()))?;
                if delta.get("type").and_then(Value::as_str) != Some("text_delta") {
                    return Ok(None);
                }
                let text = delta.get("text").and_then(Value::as_str);
                text.map(|t| Some(t.to_owned()))
                    .ok_or_else(|| StreamError::Malformed("a text delta without text".into()))
            }
            "message_delta" => {
                if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(t) = tokens(&v, "/usage/output_tokens") {
                    self.usage.output_tokens = t;
                }
                if let Some(t) = tokens(&v, "/usage/input_tokens").filter(|t| *t > 0) {
                    self.usage.input_tokens = t;
                }
                Ok(None)
            }
            "message_stop" => {
                self.stopped = true;
                Ok(None)
            }
            "error" => {
                let kind = v.pointer("/error/type").and_then(Value::as_str).unwrap_or("api_error");
                let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("an error in the stream");
                Err(StreamError::Provider { status: error_status(kind), message: message.to_owned() })
            }
            // ping, content_block_start, content_block_stop, and event types added later.
            _ => Ok(None),
        }
    }

    fn ended(&self) -> bool {
        self.stopped
    }

    fn complete(&self) -> bool {
        self.stopped
    }

    fn finish(self, text: String) -> Completion {
        Completion {
            text,
            usage: self.usage,
            model: self.model,
            truncated: self.stop_reason.as_deref() == Some("max_tokens"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nusatrade_app::ports::{ChatMessage, Provider, Secret};

    use super::*;

    fn config(key: Option<&str>) -> LlmConfig {
        LlmConfig {
            provider: Provider::Anthropic,
            base_url: None,
            model: "claude-test".into(),
            api_key: key.map(Secret::new),
            timeout: Duration::from_secs(5),
            max_retries: 1,
        }
    }

    fn wire() -> AnthropicWire {
        AnthropicWire { endpoint: "http://x/v1/messages".into(), headers: HeaderMap::new() }
    }

    #[test]
    fn a_key_is_required() {
        let c = reqwest::Client::new();
        assert!(matches!(
            Anthropic::new(c.clone(), &config(None), Backoff::default()),
            Err(LlmError::NotConfigured(_))
        ));
        assert!(matches!(
            Anthropic::new(c.clone(), &config(Some("  ")), Backoff::default()),
            Err(LlmError::NotConfigured(_))
        ));
        let m = Anthropic::new(c, &config(Some("sk-ant")), Backoff::default()).unwrap();
        assert_eq!(m.endpoint(), "https://api.anthropic.com/v1/messages");
    }

    #[test]
    fn request_body() {
        let req = CompletionRequest {
            system: "sys".into(),
            messages: vec![ChatMessage::user("q")],
            max_tokens: 10,
            temperature: 0.5,
        };
        assert_eq!(
            wire().body("claude-test", &req, true),
            json!({"model": "claude-test", "system": "sys", "messages": [{"role": "user", "content": "q"}],
                   "max_tokens": 10, "temperature": 0.5, "stream": true})
        );
    }

    #[test]
    fn parse_answers() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[
            {"type":"text","text":"Hello "},{"type":"tool_use","id":"t"},{"type":"text","text":"there"}],
            "stop_reason":"max_tokens","usage":{"input_tokens":9,"output_tokens":4}}"#;
        let c = wire().parse("claude-test", body).unwrap();
        assert_eq!((c.text.as_str(), c.model.as_str(), c.truncated), ("Hello there", "claude-x", true));
        assert_eq!(c.usage, Usage { input_tokens: 9, output_tokens: 4 });
        assert!(matches!(wire().parse("m", br#"{"type":"message"}"#), Err(LlmError::Malformed(_))));
    }

    #[test]
    fn stream_decoding() {
        let mut d = wire().decoder("m");
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":12,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":6}}"#,
            ),
        ];
        let deltas: Vec<_> = events.iter().filter_map(|(e, data)| d.event(e, data).unwrap()).collect();
        assert_eq!(deltas, ["Hi"]);
        assert!(!d.complete(), "no message_stop yet");
        d.event("message_stop", r#"{"type":"message_stop"}"#).unwrap();
        assert!(d.complete() && d.ended());
        let c = d.finish("Hi".into());
        assert_eq!(
            (c.model.as_str(), c.usage, c.truncated),
            ("claude-x", Usage { input_tokens: 12, output_tokens: 6 }, false)
        );

        let mut d = wire().decoder("m");
        assert_eq!(
            d.event("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            Err(StreamError::Provider { status: 529, message: "Overloaded".into() })
        );
        assert!(matches!(d.event("content_block_delta", "nope"), Err(StreamError::Malformed(_))));
    }
}
