//! Lambda entry point for the accounts routes (`/api/v1/auth/*`, `/api/v1/users/*`,
//! `/api/v1/totp/*`).
//!
//! Wiring only: logging, the auth settings and the AWS adapters it uses (DynamoDB; SES for account mail) built once
//! per execution environment from the environment the SAM template sets, and the shared router served through
//! `lambda_http` (`nusatrade_aws::runtime::serve`, which also takes the caller's IP from API Gateway's request
//! context). The routes live in `nusatrade_app::auth`.
//!
//! The JWT secret comes from `NUSATRADE_JWT_SECRET` (the template resolves it from Secrets Manager
//! at deploy time); start-up fails when it is missing or shorter than 32 bytes.

use nusatrade_app::auth::{self, AuthConfig, AuthService};

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("auth", |p| p.store().mailer()).await?;
    let config = AuthConfig::from_env()?;
    tracing::info!(?config, "auth function initialised");
    let service = AuthService::new(config, ports)?;
    nusatrade_aws::runtime::serve(auth::router(service)).await
}
