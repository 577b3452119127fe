//! Health routes (contract §2.3), mounted at `/api/v1` and, as the original did, again under
//! `/api/v1/health`. Fixed: `ready` answers 503 when the store is unreachable (the original answered
//! 200 with a serialised tuple).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::ports::{Clock, ItemStore, Key};

/// The API version string reported by health and info.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone)]
pub struct HealthState {
    pub store: Arc<dyn ItemStore>,
    pub clock: Arc<dyn Clock>,
    pub started: Instant,
    pub environment: String,
}

pub use crate::wire::naive_iso;

pub fn router(state: HealthState) -> Router {
    let routes = Router::new()
        .route("/health", get(health))
        .route("/health/detailed", get(detailed))
        .route("/health/ready", get(ready))
        .route("/health/live", get(live))
        .route("/info", get(info));
    Router::new().nest("/api/v1", routes.clone()).nest("/api/v1/health", routes).with_state(state)
}

async fn health(State(s): State<HealthState>) -> Response {
    Json(json!({ "status": "healthy", "timestamp": naive_iso(s.clock.now()), "version": API_VERSION })).into_response()
}

async fn live() -> Response {
    Json(json!({ "alive": true })).into_response()
}

/// Reads a key that never exists: a round trip to the store.
async fn ping_store(s: &HealthState) -> Result<f64, String> {
    let t = Instant::now();
    match s.store.get(&Key::new("HEALTH", "PING")).await {
        Ok(_) => Ok(t.elapsed().as_secs_f64() * 1000.0),
        Err(e) => Err(e.to_string()),
    }
}

async fn ready(State(s): State<HealthState>) -> Response {
    match ping_store(&s).await {
        Ok(_) => Json(json!({ "ready": true })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false }))).into_response()
        }
    }
}

async fn detailed(State(s): State<HealthState>) -> Response {
    let (status, database) = match ping_store(&s).await {
        Ok(ms) => ("healthy", json!({ "status": "healthy", "latency_ms": (ms * 100.0).round() / 100.0 })),
        Err(e) => ("degraded", json!({ "status": "unhealthy", "error": e })),
    };
    Json(json!({
        "status": status,
        "timestamp": naive_iso(s.clock.now()),
        "uptime_seconds": s.started.elapsed().as_secs(),
        "components": { "database": database },
    }))
    .into_response()
}

async fn info(State(s): State<HealthState>) -> Response {
    Json(json!({
        "name": "NusaTrade",
        "version": API_VERSION,
        "environment": s.environment,
        "api_version": "v1",
    }))
    .into_response()
}
