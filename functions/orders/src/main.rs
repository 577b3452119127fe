//! Lambda entry point for the order routes (`/api/v1/trading/orders…`, `/positions`, `/history`,
//! `/dashboard/stats`, `/positions/{id}/trailing-stop`, `/signals`) and the position monitor
//! (`/position-monitor/status`, `/position-monitor/sync`: `nusatrade_app::reconcile::routes`).
//!
//! Wiring only: logging, the auth and trading settings and the AWS adapters (DynamoDB for orders and
//! reservations, the API Gateway Management API for commands to connectors) built once per execution
//! environment, and the shared router served through `lambda_http`. The use cases live in
//! `nusatrade_app::trading::orders`; request limits come from API Gateway's route throttling.

use nusatrade_app::auth::AuthConfig;
use nusatrade_app::reconcile::routes::MonitorState;
use nusatrade_app::reconcile::{self, ReconcileService, ReconcileSettings};
use nusatrade_app::trading::orders::{OrderService, TradingConfig, routes};
use nusatrade_app::trading::{self};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("orders").await?;
    let auth = AuthConfig::from_env()?;
    let config = TradingConfig::from_env()?;
    tracing::info!(?config, "orders function initialised");
    let settings = ReconcileSettings::from_env()?;
    let authn = trading::authenticator(&auth, &ports);
    let orders = OrderService::new(&ports, config);
    let monitor = MonitorState {
        auth: authn.clone(),
        reconcile: ReconcileService::new(orders.clone(), ports.queue.clone(), settings),
    };
    let state = routes::OrdersState { auth: authn, orders };
    let app = routes::router(state, None).merge(reconcile::routes::router(monitor, None));
    lambda_http::run(nusatrade_aws::runtime::http_app(app)?).await
}
