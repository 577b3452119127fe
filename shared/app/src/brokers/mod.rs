//! Broker connections (contract §2.6): the MT5 accounts a user's connectors hold.

pub mod store;

pub use store::{BrokerConnectionRecord, broker_key};
