//! The engine and statistics against backtesting.py 0.6.6, trade for trade, on the EURUSD sample.
//!
//! `tests/backtest/reference.py` runs backtesting.py's SmaCross (SMA 10/20 crossover, `position.close()` then
//! `buy()`/`sell()`) with cash 10 000, commission 0.2 %, margin 1 and `exclusive_orders=True`, and prints every
//! trade, every statistic and the equity curve; this test builds the same signals with
//! `nusatrade_ml::indicators::sma`, runs the engine in backtesting.py's configuration and compares: entry/exit
//! bar, price and time and size exactly, P/L, return and commission of every trade, every equity value and every
//! statistic to 1e-9 relative (counts and durations exactly).
//!
//! Needs the EURUSD sample (`$NUSATRADE_SHARED_DATA/EURUSD.csv`, default `../shared/data` beside the repository)
//! and the test tools venv with backtesting==0.6.6 (`$NUSATRADE_VENV`, default
//! `${XDG_CACHE_HOME:-~/.cache}/nusatrade/venv`, created by `tests/run.sh`). Either missing is a failure, never a
//! silent pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use nusatrade_backtest::engine::{self, EngineConfig, Signals};
use nusatrade_backtest::stats::{self, Stats};
use nusatrade_ml::candles::{Columns, CsvLimits, parse_csv};
use nusatrade_ml::indicators::sma;
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn csv_path() -> PathBuf {
    let dir = std::env::var_os("NUSATRADE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest().join("../../../shared/data"));
    dir.join("EURUSD.csv")
}

fn venv_python() -> PathBuf {
    let venv = match std::env::var_os("NUSATRADE_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                .expect("neither XDG_CACHE_HOME nor HOME is set: cannot locate the test tools venv");
            cache.join("nusatrade/venv")
        }
    };
    venv.join("bin/python")
}

fn bars(path: &Path) -> Columns {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. The EURUSD sample must be beside the repository (../shared/data) or in \
             $NUSATRADE_SHARED_DATA",
            path.display()
        )
    });
    parse_csv(&bytes, &CsvLimits::default()).expect("EURUSD.csv is valid").columns()
}

/// backtesting.lib.crossover at bar i: `a[i-1] < b[i-1] and a[i] > b[i]` (false while either is undefined).
fn crossover(a: &[f64], b: &[f64], i: usize) -> bool {
    i >= 1 && a[i - 1] < b[i - 1] && a[i] > b[i]
}

/// SmaCross: on a crossover up `position.close(); buy()`, down `position.close(); sell()` — with exclusive
/// orders, an entry each way. backtesting.py calls `next()` from bar `warmup + 1` on, where `warmup` is the
/// first bar at which every indicator is defined (19 for the SMA(20)); the crossover needs two defined values, so
/// it cannot fire earlier anyway.
fn sma_cross(close: &[f64], fast: usize, slow: usize) -> Signals {
    let (a, b) = (sma(close, fast), sma(close, slow));
    let warmup = fast.max(slow) - 1;
    let mut s = Signals::none(close.len());
    s.warmup = warmup.min(close.len().saturating_sub(1));
    for i in warmup + 1..close.len() {
        if crossover(&a, &b, i) {
            s.enter_long[i] = true;
        } else if crossover(&b, &a, i) {
            s.enter_short[i] = true;
        }
    }
    s
}

/// SmaCross written in the rule language and compiled as the API compiles strategies (an exit rule that never
/// fires: every exit is the opposite entry, as with `exclusive_orders`).
fn rule_sma_cross(bars: &Columns) -> Signals {
    let spec: nusatrade_backtest::strategy::StrategySpec = serde_json::from_value(serde_json::json!({
        "name": "SmaCross",
        "parameters": [{"name": "n1", "default_value": 10}, {"name": "n2", "default_value": 20}],
        "entry_rules": [
            {"id": "up", "condition": "CROSSES_ABOVE(SMA(n1), SMA(n2))", "action": "BUY", "description": ""},
            {"id": "down", "condition": "CROSSES_BELOW(SMA(n1), SMA(n2))", "action": "SELL", "description": ""}
        ],
        "exit_rules": [{"id": "never", "condition": "CLOSE < 0", "action": "CLOSE", "description": ""}],
        "risk_management": {"stop_loss_type": "none", "take_profit_type": "none"}
    }))
    .expect("strategy JSON");
    let compiled = spec.compile().expect("SmaCross compiles");
    compiled.signals_with(bars, &Default::default(), &Default::default()).expect("signals")
}

fn backtesting_py_config() -> EngineConfig {
    EngineConfig::backtesting_py(10_000.0, 0.002)
}

fn reference(python: &Path, csv: &Path) -> Value {
    let version = Command::new(python)
        .args(["-c", "import backtesting; print(backtesting.__version__)"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}. Create the test tools venv with tests/run.sh (it installs \
                 tests/lambda/requirements.txt, backtesting==0.6.6 included) or point NUSATRADE_VENV at one",
                python.display()
            )
        });
    assert!(
        version.status.success(),
        "backtesting.py is not installed in {}: {}. Re-create the venv with tests/run.sh",
        python.display(),
        String::from_utf8_lossy(&version.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "0.6.6",
        "the venv's backtesting.py is not the pinned 0.6.6: re-create it with tests/run.sh"
    );
    let script = manifest().join("../../tests/backtest/reference.py");
    let out = Command::new(python).arg(&script).arg(csv).output().expect("run reference.py");
    assert!(out.status.success(), "reference.py failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reference.py prints JSON")
}

/// A JSON number of reference.py: a number, null (NaN) or "inf"/"-inf".
fn num(v: &Value) -> f64 {
    match v {
        Value::Null => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => other.as_f64().unwrap_or_else(|| panic!("not a number: {other}")),
    }
}

/// Relative difference (0 for equal values, NaN and infinities included; infinite when they disagree).
fn relative(got: f64, want: f64) -> f64 {
    if got == want || (got.is_nan() && want.is_nan()) {
        0.0
    } else if got.is_finite() && want.is_finite() {
        (got - want).abs() / got.abs().max(want.abs())
    } else {
        f64::INFINITY
    }
}

fn stat_table(s: &Stats) -> Vec<(&'static str, f64, bool)> {
    let ts = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or(f64::NAN, |t| t.timestamp() as f64);
    // (backtesting.py's name, our value, exact)
    vec![
        ("Start", ts(s.start), true),
        ("End", ts(s.end), true),
        ("Duration", s.duration_secs as f64, true),
        ("Exposure Time [%]", s.exposure_time_pct, false),
        ("Equity Final [$]", s.equity_final, false),
        ("Equity Peak [$]", s.equity_peak, false),
        ("Commissions [$]", s.commissions, false),
        ("Return [%]", s.return_pct, false),
        ("Buy & Hold Return [%]", s.buy_hold_return_pct, false),
        ("Return (Ann.) [%]", s.return_ann_pct, false),
        ("Volatility (Ann.) [%]", s.volatility_ann_pct, false),
        ("CAGR [%]", s.cagr_pct, false),
        ("Sharpe Ratio", s.sharpe_ratio, false),
        ("Sortino Ratio", s.sortino_ratio, false),
        ("Calmar Ratio", s.calmar_ratio, false),
        ("Alpha [%]", s.alpha_pct, false),
        ("Beta", s.beta, false),
        ("Max. Drawdown [%]", s.max_drawdown_pct, false),
        ("Avg. Drawdown [%]", s.avg_drawdown_pct, false),
        ("Max. Drawdown Duration", s.max_drawdown_duration_secs as f64, true),
        ("Avg. Drawdown Duration", s.avg_drawdown_duration_secs as f64, true),
        ("# Trades", s.trades as f64, true),
        ("Win Rate [%]", s.win_rate_pct, false),
        ("Best Trade [%]", s.best_trade_pct, false),
        ("Worst Trade [%]", s.worst_trade_pct, false),
        ("Avg. Trade [%]", s.avg_trade_pct, false),
        ("Max. Trade Duration", s.max_trade_duration_secs as f64, true),
        ("Avg. Trade Duration", s.avg_trade_duration_secs as f64, true),
        ("Profit Factor", s.profit_factor, false),
        ("Expectancy [%]", s.expectancy_pct, false),
        ("SQN", s.sqn, false),
        ("Kelly Criterion", s.kelly_criterion, false),
    ]
}

#[test]
fn engine_and_stats_match_backtesting_py_trade_for_trade() {
    let csv = csv_path();
    let bars = bars(&csv);
    let python = venv_python();
    let reference = reference(&python, &csv);

    let config = backtesting_py_config();
    // The platform's rule strategy decides exactly as SmaCross (entries and warm-up); its signals drive the engine.
    let signals = rule_sma_cross(&bars);
    assert_eq!(signals, sma_cross(&bars.close, 10, 20), "CROSSES_ABOVE/BELOW(SMA(fast), SMA(slow)) is SmaCross");
    let outcome = engine::run(&bars, &signals, None, &config).expect("engine run");
    let stats = stats::compute(&outcome, &bars, &config);
    let mut worst = (0.0_f64, String::new());
    let mut close_enough = |got: f64, want: f64, what: &dyn Fn() -> String| {
        let r = relative(got, want);
        if r > worst.0 {
            worst = (r, what());
        }
        r <= TOLERANCE
    };

    // Every trade.
    let want = reference["trades"].as_array().expect("trades");
    assert!(want.len() > 100, "the reference run has {} trades: not a meaningful comparison", want.len());
    assert_eq!(outcome.trades.len(), want.len(), "trade count");
    for (k, (got, w)) in outcome.trades.iter().zip(want).enumerate() {
        let size = num(&w["size"]);
        let signed = if got.side == nusatrade_domain::money::Side::Buy { got.units } else { -got.units };
        assert_eq!(signed, size, "trade {k}: size");
        assert_eq!(got.entry_bar as f64, num(&w["entry_bar"]), "trade {k}: entry bar");
        assert_eq!(got.exit_bar as f64, num(&w["exit_bar"]), "trade {k}: exit bar");
        assert_eq!(got.entry_price, num(&w["entry_price"]), "trade {k}: entry price");
        assert_eq!(got.exit_price, num(&w["exit_price"]), "trade {k}: exit price");
        assert_eq!(got.entry_time.timestamp() as f64, num(&w["entry_time"]), "trade {k}: entry time");
        assert_eq!(got.exit_time.timestamp() as f64, num(&w["exit_time"]), "trade {k}: exit time");
        for (name, value) in [("pnl", got.pnl), ("return_pct", got.return_pct), ("commission", got.commission)] {
            let w = num(&w[name]);
            let ok = close_enough(value, w, &|| format!("trade {k} {name}"));
            assert!(ok, "trade {k}: {name} {value} vs backtesting.py {w}");
        }
    }

    // The equity curve.
    let want = reference["equity"].as_array().expect("equity");
    assert_eq!(outcome.equity.len(), want.len(), "equity length");
    for (i, (got, w)) in outcome.equity.iter().zip(want).enumerate() {
        let ok = close_enough(*got, num(w), &|| format!("equity at bar {i}"));
        assert!(ok, "equity at bar {i}: {got} vs backtesting.py {}", num(w));
    }

    // Every statistic.
    let want = reference["stats"].as_object().expect("stats");
    let table = stat_table(&stats);
    let mut missing: Vec<&String> = want.keys().filter(|k| !table.iter().any(|(name, _, _)| name == k)).collect();
    missing.sort();
    assert!(missing.is_empty(), "statistics of backtesting.py not compared: {missing:?}");
    for (name, got, exact) in table {
        let w = num(want.get(name).unwrap_or_else(|| panic!("backtesting.py has no {name}")));
        let ok = if exact { got == w } else { close_enough(got, w, &|| name.to_string()) };
        assert!(ok, "{name}: {got} vs backtesting.py {w}");
    }
    eprintln!(
        "{} trades, {} bars, {} statistics compared; largest relative difference {:e} ({})",
        outcome.trades.len(),
        outcome.equity.len(),
        want.len(),
        worst.0,
        if worst.1.is_empty() { "everything bit-identical" } else { &worst.1 }
    );
}
