//! HTTP errors: one enum, mapped to a status and the original's body shape (`{"detail": ...}`) once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::ports::StoreError;

/// One entry of a 422 body, in the framework style the dashboard knows
/// (`{"detail":[{"type","loc","msg","input"}]}`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: String,
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    pub input: serde_json::Value,
}

impl FieldError {
    pub fn new(kind: &str, loc: &[&str], msg: impl Into<String>, input: serde_json::Value) -> Self {
        FieldError {
            kind: kind.to_owned(),
            loc: loc.iter().map(|s| serde_json::Value::from(*s)).collect(),
            msg: msg.into(),
            input,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("validation failed")]
    Unprocessable(Vec<FieldError>),
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after: u64 },
    #[error("payload too large")]
    PayloadTooLarge,
    /// A dependency failed: logged, the client sees only "Service temporarily unavailable".
    #[error("{0}")]
    Unavailable(String),
    /// 503 whose message is meant for the client (e.g. "MT5 connector is not online").
    #[error("{0}")]
    ServiceUnavailable(String),
    /// Logged in full; the client sees only "Internal server error".
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) | ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Unprocessable(errors) => json!({ "detail": errors }),
            ApiError::TooManyRequests { detail, retry_after } => {
                json!({ "detail": detail, "retry_after": retry_after })
            }
            ApiError::PayloadTooLarge => json!({ "detail": "Request body too large" }),
            ApiError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                json!({ "detail": "Internal server error" })
            }
            ApiError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "dependency unavailable");
                json!({ "detail": "Service temporarily unavailable" })
            }
            other => json!({ "detail": other.to_string() }),
        };
        let mut resp = (status, Json(body)).into_response();
        match &self {
            ApiError::TooManyRequests { retry_after, .. } => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::Unauthorized(_) => {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) | ApiError::ServiceUnavailable(_) => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor => ApiError::BadRequest("Invalid pagination cursor".into()),
            StoreError::Throttled => ApiError::Unavailable("store throttled".into()),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            // Conditions and validation failures reaching the edge unmapped are bugs in a use case.
            other => ApiError::Internal(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
