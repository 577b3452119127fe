//! The simulated MT5 connector (`nusatrade connector`, issue #5): the original desktop connector's session
//! (contract §3.2.3) against a paper MT5 account instead of a terminal.
//!
//! 1. `POST /auth/login` (optionally `POST /auth/register` first) → tokens.
//! 2. "MT5 login": a [`PaperAccount`](crate::paper::PaperAccount) with the configured balance and leverage, priced by a [`Market`]
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
//! 7. With a state file ([`ConnectorConfig::state_file`], [`state`]), they survive restarts too: the file is
//!    loaded on start and rewritten atomically after every change, before the command's `TRADE_RESULT` leaves.
//!
//! Faults for tests and demos ([`faults`], [`ConnectorConfig::faults`]): rejected commands, dropped, duplicated
//! or delayed `TRADE_RESULT`s (delayed ones wait in the session without holding up other frames) and a link
//! dropped after every N executed commands, before their acknowledgement.

pub mod api;
pub mod engine;
pub mod faults;
pub mod history;
pub(crate) mod link;
pub mod market;
mod session;
pub mod state;

use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use nusatrade_domain::instrument::Symbol;
use rust_decimal::Decimal;
use thiserror::Error;

pub use self::api::{Api, ApiError, BrokerConnection, Registration, Tokens};
pub use self::engine::{AccountIdentity, Engine, EngineStats, Reaction, Signal};
pub use self::faults::{AckPlan, FaultConfig, FaultStats, Faults};
pub use self::market::{Market, Pacing, PriceSource};
pub use self::session::SimConnector;
pub use self::state::{SavedState, StateError, StateFile};
use crate::feed::FeedError;

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
    /// The state file cannot be used.
    #[error(transparent)]
    State(#[from] StateError),
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
    /// Injected faults (none by default).
    pub faults: FaultConfig,
    /// Keep the paper account and the executed commands' results in this file across restarts.
    pub state_file: Option<PathBuf>,
    /// An unusable state file is moved to `<file>.corrupt` and a fresh account started, instead of refusing to
    /// start (the in-process demo does this; the command line refuses).
    pub set_aside_unusable_state: bool,
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
            faults: FaultConfig::default(),
            state_file: None,
            set_aside_unusable_state: false,
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

    #[test]
    fn faults_are_checked_before_any_network() {
        let mut bad = ConnectorConfig::new("http://127.0.0.1:1", "a@b.co", "pw");
        bad.faults.drop_acks = 120.0;
        let e = SimConnector::new(bad).expect_err("out of range");
        assert!(matches!(&e, ConnectorError::Config(m) if m.contains("--drop-acks")), "{e}");
    }
}
