//! The OpenAPI description of this group's routes ([`crate::http::openapi`]): one [`Op`] per mounted method and
//! path, next to the routes it describes — the orders routes ([`super::orders::routes`]) and the position-sizing
//! routes ([`super::sizing`]).

use nusatrade_domain::sizing::MAX_RISK_PERCENT;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Value, json};

use super::orders::IdempotencyKey;
use super::orders::queries::MAX_PAGE;
use super::sizing::{MAX_BALANCE, MAX_CONVERSION_RATE, MAX_LEVERAGE, MAX_PRICE, MAX_SLTP_VALUE};
use crate::http::fields::MAX_STRING;
use crate::http::openapi::*;

const TAG: &str = "trading";
/// The pip figures of trailing-stop settings and the ignored ATR/R:R knobs of an order (`MAX_PIPS` of the routes).
const MAX_PIPS: i64 = 100_000;
/// Largest `lot_size` the order body's range accepts (the instrument's volume rules are checked after: 400).
const MAX_ORDER_LOTS: i64 = 1000;

/// A decimal limit as a JSON number (an integer when it is one).
fn limit(d: Decimal) -> Value {
    match d.fract().is_zero().then(|| d.to_i64()).flatten() {
        Some(i) => json!(i),
        None => json!(d.to_f64().unwrap_or(f64::MAX)),
    }
}

/// A number `> min` (or `>= min` unless `exclusive`) and `<= max`.
fn range(min: Value, exclusive: bool, max: Value) -> Value {
    if exclusive {
        json!({"type": "number", "exclusiveMinimum": min, "maximum": max})
    } else {
        json!({"type": "number", "minimum": min, "maximum": max})
    }
}

/// `> 0`, `<= max`.
fn positive(max: Value) -> Value {
    range(json!(0), true, max)
}

/// `>= 0`, `<= max`.
fn non_negative(max: Value) -> Value {
    range(json!(0), false, max)
}

/// A symbol of the instrument catalogue (looked up leniently: case, `EUR/USD`, broker suffixes; unknown: 400).
fn symbol() -> Value {
    json!({"type": "string", "maxLength": MAX_STRING, "examples": ["EURUSD", "XAUUSD"]})
}

fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

fn side() -> Value {
    one_of(&["BUY", "SELL"])
}

fn order_status() -> Value {
    one_of(&[
        "pending",
        "open",
        "rejected",
        "unknown",
        "close_pending",
        "closed",
        "modify_pending",
        "closed_externally",
        "external",
    ])
}

fn trailing_type() -> Value {
    one_of(&["fixed_pips", "atr_based", "percentage"])
}

/// `TrailingStopSettings` as the order and trailing-stop bodies take them (every field optional; absent or null
/// keeps the default).
fn trailing_in() -> Value {
    let pips = || nullable(non_negative(json!(MAX_PIPS)));
    object(
        json!({
            "enabled": nullable(boolean()),
            "trailing_type": nullable(trailing_type()),
            "type": nullable(trailing_type()),
            "activation_pips": pips(),
            "trail_distance_pips": pips(),
            "atr_multiplier": pips(),
            "percentage": nullable(non_negative(json!(100))),
            "breakeven_enabled": nullable(boolean()),
            "breakeven_pips": pips(),
            "lock_profit_pips": pips(),
        }),
        &[],
    )
}

/// `TrailingOut`: stored trailing-stop settings (`type` and `trailing_type` carry the same value).
fn trailing_out() -> Value {
    record(json!({
        "enabled": boolean(),
        "type": trailing_type(),
        "trailing_type": trailing_type(),
        "activation_pips": number(),
        "trail_distance_pips": number(),
        "atr_multiplier": number(),
        "percentage": number(),
        "breakeven_enabled": boolean(),
        "breakeven_pips": number(),
        "lock_profit_pips": number(),
    }))
}

/// `TradeOut` (`trading/orders/views.rs`), also what the ML routes' executions answer.
pub(crate) fn trade_out() -> Value {
    record(json!({
        "id": uuid(),
        "symbol": string(),
        "trade_type": side(),
        "lot_size": number(),
        "open_price": number(),
        "close_price": nullable(number()),
        "profit": nullable(number()),
        "open_time": nullable(datetime()),
        "close_time": nullable(datetime()),
        "close_unconfirmed": boolean(),
        "stop_loss": nullable(number()),
        "take_profit": nullable(number()),
        "status": order_status(),
        "client_order_id": string(),
        "ticket": nullable(integer()),
        "connection_id": nullable(uuid()),
        "requested_price": number(),
        "source": string(),
        "error": nullable(string()),
        "created_at": datetime(),
        "updated_at": datetime(),
    }))
}

/// `PositionOut` (`trading/orders/views.rs`).
fn position_out() -> Value {
    record(json!({
        "id": uuid(),
        "symbol": string(),
        "trade_type": side(),
        "lot_size": number(),
        "open_price": number(),
        "current_price": nullable(number()),
        "profit": nullable(number()),
        "open_time": nullable(datetime()),
        "stop_loss": nullable(number()),
        "take_profit": nullable(number()),
        "status": order_status(),
        "client_order_id": string(),
        "ticket": nullable(integer()),
        "connection_id": nullable(uuid()),
        "trailing_stop": nullable(trailing_out()),
    }))
}

/// `{trade: TradeOut, mt5_execution}` (`trade_with_mt5`). `connection`: the schema of
/// `mt5_execution.connection_id`.
fn trade_with_mt5(connection: Value) -> Value {
    let mt5 = object(
        json!({
            "success": boolean(),
            "request_id": string(),
            "connection_id": connection,
            "error": string(),
            "message": string(),
        }),
        &["success", "request_id", "connection_id"],
    );
    object(json!({"trade": trade_out(), "mt5_execution": mt5}), &["trade", "mt5_execution"])
}

/// The `symbol` / `status` filters of the list routes (`limit` / `cursor` come with `.paginated`).
fn list_filters(op: Op) -> Op {
    op.query("symbol", symbol(), "Only this instrument (a catalogue symbol, e.g. EURUSD; unknown symbols answer 400)")
        .query(
            "status",
            string_max(200),
            "Comma-separated order statuses (pending, open, rejected, unknown, close_pending, closed, \
             modify_pending, closed_externally, external), case-insensitive",
        )
}

fn order_ops() -> Vec<Op> {
    let price = || positive(limit(MAX_PRICE));
    let order_in = object(
        json!({
            "symbol": symbol(),
            "order_type": side(),
            "lot_size": positive(json!(MAX_ORDER_LOTS)),
            "price": price(),
            "stop_loss": nullable(non_negative(limit(MAX_PRICE))),
            "take_profit": nullable(non_negative(limit(MAX_PRICE))),
            "connection_id": nullable(string_max(64)),
            "sl_atr_multiplier": nullable(non_negative(json!(MAX_PIPS))),
            "tp_risk_reward": nullable(non_negative(json!(MAX_PIPS))),
            "use_atr_sl": nullable(boolean()),
            "client_order_id": nullable(string_max(IdempotencyKey::MAX_LEN)),
            "trailing_stop": nullable(trailing_in()),
        }),
        &["symbol", "order_type", "lot_size", "price"],
    );
    vec![
        Op::post("/api/v1/trading/orders", TAG, "Place a market order")
            .describe(
                "Writes the order `pending` and sends it to the user's MT5 connector (`connection_id`: a broker \
                 connection UUID; default: the online one). `symbol`: 3–10 alphanumeric characters of the \
                 instrument catalogue (400 otherwise); `lot_size` must follow the instrument's volume rules (min, \
                 step, max 10 lots: 400); `price` is the client's reference price (1.0 is the dashboard's \
                 \"market\" placeholder), checked against the last reported quote; `stop_loss` / `take_profit` \
                 (0 = none) must be on the protective side of `price` (400). `sl_atr_multiplier`, \
                 `tp_risk_reward` and `use_atr_sl` are accepted and ignored. Numbers may be numeric strings. \
                 `client_order_id` (1–64 characters of `[A-Za-z0-9_.:-]`) serves as the idempotency key when no \
                 `Idempotency-Key` header is sent. 201 when the command reached the connector; 202 when delivery \
                 is uncertain (`mt5_execution.success` false, the order is reconciled); 503 when no connector is \
                 online or the command provably never left.",
            )
            .body(order_in)
            .created(trade_with_mt5(uuid()))
            .respond(
                202,
                "Accepted: the command may not have reached MT5; the order will be reconciled",
                Some(trade_with_mt5(uuid())),
            )
            .idempotent(),
        Op::get("/api/v1/trading/orders/{id}", TAG, "One order of the caller")
            .describe("`id`: the order UUID (400 when malformed, 404 when unknown or another user's).")
            .ok(trade_out()),
        Op::put("/api/v1/trading/orders/{id}/close", TAG, "Close a position")
            .describe(
                "Sends a close command for the position (`id`: the order id, which is also the position id). The \
                 optional body's `close_price` (the original's) is range-checked and ignored: the close is a \
                 market order at MT5's price. 200 when the command reached the connector (or a close is already \
                 in flight: `mt5_execution.message` says so and nothing is sent twice); 202 when delivery is \
                 uncertain; 409 when the order cannot be closed in its state.",
            )
            .optional_body(object(json!({"close_price": nullable(price())}), &[]))
            .ok(trade_with_mt5(nullable(uuid())))
            .respond(
                202,
                "Accepted: the command may not have reached MT5; the order will be reconciled",
                Some(trade_with_mt5(nullable(uuid()))),
            )
            .idempotent(),
        Op::put("/api/v1/trading/orders/{id}/modify", TAG, "Change a position's stop loss / take profit")
            .describe(
                "Sends an SL/TP modification for the open position. At least one of `stop_loss` and \
                 `take_profit` is required (422 otherwise); an omitted one keeps its current value. Both must be \
                 on the protective side of the position's current price (400). Numbers may be numeric strings. \
                 200 when the command reached the connector, 202 when delivery is uncertain, 409 while another \
                 command is in flight or the order is not open.",
            )
            .body(object(json!({"stop_loss": nullable(price()), "take_profit": nullable(price())}), &[]))
            .ok(trade_with_mt5(uuid()))
            .respond(
                202,
                "Accepted: the command may not have reached MT5; the order will be reconciled",
                Some(trade_with_mt5(uuid())),
            )
            .idempotent(),
        Op::put("/api/v1/trading/positions/{id}/trailing-stop", TAG, "Set a position's trailing-stop settings")
            .describe(
                "Stores the trailing-stop settings of an open position (`enabled` and `breakeven_enabled` both \
                 false: removes them); the trailing driver moves the stop. Every field is optional (absent or \
                 null: the default). `trailing_type` (or the original's `type`) is `fixed_pips`, `atr_based` or \
                 `percentage`. 409 when the position is not open.",
            )
            .body(trailing_in())
            .ok(position_out()),
        list_filters(
            Op::get("/api/v1/trading/positions", TAG, "Open positions")
                .describe(
                    "The caller's live positions (open, closing, modifying, adopted external), newest first, marked \
                     to the latest quote; `status` may also ask for pending / unknown orders. Default page size \
                     100.",
                )
                .ok(array(position_out()))
                .paginated(MAX_PAGE),
        ),
        list_filters(
            Op::get("/api/v1/trading/history", TAG, "Order history")
                .describe("Every order of the caller (open and closed), newest first. Default page size 100.")
                .ok(array(trade_out()))
                .paginated(MAX_PAGE),
        ),
        Op::get("/api/v1/trading/dashboard/stats", TAG, "Dashboard statistics")
            .describe(
                "Realised P/L from the closed trades, floating P/L of the live positions, balance and equity \
                 from the connectors' account reports (without any: 10 000 plus the realised P/L). `win_rate` is \
                 a percentage of the closed trades.",
            )
            .ok(record(json!({
                "balance": number(),
                "equity": number(),
                "open_positions": integer(),
                "today_pnl": number(),
                "total_pnl": number(),
                "unrealized_pnl": number(),
                "total_trades": integer(),
                "win_rate": number(),
                "has_live_connection": boolean(),
            }))),
        Op::get("/api/v1/trading/signals", TAG, "Trading signals (always empty)")
            .public()
            .describe("The original's route: always an empty list.")
            .ok(json!({"type": "array", "items": {}, "maxItems": 0})),
    ]
}

fn sizing_ops() -> Vec<Op> {
    let price = || positive(limit(MAX_PRICE));
    let sltp_value = || nullable(non_negative(limit(MAX_SLTP_VALUE)));
    let sl_type = || one_of(&["fixed_pips", "atr_based", "percentage"]);
    let tp_type = || one_of(&["fixed_pips", "risk_reward", "atr_based"]);
    let risk_profile = record(json!({
        "sl_type": sl_type(),
        "sl_value": number(),
        "tp_type": tp_type(),
        "tp_value": number(),
        "risk_per_trade_percent": number(),
        "max_position_size": number(),
        "trailing_stop": trailing_out(),
    }));
    vec![
        Op::post("/api/v1/trading/position-size/calculate", TAG, "Position size for a risk budget")
            .describe(
                "Lots for risking `risk_percent` of `account_balance` between `entry_price` and `stop_loss`, \
                 rounded down to the instrument's volume step, and the margin at `leverage` (default 100). \
                 `account_currency`: a 3-letter code (default USD); `conversion_rate`: 1 unit of the \
                 instrument's quote currency in the account currency, needed when the account currency is \
                 neither the quote nor the base currency. Numbers may be numeric strings. An unknown symbol is \
                 400; domain refusals (entry equal to the stop loss, a budget below the minimum volume, a \
                 missing rate) are 422.",
            )
            .body(object(
                json!({
                    "symbol": symbol(),
                    "account_balance": positive(limit(MAX_BALANCE)),
                    "risk_percent": positive(limit(MAX_RISK_PERCENT)),
                    "entry_price": price(),
                    "stop_loss": price(),
                    "account_currency": nullable(string_max(MAX_STRING)),
                    "conversion_rate": nullable(positive(limit(MAX_CONVERSION_RATE))),
                    "leverage": nullable(range(json!(1), false, limit(MAX_LEVERAGE))),
                }),
                &["symbol", "account_balance", "risk_percent", "entry_price", "stop_loss"],
            ))
            .ok(record(json!({
                "lot_size": number(),
                "risk_amount": number(),
                "stop_loss_pips": number(),
                "margin_required": number(),
                "symbol": string(),
                "account_currency": string(),
                "leverage": number(),
                "pip_value": number(),
                "pip_value_per_lot": number(),
                "risk_at_size": number(),
                "capped": boolean(),
            }))),
        Op::post("/api/v1/trading/calculate-sl-tp", TAG, "Stop loss and take profit for an entry")
            .describe(
                "SL/TP prices for an entry. `sl_type`: `fixed_pips`, `atr_based` (default) or `percentage`; \
                 `tp_type`: `fixed_pips`, `risk_reward` (default) or `atr_based`; `sl_value` / `tp_value` \
                 default 2; `atr` optional (without it ATR-based distances use 50 / 100 pips). Numbers may be \
                 numeric strings. An unknown symbol is 400; domain refusals are 422.",
            )
            .body(object(
                json!({
                    "symbol": symbol(),
                    "direction": side(),
                    "entry_price": price(),
                    "sl_type": nullable(sl_type()),
                    "sl_value": sltp_value(),
                    "tp_type": nullable(tp_type()),
                    "tp_value": sltp_value(),
                    "atr": nullable(non_negative(limit(MAX_PRICE))),
                }),
                &["symbol", "direction", "entry_price"],
            ))
            .ok(record(json!({
                "stop_loss": number(),
                "take_profit": number(),
                "sl_distance_pips": number(),
                "tp_distance_pips": number(),
                "risk_reward_ratio": number(),
                "symbol": string(),
            }))),
        Op::get("/api/v1/trading/risk-profiles", TAG, "The built-in risk profiles").ok(object(
            json!({"profiles": object(
                json!({
                    "conservative": risk_profile.clone(),
                    "moderate": risk_profile.clone(),
                    "aggressive": risk_profile,
                }),
                &["conservative", "moderate", "aggressive"],
            )}),
            &["profiles"],
        )),
    ]
}

/// This group's operations.
pub fn operations() -> Vec<Op> {
    let mut ops = order_ops();
    ops.extend(sizing_ops());
    ops
}
