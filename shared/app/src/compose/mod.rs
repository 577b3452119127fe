//! One wiring per use case, shared by the composition roots: the Lambda mains (`functions/*`, over the AWS
//! adapters) and the local platform (`infra/local`, over the embedded ones) build the order, reconciliation and
//! WebSocket use cases here, so each constructor is called in one place and both runtimes get the same graph.
//! The HTTP side (which routers a function serves) is in [`routes`].
//!
//! Settings are each use case's own `from_env`; the ports are the caller's (each function builds only the
//! adapters it uses). The operator's run-time settings ([`runtime_settings`]: `max_lot_size`,
//! `max_positions_per_user`, the request limit, the language model…) are read from the store by every order service
//! built here; a process shares one [`RuntimeSettings`] (one cached snapshot) by passing it to the `_with` variants.

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
use crate::settings::{RuntimeSettings, SettingsEnv, SettingsEnvError};
use crate::trading::orders::{OrderService, TradingConfig};

/// The operator's run-time settings over `ports`' store (`NUSATRADE_SETTINGS_TTL_SECS` and the language-model
/// variables from the environment: a malformed one is an error). Without a master key: add one with
/// [`RuntimeSettings::with_keys`] where encrypted values are read (the `admin` and `ai` functions).
pub fn runtime_settings(ports: &Ports) -> Result<RuntimeSettings, SettingsEnvError> {
    Ok(RuntimeSettings::from_ports(ports, SettingsEnv::from_env()?))
}

/// [`runtime_settings`] for the infallible constructors below: a malformed variable is logged and its default used
/// (the functions that read secrets call [`runtime_settings`] and stop on it).
fn runtime_settings_or_defaults(ports: &Ports) -> RuntimeSettings {
    runtime_settings(ports).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "run-time settings: the environment's defaults apply");
        RuntimeSettings::from_ports(ports, SettingsEnv::default())
    })
}

/// The order use cases over `ports` (the REST routes, acks on the connector channel, the ML auto-trading cycle),
/// with the operator's run-time limits ([`runtime_settings`]).
pub fn orders(ports: &Ports, config: TradingConfig) -> OrderService {
    orders_with(ports, config, Some(runtime_settings_or_defaults(ports)))
}

/// [`orders`] with the process's shared run-time settings (`None`: `config` alone).
pub fn orders_with(ports: &Ports, config: TradingConfig, settings: Option<RuntimeSettings>) -> OrderService {
    OrderService::new(ports, config).with_settings(settings)
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
        Self::with_runtime(ports, config, settings, Some(runtime_settings_or_defaults(ports)))
    }

    /// [`new`](Self::new) with the process's shared run-time settings (`None`: `config` alone).
    pub fn with_runtime(
        ports: &Ports,
        config: TradingConfig,
        settings: ReconcileSettings,
        runtime: Option<RuntimeSettings>,
    ) -> Self {
        let orders = orders_with(ports, config, runtime);
        let reconcile = reconcile(ports, orders.clone(), settings);
        Trading { orders, reconcile }
    }

    /// The connector and dashboard WebSocket channels over these use cases: a connector's positions snapshot
    /// triggers reconciliation and its prices move trailing stops; its pages of price history go to the ML dataset
    /// import ([`crate::ml::import`]); a dashboard is greeted with its
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
        let imports = Arc::new(crate::ml::HistoryImports::new(ports));
        let connector =
            Arc::new(ConnectorChannel::clone(&connector).with_snapshot_hook(hook).with_history_hook(imports));
        let browser = Arc::new(BrowserChannel::clone(&browser).with_greeter(self.reconcile.greeter(greet_at_connect)));
        (connector, browser)
    }
}

/// The AI supervisor's use cases: answers from the model the run-time settings name (built by `models`; none
/// configured: computed answers), grounded in the bots of `ml` when given.
pub fn ai(
    ports: &Ports,
    orders: OrderService,
    settings: RuntimeSettings,
    models: std::sync::Arc<dyn crate::ports::ModelFactory>,
    ml: Option<MlService>,
) -> crate::ai::AiService {
    let source = crate::ai::model::SettingsModels::new(std::sync::Arc::new(settings), models);
    let ai = crate::ai::AiService::new(ports, orders).with_models(std::sync::Arc::new(source));
    match ml {
        Some(ml) => ai.with_bots(ml),
        None => ai,
    }
}
