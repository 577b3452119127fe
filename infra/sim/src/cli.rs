//! `nusatrade connector`: the command-line face of the simulated connector ([`super::connector`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use nusatrade_domain::instrument::Symbol;
use rust_decimal::Decimal;
use tokio::sync::watch;

use super::connector::faults::{self, FaultConfig, MAX_ACK_DELAY, MAX_DISCONNECT_EVERY};
use super::connector::{
    Backoff, ConnectorConfig, ConnectorError, DEFAULT_MT5_SERVER, Pacing, PriceSource, SimConnector,
};
use super::mt5::bridge::{self, Bridge, BridgeConfig, BridgeTerminal};
use super::mt5::broker::BrokerTerminal;
use super::mt5::connector::{TerminalConfig, TerminalConnector};
use super::mt5::server_time;
use super::mt5::symbols::{self, SymbolRules};

/// Which MT5 the connector trades on.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mt5Mode {
    /// A paper account inside the connector (the default).
    #[default]
    Paper,
    /// A real MetaTrader 5 terminal on this machine, through the `MetaTrader5` Python package (Windows).
    Terminal,
}

/// Flags of `nusatrade connector`.
#[derive(Args, Debug, Clone)]
pub struct ConnectorArgs {
    /// Trade on a paper account (`paper`) or a real MetaTrader 5 terminal (`terminal`, Windows, Python 3 with
    /// `pip install MetaTrader5`).
    #[arg(long, value_enum, default_value_t = Mt5Mode::Paper)]
    pub mt5: Mt5Mode,
    /// `--mt5 terminal`: the Python interpreter that has the MetaTrader5 package (default: `python` on Windows,
    /// `python3` elsewhere).
    #[arg(long, env = "NUSATRADE_PYTHON")]
    pub python: Option<String>,
    /// `--mt5 terminal`: the terminal's terminal64.exe, when not the default installation.
    #[arg(long, env = "NUSATRADE_MT5_PATH")]
    pub mt5_path: Option<String>,
    /// `--mt5 terminal`: log the terminal in to this MT5 account (default: the account it is logged in to).
    #[arg(long, env = "NUSATRADE_MT5_LOGIN")]
    pub mt5_login: Option<u64>,
    /// `--mt5 terminal`: the MT5 account's password (read from the environment preferably; never logged).
    #[arg(long, env = "NUSATRADE_MT5_PASSWORD", hide_env_values = true, requires = "mt5_login")]
    pub mt5_password: Option<String>,
    /// `--mt5 terminal`: the MT5 account's trade server (e.g. `MetaQuotes-Demo`).
    #[arg(long, env = "NUSATRADE_MT5_TRADE_SERVER", requires = "mt5_login")]
    pub mt5_trade_server: Option<String>,
    /// `--mt5 terminal`: seconds one terminal call may take before the bridge is restarted.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub mt5_timeout_secs: u64,
    /// `--mt5 terminal`: milliseconds between two looks at the terminal's positions and account.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub mt5_poll_ms: u64,
    /// `--mt5 terminal`: where the bridge script is written (default: a folder in the temporary directory).
    #[arg(long, env = "NUSATRADE_MT5_BRIDGE_DIR")]
    pub bridge_dir: Option<PathBuf>,
    /// `--mt5 terminal`: the broker's name of a platform symbol, `CANONICAL=BROKER` (e.g. `EURUSD=EURUSD.pro`;
    /// repeatable or comma-separated); wins over the automatic map and the affixes.
    #[arg(long, value_name = "SYMBOL=NAME", env = "NUSATRADE_MT5_SYMBOL_MAP", value_delimiter = ',',
        value_parser = symbols::parse_pair)]
    pub symbol_map: Vec<(String, String)>,
    /// `--mt5 terminal`: every platform symbol is the broker's `SYMBOL<suffix>` (e.g. `.m`: `EURUSD.m`), instead
    /// of the automatic map from the terminal's symbol list.
    #[arg(long, value_name = "SUFFIX", env = "NUSATRADE_MT5_SYMBOL_SUFFIX", allow_hyphen_values = true,
        value_parser = symbols::parse_affix)]
    pub symbol_suffix: Option<String>,
    /// `--mt5 terminal`: every platform symbol is the broker's `<prefix>SYMBOL` (e.g. `m.`: `m.EURUSD`).
    #[arg(long, value_name = "PREFIX", env = "NUSATRADE_MT5_SYMBOL_PREFIX", value_parser = symbols::parse_affix)]
    pub symbol_prefix: Option<String>,
    /// `--mt5 terminal`: the trade server's time zone, `±HH:MM` (e.g. `+02:00`); default: inferred from a fresh
    /// tick and re-checked every 10 minutes (DST).
    #[arg(long, value_name = "±HH:MM", env = "NUSATRADE_MT5_SERVER_UTC_OFFSET", allow_hyphen_values = true,
        value_parser = server_time::parse_offset)]
    pub server_utc_offset: Option<chrono::TimeDelta>,
    /// NusaTrade API base URL (the original connector's NUSATRADE_SERVER).
    #[arg(long, visible_alias = "api", env = "NUSATRADE_SERVER", default_value = "http://127.0.0.1:8000")]
    pub server: String,
    /// WebSocket endpoint, when not `ws(s)://<server host>/connector/ws` (e.g. an API Gateway stage URL).
    #[arg(long, env = "NUSATRADE_WS_URL")]
    pub ws_url: Option<String>,
    /// Account e-mail.
    #[arg(long, env = "NUSATRADE_CONNECTOR_EMAIL")]
    pub email: String,
    /// Account password.
    #[arg(long, env = "NUSATRADE_CONNECTOR_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Register the account first (fine if it exists).
    #[arg(long)]
    pub register: bool,
    /// Random-walk prices with this seed (the default price source; seed 1 unless given).
    #[arg(long, conflicts_with = "prices")]
    pub seed: Option<u64>,
    /// Symbols of the random walk, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "EURUSD,GBPUSD,USDJPY,XAUUSD", conflicts_with = "prices")]
    pub symbols: Vec<String>,
    /// Replay candles from this CSV (`,Open,High,Low,Close,Volume`, prices taken as bids) instead of a walk.
    #[arg(long, requires = "symbol")]
    pub prices: Option<PathBuf>,
    /// The symbol of the --prices candles.
    #[arg(long, requires = "prices")]
    pub symbol: Option<String>,
    /// Replay at the candles' own pace accelerated this many times (3600: one hour per second) instead of
    /// one quarter-bar per --tick-ms.
    #[arg(long, requires = "prices")]
    pub speed: Option<f64>,
    /// Start the replay again after its last candle (default: prices then stay put).
    #[arg(long = "loop", requires = "prices")]
    pub loop_replay: bool,
    /// Milliseconds between price updates.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub tick_ms: u64,
    /// Starting balance of the paper account (USD).
    #[arg(long, default_value = "10000")]
    pub balance: Decimal,
    /// Account leverage (1:N).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=3000))]
    pub leverage: u32,
    /// MT5 login of the paper account (default: derived from the e-mail, stable across runs).
    #[arg(long)]
    pub account_login: Option<u64>,
    /// MT5 server name of the paper account.
    #[arg(long, default_value = DEFAULT_MT5_SERVER)]
    pub mt5_server: String,
    /// Heartbeat interval in seconds (default: the server's WELCOME heartbeat_interval, 30).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_secs: Option<u64>,
    /// Seconds between routine ACCOUNT_UPDATE reports (one also follows every trade).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub account_update_secs: u64,
    /// First reconnect delay in milliseconds; it doubles per failed attempt (the original: 5000).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub reconnect_base_ms: u64,
    /// Longest reconnect delay in seconds (the original: 60).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub reconnect_max_secs: u64,
    /// Give up after this many failed attempts in a row (0: never; the original: 10).
    #[arg(long, default_value_t = 0)]
    pub max_reconnects: u32,
    /// Keep the paper account (positions, tickets, balance) and the executed commands' results in this file, so
    /// a restarted connector keeps its positions and still answers a resent command with its first result.
    #[arg(long, env = "NUSATRADE_CONNECTOR_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Fault: percent of TRADE_RESULTs never sent (the command is executed).
    #[arg(long, value_name = "PCT", env = "NUSATRADE_CONNECTOR_DROP_ACKS", default_value = "0", value_parser = faults::parse_percent)]
    pub drop_acks: f64,
    /// Fault: percent of TRADE_RESULTs sent twice.
    #[arg(long, value_name = "PCT", env = "NUSATRADE_CONNECTOR_DUPLICATE_ACKS", default_value = "0", value_parser = faults::parse_percent)]
    pub duplicate_acks: f64,
    /// Fault: send every TRADE_RESULT this many milliseconds late (other messages are not held up).
    #[arg(long, value_name = "MS", env = "NUSATRADE_CONNECTOR_DELAY_ACKS", default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=MAX_ACK_DELAY.as_millis() as u64))]
    pub delay_acks: u64,
    /// Fault: percent of trade commands answered with a failed TRADE_RESULT (MT5 retcode 10004 requote,
    /// 10006 rejected or 10019 no money) instead of being executed.
    #[arg(long, value_name = "PCT", env = "NUSATRADE_CONNECTOR_REJECT", default_value = "0", value_parser = faults::parse_percent)]
    pub reject: f64,
    /// Fault: drop the WebSocket after every N executed trade commands, after executing and before acknowledging
    /// (then reconnect as usual).
    #[arg(long, value_name = "N", env = "NUSATRADE_CONNECTOR_DISCONNECT_EVERY",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DISCONNECT_EVERY)))]
    pub disconnect_every: Option<u32>,
    /// Seed of the fault draws (default: --seed, else 1): the same seed and commands give the same faults.
    #[arg(long, env = "NUSATRADE_CONNECTOR_FAULT_SEED")]
    pub fault_seed: Option<u64>,
}

impl ConnectorArgs {
    /// The connector settings these flags describe.
    pub fn config(&self) -> Result<ConnectorConfig, ConnectorError> {
        if self.mt5 == Mt5Mode::Terminal {
            return Err(ConnectorError::Config("--mt5 terminal has no paper account settings".into()));
        }
        let mut c = ConnectorConfig::new(&self.server, &self.email, &self.password);
        c.ws_url = self.ws_url.clone();
        c.register = self.register;
        if let Some(login) = self.account_login {
            c.identity.login = login;
        }
        c.identity.server = self.mt5_server.clone();
        c.balance = self.balance;
        c.leverage = self.leverage;
        let symbol = |s: &str| {
            Symbol::parse(s).map_err(|e| ConnectorError::Config(format!("symbol {s:?} is not in the catalogue: {e}")))
        };
        c.prices = match (&self.prices, &self.symbol) {
            (Some(path), Some(sym)) => {
                PriceSource::Replay { path: path.clone(), symbol: symbol(sym)?, looped: self.loop_replay }
            }
            _ => {
                let symbols = self.symbols.iter().map(|s| symbol(s.trim())).collect::<Result<Vec<_>, _>>()?;
                if symbols.is_empty() {
                    return Err(ConnectorError::Config("--symbols needs at least one symbol".into()));
                }
                PriceSource::RandomWalk { seed: self.seed.unwrap_or(1), symbols }
            }
        };
        c.pacing = match self.speed {
            Some(speed) => Pacing::Speed(speed),
            None => Pacing::Interval(Duration::from_millis(self.tick_ms)),
        };
        c.position_update_gap = Duration::from_millis(self.tick_ms).max(Duration::from_secs(1));
        c.heartbeat = self.heartbeat_secs.map(Duration::from_secs);
        c.account_update_every = Duration::from_secs(self.account_update_secs);
        c.reconnect = Backoff {
            base: Duration::from_millis(self.reconnect_base_ms),
            max: Duration::from_secs(self.reconnect_max_secs),
            max_attempts: self.max_reconnects,
        };
        c.faults = FaultConfig {
            drop_acks: self.drop_acks,
            duplicate_acks: self.duplicate_acks,
            delay_acks: Duration::from_millis(self.delay_acks),
            reject: self.reject,
            disconnect_every: self.disconnect_every.unwrap_or(0),
            seed: self.fault_seed.or(self.seed).unwrap_or(1),
        };
        c.faults.validate().map_err(ConnectorError::Config)?;
        c.state_file = self.state_file.clone();
        Ok(c)
    }
    /// The terminal connector settings and its bridge's (`--mt5 terminal`); writes the bridge script.
    pub fn terminal_config(&self) -> Result<(TerminalConfig, BridgeConfig), ConnectorError> {
        let dir = self.bridge_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("nusatrade-mt5-bridge"));
        let script = bridge::write_script(&dir).map_err(|e| {
            ConnectorError::Config(format!("cannot write the MT5 bridge script into {}: {e}", dir.display()))
        })?;
        let python = self.python.clone().unwrap_or_else(|| bridge::default_python().to_owned());
        let mut b = BridgeConfig::new(python, script);
        b.terminal_path = self.mt5_path.clone();
        b.login = self.mt5_login;
        b.password = self.mt5_password.clone();
        b.server = self.mt5_trade_server.clone();
        b.timeout = Duration::from_secs(self.mt5_timeout_secs);
        b.restart = Backoff {
            base: Duration::from_millis(self.reconnect_base_ms),
            max: Duration::from_secs(self.reconnect_max_secs),
            max_attempts: 0,
        };
        let c = TerminalConfig {
            server: self.server.clone(),
            ws_url: self.ws_url.clone(),
            email: self.email.clone(),
            password: self.password.clone(),
            register: self.register,
            heartbeat: self.heartbeat_secs.map(Duration::from_secs),
            account_update_every: Duration::from_secs(self.account_update_secs),
            poll_every: Duration::from_millis(self.mt5_poll_ms),
            position_update_gap: Duration::from_millis(self.tick_ms).max(Duration::from_secs(1)),
            reconnect: Backoff {
                base: Duration::from_millis(self.reconnect_base_ms),
                max: Duration::from_secs(self.reconnect_max_secs),
                max_attempts: self.max_reconnects,
            },
            http_timeout: Duration::from_secs(10),
            state_file: self.state_file.clone(),
        };
        Ok((c, b))
    }

    /// The broker's symbol names and server clock (`--symbol-map`, `--symbol-prefix`/`--symbol-suffix`,
    /// `--server-utc-offset`) of `--mt5 terminal`.
    pub fn broker_rules(&self) -> Result<(SymbolRules, Option<chrono::TimeDelta>), ConnectorError> {
        let rules = SymbolRules {
            pairs: self.symbol_map.clone(),
            prefix: self.symbol_prefix.clone(),
            suffix: self.symbol_suffix.clone(),
        };
        rules.validate().map_err(|e| ConnectorError::Config(e.to_string()))?;
        Ok((rules, self.server_utc_offset))
    }
}

/// Runs the connector until `shutdown` completes (the command line passes Ctrl-C / SIGTERM; the connector then
/// closes its WebSocket cleanly) or a fatal error.
pub async fn run(
    args: ConnectorArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConnectorError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = async move {
        shutdown.await;
        tracing::info!("stopping the connector");
        let _ = stop_tx.send(true);
    };
    match args.mt5 {
        Mt5Mode::Paper => {
            let connector = SimConnector::new(args.config()?)?;
            tokio::spawn(stop);
            connector.run(stop_rx).await
        }
        Mt5Mode::Terminal => {
            let (config, bridge_config) = args.terminal_config()?;
            let (rules, offset) = args.broker_rules()?;
            tracing::info!(bridge = ?bridge_config, symbol_rules = ?rules,
                server_utc_offset = ?offset.map(|o| server_time::format_offset(o.num_seconds())), "MT5 terminal connector starting");
            let terminal = BrokerTerminal::new(BridgeTerminal::new(Bridge::new(bridge_config)), rules, offset);
            let connector = TerminalConnector::new(config, terminal)?;
            tokio::spawn(stop);
            connector.run(stop_rx).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ConnectorArgs,
    }

    fn parse(extra: &[&str]) -> Result<ConnectorArgs, clap::Error> {
        let base = ["nusatrade", "--email", "a@b.co", "--password", "Pw!1aaaa"];
        Cli::try_parse_from(base.iter().chain(extra)).map(|c| c.args)
    }

    #[test]
    fn flags_make_a_config() {
        let c = parse(&[]).expect("defaults").config().expect("config");
        assert!(matches!(&c.prices, PriceSource::RandomWalk { seed: 1, symbols } if symbols.len() == 4));
        assert_eq!(c.pacing, Pacing::Interval(Duration::from_secs(1)));
        assert_eq!((c.balance, c.leverage, c.heartbeat), (Decimal::from(10_000), 100, None));
        let c = parse(&["--seed", "9", "--symbols", "eurusd,XAUUSD", "--balance", "2500.50", "--heartbeat-secs", "2"])
            .expect("walk")
            .config()
            .expect("config");
        assert!(matches!(&c.prices, PriceSource::RandomWalk { seed: 9, symbols } if symbols[0].as_str() == "EURUSD"));
        assert_eq!((c.balance, c.heartbeat), (Decimal::new(250_050, 2), Some(Duration::from_secs(2))));
        let c = parse(&["--prices", "x.csv", "--symbol", "EURUSD", "--speed", "3600", "--loop", "--api", "http://h:1"])
            .expect("replay")
            .config()
            .expect("config");
        assert!(matches!(&c.prices, PriceSource::Replay { looped: true, .. }));
        assert_eq!((c.pacing, c.server.as_str()), (Pacing::Speed(3600.0), "http://h:1"));
    }

    #[test]
    fn fault_flags_and_the_state_file() {
        let c = parse(&[]).expect("defaults").config().expect("config");
        assert_eq!((c.faults, c.state_file), (FaultConfig::default(), None), "no faults, no state file");
        let c = parse(&[
            "--drop-acks",
            "12.5",
            "--duplicate-acks",
            "100%",
            "--delay-acks",
            "250",
            "--reject",
            "3",
            "--disconnect-every",
            "2",
            "--seed",
            "9",
            "--state-file",
            "/tmp/s.json",
        ])
        .expect("faults")
        .config()
        .expect("config");
        assert_eq!(
            c.faults,
            FaultConfig {
                drop_acks: 12.5,
                duplicate_acks: 100.0,
                delay_acks: Duration::from_millis(250),
                reject: 3.0,
                disconnect_every: 2,
                seed: 9,
            },
            "the fault seed follows --seed"
        );
        assert_eq!(c.state_file.as_deref(), Some(std::path::Path::new("/tmp/s.json")));
        let c = parse(&["--seed", "9", "--fault-seed", "77"]).expect("seeds").config().expect("config");
        assert_eq!(c.faults.seed, 77);
        let c = parse(&["--prices", "x.csv", "--symbol", "EURUSD", "--fault-seed", "5"]).expect("replay").config();
        assert_eq!(c.expect("config").faults.seed, 5, "a fault seed with a replay (where --seed is refused)");

        for (flag, value) in [
            ("--drop-acks", "101"),
            ("--duplicate-acks", "-1"),
            ("--reject", "most"),
            ("--delay-acks", "600001"),
            ("--delay-acks", "-5"),
            ("--disconnect-every", "0"),
            ("--disconnect-every", "1000001"),
        ] {
            let e = parse(&[&format!("{flag}={value}")]).expect_err("out of range");
            let msg = e.to_string();
            assert!(msg.contains(flag), "{flag} {value}: {msg}");
        }
        let e = parse(&["--drop-acks", "150"]).expect_err("range").to_string();
        assert!(e.contains("percentage from 0 to 100"), "{e}");
    }

    #[test]
    fn terminal_flags_make_a_bridge_config() {
        let dir = tempfile::tempdir().expect("dir");
        let bridge_dir = dir.path().join("b");
        let b = bridge_dir.to_str().expect("utf-8");
        let args = parse(&[
            "--mt5",
            "terminal",
            "--python",
            "py3",
            "--bridge-dir",
            b,
            "--mt5-login",
            "5001234",
            "--mt5-password",
            "pw-secret",
            "--mt5-trade-server",
            "Demo",
            "--mt5-path",
            "C:/MT5/terminal64.exe",
            "--mt5-timeout-secs",
            "7",
            "--mt5-poll-ms",
            "250",
            "--state-file",
            "/tmp/t.json",
        ])
        .expect("terminal");
        assert_eq!(args.mt5, Mt5Mode::Terminal);
        assert!(args.config().is_err(), "no paper account in terminal mode");
        let (c, bridge) = args.terminal_config().expect("terminal config");
        assert_eq!(
            (c.poll_every, c.state_file.as_deref()),
            (Duration::from_millis(250), Some(Path::new("/tmp/t.json")))
        );
        assert_eq!(
            (bridge.python.as_str(), bridge.login, bridge.server.as_deref()),
            ("py3", Some(5_001_234), Some("Demo"))
        );
        assert_eq!((bridge.password.as_deref(), bridge.timeout), (Some("pw-secret"), Duration::from_secs(7)));
        assert_eq!(std::fs::read_to_string(&bridge.script).expect("script written"), crate::mt5::bridge::SCRIPT);
        assert!(!format!("{bridge:?}").contains("pw-secret"));
        assert_eq!(parse(&[]).expect("defaults").mt5, Mt5Mode::Paper);
        assert!(parse(&["--mt5", "terminal", "--mt5-password", "x"]).is_err(), "a password needs a login");
        assert!(parse(&["--mt5", "real"]).is_err());
    }

    #[test]
    fn symbol_and_server_time_flags() {
        let (rules, offset) = parse(&[]).expect("defaults").broker_rules().expect("rules");
        assert_eq!((rules, offset), (SymbolRules::default(), None), "automatic map, inferred offset");
        let args = parse(&[
            "--mt5",
            "terminal",
            "--symbol-map",
            "EURUSD=EURUSD.pro",
            "--symbol-map",
            "xauusd=GOLD.m,GBPUSD=GBPUSD.x",
            "--symbol-suffix",
            ".m",
            "--server-utc-offset",
            "-03:30",
        ])
        .expect("flags");
        let (rules, offset) = args.broker_rules().expect("rules");
        assert_eq!(rules.pairs.len(), 3);
        assert_eq!(rules.pairs[1], ("XAUUSD".to_owned(), "GOLD.m".to_owned()));
        assert_eq!((rules.suffix.as_deref(), offset), (Some(".m"), Some(chrono::TimeDelta::minutes(-210))));
        assert!(parse(&["--server-utc-offset", "+02:10"]).is_err());
        assert!(parse(&["--symbol-map", "NOPE=X"]).is_err());
        assert!(parse(&["--symbol-map", "EURUSD"]).is_err());
        assert!(parse(&["--symbol-suffix", "a b"]).is_err());
        let twice = parse(&["--symbol-map", "EURUSD=A,EURUSD=B"]).expect("parses");
        assert!(twice.broker_rules().is_err(), "the same symbol twice");
    }

    #[test]
    fn contradictory_or_bad_flags_are_refused() {
        assert!(parse(&["--prices", "x.csv"]).is_err(), "--prices needs --symbol");
        assert!(parse(&["--prices", "x.csv", "--symbol", "EURUSD", "--seed", "1"]).is_err());
        assert!(parse(&["--tick-ms", "0"]).is_err());
        assert!(parse(&["--balance", "lots"]).is_err());
        assert!(parse(&["--symbols", "NOPE99"]).expect("parses").config().is_err(), "unknown symbol");
    }
}
