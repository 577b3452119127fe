//! The simulated MT5 connector (`nusatrade connector`, issue #5): the original desktop connector's session
//! (contract §3.2.3) against a paper MT5 account instead of a terminal.
//!
//! 1. `POST /auth/login` (optionally `POST /auth/register` first) → tokens.
//! 2. "MT5 login": a [`PaperAccount`] with the configured balance and leverage, priced by a [`Market`]
//!    (seeded random walk or candle replay) that keeps ticking whether or not the link is up.
//! 3. `GET /brokers/connections` → the first whose `account_number` and `server` match, else `POST` one.
//! 4. WebSocket `…/connector/ws?token=…&connection_id=…` → `AUTH` → `WELCOME`; then `MT5_STATUS`,
//!    `ACCOUNT_UPDATE` and `POSITION_UPDATE`. The server follows `WELCOME` with the commands it sent before a
//!    reconnect and never saw acknowledged (answered from the de-duplication memory when they were executed),
//!    `GET_POSITIONS`, `GET_ACCOUNT` and a `PING`.
//! 5. While connected: `HEARTBEAT` every `heartbeat_interval` (the server's `WELCOME` value unless configured),
//!    `ACCOUNT_UPDATE` periodically and after every trade, `POSITION_UPDATE` with current prices on ticks
//!    (throttled) and at once after a stop loss / take profit; server commands go through the [`Engine`].
//! 6. On close or error: reconnect after `base × 2^(n−1)` capped (the original: 5 s, 60 s, 10 attempts; here
//!    configurable, unlimited by default). The access token is refreshed before reconnecting when it expires
//!    within [`REFRESH_MARGIN`] or the handshake answered 401; a refused refresh falls back to a new login. A
//!    403 (the broker connection is gone) finds or creates the connection again. The paper account and the
//!    de-duplication memory live in the process, so positions survive reconnects.

pub mod api;
pub mod engine;
pub mod market;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures::{SinkExt, StreamExt};
use nusatrade_domain::instrument::Symbol;
use nusatrade_domain::money::Currency;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info, warn};

pub use self::api::{Api, ApiError, BrokerConnection, Registration, Tokens};
pub use self::engine::{AccountIdentity, Engine, EngineStats, Reaction, Signal};
pub use self::market::{Market, Pacing, PriceSource};
use super::feed::{FeedError, Tick};
use super::paper::PaperAccount;

/// Refresh the access token before reconnecting when it expires within this margin.
pub const REFRESH_MARGIN: TimeDelta = TimeDelta::seconds(120);
/// The heartbeat interval until the server advertises one (the original's 30 s).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// How long to wait for `WELCOME` after `AUTH`.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a WebSocket handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame sent: the gateway's (and API Gateway's) 32 KB frame limit.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// The symbols of the default random walk.
pub const DEFAULT_SYMBOLS: [&str; 4] = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"];
/// The default MT5 server name of the paper account.
pub const DEFAULT_MT5_SERVER: &str = "NusaTrade-Paper";
/// The broker company of the paper account.
pub const PAPER_COMPANY: &str = "NusaTrade Paper MT5";

/// Errors that stop the connector.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// A setting cannot be used.
    #[error("invalid connector setting: {0}")]
    Config(String),
    /// The server URL cannot be used.
    #[error(transparent)]
    Url(ApiError),
    /// The price source cannot be read.
    #[error("cannot read prices: {0}")]
    Feed(#[from] FeedError),
    /// The credentials were refused (bad password, 2FA account, unknown account without `--register`).
    #[error("login refused: {0}")]
    Login(ApiError),
    /// Registration failed for another reason than an existing account.
    #[error("registration refused: {0}")]
    Register(ApiError),
    /// The broker connection could not be found or created.
    #[error("broker connection: {0}")]
    BrokerConnection(ApiError),
    /// Too many failed attempts in a row.
    #[error("gave up after {attempts} failed connection attempts; last error: {last}")]
    GaveUp {
        /// Consecutive failed attempts.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// Reconnect delays: `base × 2^(attempt−1)`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay (the original: 5 s).
    pub base: Duration,
    /// Longest delay (the original: 60 s).
    pub max: Duration,
    /// Consecutive failed attempts before giving up; 0 = never (the original: 10).
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_secs(5), max: Duration::from_secs(60), max_attempts: 0 }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.base.saturating_mul(factor).min(self.max.max(self.base))
    }
}

/// Everything the connector needs.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// API base URL, `http(s)://HOST[:PORT]`.
    pub server: String,
    /// WebSocket endpoint; `None`: `ws(s)://HOST[:PORT]/connector/ws` derived from `server`.
    pub ws_url: Option<String>,
    /// Account e-mail.
    pub email: String,
    /// Account password.
    pub password: String,
    /// Register the account first (an existing account is fine).
    pub register: bool,
    /// The paper account's MT5 identity.
    pub identity: AccountIdentity,
    /// Starting balance (USD).
    pub balance: Decimal,
    /// Leverage 1:`leverage`.
    pub leverage: u32,
    /// Where prices come from.
    pub prices: PriceSource,
    /// How fast they come.
    pub pacing: Pacing,
    /// Heartbeat interval; `None`: the server's `WELCOME` value.
    pub heartbeat: Option<Duration>,
    /// How often `ACCOUNT_UPDATE` is sent while connected (besides after every trade).
    pub account_update_every: Duration,
    /// Minimum gap between two routine `POSITION_UPDATE`s.
    pub position_update_gap: Duration,
    /// Reconnect delays.
    pub reconnect: Backoff,
    /// Timeout of each HTTP call (the original: 10 s).
    pub http_timeout: Duration,
}

impl ConnectorConfig {
    /// Defaults: a paper account of 10 000 USD at 1:100 whose login is derived from the e-mail
    /// ([`default_login`]) on [`DEFAULT_MT5_SERVER`], a random walk (seed 1) over [`DEFAULT_SYMBOLS`] ticking every
    /// second, the server's heartbeat, account updates every 5 s, position updates at most every second,
    /// reconnects from 5 s up to 60 s.
    pub fn new(server: &str, email: &str, password: &str) -> ConnectorConfig {
        let symbols = DEFAULT_SYMBOLS.iter().filter_map(|s| Symbol::parse(s).ok()).collect();
        ConnectorConfig {
            server: server.to_owned(),
            ws_url: None,
            email: email.to_owned(),
            password: password.to_owned(),
            register: false,
            identity: AccountIdentity {
                login: default_login(email),
                server: DEFAULT_MT5_SERVER.to_owned(),
                company: PAPER_COMPANY.to_owned(),
            },
            balance: Decimal::from(10_000),
            leverage: 100,
            prices: PriceSource::RandomWalk { seed: 1, symbols },
            pacing: Pacing::Interval(Duration::from_secs(1)),
            heartbeat: None,
            account_update_every: Duration::from_secs(5),
            position_update_gap: engine::DEFAULT_POSITION_UPDATE_GAP,
            reconnect: Backoff::default(),
            http_timeout: Duration::from_secs(10),
        }
    }
}

/// A stable 8-digit MT5 login for an e-mail (FNV-1a of the lower-cased address), so a restarted connector
/// finds its broker connection again.
pub fn default_login(email: &str) -> u64 {
    let hash = email
        .trim()
        .to_ascii_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    10_000_000 + hash % 90_000_000
}

/// The WebSocket endpoint for `server` (`http` → `ws`, `https` → `wss`, `/connector/ws` appended), or `ws_url`.
pub fn ws_endpoint(server: &str, ws_url: Option<&str>) -> Result<String, ConnectorError> {
    if let Some(url) = ws_url {
        let url = url.trim();
        return if url.starts_with("ws://") || url.starts_with("wss://") {
            Ok(url.to_owned())
        } else {
            Err(ConnectorError::Config(format!("the WebSocket URL must start with ws:// or wss://, got {url:?}")))
        };
    }
    let base = server.trim().trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(ConnectorError::Url(ApiError::BadUrl(server.to_owned())));
    };
    Ok(format!("{ws}/connector/ws"))
}

/// Why one connection attempt ended.
#[derive(Debug)]
enum Ended {
    /// Asked to stop.
    Shutdown,
    /// The link closed; `welcomed`: it had been up.
    Closed { welcomed: bool, reason: String },
}

/// Why one connection attempt failed before the link was up.
#[derive(Debug)]
enum AttemptError {
    Fatal(ConnectorError),
    Retry(String),
    /// The handshake answered 401: refresh the token.
    Unauthorized(String),
    /// The handshake answered 403: look the broker connection up again.
    Forbidden(String),
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The simulated connector. See the module docs.
pub struct SimConnector {
    config: ConnectorConfig,
    api: Api,
    endpoint: String,
    engine: Arc<Mutex<Engine>>,
    tokens: Option<Tokens>,
    registered: bool,
    broker: Option<BrokerConnection>,
}

impl std::fmt::Debug for SimConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConnector")
            .field("server", &self.config.server)
            .field("email", &self.config.email)
            .field("endpoint", &self.endpoint)
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

fn lock(engine: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    engine.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

impl SimConnector {
    /// Checks the settings and opens the paper account (no network yet). Makes ring the process's TLS provider
    /// for `wss://` unless one is installed already.
    pub fn new(config: ConnectorConfig) -> Result<SimConnector, ConnectorError> {
        // With several rustls providers compiled in (the AWS SDK brings aws-lc-rs), rustls cannot pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = Api::new(&config.server, config.http_timeout).map_err(ConnectorError::Url)?;
        let endpoint = ws_endpoint(&config.server, config.ws_url.as_deref())?;
        if config.balance <= Decimal::ZERO {
            return Err(ConnectorError::Config(format!("the balance must be positive, got {}", config.balance)));
        }
        if config.reconnect.base.is_zero() {
            return Err(ConnectorError::Config("the reconnect delay must be positive".into()));
        }
        if let Pacing::Speed(s) = config.pacing
            && !(s.is_finite() && s > 0.0)
        {
            return Err(ConnectorError::Config(format!("the replay speed must be a positive number, got {s}")));
        }
        let account = PaperAccount::new(Currency::USD, config.balance, config.leverage);
        let engine = Engine::new(account, config.identity.clone()).with_position_update_gap(config.position_update_gap);
        Ok(SimConnector {
            config,
            api,
            endpoint,
            engine: Arc::new(Mutex::new(engine)),
            tokens: None,
            registered: false,
            broker: None,
        })
    }

    /// The message handler and its paper account (shared with the running connector).
    pub fn engine(&self) -> Arc<Mutex<Engine>> {
        self.engine.clone()
    }

    /// Runs until `shutdown` turns true (closing the WebSocket with 1000) or a fatal error: refused
    /// credentials, an unreadable price file, or [`Backoff::max_attempts`] failures in a row.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ConnectorError> {
        let market = Market::open(&self.config.prices, self.config.pacing, Utc::now())?;
        let symbols: Vec<&str> = market.symbols().iter().map(Symbol::as_str).collect();
        info!(
            server = %self.api.base(), email = %self.config.email, login = self.config.identity.login,
            mt5_server = %self.config.identity.server, balance = %self.config.balance, leverage = self.config.leverage,
            symbols = ?symbols, prices = ?self.config.prices, "simulated MT5 connector starting"
        );
        let (tx, mut rx) = mpsc::channel::<Value>(256);
        let market_task = tokio::spawn(drive_market(market, self.engine.clone(), tx, shutdown.clone()));
        let result = self.connect_loop(&mut rx, &mut shutdown).await;
        market_task.abort();
        let stats = lock(&self.engine).stats();
        info!(
            executed = stats.executed,
            duplicates = stats.duplicates,
            stops_hit = stats.stops_hit,
            "connector stopped"
        );
        result
    }

    async fn connect_loop(
        &mut self,
        rx: &mut mpsc::Receiver<Value>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ConnectorError> {
        let mut failures: u32 = 0;
        let mut force_refresh = false;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let reason = match self.attempt(force_refresh, rx, shutdown).await {
                Ok(Ended::Shutdown) => return Ok(()),
                Ok(Ended::Closed { welcomed, reason }) => {
                    force_refresh = false;
                    if welcomed {
                        failures = 0;
                    }
                    info!(%reason, "connection closed");
                    reason
                }
                Err(AttemptError::Fatal(e)) => return Err(e),
                Err(AttemptError::Retry(reason)) => {
                    force_refresh = false;
                    warn!(%reason, "connection attempt failed");
                    reason
                }
                Err(AttemptError::Unauthorized(reason)) => {
                    force_refresh = true;
                    warn!(%reason, "token refused at the handshake: refreshing it before the next attempt");
                    reason
                }
                Err(AttemptError::Forbidden(reason)) => {
                    force_refresh = false;
                    self.broker = None;
                    warn!(%reason, "broker connection refused at the handshake: looking it up again");
                    reason
                }
            };
            failures += 1;
            let backoff = self.config.reconnect;
            if backoff.max_attempts > 0 && failures > backoff.max_attempts {
                return Err(ConnectorError::GaveUp { attempts: failures - 1, last: reason });
            }
            let delay = backoff.delay(failures);
            info!(delay_ms = delay.as_millis() as u64, attempt = failures, "reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(shutdown) => return Ok(()),
            }
            // Reports queued while offline are stale: fresh ones follow the next WELCOME.
            while rx.try_recv().is_ok() {}
        }
    }

    /// One attempt: tokens, broker connection, handshake, session.
    async fn attempt(
        &mut self,
        force_refresh: bool,
        rx: &mut mpsc::Receiver<Value>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Ended, AttemptError> {
        let access = self.access_token(force_refresh).await?;
        let broker = self.broker_connection(&access).await?;
        let sep = if self.endpoint.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}token={access}&connection_id={}", self.endpoint, broker.id);
        debug!(endpoint = %self.endpoint, connection_id = %broker.id, "opening the WebSocket");
        let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(url.as_str())).await {
            Err(_) => return Err(AttemptError::Retry(format!("no WebSocket handshake within {HANDSHAKE_TIMEOUT:?}"))),
            Ok(Ok((ws, _))) => ws,
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let reason = format!("WebSocket handshake refused with HTTP {status}");
                return Err(match status {
                    401 => AttemptError::Unauthorized(reason),
                    403 => AttemptError::Forbidden(reason),
                    _ => AttemptError::Retry(reason),
                });
            }
            Ok(Err(e)) => return Err(AttemptError::Retry(format!("WebSocket: {e}"))),
        };
        Ok(self.session(ws, &access, &broker, rx, shutdown).await)
    }

    async fn login(&mut self) -> Result<(), AttemptError> {
        let (email, password) = (self.config.email.clone(), self.config.password.clone());
        if self.config.register && !self.registered {
            match self.api.register(&email, &password, "Simulated MT5 connector").await {
                Ok(Registration::Created(tokens)) => {
                    info!(%email, user_id = ?tokens.user_id, "account registered");
                    self.registered = true;
                    self.tokens = Some(tokens);
                    return Ok(());
                }
                Ok(Registration::AlreadyRegistered) => {
                    info!(%email, "account already registered: logging in");
                    self.registered = true;
                }
                Err(e) if e.is_transient() => return Err(AttemptError::Retry(e.to_string())),
                Err(e) => return Err(AttemptError::Fatal(ConnectorError::Register(e))),
            }
        }
        match self.api.login(&email, &password).await {
            Ok(tokens) => {
                info!(%email, user_id = ?tokens.user_id, "logged in");
                self.tokens = Some(tokens);
                Ok(())
            }
            Err(e) if e.is_transient() => Err(AttemptError::Retry(e.to_string())),
            Err(e) => Err(AttemptError::Fatal(ConnectorError::Login(e))),
        }
    }

    /// A usable access token: the current one, refreshed when near expiry (or `force`), or a new login.
    async fn access_token(&mut self, force: bool) -> Result<String, AttemptError> {
        let refresh = match &self.tokens {
            None => None,
            Some(t) if !force && !t.expires_within(REFRESH_MARGIN, Utc::now()) => return Ok(t.access.clone()),
            Some(t) => Some(t.refresh.clone()),
        };
        match refresh {
            None => self.login().await?,
            Some(refresh) => match self.api.refresh(&refresh).await {
                Ok(tokens) => {
                    info!(expires = ?tokens.access_expires, "access token refreshed");
                    self.tokens = Some(tokens);
                }
                Err(e) if e.is_transient() => return Err(AttemptError::Retry(e.to_string())),
                Err(e) => {
                    info!(error = %e, "token refresh refused: logging in again");
                    self.tokens = None;
                    self.login().await?;
                }
            },
        }
        self.tokens.as_ref().map(|t| t.access.clone()).ok_or_else(|| AttemptError::Retry("no token".into()))
    }

    async fn broker_connection(&mut self, access: &str) -> Result<BrokerConnection, AttemptError> {
        if let Some(b) = &self.broker {
            return Ok(b.clone());
        }
        let id = &self.config.identity;
        let login = id.login.to_string();
        match self.api.find_or_create_connection(access, &id.company, &login, &id.server).await {
            Ok((conn, created)) => {
                let what = if created { "broker connection created" } else { "broker connection found" };
                info!(connection_id = %conn.id, account_number = %login, mt5_server = %id.server, "{what}");
                self.broker = Some(conn.clone());
                Ok(conn)
            }
            Err(e) if e.status() == Some(401) => {
                self.tokens = None;
                Err(AttemptError::Retry(format!("token refused: {e}")))
            }
            Err(e) if e.is_transient() => Err(AttemptError::Retry(e.to_string())),
            Err(e) => Err(AttemptError::Fatal(ConnectorError::BrokerConnection(e))),
        }
    }

    /// One live link, until it closes or the connector stops.
    async fn session(
        &self,
        mut ws: Ws,
        access: &str,
        broker: &BrokerConnection,
        rx: &mut mpsc::Receiver<Value>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let closed = |welcomed: bool, reason: String| Ended::Closed { welcomed, reason };
        let auth = json!({"type": "AUTH", "token": access, "client_type": "connector",
            "timestamp": engine::iso(Utc::now()), "version": concat!("nusatrade-sim/", env!("CARGO_PKG_VERSION"))});
        if let Err(e) = send(&mut ws, &auth).await {
            return closed(false, e);
        }
        let mut welcomed = false;
        let mut hb_every = self.config.heartbeat.unwrap_or(DEFAULT_HEARTBEAT);
        let mut heartbeat = ticker(hb_every);
        let mut account_timer = ticker(self.config.account_update_every);
        let welcome_deadline = tokio::time::sleep(WELCOME_TIMEOUT);
        tokio::pin!(welcome_deadline);
        let mut last_inbound = Instant::now();
        let mut errors_seen: HashSet<String> = HashSet::new();
        loop {
            tokio::select! {
                _ = stopped(shutdown) => {
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "connector stopping".into() };
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
                    return Ended::Shutdown;
                }
                frame = ws.next() => {
                    last_inbound = Instant::now();
                    let text = match frame {
                        None => return closed(welcomed, "the server ended the stream".into()),
                        Some(Err(e)) => return closed(welcomed, format!("WebSocket error: {e}")),
                        Some(Ok(Message::Close(f))) => {
                            let why = f.map_or_else(|| "no close frame".to_owned(), |f| format!("{} {}", f.code, f.reason));
                            return closed(welcomed, format!("closed by the server: {why}"));
                        }
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(_)) => continue,
                    };
                    let reaction = lock(&self.engine).handle(text.as_str(), Utc::now());
                    match &reaction.signal {
                        Some(Signal::Welcome { heartbeat_interval }) if !welcomed => {
                            welcomed = true;
                            let advertised = heartbeat_interval.map(Duration::from_secs);
                            hb_every = self.config.heartbeat.or(advertised).unwrap_or(DEFAULT_HEARTBEAT);
                            heartbeat = ticker(hb_every);
                            info!(connection_id = %broker.id, heartbeat_secs = hb_every.as_secs_f64(), "connector online");
                            let (status, account, positions) = {
                                let mut e = lock(&self.engine);
                                (e.mt5_status(), e.account_message("ACCOUNT_UPDATE", None), e.position_update(std::time::Instant::now()))
                            };
                            for msg in [status, account, positions] {
                                if let Err(e) = send(&mut ws, &msg).await {
                                    return closed(welcomed, e);
                                }
                            }
                        }
                        Some(Signal::Error(error)) => {
                            // The server answers a report it cannot read (or an older server one it does not
                            // know) with ERROR: logged once per text.
                            if errors_seen.insert(error.clone()) {
                                info!(%error, "the server answered ERROR (ignored; repeats are logged at debug)");
                            } else {
                                debug!(%error, "ERROR from the server");
                            }
                        }
                        _ => {}
                    }
                    for reply in &reaction.replies {
                        if let Err(e) = send(&mut ws, reply).await {
                            return closed(welcomed, e);
                        }
                    }
                    if reaction.traded {
                        let (account, positions) = {
                            let mut e = lock(&self.engine);
                            (e.account_message("ACCOUNT_UPDATE", None), e.position_update(std::time::Instant::now()))
                        };
                        for msg in [account, positions] {
                            if let Err(e) = send(&mut ws, &msg).await {
                                return closed(welcomed, e);
                            }
                        }
                    }
                }
                Some(report) = rx.recv(), if welcomed => {
                    if let Err(e) = send(&mut ws, &report).await {
                        return closed(welcomed, e);
                    }
                }
                _ = heartbeat.tick() => {
                    let silent = last_inbound.elapsed();
                    if silent > hb_every * 3 + Duration::from_secs(10) {
                        return closed(welcomed, format!("nothing from the server for {:.0} s", silent.as_secs_f64()));
                    }
                    if welcomed {
                        let hb = json!({"type": "HEARTBEAT", "timestamp": engine::iso(Utc::now())});
                        if let Err(e) = send(&mut ws, &hb).await {
                            return closed(welcomed, e);
                        }
                    }
                }
                _ = account_timer.tick(), if welcomed => {
                    let account = lock(&self.engine).account_message("ACCOUNT_UPDATE", None);
                    if let Err(e) = send(&mut ws, &account).await {
                        return closed(welcomed, e);
                    }
                }
                _ = &mut welcome_deadline, if !welcomed => {
                    return closed(false, format!("no WELCOME within {WELCOME_TIMEOUT:?}"));
                }
            }
        }
    }
}

/// An interval whose first tick is one period from now.
fn ticker(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_millis(10));
    let mut i = tokio::time::interval_at(Instant::now() + period, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// Sends one JSON frame; a frame over [`MAX_FRAME_BYTES`] is dropped (logged) rather than sent and answered
/// with a closed connection.
async fn send(ws: &mut Ws, msg: &Value) -> Result<(), String> {
    let text = msg.to_string();
    if text.len() > MAX_FRAME_BYTES {
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or_default();
        warn!(kind, bytes = text.len(), "not sending a frame over the 32 KB limit");
        return Ok(());
    }
    ws.send(Message::Text(text.into())).await.map_err(|e| format!("send failed: {e}"))
}

/// Feeds the paper account from the market at its pace and queues the reports it produces.
async fn drive_market(
    mut market: Market,
    engine: Arc<Mutex<Engine>>,
    reports: mpsc::Sender<Value>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut due = Instant::now();
    loop {
        let Some((batch, wait)) = market.next_batch() else {
            info!("price replay finished: prices stay at their last values");
            stopped(&mut shutdown).await;
            return;
        };
        due += wait;
        // Never burst to catch up after a stall (a suspended laptop): resume the pace from now.
        let now = Instant::now();
        if now > due + Duration::from_secs(1) {
            due = now;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stopped(&mut shutdown) => return,
        }
        // The feed's own times only pace the replay: the paper account lives in the present.
        let stamp = Utc::now();
        let ticks: Vec<Tick> = batch.into_iter().map(|t| Tick { time: stamp, ..t }).collect();
        let out = lock(&engine).on_ticks(&ticks, std::time::Instant::now());
        for report in out {
            // A full queue (a slow link) drops a report: the next one supersedes it.
            let _ = reports.try_send(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let original = Backoff { base: Duration::from_secs(5), max: Duration::from_secs(60), max_attempts: 10 };
        let delays: Vec<u64> = (1..=6).map(|n| original.delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        let fast = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2), max_attempts: 0 };
        assert_eq!(fast.delay(1), Duration::from_millis(100));
        assert_eq!(fast.delay(4), Duration::from_millis(800));
        assert_eq!(fast.delay(1000), Duration::from_secs(2), "no overflow");
    }

    #[test]
    fn endpoints_and_logins() {
        assert_eq!(
            ws_endpoint("http://127.0.0.1:8000/", None).ok().as_deref(),
            Some("ws://127.0.0.1:8000/connector/ws")
        );
        assert_eq!(
            ws_endpoint("https://api.example.com", None).ok().as_deref(),
            Some("wss://api.example.com/connector/ws")
        );
        assert_eq!(
            ws_endpoint("https://api.example.com", Some("wss://abc.execute-api.aws.com/prod")).ok().as_deref(),
            Some("wss://abc.execute-api.aws.com/prod")
        );
        assert!(ws_endpoint("example.com", None).is_err());
        assert!(ws_endpoint("http://x", Some("http://y")).is_err());
        let login = default_login("Trader@Example.com");
        assert_eq!(login, default_login(" trader@example.com "), "stable and case-insensitive");
        assert!((10_000_000..100_000_000).contains(&login));
        assert_ne!(login, default_login("other@example.com"));
    }

    #[test]
    fn settings_are_checked_before_any_network() {
        let ok = ConnectorConfig::new("http://127.0.0.1:1", "a@b.co", "pw");
        assert!(SimConnector::new(ok.clone()).is_ok());
        let mut bad = ok.clone();
        bad.balance = Decimal::ZERO;
        assert!(matches!(SimConnector::new(bad), Err(ConnectorError::Config(_))));
        let mut bad = ok.clone();
        bad.pacing = Pacing::Speed(0.0);
        assert!(matches!(SimConnector::new(bad), Err(ConnectorError::Config(_))));
        let mut bad = ok;
        bad.server = "localhost:8000".into();
        assert!(matches!(SimConnector::new(bad), Err(ConnectorError::Url(_))));
    }
}
