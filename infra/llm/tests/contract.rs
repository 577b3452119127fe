//! The language-model contract (`nusatrade_app::contract::llm`) on the OpenAI-compatible and Anthropic adapters,
//! each against its fake provider, built through [`HttpModels`] (the factory the platform uses).

#![cfg(feature = "fake")]

use std::sync::Arc;

use async_trait::async_trait;
use nusatrade_app::contract::llm::{Harness, LlmFactory, Options};
use nusatrade_app::ports::ModelFactory;
use nusatrade_llm::fake::{FakeKind, FakeLlm};
use nusatrade_llm::{Backoff, HttpModels};

struct Fake(FakeKind);

#[async_trait]
impl LlmFactory for Fake {
    async fn start(&self, options: Options) -> Harness {
        let fake = FakeLlm::start(self.0).await;
        let mut config = fake.config("model-under-test");
        config.timeout = options.timeout;
        config.max_retries = options.max_retries;
        let backoff = Backoff {
            base_delay: options.base_delay,
            max_delay: options.base_delay * 4,
            retry_after_cap: options.retry_after_cap,
        };
        let model = HttpModels::new().with_backoff(backoff).connect(&config).expect("a model");
        Harness { model, secret: Some(fake.key().to_owned()), provider: Arc::new(fake) }
    }

    fn streams(&self) -> bool {
        true
    }
}

mod openai {
    nusatrade_app::language_model_contract!(super::Fake(nusatrade_llm::fake::FakeKind::OpenAi));
}

mod anthropic {
    nusatrade_app::language_model_contract!(super::Fake(nusatrade_llm::fake::FakeKind::Anthropic));
}
