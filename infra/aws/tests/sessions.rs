//! Sockets bound to sessions in AWS (issue 18): API Gateway WebSocket events through `nusatrade_aws::websocket::handle`
//! over DynamoDB on moto, with the API Gateway Management push adapter (`ApiGwPush`) against the local fake of the
//! management API (it records `DeleteConnection`). Revoking a session — logout, password reset's revoke-all, revoke
//! others, refresh-token reuse — closes that session's connector and dashboard sockets; a socket that outlives its
//! session (its `$disconnect` not yet run) has every frame refused and applied to nothing.
//! The same over real sockets on the local gateway: tests/tests/sessions.rs.

mod common;

use common::channels::{PW, World, connect_event, eurusd_buy, message_event, meta, world};
use nusatrade_app::trading::orders::routes::placed_status;
use nusatrade_domain::order::OrderStatus;
use serde_json::json;
use uuid::Uuid;

impl World {
    fn revoked_notice(&self, ws: &str) -> bool {
        self.frames(ws).iter().any(|f| f["type"] == "ERROR" && f["code"] == "SESSION_REVOKED")
    }

    /// A registered user: id, e-mail, first session's access and refresh tokens.
    async fn user(&self) -> (Uuid, String, String, String) {
        let email = format!("{}@example.com", common::unique("sess"));
        let (out, pair) = self.auth.register(&email, PW, None, &meta()).await.unwrap();
        (out.id.parse().unwrap(), email, pair.access_token, pair.refresh_token)
    }

    /// An accepted connector socket (greeted) and an accepted dashboard socket of `token`'s session.
    async fn sockets(&self, token: &str, broker: Uuid) -> (String, String) {
        let (connector, browser) = (self.fake.open(), self.fake.open());
        let r = self.send(connect_event(&connector, &[("token", token), ("connection_id", &broker.to_string())])).await;
        assert_eq!(r.status_code, 200);
        assert_eq!(self.send(connect_event(&browser, &[("token", token)])).await.status_code, 200);
        self.send(message_event(&connector, json!({"type": "AUTH", "token": token}))).await;
        assert_eq!(self.frames(&connector)[0]["type"], "WELCOME");
        (connector, browser)
    }
}

#[tokio::test]
async fn logout_closes_the_sessions_sockets_through_delete_connection() {
    let w = world("sess").await;
    let (ana, email, token, _) = w.user().await;
    let broker = w.connection(ana).await;
    let (connector, browser) = w.sockets(&token, broker).await;
    // Another session of the same user keeps its dashboard.
    let other = w.auth.login(&email, PW, &meta()).await.unwrap();
    let keep = w.fake.open();
    assert_eq!(w.send(connect_event(&keep, &[("token", &other.access_token)])).await.status_code, 200);

    w.auth.logout(Some(&token), None, &meta()).await.unwrap();
    for ws in [&connector, &browser] {
        assert!(!w.fake.is_open(ws), "{ws} closed by DeleteConnection");
        assert!(w.revoked_notice(ws), "{ws} told why: {:?}", w.frames(ws));
    }
    assert!(w.fake.is_open(&keep), "the other session's dashboard stays");
    assert!(!w.revoked_notice(&keep));
}

#[tokio::test]
async fn revoke_others_and_refresh_reuse_close_the_revoked_sessions_sockets() {
    let w = world("sess").await;
    let (ana, email, token, _) = w.user().await;
    let broker = w.connection(ana).await;
    let second = w.auth.login(&email, PW, &meta()).await.unwrap();
    let (connector, browser) = w.sockets(&second.access_token, broker).await;
    let mine = w.fake.open();
    assert_eq!(w.send(connect_event(&mine, &[("token", &token)])).await.status_code, 200);

    let me = w.authn.authenticate(&token).await.unwrap();
    w.auth.revoke_other_sessions(&me, &meta()).await.unwrap();
    assert!(!w.fake.is_open(&connector) && !w.fake.is_open(&browser), "the other session's sockets closed");
    assert!(w.fake.is_open(&mine), "the caller's own dashboard stays");

    // A refresh token presented twice revokes its session: its dashboard goes too.
    let third = w.auth.login(&email, PW, &meta()).await.unwrap();
    let dash = w.fake.open();
    assert_eq!(w.send(connect_event(&dash, &[("token", &third.access_token)])).await.status_code, 200);
    w.auth.refresh(&third.refresh_token, &meta()).await.unwrap();
    assert!(w.auth.refresh(&third.refresh_token, &meta()).await.is_err(), "reuse refused");
    assert!(!w.fake.is_open(&dash), "the reused session's dashboard closed");
    assert!(w.fake.is_open(&mine));
}

#[tokio::test]
async fn a_revoked_sessions_connector_frame_is_refused_and_applies_nothing() {
    let w = world("sess").await;
    let (ana, _, token, _) = w.user().await;
    let broker = w.connection(ana).await;
    let (connector, _) = w.sockets(&token, broker).await;
    let user = w.authn.authenticate(&token).await.unwrap();
    let reply = w.orders.place(&user, eurusd_buy(), None).await.unwrap();
    assert_eq!(placed_status(&reply).as_u16(), 201, "{}", reply.body);
    let id: Uuid = reply.body["trade"]["id"].as_str().unwrap().parse().unwrap();
    let open = w.frames(&connector).into_iter().find(|f| f["type"] == "TRADE_OPEN").expect("TRADE_OPEN sent");

    // The session ends; the socket outlives it (API Gateway has not run its $disconnect yet: the fake keeps it).
    w.auth.logout(Some(&token), None, &meta()).await.unwrap();
    w.fake.open_as(&connector);
    let before = w.frames(&connector).len();
    let ack = json!({"type": "TRADE_RESULT", "request_id": open["request_id"], "success": true, "ticket": 987654,
        "price": 1.1});
    let r = w.send(message_event(&connector, ack)).await;
    assert_eq!(r.status_code, 200);
    let after = &w.frames(&connector)[before..];
    assert!(after.iter().any(|f| f["code"] == "SESSION_REVOKED"), "refused with a reason: {after:?}");
    assert!(!w.fake.is_open(&connector), "and closed again");
    let order = w.orders.get(ana, id).await.unwrap();
    assert_eq!(order.ticket, None, "the ack of a revoked session's socket is never applied");
    assert_eq!(order.status, OrderStatus::Pending, "still waiting for evidence");
}

#[tokio::test]
async fn the_dashboard_cap_refuses_one_more_with_a_reason() {
    let w = world("sess").await;
    let (_, _, token, _) = w.user().await;
    for _ in 0..nusatrade_app::connector::limits::DEFAULT_MAX_DASHBOARDS {
        assert_eq!(w.send(connect_event(&w.fake.open(), &[("token", &token)])).await.status_code, 200);
    }
    let r = w.send(connect_event(&w.fake.open(), &[("token", &token)])).await;
    assert_eq!(r.status_code, 429);
    let body = format!("{:?}", r.body);
    assert!(body.contains("Too many open dashboards"), "{body}");
}
