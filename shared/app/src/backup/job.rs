//! The `backup` queue's consumer: one message asks for one backup.
//!
//! A message names its backup, `{"backup_id": "20261122T030000Z-a1b2c3d4"}` (optionally with
//! `"segments"`), or comes from the daily schedule, [`DAILY_BACKUP_BODY`] (`{"schedule":"daily"}`,
//! the same static body from EventBridge Scheduler in AWS and from the local scheduler), whose backup
//! is the day's: `YYYYMMDDT000000Z-daily`, the UTC day it is handled in. So a redelivered message, or
//! one schedule tick delivered twice, names the same backup: when that backup already has its
//! manifest the message is done and nothing is exported again. A backup that failed half way has no
//! manifest; its redelivery redoes it under the same id, replacing the partial files.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::format::BackupId;
use super::service::{BackupError, BackupOptions, BackupService, no_progress};
use crate::jobs::{JobError, QueueConsumer, Schedule};
use crate::ports::ReceivedMessage;

/// The logical queue of backup requests.
pub const BACKUP_QUEUE: &str = "backup";
/// The body the daily schedule puts on the `backup` queue (template.yaml carries the same).
pub const DAILY_BACKUP_BODY: &str = r#"{"schedule":"daily"}"#;
/// The daily backup: EventBridge Scheduler in AWS (template.yaml), the local scheduler of `nusatrade serve`.
pub const DAILY_BACKUP: Schedule = Schedule {
    name: "daily-backup",
    queue: BACKUP_QUEUE,
    every: std::time::Duration::from_secs(24 * 3600),
    body: DAILY_BACKUP_BODY,
};

/// The schedules a backup request may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupSchedule {
    /// One backup per UTC day.
    Daily,
}

/// The body of a `backup` message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<BackupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<BackupSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
}

impl BackupRequest {
    /// The message body.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The backup it names, when handled at `now`.
    pub fn backup_id(&self, now: DateTime<Utc>) -> Result<BackupId, String> {
        match (&self.backup_id, self.schedule) {
            (Some(_), Some(_)) => Err("a backup request names a backup_id or a schedule, not both".into()),
            (Some(id), None) => Ok(id.clone()),
            (None, Some(BackupSchedule::Daily)) => {
                let day = now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
                Ok(BackupId::new(day, "daily"))
            }
            (None, None) => Err("a backup request names a backup_id or a schedule".into()),
        }
    }
}

/// Takes the backups the `backup` queue asks for, one at a time per process: two deliveries of one
/// request in the same batch (a tick delivered twice) must not write the same files at once; the second
/// waits, then finds the manifest.
pub struct BackupJob {
    service: BackupService,
    options: BackupOptions,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl BackupJob {
    /// `options` gives the segments and page size used when a message names none (its `id` is
    /// ignored: every message names its own).
    pub fn new(service: BackupService, options: BackupOptions) -> Self {
        BackupJob { service, options, one_at_a_time: tokio::sync::Mutex::new(()) }
    }
}

#[async_trait]
impl QueueConsumer for BackupJob {
    fn queue(&self) -> &'static str {
        BACKUP_QUEUE
    }

    async fn handle(&self, message: &ReceivedMessage) -> Result<(), JobError> {
        let request: BackupRequest =
            serde_json::from_str(&message.body).map_err(|e| JobError::Invalid(format!("not a backup request: {e}")))?;
        let id = request.backup_id(self.service.now()).map_err(JobError::Invalid)?;
        let _one = self.one_at_a_time.lock().await;
        if self.service.has_manifest(&id).await.map_err(|e| JobError::Unavailable(e.to_string()))? {
            tracing::info!(backup_id = %id, receive_count = message.receive_count, "backup already complete: nothing to do");
            return Ok(());
        }
        let options = BackupOptions {
            id: Some(id.clone()),
            segments: request.segments.unwrap_or(self.options.segments),
            page_size: self.options.page_size,
        };
        let started = std::time::Instant::now();
        match self.service.backup(options, no_progress()).await {
            Ok(m) => {
                tracing::info!(
                    backup_id = %id,
                    items = m.item_count,
                    bytes = m.bytes,
                    files = m.files.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "backup complete"
                );
                crate::telemetry::backup("completed", m.item_count);
                Ok(())
            }
            // Another delivery finished it meanwhile.
            Err(BackupError::AlreadyExists(_)) => Ok(()),
            Err(e @ BackupError::Invalid(_)) => Err(JobError::Invalid(e.to_string())),
            Err(e) => {
                crate::telemetry::backup("failed", 0);
                tracing::warn!(backup_id = %id, error = %e, "backup failed; the message will be redelivered");
                Err(JobError::Unavailable(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_their_backup() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T03:04:05Z").unwrap().with_timezone(&Utc);
        let daily: BackupRequest = serde_json::from_str(DAILY_BACKUP_BODY).unwrap();
        assert_eq!(daily.to_body(), DAILY_BACKUP_BODY);
        assert_eq!(daily.backup_id(at).unwrap().as_str(), "20261122T000000Z-daily");
        let late = at + chrono::Duration::hours(20);
        assert_eq!(daily.backup_id(late).unwrap().as_str(), "20261122T000000Z-daily", "same UTC day");
        let next = at + chrono::Duration::hours(21);
        assert_eq!(daily.backup_id(next).unwrap().as_str(), "20261123T000000Z-daily");
        let named: BackupRequest =
            serde_json::from_str(r#"{"backup_id": "20261122T030000Z-abc", "segments": 8}"#).unwrap();
        assert_eq!(named.backup_id(at).unwrap().as_str(), "20261122T030000Z-abc");
        assert_eq!(named.segments, Some(8));
        assert!(BackupRequest::default().backup_id(at).is_err());
        let both: BackupRequest =
            serde_json::from_str(r#"{"backup_id": "20261122T030000Z-abc", "schedule": "daily"}"#).unwrap();
        assert!(both.backup_id(at).is_err());
        for bad in [r#"{"backup_id": "../../etc"}"#, r#"{"backup": 1}"#, r#"{"schedule": "weekly"}"#] {
            assert!(serde_json::from_str::<BackupRequest>(bad).is_err(), "{bad}");
        }
    }
}
