//! What the platform measures, named once. Written through the `metrics` facade: the local gateway renders it as
//! Prometheus text at `/metrics`, the Lambda functions write CloudWatch Embedded Metric Format lines (namespace
//! [`NAMESPACE`]; labels become dimensions) after each invocation. No metric carries user data: labels are route
//! templates, methods, status codes, outcomes, kinds and channel or queue names.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `http_requests_total` | counter | `route`, `method`, `status` | requests answered (`route` is the template, `unmatched` for 404s) |
//! | `http_request_duration_seconds` | histogram | `route`, `method` | time to answer |
//! | `orders_total` | counter | `outcome` | order placements: `sent`, `uncertain` (a 202: the command may not have left), `refused` |
//! | `order_commands_sent_total` | counter | – | trade commands delivered to a connector (the ack-timeout rate's denominator) |
//! | `order_acks_total` | counter | `kind`, `result` | acknowledgements (`open`/`close`/`modify`; `applied`, `unchanged` — a duplicate or stale ack —, `refused`, `unknown_order`) |
//! | `order_ack_latency_seconds` | histogram | `kind` | from a command's sending to its ack |
//! | `order_ack_timeouts_total` | counter | – | commands whose ack did not come in time (alarmed) |
//! | `websocket_connections` | gauge | `channel` | open WebSockets (local gateway) |
//! | `queue_messages_total` | counter | `queue`, `result` | queue messages handled: `done`, `retried`, `invalid` |
//! | `queue_redeliveries_total` | counter | `queue` | messages received more than once |
//! | `queue_depth` | gauge | `queue` | visible + in-flight messages (local queue) |
//! | `reconcile_repairs_total` | counter | `kind` | repairs written (`resolve_open`, `close_externally`, …) |
//! | `reconcile_conflicts_total` | counter | – | differences no rule resolves (alarmed) |
//! | `auth_login_failures_total` | counter | – | refused logins (bad credentials or TOTP code) |
//! | `auth_lockouts_total` | counter | – | accounts locked by failures |
//! | `auth_hash_queue_wait_seconds` | histogram | – | wait for a password-hashing slot |
//! | `backups_total` | counter | `result` | table backups: `completed`, `failed` |
//! | `backup_items_total` | counter | – | items written to backups |

use std::time::Duration;

/// The CloudWatch namespace of the Lambda functions' metrics (the template's alarms use it).
pub const NAMESPACE: &str = "NusaTrade";

pub const HTTP_REQUESTS: &str = "http_requests_total";
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
pub const ORDERS: &str = "orders_total";
pub const ORDER_COMMANDS_SENT: &str = "order_commands_sent_total";
pub const ORDER_ACKS: &str = "order_acks_total";
pub const ORDER_ACK_LATENCY: &str = "order_ack_latency_seconds";
pub const ORDER_ACK_TIMEOUTS: &str = "order_ack_timeouts_total";
pub const WEBSOCKETS: &str = "websocket_connections";
pub const QUEUE_MESSAGES: &str = "queue_messages_total";
pub const QUEUE_REDELIVERIES: &str = "queue_redeliveries_total";
pub const QUEUE_DEPTH: &str = "queue_depth";
pub const RECONCILE_REPAIRS: &str = "reconcile_repairs_total";
pub const RECONCILE_CONFLICTS: &str = "reconcile_conflicts_total";
pub const LOGIN_FAILURES: &str = "auth_login_failures_total";
pub const LOCKOUTS: &str = "auth_lockouts_total";
pub const HASH_QUEUE_WAIT: &str = "auth_hash_queue_wait_seconds";
pub const BACKUPS: &str = "backups_total";
pub const BACKUP_ITEMS: &str = "backup_items_total";

/// Every metric name above (the local `/metrics` test and the template's alarms check against it).
pub const ALL: &[&str] = &[
    HTTP_REQUESTS,
    HTTP_DURATION,
    ORDERS,
    ORDER_COMMANDS_SENT,
    ORDER_ACKS,
    ORDER_ACK_LATENCY,
    ORDER_ACK_TIMEOUTS,
    WEBSOCKETS,
    QUEUE_MESSAGES,
    QUEUE_REDELIVERIES,
    QUEUE_DEPTH,
    RECONCILE_REPAIRS,
    RECONCILE_CONFLICTS,
    LOGIN_FAILURES,
    LOCKOUTS,
    HASH_QUEUE_WAIT,
    BACKUPS,
    BACKUP_ITEMS,
];

/// Registers descriptions (shown as `# HELP` lines) with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route template, method and status");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to answer an HTTP request");
    describe_counter!(ORDERS, "Order placements by outcome (sent, uncertain, refused)");
    describe_counter!(ORDER_COMMANDS_SENT, "Trade commands delivered to a connector");
    describe_counter!(ORDER_ACKS, "Connector acknowledgements applied, by command kind and result");
    describe_histogram!(ORDER_ACK_LATENCY, Unit::Seconds, "Time from a trade command to its acknowledgement");
    describe_counter!(ORDER_ACK_TIMEOUTS, "Trade commands not acknowledged in time");
    describe_gauge!(WEBSOCKETS, "Open WebSocket connections by channel");
    describe_counter!(QUEUE_MESSAGES, "Queue messages handled, by queue and result");
    describe_counter!(QUEUE_REDELIVERIES, "Queue messages received more than once");
    describe_gauge!(QUEUE_DEPTH, "Messages in a queue (visible and in flight)");
    describe_counter!(RECONCILE_REPAIRS, "Reconciliation repairs written, by kind");
    describe_counter!(RECONCILE_CONFLICTS, "Reconciliation differences no rule resolves");
    describe_counter!(LOGIN_FAILURES, "Refused logins");
    describe_counter!(LOCKOUTS, "Accounts locked after repeated login failures");
    describe_histogram!(HASH_QUEUE_WAIT, Unit::Seconds, "Wait for a password-hashing slot");
    describe_counter!(BACKUPS, "Table backups by result");
    describe_counter!(BACKUP_ITEMS, "Items written to table backups");
}

/// One answered HTTP request.
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let (route, method) = (route.to_owned(), method.to_owned());
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method).record(elapsed.as_secs_f64());
}

pub fn order_placed(outcome: &'static str) {
    metrics::counter!(ORDERS, "outcome" => outcome).increment(1);
}

pub fn order_command_sent() {
    metrics::counter!(ORDER_COMMANDS_SENT).increment(1);
}

pub fn order_ack(kind: &'static str, result: &'static str, latency: Option<Duration>) {
    metrics::counter!(ORDER_ACKS, "kind" => kind, "result" => result).increment(1);
    if let Some(l) = latency {
        metrics::histogram!(ORDER_ACK_LATENCY, "kind" => kind).record(l.as_secs_f64());
    }
}

pub fn order_ack_timeout() {
    metrics::counter!(ORDER_ACK_TIMEOUTS).increment(1);
}

pub fn queue_message(queue: &'static str, result: &'static str, receive_count: u32) {
    metrics::counter!(QUEUE_MESSAGES, "queue" => queue, "result" => result).increment(1);
    if receive_count > 1 {
        metrics::counter!(QUEUE_REDELIVERIES, "queue" => queue).increment(1);
    }
}

pub fn reconcile_repair(kind: &'static str) {
    metrics::counter!(RECONCILE_REPAIRS, "kind" => kind).increment(1);
}

pub fn reconcile_conflict() {
    metrics::counter!(RECONCILE_CONFLICTS).increment(1);
}

pub fn login_failure(locked_now: bool) {
    metrics::counter!(LOGIN_FAILURES).increment(1);
    if locked_now {
        metrics::counter!(LOCKOUTS).increment(1);
    }
}

pub fn hash_queue_wait(wait: Duration) {
    metrics::histogram!(HASH_QUEUE_WAIT).record(wait.as_secs_f64());
}

pub fn backup(result: &'static str, items: u64) {
    metrics::counter!(BACKUPS, "result" => result).increment(1);
    metrics::counter!(BACKUP_ITEMS).increment(items);
}
