//! The whole API's operations (every route group's `docs::operations()`), the OpenAPI document built from them
//! and the routes that serve it: `GET /api/v1/openapi.json` and the documentation page at `/docs` (Swagger UI,
//! vendored: no CDN at run time). In AWS the `health` function serves both.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::http::openapi::*;

/// The health group's operations (mounted twice, as the original did).
fn health_operations() -> Vec<Op> {
    let mut ops = Vec::new();
    for (prefix, secondary) in [("/api/v1", false), ("/api/v1/health", true)] {
        let path = |p: &str| -> &'static str { Box::leak(format!("{prefix}{p}").into_boxed_str()) };
        let mount = |op: Op| {
            if secondary {
                op.describe("The same route under the original's second mount of the health router.")
            } else {
                op
            }
        };
        ops.push(mount(
            Op::get(path("/health"), "health", "Liveness with version")
                .public()
                .ok(record(json!({"status": string(), "timestamp": datetime(), "version": string()}))),
        ));
        ops.push(mount(
            Op::get(path("/health/detailed"), "health", "Health of the store, with latency and uptime")
                .public()
                .ok(record(json!({"status": string(), "timestamp": datetime(), "uptime_seconds": integer(),
                    "components": {"type": "object"}}))),
        ));
        ops.push(mount(
            Op::get(path("/health/ready"), "health", "Readiness (503 when the store is unreachable)")
                .public()
                .ok(record(json!({"ready": boolean()}))),
        ));
        ops.push(mount(
            Op::get(path("/health/live"), "health", "Liveness").public().ok(record(json!({"alive": boolean()}))),
        ));
        ops.push(mount(Op::get(path("/info"), "health", "Name, version and environment").public().ok(object(
            json!({"name": string(), "version": string(), "environment": string(), "api_version": string()}),
            &["name", "version", "api_version"],
        ))));
    }
    ops.push(
        Op::get(OPENAPI_PATH, "meta", "This OpenAPI 3.1 document").public().ok(record(json!({"openapi": string()}))),
    );
    ops
}

/// Every operation of the API, grouped as the Lambda functions serve them.
pub fn operations() -> Vec<Op> {
    let mut ops = health_operations();
    ops.extend(crate::auth::docs::operations());
    ops.extend(crate::trading::docs::operations());
    ops.extend(crate::reconcile::docs::operations());
    ops.extend(crate::brokers::docs::operations());
    ops.extend(crate::ml::docs::operations());
    ops.extend(crate::backtest::docs::operations());
    ops.extend(crate::ai::docs::operations());
    ops.extend(crate::admin::docs::operations());
    ops
}

/// The OpenAPI document of [`operations`], built once.
pub fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| document(&operations()))
}

async fn openapi_json() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| openapi().to_string()).clone();
    let mut r = text.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}

/// `GET /api/v1/openapi.json` and the documentation page at `/docs` (public).
pub fn router() -> Router {
    let config = Config::new([OPENAPI_PATH]).try_it_out_enabled(true).persist_authorization(false);
    let ui: Router = SwaggerUi::new(DOCS_PATH).config(config).into();
    Router::new().route(OPENAPI_PATH, get(openapi_json)).merge(ui)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    /// `METHOD /path` of every `.route(...)` call in this crate's sources, with the prefix its router nests it
    /// under (`/api/v1`; the health routes also under `/api/v1/health`; the link pages and the docs at the root).
    fn mounted_in_sources() -> BTreeSet<String> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut files = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(root)];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let mut out = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            // Routes of test modules are not the API's.
            let text = text.split("#[cfg(test)]").next().unwrap();
            let name = f.to_string_lossy().into_owned();
            if name.ends_with("http/api.rs") || name.ends_with("http/layers.rs") {
                continue;
            }
            let prefixes: Vec<&str> = if name.ends_with("http/health.rs") {
                vec!["/api/v1", "/api/v1/health"]
            } else if text.contains(".nest(\"/api/v1\"") {
                vec!["/api/v1"]
            } else {
                vec![""]
            };
            for chunk in text.split(".route(").skip(1) {
                let Some(rest) = chunk.strip_prefix('"') else { continue };
                let path_end = rest.find('"').unwrap();
                let raw = &rest[..path_end];
                // the rest of the call, up to its closing parenthesis
                let mut depth = 1;
                let mut end = path_end;
                for (i, c) in rest.char_indices().skip(path_end) {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let call = &rest[path_end..end];
                let path = match raw {
                    "VERIFY_EMAIL_PATH" => "/verify-email",
                    p => p,
                };
                for method in ["get", "post", "put", "patch", "delete"] {
                    let called = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                        i == 0 || !call.as_bytes()[i - 1].is_ascii_alphanumeric() && call.as_bytes()[i - 1] != b'_'
                    });
                    if called {
                        for prefix in &prefixes {
                            out.insert(format!("{method} {prefix}{path}"));
                        }
                    }
                }
            }
        }
        out
    }

    fn described() -> BTreeSet<String> {
        operations().iter().map(|o| format!("{} {}", o.method, o.path)).collect()
    }

    /// A route the code mounts but the document does not describe fails here (and the reverse).
    #[test]
    fn every_mounted_route_is_described() {
        let mut mounted = mounted_in_sources();
        // Constants used as paths in `.route(...)` (link pages): described by their values.
        mounted.retain(|r| !r.contains("_PATH"));
        for p in [
            crate::auth::pages::VERIFY_EMAIL_PATH,
            crate::auth::pages::RESET_PASSWORD_PATH,
            crate::auth::pages::SCRIPT_PATH,
            crate::auth::pages::STYLE_PATH,
        ] {
            mounted.insert(format!("get {p}"));
        }
        mounted.insert(format!("get {OPENAPI_PATH}"));
        assert!(mounted.len() > 60, "the source scan found the routes: {mounted:?}");
        let described = described();
        let missing: Vec<_> = mounted.difference(&described).collect();
        assert!(missing.is_empty(), "mounted but not in the OpenAPI document: {missing:#?}");
        let extra: Vec<_> = described.difference(&mounted).collect();
        assert!(extra.is_empty(), "described but not mounted: {extra:#?}");
    }

    #[test]
    fn operations_are_unique_and_complete() {
        let ops = operations();
        let mut seen = BTreeSet::new();
        for op in &ops {
            assert!(seen.insert(format!("{} {}", op.method, op.path)), "{} {} twice", op.method, op.path);
            assert!(!op.summary.is_empty(), "{} {}: summary", op.method, op.path);
            assert!(!op.responses.is_empty(), "{} {}: a success response", op.method, op.path);
        }
    }

    /// The fields the original clients read stay in the schemas (a removal is a breaking change, README
    /// *Versioning*).
    #[test]
    fn fields_the_original_clients_read_stay_in_the_schemas() {
        let doc = openapi();
        for (op, fields) in CLIENT_FIELDS {
            let (method, path) = op.split_once(' ').unwrap();
            let responses = &doc["paths"][path][method]["responses"];
            assert!(responses.is_object(), "{op} is not in the document");
            let success = ["200", "201"].iter().find_map(|s| responses.get(*s)).unwrap_or_else(|| panic!("{op}"));
            let schema = &success["content"]["application/json"]["schema"];
            let props = properties(doc, schema);
            for f in *fields {
                assert!(props.contains(*f), "{op}: the original's clients read `{f}`; the schema lost it: {schema}");
            }
        }
    }

    /// Property names of an object schema, or of an array's items, through `$ref`s and `anyOf`/`allOf`.
    fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
        let schema = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
            None => schema,
        };
        let mut out: BTreeSet<String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(items) = schema.get("items") {
            out.extend(properties(doc, items));
        }
        for k in ["anyOf", "allOf", "oneOf"] {
            for s in schema.get(k).and_then(Value::as_array).into_iter().flatten() {
                out.extend(properties(doc, s));
            }
        }
        out
    }

    #[tokio::test]
    async fn the_document_and_the_docs_page_are_served() {
        let resp = router().oneshot(Request::get(OPENAPI_PATH).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let doc: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["info"]["description"].as_str().unwrap().contains("Deprecation"));
        let resp = router().oneshot(Request::get("/docs/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let page = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(page.contains("swagger"), "{page}");
        assert!(!page.contains("https://"), "no CDN: everything from /docs/");
        let js =
            router().oneshot(Request::get("/docs/swagger-ui-bundle.js").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(js.status(), StatusCode::OK, "the assets ship with the binary");
        let init = router().oneshot(Request::get("/docs/swagger-initializer.js").body(Body::empty()).unwrap()).await;
        let init = String::from_utf8(init.unwrap().into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(init.contains(OPENAPI_PATH), "{init}");
    }
}
