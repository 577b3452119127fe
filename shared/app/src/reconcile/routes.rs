//! The position-monitor routes (contract §2.4), shared by the `orders` Lambda and the local gateway:
//!
//! | route | auth | success |
//! |---|---|---|
//! | `GET /api/v1/trading/position-monitor/status` | bearer | 200 `{is_running, last_sync, managed_connections, total_positions, position_cache_size}` (the original's shape) plus `last_run`, `drift_found`, `actions_taken`, `unresolved_orders` and `connections: [...]` per broker connection |
//! | `POST /api/v1/trading/position-monitor/sync` | bearer | 200 `{status: "sync_requested", connections_synced, connection_ids}` (the original's): `GET_POSITIONS` to each online connector; each answer is reconciled when it arrives |
//!
//! `is_running` is true: reconciliation runs on every snapshot and on its schedules (the original's monitor never
//! started). `last_sync` / `last_run` are the latest run over the user's connections; `drift_found` and
//! `actions_taken` add up the last run of each connection.

use axum::Router;
use axum::extract::FromRef;
use axum::extract::State;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::service::ReconcileService;
use crate::auth::{Authenticator, CurrentUser, RequestLimits, limit_requests};
use crate::http::ApiResult;

/// State of the position-monitor routes.
#[derive(Clone)]
pub struct MonitorState {
    pub auth: Authenticator,
    pub reconcile: ReconcileService,
}

impl FromRef<MonitorState> for Authenticator {
    fn from_ref(s: &MonitorState) -> Self {
        s.auth.clone()
    }
}

/// The routes under `/api/v1/trading/position-monitor`.
pub fn router(state: MonitorState, limits: Option<RequestLimits>) -> Router {
    let mut routes = Router::new()
        .route("/trading/position-monitor/status", get(status))
        .route("/trading/position-monitor/sync", post(sync))
        .with_state(state);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    Router::new().nest("/api/v1", routes)
}

async fn status(user: CurrentUser, State(s): State<MonitorState>) -> ApiResult<axum::Json<Value>> {
    let st = s.reconcile.status(user.id).await?;
    let last = st.connections.iter().filter_map(|c| c.run.last_run_at).max();
    let sum = |f: fn(&super::service::ConnectionStatus) -> u64| st.connections.iter().map(f).sum::<u64>();
    let iso = crate::wire::iso;
    Ok(axum::Json(json!({
        "is_running": true,
        "last_sync": last.map(iso),
        "managed_connections": st.connections.iter().filter(|c| c.online).count(),
        "total_positions": st.total_positions,
        "position_cache_size": st.connections.iter().filter_map(|c| c.snapshot_positions).sum::<usize>(),
        "last_run": last.map(iso),
        "drift_found": sum(|c| c.run.last_drift),
        "actions_taken": sum(|c| c.run.last_actions),
        "unresolved_orders": sum(|c| c.run.unresolved),
        "connections": st.connections.iter().map(|c| c.to_json()).collect::<Vec<_>>(),
    })))
}

async fn sync(user: CurrentUser, State(s): State<MonitorState>) -> ApiResult<axum::Json<Value>> {
    let asked = s.reconcile.sync(user.id).await?;
    Ok(axum::Json(json!({
        "status": "sync_requested",
        "connections_synced": asked.len(),
        "connection_ids": asked.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
    })))
}
