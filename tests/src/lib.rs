//! Harness for the end-to-end tests: starts the real `nusatrade` binary (the local gateway) on a free
//! loopback port with its own data dir, and talks to it over HTTP and WebSocket.
//!
//! The binary is the one cargo built for this workspace (`target/<profile>/nusatrade`);
//! `cargo test --workspace` (and `tests/run.sh`) build it before running tests. Override with
//! `NUSATRADE_BIN`.

pub mod browser;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the `nusatrade` binary is.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("NUSATRADE_BIN") {
        return Ok(PathBuf::from(p));
    }
    // target/<profile>/deps/<test-exe> → target/<profile>/nusatrade
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(|d| d.parent()).context("unexpected test executable location")?;
    let bin = profile_dir.join(format!("nusatrade{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        bail!("{} not found: build it first (cargo build -p nusatrade-local) or run tests/run.sh", bin.display());
    }
    Ok(bin)
}

/// A running gateway process. Killed on drop.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// How long the process took from spawn to its ready line.
    pub ready_after: Duration,
    pub data_dir: tempfile::TempDir,
    stderr_log: PathBuf,
}

impl Gateway {
    /// Starts `nusatrade serve` with extra arguments on a free port and waits for its ready line.
    pub async fn start(extra: &[&str]) -> anyhow::Result<Gateway> {
        Self::start_with_env(extra, &[]).await
    }

    /// [`start`](Self::start) with extra environment variables for the child (e.g. cheap argon2
    /// parameters, rate limits).
    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Gateway> {
        Self::start_in(tempfile::tempdir()?, extra, env).await
    }

    /// [`start_with_env`](Self::start_with_env) on an existing data dir (one a stopped gateway handed
    /// back with [`stop`](Self::stop)): a second process on the same data.
    pub async fn start_in(
        data_dir: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Gateway> {
        let stderr_log = data_dir.path().join("gateway.log");
        let log_file = std::fs::File::create(&stderr_log)?;
        let started = Instant::now();
        let mut child = Command::new(binary()?)
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path().join("data"))
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .context("spawn nusatrade")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("gateway did not become ready within 30 s")??
            .with_context(|| {
                format!("gateway exited before ready: {}", std::fs::read_to_string(&stderr_log).unwrap_or_default())
            })?;
        let ready_after = started.elapsed();
        let base = line
            .strip_prefix("NusaTrade listening on ")
            .with_context(|| format!("unexpected ready line {line:?}"))?
            .trim()
            .to_owned();
        // keep draining stdout so the child never blocks on a full pipe
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Gateway { child, base, ready_after, data_dir, stderr_log })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base.replacen("http://", "ws://", 1))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The gateway's log so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Terminates the process and hands back its data dir (for [`start_in`](Self::start_in)).
    pub async fn stop(mut self) -> anyhow::Result<tempfile::TempDir> {
        let pid = self.child.id().context("already exited")?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.context("no exit within 10 s")??;
        Ok(self.data_dir)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("already exited")?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        Ok(tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.context("no exit within 10 s")??)
    }
}

/// An HTTP client for tests (no proxies; 30 s per request: a hung request still fails the test, a debug gateway
/// on a loaded 2-core machine does not).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("http client")
}

/// Environment for gateways in tests that register users: a fixed JWT secret, cheap argon2 parameters,
/// generous request limits, no e-mail verification step.
pub const TEST_ENV: &[(&str, &str)] = &[
    ("NUSATRADE_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e-secret"),
    ("NUSATRADE_ARGON2_MEMORY_KIB", "8192"),
    ("NUSATRADE_ARGON2_ITERATIONS", "1"),
    ("NUSATRADE_ARGON2_PARALLELISM", "1"),
    ("NUSATRADE_RATE_LIMIT_AUTH_REQUESTS", "100000"),
    ("NUSATRADE_RATE_LIMIT_REQUESTS", "1000000"),
    ("NUSATRADE_REQUIRE_EMAIL_VERIFICATION", "false"),
];

/// Registers a user and returns its access token.
pub async fn register(gw: &Gateway, email: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({"email": email, "password": "Str0ng!pass", "full_name": "E2E"});
    let b = post_created(gw, "/api/v1/auth/register", None, body, &format!("register {email}")).await?;
    Ok(b["access_token"].as_str().context("access_token")?.to_owned())
}

/// Creates a broker connection (as the connector does after its MT5 login) and returns its id.
pub async fn broker_connection(gw: &Gateway, token: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({"broker_name": "Paper Broker", "account_number": "1234567", "server": "Paper-Demo"});
    let b = post_created(gw, "/api/v1/brokers/connections", Some(token), body, "create broker connection").await?;
    Ok(b["id"].as_str().context("id")?.to_owned())
}

/// A registered user with a broker connection: its access token and the connection's id.
pub async fn trader(gw: &Gateway, email: &str) -> anyhow::Result<(String, String)> {
    let token = register(gw, email).await?;
    let conn = broker_connection(gw, &token).await?;
    Ok((token, conn))
}

/// [`trader`] with its scripted connector online (acknowledging trade commands).
pub async fn online_trader(gw: &Gateway, email: &str) -> anyhow::Result<(String, String, TestConnector)> {
    let (token, conn) = trader(gw, email).await?;
    let connector = TestConnector::connect(gw, &token, &conn).await?;
    Ok((token, conn, connector))
}

/// A client WebSocket of the tests.
pub type WsClient = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A dashboard's WebSocket (`/connector/client`) with `token`.
pub async fn dashboard(gw: &Gateway, token: &str) -> WsClient {
    let (ws, _) =
        tokio_tungstenite::connect_async(gw.ws_url(&format!("/connector/client?token={token}"))).await.unwrap();
    ws
}

/// POSTs `body` (with `token` as the bearer when given) and returns the JSON answer of a 201; any other status is
/// an error that starts with `what`.
async fn post_created(
    gw: &Gateway,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
    what: &str,
) -> anyhow::Result<serde_json::Value> {
    let mut req = http().post(gw.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    if r.status() != 201 {
        bail!("{what}: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    Ok(r.json().await?)
}

/// What a scripted connector does with a trade command it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// Executes it on its [`Terminal`] and answers with a `TRADE_RESULT`.
    Ack,
    /// Records it only: neither executes nor answers (a command lost before MT5).
    Silent,
    /// Executes it, then the link breaks before the ack is sent (the socket is dropped, as a crash would).
    FillThenCut,
    /// Executes it; the ack is lost (never sent) and the link stays up.
    FillAckLost,
}

/// The capability the scripted connector honours when it states it: a trade command repeated with the same
/// `request_id` is answered with its first result, never executed again.
pub const DEDUPE: &str = "dedupe_request_id";

/// How [`TestConnector::connect_opts`] connects and behaves.
#[derive(Clone, Debug)]
pub struct ConnectorOptions {
    /// `/connector/ws`, or `/ws` (the single endpoint of an API Gateway stage).
    pub path: String,
    pub mode: AckMode,
    /// The `capabilities` of its `AUTH`. `None`: exactly the original connector's `AUTH {type, token, client_type,
    /// timestamp}` and its behaviour — no de-duplication, open acks with the ticket only (no price, no retcode).
    pub capabilities: Option<Vec<String>>,
    /// The MT5 terminal it executes on (share one between a connector and its reconnection).
    pub terminal: Terminal,
}

impl Default for ConnectorOptions {
    /// `/connector/ws`, acknowledging, stating (and honouring) [`DEDUPE`], on a fresh terminal.
    fn default() -> Self {
        ConnectorOptions {
            path: "/connector/ws".into(),
            mode: AckMode::Ack,
            capabilities: Some(vec![DEDUPE.into()]),
            terminal: Terminal::default(),
        }
    }
}

impl ConnectorOptions {
    /// The original NusaTrade connector: states nothing, de-duplicates nothing.
    pub fn original(terminal: &Terminal, mode: AckMode) -> Self {
        ConnectorOptions { capabilities: None, mode, terminal: terminal.clone(), ..ConnectorOptions::default() }
    }

    /// A connector stating (and honouring) [`DEDUPE`].
    pub fn deduplicating(terminal: &Terminal, mode: AckMode) -> Self {
        ConnectorOptions { mode, terminal: terminal.clone(), ..ConnectorOptions::default() }
    }
}

/// A stand-in for the MT5 terminal behind scripted connectors: the positions their `TRADE_OPEN`s opened (every
/// execution is a new position with a new ticket, as MT5's market orders are) and what a de-duplicating connector
/// remembers of the results it sent. Shared by clones, so it outlives a connector's socket.
#[derive(Clone, Debug)]
pub struct Terminal(std::sync::Arc<std::sync::Mutex<TerminalState>>);

impl Default for Terminal {
    /// A fresh terminal. Its tickets are unique among the terminals of the test process, as MT5's are on one trade
    /// server (the tests' broker connections all name one server and account, and the gateway refuses a ticket
    /// already bound to another connection's order).
    fn default() -> Self {
        static TERMINALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = TERMINALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let state = TerminalState { last_ticket: 500_000_000 + n * 1_000_000, ..TerminalState::default() };
        Terminal(std::sync::Arc::new(std::sync::Mutex::new(state)))
    }
}

#[derive(Debug, Default)]
struct TerminalState {
    last_ticket: u64,
    /// ticket → the open command that made it.
    positions: std::collections::BTreeMap<u64, serde_json::Value>,
    closed: std::collections::BTreeSet<u64>,
    /// request id → the first result (kept by de-duplicating connectors only).
    results: std::collections::HashMap<String, serde_json::Value>,
    executions: u64,
}

impl Terminal {
    /// The open positions: ticket and the `TRADE_OPEN` that opened it.
    pub fn positions(&self) -> Vec<(u64, serde_json::Value)> {
        self.lock().positions.iter().map(|(t, c)| (*t, c.clone())).collect()
    }

    /// Trade commands executed (not answered from memory).
    pub fn executions(&self) -> u64 {
        self.lock().executions
    }

    /// MT5 closes position `ticket` on its own (its stop loss or take profit hit, a stop-out): no connector is told.
    /// Whether it was open.
    pub fn close_in_mt5(&self, ticket: u64) -> bool {
        let mut st = self.lock();
        let was_open = st.positions.remove(&ticket).is_some();
        if was_open {
            st.closed.insert(ticket);
        }
        was_open
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TerminalState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Executes a trade command (or answers it from memory when `dedupe`); `None` for other frames.
    fn execute(
        &self,
        v: &serde_json::Value,
        dedupe: bool,
        original: bool,
        price: Option<f64>,
    ) -> Option<serde_json::Value> {
        use serde_json::json;
        let kind = v["type"].as_str()?;
        if !matches!(kind, "TRADE_OPEN" | "TRADE_CLOSE" | "TRADE_MODIFY") {
            return None;
        }
        let mut st = self.lock();
        let rid = v["request_id"].as_str().map(str::to_owned);
        if dedupe && let Some(first) = rid.as_ref().and_then(|r| st.results.get(r)) {
            return Some(first.clone());
        }
        st.executions += 1;
        let result = match kind {
            "TRADE_OPEN" => {
                st.last_ticket = st.last_ticket.max(500_000_000) + 1;
                let ticket = st.last_ticket;
                st.positions.insert(ticket, v.clone());
                if original {
                    // The original's open ack: no price, no retcode, no time.
                    json!({"type": "TRADE_RESULT", "request_id": v["request_id"], "success": true, "ticket": ticket,
                        "error": null})
                } else {
                    json!({"type": "TRADE_RESULT", "request_id": v["request_id"], "success": true, "ticket": ticket,
                        "price": price, "retcode": 10009, "error": null})
                }
            }
            "TRADE_CLOSE" => {
                let ticket = v["ticket"].as_u64().unwrap_or_default();
                if st.closed.contains(&ticket) {
                    // Closed already: MT5 has no such position any more.
                    json!({"type": "TRADE_RESULT", "request_id": v["request_id"], "success": false, "price": 0.0,
                        "error": format!("Position {ticket} not found")})
                } else {
                    st.positions.remove(&ticket);
                    st.closed.insert(ticket);
                    json!({"type": "TRADE_RESULT", "request_id": v["request_id"], "success": true, "price": price,
                        "error": null})
                }
            }
            _ => json!({"type": "TRADE_RESULT", "request_id": v["request_id"], "success": true, "error": null}),
        };
        if dedupe && let Some(r) = rid {
            st.results.insert(r, result.clone());
        }
        Some(result)
    }
}

/// A scripted MT5 connector on the real WebSocket: executes `TRADE_OPEN` / `TRADE_CLOSE` / `TRADE_MODIFY` on its
/// [`Terminal`] and answers with `TRADE_RESULT`s as its [`AckMode`] says (filling at the prices the test sets per
/// symbol), answers the server's `PING` with `PONG`, sends what the test gives it ([`TestConnector::send`]), and
/// records every frame it received after `WELCOME`.
pub struct TestConnector {
    /// Every frame received after `WELCOME`, in order.
    pub received: std::sync::Arc<tokio::sync::Mutex<Vec<serde_json::Value>>>,
    /// Fill price per symbol for the next open/close (`symbol → price`).
    pub prices: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, f64>>>,
    /// The terminal it executes on.
    pub terminal: Terminal,
    mode: std::sync::Arc<std::sync::Mutex<AckMode>>,
    out: tokio::sync::mpsc::UnboundedSender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl TestConnector {
    /// Connects with `token` to broker connection `conn`, sends `AUTH` and waits for `WELCOME` (the default
    /// [`ConnectorOptions`]: acknowledging, de-duplicating).
    pub async fn connect(gw: &Gateway, token: &str, conn: &str) -> anyhow::Result<TestConnector> {
        Self::connect_opts(gw, token, conn, ConnectorOptions::default()).await
    }

    /// [`connect`](Self::connect) on another WebSocket path (`/ws`: the single endpoint of an API
    /// Gateway stage), acknowledging trade commands only when `acks`.
    pub async fn connect_with(
        gw: &Gateway,
        path: &str,
        token: &str,
        conn: &str,
        acks: bool,
    ) -> anyhow::Result<TestConnector> {
        let mode = if acks { AckMode::Ack } else { AckMode::Silent };
        Self::connect_opts(gw, token, conn, ConnectorOptions { path: path.into(), mode, ..ConnectorOptions::default() })
            .await
    }

    /// Connects as `opts` say, sends `AUTH` and waits for `WELCOME`.
    pub async fn connect_opts(
        gw: &Gateway,
        token: &str,
        conn: &str,
        opts: ConnectorOptions,
    ) -> anyhow::Result<TestConnector> {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;

        let url = gw.ws_url(&format!("{}?token={token}&connection_id={conn}&token={token}", opts.path));
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        let mut auth = serde_json::json!({"type": "AUTH", "token": token, "client_type": "connector",
            "timestamp": "2026-01-05T10:00:00.000000"});
        if let Some(caps) = &opts.capabilities {
            auth["capabilities"] = serde_json::json!(caps);
        }
        ws.send(Message::Text(auth.to_string().into())).await?;
        // Frames before WELCOME are none (WELCOME is the first push); the resent commands come after it.
        let received = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await?.context("closed")??;
            if let Message::Text(t) = msg {
                let v: serde_json::Value = serde_json::from_str(&t)?;
                if v["type"] == "WELCOME" {
                    break;
                }
            }
        }
        let prices = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<String, f64>::new()));
        let mode = std::sync::Arc::new(std::sync::Mutex::new(opts.mode));
        let dedupe = opts.capabilities.as_ref().is_some_and(|c| c.iter().any(|c| c == DEDUPE));
        let original = opts.capabilities.is_none();
        let (out, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let (rec, px, md, terminal) = (received.clone(), prices.clone(), mode.clone(), opts.terminal.clone());
        let task = tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    msg = ws.next() => msg,
                    Some(frame) = out_rx.recv() => {
                        if ws.send(Message::Text(frame.into())).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(t) = msg else { continue };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) else { continue };
                rec.lock().await.push(v.clone());
                if v["type"] == "PING" {
                    let pong = serde_json::json!({"type": "PONG", "timestamp": "2024-01-01T00:00:00"});
                    if ws.send(Message::Text(pong.to_string().into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                let mode = *md.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if mode == AckMode::Silent {
                    continue;
                }
                let price = v["symbol"].as_str().and_then(|s| px.lock().unwrap().get(s).copied());
                let Some(reply) = terminal.execute(&v, dedupe, original, price) else { continue };
                match mode {
                    AckMode::FillThenCut => break, // the socket is dropped with the task: no close frame
                    AckMode::FillAckLost => continue,
                    _ => {}
                }
                if ws.send(Message::Text(reply.to_string().into())).await.is_err() {
                    break;
                }
            }
        });
        Ok(TestConnector { received, prices, terminal: opts.terminal, mode, out, task })
    }

    pub fn set_price(&self, symbol: &str, price: f64) {
        self.prices.lock().unwrap().insert(symbol.to_owned(), price);
    }

    /// Switches the acknowledgement of trade commands on ([`AckMode::Ack`]) or off ([`AckMode::Silent`]).
    pub fn set_acks(&self, on: bool) {
        self.set_mode(if on { AckMode::Ack } else { AckMode::Silent });
    }

    /// What the connector does with the next trade commands.
    pub fn set_mode(&self, mode: AckMode) {
        *self.mode.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = mode;
    }

    /// Sends a frame as the connector.
    pub fn send(&self, frame: serde_json::Value) {
        let _ = self.out.send(frame.to_string());
    }

    /// The commands of one `type` received so far.
    pub async fn commands(&self, kind: &str) -> Vec<serde_json::Value> {
        self.received.lock().await.iter().filter(|v| v["type"] == kind).cloned().collect()
    }

    /// Whether its socket is gone (killed, cut by [`AckMode::FillThenCut`], or closed by the server).
    pub fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// Drops the socket without a close frame, as a killed connector process would.
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for TestConnector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next text frame of `type` `kind` on a WebSocket, skipping others, within `within`.
pub async fn next_of<S>(ws: &mut S, kind: &str, within: Duration) -> anyhow::Result<serde_json::Value>
where
    S: futures::StreamExt<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .with_context(|| format!("no {kind} within {within:?}"))?
            .context("socket closed")??;
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t)?;
            if v["type"] == kind {
                return Ok(v);
            }
        }
    }
}

/// Polls `f` every 10 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("condition not met within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends an authenticated JSON request (optionally with an `Idempotency-Key`); returns the status and the
/// JSON body (`null` when the body is not JSON).
pub async fn send_with(
    gw: &Gateway,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
    idempotency_key: Option<&str>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut req = http().request(method.parse().expect("HTTP method"), gw.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await.expect("request");
    let s = r.status();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// [`send_with`] without an idempotency key.
pub async fn send(
    gw: &Gateway,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    send_with(gw, method, path, token, body, None).await
}

/// Places an order over HTTP, expecting 201: the answer and the order's id.
pub async fn place(gw: &Gateway, token: &str, order: serde_json::Value) -> (serde_json::Value, String) {
    let (s, placed) = send(gw, "POST", "/api/v1/trading/orders", token, Some(order)).await;
    assert_eq!(s, 201, "{placed}");
    let id = placed["trade"]["id"].as_str().expect("the order's id").to_owned();
    (placed, id)
}

/// The item with `id` and `status` in the JSON array a list route (`positions`, `history`) returns.
pub async fn find_listed(gw: &Gateway, token: &str, path: &str, id: &str, status: &str) -> Option<serde_json::Value> {
    let (s, list) = send(gw, "GET", path, token, None).await;
    assert_eq!(s, 200, "{list}");
    list.as_array()?.iter().find(|o| o["id"] == id && o["status"] == status).cloned()
}

/// Load tools (`tests/examples`): the value of `--name N` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Load tools: the `p` quantile (0..=1) of sorted latencies (zero when there are none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The `token=` of the newest mail to `to` whose subject contains `subject`.
pub fn mailed_token(gw: &Gateway, to: &str, subject: &str) -> String {
    let dir = gw.data_dir.path().join("data").join("mail");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for p in names.iter().rev() {
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        if m["to"] == to && m["subject"].as_str().unwrap().contains(subject) {
            let text = m["text"].as_str().unwrap();
            let at = text.find("token=").unwrap() + "token=".len();
            return text[at..].split_whitespace().next().unwrap().to_owned();
        }
    }
    panic!("no mail {subject:?} to {to} in {}", dir.display());
}

/// The real EURUSD hourly candles of the team's reference folder (beside the checkout; tests only).
pub const EURUSD_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/EURUSD.csv");

/// The EURUSD sample's bytes, or `None` (printing why, so the test reports itself skipped) when the reference
/// folder is not beside the checkout.
pub fn eurusd_csv() -> Option<Vec<u8>> {
    match std::fs::read(EURUSD_CSV) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("SKIPPED: {EURUSD_CSV} not readable ({e}); the EURUSD sample is not beside the repository");
            None
        }
    }
}

/// Uploads `csv` as the caller's `symbol`/`timeframe` candle dataset (`POST /ml/datasets`, 201 expected);
/// returns the answer.
pub async fn upload_candles(
    gw: &Gateway,
    token: &str,
    symbol: &str,
    timeframe: &str,
    csv: Vec<u8>,
) -> serde_json::Value {
    let r = http()
        .post(gw.url(&format!("/api/v1/ml/datasets?symbol={symbol}&timeframe={timeframe}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("dataset upload");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, reqwest::StatusCode::CREATED, "dataset upload: {body}");
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

/// [`TEST_ENV`] with no language model configured, whatever the machine's environment says (the AI pages' and
/// routes' "no model" answers).
pub fn env_without_llm() -> Vec<(&'static str, &'static str)> {
    let mut env = TEST_ENV.to_vec();
    for var in [
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "NUSATRADE_LLM_PROVIDER",
        "NUSATRADE_LLM_BASE_URL",
        "NUSATRADE_LLM_MODEL",
    ] {
        env.push((var, ""));
    }
    env
}

/// `bars` generated hourly EURUSD candles (CSV) ending an hour ago: a gentle, deterministic walk around 1.10.
pub fn hourly_candles_csv(bars: i64) -> Vec<u8> {
    let end = chrono::Utc::now().timestamp() / 3600 * 3600 - 3600;
    let mut csv = String::from("time,open,high,low,close,volume\n");
    let mut price: f64 = 1.1;
    for i in 0..bars {
        let t = chrono::DateTime::from_timestamp(end - (bars - 1 - i) * 3600, 0).unwrap();
        let open = price;
        let close = open + (i as f64 / 9.0).sin() * 0.0006 + ((i * 37 % 11) as f64 - 5.0) * 0.00008;
        let high = open.max(close) + 0.0004;
        let low = open.min(close) - 0.0004;
        price = close;
        csv.push_str(&format!("{},{open:.5},{high:.5},{low:.5},{close:.5},100\n", t.to_rfc3339()));
    }
    csv.into_bytes()
}

/// One EURUSD trade of 0.1 lot opened at `open` and closed at `close` through the scripted connector `conn`
/// (a closed trade for statistics, equity curves and reviews).
pub async fn round_trip(gw: &Gateway, token: &str, conn: &TestConnector, open: f64, close: f64) {
    conn.set_price("EURUSD", open);
    let (_, id) =
        place(gw, token, serde_json::json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": open}))
            .await;
    eventually(Duration::from_secs(5), || find_listed(gw, token, "/api/v1/trading/positions", &id, "open"))
        .await
        .expect("open");
    conn.set_price("EURUSD", close);
    let body = serde_json::json!({"close_price": close});
    let (s, b) = send(gw, "PUT", &format!("/api/v1/trading/orders/{id}/close"), token, Some(body)).await;
    assert_eq!(s, 200, "{b}");
    eventually(Duration::from_secs(5), || find_listed(gw, token, "/api/v1/trading/history", &id, "closed"))
        .await
        .expect("closed");
}

/// Waits, when the current 30 s TOTP step has less than `margin` left, for the next one to begin: a code of the
/// previous step (`totp_code(secret, -30)`) computed just before a step ends would be two steps old when checked.
pub async fn totp_step_with_time_left(margin: std::time::Duration) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let left = std::time::Duration::from_secs(30) - std::time::Duration::from_millis((now.as_millis() % 30_000) as u64);
    if left < margin {
        tokio::time::sleep(left + std::time::Duration::from_millis(100)).await;
    }
}

/// The TOTP code of `secret` (base32) for now + `offset_secs` (±30 s: the previous / next step).
pub fn totp_code(secret: &str, offset_secs: i64) -> String {
    let t = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .with_account_name("x")
        .with_issuer(Some("NusaTrade"))
        .build()
        .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    t.generate((now + offset_secs) as u64).to_string()
}
