//! The blob store port (S3 in AWS, files locally). Keys are validated here, once, so that no adapter
//! can be handed a path-like key (`..`, absolute paths, odd characters): audit GAP #1.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

/// Longest key accepted (S3 allows 1024 bytes).
pub const MAX_BLOB_KEY_LEN: usize = 512;

/// A validated blob key: `/`-separated segments of `[A-Za-z0-9._=-]`, no empty, `.` or `..` segment,
/// no leading or trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    pub fn new(key: impl Into<String>) -> Result<Self, BlobError> {
        let key = key.into();
        if key.is_empty() || key.len() > MAX_BLOB_KEY_LEN {
            return Err(BlobError::InvalidKey(key));
        }
        let ok = key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'='))
        });
        if ok { Ok(BlobKey(key)) } else { Err(BlobError::InvalidKey(key)) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A listed blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub key: BlobKey,
    pub size: u64,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum BlobError {
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    #[error("blob {key} is larger than the {limit} bytes allowed")]
    TooLarge { key: String, limit: u64 },
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Writes (or replaces) a blob.
    async fn put(&self, key: &BlobKey, data: Bytes, content_type: &str) -> Result<(), BlobError>;
    /// Reads a blob, refusing one larger than `max_bytes`. `None` when it does not exist.
    async fn get(&self, key: &BlobKey, max_bytes: u64) -> Result<Option<Bytes>, BlobError>;
    /// Deletes a blob; deleting a missing blob is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;
    /// Lists the blobs whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, BlobError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "/abs", "a/../b", "..", "a//b", "a/", "a\\b", "a b", "models/%2e%2e", "./x"] {
            assert!(BlobKey::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["models/u/m/v1/model.json", "backups/2026-11-22T00=00/seg-0001.jsonl.gz", "a"] {
            assert!(BlobKey::new(good).is_ok(), "{good:?} refused");
        }
        assert!(BlobKey::new("a".repeat(MAX_BLOB_KEY_LEN + 1)).is_err());
    }
}
