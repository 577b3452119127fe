//! The connector channel's [`SnapshotHook`]: a stored positions snapshot indexes the connection and queues a
//! reconciliation run; every price report feeds the trailing-stop driver.

use async_trait::async_trait;
use uuid::Uuid;

use super::service::ReconcileService;
use super::trailing::TrailingDriver;
use crate::connector::reports::{BrokerPosition, PositionsSnapshot, SnapshotHook};

/// Reconciliation and trailing stops behind the connector channel.
#[derive(Clone)]
pub struct ReconcileHook {
    pub service: ReconcileService,
    pub trailing: TrailingDriver,
}

impl ReconcileHook {
    pub fn new(service: ReconcileService) -> Self {
        let trailing = TrailingDriver::new(service.orders.clone(), service.settings.clone());
        ReconcileHook { service, trailing }
    }
}

#[async_trait]
impl SnapshotHook for ReconcileHook {
    async fn positions_snapshot(&self, user_id: Uuid, snapshot: &PositionsSnapshot) {
        let reconcile = self.service.snapshot_stored(user_id, snapshot);
        let trail = self.trailing.on_positions(user_id, snapshot.broker_connection_id, &snapshot.positions);
        tokio::join!(reconcile, trail);
    }

    async fn position_update(&self, user_id: Uuid, broker_connection_id: Uuid, positions: &[BrokerPosition]) {
        self.trailing.on_positions(user_id, broker_connection_id, positions).await;
    }

    async fn connector_error(&self, user_id: Uuid, broker: Uuid, error: &str, request_id: Option<&str>) -> bool {
        self.service.connector_error(user_id, broker, error, request_id).await
    }

    async fn connector_up(&self, user_id: Uuid, broker: Uuid) {
        self.service.index_active(user_id, broker, self.service.orders.clock.now()).await;
    }
}
