//! Lambda entry point for the AI supervisor's routes (`/api/v1/ai/...`, contract §2.10): the analyses and
//! recommendations computed from the caller's own data (stored candles, closed trades), labelled as computed.
//!
//! Wiring only: logging, the auth and trading settings and the AWS adapters it uses (DynamoDB for dataset metadata
//! and the order history, S3 for the candles) built once per execution environment, and the shared router served
//! through `lambda_http`.

use nusatrade_app::ai::{self, AiService, AiState};
use nusatrade_app::auth::AuthConfig;
use nusatrade_app::compose;
use nusatrade_app::trading::{self, orders::TradingConfig};

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    let ports = nusatrade_aws::runtime::init("ai", |p| p.store().blobs()).await?;
    let auth = AuthConfig::from_env()?;
    let orders = compose::orders(&ports, TradingConfig::from_env()?);
    tracing::info!("ai function initialised");
    let state = AiState { auth: trading::authenticator(&auth, &ports), ai: AiService::new(&ports, orders) };
    nusatrade_aws::runtime::serve(ai::router(state, None)).await
}
