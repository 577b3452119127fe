//! Store layout of reconciliation (single table). No table scans: the sweeps read two small sharded indexes that
//! reconciliation keeps itself.
//!
//! | PK | SK | what |
//! |---|---|---|
//! | `USER#<uid>` | `RECONCILE#<broker connection id>` | the connection's last run and totals ([`ConnectionRun`]), shown by `GET /trading/position-monitor/status` |
//! | `RECON#WATCH#<shard>` | `<uid>#<broker connection id>` | a connection with orders in flight or unknown ([`IndexEntry`]): the every-minute sweep asks it for evidence until none is left; `ttl` 7 days |
//! | `RECON#LINK#<shard>` | `<uid>#<broker connection id>` | a connection whose connector reported positions recently ([`IndexEntry`]): the 5-minute sweep asks it for a fresh snapshot; `ttl` = the link's (2 h 10 min) |
//! | `USER#<uid>` | `AUDIT#<time>#<order id>.<version>` | one audit item per repair, written in the repair's own transaction (shown by `GET /users/activity`) |
//! | `USER#<uid>` | `TRAIL#<order id>` | when the trailing driver last moved that position's stop (`sent_at`, epoch seconds); `ttl` 1 day |
//!
//! A shard is the first byte of the broker connection id modulo [`SHARDS`], so one sweep message per shard spreads
//! the work, and a shard's partition never holds more than its share of the connections.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::audit::{AUDIT_PREFIX, AUDIT_RETENTION_DAYS};
use crate::keys::user_pk;
use crate::ports::{Item, Key, Value};

/// Shards of the sweep indexes.
pub const SHARDS: u8 = 16;
/// How long a watch entry lives without being renewed.
pub const WATCH_TTL_DAYS: i64 = 7;

/// Which sweep index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// Connections with unresolved orders.
    Watch,
    /// Connections seen online.
    Link,
}

impl IndexKind {
    fn prefix(self) -> &'static str {
        match self {
            IndexKind::Watch => "RECON#WATCH#",
            IndexKind::Link => "RECON#LINK#",
        }
    }
}

/// The shard of a broker connection.
pub fn shard_of(broker_connection: Uuid) -> u8 {
    broker_connection.as_bytes()[0] % SHARDS
}

/// The partition of one shard of an index.
pub fn index_pk(kind: IndexKind, shard: u8) -> String {
    format!("{}{shard:02}", kind.prefix())
}

/// The key of a connection's entry in an index.
pub fn index_key(kind: IndexKind, user: Uuid, broker_connection: Uuid) -> Key {
    Key::new(index_pk(kind, shard_of(broker_connection)), format!("{user}#{broker_connection}"))
}

/// An entry of a sweep index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub user_id: Uuid,
    pub broker_connection_id: Uuid,
    /// Watch: the oldest unresolved order's creation (history is asked from there). Link: when it was seen.
    pub since: DateTime<Utc>,
    pub ttl: i64,
}

/// `USER#<uid>` / `RECONCILE#<broker connection id>`.
pub fn run_key(user: Uuid, broker_connection: Uuid) -> Key {
    Key::new(user_pk(user), format!("{RUN_PREFIX}{broker_connection}"))
}
/// Sort-key prefix of the per-connection run records.
pub const RUN_PREFIX: &str = "RECONCILE#";

/// `USER#<uid>` / `TRAIL#<order id>`.
pub fn trail_key(user: Uuid, order: Uuid) -> Key {
    Key::new(user_pk(user), format!("TRAIL#{order}"))
}

/// The last reconciliation of a broker connection, and totals. Written with one update per run (last-run fields
/// set, totals added), so concurrent runs lose no count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRun {
    pub broker_connection_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<DateTime<Utc>>,
    /// The snapshot the last run compared (its receipt time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot_at: Option<DateTime<Utc>>,
    /// `reconciled`, or why nothing was compared (`skipped: stale snapshot (75 s old)`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<String>,
    /// Differences the last run found (repairs decided, checks requested, conflicts).
    #[serde(default)]
    pub last_drift: u64,
    /// Repairs the last run wrote.
    #[serde(default)]
    pub last_actions: u64,
    #[serde(default)]
    pub last_conflicts: u64,
    /// Orders still in flight or unknown after the last run.
    #[serde(default)]
    pub unresolved: u64,
    #[serde(default)]
    pub runs_total: u64,
    #[serde(default)]
    pub drift_total: u64,
    #[serde(default)]
    pub actions_total: u64,
    /// When a snapshot was last asked of the connector by reconciliation (sweeps, timeouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_requested_at: Option<DateTime<Utc>>,
    /// When a targeted check (history + tickets) was last asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_requested_at: Option<DateTime<Utc>>,
    /// The two latest complete positions reports compared (when taken, which tickets): the previous one is the
    /// kernel's evidence for the two-consecutive-reports rule ([`nusatrade_domain::reconcile::ReportEvidence`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub complete_reports: Vec<nusatrade_domain::reconcile::PriorReport>,
    /// Orders of the connection closed externally without a deal (newest last, at most [`KEPT_UNCONFIRMED`]): a
    /// later closing deal corrects them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed_closes: Vec<Uuid>,
}

/// How many unconfirmed closes a connection's run record keeps watching for their deal.
pub const KEPT_UNCONFIRMED: usize = 50;

/// How many complete reports a connection's run record keeps.
pub const KEPT_REPORTS: usize = 2;

impl ConnectionRun {
    /// The latest complete report kept that was taken before `taken_at`.
    pub fn previous_report(&self, taken_at: DateTime<Utc>) -> Option<&nusatrade_domain::reconcile::PriorReport> {
        self.complete_reports.iter().filter(|r| r.taken_at < taken_at).max_by_key(|r| r.taken_at)
    }

    /// The reports to keep once `report` was compared: the [`KEPT_REPORTS`] latest, one per time.
    pub fn with_report(
        &self,
        report: nusatrade_domain::reconcile::PriorReport,
    ) -> Vec<nusatrade_domain::reconcile::PriorReport> {
        let at = report.taken_at;
        let mut all: Vec<_> =
            self.complete_reports.iter().filter(|r| r.taken_at != at).cloned().chain([report]).collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.taken_at));
        all.truncate(KEPT_REPORTS);
        all
    }
}

/// Event names of reconciliation's audit items.
pub mod events {
    pub const OPENED: &str = "order_reconciled_open";
    pub const REJECTED: &str = "order_reconciled_rejected";
    pub const CLOSED_EXTERNALLY: &str = "order_closed_externally";
    pub const ADOPTED: &str = "position_adopted";
    pub const FOLLOWED: &str = "order_followed_mt5";
    pub const CLOSE_CORRECTED: &str = "order_close_corrected";
}

/// The audit item of a repair: the shape `GET /users/activity` lists (`AuditLog`), keyed by the write (order id and
/// the version written), so it exists exactly when the repair does — it goes in the same transaction.
pub fn audit_item(
    user: Uuid,
    order: Uuid,
    version: u64,
    event: &str,
    at: DateTime<Utc>,
    details: serde_json::Value,
) -> Item {
    let at_s = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let id = format!("{order}.{version}");
    let key = Key::new(user_pk(user), format!("{AUDIT_PREFIX}{at_s}#{id}"));
    Item::new(&key)
        .with("id", id)
        .with("event", event)
        .with("at", at_s)
        .with("ip", "")
        .with("user_agent", "reconciliation")
        .with("details", Value::from_json(details).unwrap_or(Value::Null))
        .with("ttl", at.timestamp() + AUDIT_RETENTION_DAYS * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_and_keys_are_stable() {
        let (u, b) = (Uuid::from_u128(1), Uuid::from_u128(0xAB << 120));
        assert_eq!(shard_of(b), 0xAB % SHARDS);
        let k = index_key(IndexKind::Watch, u, b);
        assert_eq!(k.pk, format!("RECON#WATCH#{:02}", 0xAB % SHARDS));
        assert_eq!(k.sk, format!("{u}#{b}"));
        assert_ne!(index_key(IndexKind::Link, u, b).pk, k.pk);
        let shards: std::collections::BTreeSet<u8> =
            (0..200u128).map(|i| shard_of(Uuid::from_u128(i << 120))).collect();
        assert_eq!(shards.len(), SHARDS as usize);
    }

    #[test]
    fn audit_items_are_keyed_by_the_write() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (u, o) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let i = audit_item(u, o, 3, events::OPENED, at, serde_json::json!({"ticket": 5}));
        let k = i.key().unwrap();
        assert!(k.sk.starts_with(AUDIT_PREFIX) && k.sk.ends_with(&format!("#{o}.3")), "{}", k.sk);
        assert_eq!(i.get_s("event"), Some(events::OPENED));
        assert_eq!(i.ttl(), Some(at.timestamp() + AUDIT_RETENTION_DAYS * 86_400));
    }
}
