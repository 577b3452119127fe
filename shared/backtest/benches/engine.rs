//! One backtest on the EURUSD sample (5,000 hourly bars, `../shared/data/EURUSD.csv` beside the repository or
//! `$NUSATRADE_SHARED_DATA/EURUSD.csv`; the bench says so and exits when it is absent): backtesting.py's SmaCross
//! (SMA 10/20 crossover, exclusive orders, 0.2 % commission, all-equity sizing) — signals, engine and statistics —
//! the engine alone, the statistics alone, and the whole with the bars' market figures computed once (as an
//! optimizer does). Compare with `tests/backtest/reference.py CSV --time N` (backtesting.py's own run).
//!
//! `cargo bench -p nusatrade-backtest --bench engine`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group};
use nusatrade_backtest::engine::{self, EngineConfig, Signals};
use nusatrade_backtest::rules::{self, ExternalSeries};
use nusatrade_backtest::stats;
use nusatrade_backtest::strategy::StrategySpec;
use nusatrade_ml::candles::{Columns, CsvLimits, parse_csv};
use nusatrade_ml::indicators::sma;

fn csv_path() -> PathBuf {
    let dir = std::env::var_os("NUSATRADE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    dir.join("EURUSD.csv")
}

fn load() -> Option<Columns> {
    let bytes = std::fs::read(csv_path()).ok()?;
    Some(parse_csv(&bytes, &CsvLimits::default()).expect("EURUSD.csv is valid").columns())
}

/// SMA(fast)/SMA(slow) crossover entries, as backtesting.lib.crossover decides them.
fn sma_cross(close: &[f64], fast: usize, slow: usize) -> Signals {
    let (a, b) = (sma(close, fast), sma(close, slow));
    let mut s = Signals::none(close.len());
    s.warmup = (slow.max(fast) - 1).min(close.len().saturating_sub(1));
    for i in 1..close.len() {
        if a[i - 1] < b[i - 1] && a[i] > b[i] {
            s.enter_long[i] = true;
        } else if b[i - 1] < a[i - 1] && b[i] > a[i] {
            s.enter_short[i] = true;
        }
    }
    s
}

fn benches(c: &mut Criterion) {
    let Some(bars) = load() else {
        println!("SKIPPED: {} not readable; the EURUSD sample is not beside the repository", csv_path().display());
        return;
    };
    let config = EngineConfig::backtesting_py(10_000.0, 0.002);
    let signals = sma_cross(&bars.close, 10, 20);
    let outcome = engine::run(&bars, &signals, None, &config).expect("engine run");
    println!(
        "EURUSD {} bars: {} trades, final equity {:.2}",
        bars.close.len(),
        outcome.trades.len(),
        outcome.equity[bars.close.len() - 1]
    );

    let mut g = c.benchmark_group("sma_cross_eurusd_5000");
    g.bench_function("signals_engine_stats", |b| {
        b.iter(|| {
            let s = sma_cross(black_box(&bars.close), 10, 20);
            let o = engine::run(black_box(&bars), &s, None, &config).expect("engine run");
            stats::compute(&o, &bars, &config)
        })
    });
    g.bench_function("engine", |b| b.iter(|| engine::run(black_box(&bars), &signals, None, &config)));
    g.bench_function("stats", |b| b.iter(|| stats::compute(black_box(&outcome), &bars, &config)));
    // What an optimizer pays per combination: the bars' market figures are computed once.
    let market = stats::Market::new(&bars);
    g.bench_function("signals_engine_stats_with_market", |b| {
        b.iter(|| {
            let s = sma_cross(black_box(&bars.close), 10, 20);
            let o = engine::run(black_box(&bars), &s, None, &config).expect("engine run");
            stats::compute_with(&o, &bars, &config, &market)
        })
    });
    // The platform's path: SmaCross written in the rule language (what `POST /backtest/run` compiles), and the
    // warm-cache cost of evaluating a 3-condition rule set.
    let spec: StrategySpec = serde_json::from_value(serde_json::json!({
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
    let compiled = spec.compile().expect("compiles");
    let external = ExternalSeries::new();
    g.bench_function("rule_strategy_signals_engine_stats", |b| {
        b.iter(|| {
            let s = compiled.signals_with(black_box(&bars), &external, &Default::default()).expect("signals");
            let o = engine::run(&bars, &s, None, &config).expect("engine run");
            stats::compute(&o, &bars, &config)
        })
    });
    let conds = [
        rules::parse("RSI(p) < 30 AND CLOSE > EMA(50)", &["p"]).expect("parses"),
        rules::parse("CROSSES_ABOVE(SMA(10), SMA(20))", &["p"]).expect("parses"),
        rules::parse("HOUR >= 8 AND HOUR <= 21", &["p"]).expect("parses"),
    ];
    let mut ev = rules::Evaluator::new(&bars, &external).expect("evaluator");
    let mut out = Vec::new();
    g.bench_function("rules_three_conditions_warm_cache", |b| {
        b.iter(|| ev.combine_into(black_box(&conds), &[14.0], false, &mut out).expect("evaluates"))
    });
    g.finish();
}

criterion_group!(engine_benches, benches);

fn main() {
    engine_benches();
    Criterion::default().configure_from_args().final_summary();
}
