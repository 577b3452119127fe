//! Lambda entry point for the order routes (`/api/v1/trading/orders…`, `/positions`, `/history`,
//! `/dashboard/stats`, `/positions/{id}/trailing-stop`, `/signals`) and the position monitor
//! (`/position-monitor/status`, `/position-monitor/sync`: `nusatrade_app::reconcile::routes`).
//!
//! Wiring only: logging, the auth, trading and reconciliation settings and the AWS adapters it uses (DynamoDB for
//! orders and reservations, SQS for ack timeouts and reconciliation runs on the `reconcile` queue, the API Gateway
//! Management API for commands to connectors) built once per execution environment, and the routers the local
//! gateway serves too (`nusatrade_app::compose`) served through `lambda_http`. Request limits come from API
//! Gateway's route throttling.

use nusatrade_app::auth::AuthConfig;
use nusatrade_app::compose::{self, Trading};
use nusatrade_app::reconcile::ReconcileSettings;
use nusatrade_app::trading::{self, orders::TradingConfig};

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("orders", |p| p.store().queue().push()).await?;
    let auth = AuthConfig::from_env()?;
    let config = TradingConfig::from_env()?;
    tracing::info!(?config, "orders function initialised");
    let trading = Trading::new(&ports, config, ReconcileSettings::from_env()?);
    nusatrade_aws::runtime::serve(compose::routes::trading(trading::authenticator(&auth, &ports), &trading, None)).await
}
