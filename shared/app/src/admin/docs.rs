//! The OpenAPI description of the admin routes ([`crate::http::openapi`]), next to [`super::routes`].

use serde_json::{Value, json};

use crate::http::openapi::*;
use crate::settings::Category;
use crate::settings::record::{MAX_DESCRIPTION_CHARS, MAX_KEY_CHARS, MAX_VALUE_CHARS};

const TAG: &str = "admin";

fn category() -> Value {
    json!({"type": "string", "enum": Category::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()})
}

fn setting() -> Value {
    record(json!({
        "key": string_max(MAX_KEY_CHARS),
        "value": nullable(string()),
        "category": category(),
        "is_encrypted": boolean(),
        "description": nullable(string()),
        "updated_at": datetime(),
        "updated_by": nullable(string()),
    }))
}

/// This group's operations.
pub fn operations() -> Vec<Op> {
    vec![
        Op::get("/api/v1/admin/settings", TAG, "The operator settings")
            .describe(
                "Admins only (403 `Admin access required` for anyone else). The active settings, by key; an \
                 encrypted value reads `***ENCRYPTED***`.",
            )
            .query("category", category(), "Only this category")
            .ok(array(setting())),
        Op::get("/api/v1/admin/settings/{key}", TAG, "One operator setting")
            .describe("404 `Setting '<key>' not found` for an unknown or deleted key.")
            .ok(setting()),
        Op::put("/api/v1/admin/settings/{key}", TAG, "Create or replace an operator setting")
            .describe(
                "Keys: 1–100 of `[A-Za-z0-9_.-]`. Values of the keys the platform reads are checked (`max_lot_size` \
                 0.01–10, `max_positions_per_user` 1–1000, `rate_limit_requests` 1–1000000, \
                 `rate_limit_window_seconds` 1–86400, `ai_daily_token_budget` 0–1e9, `llm_provider` \
                 openai|anthropic|bedrock, `llm_base_url` an http(s) URL) and take effect in every instance within \
                 the settings' TTL (30 s by default). Encrypted values (and keys named like secrets: `llm_api_key`, \
                 `redis_url`, `*_api_key`, `*_secret`, `*_password`, `*_token`, always) are sealed with envelope \
                 encryption (KMS in AWS, the data dir's key file locally) and never shown or logged. A deleted key \
                 written again is active again. Every change is an audit item (GET /admin/audit).",
            )
            .body(object(
                json!({
                    "value": nullable(json!({"type": ["string", "number", "boolean"], "maxLength": MAX_VALUE_CHARS})),
                    "category": category(),
                    "is_encrypted": boolean(),
                    "description": nullable(string_max(MAX_DESCRIPTION_CHARS)),
                }),
                &["category"],
            ))
            .ok(record(json!({"message": string(), "key": string()}))),
        Op::delete("/api/v1/admin/settings/{key}", TAG, "Delete an operator setting")
            .describe("Soft delete (`is_active = false`): the environment's configuration applies again.")
            .ok(record(json!({"message": string()}))),
        Op::get("/api/v1/admin/audit", TAG, "The settings changes")
            .describe("Who changed which key when, and how (never the value); newest first, kept 400 days.")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 200}), "How many (default 50)")
            .ok(array(record(json!({
                "id": uuid(),
                "at": datetime(),
                "actor_id": uuid(),
                "actor_email": string(),
                "action": json!({"type": "string", "enum": ["created", "updated", "reactivated", "deleted"]}),
                "key": string(),
                "category": category(),
                "is_encrypted": boolean(),
            })))),
        Op::post("/api/v1/admin/test-llm", TAG, "Check the configured language model")
            .describe(
                "Sends a 10-token \"test\" completion to the model the settings (else the environment) configure. \
                 Always 200: `success: false` with `LLM API key not configured` when nothing is, or the provider's \
                 error.",
            )
            .ok(object(
                json!({
                    "success": boolean(),
                    "message": string(),
                    "details": object(
                        json!({"provider": string(), "model": string(), "response_time_ms": integer()}),
                        &["provider", "model", "response_time_ms"],
                    ),
                }),
                &["success", "message"],
            )),
        Op::post("/api/v1/admin/test-redis", TAG, "The Redis check")
            .describe(
                "The platform uses no Redis: its limits, lock-outs and caches live in its own store. Always 200; \
                 `success` says whether that store answers, and the message says that no Redis is contacted.",
            )
            .ok(record(json!({"success": boolean(), "message": string()}))),
    ]
}
