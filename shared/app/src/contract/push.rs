//! WebSocket push contract cases.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::ports::*;

/// A push adapter plus a way to play the client side of its connections.
#[async_trait]
pub trait PushHarness: Send + Sync {
    fn push(&self) -> Arc<dyn Push>;
    /// Opens a live connection and returns its id.
    async fn open(&self) -> String;
    /// The messages the connection has received so far.
    async fn received(&self, connection_id: &str) -> Vec<String>;
    /// The client goes away.
    async fn hang_up(&self, connection_id: &str);
    /// Whether the connection is still open (server side).
    async fn is_open(&self, connection_id: &str) -> bool;
}

#[async_trait]
pub trait PushFactory: Sync {
    async fn harness(&self) -> Box<dyn PushHarness>;
}

async fn eventually_received(h: &dyn PushHarness, id: &str, n: usize) -> Vec<String> {
    for _ in 0..50 {
        let got = h.received(id).await;
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.received(id).await
}

pub async fn post_to_live_connection_is_delivered(f: &impl PushFactory) {
    let h = f.harness().await;
    let id = h.open().await;
    let p = h.push();
    assert_eq!(p.post(&id, Bytes::from_static(br#"{"type":"PONG"}"#)).await.unwrap(), PushOutcome::Delivered);
    assert_eq!(p.post(&id, Bytes::from_static(br#"{"type":"WELCOME"}"#)).await.unwrap(), PushOutcome::Delivered);
    assert_eq!(eventually_received(h.as_ref(), &id, 2).await, [r#"{"type":"PONG"}"#, r#"{"type":"WELCOME"}"#]);
}

pub async fn post_to_gone_connection_is_gone(f: &impl PushFactory) {
    let h = f.harness().await;
    let p = h.push();
    assert_eq!(p.post("neverExisted=", Bytes::from_static(b"{}")).await.unwrap(), PushOutcome::Gone);
    let id = h.open().await;
    h.hang_up(&id).await;
    assert_eq!(p.post(&id, Bytes::from_static(b"{}")).await.unwrap(), PushOutcome::Gone);
}

pub async fn close_ends_the_connection(f: &impl PushFactory) {
    let h = f.harness().await;
    let p = h.push();
    let id = h.open().await;
    assert!(h.is_open(&id).await);
    p.close(&id).await.unwrap();
    assert!(!h.is_open(&id).await);
    assert_eq!(p.post(&id, Bytes::from_static(b"{}")).await.unwrap(), PushOutcome::Gone);
    p.close(&id).await.unwrap();
}

/// Revoking a session posts a notice then closes the socket: the notice arrives, then the connection ends.
pub async fn a_post_before_close_arrives_first(f: &impl PushFactory) {
    let h = f.harness().await;
    let p = h.push();
    let id = h.open().await;
    let notice = r#"{"type":"ERROR","code":"SESSION_REVOKED"}"#;
    assert_eq!(p.post(&id, Bytes::from_static(notice.as_bytes())).await.unwrap(), PushOutcome::Delivered);
    p.close(&id).await.unwrap();
    assert_eq!(eventually_received(h.as_ref(), &id, 1).await, [notice]);
    assert!(!h.is_open(&id).await);
}

pub async fn invalid_posts_are_refused(f: &impl PushFactory) {
    let h = f.harness().await;
    let p = h.push();
    let id = h.open().await;
    let big = Bytes::from(vec![b'x'; push::MAX_PUSH_BYTES + 1]);
    assert!(matches!(p.post(&id, big).await, Err(PushError::Invalid(_))));
    assert!(matches!(p.post("", Bytes::from_static(b"{}")).await, Err(PushError::Invalid(_))));
    assert!(matches!(p.post("has space", Bytes::from_static(b"{}")).await, Err(PushError::Invalid(_))));
}
