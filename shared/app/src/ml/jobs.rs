//! The training job consumer of the `ml-train` queue ([`MlTrainConsumer`], a [`QueueConsumer`]: the SQS Lambda
//! `ml-train` and the local platform's worker feed it).
//!
//! Messages ([`TrainJob`], JSON): `{"kind":"train_model","user_id","model_id","job_id","request":{start,end,
//! test_split}}` — written by `POST /ml/models/{id}/train` — and `{"kind":"train_default","symbol","job_id"}` —
//! written when a system default is first needed or retrained — and `{"kind":"auto_trading_cycle"}`, put by the
//! 15-minute schedule ([`super::auto`]): a cycle takes the cross-process lease (a duplicate or concurrent message
//! is `already_running` and done), and its trades are idempotent per model and prediction.
//!
//! Delivery is at least once, so a job is **idempotent**:
//! 1. The record (model or default) names the job it expects (`job_id`). A message for another job (superseded
//!    by a newer request) or for a record that is gone does nothing; so does a job already `completed`/`failed`.
//! 2. A consumer takes a **lease** with a conditional update: `queued → training`, or `training` whose lease ran
//!    out (a crashed or timed-out attempt: the job restarts). The same update reserves a fresh artefact version
//!    number, so two attempts never write the same key. A live lease held by another consumer leaves the
//!    message for later (`Err`, redelivered after the visibility timeout).
//! 3. Progress (stage and fraction) is written while training runs, at most once per
//!    [`MlConfig::progress_interval`](super::MlConfig::progress_interval), conditional on the job still holding
//!    the record.
//! 4. The artefact is written, then the record is completed — conditional on the job: if the model was deleted
//!    or retrained meanwhile, the artefact just written is deleted again.
//!
//! Bad data (no candles, too few bars, a class missing from the training window) is a `failed` status with the
//! error in words, never a panic and never a retry; a panic inside the training library is caught the same
//! way. Dependency failures (store, blob store) release the lease and leave the message for a retry.

use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nusatrade_ml::{Artefact, CandleSeries, Stage, Timeframe, TrainConfig, TrainMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use super::artefacts;
use super::auto::{self, CycleOrigin};
use super::datasets::DatasetError;
use super::defaults::{self, GENERATED_BARS, MIN_DEFAULT_BARS};
use super::error::MlError;
use super::service::{ML_TRAIN_QUEUE, MlService, TrainRequest};
use super::store::*;
use crate::jobs::{JobError, QueueConsumer};
use crate::ports::{Condition, Item, Key, ReceivedMessage, StoreError, Update, Value as StoreValue};

/// A message of the `ml-train` queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrainJob {
    /// Train a user's model.
    TrainModel {
        user_id: Uuid,
        model_id: Uuid,
        job_id: Uuid,
        #[serde(default)]
        request: TrainRequest,
    },
    /// Train (or retrain) a system default.
    TrainDefault { symbol: String, job_id: Uuid },
    /// One auto-trading cycle (the 15-minute schedule's body, [`super::auto::AUTO_TRADING_BODY`]).
    AutoTradingCycle,
}

impl TrainJob {
    /// The message body.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a job serialises")
    }
}

/// Record attribute names that differ between models and defaults.
#[derive(Clone, Copy)]
struct Attrs {
    status: &'static str,
    error: &'static str,
    started: Option<&'static str>,
    completed: &'static str,
}

const MODEL_ATTRS: Attrs = Attrs {
    status: "training_status",
    error: "training_error",
    started: Some("training_started_at"),
    completed: "training_completed_at",
};
const DEFAULT_ATTRS: Attrs = Attrs { status: "status", error: "error", started: None, completed: "completed_at" };

/// The record a job works on.
#[derive(Clone)]
struct Target {
    key: Key,
    attrs: Attrs,
    job_id: Uuid,
}

/// What the job found when it tried to take the lease.
enum Leased {
    /// It holds the job; the record as updated.
    Yes(Item),
    /// Nothing to do (gone, superseded, finished).
    Done(&'static str),
}

fn ser<T: Serialize>(v: &T) -> Result<StoreValue, StoreError> {
    StoreValue::from_json(serde_json::to_value(v).map_err(|e| StoreError::Validation(e.to_string()))?)
}

fn unavailable(e: impl std::fmt::Display) -> JobError {
    JobError::Unavailable(e.to_string())
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Features => "features",
        Stage::Labels => "labels",
        Stage::Training => "training",
        Stage::Evaluating => "evaluating",
        Stage::Packaging => "packaging",
        Stage::Done => "saving",
    }
}

/// The consumer of the `ml-train` queue.
#[derive(Clone)]
pub struct MlTrainConsumer {
    pub ml: MlService,
}

impl MlTrainConsumer {
    pub fn new(ml: MlService) -> Self {
        MlTrainConsumer { ml }
    }

    fn now(&self) -> DateTime<Utc> {
        self.ml.clock.now()
    }

    /// The job's own condition: the record exists, names this job and is `training`.
    fn holds(t: &Target) -> Condition {
        Condition::eq("job_id", t.job_id.to_string())
            .and(Condition::eq(t.attrs.status, TrainingStatus::Training.as_str()))
    }

    async fn take_lease(&self, t: &Target) -> Result<Leased, JobError> {
        let now = self.now();
        let lease_free = Condition::AttrNotExists("lease_until".into())
            .or(Condition::eq("lease_until", StoreValue::Null))
            .or(Condition::lt("lease_until", now.timestamp()));
        let cond = Condition::eq("job_id", t.job_id.to_string()).and(
            Condition::eq(t.attrs.status, TrainingStatus::Queued.as_str()).or(Condition::eq(
                t.attrs.status,
                TrainingStatus::Training.as_str(),
            )
            .and(lease_free)),
        );
        let mut update = Update::new()
            .set(t.attrs.status, TrainingStatus::Training.as_str())
            .add("job_attempt", 1)
            .add("next_version", 1)
            .set("lease_until", (now + self.ml.config.job_timeout).timestamp())
            .set("progress_stage", "loading_data")
            .set("progress_fraction", 0i64)
            .set("progress_at", ser(&now).map_err(unavailable)?)
            .remove(t.attrs.error);
        if let Some(started) = t.attrs.started {
            update = update.set(started, ser(&now).map_err(unavailable)?);
        }
        match self.ml.store.update(&t.key, update, Some(cond)).await {
            Ok(item) => Ok(Leased::Yes(item)),
            Err(e) if e.is_condition_failure() => {
                let Some(item) = self.ml.store.get(&t.key).await.map_err(unavailable)? else {
                    return Ok(Leased::Done("the record is gone"));
                };
                if item.get_s("job_id") != Some(t.job_id.to_string().as_str()) {
                    return Ok(Leased::Done("superseded by a newer job"));
                }
                match item.get_s(t.attrs.status) {
                    Some("completed") | Some("failed") | Some("idle") => Ok(Leased::Done("already finished")),
                    _ => Err(JobError::Unavailable(format!("job {} is running in another worker", t.job_id))),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Releases the lease after a dependency failure, so the redelivered message restarts at once.
    async fn release(&self, t: &Target) {
        let update = Update::new().remove("lease_until").set("progress_stage", "retrying");
        if let Err(e) = self.ml.store.update(&t.key, update, Some(Self::holds(t))).await {
            warn!(error = %e, "could not release a training lease");
        }
    }

    /// Writes the trained artefact: its `(checksum, size)`, or `None` once an artefact the store refuses has failed
    /// the job (final); a blob store failure releases the lease for a retry.
    async fn write_artefact(
        &self,
        t: &Target,
        owner: Owner,
        model: Uuid,
        version: u32,
        artefact: &Artefact,
    ) -> Result<Option<(String, u64)>, JobError> {
        match artefacts::write(self.ml.blobs.as_ref(), owner, model, version, artefact).await {
            Ok(x) => Ok(Some(x)),
            Err(artefacts::ArtefactStoreError::Artefact(e)) => self.fail(t, &e.to_string()).await.map(|()| None),
            Err(e) => {
                self.release(t).await;
                Err(unavailable(e))
            }
        }
    }

    /// Marks the job failed (bad data or config): a final state, not retried.
    async fn fail(&self, t: &Target, error: &str) -> Result<(), JobError> {
        let now = self.now();
        let update = Update::new()
            .set(t.attrs.status, TrainingStatus::Failed.as_str())
            .set(t.attrs.error, error)
            .set(t.attrs.completed, ser(&now).map_err(unavailable)?)
            .set("progress_stage", "failed")
            .set("progress_at", ser(&now).map_err(unavailable)?)
            .remove("lease_until");
        match self.ml.store.update(&t.key, update, Some(Self::holds(t))).await {
            Ok(_) => {
                info!(job = %t.job_id, key = %t.key, error, "training failed");
                Ok(())
            }
            Err(e) if e.is_condition_failure() => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Trains on a blocking thread while a task writes the progress (throttled).
    async fn run_training(
        &self,
        t: &Target,
        series: CandleSeries,
        config: TrainConfig,
        meta: TrainMeta,
    ) -> Result<Result<Artefact, String>, JobError> {
        let (tx, mut rx) = watch::channel(("features", 0.05f64));
        let store = self.ml.store.clone();
        let clock = self.ml.clock.clone();
        let (key, cond, interval) = (t.key.clone(), Self::holds(t), self.ml.config.progress_interval);
        // Ends the writer at once when training is over (the completion write follows; no late progress).
        let (done_tx, mut done) = tokio::sync::oneshot::channel::<()>();
        let writer = tokio::spawn(async move {
            let mut last = Instant::now() - interval;
            loop {
                tokio::select! {
                    biased;
                    _ = &mut done => break,
                    changed = rx.changed() => if changed.is_err() { break },
                }
                let wait = interval.saturating_sub(last.elapsed());
                if !wait.is_zero() {
                    // Coalesce the updates of the rest of the interval into one write.
                    tokio::select! {
                        biased;
                        _ = &mut done => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                let (stage, fraction) = *rx.borrow_and_update();
                last = Instant::now();
                let Ok(at) = ser(&clock.now()) else { continue };
                let update = Update::new()
                    .set("progress_stage", stage)
                    .set(
                        "progress_fraction",
                        StoreValue::from_json(Value::from((fraction * 1000.0).round() / 1000.0))
                            .unwrap_or(StoreValue::Null),
                    )
                    .set("progress_at", at);
                if let Err(e) = store.update(&key, update, Some(cond.clone())).await
                    && !e.is_condition_failure()
                {
                    warn!(error = %e, "could not write training progress");
                }
            }
        });
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            nusatrade_ml::train(&series, &config, &meta, |stage, f| {
                let _ = tx.send((stage_name(stage), 0.05 + 0.9 * f));
            })
        })
        .await;
        let _ = done_tx.send(());
        let _ = writer.await;
        let result = match result {
            Ok(Ok(artefact)) => Ok(artefact),
            Ok(Err(e)) => Err(e.to_string()),
            Err(join) => {
                warn!(error = %join, "the training task panicked");
                Err("internal error in the training library; try other hyperparameters or data".to_owned())
            }
        };
        info!(job = %t.job_id, ok = result.is_ok(), seconds = started.elapsed().as_secs_f64(), "training run finished");
        Ok(result)
    }

    // ------------------------------------------------------------------ user models

    async fn train_model(&self, user: Uuid, model: Uuid, job_id: Uuid, req: &TrainRequest) -> Result<(), JobError> {
        let t = Target { key: model_key(user, model), attrs: MODEL_ATTRS, job_id };
        let item = match self.take_lease(&t).await? {
            Leased::Yes(item) => item,
            Leased::Done(why) => {
                info!(job = %job_id, model = %model, why, "training message ignored");
                return Ok(());
            }
        };
        let record: ModelRecord = match item.to_record() {
            Ok(r) => r,
            Err(e) => return self.fail(&t, &format!("the model record is unreadable: {e}")).await,
        };
        let version = record.next_version.saturating_sub(1).max(1);
        let symbol = record.symbol.clone();
        let tf = record.timeframe;
        let loaded = match self.ml.datasets.load(Owner::User(user), &symbol, tf, req.start, req.end).await {
            Ok(Some(x)) => x,
            Ok(None) => {
                return self
                    .fail(
                        &t,
                        &format!(
                            "No candles stored for {symbol} {}: upload a dataset (POST /api/v1/ml/datasets) first",
                            tf_name(tf)
                        ),
                    )
                    .await;
            }
            Err(DatasetError::Corrupt(m)) => {
                return self.fail(&t, &format!("stored candles are unreadable: {m}")).await;
            }
            Err(e) => {
                self.release(&t).await;
                return Err(unavailable(e));
            }
        };
        let (dataset, series) = loaded;
        let mut config: TrainConfig = match serde_json::from_str(&record.config) {
            Ok(c) => c,
            Err(e) => return self.fail(&t, &format!("the model's config is unreadable: {e}")).await,
        };
        if let Some(test) = req.test_split {
            config.split.test = test;
        }
        let source = DataSource {
            kind: "user_dataset".into(),
            origin: dataset.source,
            symbol: symbol.clone(),
            timeframe: tf,
            bars: series.len(),
            first: series.candles().first().map_or(dataset.first, |c| c.time),
            last: series.candles().last().map_or(dataset.last, |c| c.time),
            note: note(dataset.source),
        };
        let meta = TrainMeta { symbol: Some(symbol.clone()), timeframe: Some(tf), trained_at: self.now() };
        let artefact = match self.run_training(&t, series, config, meta).await? {
            Ok(a) => a,
            Err(message) => return self.fail(&t, &message).await,
        };
        self.progress(&t, "saving", 0.96).await;
        let owner = Owner::User(user);
        let Some((checksum, size)) = self.write_artefact(&t, owner, model, version, &artefact).await? else {
            return Ok(());
        };
        let now = self.now();
        let mut versions = record.versions.clone();
        versions.push(VersionRef { version, checksum: checksum.clone(), size_bytes: size, trained_at: now });
        let keep = self.ml.config.keep_versions.max(1);
        let dropped: Vec<VersionRef> =
            if versions.len() > keep { versions.drain(..versions.len() - keep).collect() } else { Vec::new() };
        let metrics = &artefact.header.metrics;
        let location = ArtefactLocation { system: false, model_id: model, version };
        let update = (|| -> Result<Update, StoreError> {
            Ok(Update::new()
                .set(MODEL_ATTRS.status, TrainingStatus::Completed.as_str())
                .set("artefact", ser(&location)?)
                .set("artefact_checksum", checksum.as_str())
                .set("versions", ser(&versions)?)
                .set("summary", serde_json::to_string(&metrics.summary()).unwrap_or_default())
                .set("metrics", serde_json::to_string(metrics).unwrap_or_default())
                .set("data_source", serde_json::to_string(&source).unwrap_or_default())
                .set("model_type", artefact.header.model_kind.as_str())
                .set(MODEL_ATTRS.completed, ser(&now)?)
                .set("progress_stage", "done")
                .set("progress_fraction", 1i64)
                .set("progress_at", ser(&now)?)
                .set("updated_at", ser(&now)?)
                .remove("lease_until"))
        })()
        .map_err(unavailable)?;
        match self.ml.store.update(&t.key, update, Some(Self::holds(&t))).await {
            Ok(_) => {}
            Err(e) if e.is_condition_failure() => {
                // Deleted or retrained meanwhile: this version is nobody's.
                let _ = self.ml.blobs.delete(&artefact_key(owner, model, version).map_err(unavailable)?).await;
                info!(job = %job_id, model = %model, "model changed during training; artefact discarded");
                return Ok(());
            }
            Err(e) => {
                self.release(&t).await;
                return Err(unavailable(e));
            }
        }
        for v in dropped {
            if let Ok(key) = artefact_key(owner, model, v.version)
                && let Err(e) = self.ml.blobs.delete(&key).await
            {
                warn!(key = %key, error = %e, "could not delete an old artefact version");
            }
        }
        info!(job = %job_id, model = %model, version, size, accuracy = metrics.test_metrics.accuracy, "model trained");
        Ok(())
    }

    async fn progress(&self, t: &Target, stage: &str, fraction: f64) {
        let Ok(at) = ser(&self.now()) else { return };
        let update = Update::new()
            .set("progress_stage", stage)
            .set("progress_fraction", StoreValue::from_json(Value::from(fraction)).unwrap_or(StoreValue::Null))
            .set("progress_at", at);
        let _ = self.ml.store.update(&t.key, update, Some(Self::holds(t))).await;
    }

    // ------------------------------------------------------------------ system defaults

    async fn train_default(&self, symbol: &'static str, job_id: Uuid) -> Result<(), JobError> {
        let t = Target { key: default_key(symbol), attrs: DEFAULT_ATTRS, job_id };
        let item = match self.take_lease(&t).await? {
            Leased::Yes(item) => item,
            Leased::Done(why) => {
                info!(job = %job_id, symbol, why, "default training message ignored");
                return Ok(());
            }
        };
        let record: DefaultRecord = match item.to_record() {
            Ok(r) => r,
            Err(e) => return self.fail(&t, &format!("the default record is unreadable: {e}")).await,
        };
        let version = record.next_version.saturating_sub(1).max(1);
        let tf = Timeframe::H1;
        let stored = match self.ml.datasets.load(Owner::System, symbol, tf, None, None).await {
            Ok(x) => x,
            Err(DatasetError::Corrupt(m)) => {
                return self.fail(&t, &format!("system candles are unreadable: {m}")).await;
            }
            Err(e) => {
                self.release(&t).await;
                return Err(unavailable(e));
            }
        };
        let (origin, series) = match stored {
            Some((d, s)) if s.len() >= MIN_DEFAULT_BARS || d.source == DatasetSource::Generated => (d.source, s),
            Some((_, s)) => {
                return self
                    .fail(
                        &t,
                        &format!(
                            "the system dataset of {symbol} has {} bars; at least {MIN_DEFAULT_BARS} are needed",
                            s.len()
                        ),
                    )
                    .await;
            }
            None => {
                let generated = defaults::generated_series(symbol, GENERATED_BARS, self.now());
                if let Err(e) =
                    self.ml.datasets.merge_series(Owner::System, symbol, tf, &generated, DatasetSource::Generated).await
                {
                    self.release(&t).await;
                    return Err(unavailable(e));
                }
                (DatasetSource::Generated, generated)
            }
        };
        let c = series.candles();
        let source = DataSource {
            kind: "system_dataset".into(),
            origin,
            symbol: symbol.to_owned(),
            timeframe: tf,
            bars: c.len(),
            first: c[0].time,
            last: c[c.len() - 1].time,
            note: note(origin),
        };
        let meta = TrainMeta { symbol: Some(symbol.to_owned()), timeframe: Some(tf), trained_at: self.now() };
        let artefact = match self.run_training(&t, series, defaults::default_config(symbol), meta).await? {
            Ok(a) => a,
            Err(message) => return self.fail(&t, &message).await,
        };
        let Some((checksum, size)) =
            self.write_artefact(&t, Owner::System, record.model_id, version, &artefact).await?
        else {
            return Ok(());
        };
        let now = self.now();
        let update = (|| -> Result<Update, StoreError> {
            Ok(Update::new()
                .set(DEFAULT_ATTRS.status, TrainingStatus::Completed.as_str())
                .set("version", i64::from(version))
                .set("checksum", checksum.as_str())
                .set("summary", serde_json::to_string(&artefact.header.metrics.summary()).unwrap_or_default())
                .set("data_source", serde_json::to_string(&source).unwrap_or_default())
                .set("model_type", artefact.header.model_kind.as_str())
                .set(DEFAULT_ATTRS.completed, ser(&now)?)
                .set("progress_stage", "done")
                .set("progress_fraction", 1i64)
                .set("progress_at", ser(&now)?)
                .remove("lease_until"))
        })()
        .map_err(unavailable)?;
        match self.ml.store.update(&t.key, update, Some(Self::holds(&t))).await {
            Ok(_) => {
                info!(job = %job_id, symbol, version, size, origin = ?origin, "default model trained");
                Ok(())
            }
            Err(e) if e.is_condition_failure() => {
                let _ = self
                    .ml
                    .blobs
                    .delete(&artefact_key(Owner::System, record.model_id, version).map_err(unavailable)?)
                    .await;
                Ok(())
            }
            Err(e) => {
                self.release(&t).await;
                Err(unavailable(e))
            }
        }
    }
}

/// Plain words about where candles came from.
pub fn note(origin: DatasetSource) -> String {
    match origin {
        DatasetSource::Upload => "Candles uploaded with POST /api/v1/ml/datasets".into(),
        DatasetSource::SeedFile => "Candles the operator supplied at start (NUSATRADE_ML_SEED_DIR)".into(),
        DatasetSource::Connector => "Candles from the trader's MT5 connector's price history".into(),
        DatasetSource::Generated => {
            "Generated by the platform (seeded random walk): NOT market data, so this model has no \
             predictive value. Upload real candles (admin: POST /api/v1/ml/datasets?scope=system) and retrain it."
                .into()
        }
    }
}

#[async_trait]
impl QueueConsumer for MlTrainConsumer {
    fn queue(&self) -> &'static str {
        ML_TRAIN_QUEUE
    }

    async fn handle(&self, message: &ReceivedMessage) -> Result<(), JobError> {
        let job: TrainJob =
            serde_json::from_str(&message.body).map_err(|e| JobError::Invalid(format!("not a training job: {e}")))?;
        match &job {
            TrainJob::TrainModel { user_id, model_id, job_id, request } => {
                self.train_model(*user_id, *model_id, *job_id, request).await
            }
            TrainJob::TrainDefault { symbol, job_id } => {
                let symbol = defaults::default_symbol(symbol)
                    .ok_or_else(|| JobError::Invalid(format!("{symbol:?} has no default model")))?;
                self.train_default(symbol, *job_id).await
            }
            TrainJob::AutoTradingCycle => {
                match self.ml.auto_trading_cycle(CycleOrigin::Schedule, auto::SCHEDULED_BUDGET).await {
                    Ok(_) => Ok(()),
                    Err(MlError::Busy(m)) => Err(JobError::Invalid(m)),
                    Err(e) => Err(unavailable(e)),
                }
            }
        }
    }
}
