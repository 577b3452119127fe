//! The MT5 connector and browser links, as the trading use cases see them (design §5, contract §3):
//! [`registry`] — which WebSocket connection currently holds a user's broker connection, the user's
//! browser sockets, the latest account snapshot — and [`protocol`] — the commands sent to a connector
//! and the acknowledgements it sends back.
//!
//! The WebSocket handlers (issue #5) write the registry on `$connect`/`$disconnect` and feed inbound
//! messages to the use cases; the order use cases (issue #4) read it to find the connector to command.

pub mod channels;
pub mod protocol;
pub mod registry;

pub use protocol::{Command, CommandKind, RequestId, TradeResult};
pub use registry::{AccountSnapshot, ConnectorLink, ConnectorRegistry, LinkHealth, LinkKind, Quote, WsConnection};
