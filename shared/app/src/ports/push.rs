//! The WebSocket push port (API Gateway Management API `PostToConnection` in AWS, the local gateway's
//! sockets locally). A connection that has gone away is a distinct, expected outcome, not an error:
//! the caller removes its connection record and stops sending.

use async_trait::async_trait;
use bytes::Bytes;

/// API Gateway's largest WebSocket message (128 KB).
pub const MAX_PUSH_BYTES: usize = 128 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The connection no longer exists (HTTP 410 from API Gateway).
    Gone,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum PushError {
    #[error("invalid push: {0}")]
    Invalid(String),
    #[error("push unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Push: Send + Sync + 'static {
    /// Sends one text message to a connection.
    async fn post(&self, connection_id: &str, data: Bytes) -> Result<PushOutcome, PushError>;
    /// Closes a connection from the server side. Closing a gone connection is not an error.
    async fn close(&self, connection_id: &str) -> Result<(), PushError>;
}

/// Checks shared by the adapters.
pub fn validate_post(connection_id: &str, data: &[u8]) -> Result<(), PushError> {
    if connection_id.is_empty() || connection_id.len() > 128 || !connection_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(PushError::Invalid(format!("bad connection id {connection_id:?}")));
    }
    if data.len() > MAX_PUSH_BYTES {
        return Err(PushError::Invalid(format!("message of {} bytes exceeds {MAX_PUSH_BYTES}", data.len())));
    }
    Ok(())
}
