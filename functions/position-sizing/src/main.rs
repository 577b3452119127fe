//! Lambda entry point for the position-sizing routes (`POST /api/v1/trading/position-size/calculate`,
//! `POST /api/v1/trading/calculate-sl-tp`, `GET /api/v1/trading/risk-profiles`).
//!
//! Wiring only: logging, the auth settings (for token verification) and the AWS adapter it uses (DynamoDB) built
//! once per execution environment, and the shared router served through `lambda_http`. The routes live in
//! `nusatrade_app::trading::sizing`.
//!
//! Callers are authenticated like every other route: the bearer access token is verified with
//! `NUSATRADE_JWT_SECRET` and its session and user are read from the table (the role only reads).
//! Request limits come from API Gateway's route throttling, not the store-backed limiter (which
//! writes a counter per request).

use nusatrade_app::auth::AuthConfig;
use nusatrade_app::trading::{self, sizing};

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("position-sizing", |p| p.store()).await?;
    let config = AuthConfig::from_env()?;
    tracing::info!(?config, "position-sizing function initialised");
    nusatrade_aws::runtime::serve(sizing::router(trading::authenticator(&config, &ports), None)).await
}
