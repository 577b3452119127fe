//! The backtest use cases over the local adapters (issue 16), the `backtest` consumer driven by hand (receive →
//! `handle`), as the queue workers do: an optimization split into chunks is counted once per chunk under
//! redelivery and its merged result equals one optimization over the whole grid; a failed job leaves a failed
//! session with its reason; a redelivered finished run changes nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use nusatrade_app::backtest::data::DataSource;
use nusatrade_app::backtest::optimize::{OptimizeRequest, search_of};
use nusatrade_app::backtest::runs::{RunRequest, engine_config};
use nusatrade_app::backtest::store::{RunSettings, SessionStatus, StrategyRecord};
use nusatrade_app::backtest::strategies::{self, StrategyInput};
use nusatrade_app::backtest::{BACKTEST_QUEUE, BacktestConfig, BacktestConsumer, BacktestService};
use nusatrade_app::jobs::QueueConsumer;
use nusatrade_app::ports::*;
use nusatrade_backtest::optimize::{self as opt, Backtest, Control, ParamRange};
use nusatrade_backtest::rules::ExternalSeries;
use nusatrade_backtest::strategy::StrategySpec;
use nusatrade_local::adapters::LocalQueue;
use serde_json::{Value, json};
use uuid::Uuid;

const VIS: Duration = Duration::from_secs(60);

struct World {
    service: BacktestService,
    consumer: BacktestConsumer,
    ports: Ports,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = common::clock();
    let queue = Arc::new(LocalQueue::new(clock.clone()).with_queue(BACKTEST_QUEUE, 5));
    let ports = Ports { queue, ..common::ports(dir.path(), clock) };
    let service = BacktestService::new(&ports, BacktestConfig::default());
    World { consumer: BacktestConsumer::new(service.clone()), service, ports, _dir: dir }
}

fn spec() -> StrategySpec {
    serde_json::from_value(json!({
        "name": "SMA cross",
        "parameters": [{"name": "fast", "default_value": 10, "min": 2, "max": 50},
                       {"name": "slow", "default_value": 20, "min": 5, "max": 200}],
        "entry_rules": [{"id": "up", "condition": "CROSSES_ABOVE(SMA(fast), SMA(slow))", "action": "BUY", "description": ""},
                        {"id": "dn", "condition": "CROSSES_BELOW(SMA(fast), SMA(slow))", "action": "SELL", "description": ""}],
        "exit_rules": [{"id": "x", "condition": "RSI(14) > 85", "action": "CLOSE", "description": ""}],
        "risk_management": {"stop_loss_type": "fixed_pips", "stop_loss_value": 40, "take_profit_type": "risk_reward",
                            "take_profit_value": 1.5, "max_position_size": 1.0, "risk_per_trade_percent": 1.0}
    }))
    .unwrap()
}

async fn strategy(w: &World, user: Uuid) -> StrategyRecord {
    let s = spec();
    let input = StrategyInput {
        name: Some(s.name),
        parameters: Some(s.parameters),
        entry_rules: Some(s.entry_rules),
        exit_rules: Some(s.exit_rules),
        risk_management: s.risk_management,
        ..StrategyInput::default()
    };
    w.service.strategies.create(user, input).await.unwrap()
}

fn run(strategy: Uuid) -> RunRequest {
    RunRequest {
        strategy_id: strategy,
        symbol: "EURUSD",
        timeframe: nusatrade_ml::Timeframe::H1,
        start_date: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
        end_date: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        initial_balance: 10_000.0,
        commission: 3.5,
        slippage: 0.00001,
        spread_pips: 1.0,
        lot_size: 0.1,
        leverage: 100.0,
        data: DataSource::Generated,
        params: Default::default(),
        model_id: None,
    }
}

fn search() -> OptimizeRequest {
    let mut parameters = std::collections::BTreeMap::new();
    parameters.insert("fast".to_owned(), ParamRange::Range { min: 4.0, max: 16.0, step: 4.0 });
    parameters.insert("slow".to_owned(), ParamRange::Values { values: vec![20.0, 30.0, 50.0] });
    OptimizeRequest {
        parameters: Some(parameters),
        constraints: vec!["fast * 2 < slow".into()],
        chunk_size: Some(2),
        ..OptimizeRequest::default()
    }
}

async fn receive(w: &World) -> Vec<ReceivedMessage> {
    w.ports.queue.receive(BACKTEST_QUEUE, 10, VIS, Duration::ZERO).await.unwrap()
}

#[tokio::test]
async fn chunks_are_counted_once_under_redelivery_and_merge_to_the_whole_grid() {
    let w = world();
    let user = Uuid::new_v4();
    let s = strategy(&w, user).await;
    let started = w.service.start_optimization(user, run(s.id), search()).await.unwrap();
    let id: Uuid = started["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(started["combinations"], 12);
    assert_eq!(started["chunks"], 6);
    let messages = receive(&w).await;
    assert_eq!(messages.len(), 6);
    // Every chunk but the last, then the first again (a redelivery), then the last.
    for m in &messages[..5] {
        w.consumer.handle(m).await.unwrap();
    }
    w.consumer.handle(&messages[0]).await.unwrap();
    let mid = w.service.optimization(user, id).await.unwrap();
    assert_eq!((mid["chunks_done"].as_u64(), mid["status"].as_str()), (Some(5), Some("running")), "{mid}");
    w.consumer.handle(&messages[5]).await.unwrap();
    w.consumer.handle(&messages[5]).await.unwrap();
    let done = w.service.optimization(user, id).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["chunks_done"], 6, "each chunk counted once: {done}");
    assert_eq!(done["skipped"], 3, "fast * 2 < slow removes (12, 20), (16, 20), (16, 30): {done}");

    // The same search in one piece, on the same data: the same ranking.
    let settings = RunSettings {
        strategy_id: s.id,
        strategy_owner: user,
        symbol: "EURUSD".into(),
        timeframe: "H1".into(),
        start_date: run(s.id).start_date,
        end_date: run(s.id).end_date,
        initial_balance: 10_000.0,
        commission: 3.5,
        slippage: 0.00001,
        spread_pips: 1.0,
        lot_size: 0.1,
        leverage: 100.0,
        data: "generated".into(),
        params: Default::default(),
        model_id: None,
    };
    let spec = strategies::spec_of(&s).unwrap();
    let compiled = spec.compile().unwrap();
    let data = nusatrade_app::backtest::data::load(
        &w.service.datasets,
        user,
        "EURUSD",
        nusatrade_ml::Timeframe::H1,
        settings.start_date,
        settings.end_date,
        DataSource::Generated,
    )
    .await
    .unwrap();
    let bars = data.series.columns();
    let (config, instrument) = engine_config(&spec, &settings).unwrap();
    let stored = search_of(&spec, search()).unwrap();
    let plan = stored.plan().unwrap();
    let external = ExternalSeries::new();
    let evaluator = Backtest {
        bars: &bars,
        strategy: &compiled,
        external: &external,
        instrument: Some(instrument),
        config: &config,
    };
    let whole = opt::optimize(&plan, &evaluator, &stored.settings, &Control::default()).unwrap();
    let merged: Vec<(Value, Option<f64>)> =
        done["results"].as_array().unwrap().iter().map(|r| (r["params"].clone(), r["objective"].as_f64())).collect();
    let single: Vec<(Value, Option<f64>)> = whole
        .best
        .iter()
        .map(|e| (serde_json::to_value(&e.params).unwrap(), e.objective.is_finite().then_some(e.objective)))
        .collect();
    assert_eq!(merged, single);
}

#[tokio::test]
async fn a_failed_job_leaves_a_failed_session_with_its_reason() {
    let w = world();
    let user = Uuid::new_v4();
    let s = strategy(&w, user).await;
    let started = w.service.start_optimization(user, run(s.id), search()).await.unwrap();
    let id: Uuid = started["id"].as_str().unwrap().parse().unwrap();
    w.service.strategies.delete(user, s.id).await.unwrap();
    for m in receive(&w).await {
        w.consumer.handle(&m).await.unwrap();
    }
    let failed = w.service.optimization(user, id).await.unwrap();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"], "Strategy not found");
    assert!(failed.get("results").is_none(), "nothing half-written: {failed}");
}

#[tokio::test]
async fn queued_runs_complete_once_and_ignore_redelivery() {
    let w = world();
    let w = World {
        service: BacktestService::new(&w.ports, BacktestConfig { sync_max_bars: 100 }),
        consumer: BacktestConsumer::new(BacktestService::new(&w.ports, BacktestConfig { sync_max_bars: 100 })),
        ports: w.ports,
        _dir: w._dir,
    };
    let user = Uuid::new_v4();
    let s = strategy(&w, user).await;
    let view = w.service.run(user, run(s.id)).await.unwrap();
    assert_eq!(view.session.status, SessionStatus::Queued);
    let messages = receive(&w).await;
    assert_eq!(messages.len(), 1);
    w.consumer.handle(&messages[0]).await.unwrap();
    let first = w.service.session_with_result(user, view.session.id).await.unwrap();
    assert_eq!(first.session.status, SessionStatus::Completed);
    assert!(first.result.as_ref().is_some_and(|r| !r.trades.is_empty()));
    w.consumer.handle(&messages[0]).await.unwrap();
    let again = w.service.session_with_result(user, view.session.id).await.unwrap();
    assert_eq!(again.session, first.session, "a redelivered finished run changes nothing");
}
