//! The dashboard (issue 19): `shared/web/app` served by the gateway — `GET /` is its `index.html`, `GET /app/*` its
//! files (ES modules, style sheets, the icon). `HEAD` too (axum answers it from the `GET` route, without the body).
//!
//! The files are embedded with `rust-embed`: a release binary carries them (no `shared/` folder needed at run
//! time); a debug build reads them from disk on every request, so an edited page shows on reload without a rebuild.
//!
//! Caching: every answer is `Cache-Control: no-cache` with a strong `ETag` (the file's SHA-256), and a matching
//! `If-None-Match` gets `304 Not Modified` — the asset URLs carry no version, so a browser must revalidate, and a
//! revalidation costs one empty round trip. The pages get a strict Content-Security-Policy ([`CONTENT_SECURITY_POLICY`]:
//! same-origin script and style only, no inline code, calls to the same origin and its sockets). An unknown
//! `/app/...` path is the API's JSON 404. In AWS the same files are in the static-site bucket behind CloudFront
//! (README, "Dashboard").

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nusatrade_app::http::ApiError;
use rust_embed::RustEmbed;

/// The dashboard's files (`shared/web/app`).
#[derive(RustEmbed)]
#[folder = "../../shared/web/app/"]
pub struct Assets;

/// Where the files are served (`/app/lib/api.js` is `shared/web/app/lib/api.js`).
pub const ASSET_PREFIX: &str = "/app/";

/// Same-origin script, style, images and calls (plus the dashboard socket); no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET`/`HEAD /` and `/app/{*path}`.
pub fn router() -> Router {
    let index = get(|headers: HeaderMap| async move { serve("index.html", &headers) });
    let asset = get(|Path(path): Path<String>, headers: HeaderMap| async move { serve(&path, &headers) });
    Router::new()
        .route("/", index.fallback(method_not_allowed))
        .route("/app/{*path}", asset.fallback(method_not_allowed))
}

/// Anything but `GET`/`HEAD`: the API's JSON 405.
async fn method_not_allowed() -> Response {
    let mut r = ApiError::NotFound("Method Not Allowed".into()).into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

/// The names of every embedded file (relative to `shared/web/app`).
pub fn files() -> impl Iterator<Item = String> {
    Assets::iter().map(|p| p.into_owned())
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let file = if path.split('/').any(|seg| seg.is_empty() || seg == "." || seg == ".." || seg.contains('\\')) {
        None
    } else {
        Assets::get(path)
    };
    let Some(file) = file else {
        let mut r = ApiError::NotFound("Not Found".into()).into_response();
        secure(r.headers_mut());
        return r;
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!("\"{}\"", hash[..16].iter().map(|b| format!("{b:02x}")).collect::<String>());
    let etag = HeaderValue::from_str(&etag).expect("hex is a valid header value");
    let fresh = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t.as_bytes() == etag.as_bytes())
    });
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = file.data.into_owned().into_response();
        let mime = file.metadata.mimetype();
        let content_type = match mime {
            // Text types in UTF-8, said so (the files are UTF-8).
            m if m.starts_with("text/") || m == "application/javascript" || m == "image/svg+xml" => {
                let m = if m == "application/javascript" { "text/javascript" } else { m };
                format!("{m}; charset=utf-8")
            }
            m => m.to_owned(),
        };
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
        );
        r
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(h);
    r
}

fn secure(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, etag: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        router().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn index_assets_revalidation_and_unknown_paths() {
        let r = get("/", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(get("/", Some(&etag)).await.status(), StatusCode::NOT_MODIFIED);
        let js = get("/app/app.js", None).await;
        assert_eq!(js.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(get("/app/app.css", None).await.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        for bad in ["/app/nope.js", "/app/../Cargo.toml", "/app/lib//api.js", "/app/%2e%2e/Cargo.toml"] {
            let r = get(bad, None).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json", "{bad}");
        }
        assert!(files().any(|f| f == "index.html"));
        let post = router().oneshot(Request::post("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[header::CONTENT_TYPE], "application/json");
    }
}
