//! The system default models (one per default symbol), users' overrides, imports, and the model files.

use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use nusatrade_ml::Timeframe;
use serde_json::json;
use tracing::{info, warn};
use uuid::Uuid;

use super::{EffectiveDefault, MlService, ModelFile, json_text, model_path, parse_json};
use crate::ml::artefacts::owner_of;
use crate::ml::defaults::{self, DEFAULT_SYMBOLS};
use crate::ml::error::{MlError, MlResult};
use crate::ml::store::*;
use crate::ports::{Condition, Item, TxOp, Update};

impl MlService {
    // ------------------------------------------------------------------ defaults

    /// The system default record of a symbol.
    pub async fn default_record(&self, symbol: &str) -> MlResult<Option<DefaultRecord>> {
        Ok(self.store.get(&default_key(symbol)).await?.map(|i| i.to_record()).transpose()?)
    }

    /// Makes sure every default symbol has a default model or a training job for one (see [`super::defaults`]).
    /// Cheap once all are trained (a per-process flag).
    pub async fn ensure_defaults(&self) -> MlResult<()> {
        if self.defaults_ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut ready = true;
        for symbol in DEFAULT_SYMBOLS {
            let record = self.default_record(symbol).await?;
            match &record {
                Some(r) if r.status == TrainingStatus::Completed => continue,
                Some(r) if r.status == TrainingStatus::Failed => {}
                Some(r) if !self.is_stale(&r.job, r.status) => {}
                _ => {
                    self.queue_default(symbol, record.as_ref()).await?;
                }
            }
            ready = false;
        }
        if ready {
            self.defaults_ready.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Queues a (re)training of a symbol's default: conditional on the record as read, so concurrent callers
    /// queue one job.
    async fn queue_default(&self, symbol: &'static str, current: Option<&DefaultRecord>) -> MlResult<bool> {
        let now = self.clock.now();
        let job_id = self.ids.uuid();
        let mut record = match current {
            Some(r) => r.clone(),
            None => DefaultRecord {
                symbol: symbol.to_owned(),
                model_id: self.ids.uuid(),
                model_type: defaults::default_config(symbol).model.kind().as_str().to_owned(),
                status: TrainingStatus::Queued,
                error: None,
                job: JobFields::default(),
                version: None,
                checksum: None,
                next_version: 1,
                summary: None,
                data_source: None,
                completed_at: None,
                created_at: now,
            },
        };
        record.status = TrainingStatus::Queued;
        record.job = JobFields {
            job_id: Some(job_id),
            progress_stage: Some("queued".into()),
            progress_fraction: Some(0.0),
            progress_at: Some(now),
            training_requested_at: Some(now),
            ..JobFields::default()
        };
        let cond = match current.and_then(|r| r.job.job_id) {
            None if current.is_none() => Condition::NotExists,
            None => Condition::Exists,
            Some(j) => Condition::eq("job_id", j.to_string()),
        };
        match self.store.put(Item::from_record(&default_key(symbol), &record)?, Some(cond)).await {
            Ok(()) => {}
            Err(e) if e.is_condition_failure() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let job = crate::ml::jobs::TrainJob::TrainDefault { symbol: symbol.to_owned(), job_id };
        if let Err(e) = self.queue.send(self.config.queue, &job.to_body(), StdDuration::ZERO).await {
            warn!(symbol, error = %e, "could not queue the default model's training");
            let revert = Update::new()
                .set("status", TrainingStatus::Failed.as_str())
                .set("error", "The training queue was unavailable");
            let _ = self
                .store
                .update(&default_key(symbol), revert, Some(Condition::eq("job_id", job_id.to_string())))
                .await;
            return Err(e.into());
        }
        info!(symbol, job = %job_id, "default model training queued");
        Ok(true)
    }

    /// `POST /ml-models/defaults/{symbol}/retrain` (admin): queues a new training of the default (e.g. after
    /// system candles were uploaded).
    pub async fn retrain_default(&self, symbol: &'static str) -> MlResult<DefaultRecord> {
        let current = self.default_record(symbol).await?;
        if let Some(r) = &current
            && r.status.in_progress()
            && !self.is_stale(&r.job, r.status)
        {
            return Err(MlError::Refused(format!("The default {symbol} model is already being trained")));
        }
        if !self.queue_default(symbol, current.as_ref()).await? {
            return Err(MlError::Conflict("The default model changed meanwhile; retry".into()));
        }
        self.defaults_ready.store(false, Ordering::Relaxed);
        self.default_record(symbol).await?.ok_or_else(|| MlError::NotFound("No default model".into()))
    }

    /// The completed system default of a symbol, or why there is none yet (not found, or busy while it trains).
    pub async fn completed_default(&self, symbol: &'static str) -> MlResult<DefaultRecord> {
        self.ensure_defaults().await?;
        match self.default_record(symbol).await? {
            Some(r) if r.status == TrainingStatus::Completed && r.version.is_some() => Ok(r),
            Some(r) if r.version.is_some() && r.checksum.is_some() => Ok(r),
            Some(r) if r.status.in_progress() => {
                Err(MlError::Busy(format!("The default {symbol} model is being trained; try again in a minute")))
            }
            Some(r) => Err(MlError::NotFound(format!(
                "No default model configured for {symbol} (training failed: {})",
                r.error.unwrap_or_default()
            ))),
            None => Err(MlError::NotFound(format!("No default model configured for {symbol}"))),
        }
    }

    /// `POST /ml/models/import-default/{symbol}`: a model of the user pointing at the default's artefact
    /// (immutable version), one per symbol (a marker written in the same transaction).
    pub async fn import_default(&self, user: Uuid, symbol: &'static str) -> MlResult<ModelRecord> {
        if self.store.get(&imported_key(user, symbol)).await?.is_some() {
            return Err(MlError::Refused(format!("You already imported the default {symbol} model")));
        }
        let default = self.completed_default(symbol).await?;
        let (Some(version), Some(checksum)) = (default.version, default.checksum.clone()) else {
            return Err(MlError::NotFound(format!("No default model configured for {symbol}")));
        };
        let now = self.clock.now();
        let location = ArtefactLocation { system: true, model_id: default.model_id, version };
        let record = ModelRecord {
            id: self.new_v7(now),
            user_id: user,
            name: format!("{symbol} Default Model (System)"),
            model_type: default.model_type.clone(),
            symbol: symbol.to_owned(),
            timeframe: Timeframe::H1,
            strategy_id: None,
            config: json_text(&defaults::default_config(symbol))?,
            auto_trading: crate::ml::auto::rules::AutoTradingSettings::default(),
            is_active: false,
            is_pretrained: true,
            default_symbol: Some(symbol.to_owned()),
            training_status: TrainingStatus::Completed,
            training_error: None,
            training_started_at: None,
            training_completed_at: default.completed_at,
            job: JobFields::default(),
            artefact: Some(location),
            artefact_checksum: Some(checksum),
            versions: Vec::new(),
            next_version: 1,
            summary: default.summary.clone(),
            metrics: None,
            data_source: default.data_source.clone(),
            created_at: now,
            updated_at: now,
        };
        let marker = TxOp::Put {
            item: Item::new(&imported_key(user, symbol)).with("model_id", record.id.to_string()),
            condition: Some(Condition::NotExists),
        };
        match self.insert_model(&record, vec![marker]).await {
            Err(MlError::Conflict(_)) => {
                Err(MlError::Refused(format!("You already imported the default {symbol} model")))
            }
            other => other.map(|_| record),
        }
    }

    /// The user's override for a symbol, if any.
    pub async fn user_override(&self, user: Uuid, symbol: &str) -> MlResult<Option<OverrideRecord>> {
        Ok(self.store.get(&override_key(user, symbol)).await?.map(|i| i.to_record()).transpose()?)
    }

    /// The default a user sees for a symbol: their override (when its model still exists and is trained), else
    /// the completed system default.
    pub async fn effective_default(&self, user: Uuid, symbol: &'static str) -> MlResult<Option<EffectiveDefault>> {
        if let Some(o) = self.user_override(user, symbol).await?
            && let Ok(m) = self.get_model(user, o.model_id).await
            && let Some(loc) = m.artefact
        {
            return Ok(Some(EffectiveDefault {
                symbol,
                model_id: m.id,
                model_path: model_path(owner_of(&loc, user), &loc),
                is_user_override: true,
                summary: None,
            }));
        }
        self.system_default(symbol).await
    }

    /// The completed system default of a symbol, as a user sees it.
    pub async fn system_default(&self, symbol: &'static str) -> MlResult<Option<EffectiveDefault>> {
        Ok(self.default_record(symbol).await?.and_then(|d| {
            let version = d.version?;
            let loc = ArtefactLocation { system: true, model_id: d.model_id, version };
            Some(EffectiveDefault {
                symbol,
                model_id: d.model_id,
                model_path: model_path(Owner::System, &loc),
                is_user_override: false,
                summary: parse_json(&d.summary),
            })
        }))
    }

    /// `POST /ml-models/defaults/{symbol}`: the user's override. `model_id` must be one of the user's trained
    /// models of that symbol (or the system default), and `model_path` its artefact path as listed by
    /// `/ml-models/models` — both are looked up, never used to build a key.
    pub async fn set_override(
        &self,
        user: Uuid,
        symbol: &'static str,
        model_id: &str,
        path: &str,
    ) -> MlResult<EffectiveDefault> {
        let not_found = || MlError::NotFound(format!("Model not found: {path}"));
        let id = Uuid::parse_str(model_id.trim()).map_err(|_| not_found())?;
        if let Some(system) = self.system_default(symbol).await?
            && system.model_id == id
        {
            if system.model_path != path {
                return Err(not_found());
            }
            // Choosing the system default is removing the override.
            self.store.delete(&override_key(user, symbol), None).await?;
            return Ok(system);
        }
        let model = self.get_model(user, id).await.map_err(|_| not_found())?;
        let loc = model.artefact.ok_or_else(not_found)?;
        if model.symbol != symbol || model_path(owner_of(&loc, user), &loc) != path {
            return Err(not_found());
        }
        let record = OverrideRecord { symbol: symbol.to_owned(), model_id: id, created_at: self.clock.now() };
        self.store.put(Item::from_record(&override_key(user, symbol), &record)?, None).await?;
        self.effective_default(user, symbol).await?.ok_or_else(not_found)
    }

    /// `DELETE /ml-models/defaults/{symbol}`: `false` when there was no override.
    pub async fn delete_override(&self, user: Uuid, symbol: &str) -> MlResult<bool> {
        Ok(self.store.delete(&override_key(user, symbol), None).await?.is_some())
    }

    /// The model artefacts a user can use for a symbol: the system default's versions and the user's own
    /// trained models, newest first.
    pub async fn model_files(&self, user: Uuid, symbol: &str) -> MlResult<Vec<ModelFile>> {
        let mut out = Vec::new();
        if let Some(d) = self.default_record(symbol).await?
            && let Some(version) = d.version
        {
            let loc = ArtefactLocation { system: true, model_id: d.model_id, version };
            let size = self
                .blobs
                .list(&artefact_key(Owner::System, d.model_id, version)?.to_string())
                .await?
                .first()
                .map_or(0, |b| b.size);
            out.push(ModelFile {
                model_id: d.model_id,
                model_path: model_path(Owner::System, &loc),
                symbol: symbol.to_owned(),
                size_bytes: size,
                created_at: d.completed_at.unwrap_or(d.created_at),
                metadata: json!({"system_default": true, "model_type": d.model_type, "version": version,
                                 "performance_metrics": parse_json(&d.summary), "data_source": parse_json(&d.data_source)}),
            });
        }
        for m in self.all_models(user).await?.into_iter().filter(|m| m.symbol == symbol && !m.is_pretrained) {
            for v in &m.versions {
                let loc = ArtefactLocation { system: false, model_id: m.id, version: v.version };
                out.push(ModelFile {
                    model_id: m.id,
                    model_path: model_path(Owner::User(user), &loc),
                    symbol: symbol.to_owned(),
                    size_bytes: v.size_bytes,
                    created_at: v.trained_at,
                    metadata: json!({"system_default": false, "name": m.name, "model_type": m.model_type,
                                     "version": v.version, "current": m.artefact == Some(loc)}),
                });
            }
        }
        out.sort_by_key(|f| std::cmp::Reverse(f.created_at));
        Ok(out)
    }
}
