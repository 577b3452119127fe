//! What the HTTP adapters share: sending a JSON request, reading a bounded answer, mapping statuses and transport
//! errors to [`Failure`]s, and reading a Server-Sent Events stream with a per-event timeout. Each provider supplies
//! its [`Wire`] format.

use std::pin::pin;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use nusatrade_app::ports::{Completion, CompletionRequest, LlmConfig, LlmError, Secret};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::retry::{Backoff, Failure, RetryPolicy, cut_message, error_chain, retry_after};

/// The largest answer body read (a JSON completion or an error).
pub(crate) const MAX_BODY_BYTES: usize = 4 << 20;
/// The most text a streamed answer may carry.
pub(crate) const MAX_STREAM_TEXT_BYTES: usize = 4 << 20;
/// The longest model id and base URL accepted.
const MAX_MODEL_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2048;

/// How a stream's event went.
#[derive(Debug, PartialEq)]
pub(crate) enum StreamError {
    /// The provider reported an error inside the stream (its HTTP-like status).
    Provider { status: u16, message: String },
    /// The event is not the provider's format.
    Malformed(String),
}

/// Reads one streamed answer, event by event.
pub(crate) trait StreamDecoder: Send {
    /// One SSE event (`event` is its `event:` field, empty when absent): a text delta, or nothing.
    fn event(&mut self, event: &str, data: &str) -> Result<Option<String>, StreamError>;
    /// The provider said the stream is over (`[DONE]`, `message_stop`): stop reading.
    fn ended(&self) -> bool;
    /// The provider said the answer is complete (an end marker or a stop reason).
    fn complete(&self) -> bool;
    /// The completion, once complete.
    fn finish(self, text: String) -> Completion;
}

/// One provider's wire format.
pub(crate) trait Wire: Send + Sync + 'static {
    const PROVIDER: &'static str;
    type Decoder: StreamDecoder;
    /// The URL requests are posted to.
    fn endpoint(&self) -> &str;
    /// The provider's headers (authentication, version).
    fn headers(&self) -> &HeaderMap;
    /// The request body.
    fn body(&self, model: &str, request: &CompletionRequest, stream: bool) -> Value;
    /// A JSON completion.
    fn parse(&self, model: &str, body: &[u8]) -> Result<Completion, LlmError>;
    /// A stream's decoder.
    fn decoder(&self, model: &str) -> Self::Decoder;
}

/// An HTTP model: a wire format, a client, a retry policy.
pub(crate) struct Engine<W: Wire> {
    client: reqwest::Client,
    wire: W,
    model: String,
    key: Option<Secret>,
    policy: RetryPolicy,
}

impl<W: Wire> Engine<W> {
    pub(crate) fn new(
        client: reqwest::Client,
        wire: W,
        config: &LlmConfig,
        backoff: Backoff,
    ) -> Result<Self, LlmError> {
        Ok(Engine {
            client,
            wire,
            model: config.model.clone(),
            key: config.api_key.clone(),
            policy: RetryPolicy::new(W::PROVIDER, config, backoff)?,
        })
    }

    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    pub(crate) fn wire(&self) -> &W {
        &self.wire
    }

    pub(crate) async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
        let body = self.wire.body(&self.model, request, false);
        self.policy.run(false, |_| self.policy.bounded(self.complete_once(&body))).await
    }

    pub(crate) async fn stream(
        &self,
        request: &CompletionRequest,
        deltas: mpsc::Sender<String>,
    ) -> Result<Completion, LlmError> {
        let body = self.wire.body(&self.model, request, true);
        self.policy.run(true, |_| self.stream_once(&body, &deltas)).await
    }

    fn message(&self, text: &str) -> String {
        cut_message(text, self.key.as_ref())
    }

    async fn send(&self, body: &Value) -> Result<reqwest::Response, Failure> {
        let request = self.client.post(self.wire.endpoint()).headers(self.wire.headers().clone()).json(body);
        request.send().await.map_err(|e| self.transport(&e))
    }

    /// A transport error: a timeout or a connection failure (retried), or a request that cannot be built (final).
    fn transport(&self, e: &reqwest::Error) -> Failure {
        if e.is_timeout() {
            return Failure::retry(self.policy.timeout_error());
        }
        let message = self.message(&error_chain(e));
        if e.is_builder() {
            return Failure::Stop(LlmError::NotConfigured(message));
        }
        Failure::retry(LlmError::Unreachable(message))
    }

    /// A non-success answer: its status, the provider's error message, `Retry-After`.
    async fn status_failure(&self, response: reqwest::Response) -> Failure {
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let body = read_bounded(response, MAX_BODY_BYTES).await.unwrap_or_default();
        Failure::from_status(status, self.message(&error_text(&body)), wait)
    }

    async fn complete_once(&self, body: &Value) -> Result<Completion, Failure> {
        let response = self.send(body).await?;
        if !response.status().is_success() {
            return Err(self.status_failure(response).await);
        }
        let bytes = read_bounded(response, MAX_BODY_BYTES).await.map_err(|e| match e {
            ReadError::TooLarge => Failure::Stop(LlmError::Malformed(format!("an answer over {MAX_BODY_BYTES} bytes"))),
            ReadError::Transport(e) => self.transport(&e),
        })?;
        self.wire.parse(&self.model, &bytes).map_err(|e| match e {
            LlmError::Malformed(m) => Failure::Stop(LlmError::Malformed(self.message(&m))),
            other => Failure::Stop(other),
        })
    }

    /// One streamed attempt. The timeout bounds the wait for the answer's headers, then for each event. Once a
    /// delta was forwarded, any failure is final ([`LlmError::Incomplete`] with the text so far).
    async fn stream_once(&self, body: &Value, deltas: &mpsc::Sender<String>) -> Result<Completion, Failure> {
        let timeout = self.policy.timeout();
        let response = self.policy.bounded(self.send(body)).await?;
        if !response.status().is_success() {
            let failure = tokio::time::timeout(timeout, self.status_failure(response)).await;
            return Err(failure.unwrap_or_else(|_| Failure::retry(self.policy.timeout_error())));
        }
        let mut events = pin!(response.bytes_stream().eventsource());
        let mut decoder = self.wire.decoder(&self.model);
        let mut text = String::new();
        // Before the first delta a failure is the attempt's (retried when retryable); after it, the answer is cut.
        let fail = |text: &String, failure: Failure| {
            if text.is_empty() { failure } else { Failure::Stop(LlmError::Incomplete { partial: text.clone() }) }
        };
        loop {
            let event = match tokio::time::timeout(timeout, events.next()).await {
                Err(_) => return Err(fail(&text, Failure::retry(self.policy.timeout_error()))),
                Ok(None) => break,
                Ok(Some(Ok(event))) => event,
                Ok(Some(Err(EventStreamError::Transport(e)))) => return Err(fail(&text, self.transport(&e))),
                Ok(Some(Err(e))) => {
                    return Err(fail(&text, Failure::Stop(LlmError::Malformed(self.message(&e.to_string())))));
                }
            };
            match decoder.event(&event.event, &event.data) {
                Ok(Some(delta)) if !delta.is_empty() => {
                    if text.len() + delta.len() > MAX_STREAM_TEXT_BYTES {
                        let too_large = LlmError::Malformed(format!("an answer over {MAX_STREAM_TEXT_BYTES} bytes"));
                        return Err(fail(&text, Failure::Stop(too_large)));
                    }
                    text.push_str(&delta);
                    // A closed receiver is not an error: the completion still finishes.
                    let _ = deltas.send(delta).await;
                }
                Ok(_) => {}
                Err(StreamError::Provider { status, message }) => {
                    return Err(fail(&text, Failure::from_status(status, self.message(&message), None)));
                }
                Err(StreamError::Malformed(m)) => {
                    return Err(fail(&text, Failure::Stop(LlmError::Malformed(self.message(&m)))));
                }
            }
            if decoder.ended() {
                break;
            }
        }
        if decoder.complete() {
            Ok(decoder.finish(text))
        } else {
            // Ended without the provider's end marker: nothing forwarded yet is a broken connection (retried).
            Err(fail(&text, Failure::retry(LlmError::Incomplete { partial: String::new() })))
        }
    }
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// The body, at most `limit` bytes.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The message of a provider's error body: `error.message` (OpenAI, Anthropic), `message` (AWS), `detail`, else
/// the body as text.
pub(crate) fn error_text(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        for pointer in ["/error/message", "/message", "/detail", "/error"] {
            if let Some(s) = v.pointer(pointer).and_then(Value::as_str) {
                return s.to_owned();
            }
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

/// The base URL of a configuration (`default` when none), checked, without a trailing `/`.
pub(crate) fn base_url(config: &LlmConfig, default: &str) -> Result<String, LlmError> {
    let url = config.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty()).unwrap_or(default);
    let ok_scheme = url.starts_with("http://") || url.starts_with("https://");
    if !ok_scheme || url.len() > MAX_URL_CHARS || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(LlmError::NotConfigured(format!(
            "the language model's base URL must be an http(s) URL of at most {MAX_URL_CHARS} characters"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Checks a configuration's model id: 1 to 200 characters, no control characters, no spaces around it.
pub fn check_model(config: &LlmConfig) -> Result<(), LlmError> {
    let m = config.model.trim();
    if m.is_empty() || m.len() > MAX_MODEL_CHARS || m.chars().any(char::is_control) || m != config.model {
        return Err(LlmError::NotConfigured(format!(
            "the language model id must be 1 to {MAX_MODEL_CHARS} characters, without spaces around it"
        )));
    }
    Ok(())
}

/// A header carrying the key, marked sensitive (never printed by the HTTP stack's debug output).
pub(crate) fn key_header(prefix: &str, key: &Secret) -> Result<HeaderValue, LlmError> {
    let mut value = HeaderValue::from_str(&format!("{prefix}{}", key.expose().trim()))
        .map_err(|_| LlmError::NotConfigured("the API key has characters a header cannot carry".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The configured key, if any non-blank one.
pub(crate) fn configured_key(config: &LlmConfig) -> Option<&Secret> {
    config.api_key.as_ref().filter(|k| !k.expose().trim().is_empty())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nusatrade_app::ports::Provider;

    use super::*;

    fn config(base_url: Option<&str>, model: &str) -> LlmConfig {
        LlmConfig {
            provider: Provider::OpenAi,
            base_url: base_url.map(Into::into),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(1),
            max_retries: 0,
        }
    }

    #[test]
    fn error_texts() {
        assert_eq!(error_text(br#"{"error":{"message":"bad key","type":"x"}}"#), "bad key");
        assert_eq!(error_text(br#"{"type":"error","error":{"type":"x","message":"slow down"}}"#), "slow down");
        assert_eq!(error_text(br#"{"message":"Too many requests"}"#), "Too many requests");
        assert_eq!(error_text(br#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_text(b"<html>502 Bad Gateway</html>"), "<html>502 Bad Gateway</html>");
    }

    #[test]
    fn base_urls_and_models_are_checked() {
        assert_eq!(base_url(&config(None, "m"), "https://api.openai.com/v1").unwrap(), "https://api.openai.com/v1");
        assert_eq!(base_url(&config(Some(" http://h:1/v1/ "), "m"), "x").unwrap(), "http://h:1/v1");
        assert_eq!(base_url(&config(Some(""), "m"), "https://d").unwrap(), "https://d");
        for bad in ["ftp://h", "h:1/v1", "http://a b", "http://h/\u{7}x"] {
            assert!(base_url(&config(Some(bad), "m"), "https://d").is_err(), "{bad}");
        }
        assert!(check_model(&config(None, "gpt-4o-mini")).is_ok());
        for bad in ["", " gpt", "a\u{7}", &"m".repeat(201)] {
            assert!(check_model(&config(None, bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_headers_are_sensitive() {
        let h = key_header("Bearer ", &Secret::new("sk-1")).unwrap();
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("sk-1"));
        assert!(key_header("", &Secret::new("a\nb")).is_err());
    }
}
