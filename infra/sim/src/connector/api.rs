//! The HTTP calls of the connector (contract §3.2.3 steps 1 and 3, §2.1, §2.6): log in, refresh, register,
//! find or create the broker connection — and the e-mail verification calls the demo set-up needs.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use thiserror::Error;

/// An HTTP call that did not give the expected answer.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The server could not be reached (or the call timed out).
    #[error("{method} {url}: {source}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an unexpected status.
    #[error("{method} {path}: HTTP {status}: {detail}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// Path under the server URL.
        path: String,
        /// Status code.
        status: u16,
        /// The `detail` of the error body (or the body itself).
        detail: String,
    },
    /// The body is not what the route returns.
    #[error("{method} {path}: unexpected answer: {problem}")]
    Body {
        /// HTTP method.
        method: &'static str,
        /// Path under the server URL.
        path: String,
        /// What is missing or wrong.
        problem: String,
    },
    /// The server URL cannot be used.
    #[error("invalid server URL {0:?}: expected http(s)://HOST[:PORT]")]
    BadUrl(String),
}

impl ApiError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth retrying later: the server is unreachable, overloaded (429, 5xx) or answered oddly.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport { .. } | ApiError::Body { .. } => true,
            ApiError::Status { status, .. } => *status == 429 || *status >= 500,
            ApiError::BadUrl(_) => false,
        }
    }
}

/// An access/refresh token pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Bearer token for HTTP and the WebSocket handshake.
    pub access: String,
    /// Token for `POST /auth/refresh`.
    pub refresh: String,
    /// The user, when the server said.
    pub user_id: Option<String>,
    /// When the access token expires (its `exp` claim), when readable.
    pub access_expires: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("user_id", &self.user_id)
            .field("access_expires", &self.access_expires)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// True when the access token expires within `margin` of `now` (false when its expiry is unknown).
    pub fn expires_within(&self, margin: TimeDelta, now: DateTime<Utc>) -> bool {
        self.access_expires.is_some_and(|exp| exp - now <= margin)
    }
}

/// The `exp` claim of a JWT, read without verifying the signature (the client only schedules its refresh).
pub fn token_expiry(jwt: &str) -> Option<DateTime<Utc>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    DateTime::from_timestamp(claims.get("exp")?.as_i64()?, 0)
}

/// A broker connection as listed by `GET /brokers/connections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConnection {
    /// Its id (the WebSocket's `connection_id`).
    pub id: String,
    /// Broker company.
    pub broker_name: String,
    /// MT5 login.
    pub account_number: Option<String>,
    /// MT5 server.
    pub server: Option<String>,
}

/// What `POST /auth/register` said.
#[derive(Debug)]
pub enum Registration {
    /// A new account, with a session.
    Created(Tokens),
    /// The e-mail is taken (400 "Email already registered"): log in instead.
    AlreadyRegistered,
}

/// The API client.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// A client of the server at `base` (`http(s)://HOST[:PORT]`, an optional path prefix kept) with a per-call
    /// timeout. Loopback servers are called directly, never through a proxy.
    pub fn new(base: &str, timeout: Duration) -> Result<Api, ApiError> {
        let base = base.trim().trim_end_matches('/').to_owned();
        let host = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| ApiError::BadUrl(base.clone()))?;
        if host.is_empty() {
            return Err(ApiError::BadUrl(base));
        }
        let mut builder = reqwest::Client::builder().timeout(timeout).user_agent("nusatrade-sim-connector");
        let hostname = host.split('/').next().unwrap_or_default();
        if ["127.", "localhost", "[::1]"].iter().any(|p| hostname.starts_with(p)) {
            builder = builder.no_proxy();
        }
        let http =
            builder.build().map_err(|source| ApiError::Transport { method: "INIT", url: base.clone(), source })?;
        Ok(Api { http, base })
    }

    /// The server URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), ApiError> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let transport = |source| ApiError::Transport { method, url: url.clone(), source };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    async fn expect(
        &self,
        method: &'static str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        ok: StatusCode,
    ) -> Result<Value, ApiError> {
        let (status, body) = self.call(method, path, bearer, body).await?;
        if status == ok {
            Ok(body)
        } else {
            Err(ApiError::Status { method, path: path.to_owned(), status: status.as_u16(), detail: detail(&body) })
        }
    }

    /// `POST /auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> Result<Tokens, ApiError> {
        let body = json!({"email": email, "password": password});
        let v = self.expect("POST", "/auth/login", None, Some(body), StatusCode::OK).await?;
        tokens(&v, "/auth/login")
    }

    /// `POST /auth/refresh` with the JSON body the original connector sends.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ApiError> {
        let body = json!({"refresh_token": refresh_token});
        let v = self.expect("POST", "/auth/refresh", None, Some(body), StatusCode::OK).await?;
        tokens(&v, "/auth/refresh")
    }

    /// `POST /auth/register`.
    pub async fn register(&self, email: &str, password: &str, full_name: &str) -> Result<Registration, ApiError> {
        let body = json!({"email": email, "password": password, "full_name": full_name});
        let (status, v) = self.call("POST", "/auth/register", None, Some(body)).await?;
        match status {
            StatusCode::CREATED => Ok(Registration::Created(tokens(&v, "/auth/register")?)),
            StatusCode::BAD_REQUEST if detail(&v) == "Email already registered" => Ok(Registration::AlreadyRegistered),
            s => Err(ApiError::Status {
                method: "POST",
                path: "/auth/register".into(),
                status: s.as_u16(),
                detail: detail(&v),
            }),
        }
    }

    /// `GET /auth/me`.
    pub async fn me(&self, access: &str) -> Result<Value, ApiError> {
        self.expect("GET", "/auth/me", Some(access), None, StatusCode::OK).await
    }

    /// `POST /auth/verify-email` with the mailed token.
    pub async fn verify_email(&self, token: &str) -> Result<(), ApiError> {
        self.expect("POST", "/auth/verify-email", None, Some(json!({"token": token})), StatusCode::OK).await.map(drop)
    }

    /// `POST /auth/verify-email/resend`.
    pub async fn resend_verification(&self, access: &str) -> Result<(), ApiError> {
        self.expect("POST", "/auth/verify-email/resend", Some(access), None, StatusCode::OK).await.map(drop)
    }

    /// `GET /brokers/connections`.
    pub async fn connections(&self, access: &str) -> Result<Vec<BrokerConnection>, ApiError> {
        let path = "/brokers/connections";
        let v = self.expect("GET", path, Some(access), None, StatusCode::OK).await?;
        let list = v.as_array().ok_or_else(|| body_error("GET", path, "not a JSON array"))?;
        list.iter().map(|c| connection(c).ok_or_else(|| body_error("GET", path, "a connection without id"))).collect()
    }

    /// `POST /brokers/connections` (201).
    pub async fn create_connection(
        &self,
        access: &str,
        broker_name: &str,
        account_number: &str,
        server: &str,
    ) -> Result<BrokerConnection, ApiError> {
        let path = "/brokers/connections";
        let body = json!({"broker_name": broker_name, "account_number": account_number, "server": server});
        let v = self.expect("POST", path, Some(access), Some(body), StatusCode::CREATED).await?;
        connection(&v).ok_or_else(|| body_error("POST", path, "no id"))
    }

    /// The original connector's step 3: the first connection whose `account_number` and `server` match, else a
    /// new one. Returns it and whether it was created.
    pub async fn find_or_create_connection(
        &self,
        access: &str,
        broker_name: &str,
        account_number: &str,
        server: &str,
    ) -> Result<(BrokerConnection, bool), ApiError> {
        let existing = self
            .connections(access)
            .await?
            .into_iter()
            .find(|c| c.account_number.as_deref() == Some(account_number) && c.server.as_deref() == Some(server));
        match existing {
            Some(c) => Ok((c, false)),
            None => Ok((self.create_connection(access, broker_name, account_number, server).await?, true)),
        }
    }
}

fn body_error(method: &'static str, path: &str, problem: &str) -> ApiError {
    ApiError::Body { method, path: path.to_owned(), problem: problem.to_owned() }
}

fn tokens(v: &Value, path: &str) -> Result<Tokens, ApiError> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
    let (Some(access), Some(refresh)) = (s("access_token"), s("refresh_token")) else {
        return Err(body_error("POST", path, "no access_token/refresh_token"));
    };
    let user_id = s("user_id").or_else(|| s("id"));
    let access_expires = token_expiry(&access);
    Ok(Tokens { access, refresh, user_id, access_expires })
}

fn connection(v: &Value) -> Option<BrokerConnection> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(BrokerConnection {
        id: s("id")?,
        broker_name: s("broker_name").unwrap_or_default(),
        account_number: s("account_number"),
        server: s("server"),
    })
}

/// The `detail` of an error body (a string, or the first message of a 422 list), else the body.
fn detail(body: &Value) -> String {
    match body.get("detail") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            items.iter().filter_map(|i| i.get("msg").and_then(Value::as_str)).collect::<Vec<_>>().join("; ")
        }
        Some(other) => other.to_string(),
        None => match body {
            Value::String(s) => s.chars().take(200).collect(),
            other => other.to_string().chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(exp: i64) -> String {
        let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.sig", enc(json!({"alg": "HS256"})), enc(json!({"sub": "u", "exp": exp, "type": "access"})))
    }

    #[test]
    fn token_expiry_is_read_from_the_claims() {
        let exp = 1_800_000_000;
        assert_eq!(token_expiry(&jwt(exp)), DateTime::from_timestamp(exp, 0));
        for junk in ["", "abc", "a.b.c", "a.e30.c"] {
            assert_eq!(token_expiry(junk), None, "{junk}");
        }
        let t = tokens(&json!({"access_token": jwt(exp), "refresh_token": "r", "user_id": "u1"}), "/x").expect("pair");
        let at = |s| DateTime::from_timestamp(s, 0).expect("time");
        assert!(!t.expires_within(TimeDelta::seconds(120), at(exp - 121)));
        assert!(t.expires_within(TimeDelta::seconds(120), at(exp - 120)));
        assert!(t.expires_within(TimeDelta::seconds(120), at(exp + 5)), "expired");
        assert!(!format!("{t:?}").contains("eyJ"), "Debug never prints a token: {t:?}");
        assert!(tokens(&json!({"access_token": "a"}), "/x").is_err());
    }

    #[test]
    fn error_details_and_urls() {
        assert_eq!(detail(&json!({"detail": "Email already registered"})), "Email already registered");
        assert_eq!(detail(&json!({"detail": [{"msg": "a"}, {"msg": "b"}]})), "a; b");
        assert_eq!(detail(&json!("plain")), "plain");
        assert!(Api::new("ftp://x", Duration::from_secs(1)).is_err());
        assert!(Api::new("http://", Duration::from_secs(1)).is_err());
        assert_eq!(
            Api::new("http://127.0.0.1:8000/", Duration::from_secs(1)).expect("api").base(),
            "http://127.0.0.1:8000"
        );
        let status = |s| ApiError::Status { method: "GET", path: "/".into(), status: s, detail: String::new() };
        assert!(status(503).is_transient() && status(429).is_transient());
        assert!(!status(401).is_transient() && !status(403).is_transient());
    }
}
