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
    let model =
        TrainedModel::RandomForest(ForestModel { n_classes: 3, n_features: 4, trees: forest_trees(&forest).unwrap() });
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
        bad(ModelConfig::GradientBoosting(GbdtParams { learning_rate: 0.0, ..g.clone() })).contains("learning_rate")
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
    assert!(bad(ModelConfig::LogisticRegression(LogisticParams { max_iterations: 0, ..l })).contains("max_iterations"));

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
