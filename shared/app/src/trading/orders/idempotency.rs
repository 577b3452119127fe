//! Idempotency of the order-changing calls: a client key (`Idempotency-Key`, or the auto-trading cycle's own) is
//! claimed in the same transaction that writes the order; the first request's outcome is stored once known and a
//! repeat gets it back verbatim; a request that provably changed nothing frees its key.

use tracing::warn;
use uuid::Uuid;

use super::error::{TradingError, TradingResult};
use super::service::{Delivery, OrderService, Placed};
use super::store::{IdempotencyKey, IdempotencyRecord, idempotency_key};
use crate::connector::CommandKind;
use crate::ports::{Condition, Item, StoreError, TxOp, Update};

impl OrderService {
    /// The stored outcome of a repeated request, or `None` for a first use of the key.
    pub(super) async fn replay(&self, user: Uuid, idem: &IdempotencyKey) -> TradingResult<Option<Placed>> {
        let Some(item) = self.book.store.get(&idempotency_key(user, &idem.key)).await? else { return Ok(None) };
        if item.is_expired(self.clock.epoch_seconds()) {
            return Ok(None);
        }
        let rec: IdempotencyRecord = item.to_record()?;
        if rec.request_hash != idem.request_hash {
            return Err(TradingError::IdempotencyMismatch);
        }
        let delivered = rec.delivered();
        match (delivered, rec.response_body) {
            (Some((kind, delivery)), Some(body)) => {
                let body = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(Some(Placed { order_id: rec.order_id, kind, delivery, body }))
            }
            _ => Err(TradingError::IdempotencyInFlight),
        }
    }

    /// The claim of a key, written with the order it issues.
    pub(super) fn claim(&self, user: Uuid, idem: &IdempotencyKey, order_id: Uuid) -> TradingResult<TxOp> {
        let now = self.clock.now();
        let rec = IdempotencyRecord {
            request_hash: idem.request_hash.clone(),
            order_id,
            response_status: None,
            command: None,
            delivery: None,
            response_body: None,
            created_at: now,
            ttl: (now + self.config.idempotency_ttl).timestamp(),
        };
        // An expired record may still be there (TTL deletion is lazy): it may be replaced.
        let free = Condition::NotExists.or(Condition::le("ttl", now.timestamp()));
        Ok(TxOp::Put { item: Item::from_record(&idempotency_key(user, &idem.key), &rec)?, condition: Some(free) })
    }

    /// Stores the outcome of the first request made with a key.
    pub(super) async fn remember(&self, user: Uuid, idem: Option<&IdempotencyKey>, placed: &Placed) {
        let Some(idem) = idem else { return };
        let update = Update::new()
            .set("command", placed.kind.as_str())
            .set("delivery", placed.delivery.as_str())
            .set("response_body", placed.body.to_string());
        let cond = Condition::eq("request_hash", idem.request_hash.as_str());
        if let Err(e) = self.book.store.update(&idempotency_key(user, &idem.key), update, Some(cond)).await {
            // The order is written and the command sent: a repeat will answer "still being processed" until the
            // key expires rather than send twice.
            warn!(error = %e, "could not store the idempotent outcome");
        }
    }

    /// Frees a key whose request provably changed nothing.
    pub(super) async fn forget(&self, user: Uuid, idem: Option<&IdempotencyKey>) {
        if let Some(idem) = idem {
            let cond = Condition::eq("request_hash", idem.request_hash.as_str());
            if let Err(e) = self.book.store.delete(&idempotency_key(user, &idem.key), Some(cond)).await {
                warn!(error = %e, "could not free the idempotency key");
            }
        }
    }
}

impl IdempotencyRecord {
    /// The stored outcome: the command and how it was delivered (records written before the outcome was stored in
    /// these terms carry the HTTP status they were answered with: 201/200 sent, 202 uncertain).
    pub fn delivered(&self) -> Option<(CommandKind, Delivery)> {
        if let (Some(c), Some(d)) = (self.command.as_deref(), self.delivery.as_deref()) {
            let kind = match c {
                "open" => CommandKind::Open,
                "close" => CommandKind::Close,
                "modify" => CommandKind::Modify,
                _ => return None,
            };
            return Delivery::parse(d).map(|d| (kind, d));
        }
        match self.response_status? {
            201 => Some((CommandKind::Open, Delivery::Sent)),
            200 => Some((CommandKind::Close, Delivery::Sent)),
            202 => Some((CommandKind::Close, Delivery::Uncertain)),
            _ => None,
        }
    }
}
