//! The training pipeline: candles + config → a trained [`Artefact`] with its metrics.
//!
//! 1. **Features** of every bar ([`features::compute`]), warm-up rows dropped.
//! 2. **Labels** from the forward return over the horizon; the last `horizon` bars are unlabelled and dropped.
//! 3. **Split**: chronological train / validation / test blocks with a purge gap of `horizon` rows before each
//!    evaluation block ([`chronological_split`]).
//! 4. **Training** on the training block only.
//! 5. **Evaluation**: classification metrics on the validation and test blocks; the signal backtest on the test
//!    block ([`metrics::backtest`]) with the same decision rule as live predictions ([`decide`]), next to
//!    buy-and-hold.
//! 6. **Packaging** into an [`Artefact`] (header: config, feature set, label, window, metrics, crate versions).
//!
//! Progress is reported through a callback `(stage, fraction of the whole job)`, with the fraction
//! non-decreasing from 0 to 1, so a job runner can store it for a status route. Failures are errors, never
//! panics: too few bars, a class absent from the training block, an invalid config.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::artefact::{self, Artefact, ArtefactHeader, TimeSpan, TrainingWindow};
use crate::candles::{CandleSeries, Timeframe};
use crate::features::{self, FeatureSpec, N_FEATURES, NAMES, WARMUP_BARS};
use crate::labels::LabelSpec;
use crate::metrics::{self, BacktestConfig, BlockCounts, FeatureImportance, TrainingMetrics};
use crate::models::{self, ModelConfig, ModelError, ModelKind};
use crate::predict::{SignalConfig, decide};
use crate::split::{Dataset, SplitConfig, SplitRanges, chronological_split};

/// Everything that decides a training run (the model record's config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Model family and hyperparameters.
    pub model: ModelConfig,
    /// Label definition.
    #[serde(default)]
    pub label: LabelSpec,
    /// Split shares.
    #[serde(default)]
    pub split: SplitConfig,
    /// Decision settings (backtest and default for predictions).
    #[serde(default)]
    pub signal: SignalConfig,
    /// Backtest settings.
    #[serde(default)]
    pub backtest: BacktestConfig,
}

impl TrainConfig {
    /// Defaults for a model family.
    pub fn new(kind: ModelKind) -> Self {
        TrainConfig {
            model: kind.default_config(),
            label: LabelSpec::default(),
            split: SplitConfig::default(),
            signal: SignalConfig::default(),
            backtest: BacktestConfig::default(),
        }
    }

    /// Checks every part.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate(N_FEATURES).map_err(|e| e.to_string())?;
        self.label.validate()?;
        self.split.validate()?;
        self.signal.validate()?;
        self.backtest.validate()
    }
}

/// Facts about the data that the series does not carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainMeta {
    /// Instrument.
    pub symbol: Option<String>,
    /// Bar length.
    pub timeframe: Option<Timeframe>,
    /// Time to record as the training time (the caller's clock; keeps the pipeline deterministic).
    pub trained_at: DateTime<Utc>,
}

/// Pipeline stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Computing features.
    Features,
    /// Labelling and splitting.
    Labels,
    /// Fitting the model.
    Training,
    /// Scoring and backtesting.
    Evaluating,
    /// Building the artefact.
    Packaging,
    /// Finished.
    Done,
}

/// Why training failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// The config is out of range.
    #[error("invalid training config: {0}")]
    InvalidConfig(String),
    /// Not enough data for the warm-up, the horizon and three blocks.
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    /// The model could not be trained (e.g. a class missing from the training block).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Share of the job done when each stage starts.
fn stage_start(stage: Stage) -> f64 {
    match stage {
        Stage::Features => 0.0,
        Stage::Labels => 0.05,
        Stage::Training => 0.1,
        Stage::Evaluating => 0.9,
        Stage::Packaging => 0.97,
        Stage::Done => 1.0,
    }
}

/// Runs the pipeline (see the module docs).
pub fn train(
    series: &CandleSeries,
    config: &TrainConfig,
    meta: &TrainMeta,
    mut progress: impl FnMut(Stage, f64),
) -> Result<Artefact, TrainError> {
    config.validate().map_err(TrainError::InvalidConfig)?;
    let label = &config.label;
    let bars = series.len();
    if bars <= WARMUP_BARS + label.horizon {
        return Err(TrainError::NotEnoughData(format!(
            "{bars} bars leave no labelled row after the {WARMUP_BARS}-bar warm-up and the {}-bar horizon",
            label.horizon
        )));
    }

    progress(Stage::Features, stage_start(Stage::Features));
    // Features and labels (the dataset joins them and drops the warm-up and the unlabelled tail).
    let data = Dataset::build(series, label);
    progress(Stage::Labels, stage_start(Stage::Labels));
    let ranges = chronological_split(data.len(), &config.split, label.horizon).map_err(|e| {
        TrainError::NotEnoughData(format!("{e}; {bars} bars give {} labelled rows after the warm-up", data.len()))
    })?;
    let (train, validation, test) =
        (data.slice(ranges.train.clone()), data.slice(ranges.validation.clone()), data.slice(ranges.test.clone()));
    let k = label.n_classes();

    progress(Stage::Training, stage_start(Stage::Training));
    let started = Instant::now();
    let span = stage_start(Stage::Evaluating) - stage_start(Stage::Training);
    let model = models::fit(&config.model, &train.x, &train.y, N_FEATURES, k, &mut |f| {
        progress(Stage::Training, stage_start(Stage::Training) + span * f.clamp(0.0, 1.0))
    })?;
    let fit_millis = started.elapsed().as_millis() as u64;

    progress(Stage::Evaluating, stage_start(Stage::Evaluating));
    let classes = label.classes();
    let score = |block: &Dataset| {
        let probs = model.predict_proba_rows(&block.x);
        let predicted: Vec<usize> =
            probs.iter().map(|p| (0..p.len()).fold(0, |best, i| if p[i] > p[best] { i } else { best })).collect();
        (metrics::classification(classes, &block.y, &predicted), probs)
    };
    let (validation_metrics, _) = score(&validation);
    let (test_metrics, test_probs) = score(&test);
    let close: Vec<f64> = series.candles().iter().map(|c| c.close).collect();
    let next_returns: Vec<f64> = test.bar_index.iter().map(|&b| close[b + 1] / close[b] - 1.0).collect();
    let positions: Vec<i8> =
        test_probs.iter().map(|p| decide(label, p, config.signal.min_confidence).0.position()).collect();
    let backtest = metrics::backtest(&positions, &next_returns, &config.backtest);
    let buy_and_hold = metrics::backtest(&vec![1; next_returns.len()], &next_returns, &config.backtest);
    let mut ranked: Vec<(usize, f64)> = model.feature_importance().into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top_features = ranked
        .into_iter()
        .take(10)
        .map(|(i, importance)| FeatureImportance { name: NAMES[i].to_owned(), importance })
        .collect();
    let counts = |block: &Dataset| BlockCounts { rows: block.len(), per_class: block.class_counts(k) };

    progress(Stage::Packaging, stage_start(Stage::Packaging));
    let header = ArtefactHeader {
        model_kind: config.model.kind(),
        model_config: config.model.clone(),
        features: FeatureSpec::current(),
        label: *label,
        split: config.split,
        signal: config.signal,
        backtest: config.backtest,
        symbol: meta.symbol.clone(),
        timeframe: meta.timeframe,
        training_window: window(series, &data, &ranges),
        metrics: TrainingMetrics {
            train: counts(&train),
            validation: counts(&validation),
            test: counts(&test),
            validation_metrics,
            test_metrics,
            backtest,
            buy_and_hold,
            top_features,
            fit_millis,
        },
        crate_versions: artefact::crate_versions(),
        trained_at: meta.trained_at,
    };
    progress(Stage::Done, stage_start(Stage::Done));
    Ok(Artefact { header, model })
}

fn window(series: &CandleSeries, data: &Dataset, ranges: &SplitRanges) -> TrainingWindow {
    let c = series.candles();
    let span = |r: &std::ops::Range<usize>| TimeSpan {
        from: c[data.bar_index[r.start]].time,
        to: c[data.bar_index[r.end - 1]].time,
    };
    TrainingWindow {
        bars: c.len(),
        series: TimeSpan { from: c[0].time, to: c[c.len() - 1].time },
        train: span(&ranges.train),
        validation: span(&ranges.validation),
        test: span(&ranges.test),
    }
}

/// Features used by [`train`], exposed for tools that want the matrix itself.
pub fn feature_matrix(series: &CandleSeries) -> features::FeatureMatrix {
    features::training_matrix(series)
}
