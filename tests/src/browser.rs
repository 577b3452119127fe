//! The browser harness of the dashboard tests (issue 19): Debian's Chromium, headless, driven over WebDriver
//! (`fantoccini`) through Debian's chromedriver, against the real gateway ([`Gateway`]).
//!
//! ```ignore
//! let Some(b) = Browser::start().await else { return }; // skipped (or failed under NUSATRADE_REQUIRE_BROWSER=1)
//! b.sign_in(&gw, "a@example.com", "correct horse battery").await;
//! b.goto(&gw, "#/trading").await;
//! b.wait_text(".panel h2", "Positions").await;
//! b.click("#place").await;
//! b.screenshots_both_themes("trading").await; // target/screenshots/<test>-trading-{light,dark}.png
//! ```
//!
//! - Each [`Browser`] runs its own chromedriver (on a free loopback port) and its own Chromium with a fresh
//!   profile, so several per test are independent users (two sessions). Both are killed on drop (the driver is
//!   started in its own process group, and the group — driver and browser — is killed).
//! - `NUSATRADE_CHROMEDRIVER` (else `/usr/bin/chromedriver`) and `NUSATRADE_CHROMIUM` (else `/usr/bin/chromium`);
//!   missing ones skip the test, or fail it under `NUSATRADE_REQUIRE_BROWSER=1` (as `tests/browser.rs` does).
//! - Every wait has a timeout (`NUSATRADE_BROWSER_TIMEOUT` seconds, default 20: generous for a loaded 2-core CI
//!   machine; a wait returns as soon as its condition holds) and panics with what was awaited, the page's
//!   address, its visible text, the browser console's errors and a screenshot (`<test>-FAILED.png`).
//! - The window is 1280×900 ([`Browser::set_viewport`] changes it); screenshots go to `target/screenshots/`,
//!   named after the test (the test thread's name), the given name and the theme on screen.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::Gateway;

/// A headless Chromium session (with its own chromedriver).
pub struct Browser {
    client: Client,
    driver: Child,
    driver_url: String,
    session_id: String,
    test: String,
    timeout: Duration,
    _profile: tempfile::TempDir,
}

fn required() -> bool {
    std::env::var("NUSATRADE_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

fn tool(var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var(var).map(PathBuf::from).unwrap_or_else(|_| default.into());
    if path.exists() {
        return Some(path);
    }
    assert!(!required(), "{} not found ({var}) and NUSATRADE_REQUIRE_BROWSER=1", path.display());
    eprintln!("SKIPPED: no {} ({var}; tests/run.sh installs chromium and chromium-driver)", path.display());
    None
}

/// Whether the browser tests can run here (chromedriver and Chromium present); prints SKIPPED when not, and
/// panics under `NUSATRADE_REQUIRE_BROWSER=1` instead.
pub fn available() -> bool {
    tool("NUSATRADE_CHROMEDRIVER", "/usr/bin/chromedriver").is_some()
        && tool("NUSATRADE_CHROMIUM", "/usr/bin/chromium").is_some()
}

/// `target/screenshots` of this workspace (beside the test executable's profile directory).
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-exe> → target
    let target = exe.ancestors().nth(3).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    target.join("screenshots")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn test_name() -> String {
    let name = std::thread::current().name().unwrap_or("test").to_owned();
    let name = if name == "main" { "test".to_owned() } else { name };
    name.rsplit("::").next().unwrap_or("test").replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "-")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (1280×900, fresh profile). `None` (the test reports itself
    /// skipped) when either is missing, unless `NUSATRADE_REQUIRE_BROWSER=1`.
    pub async fn start() -> Option<Browser> {
        let driver_bin = tool("NUSATRADE_CHROMEDRIVER", "/usr/bin/chromedriver")?;
        let chromium = tool("NUSATRADE_CHROMIUM", "/usr/bin/chromium")?;
        let profile = tempfile::tempdir().expect("profile dir");
        let timeout = Duration::from_secs(
            std::env::var("NUSATRADE_BROWSER_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(20),
        );
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let caps: serde_json::Map<String, Value> = serde_json::from_value(caps).expect("capabilities");
        let mut last_err = String::new();
        // A port taken between the probe and chromedriver's bind: try again on another.
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", driver_bin.display()));
            let driver_url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            let client = loop {
                let mut builder = ClientBuilder::new(HttpConnector::new());
                match builder.capabilities(caps.clone()).connect(&driver_url).await {
                    Ok(c) => break Some(c),
                    Err(e) => {
                        last_err = e.to_string();
                        if Instant::now() > deadline || matches!(driver.try_wait(), Ok(Some(_))) {
                            break None;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            let Some(client) = client else {
                kill_group(&driver);
                continue;
            };
            let session_id = client.session_id().await.ok().flatten().unwrap_or_default();
            return Some(Browser {
                client,
                driver,
                driver_url,
                session_id,
                test: test_name(),
                timeout,
                _profile: profile,
            });
        }
        panic!("chromedriver did not start a Chromium session: {last_err}");
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Names the screenshots `<name>-…` instead of the test thread's name.
    pub fn set_test_name(&mut self, name: &str) {
        self.test = name.to_owned();
    }

    /// Opens the dashboard at `hash` (`"#/overview"`, `""` for the root) and waits for the shell to be there.
    pub async fn goto(&self, gw: &Gateway, hash: &str) {
        let url = gw.url(&format!("/{hash}"));
        if let Err(e) = self.client.goto(&url).await {
            self.fail(&format!("goto {url}: {e}")).await;
        }
        self.wait("#view").await;
    }

    /// Signs in through the login page, like a user (e-mail, password, Sign in), and waits for the overview.
    pub async fn sign_in(&self, gw: &Gateway, email: &str, password: &str) {
        self.goto(gw, "#/login").await;
        self.fill("#login-email", email).await;
        self.fill("#login-password", password).await;
        self.click("#login-submit").await;
        self.wait("body[data-page='overview'] #nav:not([hidden])").await;
    }

    /// Runs `js` as a function body in the page (so `return …` gives the value); `arguments` is empty.
    pub async fn eval(&self, js: &str) -> Value {
        match self.client.execute(js, vec![]).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("script failed: {e}\n--- script ---\n{js}")).await,
        }
    }

    /// [`eval`](Self::eval) with arguments (`arguments[0]`, …).
    pub async fn eval_with(&self, js: &str, args: Vec<Value>) -> Value {
        match self.client.execute(js, args).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("script failed: {e}\n--- script ---\n{js}")).await,
        }
    }

    /// Polls `check` (a function body returning truthy when done) every 100 ms until it holds or the timeout.
    pub async fn wait_js(&self, what: &str, check: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.client.execute(check, args.clone()).await {
                Ok(v) if !v.is_null() && v != json!(false) && v != json!("") && v != json!(0) => return v,
                Ok(_) => {}
                Err(e) if Instant::now() > deadline => self.fail(&format!("{what}: script failed: {e}")).await,
                Err(_) => {}
            }
            if Instant::now() > deadline {
                self.fail(&format!("timed out after {:?} waiting for {what}", self.timeout)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an element matches `css` (and is displayed); returns it.
    pub async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        self.wait_js(
            &format!("an element {css:?}"),
            "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;",
            vec![json!(css)],
        )
        .await;
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => self.fail(&format!("find {css:?}: {e}")).await,
        }
    }

    /// Waits until nothing displayed matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        self.wait_js(
            &format!("no element {css:?}"),
            "return ![...document.querySelectorAll(arguments[0])].some((e) => e.getClientRects().length > 0);",
            vec![json!(css)],
        )
        .await;
    }

    /// Waits until an element matching `css` shows `text` (in its visible text, or an input's value).
    pub async fn wait_text(&self, css: &str, text: &str) -> String {
        let v = self
            .wait_js(
                &format!("{text:?} in {css:?}"),
                "for (const e of document.querySelectorAll(arguments[0])) { \
                   const t = (e.innerText || '') + ' ' + (e.value || ''); \
                   if (t.includes(arguments[1])) return e.innerText || e.value; } return null;",
                vec![json!(css), json!(text)],
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks the element matching `css` once it is there and enabled.
    pub async fn click(&self, css: &str) {
        self.wait_js(
            &format!("an enabled {css:?}"),
            "const e = document.querySelector(arguments[0]); \
             return !!e && e.getClientRects().length > 0 && !e.disabled;",
            vec![json!(css)],
        )
        .await;
        let deadline = Instant::now() + self.timeout;
        loop {
            // In the middle of the viewport first: WebDriver's own scrolling may leave it under the sticky header.
            let _ = self
                .client
                .execute(
                    "const e = document.querySelector(arguments[0]); \
                     if (e) e.scrollIntoView({block: 'center', inline: 'nearest'});",
                    vec![json!(css)],
                )
                .await;
            let r = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.click().await,
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => self.fail(&format!("click {css:?}: {e}")).await,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Replaces the value of the input matching `css` with `text`, typed like a user.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.wait(css).await;
        let r = async {
            e.clear().await?;
            e.send_keys(text).await
        }
        .await;
        if let Err(err) = r {
            self.fail(&format!("fill {css:?}: {err}")).await;
        }
    }

    /// The visible text of the first element matching `css` (waiting for it).
    pub async fn text(&self, css: &str) -> String {
        self.wait(css).await;
        self.eval_with("return document.querySelector(arguments[0]).innerText;", vec![json!(css)])
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether something displayed matches `css` now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        self.eval_with(
            "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;",
            vec![json!(css)],
        )
        .await
            == json!(true)
    }

    /// Resizes the window (the page's viewport in headless Chromium).
    pub async fn set_viewport(&self, width: u32, height: u32) {
        if let Err(e) = self.client.set_window_size(width, height).await {
            self.fail(&format!("set_window_size {width}×{height}: {e}")).await;
        }
    }

    /// The theme on screen: the override (`<html data-theme>`) or the system's.
    pub async fn theme(&self) -> String {
        self.eval(
            "return document.documentElement.dataset.theme || \
             (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');",
        )
        .await
        .as_str()
        .unwrap_or("light")
        .to_owned()
    }

    /// Switches to `"dark"` or `"light"` with the header's theme button, like a user (a persisted override); does
    /// nothing when that theme is already on screen.
    pub async fn set_theme(&self, theme: &str) {
        assert!(theme == "dark" || theme == "light", "theme {theme:?}");
        if self.theme().await != theme {
            self.click("#theme").await;
        }
        let want = json!(theme);
        self.wait_js(
            &format!("the {theme} theme"),
            "return (document.documentElement.dataset.theme || \
             (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light')) === arguments[0];",
            vec![want],
        )
        .await;
    }

    /// Saves a PNG of the viewport as `target/screenshots/<test>-<name>-<theme>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let theme = self.theme().await;
        // Let transitions and a chart's resize settle.
        let _ = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 150)));",
                vec![],
            )
            .await;
        let png = match self.client.screenshot().await {
            Ok(p) => p,
            Err(e) => self.fail(&format!("screenshot {name}: {e}")).await,
        };
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{}-{name}-{theme}.png", self.test));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// [`screenshot`](Self::screenshot) in the light and the dark theme; puts the theme back as it was.
    pub async fn screenshots_both_themes(&self, name: &str) -> [PathBuf; 2] {
        let before = self.theme().await;
        self.set_theme("light").await;
        let light = self.screenshot(name).await;
        self.set_theme("dark").await;
        let dark = self.screenshot(name).await;
        self.set_theme(&before).await;
        [light, dark]
    }

    /// Sends a Chrome DevTools Protocol command through chromedriver (`goog/cdp/execute`); returns its result.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let url = format!("{}/session/{}/goog/cdp/execute", self.driver_url, self.session_id);
        let resp = crate::http().post(url).json(&json!({"cmd": cmd, "params": params})).send().await;
        match resp {
            Ok(r) if r.status().is_success() => {
                r.json::<Value>().await.map(|v| v["value"].clone()).unwrap_or(Value::Null)
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                self.fail(&format!("cdp {cmd}: {status} {body}")).await
            }
            Err(e) => self.fail(&format!("cdp {cmd}: {e}")).await,
        }
    }

    /// Emulates the system colour scheme (`prefers-color-scheme`): `"dark"`, `"light"`, or `""` for none.
    pub async fn emulate_color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
    }

    /// Reloads the page and waits for the shell.
    pub async fn reload(&self) {
        if let Err(e) = self.client.refresh().await {
            self.fail(&format!("reload: {e}")).await;
        }
        self.wait("#view").await;
    }

    /// Changes how long every wait may take (default `NUSATRADE_BROWSER_TIMEOUT`, else 20 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The browser console's errors so far (chromedriver's `browser` log, SEVERE entries); reading drains them.
    pub async fn console_errors(&self) -> Vec<String> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session_id);
        let Ok(resp) = crate::http().post(url).json(&json!({"type": "browser"})).send().await else {
            return vec![];
        };
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        body["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Panics with `msg`, the page's address, its visible text and the console's errors.
    pub async fn fail(&self, msg: &str) -> ! {
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_else(|e| format!("? ({e})"));
        let text = self
            .client
            .execute("return document.body ? document.body.innerText : '';", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let text: String = text.chars().take(3000).collect();
        let errors = self.console_errors().await;
        let shot = self.client.screenshot().await.ok().map(|png| {
            let dir = screenshot_dir();
            let _ = std::fs::create_dir_all(&dir);
            let p = dir.join(format!("{}-FAILED.png", self.test));
            let _ = std::fs::write(&p, png);
            p
        });
        panic!(
            "{msg}\n--- page {url} ---\n{text}\n--- console errors ---\n{}\n--- screenshot: {} ---",
            errors.join("\n"),
            shot.map(|p| p.display().to_string()).unwrap_or_default()
        );
    }

    /// Ends the WebDriver session (Chromium quits), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop kills the driver's process group.
    }
}

fn kill_group(driver: &Child) {
    if let Some(pid) = driver.id() {
        // The driver leads its own process group (`process_group(0)`): this ends it and the Chromium it started.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&self.driver);
    }
}
