//! Lambda entry point for the `reconcile` queue (issue #6): ack timeouts, reconciliation runs after positions
//! snapshots, and the scheduled sweeps (EventBridge Scheduler puts them on the queue). SQS event source with
//! `ReportBatchItemFailures`: only the failed records are retried, and after 5 receives a message is parked in the
//! alarmed dead-letter queue.
//!
//! Wiring only: logging, the trading and reconciliation settings and the AWS adapters it uses (DynamoDB, SQS for
//! sweep fan-out, the API Gateway Management API for snapshot requests to connectors and `ORDER_UPDATE`s to
//! dashboards), built once per execution environment. The use cases live in `nusatrade_app::reconcile`.

use std::sync::Arc;

use nusatrade_app::compose::Trading;
use nusatrade_app::reconcile::{ReconcileConsumer, ReconcileSettings};
use nusatrade_app::trading::orders::TradingConfig;

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    let ports = nusatrade_aws::runtime::init("reconcile", |p| p.store().queue().push()).await?;
    let settings = ReconcileSettings::from_env()?;
    tracing::info!(?settings, "reconcile function initialised");
    let Trading { reconcile: service, .. } = Trading::new(&ports, TradingConfig::from_env()?, settings);
    nusatrade_aws::jobs::run(Arc::new(ReconcileConsumer { service })).await
}
