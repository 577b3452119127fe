//! The local gateway: one HTTP server that emulates API Gateway in front of every function — the
//! merged HTTP routers and the WebSocket APIs (`/connector/ws`, `/connector/client`, and `/ws`, the
//! single endpoint an API Gateway stage offers, serving both channels) and the dashboard ([`web`]: `/`, `/app/*`) —
//! with graceful shutdown.

pub mod web;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use nusatrade_app::ws::{KeepAliveProtocol, WsHandler};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use self::ws::WsLimits;
use crate::adapters::LocalPush;

/// Path of the connector WebSocket API.
pub const CONNECTOR_PATH: &str = "/connector/ws";
/// Path of the browser (dashboard) WebSocket API.
pub const CLIENT_PATH: &str = "/connector/client";
/// Path of the endpoint that serves both channels, as the API Gateway stage URL does in AWS (connectors
/// tell themselves apart with `connection_id`; see `nusatrade_app::channels::router`).
pub const STAGE_PATH: &str = "/ws";

#[derive(Clone)]
pub struct GatewayConfig {
    pub addr: SocketAddr,
    pub ws_limits: WsLimits,
    /// Serve Prometheus text at `/metrics` on this address ([`crate::metrics`]); `None`: not here.
    pub metrics: Option<PrometheusHandle>,
}

/// The WebSocket handlers mounted on the gateway.
#[derive(Clone)]
pub struct WsApis {
    pub connector: Arc<dyn WsHandler>,
    pub client: Arc<dyn WsHandler>,
    /// Both channels behind one endpoint ([`STAGE_PATH`]).
    pub stage: Arc<dyn WsHandler>,
}

impl Default for WsApis {
    fn default() -> Self {
        WsApis {
            connector: Arc::new(KeepAliveProtocol),
            client: Arc::new(KeepAliveProtocol),
            stage: Arc::new(KeepAliveProtocol),
        }
    }
}

/// What the gateway stands in front of (the local platform, `crate::platform`): the HTTP routers it serves and the
/// push registry its sockets attach to.
pub trait Upstream {
    /// Every function group's router, merged, with the shared middleware.
    fn http_router(&self) -> Router;
    /// The registry the WebSocket endpoints register their sockets with (the push port's adapter).
    fn push_registry(&self) -> Arc<LocalPush>;
}

/// Builds the full gateway app: HTTP routers plus the WebSocket APIs.
pub fn app(upstream: &impl Upstream, apis: WsApis, limits: WsLimits, shutdown: watch::Receiver<bool>) -> Router {
    let push = upstream.push_registry();
    let connector = ws::endpoint(CONNECTOR_PATH, apis.connector, push.clone(), limits, shutdown.clone());
    let client = ws::endpoint(CLIENT_PATH, apis.client, push.clone(), limits, shutdown.clone());
    let stage = ws::endpoint(STAGE_PATH, apis.stage, push, limits, shutdown);
    // The dashboard (`/`, `/app/*`) before the API, whose JSON 404 fallback answers everything else.
    Router::new().merge(connector).merge(client).merge(stage).merge(web::router()).merge(upstream.http_router())
}

/// A bound, not yet running gateway (so callers learn the real port before serving).
pub struct Gateway {
    listener: TcpListener,
    app: Router,
    shutdown_tx: watch::Sender<bool>,
}

impl Gateway {
    pub async fn bind(upstream: &impl Upstream, apis: WsApis, config: &GatewayConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut app = app(upstream, apis, config.ws_limits, shutdown_rx);
        if let Some(handle) = &config.metrics {
            app = app.merge(crate::metrics::router(handle.clone()));
        }
        Ok(Gateway { listener, app, shutdown_tx })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `signal` resolves, then closes WebSockets (1001) and drains HTTP requests.
    pub async fn serve(self, signal: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Gateway { listener, app, shutdown_tx } = self;
        let shutdown_tx = Arc::new(shutdown_tx);
        let make = app.into_make_service_with_connect_info::<SocketAddr>();
        let tx = shutdown_tx.clone();
        axum::serve(listener, make)
            .with_graceful_shutdown(async move {
                signal.await;
                tracing::info!("shutting down: closing websockets, draining requests");
                let _ = tx.send(true);
            })
            .await?;
        // Upgraded WebSockets are not tracked by the HTTP server's graceful shutdown: each socket task
        // holds a shutdown receiver until it has sent its close frame and run `$disconnect`.
        if tokio::time::timeout(std::time::Duration::from_secs(5), shutdown_tx.closed()).await.is_err() {
            tracing::warn!("websockets still closing after 5 s; exiting anyway");
        }
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
