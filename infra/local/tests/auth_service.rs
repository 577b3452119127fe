//! The accounts use cases on the real embedded store, with a manual clock: refresh rotation and
//! reuse detection, the lock-out window, the rate limiter under concurrency, TOTP replay, password
//! reset, and state shared by two service instances (as two Lambda instances share one table).

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Duration;
use common::{PW, SECRET, meta};
use nusatrade_app::auth::config::Limit;
use nusatrade_app::auth::{AuthConfig, AuthError, AuthService, CurrentUser, Decision, RateLimiter, totp};
use nusatrade_app::http::ApiError;
use nusatrade_app::ports::*;
use nusatrade_local::adapters::EmbeddedStore;

#[derive(Default)]
struct Outbox(Mutex<Vec<Email>>);

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        self.0.lock().unwrap().push(email.clone());
        Ok(())
    }
}

impl Outbox {
    /// The `token=` value of the last mail whose subject contains `subject`.
    fn token(&self, subject: &str) -> String {
        let mails = self.0.lock().unwrap();
        let mail = mails.iter().rev().find(|m| m.subject.contains(subject)).expect("mail sent");
        let at = mail.text.find("token=").unwrap() + "token=".len();
        mail.text[at..].split_whitespace().next().unwrap().to_owned()
    }
}

struct World {
    svc: AuthService,
    clock: Arc<ManualClock>,
    outbox: Arc<Outbox>,
    ports: Ports,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let clock = common::clock();
    let store: Arc<dyn ItemStore> = Arc::new(EmbeddedStore::temporary(clock.clone()).unwrap());
    world_on(store, clock)
}

fn world_on(store: Arc<dyn ItemStore>, clock: Arc<ManualClock>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::default());
    let ports = Ports { store, mailer: outbox.clone(), ..common::ports(dir.path(), clock.clone()) };
    let svc = AuthService::new(AuthConfig::for_tests(SECRET), ports.clone()).unwrap();
    World { svc, clock, outbox, ports, _dir: dir }
}

async fn user(w: &World, access: &str) -> Result<CurrentUser, AuthError> {
    w.svc.authenticator().authenticate(access).await
}

/// The status the HTTP edge answers an account error with.
fn status(e: &AuthError) -> u16 {
    ApiError::from(e.clone()).status().as_u16()
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let w = world();
    let (out, reg) = w.svc.register("ana@example.com", PW, Some("Ana".into()), &meta()).await.unwrap();
    assert!(!out.email_verified);
    let me = user(&w, &reg.access_token).await.unwrap();
    assert_eq!(me.email, "ana@example.com");
    assert!(!me.may_trade(), "unverified while verification is required");

    let login = w.svc.login("ana@example.com", PW, &meta()).await.unwrap();
    assert_eq!(login.user_id, out.id);
    assert_eq!(login.token_type, "bearer");
    // a refresh token is not an access token
    assert_eq!(status(&user(&w, &login.refresh_token).await.unwrap_err()), 401);
    // an access token is not a refresh token
    let e = w.svc.refresh(&login.access_token, &meta()).await.unwrap_err();
    assert_eq!(e.to_string(), "Invalid refresh token");

    w.clock.advance(Duration::seconds(10));
    let r1 = w.svc.refresh(&login.refresh_token, &meta()).await.unwrap();
    assert_ne!(r1.refresh_token, login.refresh_token);
    let r2 = w.svc.refresh(&r1.refresh_token, &meta()).await.unwrap();
    assert!(user(&w, &r2.access_token).await.is_ok());

    // the first refresh token again: reuse → the whole session is revoked
    let e = w.svc.refresh(&login.refresh_token, &meta()).await.unwrap_err();
    assert_eq!(status(&e), 401);
    assert!(e.to_string().contains("reuse"), "{e}");
    assert_eq!(status(&user(&w, &r2.access_token).await.unwrap_err()), 401, "access of the family is dead");
    assert_eq!(status(&w.svc.refresh(&r2.refresh_token, &meta()).await.unwrap_err()), 401, "refresh too");
    // the registration session is another family and lives on
    assert!(user(&w, &reg.access_token).await.is_ok());

    // logout revokes the session
    w.svc.logout(Some(&reg.access_token), None, &meta()).await.unwrap();
    assert_eq!(status(&user(&w, &reg.access_token).await.unwrap_err()), 401);
    assert_eq!(status(&w.svc.refresh(&reg.refresh_token, &meta()).await.unwrap_err()), 401);

    // the trail has the story, newest first
    w.clock.advance(Duration::seconds(1));
    let fresh = w.svc.login("ana@example.com", PW, &meta()).await.unwrap();
    let me = user(&w, &fresh.access_token).await.unwrap();
    let (items, _) = w.svc.activity(&me, 100, None).await.unwrap();
    let events: Vec<&str> = items.iter().map(|e| e.event.as_str()).collect();
    for ev in ["register", "login_succeeded", "token_refreshed", "refresh_token_reuse_detected", "logout"] {
        assert!(events.contains(&ev), "{ev} in {events:?}");
    }
    assert_eq!(events[0], "login_succeeded");
}

#[tokio::test]
async fn sessions_expire_with_the_clock() {
    let w = world();
    let (_, pair) = w.svc.register("bo@example.com", PW, None, &meta()).await.unwrap();
    w.clock.advance(Duration::minutes(61));
    assert_eq!(status(&user(&w, &pair.access_token).await.unwrap_err()), 401, "access expired");
    let r = w.svc.refresh(&pair.refresh_token, &meta()).await.unwrap();
    assert!(user(&w, &r.access_token).await.is_ok());
    w.clock.advance(Duration::days(8));
    let e = w.svc.refresh(&r.refresh_token, &meta()).await.unwrap_err();
    assert_eq!(e.to_string(), "Invalid or expired refresh token");
}

#[tokio::test]
async fn five_failures_in_the_window_lock_the_account() {
    let w = world();
    w.svc.register("cy@example.com", PW, None, &meta()).await.unwrap();
    for remaining in (0..5).rev() {
        let e = w.svc.login("cy@example.com", "Wrong!pass1", &meta()).await.unwrap_err();
        assert_eq!(e.to_string(), format!("Incorrect email or password. {remaining} attempts remaining."));
    }
    // locked: even the right password gets 429
    let e = w.svc.login("cy@example.com", PW, &meta()).await.unwrap_err();
    match &ApiError::from(e) {
        ApiError::TooManyRequests { detail, retry_after } => {
            assert_eq!(*retry_after, 900);
            assert_eq!(detail, "Account locked due to too many failed attempts. Try again in 900 seconds.");
        }
        other => panic!("expected 429, got {other:?}"),
    }
    w.clock.advance(Duration::seconds(600));
    match ApiError::from(w.svc.login("cy@example.com", PW, &meta()).await.unwrap_err()) {
        ApiError::TooManyRequests { retry_after, .. } => assert_eq!(retry_after, 300),
        other => panic!("{other:?}"),
    }
    w.clock.advance(Duration::seconds(300));
    assert!(w.svc.login("cy@example.com", PW, &meta()).await.is_ok(), "the lock expires");

    // failures spread wider than the window never lock; a success resets the count
    for _ in 0..4 {
        w.svc.login("cy@example.com", "Wrong!pass1", &meta()).await.unwrap_err();
    }
    w.clock.advance(Duration::seconds(901));
    let e = w.svc.login("cy@example.com", "Wrong!pass1", &meta()).await.unwrap_err();
    assert!(e.to_string().ends_with("4 attempts remaining."), "{e}");
    w.svc.login("cy@example.com", PW, &meta()).await.unwrap();
    let e = w.svc.login("cy@example.com", "Wrong!pass1", &meta()).await.unwrap_err();
    assert!(e.to_string().ends_with("4 attempts remaining."), "{e}");

    // unknown e-mails are answered like wrong passwords and locked out the same way
    let e = w.svc.login("nobody@example.com", PW, &meta()).await.unwrap_err();
    assert_eq!(e.to_string(), "Incorrect email or password. 4 attempts remaining.");
}

#[tokio::test]
async fn lockout_and_sessions_are_shared_by_instances_on_one_store() {
    let a = world();
    let b = world_on(a.ports.store.clone(), a.clock.clone());
    let (_, pair) = a.svc.register("di@example.com", PW, None, &meta()).await.unwrap();
    for (i, w) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        assert_eq!(status(&w.svc.login("di@example.com", "Wrong!pass1", &meta()).await.unwrap_err()), 401, "{i}");
    }
    assert_eq!(status(&b.svc.login("di@example.com", PW, &meta()).await.unwrap_err()), 429);
    // a session opened by one instance is revoked for the other
    assert!(user(&b, &pair.access_token).await.is_ok());
    a.svc.logout(Some(&pair.access_token), None, &meta()).await.unwrap();
    assert_eq!(status(&user(&b, &pair.access_token).await.unwrap_err()), 401);
}

#[tokio::test]
async fn the_rate_limiter_counts_exactly_under_concurrency() {
    let w = world();
    let limiter = RateLimiter::new(w.ports.store.clone(), w.clock.clone());
    let limit = Limit { requests: 20, window: std::time::Duration::from_secs(60) };
    let hits = (0..60).map(|_| {
        let l = limiter.clone();
        tokio::spawn(async move { l.hit("ip:1.2.3.4", limit).await.unwrap() })
    });
    let results = futures::future::join_all(hits).await;
    let allowed = results.iter().filter(|r| matches!(r.as_ref().unwrap(), Decision::Allowed { .. })).count();
    assert_eq!(allowed, 20);
    // another bucket is independent; the next window starts afresh
    assert!(matches!(limiter.hit("ip:5.6.7.8", limit).await.unwrap(), Decision::Allowed { remaining: 19, .. }));
    match limiter.hit("ip:1.2.3.4", limit).await.unwrap() {
        Decision::Limited { retry_after } => assert!((1..=60).contains(&retry_after)),
        other => panic!("{other:?}"),
    }
    w.clock.advance(Duration::seconds(60));
    assert!(matches!(limiter.hit("ip:1.2.3.4", limit).await.unwrap(), Decision::Allowed { .. }));
}

#[tokio::test]
async fn totp_codes_cannot_be_replayed() {
    let w = world();
    let (_, pair) = w.svc.register("ed@example.com", PW, None, &meta()).await.unwrap();
    let me = user(&w, &pair.access_token).await.unwrap();
    let setup = w.svc.totp_setup(&me, &meta()).await.unwrap();
    let secret = setup["secret"].as_str().unwrap().to_owned();
    assert!(setup["qr_code"].as_str().unwrap().starts_with("data:image/png;base64,"));
    assert!(setup["uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    let now = || w.clock.now().timestamp();

    assert_eq!(
        w.svc.totp_verify(&me, "000000", &meta()).await.unwrap_err().to_string(),
        "Invalid TOTP code. Please try again."
    );
    let code = totp::code_at(&secret, now()).unwrap();
    w.svc.totp_verify(&me, &code, &meta()).await.unwrap();
    assert_eq!(w.svc.totp_status(&me).await.unwrap()["enabled"], true);

    // password login now asks for the second factor
    assert_eq!(status(&w.svc.login("ed@example.com", PW, &meta()).await.unwrap_err()), 403);
    // the code that enabled 2FA cannot log in (same step)
    let e = w.svc.login_2fa("ed@example.com", PW, Some(&code), &meta()).await.unwrap_err();
    assert_eq!(e.to_string(), "Invalid TOTP code");
    assert_eq!(
        w.svc.login_2fa("ed@example.com", PW, None, &meta()).await.unwrap_err().to_string(),
        "TOTP token is required"
    );
    w.clock.advance(Duration::seconds(30));
    let code2 = totp::code_at(&secret, now()).unwrap();
    let ok = w.svc.login_2fa("ed@example.com", PW, Some(&code2), &meta()).await.unwrap();
    assert!(user(&w, &ok.access_token).await.is_ok());
    assert_eq!(status(&w.svc.login_2fa("ed@example.com", PW, Some(&code2), &meta()).await.unwrap_err()), 401, "replay");

    // disable: password, then a fresh code
    w.clock.advance(Duration::seconds(30));
    let code3 = totp::code_at(&secret, now()).unwrap();
    assert_eq!(
        w.svc.totp_disable(&me, "Wrong!pass1", &code3, &meta()).await.unwrap_err().to_string(),
        "Incorrect password"
    );
    assert_eq!(w.svc.totp_disable(&me, PW, &code2, &meta()).await.unwrap_err().to_string(), "Invalid TOTP code");
    w.svc.totp_disable(&me, PW, &code3, &meta()).await.unwrap();
    assert_eq!(w.svc.totp_status(&me).await.unwrap()["enabled"], false);
    assert!(w.svc.login("ed@example.com", PW, &meta()).await.is_ok());
    let e = w.svc.login_2fa("ed@example.com", PW, Some("123456"), &meta()).await.unwrap_err();
    assert_eq!(e.to_string(), "2FA is not enabled for this account. Use /auth/login endpoint.");
}

#[tokio::test]
async fn password_reset_is_single_use_expires_and_logs_out_everywhere() {
    let w = world();
    let (_, pair) = w.svc.register("fa@example.com", PW, None, &meta()).await.unwrap();
    let unknown = w.svc.forgot_password("ghost@example.com", &meta()).await.unwrap();
    let known = w.svc.forgot_password("FA@example.com", &meta()).await.unwrap();
    assert_eq!(unknown, known, "the answer never tells whether the e-mail exists");
    let token = w.outbox.token("Reset");
    // weak password: refused before the token is spent
    let e = w.svc.reset_password(&token, "weak", &meta()).await.unwrap_err();
    assert_eq!(e.to_string(), "Password must be at least 8 characters long");
    w.svc.reset_password(&token, "N3w!password", &meta()).await.unwrap();
    let e = w.svc.reset_password(&token, "N3w!password2", &meta()).await.unwrap_err();
    assert_eq!(e.to_string(), "Invalid or expired reset token");
    assert_eq!(status(&user(&w, &pair.access_token).await.unwrap_err()), 401, "old sessions are revoked");
    assert_eq!(status(&w.svc.login("fa@example.com", PW, &meta()).await.unwrap_err()), 401);
    let fresh = w.svc.login("fa@example.com", "N3w!password", &meta()).await.unwrap();
    assert!(user(&w, &fresh.access_token).await.unwrap().email_verified, "a reset proves the address");

    // tokens expire after an hour
    w.svc.forgot_password("fa@example.com", &meta()).await.unwrap();
    let token = w.outbox.token("Reset");
    w.clock.advance(Duration::seconds(3600));
    assert_eq!(status(&w.svc.reset_password(&token, "N3w!password3", &meta()).await.unwrap_err()), 400);
    // only the hash is stored
    let stored = w.ports.store.get(&Key::new(format!("RESET#{token}"), "RESET")).await.unwrap();
    assert!(stored.is_none());
}

#[tokio::test]
async fn email_verification_flag_and_duplicates() {
    let w = world();
    let (_, pair) = w.svc.register("gi@example.com", PW, None, &meta()).await.unwrap();
    let e = w.svc.register("gi@example.com", PW, None, &meta()).await.unwrap_err();
    assert_eq!(e.to_string(), "Email already registered");
    let token = w.outbox.token("Confirm");
    w.svc.verify_email(&token, &meta()).await.unwrap();
    assert_eq!(status(&w.svc.verify_email(&token, &meta()).await.unwrap_err()), 400, "single use");
    let me = user(&w, &pair.access_token).await.unwrap();
    assert!(me.email_verified && me.may_trade());
    assert_eq!(w.svc.resend_verification(&me).await.unwrap_err().to_string(), "Email already verified");
}

#[tokio::test]
async fn sessions_can_be_listed_and_revoked() {
    let w = world();
    let (_, first) = w.svc.register("ha@example.com", PW, None, &meta()).await.unwrap();
    let second = w.svc.login("ha@example.com", PW, &meta()).await.unwrap();
    let third = w.svc.login("ha@example.com", PW, &meta()).await.unwrap();
    let me = user(&w, &third.access_token).await.unwrap();
    let list = w.svc.sessions(&me).await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().filter(|s| s.current).count(), 1);
    let first_sid = user(&w, &first.access_token).await.unwrap().session_id;
    w.svc.revoke_session(&me, first_sid, &meta()).await.unwrap();
    assert_eq!(status(&user(&w, &first.access_token).await.unwrap_err()), 401);
    assert_eq!(status(&w.svc.revoke_session(&me, first_sid, &meta()).await.unwrap_err()), 404);
    let r = w.svc.revoke_other_sessions(&me, &meta()).await.unwrap();
    assert_eq!(r["revoked"], 1);
    assert_eq!(status(&user(&w, &second.access_token).await.unwrap_err()), 401);
    assert!(user(&w, &third.access_token).await.is_ok());
    assert_eq!(w.svc.sessions(&me).await.unwrap().len(), 1);
}
