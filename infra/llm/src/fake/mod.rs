//! Scripted fake language-model providers, served in-process (axum on `127.0.0.1:0`) for tests: an
//! OpenAI-compatible Chat Completions server, an Anthropic Messages server and an Amazon Bedrock Converse server.
//! Each answers from a queue of provider-neutral [`Step`]s (the language-model contract's script) in its own wire
//! format, and records every request it receives.
//!
//! ```ignore
//! use nusatrade_llm::fake::{Answer, FakeKind, FakeLlm, Step};
//!
//! let fake = FakeLlm::start(FakeKind::OpenAi).await;
//! fake.push(Answer::chunks(["The trend ", "is up."]).tokens(120, 6));   // answered as JSON or as a stream
//! fake.push(Step::status_retry_after(429, 1));
//! let config = fake.config("gpt-test");     // provider, base URL, key: point the platform at the fake
//! // ... run the code under test ...
//! let seen = fake.requests();               // body, header names, key check, neutral view (system, messages…)
//! ```
//!
//! Routes: OpenAI-compatible `POST /v1/chat/completions` (base URL `http://127.0.0.1:PORT/v1`); Anthropic
//! `POST /v1/messages` (base URL `http://127.0.0.1:PORT`); Bedrock `POST /model/{modelId}/converse` and
//! `/model/{modelId}/converse-stream` (AWS event-stream frames; the endpoint URL `http://127.0.0.1:PORT`).
//!
//! With no step left, the [`FakeLlm::fallback`] responder answers if set, else a 400 "no scripted step left"
//! (not retried by the adapters, so a missing step fails a test plainly). The server stops when the last clone of
//! its [`FakeLlm`] is dropped.

mod wire;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use nusatrade_app::contract::llm::ScriptedProvider;
pub use nusatrade_app::contract::llm::{Answer, SeenRequest, Status, Step};
use nusatrade_app::ports::{LlmConfig, Provider, Secret};
use serde_json::Value;

/// The key the OpenAI-compatible and Anthropic fakes expect unless told otherwise.
pub const FAKE_API_KEY: &str = "sk-fake-0123456789";
/// The access key id the Bedrock fake expects in the SigV4 `Authorization` header unless told otherwise (the
/// emulator credentials of `nusatrade_aws::sdk_config_for_endpoint`).
pub const FAKE_AWS_ACCESS_KEY_ID: &str = "test";

/// Which provider a fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeKind {
    OpenAi,
    Anthropic,
    Bedrock,
}

impl FakeKind {
    pub fn provider(self) -> Provider {
        match self {
            FakeKind::OpenAi => Provider::OpenAi,
            FakeKind::Anthropic => Provider::Anthropic,
            FakeKind::Bedrock => Provider::Bedrock,
        }
    }
}

/// A request the fake received.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// The request path (`/v1/chat/completions`, `/model/{id}/converse`…).
    pub path: String,
    /// The JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
    /// The header names, lower-case, sorted.
    pub header_names: Vec<String>,
    /// The request carried the expected credential.
    pub authorized: bool,
    /// The provider-neutral view of the request (model, system prompt, messages, limits, stream flag).
    pub seen: SeenRequest,
}

type Responder = Arc<dyn Fn(&SeenRequest) -> Step + Send + Sync>;

struct Shared {
    kind: FakeKind,
    key: String,
    steps: Mutex<VecDeque<Step>>,
    fallback: Mutex<Option<Responder>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Server {
    base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running fake provider (cheap to clone; the server stops when the last clone is dropped).
#[derive(Clone)]
pub struct FakeLlm {
    server: Arc<Server>,
}

impl FakeLlm {
    /// Starts a fake of `kind` expecting [`FAKE_API_KEY`] (Bedrock: [`FAKE_AWS_ACCESS_KEY_ID`]).
    pub async fn start(kind: FakeKind) -> FakeLlm {
        let key = if kind == FakeKind::Bedrock { FAKE_AWS_ACCESS_KEY_ID } else { FAKE_API_KEY };
        FakeLlm::start_with_key(kind, key).await
    }

    /// Starts a fake of `kind` expecting `key` (Bedrock: the SigV4 access key id).
    pub async fn start_with_key(kind: FakeKind, key: &str) -> FakeLlm {
        let shared = Arc::new(Shared {
            kind,
            key: key.to_owned(),
            steps: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
        });
        let router = match kind {
            FakeKind::OpenAi => Router::new().route("/v1/chat/completions", post(handle_http)),
            FakeKind::Anthropic => Router::new().route("/v1/messages", post(handle_http)),
            FakeKind::Bedrock => Router::new()
                .route("/model/{model_id}/converse", post(handle_converse))
                .route("/model/{model_id}/converse-stream", post(handle_converse_stream)),
        }
        .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("a local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let root = format!("http://{addr}");
        let base_url = if kind == FakeKind::OpenAi { format!("{root}/v1") } else { root };
        FakeLlm { server: Arc::new(Server { base_url, shared, task: task.abort_handle() }) }
    }

    pub fn kind(&self) -> FakeKind {
        self.server.shared.kind
    }

    /// The base URL to configure: `http://127.0.0.1:PORT/v1` (OpenAI-compatible), `http://127.0.0.1:PORT`
    /// (Anthropic, and Bedrock's endpoint URL).
    pub fn base_url(&self) -> String {
        self.server.base_url.clone()
    }

    /// The credential the fake expects.
    pub fn key(&self) -> &str {
        &self.server.shared.key
    }

    /// A configuration pointing at this fake: its provider, base URL and key (none for Bedrock), a 10 s timeout and
    /// 2 retries.
    pub fn config(&self, model: &str) -> LlmConfig {
        LlmConfig {
            provider: self.kind().provider(),
            base_url: Some(self.base_url()),
            model: model.to_owned(),
            api_key: (self.kind() != FakeKind::Bedrock).then(|| Secret::new(self.key())),
            timeout: Duration::from_secs(10),
            max_retries: 2,
        }
    }

    /// Appends a step (an [`Answer`] converts into one).
    pub fn push(&self, step: impl Into<Step>) {
        lock(&self.server.shared.steps).push_back(step.into());
    }

    /// Answers with `responder` whenever no scripted step is left (e.g. echo a strategy for any prompt).
    pub fn fallback(&self, responder: impl Fn(&SeenRequest) -> Step + Send + Sync + 'static) {
        *lock(&self.server.shared.fallback) = Some(Arc::new(responder));
    }

    /// The steps not answered yet.
    pub fn pending(&self) -> usize {
        lock(&self.server.shared.steps).len()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.server.shared.requests).clone()
    }
}

impl ScriptedProvider for FakeLlm {
    fn push_step(&self, step: Step) {
        self.push(step);
    }
    fn seen(&self) -> Vec<SeenRequest> {
        self.requests().into_iter().map(|r| r.seen).collect()
    }
}

fn header_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    names
}

/// Records the request and takes the step that answers it.
fn record(
    shared: &Shared,
    path: String,
    headers: &HeaderMap,
    body: &Bytes,
    model: Option<&str>,
) -> (Step, SeenRequest) {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let seen = wire::decode(shared.kind, &json, model, path.ends_with("converse-stream"), &shared.key, headers);
    let step = lock(&shared.steps).pop_front();
    let step = step.or_else(|| lock(&shared.fallback).clone().map(|f| f(&seen)));
    let recorded = RecordedRequest {
        path,
        body: json,
        header_names: header_names(headers),
        authorized: seen.authorized,
        seen: seen.clone(),
    };
    lock(&shared.requests).push(recorded);
    let step = step.unwrap_or_else(|| {
        Step::Status(Status { status: 400, retry_after: None, message: "fake: no scripted step left".into() })
    });
    (step, seen)
}

async fn handle_http(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (step, seen) = record(&shared, uri.path().to_owned(), &headers, &body, None);
    wire::answer(shared.kind, step, seen.stream, &seen.model).await
}

async fn handle_converse(
    State(shared): State<Arc<Shared>>,
    Path(model_id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (step, _) = record(&shared, uri.path().to_owned(), &headers, &body, Some(&model_id));
    wire::answer(FakeKind::Bedrock, step, false, &model_id).await
}

async fn handle_converse_stream(
    State(shared): State<Arc<Shared>>,
    Path(model_id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (step, _) = record(&shared, uri.path().to_owned(), &headers, &body, Some(&model_id));
    wire::answer(FakeKind::Bedrock, step, true, &model_id).await
}
