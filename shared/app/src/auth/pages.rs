//! The pages behind the links the platform mails (`{NUSATRADE_PUBLIC_URL}/verify-email?token=…` and
//! `/reset-password?token=…`): small, accessible HTML pages (`shared/web/links`, compiled into the binary) that
//! complete the flow with `POST /api/v1/auth/verify-email` and `/reset-password`. The original dashboard has no
//! such pages. Served by the `auth` function in AWS (CloudFront routes the paths to the HTTP API) and by the local
//! gateway, with a strict Content-Security-Policy (same-origin script and style only, no inline code) and no
//! caching of a page that may have a token in its address.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Path of the e-mail verification page (the mailed link's path).
pub const VERIFY_EMAIL_PATH: &str = "/verify-email";
/// Path of the password reset page.
pub const RESET_PASSWORD_PATH: &str = "/reset-password";
/// The pages' shared script and style sheet.
pub const SCRIPT_PATH: &str = "/links/links.js";
pub const STYLE_PATH: &str = "/links/links.css";

const VERIFY_HTML: &str = include_str!("../../../web/links/verify-email.html");
const RESET_HTML: &str = include_str!("../../../web/links/reset-password.html");
const SCRIPT: &str = include_str!("../../../web/links/links.js");
const STYLE: &str = include_str!("../../../web/links/links.css");

/// Nothing but same-origin script, style and calls; no framing, no forms elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The four routes (no state, no authentication).
pub fn router() -> Router {
    Router::new()
        .route(VERIFY_EMAIL_PATH, get(|| async { page(VERIFY_HTML) }))
        .route(RESET_PASSWORD_PATH, get(|| async { page(RESET_HTML) }))
        .route(SCRIPT_PATH, get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route(STYLE_PATH, get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}

fn page(html: &'static str) -> Response {
    let mut r = html.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    // The address holds a one-time token until the page's script removes it: keep it out of caches and referrers.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn pages_and_assets_are_served_with_a_strict_policy() {
        for (path, kind, needle) in [
            ("/verify-email?token=abc", "text/html", "Verify"),
            ("/reset-password?token=abc", "text/html", "new-password"),
            (SCRIPT_PATH, "text/javascript", "/api/v1/auth/verify-email"),
            (STYLE_PATH, "text/css", "prefers-color-scheme"),
        ] {
            let resp = router().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let h = resp.headers().clone();
            assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind), "{path}");
            if kind == "text/html" {
                assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
                assert_eq!(h[header::CACHE_CONTROL], "no-store");
            }
            let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
            assert!(body.contains(needle), "{path}: {needle}");
        }
    }

    /// The policy forbids inline code: the pages must not carry any (it would be blocked in the browser).
    #[test]
    fn pages_hold_no_inline_script_or_style() {
        for html in [VERIFY_HTML, RESET_HTML] {
            assert!(!html.contains("<style"), "inline style block");
            assert!(!html.contains(" style="), "inline style attribute");
            for handler in ["onclick=", "onload=", "onerror=", "onsubmit=", "oninput=", "javascript:"] {
                assert!(!html.contains(handler), "inline handler {handler}");
            }
            for script in html.split("<script").skip(1) {
                let tag_end = script.find('>').unwrap();
                assert!(script[..tag_end].contains("src="), "inline script");
            }
            assert!(html.contains(SCRIPT_PATH) && html.contains(STYLE_PATH));
        }
    }
}
