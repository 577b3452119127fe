//! The port contract suites (the use-case suites that run over every store are in `crate::suites`): written once, run against every adapter (the embedded/local ones in
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

pub mod blob;
pub mod llm;
pub mod mail;
pub mod push;
pub mod queue;
pub mod secrets;
pub mod store;

/// Expands to one multi-threaded tokio test per case of a suite module.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($factory:expr, $module:ident :: $suite:ident, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::$module::$suite::$case(&$factory).await;
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
            contract::store,
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

/// The blob store contract. `$factory` implements [`blob::BlobFactory`].
#[macro_export]
macro_rules! blob_store_contract {
    ($factory:expr) => {
        $crate::__contract_cases!($factory, contract::blob, [put_get_delete, get_refuses_oversize, list_by_prefix,]);
    };
}

/// The queue contract. `$factory` implements [`queue::QueueFactory`].
#[macro_export]
macro_rules! queue_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            contract::queue,
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
            contract::push,
            [
                post_to_live_connection_is_delivered,
                post_to_gone_connection_is_gone,
                close_ends_the_connection,
                a_post_before_close_arrives_first,
                invalid_posts_are_refused,
            ]
        );
    };
}

/// The mailer contract. `$factory` implements [`mail::MailFactory`].
#[macro_export]
macro_rules! mailer_contract {
    ($factory:expr) => {
        $crate::__contract_cases!($factory, contract::mail, [sends_a_valid_message, refuses_invalid_messages,]);
    };
}

/// The language-model contract. `$factory` implements [`llm::LlmFactory`].
#[macro_export]
macro_rules! language_model_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            contract::llm,
            [
                plain_completion,
                request_carries_system_and_messages_in_order,
                stream_deltas_arrive_in_order,
                a_closed_receiver_does_not_stop_the_stream,
                rate_limit_then_success_is_retried,
                retry_after_is_capped,
                rate_limited_every_time_is_rate_limited,
                server_errors_are_retried_then_reported,
                an_overloaded_provider_is_retried,
                unauthorized_fails_at_once,
                a_hang_times_out,
                a_hang_then_success_is_retried,
                garbage_is_malformed,
                a_cut_json_answer_is_malformed,
                a_stream_cut_half_way_is_incomplete,
                a_stream_stalling_after_a_delta_is_incomplete,
                a_stream_is_retried_before_its_first_delta,
                max_tokens_sets_truncated,
            ]
        );
    };
}

/// The key-wrapper contract (envelope encryption's master key). `$factory` implements
/// [`secrets::KeyWrapperFactory`].
#[macro_export]
macro_rules! key_wrapper_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            contract::secrets,
            [
                data_keys_are_fresh_and_unwrap,
                concurrent_data_keys_are_distinct,
                tampered_or_foreign_wrapped_keys_are_refused,
                sealed_values_round_trip_and_bind_their_context,
            ]
        );
    };
}

/// A unique suffix for names, so cases can share one emulator concurrently.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
