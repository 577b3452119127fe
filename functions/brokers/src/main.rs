//! Lambda entry point for the broker-connection routes (`/api/v1/brokers/...`, contract §2.6): list,
//! create, get, update, delete, status (online state and link health), sync (sends `SYNC_REQUEST` to
//! the connector), disconnect, and the public supported-brokers list.
//!
//! Wiring only: logging, the auth settings (token verification) and the AWS adapters it uses (DynamoDB; the
//! API Gateway Management API for `sync`/`disconnect`) built once per execution environment, and the
//! shared router served through `lambda_http`. Request limits come from API Gateway's route throttling.

use nusatrade_app::auth::AuthConfig;
use nusatrade_app::brokers::routes::{BrokersState, router};
use nusatrade_app::trading;

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("brokers", |p| p.store().push()).await?;
    let config = AuthConfig::from_env()?;
    tracing::info!(?config, "brokers function initialised");
    let state = BrokersState::new(trading::authenticator(&config, &ports), &ports);
    nusatrade_aws::runtime::serve(router(state, None)).await
}
