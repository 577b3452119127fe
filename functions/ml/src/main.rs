//! Lambda entry point for the ML routes (`/api/v1/ml/*` and `/api/v1/ml-models/*`).
//!
//! Wiring only: logging, the auth, trading and ML settings and the AWS adapters (DynamoDB for models,
//! predictions and datasets' metadata; S3 for candles and model artefacts; SQS to queue training jobs on
//! `ml-train`; the API Gateway Management API for the commands `execute` sends to connectors) built once per
//! execution environment, and the shared router served through `lambda_http`. Decoded models stay in a
//! per-environment cache (`NUSATRADE_ML_CACHE_MODELS`, keyed by model id + version + checksum), so a warm
//! function loads a model once. Training runs in the `ml-train` function.

use nusatrade_app::auth::AuthConfig;
use nusatrade_app::ml::{self, MlConfig, MlService, MlState, ModelCache};
use nusatrade_app::trading::orders::{OrderService, TradingConfig};
use nusatrade_app::trading::{self};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("ml").await?;
    let auth = AuthConfig::from_env()?;
    let trading_config = TradingConfig::from_env()?;
    let config = MlConfig::from_env()?;
    tracing::info!(?config, "ml function initialised");
    let orders = OrderService::new(&ports, trading_config);
    let state = MlState {
        auth: trading::authenticator(&auth, &ports),
        ml: MlService::new(&ports, Some(orders), config, ModelCache::from_env()),
    };
    lambda_http::run(nusatrade_aws::runtime::http_app(ml::router(state, None))?).await
}
