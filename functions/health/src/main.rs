//! Lambda entry point for the health routes (`GET /api/v1/health`, `/api/v1/health/*`, `/api/v1/info`).
//!
//! Wiring only: logging, the AWS adapters built once per execution environment from the
//! environment variables the SAM template sets, and the shared router served through `lambda_http`.
//! The routes themselves live in `nusatrade_app::http::health`.

use std::time::Instant;

use nusatrade_app::http::health::{self, HealthState};
use nusatrade_app::http::layers;
use nusatrade_aws::config::{AwsSettings, build_ports};
use tracing_subscriber::EnvFilter;

/// Name reported by `/api/v1/info`; the template sets it per stack.
const ENVIRONMENT_VAR: &str = "NUSATRADE_ENVIRONMENT";

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();

    // Init phase: runs once per execution environment, outside the request path.
    let settings = AwsSettings::from_env()?;
    let missing = settings.missing();
    if !missing.is_empty() {
        tracing::warn!(?missing, "settings not set: the ports that need them answer 'unavailable'");
    }
    let ports = build_ports(&settings).await;
    let environment = std::env::var(ENVIRONMENT_VAR).unwrap_or_else(|_| "production".to_owned());
    tracing::info!(%environment, "health function initialised");

    let router = layers::platform(health::router(HealthState {
        store: ports.store,
        clock: ports.clock,
        started: Instant::now(),
        environment,
    }));
    lambda_http::run(router).await
}

/// JSON lines on stdout (CloudWatch Logs), no colours, level from `RUST_LOG` (default `info`). The span
/// list carries the Lambda request id that `lambda_runtime` opens for every invocation.
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(filter)
        .with_ansi(false)
        .with_current_span(false)
        .with_target(true)
        .init();
}
