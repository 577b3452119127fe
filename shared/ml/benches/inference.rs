//! Inference latency on the EURUSD sample (`../shared/data/EURUSD.csv` beside the repository; the bench says so
//! and exits when it is absent): the last-row feature path, the streaming update, the full matrix for comparison,
//! and a prediction per model family (default hyperparameters, trained once at start-up — the training time,
//! artefact size and decode time of each are printed before the measurements).
//!
//! `CARGO_TARGET_DIR=… cargo bench -p nusatrade-ml --bench inference`

use std::hint::black_box;
use std::time::Instant;

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group};
use nusatrade_ml::artefact::{self, DEFAULT_MAX_BYTES, Encoding};
use nusatrade_ml::candles::{self, CsvLimits};
use nusatrade_ml::features::{self, FeatureState, STABLE_HISTORY_BARS};
use nusatrade_ml::predict::predict_row;
use nusatrade_ml::{Artefact, CandleSeries, ModelKind, Timeframe, TrainConfig, TrainMeta, predict, train};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/EURUSD.csv");

fn load() -> Option<CandleSeries> {
    let bytes = std::fs::read(DATA).ok()?;
    Some(candles::parse_csv(&bytes, &CsvLimits::default()).expect("EURUSD.csv is valid"))
}

fn trained(series: &CandleSeries, kind: ModelKind) -> Artefact {
    let meta = TrainMeta { symbol: Some("EURUSD".into()), timeframe: Some(Timeframe::H1), trained_at: Utc::now() };
    let started = Instant::now();
    let a = train(series, &TrainConfig::new(kind), &meta, |_, _| {}).expect("training on EURUSD");
    let took = started.elapsed();
    let (json, _) = artefact::encode(&a, Encoding::Json, DEFAULT_MAX_BYTES).unwrap();
    let (gz, _) = artefact::encode(&a, Encoding::Gzip, DEFAULT_MAX_BYTES).unwrap();
    let decode = Instant::now();
    let decoded = artefact::decode(&gz, DEFAULT_MAX_BYTES).unwrap();
    let decode = decode.elapsed();
    println!(
        "{:<20} default config, 5,000 bars: train {took:.2?}, artefact {} B JSON / {} B gzip, cold decode {decode:.2?}, \
         test accuracy {:.3}",
        kind.as_str(),
        json.len(),
        gz.len(),
        a.header.metrics.test_metrics.accuracy
    );
    decoded.artefact
}

fn benches(c: &mut Criterion) {
    let Some(series) = load() else {
        println!("SKIPPED: {DATA} not readable; the EURUSD sample is not beside the repository");
        return;
    };
    let all = series.candles();
    let window = &all[all.len() - STABLE_HISTORY_BARS..];
    let window_series = CandleSeries::new(window.to_vec()).unwrap();

    let mut g = c.benchmark_group("features");
    g.bench_function("last_row_1000_bars", |b| b.iter(|| features::last_row(black_box(window))));
    let mut warm = FeatureState::new();
    for bar in &window[..window.len() - 1] {
        warm.push(bar);
    }
    let next = window[window.len() - 1];
    g.bench_function("stream_push_and_row_1_bar", |b| {
        b.iter_batched_ref(
            || warm.clone(),
            |state| {
                state.push(black_box(&next));
                state.row()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("full_matrix_1000_bars", |b| b.iter(|| features::compute(black_box(&window_series))));
    g.finish();

    let row = features::last_row(window).unwrap();
    let mut g = c.benchmark_group("predict");
    for kind in [ModelKind::GradientBoosting, ModelKind::RandomForest, ModelKind::LogisticRegression] {
        let a = trained(&series, kind);
        let signal = a.header.signal;
        g.bench_function(format!("{}/model_only", kind.as_str()), |b| {
            b.iter(|| predict_row(&a, black_box(&row), &next, window.len(), &signal).unwrap())
        });
        g.bench_function(format!("{}/features_1000_bars_and_model", kind.as_str()), |b| {
            b.iter(|| predict(&a, black_box(&window_series), &signal).unwrap())
        });
    }
    g.finish();
}

criterion_group!(inference, benches);

fn main() {
    inference();
    Criterion::default().configure_from_args().final_summary();
}
