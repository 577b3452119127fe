//! The OpenAPI description of the strategy and backtest routes ([`crate::http::openapi`]): one [`Op`] per mounted
//! method and path, next to the routes it describes ([`super::routes`]).

use serde_json::{Value, json};

use super::runs::MAX_SESSIONS_PAGE;
use crate::http::openapi::*;

const STRATEGIES: &str = "strategies";
const BACKTEST: &str = "backtest";

fn parameter() -> Value {
    object(
        json!({
            "name": string_max(64),
            "type": string(),
            "default_value": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]},
            "description": nullable(string()),
            "min": nullable(number()),
            "max": nullable(number()),
        }),
        &["name", "default_value"],
    )
}

fn rule() -> Value {
    object(
        json!({"id": string(), "condition": string_max(500), "action": string(), "description": string()}),
        &["id", "condition", "action", "description"],
    )
}

fn risk() -> Value {
    object(
        json!({
            "stop_loss_type": string(),
            "stop_loss_value": number(),
            "take_profit_type": string(),
            "take_profit_value": number(),
            "trailing_stop": nullable(any()),
            "max_position_size": number(),
            "risk_per_trade_percent": number(),
            "max_daily_loss": nullable(number()),
        }),
        &[],
    )
}

fn metrics() -> Value {
    record(json!({
        "net_profit": number(),
        "total_trades": integer(),
        "winning_trades": integer(),
        "win_rate": number(),
        "profit_factor": number(),
        "max_drawdown_pct": number(),
        "sharpe_ratio": number(),
    }))
}

fn strategy_in(required: &[&str]) -> Value {
    object(
        json!({
            "name": json!({"type": "string", "minLength": 1, "maxLength": 255}),
            "description": nullable(string_max(5_000)),
            "strategy_type": nullable(string_max(50)),
            "code": nullable(string_max(20_000)),
            "parameters": nullable(array(parameter())),
            "indicators": nullable(array(string_max(50))),
            "entry_rules": nullable(array(rule())),
            "exit_rules": nullable(array(rule())),
            "risk_management": nullable(risk()),
        }),
        required,
    )
}

fn strategy_out() -> Value {
    record(json!({
        "id": string(),
        "name": string(),
        "description": nullable(string()),
        "strategy_type": string(),
        "code": nullable(string()),
        "parameters": array(parameter()),
        "indicators": array(string()),
        "entry_rules": array(rule()),
        "exit_rules": array(rule()),
        "risk_management": nullable(risk()),
        "is_active": boolean(),
        "backtest_results": nullable(metrics()),
        "created_at": datetime(),
        "updated_at": datetime(),
    }))
}

fn legacy_in() -> Value {
    object(
        json!({
            "name": json!({"type": "string", "minLength": 1, "maxLength": 255}),
            "description": nullable(string_max(5_000)),
            "strategy_type": json!({"type": "string", "enum": ["ma_crossover", "rsi", "macd", "custom"]}),
            "config": nullable(json!({"type": "object"})),
            "is_public": boolean(),
        }),
        &["name"],
    )
}

fn legacy_out() -> Value {
    record(json!({
        "id": string(),
        "name": string(),
        "description": nullable(string()),
        "strategy_type": string(),
        "config": nullable(json!({"type": "object"})),
        "is_public": boolean(),
        "created_at": datetime(),
    }))
}

fn run_in() -> Value {
    object(
        json!({
            "strategy_id": uuid(),
            "symbol": string_max(20),
            "timeframe": string_max(8),
            "start_date": json!({"type": "string", "format": "date"}),
            "end_date": json!({"type": "string", "format": "date"}),
            "initial_balance": json!({"type": "number", "exclusiveMinimum": 0, "maximum": 1e9}),
            "commission": json!({"type": "number", "minimum": 0, "maximum": 1000}),
            "slippage": json!({"type": "number", "minimum": 0, "maximum": 1000}),
            "lot_size": json!({"type": "number", "exclusiveMinimum": 0, "maximum": 100}),
            "spread_pips": json!({"type": "number", "minimum": 0, "maximum": 1000}),
            "leverage": json!({"type": "number", "minimum": 1, "maximum": 1000}),
            "data": json!({"type": "string", "enum": ["stored", "generated"]}),
            "params": json!({"type": "object", "additionalProperties": number()}),
        }),
        &["strategy_id", "start_date", "end_date"],
    )
}

fn trade() -> Value {
    object(
        json!({
            "symbol": string(),
            "order_type": json!({"type": "string", "enum": ["BUY", "SELL"]}),
            "entry_price": nullable(number()),
            "exit_price": nullable(number()),
            "profit": nullable(number()),
            "entry_time": datetime(),
            "exit_time": datetime(),
            "exit_reason": string(),
        }),
        &["symbol", "order_type", "entry_price", "exit_price", "profit"],
    )
}

fn result_out() -> Value {
    object(
        json!({
            "session_id": string(),
            "status": string(),
            "net_profit": nullable(number()),
            "total_trades": integer(),
            "winning_trades": integer(),
            "losing_trades": integer(),
            "win_rate": nullable(number()),
            "profit_factor": nullable(number()),
            "max_drawdown_pct": nullable(number()),
            "sharpe_ratio": nullable(number()),
            "avg_win": nullable(number()),
            "avg_loss": nullable(number()),
            "trades": nullable(array(trade())),
            "equity_curve": nullable(array(nullable(number()))),
            "statistics": nullable(json!({"type": "object"})),
            "created_at": datetime(),
        }),
        &["session_id", "status", "net_profit", "total_trades", "win_rate", "created_at"],
    )
}

fn session_out() -> Value {
    object(
        json!({
            "id": string(),
            "strategy_id": string(),
            "symbol": string(),
            "timeframe": string(),
            "start_date": string(),
            "end_date": string(),
            "initial_balance": nullable(number()),
            "status": json!({"type": "string", "enum": ["queued", "running", "completed", "failed"]}),
            "progress": integer(),
            "error": nullable(string()),
            "created_at": datetime(),
            "result": nullable(result_out()),
        }),
        &["id", "strategy_id", "symbol", "timeframe", "start_date", "end_date", "status", "created_at", "result"],
    )
}

fn validation_out() -> Value {
    record(json!({"valid": boolean(), "errors": array(string())}))
}

const RULES: &str = "Rules: `condition` strings such as `RSI(14) < 30 AND CLOSE > EMA(50)` or \
    `CROSSES_ABOVE(SMA(fast), SMA(slow))` are parsed when written; a condition that does not parse is refused (422, \
    every problem with its rule, position and token). A draft may lack rules or risk management; `validate` lists \
    those too.";

/// This group's operations.
pub fn operations() -> Vec<Op> {
    let mut ops = vec![
        Op::get("/api/v1/strategies", STRATEGIES, "The caller's strategies")
            .describe("Newest first.")
            .ok(array(strategy_out())),
        Op::post("/api/v1/strategies", STRATEGIES, "Create a strategy")
            .describe(RULES)
            .body(strategy_in(&["name"]))
            .created(strategy_out()),
        Op::post("/api/v1/strategies/validate", STRATEGIES, "Validate an unsaved strategy")
            .describe("The rule builder's live check: every problem at once, nothing stored.")
            .body(strategy_in(&[]))
            .ok(validation_out()),
        Op::get("/api/v1/strategies/{id}", STRATEGIES, "One strategy").ok(strategy_out()),
        Op::put("/api/v1/strategies/{id}", STRATEGIES, "Update a strategy")
            .describe("Only the fields present (and not null) are replaced; `strategy_type` is not updatable.")
            .body(strategy_in(&[]))
            .ok(strategy_out()),
        Op::delete("/api/v1/strategies/{id}", STRATEGIES, "Delete a strategy").ok(record(json!({"deleted": string()}))),
        Op::patch("/api/v1/strategies/{id}/toggle", STRATEGIES, "Activate or deactivate a strategy")
            .body(object(json!({"is_active": boolean()}), &["is_active"]))
            .ok(strategy_out()),
        Op::post("/api/v1/strategies/{id}/validate", STRATEGIES, "Validate a stored strategy")
            .describe("The original's four messages plus every rule, parameter and risk problem.")
            .ok(validation_out()),
        Op::post("/api/v1/strategies/{id}/quick-backtest", STRATEGIES, "Backtest a strategy on recent data")
            .describe(
                "The newest `days` days (1–3650, default 30) of the stored candles of `symbol` (default EURUSD) and \
                 `timeframe` (default H1; MT5 names or 1h-style aliases); balance 10,000, 1 pip spread, 0.5 pip \
                 slippage. The metrics are cached on the strategy. 400 when no candles are stored.",
            )
            .optional_body(object(
                json!({"symbol": string_max(20), "timeframe": string_max(8), "days": integer()}),
                &[],
            ))
            .ok(metrics()),
    ];
    ops.push(
        Op::get("/api/v1/strategies/templates/{name}", STRATEGIES, "An ML strategy template")
            .describe(
                "`name`: `ml-profitable` (XAUUSD, the original's) or `ml-profitable-eurusd`; not persisted, `id` is \
                 \"template\"; other names 404.",
            )
            .ok(json!({"type": "object"})),
    );
    ops.push(
        Op::post("/api/v1/strategies/templates/{name}/clone", STRATEGIES, "Clone an ML strategy template")
            .describe("Creates the template as the caller's strategy; 400 when a strategy of its name exists already.")
            .created(strategy_out()),
    );
    ops.extend([
        Op::get("/api/v1/backtest/strategies", BACKTEST, "Strategies in the legacy shape")
            .query("include_public", boolean(), "Also every public strategy (default true)")
            .ok(array(legacy_out())),
        Op::post("/api/v1/backtest/strategies", BACKTEST, "Create a legacy strategy")
            .describe("`strategy_type` ma_crossover (`fast_period`, `slow_period`), rsi (`period`, `oversold`, `overbought`) or macd (`fast_period`, `slow_period`, `signal_period`), mapped to rule strategies.")
            .body(legacy_in())
            .created(legacy_out()),
        Op::get("/api/v1/backtest/strategies/{id}", BACKTEST, "One legacy strategy (own or public)").ok(legacy_out()),
        Op::put("/api/v1/backtest/strategies/{id}", BACKTEST, "Replace a legacy strategy").body(legacy_in()).ok(legacy_out()),
        Op::delete("/api/v1/backtest/strategies/{id}", BACKTEST, "Delete a legacy strategy")
            .ok(record(json!({"deleted": string()}))),
        Op::post("/api/v1/backtest/run", BACKTEST, "Run a backtest")
            .describe(
                "Candles from the caller's dataset of the symbol and timeframe, else the platform's; `data: \
                 generated` asks for a seeded random walk instead (labelled). 200 with the result; 202 with a queued \
                 session when the range holds more bars than the synchronous budget. Dates `YYYY-MM-DD` (400 when \
                 malformed or reversed).",
            )
            .body(run_in())
            .ok(result_out())
            .respond(202, "Queued", Some(result_out())),
        Op::get("/api/v1/backtest/sessions", BACKTEST, "The caller's backtest sessions")
            .describe("Newest first; `result` without trades and equity curve.")
            .paginated(MAX_SESSIONS_PAGE)
            .ok(array(session_out())),
        Op::get("/api/v1/backtest/sessions/{id}", BACKTEST, "One backtest session").ok(session_out()),
        Op::get("/api/v1/backtest/sessions/{id}/trades", BACKTEST, "A session's trades and equity curve")
            .query("offset", json!({"type": "integer", "minimum": 0}), "First trade")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Trades per page (default 100)")
            .ok(object(
                json!({"trades": array(trade()), "equity_curve": array(nullable(number())), "total": integer()}),
                &["trades", "equity_curve"],
            )),
        Op::get("/api/v1/backtest/sessions/{id}/chart.svg", BACKTEST, "Equity and drawdown chart (SVG)")
            .text("image/svg+xml", "The chart"),
        Op::post("/api/v1/backtest/sessions/{id}/monte-carlo", BACKTEST, "Monte Carlo on a session's trades")
            .describe("Reshuffles or resamples the trade sequence: distributions of final equity and max drawdown with confidence intervals, probability of loss and ruin, percentile bands.")
            .body(object(
                json!({
                    "simulations": json!({"type": "integer", "minimum": 1, "maximum": 10000}),
                    "method": json!({"type": "string", "enum": ["reshuffle", "bootstrap"]}),
                    "seed": integer(),
                    "ruin_pct": number(),
                }),
                &[],
            ))
            .ok(json!({"type": "object"})),
        Op::post("/api/v1/backtest/optimize", BACKTEST, "Optimize a strategy's parameters")
            .describe(
                "A run's fields plus the search: `parameters` {name: {min, max, step} | {values: [...]}}, \
                 `constraints` like `fast < slow`, `objective`, `method` grid|random, `samples`, `seed`, \
                 `min_trades`, optional `walk_forward` {in_sample_bars, out_of_sample_bars, step_bars, anchored}. \
                 Queued (202); `GET /backtest/optimize/{id}` shows progress and results.",
            )
            .body(json!({"type": "object", "required": ["strategy_id", "start_date", "end_date"]}))
            .respond(202, "Queued", Some(json!({"type": "object"}))),
        Op::get("/api/v1/backtest/optimize/{id}", BACKTEST, "An optimization's progress and results").ok(json!({"type": "object"})),
        Op::get("/api/v1/backtest/optimize/{id}/heatmap.svg", BACKTEST, "An optimization's heatmap (SVG)")
            .query("x", string_max(64), "Parameter on the x axis (default: the first)")
            .query("y", string_max(64), "Parameter on the y axis (default: the second)")
            .text("image/svg+xml", "The heatmap"),
    ]);
    ops
}
