//! The JSON shapes of strategies and backtests (contract §2.5, §2.7).

use nusatrade_backtest::strategy::StrategySpec;
use serde_json::{Value, json};

use crate::backtest::runs::{ANSWER_EQUITY, ANSWER_TRADES, RunResult, SessionView, stats_view};
use crate::backtest::store::{SessionRecord, StrategyRecord};
use crate::wire::iso;

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `StrategyResponse`.
pub fn strategy_view(r: &StrategyRecord) -> Value {
    json!({
        "id": r.id.to_string(),
        "name": r.name,
        "description": r.description,
        "strategy_type": r.strategy_type,
        "code": r.code,
        "parameters": to_json(&r.parameters),
        "indicators": r.indicators,
        "entry_rules": to_json(&r.entry_rules),
        "exit_rules": to_json(&r.exit_rules),
        "risk_management": r.risk_management.as_ref().map(to_json),
        "is_active": r.is_active,
        "backtest_results": r.backtest_results.as_ref().map(to_json),
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    })
}

/// A strategy that is not (yet) a stored record — a template, an AI-generated draft — in the `StrategyResponse`
/// shape: the spec's fields under `id`, plus `extra`'s.
pub(crate) fn spec_view(id: &str, spec: &StrategySpec, extra: Value) -> Value {
    let mut view = json!({
        "id": id,
        "name": spec.name,
        "description": spec.description,
        "strategy_type": spec.strategy_type,
        "code": Value::Null,
        "parameters": to_json(&spec.parameters),
        "indicators": spec.indicators,
        "entry_rules": to_json(&spec.entry_rules),
        "exit_rules": to_json(&spec.exit_rules),
        "risk_management": spec.risk_management.as_ref().map(to_json),
    });
    if let (Value::Object(fields), Value::Object(more)) = (&mut view, extra) {
        fields.extend(more);
    }
    view
}

/// The template (not persisted): `id` is `"template"`.
pub fn template_view(spec: &StrategySpec, config: &Value) -> Value {
    let now = iso(chrono::Utc::now());
    spec_view(
        "template",
        spec,
        json!({
            "config": config,
            "is_active": false,
            "backtest_results": Value::Null,
            "created_at": now,
            "updated_at": now,
        }),
    )
}

/// `BTStrategyResponse`.
pub fn legacy_view(r: &StrategyRecord) -> Value {
    json!({
        "id": r.id.to_string(),
        "name": r.name,
        "description": r.description,
        "strategy_type": r.strategy_type,
        "config": r.config,
        "is_public": r.is_public,
        "created_at": iso(r.created_at),
    })
}

fn finite(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// `{symbol, order_type, entry_price, exit_price, profit}` plus the engine's detail of each trade.
pub fn trade_view(symbol: &str, t: &nusatrade_backtest::engine::Trade) -> Value {
    json!({
        "symbol": symbol,
        "order_type": match t.side { nusatrade_domain::money::Side::Buy => "BUY", nusatrade_domain::money::Side::Sell => "SELL" },
        "entry_price": finite(t.entry_price),
        "exit_price": finite(t.exit_price),
        "profit": finite(t.pnl),
        "entry_time": iso(t.entry_time),
        "exit_time": iso(t.exit_time),
        "units": finite(t.units),
        "lots": t.lots.map(|l| json!(rust_decimal::prelude::ToPrimitive::to_f64(&l))),
        "commission": finite(t.commission),
        "return_pct": finite(t.return_pct * 100.0),
        "mae": finite(t.mae),
        "mfe": finite(t.mfe),
        "exit_reason": to_json(&t.exit_reason),
    })
}

/// `BacktestResultResponse` (`with_detail`: trades ≤ 50 and the last 100 equity points; else both null, as the
/// original's session list). Zero-valued statistics stay 0 (the original turned them into null).
pub fn result_view(session: &SessionRecord, result: Option<&RunResult>, with_detail: bool) -> Value {
    let s = session.stats.clone().unwrap_or_default();
    let (trades, equity) = match (with_detail, result) {
        (true, Some(r)) => (
            Value::Array(
                r.trades.iter().take(ANSWER_TRADES).map(|t| trade_view(&session.settings.symbol, t)).collect(),
            ),
            Value::Array(r.equity[r.equity.len().saturating_sub(ANSWER_EQUITY)..].iter().map(|v| finite(*v)).collect()),
        ),
        (true, None) => (json!([]), json!([])),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "session_id": session.id.to_string(),
        "status": session.status.as_str(),
        "net_profit": finite(s.net_profit),
        "total_trades": s.trades,
        "winning_trades": s.winning_trades,
        "losing_trades": s.losing_trades,
        "win_rate": finite(s.win_rate_pct),
        "profit_factor": finite(s.profit_factor),
        "max_drawdown_pct": finite(s.max_drawdown_pct.abs()),
        "sharpe_ratio": finite(s.sharpe_ratio),
        "avg_win": finite(s.avg_win),
        "avg_loss": finite(s.avg_loss.abs()),
        "trades": trades,
        "equity_curve": equity,
        "statistics": session.stats.as_ref().map(stats_view),
        "bars": session.bars,
        "data": if session.generated_data { "generated" } else { "stored" },
        "error": session.error,
        "created_at": iso(session.created_at),
    })
}

/// `SessionResponse` (`result` null until completed).
pub fn session_view(view: &SessionView, with_detail: bool) -> Value {
    let s = &view.session;
    let result = s.stats.as_ref().map(|_| result_view(s, view.result.as_ref(), with_detail));
    json!({
        "id": s.id.to_string(),
        "strategy_id": s.settings.strategy_id.to_string(),
        "symbol": s.settings.symbol,
        "timeframe": s.settings.timeframe,
        "start_date": s.settings.start_date.to_string(),
        "end_date": s.settings.end_date.to_string(),
        "initial_balance": finite(s.settings.initial_balance),
        "status": s.status.as_str(),
        "progress": s.progress,
        "error": s.error,
        "data": if s.generated_data { "generated" } else { "stored" },
        "created_at": iso(s.created_at),
        "completed_at": s.completed_at.map(iso),
        "result": result,
    })
}
