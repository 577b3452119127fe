//! [`BlobStore`] on S3. Keys are validated by [`BlobKey`] before they get here.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use bytes::{Bytes, BytesMut};
use nusatrade_app::ports::{BlobError, BlobInfo, BlobKey, BlobStore};

use crate::error::describe;

/// The S3 implementation of [`BlobStore`]: one bucket.
#[derive(Clone, Debug)]
pub struct S3Blobs {
    client: Client,
    bucket: String,
}

impl S3Blobs {
    /// Build the client with [`crate::config::s3_client`] (path-style addressing for emulators).
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3Blobs { client, bucket: bucket.into() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket (tests and emulator setups; production buckets come from the template).
    pub async fn create_bucket(client: &Client, bucket: &str) -> Result<(), BlobError> {
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| BlobError::Unavailable(describe("CreateBucket", &e)))?;
        Ok(())
    }
}

fn unavailable<E, R>(operation: &str, err: &SdkError<E, R>) -> BlobError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    BlobError::Unavailable(describe(operation, err))
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &BlobKey, data: Bytes, content_type: &str) -> Result<(), BlobError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| unavailable("PutObject", &e))?;
        Ok(())
    }

    async fn get(&self, key: &BlobKey, max_bytes: u64) -> Result<Option<Bytes>, BlobError> {
        let too_large = || BlobError::TooLarge { key: key.to_string(), limit: max_bytes };
        let out = match self.client.get_object().bucket(&self.bucket).key(key.as_str()).send().await {
            Ok(out) => out,
            Err(e) => {
                if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) || e.code() == Some("NoSuchKey") {
                    return Ok(None);
                }
                return Err(unavailable("GetObject", &e));
            }
        };
        // Refuse on the announced length before reading anything; dropping the body closes the stream.
        if out.content_length().is_some_and(|n| u64::try_from(n).unwrap_or(0) > max_bytes) {
            return Err(too_large());
        }
        let mut body = out.body;
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Unavailable(describe("GetObject body", &e)))?;
            if (buf.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(buf.freeze()))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        // S3 answers 204 for a missing key too.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| unavailable("DeleteObject", &e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, BlobError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix((!prefix.is_empty()).then(|| prefix.to_owned()))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable("ListObjectsV2", &e))?;
            for obj in page.contents() {
                let Some(name) = obj.key() else { continue };
                match BlobKey::new(name) {
                    Ok(key) => {
                        out.push(BlobInfo { key, size: obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0) })
                    }
                    // Written by something else than this platform: not addressable through the port.
                    Err(_) => {
                        tracing::warn!(bucket = %self.bucket, key = name, "skipping an object whose key is not a valid blob key")
                    }
                }
            }
        }
        // S3 lists in UTF-8 byte order already; keep the port's promise whatever the backend.
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
