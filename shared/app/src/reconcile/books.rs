//! Our books and MT5's evidence in the pure kernel's terms (`nusatrade_domain::reconcile`): orders as
//! [`BookOrder`]s, a stored positions snapshot as a [`Snapshot`].
//!
//! What a snapshot may prove is decided here, conservatively:
//! * Positions count only when every position of the report was read ([`PositionsSnapshot::positions_complete`])
//!   and each has a side and an open price; otherwise the snapshot is [`Snapshot::Failed`] and nothing changes (an
//!   unreadable position must never look "closed").
//! * Deals are evidence whenever present (a closing deal proves a close, an opening deal with our comment an
//!   execution). They are a *complete history* only when the connector said from when
//!   (`history_from`) and nothing of the history was unreadable or dropped; otherwise the window starts at the
//!   snapshot itself, so absence from it proves nothing.
//! * Lookups answer targeted checks.

use nusatrade_domain::money::{Lots, Side};
use nusatrade_domain::order::{ClientOrderId, Ticket};
use nusatrade_domain::reconcile::{
    BookOrder, DealEntry, DealHistory, HistoryOrderState, LookupResult, Mt5Deal, Mt5HistoryOrder, Mt5Position,
    Mt5Snapshot, Snapshot, TicketLookup,
};
use uuid::Uuid;

use crate::connector::reports::{BrokerDeal, BrokerHistoryOrder, BrokerLookup, BrokerPosition, PositionsSnapshot};
use crate::trading::orders::OrderRecord;

/// An order as the kernel sees it.
pub fn book_order(o: &OrderRecord) -> BookOrder {
    BookOrder {
        id: o.id,
        user_id: o.user_id,
        client_order_id: ClientOrderId::from_comment(&o.client_order_id)
            .unwrap_or_else(|| ClientOrderId::from_uuid(o.id)),
        state: o.state(),
        symbol: o.symbol.clone(),
        side: o.side,
        lots: Lots::new_unchecked(o.lots),
        open_price: o.open_price,
        stop_loss: o.stop_loss,
        take_profit: o.take_profit,
        created_at: o.created_at,
        updated_at: o.updated_at,
        last_price: o.current_price,
    }
}

/// A reported position as the kernel sees it; `None` without side or open price.
pub fn mt5_position(p: &BrokerPosition) -> Option<Mt5Position> {
    Some(Mt5Position {
        ticket: Ticket(p.ticket),
        symbol: p.symbol.clone(),
        side: p.side?,
        volume: Lots::new_unchecked(p.volume),
        open_price: p.open_price?,
        open_time: p.open_time,
        stop_loss: p.stop_loss,
        take_profit: p.take_profit,
        comment: p.comment.clone().unwrap_or_default(),
    })
}

fn mt5_deal(d: &BrokerDeal) -> Option<Mt5Deal> {
    let entry = match d.entry.as_deref()?.to_ascii_lowercase().as_str() {
        "in" => DealEntry::In,
        "out" => DealEntry::Out,
        "inout" | "in_out" => DealEntry::InOut,
        "out_by" | "outby" => DealEntry::OutBy,
        _ => return None,
    };
    Some(Mt5Deal {
        ticket: Ticket(d.ticket),
        position: Ticket(d.position?),
        entry,
        price: d.price?,
        volume: Lots::new_unchecked(d.volume.unwrap_or_default()),
        time: d.time?,
        comment: d.comment.clone().unwrap_or_default(),
    })
}

fn history_order(o: &BrokerHistoryOrder) -> Option<Mt5HistoryOrder> {
    let state = match o.state.as_str() {
        "filled" => HistoryOrderState::Filled,
        "rejected" => HistoryOrderState::Rejected,
        "canceled" => HistoryOrderState::Canceled,
        "expired" => HistoryOrderState::Expired,
        _ => return None,
    };
    Some(Mt5HistoryOrder {
        ticket: Ticket(o.ticket),
        state,
        time: o.time?,
        comment: o.comment.clone().unwrap_or_default(),
    })
}

fn lookup(l: &BrokerLookup) -> Option<TicketLookup> {
    let result = match l.status.as_str() {
        "open" => LookupResult::Open,
        "not_found" => LookupResult::NotFound,
        "closed" => LookupResult::Closed { price: l.price?, time: l.time? },
        _ => return None,
    };
    Some(TicketLookup { ticket: Ticket(l.ticket), result })
}

/// The stored snapshot as the kernel's evidence (see the module docs). `owner` owns the broker connection.
pub fn domain_snapshot(owner: Uuid, s: &PositionsSnapshot) -> Snapshot {
    if !s.positions_complete() {
        return Snapshot::Failed {
            reason: format!(
                "incomplete positions report ({} unreadable entries, truncated: {})",
                s.skipped - s.history.history_skipped.min(s.skipped),
                s.history.positions_truncated || (s.truncated && !s.history.history_truncated)
            ),
        };
    }
    let mut positions = Vec::with_capacity(s.positions.len());
    for p in &s.positions {
        match mt5_position(p) {
            Some(m) => positions.push(m),
            None => {
                return Snapshot::Failed {
                    reason: format!("position {} reported without side or open price", p.ticket),
                };
            }
        }
    }
    let deals: Vec<Mt5Deal> = s.deals.iter().filter_map(mt5_deal).collect();
    let orders: Vec<Mt5HistoryOrder> = s.history.history_orders.iter().filter_map(history_order).collect();
    let every_entry_read = deals.len() == s.deals.len() && orders.len() == s.history.history_orders.len();
    let window = match s.history.history_from {
        Some(from) if s.history_complete() && every_entry_read && from <= s.received_at => from,
        // Evidence, not a complete history: a window starting at the snapshot covers no order.
        _ => s.received_at,
    };
    let history = (s.history.history_from.is_some() || !deals.is_empty() || !orders.is_empty())
        .then_some(DealHistory { from: window, deals, orders });
    Snapshot::Received(Mt5Snapshot {
        connection_id: s.broker_connection_id,
        owner,
        taken_at: s.received_at,
        positions,
        history,
        lookups: s.history.lookups.iter().filter_map(lookup).collect(),
    })
}

/// The side of a reported position, for prices: a buy is valued at the bid, a sell at the ask.
pub fn closing_price(p: &BrokerPosition) -> Option<rust_decimal::Decimal> {
    match p.side? {
        Side::Buy => p.bid.or(p.current_price),
        Side::Sell => p.ask.or(p.current_price),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;

    use super::*;
    use crate::connector::reports::{ReportHistory, ReportSource};

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn position(ticket: u64) -> BrokerPosition {
        BrokerPosition {
            ticket,
            symbol: "EURUSD".into(),
            side: Some(Side::Buy),
            volume: d("0.1"),
            open_price: Some(d("1.1")),
            current_price: Some(d("1.1005")),
            stop_loss: None,
            take_profit: Some(d("1.2")),
            profit: Some(d("5")),
            comment: Some("NT-x".into()),
            open_time: Some(t(-100)),
            bid: None,
            ask: None,
        }
    }

    fn deal(ticket: u64, entry: &str, at: i64) -> BrokerDeal {
        BrokerDeal {
            ticket,
            position: Some(7),
            symbol: "EURUSD".into(),
            side: Some(Side::Sell),
            entry: Some(entry.into()),
            volume: Some(d("0.1")),
            price: Some(d("1.1")),
            profit: Some(d("-1")),
            time: Some(t(at)),
            reason: Some("sl".into()),
            comment: None,
        }
    }

    fn snapshot(positions: Vec<BrokerPosition>, deals: Vec<BrokerDeal>, history: ReportHistory) -> PositionsSnapshot {
        PositionsSnapshot {
            broker_connection_id: Uuid::from_u128(9),
            source: ReportSource::SyncResponse,
            request_id: None,
            ws_connection_id: "ws".into(),
            received_at: t(0),
            positions,
            deals,
            skipped: history.history_skipped,
            truncated: history.history_truncated,
            history,
        }
    }

    fn received(s: Snapshot) -> Mt5Snapshot {
        match s {
            Snapshot::Received(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn positions_and_a_complete_history_window() {
        let h = ReportHistory { history_from: Some(t(-3600)), ..ReportHistory::default() };
        let s =
            received(domain_snapshot(Uuid::from_u128(1), &snapshot(vec![position(7)], vec![deal(1, "in", -50)], h)));
        assert_eq!(s.positions[0].comment, "NT-x");
        assert_eq!((s.taken_at, s.owner), (t(0), Uuid::from_u128(1)));
        let history = s.history.unwrap();
        assert_eq!((history.from, history.deals.len()), (t(-3600), 1));
    }

    #[test]
    fn deals_without_a_window_are_evidence_not_history() {
        let s = received(domain_snapshot(
            Uuid::nil(),
            &snapshot(vec![], vec![deal(1, "out", -5)], ReportHistory::default()),
        ));
        let h = s.history.unwrap();
        assert_eq!((h.from, h.deals[0].entry), (t(0), DealEntry::Out));
        // An unreadable deal: the window shrinks to the snapshot too.
        let mut bad = deal(2, "sideways", -5);
        bad.price = None;
        let hist = ReportHistory { history_from: Some(t(-3600)), ..ReportHistory::default() };
        let s = received(domain_snapshot(Uuid::nil(), &snapshot(vec![], vec![deal(1, "out", -5), bad], hist)));
        assert_eq!(s.history.unwrap().from, t(0));
        // Dropped history: same.
        let hist = ReportHistory { history_from: Some(t(-3600)), history_truncated: true, ..ReportHistory::default() };
        let s = received(domain_snapshot(Uuid::nil(), &snapshot(vec![], vec![], hist)));
        assert_eq!(s.history.unwrap().from, t(0));
        // Nothing at all: no history.
        assert!(
            received(domain_snapshot(Uuid::nil(), &snapshot(vec![], vec![], ReportHistory::default())))
                .history
                .is_none()
        );
    }

    #[test]
    fn incomplete_positions_prove_nothing() {
        let mut s = snapshot(vec![position(7)], vec![], ReportHistory::default());
        s.skipped = 1;
        assert!(matches!(domain_snapshot(Uuid::nil(), &s), Snapshot::Failed { .. }));
        let mut p = position(8);
        p.side = None;
        assert!(matches!(
            domain_snapshot(Uuid::nil(), &snapshot(vec![p], vec![], ReportHistory::default())),
            Snapshot::Failed { .. }
        ));
        let mut s = snapshot(vec![position(7)], vec![], ReportHistory::default());
        s.truncated = true;
        assert!(matches!(domain_snapshot(Uuid::nil(), &s), Snapshot::Failed { .. }));
    }

    #[test]
    fn lookups_and_history_orders() {
        let hist = ReportHistory {
            history_from: Some(t(-60)),
            history_orders: vec![BrokerHistoryOrder {
                ticket: 3,
                state: "rejected".into(),
                time: Some(t(-10)),
                comment: Some("NT-y".into()),
            }],
            lookups: vec![
                BrokerLookup { ticket: 7, status: "closed".into(), price: Some(d("1.2")), time: Some(t(-1)) },
                BrokerLookup { ticket: 8, status: "not_found".into(), price: None, time: None },
            ],
            ..ReportHistory::default()
        };
        let s = received(domain_snapshot(Uuid::nil(), &snapshot(vec![], vec![], hist)));
        assert_eq!(s.history.unwrap().orders[0].state, HistoryOrderState::Rejected);
        assert_eq!(s.lookups[0].result, LookupResult::Closed { price: d("1.2"), time: t(-1) });
        assert_eq!(s.lookups[1].result, LookupResult::NotFound);
    }
}
