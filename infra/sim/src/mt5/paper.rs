//! The paper account as an MT5 terminal: [`PaperTerminal`] answers the [`Mt5`] calls from a
//! [`PaperAccount`] (fills at its last ticks, its retcodes), so the terminal engine can be tested without a
//! terminal and the paper account is one implementation of the trait.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use nusatrade_domain::instrument::Symbol;
use nusatrade_domain::money::Side;
use nusatrade_domain::order::Ticket;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::engine::AccountIdentity;
use super::{
    AccountInfo, DEAL_ENTRY_IN, DEAL_ENTRY_OUT, DEAL_REASON_EXPERT, DEAL_REASON_SL, DEAL_REASON_TP, HistoryQuery, Mt5,
    Mt5Error, ORDER_STATE_REJECTED, ORDER_TYPE_BUY, ORDER_TYPE_SELL, OrderSendResult, PositionFilter, RETCODE_DONE,
    RETCODE_NO_CHANGES, Rate, SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC, SymbolInfo, SymbolTick, TRADE_ACTION_DEAL,
    TRADE_ACTION_SLTP, TradeDeal, TradeOrder, TradePosition, TradeRequest, decimal_of,
};
use crate::connector::faults::Faults;
use crate::connector::history::HistorySource;
use crate::paper::{self, Deal, DealEntry, DealReason, OpenRequest, PaperAccount, PaperPosition, Reject};

/// `ORDER_STATE_FILLED`.
const ORDER_STATE_FILLED: i64 = 4;
/// Order tickets of the paper terminal start here.
const FIRST_ORDER: u64 = 300_000_001;
/// How many history orders are kept (the oldest is forgotten first, and the history is complete after it only).
pub const MAX_ORDERS: usize = 1_000;

/// A paper account answering as an MT5 terminal.
#[derive(Debug)]
pub struct PaperTerminal {
    account: PaperAccount,
    identity: AccountIdentity,
    history: HistorySource,
    orders: VecDeque<TradeOrder>,
    next_order: u64,
    /// The order of each deal (`DEAL_ORDER`).
    deal_orders: HashMap<u64, u64>,
    /// Since when the history is complete ([`Mt5::history_complete_since`]).
    complete_since: DateTime<Utc>,
    /// The time of the command being handled (fills and orders are booked at it); `None`: the wall clock.
    clock: Option<DateTime<Utc>>,
    /// Injected `--reject` faults: `order_send` refuses instead of executing.
    faults: Faults,
}

impl PaperTerminal {
    /// A terminal logged in as `identity` on `account`.
    pub fn new(account: PaperAccount, identity: AccountIdentity) -> PaperTerminal {
        PaperTerminal {
            account,
            identity,
            history: HistorySource::Unavailable,
            orders: VecDeque::new(),
            next_order: FIRST_ORDER,
            deal_orders: HashMap::new(),
            complete_since: super::HISTORY_COMPLETE,
            clock: None,
            faults: Faults::default(),
        }
    }

    /// A terminal over an account restored from a state file: its older deals may be gone and its refused orders
    /// are not kept, so its history is complete from `since` on only.
    pub fn restored(account: PaperAccount, identity: AccountIdentity, since: DateTime<Utc>) -> PaperTerminal {
        PaperTerminal { complete_since: since, ..PaperTerminal::new(account, identity) }
    }

    /// Books what `order_send` does at `now` (the time of the command being handled) instead of the wall clock.
    pub fn set_clock(&mut self, now: Option<DateTime<Utc>>) {
        self.clock = now;
    }

    /// Serves `copy_rates_range` from `history`.
    pub fn set_history(&mut self, history: HistorySource) {
        self.history = history;
    }

    /// The paper account.
    pub fn account(&self) -> &PaperAccount {
        &self.account
    }

    /// The injected faults (`order_send` draws the `--reject` ones).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The injected faults, to draw the frame faults from or replace.
    pub fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.unwrap_or_else(Utc::now)
    }

    /// Serves `copy_rates_range` from `history`.
    pub fn with_history(mut self, history: HistorySource) -> PaperTerminal {
        self.history = history;
        self
    }

    /// The paper account (feed it ticks).
    pub fn account_mut(&mut self) -> &mut PaperAccount {
        &mut self.account
    }

    fn order(&mut self, kind: i64, state: i64, position: u64, symbol: &str, comment: &str) -> u64 {
        let ticket = self.next_order;
        self.next_order += 1;
        let now = self.now();
        self.orders.push_back(TradeOrder {
            ticket,
            time_setup: now.timestamp(),
            time_setup_msc: now.timestamp_millis(),
            kind,
            state,
            position_id: position,
            symbol: symbol.to_owned(),
            comment: comment.chars().take(nusatrade_domain::order::MT5_COMMENT_MAX_LEN).collect(),
        });
        if self.orders.len() > MAX_ORDERS {
            self.orders.pop_front();
            // The oldest order is forgotten: the history is complete only after it.
            if let Some(oldest) = self.orders.front() {
                let t = DateTime::from_timestamp_millis(oldest.time_setup_msc).unwrap_or_default();
                self.complete_since = self.complete_since.max(t);
            }
        }
        ticket
    }

    /// A `--reject` fault drawn for `request` (as the trade server's refusal), or `None`.
    fn injected_reject(&mut self, request: &TradeRequest) -> Option<Reject> {
        let kind = match (request.action, request.position) {
            (TRADE_ACTION_DEAL, None) => "TRADE_OPEN",
            (TRADE_ACTION_DEAL, Some(_)) => "TRADE_CLOSE",
            _ => "TRADE_MODIFY",
        };
        let r = self.faults.reject(kind)?;
        tracing::info!(kind, retcode = r.retcode.0, error = %r.message,
            "injected fault (--reject): order_send refuses instead of executing");
        Some(r)
    }

    fn deal_send(&mut self, r: &TradeRequest) -> OrderSendResult {
        let kind = r.kind.unwrap_or(ORDER_TYPE_BUY);
        let comment = r.comment.clone().unwrap_or_default();
        let volume = r.volume.unwrap_or_default();
        let now = self.now();
        if let Some(reject) = self.injected_reject(r) {
            let order = self.order(kind, ORDER_STATE_REJECTED, r.position.unwrap_or(0), &r.symbol, &comment);
            return refused(reject, order);
        }
        let outcome = match r.position {
            None => {
                let side = if kind == ORDER_TYPE_SELL { Side::Sell } else { Side::Buy };
                let request = OpenRequest {
                    symbol: r.symbol.clone(),
                    side,
                    lots: volume,
                    stop_loss: r.sl,
                    take_profit: r.tp,
                    comment: comment.clone(),
                    time: now,
                };
                self.account.open(request).map(|f| (f.ticket, f.deal, volume, f.price))
            }
            Some(position) => {
                self.account.close(Ticket(position), Some(volume), now).map(|f| (f.ticket, f.deal, f.lots, f.price))
            }
        };
        match outcome {
            Ok((position, deal, volume, price)) => {
                let order = self.order(kind, ORDER_STATE_FILLED, position.0, &r.symbol, &comment);
                self.deal_orders.insert(deal.0, order);
                OrderSendResult {
                    retcode: RETCODE_DONE,
                    deal: deal.0,
                    order,
                    volume,
                    price,
                    comment: "Request executed".into(),
                }
            }
            Err(reject) => {
                let order = self.order(kind, ORDER_STATE_REJECTED, r.position.unwrap_or(0), &r.symbol, &comment);
                refused(reject, order)
            }
        }
    }
}

fn refused(reject: Reject, order: u64) -> OrderSendResult {
    OrderSendResult {
        retcode: reject.retcode.0,
        deal: 0,
        order,
        volume: Decimal::ZERO,
        price: Decimal::ZERO,
        comment: reject.message,
    }
}

fn position_row(p: &PaperPosition) -> TradePosition {
    TradePosition {
        ticket: p.ticket.0,
        time: p.open_time.timestamp(),
        time_msc: p.open_time.timestamp_millis(),
        kind: if p.side == Side::Sell { ORDER_TYPE_SELL } else { ORDER_TYPE_BUY },
        magic: 0,
        volume: p.lots,
        price_open: p.open_price,
        sl: p.stop_loss.unwrap_or_default(),
        tp: p.take_profit.unwrap_or_default(),
        price_current: p.current_price,
        profit: p.profit,
        symbol: p.symbol.as_str().to_owned(),
        comment: p.comment.clone(),
    }
}

fn deal_row(d: &Deal, orders: &HashMap<u64, u64>) -> TradeDeal {
    TradeDeal {
        ticket: d.ticket.0,
        order: orders.get(&d.ticket.0).copied().unwrap_or(d.ticket.0),
        time: d.time.timestamp(),
        time_msc: d.time.timestamp_millis(),
        kind: if d.side == Side::Sell { ORDER_TYPE_SELL } else { ORDER_TYPE_BUY },
        entry: if d.entry == DealEntry::In { DEAL_ENTRY_IN } else { DEAL_ENTRY_OUT },
        magic: 0,
        position_id: d.position.0,
        reason: match d.reason {
            DealReason::Client => DEAL_REASON_EXPERT,
            DealReason::StopLoss => DEAL_REASON_SL,
            DealReason::TakeProfit => DEAL_REASON_TP,
        },
        volume: d.lots,
        price: d.price,
        profit: d.profit,
        symbol: d.symbol.as_str().to_owned(),
        comment: d.comment.clone(),
    }
}

impl Mt5 for PaperTerminal {
    async fn account_info(&mut self) -> Result<AccountInfo, Mt5Error> {
        let a = self.account.account();
        Ok(AccountInfo {
            login: self.identity.login,
            server: self.identity.server.clone(),
            company: self.identity.company.clone(),
            currency: a.currency.as_str().to_owned(),
            leverage: a.leverage,
            balance: a.balance,
            equity: a.equity,
            margin: a.margin,
            margin_free: a.free_margin,
            margin_level: a.margin_level.unwrap_or_default(),
            profit: a.profit,
        })
    }

    async fn symbols_get(&mut self) -> Result<Vec<String>, Mt5Error> {
        Ok(nusatrade_domain::instrument::INSTRUMENTS.iter().map(|i| i.symbol.to_owned()).collect())
    }

    async fn symbol_info(&mut self, symbol: &str) -> Result<Option<SymbolInfo>, Mt5Error> {
        Ok(Symbol::parse(symbol).ok().map(|s| SymbolInfo {
            name: s.as_str().to_owned(),
            visible: true,
            digits: s.instrument().digits,
            filling_mode: SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC,
        }))
    }

    async fn symbol_select(&mut self, symbol: &str) -> Result<bool, Mt5Error> {
        Ok(Symbol::parse(symbol).is_ok())
    }

    async fn symbol_info_tick(&mut self, symbol: &str) -> Result<Option<SymbolTick>, Mt5Error> {
        let Ok(s) = Symbol::parse(symbol) else { return Ok(None) };
        Ok(self.account.last_tick(s).map(|t| SymbolTick { time: t.time.timestamp(), bid: t.bid, ask: t.ask }))
    }

    async fn positions_get(&mut self, filter: PositionFilter) -> Result<Vec<TradePosition>, Mt5Error> {
        Ok(match filter {
            PositionFilter::All => self.account.positions().iter().map(position_row).collect(),
            PositionFilter::Ticket(t) => self.account.position(Ticket(t)).iter().map(position_row).collect(),
        })
    }

    async fn history_deals_get(&mut self, query: HistoryQuery) -> Result<Vec<TradeDeal>, Mt5Error> {
        let rows = self.account.history().iter().map(|d| deal_row(d, &self.deal_orders));
        Ok(match query {
            HistoryQuery::Range(from, to) => {
                rows.filter(|d| (from.timestamp_millis()..=to.timestamp_millis()).contains(&d.time_msc)).collect()
            }
            HistoryQuery::Order(t) => rows.filter(|d| d.order == t).collect(),
            HistoryQuery::Position(p) => rows.filter(|d| d.position_id == p).collect(),
        })
    }

    async fn history_orders_get(&mut self, query: HistoryQuery) -> Result<Vec<TradeOrder>, Mt5Error> {
        let orders = self.orders.iter();
        Ok(match query {
            HistoryQuery::Range(from, to) => orders
                .filter(|o| (from.timestamp_millis()..=to.timestamp_millis()).contains(&o.time_setup_msc))
                .cloned()
                .collect(),
            HistoryQuery::Order(t) => orders.filter(|o| o.ticket == t).cloned().collect(),
            HistoryQuery::Position(p) => orders.filter(|o| o.position_id == p).cloned().collect(),
        })
    }

    async fn order_send(&mut self, request: TradeRequest) -> Result<OrderSendResult, Mt5Error> {
        match request.action {
            TRADE_ACTION_DEAL => Ok(self.deal_send(&request)),
            TRADE_ACTION_SLTP => {
                if let Some(r) = self.injected_reject(&request) {
                    return Ok(refused(r, 0));
                }
                let ticket = Ticket(request.position.unwrap_or(0));
                Ok(match self.account.modify(ticket, request.sl, request.tp) {
                    Ok(_) => OrderSendResult {
                        retcode: RETCODE_DONE,
                        deal: 0,
                        order: 0,
                        volume: Decimal::ZERO,
                        price: Decimal::ZERO,
                        comment: "Request executed".into(),
                    },
                    Err(r) if r.retcode == paper::NO_CHANGES => OrderSendResult {
                        retcode: RETCODE_NO_CHANGES,
                        deal: 0,
                        order: 0,
                        volume: Decimal::ZERO,
                        price: Decimal::ZERO,
                        comment: r.message,
                    },
                    Err(r) => refused(r, 0),
                })
            }
            other => {
                Ok(refused(Reject { retcode: paper::INVALID, message: format!("Unsupported trade action {other}") }, 0))
            }
        }
    }

    async fn copy_rates_range(
        &mut self,
        symbol: &str,
        timeframe: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rate>, Mt5Error> {
        let ask = json!({"type": "HISTORY_REQUEST", "symbol": symbol, "timeframe": timeframe,
            "start": from.to_rfc3339(), "end": to.to_rfc3339()});
        let Value::Object(m) = ask else { return Ok(Vec::new()) };
        let answer = self.history.answer(&m);
        let Some(candles) = answer.get("candles").and_then(Value::as_array) else {
            let error = answer.get("error").and_then(Value::as_str).unwrap_or("no history").to_owned();
            return Err(Mt5Error::Terminal { code: -1, message: error });
        };
        let dec = |v: &Value| v.as_f64().and_then(decimal_of).unwrap_or_default();
        Ok(candles
            .iter()
            .filter_map(Value::as_array)
            .filter(|c| c.len() >= 6)
            .map(|c| Rate {
                time: c[0].as_i64().unwrap_or_default(),
                open: dec(&c[1]),
                high: dec(&c[2]),
                low: dec(&c[3]),
                close: dec(&c[4]),
                tick_volume: c[5].as_f64().map_or(0, |v| v as u64),
            })
            .collect())
    }

    fn history_complete_since(&self) -> Option<DateTime<Utc>> {
        Some(self.complete_since)
    }

    fn refused_before_send(&mut self, request: &TradeRequest, _retcode: u32, _message: &str) {
        let (kind, comment) = (request.kind.unwrap_or(ORDER_TYPE_BUY), request.comment.clone().unwrap_or_default());
        self.order(kind, ORDER_STATE_REJECTED, 0, &request.symbol, &comment);
    }
}
