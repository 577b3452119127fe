//! The OpenAPI description of this group's routes ([`crate::http::openapi`]): one [`Op`] per mounted method and
//! path, next to the routes it describes ([`super::routes`]).

use serde_json::{Value, json};

use super::routes::{MAX_ACCOUNT_NUMBER, MAX_BROKER_NAME, MAX_NICKNAME, MAX_SERVER};
use crate::http::openapi::*;

const TAG: &str = "brokers";

fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// `BrokerConnectionCreate`, the body of `POST` and `PUT` (strings trimmed, lengths in characters, no control
/// characters).
fn connection_in() -> Value {
    object(
        json!({
            "broker_name": json!({"type": "string", "minLength": 1, "maxLength": MAX_BROKER_NAME}),
            "account_number": nullable(string_max(MAX_ACCOUNT_NUMBER)),
            "server": nullable(string_max(MAX_SERVER)),
            "nickname": nullable(string_max(MAX_NICKNAME)),
        }),
        &[],
    )
}

/// `ConnectionResponse`.
fn connection_out() -> Value {
    record(json!({
        "id": uuid(),
        "broker_name": string(),
        "account_number": nullable(string()),
        "server": nullable(string()),
        "is_active": boolean(),
        "last_connected_at": nullable(datetime()),
        "created_at": datetime(),
    }))
}

/// `StatusResponse`.
fn status_out() -> Value {
    let account = record(json!({
        "balance": number(),
        "equity": number(),
        "margin": number(),
        "free_margin": number(),
        "profit": number(),
        "leverage": nullable(integer()),
        "currency": nullable(string()),
    }));
    let position = record(json!({
        "ticket": integer(),
        "symbol": string(),
        "order_type": nullable(one_of(&["BUY", "SELL"])),
        "volume": number(),
        "open_price": nullable(number()),
        "current_price": nullable(number()),
        "stop_loss": nullable(number()),
        "take_profit": nullable(number()),
        "profit": nullable(number()),
        "comment": nullable(string()),
    }));
    let snapshot = record(json!({
        "received_at": datetime(),
        "source": one_of(&["positions", "sync_response"]),
        "complete": boolean(),
        "count": integer(),
        "positions": array(position),
    }));
    record(json!({
        "id": uuid(),
        "status": one_of(&["online", "offline"]),
        "is_connected": boolean(),
        "connected_since": nullable(datetime()),
        "last_heartbeat": nullable(datetime()),
        "last_message_at": nullable(datetime()),
        "latency_ms": nullable(integer()),
        "mt5_connected": nullable(boolean()),
        "account_info": nullable(account),
        "account_updated_at": nullable(datetime()),
        "positions_synced": nullable(integer()),
        "positions_synced_at": nullable(datetime()),
        "positions_snapshot": nullable(snapshot),
        "reconciliation": nullable(string()),
        "report_error": nullable(string()),
        "capabilities": nullable(capabilities()),
        "flags": array(flag()),
    }))
}

/// `{stated, effective}` capability names of a live connector.
pub fn capabilities() -> Value {
    record(json!({"stated": array(string()), "effective": array(string())}))
}

/// One flag of bad input from a connector (`connector::flags`).
pub fn flag() -> Value {
    record(json!({
        "kind": one_of(&["dedupe_violated", "price_suspect", "foreign_ticket"]),
        "at": datetime(),
        "detail": string(),
        "ticket": nullable(integer()),
        "order_id": nullable(uuid()),
    }))
}

const ID_RULES: &str = "`id`: the broker connection UUID (400 when malformed, 404 when unknown or another user's).";

/// This group's operations.
pub fn operations() -> Vec<Op> {
    let body_rules = "Body: `broker_name` (1–100 characters, default \"MetaTrader 5\"), `account_number` (at most \
        50), `server` (at most 100), `nickname` (at most 100, accepted and ignored); strings are trimmed, control \
        characters refused (422).";
    vec![
        Op::get("/api/v1/brokers/connections", TAG, "The caller's broker connections")
            .describe("Oldest first. `is_active`: a connector holds the connection now.")
            .ok(array(connection_out())),
        Op::post("/api/v1/brokers/connections", TAG, "Add a broker connection")
            .describe(body_rules)
            .body(connection_in())
            .created(connection_out()),
        Op::get("/api/v1/brokers/connections/{id}", TAG, "One broker connection")
            .describe(ID_RULES)
            .ok(connection_out()),
        Op::put("/api/v1/brokers/connections/{id}", TAG, "Replace a broker connection's fields")
            .describe(
                "Every field is overwritten: an omitted `broker_name` becomes \"MetaTrader 5\", an omitted or null \
                 `account_number` / `server` becomes null. Same body rules as the creation.",
            )
            .body(connection_in())
            .ok(connection_out()),
        Op::delete("/api/v1/brokers/connections/{id}", TAG, "Delete a broker connection")
            .describe("Closes the live connector, if any; orders keep their reference to the connection.")
            .ok(record(json!({"deleted": uuid()}))),
        Op::get("/api/v1/brokers/connections/{id}/status", TAG, "Live status of a broker connection")
            .describe(
                "The link fields are null while offline (`mt5_connected` is false then); `last_heartbeat`, \
                 `last_message_at`, `latency_ms`, `mt5_connected` and `positions_synced` stay null until the \
                 connector reports them. `account_info` and `positions_snapshot` are the last reports, also after \
                 the connector left (null before any).",
            )
            .ok(status_out()),
        Op::post("/api/v1/brokers/connections/{id}/sync", TAG, "Ask the connector to sync")
            .describe(
                "Sends SYNC_REQUEST, GET_POSITIONS and GET_ACCOUNT to the live connector (no body). `synced` is \
                 false when no connector is online; `positions_count`: open positions in its last report.",
            )
            .ok(record(json!({
                "id": uuid(),
                "synced": boolean(),
                "positions_count": integer(),
                "trades_synced": integer(),
                "message": string(),
            }))),
        Op::post("/api/v1/brokers/connections/{id}/disconnect", TAG, "Disconnect the live connector")
            .describe("Closes the connector's WebSocket, if any (no body).")
            .ok(object(json!({"id": uuid(), "status": one_of(&["disconnected"])}), &["id", "status"])),
        Op::get("/api/v1/brokers/supported-brokers", TAG, "Supported broker platforms").public().ok(object(
            json!({"brokers": array(object(
                json!({
                    "id": string(),
                    "name": string(),
                    "description": string(),
                    "requires_connector": boolean(),
                    "status": string(),
                }),
                &["id", "name", "description", "requires_connector"],
            ))}),
            &["brokers"],
        )),
    ]
}
