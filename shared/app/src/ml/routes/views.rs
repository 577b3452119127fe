//! Response bodies of the ML routes (the contract's `ModelResponse`, `PredictionResponse`, …).

use serde_json::{Value, json};

use crate::ml::artefacts::owner_of;
use crate::ml::datasets::UploadSummary;
use crate::ml::service::{ActiveBot, EffectiveDefault, ModelFile, StoredPrediction, model_path};
use crate::ml::store::{DatasetRecord, ModelRecord, TrainingStatus, tf_name};
use crate::wire::{iso, opt_iso};

pub(super) fn json_of(text: &Option<String>) -> Value {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

/// The contract's status values: `queued` is reported as `training` (the progress says `queued`).
pub(super) fn status_str(s: TrainingStatus) -> &'static str {
    match s {
        TrainingStatus::Queued => "training",
        other => other.as_str(),
    }
}

pub(super) fn progress(m: &ModelRecord) -> Value {
    match &m.job.progress_stage {
        None => Value::Null,
        Some(stage) => json!({
            "stage": stage,
            "fraction": m.job.progress_fraction.unwrap_or(0.0),
            "updated_at": opt_iso(m.job.progress_at),
            "attempt": m.job.job_attempt,
        }),
    }
}

/// `ModelResponse` (§2.8) plus the config, version, progress and data source.
pub fn model_view(m: &ModelRecord) -> Value {
    json!({
        "id": m.id,
        "name": m.name,
        "model_type": m.model_type,
        "symbol": m.symbol,
        "timeframe": tf_name(m.timeframe),
        "strategy_id": m.strategy_id,
        "strategy_name": null,
        "is_active": m.is_active,
        "is_pretrained": m.is_pretrained,
        "performance_metrics": json_of(&m.summary),
        "training_status": status_str(m.training_status),
        "training_error": m.training_error,
        "training_started_at": opt_iso(m.training_started_at),
        "training_completed_at": opt_iso(m.training_completed_at),
        "training_progress": progress(m),
        "version": m.artefact.map(|a| a.version),
        "config": config_view(m),
        "data_source": json_of(&m.data_source),
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    })
}

/// The model's `config`: the training config with the auto-trading knobs it applies.
pub(super) fn config_view(m: &ModelRecord) -> Value {
    let mut config = serde_json::from_str::<Value>(&m.config).unwrap_or(Value::Null);
    if let (Value::Object(c), Value::Object(a)) = (&mut config, m.auto_trading.to_json()) {
        c.extend(a);
    }
    config
}

pub(super) fn status_view(m: &ModelRecord) -> Value {
    let path = m.artefact.map(|loc| model_path(owner_of(&loc, m.user_id), &loc));
    json!({
        "id": m.id,
        "training_status": status_str(m.training_status),
        "training_error": m.training_error,
        "training_started_at": opt_iso(m.training_started_at),
        "training_completed_at": opt_iso(m.training_completed_at),
        "performance_metrics": json_of(&m.summary),
        "file_path": path,
        "job_id": m.job.job_id,
        "queued": m.training_status == TrainingStatus::Queued,
        "progress": progress(m),
        "version": m.artefact.map(|a| a.version),
        "checksum": m.artefact_checksum,
        "versions": m.versions.iter().map(|v| json!({"version": v.version, "checksum": v.checksum,
            "size_bytes": v.size_bytes, "trained_at": iso(v.trained_at)})).collect::<Vec<_>>(),
        "metrics": json_of(&m.metrics),
        "data_source": json_of(&m.data_source),
    })
}

/// `PredictionResponse` (§2.8).
pub(super) fn prediction_view(p: &StoredPrediction) -> Value {
    json!({
        "id": p.record.id,
        "model_id": p.record.model_id,
        "symbol": p.record.symbol,
        "prediction": p.prediction,
        "confidence": p.record.confidence,
        "strategy_rules": null,
        "executed_order_id": p.record.executed_order_id,
        "created_at": iso(p.record.created_at),
    })
}

pub(super) fn dataset_view(d: &DatasetRecord) -> Value {
    json!({
        "symbol": d.symbol,
        "timeframe": tf_name(d.timeframe),
        "bars": d.bars,
        "first": iso(d.first),
        "last": iso(d.last),
        "size_bytes": d.size_bytes,
        "months": d.chunks.len(),
        "source": d.source,
        "revision": d.rev,
        "updated_at": iso(d.updated_at),
    })
}

/// A history import from the connector (`crate::ml::import`).
pub(super) fn import_view(r: &crate::ml::import::ImportRecord) -> Value {
    json!({
        "id": r.id,
        "status": r.status,
        "symbol": r.symbol,
        "timeframe": tf_name(r.timeframe),
        "start": iso(r.start),
        "end": iso(r.end),
        "pages": r.pages,
        "pages_done": r.next_page,
        "bars_received": r.bars_received,
        "bars_added": r.bars_added,
        "connection_id": r.connection_id,
        "error": r.error,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
        "requested_at": r.requested_at.map(iso),
        "status_url": format!("/api/v1/ml/datasets/imports/{}", r.id),
    })
}

pub(super) fn upload_view(s: &UploadSummary) -> Value {
    let mut v = dataset_view(&s.record);
    if let Value::Object(m) = &mut v {
        m.insert("received".into(), s.received.into());
        m.insert("added".into(), s.added.into());
        m.insert("replaced".into(), s.replaced.into());
        m.insert("unchanged".into(), s.unchanged.into());
        m.insert("months_written".into(), s.months_written.into());
    }
    v
}

/// `DefaultModelResponse` (§2.9): metrics only for the system default. `win_rate` and `accuracy` are percentages
/// with one decimal, as the original stored and the dashboard shows them ("Win Rate 58.3%"); the models keep
/// fractions.
pub(super) fn default_view(d: &EffectiveDefault) -> Value {
    let metric = |k: &str| d.summary.as_ref().and_then(|s| s.get(k)).cloned().unwrap_or(Value::Null);
    json!({
        "model_path": d.model_path,
        "model_id": d.model_id,
        "symbol": d.symbol,
        "is_user_override": d.is_user_override,
        "win_rate": percent(metric("win_rate")),
        "profit_factor": metric("profit_factor"),
        "accuracy": percent(metric("accuracy")),
        "total_trades": metric("total_trades"),
    })
}

/// A fraction as a percentage with one decimal (`0.5834` → `58.3`); anything else unchanged.
pub(super) fn percent(v: Value) -> Value {
    match v.as_f64() {
        Some(f) if f.is_finite() => json!((f * 1000.0).round() / 10.0),
        _ => v,
    }
}

pub(super) fn file_view(f: &ModelFile) -> Value {
    json!({
        "model_id": f.model_id,
        "model_path": f.model_path,
        "symbol": f.symbol,
        "file_size": f.size_bytes,
        "created_at": iso(f.created_at),
        "metadata": f.metadata,
    })
}

pub(super) fn bot_view(b: &ActiveBot) -> Value {
    let accuracy = json_of(&b.model.summary).get("accuracy").cloned().unwrap_or(Value::from(0));
    let last = b.last_prediction.as_ref().map(|p| {
        let pred: Value = serde_json::from_str(&p.prediction).unwrap_or(Value::Null);
        json!({"direction": p.direction, "confidence": p.confidence,
               "entry_price": pred.get("entry_price").cloned().unwrap_or(Value::Null), "created_at": iso(p.created_at)})
    });
    json!({
        "id": b.model.id,
        "name": b.model.name,
        "model_type": b.model.model_type,
        "symbol": b.model.symbol,
        "timeframe": tf_name(b.model.timeframe),
        "strategy_name": null,
        "accuracy": accuracy,
        "last_prediction": last,
        "today_signals": b.today_signals,
        "is_active": true,
    })
}
