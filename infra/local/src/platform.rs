//! The local platform: every port built from one data directory, the use cases wired as the Lambda functions wire
//! them (`nusatrade_app::compose`), and the HTTP routers of every function group merged into one app — the same
//! router constructors the Lambda functions call. The gateway (`crate::gateway`) serves it as its [`Upstream`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use nusatrade_app::admin::{self, AdminService, AdminState};
use nusatrade_app::ai::{self, AiState};
use nusatrade_app::auth::{self, AuthConfig, AuthService};
use nusatrade_app::backtest::{self as backtests, BacktestConfig, BacktestConsumer, BacktestService, BacktestState};
use nusatrade_app::backup::{self, BackupJob, BackupOptions, BackupService};
use nusatrade_app::brokers;
use nusatrade_app::channels::router::ChannelRouter;
use nusatrade_app::compose::{self, Trading};
use nusatrade_app::http::cors::{CorsConfigError, CorsSettings};
use nusatrade_app::http::layers;
use nusatrade_app::jobs::{QueueConsumer, Schedule};
use nusatrade_app::ml::{self, MlConfig, MlService, MlTrainConsumer, ModelCache};
use nusatrade_app::ports::ModelFactory;
use nusatrade_app::ports::{Clock, Ports, RandomIds, SystemClock};
use nusatrade_app::reconcile::{self, ReconcileConsumer, ReconcileService, ReconcileSettings};
use nusatrade_app::settings::RuntimeSettings;
use nusatrade_app::trading::orders::{OrderService, TradingConfig};
use nusatrade_app::trading::sizing;

use crate::adapters::{EmbeddedStore, FileBlobStore, FileMailer, KeyFile, LocalPush, LocalQueue};
use crate::gateway::{Upstream, WsApis};

/// The work queues the platform uses, with their maximum receive count before the dead-letter
/// queue (the same numbers as template.yaml's redrive policies).
pub const WORK_QUEUES: &[(&str, u32)] =
    &[("reconcile", 5), ("backup", 5), (ml::ML_TRAIN_QUEUE, 5), (backtests::BACKTEST_QUEUE, 5)];

/// Local ports plus the concrete push registry the gateway's sockets attach to.
#[derive(Clone)]
pub struct LocalPlatform {
    pub ports: Ports,
    pub push: Arc<LocalPush>,
    pub data_dir: PathBuf,
    pub started: Instant,
    /// The accounts service (one per process: it owns the bounded password-hashing pool).
    pub auth: AuthService,
    /// The order use cases (REST routes, WebSocket acks).
    pub orders: OrderService,
    /// Reconciliation, ack timeouts, trailing stops (the `reconcile` queue's consumer, the snapshot hook, the
    /// position-monitor routes).
    pub reconcile: ReconcileService,
    /// The ML use cases (datasets, models, predictions, defaults; the `ml-train` queue's consumer).
    pub ml: MlService,
    /// Strategies, backtests, optimizations (the `backtest` queue's consumer).
    pub backtests: BacktestService,
    /// The browser origins allowed to call the API (`NUSATRADE_CORS_ORIGINS`).
    pub cors: CorsSettings,
    /// The operator's run-time settings (one cached snapshot for the whole process: orders, request limits, admin,
    /// AI), their secrets sealed with the data dir's key file (`settings.key`).
    pub settings: RuntimeSettings,
    /// The in-process queue behind `ports.queue` (its depth is sampled for `/metrics`).
    pub local_queue: Arc<LocalQueue>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("cannot use data dir {dir}: {source}")]
    DataDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot open the embedded store in {dir}: {source}")]
    Store { dir: PathBuf, source: nusatrade_app::ports::StoreError },
    #[error("cannot use the JWT secret file {path}: {source}")]
    Secret { path: PathBuf, source: std::io::Error },
    #[error("auth settings: {0}")]
    Auth(String),
    #[error("trading settings: {0}")]
    Trading(String),
    #[error("reconciliation settings: {0}")]
    Reconcile(String),
    #[error("ML settings: {0}")]
    Ml(String),
    #[error("backtest settings: {0}")]
    Backtest(String),
    #[error("run-time settings: {0}")]
    Settings(String),
    #[error("{0}")]
    Cors(#[from] CorsConfigError),
}

/// File in the data dir holding the generated JWT secret when `NUSATRADE_JWT_SECRET` is not set.
pub const JWT_SECRET_FILE: &str = "jwt.secret";
/// The embedded store's file in the data dir.
pub const STORE_FILE: &str = "store.redb";
/// The blob store's directory in the data dir (models, table backups under `backups/`).
pub const BLOBS_DIR: &str = "blobs";

/// The auth settings of the local platform: the process environment, with the JWT secret taken from
/// `NUSATRADE_JWT_SECRET` or else from `<data_dir>/jwt.secret` (generated on first start, mode 0600),
/// so restarts keep sessions valid.
pub fn local_auth_config(data_dir: &Path) -> Result<AuthConfig, PlatformError> {
    let mut vars: std::collections::HashMap<String, String> = std::env::vars().collect();
    let has_secret = vars.get(auth::config::ENV_JWT_SECRET).is_some_and(|s| !s.trim().is_empty());
    if !has_secret {
        vars.insert(auth::config::ENV_JWT_SECRET.into(), load_or_create_secret(&data_dir.join(JWT_SECRET_FILE))?);
    }
    AuthConfig::from_map(&vars).map_err(|e| PlatformError::Auth(e.to_string()))
}

fn load_or_create_secret(path: &Path) -> Result<String, PlatformError> {
    let err = |source| PlatformError::Secret { path: path.to_path_buf(), source };
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= auth::config::MIN_SECRET_BYTES => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    std::io::Write::write_all(&mut f, secret.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(secret)
}

impl LocalPlatform {
    /// Opens (creating as needed) the data dir: `store.redb`, `blobs/`, `mail/`.
    pub fn open(data_dir: &Path) -> Result<Self, PlatformError> {
        let dir = data_dir.to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| PlatformError::DataDir { dir: dir.clone(), source })?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = EmbeddedStore::open(&dir.join(STORE_FILE), clock.clone())
            .map_err(|source| PlatformError::Store { dir: dir.clone(), source })?;
        let mut queue = LocalQueue::new(clock.clone());
        for (name, max_receives) in WORK_QUEUES {
            queue = queue.with_queue(name, *max_receives);
        }
        let queue = Arc::new(queue);
        let push = Arc::new(LocalPush::new());
        let ports = Ports {
            store: Arc::new(store),
            blobs: Arc::new(FileBlobStore::new(dir.join(BLOBS_DIR))),
            queue: queue.clone(),
            push: push.clone(),
            mailer: Arc::new(FileMailer::new(dir.join("mail"))),
            clock,
            ids: Arc::new(RandomIds),
        };
        // Request-limit windows live in memory: one process serves every request here.
        let counters = EmbeddedStore::temporary(ports.clock.clone())
            .map_err(|source| PlatformError::Store { dir: dir.clone(), source })?;
        let settings = compose::runtime_settings(&ports)
            .map_err(|e| PlatformError::Settings(e.to_string()))?
            .with_keys(Arc::new(KeyFile::in_data_dir(&dir)));
        let auth = AuthService::with_counter_store(local_auth_config(&dir)?, ports.clone(), Arc::new(counters))
            .map_err(|e| PlatformError::Auth(e.to_string()))?
            .with_settings(Some(settings.clone()));
        let trading_config = TradingConfig::from_env().map_err(PlatformError::Trading)?;
        let reconcile_settings = ReconcileSettings::from_env().map_err(PlatformError::Reconcile)?;
        let Trading { orders, reconcile } =
            Trading::with_runtime(&ports, trading_config, reconcile_settings, Some(settings.clone()));
        let ml_config = MlConfig::from_env().map_err(PlatformError::Ml)?;
        let ml = compose::ml(&ports, Some(orders.clone()), ml_config, ModelCache::from_env());
        let backtests = BacktestService::new(&ports, BacktestConfig::from_env().map_err(PlatformError::Backtest)?);
        let cors = CorsSettings::from_env()?;
        Ok(LocalPlatform {
            ports,
            push,
            data_dir: dir,
            started: Instant::now(),
            auth,
            orders,
            reconcile,
            ml,
            backtests,
            cors,
            settings,
            local_queue: queue,
        })
    }

    /// The consumer of every work queue that has one (the `reconcile` and `backup` functions'; the SQS event sources
    /// in AWS).
    pub fn consumers(&self) -> Vec<Arc<dyn QueueConsumer>> {
        vec![
            Arc::new(ReconcileConsumer { service: self.reconcile.clone() }),
            Arc::new(BackupJob::new(BackupService::from_ports(&self.ports), BackupOptions::default())),
            Arc::new(MlTrainConsumer::new(self.ml.clone())),
            Arc::new(BacktestConsumer::new(self.backtests.clone())),
        ]
    }

    /// The scheduled messages (the template's EventBridge schedules).
    pub fn schedules(&self) -> Vec<Schedule> {
        let mut schedules = reconcile::SCHEDULES.to_vec();
        schedules.push(backup::DAILY_BACKUP);
        schedules.push(ml::AUTO_TRADING_SCHEDULE);
        schedules
    }

    /// Starts a worker per consumer and the scheduler; they stop when `shutdown` turns true.
    pub fn start_jobs(&self, shutdown: tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<_> = self
            .consumers()
            .into_iter()
            .map(|c| {
                // Training jobs run for minutes: one at a time, hidden for longer than a job's lease.
                let config = if c.queue() == ml::ML_TRAIN_QUEUE {
                    crate::ml::worker_config(&self.ml.config)
                } else {
                    crate::jobs::WorkerConfig::default()
                };
                crate::jobs::spawn_worker(self.ports.queue.clone(), c, config, shutdown.clone())
            })
            .collect();
        tasks.extend(crate::jobs::spawn_scheduler(self.ports.queue.clone(), self.schedules(), shutdown.clone()));
        tasks.push(crate::jobs::spawn_depth_sampler(self.local_queue.clone(), WORK_QUEUES, shutdown));
        tasks
    }

    /// The order use cases and reconciliation, as [`compose::Trading`].
    fn trading(&self) -> Trading {
        Trading { orders: self.orders.clone(), reconcile: self.reconcile.clone() }
    }

    /// Every function group's router, merged, with the shared middleware.
    pub fn http_router(&self) -> Router {
        // The health function's routes (health, info, the API description).
        let health = compose::routes::health(&self.ports, self.started, "local".into());
        let limits = Some(self.auth.request_limits());
        let authn = self.auth.authenticator();
        let sizing = sizing::router(authn.clone(), limits.clone());
        // The orders function's routes (orders, position monitor).
        let trading = compose::routes::trading(authn.clone(), &self.trading(), limits.clone());
        let ml_routes = ml::router(ml::MlState { auth: authn.clone(), ml: self.ml.clone() }, limits.clone());
        let bt = BacktestState { auth: authn.clone(), backtests: self.backtests.clone() };
        let strategies = backtests::strategies_router(bt.clone(), limits.clone());
        let backtest = backtests::backtest_router(bt, limits.clone());
        // The language models the settings may name: OpenAI-compatible endpoints and Anthropic (Bedrock is AWS's).
        let models: Arc<dyn ModelFactory> = Arc::new(nusatrade_llm::HttpModels::new());
        let ai =
            compose::ai(&self.ports, self.orders.clone(), self.settings.clone(), models.clone(), Some(self.ml.clone()));
        let ai_routes = ai::router(AiState { auth: authn.clone(), ai }, limits.clone());
        // The admin function's routes.
        let admin_routes = admin::router(
            AdminState {
                auth: authn.clone(),
                admin: AdminService::new(&self.ports, self.settings.clone(), Some(models)),
            },
            limits.clone(),
        );
        let brokers = brokers::routes::router(brokers::routes::BrokersState::new(authn, &self.ports), limits);
        layers::platform_with(
            Router::new()
                .merge(health)
                .merge(auth::router(self.auth.clone()))
                .merge(sizing)
                .merge(trading)
                .merge(ml_routes)
                .merge(strategies)
                .merge(backtest)
                .merge(ai_routes)
                .merge(admin_routes)
                .merge(brokers),
            &self.cors,
        )
    }

    /// Imports the operator's seed candles for the default models (`NUSATRADE_ML_SEED_DIR`, see [`crate::ml`]).
    pub async fn seed_ml(&self) {
        if let Some(dir) = crate::ml::seed_dir_from_env() {
            crate::ml::import_seed_dir(&self.ml, &dir).await;
        }
    }

    /// The connector and browser WebSocket APIs, over the same order service as the HTTP routes.
    pub fn ws_apis(&self) -> WsApis {
        // As `nusatrade_aws::websocket::run_channels` wires them, but a dashboard's CONNECTIONS_STATUS is sent at
        // once: the local push buffers posts to a socket being accepted, so `$connect` greets directly (in AWS the
        // greeting goes through the reconcile queue).
        let (connector, client) = self.trading().channels(self.auth.authenticator(), &self.ports, true);
        let stage = Arc::new(ChannelRouter::new(connector.clone(), client.clone()));
        WsApis { connector, client, stage }
    }
}

impl Upstream for LocalPlatform {
    fn http_router(&self) -> Router {
        LocalPlatform::http_router(self)
    }

    fn push_registry(&self) -> Arc<LocalPush> {
        self.push.clone()
    }
}
