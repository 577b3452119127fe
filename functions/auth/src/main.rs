//! Lambda entry point for the accounts routes (`/api/v1/auth/*`, `/api/v1/users/*`,
//! `/api/v1/totp/*`).
//!
//! Wiring only: logging, the auth settings and the AWS adapters built once per execution environment
//! from the environment the SAM template sets, the caller's IP taken from API Gateway's request
//! context, and the shared router served through `lambda_http`. The routes live in
//! `nusatrade_app::auth`.
//!
//! The JWT secret comes from `NUSATRADE_JWT_SECRET` (the template resolves it from Secrets Manager
//! at deploy time); start-up fails when it is missing or shorter than 32 bytes.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use nusatrade_app::auth::{self, AuthConfig, AuthService, ClientIp};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Init phase: runs once per execution environment, outside the request path.
    let ports = nusatrade_aws::runtime::init("auth").await?;
    let config = AuthConfig::from_env()?;
    tracing::info!(?config, "auth function initialised");
    let service = AuthService::new(config, ports)?;

    let router = nusatrade_aws::runtime::http_app(auth::router(service).layer(middleware::from_fn(client_ip)))?;
    lambda_http::run(router).await
}

/// API Gateway's view of the caller (`requestContext.http.sourceIp`) as the [`ClientIp`] extension
/// the rate limiter and the audit trail read.
async fn client_ip(mut req: Request, next: Next) -> Response {
    let ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.clone(),
        _ => None,
    };
    if let Some(ip) = ip {
        req.extensions_mut().insert(ClientIp(ip));
    }
    next.run(req).await
}
