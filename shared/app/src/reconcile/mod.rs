//! Reconciliation, ack timeouts and trailing stops (issue #6; design §3, §4): the `reconcile` function's use cases.
//!
//! * [`jobs`]: the `reconcile` queue's messages and its schedules (every minute the connections with orders in
//!   flight, every 5 minutes every active connection); [`consumer`]: the queue's consumer.
//! * ack timeouts: one delayed `ack_timeout` message per command sent to a connector (`NUSATRADE_ACK_TIMEOUT_SECS`),
//!   scheduled by the order side (`crate::trading::orders::timeouts`), handled here.
//! * [`service`]: a run of the pure kernel (`nusatrade_domain::reconcile`) on a connection's books and latest
//!   snapshot, its conditional repairs, the sweeps and the snapshot requests.
//! * [`books`]: our orders and a stored snapshot in the kernel's terms (what a snapshot may prove).
//! * [`hook`]: the connector channel's [`crate::connector::SnapshotHook`] (snapshots → runs; prices → trailing).
//! * [`reporting`]: a connector's `ERROR` to a positions request (a failed snapshot) and the connection's
//!   `reconciliation` health.
//! * [`tickets`]: a reported ticket bound to another connection's order is not adopted.
//! * [`trailing`]: the trailing-stop driver.
//! * [`routes`]: `GET /trading/position-monitor/status`, `POST /trading/position-monitor/sync`.
//! * [`store`]: the layout (run records, the two sweep indexes, audit items, trailing slots).

pub mod books;
pub mod config;
pub mod consumer;
pub mod docs;
pub mod hook;
pub mod jobs;
pub mod reporting;
pub mod routes;
pub mod service;
pub mod store;
pub mod tickets;
pub mod trailing;

pub use crate::trading::orders::timeouts::AckTimeouts;
pub use config::ReconcileSettings;
pub use consumer::ReconcileConsumer;
pub use hook::ReconcileHook;
pub use jobs::{QUEUE, ReconcileJob, SCHEDULES};
pub use service::{Ask, ReconcileService, RunReport};
pub use trailing::TrailingDriver;
