//! Helpers shared by the adapters to turn SDK errors into port errors with a useful message.

use aws_smithy_types::error::display::DisplayErrorContext;
#[cfg(feature = "dynamodb")]
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The full error chain of an SDK error, prefixed by the operation that failed.
pub(crate) fn describe<E: std::error::Error>(operation: &str, err: &E) -> String {
    format!("{operation}: {}", DisplayErrorContext(err))
}

/// The service error code (`ThrottlingException`, ...), when the service answered.
#[cfg(feature = "dynamodb")]
pub(crate) fn code<E: ProvideErrorMetadata>(err: &E) -> Option<&str> {
    err.code()
}

/// True for the error codes AWS services use to say "slow down".
#[cfg(feature = "dynamodb")]
pub(crate) fn is_throttling(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "Throttling"
                | "ThrottledException"
                | "RequestLimitExceeded"
                | "RequestThrottled"
                | "TooManyRequestsException"
                | "LimitExceededException"
        )
    )
}
