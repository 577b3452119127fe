//! Lambda entry point for the health routes (`GET /api/v1/health`, `/api/v1/health/*`, `/api/v1/info`) and the API's
//! description (`GET /api/v1/openapi.json`, the `/docs` page).
//!
//! Wiring only: logging, the AWS adapters built once per execution environment from the
//! environment variables the SAM template sets, and the shared router served through `lambda_http`.
//! The routes themselves live in `nusatrade_app::http::health`.

use std::time::Instant;

use nusatrade_app::http::health::{self, HealthState};

/// Name reported by `/api/v1/info`; the template sets it per stack.
const ENVIRONMENT_VAR: &str = "NUSATRADE_ENVIRONMENT";

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("health").await?;
    let environment = std::env::var(ENVIRONMENT_VAR).unwrap_or_else(|_| "production".to_owned());
    tracing::info!(%environment, "health function initialised");

    let router = nusatrade_aws::runtime::http_app(
        health::router(HealthState { store: ports.store, clock: ports.clock, started: Instant::now(), environment })
            // The API's OpenAPI document and its documentation page.
            .merge(nusatrade_app::http::api::router()),
    )?;
    lambda_http::run(router).await
}
