//! Lambda entry point for the health routes (`GET /api/v1/health`, `/api/v1/health/*`, `/api/v1/info`) and the API's
//! description (`GET /api/v1/openapi.json`, the `/docs` page).
//!
//! Wiring only: logging, the AWS adapter it uses (DynamoDB, for the store check) built once per execution
//! environment from the environment variables the SAM template sets, and the routers the local gateway serves too
//! (`nusatrade_app::compose::routes::health`) served through `lambda_http`. The routes themselves live in
//! `nusatrade_app::http::health` and `nusatrade_app::api`.

use std::time::Instant;

/// Name reported by `/api/v1/info`; the template sets it per stack.
const ENVIRONMENT_VAR: &str = "NUSATRADE_ENVIRONMENT";

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("health", |p| p.store()).await?;
    let environment = std::env::var(ENVIRONMENT_VAR).unwrap_or_else(|_| "production".to_owned());
    tracing::info!(%environment, "health function initialised");
    nusatrade_aws::runtime::serve(nusatrade_app::compose::routes::health(&ports, Instant::now(), environment)).await
}
