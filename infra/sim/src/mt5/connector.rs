//! `nusatrade connector --mt5 terminal`: the connector session (contract §3.2.3, as the simulated connector's,
//! [`crate::connector`]) over a real terminal ([`super::bridge::BridgeTerminal`]) or any [`Mt5`].
//!
//! 1. The terminal first: its `account_info()` gives the MT5 login, server and company (retried until the
//!    terminal answers). The state file (`--state-file`), when given, must be this account's.
//! 2. `POST /auth/login` (optionally `register` first), then `GET /brokers/connections` → the one whose
//!    `account_number` and `server` are the terminal's, else `POST` one.
//! 3. WebSocket → `AUTH` (with the connector's `CAPABILITIES`) → `WELCOME` → `MT5_STATUS`, `ACCOUNT_UPDATE`,
//!    `POSITION_UPDATE`.
//! 4. Server commands through the [`TerminalEngine`]; its state (the remembered results) is saved before the
//!    result leaves. Every [`TerminalConfig::poll_every`] the terminal is looked at ([`TerminalEngine::poll`]):
//!    `MT5_STATUS connected:false` while it does not answer, immediate updates when its positions change.
//! 5. On close or error: reconnect with back-off; the access token is refreshed before every redial when it
//!    expires within [`REFRESH_MARGIN`](crate::connector::REFRESH_MARGIN) or the handshake answered 401.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use nusatrade_app::connector::Capability;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, error, info, warn};

use super::Mt5;
use super::engine::{AccountIdentity, Signal, iso_millis};
use super::engine::{TERMINAL_STATE_FORMAT, TerminalEngine, TerminalState};
use crate::connector::api::BrokerConnection;
use crate::connector::link::{Ended, Link, LinkConfig, Session, Ws, send, stopped, ticker};
use crate::connector::state::write_atomic;
use crate::connector::{Backoff, ConnectorError, DEFAULT_HEARTBEAT, StateError, WELCOME_TIMEOUT};

/// Settings of the terminal connector.
#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// API base URL.
    pub server: String,
    /// WebSocket endpoint when not derived from `server`.
    pub ws_url: Option<String>,
    /// Account e-mail.
    pub email: String,
    /// Account password.
    pub password: String,
    /// Register first.
    pub register: bool,
    /// Heartbeat interval; `None`: the server's.
    pub heartbeat: Option<Duration>,
    /// Routine `ACCOUNT_UPDATE` interval.
    pub account_update_every: Duration,
    /// How often the terminal is looked at.
    pub poll_every: Duration,
    /// Minimum gap between routine `POSITION_UPDATE`s.
    pub position_update_gap: Duration,
    /// Reconnect delays.
    pub reconnect: Backoff,
    /// HTTP timeout.
    pub http_timeout: Duration,
    /// Where the executed commands' results are kept.
    pub state_file: Option<PathBuf>,
}

/// The connector over a terminal. See the module docs.
pub struct TerminalConnector<T> {
    config: TerminalConfig,
    link: Link,
    engine: TerminalEngine<T>,
}

impl<T: Mt5> TerminalConnector<T> {
    /// Checks the settings (no network, no terminal yet).
    pub fn new(config: TerminalConfig, terminal: T) -> Result<TerminalConnector<T>, ConnectorError> {
        let link = Link::new(LinkConfig {
            server: &config.server,
            ws_url: config.ws_url.as_deref(),
            http_timeout: config.http_timeout,
            email: &config.email,
            password: &config.password,
            register: config.register,
            client_name: "MT5 terminal connector",
            reconnect: config.reconnect,
        })?;
        let engine = TerminalEngine::new(terminal).with_position_update_gap(config.position_update_gap);
        Ok(TerminalConnector { config, link, engine })
    }

    /// Runs until `shutdown` turns true or a fatal error.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ConnectorError> {
        let Some(identity) = self.wait_for_terminal(&mut shutdown).await else { return Ok(()) };
        info!(login = identity.login, mt5_server = %identity.server, company = %identity.company, "MT5 terminal connected");
        self.load_state(&identity)?;
        let mut session = TerminalSession { config: &self.config, engine: &mut self.engine, identity: &identity };
        let result = self.link.run(&identity, &mut session, &mut shutdown).await;
        save_state(&self.config, &identity, &mut self.engine).await;
        let stats = self.engine.stats();
        info!(executed = stats.executed, duplicates = stats.duplicates, "connector stopped");
        result
    }

    /// The engine (tests).
    pub fn engine(&mut self) -> &mut TerminalEngine<T> {
        &mut self.engine
    }

    async fn wait_for_terminal(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<AccountIdentity> {
        let mut attempt = 0u32;
        loop {
            match self.engine.identity().await {
                Ok(id) => return Some(id),
                Err(e) => {
                    attempt += 1;
                    let delay =
                        Backoff { base: Duration::from_millis(500), max: Duration::from_secs(10), max_attempts: 0 }
                            .delay(attempt);
                    warn!(error = %e, retry_ms = delay.as_millis() as u64, "the MT5 terminal does not answer yet");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped(shutdown) => return None,
                    }
                }
            }
        }
    }

    fn load_state(&mut self, identity: &AccountIdentity) -> Result<(), ConnectorError> {
        let Some(path) = &self.config.state_file else { return Ok(()) };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Write { path: path.clone(), source })?;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                info!(path = %path.display(), "no state file yet");
                return Ok(());
            }
            Err(source) => return Err(StateError::Read { path: path.clone(), source }.into()),
        };
        let state: TerminalState = serde_json::from_slice(&bytes)
            .ok()
            .filter(|s: &TerminalState| s.format == TERMINAL_STATE_FORMAT && s.version == 1)
            .ok_or_else(|| StateError::Corrupt {
                path: path.clone(),
                reason: "not a terminal connector state".into(),
            })?;
        if state.login != identity.login || state.server != identity.server {
            return Err(StateError::OtherAccount {
                path: path.clone(),
                login: state.login,
                server: state.server,
                expected_login: identity.login,
                expected_server: identity.server.clone(),
            }
            .into());
        }
        info!(path = %path.display(), remembered = state.executed.len(), "executed commands restored from the state file");
        self.engine.restore(state.executed);
        self.engine.recall_server_offset(state.server_utc_offset_secs);
        Ok(())
    }
}

/// Saves the remembered results when they changed (a failed save is retried after the next change).
async fn save_state<T: Mt5>(config: &TerminalConfig, identity: &AccountIdentity, engine: &mut TerminalEngine<T>) {
    let Some(path) = &config.state_file else { return };
    let Some(state) = engine.take_changes(identity, Utc::now()) else { return };
    let path = path.clone();
    let saved = tokio::task::spawn_blocking(move || {
        let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
        write_atomic(&path, &bytes)
    })
    .await;
    if !matches!(saved, Ok(Ok(()))) {
        error!(outcome = ?saved.map(|r| r.map_err(|e| e.to_string())), "the connector state could not be saved; retrying after the next change");
        engine.mark_changed();
    }
}

/// The terminal connector on a live link.
struct TerminalSession<'a, T> {
    config: &'a TerminalConfig,
    engine: &'a mut TerminalEngine<T>,
    identity: &'a AccountIdentity,
}

impl<T: Mt5> TerminalSession<'_, T> {
    async fn save_state(&mut self) {
        save_state(self.config, self.identity, self.engine).await;
    }
}

impl<T: Mt5> Session for TerminalSession<'_, T> {
    async fn session(
        &mut self,
        mut ws: Ws,
        access: &str,
        broker: &BrokerConnection,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let closed = |welcomed: bool, reason: String| Ended::Closed { welcomed, reason };
        let auth = json!({"type": "AUTH", "token": access, "client_type": "connector",
            "timestamp": iso_millis(Utc::now()), "version": concat!("nusatrade-mt5-terminal/", env!("CARGO_PKG_VERSION")),
            "capabilities": crate::connector::link::CAPABILITIES.map(Capability::as_str)});
        if let Err(e) = send(&mut ws, &auth).await {
            return closed(false, e);
        }
        let identity = self.identity;
        let mut welcomed = false;
        let mut hb_every = self.config.heartbeat.unwrap_or(DEFAULT_HEARTBEAT);
        let mut heartbeat = ticker(hb_every);
        let mut account_timer = ticker(self.config.account_update_every);
        let mut poll = ticker(self.config.poll_every);
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
                    let reaction = self.engine.handle(text.as_str(), Utc::now()).await;
                    // On disk before any result leaves.
                    self.save_state().await;
                    let mut out: Vec<Value> = Vec::new();
                    match &reaction.signal {
                        Some(Signal::Welcome { heartbeat_interval }) if !welcomed => {
                            welcomed = true;
                            hb_every = self.config.heartbeat.or(heartbeat_interval.map(Duration::from_secs)).unwrap_or(DEFAULT_HEARTBEAT);
                            heartbeat = ticker(hb_every);
                            info!(connection_id = %broker.id, heartbeat_secs = hb_every.as_secs_f64(), "connector online");
                            let reports = self.engine.poll(identity, std::time::Instant::now()).await;
                            // The first poll reports the status; later ones only changes: say it again now.
                            if !reports.iter().any(|r| r["type"] == "MT5_STATUS") {
                                out.push(self.engine.mt5_status(identity));
                                if let Ok(a) = self.engine.account_message("ACCOUNT_UPDATE", None).await {
                                    out.push(a);
                                }
                                if let Ok(p) = self.engine.position_update(std::time::Instant::now()).await {
                                    out.push(p);
                                }
                            }
                            out.extend(reports);
                        }
                        Some(Signal::Error(error)) => {
                            if errors_seen.insert(error.clone()) {
                                info!(%error, "the server answered ERROR (ignored; repeats are logged at debug)");
                            } else {
                                debug!(%error, "ERROR from the server");
                            }
                        }
                        _ => {}
                    }
                    out.extend(reaction.replies);
                    if reaction.traded {
                        if let Ok(a) = self.engine.account_message("ACCOUNT_UPDATE", None).await {
                            out.push(a);
                        }
                        if let Ok(p) = self.engine.position_update(std::time::Instant::now()).await {
                            out.push(p);
                        }
                    }
                    for msg in out {
                        if let Err(e) = send(&mut ws, &msg).await {
                            return closed(welcomed, e);
                        }
                    }
                }
                _ = poll.tick(), if welcomed => {
                    let reports = self.engine.poll(identity, std::time::Instant::now()).await;
                    self.save_state().await;
                    for msg in reports {
                        if let Err(e) = send(&mut ws, &msg).await {
                            return closed(welcomed, e);
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    let silent = last_inbound.elapsed();
                    if silent > hb_every * 3 + Duration::from_secs(10) {
                        return closed(welcomed, format!("nothing from the server for {:.0} s", silent.as_secs_f64()));
                    }
                    if welcomed {
                        let hb = json!({"type": "HEARTBEAT", "timestamp": iso_millis(Utc::now())});
                        if let Err(e) = send(&mut ws, &hb).await {
                            return closed(welcomed, e);
                        }
                    }
                }
                _ = account_timer.tick(), if welcomed => {
                    if let Ok(account) = self.engine.account_message("ACCOUNT_UPDATE", None).await
                        && let Err(e) = send(&mut ws, &account).await
                    {
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
