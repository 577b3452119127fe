//! `CONNECTIONS_STATUS`, the dashboards' view of the user's broker connections and the connectors holding them:
//! pushed by the dashboard channel (on demand and at first contact, [`super::greeting`]), by the connector channel
//! when a link changes, and by reconciliation when a connector's reporting changes; and `CONNECTOR_WARNING`, a new
//! flag of a connection ([`tell_flag`]).

use chrono::Utc;
use serde_json::{Value, json};
use tracing::warn;
use uuid::Uuid;

use super::service::BrokerService;
use crate::connector::fanout::Fanout;
use crate::connector::flags::ConnectionFlag;
use crate::wire::iso;

/// `CONNECTIONS_STATUS`: the user's broker connections a connector holds now (the original's shape,
/// `{connection_id, mt5_connected, broker_name}`, plus account number, server, link times, `reconciliation`, the
/// connector's `capabilities` (`{stated, effective}`) and the connection's `flags` — additive fields).
pub async fn connections_status(brokers: &BrokerService, user: Uuid) -> Value {
    let list = match brokers.list(user).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "could not list the broker connections");
            Vec::new()
        }
    };
    let connections: Vec<Value> = list
        .iter()
        .filter_map(|c| {
            let l = c.link.as_ref()?;
            Some(json!({
                "connection_id": c.record.id,
                "mt5_connected": l.health.mt5_connected,
                "broker_name": c.record.broker_name,
                "account_number": c.record.account_number,
                "server": c.record.server,
                "connected_since": iso(l.connected_at),
                "last_message_at": l.health.last_message_at.map(iso),
                "reconciliation": l.reconciliation(),
                "capabilities": l.capabilities_view(),
                "flags": c.record.flags.iter().map(|f| f.to_wire()).collect::<Vec<_>>(),
            }))
        })
        .collect();
    json!({"type": "CONNECTIONS_STATUS", "connections": connections, "timestamp": iso(Utc::now())})
}

/// Tells the user's dashboards about a new flag of `broker` ([`crate::connector::flags`]): a `CONNECTOR_WARNING`
/// (`{connection_id, kind, detail, ticket, order_id, …}`), then a fresh `CONNECTIONS_STATUS` carrying the flags.
pub async fn tell_flag(brokers: &BrokerService, dashboards: &Fanout, user: Uuid, broker: Uuid, flag: &ConnectionFlag) {
    let mut warning = flag.to_wire();
    warning["type"] = json!("CONNECTOR_WARNING");
    warning["connection_id"] = json!(broker);
    warning["timestamp"] = json!(iso(Utc::now()));
    let status = connections_status(brokers, user).await;
    dashboards.broadcast_all(user, &[warning, status]).await;
}
