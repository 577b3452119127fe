//! The paper connector's side of a live link (the login, the broker connection and the reconnects are the shared
//! [`super::link`]): the WebSocket session (heartbeats, account and position updates, server commands through the
//! [`Engine`], faults on the frames sent) and the market feeding the paper account; the state file is written after
//! every change, before the command's `TRADE_RESULT` leaves.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use nusatrade_app::connector::Capability;
use nusatrade_domain::instrument::Symbol;
use nusatrade_domain::money::Currency;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, error, info, warn};

use super::api::BrokerConnection;
use super::engine::{AccountIdentity, Engine, Signal};
use super::faults::{AckPlan, Faults};
use super::history::HistorySource;
use super::link::{Ended, Link, LinkConfig, Session, Ws, send, stopped, ticker};
use super::market::{Market, Pacing, PriceSource};
use super::state::{StateError, StateFile};
use super::{ConnectorConfig, ConnectorError, DEFAULT_HEARTBEAT, WELCOME_TIMEOUT, engine};
use crate::feed::Tick;
use crate::paper::PaperAccount;

/// The simulated connector. See the module docs.
pub struct SimConnector {
    config: ConnectorConfig,
    link: Link,
    engine: Arc<Mutex<Engine>>,
    state: Option<Arc<Persister>>,
}

/// Writes the engine's state file, one save at a time and in the order of the changes.
#[derive(Debug)]
struct Persister {
    file: StateFile,
    turn: Mutex<()>,
}

impl Persister {
    /// Saves the engine's state if it changed since the last save. A failed save is logged and retried after
    /// the next change (the connector keeps trading: its state in memory is intact).
    fn save_changes(&self, engine: &Mutex<Engine>) -> Result<bool, StateError> {
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(state) = lock(engine).take_changes(Utc::now()) else { return Ok(false) };
        match self.file.save(&state) {
            Ok(()) => Ok(true),
            Err(e) => {
                lock(engine).mark_changed();
                Err(e)
            }
        }
    }
}

/// Saves the state (when there is a state file and something changed) off the async threads; returns once it
/// is on disk.
async fn persist(state: Option<&Arc<Persister>>, engine: &Arc<Mutex<Engine>>) {
    let Some(p) = state else { return };
    if !lock(engine).has_changes() {
        return;
    }
    let (p, e) = (p.clone(), engine.clone());
    match tokio::task::spawn_blocking(move || p.save_changes(&e)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => error!(error = %e, "the connector state could not be saved; retrying after the next change"),
        Err(e) => error!(error = %e, "the state save task failed"),
    }
}

/// The engine from a state file: `None` when there is none yet.
fn restore_engine(file: &StateFile, identity: &AccountIdentity) -> Result<Option<Engine>, StateError> {
    let Some(saved) = file.load()? else { return Ok(None) };
    if saved.login != identity.login || saved.server != identity.server {
        return Err(StateError::OtherAccount {
            path: file.path().to_path_buf(),
            login: saved.login,
            server: saved.server,
            expected_login: identity.login,
            expected_server: identity.server.clone(),
        });
    }
    let saved_at = saved.saved_at;
    let engine = Engine::restore(saved, identity.clone())
        .map_err(|reason| StateError::Corrupt { path: file.path().to_path_buf(), reason })?;
    let account = engine.account().account();
    info!(
        path = %file.path().display(), saved_at = %engine::iso_millis(saved_at), positions = engine.account().positions().len(),
        balance = %account.balance, leverage = account.leverage,
        "paper account restored from the state file (its balance and leverage, not the flags')"
    );
    Ok(Some(engine))
}

impl std::fmt::Debug for SimConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConnector")
            .field("link", &self.link)
            .field("login", &self.config.identity.login)
            .finish_non_exhaustive()
    }
}

fn lock(engine: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    engine.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimConnector {
    /// Checks the settings and opens the paper account (no network yet). Makes ring the process's TLS provider
    /// for `wss://` unless one is installed already.
    pub fn new(config: ConnectorConfig) -> Result<SimConnector, ConnectorError> {
        let link = Link::new(LinkConfig {
            server: &config.server,
            ws_url: config.ws_url.as_deref(),
            http_timeout: config.http_timeout,
            email: &config.email,
            password: &config.password,
            register: config.register,
            client_name: "Simulated MT5 connector",
            reconnect: config.reconnect,
        })?;
        if config.balance <= Decimal::ZERO {
            return Err(ConnectorError::Config(format!("the balance must be positive, got {}", config.balance)));
        }
        if let Pacing::Speed(s) = config.pacing
            && !(s.is_finite() && s > 0.0)
        {
            return Err(ConnectorError::Config(format!("the replay speed must be a positive number, got {s}")));
        }
        config.faults.validate().map_err(ConnectorError::Config)?;
        let fresh =
            || Engine::new(PaperAccount::new(Currency::USD, config.balance, config.leverage), config.identity.clone());
        let (engine, state) = match &config.state_file {
            None => (fresh(), None),
            Some(path) => {
                let file = StateFile::new(path);
                let engine = match restore_engine(&file, &config.identity) {
                    Ok(Some(engine)) => engine,
                    Ok(None) => {
                        info!(path = %path.display(), "no state file yet: a fresh paper account");
                        fresh()
                    }
                    Err(e @ (StateError::Corrupt { .. } | StateError::OtherAccount { .. }))
                        if config.set_aside_unusable_state =>
                    {
                        let aside = file.set_aside()?;
                        warn!(error = %e, moved_to = %aside.display(), "unusable state file set aside: a fresh paper account");
                        fresh()
                    }
                    Err(e) => return Err(e.into()),
                };
                file.prepare()?;
                (engine, Some(Arc::new(Persister { file, turn: Mutex::new(()) })))
            }
        };
        if config.faults.any() {
            info!(faults = ?config.faults, "fault injection on");
        }
        let history = match &config.prices {
            PriceSource::RandomWalk { seed, symbols } => {
                HistorySource::Generated { seed: *seed, symbols: symbols.clone() }
            }
            PriceSource::Replay { .. } => HistorySource::Unavailable,
        };
        let mut engine = engine
            .with_position_update_gap(config.position_update_gap)
            .with_faults(Faults::new(config.faults))
            .with_history(history);
        // Written once now: a state file that cannot be written stops the connector before it trades.
        engine.mark_changed();
        let engine = Arc::new(Mutex::new(engine));
        if let Some(p) = &state {
            p.save_changes(&engine)?;
        }
        Ok(SimConnector { config, link, engine, state })
    }

    /// The message handler and its paper account (shared with the running connector).
    pub fn engine(&self) -> Arc<Mutex<Engine>> {
        self.engine.clone()
    }

    /// Runs until `shutdown` turns true (closing the WebSocket with 1000) or a fatal error: refused
    /// credentials, an unreadable price file, or [`Backoff::max_attempts`](super::Backoff::max_attempts) failures in a row.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ConnectorError> {
        let market = Market::open(&self.config.prices, self.config.pacing, Utc::now())?;
        let symbols: Vec<&str> = market.symbols().iter().map(Symbol::as_str).collect();
        info!(
            server = %self.link.base(), email = %self.config.email, login = self.config.identity.login,
            mt5_server = %self.config.identity.server, balance = %self.config.balance, leverage = self.config.leverage,
            symbols = ?symbols, prices = ?self.config.prices, "simulated MT5 connector starting"
        );
        let (tx, mut rx) = mpsc::channel::<Value>(256);
        let market_task =
            tokio::spawn(drive_market(market, self.engine.clone(), self.state.clone(), tx, shutdown.clone()));
        let mut session =
            SimSession { config: &self.config, engine: &self.engine, state: self.state.as_ref(), rx: &mut rx };
        let result = self.link.run(&self.config.identity, &mut session, &mut shutdown).await;
        market_task.abort();
        persist(self.state.as_ref(), &self.engine).await;
        let (stats, faults) = {
            let e = lock(&self.engine);
            (e.stats(), e.fault_stats())
        };
        info!(
            executed = stats.executed,
            duplicates = stats.duplicates,
            stops_hit = stats.stops_hit,
            rejected = faults.rejected,
            acks_dropped = faults.dropped,
            acks_duplicated = faults.duplicated,
            acks_delayed = faults.delayed,
            fault_disconnects = faults.disconnects,
            "connector stopped"
        );
        result
    }
}

/// The paper connector on a live link: its engine, its state file and the reports the market produces.
struct SimSession<'a> {
    config: &'a ConnectorConfig,
    engine: &'a Arc<Mutex<Engine>>,
    state: Option<&'a Arc<Persister>>,
    rx: &'a mut mpsc::Receiver<Value>,
}

impl Session for SimSession<'_> {
    /// Reports queued while offline are stale: fresh ones follow the next WELCOME.
    fn before_redial(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// One live link, until it closes or the connector stops.
    async fn session(
        &mut self,
        mut ws: Ws,
        access: &str,
        broker: &BrokerConnection,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let closed = |welcomed: bool, reason: String| Ended::Closed { welcomed, reason };
        let auth = json!({"type": "AUTH", "token": access, "client_type": "connector",
            "timestamp": engine::iso_millis(Utc::now()), "version": concat!("nusatrade-sim/", env!("CARGO_PKG_VERSION")),
            "capabilities": crate::connector::link::CAPABILITIES.map(Capability::as_str)});
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
        // TRADE_RESULTs held back by --delay-acks: they leave when due, other frames flow meanwhile.
        let mut delayed: FuturesUnordered<BoxFuture<'static, (Value, usize)>> = FuturesUnordered::new();
        let ended = |delayed: &FuturesUnordered<_>, how: Ended| {
            if !delayed.is_empty() {
                info!(
                    lost = delayed.len(),
                    "delayed TRADE_RESULTs lost with the link (a resent command gets its result again)"
                );
            }
            how
        };
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
                        None => return ended(&delayed, closed(welcomed, "the server ended the stream".into())),
                        Some(Err(e)) => return ended(&delayed, closed(welcomed, format!("WebSocket error: {e}"))),
                        Some(Ok(Message::Close(f))) => {
                            let why = f.map_or_else(|| "no close frame".to_owned(), |f| format!("{} {}", f.code, f.reason));
                            return ended(&delayed, closed(welcomed, format!("closed by the server: {why}")));
                        }
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(_)) => continue,
                    };
                    let reaction = lock(self.engine).handle(text.as_str(), Utc::now());
                    // On disk before any result leaves: a restart never forgets what the server was told.
                    persist(self.state, self.engine).await;
                    if reaction.executed && lock(self.engine).faults_mut().disconnect_after_execution() {
                        let every = self.config.faults.disconnect_every;
                        warn!(every, "injected fault (--disconnect-every): dropping the link after executing, before acknowledging");
                        // Dropping the stream closes the TCP connection without a close frame, as a lost link.
                        drop(ws);
                        return ended(&delayed, closed(welcomed, format!("dropped on purpose after {every} executed command(s)")));
                    }
                    match &reaction.signal {
                        Some(Signal::Welcome { heartbeat_interval }) if !welcomed => {
                            welcomed = true;
                            let advertised = heartbeat_interval.map(Duration::from_secs);
                            hb_every = self.config.heartbeat.or(advertised).unwrap_or(DEFAULT_HEARTBEAT);
                            heartbeat = ticker(hb_every);
                            info!(connection_id = %broker.id, heartbeat_secs = hb_every.as_secs_f64(), "connector online");
                            let (status, account, positions) = {
                                let mut e = lock(self.engine);
                                (e.mt5_status(), e.account_message("ACCOUNT_UPDATE", None), e.position_update(std::time::Instant::now()))
                            };
                            for msg in [status, account, positions] {
                                if let Err(e) = send(&mut ws, &msg).await {
                                    return ended(&delayed, closed(welcomed, e));
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
                    for reply in reaction.replies {
                        if reply.get("type").and_then(Value::as_str) != Some("TRADE_RESULT") {
                            if let Err(e) = send(&mut ws, &reply).await {
                                return ended(&delayed, closed(welcomed, e));
                            }
                            continue;
                        }
                        let plan = lock(self.engine).faults_mut().plan_ack();
                        let rid = reply.get("request_id").cloned().unwrap_or(Value::Null);
                        match plan {
                            AckPlan::Drop => {
                                info!(request_id = %rid, "injected fault (--drop-acks): TRADE_RESULT not sent");
                            }
                            AckPlan::Send { copies, delay } => {
                                if copies > 1 {
                                    info!(request_id = %rid, copies, "injected fault (--duplicate-acks): TRADE_RESULT sent more than once");
                                }
                                if delay.is_zero() {
                                    for _ in 0..copies {
                                        if let Err(e) = send(&mut ws, &reply).await {
                                            return ended(&delayed, closed(welcomed, e));
                                        }
                                    }
                                } else {
                                    debug!(request_id = %rid, delay_ms = delay.as_millis() as u64, "injected fault (--delay-acks): TRADE_RESULT held back");
                                    delayed.push(Box::pin(async move {
                                        tokio::time::sleep(delay).await;
                                        (reply, copies)
                                    }));
                                }
                            }
                        }
                    }
                    if reaction.traded {
                        let (account, positions) = {
                            let mut e = lock(self.engine);
                            (e.account_message("ACCOUNT_UPDATE", None), e.position_update(std::time::Instant::now()))
                        };
                        for msg in [account, positions] {
                            if let Err(e) = send(&mut ws, &msg).await {
                                return ended(&delayed, closed(welcomed, e));
                            }
                        }
                    }
                }
                Some(report) = self.rx.recv(), if welcomed => {
                    if let Err(e) = send(&mut ws, &report).await {
                        return ended(&delayed, closed(welcomed, e));
                    }
                }
                Some((reply, copies)) = delayed.next(), if !delayed.is_empty() => {
                    let rid = reply.get("request_id").cloned().unwrap_or(Value::Null);
                    info!(request_id = %rid, "injected fault (--delay-acks): sending a delayed TRADE_RESULT");
                    for _ in 0..copies {
                        if let Err(e) = send(&mut ws, &reply).await {
                            return ended(&delayed, closed(welcomed, e));
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    let silent = last_inbound.elapsed();
                    if silent > hb_every * 3 + Duration::from_secs(10) {
                        return ended(&delayed, closed(welcomed, format!("nothing from the server for {:.0} s", silent.as_secs_f64())));
                    }
                    if welcomed {
                        let hb = json!({"type": "HEARTBEAT", "timestamp": engine::iso_millis(Utc::now())});
                        if let Err(e) = send(&mut ws, &hb).await {
                            return ended(&delayed, closed(welcomed, e));
                        }
                    }
                }
                _ = account_timer.tick(), if welcomed => {
                    let account = lock(self.engine).account_message("ACCOUNT_UPDATE", None);
                    if let Err(e) = send(&mut ws, &account).await {
                        return ended(&delayed, closed(welcomed, e));
                    }
                }
                _ = &mut welcome_deadline, if !welcomed => {
                    return ended(&delayed, closed(false, format!("no WELCOME within {WELCOME_TIMEOUT:?}")));
                }
            }
        }
    }
}

/// Feeds the paper account from the market at its pace and queues the reports it produces (after saving the
/// state when a stop closed a position).
async fn drive_market(
    mut market: Market,
    engine: Arc<Mutex<Engine>>,
    state: Option<Arc<Persister>>,
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
        persist(state.as_ref(), &engine).await;
        for report in out {
            // A full queue (a slow link) drops a report: the next one supersedes it.
            let _ = reports.try_send(report);
        }
    }
}

#[cfg(test)]
mod tests;
