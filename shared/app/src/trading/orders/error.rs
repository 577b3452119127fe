//! Why an order use case refused or failed: what happened, in the order's terms. The HTTP status and body are the
//! routes' to choose (`routes::From<TradingError> for ApiError`).

use nusatrade_domain::money::Currency;
use nusatrade_domain::order::Refused;
use rust_decimal::Decimal;

use crate::ports::StoreError;

/// Why an order use case refused or failed. Mapped to HTTP once, by the order routes.
#[derive(Debug, thiserror::Error)]
pub enum TradingError {
    #[error("{0}")]
    Invalid(String),
    #[error("Please verify your e-mail address before trading")]
    NotVerified,
    #[error("Order not found")]
    NotFound,
    #[error("{0}")]
    Refused(Refused),
    #[error("Maximum {0} open positions reached")]
    LimitReached(u32),
    #[error("Insufficient free margin: {required} {currency} required, {free} {currency} free")]
    InsufficientMargin { required: Decimal, free: Decimal, currency: Currency },
    #[error("MT5 connector is not online. Please ensure the connector is running.")]
    ConnectorOffline,
    #[error("Failed to execute trade on MT5: {0}")]
    NotSent(String),
    #[error("This Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    #[error("A request with this Idempotency-Key is still being processed")]
    IdempotencyInFlight,
    #[error("The order store is busy, please retry")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type TradingResult<T> = Result<T, TradingError>;
