//! The platform's metrics ([`nusatrade_app::telemetry`]) in Lambda: CloudWatch Embedded Metric Format lines on
//! stdout, which CloudWatch Logs turns into metrics of namespace [`NAMESPACE`] with no PutMetricData call. The
//! collector (`metrics_cloudwatch_embedded`) is installed by [`crate::runtime::init`]; every entry point flushes it
//! once its invocation is answered ([`flush`], [`layer`] for the HTTP functions), so one invocation's counts land
//! in one line. Labels become dimensions; metrics without labels (the alarmed `order_ack_timeouts_total`,
//! `order_commands_sent_total`, `reconcile_conflicts_total`) have none.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use metrics_cloudwatch_embedded::Collector;
pub use nusatrade_app::telemetry::NAMESPACE;

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Installs the EMF collector as the process's recorder (once; `false` when another recorder was installed
/// first, e.g. in a test process).
pub fn install(function: &str) -> bool {
    if COLLECTOR.get().is_some() {
        return true;
    }
    match metrics_cloudwatch_embedded::Builder::new().cloudwatch_namespace(NAMESPACE).init() {
        Ok(c) => {
            c.set_property("function", function.to_owned());
            let _ = COLLECTOR.set(c);
            nusatrade_app::telemetry::describe();
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the EMF collector is not installed");
            false
        }
    }
}

/// Writes what was measured since the last flush as EMF lines to `out`.
pub fn flush_to(out: impl std::io::Write) {
    if let Some(c) = COLLECTOR.get()
        && let Err(e) = c.flush(out)
    {
        tracing::warn!(error = %e, "metrics: EMF flush failed");
    }
}

/// Writes what was measured since the last flush to stdout (CloudWatch Logs).
pub fn flush() {
    flush_to(std::io::stdout().lock());
}

/// Axum middleware for the HTTP functions: flushes once the response is ready (`lambda_http` answers right after).
pub async fn layer(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    flush();
    resp
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// A captured log line: the EMF document CloudWatch reads (namespace, metric definitions, values; labels as
    /// dimensions, label-less metrics with an empty dimension set).
    #[test]
    fn measurements_become_an_emf_line() {
        assert!(install("test-fn"), "the EMF collector is this test process's recorder");
        nusatrade_app::telemetry::order_ack_timeout();
        nusatrade_app::telemetry::order_ack_timeout();
        nusatrade_app::telemetry::order_placed("sent");
        nusatrade_app::telemetry::http_request(
            "/api/v1/trading/orders",
            "POST",
            201,
            std::time::Duration::from_millis(3),
        );
        let mut out = Vec::new();
        flush_to(&mut out);
        let text = String::from_utf8(out).unwrap();
        let docs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(!docs.is_empty(), "{text}");
        let find = |name: &str| {
            docs.iter().find(|d| d.get(name).is_some()).unwrap_or_else(|| panic!("{name} in {text}")).clone()
        };
        let timeouts = find("order_ack_timeouts_total");
        assert_eq!(timeouts["order_ack_timeouts_total"], 2);
        let meta = &timeouts["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Namespace"], NAMESPACE);
        assert_eq!(meta["Dimensions"], serde_json::json!([[]]), "alarmed metrics have no dimensions");
        assert!(timeouts["_aws"]["Timestamp"].is_u64());
        let placed = find("orders_total");
        assert_eq!((&placed["orders_total"], &placed["outcome"]), (&serde_json::json!(1), &serde_json::json!("sent")));
        let http = find("http_requests_total");
        assert_eq!(http["route"], "/api/v1/trading/orders");
        assert_eq!(http["status"], "201");
        assert_eq!(
            find("http_request_duration_seconds")["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Seconds"
        );
        // A second flush starts from zero.
        let mut again = Vec::new();
        flush_to(&mut again);
        let again = String::from_utf8(again).unwrap();
        assert!(
            again.lines().all(|l| serde_json::from_str::<Value>(l).unwrap()["order_ack_timeouts_total"] != 2),
            "{again}"
        );
    }

    /// The template's alarms on the platform's own metrics name metrics the code writes.
    #[test]
    fn alarmed_metrics_exist() {
        let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
        let ours: Vec<&str> = template
            .lines()
            .filter_map(|l| l.trim().strip_prefix("MetricName: "))
            .filter(|m| m.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        assert!(ours.len() >= 3, "{ours:?}");
        for m in ours {
            assert!(nusatrade_app::telemetry::ALL.contains(&m), "alarm on {m}, which no code writes");
        }
    }
}
