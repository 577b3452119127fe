//! Lambda entry point for the strategy routes (`/api/v1/strategies/...`, contract §2.5): list, create, get, update,
//! delete, toggle, validate (stored or unsaved), quick backtest, the ML templates and their clones.
//!
//! Wiring only: logging, the auth and backtest settings and the AWS adapters it uses (DynamoDB for strategies and
//! dataset metadata, S3 for the candles a quick backtest reads; a quick backtest never queues) built once
//! per execution environment, and the shared router served through `lambda_http`.

use nusatrade_app::auth::AuthConfig;
use nusatrade_app::backtest::{self, BacktestConfig, BacktestService, BacktestState};
use nusatrade_app::trading;

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("strategies", |p| p.store().blobs()).await?;
    let auth = AuthConfig::from_env()?;
    let config = BacktestConfig::from_env()?;
    tracing::info!(?config, "strategies function initialised");
    let state =
        BacktestState { auth: trading::authenticator(&auth, &ports), backtests: BacktestService::new(&ports, config) };
    nusatrade_aws::runtime::serve(backtest::strategies_router(state, None)).await
}
