//! Extractors whose rejections keep the original's error shapes (422 list for bad JSON, `detail`
//! strings elsewhere), so no handler ever answers a framework-default text body.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};

/// `axum::Json` with 422 `{"detail":[...]}` on malformed or mistyped bodies and 413 on oversize.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    let status = rej.status();
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    let (kind, msg) = match &rej {
        JsonRejection::JsonDataError(e) => ("value_error", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ("json_invalid", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => {
            ("model_attributes_type", "Expected a JSON body (Content-Type: application/json)".to_owned())
        }
        other => ("value_error", other.body_text()),
    };
    ApiError::Unprocessable(vec![FieldError::new(kind, &["body"], msg, serde_json::Value::Null)])
}

/// `axum::extract::Query` with 422 `{"detail":[...]}` on bad query strings.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(query_rejection(rej)),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> ApiError {
    ApiError::Unprocessable(vec![FieldError::new("value_error", &["query"], rej.body_text(), serde_json::Value::Null)])
}
