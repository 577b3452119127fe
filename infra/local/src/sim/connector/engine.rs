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
use nusatrade_app::connector::protocol::decimal;
use nusatrade_domain::money::Side;
use nusatrade_domain::order::{Retcode, Ticket};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use super::faults::{FaultStats, Faults};
use super::state::{Executed, STATE_FORMAT, STATE_VERSION, SavedState};
use crate::sim::feed::Tick;
use crate::sim::paper::{
    self, AccountState, ClosedPosition, DealEntry, DealReason, OpenRequest, PaperAccount, PaperPosition, Reject,
};

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
        }
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
            "PING" => Reaction::reply(json!({"type": "PONG", "timestamp": iso(now)})),
            "TRADE_OPEN" | "TRADE_CLOSE" | "TRADE_MODIFY" => self.trade_command(kind, &m, now),
            "GET_POSITIONS" => Reaction::reply(json!({
                "type": "POSITIONS",
                "request_id": echo(&m),
                "data": self.positions_json(),
            })),
            "GET_ACCOUNT" => Reaction::reply(self.account_message("ACCOUNT_INFO", Some(echo(&m)))),
            "SYNC_REQUEST" => Reaction::reply(self.sync_response(&m)),
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
        json!({"type": "POSITION_UPDATE", "positions": positions, "timestamp": iso(Utc::now())})
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
                    "time": iso(d.time),
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
            v["history_from"] = json!(from.to_rfc3339_opts(SecondsFormat::Micros, true));
            v["orders"] = refused
                .iter()
                .map(|r| json!({"ticket": r.ticket, "state": "rejected", "time": iso_micros(r.time), "comment": r.comment}))
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
                Some(json!({"ticket": ticket.0, "status": "closed", "price": num(d.price), "time": iso_micros(d.time)}))
            }
            None if self.history_floor.is_none() => Some(json!({"ticket": ticket.0, "status": "not_found"})),
            None => None,
        }
    }

    fn positions_json(&self) -> Vec<Value> {
        self.account.positions().iter().map(position_json).collect()
    }

    // ------------------------------------------------------------------ trade commands

    fn trade_command(&mut self, kind: &str, m: &Map<String, Value>, now: DateTime<Utc>) -> Reaction {
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
            return Reaction::reply(first.clone());
        }
        self.stats.executed += 1;
        let (result, traded) = match kind {
            "TRADE_OPEN" => self.trade_open(m, now),
            "TRADE_CLOSE" => self.trade_close(m, now),
            _ => self.trade_modify(m),
        };
        if let Some(k) = key {
            self.results.insert(k, result.clone());
            self.changed = true;
        }
        self.changed |= traded;
        Reaction { replies: vec![result], traded, signal: None, executed: true }
    }

    /// A rejection `--reject` injects instead of executing a command of `kind`, logged.
    fn injected_reject(&mut self, kind: &str, rid: &Value) -> Option<Reject> {
        let r = self.faults.reject(kind)?;
        info!(request_id = %rid, kind, retcode = r.retcode.0, error = %r.message,
            "injected fault (--reject): answering with a rejection instead of executing");
        Some(r)
    }

    fn trade_open(&mut self, m: &Map<String, Value>, now: DateTime<Utc>) -> (Value, bool) {
        let rid = echo(m);
        let request = match parse_open(m, now) {
            Ok(r) => r,
            Err(e) => {
                warn!(request_id = %rid, error = %e, "TRADE_OPEN refused: unreadable command");
                return (open_failure(rid, paper::INVALID, &e), false);
            }
        };
        if request.comment.starts_with("NT-")
            && let Some((ticket, price, time)) = self.already_opened(&request.comment)
        {
            info!(request_id = %rid, ticket = ticket.0, comment = %request.comment,
                "TRADE_OPEN for an order already filled: answering with its position");
            let reply = json!({
                "type": "TRADE_RESULT", "request_id": rid, "success": true, "ticket": ticket.0, "price": num(price),
                "retcode": Retcode::DONE.0, "error": null, "time": iso(time),
            });
            return (reply, false);
        }
        if let Some(r) = self.injected_reject("TRADE_OPEN", &rid) {
            self.refuse(&request.comment, now);
            return (open_failure(rid, r.retcode, &r.message), false);
        }
        let comment = request.comment.clone();
        let (symbol, side, lots) = (request.symbol.clone(), request.side, request.lots);
        match self.account.open(request) {
            Ok(fill) => {
                info!(request_id = %rid, ticket = fill.ticket.0, symbol = %symbol, side = side.as_str(), lots = %lots,
                    price = %fill.price, "TRADE_OPEN filled");
                let reply = json!({
                    "type": "TRADE_RESULT", "request_id": rid, "success": true, "ticket": fill.ticket.0,
                    "price": num(fill.price), "retcode": Retcode::DONE.0, "error": null, "time": iso(fill.time),
                    "symbol": symbol.to_ascii_uppercase(), "volume": num(lots),
                });
                (reply, true)
            }
            Err(r) => {
                info!(request_id = %rid, symbol = %symbol, retcode = r.retcode.0, error = %r.message, "TRADE_OPEN rejected");
                self.refuse(&comment, now);
                (open_failure(rid, r.retcode, &r.message), false)
            }
        }
    }

    /// Records a refused open in the history orders.
    fn refuse(&mut self, comment: &str, now: DateTime<Utc>) {
        self.next_refused_ticket += 1;
        let comment: String = comment.chars().take(nusatrade_domain::order::MT5_COMMENT_MAX_LEN).collect();
        self.refused.push_back(RefusedOrder { ticket: self.next_refused_ticket, time: now, comment });
        if self.refused.len() > MAX_REFUSED {
            self.refused.pop_front();
            // The oldest refusal is forgotten: the history is complete only after it.
            let forgotten = self.refused.front().map(|r| r.time);
            self.history_floor = self.history_floor.max(forgotten);
        }
    }

    /// The ticket, open price and time of the position opened with `comment`: open now, or in the deal history.
    fn already_opened(&self, comment: &str) -> Option<(Ticket, Decimal, DateTime<Utc>)> {
        if let Some(p) = self.account.find_by_comment(comment).first() {
            return Some((p.ticket, p.open_price, p.open_time));
        }
        let wanted: String = comment.chars().take(nusatrade_domain::order::MT5_COMMENT_MAX_LEN).collect();
        self.account
            .history()
            .iter()
            .find(|d| d.entry == DealEntry::In && d.comment == wanted)
            .map(|d| (d.position, d.price, d.time))
    }

    fn trade_close(&mut self, m: &Map<String, Value>, now: DateTime<Utc>) -> (Value, bool) {
        let rid = echo(m);
        let lots = match optional_number(m, "lot_size").or_else(|_| optional_number(m, "volume")) {
            Ok(l) => l.filter(|l| *l > Decimal::ZERO),
            Err(e) => return (close_failure(rid, None, paper::INVALID, &e), false),
        };
        let ticket = match self.target_ticket(m) {
            Ok(t) => t,
            Err(e) => return (close_failure(rid, None, paper::POSITION_NOT_FOUND, &e), false),
        };
        if let Some(r) = self.injected_reject("TRADE_CLOSE", &rid) {
            return (close_failure(rid, Some(ticket), r.retcode, &r.message), false);
        }
        match self.account.close(ticket, lots, now) {
            Ok(fill) => {
                info!(request_id = %rid, ticket = ticket.0, lots = %fill.lots, price = %fill.price, profit = %fill.profit,
                    "TRADE_CLOSE filled");
                let reply = json!({
                    "type": "TRADE_RESULT", "request_id": rid, "success": true, "ticket": ticket.0,
                    "price": num(fill.price), "profit": num(fill.profit), "volume": num(fill.lots),
                    "retcode": Retcode::DONE.0, "error": null, "time": iso(fill.time),
                });
                (reply, true)
            }
            Err(r) => {
                info!(request_id = %rid, ticket = ticket.0, retcode = r.retcode.0, error = %r.message, "TRADE_CLOSE rejected");
                (close_failure(rid, Some(ticket), r.retcode, &r.message), false)
            }
        }
    }

    fn trade_modify(&mut self, m: &Map<String, Value>) -> (Value, bool) {
        let rid = echo(m);
        let stops = optional_number(m, "stop_loss").and_then(|sl| Ok((sl, optional_number(m, "take_profit")?)));
        let (sl, tp) = match stops {
            Ok(s) => s,
            Err(e) => return (modify_result(rid, None, Err(&reject(paper::INVALID, e))), false),
        };
        let ticket = match self.target_ticket(m) {
            Ok(t) => t,
            Err(e) => return (modify_result(rid, None, Err(&reject(paper::POSITION_NOT_FOUND, e))), false),
        };
        if let Some(r) = self.injected_reject("TRADE_MODIFY", &rid) {
            return (modify_result(rid, None, Err(&r)), false);
        }
        match self.account.modify(ticket, sl, tp) {
            Ok(p) => {
                info!(request_id = %rid, ticket = ticket.0, sl = ?p.stop_loss, tp = ?p.take_profit, "TRADE_MODIFY done");
                (modify_result(rid, Some(&p), Ok(Retcode::DONE)), true)
            }
            Err(r) if r.retcode == paper::NO_CHANGES => {
                info!(request_id = %rid, ticket = ticket.0, "TRADE_MODIFY: the stops are already set");
                (modify_result(rid, self.account.position(ticket).as_ref(), Ok(paper::NO_CHANGES)), false)
            }
            Err(r) => {
                info!(request_id = %rid, ticket = ticket.0, retcode = r.retcode.0, error = %r.message, "TRADE_MODIFY rejected");
                (modify_result(rid, None, Err(&r)), false)
            }
        }
    }

    /// The position a close/modify names: `ticket`, else the position carrying `client_order_id`'s comment.
    fn target_ticket(&self, m: &Map<String, Value>) -> Result<Ticket, String> {
        match m.get("ticket") {
            None | Some(Value::Null) => {}
            Some(v) => {
                return decimal(v)
                    .filter(|d| d.fract().is_zero() && *d > Decimal::ZERO)
                    .and_then(|d| d.to_u64())
                    .map(Ticket)
                    .ok_or_else(|| format!("Position {v} not found"));
            }
        }
        if let Some(cid) = m.get("client_order_id").and_then(Value::as_str) {
            let comment = if cid.starts_with("NT-") { cid.to_owned() } else { format!("NT-{cid}") };
            if let Some(p) = self.account.find_by_comment(&comment).first() {
                return Ok(p.ticket);
            }
        }
        // The original connector's text for a close without a ticket.
        Err("Position None not found".to_owned())
    }
}

fn reject(retcode: Retcode, message: String) -> Reject {
    Reject { retcode, message }
}

fn parse_open(m: &Map<String, Value>, now: DateTime<Utc>) -> Result<OpenRequest, String> {
    let symbol =
        m.get("symbol").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).ok_or("symbol is required")?;
    let side = match m.get("order_type").or_else(|| m.get("action")).and_then(Value::as_str) {
        Some(s) => s.trim().to_ascii_uppercase().parse::<Side>().map_err(|()| format!("Invalid order type {s}"))?,
        None => return Err("order_type is required".into()),
    };
    let lots = optional_number(m, "lot_size")?.or(optional_number(m, "volume")?).unwrap_or(DEFAULT_VOLUME);
    let comment = m.get("comment").and_then(Value::as_str).unwrap_or("NusaTrade").to_owned();
    Ok(OpenRequest {
        symbol: symbol.to_owned(),
        side,
        lots,
        stop_loss: optional_number(m, "stop_loss")?,
        take_profit: optional_number(m, "take_profit")?,
        comment,
        time: now,
    })
}

fn optional_number(m: &Map<String, Value>, field: &str) -> Result<Option<Decimal>, String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => decimal(v).map(Some).ok_or_else(|| format!("{field} must be a number")),
    }
}

fn open_failure(rid: Value, retcode: Retcode, error: &str) -> Value {
    json!({"type": "TRADE_RESULT", "request_id": rid, "success": false, "ticket": 0, "retcode": retcode.0, "error": error})
}

fn close_failure(rid: Value, ticket: Option<Ticket>, retcode: Retcode, error: &str) -> Value {
    json!({
        "type": "TRADE_RESULT", "request_id": rid, "success": false, "ticket": ticket.map_or(0, |t| t.0),
        "price": 0.0, "retcode": retcode.0, "error": error,
    })
}

fn modify_result(rid: Value, position: Option<&PaperPosition>, outcome: Result<Retcode, &Reject>) -> Value {
    let mut v = match outcome {
        Ok(code) => {
            json!({"type": "TRADE_RESULT", "request_id": rid, "success": true, "retcode": code.0, "error": null})
        }
        Err(r) => {
            json!({"type": "TRADE_RESULT", "request_id": rid, "success": false, "retcode": r.retcode.0, "error": r.message})
        }
    };
    if let Some(p) = position {
        v["ticket"] = json!(p.ticket.0);
        v["stop_loss"] = json!(p.stop_loss.map(num));
        v["take_profit"] = json!(p.take_profit.map(num));
    }
    v
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
        "time": iso(p.open_time),
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

/// RFC 3339 UTC with milliseconds.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// RFC 3339 UTC with microseconds (history windows: a window must not start before what it claims).
fn iso_micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use nusatrade_app::connector::TradeResult;
    use nusatrade_domain::instrument::Symbol;
    use nusatrade_domain::money::Currency;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("test decimal")
    }

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + second, 0).expect("time")
    }

    fn tick(symbol: &str, bid: &str, ask: &str) -> Tick {
        Tick { symbol: Symbol::parse(symbol).expect("symbol"), bid: d(bid), ask: d(ask), time: at(0) }
    }

    fn engine() -> Engine {
        let identity =
            AccountIdentity { login: 51234567, server: "NusaTrade-Paper".into(), company: "NusaTrade".into() };
        let mut e = Engine::new(PaperAccount::new(Currency::USD, d("10000"), 100), identity);
        e.on_ticks(&[tick("EURUSD", "1.10000", "1.10015"), tick("USDJPY", "150.000", "150.015")], Instant::now());
        e
    }

    fn one(e: &mut Engine, msg: Value) -> Value {
        let r = e.handle(&msg.to_string(), at(10));
        assert_eq!(r.replies.len(), 1, "{msg} → {r:?}");
        r.replies[0].clone()
    }

    /// What the server reads from a reply.
    fn as_server(v: &Value) -> TradeResult {
        TradeResult::parse(v.as_object().expect("object")).expect("the server can read it")
    }

    fn open(e: &mut Engine, rid: &str, extra: Value) -> Value {
        let mut cmd = json!({"type": "TRADE_OPEN", "request_id": rid, "symbol": "EURUSD", "order_type": "BUY",
            "lot_size": 1.0, "comment": format!("NT-{rid}"), "client_order_id": rid});
        if let (Some(c), Value::Object(x)) = (cmd.as_object_mut(), extra) {
            c.extend(x);
        }
        one(e, cmd)
    }

    #[test]
    fn trade_open_fills_at_the_ask_and_keeps_the_comment() {
        let mut e = engine();
        let r = e.handle(
            &json!({"type": "TRADE_OPEN", "request_id": "0190a1b2-0000-7000-8000-000000000001", "symbol": "EURUSD",
                "order_type": "BUY", "lot_size": 0.5, "comment": "NT-4xQ9zK2mP7vL1nR8sT3wY6", "stop_loss": 1.09,
                "take_profit": 1.12})
            .to_string(),
            at(10),
        );
        assert!(r.traded, "the account changed");
        let v = &r.replies[0];
        assert_eq!(v["type"], "TRADE_RESULT");
        let ack = as_server(v);
        assert_eq!(ack.request_id.as_deref(), Some("0190a1b2-0000-7000-8000-000000000001"));
        assert!(ack.success && ack.error.is_none());
        assert_eq!(ack.ticket, Some(paper::DEFAULT_FIRST_TICKET));
        assert_eq!(ack.price, Some(d("1.10015")), "BUY fills at the ask, not a requested price");
        assert_eq!(ack.retcode, Some(Retcode::DONE));
        assert_eq!(ack.time, Some(at(10)));
        let p = &e.account().positions()[0];
        assert_eq!(p.comment, "NT-4xQ9zK2mP7vL1nR8sT3wY6");
        assert_eq!((p.lots, p.stop_loss, p.take_profit), (d("0.5"), Some(d("1.09")), Some(d("1.12"))));
    }

    #[test]
    fn repeated_commands_get_the_first_result_and_never_execute_twice() {
        let mut e = engine();
        let first = open(&mut e, "order-1", json!({}));
        let again = e.handle(
            &json!({"type": "TRADE_OPEN", "request_id": "order-1", "symbol": "EURUSD", "order_type": "BUY",
                "lot_size": 1.0, "comment": "NT-order-1"})
            .to_string(),
            at(20),
        );
        assert_eq!(again.replies, vec![first.clone()], "the same reply, byte for byte");
        assert!(!again.traded);
        assert_eq!(e.account().positions().len(), 1, "one fill only");
        assert_eq!(e.stats(), EngineStats { executed: 1, duplicates: 1, stops_hit: 0 });

        // A rejected command repeated is the same rejection, even when it would now succeed.
        let rejected = one(
            &mut e,
            json!({"type": "TRADE_OPEN", "request_id": "order-2", "symbol": "GBPUSD",
            "order_type": "SELL", "lot_size": 0.1, "comment": "NT-order-2"}),
        );
        assert_eq!(as_server(&rejected).retcode, Some(Retcode::PRICE_OFF), "no GBPUSD prices yet");
        e.on_ticks(&[tick("GBPUSD", "1.26000", "1.26015")], Instant::now());
        let again = one(
            &mut e,
            json!({"type": "TRADE_OPEN", "request_id": "order-2", "symbol": "GBPUSD",
            "order_type": "SELL", "lot_size": 0.1, "comment": "NT-order-2"}),
        );
        assert_eq!(again, rejected);
        assert_eq!(e.account().positions().len(), 1);

        // Closes and modifies are de-duplicated the same way.
        let ticket = first["ticket"].as_u64().expect("ticket");
        let close = json!({"type": "TRADE_CLOSE", "request_id": "order-1:close:2", "symbol": "EURUSD", "ticket": ticket,
            "lot_size": 0.5});
        let c1 = one(&mut e, close.clone());
        let c2 = one(&mut e, close);
        assert_eq!(c1, c2);
        assert_eq!(e.account().positions()[0].lots, d("0.5"), "closed half once, not twice");
    }

    #[test]
    fn a_new_request_for_an_order_already_filled_answers_with_its_position() {
        let mut e = engine();
        let first = open(&mut e, "order-1", json!({}));
        // Same order (same NT- comment), another request id: the cache cannot tell, the comment can.
        let again = open(&mut e, "order-1-resent", json!({"comment": "NT-order-1"}));
        assert_eq!(
            (again["ticket"].clone(), again["price"].clone()),
            (first["ticket"].clone(), first["price"].clone())
        );
        assert_eq!(again["success"], true);
        assert_eq!(e.account().positions().len(), 1);
        // Still true after the position closed: the opening deal is in the history.
        let ticket = first["ticket"].as_u64().expect("ticket");
        one(
            &mut e,
            json!({"type": "TRADE_CLOSE", "request_id": "c", "symbol": "EURUSD", "ticket": ticket, "lot_size": 1}),
        );
        let late = open(&mut e, "order-1-late", json!({"comment": "NT-order-1"}));
        assert_eq!(late["ticket"], first["ticket"]);
        assert!(e.account().positions().is_empty(), "not reopened");
    }

    #[test]
    fn trade_close_reports_price_and_profit() {
        let mut e = engine();
        let opened = open(&mut e, "o", json!({}));
        e.on_ticks(&[tick("EURUSD", "1.10500", "1.10515")], Instant::now());
        let r = e.handle(
            &json!({"type": "TRADE_CLOSE", "request_id": "o:close:1", "symbol": "EURUSD",
                "ticket": opened["ticket"], "lot_size": 1.0, "client_order_id": "o"})
            .to_string(),
            at(30),
        );
        assert!(r.traded);
        let ack = as_server(&r.replies[0]);
        assert!(ack.success);
        assert_eq!(ack.price, Some(d("1.105")), "BUY closes at the bid");
        assert_eq!(ack.profit, Some(d("485")), "(1.10500 − 1.10015) × 100 000");
        assert_eq!(ack.retcode, Some(Retcode::DONE));
        assert_eq!(ack.time, Some(at(30)));
        assert_eq!(e.account().account().balance, d("10485"));

        // Unknown ticket, missing ticket, too much volume.
        let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "x1", "ticket": 42, "lot_size": 1}));
        assert_eq!((v["success"].clone(), v["retcode"].clone()), (json!(false), json!(paper::POSITION_NOT_FOUND.0)));
        assert_eq!(v["error"], "Position 42 not found");
        let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "x2", "symbol": "EURUSD", "lot_size": 1}));
        assert_eq!(v["error"], "Position None not found");
        let t = open(&mut e, "p", json!({}))["ticket"].clone();
        let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "x3", "ticket": t, "lot_size": 2}));
        assert_eq!(v["retcode"], paper::INVALID_CLOSE_VOLUME.0);
        // Without a ticket, the client order id finds the position by its comment.
        let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "x4", "client_order_id": "p", "lot_size": 1}));
        assert_eq!((v["success"].clone(), v["ticket"].clone()), (json!(true), t));
    }

    #[test]
    fn trade_modify_sets_stops_and_reports_retcodes() {
        let mut e = engine();
        let t = open(&mut e, "o", json!({}))["ticket"].clone();
        let r = e.handle(
            &json!({"type": "TRADE_MODIFY", "request_id": "o:modify:1", "ticket": t, "stop_loss": 1.095,
                "take_profit": null, "action": "modify"})
            .to_string(),
            at(1),
        );
        assert!(r.traded);
        let ack = as_server(&r.replies[0]);
        assert!(ack.success);
        assert_eq!(ack.retcode, Some(Retcode::DONE));
        assert_eq!(r.replies[0]["stop_loss"], 1.095);
        assert_eq!(e.account().positions()[0].stop_loss, Some(d("1.095")));
        // The same stops again: MT5's NO_CHANGES, reported as done (the position has what was asked).
        let v =
            one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "o:modify:2", "ticket": t, "stop_loss": 1.095}));
        assert_eq!((v["success"].clone(), v["retcode"].clone()), (json!(true), json!(paper::NO_CHANGES.0)));
        // A stop loss above the bid of a BUY.
        let v = one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "o:modify:3", "ticket": t, "stop_loss": 1.2}));
        assert_eq!((v["success"].clone(), v["retcode"].clone()), (json!(false), json!(paper::INVALID_STOPS.0)));
        assert!(v["error"].as_str().is_some_and(|s| s.starts_with("Invalid stops")), "{v}");
        // 0 removes a stop.
        let v = one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "o:modify:4", "ticket": t, "stop_loss": 0}));
        assert_eq!(v["success"], true);
        assert_eq!(e.account().positions()[0].stop_loss, None);
    }

    #[test]
    fn rejections_carry_mt5_retcodes() {
        let mut e = engine();
        let cases = [
            (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.001}), paper::INVALID_VOLUME),
            (json!({"symbol": "NOPE99", "order_type": "BUY", "lot_size": 0.1}), paper::INVALID),
            (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "stop_loss": 1.2}), paper::INVALID_STOPS),
            (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 10}), Retcode::NO_MONEY),
            (json!({"symbol": "XAUUSD", "order_type": "BUY", "lot_size": 0.1}), Retcode::PRICE_OFF),
            (json!({"symbol": "EURUSD", "order_type": "HOLD", "lot_size": 0.1}), paper::INVALID),
            (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": "lots"}), paper::INVALID),
            (json!({"order_type": "BUY", "lot_size": 0.1}), paper::INVALID),
        ];
        for (i, (body, code)) in cases.into_iter().enumerate() {
            let mut cmd = body.clone();
            cmd["type"] = json!("TRADE_OPEN");
            cmd["request_id"] = json!(format!("r{i}"));
            let v = one(&mut e, cmd);
            let ack = as_server(&v);
            assert!(!ack.success, "{body}");
            assert_eq!((ack.retcode, ack.ticket), (Some(code), None), "{body} → {v}");
            assert!(ack.error.is_some(), "{body}");
        }
        assert!(e.account().positions().is_empty());
    }

    #[test]
    fn history_windows_refusals_and_lookups_for_reconciliation() {
        let mut e = engine();
        let cmd = |rid: &str, lots: f64| {
            json!({"type": "TRADE_OPEN", "request_id": rid, "symbol": "EURUSD", "order_type": "BUY",
                "lot_size": lots, "comment": format!("NT-{rid}")})
        };
        let ticket = |v: &Value| v["ticket"].as_u64().unwrap();
        let a = ticket(&e.handle(&cmd("a", 0.1).to_string(), at(10)).replies[0]);
        let b = ticket(&e.handle(&cmd("b", 0.1).to_string(), at(20)).replies[0]);
        let closed = e.handle(&json!({"type": "TRADE_CLOSE", "request_id": "c", "ticket": b}).to_string(), at(30));
        assert_eq!(closed.replies[0]["success"], true);
        let refused = e.handle(&cmd("big", 900.0).to_string(), at(40));
        assert_eq!(refused.replies[0]["success"], false, "not enough money");
        let ask = |e: &mut Engine, from: i64| {
            let m = json!({"type": "SYNC_REQUEST", "request_id": "reconcile_check_1", "history_from": iso(at(from)),
                "tickets": [a, b, 4242]});
            e.handle(&m.to_string(), at(50)).replies.remove(0)
        };
        let v = ask(&mut e, 15);
        assert_eq!(v["history_from"], at(15).to_rfc3339_opts(SecondsFormat::Micros, true), "the window asked for");
        let deals: Vec<(u64, &str)> = v["deals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["position"].as_u64().unwrap(), d["entry"].as_str().unwrap()))
            .collect();
        assert_eq!(deals, [(b, "in"), (b, "out")], "every deal since then, none before");
        assert_eq!(v["orders"].as_array().unwrap().len(), 1);
        assert_eq!((&v["orders"][0]["state"], &v["orders"][0]["comment"]), (&json!("rejected"), &json!("NT-big")));
        let lookups: Vec<&str> =
            v["lookups"].as_array().unwrap().iter().map(|l| l["status"].as_str().unwrap()).collect();
        assert_eq!(lookups, ["open", "closed", "not_found"]);
        assert_eq!(v["lookups"][1]["price"], json!(1.1));
        // What the server reads from it: a complete window, the refusal and the lookups.
        let report = nusatrade_app::connector::reports::PositionsReport::parse(
            nusatrade_app::connector::reports::ReportSource::SyncResponse,
            v.as_object().unwrap(),
        )
        .unwrap();
        assert_eq!((report.skipped, report.history.history_orders.len(), report.history.lookups.len()), (0, 1, 3));
        assert_eq!(report.history.history_from, Some(at(15)));
        // A plain SYNC_REQUEST keeps the original answer: the recent deals, no window.
        let plain = one(&mut e, json!({"type": "SYNC_REQUEST", "request_id": "s"}));
        assert!(
            plain.get("history_from").is_none()
                && plain.get("lookups").is_none()
                && plain["deals"].as_array().unwrap().len() == 3
        );

        // A restored account does not know its whole past: the window starts at the restore, nothing is "not found".
        let saved = e.saved_state(at(60));
        let identity =
            AccountIdentity { login: 51234567, server: "NusaTrade-Paper".into(), company: "NusaTrade".into() };
        let mut r = Engine::restore(saved, identity).unwrap();
        let v = ask(&mut r, 15);
        let from = DateTime::parse_from_rfc3339(v["history_from"].as_str().unwrap()).unwrap();
        assert!(from > at(60), "{v}");
        let lookups: Vec<&str> =
            v["lookups"].as_array().unwrap().iter().map(|l| l["status"].as_str().unwrap()).collect();
        assert_eq!(lookups, ["open", "closed"], "no lookup answered 'not found' without the whole history");
        assert_eq!(v["orders"], json!([]));
    }

    #[test]
    fn queries_answer_with_positions_account_and_deals() {
        let mut e = engine();
        open(&mut e, "a", json!({"stop_loss": 1.09}));
        let v = one(&mut e, json!({"type": "GET_POSITIONS", "request_id": "sync_1"}));
        assert_eq!((v["type"].clone(), v["request_id"].clone()), (json!("POSITIONS"), json!("sync_1")));
        let p = &v["data"][0];
        assert_eq!(
            (&p["type"], &p["volume"], &p["price"], &p["sl"], &p["tp"], &p["comment"], &p["profit"]),
            (&json!("BUY"), &json!(1.0), &json!(1.10015), &json!(1.09), &json!(0.0), &json!("NT-a"), &json!(-15.0))
        );
        assert!(p["ticket"].as_u64().is_some() && p["symbol"] == "EURUSD");

        let v = one(&mut e, json!({"type": "GET_ACCOUNT", "request_id": "acc"}));
        assert_eq!(v["type"], "ACCOUNT_INFO");
        assert_eq!(
            (&v["request_id"], &v["balance"], &v["equity"], &v["margin"], &v["free_margin"], &v["leverage"]),
            (&json!("acc"), &json!(10000.0), &json!(9985.0), &json!(1100.15), &json!(8884.85), &json!(100))
        );
        assert_eq!((&v["currency"], &v["login"]), (&json!("USD"), &json!(51234567)));

        let v = one(
            &mut e,
            json!({"type": "SYNC_REQUEST", "request_id": "s", "connection_id": "c-1",
            "sync_positions": true, "sync_trades": true, "sync_account": true}),
        );
        assert_eq!((&v["type"], &v["connection_id"]), (&json!("SYNC_RESPONSE"), &json!("c-1")));
        assert_eq!(v["positions"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["account"]["equity"], 9985.0);
        assert_eq!(v["deals"][0]["entry"], "in");
        assert_eq!(v["deals"][0]["comment"], "NT-a");

        let v = one(&mut e, json!({"type": "PING"}));
        assert_eq!(v["type"], "PONG");
        assert!(v["timestamp"].is_string());
    }

    #[test]
    fn server_signals_and_unknown_messages() {
        let mut e = engine();
        let r = e.handle(r#"{"type":"WELCOME","connection_id":"x","heartbeat_interval":30}"#, at(0));
        assert_eq!(r.signal, Some(Signal::Welcome { heartbeat_interval: Some(30) }));
        assert!(r.replies.is_empty());
        let r = e.handle(r#"{"type":"ERROR","error":"Unknown message type"}"#, at(0));
        assert_eq!(r.signal, Some(Signal::Error("Unknown message type".into())));
        assert!(r.replies.is_empty(), "an ERROR is never answered");
        assert_eq!(e.handle(r#"{"type":"HEARTBEAT_ACK"}"#, at(0)).signal, Some(Signal::HeartbeatAck));
        for junk in ["not json", "[1,2]", r#"{"type":"SOMETHING_NEW"}"#, r#"{"no":"type"}"#] {
            assert_eq!(e.handle(junk, at(0)), Reaction::default(), "{junk}");
        }
    }

    #[test]
    fn stop_hits_and_position_updates_are_reported() {
        let mut e = engine().with_position_update_gap(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(e.on_ticks(&[tick("EURUSD", "1.10000", "1.10015")], t0).is_empty(), "no positions, nothing to say");
        open(&mut e, "a", json!({"take_profit": 1.102}));
        open(&mut e, "b", json!({"comment": "NT-b"}));
        let out = e.on_ticks(&[tick("EURUSD", "1.10100", "1.10115")], t0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["type"], "POSITION_UPDATE");
        let p = &out[0]["positions"][0];
        assert_eq!(
            (&p["current_price"], &p["take_profit"], &p["stop_loss"]),
            (&json!(1.101), &json!(1.102), &Value::Null)
        );
        assert!(
            e.on_ticks(&[tick("EURUSD", "1.10110", "1.10125")], t0 + Duration::from_millis(500)).is_empty(),
            "throttled"
        );
        // The take profit is reached: reported at once, with the account.
        let out = e.on_ticks(&[tick("EURUSD", "1.10200", "1.10215")], t0 + Duration::from_millis(600));
        let kinds: Vec<&str> = out.iter().filter_map(|v| v["type"].as_str()).collect();
        assert_eq!(kinds, ["POSITION_UPDATE", "ACCOUNT_UPDATE"]);
        assert_eq!(out[0]["positions"].as_array().map(Vec::len), Some(1), "only b is left");
        assert_eq!(out[1]["balance"], 10185.0, "(1.10200 − 1.10015) × 100 000");
        assert_eq!(e.stats().stops_hit, 1);
        // The last position goes: one empty update, then silence.
        let b = e.account().positions()[0].ticket.0;
        one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "cb", "ticket": b}));
        let out = e.on_ticks(&[tick("EURUSD", "1.10200", "1.10215")], t0 + Duration::from_secs(2));
        assert_eq!(out[0]["positions"], json!([]));
        assert!(e.on_ticks(&[tick("EURUSD", "1.10200", "1.10215")], t0 + Duration::from_secs(4)).is_empty());
    }

    #[test]
    fn injected_rejections_are_first_results_and_nothing_executes() {
        use crate::sim::connector::faults::{FaultConfig, OPEN_REJECTS};
        let faults = Faults::new(FaultConfig { reject: 100.0, seed: 7, ..FaultConfig::default() });
        let mut e = engine().with_faults(faults);
        let r = e.handle(
            &json!({"type": "TRADE_OPEN", "request_id": "o1", "symbol": "EURUSD", "order_type": "BUY",
                "lot_size": 0.1, "comment": "NT-o1"})
            .to_string(),
            at(1),
        );
        assert!(r.executed && !r.traded);
        let ack = as_server(&r.replies[0]);
        assert!(!ack.success);
        let code = ack.retcode.expect("retcode");
        let (_, message) = OPEN_REJECTS.iter().find(|(c, _)| *c == code).expect("one of the open rejections");
        assert_eq!(ack.error.as_deref(), Some(*message));
        assert!(e.account().positions().is_empty(), "rejected instead of executed");
        // The resend gets the same rejection without a new draw, and is not counted as executed.
        let again = e.handle(
            &json!({"type": "TRADE_OPEN", "request_id": "o1", "symbol": "EURUSD", "order_type": "BUY",
                "lot_size": 0.1, "comment": "NT-o1"})
            .to_string(),
            at(2),
        );
        assert_eq!((again.replies.clone(), again.executed), (r.replies.clone(), false));
        assert_eq!(e.fault_stats().rejected, 1);
        // Closes and modifies are rejected too (an unreadable command keeps its own answer).
        let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "c1", "ticket": 100000001, "lot_size": 1}));
        assert_eq!(v["ticket"], 100000001);
        assert!([10004, 10006].contains(&v["retcode"].as_u64().unwrap_or_default()), "{v}");
        let v = one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "m1", "ticket": 100000001, "stop_loss": 1}));
        assert_eq!((v["success"].clone(), v["retcode"].clone()), (json!(false), json!(10006)));
        let v = one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "m2", "ticket": 1, "stop_loss": "x"}));
        assert_eq!(v["retcode"], paper::INVALID.0, "unreadable: no fault drawn");
        assert_eq!(e.fault_stats().rejected, 3);
    }

    #[test]
    fn changes_are_handed_out_once() {
        let mut e = engine();
        assert!(e.take_changes(at(0)).is_none(), "ticks alone change nothing worth saving");
        let first = open(&mut e, "a", json!({"take_profit": 1.102}));
        let saved = e.take_changes(at(1)).expect("a trade is a change");
        assert_eq!((saved.format.as_str(), saved.version, saved.login), (STATE_FORMAT, STATE_VERSION, 51234567));
        assert_eq!(saved.executed, vec![Executed { request_id: "a".into(), result: first.clone() }]);
        assert_eq!(saved.account.positions.len(), 1);
        assert!(e.take_changes(at(2)).is_none(), "once");
        one(&mut e, json!({"type": "PING"}));
        one(&mut e, json!({"type": "GET_POSITIONS", "request_id": "p"}));
        open(&mut e, "a", json!({}));
        assert!(e.take_changes(at(3)).is_none(), "queries and a repeated command change nothing");
        one(&mut e, json!({"type": "TRADE_OPEN", "request_id": "bad", "symbol": "NOPE99", "order_type": "BUY"}));
        assert!(e.take_changes(at(4)).is_some(), "a remembered rejection is a change");
        e.on_ticks(&[tick("EURUSD", "1.10200", "1.10215")], Instant::now());
        let saved = e.take_changes(at(5)).expect("a take profit hit is a change");
        assert!(saved.account.positions.is_empty());
        e.mark_changed();
        assert!(e.has_changes() && e.take_changes(at(6)).is_some());
    }

    #[test]
    fn a_restored_engine_keeps_positions_and_still_deduplicates() {
        let mut e = engine();
        let a = open(&mut e, "a", json!({"stop_loss": 1.09}));
        let b = open(&mut e, "b", json!({}));
        let closed = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "b:close:1", "ticket": b["ticket"]}));
        let json_text = serde_json::to_string(&e.saved_state(at(9))).expect("serialise");
        let saved: SavedState = serde_json::from_str(&json_text).expect("parse");
        let mut r = Engine::restore(saved, e.identity().clone()).expect("restore");
        assert_eq!(r.account().positions(), e.account().positions());
        assert_eq!(r.account().account(), e.account().account());
        // Resent commands: their first results, nothing executed.
        let again = r.handle(
            &json!({"type": "TRADE_OPEN", "request_id": "a", "symbol": "EURUSD", "order_type": "BUY", "lot_size": 1.0,
                "comment": "NT-a"})
            .to_string(),
            at(20),
        );
        assert_eq!((again.replies, again.executed, again.traded), (vec![a.clone()], false, false));
        assert_eq!(
            one(&mut r, json!({"type": "TRADE_CLOSE", "request_id": "b:close:1", "ticket": b["ticket"]})),
            closed
        );
        assert_eq!(r.stats().duplicates, 2);
        // A new request for an order filled before the restart: found by its comment in the restored deals.
        let late = open(&mut r, "b-resent", json!({"comment": "NT-b"}));
        assert_eq!(late["ticket"], b["ticket"]);
        assert_eq!(r.account().positions().len(), 1);
        // New orders go on from the saved ticket counter.
        let c = open(&mut r, "c", json!({}));
        assert_eq!(c["ticket"].as_u64(), b["ticket"].as_u64().map(|t| t + 1));

        // A remembered result that is not a TRADE_RESULT, or has no request id, is refused.
        let mut bad = e.saved_state(at(9));
        bad.executed[0].result = json!({"type": "PONG"});
        assert!(Engine::restore(bad, e.identity().clone()).is_err());
        let mut bad = e.saved_state(at(9));
        bad.executed[0].request_id = String::new();
        assert!(Engine::restore(bad, e.identity().clone()).is_err());
    }

    #[test]
    fn the_result_cache_forgets_the_oldest() {
        let mut c = ResultCache::new(2);
        for k in ["a", "b", "c"] {
            c.insert(k.into(), json!(k));
        }
        assert!(c.get("a").is_none());
        assert_eq!((c.get("b"), c.get("c")), (Some(&json!("b")), Some(&json!("c"))));
        c.insert("b".into(), json!("b2"));
        assert_eq!(c.order.len(), 2, "a replaced key keeps one slot");
    }
}
