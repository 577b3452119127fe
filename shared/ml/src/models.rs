//! The model family: gradient-boosted trees (forust-ml), a random forest (smartcore) and a logistic-regression
//! baseline (linfa-logistic), behind one [`ModelConfig`] / [`TrainedModel`] pair.
//!
//! Every model outputs one probability per class, in the order of [`LabelSpec::classes`](crate::labels::LabelSpec::classes),
//! summing to 1:
//! * **gradient boosting** (`forust_ml::GradientBooster`, log-loss) is a binary learner: a binary label trains one
//!   booster for `up` (`P(up) = σ(score)`, `P(down) = 1 − P(up)`); a three-class label trains one booster per class
//!   (one-vs-rest) and normalises `σ(score_k) / Σ σ(score_j)`;
//! * **random forest** (`smartcore::ensemble::random_forest_classifier`: bootstrap per tree, `m` features tried
//!   per split) is multi-class; its probability is the share of trees voting for each class (smartcore's forest
//!   only exposes the majority vote, so the trained trees are taken out of it through its serde form and asked
//!   one by one; the argmax of the shares is the forest's own vote, tested);
//! * **logistic regression** (`linfa_logistic::MultiLogisticRegression`, multinomial with L2 penalty `alpha`) on
//!   standardised features (mean and σ of the training rows, stored with the model); the fitted weights are kept
//!   as plain numbers and predicted with a softmax here (tested equal to linfa's own prediction), so loading a
//!   model needs no solver state.
//!
//! Training takes row-major features (`rows × n_features`, finite) and class indices; every class must occur in
//! the training rows (a model that never saw a class cannot give it a probability).

use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_classifier::{RandomForestClassifier, RandomForestClassifierParameters};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::{DecisionTreeClassifier, SplitCriterion};

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

type Tree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

/// A trained model (serialised as the artefact payload).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrainedModel {
    /// One booster (binary) or one per class (one-vs-rest).
    GradientBoosting(GbdtModel),
    /// The forest's trees.
    RandomForest(ForestModel),
    /// Standardisation and weights.
    LogisticRegression(LogisticModel),
}

/// Gradient-boosted trees.
#[derive(Serialize, Deserialize)]
pub struct GbdtModel {
    /// Classes.
    pub n_classes: usize,
    /// Features per row.
    pub n_features: usize,
    /// Binary: one booster scoring the last class (`up`); multi-class: one booster per class.
    pub boosters: Vec<GradientBooster>,
}

impl std::fmt::Debug for GbdtModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let trees: usize = self.boosters.iter().map(|b| b.trees.len()).sum();
        write!(f, "GbdtModel {{ n_classes: {}, boosters: {}, trees: {trees} }}", self.n_classes, self.boosters.len())
    }
}

/// A random forest.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForestModel {
    /// Classes.
    pub n_classes: usize,
    /// Features per row.
    pub n_features: usize,
    /// The trees (smartcore's serde form).
    pub trees: Vec<Tree>,
}

/// Multinomial logistic regression on standardised features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// Classes.
    pub n_classes: usize,
    /// Training means per feature.
    pub mean: Vec<f64>,
    /// Training standard deviations per feature (1 where a feature was constant).
    pub scale: Vec<f64>,
    /// `weights[class][feature]`.
    pub weights: Vec<Vec<f64>>,
    /// Intercept per class.
    pub intercept: Vec<f64>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn lib_err(library: &'static str) -> impl Fn(String) -> ModelError {
    move |message| ModelError::Library { library, message }
}

/// Trains a model. `x` is row-major (`y.len() × n_features`), `y` holds class indices `< n_classes`;
/// `progress` receives the finished share (0–1) as training goes.
pub fn fit(
    config: &ModelConfig,
    x: &[f64],
    y: &[usize],
    n_features: usize,
    n_classes: usize,
    progress: &mut dyn FnMut(f64),
) -> Result<TrainedModel, ModelError> {
    config.validate(n_features)?;
    let rows = y.len();
    if n_features == 0 || x.len() != rows * n_features {
        return Err(ModelError::BadInput(format!("{} values for {rows} rows of {n_features} features", x.len())));
    }
    if !(2..=3).contains(&n_classes) {
        return Err(ModelError::BadInput(format!("{n_classes} classes; 2 or 3 are supported")));
    }
    if let Some(bad) = y.iter().find(|&&c| c >= n_classes) {
        return Err(ModelError::BadInput(format!("class index {bad} with {n_classes} classes")));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::BadInput(format!(
            "non-finite feature at row {}, column {}",
            i / n_features,
            i % n_features
        )));
    }
    let mut counts = vec![0usize; n_classes];
    for &c in y {
        counts[c] += 1;
    }
    if let Some(missing) = counts.iter().position(|&n| n == 0) {
        return Err(ModelError::MissingClass(missing));
    }
    progress(0.0);
    let model = match config {
        ModelConfig::GradientBoosting(p) => fit_gbdt(p, x, y, n_features, n_classes, progress)?,
        ModelConfig::RandomForest(p) => fit_forest(p, x, y, n_features, n_classes, progress)?,
        ModelConfig::LogisticRegression(p) => fit_logistic(p, x, y, n_features, n_classes)?,
    };
    progress(1.0);
    Ok(model)
}

fn fit_gbdt(
    p: &GbdtParams,
    x: &[f64],
    y: &[usize],
    n_features: usize,
    n_classes: usize,
    progress: &mut dyn FnMut(f64),
) -> Result<TrainedModel, ModelError> {
    let rows = y.len();
    // forust takes column-major data.
    let mut columns = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..n_features {
            columns[c * rows + r] = x[r * n_features + c];
        }
    }
    let matrix = Matrix::new(&columns, rows, n_features);
    let targets: Vec<usize> = if n_classes == 2 { vec![1] } else { (0..n_classes).collect() };
    let mut boosters = Vec::with_capacity(targets.len());
    for (done, &class) in targets.iter().enumerate() {
        let target: Vec<f64> = y.iter().map(|&c| f64::from(u8::from(c == class))).collect();
        let mut booster = GradientBooster::default()
            .set_iterations(p.iterations)
            .set_learning_rate(p.learning_rate)
            .set_max_depth(p.max_depth)
            .set_min_leaf_weight(p.min_leaf_weight)
            .set_l2(p.l2)
            .set_gamma(p.gamma)
            .set_subsample(p.subsample)
            .set_colsample_bytree(p.colsample_bytree)
            .set_nbins(p.nbins)
            .set_seed(p.seed.wrapping_add(class as u64))
            .set_initialize_base_score(true)
            .set_parallel(true);
        booster.fit_unweighted(&matrix, &target, None).map_err(|e| lib_err("forust-ml")(e.to_string()))?;
        boosters.push(booster);
        progress((done + 1) as f64 / targets.len() as f64);
    }
    Ok(TrainedModel::GradientBoosting(GbdtModel { n_classes, n_features, boosters }))
}

/// Trees are trained in chunks of this many, so progress can be reported.
const FOREST_CHUNK: u16 = 10;

fn fit_forest(
    p: &ForestParams,
    x: &[f64],
    y: &[usize],
    n_features: usize,
    n_classes: usize,
    progress: &mut dyn FnMut(f64),
) -> Result<TrainedModel, ModelError> {
    let err = lib_err("smartcore");
    let matrix = DenseMatrix::new(y.len(), n_features, x.to_vec(), false).map_err(|e| err(e.to_string()))?;
    let labels: Vec<u32> = y.iter().map(|&c| c as u32).collect();
    let mut trees: Vec<Tree> = Vec::with_capacity(usize::from(p.n_trees));
    let mut start = 0u16;
    while start < p.n_trees {
        let n = FOREST_CHUNK.min(p.n_trees - start);
        let mut params = RandomForestClassifierParameters::default()
            .with_criterion(SplitCriterion::Gini)
            .with_n_trees(n)
            .with_max_depth(p.max_depth)
            .with_min_samples_split(p.min_samples_split)
            .with_min_samples_leaf(p.min_samples_leaf)
            // smartcore seeds tree `i` of a forest with `seed + i`: chunk seeds keep every tree's seed distinct.
            .with_seed(p.seed.wrapping_add(u64::from(start)));
        if let Some(m) = p.features_per_split {
            params = params.with_m(m);
        }
        let forest = RandomForestClassifier::fit(&matrix, &labels, params).map_err(|e| err(e.to_string()))?;
        trees.extend(forest_trees(&forest).map_err(&err)?);
        start += n;
        progress(f64::from(start) / f64::from(p.n_trees));
    }
    Ok(TrainedModel::RandomForest(ForestModel { n_classes, n_features, trees }))
}

/// The trees of a smartcore forest, through its serde form (the field is private).
fn forest_trees(forest: &RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>) -> Result<Vec<Tree>, String> {
    let mut value = serde_json::to_value(forest).map_err(|e| e.to_string())?;
    let trees = value.get_mut("trees").map(serde_json::Value::take).ok_or("forest without `trees`")?;
    serde_json::from_value(trees).map_err(|e| e.to_string())
}

fn fit_logistic(
    p: &LogisticParams,
    x: &[f64],
    y: &[usize],
    n_features: usize,
    n_classes: usize,
) -> Result<TrainedModel, ModelError> {
    use linfa::prelude::*;
    let rows = y.len();
    let mut mean = vec![0.0; n_features];
    let mut scale = vec![0.0; n_features];
    for r in 0..rows {
        for c in 0..n_features {
            mean[c] += x[r * n_features + c];
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    for r in 0..rows {
        for c in 0..n_features {
            let d = x[r * n_features + c] - mean[c];
            scale[c] += d * d;
        }
    }
    for s in &mut scale {
        *s = (*s / rows as f64).sqrt();
        if s.is_nan() || *s <= 1e-12 {
            *s = 1.0;
        }
    }
    let standardised: Vec<f64> =
        x.iter().enumerate().map(|(i, v)| (v - mean[i % n_features]) / scale[i % n_features]).collect();
    let records = ndarray::Array2::from_shape_vec((rows, n_features), standardised)
        .map_err(|e| lib_err("ndarray")(e.to_string()))?;
    let targets = ndarray::Array1::from_vec(y.to_vec());
    let dataset = linfa::Dataset::new(records, targets);
    let fitted = linfa_logistic::MultiLogisticRegression::default()
        .alpha(p.alpha)
        .max_iterations(p.max_iterations)
        .gradient_tolerance(p.gradient_tolerance)
        .fit(&dataset)
        .map_err(|e| lib_err("linfa-logistic")(e.to_string()))?;
    // Columns of `params` follow `fitted.classes()`; store them by our class index.
    let mut weights = vec![vec![0.0; n_features]; n_classes];
    let mut intercept = vec![0.0; n_classes];
    for (col, &class) in fitted.classes().iter().enumerate() {
        for (f, w) in weights[class].iter_mut().enumerate() {
            *w = fitted.params()[(f, col)];
        }
        intercept[class] = fitted.intercept()[col];
    }
    Ok(TrainedModel::LogisticRegression(LogisticModel { n_classes, mean, scale, weights, intercept }))
}

impl TrainedModel {
    /// The family.
    pub fn kind(&self) -> ModelKind {
        match self {
            TrainedModel::GradientBoosting(_) => ModelKind::GradientBoosting,
            TrainedModel::RandomForest(_) => ModelKind::RandomForest,
            TrainedModel::LogisticRegression(_) => ModelKind::LogisticRegression,
        }
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        match self {
            TrainedModel::GradientBoosting(m) => m.n_classes,
            TrainedModel::RandomForest(m) => m.n_classes,
            TrainedModel::LogisticRegression(m) => m.n_classes,
        }
    }

    /// Features per row.
    pub fn n_features(&self) -> usize {
        match self {
            TrainedModel::GradientBoosting(m) => m.n_features,
            TrainedModel::RandomForest(m) => m.n_features,
            TrainedModel::LogisticRegression(m) => m.mean.len(),
        }
    }

    /// Checks the internal shapes of a decoded model (a payload from outside is not trusted to be consistent).
    pub fn check_shape(&self) -> Result<(), ModelError> {
        let bad = |m: &str| Err(ModelError::BadInput(m.to_owned()));
        let k = self.n_classes();
        if !(2..=3).contains(&k) {
            return bad("a model has 2 or 3 classes");
        }
        match self {
            TrainedModel::GradientBoosting(m) => {
                let want = if k == 2 { 1 } else { k };
                if m.boosters.len() != want {
                    return bad("gradient boosting: wrong number of boosters");
                }
                // forust indexes nodes and row values without checks: refuse out-of-range or backward links (a
                // cycle would never end).
                for tree in m.boosters.iter().flat_map(|b| &b.trees) {
                    let n = tree.nodes.len();
                    if n == 0 {
                        return bad("gradient boosting: empty tree");
                    }
                    for (i, node) in tree.nodes.iter().enumerate() {
                        let forward = |c: usize| c > i && c < n;
                        if !node.is_leaf
                            && (node.split_feature >= m.n_features
                                || !forward(node.left_child)
                                || !forward(node.right_child)
                                || !forward(node.missing_node))
                        {
                            return bad("gradient boosting: malformed tree");
                        }
                    }
                }
            }
            TrainedModel::RandomForest(m) => {
                if m.trees.is_empty() {
                    return bad("random forest without trees");
                }
            }
            TrainedModel::LogisticRegression(m) => {
                let nf = m.mean.len();
                if m.scale.len() != nf
                    || m.weights.len() != k
                    || m.intercept.len() != k
                    || m.weights.iter().any(|w| w.len() != nf)
                {
                    return bad("logistic regression: inconsistent shapes");
                }
            }
        }
        Ok(())
    }

    /// Class probabilities for one row (`n_features` values), in class-index order, summing to 1.
    ///
    /// # Panics
    /// If `row` has the wrong length.
    pub fn predict_proba(&self, row: &[f64]) -> Vec<f64> {
        assert_eq!(row.len(), self.n_features(), "feature row length");
        match self {
            TrainedModel::GradientBoosting(m) => {
                let scores: Vec<f64> = m.boosters.iter().map(|b| sigmoid(booster_score(b, row))).collect();
                gbdt_probabilities(m.n_classes, &scores)
            }
            TrainedModel::RandomForest(m) => {
                let matrix = DenseMatrix::new(1, row.len(), row.to_vec(), false).expect("1 × n matrix");
                let mut votes = vec![0.0; m.n_classes];
                for tree in &m.trees {
                    if let Ok(p) = tree.predict_proba(&matrix) {
                        for (c, v) in votes.iter_mut().enumerate().take(p.shape().1) {
                            *v += *p.get((0, c));
                        }
                    }
                }
                normalise(votes)
            }
            TrainedModel::LogisticRegression(m) => {
                let z: Vec<f64> = (0..m.n_classes)
                    .map(|k| {
                        m.intercept[k]
                            + row
                                .iter()
                                .zip(&m.mean)
                                .zip(&m.scale)
                                .zip(&m.weights[k])
                                .map(|(((v, mu), s), w)| (v - mu) / s * w)
                                .sum::<f64>()
                    })
                    .collect();
                let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                normalise(z.iter().map(|v| (v - max).exp()).collect())
            }
        }
    }

    /// [`predict_proba`](Self::predict_proba) for each row of a row-major matrix.
    pub fn predict_proba_rows(&self, x: &[f64]) -> Vec<Vec<f64>> {
        let nf = self.n_features();
        x.chunks_exact(nf).map(|row| self.predict_proba(row)).collect()
    }

    /// Relative importance of each feature (sums to 1, or all 0): gain for boosting, mean impurity decrease for
    /// the forest, mean |weight| over classes (standardised features) for logistic regression.
    pub fn feature_importance(&self) -> Vec<f64> {
        let nf = self.n_features();
        let mut imp = vec![0.0; nf];
        match self {
            TrainedModel::GradientBoosting(m) => {
                for b in &m.boosters {
                    for (f, v) in
                        b.calculate_feature_importance(forust_ml::gradientbooster::ImportanceMethod::TotalGain, false)
                    {
                        if f < nf {
                            imp[f] += f64::from(v);
                        }
                    }
                }
            }
            TrainedModel::RandomForest(m) => {
                for tree in &m.trees {
                    for (f, v) in tree.compute_feature_importances(false).into_iter().enumerate().take(nf) {
                        imp[f] += v;
                    }
                }
            }
            TrainedModel::LogisticRegression(m) => {
                for w in &m.weights {
                    for (f, v) in w.iter().enumerate() {
                        imp[f] += v.abs();
                    }
                }
            }
        }
        let total: f64 = imp.iter().sum();
        if total > 0.0 && total.is_finite() {
            imp.iter_mut().for_each(|v| *v /= total);
        } else {
            imp.iter_mut().for_each(|v| *v = 0.0);
        }
        imp
    }
}

/// The parts of smartcore's tree JSON that prediction relies on.
#[derive(Deserialize)]
struct ForestShape {
    n_classes: usize,
    n_features: usize,
    trees: Vec<TreeShape>,
}

#[derive(Deserialize)]
struct TreeShape {
    nodes: Vec<NodeShape>,
    classes: Vec<u32>,
}

#[derive(Deserialize)]
struct NodeShape {
    output: usize,
    split_feature: usize,
    true_child: Option<usize>,
    false_child: Option<usize>,
}

/// Checks the structure of a random forest's payload JSON (smartcore keeps the nodes private, so they are read
/// from the JSON): every tree non-empty with `n_classes` classes, leaf outputs within the classes, split features
/// within the features, children either both absent or both present and after their parent (no cycles, no
/// out-of-range index — smartcore would panic or loop on either).
pub fn check_forest_json(payload: &str) -> Result<(), ModelError> {
    let bad = |m: &str| ModelError::BadInput(format!("random forest: {m}"));
    let shape: ForestShape = serde_json::from_str(payload).map_err(|e| bad(&e.to_string()))?;
    for tree in &shape.trees {
        let n = tree.nodes.len();
        if n == 0 || tree.classes.len() != shape.n_classes {
            return Err(bad("tree without nodes or with other classes"));
        }
        for (i, node) in tree.nodes.iter().enumerate() {
            match (node.true_child, node.false_child) {
                (None, None) if node.output < shape.n_classes => {}
                (Some(t), Some(f)) if t > i && t < n && f > i && f < n && node.split_feature < shape.n_features => {}
                _ => return Err(bad("malformed tree")),
            }
        }
    }
    Ok(())
}

/// A booster's raw score (log-odds) for one row: `GradientBooster::predict` for a single row without its per-tree
/// allocations — the same trees, in the same order, summed from the same base score (tested bit-identical).
fn booster_score(b: &GradientBooster, row: &[f64]) -> f64 {
    let n = b.prediction_iteration.unwrap_or(b.trees.len()).min(b.trees.len());
    b.trees[..n].iter().fold(b.base_score, |score, tree| score + tree.predict_row_from_row_slice(row, &b.missing))
}

/// Binary: `[1 − s, s]` with `s` the `up` booster's probability; one-vs-rest: the normalised scores.
fn gbdt_probabilities(n_classes: usize, scores: &[f64]) -> Vec<f64> {
    if n_classes == 2 { vec![1.0 - scores[0], scores[0]] } else { normalise(scores.to_vec()) }
}

/// Scales to sum 1; uniform when the sum is 0 or not finite.
fn normalise(mut v: Vec<f64>) -> Vec<f64> {
    let total: f64 = v.iter().sum();
    if total > 0.0 && total.is_finite() {
        v.iter_mut().for_each(|p| *p /= total);
    } else {
        let k = v.len() as f64;
        v.iter_mut().for_each(|p| *p = 1.0 / k);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three separable clusters in 3 features, plus noise features; rows interleave the classes.
    fn blobs(rows: usize, n_classes: usize) -> (Vec<f64>, Vec<usize>) {
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut seed = 7u64;
        let mut noise = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        for r in 0..rows {
            let c = r % n_classes;
            let centre = c as f64 * 3.0;
            x.extend([centre + noise(), -centre + noise(), noise() * 10.0, 5.0]);
            y.push(c);
        }
        (x, y)
    }

    fn small(kind: ModelKind) -> ModelConfig {
        match kind {
            ModelKind::GradientBoosting => {
                ModelConfig::GradientBoosting(GbdtParams { iterations: 20, max_depth: 3, ..Default::default() })
            }
            ModelKind::RandomForest => {
                ModelConfig::RandomForest(ForestParams { n_trees: 15, max_depth: 4, ..Default::default() })
            }
            ModelKind::LogisticRegression => ModelConfig::LogisticRegression(LogisticParams::default()),
        }
    }

    const KINDS: [ModelKind; 3] = [ModelKind::GradientBoosting, ModelKind::RandomForest, ModelKind::LogisticRegression];

    #[test]
    fn every_kind_learns_separable_classes_with_valid_probabilities() {
        for n_classes in [2, 3] {
            let (x, y) = blobs(300, n_classes);
            for kind in KINDS {
                let mut seen = Vec::new();
                let model = fit(&small(kind), &x, &y, 4, n_classes, &mut |f| seen.push(f)).unwrap();
                assert_eq!(model.kind(), kind);
                assert_eq!(seen.first(), Some(&0.0));
                assert_eq!(seen.last(), Some(&1.0));
                assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{kind:?}: progress {seen:?}");
                let probs = model.predict_proba_rows(&x);
                let mut correct = 0;
                for (p, &label) in probs.iter().zip(&y) {
                    assert_eq!(p.len(), n_classes);
                    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{kind:?}: {p:?}");
                    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{kind:?}: {p:?}");
                    let argmax = (0..n_classes).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
                    correct += usize::from(argmax == label);
                }
                assert!(correct as f64 / y.len() as f64 > 0.95, "{kind:?} {n_classes}: {correct}/{}", y.len());
                let imp = model.feature_importance();
                assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{kind:?}: {imp:?}");
                // The informative features outweigh the constant one.
                assert!(imp[0] + imp[1] > imp[3], "{kind:?}: {imp:?}");
                model.check_shape().unwrap();
            }
        }
    }

    #[test]
    fn class_indices_keep_their_meaning() {
        // Class 2 sits at the high end of feature 0: its probability must be the last one, whatever the library's
        // internal class order.
        let (x, y) = blobs(300, 3);
        let high = [6.0, -6.0, 0.0, 5.0];
        let low = [0.0, 0.0, 0.0, 5.0];
        for kind in KINDS {
            let model = fit(&small(kind), &x, &y, 4, 3, &mut |_| {}).unwrap();
            let p = model.predict_proba(&high);
            assert!(p[2] > p[0] && p[2] > p[1], "{kind:?}: {p:?}");
            let p = model.predict_proba(&low);
            assert!(p[0] > p[2], "{kind:?}: {p:?}");
        }
    }

    #[test]
    fn forest_shares_agree_with_smartcores_vote() {
        let (x, y) = blobs(200, 3);
        let labels: Vec<u32> = y.iter().map(|&c| c as u32).collect();
        let matrix = DenseMatrix::new(200, 4, x.clone(), false).unwrap();
        let params = RandomForestClassifierParameters::default().with_n_trees(9).with_max_depth(2).with_seed(3);
        let forest = RandomForestClassifier::fit(&matrix, &labels, params).unwrap();
        let votes = forest.predict(&matrix).unwrap();
        let model = TrainedModel::RandomForest(ForestModel {
            n_classes: 3,
            n_features: 4,
            trees: forest_trees(&forest).unwrap(),
        });
        for (i, p) in model.predict_proba_rows(&x).iter().enumerate() {
            // First maximum, as smartcore's `which_max`.
            let best = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let argmax = p.iter().position(|&v| v == best).unwrap();
            assert_eq!(argmax as u32, votes[i], "row {i}: {p:?}");
            // 9 trees: shares are multiples of 1/9.
            assert!(p.iter().all(|v| ((v * 9.0).round() - v * 9.0).abs() < 1e-9));
        }
    }

    #[test]
    fn booster_score_equals_forusts_predict() {
        let (x, y) = blobs(200, 3);
        let model = fit(&small(ModelKind::GradientBoosting), &x, &y, 4, 3, &mut |_| {}).unwrap();
        let TrainedModel::GradientBoosting(m) = &model else { unreachable!() };
        for row in x.chunks_exact(4) {
            for b in &m.boosters {
                let theirs = b.predict(&Matrix::new(row, 1, 4), false)[0];
                assert_eq!(booster_score(b, row).to_bits(), theirs.to_bits());
            }
        }
    }

    #[test]
    fn logistic_softmax_equals_linfa() {
        use linfa::prelude::*;
        let (x, y) = blobs(150, 3);
        let model = fit(&small(ModelKind::LogisticRegression), &x, &y, 4, 3, &mut |_| {}).unwrap();
        let TrainedModel::LogisticRegression(m) = &model else { unreachable!() };
        // Refit with linfa on the same standardised data and compare its probabilities with ours.
        let standardised: Vec<f64> = x.iter().enumerate().map(|(i, v)| (v - m.mean[i % 4]) / m.scale[i % 4]).collect();
        let records = ndarray::Array2::from_shape_vec((150, 4), standardised).unwrap();
        let fitted = linfa_logistic::MultiLogisticRegression::default()
            .max_iterations(200)
            .gradient_tolerance(1e-4)
            .fit(&linfa::Dataset::new(records.clone(), ndarray::Array1::from_vec(y.clone())))
            .unwrap();
        let theirs = fitted.predict_probabilities(&records);
        for (i, ours) in model.predict_proba_rows(&x).iter().enumerate() {
            for (col, &class) in fitted.classes().iter().enumerate() {
                assert!((ours[class] - theirs[(i, col)]).abs() < 1e-9, "row {i}");
            }
        }
    }

    #[test]
    fn config_validation_and_serde() {
        for kind in KINDS {
            let c = kind.default_config();
            c.validate(69).unwrap();
            assert_eq!(c.kind(), kind);
            let json = serde_json::to_string(&c).unwrap();
            assert!(json.contains(&format!("\"kind\":\"{}\"", kind.as_str())), "{json}");
            assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), c);
        }
        // Missing fields take defaults; unknown ones are refused.
        let c: ModelConfig = serde_json::from_str(r#"{"kind":"random_forest","n_trees":7}"#).unwrap();
        assert_eq!(c, ModelConfig::RandomForest(ForestParams { n_trees: 7, ..Default::default() }));
        assert!(serde_json::from_str::<ModelConfig>(r#"{"kind":"random_forest","n_tree":7}"#).is_err());
        assert!(serde_json::from_str::<ModelConfig>(r#"{"kind":"lstm"}"#).is_err());

        let bad = |c: ModelConfig| c.validate(69).unwrap_err().to_string();
        let g = GbdtParams::default();
        assert!(bad(ModelConfig::GradientBoosting(GbdtParams { iterations: 0, ..g.clone() })).contains("iterations"));
        assert!(
            bad(ModelConfig::GradientBoosting(GbdtParams { learning_rate: 0.0, ..g.clone() }))
                .contains("learning_rate")
        );
        assert!(
            bad(ModelConfig::GradientBoosting(GbdtParams { learning_rate: f32::NAN, ..g.clone() }))
                .contains("learning_rate")
        );
        assert!(bad(ModelConfig::GradientBoosting(GbdtParams { max_depth: 13, ..g.clone() })).contains("max_depth"));
        assert!(bad(ModelConfig::GradientBoosting(GbdtParams { subsample: 1.5, ..g })).contains("subsample"));
        let f = ForestParams::default();
        assert!(bad(ModelConfig::RandomForest(ForestParams { n_trees: 0, ..f.clone() })).contains("n_trees"));
        assert!(
            bad(ModelConfig::RandomForest(ForestParams { min_samples_split: 1, ..f.clone() }))
                .contains("min_samples_split")
        );
        assert!(bad(ModelConfig::RandomForest(ForestParams { features_per_split: Some(70), ..f })).contains("1–69"));
        let l = LogisticParams::default();
        assert!(bad(ModelConfig::LogisticRegression(LogisticParams { alpha: -1.0, ..l.clone() })).contains("alpha"));
        assert!(
            bad(ModelConfig::LogisticRegression(LogisticParams { max_iterations: 0, ..l })).contains("max_iterations")
        );

        assert_eq!(ModelKind::from_model_type("XGBoost"), Some(ModelKind::GradientBoosting));
        assert_eq!(ModelKind::from_model_type("random_forest"), Some(ModelKind::RandomForest));
        assert_eq!(ModelKind::from_model_type("lstm"), None);
    }

    #[test]
    fn bad_training_input_is_an_error_not_a_panic() {
        let (x, y) = blobs(60, 3);
        let cfg = small(ModelKind::RandomForest);
        let run = |x: &[f64], y: &[usize], k: usize| fit(&cfg, x, y, 4, k, &mut |_| {}).unwrap_err();
        assert!(matches!(run(&x[..10], &y, 3), ModelError::BadInput(_)));
        assert!(matches!(run(&x, &y, 4), ModelError::BadInput(_)));
        let mut nan = x.clone();
        nan[5] = f64::NAN;
        assert!(run(&nan, &y, 3).to_string().contains("row 1, column 1"));
        // A class with no rows.
        let only_two: Vec<usize> = y.iter().map(|&c| c.min(1)).collect();
        assert_eq!(run(&x, &only_two, 3), ModelError::MissingClass(2));
        assert!(matches!(run(&x, &[5; 60], 3), ModelError::BadInput(_)));
    }
}
