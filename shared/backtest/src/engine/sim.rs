//! The simulation loop behind [`super::run`] (inputs already validated). The per-bar path is plain `f64` without
//! allocation; `Decimal` appears per entry (lots, stop prices, live sizing) and per bar only for a position with
//! trailing settings.

use nusatrade_domain::instrument::Instrument;
use nusatrade_domain::money::{Currency, Side};
use nusatrade_domain::sizing::{SizingRequest, StopLoss, position_size};
use nusatrade_domain::trailing::{TrailingState, TrailingStopSettings, TrailingType};
use nusatrade_ml::candles::Columns;
use nusatrade_ml::indicators;
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

use super::{
    Commission, EngineConfig, ExitReason, OrderMode, Outcome, Signals, Sizing, StopRule, TargetRule, Trade, levels,
};

/// backtesting.py's "all equity" order size, `1 − ε`: its sizing formula multiplies and divides by it.
pub(super) const FULL_EQUITY: f64 = 1.0 - f64::EPSILON;

/// Python's float floor division `a // b` (CPython's `_float_div_mod`), bit for bit: `fmod`, an exact-ish
/// quotient, then the snap to the nearest integer.
pub(super) fn py_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    // The remainder takes the divisor's sign: the quotient moves down by one.
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut floor = div.floor();
        if div - floor > 0.5 {
            floor += 1.0;
        }
        floor
    } else {
        0.0_f64.copysign(a / b)
    }
}

/// Prices, costs and the conversion of quote-currency amounts to the account currency.
struct Costs {
    half_spread: f64,
    slippage: f64,
    commission: Commission,
    /// Units per lot (1 without an instrument).
    contract: f64,
    /// The account currency is the base: quote amounts are divided by the price (USDJPY and the like).
    inverse: bool,
}

impl Costs {
    /// A quote-currency amount in the account currency at `price`.
    #[inline]
    fn to_account(&self, quote: f64, price: f64) -> f64 {
        if self.inverse { quote / price } else { quote }
    }

    /// Commission of one side of `units` filled at `price`, account currency.
    #[inline]
    fn commission(&self, units: f64, price: f64) -> f64 {
        match self.commission {
            Commission::None => 0.0,
            Commission::PerLot(r) => units / self.contract * r,
            Commission::Fraction(r) => self.to_account(units * price, price) * r,
        }
    }

    /// The fill of an order that opens a position on the side `long` at the market price `p`.
    #[inline]
    fn entry_fill(&self, long: bool, p: f64) -> f64 {
        if long { p + self.half_spread + self.slippage } else { p - self.half_spread - self.slippage }
    }

    /// The quote a position of side `long` closes at, at the market price `p` (bid for a long, ask for a short).
    #[inline]
    fn closing_quote(&self, long: bool, p: f64) -> f64 {
        if long { p - self.half_spread } else { p + self.half_spread }
    }

    /// The fill of an order that closes a position at the market price `p`.
    #[inline]
    fn exit_fill(&self, long: bool, p: f64) -> f64 {
        self.slipped(long, self.closing_quote(long, p))
    }

    /// A closing fill at `quote` (already on the closing side), after slippage.
    #[inline]
    fn slipped(&self, long: bool, quote: f64) -> f64 {
        if long { quote - self.slippage } else { quote + self.slippage }
    }
}

/// An open position.
#[derive(Debug, Clone, Copy)]
struct Open {
    units: f64,
    /// `units` with the side's sign.
    signed: f64,
    lots: Option<Decimal>,
    entry_bar: usize,
    entry_price: f64,
    entry_commission: f64,
    /// Entry value in the account currency (the denominator of `return_pct`).
    entry_value: f64,
    swap: f64,
    sl: Option<f64>,
    tp: Option<f64>,
    /// The stop was moved by trailing or breakeven.
    moved: bool,
    trailing: Option<TrailingState>,
}

struct Sim<'a> {
    bars: &'a Columns,
    signals: &'a Signals,
    config: &'a EngineConfig,
    instrument: Option<&'static Instrument>,
    costs: Costs,
    /// ATR per bar (empty unless a rule needs it).
    atr: Vec<f64>,
    cash: f64,
    /// Side of the open positions (all share one side: an opposite entry closes them first).
    long: bool,
    open: Vec<Open>,
    trades: Vec<Trade>,
    skipped: usize,
    /// An entry was filled during the current bar.
    entered: bool,
    /// Trailing settings and the instrument they need (`None`: no trailing).
    trailing: Option<(TrailingStopSettings, &'static Instrument)>,
    /// Σ signed units and Σ signed units × entry of the open positions (backtesting.py's sums, in its order),
    /// refreshed whenever a position opens or closes.
    position_units: f64,
    position_cost: f64,
    /// Some open position has a stop or a target.
    levels: bool,
}

pub(super) fn simulate(
    bars: &Columns,
    signals: &Signals,
    instrument: Option<&'static Instrument>,
    config: &EngineConfig,
) -> Outcome {
    let n = bars.close.len();
    let needs_atr = matches!(config.risk.stop_loss, StopRule::Atr(_))
        || matches!(config.risk.take_profit, TargetRule::Atr(_))
        || config.risk.trailing.is_some_and(|t| t.enabled && t.trailing_type == TrailingType::AtrBased);
    let atr =
        if needs_atr { indicators::atr(&bars.high, &bars.low, &bars.close, config.atr_period) } else { Vec::new() };
    let (contract, inverse) = match instrument {
        Some(i) => (i.contract_size.to_f64().unwrap_or(1.0), i.base == Currency::USD && i.quote != Currency::USD),
        None => (1.0, false),
    };
    let max_open = match config.mode {
        OrderMode::Pyramid(k) => k,
        OrderMode::Exclusive | OrderMode::Reverse => 1,
    };
    let mut sim = Sim {
        bars,
        signals,
        config,
        instrument,
        costs: Costs {
            half_spread: config.spread / 2.0,
            slippage: config.slippage,
            commission: config.commission,
            contract,
            inverse,
        },
        atr,
        cash: config.initial_cash,
        long: true,
        open: Vec::with_capacity(max_open),
        // A trade every 32 bars on average before the vector grows (at most 4,096 reserved).
        trades: Vec::with_capacity((n / 32).min(4_096)),
        skipped: 0,
        entered: false,
        trailing: config.risk.trailing.zip(instrument),
        position_units: 0.0,
        position_cost: 0.0,
        levels: false,
    };
    let mut equity = vec![0.0; n];
    let mut exposure_bars = 0;
    let mut ruined = false;

    for i in 0..n {
        let held = !sim.open.is_empty();
        sim.entered = false;
        if i > 0 {
            if held && let Some(swap) = config.swap {
                sim.charge_swap(i, swap);
            }
            let d = i - 1;
            if signals.enter_long[d] | signals.enter_short[d] | signals.exit_long[d] | signals.exit_short[d] {
                sim.decide(d, i);
            }
        }
        if sim.levels {
            sim.intrabar(i);
        }
        if sim.trailing.is_some() && !sim.open.is_empty() {
            sim.trail(i);
        }
        if held || sim.entered {
            exposure_bars += 1;
        }
        let eq = sim.equity(bars.close[i]);
        if eq <= 0.0 {
            // backtesting.py's out-of-money rule: close everything at this close, zero the cash, stop.
            sim.close_all(i, bars.close[i], ExitReason::MarginCall);
            sim.cash = 0.0;
            equity[i..].fill(0.0);
            ruined = true;
            break;
        }
        equity[i] = eq;
    }

    if !ruined && config.close_at_end && !sim.open.is_empty() && n > 0 {
        let last = n - 1;
        sim.close_all(last, bars.close[last], ExitReason::EndOfData);
        equity[last] = sim.cash;
    }
    // Drawdown from the running peak, as backtesting.py computes it (`1 − equity / running max`), in passes of their
    // own: the running peak (sequential, cheap), then the divisions, which vectorise.
    let mut peak = f64::NEG_INFINITY;
    let mut drawdown: Vec<f64> = equity
        .iter()
        .map(|&e| {
            peak = if e > peak { e } else { peak };
            peak
        })
        .collect();
    for (d, e) in drawdown.iter_mut().zip(&equity) {
        *d = 1.0 - e / *d;
    }

    Outcome {
        trades: sim.trades,
        equity,
        drawdown,
        exposure_bars,
        skipped_entries: sim.skipped,
        warmup: signals.warmup,
    }
}

/// The live trailing state of a position entered at `fill` with the stop `sl` (`None`: a price without a
/// `Decimal` form).
fn trailing_state(side: Side, fill: f64, sl: Option<f64>) -> Option<TrailingState> {
    let entry = Decimal::from_f64(fill)?;
    let stop = match sl {
        Some(s) => Some(Decimal::from_f64(s)?),
        None => None,
    };
    Some(TrailingState::new(side, entry, stop))
}

/// Days since 1970-01-01 of a bar's UTC date.
fn day(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

impl Sim<'_> {
    fn side(&self) -> Side {
        if self.long { Side::Buy } else { Side::Sell }
    }

    /// Equity at the market price `p`: cash + open P/L on the closing quote, as backtesting.py sums it
    /// (`price × Σ units − Σ units × entry`).
    #[inline]
    fn equity(&self, p: f64) -> f64 {
        if self.open.is_empty() {
            return self.cash;
        }
        let q = self.costs.closing_quote(self.long, p);
        self.cash + self.costs.to_account(q * self.position_units - self.position_cost, q)
    }

    /// Recomputes the cached sums and flags of the open positions after a change.
    fn refresh(&mut self) {
        let (mut units, mut cost) = (0.0, 0.0);
        for t in &self.open {
            units += t.signed;
            cost += t.signed * t.entry_price;
        }
        self.position_units = units;
        self.position_cost = cost;
        self.levels = self.open.iter().any(|t| t.sl.is_some() || t.tp.is_some());
    }

    /// Margin held by the open positions at the market price `p`: `Σ value / leverage`.
    fn margin_used(&self, p: f64) -> f64 {
        let q = self.costs.closing_quote(self.long, p);
        self.open.iter().map(|t| self.costs.to_account(t.units * q, q) / self.config.leverage).sum()
    }

    fn charge_swap(&mut self, i: usize, (long, short): (f64, f64)) {
        let nights = day(&self.bars.time[i]) - day(&self.bars.time[i - 1]);
        if nights <= 0 {
            return;
        }
        let per = if self.long { long } else { short };
        for t in &mut self.open {
            let charge = per * (t.units / self.costs.contract) * nights as f64;
            t.swap += charge;
            self.cash -= charge;
        }
    }

    /// Fills the decision of bar `d` at bar `i`'s open.
    fn decide(&mut self, d: usize, i: usize) {
        let s = self.signals;
        let o = self.bars.open[i];
        if !self.open.is_empty() && ((self.long && s.exit_long[d]) || (!self.long && s.exit_short[d])) {
            self.close_all(i, o, ExitReason::Signal);
        }
        let long = match (s.enter_long[d], s.enter_short[d]) {
            (true, false) => true,
            (false, true) => false,
            _ => return,
        };
        let held = !self.open.is_empty();
        let same = held && self.long == long;
        let proceed = match self.config.mode {
            OrderMode::Exclusive => true,
            OrderMode::Reverse => !same,
            OrderMode::Pyramid(k) => !same || self.open.len() < k,
        };
        if !proceed {
            return;
        }
        if held && (!same || self.config.mode == OrderMode::Exclusive) {
            self.close_all(i, o, ExitReason::Reversal);
        }
        if self.try_open(long, d, i) {
            self.entered = true;
        } else {
            self.skipped += 1;
        }
    }

    /// Stop and target prices of an entry filled at `fill` on the side `long`, decided at bar `d` ([`levels`]).
    fn levels(&self, long: bool, fill: f64, d: usize) -> Option<(Option<f64>, Option<f64>)> {
        let atr = self.atr.get(d).copied();
        levels(&self.config.risk, self.instrument, long, fill, atr)
    }

    /// Sizes and opens a position at bar `i`'s open; false when the entry is skipped.
    fn try_open(&mut self, long: bool, d: usize, i: usize) -> bool {
        let o = self.bars.open[i];
        let fill = self.costs.entry_fill(long, o);
        if fill.is_nan() || fill <= 0.0 {
            return false;
        }
        let Some((sl, tp)) = self.levels(long, fill, d) else {
            return false;
        };
        let (equity, margin_used) =
            if self.open.is_empty() { (self.cash, 0.0) } else { (self.equity(o), self.margin_used(o)) };
        let margin_available = (equity - margin_used).max(0.0);
        let leverage = self.config.leverage;
        // backtesting.py's "adjusted price plus commission": what one unit costs to open.
        let unit_cost = self.costs.to_account(fill, fill) + self.costs.commission(FULL_EQUITY, fill) / FULL_EQUITY;
        let Some((units, lots)) = self.size(fill, sl, equity, margin_available, unit_cost) else {
            return false;
        };
        if units.is_nan() || units <= 0.0 || units * unit_cost > margin_available * leverage {
            return false;
        }
        let side = if long { Side::Buy } else { Side::Sell };
        let trailing = match self.config.risk.trailing {
            Some(_) => match trailing_state(side, fill, sl) {
                Some(state) => Some(state),
                None => return false,
            },
            None => None,
        };
        let commission = self.costs.commission(units, fill);
        self.cash -= commission;
        self.long = long;
        self.open.push(Open {
            units,
            signed: if long { units } else { -units },
            lots,
            entry_bar: i,
            entry_price: fill,
            entry_commission: commission,
            entry_value: self.costs.to_account(units * fill, fill),
            swap: 0.0,
            sl,
            tp,
            moved: false,
            trailing,
        });
        self.refresh();
        true
    }

    /// Units (and lots, with an instrument) of a new position; `None` = nothing to open.
    fn size(
        &self,
        fill: f64,
        sl: Option<f64>,
        equity: f64,
        margin_available: f64,
        unit_cost: f64,
    ) -> Option<(f64, Option<Decimal>)> {
        let leverage = self.config.leverage;
        // Wanted size in units (generic) or lots (instrument), before the volume rules.
        enum Want {
            Units(f64),
            Lots(Decimal),
        }
        let want = match self.config.sizing {
            Sizing::AllEquityUnits => {
                Want::Units(py_floordiv(margin_available * leverage * FULL_EQUITY, unit_cost).trunc())
            }
            Sizing::EquityFraction(f) => Want::Units((equity * f * leverage / unit_cost).floor()),
            Sizing::FixedLots(l) => Want::Lots(l),
            Sizing::RiskPercent(pct) => {
                let sl = sl?;
                match self.instrument {
                    None => {
                        let risk = equity * pct.to_f64()? / 100.0;
                        Want::Units((risk / (fill - sl).abs()).floor())
                    }
                    Some(inst) => {
                        let account = if inst.quote == Currency::USD || inst.base == Currency::USD {
                            Currency::USD
                        } else {
                            inst.quote
                        };
                        let req = SizingRequest {
                            account_balance: Decimal::from_f64(equity)?,
                            risk_percent: pct,
                            entry_price: Decimal::from_f64(fill)?,
                            stop_loss: StopLoss::Price(Decimal::from_f64(sl)?),
                            account_currency: account,
                            conversion_rate: None,
                        };
                        Want::Lots(position_size(inst, &req).ok()?.lot_size.value())
                    }
                }
            }
        };
        let max_lots = self.config.risk.max_lots;
        match self.instrument {
            None => {
                let mut units = match want {
                    Want::Units(u) => u,
                    Want::Lots(l) => l.to_f64()?,
                };
                if let Some(max) = max_lots {
                    units = units.min(max.to_f64()?);
                }
                (units > 0.0).then_some((units, None))
            }
            Some(inst) => {
                let mut lots = match want {
                    Want::Units(u) if u > 0.0 => Decimal::from_f64(u / self.costs.contract)?,
                    Want::Units(_) => return None,
                    Want::Lots(l) => l,
                };
                if let Some(max) = max_lots {
                    lots = lots.min(max);
                }
                let lots = inst.floor_lots(lots).ok()?.lots.value();
                let units = (lots * inst.contract_size).to_f64()?;
                Some((units, Some(lots)))
            }
        }
    }

    /// Stops and targets of the open positions against bar `i` (see the module docs for the order).
    fn intrabar(&mut self, i: usize) {
        let long = self.long;
        let c = &self.costs;
        let slip = c.slippage;
        let slipped = move |q: f64| if long { q - slip } else { q + slip };
        let (qo, qh, ql) = (
            c.closing_quote(long, self.bars.open[i]),
            c.closing_quote(long, self.bars.high[i]),
            c.closing_quote(long, self.bars.low[i]),
        );
        // Against the position: down for a long, up for a short; `worst`/`best` are the bar's extremes that way.
        let (worst, best) = if long { (ql, qh) } else { (qh, ql) };
        let beyond_stop = |price: f64, sl: f64| if long { price <= sl } else { price >= sl };
        let beyond_target = |price: f64, tp: f64| if long { price >= tp } else { price <= tp };
        let mut k = 0;
        while k < self.open.len() {
            let t = &self.open[k];
            let stop_reason = if t.moved { ExitReason::TrailingStop } else { ExitReason::StopLoss };
            let hit = match (t.sl, t.tp) {
                (Some(sl), _) if beyond_stop(qo, sl) => Some((slipped(qo), stop_reason)),
                (_, Some(tp)) if beyond_target(qo, tp) => Some((slipped(qo), ExitReason::TakeProfit)),
                (Some(sl), _) if beyond_stop(worst, sl) => Some((slipped(sl), stop_reason)),
                (_, Some(tp)) if beyond_target(best, tp) => Some((slipped(tp), ExitReason::TakeProfit)),
                _ => None,
            };
            match hit {
                Some((fill, reason)) => {
                    let t = self.open.remove(k);
                    self.close(t, i, fill, reason);
                }
                None => k += 1,
            }
        }
        self.refresh();
    }

    /// Bar `i` survived: its close goes to the trailing rule of every open position.
    fn trail(&mut self, i: usize) {
        let Some((settings, instrument)) = &self.trailing else {
            return;
        };
        let Some(price) = Decimal::from_f64(self.costs.closing_quote(self.long, self.bars.close[i])) else {
            return;
        };
        let atr = self.atr.get(i).copied().filter(|a| *a > 0.0).and_then(Decimal::from_f64);
        for t in &mut self.open {
            if let Some(state) = &mut t.trailing
                && let Some(update) = state.on_price(instrument, settings, price, atr)
                && let Some(stop) = update.new_stop_loss.to_f64()
            {
                t.sl = Some(stop);
                t.moved = true;
                self.levels = true;
            }
        }
    }

    /// Closes every open position (oldest first) at the market price `p` of bar `i`.
    fn close_all(&mut self, i: usize, p: f64, reason: ExitReason) {
        let fill = self.costs.exit_fill(self.long, p);
        let mut open = std::mem::take(&mut self.open);
        for t in open.drain(..) {
            self.close(t, i, fill, reason);
        }
        self.open = open;
        self.refresh();
    }

    /// Books the exit of `t` at `fill` (bar `i`), as backtesting.py's `_close_trade` does.
    fn close(&mut self, t: Open, i: usize, fill: f64, reason: ExitReason) {
        let gross = self.costs.to_account(t.signed * (fill - t.entry_price), fill);
        let exit_commission = self.costs.commission(t.units, fill);
        self.cash += gross - exit_commission;
        let commission = exit_commission + t.entry_commission;
        let sign = if t.signed > 0.0 { 1.0 } else { -1.0 };
        // Excursions over the bars the position lived through entirely (up to this bar's close when it ends at
        // the close, up to the previous bar when it ends at the open or inside this bar), and the exit price.
        let survived = match reason {
            ExitReason::EndOfData | ExitReason::MarginCall => Some(i),
            _ => i.checked_sub(1),
        };
        let (mut high, mut low) = (fill, fill);
        if let Some(last) = survived.filter(|l| *l >= t.entry_bar) {
            // Validated bars hold no NaN: plain comparisons (they vectorise).
            high = self.bars.high[t.entry_bar..=last].iter().fold(high, |m, &x| if x > m { x } else { m });
            low = self.bars.low[t.entry_bar..=last].iter().fold(low, |m, &x| if x < m { x } else { m });
        }
        let (mfe, mae) = if sign > 0.0 {
            (high - t.entry_price, t.entry_price - low)
        } else {
            (t.entry_price - low, high - t.entry_price)
        };
        self.trades.push(Trade {
            side: self.side(),
            units: t.units,
            lots: t.lots,
            entry_bar: t.entry_bar,
            entry_time: self.bars.time[t.entry_bar],
            entry_price: t.entry_price,
            exit_bar: i,
            exit_time: self.bars.time[i],
            exit_price: fill,
            pnl: gross - commission - t.swap,
            return_pct: sign * (fill / t.entry_price - 1.0) - (commission + t.swap) / t.entry_value,
            commission,
            swap: t.swap,
            mae: mae.max(0.0),
            mfe: mfe.max(0.0),
            exit_reason: reason,
        });
    }
}
