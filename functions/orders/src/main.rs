//! Lambda entry point for the order routes (`/api/v1/trading/orders…`, `/positions`, `/history`,
//! `/dashboard/stats`, `/positions/{id}/trailing-stop`, `/signals`).
//!
//! Wiring only: logging, the auth and trading settings and the AWS adapters (DynamoDB for orders and
//! reservations, the API Gateway Management API for commands to connectors) built once per execution
//! environment, and the shared router served through `lambda_http`. The use cases live in
//! `nusatrade_app::trading::orders`; request limits come from API Gateway's route throttling.

use nusatrade_app::auth::AuthConfig;
use nusatrade_app::http::layers;
use nusatrade_app::trading::orders::{OrderService, TradingConfig, routes};
use nusatrade_app::trading::{self};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("orders").await?;
    let auth = AuthConfig::from_env()?;
    let config = TradingConfig::from_env()?;
    tracing::info!(?config, "orders function initialised");
    let state =
        routes::OrdersState { auth: trading::authenticator(&auth, &ports), orders: OrderService::new(&ports, config) };
    lambda_http::run(layers::platform(routes::router(state, None))).await
}
