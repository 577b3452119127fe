//! Strategies and backtests end to end (issue 16) over the real gateway binary: a strategy created from rules is
//! validated (stored and unsaved), quick-backtested and run on the real EURUSD hourly sample uploaded as a dataset
//! (`../shared/data/EURUSD.csv`; the test prints why and passes without checking when the file is absent), its
//! session listed with its trades and chart, a small grid optimized as a job through the `backtest` queue (progress,
//! merged results, heatmap), Monte Carlo on the trades; the legacy `/backtest/strategies` shapes, the ML template
//! clones, generated data (labelled) and the bad inputs the issue lists.

use std::time::Duration;

use nusatrade_tests::{Gateway, TEST_ENV, eurusd_csv, eventually, http, register, send, upload_candles};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The test environment (cheap password hashing, no request limit: these tests poll long jobs every 10 ms) with
/// `extra`.
fn env(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    TEST_ENV.iter().chain(extra).copied().collect()
}

fn sma_cross() -> Value {
    json!({
        "name": "SMA cross",
        "description": "SMA fast/slow crossover",
        "parameters": [
            {"name": "fast", "default_value": 10, "min": 2, "max": 50},
            {"name": "slow", "default_value": 20, "min": 5, "max": 200}
        ],
        "indicators": ["SMA"],
        "entry_rules": [
            {"id": "up", "condition": "CROSSES_ABOVE(SMA(fast), SMA(slow))", "action": "BUY", "description": "fast over slow"},
            {"id": "down", "condition": "CROSSES_BELOW(SMA(fast), SMA(slow))", "action": "SELL", "description": "fast under slow"}
        ],
        "exit_rules": [
            {"id": "rsi", "condition": "RSI(14) > 80", "action": "CLOSE", "description": "overbought"}
        ],
        "risk_management": {
            "stop_loss_type": "fixed_pips", "stop_loss_value": 30,
            "take_profit_type": "risk_reward", "take_profit_value": 2,
            "max_position_size": 1.0, "risk_per_trade_percent": 1.0
        }
    })
}

#[tokio::test]
async fn strategies_backtests_optimizations_and_monte_carlo_end_to_end() {
    let Some(csv) = eurusd_csv() else { return };
    let gw = Gateway::start_with_env(&[], &env(&[])).await.expect("gateway");
    let token = register(&gw, "bt@example.com").await.expect("register");
    upload_candles(&gw, &token, "EURUSD", "H1", csv).await;

    // A strategy from rules (201), listed, validated.
    let (s, created) = send(&gw, "POST", "/api/v1/strategies", &token, Some(sma_cross())).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    for key in [
        "id",
        "name",
        "parameters",
        "indicators",
        "entry_rules",
        "exit_rules",
        "risk_management",
        "is_active",
        "created_at",
    ] {
        assert!(created.get(key).is_some(), "StrategyResponse lacks {key}: {created}");
    }
    assert_eq!(created["is_active"], false);
    let (s, list) = send(&gw, "GET", "/api/v1/strategies", &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, v) = send(&gw, "POST", &format!("/api/v1/strategies/{id}/validate"), &token, None).await;
    assert_eq!((s, &v["valid"]), (StatusCode::OK, &json!(true)), "{v}");

    // Unsaved validation returns every problem at once, with positions; a bad rule is never stored.
    let mut bad = sma_cross();
    bad["entry_rules"][0]["condition"] = json!("RSX(14) < 30");
    bad["exit_rules"][0]["condition"] = json!("CLOSE > (SMA(20)");
    let (s, v) = send(&gw, "POST", "/api/v1/strategies/validate", &token, Some(bad.clone())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["valid"], false);
    let errors = v["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "both rules' problems: {v}");
    assert!(errors.iter().any(|e| e.as_str().unwrap().contains("RSX")), "{v}");
    let (s, v) = send(&gw, "POST", "/api/v1/strategies", &token, Some(bad)).await;
    assert_eq!(s, 422, "an unparseable rule is refused: {v}");

    // Quick backtest on the newest 30 days of the stored data: the original's metrics, cached on the strategy.
    let (s, m) =
        send(&gw, "POST", &format!("/api/v1/strategies/{id}/quick-backtest"), &token, Some(json!({"days": 60}))).await;
    assert_eq!(s, 200, "{m}");
    for key in [
        "net_profit",
        "total_trades",
        "winning_trades",
        "win_rate",
        "profit_factor",
        "max_drawdown_pct",
        "sharpe_ratio",
    ] {
        assert!(m[key].is_number(), "BacktestMetrics.{key}: {m}");
    }
    assert!(m["total_trades"].as_u64().unwrap() > 0, "{m}");
    let (_, stored) = send(&gw, "GET", &format!("/api/v1/strategies/{id}"), &token, None).await;
    assert_eq!(stored["backtest_results"], m);

    // A run (200) with the dashboard's shape; sessions list and detail; trades; chart.
    let run = json!({"strategy_id": id, "symbol": "EURUSD", "timeframe": "1h", "start_date": "2017-05-01",
                     "end_date": "2017-12-31", "initial_balance": 10000, "commission": 7, "slippage": 0.00002});
    let (s, r) = send(&gw, "POST", "/api/v1/backtest/run", &token, Some(run.clone())).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "completed");
    let session = r["session_id"].as_str().unwrap().to_owned();
    let trades = r["total_trades"].as_u64().unwrap();
    assert!(trades > 5, "{r}");
    assert!(r["trades"].as_array().unwrap().len() <= 50);
    assert!(r["equity_curve"].as_array().unwrap().len() <= 100);
    assert_eq!(r["winning_trades"].as_u64().unwrap() + r["losing_trades"].as_u64().unwrap(), trades);
    assert!(r["statistics"]["sharpe_ratio"].is_number() || r["statistics"]["sharpe_ratio"].is_null());
    let first = &r["trades"][0];
    for key in ["symbol", "order_type", "entry_price", "exit_price", "profit", "exit_reason"] {
        assert!(first.get(key).is_some(), "trade lacks {key}: {first}");
    }
    let (s, sessions) = send(&gw, "GET", "/api/v1/backtest/sessions?limit=20", &token, None).await;
    assert_eq!(s, 200);
    let listed = &sessions[0];
    assert_eq!(listed["id"], session.as_str());
    assert_eq!(listed["start_date"], "2017-05-01");
    assert!(listed["result"]["trades"].is_null(), "the list has no trades: {listed}");
    let (s, detail) = send(&gw, "GET", &format!("/api/v1/backtest/sessions/{session}"), &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(detail["result"]["total_trades"], trades);
    let (s, t) =
        send(&gw, "GET", &format!("/api/v1/backtest/sessions/{session}/trades?limit=1000"), &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(t["trades"].as_array().unwrap().len() as u64, trades);
    let svg = http()
        .get(gw.url(&format!("/api/v1/backtest/sessions/{session}/chart.svg")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let text = svg.text().await.unwrap();
    assert!(text.starts_with("<svg") || text.starts_with("<?xml"), "{}", &text[..text.len().min(80)]);

    // Monte Carlo on the session's trades.
    let (s, mc) = send(
        &gw,
        "POST",
        &format!("/api/v1/backtest/sessions/{session}/monte-carlo"),
        &token,
        Some(json!({"simulations": 500, "method": "bootstrap", "seed": 7})),
    )
    .await;
    assert_eq!(s, 200, "{mc}");
    let fe = &mc["final_equity"];
    assert!(
        fe["p5"].as_f64().unwrap() <= fe["p50"].as_f64().unwrap()
            && fe["p50"].as_f64().unwrap() <= fe["p95"].as_f64().unwrap(),
        "{mc}"
    );

    // A small grid optimized as a job through the queue: 202, progress, merged results, heatmap.
    let mut opt = run.clone();
    opt["parameters"] = json!({"fast": {"min": 5, "max": 20, "step": 5}, "slow": {"min": 20, "max": 60, "step": 20}});
    opt["constraints"] = json!(["fast < slow"]);
    opt["objective"] = json!("net_profit");
    opt["chunk_size"] = json!(3);
    let (s, o) = send(&gw, "POST", "/api/v1/backtest/optimize", &token, Some(opt)).await;
    assert_eq!(s, 202, "{o}");
    let oid = o["id"].as_str().unwrap().to_owned();
    assert_eq!(o["combinations"], 12);
    assert!(o["chunks"].as_u64().unwrap() >= 2, "split across queue messages: {o}");
    let done = eventually(Duration::from_secs(60), || {
        let (gw, token, oid) = (&gw, &token, &oid);
        async move {
            let (s, v) = send(gw, "GET", &format!("/api/v1/backtest/optimize/{oid}"), token, None).await;
            assert_eq!(s, 200, "{v}");
            (v["status"] == "completed").then_some(v)
        }
    })
    .await
    .expect("the optimization completes");
    let best = done["results"].as_array().unwrap();
    assert!(!best.is_empty(), "{done}");
    assert!(best.iter().all(|r| r["params"]["fast"].as_f64() < r["params"]["slow"].as_f64()), "constraint: {done}");
    let scores: Vec<f64> = best.iter().filter_map(|r| r["objective"].as_f64()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
    let heat = http()
        .get(gw.url(&format!("/api/v1/backtest/optimize/{oid}/heatmap.svg?x=fast&y=slow")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(heat.status(), 200);

    // Another user sees none of it.
    let other = register(&gw, "other@example.com").await.unwrap();
    for path in [
        format!("/api/v1/strategies/{id}"),
        format!("/api/v1/backtest/sessions/{session}"),
        format!("/api/v1/backtest/optimize/{oid}"),
    ] {
        let (s, _) = send(&gw, "GET", &path, &other, None).await;
        assert_eq!(s, 404, "{path}");
    }
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn legacy_shapes_templates_generated_data_and_bad_input() {
    let gw = Gateway::start_with_env(&[], &env(&[])).await.expect("gateway");
    let token = register(&gw, "legacy@example.com").await.expect("register");

    // Legacy strategies: created 201 in their shape, listed with the public ones, mapped to rule strategies.
    let (s, l) = send(&gw, "POST", "/api/v1/backtest/strategies", &token,
                      Some(json!({"name": "MA", "strategy_type": "ma_crossover", "config": {"fast_period": 8, "slow_period": 21}, "is_public": true}))).await;
    assert_eq!(s, 201, "{l}");
    for key in ["id", "name", "description", "strategy_type", "config", "is_public", "created_at"] {
        assert!(l.get(key).is_some(), "BTStrategyResponse lacks {key}: {l}");
    }
    let legacy = l["id"].as_str().unwrap().to_owned();
    let other = register(&gw, "reader@example.com").await.unwrap();
    let (_, listed) = send(&gw, "GET", "/api/v1/backtest/strategies?include_public=true", &other, None).await;
    assert!(listed.as_array().unwrap().iter().any(|s| s["id"] == legacy.as_str()), "public strategies: {listed}");
    let (s, v) = send(
        &gw,
        "POST",
        "/api/v1/backtest/strategies",
        &token,
        Some(json!({"name": "bad", "strategy_type": "ma_crossover", "config": {"fast_period": -3}})),
    )
    .await;
    assert_eq!(s, 422, "{v}");

    // Generated data only when asked, labelled; stored data missing is a clear 400.
    let run = json!({"strategy_id": legacy, "start_date": "2024-01-01", "end_date": "2024-03-01"});
    let (s, v) = send(&gw, "POST", "/api/v1/backtest/run", &token, Some(run.clone())).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("no EURUSD H1 candles"), "{v}");
    let mut generated = run.clone();
    generated["data"] = json!("generated");
    let (s, v) = send(&gw, "POST", "/api/v1/backtest/run", &token, Some(generated)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"], "generated");

    // A public strategy runs for another user; a private one does not.
    let mut theirs = run.clone();
    theirs["data"] = json!("generated");
    let (s, v) = send(&gw, "POST", "/api/v1/backtest/run", &other, Some(theirs)).await;
    assert_eq!(s, 200, "{v}");

    // Bad input: reversed dates, malformed dates, unknown ids, bad timeframe, negative balance, huge grid.
    let cases = [
        (
            json!({"strategy_id": legacy, "start_date": "2024-03-01", "end_date": "2024-01-01", "data": "generated"}),
            400,
        ),
        (json!({"strategy_id": legacy, "start_date": "01/03/2024", "end_date": "2024-01-01"}), 400),
        (
            json!({"strategy_id": "0190f3a2-7b4c-7d1e-9f20-3a4b5c6d7e8f", "start_date": "2024-01-01", "end_date": "2024-02-01"}),
            404,
        ),
        (json!({"strategy_id": "not-a-uuid", "start_date": "2024-01-01", "end_date": "2024-02-01"}), 400),
        (json!({"strategy_id": legacy, "timeframe": "7h", "start_date": "2024-01-01", "end_date": "2024-02-01"}), 422),
        (
            json!({"strategy_id": legacy, "initial_balance": -5, "start_date": "2024-01-01", "end_date": "2024-02-01"}),
            422,
        ),
    ];
    for (body, want) in cases {
        let (s, v) = send(&gw, "POST", "/api/v1/backtest/run", &token, Some(body.clone())).await;
        assert_eq!(s.as_u16(), want, "{body} → {v}");
        assert!(v["detail"].is_string() || v["detail"].is_array(), "{v}");
    }
    let (s, v) = send(&gw, "POST", "/api/v1/backtest/optimize", &token, Some(json!({
        "strategy_id": legacy, "start_date": "2024-01-01", "end_date": "2024-02-01", "data": "generated",
        "parameters": {"fast_period": {"min": 1, "max": 100000, "step": 1}, "slow_period": {"min": 1, "max": 100000, "step": 1}}
    }))).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("combinations"), "{v}");

    // The ML templates: get, clone (201), clone again (400), and the EURUSD one the dashboard calls.
    let (s, t) = send(&gw, "GET", "/api/v1/strategies/templates/ml-profitable", &token, None).await;
    assert_eq!((s, &t["id"]), (StatusCode::OK, &json!("template")), "{t}");
    assert_eq!(t["name"], "ML Profitable Strategy (XGBoost)");
    let (s, c) = send(&gw, "POST", "/api/v1/strategies/templates/ml-profitable/clone", &token, None).await;
    assert_eq!(s, 201, "{c}");
    assert!(c["description"].as_str().unwrap().ends_with("(XAUUSD Only - trained exclusively on Gold data)"));
    let (s, c2) = send(&gw, "POST", "/api/v1/strategies/templates/ml-profitable/clone", &token, None).await;
    assert_eq!(s, 400, "{c2}");
    assert_eq!(c2["detail"], "You already have this strategy. Please edit the existing one or delete it first.");
    let (s, e) = send(&gw, "POST", "/api/v1/strategies/templates/ml-profitable-eurusd/clone", &token, None).await;
    assert_eq!(s, 201, "{e}");

    // Toggle, update only the fields sent, delete.
    let cid = c["id"].as_str().unwrap();
    let (s, t) =
        send(&gw, "PATCH", &format!("/api/v1/strategies/{cid}/toggle"), &token, Some(json!({"is_active": true}))).await;
    assert_eq!((s, &t["is_active"]), (StatusCode::OK, &json!(true)));
    let (s, u) =
        send(&gw, "PUT", &format!("/api/v1/strategies/{cid}"), &token, Some(json!({"description": "mine"}))).await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(
        (u["description"].as_str(), u["name"].as_str()),
        (Some("mine"), Some("ML Profitable Strategy (XGBoost)"))
    );
    let (s, d) = send(&gw, "DELETE", &format!("/api/v1/strategies/{cid}"), &token, None).await;
    assert_eq!((s, &d["deleted"]), (StatusCode::OK, &json!(cid)));
    let (s, _) = send(&gw, "GET", &format!("/api/v1/strategies/{cid}"), &token, None).await;
    assert_eq!(s, 404);
    gw.stop().await.unwrap();
}

/// A run over more bars than the synchronous budget is queued (202) and completed by the `backtest` worker; a
/// walk-forward analysis runs as one job and reports its windows and efficiency.
#[tokio::test]
async fn large_runs_are_queued_and_walk_forward_runs_as_a_job() {
    let Some(csv) = eurusd_csv() else { return };
    let gw =
        Gateway::start_with_env(&[], &env(&[("NUSATRADE_BACKTEST_SYNC_MAX_BARS", "1000")])).await.expect("gateway");
    let token = register(&gw, "queued@example.com").await.expect("register");
    upload_candles(&gw, &token, "EURUSD", "H1", csv).await;
    let (s, created) = send(&gw, "POST", "/api/v1/strategies", &token, Some(sma_cross())).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let run = json!({"strategy_id": id, "start_date": "2017-04-19", "end_date": "2018-02-07"});
    let (s, r) = send(&gw, "POST", "/api/v1/backtest/run", &token, Some(run.clone())).await;
    assert_eq!(s, 202, "5,000 bars exceed the budget of 1,000: {r}");
    assert_eq!(r["status"], "queued");
    let session = r["session_id"].as_str().unwrap().to_owned();
    let done = eventually(Duration::from_secs(60), || {
        let (gw, token, session) = (&gw, &token, &session);
        async move {
            let (_, v) = send(gw, "GET", &format!("/api/v1/backtest/sessions/{session}"), token, None).await;
            (v["status"] == "completed").then_some(v)
        }
    })
    .await
    .expect("the queued run completes");
    assert!(done["result"]["total_trades"].as_u64().unwrap() > 0, "{done}");
    assert_eq!(done["progress"], 100);

    let mut wf = run;
    wf["parameters"] = json!({"fast": {"values": [5, 10]}, "slow": {"values": [20, 40]}});
    wf["walk_forward"] = json!({"in_sample_bars": 1500, "out_of_sample_bars": 500});
    wf["objective"] = json!("return_pct");
    let (s, o) = send(&gw, "POST", "/api/v1/backtest/optimize", &token, Some(wf)).await;
    assert_eq!(s, 202, "{o}");
    assert_eq!(o["walk_forward"], true);
    let oid = o["id"].as_str().unwrap().to_owned();
    let done = eventually(Duration::from_secs(60), || {
        let (gw, token, oid) = (&gw, &token, &oid);
        async move {
            let (_, v) = send(gw, "GET", &format!("/api/v1/backtest/optimize/{oid}"), token, None).await;
            (v["status"] == "completed" || v["status"] == "failed").then_some(v)
        }
    })
    .await
    .expect("the walk-forward completes");
    assert_eq!(done["status"], "completed", "{done}");
    let windows = done["walk_forward"]["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 7, "(5000 - 1500) / 500 rolling windows: {done}");
    assert!(windows.iter().all(|w| w["params"]["fast"].is_number()), "{done}");
    gw.stop().await.unwrap();
}

/// A strategy backtested with an ML model's signals as its entry rule: a model trained by the gateway's worker,
/// referenced by the strategy (`strategy_id` on the model), and the run reading its signals (`model_id`); without a
/// model the run says what it needs.
#[tokio::test]
async fn an_ml_models_signals_drive_a_backtest() {
    let Some(csv) = eurusd_csv() else { return };
    let gw = Gateway::start_with_env(&[], &env(&[])).await.expect("gateway");
    let token = register(&gw, "mlbt@example.com").await.expect("register");
    upload_candles(&gw, &token, "EURUSD", "H1", csv).await;
    let strategy = json!({
        "name": "Follow the model",
        "parameters": [{"name": "threshold", "default_value": 0.55, "min": 0.5, "max": 0.9}],
        "entry_rules": [
            {"id": "long", "condition": "ml_signal == 1 AND ml_confidence >= threshold AND vol_regime_high == 0", "action": "BUY", "description": ""},
            {"id": "short", "condition": "ml_signal == -1 AND ml_confidence >= threshold", "action": "SELL", "description": ""}
        ],
        "exit_rules": [{"id": "sl", "condition": "hit_stop_loss", "action": "CLOSE", "description": ""}],
        "risk_management": {"stop_loss_type": "atr_based", "stop_loss_value": 1.5, "take_profit_type": "risk_reward", "take_profit_value": 1.5}
    });
    let (s, st) = send(&gw, "POST", "/api/v1/strategies", &token, Some(strategy)).await;
    assert_eq!(s, 201, "{st}");
    let sid = st["id"].as_str().unwrap().to_owned();
    let run = json!({"strategy_id": sid, "start_date": "2017-04-19", "end_date": "2018-02-07"});
    let (s, v) = send(&gw, "POST", "/api/v1/backtest/run", &token, Some(run.clone())).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("model_id"), "{v}");

    // A model that references the strategy (own strategies only; an unknown id is 404).
    let body = json!({"name": "GBDT", "model_type": "gradient_boosting", "symbol": "EURUSD", "timeframe": "H1",
                      "strategy_id": "0190f3a2-7b4c-7d1e-9f20-3a4b5c6d7e8f"});
    let (s, _) = send(&gw, "POST", "/api/v1/ml/models", &token, Some(body.clone())).await;
    assert_eq!(s, 404);
    let mut body = body;
    body["strategy_id"] = json!(sid);
    body["config"] = json!({"hyperparameters": {"iterations": 30, "max_depth": 3, "nbins": 64},
                            "label": {"kind": "binary", "horizon": 5, "threshold": 0.0},
                            "signal": {"min_confidence": 0.0}});
    let (s, model) = send(&gw, "POST", "/api/v1/ml/models", &token, Some(body)).await;
    assert_eq!(s, 201, "{model}");
    assert_eq!(model["strategy_id"], sid.as_str());
    let mid = model["id"].as_str().unwrap().to_owned();
    let (s, _) = send(&gw, "POST", &format!("/api/v1/ml/models/{mid}/train"), &token, Some(json!({}))).await;
    assert_eq!(s, 202);
    eventually(Duration::from_secs(180), || {
        let (gw, token, mid) = (&gw, &token, &mid);
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (_, st) = send(gw, "GET", &format!("/api/v1/ml/models/{mid}/status"), token, None).await;
            (st["training_status"] == "completed").then_some(())
        }
    })
    .await
    .expect("trained");
    // Its predictions take their levels from the strategy's risk management (ATR × 1.5 stop, 1.5 : 1 target).
    let (s, p) =
        send(&gw, "POST", &format!("/api/v1/ml/models/{mid}/predict"), &token, Some(json!({"symbol": "EURUSD"}))).await;
    assert_eq!(s, 200, "{p}");
    let p = &p["prediction"];
    assert!(p["strategy_validation"]["message"].as_str().unwrap().contains("Follow the model"), "{p}");
    let (entry, atr) = (p["entry_price"].as_f64().unwrap(), p["atr"].as_f64().unwrap());
    let (sl, tp) = (p["stop_loss"].as_f64().unwrap(), p["take_profit"].as_f64().unwrap());
    assert!(((entry - sl).abs() - 1.5 * atr).abs() < 1e-5, "stop at 1.5 ATR: {p}");
    assert!(((tp - entry).abs() - 1.5 * (entry - sl).abs()).abs() < 2e-5, "target at 1.5 R: {p}");
    let mut with_model = run;
    with_model["model_id"] = json!(mid);
    let (s, r) = send(&gw, "POST", "/api/v1/backtest/run", &token, Some(with_model)).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["total_trades"].as_u64().unwrap() > 0, "the model's signals open trades: {r}");
    gw.stop().await.unwrap();
}
