//! Candle datasets from the trader's own connector (capability `history_candles`, protocol in
//! [`crate::connector::history`]).
//!
//! `POST /api/v1/ml/datasets/from-connector {symbol, timeframe, start, end, connection_id?}` starts (or resumes) an
//! **import**: the range `start ≤ t < end` is cut into pages of at most [`MAX_PAGE_BARS`] bars, fixed by the
//! request, and the connector is asked for one page at a time (`HISTORY_REQUEST`); each `HISTORY_CANDLES` answer is
//! checked against its page's window, merged into the user's candle dataset for that symbol and timeframe (the
//! same dataset CSV uploads write, read by training, predictions, the AI analysis and backtests), and the next page
//! is asked for. The route answers 202 with the import at once; `GET /api/v1/ml/datasets/imports/{id}` shows it.
//!
//! * **Idempotent.** An import's id is derived from the user and the request (symbol, timeframe, start, end): the
//!   same request names the same import. Merging is by timestamp (a bar already stored is unchanged), and the
//!   import's `next_page` advances by a conditional write from `p` to `p + 1` only — a re-delivered or repeated
//!   page (`page < next_page`) changes nothing, an unexpected one (`page > next_page`) is ignored, and of two
//!   instances handling the same page one advances.
//! * **Resumable.** The import records the page it waits for. When the link drops, the connector fails a page or
//!   the process dies between merging and advancing, `POST` the same request again: it asks for that page again
//!   (a page merged twice changes nothing). A completed import is answered as it stands, nothing asked.
//! * **Stalls noticed.** A running import whose page was asked for more than [`STALL_AFTER`] ago (its connector went
//!   away or stopped answering pages) is failed with `error: "stalled: no answer to page N for S s …"` when it is
//!   read (`GET /api/v1/ml/datasets/imports/{id}`), by a conditional write that loses to a page merged meanwhile; a
//!   page arriving after that is ignored, and the same request resumes from the page it waited for.
//! * **Limits** (checked at the edge): at most [`MAX_IMPORT_BARS`] bars per request (`(end − start) / timeframe`),
//!   `end` not in the future, `start` not before [`EARLIEST`]; the dataset's own limits (bars, datasets per user)
//!   fail the import with their message. Each page is one frame under the WebSocket frame limit; each merge writes
//!   only the month chunks it touches.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use nusatrade_ml::{CandleSeries, Timeframe};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use uuid::Uuid;

use super::datasets::Datasets;
use super::error::{MlError, MlResult};
use super::store::{DatasetSource, Owner};
use crate::connector::capabilities::Capability;
use crate::connector::history::{HistoryHook, HistoryPage, HistoryRequestId, MAX_PAGE_BARS};
use crate::connector::protocol::{Command, MAX_ERROR_TEXT};
use crate::connector::registry::{ConnectorLink, ConnectorRegistry};
use crate::keys::user_pk;
use crate::ports::{BlobStore, Clock, Condition, Item, ItemStore, Key, Ports, Push, PushOutcome, StoreError};
use crate::trading::orders::TradingError;
use crate::wire::iso;

/// Most bars one import may ask for (about 5.7 years of H1 bars; a dataset keeps at most 200,000).
pub const MAX_IMPORT_BARS: i64 = 50_000;
/// No history before this.
pub const EARLIEST: &str = "2000-01-01T00:00:00Z";
/// An import record is kept this long after its last change.
pub const IMPORT_TTL_DAYS: i64 = 30;
/// Sort-key prefix of import records.
pub const IMPORT_PREFIX: &str = "DSIMPORT#";
/// A running import whose page was asked for longer ago than this is failed as stalled when read.
pub const STALL_AFTER: Duration = Duration::minutes(2);
/// How the error of a stalled import starts.
pub const STALLED: &str = "stalled";

/// Where an import is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// Waiting for the connector's page `next_page`.
    Running,
    /// Every page merged.
    Completed,
    /// Stopped: the reason is in `error` (POST the same request again to resume).
    Failed,
}

/// A validated import request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImportRequest {
    pub symbol: &'static str,
    pub timeframe: Timeframe,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The broker connection whose connector answers (`None`: the user's connector online).
    pub connection_id: Option<Uuid>,
}

/// Why an import request is refused before anything is asked (the edge's 400s).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("end must be after start")]
    Empty,
    #[error("end must not be in the future")]
    Future,
    #[error("start must not be before {EARLIEST}")]
    TooEarly,
    #[error("the range holds up to {bars} {tf} bars; at most {MAX_IMPORT_BARS} per import")]
    TooLong { bars: i64, tf: &'static str },
}

impl ImportRequest {
    /// Checks the range at `now`.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), RangeError> {
        if self.end <= self.start {
            return Err(RangeError::Empty);
        }
        if self.end > now + Duration::seconds(self.timeframe.seconds()) {
            return Err(RangeError::Future);
        }
        if self.start < earliest() {
            return Err(RangeError::TooEarly);
        }
        let bars = self.bars();
        if bars > MAX_IMPORT_BARS {
            return Err(RangeError::TooLong { bars, tf: self.timeframe.name() });
        }
        Ok(())
    }

    /// Bar slots in the range (an upper bound: weekends have none).
    pub fn bars(&self) -> i64 {
        let s = self.timeframe.seconds();
        ((self.end - self.start).num_seconds() + s - 1) / s
    }

    /// Pages of at most [`MAX_PAGE_BARS`] bar slots.
    pub fn pages(&self) -> u32 {
        let per = MAX_PAGE_BARS as i64;
        u32::try_from((self.bars() + per - 1) / per).unwrap_or(u32::MAX)
    }

    /// The import's id: the same user and request always name the same import.
    pub fn id(&self, user: Uuid) -> Uuid {
        let mut h = Sha256::new();
        h.update(user.as_bytes());
        h.update(format!(
            "{}|{}|{}|{}",
            self.symbol,
            self.timeframe.name(),
            self.start.timestamp(),
            self.end.timestamp()
        ));
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

fn earliest() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(EARLIEST).map(|t| t.with_timezone(&Utc)).unwrap_or(DateTime::UNIX_EPOCH)
}

/// One import, as stored (`USER#<uid>` / `DSIMPORT#<id>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    pub id: Uuid,
    pub symbol: String,
    pub timeframe: Timeframe,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub pages: u32,
    /// The page asked for and not merged yet (`pages` when completed).
    pub next_page: u32,
    pub status: ImportStatus,
    /// Bars received and merged so far.
    pub bars_received: u64,
    /// Of those, bars new to the dataset.
    pub bars_added: u64,
    /// The broker connection asked last.
    pub connection_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When `next_page` was last asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<DateTime<Utc>>,
    pub ttl: i64,
}

impl ImportRecord {
    /// Page `p`'s window: `[start + p × MAX_PAGE_BARS bars, …)`, cut at `end`.
    pub fn window(&self, page: u32) -> (DateTime<Utc>, DateTime<Utc>) {
        let span = Duration::seconds(self.timeframe.seconds() * MAX_PAGE_BARS as i64);
        let from = self.start + span * page as i32;
        (from, (from + span).min(self.end))
    }
}

pub fn import_key(user: Uuid, id: Uuid) -> Key {
    Key::new(user_pk(user), format!("{IMPORT_PREFIX}{id}"))
}

/// The import use cases: started by the ML routes, fed by the connector channel ([`HistoryHook`]).
#[derive(Clone)]
pub struct HistoryImports {
    store: Arc<dyn ItemStore>,
    push: Arc<dyn Push>,
    clock: Arc<dyn Clock>,
    registry: ConnectorRegistry,
    datasets: Datasets,
}

/// How many times a lost write race on an import record is read again.
const MAX_ATTEMPTS: usize = 8;

impl HistoryImports {
    pub fn new(ports: &Ports) -> Self {
        Self::with_parts(ports.store.clone(), ports.blobs.clone(), ports.push.clone(), ports.clock.clone())
    }

    pub fn with_parts(
        store: Arc<dyn ItemStore>,
        blobs: Arc<dyn BlobStore>,
        push: Arc<dyn Push>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        HistoryImports {
            registry: ConnectorRegistry::new(store.clone(), clock.clone()),
            datasets: Datasets::new(store.clone(), blobs, clock.clone()),
            store,
            push,
            clock,
        }
    }

    /// One of the user's imports, as stored.
    async fn stored(&self, user: Uuid, id: Uuid) -> MlResult<ImportRecord> {
        match self.store.get(&import_key(user, id)).await? {
            Some(item) if !item.is_expired(self.clock.epoch_seconds()) => Ok(item.to_record()?),
            _ => Err(MlError::NotFound("Import not found".into())),
        }
    }

    /// One of the user's imports; a running one whose page was asked for more than [`STALL_AFTER`] ago is failed
    /// as stalled first (see the module docs).
    pub async fn get(&self, user: Uuid, id: Uuid) -> MlResult<ImportRecord> {
        let record = self.stored(user, id).await?;
        let now = self.clock.now();
        let Some(waited) = stalled(&record, now) else { return Ok(record) };
        let why = format!(
            "{STALLED}: no answer to page {} for {} s (the connector went away or stopped answering); POST the same \
             request again to resume from that page",
            record.next_page,
            waited.num_seconds()
        );
        self.fail(user, &record, &why).await?;
        self.stored(user, id).await
    }

    /// Starts or resumes an import (see the module docs); the import as it now stands.
    pub async fn start(&self, user: Uuid, req: ImportRequest) -> MlResult<ImportRecord> {
        let now = self.clock.now();
        req.check(now).map_err(|e| MlError::Refused(e.to_string()))?;
        let link =
            self.registry.find_connector(user, req.connection_id).await?.ok_or(TradingError::ConnectorOffline)?;
        if !link.capabilities.has(Capability::HistoryCandles) {
            return Err(MlError::Conflict(format!(
                "The connector cannot provide price history: it does not state the {} capability",
                Capability::HistoryCandles
            )));
        }
        let id = req.id(user);
        let key = import_key(user, id);
        for _ in 0..MAX_ATTEMPTS {
            let current = self.stored(user, id).await.ok();
            let (record, condition) = match current {
                Some(r) if r.status == ImportStatus::Completed => return Ok(r),
                Some(r) => {
                    let cond = Condition::eq("next_page", u64::from(r.next_page));
                    let resumed = ImportRecord {
                        status: ImportStatus::Running,
                        error: None,
                        connection_id: link.broker_connection_id,
                        updated_at: now,
                        requested_at: Some(now),
                        ttl: ttl(now),
                        ..r
                    };
                    (resumed, cond)
                }
                None => {
                    let fresh = ImportRecord {
                        id,
                        symbol: req.symbol.to_owned(),
                        timeframe: req.timeframe,
                        start: req.start,
                        end: req.end,
                        pages: req.pages(),
                        next_page: 0,
                        status: ImportStatus::Running,
                        bars_received: 0,
                        bars_added: 0,
                        connection_id: link.broker_connection_id,
                        error: None,
                        created_at: now,
                        updated_at: now,
                        requested_at: Some(now),
                        ttl: ttl(now),
                    };
                    (fresh, Condition::NotExists)
                }
            };
            match self.store.put(Item::from_record(&key, &record)?, Some(condition)).await {
                Ok(()) => {}
                Err(e) if e.is_condition_failure() => continue,
                Err(e) => return Err(e.into()),
            }
            let err: MlError = match self.ask(&link, &record).await {
                Ok(()) => return Ok(record),
                Err(PushFailed::Gone) => {
                    let _ = self.registry.unregister(&link.ws_connection_id).await;
                    TradingError::ConnectorOffline.into()
                }
                Err(PushFailed::Unavailable(m)) => {
                    MlError::Busy(format!("The connector is busy or unreachable, please retry: {m}"))
                }
            };
            // Nothing was asked: the import says so (the same request resumes it).
            self.fail(user, &record, &format!("the page could not be asked for: {err}")).await?;
            return Err(err);
        }
        Err(MlError::Busy("The import is being changed by another request, please retry".into()))
    }

    /// Sends `HISTORY_REQUEST` for the record's `next_page`.
    async fn ask(&self, link: &ConnectorLink, r: &ImportRecord) -> Result<(), PushFailed> {
        let (from, to) = r.window(r.next_page);
        let cmd = Command::HistoryRequest {
            request_id: HistoryRequestId { import: r.id, page: r.next_page }.to_string(),
            symbol: r.symbol.clone(),
            timeframe: r.timeframe.name(),
            start: iso(from),
            end: iso(to),
            max_bars: MAX_PAGE_BARS as u32,
        };
        match self.push.post(&link.ws_connection_id, Bytes::from(cmd.to_json())).await {
            Ok(PushOutcome::Delivered) => Ok(()),
            Ok(PushOutcome::Gone) => Err(PushFailed::Gone),
            Err(e) => Err(PushFailed::Unavailable(e.to_string())),
        }
    }

    /// Handles one page (the [`HistoryHook`]); errors are the store's, the page's own faults fail the import.
    pub async fn on_page(&self, user: Uuid, broker: Uuid, page: HistoryPage) -> MlResult<PageOutcome> {
        let Ok(record) = self.stored(user, page.request.import).await else { return Ok(PageOutcome::Unknown) };
        let p = page.request.page;
        if record.status != ImportStatus::Running || p < record.next_page {
            return Ok(PageOutcome::AlreadyApplied);
        }
        if p > record.next_page {
            return Ok(PageOutcome::Unexpected);
        }
        let (from, to) = record.window(p);
        let problem = if page.symbol != record.symbol || page.timeframe != record.timeframe {
            Some(format!(
                "page {p} is {} {}, not the requested {} {}",
                page.symbol,
                page.timeframe.name(),
                record.symbol,
                record.timeframe.name()
            ))
        } else {
            page.candles.iter().find(|c| c.time < from || c.time >= to).map(|c| {
                format!("page {p} holds a bar at {} outside its window [{}, {})", iso(c.time), iso(from), iso(to))
            })
        };
        if let Some(why) = problem {
            self.fail(user, &record, &why).await?;
            return Ok(PageOutcome::Failed);
        }
        let (received, added) = if page.candles.is_empty() {
            (0, 0)
        } else {
            let symbol = nusatrade_domain::instrument::lookup(&record.symbol)
                .map_err(|_| MlError::Refused(format!("unknown symbol {}", record.symbol)))?
                .symbol;
            let series = CandleSeries::new(page.candles).map_err(|e| MlError::Refused(e.to_string()))?;
            match self
                .datasets
                .merge_series(Owner::User(user), symbol, record.timeframe, &series, DatasetSource::Connector)
                .await
            {
                Ok(s) => (s.received as u64, s.added as u64),
                Err(
                    e @ (super::datasets::DatasetError::TooManyBars { .. }
                    | super::datasets::DatasetError::TooManyDatasets(_)),
                ) => {
                    self.fail(user, &record, &e.to_string()).await?;
                    return Ok(PageOutcome::Failed);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let now = self.clock.now();
        let next = p + 1;
        let done = next >= record.pages;
        let advanced = ImportRecord {
            next_page: next,
            status: if done { ImportStatus::Completed } else { ImportStatus::Running },
            bars_received: record.bars_received + received,
            bars_added: record.bars_added + added,
            connection_id: broker,
            updated_at: now,
            requested_at: if done { record.requested_at } else { Some(now) },
            ttl: ttl(now),
            ..record
        };
        let cond = Condition::eq("next_page", u64::from(p)).and(Condition::eq("status", "running"));
        match self.store.put(Item::from_record(&import_key(user, advanced.id), &advanced)?, Some(cond)).await {
            Ok(()) => {}
            // Another instance handled this page first.
            Err(e) if e.is_condition_failure() => return Ok(PageOutcome::AlreadyApplied),
            Err(e) => return Err(e.into()),
        }
        if done {
            info!(%user, import = %advanced.id, bars = advanced.bars_received, "history import completed");
            return Ok(PageOutcome::Completed);
        }
        match self.registry.link(user, broker).await? {
            Some(link) => {
                if let Err(e) = self.ask(&link, &advanced).await {
                    warn!(%user, import = %advanced.id, error = ?e, "next history page not asked: POST again to resume");
                }
            }
            None => warn!(%user, import = %advanced.id, "connector gone: POST the import again to resume"),
        }
        Ok(PageOutcome::Merged)
    }

    /// The connector answered page `request` with `ERROR`: the import fails (while it waits for that page).
    pub async fn on_error(&self, user: Uuid, request: HistoryRequestId, error: &str) -> MlResult<()> {
        let Ok(record) = self.stored(user, request.import).await else { return Ok(()) };
        if record.status == ImportStatus::Running && record.next_page == request.page {
            let text: String = error.chars().take(MAX_ERROR_TEXT).collect();
            self.fail(user, &record, &format!("the connector could not answer page {}: {text}", request.page)).await?;
        }
        Ok(())
    }

    async fn fail(&self, user: Uuid, record: &ImportRecord, why: &str) -> Result<(), StoreError> {
        warn!(%user, import = %record.id, reason = why, "history import failed");
        let now = self.clock.now();
        let failed = ImportRecord {
            status: ImportStatus::Failed,
            error: Some(why.to_owned()),
            updated_at: now,
            ttl: ttl(now),
            ..record.clone()
        };
        let cond = Condition::eq("next_page", u64::from(record.next_page)).and(Condition::eq("status", "running"));
        match self.store.put(Item::from_record(&import_key(user, record.id), &failed)?, Some(cond)).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_condition_failure() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// How long a running import has waited for its page, when that is longer than [`STALL_AFTER`].
pub fn stalled(r: &ImportRecord, now: DateTime<Utc>) -> Option<Duration> {
    let waited = now - r.requested_at.unwrap_or(r.updated_at);
    (r.status == ImportStatus::Running && waited > STALL_AFTER).then_some(waited)
}

fn ttl(now: DateTime<Utc>) -> i64 {
    (now + Duration::days(IMPORT_TTL_DAYS)).timestamp()
}

#[derive(Debug)]
enum PushFailed {
    Gone,
    Unavailable(String),
}

/// What a page did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageOutcome {
    /// Merged; the next page was asked for.
    Merged,
    /// Merged; it was the last.
    Completed,
    /// Merged before (a re-delivery or a repeat), or the import is no longer running: nothing changed.
    AlreadyApplied,
    /// Not the page the import waits for: ignored.
    Unexpected,
    /// No such import: ignored.
    Unknown,
    /// Refused: the import failed.
    Failed,
}

#[async_trait]
impl HistoryHook for HistoryImports {
    async fn page(&self, user: Uuid, broker: Uuid, page: HistoryPage) {
        let request = page.request;
        match self.on_page(user, broker, page).await {
            Ok(outcome) => info!(%user, %request, ?outcome, "history page"),
            Err(e) => warn!(%user, %request, error = %e, "history page not applied: POST the import again to resume"),
        }
    }

    async fn failed(&self, user: Uuid, request: HistoryRequestId, error: &str) {
        if let Err(e) = self.on_error(user, request, error).await {
            warn!(%user, %request, error = %e, "could not record a failed history page");
        }
    }
}

#[cfg(test)]
mod tests;
