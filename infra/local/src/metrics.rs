//! Prometheus text at `/metrics` on the local gateway (or on its own address, `--metrics-addr`): the platform's
//! instrumentation ([`nusatrade_app::telemetry`]) through a `metrics-exporter-prometheus` recorder. Off with
//! `NUSATRADE_METRICS=false`. Operators' data only: counts and timings by route template, outcome, kind,
//! channel and queue — never a user, an e-mail or an order id.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The path of the Prometheus endpoint.
pub const PATH: &str = "/metrics";

/// Histogram buckets of every `*_seconds` metric: 0.5 ms to 30 s.
const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle).
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("a metrics recorder is already installed: {e}"))?;
    nusatrade_app::telemetry::describe();
    let _ = HANDLE.set(handle.clone());
    Ok(handle)
}

/// `GET /metrics`: the exposition text (format 0.0.4).
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(PATH, get(move || render(handle.clone())))
}

async fn render(handle: PrometheusHandle) -> Response {
    // Histograms' buckets only grow; run the exporter's upkeep (idle-metric expiry, summary rollover) here.
    handle.run_upkeep();
    let mut r = handle.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
