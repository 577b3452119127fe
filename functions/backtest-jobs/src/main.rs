//! Lambda entry point of the `backtest` queue's consumer: runs too large to answer at once, optimizer chunks (the
//! worker that finishes the last chunk merges them) and walk-forward analyses (`nusatrade_app::backtest::jobs`).
//!
//! Wiring only: logging, the backtest settings and the AWS adapters it uses (DynamoDB, S3; records arrive through the SQS event source) built once per
//! execution environment, then the shared SQS runner (`nusatrade_aws::jobs`): failed records are reported as
//! `batchItemFailures`, come back after the visibility timeout and land in the dead-letter queue after 5 receives.

use std::sync::Arc;

use nusatrade_app::backtest::{BacktestConfig, BacktestConsumer, BacktestService};

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    let ports = nusatrade_aws::runtime::init("backtest-jobs", |p| p.store().blobs()).await?;
    let config = BacktestConfig::from_env()?;
    tracing::info!(?config, "backtest-jobs function initialised");
    nusatrade_aws::jobs::run(Arc::new(BacktestConsumer::new(BacktestService::new(&ports, config)))).await
}
