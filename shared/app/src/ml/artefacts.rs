//! Model artefacts in the blob store, and the per-process model cache.
//!
//! An artefact is `nusatrade_ml`'s self-describing, checksummed JSON document, gzip-compressed, at
//! `models/{user uuid | system}/{model uuid}/v{n}/model.json.gz` — a key built from the owner's and the model's
//! UUIDs and the version number only ([`artefact_key`]). Writes and reads are size-limited
//! ([`MAX_ARTEFACT_BYTES`], on the stored bytes and on the decompressed document). A load verifies the document's
//! own checksum (any changed byte is refused) **and** that it is the checksum the model record says was written,
//! so an artefact swapped for another valid one is refused too.
//!
//! [`ModelCache`] keeps decoded models per warm process, keyed by model id + version + checksum, bounded
//! (least recently used out): a retrained model has a new version, so it is never served stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use nusatrade_ml::artefact::{self, Encoding};
use nusatrade_ml::{Artefact, ArtefactError};
use uuid::Uuid;

use super::store::{ArtefactLocation, Owner, artefact_key, artefact_prefix};
use crate::ports::{BlobError, BlobStore};

/// Largest artefact written or read (stored and decompressed): a 1,000-tree forest stays well below.
pub const MAX_ARTEFACT_BYTES: usize = 48 << 20;
/// Models kept decoded per process unless `NUSATRADE_ML_CACHE_MODELS` says otherwise.
pub const DEFAULT_CACHE_MODELS: usize = 16;

/// Why an artefact could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtefactStoreError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Artefact(#[from] ArtefactError),
    /// The record names an artefact that is not there.
    #[error("model artefact {0} is missing")]
    Missing(String),
    /// The artefact is valid but not the one the record says was written.
    #[error("model artefact {key} has checksum {found}, the model record expects {expected}")]
    Replaced { key: String, expected: String, found: String },
}

/// The owner segment of an artefact location for a user's model.
pub fn owner_of(location: &ArtefactLocation, user: Uuid) -> Owner {
    if location.system { Owner::System } else { Owner::User(user) }
}

/// Encodes and writes an artefact; returns `(checksum, stored size)`.
pub async fn write(
    blobs: &dyn BlobStore,
    owner: Owner,
    model: Uuid,
    version: u32,
    artefact: &Artefact,
) -> Result<(String, u64), ArtefactStoreError> {
    let (bytes, checksum) = artefact::encode(artefact, Encoding::Gzip, MAX_ARTEFACT_BYTES)?;
    let size = bytes.len() as u64;
    blobs.put(&artefact_key(owner, model, version)?, Bytes::from(bytes), "application/gzip").await?;
    Ok((checksum, size))
}

/// Reads, size-checks, decodes and verifies an artefact against the expected checksum.
pub async fn read(
    blobs: &dyn BlobStore,
    owner: Owner,
    location: &ArtefactLocation,
    expected_checksum: &str,
) -> Result<Artefact, ArtefactStoreError> {
    let key = artefact_key(owner, location.model_id, location.version)?;
    let bytes = blobs
        .get(&key, MAX_ARTEFACT_BYTES as u64)
        .await?
        .ok_or_else(|| ArtefactStoreError::Missing(key.to_string()))?;
    // Decoding a large forest takes milliseconds: off the request threads.
    let decoded = tokio::task::spawn_blocking(move || artefact::decode(&bytes, MAX_ARTEFACT_BYTES))
        .await
        .map_err(|e| ArtefactError::Malformed(format!("decoder task failed: {e}")))??;
    if decoded.checksum != expected_checksum {
        return Err(ArtefactStoreError::Replaced {
            key: key.to_string(),
            expected: expected_checksum.to_owned(),
            found: decoded.checksum,
        });
    }
    Ok(decoded.artefact)
}

/// Deletes every artefact of one model (all versions).
pub async fn delete_all(blobs: &dyn BlobStore, owner: Owner, model: Uuid) -> Result<usize, BlobError> {
    let listed = blobs.list(&artefact_prefix(owner, model)).await?;
    for b in &listed {
        blobs.delete(&b.key).await?;
    }
    Ok(listed.len())
}

/// Decoded models per warm process.
#[derive(Clone)]
pub struct ModelCache {
    inner: Arc<Mutex<CacheInner>>,
    capacity: usize,
}

#[derive(Default)]
struct CacheInner {
    tick: u64,
    entries: HashMap<CacheKey, (u64, Arc<Artefact>)>,
    hits: u64,
    misses: u64,
}

/// Model id + version + checksum.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub model_id: Uuid,
    pub system: bool,
    pub version: u32,
    pub checksum: String,
}

impl ModelCache {
    /// A cache of at most `capacity` models (at least 1).
    pub fn new(capacity: usize) -> Self {
        ModelCache { inner: Arc::new(Mutex::new(CacheInner::default())), capacity: capacity.max(1) }
    }

    /// `NUSATRADE_ML_CACHE_MODELS` (1–1,000), else [`DEFAULT_CACHE_MODELS`].
    pub fn from_env() -> Self {
        let n = std::env::var("NUSATRADE_ML_CACHE_MODELS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| (1..=1000).contains(n))
            .unwrap_or(DEFAULT_CACHE_MODELS);
        Self::new(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cached model.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Artefact>> {
        let mut c = self.lock();
        c.tick += 1;
        let tick = c.tick;
        let found = c.entries.get_mut(key).map(|e| {
            e.0 = tick;
            e.1.clone()
        });
        if found.is_some() {
            c.hits += 1;
        } else {
            c.misses += 1;
        }
        found
    }

    /// Adds a model, evicting the least recently used one when full.
    pub fn insert(&self, key: CacheKey, artefact: Arc<Artefact>) {
        let mut c = self.lock();
        c.tick += 1;
        let tick = c.tick;
        if c.entries.len() >= self.capacity && !c.entries.contains_key(&key) {
            let oldest = c.entries.iter().min_by_key(|(_, v)| v.0).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                c.entries.remove(&k);
            }
        }
        // Older versions of the same model are useless from now on.
        c.entries.retain(|k, _| k.model_id != key.model_id || k.system != key.system || k.version >= key.version);
        c.entries.insert(key, (tick, artefact));
    }

    /// Drops every version of a model (after it is deleted).
    pub fn forget(&self, model_id: Uuid) {
        self.lock().entries.retain(|k, _| k.model_id != model_id);
    }

    /// `(entries, hits, misses)`.
    pub fn stats(&self) -> (usize, u64, u64) {
        let c = self.lock();
        (c.entries.len(), c.hits, c.misses)
    }

    /// The cached model or the loaded, verified one.
    pub async fn get_or_load(
        &self,
        blobs: &dyn BlobStore,
        owner: Owner,
        location: &ArtefactLocation,
        checksum: &str,
    ) -> Result<Arc<Artefact>, ArtefactStoreError> {
        let key = CacheKey {
            model_id: location.model_id,
            system: location.system,
            version: location.version,
            checksum: checksum.to_owned(),
        };
        if let Some(a) = self.get(&key) {
            return Ok(a);
        }
        let artefact = Arc::new(read(blobs, owner, location, checksum).await?);
        self.insert(key, artefact.clone());
        Ok(artefact)
    }
}
