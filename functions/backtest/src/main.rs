//! Lambda entry point for the backtest routes (`/api/v1/backtest/...`, contract §2.7): the legacy strategy routes,
//! runs, sessions with their trades and SVG chart, Monte Carlo, and optimizations (queued on `backtest`).
//!
//! Wiring only: logging, the auth and backtest settings (`NUSATRADE_BACKTEST_SYNC_MAX_BARS`: larger runs are queued)
//! and the AWS adapters it uses (DynamoDB for sessions and strategies, S3 for candles and results, SQS for queued
//! runs and optimizer chunks) built once per execution environment, and the shared router through `lambda_http`.

use nusatrade_app::auth::AuthConfig;
use nusatrade_app::backtest::{self, BacktestConfig, BacktestService, BacktestState};
use nusatrade_app::trading;

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    let ports = nusatrade_aws::runtime::init("backtest", |p| p.store().blobs().queue()).await?;
    let auth = AuthConfig::from_env()?;
    let config = BacktestConfig::from_env()?;
    tracing::info!(?config, "backtest function initialised");
    let state =
        BacktestState { auth: trading::authenticator(&auth, &ports), backtests: BacktestService::new(&ports, config) };
    nusatrade_aws::runtime::serve(backtest::backtest_router(state, None)).await
}
