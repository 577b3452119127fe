//! Pushes to the local gateway's WebSocket connections.
//!
//! The gateway registers each accepted socket under its connection id and forwards what it receives
//! from the returned channel to the socket; it unregisters the id when the socket ends. A post to an
//! id that is not registered (or whose socket task has gone) is `Gone`, as API Gateway answers 410.
//! A connection whose backlog is full (a consumer that does not keep up) is dropped: the post fails
//! with `Unavailable` and the registration is removed, so the gateway sees its channel end and closes
//! the socket; later posts are `Gone`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use nusatrade_app::ports::push::validate_post;
use nusatrade_app::ports::{Push, PushError, PushOutcome};
use tokio::sync::mpsc;

/// Messages buffered per connection before it counts as a slow consumer.
pub const CONNECTION_BACKLOG: usize = 256;

/// What the gateway should do with a connection's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// Send a text frame.
    Text(String),
    /// Close the socket (server side).
    Close,
}

/// The local implementation of [`Push`]: a registry of live connections.
#[derive(Debug, Default)]
pub struct LocalPush {
    connections: Mutex<HashMap<String, mpsc::Sender<Outbound>>>,
}

impl LocalPush {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a connection and returns the channel of what to send on its socket. Registering an
    /// id again replaces the previous registration (whose channel then ends).
    pub fn register(&self, connection_id: &str) -> mpsc::Receiver<Outbound> {
        let (tx, rx) = mpsc::channel(CONNECTION_BACKLOG);
        self.lock().insert(connection_id.to_owned(), tx);
        rx
    }

    /// Forgets a connection (its socket has ended). Unknown ids are ignored.
    pub fn unregister(&self, connection_id: &str) {
        self.lock().remove(connection_id);
    }

    pub fn is_connected(&self, connection_id: &str) -> bool {
        self.lock().get(connection_id).is_some_and(|tx| !tx.is_closed())
    }

    /// How many connections are registered.
    pub fn connection_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<Outbound>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Push for LocalPush {
    async fn post(&self, connection_id: &str, data: Bytes) -> Result<PushOutcome, PushError> {
        validate_post(connection_id, &data)?;
        let text = String::from_utf8(data.to_vec())
            .map_err(|_| PushError::Invalid("a pushed message must be UTF-8 text".into()))?;
        let mut connections = self.lock();
        let Some(tx) = connections.get(connection_id) else {
            return Ok(PushOutcome::Gone);
        };
        match tx.try_send(Outbound::Text(text)) {
            Ok(()) => Ok(PushOutcome::Delivered),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                connections.remove(connection_id);
                Ok(PushOutcome::Gone)
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping the sender ends the gateway's channel once drained: it closes the socket.
                connections.remove(connection_id);
                tracing::warn!(connection_id, "push backlog full: dropping the connection");
                Err(PushError::Unavailable("connection backlog full".into()))
            }
        }
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        validate_post(connection_id, &[])?;
        if let Some(tx) = self.lock().remove(connection_id) {
            // When the backlog is full the close frame cannot be queued, but dropping the sender
            // ends the channel, which closes the socket all the same.
            let _ = tx.try_send(Outbound::Close);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_to_registered_connections() {
        let push = LocalPush::new();
        let mut rx = push.register("c1");
        assert!(push.is_connected("c1"));
        assert_eq!(push.post("c1", Bytes::from_static(b"{\"a\":1}")).await, Ok(PushOutcome::Delivered));
        assert_eq!(rx.recv().await, Some(Outbound::Text("{\"a\":1}".into())));
        assert_eq!(push.post("c2", Bytes::from_static(b"x")).await, Ok(PushOutcome::Gone));
    }

    #[tokio::test]
    async fn gone_after_unregister_or_dropped_receiver() {
        let push = LocalPush::new();
        let _rx = push.register("c1");
        push.unregister("c1");
        assert!(!push.is_connected("c1"));
        assert_eq!(push.post("c1", Bytes::from_static(b"x")).await, Ok(PushOutcome::Gone));

        let rx = push.register("c2");
        drop(rx);
        assert!(!push.is_connected("c2"));
        assert_eq!(push.post("c2", Bytes::from_static(b"x")).await, Ok(PushOutcome::Gone));
        assert_eq!(push.connection_count(), 0);
    }

    #[tokio::test]
    async fn close_sends_close_and_forgets() {
        let push = LocalPush::new();
        let mut rx = push.register("c1");
        push.close("c1").await.unwrap();
        assert_eq!(rx.recv().await, Some(Outbound::Close));
        assert_eq!(rx.recv().await, None);
        assert_eq!(push.post("c1", Bytes::from_static(b"x")).await, Ok(PushOutcome::Gone));
        // Closing a gone connection is fine.
        push.close("c1").await.unwrap();
    }

    #[tokio::test]
    async fn refuses_invalid_posts() {
        let push = LocalPush::new();
        let _rx = push.register("c1");
        assert!(matches!(push.post("c1", Bytes::from_static(&[0xff, 0xfe])).await, Err(PushError::Invalid(_))));
        assert!(matches!(push.post("", Bytes::from_static(b"x")).await, Err(PushError::Invalid(_))));
        assert!(matches!(push.post("bad id", Bytes::from_static(b"x")).await, Err(PushError::Invalid(_))));
        let big = Bytes::from(vec![b'a'; nusatrade_app::ports::push::MAX_PUSH_BYTES + 1]);
        assert!(matches!(push.post("c1", big).await, Err(PushError::Invalid(_))));
        assert!(push.is_connected("c1"));
    }

    #[tokio::test]
    async fn slow_consumers_are_dropped() {
        let push = LocalPush::new();
        let mut rx = push.register("slow");
        for _ in 0..CONNECTION_BACKLOG {
            assert_eq!(push.post("slow", Bytes::from_static(b"m")).await, Ok(PushOutcome::Delivered));
        }
        assert_eq!(
            push.post("slow", Bytes::from_static(b"m")).await,
            Err(PushError::Unavailable("connection backlog full".into()))
        );
        assert!(!push.is_connected("slow"));
        assert_eq!(push.post("slow", Bytes::from_static(b"m")).await, Ok(PushOutcome::Gone));
        // The gateway drains what was queued, then sees the channel end.
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, CONNECTION_BACKLOG);
    }
}
