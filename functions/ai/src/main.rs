//! Lambda entry point for the AI supervisor's routes (`/api/v1/ai/...`, contract §2.10): chat, analyses,
//! recommendations and strategy generation, answered by the language model the admin settings name (OpenAI-compatible,
//! Anthropic, or Amazon Bedrock with the function's role) and grounded in the caller's own data, or computed from that
//! data when no model is configured.
//!
//! Wiring only: logging, the auth, trading and ML settings, the AWS adapters it uses (DynamoDB for the settings,
//! conversations, token budgets, datasets, orders and bots; S3 for the candles; KMS to open the stored API key)
//! built once per execution environment, and the shared router. Two deployments of this binary
//! (template.yaml): `AiFunction` behind the HTTP API (buffered responses), and `AiStreamFunction` behind a function
//! URL with `NUSATRADE_RESPONSE_STREAMING=true` (Server-Sent Events reach the browser as they are written;
//! `NUSATRADE_ORIGIN_VERIFY` is the header value CloudFront adds, so only requests through the distribution pass).

use std::sync::Arc;

use nusatrade_app::ai::{self, AiState};
use nusatrade_app::auth::AuthConfig;
use nusatrade_app::ml::{MlConfig, ModelCache};
use nusatrade_app::trading::{self, orders::TradingConfig};
use nusatrade_app::{compose, ports::ModelFactory};

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("ai", |p| p.store().blobs()).await?;
    let auth = AuthConfig::from_env()?;
    let settings = compose::runtime_settings(&ports)?.with_keys(nusatrade_aws::kms::key_wrapper_from_env().await?);
    let orders = compose::orders_with(&ports, TradingConfig::from_env()?, Some(settings.clone()));
    let bots = compose::ml(&ports, None, MlConfig::from_env()?, ModelCache::from_env());
    let models: Arc<dyn ModelFactory> = Arc::new(nusatrade_aws::bedrock::AwsModels::from_env().await?);
    let streaming = std::env::var("NUSATRADE_RESPONSE_STREAMING").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    tracing::info!(streaming, "ai function initialised");
    let ai = compose::ai(&ports, orders, settings, models, Some(bots));
    let routes = ai::router(AiState { auth: trading::authenticator(&auth, &ports), ai }, None);
    if streaming {
        nusatrade_aws::runtime::serve_streaming(routes, std::env::var("NUSATRADE_ORIGIN_VERIFY").ok()).await
    } else {
        nusatrade_aws::runtime::serve(routes).await
    }
}
