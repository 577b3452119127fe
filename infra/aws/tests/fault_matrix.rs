//! A sample of the fault matrix (issue 18; `nusatrade_app::suites::fault_matrix`) on DynamoDB (moto,
//! `NUSATRADE_MOTO_ENDPOINT`): the same seeded scenarios as on the embedded store — the order, ack and repair
//! transactions, the live and sweep indexes under dropped, repeated and reordered acks, cut links and redelivered
//! queue messages — with the invariants checked after every step. One fresh table per scenario; 12 scenarios unless
//! `NUSATRADE_FAULT_SCENARIOS` says otherwise.

mod common;

use common::Dynamo;

#[tokio::test]
async fn fault_matrix_sample_on_dynamodb() {
    let summary = nusatrade_app::suites::fault_matrix::run_from_env(&Dynamo, 12).await;
    assert!(summary.steps >= summary.scenarios * 10, "{}", summary.table());
}

/// Regressions the matrix found (fixed in `ReconcileService::index_active`), on DynamoDB.
mod regressions {
    use nusatrade_app::suites::fault_matrix as m;

    #[tokio::test]
    async fn a_lost_first_report_still_leaves_the_connection_swept() {
        m::a_lost_first_report_still_leaves_the_connection_swept(&super::Dynamo).await;
    }

    #[tokio::test]
    async fn error_answers_keep_the_connection_swept() {
        m::error_answers_keep_the_connection_swept(&super::Dynamo).await;
    }
}
