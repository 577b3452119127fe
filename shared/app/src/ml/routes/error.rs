//! The one mapping of the ML use cases' outcomes to HTTP: [`MlError`] → status and `{"detail": …}` body, and the
//! auto-trading knobs' [`SettingError`]s → the framework-style 422 entries at `body.config.<key>`.

use serde_json::Value;

use crate::http::{ApiError, FieldError};
use crate::ml::artefacts::ArtefactStoreError;
use crate::ml::auto::SettingError;
use crate::ml::datasets::DatasetError;
use crate::ml::error::MlError;
use crate::ports::BlobError;
use crate::trading::orders::TradingError;

fn blob_api_error(e: BlobError) -> ApiError {
    match e {
        BlobError::Unavailable(m) => ApiError::Unavailable(m),
        other => ApiError::Internal(other.to_string()),
    }
}

impl From<MlError> for ApiError {
    fn from(e: MlError) -> Self {
        match e {
            MlError::NotFound(m) => ApiError::NotFound(m),
            MlError::Refused(m) => ApiError::BadRequest(m),
            MlError::Conflict(m) => ApiError::Conflict(m),
            MlError::Busy(m) => ApiError::ServiceUnavailable(m),
            MlError::Dataset(d) => match d {
                DatasetError::Csv(c) => {
                    let mut loc = vec![Value::from("body")];
                    if let Some(line) = c.line() {
                        loc.push(Value::from("line"));
                        loc.push(Value::from(line));
                    }
                    ApiError::Unprocessable(vec![FieldError {
                        kind: "csv_invalid".into(),
                        loc,
                        msg: c.to_string(),
                        input: Value::Null,
                    }])
                }
                e @ DatasetError::TooManyBars { .. } => ApiError::Unprocessable(vec![FieldError::new(
                    "too_many_bars",
                    &["body"],
                    e.to_string(),
                    Value::Null,
                )]),
                e @ DatasetError::TooManyDatasets(_) => ApiError::BadRequest(e.to_string()),
                e @ DatasetError::Busy => ApiError::ServiceUnavailable(e.to_string()),
                DatasetError::Corrupt(m) => ApiError::Internal(format!("dataset: {m}")),
                DatasetError::Store(s) => s.into(),
                DatasetError::Blob(b) => blob_api_error(b),
            },
            MlError::Artefact(a) => match a {
                ArtefactStoreError::Blob(b) => blob_api_error(b),
                other => ApiError::Internal(format!("model artefact: {other}")),
            },
            MlError::Store(s) => s.into(),
            MlError::Blob(b) => blob_api_error(b),
            MlError::Queue(q) => ApiError::Unavailable(format!("ml-train queue: {q}")),
            MlError::Trading(TradingError::IdempotencyMismatch) => {
                ApiError::Conflict("This prediction was already executed with different parameters".into())
            }
            MlError::Trading(t) => t.into(),
        }
    }
}

impl From<SettingError> for FieldError {
    fn from(e: SettingError) -> Self {
        FieldError {
            kind: "value_error".into(),
            loc: vec!["body".into(), "config".into(), e.key.into()],
            msg: e.msg,
            input: e.input,
        }
    }
}
