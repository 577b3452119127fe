//! One wiring per use case, shared by the composition roots: the Lambda mains (`functions/*`, over the AWS
//! adapters) and the local platform (`infra/local`, over the embedded ones) build the order, reconciliation and
//! WebSocket use cases here, so each constructor is called in one place and both runtimes get the same graph.
//! The HTTP side (which routers a function serves) is in [`routes`].
//!
//! Settings are each use case's own `from_env`; the ports are the caller's (each function builds only the
//! adapters it uses).

pub mod routes;

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::backtest::StrategyService;
use crate::brokers::service::BrokerService;
use crate::channels::browser::BrowserChannel;
use crate::channels::connector::{self, ConnectorChannel};
use crate::ml::{MlConfig, MlService, ModelCache};
use crate::ports::Ports;
use crate::reconcile::{ReconcileHook, ReconcileService, ReconcileSettings};
use crate::trading::orders::{OrderService, TradingConfig};

/// The order use cases over `ports` (the REST routes, acks on the connector channel, the ML auto-trading cycle).
pub fn orders(ports: &Ports, config: TradingConfig) -> OrderService {
    OrderService::new(ports, config)
}

/// Reconciliation, ack timeouts and trailing stops over `orders`, with sweeps and follow-ups on `ports.queue`.
pub fn reconcile(ports: &Ports, orders: OrderService, settings: ReconcileSettings) -> ReconcileService {
    ReconcileService::new(orders, ports.queue.clone(), settings)
}

/// The ML use cases; `orders` places the auto-trading cycle's orders (`None`: the cycle never trades). A model's
/// `strategy_id` is checked against the strategies feature.
pub fn ml(ports: &Ports, orders: Option<OrderService>, config: MlConfig, cache: ModelCache) -> MlService {
    MlService::new(ports, orders, config, cache).with_strategies(Arc::new(StrategyService::new(ports)))
}

/// The order use cases and the reconciliation over them: what the `orders` and WebSocket functions and the local
/// platform build.
#[derive(Clone)]
pub struct Trading {
    pub orders: OrderService,
    pub reconcile: ReconcileService,
}

impl Trading {
    pub fn new(ports: &Ports, config: TradingConfig, settings: ReconcileSettings) -> Self {
        let orders = orders(ports, config);
        let reconcile = reconcile(ports, orders.clone(), settings);
        Trading { orders, reconcile }
    }

    /// The connector and dashboard WebSocket channels over these use cases: a connector's positions snapshot
    /// triggers reconciliation and its prices move trailing stops; a dashboard is greeted with its
    /// CONNECTIONS_STATUS at `$connect` when `greet_at_connect` (the local gateway buffers posts to a socket being
    /// accepted), else through the reconcile queue (API Gateway's `$connect` cannot post).
    pub fn channels(
        &self,
        auth: Authenticator,
        ports: &Ports,
        greet_at_connect: bool,
    ) -> (Arc<ConnectorChannel>, Arc<BrowserChannel>) {
        let (connector, browser) = connector::channels(auth, self.orders.clone(), BrokerService::new(ports));
        let hook = Arc::new(ReconcileHook::new(self.reconcile.clone()));
        let connector = Arc::new(ConnectorChannel::clone(&connector).with_snapshot_hook(hook));
        let browser = Arc::new(BrowserChannel::clone(&browser).with_greeter(self.reconcile.greeter(greet_at_connect)));
        (connector, browser)
    }
}
