//! The init phase every Lambda function shares: JSON logs for CloudWatch, the settings read from the
//! environment the SAM template sets, and the ports the function uses built once per execution environment;
//! for the HTTP functions, the platform's middleware and API Gateway's request context ([`http_app`], [`serve`]).

#[cfg(feature = "http")]
use axum::Router;
#[cfg(feature = "http")]
use axum::extract::Request;
#[cfg(feature = "http")]
use axum::middleware::{self, Next};
#[cfg(feature = "http")]
use axum::response::Response;
#[cfg(feature = "http")]
use lambda_http::RequestExt as _;
#[cfg(feature = "http")]
use lambda_http::request::RequestContext;
#[cfg(feature = "http")]
use nusatrade_app::auth::ClientIp;
use nusatrade_app::ports::Ports;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// What a function's `main` returns on failure (the Lambda runtime's error, `lambda_http`'s too).
pub use lambda_runtime::Error;

use crate::config::{AwsSettings, ConfigError, PortsBuilder, load_sdk_config};

/// JSON lines on stdout (CloudWatch Logs), no colours, level from `RUST_LOG` (default `info`): a level and
/// `target=level` directives (`info`, `debug`, `info,nusatrade_app=debug`; an invalid value means `info`). The span
/// list carries the Lambda request id that `lambda_runtime` opens for every invocation.
pub fn init_tracing() {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_ansi(false)
                .with_current_span(false)
                .with_target(true)
                .with_filter(filter),
        )
        .try_init();
}

/// `RUST_LOG` as per-target levels (the `EnvFilter` syntax without span and field filters, whose regular
/// expressions would double the logging code in every function).
fn log_filter(value: Option<&str>) -> Targets {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match value.map(str::trim) {
        None | Some("") => default(),
        Some(v) => v.parse().unwrap_or_else(|_| default()),
    }
}

/// Logging, metrics and the ports `function` uses, once per execution environment (outside the request path):
/// `adapters` names them on a [`PortsBuilder`] (`|p| p.store().push()`); the others answer "unavailable" and
/// their SDKs are not linked. A named port whose setting is not set answers "unavailable" too (logged here).
pub async fn init(
    function: &str,
    adapters: impl for<'a> FnOnce(PortsBuilder<'a>) -> PortsBuilder<'a>,
) -> Result<Ports, ConfigError> {
    init_tracing();
    crate::emf::install(function);
    let settings = AwsSettings::from_env()?;
    let sdk = load_sdk_config(&settings).await;
    let builder = adapters(PortsBuilder::new(&sdk, &settings));
    let missing = builder.missing();
    if !missing.is_empty() {
        tracing::warn!(function, ?missing, "settings not set: the ports that need them answer 'unavailable'");
    }
    Ok(builder.build())
}

/// An HTTP function's router as served: the platform's middleware from the environment (CORS settings), the
/// caller's IP from API Gateway's request context ([`client_ip`]) and the metrics flush after each invocation
/// ([`crate::emf`]).
#[cfg(feature = "http")]
pub fn http_app(routes: Router) -> Result<Router, nusatrade_app::http::cors::CorsConfigError> {
    let routes = routes.layer(middleware::from_fn(client_ip));
    Ok(nusatrade_app::http::layers::platform_from_env(routes)?.layer(middleware::from_fn(crate::emf::layer)))
}

/// Serves an HTTP function's routes ([`http_app`]) on the Lambda runtime through `lambda_http`.
#[cfg(feature = "http")]
pub async fn serve(routes: Router) -> Result<(), Error> {
    lambda_http::run(http_app(routes)?).await
}

/// Serves an HTTP function's routes ([`http_app`]) with **response streaming** (a Lambda function URL with
/// `InvokeMode: RESPONSE_STREAM`): each body chunk reaches the client as it is written — what Server-Sent Events need,
/// since API Gateway HTTP APIs buffer a whole response and cut it at 29 s. With `origin_secret`, a request must carry
/// the header `x-origin-verify` with that value (CloudFront adds it; a direct call to the function URL is refused
/// with 403).
#[cfg(feature = "http")]
pub async fn serve_streaming(routes: Router, origin_secret: Option<String>) -> Result<(), Error> {
    lambda_http::run_with_streaming_response(require_origin_header(http_app(routes)?, origin_secret)).await
}

/// With a non-empty `secret`: a request without the header `x-origin-verify: <secret>` is answered 403 (a call to the
/// function URL that did not come through CloudFront). Without one: `app` unchanged.
#[cfg(feature = "http")]
pub fn require_origin_header(app: Router, secret: Option<String>) -> Router {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else { return app };
    app.layer(middleware::from_fn(move |req: Request, next: Next| {
        let ok = req.headers().get("x-origin-verify").is_some_and(|v| v.as_bytes() == secret.as_bytes());
        async move {
            use axum::response::IntoResponse as _;
            if ok {
                next.run(req).await
            } else {
                nusatrade_app::http::ApiError::Forbidden("Requests must come through the platform's URL".into())
                    .into_response()
            }
        }
    }))
}

/// API Gateway's view of the caller (`requestContext.http.sourceIp`, REST APIs' `identity.sourceIp`) as the
/// [`ClientIp`] extension the rate limiter and the audit trail read.
#[cfg(feature = "http")]
pub async fn client_ip(mut req: Request, next: Next) -> Response {
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

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::log_filter;

    #[test]
    fn rust_log_sets_levels_per_target() {
        let f = log_filter(None);
        assert!(f.would_enable("nusatrade_app::trading", &Level::INFO));
        assert!(!f.would_enable("nusatrade_app::trading", &Level::DEBUG));
        let f = log_filter(Some("warn,nusatrade_app=debug"));
        assert!(f.would_enable("nusatrade_app::trading", &Level::DEBUG));
        assert!(!f.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(f.would_enable("aws_smithy_runtime", &Level::WARN));
        let f = log_filter(Some("debug"));
        assert!(f.would_enable("lambda_runtime", &Level::DEBUG));
        let f = log_filter(Some("[{a=b}]=x,,="));
        assert!(f.would_enable("nusatrade_app", &Level::INFO), "an invalid filter means info");
    }
}

#[cfg(all(test, feature = "http"))]
mod http_tests {
    use axum::Extension;
    use axum::body::Body;
    use axum::routing::get;
    use http_body_util::BodyExt as _;
    use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyRequestContext, ApiGatewayV2httpRequestContext};
    use tower::ServiceExt as _;

    use super::*;

    async fn seen_ip(ctx: Option<RequestContext>) -> String {
        let app = Router::new()
            .route(
                "/",
                get(|ip: Option<Extension<ClientIp>>| async move {
                    ip.map(|Extension(ClientIp(ip))| ip).unwrap_or_default()
                }),
            )
            .layer(middleware::from_fn(client_ip));
        let mut req = axum::http::Request::get("/").body(Body::empty()).unwrap();
        if let Some(ctx) = ctx {
            req = req.with_request_context(ctx);
        }
        let body = app.oneshot(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// The caller's IP as API Gateway saw it (HTTP APIs and REST APIs) becomes the `ClientIp` the rate limiter and
    /// the audit trail read; without a request context there is none.
    #[tokio::test]
    async fn client_ip_comes_from_the_request_context() {
        let mut v2 = ApiGatewayV2httpRequestContext::default();
        v2.http.source_ip = Some("198.51.100.7".into());
        assert_eq!(seen_ip(Some(RequestContext::ApiGatewayV2(v2))).await, "198.51.100.7");
        let mut v1 = ApiGatewayProxyRequestContext::default();
        v1.identity.source_ip = Some("203.0.113.9".into());
        assert_eq!(seen_ip(Some(RequestContext::ApiGatewayV1(v1))).await, "203.0.113.9");
        assert_eq!(seen_ip(None).await, "");
    }

    #[tokio::test]
    async fn the_streaming_url_requires_the_origin_header() {
        let app = || Router::new().route("/x", get(|| async { "ok" }));
        let call = |app: Router, header: Option<&'static str>| async move {
            let mut req = axum::http::Request::builder().uri("/x");
            if let Some(h) = header {
                req = req.header("x-origin-verify", h);
            }
            app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap().status().as_u16()
        };
        let guarded = || require_origin_header(app(), Some("s3cret".into()));
        assert_eq!(call(guarded(), None).await, 403);
        assert_eq!(call(guarded(), Some("wrong")).await, 403);
        assert_eq!(call(guarded(), Some("s3cret")).await, 200);
        assert_eq!(call(require_origin_header(app(), Some(String::new())), None).await, 200, "no secret: no check");
        assert_eq!(call(require_origin_header(app(), None), None).await, 200);
    }
}
