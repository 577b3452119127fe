//! The simulated MT5 connector end to end (issue #5): the real gateway binary, and the real `nusatrade connector`
//! binary as a child process holding the WebSocket and executing on its paper account. Orders placed over HTTP
//! open at the paper fill price (not the requested one) and close with the paper profit; the connector
//! reconnects after the server drops it (positions kept) and logs in again after its session was revoked.
//! And `nusatrade serve --with-sim-connector`: the demo user, e-mail verified from the mailed link, trades.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nusatrade_tests::{Gateway, TEST_ENV, binary, eventually, find_listed, http, register, send};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The password the `register` helper uses.
const PASSWORD: &str = "Str0ng!pass";

/// The user's broker connection for MT5 login `account`, once a connector holds it.
async fn active_connection(gw: &Gateway, token: &str, account: &str) -> anyhow::Result<Value> {
    eventually(Duration::from_secs(20), || async {
        let (_, list) = send(gw, "GET", "/api/v1/brokers/connections", token, None).await;
        list.as_array()?.iter().find(|c| c["account_number"] == account && c["is_active"] == true).cloned()
    })
    .await
}

/// `nusatrade connector` as a child process; its log (stderr) goes to a file. Killed on drop.
struct ConnectorProcess {
    _child: Child,
    log: PathBuf,
}

impl ConnectorProcess {
    async fn start(gw: &Gateway, email: &str, extra: &[&str]) -> anyhow::Result<ConnectorProcess> {
        let log = gw.data_dir.path().join("connector.log");
        let child = Command::new(binary()?)
            .arg("connector")
            .args(["--server", &gw.base, "--email", email, "--password", PASSWORD])
            .args(["--tick-ms", "50", "--heartbeat-secs", "1", "--account-update-secs", "1"])
            .args(["--reconnect-base-ms", "100", "--reconnect-max-secs", "1"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .kill_on_drop(true)
            .spawn()?;
        Ok(ConnectorProcess { _child: child, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the connector has come online `n` times in all.
    async fn online(&self, n: usize) -> anyhow::Result<()> {
        eventually(Duration::from_secs(20), || async {
            (self.log().matches("connector online").count() >= n).then_some(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}; connector log:\n{}", self.log()))
    }
}

/// A flat EURUSD market: bid 1.10000 and ask 1.10015 (the default 1.5-pip spread) for good.
fn flat_eurusd(dir: &Path) -> PathBuf {
    let path = dir.join("eurusd-flat.csv");
    std::fs::write(&path, ",Open,High,Low,Close,Volume\n2024-01-02 09:00:00,1.10000,1.10000,1.10000,1.10000,1\n")
        .expect("write csv");
    path
}

#[tokio::test]
async fn paper_fills_flow_through_the_real_gateway_and_survive_reconnects() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let email = "paper-trader@example.com";
    let token = register(&gw, email).await.unwrap();

    // Refused credentials end the connector (no retry loop against a wrong password).
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(binary().unwrap())
            .args(["connector", "--server", &gw.base, "--email", email, "--password", "Wr0ng!pass"])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("exits on its own")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("login refused") && stderr.contains("Incorrect email or password"), "{stderr}");

    let csv = flat_eurusd(gw.data_dir.path());
    let csv = csv.to_str().unwrap();
    let connector =
        ConnectorProcess::start(&gw, email, &["--prices", csv, "--symbol", "EURUSD", "--account-login", "7654321"])
            .await
            .unwrap();

    // Found or created like the original connector: account number = the paper login, server = the paper server.
    let conn = active_connection(&gw, &token, "7654321").await.unwrap();
    assert_eq!(conn["server"], "NusaTrade-Paper");
    let conn_id = conn["id"].as_str().unwrap().to_owned();
    connector.online(1).await.unwrap();

    // BUY 1 lot, requested at 1.1: the paper account fills at its ask.
    let order = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 1.0, "price": 1.1});
    let (s, placed) = send(&gw, "POST", "/api/v1/trading/orders", &token, Some(order)).await;
    assert_eq!(s, 201, "{placed}");
    let id = placed["trade"]["id"].as_str().unwrap().to_owned();
    let open =
        eventually(Duration::from_secs(10), || find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open"))
            .await
            .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", connector.log()));
    assert_eq!(open["open_price"], 1.10015, "the paper fill at the ask, not the requested 1.1");
    let ticket = open["ticket"].as_u64().unwrap();
    assert!(ticket >= 100_000_001, "a paper MT5 ticket: {open}");
    assert!(open["client_order_id"].as_str().unwrap().starts_with("NT-"));

    // Stops go to the paper position.
    let (s, b) = send(
        &gw,
        "PUT",
        &format!("/api/v1/trading/orders/{id}/modify"),
        &token,
        Some(json!({"stop_loss": 1.09, "take_profit": 1.12})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    eventually(Duration::from_secs(10), || async {
        find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open").await.filter(|p| p["stop_loss"] == 1.09)
    })
    .await
    .unwrap();

    // The server drops the link: the connector comes back on its own, with its paper positions.
    let (s, b) = send(&gw, "POST", &format!("/api/v1/brokers/connections/{conn_id}/disconnect"), &token, None).await;
    assert_eq!(s, 200, "{b}");
    connector.online(2).await.unwrap();
    assert!(connector.log().contains("reconnecting"), "{}", connector.log());
    active_connection(&gw, &token, "7654321").await.unwrap();

    // The reconnect's re-sync: the paper positions become the connection's snapshot; MT5_STATUS and the
    // PING/PONG probe fill the link health.
    let st = eventually(Duration::from_secs(10), || async {
        let (_, st) = send(&gw, "GET", &format!("/api/v1/brokers/connections/{conn_id}/status"), &token, None).await;
        (st["positions_snapshot"]["count"] == 1 && st["latency_ms"].is_u64() && st["last_heartbeat"].is_string())
            .then_some(st)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", connector.log()));
    assert_eq!((&st["mt5_connected"], &st["positions_synced"]), (&json!(true), &json!(1)), "{st}");
    let p = &st["positions_snapshot"]["positions"][0];
    assert_eq!(
        (&p["ticket"], &p["stop_loss"], &p["take_profit"]),
        (&json!(ticket), &json!(1.09), &json!(1.12)),
        "{st}"
    );
    assert_eq!(st["positions_snapshot"]["complete"], true);
    assert!(!connector.log().contains("the server answered ERROR"), "every report is understood: {}", connector.log());

    // Close: the paper bid and the paper profit (1 lot × −1.5 pips of spread).
    let (s, b) = send(&gw, "PUT", &format!("/api/v1/trading/orders/{id}/close"), &token, Some(json!({}))).await;
    assert_eq!(s, 200, "{b}");
    let closed =
        eventually(Duration::from_secs(10), || find_listed(&gw, &token, "/api/v1/trading/history", &id, "closed"))
            .await
            .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", connector.log()));
    assert_eq!((&closed["close_price"], &closed["profit"]), (&json!(1.1), &json!(-15.0)), "{closed}");
    assert_eq!(closed["ticket"], ticket, "the position opened before the reconnect");

    // The account reports reach the dashboard: 10 000 − 15.
    let stats = eventually(Duration::from_secs(10), || async {
        let (_, st) = send(&gw, "GET", "/api/v1/trading/dashboard/stats", &token, None).await;
        (st["balance"] == 9985.0).then_some(st)
    })
    .await
    .unwrap();
    assert_eq!(stats["has_live_connection"], true, "{stats}");

    // An order the paper broker refuses (no XAUUSD prices in this replay) is rejected with MT5's retcode.
    let gold = json!({"symbol": "XAUUSD", "order_type": "BUY", "lot_size": 0.1, "price": 2000.0});
    let (s, placed) = send(&gw, "POST", "/api/v1/trading/orders", &token, Some(gold)).await;
    assert_eq!(s, 201, "{placed}");
    let gold_id = placed["trade"]["id"].as_str().unwrap().to_owned();
    let rejected = eventually(Duration::from_secs(10), || {
        find_listed(&gw, &token, "/api/v1/trading/history", &gold_id, "rejected")
    })
    .await
    .unwrap();
    assert_eq!(rejected["error"], "No prices for XAUUSD", "{rejected}");

    // Its session revoked and its link dropped, the connector's token is refused at the handshake: the refresh is
    // refused too, so it logs in again with its password.
    let (s, b) = send(&gw, "POST", "/api/v1/auth/sessions/revoke-others", &token, None).await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = send(&gw, "POST", &format!("/api/v1/brokers/connections/{conn_id}/disconnect"), &token, None).await;
    assert_eq!(s, 200);
    connector.online(3).await.unwrap();
    let log = connector.log();
    assert!(log.contains("token refused at the handshake"), "{log}");
    assert!(log.contains("logging in again"), "{log}");
    let (s, list) = send(&gw, "GET", "/api/v1/brokers/connections", &token, None).await;
    assert_eq!((s, list.as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "the same connection reused: {list}");
}

#[tokio::test]
async fn serve_with_sim_connector_lets_the_demo_user_trade() {
    // E-mail verification on (the default): the demo set-up must verify the demo address itself.
    let mut env = TEST_ENV.to_vec();
    env.push(("NUSATRADE_REQUIRE_EMAIL_VERIFICATION", "true"));
    let gw = Gateway::start_with_env(&["--with-sim-connector"], &env).await.unwrap();
    // The generated password is kept in the data dir (and printed on start).
    let password_file = gw.data_dir.path().join("data").join("demo.password");
    let password =
        eventually(Duration::from_secs(10), || async { std::fs::read_to_string(&password_file).ok() }).await.unwrap();

    let login = || async {
        let r = http()
            .post(gw.url("/api/v1/auth/login"))
            .json(&json!({"email": "demo@nusatrade.local", "password": password.trim()}))
            .send()
            .await
            .ok()?;
        let b: Value = r.json().await.ok()?;
        b["access_token"].as_str().map(str::to_owned)
    };
    let token = eventually(Duration::from_secs(20), login).await.unwrap();
    eventually(Duration::from_secs(20), || async {
        let (_, me) = send(&gw, "GET", "/api/v1/auth/me", &token, None).await;
        (me["email_verified"] == true).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; gateway log:\n{}", gw.log()));
    let conn = eventually(Duration::from_secs(20), || async {
        let (_, list) = send(&gw, "GET", "/api/v1/brokers/connections", &token, None).await;
        list.as_array()?.iter().find(|c| c["is_active"] == true).cloned()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; gateway log:\n{}", gw.log()));
    assert_eq!(conn["server"], "NusaTrade-Paper");

    let order = json!({"symbol": "EURUSD", "order_type": "SELL", "lot_size": 0.1, "price": 1.085});
    let (s, placed) = send(&gw, "POST", "/api/v1/trading/orders", &token, Some(order)).await;
    assert_eq!(s, 201, "{placed}");
    let id = placed["trade"]["id"].as_str().unwrap().to_owned();
    let open =
        eventually(Duration::from_secs(10), || find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open"))
            .await
            .unwrap_or_else(|e| panic!("{e}; gateway log:\n{}", gw.log()));
    let price = open["open_price"].as_f64().unwrap();
    assert!((1.0..1.2).contains(&price), "a random-walk EURUSD fill: {open}");
    assert!(open["ticket"].as_u64().unwrap() >= 100_000_001);
    let (s, b) = send(&gw, "PUT", &format!("/api/v1/trading/orders/{id}/close"), &token, Some(json!({}))).await;
    assert_eq!(s, 200, "{b}");
    let closed =
        eventually(Duration::from_secs(10), || find_listed(&gw, &token, "/api/v1/trading/history", &id, "closed"))
            .await
            .unwrap();
    assert!(closed["profit"].is_number(), "{closed}");

    // Ctrl-C / SIGTERM stops the demo connector with the gateway.
    let status = gw.terminate().await.unwrap();
    assert!(status.success(), "{status}");
}
