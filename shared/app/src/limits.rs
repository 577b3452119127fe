//! Request body limits of the whole API, in one table: the platform's default and the few routes that accept
//! more (CSV uploads, predictions with candles). The HTTP layer enforces them before routing; the features that
//! read such bodies size their parsers from the same numbers.

/// Largest request body any route accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest CSV upload (bytes): the Lambda request payload limit (6 MB) leaves room for base64 encoding.
pub const MAX_UPLOAD_BYTES: usize = 4 << 20;
/// Largest body of `POST /ml/models/{id}/predict` (candles in the request).
pub const MAX_PREDICT_BODY_BYTES: usize = 1 << 20;

/// Routes accepting more than [`MAX_BODY_BYTES`]: `(path prefix, path suffix, limit)` — a path matches when it
/// starts with the prefix and ends with the suffix.
pub const LARGE_BODY_ROUTES: &[(&str, &str, usize)] = &[
    ("/api/v1/ml/datasets", "/api/v1/ml/datasets", MAX_UPLOAD_BYTES),
    ("/api/v1/ml/models/", "/predict", MAX_PREDICT_BODY_BYTES),
];

/// The body limit of a request path.
pub fn body_limit(path: &str) -> usize {
    LARGE_BODY_ROUTES
        .iter()
        .find(|(prefix, suffix, _)| path.starts_with(prefix) && path.ends_with(suffix))
        .map_or(MAX_BODY_BYTES, |(_, _, limit)| *limit)
}
