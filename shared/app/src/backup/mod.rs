//! Table backups with a verified restore (audit GAP #10).
//!
//! - [`BackupService::backup`] exports every unexpired item of the table through the store's parallel
//!   [`scan`](crate::ports::ItemStore::scan): N segments at once, one gzip-compressed JSON-lines file
//!   per segment under `backups/<backup-id>/`, then `manifest.json` (ids, counts, sizes, SHA-256s,
//!   times, table schema and format versions), written last. A backup without a manifest is
//!   incomplete and never restorable. See [`format`] for the layout.
//! - [`BackupService::restore`] restores a complete backup into an empty store (a non-empty one only
//!   when forced): it checks every file's size, checksum and content before writing anything, writes
//!   the items with [`put_many`](crate::ports::ItemStore::put_many), skipping those that expired
//!   since (a restore never resurrects an expired item), and counts the store afterwards.
//! - [`BackupJob`] is the `backup` queue's consumer (daily schedule in AWS and locally), idempotent
//!   under redelivery.
//!
//! A backup is taken while the platform runs: each scan page is consistent, the backup as a whole is
//! not a point-in-time snapshot (an item written during the backup may or may not be in it).
//! DynamoDB's point-in-time recovery, on in the template, is the second line for that. Old backups
//! are removed by the bucket's lifecycle rule (`backups/`, 30 days) in AWS.

pub mod format;
pub mod job;
pub mod service;

pub use format::{BackupId, Manifest, SegmentFile};
pub use job::{BACKUP_QUEUE, BackupJob, BackupRequest, BackupSchedule, DAILY_BACKUP, DAILY_BACKUP_BODY};
pub use service::{
    BackupError, BackupOptions, BackupService, BackupStatus, BackupSummary, Phase, Progress, ProgressFn,
    RestoreOptions, RestoreReport, no_progress,
};
