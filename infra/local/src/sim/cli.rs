//! `nusatrade connector`: the command-line face of the simulated connector ([`super::connector`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use nusatrade_domain::instrument::Symbol;
use rust_decimal::Decimal;
use tokio::sync::watch;

use super::connector::{
    Backoff, ConnectorConfig, ConnectorError, DEFAULT_MT5_SERVER, Pacing, PriceSource, SimConnector,
};

/// Flags of `nusatrade connector`.
#[derive(Args, Debug, Clone)]
pub struct ConnectorArgs {
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
}

impl ConnectorArgs {
    /// The connector settings these flags describe.
    pub fn config(&self) -> Result<ConnectorConfig, ConnectorError> {
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
        Ok(c)
    }
}

/// Runs the connector until Ctrl-C / SIGTERM (then closes its WebSocket cleanly) or a fatal error.
pub async fn run(args: ConnectorArgs) -> Result<(), ConnectorError> {
    let connector = SimConnector::new(args.config()?)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::gateway::shutdown_signal().await;
        tracing::info!("stopping the connector");
        let _ = stop_tx.send(true);
    });
    connector.run(stop_rx).await
}

#[cfg(test)]
mod tests {
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
    fn contradictory_or_bad_flags_are_refused() {
        assert!(parse(&["--prices", "x.csv"]).is_err(), "--prices needs --symbol");
        assert!(parse(&["--prices", "x.csv", "--symbol", "EURUSD", "--seed", "1"]).is_err());
        assert!(parse(&["--tick-ms", "0"]).is_err());
        assert!(parse(&["--balance", "lots"]).is_err());
        assert!(parse(&["--symbols", "NOPE99"]).expect("parses").config().is_err(), "unknown symbol");
    }
}
