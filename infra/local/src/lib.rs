//! NusaTrade on a laptop: local adapters for every port, the local gateway that serves the same
//! routers and WebSocket handlers as the Lambda functions (emulating API Gateway), and the
//! `nusatrade` CLI.

pub mod adapters;
pub mod backup_cli;
pub mod gateway;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod ml;
pub mod platform;
pub mod sim;
