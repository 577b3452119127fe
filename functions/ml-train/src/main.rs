//! Lambda entry point of the `ml-train` queue's consumer: trains a user's model or a system default per message
//! (`nusatrade_app::ml::jobs`), and runs the auto-trading cycle the 15-minute schedule puts on the same queue
//! (`nusatrade_app::ml::auto`: orders through the order use case, so the trading settings
//! `NUSATRADE_MAX_OPEN_POSITIONS` / `NUSATRADE_REQUIRE_EMAIL_VERIFICATION` apply here too).
//!
//! Wiring only: logging, the ML settings (`NUSATRADE_ML_JOB_TIMEOUT_SECONDS` = this function's Timeout: a
//! job's lease, after which a redelivered message may restart it) and the AWS adapters it uses (DynamoDB, S3 for
//! candles and models, SQS for ack timeouts, the API Gateway Management API for the cycle's commands) built once per
//! execution environment, then the shared SQS runner (`nusatrade_aws::jobs`): each record goes to the consumer,
//! failed ones are reported as `batchItemFailures` and come back after the queue's visibility timeout (6 × the
//! Timeout), then land in the dead-letter queue after 5 receives.

use std::sync::Arc;

use nusatrade_app::compose;
use nusatrade_app::ml::{MlConfig, MlTrainConsumer, ModelCache};
use nusatrade_app::trading::orders::TradingConfig;

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    let ports = nusatrade_aws::runtime::init("ml-train", |p| p.store().blobs().queue().push()).await?;
    let config = MlConfig::from_env()?;
    let trading = TradingConfig::from_env()?;
    tracing::info!(?config, "ml-train function initialised");
    // The order use case is the auto-trading cycle's (training never trades). A few decoded models stay cached for
    // the cycle's predictions.
    let ml = compose::ml(&ports, Some(compose::orders(&ports, trading)), config, ModelCache::new(4));
    nusatrade_aws::jobs::run(Arc::new(MlTrainConsumer::new(ml))).await
}
