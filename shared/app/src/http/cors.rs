//! Cross-origin requests: which browser origins may call the API, with which headers, and what they may read.
//!
//! The original dashboard runs on its own origin (`http://localhost:3000` in development, its own site in
//! production) and calls the API with a bearer token, `Content-Type: application/json` and, for orders, an
//! `Idempotency-Key`: every such call is preceded by an `OPTIONS` preflight. Allowed origins come from
//! `NUSATRADE_CORS_ORIGINS` (comma-separated; default the dashboard's development origins; `none` turns CORS
//! off); in AWS the template passes its `CorsAllowedOrigins` parameter, and the HTTP API's `CorsConfiguration`
//! says the same. An origin not on the list gets no `Access-Control-Allow-Origin` (the browser then refuses to
//! hand the answer to the page), and its preflight a JSON 403.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;

/// The environment variable listing the allowed origins.
pub const CORS_ORIGINS_ENV: &str = "NUSATRADE_CORS_ORIGINS";
/// Allowed origins when the variable is unset: the original dashboard's development servers.
pub const DEFAULT_ORIGINS: &[&str] = &["http://localhost:3000", "http://127.0.0.1:3000"];
/// Request headers a page may send (besides the CORS-safelisted ones).
pub const ALLOWED_HEADERS: &[&str] = &["authorization", "content-type", "idempotency-key", "x-request-id"];
/// Response headers a page may read (besides the CORS-safelisted ones).
pub const EXPOSED_HEADERS: &[&str] = &[
    "x-next-cursor",
    "retry-after",
    "x-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "deprecation",
    "sunset",
    "link",
];
/// Methods the routes use.
pub const ALLOWED_METHODS: &[Method] =
    &[Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS];
/// How long a browser may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);
/// Most origins a list may hold (a guard against a pasted blob).
const MAX_ORIGINS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CorsConfigError {
    #[error("{CORS_ORIGINS_ENV}: {0:?} is not an origin (expected scheme://host[:port], http or https, no path)")]
    BadOrigin(String),
    #[error("{CORS_ORIGINS_ENV}: more than {MAX_ORIGINS} origins")]
    TooMany,
}

/// The allowed origins, each as a browser sends it in `Origin` (`scheme://host[:port]`, lower case).
#[derive(Clone, Debug, PartialEq)]
pub struct CorsSettings {
    origins: Vec<String>,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings { origins: DEFAULT_ORIGINS.iter().map(|s| (*s).to_owned()).collect() }
    }
}

impl CorsSettings {
    /// Reads [`CORS_ORIGINS_ENV`]: unset → the defaults; `none` or empty → no origin allowed.
    pub fn from_env() -> Result<Self, CorsConfigError> {
        match std::env::var(CORS_ORIGINS_ENV) {
            Ok(v) => Self::parse(&v),
            Err(_) => Ok(Self::default()),
        }
    }

    /// Parses a comma-separated list of origins; `none` or an empty string means none.
    pub fn parse(list: &str) -> Result<Self, CorsConfigError> {
        let list = list.trim();
        if list.is_empty() || list.eq_ignore_ascii_case("none") {
            return Ok(CorsSettings { origins: Vec::new() });
        }
        let mut origins = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let origin = normalise(raw).ok_or_else(|| CorsConfigError::BadOrigin(raw.to_owned()))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        if origins.len() > MAX_ORIGINS {
            return Err(CorsConfigError::TooMany);
        }
        Ok(CorsSettings { origins })
    }

    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// Whether a request's `Origin` is on the list (compared as browsers serialise origins).
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        origin.to_str().ok().and_then(normalise).is_some_and(|o| self.origins.contains(&o))
    }

    /// The tower-http layer answering preflights and adding the `Access-Control-*` headers for listed origins.
    pub fn layer(&self) -> CorsLayer {
        let allowed = self.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| allowed.allows(origin)))
            .allow_methods(ALLOWED_METHODS.to_vec())
            .allow_headers(ALLOWED_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect::<Vec<_>>())
            .expose_headers(EXPOSED_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect::<Vec<_>>())
            .allow_credentials(true)
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

/// `scheme://host[:port]` in lower case without a default port, or `None` when `s` is not such an origin.
fn normalise(s: &str) -> Option<String> {
    if s.len() > 253 + 16 {
        return None;
    }
    let lower = s.trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    // Host names and IPv4 addresses (an IPv6 literal origin is not supported).
    let (host, port) = match rest.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if host.is_empty() || !host.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')) {
        return None;
    }
    match port {
        None => Some(format!("{scheme}://{host}")),
        Some(p) if p == default_port => Some(format!("{scheme}://{host}")),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|n| *n > 0)?;
            Some(format!("{scheme}://{host}:{p}"))
        }
        Some(_) => None,
    }
}

/// A preflight from an origin that is not listed (or is not an origin at all) gets a JSON 403 that says so,
/// rather than a bare 200 without CORS headers. Runs outside [`CorsSettings::layer`], which would answer every preflight.
pub async fn refuse_foreign_preflight(settings: std::sync::Arc<CorsSettings>, req: Request, next: Next) -> Response {
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        match req.headers().get(header::ORIGIN) {
            Some(origin) if settings.allows(origin) => {}
            Some(_) => return ApiError::Forbidden("Origin not allowed".into()).into_response(),
            None => return ApiError::BadRequest("CORS preflight without an Origin header".into()).into_response(),
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_normalise() {
        let s = CorsSettings::parse(" https://App.Example.com/ , http://localhost:3000,https://x.io:443").unwrap();
        assert_eq!(s.origins(), ["https://app.example.com", "http://localhost:3000", "https://x.io"]);
        assert!(s.allows(&HeaderValue::from_static("https://app.example.com")));
        assert!(s.allows(&HeaderValue::from_static("http://localhost:3000")));
        assert!(!s.allows(&HeaderValue::from_static("http://localhost:3001")));
        assert!(!s.allows(&HeaderValue::from_static("https://localhost:3000")));
        assert!(!s.allows(&HeaderValue::from_static("null")));
        assert!(!s.allows(&HeaderValue::from_static("https://app.example.com.evil.io")));
        assert!(CorsSettings::parse("none").unwrap().origins().is_empty());
        assert!(CorsSettings::parse("").unwrap().origins().is_empty());
        assert_eq!(CorsSettings::default().origins(), DEFAULT_ORIGINS);
    }

    #[test]
    fn bad_origins_are_refused_with_their_text() {
        for bad in
            ["localhost:3000", "ftp://x.io", "https://", "https://a b", "https://x.io:99999", "https://x.io:", "*"]
        {
            assert_eq!(CorsSettings::parse(bad), Err(CorsConfigError::BadOrigin(bad.to_owned())), "{bad}");
        }
        let many = (0..65).map(|i| format!("http://h{i}.io")).collect::<Vec<_>>().join(",");
        assert_eq!(CorsSettings::parse(&many), Err(CorsConfigError::TooMany));
    }
}
