//! The API's self-description: an OpenAPI 3.1 document built from the operations every route group declares
//! next to its routes (`<group>::docs::operations()`), served at `GET /api/v1/openapi.json` with an offline
//! documentation page at `/docs` (Swagger UI, its assets compiled into the binary).
//!
//! A route group declares each of its operations once here ([`Op`]): method and path (as mounted, `{param}`
//! segments), tag, summary, authentication, query parameters, request body schema, the success responses and
//! their schemas. The errors every route shares are added from what the operation declares (401 with a bearer,
//! 422 with a body or parameters, 429, 500, 503). Tests keep the document honest: every route the code mounts is
//! described (a source scan of the `.route(...)` calls), every described route is mounted, the document validates
//! as OpenAPI 3.1, the fields the original clients read are in the schemas ([`CLIENT_FIELDS`]), and a
//! property-based fuzzer (schemathesis, in `tests/run.sh`) checks real answers against it.

use serde_json::{Map, Value, json};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where the documentation page is served.
pub const DOCS_PATH: &str = "/docs";

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    Public,
    /// `Authorization: Bearer <access token>`.
    Bearer,
    /// A bearer is read when present (e.g. logout).
    Optional,
}

/// One query or header parameter.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: &'static str,
    pub location: &'static str,
    pub required: bool,
    pub description: &'static str,
    pub schema: Value,
}

/// One success response.
#[derive(Clone, Debug)]
pub struct Success {
    pub status: u16,
    pub description: &'static str,
    /// `None`: no body described (any JSON).
    pub schema: Option<Value>,
    /// `application/json` unless said otherwise.
    pub content_type: &'static str,
    /// A list page: the next page's cursor in `X-Next-Cursor`.
    pub paginated: bool,
}

/// One operation (method + path).
#[derive(Clone, Debug)]
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub auth: Auth,
    pub params: Vec<Param>,
    /// The JSON request body's schema, and whether a body is required.
    pub body: Option<(Value, bool)>,
    pub responses: Vec<Success>,
    /// Order-changing: takes an `Idempotency-Key` header.
    pub idempotent: bool,
    /// Answers `404` with its own `detail` for an unknown resource.
    pub not_found: bool,
    /// The original's deprecated route kept for its clients (advertised with `deprecated: true`).
    pub deprecated: bool,
}

impl Op {
    fn new(method: &'static str, path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op {
            method,
            path,
            tag,
            summary,
            description: "",
            auth: Auth::Bearer,
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            idempotent: false,
            not_found: path.contains('{'),
            deprecated: false,
        }
    }
    pub fn get(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new("get", path, tag, summary)
    }
    pub fn post(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new("post", path, tag, summary)
    }
    pub fn put(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new("put", path, tag, summary)
    }
    pub fn patch(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new("patch", path, tag, summary)
    }
    pub fn delete(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new("delete", path, tag, summary)
    }
    pub fn describe(mut self, text: &'static str) -> Op {
        self.description = text;
        self
    }
    pub fn public(mut self) -> Op {
        self.auth = Auth::Public;
        self
    }
    pub fn optional_auth(mut self) -> Op {
        self.auth = Auth::Optional;
        self
    }
    pub fn query(mut self, name: &'static str, schema: Value, description: &'static str) -> Op {
        self.params.push(Param { name, location: "query", required: false, description, schema });
        self
    }
    pub fn required_query(mut self, name: &'static str, schema: Value, description: &'static str) -> Op {
        self.params.push(Param { name, location: "query", required: true, description, schema });
        self
    }
    /// The list parameters of the paginated routes (`limit`, `cursor`) and the `X-Next-Cursor` header.
    pub fn paginated(mut self, max_limit: u32) -> Op {
        self = self.query("limit", json!({"type": "integer", "minimum": 1, "maximum": max_limit}), "Page size").query(
            "cursor",
            json!({"type": "string", "maxLength": 2048}),
            "The previous page's X-Next-Cursor",
        );
        for r in &mut self.responses {
            r.paginated = true;
        }
        self
    }
    /// A required JSON body.
    pub fn body(mut self, schema: Value) -> Op {
        self.body = Some((schema, true));
        self
    }
    /// An optional JSON body (the original took these values from the query string).
    pub fn optional_body(mut self, schema: Value) -> Op {
        self.body = Some((schema, false));
        self
    }
    pub fn ok(self, schema: Value) -> Op {
        self.respond(200, "OK", Some(schema))
    }
    pub fn created(self, schema: Value) -> Op {
        self.respond(201, "Created", Some(schema))
    }
    pub fn respond(mut self, status: u16, description: &'static str, schema: Option<Value>) -> Op {
        let paginated = self.responses.first().is_some_and(|r| r.paginated);
        self.responses.push(Success { status, description, schema, content_type: "application/json", paginated });
        self
    }
    /// A non-JSON success (`text/html`, `text/plain`…).
    pub fn text(mut self, content_type: &'static str, description: &'static str) -> Op {
        self.responses.push(Success {
            status: 200,
            description,
            schema: Some(json!({"type": "string"})),
            content_type,
            paginated: false,
        });
        self
    }
    /// A Server-Sent Events success (`text/event-stream`): `event` is the schema of one parsed event
    /// (`{event, data, id?, retry?}`, `data` a string).
    pub fn events(mut self, description: &'static str, event: Value) -> Op {
        self.responses.push(Success {
            status: 200,
            description,
            schema: Some(event),
            content_type: "text/event-stream",
            paginated: false,
        });
        self
    }
    pub fn idempotent(mut self) -> Op {
        self.idempotent = true;
        self
    }
    pub fn not_found(mut self, yes: bool) -> Op {
        self.not_found = yes;
        self
    }
    pub fn deprecated(mut self) -> Op {
        self.deprecated = true;
        self
    }
}

// ------------------------------------------------------------------ schema helpers

/// An object with these properties (all listed, none required unless `required` says so; more allowed).
pub fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

/// An object whose properties are all required (a response shape: every field is always present).
pub fn record(properties: Value) -> Value {
    let required: Vec<&str> =
        properties.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    object(properties.clone(), &required)
}

/// An array of `items`.
pub fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// `schema` or `null`.
pub fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

/// A string.
pub fn string() -> Value {
    json!({"type": "string"})
}

/// A string at most `max` characters long.
pub fn string_max(max: usize) -> Value {
    json!({"type": "string", "maxLength": max})
}

/// A UUID string.
pub fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

/// An RFC 3339 / ISO 8601 date-time string (some of the original's times have no zone suffix).
pub fn datetime() -> Value {
    json!({"type": "string"})
}

/// A JSON number (money, prices and lots are decimals on the wire as numbers, as the original sent them).
pub fn number() -> Value {
    json!({"type": "number"})
}

pub fn integer() -> Value {
    json!({"type": "integer"})
}

pub fn boolean() -> Value {
    json!({"type": "boolean"})
}

/// Any JSON value.
pub fn any() -> Value {
    json!({})
}

/// A reference to a shared component schema.
pub fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

// ------------------------------------------------------------------ the document

/// Response fields the original dashboard and connector read, by operation (`"METHOD /path"`) — a field that
/// disappears from its schema is a breaking change (README, *Versioning*). Checked by a test against the document.
pub const CLIENT_FIELDS: &[(&str, &[&str])] = &[
    ("post /api/v1/auth/login", &["access_token", "refresh_token", "user_id", "token_type"]),
    ("post /api/v1/auth/refresh", &["access_token", "refresh_token", "user_id", "token_type"]),
    ("post /api/v1/auth/register", &["id", "email", "full_name", "role", "subscription_tier", "created_at"]),
    ("get /api/v1/users/me", &["id", "email", "full_name", "role", "subscription_tier", "created_at"]),
    ("post /api/v1/trading/orders", &["trade", "mt5_execution"]),
    ("put /api/v1/trading/orders/{id}/close", &["trade", "mt5_execution"]),
    (
        "get /api/v1/trading/dashboard/stats",
        &["balance", "equity", "open_positions", "today_pnl", "total_pnl", "total_trades", "win_rate"],
    ),
    ("post /api/v1/trading/position-size/calculate", &["lot_size", "risk_amount", "pip_value"]),
    ("post /api/v1/trading/calculate-sl-tp", &["stop_loss", "take_profit", "risk_reward_ratio"]),
    ("get /api/v1/brokers/connections", &["id", "broker_name", "account_number", "server", "is_active", "created_at"]),
    ("post /api/v1/brokers/connections", &["id", "broker_name", "account_number", "server", "is_active"]),
    ("get /api/v1/ml/models", &["id", "name", "model_type", "symbol", "timeframe", "is_active", "training_status"]),
    ("post /api/v1/ml/models/{id}/activate", &["id", "status", "is_active", "message"]),
    ("post /api/v1/ml/models/{id}/deactivate", &["id", "status", "is_active"]),
    ("get /api/v1/ml/dashboard/active-bots", &["active_count", "bots", "total_signals_today"]),
    ("get /api/v1/ml-models/defaults/{symbol}", &["model_path", "model_id", "symbol", "win_rate", "accuracy"]),
    (
        "get /api/v1/strategies",
        &["id", "name", "description", "strategy_type", "parameters", "indicators", "entry_rules", "exit_rules"],
    ),
    ("get /api/v1/strategies", &["risk_management", "is_active", "backtest_results", "created_at", "updated_at"]),
    ("post /api/v1/strategies/{id}/validate", &["valid", "errors"]),
    (
        "post /api/v1/strategies/{id}/quick-backtest",
        &["net_profit", "total_trades", "winning_trades", "win_rate", "profit_factor", "max_drawdown_pct"],
    ),
    ("get /api/v1/backtest/strategies", &["id", "name", "description", "strategy_type", "config", "is_public"]),
    (
        "post /api/v1/backtest/run",
        &["session_id", "status", "net_profit", "total_trades", "winning_trades", "losing_trades", "win_rate"],
    ),
    (
        "post /api/v1/backtest/run",
        &["profit_factor", "max_drawdown_pct", "sharpe_ratio", "avg_win", "avg_loss", "trades", "equity_curve"],
    ),
    ("post /api/v1/ai/chat", &["reply", "conversation_id", "tokens_used"]),
    ("get /api/v1/ai/analysis/daily", &["summary", "generated_at"]),
    ("get /api/v1/ai/analysis/{symbol}", &["symbol", "analysis", "generated_at"]),
    (
        "get /api/v1/ai/recommendations",
        &["recommendations", "trade_stats", "trading_style", "avg_trade_duration_hours", "session_preferences"],
    ),
    ("post /api/v1/ai/generate-strategy", &["strategy", "explanation", "warnings", "suggested_improvements"]),
    ("get /api/v1/admin/settings", &["key", "value", "category", "is_encrypted", "description", "updated_at"]),
    ("put /api/v1/admin/settings/{key}", &["message", "key"]),
    ("post /api/v1/admin/test-llm", &["success", "message", "details"]),
    ("post /api/v1/admin/test-redis", &["success", "message"]),
    (
        "get /api/v1/backtest/sessions",
        &["id", "strategy_id", "symbol", "timeframe", "start_date", "end_date", "initial_balance", "status", "result"],
    ),
];

/// The versioning policy, as the document's description says it (README, *Versioning*).
pub const VERSIONING: &str = "Every route lives under `/api/v1/`. Within v1, changes are additive only: new routes, \
new optional request fields, new response fields. Breaking changes — removing or renaming a route or a response \
field, changing a field's type or meaning, making an optional request field required, narrowing accepted values, \
changing a success status code — only come with `/api/v2/`, served beside `/api/v1/` by the same functions. A \
deprecated route or field is announced with `Deprecation` (the date it was deprecated) and `Sunset` (when it goes) \
response headers and `deprecated: true` here, and is served for at least 6 months after the announcement.";

fn error_schemas() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("Error".into(), object(json!({"detail": string()}), &["detail"]));
    m.insert(
        "ValidationError".into(),
        object(
            json!({"detail": array(object(json!({
                "type": string(), "loc": array(json!({"anyOf": [string(), integer()]})), "msg": string(), "input": any(),
                "ctx": json!({"type": "object"})
            }), &["type", "loc", "msg"]))}),
            &["detail"],
        ),
    );
    m.insert("RateLimited".into(), object(json!({"detail": string(), "retry_after": integer()}), &["detail"]));
    m
}

fn error_response(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": reference(schema)}}})
}

/// The error responses an operation may give besides its successes.
fn errors(op: &Op) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let has_input = op.body.is_some() || !op.params.is_empty() || op.path.contains('{');
    let any_detail = json!({"description": "The request is not acceptable (the detail says why)", "content": {
        "application/json": {"schema": {"anyOf": [reference("Error"), reference("ValidationError")]}}}});
    if has_input || op.idempotent {
        out.push(("400".to_owned(), error_response("Bad input (the detail says which)", "Error")));
    }
    if op.auth != Auth::Public {
        out.push((
            "401".to_owned(),
            error_response("Missing, invalid or expired bearer token (`WWW-Authenticate: Bearer`)", "Error"),
        ));
        out.push(("403".to_owned(), error_response("Not allowed (e.g. an unverified e-mail for trading)", "Error")));
    }
    if op.not_found || op.auth != Auth::Public {
        out.push(("404".to_owned(), error_response("Not found (or not the caller's)", "Error")));
    }
    if op.body.is_some() {
        out.push(("409".to_owned(), error_response("Conflict with the current state", "Error")));
        out.push(("413".to_owned(), error_response("Request body too large", "Error")));
    }
    if has_input || op.idempotent {
        out.push(("422".to_owned(), any_detail));
    }
    out.push((
        "429".to_owned(),
        json!({"description": "Too many requests (`Retry-After` says when to come back)",
        "headers": {"Retry-After": {"schema": integer()}},
        "content": {"application/json": {"schema": reference("RateLimited")}}}),
    ));
    out.push(("500".to_owned(), error_response("Internal server error", "Error")));
    out.push(("503".to_owned(), error_response("A dependency or the MT5 connector is unavailable", "Error")));
    out.push(("504".to_owned(), error_response("The request took too long", "Error")));
    out
}

fn operation(op: &Op) -> Value {
    let mut params: Vec<Value> = Vec::new();
    for seg in op.path.split('/').filter(|s| s.starts_with('{')) {
        let name = seg.trim_matches(|c| c == '{' || c == '}');
        params.push(json!({"name": name, "in": "path", "required": true, "schema": string_max(128)}));
    }
    for p in &op.params {
        params.push(json!({"name": p.name, "in": p.location, "required": p.required, "description": p.description,
            "schema": p.schema}));
    }
    if op.idempotent {
        params.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.:-]+$"},
            "description": "A client key: a repeat answers as the first request did and changes nothing again"}));
    }
    let mut responses = Map::new();
    for r in &op.responses {
        let mut resp = Map::new();
        resp.insert("description".into(), json!(r.description));
        if let Some(schema) = &r.schema {
            resp.insert("content".into(), json!({r.content_type: {"schema": schema}}));
        }
        if r.paginated {
            resp.insert(
                "headers".into(),
                json!({"X-Next-Cursor": {"description": "The next page's cursor (absent on the last page)",
                    "schema": string()}}),
            );
        }
        responses.insert(r.status.to_string(), Value::Object(resp));
    }
    for (status, resp) in errors(op) {
        responses.entry(status).or_insert(resp);
    }
    let mut o = Map::new();
    o.insert("tags".into(), json!([op.tag]));
    o.insert("summary".into(), json!(op.summary));
    if !op.description.is_empty() {
        o.insert("description".into(), json!(op.description));
    }
    o.insert("operationId".into(), json!(operation_id(op)));
    if !params.is_empty() {
        o.insert("parameters".into(), Value::Array(params));
    }
    if let Some((schema, required)) = &op.body {
        o.insert(
            "requestBody".into(),
            json!({"required": required, "content": {"application/json": {"schema": schema}}}),
        );
    }
    o.insert("responses".into(), Value::Object(responses));
    match op.auth {
        Auth::Public => {
            o.insert("security".into(), json!([]));
        }
        Auth::Optional => {
            o.insert("security".into(), json!([{}, {"bearer": []}]));
        }
        Auth::Bearer => {}
    }
    if op.deprecated {
        o.insert("deprecated".into(), json!(true));
    }
    Value::Object(o)
}

fn operation_id(op: &Op) -> String {
    let mut id = op.method.to_owned();
    for seg in op.path.trim_start_matches("/api/v1").split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(seg.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }));
    }
    id.replace("__", "_").trim_end_matches('_').to_owned()
}

/// The OpenAPI 3.1 document of `operations`.
pub fn document(operations: &[Op]) -> Value {
    let mut paths = Map::new();
    let mut tags: Vec<&str> = Vec::new();
    for op in operations {
        let entry = paths.entry(op.path).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(op.method.to_owned(), operation(op));
        }
        if !tags.contains(&op.tag) {
            tags.push(op.tag);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "NusaTrade API",
            "version": "1.0.0",
            "description": format!("The NusaTrade forex platform's REST API, wire-compatible with the original \
                NusaTrade dashboard and connector. Errors are `{{\"detail\": ...}}` (a string, or a list of field \
                errors for 422). Lists are JSON arrays; where a list is paginated the next page's cursor is in the \
                `X-Next-Cursor` response header. Order-changing calls accept an `Idempotency-Key` header. The \
                WebSockets (`/connector/ws`, `/connector/client`) are described in the README.\n\n**Versioning.** \
                {VERSIONING}"),
        },
        "servers": [{"url": "/"}],
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": error_schemas(),
        },
        "security": [{"bearer": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_get_their_errors_parameters_and_security() {
        let ops = vec![
            Op::get("/api/v1/things/{id}", "things", "One thing").ok(object(json!({"id": uuid()}), &["id"])),
            Op::post("/api/v1/things", "things", "Make one").public().body(object(json!({}), &[])).created(any()),
            Op::get("/api/v1/things", "things", "List").ok(array(any())).paginated(200),
        ];
        let doc = document(&ops);
        let one = &doc["paths"]["/api/v1/things/{id}"]["get"];
        assert_eq!(one["parameters"][0]["name"], "id");
        assert!(one["responses"]["401"].is_object() && one["responses"]["404"].is_object());
        assert!(one.get("security").is_none(), "the document's bearer applies");
        let make = &doc["paths"]["/api/v1/things"]["post"];
        assert_eq!(make["security"], json!([]));
        assert!(make["responses"]["401"].is_null() && make["responses"]["422"].is_object());
        assert!(make["responses"]["201"].is_object());
        let list = &doc["paths"]["/api/v1/things"]["get"];
        assert!(list["responses"]["200"]["headers"]["X-Next-Cursor"].is_object());
        assert_eq!(list["operationId"], "get_things");
        assert_eq!(one["operationId"], "get_things_id");
    }
}
