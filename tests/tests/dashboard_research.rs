//! The dashboard's research pages in a real browser (issue 19): Debian's Chromium, headless, against the real
//! gateway (`tests/src/browser.rs`).
//!
//! - strategies → backtest → chart: a strategy built in the rule builder (a bad condition first: the server's
//!   validator's message shows next to the rule), saved, "Backtest this" opens the backtest page with it
//!   preselected; a run on the uploaded EURUSD hourly sample shows its statistics and the equity chart; Monte Carlo
//!   draws its band; a small optimization grid is drawn as a heatmap (cells with the parameters and the metric,
//!   keyboard focusable, the table fallback).
//! - The AI page with no language model configured: a chat answer with the clear notice and the computed answer;
//!   strategy generation streamed (SSE) → save → backtest link with the new strategy preselected.
//! - Bots & models: a model created and trained from the page (progress polled) is listed as trained; a prediction.
//! - Admin: a trader sees "Admins only"; an admin (granted with `nusatrade admin grant`) saves a secret setting
//!   that is shown masked and never echoed, and sees it in the audit log.
//!
//! Screenshots of each page in both themes go to `target/screenshots/`. Skipped (SKIPPED on stderr) without
//! chromedriver/Chromium or without the EURUSD sample beside the checkout.

use nusatrade_tests::browser::{self, Browser};
use nusatrade_tests::{Gateway, binary, env_without_llm, eurusd_csv, register, upload_candles};
use std::time::{Duration, Instant};

use serde_json::json;

const PASSWORD: &str = "Str0ng!pass";

/// A gateway and a signed-up user with the EURUSD hourly sample uploaded; `None` when the sample is missing.
async fn gateway_with_candles(email: &str) -> Option<(Gateway, String)> {
    let csv = eurusd_csv()?;
    let gw = Gateway::start_with_env(&[], &env_without_llm()).await.expect("gateway");
    let token = register(&gw, email).await.expect("register");
    upload_candles(&gw, &token, "EURUSD", "H1", csv).await;
    Some((gw, token))
}

/// Scrolls `css` to the top of the window, below the sticky header (for a screenshot).
async fn show(b: &Browser, css: &str) {
    b.eval_with(
        "document.querySelector(arguments[0]).scrollIntoView(); scrollBy(0, -70); return true;",
        vec![json!(css)],
    )
    .await;
}

#[tokio::test]
async fn strategies_backtest_chart_and_optimizer_heatmap() {
    if !browser::available() {
        return;
    }
    let Some((gw, _token)) = gateway_with_candles("research@example.com").await else { return };
    let b = Browser::start().await.expect("browser");
    b.sign_in(&gw, "research@example.com", PASSWORD).await;

    // The rule builder: two parameters, a bad condition first — the server's validator answers next to the rule.
    b.goto(&gw, "#/strategies").await;
    b.wait("#builder form.builder").await;
    b.fill("#builder input[name='name']", "SMA cross from the builder").await;
    b.click("#add-param").await;
    b.wait("#builder fieldset[data-param='p1']").await;
    b.click("#add-param").await;
    b.wait("#builder fieldset[data-param='p2']").await;
    for (param, default, min, max) in [("p1", "10", "5", "15"), ("p2", "30", "20", "40")] {
        b.fill(&format!("#builder fieldset[data-param='{param}'] input[name='param-default']"), default).await;
        b.fill(&format!("#builder fieldset[data-param='{param}'] input[name='param-min']"), min).await;
        b.fill(&format!("#builder fieldset[data-param='{param}'] input[name='param-max']"), max).await;
    }
    let entry = "#builder fieldset[data-rule='long'] input[name='rule-condition']";
    let exit = "#builder fieldset[data-rule='exit'] input[name='rule-condition']";
    b.fill(entry, "RSX(14) < 30").await;
    b.fill(exit, "RSI(14) > 70").await;
    b.wait_text("#builder fieldset[data-rule='long'] .field-msgs", "unknown indicator 'RSX'").await;
    b.wait("#builder fieldset[data-rule='long'] input[name='rule-condition'][aria-invalid='true']").await;
    b.wait_text("#validation", "problem").await;
    show(&b, "#h-compose").await;
    b.screenshots_both_themes("strategy-builder-validation").await;
    b.fill(entry, "CROSSES_ABOVE(SMA(p1), SMA(p2))").await;
    b.wait_text("#validation", "accepts this strategy").await;
    b.click("#builder form.builder button[type='submit']").await;
    b.wait_text("#strategy-list table", "SMA cross from the builder").await;
    b.wait("#backtest-this").await;
    show(&b, "#view h1").await;
    b.screenshots_both_themes("strategies").await;

    // "Backtest this" → the backtest page with the strategy preselected; run on the uploaded candles.
    b.click("#backtest-this").await;
    b.wait("body[data-page='backtest'] #run-backtest").await;
    let chosen =
        b.eval("const s = document.querySelector('#bt-run select'); return s.options[s.selectedIndex].text;").await;
    assert_eq!(chosen, json!("SMA cross from the builder"), "the strategy is preselected");
    b.click("#run-backtest").await;
    b.wait_text("#bt-stats", "Net profit").await;
    b.wait_text("#bt-stats", "Trades").await;
    b.wait("#bt-charts svg.chart path.line").await;
    let d = b.eval("return document.querySelector('#bt-charts svg.chart path.line').getAttribute('d').length;").await;
    assert!(d.as_u64().unwrap_or(0) > 1000, "the equity curve is drawn: {d}");
    b.wait("#bt-trades table tbody tr").await;

    // Monte Carlo: a band and its median.
    b.click("#run-mc").await;
    b.wait("#mc-out svg path.band").await;
    b.wait_text("#mc-out", "P(loss)").await;
    show(&b, "#bt-result").await;
    b.screenshots_both_themes("backtest").await;
    show(&b, "#bt-mc").await;
    b.screenshots_both_themes("backtest-monte-carlo").await;

    // A small grid (3 × 3, p1 < p2 always holds): the heatmap, cells labelled, focusable, tooltip on focus.
    for (param, step) in [("p1", "5"), ("p2", "10")] {
        b.fill(&format!("#bt-opt .opt-param[data-param='{param}'] input[name='opt-step']"), step).await;
    }
    let steps = b
        .eval(
            "return [...document.querySelectorAll('#bt-opt .opt-param')].map((r) => \
               [...r.querySelectorAll('input[type=number]')].map((i) => i.value).join(':'));",
        )
        .await;
    assert_eq!(steps, json!(["5:15:5", "20:40:10"]), "the grid's ranges");
    b.click("#run-opt").await;
    b.wait("#opt-out svg.heatmap g.cell").await;
    let cells = b.eval("return document.querySelectorAll('#opt-out svg.heatmap g.cell').length;").await;
    assert_eq!(cells, json!(9), "3 × 3 cells");
    let label = b
        .eval(
            "const c = document.querySelector('#opt-out svg.heatmap g.cell[tabindex=\"0\"]'); c.focus(); \
             return c.getAttribute('aria-label');",
        )
        .await;
    let label = label.as_str().unwrap_or_default().to_owned();
    assert!(label.starts_with("p1 ") && label.contains(", p2 ") && label.contains("Sharpe ratio"), "{label}");
    b.wait_text("#opt-out .chart-tip", "p1 = ").await;
    b.eval(
        "document.querySelector('#opt-out svg.heatmap').dispatchEvent(new KeyboardEvent('keydown', \
         {key: 'ArrowRight', bubbles: true})); return true;",
    )
    .await;
    b.click("#opt-out .heat-table summary").await; // the table fallback
    b.wait_text("#opt-out .heat-table table", "p2").await;
    b.wait_text("#opt-out table", "Sharpe ratio").await;
    show(&b, "#opt-out").await;
    b.screenshots_both_themes("backtest-optimizer").await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.close().await;
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn ai_page_without_a_model_says_so_and_generated_strategies_reach_the_backtest() {
    if !browser::available() {
        return;
    }
    let Some((gw, _token)) = gateway_with_candles("ai-page@example.com").await else { return };
    let b = Browser::start().await.expect("browser");
    b.sign_in(&gw, "ai-page@example.com", PASSWORD).await;
    b.goto(&gw, "#/ai").await;

    // Chat: the computed answer with the clear notice and the tokens used — nothing blank.
    b.fill("#ai-chat textarea", "Analyse EURUSD").await;
    b.click("#chat-send").await;
    b.wait_text("#chat-log .msg-ai .notice-model", "No language model is configured").await;
    let answer = b.text("#chat-log .msg-ai .answer").await;
    assert!(answer.starts_with("Computed from your data (no language model):"), "{answer}");
    assert!(answer.contains("EURUSD"), "{answer}");
    b.wait_text("#chat-log .msg-ai .meta", "tokens used").await;
    b.wait_text("#ai-chat .conv-list", "Analyse EURUSD").await;

    // An analysis from the stored candles.
    b.click("#ai-analysis button[type='submit']").await;
    b.wait_text("#ai-analysis .answer", "EURUSD H1").await;

    // Generation over SSE: progress events, the fallback's notice and warnings, then save → backtest.
    b.click("#gen-run").await;
    b.wait_text("#gen-progress", "No language model configured").await;
    b.wait_text("#gen-out .warn", "No language model is configured").await;
    b.wait_text("#gen-out h3", "RSI + EMA crossover").await;
    show(&b, "#ai-chat").await;
    b.screenshots_both_themes("ai-chat").await;
    show(&b, "#ai-generate").await;
    b.screenshots_both_themes("ai-generate").await;
    b.click("#gen-save").await;
    b.click("#gen-backtest").await;
    b.wait("body[data-page='backtest'] #run-backtest").await;
    let chosen =
        b.eval("const s = document.querySelector('#bt-run select'); return s.options[s.selectedIndex].text;").await;
    assert!(chosen.as_str().unwrap_or_default().starts_with("RSI + EMA crossover"), "preselected: {chosen}");
    let hash = b.eval("return location.hash;").await;
    assert!(hash.as_str().unwrap_or_default().starts_with("#/backtest?strategy="), "{hash}");
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.close().await;
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn bots_page_trains_a_model_and_admin_page_masks_secrets() {
    if !browser::available() {
        return;
    }
    let Some((gw, _token)) = gateway_with_candles("bots@example.com").await else { return };
    register(&gw, "root@example.com").await.expect("register the admin");
    let b = Browser::start().await.expect("browser");
    b.sign_in(&gw, "bots@example.com", PASSWORD).await;

    // Bots & models: the dataset is listed; a model created, trained (progress polled), listed as trained.
    b.goto(&gw, "#/bots").await;
    b.wait_text("#datasets table", "EURUSD").await;
    b.click("#create-model").await;
    b.wait_text("#models table", "My EURUSD model").await;
    b.click("#models button[aria-label='Train My EURUSD model']").await;
    // The job's stage and fraction while it trains (polled), then "trained" — training takes a while on a busy
    // machine, longer than the harness's usual wait.
    b.wait_text("#models table", "%").await;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let shown = b.eval("return document.querySelector('#models table').innerText;").await;
        if shown.as_str().unwrap_or_default().contains("trained v1") {
            break;
        }
        assert!(Instant::now() < deadline, "the model did not finish training: {shown}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    b.click("#models button[aria-label='Predict with My EURUSD model']").await;
    b.wait("#predictions table tbody tr").await;
    b.wait_text("#auto-trading", "Scheduler").await;
    b.screenshots_both_themes("bots").await;

    // Admin: a trader is told the page is for admins.
    b.goto(&gw, "#/admin").await;
    b.wait_text("#admins-only", "Admins only").await;
    let nav = b.eval("return !!document.querySelector('#nav a[href=\"#/admin\"]');").await;
    assert_eq!(nav, json!(false), "the nav hides Admin from a trader");
    b.close().await;

    // The operator grants the role (gateway stopped: the data dir is one process's), then the admin signs in.
    let env = env_without_llm();
    let dir = gw.stop().await.unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(binary().unwrap())
        .args(["admin", "grant", "root@example.com", "--data-dir", data.to_str().unwrap()])
        .output()
        .expect("nusatrade admin grant");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let gw = Gateway::start_in(dir, &[], &env).await.expect("gateway again");
    let b = Browser::start().await.expect("browser");
    b.sign_in(&gw, "root@example.com", PASSWORD).await;
    b.wait("#nav a[href='#/admin']").await;
    b.goto(&gw, "#/admin").await;
    b.wait("#settings").await;
    b.click("#settings .panel-actions .btn-primary").await; // New setting
    b.fill("#setting-editor input[maxlength='100']", "sendgrid_api_key").await;
    let secret = "SG.e2e-browser-PLAINTEXT-5c1d";
    b.fill("#setting-editor input[type='password']", secret).await;
    b.click("#setting-editor button[type='submit']").await;
    b.wait_text("#settings table", "sendgrid_api_key").await;
    b.wait_text("#settings tr[data-key='sendgrid_api_key']", "encrypted").await;
    b.wait_text("#audit table", "sendgrid_api_key").await;
    let echoed =
        b.eval_with("return document.documentElement.outerHTML.includes(arguments[0]);", vec![json!(secret)]).await;
    assert_eq!(echoed, json!(false), "the secret is never echoed into the page");
    b.click("#checks button").await;
    b.wait_text("#checks", "LLM API key not configured").await;
    b.screenshots_both_themes("admin").await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.close().await;
    gw.stop().await.unwrap();
}
