//! `nusatrade connector --mt5 terminal` end to end: the real gateway binary, the real connector binary driving
//! its shipped Python bridge, and the bridge importing the `MetaTrader5` stand-in of `tests/mt5` (the official
//! package's names, tuples, constants and retcodes over a file-backed account the test steers: prices, a cut
//! link, an unreachable terminal).
//!
//! * Orders placed over HTTP open at the terminal's fill (the deal's price and ticket), take their stops in the
//!   terminal, close with the terminal's profit; a stop loss hit in the terminal closes the order at the stop.
//! * The link to the terminal cut between the fill and its answer: the connector reports `MT5_STATUS
//!   connected:false`, restarts the bridge and acks the order once, from the terminal's position with its `NT-`
//!   comment; the connector killed in the same gap and restarted WITHOUT its state file still fills it once.
//! * The MT5 password goes to the bridge through the environment and appears in no log.
//! * A broker whose symbols carry a suffix (`EURUSD.m`) and whose server runs on UTC+2: orders open on the
//!   broker's symbol and show under the platform's (`EURUSD`) at their UTC time; an ambiguous symbol (two broker
//!   names) and one the broker does not offer are refused with a clear error; a history import's bars land at
//!   their UTC open times.
//!
//! The interpreter is `NUSATRADE_PYTHON` (tests/run.sh's venv) or `python3`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use nusatrade_tests::{Gateway, TEST_ENV, binary, eventually, find_listed, place, register, send};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const PASSWORD: &str = "Str0ng!pass";
const MT5_PASSWORD: &str = "Mt5-s3cret-pw";
const WAIT: Duration = Duration::from_secs(20);

fn env() -> Vec<(&'static str, &'static str)> {
    let mut env = TEST_ENV.to_vec();
    env.extend([("NUSATRADE_ACK_TIMEOUT_SECS", "2"), ("NUSATRADE_RECONCILE_MIN_AGE_SECS", "1")]);
    env
}

fn python() -> String {
    std::env::var("NUSATRADE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The stand-in terminal's folder and its controls.
struct StandIn {
    dir: tempfile::TempDir,
}

impl StandIn {
    fn new() -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ctl")).unwrap();
        let s = StandIn { dir };
        s.prices(1.1, 1.10015);
        s
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes prices.json atomically (the stand-in reads it on every call).
    fn prices(&self, bid: f64, ask: f64) {
        let tmp = self.path().join("prices.json.tmp");
        std::fs::write(&tmp, json!({"EURUSD": [bid, ask]}).to_string()).unwrap();
        std::fs::rename(tmp, self.path().join("prices.json")).unwrap();
    }

    fn control(&self, name: &str, on: bool) {
        let p = self.path().join("ctl").join(name);
        if on {
            std::fs::write(p, "").unwrap()
        } else {
            let _ = std::fs::remove_file(p);
        }
    }

    fn account(&self) -> Value {
        std::fs::read(self.path().join("account.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    fn positions(&self) -> Vec<Value> {
        self.account()["positions"].as_array().cloned().unwrap_or_default()
    }

    /// Opening deals (each one a fill).
    fn fills(&self) -> usize {
        self.account()["deals"].as_array().map_or(0, |d| d.iter().filter(|d| d["entry"] == 0).count())
    }
}

/// `nusatrade connector --mt5 terminal` as a child process, logging to a file. Killed on drop.
struct ConnectorProcess {
    child: Child,
    log: PathBuf,
}

impl ConnectorProcess {
    async fn start(gw: &Gateway, name: &str, email: &str, standin: &StandIn, extra: &[&str]) -> ConnectorProcess {
        ConnectorProcess::start_with(gw, name, email, standin, extra, &[]).await
    }

    /// With more environment for the stand-in (a broker's suffix, its server's time zone).
    async fn start_with(
        gw: &Gateway,
        name: &str,
        email: &str,
        standin: &StandIn,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ConnectorProcess {
        let log = gw.data_dir.path().join(format!("{name}.log"));
        let standin_pkg = Path::new(env!("CARGO_MANIFEST_DIR")).join("mt5");
        let child = Command::new(binary().unwrap())
            .args(["connector", "--mt5", "terminal", "--server", &gw.base, "--email", email, "--password", PASSWORD])
            .args(["--python", &python(), "--mt5-login", "5001234", "--mt5-trade-server", "StandIn-Demo"])
            .args(["--heartbeat-secs", "1", "--account-update-secs", "1", "--mt5-poll-ms", "200"])
            .args(["--mt5-timeout-secs", "5", "--reconnect-max-secs", "1"])
            .arg("--bridge-dir")
            .arg(gw.data_dir.path().join(format!("{name}-bridge")))
            .args(extra)
            .env("NUSATRADE_MT5_PASSWORD", MT5_PASSWORD)
            .env("PYTHONPATH", standin_pkg)
            .env("MT5_STANDIN_DIR", standin.path())
            .env("MT5_STANDIN_PASSWORD", MT5_PASSWORD)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        ConnectorProcess { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn logged(&self, what: &str) {
        eventually(WAIT, || async { self.log().contains(what).then_some(()) })
            .await
            .unwrap_or_else(|e| panic!("{e}: {what:?} not logged; connector log:\n{}", self.log()));
    }

    async fn online(&self, n: usize) {
        eventually(WAIT, || async { (self.log().matches("connector online").count() >= n).then_some(()) })
            .await
            .unwrap_or_else(|e| panic!("{e}; connector log:\n{}", self.log()));
    }

    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

async fn order(gw: &Gateway, token: &str, id: &str) -> Value {
    let (s, o) = send(gw, "GET", &format!("/api/v1/trading/orders/{id}"), token, None).await;
    assert_eq!(s, 200, "{o}");
    o
}

async fn status_of(gw: &Gateway, token: &str, id: &str, status: &str, log: impl Fn() -> String) -> Value {
    match eventually(WAIT, || async { Some(order(gw, token, id).await).filter(|o| o["status"] == status) }).await {
        Ok(o) => o,
        Err(e) => {
            let last = order(gw, token, id).await;
            panic!("{e}; order {last}\nconnector log:\n{}\ngateway log:\n{}", log(), gw.log())
        }
    }
}

async fn connection(gw: &Gateway, token: &str) -> Value {
    eventually(WAIT, || async {
        let (_, list) = send(gw, "GET", "/api/v1/brokers/connections", token, None).await;
        list.as_array()?.iter().find(|c| c["account_number"] == "5001234" && c["is_active"] == true).cloned()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn orders_open_modify_and_close_in_the_terminal_and_its_stop_loss_closes_them() {
    let gw = Gateway::start_with_env(&[], &env()).await.unwrap();
    let email = "terminal-trader@example.com";
    let token = register(&gw, email).await.unwrap();
    let standin = StandIn::new();
    let connector = ConnectorProcess::start(&gw, "connector", email, &standin, &[]).await;

    // The broker connection is the terminal's account: its login, server and company.
    let conn = connection(&gw, &token).await;
    assert_eq!(
        (&conn["server"], &conn["broker_name"]),
        (&json!("StandIn-Demo"), &json!("Stand-in Markets Ltd")),
        "{conn}"
    );
    connector.online(1).await;

    // BUY 0.1, requested at 1.1: filled at the terminal's ask, with the terminal's position ticket.
    let (placed, id) =
        place(&gw, &token, json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1})).await;
    let open = status_of(&gw, &token, &id, "open", || connector.log()).await;
    let p = &standin.positions()[0];
    assert_eq!((&open["open_price"], &open["ticket"]), (&json!(1.10015), &p["ticket"]), "{open}");
    assert_eq!(p["comment"], placed["trade"]["client_order_id"], "the NT- comment in the terminal");

    // Stops go to the terminal's position (TRADE_ACTION_SLTP).
    let (s, b) = send(
        &gw,
        "PUT",
        &format!("/api/v1/trading/orders/{id}/modify"),
        &token,
        Some(json!({"stop_loss": 1.09, "take_profit": 1.12})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    eventually(WAIT, || async {
        find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open").await.filter(|p| p["stop_loss"] == 1.09)
    })
    .await
    .unwrap();
    assert_eq!((&standin.positions()[0]["sl"], &standin.positions()[0]["tp"]), (&json!(1.09), &json!(1.12)));

    // Close at the bid: the terminal's closing deal's price and profit (0.1 lot × −1.5 pips).
    standin.prices(1.1002, 1.10035);
    let (s, b) = send(&gw, "PUT", &format!("/api/v1/trading/orders/{id}/close"), &token, Some(json!({}))).await;
    assert_eq!(s, 200, "{b}");
    let closed = status_of(&gw, &token, &id, "closed", || connector.log()).await;
    assert_eq!((&closed["close_price"], &closed["profit"]), (&json!(1.1002), &json!(0.5)), "{closed}");
    assert!(standin.positions().is_empty());

    // A refusal of the trade server (10006 rejected) rejects the order with the terminal's comment.
    std::fs::write(standin.path().join("ctl").join("reject"), "10006").unwrap();
    let (_, refused) =
        place(&gw, &token, json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1})).await;
    let rejected = status_of(&gw, &token, &refused, "rejected", || connector.log()).await;
    assert!(rejected["error"].to_string().contains("Rejected by the stand-in"), "{rejected}");
    assert_eq!(standin.fills(), 1, "nothing filled");

    // SELL with a stop loss; the market rises through it in the terminal: the terminal closes it at its stop
    // (DEAL_REASON_SL) and our books follow from the connector's reports and MT5's deal history.
    let (_, sell) = place(
        &gw,
        &token,
        json!({"symbol": "EURUSD", "order_type": "SELL", "lot_size": 0.2, "price": 1.1,
        "stop_loss": 1.1040}),
    )
    .await;
    let open = status_of(&gw, &token, &sell, "open", || connector.log()).await;
    assert_eq!(open["open_price"], 1.1002, "{open}");
    standin.prices(1.1050, 1.10515);
    let hit = eventually(Duration::from_secs(30), || async {
        Some(order(&gw, &token, &sell).await).filter(|o| o["status"] != "open")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nconnector log:\n{}\ngateway log:\n{}", connector.log(), gw.log()));
    assert_eq!(hit["close_price"], 1.104, "closed at its stop, from MT5's deal: {hit}");
    let deals = standin.account()["deals"].as_array().cloned().unwrap();
    assert_eq!(deals.last().map(|d| d["reason"].clone()), Some(json!(4)), "DEAL_REASON_SL in the terminal");

    let (_, st) =
        send(&gw, "GET", &format!("/api/v1/brokers/connections/{}/status", conn["id"].as_str().unwrap()), &token, None)
            .await;
    assert_eq!(st["mt5_connected"], true, "{st}");
    let log = connector.log();
    assert!(!log.contains(MT5_PASSWORD), "the MT5 password is never logged");
    assert!(log.contains("MT5 bridge started"), "{log}");
}

#[tokio::test]
async fn a_link_cut_between_fill_and_ack_never_fills_twice_even_after_a_restart_without_state() {
    let gw = Gateway::start_with_env(&[], &env()).await.unwrap();
    let email = "terminal-cut@example.com";
    let token = register(&gw, email).await.unwrap();
    let standin = StandIn::new();
    let state = gw.data_dir.path().join("terminal-state.json");
    let state_arg = state.to_str().unwrap();
    // The bridge restarts 1.5 s after it died: time to see the terminal reported disconnected.
    let slow = ["--reconnect-base-ms", "1500", "--state-file", state_arg];
    let mut connector = ConnectorProcess::start(&gw, "connector", email, &standin, &slow).await;
    connection(&gw, &token).await;
    connector.online(1).await;

    // The bridge process dies right after the terminal filled the order, before answering.
    standin.control("crash_after_fill", true);
    let (_, id) =
        place(&gw, &token, json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1})).await;
    let conn = connection(&gw, &token).await;
    let conn_id = conn["id"].as_str().unwrap().to_owned();
    eventually(WAIT, || async {
        let (_, st) = send(&gw, "GET", &format!("/api/v1/brokers/connections/{conn_id}/status"), &token, None).await;
        (st["mt5_connected"] == false).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: MT5_STATUS connected:false expected\n{}", connector.log()));
    let open = status_of(&gw, &token, &id, "open", || connector.log()).await;
    assert_eq!((standin.fills(), standin.positions().len()), (1, 1), "filled once");
    assert_eq!(open["ticket"], standin.positions()[0]["ticket"]);
    let log = connector.log();
    assert!(log.contains("outcome unknown"), "{log}");
    assert!(log.contains("already filled"), "answered from the terminal's position: {log}");

    // The same gap, and the connector killed in it; restarted without its state file.
    standin.control("crash_after_fill", true);
    let (_, second) =
        place(&gw, &token, json!({"symbol": "EURUSD", "order_type": "SELL", "lot_size": 0.1, "price": 1.1})).await;
    eventually(WAIT, || async { (standin.fills() == 2).then_some(()) }).await.unwrap();
    connector.kill().await;
    std::fs::remove_file(&state).unwrap();
    let restarted = ConnectorProcess::start(&gw, "restarted", email, &standin, &["--state-file", state_arg]).await;
    restarted.online(1).await;
    let open = status_of(&gw, &token, &second, "open", || restarted.log()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        (standin.fills(), standin.positions().len()),
        (2, 2),
        "the second order filled once:\n{}",
        restarted.log()
    );
    assert_eq!(open["ticket"], standin.positions()[1]["ticket"]);
    let (_, positions) = send(&gw, "GET", "/api/v1/trading/positions", &token, None).await;
    assert_eq!(positions.as_array().map(Vec::len), Some(2), "{positions}");
    let (_, st) = send(&gw, "GET", &format!("/api/v1/brokers/connections/{conn_id}/status"), &token, None).await;
    assert_eq!(st["mt5_connected"], true, "the terminal reported back: {st}");
}

/// The stand-in as a broker naming its symbols `EURUSD.m` (and GBPUSD three ways), its server on UTC+2.
const BROKER_ENV: [(&str, &str); 3] = [
    ("NT_FAKE_MT5_SUFFIX", ".m"),
    ("NT_FAKE_MT5_ALIASES", "GBPUSD.a=GBPUSD,GBPUSD.b=GBPUSD"),
    ("NT_FAKE_MT5_UTC_OFFSET", "+02:00"),
];

fn utc(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("a time: {v}"));
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{e}: {s}")).with_timezone(&Utc)
}

#[tokio::test]
async fn a_brokers_suffixed_symbols_and_server_clock_read_as_the_platforms_symbols_in_utc() {
    let gw = Gateway::start_with_env(&[], &env()).await.unwrap();
    let email = "terminal-broker@example.com";
    let token = register(&gw, email).await.unwrap();
    let standin = StandIn::new();
    let state = gw.data_dir.path().join("terminal-state.json");
    let flags = ["--state-file", state.to_str().unwrap()];
    let connector = ConnectorProcess::start_with(&gw, "connector", email, &standin, &flags, &BROKER_ENV).await;
    connection(&gw, &token).await;
    connector.online(1).await;
    connector.logged("EURUSD=EURUSD.m").await;
    // On a weekend the offset is taken once the tick is seen moving (a few seconds).
    connector.logged("MT5 server time: UTC+02:00").await;
    // …and kept in the state file, for a restart while the market is closed.
    eventually(WAIT, || async {
        let saved: Value = serde_json::from_slice(&std::fs::read(&state).ok()?).ok()?;
        (saved["server_utc_offset_secs"] == 7200).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: the state file keeps the offset\n{}", connector.log()));

    // EURUSD is the broker's EURUSD.m: it opens there and shows as EURUSD here, at its UTC time.
    let before = Utc::now();
    let (_, id) =
        place(&gw, &token, json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1})).await;
    let open = status_of(&gw, &token, &id, "open", || connector.log()).await;
    let p = &standin.positions()[0];
    assert_eq!((&p["symbol"], &open["ticket"]), (&json!("EURUSD.m"), &p["ticket"]), "{open}");
    assert_eq!(open["symbol"], "EURUSD", "{open}");
    let opened = utc(&open["open_time"]);
    assert!(
        opened >= before - TimeDelta::seconds(5) && opened <= Utc::now() + TimeDelta::seconds(5),
        "the open time in UTC ({opened}, placed at {before}), not the server's (+2 h): {open}"
    );
    let listed =
        eventually(WAIT, || async { find_listed(&gw, &token, "/api/v1/trading/positions", &id, "open").await })
            .await
            .unwrap();
    assert_eq!(listed["symbol"], "EURUSD", "{listed}");
    // It closes on the broker's symbol too.
    let (s, b) = send(&gw, "PUT", &format!("/api/v1/trading/orders/{id}/close"), &token, Some(json!({}))).await;
    assert_eq!(s, 200, "{b}");
    let closed = status_of(&gw, &token, &id, "closed", || connector.log()).await;
    assert_eq!(closed["close_price"], 1.1, "{closed}");
    let close_time = utc(&closed["close_time"]);
    assert!((Utc::now() - close_time).num_seconds().abs() < 30, "closed at {close_time} UTC: {closed}");

    // GBPUSD is GBPUSD.m, GBPUSD.a and GBPUSD.b at this broker: refused, not guessed; USDCHF is not offered.
    let (_, ambiguous) =
        place(&gw, &token, json!({"symbol": "GBPUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.27})).await;
    let refused = status_of(&gw, &token, &ambiguous, "rejected", || connector.log()).await;
    let error = refused["error"].to_string();
    assert!(error.contains("ambiguous") && error.contains("GBPUSD.a, GBPUSD.b, GBPUSD.m"), "{refused}");
    let (_, missing) =
        place(&gw, &token, json!({"symbol": "USDCHF", "order_type": "SELL", "lot_size": 0.1, "price": 0.9})).await;
    let refused = status_of(&gw, &token, &missing, "rejected", || connector.log()).await;
    assert!(refused["error"].to_string().contains("not offered by this MT5 terminal"), "{refused}");
    assert_eq!(standin.fills(), 1, "nothing sent for them");
}

#[tokio::test]
async fn a_history_import_from_a_utc_plus_2_server_lands_at_utc_bar_times() {
    let gw = Gateway::start_with_env(&[], &env()).await.unwrap();
    let email = "terminal-history@example.com";
    let token = register(&gw, email).await.unwrap();
    let standin = StandIn::new();
    let connector = ConnectorProcess::start_with(&gw, "connector", email, &standin, &[], &BROKER_ENV).await;
    connection(&gw, &token).await;
    connector.online(1).await;
    connector.logged("MT5 server time: UTC+02:00").await;

    let end = Utc::now().duration_trunc(TimeDelta::days(1)).unwrap() - TimeDelta::days(1);
    let start = end - TimeDelta::days(6);
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = json!({"symbol": "EURUSD", "timeframe": "H1", "start": iso(start), "end": iso(end)});
    let (s, job) = send(&gw, "POST", "/api/v1/ml/datasets/from-connector", &token, Some(body)).await;
    assert_eq!(s, 202, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    eventually(WAIT, || async {
        let (_, v) = send(&gw, "GET", &format!("/api/v1/ml/datasets/imports/{job_id}"), &token, None).await;
        assert_ne!(v["status"], "failed", "{v}\n{}", connector.log());
        (v["status"] == "completed").then_some(v)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", connector.log()));
    let (s, d) = send(&gw, "GET", "/api/v1/ml/datasets/EURUSD/H1/candles?limit=2000", &token, None).await;
    assert_eq!(s, 200, "{d}");
    let candles = d["candles"].as_array().cloned().unwrap_or_default();
    assert!(candles.len() >= 72, "four weekdays of H1 bars at least: {d}");
    // The stand-in's bar opening at server time t opens at 1.1 + ((t / 3600) % 50) points: the bar stored at
    // UTC time u must be the server's bar of u + 2 h.
    for c in &candles {
        let u = utc(&c["time"]);
        assert!(u >= start && u < end, "inside the asked window: {c}");
        let server = u.timestamp() + 7200;
        let expected = ((1.1 + ((server / 3600) % 50) as f64 * 1e-5) * 1e5).round() / 1e5;
        let open = c["open"].as_f64().unwrap();
        assert!(
            (open - expected).abs() < 1e-9,
            "bar {u}: open {open}, the server's bar of {u} + 2 h opens at {expected}"
        );
    }
    // No bar in the server's weekend: Friday 22:00 UTC is Saturday 00:00 on the server.
    assert!(
        candles.iter().all(|c| {
            let server = utc(&c["time"]) + TimeDelta::hours(2);
            !matches!(chrono::Datelike::weekday(&server), chrono::Weekday::Sat | chrono::Weekday::Sun)
        }),
        "{d}"
    );
}
