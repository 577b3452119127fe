//! The port contract suites: written once, run against every adapter (the embedded/local ones in
//! `infra/local/tests/contract.rs`, the AWS ones on moto in `infra/aws/tests/contract.rs`), so the
//! laptop runtime and production cannot drift.
//!
//! Each adapter's test file implements the small factory trait of a port and invokes the port's
//! macro, which expands to one `#[tokio::test]` per case:
//!
//! ```ignore
//! struct Embedded;
//! #[async_trait::async_trait]
//! impl nusatrade_app::contract::store::StoreFactory for Embedded { /* ... */ }
//! nusatrade_app::item_store_contract!(Embedded);
//! ```

pub mod backup;
pub mod blob;
pub mod mail;
pub mod orders;
pub mod push;
pub mod queue;
pub mod reconcile;
pub mod store;

/// Expands to one multi-threaded tokio test per case of a suite module.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($factory:expr, $suite:ident, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::contract::$suite::$case(&$factory).await;
            }
        )*
    };
}

/// The item store contract. `$factory` implements [`store::StoreFactory`].
#[macro_export]
macro_rules! item_store_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            store,
            [
                put_get_round_trip,
                put_conditions,
                update_upserts_and_returns_new,
                update_conditions_and_version_check,
                atomic_counters,
                delete_returns_old_item,
                transaction_commits_all,
                transaction_one_failed_condition_writes_nothing,
                transaction_validation,
                concurrent_conditional_updates_only_one_wins,
                concurrent_counter_increments_are_not_lost,
                query_prefix_order_and_direction,
                query_sort_key_ranges,
                pagination_over_several_pages,
                gsi_query_and_pagination,
                ttl_expired_items_are_not_returned,
                ttl_expired_items_are_absent_for_writes,
                cursor_from_another_partition_is_refused,
                invalid_requests_are_refused,
                values_round_trip,
                scan_segments_cover_every_item_once,
                scan_skips_expired_items,
                scan_pages_and_cursors,
                put_many_writes_and_replaces,
                put_many_refuses_invalid_batches,
            ]
        );
    };
}

/// The order use cases on a store adapter. `$factory` implements [`store::StoreFactory`].
#[macro_export]
macro_rules! orders_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            orders,
            [
                concurrent_placements_respect_the_limit,
                idempotency_key_sends_once,
                acks_apply_once,
                failure_ack_rejects_and_releases,
                close_follows_the_acks,
                modify_follows_the_acks,
                undeliverable_orders_are_rejected,
                uncertain_delivery_stays_unknown,
                margin_verification_and_lists,
                commands_wait_in_the_outbox_until_acked,
            ]
        );
    };
}

/// Reconciliation, ack timeouts and trailing stops over the order use cases on a store adapter. `$factory`
/// implements [`store::StoreFactory`].
#[macro_export]
macro_rules! reconcile_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            reconcile,
            [
                timeout_makes_unknown_then_the_snapshot_opens_with_the_real_fill,
                an_ack_in_time_makes_the_timeout_a_no_op,
                absence_from_a_covering_history_rejects_and_releases,
                open_absent_is_checked_then_closed_externally,
                manual_trades_are_adopted_once_and_count_against_the_limit,
                unusable_snapshots_change_nothing,
                books_follow_mt5_stops,
                sweeps_fan_out_and_ask_the_connectors,
                the_hook_queues_a_run_and_redelivery_changes_nothing,
                trailing_stops_move_protectively_at_most_every_15_seconds,
                position_monitor_status_and_sync,
            ]
        );
    };
}

/// Backup and restore on a store + blob store pair. `$factory` implements [`backup::BackupFactory`].
#[macro_export]
macro_rules! backup_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            backup,
            [
                backup_then_restore_gives_an_identical_item_set,
                corrupted_files_are_detected_before_anything_is_written,
                incomplete_backups_are_never_restored,
                non_empty_target_is_refused_unless_forced,
                redelivered_backup_message_is_idempotent,
            ]
        );
    };
}

/// The blob store contract. `$factory` implements [`blob::BlobFactory`].
#[macro_export]
macro_rules! blob_store_contract {
    ($factory:expr) => {
        $crate::__contract_cases!($factory, blob, [put_get_delete, get_refuses_oversize, list_by_prefix,]);
    };
}

/// The queue contract. `$factory` implements [`queue::QueueFactory`].
#[macro_export]
macro_rules! queue_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            queue,
            [
                send_receive_delete,
                visibility_timeout_redelivers_with_count,
                dead_letter_after_max_receives,
                delayed_message_is_invisible_until_due,
                stale_receipt_delete_is_harmless,
                invalid_requests_are_refused,
            ]
        );
    };
}

/// The WebSocket push contract. `$factory` implements [`push::PushFactory`].
#[macro_export]
macro_rules! push_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            push,
            [
                post_to_live_connection_is_delivered,
                post_to_gone_connection_is_gone,
                close_ends_the_connection,
                invalid_posts_are_refused,
            ]
        );
    };
}

/// The mailer contract. `$factory` implements [`mail::MailFactory`].
#[macro_export]
macro_rules! mailer_contract {
    ($factory:expr) => {
        $crate::__contract_cases!($factory, mail, [sends_a_valid_message, refuses_invalid_messages,]);
    };
}

/// A unique suffix for names, so cases can share one emulator concurrently.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
