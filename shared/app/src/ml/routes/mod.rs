//! HTTP routes of the `ml` function (contract §2.8 and §2.9), shared by the Lambda and the local gateway.
//!
//! | route | success |
//! |---|---|
//! | `POST /api/v1/ml/datasets?symbol=&timeframe=[&scope=system]` (CSV body, ≤ 4 MiB) | 201 dataset + what the merge did |
//! | `GET /api/v1/ml/datasets[?scope=system]` | 200 datasets |
//! | `DELETE /api/v1/ml/datasets/{symbol}/{timeframe}[?scope=system]` | 200 `{"deleted": "EURUSD/H1"}` |
//! | `GET /api/v1/ml/datasets/{symbol}/{timeframe}/candles?limit=300[&scope=system]` | 200 `{symbol, timeframe, source, bars, revision, candles: [{time, open, high, low, close, volume}]}`: the newest `limit` (1–2000) bars, oldest first; 404 without the dataset |
//! | `POST /api/v1/ml/datasets/from-connector {symbol, timeframe, start, end, connection_id?}` | **202** the import (`crate::ml::import`): pages of the connector's history merged into the caller's dataset; 409 when the connector cannot provide history, 503 when none is online |
//! | `GET /api/v1/ml/datasets/imports/{id}` | 200 the import: `status` running / completed / failed, `pages_done` of `pages`, bars |
//! | `GET /api/v1/ml/models?skip=0&limit=20` | 200 `ModelResponse[]`, oldest first |
//! | `POST /api/v1/ml/models` | 201 `ModelResponse` |
//! | `GET` / `PUT` / `DELETE /api/v1/ml/models/{id}` | 200 `ModelResponse` / `ModelResponse` / `{"deleted": id}` |
//! | `POST /api/v1/ml/models/{id}/train` | **202** `{id, status: "queued", job_id, ...}` — the job runs on the `ml-train` queue |
//! | `GET /api/v1/ml/models/{id}/status` | 200 status, progress, metrics |
//! | `POST /api/v1/ml/models/{id}/predict` | 200 `PredictionResponse` |
//! | `GET /api/v1/ml/models/{id}/predictions?limit=50&cursor=` | 200 `PredictionResponse[]`, newest first; next page's cursor in `X-Next-Cursor` |
//! | `POST /api/v1/ml/models/{id}/activate` / `deactivate` | 200 `{id, status}` |
//! | `POST /api/v1/ml/models/{id}/execute` | 200 (202 when delivery to MT5 is uncertain) |
//! | `POST /api/v1/ml/models/import-default/{symbol}` | 201 `ModelResponse` |
//! | `GET /api/v1/ml/dashboard/active-bots` | 200 |
//! | `POST /api/v1/ml/auto-trading/trigger` | 200 `{status: "completed", result}` or `{status: "skipped", reason: "already_running"}`; 400 without an active model |
//! | `GET /api/v1/ml/auto-trading/status` | 200 last run, today's (UTC) predictions and trades, the applied config |
//! | `GET /api/v1/ml/auto-trading/health` (**no token**) | 200 `{status: "healthy" \| "stale", ...}` |
//! | `GET /api/v1/ml-models/models`, `/ml-models/models/{symbol}` | 200 |
//! | `GET /api/v1/ml-models/defaults`, `GET`/`POST`/`DELETE /ml-models/defaults/{symbol}` | 200 |
//! | `POST /api/v1/ml-models/defaults/{symbol}/retrain` (admin) | 202 |
//!
//! All routes but `auto-trading/health` need a bearer token; model lookups are scoped to the caller (another
//! user's id is 404 "Model not found", as an unknown one). Malformed ids are 400 `Invalid model_id format. Must
//! be a valid UUID.`; bad bodies are the framework-style 422 list; bad CSV is 422 with the line
//! (`loc: ["body", "line", n]`).
//!
//! `training_status` keeps the contract's values (`idle`, `training`, `completed`, `failed`): a queued job
//! reports `training` with `training_progress.stage = "queued"`.

mod error;
mod handlers;
mod parse;
mod views;

use axum::Router;
use axum::extract::FromRef;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};

use super::service::MlService;
use crate::auth::{Authenticator, RequestLimits, limit_requests};
use handlers::*;

pub use parse::{flat_alias, model_id, parse_config};
pub use views::model_view;

/// Largest body of `POST /ml/models/{id}/predict` and the routes accepting large bodies (`crate::limits`).
pub use crate::limits::{LARGE_BODY_ROUTES, MAX_PREDICT_BODY_BYTES};
/// The response header carrying the next page's cursor.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";
/// Longest model name, in characters.
pub const MAX_NAME: usize = 100;
/// Longest `model_path` accepted in an override request.
pub const MAX_MODEL_PATH: usize = 300;

/// State of the ML routes.
#[derive(Clone)]
pub struct MlState {
    pub auth: Authenticator,
    pub ml: MlService,
}

impl FromRef<MlState> for Authenticator {
    fn from_ref(s: &MlState) -> Self {
        s.auth.clone()
    }
}

/// The routes under `/api/v1/ml` and `/api/v1/ml-models`. `limits`: the per-user request limit (local
/// gateway); the Lambda relies on API Gateway throttling.
pub fn router(state: MlState, limits: Option<RequestLimits>) -> Router {
    let mut routes = Router::new()
        .route("/ml/datasets", get(list_datasets).post(upload_dataset))
        .route("/ml/datasets/{symbol}/{timeframe}", delete(delete_dataset))
        .route("/ml/datasets/{symbol}/{timeframe}/candles", get(dataset_candles))
        .route("/ml/datasets/from-connector", post(import_from_connector))
        .route("/ml/datasets/imports/{id}", get(import_status))
        .route("/ml/models", get(list_models).post(create_model))
        .route("/ml/models/import-default/{symbol}", post(import_default))
        .route("/ml/models/{id}", get(get_model).put(update_model).delete(delete_model))
        .route("/ml/models/{id}/train", post(train))
        .route("/ml/models/{id}/status", get(status))
        .route("/ml/models/{id}/predict", post(predict))
        .route("/ml/models/{id}/predictions", get(predictions))
        .route("/ml/models/{id}/activate", post(activate))
        .route("/ml/models/{id}/deactivate", post(deactivate))
        .route("/ml/models/{id}/execute", post(execute))
        .route("/ml/dashboard/active-bots", get(active_bots))
        .route("/ml/auto-trading/trigger", post(trigger_auto_trading))
        .route("/ml/auto-trading/status", get(auto_trading_status))
        .route("/ml/auto-trading/health", get(auto_trading_health))
        .route("/ml-models/models", get(model_files_all))
        .route("/ml-models/models/{symbol}", get(model_files_symbol))
        .route("/ml-models/defaults", get(defaults_all))
        .route("/ml-models/defaults/{symbol}", get(default_one).post(set_default).delete(reset_default))
        .route("/ml-models/defaults/{symbol}/retrain", post(retrain_default))
        .with_state(state);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    Router::new().nest("/api/v1", routes)
}

#[cfg(test)]
mod tests;
