//! Backup and restore on a store + blob store pair (see [`crate::backup`]): round trip, corruption
//! detected before anything is written, incomplete backups never restored, non-empty targets
//! refused, the queue job idempotent under redelivery.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{Duration, Utc};
use rust_decimal::Decimal;

use crate::backup::{
    BackupError, BackupId, BackupJob, BackupOptions, BackupRequest, BackupSchedule, BackupService, BackupStatus,
    DAILY_BACKUP_BODY, Manifest, Phase, Progress, ProgressFn, RestoreOptions, no_progress,
};
use crate::contract::unique;
use crate::jobs::{JobError, QueueConsumer};
use crate::ports::store::{MAX_BATCH_WRITE_ITEMS, TTL_ATTR};
use crate::ports::*;

/// Builds fresh, empty adapters: each `store` its own table / data dir, each `blobs` its own bucket /
/// directory.
#[async_trait]
pub trait BackupFactory: Sync {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore>;
    async fn blobs(&self) -> Arc<dyn BlobStore>;
}

struct Fixture {
    clock: Arc<ManualClock>,
    source: Arc<dyn ItemStore>,
    blobs: Arc<dyn BlobStore>,
    /// The items of `source` that are live now.
    live: Vec<Item>,
}

impl Fixture {
    fn service(&self, store: &Arc<dyn ItemStore>) -> BackupService {
        BackupService::new(store.clone(), self.blobs.clone(), self.clock.clone(), Arc::new(RandomIds))
    }
    async fn empty_store(&self, f: &impl BackupFactory) -> Arc<dyn ItemStore> {
        f.store(self.clock.clone()).await
    }
}

/// A store with a bit of everything: users found by e-mail through the index, orders with exact
/// decimals and nested values, sessions that expire in an hour, and expired items (never backed up).
async fn fixture(f: &impl BackupFactory) -> Fixture {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let source = f.store(clock.clone()).await;
    let blobs = f.blobs().await;
    let now = clock.epoch_seconds();
    let mut live = Vec::new();
    let mut expired = Vec::new();
    for u in 0..40 {
        let user = unique(&format!("USER#{u}-"));
        live.push(
            Item::new(&Key::new(user.clone(), "PROFILE"))
                .with("GSI1PK", format!("EMAIL#{user}@example.com"))
                .with("GSI1SK", "USER")
                .with("full_name", format!("Trader {u} ✓"))
                .with("version", 3i64),
        );
        for o in 0..(u % 5) {
            let mut fill = BTreeMap::new();
            fill.insert("price".to_owned(), Value::N(Decimal::new(1_085_432 + o as i64, 6)));
            fill.insert("ticket".to_owned(), Value::N(Decimal::from(500_000_000 + o as i64)));
            live.push(
                Item::new(&Key::new(user.clone(), format!("ORDER#{o:03}")))
                    .with("volume", Value::N("0.10".parse().unwrap()))
                    .with("status", "OPEN")
                    .with("fill", Value::M(fill))
                    .with("tags", Value::L(vec![Value::S("EURUSD".into()), Value::Null, Value::Bool(true)]))
                    .with("raw", Value::B(vec![0, 1, 254, 255])),
            );
        }
        let session = Item::new(&Key::new(user.clone(), "SESSION#1")).with("refresh", "h");
        if u % 3 == 0 {
            expired.push(session.with(TTL_ATTR, now - 30));
        } else {
            live.push(session.with(TTL_ATTR, now + 3600));
        }
    }
    let all: Vec<Item> = live.iter().chain(&expired).cloned().collect();
    for chunk in all.chunks(MAX_BATCH_WRITE_ITEMS) {
        source.put_many(chunk.to_vec()).await.unwrap();
    }
    live.sort_by_key(|i| i.key().unwrap());
    Fixture { clock, source, blobs, live }
}

/// Every live item of the store, in key order.
async fn dump(store: &Arc<dyn ItemStore>) -> Vec<Item> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.scan(Scan::all().limit(1000).after(cursor)).await.unwrap();
        out.extend(page.items);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.sort_by_key(|i| i.key().unwrap());
    out
}

fn recorder() -> (ProgressFn, Arc<Mutex<Vec<Progress>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (Arc::new(move |p| sink.lock().unwrap().push(p)), seen)
}

fn last_of(seen: &Mutex<Vec<Progress>>, phase: Phase) -> Option<u64> {
    seen.lock().unwrap().iter().filter(|p| p.phase == phase).map(|p| p.done).max()
}

async fn backup(fx: &Fixture, segments: u32) -> Manifest {
    let options = BackupOptions { id: None, segments, page_size: 7 };
    fx.service(&fx.source).backup(options, no_progress()).await.unwrap()
}

async fn blob_bytes(blobs: &Arc<dyn BlobStore>, key: &str) -> Bytes {
    blobs.get(&BlobKey::new(key).unwrap(), 1 << 30).await.unwrap().expect("blob exists")
}

async fn put_blob(blobs: &Arc<dyn BlobStore>, key: &str, data: Vec<u8>) {
    blobs.put(&BlobKey::new(key).unwrap(), Bytes::from(data), "application/octet-stream").await.unwrap();
}

pub async fn backup_then_restore_gives_an_identical_item_set(f: &impl BackupFactory) {
    let fx = fixture(f).await;
    let (progress, seen) = recorder();
    let options = BackupOptions { id: None, segments: 4, page_size: 7 };
    let manifest = fx.service(&fx.source).backup(options, progress).await.unwrap();
    let id = manifest.backup_id.clone();
    assert_eq!(manifest.item_count, fx.live.len() as u64, "every live item, no expired one");
    assert_eq!(manifest.total_segments, 4);
    assert_eq!(manifest.files.len(), 4);
    assert!(manifest.files.iter().filter(|f| f.items > 0).count() > 1, "items spread over segments");
    assert!(manifest.started_at <= manifest.finished_at);
    assert_eq!(last_of(&seen, Phase::Export), Some(fx.live.len() as u64));
    // The files are where the manifest says, with the recorded sizes, and the manifest is there.
    let listed: BTreeMap<String, u64> =
        fx.blobs.list(&id.prefix()).await.unwrap().into_iter().map(|b| (b.key.as_str().to_owned(), b.size)).collect();
    assert_eq!(listed.len(), 5);
    assert!(listed.contains_key(&id.manifest_key()));
    for file in &manifest.files {
        assert_eq!(listed.get(&file.key), Some(&file.bytes), "{}", file.key);
    }
    let backups = fx.service(&fx.source).list().await.unwrap();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0].status, BackupStatus::Complete(Box::new(manifest.clone())));

    // Restore into a fresh store.
    let target = fx.empty_store(f).await;
    let (progress, seen) = recorder();
    let report = fx.service(&target).restore(&id, RestoreOptions::default(), progress).await.unwrap();
    assert_eq!(report.items_in_backup, fx.live.len() as u64);
    assert_eq!(report.items_written, fx.live.len() as u64);
    assert_eq!(report.skipped_expired, 0);
    assert_eq!(report.items_in_target, fx.live.len() as u64);
    assert!(report.exact);
    assert_eq!(report.files, 4);
    assert_eq!(last_of(&seen, Phase::Verify), Some(fx.live.len() as u64));
    assert_eq!(last_of(&seen, Phase::Write), Some(fx.live.len() as u64));
    assert_eq!(last_of(&seen, Phase::Count), Some(fx.live.len() as u64));
    let restored = dump(&target).await;
    assert_eq!(restored, fx.live, "identical item set, values included");
    assert_eq!(restored, dump(&fx.source).await);
    // The index is rebuilt with the items.
    let user = &fx.live.iter().find(|i| i.get_s("GSI1SK") == Some("USER")).unwrap();
    let by_email = target.query(Query::index(Index::Gsi1, user.get_s("GSI1PK").unwrap())).await.unwrap();
    assert_eq!(by_email.items, vec![(*user).clone()]);

    // Two hours later the sessions have expired: a restore skips them instead of resurrecting them.
    fx.clock.advance(Duration::hours(2));
    let sessions = fx.live.iter().filter(|i| i.get(TTL_ATTR).is_some()).count() as u64;
    assert!(sessions > 0);
    let later = fx.empty_store(f).await;
    let options = RestoreOptions { force: false, parallel_files: 1, writes_in_flight: 1 };
    let report = fx.service(&later).restore(&id, options, no_progress()).await.unwrap();
    assert_eq!(report.skipped_expired, sessions);
    assert_eq!(report.items_written, fx.live.len() as u64 - sessions);
    assert_eq!(report.items_in_target, report.items_written);
    assert_eq!(dump(&later).await, dump(&fx.source).await);
}

pub async fn corrupted_files_are_detected_before_anything_is_written(f: &impl BackupFactory) {
    let fx = fixture(f).await;
    let manifest = backup(&fx, 3).await;
    let id = manifest.backup_id.clone();
    let file = manifest.files.iter().max_by_key(|f| f.bytes).unwrap().clone();
    let original = blob_bytes(&fx.blobs, &file.key).await.to_vec();
    let target = fx.empty_store(f).await;
    let svc = fx.service(&target);

    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let mut truncated = original.clone();
    truncated.pop();
    let mut extended = original.clone();
    extended.push(0);
    let cases =
        [("one bit flipped", flipped, "SHA-256"), ("truncated", truncated, "bytes"), ("extended", extended, "larger")];
    for (what, data, why) in cases {
        put_blob(&fx.blobs, &file.key, data).await;
        match svc.restore(&id, RestoreOptions::default(), no_progress()).await {
            Err(BackupError::Corrupt { key, reason }) => {
                assert_eq!(key, file.key, "{what}");
                assert!(reason.contains(why), "{what}: {reason}");
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(matches!(svc.verify(&id, 2, no_progress()).await, Err(BackupError::Corrupt { .. })), "{what}");
        assert!(svc.store_is_empty().await.unwrap(), "{what}: nothing written");
    }
    // A missing file.
    fx.blobs.delete(&BlobKey::new(file.key.clone()).unwrap()).await.unwrap();
    let err = svc.restore(&id, RestoreOptions::default(), no_progress()).await.unwrap_err();
    assert!(matches!(&err, BackupError::Corrupt { reason, .. } if reason.contains("missing")), "{err:?}");
    put_blob(&fx.blobs, &file.key, original.clone()).await;

    // A manifest edited consistently (sums still add up) to claim one more item: the line count
    // check finds it.
    let mut lying = manifest.clone();
    let at = lying.files.iter().position(|f| f.key == file.key).unwrap();
    lying.files[at].items += 1;
    lying.item_count += 1;
    put_blob(&fx.blobs, &id.manifest_key(), serde_json::to_vec(&lying).unwrap()).await;
    let err = svc.restore(&id, RestoreOptions::default(), no_progress()).await.unwrap_err();
    assert!(matches!(&err, BackupError::Corrupt { reason, .. } if reason.contains("items")), "{err:?}");
    assert!(svc.store_is_empty().await.unwrap());

    // A file rewritten with a matching checksum and size but an undecodable line after enough good
    // ones to fill several write batches: the verify pass decodes every line before the first write.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..3 * MAX_BATCH_WRITE_ITEMS {
        let good = Item::new(&Key::new(format!("FORGED#{i}"), "X"));
        crate::backup::format::write_line(&mut gz, &good).unwrap();
    }
    std::io::Write::write_all(&mut gz, b"not json\n").unwrap();
    let bad = gz.finish().unwrap();
    let mut forged = manifest.clone();
    forged.files[at].bytes = bad.len() as u64;
    forged.files[at].sha256 = crate::backup::format::sha256_hex(&bad);
    forged.files[at].items = 3 * MAX_BATCH_WRITE_ITEMS as u64 + 1;
    forged.item_count = forged.files.iter().map(|f| f.items).sum();
    forged.bytes = forged.files.iter().map(|f| f.bytes).sum();
    put_blob(&fx.blobs, &file.key, bad).await;
    put_blob(&fx.blobs, &id.manifest_key(), serde_json::to_vec(&forged).unwrap()).await;
    let err = svc.restore(&id, RestoreOptions::default(), no_progress()).await.unwrap_err();
    assert!(matches!(&err, BackupError::Corrupt { reason, .. } if reason.contains("line 76")), "{err:?}");
    assert!(svc.store_is_empty().await.unwrap(), "not even the good first line was written");

    // Put back as it was, the backup restores.
    put_blob(&fx.blobs, &file.key, original).await;
    put_blob(&fx.blobs, &id.manifest_key(), serde_json::to_vec(&manifest).unwrap()).await;
    let report = svc.restore(&id, RestoreOptions::default(), no_progress()).await.unwrap();
    assert_eq!(report.items_in_target, fx.live.len() as u64);
}

pub async fn incomplete_backups_are_never_restored(f: &impl BackupFactory) {
    let fx = fixture(f).await;
    let manifest = backup(&fx, 2).await;
    let id = manifest.backup_id.clone();
    let target = fx.empty_store(f).await;
    let svc = fx.service(&target);
    // Without its manifest (as a backup that died before the end leaves it) it does not exist.
    fx.blobs.delete(&BlobKey::new(id.manifest_key()).unwrap()).await.unwrap();
    assert!(matches!(svc.restore(&id, RestoreOptions::default(), no_progress()).await, Err(BackupError::NotFound(_))));
    let listed = svc.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, BackupStatus::Incomplete);
    assert_eq!(listed[0].blobs, 2, "its segment files are there");
    // An unknown id, an unreadable manifest.
    let unknown = BackupId::parse("20000101T000000Z-none").unwrap();
    assert!(matches!(
        svc.restore(&unknown, RestoreOptions::default(), no_progress()).await,
        Err(BackupError::NotFound(_))
    ));
    put_blob(&fx.blobs, &id.manifest_key(), b"{\"format\": \"nusatrade-table-backup\"".to_vec()).await;
    assert!(matches!(
        svc.restore(&id, RestoreOptions::default(), no_progress()).await,
        Err(BackupError::Unrestorable { .. })
    ));
    assert!(matches!(svc.list().await.unwrap()[0].status, BackupStatus::Unreadable(_)));
    // A manifest copied from another backup does not make this one restorable either.
    let other = backup(&fx, 2).await;
    let copied = blob_bytes(&fx.blobs, &other.backup_id.manifest_key()).await;
    put_blob(&fx.blobs, &id.manifest_key(), copied.to_vec()).await;
    assert!(matches!(
        svc.restore(&id, RestoreOptions::default(), no_progress()).await,
        Err(BackupError::Unrestorable { .. })
    ));
    assert!(svc.store_is_empty().await.unwrap());
}

pub async fn non_empty_target_is_refused_unless_forced(f: &impl BackupFactory) {
    let fx = fixture(f).await;
    let manifest = backup(&fx, 2).await;
    let id = manifest.backup_id.clone();
    // The source itself is not empty.
    let err = fx.service(&fx.source).restore(&id, RestoreOptions::default(), no_progress()).await.unwrap_err();
    assert!(matches!(err, BackupError::TargetNotEmpty), "{err:?}");
    // Nor is a store with one other item, which a refused restore leaves alone.
    let target = fx.empty_store(f).await;
    let extra = Item::new(&Key::new(unique("OTHER#"), "X")).with("keep", true);
    target.put(extra.clone(), None).await.unwrap();
    let svc = fx.service(&target);
    assert!(matches!(
        svc.restore(&id, RestoreOptions::default(), no_progress()).await,
        Err(BackupError::TargetNotEmpty)
    ));
    assert_eq!(dump(&target).await, vec![extra.clone()]);
    // Forced: the backup's items join it; the count can only be checked as "at least".
    let options = RestoreOptions { force: true, ..RestoreOptions::default() };
    let report = svc.restore(&id, options, no_progress()).await.unwrap();
    assert!(!report.exact);
    assert_eq!(report.items_in_target, fx.live.len() as u64 + 1);
    let mut expected = fx.live.clone();
    expected.push(extra);
    expected.sort_by_key(|i| i.key().unwrap());
    assert_eq!(dump(&target).await, expected);
    // A store holding only expired items counts as empty.
    let stale = fx.empty_store(f).await;
    let now = fx.clock.epoch_seconds();
    stale.put(Item::new(&Key::new(unique("OLD#"), "X")).with(TTL_ATTR, now - 1), None).await.unwrap();
    let report = fx.service(&stale).restore(&id, RestoreOptions::default(), no_progress()).await.unwrap();
    assert!(report.exact);
    assert_eq!(dump(&stale).await, fx.live);
}

fn message(body: &str, receive_count: u32) -> ReceivedMessage {
    ReceivedMessage { id: unique("msg-"), body: body.to_owned(), receipt: unique("r-"), receive_count }
}

pub async fn redelivered_backup_message_is_idempotent(f: &impl BackupFactory) {
    let fx = fixture(f).await;
    let svc = fx.service(&fx.source);
    let job = BackupJob::new(svc.clone(), BackupOptions { id: None, segments: 2, page_size: 50 });
    assert_eq!(job.queue(), "backup");
    let id = svc.new_id();
    let body = BackupRequest { backup_id: Some(id.clone()), segments: Some(3), ..Default::default() }.to_body();
    job.handle(&message(&body, 1)).await.unwrap();
    let first = svc.manifest(&id).await.unwrap().expect("the backup is complete");
    assert_eq!(first.total_segments, 3, "the message's segment count");
    assert_eq!(first.item_count, fx.live.len() as u64);
    let blobs_before = fx.blobs.list(&id.prefix()).await.unwrap();
    // The store changes, then the same message comes again: nothing is exported again.
    fx.source.put(Item::new(&Key::new(unique("NEW#"), "X")), None).await.unwrap();
    fx.clock.advance(Duration::seconds(5));
    job.handle(&message(&body, 2)).await.unwrap();
    assert_eq!(svc.manifest(&id).await.unwrap(), Some(first.clone()));
    assert_eq!(fx.blobs.list(&id.prefix()).await.unwrap(), blobs_before);
    for file in &first.files {
        assert_eq!(format_sha(&blob_bytes(&fx.blobs, &file.key).await), file.sha256);
    }

    // A daily schedule tick delivered twice (or redelivered later that day) makes one backup.
    job.handle(&message(DAILY_BACKUP_BODY, 1)).await.unwrap();
    job.handle(&message(DAILY_BACKUP_BODY, 1)).await.unwrap();
    let daily = BackupRequest { schedule: Some(BackupSchedule::Daily), ..Default::default() }.backup_id(fx.clock.now());
    let daily = daily.unwrap();
    assert!(daily.as_str().ends_with("T000000Z-daily"), "{daily}");
    let listed = svc.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|b| matches!(b.status, BackupStatus::Complete(_))));
    assert!(listed.iter().any(|b| b.id == daily));
    assert_eq!(svc.manifest(&daily).await.unwrap().unwrap().total_segments, 2, "the job's default");
    // The next day's tick is the next day's backup.
    fx.clock.advance(Duration::days(1));
    job.handle(&message(DAILY_BACKUP_BODY, 1)).await.unwrap();
    assert_eq!(svc.list().await.unwrap().len(), 3);

    // The same request twice in one batch (handled concurrently): one backup, whose files match its
    // manifest.
    let twice = svc.new_id();
    let body = BackupRequest { backup_id: Some(twice.clone()), ..Default::default() }.to_body();
    let (m1, m2) = (message(&body, 1), message(&body, 1));
    let (a, b) = futures::join!(job.handle(&m1), job.handle(&m2));
    a.unwrap();
    b.unwrap();
    assert_eq!(svc.list().await.unwrap().len(), 4);
    svc.verify(&twice, 2, no_progress()).await.unwrap();

    // A backup that died half way (files, no manifest) is redone by its redelivery.
    let partial = svc.new_id();
    let options = BackupOptions { id: Some(partial.clone()), segments: 2, page_size: 50 };
    svc.backup(options, no_progress()).await.unwrap();
    fx.blobs.delete(&BlobKey::new(partial.manifest_key()).unwrap()).await.unwrap();
    fx.source.put(Item::new(&Key::new(unique("NEWER#"), "X")), None).await.unwrap();
    let body = BackupRequest { backup_id: Some(partial.clone()), ..Default::default() }.to_body();
    job.handle(&message(&body, 2)).await.unwrap();
    let redone = svc.manifest(&partial).await.unwrap().expect("completed on redelivery");
    // The store now: the two new items in, the sessions expired a day ago out.
    let now_live = dump(&fx.source).await;
    assert_eq!(now_live.len(), fx.live.iter().filter(|i| i.get(TTL_ATTR).is_none()).count() + 2);
    assert_eq!(redone.item_count, now_live.len() as u64, "the redone backup is of the store as it is now");
    let target = fx.empty_store(f).await;
    let report = fx.service(&target).restore(&partial, RestoreOptions::default(), no_progress()).await.unwrap();
    assert_eq!(report.items_in_target, now_live.len() as u64);
    assert_eq!(dump(&target).await, now_live);

    // Messages that can never be handled are refused (they end in the dead-letter queue).
    let bad_bodies = [
        "",
        "{}",
        "not json",
        r#"{"backup_id": "../x"}"#,
        r#"{"backup_id": "20261122T030000Z-a", "x": 1}"#,
        r#"{"schedule": "hourly"}"#,
    ];
    for bad in bad_bodies {
        assert!(matches!(job.handle(&message(bad, 1)).await, Err(JobError::Invalid(_))), "{bad:?}");
    }
    let too_many = BackupRequest { backup_id: Some(svc.new_id()), segments: Some(100_000), ..Default::default() };
    assert!(matches!(job.handle(&message(&too_many.to_body(), 1)).await, Err(JobError::Invalid(_))));
}

fn format_sha(data: &[u8]) -> String {
    crate::backup::format::sha256_hex(data)
}
