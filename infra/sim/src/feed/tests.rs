use chrono::Timelike;

use super::*;
use crate::testing::{d, sym};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-02T00:00:00Z").expect("time").to_utc()
}

#[test]
fn spreads_in_points_and_pips() {
    let cases: &[(&str, Option<Spread>, &str)] = &[
        ("EURUSD", None, "0.00015"),
        ("USDJPY", None, "0.015"),
        ("EURGBP", None, "0.00025"),
        ("XAUUSD", None, "0.30"),
        ("BTCUSD", None, "30"),
        ("US30", None, "2"),
        ("EURUSD", Some(Spread::Points(d("7"))), "0.00007"),
        ("EURUSD", Some(Spread::Pips(d("0.8"))), "0.00008"),
        ("XAUUSD", Some(Spread::Pips(d("25"))), "0.25"),
        ("USDJPY", Some(Spread::Pips(d("-1"))), "0"),
    ];
    for (symbol, spread, want) in cases {
        let s = sym(symbol);
        let spreads = match spread {
            Some(sp) => Spreads::new().with(s, *sp),
            None => Spreads::new(),
        };
        assert_eq!(spreads.price(s), d(want), "{symbol} {spread:?}");
    }
    let tick = Tick::from_bid(sym("EURUSD"), d("1.085004"), d("0.00015"), t0());
    assert_eq!((tick.bid, tick.ask), (d("1.08500"), d("1.08515")), "rounded to 5 digits, ask = bid + spread");
    assert_eq!(tick.open_price(Side::Buy), tick.ask);
    assert_eq!(tick.close_price(Side::Buy), tick.bid);
    assert_eq!(tick.open_price(Side::Sell), tick.bid);
    assert_eq!(tick.close_price(Side::Sell), tick.ask);
    assert_eq!(tick.mid(), d("1.085075"));
}

const CSV: &str = ",Open,High,Low,Close,Volume\n\
    2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413\n\
    2017-04-19 10:00:00,1.07214,1.07296,1.07214,1.0726,1241\n\
    \n\
    2017-04-19 11:00:00,1.07256,1.07299,1.0717,1.07192,1025\n";

#[test]
fn csv_replay_expands_bars_into_ohlc_ticks() {
    let replay = CandleReplay::from_reader(sym("EURUSD"), CSV.as_bytes()).expect("valid csv");
    assert_eq!(replay.candles().len(), 3, "blank line skipped");
    let ticks: Vec<Tick> = replay.collect();
    assert_eq!(ticks.len(), 12);
    let bids: Vec<Decimal> = ticks.iter().map(|t| t.bid).collect();
    let want = [
        // Rising bar: open, low, high, close.
        "1.0716", "1.07083", "1.0722", "1.07219", //
        "1.07214", "1.07214", "1.07296", "1.0726", //
        // Falling bar: open, high, low, close.
        "1.07256", "1.07299", "1.0717", "1.07192",
    ];
    assert_eq!(bids, want.map(d).to_vec());
    assert!(ticks.iter().all(|t| t.ask - t.bid == d("0.00015")), "default major spread");
    assert!(ticks.windows(2).all(|w| w[0].time < w[1].time), "strictly increasing times");
    let minutes: Vec<i64> = ticks[..4].iter().map(|t| (t.time - ticks[0].time).num_minutes()).collect();
    assert_eq!(minutes, [0, 15, 30, 45], "quarters of the inferred one-hour bar");
    assert_eq!(ticks[4].time - ticks[0].time, TimeDelta::hours(1));
}

#[test]
fn csv_errors_name_the_line() {
    let header = ",Open,High,Low,Close,Volume\n";
    let good = "2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413\n";
    let cases: &[(&str, String, &str)] = &[
        ("high below close", format!("{header}{good}2017-04-19 10:00:00,1.1,1.1,1.0,1.2,5\n"), "line 3: High"),
        ("low above open", format!("{header}2017-04-19 10:00:00,1.1,1.3,1.15,1.2,5\n"), "line 2: Low"),
        ("zero price", format!("{header}{good}{good}"), "line 3: time"),
        ("bad number", format!("{header}2017-04-19 10:00:00,abc,1.3,1.0,1.2,5\n"), "line 2: Open"),
        ("bad time", format!("{header}19/04/2017,1.1,1.3,1.0,1.2,5\n"), "line 2: invalid timestamp"),
        ("short row", format!("{header}{good}\n\n2017-04-19 11:00:00,1.1,1.3\n"), "line 5: expected 6 fields"),
        ("non-positive", format!("{header}2017-04-19 10:00:00,0,1.3,0,1.2,5\n"), "line 2: Open must be"),
        ("negative volume", format!("{header}2017-04-19 10:00:00,1.1,1.3,1.0,1.2,-5\n"), "line 2: Volume"),
        ("bad header", "time,o,h,l,c,v\n".to_string(), "line 1: expected the header"),
        ("empty", String::new(), "empty candle file"),
    ];
    for (label, text, want) in cases {
        let err = parse_candles(sym("EURUSD").instrument(), text.as_bytes()).expect_err(label);
        assert!(err.to_string().starts_with(want), "{label}: {err}");
    }
    let err = parse_candles(sym("EURUSD").instrument(), format!("{header}{good}{good}").as_bytes());
    assert!(matches!(err, Err(FeedError::Row { line: 3, problem: RowProblem::TimeNotIncreasing { .. } })));
}

#[test]
fn csv_accepts_crlf_bom_and_dates() {
    let text = "\u{feff},open,high,low,close,volume\r\n2004-08-19,100.0,104.06,95.96,100.34,22351900\r\n";
    let candles = parse_candles(sym("US500").instrument(), text.as_bytes()).expect("valid");
    assert_eq!(candles.len(), 1);
    assert_eq!(candles[0].close, d("100.34"));
    assert_eq!(candles[0].time, DateTime::parse_from_rfc3339("2004-08-19T00:00:00Z").expect("t").to_utc());
}

#[test]
fn real_eurusd_sample_replays() {
    let path = "/work/shared/data/EURUSD.csv";
    if !Path::new(path).exists() {
        println!("skipped: {path} is absent");
        return;
    }
    let replay = CandleReplay::from_path(sym("EURUSD"), path).expect("the sample is valid");
    assert_eq!(replay.candles().len(), 5000);
    let ticks: Vec<Tick> = replay.collect();
    assert_eq!(ticks.len(), 20_000);
    assert!(ticks.iter().all(Tick::is_valid));
    assert!(ticks.windows(2).all(|w| w[0].time < w[1].time));
}

#[test]
fn random_walk_is_deterministic_positive_and_on_digits() {
    let symbols = ["EURUSD", "USDJPY", "XAUUSD", "BTCUSD", "US30", "EURGBP"].map(sym);
    let walk = |seed| {
        RandomWalk::new(seed, symbols, t0(), TimeDelta::seconds(1)).expect("walk").take(6 * 2000).collect::<Vec<_>>()
    };
    let a = walk(7);
    assert_eq!(a, walk(7), "same seed, same ticks");
    assert_ne!(a, walk(8), "another seed, another path");
    let first: Vec<Decimal> = a[..6].iter().map(|t| t.bid).collect();
    assert_eq!(first, ["1.0850", "149.50", "2050.00", "42000.00", "37500", "0.8580"].map(d).to_vec());
    for t in &a {
        let inst = t.symbol.instrument();
        assert!(t.is_valid(), "{t:?}");
        assert_eq!(t.bid, inst.round_price(t.bid), "bid on digits: {t:?}");
        assert_eq!(t.ask - t.bid, Spreads::new().price(t.symbol), "spread: {t:?}");
    }
    assert_eq!(a[6].time - a[0].time, TimeDelta::seconds(1), "one step per interval, all symbols per step");
    assert_eq!(a[5].time, a[0].time);
    let eur: Vec<Decimal> = a.iter().filter(|t| t.symbol.as_str() == "EURUSD").map(|t| t.bid).collect();
    assert!(eur.windows(2).any(|w| w[0] != w[1]), "it moves");
    assert!(eur.iter().all(|b| (d("0.9")..d("1.3")).contains(b)), "FX volatility stays plausible");
}

#[test]
fn random_walk_never_reaches_zero() {
    let s = sym("EURUSD");
    let walk = RandomWalk::new(1, [s], t0(), TimeDelta::seconds(1))
        .and_then(|w| w.with_start_price(s, d("0.00003")))
        .and_then(|w| w.with_volatility(s, 2.0))
        .expect("walk");
    for t in walk.take(5000) {
        assert!(t.bid >= d("0.00001"), "{t:?}");
    }
}

#[test]
fn random_walk_settings_are_checked() {
    let s = sym("EURUSD");
    assert!(matches!(RandomWalk::new(1, [s], t0(), TimeDelta::zero()), Err(FeedError::NonPositiveInterval(_))));
    let walk = || RandomWalk::new(1, [s], t0(), TimeDelta::seconds(1)).expect("walk");
    assert!(matches!(walk().with_volatility(s, f64::NAN), Err(FeedError::InvalidVolatility { .. })));
    assert!(matches!(walk().with_start_price(s, d("-1")), Err(FeedError::InvalidStartPrice { .. })));
    assert_eq!(RandomWalk::new(1, [], t0(), TimeDelta::seconds(1)).expect("walk").next(), None);
    let frozen = walk().with_volatility(s, 0.0).expect("walk");
    assert!(frozen.take(100).all(|t| t.bid == d("1.0850")));
}

#[test]
fn price_feed_merges_sources_in_time_order() {
    let replay = CandleReplay::from_reader(sym("EURUSD"), CSV.as_bytes()).expect("csv");
    let start = DateTime::parse_from_rfc3339("2017-04-19T09:20:00Z").expect("t").to_utc();
    let walk = RandomWalk::new(3, [sym("GBPUSD")], start, TimeDelta::minutes(30)).expect("walk");
    let ticks: Vec<Tick> =
        PriceFeed::replay(replay).with(FeedSource::Random(Box::new(walk))).take_while(|t| t.time.hour() < 12).collect();
    assert!(ticks.windows(2).all(|w| w[0].time <= w[1].time), "time ordered");
    assert_eq!(ticks.iter().filter(|t| t.symbol.as_str() == "EURUSD").count(), 12);
    assert_eq!(ticks.iter().filter(|t| t.symbol.as_str() == "GBPUSD").count(), 6, "09:20 to 11:50");
    assert_eq!(PriceFeed::new().next_tick(), None);
}
