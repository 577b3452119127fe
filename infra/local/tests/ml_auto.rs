//! The auto-trading cycle (contract §4.9, §9 item 13 fixed; `nusatrade_app::ml::auto`) over the local adapters:
//! the embedded store, file blobs, the in-process queue, a recording push port standing in for the connector, the
//! real order use case, the real router and the `ml-train` consumer.
//!
//! Rules covered: trades go through the order rules (connector offline → not executed, an error line, nothing
//! reserved), cooldown, the daily limit counting trades per UTC day, the threshold and HOLD, the fallback HOLD on a
//! failed prediction, the cross-process lease (`already_running`, an expired lease taken over), a cycle resumed after
//! a crash never opening a second order, and the trigger / status / health routes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use common::User;
use nusatrade_app::auth::{AuthConfig, AuthService};
use nusatrade_app::http::layers;
use nusatrade_app::jobs::QueueConsumer;
use nusatrade_app::ml::auto::{SCHEDULED_BUDGET, utc_day};
use nusatrade_app::ml::defaults::generated_series;
use nusatrade_app::ml::store::{PredictionRecord, auto_lease_key};
use nusatrade_app::ml::{
    AUTO_TRADING_BODY, CycleOrigin, CycleOutcome, CycleResult, ML_TRAIN_QUEUE, MlConfig, MlService, MlState,
    MlTrainConsumer, ModelCache, router,
};
use nusatrade_app::ports::store::TTL_ATTR;
use nusatrade_app::ports::*;
use nusatrade_app::suites::orders::RecordingPush;
use nusatrade_app::trading::orders::{OrderService, TradingConfig};
use nusatrade_local::adapters::LocalQueue;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

const VIS: Duration = Duration::from_secs(60);

struct World {
    app: Router,
    auth: AuthService,
    ml: MlService,
    orders: OrderService,
    consumer: MlTrainConsumer,
    clock: Arc<ManualClock>,
    ports: Ports,
    push: Arc<RecordingPush>,
    _dir: tempfile::TempDir,
}

/// 22:00 UTC: the next UTC day is two hours away.
fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2027-03-01T22:00:00Z").unwrap().with_timezone(&Utc)
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let push = Arc::new(RecordingPush::default());
    let ports = Ports {
        queue: Arc::new(LocalQueue::new(clock.clone()).with_queue(ML_TRAIN_QUEUE, 5).with_queue("reconcile", 5)),
        push: push.clone(),
        ..common::ports(dir.path(), clock.clone())
    };
    let mut config = AuthConfig::for_tests(common::SECRET);
    config.require_email_verification = false;
    let auth = AuthService::new(config, ports.clone()).unwrap();
    let orders = OrderService::new(&ports, TradingConfig::default());
    let ml_config = MlConfig {
        progress_interval: Duration::from_millis(20),
        require_email_verification: false,
        ..MlConfig::default()
    };
    let ml = MlService::new(&ports, Some(orders.clone()), ml_config, ModelCache::new(4));
    let app = layers::platform(router(MlState { auth: auth.authenticator(), ml: ml.clone() }, None));
    let consumer = MlTrainConsumer::new(ml.clone());
    World { app, auth, ml, orders, consumer, clock, ports, push, _dir: dir }
}

fn csv(bars: usize) -> String {
    nusatrade_ml::to_csv(&generated_series("EURUSD", bars, DateTime::from_timestamp(1_800_000_000, 0).unwrap()))
}

impl World {
    async fn user(&self, email: &str) -> User {
        common::register(&self.auth, email).await
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
        let resp = self.app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Runs every queued `ml-train` message.
    async fn drain(&self) {
        while let Some(m) =
            self.ports.queue.receive(ML_TRAIN_QUEUE, 1, VIS, Duration::ZERO).await.unwrap().into_iter().next()
        {
            self.consumer.handle(&m).await.unwrap();
            self.ports.queue.delete(ML_TRAIN_QUEUE, &m.receipt).await.unwrap();
        }
    }

    /// Uploads candles, creates a model with `config` (merged into a small binary GBDT config), trains and
    /// activates it.
    async fn active_model(&self, user: &User, config: Value) -> Uuid {
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/ml/datasets?symbol=EURUSD&timeframe=H1")
            .header(header::AUTHORIZATION, format!("Bearer {}", user.token))
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(csv(1_500)))
            .unwrap();
        assert_eq!(self.app.clone().oneshot(req).await.unwrap().status(), StatusCode::CREATED);
        let mut c = json!({"hyperparameters": {"iterations": 8, "max_depth": 3, "nbins": 32},
                           "label": {"kind": "binary", "horizon": 5, "threshold": 0.0},
                           "signal": {"min_confidence": 0.0}});
        c.as_object_mut().unwrap().extend(config.as_object().unwrap().clone());
        let body = json!({"name": "auto", "model_type": "gradient_boosting", "symbol": "EURUSD", "timeframe": "H1",
                          "config": c});
        let (s, m) = self.call("POST", "/api/v1/ml/models", Some(&user.token), Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        let id = m["id"].as_str().unwrap().to_owned();
        let (s, _) = self.call("POST", &format!("/api/v1/ml/models/{id}/train"), Some(&user.token), None).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        self.drain().await;
        let (s, a) = self.call("POST", &format!("/api/v1/ml/models/{id}/activate"), Some(&user.token), None).await;
        assert_eq!(s, StatusCode::OK, "{a}");
        id.parse().unwrap()
    }

    /// Puts a connector of `user` online; returns its WebSocket connection id.
    async fn connector(&self, user: &User) -> String {
        let ws = format!("ws-{}", Uuid::new_v4().simple());
        self.orders.registry().register_connector(&ws, user.id, &user.email, Uuid::new_v4()).await.unwrap();
        ws
    }

    async fn cycle(&self) -> CycleResult {
        match self.ml.auto_trading_cycle(CycleOrigin::Schedule, SCHEDULED_BUDGET).await.unwrap() {
            CycleOutcome::Completed(r) => r,
            CycleOutcome::AlreadyRunning => panic!("no other cycle runs"),
        }
    }

    async fn orders_of(&self, user: &User) -> Vec<Item> {
        let q = Query::partition(format!("USER#{}", user.id)).sk_prefix("ORDER#");
        self.ports.store.query(q).await.unwrap().items
    }

    async fn predictions_of(&self, user: &User, model: Uuid) -> Vec<PredictionRecord> {
        let q = Query::partition(format!("USER#{}", user.id)).sk_prefix(format!("PRED#{model}#")).descending();
        self.ports.store.query(q).await.unwrap().items.iter().map(|i| i.to_record().unwrap()).collect()
    }

    fn opens(&self, ws: &str) -> Vec<Value> {
        self.push.of_type(ws, "TRADE_OPEN")
    }
}

#[tokio::test]
async fn cycle_trades_through_the_order_rules_with_cooldown_and_a_utc_daily_trade_limit() {
    let w = world();
    let u = w.user("auto@example.com").await;
    let cfg = json!({"confidence_threshold": 0.0, "max_trades_per_day": 2, "cooldown_minutes": 20, "lot_size": 0.02});
    let model = w.active_model(&u, cfg).await;

    // No connector online: predicted, not executed, an error line, nothing reserved.
    let r = w.cycle().await;
    assert_eq!((r.models_checked, r.predictions_generated, r.trades_executed), (1, 1, 0), "{r:?}");
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert!(r.errors[0].message.contains("not executed") && r.errors[0].message.contains("not online"), "{r:?}");
    assert_eq!(r.errors[0].user, Some(u.id), "the line names its owner");
    assert_eq!(w.ml.trades_on(u.id, model, utc_day(w.clock.now())).await.unwrap(), 0, "the day's slot was released");
    assert!(w.orders_of(&u).await.is_empty());
    let p = &w.predictions_of(&u, model).await[0];
    assert!(p.auto_outcome.as_deref().unwrap().starts_with("not_executed"), "{p:?}");
    let marker: Value = serde_json::from_str(&p.prediction).unwrap();
    assert_eq!(marker["auto_trading"]["confidence_threshold"], 0.0);

    // Still in the cooldown (20 min from that prediction): nothing, even with a connector now.
    let ws = w.connector(&u).await;
    w.clock.advance(ChronoDuration::minutes(19));
    let r = w.cycle().await;
    assert_eq!((r.models_checked, r.predictions_generated, r.trades_executed), (1, 0, 0), "{r:?}");

    // After it: one order through the order use case, source auto_trading, the model's lot.
    w.clock.advance(ChronoDuration::minutes(1));
    let r = w.cycle().await;
    assert_eq!((r.predictions_generated, r.trades_executed), (1, 1), "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    let opens = w.opens(&ws);
    assert_eq!(opens.len(), 1);
    assert_eq!(opens[0]["lot_size"], 0.02);
    let orders = w.orders_of(&u).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].get_s("source"), Some("auto_trading"));
    assert_eq!(orders[0].get_s("status"), Some("pending"));
    let first = w.predictions_of(&u, model).await.remove(0);
    assert_eq!(first.auto_outcome.as_deref(), Some("executed"));
    let order_id = orders[0].get_s("id").unwrap().to_owned();
    assert_eq!(first.executed_order_id.map(|o| o.to_string()), Some(order_id.clone()));
    assert_eq!(w.ml.trades_on(u.id, model, utc_day(w.clock.now())).await.unwrap(), 1);

    // A crash after placing and before recording the outcome, then the message again (cooldown or not): the
    // cycle finishes that prediction with the same idempotency key — the first order, never a second.
    let key = Key::new(format!("USER#{}", u.id), format!("PRED#{model}#{}", first.id));
    w.ports.store.update(&key, Update::new().remove("auto_outcome").remove("executed_order_id"), None).await.unwrap();
    let r = w.cycle().await;
    assert_eq!((r.predictions_generated, r.trades_executed), (0, 1), "resumed, not predicted again: {r:?}");
    assert_eq!(w.opens(&ws).len(), 1, "no second TRADE_OPEN");
    assert_eq!(w.orders_of(&u).await.len(), 1, "no second order");
    assert_eq!(w.ml.trades_on(u.id, model, utc_day(w.clock.now())).await.unwrap(), 1, "the slot is not taken twice");
    let again = w.predictions_of(&u, model).await.remove(0);
    assert_eq!(again.executed_order_id.map(|o| o.to_string()), Some(order_id));
    // The same message once more: now in the cooldown, nothing.
    let r = w.cycle().await;
    assert_eq!((r.predictions_generated, r.trades_executed), (0, 0));
    assert_eq!(w.opens(&ws).len(), 1);

    // Second trade of the day, then the limit (trades counted, not predictions: three predictions were made).
    w.clock.advance(ChronoDuration::minutes(20));
    assert_eq!(w.cycle().await.trades_executed, 1);
    assert_eq!(w.ml.trades_on(u.id, model, utc_day(w.clock.now())).await.unwrap(), 2);
    w.clock.advance(ChronoDuration::minutes(20));
    let r = w.cycle().await;
    assert_eq!((r.models_checked, r.predictions_generated, r.trades_executed), (1, 0, 0), "daily limit: {r:?}");
    assert_eq!(w.opens(&ws).len(), 2);

    // The next UTC day (00:05 UTC; 07:05 in Jakarta) has its own count.
    w.clock.set(DateTime::parse_from_rfc3339("2027-03-02T00:05:00Z").unwrap().with_timezone(&Utc));
    let ws2 = w.connector(&u).await;
    let r = w.cycle().await;
    assert_eq!(r.trades_executed, 1, "{r:?}");
    assert_eq!(w.opens(&ws2).len(), 1);
    assert_eq!(w.ml.trades_on(u.id, model, utc_day(w.clock.now())).await.unwrap(), 1);
    assert_eq!(w.orders_of(&u).await.len(), 3);
}

#[tokio::test]
async fn threshold_hold_and_a_failed_prediction_do_not_trade() {
    let w = world();
    let a = w.user("threshold@example.com").await;
    let b = w.user("hold@example.com").await;
    let c = w.user("fallback@example.com").await;
    let high = w.active_model(&a, json!({"confidence_threshold": 1.0})).await;
    // The model's own signal floor makes every prediction HOLD; the auto threshold of 0 does not trade HOLD.
    let hold = w.active_model(&b, json!({"signal": {"min_confidence": 1.0}, "confidence_threshold": 0.0})).await;
    let broken = w.active_model(&c, json!({"confidence_threshold": 0.0})).await;
    let (s, _) = w.call("DELETE", "/api/v1/ml/datasets/EURUSD/H1", Some(&c.token), None).await;
    assert_eq!(s, StatusCode::OK);
    let mut sockets = Vec::new();
    for u in [&a, &b, &c] {
        sockets.push(w.connector(u).await);
    }
    let r = w.cycle().await;
    assert_eq!((r.models_checked, r.predictions_generated, r.trades_executed), (3, 3, 0), "{r:?}");
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert!(
        r.errors[0].message.contains(&broken.to_string()) && r.errors[0].message.contains("fallback HOLD"),
        "{r:?}"
    );
    for ws in &sockets {
        assert!(w.opens(ws).is_empty());
    }
    let p = w.predictions_of(&a, high).await.remove(0);
    assert!(p.confidence < 1.0 && p.direction != "HOLD", "{p:?}");
    assert_eq!(p.auto_outcome.as_deref(), Some("below_threshold"));
    let p = w.predictions_of(&b, hold).await.remove(0);
    assert_eq!((p.direction.as_str(), p.auto_outcome.as_deref()), ("HOLD", Some("hold")));
    let p = w.predictions_of(&c, broken).await.remove(0);
    let object: Value = serde_json::from_str(&p.prediction).unwrap();
    assert_eq!((p.direction.as_str(), p.confidence), ("HOLD", 0.0));
    assert_eq!(object["generated_by"], "fallback");
    assert_eq!(object["stop_loss"], Value::Null);
    assert!(object["error"].as_str().unwrap().contains("No candles stored"), "{object}");
    // The fallback is listed like any prediction.
    let (s, list) = w.call("GET", &format!("/api/v1/ml/models/{broken}/predictions"), Some(&c.token), None).await;
    assert_eq!((s, list[0]["prediction"]["generated_by"].as_str()), (StatusCode::OK, Some("fallback")));
}

#[tokio::test]
async fn one_cycle_at_a_time_across_processes_and_an_expired_lease_is_taken_over() {
    let w = world();
    let u = w.user("lease@example.com").await;
    w.active_model(&u, json!({"confidence_threshold": 0.0})).await;
    // Another process holds the lease (as its cycle writes it), until 10 minutes from now.
    let until = w.clock.now().timestamp() + 600;
    let other = Item::new(&auto_lease_key())
        .with("holder", Uuid::new_v4().to_string())
        .with("origin", "schedule")
        .with(TTL_ATTR, until);
    w.ports.store.put(other, Some(Condition::NotExists)).await.unwrap();
    // A second service over the same store (another Lambda) and this one: both skip.
    let second = MlService::new(&w.ports, Some(w.orders.clone()), MlConfig::default(), ModelCache::new(1));
    for ml in [&w.ml, &second] {
        let out = ml.auto_trading_cycle(CycleOrigin::Schedule, SCHEDULED_BUDGET).await.unwrap();
        assert_eq!(out, CycleOutcome::AlreadyRunning);
    }
    let (s, b) = w.call("POST", "/api/v1/ml/auto-trading/trigger", Some(&u.token), None).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"status": "skipped", "reason": "already_running"})));
    let (_, h) = w.call("GET", "/api/v1/ml/auto-trading/health", None, None).await;
    assert_eq!(h["is_running"], true, "{h}");
    // The scheduled message is handled (deleted) while another cycle runs: that cycle does the work.
    let msg =
        ReceivedMessage { id: "m1".into(), body: AUTO_TRADING_BODY.into(), receipt: "r".into(), receive_count: 1 };
    w.consumer.handle(&msg).await.unwrap();
    assert!(w.ml.cycle_status().await.unwrap().last_run.is_none());

    // The holder died: its lease expires at its deadline and the next cycle takes it over.
    w.clock.set(DateTime::from_timestamp(until, 0).unwrap());
    w.consumer.handle(&msg).await.unwrap();
    let status = w.ml.cycle_status().await.unwrap();
    assert_eq!(status.last_run, Some(w.clock.now()));
    assert_eq!(status.result().unwrap().models_checked, 1);
    assert!(!w.ml.cycle_running().await.unwrap(), "released at the end");
    // Released: the next cycle runs at once.
    w.clock.advance(ChronoDuration::minutes(1));
    assert!(matches!(
        w.ml.auto_trading_cycle(CycleOrigin::Schedule, SCHEDULED_BUDGET).await.unwrap(),
        CycleOutcome::Completed(_)
    ));
}

#[tokio::test]
async fn trigger_status_and_health_routes() {
    let w = world();
    let u = w.user("routes@example.com").await;
    let other = w.user("other@example.com").await;

    // Health is public; before any cycle it is stale.
    let (s, h) = w.call("GET", "/api/v1/ml/auto-trading/health", None, None).await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(
        (h["status"].as_str(), h["is_stale"].as_bool(), h["last_run"].is_null()),
        (Some("stale"), Some(true), true)
    );
    assert_eq!(h["checks"]["scheduler_initialized"], true);
    // Trigger and status need a token.
    let (s, _) = w.call("POST", "/api/v1/ml/auto-trading/trigger", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = w.call("GET", "/api/v1/ml/auto-trading/status", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // No active model: the contract's 400.
    let (s, b) = w.call("POST", "/api/v1/ml/auto-trading/trigger", Some(&u.token), None).await;
    assert_eq!(
        (s, b["detail"].as_str()),
        (StatusCode::BAD_REQUEST, Some("No active models found. Activate a trained model first."))
    );
    let (s, st) = w.call("GET", "/api/v1/ml/auto-trading/status", Some(&u.token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["config"]["default_confidence_threshold"], 0.65, "the applied default is advertised");
    assert_eq!(st["config"]["default_max_trades_per_day"], 5);
    assert_eq!(st["config"]["default_cooldown_minutes"], 30);
    assert_eq!(st["config"]["default_lot_size"], 0.01);
    assert_eq!((st["interval_minutes"].as_i64(), st["active_models"].as_u64()), (Some(15), Some(0)));
    assert!(st["last_run"].is_null());

    // Bad knobs are refused on the model.
    let bad = json!({"name": "x", "model_type": "gradient_boosting", "config": {"confidence_threshold": 2}});
    let (s, e) = w.call("POST", "/api/v1/ml/models", Some(&u.token), Some(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["detail"][0]["loc"], json!(["body", "config", "confidence_threshold"]));

    // Two users' active models; the trigger runs one global cycle, the caller's model first.
    let theirs = w.active_model(&other, json!({"confidence_threshold": 0.0})).await;
    let mine = w.active_model(&u, json!({"confidence_threshold": 0.0, "lot_size": 0.03})).await;
    let (_, m) = w.call("GET", &format!("/api/v1/ml/models/{mine}"), Some(&u.token), None).await;
    assert_eq!(m["config"]["lot_size"], 0.03, "the applied knobs are shown: {m}");
    assert_eq!(m["config"]["cooldown_minutes"], 30);
    let ws = w.connector(&u).await;
    let (s, t) = w.call("POST", "/api/v1/ml/auto-trading/trigger", Some(&u.token), None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["status"], "completed");
    let r = &t["result"];
    assert_eq!((r["models_checked"].as_u64(), r["predictions_generated"].as_u64()), (Some(2), Some(2)), "{t}");
    assert_eq!(r["trades_executed"], 1, "{t}");
    // The other user's model failed (no connector), but that line is theirs: the caller sees none of it.
    assert_eq!(r["errors"], json!([]), "another user's failures are not shown: {t}");
    assert!(!t.to_string().contains(&theirs.to_string()), "nor their model id: {t}");
    let stored = w.ml.cycle_status().await.unwrap().result().unwrap();
    assert_eq!(stored.errors.len(), 1, "the other user has no connector: {stored:?}");
    assert!(stored.errors[0].message.contains(&theirs.to_string()) && stored.errors[0].user == Some(other.id));
    let (_, theirs_view) = w.call("GET", "/api/v1/ml/auto-trading/status", Some(&other.token), None).await;
    let seen = theirs_view["last_result"]["errors"].as_array().unwrap();
    assert!(
        seen.len() == 1 && seen[0].as_str().unwrap().contains(&theirs.to_string()),
        "the owner sees it: {theirs_view}"
    );
    for k in ["started_at", "completed_at"] {
        assert!(r[k].is_string(), "{k}: {t}");
    }
    assert_eq!(w.opens(&ws)[0]["lot_size"], 0.03);

    let (_, st) = w.call("GET", "/api/v1/ml/auto-trading/status", Some(&u.token), None).await;
    assert_eq!(st["active_models"], 1, "{st}");
    assert_eq!((st["predictions_today"].as_u64(), st["trades_today"].as_u64()), (Some(1), Some(1)), "{st}");
    assert_eq!(st["last_run"], t["result"]["completed_at"]);
    assert_eq!(st["models"][0]["id"], mine.to_string());
    assert_eq!(st["models"][0]["confidence_threshold"], 0.0);
    assert_eq!(st["last_result"]["trades_executed"], 1);
    let (_, h) = w.call("GET", "/api/v1/ml/auto-trading/health", None, None).await;
    assert_eq!((h["status"].as_str(), h["is_running"].as_bool()), (Some("healthy"), Some(false)), "{h}");
    assert_eq!(h["checks"]["not_stuck"], true);
    // 21 minutes without a cycle: stale.
    w.clock.advance(ChronoDuration::minutes(21));
    let (_, h) = w.call("GET", "/api/v1/ml/auto-trading/health", None, None).await;
    assert_eq!((h["status"].as_str(), h["checks"]["last_run_recent"].as_bool()), (Some("stale"), Some(false)));
}

/// The local scheduler sends exactly the template's EventBridge schedules: every rate schedule of the platform has a
/// template schedule with its body, its rate and its queue (the auto-trading cycle's on the ml-train queue, every
/// 15 minutes, with a role that may only send to that queue).
#[test]
fn local_rate_schedules_are_the_templates_and_include_auto_trading() {
    let template = include_str!("../../../template.yaml");
    let dir = tempfile::tempdir().unwrap();
    let platform = nusatrade_local::platform::LocalPlatform::open(&dir.path().join("data")).unwrap();
    let schedules = platform.schedules();
    assert!(schedules.contains(&nusatrade_app::ml::AUTO_TRADING_SCHEDULE), "the cycle is scheduled locally");
    for s in nusatrade_app::reconcile::SCHEDULES {
        assert!(schedules.contains(s) && s.every.as_secs() < 24 * 3600, "{} is a local rate schedule", s.name);
    }
    let queue_resource = |q: &str| match q {
        "reconcile" => "ReconcileQueue",
        "backup" => "BackupQueue",
        ML_TRAIN_QUEUE => "MlTrainQueue",
        other => panic!("unknown queue {other}"),
    };
    for s in schedules.iter().filter(|s| s.every.as_secs() < 24 * 3600) {
        let input = format!("Input: '{}'", s.body);
        let at = template.find(&input).unwrap_or_else(|| panic!("no schedule with {input} in template.yaml"));
        let block = &template[template[..at].rfind("Type: AWS::Scheduler::Schedule").expect("a schedule")..at];
        let rate = match s.every.as_secs() {
            60 => "rate(1 minute)".to_owned(),
            n => format!("rate({} minutes)", n / 60),
        };
        assert!(block.contains(&format!("ScheduleExpression: {rate}")), "{} runs at {rate}: {block}", s.name);
        assert!(block.contains(&format!("Arn: !GetAtt {}.Arn", queue_resource(s.queue))), "{block}");
    }
    // The auto-trading schedule's role may send to the ml-train queue and nothing else.
    let role_at = template.find("  MlAutoTradingSchedulerRole:").expect("the scheduler role");
    let role = &template[role_at..role_at + template[role_at..].find("\n\n").unwrap()];
    assert!(role.contains("Action: sqs:SendMessage") && role.contains("Resource: !GetAtt MlTrainQueue.Arn"), "{role}");
    assert_eq!(role.matches("Action:").count(), 2, "assume-role and SendMessage only: {role}");
}
