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

fn strategy_request() -> Value {
    object(
        json!({
            "prompt": json!({"type": "string", "minLength": 1, "maxLength": 4000}),
            "symbol": string_max(20),
            "timeframe": string_max(8),
            "risk_profile": json!({"type": "string", "enum": ["conservative", "moderate", "aggressive"]}),
            "preferred_indicators": nullable(array(string_max(50))),
        }),
        &["prompt"],
    )
}

fn strategy_response() -> Value {
    object(
        json!({
            "strategy": json!({"type": "object"}),
            "explanation": string(),
            "warnings": array(string()),
            "suggested_improvements": array(string()),
            "computed": boolean(),
            "model": nullable(string()),
            "tokens_used": integer(),
        }),
        &["strategy", "explanation", "warnings", "suggested_improvements"],
    )
}

/// This group's operations.
pub fn operations() -> Vec<Op> {
    vec![
        Op::post("/api/v1/ai/chat", TAG, "Chat with the AI supervisor")
            .describe(
                "With a language model configured (admin settings or environment) the model answers, grounded in the \
                 caller's own positions, account, trades, bots and the analysis of the symbols in question, with the \
                 conversation's newest 20 messages; `tokens_used` is the provider's count, `model` names it. If the \
                 model fails (timeout, error, garbage) or none is configured, the reply is computed from the caller's \
                 data by what the message asks about (a symbol's analysis, open positions, account, performance, the \
                 market overview) — `computed` true, `model_error` says why when a model failed. A new conversation \
                 takes the message (cut to 50 characters) as its title; an unknown or foreign `conversation_id` is \
                 404. At most 4,000 characters; 429 with `Retry-After` once the caller's daily token budget is used.",
            )
            .body(object(
                json!({
                    "message": json!({"type": "string", "minLength": 1, "maxLength": 4000}),
                    "conversation_id": nullable(uuid()),
                    "context_type": nullable(string_max(50)),
                }),
                &["message"],
            ))
            .ok(object(
                json!({"reply": string(), "conversation_id": uuid(), "tokens_used": integer(), "computed": boolean(),
                       "model": string(), "model_error": string()}),
                &["reply", "conversation_id", "tokens_used"],
            )),
        Op::get("/api/v1/ai/conversations", TAG, "The caller's conversations")
            .describe("Newest first.")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 100}), "How many (default 20)")
            .ok(array(record(
                json!({"id": uuid(), "title": string(), "created_at": datetime(), "message_count": integer()}),
            ))),
        Op::get("/api/v1/ai/conversations/{id}", TAG, "A conversation's messages")
            .describe("Oldest first.")
            .ok(array(record(json!({
                "role": json!({"type": "string", "enum": ["user", "assistant"]}),
                "content": string(),
                "created_at": datetime(),
            })))),
        Op::delete("/api/v1/ai/conversations/{id}", TAG, "Delete a conversation and its messages")
            .ok(record(json!({"deleted": string()}))),
        Op::post("/api/v1/ai/generate-strategy", TAG, "Generate a strategy")
            .describe(
                "With a language model: its strategy, parsed and validated exactly as POST /strategies does (one repair \
                 round with the validator's messages when invalid), risk per trade capped by `risk_profile` (1/2/3 %). \
                 Without one, or when the model fails or stays invalid: the documented fallback strategy (RSI(14) + EMA \
                 9/21 crossover, ATR stop, reward:risk target, trailing and breakeven by `risk_profile`), with warnings \
                 that say why (`computed` true). Save it with POST /strategies and backtest it. 429 once the daily \
                 token budget is used.",
            )
            .body(strategy_request())
            .ok(strategy_response()),
        Op::post("/api/v1/ai/generate-strategy-stream", TAG, "Generate a strategy (Server-Sent Events)")
            .describe(
                "`text/event-stream`: `progress` events (`{status}`, and `{status, received_chars}` while the model's \
                 answer streams in), `keepalive` (`{count, message}`) every 5 s, then `result` (the same object as \
                 /ai/generate-strategy) or `error` (`{error}`); frames are `event: <name>` / `data: <json>`. Bad input \
                 is answered before the stream, with its status. In AWS this route is served by a function URL with \
                 response streaming behind the same CloudFront distribution (API Gateway would buffer it).",
            )
            .body(strategy_request())
            .events(
                "The events",
                object(
                    json!({
                        "event": json!({"type": "string", "enum": ["progress", "keepalive", "result", "error"]}),
                        "data": string(),
                    }),
                    &["event", "data"],
                ),
            ),
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
