//! Lambda entry point for the ML routes (`/api/v1/ml/*` and `/api/v1/ml-models/*`).
//!
//! Wiring only: logging, the auth, trading and ML settings and the AWS adapters it uses (DynamoDB for models,
//! predictions and datasets' metadata; S3 for candles and model artefacts; SQS to queue training jobs on
//! `ml-train`; the API Gateway Management API for the commands `execute` sends to connectors) built once per
//! execution environment, and the shared router served through `lambda_http`. Decoded models stay in a
//! per-environment cache (`NUSATRADE_ML_CACHE_MODELS`, keyed by model id + version + checksum), so a warm
//! function loads a model once. Training runs in the `ml-train` function.

use nusatrade_app::auth::AuthConfig;
use nusatrade_app::compose;
use nusatrade_app::ml::{self, MlConfig, MlState, ModelCache};
use nusatrade_app::trading::{self, orders::TradingConfig};

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("ml", |p| p.store().blobs().queue().push()).await?;
    let auth = AuthConfig::from_env()?;
    let trading_config = TradingConfig::from_env()?;
    let config = MlConfig::from_env()?;
    tracing::info!(?config, "ml function initialised");
    let orders = compose::orders(&ports, trading_config);
    let state = MlState {
        auth: trading::authenticator(&auth, &ports),
        ml: compose::ml(&ports, Some(orders), config, ModelCache::from_env()),
    };
    nusatrade_aws::runtime::serve(ml::router(state, None)).await
}
