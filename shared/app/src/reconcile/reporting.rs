//! Whether a connection's positions reports can be reconciled, and what an `ERROR` in answer to a positions request
//! means (issue 18: honest reconciliation with a blind connector).
//!
//! * An `ERROR` answering a positions request (`GET_POSITIONS` / `SYNC_REQUEST`) is a **failed snapshot**: the
//!   stored snapshot is left as it was (never read as "flat"), and the failure is recorded on the connection's
//!   `LINK#` record ([`Reporting`](crate::connector::reporting::Reporting)) until its next complete report. It
//!   answers a positions request when its `request_id` is one of ours for positions ([`is_positions_request`]); the original connector's `ERROR` carries
//!   no `request_id`, so from a connector without `report_positions` an uncorrelated `ERROR` is read as one (the
//!   only other request the original can answer with `ERROR` is `GET_ACCOUNT`: misreading it only hides
//!   reconciliation until the next complete report, the safe side).
//! * The dashboards get the failure once per change — a `CONNECTOR_ERROR` and a fresh `CONNECTIONS_STATUS` carrying
//!   `reconciliation` — not at every sweep; a complete report clears it (and sends a fresh `CONNECTIONS_STATUS`).
//! * What the connection health shows for it is the link's
//!   [`reconciliation`](crate::connector::ConnectorLink::reconciliation): `available`, `limited — …` (a connector
//!   without `report_positions`: its reports are read only while MT5 holds no position), or
//!   `unavailable — connector cannot report positions`.

use tracing::{info, warn};
use uuid::Uuid;

use super::service::{REQUEST_PREFIX, ReconcileService};
use super::store::run_key;
use crate::connector::capabilities::Capability;
use crate::connector::registry::link_key;
use crate::connector::reporting::MAX_REPORT_ERROR;
use crate::connector::reports::PositionsSnapshot;
use crate::ports::{Condition, StoreError, Update};
use crate::wire::iso;

/// Whether `request_id` is one of the server's positions requests: reconciliation's (`reconcile_…`), the sync
/// route's (`manual_sync_…`), the first contact's (`resync_…_positions`) or the original monitor's (`sync_…`).
pub fn is_positions_request(request_id: &str) -> bool {
    request_id.starts_with(REQUEST_PREFIX)
        || request_id.starts_with("manual_sync_")
        || request_id.starts_with("sync_")
        || (request_id.starts_with("resync_") && request_id.ends_with("_positions"))
}

fn cut(error: &str) -> String {
    error.chars().take(MAX_REPORT_ERROR).collect()
}

impl ReconcileService {
    /// The connector holding `broker` sent `ERROR` (see the module docs). Returns whether to relay it to the
    /// dashboards: always for other errors, once per change for failed snapshots.
    pub async fn connector_error(&self, user: Uuid, broker: Uuid, error: &str, request_id: Option<&str>) -> bool {
        match self.positions_failed(user, broker, error, request_id).await {
            Ok(relay) => relay,
            Err(e) => {
                warn!(error = %e, "could not record the failed positions report");
                true
            }
        }
    }

    async fn positions_failed(
        &self,
        user: Uuid,
        broker: Uuid,
        error: &str,
        request_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let Some(link) = self.orders.registry().link(user, broker).await? else { return Ok(true) };
        let answers_positions = match request_id {
            Some(r) => is_positions_request(r),
            None => !link.capabilities.has(Capability::ReportPositions),
        };
        if !answers_positions {
            return Ok(true);
        }
        let error = cut(error);
        let now = self.orders.clock.now();
        let changed = link.reporting.report_error.as_deref() != Some(error.as_str());
        let update = Update::new().set("report_error", error.clone()).set("report_failed_at", iso(now));
        let held = Condition::eq("ws_connection_id", link.ws_connection_id.as_str());
        match self.orders.book.store.update(&link_key(user, broker), update, Some(held)).await {
            Ok(_) => {}
            Err(StoreError::ConditionFailed) => return Ok(true), // a newer connector holds the link
            Err(e) => return Err(e),
        }
        // Still asked by the sweep: once MT5 is flat the connector answers, and its complete reports settle what closed.
        self.index_active(user, broker, now).await;
        let outcome = Update::new()
            .set("broker_connection_id", broker.to_string())
            .set("last_outcome", format!("skipped: snapshot failed ({error})"));
        self.orders.book.store.update(&run_key(user, broker), outcome, None).await?;
        if changed {
            info!(%user, connection = %broker, %error, "the connector cannot report positions: reconciliation unavailable");
            self.status_changed(user).await;
        }
        Ok(changed)
    }

    /// A complete report arrived: a recorded failure is cleared (once, with a fresh status to the dashboards).
    pub(super) async fn report_received(&self, user: Uuid, s: &PositionsSnapshot) {
        if !s.positions_complete() {
            return;
        }
        let broker = s.broker_connection_id;
        let link = match self.orders.registry().link(user, broker).await {
            Ok(Some(l)) if l.reporting.report_error.is_some() => l,
            Ok(_) => return,
            Err(e) => {
                warn!(error = %e, "could not read the connector link");
                return;
            }
        };
        let update = Update::new().remove("report_error").remove("report_failed_at");
        let held = Condition::eq("ws_connection_id", link.ws_connection_id.as_str());
        match self.orders.book.store.update(&link_key(user, broker), update, Some(held)).await {
            Ok(_) => self.status_changed(user).await,
            Err(StoreError::ConditionFailed) => {}
            Err(e) => warn!(error = %e, "could not clear the failed positions report"),
        }
    }

    /// A fresh `CONNECTIONS_STATUS` to the user's dashboards.
    async fn status_changed(&self, user: Uuid) {
        let status = crate::brokers::status::connections_status(&self.brokers(), user).await;
        self.orders.dashboards.broadcast(user, &status).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_requests_are_recognised() {
        for r in ["reconcile_sweep_ab12", "manual_sync_x", "sync_1700000000.5", "resync_ab_positions"] {
            assert!(is_positions_request(r), "{r}");
        }
        for r in ["resync_ab_account", "open_x_1", "", "RECONCILE_x"] {
            assert!(!is_positions_request(r), "{r}");
        }
    }

    #[test]
    fn errors_are_cut() {
        assert_eq!(cut(&"é".repeat(500)).chars().count(), MAX_REPORT_ERROR);
    }
}
