//! Language-model contract cases, and the provider-neutral script the fake providers understand.
//!
//! An adapter's test file implements [`LlmFactory`]: it starts a fresh scripted provider (a fake server speaking the
//! provider's wire format, see `nusatrade_llm::fake`) and builds the adapter pointed at it with the given
//! [`Options`]. Each case pushes [`Step`]s (what the provider answers to the next requests, in order), calls the
//! model, and checks the answer and what the provider received ([`SeenRequest`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::ports::*;

// --- The script -----------------------------------------------------------------------------------

/// What a scripted provider answers to one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// An answer, in the request's mode: one JSON body, or a stream of one event per chunk.
    Answer(Answer),
    /// A non-success status with the provider's error body (`Retry-After: secs` when set).
    Status(Status),
    /// Nothing for this long (then a 504), to exceed the adapter's timeout.
    Hang(Duration),
    /// A 200 whose body is not the provider's format (a stream: an event whose data is not JSON).
    Garbage,
}

/// A scripted answer: its text in chunks, the token counts the provider reports, whether it stopped at max tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub chunks: Vec<String>,
    pub usage: Usage,
    /// The provider says it stopped at the token limit.
    pub truncated: bool,
    /// A stream waits this long between two chunks (the first goes at once).
    pub delay: Duration,
    /// A stream breaks off (the connection drops) after this many chunks; a JSON answer is cut half way.
    pub cut_after: Option<usize>,
}

impl Answer {
    /// One chunk of text.
    pub fn text(text: impl Into<String>) -> Self {
        Answer::chunks([text.into()])
    }
    /// Text in chunks (one stream event each).
    pub fn chunks<I, S>(chunks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Answer {
            chunks: chunks.into_iter().map(Into::into).collect(),
            usage: Usage::default(),
            truncated: false,
            delay: Duration::ZERO,
            cut_after: None,
        }
    }
    pub fn tokens(mut self, input: u32, output: u32) -> Self {
        self.usage = Usage { input_tokens: input, output_tokens: output };
        self
    }
    pub fn truncated(mut self) -> Self {
        self.truncated = true;
        self
    }
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    pub fn cut_after(mut self, chunks: usize) -> Self {
        self.cut_after = Some(chunks);
        self
    }
    /// The whole text.
    pub fn full_text(&self) -> String {
        self.chunks.concat()
    }
}

/// A scripted error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub message: String,
}

impl Step {
    /// A one-chunk answer of `text`.
    pub fn reply(text: impl Into<String>) -> Step {
        Step::Answer(Answer::text(text))
    }
    /// An error status with a generic message.
    pub fn status(status: u16) -> Step {
        Step::Status(Status { status, retry_after: None, message: format!("scripted error {status}") })
    }
    /// An error status with `Retry-After: secs`.
    pub fn status_retry_after(status: u16, secs: u64) -> Step {
        Step::Status(Status { status, retry_after: Some(secs), message: format!("scripted error {status}") })
    }
}

impl From<Answer> for Step {
    fn from(a: Answer) -> Step {
        Step::Answer(a)
    }
}

/// A request as the provider received it, read back from its wire format.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenRequest {
    pub model: String,
    pub system: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub stream: bool,
    /// The request carried the expected credential (bearer key, `x-api-key`, SigV4 access key id).
    pub authorized: bool,
}

/// A provider that answers from a script and records what it received.
pub trait ScriptedProvider: Send + Sync {
    /// Appends a step: the next unanswered request gets the first pushed step.
    fn push_step(&self, step: Step);
    /// Every request received so far, oldest first.
    fn seen(&self) -> Vec<SeenRequest>;
}

// --- The factory ----------------------------------------------------------------------------------

/// How the adapter under test must be built.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Per attempt ([`LlmConfig::timeout`]).
    pub timeout: Duration,
    /// [`LlmConfig::max_retries`].
    pub max_retries: u32,
    /// The first backoff delay (the adapters' is larger; tests keep it short).
    pub base_delay: Duration,
    /// The longest `Retry-After` the adapter honours.
    pub retry_after_cap: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(5),
            max_retries: 2,
            base_delay: Duration::from_millis(5),
            retry_after_cap: Duration::from_millis(1500),
        }
    }
}

/// A model, the scripted provider it talks to, and the credential it sends (never to appear in an error).
pub struct Harness {
    pub model: Arc<dyn LanguageModel>,
    pub provider: Arc<dyn ScriptedProvider>,
    pub secret: Option<String>,
}

#[async_trait]
pub trait LlmFactory: Sync {
    /// A fresh scripted provider and the adapter under test pointed at it, built with `options`.
    async fn start(&self, options: Options) -> Harness;
    /// True when the adapter streams deltas as the provider sends them (false: the trait's default, one delta).
    fn streams(&self) -> bool;
}

// --- The cases ------------------------------------------------------------------------------------

const MARKER: &str = "SYSTEM-PROMPT-MARKER-7f3a";

fn request(user: &str) -> CompletionRequest {
    CompletionRequest {
        system: format!("You are a careful forex assistant. {MARKER}"),
        messages: vec![ChatMessage::user(user)],
        max_tokens: 256,
        temperature: 0.2,
    }
}

/// An error must not carry the key or the request's content.
fn assert_clean(err: &LlmError, h: &Harness) {
    let text = format!("{err} {err:?}");
    assert!(!text.contains(MARKER), "the error quotes the request: {text}");
    if let Some(secret) = &h.secret {
        assert!(!text.contains(secret.as_str()), "the error quotes the key: {text}");
    }
}

async fn collect(mut rx: mpsc::Receiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(d) = rx.recv().await {
        out.push(d);
    }
    out
}

pub async fn plain_completion(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Answer::text("EURUSD is in an uptrend.").tokens(42, 7).into());
    let done = h.model.complete(&request("How is EURUSD?")).await.unwrap();
    assert_eq!(done.text, "EURUSD is in an uptrend.");
    assert_eq!(done.usage, Usage { input_tokens: 42, output_tokens: 7 });
    assert_eq!(done.model, h.model.model());
    assert!(!done.truncated);
    let seen = h.provider.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].authorized, "the credential was not sent");
    assert_eq!(seen[0].model, h.model.model());
    assert!(!seen[0].stream);
}

pub async fn request_carries_system_and_messages_in_order(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Step::reply("ok"));
    let req = CompletionRequest {
        system: "Answer from the context only.\nContext: balance 1000 USD".into(),
        messages: vec![
            ChatMessage::user("first question"),
            ChatMessage::assistant("first answer"),
            ChatMessage::user("second question — with ünïcode and \"quotes\""),
        ],
        max_tokens: 321,
        temperature: 0.5,
    };
    h.model.complete(&req).await.unwrap();
    let seen = h.provider.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].system, req.system);
    assert_eq!(seen[0].messages, req.messages);
    assert_eq!(seen[0].max_tokens, Some(321));
    let t = seen[0].temperature.expect("a temperature");
    assert!((t - 0.5).abs() < 1e-6, "temperature {t}");
}

pub async fn stream_deltas_arrive_in_order(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    let chunks = ["The ", "trend ", "is ", "up", "."];
    h.provider.push_step(Answer::chunks(chunks).tokens(30, 5).delay(Duration::from_millis(40)).into());
    let (tx, mut rx) = mpsc::channel(16);
    let model = h.model.clone();
    let call = tokio::spawn(async move { model.stream(&request("trend?"), tx).await });
    let first = rx.recv().await.expect("a first delta");
    if f.streams() {
        assert_eq!(first, "The ");
        assert!(!call.is_finished(), "the first delta came only after the whole answer");
    }
    let mut deltas = vec![first];
    deltas.extend(collect(rx).await);
    let done = call.await.unwrap().unwrap();
    assert_eq!(deltas.concat(), "The trend is up.");
    assert_eq!(done.text, "The trend is up.");
    if f.streams() {
        assert_eq!(deltas, chunks);
        assert!(h.provider.seen()[0].stream, "the request did not ask for a stream");
    }
    assert_eq!(done.usage, Usage { input_tokens: 30, output_tokens: 5 });
    assert_eq!(done.model, h.model.model());
    assert!(!done.truncated);
}

pub async fn a_closed_receiver_does_not_stop_the_stream(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Answer::chunks(["a", "b", "c"]).tokens(1, 3).into());
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let done = h.model.stream(&request("x"), tx).await.unwrap();
    assert_eq!(done.text, "abc");
}

pub async fn rate_limit_then_success_is_retried(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Step::status_retry_after(429, 1));
    h.provider.push_step(Answer::text("after the wait").tokens(3, 3).into());
    let started = Instant::now();
    let done = h.model.complete(&request("x")).await.unwrap();
    assert_eq!(done.text, "after the wait");
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After: 1 not honoured: {:?}", started.elapsed());
    assert_eq!(h.provider.seen().len(), 2);
}

pub async fn retry_after_is_capped(f: &impl LlmFactory) {
    let options = Options::default();
    let h = f.start(options).await;
    h.provider.push_step(Step::status_retry_after(429, 3600));
    h.provider.push_step(Step::reply("capped"));
    let started = Instant::now();
    let done = h.model.complete(&request("x")).await.unwrap();
    assert_eq!(done.text, "capped");
    assert!(started.elapsed() < options.retry_after_cap + Duration::from_secs(2), "{:?}", started.elapsed());
}

pub async fn rate_limited_every_time_is_rate_limited(f: &impl LlmFactory) {
    let h = f.start(Options { max_retries: 1, ..Options::default() }).await;
    for _ in 0..2 {
        h.provider.push_step(Step::status(429));
    }
    h.provider.push_step(Step::reply("never reached"));
    let err = h.model.complete(&request("x")).await.unwrap_err();
    assert!(matches!(err, LlmError::RateLimited { .. }), "{err:?}");
    assert_eq!(h.provider.seen().len(), 2);
    assert_clean(&err, &h);
}

pub async fn server_errors_are_retried_then_reported(f: &impl LlmFactory) {
    let h = f.start(Options { max_retries: 2, ..Options::default() }).await;
    for _ in 0..3 {
        h.provider.push_step(Step::status(500));
    }
    h.provider.push_step(Step::reply("never reached"));
    let err = h.model.complete(&request("x")).await.unwrap_err();
    assert!(matches!(err, LlmError::Provider { status: 500, .. }), "{err:?}");
    assert_eq!(h.provider.seen().len(), 3, "max_retries + 1 attempts");
    assert_clean(&err, &h);
}

pub async fn an_overloaded_provider_is_retried(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Step::status(503));
    h.provider.push_step(Step::status(529));
    h.provider.push_step(Step::reply("finally"));
    let done = h.model.complete(&request("x")).await.unwrap();
    assert_eq!(done.text, "finally");
    assert_eq!(h.provider.seen().len(), 3);
}

pub async fn unauthorized_fails_at_once(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Step::status(401));
    let err = h.model.complete(&request("x")).await.unwrap_err();
    assert!(matches!(err, LlmError::Provider { status: 401, .. }), "{err:?}");
    assert_eq!(h.provider.seen().len(), 1, "a 401 is not retried");
    assert_clean(&err, &h);
    // Other client errors neither.
    h.provider.push_step(Step::status(400));
    let err = h.model.complete(&request("x")).await.unwrap_err();
    assert!(matches!(err, LlmError::Provider { status: 400, .. }), "{err:?}");
    assert_eq!(h.provider.seen().len(), 2);
}

pub async fn a_hang_times_out(f: &impl LlmFactory) {
    let options = Options { timeout: Duration::from_millis(400), max_retries: 1, ..Options::default() };
    let h = f.start(options).await;
    h.provider.push_step(Step::Hang(Duration::from_secs(30)));
    h.provider.push_step(Step::Hang(Duration::from_secs(30)));
    h.provider.push_step(Step::reply("never reached"));
    let started = Instant::now();
    let err = h.model.complete(&request("x")).await.unwrap_err();
    assert!(matches!(err, LlmError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(h.provider.seen().len(), 2, "a timeout is retried");
    assert_clean(&err, &h);
}

pub async fn a_hang_then_success_is_retried(f: &impl LlmFactory) {
    let options = Options { timeout: Duration::from_millis(1500), max_retries: 1, ..Options::default() };
    let h = f.start(options).await;
    h.provider.push_step(Step::Hang(Duration::from_secs(30)));
    h.provider.push_step(Step::reply("second try"));
    assert_eq!(h.model.complete(&request("x")).await.unwrap().text, "second try");
}

pub async fn garbage_is_malformed(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Step::Garbage);
    let err = h.model.complete(&request("x")).await.unwrap_err();
    assert!(matches!(err, LlmError::Malformed(_)), "{err:?}");
    assert_eq!(h.provider.seen().len(), 1, "garbage is not retried");
    assert_clean(&err, &h);
    if f.streams() {
        h.provider.push_step(Step::Garbage);
        let (tx, _rx) = mpsc::channel(8);
        let err = h.model.stream(&request("x"), tx).await.unwrap_err();
        assert!(matches!(err, LlmError::Malformed(_)), "{err:?}");
        assert_eq!(h.provider.seen().len(), 2);
    }
}

pub async fn a_cut_json_answer_is_malformed(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Answer::text("a long answer that will not arrive whole").cut_after(0).into());
    let err = h.model.complete(&request("x")).await.unwrap_err();
    assert!(matches!(err, LlmError::Malformed(_)), "{err:?}");
}

pub async fn a_stream_cut_half_way_is_incomplete(f: &impl LlmFactory) {
    if !f.streams() {
        return;
    }
    let h = f.start(Options::default()).await;
    h.provider.push_step(Answer::chunks(["Buy ", "signal ", "on ", "EURUSD"]).cut_after(2).into());
    h.provider.push_step(Step::reply("never reached"));
    let (tx, rx) = mpsc::channel(16);
    let err = h.model.stream(&request("x"), tx).await.unwrap_err();
    assert_eq!(err, LlmError::Incomplete { partial: "Buy signal ".into() });
    assert_eq!(collect(rx).await.concat(), "Buy signal ");
    assert_eq!(h.provider.seen().len(), 1, "a stream is not retried once a delta was forwarded");
}

pub async fn a_stream_stalling_after_a_delta_is_incomplete(f: &impl LlmFactory) {
    if !f.streams() {
        return;
    }
    // The timeout bounds the wait for each event of a stream, not the whole stream.
    let options = Options { timeout: Duration::from_millis(1500), ..Options::default() };
    let h = f.start(options).await;
    h.provider.push_step(Answer::chunks(["Hold ", "on ", "a ", "moment"]).delay(Duration::from_millis(150)).into());
    let (tx, rx) = mpsc::channel(16);
    let ok = h.model.stream(&request("x"), tx).await.unwrap();
    assert_eq!(ok.text, "Hold on a moment", "a slow stream within the per-event timeout completes");
    drop(rx);
    h.provider.push_step(Answer::chunks(["Hold ", "on"]).delay(Duration::from_secs(10)).into());
    h.provider.push_step(Step::reply("never reached"));
    let (tx, _rx) = mpsc::channel(16);
    let started = Instant::now();
    let err = h.model.stream(&request("x"), tx).await.unwrap_err();
    assert_eq!(err, LlmError::Incomplete { partial: "Hold ".into() });
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    assert_eq!(h.provider.seen().len(), 2, "not retried once a delta was forwarded");
}

pub async fn a_stream_is_retried_before_its_first_delta(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Step::status(503));
    h.provider.push_step(Answer::chunks(["re", "tried"]).tokens(2, 2).into());
    let (tx, rx) = mpsc::channel(16);
    let done = h.model.stream(&request("x"), tx).await.unwrap();
    assert_eq!(done.text, "retried");
    assert_eq!(collect(rx).await.concat(), "retried", "no delta of the failed attempt");
    assert_eq!(h.provider.seen().len(), 2);
}

pub async fn max_tokens_sets_truncated(f: &impl LlmFactory) {
    let h = f.start(Options::default()).await;
    h.provider.push_step(Answer::text("The analysis of").tokens(10, 256).truncated().into());
    let done = h.model.complete(&request("x")).await.unwrap();
    assert!(done.truncated);
    assert_eq!(done.text, "The analysis of");
    h.provider.push_step(Answer::chunks(["The ", "analysis"]).tokens(10, 256).truncated().into());
    let (tx, _rx) = mpsc::channel(16);
    let done = h.model.stream(&request("x"), tx).await.unwrap();
    assert!(done.truncated);
    assert_eq!(done.text, "The analysis");
}
