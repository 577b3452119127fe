//! Lambda entry point for `$disconnect` on the WebSocket API: removes the connection record, marks the
//! broker connection inactive and tells the user's dashboards (`CONNECTOR_DISCONNECTED`).
//!
//! Wiring only: `nusatrade_aws::websocket::run_channels` builds the AWS adapters and both channels once
//! per execution environment; the handlers live in `nusatrade_app::connector`.

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    nusatrade_aws::websocket::run_channels("ws-disconnect").await
}
