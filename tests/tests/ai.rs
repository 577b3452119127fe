//! The AI supervisor's computed answers end to end (issue 17, first part) over the real gateway: the analysis of a
//! symbol and the daily overview from the EURUSD sample uploaded as a dataset (`../shared/data/EURUSD.csv`; the
//! test prints why and passes without checking when absent), labelled as computed; recommendations for a trader
//! with no trades, wins only (the original divided by zero here) and losses only, each from their own trades.

use nusatrade_tests::{
    Gateway, TEST_ENV, env_without_llm, eurusd_csv, http, online_trader, register, round_trip, send, upload_candles,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn recommendations(gw: &Gateway, token: &str) -> Value {
    let (s, r) = send(gw, "GET", "/api/v1/ai/recommendations", token, None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["computed"], true);
    for key in [
        "recommendations",
        "trade_stats",
        "trading_style",
        "avg_trade_duration_hours",
        "session_preferences",
        "generated_at",
    ] {
        assert!(r.get(key).is_some(), "{key} missing: {r}");
    }
    r
}

#[tokio::test]
async fn recommendations_for_no_trades_wins_only_and_losses_only() {
    let gw = Gateway::start_with_env(&[], TEST_ENV).await.expect("gateway");
    let token = register(&gw, "fresh@example.com").await.unwrap();
    let r = recommendations(&gw, &token).await;
    assert_eq!(
        (r["trading_style"].as_str(), r["trade_stats"]["total_trades"].as_u64()),
        (Some("new_trader"), Some(0)),
        "{r}"
    );

    let (winner, _, conn) = online_trader(&gw, "winner@example.com").await.unwrap();
    round_trip(&gw, &winner, &conn, 1.1000, 1.1020).await;
    round_trip(&gw, &winner, &conn, 1.1010, 1.1015).await;
    let r = recommendations(&gw, &winner).await;
    assert_eq!(r["trade_stats"]["total_trades"], 2, "{r}");
    assert_eq!(r["trade_stats"]["win_rate"].as_f64(), Some(100.0), "wins only: no division by zero: {r}");
    assert!(r["trade_stats"]["total_pnl"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["review"]["profit_factor"].is_null(), "no losing trade: no profit factor: {r}");

    let (loser, _, conn) = online_trader(&gw, "loser@example.com").await.unwrap();
    round_trip(&gw, &loser, &conn, 1.1000, 1.0980).await;
    let r = recommendations(&gw, &loser).await;
    assert_eq!(
        (r["trade_stats"]["total_trades"].as_u64(), r["trade_stats"]["win_rate"].as_f64()),
        (Some(1), Some(0.0)),
        "{r}"
    );
    assert!(r["trade_stats"]["total_pnl"].as_f64().unwrap() < 0.0, "{r}");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn analyses_are_computed_from_the_stored_candles() {
    let gw = Gateway::start_with_env(&[], &env_without_llm()).await.expect("gateway");
    let token = register(&gw, "analyst@example.com").await.unwrap();
    // Nothing stored: a clear 400 for a symbol, an overview that says what to upload.
    let (s, v) = send(&gw, "GET", "/api/v1/ai/analysis/EURUSD", &token, None).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("POST /api/v1/ml/datasets"), "{v}");
    let (s, d) = send(&gw, "GET", "/api/v1/ai/analysis/daily", &token, None).await;
    assert_eq!(s, 200, "{d}");
    assert!(d["summary"].as_str().unwrap().contains("Upload"), "{d}");
    let (s, _) = send(&gw, "GET", "/api/v1/ai/analysis/NOTASYMBOL", &token, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let Some(csv) = eurusd_csv() else { return };
    upload_candles(&gw, &token, "EURUSD", "H1", csv).await;
    let (s, a) = send(&gw, "GET", "/api/v1/ai/analysis/eurusd", &token, None).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!((a["symbol"].as_str(), a["computed"].as_bool()), (Some("EURUSD"), Some(true)));
    let text = a["analysis"].as_str().unwrap();
    assert!(text.starts_with("Computed from your data"), "{text}");
    assert!(text.contains("RSI"), "{text}");
    let close = a["details"]["close"].as_f64().or_else(|| a["details"]["last_close"].as_f64());
    assert_eq!(close, Some(1.22904), "the newest stored close: {a}");
    let (s, d) = send(&gw, "GET", "/api/v1/ai/analysis/daily", &token, None).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["symbols"][0]["symbol"], "EURUSD", "{d}");
    // Another user has no data of this one.
    let other = register(&gw, "other-analyst@example.com").await.unwrap();
    let (s, _) = send(&gw, "GET", "/api/v1/ai/analysis/EURUSD", &other, None).await;
    assert_eq!(s, 400, "the dataset is the first user's own");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn chat_conversations_and_strategy_generation_without_a_model() {
    let gw = Gateway::start_with_env(&[], &env_without_llm()).await.expect("gateway");
    let token = register(&gw, "chatter@example.com").await.unwrap();
    // A new conversation: the computed help, titled after the message (the original's 50-character rule).
    let long = "Hello supervisor, what can you tell me about trading forex with discipline?";
    let (s, r) = send(&gw, "POST", "/api/v1/ai/chat", &token, Some(json!({"message": long}))).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["tokens_used"], 0);
    assert!(r["reply"].as_str().unwrap().contains("No language model is configured"), "{r}");
    let conv = r["conversation_id"].as_str().unwrap().to_owned();
    // Follow-ups in the same conversation, answered from the caller's data.
    let (s, r) = send(
        &gw,
        "POST",
        "/api/v1/ai/chat",
        &token,
        Some(json!({"message": "Show my open positions", "conversation_id": conv})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert!(r["reply"].as_str().unwrap().contains("no open positions"), "{r}");
    let (s, r) = send(
        &gw,
        "POST",
        "/api/v1/ai/chat",
        &token,
        Some(json!({"message": "how is gbpusd doing?", "conversation_id": conv})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert!(r["reply"].as_str().unwrap().contains("No GBPUSD H1 candles"), "{r}");
    let (s, list) = send(&gw, "GET", "/api/v1/ai/conversations?limit=20", &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(list[0]["id"], conv.as_str());
    assert_eq!(list[0]["title"], format!("{}...", &long[..50]));
    assert_eq!(list[0]["message_count"], 6);
    let (s, msgs) = send(&gw, "GET", &format!("/api/v1/ai/conversations/{conv}"), &token, None).await;
    assert_eq!(s, 200);
    let roles: Vec<&str> = msgs.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "user", "assistant"]);
    assert_eq!(msgs[2]["content"], "Show my open positions");
    // Another user's conversation is not found; bad input is refused.
    let other = register(&gw, "intruder@example.com").await.unwrap();
    let (s, _) = send(&gw, "GET", &format!("/api/v1/ai/conversations/{conv}"), &other, None).await;
    assert_eq!(s, 404);
    let (s, _) =
        send(&gw, "POST", "/api/v1/ai/chat", &other, Some(json!({"message": "hi", "conversation_id": conv}))).await;
    assert_eq!(s, 404);
    let (s, _) = send(&gw, "POST", "/api/v1/ai/chat", &token, Some(json!({"message": "x".repeat(4_001)}))).await;
    assert_eq!(s, 422);
    let (s, _) =
        send(&gw, "POST", "/api/v1/ai/chat", &token, Some(json!({"message": "hi", "conversation_id": "nope"}))).await;
    assert_eq!(s, 400);
    let (s, d) = send(&gw, "DELETE", &format!("/api/v1/ai/conversations/{conv}"), &token, None).await;
    assert_eq!((s, &d["deleted"]), (StatusCode::OK, &json!(conv)));
    let (s, _) = send(&gw, "GET", &format!("/api/v1/ai/conversations/{conv}"), &token, None).await;
    assert_eq!(s, 404);

    // Strategy generation: the fallback, valid as a strategy, saved and backtested from the answer.
    let body = json!({"prompt": "a trend strategy for EURUSD", "risk_profile": "aggressive", "preferred_indicators": ["MACD"]});
    let (s, g) = send(&gw, "POST", "/api/v1/ai/generate-strategy", &token, Some(body.clone())).await;
    assert_eq!(s, 200, "{g}");
    assert_eq!(g["strategy"]["strategy_type"], "ai_generated");
    assert_eq!(g["strategy"]["risk_management"]["take_profit_value"], 3.0, "aggressive R:R");
    assert!(g["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("MACD")), "{g}");
    let (s, saved) = send(&gw, "POST", "/api/v1/strategies", &token, Some(g["strategy"].clone())).await;
    assert_eq!(s, 201, "{saved}");
    let (s, v) =
        send(&gw, "POST", &format!("/api/v1/strategies/{}/validate", saved["id"].as_str().unwrap()), &token, None)
            .await;
    assert_eq!((s, &v["valid"]), (StatusCode::OK, &json!(true)), "{v}");
    let run =
        json!({"strategy_id": saved["id"], "start_date": "2024-01-01", "end_date": "2024-02-01", "data": "generated"});
    let (s, r) = send(&gw, "POST", "/api/v1/backtest/run", &token, Some(run)).await;
    assert_eq!(s, 200, "{r}");

    // The stream: progress frames, then the same result.
    let resp = http()
        .post(gw.url("/api/v1/ai/generate-strategy-stream"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events, ["progress", "progress", "result"], "{text}");
    assert!(text.contains("No language model configured"), "{text}");
    let result: Value =
        serde_json::from_str(text.lines().filter_map(|l| l.strip_prefix("data: ")).next_back().unwrap()).unwrap();
    assert_eq!(result["strategy"]["name"], g["strategy"]["name"]);
    let (s, _) = send(&gw, "POST", "/api/v1/ai/generate-strategy-stream", &token, Some(json!({"prompt": ""}))).await;
    assert_eq!(s, 422, "bad input is answered before the stream");
    gw.stop().await.unwrap();
}
