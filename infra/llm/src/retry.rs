//! The one retry policy of every language-model adapter (HTTP ones here, Bedrock in `nusatrade-aws`): a timeout per
//! attempt, retries on 429 (honouring `Retry-After`, capped), 5xx (529 included), timeouts and connection errors,
//! exponential backoff with jitter between attempts; any other failure stops at once. It also logs each call's
//! outcome: provider, model, status, attempts, latency and token counts — never a prompt, an answer or a key.

use std::future::Future;
use std::time::{Duration, Instant};

use nusatrade_app::ports::{Completion, LlmConfig, LlmError, Secret};

/// The longest error message an adapter reports (the provider's text is cut to this many characters).
pub const MAX_MESSAGE_CHARS: usize = 300;

/// The most retries a configuration may ask for.
pub const MAX_RETRIES: u32 = 10;

/// Delays between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// The longest delay between two attempts (without `Retry-After`).
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured (a longer one is waited this long).
    pub retry_after_cap: Duration,
}

impl Default for Backoff {
    /// 250 ms, 500 ms, 1 s… up to 4 s; `Retry-After` honoured up to 10 s.
    fn default() -> Self {
        Backoff {
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            retry_after_cap: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (1 = the first retry): the provider's `Retry-After` (capped) when it
    /// gave one, else `base_delay · 2^(retry-1)` (at most `max_delay`) with "equal jitter" (a uniform draw in
    /// `[d/2, d]`), so that many instances throttled together do not come back together.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.retry_after_cap);
        }
        let exp = retry.saturating_sub(1).min(20);
        let d = self.base_delay.saturating_mul(1u32 << exp).min(self.max_delay);
        let half = d / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// How one attempt failed: worth another attempt, or final.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// A 429, a 5xx, a timeout, a connection error: another attempt may succeed (after `retry_after` if the
    /// provider said so).
    Retry { error: LlmError, retry_after: Option<Duration> },
    /// Anything else (a 4xx, an unreadable answer, a stream that already forwarded text).
    Stop(LlmError),
}

impl Failure {
    pub fn retry(error: LlmError) -> Failure {
        Failure::Retry { error, retry_after: None }
    }

    /// The failure an HTTP error status means: 429 → rate limited (retried), 5xx → provider error (retried), any
    /// other → provider error (final). `message` must already be cut ([`cut_message`]).
    pub fn from_status(status: u16, message: String, retry_after: Option<Duration>) -> Failure {
        match status {
            429 => Failure::Retry {
                error: LlmError::RateLimited { retry_after_secs: retry_after.map(|d| d.as_secs()) },
                retry_after,
            },
            500..=599 => Failure::Retry { error: LlmError::Provider { status, message }, retry_after },
            _ => Failure::Stop(LlmError::Provider { status, message }),
        }
    }

    pub fn error(&self) -> &LlmError {
        match self {
            Failure::Retry { error, .. } | Failure::Stop(error) => error,
        }
    }
}

/// The `Retry-After` of an answer: whole seconds (an HTTP date is ignored: the backoff applies), or the
/// `retry-after-ms` some OpenAI-compatible servers send.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    retry_after_from(value("retry-after"), value("retry-after-ms"))
}

/// [`retry_after`] from the two header values (for clients with their own header types).
pub fn retry_after_from(seconds: Option<&str>, millis: Option<&str>) -> Option<Duration> {
    let ms = millis.and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0);
    if let Some(ms) = ms {
        return Some(Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
    }
    seconds.and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

/// A provider's error text made fit for an error value and a log: the key (if it appears) replaced by `***`,
/// whitespace collapsed, cut to [`MAX_MESSAGE_CHARS`] characters.
pub fn cut_message(message: &str, key: Option<&Secret>) -> String {
    let mut text = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(key) = key.map(Secret::expose).filter(|k| k.len() >= 4) {
        text = text.replace(key, "***");
    }
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => {
            text.truncate(at);
            text.push('…');
            text
        }
        None => text,
    }
}

/// An error with its sources (`error sending request: connection refused`), for messages.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The retry policy of one model.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    provider: &'static str,
    model: String,
    timeout: Duration,
    max_retries: u32,
    backoff: Backoff,
}

impl RetryPolicy {
    /// The policy for `config` (its timeout and retries), checked: a zero timeout or more than [`MAX_RETRIES`]
    /// retries is [`LlmError::NotConfigured`].
    pub fn new(provider: &'static str, config: &LlmConfig, backoff: Backoff) -> Result<Self, LlmError> {
        if config.timeout.is_zero() {
            return Err(LlmError::NotConfigured("the language model's timeout must be above zero".into()));
        }
        if config.max_retries > MAX_RETRIES {
            return Err(LlmError::NotConfigured(format!("at most {MAX_RETRIES} retries, not {}", config.max_retries)));
        }
        Ok(RetryPolicy {
            provider,
            model: config.model.clone(),
            timeout: config.timeout,
            max_retries: config.max_retries,
            backoff,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The error of an attempt that ran out of time (whole seconds, rounded up).
    pub fn timeout_error(&self) -> LlmError {
        LlmError::Timeout(self.timeout.as_millis().div_ceil(1000) as u64)
    }

    /// `attempt` bounded by the per-attempt timeout (running out of time is a retryable failure).
    pub async fn bounded<T>(&self, attempt: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Failure::retry(self.timeout_error())),
        }
    }

    /// Runs `attempt` (given the attempt number, from 1) until it succeeds, fails for good, or `max_retries`
    /// retries are spent; waits [`Backoff::delay`] between attempts; logs the outcome. The attempt bounds itself
    /// (see [`RetryPolicy::bounded`]): a streamed answer bounds each event, not the whole answer.
    pub async fn run<F, Fut>(&self, streamed: bool, mut attempt: F) -> Result<Completion, LlmError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<Completion, Failure>>,
    {
        let started = Instant::now();
        let attempts = self.max_retries.saturating_add(1);
        let mut n = 0;
        loop {
            n += 1;
            match attempt(n).await {
                Ok(done) => {
                    tracing::info!(
                        provider = self.provider,
                        model = %self.model,
                        status = 200,
                        attempts = n,
                        latency_ms = started.elapsed().as_millis() as u64,
                        input_tokens = done.usage.input_tokens,
                        output_tokens = done.usage.output_tokens,
                        truncated = done.truncated,
                        streamed,
                        "language model answered"
                    );
                    return Ok(done);
                }
                Err(Failure::Retry { error, retry_after }) if n < attempts => {
                    let delay = self.backoff.delay(n, retry_after);
                    tracing::warn!(
                        provider = self.provider,
                        model = %self.model,
                        status = status_of(&error),
                        attempt = n,
                        delay_ms = delay.as_millis() as u64,
                        error = %error,
                        "language model attempt failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(Failure::Retry { error, .. } | Failure::Stop(error)) => {
                    tracing::warn!(
                        provider = self.provider,
                        model = %self.model,
                        status = status_of(&error),
                        attempts = n,
                        latency_ms = started.elapsed().as_millis() as u64,
                        streamed,
                        error = %error,
                        "language model call failed"
                    );
                    return Err(error);
                }
            }
        }
    }
}

/// The HTTP status an error stands for (0: none).
fn status_of(error: &LlmError) -> u16 {
    match error {
        LlmError::Provider { status, .. } => *status,
        LlmError::RateLimited { .. } => 429,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nusatrade_app::ports::{Provider, Usage};

    fn config(timeout: Duration, max_retries: u32) -> LlmConfig {
        LlmConfig { provider: Provider::OpenAi, base_url: None, model: "m".into(), api_key: None, timeout, max_retries }
    }

    fn done() -> Completion {
        Completion { text: "ok".into(), usage: Usage::default(), model: "m".into(), truncated: false }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let b = Backoff {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            retry_after_cap: Duration::from_secs(3),
        };
        for _ in 0..50 {
            let d1 = b.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d3 = b.delay(3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400), "{d3:?}");
            let d9 = b.delay(9, None);
            assert!(d9 >= Duration::from_millis(250) && d9 <= Duration::from_millis(500), "{d9:?}");
            assert!(b.delay(u32::MAX, None) <= Duration::from_millis(500));
        }
        let draws: std::collections::HashSet<_> = (0..20).map(|_| b.delay(2, None)).collect();
        assert!(draws.len() > 1, "no jitter");
        assert_eq!(b.delay(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(b.delay(1, Some(Duration::from_secs(3600))), Duration::from_secs(3));
    }

    #[test]
    fn retry_after_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn statuses_are_classified() {
        assert!(matches!(
            Failure::from_status(429, "slow".into(), Some(Duration::from_secs(2))),
            Failure::Retry { error: LlmError::RateLimited { retry_after_secs: Some(2) }, .. }
        ));
        for s in [500, 502, 503, 529] {
            assert!(matches!(Failure::from_status(s, "x".into(), None), Failure::Retry { .. }), "{s}");
        }
        for s in [400, 401, 403, 404, 408, 413, 422] {
            assert!(matches!(Failure::from_status(s, "x".into(), None), Failure::Stop(_)), "{s}");
        }
    }

    #[test]
    fn messages_are_cut_and_never_carry_the_key() {
        let key = Secret::new("sk-live-abcdef");
        let m = cut_message("Incorrect API key provided:\n sk-live-abcdef", Some(&key));
        assert_eq!(m, "Incorrect API key provided: ***");
        let long = "é".repeat(1000);
        let m = cut_message(&long, None);
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(RetryPolicy::new("openai", &config(Duration::ZERO, 1), Backoff::default()).is_err());
        assert!(RetryPolicy::new("openai", &config(Duration::from_secs(1), 11), Backoff::default()).is_err());
        let p = RetryPolicy::new("openai", &config(Duration::from_millis(1500), 1), Backoff::default()).unwrap();
        assert_eq!(p.timeout_error(), LlmError::Timeout(2));
    }

    #[tokio::test]
    async fn run_retries_what_is_retryable_only() {
        let fast = Backoff {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            retry_after_cap: Duration::from_millis(5),
        };
        let p = RetryPolicy::new("openai", &config(Duration::from_secs(1), 3), fast).unwrap();
        // Retryable every time: max_retries + 1 attempts, the last error.
        let mut calls = 0;
        let r = p
            .run(false, |n| {
                calls += 1;
                async move { Err(Failure::from_status(500, format!("attempt {n}"), None)) }
            })
            .await;
        assert_eq!(calls, 4);
        assert_eq!(r, Err(LlmError::Provider { status: 500, message: "attempt 4".into() }));
        // Final at once.
        let mut calls = 0;
        let r = p
            .run(false, |_| {
                calls += 1;
                async { Err(Failure::Stop(LlmError::Malformed("x".into()))) }
            })
            .await;
        assert_eq!(calls, 1);
        assert!(matches!(r, Err(LlmError::Malformed(_))));
        // Success after failures.
        let r = p
            .run(false, |n| async move {
                if n < 3 { Err(Failure::retry(LlmError::Unreachable("x".into()))) } else { Ok(done()) }
            })
            .await;
        assert_eq!(r.unwrap().text, "ok");
        // The attempt bound.
        let slow = p.bounded(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, Failure>(())
        });
        let paused = tokio::time::timeout(Duration::from_secs(3), slow).await.expect("bounded by the 1 s timeout");
        assert_eq!(paused, Err(Failure::retry(LlmError::Timeout(1))));
    }
}
