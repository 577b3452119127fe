//! Admin settings end to end over the real gateway (issue 17): the admin role granted by the operator's CLI
//! (`nusatrade admin grant`, with the gateway stopped: the data dir is one process's), the settings round trip with an
//! encrypted value (shown as `***ENCRYPTED***`; its plaintext in neither the store's files nor the logs), the category
//! filter, 404s, delete and put again (active again: the original's bug fixed), the audit trail, a `max_lot_size`
//! change refusing a larger order once the settings' TTL has passed, `test-redis`, `test-llm` with nothing
//! configured, and the refusals: 401 without a token, 403 for a trader.

use std::time::Duration;

use nusatrade_tests::{Gateway, TEST_ENV, TestConnector, binary, http, online_trader, place, register, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A secret no file or log line may contain.
const PLAINTEXT: &str = "sk-e2e-PLAINTEXT-7f3a9c";
/// A plain value that must be found in the store's files (the search can see what is there).
const VISIBLE: &str = "e2e-model-visible-41d2";
const TTL_SECS: u64 = 1;

fn env() -> Vec<(&'static str, &'static str)> {
    let mut env = TEST_ENV.to_vec();
    env.push(("NUSATRADE_SETTINGS_TTL_SECS", "1"));
    // nothing configured for the language model, whatever the machine's environment says
    for var in ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "NUSATRADE_LLM_PROVIDER", "NUSATRADE_LLM_BASE_URL"] {
        env.push((var, ""));
    }
    env
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary().unwrap()).args(args).output().expect("run nusatrade")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn put(gw: &Gateway, token: &str, key: &str, body: Value) -> (StatusCode, Value) {
    send(gw, "PUT", &format!("/api/v1/admin/settings/{key}"), token, Some(body)).await
}

#[tokio::test]
async fn admin_settings_end_to_end() {
    let env = env();
    let gw = Gateway::start_with_env(&[], &env).await.expect("gateway");
    let admin = register(&gw, "root@example.com").await.unwrap();
    let trader = register(&gw, "trader@example.com").await.unwrap();

    // Refusals before any grant: no token, a trader.
    let r = http().get(gw.url("/api/v1/admin/settings")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    for token in [&admin, &trader] {
        let (s, b) = send(&gw, "GET", "/api/v1/admin/settings", token, None).await;
        assert_eq!((s, &b["detail"]), (StatusCode::FORBIDDEN, &json!("Admin access required")));
    }

    // The operator grants the role with the gateway stopped; sessions survive the restart.
    let dir = gw.stop().await.unwrap();
    let data = dir.path().join("data");
    let out = cli(&["admin", "grant", "root@example.com", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is now an admin"));
    let gw = Gateway::start_in(dir, &[], &env).await.expect("gateway again");

    // test-llm with nothing configured; test-redis says no Redis is used.
    let (s, b) = send(&gw, "POST", "/api/v1/admin/test-llm", &admin, None).await;
    assert_eq!(
        (s, &b["success"], &b["message"]),
        (StatusCode::OK, &json!(false), &json!("LLM API key not configured"))
    );
    let (s, b) = send(&gw, "POST", "/api/v1/admin/test-redis", &admin, None).await;
    assert_eq!((s, &b["success"]), (StatusCode::OK, &json!(true)), "{b}");
    assert!(b["message"].as_str().unwrap().contains("No Redis is used"), "{b}");
    let (s, _) = send(&gw, "POST", "/api/v1/admin/test-redis", &trader, None).await;
    assert_eq!(s, 403);

    // An encrypted value: stored sealed, shown masked.
    let body = json!({"value": PLAINTEXT, "category": "ai_provider", "is_encrypted": true,
        "description": "llm_api_key configuration"});
    let (s, b) = put(&gw, &admin, "llm_api_key", body).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"message": "Setting updated successfully", "key": "llm_api_key"})));
    let (s, b) = send(&gw, "GET", "/api/v1/admin/settings/llm_api_key", &admin, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["value"], &b["is_encrypted"], &b["category"]),
        (&json!("***ENCRYPTED***"), &json!(true), &json!("ai_provider"))
    );
    assert!(b["updated_at"].as_str().unwrap().ends_with('Z') && b["updated_by"].is_string(), "{b}");
    // configured now, at an endpoint where nothing listens: the check runs and says it failed (still a 200)
    let (s, _) =
        put(&gw, &admin, "llm_base_url", json!({"value": "http://127.0.0.1:9/v1", "category": "ai_provider"})).await;
    assert_eq!(s, 200);
    let (s, b) = send(&gw, "POST", "/api/v1/admin/test-llm", &admin, None).await;
    assert!(s == 200 && b["success"] == false && b["message"].is_string(), "{b}");
    assert!(!b.to_string().contains(PLAINTEXT), "{b}");
    let (s, _) = send(&gw, "DELETE", "/api/v1/admin/settings/llm_base_url", &admin, None).await;
    assert_eq!(s, 200);

    // More settings, the category filter, bad input.
    for (key, value, category) in [("llm_model", VISIBLE, "ai_provider"), ("email_from", "ops@example.com", "email")] {
        let (s, b) = put(&gw, &admin, key, json!({"value": value, "category": category})).await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = send(&gw, "GET", "/api/v1/admin/settings?category=ai_provider", &admin, None).await;
    assert_eq!(s, 200);
    let keys: Vec<&str> = b.as_array().unwrap().iter().map(|x| x["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["llm_api_key", "llm_model"]);
    let (_, all) = send(&gw, "GET", "/api/v1/admin/settings", &admin, None).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert!(!all.to_string().contains(PLAINTEXT));
    let (s, b) = send(&gw, "GET", "/api/v1/admin/settings?category=secrets", &admin, None).await;
    assert_eq!((s, &b["detail"][0]["loc"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!(["query", "category"])));
    let (s, b) = put(&gw, &admin, "max_lot_size", json!({"value": "0.5", "category": "nonsense"})).await;
    assert_eq!((s, &b["detail"][0]["type"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("enum")));
    let (s, b) = put(&gw, &admin, "max_lot_size", json!({"value": "lots", "category": "trading"})).await;
    assert_eq!((s, &b["detail"][0]["loc"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!(["body", "value"])));
    let (s, _) = put(&gw, &admin, "bad%20key", json!({"value": "x", "category": "general"})).await;
    assert_eq!(s, 422);
    let (s, _) = put(&gw, &trader, "max_lot_size", json!({"value": "0.5", "category": "trading"})).await;
    assert_eq!(s, 403, "a trader cannot write settings");

    // 404s, delete and put again.
    let (s, b) = send(&gw, "GET", "/api/v1/admin/settings/nope", &admin, None).await;
    assert_eq!((s, b), (StatusCode::NOT_FOUND, json!({"detail": "Setting 'nope' not found"})));
    let (s, _) = send(&gw, "DELETE", "/api/v1/admin/settings/nope", &admin, None).await;
    assert_eq!(s, 404);
    let (s, b) = send(&gw, "DELETE", "/api/v1/admin/settings/email_from", &admin, None).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"message": "Setting deleted successfully"})));
    let (s, _) = send(&gw, "GET", "/api/v1/admin/settings/email_from", &admin, None).await;
    assert_eq!(s, 404);
    let (s, _) = put(&gw, &admin, "email_from", json!({"value": "desk@example.com", "category": "email"})).await;
    assert_eq!(s, 200);
    let (s, b) = send(&gw, "GET", "/api/v1/admin/settings/email_from", &admin, None).await;
    assert_eq!((s, &b["value"]), (StatusCode::OK, &json!("desk@example.com")), "a put after a delete reactivates");

    // max_lot_size: a 1-lot order goes through, then is refused once the setting is in effect.
    let (token, _conn, connector): (String, String, TestConnector) =
        online_trader(&gw, "lots@example.com").await.unwrap();
    connector.set_price("EURUSD", 1.1);
    let order = json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 1.0, "price": 1.1});
    place(&gw, &token, order.clone()).await;
    let (s, _) = put(&gw, &admin, "max_lot_size", json!({"value": "0.5", "category": "trading"})).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(TTL_SECS * 1000 + 300)).await;
    let (s, b) = send(&gw, "POST", "/api/v1/trading/orders", &token, Some(order)).await;
    assert_eq!((s, &b["detail"]), (StatusCode::BAD_REQUEST, &json!("Lot size cannot exceed 0.5")));
    place(&gw, &token, json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.5, "price": 1.1})).await;

    // The audit trail: every change, newest first, never a value.
    let (s, trail) = send(&gw, "GET", "/api/v1/admin/audit?limit=50", &admin, None).await;
    assert_eq!(s, 200, "{trail}");
    let seen: Vec<(String, String)> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["key"].as_str().unwrap().to_owned()))
        .collect();
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, k)| ((*a).to_owned(), (*k).to_owned())).collect::<Vec<_>>();
    assert_eq!(
        seen,
        pairs(&[
            ("created", "max_lot_size"),
            ("reactivated", "email_from"),
            ("deleted", "email_from"),
            ("created", "email_from"),
            ("created", "llm_model"),
            ("deleted", "llm_base_url"),
            ("created", "llm_base_url"),
            ("created", "llm_api_key"),
        ])
    );
    let first = &trail[7];
    assert_eq!(
        (&first["actor_email"], &first["is_encrypted"], &first["category"]),
        (&json!("root@example.com"), &json!(true), &json!("ai_provider"))
    );
    assert!(!trail.to_string().contains(PLAINTEXT));
    let (s, _) = send(&gw, "GET", "/api/v1/admin/audit?limit=0", &admin, None).await;
    assert_eq!(s, 422);

    // Neither the logs nor the store's files hold the plaintext; they do hold the sealed value and the plain one.
    let log = gw.log();
    assert!(log.contains("setting changed"), "the changes are logged (key, category, who)");
    assert!(!log.contains(PLAINTEXT), "the plaintext reached the log");
    let dir = gw.stop().await.unwrap();
    let data = dir.path().join("data");
    let mut files = Vec::new();
    for name in ["store.redb", "store.wal"] {
        if let Ok(bytes) = std::fs::read(data.join(name)) {
            files.extend(bytes);
        }
    }
    assert!(contains(&files, VISIBLE), "the search sees stored values");
    assert!(contains(&files, "nt-sealed.v1.local."), "the sealed value is stored");
    assert!(!contains(&files, PLAINTEXT), "the plaintext is stored");
    assert_eq!(std::fs::read(data.join("settings.key")).unwrap().len(), 32, "the data dir's master key");
}
