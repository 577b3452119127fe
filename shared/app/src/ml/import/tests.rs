use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::TimeZone;
use serde_json::Value;

use super::*;
use crate::connector::capabilities::Capabilities;
use crate::ports::{BlobError, BlobInfo, BlobKey, ManualClock, PushError};

#[derive(Default)]
struct MemoryBlobs(Mutex<BTreeMap<BlobKey, Bytes>>);

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, key: &BlobKey, data: Bytes, _content_type: &str) -> Result<(), BlobError> {
        self.0.lock().unwrap().insert(key.clone(), data);
        Ok(())
    }
    async fn get(&self, key: &BlobKey, _max_bytes: u64) -> Result<Option<Bytes>, BlobError> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, BlobError> {
        let map = self.0.lock().unwrap();
        Ok(map
            .iter()
            .filter(|(k, _)| k.as_str().starts_with(prefix))
            .map(|(k, v)| BlobInfo { key: k.clone(), size: v.len() as u64 })
            .collect())
    }
}

/// Records frames; answers `Gone` once `gone` is set.
#[derive(Default)]
struct Frames(Mutex<Vec<(String, Value)>>, std::sync::atomic::AtomicBool);

#[async_trait]
impl Push for Frames {
    async fn post(&self, ws: &str, data: Bytes) -> Result<PushOutcome, PushError> {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(PushOutcome::Gone);
        }
        let v = serde_json::from_slice(&data).map_err(|e| PushError::Invalid(e.to_string()))?;
        self.0.lock().unwrap().push((ws.to_owned(), v));
        Ok(PushOutcome::Delivered)
    }
    async fn close(&self, _ws: &str) -> Result<(), PushError> {
        Ok(())
    }
}

impl Frames {
    fn history(&self) -> Vec<Value> {
        self.0.lock().unwrap().iter().map(|(_, v)| v.clone()).filter(|v| v["type"] == "HISTORY_REQUEST").collect()
    }
}

struct Bench {
    imports: HistoryImports,
    push: Arc<Frames>,
    registry: ConnectorRegistry,
    user: Uuid,
    broker: Uuid,
    clock: Arc<ManualClock>,
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
}

async fn bench(capabilities: Capabilities) -> Bench {
    let store: Arc<dyn ItemStore> = Arc::new(crate::settings::tests::MemoryStore::default());
    let manual = Arc::new(ManualClock::new(now()));
    let clock: Arc<dyn Clock> = manual.clone();
    let push = Arc::new(Frames::default());
    let imports =
        HistoryImports::with_parts(store.clone(), Arc::new(MemoryBlobs::default()), push.clone(), clock.clone());
    let registry = ConnectorRegistry::new(store, clock);
    let (user, broker) = (Uuid::new_v4(), Uuid::new_v4());
    registry.register_connector("ws-1", user, "u@example.com", broker).await.unwrap();
    registry.record_capabilities("ws-1", user, broker, &capabilities).await.unwrap();
    Bench { imports, push, registry, user, broker, clock: manual }
}

fn history() -> Capabilities {
    [Capability::HistoryCandles].into_iter().collect()
}

/// 900 H1 bars: three pages (400, 400, 100).
fn request() -> ImportRequest {
    let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
    ImportRequest {
        symbol: "EURUSD",
        timeframe: Timeframe::H1,
        start,
        end: start + Duration::hours(900),
        connection_id: None,
    }
}

/// Page `p` of `r` with a plausible bar per hour of its window.
fn page_of(r: &ImportRecord, p: u32) -> HistoryPage {
    let (from, to) = r.window(p);
    let mut candles = Vec::new();
    let mut t = from;
    let mut price = 1.08 + p as f64 * 0.001;
    while t < to {
        let close = price + 0.0002;
        candles.push(nusatrade_ml::Candle {
            time: t,
            open: price,
            high: close + 0.0001,
            low: price - 0.0001,
            close,
            volume: 10.0,
        });
        price = close;
        t += Duration::hours(1);
    }
    HistoryPage {
        request: HistoryRequestId { import: r.id, page: p },
        symbol: r.symbol.clone(),
        timeframe: r.timeframe,
        candles,
    }
}

#[test]
fn ranges_are_checked_and_cut_into_pages() {
    let r = request();
    assert_eq!(r.check(now()), Ok(()));
    assert_eq!((r.bars(), r.pages()), (900, 3));
    assert_eq!(ImportRequest { end: r.start, ..r }.check(now()), Err(RangeError::Empty));
    assert_eq!(ImportRequest { end: now() + Duration::days(1), ..r }.check(now()), Err(RangeError::Future));
    let early = Utc.with_ymd_and_hms(1999, 12, 31, 0, 0, 0).unwrap();
    assert_eq!(ImportRequest { start: early, ..r }.check(now()), Err(RangeError::TooEarly));
    let long = ImportRequest { start: r.end - Duration::hours(MAX_IMPORT_BARS + 1), ..r };
    assert!(matches!(long.check(now()), Err(RangeError::TooLong { .. })));
    let m1 = ImportRequest { timeframe: Timeframe::M1, ..r };
    assert!(matches!(m1.check(now()), Err(RangeError::TooLong { .. })), "900 hours of M1 bars is too many");
    // the same request is the same import; anything else is another
    let user = Uuid::new_v4();
    assert_eq!(r.id(user), r.id(user));
    assert_ne!(r.id(user), r.id(Uuid::new_v4()));
    assert_ne!(r.id(user), ImportRequest { timeframe: Timeframe::H4, ..r }.id(user));
}

#[tokio::test]
async fn an_import_asks_page_by_page_and_a_repeated_page_changes_nothing() {
    let b = bench(history()).await;
    let rec = b.imports.start(b.user, request()).await.unwrap();
    assert_eq!((rec.status, rec.pages, rec.next_page), (ImportStatus::Running, 3, 0));
    let asked = b.push.history();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["request_id"], format!("hist:{}:0", rec.id));
    assert_eq!((asked[0]["symbol"].as_str(), asked[0]["timeframe"].as_str()), (Some("EURUSD"), Some("H1")));
    assert_eq!(asked[0]["start"], "2026-01-05T00:00:00.000000Z");
    assert_eq!(asked[0]["max_bars"], MAX_PAGE_BARS);

    let p0 = page_of(&rec, 0);
    assert_eq!(b.imports.on_page(b.user, b.broker, p0.clone()).await.unwrap(), PageOutcome::Merged);
    assert_eq!(b.push.history().last().unwrap()["request_id"], format!("hist:{}:1", rec.id));
    let ds = b.imports.datasets.get(Owner::User(b.user), "EURUSD", Timeframe::H1).await.unwrap().unwrap();
    assert_eq!((ds.bars, ds.source), (400, DatasetSource::Connector));

    // a re-delivered page: nothing changes, nothing more is asked
    assert_eq!(b.imports.on_page(b.user, b.broker, p0).await.unwrap(), PageOutcome::AlreadyApplied);
    let again = b.imports.datasets.get(Owner::User(b.user), "EURUSD", Timeframe::H1).await.unwrap().unwrap();
    assert_eq!(again.rev, ds.rev);
    assert_eq!(b.push.history().len(), 2);
    // a page from the future is ignored
    assert_eq!(b.imports.on_page(b.user, b.broker, page_of(&rec, 2)).await.unwrap(), PageOutcome::Unexpected);

    assert_eq!(b.imports.on_page(b.user, b.broker, page_of(&rec, 1)).await.unwrap(), PageOutcome::Merged);
    assert_eq!(b.imports.on_page(b.user, b.broker, page_of(&rec, 2)).await.unwrap(), PageOutcome::Completed);
    let done = b.imports.get(b.user, rec.id).await.unwrap();
    assert_eq!(
        (done.status, done.next_page, done.bars_received, done.bars_added),
        (ImportStatus::Completed, 3, 900, 900)
    );
    let ds = b.imports.datasets.get(Owner::User(b.user), "EURUSD", Timeframe::H1).await.unwrap().unwrap();
    assert_eq!(ds.bars, 900);

    // the same request again: answered as it stands, nothing asked, nothing merged
    let repeat = b.imports.start(b.user, request()).await.unwrap();
    assert_eq!(repeat, done);
    assert_eq!(b.push.history().len(), 3);
    assert_eq!(b.imports.on_page(b.user, b.broker, page_of(&rec, 2)).await.unwrap(), PageOutcome::AlreadyApplied);
}

#[tokio::test]
async fn an_interrupted_import_resumes_at_the_page_it_waits_for() {
    let b = bench(history()).await;
    let rec = b.imports.start(b.user, request()).await.unwrap();
    b.imports.on_page(b.user, b.broker, page_of(&rec, 0)).await.unwrap();
    // the link drops; the connector fails the page
    b.imports.on_error(b.user, HistoryRequestId { import: rec.id, page: 1 }, "no history for EURUSD").await.unwrap();
    let failed = b.imports.get(b.user, rec.id).await.unwrap();
    assert_eq!(failed.status, ImportStatus::Failed);
    assert!(failed.error.as_deref().unwrap().contains("no history for EURUSD"), "{failed:?}");
    // an error for another page changes nothing
    b.imports.on_error(b.user, HistoryRequestId { import: rec.id, page: 0 }, "x").await.unwrap();
    assert_eq!(b.imports.get(b.user, rec.id).await.unwrap(), failed);

    let resumed = b.imports.start(b.user, request()).await.unwrap();
    assert_eq!((resumed.status, resumed.next_page, resumed.error.clone()), (ImportStatus::Running, 1, None));
    assert_eq!(b.push.history().last().unwrap()["request_id"], format!("hist:{}:1", rec.id));
    assert_eq!(b.imports.on_page(b.user, b.broker, page_of(&rec, 1)).await.unwrap(), PageOutcome::Merged);
}

#[tokio::test]
async fn an_import_whose_connector_stops_answering_is_noticed_as_stalled_and_resumes() {
    let b = bench(history()).await;
    let rec = b.imports.start(b.user, request()).await.unwrap();
    b.imports.on_page(b.user, b.broker, page_of(&rec, 0)).await.unwrap();
    // page 1 was asked for; the connector answers nothing
    b.clock.advance(STALL_AFTER);
    assert_eq!(b.imports.get(b.user, rec.id).await.unwrap().status, ImportStatus::Running, "not yet");
    b.clock.advance(Duration::seconds(1));
    let stalled = b.imports.get(b.user, rec.id).await.unwrap();
    assert_eq!((stalled.status, stalled.next_page), (ImportStatus::Failed, 1));
    let why = stalled.error.clone().unwrap();
    assert!(why.starts_with(STALLED) && why.contains("page 1") && why.contains("121 s"), "{why}");
    // a late page changes nothing; the same request resumes from the page it waited for
    assert_eq!(b.imports.on_page(b.user, b.broker, page_of(&rec, 1)).await.unwrap(), PageOutcome::AlreadyApplied);
    let resumed = b.imports.start(b.user, request()).await.unwrap();
    assert_eq!((resumed.status, resumed.next_page, resumed.error.clone()), (ImportStatus::Running, 1, None));
    assert_eq!(b.push.history().last().unwrap()["request_id"], format!("hist:{}:1", rec.id));
    assert_eq!(b.imports.on_page(b.user, b.broker, page_of(&rec, 1)).await.unwrap(), PageOutcome::Merged);
    // a page merged in time restarts the wait
    b.clock.advance(Duration::seconds(100));
    assert_eq!(b.imports.get(b.user, rec.id).await.unwrap().status, ImportStatus::Running);
}

#[tokio::test]
async fn a_page_outside_its_window_fails_the_import_and_stores_nothing() {
    let b = bench(history()).await;
    let rec = b.imports.start(b.user, request()).await.unwrap();
    let wrong = HistoryPage { request: HistoryRequestId { import: rec.id, page: 0 }, ..page_of(&rec, 1) };
    assert_eq!(b.imports.on_page(b.user, b.broker, wrong).await.unwrap(), PageOutcome::Failed);
    let failed = b.imports.get(b.user, rec.id).await.unwrap();
    assert!(failed.error.as_deref().unwrap().contains("outside its window"), "{failed:?}");
    assert!(b.imports.datasets.get(Owner::User(b.user), "EURUSD", Timeframe::H1).await.unwrap().is_none());
    let other = HistoryPage { symbol: "GBPUSD".into(), ..page_of(&rec, 0) };
    b.imports.start(b.user, request()).await.unwrap();
    assert_eq!(b.imports.on_page(b.user, b.broker, other).await.unwrap(), PageOutcome::Failed);
    // another user's connector cannot feed this user's import
    let stranger = Uuid::new_v4();
    assert_eq!(b.imports.on_page(stranger, b.broker, page_of(&rec, 0)).await.unwrap(), PageOutcome::Unknown);
}

#[tokio::test]
async fn a_connector_without_the_capability_or_none_online_is_refused() {
    let b = bench(Capabilities::none()).await;
    let e = b.imports.start(b.user, request()).await.unwrap_err();
    assert!(matches!(&e, MlError::Conflict(m) if m.contains("cannot provide price history")), "{e:?}");
    assert!(b.push.history().is_empty());
    b.registry.unregister("ws-1").await.unwrap();
    let e = b.imports.start(b.user, request()).await.unwrap_err();
    assert!(matches!(e, MlError::Trading(TradingError::ConnectorOffline)), "{e:?}");
    let e = b.imports.get(b.user, request().id(b.user)).await.unwrap_err();
    assert!(matches!(e, MlError::NotFound(_)));
}

#[tokio::test]
async fn a_connector_gone_when_asked_fails_the_import_and_the_link() {
    let b = bench(history()).await;
    b.push.1.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = b.imports.start(b.user, request()).await.unwrap_err();
    assert!(matches!(e, MlError::Trading(TradingError::ConnectorOffline)), "{e:?}");
    let rec = b.imports.get(b.user, request().id(b.user)).await.unwrap();
    assert_eq!((rec.status, rec.next_page), (ImportStatus::Failed, 0));
    assert!(b.registry.link(b.user, b.broker).await.unwrap().is_none(), "the gone connector's link is removed");
}
