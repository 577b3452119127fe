//! Model records: CRUD, the per-user limit, and training requests.

use std::time::Duration as StdDuration;

use tracing::info;
use uuid::Uuid;

use super::{
    MAX_ATTEMPTS, MAX_MODELS_PER_USER, MAX_PREDICTIONS_DELETED, MlService, ModelInput, TrainRequest, backoff,
    json_text, model_not_found, store_ser,
};
use crate::ml::artefacts;
use crate::ml::error::{MlError, MlResult};
use crate::ml::store::*;
use crate::ports::{Condition, Item, Query, StoreError, TxOp, Update, Value as StoreValue};

impl MlService {
    // ------------------------------------------------------------------ models

    /// One model of the user (not found for unknown ids and other users' ids alike).
    pub async fn get_model(&self, user: Uuid, id: Uuid) -> MlResult<ModelRecord> {
        let item = self.store.get(&model_key(user, id)).await?.ok_or_else(model_not_found)?;
        let record: ModelRecord = item.to_record()?;
        if record.user_id != user {
            return Err(model_not_found());
        }
        Ok(record)
    }

    /// Every model of the user, oldest first.
    pub async fn all_models(&self, user: Uuid) -> MlResult<Vec<ModelRecord>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .query(Query::partition(crate::keys::user_pk(user)).sk_prefix(MODEL_PREFIX).limit(200).after(cursor))
                .await?;
            for item in &page.items {
                out.push(item.to_record::<ModelRecord>()?);
            }
            cursor = page.cursor;
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// `skip`/`limit` over the user's models, oldest first.
    pub async fn list_models(&self, user: Uuid, skip: usize, limit: usize) -> MlResult<Vec<ModelRecord>> {
        Ok(self.all_models(user).await?.into_iter().skip(skip).take(limit).collect())
    }

    /// A model may reference the user's own strategy or a public one (404 `"Strategy not found"` otherwise).
    async fn check_strategy(&self, user: Uuid, strategy: Option<Uuid>) -> MlResult<()> {
        let Some(id) = strategy else { return Ok(()) };
        match &self.strategies {
            Some(lookup) if lookup.is_visible(user, id).await? => Ok(()),
            _ => Err(MlError::NotFound("Strategy not found".into())),
        }
    }

    /// `POST /ml/models`.
    pub async fn create_model(&self, user: Uuid, input: ModelInput) -> MlResult<ModelRecord> {
        self.check_strategy(user, input.strategy_id).await?;
        let now = self.clock.now();
        let record = ModelRecord {
            id: self.new_v7(now),
            user_id: user,
            name: input.name,
            model_type: input.config.model.kind().as_str().to_owned(),
            symbol: input.symbol.to_owned(),
            timeframe: input.timeframe,
            strategy_id: input.strategy_id,
            config: json_text(&input.config)?,
            auto_trading: input.auto_trading,
            is_active: false,
            is_pretrained: false,
            default_symbol: None,
            training_status: TrainingStatus::Idle,
            training_error: None,
            training_started_at: None,
            training_completed_at: None,
            job: JobFields::default(),
            artefact: None,
            artefact_checksum: None,
            versions: Vec::new(),
            next_version: 1,
            summary: None,
            metrics: None,
            data_source: None,
            created_at: now,
            updated_at: now,
        };
        self.insert_model(&record, Vec::new()).await?;
        info!(user = %user, model = %record.id, symbol = %record.symbol, "ml model created");
        Ok(record)
    }

    /// Writes a new model with the counter (and `extra` operations) in one transaction.
    pub(super) async fn insert_model(&self, record: &ModelRecord, extra: Vec<TxOp>) -> MlResult<()> {
        let user = record.user_id;
        let extra_len = extra.len();
        for attempt in 0..MAX_ATTEMPTS {
            let mut ops = vec![
                TxOp::Put {
                    item: Item::from_record(&model_key(user, record.id), record)?,
                    condition: Some(Condition::NotExists),
                },
                TxOp::Update {
                    key: model_count_key(user),
                    update: Update::new().add(COUNT_ATTR, 1),
                    condition: Some(
                        Condition::AttrNotExists(COUNT_ATTR.into())
                            .or(Condition::lt(COUNT_ATTR, i64::from(MAX_MODELS_PER_USER))),
                    ),
                },
            ];
            ops.extend(extra.iter().cloned());
            match self.store.transact_write(ops).await {
                Ok(()) => return Ok(()),
                Err(StoreError::TransactionCanceled(reasons)) => {
                    let failed = |i: usize| reasons.get(i) == Some(&crate::ports::CancelReason::ConditionalCheckFailed);
                    if failed(1) {
                        return Err(MlError::Refused(format!(
                            "Maximum {MAX_MODELS_PER_USER} models per user reached; delete one first"
                        )));
                    }
                    if (2..2 + extra_len).any(failed) {
                        return Err(MlError::Conflict("conflicting write".into()));
                    }
                    backoff(attempt).await;
                }
                Err(StoreError::Throttled) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(MlError::Busy("The model store is busy, please retry".into()))
    }

    /// `PUT /ml/models/{id}`: replaces the definition. Refused while a training runs (the job would mix two
    /// configs), and a symbol change of an active model (its activation is per symbol).
    pub async fn update_model(&self, user: Uuid, id: Uuid, input: ModelInput) -> MlResult<ModelRecord> {
        self.check_strategy(user, input.strategy_id).await?;
        let current = self.get_model(user, id).await?;
        if current.is_active && current.symbol != input.symbol {
            return Err(MlError::Refused("Deactivate the model before changing its symbol".into()));
        }
        let changes_training = current.symbol != input.symbol
            || current.timeframe != input.timeframe
            || current.config != json_text(&input.config)?;
        if changes_training
            && current.training_status.in_progress()
            && !self.is_stale(&current.job, current.training_status)
        {
            return Err(MlError::Refused("Model is being trained; change it when training has finished".into()));
        }
        let now = self.clock.now();
        let update = Update::new()
            .set("name", input.name.as_str())
            .set("model_type", input.config.model.kind().as_str())
            .set("symbol", input.symbol)
            .set("timeframe", store_ser(&input.timeframe)?)
            .set("strategy_id", store_ser(&input.strategy_id)?)
            .set("config", json_text(&input.config)?)
            .set("auto_trading", store_ser(&input.auto_trading)?)
            .set("updated_at", store_ser(&now)?);
        let mut cond =
            Condition::Exists.and(Condition::eq("is_active", false).or(Condition::eq("symbol", input.symbol)));
        if changes_training {
            // Also under a concurrent train request.
            cond = cond.and(Condition::eq("training_status", current.training_status.as_str()));
        }
        match self.store.update(&model_key(user, id), update, Some(cond)).await {
            Ok(item) => Ok(item.to_record()?),
            Err(e) if e.is_condition_failure() => {
                Err(MlError::Conflict("The model changed while it was being updated; retry".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `DELETE /ml/models/{id}`: the model with its activation, import marker and override (one transaction),
    /// then its predictions and its artefacts (every version under `models/{user}/{model}/`).
    pub async fn delete_model(&self, user: Uuid, id: Uuid) -> MlResult<()> {
        for attempt in 0..MAX_ATTEMPTS {
            let model = self.get_model(user, id).await?;
            let mut ops = vec![
                TxOp::Delete { key: model_key(user, id), condition: Some(Condition::Exists) },
                TxOp::Update {
                    key: model_count_key(user),
                    update: Update::new().add(COUNT_ATTR, -1),
                    condition: Some(Condition::gt(COUNT_ATTR, 0)),
                },
            ];
            let own = |k: crate::ports::Key| TxOp::Delete {
                key: k,
                condition: Some(Condition::eq("model_id", id.to_string())),
            };
            for key in [active_key(user, &model.symbol), override_key(user, &model.symbol)]
                .into_iter()
                .chain(model.default_symbol.as_deref().map(|s| imported_key(user, s)))
            {
                if let Some(item) = self.store.get(&key).await?
                    && item.get_s("model_id") == Some(id.to_string().as_str())
                {
                    ops.push(own(key));
                }
            }
            match self.store.transact_write(ops).await {
                Ok(()) => break,
                Err(StoreError::TransactionCanceled(_)) | Err(StoreError::Throttled) => {
                    if attempt + 1 == MAX_ATTEMPTS {
                        return Err(MlError::Busy("The model store is busy, please retry".into()));
                    }
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.cache.forget(id);
        let deleted_predictions = self.delete_predictions(user, id).await?;
        let deleted_artefacts = artefacts::delete_all(self.blobs.as_ref(), Owner::User(user), id).await?;
        info!(user = %user, model = %id, deleted_predictions, deleted_artefacts, "ml model deleted");
        Ok(())
    }

    async fn delete_predictions(&self, user: Uuid, model: Uuid) -> MlResult<usize> {
        let mut deleted = 0;
        while deleted < MAX_PREDICTIONS_DELETED {
            let page = self
                .store
                .query(Query::partition(crate::keys::user_pk(user)).sk_prefix(prediction_prefix(model)).limit(100))
                .await?;
            if page.items.is_empty() {
                break;
            }
            let ops: Vec<TxOp> =
                page.items.iter().filter_map(|i| i.key()).map(|key| TxOp::Delete { key, condition: None }).collect();
            deleted += ops.len();
            self.store.transact_write(ops).await?;
        }
        Ok(deleted)
    }

    // ------------------------------------------------------------------ training

    /// True when a queued or running job can be considered lost: a queued job older than twice the job
    /// timeout (the local queue does not survive a restart; SQS delivers in seconds), a running one whose lease
    /// has run out.
    pub fn is_stale(&self, job: &JobFields, status: TrainingStatus) -> bool {
        let now = self.clock.now();
        match status {
            TrainingStatus::Queued => job.training_requested_at.is_none_or(|t| t + self.config.job_timeout * 2 < now),
            TrainingStatus::Training => job.lease_until.is_none_or(|l| l < now.timestamp()),
            _ => true,
        }
    }

    /// `POST /ml/models/{id}/train`: records a new job on the model (`queued`) and puts it on the queue.
    pub async fn request_training(&self, user: Uuid, id: Uuid, req: TrainRequest) -> MlResult<ModelRecord> {
        let model = self.get_model(user, id).await?;
        if model.is_pretrained {
            return Err(MlError::Refused(
                "Imported default models are trained by the platform; create your own model to train it".into(),
            ));
        }
        if model.training_status.in_progress() && !self.is_stale(&model.job, model.training_status) {
            return Err(MlError::Refused("Model is already being trained".into()));
        }
        let now = self.clock.now();
        let job_id = self.ids.uuid();
        let update = Update::new()
            .set("training_status", TrainingStatus::Queued.as_str())
            .set("job_id", job_id.to_string())
            .set("job_attempt", 0i64)
            .remove("lease_until")
            .set("progress_stage", "queued")
            .set("progress_fraction", 0i64)
            .set("progress_at", store_ser(&now)?)
            .set("training_requested_at", store_ser(&now)?)
            .remove("training_error")
            .set("updated_at", store_ser(&now)?);
        // Exactly the state read: a concurrent request queues at most one job.
        let cond = Condition::Exists.and(Condition::eq("training_status", model.training_status.as_str())).and(
            match model.job.job_id {
                Some(j) => Condition::eq("job_id", j.to_string()),
                None => Condition::eq("job_id", StoreValue::Null).or(Condition::AttrNotExists("job_id".into())),
            },
        );
        let item = match self.store.update(&model_key(user, id), update, Some(cond)).await {
            Ok(item) => item,
            Err(e) if e.is_condition_failure() => {
                return Err(MlError::Refused("Model is already being trained".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let job = crate::ml::jobs::TrainJob::TrainModel { user_id: user, model_id: id, job_id, request: req };
        if let Err(e) = self.queue.send(self.config.queue, &job.to_body(), StdDuration::ZERO).await {
            // Nothing was queued: put the model back as it was, so it can be trained again at once.
            let revert = Update::new()
                .set("training_status", TrainingStatus::Failed.as_str())
                .set("training_error", "The training queue was unavailable; please retry")
                .set("progress_stage", "failed");
            let _ = self
                .store
                .update(&model_key(user, id), revert, Some(Condition::eq("job_id", job_id.to_string())))
                .await;
            return Err(e.into());
        }
        info!(user = %user, model = %id, job = %job_id, "ml training queued");
        Ok(item.to_record()?)
    }
}
