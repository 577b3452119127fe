//! Lambda entry point for the accounts routes (`/api/v1/auth/*`, `/api/v1/users/*`,
//! `/api/v1/totp/*`).
//!
//! Wiring only: logging, the auth settings and the AWS adapters it uses (DynamoDB; SES for account mail; the API Gateway Management API to close the WebSockets of revoked sessions) built once
//! per execution environment from the environment the SAM template sets, and the shared router served through
//! `lambda_http` (`nusatrade_aws::runtime::serve`, which also takes the caller's IP from API Gateway's request
//! context). The routes live in `nusatrade_app::auth`.
//!
//! The request limit is the operator's `rate_limit_requests` / `rate_limit_window_seconds` settings when set (read
//! from the table, at most `NUSATRADE_SETTINGS_TTL_SECS` old), else `NUSATRADE_RATE_LIMIT_*`.
//!
//! The JWT secret comes from `NUSATRADE_JWT_SECRET` (the template resolves it from Secrets Manager
//! at deploy time); start-up fails when it is missing or shorter than 32 bytes.

use nusatrade_app::auth::{self, AuthConfig, AuthService};
use nusatrade_app::compose;

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    // The push port closes the sockets of revoked sessions (logout, password reset, revoke; `DeleteConnection`).
    let ports = nusatrade_aws::runtime::init("auth", |p| p.store().mailer().push()).await?;
    let config = AuthConfig::from_env()?;
    tracing::info!(?config, "auth function initialised");
    // The request limit of these routes follows the operator's `rate_limit_*` settings (within their TTL).
    let settings = compose::runtime_settings(&ports)?;
    let service = AuthService::new(config, ports)?.with_settings(Some(settings));
    nusatrade_aws::runtime::serve(auth::router(service)).await
}
