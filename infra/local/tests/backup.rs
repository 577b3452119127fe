//! The `backup` queue on the local platform: `nusatrade serve`'s worker takes the backup a message asks
//! for (the daily schedule's body), once, into the data dir's blobs.

use std::sync::Arc;
use std::time::Duration;

use nusatrade_app::backup::{BACKUP_QUEUE, BackupService, BackupStatus, DAILY_BACKUP, DAILY_BACKUP_BODY};
use nusatrade_app::ports::{Item, Key, RandomIds};
use nusatrade_local::platform::LocalPlatform;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_worker_takes_the_daily_backup_once() {
    let dir = tempfile::tempdir().unwrap();
    let platform = LocalPlatform::open(&dir.path().join("data")).unwrap();
    assert!(platform.schedules().contains(&DAILY_BACKUP), "the daily schedule runs locally");
    assert!(platform.consumers().iter().any(|c| c.queue() == BACKUP_QUEUE));
    for i in 0..50 {
        platform.ports.store.put(Item::new(&Key::new(format!("USER#{i}"), "PROFILE")), None).await.unwrap();
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let tasks = platform.start_jobs(shutdown);
    // The schedule's body, twice (a tick delivered twice): one backup.
    for _ in 0..2 {
        platform.ports.queue.send(BACKUP_QUEUE, DAILY_BACKUP_BODY, Duration::ZERO).await.unwrap();
    }
    let p = &platform.ports;
    let svc = BackupService::new(p.store.clone(), p.blobs.clone(), p.clock.clone(), Arc::new(RandomIds));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let manifest = loop {
        let listed = svc.list().await.unwrap();
        if let Some(BackupStatus::Complete(m)) = listed.first().map(|b| b.status.clone()) {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no backup within 20 s: {listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(manifest.backup_id.as_str().ends_with("T000000Z-daily"));
    assert!(manifest.item_count >= 50, "{manifest:?}");
    assert!(dir.path().join("data/blobs").join(manifest.backup_id.manifest_key()).is_file());
    // Give the second message time to be handled: still one backup.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(svc.list().await.unwrap().len(), 1);
    stop.send(true).unwrap();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(25), t).await.unwrap().unwrap();
    }
}

/// The template's daily backup schedule sends what the local scheduler sends, to the backup queue, once a day.
#[test]
fn the_daily_schedule_is_the_templates() {
    let template = include_str!("../../../template.yaml");
    let input = format!("Input: '{}'", DAILY_BACKUP.body);
    let at = template.find(&input).unwrap_or_else(|| panic!("no schedule with {input} in template.yaml"));
    let block = &template[template[..at].rfind("Type: AWS::Scheduler::Schedule").expect("a schedule")..at];
    assert!(block.contains("ScheduleExpression: cron(0 3 * * ? *)"), "daily at 03:00 UTC: {block}");
    assert!(block.contains("Arn: !GetAtt BackupQueue.Arn"), "{block}");
    assert_eq!(DAILY_BACKUP.every, Duration::from_secs(24 * 3600));
    assert_eq!(DAILY_BACKUP.queue, BACKUP_QUEUE);
}
