//! Read side of orders: paginated, filtered listings and the dashboard statistics.
//!
//! Listings read the store page by page and filter by symbol/status; a page asks the store only for as
//! many items as are still missing, so the store's cursor always sits exactly after the last item
//! examined and the next page starts there. A page may hold fewer than `limit` items while a cursor is
//! returned (a selective filter over a long history stops after [`MAX_EXAMINED`] items); clients follow
//! the cursor until there is none.

use nusatrade_domain::money::{Currency, Side};
use nusatrade_domain::order::OrderStatus;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::acks::profit_at;
use super::book::OrderBook;
use super::error::TradingResult;
use super::service::OrderService;
use super::store::{ORDER_PREFIX, OrderRecord, day_key, stats_key};
use crate::connector::registry::Quote;
use crate::keys::user_pk;
use crate::ports::{Cursor, Query};

/// Items examined at most for one page.
pub const MAX_EXAMINED: usize = 2000;
/// Largest and default page sizes.
pub const MAX_PAGE: u32 = 200;
pub const DEFAULT_POSITIONS_PAGE: u32 = 100;
pub const DEFAULT_HISTORY_PAGE: u32 = 100;

/// Filters of the list routes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    pub symbol: Option<String>,
    /// `None`: the route's default set.
    pub statuses: Option<Vec<OrderStatus>>,
}

impl ListFilter {
    fn matches(&self, o: &OrderRecord, default: impl Fn(OrderStatus) -> bool) -> bool {
        self.symbol.as_ref().is_none_or(|s| *s == o.symbol)
            && match &self.statuses {
                Some(set) => set.contains(&o.status),
                None => default(o.status),
            }
    }
}

/// One page of orders.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderPage {
    pub items: Vec<OrderRecord>,
    pub cursor: Option<Cursor>,
}

/// `GET /trading/dashboard/stats` (contract §2.4), money as exact decimals.
#[derive(Clone, Debug, PartialEq)]
pub struct DashboardStats {
    pub balance: Decimal,
    pub equity: Decimal,
    pub open_positions: u64,
    pub today_pnl: Decimal,
    pub total_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub total_trades: u64,
    /// Percent of closed trades with a positive profit.
    pub win_rate: Decimal,
    pub has_live_connection: bool,
}

/// The original's balance when no connector reports one: 10 000 plus the realised P/L.
pub const FALLBACK_BALANCE: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

impl OrderService {
    async fn collect(
        &self,
        base: Query,
        limit: u32,
        cursor: Option<Cursor>,
        keep: impl Fn(&OrderRecord) -> bool,
    ) -> TradingResult<OrderPage> {
        let mut items = Vec::new();
        let mut cursor = cursor;
        let mut examined = 0usize;
        loop {
            let want = (limit as usize - items.len()).max(1) as u32;
            let page = self.book.store.query(base.clone().limit(want).after(cursor.take())).await?;
            examined += page.items.len();
            for item in &page.items {
                let o: OrderRecord = item.to_record()?;
                if keep(&o) {
                    items.push(o);
                }
            }
            cursor = page.cursor;
            if items.len() >= limit as usize || cursor.is_none() || examined >= MAX_EXAMINED {
                return Ok(OrderPage { items, cursor });
            }
        }
    }

    /// Live positions (open, closing, modifying, adopted external), newest first; `status` may also ask
    /// for `pending` / `unknown` orders.
    pub async fn positions(
        &self,
        user: Uuid,
        filter: &ListFilter,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> TradingResult<OrderPage> {
        let q = OrderBook::live_query(user).descending();
        let mut page = self
            .collect(q, limit, cursor, |o| o.user_id == user && filter.matches(o, OrderStatus::is_position))
            .await?;
        self.mark_to_market(user, &mut page.items).await?;
        Ok(page)
    }

    /// Marks open positions to the latest quotes the user's connectors reported (no older than the
    /// `quote_max_age` setting): a position whose books hold no price, or an older one than the quote, shows the
    /// quote's closing side (bid for a buy, ask for a sell) and its floating profit there, in the account
    /// currency. The books are not written: MT5's own figures replace these at the next positions report.
    async fn mark_to_market(&self, user: Uuid, items: &mut [OrderRecord]) -> TradingResult<()> {
        let mut quotes: Vec<(String, Option<Quote>)> = Vec::new();
        let mut currencies: Vec<(Option<Uuid>, Currency)> = Vec::new();
        for o in items.iter_mut().filter(|o| o.status.is_position() && o.open_price.is_some()) {
            let quote = match quotes.iter().find(|(s, _)| *s == o.symbol) {
                Some((_, q)) => q.clone(),
                None => {
                    let q = self.registry().quote(user, &o.symbol, self.config.quote_max_age).await?;
                    quotes.push((o.symbol.clone(), q.clone()));
                    q
                }
            };
            let Some(q) = quote else { continue };
            if o.current_price.is_some() && o.updated_at >= q.time {
                continue;
            }
            let currency = match currencies.iter().find(|(b, _)| *b == o.broker_connection_id) {
                Some((_, c)) => *c,
                None => {
                    let c = self.account_currency(o).await;
                    currencies.push((o.broker_connection_id, c));
                    c
                }
            };
            let price = match o.side {
                Side::Buy => q.bid,
                Side::Sell => q.ask,
            };
            o.current_price = Some(price);
            o.floating_profit = profit_at(o, price, currency).or(o.floating_profit);
        }
        Ok(())
    }

    /// Every order of the user, newest first (the original's history listed open and closed trades).
    pub async fn history(
        &self,
        user: Uuid,
        filter: &ListFilter,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> TradingResult<OrderPage> {
        let q = Query::partition(user_pk(user)).sk_prefix(ORDER_PREFIX).descending();
        self.collect(q, limit, cursor, |o| filter.matches(o, |_| true)).await
    }

    /// The dashboard figures: realised P/L from the aggregates written with each close, floating P/L
    /// from the live positions, balance/equity from the connectors' account snapshots when there are
    /// any (else the original's 10 000 + P/L fallback).
    pub async fn stats(&self, user: Uuid) -> TradingResult<DashboardStats> {
        let today = self.clock.now().date_naive();
        let (sk, dk, all) = (stats_key(user), day_key(user, today), ListFilter::default());
        let (stats, day, live, links) = tokio::join!(
            self.book.store.get(&sk),
            self.book.store.get(&dk),
            self.positions(user, &all, MAX_PAGE * 5, None),
            self.registry().links(user),
        );
        let stats = stats?;
        let n = |attr: &str| stats.as_ref().and_then(|i| i.get_n(attr)).unwrap_or_default();
        let (closed, wins, total_pnl) = (n("closed_trades"), n("winning_trades"), n("total_pnl"));
        let today_pnl = day?.and_then(|i| i.get_n("pnl")).unwrap_or_default();
        let live = live?;
        let unrealized: Decimal = live.items.iter().filter_map(|o| o.floating_profit).sum();

        let mut balance = Decimal::ZERO;
        let mut equity = Decimal::ZERO;
        let mut has_live = false;
        for link in links? {
            if let Some(a) = self.registry().account(user, link.broker_connection_id).await? {
                balance += a.balance;
                equity += a.equity;
                has_live = true;
            }
        }
        if !has_live {
            balance = FALLBACK_BALANCE + total_pnl;
            equity = balance + unrealized;
        }
        let win_rate =
            if closed > Decimal::ZERO { (wins * Decimal::ONE_HUNDRED / closed).round_dp(1) } else { Decimal::ZERO };
        Ok(DashboardStats {
            balance: balance.round_dp(2),
            equity: equity.round_dp(2),
            open_positions: live.items.len() as u64,
            today_pnl: today_pnl.round_dp(2),
            total_pnl: total_pnl.round_dp(2),
            unrealized_pnl: unrealized.round_dp(2),
            total_trades: u64::try_from(closed).unwrap_or(0),
            win_rate,
            has_live_connection: has_live,
        })
    }
}
