//! The reconciliation use cases (design §4, issue #6): run the pure kernel on a connection's books and its latest
//! positions snapshot and apply what it decides; ask connectors for snapshots (sweeps, timeouts, targeted checks);
//! settle ack timeouts; report for the position-monitor routes.
//!
//! **A run** (`reconcile_connection`), after a snapshot arrived: read the snapshot, then our books (the live-orders
//! index filtered to the connection, plus — by strongly consistent reads — every order an MT5 comment or an adopted
//! id points at that the index does not show yet), call `nusatrade_domain::reconcile::reconcile`, and apply each
//! write as **one conditional transaction** on the state that was read: the order (status and version guard), its
//! audit item, the reservation released (or taken, for an adoption) and, for a close, the closed-trade aggregates.
//! A write whose condition fails is dropped — something newer happened and the next run looks again — so running
//! twice changes nothing the second time. Every applied repair sends an `ORDER_UPDATE` to the user's dashboards.
//! A missing, failed, incomplete or stale snapshot changes nothing.
//!
//! **Asking for evidence**: `GET_POSITIONS` (the 5-minute sweep of active connections), `SYNC_REQUEST` with
//! `history_from` and `tickets` (ack timeouts, the every-minute sweep of connections with unresolved orders,
//! targeted checks the kernel asks for — at most one per [`ReconcileSettings::check_gap`] per connection). The
//! connector's answer comes back through the WebSocket channel, is stored, and triggers the next run.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::order::{ClientOrderId, OrderStatus, Refused, Ticket};
use nusatrade_domain::reconcile::{
    Action, CloseSource, PriorReport, ReportEvidence, SkipReason, Snapshot, external_order_id, reconcile_with,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tracing::{info, warn};
use uuid::Uuid;

use super::books::{book_order, domain_snapshot};
use super::config::ReconcileSettings;
use super::jobs::{QUEUE, ReconcileJob};
use super::store::{
    ConnectionRun, IndexEntry, IndexKind, SHARDS, WATCH_TTL_DAYS, audit_item, events, index_key, index_pk, run_key,
};
use crate::brokers::greeting::{self, Greeter};
use crate::brokers::service::BrokerService;
use crate::connector::capabilities::Capability;
use crate::connector::protocol::Command;
use crate::connector::registry::LINK_TTL;
use crate::connector::reports::{BrokerPosition, PositionsSnapshot};
use crate::connector::{CommandKind, RequestId};
use crate::jobs::JobError;
use crate::ports::queue::MAX_DELAY;
use crate::ports::{Cursor, Item, Query, Queue, StoreError, Update};
use crate::trading::orders::book::{Step, Written};
use crate::trading::orders::{AckOutcome, OrderRecord, OrderService, TradingError};
use crate::wire::iso;

/// Where adopted positions come from (the order's `source`).
pub const SOURCE_EXTERNAL: &str = "mt5_external";
/// Request-id prefix of reconciliation's snapshot requests (`reconcile_<reason>_<uuid>`).
pub const REQUEST_PREFIX: &str = "reconcile_";
/// Entries of a sweep index handled per message (the rest follows in a continuation message).
pub const SWEEP_PAGE: u32 = 100;
/// The oldest quote used as a position's last known price.
pub const LAST_PRICE_MAX_AGE: Duration = Duration::days(1);
/// History is asked from this long before the oldest order concerned (clock skew between MT5 and us).
pub const HISTORY_MARGIN: Duration = Duration::minutes(1);

/// What to ask a connector for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask {
    /// `GET_POSITIONS`.
    Positions,
    /// `SYNC_REQUEST` with MT5's history since `from` and lookups of `tickets`.
    History { from: DateTime<Utc>, tickets: Vec<u64> },
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    /// `reconciled`, or `skipped: <why>`.
    pub outcome: String,
    pub snapshot_at: Option<DateTime<Utc>>,
    /// Differences found: repairs decided, checks asked, conflicts.
    pub drift: u64,
    /// The orders written, as written.
    pub applied: Vec<OrderRecord>,
    /// Repairs whose condition failed (something newer happened).
    pub dropped: u64,
    pub conflicts: u64,
    /// Targeted checks the kernel asked for (tickets or history).
    pub checks: u64,
    /// Orders still in flight or unknown.
    pub unresolved: u64,
    /// The complete reports to keep on the run record (set when this run compared one).
    pub complete_reports: Option<Vec<PriorReport>>,
    /// The unconfirmed closes to keep watching (set when the list changed).
    pub unconfirmed_closes: Option<Vec<Uuid>>,
}

/// The position-monitor status of one connection.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionStatus {
    pub broker_connection_id: Uuid,
    pub online: bool,
    pub run: ConnectionRun,
    pub snapshot_positions: Option<usize>,
}

/// `GET /trading/position-monitor/status`.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorStatus {
    pub connections: Vec<ConnectionStatus>,
    pub total_positions: u64,
}

/// The reconciliation use cases over the ports.
#[derive(Clone)]
pub struct ReconcileService {
    pub orders: OrderService,
    pub queue: Arc<dyn Queue>,
    pub settings: Arc<ReconcileSettings>,
}

fn unavailable(e: impl std::fmt::Display) -> JobError {
    JobError::Unavailable(e.to_string())
}

fn in_flight(s: OrderStatus) -> bool {
    matches!(s, OrderStatus::Pending | OrderStatus::Unknown | OrderStatus::ClosePending | OrderStatus::ModifyPending)
}

impl ReconcileService {
    pub fn new(orders: OrderService, queue: Arc<dyn Queue>, settings: ReconcileSettings) -> Self {
        ReconcileService { orders, queue, settings: Arc::new(settings) }
    }

    fn now(&self) -> DateTime<Utc> {
        self.orders.clock.now()
    }

    /// The store of reconciliation's own records (runs, sweep indexes, audit items); orders go through the book.
    fn store(&self) -> &Arc<dyn crate::ports::ItemStore> {
        &self.orders.book.store
    }

    // ------------------------------------------------------------------ jobs

    /// Handles one message of the `reconcile` queue.
    pub async fn handle(&self, job: ReconcileJob) -> Result<(), JobError> {
        match job {
            ReconcileJob::AckTimeout { user_id, connection_id, request_id, .. } => {
                self.ack_timeout(user_id, connection_id, &request_id).await
            }
            ReconcileJob::Snapshot { user_id, connection_id, .. } => {
                self.reconcile_connection(user_id, connection_id).await.map(|_| ()).map_err(unavailable)
            }
            ReconcileJob::Ask { user_id, connection_id, history_from } => {
                let ask = Ask::History { from: history_from, tickets: Vec::new() };
                self.ask(user_id, connection_id, ask, "settle").await.map(|_| ()).map_err(unavailable)
            }
            ReconcileJob::SweepInFlight { shard, cursor } => self.sweep(IndexKind::Watch, shard, cursor).await,
            ReconcileJob::SweepConnections { shard, cursor } => self.sweep(IndexKind::Link, shard, cursor).await,
            ReconcileJob::GreetDashboard(g) => greeting::greet(&self.brokers(), &self.greeter(false), &g).await,
        }
    }

    /// Where dashboard greetings are queued: this service's queue (see [`greeting`]); `immediate` when the push
    /// port takes posts to a socket being accepted ([`Greeter::immediate`]).
    pub fn greeter(&self, immediate: bool) -> Greeter {
        Greeter { queue: self.queue.clone(), queue_name: QUEUE, immediate }
    }

    /// The broker connections' use cases over this service's ports.
    pub(super) fn brokers(&self) -> BrokerService {
        let o = &self.orders;
        BrokerService {
            store: o.book.store.clone(),
            push: o.dashboards.push.clone(),
            clock: o.clock.clone(),
            ids: o.ids.clone(),
            registry: o.registry().clone(),
        }
    }

    /// No ack for a command within the timeout: the order becomes `unknown` (open) or stays in flight
    /// (close/modify) — `OrderService::apply_timeout` — and, while it still waits for that command, its
    /// connection is watched and asked for evidence at once.
    pub async fn ack_timeout(&self, user: Uuid, broker: Uuid, request_id: &str) -> Result<(), JobError> {
        let rid: RequestId =
            request_id.parse().map_err(|_| JobError::Invalid(format!("not an order command: {request_id:?}")))?;
        let order = match self.orders.apply_timeout(user, rid).await {
            Ok(AckOutcome::Applied(o) | AckOutcome::Unchanged(o, _) | AckOutcome::Refused(o, _)) => *o,
            Ok(AckOutcome::UnknownOrder | AckOutcome::NotAnOrderCommand) | Err(TradingError::NotFound) => {
                return Ok(());
            }
            Err(e) => return Err(unavailable(e)),
        };
        if !nusatrade_domain::order::command::waits_for(&order.awaiting(), rid) {
            return Ok(()); // acknowledged in time (or settled meanwhile)
        }
        info!(order = %order.id, status = %order.status, request_id, "no ack within the timeout: asking MT5");
        crate::telemetry::order_ack_timeout();
        let broker = order.broker_connection_id.unwrap_or(broker);
        self.watch(user, broker, order.created_at).await.map_err(unavailable)?;
        let tickets = match rid.kind {
            CommandKind::Open => Vec::new(),
            _ => order.ticket.map(|t| t.0).into_iter().collect(),
        };
        let ask = Ask::History { from: order.created_at - HISTORY_MARGIN, tickets };
        self.ask(user, broker, ask, "timeout").await.map_err(unavailable)?;
        Ok(())
    }

    /// A sweep of one index: without a shard, fans out one message per shard; with one, handles a page of it and
    /// enqueues the rest.
    pub async fn sweep(&self, kind: IndexKind, shard: Option<u8>, cursor: Option<Cursor>) -> Result<(), JobError> {
        let job = |shard: u8, cursor: Option<Cursor>| match kind {
            IndexKind::Watch => ReconcileJob::SweepInFlight { shard: Some(shard), cursor },
            IndexKind::Link => ReconcileJob::SweepConnections { shard: Some(shard), cursor },
        };
        let Some(shard) = shard else {
            for s in 0..SHARDS {
                self.enqueue(&job(s, None)).await?;
            }
            return Ok(());
        };
        if shard >= SHARDS {
            return Err(JobError::Invalid(format!("shard {shard} outside 0..{SHARDS}")));
        }
        let page = self
            .store()
            .query(Query::partition(index_pk(kind, shard)).limit(SWEEP_PAGE).after(cursor))
            .await
            .map_err(unavailable)?;
        for item in &page.items {
            let entry: IndexEntry = match item.to_record() {
                Ok(e) => e,
                Err(e) => {
                    warn!(error = %e, "unreadable sweep index entry skipped");
                    continue;
                }
            };
            let (user, broker) = (entry.user_id, entry.broker_connection_id);
            let online = self.orders.registry().link(user, broker).await.map_err(unavailable)?.is_some();
            match (kind, online) {
                (IndexKind::Watch, true) => {
                    let ask = Ask::History { from: entry.since - HISTORY_MARGIN, tickets: Vec::new() };
                    self.ask(user, broker, ask, "inflight").await.map_err(unavailable)?;
                }
                // Offline: the connector's first contact sends a snapshot anyway; keep watching.
                (IndexKind::Watch, false) => {}
                (IndexKind::Link, true) => {
                    self.ask(user, broker, Ask::Positions, "sweep").await.map_err(unavailable)?;
                }
                (IndexKind::Link, false) => {
                    let key = index_key(IndexKind::Link, user, broker);
                    self.store().delete(&key, None).await.map_err(unavailable)?;
                }
            }
        }
        if page.cursor.is_some() {
            self.enqueue(&job(shard, page.cursor)).await?;
        }
        Ok(())
    }

    async fn enqueue(&self, job: &ReconcileJob) -> Result<(), JobError> {
        self.enqueue_after(job, Duration::zero()).await
    }

    async fn enqueue_after(&self, job: &ReconcileJob, delay: Duration) -> Result<(), JobError> {
        let max = Duration::seconds(MAX_DELAY.as_secs() as i64);
        let delay = delay.clamp(Duration::zero(), max).to_std().unwrap_or_default();
        self.queue.send(QUEUE, &job.to_json(), delay).await.map(|_| ()).map_err(unavailable)
    }

    // ------------------------------------------------------------------ snapshots in, requests out

    /// A snapshot was stored (the channel's hook): the connection joins the active-connections index and a run is
    /// queued (run here when the queue is unavailable). Never fails the connector's message.
    pub async fn snapshot_stored(&self, user: Uuid, s: &PositionsSnapshot) {
        self.report_received(user, s).await;
        let broker = s.broker_connection_id;
        self.index_active(user, broker, s.received_at).await;
        let job = ReconcileJob::Snapshot { user_id: user, connection_id: broker, received_at: s.received_at };
        if let Err(e) = self.enqueue(&job).await {
            warn!(error = %e, "could not queue the reconciliation: running it here");
            if let Err(e) = self.reconcile_connection(user, broker).await {
                warn!(error = %e, "reconciliation failed; the next sweep retries");
            }
        }
    }

    /// Puts (or keeps) the connection in the active-connections index the 5-minute sweep asks for positions, for
    /// [`LINK_TTL`] from `at`. Written when a report arrives, when a positions request fails (a connector answering
    /// `ERROR` while MT5 holds positions must be asked again: once flat, its complete reports settle what closed) and
    /// when a connector link comes up (its first-contact report may be lost). Best effort, logged.
    pub async fn index_active(&self, user: Uuid, broker: Uuid, at: DateTime<Utc>) {
        let entry =
            IndexEntry { user_id: user, broker_connection_id: broker, since: at, ttl: (at + LINK_TTL).timestamp() };
        match Item::from_record(&index_key(IndexKind::Link, user, broker), &entry) {
            Ok(item) => {
                if let Err(e) = self.store().put(item, None).await {
                    warn!(error = %e, "could not index the active connection");
                }
            }
            Err(e) => warn!(error = %e, "could not index the active connection"),
        }
    }

    /// Asks the connector holding `broker` for evidence. `false` when no connector holds it (nothing sent).
    pub async fn ask(&self, user: Uuid, broker: Uuid, ask: Ask, reason: &str) -> Result<bool, StoreError> {
        let Some(link) = self.orders.registry().link(user, broker).await? else { return Ok(false) };
        let now = self.now();
        let request_id = format!("{REQUEST_PREFIX}{reason}_{}", self.orders.ids.uuid().simple());
        let (frame, history) = match &ask {
            Ask::Positions => (serde_json::to_value(Command::GetPositions { request_id }).unwrap_or_default(), false),
            Ask::History { from, tickets } => (
                json!({
                    "type": "SYNC_REQUEST", "request_id": request_id, "connection_id": broker,
                    "sync_positions": true, "sync_trades": true, "sync_account": true,
                    "history_from": iso(*from), "tickets": tickets,
                }),
                true,
            ),
        };
        let sent = self.orders.dashboards.push_to(&link.ws_connection_id, &frame).await;
        let mut update =
            Update::new().set("broker_connection_id", broker.to_string()).set("snapshot_requested_at", iso(now));
        if history {
            update = update.set("check_requested_at", iso(now));
        }
        self.store().update(&run_key(user, broker), update, None).await?;
        info!(%user, connection = %broker, ?ask, sent, "snapshot requested");
        Ok(sent)
    }

    /// Puts the connection on the every-minute watch list (keeping the oldest `since`).
    async fn watch(&self, user: Uuid, broker: Uuid, since: DateTime<Utc>) -> Result<(), StoreError> {
        let key = index_key(IndexKind::Watch, user, broker);
        let since = match self.store().get(&key).await? {
            Some(i) => i.to_record::<IndexEntry>().map(|e| e.since.min(since)).unwrap_or(since),
            None => since,
        };
        let ttl = (self.now() + Duration::days(WATCH_TTL_DAYS)).timestamp();
        let entry = IndexEntry { user_id: user, broker_connection_id: broker, since, ttl };
        self.store().put(Item::from_record(&key, &entry)?, None).await
    }

    // ------------------------------------------------------------------ the run

    /// The connection's live orders (the sparse live index, every page).
    async fn live_orders(&self, user: Uuid, broker: Uuid) -> Result<HashMap<Uuid, OrderRecord>, StoreError> {
        Ok(self.orders.book.live_orders_of(user, broker).await?.into_iter().map(|o| (o.id, o)).collect())
    }

    async fn order(&self, user: Uuid, id: Uuid) -> Result<Option<OrderRecord>, StoreError> {
        match self.orders.get(user, id).await {
            Ok(o) => Ok(Some(o)),
            Err(TradingError::NotFound | TradingError::Refused(Refused::NotOwner)) => Ok(None),
            Err(TradingError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }

    /// Positions without a reported price take the symbol's last quote (a buy closes at the bid, a sell at the ask),
    /// when one is at most [`LAST_PRICE_MAX_AGE`] old: the close price of a position found gone without a deal.
    async fn last_prices(
        &self,
        user: Uuid,
        books: &mut [nusatrade_domain::reconcile::BookOrder],
    ) -> Result<(), StoreError> {
        let mut quotes: HashMap<String, Option<crate::connector::registry::Quote>> = HashMap::new();
        for o in books.iter_mut().filter(|o| o.last_price.is_none() && o.state.status.is_position()) {
            if !quotes.contains_key(&o.symbol) {
                let q = self.orders.registry().quote(user, &o.symbol, LAST_PRICE_MAX_AGE).await?;
                quotes.insert(o.symbol.clone(), q);
            }
            if let Some(q) = quotes.get(&o.symbol).and_then(Option::as_ref) {
                o.last_price = Some(match o.side {
                    nusatrade_domain::money::Side::Buy => q.bid,
                    nusatrade_domain::money::Side::Sell => q.ask,
                });
            }
        }
        Ok(())
    }

    /// Reconciles one broker connection with its latest stored snapshot (see the module docs).
    pub async fn reconcile_connection(&self, user: Uuid, broker: Uuid) -> Result<RunReport, StoreError> {
        let stored = self.orders.registry().positions(user, broker).await?;
        let snapshot = match &stored {
            None => Snapshot::Missing,
            Some(s) => domain_snapshot(user, s),
        };
        // The books are read after the snapshot arrived.
        let mut records = self.live_orders(user, broker).await?;
        if let Snapshot::Received(m) = &snapshot {
            for p in &m.positions {
                let mut ids = vec![external_order_id(broker, p.ticket, p.open_time)];
                ids.extend(p.client_order_id().map(|c| c.to_uuid()));
                for id in ids {
                    if records.contains_key(&id) {
                        continue;
                    }
                    if let Some(o) = self.order(user, id).await?
                        && o.broker_connection_id == Some(broker)
                    {
                        records.insert(id, o);
                    }
                }
            }
        }
        // What the connector can answer (a connector gone since counts as the original), and the complete report
        // compared before this one: a connector without lookups settles a missing position by two of them.
        let link = self.orders.registry().link(user, broker).await?;
        let no_lookups = !link.is_some_and(|l| l.capabilities.has(Capability::HistoryLookups));
        let run_before: ConnectionRun = match self.store().get(&run_key(user, broker)).await? {
            Some(item) => item.to_record().unwrap_or_default(),
            None => ConnectionRun::default(),
        };
        // Closes made without a deal, when the snapshot carries deals or lookups that may confirm them.
        if let Snapshot::Received(m) = &snapshot
            && (m.history.as_ref().is_some_and(|h| !h.deals.is_empty()) || !m.lookups.is_empty())
        {
            for id in &run_before.unconfirmed_closes {
                if records.contains_key(id) {
                    continue;
                }
                if let Some(o) = self.order(user, *id).await?
                    && o.broker_connection_id == Some(broker)
                {
                    records.insert(*id, o);
                }
            }
        }
        let unconfirmed: BTreeSet<Uuid> = records
            .values()
            .filter(|o| o.close_unconfirmed && o.status == OrderStatus::ClosedExternally)
            .map(|o| o.id)
            .collect();
        let mut books: Vec<_> = records.values().map(book_order).collect();
        self.last_prices(user, &mut books).await?;
        let now = self.now();
        let this_report = match &snapshot {
            Snapshot::Received(m) => {
                Some(PriorReport { taken_at: m.taken_at, tickets: m.positions.iter().map(|p| p.ticket).collect() })
            }
            _ => None,
        };
        let evidence = ReportEvidence {
            no_lookups,
            previous: this_report.as_ref().and_then(|r| run_before.previous_report(r.taken_at)).cloned(),
            unconfirmed,
        };
        let actions = reconcile_with(&books, &snapshot, now, &self.settings.kernel, &evidence);
        let positions: HashMap<u64, &BrokerPosition> =
            stored.iter().flat_map(|s| s.positions.iter()).map(|p| (p.ticket, p)).collect();
        let mut report = RunReport {
            outcome: "reconciled".into(),
            snapshot_at: stored.as_ref().map(|s| s.received_at),
            // Kept only when compared (a stale report, or one from the future, is not evidence of the present).
            complete_reports: this_report
                .filter(|_| !actions.iter().any(|a| matches!(a, Action::Skipped(_))))
                .map(|r| run_before.with_report(r)),
            ..RunReport::default()
        };
        let mut checks: Vec<(Option<Ticket>, DateTime<Utc>)> = Vec::new();
        for action in &actions {
            match action {
                Action::Skipped(why) => report.outcome = format!("skipped: {}", skip_text(why)),
                Action::Conflict { order_id, ticket, reason } => {
                    report.drift += 1;
                    report.conflicts += 1;
                    crate::telemetry::reconcile_conflict();
                    warn!(target: "alert", %user, connection = %broker, order = %order_id, ?ticket, %reason,
                        "reconciliation conflict: no rule resolves it, nothing written");
                }
                Action::RequestTargetedCheck { ticket, history_since, .. } => {
                    report.drift += 1;
                    report.checks += 1;
                    checks.push((*ticket, *history_since));
                }
                write => {
                    report.drift += 1;
                    match self.apply(user, broker, &records, write, stored.as_ref(), &positions, now).await? {
                        Some(rec) => {
                            crate::telemetry::reconcile_repair(write.kind());
                            info!(%user, connection = %broker, order = %rec.id, status = %rec.status,
                                version = rec.version, "reconciliation repaired an order");
                            records.insert(rec.id, rec.clone());
                            report.applied.push(rec);
                        }
                        None => report.dropped += 1,
                    }
                }
            }
        }
        for rec in &report.applied {
            self.orders.notify(rec).await;
        }
        let mut watched = run_before.unconfirmed_closes.clone();
        for rec in &report.applied {
            watched.retain(|id| *id != rec.id);
            if rec.close_unconfirmed {
                watched.push(rec.id);
            }
        }
        let drop = watched.len().saturating_sub(super::store::KEPT_UNCONFIRMED);
        watched.drain(..drop);
        if watched != run_before.unconfirmed_closes {
            report.unconfirmed_closes = Some(watched);
        }
        let unresolved: Vec<&OrderRecord> = records.values().filter(|o| in_flight(o.status)).collect();
        report.unresolved = unresolved.len() as u64;
        // Orders changed too shortly before this snapshot were not compared (the kernel's minimum age): ask again
        // once they are old enough, instead of waiting for the next sweep.
        let min_age = self.settings.kernel.min_age;
        if let Snapshot::Received(m) = &snapshot
            && let Some(last) = unresolved.iter().map(|o| o.updated_at).filter(|u| *u + min_age > m.taken_at).max()
        {
            let since = unresolved.iter().map(|o| o.created_at).min().unwrap_or(last);
            let job = ReconcileJob::Ask { user_id: user, connection_id: broker, history_from: since - HISTORY_MARGIN };
            let delay = (last + min_age - now + Duration::seconds(1)).max(Duration::seconds(1));
            if let Err(e) = self.enqueue_after(&job, delay).await {
                warn!(error = %e, "could not schedule a later look at recent orders; the sweep will");
            }
        }
        match unresolved.iter().map(|o| o.created_at).min() {
            Some(since) => self.watch(user, broker, since).await?,
            None => {
                self.store().delete(&index_key(IndexKind::Watch, user, broker), None).await?;
            }
        }
        let run = self.record_run(user, broker, now, &report).await?;
        if !checks.is_empty() {
            self.targeted_check(user, broker, &run, &checks, now).await?;
        }
        Ok(report)
    }

    /// Asks for what the kernel needs, at most once per `check_gap` per connection.
    async fn targeted_check(
        &self,
        user: Uuid,
        broker: Uuid,
        run: &ConnectionRun,
        checks: &[(Option<Ticket>, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if run.check_requested_at.is_some_and(|t| now - t < self.settings.check_gap) {
            return Ok(());
        }
        let tickets: BTreeSet<u64> = checks.iter().filter_map(|(t, _)| t.map(|t| t.0)).collect();
        let from = checks.iter().map(|(_, s)| *s).min().unwrap_or(now) - HISTORY_MARGIN;
        self.ask(user, broker, Ask::History { from, tickets: tickets.into_iter().collect() }, "check").await?;
        Ok(())
    }

    async fn record_run(
        &self,
        user: Uuid,
        broker: Uuid,
        now: DateTime<Utc>,
        r: &RunReport,
    ) -> Result<ConnectionRun, StoreError> {
        let applied = r.applied.len() as u64;
        let mut u = Update::new()
            .set("broker_connection_id", broker.to_string())
            .set("last_run_at", iso(now))
            .set("last_outcome", r.outcome.clone())
            .set("last_drift", r.drift)
            .set("last_actions", applied)
            .set("last_conflicts", r.conflicts)
            .set("unresolved", r.unresolved)
            .add("runs_total", 1)
            .add("drift_total", Decimal::from(r.drift))
            .add("actions_total", Decimal::from(applied));
        if let Some(at) = r.snapshot_at {
            u = u.set("last_snapshot_at", iso(at));
        }
        if let Some(ids) = &r.unconfirmed_closes {
            let list: Vec<crate::ports::Value> = ids.iter().map(|i| crate::ports::Value::from(i.to_string())).collect();
            u = u.set("unconfirmed_closes", crate::ports::Value::L(list));
        }
        if let Some(reports) = &r.complete_reports {
            let list = serde_json::to_value(reports).map_err(|e| StoreError::Validation(e.to_string()))?;
            u = u.set("complete_reports", crate::ports::Value::from_json(list)?);
        }
        let item = self.store().update(&run_key(user, broker), u, None).await?;
        item.to_record()
    }

    /// Applies one write action as a conditional transaction; `None` when its condition failed.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        user: Uuid,
        broker: Uuid,
        records: &HashMap<Uuid, OrderRecord>,
        action: &Action,
        snapshot: Option<&PositionsSnapshot>,
        positions: &HashMap<u64, &BrokerPosition>,
        now: DateTime<Utc>,
    ) -> Result<Option<OrderRecord>, StoreError> {
        if let Action::AdoptExternal { order_id, position, claimed_by, .. } = action {
            let p = position;
            if self.foreign_ticket(user, broker, p.ticket.0).await {
                return Ok(None);
            }
            let reported = positions.get(&p.ticket.0);
            let symbol = lookup(&p.symbol).map(|i| i.symbol.to_owned()).unwrap_or_else(|_| p.symbol.clone());
            let rec = OrderRecord {
                id: *order_id,
                user_id: user,
                client_order_id: ClientOrderId::from_uuid(*order_id).comment(),
                symbol,
                side: p.side,
                lots: p.volume.value(),
                requested_price: p.open_price,
                stop_loss: p.sl(),
                take_profit: p.tp(),
                status: OrderStatus::External,
                version: 0,
                ticket: Some(p.ticket),
                broker_connection_id: Some(broker),
                command_seq: 0,
                open_price: Some(p.open_price),
                fill_price_confirmed: true,
                close_unconfirmed: false,
                open_time: p.open_time.or(snapshot.map(|s| s.received_at)),
                close_price: None,
                close_time: None,
                profit: None,
                current_price: reported.and_then(|r| r.current_price),
                floating_profit: reported.and_then(|r| r.profit),
                pending_stop_loss: None,
                pending_take_profit: None,
                trailing_stop: None,
                error: None,
                retcode: None,
                source: SOURCE_EXTERNAL.into(),
                created_at: now,
                updated_at: now,
            };
            if let Some(c) = claimed_by {
                warn!(target: "alert", %user, order = %c, ticket = p.ticket.0,
                    "an MT5 position carries the comment of a finished order: adopted as external");
            }
            let details = json!({"ticket": p.ticket.0, "symbol": p.symbol, "side": p.side.as_str(),
                "lots": p.volume.value(), "open_price": p.open_price, "comment": p.comment, "claimed_by": claimed_by});
            let audit = audit_item(user, rec.id, 0, events::ADOPTED, now, details);
            return Ok((self.orders.book.adopt(&rec, audit).await? == Written::Yes).then_some(rec));
        }
        let (Some(id), Some(to)) = (action.order_id(), action.target()) else { return Ok(None) };
        let Some(before) = records.get(&id) else { return Ok(None) };
        if Some(before.state()) != action.expected() {
            return Ok(None);
        }
        if let Action::CorrectClose { close_price, close_time, source, .. } = action {
            return self.correct_close(before, to.version, *close_price, *close_time, *source, snapshot, now).await;
        }
        let mut next = before.clone();
        next.status = to.status;
        next.version = to.version;
        next.ticket = to.ticket;
        next.updated_at = now;
        let (event, details) = match action {
            Action::ResolveOpen { position: p, .. } => {
                let reported = positions.get(&p.ticket.0);
                next.open_price = Some(p.open_price);
                next.open_time = p.open_time.or(next.open_time).or(snapshot.map(|s| s.received_at));
                next.lots = p.volume.value();
                next.stop_loss = p.sl();
                next.take_profit = p.tp();
                next.fill_price_confirmed = true;
                next.pending_stop_loss = None;
                next.pending_take_profit = None;
                next.error = None;
                next.retcode = None;
                if let Some(r) = reported {
                    next.current_price = r.current_price.or(next.current_price);
                    next.floating_profit = r.profit.or(next.floating_profit);
                }
                (
                    events::OPENED,
                    json!({"from": before.status, "ticket": p.ticket.0, "open_price": p.open_price,
                    "lots": p.volume.value(), "stop_loss": p.sl(), "take_profit": p.tp()}),
                )
            }
            Action::ResolveRejected { evidence, .. } => {
                next.error = Some(format!("Never executed in MT5 (reconciliation: {evidence:?})"));
                next.pending_stop_loss = None;
                next.pending_take_profit = None;
                (events::REJECTED, json!({"from": before.status, "evidence": format!("{evidence:?}")}))
            }
            Action::CloseExternally { open_price, close_price, close_time, source, .. } => {
                next.open_price = before.open_price.or(*open_price);
                next.close_price = *close_price;
                next.close_time = Some(*close_time);
                next.pending_stop_loss = None;
                next.pending_take_profit = None;
                next.profit = match source {
                    CloseSource::Deal(t) => deal_profit(snapshot, *t),
                    _ => None,
                };
                if next.profit.is_none() {
                    next.profit = self.orders.realised_profit(&next).await;
                }
                if close_price.is_none() {
                    next.error = Some("Closed in MT5 at an unknown price (reconciliation)".into());
                }
                next.close_unconfirmed = source.unconfirmed();
                (
                    events::CLOSED_EXTERNALLY,
                    json!({"from": before.status, "to": to.status, "ticket": to.ticket.map(|t| t.0),
                    "close_price": close_price, "close_time": iso(*close_time), "source": format!("{source:?}"),
                    "profit": next.profit}),
                )
            }
            Action::FollowMt5 { stop_loss, take_profit, lots, .. } => {
                next.stop_loss = *stop_loss;
                next.take_profit = *take_profit;
                next.lots = lots.value();
                if let Some(r) = to.ticket.and_then(|t| positions.get(&t.0)) {
                    next.current_price = r.current_price.or(next.current_price);
                    next.floating_profit = r.profit.or(next.floating_profit);
                }
                (
                    events::FOLLOWED,
                    json!({"stop_loss": [before.stop_loss, stop_loss], "take_profit": [before.take_profit, take_profit],
                    "lots": [before.lots, lots.value()]}),
                )
            }
            _ => return Ok(None),
        };
        // The same write as an acknowledged transition: the order, the reservation release and the closed-trade
        // aggregates, with reconciliation's audit item.
        let audit = audit_item(user, id, next.version, event, now, details);
        let step = Step { before, after: &next, releases_reservation: action.releases_reservation() };
        Ok((self.orders.book.apply(step, Some(audit), None).await? == Written::Yes).then_some(next))
    }

    /// [`Action::CorrectClose`]: the deal's close price and time, its profit, the flag cleared, and the closed-trade
    /// aggregates moved by the difference — one conditional transaction.
    #[allow(clippy::too_many_arguments)]
    async fn correct_close(
        &self,
        before: &OrderRecord,
        version: u64,
        close_price: Decimal,
        close_time: DateTime<Utc>,
        source: CloseSource,
        snapshot: Option<&PositionsSnapshot>,
        now: DateTime<Utc>,
    ) -> Result<Option<OrderRecord>, StoreError> {
        use crate::ports::TxOp;
        use crate::trading::orders::store::{day_key, stats_key};
        let mut next = before.clone();
        next.version = version;
        next.updated_at = now;
        next.close_price = Some(close_price);
        next.close_time = Some(close_time);
        next.close_unconfirmed = false;
        if before.close_price.is_none() {
            next.error = None; // "closed at an unknown price": it is known now
        }
        next.profit = match source {
            CloseSource::Deal(t) => deal_profit(snapshot, t),
            _ => None,
        };
        if next.profit.is_none() {
            next.profit = self.orders.realised_profit(&next).await;
        }
        let user = before.user_id;
        let details = json!({"ticket": before.ticket.map(|t| t.0), "close_price": [before.close_price, close_price],
            "close_time": [before.close_time.map(iso), iso(close_time)], "profit": [before.profit, next.profit],
            "source": format!("{source:?}")});
        let audit = audit_item(user, before.id, next.version, events::CLOSE_CORRECTED, now, details);
        let (old, new) = (before.profit.unwrap_or_default(), next.profit.unwrap_or_default());
        let won = |p: Decimal| i64::from(p > Decimal::ZERO);
        let old_day = before.close_time.unwrap_or(before.updated_at).date_naive();
        let mut ops = vec![
            TxOp::Put { item: next.to_item()?, condition: Some(before.unchanged()) },
            TxOp::Put { item: audit, condition: None },
            TxOp::Update {
                key: stats_key(user),
                update: Update::new().add("winning_trades", won(new) - won(old)).add("total_pnl", new - old),
                condition: None,
            },
        ];
        if old_day == close_time.date_naive() {
            ops.push(TxOp::Update {
                key: day_key(user, old_day),
                update: Update::new().add("pnl", new - old),
                condition: None,
            });
        } else {
            ops.push(TxOp::Update {
                key: day_key(user, old_day),
                update: Update::new().add("pnl", -old),
                condition: None,
            });
            ops.push(TxOp::Update {
                key: day_key(user, close_time.date_naive()),
                update: Update::new().add("pnl", new),
                condition: None,
            });
        }
        match self.store().transact_write(ops).await {
            Ok(()) => Ok(Some(next)),
            Err(e) if e.is_condition_failure() => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ------------------------------------------------------------------ position monitor

    /// `POST /trading/position-monitor/sync`: `GET_POSITIONS` (`request_id "manual_sync_<connection id>"`, the
    /// original's) to every connector of the user; the answers are reconciled as they arrive. Returns the
    /// connections asked.
    pub async fn sync(&self, user: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let mut asked = Vec::new();
        for link in self.orders.registry().links(user).await? {
            let cmd = Command::GetPositions { request_id: format!("manual_sync_{}", link.broker_connection_id) };
            let frame = serde_json::to_value(cmd).unwrap_or_default();
            if self.orders.dashboards.push_to(&link.ws_connection_id, &frame).await {
                asked.push(link.broker_connection_id);
            }
        }
        Ok(asked)
    }

    /// `GET /trading/position-monitor/status`.
    pub async fn status(&self, user: Uuid) -> Result<MonitorStatus, StoreError> {
        let links = self.orders.registry().links(user).await?;
        let online: BTreeSet<Uuid> = links.iter().map(|l| l.broker_connection_id).collect();
        let page = self
            .store()
            .query(Query::partition(crate::keys::user_pk(user)).sk_prefix(super::store::RUN_PREFIX).limit(100))
            .await?;
        let mut runs: HashMap<Uuid, ConnectionRun> = HashMap::new();
        for item in &page.items {
            let run: ConnectionRun = item.to_record()?;
            if let Some(b) = run.broker_connection_id {
                runs.insert(b, run);
            }
        }
        let ids: BTreeSet<Uuid> = online.iter().copied().chain(runs.keys().copied()).collect();
        let mut connections = Vec::new();
        for id in ids {
            let snapshot = self.orders.registry().positions(user, id).await?;
            connections.push(ConnectionStatus {
                broker_connection_id: id,
                online: online.contains(&id),
                run: runs.remove(&id).unwrap_or_default(),
                snapshot_positions: snapshot.map(|s| s.positions.len()),
            });
        }
        let live = self.orders.book.live_orders(user).await?;
        let total_positions = live.iter().filter(|o| o.status.is_position()).count() as u64;
        Ok(MonitorStatus { connections, total_positions })
    }
}

fn skip_text(why: &SkipReason) -> String {
    match why {
        SkipReason::Missing => "no snapshot".into(),
        SkipReason::Failed(r) => format!("snapshot failed ({r})"),
        SkipReason::Stale { age } => format!("stale snapshot ({} s old)", age.num_seconds()),
        SkipReason::FromTheFuture => "snapshot from the future (clock skew)".into(),
    }
}

/// MT5's own profit figure of a closing deal, when the snapshot lists it.
fn deal_profit(snapshot: Option<&PositionsSnapshot>, deal: Ticket) -> Option<Decimal> {
    snapshot?.deals.iter().find(|d| d.ticket == deal.0).and_then(|d| d.profit).map(|p| p.round_dp(2))
}

impl ConnectionStatus {
    /// The status route's entry.
    pub fn to_json(&self) -> Value {
        let r = &self.run;
        json!({
            "connection_id": self.broker_connection_id,
            "online": self.online,
            "last_run": r.last_run_at.map(iso),
            "last_snapshot": r.last_snapshot_at.map(iso),
            "outcome": r.last_outcome,
            "drift_found": r.last_drift,
            "actions_taken": r.last_actions,
            "conflicts": r.last_conflicts,
            "unresolved_orders": r.unresolved,
            "snapshot_positions": self.snapshot_positions,
            "runs_total": r.runs_total,
            "drift_total": r.drift_total,
            "actions_total": r.actions_total,
        })
    }
}
