//! The OpenAPI description of the AI supervisor's routes ([`crate::http::openapi`]), next to [`super::routes`].

use serde_json::{Value, json};

use crate::http::openapi::*;

const TAG: &str = "ai";

fn symbol_out() -> Value {
    object(
        json!({
            "symbol": string(),
            "timeframe": string(),
            "analysis": string(),
            "generated_at": datetime(),
            "computed": boolean(),
            "details": json!({"type": "object"}),
        }),
        &["symbol", "analysis", "generated_at", "computed"],
    )
}

/// This group's operations.
pub fn operations() -> Vec<Op> {
    vec![
        Op::get("/api/v1/ai/analysis/daily", TAG, "Daily market overview")
            .describe(
                "Computed from the stored hourly candles of the caller's symbols (else the platform's), labelled as \
                 computed: trend, RSI regime, volatility, ranges per symbol and the overview.",
            )
            .ok(object(
                json!({"summary": string(), "generated_at": datetime(), "computed": boolean(), "symbols": array(symbol_out())}),
                &["summary", "generated_at", "computed"],
            )),
        Op::get("/api/v1/ai/analysis/{symbol}", TAG, "Analysis of one symbol")
            .describe(
                "Trend (EMA 20/50, SMA 200), RSI(14) regime, ATR(14) volatility regime, MACD, Bollinger position and \
                 recent ranges of the newest stored hourly candles; every number from the indicator library. 400 for \
                 an unknown symbol or when no candles are stored.",
            )
            .ok(symbol_out()),
        Op::get("/api/v1/ai/recommendations", TAG, "Recommendations from the caller's trading")
            .describe(
                "A review of the last 50 closed trades: win rate, P/L, average win and loss, profit factor (null \
                 without losing trades — the original divided by zero there), style, sessions, streaks, per symbol, \
                 and rule-based advice quoting those numbers.",
            )
            .ok(object(
                json!({
                    "recommendations": string(),
                    "trade_stats": object(json!({"total_trades": integer(), "win_rate": number(), "total_pnl": number()}),
                        &["total_trades", "win_rate", "total_pnl"]),
                    "trading_style": json!({"type": "string", "enum": ["new_trader", "scalper", "day_trader", "swing_trader"]}),
                    "avg_trade_duration_hours": number(),
                    "session_preferences": object(json!({"asian": integer(), "london": integer(), "new_york": integer()}),
                        &["asian", "london", "new_york"]),
                    "generated_at": datetime(),
                    "computed": boolean(),
                    "review": json!({"type": "object"}),
                }),
                &["recommendations", "trade_stats", "trading_style", "avg_trade_duration_hours", "session_preferences", "generated_at"],
            )),
    ]
}
