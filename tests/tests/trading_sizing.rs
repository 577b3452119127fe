//! Position sizing end to end (issue 4): the real gateway binary over HTTP, a registered user's
//! bearer token, the three calculator routes.

use nusatrade_tests::{Gateway, http};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ENV: &[(&str, &str)] = &[
    ("NUSATRADE_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e-secret"),
    ("NUSATRADE_ARGON2_MEMORY_KIB", "8192"),
    ("NUSATRADE_ARGON2_ITERATIONS", "1"),
    ("NUSATRADE_ARGON2_PARALLELISM", "1"),
    ("NUSATRADE_RATE_LIMIT_AUTH_REQUESTS", "1000"),
    ("NUSATRADE_RATE_LIMIT_REQUESTS", "1000"),
];

const CALC: &str = "/api/v1/trading/position-size/calculate";
const SLTP: &str = "/api/v1/trading/calculate-sl-tp";
const PROFILES: &str = "/api/v1/trading/risk-profiles";

async fn token(gw: &Gateway) -> String {
    let r = http()
        .post(gw.url("/api/v1/auth/register"))
        .json(&json!({"email": "sizer@example.com", "password": "Str0ng!pass", "full_name": "Sizer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    b["access_token"].as_str().expect("access_token").to_owned()
}

async fn post(gw: &Gateway, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = http().post(gw.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn calc_body(symbol: &str, entry: f64, sl: f64) -> Value {
    json!({"symbol": symbol, "account_balance": 10000, "risk_percent": 1, "entry_price": entry, "stop_loss": sl})
}

#[tokio::test]
async fn position_size_sl_tp_and_profiles_through_the_gateway() {
    let gw = Gateway::start_with_env(&[], ENV).await.unwrap();
    let tok = token(&gw).await;
    let t = Some(tok.as_str());

    // EURUSD on a USD account: 50 pips, $10/pip/lot → 0.2 lots; margin 0.2 × 100 000 EUR / 100 at 1.085.
    let (s, b) = post(&gw, CALC, t, calc_body("EURUSD", 1.085, 1.08)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["lot_size"], &b["risk_amount"], &b["stop_loss_pips"], &b["margin_required"]),
        (&json!(0.2), &json!(100.0), &json!(50.0), &json!(217.0))
    );
    assert_eq!((&b["pip_value"], &b["capped"], &b["account_currency"]), (&json!(2.0), &json!(false), &json!("USD")));

    // USDJPY: pip 0.01, pip value converted from JPY at the entry price (1000 JPY / 150 per lot).
    let (s, b) = post(&gw, CALC, t, calc_body("USDJPY", 150.0, 149.5)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["lot_size"], &b["stop_loss_pips"], &b["pip_value_per_lot"]),
        (&json!(0.3), &json!(50.0), &json!(6.6667))
    );
    assert_eq!(b["margin_required"], 300.0);

    // XAUUSD: 100 oz per lot, pip 0.01 → $1/pip/lot; 10 $ stop → 1000 pips → 0.1 lots.
    let mut body = calc_body("XAUUSD", 2000.0, 1990.0);
    body["leverage"] = json!(200);
    let (s, b) = post(&gw, CALC, t, body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["lot_size"], &b["stop_loss_pips"], &b["margin_required"]),
        (&json!(0.1), &json!(1000.0), &json!(100.0))
    );

    // Bad input: entry == SL (was a 500 in the original), unknown symbol, mistyped and malformed bodies.
    let (s, b) = post(&gw, CALC, t, calc_body("EURUSD", 1.085, 1.085)).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "stop_loss"]));
    let (s, b) = post(&gw, CALC, t, calc_body("FOOBAR", 1.085, 1.08)).await;
    assert_eq!((s.as_u16(), b), (400, json!({"detail": "Symbol FOOBAR is not supported"})));
    let mut body = calc_body("EURUSD", 1.085, 1.08);
    body["risk_percent"] = json!("NaN");
    body["account_balance"] = json!(-5);
    let (s, b) = post(&gw, CALC, t, body).await;
    assert_eq!(s, 422);
    let locs: Vec<&Value> = b["detail"].as_array().unwrap().iter().map(|e| &e["loc"][1]).collect();
    assert_eq!(locs, [&json!("account_balance"), &json!("risk_percent")]);
    let r = http()
        .post(gw.url(CALC))
        .bearer_auth(&tok)
        .header("content-type", "application/json")
        .body(r#"{"symbol": "EURUSD", "account_balance": NaN}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["detail"][0]["type"], "json_invalid");

    // No token, or a bad one: 401 on every route.
    let (s, b) = post(&gw, CALC, None, calc_body("EURUSD", 1.085, 1.08)).await;
    assert_eq!((s.as_u16(), b), (401, json!({"detail": "Not authenticated"})));
    let (s, _) = post(&gw, SLTP, Some("not-a-jwt"), json!({})).await;
    assert_eq!(s, 401);
    let r = http().get(gw.url(PROFILES)).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // SL/TP with the instrument's pips and digits.
    let (s, b) = post(
        &gw,
        SLTP,
        t,
        json!({"symbol": "USDJPY", "direction": "SELL", "entry_price": 150.0,
        "sl_type": "fixed_pips", "sl_value": 30, "tp_type": "risk_reward", "tp_value": 2}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"stop_loss": 150.3, "take_profit": 149.4, "sl_distance_pips": 30.0, "tp_distance_pips": 60.0,
               "risk_reward_ratio": 2.0, "symbol": "USDJPY"})
    );
    let (s, b) = post(&gw, SLTP, t, json!({"symbol": "EURUSD", "direction": "LONG", "entry_price": 1.1})).await;
    assert_eq!((s.as_u16(), &b["detail"][0]["loc"]), (422, &json!(["body", "direction"])));

    // Risk profiles: numbers, and both `type` and `trailing_type`.
    let r = http().get(gw.url(PROFILES)).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let b: Value = r.json().await.unwrap();
    for name in ["conservative", "moderate", "aggressive"] {
        let p = &b["profiles"][name];
        assert!(p["sl_value"].is_number() && p["risk_per_trade_percent"].is_number(), "{p}");
        let ts = &p["trailing_stop"];
        assert!(ts["type"].is_string() && ts["type"] == ts["trailing_type"], "{ts}");
    }
    assert_eq!(b["profiles"]["aggressive"]["trailing_stop"]["trailing_type"], "fixed_pips");
    assert_eq!(b["profiles"]["moderate"]["risk_per_trade_percent"], 2.0);
}
