//! Property tests: a small world (our books driven by `order::transition`, a connector with a command queue and an
//! ack queue, a simulated MT5) under random interleavings of placements, deliveries, losses, duplicates, delays past
//! the timeouts, out-of-order acks, connector restarts, manual MT5 trades, stale and redelivered snapshots and
//! reconciliation runs. Invariants are checked after every step, and after the final reconciliation our books must
//! equal MT5 exactly and a further run must find nothing.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::tests::{CONN, USER, apply, t0};
use super::*;
use crate::order::{Change, Failure, Fill, Retcode};

/// Number of random interleavings (each up to 60 steps).
const CASES: u32 = 2048;

fn cfg() -> ReconcileConfig {
    ReconcileConfig::default()
}

/// Picks one of `len` items (any of them: out-of-order delivery).
#[derive(Debug, Clone, Copy)]
struct Pick(usize);

impl Pick {
    fn index(self, len: usize) -> usize {
        self.0 % len.max(1)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Place {
        sell: bool,
        sl_pips: u8,
    },
    /// The connector receives command `pick` (any queued one: out of order). `dup`: it stays queued (redelivery).
    /// `exec`: MT5 executes an open. `ack`: which ack the connector sends.
    Deliver {
        pick: Pick,
        dup: bool,
        exec: bool,
        ack: u8,
    },
    LoseCommand {
        pick: Pick,
    },
    /// The server receives ack `pick`; `dup`: it stays queued (duplicate).
    Ack {
        pick: Pick,
        dup: bool,
    },
    LoseAck {
        pick: Pick,
    },
    Tick {
        secs: u16,
    },
    RequestClose {
        pick: Pick,
    },
    RequestModify {
        pick: Pick,
        sl_pips: u8,
    },
    ManualOpen {
        sell: bool,
    },
    /// Closed in the terminal or by SL/TP.
    ManualClose {
        pick: Pick,
    },
    ManualModify {
        pick: Pick,
        sl_pips: u8,
    },
    /// The connector restarts: queued commands and unsent acks are gone, MT5 positions stay.
    Restart,
    TakeSnapshot,
    /// `stored`: reconcile with the snapshot taken earlier (delayed / redelivered message).
    Reconcile {
        genesis: bool,
        stored: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 1..50u8).prop_map(|(sell, sl_pips)| Op::Place { sell, sl_pips }),
        6 => (any::<usize>().prop_map(Pick), prop::bool::weighted(0.15), prop::bool::weighted(0.7), any::<u8>())
            .prop_map(|(pick, dup, exec, ack)| Op::Deliver { pick, dup, exec, ack }),
        1 => any::<usize>().prop_map(Pick).prop_map(|pick| Op::LoseCommand { pick }),
        5 => (any::<usize>().prop_map(Pick), prop::bool::weighted(0.2)).prop_map(|(pick, dup)| Op::Ack { pick, dup }),
        2 => any::<usize>().prop_map(Pick).prop_map(|pick| Op::LoseAck { pick }),
        4 => (1..200u16).prop_map(|secs| Op::Tick { secs }),
        2 => any::<usize>().prop_map(Pick).prop_map(|pick| Op::RequestClose { pick }),
        2 => (any::<usize>().prop_map(Pick), 1..50u8).prop_map(|(pick, sl_pips)| Op::RequestModify { pick, sl_pips }),
        1 => any::<bool>().prop_map(|sell| Op::ManualOpen { sell }),
        1 => any::<usize>().prop_map(Pick).prop_map(|pick| Op::ManualClose { pick }),
        1 => (any::<usize>().prop_map(Pick), 1..50u8).prop_map(|(pick, sl_pips)| Op::ManualModify { pick, sl_pips }),
        1 => Just(Op::Restart),
        1 => Just(Op::TakeSnapshot),
        2 => (any::<bool>(), prop::bool::weighted(0.3)).prop_map(|(genesis, stored)| Op::Reconcile { genesis, stored }),
    ]
}

#[derive(Debug, Clone)]
enum Cmd {
    Open { order: Uuid, sent_at: DateTime<Utc> },
    Close { order: Uuid, ticket: Ticket, sent_at: DateTime<Utc> },
    Modify { order: Uuid, ticket: Ticket, sl: Decimal, sent_at: DateTime<Utc> },
}

#[derive(Debug, Clone)]
enum Ack {
    Open { order: Uuid, result: Result<(Ticket, Decimal), Failure> },
    Close { order: Uuid, result: Result<Decimal, Failure> },
    Modify { order: Uuid, sl: Decimal, result: Result<(), Failure> },
}

fn failure(code: Option<Retcode>) -> Failure {
    Failure { retcode: code, message: "failed".into() }
}

#[derive(Debug, Default)]
struct Mt5 {
    positions: BTreeMap<Ticket, Mt5Position>,
    deals: Vec<Mt5Deal>,
    orders: Vec<Mt5HistoryOrder>,
    next: u64,
    ever: BTreeSet<Ticket>,
}

impl Mt5 {
    fn ticket(&mut self) -> Ticket {
        self.next += 1;
        Ticket(1000 + self.next)
    }

    fn open(&mut self, now: DateTime<Utc>, side: Side, lots: Lots, sl: Option<Decimal>, comment: String) -> Ticket {
        let t = self.ticket();
        let price = price(now);
        self.positions.insert(
            t,
            Mt5Position {
                ticket: t,
                symbol: "EURUSD".into(),
                side,
                volume: lots,
                open_price: price,
                open_time: Some(now),
                stop_loss: sl,
                take_profit: None,
                comment: comment.clone(),
            },
        );
        let deal = self.ticket();
        self.deals.push(Mt5Deal {
            ticket: deal,
            position: t,
            entry: DealEntry::In,
            price,
            volume: lots,
            time: now,
            comment,
        });
        self.ever.insert(t);
        t
    }

    fn close(&mut self, now: DateTime<Utc>, t: Ticket) -> Option<Decimal> {
        let p = self.positions.remove(&t)?;
        let deal = self.ticket();
        let price = price(now);
        self.deals.push(Mt5Deal {
            ticket: deal,
            position: t,
            entry: DealEntry::Out,
            price,
            volume: p.volume,
            time: now,
            comment: "[sl]".into(),
        });
        Some(price)
    }

    /// The position our comment opened, if any (the connector checks before placing: an open is never doubled).
    fn opened_by(&self, comment: &str) -> Option<Ticket> {
        self.deals.iter().find(|d| d.entry == DealEntry::In && d.comment == comment).map(|d| d.position)
    }

    fn snapshot(&self, now: DateTime<Utc>, from: DateTime<Utc>, lookups: &BTreeSet<Ticket>) -> Mt5Snapshot {
        let lookups = lookups
            .iter()
            .map(|t| TicketLookup {
                ticket: *t,
                result: if self.positions.contains_key(t) {
                    LookupResult::Open
                } else if let Some(d) = self.deals.iter().rev().find(|d| d.position == *t && d.entry == DealEntry::Out)
                {
                    LookupResult::Closed { price: d.price, time: d.time }
                } else {
                    LookupResult::NotFound
                },
            })
            .collect();
        Mt5Snapshot {
            connection_id: CONN,
            owner: USER,
            taken_at: now,
            positions: self.positions.values().cloned().collect(),
            history: Some(DealHistory {
                from,
                deals: self.deals.iter().filter(|d| d.time >= from).cloned().collect(),
                orders: self.orders.iter().filter(|o| o.time >= from).cloned().collect(),
            }),
            lookups,
        }
    }
}

fn price(now: DateTime<Utc>) -> Decimal {
    Decimal::new(11000 + (now.timestamp() % 50), 4)
}

fn pips(n: u8) -> Decimal {
    Decimal::new(i64::from(n) * 10, 5)
}

struct World {
    now: DateTime<Utc>,
    mt5: Mt5,
    books: Vec<BookOrder>,
    reservations: usize,
    commands: Vec<Cmd>,
    acks: Vec<Ack>,
    stored: Option<Mt5Snapshot>,
    lookups: BTreeSet<Ticket>,
    history_since: Option<DateTime<Utc>>,
    placed: Vec<Uuid>,
    /// The connector's memory of open commands it answered (by request id), until it restarts.
    answered: BTreeMap<Uuid, Ack>,
    stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    writes: usize,
    checks: usize,
    skipped: usize,
    adopted: usize,
    opened: usize,
    rejected: usize,
    closed: usize,
    followed: usize,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.writes += o.writes;
        self.checks += o.checks;
        self.skipped += o.skipped;
        self.adopted += o.adopted;
        self.opened += o.opened;
        self.rejected += o.rejected;
        self.closed += o.closed;
        self.followed += o.followed;
    }
}

impl World {
    fn new() -> World {
        World {
            now: t0(),
            mt5: Mt5::default(),
            books: vec![],
            reservations: 0,
            commands: vec![],
            acks: vec![],
            stored: None,
            lookups: BTreeSet::new(),
            history_since: None,
            placed: vec![],
            answered: BTreeMap::new(),
            stats: Stats::default(),
        }
    }

    fn order_mut(&mut self, id: Uuid) -> &mut BookOrder {
        self.books.iter_mut().find(|o| o.id == id).expect("order in books")
    }

    /// Applies an event through the order model, as the app's conditional write would.
    fn event(&mut self, id: Uuid, event: &OrderEvent) -> Option<Change> {
        let now = self.now;
        let o = self.order_mut(id);
        match transition(o.state, event) {
            Ok(Transition::Applied(c)) => {
                o.state = c.to;
                o.updated_at = now;
                if c.releases_reservation() {
                    self.reservations -= 1;
                }
                Some(c)
            }
            _ => None,
        }
    }

    fn with_status(&self, statuses: &[OrderStatus]) -> Vec<Uuid> {
        self.books.iter().filter(|o| statuses.contains(&o.state.status)).map(|o| o.id).collect()
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Place { sell, sl_pips } => {
                let id = Uuid::from_u128(0xA000 + self.placed.len() as u128);
                let side = if *sell { Side::Sell } else { Side::Buy };
                let px = price(self.now);
                self.books.push(BookOrder {
                    id,
                    user_id: USER,
                    client_order_id: ClientOrderId::from_uuid(id),
                    state: OrderState::new_pending(),
                    symbol: "EURUSD".into(),
                    side,
                    lots: Lots::new_unchecked(Decimal::new(1, 1)),
                    open_price: None,
                    stop_loss: Some(px - side.sign() * pips(*sl_pips)),
                    take_profit: None,
                    created_at: self.now,
                    updated_at: self.now,
                    last_price: Some(px),
                });
                self.reservations += 1;
                self.placed.push(id);
                self.commands.push(Cmd::Open { order: id, sent_at: self.now });
            }
            Op::Deliver { pick, dup, exec, ack } => {
                if self.commands.is_empty() {
                    return;
                }
                let i = pick.index(self.commands.len());
                let cmd = if *dup { self.commands[i].clone() } else { self.commands.remove(i) };
                self.execute(cmd, *exec, *ack);
            }
            Op::LoseCommand { pick } => {
                if !self.commands.is_empty() {
                    self.commands.remove(pick.index(self.commands.len()));
                }
            }
            Op::Ack { pick, dup } => {
                if self.acks.is_empty() {
                    return;
                }
                let i = pick.index(self.acks.len());
                let ack = if *dup { self.acks[i].clone() } else { self.acks.remove(i) };
                self.receive(ack);
            }
            Op::LoseAck { pick } => {
                if !self.acks.is_empty() {
                    self.acks.remove(pick.index(self.acks.len()));
                }
            }
            Op::Tick { secs } => {
                self.now += TimeDelta::seconds(i64::from(*secs));
                self.sweep_timeouts();
            }
            Op::RequestClose { pick } => {
                let open = self.with_status(&[OrderStatus::Open]);
                if let Some(id) = open.get(pick.index(open.len().max(1))).copied()
                    && self.event(id, &OrderEvent::CloseRequested).is_some()
                {
                    let ticket = self.order_mut(id).state.ticket.expect("open has ticket");
                    self.commands.push(Cmd::Close { order: id, ticket, sent_at: self.now });
                }
            }
            Op::RequestModify { pick, sl_pips } => {
                let open = self.with_status(&[OrderStatus::Open]);
                if let Some(id) = open.get(pick.index(open.len().max(1))).copied()
                    && self.event(id, &OrderEvent::ModifyRequested).is_some()
                {
                    let o = self.order_mut(id);
                    let ticket = o.state.ticket.expect("open has ticket");
                    let sl = o.open_price.unwrap_or_default() - o.side.sign() * pips(*sl_pips);
                    self.commands.push(Cmd::Modify { order: id, ticket, sl, sent_at: self.now });
                }
            }
            Op::ManualOpen { sell } => {
                let side = if *sell { Side::Sell } else { Side::Buy };
                self.mt5.open(self.now, side, Lots::new_unchecked(Decimal::new(2, 1)), None, "manual".into());
            }
            Op::ManualClose { pick } => {
                let tickets: Vec<Ticket> = self.mt5.positions.keys().copied().collect();
                if let Some(t) = tickets.get(pick.index(tickets.len().max(1))) {
                    self.mt5.close(self.now, *t);
                }
            }
            Op::ManualModify { pick, sl_pips } => {
                let tickets: Vec<Ticket> = self.mt5.positions.keys().copied().collect();
                if let Some(t) = tickets.get(pick.index(tickets.len().max(1))) {
                    let p = self.mt5.positions.get_mut(t).expect("listed");
                    p.stop_loss = Some(p.open_price - p.side.sign() * pips(*sl_pips));
                }
            }
            Op::Restart => {
                self.commands.clear();
                self.acks.clear();
                self.answered.clear();
            }
            Op::TakeSnapshot => self.stored = Some(self.fresh_snapshot(false)),
            Op::Reconcile { genesis, stored } => {
                let snap = match (&self.stored, stored) {
                    (Some(s), true) => s.clone(),
                    _ => self.fresh_snapshot(*genesis),
                };
                self.reconcile(&snap);
            }
        }
    }

    fn expired(&self, sent_at: DateTime<Utc>) -> bool {
        self.now >= sent_at + cfg().command_expiry
    }

    /// The connector: refuses expired commands, answers a redelivered open with its first answer, and never places an
    /// open whose comment MT5 already has.
    fn execute(&mut self, cmd: Cmd, exec: bool, ack: u8) {
        let now = self.now;
        match cmd {
            Cmd::Open { order, sent_at } => {
                if self.expired(sent_at) {
                    return;
                }
                // A redelivered command gets the same answer again; it is never executed twice.
                if let Some(ack) = self.answered.get(&order) {
                    self.acks.push(ack.clone());
                    return;
                }
                let o = self.books.iter().find(|o| o.id == order).expect("written before sent").clone();
                let comment = o.client_order_id.comment();
                if let Some(t) = self.mt5.opened_by(&comment) {
                    let px = self.mt5.deals.iter().find(|d| d.position == t).map(|d| d.price).unwrap_or_default();
                    self.acks.push(Ack::Open { order, result: Ok((t, px)) });
                } else if exec {
                    let t = self.mt5.open(now, o.side, o.lots, o.stop_loss, comment);
                    let result =
                        if ack.is_multiple_of(3) { Err(failure(Some(Retcode::TIMEOUT))) } else { Ok((t, price(now))) };
                    self.acks.push(Ack::Open { order, result });
                } else {
                    if ack.is_multiple_of(2) {
                        let ticket = self.mt5.ticket();
                        self.mt5.orders.push(Mt5HistoryOrder {
                            ticket,
                            state: HistoryOrderState::Rejected,
                            time: now,
                            comment,
                        });
                    }
                    let code = [
                        None,
                        Some(Retcode::NO_MONEY),
                        Some(Retcode::REQUOTE),
                        Some(Retcode::TIMEOUT),
                        Some(Retcode::CONNECTION),
                    ][usize::from(ack) % 5];
                    self.acks.push(Ack::Open { order, result: Err(failure(code)) });
                }
                let ack = self.acks.last().expect("just answered").clone();
                self.answered.insert(order, ack);
            }
            Cmd::Close { order, ticket, sent_at } => {
                if self.expired(sent_at) {
                    return;
                }
                let result = self.mt5.close(now, ticket).ok_or_else(|| failure(Some(Retcode(10036))));
                self.acks.push(Ack::Close { order, result });
            }
            Cmd::Modify { order, ticket, sl, sent_at } => {
                if self.expired(sent_at) {
                    return;
                }
                let result = match self.mt5.positions.get_mut(&ticket) {
                    Some(p) => {
                        p.stop_loss = Some(sl);
                        Ok(())
                    }
                    None => Err(failure(Some(Retcode(10036)))),
                };
                self.acks.push(Ack::Modify { order, sl, result });
            }
        }
    }

    /// The server applies an ack through the order model.
    fn receive(&mut self, ack: Ack) {
        let now = self.now;
        match ack {
            Ack::Open { order, result: Ok((ticket, px)) } => {
                if self.event(order, &OrderEvent::OpenFilled(Fill { ticket, price: px, time: now })).is_some() {
                    self.order_mut(order).open_price = Some(px);
                }
            }
            Ack::Open { order, result: Err(f) } => {
                self.event(order, &OrderEvent::OpenFailed(f));
            }
            Ack::Close { order, result: Ok(px) } => {
                self.event(order, &OrderEvent::CloseFilled { price: px, time: now });
            }
            Ack::Close { order, result: Err(f) } => {
                self.event(order, &OrderEvent::CloseFailed(f));
            }
            Ack::Modify { order, sl, result: Ok(()) } => {
                if self.event(order, &OrderEvent::ModifyAcked).is_some() {
                    self.order_mut(order).stop_loss = Some(sl);
                }
            }
            Ack::Modify { order, result: Err(f), .. } => {
                self.event(order, &OrderEvent::ModifyFailed(f));
            }
        }
    }

    /// The ack-timeout sweep (a delayed queue message per command in the app).
    fn sweep_timeouts(&mut self) {
        let due: Vec<(Uuid, OrderEvent)> = self
            .books
            .iter()
            .filter(|o| o.updated_at + cfg().ack_timeout <= self.now)
            .filter_map(|o| match o.state.status {
                OrderStatus::Pending => Some((o.id, OrderEvent::OpenTimedOut)),
                OrderStatus::ClosePending => Some((o.id, OrderEvent::CloseTimedOut)),
                OrderStatus::ModifyPending => Some((o.id, OrderEvent::ModifyTimedOut)),
                _ => None,
            })
            .collect();
        for (id, e) in due {
            self.event(id, &e);
        }
    }

    fn fresh_snapshot(&self, genesis: bool) -> Mt5Snapshot {
        let watermark = self.now - TimeDelta::seconds(150);
        let mut from = if genesis { t0() - TimeDelta::hours(1) } else { watermark };
        if let Some(since) = self.history_since {
            from = from.min(since);
        }
        self.mt5.snapshot(self.now, from, &self.lookups)
    }

    fn reconcile(&mut self, snap: &Mt5Snapshot) -> Vec<Action> {
        let actions = reconcile(&self.books, &Snapshot::Received(snap.clone()), self.now, &cfg());
        for a in &actions {
            match a {
                Action::Skipped(_) => self.stats.skipped += 1,
                Action::RequestTargetedCheck { ticket, history_since, .. } => {
                    self.stats.checks += 1;
                    if let Some(t) = ticket {
                        self.lookups.insert(*t);
                    }
                    self.history_since = Some(self.history_since.map_or(*history_since, |h| h.min(*history_since)));
                }
                Action::Conflict { .. } => panic!("no conflict can arise in this world: {a:?}"),
                _ => {}
            }
            if apply(&mut self.books, a, self.now) {
                self.stats.writes += 1;
                let kind = |m: bool| usize::from(m);
                self.stats.adopted += kind(matches!(a, Action::AdoptExternal { .. }));
                self.stats.opened += kind(matches!(a, Action::ResolveOpen { .. }));
                self.stats.rejected += kind(matches!(a, Action::ResolveRejected { .. }));
                self.stats.closed += kind(matches!(a, Action::CloseExternally { .. }));
                self.stats.followed += kind(matches!(a, Action::FollowMt5 { .. }));
                if a.releases_reservation() {
                    self.reservations -= 1;
                }
                if a.takes_reservation() {
                    self.reservations += 1;
                }
            }
        }
        actions
    }

    /// Invariants that hold at every step.
    fn check_always(&self) -> Result<(), TestCaseError> {
        use OrderStatus as S;
        for o in &self.books {
            let st = o.state.status;
            if matches!(
                st,
                S::Open | S::ClosePending | S::ModifyPending | S::External | S::Closed | S::ClosedExternally
            ) {
                // No order OPEN (or ever opened) without MT5 evidence.
                let has_evidence = o.state.ticket.is_some_and(|t| self.mt5.ever.contains(&t));
                let closed_without_ticket = matches!(st, S::Closed | S::ClosedExternally) && o.state.ticket.is_none();
                prop_assert!(has_evidence || closed_without_ticket, "{st} without MT5 evidence: {o:?}");
            }
        }
        let held = self.books.iter().filter(|o| o.state.status.holds_reservation()).count();
        prop_assert_eq!(self.reservations, held, "reservations equal open orders");
        let mut seen = BTreeSet::new();
        for o in self.books.iter().filter(|o| o.state.status.is_position()) {
            prop_assert!(seen.insert(o.state.ticket), "position doubled in books: {:?}", o);
        }
        let mut comments = BTreeSet::new();
        for p in self.mt5.positions.values().filter(|p| p.comment.starts_with("NT-")) {
            prop_assert!(comments.insert(&p.comment), "order doubled in MT5: {}", p.comment);
        }
        for id in &self.placed {
            prop_assert!(self.books.iter().any(|o| o.id == *id), "order lost from books");
        }
        Ok(())
    }

    /// After the final reconciliation: our books equal MT5.
    fn check_converged(&self) -> Result<(), TestCaseError> {
        use OrderStatus as S;
        for p in self.mt5.positions.values() {
            let holders: Vec<&BookOrder> = self
                .books
                .iter()
                .filter(|o| o.state.status.is_position() && o.state.ticket == Some(p.ticket))
                .collect();
            prop_assert_eq!(holders.len(), 1, "exactly one order holds position {:?}", p.ticket);
            let o = holders[0];
            prop_assert!(matches!(o.state.status, S::Open | S::External), "{:?}", o);
            prop_assert_eq!((o.side, o.lots, o.stop_loss, o.take_profit), (p.side, p.volume, p.sl(), p.tp()));
        }
        for o in &self.books {
            let st = o.state.status;
            prop_assert!(
                !matches!(st, S::Pending | S::Unknown | S::ClosePending | S::ModifyPending),
                "unresolved {o:?}"
            );
            if st.is_position() {
                prop_assert!(o.state.ticket.is_some_and(|t| self.mt5.positions.contains_key(&t)), "phantom {o:?}");
            }
            // None lost: an order MT5 executed is tied to that position, open or closed; never rejected.
            if let Some(t) = self.mt5.opened_by(&o.client_order_id.comment()) {
                prop_assert_eq!(o.state.ticket, Some(t), "{:?}", o);
                prop_assert!(matches!(st, S::Open | S::Closed | S::ClosedExternally), "{o:?}");
            }
        }
        Ok(())
    }
}

fn run_world(ops: &[Op]) -> Result<Stats, TestCaseError> {
    let mut w = World::new();
    for op in ops {
        w.step(op);
        w.check_always()?;
    }
    // Quiesce: late acks still arrive, then every command has expired and the connector drops it.
    w.now += cfg().command_expiry + TimeDelta::seconds(1);
    while let Some(ack) = w.acks.pop() {
        w.receive(ack);
    }
    w.commands.clear();
    w.sweep_timeouts();
    w.now += cfg().ack_timeout + cfg().min_age;
    w.sweep_timeouts();
    w.now += cfg().min_age;
    w.check_always()?;

    // One reconciliation with a fresh snapshot: a run, then its targeted checks answered in a second snapshot.
    w.lookups.clear();
    w.history_since = None;
    let first = w.reconcile(&w.fresh_snapshot(false));
    if first.iter().any(|a| matches!(a, Action::RequestTargetedCheck { .. })) {
        let second = w.reconcile(&w.fresh_snapshot(false));
        prop_assert!(
            second.iter().all(|a| !matches!(a, Action::RequestTargetedCheck { .. })),
            "targeted checks answered: {second:?}"
        );
    }
    w.check_always()?;
    w.check_converged()?;

    // Idempotent: a later run over the same MT5 state finds nothing at all.
    w.now += cfg().min_age + TimeDelta::seconds(1);
    w.lookups.clear();
    w.history_since = None;
    let again = w.reconcile(&w.fresh_snapshot(false));
    prop_assert!(again.is_empty(), "second reconciliation changed {again:?}");
    Ok(w.stats)
}

#[test]
fn books_converge_to_mt5() {
    use std::cell::{Cell, RefCell};

    use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

    let config = Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel("proptest-regressions"))),
        source_file: Some(file!()),
        ..Config::with_cases(CASES)
    };
    let mut runner = TestRunner::new(config);
    let total = RefCell::new(Stats::default());
    let (runs, steps) = (Cell::new(0usize), Cell::new(0usize));
    let result = runner.run(&prop::collection::vec(op(), 0..60), |ops| {
        let stats = run_world(&ops)?;
        total.borrow_mut().add(stats);
        runs.set(runs.get() + 1);
        steps.set(steps.get() + ops.len());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let total = total.into_inner();
    eprintln!("reconcile proptest: {} cases run ({CASES} configured), {} steps; {total:?}", runs.get(), steps.get());
    assert!(runs.get() >= CASES as usize);
    assert!(total.opened > 0 && total.rejected > 0 && total.closed > 0 && total.adopted > 0 && total.followed > 0);
    assert!(total.checks > 0 && total.skipped > 0, "{total:?}");
}

/// A fixed interleaving hitting every rule at once, so the property's world is known to exercise them.
#[test]
fn the_world_exercises_every_rule() {
    let i = Pick;
    let ops = vec![
        Op::Place { sell: false, sl_pips: 10 },
        Op::Place { sell: true, sl_pips: 20 },
        Op::Place { sell: false, sl_pips: 30 },
        // #1 executes, its ack is lost; #2 is not executed (history order recorded); #3 is lost.
        Op::Deliver { pick: i(0), dup: false, exec: true, ack: 1 },
        Op::LoseAck { pick: i(0) },
        Op::Deliver { pick: i(0), dup: false, exec: false, ack: 2 },
        Op::LoseAck { pick: i(0) },
        Op::LoseCommand { pick: i(0) },
        Op::ManualOpen { sell: true },
        Op::Tick { secs: 40 },
        Op::Reconcile { genesis: true, stored: false },
    ];
    let stats = run_world(&ops).expect("converges");
    assert!(stats.writes >= 4 && stats.adopted == 1, "{stats:?}");
}
