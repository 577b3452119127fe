//! Candle datasets: one per owner (a user, or the platform), symbol and timeframe, stored as month chunks in
//! the blob store (gzip, `nusatrade_ml::candles` blob format) with their metadata in the item store
//! ([`DatasetRecord`]).
//!
//! An upload is parsed and validated as a whole ([`nusatrade_ml::candles::parse_csv`]: monotonic timestamps,
//! `high ≥ max(open, close)`, finite positive prices; errors name the CSV line), then **merged by range** into the
//! stored series: only the months it touches are rewritten (a bar at an existing timestamp replaces the stored
//! one). Chunks are copy-on-write — a rewritten month goes to a new key carrying the dataset's next revision, and
//! the metadata is replaced with a condition on the revision it was read at — so two concurrent uploads cannot
//! lose each other's bars: the loser deletes what it wrote (keys unique to its attempt) and merges again on top of
//! the winner.
//!
//! Reads: the whole series (training) or its newest bars (predictions; cached per warm process and keyed by the
//! dataset's revision, so a stale copy is never served).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use nusatrade_ml::candles::{self, BlobLimits, Conflict, CsvError, CsvLimits, Month};
use nusatrade_ml::features::{N_FEATURES, STABLE_HISTORY_BARS};
use nusatrade_ml::{Candle, CandleSeries, Timeframe};
use tracing::warn;

use super::store::{
    ChunkRef, DATASET_PREFIX, DatasetRecord, DatasetSource, Owner, chunk_key, dataset_key, dataset_prefix, tf_name,
};
use crate::ports::{BlobError, BlobStore, Clock, Condition, Item, ItemStore, Query, StoreError};

/// Largest CSV upload (bytes): `crate::limits`.
pub use crate::limits::MAX_UPLOAD_BYTES;
/// Most rows in one upload.
pub const MAX_UPLOAD_ROWS: usize = 100_000;
/// Most bars in one dataset (about 23 years of hourly bars).
pub const MAX_DATASET_BARS: u64 = 200_000;
/// Most datasets per user.
pub const MAX_DATASETS_PER_USER: usize = 50;
/// Largest month chunk read back (a month of M1 bars is ~45k bars, ~1 MB compressed).
pub const MAX_CHUNK_BYTES: u64 = 8 << 20;
/// How many times a lost write race is merged again.
const MAX_ATTEMPTS: usize = 12;
/// Datasets whose newest bars are kept in memory per process.
const TAIL_CACHE_ENTRIES: usize = 32;

/// Why a dataset operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The CSV is invalid (the error names the line when there is one).
    #[error("{0}")]
    Csv(#[from] CsvError),
    /// The merged dataset would exceed [`MAX_DATASET_BARS`].
    #[error("the dataset would hold {bars} bars; at most {max} are kept per symbol and timeframe")]
    TooManyBars { bars: u64, max: u64 },
    /// The user has [`MAX_DATASETS_PER_USER`] datasets already.
    #[error("at most {0} datasets per user; delete one first")]
    TooManyDatasets(usize),
    /// Concurrent writers kept winning.
    #[error("the dataset is being written by another request, please retry")]
    Busy,
    /// Stored data that does not decode (damaged chunk).
    #[error("stored candles are unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// What an upload did.
#[derive(Clone, Debug, PartialEq)]
pub struct UploadSummary {
    pub record: DatasetRecord,
    /// Bars in the upload.
    pub received: usize,
    /// New timestamps.
    pub added: usize,
    /// Existing timestamps whose bar changed.
    pub replaced: usize,
    /// Existing timestamps with the same bar.
    pub unchanged: usize,
    /// Month chunks rewritten.
    pub months_written: usize,
}

/// The feature row of a tail's last bar, computed once per cached tail (it depends on the bars only).
pub type RowCell = Arc<OnceLock<Option<[f64; N_FEATURES]>>>;

/// The newest bars of a dataset, as read.
#[derive(Clone, Debug)]
pub struct Tail {
    pub record: DatasetRecord,
    pub candles: Arc<Vec<Candle>>,
    /// The last bar's feature row (see [`Tail::last_row`]), shared by every prediction on this tail.
    pub row: RowCell,
}

impl Tail {
    /// The newest `4 × STABLE_HISTORY_BARS` bars (what a prediction uses) and the feature row of the last one,
    /// computed on first use and then shared while the dataset does not change.
    pub fn last_row(&self) -> (&[Candle], Option<&[f64; N_FEATURES]>) {
        let c = &self.candles[self.candles.len().saturating_sub(4 * STABLE_HISTORY_BARS)..];
        (c, self.row.get_or_init(|| nusatrade_ml::features::last_row(c)).as_ref())
    }
}

/// Candle datasets over the item and blob stores.
#[derive(Clone)]
pub struct Datasets {
    store: Arc<dyn ItemStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    tails: Arc<Mutex<TailCache>>,
}

/// (owner, symbol, timeframe).
type TailKey = (Owner, String, Timeframe);

/// A cached tail: last use, dataset revision, bars wanted, the bars, their last feature row.
type TailEntry = (u64, u64, usize, Arc<Vec<Candle>>, RowCell);

#[derive(Default)]
struct TailCache {
    tick: u64,
    entries: HashMap<TailKey, TailEntry>,
}

fn csv_limits() -> CsvLimits {
    CsvLimits { max_bytes: MAX_UPLOAD_BYTES, max_rows: MAX_UPLOAD_ROWS }
}

fn blob_limits() -> BlobLimits {
    BlobLimits { max_compressed: MAX_CHUNK_BYTES as usize, max_decompressed: 8 * MAX_CHUNK_BYTES as usize }
}

impl Datasets {
    pub fn new(store: Arc<dyn ItemStore>, blobs: Arc<dyn BlobStore>, clock: Arc<dyn Clock>) -> Self {
        Datasets { store, blobs, clock, tails: Arc::new(Mutex::new(TailCache::default())) }
    }

    /// The metadata of one dataset.
    pub async fn get(&self, owner: Owner, symbol: &str, tf: Timeframe) -> Result<Option<DatasetRecord>, StoreError> {
        match self.store.get(&dataset_key(owner, symbol, tf)).await? {
            Some(item) => Ok(Some(item.to_record()?)),
            None => Ok(None),
        }
    }

    /// Every dataset of an owner, by symbol then timeframe.
    pub async fn list(&self, owner: Owner) -> Result<Vec<DatasetRecord>, StoreError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .query(Query::partition(owner.pk()).sk_prefix(DATASET_PREFIX).limit(200).after(cursor))
                .await?;
            for item in &page.items {
                out.push(item.to_record::<DatasetRecord>()?);
            }
            cursor = page.cursor;
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// Parses a CSV upload and merges it into the dataset.
    pub async fn upload_csv(
        &self,
        owner: Owner,
        symbol: &'static str,
        tf: Timeframe,
        csv: &[u8],
        source: DatasetSource,
    ) -> Result<UploadSummary, DatasetError> {
        let series = candles::parse_csv(csv, &csv_limits())?;
        self.merge_series(owner, symbol, tf, &series, source).await
    }

    /// Merges a validated series into the dataset (creating it).
    pub async fn merge_series(
        &self,
        owner: Owner,
        symbol: &'static str,
        tf: Timeframe,
        incoming: &CandleSeries,
        source: DatasetSource,
    ) -> Result<UploadSummary, DatasetError> {
        if incoming.len() as u64 > MAX_DATASET_BARS {
            return Err(DatasetError::TooManyBars { bars: incoming.len() as u64, max: MAX_DATASET_BARS });
        }
        let mut attempt = 0u32;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get(owner, symbol, tf).await?;
            if current.is_none()
                && let Owner::User(_) = owner
            {
                let existing = self.list(owner).await?.len();
                if existing >= MAX_DATASETS_PER_USER {
                    return Err(DatasetError::TooManyDatasets(MAX_DATASETS_PER_USER));
                }
            }
            match self.try_merge(owner, symbol, tf, incoming, source, current).await? {
                Some(summary) => return Ok(summary),
                None => {
                    // Lost a race: back off (randomised, growing) so that concurrent writers spread out.
                    attempt += 1;
                    let ms = 10u64 << attempt.min(5);
                    tokio::time::sleep(std::time::Duration::from_millis(ms / 2 + rand::random::<u64>() % ms)).await;
                }
            }
        }
        Err(DatasetError::Busy)
    }

    /// One merge attempt; `None` when another writer changed the dataset first (retry).
    async fn try_merge(
        &self,
        owner: Owner,
        symbol: &'static str,
        tf: Timeframe,
        incoming: &CandleSeries,
        source: DatasetSource,
        current: Option<DatasetRecord>,
    ) -> Result<Option<UploadSummary>, DatasetError> {
        let now = self.clock.now();
        let rev = current.as_ref().map_or(1, |r| r.rev + 1);
        let mut chunks: Vec<ChunkRef> = current.as_ref().map(|r| r.chunks.clone()).unwrap_or_default();
        let (mut added, mut replaced, mut unchanged) = (0, 0, 0);
        let mut written: Vec<crate::ports::BlobKey> = Vec::new();
        let mut superseded: Vec<crate::ports::BlobKey> = Vec::new();
        for (month, part) in candles::partition_by_month(incoming) {
            let month_key = month.key();
            let existing_index = chunks.iter().position(|c| c.month == month_key);
            let merged = match existing_index {
                Some(i) => match self.read_chunk(owner, symbol, tf, &chunks[i]).await {
                    Ok(Some(stored)) => candles::merge(&stored, &part, Conflict::ReplaceWithIncoming),
                    Ok(None) => {
                        self.delete_blobs(&written).await;
                        let rev = current.as_ref().map_or(0, |r| r.rev);
                        self.chunk_gone(owner, symbol, tf, rev, &month_key).await?;
                        return Ok(None);
                    }
                    Err(e) => {
                        self.delete_blobs(&written).await;
                        return Err(e);
                    }
                },
                None => candles::Merged { added: part.len(), replaced: 0, unchanged: 0, series: part },
            };
            added += merged.added;
            replaced += merged.replaced;
            unchanged += merged.unchanged;
            if merged.added == 0 && merged.replaced == 0 {
                continue;
            }
            let blob = candles::encode_blob(&merged.series);
            let id = uuid::Uuid::new_v4();
            let key = chunk_key(owner, symbol, tf, &month_key, id)?;
            let c = merged.series.candles();
            let chunk = ChunkRef {
                month: month_key,
                id,
                rev,
                bars: c.len() as u64,
                size_bytes: blob.len() as u64,
                first: c[0].time,
                last: c[c.len() - 1].time,
            };
            if let Err(e) = self.blobs.put(&key, Bytes::from(blob), "application/gzip").await {
                self.delete_blobs(&written).await;
                return Err(e.into());
            }
            written.push(key);
            match existing_index {
                Some(i) => {
                    superseded.push(chunk_key(owner, symbol, tf, &chunks[i].month, chunks[i].id)?);
                    chunks[i] = chunk;
                }
                None => chunks.push(chunk),
            }
        }
        chunks.sort_by(|a, b| a.month.cmp(&b.month));
        let bars: u64 = chunks.iter().map(|c| c.bars).sum();
        if bars > MAX_DATASET_BARS {
            self.delete_blobs(&written).await;
            return Err(DatasetError::TooManyBars { bars, max: MAX_DATASET_BARS });
        }
        let months_written = written.len();
        let record = match (&current, months_written) {
            // Nothing new: the stored record stands.
            (Some(r), 0) => r.clone(),
            _ => DatasetRecord {
                symbol: symbol.to_owned(),
                timeframe: tf,
                bars,
                first: chunks.first().map(|c| c.first).unwrap_or(now),
                last: chunks.last().map(|c| c.last).unwrap_or(now),
                size_bytes: chunks.iter().map(|c| c.size_bytes).sum(),
                chunks,
                rev,
                source,
                created_at: current.as_ref().map_or(now, |r| r.created_at),
                updated_at: now,
            },
        };
        if months_written > 0 {
            let condition = match &current {
                None => Condition::NotExists,
                Some(r) => Condition::eq("rev", r.rev),
            };
            let item = Item::from_record(&dataset_key(owner, symbol, tf), &record)?;
            match self.store.put(item, Some(condition)).await {
                Ok(()) => {}
                Err(e) if e.is_condition_failure() => {
                    self.delete_blobs(&written).await;
                    return Ok(None);
                }
                Err(e) => {
                    self.delete_blobs(&written).await;
                    return Err(e.into());
                }
            }
            self.delete_blobs(&superseded).await;
        }
        Ok(Some(UploadSummary { record, received: incoming.len(), added, replaced, unchanged, months_written }))
    }

    async fn delete_blobs(&self, keys: &[crate::ports::BlobKey]) {
        for k in keys {
            if let Err(e) = self.blobs.delete(k).await {
                warn!(key = %k, error = %e, "could not delete a dataset chunk");
            }
        }
    }

    /// One chunk; `None` when its blob is gone (a writer replaced it after the metadata was read).
    async fn read_chunk(
        &self,
        owner: Owner,
        symbol: &str,
        tf: Timeframe,
        chunk: &ChunkRef,
    ) -> Result<Option<CandleSeries>, DatasetError> {
        let key = chunk_key(owner, symbol, tf, &chunk.month, chunk.id)?;
        let Some(bytes) = self.blobs.get(&key, MAX_CHUNK_BYTES).await? else { return Ok(None) };
        candles::decode_blob(&bytes, &blob_limits()).map(Some).map_err(|e| DatasetError::Corrupt(format!("{key}: {e}")))
    }

    /// A chunk the metadata at `rev` names is missing: `Ok(())` when the dataset moved on since (the caller reads
    /// again), an error when the metadata still names it (damaged storage).
    async fn chunk_gone(
        &self,
        owner: Owner,
        symbol: &str,
        tf: Timeframe,
        rev: u64,
        month: &str,
    ) -> Result<(), DatasetError> {
        match self.get(owner, symbol, tf).await? {
            Some(r) if r.rev == rev => {
                Err(DatasetError::Corrupt(format!("the {month} chunk of {symbol} {} is missing", tf_name(tf))))
            }
            _ => Ok(()),
        }
    }

    /// The whole series of a dataset (`None` when there is no dataset), optionally cut to `from ≤ t < to`.
    pub async fn load(
        &self,
        owner: Owner,
        symbol: &str,
        tf: Timeframe,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Option<(DatasetRecord, CandleSeries)>, DatasetError> {
        'attempt: for _ in 0..MAX_ATTEMPTS {
            let Some(record) = self.get(owner, symbol, tf).await? else { return Ok(None) };
            let mut all = Vec::with_capacity(record.bars as usize);
            for chunk in &record.chunks {
                if from.is_some_and(|f| chunk.last < f) || to.is_some_and(|t| chunk.first >= t) {
                    continue;
                }
                match self.read_chunk(owner, symbol, tf, chunk).await? {
                    Some(s) => all.extend_from_slice(s.candles()),
                    None => {
                        self.chunk_gone(owner, symbol, tf, record.rev, &chunk.month).await?;
                        continue 'attempt;
                    }
                }
            }
            let series = CandleSeries::new(all).map_err(|e| DatasetError::Corrupt(e.to_string()))?;
            let series = match (from, to) {
                (None, None) => series,
                (f, t) => candles::range(
                    &series,
                    f.unwrap_or(DateTime::<Utc>::MIN_UTC),
                    t.unwrap_or(DateTime::<Utc>::MAX_UTC),
                ),
            };
            return Ok(Some((record, series)));
        }
        Err(DatasetError::Busy)
    }

    /// At least the newest `bars` bars of a dataset (fewer when it is shorter), from the per-process cache when
    /// the dataset has not changed since.
    pub async fn tail(
        &self,
        owner: Owner,
        symbol: &str,
        tf: Timeframe,
        bars: usize,
    ) -> Result<Option<Tail>, DatasetError> {
        let Some(record) = self.get(owner, symbol, tf).await? else { return Ok(None) };
        let cache_key = (owner, symbol.to_owned(), tf);
        {
            let mut cache = self.tails.lock().unwrap_or_else(|e| e.into_inner());
            cache.tick += 1;
            let tick = cache.tick;
            if let Some(entry) = cache.entries.get_mut(&cache_key)
                && entry.1 == record.rev
                && entry.2 >= bars
            {
                entry.0 = tick;
                return Ok(Some(Tail { record, candles: entry.3.clone(), row: entry.4.clone() }));
            }
        }
        let mut parts: Vec<CandleSeries> = Vec::new();
        let mut have = 0usize;
        for chunk in record.chunks.iter().rev() {
            if have >= bars {
                break;
            }
            match self.read_chunk(owner, symbol, tf, chunk).await? {
                Some(s) => {
                    have += s.len();
                    parts.push(s);
                }
                None => {
                    // Replaced by a writer since the metadata was read: read the new state (bounded by the
                    // writers' own retries).
                    self.chunk_gone(owner, symbol, tf, record.rev, &chunk.month).await?;
                    return Box::pin(self.tail(owner, symbol, tf, bars)).await;
                }
            }
        }
        let mut candles: Vec<Candle> = Vec::with_capacity(have);
        for p in parts.iter().rev() {
            candles.extend_from_slice(p.candles());
        }
        let candles = Arc::new(candles);
        let mut cache = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        cache.tick += 1;
        let tick = cache.tick;
        if cache.entries.len() >= TAIL_CACHE_ENTRIES && !cache.entries.contains_key(&cache_key) {
            let oldest = cache.entries.iter().min_by_key(|(_, v)| v.0).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                cache.entries.remove(&k);
            }
        }
        let row = RowCell::default();
        cache.entries.insert(cache_key, (tick, record.rev, bars, candles.clone(), row.clone()));
        Ok(Some(Tail { record, candles, row }))
    }

    /// Deletes a dataset: its metadata, then every blob under its prefix (stray chunks of lost races included).
    /// `false` when there was none.
    pub async fn delete(&self, owner: Owner, symbol: &str, tf: Timeframe) -> Result<bool, DatasetError> {
        let existed = self.store.delete(&dataset_key(owner, symbol, tf), None).await?.is_some();
        let blobs = self.blobs.list(&dataset_prefix(owner, symbol, tf)).await?;
        for b in &blobs {
            self.blobs.delete(&b.key).await?;
        }
        Ok(existed || !blobs.is_empty())
    }
}

/// The month key of a time (for callers that build ranges).
pub fn month_of(t: DateTime<Utc>) -> String {
    Month::of(t).key()
}
