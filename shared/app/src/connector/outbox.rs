//! The per-broker-connection outbox (design §5): trade commands that went (or may have gone) to a connector
//! and whose `TRADE_RESULT` has not arrived yet. API Gateway drops WebSockets routinely (10-minute idle,
//! 2-hour maximum), so a command can be in flight when its socket goes; after the connector reconnects, its
//! first message makes the server resend what is still waiting, in the order it was first sent.
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `USER#<uid>` | `OUTBOX#<broker connection id>#<request id>` | [`OutboxEntry`]: the command frame, when it was queued, resends so far; `ttl` [`OUTBOX_TTL`] |
//!
//! * **Written with the order** ([`crate::trading::orders::OrderService`]): the entry is in the same
//!   transaction as the order change that issues the command (the pending order with its reservation, the
//!   `close_pending`/`modify_pending` transition), before the push; a push that provably did not leave
//!   (gone, refused) removes it again — the order use case rejects the order then, nothing is resent. A
//!   push with an unknown outcome keeps it.
//! * **Removed by the acknowledgement**: the ack's order transition deletes the entry in its transaction;
//!   an ack that changes nothing (duplicate, stale, refused) deletes it on its own — whatever the ack says,
//!   nothing acknowledged is ever resent.
//! * **De-duplicated by request id**: one entry per request id (its key); a connector stating
//!   `dedupe_request_id` ([`super::capabilities`]) de-duplicates a resent command by the same id and answers with its
//!   first result.
//! * **Resent only where harmless** (`nusatrade_domain::order::command::redelivery`): a `TRADE_OPEN` only to a
//!   connector that de-duplicates — to any other (the original connector) its order becomes `unknown` and the entry
//!   is dropped, since a repeat would be a second fill; closes (whole position, by ticket) and modifies (absolute
//!   SL/TP) to every connector.
//! * **Resent only while it still makes sense**: before resending, the order must still wait for exactly
//!   that command (pending/unknown for an open, `close_pending`/`modify_pending` with the same command
//!   sequence); otherwise the entry is stale (an ack raced the entry's write, reconciliation decided) and is
//!   dropped. An entry lives [`OUTBOX_TTL`] and is resent at most [`MAX_RESENDS`] times: an old market order
//!   must not fill minutes later — what is still unresolved then is reconciliation's.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::protocol::{Command, RequestId};
use super::registry::ConnectorRegistry;
use crate::keys::user_pk;
use crate::ports::{Item, Key, Query, StoreError, TxOp, Update};

/// How long an unacknowledged command may be resent after a reconnect.
pub const OUTBOX_TTL: Duration = Duration::minutes(5);
/// Most resends of one command (a command that keeps breaking the connection is not resent forever).
pub const MAX_RESENDS: u32 = 3;
/// Most entries read for one broker connection (commands in flight are bounded by the open-position limit).
pub const MAX_OUTBOX: u32 = 200;

/// `USER#<uid>` / `OUTBOX#<broker connection id>#<request id>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub broker_connection_id: Uuid,
    pub request_id: String,
    /// The command frame, exactly as first sent.
    pub command: String,
    pub queued_at: DateTime<Utc>,
    #[serde(default)]
    pub resends: u32,
    pub ttl: i64,
}

impl OutboxEntry {
    /// The order command it carries, when its request id is one of ours.
    pub fn order_command(&self) -> Option<RequestId> {
        self.request_id.parse().ok()
    }
}

pub fn outbox_prefix(broker_connection: Uuid) -> String {
    format!("OUTBOX#{broker_connection}#")
}

pub fn outbox_key(user: Uuid, broker_connection: Uuid, request_id: &str) -> Key {
    Key::new(user_pk(user), format!("{}{request_id}", outbox_prefix(broker_connection)))
}

/// The write that queues a trade command (a repeat of the same request id overwrites it). The order use
/// cases put it in the same transaction as the order change that issues the command, so an order waiting
/// for an ack always has its command in the outbox, and a command is never queued for an order that was
/// not written.
pub fn outbox_put_op(
    user: Uuid,
    broker_connection: Uuid,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<TxOp, StoreError> {
    let entry = OutboxEntry {
        broker_connection_id: broker_connection,
        request_id: command.request_id().to_owned(),
        command: command.to_json(),
        queued_at: now,
        resends: 0,
        ttl: (now + OUTBOX_TTL).timestamp(),
    };
    let key = outbox_key(user, broker_connection, &entry.request_id);
    Ok(TxOp::Put { item: Item::from_record(&key, &entry)?, condition: None })
}

/// The write that forgets a command; the ack's order transition carries it in its transaction.
pub fn outbox_delete_op(user: Uuid, broker_connection: Uuid, request_id: &str) -> TxOp {
    TxOp::Delete { key: outbox_key(user, broker_connection, request_id), condition: None }
}

impl ConnectorRegistry {
    /// Keeps a trade command until its acknowledgement, on its own (see [`outbox_put_op`]).
    pub async fn outbox_put(&self, user: Uuid, broker_connection: Uuid, command: &Command) -> Result<(), StoreError> {
        match outbox_put_op(user, broker_connection, command, self.clock.now())? {
            TxOp::Put { item, condition } => self.store.put(item, condition).await,
            _ => unreachable!("outbox_put_op builds a put"),
        }
    }

    /// Forgets a command (acknowledged, or provably never delivered).
    pub async fn outbox_remove(&self, user: Uuid, broker_connection: Uuid, request_id: &str) -> Result<(), StoreError> {
        self.store.delete(&outbox_key(user, broker_connection, request_id), None).await.map(|_| ())
    }

    /// The commands still waiting for an ack on a broker connection, oldest first (expired ones left out).
    pub async fn outbox(&self, user: Uuid, broker_connection: Uuid) -> Result<Vec<OutboxEntry>, StoreError> {
        let query = Query::partition(user_pk(user)).sk_prefix(outbox_prefix(broker_connection)).limit(MAX_OUTBOX);
        let page = self.store.query(query).await?;
        let now = self.clock.epoch_seconds();
        let mut entries: Vec<OutboxEntry> =
            page.items.into_iter().filter(|i| !i.is_expired(now)).map(|i| i.to_record()).collect::<Result<_, _>>()?;
        entries.sort_by(|a, b| a.queued_at.cmp(&b.queued_at).then_with(|| a.request_id.cmp(&b.request_id)));
        Ok(entries)
    }

    /// Counts a resend of an entry; returns the new count (`None` when the entry is gone meanwhile).
    pub async fn outbox_resent(&self, user: Uuid, entry: &OutboxEntry) -> Result<Option<u32>, StoreError> {
        let key = outbox_key(user, entry.broker_connection_id, &entry.request_id);
        let update = Update::new().add("resends", 1).set("last_resent_at", crate::wire::iso(self.clock.now()));
        match self.store.update(&key, update, Some(crate::ports::Condition::Exists)).await {
            Ok(item) => Ok(item.get_n("resends").and_then(|n| u32::try_from(n).ok())),
            Err(e) if e.is_condition_failure() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
