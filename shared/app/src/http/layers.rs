//! The middleware every HTTP function and the local gateway share, applied in one place:
//! request id, response time, security headers, body limit, JSON 404/405, panic → 500 JSON.
//!
//! The body limit is [`MAX_BODY_BYTES`] except on the few routes listed in [`LARGE_BODY_ROUTES`] (CSV uploads,
//! predictions with candles), which get their own larger limit.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use super::cors::{self, CorsConfigError, CorsSettings};
use super::error::ApiError;
use crate::telemetry;

pub use crate::limits::{LARGE_BODY_ROUTES, MAX_BODY_BYTES, body_limit};

/// Longest a request may run (API Gateway's integration limit is 29 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(28);

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_RESPONSE_TIME: HeaderName = HeaderName::from_static("x-response-time");

/// A response extension that keeps `X-Response-Time` off the answer (the public auth routes: how long they took
/// must not tell known accounts apart). The access log still records the latency.
#[derive(Clone, Copy, Debug)]
pub struct NoTimingHeader;

/// Wraps a router of routes with the platform's middleware and JSON fallbacks, with the default CORS settings
/// (tests, tools); a deployed function or gateway uses [`platform_from_env`] or [`platform_with`].
pub fn platform(router: Router) -> Router {
    platform_with(router, &CorsSettings::default())
}

/// [`platform_with`] the settings of the environment (`NUSATRADE_CORS_ORIGINS`); refuses a bad setting.
pub fn platform_from_env(router: Router) -> Result<Router, CorsConfigError> {
    Ok(platform_with(router, &CorsSettings::from_env()?))
}

/// Wraps a router of routes with the platform's middleware and JSON fallbacks, allowing `cors`'s origins.
pub fn platform_with(router: Router, cors: &CorsSettings) -> Router {
    let settings = Arc::new(cors.clone());
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The per-route limit below replaces axum's own default (2 MB) for every extractor.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(limit_body))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("handler panicked".into()).into_response()))
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, REQUEST_TIMEOUT))
        // outside the rest, so every answer (413, 500 from a panic, 504) gets the CORS headers a listed origin
        // needs to read it; the CORS layer answers preflights itself
        .layer(cors.layer())
        // a preflight from an unlisted origin never reaches the CORS layer's blanket 200
        .layer(middleware::from_fn(move |req, next| cors::refuse_foreign_preflight(settings.clone(), req, next)))
        // outermost, so every answer gets the request id, timing and security headers
        .layer(middleware::from_fn(envelope))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".into())
}

async fn method_not_allowed() -> Response {
    let mut r = ApiError::NotFound("Method Not Allowed".into()).into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// Refuses a declared oversized body at once (413) and caps the body stream at the route's limit (the
/// extractors answer 413 when the stream goes past it).
async fn limit_body(req: Request, next: Next) -> Response {
    let limit = body_limit(req.uri().path());
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    next.run(req.map(|b| Body::new(http_body_util::Limited::new(b, limit)))).await
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// The user a request was authenticated as, filled in by the [`CurrentUser`](crate::auth::CurrentUser) extractor
/// for the access log line.
#[derive(Clone, Default)]
pub struct RequestUser(pub Arc<OnceLock<uuid::Uuid>>);

/// Request id (echoed when sane, else new), response time and security headers; bodies rejected by
/// the limit layer become the JSON 413. Every request is counted and timed by route template
/// ([`crate::telemetry`]) and logged once (target `access`: request id, method, route, status, latency, user id
/// when known) — at `info`, or `warn` for a 5xx.
async fn envelope(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let _in_flight = crate::load::InFlight::enter();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| valid_request_id(v))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is ascii"));
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let user = RequestUser::default();
    req.extensions_mut().insert(user.clone());
    let mut resp = crate::load::watch_hashing(next.run(req)).await;
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE
        && resp.headers().get(header::CONTENT_TYPE).is_none_or(|v| v != "application/json")
    {
        // keep the headers already set (CORS), replace status and body
        let headers = std::mem::take(resp.headers_mut());
        resp = ApiError::PayloadTooLarge.into_response();
        for (name, value) in headers.iter().filter(|(n, _)| *n != header::CONTENT_TYPE && *n != header::CONTENT_LENGTH)
        {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let elapsed = started.elapsed();
    resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id.clone());
    if resp.extensions().get::<NoTimingHeader>().is_none()
        && let Ok(v) = HeaderValue::from_str(&format!("{:.2}ms", elapsed.as_secs_f64() * 1000.0))
    {
        resp.headers_mut().insert(X_RESPONSE_TIME.clone(), v);
    }
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("geolocation=(), microphone=(), camera=()"),
    );
    let status = resp.status().as_u16();
    telemetry::http_request(&route, method.as_str(), status, elapsed);
    let request_id = request_id.to_str().unwrap_or_default();
    let latency_ms = (elapsed.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let user_id = user.0.get().map(tracing::field::display);
    if status >= 500 {
        tracing::warn!(target: "access", request_id, %method, %route, status, latency_ms, user_id, "request failed");
    } else {
        tracing::info!(target: "access", request_id, %method, %route, status, latency_ms, user_id, "request");
    }
    resp
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::{get, post};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::http::ApiJson;

    #[derive(serde::Deserialize)]
    struct Input {
        #[allow(dead_code)]
        n: u32,
    }

    async fn boom() -> &'static str {
        panic!("boom")
    }

    fn app() -> Router {
        platform(
            Router::new()
                .route("/echo", post(|ApiJson(i): ApiJson<Input>| async move { i.n.to_string() }))
                .route("/boom", get(boom)),
        )
    }

    async fn call(req: Request<Body>) -> (StatusCode, Value) {
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status();
        assert!(resp.headers().contains_key("x-request-id"));
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    fn post_json(body: impl Into<Body>) -> Request<Body> {
        Request::post("/echo").header("content-type", "application/json").body(body.into()).unwrap()
    }

    #[tokio::test]
    async fn oversized_bodies_get_a_json_413() {
        let (status, body) = call(post_json(vec![b' '; MAX_BODY_BYTES + 1])).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body, json!({"detail": "Request body too large"}));
    }

    #[tokio::test]
    async fn large_body_routes_get_their_own_limit() {
        assert_eq!(body_limit("/api/v1/ml/datasets"), crate::ml::datasets::MAX_UPLOAD_BYTES);
        assert_eq!(body_limit("/api/v1/ml/models/x/predict"), crate::ml::routes::MAX_PREDICT_BODY_BYTES);
        assert_eq!(body_limit("/api/v1/ml/datasets/EURUSD/H1"), MAX_BODY_BYTES);
        assert_eq!(body_limit("/api/v1/trading/orders"), MAX_BODY_BYTES);
        let big = || {
            platform(
                Router::new()
                    .route("/api/v1/ml/datasets", post(|b: axum::body::Bytes| async move { b.len().to_string() })),
            )
        };
        // Above the default limit but within the route's: accepted, also without a Content-Length.
        let body = vec![b'x'; MAX_BODY_BYTES * 4];
        let req = Request::post("/api/v1/ml/datasets").body(Body::from(body)).unwrap();
        assert_eq!(big().oneshot(req).await.unwrap().status(), StatusCode::OK);
        let stream =
            futures::stream::iter(vec![Ok::<_, std::io::Error>(vec![b'x'; crate::ml::datasets::MAX_UPLOAD_BYTES + 1])]);
        let req = Request::post("/api/v1/ml/datasets").body(Body::from_stream(stream)).unwrap();
        let resp = big().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), json!({"detail": "Request body too large"}));
    }

    #[tokio::test]
    async fn bad_json_gets_the_framework_style_422() {
        let (status, body) = call(post_json("{nope")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["detail"][0]["type"], "json_invalid");
        assert_eq!(body["detail"][0]["loc"], json!(["body"]));
        let (status, body) = call(post_json(r#"{"n":"seven"}"#)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["detail"][0]["msg"].as_str().unwrap().contains("n"));
        let (status, _) = call(Request::post("/echo").body(Body::from(r#"{"n":1}"#)).unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "missing content type");
        let (status, _) = call(post_json(r#"{"n":1}"#)).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn panics_become_a_json_500_without_details() {
        let (status, body) = call(Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({"detail": "Internal server error"}));
    }

    #[tokio::test]
    async fn request_ids_are_echoed_only_when_sane() {
        let req = Request::get("/nope").header("x-request-id", "ok-1").body(Body::empty()).unwrap();
        assert_eq!(app().oneshot(req).await.unwrap().headers()["x-request-id"], "ok-1");
        let req =
            Request::get("/nope").header("x-request-id", "bad id\u{7f}").body(Body::empty()).unwrap_or_else(|_| {
                Request::get("/nope").header("x-request-id", "bad id;drop").body(Body::empty()).unwrap()
            });
        let id = app().oneshot(req).await.unwrap().headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "a fresh uuid replaces an unsafe id");
    }

    fn preflight(origin: &str) -> Request<Body> {
        Request::options("/echo")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,idempotency-key")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn listed_origins_get_cors_answers_and_others_none() {
        let resp = app().oneshot(preflight("http://localhost:3000")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["access-control-allow-credentials"], "true");
        let allowed = h["access-control-allow-headers"].to_str().unwrap();
        for name in ["authorization", "content-type", "idempotency-key"] {
            assert!(allowed.contains(name), "{allowed}");
        }
        assert!(h["access-control-allow-methods"].to_str().unwrap().contains("PUT"));

        // A preflight from elsewhere is a clear JSON 403, a malformed one a 400; neither allows anything.
        for (origin, status) in [
            ("http://evil.example", StatusCode::FORBIDDEN),
            ("null", StatusCode::FORBIDDEN),
            ("http://localhost:3000.evil.io", StatusCode::FORBIDDEN),
        ] {
            let (got, body) = call(preflight(origin)).await;
            assert_eq!((got, body["detail"].as_str()), (status, Some("Origin not allowed")), "{origin}");
        }
        let mut no_origin = preflight("x");
        no_origin.headers_mut().remove("origin");
        let resp = app().oneshot(no_origin).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(!resp.headers().contains_key("access-control-allow-origin"));

        // Actual requests: answered either way; only a listed origin may read, and it may read the cursor header.
        let req = |origin: &str| {
            Request::post("/echo")
                .header("origin", origin)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"n":1}"#))
                .unwrap()
        };
        let resp = app().oneshot(req("http://127.0.0.1:3000")).await.unwrap();
        assert_eq!(resp.headers()["access-control-allow-origin"], "http://127.0.0.1:3000");
        let exposed = resp.headers()["access-control-expose-headers"].to_str().unwrap();
        for name in ["x-next-cursor", "retry-after", "x-request-id"] {
            assert!(exposed.contains(name), "{exposed}");
        }
        assert!(resp.headers()["vary"].to_str().unwrap().to_ascii_lowercase().contains("origin"));
        let resp = app().oneshot(req("https://evil.example")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        // Errors (a panic's 500 here) carry the CORS headers too, so the page can show them.
        let boom = Request::get("/boom").header("origin", "http://localhost:3000").body(Body::empty()).unwrap();
        let resp = app().oneshot(boom).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()["access-control-allow-origin"], "http://localhost:3000");
    }

    #[tokio::test]
    async fn cors_origins_are_configurable() {
        let only = CorsSettings::parse("https://dash.example.com").unwrap();
        let app = platform_with(Router::new().route("/x", get(|| async { "x" })), &only);
        let pre = |origin: &str| {
            Request::options("/x")
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(app.clone().oneshot(pre("https://dash.example.com")).await.unwrap().status(), StatusCode::OK);
        assert_eq!(app.oneshot(pre("http://localhost:3000")).await.unwrap().status(), StatusCode::FORBIDDEN);
    }
}
