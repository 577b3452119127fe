//! The fault matrix (issue 18; `nusatrade_app::suites::fault_matrix`) on the embedded store: seeded random scenarios
//! through the real order use cases, the connector channel handler and the reconcile consumer, invariants after every
//! step. `NUSATRADE_FAULT_SCENARIOS` (default 300), `NUSATRADE_FAULT_SEED`, `NUSATRADE_FAULT_ONLY` (one scenario).

use std::sync::Arc;

use async_trait::async_trait;
use nusatrade_app::contract::store::StoreFactory;
use nusatrade_app::ports::{Clock, ItemStore};
use nusatrade_local::adapters::EmbeddedStore;

struct InMemory;

#[async_trait]
impl StoreFactory for InMemory {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
        Arc::new(EmbeddedStore::temporary(clock).unwrap())
    }
}

#[tokio::test]
async fn fault_matrix_on_the_embedded_store() {
    let summary = nusatrade_app::suites::fault_matrix::run_from_env(&InMemory, 300).await;
    // The run did what it claims: every scenario stepped, and the faults it is about happened.
    assert!(summary.steps >= summary.scenarios * 10, "{}", summary.table());
    for event in ["fault: link cut between fill and ack", "fault: ack lost", "connector_restart", "stop_out"] {
        assert!(
            summary.scenarios < 100 || summary.events.get(event).copied().unwrap_or(0) > 0,
            "no {event:?} in {} scenarios",
            summary.scenarios
        );
    }
}

/// Regressions the matrix found (fixed in `ReconcileService::index_active`).
mod regressions {
    use nusatrade_app::suites::fault_matrix as m;

    #[tokio::test]
    async fn a_lost_first_report_still_leaves_the_connection_swept() {
        m::a_lost_first_report_still_leaves_the_connection_swept(&super::InMemory).await;
    }

    #[tokio::test]
    async fn error_answers_keep_the_connection_swept() {
        m::error_answers_keep_the_connection_swept(&super::InMemory).await;
    }
}
