//! A paper MT5 account: market orders filled at the last tick, floating P/L and margin, stop loss / take profit,
//! partial closes and a deal history, with MT5 return codes on rejection.
//!
//! ## Rules
//! * **Fills.** A BUY opens at the ask and closes at the bid; a SELL opens at the bid and closes at the ask, of the
//!   last tick received for the symbol ([`PaperAccount::on_tick`]). No tick yet → 10021 PRICE_OFF. No slippage,
//!   no requotes, no stop/freeze levels, no swaps or commissions, no stop-out.
//! * **Volumes** follow the instrument ([`Instrument::validate_lots`]) → 10014 INVALID_VOLUME.
//! * **Stops.** `0` means "none" (MT5); other values are rounded to the instrument's digits. On open they must be
//!   on the right side of both the fill price and the closing price (BUY: SL < bid and TP > ask; SELL: SL > ask
//!   and TP < bid); on modify, of the current closing price only (so a trailing SL may pass the open price)
//!   → 10016 INVALID_STOPS. A modify that changes nothing → 10025 NO_CHANGES, as MT5.
//! * **Stop hits** are checked on every tick of the symbol against the closing price: BUY SL when bid ≤ SL, TP when
//!   bid ≥ TP; SELL SL when ask ≥ SL, TP when ask ≤ TP. The fill is the **worse price for the trader** of the level
//!   and the tick: a stop loss that gaps through fills at the tick price (slippage, as a stop becomes a market
//!   order), a take profit that gaps through fills at its level (no positive slippage: the conservative choice).
//! * **Profit** in the account currency: `(close − open) × side × lots × contract_size` in the quote currency
//!   ([`closed_profit`]), converted at the closing price when the account is the base or quote currency
//!   ([`Instrument::quote_to_account`]), else at the mid of the last tick of a pair linking the two currencies
//!   (directly, inversely, or through USD); rounded to cents. With no such tick the order is rejected (10021).
//! * **Margin**: [`margin_required`] at the account leverage and the current opening-side price (ask for BUY, bid
//!   for SELL), converted as above, rounded to cents; recomputed on every tick. An order whose margin exceeds the
//!   free margin → 10019 NO_MONEY. Equity = balance + floating profit; free margin = equity − margin.
//! * **Comments** are cut to 31 characters (MT5's limit) and kept on the position and its deals.
//! * **Tickets**: positions are numbered from [`DEFAULT_FIRST_TICKET`], deals from [`DEFAULT_FIRST_DEAL`]
//!   (configurable), increasing.
//!
//! Deterministic: no wall clock; times come from ticks and requests.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use nusatrade_domain::instrument::{INSTRUMENTS, Instrument, Symbol};
use nusatrade_domain::money::{Conversion, Currency, Lots, MoneyError, Side, round_money};
use nusatrade_domain::order::{MT5_COMMENT_MAX_LEN, Retcode, Ticket, closed_profit, validate_stops};
use nusatrade_domain::sizing::margin_required;
use rust_decimal::Decimal;

use super::feed::Tick;

pub use self::types::{
    AccountSnapshot, AccountState, CloseFill, ClosedPosition, DEFAULT_FIRST_DEAL, DEFAULT_FIRST_TICKET, Deal,
    DealEntry, DealReason, INVALID, INVALID_CLOSE_VOLUME, INVALID_STOPS, INVALID_VOLUME, MARKET_CLOSED, NO_CHANGES,
    OpenFill, OpenRequest, POSITION_NOT_FOUND, PaperPosition, Reject,
};

mod types;

/// The paper account. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct PaperAccount {
    currency: Currency,
    balance: Decimal,
    leverage: u32,
    next_ticket: u64,
    next_deal: u64,
    positions: BTreeMap<u64, PaperPosition>,
    last: HashMap<&'static str, Tick>,
    deals: Vec<Deal>,
}

/// What a stop hit does: reason and fill price.
type StopHit = (DealReason, Decimal);

impl PaperAccount {
    /// An account with a balance in `currency` and a leverage of 1:`leverage` (0 is taken as 1).
    pub fn new(currency: Currency, balance: Decimal, leverage: u32) -> PaperAccount {
        PaperAccount {
            currency,
            balance,
            leverage: leverage.max(1),
            next_ticket: DEFAULT_FIRST_TICKET,
            next_deal: DEFAULT_FIRST_DEAL,
            positions: BTreeMap::new(),
            last: HashMap::new(),
            deals: Vec::new(),
        }
    }

    /// Numbers the next positions from `first`.
    pub fn with_first_ticket(mut self, first: u64) -> PaperAccount {
        self.next_ticket = first;
        self
    }

    /// Numbers the next deals from `first`.
    pub fn with_first_deal(mut self, first: u64) -> PaperAccount {
        self.next_deal = first;
        self
    }

    /// The last valid tick received for `symbol`.
    pub fn last_tick(&self, symbol: Symbol) -> Option<Tick> {
        self.last.get(symbol.as_str()).copied()
    }

    /// Takes a new quote: closes the positions of that symbol whose stop loss or take profit it reaches (in ticket
    /// order), then revalues every position (a tick can change a conversion rate used by other symbols).
    /// An invalid tick (bid ≤ 0 or ask < bid) is ignored.
    pub fn on_tick(&mut self, tick: Tick) -> Vec<ClosedPosition> {
        if !tick.is_valid() {
            return Vec::new();
        }
        self.last.insert(tick.symbol.as_str(), tick);
        let hits: Vec<(u64, StopHit)> = self
            .positions
            .iter()
            .filter(|(_, p)| p.symbol == tick.symbol)
            .filter_map(|(t, p)| stop_hit(p, &tick).map(|hit| (*t, hit)))
            .collect();
        let mut closed = Vec::new();
        for (ticket, (reason, price)) in hits {
            let Some(position) = self.positions.get(&ticket).cloned() else { continue };
            // A conversion can only be missing if the rates vanished, which ticks never do: keep the position then.
            if let Ok((deal, profit)) = self.fill_close(ticket, position.lots, price, tick.time, reason) {
                closed.push(ClosedPosition {
                    ticket: position.ticket,
                    deal,
                    symbol: position.symbol,
                    side: position.side,
                    lots: position.lots,
                    open_price: position.open_price,
                    close_price: price,
                    profit,
                    time: tick.time,
                    reason,
                    comment: position.comment,
                });
            }
        }
        self.revalue_all();
        closed
    }

    /// Opens a position at market (see the module docs for every check and its return code).
    pub fn open(&mut self, request: OpenRequest) -> Result<OpenFill, Reject> {
        let symbol = Symbol::parse(&request.symbol)
            .map_err(|_| Reject::new(INVALID, format!("Symbol {} not found", request.symbol)))?;
        let inst = symbol.instrument();
        let tick = self.quote(symbol)?;
        let lots = inst
            .validate_lots(request.lots)
            .map_err(|e| Reject::new(INVALID_VOLUME, format!("Invalid volume {}: {e}", request.lots)))?
            .value();
        let side = request.side;
        let stop_loss = normalise_stop(inst, request.stop_loss);
        let take_profit = normalise_stop(inst, request.take_profit);
        for reference in [tick.open_price(side), tick.close_price(side)] {
            validate_stops(side, reference, stop_loss, take_profit)
                .map_err(|e| Reject::new(INVALID_STOPS, format!("Invalid stops: {e}")))?;
        }
        // Both conversions must be derivable now, so the position can always be valued and closed later.
        self.quote_conversion(inst, tick.close_price(side))?;
        let margin = self.margin_for(inst, side, lots, &tick)?;
        let free_margin = self.account().free_margin;
        if margin > free_margin {
            return Err(Reject::new(
                Retcode::NO_MONEY,
                format!("No money: margin {margin} {c} required, free margin {free_margin} {c}", c = self.currency),
            ));
        }
        let price = tick.open_price(side);
        let comment: String = request.comment.chars().take(MT5_COMMENT_MAX_LEN).collect();
        let ticket = Ticket(self.next_ticket);
        let mut position = PaperPosition {
            ticket,
            symbol,
            side,
            lots,
            open_price: price,
            open_time: request.time,
            stop_loss,
            take_profit,
            current_price: tick.close_price(side),
            profit: Decimal::ZERO,
            margin,
            comment: comment.clone(),
        };
        (position.current_price, position.profit, position.margin) = self.valuation(&position)?;
        self.next_ticket += 1;
        self.positions.insert(ticket.0, position);
        let deal = self.record_deal(Deal {
            ticket: Ticket(0),
            position: ticket,
            symbol,
            side,
            entry: DealEntry::In,
            lots,
            price,
            profit: Decimal::ZERO,
            time: request.time,
            reason: DealReason::Client,
            comment,
        });
        Ok(OpenFill { ticket, deal, price, time: request.time })
    }

    /// Closes `lots` of a position (all of it when `None`) at market: bid for BUY, ask for SELL. The realised
    /// profit goes to the balance and a closing deal to the history.
    pub fn close(&mut self, ticket: Ticket, lots: Option<Decimal>, time: DateTime<Utc>) -> Result<CloseFill, Reject> {
        let position = self.positions.get(&ticket.0).ok_or_else(|| not_found(ticket))?;
        let inst = position.symbol.instrument();
        let volume = match lots {
            None => position.lots,
            Some(v) => {
                let valid = inst
                    .validate_lots(v)
                    .map_err(|e| Reject::new(INVALID_VOLUME, format!("Invalid volume {v}: {e}")))?
                    .value();
                let rest = position.lots - valid;
                if rest < Decimal::ZERO {
                    return Err(Reject::new(
                        INVALID_CLOSE_VOLUME,
                        format!("Close volume {v} exceeds the position's {}", position.lots),
                    ));
                }
                if rest > Decimal::ZERO && rest < inst.min_volume {
                    return Err(Reject::new(
                        INVALID_CLOSE_VOLUME,
                        format!("Closing {v} would leave {rest}, below the minimum volume {}", inst.min_volume),
                    ));
                }
                valid
            }
        };
        let side = position.side;
        let tick = self.quote(position.symbol)?;
        let price = tick.close_price(side);
        let (deal, profit) = self.fill_close(ticket.0, volume, price, time, DealReason::Client)?;
        Ok(CloseFill { ticket, deal, lots: volume, price, profit, time })
    }

    /// Changes a position's stops (MT5 SLTP): `None` keeps the current value, `Some(0)` removes it; other values
    /// are rounded to the instrument's digits and must be on the right side of the current closing price.
    /// Returns the updated position.
    pub fn modify(
        &mut self,
        ticket: Ticket,
        stop_loss: Option<Decimal>,
        take_profit: Option<Decimal>,
    ) -> Result<PaperPosition, Reject> {
        let position = self.positions.get(&ticket.0).ok_or_else(|| not_found(ticket))?;
        let inst = position.symbol.instrument();
        let sl = stop_loss.map_or(position.stop_loss, |v| normalise_stop(inst, Some(v)));
        let tp = take_profit.map_or(position.take_profit, |v| normalise_stop(inst, Some(v)));
        if sl == position.stop_loss && tp == position.take_profit {
            return Err(Reject::new(NO_CHANGES, format!("No changes for position {}", ticket.0)));
        }
        let tick = self.quote(position.symbol)?;
        validate_stops(position.side, tick.close_price(position.side), sl, tp)
            .map_err(|e| Reject::new(INVALID_STOPS, format!("Invalid stops: {e}")))?;
        let position = self.positions.get_mut(&ticket.0).ok_or_else(|| not_found(ticket))?;
        position.stop_loss = sl;
        position.take_profit = tp;
        Ok(position.clone())
    }

    /// Open positions, by ticket.
    pub fn positions(&self) -> Vec<PaperPosition> {
        self.positions.values().cloned().collect()
    }

    /// One open position.
    pub fn position(&self, ticket: Ticket) -> Option<PaperPosition> {
        self.positions.get(&ticket.0).cloned()
    }

    /// Open positions whose comment is `comment` (compared after the same 31-character cut), by ticket.
    pub fn find_by_comment(&self, comment: &str) -> Vec<PaperPosition> {
        let wanted: String = comment.chars().take(MT5_COMMENT_MAX_LEN).collect();
        self.positions.values().filter(|p| p.comment == wanted).cloned().collect()
    }

    /// The account summary.
    pub fn account(&self) -> AccountState {
        let profit: Decimal = self.positions.values().map(|p| p.profit).sum();
        let margin: Decimal = self.positions.values().map(|p| p.margin).sum();
        let equity = self.balance + profit;
        let margin_level = (!margin.is_zero()).then(|| (equity / margin * Decimal::ONE_HUNDRED).round_dp(2));
        AccountState {
            currency: self.currency,
            balance: self.balance,
            equity,
            margin,
            free_margin: equity - margin,
            profit,
            leverage: self.leverage,
            margin_level,
        }
    }

    /// Every deal, oldest first.
    pub fn history(&self) -> &[Deal] {
        &self.deals
    }

    /// Everything the account is, with only the `max_deals` most recent deals (for saving it).
    pub fn snapshot(&self, max_deals: usize) -> AccountSnapshot {
        let mut quotes: Vec<Tick> = self.last.values().copied().collect();
        quotes.sort_by_key(|t| t.symbol.as_str());
        AccountSnapshot {
            currency: self.currency,
            balance: self.balance,
            leverage: self.leverage,
            next_ticket: self.next_ticket,
            next_deal: self.next_deal,
            positions: self.positions.values().cloned().collect(),
            quotes,
            deals: self.deals[self.deals.len().saturating_sub(max_deals)..].to_vec(),
        }
    }

    /// The account a [`snapshot`](Self::snapshot) describes, after checking it is consistent (tickets below the
    /// counters and unique, positive volumes and prices, valid quotes, deals in ticket order). Positions are
    /// revalued at the saved quotes.
    pub fn restore(s: AccountSnapshot) -> Result<PaperAccount, String> {
        if s.leverage == 0 {
            return Err("leverage 0".into());
        }
        let mut positions = BTreeMap::new();
        for p in s.positions {
            let t = p.ticket.0;
            if t >= s.next_ticket {
                return Err(format!("position {t} is not below the next ticket {}", s.next_ticket));
            }
            if p.lots <= Decimal::ZERO || p.open_price <= Decimal::ZERO {
                return Err(format!("position {t} has volume {} and open price {}", p.lots, p.open_price));
            }
            if p.comment.chars().count() > MT5_COMMENT_MAX_LEN {
                return Err(format!("position {t} has a comment over {MT5_COMMENT_MAX_LEN} characters"));
            }
            if positions.insert(t, p).is_some() {
                return Err(format!("position {t} is listed twice"));
            }
        }
        let mut last = HashMap::new();
        for q in s.quotes {
            if !q.is_valid() {
                return Err(format!("the {} quote {}/{} is invalid", q.symbol, q.bid, q.ask));
            }
            if last.insert(q.symbol.as_str(), q).is_some() {
                return Err(format!("two {} quotes", q.symbol));
            }
        }
        let mut previous = 0;
        for d in &s.deals {
            if d.ticket.0 <= previous || d.ticket.0 >= s.next_deal {
                return Err(format!("deal {} is out of order or not below the next deal {}", d.ticket.0, s.next_deal));
            }
            previous = d.ticket.0;
        }
        let mut account = PaperAccount {
            currency: s.currency,
            balance: s.balance,
            leverage: s.leverage,
            next_ticket: s.next_ticket,
            next_deal: s.next_deal,
            positions,
            last,
            deals: s.deals,
        };
        account.revalue_all();
        Ok(account)
    }

    fn quote(&self, symbol: Symbol) -> Result<Tick, Reject> {
        self.last_tick(symbol).ok_or_else(|| Reject::new(Retcode::PRICE_OFF, format!("No prices for {symbol}")))
    }

    fn record_deal(&mut self, mut deal: Deal) -> Ticket {
        deal.ticket = Ticket(self.next_deal);
        self.next_deal += 1;
        let ticket = deal.ticket;
        self.deals.push(deal);
        ticket
    }

    /// Closes `lots` of position `ticket` at `price`: balance, deal, position removed or reduced and revalued.
    fn fill_close(
        &mut self,
        ticket: u64,
        lots: Decimal,
        price: Decimal,
        time: DateTime<Utc>,
        reason: DealReason,
    ) -> Result<(Ticket, Decimal), Reject> {
        let position = self.positions.get(&ticket).ok_or_else(|| not_found(Ticket(ticket)))?;
        let inst = position.symbol.instrument();
        let conversion = self.quote_conversion(inst, price)?;
        let profit =
            closed_profit(inst, position.side, Lots::new_unchecked(lots), position.open_price, price, &conversion)
                .map_err(money_reject)?
                .amount;
        let deal = Deal {
            ticket: Ticket(0),
            position: position.ticket,
            symbol: position.symbol,
            side: position.side.opposite(),
            entry: DealEntry::Out,
            lots,
            price,
            profit,
            time,
            reason,
            comment: position.comment.clone(),
        };
        let remaining = position.lots - lots;
        self.balance += profit;
        let deal = self.record_deal(deal);
        if remaining > Decimal::ZERO {
            if let Some(p) = self.positions.get_mut(&ticket) {
                p.lots = remaining;
            }
            self.revalue(ticket);
        } else {
            self.positions.remove(&ticket);
        }
        Ok((deal, profit))
    }

    fn revalue_all(&mut self) {
        let tickets: Vec<u64> = self.positions.keys().copied().collect();
        for ticket in tickets {
            self.revalue(ticket);
        }
    }

    /// Updates a position's current price, floating profit and margin (kept as they were if a conversion fails).
    fn revalue(&mut self, ticket: u64) {
        let Some(valued) = self.positions.get(&ticket).and_then(|p| self.valuation(p).ok()) else { return };
        if let Some(p) = self.positions.get_mut(&ticket) {
            (p.current_price, p.profit, p.margin) = valued;
        }
    }

    /// `(current closing price, floating profit, margin)` of a position at the last tick of its symbol.
    fn valuation(&self, position: &PaperPosition) -> Result<(Decimal, Decimal, Decimal), Reject> {
        let inst = position.symbol.instrument();
        let tick = self.quote(position.symbol)?;
        let price = tick.close_price(position.side);
        let conversion = self.quote_conversion(inst, price)?;
        let lots = Lots::new_unchecked(position.lots);
        let profit = closed_profit(inst, position.side, lots, position.open_price, price, &conversion)
            .map_err(money_reject)?
            .amount;
        let margin = self.margin_for(inst, position.side, position.lots, &tick)?;
        Ok((price, profit, margin))
    }

    /// Margin of `lots` at the tick's opening-side price, in the account currency, rounded to cents.
    fn margin_for(&self, inst: &Instrument, side: Side, lots: Decimal, tick: &Tick) -> Result<Decimal, Reject> {
        let price = tick.open_price(side);
        let rate = match inst.margin_to_account(self.currency, Some(price), None) {
            Ok(_) => None,
            Err(MoneyError::RateRequired { from, to }) => Some(self.cross_conversion(from, to)?.as_decimal()),
            Err(e) => return Err(money_reject(e)),
        };
        let leverage = Decimal::from(self.leverage);
        margin_required(inst, Lots::new_unchecked(lots), price, leverage, self.currency, rate)
            .map(|m| round_money(m.amount))
            .map_err(|e| Reject::new(INVALID, format!("Cannot compute the margin: {e}")))
    }

    /// Quote currency → account currency at `price` of the instrument itself, else from other symbols' ticks.
    fn quote_conversion(&self, inst: &Instrument, price: Decimal) -> Result<Conversion, Reject> {
        match inst.quote_to_account(self.currency, Some(price), None) {
            Err(MoneyError::RateRequired { from, to }) => self.cross_conversion(from, to),
            other => other.map_err(money_reject),
        }
    }

    /// `from → to` from the mid of the last tick of a pair `fromto` or `tofrom`, else through USD.
    fn cross_conversion(&self, from: Currency, to: Currency) -> Result<Conversion, Reject> {
        if let Some(c) = self.pair_conversion(from, to) {
            return Ok(c);
        }
        if from != Currency::USD
            && to != Currency::USD
            && let (Some(a), Some(b)) =
                (self.pair_conversion(from, Currency::USD), self.pair_conversion(Currency::USD, to))
            && let Some(rate) = a.as_decimal().checked_mul(b.as_decimal())
            && let Ok(c) = Conversion::rate(from, to, rate)
        {
            return Ok(c);
        }
        Err(Reject::new(
            Retcode::PRICE_OFF,
            format!("No prices to convert {from} to {to}: needs a {from}{to} or {to}{from} quote (or both via USD)"),
        ))
    }

    fn pair_conversion(&self, from: Currency, to: Currency) -> Option<Conversion> {
        INSTRUMENTS.iter().filter(|i| i.base != i.quote).find_map(|i| {
            let tick = self.last.get(i.symbol)?;
            if i.base == from && i.quote == to {
                Conversion::rate(from, to, tick.mid()).ok()
            } else if i.base == to && i.quote == from {
                Conversion::inverse_rate(from, to, tick.mid()).ok()
            } else {
                None
            }
        })
    }
}

/// The stop a tick reaches, if any, and its fill: the worse for the trader of the level and the closing price.
fn stop_hit(position: &PaperPosition, tick: &Tick) -> Option<StopHit> {
    let price = tick.close_price(position.side);
    let (sl_hit, tp_hit) = match position.side {
        Side::Buy => {
            (position.stop_loss.is_some_and(|sl| price <= sl), position.take_profit.is_some_and(|tp| price >= tp))
        }
        Side::Sell => {
            (position.stop_loss.is_some_and(|sl| price >= sl), position.take_profit.is_some_and(|tp| price <= tp))
        }
    };
    let worse = |level: Decimal| match position.side {
        Side::Buy => price.min(level),
        Side::Sell => price.max(level),
    };
    match (sl_hit, tp_hit, position.stop_loss, position.take_profit) {
        (true, _, Some(sl), _) => Some((DealReason::StopLoss, worse(sl))),
        (_, true, _, Some(tp)) => Some((DealReason::TakeProfit, worse(tp))),
        _ => None,
    }
}

/// `0` (MT5's "no stop") → none; other values rounded to the instrument's digits.
fn normalise_stop(inst: &Instrument, value: Option<Decimal>) -> Option<Decimal> {
    value.filter(|v| !v.is_zero()).map(|v| inst.round_price(v))
}

fn not_found(ticket: Ticket) -> Reject {
    Reject::new(POSITION_NOT_FOUND, format!("Position {} not found", ticket.0))
}

fn money_reject(e: MoneyError) -> Reject {
    Reject::new(INVALID, format!("Cannot compute the profit: {e}"))
}

#[cfg(test)]
mod tests;
