//! Lambda entry point for the `backup` queue (issue #6, audit GAP #10): the daily schedule's message (and any
//! named backup request) becomes a backup of the table in the bucket, under `backups/<backup-id>/`: one gzip
//! JSON-lines file per parallel scan segment, then the manifest. Idempotent under redelivery (a backup that
//! has its manifest is not taken again); an SQS event source with `ReportBatchItemFailures`, a failed backup is
//! retried and after 5 receives parked in the alarmed dead-letter queue.
//!
//! Wiring only: logging, the AWS adapters it uses (DynamoDB scan, S3), built once per execution environment, and
//! the backup settings (`BackupOptions::from_env`: `NUSATRADE_BACKUP_SEGMENTS`, parallel scan segments per backup,
//! default 4). The use case lives in `nusatrade_app::backup`.

use std::sync::Arc;

use nusatrade_app::backup::{BackupJob, BackupOptions, BackupService};

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    let ports = nusatrade_aws::runtime::init("backup", |p| p.store().blobs()).await?;
    let options = BackupOptions::from_env()?;
    tracing::info!(segments = options.segments, "backup function initialised");
    let job = BackupJob::new(BackupService::from_ports(&ports), options);
    nusatrade_aws::jobs::run(Arc::new(job)).await
}
