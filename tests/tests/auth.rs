//! Accounts end to end: the real gateway binary over HTTP, mails read from the local mailer's files.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use nusatrade_tests::{Gateway, http, mailed_token, totp_code};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-e2e-secret";
const PW: &str = "Str0ng!pass";

/// Cheap hashing and generous credential limits, so tests are fast and not rate limited.
const ENV: &[(&str, &str)] = &[
    ("NUSATRADE_JWT_SECRET", SECRET),
    ("NUSATRADE_ARGON2_MEMORY_KIB", "8192"),
    ("NUSATRADE_ARGON2_ITERATIONS", "1"),
    ("NUSATRADE_ARGON2_PARALLELISM", "1"),
    ("NUSATRADE_RATE_LIMIT_AUTH_REQUESTS", "1000"),
    ("NUSATRADE_RATE_LIMIT_REQUESTS", "1000"),
    ("NUSATRADE_PUBLIC_URL", "http://app.test"),
];

async fn gateway() -> Gateway {
    Gateway::start_with_env(&[], ENV).await.unwrap()
}

async fn post(gw: &Gateway, path: &str, body: Value) -> (StatusCode, Value) {
    let r = http().post(gw.url(path)).json(&body).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn post_empty(gw: &Gateway, path: &str) -> (StatusCode, Value) {
    let r = http().post(gw.url(path)).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn get(gw: &Gateway, path: &str, token: &str) -> (StatusCode, Value) {
    let r = http().get(gw.url(path)).bearer_auth(token).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn authed(gw: &Gateway, method: reqwest::Method, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let r = http().request(method, gw.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn register(gw: &Gateway, email: &str) -> Value {
    let (s, b) =
        post(gw, "/api/v1/auth/register", json!({"email": email, "password": PW, "full_name": "Tester"})).await;
    assert_eq!(s, 201, "{b}");
    b
}

async fn login(gw: &Gateway, email: &str) -> Value {
    let (s, b) = post(gw, "/api/v1/auth/login", json!({"email": email, "password": PW})).await;
    assert_eq!(s, 200, "{b}");
    b
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}")).to_owned()
}

#[tokio::test]
async fn register_verify_login_refresh_reuse_logout() {
    let gw = gateway().await;
    let reg = register(&gw, "Ana@Example.com").await;
    assert_eq!(reg["email"], "ana@example.com");
    assert_eq!(reg["role"], "trader");
    assert_eq!(reg["subscription_tier"], "free");
    assert_eq!(reg["email_verified"], false);
    assert_eq!(reg["token_type"], "bearer");
    assert!(reg.get("password_hash").is_none());

    // bad input: duplicate, weak password, malformed and mistyped JSON, bad e-mail
    let (st, b) = post(&gw, "/api/v1/auth/register", json!({"email": "ana@example.com", "password": PW})).await;
    assert_eq!((st.as_u16(), b), (400, json!({"detail": "Email already registered"})));
    let (st, b) =
        post(&gw, "/api/v1/auth/register", json!({"email": "bo@example.com", "password": "abcdefgh1!"})).await;
    // a weak password is an invalid field like any other: 422 in the validation-list shape (never echoing it)
    assert_eq!(st.as_u16(), 422);
    assert_eq!(b["detail"][0]["loc"], json!(["body", "password"]));
    assert_eq!(b["detail"][0]["type"], "value_error");
    assert_eq!(b["detail"][0]["msg"], "Password must contain at least one uppercase letter");
    assert!(!b.to_string().contains("abcdefgh1!"), "{b}");
    let r = http()
        .post(gw.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["detail"][0]["type"], "json_invalid");
    let (st, b) = post(&gw, "/api/v1/auth/register", json!({"email": 5, "password": PW})).await;
    assert_eq!(st, 422, "{b}");
    let (st, b) = post(&gw, "/api/v1/auth/register", json!({"email": "not-an-email", "password": PW})).await;
    assert_eq!(st, 422);
    assert_eq!(b["detail"][0]["loc"], json!(["body", "email"]));
    let (st, _) = post(
        &gw,
        "/api/v1/auth/register",
        json!({"email": "cy@example.com", "password": PW, "full_name": "x".repeat(101)}),
    )
    .await;
    assert_eq!(st, 422);

    // verify the e-mail with the mailed token (query form)
    let token = mailed_token(&gw, "ana@example.com", "Confirm");
    let (st, b) = post_empty(&gw, &format!("/api/v1/auth/verify-email?token={token}")).await;
    assert_eq!(st, 200, "{b}");

    let tokens = login(&gw, "ana@example.com").await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["user_id"], reg["id"]);
    let (st, me) = get(&gw, "/api/v1/users/me", &s(&tokens, "access_token")).await;
    assert_eq!(st, 200);
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["full_name"], "Tester");
    let (st, me2) = get(&gw, "/api/v1/auth/me", &s(&tokens, "access_token")).await;
    assert_eq!((st.as_u16(), &me2), (200, &me));

    // refresh: the dashboard's query form, then the connector's JSON form
    let (st, r1) =
        post_empty(&gw, &format!("/api/v1/auth/refresh?refresh_token={}", s(&tokens, "refresh_token"))).await;
    assert_eq!(st, 200, "{r1}");
    assert_eq!(r1["user_id"], reg["id"]);
    let (st, r2) = post(&gw, "/api/v1/auth/refresh", json!({"refresh_token": s(&r1, "refresh_token")})).await;
    assert_eq!(st, 200, "{r2}");
    let (st, b) = post_empty(&gw, "/api/v1/auth/refresh").await;
    assert_eq!(st, 422);
    assert_eq!(b["detail"][0]["loc"], json!(["query", "refresh_token"]));
    assert_eq!(get(&gw, "/api/v1/users/me", &s(&r2, "access_token")).await.0, 200);

    // reuse of a rotated refresh token revokes the session: the newest tokens die too
    let (st, b) = post(&gw, "/api/v1/auth/refresh", json!({"refresh_token": s(&tokens, "refresh_token")})).await;
    assert_eq!(st, 401);
    assert!(s(&b, "detail").contains("reuse"), "{b}");
    assert_eq!(get(&gw, "/api/v1/users/me", &s(&r2, "access_token")).await.0, 401);
    assert_eq!(post(&gw, "/api/v1/auth/refresh", json!({"refresh_token": s(&r2, "refresh_token")})).await.0, 401);

    // logout revokes the session of the bearer token
    let fresh = login(&gw, "ana@example.com").await;
    let r = http().post(gw.url("/api/v1/auth/logout")).bearer_auth(s(&fresh, "access_token")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], "logged_out");
    assert_eq!(get(&gw, "/api/v1/users/me", &s(&fresh, "access_token")).await.0, 401);
    assert_eq!(post(&gw, "/api/v1/auth/refresh", json!({"refresh_token": s(&fresh, "refresh_token")})).await.0, 401);
    // the registration session is separate and still alive
    assert_eq!(get(&gw, "/api/v1/users/me", &s(&reg, "access_token")).await.0, 200);

    // the activity trail shows it all
    let (st, act) = get(&gw, "/api/v1/users/activity?limit=100", &s(&reg, "access_token")).await;
    assert_eq!(st, 200);
    let events: Vec<&str> = act["items"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    for ev in
        ["register", "email_verified", "login_succeeded", "token_refreshed", "refresh_token_reuse_detected", "logout"]
    {
        assert!(events.contains(&ev), "{ev} in {events:?}");
    }
    let (_, page) = get(&gw, "/api/v1/users/activity?limit=2", &s(&reg, "access_token")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = s(&page, "next_cursor");
    let (st, next) =
        get(&gw, &format!("/api/v1/users/activity?limit=2&cursor={cursor}"), &s(&reg, "access_token")).await;
    assert_eq!(st, 200);
    assert_ne!(next["items"][0], page["items"][0]);
    assert_eq!(get(&gw, "/api/v1/users/activity?cursor=garbage", &s(&reg, "access_token")).await.0, 400);
}

#[tokio::test]
async fn five_failures_lock_the_account_with_retry_after() {
    let gw = gateway().await;
    register(&gw, "lock@example.com").await;
    for remaining in (0..5).rev() {
        let (st, b) =
            post(&gw, "/api/v1/auth/login", json!({"email": "lock@example.com", "password": "Wrong!pass1"})).await;
        assert_eq!(st, 401);
        assert_eq!(b["detail"], format!("Incorrect email or password. {remaining} attempts remaining."));
    }
    let r = http()
        .post(gw.url("/api/v1/auth/login"))
        .json(&json!({"email": "lock@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((890..=900).contains(&retry), "{retry}");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["retry_after"], retry);
    assert_eq!(b["detail"], format!("Account locked due to too many failed attempts. Try again in {retry} seconds."));
    // login-2fa is locked as well
    let (st, _) = post(&gw, "/api/v1/auth/login-2fa", json!({"email": "lock@example.com", "password": PW})).await;
    assert_eq!(st, 429);
}

#[tokio::test]
async fn lockout_and_sessions_survive_a_second_process_on_the_same_data() {
    // no NUSATRADE_JWT_SECRET: the local platform generates one into the data dir and keeps it
    let env: Vec<(&str, &str)> = ENV.iter().copied().filter(|(k, _)| *k != "NUSATRADE_JWT_SECRET").collect();
    let first = Gateway::start_with_env(&[], &env).await.unwrap();
    let reg = register(&first, "two@example.com").await;
    for _ in 0..3 {
        let (st, _) =
            post(&first, "/api/v1/auth/login", json!({"email": "two@example.com", "password": "Wrong!pass1"})).await;
        assert_eq!(st, 401);
    }
    let secret_file = first.data_dir.path().join("data").join("jwt.secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let dir = first.stop().await.unwrap();
    let second = Gateway::start_in(dir, &[], &env).await.unwrap();
    assert_eq!(get(&second, "/api/v1/users/me", &s(&reg, "access_token")).await.0, 200, "sessions survive a restart");
    let (_, b) =
        post(&second, "/api/v1/auth/login", json!({"email": "two@example.com", "password": "Wrong!pass1"})).await;
    assert_eq!(b["detail"], "Incorrect email or password. 1 attempts remaining.", "the count lives in the store");
    post(&second, "/api/v1/auth/login", json!({"email": "two@example.com", "password": "Wrong!pass1"})).await;
    let (st, _) = post(&second, "/api/v1/auth/login", json!({"email": "two@example.com", "password": PW})).await;
    assert_eq!(st, 429);
}

#[tokio::test]
async fn request_limits_answer_the_originals_429() {
    let env: Vec<(&str, &str)> = ENV
        .iter()
        .copied()
        .filter(|(k, _)| *k != "NUSATRADE_RATE_LIMIT_REQUESTS")
        .chain([("NUSATRADE_RATE_LIMIT_REQUESTS", "3")])
        .collect();
    let gw = Gateway::start_with_env(&[], &env).await.unwrap();
    // Windows are fixed (aligned to the clock): requests that straddle a window's end are rightly not
    // limited, so the count restarts whenever `x-ratelimit-reset` names a new window.
    let (mut window, mut in_window) = (None, 0);
    let mut sent = 0;
    let r = loop {
        let r = http().get(gw.url("/api/v1/users/me")).send().await.unwrap();
        sent += 1;
        if r.status() == 429 {
            break r;
        }
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("x-ratelimit-remaining"));
        let w = r.headers().get("x-ratelimit-reset").cloned();
        assert!(w.is_some(), "x-ratelimit-reset on every counted answer");
        if w != window {
            (window, in_window) = (w, 0);
        }
        in_window += 1;
        assert!(in_window <= 3 && sent < 12, "request {in_window} of one window was not limited");
    };
    assert_eq!(in_window, 3, "three requests per window, the fourth limited");
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["detail"], "Too many requests");
    assert!(b["retry_after"].as_u64().unwrap() >= 1);
    // health is another function: not limited by this one
    assert_eq!(http().get(gw.url("/api/v1/health")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn password_reset_through_the_mailer() {
    let gw = gateway().await;
    let reg = register(&gw, "reset@example.com").await;
    let (st, known) = post(&gw, "/api/v1/auth/forgot-password", json!({"email": "reset@example.com"})).await;
    assert_eq!(st, 200);
    let (st, unknown) = post_empty(&gw, "/api/v1/auth/forgot-password?email=ghost@example.com").await;
    assert_eq!(st, 200);
    assert_eq!(known, unknown, "same answer whether or not the account exists");
    let token = mailed_token(&gw, "reset@example.com", "Reset");
    let (st, b) = post_empty(&gw, &format!("/api/v1/auth/reset-password?token={token}&new_password=weak")).await;
    assert_eq!((st.as_u16(), s(&b, "detail")), (400, "Password must be at least 8 characters long".into()));
    let (st, b) =
        post(&gw, "/api/v1/auth/reset-password", json!({"token": token, "new_password": "N3w!password"})).await;
    assert_eq!((st.as_u16(), b), (200, json!({"status": "success", "message": "Password has been reset"})));
    let (st, b) =
        post(&gw, "/api/v1/auth/reset-password", json!({"token": token, "new_password": "N3w!password"})).await;
    assert_eq!((st.as_u16(), b), (400, json!({"detail": "Invalid or expired reset token"})));
    assert_eq!(get(&gw, "/api/v1/users/me", &s(&reg, "access_token")).await.0, 401, "sessions were revoked");
    assert_eq!(post(&gw, "/api/v1/auth/login", json!({"email": "reset@example.com", "password": PW})).await.0, 401);
    let (st, _) =
        post(&gw, "/api/v1/auth/login", json!({"email": "reset@example.com", "password": "N3w!password"})).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn totp_enable_login_2fa_disable() {
    let gw = gateway().await;
    let reg = register(&gw, "totp@example.com").await;
    let access = s(&reg, "access_token");
    assert_eq!(get(&gw, "/api/v1/totp/status", &access).await.1, json!({"enabled": false}));
    let (st, b) = authed(&gw, reqwest::Method::POST, "/api/v1/totp/verify", &access, json!({"token": "123456"})).await;
    assert_eq!((st.as_u16(), b), (400, json!({"detail": "Please setup 2FA first using /totp/setup endpoint"})));
    let r = http().post(gw.url("/api/v1/totp/setup")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let setup: Value = r.json().await.unwrap();
    let secret = s(&setup, "secret");
    assert_eq!(secret.len(), 32);
    assert!(s(&setup, "qr_code").starts_with("data:image/png;base64,"));
    assert!(s(&setup, "uri").starts_with("otpauth://totp/"));

    let (st, _) = authed(&gw, reqwest::Method::POST, "/api/v1/totp/verify", &access, json!({"token": "12345"})).await;
    assert_eq!(st, 422, "six characters");
    // codes of three consecutive steps: each accepted once, in increasing order
    nusatrade_tests::totp_step_with_time_left(std::time::Duration::from_secs(10)).await;
    let (c_prev, c_now, c_next) = (totp_code(&secret, -30), totp_code(&secret, 0), totp_code(&secret, 30));
    let (st, b) = authed(&gw, reqwest::Method::POST, "/api/v1/totp/verify", &access, json!({"token": c_prev})).await;
    assert_eq!((st.as_u16(), b), (200, json!({"enabled": true})));

    let (st, b) = post(&gw, "/api/v1/auth/login", json!({"email": "totp@example.com", "password": PW})).await;
    assert_eq!(st, 403);
    assert!(s(&b, "detail").contains("login-2fa"));
    let body = json!({"email": "totp@example.com", "password": PW, "totp_token": c_now});
    let (st, t) = post(&gw, "/api/v1/auth/login-2fa", body.clone()).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["user_id"], reg["id"]);
    let (st, b) = post(&gw, "/api/v1/auth/login-2fa", body).await;
    assert_eq!((st.as_u16(), b), (401, json!({"detail": "Invalid TOTP code"})), "no replay");

    let disable = |pw: &str, code: &str| json!({"password": pw, "totp_token": code});
    let (st, b) =
        authed(&gw, reqwest::Method::POST, "/api/v1/totp/disable", &access, disable("Wrong!pass1", &c_next)).await;
    assert_eq!((st.as_u16(), b), (401, json!({"detail": "Incorrect password"})));
    let (st, b) = authed(&gw, reqwest::Method::POST, "/api/v1/totp/disable", &access, disable(PW, &c_now)).await;
    assert_eq!((st.as_u16(), b), (401, json!({"detail": "Invalid TOTP code"})), "an used code");
    let (st, b) = authed(&gw, reqwest::Method::POST, "/api/v1/totp/disable", &access, disable(PW, &c_next)).await;
    assert_eq!((st.as_u16(), b), (200, json!({"enabled": false})));
    login(&gw, "totp@example.com").await;
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

#[tokio::test]
async fn forged_and_confused_tokens_are_refused() {
    let gw = gateway().await;
    let reg = register(&gw, "forge@example.com").await;
    let access = s(&reg, "access_token");
    let payload = access.split('.').nth(1).unwrap().to_owned();
    assert_eq!(get(&gw, "/api/v1/users/me", &access).await.0, 200);

    let sign = |header: &str| {
        let msg = format!("{}.{payload}", b64(header.as_bytes()));
        let sig =
            jsonwebtoken::crypto::sign(msg.as_bytes(), &EncodingKey::from_secret(SECRET.as_bytes()), Algorithm::HS256)
                .unwrap();
        format!("{msg}.{sig}")
    };
    // sanity: re-signing the same header and claims with the secret works
    assert_eq!(get(&gw, "/api/v1/users/me", &sign(r#"{"typ":"JWT","alg":"HS256"}"#)).await.0, 200);
    let forged = [
        format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
        format!("{}.{payload}", b64(br#"{"alg":"none"}"#)),
        sign(r#"{"alg":"RS256","typ":"JWT"}"#),
        sign(r#"{"alg":"HS512","typ":"JWT"}"#),
        s(&reg, "refresh_token"),
        "garbage".to_owned(),
    ];
    for t in &forged {
        let (st, b) = get(&gw, "/api/v1/users/me", t).await;
        assert_eq!((st.as_u16(), b), (401, json!({"detail": "Could not validate credentials"})), "{t}");
    }
    let r = http().get(gw.url("/api/v1/users/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"detail": "Not authenticated"}));
    // an access token is no refresh token
    let (st, b) = post(&gw, "/api/v1/auth/refresh", json!({"refresh_token": access})).await;
    assert_eq!((st.as_u16(), b), (401, json!({"detail": "Invalid refresh token"})));
}

#[tokio::test]
async fn profile_settings_and_sessions() {
    let gw = gateway().await;
    let reg = register(&gw, "prefs@example.com").await;
    let access = s(&reg, "access_token");
    let (st, defaults) = get(&gw, "/api/v1/users/settings", &access).await;
    assert_eq!(st, 200);
    assert_eq!(defaults["defaultLotSize"], "0.1");
    assert_eq!(defaults["timezone"], "Asia/Jakarta");
    assert_eq!(defaults["emailNotifications"], true);
    let (st, b) = authed(
        &gw,
        reqwest::Method::PUT,
        "/api/v1/users/settings",
        &access,
        json!({"theme": "light", "dailySummary": true, "llmApiKey": "dropped"}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["message"], "Settings updated successfully");
    assert_eq!(b["settings"]["theme"], "light");
    assert_eq!(b["settings"]["dailySummary"], true);
    assert_eq!(b["settings"]["maxLotSize"], "1.0");
    assert!(b["settings"].get("llmApiKey").is_none());
    let (st, _) =
        authed(&gw, reqwest::Method::PUT, "/api/v1/users/settings", &access, json!({"defaultLotSize": 0.5})).await;
    assert_eq!(st, 422, "numbers are not strings");
    assert_eq!(get(&gw, "/api/v1/users/settings", &access).await.1["theme"], "light");

    let r = http().put(gw.url("/api/v1/users/me?full_name=Ana%20B")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["user"]["full_name"], "Ana B");
    assert!(b["user"].get("password_hash").is_none() && b["user"].get("totp_secret").is_none());

    let other = login(&gw, "prefs@example.com").await;
    let (st, list) = get(&gw, "/api/v1/auth/sessions", &access).await;
    assert_eq!(st, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|x| x["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let other_id = list.iter().find(|x| x["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();
    let r =
        http().delete(gw.url(&format!("/api/v1/auth/sessions/{other_id}"))).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(&gw, "/api/v1/users/me", &s(&other, "access_token")).await.0, 401);
    let r = http().delete(gw.url("/api/v1/auth/sessions/not-a-uuid")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let third = login(&gw, "prefs@example.com").await;
    let r = http().post(gw.url("/api/v1/auth/sessions/revoke-others")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(get(&gw, "/api/v1/users/me", &s(&third, "access_token")).await.0, 401);
    assert_eq!(get(&gw, "/api/v1/users/me", &access).await.0, 200);
}
