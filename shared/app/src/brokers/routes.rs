//! HTTP routes of the broker connections (contract §2.6), shared by the Lambda and the local gateway.
//!
//! | route | auth | success |
//! |---|---|---|
//! | `GET /api/v1/brokers/connections` | bearer | 200 `ConnectionResponse[]`, oldest first |
//! | `POST /api/v1/brokers/connections` | bearer | 201 `ConnectionResponse` (400 at [`super::service::MAX_CONNECTIONS_PER_USER`]) |
//! | `GET /api/v1/brokers/connections/{id}` | bearer | 200 `ConnectionResponse` |
//! | `PUT /api/v1/brokers/connections/{id}` | bearer | 200 `ConnectionResponse` (fields overwritten; omitted → default/null) |
//! | `DELETE /api/v1/brokers/connections/{id}` | bearer | 200 `{"deleted": id}`; the live connector is closed; orders keep their reference |
//! | `GET /api/v1/brokers/connections/{id}/status` | bearer | 200 status (below) |
//! | `POST /api/v1/brokers/connections/{id}/sync` | bearer | 200 `{id, synced, positions_count, trades_synced, message}` |
//! | `POST /api/v1/brokers/connections/{id}/disconnect` | bearer | 200 `{id, status: "disconnected"}`; the live connector is closed |
//! | `GET /api/v1/brokers/supported-brokers` | public | 200 the original's list, byte for byte |
//!
//! `ConnectionResponse` is `{id, broker_name, account_number, server, is_active, last_connected_at,
//! created_at}` with ISO 8601 datetimes ending in `Z`. `is_active` is true while a connector link is live
//! (the registry's link record, which expires with API Gateway's connection limit), so a crashed gateway
//! cannot leave a connection "active"; the stored flag follows `$connect`/`$disconnect` for other readers.
//!
//! Unknown ids and other users' ids answer 404 `"Connection not found"`; a malformed id answers 400
//! `"Invalid connection_id format. Must be a valid UUID."` (the original's `validate_uuid` wording — it
//! answered 500 on these routes).
//!
//! Bodies of `POST`/`PUT`: `{broker_name = "MetaTrader 5", account_number?, server?, nickname?}`
//! (`nickname` accepted and ignored, as in the original). Strings are trimmed; `broker_name` is 1–100
//! characters, `account_number` at most 50, `server` at most 100 (the original's column sizes); control
//! characters are refused. Violations answer the framework's 422 list, all fields at once.
//!
//! Status: `{id, status: "online"|"offline", is_connected, connected_since, last_heartbeat,
//! last_message_at, latency_ms, mt5_connected, account_info: {balance, equity, margin, free_margin,
//! profit, leverage, currency}|null, account_updated_at, positions_synced, positions_synced_at,
//! positions_snapshot: {received_at, source, complete, count, positions: [...]}|null}`. The link
//! fields are null while offline; `last_heartbeat`, `last_message_at`, `latency_ms`, `mt5_connected` and
//! `positions_synced` (open positions in the last report) stay null until the WebSocket handler records them
//! ([`crate::connector::registry::LinkHealth`]; routine fields are written at most every few seconds);
//! `mt5_connected` is `false` while offline. `account_info` is the last snapshot MT5 reported, also after the
//! connector left (`account_updated_at` says when); `positions_snapshot` likewise the last full positions
//! report (`source`: `positions` or `sync_response`; `complete` false when entries were unreadable or
//! dropped), its positions in `POSITION_UPDATE`'s field names. `reconciliation` (null while offline) says whether
//! reconciliation can read the connector's reports — `unavailable — connector cannot report positions` after it
//! answered a positions request with `ERROR` (`report_error`), until its next complete report
//! ([`crate::connector::reporting`]). `capabilities` (null while offline): `{stated, effective}` — what the connector
//! stated in its `AUTH` and what is trusted after the connection's `flags` (a connector caught filling twice loses
//! `dedupe_request_id`); `flags`: the bad input seen from its connectors, `[{kind, at, detail, ticket, order_id}]`
//! ([`crate::connector::flags`]).

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::{StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::service::{BrokerError, BrokerService, Connection, ConnectionInput, ConnectionStatus};
use crate::auth::{Authenticator, CurrentUser, RequestLimits, limit_requests};
use crate::connector::ConnectorLink;
use crate::http::{ApiError, ApiJson, ApiResult, FieldError};
use crate::ports::Ports;
use crate::wire::{iso, num};

/// `broker_name` when the body has none (the original's default).
pub const DEFAULT_BROKER_NAME: &str = "MetaTrader 5";
/// Longest `broker_name`, in characters (the original's `varchar(100)`).
pub const MAX_BROKER_NAME: usize = 100;
/// Longest `account_number` (`varchar(50)`).
pub const MAX_ACCOUNT_NUMBER: usize = 50;
/// Longest `server` (`varchar(100)`).
pub const MAX_SERVER: usize = 100;
/// Longest `nickname` accepted (it is ignored).
pub const MAX_NICKNAME: usize = 100;

/// `GET /brokers/supported-brokers`, exactly as the original answers it (key order included).
pub const SUPPORTED_BROKERS: &str = concat!(
    r#"{"brokers":[{"id":"mt5","name":"MetaTrader 5","description":"Industry standard forex trading platform","#,
    r#""requires_connector":true},{"id":"mt4","name":"MetaTrader 4","#,
    r#""description":"Legacy forex trading platform (coming soon)","requires_connector":true,"#,
    r#""status":"coming_soon"}]}"#
);

/// State of the broker routes.
#[derive(Clone)]
pub struct BrokersState {
    pub auth: Authenticator,
    pub brokers: BrokerService,
}

impl BrokersState {
    /// The state over a process's ports, with the authenticator of its callers.
    pub fn new(auth: Authenticator, ports: &Ports) -> Self {
        BrokersState { auth, brokers: BrokerService::new(ports) }
    }
}

impl FromRef<BrokersState> for Authenticator {
    fn from_ref(s: &BrokersState) -> Self {
        s.auth.clone()
    }
}

/// The routes under `/api/v1/brokers`. `limits`: the per-user/per-IP request limit (local gateway); the
/// Lambda relies on API Gateway throttling. `supported-brokers` is public and outside the limit.
pub fn router(state: BrokersState, limits: Option<RequestLimits>) -> Router {
    let mut routes = Router::new()
        .route("/brokers/connections", get(list).post(create))
        .route("/brokers/connections/{id}", get(get_one).put(update).delete(delete))
        .route("/brokers/connections/{id}/status", get(status))
        .route("/brokers/connections/{id}/sync", post(sync))
        .route("/brokers/connections/{id}/disconnect", post(disconnect))
        .with_state(state);
    if let Some(limits) = limits {
        routes = routes.layer(from_fn_with_state(limits, limit_requests));
    }
    let public = Router::new().route("/brokers/supported-brokers", get(supported_brokers));
    Router::new().nest("/api/v1", routes.merge(public))
}

/// The status and body of each broker refusal, written once: 404 `"Connection not found"`, 400 at the
/// connection limit, 503 (generic body, `Retry-After: 1`) when the push service is unreachable, 500 when it
/// refused the message, and the store's own mapping.
impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::NotFound => ApiError::NotFound(e.to_string()),
            BrokerError::LimitReached(_) => ApiError::BadRequest(e.to_string()),
            BrokerError::PushUnavailable(m) => ApiError::Unavailable(m),
            BrokerError::PushInvalid(m) => ApiError::Internal(m),
            BrokerError::Store(s) => s.into(),
        }
    }
}

// ------------------------------------------------------------------ parsing

/// A path id: 400 with the original's `validate_uuid` wording when malformed.
pub fn connection_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(raw.trim())
        .map_err(|_| ApiError::BadRequest("Invalid connection_id format. Must be a valid UUID.".into()))
}

/// Collects pydantic-style field errors of one body.
struct Body<'a> {
    body: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Body<'a> {
    fn err(&mut self, kind: &str, field: &str, msg: impl Into<String>, input: &Value) {
        self.errors.push(FieldError::new(kind, &["body", field], msg, input.clone()));
    }

    /// An optional string (absent → `None`; null → `None` unless `nullable` is false), trimmed, without
    /// control characters, of `min..=max` characters.
    fn string(&mut self, field: &str, nullable: bool, min: usize, max: usize) -> Option<String> {
        let v = self.body.get(field)?;
        let s = match v {
            Value::Null if nullable => return None,
            Value::String(s) => s.trim(),
            _ => {
                self.err("string_type", field, "Input should be a valid string", v);
                return None;
            }
        };
        if s.chars().any(char::is_control) {
            self.err("value_error", field, format!("Value error, {field} must not contain control characters"), v);
            return None;
        }
        let len = s.chars().count();
        if len < min {
            let plural = if min == 1 { "" } else { "s" };
            self.err("string_too_short", field, format!("String should have at least {min} character{plural}"), v);
            return None;
        }
        if len > max {
            self.err("string_too_long", field, format!("String should have at most {max} characters"), v);
            return None;
        }
        Some(s.to_owned())
    }
}

/// Parses the `BrokerConnectionCreate` body of `POST` and `PUT`: 422 lists of every field error at once.
pub fn parse_connection(body: &Map<String, Value>) -> ApiResult<ConnectionInput> {
    let mut b = Body { body, errors: Vec::new() };
    let broker_name = b.string("broker_name", false, 1, MAX_BROKER_NAME);
    let account_number = b.string("account_number", true, 0, MAX_ACCOUNT_NUMBER);
    let server = b.string("server", true, 0, MAX_SERVER);
    let _nickname = b.string("nickname", true, 0, MAX_NICKNAME);
    if !b.errors.is_empty() {
        return Err(ApiError::Unprocessable(b.errors));
    }
    Ok(ConnectionInput {
        broker_name: broker_name.unwrap_or_else(|| DEFAULT_BROKER_NAME.to_owned()),
        account_number,
        server,
    })
}

// ------------------------------------------------------------------ responses

/// The original's `ConnectionResponse`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionResponse {
    pub id: Uuid,
    pub broker_name: String,
    pub account_number: Option<String>,
    pub server: Option<String>,
    /// A connector holds the connection now.
    pub is_active: bool,
    pub last_connected_at: Option<String>,
    pub created_at: String,
}

impl From<&Connection> for ConnectionResponse {
    fn from(c: &Connection) -> Self {
        let r = &c.record;
        ConnectionResponse {
            id: r.id,
            broker_name: r.broker_name.clone(),
            account_number: r.account_number.clone(),
            server: r.server.clone(),
            is_active: c.is_online(),
            last_connected_at: r.last_connected_at.map(iso),
            created_at: iso(r.created_at),
        }
    }
}

/// The account part of the status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountInfo {
    pub balance: f64,
    pub equity: f64,
    pub margin: f64,
    pub free_margin: f64,
    pub profit: f64,
    pub leverage: Option<u32>,
    pub currency: Option<String>,
}

/// `GET /brokers/connections/{id}/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusResponse {
    pub id: Uuid,
    pub status: &'static str,
    pub is_connected: bool,
    pub connected_since: Option<String>,
    pub last_heartbeat: Option<String>,
    pub last_message_at: Option<String>,
    pub latency_ms: Option<u64>,
    pub mt5_connected: Option<bool>,
    pub account_info: Option<AccountInfo>,
    pub account_updated_at: Option<String>,
    pub positions_synced: Option<u32>,
    pub positions_synced_at: Option<String>,
    pub positions_snapshot: Option<Value>,
    /// Whether reconciliation can read this connector's reports (`available`, `limited — …`,
    /// `unavailable — connector cannot report positions`); null while offline.
    pub reconciliation: Option<&'static str>,
    /// The `ERROR` the connector answered its last positions request with, until its next complete report.
    pub report_error: Option<String>,
    /// What the live connector stated in its `AUTH` and what is trusted after the connection's flags
    /// (`{stated: [...], effective: [...]}`); null while offline.
    pub capabilities: Option<Value>,
    /// Bad input seen from the connection's connectors ([`crate::connector::flags`]), oldest first.
    pub flags: Vec<Value>,
}

impl From<&ConnectionStatus> for StatusResponse {
    fn from(s: &ConnectionStatus) -> Self {
        let link = s.connection.link.as_ref();
        let health = link.map(|l| &l.health);
        StatusResponse {
            id: s.connection.record.id,
            status: if link.is_some() { "online" } else { "offline" },
            is_connected: link.is_some(),
            connected_since: link.map(|l| iso(l.connected_at)),
            last_heartbeat: health.and_then(|h| h.last_heartbeat).map(iso),
            last_message_at: health.and_then(|h| h.last_message_at).map(iso),
            latency_ms: health.and_then(|h| h.latency_ms),
            mt5_connected: match health {
                None => Some(false),
                Some(h) => h.mt5_connected,
            },
            account_info: s.account.as_ref().map(|a| AccountInfo {
                balance: num(a.balance),
                equity: num(a.equity),
                margin: num(a.margin),
                free_margin: num(a.free_margin),
                profit: num(a.profit),
                leverage: a.leverage,
                currency: a.currency.map(|c| c.to_string()),
            }),
            account_updated_at: s.account.as_ref().map(|a| iso(a.reported_at)),
            positions_synced: health.and_then(|h| h.positions_count),
            positions_synced_at: health.and_then(|h| h.positions_synced_at).map(iso),
            positions_snapshot: s.positions.as_ref().map(|p| {
                json!({
                    "received_at": iso(p.received_at),
                    "source": p.source,
                    "complete": p.is_complete(),
                    "count": p.positions.len(),
                    "positions": p.positions.iter().map(|x| x.to_wire()).collect::<Vec<_>>(),
                })
            }),
            reconciliation: link.map(ConnectorLink::reconciliation),
            report_error: link.and_then(|l| l.reporting.report_error.clone()),
            capabilities: link.map(ConnectorLink::capabilities_view),
            flags: s.connection.record.flags.iter().map(|f| f.to_wire()).collect(),
        }
    }
}

// ------------------------------------------------------------------ handlers

async fn list(user: CurrentUser, State(s): State<BrokersState>) -> ApiResult<Response> {
    let all = s.brokers.list(user.id).await?;
    let out: Vec<ConnectionResponse> = all.iter().map(ConnectionResponse::from).collect();
    Ok(axum::Json(out).into_response())
}

async fn create(
    user: CurrentUser,
    State(s): State<BrokersState>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let input = parse_connection(&body)?;
    let created = s.brokers.create(user.id, input).await?;
    Ok((StatusCode::CREATED, axum::Json(ConnectionResponse::from(&created))).into_response())
}

async fn get_one(user: CurrentUser, State(s): State<BrokersState>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = s.brokers.get(user.id, connection_id(&id)?).await?;
    Ok(axum::Json(ConnectionResponse::from(&c)).into_response())
}

async fn update(
    user: CurrentUser,
    State(s): State<BrokersState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let id = connection_id(&id)?;
    let input = parse_connection(&body)?;
    let c = s.brokers.update(user.id, id, input).await?;
    Ok(axum::Json(ConnectionResponse::from(&c)).into_response())
}

async fn delete(user: CurrentUser, State(s): State<BrokersState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = connection_id(&id)?;
    s.brokers.delete(user.id, id).await?;
    Ok(axum::Json(json!({ "deleted": id })).into_response())
}

async fn status(user: CurrentUser, State(s): State<BrokersState>, Path(id): Path<String>) -> ApiResult<Response> {
    let st = s.brokers.status(user.id, connection_id(&id)?).await?;
    Ok(axum::Json(StatusResponse::from(&st)).into_response())
}

async fn sync(user: CurrentUser, State(s): State<BrokersState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = connection_id(&id)?;
    let out = s.brokers.sync(user.id, id).await?;
    Ok(axum::Json(json!({
        "id": id,
        "synced": out.synced,
        "positions_count": out.positions_count,
        "trades_synced": 0,
        "message": out.message,
    }))
    .into_response())
}

async fn disconnect(user: CurrentUser, State(s): State<BrokersState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = connection_id(&id)?;
    s.brokers.disconnect(user.id, id).await?;
    Ok(axum::Json(json!({ "id": id, "status": "disconnected" })).into_response())
}

async fn supported_brokers() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], SUPPORTED_BROKERS).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn errors(v: Value) -> Vec<FieldError> {
        match parse_connection(&body(v)) {
            Err(ApiError::Unprocessable(e)) => e,
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_trimming() {
        let c = parse_connection(&body(json!({}))).unwrap();
        assert_eq!(c, ConnectionInput { broker_name: "MetaTrader 5".into(), account_number: None, server: None });
        let c = parse_connection(&body(json!({
            "broker_name": "  ICMarkets (SC) Pty Ltd ",
            "account_number": " 5123456 ",
            "server": "ICMarketsSC-Demo",
            "nickname": "main",
        })))
        .unwrap();
        assert_eq!(c.broker_name, "ICMarkets (SC) Pty Ltd");
        assert_eq!(c.account_number.as_deref(), Some("5123456"));
        assert_eq!(c.server.as_deref(), Some("ICMarketsSC-Demo"));
        // nulls clear the optional fields; an empty server is kept (the connector matches on it)
        let c = parse_connection(&body(json!({"account_number": null, "server": "", "nickname": null}))).unwrap();
        assert_eq!((c.account_number, c.server.as_deref()), (None, Some("")));
    }

    #[test]
    fn lengths_count_characters() {
        let name = "é".repeat(MAX_BROKER_NAME);
        assert_eq!(parse_connection(&body(json!({ "broker_name": name }))).unwrap().broker_name.chars().count(), 100);
        let e = errors(json!({ "broker_name": "x".repeat(101) }));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, "string_too_long");
        assert_eq!(e[0].msg, "String should have at most 100 characters");
        assert_eq!(e[0].loc, vec![json!("body"), json!("broker_name")]);
        assert_eq!(errors(json!({ "account_number": "1".repeat(51) }))[0].kind, "string_too_long");
        assert_eq!(errors(json!({ "server": "s".repeat(101) }))[0].kind, "string_too_long");
        // trimmed before counting
        assert!(parse_connection(&body(json!({ "account_number": format!("  {}  ", "1".repeat(50)) }))).is_ok());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let e = errors(json!({
            "broker_name": "   ",
            "account_number": 12345,
            "server": "Demo\u{0}Server",
            "nickname": ["x"],
        }));
        let kinds: Vec<(&str, &Value)> = e.iter().map(|f| (f.kind.as_str(), &f.loc[1])).collect();
        assert_eq!(
            kinds,
            vec![
                ("string_too_short", &json!("broker_name")),
                ("string_type", &json!("account_number")),
                ("value_error", &json!("server")),
                ("string_type", &json!("nickname")),
            ]
        );
        assert_eq!(e[0].msg, "String should have at least 1 character");
        assert_eq!(e[1].input, json!(12345));
        assert_eq!(errors(json!({ "broker_name": null }))[0].kind, "string_type");
        assert_eq!(errors(json!({ "server": "a\nb" }))[0].kind, "value_error");
    }

    #[test]
    fn path_ids() {
        let id = Uuid::from_u128(7);
        assert_eq!(connection_id(&id.to_string()).unwrap(), id);
        for bad in ["", "abc", "123", &format!("{id}x")] {
            let e = connection_id(bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn supported_brokers_is_valid_json_in_the_original_order() {
        let v: Value = serde_json::from_str(SUPPORTED_BROKERS).unwrap();
        assert_eq!(v["brokers"][0]["id"], "mt5");
        assert_eq!(v["brokers"][1]["status"], "coming_soon");
        assert!(SUPPORTED_BROKERS.starts_with(r#"{"brokers":[{"id":"mt5","name":"MetaTrader 5","description""#));
    }
}
