//! The simulated connector's message handler: server frames in, connector frames out, against a
//! [`PaperAccount`]. No I/O: the network loop ([`super::SimConnector`]) feeds it text frames and ticks and sends
//! what it returns, so every command can be tested without a socket.
//!
//! The protocol logic is written once, in [`TerminalEngine`]: [`Engine`] is that engine over the paper account as
//! an MT5 terminal ([`PaperTerminal`]), plus what only a paper account has — the ticks that move it (a stop hit is
//! reported at once), its state file and the `--reject` faults (drawn by the paper terminal's `order_send`). The
//! paper terminal knows its account's whole history ([`Mt5::history_complete_since`](crate::mt5::Mt5)), so its
//! lookups may answer `not_found`, and it lists every refused open among its rejected history orders.
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

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::faults::{FaultStats, Faults};
use super::history::HistorySource;
use super::state::{STATE_FORMAT, STATE_VERSION, SavedState};
use crate::feed::Tick;
use crate::mt5::engine::TerminalEngine;
use crate::mt5::paper::PaperTerminal;
use crate::paper::{ClosedPosition, DealReason, PaperAccount};

// The protocol-level types and limits live with the protocol engine (`crate::mt5::engine`); re-exported here for
// the paper connector's users.
pub use crate::mt5::engine::{
    AccountIdentity, DEDUP_CAPACITY, DEFAULT_POSITION_UPDATE_GAP, EngineStats, MAX_SAVED_DEALS, MAX_SYNC_DEALS,
    MAX_SYNC_ORDERS, Reaction, Signal, iso_millis, num,
};

/// The paper connector's handler: the terminal engine ([`TerminalEngine`]) over the paper account
/// ([`PaperTerminal`]), plus what only a paper account has: the ticks that move it (stop hits reported at once),
/// its saved state and the injected faults. The paper terminal never waits, so its calls complete at once.
#[derive(Debug)]
pub struct Engine {
    inner: TerminalEngine<PaperTerminal>,
    identity: AccountIdentity,
    position_update_gap: Duration,
    last_position_update: Option<Instant>,
    reported_positions: bool,
    stops_hit: u64,
    changed: bool,
}

/// Runs a paper terminal call: it never waits.
fn now_or_never<F: Future>(f: F) -> Option<F::Output> {
    futures::FutureExt::now_or_never(Box::pin(f))
}

impl Engine {
    /// An engine over `account`, reporting as `identity`.
    pub fn new(account: PaperAccount, identity: AccountIdentity) -> Engine {
        Engine::over(PaperTerminal::new(account, identity.clone()), identity)
    }

    fn over(terminal: PaperTerminal, identity: AccountIdentity) -> Engine {
        Engine {
            inner: TerminalEngine::new(terminal).with_connected(),
            identity,
            position_update_gap: DEFAULT_POSITION_UPDATE_GAP,
            last_position_update: None,
            reported_positions: false,
            stops_hit: 0,
            changed: false,
        }
    }

    /// Answers `HISTORY_REQUEST`s from `source`.
    pub fn with_history(mut self, source: HistorySource) -> Engine {
        self.inner.terminal().set_history(source);
        self
    }

    /// The engine a saved state describes (its account and remembered results), reporting as `identity`. The
    /// caller checks that the state is this identity's; the account is checked for consistency here.
    pub fn restore(saved: SavedState, identity: AccountIdentity) -> Result<Engine, String> {
        let account = PaperAccount::restore(saved.account)?;
        for e in &saved.executed {
            if e.request_id.is_empty() {
                return Err("a remembered result without a request id".into());
            }
            if e.result.get("type").and_then(Value::as_str) != Some("TRADE_RESULT") {
                return Err(format!("the remembered result of {} is not a TRADE_RESULT", e.request_id));
            }
        }
        // Older deals may have been dropped from the state, and refusals are not kept: complete from now on.
        let terminal = PaperTerminal::restored(account, identity.clone(), Utc::now());
        let mut engine = Engine::over(terminal, identity);
        engine.inner.restore(saved.executed);
        Ok(engine)
    }

    /// Injects `faults` (see [`Faults`]).
    pub fn with_faults(mut self, faults: Faults) -> Engine {
        *self.inner.terminal().faults_mut() = faults;
        self
    }

    /// The fault decisions (the network loop asks them what to do with each `TRADE_RESULT` frame).
    pub fn faults_mut(&mut self) -> &mut Faults {
        self.inner.terminal().faults_mut()
    }

    /// What was injected so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.inner.terminal_ref().faults().stats()
    }

    /// The account, the remembered results (oldest first) and who the account is, as saved at `now`.
    pub fn saved_state(&self, now: DateTime<Utc>) -> SavedState {
        SavedState {
            format: STATE_FORMAT.to_owned(),
            version: STATE_VERSION,
            saved_at: now,
            login: self.identity.login,
            server: self.identity.server.clone(),
            account: self.account().snapshot(MAX_SAVED_DEALS),
            executed: self.inner.executed(),
        }
    }

    /// [`saved_state`](Self::saved_state) if something changed since the last call, once.
    pub fn take_changes(&mut self, now: DateTime<Utc>) -> Option<SavedState> {
        if !self.has_changes() {
            return None;
        }
        self.changed = false;
        let _ = self.inner.take_changes(&self.identity, now);
        Some(self.saved_state(now))
    }

    /// Marks the state as changed again (its save failed: the next change retries it).
    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// Whether something changed since the last [`take_changes`](Self::take_changes).
    pub fn has_changes(&self) -> bool {
        self.changed || self.inner.has_changes()
    }

    /// Sets the minimum gap between two routine `POSITION_UPDATE`s (stop hits are reported at once).
    pub fn with_position_update_gap(mut self, gap: Duration) -> Engine {
        self.position_update_gap = gap;
        self
    }

    /// The paper account.
    pub fn account(&self) -> &PaperAccount {
        self.inner.terminal_ref().account()
    }

    /// Who the account is.
    pub fn identity(&self) -> &AccountIdentity {
        &self.identity
    }

    /// What the engine did so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats { stops_hit: self.stops_hit, ..self.inner.stats() }
    }

    /// Handles one text frame from the server at `now` (fills are booked at `now`).
    pub fn handle(&mut self, text: &str, now: DateTime<Utc>) -> Reaction {
        self.inner.terminal().set_clock(Some(now));
        let reaction = now_or_never(self.inner.handle(text, now));
        self.inner.terminal().set_clock(None);
        let Some(reaction) = reaction else {
            warn!("the paper terminal waited: frame not handled");
            return Reaction::default();
        };
        self.changed |= reaction.traded;
        reaction
    }

    /// Feeds ticks (in order) to the paper account and returns what to report: after a stop loss or take profit
    /// closed a position, `POSITION_UPDATE` and `ACCOUNT_UPDATE` at once; otherwise a `POSITION_UPDATE` with
    /// the current prices when positions are open (or just went to none) and the last one is at least the
    /// configured gap old.
    pub fn on_ticks(&mut self, ticks: &[Tick], at: Instant) -> Vec<Value> {
        let mut closed: Vec<ClosedPosition> = Vec::new();
        for tick in ticks {
            closed.extend(self.inner.terminal().account_mut().on_tick(*tick));
        }
        for c in &closed {
            self.stops_hit += 1;
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
        let open = !self.account().positions().is_empty();
        let due = self.last_position_update.is_none_or(|l| at.saturating_duration_since(l) >= self.position_update_gap);
        if (open || self.reported_positions) && due { vec![self.position_update(at)] } else { Vec::new() }
    }

    /// `POSITION_UPDATE {positions: [{ticket, symbol, order_type, volume, open_price, current_price, stop_loss,
    /// take_profit, profit, comment}], timestamp}` (contract §3.2.1); records it as sent at `at`.
    pub fn position_update(&mut self, at: Instant) -> Value {
        let v = now_or_never(self.inner.position_update(at)).and_then(Result::ok).unwrap_or_else(
            || json!({"type": "POSITION_UPDATE", "positions": [], "timestamp": iso_millis(Utc::now())}),
        );
        self.reported_positions = v["positions"].as_array().is_some_and(|p| !p.is_empty());
        self.last_position_update = Some(at);
        v
    }

    /// `ACCOUNT_UPDATE` / `ACCOUNT_INFO`: `{balance, equity, margin, free_margin, profit, leverage, currency,
    /// margin_level, login, server, company}`, with `request_id` when answering a request.
    pub fn account_message(&mut self, kind: &str, request_id: Option<Value>) -> Value {
        now_or_never(self.inner.account_message(kind, request_id)).and_then(Result::ok).unwrap_or(Value::Null)
    }

    /// `MT5_STATUS {connected: true, broker_name, account_number, server}`.
    pub fn mt5_status(&self) -> Value {
        self.inner.mt5_status(&self.identity)
    }
}

#[cfg(test)]
mod tests;
