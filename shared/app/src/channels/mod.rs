//! The WebSocket edge (issue #5; contract §3): the handlers API Gateway's WebSocket routes (and the local gateway)
//! call — [`connector`] for MT5 connectors, [`browser`] for dashboards, [`router`] for both behind the single
//! endpoint of a stage. Like the HTTP routes, they parse what
//! arrives, call the use cases (orders, broker connections, reconciliation hooks) and shape what goes back; the
//! connector registry, protocol, outbox and fan-out they use are `crate::connector`'s.

pub mod browser;
pub(crate) mod common;
pub mod connector;
pub mod router;
