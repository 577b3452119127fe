//! Blob store contract cases.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::unique;
use crate::ports::*;

/// Builds a fresh, empty blob store (its own bucket or directory).
#[async_trait]
pub trait BlobFactory: Sync {
    async fn blobs(&self) -> Arc<dyn BlobStore>;
}

pub async fn put_get_delete(f: &impl BlobFactory) {
    let b = f.blobs().await;
    let key = BlobKey::new(format!("models/{}/v1/model.json", unique("u"))).unwrap();
    assert_eq!(b.get(&key, 1024).await.unwrap(), None);
    b.put(&key, Bytes::from_static(b"{\"a\":1}"), "application/json").await.unwrap();
    assert_eq!(b.get(&key, 1024).await.unwrap(), Some(Bytes::from_static(b"{\"a\":1}")));
    b.put(&key, Bytes::from_static(b"v2"), "application/octet-stream").await.unwrap();
    assert_eq!(b.get(&key, 1024).await.unwrap(), Some(Bytes::from_static(b"v2")), "put replaces");
    b.delete(&key).await.unwrap();
    assert_eq!(b.get(&key, 1024).await.unwrap(), None);
    b.delete(&key).await.unwrap();
}

pub async fn get_refuses_oversize(f: &impl BlobFactory) {
    let b = f.blobs().await;
    let key = BlobKey::new(format!("datasets/{}.csv.gz", unique("d"))).unwrap();
    let data = Bytes::from(vec![7u8; 4096]);
    b.put(&key, data.clone(), "application/gzip").await.unwrap();
    assert!(matches!(b.get(&key, 4095).await, Err(BlobError::TooLarge { .. })));
    assert_eq!(b.get(&key, 4096).await.unwrap(), Some(data));
}

pub async fn list_by_prefix(f: &impl BlobFactory) {
    let b = f.blobs().await;
    let root = unique("backups/b");
    for name in ["seg-0002.jsonl.gz", "seg-0001.jsonl.gz", "manifest.json"] {
        let key = BlobKey::new(format!("{root}/{name}")).unwrap();
        b.put(&key, Bytes::from(name.as_bytes().to_vec()), "application/octet-stream").await.unwrap();
    }
    b.put(&BlobKey::new(format!("{root}x/other")).unwrap(), Bytes::from_static(b"o"), "text/plain").await.unwrap();
    let listed = b.list(&format!("{root}/")).await.unwrap();
    let names: Vec<_> = listed.iter().map(|i| i.key.as_str().rsplit('/').next().unwrap().to_owned()).collect();
    assert_eq!(names, ["manifest.json", "seg-0001.jsonl.gz", "seg-0002.jsonl.gz"]);
    assert_eq!(listed[0].size, "manifest.json".len() as u64);
    assert!(b.list(&unique("nothing/")).await.unwrap().is_empty());
}
