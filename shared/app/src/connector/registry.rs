//! Live WebSocket links in the store, so every function instance (and the local gateway) sees the same
//! picture — the original kept them in one worker's memory and lost them across workers (contract §3.1,
//! §9.3 item 17).
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `WS#<ws connection id>` | `CONN` | one WebSocket connection ([`WsConnection`]): kind, user, broker connection, a connector's capabilities; `ttl` |
//! | `USER#<uid>` | `LINK#<broker connection id>` | the connector currently holding that broker connection ([`ConnectorLink`]), its capabilities; `ttl` |
//! | `USER#<uid>` | `BROWSER#<ws connection id>` | one of the user's dashboard sockets (fan-out set); `ttl` |
//! | `USER#<uid>` | `ACCOUNT#<broker connection id>` | the latest account snapshot reported by MT5 ([`AccountSnapshot`]) |
//! | `USER#<uid>` | `QUOTE#<symbol>` | the last price a connector reported for a symbol ([`Quote`]) |
//! | `USER#<uid>` | `POSITIONS#<broker connection id>` | the latest positions report ([`super::reports::PositionsSnapshot`]) |
//! | `USER#<uid>` | `OUTBOX#<broker connection id>#<request id>` | a trade command not yet acknowledged ([`super::outbox`]); `ttl` |
//!
//! A second connector on the same broker connection replaces the link; when the older socket closes it
//! removes the link only if it still points at itself (a conditional delete — the original removed the
//! newer session, contract §3.1). Records carry a `ttl` past API Gateway's 2-hour connection limit, so a
//! crashed gateway cannot leave a connector "online" for long.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use nusatrade_domain::money::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::capabilities::{CAPABILITIES_ATTR, Capabilities, STATED_CAPABILITIES_ATTR};
use super::reporting::Reporting;
use super::reports::{PositionsSnapshot, snapshot_item, snapshot_key};
use crate::keys::user_pk;
use crate::ports::{Clock, Condition, Item, ItemStore, Key, Query, StoreError, Update, Value};

/// How long a link record outlives its connection's start: API Gateway's 2-hour maximum plus a margin.
pub const LINK_TTL: Duration = Duration::minutes(130);

/// Longest list of links or browsers read for one user.
const MAX_LINKS: u32 = 100;

/// Which endpoint a WebSocket connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// `/connector/ws`: an MT5 connector holding a broker connection.
    Connector,
    /// `/connector/client`: a dashboard.
    Browser,
}

/// `WS#<id>` / `CONN`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WsConnection {
    pub ws_connection_id: String,
    pub kind: LinkKind,
    pub user_id: Uuid,
    pub email: String,
    /// The broker connection a connector holds (`None` for browsers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_connection_id: Option<Uuid>,
    pub connected_at: DateTime<Utc>,
    pub ttl: i64,
    /// The auth session a browser connected with: trade commands over the socket re-check it (a revoked
    /// session cannot trade through a socket opened before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    /// When the connection's first message was handled (`WELCOME` / `CONNECTIONS_STATUS` sent, the outbox
    /// resent): set once, by a conditional write, whichever function instance gets the first message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeted_at: Option<DateTime<Utc>>,
    /// What a connector stated in its `AUTH` ([`super::capabilities`]) less what its connection's flags withdraw
    /// ([`super::flags`]); empty for the original connector.
    #[serde(default, skip_serializing_if = "Capabilities::is_empty")]
    pub capabilities: Capabilities,
    /// What the connector stated, when flags withdrew some of it (else the same as `capabilities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stated_capabilities: Option<Capabilities>,
}

/// `USER#<uid>` / `LINK#<broker connection id>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectorLink {
    pub broker_connection_id: Uuid,
    pub ws_connection_id: String,
    pub user_id: Uuid,
    pub connected_at: DateTime<Utc>,
    pub ttl: i64,
    /// What the connector stated in its `AUTH` ([`super::capabilities`]) less what the connection's flags withdraw
    /// ([`super::flags`]): what every decision reads. Empty for the original connector.
    #[serde(default, skip_serializing_if = "Capabilities::is_empty")]
    pub capabilities: Capabilities,
    /// What the connector stated, when flags withdrew some of it (else the same as `capabilities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stated_capabilities: Option<Capabilities>,
    /// What the connector's traffic says about the link (top-level attributes of the same item).
    #[serde(flatten, default)]
    pub health: LinkHealth,
    /// Whether the connector's positions reports can be reconciled ([`super::reporting`]).
    #[serde(flatten, default)]
    pub reporting: Reporting,
}

impl ConnectorLink {
    /// What the connection health shows for the link's positions reports ([`Reporting::reconciliation`]).
    pub fn reconciliation(&self) -> &'static str {
        self.reporting.reconciliation(&self.capabilities)
    }

    /// `{stated, effective}`: what the connector stated in its `AUTH` and what is trusted of it (the connection's
    /// flags withdraw capabilities), as the connection status and `CONNECTIONS_STATUS` show them.
    pub fn capabilities_view(&self) -> serde_json::Value {
        let stated = self.stated_capabilities.as_ref().unwrap_or(&self.capabilities);
        serde_json::json!({
            "stated": stated.names().collect::<Vec<_>>(),
            "effective": self.capabilities.names().collect::<Vec<_>>(),
        })
    }
}

/// Health of a live connector link, shown by `GET /brokers/connections/{id}/status`. Every field is absent
/// until the WebSocket handler records it with [`ConnectorRegistry::record_link_health`]: `last_heartbeat`
/// on `HEARTBEAT`, `last_message_at` on any inbound frame (both written at most every few seconds),
/// `latency_ms` from our `PING` and the connector's `PONG`, `mt5_connected` from `MT5_STATUS` (or `true`
/// once MT5 answered with account or positions data), `positions_count`/`positions_synced_at` from
/// `POSITIONS` / `SYNC_RESPONSE`. A new connector on the broker connection starts with an empty record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkHealth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mt5_connected: Option<bool>,
    /// Open positions in the connector's last `POSITIONS` / `SYNC_RESPONSE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions_synced_at: Option<DateTime<Utc>>,
}

/// `USER#<uid>` / `ACCOUNT#<broker connection id>`: what MT5 last said about the account
/// (`ACCOUNT_INFO` / `ACCOUNT_UPDATE` / `SYNC_RESPONSE.account`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub broker_connection_id: Uuid,
    pub balance: Decimal,
    pub equity: Decimal,
    pub margin: Decimal,
    pub free_margin: Decimal,
    #[serde(default)]
    pub profit: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leverage: Option<u32>,
    /// The account currency when the connector reports it (the original never did: USD is assumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    pub reported_at: DateTime<Utc>,
}

/// `USER#<uid>` / `QUOTE#<symbol>`: the last bid/ask a connector of the user reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
    pub time: DateTime<Utc>,
}

/// The link attribute holding when our last `PING` went out (read back when the `PONG` arrives, possibly in
/// another function instance).
pub const PING_SENT_ATTR: &str = "ping_sent_at";

fn iso(t: DateTime<Utc>) -> Value {
    Value::from(crate::wire::iso(t))
}

/// The update writing the given (`Some`) health fields; `None` when there are none.
pub fn health_update(health: &LinkHealth) -> Option<Update> {
    let fields: [(&str, Option<Value>); 6] = [
        ("last_heartbeat", health.last_heartbeat.map(iso)),
        ("last_message_at", health.last_message_at.map(iso)),
        ("latency_ms", health.latency_ms.map(Value::from)),
        ("mt5_connected", health.mt5_connected.map(Value::from)),
        ("positions_count", health.positions_count.map(|n| Value::from(u64::from(n)))),
        ("positions_synced_at", health.positions_synced_at.map(iso)),
    ];
    let mut update = Update::new();
    let mut any = false;
    for (attr, value) in fields {
        if let Some(value) = value {
            update = update.set(attr, value);
            any = true;
        }
    }
    any.then_some(update)
}

pub fn quote_key(user: Uuid, symbol: &str) -> Key {
    Key::new(user_pk(user), format!("QUOTE#{symbol}"))
}

pub fn ws_key(ws_connection_id: &str) -> Key {
    Key::new(format!("WS#{ws_connection_id}"), "CONN")
}
pub fn link_key(user: Uuid, broker_connection: Uuid) -> Key {
    Key::new(user_pk(user), format!("LINK#{broker_connection}"))
}
pub fn browser_key(user: Uuid, ws_connection_id: &str) -> Key {
    Key::new(user_pk(user), format!("BROWSER#{ws_connection_id}"))
}
pub fn account_key(user: Uuid, broker_connection: Uuid) -> Key {
    Key::new(user_pk(user), format!("ACCOUNT#{broker_connection}"))
}

/// Reads and writes the link records.
#[derive(Clone)]
pub struct ConnectorRegistry {
    pub store: Arc<dyn ItemStore>,
    pub clock: Arc<dyn Clock>,
}

impl ConnectorRegistry {
    pub fn new(store: Arc<dyn ItemStore>, clock: Arc<dyn Clock>) -> Self {
        ConnectorRegistry { store, clock }
    }

    fn ttl(&self, from: DateTime<Utc>) -> i64 {
        (from + LINK_TTL).timestamp()
    }

    /// Records an accepted connector connection and makes it the link of its broker connection
    /// (replacing an older one). Returns the replaced link's WebSocket id, if any.
    pub async fn register_connector(
        &self,
        ws_connection_id: &str,
        user_id: Uuid,
        email: &str,
        broker_connection_id: Uuid,
    ) -> Result<Option<String>, StoreError> {
        self.register_connector_session(ws_connection_id, user_id, email, broker_connection_id, None).await
    }

    /// [`register_connector`](Self::register_connector) with the auth session the connector connected with: its
    /// messages are checked against that session, and revoking it closes the socket.
    pub async fn register_connector_session(
        &self,
        ws_connection_id: &str,
        user_id: Uuid,
        email: &str,
        broker_connection_id: Uuid,
        session_id: Option<Uuid>,
    ) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        let conn = WsConnection {
            ws_connection_id: ws_connection_id.to_owned(),
            kind: LinkKind::Connector,
            user_id,
            email: email.to_owned(),
            broker_connection_id: Some(broker_connection_id),
            connected_at: now,
            ttl: self.ttl(now),
            session_id,
            greeted_at: None,
            capabilities: Capabilities::none(),
            stated_capabilities: None,
        };
        self.store.put(Item::from_record(&ws_key(ws_connection_id), &conn)?, None).await?;
        let key = link_key(user_id, broker_connection_id);
        let previous = self.live(self.store.get(&key).await?).and_then(|i| i.to_record::<ConnectorLink>().ok());
        let link = ConnectorLink {
            broker_connection_id,
            ws_connection_id: ws_connection_id.to_owned(),
            user_id,
            connected_at: now,
            ttl: self.ttl(now),
            capabilities: Capabilities::none(),
            stated_capabilities: None,
            health: LinkHealth::default(),
            reporting: Default::default(),
        };
        self.store.put(Item::from_record(&key, &link)?, None).await?;
        Ok(previous.map(|p| p.ws_connection_id).filter(|id| id != ws_connection_id))
    }

    /// Records an accepted browser connection.
    pub async fn register_browser(&self, ws_connection_id: &str, user_id: Uuid, email: &str) -> Result<(), StoreError> {
        self.register_browser_session(ws_connection_id, user_id, email, None).await
    }

    /// Records an accepted browser connection with the auth session it connected with.
    pub async fn register_browser_session(
        &self,
        ws_connection_id: &str,
        user_id: Uuid,
        email: &str,
        session_id: Option<Uuid>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let conn = WsConnection {
            ws_connection_id: ws_connection_id.to_owned(),
            kind: LinkKind::Browser,
            user_id,
            email: email.to_owned(),
            broker_connection_id: None,
            connected_at: now,
            ttl: self.ttl(now),
            session_id,
            greeted_at: None,
            capabilities: Capabilities::none(),
            stated_capabilities: None,
        };
        let browser = Item::new(&browser_key(user_id, ws_connection_id))
            .with("ws_connection_id", ws_connection_id)
            .with("connected_at", now.to_rfc3339())
            .with("ttl", conn.ttl);
        self.store.put(Item::from_record(&ws_key(ws_connection_id), &conn)?, None).await?;
        self.store.put(browser, None).await
    }

    /// The connection record of a WebSocket id (`None` when unknown or expired).
    pub async fn connection(&self, ws_connection_id: &str) -> Result<Option<WsConnection>, StoreError> {
        self.live(self.store.get(&ws_key(ws_connection_id)).await?).map(|i| i.to_record()).transpose()
    }

    /// Marks the connection's first message as handled. `true` only for the one call that set it (`false` when
    /// it was set already, or the connection is gone): the caller then sends the first-contact messages.
    pub async fn mark_greeted(&self, ws_connection_id: &str) -> Result<bool, StoreError> {
        let update = Update::new().set("greeted_at", iso(self.clock.now()));
        let first = Condition::Exists.and(Condition::AttrNotExists("greeted_at".into()));
        match self.store.update(&ws_key(ws_connection_id), update, Some(first)).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_condition_failure() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Forgets a connection (`$disconnect`, or a push answered 410 Gone). A connector's link is removed only
    /// if it still points at this connection. Returns the record that was removed.
    pub async fn unregister(&self, ws_connection_id: &str) -> Result<Option<WsConnection>, StoreError> {
        let Some(item) = self.store.delete(&ws_key(ws_connection_id), None).await? else {
            return Ok(None);
        };
        let conn: WsConnection = item.to_record()?;
        match (conn.kind, conn.broker_connection_id) {
            (LinkKind::Connector, Some(broker)) => {
                let mine = Condition::eq("ws_connection_id", ws_connection_id);
                match self.store.delete(&link_key(conn.user_id, broker), Some(mine)).await {
                    Ok(_) => {}
                    Err(e) if e.is_condition_failure() => {} // already replaced by a newer connector
                    Err(e) => return Err(e),
                }
            }
            _ => {
                self.store.delete(&browser_key(conn.user_id, ws_connection_id), None).await?;
            }
        }
        Ok(Some(conn))
    }

    /// Records the given (`Some`) health fields on the link of a broker connection, if that link is still held
    /// by `ws_connection_id` (a replaced or removed link is left alone). Returns whether a link was updated.
    pub async fn record_link_health(
        &self,
        user_id: Uuid,
        broker_connection_id: Uuid,
        ws_connection_id: &str,
        health: &LinkHealth,
    ) -> Result<bool, StoreError> {
        let Some(update) = health_update(health) else { return Ok(false) };
        self.update_link(user_id, broker_connection_id, ws_connection_id, update).await
    }

    /// Applies `update` to the link of a broker connection if `ws_connection_id` still holds it. Returns
    /// whether a link was updated.
    pub async fn update_link(
        &self,
        user_id: Uuid,
        broker_connection_id: Uuid,
        ws_connection_id: &str,
        update: Update,
    ) -> Result<bool, StoreError> {
        // An expired link counts as absent for conditions too: it is not revived.
        let mine = Condition::Exists.and(Condition::eq("ws_connection_id", ws_connection_id));
        match self.store.update(&link_key(user_id, broker_connection_id), update, Some(mine)).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_condition_failure() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// When the link's last `PING` went out, if one is pending (see [`PING_SENT_ATTR`]).
    pub async fn ping_sent_at(
        &self,
        user_id: Uuid,
        broker_connection_id: Uuid,
        ws_connection_id: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(item) = self.live(self.store.get(&link_key(user_id, broker_connection_id)).await?) else {
            return Ok(None);
        };
        if item.get_s("ws_connection_id") != Some(ws_connection_id) {
            return Ok(None);
        }
        Ok(item.get_s(PING_SENT_ATTR).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc)))
    }

    /// Stores the latest positions snapshot of a broker connection (shrunk to the item limit, flagged
    /// truncated then). Returns what was stored.
    pub async fn save_positions(
        &self,
        user_id: Uuid,
        mut snapshot: PositionsSnapshot,
    ) -> Result<PositionsSnapshot, StoreError> {
        let item = snapshot_item(user_id, &mut snapshot)?;
        self.store.put(item, None).await?;
        Ok(snapshot)
    }

    /// The latest positions snapshot of a broker connection, if a connector ever reported one.
    pub async fn positions(
        &self,
        user_id: Uuid,
        broker_connection_id: Uuid,
    ) -> Result<Option<PositionsSnapshot>, StoreError> {
        self.store.get(&snapshot_key(user_id, broker_connection_id)).await?.map(|i| i.to_record()).transpose()
    }

    /// The connector holding a broker connection now, if any.
    pub async fn link(&self, user_id: Uuid, broker_connection_id: Uuid) -> Result<Option<ConnectorLink>, StoreError> {
        self.live(self.store.get(&link_key(user_id, broker_connection_id)).await?).map(|i| i.to_record()).transpose()
    }

    /// Every live connector of a user, most recently connected first.
    pub async fn links(&self, user_id: Uuid) -> Result<Vec<ConnectorLink>, StoreError> {
        let page = self.store.query(Query::partition(user_pk(user_id)).sk_prefix("LINK#").limit(MAX_LINKS)).await?;
        let now = self.clock.epoch_seconds();
        let mut links: Vec<ConnectorLink> =
            page.items.into_iter().filter(|i| !i.is_expired(now)).map(|i| i.to_record()).collect::<Result<_, _>>()?;
        links.sort_by_key(|l| std::cmp::Reverse(l.connected_at));
        Ok(links)
    }

    /// The connector to command: the one holding `broker_connection_id` when given, else the user's most
    /// recently connected one (the dashboard never sends a connection id, contract §9.2 item 4).
    pub async fn find_connector(
        &self,
        user_id: Uuid,
        broker_connection_id: Option<Uuid>,
    ) -> Result<Option<ConnectorLink>, StoreError> {
        match broker_connection_id {
            Some(id) => self.link(user_id, id).await,
            None => Ok(self.links(user_id).await?.into_iter().next()),
        }
    }

    /// The WebSocket ids of the user's dashboards.
    pub async fn browsers(&self, user_id: Uuid) -> Result<Vec<String>, StoreError> {
        let page = self.store.query(Query::partition(user_pk(user_id)).sk_prefix("BROWSER#").limit(MAX_LINKS)).await?;
        let now = self.clock.epoch_seconds();
        Ok(page
            .items
            .into_iter()
            .filter(|i| !i.is_expired(now))
            .filter_map(|i| i.get_s("ws_connection_id").map(str::to_owned))
            .collect())
    }

    /// The live sockets (connectors and dashboards) of a user opened with one of `sessions`, each with its kind.
    pub async fn session_sockets(
        &self,
        user_id: Uuid,
        sessions: &[Uuid],
    ) -> Result<Vec<(String, LinkKind)>, StoreError> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<String> = self.links(user_id).await?.into_iter().map(|l| l.ws_connection_id).collect();
        ids.extend(self.browsers(user_id).await?);
        let mut out = Vec::new();
        for id in ids {
            if let Some(c) = self.connection(&id).await?
                && c.user_id == user_id
                && c.session_id.is_some_and(|s| sessions.contains(&s))
            {
                out.push((id, c.kind));
            }
        }
        Ok(out)
    }

    /// Stores the latest account snapshot of a broker connection.
    pub async fn save_account(&self, user_id: Uuid, snapshot: &AccountSnapshot) -> Result<(), StoreError> {
        let key = account_key(user_id, snapshot.broker_connection_id);
        self.store.put(Item::from_record(&key, snapshot)?, None).await
    }

    /// The latest account snapshot of a broker connection, if MT5 ever reported one.
    pub async fn account(
        &self,
        user_id: Uuid,
        broker_connection_id: Uuid,
    ) -> Result<Option<AccountSnapshot>, StoreError> {
        self.store.get(&account_key(user_id, broker_connection_id)).await?.map(|i| i.to_record()).transpose()
    }

    /// Stores the last price of a symbol.
    pub async fn save_quote(&self, user_id: Uuid, quote: &Quote) -> Result<(), StoreError> {
        self.store.put(Item::from_record(&quote_key(user_id, &quote.symbol), quote)?, None).await
    }

    /// The last price of a symbol, if one was reported no longer than `max_age` ago.
    pub async fn quote(&self, user_id: Uuid, symbol: &str, max_age: Duration) -> Result<Option<Quote>, StoreError> {
        let quote: Option<Quote> =
            self.store.get(&quote_key(user_id, symbol)).await?.map(|i| i.to_record()).transpose()?;
        let now = self.clock.now();
        Ok(quote.filter(|q| now - q.time <= max_age))
    }

    fn live(&self, item: Option<Item>) -> Option<Item> {
        let now = self.clock.epoch_seconds();
        item.filter(|i| !i.is_expired(now))
    }
}

impl ConnectorRegistry {
    /// Keeps a connector's capabilities with its connection record and, while it holds it, its broker connection's
    /// link. A connection that is gone (or a link held by a newer connector) is left alone.
    pub async fn record_capabilities(
        &self,
        ws_connection_id: &str,
        user_id: Uuid,
        broker_connection_id: Uuid,
        capabilities: &Capabilities,
    ) -> Result<(), StoreError> {
        self.record_stated_capabilities(ws_connection_id, user_id, broker_connection_id, capabilities, capabilities)
            .await
    }

    /// [`record_capabilities`](Self::record_capabilities) of a connection whose flags withdraw some of what its
    /// connector states ([`super::flags::effective`]): `capabilities` holds what is trusted (every decision reads it),
    /// `stated_capabilities` what the connector said, when the two differ.
    pub async fn record_stated_capabilities(
        &self,
        ws_connection_id: &str,
        user_id: Uuid,
        broker_connection_id: Uuid,
        stated: &Capabilities,
        effective: &Capabilities,
    ) -> Result<(), StoreError> {
        let list = |c: &Capabilities| Value::L(c.names().map(Value::from).collect());
        // An empty list is no attribute (the original connector's records stay as they were).
        let update = || {
            let u = match effective.is_empty() {
                true => Update::new().remove(CAPABILITIES_ATTR),
                false => Update::new().set(CAPABILITIES_ATTR, list(effective)),
            };
            match stated == effective {
                true => u.remove(STATED_CAPABILITIES_ATTR),
                false => u.set(STATED_CAPABILITIES_ATTR, list(stated)),
            }
        };
        let conn = self.store.update(&ws_key(ws_connection_id), update(), Some(Condition::Exists)).await;
        match conn {
            Ok(_) => {}
            Err(e) if e.is_condition_failure() => return Ok(()),
            Err(e) => return Err(e),
        }
        let mine = Condition::Exists.and(Condition::eq("ws_connection_id", ws_connection_id));
        match self.store.update(&link_key(user_id, broker_connection_id), update(), Some(mine)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_condition_failure() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
