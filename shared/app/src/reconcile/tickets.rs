//! A reported position whose ticket is bound to another connection's order is not adopted (issue 18, "Bad input":
//! tickets reused across connections). Acks naming such a ticket are refused by the connector channel; a positions
//! report listing one would otherwise make the position a second, `external` order in this connection's books —
//! the same MT5 position twice, across connections or users. Instead the connection is flagged `foreign_ticket`
//! (once per ticket: [`crate::connector::flags`]) and its dashboards get a `CONNECTOR_WARNING`; nothing of the
//! other connection or user is shown.
//!
//! Only adoption is checked, and no binding is written by it: a ticket this connection's own order may still be
//! acknowledged with (a lost ack, read later) must stay free for that ack.

use tracing::warn;
use uuid::Uuid;

use super::service::ReconcileService;
use crate::brokers::status::tell_flag;
use crate::connector::flags::{ConnectionFlag, FlagKind};
use crate::connector::tickets::ticket_key;

impl ReconcileService {
    /// Whether `ticket`, reported by the connector of `broker`, is bound to an order of another connection (of this
    /// user or another); if so, the connection is flagged. A store failure reads as not bound (logged).
    pub(super) async fn foreign_ticket(&self, user: Uuid, broker: Uuid, ticket: u64) -> bool {
        let brokers = self.brokers();
        let (server, account) = match brokers.record(user, broker).await {
            Ok(r) => (r.server, r.account_number),
            Err(e) => {
                warn!(%user, connection = %broker, error = %e, "could not read the broker connection: ticket keyed by user");
                (None, None)
            }
        };
        let key = ticket_key(server.as_deref(), account.as_deref(), user, ticket);
        let bound = match self.orders.registry().ticket_binding(&key).await {
            Ok(b) => b,
            Err(e) => {
                warn!(%user, connection = %broker, ticket, error = %e, "could not read the ticket binding: unchecked");
                return false;
            }
        };
        let Some(bound) = bound.filter(|b| b.user_id != user || b.broker_connection_id != broker) else {
            return false;
        };
        let detail = format!(
            "positions report lists ticket {ticket}, bound to an order of another broker connection: not adopted"
        );
        warn!(%user, connection = %broker, ticket, other_user = bound.user_id != user, "{detail}");
        let flag = ConnectionFlag::new(FlagKind::ForeignTicket, self.orders.clock.now(), &detail, Some(ticket), None);
        match brokers.flag(user, broker, flag.clone()).await {
            Ok(Some(_)) => tell_flag(&brokers, &self.orders.dashboards, user, broker, &flag).await,
            Ok(None) => {}
            Err(e) => warn!(%user, connection = %broker, error = %e, "could not flag the broker connection"),
        }
        true
    }
}
