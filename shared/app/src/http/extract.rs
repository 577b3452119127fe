//! Extractors whose rejections keep the original's error shapes (422 list for bad JSON, `detail`
//! strings elsewhere), so no handler ever answers a framework-default text body.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

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
    ApiError::Unprocessable(vec![FieldError::new(kind, &["body"], msg, Value::Null)])
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
    ApiError::Unprocessable(vec![FieldError::new("value_error", &["query"], rej.body_text(), Value::Null)])
}

/// A JSON object body that may be absent: an empty (or all-whitespace) body is an empty object, as for the
/// original's optional request models. Anything but an object is the same 422 list as [`ApiJson`].
pub fn optional_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let (kind, msg) = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => return Ok(m),
        Ok(_) => ("model_attributes_type", "Input should be a valid dictionary".to_owned()),
        Err(e) => ("json_invalid", format!("JSON decode error: {e}")),
    };
    Err(ApiError::Unprocessable(vec![FieldError::new(kind, &["body"], msg, Value::Null)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_body_is_an_object_or_empty_and_anything_else_is_a_422_list() {
        assert!(optional_object(b"").unwrap().is_empty());
        assert!(optional_object(b" \n\t").unwrap().is_empty());
        assert_eq!(optional_object(br#"{"a":1}"#).unwrap()["a"], 1);
        for (body, kind) in
            [(&b"[1]"[..], "model_attributes_type"), (b"null", "model_attributes_type"), (b"{", "json_invalid")]
        {
            match optional_object(body) {
                Err(ApiError::Unprocessable(errors)) => {
                    assert_eq!(errors.len(), 1);
                    assert_eq!(serde_json::to_value(&errors[0]).unwrap()["type"], kind, "{body:?}");
                }
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }
}
