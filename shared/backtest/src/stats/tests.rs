//! Statistics on small hand-made runs, expectations computed by hand from backtesting.py's definitions.

use chrono::{DateTime, Duration, TimeZone, Utc};
use nusatrade_domain::money::Side;
use nusatrade_ml::candles::Columns;

use super::*;
use crate::engine::{ExitReason, Trade};

fn t0() -> DateTime<Utc> {
    // A Tuesday.
    Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap()
}

fn bars(closes: &[f64], step: Duration) -> Columns {
    let mut c = Columns::default();
    for (i, &x) in closes.iter().enumerate() {
        c.time.push(t0() + step * i as i32);
        c.open.push(x);
        c.high.push(x);
        c.low.push(x);
        c.close.push(x);
        c.volume.push(0.0);
    }
    c
}

fn outcome(equity: &[f64], trades: Vec<Trade>, warmup: usize) -> Outcome {
    Outcome {
        trades,
        equity: equity.to_vec(),
        drawdown: vec![0.0; equity.len()],
        exposure_bars: 0,
        skipped_entries: 0,
        warmup,
    }
}

fn config() -> EngineConfig {
    EngineConfig::backtesting_py(100.0, 0.0)
}

/// A trade from bar `entry` to bar `exit` of hourly bars.
fn trade(entry: usize, exit: usize, pnl: f64, ret: f64, commission: f64) -> Trade {
    let at = |i: usize| t0() + Duration::hours(i as i64);
    Trade {
        side: Side::Buy,
        units: 1.0,
        lots: None,
        entry_bar: entry,
        entry_time: at(entry),
        entry_price: 1.0,
        exit_bar: exit,
        exit_time: at(exit),
        exit_price: 1.0,
        pnl,
        return_pct: ret,
        commission,
        swap: 0.0,
        mae: 0.0,
        mfe: 0.0,
        exit_reason: ExitReason::Signal,
    }
}

fn approx(label: &str, got: f64, want: f64) {
    let ok = (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-12 * want.abs().max(1.0);
    assert!(ok, "{label}: got {got}, want {want}");
}

#[test]
fn returns_drawdowns_and_annualised_figures() {
    // Seven daily bars (Tuesday to Monday: 2 weekend days of 7 > 60 % of 2/7, so 365 days a year).
    let equity = [100.0, 110.0, 99.0, 110.0, 121.0, 108.9, 121.0];
    let closes = [10.0, 11.0, 12.0, 11.0, 10.0, 12.0, 13.0];
    let b = bars(&closes, Duration::days(1));
    let s = compute(&outcome(&equity, vec![], 1), &b, &config());
    let day_returns = [0.1, -0.1, 11.0 / 99.0, 0.1, -0.1, 121.0 / 108.9 - 1.0];
    let g = 1.21f64.powf(1.0 / 6.0) - 1.0;
    let ann = (1.0 + g).powf(365.0) - 1.0;
    let mean = day_returns.iter().sum::<f64>() / 6.0;
    let var = day_returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / 5.0;
    let vol = ((var + (1.0 + g) * (1.0 + g)).powf(365.0) - (1.0 + g).powf(730.0)).sqrt() * 100.0;
    let cases = [
        ("return", s.return_pct, 21.0),
        ("buy & hold from the warm-up bar's close", s.buy_hold_return_pct, 2.0 / 11.0 * 100.0),
        ("equity final", s.equity_final, 121.0),
        ("equity peak", s.equity_peak, 121.0),
        ("net profit", s.net_profit, 21.0),
        ("max drawdown (negative)", s.max_drawdown_pct, -10.0),
        ("avg drawdown: two episodes of 10 %", s.avg_drawdown_pct, -10.0),
        ("return (ann.)", s.return_ann_pct, ann * 100.0),
        ("volatility (ann.)", s.volatility_ann_pct, vol),
        ("sharpe", s.sharpe_ratio, ann * 100.0 / vol),
        ("sortino", s.sortino_ratio, ann / ((0.01 + 0.01) / 6.0f64).sqrt() / 365f64.sqrt()),
        ("calmar", s.calmar_ratio, ann / 0.1),
        ("cagr", s.cagr_pct, (1.21f64.powf(365.25 / 6.0) - 1.0) * 100.0),
        ("exposure without trades", s.exposure_time_pct, 0.0),
    ];
    for (label, got, want) in cases {
        approx(label, got, want);
    }
    assert_eq!(s.start, Some(t0()));
    assert_eq!(s.duration_secs, 6 * 86_400);
    // Episodes 1 → 3 and 4 → 6: two days each (daily resolution).
    assert_eq!((s.max_drawdown_duration_secs, s.avg_drawdown_duration_secs), (2 * 86_400, 2 * 86_400));
    assert!(s.alpha_pct.is_finite() && s.beta.is_finite());
}

#[test]
fn trade_statistics() {
    // Ten hourly bars; trades over bars 1–2, 3–5, 5–7 and 8–10.
    let trades = vec![
        trade(1, 2, 10.0, 0.02, 1.0),
        trade(3, 5, -5.0, -0.01, 1.5),
        trade(5, 7, 20.0, 0.04, 2.0),
        trade(8, 10, -15.0, -0.03, 0.5),
    ];
    let b = bars(&[1.0; 11], Duration::hours(1));
    let s = compute(&outcome(&[100.0; 11], trades, 0), &b, &config());
    let std = (725.0f64 / 3.0).sqrt(); // deviations from the mean P/L 2.5: ±7.5, ±17.5
    let cases = [
        ("exposure: bars 1–10 of 11", s.exposure_time_pct, 10.0 / 11.0 * 100.0),
        ("commissions", s.commissions, 5.0),
        ("win rate", s.win_rate_pct, 50.0),
        ("best", s.best_trade_pct, 4.0),
        ("worst", s.worst_trade_pct, -3.0),
        ("avg trade: geometric", s.avg_trade_pct, ((1.02f64 * 0.99 * 1.04 * 0.97).powf(0.25) - 1.0) * 100.0),
        ("profit factor on returns", s.profit_factor, 0.06 / 0.04),
        ("expectancy %", s.expectancy_pct, 0.5),
        ("expectancy", s.expectancy, 2.5),
        ("avg win", s.avg_win, 15.0),
        ("avg loss (positive)", s.avg_loss, 10.0),
        ("sqn", s.sqn, 2.0 * 2.5 / std),
        ("kelly", s.kelly_criterion, 0.5 - 0.5 / (15.0 / 10.0)),
    ];
    for (label, got, want) in cases {
        approx(label, got, want);
    }
    assert_eq!((s.trades, s.winning_trades, s.losing_trades), (4, 2, 2));
    // Durations 1, 2, 2, 2 h: max 2 h; mean 1.75 h rounded up to the hour (the data's resolution).
    assert_eq!((s.max_trade_duration_secs, s.avg_trade_duration_secs), (7_200, 7_200));
}

#[test]
fn without_trades_or_drawdowns() {
    let b = bars(&[1.0, 1.1, 1.2, 1.3], Duration::hours(1));
    let s = compute(&outcome(&[100.0; 4], vec![], 0), &b, &config());
    for (label, v) in [
        ("win rate", s.win_rate_pct),
        ("best", s.best_trade_pct),
        ("avg trade", s.avg_trade_pct),
        ("profit factor", s.profit_factor),
        ("expectancy", s.expectancy),
        ("avg win", s.avg_win),
        ("sqn", s.sqn),
        ("kelly", s.kelly_criterion),
        ("avg drawdown", s.avg_drawdown_pct),
        ("calmar", s.calmar_ratio),
        ("sharpe (no volatility)", s.sharpe_ratio),
        ("sortino (0 / 0)", s.sortino_ratio),
    ] {
        assert!(v.is_nan(), "{label}: {v}");
    }
    assert_eq!((s.trades, s.winning_trades, s.losing_trades, s.max_trade_duration_secs), (0, 0, 0, 0));
    assert_eq!((s.max_drawdown_pct, s.max_drawdown_duration_secs, s.return_pct, s.commissions), (0.0, 0, 0.0, 0.0));
    // No bar at all.
    let s = compute(&outcome(&[], vec![], 0), &Columns::default(), &config());
    assert!(s.start.is_none() && s.return_pct.is_nan() && s.exposure_time_pct.is_nan());
}

#[test]
fn drawdown_episode_edges() {
    let hourly =
        |eq: &[f64]| compute(&outcome(eq, vec![], 0), &bars(&vec![1.0; eq.len()], Duration::hours(1)), &config());
    // Not recovered by the end: the episode runs to the last bar.
    let s = hourly(&[100.0, 90.0, 95.0]);
    approx("open episode depth", s.max_drawdown_pct, -10.0);
    approx("open episode average", s.avg_drawdown_pct, -10.0);
    assert_eq!(s.max_drawdown_duration_secs, 7_200);
    // A dip on the last bar only is no episode (fewer than one bar between peaks): backtesting.py then averages
    // the non-zero drawdowns and has no duration.
    let s = hourly(&[100.0, 100.0, 90.0]);
    approx("last-bar dip", s.avg_drawdown_pct, -10.0);
    assert_eq!(s.max_drawdown_duration_secs, 0);
    // Two episodes of 10 % and 20 %: average −15 %.
    let s = hourly(&[100.0, 90.0, 100.0, 80.0, 100.0]);
    approx("average of episodes", s.avg_drawdown_pct, -15.0);
    approx("max", s.max_drawdown_pct, -20.0);
}

#[test]
fn periods_and_annualisation() {
    // Resolution: the smallest non-zero component of the bar spacing.
    let cases = [
        (3_600 * NS, 3_600 * NS),
        (DAY_NS, DAY_NS),
        (7 * DAY_NS, DAY_NS),
        (90 * 60 * NS, 60 * NS),
        (26 * 3_600 * NS, 3_600 * NS),
        (1_500_000_000, 1_000_000),
    ];
    for (period, want) in cases {
        assert_eq!(resolution(period), want, "period {period}");
    }
    assert_eq!(ceil_to(5_400 * NS, 3_600 * NS), 7_200 * NS);
    assert_eq!(ceil_to(7_200 * NS, 3_600 * NS), 7_200 * NS);

    // Weekly bars: 52 periods a year; each bar its own week.
    let eq: Vec<f64> = (0..10).map(|k| 100.0 * 1.01f64.powi(k)).collect();
    let b = bars(&[1.0; 10], Duration::days(7));
    let s = compute(&outcome(&eq, vec![], 0), &b, &config());
    approx("weekly", s.return_ann_pct, (1.01f64.powf(52.0) - 1.0) * 100.0);

    // Hourly weekday bars (Tuesday to Thursday): 252 days, the last equity of each day.
    let eq: Vec<f64> = (0..72).map(|h| [100.0, 110.0, 121.0][h / 24] - if h % 24 == 0 { 5.0 } else { 0.0 }).collect();
    let b = bars(&[1.0; 72], Duration::hours(1));
    let s = compute(&outcome(&eq, vec![], 0), &b, &config());
    approx("daily from hourly", s.return_ann_pct, (1.1f64.powf(252.0) - 1.0) * 100.0);

    // The median spacing of the last 100 bars.
    let mut times: Vec<DateTime<Utc>> = (0..5).map(|i| t0() + Duration::hours(i)).collect();
    times.push(t0() + Duration::hours(100));
    assert_eq!(data_period(&times), 3_600 * NS);
    assert_eq!(data_period(&times[..1]), 0);
    assert_eq!(data_period(&times[..2]), 3_600 * NS);
}

#[test]
fn log_ratio_series_is_as_accurate_as_ln() {
    let mut worst = 0.0_f64;
    for i in -2_000..=2_000 {
        for b in [1.0, 1.1, 97.3, 15_000.0] {
            let a = b * (1.0 + f64::from(i) * 1e-5 + 1e-9);
            let (got, want) = (ln_ratio(a, b), (a / b).ln());
            if want != 0.0 {
                worst = worst.max(((got - want) / want).abs());
            }
        }
    }
    assert!(worst < 1e-15, "largest relative difference {worst:e}");
    assert_eq!(ln_ratio(3.0, 1.0), 3f64.ln(), "outside the series' range: ln itself");
    assert_eq!(ln_ratio(2.0, 2.0), 0.0);
}

#[test]
fn market_is_reused_and_rebuilt_when_stale() {
    let eq = [100.0, 101.0, 99.0, 103.0, 104.0];
    let a = bars(&[1.0, 1.1, 1.05, 1.2, 1.3], Duration::hours(5));
    let b = bars(&[2.0, 1.1, 1.05, 1.2, 1.9], Duration::days(1));
    let o = outcome(&eq, vec![trade(1, 3, 2.0, 0.02, 0.1)], 0);
    let market_a = Market::new(&a);
    let direct = compute(&o, &b, &config());
    assert_eq!(
        format!("{:?}", compute_with(&o, &a, &config(), &market_a)),
        format!("{:?}", compute(&o, &a, &config()))
    );
    // A market of other bars is not used.
    assert_eq!(format!("{:?}", compute_with(&o, &b, &config(), &market_a)), format!("{direct:?}"));
    assert_ne!(format!("{:?}", compute(&o, &a, &config())), format!("{direct:?}"));
}
