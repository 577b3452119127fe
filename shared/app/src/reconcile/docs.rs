//! The OpenAPI description of this group's routes ([`crate::http::openapi`]): one [`Op`] per mounted method and
//! path, next to the routes it describes ([`super::routes`]: the position monitor).

use serde_json::json;

use crate::http::openapi::*;

const TAG: &str = "trading";

/// One broker connection's entry of the status (`ConnectionStatus::to_json`).
fn connection_status() -> serde_json::Value {
    record(json!({
        "connection_id": uuid(),
        "online": boolean(),
        "last_run": nullable(datetime()),
        "last_snapshot": nullable(datetime()),
        "outcome": nullable(string()),
        "drift_found": integer(),
        "actions_taken": integer(),
        "conflicts": integer(),
        "unresolved_orders": integer(),
        "snapshot_positions": nullable(integer()),
        "runs_total": integer(),
        "drift_total": integer(),
        "actions_total": integer(),
    }))
}

/// This group's operations.
pub fn operations() -> Vec<Op> {
    vec![
        Op::get("/api/v1/trading/position-monitor/status", TAG, "Position monitor (reconciliation) status")
            .describe(
                "The original's `{is_running, last_sync, managed_connections, total_positions, \
                 position_cache_size}` plus the reconciliation figures: `last_sync` / `last_run` are the latest \
                 run over the caller's connections (null before any), `drift_found`, `actions_taken` and \
                 `unresolved_orders` add up the last run of each connection, `connections` details each broker \
                 connection that is online or was reconciled. `is_running` is always true.",
            )
            .ok(record(json!({
                "is_running": boolean(),
                "last_sync": nullable(datetime()),
                "managed_connections": integer(),
                "total_positions": integer(),
                "position_cache_size": integer(),
                "last_run": nullable(datetime()),
                "drift_found": integer(),
                "actions_taken": integer(),
                "unresolved_orders": integer(),
                "connections": array(connection_status()),
            }))),
        Op::post("/api/v1/trading/position-monitor/sync", TAG, "Ask every online connector for its positions")
            .describe(
                "Sends `GET_POSITIONS` to each of the caller's online connectors (no body); each answer is \
                 reconciled when it arrives. `connection_ids`: the broker connections the request reached.",
            )
            .ok(record(json!({
                "status": one_of_status(),
                "connections_synced": integer(),
                "connection_ids": array(uuid()),
            }))),
    ]
}

fn one_of_status() -> serde_json::Value {
    json!({"type": "string", "enum": ["sync_requested"]})
}
