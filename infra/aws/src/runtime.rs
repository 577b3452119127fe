//! The init phase every Lambda function shares: JSON logs for CloudWatch, the settings read from the
//! environment the SAM template sets, and the ports built once per execution environment.

use axum::Router;
use nusatrade_app::ports::Ports;
use tracing_subscriber::EnvFilter;

use crate::config::{AwsSettings, ConfigError, build_ports};

/// JSON lines on stdout (CloudWatch Logs), no colours, level from `RUST_LOG` (default `info`). The span
/// list carries the Lambda request id that `lambda_runtime` opens for every invocation.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(filter)
        .with_ansi(false)
        .with_current_span(false)
        .with_target(true)
        .try_init();
}

/// Logging plus the AWS ports, once per execution environment (outside the request path). Settings
/// that are not set leave their ports answering "unavailable" (logged here), so a function that does
/// not use them starts fine.
pub async fn init(function: &str) -> Result<Ports, ConfigError> {
    init_tracing();
    crate::emf::install(function);
    let settings = AwsSettings::from_env()?;
    let missing = settings.missing();
    if !missing.is_empty() {
        tracing::warn!(function, ?missing, "settings not set: the ports that need them answer 'unavailable'");
    }
    Ok(build_ports(&settings).await)
}

/// An HTTP function's router as served: the platform's middleware from the environment (CORS settings) plus the
/// metrics flush after each invocation ([`crate::emf`]).
pub fn http_app(routes: Router) -> Result<Router, nusatrade_app::http::cors::CorsConfigError> {
    Ok(nusatrade_app::http::layers::platform_from_env(routes)?.layer(axum::middleware::from_fn(crate::emf::layer)))
}
