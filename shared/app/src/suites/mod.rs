//! The use-case suites: the order, reconciliation, backup and admin settings use cases run over every store (and blob store)
//! adapter, as the port contracts are (`crate::contract`); each adapter's test file invokes the macros below.

pub mod ai;
pub mod backup;
pub mod fault_matrix;
pub mod orders;
pub mod reconcile;
pub mod settings;

/// The AI supervisor's token budget on a store adapter. `$factory` implements [`store::StoreFactory`].
#[macro_export]
macro_rules! ai_budget_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            suites::ai,
            [concurrent_reservations_respect_the_budget, settlements_releases_and_the_next_day]
        );
    };
}

/// The order use cases on a store adapter. `$factory` implements [`store::StoreFactory`].
#[macro_export]
macro_rules! orders_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            suites::orders,
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
                connector_capabilities_are_kept_with_the_connection,
                connection_flags_and_ticket_bindings,
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
            suites::reconcile,
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
                a_blind_connector_closes_what_two_complete_reports_lack,
                an_error_report_is_a_failed_snapshot_told_once,
                the_close_acks_price_and_profit_are_used,
                a_reported_ticket_bound_to_another_connection_is_not_adopted,
            ]
        );
    };
}

/// The admin settings and the admin role on a store adapter. `$factory` implements [`store::StoreFactory`].
#[macro_export]
macro_rules! settings_contract {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory,
            suites::settings,
            [
                settings_round_trip_with_an_encrypted_value,
                concurrent_writes_of_one_key_each_land_once,
                the_admin_role_is_granted_listed_and_revoked,
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
            suites::backup,
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
