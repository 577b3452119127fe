//! The bridge to a real MetaTrader 5 terminal: a small Python script ([`SCRIPT`], shipped inside the binary and
//! written next to the connector's data at start) run as `python -u mt5_bridge.py`, that maps requests to calls of
//! the official `MetaTrader5` package and answers with plain JSON. All protocol logic stays in Rust: the script
//! only translates.
//!
//! **Wire**: one JSON object per line on the script's stdin and stdout.
//!
//! ```text
//! → {"id": 7, "method": "positions_get", "params": {"ticket": 123}}
//! ← {"id": 7, "ok": true, "result": [{"ticket": 123, "type": 0, "volume": 0.1, ...}]}
//! ← {"id": 8, "ok": false, "error": {"code": -10004, "message": "No IPC connection"}}
//! ```
//!
//! One request at a time ([`Bridge::call`] takes `&mut self`); a line longer than [`MAX_LINE_BYTES`] is refused,
//! answers to other (timed-out) requests and lines that are not JSON objects are skipped.
//! The first request of every process is `initialize` (the script calls `MetaTrader5.initialize` and `login` with
//! the terminal path, login, password and server it finds in its environment: the password never appears on a
//! command line or in a log).
//!
//! **Failures**: no answer within the timeout, a closed pipe, or an exited process end the bridge process (it is
//! killed) and fail the call with [`Mt5Error::Timeout`] / [`Mt5Error::Disconnected`], whose outcome is unknown.
//! The next call starts a new process, not before a back-off delay (doubling per failure in a row, capped) has
//! passed — until then calls fail at once with [`Mt5Error::Disconnected`]. Terminal errors whose code is one of
//! `MetaTrader5`'s IPC codes (−10001 … −10005: the terminal is gone) count as disconnections too.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
#[cfg(test)]
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{
    AccountInfo, HistoryQuery, Mt5, Mt5Error, OrderSendResult, PositionFilter, Rate, SymbolInfo, SymbolTick, TradeDeal,
    TradeOrder, TradePosition, TradeRequest,
};
use crate::connector::Backoff;

/// The bridge script.
pub const SCRIPT: &str = include_str!("../../bridge/mt5_bridge.py");
/// The script's file name.
pub const SCRIPT_NAME: &str = "mt5_bridge.py";
/// Longest line read from the bridge.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// Default time a request may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The environment variables the script reads its terminal settings from.
pub const ENV_PATH: &str = "NUSATRADE_MT5_PATH";
/// MT5 login.
pub const ENV_LOGIN: &str = "NUSATRADE_MT5_LOGIN";
/// MT5 password.
pub const ENV_PASSWORD: &str = "NUSATRADE_MT5_PASSWORD";
/// MT5 trade server.
pub const ENV_SERVER: &str = "NUSATRADE_MT5_SERVER";

/// The default Python interpreter: `python` on Windows (the python.org installer's), `python3` elsewhere.
pub fn default_python() -> &'static str {
    if cfg!(windows) { "python" } else { "python3" }
}

/// Writes [`SCRIPT`] into `dir` (created if needed) and returns its path.
pub fn write_script(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(SCRIPT_NAME);
    crate::connector::state::write_atomic(&path, SCRIPT.as_bytes())?;
    Ok(path)
}

/// How to start the bridge.
#[derive(Clone)]
pub struct BridgeConfig {
    /// The interpreter (`python`, `python3`, a venv's).
    pub python: String,
    /// The script.
    pub script: PathBuf,
    /// Terminal executable path (`initialize(path=…)`), when not the default terminal.
    pub terminal_path: Option<String>,
    /// Login to log the terminal in with (else the terminal's current account).
    pub login: Option<u64>,
    /// Its password (passed in the environment, never on the command line).
    pub password: Option<String>,
    /// Its trade server.
    pub server: Option<String>,
    /// Extra environment for the process (tests: `PYTHONPATH`).
    pub env: Vec<(String, String)>,
    /// Time one request may take.
    pub timeout: Duration,
    /// Delays before restarting a failed bridge.
    pub restart: Backoff,
}

impl std::fmt::Debug for BridgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeConfig")
            .field("python", &self.python)
            .field("script", &self.script)
            .field("terminal_path", &self.terminal_path)
            .field("login", &self.login)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("server", &self.server)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl BridgeConfig {
    /// A bridge run by `python` from `script`, with the default timeout and restart delays (1 s doubling to 30 s).
    pub fn new(python: impl Into<String>, script: impl Into<PathBuf>) -> BridgeConfig {
        BridgeConfig {
            python: python.into(),
            script: script.into(),
            terminal_path: None,
            login: None,
            password: None,
            server: None,
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            restart: Backoff { base: Duration::from_secs(1), max: Duration::from_secs(30), max_attempts: 0 },
        }
    }
}

/// A running bridge process.
struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The JSON-lines client of the bridge process. See the module docs.
pub struct Bridge {
    config: BridgeConfig,
    running: Option<Running>,
    next_id: u64,
    failures: u32,
    retry_at: Option<Instant>,
    starts: u64,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("config", &self.config)
            .field("running", &self.running.is_some())
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// One request line.
pub fn encode_request(id: u64, method: &str, params: &Value) -> String {
    let mut line = json!({"id": id, "method": method, "params": params}).to_string();
    line.push('\n');
    line
}

/// The answer to request `id` in one line: `Ok(None)` when the line answers another request (a late answer to
/// a request that timed out is skipped), the result, or the error the line carries.
pub fn decode_response(line: &str, id: u64) -> Result<Option<Value>, Mt5Error> {
    let v: Value = serde_json::from_str(line.trim())
        .map_err(|e| Mt5Error::Protocol(format!("{e} in {:?}", line.chars().take(120).collect::<String>())))?;
    if v.get("id").and_then(Value::as_u64) != Some(id) {
        return Ok(None);
    }
    match v.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(Some(v.get("result").cloned().unwrap_or(Value::Null))),
        Some(false) => {
            let e = v.get("error").cloned().unwrap_or(Value::Null);
            let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = e.get("message").and_then(Value::as_str).unwrap_or("unknown error").to_owned();
            if (-10005..=-10001).contains(&code) {
                Err(Mt5Error::Disconnected(format!("{message} ({code})")))
            } else {
                Err(Mt5Error::Terminal { code, message })
            }
        }
        None => Err(Mt5Error::Protocol("an answer without \"ok\"".into())),
    }
}

/// Reads one line of at most `max` bytes; `None` at the end of the stream.
async fn read_line_limited<R: AsyncBufRead + Unpin>(reader: &mut R, max: usize) -> Result<Option<String>, Mt5Error> {
    let mut buf = Vec::new();
    let n = (&mut *reader)
        .take(max as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| Mt5Error::Disconnected(format!("reading from the bridge: {e}")))?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > max {
        return Err(Mt5Error::Protocol(format!("a line over {max} bytes")));
    }
    String::from_utf8(buf).map(Some).map_err(|_| Mt5Error::Protocol("a line that is not UTF-8".into()))
}

impl Bridge {
    /// A bridge that starts its process on the first call.
    pub fn new(config: BridgeConfig) -> Bridge {
        Bridge { config, running: None, next_id: 1, failures: 0, retry_at: None, starts: 0 }
    }

    /// Whether a bridge process is running (and answered its last request).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// How many processes were started so far.
    pub fn starts(&self) -> u64 {
        self.starts
    }

    /// Calls `method` with `params`; see the module docs for failures.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, Mt5Error> {
        if self.running.is_none() {
            self.start().await?;
        }
        let outcome = self.exchange(method, &params).await;
        match &outcome {
            Err(e) if e.outcome_unknown() || matches!(e, Mt5Error::Protocol(_)) => {
                warn!(method, error = %e, "MT5 bridge failed: stopping it");
                self.fail().await;
            }
            _ => {}
        }
        outcome
    }

    /// Stops the bridge process (it is started again by the next call, without delay).
    pub async fn stop(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill().await;
        }
    }

    async fn fail(&mut self) {
        self.stop().await;
        self.failures += 1;
        self.retry_at = Some(Instant::now() + self.config.restart.delay(self.failures));
    }

    async fn start(&mut self) -> Result<(), Mt5Error> {
        if let Some(at) = self.retry_at
            && Instant::now() < at
        {
            return Err(Mt5Error::Disconnected(format!(
                "the bridge restarts in {} ms",
                at.saturating_duration_since(Instant::now()).as_millis()
            )));
        }
        let c = &self.config;
        let mut cmd = Command::new(&c.python);
        cmd.arg("-u")
            .arg(&c.script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        for (k, v) in [
            (ENV_PATH, c.terminal_path.clone()),
            (ENV_LOGIN, c.login.map(|l| l.to_string())),
            (ENV_PASSWORD, c.password.clone()),
            (ENV_SERVER, c.server.clone()),
        ] {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let spawned = cmd.spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                self.failures += 1;
                self.retry_at = Some(Instant::now() + self.config.restart.delay(self.failures));
                return Err(Mt5Error::Disconnected(format!("cannot start {} {}: {e}", c.python, c.script.display())));
            }
        };
        self.starts += 1;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill().await;
            return Err(Mt5Error::Disconnected("the bridge has no stdio".into()));
        };
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    info!(target: "nusatrade_sim::mt5::bridge_script", "{}", line.chars().take(500).collect::<String>());
                }
            });
        }
        info!(python = %self.config.python, script = %self.config.script.display(), pid = ?child.id(), "MT5 bridge started");
        self.running = Some(Running { child, stdin, stdout: BufReader::new(stdout) });
        match self.exchange("initialize", &json!({})).await {
            Ok(v) => {
                info!(terminal = %v, "MT5 terminal initialised");
                self.failures = 0;
                self.retry_at = None;
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "MT5 terminal initialisation failed");
                self.fail().await;
                Err(match e {
                    Mt5Error::Terminal { code, message } => {
                        Mt5Error::Disconnected(format!("initialize failed: {message} ({code})"))
                    }
                    other => other,
                })
            }
        }
    }

    async fn exchange(&mut self, method: &str, params: &Value) -> Result<Value, Mt5Error> {
        let Some(r) = self.running.as_mut() else {
            return Err(Mt5Error::Disconnected("the bridge is not running".into()));
        };
        let id = self.next_id;
        self.next_id += 1;
        let line = encode_request(id, method, params);
        let timeout = self.config.timeout;
        let work = async {
            r.stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| Mt5Error::Disconnected(format!("writing to the bridge: {e}")))?;
            r.stdin.flush().await.map_err(|e| Mt5Error::Disconnected(format!("writing to the bridge: {e}")))?;
            loop {
                let Some(line) = read_line_limited(&mut r.stdout, MAX_LINE_BYTES).await? else {
                    return Err(Mt5Error::Disconnected("the bridge exited".into()));
                };
                if !line.trim_start().starts_with('{') {
                    // Not an answer (a library printing to stdout): the answer follows.
                    debug!(line = %line.chars().take(200).collect::<String>(), "skipping a line that is not an answer");
                    continue;
                }
                match decode_response(&line, id)? {
                    Some(v) => return Ok(v),
                    None => {
                        debug!(line = %line.chars().take(200).collect::<String>(), "skipping a stale bridge answer")
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Mt5Error::Timeout(timeout.as_millis() as u64)),
        }
    }

    async fn typed<T: DeserializeOwned>(&mut self, method: &str, params: Value) -> Result<T, Mt5Error> {
        let v = self.call(method, params).await?;
        serde_json::from_value(v).map_err(|e| Mt5Error::Protocol(format!("{method}: {e}")))
    }
}

/// A real terminal through the [`Bridge`].
#[derive(Debug)]
pub struct BridgeTerminal {
    bridge: Bridge,
}

impl BridgeTerminal {
    /// A terminal reached through `bridge`.
    pub fn new(bridge: Bridge) -> BridgeTerminal {
        BridgeTerminal { bridge }
    }

    /// The bridge.
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// Stops the bridge process.
    pub async fn shutdown(&mut self) {
        let _ = self.bridge.call("shutdown", json!({})).await;
        self.bridge.stop().await;
    }
}

fn history_params(query: HistoryQuery) -> Value {
    match query {
        HistoryQuery::Range(from, to) => json!({"date_from": from.timestamp(), "date_to": to.timestamp()}),
        HistoryQuery::Order(t) => json!({"ticket": t}),
        HistoryQuery::Position(p) => json!({"position": p}),
    }
}

impl Mt5 for BridgeTerminal {
    async fn account_info(&mut self) -> Result<AccountInfo, Mt5Error> {
        self.bridge.typed("account_info", json!({})).await
    }

    async fn symbols_get(&mut self) -> Result<Vec<String>, Mt5Error> {
        self.bridge.typed("symbols_get", json!({})).await
    }

    async fn symbol_info(&mut self, symbol: &str) -> Result<Option<SymbolInfo>, Mt5Error> {
        self.bridge.typed("symbol_info", json!({"symbol": symbol})).await
    }

    async fn symbol_select(&mut self, symbol: &str) -> Result<bool, Mt5Error> {
        self.bridge.typed("symbol_select", json!({"symbol": symbol, "enable": true})).await
    }

    async fn symbol_info_tick(&mut self, symbol: &str) -> Result<Option<SymbolTick>, Mt5Error> {
        self.bridge.typed("symbol_info_tick", json!({"symbol": symbol})).await
    }

    async fn positions_get(&mut self, filter: PositionFilter) -> Result<Vec<TradePosition>, Mt5Error> {
        let params = match filter {
            PositionFilter::All => json!({}),
            PositionFilter::Ticket(t) => json!({"ticket": t}),
        };
        self.bridge.typed("positions_get", params).await
    }

    async fn history_deals_get(&mut self, query: HistoryQuery) -> Result<Vec<TradeDeal>, Mt5Error> {
        self.bridge.typed("history_deals_get", history_params(query)).await
    }

    async fn history_orders_get(&mut self, query: HistoryQuery) -> Result<Vec<TradeOrder>, Mt5Error> {
        self.bridge.typed("history_orders_get", history_params(query)).await
    }

    async fn order_send(&mut self, request: TradeRequest) -> Result<OrderSendResult, Mt5Error> {
        let params = serde_json::to_value(&request).map_err(|e| Mt5Error::Protocol(e.to_string()))?;
        self.bridge.typed("order_send", params).await
    }

    async fn copy_rates_range(
        &mut self,
        symbol: &str,
        timeframe: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rate>, Mt5Error> {
        let params =
            json!({"symbol": symbol, "timeframe": timeframe, "date_from": from.timestamp(), "date_to": to.timestamp()});
        self.bridge.typed("copy_rates_range", params).await
    }
}

#[cfg(test)]
mod tests;
