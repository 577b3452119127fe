//! The two WebSocket APIs as [`WsHandler`]s (contract §3.2, §3.3; design §5), shared by the Lambda
//! WebSocket functions and the local gateway:
//!
//! * [`ConnectorChannel`] (`/connector/ws?token=…&connection_id=…`): `$connect` verifies an *access*
//!   token with a live session and that the broker connection belongs to the token's user (401/403
//!   before the upgrade otherwise), then records the link with the token's session. Every later message is
//!   checked against that session first: a revoked or expired session's socket is refused (`ERROR` with
//!   `code: SESSION_REVOKED`), closed, and nothing it sent is applied ([`crate::auth::sockets`]). An expired access
//!   token is refused at the handshake even while its session lives (it travels in the URL). Every frame is parsed once into a
//!   [`ConnectorMessage`]; invalid JSON and unknown types get the original's `ERROR` reply.
//! * [`BrowserChannel`](super::browser::BrowserChannel) (`/connector/client?token=…`), in [`super::browser`].
//!
//! **First contact.** API Gateway cannot post from `$connect`, so what the original sent on accept goes out
//! on the connection's first message (the `AUTH` the original connector always sends, or anything else):
//! `WELCOME` (with `heartbeat_interval`), then the [outbox](crate::connector::outbox) — trade commands sent before a
//! reconnect and not acknowledged yet, in order, as far as the delivery rules allow — then a full re-sync
//! (`GET_POSITIONS`, `GET_ACCOUNT`); the user's dashboards get a fresh `CONNECTIONS_STATUS`. "First" is decided by a
//! conditional write on the connection record, so it happens once whichever function instance gets the message.
//! These frames are pushed (not returned as the route response), so they arrive in this order on both platforms.
//!
//! **Capabilities and delivery rules** (design §5b): the `AUTH` frame states what the connector can do
//! ([`crate::connector::capabilities`]); they are recorded with the connection before the first contact is handled,
//! so the outbox is resent by them. A first message that is not `AUTH` (or an `AUTH` stating nothing: the original
//! connector) means no capabilities. Per command kind ([`redelivery`]): an unacknowledged `TRADE_OPEN` is resent only
//! to a connector with `dedupe_request_id`; to any other its order becomes `unknown` (`OpenTimedOut`), the entry is
//! dropped, and the order waits for evidence (a late ack, reconciliation) — a second `TRADE_OPEN` would be a second
//! fill. `TRADE_CLOSE` (whole position, by ticket) and `TRADE_MODIFY` (absolute SL/TP) are harmless to repeat and are
//! resent to every connector.
//!
//! **Inbound messages**:
//!
//! | message | what happens |
//! |---|---|
//! | `AUTH` | capabilities recorded; `WELCOME` (first contact above; a repeated `AUTH` gets `WELCOME` again) |
//! | `HEARTBEAT` | `HEARTBEAT_ACK`; `last_heartbeat` |
//! | `PING` / `PONG` | `PONG` / the round trip of our last `PING` becomes `latency_ms` |
//! | `TRADE_RESULT` | checked first (bad input, [`crate::connector::flags`]): an ack for another connection's order or naming a ticket bound elsewhere is refused with an `ERROR`, a price off by orders of magnitude dropped; then the order use case applies the ack; relayed as `TRADE_RESULT` (+ `ORDER_UPDATE`); the outbox entry goes; a second ticket for one open flags `dedupe_violated` |
//! | `POSITIONS` / `SYNC_RESPONSE` | two positions sharing one `NT-` comment flag `dedupe_violated`; stored as the connection's positions snapshot, handed to the [`SnapshotHook`]; quotes; `positions_count`; `SYNC_RESPONSE.account` as below |
//! | `ACCOUNT_INFO` / `ACCOUNT_UPDATE` | the account snapshot (margin check, dashboard stats); relayed as `ACCOUNT_UPDATE` |
//! | `POSITION_UPDATE` | quotes; relayed as `POSITION_UPDATE` |
//! | `MT5_STATUS` | `mt5_connected`; relayed as `MT5_STATUS_UPDATE` |
//! | `HISTORY_CANDLES` | a page of price history, handed to the [`HistoryHook`] (the ML dataset import) |
//! | `ERROR` | relayed as `CONNECTOR_ERROR`; one answering a `HISTORY_REQUEST` also fails its import |
//!
//! **Link health** (shown by the broker `status` route): `last_message_at` and `last_heartbeat` are written
//! at most every [`HEALTH_WRITE_GAP`] per connection (kept in memory in between), facts that change the
//! picture (`mt5_connected`, positions synced, latency) at once. With a health write, at most every
//! [`PING_EVERY`], a `PING` goes to the connector; its `PONG` gives the round-trip latency. Quotes implied by
//! positions are written at most every [`QUOTE_WRITE_GAP`] per symbol.
//!
//! **Limits**: a message over 128 KB or a flood beyond the per-connection rate ([`crate::connector::limits`]) gets an
//! `ERROR` and the connection is closed through the Push port.
//!
//! Messages from a connection only ever touch its own user's data: the user comes from the connection
//! record written at `$connect`, never from the message.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tracing::{info, warn};
use uuid::Uuid;

use crate::auth::Authenticator;
use crate::brokers::service::BrokerService;
use crate::brokers::status::{connections_status, tell_flag};
use crate::connector::capabilities::{Capabilities, Capability};
use crate::connector::flags::{self, ConnectionFlag, FlagKind};
use crate::connector::history::{DropHistory, HistoryHook, HistoryRequestId};
use crate::connector::limits::{Admission, LinkGuard, LinkLimits, PerConnection};
use crate::connector::outbox::{MAX_RESENDS, OutboxEntry};
use crate::connector::protocol::{Command, ConnectorMessage, RequestId, TradeResult};
use crate::connector::registry::{
    AccountSnapshot, ConnectorRegistry, LinkHealth, PING_SENT_ATTR, Quote, WsConnection, health_update,
};
use crate::connector::reports::{
    AccountReport, LogSnapshots, Mt5Status, PositionUpdate, PositionsReport, PositionsSnapshot, SnapshotHook, quotes,
};
use crate::connector::tickets::{TicketBinding, Verdict, judge, ticket_key};
use crate::ports::PushOutcome;
use crate::trading::orders::{AckOutcome, OrderRecord, OrderService, TradingError};
use crate::wire::{iso, num};
use crate::ws::{ConnectDecision, ConnectRequest, InboundMessage, WsHandler};
use nusatrade_domain::order::Ticket;
use nusatrade_domain::order::command::{CommandKind, Redelivery, redelivery};

pub use super::browser::BrowserChannel;
use super::common::{contact, error_reply, now_iso, refuse, refuse_dead_session, reject, session_live};

/// The heartbeat interval advertised in `WELCOME` (the original's 30 s).
pub const HEARTBEAT_INTERVAL_SECS: u64 = 30;
/// Least time between two routine health writes of one connection.
pub const HEALTH_WRITE_GAP: Duration = Duration::seconds(5);
/// Least time between two latency probes (`PING`) of one connection.
pub const PING_EVERY: Duration = Duration::seconds(30);
/// A `PONG` later than this after our `PING` measures nothing.
pub const PONG_MAX_AGE: Duration = Duration::seconds(60);
/// Least time between two quote writes of one symbol from one connection.
pub const QUOTE_WRITE_GAP: Duration = Duration::seconds(5);
/// Most positions relayed in one `POSITION_UPDATE` (keeps the relay far below the 128 KB push limit).
pub const MAX_RELAY_POSITIONS: usize = 200;
/// Most shared `NT-` comments flagged from one positions report.
pub const MAX_SHARED_COMMENTS: usize = 5;

/// What one connection's traffic says between two health writes.
#[derive(Debug, Default)]
struct LinkMemo {
    written_at: Option<DateTime<Utc>>,
    pending: LinkHealth,
    mt5_known: bool,
    ping_sent_at: Option<DateTime<Utc>>,
    ping_answered: bool,
    quotes_written: HashMap<&'static str, DateTime<Utc>>,
}

/// What the checks of an order ack found before it was applied (see [`crate::connector::flags`]).
#[derive(Debug)]
struct Vetted {
    order: OrderRecord,
    /// Where the ack's ticket is to be bound (it was free).
    binding: Option<crate::ports::Key>,
    /// The ack's price (and profit) were dropped as off by orders of magnitude.
    price_suspect: bool,
}

/// What a message adds to the link health.
#[derive(Debug, Default)]
struct Note {
    heartbeat: bool,
    /// Written at once.
    urgent: LinkHealth,
    /// A `PONG` was measured: the pending probe is cleared.
    pong: bool,
}

/// `/connector/ws`.
#[derive(Clone)]
pub struct ConnectorChannel {
    pub auth: Authenticator,
    pub registry: ConnectorRegistry,
    pub orders: OrderService,
    pub brokers: BrokerService,
    pub guard: Arc<LinkGuard>,
    /// Where stored positions snapshots go (reconciliation, issue #6).
    pub snapshots: Arc<dyn SnapshotHook>,
    /// Where pages of price history go (the ML dataset import).
    pub history: Arc<dyn HistoryHook>,
    memo: Arc<PerConnection<LinkMemo>>,
}

impl ConnectorChannel {
    pub fn new(auth: Authenticator, orders: OrderService, brokers: BrokerService) -> Self {
        Self::with_limits(auth, orders, brokers, LinkLimits::default())
    }

    pub fn with_limits(auth: Authenticator, orders: OrderService, brokers: BrokerService, limits: LinkLimits) -> Self {
        ConnectorChannel {
            auth,
            registry: orders.registry().clone(),
            orders,
            brokers,
            guard: Arc::new(LinkGuard::new(limits)),
            snapshots: Arc::new(LogSnapshots),
            history: Arc::new(DropHistory),
            memo: Arc::new(PerConnection::default()),
        }
    }

    /// Hands stored positions snapshots to `hook` (reconciliation).
    pub fn with_snapshot_hook(mut self, hook: Arc<dyn SnapshotHook>) -> Self {
        self.snapshots = hook;
        self
    }

    /// Hands pages of price history to `hook` (the ML dataset import).
    pub fn with_history_hook(mut self, hook: Arc<dyn HistoryHook>) -> Self {
        self.history = hook;
        self
    }

    fn now(&self) -> DateTime<Utc> {
        self.registry.clock.now()
    }

    fn welcome(conn: &WsConnection) -> Value {
        json!({
            "type": "WELCOME",
            "message": "Connector connected successfully",
            "connection_id": conn.broker_connection_id,
            "heartbeat_interval": HEARTBEAT_INTERVAL_SECS,
        })
    }

    // ------------------------------------------------------------------ first contact

    /// `WELCOME`, the outbox, the re-sync requests, the dashboards' `CONNECTIONS_STATUS`. `false` when the
    /// connection turned out gone.
    async fn first_contact(&self, conn: &WsConnection) -> bool {
        let ws = conn.ws_connection_id.as_str();
        if !self.orders.dashboards.push_to(ws, &Self::welcome(conn)).await {
            return false;
        }
        let Some(broker) = conn.broker_connection_id else { return true };
        if !self.resend_outbox(conn, broker).await {
            return false;
        }
        let sync = format!("resync_{}", self.orders.ids.uuid().simple());
        for cmd in [
            Command::GetPositions { request_id: format!("{sync}_positions") },
            Command::GetAccount { request_id: format!("{sync}_account") },
        ] {
            if !self.orders.dashboards.push_to(ws, &serde_json::to_value(&cmd).unwrap_or_default()).await {
                return false;
            }
        }
        info!(ws, connection = %broker, "connector link up: welcomed, outbox resent, re-sync requested");
        // Swept from now on, whether or not the re-sync's answer arrives.
        self.snapshots.connector_up(conn.user_id, broker).await;
        let status = connections_status(&self.brokers, conn.user_id).await;
        self.orders.dashboards.broadcast(conn.user_id, &status).await;
        true
    }

    /// Resends the broker connection's unacknowledged trade commands, oldest first, as the delivery rules allow for
    /// the connector's capabilities ([`redelivery`]); a withheld command's order takes the rule's event and its entry
    /// goes. `false` when the connection turned out gone.
    async fn resend_outbox(&self, conn: &WsConnection, broker: Uuid) -> bool {
        let ws = conn.ws_connection_id.as_str();
        let dedupes = conn.capabilities.dedupes();
        let entries = match self.registry.outbox(conn.user_id, broker).await {
            Ok(e) => e,
            Err(e) => {
                warn!(ws, error = %e, "could not read the outbox: nothing resent");
                return true;
            }
        };
        for entry in entries {
            if !self.still_waiting(conn.user_id, &entry).await {
                info!(ws, request_id = %entry.request_id, "outbox entry no longer awaited: dropped");
                self.drop_entry(conn.user_id, &entry).await;
                continue;
            }
            // A request id not of an order command is treated like an open: repeated only to a de-duplicating connector.
            let kind = entry.order_command().map_or(CommandKind::Open, |r| r.kind);
            if let Redelivery::Withhold(event) = redelivery(kind, dedupes) {
                self.withhold(conn, &entry, event.is_some()).await;
                continue;
            }
            match self.registry.outbox_resent(conn.user_id, &entry).await {
                Ok(Some(n)) if n > MAX_RESENDS => {
                    warn!(ws, request_id = %entry.request_id, resends = n - 1,
                        "command resent too often without an ack: left to reconciliation");
                    self.drop_entry(conn.user_id, &entry).await;
                    continue;
                }
                Ok(Some(_)) => {}
                Ok(None) => continue, // acknowledged meanwhile
                Err(e) => warn!(ws, error = %e, "could not count a resend"),
            }
            info!(ws, request_id = %entry.request_id, queued_at = %iso(entry.queued_at), "resending an unacknowledged command");
            match self.orders.dashboards.push.post(ws, Bytes::from(entry.command.clone())).await {
                Ok(PushOutcome::Delivered) => {}
                Ok(PushOutcome::Gone) => {
                    let _ = self.registry.unregister(ws).await;
                    return false;
                }
                Err(e) => warn!(ws, error = %e, "resend failed; the entry stays for the next reconnect"),
            }
        }
        true
    }

    /// Keeps what an `AUTH` stated with the connection (its record and link), less what the connection's flags
    /// withdraw ([`crate::connector::flags`]: a connector caught filling twice is not trusted to de-duplicate again,
    /// whatever it states), when it differs from what is kept. Flags that cannot be read withdraw de-duplication (the
    /// safe side: an open is then never resent).
    async fn record_capabilities(&self, conn: &mut WsConnection, stated: &Capabilities) {
        let ws = conn.ws_connection_id.as_str();
        let effective = match conn.broker_connection_id {
            Some(broker) => match self.brokers.flags(conn.user_id, broker).await {
                Ok(flags) => flags::effective(stated, &flags),
                Err(e) => {
                    warn!(ws, error = %e, "could not read the connection's flags: de-duplication not trusted");
                    stated.iter().filter(|c| *c != Capability::DedupeRequestId).collect()
                }
            },
            None => stated.clone(),
        };
        let kept_stated = (&effective != stated).then(|| stated.clone());
        if conn.capabilities == effective && conn.stated_capabilities == kept_stated {
            return;
        }
        info!(ws, capabilities = ?stated.names().collect::<Vec<_>>(), "connector capabilities");
        if kept_stated.is_some() {
            warn!(ws, stated = ?stated.names().collect::<Vec<_>>(), trusted = ?effective.names().collect::<Vec<_>>(),
                "the connection's flags withdraw capabilities its connector states");
        }
        if let Some(broker) = conn.broker_connection_id
            && let Err(e) = self.registry.record_stated_capabilities(ws, conn.user_id, broker, stated, &effective).await
        {
            warn!(ws, error = %e, "could not record the connector's capabilities");
        }
        conn.capabilities = effective;
        conn.stated_capabilities = kept_stated;
    }

    /// Whether the entry's order still waits for exactly that command (a store error counts as yes: the delivery
    /// rules then decide, and only a de-duplicating connector gets it again).
    async fn still_waiting(&self, user: Uuid, entry: &OutboxEntry) -> bool {
        let Some(rid) = entry.order_command() else { return true };
        match self.orders.get(user, rid.order_id).await {
            Ok(order) => nusatrade_domain::order::command::waits_for(&order.awaiting(), rid),
            Err(TradingError::NotFound | TradingError::Refused(_)) => false,
            Err(e) => {
                warn!(error = %e, "could not read the order of an outbox entry");
                true
            }
        }
    }

    /// A command the delivery rules do not repeat to this connector: its order becomes `unknown` (`moves`: the rule
    /// gives an event — the ack timeout's), then the entry goes. When the order cannot be moved now, the entry stays
    /// (never resent to this connector; the ack timeout or reconciliation moves the order).
    async fn withhold(&self, conn: &WsConnection, entry: &OutboxEntry, moves: bool) {
        let ws = conn.ws_connection_id.as_str();
        if moves && let Some(rid) = entry.order_command() {
            match self.orders.apply_timeout(conn.user_id, rid).await {
                Ok(outcome) => {
                    let status = match &outcome {
                        AckOutcome::Applied(o) | AckOutcome::Unchanged(o, _) | AckOutcome::Refused(o, _) => {
                            Some(o.status)
                        }
                        _ => None,
                    };
                    warn!(ws, request_id = %entry.request_id, ?status,
                        "unacknowledged command not resent: the connector cannot de-duplicate it (a repeat could fill \
                         twice); the order waits for evidence");
                }
                Err(e) => {
                    warn!(ws, request_id = %entry.request_id, error = %e,
                        "unacknowledged command not resent; its order could not be marked unknown now");
                    return;
                }
            }
        } else {
            warn!(ws, request_id = %entry.request_id, "unacknowledged command not resent: the connector cannot de-duplicate it");
        }
        self.drop_entry(conn.user_id, entry).await;
    }

    async fn drop_entry(&self, user: Uuid, entry: &OutboxEntry) {
        if let Err(e) = self.registry.outbox_remove(user, entry.broker_connection_id, &entry.request_id).await {
            warn!(error = %e, "could not remove an outbox entry");
        }
    }

    // ------------------------------------------------------------------ health

    /// Records what a message says about the link: routine fields at most every [`HEALTH_WRITE_GAP`], urgent
    /// ones at once; with a write, at most every [`PING_EVERY`], a latency probe.
    async fn note(&self, conn: &WsConnection, now: DateTime<Utc>, note: Note) {
        let Some(broker) = conn.broker_connection_id else { return };
        let ws = conn.ws_connection_id.as_str();
        let (write, ping) = self.memo.with(ws, now, LinkMemo::default, |m| {
            let p = &mut m.pending;
            p.last_message_at = Some(now);
            if note.heartbeat {
                p.last_heartbeat = Some(now);
            }
            let u = &note.urgent;
            let urgent = u != &LinkHealth::default();
            p.latency_ms = u.latency_ms.or(p.latency_ms);
            p.mt5_connected = u.mt5_connected.or(p.mt5_connected);
            p.positions_count = u.positions_count.or(p.positions_count);
            p.positions_synced_at = u.positions_synced_at.or(p.positions_synced_at);
            if u.mt5_connected.is_some() {
                m.mt5_known = true;
            }
            if note.pong {
                m.ping_answered = true;
            }
            let due = urgent || m.written_at.is_none_or(|t| now - t >= HEALTH_WRITE_GAP);
            if !due {
                return (None, false);
            }
            let ping = !note.pong && m.ping_sent_at.is_none_or(|t| now - t >= PING_EVERY);
            if ping {
                m.ping_sent_at = Some(now);
                m.ping_answered = false;
            }
            m.written_at = Some(now);
            (Some(std::mem::take(&mut m.pending)), ping)
        });
        let Some(health) = write else { return };
        let mut update = health_update(&health).unwrap_or_default();
        if ping {
            update = update.set(PING_SENT_ATTR, iso(now));
        } else if note.pong {
            update = update.remove(PING_SENT_ATTR);
        }
        match self.registry.update_link(conn.user_id, broker, ws, update).await {
            Ok(true) => {}
            Ok(false) => return, // replaced by a newer connector, or gone
            Err(e) => {
                warn!(ws, error = %e, "could not record the link health");
                return;
            }
        }
        if ping {
            let cmd = Command::Ping { request_id: format!("ping_{}", now.timestamp_millis()), timestamp: iso(now) };
            let _ = self.orders.dashboards.push_to(ws, &serde_json::to_value(&cmd).unwrap_or_default()).await;
        }
    }

    /// The round trip of our last `PING`, when this `PONG` answers it.
    async fn latency(&self, conn: &WsConnection, now: DateTime<Utc>) -> Option<u64> {
        let broker = conn.broker_connection_id?;
        let ws = conn.ws_connection_id.as_str();
        let local = self.memo.with(ws, now, LinkMemo::default, |m| match (m.ping_sent_at, m.ping_answered) {
            (Some(t), false) => Some(Some(t)),
            (Some(_), true) => Some(None), // answered already: an unsolicited PONG
            (None, _) => None,             // probed by another instance: ask the store
        });
        let sent = match local {
            Some(sent) => sent?,
            None => match self.registry.ping_sent_at(conn.user_id, broker, ws).await {
                Ok(t) => t?,
                Err(e) => {
                    warn!(ws, error = %e, "could not read the pending PING");
                    return None;
                }
            },
        };
        let rtt = now - sent;
        (rtt >= Duration::zero() && rtt <= PONG_MAX_AGE).then(|| rtt.num_milliseconds().max(0) as u64)
    }

    /// `mt5_connected = true` the first time MT5 answers with data, unless `MT5_STATUS` said otherwise.
    fn infer_mt5(&self, ws: &str, now: DateTime<Utc>) -> Option<bool> {
        self.memo.with(ws, now, LinkMemo::default, |m| (!m.mt5_known).then_some(true))
    }

    // ------------------------------------------------------------------ reports

    async fn account(&self, conn: &WsConnection, broker: Uuid, a: &AccountReport, now: DateTime<Utc>) {
        let snapshot = AccountSnapshot {
            broker_connection_id: broker,
            balance: a.balance,
            equity: a.equity,
            margin: a.margin.unwrap_or_default(),
            free_margin: a.free_margin.unwrap_or(a.equity),
            profit: a.profit.unwrap_or(Decimal::ZERO),
            leverage: a.leverage,
            currency: a.currency,
            reported_at: now,
        };
        if let Err(e) = self.registry.save_account(conn.user_id, &snapshot).await {
            warn!(error = %e, "could not store the account snapshot");
        }
        let mut relay = json!({
            "type": "ACCOUNT_UPDATE", "connection_id": broker,
            "balance": num(snapshot.balance), "equity": num(snapshot.equity), "margin": num(snapshot.margin),
            "free_margin": num(snapshot.free_margin), "profit": num(snapshot.profit),
        });
        if let Some(l) = a.leverage {
            relay["leverage"] = json!(l);
        }
        if let Some(c) = a.currency {
            relay["currency"] = json!(c.to_string());
        }
        self.orders.dashboards.broadcast(conn.user_id, &relay).await;
    }

    /// Writes the quotes the positions imply, at most every [`QUOTE_WRITE_GAP`] per symbol.
    async fn quotes(
        &self,
        conn: &WsConnection,
        positions: &[crate::connector::reports::BrokerPosition],
        now: DateTime<Utc>,
    ) {
        for q in quotes(positions) {
            let due = self.memo.with(&conn.ws_connection_id, now, LinkMemo::default, |m| {
                let due = m.quotes_written.get(q.symbol).is_none_or(|t| now - *t >= QUOTE_WRITE_GAP);
                if due {
                    m.quotes_written.insert(q.symbol, now);
                }
                due
            });
            if !due {
                continue;
            }
            let quote = Quote { symbol: q.symbol.to_owned(), bid: q.bid, ask: q.ask, time: now };
            if let Err(e) = self.registry.save_quote(conn.user_id, &quote).await {
                warn!(error = %e, symbol = q.symbol, "could not store a quote");
            }
        }
    }

    async fn positions(&self, conn: &WsConnection, broker: Uuid, report: PositionsReport, now: DateTime<Utc>) -> Note {
        self.shared_comments(conn, broker, &report.positions, now).await;
        let count = u32::try_from(report.positions.len()).unwrap_or(u32::MAX);
        self.quotes(conn, &report.positions, now).await;
        if let Some(a) = &report.account {
            self.account(conn, broker, a, now).await;
        }
        let snapshot = PositionsSnapshot {
            broker_connection_id: broker,
            source: report.source,
            request_id: report.request_id,
            ws_connection_id: conn.ws_connection_id.clone(),
            received_at: now,
            positions: report.positions,
            deals: report.deals,
            skipped: report.skipped,
            truncated: report.truncated,
            history: report.history,
        };
        match self.registry.save_positions(conn.user_id, snapshot).await {
            Ok(stored) => self.snapshots.positions_snapshot(conn.user_id, &stored).await,
            Err(e) => warn!(error = %e, "could not store the positions snapshot"),
        }
        let urgent = LinkHealth {
            positions_count: Some(count),
            positions_synced_at: Some(now),
            mt5_connected: self.infer_mt5(&conn.ws_connection_id, now),
            ..LinkHealth::default()
        };
        Note { urgent, ..Note::default() }
    }

    async fn position_update(&self, conn: &WsConnection, broker: Uuid, update: PositionUpdate, now: DateTime<Utc>) {
        self.quotes(conn, &update.positions, now).await;
        let mut relay = update.relay(broker, MAX_RELAY_POSITIONS);
        relay["timestamp"] = json!(iso(now));
        let relayed = self.orders.dashboards.broadcast(conn.user_id, &relay);
        let trailed = self.snapshots.position_update(conn.user_id, broker, &update.positions);
        tokio::join!(relayed, trailed);
    }

    /// The flag is written before the dashboards hear of it, so a status read on their side agrees.
    async fn mt5_status(&self, conn: &WsConnection, broker: Uuid, s: &Mt5Status, now: DateTime<Utc>) {
        let urgent = LinkHealth { mt5_connected: Some(s.connected), ..LinkHealth::default() };
        self.note(conn, now, Note { urgent, ..Note::default() }).await;
        let relay = json!({
            "type": "MT5_STATUS_UPDATE", "connection_id": broker, "connected": s.connected,
            "broker_name": s.broker_name, "account_number": s.account_number, "server": s.server,
        });
        self.orders.dashboards.broadcast(conn.user_id, &relay).await;
    }

    async fn trade_result(
        &self,
        conn: &WsConnection,
        mut result: TradeResult,
        raw: serde_json::Map<String, Value>,
    ) -> Option<String> {
        let vetted = match (result.command(), conn.broker_connection_id) {
            (Some(rid), Some(broker)) => match self.vet_ack(conn, broker, rid, &mut result).await {
                Ok(v) => v,
                Err(refusal) => return Some(refusal),
            },
            _ => None,
        };
        let mut relay = raw;
        relay.insert("type".into(), "TRADE_RESULT".into());
        relay.insert("connection_id".into(), json!(conn.broker_connection_id));
        if let Some(rid) = result.command() {
            relay.insert("order_id".into(), json!(rid.order_id));
        }
        if vetted.as_ref().is_some_and(|v| v.price_suspect) {
            relay.insert("price".into(), Value::Null);
            relay.insert("profit".into(), Value::Null);
            relay.insert("price_suspect".into(), Value::Bool(true));
        }
        // The acknowledged command leaves the outbox whatever the ack says (the order use case removes it).
        let applied = self
            .orders
            .apply_trade_result_and_relay(conn.user_id, conn.broker_connection_id, &result, Some(Value::Object(relay)))
            .await;
        match applied {
            // The order's id, status and version — not the whole record.
            Ok(outcome) => {
                let (verdict, order) = match &outcome {
                    AckOutcome::Applied(o) => ("applied", Some(o)),
                    AckOutcome::Unchanged(o, _) => ("unchanged", Some(o)),
                    AckOutcome::Refused(o, _) => ("refused", Some(o)),
                    AckOutcome::UnknownOrder => ("unknown_order", None),
                    AckOutcome::NotAnOrderCommand => ("not_an_order_command", None),
                };
                info!(ws = %conn.ws_connection_id, result = verdict, order = ?order.map(|o| o.id),
                    status = ?order.map(|o| o.status), version = ?order.map(|o| o.version), "TRADE_RESULT");
                if let (Some(v), Some(broker)) = (vetted, conn.broker_connection_id) {
                    self.after_ack(conn, broker, &result, v, &outcome).await;
                }
            }
            // The ack is not lost: the order stays in flight and reconciliation reads MT5.
            Err(e) => warn!(ws = %conn.ws_connection_id, error = %e, "could not apply TRADE_RESULT"),
        }
        None
    }

    // ------------------------------------------------------------------ bad input (connector::flags)

    /// Checks an order ack against the order and the ticket bindings before it is applied: an ack for another
    /// connection's order, or naming a ticket bound to another connection's order, is refused (`Err`: the `ERROR`
    /// reply; nothing applied); a price off by orders of magnitude is dropped (and the profit of a close with it), the
    /// ack still applied as evidence. `Ok(None)`: the order is not this user's (the use case answers that).
    async fn vet_ack(
        &self,
        conn: &WsConnection,
        broker: Uuid,
        rid: RequestId,
        result: &mut TradeResult,
    ) -> Result<Option<Vetted>, String> {
        let ws = conn.ws_connection_id.as_str();
        let order = match self.orders.get(conn.user_id, rid.order_id).await {
            Ok(o) => o,
            Err(_) => return Ok(None),
        };
        let now = self.now();
        if order.broker_connection_id.is_some_and(|b| b != broker) {
            let detail = format!("TRADE_RESULT {} names an order sent through another broker connection: refused", rid);
            warn!(ws, connection = %broker, order = %order.id, ticket = ?result.ticket, "{detail}");
            let flag = ConnectionFlag::new(FlagKind::ForeignTicket, now, &detail, result.ticket, Some(order.id));
            self.flag(conn, broker, flag).await;
            return Err(json!({"type": "ERROR", "error": detail, "request_id": result.request_id}).to_string());
        }
        let mut binding = None;
        if rid.kind == CommandKind::Open
            && result.success
            && let Some(ticket) = result.ticket
        {
            let (server, account) = match self.brokers.record(conn.user_id, broker).await {
                Ok(r) => (r.server, r.account_number),
                Err(e) => {
                    warn!(ws, error = %e, "could not read the broker connection: ticket keyed by user");
                    (None, None)
                }
            };
            let key = ticket_key(server.as_deref(), account.as_deref(), conn.user_id, ticket);
            match self.registry.ticket_binding(&key).await {
                Ok(stored) => match judge(stored.as_ref(), conn.user_id, broker, order.id) {
                    Verdict::Free => binding = Some(key),
                    Verdict::Same | Verdict::Orphan => {}
                    Verdict::Foreign => {
                        let detail = format!(
                            "TRADE_RESULT {rid}: ticket {ticket} is already bound to another order or connection: refused"
                        );
                        warn!(ws, connection = %broker, order = %order.id, ticket, "{detail}");
                        let flag =
                            ConnectionFlag::new(FlagKind::ForeignTicket, now, &detail, Some(ticket), Some(order.id));
                        self.flag(conn, broker, flag).await;
                        return Err(
                            json!({"type": "ERROR", "error": detail, "request_id": result.request_id}).to_string()
                        );
                    }
                },
                // The order's own state machine still guards it (a second ticket is refused there).
                Err(e) => warn!(ws, error = %e, "could not read the ticket binding: unchecked"),
            }
        }
        let reference = match rid.kind {
            CommandKind::Open => Some(order.requested_price),
            CommandKind::Close => order.current_price.or(order.open_price),
            CommandKind::Modify => None,
        };
        let mut price_suspect = false;
        if let (Some(price), Some(reference)) = (result.price, reference)
            && flags::price_suspect(price, reference)
        {
            price_suspect = true;
            let detail = format!(
                "{} ack for {} priced {price}, more than {}x away from {reference}: price ignored, no P/L taken from it",
                rid.kind.as_str(),
                order.symbol,
                flags::PRICE_BAND
            );
            warn!(ws, connection = %broker, order = %order.id, ticket = ?result.ticket, %price, %reference, "{detail}");
            result.price = None;
            if rid.kind == CommandKind::Close {
                result.profit = None;
            }
            let ticket = result.ticket.or(order.ticket.map(|t| t.0));
            self.flag(conn, broker, ConnectionFlag::new(FlagKind::PriceSuspect, now, &detail, ticket, Some(order.id)))
                .await;
        }
        Ok(Some(Vetted { order, binding, price_suspect }))
    }

    /// After an order ack was applied: its ticket is bound to the order; a second, different ticket for an open that
    /// already has one is a double fill — the order keeps its first ticket, the second is recorded as an orphan and the
    /// connection flagged `dedupe_violated` (de-duplication no longer trusted).
    async fn after_ack(&self, conn: &WsConnection, broker: Uuid, result: &TradeResult, v: Vetted, out: &AckOutcome) {
        let Some(rid) = result.command() else { return };
        let (Some(ticket), true) = (result.ticket, rid.kind == CommandKind::Open && result.success) else { return };
        let bind = |orphan: bool| TicketBinding {
            ticket,
            user_id: conn.user_id,
            broker_connection_id: broker,
            order_id: v.order.id,
            orphan,
        };
        match out {
            AckOutcome::Applied(o) if o.ticket == Some(Ticket(ticket)) => {
                if let Some(key) = &v.binding
                    && let Err(e) = self.registry.bind_ticket(key, &bind(false)).await
                {
                    warn!(error = %e, ticket, "could not bind the ticket to its order");
                }
            }
            AckOutcome::Refused(o, _) | AckOutcome::Unchanged(o, _)
                if o.ticket.is_some_and(|first| first != Ticket(ticket)) =>
            {
                let first = o.ticket.map_or(0, |t| t.0);
                let claimed = conn.stated_capabilities.as_ref().unwrap_or(&conn.capabilities).dedupes();
                warn!(ws = %conn.ws_connection_id, connection = %broker, order = %o.id, first_ticket = first,
                    second_ticket = ticket, claimed_dedupe = claimed,
                    "the connector filled one TRADE_OPEN twice: the order keeps its first ticket, the second is an \
                     orphan MT5 position; de-duplication is no longer trusted for this connection");
                if let Some(key) = &v.binding
                    && let Err(e) = self.registry.bind_ticket(key, &bind(true)).await
                {
                    warn!(error = %e, ticket, "could not record the orphan ticket");
                }
                let detail = format!(
                    "request {rid} filled twice: order keeps ticket {first}, ticket {ticket} is an orphan MT5 position \
                     (reconciliation shows it as external); de-duplication no longer trusted"
                );
                let flag = ConnectionFlag::new(FlagKind::DedupeViolated, self.now(), &detail, Some(ticket), Some(o.id));
                self.flag(conn, broker, flag).await;
            }
            _ => {}
        }
    }

    /// Positions sharing one `NT-` comment: one order of ours filled twice ([`flags::shared_comments`]).
    async fn shared_comments(
        &self,
        conn: &WsConnection,
        broker: Uuid,
        positions: &[crate::connector::reports::BrokerPosition],
        now: DateTime<Utc>,
    ) {
        for (comment, tickets) in flags::shared_comments(positions).into_iter().take(MAX_SHARED_COMMENTS) {
            let listed: Vec<String> = tickets.iter().map(u64::to_string).collect();
            let detail = format!(
                "positions {} carry the same comment {comment}: one order filled twice (the extra ones are orphan MT5 \
                 positions, shown as external by reconciliation); de-duplication no longer trusted",
                listed.join(", ")
            );
            warn!(ws = %conn.ws_connection_id, connection = %broker, %comment, tickets = ?tickets, "{detail}");
            let last = tickets.last().copied();
            self.flag(conn, broker, ConnectionFlag::new(FlagKind::DedupeViolated, now, &detail, last, None)).await;
        }
    }

    /// Flags the broker connection; a new flag withdraws what it withdraws from the live link at once and reaches the
    /// dashboards (`CONNECTOR_WARNING`, then a fresh `CONNECTIONS_STATUS`). A flag already there changes nothing.
    async fn flag(&self, conn: &WsConnection, broker: Uuid, flag: ConnectionFlag) {
        let ws = conn.ws_connection_id.as_str();
        // The live link stops trusting first, so whoever sees the flag sees the capability gone.
        if let Some(withdrawn) = flag.kind.withdraws()
            && conn.capabilities.has(withdrawn)
        {
            let stated = conn.stated_capabilities.clone().unwrap_or_else(|| conn.capabilities.clone());
            let effective: Capabilities = conn.capabilities.iter().filter(|c| *c != withdrawn).collect();
            if let Err(e) =
                self.registry.record_stated_capabilities(ws, conn.user_id, broker, &stated, &effective).await
            {
                warn!(ws, error = %e, "could not withdraw the connector's capabilities");
            }
        }
        match self.brokers.flag(conn.user_id, broker, flag.clone()).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => warn!(ws, error = %e, kind = %flag.kind, "could not flag the broker connection"),
        }
        tell_flag(&self.brokers, &self.orders.dashboards, conn.user_id, broker, &flag).await;
    }
}

#[async_trait]
impl WsHandler for ConnectorChannel {
    fn routes(&self) -> &[&'static str] {
        ConnectorMessage::TYPES
    }

    async fn connect(&self, req: ConnectRequest) -> ConnectDecision {
        let Some(token) = req.param("token").filter(|t| !t.is_empty()) else {
            return reject(403, "Missing token");
        };
        let user = match self.auth.authenticate(token).await {
            Ok(u) => u,
            Err(_) => return reject(401, "Invalid or expired token"),
        };
        let Some(broker) = req.param("connection_id").and_then(|c| Uuid::try_parse(c.trim()).ok()) else {
            return reject(403, "Connection not found or access denied");
        };
        match self.brokers.owns(user.id, broker).await {
            Ok(true) => {}
            Ok(false) => return reject(403, "Connection not found or access denied"),
            Err(e) => {
                warn!(error = %e, "connector $connect: store unavailable");
                return reject(503, "Service unavailable");
            }
        }
        let registered = self.registry.register_connector_session(
            &req.connection_id,
            user.id,
            &user.email,
            broker,
            Some(user.session_id),
        );
        match registered.await {
            Ok(replaced) => {
                info!(ws = %req.connection_id, user = %user.id, broker = %broker, ?replaced, "connector connected");
                if let Some(old) = replaced {
                    // The newer connector holds the broker connection; the older socket is closed.
                    let _ = self.orders.dashboards.push.close(&old).await;
                }
                if let Err(e) = self.brokers.mark_connected(user.id, broker, self.registry.clock.now()).await {
                    warn!(error = %e, "could not mark the broker connection active");
                }
                ConnectDecision::Accept
            }
            Err(e) => {
                warn!(error = %e, "connector $connect: cannot record the link");
                reject(503, "Service unavailable")
            }
        }
    }

    async fn message(&self, msg: InboundMessage) -> Option<String> {
        self.message_on(msg, None).await
    }

    async fn disconnect(&self, connection_id: &str) {
        self.guard.forget(connection_id);
        self.memo.forget(connection_id);
        match self.registry.unregister(connection_id).await {
            Ok(Some(conn)) => {
                info!(ws = %connection_id, user = %conn.user_id, "connector disconnected");
                if let Some(broker) = conn.broker_connection_id
                    && let Err(e) = self.brokers.mark_disconnected(conn.user_id, broker).await
                {
                    warn!(error = %e, "could not mark the broker connection inactive");
                }
                let msg = json!({"type": "CONNECTOR_DISCONNECTED", "connection_id": conn.broker_connection_id, "timestamp": now_iso()});
                self.orders.dashboards.broadcast(conn.user_id, &msg).await;
            }
            Ok(None) => {}
            Err(e) => warn!(ws = %connection_id, error = %e, "could not remove the connector link"),
        }
    }
}

impl ConnectorChannel {
    /// A message on one of this channel's sockets. `known`: the socket's connection record when the caller
    /// has just read it ([`ChannelRouter`](super::router::ChannelRouter)), so it is not read twice.
    pub(crate) async fn message_on(&self, msg: InboundMessage, known: Option<Option<WsConnection>>) -> Option<String> {
        let ws = msg.connection_id.as_str();
        let now = self.now();
        match self.guard.admit(ws, msg.body.len(), now) {
            Admission::Admit => {}
            Admission::Closing => return None,
            refused => {
                refuse(&self.orders.dashboards, ws, refused, &self.guard.limits).await;
                return None;
            }
        }
        let parsed = ConnectorMessage::parse(&msg.body);
        if let Err(e) = &parsed
            && !matches!(e, crate::connector::protocol::ProtocolError::Invalid { .. })
        {
            return Some(e.reply());
        }
        let (mut conn, first) = match contact(&self.registry, ws, known).await {
            Ok(c) => c,
            Err(reply) => return reply,
        };
        // Bound to its session: a revoked one's socket gets nothing (not even the outbox) and applies nothing.
        match session_live(&self.auth, &conn).await {
            Ok(true) => {}
            Ok(false) => {
                refuse_dead_session(&self.orders.dashboards, &conn).await;
                return None;
            }
            Err(e) => {
                warn!(ws, error = %e, "cannot check the session of a connector socket: message refused");
                return error_reply("Service unavailable");
            }
        }
        if let Ok(ConnectorMessage::Auth(stated)) = &parsed {
            stated.log(ws);
            self.record_capabilities(&mut conn, &stated.capabilities).await;
        }
        if first && !self.first_contact(&conn).await {
            return None;
        }
        let message = match parsed {
            Ok(m) => m,
            Err(e) => {
                self.note(&conn, now, Note::default()).await;
                return Some(e.reply());
            }
        };
        let Some(broker) = conn.broker_connection_id else { return error_reply("Unknown connection: reconnect") };
        let mut note = Note::default();
        let reply = match message {
            ConnectorMessage::Auth(_) if first => None,
            ConnectorMessage::Auth(_) => Some(Self::welcome(&conn).to_string()),
            ConnectorMessage::Heartbeat => {
                note.heartbeat = true;
                Some(json!({"type": "HEARTBEAT_ACK", "timestamp": iso(now)}).to_string())
            }
            ConnectorMessage::Ping => Some(json!({"type": "PONG", "timestamp": iso(now)}).to_string()),
            ConnectorMessage::Pong => {
                if let Some(ms) = self.latency(&conn, now).await {
                    note.urgent.latency_ms = Some(ms);
                    note.pong = true;
                }
                None
            }
            ConnectorMessage::TradeResult { result, raw } => self.trade_result(&conn, result, raw).await,
            ConnectorMessage::Positions(report) => {
                note = self.positions(&conn, broker, report, now).await;
                None
            }
            ConnectorMessage::Account(a) => {
                self.account(&conn, broker, &a, now).await;
                note.urgent.mt5_connected = self.infer_mt5(ws, now);
                None
            }
            ConnectorMessage::PositionUpdate(u) => {
                self.position_update(&conn, broker, u, now).await;
                None
            }
            ConnectorMessage::Mt5Status(s) => {
                self.mt5_status(&conn, broker, &s, now).await;
                return None;
            }
            ConnectorMessage::History(page) => {
                self.history.page(conn.user_id, broker, page).await;
                None
            }
            ConnectorMessage::Error { error, request_id } => {
                warn!(ws, %error, ?request_id, "the connector reported an error");
                if let Some(h) = request_id.as_deref().and_then(HistoryRequestId::parse) {
                    self.history.failed(conn.user_id, h, &error).await;
                }
                // An ERROR answering a positions request is a failed snapshot (recorded by the hook), relayed once
                // per change, not at every sweep.
                if self.snapshots.connector_error(conn.user_id, broker, &error, request_id.as_deref()).await {
                    let mut relay = json!({"type": "CONNECTOR_ERROR", "connection_id": broker, "error": error});
                    if let Some(r) = request_id {
                        relay["request_id"] = json!(r);
                    }
                    self.orders.dashboards.broadcast(conn.user_id, &relay).await;
                }
                None
            }
        };
        self.note(&conn, now, note).await;
        reply
    }
}

/// Both channels over one order service, with the limits of `NUSATRADE_WS_RATE` / `NUSATRADE_WS_BURST`
/// (the defaults, with a warning, when those are unreadable).
pub fn channels(
    auth: Authenticator,
    orders: OrderService,
    brokers: BrokerService,
) -> (Arc<ConnectorChannel>, Arc<BrowserChannel>) {
    let limits = LinkLimits::from_env().unwrap_or_else(|e| {
        warn!(error = %e, "WebSocket limits: using the defaults");
        LinkLimits::default()
    });
    channels_with(auth, orders, brokers, limits)
}

/// Both channels with explicit limits.
pub fn channels_with(
    auth: Authenticator,
    orders: OrderService,
    brokers: BrokerService,
    limits: LinkLimits,
) -> (Arc<ConnectorChannel>, Arc<BrowserChannel>) {
    let browser = BrowserChannel::with_limits(auth.clone(), orders.clone(), brokers.clone(), limits);
    (Arc::new(ConnectorChannel::with_limits(auth, orders, brokers, limits)), Arc::new(browser))
}
