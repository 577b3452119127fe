//! `nusatrade backup`, `nusatrade backups` and `nusatrade restore`: table backups of a local data dir
//! (its embedded store, `store.redb`) into its file blobs (`blobs/backups/<id>/`), and restores into an
//! empty data dir. The same [`BackupService`] as the `backup` Lambda; progress bars on stderr.
//!
//! The embedded store is locked by the process that has it open: stop `nusatrade serve` before
//! running these on its data dir (a running gateway takes its own backups through the `backup`
//! queue's daily schedule).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nusatrade_app::backup::service::{DEFAULT_SEGMENTS, MAX_BACKUP_SEGMENTS};
use nusatrade_app::backup::{
    BackupId, BackupOptions, BackupService, BackupStatus, Phase, Progress, ProgressFn, RestoreOptions,
};
use nusatrade_app::ports::{BlobStore, Clock, ItemStore, RandomIds, SystemClock};

use crate::adapters::{EmbeddedStore, FileBlobStore};
use crate::platform::{BLOBS_DIR, STORE_FILE};

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Data directory whose store is backed up (into its blobs/backups/).
    #[arg(long, env = "NUSATRADE_DATA_DIR", default_value = "./.nusatrade")]
    pub data_dir: PathBuf,
    /// Scan segments read in parallel, one file each.
    #[arg(long, default_value_t = DEFAULT_SEGMENTS, value_parser = clap::value_parser!(u32).range(1..=MAX_BACKUP_SEGMENTS as i64))]
    pub segments: u32,
}

#[derive(clap::Args, Debug)]
pub struct BackupsArgs {
    /// Data directory whose backups are listed.
    #[arg(long, env = "NUSATRADE_DATA_DIR", default_value = "./.nusatrade")]
    pub data_dir: PathBuf,
    /// Also download and check every complete backup (sizes, checksums, every line); exits with 1
    /// when one does not check out.
    #[arg(long)]
    pub verify: bool,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The backup to restore (see `nusatrade backups`).
    pub backup_id: String,
    /// Data directory to restore into: a new one, or one whose store is empty.
    #[arg(long, env = "NUSATRADE_DATA_DIR", default_value = "./.nusatrade")]
    pub data_dir: PathBuf,
    /// Data directory holding the backup (its blobs/backups/); default: --data-dir.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Restore even though the target store holds items (they are kept; restored items replace those
    /// with the same key).
    #[arg(long)]
    pub force: bool,
    /// Segment files downloaded, checked and written at once.
    #[arg(long, default_value_t = RestoreOptions::default().parallel_files as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel_files: u16,
    /// Batches of 25 items being written at once (over all files).
    #[arg(long, default_value_t = RestoreOptions::default().writes_in_flight as u16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub writes_in_flight: u16,
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Opens the data dir's store, with a clear message when `nusatrade serve` holds it.
fn open_store(data_dir: &Path) -> anyhow::Result<EmbeddedStore> {
    EmbeddedStore::open(&data_dir.join(STORE_FILE), clock()).map_err(|e| {
        let hint = if e.to_string().contains("already open") {
            " (is `nusatrade serve` running on it? stop it first)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot open the store of {}{hint}: {e}", data_dir.display())
    })
}

fn service(store: Arc<dyn ItemStore>, data_dir: &Path) -> BackupService {
    let blobs: Arc<dyn BlobStore> = Arc::new(FileBlobStore::new(data_dir.join(BLOBS_DIR)));
    BackupService::new(store, blobs, clock(), Arc::new(RandomIds))
}

/// `nusatrade backup`: prints the new backup's id on stdout, the details on stderr.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    if !args.data_dir.join(STORE_FILE).is_file() {
        bail!("{} holds no store ({STORE_FILE}): nothing to back up", args.data_dir.display());
    }
    let store = Arc::new(open_store(&args.data_dir)?);
    let svc = service(store, &args.data_dir);
    let bars = Bars::new();
    let started = Instant::now();
    let options = BackupOptions { segments: args.segments, ..BackupOptions::default() };
    let manifest = svc.backup(options, bars.callback()).await.context("backup failed")?;
    bars.finish();
    let elapsed = started.elapsed();
    eprintln!(
        "backup {} complete: {} items in {} files ({}), {:.2} s ({:.0} items/s), under {}",
        manifest.backup_id,
        manifest.item_count,
        manifest.files.len(),
        human_bytes(manifest.bytes),
        elapsed.as_secs_f64(),
        per_second(manifest.item_count, elapsed),
        args.data_dir.join(BLOBS_DIR).join(manifest.backup_id.prefix()).display(),
    );
    println!("{}", manifest.backup_id);
    Ok(())
}

/// `nusatrade backups`: one line per backup, oldest first.
pub async fn list(args: BackupsArgs) -> anyhow::Result<bool> {
    // Listing needs no store: an in-memory one stands in.
    let store = Arc::new(EmbeddedStore::temporary(clock()).context("in-memory store")?);
    let svc = service(store, &args.data_dir);
    let backups = svc.list().await.context("cannot list the backups")?;
    if backups.is_empty() {
        eprintln!("no backups under {}", args.data_dir.join(BLOBS_DIR).join("backups").display());
        return Ok(true);
    }
    println!("{:<34} {:<11} {:>10} {:>6} {:>10}  FINISHED", "BACKUP ID", "STATUS", "ITEMS", "FILES", "SIZE");
    let mut all_ok = true;
    for b in backups {
        let (status, items, finished) = match &b.status {
            BackupStatus::Complete(m) => (
                "complete".to_owned(),
                m.item_count.to_string(),
                m.finished_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            BackupStatus::Incomplete => ("incomplete".to_owned(), "-".into(), "-".into()),
            BackupStatus::Unreadable(why) => (format!("unreadable: {why}"), "-".into(), "-".into()),
        };
        println!("{:<34} {:<11} {:>10} {:>6} {:>10}  {finished}", b.id, status, items, b.blobs, human_bytes(b.bytes));
        if args.verify && matches!(b.status, BackupStatus::Complete(_)) {
            let bars = Bars::new();
            match svc.verify(&b.id, 4, bars.callback()).await {
                Ok(_) => {
                    bars.finish();
                    println!("  {}: verified (sizes, SHA-256 checksums, every line)", b.id);
                }
                Err(e) => {
                    bars.finish();
                    println!("  {}: DOES NOT VERIFY: {e}", b.id);
                    all_ok = false;
                }
            }
        }
    }
    Ok(all_ok)
}

/// `nusatrade restore`.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let id = BackupId::parse(&args.backup_id).map_err(anyhow::Error::msg)?;
    let source = args.from.clone().unwrap_or_else(|| args.data_dir.clone());
    // Look for the backup before creating anything in the target.
    let blobs = FileBlobStore::new(source.join(BLOBS_DIR));
    let manifest_key = id.manifest_key();
    let listed = blobs.list(&manifest_key).await.context("cannot read the backups")?;
    if !listed.iter().any(|b| b.key.as_str() == manifest_key) {
        bail!(
            "backup {id} not found in {} or incomplete (no manifest): see `nusatrade backups --data-dir {}`",
            source.join(BLOBS_DIR).join("backups").display(),
            source.display()
        );
    }
    let store = Arc::new(open_store(&args.data_dir)?);
    let svc = service(store, &source);
    let bars = Bars::new();
    let options = RestoreOptions {
        force: args.force,
        parallel_files: args.parallel_files.into(),
        writes_in_flight: args.writes_in_flight.into(),
    };
    let report = svc.restore(&id, options, bars.callback()).await;
    bars.finish();
    let report = report.with_context(|| format!("restore of {id} into {} failed", args.data_dir.display()))?;
    let total = report.verify_time + report.write_time + report.count_time;
    println!(
        "restored {} into {}: {} items written ({} expired since the backup, skipped), {} in the store ({})",
        report.backup_id,
        args.data_dir.display(),
        report.items_written,
        report.skipped_expired,
        report.items_in_target,
        if report.exact { "count verified exactly" } else { "forced: at least every restored item" },
    );
    println!(
        "verify {:.2} s, write {:.2} s ({:.0} items/s), count {:.2} s; total {:.2} s",
        report.verify_time.as_secs_f64(),
        report.write_time.as_secs_f64(),
        per_second(report.items_written, report.write_time),
        report.count_time.as_secs_f64(),
        total.as_secs_f64(),
    );
    Ok(())
}

fn per_second(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// One progress bar per phase on stderr (hidden when stderr is not a terminal).
#[derive(Clone)]
struct Bars(Arc<Mutex<Option<(Phase, ProgressBar)>>>);

impl Bars {
    fn new() -> Self {
        Bars(Arc::new(Mutex::new(None)))
    }

    fn callback(&self) -> ProgressFn {
        let bars = self.clone();
        Arc::new(move |p: Progress| bars.report(p))
    }

    fn report(&self, p: Progress) {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_none_or(|(phase, _)| *phase != p.phase) {
            if let Some((_, old)) = current.take() {
                old.finish();
            }
            *current = Some((p.phase, new_bar(p)));
        }
        if let Some((_, bar)) = current.as_ref()
            && p.done > bar.position()
        {
            bar.set_position(p.done);
        }
    }

    fn finish(&self) {
        if let Some((_, bar)) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish();
        }
    }
}

fn new_bar(p: Progress) -> ProgressBar {
    let label = match p.phase {
        Phase::Export => "exporting",
        Phase::Verify => "verifying",
        Phase::Write => "writing",
        Phase::Count => "counting",
    };
    let bar = match p.total {
        Some(total) => {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix:>10} [{bar:40}] {human_pos}/{human_len} items ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        }
        None => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix:>10} {spinner} {human_pos} items ({per_sec}, {elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar
        }
    };
    bar.set_prefix(label);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn bars_follow_the_phases() {
        let bars = Bars::new();
        let cb = bars.callback();
        cb(Progress { phase: Phase::Export, done: 10, total: None });
        cb(Progress { phase: Phase::Export, done: 5, total: None });
        assert_eq!(bars.0.lock().unwrap().as_ref().map(|(p, b)| (*p, b.position())), Some((Phase::Export, 10)));
        cb(Progress { phase: Phase::Write, done: 3, total: Some(7) });
        assert_eq!(
            bars.0.lock().unwrap().as_ref().map(|(p, b)| (*p, b.position(), b.length())),
            Some((Phase::Write, 3, Some(7)))
        );
        bars.finish();
        assert!(bars.0.lock().unwrap().is_none());
    }
}
