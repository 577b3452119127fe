//! The simulated connector's message handler: server frames in, connector frames out, against a
//! [`PaperAccount`]. No I/O: the network loop ([`super::SimConnector`]) feeds it text frames and ticks and sends
//! what it returns, so every command can be tested without a socket.
//!
//! Commands (contract §3.2.2) and their replies (§3.2.1, with the original connector's attribute bugs fixed):
//!
//! | server → connector | reply |
//! |---|---|
//! | `TRADE_OPEN {request_id, symbol, order_type, lot_size, comment, stop_loss?, take_profit?}` | `TRADE_RESULT {request_id, success, ticket, price, retcode, error, time}` |
//! | `TRADE_CLOSE {request_id, symbol, ticket, lot_size}` | `TRADE_RESULT {request_id, success, ticket, price, profit, retcode, error, time}` |
//! | `TRADE_MODIFY {request_id, ticket, stop_loss, take_profit}` | `TRADE_RESULT {request_id, success, ticket, retcode, error}` |
//! | `GET_POSITIONS` | `POSITIONS {request_id, data: [position]}` |
//! | `GET_ACCOUNT` | `ACCOUNT_INFO {request_id, balance, equity, margin, free_margin, profit, leverage, currency, ...}` |
//! | `SYNC_REQUEST` | `SYNC_RESPONSE {request_id, positions: [position], account, deals}` |
//! | `SYNC_REQUEST {history_from, tickets}` (reconciliation) | the same plus `history_from`, `orders` and `lookups` (below) |
//! | `PING` | `PONG {timestamp}` |
//! | `HISTORY_REQUEST {request_id, symbol, timeframe, start, end, max_bars}` | `HISTORY_CANDLES {request_id, symbol, timeframe, candles}` or `ERROR` ([`super::history`]) |
//!
//! A `position` is `{ticket, symbol, type: "BUY"|"SELL", volume, price, price_current, profit, sl, tp, comment,
//! time}` (`sl`/`tp` are `0.0` when unset, as MT5 reports them). `deals` lists the most recent deals
//! ([`MAX_SYNC_DEALS`]) with their entry (`in`/`out`) and reason (`client`, `sl`, `tp`), so stop-loss and
//! take-profit closes can be found by reconciliation.
//!
//! **History for reconciliation**: a `SYNC_REQUEST` with `history_from` is answered with every deal since then and
//! every `TRADE_OPEN` the account refused since then (`orders: [{ticket, state: "rejected", time, comment}]`), and
//! the window it covers (`history_from`: moved later when more than [`MAX_SYNC_DEALS`] deals or
//! [`MAX_SYNC_ORDERS`] refusals fall in it, or when this process does not know the account's whole history — a
//! restored state keeps the recent deals only and no refusals). `tickets` are looked up: `open`, `closed` with the
//! closing deal's price and time, or `not_found` (only when the whole history is known).
//!
//! **De-duplication**: trade commands are remembered by `request_id` (the last [`DEDUP_CAPACITY`]); a repeated
//! command gets the first result again and is never executed twice. A `TRADE_OPEN` with a new `request_id` but
//! the `NT-…` comment of a position already opened is answered with that position too (the comment is the
//! server's client order id), so an order is never filled twice even if the cache forgot it.
//!
//! **Faults** ([`Faults`]): with `--reject`, a new trade command may be answered with a failed result and a
//! requote / rejected / no-money retcode instead of executing (remembered like any result); the other faults act
//! on the frames the network loop sends ([`Reaction::executed`] tells it a command ran).
//!
//! **State** ([`Engine::saved_state`], [`Engine::restore`]): the paper account and the remembered results, for the
//! connector's state file; [`Engine::take_changes`] hands it out once after every change (a trade, a remembered
//! result, a stop hit).
//!
//! **Failures** carry MT5 retcodes: the paper engine's (10013 invalid, 10014 volume, 10016 stops, 10019 no money,
//! 10021 no prices, 10036 position not found, 10038 close volume) and 10013 for a command that cannot be read.
//! A modify that changes nothing (10025 NO_CHANGES) reports success: the position already has the requested
//! stops, which is what the command asks for.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
// History windows are written with microseconds (a window must not start before what it claims).
use nusatrade_app::wire;
use nusatrade_domain::order::Ticket;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use super::faults::{FaultStats, Faults};
use super::history::HistorySource;
use super::state::{Executed, STATE_FORMAT, STATE_VERSION, SavedState};
use crate::feed::Tick;
use crate::paper::{self, AccountState, ClosedPosition, DealEntry, DealReason, PaperAccount, PaperPosition};

/// How many trade results are remembered for de-duplication.
pub const DEDUP_CAPACITY: usize = 10_000;
/// How many recent deals the saved state keeps (for the `NT-…` comment check and `SYNC_RESPONSE`).
pub const MAX_SAVED_DEALS: usize = 1_000;
/// How many recent deals a `SYNC_RESPONSE` lists (the gateway's 32 KB frame limit bounds a frame).
pub const MAX_SYNC_DEALS: usize = 50;
/// How many refused orders a `SYNC_RESPONSE` lists, and how many lookups it answers.
pub const MAX_SYNC_ORDERS: usize = 20;
/// How many refused orders are remembered for the history.
const MAX_REFUSED: usize = 1_000;
/// Synthetic MT5 order tickets of refused orders start here.
const FIRST_REFUSED_TICKET: u64 = 900_000_000;
/// Default minimum gap between two routine `POSITION_UPDATE`s.
pub const DEFAULT_POSITION_UPDATE_GAP: Duration = Duration::from_secs(1);
/// The volume of a `TRADE_OPEN` without `lot_size` (the original connector's default).
const DEFAULT_VOLUME: Decimal = Decimal::from_parts(1, 0, 0, false, 1);

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

impl Reaction {
    fn reply(reply: Value) -> Reaction {
        Reaction { replies: vec![reply], ..Reaction::default() }
    }

    fn signal(signal: Signal) -> Reaction {
        Reaction { signal: Some(signal), ..Reaction::default() }
    }
}

/// Trade results by `request_id`, oldest forgotten first.
#[derive(Debug, Default)]
struct ResultCache {
    results: HashMap<String, Value>,
    order: VecDeque<String>,
    capacity: usize,
}

impl ResultCache {
    fn new(capacity: usize) -> ResultCache {
        ResultCache { capacity: capacity.max(1), ..ResultCache::default() }
    }

    fn get(&self, request_id: &str) -> Option<&Value> {
        self.results.get(request_id)
    }

    /// The remembered results, oldest first.
    fn entries(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.order.iter().filter_map(|k| self.results.get_key_value(k))
    }

    fn insert(&mut self, request_id: String, result: Value) {
        if self.results.insert(request_id.clone(), result).is_none() {
            self.order.push_back(request_id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
    }
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

/// The message handler: a paper account, the remembered results and the update throttle.
#[derive(Debug)]
pub struct Engine {
    account: PaperAccount,
    identity: AccountIdentity,
    results: ResultCache,
    position_update_gap: Duration,
    last_position_update: Option<Instant>,
    reported_positions: bool,
    stats: EngineStats,
    faults: Faults,
    changed: bool,
    /// `TRADE_OPEN`s the account refused (MT5's history orders in state rejected), oldest first.
    refused: VecDeque<RefusedOrder>,
    next_refused_ticket: u64,
    /// The history is complete from this time on only (a restored account: recent deals, no refusals).
    history_floor: Option<DateTime<Utc>>,
    /// Where price history comes from (`HISTORY_REQUEST`).
    prices: HistorySource,
}

/// A refused `TRADE_OPEN`, as MT5's history lists it.
#[derive(Debug, Clone, PartialEq)]
struct RefusedOrder {
    ticket: u64,
    time: DateTime<Utc>,
    comment: String,
}

impl Engine {
    /// An engine over `account`, reporting as `identity`.
    pub fn new(account: PaperAccount, identity: AccountIdentity) -> Engine {
        Engine {
            account,
            identity,
            results: ResultCache::new(DEDUP_CAPACITY),
            position_update_gap: DEFAULT_POSITION_UPDATE_GAP,
            last_position_update: None,
            reported_positions: false,
            stats: EngineStats::default(),
            faults: Faults::default(),
            changed: false,
            refused: VecDeque::new(),
            next_refused_ticket: FIRST_REFUSED_TICKET,
            history_floor: None,
            prices: HistorySource::Unavailable,
        }
    }

    /// Answers `HISTORY_REQUEST`s from `source`.
    pub fn with_history(mut self, source: HistorySource) -> Engine {
        self.prices = source;
        self
    }

    /// The engine a saved state describes (its account and remembered results), reporting as `identity`. The
    /// caller checks that the state is this identity's; the account is checked for consistency here.
    pub fn restore(saved: SavedState, identity: AccountIdentity) -> Result<Engine, String> {
        let account = PaperAccount::restore(saved.account)?;
        let mut engine = Engine::new(account, identity);
        // Older deals may have been dropped from the state, and refusals are not kept: complete from now on.
        engine.history_floor = Some(Utc::now());
        let skip = saved.executed.len().saturating_sub(DEDUP_CAPACITY);
        for e in saved.executed.into_iter().skip(skip) {
            if e.request_id.is_empty() {
                return Err("a remembered result without a request id".into());
            }
            if e.result.get("type").and_then(Value::as_str) != Some("TRADE_RESULT") {
                return Err(format!("the remembered result of {} is not a TRADE_RESULT", e.request_id));
            }
            engine.results.insert(e.request_id, e.result);
        }
        Ok(engine)
    }

    /// Injects `faults` (see [`Faults`]).
    pub fn with_faults(mut self, faults: Faults) -> Engine {
        self.faults = faults;
        self
    }

    /// The fault decisions (the network loop asks them what to do with each `TRADE_RESULT` frame).
    pub fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }

    /// What was injected so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.faults.stats()
    }

    /// The account, the remembered results (oldest first) and who the account is, as saved at `now`.
    pub fn saved_state(&self, now: DateTime<Utc>) -> SavedState {
        SavedState {
            format: STATE_FORMAT.to_owned(),
            version: STATE_VERSION,
            saved_at: now,
            login: self.identity.login,
            server: self.identity.server.clone(),
            account: self.account.snapshot(MAX_SAVED_DEALS),
            executed: self
                .results
                .entries()
                .map(|(k, v)| Executed { request_id: k.clone(), result: v.clone() })
                .collect(),
        }
    }

    /// [`saved_state`](Self::saved_state) if something changed since the last call, once.
    pub fn take_changes(&mut self, now: DateTime<Utc>) -> Option<SavedState> {
        if !self.changed {
            return None;
        }
        self.changed = false;
        Some(self.saved_state(now))
    }

    /// Marks the state as changed again (its save failed: the next change retries it).
    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// Whether something changed since the last [`take_changes`](Self::take_changes).
    pub fn has_changes(&self) -> bool {
        self.changed
    }

    /// Sets the minimum gap between two routine `POSITION_UPDATE`s (stop hits are reported at once).
    pub fn with_position_update_gap(mut self, gap: Duration) -> Engine {
        self.position_update_gap = gap;
        self
    }

    /// The paper account.
    pub fn account(&self) -> &PaperAccount {
        &self.account
    }

    /// Who the account is.
    pub fn identity(&self) -> &AccountIdentity {
        &self.identity
    }

    /// What the engine did so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Handles one text frame from the server at `now`.
    pub fn handle(&mut self, text: &str, now: DateTime<Utc>) -> Reaction {
        let m = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => {
                warn!(frame = %truncate(text, 200), "ignoring a frame that is not a JSON object");
                return Reaction::default();
            }
        };
        let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "WELCOME" => Reaction::signal(Signal::Welcome {
                heartbeat_interval: m.get("heartbeat_interval").and_then(Value::as_u64).filter(|s| *s > 0),
            }),
            "HEARTBEAT_ACK" => Reaction::signal(Signal::HeartbeatAck),
            "PONG" => Reaction::signal(Signal::Pong),
            "ERROR" => {
                let error = m.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_owned();
                Reaction::signal(Signal::Error(error))
            }
            "PING" => Reaction::reply(json!({"type": "PONG", "timestamp": iso_millis(now)})),
            "TRADE_OPEN" | "TRADE_CLOSE" | "TRADE_MODIFY" => self.trade_command(kind, &m, now),
            "GET_POSITIONS" => Reaction::reply(json!({
                "type": "POSITIONS",
                "request_id": echo(&m),
                "data": self.positions_json(),
            })),
            "GET_ACCOUNT" => Reaction::reply(self.account_message("ACCOUNT_INFO", Some(echo(&m)))),
            "SYNC_REQUEST" => Reaction::reply(self.sync_response(&m)),
            "HISTORY_REQUEST" => Reaction::reply(self.prices.answer(&m)),
            other => {
                // The original connector logs unknown types and sends nothing back.
                debug!(kind = other, "ignoring a message of unknown type");
                Reaction::default()
            }
        }
    }

    /// Feeds ticks (in order) to the paper account and returns what to report: after a stop loss or take profit
    /// closed a position, `POSITION_UPDATE` and `ACCOUNT_UPDATE` at once; otherwise a `POSITION_UPDATE` with
    /// the current prices when positions are open (or just went to none) and the last one is at least the
    /// configured gap old.
    pub fn on_ticks(&mut self, ticks: &[Tick], at: Instant) -> Vec<Value> {
        let mut closed: Vec<ClosedPosition> = Vec::new();
        for tick in ticks {
            closed.extend(self.account.on_tick(*tick));
        }
        for c in &closed {
            self.stats.stops_hit += 1;
            self.changed = true;
            let reason = match c.reason {
                DealReason::StopLoss => "stop loss",
                DealReason::TakeProfit => "take profit",
                DealReason::Client => "client",
            };
            info!(
                ticket = c.ticket.0, symbol = c.symbol.as_str(), side = c.side.as_str(), lots = %c.lots,
                open = %c.open_price, close = %c.close_price, profit = %c.profit, comment = %c.comment,
                "position closed by its {reason}"
            );
        }
        if !closed.is_empty() {
            return vec![self.position_update(at), self.account_message("ACCOUNT_UPDATE", None)];
        }
        if self.position_update_due(at) { vec![self.position_update(at)] } else { Vec::new() }
    }

    fn position_update_due(&self, at: Instant) -> bool {
        let open = !self.account.positions().is_empty();
        (open || self.reported_positions)
            && self
                .last_position_update
                .is_none_or(|last| at.saturating_duration_since(last) >= self.position_update_gap)
    }

    /// `POSITION_UPDATE {positions: [{ticket, symbol, order_type, volume, open_price, current_price, stop_loss,
    /// take_profit, profit, comment}], timestamp}` (contract §3.2.1); records it as sent at `at`.
    pub fn position_update(&mut self, at: Instant) -> Value {
        let positions: Vec<Value> = self
            .account
            .positions()
            .iter()
            .map(|p| {
                json!({
                    "ticket": p.ticket.0,
                    "symbol": p.symbol.as_str(),
                    "order_type": p.side.as_str(),
                    "volume": num(p.lots),
                    "open_price": num(p.open_price),
                    "current_price": num(p.current_price),
                    "stop_loss": p.stop_loss.map(num),
                    "take_profit": p.take_profit.map(num),
                    "profit": num(p.profit),
                    "comment": p.comment,
                })
            })
            .collect();
        self.reported_positions = !positions.is_empty();
        self.last_position_update = Some(at);
        json!({"type": "POSITION_UPDATE", "positions": positions, "timestamp": iso_millis(Utc::now())})
    }

    /// `ACCOUNT_UPDATE` / `ACCOUNT_INFO`: `{balance, equity, margin, free_margin, profit, leverage, currency,
    /// margin_level, login, server, company}`, with `request_id` when answering a request.
    pub fn account_message(&self, kind: &str, request_id: Option<Value>) -> Value {
        let mut v = account_json(&self.account.account(), &self.identity);
        v.insert("type".into(), json!(kind));
        if let Some(rid) = request_id {
            v.insert("request_id".into(), rid);
        }
        Value::Object(v)
    }

    /// `MT5_STATUS {connected: true, broker_name, account_number, server}`.
    pub fn mt5_status(&self) -> Value {
        json!({
            "type": "MT5_STATUS",
            "connected": true,
            "broker_name": self.identity.company,
            "account_number": self.identity.login.to_string(),
            "server": self.identity.server,
        })
    }

    fn sync_response(&self, m: &Map<String, Value>) -> Value {
        let all = self.account.history();
        let asked_from = m
            .get("history_from")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
            .map(|t| t.with_timezone(&Utc));
        let (recent, refused, window): (Vec<&paper::Deal>, Vec<&RefusedOrder>, Option<DateTime<Utc>>) = match asked_from
        {
            None => (all[all.len().saturating_sub(MAX_SYNC_DEALS)..].iter().collect(), Vec::new(), None),
            Some(asked) => {
                let mut from = self.history_floor.map_or(asked, |f| f.max(asked));
                // More than fits: the window starts just after the newest entry left out.
                let deals: Vec<&paper::Deal> = all.iter().filter(|d| d.time >= from).collect();
                if deals.len() > MAX_SYNC_DEALS {
                    from = from.max(deals[deals.len() - MAX_SYNC_DEALS - 1].time + chrono::Duration::microseconds(1));
                }
                let refused: Vec<&RefusedOrder> = self.refused.iter().filter(|r| r.time >= from).collect();
                if refused.len() > MAX_SYNC_ORDERS {
                    from =
                        from.max(refused[refused.len() - MAX_SYNC_ORDERS - 1].time + chrono::Duration::microseconds(1));
                }
                (
                    all.iter().filter(|d| d.time >= from).collect(),
                    self.refused.iter().filter(|r| r.time >= from).collect(),
                    Some(from),
                )
            }
        };
        let deals: Vec<Value> = recent
            .iter()
            .map(|d| {
                json!({
                    "ticket": d.ticket.0,
                    "position": d.position.0,
                    "symbol": d.symbol.as_str(),
                    "type": d.side.as_str(),
                    "entry": match d.entry { DealEntry::In => "in", DealEntry::Out => "out" },
                    "volume": num(d.lots),
                    "price": num(d.price),
                    "profit": num(d.profit),
                    "time": iso_millis(d.time),
                    "reason": match d.reason {
                        DealReason::Client => "client",
                        DealReason::StopLoss => "sl",
                        DealReason::TakeProfit => "tp",
                    },
                    "comment": d.comment,
                })
            })
            .collect();
        let mut account = account_json(&self.account.account(), &self.identity);
        account.remove("type");
        let mut v = json!({
            "type": "SYNC_RESPONSE",
            "request_id": echo(m),
            "positions": self.positions_json(),
            "account": account,
            "deals": deals,
        });
        if let Some(c) = m.get("connection_id") {
            v["connection_id"] = c.clone();
        }
        if let Some(from) = window {
            v["history_from"] = json!(wire::iso(from));
            v["orders"] = refused
                .iter()
                .map(|r| json!({"ticket": r.ticket, "state": "rejected", "time": wire::iso(r.time), "comment": r.comment}))
                .collect();
        }
        if let Some(Value::Array(tickets)) = m.get("tickets") {
            let lookups: Vec<Value> = tickets
                .iter()
                .filter_map(Value::as_u64)
                .take(MAX_SYNC_ORDERS)
                .filter_map(|t| self.lookup(Ticket(t)))
                .collect();
            v["lookups"] = json!(lookups);
        }
        v
    }

    /// A targeted lookup of a position ticket: open, closed (its closing deal), or — when the whole history is
    /// known — not found.
    fn lookup(&self, ticket: Ticket) -> Option<Value> {
        if self.account.position(ticket).is_some() {
            return Some(json!({"ticket": ticket.0, "status": "open"}));
        }
        let closing = self.account.history().iter().rev().find(|d| d.position == ticket && d.entry == DealEntry::Out);
        match closing {
            Some(d) => {
                Some(json!({"ticket": ticket.0, "status": "closed", "price": num(d.price), "time": wire::iso(d.time)}))
            }
            None if self.history_floor.is_none() => Some(json!({"ticket": ticket.0, "status": "not_found"})),
            None => None,
        }
    }

    fn positions_json(&self) -> Vec<Value> {
        self.account.positions().iter().map(position_json).collect()
    }
}

fn position_json(p: &PaperPosition) -> Value {
    json!({
        "ticket": p.ticket.0,
        "symbol": p.symbol.as_str(),
        "type": p.side.as_str(),
        "volume": num(p.lots),
        "price": num(p.open_price),
        "price_current": num(p.current_price),
        "profit": num(p.profit),
        "sl": num(p.stop_loss.unwrap_or_default()),
        "tp": num(p.take_profit.unwrap_or_default()),
        "comment": p.comment,
        "time": iso_millis(p.open_time),
    })
}

fn account_json(a: &AccountState, identity: &AccountIdentity) -> Map<String, Value> {
    let v = json!({
        "balance": num(a.balance),
        "equity": num(a.equity),
        "margin": num(a.margin),
        "free_margin": num(a.free_margin),
        "profit": num(a.profit),
        "leverage": a.leverage,
        "currency": a.currency.as_str(),
        "margin_level": a.margin_level.map(num),
        "login": identity.login,
        "server": identity.server,
        "company": identity.company,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The `request_id` to echo (`null` when absent, as the original connector).
fn echo(m: &Map<String, Value>) -> Value {
    m.get("request_id").cloned().unwrap_or(Value::Null)
}

/// A decimal as a JSON number (the wire carries floats, as the original connector's).
pub fn num(d: Decimal) -> Value {
    d.to_f64().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// RFC 3339 UTC with milliseconds: the connector's own times (the original connector's form), on purpose
/// not [`wire::iso`]'s microseconds.
pub fn iso_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

mod trades;

#[cfg(test)]
mod tests;
