//! The model of truth behind the fault matrix: a simulated MT5 account (positions with tickets, deals) and the
//! connector in front of it, of two kinds — full capabilities, and the original NusaTrade connector's behaviour.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use nusatrade_domain::order::RequestId;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::wire::{iso, num};

/// What the connector in front of MT5 can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnectorKind {
    /// States (and honours) de-duplication by request id, complete reports with comments, deals and lookups, fill
    /// details in acks.
    Full,
    /// The original NusaTrade connector: states nothing, executes every command it gets, answers `ERROR` to a
    /// snapshot request while MT5 holds any position, reports without comments, deals or lookups.
    Original,
}

impl ConnectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Full => "full",
            ConnectorKind::Original => "original",
        }
    }

    /// The `AUTH` frame it sends on a new socket.
    pub fn auth(self) -> Value {
        let mut auth = json!({"type": "AUTH", "token": "fault-matrix", "client_type": "connector",
            "timestamp": "2026-01-05T10:00:00.000000"});
        if self == ConnectorKind::Full {
            auth["capabilities"] = json!([
                "dedupe_request_id",
                "report_positions",
                "report_comments",
                "history_lookups",
                "ack_fill_details"
            ]);
        }
        auth
    }
}

/// The error the original connector answers a snapshot request with while MT5 holds a position.
pub const ORIGINAL_REPORT_ERROR: &str = "'PositionInfo' object has no attribute 'type'";

#[derive(Clone, Debug)]
pub struct Position {
    pub ticket: u64,
    pub side: &'static str,
    pub volume: Decimal,
    pub open_price: Decimal,
    pub sl: Option<Decimal>,
    pub tp: Option<Decimal>,
    pub comment: String,
    pub open_time: DateTime<Utc>,
    /// The order whose `TRADE_OPEN` made it (`None`: a manual trade).
    pub order: Option<Uuid>,
}

#[derive(Clone, Debug)]
pub struct Deal {
    pub ticket: u64,
    pub position: u64,
    pub side: &'static str,
    pub entry: &'static str,
    pub volume: Decimal,
    pub price: Decimal,
    pub profit: Decimal,
    pub time: DateTime<Utc>,
    pub reason: &'static str,
    pub comment: String,
}

/// The MT5 account: the truth the books are compared with.
#[derive(Debug, Default)]
pub struct Mt5 {
    last_ticket: u64,
    pub positions: BTreeMap<u64, Position>,
    pub deals: Vec<Deal>,
    /// Every ticket MT5 ever made.
    pub tickets: HashSet<u64>,
    /// Order id → tickets its `TRADE_OPEN`s made (more than one is a doubled fill).
    pub opens: HashMap<Uuid, Vec<u64>>,
    /// Request id → the first result (what a de-duplicating connector answers a repeat with; the real one finds
    /// the `NT-` comment in MT5, so it survives restarts).
    results: HashMap<String, Value>,
    /// Trade commands executed (not answered from memory).
    pub executions: u64,
}

pub const PRICE: &str = "1.0850";

fn price() -> Decimal {
    PRICE.parse().unwrap_or_default()
}

impl Mt5 {
    fn ticket(&mut self) -> u64 {
        self.last_ticket = self.last_ticket.max(700_000_000) + 1;
        self.tickets.insert(self.last_ticket);
        self.last_ticket
    }

    /// Executes a trade command as MT5 would and returns the `TRADE_RESULT` the connector sends (`None`: not a trade
    /// command). `dedupe`: a repeated request id is answered with its first result, not executed again. `fails`: MT5
    /// refuses an open (no money).
    pub fn execute(&mut self, v: &Value, kind: ConnectorKind, now: DateTime<Utc>, fails: bool) -> Option<Value> {
        let frame = v["type"].as_str()?;
        if !matches!(frame, "TRADE_OPEN" | "TRADE_CLOSE" | "TRADE_MODIFY") {
            return None;
        }
        let rid = v["request_id"].as_str().unwrap_or_default().to_owned();
        if kind == ConnectorKind::Full
            && let Some(first) = self.results.get(&rid)
        {
            return Some(first.clone());
        }
        self.executions += 1;
        let full = kind == ConnectorKind::Full;
        let result = match frame {
            "TRADE_OPEN" if fails => json!({"type": "TRADE_RESULT", "request_id": rid, "success": false,
                "retcode": 10019, "error": "No money"}),
            "TRADE_OPEN" => {
                let ticket = self.ticket();
                let order = rid.parse::<RequestId>().ok().map(|r| r.order_id);
                if let Some(o) = order {
                    self.opens.entry(o).or_default().push(ticket);
                }
                let side = if v["order_type"] == "SELL" || v["order_type"] == "sell" { "SELL" } else { "BUY" };
                let volume = v["lot_size"].as_f64().and_then(|f| Decimal::try_from(f).ok()).unwrap_or(Decimal::ONE);
                let comment = v["comment"].as_str().unwrap_or_default().to_owned();
                let sl = v["stop_loss"].as_f64().and_then(|f| Decimal::try_from(f).ok());
                let tp = v["take_profit"].as_f64().and_then(|f| Decimal::try_from(f).ok());
                self.positions.insert(
                    ticket,
                    Position {
                        ticket,
                        side,
                        volume,
                        open_price: price(),
                        sl,
                        tp,
                        comment: comment.clone(),
                        open_time: now,
                        order,
                    },
                );
                let deal = self.ticket();
                self.deals.push(Deal {
                    ticket: deal,
                    position: ticket,
                    side,
                    entry: "in",
                    volume,
                    price: price(),
                    profit: Decimal::ZERO,
                    time: now,
                    reason: "client",
                    comment,
                });
                if full {
                    json!({"type": "TRADE_RESULT", "request_id": rid, "success": true, "ticket": ticket,
                        "price": num(price()), "volume": num(volume), "retcode": 10009, "time": iso(now), "error": null})
                } else {
                    json!({"type": "TRADE_RESULT", "request_id": rid, "success": true, "ticket": ticket, "error": null})
                }
            }
            "TRADE_CLOSE" => {
                let ticket = v["ticket"].as_u64().unwrap_or_default();
                match self.close(ticket, now, "client") {
                    // The original's close ack: `{request_id, success, price, error}`.
                    Some(d) if !full => json!({"type": "TRADE_RESULT", "request_id": rid, "success": true,
                        "price": num(d.price), "error": null}),
                    Some(d) => json!({"type": "TRADE_RESULT", "request_id": rid, "success": true,
                        "price": num(d.price), "profit": num(d.profit), "time": iso(d.time), "error": null}),
                    None => json!({"type": "TRADE_RESULT", "request_id": rid, "success": false, "price": 0.0,
                        "error": format!("Position {ticket} not found")}),
                }
            }
            _ => {
                let ticket = v["ticket"].as_u64().unwrap_or_default();
                match self.positions.get_mut(&ticket) {
                    Some(p) => {
                        if let Some(sl) = v["stop_loss"].as_f64().and_then(|f| Decimal::try_from(f).ok()) {
                            p.sl = Some(sl).filter(|s| !s.is_zero());
                        }
                        if let Some(tp) = v["take_profit"].as_f64().and_then(|f| Decimal::try_from(f).ok()) {
                            p.tp = Some(tp).filter(|t| !t.is_zero());
                        }
                        json!({"type": "TRADE_RESULT", "request_id": rid, "success": true, "error": null})
                    }
                    None => json!({"type": "TRADE_RESULT", "request_id": rid, "success": false,
                        "error": format!("Position {ticket} not found")}),
                }
            }
        };
        if full {
            self.results.insert(rid, result.clone());
        }
        Some(result)
    }

    /// Closes a position (our close, a stop loss, a stop-out): the closing deal.
    pub fn close(&mut self, ticket: u64, now: DateTime<Utc>, reason: &'static str) -> Option<Deal> {
        let p = self.positions.remove(&ticket)?;
        let close_price = price() + Decimal::new(7, 4);
        let sign = if p.side == "BUY" { Decimal::ONE } else { -Decimal::ONE };
        let profit = ((close_price - p.open_price) * p.volume * Decimal::from(100_000) * sign).round_dp(2);
        let deal = Deal {
            ticket: self.ticket(),
            position: ticket,
            side: if p.side == "BUY" { "SELL" } else { "BUY" },
            entry: "out",
            volume: p.volume,
            price: close_price,
            profit,
            time: now,
            reason,
            comment: p.comment,
        };
        self.deals.push(deal.clone());
        Some(deal)
    }

    /// A trade made in the terminal by hand: a position no order of ours opened.
    pub fn manual_trade(&mut self, now: DateTime<Utc>, sell: bool) -> u64 {
        let ticket = self.ticket();
        let side = if sell { "SELL" } else { "BUY" };
        self.positions.insert(
            ticket,
            Position {
                ticket,
                side,
                volume: Decimal::new(1, 1),
                open_price: price(),
                sl: None,
                tp: None,
                comment: String::new(),
                open_time: now,
                order: None,
            },
        );
        let deal = self.ticket();
        self.deals.push(Deal {
            ticket: deal,
            position: ticket,
            side,
            entry: "in",
            volume: Decimal::new(1, 1),
            price: price(),
            profit: Decimal::ZERO,
            time: now,
            reason: "client",
            comment: String::new(),
        });
        ticket
    }

    fn position_json(p: &Position, comments: bool) -> Value {
        let mut v = json!({
            "ticket": p.ticket, "symbol": "EURUSD", "type": p.side, "volume": num(p.volume),
            "price": num(p.open_price), "price_current": num(p.open_price), "profit": 0.0,
            "sl": num(p.sl.unwrap_or_default()), "tp": num(p.tp.unwrap_or_default()), "time": iso(p.open_time),
        });
        if comments {
            v["comment"] = json!(p.comment);
        }
        v
    }

    fn account() -> Value {
        json!({"balance": 100000.0, "equity": 100000.0, "margin": 0.0, "free_margin": 100000.0, "profit": 0.0,
            "leverage": 100, "currency": "USD"})
    }

    /// The connector's answer to a request that is not a trade command (`None`: no answer).
    pub fn answer(&self, v: &Value, kind: ConnectorKind) -> Option<Value> {
        let rid = v.get("request_id").cloned().unwrap_or(Value::Null);
        let full = kind == ConnectorKind::Full;
        match v["type"].as_str()? {
            "PING" => Some(json!({"type": "PONG", "timestamp": "2026-01-05T10:00:00.000"})),
            "GET_ACCOUNT" => {
                let mut a = Self::account();
                a["type"] = json!("ACCOUNT_INFO");
                a["request_id"] = rid;
                Some(a)
            }
            // Its handler's exception, as the original sends any: `{type, error}`, no request id.
            "GET_POSITIONS" | "SYNC_REQUEST" if !full && !self.positions.is_empty() => {
                Some(json!({"type": "ERROR", "error": ORIGINAL_REPORT_ERROR}))
            }
            "GET_POSITIONS" => {
                let data: Vec<Value> = self.positions.values().map(|p| Self::position_json(p, full)).collect();
                Some(json!({"type": "POSITIONS", "request_id": rid, "data": data}))
            }
            "SYNC_REQUEST" => {
                let positions: Vec<Value> = self.positions.values().map(|p| Self::position_json(p, full)).collect();
                let mut r = json!({"type": "SYNC_RESPONSE", "request_id": rid, "positions": positions,
                    "account": Self::account()});
                if !full {
                    return Some(r);
                }
                let from = v["history_from"]
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc));
                if let Some(from) = from {
                    let deals: Vec<Value> = self
                        .deals
                        .iter()
                        .filter(|d| d.time >= from)
                        .map(|d| {
                            json!({"ticket": d.ticket, "position": d.position, "symbol": "EURUSD", "type": d.side,
                                "entry": d.entry, "volume": num(d.volume), "price": num(d.price),
                                "profit": num(d.profit), "time": iso(d.time), "reason": d.reason,
                                "comment": d.comment})
                        })
                        .collect();
                    r["deals"] = json!(deals);
                    r["history_from"] = json!(iso(from));
                    r["orders"] = json!([]);
                }
                if let Some(tickets) = v["tickets"].as_array() {
                    let lookups: Vec<Value> =
                        tickets.iter().filter_map(Value::as_u64).map(|t| self.lookup(t)).collect();
                    r["lookups"] = json!(lookups);
                }
                Some(r)
            }
            _ => None,
        }
    }

    fn lookup(&self, ticket: u64) -> Value {
        if self.positions.contains_key(&ticket) {
            return json!({"ticket": ticket, "status": "open"});
        }
        match self.deals.iter().rev().find(|d| d.position == ticket && d.entry == "out") {
            Some(d) => json!({"ticket": ticket, "status": "closed", "price": num(d.price), "time": iso(d.time)}),
            None => json!({"ticket": ticket, "status": "not_found"}),
        }
    }
}

/// The connector process: its socket, the frames the server pushed to it not handled yet, and what it is about to
/// send (held back until the harness delivers it — delays, reorders, drops and duplicates happen there).
#[derive(Debug)]
pub struct Connector {
    pub kind: ConnectorKind,
    /// The socket it is connected on (`None`: link down).
    pub ws: Option<String>,
    pub inbox: VecDeque<Value>,
    pub outgoing: VecDeque<Value>,
}

impl Connector {
    pub fn new(kind: ConnectorKind) -> Self {
        Connector { kind, ws: None, inbox: VecDeque::new(), outgoing: VecDeque::new() }
    }

    /// The link breaks: what was in flight either way is lost.
    pub fn cut(&mut self) -> Option<String> {
        self.inbox.clear();
        self.outgoing.clear();
        self.ws.take()
    }
}
