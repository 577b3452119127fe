//! NusaTrade application layer: the ports every adapter implements, the HTTP routers shared by the
//! Lambda functions and the local gateway, and the WebSocket handler interface.
//!
//! No AWS SDK here. Domain rules live in `nusatrade-domain`; adapters in `infra/`.

pub mod admin;
pub mod ai;
pub mod api;
pub mod auth;
pub mod backtest;
pub mod backup;
pub mod brokers;
pub mod channels;
pub mod compose;
pub mod connector;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod limits;
pub mod load;
pub mod ml;
pub mod ports;
pub mod reconcile;
pub mod settings;
pub mod telemetry;
pub mod trading;
pub mod wire;
pub mod ws;

#[cfg(feature = "contract-tests")]
pub mod contract;
#[cfg(feature = "contract-tests")]
pub mod suites;
