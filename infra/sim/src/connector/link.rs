//! The connector's link to the platform, one implementation shared by the paper connector
//! ([`super::SimConnector`]) and the terminal connector ([`crate::mt5::connector::TerminalConnector`]): log in
//! (registering first when asked), refresh the access token before a redial when it expires within
//! [`REFRESH_MARGIN`] or the handshake answered 401 (a refused refresh falls back to a new login), find or create
//! the broker connection (again after a 403), open the WebSocket and reconnect with back-off. What happens on a
//! live link is the caller's [`Session`].

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use futures::SinkExt;
use nusatrade_app::connector::Capability;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use super::api::{Api, BrokerConnection, Registration, Tokens};
use super::engine::AccountIdentity;
use super::{Backoff, ConnectorError, HANDSHAKE_TIMEOUT, MAX_FRAME_BYTES, REFRESH_MARGIN, ws_endpoint};

/// What both connectors state in their `AUTH` (`nusatrade_app::connector::capabilities`), all of it true of the
/// protocol engine over either terminal: trade commands de-duplicated by request id (remembered results, and the
/// `NT-` comment looked up in the terminal's positions and deals), complete positions reports whatever the account
/// holds, comments in positions and deals, `SYNC_REQUEST` history and ticket lookups, fill price, volume and time in
/// acks, price history (`HISTORY_REQUEST`). The server resends an unacknowledged `TRADE_OPEN` because of the first.
pub const CAPABILITIES: [Capability; 6] = [
    Capability::DedupeRequestId,
    Capability::ReportPositions,
    Capability::ReportComments,
    Capability::HistoryLookups,
    Capability::AckFillDetails,
    Capability::HistoryCandles,
];

/// The WebSocket of a live link.
pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why one live link ended.
#[derive(Debug)]
pub(crate) enum Ended {
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

/// What a connector does on a live link.
pub(crate) trait Session: Send {
    /// One live link (the WebSocket is open, `AUTH` not sent yet), until it closes or the connector stops.
    fn session(
        &mut self,
        ws: Ws,
        access: &str,
        broker: &BrokerConnection,
        shutdown: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Ended> + Send;

    /// Called after the back-off wait, before the next attempt.
    fn before_redial(&mut self) {}
}

/// Who logs in where, and how to reconnect.
#[derive(Clone)]
pub(crate) struct LinkConfig<'a> {
    /// API base URL.
    pub server: &'a str,
    /// WebSocket endpoint when not derived from `server`.
    pub ws_url: Option<&'a str>,
    /// Timeout of each HTTP call.
    pub http_timeout: Duration,
    /// Account e-mail.
    pub email: &'a str,
    /// Account password.
    pub password: &'a str,
    /// Register the account first (an existing account is fine).
    pub register: bool,
    /// The `full_name` of a registration.
    pub client_name: &'static str,
    /// Reconnect delays.
    pub reconnect: Backoff,
}

/// Tokens, broker connection and reconnects. See the module docs.
pub(crate) struct Link {
    api: Api,
    endpoint: String,
    email: String,
    password: String,
    register: bool,
    client_name: &'static str,
    reconnect: Backoff,
    tokens: Option<Tokens>,
    registered: bool,
    broker: Option<BrokerConnection>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("server", &self.api.base())
            .field("email", &self.email)
            .field("endpoint", &self.endpoint)
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// An interval whose first tick is one period from now.
pub(crate) fn ticker(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_millis(10));
    let mut i = tokio::time::interval_at(Instant::now() + period, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// Sends one JSON frame; a frame over [`MAX_FRAME_BYTES`] is dropped (logged) rather than sent and answered
/// with a closed connection.
pub(crate) async fn send(ws: &mut Ws, msg: &Value) -> Result<(), String> {
    let text = msg.to_string();
    if text.len() > MAX_FRAME_BYTES {
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or_default();
        warn!(kind, bytes = text.len(), "not sending a frame over the 32 KB limit");
        return Ok(());
    }
    ws.send(Message::Text(text.into())).await.map_err(|e| format!("send failed: {e}"))
}

impl Link {
    /// Checks the settings (no network yet). Makes ring the process's TLS provider for `wss://` unless one is
    /// installed already.
    pub(crate) fn new(c: LinkConfig<'_>) -> Result<Link, ConnectorError> {
        // With several rustls providers compiled in (the AWS SDK brings aws-lc-rs), rustls cannot pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = Api::new(c.server, c.http_timeout).map_err(ConnectorError::Url)?;
        let endpoint = ws_endpoint(c.server, c.ws_url)?;
        if c.reconnect.base.is_zero() {
            return Err(ConnectorError::Config("the reconnect delay must be positive".into()));
        }
        Ok(Link {
            api,
            endpoint,
            email: c.email.to_owned(),
            password: c.password.to_owned(),
            register: c.register,
            client_name: c.client_name,
            reconnect: c.reconnect,
            tokens: None,
            registered: false,
            broker: None,
        })
    }

    /// The API base URL.
    pub(crate) fn base(&self) -> &str {
        self.api.base()
    }

    /// Connects as `identity`'s broker connection and runs `session` on every live link, reconnecting with
    /// back-off, until `shutdown` turns true or a fatal error: refused credentials, or
    /// [`Backoff::max_attempts`] failures in a row.
    pub(crate) async fn run(
        &mut self,
        identity: &AccountIdentity,
        session: &mut impl Session,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ConnectorError> {
        let mut failures: u32 = 0;
        let mut force_refresh = false;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let reason = match self.attempt(identity, force_refresh, session, shutdown).await {
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
            let backoff = self.reconnect;
            if backoff.max_attempts > 0 && failures > backoff.max_attempts {
                return Err(ConnectorError::GaveUp { attempts: failures - 1, last: reason });
            }
            let delay = backoff.delay(failures);
            info!(delay_ms = delay.as_millis() as u64, attempt = failures, "reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(shutdown) => return Ok(()),
            }
            session.before_redial();
        }
    }

    /// One attempt: tokens, broker connection, handshake, session.
    async fn attempt(
        &mut self,
        identity: &AccountIdentity,
        force_refresh: bool,
        session: &mut impl Session,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Ended, AttemptError> {
        let access = self.access_token(force_refresh).await?;
        let broker = self.broker_connection(identity, &access).await?;
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
        Ok(session.session(ws, &access, &broker, shutdown).await)
    }

    async fn login(&mut self) -> Result<(), AttemptError> {
        let (email, password) = (self.email.clone(), self.password.clone());
        if self.register && !self.registered {
            match self.api.register(&email, &password, self.client_name).await {
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

    /// The broker connection whose `account_number` and `server` are `id`'s: remembered, found, or created.
    async fn broker_connection(
        &mut self,
        id: &AccountIdentity,
        access: &str,
    ) -> Result<BrokerConnection, AttemptError> {
        if let Some(b) = &self.broker {
            return Ok(b.clone());
        }
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
}
