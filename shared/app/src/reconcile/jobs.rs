//! The messages of the `reconcile` queue (its consumer: [`super::consumer`]). Bodies are JSON objects tagged by `kind`:
//!
//! | `kind` | fields | sent by | what the consumer does |
//! |---|---|---|---|
//! | `ack_timeout` | `user_id`, `connection_id`, `request_id`, `sent_at` | the order use case, per command sent to a connector, delayed by `NUSATRADE_ACK_TIMEOUT_SECS` | the order becomes `unknown` (open) or stays in flight (close/modify); while it still waits, its connection is watched and asked for evidence |
//! | `snapshot` | `user_id`, `connection_id`, `received_at` | the connector channel, when a positions report was stored | one reconciliation run of that connection |
//! | `ask` | `user_id`, `connection_id`, `history_from` | a run that left unresolved orders too recent to compare (delayed until they are old enough) | the connection is asked for MT5's history again (`SYNC_REQUEST`) |
//! | `sweep_in_flight` | `shard?`, `cursor?` | the schedule, every minute (`{"kind":"sweep_in_flight"}`) | without `shard`: one message per shard; with it: each watched connection of a page is asked for history (`SYNC_REQUEST`) |
//! | `sweep_connections` | `shard?`, `cursor?` | the schedule, every 5 minutes (`{"kind":"sweep_connections"}`) | the same over the active connections, asked for `GET_POSITIONS` |
//! | `greet_dashboard` | `connection_id`, `attempt` | the dashboard channel's `$connect` | `CONNECTIONS_STATUS` pushed as soon as the socket is up ([`crate::brokers::greeting`]) |
//!
//! Every kind is idempotent under redelivery (conditional writes, requests that may be repeated).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::brokers::greeting::Greet;
use crate::jobs::{JobError, Schedule};
use crate::ports::Cursor;

/// The logical queue (its `ack_timeout` messages are written by the order side: `AckTimeouts`).
pub const QUEUE: &str = crate::trading::orders::timeouts::RECONCILE_QUEUE;

/// A message of the `reconcile` queue (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReconcileJob {
    AckTimeout {
        user_id: Uuid,
        connection_id: Uuid,
        request_id: String,
        sent_at: DateTime<Utc>,
    },
    Snapshot {
        user_id: Uuid,
        connection_id: Uuid,
        received_at: DateTime<Utc>,
    },
    Ask {
        user_id: Uuid,
        connection_id: Uuid,
        history_from: DateTime<Utc>,
    },
    SweepInFlight {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<Cursor>,
    },
    SweepConnections {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<Cursor>,
    },
    GreetDashboard(Greet),
}

impl ReconcileJob {
    /// The message body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a message body.
    pub fn parse(body: &str) -> Result<ReconcileJob, JobError> {
        serde_json::from_str(body)
            .map_err(|e| JobError::Invalid(format!("not a reconcile message ({e}): {}", cut(body))))
    }
}

fn cut(s: &str) -> String {
    s.chars().take(200).collect()
}

/// The scheduled messages of the `reconcile` queue: EventBridge Scheduler in AWS (template.yaml's
/// `ReconcileInFlightSchedule` / `ReconcileConnectionsSchedule` carry these exact bodies), the local scheduler on a
/// laptop.
pub const SCHEDULES: &[Schedule] = &[
    Schedule {
        name: "reconcile-in-flight",
        queue: QUEUE,
        every: Duration::from_secs(60),
        body: r#"{"kind":"sweep_in_flight"}"#,
    },
    Schedule {
        name: "reconcile-connections",
        queue: QUEUE,
        every: Duration::from_secs(300),
        body: r#"{"kind":"sweep_connections"}"#,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_schedules_parse() {
        let job = ReconcileJob::AckTimeout {
            user_id: Uuid::from_u128(1),
            connection_id: Uuid::from_u128(2),
            request_id: format!("{}:close:3", Uuid::from_u128(4)),
            sent_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let body = job.to_json();
        assert!(body.starts_with(r#"{"kind":"ack_timeout","#), "{body}");
        assert_eq!(ReconcileJob::parse(&body).unwrap(), job);
        // What the order side schedules is read as this job.
        let ReconcileJob::AckTimeout { user_id, connection_id, request_id, sent_at } = &job else { unreachable!() };
        let scheduled =
            crate::trading::orders::timeouts::AckTimeoutMessage::new(*user_id, *connection_id, request_id, *sent_at);
        assert_eq!(ReconcileJob::parse(&scheduled.to_json()).unwrap(), job);
        assert_eq!(
            ReconcileJob::parse(SCHEDULES[0].body).unwrap(),
            ReconcileJob::SweepInFlight { shard: None, cursor: None }
        );
        assert_eq!(
            ReconcileJob::parse(SCHEDULES[1].body).unwrap(),
            ReconcileJob::SweepConnections { shard: None, cursor: None }
        );
        let page =
            ReconcileJob::SweepConnections { shard: Some(3), cursor: Some(Cursor::parse("eyJhIjoiYiJ9").unwrap()) };
        assert_eq!(ReconcileJob::parse(&page.to_json()).unwrap(), page);
        for bad in ["", "{}", r#"{"kind":"nope"}"#, r#"{"kind":"snapshot"}"#, "[1]"] {
            assert!(matches!(ReconcileJob::parse(bad), Err(JobError::Invalid(_))), "{bad}");
        }
    }
}
