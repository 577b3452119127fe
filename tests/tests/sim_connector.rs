//! The simulated MT5 connector end to end (issue #5): the real gateway binary, and the real `nusatrade connector`
//! binary as a child process holding the WebSocket and executing on its paper account. Orders placed over HTTP
//! open at the paper fill price (not the requested one) and close with the paper profit; the connector
//! reconnects after the server drops it (positions kept) and logs in again after its session was revoked.
//! And `nusatrade serve --with-sim-connector`: the demo user, e-mail verified from the mailed link, trades.
//!
//! The connector's fault flags against the server's delivery rules: injected rejections end orders rejected with
//! their MT5 retcode; dropped acks leave orders pending while the paper account holds the fill; duplicated and
//! delayed acks open each order once (and a delayed ack holds up nothing else); a link dropped after every
//! command, before its ack, still opens and closes each order exactly once (the server's resend answered from the
//! connector's de-duplication memory); and a connector killed before acking and restarted on the same
//! `--state-file` answers the resend from the file and keeps its positions.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nusatrade_tests::{Gateway, TEST_ENV, binary, eventually, find_listed, http, next_of, register, send};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

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
    child: Child,
    log: PathBuf,
}

impl ConnectorProcess {
    async fn start(gw: &Gateway, email: &str, extra: &[&str]) -> anyhow::Result<ConnectorProcess> {
        Self::start_named(gw, "connector", email, extra).await
    }

    /// [`start`](Self::start) logging to `<name>.log` (several processes in one test).
    async fn start_named(gw: &Gateway, name: &str, email: &str, extra: &[&str]) -> anyhow::Result<ConnectorProcess> {
        let log = gw.data_dir.path().join(format!("{name}.log"));
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
        Ok(ConnectorProcess { child, log })
    }

    /// SIGKILL: no chance to close the socket or save anything more.
    async fn kill(&mut self) {
        self.child.kill().await.expect("kill the connector");
    }

    /// SIGTERM, and the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.expect("kill");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.expect("exits").expect("status")
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
    let id = place_order(&gw, &token, order).await;
    let open = listed(&gw, &token, "positions", &id, "open")
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
    close(&gw, &token, &id).await;
    let closed = listed(&gw, &token, "history", &id, "closed")
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
    let gold_id = place_order(&gw, &token, gold).await;
    let rejected = listed(&gw, &token, "history", &gold_id, "rejected").await.unwrap();
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
    let id = place_order(&gw, &token, order).await;
    let open = listed(&gw, &token, "positions", &id, "open")
        .await
        .unwrap_or_else(|e| panic!("{e}; gateway log:\n{}", gw.log()));
    let price = open["open_price"].as_f64().unwrap();
    assert!((1.0..1.2).contains(&price), "a random-walk EURUSD fill: {open}");
    assert!(open["ticket"].as_u64().unwrap() >= 100_000_001);
    close(&gw, &token, &id).await;
    let closed = listed(&gw, &token, "history", &id, "closed").await.unwrap();
    assert!(closed["profit"].is_number(), "{closed}");
    // The demo connector keeps its paper account in the data dir.
    let state: Value = serde_json::from_slice(
        &std::fs::read(gw.data_dir.path().join("data").join("sim-connector.state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["format"], "nusatrade-sim-connector-state");
    assert_eq!(state["account"]["next_ticket"], open["ticket"].as_u64().unwrap() + 1, "{state}");

    // Ctrl-C / SIGTERM stops the demo connector with the gateway.
    let status = gw.terminate().await.unwrap();
    assert!(status.success(), "{status}");
}

/// A gateway, a registered user with a token, and a connector on a flat EURUSD market (MT5 login `login`) with
/// `extra` flags, online.
async fn trader(
    email: &str,
    login: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Gateway, String, String, ConnectorProcess) {
    let mut all_env = TEST_ENV.to_vec();
    all_env.extend_from_slice(env);
    let gw = Gateway::start_with_env(&[], &all_env).await.unwrap();
    let token = register(&gw, email).await.unwrap();
    let csv = flat_eurusd(gw.data_dir.path());
    let mut args = vec!["--prices", csv.to_str().unwrap(), "--symbol", "EURUSD", "--account-login", login];
    args.extend_from_slice(extra);
    let connector = ConnectorProcess::start(&gw, email, &args).await.unwrap();
    let conn = active_connection(&gw, &token, login).await.unwrap();
    connector.online(1).await.unwrap();
    let conn_id = conn["id"].as_str().unwrap().to_owned();
    (gw, token, conn_id, connector)
}

/// Places a market order (EURUSD BUY `lots`); returns its id.
async fn place(gw: &Gateway, token: &str, lots: f64) -> String {
    place_order(gw, token, json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": lots, "price": 1.1})).await
}

/// Places `order` (201 expected); returns its id.
async fn place_order(gw: &Gateway, token: &str, order: Value) -> String {
    let (s, placed) = send(gw, "POST", "/api/v1/trading/orders", token, Some(order)).await;
    assert_eq!(s, 201, "{placed}");
    placed["trade"]["id"].as_str().unwrap().to_owned()
}

/// Order `id` with `status` in the `/api/v1/trading/{list}` list, waited for up to 10 s.
async fn listed(gw: &Gateway, token: &str, list: &str, id: &str, status: &str) -> anyhow::Result<Value> {
    let path = format!("/api/v1/trading/{list}");
    eventually(Duration::from_secs(20), || find_listed(gw, token, &path, id, status)).await
}

/// Closes order `id` (200 expected).
async fn close(gw: &Gateway, token: &str, id: &str) {
    let (s, b) = send(gw, "PUT", &format!("/api/v1/trading/orders/{id}/close"), token, Some(json!({}))).await;
    assert_eq!(s, 200, "{b}");
}

/// An order by id.
async fn order(gw: &Gateway, token: &str, id: &str) -> Value {
    let (s, o) = send(gw, "GET", &format!("/api/v1/trading/orders/{id}"), token, None).await;
    assert_eq!(s, 200, "{o}");
    o
}

/// The user's open positions (the list route).
async fn open_positions(gw: &Gateway, token: &str) -> Vec<Value> {
    let (s, list) = send(gw, "GET", "/api/v1/trading/positions", token, None).await;
    assert_eq!(s, 200, "{list}");
    list.as_array().unwrap().iter().filter(|p| p["status"] == "open").cloned().collect()
}

/// When the connection's last positions snapshot was received (RFC 3339; empty when none).
async fn snapshot_time(gw: &Gateway, token: &str, conn_id: &str) -> String {
    let (_, st) = send(gw, "GET", &format!("/api/v1/brokers/connections/{conn_id}/status"), token, None).await;
    st["positions_snapshot"]["received_at"].as_str().unwrap_or_default().to_owned()
}

/// The connection status once a positions snapshot other than the one received at `before` is there.
async fn snapshot_after(gw: &Gateway, token: &str, conn_id: &str, before: &str) -> anyhow::Result<Value> {
    eventually(Duration::from_secs(10), || async {
        let (_, st) = send(gw, "GET", &format!("/api/v1/brokers/connections/{conn_id}/status"), token, None).await;
        (st["positions_snapshot"]["received_at"].as_str()? != before).then_some(st)
    })
    .await
}

/// Asks the connector for a full sync and returns the connection status with the snapshot it answered (after the
/// one its connection answered, so that one cannot be mistaken for it).
async fn fresh_snapshot(gw: &Gateway, token: &str, conn_id: &str) -> Value {
    let before = snapshot_after(gw, token, conn_id, "").await.unwrap();
    let before = before["positions_snapshot"]["received_at"].as_str().unwrap().to_owned();
    let (s, b) = send(gw, "POST", &format!("/api/v1/brokers/connections/{conn_id}/sync"), token, None).await;
    assert_eq!(s, 200, "{b}");
    snapshot_after(gw, token, conn_id, &before).await.unwrap()
}

#[tokio::test]
async fn injected_rejections_end_orders_rejected_with_their_mt5_retcode() {
    let (gw, token, _conn, connector) = trader("rejected@example.com", "7000001", &["--reject", "100"], &[]).await;
    let (mut browser, _) =
        tokio_tungstenite::connect_async(gw.ws_url(&format!("/connector/client?token={token}"))).await.unwrap();
    // Answered: the dashboard is registered for the fan-out before the first order.
    futures::SinkExt::send(&mut browser, Message::Text(json!({"type": "PING"}).to_string().into())).await.unwrap();
    next_of(&mut browser, "PONG", Duration::from_secs(15)).await.unwrap();
    let messages =
        [(10004, "Requote"), (10006, "Request rejected"), (10019, "There is not enough money to complete the request")];
    for _ in 0..3 {
        let id = place(&gw, &token, 0.1).await;
        // The dashboard gets the connector's TRADE_RESULT as it was sent: failed, with an MT5 retcode.
        let result = next_of(&mut browser, "TRADE_RESULT", Duration::from_secs(10)).await.unwrap();
        assert!(result["request_id"].as_str().unwrap().contains(&id), "{result}");
        assert_eq!(result["success"], false, "{result}");
        let code = result["retcode"].as_u64().unwrap();
        let (_, text) = messages.iter().find(|(c, _)| *c == code).unwrap_or_else(|| panic!("retcode {code}"));
        let rejected = listed(&gw, &token, "history", &id, "rejected")
            .await
            .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", connector.log()));
        assert_eq!(rejected["error"], *text, "{rejected}");
        assert!(rejected["ticket"].is_null(), "never filled: {rejected}");
    }
    assert!(open_positions(&gw, &token).await.is_empty());
    assert_eq!(connector.log().matches("injected fault (--reject)").count(), 3, "{}", connector.log());
    assert!(!connector.log().contains("TRADE_OPEN filled"), "nothing executed");
}

#[tokio::test]
async fn dropped_acks_leave_orders_pending_while_the_paper_account_holds_the_fill() {
    // Reconciliation would settle the order from the connector's positions after its minimum age: kept away here.
    let env = [("NUSATRADE_RECONCILE_MIN_AGE_SECS", "300")];
    let (gw, token, conn, connector) = trader("dropped@example.com", "7000002", &["--drop-acks", "100"], &env).await;
    let id = place(&gw, &token, 0.1).await;
    eventually(Duration::from_secs(10), || async {
        let log = connector.log();
        (log.contains("TRADE_OPEN filled") && log.contains("injected fault (--drop-acks)")).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", connector.log()));
    // Executed at the paper account (its positions report shows the fill)...
    let st = fresh_snapshot(&gw, &token, &conn).await;
    assert_eq!(st["positions_snapshot"]["count"], 1, "{st}");
    let comment = st["positions_snapshot"]["positions"][0]["comment"].as_str().unwrap().to_owned();
    // ...but never acknowledged: the order is still in flight, nothing is open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let o = order(&gw, &token, &id).await;
    assert!(o["status"] == "pending" || o["status"] == "unknown", "{o}");
    assert!(o["ticket"].is_null(), "{o}");
    assert_eq!(o["client_order_id"], comment, "the paper position is this order's");
    assert!(open_positions(&gw, &token).await.is_empty());
}

#[tokio::test]
async fn duplicated_and_delayed_acks_open_each_order_once() {
    let env = [("NUSATRADE_RECONCILE_MIN_AGE_SECS", "300")];
    // Acks held back 5 s: long enough for the sync and the status reads below on a loaded machine.
    let flags = ["--duplicate-acks", "100", "--delay-acks", "5000"];
    let (gw, token, conn, connector) = trader("doubled@example.com", "7000003", &flags, &env).await;
    let ids = futures::future::join_all((0..3).map(|_| place(&gw, &token, 0.1))).await;
    // While the results wait, the link still carries everything else: a sync answered with the three fills.
    let st = fresh_snapshot(&gw, &token, &conn).await;
    assert_eq!(st["positions_snapshot"]["count"], 3, "{st}");
    for id in &ids {
        assert_eq!(order(&gw, &token, id).await["status"], "pending", "its ack is still held back");
    }
    for id in &ids {
        listed(&gw, &token, "positions", id, "open")
            .await
            .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", connector.log()));
    }
    // Close one: also acknowledged twice, closed once.
    close(&gw, &token, &ids[0]).await;
    let closed = listed(&gw, &token, "history", &ids[0], "closed").await.unwrap();
    assert_eq!(closed["profit"], -1.5, "0.1 lot × the 1.5-pip spread, once: {closed}");
    // Every ack arrived twice; each order is listed once.
    let log = connector.log();
    assert_eq!(log.matches("injected fault (--duplicate-acks)").count(), 4, "{log}");
    assert_eq!(log.matches("sending a delayed TRADE_RESULT").count(), 4, "{log}");
    let open = open_positions(&gw, &token).await;
    let mut open_ids: Vec<&str> = open.iter().map(|p| p["id"].as_str().unwrap()).collect();
    open_ids.sort_unstable();
    let mut expected: Vec<&str> = ids[1..].iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(open_ids, expected, "{open:?}");
    let (_, history) = send(&gw, "GET", "/api/v1/trading/history", &token, None).await;
    assert_eq!(history.as_array().unwrap().iter().filter(|o| o["id"] == ids[0]).count(), 1, "{history}");
}

#[tokio::test]
async fn a_link_dropped_after_every_command_still_fills_each_order_once() {
    let (gw, token, conn, connector) =
        trader("dropping-link@example.com", "7000004", &["--disconnect-every", "1"], &[]).await;
    let mut tickets = Vec::new();
    let mut ids = Vec::new();
    for n in 0..3 {
        // Each command drops the link before its ack; the reconnect's resend is answered from memory.
        let id = place(&gw, &token, 0.1).await;
        let open =
            eventually(Duration::from_secs(15), || find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open"))
                .await
                .unwrap_or_else(|e| panic!("order {n}: {e}; connector log:\n{}", connector.log()));
        assert_eq!(open["open_price"], 1.10015, "{open}");
        tickets.push(open["ticket"].as_u64().unwrap());
        ids.push(id);
        connector.online(n + 2).await.unwrap();
    }
    assert_eq!(tickets, [100_000_001, 100_000_002, 100_000_003], "one fill per order");
    close(&gw, &token, &ids[1]).await;
    let closed =
        eventually(Duration::from_secs(15), || find_listed(&gw, &token, "/api/v1/trading/history", &ids[1], "closed"))
            .await
            .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", connector.log()));
    assert_eq!(closed["profit"], -1.5, "closed once: {closed}");
    connector.online(5).await.unwrap();
    let log = connector.log();
    assert_eq!(log.matches("injected fault (--disconnect-every)").count(), 4, "{log}");
    assert!(log.matches("repeated command").count() >= 4, "every resend answered from memory: {log}");
    assert_eq!(log.matches("TRADE_OPEN filled").count(), 3, "{log}");
    assert_eq!(log.matches("TRADE_CLOSE filled").count(), 1, "{log}");
    let open = open_positions(&gw, &token).await;
    assert_eq!(open.len(), 2, "{open:?}");
    let st = fresh_snapshot(&gw, &token, &conn).await;
    assert_eq!(st["positions_snapshot"]["count"], 2, "the paper account agrees: {st}");
}

#[tokio::test]
async fn a_restarted_connector_keeps_its_positions_and_answers_resends_from_its_state_file() {
    let env = [("NUSATRADE_RECONCILE_MIN_AGE_SECS", "300")];
    let mut all_env = TEST_ENV.to_vec();
    all_env.extend_from_slice(&env);
    let gw = Gateway::start_with_env(&[], &all_env).await.unwrap();
    let email = "restarted@example.com";
    let token = register(&gw, email).await.unwrap();
    let csv = flat_eurusd(gw.data_dir.path());
    // In a directory the connector creates.
    let state = gw.data_dir.path().join("connector-state").join("paper.json");
    let (csv, state_path) = (csv.to_str().unwrap(), state.to_str().unwrap());
    let flags = ["--prices", csv, "--symbol", "EURUSD", "--account-login", "7000005", "--state-file", state_path];
    let start = |name: &'static str, extra: &'static [&'static str]| {
        let args: Vec<&str> = flags.iter().chain(extra).copied().collect();
        let gw = &gw;
        async move { ConnectorProcess::start_named(gw, name, email, &args).await.unwrap() }
    };

    // The first process executes the order, saves it, and is killed before it acknowledges it.
    let mut first = start("first", &["--drop-acks", "100"]).await;
    let conn = active_connection(&gw, &token, "7000005").await.unwrap();
    let conn_id = conn["id"].as_str().unwrap().to_owned();
    first.online(1).await.unwrap();
    let id = place(&gw, &token, 0.1).await;
    eventually(Duration::from_secs(10), || async {
        first.log().contains("injected fault (--drop-acks)").then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", first.log()));
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["format"], "nusatrade-sim-connector-state");
    assert_eq!(saved["account"]["positions"].as_array().map(Vec::len), Some(1), "{saved}");
    assert!(saved["executed"][0]["request_id"].as_str().unwrap().contains(&id), "{saved}");
    first.kill().await;
    assert!(order(&gw, &token, &id).await["status"] == "pending");

    // The second process, on the same file: the server resends the command, answered from the file.
    let mut second = start("second", &[]).await;
    second.online(1).await.unwrap();
    let open = listed(&gw, &token, "positions", &id, "open")
        .await
        .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", second.log()));
    assert_eq!((&open["ticket"], &open["open_price"]), (&json!(100_000_001), &json!(1.10015)), "{open}");
    let log = second.log();
    assert!(log.contains("paper account restored from the state file"), "{log}");
    assert!(log.contains("repeated command"), "{log}");
    assert!(!log.contains("TRADE_OPEN filled"), "not executed twice: {log}");
    // The ticket counter carries on.
    let id2 = place(&gw, &token, 0.2).await;
    let open2 = listed(&gw, &token, "positions", &id2, "open").await.unwrap();
    assert_eq!(open2["ticket"], 100_000_002);
    let status = second.terminate().await;
    assert!(status.success(), "{status}");

    // A third process reports both positions as soon as it is online (the reconnect's GET_POSITIONS).
    let before = snapshot_time(&gw, &token, &conn_id).await;
    let third = start("third", &[]).await;
    third.online(1).await.unwrap();
    let st = snapshot_after(&gw, &token, &conn_id, &before)
        .await
        .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", third.log()));
    let mut tickets: Vec<u64> = st["positions_snapshot"]["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ticket"].as_u64().unwrap())
        .collect();
    tickets.sort_unstable();
    assert_eq!(tickets, [100_000_001, 100_000_002], "{st}");
    // And it can close one (its paper account holds it).
    close(&gw, &token, &id).await;
    let closed = listed(&gw, &token, "history", &id, "closed")
        .await
        .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", third.log()));
    assert_eq!(closed["profit"], -1.5, "{closed}");
}
