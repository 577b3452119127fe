//! Trade commands to a connector and the `TRADE_RESULT` acknowledgements it sends back (contract §3.2.1,
//! §3.2.2), kept wire-compatible with the original connector:
//!
//! * `TRADE_OPEN {request_id, symbol, order_type, lot_size, comment, stop_loss?, take_profit?}` —
//!   `request_id` is the order id, as the original connector expects; `comment` is `NT-` + the client
//!   order id (MT5's 31-character limit), so reconciliation can match MT5 positions back to orders.
//! * `TRADE_CLOSE {request_id, symbol, ticket, lot_size}` and `TRADE_MODIFY {request_id, ticket,
//!   stop_loss, take_profit, action}` — `request_id` is `<order id>:close:<n>` / `<order id>:modify:<n>`
//!   (`n` = the order version that issued the command). The connector echoes `request_id` verbatim, so an
//!   acknowledgement names the command it answers and a late ack of an older command is recognised.
//! * Numbers travel as JSON numbers; `client_order_id` is an extra field old connectors ignore.
//! * `HISTORY_REQUEST` → `HISTORY_CANDLES` (capability `history_candles`): pages of price history,
//!   [`super::history`].

// How the protocol reads numbers (also what a connector implementation should use).
pub use crate::wire::decimal;

use chrono::{DateTime, Utc};
use nusatrade_domain::order::{ClientOrderId, Retcode};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::capabilities::{Capabilities, Stated};
use super::history::HistoryPage;
use super::reports::{AccountReport, Mt5Status, PositionUpdate, PositionsReport, ReportSource};

pub use nusatrade_domain::order::command::{CommandKind, MAX_REQUEST_ID, RequestId};
/// Longest error text kept from a connector.
pub const MAX_ERROR_TEXT: usize = 500;

/// A command to a connector (server → connector).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Command {
    TradeOpen {
        request_id: String,
        symbol: String,
        order_type: &'static str,
        lot_size: f64,
        comment: String,
        client_order_id: ClientOrderId,
        #[serde(skip_serializing_if = "Option::is_none")]
        stop_loss: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        take_profit: Option<f64>,
    },
    TradeClose {
        request_id: String,
        symbol: String,
        ticket: u64,
        lot_size: f64,
        client_order_id: ClientOrderId,
    },
    TradeModify {
        request_id: String,
        ticket: u64,
        stop_loss: Option<f64>,
        take_profit: Option<f64>,
        action: &'static str,
    },
    GetPositions {
        request_id: String,
    },
    GetAccount {
        request_id: String,
    },
    SyncRequest {
        request_id: String,
        connection_id: Uuid,
        sync_positions: bool,
        sync_trades: bool,
        sync_account: bool,
    },
    /// A round-trip probe: the connector answers `PONG` (the original connector understood it, contract
    /// §3.2.2), which measures the link's latency.
    Ping {
        request_id: String,
        timestamp: String,
    },
    /// One page of price history (capability `history_candles`, [`super::history`]): the bars with open time
    /// `start ≤ t < end` (RFC 3339), at most `max_bars`; answered by `HISTORY_CANDLES`.
    HistoryRequest {
        request_id: String,
        symbol: String,
        timeframe: &'static str,
        start: String,
        end: String,
        max_bars: u32,
    },
}

impl Command {
    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // A Command has only string keys and finite numbers: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The command's `request_id`.
    pub fn request_id(&self) -> &str {
        match self {
            Command::TradeOpen { request_id, .. }
            | Command::TradeClose { request_id, .. }
            | Command::TradeModify { request_id, .. }
            | Command::GetPositions { request_id }
            | Command::GetAccount { request_id }
            | Command::SyncRequest { request_id, .. }
            | Command::Ping { request_id, .. }
            | Command::HistoryRequest { request_id, .. } => request_id,
        }
    }

    /// A trade command (open, close, modify): it changes MT5 and is acknowledged by a `TRADE_RESULT` naming
    /// its request id, so it is kept in the connection's outbox until then.
    pub fn is_trade(&self) -> bool {
        matches!(self, Command::TradeOpen { .. } | Command::TradeClose { .. } | Command::TradeModify { .. })
    }
}

/// A `TRADE_RESULT` from a connector, parsed leniently (the original connector's fields vary per command,
/// contract §3.2.1): unknown fields are ignored, numbers may be JSON numbers or numeric strings.
#[derive(Clone, Debug, PartialEq)]
pub struct TradeResult {
    /// The echoed request id (the original connector sends `null` for relayed dashboard commands).
    pub request_id: Option<String>,
    pub success: bool,
    /// MT5 ticket (open); 0 means none.
    pub ticket: Option<u64>,
    /// Fill price (open) or close price (close); 0 means none.
    pub price: Option<Decimal>,
    /// MT5 result code, when the connector reports it.
    pub retcode: Option<Retcode>,
    pub error: Option<String>,
    /// Realised profit in the account currency reported by MT5 for a close.
    pub profit: Option<Decimal>,
    /// Execution time reported by the connector.
    pub time: Option<DateTime<Utc>>,
}

/// Why a `TRADE_RESULT` could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid TRADE_RESULT: {0}")]
pub struct TradeResultError(pub String);

impl TradeResult {
    /// The ack in the order's terms (`nusatrade_domain::order::command`).
    pub fn ack(&self) -> nusatrade_domain::order::Ack {
        nusatrade_domain::order::Ack {
            success: self.success,
            ticket: self.ticket.map(nusatrade_domain::order::Ticket),
            price: self.price,
            retcode: self.retcode,
            error: self.error.clone(),
            time: self.time,
        }
    }

    /// Reads a `TRADE_RESULT` object.
    pub fn parse(obj: &Map<String, Value>) -> Result<TradeResult, TradeResultError> {
        let bad = |what: &str| TradeResultError(what.to_owned());
        let request_id = match obj.get("request_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= MAX_REQUEST_ID => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(bad("request_id must be a string of at most 128 characters")),
        };
        let success = match obj.get("success") {
            Some(Value::Bool(b)) => *b,
            _ => return Err(bad("success must be a boolean")),
        };
        let ticket = match obj.get("ticket").or_else(|| obj.get("order")) {
            None | Some(Value::Null) => None,
            Some(v) => match decimal(v) {
                Some(d) if d >= Decimal::ZERO && d.fract().is_zero() => u64::try_from(d).ok().filter(|t| *t > 0),
                _ => return Err(bad("ticket must be a non-negative integer")),
            },
        };
        let price =
            optional_decimal(obj, "price").map_err(|_| bad("price must be a number"))?.filter(|p| *p > Decimal::ZERO);
        let profit = optional_decimal(obj, "profit").map_err(|_| bad("profit must be a number"))?;
        let retcode = match obj.get("retcode") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().and_then(|c| u32::try_from(c).ok()) {
                Some(c) => Some(Retcode(c)),
                None => return Err(bad("retcode must be an integer")),
            },
        };
        let error = match obj.get("error").or_else(|| obj.get("message")) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.chars().take(MAX_ERROR_TEXT).collect()),
            _ => None,
        };
        let time = match obj.get("time").or_else(|| obj.get("timestamp")) {
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)),
            _ => None,
        };
        Ok(TradeResult { request_id, success, ticket, price, retcode, error, profit, time })
    }

    /// The request id, when it names one of our commands.
    pub fn command(&self) -> Option<RequestId> {
        self.request_id.as_deref().and_then(|s| s.parse().ok())
    }
}

/// A message from a connector (contract §3.2.1), parsed once into its typed variant.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectorMessage {
    /// `AUTH {token, client_type, timestamp, capabilities?}`: the token was checked at `$connect`; what the frame
    /// says is the connector's [capabilities](super::capabilities) (none when it states none, as the original).
    Auth(Stated),
    /// `HEARTBEAT` (→ `HEARTBEAT_ACK`).
    Heartbeat,
    /// `PING` from the connector (→ `PONG`).
    Ping,
    /// `PONG`: the answer to our `PING`.
    Pong,
    /// `TRADE_RESULT`, with the frame as received (relayed to the dashboards).
    TradeResult { result: TradeResult, raw: Map<String, Value> },
    /// `POSITIONS` / `SYNC_RESPONSE`: a full positions report.
    Positions(PositionsReport),
    /// `ACCOUNT_INFO` / `ACCOUNT_UPDATE`.
    Account(AccountReport),
    /// `POSITION_UPDATE`: the open positions with current prices.
    PositionUpdate(PositionUpdate),
    /// `MT5_STATUS`.
    Mt5Status(Mt5Status),
    /// `HISTORY_CANDLES`: one page of price history answering our `HISTORY_REQUEST`.
    History(HistoryPage),
    /// `ERROR {error}`: a command handler of the connector failed.
    Error { error: String, request_id: Option<String> },
}

/// Why a frame is not a connector message; [`ProtocolError::reply`] is the `ERROR` sent back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON (the original's reply text).
    #[error("Invalid JSON format")]
    InvalidJson,
    /// JSON but not an object with a string `type`.
    #[error("Invalid message format")]
    NotAnObject,
    /// A `type` this server does not handle.
    #[error("Unknown message type")]
    UnknownType(String),
    /// A known type with unreadable fields.
    #[error("invalid {kind}: {reason}")]
    Invalid { kind: &'static str, reason: String },
}

impl ProtocolError {
    /// The `ERROR` frame answering the bad message.
    pub fn reply(&self) -> String {
        serde_json::json!({"type": "ERROR", "error": self.to_string()}).to_string()
    }
}

impl ConnectorMessage {
    /// Every `type` a connector may send (the API Gateway route keys).
    pub const TYPES: &'static [&'static str] = &[
        "AUTH",
        "HEARTBEAT",
        "PING",
        "PONG",
        "TRADE_RESULT",
        "POSITIONS",
        "SYNC_RESPONSE",
        "ACCOUNT_INFO",
        "ACCOUNT_UPDATE",
        "POSITION_UPDATE",
        "MT5_STATUS",
        "HISTORY_CANDLES",
        "ERROR",
    ];

    /// Parses one text frame.
    pub fn parse(body: &str) -> Result<ConnectorMessage, ProtocolError> {
        let m = match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(ProtocolError::NotAnObject),
            Err(_) => return Err(ProtocolError::InvalidJson),
        };
        let Some(kind) = m.get("type").and_then(Value::as_str) else { return Err(ProtocolError::NotAnObject) };
        let Some(kind) = Self::TYPES.iter().copied().find(|t| *t == kind) else {
            return Err(ProtocolError::UnknownType(kind.chars().take(64).collect()));
        };
        let invalid = |reason: String| ProtocolError::Invalid { kind, reason };
        Ok(match kind {
            "AUTH" => ConnectorMessage::Auth(Capabilities::stated(&m)),
            "HEARTBEAT" => ConnectorMessage::Heartbeat,
            "PING" => ConnectorMessage::Ping,
            "PONG" => ConnectorMessage::Pong,
            "TRADE_RESULT" => {
                let result = TradeResult::parse(&m).map_err(|e| invalid(e.0))?;
                ConnectorMessage::TradeResult { result, raw: m }
            }
            "POSITIONS" => {
                ConnectorMessage::Positions(PositionsReport::parse(ReportSource::Positions, &m).map_err(invalid)?)
            }
            "SYNC_RESPONSE" => {
                ConnectorMessage::Positions(PositionsReport::parse(ReportSource::SyncResponse, &m).map_err(invalid)?)
            }
            "ACCOUNT_INFO" | "ACCOUNT_UPDATE" => ConnectorMessage::Account(AccountReport::parse(&m).map_err(invalid)?),
            "POSITION_UPDATE" => ConnectorMessage::PositionUpdate(PositionUpdate::parse(&m).map_err(invalid)?),
            "MT5_STATUS" => ConnectorMessage::Mt5Status(Mt5Status::parse(&m).map_err(invalid)?),
            "HISTORY_CANDLES" => ConnectorMessage::History(HistoryPage::parse(&m).map_err(invalid)?),
            _ => ConnectorMessage::Error {
                error: match m.get("error").or_else(|| m.get("message")) {
                    Some(Value::String(s)) if !s.is_empty() => s.chars().take(MAX_ERROR_TEXT).collect(),
                    _ => "Unknown error".to_owned(),
                },
                request_id: m
                    .get("request_id")
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(MAX_REQUEST_ID).collect()),
            },
        })
    }
}

fn optional_decimal(obj: &Map<String, Value>, field: &str) -> Result<Option<Decimal>, ()> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => decimal(v).map(Some).ok_or(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use std::str::FromStr;

    use super::*;
    use crate::connector::capabilities::Capability;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn request_ids_round_trip_and_refuse_junk() {
        let id = Uuid::from_u128(0x1234);
        for r in [RequestId::open(id), RequestId::close(id, 3), RequestId::modify(id, 7)] {
            assert_eq!(r.to_string().parse::<RequestId>(), Ok(r));
        }
        assert_eq!(RequestId::open(id).to_string(), id.to_string(), "open keeps the original's bare order id");
        for junk in ["", "sl_123_1700000000.5", "manual_sync_x", &format!("{id}:close"), &format!("{id}:open:1")] {
            assert!(junk.parse::<RequestId>().is_err(), "{junk}");
        }
        assert!(format!("{id}:close:1:2").parse::<RequestId>().is_err());
    }

    #[test]
    fn trade_open_matches_the_original_fields() {
        let id = Uuid::from_u128(42);
        let cid = ClientOrderId::from_uuid(id);
        let cmd = Command::TradeOpen {
            request_id: id.to_string(),
            symbol: "EURUSD".into(),
            order_type: "BUY",
            lot_size: 0.1,
            comment: cid.comment(),
            client_order_id: cid,
            stop_loss: Some(1.08),
            take_profit: None,
        };
        let v: Value = serde_json::from_str(&cmd.to_json()).unwrap();
        assert_eq!(v["type"], "TRADE_OPEN");
        assert_eq!(v["request_id"], id.to_string());
        assert_eq!(v["lot_size"], 0.1);
        assert_eq!(v["stop_loss"], 1.08);
        assert!(v.get("take_profit").is_none(), "absent SL/TP are omitted like the original");
        assert!(v["comment"].as_str().unwrap().len() <= 31);
    }

    #[test]
    fn trade_results_of_the_original_connector_parse() {
        let ok = TradeResult::parse(&obj(json!({"request_id": "x", "success": true, "ticket": 123456, "error": null})))
            .unwrap();
        assert_eq!(ok.ticket, Some(123456));
        assert_eq!(ok.price, None);
        let failed = TradeResult::parse(&obj(
            json!({"request_id": null, "success": false, "ticket": 0, "error": "Order failed: No money"}),
        ))
        .unwrap();
        assert_eq!(failed.ticket, None, "ticket 0 means none");
        assert_eq!(failed.error.as_deref(), Some("Order failed: No money"));
        let close = TradeResult::parse(&obj(json!({"request_id": "y", "success": true, "price": 1.08555}))).unwrap();
        assert_eq!(close.price, Some(Decimal::from_str("1.08555").unwrap()));
        let strings =
            TradeResult::parse(&obj(json!({"success": true, "price": "150.25", "retcode": 10009, "profit": "-12.5"})))
                .unwrap();
        assert_eq!(strings.retcode, Some(Retcode::DONE));
        assert_eq!(strings.profit, Some(Decimal::from_str("-12.5").unwrap()));
    }

    #[test]
    fn connector_messages_parse_once_into_their_variant() {
        use ConnectorMessage as M;
        assert_eq!(ConnectorMessage::parse(r#"{"type":"AUTH","token":"t"}"#), Ok(M::Auth(Stated::default())));
        assert!(matches!(
            ConnectorMessage::parse(r#"{"type":"AUTH","token":"t","capabilities":["dedupe_request_id","x"]}"#),
            Ok(M::Auth(s)) if s.capabilities.has(Capability::DedupeRequestId) && s.unknown == ["x"]
        ));
        assert!(matches!(
            ConnectorMessage::parse(r#"{"type":"AUTH","capabilities":"all"}"#),
            Ok(M::Auth(s)) if s.capabilities.is_empty() && s.malformed.is_some()
        ));
        assert_eq!(ConnectorMessage::parse(r#"{"type":"PONG","timestamp":"x"}"#), Ok(M::Pong));
        assert!(matches!(
            ConnectorMessage::parse(r#"{"type":"TRADE_RESULT","request_id":"r","success":true,"ticket":5}"#),
            Ok(M::TradeResult { result, raw }) if result.ticket == Some(5) && raw["request_id"] == "r"
        ));
        assert!(matches!(
            ConnectorMessage::parse(r#"{"type":"POSITIONS","data":[{"ticket":1,"symbol":"EURUSD","type":"BUY","volume":1,"price":1.1,"profit":0}]}"#),
            Ok(M::Positions(r)) if r.positions.len() == 1 && r.source == ReportSource::Positions
        ));
        assert!(matches!(
            ConnectorMessage::parse(r#"{"type":"SYNC_RESPONSE","positions":[],"account":null}"#),
            Ok(M::Positions(r)) if r.source == ReportSource::SyncResponse && r.account.is_none()
        ));
        assert!(matches!(
            ConnectorMessage::parse(r#"{"type":"MT5_STATUS","connected":false,"account_number":51234567}"#),
            Ok(M::Mt5Status(s)) if !s.connected && s.account_number.as_deref() == Some("51234567")
        ));
        assert!(matches!(
            ConnectorMessage::parse(r#"{"type":"ACCOUNT_UPDATE","balance":"1000","equity":1001.5}"#),
            Ok(M::Account(a)) if a.balance == Decimal::from(1000)
        ));
        assert_eq!(
            ConnectorMessage::parse(r#"{"type":"ERROR","error":"Symbol X not found"}"#),
            Ok(M::Error { error: "Symbol X not found".into(), request_id: None })
        );
    }

    #[test]
    fn bad_frames_get_the_original_error_replies() {
        let reply = |body: &str| {
            let e = ConnectorMessage::parse(body).unwrap_err();
            serde_json::from_str::<Value>(&e.reply()).unwrap()
        };
        assert_eq!(reply("{not json"), json!({"type": "ERROR", "error": "Invalid JSON format"}));
        assert_eq!(reply("[1,2]")["error"], "Invalid message format");
        assert_eq!(reply(r#"{"type":7}"#)["error"], "Invalid message format");
        assert_eq!(reply(r#"{"type":"SOMETHING_ELSE"}"#)["error"], "Unknown message type");
        assert_eq!(reply(r#"{"type":"MT5_STATUS"}"#)["error"], "invalid MT5_STATUS: connected must be a boolean");
        assert_eq!(
            reply(r#"{"type":"POSITION_UPDATE","positions":7}"#)["error"],
            "invalid POSITION_UPDATE: positions must be a list"
        );
        assert_eq!(
            reply(r#"{"type":"ACCOUNT_INFO","equity":1}"#)["error"],
            "invalid ACCOUNT_INFO: balance and equity are required"
        );
        assert_eq!(reply(r#"{"type":"TRADE_RESULT"}"#)["error"], "invalid TRADE_RESULT: success must be a boolean");
    }

    #[test]
    fn commands_name_their_request_id() {
        let ping = Command::Ping { request_id: "ping_1".into(), timestamp: "t".into() };
        assert_eq!((ping.request_id(), ping.is_trade()), ("ping_1", false));
        let v: Value = serde_json::from_str(&ping.to_json()).unwrap();
        assert_eq!(v, json!({"type": "PING", "request_id": "ping_1", "timestamp": "t"}));
        let close = Command::TradeClose {
            request_id: "x:close:1".into(),
            symbol: "EURUSD".into(),
            ticket: 1,
            lot_size: 0.1,
            client_order_id: ClientOrderId::from_uuid(Uuid::nil()),
        };
        assert_eq!((close.request_id(), close.is_trade()), ("x:close:1", true));
        assert!(!Command::GetPositions { request_id: "p".into() }.is_trade());
        let history = Command::HistoryRequest {
            request_id: "hist:x:0".into(),
            symbol: "EURUSD".into(),
            timeframe: "H1",
            start: "2024-01-01T00:00:00Z".into(),
            end: "2024-01-02T00:00:00Z".into(),
            max_bars: 24,
        };
        assert_eq!((history.request_id(), history.is_trade()), ("hist:x:0", false));
        let v: Value = serde_json::from_str(&history.to_json()).unwrap();
        assert_eq!(
            v,
            json!({"type": "HISTORY_REQUEST", "request_id": "hist:x:0", "symbol": "EURUSD", "timeframe": "H1",
                "start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z", "max_bars": 24})
        );
        let rid = format!("hist:{}:3", Uuid::nil());
        let frame = json!({"type": "HISTORY_CANDLES", "request_id": rid, "symbol": "EURUSD", "timeframe": "H1",
            "candles": [[1704067200, 1.1, 1.2, 1.0, 1.15, 3]]});
        assert!(matches!(
            ConnectorMessage::parse(&frame.to_string()),
            Ok(ConnectorMessage::History(p)) if p.request.page == 3 && p.candles.len() == 1
        ));
        let bad = json!({"type": "HISTORY_CANDLES", "request_id": rid, "symbol": "EURUSD", "timeframe": "H1",
            "candles": [[1704067200, 1.1, 1.0, 1.05, 1.15, 3]]});
        assert!(matches!(ConnectorMessage::parse(&bad.to_string()), Err(ProtocolError::Invalid { .. })));
    }

    #[test]
    fn malformed_trade_results_are_refused() {
        for bad in [
            json!({"request_id": "x"}),
            json!({"success": "yes"}),
            json!({"success": true, "ticket": -1}),
            json!({"success": true, "ticket": 1.5}),
            json!({"success": true, "price": "abc"}),
            json!({"success": true, "request_id": ["x"]}),
            json!({"success": true, "retcode": -5}),
        ] {
            assert!(TradeResult::parse(&obj(bad.clone())).is_err(), "{bad}");
        }
    }
}
