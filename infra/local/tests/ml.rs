//! The ML use cases and routes (issue #7) over the local adapters: the embedded store, file blobs, the
//! in-process queue and the real router (`tower::ServiceExt::oneshot`); the `ml-train` consumer is driven by
//! hand (receive → `handle`), as the queue workers do.
//!
//! Covers datasets (upload, merge by range, line-numbered 422s, limits), training as a job (progress, metrics,
//! artefact key, idempotency under redelivery, a crashed attempt restarting, superseded jobs, too few bars →
//! `failed`), predictions (warm cache, stored and paginated), tampered and swapped artefacts refused, deletion
//! removing artefacts and predictions, activation holding one active model per symbol under concurrency,
//! ownership (other users' ids 404, path-like ids 400), execute's refusals, and the system defaults trained from
//! generated data (marked as such) and imported.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use chrono::DateTime;
use nusatrade_app::auth::{AuthConfig, AuthService, CurrentUser};
use nusatrade_app::http::layers;
use nusatrade_app::jobs::QueueConsumer;
use nusatrade_app::ml::artefacts::{self, ArtefactStoreError};
use nusatrade_app::ml::defaults::generated_series;
use nusatrade_app::ml::service::PredictCandles;
use nusatrade_app::ml::store::{ArtefactLocation, ModelRecord, Owner, TrainingStatus, artefact_key, model_key};
use nusatrade_app::ml::{ML_TRAIN_QUEUE, MlConfig, MlService, MlState, MlTrainConsumer, ModelCache, router};
use nusatrade_app::ports::*;
use nusatrade_app::trading::orders::{OrderService, TradingConfig};
use nusatrade_local::adapters::LocalQueue;
use nusatrade_ml::CandleSeries;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

const VIS: Duration = Duration::from_secs(60);

struct World {
    app: Router,
    auth: AuthService,
    ml: MlService,
    consumer: MlTrainConsumer,
    clock: Arc<ManualClock>,
    ports: Ports,
    blob_root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

struct User {
    id: Uuid,
    token: String,
    current: CurrentUser,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap()));
    let blob_root = dir.path().join("blobs");
    let ports = Ports {
        queue: Arc::new(LocalQueue::new(clock.clone()).with_queue(ML_TRAIN_QUEUE, 5)),
        ..common::ports(dir.path(), clock.clone())
    };
    let mut config = AuthConfig::for_tests(common::SECRET);
    config.require_email_verification = false;
    let auth = AuthService::new(config, ports.clone()).unwrap();
    let orders = OrderService::new(&ports, TradingConfig::default());
    let ml_config = MlConfig { progress_interval: Duration::from_millis(20), ..MlConfig::default() };
    let ml = MlService::new(&ports, Some(orders), ml_config, ModelCache::new(4));
    let app = layers::platform(router(MlState { auth: auth.authenticator(), ml: ml.clone() }, None));
    let consumer = MlTrainConsumer::new(ml.clone());
    World { app, auth, ml, consumer, clock, ports, blob_root, _dir: dir }
}

/// A world, a user with a 1,500-bar EURUSD H1 dataset, and their model `name` trained.
async fn with_trained(email: &str, name: &str) -> (World, User, Uuid) {
    let w = world();
    let u = w.user(email).await;
    w.upload(&u, csv(1_500)).await;
    let id = w.trained(&u, name).await;
    (w, u, id)
}

/// A CSV of `bars` generated hourly EURUSD-like candles ending at the test clock.
fn csv(bars: usize) -> String {
    nusatrade_ml::to_csv(&generated_series("EURUSD", bars, DateTime::from_timestamp(1_799_990_000, 0).unwrap()))
}

/// A small, fast gradient-boosting config.
fn small_model(name: &str) -> Value {
    json!({"name": name, "model_type": "gradient_boosting", "symbol": "EURUSD", "timeframe": "H1",
           "config": {"hyperparameters": {"iterations": 8, "max_depth": 3, "nbins": 32}}})
}

impl World {
    async fn user(&self, email: &str) -> User {
        let common::User { id, token, .. } = common::register(&self.auth, email).await;
        let current = self.auth.authenticator().authenticate(&token).await.unwrap();
        User { id, token, current }
    }

    async fn call_raw(&self, method: &str, path: &str, token: &str, body: Body, ctype: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, ctype)
            .body(body)
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
        self.call_raw(method, path, token, body, "application/json").await
    }

    async fn upload(&self, user: &User, csv: String) -> (StatusCode, Value) {
        self.call_raw(
            "POST",
            "/api/v1/ml/datasets?symbol=EURUSD&timeframe=H1",
            &user.token,
            Body::from(csv),
            "text/csv",
        )
        .await
    }

    async fn create(&self, user: &User, body: Value) -> Uuid {
        let (s, b) = self.call("POST", "/api/v1/ml/models", &user.token, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b["id"].as_str().unwrap().parse().unwrap()
    }

    /// Receives one `ml-train` message (without waiting).
    async fn next_job(&self) -> Option<ReceivedMessage> {
        self.ports.queue.receive(ML_TRAIN_QUEUE, 1, VIS, Duration::ZERO).await.unwrap().into_iter().next()
    }

    /// Runs every queued job to completion, as a worker would (`handle`, then delete on success).
    async fn drain(&self) -> usize {
        let mut n = 0;
        while let Some(m) = self.next_job().await {
            self.consumer.handle(&m).await.unwrap();
            self.ports.queue.delete(ML_TRAIN_QUEUE, &m.receipt).await.unwrap();
            n += 1;
        }
        n
    }

    /// Requests training of model `id` (with `body`) and runs the queued jobs, whatever the answer.
    async fn retrain(&self, user: &User, id: Uuid, body: Option<Value>) {
        self.call("POST", &format!("/api/v1/ml/models/{id}/train"), &user.token, body).await;
        self.drain().await;
    }

    /// The status route's body for model `id`.
    async fn status(&self, user: &User, id: Uuid) -> Value {
        self.call("GET", &format!("/api/v1/ml/models/{id}/status"), &user.token, None).await.1
    }

    /// The user's stored EURUSD H1 series.
    async fn eurusd(&self, user: &User) -> CandleSeries {
        let owner = Owner::User(user.id);
        self.ml.datasets.load(owner, "EURUSD", nusatrade_ml::Timeframe::H1, None, None).await.unwrap().unwrap().1
    }

    /// The blob files under the user's datasets, and the chunks their EURUSD H1 record names.
    async fn dataset_files(&self, user: &User) -> (usize, usize) {
        let owner = Owner::User(user.id);
        let record = self.ml.datasets.get(owner, "EURUSD", nusatrade_ml::Timeframe::H1).await.unwrap().unwrap();
        (self.blob_files(&format!("datasets/{}", user.id)).len(), record.chunks.len())
    }

    async fn model(&self, user: &User, id: Uuid) -> ModelRecord {
        self.ml.get_model(user.id, id).await.unwrap()
    }

    fn blob_files(&self, prefix: &str) -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.blob_root.join(prefix), &mut out);
        out
    }

    async fn trained(&self, user: &User, name: &str) -> Uuid {
        self.trained_as(user, small_model(name)).await
    }

    async fn trained_as(&self, user: &User, model: Value) -> Uuid {
        let id = self.create(user, model).await;
        let (s, b) = self.call("POST", &format!("/api/v1/ml/models/{id}/train"), &user.token, Some(json!({}))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        self.drain().await;
        assert_eq!(self.model(user, id).await.training_status, TrainingStatus::Completed);
        id
    }
}

#[tokio::test]
async fn datasets_upload_merge_by_range_and_refuse_bad_csv_with_the_line() {
    let w = world();
    let u = w.user("ds@example.com").await;
    let full = csv(1_200);
    let lines: Vec<&str> = full.lines().collect();
    let head = format!("{}\n", lines[..801].join("\n"));
    let tail = format!("{}\n{}\n", lines[0], lines[601..].join("\n"));
    let (s, b) = w.upload(&u, head).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!((b["bars"].as_u64(), b["added"].as_u64()), (Some(800), Some(800)));
    // An overlapping range: 200 unchanged bars, 400 new ones; only touched months are rewritten.
    let (s, b) = w.upload(&u, tail).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!((b["bars"].as_u64(), b["added"].as_u64(), b["unchanged"].as_u64()), (Some(1_200), Some(400), Some(200)));
    let (s, list) = w.call("GET", "/api/v1/ml/datasets", &u.token, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["symbol"], "EURUSD");
    assert_eq!(list[0]["source"], "upload");
    let series = w.eurusd(&u).await;
    let expected = nusatrade_ml::candles::parse_csv(full.as_bytes(), &Default::default()).unwrap();
    assert_eq!(series, expected, "the merged dataset is the whole series");
    // Stray chunks are not left behind: the blob files are exactly the chunks the record names.
    let (files, chunks) = w.dataset_files(&u).await;
    assert_eq!(files, chunks);

    // Bad CSV: 422 naming the line.
    let bad = format!("{}\n{}\n2030-01-01 00:00:00,1.1,NaN,1.0,1.05,5\n", lines[0], lines[1]);
    let (s, b) = w.upload(&u, bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "line", 3]));
    assert!(b["detail"][0]["msg"].as_str().unwrap().contains("line 3"), "{b}");
    let unsorted = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
    let (s, b) = w.upload(&u, unsorted).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["detail"][0]["loc"], json!(["body", "line", 3]));
    let (s, _) = w.upload(&u, String::new()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Too large: the body limit answers before anything is parsed.
    let huge = "x".repeat(nusatrade_app::ml::datasets::MAX_UPLOAD_BYTES + 1);
    let (s, _) = w.upload(&u, huge).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // Missing or bad parameters, unknown symbols, other scopes.
    let (s, _) =
        w.call_raw("POST", "/api/v1/ml/datasets?symbol=EURUSD", &u.token, Body::from(csv(5)), "text/csv").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = w
        .call_raw("POST", "/api/v1/ml/datasets?symbol=..%2F..&timeframe=H1", &u.token, Body::from(csv(5)), "text/csv")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = w
        .call_raw("POST", "/api/v1/ml/datasets?symbol=EURUSD&timeframe=H2", &u.token, Body::from(csv(5)), "text/csv")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = w
        .call_raw(
            "POST",
            "/api/v1/ml/datasets?symbol=EURUSD&timeframe=H1&scope=system",
            &u.token,
            Body::from(csv(5)),
            "text/csv",
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Delete removes the record and every chunk.
    let (s, _) = w.call("DELETE", "/api/v1/ml/datasets/EURUSD/H1", &u.token, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(w.blob_files(&format!("datasets/{}", u.id)).is_empty());
    let (s, _) = w.call("DELETE", "/api/v1/ml/datasets/EURUSD/H1", &u.token, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_uploads_lose_no_bars() {
    let w = world();
    let u = w.user("race@example.com").await;
    let full = csv(2_000);
    let lines: Vec<&str> = full.lines().collect();
    let parts: Vec<String> =
        (0..8).map(|i| format!("{}\n{}\n", lines[0], lines[1 + i * 250..1 + (i + 1) * 250].join("\n"))).collect();
    let futs = parts.into_iter().map(|p| {
        let ml = w.ml.clone();
        let id = u.id;
        tokio::spawn(async move {
            ml.datasets
                .upload_csv(
                    Owner::User(id),
                    "EURUSD",
                    nusatrade_ml::Timeframe::H1,
                    p.as_bytes(),
                    nusatrade_app::ml::store::DatasetSource::Upload,
                )
                .await
        })
    });
    for r in futures::future::join_all(futs).await {
        r.unwrap().unwrap();
    }
    let series = w.eurusd(&u).await;
    assert_eq!(series.len(), 2_000);
    let (files, chunks) = w.dataset_files(&u).await;
    assert_eq!(files, chunks, "losers cleaned up");
}

#[tokio::test]
async fn training_is_a_job_with_progress_metrics_and_a_versioned_artefact() {
    let w = world();
    let u = w.user("train@example.com").await;
    assert_eq!(w.upload(&u, csv(1_500)).await.0, StatusCode::CREATED);
    let id = w.create(&u, small_model("job")).await;

    // Predicting before training: 400.
    let (s, b) = w.call("POST", &format!("/api/v1/ml/models/{id}/predict"), &u.token, Some(json!({}))).await;
    assert_eq!(
        (s, b["detail"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Model not trained. Please train the model first."))
    );
    let (s, _) = w.call("POST", &format!("/api/v1/ml/models/{id}/activate"), &u.token, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "untrained models cannot be activated");

    let (s, b) =
        w.call("POST", &format!("/api/v1/ml/models/{id}/train"), &u.token, Some(json!({"test_split": 0.2}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["status"], "queued");
    let (s, st) = w.call("GET", &format!("/api/v1/ml/models/{id}/status"), &u.token, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!((st["training_status"].as_str(), st["progress"]["stage"].as_str()), (Some("training"), Some("queued")));
    // A second request while queued: 400.
    let (s, b) = w.call("POST", &format!("/api/v1/ml/models/{id}/train"), &u.token, None).await;
    assert_eq!((s, b["detail"].as_str()), (StatusCode::BAD_REQUEST, Some("Model is already being trained")));

    // The consumer runs it; progress is written while it trains.
    let m = w.next_job().await.unwrap();
    let job: Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(job["kind"], "train_model");
    let (c, msg) = (w.consumer.clone(), m.clone());
    let running = tokio::spawn(async move { c.handle(&msg).await });
    let mut stages = std::collections::BTreeSet::new();
    while !running.is_finished() {
        let rec = w.model(&u, id).await;
        if let Some(stage) = rec.job.progress_stage {
            stages.insert(stage);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    running.await.unwrap().unwrap();
    w.ports.queue.delete(ML_TRAIN_QUEUE, &m.receipt).await.unwrap();
    assert!(stages.len() >= 2, "several stages were visible: {stages:?}");

    let st = w.status(&u, id).await;
    assert_eq!(st["training_status"], "completed", "{st}");
    assert_eq!(st["progress"]["stage"], "done");
    assert_eq!(st["progress"]["fraction"], 1.0);
    assert_eq!(st["version"], 1);
    for k in [
        "accuracy",
        "precision",
        "recall",
        "win_rate",
        "total_trades",
        "sharpe_ratio",
        "max_drawdown",
        "buy_and_hold_return",
    ] {
        assert!(st["performance_metrics"].get(k).is_some(), "{k} in {}", st["performance_metrics"]);
    }
    assert!(st["metrics"]["test_metrics"]["per_class"].as_array().unwrap().len() == 3, "{}", st["metrics"]);
    assert_eq!(st["data_source"]["kind"], "user_dataset");
    assert_eq!(st["file_path"], format!("{}/{id}/v1/model.json.gz", u.id));
    let key = artefact_key(Owner::User(u.id), id, 1).unwrap();
    assert!(w.ports.blobs.get(&key, 1 << 26).await.unwrap().is_some(), "artefact at {key}");

    // Retraining writes v2 (the job reserved a fresh version); the list shows both.
    let (s, _) = w.call("POST", &format!("/api/v1/ml/models/{id}/train"), &u.token, None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(w.drain().await, 1);
    let rec = w.model(&u, id).await;
    assert_eq!(rec.artefact.map(|a| a.version), Some(2));
    assert_eq!(rec.versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2]);
}

#[tokio::test]
async fn jobs_are_idempotent_under_redelivery_and_restart_after_a_crash() {
    let w = world();
    let u = w.user("idem@example.com").await;
    w.upload(&u, csv(1_500)).await;
    let id = w.create(&u, small_model("idem")).await;
    w.call("POST", &format!("/api/v1/ml/models/{id}/train"), &u.token, None).await;
    let m = w.next_job().await.unwrap();

    // A crashed attempt: it took the lease (training, attempt 1) and died.
    w.ports
        .store
        .update(
            &model_key(u.id, id),
            Update::new()
                .set("training_status", "training")
                .set("lease_until", w.clock.epoch_seconds() + 900)
                .add("job_attempt", 1)
                .add("next_version", 1),
            None,
        )
        .await
        .unwrap();
    // Redelivered while the lease is live: left for later.
    assert!(w.consumer.handle(&m).await.is_err(), "another worker holds the job");
    // After the lease ran out, the redelivered message restarts the job.
    w.clock.advance(chrono::Duration::seconds(901));
    w.consumer.handle(&m).await.unwrap();
    let rec = w.model(&u, id).await;
    assert_eq!(rec.training_status, TrainingStatus::Completed);
    assert_eq!(rec.job.job_attempt, 2);
    let version = rec.artefact.unwrap().version;
    assert_eq!(version, 2, "the crashed attempt's reserved version is not reused");
    // The same message again (SQS at-least-once): nothing changes.
    w.consumer.handle(&m).await.unwrap();
    let again = w.model(&u, id).await;
    assert_eq!((again.artefact, again.versions.len(), again.job.job_attempt), (rec.artefact, 1, 2));

    // A message of a superseded job does nothing either.
    let stale = serde_json::json!({"kind": "train_model", "user_id": u.id, "model_id": id, "job_id": Uuid::new_v4()});
    let msg = ReceivedMessage { id: "x".into(), body: stale.to_string(), receipt: "r".into(), receive_count: 1 };
    w.consumer.handle(&msg).await.unwrap();
    assert_eq!(w.model(&u, id).await.versions.len(), 1);
    // Garbage is refused (left on the queue for the dead-letter queue).
    let junk =
        ReceivedMessage { id: "y".into(), body: "{\"kind\":\"nope\"}".into(), receipt: "r".into(), receive_count: 1 };
    assert!(matches!(w.consumer.handle(&junk).await, Err(nusatrade_app::jobs::JobError::Invalid(_))));
    // A job for a deleted model: done, nothing written.
    let gone = serde_json::json!({"kind": "train_model", "user_id": u.id, "model_id": Uuid::new_v4(), "job_id": Uuid::new_v4()});
    let msg = ReceivedMessage { id: "z".into(), body: gone.to_string(), receipt: "r".into(), receive_count: 1 };
    w.consumer.handle(&msg).await.unwrap();
}

#[tokio::test]
async fn bad_training_data_is_a_failed_status_not_a_panic() {
    let w = world();
    let u = w.user("few@example.com").await;
    // No dataset at all.
    let id = w.create(&u, small_model("none")).await;
    w.retrain(&u, id, None).await;
    let st = w.status(&u, id).await;
    assert_eq!(st["training_status"], "failed");
    assert!(st["training_error"].as_str().unwrap().contains("No candles stored for EURUSD H1"), "{st}");
    // Too few bars.
    w.upload(&u, csv(300)).await;
    w.retrain(&u, id, None).await;
    let st = w.status(&u, id).await;
    assert_eq!(st["training_status"], "failed");
    assert!(st["training_error"].as_str().unwrap().contains("not enough data"), "{st}");
    // A date window outside the data: failed too, with the reason.
    w.upload(&u, csv(1_500)).await;
    let body = json!({"start_date": "2001-01-01", "end_date": "2001-06-01"});
    w.retrain(&u, id, Some(body)).await;
    assert_eq!(w.model(&u, id).await.training_status, TrainingStatus::Failed);
    // Then a good run recovers.
    w.retrain(&u, id, None).await;
    assert_eq!(w.model(&u, id).await.training_status, TrainingStatus::Completed);
}

#[tokio::test]
async fn predictions_use_the_warm_model_are_stored_and_paginated() {
    let (w, u, id) = with_trained("pred@example.com", "pred").await;
    let (_, before_misses) = (w.ml.cache.stats().1, w.ml.cache.stats().2);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (s, p) = w
            .call("POST", &format!("/api/v1/ml/models/{id}/predict"), &u.token, Some(json!({"symbol": "EURUSD"})))
            .await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(p["model_id"], id.to_string());
        assert!(["BUY", "SELL", "HOLD"].contains(&p["prediction"]["direction"].as_str().unwrap()));
        let conf = p["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&conf));
        assert_eq!(p["prediction"]["candles"]["kind"], "user_dataset");
        let probs = &p["prediction"]["probabilities"];
        let sum = probs["down"].as_f64().unwrap() + probs["flat"].as_f64().unwrap() + probs["up"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-9, "{probs}");
        ids.push(p["id"].as_str().unwrap().to_owned());
        w.clock.advance(chrono::Duration::milliseconds(5));
    }
    // The cached feature row of the stored tail gives exactly what computing the features again gives.
    let tail =
        w.ml.datasets.tail(Owner::User(u.id), "EURUSD", nusatrade_ml::Timeframe::H1, 2_000).await.unwrap().unwrap();
    let rec = w.model(&u, id).await;
    let artefact = artefacts::read(
        w.ports.blobs.as_ref(),
        Owner::User(u.id),
        &rec.artefact.unwrap(),
        rec.artefact_checksum.as_deref().unwrap(),
    )
    .await
    .unwrap();
    let fresh = nusatrade_app::ml::service::predict_candles(&artefact, &tail.candles).unwrap();
    assert_eq!(nusatrade_app::ml::service::predict_tail(&artefact, &tail).unwrap(), fresh);
    assert_eq!(nusatrade_app::ml::service::predict_tail(&artefact, &tail).unwrap(), fresh, "cached row");
    let (entries, hits, misses) = w.ml.cache.stats();
    assert_eq!((entries, misses - before_misses), (1, 1), "loaded once, then served warm");
    assert!(hits >= 4);
    // Candles in the request instead of the stored ones.
    let series = generated_series("EURUSD", 400, DateTime::from_timestamp(1_799_000_000, 0).unwrap());
    let candles: Vec<Value> = series
        .candles()
        .iter()
        .map(|c| json!({"time": c.time.to_rfc3339(), "open": c.open, "high": c.high, "low": c.low, "close": c.close, "volume": c.volume}))
        .collect();
    let (s, p) =
        w.call("POST", &format!("/api/v1/ml/models/{id}/predict"), &u.token, Some(json!({"candles": candles}))).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["prediction"]["candles"]["kind"], "request");
    ids.push(p["id"].as_str().unwrap().to_owned());
    let (s, b) = w
        .call("POST", &format!("/api/v1/ml/models/{id}/predict"), &u.token, Some(json!({"candles": candles[..100]})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "too few bars: {b}");
    let (s, _) =
        w.call("POST", &format!("/api/v1/ml/models/{id}/predict"), &u.token, Some(json!({"symbol": "EU/../R"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Listed newest first, two per page, with a cursor.
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/ml/models/{id}/predictions?limit=2");
    loop {
        let req = Request::get(&path)
            .header(header::AUTHORIZATION, format!("Bearer {}", u.token))
            .body(Body::empty())
            .unwrap();
        let resp = w.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let next = resp.headers().get("x-next-cursor").map(|v| v.to_str().unwrap().to_owned());
        let page: Value =
            serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap()).unwrap();
        for p in page.as_array().unwrap() {
            seen.push(p["id"].as_str().unwrap().to_owned());
        }
        match next {
            Some(c) => path = format!("/api/v1/ml/models/{id}/predictions?limit=2&cursor={c}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let (s, _) = w.call("GET", &format!("/api/v1/ml/models/{id}/predictions?cursor=garbage"), &u.token, None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn tampered_or_swapped_artefacts_are_refused() {
    let (w, u, a) = with_trained("tamper@example.com", "a").await;
    // Another configuration: the same one trains to the same bytes whenever the two fits take the same
    // milliseconds (the artefact records `fit_millis`), and a swap of identical bytes is no swap.
    let mut other_model = small_model("b");
    other_model["config"]["hyperparameters"]["iterations"] = json!(9);
    let b = w.trained_as(&u, other_model).await;
    assert_ne!(w.model(&u, a).await.artefact_checksum, w.model(&u, b).await.artefact_checksum);
    let key = artefact_key(Owner::User(u.id), a, 1).unwrap();
    let original = w.ports.blobs.get(&key, 1 << 26).await.unwrap().unwrap();
    // One changed byte inside the (decompressed) document: the checksum refuses it.
    let decoded = nusatrade_ml::artefact::decode(&original, 1 << 26).unwrap();
    let (plain, _) = nusatrade_ml::artefact::encode(&decoded.artefact, nusatrade_ml::Encoding::Json, 1 << 26).unwrap();
    let text = String::from_utf8(plain).unwrap();
    let tampered = text.replacen("\"fit_millis\":", "\"fit_millis\":1", 1);
    assert_ne!(tampered, text);
    w.ports.blobs.put(&key, Bytes::from(tampered.into_bytes()), "application/json").await.unwrap();
    let loc = ArtefactLocation { system: false, model_id: a, version: 1 };
    let checksum = w.model(&u, a).await.artefact_checksum.unwrap();
    let err = artefacts::read(w.ports.blobs.as_ref(), Owner::User(u.id), &loc, &checksum).await.unwrap_err();
    assert!(matches!(err, ArtefactStoreError::Artefact(nusatrade_ml::ArtefactError::ChecksumMismatch { .. })), "{err}");
    let (s, body) = w.call("POST", &format!("/api/v1/ml/models/{a}/predict"), &u.token, None).await;
    assert_eq!((s, body["detail"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("Internal server error")));
    // Another model's valid artefact copied over: refused by the record's checksum.
    let other = w.ports.blobs.get(&artefact_key(Owner::User(u.id), b, 1).unwrap(), 1 << 26).await.unwrap().unwrap();
    w.ports.blobs.put(&key, other, "application/gzip").await.unwrap();
    let err = artefacts::read(w.ports.blobs.as_ref(), Owner::User(u.id), &loc, &checksum).await.unwrap_err();
    assert!(matches!(err, ArtefactStoreError::Replaced { .. }), "{err}");
    // Restored: accepted again.
    w.ports.blobs.put(&key, original, "application/gzip").await.unwrap();
    let (s, _) = w.call("POST", &format!("/api/v1/ml/models/{a}/predict"), &u.token, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn deleting_a_model_deletes_its_artefacts_and_predictions_and_ids_are_scoped() {
    let (w, u, id) = with_trained("del@example.com", "del").await;
    let other = w.user("other@example.com").await;
    w.retrain(&u, id, None).await;
    for _ in 0..3 {
        assert_eq!(w.call("POST", &format!("/api/v1/ml/models/{id}/predict"), &u.token, None).await.0, StatusCode::OK);
    }
    assert_eq!(w.blob_files(&format!("models/{}/{id}", u.id)).len(), 2, "two versions");

    // Other users' ids: 404, indistinguishable from unknown ones; path-like ids: 400.
    for (method, suffix) in [
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("POST", "/train"),
        ("GET", "/status"),
        ("POST", "/predict"),
        ("GET", "/predictions"),
        ("POST", "/activate"),
        ("POST", "/deactivate"),
    ] {
        let body = (method == "PUT").then(|| small_model("x"));
        let (s, b) = w.call(method, &format!("/api/v1/ml/models/{id}{suffix}"), &other.token, body.clone()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {suffix}: {b}");
        assert_eq!(b["detail"], "Model not found");
        let (s, _) =
            w.call(method, &format!("/api/v1/ml/models/{}{suffix}", Uuid::new_v4()), &u.token, body.clone()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        for bad in ["..%2F..%2Fetc%2Fpasswd", "not-a-uuid", "%2E%2E"] {
            let (s, b) = w.call(method, &format!("/api/v1/ml/models/{bad}{suffix}"), &u.token, body.clone()).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {bad}{suffix}: {b}");
            assert_eq!(b["detail"], "Invalid model_id format. Must be a valid UUID.");
        }
    }
    let (s, b) = w
        .call(
            "POST",
            &format!("/api/v1/ml/models/{id}/execute"),
            &other.token,
            Some(json!({"prediction_id": Uuid::new_v4()})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    let (s, b) = w.call("DELETE", &format!("/api/v1/ml/models/{id}"), &u.token, None).await;
    assert_eq!((s, b["deleted"].as_str()), (StatusCode::OK, Some(id.to_string().as_str())));
    assert!(w.blob_files(&format!("models/{}/{id}", u.id)).is_empty(), "artefacts deleted");
    let left =
        w.ports.store.query(Query::partition(format!("USER#{}", u.id)).sk_prefix(format!("PRED#{id}#"))).await.unwrap();
    assert!(left.items.is_empty(), "predictions deleted");
    let (s, _) = w.call("GET", &format!("/api/v1/ml/models/{id}"), &u.token, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = w.call("GET", "/api/v1/ml/models", &u.token, None).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn one_active_model_per_symbol_under_concurrency() {
    let (w, u, a) = with_trained("act@example.com", "a").await;
    let b = w.trained(&u, "b").await;
    let c = w.trained(&u, "c").await;
    let futs = (0..30).map(|i| {
        let ml = w.ml.clone();
        let id = [a, b, c][i % 3];
        let user = u.id;
        tokio::spawn(async move { ml.activate(user, id).await.map(|_| ()) })
    });
    for r in futures::future::join_all(futs).await {
        r.unwrap().unwrap();
    }
    let models = w.ml.all_models(u.id).await.unwrap();
    let active: Vec<Uuid> = models.iter().filter(|m| m.is_active).map(|m| m.id).collect();
    assert_eq!(active.len(), 1, "exactly one active: {active:?}");
    let lock = w.ports.store.get(&Key::new(format!("USER#{}", u.id), "ACTIVE#EURUSD")).await.unwrap().unwrap();
    assert_eq!(lock.get_s("model_id"), Some(active[0].to_string().as_str()));

    let (s, bots) = w.call("GET", "/api/v1/ml/dashboard/active-bots", &u.token, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bots["active_count"], 1);
    assert_eq!(bots["bots"][0]["id"], active[0].to_string());
    w.call("POST", &format!("/api/v1/ml/models/{}/predict", active[0]), &u.token, None).await;
    let (_, bots) = w.call("GET", "/api/v1/ml/dashboard/active-bots", &u.token, None).await;
    assert_eq!((bots["total_signals_today"].as_u64(), bots["bots"][0]["today_signals"].as_u64()), (Some(1), Some(1)));
    assert!(bots["bots"][0]["last_prediction"]["direction"].is_string());

    // A symbol change of the active model is refused; deactivating frees the symbol.
    let mut body = small_model("moved");
    body["symbol"] = json!("GBPUSD");
    let (s, _) = w.call("PUT", &format!("/api/v1/ml/models/{}", active[0]), &u.token, Some(body.clone())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, d) = w.call("POST", &format!("/api/v1/ml/models/{}/deactivate", active[0]), &u.token, None).await;
    assert_eq!((s, d["status"].as_str()), (StatusCode::OK, Some("inactive")));
    assert!(w.ports.store.get(&Key::new(format!("USER#{}", u.id), "ACTIVE#EURUSD")).await.unwrap().is_none());
    let (s, m) = w.call("PUT", &format!("/api/v1/ml/models/{}", active[0]), &u.token, Some(body)).await;
    assert_eq!((s, m["symbol"].as_str()), (StatusCode::OK, Some("GBPUSD")));
    // Deleting an active model frees its symbol in the same transaction.
    w.ml.activate(u.id, a).await.unwrap();
    w.ml.delete_model(u.id, a).await.unwrap();
    assert!(w.ports.store.get(&Key::new(format!("USER#{}", u.id), "ACTIVE#EURUSD")).await.unwrap().is_none());
    w.ml.activate(u.id, b).await.unwrap();
}

#[tokio::test]
async fn execute_goes_through_the_order_rules() {
    let (w, u, id) = with_trained("exec@example.com", "exec").await;
    // A HOLD prediction cannot be executed; an unknown one is 404; bad ids 400; bad lots 422/400.
    let p = w.ml.predict(u.id, id, None, PredictCandles::Stored).await.unwrap();
    let hold = w
        .ports
        .store
        .get(&Key::new(format!("USER#{}", u.id), format!("PRED#{id}#{}", p.record.id)))
        .await
        .unwrap()
        .unwrap();
    let mut hold_rec: nusatrade_app::ml::store::PredictionRecord = hold.to_record().unwrap();
    hold_rec.direction = "HOLD".into();
    let key = hold.key().unwrap();
    w.ports.store.put(Item::from_record(&key, &hold_rec).unwrap(), None).await.unwrap();
    let path = format!("/api/v1/ml/models/{id}/execute");
    let exec = |body: Value| w.call("POST", &path, &u.token, Some(body));
    let (s, b) = exec(json!({"prediction_id": p.record.id})).await;
    assert_eq!((s, b["detail"].as_str()), (StatusCode::BAD_REQUEST, Some("Cannot execute HOLD signal")));
    let (s, b) = exec(json!({"prediction_id": Uuid::new_v4()})).await;
    assert_eq!((s, b["detail"].as_str()), (StatusCode::NOT_FOUND, Some("Prediction not found")));
    let (s, _) = exec(json!({"prediction_id": "../x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = exec(json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // A BUY: the order use case runs its checks — without a connector online, 503 and no order left behind.
    hold_rec.direction = "BUY".into();
    let mut pred: Value = serde_json::from_str(&hold_rec.prediction).unwrap();
    let entry = pred["entry_price"].as_f64().unwrap();
    pred["stop_loss"] = json!(entry - 0.002);
    pred["take_profit"] = json!(entry + 0.004);
    hold_rec.prediction = pred.to_string();
    w.ports.store.put(Item::from_record(&key, &hold_rec).unwrap(), None).await.unwrap();
    let (s, _) = exec(json!({"prediction_id": p.record.id, "lot_size": 0.015})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "lot step");
    let (s, _) = exec(json!({"prediction_id": p.record.id, "lot_size": 500})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, b) = exec(json!({"prediction_id": p.record.id, "lot_size": 0.1})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("connector is not online"), "{b}");
    let _ = u.current;
}

#[tokio::test]
async fn defaults_are_trained_on_first_use_from_generated_data_and_imported() {
    let w = world();
    let u = w.user("def@example.com").await;
    let (s, d) = w.call("GET", "/api/v1/ml-models/defaults", &u.token, None).await;
    assert_eq!((s, d), (StatusCode::OK, json!({})), "none yet: their training is queued");
    let (s, b) = w.call("POST", "/api/v1/ml/models/import-default/EURUSD", &u.token, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "being trained: {b}");
    // Concurrent first requests queued one job per symbol.
    let _ = w.call("GET", "/api/v1/ml-models/defaults", &u.token, None).await;
    assert_eq!(w.drain().await, 3);
    let (s, d) = w.call("GET", "/api/v1/ml-models/defaults", &u.token, None).await;
    assert_eq!(s, StatusCode::OK);
    for sym in ["XAUUSD", "EURUSD", "BTCUSD"] {
        assert_eq!(d[sym]["is_user_override"], false, "{d}");
        assert!(d[sym]["accuracy"].is_number(), "{d}");
        // a percentage, as the dashboard shows it (a fraction read "Win Rate 0.5%")
        let pct = d[sym]["accuracy"].as_f64().unwrap();
        assert!((1.0..=100.0).contains(&pct), "accuracy as a percentage: {d}");
        assert!(d[sym]["model_path"].as_str().unwrap().starts_with("system/"));
    }
    let (_, one) = w.call("GET", "/api/v1/ml-models/defaults/EURUSD", &u.token, None).await;
    assert_eq!(one["data_source"]["origin"], "generated", "{one}");
    assert!(one["data_source"]["note"].as_str().unwrap().contains("NOT market data"));
    let (s, _) = w.call("GET", "/api/v1/ml-models/defaults/GBPUSD", &u.token, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, m) = w.call("POST", "/api/v1/ml/models/import-default/eurusd", &u.token, None).await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(
        (m["symbol"].as_str(), m["is_pretrained"].as_bool(), m["training_status"].as_str()),
        (Some("EURUSD"), Some(true), Some("completed"))
    );
    let (s, b) = w.call("POST", "/api/v1/ml/models/import-default/EURUSD", &u.token, None).await;
    assert_eq!(
        (s, b["detail"].as_str()),
        (StatusCode::BAD_REQUEST, Some("You already imported the default EURUSD model"))
    );
    let (s, _) = w.call("POST", "/api/v1/ml/models/import-default/GBPUSD", &u.token, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The imported model predicts from the platform's candles (the user has none), and says so.
    let mid = m["id"].as_str().unwrap();
    let (s, p) = w.call("POST", &format!("/api/v1/ml/models/{mid}/predict"), &u.token, None).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["prediction"]["candles"]["kind"], "system_dataset");
    assert_eq!(p["prediction"]["candles"]["origin"], "generated");
    // Imported defaults are trained by the platform, not by the user.
    let (s, _) = w.call("POST", &format!("/api/v1/ml/models/{mid}/train"), &u.token, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Overrides: only the user's own trained model of that symbol, named by its listed path.
    w.upload(&u, csv(1_500)).await;
    let own = w.trained(&u, "mine").await;
    let (_, files) = w.call("GET", "/api/v1/ml-models/models/EURUSD", &u.token, None).await;
    let mine = files["models"].as_array().unwrap().iter().find(|f| f["model_id"] == own.to_string()).unwrap().clone();
    let (s, b) = w
        .call(
            "POST",
            "/api/v1/ml-models/defaults/EURUSD",
            &u.token,
            Some(json!({"model_path": "../../etc/passwd", "model_id": own})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = w
        .call(
            "POST",
            "/api/v1/ml-models/defaults/EURUSD",
            &u.token,
            Some(json!({"model_path": mine["model_path"], "model_id": own})),
        )
        .await;
    assert_eq!((s, b["is_user_override"].as_bool()), (StatusCode::OK, Some(true)), "{b}");
    let (_, d) = w.call("GET", "/api/v1/ml-models/defaults", &u.token, None).await;
    assert_eq!(d["EURUSD"]["model_id"], own.to_string());
    let (s, _) = w.call("DELETE", "/api/v1/ml-models/defaults/EURUSD", &u.token, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = w.call("DELETE", "/api/v1/ml-models/defaults/EURUSD", &u.token, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Retraining a default is for admins.
    let (s, _) = w.call("POST", "/api/v1/ml-models/defaults/EURUSD/retrain", &u.token, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Deleting the imported model keeps the system artefact.
    w.call("DELETE", &format!("/api/v1/ml/models/{mid}"), &u.token, None).await;
    assert!(!w.blob_files("models/system").is_empty());
    let (s, _) = w.call("POST", "/api/v1/ml/models/import-default/EURUSD", &u.token, None).await;
    assert_eq!(s, StatusCode::CREATED, "importable again after deletion");
    let _: Option<CandleSeries> = None;
}
