//! Prediction latency in process, on the EURUSD sample (`../shared/data/EURUSD.csv` beside the repository; the
//! bench says so and exits when it is absent): a gradient-boosting model (default hyperparameters) trained by the
//! `ml-train` consumer on the local adapters (embedded store on disk, file blobs), then
//!
//! * `predict_row`: the model on a precomputed feature row (the pure inference, no I/O);
//! * `features_and_model`: features of the newest 2,000 stored bars + the model (`predict_candles`);
//! * `service_predict_warm`: the whole use case as the route runs it — model record read, warm model cache,
//!   dataset metadata read and warm candle tail, features, decision, the prediction stored (a durable write).
//!
//! `CARGO_TARGET_DIR=… cargo bench -p nusatrade-local --bench ml_predict`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use nusatrade_app::jobs::QueueConsumer;
use nusatrade_app::ml::service::{PREDICT_HISTORY_BARS, PredictCandles, predict_candles};
use nusatrade_app::ml::store::{DatasetSource, Owner};
use nusatrade_app::ml::{ML_TRAIN_QUEUE, MlConfig, MlService, MlTrainConsumer, ModelCache};
use nusatrade_app::ml::{routes, service::ModelInput};
use nusatrade_app::ports::{Ports, RandomIds, SystemClock};
use nusatrade_local::adapters::{EmbeddedStore, FileBlobStore, FileMailer, LocalPush, LocalQueue};
use nusatrade_ml::features::last_row;
use nusatrade_ml::predict::predict_row;
use nusatrade_ml::{ModelKind, Timeframe};
use uuid::Uuid;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/EURUSD.csv");

fn benches(c: &mut Criterion) {
    let Ok(csv) = std::fs::read(DATA) else {
        println!("SKIPPED: {DATA} not readable; the EURUSD sample is not beside the repository");
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(SystemClock);
    let ports = Ports {
        store: Arc::new(EmbeddedStore::open(&dir.path().join("store.redb"), clock.clone()).expect("store")),
        blobs: Arc::new(FileBlobStore::new(dir.path().join("blobs"))),
        queue: Arc::new(LocalQueue::new(clock.clone()).with_queue(ML_TRAIN_QUEUE, 5)),
        push: Arc::new(LocalPush::new()),
        mailer: Arc::new(FileMailer::new(dir.path().join("mail"))),
        clock,
        ids: Arc::new(RandomIds),
    };
    let ml = MlService::new(&ports, None, MlConfig::default(), ModelCache::new(4));
    let user = Uuid::new_v4();
    let id = rt.block_on(async {
        ml.datasets
            .upload_csv(Owner::User(user), "EURUSD", Timeframe::H1, &csv, DatasetSource::Upload)
            .await
            .expect("upload");
        let config = routes::parse_config(ModelKind::GradientBoosting, Timeframe::H1, None).expect("config");
        let input = ModelInput {
            name: "bench".into(),
            symbol: "EURUSD",
            timeframe: Timeframe::H1,
            strategy_id: None,
            config,
            auto_trading: Default::default(),
        };
        let m = ml.create_model(user, input).await.expect("create");
        ml.request_training(user, m.id, Default::default()).await.expect("queue");
        let msg =
            ports.queue.receive(ML_TRAIN_QUEUE, 1, Duration::from_secs(900), Duration::ZERO).await.unwrap().remove(0);
        let t = Instant::now();
        MlTrainConsumer::new(ml.clone()).handle(&msg).await.expect("train");
        println!("training job (5,000 bars, gradient boosting, default config): {:.2?}", t.elapsed());
        m.id
    });
    let model = rt.block_on(ml.get_model(user, id)).unwrap();
    let (loc, checksum) = (model.artefact.unwrap(), model.artefact_checksum.unwrap());
    let t = Instant::now();
    let artefact = rt
        .block_on(nusatrade_app::ml::artefacts::read(ports.blobs.as_ref(), Owner::User(user), &loc, &checksum))
        .expect("artefact");
    println!("cold artefact load (read, size check, gunzip, checksum, decode): {:.2?}", t.elapsed());
    let size = model.versions.last().map_or(0, |v| v.size_bytes);
    println!("artefact size (gzipped, as stored): {size} bytes");
    let tail = rt
        .block_on(ml.datasets.tail(Owner::User(user), "EURUSD", Timeframe::H1, PREDICT_HISTORY_BARS))
        .unwrap()
        .unwrap();
    let candles = tail.candles.clone();
    let row = last_row(&candles).unwrap();
    let last = *candles.last().unwrap();
    let signal = artefact.header.signal;

    let mut g = c.benchmark_group("ml_predict");
    g.bench_function("predict_row", |b| {
        b.iter(|| predict_row(&artefact, black_box(&row), &last, candles.len(), &signal).unwrap())
    });
    g.bench_function("features_2000_bars_and_model", |b| {
        b.iter(|| predict_candles(&artefact, black_box(&candles)).unwrap())
    });
    g.bench_function("service_predict_warm", |b| {
        b.to_async(&rt).iter(|| async { ml.predict(user, id, None, PredictCandles::Stored).await.unwrap() })
    });
    g.finish();
}

criterion_group!(ml_predict, benches);

fn main() {
    ml_predict();
    Criterion::default().configure_from_args().final_summary();
}
