//! Bad input from a connector, kept with its broker connection (issue 18, "Bad input"): a connector's word is
//! checked against what its tickets and prices show, and what contradicts it is **flagged** — kept on the broker
//! connection's record (`flags`, newest last, at most [`MAX_FLAGS`]), logged at WARN, shown by the connection
//! status and pushed to the dashboards (`CONNECTOR_WARNING` + a fresh `CONNECTIONS_STATUS`) — never applied to
//! the books.
//!
//! | kind | seen when | what follows |
//! |---|---|---|
//! | `dedupe_violated` | a `TRADE_OPEN` answered by a second, different ticket for the same request id, or two positions carrying the same `NT-` comment | the order keeps its first ticket; `dedupe_request_id` is no longer trusted for the connection (its `TRADE_OPEN`s are never resent again, whatever its `AUTH` says); the extra ticket is an orphan: reconciliation adopts it as an external position pointing at the order (`claimed_by`), never as a second fill of ours |
//! | `price_suspect` | an ack's price more than [`PRICE_BAND`]× away from the order's requested / last known price (EURUSD filled at 108.5 or 0.0108) | the ack still proves the position (its ticket is recorded), but its price and profit are dropped: an open's fill price is the requested price, marked unconfirmed; a close's P/L comes from the last known price |
//! | `foreign_ticket` | an ack naming an order of another broker connection, or a ticket already bound to another connection's order ([`super::tickets`]) | the ack is refused (`ERROR` to the connector), nothing is applied, nothing of the other connection is shown |
//!
//! A flag is kept once per (kind, ticket, detail): a connector repeating the same bad input does not grow the record.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::capabilities::{Capabilities, Capability};
use super::reports::BrokerPosition;

/// Most flags kept per broker connection (the oldest go first).
pub const MAX_FLAGS: usize = 20;
/// Longest flag detail kept (longer ones are cut).
pub const MAX_FLAG_DETAIL: usize = 300;
/// An ack price more than this factor above or below the reference price is suspect.
pub const PRICE_BAND: Decimal = Decimal::from_parts(5, 0, 0, false, 0);

/// What was wrong (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    DedupeViolated,
    PriceSuspect,
    ForeignTicket,
}

impl FlagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::DedupeViolated => "dedupe_violated",
            FlagKind::PriceSuspect => "price_suspect",
            FlagKind::ForeignTicket => "foreign_ticket",
        }
    }

    /// The capability a flag of this kind withdraws, if any.
    pub fn withdraws(self) -> Option<Capability> {
        match self {
            FlagKind::DedupeViolated => Some(Capability::DedupeRequestId),
            FlagKind::PriceSuspect | FlagKind::ForeignTicket => None,
        }
    }
}

impl fmt::Display for FlagKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flag on a broker connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionFlag {
    pub kind: FlagKind,
    pub at: DateTime<Utc>,
    /// A clear reason, for people (at most [`MAX_FLAG_DETAIL`] characters).
    pub detail: String,
    /// The ticket concerned (the orphan of a double fill, the refused or mispriced one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<u64>,
    /// Our order concerned, when there is one of the connection's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
}

impl ConnectionFlag {
    pub fn new(kind: FlagKind, at: DateTime<Utc>, detail: &str, ticket: Option<u64>, order_id: Option<Uuid>) -> Self {
        ConnectionFlag { kind, at, detail: detail.chars().take(MAX_FLAG_DETAIL).collect(), ticket, order_id }
    }

    /// Whether `self` says what `other` says (same kind, ticket and detail): kept once.
    pub fn same_as(&self, other: &ConnectionFlag) -> bool {
        self.kind == other.kind && self.ticket == other.ticket && self.detail == other.detail
    }

    pub fn to_wire(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind, "at": crate::wire::iso(self.at), "detail": self.detail,
            "ticket": self.ticket, "order_id": self.order_id,
        })
    }
}

/// `flags` with `flag` added (unless already there), keeping the newest [`MAX_FLAGS`]. `None`: nothing to add.
pub fn with_flag(flags: &[ConnectionFlag], flag: ConnectionFlag) -> Option<Vec<ConnectionFlag>> {
    if flags.iter().any(|f| f.same_as(&flag)) {
        return None;
    }
    let mut out = flags.to_vec();
    out.push(flag);
    let over = out.len().saturating_sub(MAX_FLAGS);
    out.drain(..over);
    Some(out)
}

/// What the connection's flags withdraw from what its connector states.
pub fn effective(stated: &Capabilities, flags: &[ConnectionFlag]) -> Capabilities {
    let withdrawn: Vec<Capability> = flags.iter().filter_map(|f| f.kind.withdraws()).collect();
    stated.iter().filter(|c| !withdrawn.contains(c)).collect()
}

/// Whether an ack's price is off by orders of magnitude from `reference` (more than [`PRICE_BAND`]× above or below).
pub fn price_suspect(price: Decimal, reference: Decimal) -> bool {
    if reference <= Decimal::ZERO || price <= Decimal::ZERO {
        return false;
    }
    price > reference * PRICE_BAND || price * PRICE_BAND < reference
}

/// Positions sharing one `NT-` comment (our client order id): each comment with its tickets, ascending. A
/// de-duplicating connector never holds two positions for one of our orders.
pub fn shared_comments(positions: &[BrokerPosition]) -> Vec<(String, Vec<u64>)> {
    let mut by_comment: std::collections::BTreeMap<&str, Vec<u64>> = std::collections::BTreeMap::new();
    for p in positions {
        if let Some(c) = p.comment.as_deref().map(str::trim).filter(|c| c.starts_with("NT-") && c.len() > 3) {
            by_comment.entry(c).or_default().push(p.ticket);
        }
    }
    by_comment
        .into_iter()
        .filter_map(|(c, mut tickets)| {
            tickets.sort_unstable();
            tickets.dedup();
            (tickets.len() > 1).then(|| (c.to_owned(), tickets))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 20, 0, 0).unwrap()
    }

    fn flag(kind: FlagKind, ticket: u64) -> ConnectionFlag {
        ConnectionFlag::new(kind, at(), "why", Some(ticket), None)
    }

    #[test]
    fn prices_off_by_orders_of_magnitude_are_suspect() {
        let eurusd = dec("1.0850");
        assert!(price_suspect(dec("108.5"), eurusd));
        assert!(price_suspect(dec("0.0108"), eurusd));
        assert!(price_suspect(dec("5.43"), eurusd));
        for fine in [dec("1.0851"), dec("1.2"), dec("0.9"), dec("5.42"), dec("0.218")] {
            assert!(!price_suspect(fine, eurusd), "{fine}");
        }
        // BTC doubling, USDJPY: within the band
        assert!(!price_suspect(dec("120000"), dec("60000")));
        assert!(!price_suspect(dec("151.2"), dec("150.1")));
        // no reference, no judgement
        assert!(!price_suspect(dec("108.5"), Decimal::ZERO));
    }

    #[test]
    fn flags_are_kept_once_and_capped() {
        let one = with_flag(&[], flag(FlagKind::DedupeViolated, 7)).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(with_flag(&one, flag(FlagKind::DedupeViolated, 7)), None, "the same again: kept once");
        let other = ConnectionFlag::new(FlagKind::DedupeViolated, at(), "another reason", Some(7), None);
        assert_eq!(with_flag(&one, other).unwrap().len(), 2);
        assert_eq!(with_flag(&one, flag(FlagKind::PriceSuspect, 7)).unwrap().len(), 2);
        let mut flags = Vec::new();
        for t in 0..(MAX_FLAGS as u64 + 5) {
            flags = with_flag(&flags, flag(FlagKind::PriceSuspect, t)).unwrap();
        }
        assert_eq!(flags.len(), MAX_FLAGS);
        assert_eq!(flags[0].ticket, Some(5), "the oldest went first");
        let long = ConnectionFlag::new(FlagKind::ForeignTicket, at(), &"é".repeat(1000), None, None);
        assert_eq!(long.detail.chars().count(), MAX_FLAG_DETAIL);
    }

    #[test]
    fn a_dedupe_violation_withdraws_only_dedupe() {
        let stated = Capabilities::all();
        assert_eq!(effective(&stated, &[]), stated);
        let eff = effective(&stated, &[flag(FlagKind::PriceSuspect, 1)]);
        assert!(eff.dedupes());
        let eff = effective(&stated, &[flag(FlagKind::PriceSuspect, 1), flag(FlagKind::DedupeViolated, 2)]);
        assert!(!eff.dedupes());
        assert!(eff.has(Capability::ReportPositions));
        assert!(effective(&Capabilities::none(), &[flag(FlagKind::DedupeViolated, 2)]).is_empty());
    }

    #[test]
    fn positions_sharing_our_comment_are_found() {
        let p = |ticket: u64, comment: Option<&str>| {
            let v = json!({"ticket": ticket, "symbol": "EURUSD", "type": 0, "volume": 0.1, "comment": comment});
            BrokerPosition::parse(&v).unwrap()
        };
        let positions =
            vec![p(3, Some("NT-abc")), p(1, Some("NT-abc")), p(2, Some("NT-xyz")), p(4, Some("manual")), p(5, None)];
        assert_eq!(shared_comments(&positions), vec![("NT-abc".to_owned(), vec![1, 3])]);
        assert!(shared_comments(&[p(4, Some("manual")), p(6, Some("manual")), p(7, Some("NT-"))]).is_empty());
        // the same ticket listed twice is not two positions
        assert!(shared_comments(&[p(1, Some("NT-a")), p(1, Some("NT-a"))]).is_empty());
    }
}
