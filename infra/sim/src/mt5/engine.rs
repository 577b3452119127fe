//! The connector protocol over any [`Mt5`] terminal, made of MT5 calls: the one protocol engine, behind both the
//! paper connector ([`Engine`](crate::connector::Engine) runs it over the [`PaperTerminal`](super::paper::PaperTerminal);
//! see its module docs for the table) and the terminal connector.
//!
//! * **Open** (`TRADE_OPEN`): answered from the remembered results by `request_id`; else, for an `NT-…` comment
//!   (the server's client order id), the terminal's open positions and its deals of the last
//!   [`COMMENT_LOOKBACK_DAYS`] days are searched for a position opened with that comment — found, it is the answer
//!   and nothing is sent, so neither a resend nor a restarted connector without its state file fills twice. Else
//!   `order_send(TRADE_ACTION_DEAL)` at the current ask/bid with the symbol's filling mode, and the ack carries the
//!   fill of the deal it made (`history_deals_get(ticket=deal)`: price, volume, time; the position ticket).
//! * **Close**: `order_send(TRADE_ACTION_DEAL, position=ticket)` with the opposite type; the ack carries the closing
//!   deal's price, volume, profit and time. **Modify**: `order_send(TRADE_ACTION_SLTP)`; unchanged stops are a
//!   success without a request (as the paper engine).
//! * **Outcome unknown** (the bridge died or timed out during `order_send`, or before the fill was read): no
//!   `TRADE_RESULT` is sent and nothing is remembered. The server resends the command after the reconnect (or
//!   reconciliation resolves it), and the comment lookup above answers it from the terminal.
//! * A symbol the terminal has no name for ([`Mt5Error::UnknownSymbol`]: ambiguous or not offered at this broker,
//!   see [`super::symbols`]) is refused before anything is sent: a failed `TRADE_RESULT` (10013) with the reason,
//!   or `ERROR` for a `HISTORY_REQUEST`.
//! * A refusal (any other retcode: 10004 requote, 10006 rejected, 10013 invalid, 10014 volume, 10016 stops,
//!   10019 no money…) is a failed `TRADE_RESULT` with the terminal's retcode and comment, remembered.
//! * `SYNC_REQUEST` with `history_from`: the deals and rejected orders since then (oldest first, the window moved
//!   later when more than fit, or to where the terminal's history is complete); ticket lookups answer `open`,
//!   `closed` or — only from a terminal that knows its whole history ([`Mt5::history_complete_since`]) — `not_found`.
//! * Reports (`GET_POSITIONS`, `GET_ACCOUNT`, `SYNC_REQUEST`) are not answered while the terminal is unreachable:
//!   an incomplete positions report would read as closed positions.
//! * [`TerminalEngine::poll`] watches the terminal: `MT5_STATUS connected:false` when it stops answering,
//!   `connected:true` with fresh reports when it answers again, `POSITION_UPDATE` + `ACCOUNT_UPDATE` at once
//!   when the positions changed in the terminal (a stop loss hit, a manual close), routine updates otherwise.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use nusatrade_app::connector::protocol::decimal;
use nusatrade_app::wire;
use nusatrade_domain::order::MT5_COMMENT_MAX_LEN;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use super::{
    AccountInfo, DEAL_ENTRY_IN, DEAL_ENTRY_OUT, DEAL_REASON_SL, DEAL_REASON_SO, DEAL_REASON_TP, HistoryQuery, MAGIC,
    Mt5, Mt5Error, ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN, ORDER_STATE_REJECTED, ORDER_TIME_GTC,
    ORDER_TYPE_BUY, ORDER_TYPE_SELL, PositionFilter, RETCODE_DONE, RETCODE_DONE_PARTIAL, RETCODE_NO_CHANGES,
    RETCODE_PLACED, SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC, TRADE_ACTION_DEAL, TRADE_ACTION_SLTP, TradeDeal,
    TradePosition, TradeRequest,
};
use crate::connector::history::HistoryAsk;
use crate::connector::state::Executed;

/// How many trade results are remembered for de-duplication.
pub const DEDUP_CAPACITY: usize = 10_000;
/// How many recent deals the saved state keeps (for the `NT-…` comment check and `SYNC_RESPONSE`).
pub const MAX_SAVED_DEALS: usize = 1_000;
/// How many recent deals a `SYNC_RESPONSE` lists (the gateway's 32 KB frame limit bounds a frame).
pub const MAX_SYNC_DEALS: usize = 50;
/// How many refused orders a `SYNC_RESPONSE` lists, and how many lookups it answers.
pub const MAX_SYNC_ORDERS: usize = 20;
/// Default minimum gap between two routine `POSITION_UPDATE`s.
pub const DEFAULT_POSITION_UPDATE_GAP: Duration = Duration::from_secs(1);

/// Who the paper account is, as MT5 would report it after login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountIdentity {
    /// MT5 login (the broker connection's `account_number`).
    pub login: u64,
    /// Trade server name (the broker connection's `server`).
    pub server: String,
    /// Broker company (the broker connection's `broker_name`).
    pub company: String,
}

/// Something the server said that is not a command: the network loop acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// `WELCOME`: the link is up; `heartbeat_interval` in seconds when the server advertised one.
    Welcome {
        /// Advertised heartbeat interval (s).
        heartbeat_interval: Option<u64>,
    },
    /// `HEARTBEAT_ACK`.
    HeartbeatAck,
    /// `PONG`.
    Pong,
    /// `ERROR {error}` (e.g. "Unknown message type" for a report the server does not handle yet).
    Error(String),
}

/// What handling one server frame produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reaction {
    /// Frames to send back, in order.
    pub replies: Vec<Value>,
    /// The paper account changed (a trade executed): send `ACCOUNT_UPDATE` and `POSITION_UPDATE`.
    pub traded: bool,
    /// A non-command message the loop acts on.
    pub signal: Option<Signal>,
    /// A new trade command was decided (executed or rejected), not answered from the de-duplication memory.
    pub executed: bool,
}

/// Counters of what the engine did (for logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Trade commands executed (successfully or not).
    pub executed: u64,
    /// Repeated trade commands answered from the cache.
    pub duplicates: u64,
    /// Positions closed by their stop loss or take profit.
    pub stops_hit: u64,
}

/// A decimal as a JSON number (the wire carries floats, as the original connector's).
pub fn num(d: Decimal) -> Value {
    d.to_f64().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// RFC 3339 UTC with milliseconds: the connector's own times (the original connector's form), on purpose
/// not `nusatrade_app::wire::iso`'s microseconds.
pub fn iso_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// How far back the `NT-…` comment is looked for in the deal history before an open.
pub const COMMENT_LOOKBACK_DAYS: i64 = 30;
/// The deals of a `SYNC_REQUEST` without `history_from`: this many days back.
const RECENT_DAYS: i64 = 7;
/// Allowed slippage of market orders, in points.
pub const DEVIATION_POINTS: u32 = 20;
/// The `format` field of the terminal connector's state file.
pub const TERMINAL_STATE_FORMAT: &str = "nusatrade-mt5-terminal-connector-state";
/// 10013 INVALID.
const INVALID: u32 = 10013;
/// 10021 PRICE_OFF.
const PRICE_OFF: u32 = 10021;
/// Retcodes after which the request may or may not have been executed: 10012 TIMEOUT, 10031 CONNECTION.
const UNKNOWN_OUTCOME: [u32; 2] = [10012, 10031];
/// 10036 POSITION_CLOSED (the paper engine's "not found").
const POSITION_NOT_FOUND: u32 = 10036;

/// What the terminal connector keeps across restarts: the results of the commands it executed, and the trade
/// server's offset from UTC once inferred.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminalState {
    /// [`TERMINAL_STATE_FORMAT`].
    pub format: String,
    /// 1.
    pub version: u32,
    /// When written.
    pub saved_at: DateTime<Utc>,
    /// The MT5 login the results belong to.
    pub login: u64,
    /// Its trade server.
    pub server: String,
    /// Results by request id, oldest first.
    pub executed: Vec<Executed>,
    /// The trade server's offset from UTC in seconds ([`Mt5::learned_server_offset`]); absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_utc_offset_secs: Option<i64>,
}

/// The protocol handler over a terminal. See the module docs.
#[derive(Debug)]
pub struct TerminalEngine<T> {
    mt5: T,
    results: HashMap<String, Value>,
    order: VecDeque<String>,
    changed: bool,
    /// The server offset the last state taken held.
    saved_offset: Option<i64>,
    stats: EngineStats,
    connected: bool,
    last_positions: Option<Vec<(u64, String, String, String)>>,
    position_update_gap: Duration,
    last_position_update: Option<Instant>,
    /// Trade commands whose outcome is unknown, handled again once the terminal answers.
    unresolved: Vec<String>,
}

fn cut(comment: &str) -> String {
    comment.chars().take(MT5_COMMENT_MAX_LEN).collect()
}

fn side_name(kind: i64) -> &'static str {
    if kind == ORDER_TYPE_SELL { "SELL" } else { "BUY" }
}

/// A deal's (or position's) time: milliseconds when the terminal gives them.
fn mt5_time(secs: i64, msc: i64) -> DateTime<Utc> {
    let t = if msc > 0 { DateTime::from_timestamp_millis(msc) } else { DateTime::from_timestamp(secs, 0) };
    t.unwrap_or_default()
}

fn nonzero(d: Decimal) -> Value {
    if d.is_zero() { Value::Null } else { num(d) }
}

fn echo(m: &Map<String, Value>) -> Value {
    m.get("request_id").cloned().unwrap_or(Value::Null)
}

fn optional_number(m: &Map<String, Value>, field: &str) -> Result<Option<Decimal>, String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => decimal(v).map(Some).ok_or_else(|| format!("{field} must be a number")),
    }
}

fn failure(rid: Value, ticket: u64, retcode: u32, error: &str) -> Value {
    json!({"type": "TRADE_RESULT", "request_id": rid, "success": false, "ticket": ticket, "price": 0.0,
        "retcode": retcode, "error": error})
}

/// A refused open: no price (the original connector's form).
fn open_failure(rid: Value, retcode: u32, error: &str) -> Value {
    json!({"type": "TRADE_RESULT", "request_id": rid, "success": false, "ticket": 0, "retcode": retcode,
        "error": error})
}

fn position_json(p: &TradePosition) -> Value {
    json!({
        "ticket": p.ticket, "symbol": p.symbol, "type": side_name(p.kind), "volume": num(p.volume),
        "price": num(p.price_open), "price_current": num(p.price_current), "profit": num(p.profit),
        "sl": num(p.sl), "tp": num(p.tp), "comment": p.comment, "time": iso_millis(mt5_time(p.time, p.time_msc)),
    })
}

fn deal_json(d: &TradeDeal) -> Value {
    json!({
        "ticket": d.ticket, "position": d.position_id, "symbol": d.symbol, "type": side_name(d.kind),
        "entry": if d.entry == DEAL_ENTRY_IN { "in" } else { "out" }, "volume": num(d.volume), "price": num(d.price),
        "profit": num(d.profit), "time": iso_millis(mt5_time(d.time, d.time_msc)),
        "reason": match d.reason { DEAL_REASON_SL | DEAL_REASON_SO => "sl", DEAL_REASON_TP => "tp", _ => "client" },
        "comment": d.comment,
    })
}

fn account_json(a: &AccountInfo) -> Map<String, Value> {
    let v = json!({
        "balance": num(a.balance), "equity": num(a.equity), "margin": num(a.margin), "free_margin": num(a.margin_free),
        "profit": num(a.profit), "leverage": a.leverage, "currency": a.currency, "margin_level": nonzero(a.margin_level),
        "login": a.login, "server": a.server, "company": a.company,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Trade deals only (not balance operations).
fn is_trade(d: &TradeDeal) -> bool {
    d.kind == ORDER_TYPE_BUY || d.kind == ORDER_TYPE_SELL
}

impl<T: Mt5> TerminalEngine<T> {
    /// An engine over `mt5`.
    pub fn new(mt5: T) -> TerminalEngine<T> {
        TerminalEngine {
            mt5,
            results: HashMap::new(),
            order: VecDeque::new(),
            changed: false,
            saved_offset: None,
            stats: EngineStats::default(),
            connected: false,
            last_positions: None,
            position_update_gap: DEFAULT_POSITION_UPDATE_GAP,
            last_position_update: None,
            unresolved: Vec::new(),
        }
    }

    /// Sets the minimum gap between two routine `POSITION_UPDATE`s.
    pub fn with_position_update_gap(mut self, gap: Duration) -> Self {
        self.position_update_gap = gap;
        self
    }

    /// The terminal.
    pub fn terminal(&mut self) -> &mut T {
        &mut self.mt5
    }

    /// The terminal, to read.
    pub fn terminal_ref(&self) -> &T {
        &self.mt5
    }

    /// Takes the terminal as answering (a terminal in the same process, as the paper one): `MT5_STATUS` says
    /// connected before the first [`poll`](Self::poll).
    pub fn with_connected(mut self) -> Self {
        self.connected = true;
        self
    }

    /// The remembered results, oldest first.
    pub fn executed(&self) -> Vec<Executed> {
        self.order
            .iter()
            .filter_map(|k| self.results.get(k).map(|v| Executed { request_id: k.clone(), result: v.clone() }))
            .collect()
    }

    /// Whether something changed since the last [`take_changes`](Self::take_changes).
    pub fn has_changes(&self) -> bool {
        self.changed || self.mt5.learned_server_offset() != self.saved_offset
    }

    /// What the engine did so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Takes back the results a state file remembered (the newest [`DEDUP_CAPACITY`]).
    pub fn restore(&mut self, executed: Vec<Executed>) {
        let skip = executed.len().saturating_sub(DEDUP_CAPACITY);
        for e in executed.into_iter().skip(skip) {
            if !e.request_id.is_empty() && e.result.get("type").and_then(Value::as_str) == Some("TRADE_RESULT") {
                self.remember(e.request_id, e.result);
            }
        }
        self.changed = false;
    }

    /// Hands the terminal the server offset a state file kept ([`Mt5::recall_server_offset`]).
    pub fn recall_server_offset(&mut self, secs: Option<i64>) {
        self.saved_offset = secs;
        if let Some(s) = secs {
            self.mt5.recall_server_offset(s);
        }
    }

    /// The state to save if something changed since the last call (results, or the server offset), once.
    pub fn take_changes(&mut self, identity: &AccountIdentity, now: DateTime<Utc>) -> Option<TerminalState> {
        let offset = self.mt5.learned_server_offset();
        if !std::mem::take(&mut self.changed) && offset == self.saved_offset {
            return None;
        }
        self.saved_offset = offset;
        Some(TerminalState {
            format: TERMINAL_STATE_FORMAT.to_owned(),
            version: 1,
            saved_at: now,
            login: identity.login,
            server: identity.server.clone(),
            executed: self.executed(),
            server_utc_offset_secs: offset,
        })
    }

    /// Marks the state as changed again (its save failed).
    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    fn remember(&mut self, request_id: String, result: Value) {
        if self.results.insert(request_id.clone(), result).is_none() {
            self.order.push_back(request_id);
        }
        while self.order.len() > DEDUP_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
        self.changed = true;
    }

    /// Who the terminal is logged in as.
    pub async fn identity(&mut self) -> Result<AccountIdentity, Mt5Error> {
        let a = self.mt5.account_info().await?;
        Ok(AccountIdentity { login: a.login, server: a.server, company: a.company })
    }

    /// `MT5_STATUS` as last seen by [`poll`](Self::poll) (or now, for the first).
    pub fn mt5_status(&self, identity: &AccountIdentity) -> Value {
        json!({"type": "MT5_STATUS", "connected": self.connected, "broker_name": identity.company,
            "account_number": identity.login.to_string(), "server": identity.server})
    }

    /// `ACCOUNT_UPDATE` / `ACCOUNT_INFO` from `account_info()`.
    pub async fn account_message(&mut self, kind: &str, request_id: Option<Value>) -> Result<Value, Mt5Error> {
        let mut v = account_json(&self.mt5.account_info().await?);
        v.insert("type".into(), json!(kind));
        if let Some(rid) = request_id {
            v.insert("request_id".into(), rid);
        }
        Ok(Value::Object(v))
    }

    /// `POSITION_UPDATE` from `positions_get()`, recorded as sent at `at`.
    pub async fn position_update(&mut self, at: Instant) -> Result<Value, Mt5Error> {
        let positions = self.mt5.positions_get(PositionFilter::All).await?;
        Ok(self.position_update_of(&positions, at))
    }

    fn position_update_of(&mut self, positions: &[TradePosition], at: Instant) -> Value {
        let rows: Vec<Value> = positions
            .iter()
            .map(|p| {
                json!({
                    "ticket": p.ticket, "symbol": p.symbol, "order_type": side_name(p.kind), "volume": num(p.volume),
                    "open_price": num(p.price_open), "current_price": num(p.price_current),
                    "stop_loss": nonzero(p.sl), "take_profit": nonzero(p.tp), "profit": num(p.profit),
                    "comment": p.comment,
                })
            })
            .collect();
        self.last_position_update = Some(at);
        json!({"type": "POSITION_UPDATE", "positions": rows, "timestamp": iso_millis(Utc::now())})
    }

    /// Looks at the terminal (see the module docs) and returns the reports to send.
    pub async fn poll(&mut self, identity: &AccountIdentity, at: Instant) -> Vec<Value> {
        let positions = match self.mt5.positions_get(PositionFilter::All).await {
            Ok(p) => p,
            Err(e) => {
                if std::mem::replace(&mut self.connected, false) {
                    warn!(error = %e, "the MT5 terminal stopped answering");
                    return vec![self.mt5_status(identity)];
                }
                return Vec::new();
            }
        };
        let account = match self.account_message("ACCOUNT_UPDATE", None).await {
            Ok(a) => a,
            Err(e) => {
                if std::mem::replace(&mut self.connected, false) {
                    warn!(error = %e, "the MT5 terminal stopped answering");
                    return vec![self.mt5_status(identity)];
                }
                return Vec::new();
            }
        };
        let key: Vec<(u64, String, String, String)> =
            positions.iter().map(|p| (p.ticket, p.volume.to_string(), p.sl.to_string(), p.tp.to_string())).collect();
        let changed = self.last_positions.as_ref() != Some(&key);
        let had = self.last_positions.as_ref().is_some_and(|k| !k.is_empty());
        self.last_positions = Some(key);
        if !std::mem::replace(&mut self.connected, true) {
            info!("the MT5 terminal answers");
            let mut out = vec![self.mt5_status(identity), account, self.position_update_of(&positions, at)];
            out.extend(self.resolve().await);
            return out;
        }
        if !self.unresolved.is_empty() {
            let mut out = self.resolve().await;
            if !out.is_empty() {
                out.push(self.position_update_of(&positions, at));
                return out;
            }
        }
        if changed {
            return vec![self.position_update_of(&positions, at), account];
        }
        let due = self.last_position_update.is_none_or(|l| at.saturating_duration_since(l) >= self.position_update_gap);
        if (had || !positions.is_empty()) && due { vec![self.position_update_of(&positions, at)] } else { Vec::new() }
    }

    /// Handles the trade commands of unknown outcome again (the comment lookup and the closing deal lookup make
    /// that safe) and returns their results.
    async fn resolve(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        for text in std::mem::take(&mut self.unresolved) {
            info!("handling again a trade command whose outcome was unknown");
            out.extend(Box::pin(self.handle(&text, Utc::now())).await.replies);
        }
        out
    }

    /// Trade commands waiting for the terminal to answer again.
    pub fn unresolved(&self) -> usize {
        self.unresolved.len()
    }

    /// Handles one text frame from the server at `now`.
    pub async fn handle(&mut self, text: &str, now: DateTime<Utc>) -> Reaction {
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) else {
            warn!("ignoring a frame that is not a JSON object");
            return Reaction::default();
        };
        let kind = m.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        let signal = |s| Reaction { signal: Some(s), ..Reaction::default() };
        let reply = |v| Reaction { replies: vec![v], ..Reaction::default() };
        let quietly = |what: &str, e: Mt5Error| {
            warn!(kind = what, error = %e, "not answered: the MT5 terminal is unreachable");
            Reaction::default()
        };
        match kind.as_str() {
            "WELCOME" => signal(Signal::Welcome {
                heartbeat_interval: m.get("heartbeat_interval").and_then(Value::as_u64).filter(|s| *s > 0),
            }),
            "HEARTBEAT_ACK" => signal(Signal::HeartbeatAck),
            "PONG" => signal(Signal::Pong),
            "ERROR" => {
                signal(Signal::Error(m.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_owned()))
            }
            "PING" => reply(json!({"type": "PONG", "timestamp": iso_millis(now)})),
            "TRADE_OPEN" | "TRADE_CLOSE" | "TRADE_MODIFY" => {
                let r = self.trade_command(&kind, &m, now).await;
                let comment = m.get("comment").and_then(Value::as_str).unwrap_or_default();
                // Unknown outcome: tried again when the terminal answers, unless a repeat could fill twice (an
                // open without the NT- comment the lookup finds).
                if r.executed && r.replies.is_empty() && (kind != "TRADE_OPEN" || comment.starts_with("NT-")) {
                    if self.unresolved.len() < 100 {
                        self.unresolved.push(text.to_owned());
                    }
                } else if r.executed && r.replies.is_empty() {
                    warn!("an open without an NT- comment of unknown outcome is not tried again (it could fill twice)");
                }
                r
            }
            "GET_POSITIONS" => match self.mt5.positions_get(PositionFilter::All).await {
                Ok(p) => reply(json!({"type": "POSITIONS", "request_id": echo(&m),
                    "data": p.iter().map(position_json).collect::<Vec<_>>()})),
                Err(e) => quietly("GET_POSITIONS", e),
            },
            "GET_ACCOUNT" => match self.account_message("ACCOUNT_INFO", Some(echo(&m))).await {
                Ok(v) => reply(v),
                Err(e) => quietly("GET_ACCOUNT", e),
            },
            "SYNC_REQUEST" => match self.sync_response(&m, now).await {
                Ok(v) => reply(v),
                Err(e) => quietly("SYNC_REQUEST", e),
            },
            "HISTORY_REQUEST" => reply(self.history(&m).await),
            other => {
                debug!(kind = other, "ignoring a message of unknown type");
                Reaction::default()
            }
        }
    }

    async fn trade_command(&mut self, kind: &str, m: &Map<String, Value>, now: DateTime<Utc>) -> Reaction {
        let key = match m.get("request_id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        if let Some(k) = &key
            && let Some(first) = self.results.get(k)
        {
            self.stats.duplicates += 1;
            info!(kind, request_id = %k, "repeated command: answering with its first result, not executing again");
            return Reaction { replies: vec![first.clone()], ..Reaction::default() };
        }
        let outcome = match kind {
            "TRADE_OPEN" => self.trade_open(m, now).await,
            "TRADE_CLOSE" => self.trade_close(m).await,
            _ => self.trade_modify(m).await,
        };
        let (result, traded) = match outcome {
            Ok(r) => r,
            Err(e) => {
                warn!(kind, request_id = ?key, error = %e,
                    "outcome unknown (the terminal did not answer): no TRADE_RESULT; a resend is answered from the terminal");
                return Reaction { executed: true, ..Reaction::default() };
            }
        };
        self.stats.executed += 1;
        if let Some(k) = key {
            self.remember(k, result.clone());
        }
        Reaction { replies: vec![result], traded, signal: None, executed: true }
    }

    /// The position opened with `comment`: open now, or in the recent deal history.
    pub async fn find_opened(
        &mut self,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(u64, Decimal, DateTime<Utc>)>, Mt5Error> {
        let wanted = cut(comment);
        let open = self.mt5.positions_get(PositionFilter::All).await?;
        if let Some(p) = open.iter().find(|p| p.comment == wanted) {
            return Ok(Some((p.ticket, p.price_open, mt5_time(p.time, p.time_msc))));
        }
        let range = HistoryQuery::Range(now - TimeDelta::days(COMMENT_LOOKBACK_DAYS), now + TimeDelta::days(1));
        let deals = self.mt5.history_deals_get(range).await?;
        Ok(deals
            .iter()
            .find(|d| d.entry == DEAL_ENTRY_IN && d.comment == wanted)
            .map(|d| (d.position_id, d.price, mt5_time(d.time, d.time_msc))))
    }

    /// The filling mode the symbol allows.
    async fn filling(&mut self, symbol: &str) -> Result<Option<i64>, Mt5Error> {
        let Some(info) = self.mt5.symbol_info(symbol).await? else { return Ok(None) };
        if !info.visible {
            self.mt5.symbol_select(symbol).await?;
        }
        Ok(Some(if info.filling_mode & SYMBOL_FILLING_FOK != 0 {
            ORDER_FILLING_FOK
        } else if info.filling_mode & SYMBOL_FILLING_IOC != 0 {
            ORDER_FILLING_IOC
        } else {
            ORDER_FILLING_RETURN
        }))
    }

    /// The deal an executed `order_send` made: among its order's deals (`history_deals_get(ticket=order)`), the
    /// one the result names (`None` if the terminal does not list it yet).
    async fn deal_of(&mut self, order: u64, deal: u64) -> Result<Option<TradeDeal>, Mt5Error> {
        if order == 0 {
            return Ok(None);
        }
        let deals = self.mt5.history_deals_get(HistoryQuery::Order(order)).await?;
        Ok(deals.iter().find(|d| d.ticket == deal).or_else(|| deals.first()).cloned())
    }

    async fn trade_open(&mut self, m: &Map<String, Value>, now: DateTime<Utc>) -> Result<(Value, bool), Mt5Error> {
        let rid = echo(m);
        let parsed = (|| -> Result<_, String> {
            let symbol = m
                .get("symbol")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 32)
                .ok_or("symbol is required")?;
            let kind = match m.get("order_type").or_else(|| m.get("action")).and_then(Value::as_str) {
                Some(s) if s.trim().eq_ignore_ascii_case("BUY") => ORDER_TYPE_BUY,
                Some(s) if s.trim().eq_ignore_ascii_case("SELL") => ORDER_TYPE_SELL,
                Some(s) => return Err(format!("Invalid order type {}", s.chars().take(16).collect::<String>())),
                None => return Err("order_type is required".into()),
            };
            let lots = optional_number(m, "lot_size")?.or(optional_number(m, "volume")?).unwrap_or(Decimal::new(1, 1));
            let comment = cut(m.get("comment").and_then(Value::as_str).unwrap_or("NusaTrade"));
            Ok((
                symbol.to_owned(),
                kind,
                lots,
                optional_number(m, "stop_loss")?,
                optional_number(m, "take_profit")?,
                comment,
            ))
        })();
        let (symbol, kind, lots, sl, tp, comment) = match parsed {
            Ok(p) => p,
            Err(e) => return Ok((open_failure(rid, INVALID, &e), false)),
        };
        if comment.starts_with("NT-")
            && let Some((ticket, price, time)) = self.find_opened(&comment, now).await?
        {
            info!(request_id = %rid, ticket, %comment, "TRADE_OPEN for an order the terminal already filled: answering with its position");
            let reply = json!({"type": "TRADE_RESULT", "request_id": rid, "success": true, "ticket": ticket,
                "price": num(price), "retcode": RETCODE_DONE, "error": null, "time": iso_millis(time)});
            return Ok((reply, false));
        }
        let mut request = TradeRequest {
            action: TRADE_ACTION_DEAL,
            symbol: symbol.clone(),
            volume: Some(lots),
            kind: Some(kind),
            position: None,
            price: None,
            sl: Some(sl.unwrap_or_default()),
            tp: Some(tp.unwrap_or_default()),
            deviation: Some(DEVIATION_POINTS),
            magic: Some(MAGIC),
            comment: Some(comment.clone()),
            type_time: Some(ORDER_TIME_GTC),
            type_filling: None,
        };
        // A symbol without a broker name in this terminal (ambiguous, missing) is refused with the reason.
        let checked = match self.filling(&symbol).await {
            Err(Mt5Error::UnknownSymbol(why)) => Err((INVALID, why)),
            Err(e) => return Err(e),
            Ok(None) => Err((INVALID, format!("Symbol {symbol} not found"))),
            Ok(Some(filling)) => match self.mt5.symbol_info_tick(&symbol).await? {
                None => Err((PRICE_OFF, format!("No prices for {symbol}"))),
                Some(tick) => Ok((filling, tick)),
            },
        };
        match checked {
            Ok((filling, tick)) => {
                request.type_filling = Some(filling);
                request.price = Some(if kind == ORDER_TYPE_BUY { tick.ask } else { tick.bid });
            }
            Err((retcode, error)) => {
                info!(request_id = %rid, %symbol, retcode, %error, "TRADE_OPEN refused before order_send");
                self.mt5.refused_before_send(&request, retcode, &error);
                return Ok((open_failure(rid, retcode, &error), false));
            }
        }
        let r = self.mt5.order_send(request).await.or_else(|e| match e {
            Mt5Error::Terminal { code, message } => Ok(super::OrderSendResult {
                retcode: INVALID,
                deal: 0,
                order: 0,
                volume: Decimal::ZERO,
                price: Decimal::ZERO,
                comment: format!("{message} ({code})"),
            }),
            other => Err(other),
        })?;
        if UNKNOWN_OUTCOME.contains(&r.retcode) {
            return Err(Mt5Error::Disconnected(format!("order_send answered {} {}", r.retcode, r.comment)));
        }
        if ![RETCODE_DONE, RETCODE_DONE_PARTIAL, RETCODE_PLACED].contains(&r.retcode) {
            info!(request_id = %rid, %symbol, retcode = r.retcode, error = %r.comment, "TRADE_OPEN refused by the terminal");
            return Ok((open_failure(rid, r.retcode, &r.comment), false));
        }
        // The fill as the terminal booked it; the position ticket is the opening order's ticket in MT5.
        let deal = self.deal_of(r.order, r.deal).await?;
        let (ticket, price, volume, time) = match &deal {
            Some(d) => (d.position_id, d.price, d.volume, mt5_time(d.time, d.time_msc)),
            None => (r.order, r.price, r.volume, now),
        };
        info!(request_id = %rid, ticket, %symbol, side = side_name(kind), %volume, %price, deal = r.deal, "TRADE_OPEN filled");
        let reply = json!({"type": "TRADE_RESULT", "request_id": rid, "success": true, "ticket": ticket,
            "price": num(price), "retcode": RETCODE_DONE, "error": null, "time": iso_millis(time),
            "symbol": symbol.to_ascii_uppercase(), "volume": num(volume)});
        Ok((reply, true))
    }

    /// The position a close/modify names: `ticket`, else the open position carrying `client_order_id`'s comment.
    async fn target(&mut self, m: &Map<String, Value>) -> Result<Result<TradePosition, String>, Mt5Error> {
        let ticket = match m.get("ticket") {
            None | Some(Value::Null) => None,
            Some(v) => {
                match decimal(v).filter(|d| d.fract().is_zero() && *d > Decimal::ZERO).and_then(|d| d.to_u64()) {
                    Some(t) => Some(t),
                    None => return Ok(Err(format!("Position {v} not found"))),
                }
            }
        };
        let positions = match ticket {
            Some(t) => self.mt5.positions_get(PositionFilter::Ticket(t)).await?,
            None => {
                let Some(cid) = m.get("client_order_id").and_then(Value::as_str) else {
                    return Ok(Err("Position None not found".into()));
                };
                let comment = cut(&if cid.starts_with("NT-") { cid.to_owned() } else { format!("NT-{cid}") });
                let all = self.mt5.positions_get(PositionFilter::All).await?;
                all.into_iter().filter(|p| p.comment == comment).collect()
            }
        };
        Ok(positions.into_iter().next().ok_or_else(|| format!("Position {} not found", ticket.unwrap_or(0))))
    }

    async fn trade_close(&mut self, m: &Map<String, Value>) -> Result<(Value, bool), Mt5Error> {
        let rid = echo(m);
        let lots = match optional_number(m, "lot_size").and_then(|l| Ok(l.or(optional_number(m, "volume")?))) {
            Ok(l) => l.filter(|l| *l > Decimal::ZERO),
            Err(e) => return Ok((failure(rid, 0, INVALID, &e), false)),
        };
        let p = match self.target(m).await? {
            Ok(p) => p,
            Err(e) => {
                // Closed already (by this command before its ack was lost, or by its stop): its closing deal.
                let ticket = m.get("ticket").and_then(decimal).and_then(|d| d.to_u64()).unwrap_or(0);
                if ticket > 0
                    && let Some(d) = self
                        .mt5
                        .history_deals_get(HistoryQuery::Position(ticket))
                        .await?
                        .into_iter()
                        .rev()
                        .find(|d| d.entry == DEAL_ENTRY_OUT)
                {
                    info!(request_id = %rid, ticket, "TRADE_CLOSE of a position already closed: answering with its closing deal");
                    let reply = json!({"type": "TRADE_RESULT", "request_id": rid, "success": true, "ticket": ticket,
                        "price": num(d.price), "profit": num(d.profit), "volume": num(d.volume),
                        "retcode": RETCODE_DONE, "error": null, "time": iso_millis(mt5_time(d.time, d.time_msc))});
                    return Ok((reply, false));
                }
                return Ok((failure(rid, ticket, POSITION_NOT_FOUND, &e), false));
            }
        };
        let filling = match self.filling(&p.symbol).await {
            Err(Mt5Error::UnknownSymbol(why)) => return Ok((failure(rid, p.ticket, INVALID, &why), false)),
            other => other?.unwrap_or(ORDER_FILLING_RETURN),
        };
        let Some(tick) = self.mt5.symbol_info_tick(&p.symbol).await? else {
            return Ok((failure(rid, p.ticket, PRICE_OFF, &format!("No prices for {}", p.symbol)), false));
        };
        let closing = if p.kind == ORDER_TYPE_BUY { ORDER_TYPE_SELL } else { ORDER_TYPE_BUY };
        let request = TradeRequest {
            action: TRADE_ACTION_DEAL,
            symbol: p.symbol.clone(),
            volume: Some(lots.unwrap_or(p.volume)),
            kind: Some(closing),
            position: Some(p.ticket),
            price: Some(if closing == ORDER_TYPE_BUY { tick.ask } else { tick.bid }),
            sl: None,
            tp: None,
            deviation: Some(DEVIATION_POINTS),
            magic: Some(MAGIC),
            comment: Some(p.comment.clone()),
            type_time: Some(ORDER_TIME_GTC),
            type_filling: Some(filling),
        };
        let r = match self.mt5.order_send(request).await {
            Err(Mt5Error::Terminal { code, message }) => {
                return Ok((failure(rid, p.ticket, INVALID, &format!("{message} ({code})")), false));
            }
            Err(Mt5Error::UnknownSymbol(why)) => return Ok((failure(rid, p.ticket, INVALID, &why), false)),
            other => other?,
        };
        if UNKNOWN_OUTCOME.contains(&r.retcode) {
            return Err(Mt5Error::Disconnected(format!("order_send answered {} {}", r.retcode, r.comment)));
        }
        if ![RETCODE_DONE, RETCODE_DONE_PARTIAL, RETCODE_PLACED].contains(&r.retcode) {
            info!(request_id = %rid, ticket = p.ticket, retcode = r.retcode, error = %r.comment, "TRADE_CLOSE refused by the terminal");
            return Ok((failure(rid, p.ticket, r.retcode, &r.comment), false));
        }
        let deal = self.deal_of(r.order, r.deal).await?;
        let (price, volume, profit, time) = match &deal {
            Some(d) => (d.price, d.volume, d.profit, mt5_time(d.time, d.time_msc)),
            None => (r.price, r.volume, Decimal::ZERO, Utc::now()),
        };
        info!(request_id = %rid, ticket = p.ticket, %volume, %price, %profit, "TRADE_CLOSE filled");
        let reply = json!({"type": "TRADE_RESULT", "request_id": rid, "success": true, "ticket": p.ticket,
            "price": num(price), "profit": num(profit), "volume": num(volume), "retcode": RETCODE_DONE,
            "error": null, "time": iso_millis(time)});
        Ok((reply, true))
    }

    async fn trade_modify(&mut self, m: &Map<String, Value>) -> Result<(Value, bool), Mt5Error> {
        let rid = echo(m);
        let (sl, tp) = match optional_number(m, "stop_loss").and_then(|sl| Ok((sl, optional_number(m, "take_profit")?)))
        {
            Ok(s) => s,
            Err(e) => return Ok((modify_failure(rid, INVALID, &e), false)),
        };
        let p = match self.target(m).await? {
            Ok(p) => p,
            Err(e) => return Ok((modify_failure(rid, POSITION_NOT_FOUND, &e), false)),
        };
        let (new_sl, new_tp) = (sl.unwrap_or(p.sl), tp.unwrap_or(p.tp));
        let done = |code: u32| {
            json!({"type": "TRADE_RESULT", "request_id": rid, "success": true, "retcode": code, "error": null,
                "ticket": p.ticket, "stop_loss": nonzero(new_sl), "take_profit": nonzero(new_tp)})
        };
        if new_sl == p.sl && new_tp == p.tp {
            info!(request_id = %rid, ticket = p.ticket, "TRADE_MODIFY: the stops are already set");
            return Ok((done(RETCODE_NO_CHANGES), false));
        }
        let request = TradeRequest {
            action: TRADE_ACTION_SLTP,
            symbol: p.symbol.clone(),
            volume: None,
            kind: None,
            position: Some(p.ticket),
            price: None,
            sl: Some(new_sl),
            tp: Some(new_tp),
            deviation: None,
            magic: Some(MAGIC),
            comment: None,
            type_time: None,
            type_filling: None,
        };
        let r = match self.mt5.order_send(request).await {
            Err(Mt5Error::Terminal { code, message }) => {
                return Ok((modify_failure(rid, INVALID, &format!("{message} ({code})")), false));
            }
            Err(Mt5Error::UnknownSymbol(why)) => return Ok((modify_failure(rid, INVALID, &why), false)),
            other => other?,
        };
        match r.retcode {
            RETCODE_DONE | RETCODE_PLACED => {
                info!(request_id = %rid, ticket = p.ticket, sl = %new_sl, tp = %new_tp, "TRADE_MODIFY done");
                Ok((done(RETCODE_DONE), true))
            }
            RETCODE_NO_CHANGES => Ok((done(RETCODE_NO_CHANGES), false)),
            code => {
                info!(request_id = %rid, ticket = p.ticket, retcode = code, error = %r.comment, "TRADE_MODIFY refused by the terminal");
                Ok((modify_failure(rid, code, &r.comment), false))
            }
        }
    }

    async fn sync_response(&mut self, m: &Map<String, Value>, now: DateTime<Utc>) -> Result<Value, Mt5Error> {
        let positions = self.mt5.positions_get(PositionFilter::All).await?;
        let account = account_json(&self.mt5.account_info().await?);
        let asked = m
            .get("history_from")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
            .map(|t| t.with_timezone(&Utc));
        let until = now + TimeDelta::days(1);
        let complete = self.mt5.history_complete_since();
        let mut from = asked.unwrap_or(now - TimeDelta::days(RECENT_DAYS));
        if asked.is_some() {
            // What the terminal does not know completely is not claimed.
            from = complete.map_or(from, |c| c.max(from));
        }
        let mut deals: Vec<TradeDeal> =
            self.mt5.history_deals_get(HistoryQuery::Range(from, until)).await?.into_iter().filter(is_trade).collect();
        let deal_time = |d: &TradeDeal| mt5_time(d.time, d.time_msc);
        deals.sort_by_key(|d| (deal_time(d), d.ticket));
        // More than fits: the window starts just after the newest entry left out.
        if deals.len() > MAX_SYNC_DEALS {
            from = from.max(deal_time(&deals[deals.len() - MAX_SYNC_DEALS - 1]) + TimeDelta::milliseconds(1));
        }
        let mut refused = Vec::new();
        if asked.is_some() {
            let orders = self.mt5.history_orders_get(HistoryQuery::Range(from, until)).await?;
            refused = orders.into_iter().filter(|o| o.state == ORDER_STATE_REJECTED).collect::<Vec<_>>();
            let order_time = |o: &super::TradeOrder| mt5_time(o.time_setup, o.time_setup_msc);
            refused.sort_by_key(|o| (order_time(o), o.ticket));
            if refused.len() > MAX_SYNC_ORDERS {
                from = from.max(order_time(&refused[refused.len() - MAX_SYNC_ORDERS - 1]) + TimeDelta::milliseconds(1));
            }
            refused.retain(|o| order_time(o) >= from);
        }
        deals.retain(|d| asked.is_none() || deal_time(d) >= from);
        let skip = deals.len().saturating_sub(MAX_SYNC_DEALS);
        deals.drain(..skip);
        let mut v = json!({
            "type": "SYNC_RESPONSE", "request_id": echo(m),
            "positions": positions.iter().map(position_json).collect::<Vec<_>>(),
            "account": account, "deals": deals.iter().map(deal_json).collect::<Vec<_>>(),
        });
        if let Some(c) = m.get("connection_id") {
            v["connection_id"] = c.clone();
        }
        if asked.is_some() {
            let refused: Vec<Value> = refused
                .iter()
                .map(|o| {
                    json!({"ticket": o.ticket, "state": "rejected",
                        "time": wire::iso(mt5_time(o.time_setup, o.time_setup_msc)), "comment": o.comment})
                })
                .collect();
            v["history_from"] = json!(wire::iso(from));
            v["orders"] = json!(refused);
        }
        if let Some(Value::Array(tickets)) = m.get("tickets") {
            // Only a terminal that knows its account's whole history can say a ticket was never a position.
            let whole = complete.is_some_and(|c| c <= super::HISTORY_COMPLETE);
            let mut lookups = Vec::new();
            for t in tickets.iter().filter_map(Value::as_u64).take(MAX_SYNC_ORDERS) {
                if positions.iter().any(|p| p.ticket == t) {
                    lookups.push(json!({"ticket": t, "status": "open"}));
                    continue;
                }
                let of_position = self.mt5.history_deals_get(HistoryQuery::Position(t)).await?;
                // Not found in a trimmed history is not proof of absence: no answer then.
                if let Some(d) = of_position.iter().rev().find(|d| d.entry == DEAL_ENTRY_OUT) {
                    lookups.push(json!({"ticket": t, "status": "closed", "price": num(d.price),
                        "time": wire::iso(mt5_time(d.time, d.time_msc))}));
                } else if whole {
                    lookups.push(json!({"ticket": t, "status": "not_found"}));
                }
            }
            v["lookups"] = json!(lookups);
        }
        Ok(v)
    }

    async fn history(&mut self, m: &Map<String, Value>) -> Value {
        let rid = echo(m);
        match self.candles(m).await {
            Ok((symbol, tf, candles)) => json!({"type": "HISTORY_CANDLES", "request_id": rid, "symbol": symbol,
                "timeframe": tf, "candles": candles}),
            Err(error) => json!({"type": "ERROR", "request_id": rid, "error": error}),
        }
    }

    async fn candles(&mut self, m: &Map<String, Value>) -> Result<(String, String, Vec<Value>), String> {
        let HistoryAsk { symbol, timeframe: tf, start, end, max, .. } = HistoryAsk::parse(m)?;
        // copy_rates_range includes a bar opening at `end`; the protocol's window is [start, end).
        let rates = self.mt5.copy_rates_range(&symbol, tf, start, end).await.map_err(|e| match e {
            Mt5Error::Terminal { code: -1, message } | Mt5Error::UnknownSymbol(message) => message,
            e => e.to_string(),
        })?;
        let candles = rates
            .iter()
            .filter(|r| r.time >= start.timestamp() && r.time < end.timestamp())
            .take(max)
            .map(|r| json!([r.time, num(r.open), num(r.high), num(r.low), num(r.close), r.tick_volume as f64]))
            .collect();
        Ok((symbol.to_ascii_uppercase(), tf.to_owned(), candles))
    }
}

fn modify_failure(rid: Value, retcode: u32, error: &str) -> Value {
    json!({"type": "TRADE_RESULT", "request_id": rid, "success": false, "retcode": retcode, "error": error})
}

#[cfg(test)]
mod tests;
