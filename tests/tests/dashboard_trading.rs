//! The dashboard's trading and connections pages in a real browser (issue 19): Debian's Chromium, headless, over
//! the browser harness (`nusatrade_tests::browser`) against the real gateway, with a scripted connector
//! ([`TestConnector`]) acknowledging the trade commands.
//!
//! - the trading page shows the connector online, the candle chart of the stored candles, and an order placed from
//!   the ticket opens LIVE (the positions table follows the socket; the page is never reloaded); a trailing stop
//!   set in the editor is stored (checked over REST), an SL change reaches the connector and the table, the close
//!   empties the table and the order shows in the history;
//! - a double-clicked (triple-clicked) order places one order: one in the REST history, one `TRADE_OPEN` at the
//!   connector;
//! - a 429 on the order shows the `Retry-After` countdown on the ticket's button and the error in the ticket;
//! - the connections page shows the health card of the online connection;
//! - screenshots of both pages in both themes, also at 390×844 (`target/screenshots/`).
//!
//! Skipped without chromedriver/Chromium unless `NUSATRADE_REQUIRE_BROWSER=1`.

use std::time::Duration;

use nusatrade_tests::browser::{self, Browser};
use nusatrade_tests::{
    Gateway, TEST_ENV, TestConnector, eventually, hourly_candles_csv, http, online_trader, upload_candles,
};
use serde_json::{Value, json};

const PASSWORD: &str = "Str0ng!pass";

async fn get(gw: &Gateway, token: &str, path: &str) -> Value {
    let r = http().get(gw.url(path)).bearer_auth(token).send().await.expect("GET");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("json")
}

/// Signs in as a user would, through the login page.
async fn enter(b: &Browser, gw: &Gateway, email: &str) {
    b.sign_in(gw, email, PASSWORD).await;
}

/// A gateway with the test environment, `extra` env overriding it.
async fn gateway(extra: &[(&str, &str)]) -> Gateway {
    let mut env: Vec<(&str, &str)> =
        TEST_ENV.iter().filter(|(k, _)| !extra.iter().any(|(x, _)| x == k)).copied().collect();
    env.extend_from_slice(extra);
    Gateway::start_with_env(&[], &env).await.expect("gateway")
}

async fn online(gw: &Gateway, email: &str) -> (String, String, TestConnector) {
    let (token, conn, connector) = online_trader(gw, email).await.expect("online trader");
    connector.set_price("EURUSD", 1.1);
    (token, conn, connector)
}

async fn fill_ticket(b: &Browser, sl: &str, tp: &str) {
    b.fill("#ticket input[name='lots']", "0.1").await;
    b.fill("#ticket input[name='price']", "1.1").await;
    b.fill("#ticket input[name='sl']", sl).await;
    b.fill("#ticket input[name='tp']", tp).await;
}

/// Scrolls to the top and dismisses the toasts, for the screenshots.
async fn tidy(b: &Browser) {
    b.eval("window.scrollTo(0, 0); document.querySelectorAll('.toast').forEach((t) => t.remove()); return true;").await;
}

/// Submits the open dialog's form.
async fn submit_dialog(b: &Browser) {
    b.click("dialog[open] button[type='submit']").await;
    b.wait_gone("dialog[open]").await;
}

#[tokio::test]
async fn trading_page_places_trails_modifies_and_closes_live() {
    if !browser::available() {
        return;
    }
    let gw = gateway(&[]).await;
    let email = "trader@example.com";
    let (token, conn, connector) = online(&gw, email).await;
    upload_candles(&gw, &token, "EURUSD", "H1", hourly_candles_csv(240)).await;
    // The candles route the chart reads: the newest bars, oldest first; 404 without a dataset.
    let c = get(&gw, &token, "/api/v1/ml/datasets/EURUSD/H1/candles?limit=5").await;
    let bars = c["candles"].as_array().expect("candles");
    assert_eq!(bars.len(), 5, "{c}");
    assert!(bars[0]["time"].as_str() < bars[4]["time"].as_str(), "{c}");
    assert_eq!(c["bars"], json!(240));
    assert_eq!(get_status(&gw, &token, "/api/v1/ml/datasets/GBPUSD/H1/candles").await, 404);
    assert_eq!(get_status(&gw, &token, "/api/v1/ml/datasets/EURUSD/H1/candles?limit=0").await, 422);

    let b = Browser::start().await.expect("browser");
    enter(&b, &gw, email).await;
    b.goto(&gw, "#/trading").await;

    // The connector is online, the chart draws the stored candles.
    b.wait_text("#trade-link", "Connector online").await;
    b.wait("#chart-panel svg.chart rect.candle").await;
    let bars = b.eval("return document.querySelectorAll('#chart-panel rect.candle').length;").await;
    let bars = bars.as_u64().unwrap_or_default();
    assert!((150..=240).contains(&bars), "one body per stored candle that fits: {bars}");
    b.eval("window.__sameDocument = 'yes'; return true;").await;
    // The crosshair from the keyboard: O/H/L/C of the bar under it.
    b.eval(
        "const s = document.querySelector('#chart-panel svg.chart'); s.focus(); \
         s.dispatchEvent(new KeyboardEvent('keydown', {key: 'End', bubbles: true})); return true;",
    )
    .await;
    b.wait_text("#chart-panel .chart-tip", "C 1.").await;

    // Place: the row appears and turns open from the socket (the ack's ORDER_UPDATE).
    fill_ticket(&b, "1.09", "1.12").await;
    b.wait_text("#risk-rr", "1 : 2").await;
    b.click("#ticket-submit").await;
    b.wait("#positions tr[data-status='open']").await;
    let positions = get(&gw, &token, "/api/v1/trading/positions").await;
    let list = positions.as_array().expect("positions");
    assert_eq!(list.len(), 1, "{positions}");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["connection_id"], json!(conn));
    let row = format!("#positions tr[data-id='{id}']");
    // Live prices and account from the connector's reports.
    let ticket = list[0]["ticket"].as_u64().expect("ticket");
    connector
        .send(json!({"type": "POSITION_UPDATE", "positions": [{"ticket": ticket, "symbol": "EURUSD", "type": "BUY",
        "volume": 0.1, "price": 1.1, "price_current": 1.105, "profit": 50.0, "sl": 1.09, "tp": 1.12}]}));
    connector.send(json!({"type": "ACCOUNT_UPDATE", "balance": 10000, "equity": 10050, "margin": 110,
        "free_margin": 9940, "profit": 50, "currency": "USD", "leverage": 100}));
    b.wait_text(&row, "+50.00").await;
    b.wait_text(&row, "1.10500").await;
    b.wait_text("#acct-equity", "10,050.00").await;
    b.wait_text("#acct-free", "9,940.00").await;
    // The chart shows the position's entry / SL / TP.
    b.wait("#chart-panel .level-entry").await;
    assert!(b.exists("#chart-panel .level-sl").await && b.exists("#chart-panel .level-tp").await);

    // Trailing stop + breakeven: stored on the position.
    b.click(&format!("{row} .act-trailing")).await;
    b.click("dialog[open] input[name='t_enabled']").await;
    b.fill("dialog[open] input[name='t_distance']", "12").await;
    b.click("dialog[open] input[name='b_enabled']").await;
    submit_dialog(&b).await;
    b.wait_text(&format!("{row} .trail-badge"), "trailing").await;
    let stored = get(&gw, &token, "/api/v1/trading/positions").await;
    let ts = &stored[0]["trailing_stop"];
    assert_eq!(ts["enabled"], json!(true), "{stored}");
    assert_eq!(ts["breakeven_enabled"], json!(true), "{stored}");
    assert_eq!(ts["trail_distance_pips"].as_f64(), Some(12.0), "{stored}");

    // Modify the SL: sent to the connector, acknowledged, shown.
    b.click(&format!("{row} .act-modify")).await;
    b.fill("dialog[open] input[name='m_sl']", "1.095").await;
    submit_dialog(&b).await;
    b.wait_text(&format!("{row} .col-sl"), "1.09500").await;
    eventually(Duration::from_secs(10), || async {
        let o = get(&gw, &token, &format!("/api/v1/trading/orders/{id}")).await;
        (o["status"] == "open" && o["stop_loss"].as_f64() == Some(1.095)).then_some(())
    })
    .await
    .expect("the SL change stored");
    assert_eq!(connector.commands("TRADE_MODIFY").await.len(), 1);
    b.wait(&format!("{row}[data-status='open']")).await;

    // Screenshots with the position open (its lines on the chart). The harness's set_theme waits for an explicit
    // override: start from one.
    b.set_theme("dark").await;
    tidy(&b).await;
    b.screenshots_both_themes("trading").await;

    // Close: gone from the positions, in the history as closed.
    b.click(&format!("{row} .act-close")).await;
    submit_dialog(&b).await;
    b.wait_gone(&row).await;
    b.wait_text(&format!("#history-panel tr[data-id='{id}']"), "closed").await;
    assert_eq!(connector.commands("TRADE_CLOSE").await.len(), 1);
    assert_eq!(b.eval("return window.__sameDocument;").await, json!("yes"), "the page was reloaded");

    // Screenshots: trading and connections, both themes, desktop and phone.
    b.goto(&gw, "#/connections").await;
    b.wait_text(&format!("#conn-{conn}"), "Connector online").await;
    b.wait(&format!("#conn-{conn} [data-k='reconciliation']")).await;
    let status = get(&gw, &token, &format!("/api/v1/brokers/connections/{conn}/status")).await;
    if let Some(cap) = status["capabilities"]["effective"].as_array().and_then(|a| a.first()).and_then(Value::as_str) {
        b.wait_text(&format!("#conn-{conn} .caps"), cap).await;
    }
    let cmd = b
        .eval_with(
            "return document.querySelector(arguments[0]).textContent;",
            vec![json!(format!("#conn-{conn} .cmd"))],
        )
        .await;
    assert!(cmd.as_str().unwrap_or_default().contains("nusatrade connector --server"), "{cmd}");
    tidy(&b).await;
    b.screenshots_both_themes("connections").await;

    // Create and delete a connection from the page.
    b.fill("#conn-form input[name='account_number']", "7654321").await;
    b.fill("#conn-form input[name='server']", "Other-Demo").await;
    b.click("#conn-create").await;
    b.wait_text("#conn-cards", "7654321").await;
    let conns = get(&gw, &token, "/api/v1/brokers/connections").await;
    let other = conns.as_array().unwrap().iter().find(|c| c["account_number"] == "7654321").expect("created")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.wait_text(&format!("#conn-{other}"), "Connector offline").await;
    b.click(&format!("#conn-{other} .act-delete")).await;
    b.click("#conn-delete-confirm").await;
    b.wait_gone(&format!("#conn-{other}")).await;
    assert_eq!(get(&gw, &token, "/api/v1/brokers/connections").await.as_array().map(Vec::len), Some(1));

    b.set_viewport(390, 844).await;
    tidy(&b).await;
    b.screenshots_both_themes("connections-phone").await;
    b.goto(&gw, "#/trading").await;
    b.wait("#chart-panel svg.chart rect.candle").await;
    tidy(&b).await;
    b.screenshots_both_themes("trading-phone").await;
    let overflow = b.eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth;").await;
    assert!(overflow.as_i64().unwrap_or(1) <= 0, "the trading page scrolls sideways at 390 px: {overflow}");
    // The connector goes away: the page says so, live.
    connector.kill();
    b.wait_text("#trade-link", "No connector online").await;
    b.goto(&gw, "#/connections").await;
    b.wait_text(&format!("#conn-{conn}"), "Connector offline").await;

    // This page's errors (other pages are not under test here).
    let errors: Vec<String> = b
        .console_errors()
        .await
        .into_iter()
        .filter(|e| ["trading", "connections", "candles", "Content Security Policy"].iter().any(|w| e.contains(w)))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.close().await;
}

#[tokio::test]
async fn double_clicked_order_places_one_order() {
    if !browser::available() {
        return;
    }
    let gw = gateway(&[]).await;
    let email = "double@example.com";
    let (token, _conn, connector) = online(&gw, email).await;
    let b = Browser::start().await.expect("browser");
    enter(&b, &gw, email).await;
    b.goto(&gw, "#/trading").await;
    b.wait_text("#trade-link", "Connector online").await;
    // No dataset: the chart says how to get one; this connector cannot send history (409), which the panel says.
    b.wait_text("#chart-panel .no-candles", "No stored EURUSD H1 candles").await;
    b.click("#import-candles").await;
    b.wait_text("#chart-panel .import-status", "onnector").await;
    fill_ticket(&b, "1.09", "1.12").await;
    // A real double click, then three clicks in one task (faster than any hand).
    let submit = b.wait("#ticket-submit").await;
    {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let (down, up) =
            (PointerAction::Down { button: MOUSE_BUTTON_LEFT }, PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        let mouse = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element: submit, duration: None, x: 0.0, y: 0.0 })
            .then(down.clone())
            .then(up.clone())
            .then(down)
            .then(up);
        b.client().perform_actions(mouse).await.expect("double click");
    }
    b.wait("#positions tr[data-status='open']").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let history = get(&gw, &token, "/api/v1/trading/history").await;
    assert_eq!(history.as_array().map(Vec::len), Some(1), "one order: {history}");
    assert_eq!(connector.commands("TRADE_OPEN").await.len(), 1, "one TRADE_OPEN at the connector");

    // Same intent clicked again rapidly from script: still one more order only.
    b.eval("const s = document.querySelector('#ticket-submit'); s.click(); s.click(); s.click(); return true;").await;
    eventually(Duration::from_secs(10), || async {
        let h = get(&gw, &token, "/api/v1/trading/history").await;
        (h.as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await
    .expect("the second intent placed");
    eventually(Duration::from_secs(10), || async { (connector.commands("TRADE_OPEN").await.len() >= 2).then_some(()) })
        .await
        .expect("the second TRADE_OPEN reaches the connector");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(get(&gw, &token, "/api/v1/trading/history").await.as_array().map(Vec::len), Some(2));
    assert_eq!(connector.commands("TRADE_OPEN").await.len(), 2);
    // Every order carried its own Idempotency-Key (the client order ids differ).
    let opens = connector.commands("TRADE_OPEN").await;
    assert_ne!(opens[0]["client_order_id"], opens[1]["client_order_id"]);
    b.close().await;
}

#[tokio::test]
async fn rate_limited_order_shows_the_retry_after_countdown() {
    if !browser::available() {
        return;
    }
    let gw = gateway(&[("NUSATRADE_RATE_LIMIT_REQUESTS", "60"), ("NUSATRADE_RATE_LIMIT_WINDOW_SECONDS", "60")]).await;
    let email = "limited@example.com";
    let (token, _conn, _connector) = online(&gw, email).await;
    let b = Browser::start().await.expect("browser");
    enter(&b, &gw, email).await;
    b.goto(&gw, "#/trading").await;
    b.wait_text("#trade-link", "Connector online").await;
    b.wait("#positions-panel[data-state='ready']").await;
    fill_ticket(&b, "1.09", "1.12").await;
    b.wait_text("#risk-rr", "1 : 2").await;
    // Use up the user's window from outside the page. Windows are fixed (aligned to the clock), so a
    // window spent in its last seconds may end before the click: then the order rightly goes through.
    // Spend one with at least 20 s left, waiting for the next when this one is about to end.
    let mut left = 0;
    for _ in 0..3 {
        left = spend_request_window(&gw, &token).await;
        if left >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
    assert!(left >= 20, "no request window with 20 s left to test in (last: {left} s)");
    b.click("#ticket-submit").await;
    b.wait_text("#ticket-submit", "Retry in").await;
    assert_eq!(b.eval("return document.querySelector('#ticket-submit').disabled;").await, json!(true));
    b.wait("#ticket-error p").await;
    let history = get_status(&gw, &token, "/api/v1/trading/history").await;
    assert!(history == 429 || history == 200);
    b.screenshot("trading-429").await;
    b.close().await;
}

/// Sends requests as the user until one answers 429; returns its `Retry-After` (seconds the window has left).
async fn spend_request_window(gw: &Gateway, token: &str) -> u64 {
    for _ in 0..200 {
        let r = http().get(gw.url("/api/v1/auth/me")).bearer_auth(token).send().await.expect("GET");
        if r.status() == 429 {
            let after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
            return after.expect("a 429 carries Retry-After in seconds");
        }
    }
    panic!("the request limit never answered 429");
}

async fn get_status(gw: &Gateway, token: &str, path: &str) -> u16 {
    http().get(gw.url(path)).bearer_auth(token).send().await.expect("GET").status().as_u16()
}

#[tokio::test]
async fn demo_user_imports_candles_from_the_simulated_connector_and_trades() {
    if !browser::available() {
        return;
    }
    let gw = Gateway::start_with_env(&["--with-sim-connector"], TEST_ENV).await.expect("gateway");
    let password = eventually(Duration::from_secs(20), || async {
        std::fs::read_to_string(gw.data_dir.path().join("data").join("demo.password")).ok().map(|s| s.trim().to_owned())
    })
    .await
    .expect("demo password");
    // The demo user and its connector are set up in the background: wait for the connection to be held.
    let token = eventually(Duration::from_secs(20), || async {
        let r = http()
            .post(gw.url("/api/v1/auth/login"))
            .json(&json!({"email": "demo@nusatrade.local", "password": password}))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        v["access_token"].as_str().map(str::to_owned)
    })
    .await
    .expect("demo login");
    eventually(Duration::from_secs(20), || async {
        let list = get(&gw, &token, "/api/v1/brokers/connections").await;
        list.as_array()?.iter().any(|c| c["is_active"] == true).then_some(())
    })
    .await
    .expect("the demo connector online");
    let b = Browser::start().await.expect("browser");
    b.sign_in(&gw, "demo@nusatrade.local", &password).await;
    b.goto(&gw, "#/trading").await;
    b.wait_text("#trade-link", "Connector online").await;
    b.click("#import-candles").await;
    b.wait("#chart-panel svg.chart rect.candle").await;
    // The simulated connector's quotes fill the reference price; a market order opens and its P/L moves live.
    b.wait_js("a reference price", "return +document.querySelector('#ticket input[name=price]').value > 0;", vec![])
        .await;
    b.click("#ticket-submit").await;
    b.wait("#positions tr[data-status='open']").await;
    b.wait_text("#acct-free", "$").await;
    b.set_theme("dark").await;
    tidy(&b).await;
    b.screenshots_both_themes("trading-sim").await;
    b.close().await;
}

#[tokio::test]
async fn a_retried_order_reuses_its_idempotency_key_and_a_new_one_gets_a_new_key() {
    if !browser::available() {
        return;
    }
    let gw = gateway(&[]).await;
    let email = "retry@example.com";
    let (token, conn) = nusatrade_tests::trader(&gw, email).await.expect("trader");
    let b = Browser::start().await.expect("browser");
    enter(&b, &gw, email).await;
    b.goto(&gw, "#/trading").await;
    b.wait_text("#trade-link", "No connector online").await;
    // Record the Idempotency-Key of every order the page sends.
    b.eval(
        "window.__keys = []; const f = window.fetch; window.fetch = (url, init) => { \
           if (String(url).endsWith('/api/v1/trading/orders') && init && init.method === 'POST') \
             window.__keys.push(init.headers['Idempotency-Key']); \
           return f(url, init); }; return true;",
    )
    .await;
    fill_ticket(&b, "1.09", "1.12").await;
    // No connector: 503 in the ticket, nothing placed.
    b.click("#ticket-submit").await;
    b.wait_text("#ticket-error", "onnector").await;
    // The connector comes; the same intent retried goes out with the same key and is placed once.
    let connector = TestConnector::connect(&gw, &token, &conn).await.expect("connector");
    connector.set_price("EURUSD", 1.1);
    b.wait_text("#trade-link", "Connector online").await;
    b.click("#ticket-submit").await;
    b.wait("#positions tr[data-status='open']").await;
    // A new click after the success is a new intent: a new key, a second order.
    b.click("#ticket-submit").await;
    b.wait_js(
        "two open positions",
        "return document.querySelectorAll('#positions tr[data-status=open]').length === 2;",
        vec![],
    )
    .await;
    let keys = b.eval("return window.__keys;").await;
    let keys: Vec<&str> = keys.as_array().expect("keys").iter().filter_map(Value::as_str).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(keys[0], keys[1], "the retry of the refused intent reuses its key");
    assert_ne!(keys[1], keys[2], "a new intent gets a new key");
    assert_eq!(connector.commands("TRADE_OPEN").await.len(), 2);
    assert_eq!(get(&gw, &token, "/api/v1/trading/history").await.as_array().map(Vec::len), Some(2));
    b.close().await;
}
