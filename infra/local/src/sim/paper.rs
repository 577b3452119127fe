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
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::feed::Tick;

/// 10013 TRADE_RETCODE_INVALID: invalid request (here: unknown symbol).
pub const INVALID: Retcode = Retcode(10013);
/// 10014 TRADE_RETCODE_INVALID_VOLUME.
pub const INVALID_VOLUME: Retcode = Retcode(10014);
/// 10016 TRADE_RETCODE_INVALID_STOPS.
pub const INVALID_STOPS: Retcode = Retcode(10016);
/// 10018 TRADE_RETCODE_MARKET_CLOSED. Not produced by the engine (it has no sessions); for callers that model them.
pub const MARKET_CLOSED: Retcode = Retcode(10018);
/// 10025 TRADE_RETCODE_NO_CHANGES: a modify with the current SL and TP.
pub const NO_CHANGES: Retcode = Retcode(10025);
/// 10036 TRADE_RETCODE_POSITION_CLOSED, used for `"Position <t> not found"`: MT5 has no dedicated code, and an
/// unknown ticket is most often a position already closed (e.g. by its stop).
pub const POSITION_NOT_FOUND: Retcode = Retcode(10036);
/// 10038 TRADE_RETCODE_INVALID_CLOSE_VOLUME: closing more than the position, or leaving less than the minimum.
pub const INVALID_CLOSE_VOLUME: Retcode = Retcode(10038);

/// First position ticket of a new account.
pub const DEFAULT_FIRST_TICKET: u64 = 100_000_001;
/// First deal ticket of a new account.
pub const DEFAULT_FIRST_DEAL: u64 = 200_000_001;

/// A refused request: the MT5 return code and a message in the connector's style.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} (retcode {})", retcode.0)]
pub struct Reject {
    /// MT5 `retcode`.
    pub retcode: Retcode,
    /// Human-readable reason (`"Symbol X not found"`, `"Position 1 not found"`...).
    pub message: String,
}

impl Reject {
    fn new(retcode: Retcode, message: impl Into<String>) -> Reject {
        Reject { retcode, message: message.into() }
    }
}

/// A market order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    /// Symbol as sent by the caller (normalised with [`Symbol::parse`]: `eurusd.m` is EURUSD).
    pub symbol: String,
    /// BUY or SELL.
    pub side: Side,
    /// Volume in lots.
    pub lots: Decimal,
    /// Stop loss price; `None` or `0` for none.
    pub stop_loss: Option<Decimal>,
    /// Take profit price; `None` or `0` for none.
    pub take_profit: Option<Decimal>,
    /// Order comment (cut to 31 characters).
    pub comment: String,
    /// Request time: the position's open time.
    pub time: DateTime<Utc>,
}

/// An executed market order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFill {
    /// The new position's ticket.
    pub ticket: Ticket,
    /// The opening deal's ticket.
    pub deal: Ticket,
    /// Fill price.
    pub price: Decimal,
    /// Fill time (the request's).
    pub time: DateTime<Utc>,
}

/// An executed close (full or partial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFill {
    /// The position's ticket.
    pub ticket: Ticket,
    /// The closing deal's ticket.
    pub deal: Ticket,
    /// Volume closed.
    pub lots: Decimal,
    /// Fill price.
    pub price: Decimal,
    /// Realised profit in the account currency (added to the balance).
    pub profit: Decimal,
    /// Fill time (the request's).
    pub time: DateTime<Utc>,
}

/// Why a deal happened (MT5 `DEAL_REASON_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealReason {
    /// A request (open, close).
    Client,
    /// The stop loss was hit.
    StopLoss,
    /// The take profit was hit.
    TakeProfit,
}

/// Whether a deal opens or closes (MT5 `DEAL_ENTRY_IN` / `DEAL_ENTRY_OUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealEntry {
    /// Opens the position.
    In,
    /// Closes the position, fully or partly.
    Out,
}

/// One execution in the account history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// Deal ticket.
    pub ticket: Ticket,
    /// The position it belongs to.
    pub position: Ticket,
    /// Symbol.
    pub symbol: Symbol,
    /// Direction of the deal itself (a closing deal of a BUY position is a SELL).
    pub side: Side,
    /// Opening or closing.
    pub entry: DealEntry,
    /// Volume.
    pub lots: Decimal,
    /// Execution price.
    pub price: Decimal,
    /// Realised profit in the account currency (0 for opening deals).
    pub profit: Decimal,
    /// Execution time.
    pub time: DateTime<Utc>,
    /// Why.
    pub reason: DealReason,
    /// The position's comment.
    pub comment: String,
}

/// A position closed by its stop loss or take profit during [`PaperAccount::on_tick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedPosition {
    /// Position ticket.
    pub ticket: Ticket,
    /// Closing deal ticket.
    pub deal: Ticket,
    /// Symbol.
    pub symbol: Symbol,
    /// Side of the position.
    pub side: Side,
    /// Volume closed (all of it).
    pub lots: Decimal,
    /// Open price.
    pub open_price: Decimal,
    /// Close price (see the module docs for gaps).
    pub close_price: Decimal,
    /// Realised profit in the account currency.
    pub profit: Decimal,
    /// Tick time.
    pub time: DateTime<Utc>,
    /// [`DealReason::StopLoss`] or [`DealReason::TakeProfit`].
    pub reason: DealReason,
    /// The position's comment.
    pub comment: String,
}

/// An open position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperPosition {
    /// Position ticket.
    pub ticket: Ticket,
    /// Symbol.
    pub symbol: Symbol,
    /// BUY or SELL.
    pub side: Side,
    /// Current volume (less than opened after a partial close).
    pub lots: Decimal,
    /// Open price.
    pub open_price: Decimal,
    /// Open time.
    pub open_time: DateTime<Utc>,
    /// Stop loss, if any.
    pub stop_loss: Option<Decimal>,
    /// Take profit, if any.
    pub take_profit: Option<Decimal>,
    /// Current closing price (bid for BUY, ask for SELL).
    pub current_price: Decimal,
    /// Floating profit in the account currency, at `current_price`, rounded to cents.
    pub profit: Decimal,
    /// Margin held, in the account currency.
    pub margin: Decimal,
    /// Comment (at most 31 characters).
    pub comment: String,
}

/// The account summary (MT5 `AccountInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    /// Account currency.
    pub currency: Currency,
    /// Realised balance.
    pub balance: Decimal,
    /// `balance + profit`.
    pub equity: Decimal,
    /// Margin held by open positions.
    pub margin: Decimal,
    /// `equity − margin`.
    pub free_margin: Decimal,
    /// Floating profit of open positions.
    pub profit: Decimal,
    /// Leverage (1:`leverage`).
    pub leverage: u32,
    /// `equity / margin × 100`, rounded to 2 dp; `None` without margin.
    pub margin_level: Option<Decimal>,
}

/// Everything a [`PaperAccount`] is ([`PaperAccount::snapshot`], [`PaperAccount::restore`]): the simulated
/// connector's state file keeps it across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    /// Account currency.
    pub currency: Currency,
    /// Realised balance.
    pub balance: Decimal,
    /// Leverage (1:`leverage`).
    pub leverage: u32,
    /// The next position ticket.
    pub next_ticket: u64,
    /// The next deal ticket.
    pub next_deal: u64,
    /// Open positions, by ticket.
    pub positions: Vec<PaperPosition>,
    /// The last tick of each symbol, by symbol.
    pub quotes: Vec<Tick>,
    /// The most recent deals, oldest first (the snapshot may keep fewer than the whole history).
    pub deals: Vec<Deal>,
}

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
mod tests {
    use chrono::TimeDelta;
    use proptest::prelude::*;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("test decimal")
    }

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("catalogue symbol")
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-02T10:00:00Z").expect("time").to_utc() + TimeDelta::minutes(minutes)
    }

    fn tick(symbol: &str, bid: &str, ask: &str) -> Tick {
        Tick { symbol: sym(symbol), bid: d(bid), ask: d(ask), time: at(0) }
    }

    fn tick_at(symbol: &str, bid: &str, ask: &str, minutes: i64) -> Tick {
        Tick { time: at(minutes), ..tick(symbol, bid, ask) }
    }

    fn usd(balance: &str) -> PaperAccount {
        PaperAccount::new(Currency::USD, d(balance), 100)
    }

    fn order(symbol: &str, side: Side, lots: &str) -> OpenRequest {
        OpenRequest {
            symbol: symbol.to_string(),
            side,
            lots: d(lots),
            stop_loss: None,
            take_profit: None,
            comment: String::new(),
            time: at(0),
        }
    }

    fn with_stops(mut req: OpenRequest, sl: Option<&str>, tp: Option<&str>) -> OpenRequest {
        req.stop_loss = sl.map(d);
        req.take_profit = tp.map(d);
        req
    }

    #[test]
    fn fills_at_ask_for_buy_and_bid_for_sell() {
        let mut acct = usd("10000");
        acct.on_tick(tick("EURUSD", "1.08500", "1.08515"));
        let buy = acct.open(order("EURUSD", Side::Buy, "1")).expect("buy");
        let sell = acct.open(order("eurusd.m", Side::Sell, "1")).expect("sell, broker suffix normalised");
        assert_eq!((buy.price, sell.price), (d("1.08515"), d("1.08500")));
        assert_eq!((buy.ticket, sell.ticket), (Ticket(100_000_001), Ticket(100_000_002)), "increasing tickets");
        assert_eq!((buy.deal, sell.deal), (Ticket(200_000_001), Ticket(200_000_002)));
        assert_eq!(buy.time, at(0));
        let positions = acct.positions();
        // Each position is valued at its closing price: the spread is an immediate loss of 15 USD per lot.
        assert_eq!(positions[0].current_price, d("1.08500"));
        assert_eq!(positions[1].current_price, d("1.08515"));
        assert_eq!(positions.iter().map(|p| p.profit).collect::<Vec<_>>(), [d("-15.00"), d("-15.00")]);
        assert_eq!(acct.account().equity, d("9970.00"));
    }

    #[test]
    fn realised_profit_per_instrument() {
        // (symbol, side, lots, open tick [bid, ask], close tick [bid, ask], profit in USD). BUY opens at the ask and
        // closes at the bid; SELL the reverse.
        type Case<'a> = (&'a str, Side, &'a str, [&'a str; 2], [&'a str; 2], &'a str);
        let cases: &[Case] = &[
            // 50 pips × 10 USD per pip per lot.
            ("EURUSD", Side::Buy, "1", ["1.08485", "1.08500"], ["1.09000", "1.09015"], "500.00"),
            ("EURUSD", Side::Sell, "1", ["1.09000", "1.09015"], ["1.08485", "1.08500"], "500.00"),
            ("EURUSD", Side::Buy, "0.1", ["1.08485", "1.08500"], ["1.08300", "1.08315"], "-20.00"),
            // 0.5 × 100 000 = 50 000 JPY ÷ 150.500 (the close price; account = base) = 332.2259… USD.
            ("USDJPY", Side::Buy, "1", ["149.985", "150.000"], ["150.500", "150.515"], "332.23"),
            // −0.3 × 100 000 = −30 000 JPY; a SELL closes at the ask 150.300 → −199.60 USD.
            ("USDJPY", Side::Sell, "1", ["150.000", "150.015"], ["150.285", "150.300"], "-199.60"),
            // 10 USD × 100 oz.
            ("XAUUSD", Side::Buy, "1", ["2049.70", "2050.00"], ["2060.00", "2060.30"], "1000.00"),
            ("XAUUSD", Side::Sell, "0.5", ["2050.00", "2050.30"], ["2039.70", "2040.00"], "500.00"),
            // 1 000 USD × 0.1 BTC.
            ("BTCUSD", Side::Buy, "0.1", ["41970", "42000"], ["43000", "43030"], "100.00"),
        ];
        for (symbol, side, lots, open, close, profit) in cases {
            let label = format!("{symbol} {} {lots}", side.as_str());
            let (fill, exit) = match side {
                Side::Buy => (open[1], close[0]),
                Side::Sell => (open[0], close[1]),
            };
            let mut acct = usd("100000");
            acct.on_tick(tick(symbol, open[0], open[1]));
            let opened = acct.open(order(symbol, *side, lots)).expect(&label);
            assert_eq!(opened.price, d(fill), "{label}: fill");
            acct.on_tick(tick_at(symbol, close[0], close[1], 5));
            assert_eq!(acct.account().profit, d(profit), "{label}: floating before close");
            let closed = acct.close(opened.ticket, None, at(5)).expect(&label);
            assert_eq!((closed.price, closed.profit, closed.lots), (d(exit), d(profit), d(lots)), "{label}");
            assert_eq!(acct.account().balance, d("100000") + d(profit), "{label}: balance");
            assert!(acct.positions().is_empty(), "{label}");
            let account = acct.account();
            assert_eq!((account.margin, account.equity), (Decimal::ZERO, account.balance), "{label}");
        }
    }

    #[test]
    fn partial_close_keeps_the_rest_open() {
        let mut acct = usd("10000");
        acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
        let opened = acct.open(with_stops(order("EURUSD", Side::Buy, "1"), Some("1.08000"), None)).expect("open");
        assert_eq!(acct.account().margin, d("1085.00"), "100 000 EUR / 100 × 1.08500");
        acct.on_tick(tick_at("EURUSD", "1.09000", "1.09015", 1));
        let part = acct.close(opened.ticket, Some(d("0.3")), at(1)).expect("partial");
        assert_eq!((part.lots, part.profit), (d("0.3"), d("150.00")));
        let rest = acct.position(opened.ticket).expect("still open");
        assert_eq!(rest.lots, d("0.7"));
        assert_eq!(rest.stop_loss, Some(d("1.08000")), "stops kept");
        assert_eq!(rest.profit, d("350.00"));
        let account = acct.account();
        assert_eq!(account.balance, d("10150.00"));
        assert_eq!(
            account.margin,
            d("763.11"),
            "70 000 EUR / 100 × 1.09015 (current ask) = 763.105, half away from zero"
        );
    }

    #[test]
    fn close_volume_checks() {
        let mut acct = usd("10000");
        acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
        let t = acct.open(order("EURUSD", Side::Buy, "0.5")).expect("open").ticket;
        let cases: &[(&str, &str, Retcode)] = &[
            ("more than the position", "0.6", INVALID_CLOSE_VOLUME),
            ("off step", "0.005", INVALID_VOLUME),
            ("zero", "0", INVALID_VOLUME),
        ];
        for (label, lots, code) in cases {
            assert_eq!(acct.close(t, Some(d(lots)), at(1)).map_err(|r| r.retcode), Err(*code), "{label}");
        }
        let us30 = {
            acct.on_tick(tick("US30", "37500.00", "37502.00"));
            acct.open(order("US30", Side::Buy, "0.3")).expect("index").ticket
        };
        assert_eq!(acct.close(us30, Some(d("0.3")), at(1)).map(|f| f.lots), Ok(d("0.3")), "whole volume given");
        assert_eq!(
            acct.close(Ticket(42), None, at(1)),
            Err(Reject { retcode: POSITION_NOT_FOUND, message: "Position 42 not found".into() })
        );
        assert_eq!(acct.close(us30, None, at(2)).map_err(|r| r.message), Err(format!("Position {} not found", us30.0)));
        assert_eq!(acct.position(t).map(|p| p.lots), Some(d("0.5")), "rejections changed nothing");
    }

    #[test]
    fn stop_loss_and_take_profit_hits() {
        use DealReason::{StopLoss as Sl, TakeProfit as Tp};
        // Opened on bid 1.10000 / ask 1.10010. BUY: SL 1.09800, TP 1.10300, closes at the bid.
        // SELL: SL 1.10200, TP 1.09700, closes at the ask. (label, side, bid, ask, expected hit, fill)
        type Case<'a> = (&'a str, Side, &'a str, &'a str, Option<DealReason>, &'a str);
        let cases: &[Case] = &[
            ("buy: bid above SL", Side::Buy, "1.09801", "1.09816", None, ""),
            ("buy: bid at SL", Side::Buy, "1.09800", "1.09815", Some(Sl), "1.09800"),
            ("buy: ask at SL, bid below", Side::Buy, "1.09790", "1.09800", Some(Sl), "1.09790"),
            ("buy: SL gap fills at the bid", Side::Buy, "1.09500", "1.09515", Some(Sl), "1.09500"),
            ("buy: ask at TP is not enough", Side::Buy, "1.10290", "1.10300", None, ""),
            ("buy: bid at TP", Side::Buy, "1.10300", "1.10315", Some(Tp), "1.10300"),
            ("buy: TP gap fills at TP", Side::Buy, "1.10800", "1.10815", Some(Tp), "1.10300"),
            ("sell: bid at SL is not enough", Side::Sell, "1.10200", "1.10199", None, ""),
            ("sell: ask at SL", Side::Sell, "1.10185", "1.10200", Some(Sl), "1.10200"),
            ("sell: SL gap fills at the ask", Side::Sell, "1.10585", "1.10600", Some(Sl), "1.10600"),
            ("sell: bid at TP is not enough", Side::Sell, "1.09700", "1.09715", None, ""),
            ("sell: ask at TP", Side::Sell, "1.09685", "1.09700", Some(Tp), "1.09700"),
            ("sell: TP gap fills at TP", Side::Sell, "1.09285", "1.09300", Some(Tp), "1.09700"),
        ];
        for (label, side, bid, ask, reason, fill) in cases {
            let (sl, tp) = match side {
                Side::Buy => ("1.09800", "1.10300"),
                Side::Sell => ("1.10200", "1.09700"),
            };
            let mut acct = usd("10000");
            acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
            let mut req = with_stops(order("EURUSD", *side, "1"), Some(sl), Some(tp));
            req.comment = "NT-abc".into();
            let opened = acct.open(req).expect(label);
            let closed = acct.on_tick(tick_at("EURUSD", bid, ask, 3));
            let Some(reason) = reason else {
                assert!(closed.is_empty(), "{label}: {closed:?}");
                assert_eq!(acct.positions().len(), 1, "{label}");
                continue;
            };
            assert_eq!(closed.len(), 1, "{label}");
            let c = &closed[0];
            assert_eq!((c.ticket, c.reason, c.close_price), (opened.ticket, *reason, d(fill)), "{label}");
            let want = (d(fill) - opened.price) * side.sign() * d("100000");
            assert_eq!(c.profit, want, "{label}: profit");
            assert_eq!((c.time, c.comment.as_str(), c.lots), (at(3), "NT-abc", d("1")), "{label}");
            assert!(acct.positions().is_empty(), "{label}");
            assert_eq!(acct.account().balance, d("10000") + want, "{label}: balance");
            let deal = acct.history().last().expect("closing deal");
            assert_eq!(
                (deal.entry, deal.reason, deal.position, deal.side, deal.price),
                (DealEntry::Out, *reason, opened.ticket, side.opposite(), d(fill)),
                "{label}: deal"
            );
        }
    }

    #[test]
    fn stops_only_react_to_their_symbol_and_close_in_ticket_order() {
        let mut acct = usd("100000");
        acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
        acct.on_tick(tick("GBPUSD", "1.10000", "1.10010"));
        let a = acct.open(with_stops(order("EURUSD", Side::Buy, "1"), Some("1.09900"), None)).expect("a").ticket;
        let g = acct.open(with_stops(order("GBPUSD", Side::Buy, "1"), Some("1.09900"), None)).expect("g").ticket;
        let b = acct.open(with_stops(order("EURUSD", Side::Buy, "1"), Some("1.09950"), None)).expect("b").ticket;
        let closed = acct.on_tick(tick_at("EURUSD", "1.09000", "1.09010", 1));
        assert_eq!(closed.iter().map(|c| c.ticket).collect::<Vec<_>>(), [a, b]);
        assert_eq!(acct.positions().iter().map(|p| p.ticket).collect::<Vec<_>>(), [g]);
        assert!(acct.on_tick(tick_at("EURUSD", "1.00000", "1.00010", 2)).is_empty(), "nothing left to close");
    }

    #[test]
    fn no_money() {
        let mut acct = usd("1000");
        acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
        acct.on_tick(tick("XAUUSD", "2049.70", "2050.00"));
        let err = acct.open(order("EURUSD", Side::Buy, "1")).expect_err("needs 1085 USD");
        assert_eq!(err.retcode, Retcode::NO_MONEY);
        assert_eq!(err.message, "No money: margin 1085.00 USD required, free margin 1000 USD");
        // 0.9 lot needs 976.50: accepted; then the spread loss (13.50) leaves 10.00 free.
        acct.open(order("EURUSD", Side::Buy, "0.9")).expect("fits");
        let state = acct.account();
        assert_eq!((state.margin, state.equity, state.free_margin), (d("976.50"), d("986.50"), d("10.00")));
        // 0.01 lot of gold needs 100 × 0.01 × 2050 / 100 = 20.50 USD > 10.00.
        assert_eq!(acct.open(order("XAUUSD", Side::Buy, "0.01")).map_err(|r| r.retcode), Err(Retcode::NO_MONEY));
        assert_eq!(acct.positions().len(), 1, "nothing opened");
        // A bigger leverage needs less margin.
        let mut lev = PaperAccount::new(Currency::USD, d("1000"), 500);
        lev.on_tick(tick("EURUSD", "1.08485", "1.08500"));
        assert_eq!(lev.open(order("EURUSD", Side::Buy, "1")).map(|_| lev.account().margin), Ok(d("217.00")));
    }

    #[test]
    fn invalid_volume() {
        let mut acct = usd("1000000");
        acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
        acct.on_tick(tick("US30", "37500.00", "37502.00"));
        let cases: &[(&str, &str, &str, &str)] = &[
            ("below min", "EURUSD", "0.001", "Invalid volume 0.001: Lot size must be at least 0.01"),
            ("above max", "EURUSD", "10.01", "Invalid volume 10.01: Lot size cannot exceed 10.0"),
            ("off step", "EURUSD", "0.015", "Invalid volume 0.015: Lot size must be in 0.01 increments"),
            ("zero", "EURUSD", "0", "Invalid volume 0: Lot size must be positive"),
            ("negative", "EURUSD", "-1", "Invalid volume -1: Lot size must be positive"),
            ("index step is 0.1", "US30", "0.15", "Invalid volume 0.15: Lot size must be in 0.1 increments"),
        ];
        for (label, symbol, lots, message) in cases {
            let err = acct.open(order(symbol, Side::Buy, lots)).expect_err(label);
            assert_eq!((err.retcode, err.message.as_str()), (INVALID_VOLUME, *message), "{label}");
        }
        assert!(acct.positions().is_empty());
        assert!(acct.history().is_empty());
    }

    #[test]
    fn unknown_symbol_and_missing_prices() {
        let mut acct = usd("10000");
        let err = acct.open(order("FOOBAR", Side::Buy, "1")).expect_err("unknown");
        assert_eq!((err.retcode, err.message.as_str()), (INVALID, "Symbol FOOBAR not found"));
        let err = acct.open(order("GBPUSD", Side::Buy, "1")).expect_err("no tick");
        assert_eq!((err.retcode, err.message.as_str()), (Retcode::PRICE_OFF, "No prices for GBPUSD"));
        // Invalid ticks are ignored.
        assert!(acct.on_tick(tick("GBPUSD", "0", "1.2")).is_empty());
        assert!(acct.on_tick(tick("GBPUSD", "1.3", "1.2")).is_empty());
        assert_eq!(acct.last_tick(sym("GBPUSD")), None);
        assert_eq!(err.to_string(), "No prices for GBPUSD (retcode 10021)");
    }

    #[test]
    fn wrong_side_stops_on_open() {
        use nusatrade_domain::order::StopsError as E;
        let mut acct = usd("100000");
        acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
        // (label, side, SL, TP, expected error or None for accepted)
        type Case<'a> = (&'a str, Side, Option<&'a str>, Option<&'a str>, Option<E>);
        let cases: &[Case] = &[
            ("buy ok", Side::Buy, Some("1.09900"), Some("1.10100"), None),
            ("buy SL above bid", Side::Buy, Some("1.10005"), None, Some(E::StopLossWrongSide(Side::Buy))),
            ("buy SL above ask", Side::Buy, Some("1.10100"), None, Some(E::StopLossWrongSide(Side::Buy))),
            ("buy TP below ask", Side::Buy, None, Some("1.10005"), Some(E::TakeProfitWrongSide(Side::Buy))),
            ("buy TP below bid", Side::Buy, None, Some("1.09000"), Some(E::TakeProfitWrongSide(Side::Buy))),
            ("sell ok", Side::Sell, Some("1.10100"), Some("1.09900"), None),
            ("sell SL below ask", Side::Sell, Some("1.10005"), None, Some(E::StopLossWrongSide(Side::Sell))),
            ("sell TP above bid", Side::Sell, None, Some("1.10005"), Some(E::TakeProfitWrongSide(Side::Sell))),
            ("negative SL", Side::Buy, Some("-1"), None, Some(E::StopLossNotPositive)),
            ("zero means none", Side::Buy, Some("0"), Some("0"), None),
        ];
        for (label, side, sl, tp, want) in cases {
            let got = acct.open(with_stops(order("EURUSD", *side, "0.01"), *sl, *tp));
            match want {
                None => {
                    let p = acct.position(got.expect(label).ticket).expect(label);
                    if sl == &Some("0") {
                        assert_eq!((p.stop_loss, p.take_profit), (None, None), "{label}");
                    }
                }
                Some(e) => {
                    let err = got.expect_err(label);
                    assert_eq!(err.retcode, INVALID_STOPS, "{label}");
                    assert_eq!(err.message, format!("Invalid stops: {e}"), "{label}");
                }
            }
        }
        assert_eq!(
            format!("{}", E::StopLossWrongSide(Side::Buy)),
            "Stop loss for BUY order must be below entry price",
            "the original's wording"
        );
        let p = acct.open(with_stops(order("EURUSD", Side::Buy, "0.01"), Some("1.0990049"), None)).expect("rounded");
        assert_eq!(acct.position(p.ticket).and_then(|p| p.stop_loss), Some(d("1.09900")), "rounded to 5 digits");
    }

    #[test]
    fn modify_keeps_removes_and_checks_stops() {
        let mut acct = usd("100000");
        acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
        let t =
            acct.open(with_stops(order("EURUSD", Side::Buy, "1"), Some("1.09800"), Some("1.10500"))).expect("o").ticket;
        let p = acct.modify(t, Some(d("1.09900")), None).expect("SL only");
        assert_eq!((p.stop_loss, p.take_profit), (Some(d("1.09900")), Some(d("1.10500"))), "None keeps the TP");
        let p = acct.modify(t, None, Some(d("0"))).expect("remove TP");
        assert_eq!((p.stop_loss, p.take_profit), (Some(d("1.09900")), None));
        let err = acct.modify(t, None, None).expect_err("nothing to change");
        assert_eq!(err.retcode, NO_CHANGES);
        assert_eq!(acct.modify(t, Some(d("1.09900")), None).map_err(|r| r.retcode), Err(NO_CHANGES));
        let err = acct.modify(t, Some(d("1.10000")), None).expect_err("SL at the bid");
        assert_eq!(
            (err.retcode, err.message.as_str()),
            (INVALID_STOPS, "Invalid stops: Stop loss for BUY order must be below entry price")
        );
        assert_eq!(acct.modify(t, None, Some(d("1.09990"))).map_err(|r| r.retcode), Err(INVALID_STOPS));
        // Price moves up: a trailing SL above the open price is fine (checked against the current bid).
        acct.on_tick(tick_at("EURUSD", "1.10600", "1.10610", 1));
        let p = acct.modify(t, Some(d("1.10300")), None).expect("trail");
        assert_eq!(p.stop_loss, Some(d("1.10300")));
        let closed = acct.on_tick(tick_at("EURUSD", "1.10250", "1.10260", 2));
        assert_eq!(closed[0].reason, DealReason::StopLoss);
        assert_eq!(closed[0].profit, d("240.00"), "locked-in profit: (1.10250 − 1.10010) × 100 000");
        assert_eq!(acct.modify(t, Some(d("1")), None).map_err(|r| r.retcode), Err(POSITION_NOT_FOUND));
        // SELL: stops checked against the ask.
        let s = acct.open(order("EURUSD", Side::Sell, "1")).expect("sell").ticket;
        assert_eq!(acct.modify(s, Some(d("1.10255")), None).map_err(|r| r.retcode), Err(INVALID_STOPS));
        assert!(acct.modify(s, Some(d("1.10270")), Some(d("1.10000"))).is_ok());
    }

    #[test]
    fn margin_equity_and_free_margin() {
        let mut acct = usd("10000");
        acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
        acct.on_tick(tick("USDJPY", "149.985", "150.000"));
        acct.on_tick(tick("XAUUSD", "2049.70", "2050.00"));
        acct.open(order("EURUSD", Side::Buy, "1")).expect("eur");
        acct.open(order("USDJPY", Side::Sell, "0.5")).expect("jpy");
        acct.open(order("XAUUSD", Side::Buy, "0.1")).expect("xau");
        let margins: Vec<Decimal> = acct.positions().iter().map(|p| p.margin).collect();
        // EURUSD: 100 000 EUR / 100 × 1.085 USD; USDJPY: 50 000 USD / 100; XAUUSD: 10 oz × 2050 / 100.
        assert_eq!(margins, [d("1085.00"), d("500.00"), d("205.00")]);
        // Spread losses: EURUSD 15.00; USDJPY 0.5 × 100 000 × 0.015 JPY / 150 = 5.00; XAUUSD 10 × 0.30 = 3.00.
        let profits: Vec<Decimal> = acct.positions().iter().map(|p| p.profit).collect();
        assert_eq!(profits, [d("-15.00"), d("-5.00"), d("-3.00")]);
        let s = acct.account();
        assert_eq!(
            (s.balance, s.profit, s.equity, s.margin, s.free_margin, s.leverage),
            (d("10000"), d("-23.00"), d("9977.00"), d("1790.00"), d("8187.00"), 100)
        );
        assert_eq!(s.margin_level, Some(d("557.37")));
        // Prices move: EURUSD +100 pips.
        acct.on_tick(tick_at("EURUSD", "1.09500", "1.09515", 1));
        let s = acct.account();
        assert_eq!(s.profit, d("992.00"), "EURUSD (1.09500 − 1.08500) × 100 000 = 1000, − 5 − 3");
        assert_eq!(s.margin, d("1800.15"), "EURUSD margin revalued at the new ask: 1095.15 + 500 + 205");
        assert_eq!(s.equity - s.margin, s.free_margin);
        assert_eq!(PaperAccount::new(Currency::USD, d("5"), 0).account().leverage, 1, "leverage 0 taken as 1");
        assert_eq!(PaperAccount::new(Currency::USD, d("5"), 0).account().margin_level, None);
    }

    #[test]
    fn conversions_from_other_symbols() {
        // EURGBP in a USD account: profit in GBP needs GBPUSD, margin in EUR needs EURUSD.
        let mut acct = usd("10000");
        acct.on_tick(tick("EURGBP", "0.85800", "0.85825"));
        let err = acct.open(order("EURGBP", Side::Buy, "1")).expect_err("no GBP rate");
        assert_eq!(err.retcode, Retcode::PRICE_OFF);
        assert!(err.message.starts_with("No prices to convert GBP to USD"), "{}", err.message);
        acct.on_tick(tick("EURUSD", "1.07250", "1.07250"));
        let err = acct.open(order("EURGBP", Side::Buy, "1")).expect_err("the profit still needs GBPUSD");
        assert!(err.message.starts_with("No prices to convert GBP to USD"), "{}", err.message);
        let mut margin_only = usd("10000");
        margin_only.on_tick(tick("EURGBP", "0.85800", "0.85825"));
        margin_only.on_tick(tick("GBPUSD", "1.25000", "1.25000"));
        let err = margin_only.open(order("EURGBP", Side::Buy, "1")).expect_err("the margin needs EURUSD");
        assert!(err.message.starts_with("No prices to convert EUR to USD"), "{}", err.message);
        assert!(acct.positions().is_empty() && acct.history().is_empty() && margin_only.positions().is_empty());
        acct.on_tick(tick("GBPUSD", "1.25000", "1.25000"));
        let t = acct.open(order("EURGBP", Side::Buy, "1")).expect("rates known").ticket;
        assert_eq!(t, Ticket(DEFAULT_FIRST_TICKET), "rejected orders consume no ticket");
        assert_eq!(acct.account().margin, d("1072.50"), "1 000 EUR × 1.0725");
        acct.on_tick(tick_at("EURGBP", "0.86825", "0.86850", 1));
        let fill = acct.close(t, None, at(1)).expect("close");
        assert_eq!(fill.profit, d("1250.00"), "100 pips = 1 000 GBP × 1.25");

        // A CHF account trading NZDUSD: USD→CHF from USDCHF (inverse of nothing: direct), margin NZD→CHF via USD.
        let mut chf = PaperAccount::new(Currency::CHF, d("10000"), 100);
        chf.on_tick(tick("NZDUSD", "0.61500", "0.61500"));
        chf.on_tick(tick("USDCHF", "0.90000", "0.90000"));
        let t = chf.open(order("NZDUSD", Side::Buy, "1")).expect("via USD").ticket;
        assert_eq!(chf.account().margin, d("553.50"), "1 000 NZD × 0.615 × 0.9");
        chf.on_tick(tick_at("NZDUSD", "0.62500", "0.62500", 1));
        assert_eq!(chf.close(t, None, at(1)).map(|f| f.profit), Ok(d("900.00")), "1 000 USD × 0.9");

        // An EUR account on EURUSD: USD→EUR derived from the close price itself.
        let mut eur = PaperAccount::new(Currency::EUR, d("10000"), 30);
        eur.on_tick(tick("EURUSD", "1.10000", "1.10000"));
        let t = eur.open(order("EURUSD", Side::Sell, "1")).expect("eur").ticket;
        assert_eq!(eur.account().margin, d("3333.33"), "100 000 EUR / 30");
        eur.on_tick(tick_at("EURUSD", "1.05000", "1.05000", 1));
        assert_eq!(eur.close(t, None, at(1)).map(|f| f.profit), Ok(d("4761.90")), "5 000 USD / 1.05");
    }

    #[test]
    fn comments_history_and_tickets() {
        let mut acct = usd("100000").with_first_ticket(7).with_first_deal(70);
        acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
        let long = "NT-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut req = order("EURUSD", Side::Buy, "0.1");
        req.comment = long.into();
        let a = acct.open(req).expect("a");
        let mut req = order("EURUSD", Side::Sell, "0.2");
        req.comment = "other".into();
        let b = acct.open(req).expect("b");
        assert_eq!((a.ticket, b.ticket, a.deal, b.deal), (Ticket(7), Ticket(8), Ticket(70), Ticket(71)));
        let p = acct.position(a.ticket).expect("a");
        assert_eq!(p.comment.chars().count(), MT5_COMMENT_MAX_LEN);
        assert_eq!(p.comment, &long[..31]);
        assert_eq!(acct.find_by_comment(long).iter().map(|p| p.ticket).collect::<Vec<_>>(), [a.ticket], "cut alike");
        assert_eq!(acct.find_by_comment(&long[..31]).len(), 1);
        assert!(acct.find_by_comment("NT-").is_empty(), "exact match only");
        acct.close(b.ticket, Some(d("0.1")), at(4)).expect("partial");
        acct.close(b.ticket, None, at(5)).expect("rest");
        let summary: Vec<(u64, u64, DealEntry, Side, Decimal, DealReason)> =
            acct.history().iter().map(|x| (x.ticket.0, x.position.0, x.entry, x.side, x.lots, x.reason)).collect();
        assert_eq!(
            summary,
            [
                (70, 7, DealEntry::In, Side::Buy, d("0.1"), DealReason::Client),
                (71, 8, DealEntry::In, Side::Sell, d("0.2"), DealReason::Client),
                (72, 8, DealEntry::Out, Side::Buy, d("0.1"), DealReason::Client),
                (73, 8, DealEntry::Out, Side::Buy, d("0.1"), DealReason::Client),
            ]
        );
        assert_eq!(acct.history()[3].time, at(5));
        assert_eq!(acct.history()[2].comment, "other");
        let realised: Decimal = acct.history().iter().map(|x| x.profit).sum();
        assert_eq!(acct.account().balance, d("100000") + realised, "balance = deposit + realised deals");
    }

    #[test]
    fn replay_drives_the_account() {
        use crate::sim::feed::CandleReplay;
        let csv = ",Open,High,Low,Close,Volume\n\
            2017-04-19 09:00:00,1.07000,1.07100,1.06950,1.07050,1\n\
            2017-04-19 10:00:00,1.07050,1.07400,1.07000,1.07300,1\n";
        let mut feed = CandleReplay::from_reader(sym("EURUSD"), csv.as_bytes()).expect("csv");
        let mut acct = usd("10000");
        let first = feed.next().expect("open tick");
        acct.on_tick(first);
        let mut req = with_stops(order("EURUSD", Side::Buy, "1"), Some("1.06900"), Some("1.07250"));
        req.time = first.time;
        let t = acct.open(req).expect("open").ticket;
        let closed: Vec<ClosedPosition> = feed.flat_map(|tick| acct.on_tick(tick)).collect();
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].ticket, closed[0].reason), (t, DealReason::TakeProfit), "TP reached inside bar 2");
        assert_eq!(closed[0].profit, d("235.00"), "(1.07250 − 1.07015) × 100 000");
        assert_eq!(closed[0].time.format("%H:%M").to_string(), "10:30", "the high tick of the rising bar");
    }

    #[test]
    fn a_snapshot_restores_the_same_account() {
        let mut acct = usd("10000");
        acct.on_tick(tick("EURUSD", "1.10000", "1.10015"));
        acct.on_tick(tick("USDJPY", "150.000", "150.015"));
        let mut req = with_stops(order("EURUSD", Side::Buy, "1"), Some("1.09000"), Some("1.12000"));
        req.comment = "NT-a".into();
        let a = acct.open(req).expect("a");
        let b = acct.open(order("USDJPY", Side::Sell, "0.5")).expect("b");
        acct.close(b.ticket, Some(d("0.2")), at(1)).expect("partial");
        let snap = acct.snapshot(100);
        let json = serde_json::to_string(&snap).expect("serialise");
        let back: AccountSnapshot = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, snap, "JSON round trip");
        let mut restored = PaperAccount::restore(back).expect("consistent");
        assert_eq!(restored.positions(), acct.positions());
        assert_eq!(restored.account(), acct.account());
        assert_eq!(restored.history(), acct.history());
        assert_eq!(
            restored.last_tick(sym("EURUSD")),
            acct.last_tick(sym("EURUSD")),
            "quotes kept: closes work at once"
        );
        // The counters go on where they were; the stops still work.
        let c = restored.open(order("EURUSD", Side::Sell, "0.1")).expect("c");
        assert_eq!((c.ticket.0, c.deal.0), (b.ticket.0 + 1, DEFAULT_FIRST_DEAL + 3));
        let hit = restored.on_tick(tick_at("EURUSD", "1.12000", "1.12015", 2));
        assert_eq!((hit.len(), hit[0].ticket, hit[0].reason), (1, a.ticket, DealReason::TakeProfit));

        // Only the most recent deals are kept when asked.
        let short = acct.snapshot(1);
        assert_eq!(short.deals, acct.history()[2..].to_vec());
        assert_eq!(PaperAccount::restore(short).map(|r| r.history().len()), Ok(1));
    }

    #[test]
    fn an_inconsistent_snapshot_is_refused() {
        let mut acct = usd("10000");
        acct.on_tick(tick("EURUSD", "1.10000", "1.10015"));
        acct.open(order("EURUSD", Side::Buy, "1")).expect("open");
        let good = acct.snapshot(10);
        type Damage = fn(&mut AccountSnapshot);
        let broken: Vec<(&str, Damage)> = vec![
            ("ticket counter behind", |s| s.next_ticket = DEFAULT_FIRST_TICKET),
            ("deal counter behind", |s| s.next_deal = DEFAULT_FIRST_DEAL),
            ("position twice", |s| s.positions.push(s.positions[0].clone())),
            ("zero volume", |s| s.positions[0].lots = Decimal::ZERO),
            ("leverage 0", |s| s.leverage = 0),
            ("crossed quote", |s| s.quotes[0].ask = d("1.0")),
            ("long comment", |s| s.positions[0].comment = "x".repeat(40)),
        ];
        for (what, damage) in broken {
            let mut s = good.clone();
            damage(&mut s);
            assert!(PaperAccount::restore(s).is_err(), "{what}");
        }
        assert!(PaperAccount::restore(good).is_ok());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Tick(usize, i64),
        Open(usize, bool, u32),
        Close(usize, Option<u32>),
        Modify(usize, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..3usize, -300..300i64).prop_map(|(s, m)| Op::Tick(s, m)),
            2 => (0..3usize, any::<bool>(), 1..120u32).prop_map(|(s, b, l)| Op::Open(s, b, l)),
            1 => (0..8usize, proptest::option::of(1..120u32)).prop_map(|(i, l)| Op::Close(i, l)),
            1 => (0..8usize, -200..200i64).prop_map(|(i, m)| Op::Modify(i, m)),
        ]
    }

    proptest! {
        #[test]
        fn equity_is_balance_plus_floating_and_closing_all_frees_margin(ops in proptest::collection::vec(op(), 1..60)) {
            const SYMBOLS: [(&str, &str, &str); 3] =
                [("EURUSD", "1.08500", "0.00001"), ("USDJPY", "150.000", "0.001"), ("XAUUSD", "2050.00", "0.01")];
            let mut acct = usd("50000");
            let mut bids: Vec<Decimal> = SYMBOLS.iter().map(|(_, p, _)| d(p)).collect();
            let mut minute = 0;
            let send = |acct: &mut PaperAccount, i: usize, bid: Decimal, minute: i64| {
                let (s, _, point) = SYMBOLS[i];
                let ask = bid + d(point) * Decimal::from(15);
                acct.on_tick(Tick { symbol: sym(s), bid, ask, time: at(minute) })
            };
            for (i, bid) in bids.iter().enumerate() {
                send(&mut acct, i, *bid, 0);
            }
            let deposit = d("50000");
            for op in ops {
                minute += 1;
                match op {
                    Op::Tick(i, moves) => {
                        let (_, _, point) = SYMBOLS[i];
                        bids[i] = (bids[i] + d(point) * Decimal::from(moves)).max(d(point) * Decimal::from(1000));
                        send(&mut acct, i, bids[i], minute);
                    }
                    Op::Open(i, buy, lots) => {
                        let side = if buy { Side::Buy } else { Side::Sell };
                        let mut req = order(SYMBOLS[i].0, side, "0");
                        req.lots = Decimal::new(i64::from(lots), 2);
                        let (_, _, point) = SYMBOLS[i];
                        let distance = d(point) * Decimal::from(200);
                        req.stop_loss = Some(bids[i] - side.sign() * distance);
                        req.take_profit = Some(bids[i] + side.sign() * distance * Decimal::TWO);
                        let before = acct.account();
                        if let Err(r) = acct.open(req) {
                            prop_assert!(r.retcode == Retcode::NO_MONEY, "{r}");
                            prop_assert_eq!(before, acct.account());
                        }
                    }
                    Op::Close(k, lots) => {
                        if let Some(p) = acct.positions().get(k % acct.positions().len().max(1)) {
                            let _ = acct.close(p.ticket, lots.map(|l| Decimal::new(i64::from(l), 2)), at(minute));
                        }
                    }
                    Op::Modify(k, moves) => {
                        if let Some(p) = acct.positions().get(k % acct.positions().len().max(1)) {
                            let point = p.symbol.instrument().point();
                            let sl = p.current_price - p.side.sign() * point * Decimal::from(moves);
                            let _ = acct.modify(p.ticket, Some(sl), None);
                        }
                    }
                }
                let s = acct.account();
                let floating: Decimal = acct.positions().iter().map(|p| p.profit).sum();
                let margin: Decimal = acct.positions().iter().map(|p| p.margin).sum();
                prop_assert_eq!(s.equity, s.balance + floating);
                prop_assert_eq!(s.profit, floating);
                prop_assert_eq!(s.margin, margin);
                prop_assert_eq!(s.free_margin, s.equity - s.margin);
                let realised: Decimal = acct.history().iter().map(|x| x.profit).sum();
                prop_assert_eq!(s.balance, deposit + realised);
                for p in acct.positions() {
                    let inst = p.symbol.instrument();
                    prop_assert!(p.lots >= inst.min_volume && (p.lots % inst.volume_step).is_zero());
                    prop_assert!(p.margin > Decimal::ZERO);
                }
            }
            for p in acct.positions() {
                acct.close(p.ticket, None, at(minute + 1)).map_err(|r| TestCaseError::fail(r.to_string()))?;
            }
            let s = acct.account();
            prop_assert!(acct.positions().is_empty());
            prop_assert_eq!(s.margin, Decimal::ZERO);
            prop_assert_eq!(s.profit, Decimal::ZERO);
            prop_assert_eq!(s.equity, s.balance);
            prop_assert_eq!(s.free_margin, s.balance);
        }
    }
}
