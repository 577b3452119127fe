//! `nusatrade backtest` and `nusatrade optimize`: the platform's engine on a laptop, no server needed. The strategy
//! is a JSON file in the API's shape (a rule strategy of `POST /strategies`, or a legacy `{"strategy_type":
//! "ma_crossover", "config": {...}}`) or a stored one (`--strategy-id`, read from `--data-dir`); the candles a CSV
//! file or the data dir's dataset of the symbol and timeframe. The same code as the `backtest` Lambda runs it
//! (`nusatrade_app::backtest::runs::simulate`), so the numbers are the API's. Statistics go to stdout (a table,
//! or `--json`); the chart to `--chart FILE.svg`; progress to stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nusatrade_app::backtest::optimize::OptimizeRequest;
use nusatrade_app::backtest::runs::{RunResult, simulate};
use nusatrade_app::backtest::store::{RunSettings, StrategyRecord};
use nusatrade_app::ml::datasets::Datasets;
use nusatrade_app::ml::store::Owner;
use nusatrade_app::ports::{Clock, ItemStore, Scan, SystemClock};
use nusatrade_backtest::chart::{self, ChartOptions};
use nusatrade_backtest::optimize::{
    self as opt, Backtest, Control, Objective, OptimizeResult, ParamRange, WalkForwardConfig, WalkForwardReport,
};
use nusatrade_backtest::rules::ExternalSeries;
use nusatrade_backtest::stats::Stats;
use nusatrade_backtest::strategy::{self, StrategySpec, parse_timeframe};
use nusatrade_ml::CandleSeries;
use nusatrade_ml::candles::{CsvLimits, parse_csv, range};
use serde_json::Value;

use crate::adapters::{EmbeddedStore, FileBlobStore};
use crate::platform::{BLOBS_DIR, STORE_FILE};

/// Where the strategy and the candles come from, and the run's settings (shared by both commands).
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Strategy file (JSON): a rule strategy in the API's shape, or a legacy {"strategy_type", "config"}.
    #[arg(long, conflicts_with = "strategy_id", required_unless_present = "strategy_id")]
    pub strategy: Option<PathBuf>,
    /// A strategy stored in --data-dir (any user's).
    #[arg(long)]
    pub strategy_id: Option<uuid::Uuid>,
    /// Candle CSV (time,open,high,low,close[,volume]; backtesting.py's files work as they are).
    #[arg(long, conflicts_with = "data_dir_dataset")]
    pub csv: Option<PathBuf>,
    /// Read the candles from the data dir's dataset of --symbol and --timeframe (the user's, else the platform's).
    #[arg(long = "dataset", id = "data_dir_dataset")]
    pub dataset: bool,
    /// Data directory (stored strategies and datasets; stop `nusatrade serve` on it first: the store is locked).
    #[arg(long, env = "NUSATRADE_DATA_DIR", default_value = "./.nusatrade")]
    pub data_dir: PathBuf,
    /// Instrument (contract size, pips, P/L conversion).
    #[arg(long, default_value = "EURUSD")]
    pub symbol: String,
    /// Timeframe of the candles (MT5 names or 1h-style aliases).
    #[arg(long, default_value = "H1")]
    pub timeframe: String,
    /// First day (YYYY-MM-DD); default: the data's first.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last day (YYYY-MM-DD), included; default: the data's last.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Starting balance (USD).
    #[arg(long, default_value_t = 10_000.0)]
    pub balance: f64,
    /// Commission per lot per side (USD).
    #[arg(long, default_value_t = 0.0)]
    pub commission: f64,
    /// Spread in pips.
    #[arg(long, default_value_t = 1.0)]
    pub spread_pips: f64,
    /// Slippage in price units against every fill.
    #[arg(long, default_value_t = 0.0)]
    pub slippage: f64,
    /// Lots per trade when the strategy sizes by a fixed size.
    #[arg(long, default_value_t = 0.1)]
    pub lot_size: f64,
    /// Leverage.
    #[arg(long, default_value_t = 100.0)]
    pub leverage: f64,
    /// A parameter value: NAME=VALUE (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, f64)>,
}

#[derive(clap::Args, Debug)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Print the statistics as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the equity and drawdown chart (SVG) here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Write every trade (CSV) here.
    #[arg(long)]
    pub trades: Option<PathBuf>,
}

fn parse_param(s: &str) -> Result<(String, f64), String> {
    let (name, value) = s.split_once('=').ok_or("expected NAME=VALUE")?;
    let v: f64 = value.trim().parse().map_err(|_| format!("{value:?} is not a number"))?;
    if !v.is_finite() {
        return Err("not a finite number".into());
    }
    Ok((name.trim().to_owned(), v))
}

/// A strategy file: a rule strategy, or a legacy type with its config.
pub fn read_strategy(path: &Path) -> anyhow::Result<StrategySpec> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.len() > 1 << 20 {
        bail!("{} is larger than 1 MiB", path.display());
    }
    let v: Value = serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if v.get("entry_rules").is_some() {
        return serde_json::from_value(v).with_context(|| format!("{} is not a strategy", path.display()));
    }
    let kind = v.get("strategy_type").and_then(Value::as_str).unwrap_or("ma_crossover");
    let config = v.get("config").cloned().unwrap_or(Value::Object(Default::default()));
    strategy::legacy_strategy(kind, &config).map_err(|p| anyhow::anyhow!("{}: {p}", path.display()))
}

/// The data dir's store, blobs and a clock.
type DataDir = (Arc<dyn ItemStore>, Arc<FileBlobStore>, Arc<dyn Clock>);

fn open_store(data_dir: &Path) -> anyhow::Result<DataDir> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = EmbeddedStore::open(&data_dir.join(STORE_FILE), clock.clone()).with_context(|| {
        format!("cannot open the store in {} (is `nusatrade serve` running on it?)", data_dir.display())
    })?;
    Ok((Arc::new(store), Arc::new(FileBlobStore::new(data_dir.join(BLOBS_DIR))), clock))
}

async fn stored_strategy(store: &Arc<dyn ItemStore>, id: uuid::Uuid) -> anyhow::Result<StrategySpec> {
    let sk = format!("{}{id}", nusatrade_app::backtest::store::STRATEGY_PREFIX);
    let mut cursor = None;
    loop {
        let page = store.scan(Scan::all().after(cursor)).await?;
        for item in &page.items {
            if item.get_s("SK") == Some(sk.as_str()) {
                let record: StrategyRecord = item.to_record()?;
                return nusatrade_app::backtest::strategies::spec_of(&record).map_err(|e| anyhow::anyhow!("{e}"));
            }
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => bail!("no strategy {id} in the data dir"),
        }
    }
}

/// The strategy, the candles (cut to --from/--to) and the run's settings.
pub async fn prepare(args: &RunArgs) -> anyhow::Result<(StrategySpec, CandleSeries, RunSettings)> {
    let instrument = nusatrade_domain::instrument::lookup(&args.symbol).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tf =
        parse_timeframe(&args.timeframe).ok_or_else(|| anyhow::anyhow!("unknown timeframe {:?}", args.timeframe))?;
    let needs_store = args.strategy_id.is_some() || args.dataset;
    let opened = if needs_store { Some(open_store(&args.data_dir)?) } else { None };
    let spec = match (&args.strategy, args.strategy_id, &opened) {
        (Some(path), _, _) => read_strategy(path)?,
        (None, Some(id), Some((store, _, _))) => stored_strategy(store, id).await?,
        _ => bail!("give --strategy FILE or --strategy-id ID"),
    };
    let series = match (&args.csv, &opened) {
        (Some(path), _) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            parse_csv(&bytes, &CsvLimits::default()).with_context(|| format!("{}", path.display()))?
        }
        (None, Some((store, blobs, clock))) if args.dataset => {
            let datasets = Datasets::new(store.clone(), blobs.clone(), clock.clone());
            let mut found = None;
            let records = {
                let mut all = Vec::new();
                let mut cursor = None;
                loop {
                    let page = store.scan(Scan::all().after(cursor)).await?;
                    all.extend(page.items.into_iter().filter(|i| {
                        i.get_s("SK")
                            == Some(&format!("DATASET#{}#{}", instrument.symbol, nusatrade_app::ml::store::tf_name(tf)))
                    }));
                    match page.cursor {
                        Some(c) => cursor = Some(c),
                        None => break all,
                    }
                }
            };
            for item in records {
                let owner = match item.get_s("PK").and_then(|pk| pk.strip_prefix("USER#")) {
                    Some(u) => Owner::User(u.parse()?),
                    None => Owner::System,
                };
                if let Some((_, s)) = datasets.load(owner, instrument.symbol, tf, None, None).await? {
                    found = Some(s);
                    break;
                }
            }
            found.ok_or_else(|| {
                anyhow::anyhow!("no {} {} dataset in {}", instrument.symbol, args.timeframe, args.data_dir.display())
            })?
        }
        _ => bail!("give --csv FILE or --dataset"),
    };
    let day = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
    let series = match (args.from, args.to) {
        (None, None) => series,
        (f, t) => range(
            &series,
            f.map(day).unwrap_or(DateTime::<Utc>::MIN_UTC),
            t.map(|d| day(d) + chrono::Duration::days(1)).unwrap_or(DateTime::<Utc>::MAX_UTC),
        ),
    };
    if series.len() < 2 {
        bail!("fewer than 2 bars in the chosen range");
    }
    let candles = series.candles();
    let settings = RunSettings {
        strategy_id: args.strategy_id.unwrap_or_default(),
        strategy_owner: uuid::Uuid::nil(),
        symbol: instrument.symbol.to_owned(),
        timeframe: nusatrade_app::ml::store::tf_name(tf).to_owned(),
        start_date: candles[0].time.date_naive(),
        end_date: candles[candles.len() - 1].time.date_naive(),
        initial_balance: args.balance,
        commission: args.commission,
        slippage: args.slippage,
        spread_pips: args.spread_pips,
        lot_size: args.lot_size,
        leverage: args.leverage,
        data: "stored".into(),
        params: args.params.iter().cloned().collect::<BTreeMap<_, _>>(),
        model_id: None,
    };
    Ok((spec, series, settings))
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `nusatrade backtest`.
pub async fn backtest(args: BacktestArgs) -> anyhow::Result<()> {
    let (spec, series, settings) = prepare(&args.run).await?;
    let compiled = spec.compile().map_err(|ps| {
        anyhow::anyhow!(
            "the strategy does not compile:\n  {}",
            ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  ")
        )
    })?;
    let bar = spinner(&format!("backtesting {} bars", series.len()));
    let started = Instant::now();
    let s = settings.clone();
    // The volatility regimes are computed here; ML signals need a model (the API's `model_id`).
    let external = if compiled.external_inputs().is_empty() {
        ExternalSeries::new()
    } else {
        nusatrade_backtest::ml_signals::volatility_regimes(&series)
    };
    let (result, stats) = tokio::task::spawn_blocking(move || simulate(&spec, &compiled, &series, &s, &external))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print!("{}", stats_table(&stats, &settings));
        eprintln!(
            "{} bars, {} trades in {:.1} ms",
            result.equity.len(),
            result.trades.len(),
            elapsed.as_secs_f64() * 1e3
        );
    }
    if let Some(path) = &args.chart {
        std::fs::write(path, chart_of(&result, &settings)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("chart: {}", path.display());
    }
    if let Some(path) = &args.trades {
        std::fs::write(path, trades_csv(&result)).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("trades: {}", path.display());
    }
    Ok(())
}

/// The equity and drawdown chart of a run.
pub fn chart_of(result: &RunResult, s: &RunSettings) -> anyhow::Result<String> {
    let times: Vec<DateTime<Utc>> =
        result.times.iter().map(|t| DateTime::from_timestamp(*t, 0).unwrap_or_default()).collect();
    let options = ChartOptions {
        title: format!("{} {} {} – {}", s.symbol, s.timeframe, s.start_date, s.end_date),
        ..ChartOptions::default()
    };
    Ok(chart::equity_chart(&times, &result.equity, &result.drawdown, &options)?)
}

fn trades_csv(result: &RunResult) -> String {
    let mut out =
        String::from("side,units,entry_time,entry_price,exit_time,exit_price,pnl,commission,mae,mfe,exit_reason\n");
    for t in &result.trades {
        out.push_str(&format!(
            "{:?},{},{},{},{},{},{},{},{},{},{:?}\n",
            t.side,
            t.units,
            t.entry_time.to_rfc3339(),
            t.entry_price,
            t.exit_time.to_rfc3339(),
            t.exit_price,
            t.pnl,
            t.commission,
            t.mae,
            t.mfe,
            t.exit_reason
        ));
    }
    out
}

fn duration(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, (secs % 86_400) / 3_600, (secs % 3_600) / 60);
    format!("{d} days {h:02}:{m:02}")
}

/// The statistics as backtesting.py prints them.
pub fn stats_table(s: &Stats, settings: &RunSettings) -> String {
    let rows: Vec<(&str, String)> = vec![
        ("Strategy period", format!("{} – {}", settings.start_date, settings.end_date)),
        ("Duration", duration(s.duration_secs)),
        ("Exposure Time [%]", format!("{:.2}", s.exposure_time_pct)),
        ("Equity Final [$]", format!("{:.2}", s.equity_final)),
        ("Equity Peak [$]", format!("{:.2}", s.equity_peak)),
        ("Commissions [$]", format!("{:.2}", s.commissions)),
        ("Net Profit [$]", format!("{:.2}", s.net_profit)),
        ("Return [%]", format!("{:.4}", s.return_pct)),
        ("Buy & Hold Return [%]", format!("{:.4}", s.buy_hold_return_pct)),
        ("Return (Ann.) [%]", format!("{:.4}", s.return_ann_pct)),
        ("Volatility (Ann.) [%]", format!("{:.4}", s.volatility_ann_pct)),
        ("CAGR [%]", format!("{:.4}", s.cagr_pct)),
        ("Sharpe Ratio", format!("{:.4}", s.sharpe_ratio)),
        ("Sortino Ratio", format!("{:.4}", s.sortino_ratio)),
        ("Calmar Ratio", format!("{:.4}", s.calmar_ratio)),
        ("Max. Drawdown [%]", format!("{:.4}", s.max_drawdown_pct)),
        ("Avg. Drawdown [%]", format!("{:.4}", s.avg_drawdown_pct)),
        ("Max. Drawdown Duration", duration(s.max_drawdown_duration_secs)),
        ("Avg. Drawdown Duration", duration(s.avg_drawdown_duration_secs)),
        ("# Trades", s.trades.to_string()),
        ("Win Rate [%]", format!("{:.4}", s.win_rate_pct)),
        ("Best Trade [%]", format!("{:.4}", s.best_trade_pct)),
        ("Worst Trade [%]", format!("{:.4}", s.worst_trade_pct)),
        ("Avg. Trade [%]", format!("{:.4}", s.avg_trade_pct)),
        ("Max. Trade Duration", duration(s.max_trade_duration_secs)),
        ("Avg. Trade Duration", duration(s.avg_trade_duration_secs)),
        ("Profit Factor", format!("{:.4}", s.profit_factor)),
        ("Expectancy [%]", format!("{:.4}", s.expectancy_pct)),
        ("SQN", format!("{:.4}", s.sqn)),
        ("Kelly Criterion", format!("{:.4}", s.kelly_criterion)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter().map(|(k, v)| format!("{k:<width$}  {v:>24}\n")).collect()
}

#[derive(clap::Args, Debug)]
pub struct OptimizeArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// A parameter's values: NAME=MIN:MAX:STEP or NAME=V1,V2,... (repeatable; default: the strategy's declared
    /// min/max over 10 values).
    #[arg(long = "range", value_parser = parse_range)]
    pub ranges: Vec<(String, ParamRange)>,
    /// A condition every combination meets, e.g. "fast < slow" (repeatable).
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
    /// What to rank by.
    #[arg(long, default_value = "sharpe_ratio")]
    pub objective: String,
    /// Random search with this many samples instead of the whole grid.
    #[arg(long)]
    pub random: Option<u64>,
    /// Seed of the random search.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Combinations with fewer trades rank last.
    #[arg(long, default_value_t = 1)]
    pub min_trades: usize,
    /// How many of the best to print.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Walk-forward: IN_SAMPLE_BARS:OUT_OF_SAMPLE_BARS (rolling windows).
    #[arg(long, value_parser = parse_walk)]
    pub walk_forward: Option<(usize, usize)>,
    /// Write the heatmap of the first two parameters (SVG) here.
    #[arg(long)]
    pub heatmap: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_range(s: &str) -> Result<(String, ParamRange), String> {
    let (name, spec) = s.split_once('=').ok_or("expected NAME=MIN:MAX:STEP or NAME=V1,V2,...")?;
    let num = |t: &str| t.trim().parse::<f64>().map_err(|_| format!("{t:?} is not a number"));
    let range = if spec.contains(':') {
        let parts: Vec<&str> = spec.split(':').collect();
        let [min, max, step] = parts[..] else { return Err("expected MIN:MAX:STEP".into()) };
        ParamRange::Range { min: num(min)?, max: num(max)?, step: num(step)? }
    } else {
        ParamRange::Values { values: spec.split(',').map(num).collect::<Result<_, _>>()? }
    };
    Ok((name.trim().to_owned(), range))
}

fn parse_walk(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once(':').ok_or("expected IN_SAMPLE_BARS:OUT_OF_SAMPLE_BARS")?;
    let n = |t: &str| t.trim().parse::<usize>().map_err(|_| format!("{t:?} is not a bar count"));
    Ok((n(a)?, n(b)?))
}

/// `nusatrade optimize`.
pub async fn optimize(args: OptimizeArgs) -> anyhow::Result<()> {
    let (spec, series, settings) = prepare(&args.run).await?;
    let compiled = spec.compile().map_err(|ps| {
        anyhow::anyhow!(
            "the strategy does not compile:\n  {}",
            ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  ")
        )
    })?;
    let request = OptimizeRequest {
        parameters: (!args.ranges.is_empty()).then(|| args.ranges.iter().cloned().collect()),
        constraints: args.constraints.clone(),
        objective: Some(
            Objective::from_name(&args.objective)
                .ok_or_else(|| anyhow::anyhow!("unknown objective {:?}", args.objective))?,
        ),
        method: Some(if args.random.is_some() { "random" } else { "grid" }.into()),
        samples: args.random,
        seed: Some(args.seed),
        min_trades: Some(args.min_trades),
        top_n: Some(args.top.max(1)),
        chunk_size: None,
        walk_forward: args.walk_forward.map(|(i, o)| WalkForwardConfig {
            in_sample_bars: i,
            out_of_sample_bars: o,
            step_bars: None,
            anchored: false,
        }),
    };
    let search = nusatrade_app::backtest::optimize::search_of(&spec, request).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan = search.plan().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (config, instrument) =
        nusatrade_app::backtest::runs::engine_config(&spec, &settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let windows = match &search.walk_forward {
        Some(w) => nusatrade_backtest::optimize::windows(series.len(), w)?.len() as u64,
        None => 1,
    };
    let bar = ProgressBar::with_draw_target(Some(plan.len() * windows), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} combinations {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let bars = series.columns();
    let progress_bar = bar.clone();
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        let external = ExternalSeries::new();
        let progress = move |done: u64, _total: u64| progress_bar.set_position(done);
        let control = Control { progress: Some(&progress), ..Control::default() };
        Ok(match &search.walk_forward {
            Some(w) => serde_json::to_value(opt::walk_forward(
                &bars,
                &plan,
                &compiled,
                &external,
                Some(instrument),
                &config,
                &search.settings,
                w,
                &control,
            )?)?,
            None => {
                let evaluator = Backtest {
                    bars: &bars,
                    strategy: &compiled,
                    external: &external,
                    instrument: Some(instrument),
                    config: &config,
                };
                serde_json::to_value(opt::optimize(&plan, &evaluator, &search.settings, &control)?)?
            }
        })
    })
    .await??;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(());
    }
    if args.walk_forward.is_some() {
        let report: WalkForwardReport = serde_json::from_value(outcome)?;
        println!("{:>3}  {:<22}  {:>12}  {:>12}  params", "win", "out of sample", "IS objective", "OOS return %");
        for w in &report.windows {
            println!(
                "{:>3}  {:<22}  {:>12.4}  {:>12.4}  {:?}",
                w.index,
                format!("{}..{}", w.out_of_sample.start, w.out_of_sample.end),
                w.in_sample_objective,
                w.out_of_sample_stats.return_pct,
                w.params
            );
        }
        println!("walk-forward efficiency: {}", report.efficiency.map_or("n/a".into(), |e| format!("{e:.3}")));
        print!("{}", stats_table(&report.out_of_sample_stats, &settings));
    } else {
        let result: OptimizeResult = serde_json::from_value(outcome)?;
        println!("{:>4}  {:>14}  {:>7}  params", "rank", result.objective.name(), "trades");
        for (i, e) in result.best.iter().enumerate() {
            println!("{:>4}  {:>14.4}  {:>7}  {:?}", i + 1, e.objective, e.trades, e.params);
        }
        eprintln!(
            "{} combinations ({} evaluated, {} skipped by constraints, {} failed) in {:.2} s",
            result.total,
            result.evaluated,
            result.skipped,
            result.failed,
            elapsed.as_secs_f64()
        );
        if let (Some(path), Some(data)) = (&args.heatmap, &result.heatmap) {
            let svg = chart::heatmap(
                data,
                &ChartOptions {
                    title: format!("{} by {} × {}", result.objective.name(), data.x_label, data.y_label),
                    ..ChartOptions::default()
                },
            )?;
            std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("heatmap: {}", path.display());
        }
    }
    Ok(())
}
