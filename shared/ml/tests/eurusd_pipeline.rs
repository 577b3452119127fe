//! The whole pipeline on real data: the EURUSD hourly sample (5,000 bars) that sits beside the repository in
//! `shared/data/` (see its README). When the file is absent the tests print why and pass without checking.
//!
//! Hyperparameters are small so that the debug build stays within a few seconds per test.

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use nusatrade_ml::artefact::{self, DEFAULT_MAX_BYTES, Encoding};
use nusatrade_ml::candles::{self, BlobLimits, Conflict};
use nusatrade_ml::features::{self, FeatureState, N_FEATURES, WARMUP_BARS};
use nusatrade_ml::models::{ForestParams, GbdtParams, LogisticParams};
use nusatrade_ml::predict::{Direction, decide};
use nusatrade_ml::{
    CandleSeries, CsvLimits, LabelKind, LabelSpec, ModelConfig, ModelKind, Stage, Timeframe, TrainConfig, TrainMeta,
    predict, train,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/EURUSD.csv");

fn eurusd() -> Option<&'static CandleSeries> {
    static SERIES: OnceLock<Option<CandleSeries>> = OnceLock::new();
    SERIES
        .get_or_init(|| match std::fs::read(DATA) {
            Ok(bytes) => Some(candles::parse_csv(&bytes, &CsvLimits::default()).expect("EURUSD.csv is valid")),
            Err(e) => {
                eprintln!("SKIPPED: {DATA} not readable ({e}); the EURUSD sample is not beside the repository");
                None
            }
        })
        .as_ref()
}

#[test]
fn csv_blob_and_merge_on_eurusd() {
    let Some(series) = eurusd() else { return };
    assert_eq!(series.len(), 5_000);
    let c = series.candles();
    assert_eq!(c[0].time, Utc.with_ymd_and_hms(2017, 4, 19, 9, 0, 0).unwrap());
    assert_eq!((c[0].open, c[0].high, c[0].low, c[0].close, c[0].volume), (1.0716, 1.0722, 1.07083, 1.07219, 1413.0));
    assert_eq!(c[4_999].time, Utc.with_ymd_and_hms(2018, 2, 7, 15, 0, 0).unwrap());

    let blob = candles::encode_blob(series);
    let raw = std::fs::metadata(DATA).unwrap().len() as usize;
    eprintln!("EURUSD: CSV {raw} bytes, blob {} bytes", blob.len());
    assert!(blob.len() < raw / 2, "the blob is compact");
    assert_eq!(&candles::decode_blob(&blob, &BlobLimits::default()).unwrap(), series);

    // Appending by range: two overlapping halves merge back into the whole, and per-month chunks cover it.
    let head = CandleSeries::new(c[..3_000].to_vec()).unwrap();
    let tail = CandleSeries::new(c[2_500..].to_vec()).unwrap();
    let merged = candles::merge(&head, &tail, Conflict::ReplaceWithIncoming);
    assert_eq!(&merged.series, series);
    assert_eq!((merged.added, merged.replaced, merged.unchanged), (2_000, 0, 500));
    let months = candles::partition_by_month(series);
    assert_eq!(months.len(), 11, "April 2017 to February 2018");
    assert_eq!(months.iter().map(|(_, s)| s.len()).sum::<usize>(), 5_000);
}

#[test]
fn last_row_and_stream_equal_the_full_matrix_on_eurusd() {
    let Some(series) = eurusd() else { return };
    let matrix = features::compute(series);
    let bits = |row: &[f64]| row.iter().map(|v| if v.is_nan() { u64::MAX } else { v.to_bits() }).collect::<Vec<_>>();
    // The inference path: the last row only.
    let last = features::last_row(series.candles()).unwrap();
    assert_eq!(bits(&last), bits(&matrix.rows[4_999]));
    assert!(last.iter().all(|v| v.is_finite()));
    // The stream, at every bar.
    let mut state = FeatureState::new();
    for (t, c) in series.candles().iter().enumerate() {
        state.push(c);
        assert_eq!(bits(&state.row().unwrap()), bits(&matrix.rows[t]), "bar {t}");
    }
    // Causality: the features of a prefix are the full matrix's rows, and changing the future changes nothing.
    let prefix = CandleSeries::new(series.candles()[..1_200].to_vec()).unwrap();
    let mut altered = series.candles()[..1_500].to_vec();
    for c in &mut altered[1_200..] {
        c.close = c.high;
        c.volume *= 3.0;
    }
    let altered = features::compute(&CandleSeries::new(altered).unwrap());
    for (t, row) in features::compute(&prefix).rows.iter().enumerate() {
        assert_eq!(bits(row), bits(&matrix.rows[t]));
        assert_eq!(bits(row), bits(&altered.rows[t]));
    }
    // Inference over the recommended 1,000 bars agrees with the whole history to ~1e-6.
    let windowed = features::last_row(&series.candles()[4_000..]).unwrap();
    for (j, (a, b)) in windowed.iter().zip(&last).enumerate() {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{}: {a} vs {b}", features::NAMES[j]);
    }
}

fn small(kind: ModelKind) -> ModelConfig {
    match kind {
        ModelKind::GradientBoosting => {
            ModelConfig::GradientBoosting(GbdtParams { iterations: 15, max_depth: 3, nbins: 64, ..Default::default() })
        }
        ModelKind::RandomForest => {
            ModelConfig::RandomForest(ForestParams { n_trees: 12, max_depth: 5, ..Default::default() })
        }
        ModelKind::LogisticRegression => {
            ModelConfig::LogisticRegression(LogisticParams { max_iterations: 100, ..Default::default() })
        }
    }
}

fn check_kind(kind: ModelKind, label: LabelSpec) {
    let Some(series) = eurusd() else { return };
    let config = TrainConfig { model: small(kind), label, ..TrainConfig::new(kind) };
    let meta = TrainMeta {
        symbol: Some("EURUSD".into()),
        timeframe: Some(Timeframe::H1),
        trained_at: Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
    };
    let mut steps: Vec<(Stage, f64)> = Vec::new();
    let started = std::time::Instant::now();
    let a = train(series, &config, &meta, |stage, f| steps.push((stage, f))).unwrap();
    let took = started.elapsed();

    // Progress: from 0 to 1, never backwards, through every stage in order.
    assert_eq!(steps.first(), Some(&(Stage::Features, 0.0)));
    assert_eq!(steps.last(), Some(&(Stage::Done, 1.0)));
    assert!(steps.windows(2).all(|w| w[0].1 <= w[1].1), "{steps:?}");
    for stage in [Stage::Labels, Stage::Training, Stage::Evaluating, Stage::Packaging] {
        assert!(steps.iter().any(|s| s.0 == stage), "{stage:?} reported");
    }

    // The split is chronological, with the purge gap, over the labelled rows only.
    let h = &a.header;
    let w = &h.training_window;
    assert_eq!(w.bars, 5_000);
    assert_eq!(w.train.from, series.candles()[WARMUP_BARS].time, "the warm-up is dropped, not filled");
    assert!(w.train.to < w.validation.from && w.validation.to < w.test.from, "{w:?}");
    assert!(w.test.to < series.candles()[5_000 - label.horizon].time, "the unlabelled tail is excluded");
    let gap_bars = series.candles().iter().filter(|c| c.time > w.train.to && c.time < w.validation.from).count();
    assert_eq!(gap_bars, label.horizon, "purge gap between train and validation");
    let m = &h.metrics;
    let labelled = 5_000 - WARMUP_BARS - label.horizon;
    assert_eq!(m.train.rows + m.validation.rows + m.test.rows + 2 * label.horizon, labelled);
    assert_eq!(m.test.per_class.iter().sum::<usize>(), m.test.rows);
    assert_eq!(m.test_metrics.rows, m.test.rows);
    assert!((0.0..=1.0).contains(&m.test_metrics.accuracy));
    assert_eq!(m.backtest.bars, m.test.rows);
    assert_eq!(m.buy_and_hold.bars, m.test.rows);
    assert_eq!(m.buy_and_hold.trades, 1);
    assert_eq!(m.top_features.len(), 10);
    // Buy-and-hold over the test bars compounds to the price change, less an entry and an exit cost.
    let c = series.candles();
    let first = c.iter().position(|b| b.time == w.test.from).unwrap();
    let last = c.iter().position(|b| b.time == w.test.to).unwrap();
    let price_change = c[last + 1].close / c[first].close - 1.0;
    let cost = h.backtest.cost_per_side;
    let shortfall = price_change - m.buy_and_hold.total_return;
    assert!(shortfall > cost && shortfall < 3.0 * cost, "{} vs {price_change}", m.buy_and_hold.total_return);

    // Artefact round trip (gzip) gives the same predictions.
    let (bytes, checksum) = artefact::encode(&a, Encoding::Gzip, DEFAULT_MAX_BYTES).unwrap();
    let load = std::time::Instant::now();
    let decoded = artefact::decode(&bytes, DEFAULT_MAX_BYTES).unwrap();
    let load = load.elapsed();
    assert_eq!(decoded.checksum, checksum);
    assert_eq!(decoded.artefact.header, a.header);
    let p1 = predict(&a, series, &a.header.signal).unwrap();
    let p2 = predict(&decoded.artefact, series, &a.header.signal).unwrap();
    assert_eq!(p1, p2);

    // Valid probabilities for every test row, and decisions consistent with them.
    let data = nusatrade_ml::split::Dataset::build(series, &label);
    let rows = data.slice(data.len() - m.test.rows..data.len());
    for probs in decoded.artefact.model.predict_proba_rows(&rows.x) {
        assert_eq!(probs.len(), label.n_classes());
        assert!(probs.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)), "{probs:?}");
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{probs:?}");
    }

    // The prediction for the last bar.
    let p = p1;
    assert_eq!(p.entry_price, series.candles()[4_999].close);
    assert_eq!(p.bar_time, series.candles()[4_999].time);
    assert_eq!(p.model_type, kind.as_str());
    let named = [Some(p.probabilities.down), p.probabilities.flat, Some(p.probabilities.up)];
    let total: f64 = named.iter().flatten().sum();
    assert!((total - 1.0).abs() < 1e-9);
    assert_eq!(p.probabilities.flat.is_some(), label.kind == LabelKind::ThreeClass);
    let probs: Vec<f64> = named.iter().flatten().copied().collect();
    assert_eq!(decide(&label, &probs, a.header.signal.min_confidence).0, p.direction);
    let atr = features::last_row(series.candles()).unwrap()[features::NAMES.iter().position(|n| *n == "atr").unwrap()];
    assert!((p.atr - atr).abs() < 1e-9 * atr);
    match p.direction {
        Direction::Buy => assert!(p.stop_loss.unwrap() < p.entry_price && p.take_profit.unwrap() > p.entry_price),
        Direction::Sell => assert!(p.stop_loss.unwrap() > p.entry_price && p.take_profit.unwrap() < p.entry_price),
        Direction::Hold => assert!(p.stop_loss.is_none() && p.take_profit.is_none() && !p.should_trade),
    }
    let json = serde_json::to_value(&p).unwrap();
    for key in [
        "direction",
        "confidence",
        "ml_signal",
        "entry_price",
        "stop_loss",
        "take_profit",
        "risk_reward_ratio",
        "current_indicators",
        "generated_by",
    ] {
        assert!(json.get(key).is_some(), "prediction JSON has {key}");
    }

    let s = m.summary();
    eprintln!(
        "{kind:?} {:?}: trained in {took:.2?} (fit {} ms), artefact {} bytes gzip, decode {load:.2?}; test accuracy {:.3}, \
         backtest {} trades, win rate {:.2}, PF {:?}, Sharpe {:.2}, max DD {:.4}, return {:.4} vs buy-and-hold {:.4}; \
         last bar: {:?} ({:.3})",
        label.kind,
        m.fit_millis,
        bytes.len(),
        s.accuracy,
        s.total_trades,
        s.win_rate,
        s.profit_factor,
        s.sharpe_ratio,
        s.max_drawdown,
        s.total_return,
        s.buy_and_hold_return,
        p.direction,
        p.confidence,
    );
}

#[test]
fn gradient_boosting_three_class_on_eurusd() {
    check_kind(ModelKind::GradientBoosting, LabelSpec::default());
}

#[test]
fn gradient_boosting_binary_on_eurusd() {
    check_kind(ModelKind::GradientBoosting, LabelSpec { kind: LabelKind::Binary, horizon: 5, threshold: 0.0005 });
}

#[test]
fn random_forest_three_class_on_eurusd() {
    check_kind(ModelKind::RandomForest, LabelSpec::default());
}

#[test]
fn logistic_regression_three_class_on_eurusd() {
    check_kind(ModelKind::LogisticRegression, LabelSpec { horizon: 3, ..LabelSpec::default() });
}

#[test]
fn bad_inputs_fail_cleanly() {
    let Some(series) = eurusd() else { return };
    let meta = TrainMeta { symbol: None, timeframe: None, trained_at: Utc::now() };
    let config = TrainConfig { model: small(ModelKind::RandomForest), ..TrainConfig::new(ModelKind::RandomForest) };
    // Too few bars: an error that says how many are needed, not a panic.
    let short = CandleSeries::new(series.candles()[..300].to_vec()).unwrap();
    let err = train(&short, &config, &meta, |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("not enough data") && err.contains("labelled rows"), "{err}");
    let tiny = CandleSeries::new(series.candles()[..150].to_vec()).unwrap();
    assert!(train(&tiny, &config, &meta, |_, _| {}).unwrap_err().to_string().contains("warm-up"));
    // A threshold so wide that no bar is up or down: a class is missing from the training block.
    let wide = TrainConfig { label: LabelSpec { threshold: 0.4, ..Default::default() }, ..config.clone() };
    let err = train(series, &wide, &meta, |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("no training rows of class"), "{err}");
    // Invalid config.
    let bad = TrainConfig { label: LabelSpec { horizon: 0, ..Default::default() }, ..config.clone() };
    assert!(train(series, &bad, &meta, |_, _| {}).unwrap_err().to_string().contains("horizon"));
    // Prediction with too few bars.
    let a = train(series, &config, &meta, |_, _| {}).unwrap();
    let err = predict(&a, &CandleSeries::new(series.candles()[..150].to_vec()).unwrap(), &a.header.signal).unwrap_err();
    assert!(err.to_string().contains("at least 200"), "{err}");
    assert_eq!(N_FEATURES, 69);
}
