//! The trade commands of the [`Engine`]: `TRADE_OPEN`, `TRADE_CLOSE` and `TRADE_MODIFY`, remembered by
//! `request_id` so a repeated command is answered with its first result and never executed twice, and the
//! `--reject` faults injected in their place.

use chrono::{DateTime, Utc};
use nusatrade_app::connector::protocol::decimal;
use nusatrade_domain::money::Side;
use nusatrade_domain::order::{Retcode, Ticket};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::{DEFAULT_VOLUME, Engine, MAX_REFUSED, Reaction, RefusedOrder, echo, iso_millis, num};
use crate::paper::{self, DealEntry, OpenRequest, PaperPosition, Reject};

impl Engine {
    pub(super) fn trade_command(&mut self, kind: &str, m: &Map<String, Value>, now: DateTime<Utc>) -> Reaction {
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
                "retcode": Retcode::DONE.0, "error": null, "time": iso_millis(time),
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
                    "price": num(fill.price), "retcode": Retcode::DONE.0, "error": null, "time": iso_millis(fill.time),
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
                    "retcode": Retcode::DONE.0, "error": null, "time": iso_millis(fill.time),
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
