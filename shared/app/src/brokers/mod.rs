//! Broker connections (contract §2.6): the MT5 accounts a user's connectors hold — their store layout
//! ([`store`]), use cases ([`service`], also called by the connector WebSocket handler), HTTP routes
//! ([`routes`]), and the dashboards' view of them, `CONNECTIONS_STATUS` ([`status`]), with the first frame a
//! dashboard socket gets ([`greeting`]).

pub mod docs;
pub mod greeting;
pub mod routes;
pub mod service;
pub mod status;
pub mod store;

pub use routes::{BrokersState, router};
pub use service::{
    BrokerError, BrokerService, Connection, ConnectionInput, ConnectionStatus, MAX_CONNECTIONS_PER_USER,
};
pub use store::{BrokerConnectionRecord, broker_key};
