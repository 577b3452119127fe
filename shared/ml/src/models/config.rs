//! The model families and their validated settings ([`ModelConfig`], with the documented ranges).

use serde::{Deserialize, Serialize};

/// The model families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Gradient-boosted trees (forust-ml).
    GradientBoosting,
    /// Random forest (smartcore).
    RandomForest,
    /// Multinomial logistic regression (linfa-logistic).
    LogisticRegression,
}

impl ModelKind {
    /// `gradient_boosting`, `random_forest`, `logistic_regression` (the contract's `model_type` strings for the
    /// first two).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::GradientBoosting => "gradient_boosting",
            ModelKind::RandomForest => "random_forest",
            ModelKind::LogisticRegression => "logistic_regression",
        }
    }

    /// Maps the original's free `model_type` strings: `gradient_boosting` and `xgboost` → gradient boosting,
    /// `random_forest` → random forest, `logistic_regression`/`logistic` → logistic regression. Others (`lstm`…)
    /// are `None`: the caller decides (the original silently trained a random forest).
    pub fn from_model_type(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "gradient_boosting" | "xgboost" | "gbdt" => ModelKind::GradientBoosting,
            "random_forest" => ModelKind::RandomForest,
            "logistic_regression" | "logistic" => ModelKind::LogisticRegression,
            _ => return None,
        })
    }

    /// The default configuration of this kind.
    pub fn default_config(self) -> ModelConfig {
        match self {
            ModelKind::GradientBoosting => ModelConfig::GradientBoosting(GbdtParams::default()),
            ModelKind::RandomForest => ModelConfig::RandomForest(ForestParams::default()),
            ModelKind::LogisticRegression => ModelConfig::LogisticRegression(LogisticParams::default()),
        }
    }
}

/// Hyperparameters, tagged by `kind` (stored in the model's config and the artefact). Unknown fields are refused;
/// missing ones take the defaults; [`validate`](Self::validate) checks the ranges written on each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// Gradient-boosted trees.
    GradientBoosting(GbdtParams),
    /// Random forest.
    RandomForest(ForestParams),
    /// Logistic regression.
    LogisticRegression(LogisticParams),
}

/// Gradient-boosting hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtParams {
    /// Trees per booster, 1–2,000 (default 100, the original's).
    pub iterations: usize,
    /// Shrinkage, (0, 1] (default 0.1).
    pub learning_rate: f32,
    /// Tree depth, 1–12 (default 5, the original's).
    pub max_depth: usize,
    /// Minimum hessian sum in a leaf, [0, 1000] (default 1).
    pub min_leaf_weight: f32,
    /// L2 penalty on leaf weights, [0, 1000] (default 1).
    pub l2: f32,
    /// Minimum loss reduction to split, [0, 1000] (default 0).
    pub gamma: f32,
    /// Row share sampled per tree, (0, 1] (default 1).
    pub subsample: f32,
    /// Column share sampled per tree, (0, 1] (default 1).
    pub colsample_bytree: f64,
    /// Histogram bins per feature, 2–1,024 (default 256).
    pub nbins: u16,
    /// Seed.
    pub seed: u64,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            iterations: 100,
            learning_rate: 0.1,
            max_depth: 5,
            min_leaf_weight: 1.0,
            l2: 1.0,
            gamma: 0.0,
            subsample: 1.0,
            colsample_bytree: 1.0,
            nbins: 256,
            seed: 42,
        }
    }
}

/// Random-forest hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForestParams {
    /// Trees, 1–1,000 (default 100, the original's).
    pub n_trees: u16,
    /// Tree depth, 1–30 (default 10, the original's).
    pub max_depth: u16,
    /// Minimum rows to split a node, 2–10,000 (default 5, the original's).
    pub min_samples_split: usize,
    /// Minimum rows in a leaf, 1–10,000 (default 1).
    pub min_samples_leaf: usize,
    /// Features tried per split, 1–number of features; `None` = ⌊√features⌋ (default).
    pub features_per_split: Option<usize>,
    /// Seed.
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            n_trees: 100,
            max_depth: 10,
            min_samples_split: 5,
            min_samples_leaf: 1,
            features_per_split: None,
            seed: 42,
        }
    }
}

/// Logistic-regression hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    /// L2 penalty, [0, 1000] (default 1).
    pub alpha: f64,
    /// L-BFGS iterations, 1–10,000 (default 200).
    pub max_iterations: u64,
    /// Gradient tolerance, (0, 1] (default 1e-4).
    pub gradient_tolerance: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams { alpha: 1.0, max_iterations: 200, gradient_tolerance: 1e-4 }
    }
}

/// Why a model could not be configured, trained or used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A hyperparameter outside its range.
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    /// Wrong input shape.
    #[error("bad training input: {0}")]
    BadInput(String),
    /// A class without training rows.
    #[error("no training rows of class index {0}: choose a longer window, another horizon or threshold")]
    MissingClass(usize),
    /// The learning library failed.
    #[error("{library} failed: {message}")]
    Library {
        /// The crate.
        library: &'static str,
        /// Its message.
        message: String,
    },
}

fn range_err<T: std::fmt::Display>(name: &str, value: T, range: &str) -> ModelError {
    ModelError::InvalidConfig(format!("{name} must be in {range}, got {value}"))
}

fn check<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    v: T,
    lo: T,
    hi: T,
    range: &str,
) -> Result<(), ModelError> {
    // Written so that NaN fails.
    if v >= lo && v <= hi { Ok(()) } else { Err(range_err(name, v, range)) }
}

fn check_open_low(name: &str, v: f64, hi: f64, range: &str) -> Result<(), ModelError> {
    if v > 0.0 && v <= hi { Ok(()) } else { Err(range_err(name, v, range)) }
}

impl ModelConfig {
    /// The family.
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelConfig::GradientBoosting(_) => ModelKind::GradientBoosting,
            ModelConfig::RandomForest(_) => ModelKind::RandomForest,
            ModelConfig::LogisticRegression(_) => ModelKind::LogisticRegression,
        }
    }

    /// Checks the ranges documented on the parameters (`n_features` bounds `features_per_split`).
    pub fn validate(&self, n_features: usize) -> Result<(), ModelError> {
        match self {
            ModelConfig::GradientBoosting(p) => {
                check("iterations", p.iterations, 1, 2_000, "1–2000")?;
                check_open_low("learning_rate", f64::from(p.learning_rate), 1.0, "(0, 1]")?;
                check("max_depth", p.max_depth, 1, 12, "1–12")?;
                check("min_leaf_weight", p.min_leaf_weight, 0.0, 1_000.0, "[0, 1000]")?;
                check("l2", p.l2, 0.0, 1_000.0, "[0, 1000]")?;
                check("gamma", p.gamma, 0.0, 1_000.0, "[0, 1000]")?;
                check_open_low("subsample", f64::from(p.subsample), 1.0, "(0, 1]")?;
                check_open_low("colsample_bytree", p.colsample_bytree, 1.0, "(0, 1]")?;
                check("nbins", p.nbins, 2, 1_024, "2–1024")?;
            }
            ModelConfig::RandomForest(p) => {
                check("n_trees", p.n_trees, 1, 1_000, "1–1000")?;
                check("max_depth", p.max_depth, 1, 30, "1–30")?;
                check("min_samples_split", p.min_samples_split, 2, 10_000, "2–10000")?;
                check("min_samples_leaf", p.min_samples_leaf, 1, 10_000, "1–10000")?;
                if let Some(m) = p.features_per_split {
                    check("features_per_split", m, 1, n_features.max(1), &format!("1–{n_features}"))?;
                }
            }
            ModelConfig::LogisticRegression(p) => {
                check("alpha", p.alpha, 0.0, 1_000.0, "[0, 1000]")?;
                check("max_iterations", p.max_iterations, 1, 10_000, "1–10000")?;
                check_open_low("gradient_tolerance", p.gradient_tolerance, 1.0, "(0, 1]")?;
            }
        }
        Ok(())
    }
}
