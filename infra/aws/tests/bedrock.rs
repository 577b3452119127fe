//! The language-model contract (`nusatrade_app::contract::llm`) on the Bedrock adapter, against the fake Bedrock
//! Converse server of `nusatrade_llm::fake` (no moto needed): the SDK client is pointed at it with an endpoint
//! override and the emulator credentials, and the fake checks the SigV4 access key id. `complete` is Converse,
//! `stream` ConverseStream (AWS event-stream frames).

#![cfg(feature = "bedrock")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nusatrade_app::contract::llm::{Harness, LlmFactory, Options};
use nusatrade_app::ports::{ChatMessage, CompletionRequest, LlmError, ModelFactory, Provider};
use nusatrade_aws::{AwsModels, sdk_config_for_endpoint};
use nusatrade_llm::Backoff;
use nusatrade_llm::fake::{Answer, FakeKind, FakeLlm, Step};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

struct Bedrock;

fn backoff(options: &Options) -> Backoff {
    Backoff {
        base_delay: options.base_delay,
        max_delay: options.base_delay * 4,
        retry_after_cap: options.retry_after_cap,
    }
}

#[async_trait]
impl LlmFactory for Bedrock {
    async fn start(&self, options: Options) -> Harness {
        let fake = FakeLlm::start(FakeKind::Bedrock).await;
        let sdk = sdk_config_for_endpoint(&fake.base_url()).await;
        let mut config = fake.config(MODEL);
        config.timeout = options.timeout;
        config.max_retries = options.max_retries;
        let model = AwsModels::new(&sdk).with_backoff(backoff(&options)).connect(&config).expect("a Bedrock model");
        Harness { model, secret: None, provider: Arc::new(fake) }
    }

    fn streams(&self) -> bool {
        true
    }
}

mod contract {
    nusatrade_app::language_model_contract!(super::Bedrock);
}

/// The wire request: the Converse path with the model id, SigV4-signed with the configured credentials, the
/// system prompt and messages as content blocks, the inference configuration.
#[tokio::test]
async fn converse_request_on_the_wire() {
    let fake = FakeLlm::start(FakeKind::Bedrock).await;
    let sdk = sdk_config_for_endpoint("http://127.0.0.1:9").await;
    // `base_url` overrides the SDK configuration's endpoint (a VPC endpoint in AWS).
    let model = AwsModels::new(&sdk).connect(&fake.config(MODEL)).unwrap();
    fake.push(Answer::text("Range-bound.").tokens(17, 3));
    let request = CompletionRequest {
        system: "Be brief.".into(),
        messages: vec![ChatMessage::user("EURUSD?"), ChatMessage::assistant("Up."), ChatMessage::user("Why?")],
        max_tokens: 100,
        temperature: 0.3,
    };
    let done = model.complete(&request).await.unwrap();
    assert_eq!((done.text.as_str(), done.usage.total(), done.model.as_str()), ("Range-bound.", 20, MODEL));
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", "the model id, encoded");
    assert_eq!(r.seen.model, MODEL);
    assert!(r.authorized, "signed with the access key id the fake expects");
    assert!(r.header_names.contains(&"x-amz-date".to_owned()));
    assert_eq!(r.body["system"], serde_json::json!([{"text": "Be brief."}]));
    assert_eq!(r.body["messages"][1], serde_json::json!({"role": "assistant", "content": [{"text": "Up."}]}));
    assert_eq!(r.body["inferenceConfig"]["maxTokens"], 100);

    // Another key id: the fake sees it is not the expected one.
    let other = FakeLlm::start_with_key(FakeKind::Bedrock, "AKIAOTHER").await;
    other.push(Step::reply("x"));
    AwsModels::new(&sdk).connect(&other.config(MODEL)).unwrap().complete(&request).await.unwrap();
    assert!(!other.requests()[0].authorized);
}

/// Throttling every time is `RateLimited`; a refused model (403) is final.
#[tokio::test]
async fn throttling_and_access_denied() {
    let fake = FakeLlm::start(FakeKind::Bedrock).await;
    let sdk = sdk_config_for_endpoint(&fake.base_url()).await;
    let fast =
        Backoff { base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(4), ..Backoff::default() };
    let mut config = fake.config(MODEL);
    config.max_retries = 1;
    let model = AwsModels::new(&sdk).with_backoff(fast).connect(&config).unwrap();
    let request = CompletionRequest {
        system: String::new(),
        messages: vec![ChatMessage::user("hi")],
        max_tokens: 5,
        temperature: 0.0,
    };
    fake.push(Step::status(429));
    fake.push(Step::status(429));
    assert!(matches!(model.complete(&request).await, Err(LlmError::RateLimited { .. })));
    assert_eq!(fake.requests().len(), 2);
    fake.push(Step::status(403));
    let err = model.complete(&request).await.unwrap_err();
    assert!(matches!(err, LlmError::Provider { status: 403, .. }), "{err:?}");
    assert_eq!(fake.requests().len(), 3);
    assert!(fake.requests()[2].body.get("system").is_none(), "no empty system block");
    assert_eq!(config.provider, Provider::Bedrock);
}
