//! A 10,000-combination grid: SMA crossover, fast 1..=100 × slow 1..=100, over the 5,000 EURUSD hourly bars
//! (`$NUSATRADE_SHARED_DATA/EURUSD.csv`, default `../shared/data` beside the repository), on every core.
//! Target: under 2 s on 2 cores. `cargo bench -p nusatrade-backtest --bench grid`.

use std::path::PathBuf;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use nusatrade_backtest::engine::{self, EngineConfig};
use nusatrade_backtest::optimize::{
    Backtest, Control, FnEvaluator, Objective, OptimizeSettings, ParamRange, ParamSpace, ParamSpec, Plan, SpaceSpec,
    optimize,
};
use nusatrade_backtest::rules::ExternalSeries;
use nusatrade_backtest::stats::{self, Stats};
use nusatrade_backtest::strategy::{CompiledStrategy, ParamValues, StrategySpec};
use nusatrade_ml::candles::{Columns, CsvLimits, parse_csv};

fn bars() -> Columns {
    let dir = std::env::var_os("NUSATRADE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let path = dir.join("EURUSD.csv");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (set NUSATRADE_SHARED_DATA)", path.display()));
    parse_csv(&bytes, &CsvLimits::default()).expect("EURUSD.csv parses").columns()
}

fn sma_cross() -> CompiledStrategy {
    let spec: StrategySpec = serde_json::from_str(
        r#"{
            "name": "SMA cross",
            "parameters": [
                {"name": "fast", "type": "integer", "default_value": 10},
                {"name": "slow", "type": "integer", "default_value": 20}
            ],
            "entry_rules": [
                {"id": "long", "condition": "CROSSES_ABOVE(SMA(fast), SMA(slow))", "action": "BUY", "description": ""},
                {"id": "short", "condition": "CROSSES_BELOW(SMA(fast), SMA(slow))", "action": "SELL", "description": ""}
            ],
            "exit_rules": [
                {"id": "xl", "condition": "CROSSES_BELOW(SMA(fast), SMA(slow))", "action": "CLOSE_LONG", "description": ""},
                {"id": "xs", "condition": "CROSSES_ABOVE(SMA(fast), SMA(slow))", "action": "CLOSE_SHORT", "description": ""}
            ],
            "risk_management": {"stop_loss_type": "none", "take_profit_type": "none"}
        }"#,
    )
    .expect("strategy JSON");
    spec.compile().unwrap_or_else(|p| panic!("strategy does not compile: {p:?}"))
}

fn config() -> EngineConfig {
    EngineConfig::backtesting_py(10_000.0, 0.002)
}

fn grid(c: &mut Criterion) {
    let bars = bars();
    let strategy = sma_cross();
    let config = config();
    let external = ExternalSeries::new();
    let axis =
        |name: &str| ParamSpec { name: name.into(), range: ParamRange::Range { min: 1.0, max: 100.0, step: 1.0 } };
    let space =
        ParamSpace::new(&SpaceSpec { params: vec![axis("fast"), axis("slow")], constraints: vec![] }).expect("space");
    let plan = Plan::grid(space).expect("plan");
    let eval = Backtest { bars: &bars, strategy: &strategy, external: &external, instrument: None, config: &config };
    let settings = OptimizeSettings { objective: Objective::SharpeRatio, min_trades: 1, top_n: 20, heatmap: None };
    let control = Control::default();

    let start = Instant::now();
    let result = optimize(&plan, &eval, &settings, &control).expect("optimize");
    eprintln!(
        "{} bars, {} combinations: {} evaluated, {} failed in {:.2?}; best {:?} sharpe {:.3}",
        bars.close.len(),
        result.total,
        result.evaluated,
        result.failed,
        start.elapsed(),
        result.best[0].params,
        result.best[0].objective
    );

    let mut group = c.benchmark_group("optimize");
    group.sample_size(10);
    group.bench_function("sma_cross_100x100_eurusd_5000", |b| {
        b.iter(|| optimize(&plan, &eval, &settings, &control).expect("optimize"))
    });

    // Where the time of one combination goes (one thread): signals with a warm indicator cache (the optimizer's
    // case), the engine, the statistics, and the optimizer's own overhead around a trivial evaluation.
    let params = [("fast".to_string(), 42.0), ("slow".to_string(), 100.0)].into_iter().collect();
    let mut cached = strategy.evaluator(&bars, &external).expect("evaluator");
    let signals = cached.signals(&params).expect("signals");
    group.sample_size(50);
    group.bench_function("phase/signals_cached", |b| b.iter(|| cached.signals(&params).expect("signals")));
    group.bench_function("phase/signals_fresh", |b| b.iter(|| strategy.signals(&bars, &params)));
    let outcome = engine::run(&bars, &signals, None, &config).expect("run");
    group.bench_function("phase/engine_run", |b| b.iter(|| engine::run(&bars, &signals, None, &config).expect("run")));
    group.bench_function("phase/stats_compute", |b| b.iter(|| stats::compute(&outcome, &bars, &config)));
    let trivial = FnEvaluator(|_: &ParamValues| Ok(Stats { trades: 1, ..Stats::default() }));
    group.sample_size(10);
    group.bench_function("phase/optimizer_overhead_10000", |b| {
        b.iter(|| optimize(&plan, &trivial, &settings, &control).expect("optimize"))
    });
    group.finish();
}

criterion_group!(benches, grid);
criterion_main!(benches);
