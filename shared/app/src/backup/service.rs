//! Backing up the table to the blob store, listing backups, and restoring one with verification.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::format::{self, BACKUP_PREFIX, BackupId, MAX_MANIFEST_BYTES, Manifest, SegmentFile};
use crate::ports::store::{MAX_BATCH_WRITE_ITEMS, MAX_QUERY_LIMIT};
use crate::ports::{BlobError, BlobKey, BlobStore, Clock, IdGenerator, Item, ItemStore, Ports, Scan, StoreError};

/// Segments a backup is split into unless told otherwise.
pub const DEFAULT_SEGMENTS: u32 = 4;
/// Most segments (and so files) of one backup.
pub const MAX_BACKUP_SEGMENTS: u32 = 256;

/// Why a backup, a listing or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("backup {0} does not exist or is incomplete (it has no manifest)")]
    NotFound(BackupId),
    #[error("backup {0} already exists")]
    AlreadyExists(BackupId),
    #[error("backup {id} cannot be restored: {reason}")]
    Unrestorable { id: BackupId, reason: String },
    #[error("backup file {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the target store is not empty: a restore goes into an empty store (force it to write over existing data)")]
    TargetNotEmpty,
    #[error("the restore failed after writing {written} items (the target holds a partial restore): {source}")]
    WriteFailed { written: u64, source: StoreError },
    #[error("restore verification failed: {0}")]
    Verification(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl BackupError {
    /// True when trying again as is may succeed (a dependency was unavailable or throttling).
    pub fn is_transient(&self) -> bool {
        match self {
            BackupError::Store(e) | BackupError::WriteFailed { source: e, .. } => {
                matches!(e, StoreError::Unavailable(_) | StoreError::Throttled)
            }
            BackupError::Blob(e) => matches!(e, BlobError::Unavailable(_)),
            BackupError::Internal(_) => true,
            _ => false,
        }
    }
}

/// The stage a long operation is in, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Backup: items read from the store and written to segment files (total unknown).
    Export,
    /// Restore: segment files downloaded and checked (size, checksum, every line), in items.
    Verify,
    /// Restore: items written to the target store.
    Write,
    /// Restore: items counted in the target store after writing.
    Count,
}

/// A progress report: `done` of `total` (when known) units of `phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: Option<u64>,
}

/// Receives progress reports, from several tasks at once.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A progress callback that ignores every report.
pub fn no_progress() -> ProgressFn {
    Arc::new(|_| {})
}

/// How to take a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupOptions {
    /// The id to use (the queue job passes one, for idempotency); `None`: a new one from the clock.
    pub id: Option<BackupId>,
    /// Scan segments read in parallel, one file each (1..=[`MAX_BACKUP_SEGMENTS`]).
    pub segments: u32,
    /// Items per scan page.
    pub page_size: u32,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions { id: None, segments: DEFAULT_SEGMENTS, page_size: MAX_QUERY_LIMIT }
    }
}

/// Parallel scan segments per backup unless a message names its own (the `backup` function's setting).
pub const ENV_SEGMENTS: &str = "NUSATRADE_BACKUP_SEGMENTS";

impl BackupOptions {
    /// The defaults with `NUSATRADE_BACKUP_SEGMENTS` (1..=[`MAX_BACKUP_SEGMENTS`], default [`DEFAULT_SEGMENTS`]).
    pub fn from_env() -> Result<Self, String> {
        Self::from_segments_var(std::env::var(ENV_SEGMENTS).ok().as_deref())
    }

    /// The defaults with the segments setting's value, when set.
    pub fn from_segments_var(value: Option<&str>) -> Result<Self, String> {
        let mut options = BackupOptions::default();
        if let Some(v) = value {
            options.segments = v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_BACKUP_SEGMENTS).contains(n))
                .ok_or_else(|| format!("{ENV_SEGMENTS}={v:?}: expected 1..={MAX_BACKUP_SEGMENTS}"))?;
        }
        Ok(options)
    }
}

/// How to restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Restore into a store that already holds items (they are kept; restored items replace those
    /// with the same key). Without it a non-empty target is refused.
    pub force: bool,
    /// Files downloaded / checked / written at once.
    pub parallel_files: usize,
    /// `put_many` batches in flight at once (over all files).
    pub writes_in_flight: usize,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions { force: false, parallel_files: 4, writes_in_flight: 16 }
    }
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    pub backup_id: BackupId,
    pub files: usize,
    /// Items in the backup (its manifest's count, verified line by line).
    pub items_in_backup: u64,
    /// Items written to the target.
    pub items_written: u64,
    /// Items of the backup that had expired by the time of the restore: not written (never
    /// resurrected).
    pub skipped_expired: u64,
    /// Items counted in the target afterwards.
    pub items_in_target: u64,
    /// True when the count was checked exactly (empty target); false after a forced restore into a
    /// non-empty target, where only "at least every restored item" can be checked by counting.
    pub exact: bool,
    pub verify_time: Duration,
    pub write_time: Duration,
    pub count_time: Duration,
}

/// A backup found in the blob store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    pub id: BackupId,
    pub status: BackupStatus,
    /// Blobs under the backup's prefix (segment files and manifest).
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupStatus {
    /// Has a valid manifest: restorable (its files are checked at restore time).
    Complete(Box<Manifest>),
    /// No manifest: the backup never finished (or is still running). Never restorable.
    Incomplete,
    /// A manifest that cannot be read or does not check out.
    Unreadable(String),
}

/// Backups of the item store into the blob store (`backups/`), and restores. No AWS type here: the
/// same service runs on DynamoDB + S3 and on the embedded store + files.
#[derive(Clone)]
pub struct BackupService {
    store: Arc<dyn ItemStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl BackupService {
    pub fn new(
        store: Arc<dyn ItemStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        BackupService { store, blobs, clock, ids }
    }

    pub fn from_ports(ports: &Ports) -> Self {
        Self::new(ports.store.clone(), ports.blobs.clone(), ports.clock.clone(), ports.ids.clone())
    }

    /// The service's clock reading.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// A new id for a backup starting now.
    pub fn new_id(&self) -> BackupId {
        let tag = self.ids.uuid().simple().to_string();
        BackupId::new(self.clock.now(), &tag[..8])
    }

    /// Exports every (unexpired) item: `segments` scan segments in parallel, one gzip JSON-lines file
    /// each, then the manifest, last. Fails, writing no manifest, if anything fails; refuses an id
    /// that already has a manifest.
    pub async fn backup(&self, options: BackupOptions, progress: ProgressFn) -> Result<Manifest, BackupError> {
        if !(1..=MAX_BACKUP_SEGMENTS).contains(&options.segments) {
            return Err(BackupError::Invalid(format!(
                "segments {} outside 1..={MAX_BACKUP_SEGMENTS}",
                options.segments
            )));
        }
        if !(1..=MAX_QUERY_LIMIT).contains(&options.page_size) {
            return Err(BackupError::Invalid(format!("page size {} outside 1..={MAX_QUERY_LIMIT}", options.page_size)));
        }
        let id = options.id.clone().unwrap_or_else(|| self.new_id());
        if self.has_manifest(&id).await? {
            return Err(BackupError::AlreadyExists(id));
        }
        let started_at = self.clock.now();
        let exported = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for segment in 0..options.segments {
            let job = ExportSegment {
                store: self.store.clone(),
                blobs: self.blobs.clone(),
                id: id.clone(),
                segment,
                total: options.segments,
                page_size: options.page_size,
                exported: exported.clone(),
                progress: progress.clone(),
            };
            tasks.spawn(job.run());
        }
        let mut files = Vec::with_capacity(options.segments as usize);
        while let Some(joined) = tasks.join_next().await {
            // On the first failure the other segments are abandoned (dropping the set aborts them).
            files.push(joined.map_err(|e| BackupError::Internal(format!("a segment task failed: {e}")))??);
        }
        files.sort_by_key(|f| f.segment);
        let manifest = Manifest::new(id.clone(), started_at, self.clock.now(), options.segments, files);
        manifest.check(&id).map_err(BackupError::Internal)?;
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Internal(e.to_string()))?;
        self.blobs.put(&BlobKey::new(id.manifest_key())?, Bytes::from(json), "application/json").await?;
        Ok(manifest)
    }

    /// True when the backup has a manifest (whatever its content).
    pub async fn has_manifest(&self, id: &BackupId) -> Result<bool, BackupError> {
        let key = id.manifest_key();
        Ok(self.blobs.list(&key).await?.iter().any(|b| b.key.as_str() == key))
    }

    /// The backup's manifest, read and checked; `None` when it has none.
    pub async fn manifest(&self, id: &BackupId) -> Result<Option<Manifest>, BackupError> {
        let unrestorable = |reason: String| BackupError::Unrestorable { id: id.clone(), reason };
        let data = match self.blobs.get(&BlobKey::new(id.manifest_key())?, MAX_MANIFEST_BYTES).await {
            Ok(d) => d,
            Err(BlobError::TooLarge { .. }) => return Err(unrestorable("the manifest is too large".into())),
            Err(e) => return Err(e.into()),
        };
        let Some(data) = data else { return Ok(None) };
        let manifest: Manifest =
            serde_json::from_slice(&data).map_err(|e| unrestorable(format!("unreadable manifest: {e}")))?;
        manifest.check(id).map_err(unrestorable)?;
        Ok(Some(manifest))
    }

    /// Every backup under `backups/`, oldest first, complete or not.
    pub async fn list(&self) -> Result<Vec<BackupSummary>, BackupError> {
        let mut by_id: BTreeMap<BackupId, (usize, u64)> = BTreeMap::new();
        for blob in self.blobs.list(BACKUP_PREFIX).await? {
            let rest = &blob.key.as_str()[BACKUP_PREFIX.len()..];
            let Some((id, _)) = rest.split_once('/') else { continue };
            match BackupId::parse(id) {
                Ok(id) => {
                    let entry = by_id.entry(id).or_default();
                    entry.0 += 1;
                    entry.1 += blob.size;
                }
                Err(_) => tracing::warn!(key = %blob.key, "ignoring a blob under backups/ that is not a backup's"),
            }
        }
        let mut out = Vec::with_capacity(by_id.len());
        for (id, (blobs, bytes)) in by_id {
            let status = if !self.has_manifest(&id).await? {
                BackupStatus::Incomplete
            } else {
                match self.manifest(&id).await {
                    Ok(Some(m)) => BackupStatus::Complete(Box::new(m)),
                    Ok(None) => BackupStatus::Incomplete,
                    Err(BackupError::Unrestorable { reason, .. }) => BackupStatus::Unreadable(reason),
                    Err(e) => return Err(e),
                }
            };
            out.push(BackupSummary { id, status, blobs, bytes });
        }
        Ok(out)
    }

    /// Downloads and checks every file of a backup (size, SHA-256, every line decodes to a valid
    /// item, line counts) without writing anything. Returns its manifest.
    pub async fn verify(
        &self,
        id: &BackupId,
        parallel_files: usize,
        progress: ProgressFn,
    ) -> Result<Manifest, BackupError> {
        let manifest = self.manifest(id).await?.ok_or_else(|| BackupError::NotFound(id.clone()))?;
        self.verify_files(&manifest, parallel_files.max(1), progress).await?;
        Ok(manifest)
    }

    /// Restores a complete backup into the store: refuses a non-empty store unless forced, checks
    /// every file before writing anything, writes the items (skipping those expired since), then
    /// counts the items in the store.
    pub async fn restore(
        &self,
        id: &BackupId,
        options: RestoreOptions,
        progress: ProgressFn,
    ) -> Result<RestoreReport, BackupError> {
        let parallel_files = options.parallel_files.max(1);
        let manifest = self.manifest(id).await?.ok_or_else(|| BackupError::NotFound(id.clone()))?;
        let empty = self.store_is_empty().await?;
        if !empty && !options.force {
            return Err(BackupError::TargetNotEmpty);
        }

        let started = Instant::now();
        self.verify_files(&manifest, parallel_files, progress.clone()).await?;
        let verify_time = started.elapsed();

        let started = Instant::now();
        let now = self.clock.epoch_seconds();
        let ctx = Arc::new(WriteContext {
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            now,
            in_flight: Arc::new(Semaphore::new(options.writes_in_flight.max(1))),
            written: AtomicU64::new(0),
            total: manifest.item_count,
            progress: progress.clone(),
        });
        let files = Arc::new(Semaphore::new(parallel_files));
        let mut tasks = JoinSet::new();
        for file in manifest.files.clone() {
            let (ctx, files) = (ctx.clone(), files.clone());
            tasks.spawn(async move {
                let _permit = files.acquire_owned().await.map_err(|e| BackupError::Internal(e.to_string()))?;
                write_file(&ctx, &file).await
            });
        }
        let mut skipped_expired = 0;
        let mut ttls = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let stats = joined.map_err(|e| BackupError::Internal(format!("a restore task failed: {e}")))??;
            skipped_expired += stats.expired;
            ttls.extend(stats.ttls);
        }
        let items_written = ctx.written.load(Ordering::Relaxed);
        if items_written + skipped_expired != manifest.item_count {
            return Err(BackupError::Verification(format!(
                "{items_written} items written and {skipped_expired} expired ones skipped, but the backup holds {}",
                manifest.item_count
            )));
        }
        let write_time = started.elapsed();

        // Count what the store holds now. Items can expire while the restore runs: the count must lie
        // between the restored items still live when the count ended and those live when it began.
        let started = Instant::now();
        let live_at = |t: i64| items_written - ttls.iter().filter(|&&x| x <= t).count() as u64;
        let upper = live_at(self.clock.epoch_seconds());
        let items_in_target = self.count_items(parallel_files as u32, Some(items_written), progress).await?;
        let lower = live_at(self.clock.epoch_seconds());
        let count_time = started.elapsed();
        let exact = empty;
        let consistent = if exact { (lower..=upper).contains(&items_in_target) } else { items_in_target >= lower };
        if !consistent {
            return Err(BackupError::Verification(format!(
                "the store holds {items_in_target} items after restoring {items_written} ({lower} of them still live)"
            )));
        }
        Ok(RestoreReport {
            backup_id: id.clone(),
            files: manifest.files.len(),
            items_in_backup: manifest.item_count,
            items_written,
            skipped_expired,
            items_in_target,
            exact,
            verify_time,
            write_time,
            count_time,
        })
    }

    /// True when the store holds no (unexpired) item.
    pub async fn store_is_empty(&self) -> Result<bool, BackupError> {
        let mut cursor = None;
        loop {
            let page = self.store.scan(Scan::all().limit(MAX_QUERY_LIMIT).after(cursor)).await?;
            if !page.items.is_empty() {
                return Ok(false);
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(true),
            }
        }
    }

    /// Counts the store's (unexpired) items with a parallel scan.
    pub async fn count_items(
        &self,
        segments: u32,
        expected: Option<u64>,
        progress: ProgressFn,
    ) -> Result<u64, BackupError> {
        let segments = segments.clamp(1, MAX_BACKUP_SEGMENTS);
        let counted = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for segment in 0..segments {
            let (store, counted, progress) = (self.store.clone(), counted.clone(), progress.clone());
            tasks.spawn(async move {
                let mut cursor = None;
                loop {
                    let page =
                        store.scan(Scan::segment(segment, segments).limit(MAX_QUERY_LIMIT).after(cursor)).await?;
                    let n = page.items.len() as u64;
                    let done = counted.fetch_add(n, Ordering::Relaxed) + n;
                    progress(Progress { phase: Phase::Count, done, total: expected });
                    match page.cursor {
                        Some(c) => cursor = Some(c),
                        None => return Ok::<(), StoreError>(()),
                    }
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| BackupError::Internal(format!("a count task failed: {e}")))??;
        }
        Ok(counted.load(Ordering::Relaxed))
    }

    async fn verify_files(
        &self,
        manifest: &Manifest,
        parallel_files: usize,
        progress: ProgressFn,
    ) -> Result<(), BackupError> {
        let permits = Arc::new(Semaphore::new(parallel_files));
        let checked = Arc::new(AtomicU64::new(0));
        let total = manifest.item_count;
        let mut tasks = JoinSet::new();
        for file in manifest.files.clone() {
            let (blobs, permits, checked, progress) =
                (self.blobs.clone(), permits.clone(), checked.clone(), progress.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.map_err(|e| BackupError::Internal(e.to_string()))?;
                let data = fetch_verified(blobs.as_ref(), &file).await?;
                let lines = tokio::task::spawn_blocking(move || {
                    format::read_items(BufReader::new(GzDecoder::new(&data[..])), |_| Ok(()))
                })
                .await
                .map_err(|e| BackupError::Internal(format!("a verify task failed: {e}")))?
                .map_err(|reason| BackupError::Corrupt { key: file.key.clone(), reason })?;
                if lines != file.items {
                    return Err(BackupError::Corrupt {
                        key: file.key.clone(),
                        reason: format!("{lines} items, the manifest records {}", file.items),
                    });
                }
                let done = checked.fetch_add(lines, Ordering::Relaxed) + lines;
                progress(Progress { phase: Phase::Verify, done, total: Some(total) });
                Ok(())
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| BackupError::Internal(format!("a verify task failed: {e}")))??;
        }
        Ok(())
    }
}

/// One segment of a backup being exported.
struct ExportSegment {
    store: Arc<dyn ItemStore>,
    blobs: Arc<dyn BlobStore>,
    id: BackupId,
    segment: u32,
    total: u32,
    page_size: u32,
    exported: Arc<AtomicU64>,
    progress: ProgressFn,
}

impl ExportSegment {
    async fn run(self) -> Result<SegmentFile, BackupError> {
        let io = |e: std::io::Error| BackupError::Internal(format!("compressing segment: {e}"));
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        // A page's lines are serialised into one buffer and compressed in one write (many small writes
        // into the compressor cost far more than the compression itself).
        let mut lines = Vec::with_capacity(64 * 1024);
        let mut items = 0u64;
        let mut cursor = None;
        loop {
            let scan = Scan::segment(self.segment, self.total).limit(self.page_size).after(cursor);
            let page = self.store.scan(scan).await?;
            lines.clear();
            for item in &page.items {
                format::push_line(&mut lines, item).map_err(io)?;
            }
            std::io::Write::write_all(&mut gz, &lines).map_err(io)?;
            let n = page.items.len() as u64;
            items += n;
            let done = self.exported.fetch_add(n, Ordering::Relaxed) + n;
            (self.progress)(Progress { phase: Phase::Export, done, total: None });
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let data = gz.finish().map_err(io)?;
        let file = SegmentFile {
            segment: self.segment,
            key: self.id.segment_key(self.segment),
            items,
            bytes: data.len() as u64,
            sha256: format::sha256_hex(&data),
        };
        self.blobs.put(&BlobKey::new(file.key.clone())?, Bytes::from(data), "application/gzip").await?;
        Ok(file)
    }
}

/// Downloads a segment file and checks its size and checksum against the manifest.
async fn fetch_verified(blobs: &dyn BlobStore, file: &SegmentFile) -> Result<Bytes, BackupError> {
    let corrupt = |reason: String| BackupError::Corrupt { key: file.key.clone(), reason };
    let data = match blobs.get(&BlobKey::new(file.key.clone())?, file.bytes).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err(corrupt("the file is missing".into())),
        Err(BlobError::TooLarge { .. }) => {
            return Err(corrupt(format!("larger than the {} bytes the manifest records", file.bytes)));
        }
        Err(e) => return Err(e.into()),
    };
    if data.len() as u64 != file.bytes {
        return Err(corrupt(format!("{} bytes, the manifest records {}", data.len(), file.bytes)));
    }
    let sha = format::sha256_hex(&data);
    if sha != file.sha256 {
        return Err(corrupt(format!("SHA-256 {sha}, the manifest records {}", file.sha256)));
    }
    Ok(data)
}

/// What the write phase of a restore shares.
struct WriteContext {
    store: Arc<dyn ItemStore>,
    blobs: Arc<dyn BlobStore>,
    /// Items expired at this time are not written.
    now: i64,
    in_flight: Arc<Semaphore>,
    written: AtomicU64,
    total: u64,
    progress: ProgressFn,
}

/// What one file's restore found.
#[derive(Default)]
struct FileStats {
    lines: u64,
    expired: u64,
    /// The `ttl` of every item written that has one.
    ttls: Vec<i64>,
}

/// Restores one file: downloads and checks it again (it may have changed since the verify pass),
/// decodes it on a blocking thread, and writes its items in batches.
async fn write_file(ctx: &Arc<WriteContext>, file: &SegmentFile) -> Result<FileStats, BackupError> {
    let data = fetch_verified(ctx.blobs.as_ref(), file).await?;
    let (tx, mut rx) = mpsc::channel::<Vec<Item>>(8);
    let now = ctx.now;
    let decoder = tokio::task::spawn_blocking(move || {
        let mut stats = FileStats::default();
        let mut batch = Vec::with_capacity(MAX_BATCH_WRITE_ITEMS);
        let lines = format::read_items(BufReader::new(GzDecoder::new(&data[..])), |item| {
            if item.is_expired(now) {
                stats.expired += 1;
                return Ok(());
            }
            if let Some(ttl) = item.ttl() {
                stats.ttls.push(ttl);
            }
            batch.push(item);
            if batch.len() == MAX_BATCH_WRITE_ITEMS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH_WRITE_ITEMS));
                tx.blocking_send(full).map_err(|_| "the restore stopped".to_owned())?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            tx.blocking_send(batch).map_err(|_| "the restore stopped".to_owned())?;
        }
        stats.lines = lines;
        Ok::<FileStats, String>(stats)
    });

    let mut puts = JoinSet::new();
    let mut failure: Option<StoreError> = None;
    let settle = |joined: Result<Result<(), StoreError>, tokio::task::JoinError>| match joined {
        Ok(r) => r,
        Err(e) => Err(StoreError::Unavailable(format!("a write task failed: {e}"))),
    };
    while let Some(batch) = rx.recv().await {
        let permit = ctx.in_flight.clone().acquire_owned().await.map_err(|e| BackupError::Internal(e.to_string()))?;
        let ctx = ctx.clone();
        puts.spawn(async move {
            let _permit = permit;
            let n = batch.len() as u64;
            put_with_retries(ctx.store.as_ref(), batch).await?;
            let done = ctx.written.fetch_add(n, Ordering::Relaxed) + n;
            (ctx.progress)(Progress { phase: Phase::Write, done, total: Some(ctx.total) });
            Ok(())
        });
        while let Some(joined) = puts.try_join_next() {
            if let Err(e) = settle(joined) {
                failure.get_or_insert(e);
            }
        }
        if failure.is_some() {
            break;
        }
    }
    // Stops the decoder if it is still going (its next send fails).
    drop(rx);
    while let Some(joined) = puts.join_next().await {
        if let Err(e) = settle(joined) {
            failure.get_or_insert(e);
        }
    }
    let decoded = decoder.await.map_err(|e| BackupError::Internal(format!("a decode task failed: {e}")))?;
    if let Some(source) = failure {
        return Err(BackupError::WriteFailed { written: ctx.written.load(Ordering::Relaxed), source });
    }
    let stats = decoded.map_err(|reason| BackupError::Corrupt { key: file.key.clone(), reason })?;
    if stats.lines != file.items {
        return Err(BackupError::Corrupt {
            key: file.key.clone(),
            reason: format!("{} items, the manifest records {}", stats.lines, file.items),
        });
    }
    Ok(stats)
}

/// `put_many`, retried a few times with backoff when the store is throttling or unavailable.
async fn put_with_retries(store: &dyn ItemStore, batch: Vec<Item>) -> Result<(), StoreError> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match store.put_many(batch.clone()).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Throttled | StoreError::Unavailable(_)) if attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_come_from_the_environment() {
        assert_eq!(BackupOptions::from_segments_var(None).unwrap(), BackupOptions::default());
        assert_eq!(BackupOptions::from_segments_var(Some(" 8 ")).unwrap().segments, 8);
        assert_eq!(BackupOptions::from_segments_var(Some("256")).unwrap().segments, MAX_BACKUP_SEGMENTS);
        for bad in ["0", "257", "four", ""] {
            let e = BackupOptions::from_segments_var(Some(bad)).unwrap_err();
            assert!(e.starts_with("NUSATRADE_BACKUP_SEGMENTS="), "{e}");
        }
    }
}
