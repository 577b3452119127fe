//! ML on the local platform: the `ml-train` worker's settings and the operator's seed candles for the system
//! default models.
//!
//! `NUSATRADE_ML_SEED_DIR=<dir>`: at start, every `<dir>/<SYMBOL>.csv` (or `<SYMBOL>_H1.csv`) of a symbol with a
//! default model (XAUUSD, EURUSD, BTCUSD) is imported as the platform's hourly dataset of that symbol (source
//! `seed_file`), which the symbol's default is trained on when first needed. A dataset the platform had
//! generated earlier is replaced, and a default already trained on generated candles is queued for retraining.
//! Without the variable (or without a file for a symbol), the default is trained on generated candles — see
//! `nusatrade_app::ml::defaults`. The product never needs a seed directory; it is a way to give the demo real data.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nusatrade_app::ml::defaults::DEFAULT_SYMBOLS;
use nusatrade_app::ml::store::{DatasetSource, Owner};
use nusatrade_app::ml::{MlConfig, MlService};
use nusatrade_ml::Timeframe;
use nusatrade_ml::candles::{CsvLimits, parse_csv};
use tracing::{info, warn};

use crate::jobs::WorkerConfig;

/// The environment variable naming the seed directory.
pub const ENV_SEED_DIR: &str = "NUSATRADE_ML_SEED_DIR";
/// Largest seed file read.
pub const MAX_SEED_BYTES: usize = 64 << 20;

/// The seed directory, when set.
pub fn seed_dir_from_env() -> Option<PathBuf> {
    std::env::var_os(ENV_SEED_DIR).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The `ml-train` worker's polling: one job at a time, hidden for longer than a job may run (its lease), so a
/// running training is never handed to a second worker.
pub fn worker_config(config: &MlConfig) -> WorkerConfig {
    let lease = config.job_timeout.to_std().unwrap_or(Duration::from_secs(900));
    WorkerConfig { batch: 1, visibility: lease + Duration::from_secs(60), ..WorkerConfig::default() }
}

/// Imports the seed files of `dir` (see the module docs); returns `(symbol, bars)` of what was imported.
pub async fn import_seed_dir(ml: &MlService, dir: &Path) -> Vec<(&'static str, usize)> {
    let mut imported = Vec::new();
    for symbol in DEFAULT_SYMBOLS {
        let Some(path) = [format!("{symbol}.csv"), format!("{symbol}_H1.csv")]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
        else {
            continue;
        };
        match import_one(ml, symbol, &path).await {
            Ok(bars) => {
                info!(symbol, file = %path.display(), bars, "seed candles imported for the default model");
                imported.push((symbol, bars));
            }
            Err(e) => warn!(symbol, file = %path.display(), error = %e, "seed candles not imported"),
        }
    }
    imported
}

async fn import_one(ml: &MlService, symbol: &'static str, path: &Path) -> Result<usize, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_SEED_BYTES as u64 {
        return Err(format!("{} bytes; at most {MAX_SEED_BYTES} are read", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let series =
        parse_csv(&bytes, &CsvLimits { max_bytes: MAX_SEED_BYTES, max_rows: 200_000 }).map_err(|e| e.to_string())?;
    let existing = ml.datasets.get(Owner::System, symbol, Timeframe::H1).await.map_err(|e| e.to_string())?;
    let replaced_generated = existing.as_ref().is_some_and(|d| d.source == DatasetSource::Generated);
    if replaced_generated {
        ml.datasets.delete(Owner::System, symbol, Timeframe::H1).await.map_err(|e| e.to_string())?;
    }
    let summary = ml
        .datasets
        .merge_series(Owner::System, symbol, Timeframe::H1, &series, DatasetSource::SeedFile)
        .await
        .map_err(|e| e.to_string())?;
    if replaced_generated
        && let Ok(Some(d)) = ml.default_record(symbol).await
        && d.version.is_some()
    {
        match ml.retrain_default(symbol).await {
            Ok(_) => info!(symbol, "default model queued for retraining on the seed candles"),
            Err(e) => warn!(symbol, error = %e, "could not queue the default's retraining"),
        }
    }
    Ok(summary.record.bars as usize)
}
