//! The grounding: what the assistant may cite, built **per user** from the platform's own data — the account
//! snapshot, open positions, recent closed trades and their statistics, the active bots' latest predictions, and
//! the computed analysis (trend, RSI regime, ATR volatility, MACD, Bollinger, recent ranges) of the symbols in
//! question. Every read is keyed by the caller's id, so nothing of another user's can be in it; free text typed by
//! people (bot names, notes) is cut short and travels as data (see [`super::prompts::data_block`]). A section
//! whose read fails says so instead of failing the answer.

use serde_json::{Value, json};
use uuid::Uuid;

use super::service::AiService;
use crate::trading::orders::queries::ListFilter;
use crate::wire::{iso, num};
use nusatrade_domain::performance;

/// Open positions in the grounding.
pub const MAX_POSITIONS: u32 = 20;
/// Most recent closed trades listed one by one (the statistics cover [`super::service::REVIEW_TRADES`]).
pub const RECENT_TRADES: usize = 10;
/// Symbols analysed for one question.
pub const MAX_SYMBOLS: usize = 3;
/// Longest piece of user-typed text (a bot's name) in the grounding.
pub const MAX_TEXT: usize = 80;

fn cut(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Value {
    tracing::warn!(section = what, error = %e, "AI grounding: a section could not be read");
    json!({"unavailable": format!("{what} could not be read right now")})
}

impl AiService {
    /// The grounding for `user`'s question `message` (symbols named in it are analysed first, then those of the
    /// open positions, at most [`MAX_SYMBOLS`]).
    pub async fn grounding(&self, user: Uuid, message: &str) -> Value {
        let mut data = serde_json::Map::new();
        data.insert("generated_at".into(), json!(iso(self.clock.now())));
        let mut symbols: Vec<&'static str> = super::chat::symbols_in(message);

        match self.orders.stats(user).await {
            Ok(s) => data.insert(
                "account".into(),
                json!({
                    "balance": num(s.balance), "equity": num(s.equity), "open_positions": s.open_positions,
                    "floating_pnl": num(s.unrealized_pnl), "today_pnl": num(s.today_pnl),
                    "realised_pnl_total": num(s.total_pnl), "closed_trades": s.total_trades,
                    "win_rate_percent": s.win_rate,
                }),
            ),
            Err(e) => data.insert("account".into(), unavailable("the account", e)),
        };

        match self.orders.positions(user, &ListFilter::default(), MAX_POSITIONS, None).await {
            Ok(page) => {
                for o in &page.items {
                    if let Ok(i) = nusatrade_domain::instrument::lookup(&o.symbol)
                        && !symbols.contains(&i.symbol)
                    {
                        symbols.push(i.symbol);
                    }
                }
                let list: Vec<Value> = page
                    .items
                    .iter()
                    .map(|o| {
                        json!({
                            "symbol": o.symbol, "side": o.side.as_str(), "lots": num(o.lots),
                            "status": o.status, "open_price": o.open_price.map(num),
                            "stop_loss": o.stop_loss.map(num), "take_profit": o.take_profit.map(num),
                            "floating_pnl": o.floating_profit.map(num),
                            "opened_at": o.open_time.map(iso),
                        })
                    })
                    .collect();
                data.insert("open_positions".into(), Value::Array(list));
            }
            Err(e) => {
                data.insert("open_positions".into(), unavailable("the open positions", e));
            }
        }

        match self.closed_trades(user).await {
            Ok(trades) => {
                let review = performance::review(&trades);
                data.insert(
                    "closed_trades_statistics".into(),
                    json!({
                        "trades": review.total_trades, "wins": review.wins, "losses": review.losses,
                        "win_rate_percent": review.win_rate, "total_pnl": num(review.total_pnl),
                        "avg_win": review.avg_win.map(num), "avg_loss": review.avg_loss.map(num),
                        "profit_factor": review.profit_factor, "payoff_ratio": review.payoff_ratio,
                        "trading_style": review.trading_style,
                        "avg_trade_duration_hours": review.avg_trade_duration_hours,
                        "computed_advice": review.recommendations,
                    }),
                );
                let recent: Vec<Value> = trades
                    .iter()
                    .take(RECENT_TRADES)
                    .map(|t| {
                        json!({
                            "symbol": t.symbol, "side": t.side.as_str(), "lots": num(t.lots),
                            "profit": num(t.profit), "opened_at": iso(t.open_time), "closed_at": iso(t.close_time),
                        })
                    })
                    .collect();
                data.insert("recent_closed_trades".into(), Value::Array(recent));
            }
            Err(e) => {
                data.insert("closed_trades_statistics".into(), unavailable("the trade history", e));
            }
        }

        if let Some(ml) = &self.bots {
            match ml.active_bots(user).await {
                Ok(bots) => {
                    let list: Vec<Value> = bots
                        .iter()
                        .take(10)
                        .map(|b| {
                            json!({
                                "name": cut(&b.model.name), "symbol": b.model.symbol,
                                "timeframe": crate::ml::store::tf_name(b.model.timeframe),
                                "confidence_threshold": b.model.auto_trading.confidence_threshold,
                                "signals_today": b.today_signals,
                                "last_prediction": b.last_prediction.as_ref().map(|p| json!({
                                    "direction": p.direction, "confidence": p.confidence,
                                    "at": iso(p.created_at),
                                })),
                            })
                        })
                        .collect();
                    data.insert("active_bots".into(), Value::Array(list));
                }
                Err(e) => {
                    data.insert("active_bots".into(), unavailable("the bots", e));
                }
            }
        }

        let mut market = Vec::new();
        for s in symbols.into_iter().take(MAX_SYMBOLS) {
            match self.symbol(user, s).await {
                Ok(a) => {
                    market.push(json!({"symbol": s, "computed_summary": a.analysis.summary, "indicators": a.analysis}))
                }
                Err(super::AiError::NoData(m)) => market.push(json!({"symbol": s, "unavailable": m})),
                Err(e) => market.push(unavailable(s, e)),
            }
        }
        data.insert("market".into(), Value::Array(market));
        Value::Object(data)
    }
}
