//! The dashboard (issue 19) against the real gateway: `/` and every file of `shared/web/app` served with the
//! right types and headers, and the foundation pages (sign-up with the mailed link, sign-in, overview, security,
//! settings) driven in headless Chromium through the browser harness (`nusatrade_tests::browser`).
//!
//! The browser tests need Debian's chromium and chromium-driver (`tests/run.sh` installs them and sets
//! `NUSATRADE_REQUIRE_BROWSER=1`, under which a missing browser fails instead of skipping). Screenshots of each
//! page in both themes land in `target/screenshots/` (not committed).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nusatrade_tests::browser::Browser;
use nusatrade_tests::{
    Gateway, TEST_ENV, TestConnector, broker_connection, http, mailed_token, round_trip, send, totp_code,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const PASSWORD: &str = "Str0ng!pass";

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/web/app")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

#[tokio::test]
async fn the_gateway_serves_the_dashboard_and_every_asset() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let c = http();

    // `/` is index.html, not the API's JSON 404; revalidation with its ETag is a 304.
    let r = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["content-security-policy"], CSP);
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-cache");
    let body = r.text().await.unwrap();
    assert!(body.contains(r#"<script type="module" src="/app/app.js">"#), "{body}");
    assert!(!body.contains("<script>"), "no inline script under the CSP");
    let etag = h["etag"].to_str().unwrap();
    let r = c.get(gw.url("/")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = c.head(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");

    // Every file of shared/web/app at /app/<path>, byte for byte, with its type.
    let mut files = vec![];
    files_under(&app_dir(), &mut files);
    assert!(files.len() >= 8, "{files:?}");
    let mut total = 0;
    for f in &files {
        let rel = f.strip_prefix(app_dir()).unwrap().to_str().unwrap().replace('\\', "/");
        let want = match f.extension().and_then(|e| e.to_str()) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("html") => "text/html; charset=utf-8",
            Some("svg") => "image/svg+xml; charset=utf-8",
            Some("png") => "image/png",
            Some("json") => "application/json",
            other => panic!("unexpected asset type {other:?}: {rel}"),
        };
        let url = gw.url(&format!("/app/{rel}"));
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], want, "{url}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{url}");
        assert_eq!(h["content-security-policy"], CSP, "{url}");
        assert!(h.contains_key("etag"), "{url}");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(bytes.as_ref(), std::fs::read(f).unwrap().as_slice(), "{url}");
        total += bytes.len();
        let r = c.head(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "HEAD {url}");
        assert_eq!(r.headers()["content-type"], want, "HEAD {url}");
    }
    eprintln!("{} dashboard files, {total} bytes", files.len());

    // Unknown app paths: the API's JSON 404 (also for traversal attempts).
    for path in ["/app/nope.js", "/app/pages/nope.js", "/app/..%2f..%2fCargo.toml", "/app/"] {
        let r = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json", "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["detail"], "Not Found", "{path}");
    }
    // The API and the mailed-link pages are untouched.
    let r = c.get(gw.url("/api/v1/nope")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (404, "application/json"));
    let r = c.get(gw.url("/verify-email?token=x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let r = c.get(gw.url("/links/links.js")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(gw.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Registers `email` over the API (verified or not, as the gateway is configured); returns the answer.
async fn register_api(gw: &Gateway, email: &str) -> Value {
    let r = http()
        .post(gw.url("/api/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "full_name": "Dash Board"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// TEST_ENV, but e-mail verification required (as in production): sign-up mails the link.
fn env_verifying() -> Vec<(&'static str, &'static str)> {
    TEST_ENV.iter().copied().filter(|(k, _)| *k != "NUSATRADE_REQUIRE_EMAIL_VERIFICATION").collect()
}

/// Logs in over the API; the access token.
async fn api_login(gw: &Gateway, email: &str) -> String {
    let r = http()
        .post(gw.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

/// Sign up in the browser, the mailed link verifies the address, sign in like a user; the overview shows the
/// numbers and the equity curve of two closed trades; settings save and survive a reload; screenshots of the
/// signed-out pages, the overview, security and settings in both themes.
#[tokio::test]
async fn sign_up_verify_sign_in_overview_and_settings() {
    let Some(b) = Browser::start().await else { return };
    let gw = Gateway::start_with_env(&[], &env_verifying()).await.unwrap();
    let email = "new.trader@example.com";

    b.goto(&gw, "").await;
    b.wait("#login-email").await;
    b.screenshots_both_themes("login").await;
    b.goto(&gw, "#/forgot").await;
    b.wait("#forgot-email").await;
    b.screenshots_both_themes("forgot").await;
    b.goto(&gw, "#/register").await;
    b.fill("#register-name", "New Trader").await;
    b.fill("#register-email", email).await;
    b.fill("#register-password", "short").await;
    b.click("#register-submit").await;
    b.wait_text("#register-error", "at least 8 characters").await;
    b.screenshots_both_themes("register").await;
    b.fill("#register-password", PASSWORD).await;
    b.click("#register-submit").await;
    b.wait_text("#register-done", "Check your mail").await;
    b.screenshots_both_themes("register-done").await;
    b.click("#register-resend").await;
    b.wait_text("#register-resent", "on its way").await;

    // The mailed link's page verifies the address; the dashboard then says so.
    let token = mailed_token(&gw, email, "Confirm");
    b.client().goto(&gw.url(&format!("/verify-email?token={token}"))).await.unwrap();
    b.wait_text("body", "verified").await;
    b.goto(&gw, "#/overview").await;
    b.wait("#overview-verified").await;

    // Two closed trades (+20, -10 at 0.1 lot), made over the API with a scripted connector.
    let api_token = api_login(&gw, email).await;
    let conn_id = broker_connection(&gw, &api_token).await.unwrap();
    let conn = TestConnector::connect(&gw, &api_token, &conn_id).await.unwrap();
    round_trip(&gw, &api_token, &conn, 1.1000, 1.1020).await;
    round_trip(&gw, &api_token, &conn, 1.1020, 1.1010).await;

    // Sign out, sign in through the login page; the overview's numbers and curve.
    b.click("#signout").await;
    b.wait("#login-email").await;
    b.sign_in(&gw, email, PASSWORD).await;
    b.wait_text("#stat-trades dd", "2").await;
    b.wait_text("#stat-winrate dd", "50").await;
    let balance = b.text("#stat-balance dd").await;
    assert!(balance.contains("10,0"), "{balance}");
    b.wait("#overview-equity svg").await;
    b.wait_text("#overview-equity", "2 closed trades").await;
    b.wait_text("#overview-bots", "No active bot").await;
    b.screenshots_both_themes("overview").await;
    b.set_viewport(375, 800).await;
    b.screenshot("overview-phone").await;
    b.set_viewport(1280, 900).await;

    // Settings: the profile name and a preference survive a reload; a bad number is refused on the page.
    b.goto(&gw, "#/settings").await;
    b.wait("#settings-prefs form").await;
    b.fill("#set-defaultLotSize", "0").await;
    b.click("#settings-save").await;
    b.wait_text("#settings-error", "Default lot size").await;
    b.fill("#set-defaultLotSize", "0.25").await;
    b.click("#settings-save").await;
    b.wait_text(".toast", "Preferences saved").await;
    b.fill("#settings-name", "Renamed Trader").await;
    b.click("#settings-profile-save").await;
    b.wait_text(".toast", "Profile saved").await;
    b.reload().await;
    b.wait("#settings-prefs form").await;
    let lot = b.eval("return document.querySelector('#set-defaultLotSize').value;").await;
    assert_eq!(lot, json!("0.25"));
    let name = b.eval("return document.querySelector('#settings-name').value;").await;
    assert_eq!(name, json!("Renamed Trader"));
    b.screenshots_both_themes("settings").await;
    let (s, v) = send(&gw, "GET", "/api/v1/users/settings", &api_token, None).await;
    assert_eq!((s.as_u16(), v["defaultLotSize"].clone()), (200, json!("0.25")));

    // Security: sessions (this browser marked), activity with paging, 2FA set-up shows the QR. (A few more
    // sign-ins over the API so the activity has more than one page of 10.)
    for _ in 0..5 {
        api_login(&gw, email).await;
    }
    b.goto(&gw, "#/security").await;
    b.wait("#security-sessions tr[data-current='true']").await;
    b.wait_text("#security-activity", "Signed in").await;
    b.wait_text("#security-activity", "E-mail verified").await;
    b.click("#activity-older").await;
    b.wait_text("#security-activity caption", "Page 2").await;
    b.click("#activity-newer").await;
    b.wait_text("#security-activity caption", "Page 1").await;
    b.screenshots_both_themes("security").await;
    b.click("#totp-setup").await;
    b.wait("img.totp-qr").await;
    let loaded =
        b.eval("const i = document.querySelector('img.totp-qr'); return i.complete && i.naturalWidth > 0;").await;
    assert_eq!(loaded, json!(true), "the QR image loads under the CSP (data: PNG)");
    b.screenshots_both_themes("security-2fa-setup").await;
    let errors = b.console_errors().await;
    assert!(errors.iter().all(|e| !e.contains("Content Security Policy")), "{errors:?}");
    drop(conn);
}

/// Two browsers signed in as the same user: revoking the other's session from the security page signs THAT
/// browser out (its socket closes, its refresh fails). Then 2FA: turned on in the browser, the next sign-in asks
/// for the code; "sign out all other sessions" ends a session made over the API.
#[tokio::test]
async fn revoking_a_session_signs_the_other_browser_out_and_2fa_sign_in() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    let email = "two.browsers@example.com";
    register_api(&gw, email).await;
    let Some(a) = Browser::start().await else { return };
    let Some(other) = Browser::start().await else { return };
    a.sign_in(&gw, email, PASSWORD).await;
    other.sign_in(&gw, email, PASSWORD).await;
    other.wait_text("#stat-balance dd", "10,0").await;

    a.goto(&gw, "#/security").await;
    a.wait("#security-sessions tr[data-current='true']").await;
    // the registration's session, the other browser's and this one
    a.wait_js(
        "three sessions",
        "return document.querySelectorAll('#security-sessions tbody tr').length === 3;",
        vec![],
    )
    .await;
    // The newest other session is the other browser's (sessions are listed newest first).
    a.click("#security-sessions tr[data-current='false'] button[data-session]").await;
    a.wait_text(".toast", "Session revoked").await;
    other.wait("#login-email").await;
    assert!(!other.exists("#nav:not([hidden])").await, "the revoked browser shows the sign-in page");
    let stored = other.eval("return localStorage.getItem('nt.session');").await;
    assert_eq!(stored, Value::Null, "the revoked browser forgot its tokens");

    // 2FA on from the security page (a code of the previous step, so the sign-in below may use the current one).
    a.goto(&gw, "#/security").await;
    a.click("#totp-setup").await;
    let secret = a.text("#totp-secret").await;
    nusatrade_tests::totp_step_with_time_left(Duration::from_secs(10)).await;
    a.fill("#totp-code", &totp_code(secret.trim(), -30)).await;
    a.click("#totp-verify").await;
    a.wait("#totp-on").await;
    a.screenshots_both_themes("security-2fa-on").await;

    other.fill("#login-email", email).await;
    other.fill("#login-password", PASSWORD).await;
    other.click("#login-submit").await;
    other.wait("#login-code").await;
    other.screenshots_both_themes("login-2fa").await;
    other.fill("#login-code", "000000").await;
    other.click("#login-submit").await;
    other.wait_text("#login-error", "Invalid").await;
    other.fill("#login-code", &totp_code(secret.trim(), 0)).await;
    other.click("#login-submit").await;
    other.wait("body[data-page='overview'] #nav:not([hidden])").await;

    // "Sign out all other sessions": the other browser and an API session end.
    let api_token = {
        let r = http()
            .post(gw.url("/api/v1/auth/login-2fa"))
            .json(&json!({"email": email, "password": PASSWORD, "totp_token": totp_code(secret.trim(), 30)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    };
    a.reload().await;
    a.click("#revoke-others").await;
    a.wait_text(".toast", "Every other session").await;
    other.wait("#login-email").await;
    let (s, _) = send(&gw, "GET", "/api/v1/auth/me", &api_token, None).await;
    assert_eq!(s.as_u16(), 401);
    a.wait_js(
        "only this session left",
        "return document.querySelectorAll('#security-sessions tbody tr').length === 1;",
        vec![],
    )
    .await;
}

async fn bg(b: &Browser) -> Value {
    b.eval("return getComputedStyle(document.body).backgroundColor;").await
}

/// The theme follows the system until the user picks one; the pick persists across reloads.
#[tokio::test]
async fn dark_mode_follows_the_system_and_persists() {
    let Some(b) = Browser::start().await else { return };
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    b.goto(&gw, "#/login").await;
    b.emulate_color_scheme("dark").await;
    b.reload().await;
    assert_eq!(b.theme().await, "dark");
    assert_eq!(b.eval("return document.documentElement.dataset.theme || null;").await, Value::Null);
    let dark_bg = bg(&b).await;
    b.emulate_color_scheme("light").await;
    assert_eq!(b.theme().await, "light");
    let light_bg = bg(&b).await;
    assert_ne!(dark_bg, light_bg, "the system's scheme changes the page");

    // An explicit pick wins over the system and survives reloads.
    b.set_theme("dark").await;
    b.reload().await;
    assert_eq!(b.theme().await, "dark");
    assert_eq!(b.eval("return localStorage.getItem('nt.theme');").await, json!("dark"));
    assert_eq!(bg(&b).await, dark_bg);
    b.emulate_color_scheme("dark").await;
    b.set_theme("light").await;
    b.reload().await;
    assert_eq!(b.theme().await, "light", "the override beats a dark system");
    assert_eq!(bg(&b).await, light_bg);
}

/// Errors stay local: one overview panel's call fails (the page's own fetch, made to answer 500 for that URL)
/// and shows its error with a Retry while the other panels show their numbers; Retry recovers it. Then the
/// gateway is killed and restarted on the same port and data: the link banner says "reconnecting", then goes.
#[tokio::test]
async fn a_failing_panel_stays_local_and_the_banner_follows_the_socket() {
    let Some(mut b) = Browser::start().await else { return };
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.unwrap();
    register_api(&gw, "panels@example.com").await;
    b.sign_in(&gw, "panels@example.com", PASSWORD).await;
    b.wait("#overview-bots[data-state='ready']").await;

    b.eval(
        "window.__realFetch = window.fetch; \
         window.fetch = (url, opts) => String(url).includes('/ml/dashboard/active-bots') \
           ? Promise.resolve(new Response(JSON.stringify({detail: 'Injected failure for the test'}), \
               {status: 500, headers: {'Content-Type': 'application/json'}})) \
           : window.__realFetch(url, opts);",
    )
    .await;
    b.goto(&gw, "#/settings").await;
    b.wait("#settings-prefs").await;
    b.goto(&gw, "#/overview").await;
    b.wait("#overview-bots[data-state='error']").await;
    b.wait_text("#overview-bots .error-box", "Injected failure for the test").await;
    b.wait("#overview-stats[data-state='ready']").await;
    b.wait("#overview-account[data-state='ready']").await;
    b.wait("#overview-equity[data-state='ready']").await;
    b.wait_text("#stat-balance dd", "10,0").await;
    assert!(b.exists("#nav:not([hidden])").await, "the shell keeps working");
    b.screenshots_both_themes("overview-panel-error").await;
    b.eval("window.fetch = window.__realFetch;").await;
    b.click("#overview-bots .error-box button").await;
    b.wait("#overview-bots[data-state='ready']").await;
    b.wait_text("#overview-bots", "No active bot").await;

    // The link banner: connected (hidden) → gateway gone → reconnecting → gateway back → hidden again.
    b.wait_js("the socket connected", "return document.getElementById('link').dataset.state === 'connected';", vec![])
        .await;
    assert!(!b.exists("#link").await);
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let data = gw.stop().await.unwrap();
    b.wait_text("#link", "reconnecting").await;
    b.screenshots_both_themes("banner-reconnecting").await;
    let mut env = TEST_ENV.to_vec();
    env.push(("RUST_LOG", "warn"));
    let mut again = tokio::process::Command::new(nusatrade_tests::binary().unwrap())
        .args(["serve", "--addr", &addr, "--data-dir"])
        .arg(data.path().join("data"))
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(again.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap();
    assert!(ready.is_some_and(|l| l.contains(&addr)), "restarted on {addr}");
    // backoff: at most a few seconds after the restart
    b.set_timeout(Duration::from_secs(40));
    b.wait_gone("#link").await;
    b.wait_js("the socket connected", "return document.getElementById('link').dataset.state === 'connected';", vec![])
        .await;
    // still signed in, and the page refetched after the reconnect
    b.wait("#overview-stats[data-state='ready']").await;
    assert!(b.exists("#nav:not([hidden])").await);
    let _ = again.start_kill();
}
