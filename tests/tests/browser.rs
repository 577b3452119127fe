//! CORS in a real browser (issue #14): Debian's Chromium, headless, loads a page from another origin that calls
//! the gateway with a bearer token (a preflighted request) and reads `X-Next-Cursor`: allowed for an origin on
//! `NUSATRADE_CORS_ORIGINS`, blocked by the browser for any other. The page is served by this test on two
//! loopback ports (two origins); Chromium's DOM dump says what the page could read.
//!
//! Needs Chromium (`NUSATRADE_CHROMIUM`, else `/usr/bin/chromium`). `tests/run.sh` installs it and sets
//! `NUSATRADE_REQUIRE_BROWSER=1`, under which a missing browser fails the test instead of skipping it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use nusatrade_tests::{Gateway, TEST_ENV, online_trader, place};
use serde_json::json;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var("NUSATRADE_CHROMIUM").map(PathBuf::from).unwrap_or_else(|_| "/usr/bin/chromium".into());
    if path.exists() {
        return Some(path);
    }
    let required = std::env::var("NUSATRADE_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    assert!(!required, "{} not found and NUSATRADE_REQUIRE_BROWSER=1", path.display());
    eprintln!("SKIPPED: no Chromium at {} (tests/run.sh installs it)", path.display());
    None
}

/// Serves `html` at `/` on a free loopback port; returns the origin.
async fn serve_page(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/", get(move || async move { Html(html) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    origin
}

/// The page: a bearer call (preflighted) that lists one trade of the history, then shows the status and the
/// cursor header.
fn page(api: &str, token: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>cors</title></head><body><pre id="out">pending</pre><script>
(async () => {{
  const out = document.getElementById("out");
  try {{
    const r = await fetch("{api}/api/v1/trading/history?limit=1", {{
      headers: {{ "Authorization": "Bearer {token}", "Content-Type": "application/json" }}
    }});
    const body = await r.json();
    out.textContent = "status=" + r.status + " cursor=" + (r.headers.get("X-Next-Cursor") || "none")
      + " items=" + body.length;
  }} catch (e) {{
    out.textContent = "blocked: " + e.name;
  }}
}})();
</script></body></html>"#
    )
}

/// What the page showed after loading in headless Chromium.
async fn run_page(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.expect("chromium within 60 s").unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = dom.find("<pre id=\"out\">").map(|i| i + 14).unwrap_or_else(|| panic!("no output element: {dom}"));
    dom[start..start + dom[start..].find("</pre>").unwrap()].to_owned()
}

#[tokio::test]
async fn a_listed_origin_may_call_the_api_and_read_the_cursor_and_another_is_blocked() {
    let Some(browser) = chromium() else { return };
    // Two page origins; only the first is listed.
    let listed_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listed_port = listed_listener.local_addr().unwrap().port();
    drop(listed_listener);
    let listed = format!("http://127.0.0.1:{listed_port}");
    let env = [TEST_ENV, &[("NUSATRADE_CORS_ORIGINS", listed.as_str())]].concat();
    let gw = Gateway::start_with_env(&[], &env).await.unwrap();
    let (token, _, connector) = online_trader(&gw, "browser@example.com").await.unwrap();
    // Two orders, so the history has a second page.
    connector.set_price("EURUSD", 1.1);
    for _ in 0..2 {
        place(&gw, &token, json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "price": 1.1})).await;
    }

    // The listed origin: its page reads the answer and the cursor header.
    let html = page(&gw.base, &token);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", listed_port)).await.unwrap();
    let app = Router::new().route(
        "/",
        get({
            let html = html.clone();
            move || async move { Html(html) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let shown = run_page(&browser, &format!("{listed}/")).await;
    assert!(shown.starts_with("status=200 cursor="), "{shown}");
    assert!(!shown.contains("cursor=none"), "X-Next-Cursor is readable cross-origin: {shown}");
    assert!(shown.ends_with("items=1"), "{shown}");

    // Any other origin: the browser refuses the preflight's answer, the page never sees the data.
    let other = serve_page(html).await;
    let shown = run_page(&browser, &format!("{other}/")).await;
    assert_eq!(shown, "blocked: TypeError", "an unlisted origin must be blocked");
}
