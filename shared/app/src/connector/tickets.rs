//! Which order an MT5 ticket is bound to, across connections and users (issue 18, "Bad input": tickets reused
//! across connections).
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `TICKET#<trade server>#<account>#<ticket>` | `BIND` | the user, broker connection and order a ticket was first acknowledged for ([`TicketBinding`]) |
//!
//! MT5 numbers tickets per trade server; a paper connector numbers each account's alike. So the key is the broker
//! connection's `server` and `account_number` (trimmed, lower case): a ticket of one account acknowledged by
//! another connection holding that account — the same user's or another's — is caught. A connection without both is
//! keyed by its user (`TICKET#user:<uid>#<ticket>`), which still catches a ticket reused across that user's
//! connections. The binding is written once (conditional put) when an open ack binds the
//! ticket to an order, or when a second fill's orphan ticket is recorded; an ack from another connection naming a
//! bound ticket is refused ([`judge`]). What the refusal says never names the other connection, user or order.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::registry::ConnectorRegistry;
use crate::ports::{Condition, Item, Key, StoreError};

/// Longest trade-server name used in a key (the broker connection's `server` is at most 100 characters).
const MAX_SERVER_KEY: usize = 100;

/// `TICKET#…` / `BIND`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketBinding {
    pub ticket: u64,
    pub user_id: Uuid,
    pub broker_connection_id: Uuid,
    pub order_id: Uuid,
    /// The extra ticket of a double fill: no order of ours holds it (reconciliation shows it as external).
    #[serde(default)]
    pub orphan: bool,
}

/// What a stored binding says about an ack from `(user, broker)` binding `ticket` to `order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not bound yet.
    Free,
    /// Bound to this very order of this connection (a duplicate ack).
    Same,
    /// The recorded orphan of this order's double fill, acknowledged again: nothing new.
    Orphan,
    /// Bound to another connection (of this user or another), or to another order: refused.
    Foreign,
}

/// The key of `ticket` of account `account` on the trade server `server` (see the module docs).
pub fn ticket_key(server: Option<&str>, account: Option<&str>, user: Uuid, ticket: u64) -> Key {
    let clean = |s: Option<&str>| -> Option<String> {
        s.map(|s| s.trim().to_lowercase().chars().take(MAX_SERVER_KEY).collect()).filter(|s: &String| !s.is_empty())
    };
    let pk = match (clean(server), clean(account)) {
        (Some(s), Some(a)) => format!("TICKET#{s}#{a}#{ticket}"),
        _ => format!("TICKET#user:{user}#{ticket}"),
    };
    Key::new(pk, "BIND")
}

/// Judges an ack binding a ticket to `order` of `(user, broker)` against the stored binding.
pub fn judge(stored: Option<&TicketBinding>, user: Uuid, broker: Uuid, order: Uuid) -> Verdict {
    match stored {
        None => Verdict::Free,
        Some(b) if b.user_id == user && b.broker_connection_id == broker && b.order_id == order => match b.orphan {
            true => Verdict::Orphan,
            false => Verdict::Same,
        },
        Some(_) => Verdict::Foreign,
    }
}

impl ConnectorRegistry {
    /// The binding stored under `key`, if any.
    pub async fn ticket_binding(&self, key: &Key) -> Result<Option<TicketBinding>, StoreError> {
        match self.store.get(key).await? {
            Some(item) => Ok(Some(item.to_record()?)),
            None => Ok(None),
        }
    }

    /// Binds a ticket unless it is bound already. Returns whether this call bound it.
    pub async fn bind_ticket(&self, key: &Key, binding: &TicketBinding) -> Result<bool, StoreError> {
        let item = Item::from_record(key, binding)?;
        match self.store.put(item, Some(Condition::NotExists)).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_condition_failure() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ports::SystemClock;
    use crate::settings::tests::MemoryStore;

    #[test]
    fn keyed_by_trade_server_and_account_else_by_user() {
        let u = Uuid::from_u128(1);
        let key = |server: Option<&str>, account: Option<&str>, user: Uuid| ticket_key(server, account, user, 42);
        assert_eq!(key(Some(" ICMarkets-Demo "), Some("5001"), u).pk, "TICKET#icmarkets-demo#5001#42");
        assert_eq!(
            key(Some("icmarkets-demo"), Some("5001"), Uuid::from_u128(2)),
            key(Some("ICMARKETS-DEMO"), Some("5001"), u)
        );
        assert_ne!(key(Some("srv"), Some("5001"), u), key(Some("srv"), Some("5002"), u));
        assert_eq!(key(None, Some("5001"), u).pk, format!("TICKET#user:{u}#42"));
        assert_eq!(key(Some("srv"), None, u), key(None, None, u));
        assert_eq!(key(Some("  "), Some("5001"), u), key(None, None, u));
        assert!(key(Some(&"s".repeat(5000)), Some(&"1".repeat(5000)), u).pk.len() < 230);
    }

    #[test]
    fn only_the_same_order_of_the_same_connection_passes() {
        let (u, b, o) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let bound = TicketBinding { ticket: 9, user_id: u, broker_connection_id: b, order_id: o, orphan: false };
        assert_eq!(judge(None, u, b, o), Verdict::Free);
        assert_eq!(judge(Some(&bound), u, b, o), Verdict::Same);
        assert_eq!(judge(Some(&bound), u, Uuid::from_u128(9), o), Verdict::Foreign, "another connection of the user");
        assert_eq!(judge(Some(&bound), Uuid::from_u128(8), b, o), Verdict::Foreign, "another user");
        assert_eq!(judge(Some(&bound), u, b, Uuid::from_u128(7)), Verdict::Foreign, "another order");
        let orphan = TicketBinding { orphan: true, ..bound };
        assert_eq!(judge(Some(&orphan), u, b, o), Verdict::Orphan, "the orphan of this order, again");
        assert_eq!(judge(Some(&orphan), u, b, Uuid::from_u128(7)), Verdict::Foreign, "never another order's");
    }

    #[tokio::test]
    async fn bound_once() {
        let registry = ConnectorRegistry::new(Arc::new(MemoryStore::default()), Arc::new(SystemClock));
        let key = ticket_key(Some("srv"), Some("7"), Uuid::from_u128(1), 5);
        let first = TicketBinding {
            ticket: 5,
            user_id: Uuid::from_u128(1),
            broker_connection_id: Uuid::from_u128(2),
            order_id: Uuid::from_u128(3),
            orphan: false,
        };
        assert!(registry.bind_ticket(&key, &first).await.unwrap());
        let second = TicketBinding { user_id: Uuid::from_u128(4), ..first.clone() };
        assert!(!registry.bind_ticket(&key, &second).await.unwrap());
        assert_eq!(registry.ticket_binding(&key).await.unwrap(), Some(first));
    }
}
