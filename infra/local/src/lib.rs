//! NusaTrade on a laptop: local adapters for every port, the local gateway that serves the same
//! routers and WebSocket handlers as the Lambda functions (emulating API Gateway), and the
//! `nusatrade` CLI. The simulated MT5 connector is the `nusatrade-sim` crate; [`demo`] runs it in the gateway's
//! process (`nusatrade serve --with-sim-connector`).

pub mod adapters;
pub mod admin_cli;
pub mod backtest_cli;
pub mod backup_cli;
pub mod demo;
pub mod gateway;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod ml;
pub mod platform;
