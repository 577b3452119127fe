//! Lambda entry point for `$connect` on the WebSocket API: verifies the token and, for a connector,
//! that the broker connection is the user's, then records the connection (nothing is accepted before).
//!
//! Wiring only: `nusatrade_aws::websocket::run_channels` builds the AWS adapters and both channels once
//! per execution environment; the handlers live in `nusatrade_app::connector`.

#[tokio::main]
async fn main() -> Result<(), nusatrade_aws::runtime::Error> {
    nusatrade_aws::websocket::run_channels("ws-connect").await
}
