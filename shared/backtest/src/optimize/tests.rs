use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use proptest::prelude::*;

use super::*;

fn range(name: &str, min: f64, max: f64, step: f64) -> ParamSpec {
    ParamSpec { name: name.into(), range: ParamRange::Range { min, max, step } }
}

fn list(name: &str, values: &[f64]) -> ParamSpec {
    ParamSpec { name: name.into(), range: ParamRange::Values { values: values.to_vec() } }
}

fn space(params: Vec<ParamSpec>, constraints: &[&str]) -> Result<ParamSpace, OptimizeError> {
    ParamSpace::new(&SpaceSpec { params, constraints: constraints.iter().map(|c| c.to_string()).collect() })
}

/// A made-up evaluation with ties, NaN objectives and varying trade counts.
fn synthetic(p: &ParamValues) -> Result<Stats, String> {
    let a = p["a"];
    let b = p["b"];
    let c = p.get("c").copied().unwrap_or(0.0);
    let sharpe = if (a as i64 + b as i64) % 13 == 0 { f64::NAN } else { ((a * 7.0 + b * 3.0 + c) % 11.0) - 5.0 };
    Ok(Stats {
        sharpe_ratio: sharpe,
        trades: (a + b + c) as usize % 5,
        max_drawdown_pct: -((a * b) % 17.0),
        net_profit: a * 100.0 - b,
        ..Stats::default()
    })
}

fn abc_space(constraints: &[&str]) -> ParamSpace {
    space(vec![range("a", 1.0, 20.0, 1.0), range("b", 1.0, 15.0, 1.0), list("c", &[0.0, 2.0, 5.0])], constraints)
        .unwrap()
}

fn settings(objective: Objective, min_trades: usize, top_n: usize) -> OptimizeSettings {
    OptimizeSettings { objective, min_trades, top_n, heatmap: Some(HeatmapAxes { x: "a".into(), y: "b".into() }) }
}

fn one_thread() -> Control<'static> {
    Control { threads: 1, ..Control::default() }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

#[test]
fn range_values_are_clean_and_inclusive() {
    let s = space(vec![range("x", 0.1, 0.5, 0.1), range("y", 5.0, 50.0, 5.0), range("z", 1.0, 2.0, 0.3)], &[]).unwrap();
    assert_eq!(s.values(0), &[0.1, 0.2, 0.3, 0.4, 0.5]);
    assert_eq!(s.values(1).len(), 10);
    assert_eq!(s.values(1).last(), Some(&50.0));
    assert_eq!(s.values(2), &[1.0, 1.3, 1.6, 1.9]);
    assert_eq!(s.size(), 5 * 10 * 4);
    let single = space(vec![range("x", 3.0, 3.0, 1.0)], &[]).unwrap();
    assert_eq!(single.values(0), &[3.0]);
}

#[test]
fn numbering_is_mixed_radix_last_fastest() {
    let s = space(vec![list("a", &[1.0, 2.0]), list("b", &[10.0, 20.0, 30.0])], &[]).unwrap();
    let all: Vec<Vec<f64>> = (0..6).map(|i| s.combination(i).unwrap()).collect();
    assert_eq!(all[0], vec![1.0, 10.0]);
    assert_eq!(all[1], vec![1.0, 20.0]);
    assert_eq!(all[3], vec![2.0, 10.0]);
    assert_eq!(all[5], vec![2.0, 30.0]);
    assert_eq!(s.combination(6), None);
    assert_eq!(s.index_of(&[1, 2]), Some(5));
    assert_eq!(s.index_of(&[2, 0]), None);
    assert_eq!(s.index_of(&[0]), None);
}

proptest! {
    #[test]
    fn prop_index_combination_bijection(radices in proptest::collection::vec(1usize..7, 1..6), picks in proptest::collection::vec(any::<u64>(), 1..20)) {
        let params: Vec<ParamSpec> = radices
            .iter()
            .enumerate()
            .map(|(k, r)| range(&format!("p{k}"), 0.0, (*r - 1) as f64, 1.0))
            .collect();
        let s = space(params, &[]).unwrap();
        prop_assert_eq!(s.size(), radices.iter().map(|r| *r as u64).product::<u64>());
        for pick in picks {
            let i = pick % s.size();
            let digits = s.digits(i).unwrap();
            prop_assert_eq!(s.index_of(&digits), Some(i));
            let values = s.combination(i).unwrap();
            prop_assert!(digits.iter().zip(&values).all(|(d, v)| *d as f64 == *v));
        }
        // Injective over the whole (small) grid.
        let seen: HashSet<Vec<usize>> = (0..s.size()).map(|i| s.digits(i).unwrap()).collect();
        prop_assert_eq!(seen.len() as u64, s.size());
    }

    #[test]
    fn prop_chunks_cover_exactly_once(len_a in 1u64..40, len_b in 1u64..40, chunk in 0u64..100) {
        let s = space(vec![range("a", 1.0, len_a as f64, 1.0), range("b", 1.0, len_b as f64, 1.0)], &[]).unwrap();
        let plan = Plan::grid(s).unwrap();
        let chunks = plan.chunks(chunk);
        let mut next = 0;
        for c in &chunks {
            prop_assert_eq!(c.start, next);
            prop_assert!(c.end > c.start && c.end - c.start <= chunk.max(1));
            next = c.end;
        }
        prop_assert_eq!(next, plan.len());
    }
}

#[test]
fn merge_of_chunks_equals_single_run() {
    let plan = Plan::grid(abc_space(&["a != b"])).unwrap();
    let eval = FnEvaluator(synthetic);
    for (objective, min_trades, top_n) in
        [(Objective::SharpeRatio, 2, 25), (Objective::MaxDrawdown, 0, 7), (Objective::NetProfit, 4, 1)]
    {
        let st = settings(objective, min_trades, top_n);
        let single = optimize(&plan, &eval, &st, &one_thread()).unwrap();
        for chunk in [1, 7, 64, 10_000] {
            let mut parts: Vec<Partial> = plan
                .chunks(chunk)
                .into_iter()
                .map(|r| evaluate_range(&plan, r, &eval, &st, &Control { threads: 2, ..Control::default() }).unwrap())
                .collect();
            parts.reverse();
            // Through the wire, as workers would send them.
            let parts: Vec<Partial> =
                parts.iter().map(|p| serde_json::from_str(&serde_json::to_string(p).unwrap()).unwrap()).collect();
            let merged = finish(&plan, merge(parts).unwrap()).unwrap();
            assert_eq!(json(&merged), json(&single), "chunk {chunk}, {objective:?}");
        }
        assert_eq!(single.total, 20 * 15 * 3);
        assert_eq!(single.skipped, 15 * 3, "a == b for 15 pairs × 3 values of c");
        assert_eq!(single.evaluated + single.skipped, single.total);
        assert_eq!(single.best.len(), top_n);
    }
}

#[test]
fn ranking_respects_min_trades_nan_and_direction() {
    let plan = Plan::grid(abc_space(&[])).unwrap();
    let eval = FnEvaluator(synthetic);
    let r = optimize(&plan, &eval, &settings(Objective::SharpeRatio, 3, 1_000), &one_thread()).unwrap();
    assert_eq!(r.best.len(), 900);
    let first_unqualified = r.best.iter().position(|e| !e.qualified).unwrap();
    assert!(r.best[first_unqualified..].iter().all(|e| !e.qualified), "qualified first");
    let q = &r.best[..first_unqualified];
    let first_nan = q.iter().position(|e| e.objective.is_nan()).unwrap();
    assert!(q[first_nan..].iter().all(|e| e.objective.is_nan()), "NaN after numbers");
    assert!(
        q[..first_nan].windows(2).all(|w| {
            w[0].objective > w[1].objective || (w[0].objective == w[1].objective && w[0].index < w[1].index)
        })
    );
    // Cross-check the winner by brute force.
    let mut brute: Vec<(f64, u64)> = (0..plan.len())
        .filter_map(|i| {
            let v = plan.space().combination(i).unwrap();
            let s = synthetic(&plan.space().param_values(&v)).unwrap();
            (s.trades >= 3 && !s.sharpe_ratio.is_nan()).then_some((s.sharpe_ratio, i))
        })
        .collect();
    brute.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(r.best[0].index, brute[0].1);

    let dd = optimize(&plan, &eval, &settings(Objective::MaxDrawdown, 0, 5), &one_thread()).unwrap();
    assert!(dd.best.iter().all(|e| e.objective == 0.0), "smallest drawdown first");
    assert!(!dd.heatmap.as_ref().unwrap().higher_is_better);
}

#[test]
fn heatmap_holds_best_over_other_params() {
    let plan = Plan::grid(abc_space(&[])).unwrap();
    let r = optimize(&plan, &FnEvaluator(synthetic), &settings(Objective::NetProfit, 0, 3), &one_thread()).unwrap();
    let h = r.heatmap.unwrap();
    assert_eq!((h.x_values.len(), h.y_values.len(), h.values.len()), (20, 15, 300));
    assert_eq!((h.x_label.as_str(), h.y_label.as_str(), h.value_label.as_str()), ("a", "b", "net_profit"));
    // net_profit = 100a − b does not depend on c: cell (a=3, b=4) is 296.
    assert_eq!(h.values[3 * 20 + 2], Some(296.0));
    // Cells with no qualified combination are empty.
    let r = optimize(&plan, &FnEvaluator(synthetic), &settings(Objective::NetProfit, 5, 3), &one_thread());
    assert!(r.unwrap().heatmap.unwrap().values.iter().all(Option::is_none));
}

#[test]
fn constraints_filter_and_validate() {
    let s = space(vec![range("fast", 1.0, 10.0, 1.0), range("slow", 1.0, 10.0, 1.0)], &["fast < slow"]).unwrap();
    let plan = Plan::grid(s).unwrap();
    let seen = Mutex::new(Vec::new());
    let eval = FnEvaluator(|p: &ParamValues| {
        seen.lock().unwrap().push((p["fast"], p["slow"]));
        Ok(Stats { trades: 1, ..Stats::default() })
    });
    let r = optimize(&plan, &eval, &OptimizeSettings::default(), &Control::default()).unwrap();
    assert_eq!(r.evaluated, 45);
    assert_eq!(r.skipped, 55);
    assert!(seen.lock().unwrap().iter().all(|(f, s)| f < s));

    let s =
        space(vec![list("a", &[1.0, 2.0, 3.0]), list("b", &[1.0, 4.0, 6.0])], &["a * 2 <= b", "NOT (b == 6) OR a > 2"])
            .unwrap();
    let ok: Vec<Vec<f64>> = (0..s.size()).map(|i| s.combination(i).unwrap()).filter(|v| s.satisfies(v)).collect();
    assert_eq!(ok, vec![vec![1.0, 4.0], vec![2.0, 4.0], vec![3.0, 6.0]]);
    assert_eq!(s.constraints(), vec!["a * 2 <= b", "NOT (b == 6) OR a > 2"]);

    let params = || vec![range("fast", 1.0, 3.0, 1.0), range("slow", 1.0, 3.0, 1.0)];
    for bad in ["fast < medium", "fast <", "CLOSE > fast", "RSI(fast) < 30", "CROSSES_ABOVE(fast, slow)", "fast[1] < 2"]
    {
        match space(params(), &[bad]) {
            Err(OptimizeError::Constraint { constraint, message }) => {
                assert_eq!(constraint, bad);
                assert!(!message.is_empty());
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    // Division by zero makes the comparison false: the combination is skipped.
    let s = space(vec![list("a", &[0.0, 1.0])], &["1 / a > 0"]).unwrap();
    assert!(!s.satisfies(&[0.0]));
    assert!(s.satisfies(&[1.0]));
    let too_many: Vec<&str> = vec!["a > 0"; MAX_CONSTRAINTS + 1];
    assert!(matches!(space(vec![list("a", &[1.0])], &too_many), Err(OptimizeError::TooManyConstraints { .. })));
}

#[test]
fn caps_and_bad_specs() {
    let big = space(vec![range("a", 1.0, 1000.0, 1.0), range("b", 1.0, 1010.0, 1.0)], &[]).unwrap();
    assert_eq!(big.size(), 1_010_000);
    let e = Plan::grid(big.clone()).unwrap_err();
    assert_eq!(e.to_string(), "grid has 1010000 combinations, above the limit of 1000000");
    assert!(Plan::grid_with_limit(abc_space(&[]), 100).is_err());
    // Random search may sample a larger space.
    assert_eq!(Plan::random(big.clone(), 1_000, 1).unwrap().len(), 1_000);
    assert!(matches!(Plan::random(big, 0, 1), Err(OptimizeError::Samples { .. })));

    // 16 parameters of 100 values: 10^32 combinations, beyond 64 bits, without overflow.
    let huge: Vec<ParamSpec> = (0..16).map(|k| range(&format!("p{k}"), 1.0, 100.0, 1.0)).collect();
    let e = space(huge, &[]).unwrap_err();
    assert!(e.to_string().contains("more than 18446744073709551615"), "{e}");
    let e = space(vec![range("a", 0.0, 1e300, 1e-300)], &[]).unwrap_err();
    assert!(matches!(e, OptimizeError::GridTooLarge { combinations: None, .. }), "{e:?}");
    let e = space(vec![range("a", 0.0, 2e6, 1.0)], &[]).unwrap_err();
    assert_eq!(e.to_string(), "grid has 2000001 combinations, above the limit of 1000000");
    let e = space(vec![range("a", 1.0, 600_000.0, 1.0), range("b", 1.0, 600_000.0, 1.0)], &[]).unwrap_err();
    assert!(matches!(e, OptimizeError::TooManyValues { .. }));

    let too_many: Vec<ParamSpec> = (0..17).map(|k| list(&format!("p{k}"), &[1.0])).collect();
    assert!(matches!(space(too_many, &[]), Err(OptimizeError::TooManyParams { count: 17, .. })));
    assert_eq!(space(vec![], &[]), Err(OptimizeError::NoParams));
    for (spec, what) in [
        (range("a", 5.0, 1.0, 1.0), "above max"),
        (range("a", 1.0, 5.0, 0.0), "positive"),
        (range("a", 1.0, 5.0, -1.0), "positive"),
        (range("a", f64::NAN, 5.0, 1.0), "finite"),
        (list("a", &[]), "no values"),
        (list("a", &[1.0, f64::INFINITY]), "finite"),
        (list("a", &[1.0, 2.0, 1.0]), "twice"),
    ] {
        let e = space(vec![spec], &[]).unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
    }
    for name in ["", "1x", "a-b", "close", "RSI", &"x".repeat(65)] {
        assert!(matches!(space(vec![list(name, &[1.0])], &[]), Err(OptimizeError::ParamName { .. })), "{name}");
    }
    assert!(matches!(space(vec![list("a", &[1.0]), list("A", &[2.0])], &[]), Err(OptimizeError::ParamName { .. })));
}

#[test]
fn random_search_is_deterministic_and_distinct() {
    let s = abc_space(&[]);
    let a = Plan::random(s.clone(), 200, 42).unwrap();
    let b = Plan::random(s.clone(), 200, 42).unwrap();
    let c = Plan::random(s.clone(), 200, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let idx: Vec<u64> = (0..a.len()).map(|p| a.grid_index(p).unwrap()).collect();
    assert_eq!(idx.iter().collect::<HashSet<_>>().len(), 200);
    assert!(idx.windows(2).all(|w| w[0] < w[1]) && *idx.last().unwrap() < s.size());
    assert_eq!(a.grid_index(200), None);
    // Spread over the grid, not clustered at one end.
    assert!(idx[0] < 100 && idx[199] > 800);
    // Asking for at least the grid gives the whole grid.
    let all = Plan::random(s.clone(), 5_000, 1).unwrap();
    assert_eq!(all.len(), s.size());
    assert_eq!(all.grid_index(17), Some(17));
    assert_eq!(all.seed(), Some(1));
    // Near-full sampling still yields distinct indices.
    let dense = Plan::random(s.clone(), s.size() - 1, 9).unwrap();
    let set: HashSet<u64> = (0..dense.len()).map(|p| dense.grid_index(p).unwrap()).collect();
    assert_eq!(set.len() as u64, s.size() - 1);
    // And a random search optimises only its samples.
    let r = optimize(&a, &FnEvaluator(synthetic), &settings(Objective::NetProfit, 0, 5), &Control::default()).unwrap();
    assert_eq!(r.total, 200);
    assert!(r.best.iter().all(|e| idx.contains(&e.index)));
}

#[test]
fn progress_cancel_failures_and_ranges() {
    let plan = Plan::grid(abc_space(&[])).unwrap();
    let calls = Mutex::new(Vec::new());
    let progress = |done: u64, total: u64| calls.lock().unwrap().push((done, total));
    let control = Control { progress: Some(&progress), threads: 2, ..Control::default() };
    optimize(&plan, &FnEvaluator(synthetic), &OptimizeSettings::default(), &control).unwrap();
    let calls = calls.into_inner().unwrap();
    assert!(!calls.is_empty() && calls.iter().all(|(d, t)| *t == 900 && *d <= 900));
    assert_eq!(calls.iter().map(|c| c.0).max(), Some(900));

    let cancel = AtomicBool::new(true);
    let control = Control { cancel: Some(&cancel), ..Control::default() };
    assert_eq!(
        optimize(&plan, &FnEvaluator(synthetic), &OptimizeSettings::default(), &control),
        Err(OptimizeError::Cancelled)
    );
    // Cancelled midway by the progress callback.
    let cancel = AtomicBool::new(false);
    let stop = |done: u64, _: u64| {
        if done >= 100 {
            cancel.store(true, AtomicOrdering::Relaxed);
        }
    };
    let control = Control { cancel: Some(&cancel), progress: Some(&stop), threads: 2 };
    assert_eq!(
        optimize(&plan, &FnEvaluator(synthetic), &OptimizeSettings::default(), &control),
        Err(OptimizeError::Cancelled)
    );

    // Some failures are counted; a panic is a failure; all failing is an error.
    let flaky = FnEvaluator(|p: &ParamValues| {
        if p["a"] == 3.0 {
            Err("boom".to_string())
        } else if p["a"] == 4.0 {
            panic!("kaboom")
        } else {
            synthetic(p)
        }
    });
    let r = optimize(&plan, &flaky, &OptimizeSettings::default(), &Control::default()).unwrap();
    assert_eq!(r.failed, 2 * 45);
    assert_eq!(r.first_failure.as_ref().map(|f| (f.index, f.message.as_str())), Some((90, "boom")));
    let broken = FnEvaluator(|_: &ParamValues| Err::<Stats, _>("no data".to_string()));
    assert_eq!(
        optimize(&plan, &broken, &OptimizeSettings::default(), &one_thread()),
        Err(OptimizeError::AllFailed { index: 0, message: "no data".into() })
    );

    // Ranges, incomplete merges, mismatched partials, bad settings.
    let st = OptimizeSettings::default();
    assert!(matches!(
        evaluate_range(&plan, 800..901, &FnEvaluator(synthetic), &st, &one_thread()),
        Err(OptimizeError::BadRange { .. })
    ));
    let part = evaluate_range(&plan, 0..450, &FnEvaluator(synthetic), &st, &one_thread()).unwrap();
    assert_eq!(finish(&plan, part.clone()), Err(OptimizeError::Incomplete { covered: 450, total: 900 }));
    let other =
        evaluate_range(&plan, 450..900, &FnEvaluator(synthetic), &settings(Objective::Sqn, 1, 20), &one_thread());
    assert!(matches!(merge([part, other.unwrap()]), Err(OptimizeError::Mismatch(_))));
    assert!(matches!(merge(Vec::new()), Err(OptimizeError::Mismatch(_))));
    for bad in [
        OptimizeSettings { top_n: 0, ..st.clone() },
        OptimizeSettings { top_n: MAX_TOP_N + 1, ..st.clone() },
        OptimizeSettings { heatmap: Some(HeatmapAxes { x: "a".into(), y: "zz".into() }), ..st.clone() },
        OptimizeSettings { heatmap: Some(HeatmapAxes { x: "a".into(), y: "a".into() }), ..st.clone() },
    ] {
        assert!(matches!(
            optimize(&plan, &FnEvaluator(synthetic), &bad, &one_thread()),
            Err(OptimizeError::Settings(_))
        ));
    }
}

#[test]
fn objectives_have_names_and_values() {
    let stats = Stats {
        net_profit: 1.0,
        return_pct: 2.0,
        sharpe_ratio: 3.0,
        sortino_ratio: 4.0,
        calmar_ratio: 5.0,
        profit_factor: 6.0,
        sqn: 7.0,
        win_rate_pct: 8.0,
        expectancy: 9.0,
        max_drawdown_pct: -10.0,
        ..Stats::default()
    };
    for (k, o) in Objective::ALL.into_iter().enumerate() {
        assert_eq!(o.value(&stats), (k + 1) as f64);
        assert_eq!(Objective::from_name(o.name()), Some(o));
        assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{}\"", o.name()));
    }
    assert_eq!(Objective::from_name("nope"), None);
    assert!(!Objective::MaxDrawdown.maximise());
}

#[test]
fn partial_round_trips_non_finite_objectives() {
    let plan = Plan::grid(abc_space(&[])).unwrap();
    let eval = FnEvaluator(|p: &ParamValues| {
        let mut s = synthetic(p)?;
        s.profit_factor = if p["a"] > 10.0 { f64::INFINITY } else { f64::NAN };
        Ok(s)
    });
    let st = settings(Objective::ProfitFactor, 0, 5);
    let part = evaluate_range(&plan, 0..plan.len(), &eval, &st, &one_thread()).unwrap();
    let text = serde_json::to_string(&part).unwrap();
    assert!(text.contains("\"inf\""));
    let back: Partial = serde_json::from_str(&text).unwrap();
    assert_eq!(back.best[0].objective, f64::INFINITY);
    assert_eq!(json(&back), text);
    let spec: SpaceSpec = serde_json::from_str(
        r#"{"params":[{"name":"fast","min":5,"max":20,"step":5},{"name":"slow","values":[30,50]}],"constraints":["fast < slow"]}"#,
    )
    .unwrap();
    assert_eq!(ParamSpace::new(&spec).unwrap().size(), 8);
}

// ---------------------------------------------------------------------------------------------------------------
// End to end: the real strategy, engine and statistics.

mod end_to_end {
    use chrono::{Duration, TimeZone, Utc};
    use nusatrade_ml::candles::Columns;
    use nusatrade_ml::rng::SplitMix64;

    use super::*;
    use crate::engine::EngineConfig;
    use crate::rules::ExternalSeries;
    use crate::strategy::{CompiledStrategy, StrategySpec};

    /// A seeded random walk of hourly bars with some trend changes.
    pub(super) fn bars(n: usize, seed: u64) -> Columns {
        let mut rng = SplitMix64(seed);
        let start = Utc.with_ymd_and_hms(2023, 1, 2, 0, 0, 0).unwrap();
        let mut c = Columns::default();
        let mut price = 1.1f64;
        for i in 0..n {
            let drift = if (i / 150) % 2 == 0 { 0.00012 } else { -0.0001 };
            let open = price;
            let close = (open * (1.0 + drift + (rng.unit() - 0.5) * 0.004)).max(0.01);
            let high = open.max(close) * (1.0 + rng.unit() * 0.001);
            let low = open.min(close) * (1.0 - rng.unit() * 0.001);
            c.time.push(start + Duration::hours(i as i64));
            c.open.push(open);
            c.high.push(high);
            c.low.push(low);
            c.close.push(close);
            c.volume.push(1_000.0);
            price = close;
        }
        c
    }

    pub(super) fn sma_cross() -> CompiledStrategy {
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
        .unwrap();
        spec.compile().unwrap_or_else(|p| panic!("{p:?}"))
    }

    pub(super) fn config() -> EngineConfig {
        EngineConfig::backtesting_py(10_000.0, 0.0002)
    }

    fn grid() -> Plan {
        let spec = SpaceSpec {
            params: vec![range("fast", 2.0, 12.0, 2.0), range("slow", 10.0, 40.0, 5.0)],
            constraints: vec!["fast < slow".into()],
        };
        Plan::grid(ParamSpace::new(&spec).unwrap()).unwrap()
    }

    #[test]
    fn small_grid_matches_direct_runs() {
        let bars = bars(800, 7);
        let strategy = sma_cross();
        let config = config();
        let external = ExternalSeries::new();
        let eval =
            Backtest { bars: &bars, strategy: &strategy, external: &external, instrument: None, config: &config };
        let plan = grid();
        let st = OptimizeSettings {
            objective: Objective::ReturnPct,
            min_trades: 1,
            top_n: 10,
            heatmap: Some(HeatmapAxes { x: "fast".into(), y: "slow".into() }),
        };
        let result = optimize(&plan, &eval, &st, &Control { threads: 2, ..Control::default() }).unwrap();
        assert_eq!(result.total, 6 * 7);
        assert_eq!(result.skipped, 2, "(10, 10) and (12, 10) fail fast < slow");
        assert_eq!(result.failed, 0, "{:?}", result.first_failure);
        assert_eq!(result.evaluated, 40);
        assert!(result.best.iter().all(|e| e.trades > 0));
        assert!(result.best.windows(2).all(|w| w[0].objective >= w[1].objective));

        // Every kept combination equals a direct run with its parameters.
        for e in &result.best {
            let signals = strategy.signals(&bars, &e.params);
            let outcome = engine::run(&bars, &signals, None, &config).unwrap();
            let direct = stats::compute(&outcome, &bars, &config);
            assert_eq!(json(&direct), json(&e.stats), "{:?}", e.params);
            assert_eq!(e.objective, direct.return_pct);
        }
        // Chunked over workers, merged: the same.
        let parts: Vec<Partial> =
            plan.chunks(5).into_iter().map(|r| evaluate_range(&plan, r, &eval, &st, &one_thread()).unwrap()).collect();
        assert_eq!(json(&finish(&plan, merge(parts).unwrap()).unwrap()), json(&result));
        // The heatmap renders.
        let h = result.heatmap.as_ref().unwrap();
        assert_eq!(h.values.iter().filter(|v| v.is_some()).count(), 40);
        let svg = crate::chart::heatmap(h, &crate::chart::ChartOptions::default()).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn invalid_parameter_values_are_failures_not_silent_zeros() {
        let bars = bars(300, 3);
        let strategy = sma_cross();
        let config = config();
        let external = ExternalSeries::new();
        let eval =
            Backtest { bars: &bars, strategy: &strategy, external: &external, instrument: None, config: &config };
        // SMA periods must be whole numbers in 1..=500: 2.5 and 600 fail, 5 works.
        let s = space(vec![list("fast", &[2.5, 5.0, 600.0]), list("slow", &[20.0])], &[]).unwrap();
        let plan = Plan::grid(s).unwrap();
        let r = optimize(&plan, &eval, &OptimizeSettings::default(), &one_thread()).unwrap();
        assert_eq!((r.evaluated, r.failed), (1, 2));
        assert!(r.first_failure.unwrap().message.contains("fast"));
    }

    #[test]
    fn walk_forward_on_generated_bars() {
        let bars = bars(1_300, 11);
        let strategy = sma_cross();
        let config = config();
        let plan = grid();
        let wf = WalkForwardConfig { in_sample_bars: 400, out_of_sample_bars: 200, step_bars: None, anchored: false };
        let calls = Mutex::new(0u64);
        let last = Mutex::new((0u64, 0u64));
        let progress = |d: u64, t: u64| {
            *calls.lock().unwrap() += 1;
            let mut l = last.lock().unwrap();
            if d > l.0 {
                *l = (d, t);
            }
        };
        let control = Control { progress: Some(&progress), threads: 2, ..Control::default() };
        let st = OptimizeSettings { objective: Objective::NetProfit, ..OptimizeSettings::default() };
        let report =
            walk_forward(&bars, &plan, &strategy, &ExternalSeries::new(), None, &config, &st, &wf, &control).unwrap();
        assert_eq!(report.windows.len(), 4);
        assert_eq!(*last.lock().unwrap(), (4 * 42, 4 * 42));
        assert_eq!(report.equity.len(), 800);
        assert_eq!(report.times.len(), 800);
        assert_eq!(report.times[0], bars.time[400]);
        assert_eq!(report.drawdown.len(), 800);
        assert!(report.drawdown.iter().all(|d| (0.0..=1.0).contains(d)));
        for (w, win) in report.windows.iter().enumerate() {
            assert_eq!((win.in_sample.start, win.in_sample.end), (w * 200, w * 200 + 400));
            assert_eq!((win.out_of_sample.start, win.out_of_sample.end), (w * 200 + 400, w * 200 + 600));
            assert!(win.params["fast"] < win.params["slow"]);
            // The winner is the in-sample optimum: re-optimising the window gives the same parameters.
            let is_bars = Columns {
                time: bars.time[win.in_sample.start..win.in_sample.end].to_vec(),
                open: bars.open[win.in_sample.start..win.in_sample.end].to_vec(),
                high: bars.high[win.in_sample.start..win.in_sample.end].to_vec(),
                low: bars.low[win.in_sample.start..win.in_sample.end].to_vec(),
                close: bars.close[win.in_sample.start..win.in_sample.end].to_vec(),
                volume: bars.volume[win.in_sample.start..win.in_sample.end].to_vec(),
            };
            let ext = ExternalSeries::new();
            let eval =
                Backtest { bars: &is_bars, strategy: &strategy, external: &ext, instrument: None, config: &config };
            let again = optimize(&plan, &eval, &st, &one_thread()).unwrap();
            assert_eq!(again.best[0].params, win.params);
            assert_eq!(again.best[0].objective, win.in_sample_objective);
        }
        // Trades sit inside their out-of-sample windows, and the stitched equity ends where their P/L adds up
        // (each window closes flat; compounding scales each window's P/L by the equity it starts from).
        for t in &report.trades {
            let win = report.windows.iter().find(|w| w.out_of_sample.start <= t.entry_bar).unwrap();
            assert!(t.exit_bar >= t.entry_bar);
            assert!(t.entry_bar >= win.out_of_sample.start);
        }
        let total_pnl: f64 = report.trades.iter().map(|t| t.pnl).sum();
        let last_equity = *report.equity.last().unwrap();
        assert!(
            (last_equity - (config.initial_cash + total_pnl)).abs() < 1e-6 * config.initial_cash,
            "{last_equity} vs {}",
            config.initial_cash + total_pnl
        );
        assert_eq!(report.out_of_sample_stats.trades, report.trades.len());
        if let Some(e) = report.efficiency {
            assert!(e.is_finite());
        }
        let svg = crate::chart::equity_chart(
            &report.times,
            &report.equity,
            &report.drawdown,
            &crate::chart::ChartOptions::default(),
        )
        .unwrap();
        assert!(svg.contains("<polyline"));

        // Data too short for one window.
        let short = WalkForwardConfig { in_sample_bars: 1_000, out_of_sample_bars: 400, ..wf };
        let e = walk_forward(&bars, &plan, &strategy, &ExternalSeries::new(), None, &config, &st, &short, &control);
        assert!(matches!(e, Err(OptimizeError::WalkForward(m)) if m.contains("1300 bars")));
    }
}
