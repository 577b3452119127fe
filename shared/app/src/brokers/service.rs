//! The broker-connection use cases (contract §2.6): the routes in [`super::routes`] and the connector
//! WebSocket handler (`$connect` / `$disconnect`) call these, so ownership and the per-user limit are the
//! same on every path.
//!
//! * **Ownership by key**: a connection lives under its owner's partition (`USER#<uid>` /
//!   `BROKER#<id>`), so another user's id is simply absent — every use case answers
//!   [`BrokerError::NotFound`] for it, exactly as for an unknown id.
//! * **Online** means a live connector link in the [`ConnectorRegistry`] (its record expires with API
//!   Gateway's connection limit), not the stored `is_active` flag: a gateway that crashed before
//!   `$disconnect` cannot leave a connection "online". The flag is still maintained
//!   ([`BrokerService::mark_connected`] / [`BrokerService::mark_disconnected`], the disconnect route) for
//!   readers of the record.
//! * **At most [`MAX_CONNECTIONS_PER_USER`] connections** per user: a counter item is incremented in the
//!   same transaction as the create (condition: below the limit) and decremented with the delete.
//! * Every write to an existing connection is conditional on its existence: an update racing a delete
//!   never resurrects a partial record.
//! * Deleting a connection leaves orders alone (they keep their `broker_connection_id`); the original
//!   failed with 500 on its foreign keys (contract §9.3 item 15).

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tracing::{info, warn};
use uuid::Uuid;

use super::store::{
    BROKER_COUNT_ATTR, BROKER_PREFIX, BrokerConnectionRecord, FLAGS_SEQ_ATTR, broker_count_key, broker_key,
};
use crate::connector::flags::{ConnectionFlag, with_flag};
use crate::connector::registry::account_key;
use crate::connector::reports::snapshot_key;
use crate::connector::{AccountSnapshot, Command, ConnectorLink, ConnectorRegistry, PositionsSnapshot};
use crate::keys::user_pk;
use crate::ports::{
    CancelReason, Clock, Condition, IdGenerator, Item, ItemStore, Ports, Push, PushError, PushOutcome, Query,
    StoreError, TxOp, Update, Value,
};
use crate::wire::iso;

/// Most broker connections one user may hold (the original had no limit; the connector creates one per
/// MT5 account and server, so 50 is far above real use and bounds what a list reads).
pub const MAX_CONNECTIONS_PER_USER: u32 = 50;

/// The original's answer to a sync without a live connector.
pub const NO_CONNECTOR_MESSAGE: &str = "No active connector. Please connect MT5 Connector app.";
/// The original's answer to a sync whose request went out.
pub const SYNC_SENT_MESSAGE: &str = "Sync request sent. Data will be updated via WebSocket.";

/// Why a broker-connection use case refused or failed. Mapped to a status and body once, at the edge
/// ([`super::routes`]).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Unknown id, or another user's.
    #[error("Connection not found")]
    NotFound,
    /// The user already has [`MAX_CONNECTIONS_PER_USER`] connections.
    #[error("Maximum {0} broker connections reached. Delete a connection before adding another.")]
    LimitReached(u32),
    /// The push service could not be reached: whether the connector got the command is unknown.
    #[error("connector push unavailable: {0}")]
    PushUnavailable(String),
    /// The push service refused the message (a bug: bad connection id or oversized frame).
    #[error("connector push refused: {0}")]
    PushInvalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Result of the broker use cases.
pub type BrokerResult<T> = Result<T, BrokerError>;

/// The writable fields of a connection (`POST` creates with them, `PUT` overwrites with them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInput {
    pub broker_name: String,
    pub account_number: Option<String>,
    pub server: Option<String>,
}

/// A connection and the connector link holding it now, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub record: BrokerConnectionRecord,
    pub link: Option<ConnectorLink>,
}

impl Connection {
    /// A connector holds the connection now.
    pub fn is_online(&self) -> bool {
        self.link.is_some()
    }
}

/// What `GET /brokers/connections/{id}/status` shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionStatus {
    pub connection: Connection,
    /// The last account snapshot MT5 reported (kept after the connector leaves, with its time).
    pub account: Option<AccountSnapshot>,
    /// The last full positions report (`POSITIONS` / `SYNC_RESPONSE`), also kept after the connector leaves.
    pub positions: Option<PositionsSnapshot>,
}

/// What a sync request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The commands reached a live connector.
    pub synced: bool,
    /// Open positions in the connector's last report (0 when none arrived yet).
    pub positions_count: u32,
    pub message: &'static str,
}

impl SyncOutcome {
    fn offline() -> Self {
        SyncOutcome { synced: false, positions_count: 0, message: NO_CONNECTOR_MESSAGE }
    }
}

/// The broker-connection use cases over the ports.
#[derive(Clone)]
pub struct BrokerService {
    pub store: Arc<dyn ItemStore>,
    pub push: Arc<dyn Push>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub registry: ConnectorRegistry,
}

impl BrokerService {
    /// The service over a process's ports.
    pub fn new(ports: &Ports) -> Self {
        BrokerService {
            store: ports.store.clone(),
            push: ports.push.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            registry: ConnectorRegistry::new(ports.store.clone(), ports.clock.clone()),
        }
    }

    // ------------------------------------------------------------------ reads

    /// The stored record of one of the user's connections.
    pub async fn record(&self, user: Uuid, id: Uuid) -> BrokerResult<BrokerConnectionRecord> {
        let item = self.store.get(&broker_key(user, id)).await?.ok_or(BrokerError::NotFound)?;
        let record: BrokerConnectionRecord = item.to_record()?;
        if record.user_id != user {
            return Err(BrokerError::NotFound);
        }
        Ok(record)
    }

    /// Whether the connection exists and belongs to the user (the connector `$connect` check).
    pub async fn owns(&self, user: Uuid, id: Uuid) -> BrokerResult<bool> {
        match self.record(user, id).await {
            Ok(_) => Ok(true),
            Err(BrokerError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One of the user's connections with its live link.
    pub async fn get(&self, user: Uuid, id: Uuid) -> BrokerResult<Connection> {
        let (record, link) = tokio::join!(self.record(user, id), self.registry.link(user, id));
        Ok(Connection { record: record?, link: link? })
    }

    /// All the user's connections, oldest first, each with its live link.
    pub async fn list(&self, user: Uuid) -> BrokerResult<Vec<Connection>> {
        let (records, links) = tokio::join!(self.records(user), self.registry.links(user));
        let mut links = links?;
        let mut out: Vec<Connection> = records?
            .into_iter()
            .map(|record| {
                let link = links.iter().position(|l| l.broker_connection_id == record.id).map(|i| links.swap_remove(i));
                Connection { record, link }
            })
            .collect();
        out.sort_by(|a, b| a.record.created_at.cmp(&b.record.created_at).then(a.record.id.cmp(&b.record.id)));
        Ok(out)
    }

    async fn records(&self, user: Uuid) -> BrokerResult<Vec<BrokerConnectionRecord>> {
        let mut records = Vec::new();
        let mut cursor = None;
        loop {
            let query = Query::partition(user_pk(user)).sk_prefix(BROKER_PREFIX).limit(100).after(cursor);
            let page = self.store.query(query).await?;
            for item in page.items {
                records.push(item.to_record::<BrokerConnectionRecord>()?);
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(records),
            }
        }
    }

    /// The connection, its live link and the last account and positions snapshots.
    pub async fn status(&self, user: Uuid, id: Uuid) -> BrokerResult<ConnectionStatus> {
        let (connection, account, positions) =
            tokio::join!(self.get(user, id), self.registry.account(user, id), self.registry.positions(user, id));
        Ok(ConnectionStatus { connection: connection?, account: account?, positions: positions? })
    }

    /// The connection's flags ([`crate::connector::flags`]); none for an unknown connection.
    pub async fn flags(&self, user: Uuid, id: Uuid) -> BrokerResult<Vec<ConnectionFlag>> {
        match self.record(user, id).await {
            Ok(r) => Ok(r.flags),
            Err(BrokerError::NotFound) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Adds a flag to the connection (once per kind and ticket, the newest
    /// [`MAX_FLAGS`](crate::connector::flags::MAX_FLAGS) kept). Returns the flags
    /// after the write, `None` when the flag was there already (or the connection is gone).
    pub async fn flag(&self, user: Uuid, id: Uuid, flag: ConnectionFlag) -> BrokerResult<Option<Vec<ConnectionFlag>>> {
        for _ in 0..5 {
            let key = broker_key(user, id);
            let Some(item) = self.store.get(&key).await? else { return Ok(None) };
            let seq = item.get_n(FLAGS_SEQ_ATTR);
            let record: BrokerConnectionRecord = item.to_record()?;
            let Some(flags) = with_flag(&record.flags, flag.clone()) else { return Ok(None) };
            let value = serde_json::to_value(&flags).map_err(|e| StoreError::Validation(e.to_string()))?;
            let update = Update::new().set("flags", Value::from_json(value)?).add(FLAGS_SEQ_ATTR, 1);
            let unchanged = match seq {
                Some(n) => Condition::eq(FLAGS_SEQ_ATTR, n),
                None => Condition::AttrNotExists(FLAGS_SEQ_ATTR.into()),
            };
            match self.store.update(&key, update, Some(Condition::Exists.and(unchanged))).await {
                Ok(_) => return Ok(Some(flags)),
                Err(e) if e.is_condition_failure() => continue, // written meanwhile (or deleted): read again
                Err(e) => return Err(e.into()),
            }
        }
        Err(BrokerError::Store(StoreError::Throttled))
    }

    // ------------------------------------------------------------------ writes

    /// Creates a connection (`is_active = false` until a connector holds it). Refused with
    /// [`BrokerError::LimitReached`] at [`MAX_CONNECTIONS_PER_USER`].
    pub async fn create(&self, user: Uuid, input: ConnectionInput) -> BrokerResult<Connection> {
        let record = BrokerConnectionRecord {
            id: self.ids.uuid(),
            user_id: user,
            broker_name: input.broker_name,
            account_number: input.account_number,
            server: input.server,
            is_active: false,
            last_connected_at: None,
            created_at: self.clock.now(),
            flags: Vec::new(),
        };
        let item = Item::from_record(&broker_key(user, record.id), &record)?;
        // One repair of a counter that drifted above the real count (connections removed behind the
        // service's back, e.g. by a partition purge), then a second attempt.
        for attempt in 0..2 {
            let below_limit = Condition::AttrNotExists(BROKER_COUNT_ATTR.into())
                .or(Condition::lt(BROKER_COUNT_ATTR, i64::from(MAX_CONNECTIONS_PER_USER)));
            let ops = vec![
                TxOp::Update {
                    key: broker_count_key(user),
                    update: Update::new().add(BROKER_COUNT_ATTR, 1),
                    condition: Some(below_limit),
                },
                TxOp::Put { item: item.clone(), condition: Some(Condition::NotExists) },
            ];
            match self.store.transact_write(ops).await {
                Ok(()) => return Ok(Connection { record, link: None }),
                Err(StoreError::TransactionCanceled(reasons))
                    if reasons.first() == Some(&CancelReason::ConditionalCheckFailed) =>
                {
                    if attempt > 0 || !self.repair_count(user).await? {
                        return Err(BrokerError::LimitReached(MAX_CONNECTIONS_PER_USER));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(BrokerError::LimitReached(MAX_CONNECTIONS_PER_USER))
    }

    /// Sets the counter to the real number of connections when it is higher. Returns whether it changed.
    async fn repair_count(&self, user: Uuid) -> BrokerResult<bool> {
        let real = self.records(user).await?.len() as i64;
        let key = broker_count_key(user);
        let stored = self.store.get(&key).await?.and_then(|i| i.get_n(BROKER_COUNT_ATTR));
        let Some(stored) = stored.filter(|s| *s > rust_decimal::Decimal::from(real)) else { return Ok(false) };
        warn!(%user, %stored, real, "broker connection counter above the real count: repairing");
        let update = Update::new().set(BROKER_COUNT_ATTR, real);
        match self.store.update(&key, update, Some(Condition::eq(BROKER_COUNT_ATTR, stored))).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_condition_failure() => Ok(true), // changed meanwhile: the retry decides
            Err(e) => Err(e.into()),
        }
    }

    /// Overwrites broker name, account number and server (`None` clears them).
    pub async fn update(&self, user: Uuid, id: Uuid, input: ConnectionInput) -> BrokerResult<Connection> {
        let mut update = Update::new().set("broker_name", input.broker_name);
        update = match input.account_number {
            Some(a) => update.set("account_number", a),
            None => update.remove("account_number"),
        };
        update = match input.server {
            Some(s) => update.set("server", s),
            None => update.remove("server"),
        };
        let item = match self.store.update(&broker_key(user, id), update, Some(Condition::Exists)).await {
            Ok(item) => item,
            Err(e) if e.is_condition_failure() => return Err(BrokerError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let record: BrokerConnectionRecord = item.to_record()?;
        let link = self.registry.link(user, id).await?;
        Ok(Connection { record, link })
    }

    /// Deletes a connection, then closes and forgets its live connector (a reconnect is refused at
    /// `$connect`: the connection is gone). Orders referencing it are left as they are.
    pub async fn delete(&self, user: Uuid, id: Uuid) -> BrokerResult<()> {
        let key = broker_key(user, id);
        let ops = vec![
            TxOp::Delete { key: key.clone(), condition: Some(Condition::Exists) },
            TxOp::Update {
                key: broker_count_key(user),
                update: Update::new().add(BROKER_COUNT_ATTR, -1),
                condition: Some(Condition::gt(BROKER_COUNT_ATTR, 0)),
            },
        ];
        match self.store.transact_write(ops).await {
            Ok(()) => {}
            Err(StoreError::TransactionCanceled(reasons)) => {
                if reasons.first() == Some(&CancelReason::ConditionalCheckFailed) {
                    return Err(BrokerError::NotFound);
                }
                // The counter is missing or zero (connections written behind the service's back):
                // delete without it.
                match self.store.delete(&key, Some(Condition::Exists)).await {
                    Ok(_) => {}
                    Err(e) if e.is_condition_failure() => return Err(BrokerError::NotFound),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        // The connection is gone: what follows is clean-up, which must not turn the answer into an error.
        if let Err(e) = self.drop_link(user, id).await {
            warn!(error = %e, "could not close the connector of a deleted connection");
        }
        if let Err(e) = self.store.delete(&account_key(user, id), None).await {
            warn!(error = %e, "could not remove the account snapshot of a deleted connection");
        }
        if let Err(e) = self.store.delete(&snapshot_key(user, id), None).await {
            warn!(error = %e, "could not remove the positions snapshot of a deleted connection");
        }
        Ok(())
    }

    /// `is_active = false`, and the live connector (if any) is closed and forgotten. The connector app
    /// reconnects by itself; the original only flipped the flag.
    pub async fn disconnect(&self, user: Uuid, id: Uuid) -> BrokerResult<()> {
        self.set_active(user, id, false, None).await?;
        self.drop_link(user, id).await?;
        Ok(())
    }

    /// Closes and unregisters the connector holding the connection. Returns its WebSocket id.
    async fn drop_link(&self, user: Uuid, id: Uuid) -> BrokerResult<Option<String>> {
        let Some(link) = self.registry.link(user, id).await? else { return Ok(None) };
        let ws = link.ws_connection_id;
        if let Err(e) = self.push.close(&ws).await {
            // The record goes anyway: the socket ends at the latest with API Gateway's limits.
            warn!(ws = %ws, error = %e, "could not close a connector socket");
        }
        self.registry.unregister(&ws).await?;
        info!(ws = %ws, connection = %id, "connector link closed");
        Ok(Some(ws))
    }

    async fn set_active(
        &self,
        user: Uuid,
        id: Uuid,
        active: bool,
        connected_at: Option<DateTime<Utc>>,
    ) -> BrokerResult<()> {
        let mut update = Update::new().set("is_active", active);
        if let Some(t) = connected_at {
            update = update.set("last_connected_at", iso(t));
        }
        match self.store.update(&broker_key(user, id), update, Some(Condition::Exists)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_condition_failure() => Err(BrokerError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// `$connect` accepted a connector for the connection: `is_active = true`, `last_connected_at = now`.
    /// [`BrokerError::NotFound`] when the connection is gone (the handler should close the socket).
    pub async fn mark_connected(&self, user: Uuid, id: Uuid, now: DateTime<Utc>) -> BrokerResult<()> {
        self.set_active(user, id, true, Some(now)).await
    }

    /// `$disconnect` of a connector: `is_active = false` unless another connector holds the connection now.
    /// Call it after [`ConnectorRegistry::unregister`] (which removes the link only if it was this
    /// socket's). Returns whether the flag was cleared; a deleted connection is not an error.
    pub async fn mark_disconnected(&self, user: Uuid, id: Uuid) -> BrokerResult<bool> {
        if self.registry.link(user, id).await?.is_some() {
            return Ok(false);
        }
        match self.set_active(user, id, false, None).await {
            Ok(()) => Ok(true),
            Err(BrokerError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Asks the live connector for a full re-sync: `SYNC_REQUEST`, then `GET_POSITIONS` and `GET_ACCOUNT`
    /// (the original connector answers those two; its `SYNC_RESPONSE` breaks when positions exist,
    /// contract §9.1 item 3). The answers arrive over the WebSocket. Without a live connector — or when
    /// the push says it is gone, whose link is then removed — the original's offline answer.
    pub async fn sync(&self, user: Uuid, id: Uuid) -> BrokerResult<SyncOutcome> {
        let Connection { link, .. } = self.get(user, id).await?;
        let Some(link) = link else { return Ok(SyncOutcome::offline()) };
        let ws = link.ws_connection_id.as_str();
        let request_id = format!("sync_{}", self.ids.uuid());
        let commands = [
            Command::SyncRequest {
                request_id: request_id.clone(),
                connection_id: id,
                sync_positions: true,
                sync_trades: true,
                sync_account: true,
            },
            Command::GetPositions { request_id: format!("{request_id}_positions") },
            Command::GetAccount { request_id: format!("{request_id}_account") },
        ];
        for (i, command) in commands.iter().enumerate() {
            match self.push.post(ws, Bytes::from(command.to_json())).await {
                Ok(PushOutcome::Delivered) => {}
                Ok(PushOutcome::Gone) => {
                    info!(ws, "connector gone (410): removing its link");
                    self.registry.unregister(ws).await?;
                    self.mark_disconnected(user, id).await?;
                    return Ok(SyncOutcome::offline());
                }
                // Nothing reached the connector, as far as we know: the caller may retry.
                Err(PushError::Unavailable(m)) if i == 0 => return Err(BrokerError::PushUnavailable(m)),
                Err(PushError::Invalid(m)) if i == 0 => return Err(BrokerError::PushInvalid(m)),
                // The sync request itself went out: report it, the follow-up polls are best effort.
                Err(e) => {
                    warn!(ws, error = %e, "follow-up sync command not sent");
                    break;
                }
            }
        }
        let touch = Update::new().set("last_connected_at", iso(self.clock.now()));
        match self.store.update(&broker_key(user, id), touch, Some(Condition::Exists)).await {
            Ok(_) => {}
            Err(e) if e.is_condition_failure() => return Err(BrokerError::NotFound), // deleted meanwhile
            Err(e) => return Err(e.into()),
        }
        Ok(SyncOutcome {
            synced: true,
            positions_count: link.health.positions_count.unwrap_or(0),
            message: SYNC_SENT_MESSAGE,
        })
    }
}
