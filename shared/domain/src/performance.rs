//! Review of a trader's closed trades with rule-based recommendations (issue 17; the original's
//! `GET /ai/recommendations`, contract §2.10), computed without a language model.
//!
//! [`review`] reads at most the newest [`REVIEW_WINDOW`] (50, the original's window) closed trades and returns the
//! statistics the original reported (`total_trades`, `win_rate`, `total_pnl`, `trading_style`,
//! `avg_trade_duration_hours`, `session_preferences`) plus the figures a trader needs to act on (averages, profit
//! factor, expectancy, streaks, per-session and per-symbol results) and [`Review::recommendations`]: short sentences,
//! each derived from one rule and quoting the numbers it rests on.
//!
//! The original divided by the number of losing trades, so a history with trades but no loss answered 500. Here
//! every ratio whose denominator can be zero is an `Option` (`profit_factor` is `None` without a losing trade), and
//! no input — no trades, wins only, losses only, zero lots, equal open and close times — can panic.
//!
//! Money is `Decimal` in the account currency, as in the rest of the domain; averages are rounded to 2 decimals
//! (half away from zero). Percentages, ratios and hours are `f64` rounded as documented on each field.

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::money::{Side, dec};

/// Only the newest this many trades (by close time) are reviewed: the original's window.
pub const REVIEW_WINDOW: usize = 50;
/// A trade whose |profit| exceeds this (10¹², far beyond any account) is invalid data and left out; it also keeps
/// every sum of the review far inside `Decimal`'s range.
pub const MAX_ABS_PROFIT: Decimal = dec(1_000_000_000_000, 0);
/// A trade with more lots than this, or negative lots, is invalid data and left out. Zero lots are accepted.
pub const MAX_LOTS: Decimal = dec(1_000_000, 0);
/// Symbols are trimmed, upper-cased and cut to this many characters; an empty one becomes [`UNKNOWN_SYMBOL`].
pub const MAX_SYMBOL_CHARS: usize = 32;
/// Name used for trades without a symbol.
pub const UNKNOWN_SYMBOL: &str = "UNKNOWN";
/// Below this many reviewed trades the review warns that the figures are not yet reliable.
pub const MIN_RELIABLE_TRADES: usize = 20;

/// One closed trade, as stored by the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedTrade {
    /// Instrument symbol (normalised by the review: trimmed, upper-cased, at most [`MAX_SYMBOL_CHARS`]).
    pub symbol: String,
    /// BUY or SELL.
    pub side: Side,
    /// Volume in lots (0 ..= [`MAX_LOTS`]).
    pub lots: Decimal,
    /// Open time (UTC); its hour decides the session.
    pub open_time: DateTime<Utc>,
    /// Close time (UTC), not before the open time; the newest trades are those closed last.
    pub close_time: DateTime<Utc>,
    /// Realised profit in the account currency (negative for a loss), |profit| ≤ [`MAX_ABS_PROFIT`].
    pub profit: Decimal,
}

/// Trading style from the average holding time (the original's labels and bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradingStyle {
    /// No trade reviewed.
    NewTrader,
    /// Average holding time under 1 hour.
    Scalper,
    /// From 1 hour to under 24 hours.
    DayTrader,
    /// 24 hours or more.
    SwingTrader,
}

impl TradingStyle {
    /// The style for `trades` reviewed trades held `avg_hours` on average (unrounded).
    pub fn classify(trades: usize, avg_hours: f64) -> Self {
        if trades == 0 {
            TradingStyle::NewTrader
        } else if avg_hours < 1.0 {
            TradingStyle::Scalper
        } else if avg_hours < 24.0 {
            TradingStyle::DayTrader
        } else {
            TradingStyle::SwingTrader
        }
    }

    /// The wire label: `"new_trader"`, `"scalper"`, `"day_trader"` or `"swing_trader"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TradingStyle::NewTrader => "new_trader",
            TradingStyle::Scalper => "scalper",
            TradingStyle::DayTrader => "day_trader",
            TradingStyle::SwingTrader => "swing_trader",
        }
    }
}

/// Trading session of an open time (the original's buckets by UTC hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Session {
    /// 00:00–07:59 UTC.
    Asian,
    /// 08:00–15:59 UTC.
    London,
    /// 16:00–20:59 UTC.
    NewYork,
}

impl Session {
    /// The session of a UTC hour (0–23); hours 21–23 belong to none, as in the original's `elif` chain.
    pub fn of_hour(hour: u32) -> Option<Self> {
        match hour {
            0..=7 => Some(Session::Asian),
            8..=15 => Some(Session::London),
            16..=20 => Some(Session::NewYork),
            _ => None,
        }
    }

    /// `"Asian"`, `"London"` or `"New York"`.
    pub fn name(self) -> &'static str {
        match self {
            Session::Asian => "Asian",
            Session::London => "London",
            Session::NewYork => "New York",
        }
    }

    const ALL: [Session; 3] = [Session::Asian, Session::London, Session::NewYork];
}

/// Trades opened per session (the original's `session_preferences`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionPreferences {
    /// Opened 00–07 UTC.
    pub asian: usize,
    /// Opened 08–15 UTC.
    pub london: usize,
    /// Opened 16–20 UTC.
    pub new_york: usize,
}

impl SessionPreferences {
    /// The count of one session.
    pub fn get(&self, session: Session) -> usize {
        match session {
            Session::Asian => self.asian,
            Session::London => self.london,
            Session::NewYork => self.new_york,
        }
    }
}

/// Realised profit per session of the open time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionPnl {
    /// Trades opened 00–07 UTC.
    pub asian: Decimal,
    /// Trades opened 08–15 UTC.
    pub london: Decimal,
    /// Trades opened 16–20 UTC.
    pub new_york: Decimal,
}

impl SessionPnl {
    /// The profit of one session.
    pub fn get(&self, session: Session) -> Decimal {
        match session {
            Session::Asian => self.asian,
            Session::London => self.london,
            Session::NewYork => self.new_york,
        }
    }

    fn slot(&mut self, session: Session) -> &mut Decimal {
        match session {
            Session::Asian => &mut self.asian,
            Session::London => &mut self.london,
            Session::NewYork => &mut self.new_york,
        }
    }
}

/// Results on one symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolStats {
    /// Normalised symbol.
    pub symbol: String,
    /// Reviewed trades on it.
    pub trades: usize,
    /// Of which won (profit > 0).
    pub wins: usize,
    /// Of which lost (profit < 0).
    pub losses: usize,
    /// `100 · wins / trades`, 1 decimal.
    pub win_rate: f64,
    /// Sum of the profits.
    pub pnl: Decimal,
}

/// The review of the newest closed trades.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Trades reviewed: the newest [`REVIEW_WINDOW`] minus `excluded_trades`.
    pub total_trades: usize,
    /// Trades of the window left out as invalid data (close before open, lots outside 0 ..= [`MAX_LOTS`], |profit|
    /// above [`MAX_ABS_PROFIT`]). `total_trades + excluded_trades = min(input, 50)`.
    pub excluded_trades: usize,
    /// Profit > 0.
    pub wins: usize,
    /// Profit < 0.
    pub losses: usize,
    /// Profit = 0.
    pub breakeven: usize,
    /// `100 · wins / total_trades` (breakeven trades count in the total), 1 decimal; 0 without trades.
    pub win_rate: f64,
    /// Sum of the profits.
    pub total_pnl: Decimal,
    /// Sum of the winning profits.
    pub gross_profit: Decimal,
    /// Sum of the losing profits, as a positive amount.
    pub gross_loss: Decimal,
    /// Mean winning profit, 2 decimals; `None` without a win.
    pub avg_win: Option<Decimal>,
    /// Mean losing amount, positive, 2 decimals; `None` without a loss.
    pub avg_loss: Option<Decimal>,
    /// `avg_win / avg_loss` (reward:risk actually achieved), 2 decimals; `None` unless there are wins and losses.
    pub payoff_ratio: Option<f64>,
    /// `gross_profit / gross_loss`, 2 decimals; `None` without a losing trade (the original divided by zero here).
    pub profit_factor: Option<f64>,
    /// `total_pnl / total_trades`, 2 decimals; `None` without trades.
    pub expectancy: Option<Decimal>,
    /// Largest winning profit; `None` without a win.
    pub largest_win: Option<Decimal>,
    /// Largest losing amount, positive; `None` without a loss.
    pub largest_loss: Option<Decimal>,
    /// Most consecutive losses in close-time order (a win or a breakeven trade ends a streak).
    pub longest_losing_streak: usize,
    /// Consecutive losses ending with the newest trade.
    pub current_losing_streak: usize,
    /// Mean of close − open in hours, 1 decimal; 0 without trades.
    pub avg_trade_duration_hours: f64,
    /// From the unrounded mean holding time (the original's rule).
    pub trading_style: TradingStyle,
    /// Trades opened per session (UTC open hour: 0–7 Asian, 8–15 London, 16–20 New York).
    pub session_preferences: SessionPreferences,
    /// Profit per session.
    pub session_pnl: SessionPnl,
    /// Trades opened 21:00–23:59 UTC, in no session (the original's buckets); the session counts plus this equal
    /// `total_trades`.
    pub off_session_trades: usize,
    /// Per symbol, worst result first (ties by symbol).
    pub symbols: Vec<SymbolStats>,
    /// Rule-based advice, each sentence quoting its numbers; never empty.
    pub recommendations: Vec<String>,
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// `x` rounded to `dp` decimals (half away from zero).
fn round_f(x: f64, dp: i32) -> f64 {
    let m = 10f64.powi(dp);
    (x * m).round() / m
}

/// Money as printed in the recommendations: 2 decimals, half away from zero.
pub fn format_money(d: Decimal) -> String {
    format!("{:.2}", round2(d))
}

fn to_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// `100 · part / whole`, 1 decimal; 0 when `whole` is 0.
fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { round_f(100.0 * part as f64 / whole as f64, 1) }
}

/// `a / b` for positive amounts, 2 decimals; `None` when `b` is 0.
fn ratio(a: Decimal, b: Decimal) -> Option<f64> {
    (!b.is_zero()).then(|| round_f(to_f64(a) / to_f64(b), 2))
}

/// `sum / count`, 2 decimals; `None` when `count` is 0.
fn mean(sum: Decimal, count: usize) -> Option<Decimal> {
    (count > 0).then(|| round2(sum / Decimal::from(count)))
}

fn normalise_symbol(symbol: &str) -> String {
    // Cut before upper-casing (bounds the work on a huge input) and after (upper-casing can add characters).
    let s: String = symbol.trim().chars().take(MAX_SYMBOL_CHARS).collect::<String>().to_uppercase();
    let s: String = s.chars().take(MAX_SYMBOL_CHARS).collect();
    if s.trim().is_empty() { UNKNOWN_SYMBOL.to_owned() } else { s }
}

fn is_valid(t: &ClosedTrade) -> bool {
    t.close_time >= t.open_time && t.lots >= Decimal::ZERO && t.lots <= MAX_LOTS && t.profit.abs() <= MAX_ABS_PROFIT
}

/// The newest [`REVIEW_WINDOW`] trades by close time, oldest first. Among equal close times the one later in the
/// slice counts as newer.
fn newest(trades: &[ClosedTrade]) -> Vec<&ClosedTrade> {
    let mut order: Vec<usize> = (0..trades.len()).collect();
    order.sort_by_key(|&i| (trades[i].close_time, i));
    order[order.len().saturating_sub(REVIEW_WINDOW)..].iter().map(|&i| &trades[i]).collect()
}

/// Reviews the newest [`REVIEW_WINDOW`] closed trades of `trades` (any order; newest = latest close time) and
/// derives the recommendations. Never panics; an empty slice gives the `new_trader` review with starting advice.
///
/// Cost: a sort of the indices, O(n log n), then O(50).
pub fn review(trades: &[ClosedTrade]) -> Review {
    let window = newest(trades);
    let considered = window.len();
    let valid: Vec<&ClosedTrade> = window.into_iter().filter(|t| is_valid(t)).collect();
    let n = valid.len();

    let (mut wins, mut losses, mut breakeven) = (0, 0, 0);
    let (mut gross_profit, mut gross_loss) = (Decimal::ZERO, Decimal::ZERO);
    let (mut largest_win, mut largest_loss): (Option<Decimal>, Option<Decimal>) = (None, None);
    let (mut streak, mut longest_streak) = (0, 0);
    let mut seconds: i64 = 0;
    let mut sessions = SessionPreferences::default();
    let mut session_pnl = SessionPnl::default();
    let mut off_session = 0;
    let mut per_symbol: BTreeMap<String, SymbolStats> = BTreeMap::new();

    // Sums stay below 50 × 10¹² thanks to MAX_ABS_PROFIT, so plain Decimal arithmetic cannot overflow.
    for t in &valid {
        let p = t.profit;
        let entry = per_symbol.entry(normalise_symbol(&t.symbol)).or_insert_with_key(|symbol| SymbolStats {
            symbol: symbol.clone(),
            trades: 0,
            wins: 0,
            losses: 0,
            win_rate: 0.0,
            pnl: Decimal::ZERO,
        });
        entry.trades += 1;
        entry.pnl += p;
        if p > Decimal::ZERO {
            wins += 1;
            entry.wins += 1;
            gross_profit += p;
            largest_win = Some(largest_win.map_or(p, |w| w.max(p)));
            streak = 0;
        } else if p < Decimal::ZERO {
            losses += 1;
            entry.losses += 1;
            gross_loss -= p;
            largest_loss = Some(largest_loss.map_or(-p, |l| l.max(-p)));
            streak += 1;
            longest_streak = longest_streak.max(streak);
        } else {
            breakeven += 1;
            streak = 0;
        }
        // At most ~1.7e13 s per trade (chrono's date range), 50 trades: far inside i64.
        seconds = seconds.saturating_add((t.close_time - t.open_time).num_seconds());
        match Session::of_hour(t.open_time.hour()) {
            Some(session) => {
                match session {
                    Session::Asian => sessions.asian += 1,
                    Session::London => sessions.london += 1,
                    Session::NewYork => sessions.new_york += 1,
                }
                *session_pnl.slot(session) += p;
            }
            None => off_session += 1,
        }
    }

    let avg_hours = if n == 0 { 0.0 } else { seconds as f64 / n as f64 / 3_600.0 };
    let mut symbols: Vec<SymbolStats> = per_symbol
        .into_values()
        .map(|mut s| {
            s.win_rate = percent(s.wins, s.trades);
            s
        })
        .collect();
    symbols.sort_by(|a, b| a.pnl.cmp(&b.pnl).then_with(|| a.symbol.cmp(&b.symbol)));

    let avg_win = mean(gross_profit, wins);
    let avg_loss = mean(gross_loss, losses);
    let mut review = Review {
        total_trades: n,
        excluded_trades: considered - n,
        wins,
        losses,
        breakeven,
        win_rate: percent(wins, n),
        total_pnl: gross_profit - gross_loss,
        gross_profit,
        gross_loss,
        avg_win,
        avg_loss,
        payoff_ratio: match (avg_win, avg_loss) {
            (Some(w), Some(l)) => ratio(w, l),
            _ => None,
        },
        profit_factor: if losses > 0 { ratio(gross_profit, gross_loss) } else { None },
        expectancy: mean(gross_profit - gross_loss, n),
        largest_win,
        largest_loss,
        longest_losing_streak: longest_streak,
        current_losing_streak: streak,
        avg_trade_duration_hours: round_f(avg_hours, 1),
        trading_style: TradingStyle::classify(n, avg_hours),
        session_preferences: sessions,
        session_pnl,
        off_session_trades: off_session,
        symbols,
        recommendations: Vec::new(),
    };
    review.recommendations = recommend(&review, considered);
    review
}

/// Win rate below this (percent) is "low".
const LOW_WIN_RATE: f64 = 40.0;
/// Win rate at or above this (percent) is "high".
const HIGH_WIN_RATE: f64 = 60.0;
/// A payoff ratio at or above this makes a low win rate workable.
const GOOD_PAYOFF: f64 = 1.5;
/// A payoff ratio below this undermines a high win rate.
const POOR_PAYOFF: f64 = 0.8;
/// Profit factor at or above this is "strong".
const STRONG_PROFIT_FACTOR: f64 = 2.0;
/// Largest loss at least this many average losses suggests a missing or moved stop.
const OUTSIZED_LOSS: f64 = 3.0;
/// Losing streaks from this length get a rule.
const LONG_STREAK: usize = 4;
/// A current losing streak from this length says "pause".
const CURRENT_STREAK: usize = 3;
/// One session holding at least this share (percent) of the session trades is a concentration.
const SESSION_SHARE: f64 = 70.0;
/// A session or a comparison needs at least this many trades.
const MIN_SESSION_TRADES: usize = 5;
/// One symbol whose net loss is at least this share (percent) of all losses is singled out.
const SYMBOL_LOSS_SHARE: f64 = 50.0;

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}

/// The rules, in order; see the constants above for the thresholds.
fn recommend(r: &Review, considered: usize) -> Vec<String> {
    let mut out = Vec::new();
    let money = format_money;
    if r.excluded_trades > 0 {
        out.push(format!(
            "{} of the newest {considered} were left out of this review as invalid data (close before open, lots \
             outside 0–{MAX_LOTS} or a profit beyond ±{MAX_ABS_PROFIT}); check how they were recorded.",
            plural(r.excluded_trades, "trade"),
        ));
    }
    if r.total_trades == 0 {
        out.push(format!(
            "No closed trades to review yet. Start on a demo account or with the minimum volume of 0.01 lots, risk at \
             most 1 % of the balance per trade with a stop loss on every order, and review again after \
             {MIN_RELIABLE_TRADES} closed trades."
        ));
        return out;
    }
    let base = out.len();
    if r.total_trades < MIN_RELIABLE_TRADES {
        out.push(format!(
            "Only {} reviewed so far: these figures are not yet reliable; keep the volume small until at least \
             {MIN_RELIABLE_TRADES}.",
            plural(r.total_trades, "closed trade")
        ));
    }
    let wr = r.win_rate;
    match (r.avg_win, r.avg_loss, r.payoff_ratio) {
        (Some(_), None, _) => out.push(format!(
            "{} of {} trades won and none lost (total {}): the profit factor is undefined until a losing trade; do \
             not raise the volume on this record alone, and keep a stop loss on every trade.",
            r.wins,
            r.total_trades,
            money(r.total_pnl)
        )),
        (None, Some(al), _) => out.push(format!(
            "{} of {} trades lost and none won (total {}, average loss {}): pause live trading, test the strategy on \
             a demo account and check the entries against the trend.",
            r.losses,
            r.total_trades,
            money(r.total_pnl),
            money(al)
        )),
        (Some(aw), Some(al), Some(payoff)) => {
            if wr < LOW_WIN_RATE && payoff >= GOOD_PAYOFF {
                out.push(format!(
                    "Win rate {wr:.1} % is low, but the average win {} is {payoff:.2}× the average loss {}: the edge \
                     comes from reward:risk, so keep the stops and let winners run instead of closing them early.",
                    money(aw),
                    money(al)
                ));
            } else if wr < LOW_WIN_RATE {
                out.push(format!(
                    "Win rate {wr:.1} % with an average win only {payoff:.2}× the average loss ({} against {}) \
                     loses over time: be more selective with entries and aim for targets at least {GOOD_PAYOFF}× the \
                     stop distance.",
                    money(aw),
                    money(al)
                ));
            } else if wr >= HIGH_WIN_RATE && payoff < POOR_PAYOFF {
                out.push(format!(
                    "Win rate {wr:.1} % is high, but the average loss {} is larger than the average win {} (ratio \
                     {payoff:.2}): cut losing trades earlier or let winners run longer.",
                    money(al),
                    money(aw)
                ));
            }
        }
        _ => {}
    }
    if let Some(pf) = r.profit_factor.filter(|_| r.wins > 0) {
        if pf < 1.0 {
            out.push(format!(
                "Profit factor {pf:.2} is below 1: losses of {} outweigh gains of {} (total {}); reduce the volume \
                 until it is back above 1.",
                money(r.gross_loss),
                money(r.gross_profit),
                money(r.total_pnl)
            ));
        } else if pf >= STRONG_PROFIT_FACTOR {
            out.push(format!(
                "Profit factor {pf:.2} ({} won against {} lost) is strong: keep the risk per trade unchanged rather \
                 than raising it after a good run.",
                money(r.gross_profit),
                money(r.gross_loss)
            ));
        }
    }
    if let (Some(ll), Some(al)) = (r.largest_loss, r.avg_loss)
        && r.losses >= 3
        && let Some(times) = ratio(ll, al).filter(|&x| x >= OUTSIZED_LOSS)
    {
        out.push(format!(
            "The largest loss {} is {times:.2}× the average loss {}: a stop loss was missing or moved; set it when \
             opening and never widen it.",
            money(ll),
            money(al)
        ));
    }
    if r.longest_losing_streak >= LONG_STREAK {
        out.push(format!(
            "The longest losing streak was {} trades: adopt a rule to stop for the day after {CURRENT_STREAK} \
             consecutive losses.",
            r.longest_losing_streak
        ));
    }
    if r.current_losing_streak >= CURRENT_STREAK {
        out.push(format!(
            "The last {} trades were all losses: pause and review them before the next trade.",
            r.current_losing_streak
        ));
    }
    session_rules(r, &mut out);
    symbol_rule(r, &mut out);
    if r.trading_style == TradingStyle::Scalper
        && let Some(e) = r.expectancy.filter(|e| e.is_sign_negative() && !e.is_zero())
    {
        out.push(format!(
            "Average holding time {:.1} h (scalper) with an expectancy of {} per trade: on trades this short the \
             spread and commission take a large share; consider fewer, longer trades.",
            r.avg_trade_duration_hours,
            money(e)
        ));
    }
    // Nothing beyond the sample-size warning: say so, with the headline numbers.
    let warned_small = usize::from(r.total_trades < MIN_RELIABLE_TRADES);
    if out.len() == base + warned_small {
        let pf = r.profit_factor.map_or_else(|| "undefined (no loss)".to_owned(), |pf| format!("{pf:.2}"));
        out.push(format!(
            "No weak spot stands out in the last {}: win rate {wr:.1} %, profit factor {pf}, expectancy {} per \
             trade. Keep the risk per trade unchanged.",
            plural(r.total_trades, "trade"),
            r.expectancy.map_or_else(|| "0.00".to_owned(), money)
        ));
    }
    out
}

fn session_rules(r: &Review, out: &mut Vec<String>) {
    let s = &r.session_preferences;
    let in_sessions = s.asian + s.london + s.new_york;
    if in_sessions >= 2 * MIN_SESSION_TRADES
        && let Some(&top) = Session::ALL.iter().find(|&&x| percent(s.get(x), in_sessions) >= SESSION_SHARE)
    {
        let pnl = r.session_pnl.get(top);
        let tail = if pnl.is_sign_negative() && !pnl.is_zero() {
            format!("and they lost {} in total: trade fewer setups in that session", format_money(-pnl))
        } else {
            format!("with a result of {}: check that the other sessions are worth trading at all", format_money(pnl))
        };
        out.push(format!(
            "{} of {} session trades ({:.1} %) were opened in the {} session {tail}.",
            s.get(top),
            in_sessions,
            percent(s.get(top), in_sessions),
            top.name()
        ));
    }
    let eligible = Session::ALL.iter().copied().filter(|&x| s.get(x) >= MIN_SESSION_TRADES);
    let worst = eligible.clone().min_by_key(|&x| r.session_pnl.get(x));
    let best = eligible.max_by_key(|&x| r.session_pnl.get(x));
    if let (Some(w), Some(b)) = (worst, best)
        && r.session_pnl.get(w) < Decimal::ZERO
        && r.session_pnl.get(b) > Decimal::ZERO
    {
        out.push(format!(
            "Trades opened in the {} session ({}) lost {} while the {} session ({}) made {}: focus on the {} session.",
            w.name(),
            s.get(w),
            format_money(-r.session_pnl.get(w)),
            b.name(),
            s.get(b),
            format_money(r.session_pnl.get(b)),
            b.name()
        ));
    }
}

fn symbol_rule(r: &Review, out: &mut Vec<String>) {
    let Some(worst) = r.symbols.first() else { return };
    if r.symbols.len() < 2 || worst.pnl >= Decimal::ZERO || r.gross_loss.is_zero() {
        return;
    }
    // |net loss of one symbol| ≤ its gross loss ≤ the total gross loss, so the share is at most 100 %.
    let share = round_f(100.0 * to_f64(-worst.pnl) / to_f64(r.gross_loss), 1);
    if share >= SYMBOL_LOSS_SHARE {
        out.push(format!(
            "{} lost {} over {} (win rate {:.1} %), {share:.1} % of all losses: pause it or trade it with a smaller \
             volume.",
            worst.symbol,
            format_money(-worst.pnl),
            plural(worst.trades, "trade"),
            worst.win_rate
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap()
    }

    /// A trade opened `open_h` hours after t0, held `minutes`, with `profit` (in hundredths).
    fn trade(symbol: &str, open_h: i64, minutes: i64, cents: i64) -> ClosedTrade {
        let open_time = t0() + Duration::hours(open_h);
        ClosedTrade {
            symbol: symbol.to_owned(),
            side: Side::Buy,
            lots: dec(10, 2),
            open_time,
            close_time: open_time + Duration::minutes(minutes),
            profit: Decimal::new(cents, 2),
        }
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn has(r: &Review, needle: &str) -> bool {
        r.recommendations.iter().any(|s| s.contains(needle))
    }

    #[test]
    fn table_of_histories() {
        struct Case {
            name: &'static str,
            cents: &'static [i64],
            wins: usize,
            losses: usize,
            breakeven: usize,
            win_rate: f64,
            total: &'static str,
            avg_win: Option<&'static str>,
            avg_loss: Option<&'static str>,
            profit_factor: Option<f64>,
            expectancy: Option<&'static str>,
            advice: &'static str,
        }
        let cases = [
            Case {
                name: "none",
                cents: &[],
                wins: 0,
                losses: 0,
                breakeven: 0,
                win_rate: 0.0,
                total: "0",
                avg_win: None,
                avg_loss: None,
                profit_factor: None,
                expectancy: None,
                advice: "No closed trades to review yet",
            },
            Case {
                name: "wins only (the original's division by zero)",
                cents: &[1000, 2550, 500],
                wins: 3,
                losses: 0,
                breakeven: 0,
                win_rate: 100.0,
                total: "40.50",
                avg_win: Some("13.50"),
                avg_loss: None,
                profit_factor: None,
                expectancy: Some("13.50"),
                advice: "3 of 3 trades won and none lost (total 40.50)",
            },
            Case {
                name: "losses only",
                cents: &[-1000, -2000],
                wins: 0,
                losses: 2,
                breakeven: 0,
                win_rate: 0.0,
                total: "-30.00",
                avg_win: None,
                avg_loss: Some("15.00"),
                profit_factor: Some(0.0),
                expectancy: Some("-15.00"),
                advice: "2 of 2 trades lost and none won (total -30.00, average loss 15.00)",
            },
            Case {
                name: "breakeven only",
                cents: &[0, 0],
                wins: 0,
                losses: 0,
                breakeven: 2,
                win_rate: 0.0,
                total: "0",
                avg_win: None,
                avg_loss: None,
                profit_factor: None,
                expectancy: Some("0"),
                advice: "No weak spot stands out in the last 2 trades",
            },
            Case {
                name: "mixed, low win rate, good reward:risk",
                cents: &[-1000, -1000, 3000, -1000, 0],
                wins: 1,
                losses: 3,
                breakeven: 1,
                win_rate: 20.0,
                total: "0.00",
                avg_win: Some("30.00"),
                avg_loss: Some("10.00"),
                profit_factor: Some(1.0),
                expectancy: Some("0.00"),
                advice: "Win rate 20.0 % is low, but the average win 30.00 is 3.00× the average loss 10.00",
            },
            Case {
                name: "mixed, high win rate, poor reward:risk",
                cents: &[100, 100, 100, -1000, 100, 100, 100],
                wins: 6,
                losses: 1,
                breakeven: 0,
                win_rate: 85.7,
                total: "-4.00",
                avg_win: Some("1.00"),
                avg_loss: Some("10.00"),
                profit_factor: Some(0.6),
                expectancy: Some("-0.57"),
                advice: "Win rate 85.7 % is high, but the average loss 10.00 is larger than the average win 1.00",
            },
        ];
        for c in cases {
            let trades: Vec<ClosedTrade> =
                c.cents.iter().enumerate().map(|(i, &p)| trade("EURUSD", 10 + i as i64 * 30, 90, p)).collect();
            let r = review(&trades);
            let name = c.name;
            assert_eq!((r.wins, r.losses, r.breakeven, r.total_trades), (c.wins, c.losses, c.breakeven, c.cents.len()));
            assert_eq!(r.win_rate, c.win_rate, "{name}");
            assert_eq!(r.total_pnl, d(c.total), "{name}");
            assert_eq!(r.avg_win, c.avg_win.map(d), "{name}");
            assert_eq!(r.avg_loss, c.avg_loss.map(d), "{name}");
            assert_eq!(r.profit_factor, c.profit_factor, "{name}");
            assert_eq!(r.expectancy, c.expectancy.map(d), "{name}");
            assert!(has(&r, c.advice), "{name}: {:#?}", r.recommendations);
            assert!(!r.recommendations.is_empty());
            let expected_style = if c.cents.is_empty() { TradingStyle::NewTrader } else { TradingStyle::DayTrader };
            assert_eq!(r.trading_style, expected_style, "{name}");
            serde_json::to_string(&r).unwrap();
        }
    }

    #[test]
    fn extremes_and_payoff() {
        let r = review(&[trade("X", 1, 60, 1000), trade("X", 2, 60, -400), trade("X", 3, 60, -100)]);
        assert_eq!((r.largest_win, r.largest_loss), (Some(d("10.00")), Some(d("4.00"))));
        assert_eq!((r.gross_profit, r.gross_loss), (d("10.00"), d("5.00")));
        assert_eq!((r.payoff_ratio, r.profit_factor), (Some(4.0), Some(2.0)));
        assert!(has(&r, "Profit factor 2.00 (10.00 won against 5.00 lost) is strong"));
        assert_eq!(review(&[]).trading_style.as_str(), "new_trader");
    }

    #[test]
    fn style_boundaries() {
        let cases = [
            (0, 1, TradingStyle::Scalper),
            (59, 1, TradingStyle::Scalper),
            (60, 1, TradingStyle::DayTrader),
            (24 * 60 - 1, 1, TradingStyle::DayTrader),
            (24 * 60, 1, TradingStyle::SwingTrader),
            (10 * 24 * 60, 1, TradingStyle::SwingTrader),
        ];
        for (minutes, _, style) in cases {
            let r = review(&[trade("X", 0, minutes, 100)]);
            assert_eq!(r.trading_style, style, "{minutes} min");
            assert_eq!(r.avg_trade_duration_hours, round_f(minutes as f64 / 60.0, 1));
        }
        // 59 min 59 s shows as 1.0 h but is a scalper (the class uses the unrounded mean, as the original did).
        let mut t = trade("X", 0, 0, 100);
        t.close_time = t.open_time + Duration::seconds(3_599);
        let r = review(&[t]);
        assert_eq!((r.avg_trade_duration_hours, r.trading_style), (1.0, TradingStyle::Scalper));
        // Mean of 30 min and 90 min = 1 h exactly.
        let r = review(&[trade("X", 0, 30, 1), trade("X", 5, 90, 1)]);
        assert_eq!((r.avg_trade_duration_hours, r.trading_style), (1.0, TradingStyle::DayTrader));
        assert_eq!(TradingStyle::classify(0, 100.0), TradingStyle::NewTrader);
    }

    #[test]
    fn session_bucket_boundaries() {
        let expected = |h: u32| match h {
            0..=7 => Some(Session::Asian),
            8..=15 => Some(Session::London),
            16..=20 => Some(Session::NewYork),
            _ => None,
        };
        for (hour, session) in [
            (0, Some(Session::Asian)),
            (7, Some(Session::Asian)),
            (8, Some(Session::London)),
            (15, Some(Session::London)),
            (16, Some(Session::NewYork)),
            (20, Some(Session::NewYork)),
            (21, None),
            (23, None),
        ] {
            assert_eq!(Session::of_hour(hour), session, "hour {hour}");
            assert_eq!(expected(hour), session);
            let mut t = trade("X", hour as i64, 5, 100);
            t.open_time += Duration::minutes(59); // still the same hour
            t.close_time = t.open_time + Duration::hours(3); // closing in another hour changes nothing
            let r = review(&[t]);
            let s = r.session_preferences;
            let counts = [s.asian, s.london, s.new_york, r.off_session_trades];
            let want = match session {
                Some(Session::Asian) => [1, 0, 0, 0],
                Some(Session::London) => [0, 1, 0, 0],
                Some(Session::NewYork) => [0, 0, 1, 0],
                None => [0, 0, 0, 1],
            };
            assert_eq!(counts, want, "hour {hour}");
        }
        // Every hour of a day once: 8 Asian, 8 London, 5 New York, 3 in none.
        let day: Vec<ClosedTrade> = (0..24).map(|h| trade("X", h, 10, 1)).collect();
        let r = review(&day);
        let s = r.session_preferences;
        assert_eq!((s.asian, s.london, s.new_york, r.off_session_trades), (8, 8, 5, 3));
        assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!({"asian": 8, "london": 8, "new_york": 5}));
    }

    #[test]
    fn only_the_newest_fifty_are_used() {
        // 60 trades given newest first; the 10 oldest are big losses on OLD.
        let mut trades: Vec<ClosedTrade> =
            (0..60).map(|i| if i < 10 { trade("OLD", i, 30, -100_000) } else { trade("NEW", i, 30, 1_000) }).collect();
        trades.reverse();
        let r = review(&trades);
        assert_eq!((r.total_trades, r.wins, r.losses, r.excluded_trades), (50, 50, 0, 0));
        assert_eq!(r.total_pnl, d("500.00"));
        assert!(r.symbols.iter().all(|s| s.symbol == "NEW"));
        // One more, newer, loss pushes the oldest NEW trade out.
        trades.push(trade("old", 100, 30, -500));
        let r = review(&trades);
        assert_eq!((r.total_trades, r.wins, r.losses), (50, 49, 1));
        assert_eq!(r.total_pnl, d("485.00"));
        assert_eq!(r.symbols[0].symbol, "OLD");
        assert_eq!(r.current_losing_streak, 1);
    }

    #[test]
    fn degenerate_trades_do_not_panic() {
        let mut zero = trade("  eurusd ", 3, 0, 0);
        zero.lots = Decimal::ZERO;
        let r = review(&[zero.clone(), zero.clone()]);
        assert_eq!((r.total_trades, r.breakeven, r.avg_trade_duration_hours), (2, 2, 0.0));
        assert_eq!(r.trading_style, TradingStyle::Scalper);
        assert_eq!(r.symbols[0].symbol, "EURUSD");
        let mut backwards = trade("X", 5, 0, 100);
        backwards.close_time = backwards.open_time - Duration::seconds(1);
        let mut huge = trade("X", 6, 1, 0);
        huge.profit = Decimal::MAX;
        let mut negative_lots = trade("X", 7, 1, 100);
        negative_lots.lots = dec(-1, 0);
        let r = review(&[backwards, huge, negative_lots, zero]);
        assert_eq!((r.total_trades, r.excluded_trades), (1, 3));
        assert!(has(&r, "3 trades of the newest 4 were left out"), "{:?}", r.recommendations);
        let mut blank = trade("   ", 1, 1, 1);
        blank.symbol = "x".repeat(100);
        assert_eq!(review(&[blank]).symbols[0].symbol, "X".repeat(MAX_SYMBOL_CHARS));
        assert_eq!(review(&[trade(" ", 1, 1, 1)]).symbols[0].symbol, UNKNOWN_SYMBOL);
    }

    #[test]
    fn streak_session_and_symbol_rules_quote_their_numbers() {
        // 10 London trades losing, 5 Asian winning; EURUSD carries the losses.
        let mut trades = Vec::new();
        for i in 0..10 {
            trades.push(trade("EURUSD", 24 * i + 9, 120, if i == 3 { 500 } else { -1_000 }));
        }
        for i in 0..5 {
            trades.push(trade("USDJPY", 24 * i + 2, 120, 800));
        }
        let r = review(&trades);
        assert_eq!(r.session_preferences, SessionPreferences { asian: 5, london: 10, new_york: 0 });
        assert_eq!(r.session_pnl.london, d("-85.00"));
        assert_eq!(r.session_pnl.asian, d("40.00"));
        assert_eq!(r.longest_losing_streak, 6);
        assert_eq!(r.current_losing_streak, 6, "the London losses close last");
        assert!(has(&r, "The longest losing streak was 6 trades"), "{:#?}", r.recommendations);
        assert!(has(&r, "The last 6 trades were all losses"));
        assert!(has(&r, "Trades opened in the London session (10) lost 85.00 while the Asian session (5) made 40.00"));
        assert!(has(&r, "EURUSD lost 85.00 over 10 trades (win rate 10.0 %), 94.4 % of all losses"));
        assert!(has(&r, "Only 15 closed trades reviewed so far"));
        assert_eq!(r.symbols[0].symbol, "EURUSD");
        assert_eq!(r.symbols.iter().map(|s| s.pnl).sum::<Decimal>(), r.total_pnl);
        assert_eq!(
            r.symbols[1],
            SymbolStats { symbol: "USDJPY".into(), trades: 5, wins: 5, losses: 0, win_rate: 100.0, pnl: d("40.00") }
        );
        // Concentration: 12 of 14 session trades in New York, losing.
        let mut trades: Vec<ClosedTrade> = (0..12).map(|i| trade("GBPUSD", 24 * i + 17, 20, -300 + i)).collect();
        trades.push(trade("GBPUSD", 3, 20, 5_000));
        trades.push(trade("GBPUSD", 4, 20, 5_000));
        let r = review(&trades);
        assert!(has(&r, "12 of 14 session trades (85.7 %) were opened in the New York session and they lost"));
        // Outsized loss.
        let r = review(&[
            trade("X", 1, 60, -100),
            trade("X", 2, 60, -100),
            trade("X", 3, 60, -1_000),
            trade("X", 4, 60, 5_000),
        ]);
        assert!(!has(&r, "The largest loss"), "2.50× is below 3×");
        let r = review(&[
            trade("X", 1, 60, -100),
            trade("X", 2, 60, -100),
            trade("X", 3, 60, -2_000),
            trade("X", 4, 60, 5_000),
        ]);
        assert_eq!(r.avg_loss, Some(d("7.33")));
        assert!(!has(&r, "The largest loss"), "2.73× is below 3×");
        let r = review(&[
            trade("X", 1, 60, -100),
            trade("X", 2, 60, -100),
            trade("X", 3, 60, -100),
            trade("X", 4, 60, -2_000),
            trade("X", 5, 60, 9_000),
        ]);
        assert!(has(&r, "The largest loss 20.00 is 3.48× the average loss 5.75"), "{:#?}", r.recommendations);
        // Scalping with a negative expectancy.
        let r = review(&[trade("X", 1, 5, -300), trade("X", 2, 5, 100), trade("X", 3, 5, 100)]);
        assert!(has(&r, "Average holding time 0.1 h (scalper) with an expectancy of -0.33 per trade"));
    }

    fn arb_decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
            (-1_000_000i64..1_000_000, 0u32..=2).prop_map(|(m, s)| Decimal::new(m, s)),
            Just(Decimal::ZERO),
            Just(Decimal::MAX),
            Just(Decimal::MIN),
            Just(MAX_ABS_PROFIT),
            Just(-MAX_ABS_PROFIT),
        ]
    }

    fn arb_time() -> impl Strategy<Value = DateTime<Utc>> {
        prop_oneof![
            (-5_000_000_000i64..5_000_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
            Just(DateTime::<Utc>::MIN_UTC),
            Just(DateTime::<Utc>::MAX_UTC),
        ]
    }

    fn arb_trade() -> impl Strategy<Value = ClosedTrade> {
        (".{0,40}", any::<bool>(), arb_decimal(), arb_time(), arb_time(), arb_decimal(), any::<bool>()).prop_map(
            |(symbol, buy, lots, open_time, close_time, profit, same_time)| ClosedTrade {
                symbol,
                side: if buy { Side::Buy } else { Side::Sell },
                lots,
                open_time,
                close_time: if same_time { open_time } else { close_time },
                profit,
            },
        )
    }

    proptest! {
        #[test]
        fn any_input_never_panics_and_counts_add_up(trades in prop::collection::vec(arb_trade(), 0..80)) {
            let r = review(&trades);
            prop_assert_eq!(r.total_trades + r.excluded_trades, trades.len().min(REVIEW_WINDOW));
            prop_assert_eq!(r.wins + r.losses + r.breakeven, r.total_trades);
            let s = r.session_preferences;
            prop_assert_eq!(s.asian + s.london + s.new_york + r.off_session_trades, r.total_trades);
            prop_assert_eq!(r.symbols.iter().map(|s| s.trades).sum::<usize>(), r.total_trades);
            prop_assert_eq!(r.gross_profit - r.gross_loss, r.total_pnl);
            prop_assert!((0.0..=100.0).contains(&r.win_rate));
            prop_assert!(r.avg_trade_duration_hours >= 0.0 && r.avg_trade_duration_hours.is_finite());
            prop_assert!(r.longest_losing_streak >= r.current_losing_streak && r.longest_losing_streak <= r.losses);
            prop_assert_eq!(r.profit_factor.is_some(), r.losses > 0);
            prop_assert!(r.profit_factor.is_none_or(|pf| pf.is_finite() && pf >= 0.0));
            prop_assert!(r.symbols.iter().all(|s| s.symbol.chars().count() <= MAX_SYMBOL_CHARS));
            prop_assert!(!r.recommendations.is_empty());
            prop_assert_eq!(r.trading_style == TradingStyle::NewTrader, r.total_trades == 0);
        }
    }
}
