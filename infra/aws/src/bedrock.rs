//! Language models in AWS: [`BedrockModel`] ([`LanguageModel`] on Amazon Bedrock's Converse API, signed with the
//! function's IAM role: no key to store) and [`AwsModels`], the [`ModelFactory`] of the functions that call a model
//! (Bedrock here; OpenAI-compatible and Anthropic endpoints through [`nusatrade_llm::HttpModels`]).
//!
//! The SDK's own retries are off: [`nusatrade_llm::retry::RetryPolicy`] (the HTTP adapters' policy) bounds each
//! attempt by [`LlmConfig::timeout`] (a stream: the wait for its start, then for each event) and retries throttling
//! (429), 5xx, timeouts and connection errors with backoff and jitter, so every provider behaves and logs alike.
//! `complete` calls Converse, `stream` ConverseStream (retried only before its first delta was forwarded).

use std::error::Error as StdError;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ConversationRole, ConverseOutput as Output, ConverseStreamOutput as Event,
    InferenceConfiguration, Message, StopReason, SystemContentBlock,
};
use aws_types::SdkConfig;
use nusatrade_app::ports::{
    Completion, CompletionRequest, LanguageModel, LlmConfig, LlmError, ModelFactory, Provider, Role, Usage,
};
use nusatrade_llm::retry::{Failure, RetryPolicy, cut_message, retry_after_from};
use nusatrade_llm::{Backoff, HttpModels};
use tokio::sync::mpsc;

/// The Bedrock Runtime client for `sdk` (its region and credentials), at `endpoint` when given (a VPC endpoint, a
/// test server), with the SDK's retries off (the adapter retries).
pub fn bedrock_client(sdk: &SdkConfig, endpoint: Option<&str>) -> Client {
    let mut conf = aws_sdk_bedrockruntime::config::Builder::from(sdk).retry_config(RetryConfig::disabled());
    if let Some(endpoint) = endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    Client::from_conf(conf.build())
}

/// A model on Amazon Bedrock, called through Converse.
pub struct BedrockModel {
    client: Client,
    model: String,
    policy: RetryPolicy,
}

impl BedrockModel {
    /// The model `config.model` (a model id, an inference profile id or ARN) through `client`, with `config`'s
    /// timeout and retries. `config.base_url` and `config.api_key` are not read here (see [`AwsModels`]).
    pub fn new(client: Client, config: &LlmConfig, backoff: Backoff) -> Result<Self, LlmError> {
        nusatrade_llm::check_model(config)?;
        let policy = RetryPolicy::new("bedrock", config, backoff)?;
        Ok(BedrockModel { client, model: config.model.clone(), policy })
    }

    async fn converse(&self, request: &CompletionRequest) -> Result<Completion, Failure> {
        let (system, messages, inference) = parts(request)?;
        let call = self
            .client
            .converse()
            .model_id(&self.model)
            .set_system(system)
            .set_messages(Some(messages))
            .inference_config(inference)
            .send();
        match call.await {
            Ok(output) => completion(&self.model, output).map_err(Failure::Stop),
            Err(e) => Err(failure(&e, self.policy.timeout_error())),
        }
    }

    /// One ConverseStream attempt: deltas forwarded as they come; once one was, any failure is final
    /// ([`LlmError::Incomplete`] with the text so far).
    async fn converse_stream(
        &self,
        request: &CompletionRequest,
        deltas: &mpsc::Sender<String>,
    ) -> Result<Completion, Failure> {
        let (system, messages, inference) = parts(request)?;
        let call = self
            .client
            .converse_stream()
            .model_id(&self.model)
            .set_system(system)
            .set_messages(Some(messages))
            .inference_config(inference)
            .send();
        let timeout = self.policy.timeout();
        let mut output = match tokio::time::timeout(timeout, call).await {
            Err(_) => return Err(Failure::retry(self.policy.timeout_error())),
            Ok(Err(e)) => return Err(failure(&e, self.policy.timeout_error())),
            Ok(Ok(output)) => output,
        };
        let fail = |text: &String, failure: Failure| {
            if text.is_empty() { failure } else { Failure::Stop(LlmError::Incomplete { partial: text.clone() }) }
        };
        let (mut text, mut usage, mut stop) = (String::new(), Usage::default(), None);
        loop {
            let event = match tokio::time::timeout(timeout, output.stream.recv()).await {
                Err(_) => return Err(fail(&text, Failure::retry(self.policy.timeout_error()))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(event))) => event,
                Ok(Err(e)) => return Err(fail(&text, stream_failure(&e, self.policy.timeout_error()))),
            };
            match event {
                Event::ContentBlockDelta(d) => {
                    if let Some(ContentBlockDelta::Text(delta)) = d.delta()
                        && !delta.is_empty()
                    {
                        if text.len() + delta.len() > MAX_STREAM_TEXT_BYTES {
                            let large = LlmError::Malformed(format!("an answer over {MAX_STREAM_TEXT_BYTES} bytes"));
                            return Err(fail(&text, Failure::Stop(large)));
                        }
                        text.push_str(delta);
                        // A closed receiver is not an error: the completion still finishes.
                        let _ = deltas.send(delta.clone()).await;
                    }
                }
                Event::MessageStop(m) => stop = Some(m.stop_reason().clone()),
                Event::Metadata(m) => {
                    if let Some(u) = m.usage() {
                        usage = Usage {
                            input_tokens: u32::try_from(u.input_tokens()).unwrap_or(0),
                            output_tokens: u32::try_from(u.output_tokens()).unwrap_or(0),
                        };
                    }
                }
                _ => {}
            }
        }
        match stop {
            Some(reason) => {
                Ok(Completion { text, usage, model: self.model.clone(), truncated: reason == StopReason::MaxTokens })
            }
            // Ended without messageStop: nothing forwarded yet is a broken connection (retried).
            None => Err(fail(&text, Failure::retry(LlmError::Incomplete { partial: String::new() }))),
        }
    }
}

/// The most text a streamed answer may carry.
const MAX_STREAM_TEXT_BYTES: usize = 4 << 20;

type Parts = (Option<Vec<SystemContentBlock>>, Vec<Message>, InferenceConfiguration);

/// The system blocks, messages and inference configuration of a request.
fn parts(request: &CompletionRequest) -> Result<Parts, Failure> {
    let messages = request
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => ConversationRole::User,
                Role::Assistant => ConversationRole::Assistant,
            };
            Message::builder()
                .role(role)
                .content(ContentBlock::Text(m.content.clone()))
                .build()
                .map_err(|e| Failure::Stop(LlmError::Malformed(format!("a message Bedrock cannot take: {e}"))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let system = (!request.system.is_empty()).then(|| vec![SystemContentBlock::Text(request.system.clone())]);
    let inference = InferenceConfiguration::builder()
        .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
        .temperature(request.temperature)
        .build();
    Ok((system, messages, inference))
}

/// The completion of a Converse answer.
fn completion(model: &str, output: ConverseOutput) -> Result<Completion, LlmError> {
    let Some(Output::Message(message)) = output.output() else {
        return Err(LlmError::Malformed("a Converse answer without a message".into()));
    };
    let text = message.content().iter().filter_map(|b| b.as_text().ok()).map(String::as_str).collect();
    let usage = output.usage().map_or(Usage::default(), |u| Usage {
        input_tokens: u32::try_from(u.input_tokens()).unwrap_or(0),
        output_tokens: u32::try_from(u.output_tokens()).unwrap_or(0),
    });
    Ok(Completion { text, usage, model: model.to_owned(), truncated: *output.stop_reason() == StopReason::MaxTokens })
}

fn described(e: &(dyn StdError + 'static)) -> String {
    cut_message(&DisplayErrorContext(e).to_string(), None)
}

/// How a failed Converse or ConverseStream call counts: the service's status decides (throttling and 5xx are
/// retried, other refusals final, an unreadable success is malformed); timeouts and connection errors are retried.
fn failure<E>(e: &SdkError<E>, timeout: LlmError) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match e {
        SdkError::TimeoutError(_) => Failure::retry(timeout),
        SdkError::DispatchFailure(d) if d.is_timeout() => Failure::retry(timeout),
        SdkError::DispatchFailure(d) if d.is_user() => Failure::Stop(LlmError::NotConfigured(described(e))),
        SdkError::DispatchFailure(_) => Failure::retry(LlmError::Unreachable(described(e))),
        SdkError::ConstructionFailure(_) => Failure::Stop(LlmError::NotConfigured(described(e))),
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let status = raw.status().as_u16();
            if (200..300).contains(&status) {
                return Failure::Stop(LlmError::Malformed(described(e)));
            }
            let error = service.err();
            let message = cut_message(error.message().or(error.code()).unwrap_or("no message"), None);
            let wait = retry_after_from(raw.headers().get("retry-after"), raw.headers().get("retry-after-ms"));
            let status = if error.code() == Some("ThrottlingException") { 429 } else { status };
            Failure::from_status(status, message, wait)
        }
        // ResponseError (an answer that cannot be read) and any future kind.
        _ => Failure::Stop(LlmError::Malformed(described(e))),
    }
}

/// How an event of a stream failed: an exception event of the service (throttling, internal, unavailable: retried
/// if no delta was forwarded yet; validation, model errors: final), or a frame that cannot be read.
fn stream_failure<R>(e: &SdkError<ConverseStreamOutputError, R>, timeout: LlmError) -> Failure
where
    R: std::fmt::Debug + 'static,
{
    let described = || cut_message(&DisplayErrorContext(e).to_string(), None);
    match e {
        SdkError::TimeoutError(_) => Failure::retry(timeout),
        SdkError::DispatchFailure(_) => Failure::retry(LlmError::Unreachable(described())),
        SdkError::ServiceError(service) => {
            let error = service.err();
            let status = match error {
                ConverseStreamOutputError::ThrottlingException(_) => 429,
                ConverseStreamOutputError::InternalServerException(_) => 500,
                ConverseStreamOutputError::ServiceUnavailableException(_) => 503,
                ConverseStreamOutputError::ModelStreamErrorException(_) => 424,
                _ => 400,
            };
            Failure::from_status(status, cut_message(error.message().unwrap_or("no message"), None), None)
        }
        _ => Failure::Stop(LlmError::Malformed(described())),
    }
}

#[async_trait]
impl LanguageModel for BedrockModel {
    fn provider(&self) -> &'static str {
        "bedrock"
    }
    fn model(&self) -> &str {
        &self.model
    }
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
        self.policy.run(false, |_| self.policy.bounded(self.converse(request))).await
    }
    async fn stream(&self, request: &CompletionRequest, deltas: mpsc::Sender<String>) -> Result<Completion, LlmError> {
        self.policy.run(true, |_| self.converse_stream(request, &deltas)).await
    }
}

/// The model factory of the functions: Bedrock models from the function's SDK configuration (region, role), the
/// other providers through [`HttpModels`].
#[derive(Clone)]
pub struct AwsModels {
    sdk: SdkConfig,
    http: HttpModels,
    backoff: Backoff,
}

impl AwsModels {
    /// A factory over the process's SDK configuration (`config::load_sdk_config`) and a new [`HttpModels`].
    pub fn new(sdk: &SdkConfig) -> Self {
        AwsModels { sdk: sdk.clone(), http: HttpModels::new(), backoff: Backoff::default() }
    }

    /// The factory of a function: over the SDK configuration the other adapters use (`config::load_sdk_config` from
    /// Lambda's environment).
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let settings = crate::config::AwsSettings::from_env()?;
        Ok(AwsModels::new(&crate::config::load_sdk_config(&settings).await))
    }

    /// The delays between attempts, for every provider (tests shorten them).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self.http = self.http.with_backoff(backoff);
        self
    }
}

impl ModelFactory for AwsModels {
    /// Bedrock: `config.base_url` overrides the Bedrock Runtime endpoint (a VPC endpoint; default: the SDK
    /// configuration's, i.e. the region's or `NUSATRADE_AWS_ENDPOINT`); `config.api_key` is not used (IAM).
    fn connect(&self, config: &LlmConfig) -> Result<Arc<dyn LanguageModel>, LlmError> {
        if config.provider != Provider::Bedrock {
            return self.http.connect(config);
        }
        if self.sdk.region().is_none() {
            return Err(LlmError::NotConfigured("Amazon Bedrock needs an AWS region (AWS_REGION)".into()));
        }
        let endpoint = match config.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Some(url.trim_end_matches('/')),
            Some(_) => return Err(LlmError::NotConfigured("the Bedrock endpoint must be an http(s) URL".into())),
            None => None,
        };
        Ok(Arc::new(BedrockModel::new(bedrock_client(&self.sdk, endpoint), config, self.backoff)?))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nusatrade_app::ports::Secret;

    use super::*;

    fn config(provider: Provider, model: &str) -> LlmConfig {
        LlmConfig {
            provider,
            base_url: None,
            model: model.into(),
            api_key: Some(Secret::new("sk-1")),
            timeout: Duration::from_secs(5),
            max_retries: 1,
        }
    }

    #[tokio::test]
    async fn the_factory_builds_every_provider() {
        let sdk = crate::config::sdk_config_for_endpoint("http://127.0.0.1:9").await;
        let f = AwsModels::new(&sdk);
        for (p, name) in
            [(Provider::Bedrock, "bedrock"), (Provider::OpenAi, "openai"), (Provider::Anthropic, "anthropic")]
        {
            let m = f.connect(&config(p, "m-1")).unwrap();
            assert_eq!((m.provider(), m.model()), (name, "m-1"));
        }
        assert!(matches!(f.connect(&config(Provider::Bedrock, "")), Err(LlmError::NotConfigured(_))));
        let bad_url = LlmConfig { base_url: Some("bedrock.local".into()), ..config(Provider::Bedrock, "m") };
        assert!(matches!(f.connect(&bad_url), Err(LlmError::NotConfigured(_))));
        let no_region = AwsModels::new(&SdkConfig::builder().build());
        assert!(matches!(no_region.connect(&config(Provider::Bedrock, "m")), Err(LlmError::NotConfigured(_))));
    }
}
