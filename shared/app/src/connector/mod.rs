//! The MT5 connector and browser links, as the trading use cases see them (design §5, contract §3):
//! [`registry`] — which WebSocket connection currently holds a user's broker connection, the user's
//! browser sockets, the latest account and positions snapshots — [`protocol`] — the commands sent to a
//! connector and the messages it sends back, parsed once — [`reports`] (positions, deals, account, MT5
//! status), the [`outbox`] of unacknowledged commands, the per-connection [`limits`], and the two
//! WebSocket handlers ([`channels`] for connectors, [`browser`] for dashboards, [`router`] for both behind
//! the single endpoint of an API Gateway stage).
//!
//! The WebSocket handlers (issue #5) write the registry on `$connect`/`$disconnect` and feed inbound
//! messages to the use cases; the order use cases (issue #4) read it to find the connector to command.

pub mod browser;
pub mod channels;
pub mod fanout;
pub mod greeting;
pub mod limits;
pub mod outbox;
pub mod protocol;
pub mod registry;
pub mod reports;
pub mod router;

pub use fanout::Fanout;
pub use limits::{LinkGuard, LinkLimits};
pub use outbox::OutboxEntry;
pub use protocol::{Command, CommandKind, ConnectorMessage, RequestId, TradeResult};
pub use registry::{AccountSnapshot, ConnectorLink, ConnectorRegistry, LinkHealth, LinkKind, Quote, WsConnection};
pub use reports::{BrokerPosition, PositionsSnapshot, SnapshotHook};
