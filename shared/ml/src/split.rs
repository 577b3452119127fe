//! The labelled dataset and its chronological train / validation / test split.
//!
//! [`Dataset::build`] joins the feature rows (warm-up dropped) with their labels (the last `horizon` bars
//! dropped), in time order. [`chronological_split`] cuts it into three consecutive blocks — no shuffling — and
//! leaves a **purge gap** of `horizon` rows before the validation and the test blocks: the label of the last rows
//! of a block is computed from closes inside the next block, so without the gap a model would be scored on bars
//! whose prices it saw through its training labels.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::candles::CandleSeries;
use crate::features::{self, N_FEATURES};
use crate::labels::{self, LabelSpec};

/// Feature rows with their labels, oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// Row-major features, `len() × N_FEATURES`, all finite.
    pub x: Vec<f64>,
    /// Class index of each row (into [`LabelSpec::classes`]).
    pub y: Vec<usize>,
    /// Index of each row's bar in the series.
    pub bar_index: Vec<usize>,
}

impl Dataset {
    /// Features of `series` (warm-up dropped) joined with labels (unlabelled tail dropped).
    pub fn build(series: &CandleSeries, label: &LabelSpec) -> Dataset {
        let matrix = features::training_matrix(series);
        let close: Vec<f64> = series.candles().iter().map(|c| c.close).collect();
        let y_all = labels::labels(&close, label);
        let mut out = Dataset::default();
        for (row, &bar) in matrix.rows.iter().zip(&matrix.bar_index) {
            if let Some(y) = y_all[bar] {
                out.x.extend_from_slice(row);
                out.y.push(y);
                out.bar_index.push(bar);
            }
        }
        out
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * N_FEATURES..(i + 1) * N_FEATURES]
    }

    /// Rows `r` as a new dataset.
    pub fn slice(&self, r: Range<usize>) -> Dataset {
        Dataset {
            x: self.x[r.start * N_FEATURES..r.end * N_FEATURES].to_vec(),
            y: self.y[r.clone()].to_vec(),
            bar_index: self.bar_index[r].to_vec(),
        }
    }

    /// Rows per class index (`n_classes` entries).
    pub fn class_counts(&self, n_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; n_classes];
        for &y in &self.y {
            counts[y] += 1;
        }
        counts
    }
}

/// Split fractions (stored in the artefact).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Share of the rows for validation, in `[0.05, 0.4]`.
    pub validation: f64,
    /// Share of the rows for the test (the original's `test_split`, default 0.2), in `[0.05, 0.4]`.
    pub test: f64,
}

impl Default for SplitConfig {
    /// 60 % train, 20 % validation, 20 % test.
    fn default() -> Self {
        SplitConfig { validation: 0.2, test: 0.2 }
    }
}

impl SplitConfig {
    /// Checks the ranges documented on the fields.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("validation", self.validation), ("test", self.test)] {
            if !v.is_finite() || !(0.05..=0.4).contains(&v) {
                return Err(format!("{name} share must be in [0.05, 0.4], got {v}"));
            }
        }
        Ok(())
    }
}

/// Row ranges of the three blocks (into a [`Dataset`]), in time order, separated by the purge gaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRanges {
    /// Training rows.
    pub train: Range<usize>,
    /// Validation rows.
    pub validation: Range<usize>,
    /// Test rows.
    pub test: Range<usize>,
}

/// Minimum rows per block.
pub const MIN_TRAIN_ROWS: usize = 100;
/// Minimum validation and test rows.
pub const MIN_EVAL_ROWS: usize = 20;

/// Cuts `n` rows into train / validation / test blocks with `gap` rows dropped before validation and before test.
/// Errors when a block would be smaller than [`MIN_TRAIN_ROWS`] / [`MIN_EVAL_ROWS`] (the message says how many
/// rows are needed).
pub fn chronological_split(n: usize, config: &SplitConfig, gap: usize) -> Result<SplitRanges, String> {
    config.validate()?;
    let usable = n.saturating_sub(2 * gap);
    let test = (usable as f64 * config.test).round() as usize;
    let validation = (usable as f64 * config.validation).round() as usize;
    let train = usable.saturating_sub(test + validation);
    if train < MIN_TRAIN_ROWS || validation < MIN_EVAL_ROWS || test < MIN_EVAL_ROWS {
        let train_share = 1.0 - config.test - config.validation;
        let need = [
            MIN_TRAIN_ROWS as f64 / train_share,
            MIN_EVAL_ROWS as f64 / config.validation,
            MIN_EVAL_ROWS as f64 / config.test,
        ]
        .into_iter()
        .fold(0.0, f64::max)
        .ceil() as usize
            + 2 * gap
            + 1;
        return Err(format!(
            "{n} labelled rows give {train} training, {validation} validation and {test} test rows; at least \
             {MIN_TRAIN_ROWS}/{MIN_EVAL_ROWS}/{MIN_EVAL_ROWS} are needed (about {need} labelled rows)"
        ));
    }
    let train_r = 0..train;
    let validation_r = train + gap..train + gap + validation;
    let test_r = validation_r.end + gap..validation_r.end + gap + test;
    debug_assert_eq!(test_r.end, n.max(2 * gap));
    Ok(SplitRanges { train: train_r, validation: validation_r, test: test_r })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_chronological_disjoint_and_purged() {
        let s = chronological_split(1_000, &SplitConfig::default(), 5).unwrap();
        // 990 usable: 198 test, 198 validation, 594 train.
        assert_eq!(s.train, 0..594);
        assert_eq!(s.validation, 599..797);
        assert_eq!(s.test, 802..1_000);
        assert_eq!(s.validation.start - s.train.end, 5);
        assert_eq!(s.test.start - s.validation.end, 5);
    }

    #[test]
    fn too_few_rows_is_an_error_with_the_need() {
        let err = chronological_split(150, &SplitConfig::default(), 5).unwrap_err();
        assert!(err.contains("150 labelled rows"), "{err}");
        // 100 / 0.6 = 166.7 → 167 + 2·5 + 1 = 178.
        assert!(err.contains("about 178"), "{err}");
        assert!(chronological_split(178, &SplitConfig::default(), 5).is_ok());
        assert!(chronological_split(0, &SplitConfig::default(), 5).is_err());
    }

    #[test]
    fn config_ranges() {
        assert!(SplitConfig { validation: 0.01, test: 0.2 }.validate().is_err());
        assert!(SplitConfig { validation: 0.2, test: 0.5 }.validate().is_err());
        assert!(SplitConfig { validation: 0.2, test: f64::NAN }.validate().is_err());
        assert!(chronological_split(1_000, &SplitConfig { validation: 0.2, test: 0.9 }, 0).is_err());
    }

    #[test]
    fn dataset_excludes_warmup_and_unlabelled_tail() {
        use crate::candles::Candle;
        use chrono::{Duration, TimeZone, Utc};
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let bars: Vec<Candle> = (0..300)
            .map(|i| {
                let c = 1.1 + 0.01 * ((i as f64) * 0.3).sin();
                Candle {
                    time: start + Duration::hours(i),
                    open: c,
                    high: c + 0.001,
                    low: c - 0.001,
                    close: c,
                    volume: 1.0,
                }
            })
            .collect();
        let series = CandleSeries::new(bars).unwrap();
        let label = LabelSpec { horizon: 7, ..Default::default() };
        let d = Dataset::build(&series, &label);
        // Bars 199..=292 have both features and a label.
        assert_eq!(d.len(), 300 - crate::features::WARMUP_BARS - 7);
        assert_eq!(d.bar_index.first(), Some(&crate::features::WARMUP_BARS));
        assert_eq!(d.bar_index.last(), Some(&292));
        assert_eq!(d.x.len(), d.len() * N_FEATURES);
        assert!(d.x.iter().all(|v| v.is_finite()));
        let part = d.slice(10..20);
        assert_eq!(part.len(), 10);
        assert_eq!(part.row(0), d.row(10));
        assert_eq!(d.class_counts(3).iter().sum::<usize>(), d.len());
    }
}
