//! HTTP: the error type, extractors, shared middleware and the routers. Each Lambda function serves
//! one router through `lambda_http`; the local gateway merges them all. A route is written once.

pub mod cors;
pub mod error;
pub mod extract;
pub(crate) mod fields;
pub mod health;
pub mod layers;
pub mod openapi;

pub use error::{ApiError, ApiResult, FieldError};
pub use extract::{ApiJson, ApiQuery, optional_object};
