//! Blobs as files: `<root>/<key>`. Keys are [`BlobKey`]s, validated by the port (segments of
//! `[A-Za-z0-9._=-]`, no `.`/`..`, no leading `/`), so a key can never name a path outside the root.
//!
//! Writes are atomic: the data goes to a temporary file in the target directory (its name holds a
//! `~`, which no key may contain, so listings never show it), is synced, then renamed over the key.
//! The content type is not kept (nothing local reads it back).
//!
//! Limitation of the file layout: a key cannot be both a blob and the "directory" of another blob
//! (`a` and `a/b`); the second write fails with `Unavailable`.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use nusatrade_app::ports::{BlobError, BlobInfo, BlobKey, BlobStore};

/// The file implementation of [`BlobStore`].
#[derive(Clone, Debug)]
pub struct FileBlobStore {
    root: PathBuf,
}

impl FileBlobStore {
    /// Blobs under `root` (created on the first write).
    pub fn new(root: PathBuf) -> Self {
        FileBlobStore { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &BlobKey) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.as_str().split('/'));
        p
    }
}

fn unavailable(what: &str, path: &Path, e: std::io::Error) -> BlobError {
    BlobError::Unavailable(format!("{what} {}: {e}", path.display()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| BlobError::Unavailable(format!("blob task failed: {e}")))?
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), BlobError> {
    let dir =
        path.parent().ok_or_else(|| BlobError::Unavailable(format!("{} has no parent directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| unavailable("cannot create", dir, e))?;
    let tmp = dir.join(format!(".{}~tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| unavailable("cannot create", &tmp, e))?;
        f.write_all(data).map_err(|e| unavailable("cannot write", &tmp, e))?;
        f.sync_all().map_err(|e| unavailable("cannot sync", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| unavailable("cannot rename onto", path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_limited(key: &BlobKey, path: &Path, max_bytes: u64) -> Result<Option<Bytes>, BlobError> {
    let too_large = || BlobError::TooLarge { key: key.as_str().to_owned(), limit: max_bytes };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(None),
        Err(e) => return Err(unavailable("cannot open", path, e)),
    };
    let meta = file.metadata().map_err(|e| unavailable("cannot stat", path, e))?;
    if !meta.is_file() {
        // A "directory" key (prefix of other blobs) is not a blob.
        return Ok(None);
    }
    if meta.len() > max_bytes {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the check and the read: never read more than the limit allows.
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut buf).map_err(|e| unavailable("cannot read", path, e))?;
    if buf.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(Some(Bytes::from(buf)))
}

/// Collects the blobs under `dir` (whose key prefix is `dir_key`, empty for the root) whose key
/// starts with `prefix`. Symlinks and anything that is not a valid key (temporary files) are skipped.
fn walk(dir: &Path, dir_key: &str, prefix: &str, out: &mut Vec<BlobInfo>) -> Result<(), BlobError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(()),
        Err(e) => return Err(unavailable("cannot list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| unavailable("cannot list", dir, e))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let key = if dir_key.is_empty() { name } else { format!("{dir_key}/{name}") };
        let Ok(blob_key) = BlobKey::new(key.as_str()) else { continue };
        let file_type = entry.file_type().map_err(|e| unavailable("cannot stat", &entry.path(), e))?;
        if file_type.is_dir() {
            // Descend only where keys starting with the prefix can be found.
            let sub = format!("{key}/");
            if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                walk(&entry.path(), &key, prefix, out)?;
            }
        } else if file_type.is_file() && key.starts_with(prefix) {
            let size = entry.metadata().map_err(|e| unavailable("cannot stat", &entry.path(), e))?.len();
            out.push(BlobInfo { key: blob_key, size });
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FileBlobStore {
    async fn put(&self, key: &BlobKey, data: Bytes, _content_type: &str) -> Result<(), BlobError> {
        let path = self.path_of(key);
        blocking(move || write_atomic(&path, &data)).await
    }

    async fn get(&self, key: &BlobKey, max_bytes: u64) -> Result<Option<Bytes>, BlobError> {
        let path = self.path_of(key);
        let key = key.clone();
        blocking(move || read_limited(&key, &path, max_bytes)).await
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let path = self.path_of(key);
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(()),
            // A "directory" key is not a blob: nothing to delete.
            Err(_) if path.is_dir() => Ok(()),
            Err(e) => Err(unavailable("cannot delete", &path, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, BlobError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut out = Vec::new();
            walk(&root, "", &prefix, &mut out)?;
            out.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> BlobKey {
        BlobKey::new(s).unwrap()
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileBlobStore::new(dir.path().join("blobs"));
        assert_eq!(store.get(&key("a/b.json"), 10).await.unwrap(), None);
        assert!(store.list("").await.unwrap().is_empty());

        store.put(&key("models/u1/v2.json"), Bytes::from_static(b"two"), "application/json").await.unwrap();
        store.put(&key("models/u1/v1.json"), Bytes::from_static(b"one!"), "application/json").await.unwrap();
        store.put(&key("models/u2/v1.json"), Bytes::from_static(b"x"), "application/json").await.unwrap();
        store.put(&key("backups/b.jsonl"), Bytes::from_static(b"b"), "text/plain").await.unwrap();
        // Overwrite in place.
        store.put(&key("models/u1/v2.json"), Bytes::from_static(b"TWO!!"), "application/json").await.unwrap();

        assert_eq!(store.get(&key("models/u1/v2.json"), 100).await.unwrap().unwrap(), Bytes::from_static(b"TWO!!"));
        let listed: Vec<(String, u64)> =
            store.list("models/u1").await.unwrap().into_iter().map(|b| (b.key.to_string(), b.size)).collect();
        assert_eq!(listed, vec![("models/u1/v1.json".into(), 4), ("models/u1/v2.json".into(), 5)]);
        let all: Vec<String> = store.list("").await.unwrap().into_iter().map(|b| b.key.to_string()).collect();
        assert_eq!(all, vec!["backups/b.jsonl", "models/u1/v1.json", "models/u1/v2.json", "models/u2/v1.json"]);
        assert_eq!(store.list("models/u").await.unwrap().len(), 3);
        assert!(store.list("nothing").await.unwrap().is_empty());
        // A directory is not a blob.
        assert_eq!(store.get(&key("models/u1"), 100).await.unwrap(), None);

        store.delete(&key("models/u1/v1.json")).await.unwrap();
        store.delete(&key("models/u1/v1.json")).await.unwrap();
        store.delete(&key("models")).await.unwrap();
        assert_eq!(store.get(&key("models/u1/v1.json"), 100).await.unwrap(), None);
        assert_eq!(store.list("models/").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn refuses_blobs_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileBlobStore::new(dir.path().to_path_buf());
        store.put(&key("big"), Bytes::from(vec![7u8; 1000]), "application/octet-stream").await.unwrap();
        assert_eq!(store.get(&key("big"), 999).await, Err(BlobError::TooLarge { key: "big".into(), limit: 999 }));
        assert_eq!(store.get(&key("big"), 1000).await.unwrap().unwrap().len(), 1000);
    }

    #[tokio::test]
    async fn writes_are_atomic_and_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileBlobStore::new(dir.path().to_path_buf());
        // Concurrent writers of one key: readers only ever see one complete version.
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.put(&key("k/v"), Bytes::from(vec![i; 64 * 1024]), "x").await.unwrap();
                let got = store.get(&key("k/v"), 1 << 20).await.unwrap().unwrap();
                assert_eq!(got.len(), 64 * 1024);
                assert!(got.iter().all(|b| *b == got[0]), "torn read");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let names: Vec<String> = std::fs::read_dir(dir.path().join("k"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["v"]);
        // A stray temporary file (crash mid-write) is never listed.
        std::fs::write(dir.path().join("k").join("v.abc~tmp"), b"partial").unwrap();
        let listed: Vec<String> = store.list("").await.unwrap().into_iter().map(|b| b.key.to_string()).collect();
        assert_eq!(listed, vec!["k/v"]);
    }

    #[tokio::test]
    async fn traversal_is_impossible() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        let store = FileBlobStore::new(root.clone());
        // Path-like keys cannot even be built...
        for bad in ["../secret", "/etc/passwd", "a/../../secret", "..", "a\\..\\secret"] {
            assert!(BlobKey::new(bad).is_err(), "{bad:?}");
        }
        // ...every valid key maps inside the root...
        for good in ["a", "a/b/c.json", "...", "a/..b", "x=1/y_2-3"] {
            assert!(store.path_of(&key(good)).starts_with(&root), "{good:?}");
        }
        // ...and a prefix cannot walk out of it.
        assert!(store.list("../").await.unwrap().is_empty());
        assert!(store.list("..").await.unwrap().is_empty());
    }
}
