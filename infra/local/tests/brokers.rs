//! The broker-connection routes (contract §2.6) over the local adapters: the embedded store with a manual
//! clock, the in-process push whose receivers stand in for connector sockets, and the real router driven
//! with `tower::ServiceExt::oneshot`. Covers CRUD, ownership (404 for other users' ids), validation
//! 422s, the per-user limit (also under concurrency), status offline/online, sync pushes and a gone
//! connector, disconnect/delete closing the socket, the public supported-brokers body, and the helpers
//! the connector WebSocket handler calls.

mod common;

use common::{PW, User, meta};

use nusatrade_app::trading::orders::routes::placed_status;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::DateTime;
use nusatrade_app::auth::{AuthService, CurrentUser};
use nusatrade_app::brokers::routes::{BrokersState, SUPPORTED_BROKERS, router};
use nusatrade_app::brokers::service::{
    BrokerService, MAX_CONNECTIONS_PER_USER, NO_CONNECTOR_MESSAGE, SYNC_SENT_MESSAGE,
};
use nusatrade_app::connector::{AccountSnapshot, ConnectorRegistry, LinkHealth};
use nusatrade_app::http::layers;
use nusatrade_app::ports::*;
use nusatrade_app::trading::orders::store::SOURCE_API;
use nusatrade_app::trading::orders::{OrderService, PlaceOrder, TradingConfig};
use nusatrade_domain::instrument::lookup;
use nusatrade_domain::money::Side;
use nusatrade_local::adapters::LocalPush;
use nusatrade_local::adapters::push::Outbound;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt;
use uuid::Uuid;

struct World {
    app: Router,
    auth: AuthService,
    brokers: BrokerService,
    registry: ConnectorRegistry,
    push: Arc<LocalPush>,
    clock: Arc<ManualClock>,
    ports: Ports,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let common::Base { dir, clock, push, ports, auth } = common::base();
    let state = BrokersState::new(auth.authenticator(), &ports);
    let app = layers::platform(router(state.clone(), None));
    let registry = ConnectorRegistry::new(ports.store.clone(), ports.clock.clone());
    World { app, auth, brokers: state.brokers, registry, push, clock, ports, _dir: dir }
}

impl World {
    async fn user(&self, email: &str) -> User {
        common::register(&self.auth, email).await
    }

    /// The same user with a fresh access token.
    async fn login(&self, u: &User) -> User {
        let t = self.auth.login(&u.email, PW, &meta()).await.unwrap();
        User { id: u.id, email: u.email.clone(), token: t.access_token }
    }

    async fn current(&self, u: &User) -> CurrentUser {
        self.auth.authenticator().authenticate(&u.token).await.unwrap()
    }

    /// One request; the status and the body (JSON, or the raw text as a JSON string).
    async fn call(&self, method: &str, uri: &str, user: Option<&User>, body: Option<Value>) -> (StatusCode, Value) {
        let (status, bytes) = self.raw(method, uri, user, body.map(|b| b.to_string())).await;
        let v =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    async fn raw(&self, method: &str, uri: &str, user: Option<&User>, body: Option<String>) -> (StatusCode, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(u) = user {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", u.token));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, bytes.to_vec())
    }

    /// Creates a connection through the route; its id.
    async fn create(&self, u: &User, body: Value) -> Uuid {
        let (status, v) = self.call("POST", "/api/v1/brokers/connections", Some(u), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().parse().unwrap()
    }

    /// A connector socket holding the connection: registered with the push and in the registry.
    async fn connector(&self, u: &User, connection: Uuid, ws: &str) -> mpsc::Receiver<Outbound> {
        let rx = self.push.register(ws);
        self.registry.register_connector(ws, u.id, &u.email, connection).await.unwrap();
        rx
    }
}

fn frames(rx: &mut mpsc::Receiver<Outbound>) -> Vec<Outbound> {
    let mut out = Vec::new();
    while let Ok(f) = rx.try_recv() {
        out.push(f);
    }
    out
}

fn json_frames(rx: &mut mpsc::Receiver<Outbound>) -> Vec<Value> {
    frames(rx)
        .into_iter()
        .map(|f| match f {
            Outbound::Text(t) => serde_json::from_str(&t).unwrap(),
            Outbound::Close => json!("CLOSE"),
        })
        .collect()
}

fn is_iso_z(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.ends_with('Z') && DateTime::parse_from_rfc3339(s).is_ok())
}

#[tokio::test]
async fn create_list_get_update_delete() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let (status, list) = w.call("GET", "/api/v1/brokers/connections", Some(&ana), None).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));

    // the original connector's create
    let body =
        json!({"broker_name": "ICMarkets (SC) Pty Ltd", "account_number": "5123456", "server": "ICMarketsSC-Demo"});
    let (status, created) = w.call("POST", "/api/v1/brokers/connections", Some(&ana), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected =
        ["id", "broker_name", "account_number", "server", "is_active", "last_connected_at", "created_at"];
    expected.sort_unstable();
    assert_eq!(keys, expected, "exactly the original's ConnectionResponse");
    assert_eq!(created["broker_name"], "ICMarkets (SC) Pty Ltd");
    assert_eq!(created["account_number"], "5123456");
    assert_eq!(created["server"], "ICMarketsSC-Demo");
    assert_eq!(created["is_active"], false);
    assert_eq!(created["last_connected_at"], Value::Null);
    assert!(is_iso_z(&created["created_at"]), "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // defaults: broker_name "MetaTrader 5", nickname ignored
    w.clock.advance(chrono::Duration::seconds(1));
    let (status, second) =
        w.call("POST", "/api/v1/brokers/connections", Some(&ana), Some(json!({"nickname": "spare"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["broker_name"], "MetaTrader 5");
    assert_eq!((&second["account_number"], &second["server"]), (&Value::Null, &Value::Null));
    assert!(second.get("nickname").is_none());

    // the list, oldest first: the connector reuses the one whose account and server match
    let (_, list) = w.call("GET", "/api/v1/brokers/connections", Some(&ana), None).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0], created);
    let reused = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["account_number"] == "5123456" && c["server"] == "ICMarketsSC-Demo")
        .unwrap();
    assert_eq!(reused["id"], id.as_str());

    let (status, one) = w.call("GET", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!((status, &one), (StatusCode::OK, &created));

    // PUT overwrites: omitted fields go back to the default / null
    let (status, updated) = w
        .call("PUT", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), Some(json!({"server": " Live-2 "})))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["broker_name"], "MetaTrader 5");
    assert_eq!(updated["account_number"], Value::Null);
    assert_eq!(updated["server"], "Live-2");
    assert_eq!(updated["created_at"], created["created_at"]);
    let (_, one) = w.call("GET", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!(one, updated);

    let (status, deleted) = w.call("DELETE", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!((status, deleted), (StatusCode::OK, json!({ "deleted": id })));
    let (status, gone) = w.call("GET", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!((status, gone), (StatusCode::NOT_FOUND, json!({"detail": "Connection not found"})));
    let (status, again) = w.call("DELETE", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!((status, again), (StatusCode::NOT_FOUND, json!({"detail": "Connection not found"})));
    let (_, list) = w.call("GET", "/api/v1/brokers/connections", Some(&ana), None).await;
    assert_eq!(list, json!([second]));
}

#[tokio::test]
async fn other_users_ids_are_not_found_and_auth_is_required() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let bo = w.user("bo@example.com").await;
    let id = w.create(&ana, json!({"account_number": "1"})).await;
    let _rx = w.connector(&ana, id, "ws-ana").await;

    let base = format!("/api/v1/brokers/connections/{id}");
    for (method, uri, body) in [
        ("GET", base.clone(), None),
        ("PUT", base.clone(), Some(json!({"broker_name": "mine now"}))),
        ("DELETE", base.clone(), None),
        ("GET", format!("{base}/status"), None),
        ("POST", format!("{base}/sync"), None),
        ("POST", format!("{base}/disconnect"), None),
    ] {
        let (status, v) = w.call(method, &uri, Some(&bo), body).await;
        assert_eq!((status, v), (StatusCode::NOT_FOUND, json!({"detail": "Connection not found"})), "{method} {uri}");
    }
    let (_, list) = w.call("GET", "/api/v1/brokers/connections", Some(&bo), None).await;
    assert_eq!(list, json!([]));
    // Ana's connection and its connector are untouched.
    let (status, mine) = w.call("GET", &base, Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&mine["broker_name"], &mine["is_active"]), (&json!("MetaTrader 5"), &json!(true)));
    assert!(w.push.is_connected("ws-ana"));

    // unknown and malformed ids
    let unknown = format!("/api/v1/brokers/connections/{}", Uuid::new_v4());
    assert_eq!(w.call("GET", &unknown, Some(&ana), None).await.0, StatusCode::NOT_FOUND);
    let (status, v) = w.call("GET", "/api/v1/brokers/connections/not-a-uuid", Some(&ana), None).await;
    assert_eq!(
        (status, v),
        (StatusCode::BAD_REQUEST, json!({"detail": "Invalid connection_id format. Must be a valid UUID."}))
    );
    let (status, _) = w.call("POST", "/api/v1/brokers/connections/123/sync", Some(&ana), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // no token, bad token
    let (status, v) = w.call("GET", "/api/v1/brokers/connections", None, None).await;
    assert_eq!((status, v), (StatusCode::UNAUTHORIZED, json!({"detail": "Not authenticated"})));
    let forged = User { id: ana.id, email: ana.email.clone(), token: "eyJhbGciOiJIUzI1NiJ9.e30.x".into() };
    let (status, v) = w.call("POST", "/api/v1/brokers/connections", Some(&forged), Some(json!({}))).await;
    assert_eq!((status, v), (StatusCode::UNAUTHORIZED, json!({"detail": "Could not validate credentials"})));

    // the helpers of the WebSocket handler agree
    assert!(w.brokers.owns(ana.id, id).await.unwrap());
    assert!(!w.brokers.owns(bo.id, id).await.unwrap());
    assert!(!w.brokers.owns(ana.id, Uuid::new_v4()).await.unwrap());
}

#[tokio::test]
async fn invalid_bodies_answer_422_lists() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let uri = "/api/v1/brokers/connections";

    let (status, v) = w
        .call(
            "POST",
            uri,
            Some(&ana),
            Some(json!({
                "broker_name": "x".repeat(101),
                "account_number": 5123456,
                "server": "Demo\u{7}",
                "nickname": false,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let detail = v["detail"].as_array().unwrap();
    let got: Vec<(&str, &Value)> = detail.iter().map(|e| (e["type"].as_str().unwrap(), &e["loc"])).collect();
    assert_eq!(
        got,
        vec![
            ("string_too_long", &json!(["body", "broker_name"])),
            ("string_type", &json!(["body", "account_number"])),
            ("value_error", &json!(["body", "server"])),
            ("string_type", &json!(["body", "nickname"])),
        ]
    );
    assert_eq!(detail[0]["msg"], "String should have at most 100 characters");
    assert_eq!(detail[1]["input"], 5123456);

    for body in [
        json!({"broker_name": ""}),
        json!({"broker_name": null}),
        json!({"account_number": "9".repeat(51)}),
        json!({"server": "s".repeat(101)}),
        json!({"server": "line\nbreak"}),
        json!(["not", "an", "object"]),
    ] {
        let (status, v) = w.call("POST", uri, Some(&ana), Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {v}");
        assert!(v["detail"].is_array(), "{v}");
    }
    let (status, v) = w.raw("POST", uri, Some(&ana), Some("{not json".into())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{}", String::from_utf8_lossy(&v));

    // PUT validates the same way, before looking the connection up
    let id = w.create(&ana, json!({})).await;
    let (status, _) =
        w.call("PUT", &format!("{uri}/{id}"), Some(&ana), Some(json!({"account_number": "1".repeat(60)}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = w.call("GET", uri, Some(&ana), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing invalid was stored");
}

#[tokio::test]
async fn at_most_fifty_connections_per_user() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let bo = w.user("bo@example.com").await;
    let mut ids = Vec::new();
    for n in 0..MAX_CONNECTIONS_PER_USER {
        ids.push(w.create(&ana, json!({"account_number": n.to_string()})).await);
    }
    let (status, v) = w.call("POST", "/api/v1/brokers/connections", Some(&ana), Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"detail": "Maximum 50 broker connections reached. Delete a connection before adding another."})
    );
    let (_, list) = w.call("GET", "/api/v1/brokers/connections", Some(&ana), None).await;
    assert_eq!(list.as_array().unwrap().len(), 50);
    // another user is not affected
    w.create(&bo, json!({})).await;

    // a delete frees a place
    let (status, _) = w.call("DELETE", &format!("/api/v1/brokers/connections/{}", ids[7]), Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK);
    w.create(&ana, json!({})).await;
    let (status, _) = w.call("POST", "/api/v1/brokers/connections", Some(&ana), Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // a counter that drifted above the real count (a connection removed behind the service's back) is
    // repaired on the next refused create
    w.ports.store.delete(&nusatrade_app::brokers::broker_key(ana.id, ids[8]), None).await.unwrap();
    w.create(&ana, json!({})).await;
    let (status, _) = w.call("POST", "/api/v1/brokers/connections", Some(&ana), Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_under_concurrent_creates() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let requests = (0..70)
        .map(|n| w.call("POST", "/api/v1/brokers/connections", Some(&ana), Some(json!({"server": n.to_string()}))));
    let answers = futures::future::join_all(requests).await;
    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let refused = answers.iter().filter(|(s, _)| *s == StatusCode::BAD_REQUEST).count();
    assert_eq!((created, refused), (50, 20), "{:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    let (_, list) = w.call("GET", "/api/v1/brokers/connections", Some(&ana), None).await;
    assert_eq!(list.as_array().unwrap().len(), 50);
}

#[tokio::test]
async fn status_offline_then_online_with_account_and_link_health() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let id = w.create(&ana, json!({"account_number": "5123456"})).await;
    let uri = format!("/api/v1/brokers/connections/{id}/status");

    let (status, v) = w.call("GET", &uri, Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({
            "id": id, "status": "offline", "is_connected": false, "connected_since": null,
            "last_heartbeat": null, "last_message_at": null, "latency_ms": null, "mt5_connected": false,
            "account_info": null, "account_updated_at": null, "positions_synced": null, "positions_synced_at": null,
            "positions_snapshot": null, "reconciliation": null, "report_error": null, "capabilities": null,
            "flags": [],
        })
    );

    // a connector holds it and MT5 reported the account
    let connected_at = w.clock.now();
    let _rx = w.connector(&ana, id, "ws-1").await;
    let snapshot: AccountSnapshot = serde_json::from_value(json!({
        "broker_connection_id": id, "balance": "10000.50", "equity": "10025.25", "margin": "200",
        "free_margin": "9825.25", "profit": "24.75", "leverage": 500, "currency": "USD",
        "reported_at": "2027-01-15T08:00:00Z",
    }))
    .unwrap();
    w.registry.save_account(ana.id, &snapshot).await.unwrap();
    let (_, v) = w.call("GET", &uri, Some(&ana), None).await;
    assert_eq!(v["status"], "online");
    assert_eq!(v["is_connected"], true);
    assert_eq!(v["connected_since"], connected_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    assert_eq!(v["mt5_connected"], Value::Null, "not reported yet");
    assert_eq!(v["last_heartbeat"], Value::Null);
    assert_eq!(
        v["account_info"],
        json!({"balance": 10000.5, "equity": 10025.25, "margin": 200.0, "free_margin": 9825.25, "profit": 24.75,
               "leverage": 500, "currency": "USD"})
    );
    assert_eq!(v["account_updated_at"], "2027-01-15T08:00:00.000000Z");
    let (_, list) = w.call("GET", "/api/v1/brokers/connections", Some(&ana), None).await;
    assert_eq!(list[0]["is_active"], true, "is_active follows the live link");

    // what the WebSocket handler records on the link
    let t = w.clock.now() + chrono::Duration::seconds(30);
    let health = LinkHealth {
        last_heartbeat: Some(t),
        last_message_at: Some(t),
        latency_ms: Some(42),
        mt5_connected: Some(true),
        positions_count: Some(3),
        positions_synced_at: Some(t),
    };
    assert!(!w.registry.record_link_health(ana.id, id, "ws-other", &health).await.unwrap(), "not its link");
    assert!(w.registry.record_link_health(ana.id, id, "ws-1", &health).await.unwrap());
    let (_, v) = w.call("GET", &uri, Some(&ana), None).await;
    let ts = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(v["last_heartbeat"], ts.as_str());
    assert_eq!(v["last_message_at"], ts.as_str());
    assert_eq!(v["latency_ms"], 42);
    assert_eq!(v["mt5_connected"], true);
    assert_eq!(v["positions_synced"], 3);
    assert_eq!(v["positions_synced_at"], ts.as_str());
    // the connector stated no capabilities (the original): its reports are read only while MT5 holds none
    assert_eq!(v["reconciliation"], nusatrade_app::connector::reporting::LIMITED);
    // a replacing connector starts with a clean record
    let _rx2 = w.connector(&ana, id, "ws-2").await;
    let (_, v) = w.call("GET", &uri, Some(&ana), None).await;
    assert_eq!((&v["latency_ms"], &v["positions_synced"]), (&Value::Null, &Value::Null));

    // the link expires with API Gateway's connection limit even without $disconnect
    w.clock.advance(chrono::Duration::hours(3));
    let ana = w.login(&ana).await; // the access token expired too
    let (_, v) = w.call("GET", &uri, Some(&ana), None).await;
    assert_eq!((&v["status"], &v["is_connected"]), (&json!("offline"), &json!(false)));
    assert_eq!(v["account_info"]["balance"], 10000.5, "the last snapshot stays, with its time");
}

#[tokio::test]
async fn sync_pushes_the_requests_to_the_live_connector() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let id = w.create(&ana, json!({})).await;
    let uri = format!("/api/v1/brokers/connections/{id}/sync");

    // offline: the original's answer, nothing sent
    let (status, v) = w.call("POST", &uri, Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({"id": id, "synced": false, "positions_count": 0, "trades_synced": 0, "message": NO_CONNECTOR_MESSAGE})
    );

    let mut rx = w.connector(&ana, id, "ws-sync").await;
    let health = LinkHealth { positions_count: Some(2), ..LinkHealth::default() };
    w.registry.record_link_health(ana.id, id, "ws-sync", &health).await.unwrap();
    w.clock.advance(chrono::Duration::seconds(5));
    let (status, v) = w.call("POST", &uri, Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({"id": id, "synced": true, "positions_count": 2, "trades_synced": 0, "message": SYNC_SENT_MESSAGE})
    );
    let sent = json_frames(&mut rx);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0]["type"], "SYNC_REQUEST");
    assert_eq!(sent[0]["connection_id"], id.to_string());
    assert_eq!(
        (&sent[0]["sync_positions"], &sent[0]["sync_trades"], &sent[0]["sync_account"]),
        (&json!(true), &json!(true), &json!(true))
    );
    let request_id = sent[0]["request_id"].as_str().unwrap();
    assert!(request_id.starts_with("sync_"), "{request_id}");
    assert_eq!(sent[1]["type"], "GET_POSITIONS");
    assert_eq!(sent[2]["type"], "GET_ACCOUNT");
    assert!(sent[1]["request_id"].as_str().unwrap().starts_with(request_id));
    // the contract: a successful sync updates last_connected_at
    let (_, one) = w.call("GET", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!(one["last_connected_at"], w.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));

    // the socket went away without $disconnect: the push answers Gone, the link is removed
    drop(rx);
    let (status, v) = w.call("POST", &uri, Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&v["synced"], &v["message"]), (&json!(false), &json!(NO_CONNECTOR_MESSAGE)));
    assert!(w.registry.link(ana.id, id).await.unwrap().is_none());
    assert!(w.registry.connection("ws-sync").await.unwrap().is_none());
    let (_, one) = w.call("GET", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!(one["is_active"], false);

    // a link whose socket the push never knew is gone as well
    w.registry.register_connector("ws-ghost", ana.id, &ana.email, id).await.unwrap();
    let (_, v) = w.call("POST", &uri, Some(&ana), None).await;
    assert_eq!(v["synced"], false);
    assert!(w.registry.link(ana.id, id).await.unwrap().is_none());
}

#[tokio::test]
async fn disconnect_closes_the_connector_socket() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let id = w.create(&ana, json!({})).await;
    let mut rx = w.connector(&ana, id, "ws-d").await;
    w.brokers.mark_connected(ana.id, id, w.clock.now()).await.unwrap();
    let record = w.ports.store.get(&nusatrade_app::brokers::broker_key(ana.id, id)).await.unwrap().unwrap();
    assert_eq!(record.get_bool("is_active"), Some(true));

    let (status, v) = w.call("POST", &format!("/api/v1/brokers/connections/{id}/disconnect"), Some(&ana), None).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"id": id, "status": "disconnected"})));
    assert_eq!(frames(&mut rx), vec![Outbound::Close]);
    assert!(!w.push.is_connected("ws-d"));
    assert!(w.registry.link(ana.id, id).await.unwrap().is_none());
    let record = w.ports.store.get(&nusatrade_app::brokers::broker_key(ana.id, id)).await.unwrap().unwrap();
    assert_eq!(record.get_bool("is_active"), Some(false));
    let (_, one) = w.call("GET", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!(one["is_active"], false);
    assert!(is_iso_z(&one["last_connected_at"]), "kept from the connect: {one}");

    // without a live connector it only clears the flag
    let (status, _) = w.call("POST", &format!("/api/v1/brokers/connections/{id}/disconnect"), Some(&ana), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn delete_closes_the_connector_and_leaves_orders_alone() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let id = w.create(&ana, json!({"account_number": "5123456"})).await;
    let mut rx = w.connector(&ana, id, "ws-del").await;

    // an order placed through that connection
    let orders = OrderService::new(&w.ports, TradingConfig::default());
    let eurusd = lookup("EURUSD").unwrap();
    let place = PlaceOrder {
        instrument: eurusd,
        side: Side::Buy,
        lots: eurusd.validate_lots("0.1".parse().unwrap()).unwrap(),
        price: "1.085".parse().unwrap(),
        stop_loss: None,
        take_profit: None,
        broker_connection_id: Some(id),
        trailing_stop: None,
        source: SOURCE_API,
    };
    let reply = orders.place(&w.current(&ana).await, place, None).await.unwrap();
    assert_eq!(placed_status(&reply).as_u16(), 201, "{}", reply.body);
    let order_id: Uuid = reply.body["trade"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(json_frames(&mut rx)[0]["type"], "TRADE_OPEN");

    let (status, v) = w.call("DELETE", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"deleted": id})));
    assert_eq!(frames(&mut rx), vec![Outbound::Close], "the live connector is closed");
    assert!(w.registry.link(ana.id, id).await.unwrap().is_none());
    assert!(w.registry.connection("ws-del").await.unwrap().is_none());
    assert!(!w.brokers.owns(ana.id, id).await.unwrap(), "a reconnect is refused at $connect");
    let order = orders.get(ana.id, order_id).await.unwrap();
    assert_eq!(order.broker_connection_id, Some(id), "the order keeps its reference");
}

#[tokio::test]
async fn connect_and_disconnect_helpers_of_the_websocket_handler() {
    let w = world();
    let ana = w.user("ana@example.com").await;
    let id = w.create(&ana, json!({})).await;
    let key = nusatrade_app::brokers::broker_key(ana.id, id);

    // $connect
    let now = w.clock.now();
    let _rx1 = w.connector(&ana, id, "ws-a").await;
    w.brokers.mark_connected(ana.id, id, now).await.unwrap();
    let item = w.ports.store.get(&key).await.unwrap().unwrap();
    assert_eq!(item.get_bool("is_active"), Some(true));
    let (_, one) = w.call("GET", &format!("/api/v1/brokers/connections/{id}"), Some(&ana), None).await;
    assert_eq!(one["last_connected_at"], now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));

    // a second connector replaces the first; the first one's $disconnect must not mark it inactive
    let _rx2 = w.connector(&ana, id, "ws-b").await;
    w.registry.unregister("ws-a").await.unwrap();
    assert!(!w.brokers.mark_disconnected(ana.id, id).await.unwrap());
    assert_eq!(w.ports.store.get(&key).await.unwrap().unwrap().get_bool("is_active"), Some(true));
    // the holder's $disconnect does
    w.registry.unregister("ws-b").await.unwrap();
    assert!(w.brokers.mark_disconnected(ana.id, id).await.unwrap());
    assert_eq!(w.ports.store.get(&key).await.unwrap().unwrap().get_bool("is_active"), Some(false));

    // a deleted connection: $connect is told, $disconnect is quiet
    w.brokers.delete(ana.id, id).await.unwrap();
    assert_eq!(w.brokers.mark_connected(ana.id, id, now).await.unwrap_err().to_string(), "Connection not found");
    assert!(!w.brokers.mark_disconnected(ana.id, id).await.unwrap());
    assert!(w.ports.store.get(&key).await.unwrap().is_none(), "no partial record resurrected");
}

#[tokio::test]
async fn supported_brokers_is_public_and_exact() {
    let w = world();
    let (status, body) = w.raw("GET", "/api/v1/brokers/supported-brokers", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let expected = r#"{"brokers":[{"id":"mt5","name":"MetaTrader 5","description":"Industry standard forex trading platform","requires_connector":true},{"id":"mt4","name":"MetaTrader 4","description":"Legacy forex trading platform (coming soon)","requires_connector":true,"status":"coming_soon"}]}"#;
    assert_eq!(String::from_utf8(body).unwrap(), expected);
    assert_eq!(SUPPORTED_BROKERS, expected);
    let req = Request::builder().uri("/api/v1/brokers/supported-brokers").body(Body::empty()).unwrap();
    let resp = w.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
}
