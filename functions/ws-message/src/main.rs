//! Lambda entry point for every message on the WebSocket API (`$default`): connector acks, heartbeats,
//! account and position reports, dashboard pings and commands, each handled by the channel that owns
//! the socket.
//!
//! Wiring only: `nusatrade_aws::websocket::run_channels` builds the AWS adapters and both channels once
//! per execution environment; the handlers live in `nusatrade_app::connector`.

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    nusatrade_aws::websocket::run_channels("ws-message").await
}
