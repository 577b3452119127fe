//! The MT5 connector and browser links, as the trading use cases see them (design §5, contract §3):
//! [`registry`] — which WebSocket connection currently holds a user's broker connection, the user's
//! browser sockets, the latest account and positions snapshots — [`protocol`] — the commands sent to a
//! connector and the messages it sends back, parsed once — [`reports`] (positions, deals, account, MT5
//! status), the [`outbox`] of unacknowledged commands, the per-connection [`limits`] and the
//! [`fanout`] to a user's sockets; what a connector stated it can do, its [`capabilities`], and whether
//! its positions reports can be reconciled, its [`reporting`] state.
//!
//! The WebSocket handlers that feed inbound messages to the use cases live at the edge, in `crate::channels`
//! (they write the registry on `$connect`/`$disconnect`); the order use cases read it to find the connector to
//! command. Nothing here imports a feature that uses it.

pub mod capabilities;
pub mod fanout;
pub mod flags;
pub mod history;
pub mod limits;
pub mod outbox;
pub mod protocol;
pub mod registry;
pub mod reporting;
pub mod reports;
pub mod tickets;

pub use capabilities::{Capabilities, Capability};
pub use fanout::Fanout;
pub use limits::{LinkGuard, LinkLimits};
pub use outbox::OutboxEntry;
pub use protocol::{Command, CommandKind, ConnectorMessage, RequestId, TradeResult};
pub use registry::{AccountSnapshot, ConnectorLink, ConnectorRegistry, LinkHealth, LinkKind, Quote, WsConnection};
pub use reports::{BrokerPosition, PositionsSnapshot, SnapshotHook};
