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

mod config;

use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_classifier::{RandomForestClassifier, RandomForestClassifierParameters};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::{DecisionTreeClassifier, SplitCriterion};

pub use config::{ForestParams, GbdtParams, LogisticParams, ModelConfig, ModelError, ModelKind};

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
    let data = Data { x, y, n_features, n_classes };
    let model = match config {
        ModelConfig::GradientBoosting(p) => fit_gbdt(p, data, progress)?,
        ModelConfig::RandomForest(p) => fit_forest(p, data, progress)?,
        ModelConfig::LogisticRegression(p) => fit_logistic(p, data)?,
    };
    progress(1.0);
    Ok(model)
}

/// Training data [`fit`] has checked: row-major `x` (`y.len() × n_features`), class indices `y < n_classes`.
#[derive(Clone, Copy)]
struct Data<'a> {
    x: &'a [f64],
    y: &'a [usize],
    n_features: usize,
    n_classes: usize,
}

fn fit_gbdt(p: &GbdtParams, data: Data<'_>, progress: &mut dyn FnMut(f64)) -> Result<TrainedModel, ModelError> {
    let Data { x, y, n_features, n_classes } = data;
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

fn fit_forest(p: &ForestParams, data: Data<'_>, progress: &mut dyn FnMut(f64)) -> Result<TrainedModel, ModelError> {
    let Data { x, y, n_features, n_classes } = data;
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

fn fit_logistic(p: &LogisticParams, data: Data<'_>) -> Result<TrainedModel, ModelError> {
    let Data { x, y, n_features, n_classes } = data;
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
mod tests;
