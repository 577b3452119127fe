use chrono::TimeDelta;
use proptest::prelude::*;

use super::*;
use crate::testing::{d, sym};

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-02T10:00:00Z").expect("time").to_utc() + TimeDelta::minutes(minutes)
}

fn tick(symbol: &str, bid: &str, ask: &str) -> Tick {
    Tick { symbol: sym(symbol), bid: d(bid), ask: d(ask), time: at(0) }
}

fn tick_at(symbol: &str, bid: &str, ask: &str, minutes: i64) -> Tick {
    Tick { time: at(minutes), ..tick(symbol, bid, ask) }
}

fn usd(balance: &str) -> PaperAccount {
    PaperAccount::new(Currency::USD, d(balance), 100)
}

fn order(symbol: &str, side: Side, lots: &str) -> OpenRequest {
    OpenRequest {
        symbol: symbol.to_string(),
        side,
        lots: d(lots),
        stop_loss: None,
        take_profit: None,
        comment: String::new(),
        time: at(0),
    }
}

fn with_stops(mut req: OpenRequest, sl: Option<&str>, tp: Option<&str>) -> OpenRequest {
    req.stop_loss = sl.map(d);
    req.take_profit = tp.map(d);
    req
}

#[test]
fn fills_at_ask_for_buy_and_bid_for_sell() {
    let mut acct = usd("10000");
    acct.on_tick(tick("EURUSD", "1.08500", "1.08515"));
    let buy = acct.open(order("EURUSD", Side::Buy, "1")).expect("buy");
    let sell = acct.open(order("eurusd.m", Side::Sell, "1")).expect("sell, broker suffix normalised");
    assert_eq!((buy.price, sell.price), (d("1.08515"), d("1.08500")));
    assert_eq!((buy.ticket, sell.ticket), (Ticket(100_000_001), Ticket(100_000_002)), "increasing tickets");
    assert_eq!((buy.deal, sell.deal), (Ticket(200_000_001), Ticket(200_000_002)));
    assert_eq!(buy.time, at(0));
    let positions = acct.positions();
    // Each position is valued at its closing price: the spread is an immediate loss of 15 USD per lot.
    assert_eq!(positions[0].current_price, d("1.08500"));
    assert_eq!(positions[1].current_price, d("1.08515"));
    assert_eq!(positions.iter().map(|p| p.profit).collect::<Vec<_>>(), [d("-15.00"), d("-15.00")]);
    assert_eq!(acct.account().equity, d("9970.00"));
}

#[test]
fn realised_profit_per_instrument() {
    // (symbol, side, lots, open tick [bid, ask], close tick [bid, ask], profit in USD). BUY opens at the ask and
    // closes at the bid; SELL the reverse.
    type Case<'a> = (&'a str, Side, &'a str, [&'a str; 2], [&'a str; 2], &'a str);
    let cases: &[Case] = &[
        // 50 pips × 10 USD per pip per lot.
        ("EURUSD", Side::Buy, "1", ["1.08485", "1.08500"], ["1.09000", "1.09015"], "500.00"),
        ("EURUSD", Side::Sell, "1", ["1.09000", "1.09015"], ["1.08485", "1.08500"], "500.00"),
        ("EURUSD", Side::Buy, "0.1", ["1.08485", "1.08500"], ["1.08300", "1.08315"], "-20.00"),
        // 0.5 × 100 000 = 50 000 JPY ÷ 150.500 (the close price; account = base) = 332.2259… USD.
        ("USDJPY", Side::Buy, "1", ["149.985", "150.000"], ["150.500", "150.515"], "332.23"),
        // −0.3 × 100 000 = −30 000 JPY; a SELL closes at the ask 150.300 → −199.60 USD.
        ("USDJPY", Side::Sell, "1", ["150.000", "150.015"], ["150.285", "150.300"], "-199.60"),
        // 10 USD × 100 oz.
        ("XAUUSD", Side::Buy, "1", ["2049.70", "2050.00"], ["2060.00", "2060.30"], "1000.00"),
        ("XAUUSD", Side::Sell, "0.5", ["2050.00", "2050.30"], ["2039.70", "2040.00"], "500.00"),
        // 1 000 USD × 0.1 BTC.
        ("BTCUSD", Side::Buy, "0.1", ["41970", "42000"], ["43000", "43030"], "100.00"),
    ];
    for (symbol, side, lots, open, close, profit) in cases {
        let label = format!("{symbol} {} {lots}", side.as_str());
        let (fill, exit) = match side {
            Side::Buy => (open[1], close[0]),
            Side::Sell => (open[0], close[1]),
        };
        let mut acct = usd("100000");
        acct.on_tick(tick(symbol, open[0], open[1]));
        let opened = acct.open(order(symbol, *side, lots)).expect(&label);
        assert_eq!(opened.price, d(fill), "{label}: fill");
        acct.on_tick(tick_at(symbol, close[0], close[1], 5));
        assert_eq!(acct.account().profit, d(profit), "{label}: floating before close");
        let closed = acct.close(opened.ticket, None, at(5)).expect(&label);
        assert_eq!((closed.price, closed.profit, closed.lots), (d(exit), d(profit), d(lots)), "{label}");
        assert_eq!(acct.account().balance, d("100000") + d(profit), "{label}: balance");
        assert!(acct.positions().is_empty(), "{label}");
        let account = acct.account();
        assert_eq!((account.margin, account.equity), (Decimal::ZERO, account.balance), "{label}");
    }
}

#[test]
fn partial_close_keeps_the_rest_open() {
    let mut acct = usd("10000");
    acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
    let opened = acct.open(with_stops(order("EURUSD", Side::Buy, "1"), Some("1.08000"), None)).expect("open");
    assert_eq!(acct.account().margin, d("1085.00"), "100 000 EUR / 100 × 1.08500");
    acct.on_tick(tick_at("EURUSD", "1.09000", "1.09015", 1));
    let part = acct.close(opened.ticket, Some(d("0.3")), at(1)).expect("partial");
    assert_eq!((part.lots, part.profit), (d("0.3"), d("150.00")));
    let rest = acct.position(opened.ticket).expect("still open");
    assert_eq!(rest.lots, d("0.7"));
    assert_eq!(rest.stop_loss, Some(d("1.08000")), "stops kept");
    assert_eq!(rest.profit, d("350.00"));
    let account = acct.account();
    assert_eq!(account.balance, d("10150.00"));
    assert_eq!(account.margin, d("763.11"), "70 000 EUR / 100 × 1.09015 (current ask) = 763.105, half away from zero");
}

#[test]
fn close_volume_checks() {
    let mut acct = usd("10000");
    acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
    let t = acct.open(order("EURUSD", Side::Buy, "0.5")).expect("open").ticket;
    let cases: &[(&str, &str, Retcode)] = &[
        ("more than the position", "0.6", INVALID_CLOSE_VOLUME),
        ("off step", "0.005", INVALID_VOLUME),
        ("zero", "0", INVALID_VOLUME),
    ];
    for (label, lots, code) in cases {
        assert_eq!(acct.close(t, Some(d(lots)), at(1)).map_err(|r| r.retcode), Err(*code), "{label}");
    }
    let us30 = {
        acct.on_tick(tick("US30", "37500.00", "37502.00"));
        acct.open(order("US30", Side::Buy, "0.3")).expect("index").ticket
    };
    assert_eq!(acct.close(us30, Some(d("0.3")), at(1)).map(|f| f.lots), Ok(d("0.3")), "whole volume given");
    assert_eq!(
        acct.close(Ticket(42), None, at(1)),
        Err(Reject { retcode: POSITION_NOT_FOUND, message: "Position 42 not found".into() })
    );
    assert_eq!(acct.close(us30, None, at(2)).map_err(|r| r.message), Err(format!("Position {} not found", us30.0)));
    assert_eq!(acct.position(t).map(|p| p.lots), Some(d("0.5")), "rejections changed nothing");
}

#[test]
fn stop_loss_and_take_profit_hits() {
    use DealReason::{StopLoss as Sl, TakeProfit as Tp};
    // Opened on bid 1.10000 / ask 1.10010. BUY: SL 1.09800, TP 1.10300, closes at the bid.
    // SELL: SL 1.10200, TP 1.09700, closes at the ask. (label, side, bid, ask, expected hit, fill)
    type Case<'a> = (&'a str, Side, &'a str, &'a str, Option<DealReason>, &'a str);
    let cases: &[Case] = &[
        ("buy: bid above SL", Side::Buy, "1.09801", "1.09816", None, ""),
        ("buy: bid at SL", Side::Buy, "1.09800", "1.09815", Some(Sl), "1.09800"),
        ("buy: ask at SL, bid below", Side::Buy, "1.09790", "1.09800", Some(Sl), "1.09790"),
        ("buy: SL gap fills at the bid", Side::Buy, "1.09500", "1.09515", Some(Sl), "1.09500"),
        ("buy: ask at TP is not enough", Side::Buy, "1.10290", "1.10300", None, ""),
        ("buy: bid at TP", Side::Buy, "1.10300", "1.10315", Some(Tp), "1.10300"),
        ("buy: TP gap fills at TP", Side::Buy, "1.10800", "1.10815", Some(Tp), "1.10300"),
        ("sell: bid at SL is not enough", Side::Sell, "1.10200", "1.10199", None, ""),
        ("sell: ask at SL", Side::Sell, "1.10185", "1.10200", Some(Sl), "1.10200"),
        ("sell: SL gap fills at the ask", Side::Sell, "1.10585", "1.10600", Some(Sl), "1.10600"),
        ("sell: bid at TP is not enough", Side::Sell, "1.09700", "1.09715", None, ""),
        ("sell: ask at TP", Side::Sell, "1.09685", "1.09700", Some(Tp), "1.09700"),
        ("sell: TP gap fills at TP", Side::Sell, "1.09285", "1.09300", Some(Tp), "1.09700"),
    ];
    for (label, side, bid, ask, reason, fill) in cases {
        let (sl, tp) = match side {
            Side::Buy => ("1.09800", "1.10300"),
            Side::Sell => ("1.10200", "1.09700"),
        };
        let mut acct = usd("10000");
        acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
        let mut req = with_stops(order("EURUSD", *side, "1"), Some(sl), Some(tp));
        req.comment = "NT-abc".into();
        let opened = acct.open(req).expect(label);
        let closed = acct.on_tick(tick_at("EURUSD", bid, ask, 3));
        let Some(reason) = reason else {
            assert!(closed.is_empty(), "{label}: {closed:?}");
            assert_eq!(acct.positions().len(), 1, "{label}");
            continue;
        };
        assert_eq!(closed.len(), 1, "{label}");
        let c = &closed[0];
        assert_eq!((c.ticket, c.reason, c.close_price), (opened.ticket, *reason, d(fill)), "{label}");
        let want = (d(fill) - opened.price) * side.sign() * d("100000");
        assert_eq!(c.profit, want, "{label}: profit");
        assert_eq!((c.time, c.comment.as_str(), c.lots), (at(3), "NT-abc", d("1")), "{label}");
        assert!(acct.positions().is_empty(), "{label}");
        assert_eq!(acct.account().balance, d("10000") + want, "{label}: balance");
        let deal = acct.history().last().expect("closing deal");
        assert_eq!(
            (deal.entry, deal.reason, deal.position, deal.side, deal.price),
            (DealEntry::Out, *reason, opened.ticket, side.opposite(), d(fill)),
            "{label}: deal"
        );
    }
}

#[test]
fn stops_only_react_to_their_symbol_and_close_in_ticket_order() {
    let mut acct = usd("100000");
    acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
    acct.on_tick(tick("GBPUSD", "1.10000", "1.10010"));
    let a = acct.open(with_stops(order("EURUSD", Side::Buy, "1"), Some("1.09900"), None)).expect("a").ticket;
    let g = acct.open(with_stops(order("GBPUSD", Side::Buy, "1"), Some("1.09900"), None)).expect("g").ticket;
    let b = acct.open(with_stops(order("EURUSD", Side::Buy, "1"), Some("1.09950"), None)).expect("b").ticket;
    let closed = acct.on_tick(tick_at("EURUSD", "1.09000", "1.09010", 1));
    assert_eq!(closed.iter().map(|c| c.ticket).collect::<Vec<_>>(), [a, b]);
    assert_eq!(acct.positions().iter().map(|p| p.ticket).collect::<Vec<_>>(), [g]);
    assert!(acct.on_tick(tick_at("EURUSD", "1.00000", "1.00010", 2)).is_empty(), "nothing left to close");
}

#[test]
fn no_money() {
    let mut acct = usd("1000");
    acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
    acct.on_tick(tick("XAUUSD", "2049.70", "2050.00"));
    let err = acct.open(order("EURUSD", Side::Buy, "1")).expect_err("needs 1085 USD");
    assert_eq!(err.retcode, Retcode::NO_MONEY);
    assert_eq!(err.message, "No money: margin 1085.00 USD required, free margin 1000 USD");
    // 0.9 lot needs 976.50: accepted; then the spread loss (13.50) leaves 10.00 free.
    acct.open(order("EURUSD", Side::Buy, "0.9")).expect("fits");
    let state = acct.account();
    assert_eq!((state.margin, state.equity, state.free_margin), (d("976.50"), d("986.50"), d("10.00")));
    // 0.01 lot of gold needs 100 × 0.01 × 2050 / 100 = 20.50 USD > 10.00.
    assert_eq!(acct.open(order("XAUUSD", Side::Buy, "0.01")).map_err(|r| r.retcode), Err(Retcode::NO_MONEY));
    assert_eq!(acct.positions().len(), 1, "nothing opened");
    // A bigger leverage needs less margin.
    let mut lev = PaperAccount::new(Currency::USD, d("1000"), 500);
    lev.on_tick(tick("EURUSD", "1.08485", "1.08500"));
    assert_eq!(lev.open(order("EURUSD", Side::Buy, "1")).map(|_| lev.account().margin), Ok(d("217.00")));
}

#[test]
fn invalid_volume() {
    let mut acct = usd("1000000");
    acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
    acct.on_tick(tick("US30", "37500.00", "37502.00"));
    let cases: &[(&str, &str, &str, &str)] = &[
        ("below min", "EURUSD", "0.001", "Invalid volume 0.001: Lot size must be at least 0.01"),
        ("above max", "EURUSD", "10.01", "Invalid volume 10.01: Lot size cannot exceed 10.0"),
        ("off step", "EURUSD", "0.015", "Invalid volume 0.015: Lot size must be in 0.01 increments"),
        ("zero", "EURUSD", "0", "Invalid volume 0: Lot size must be positive"),
        ("negative", "EURUSD", "-1", "Invalid volume -1: Lot size must be positive"),
        ("index step is 0.1", "US30", "0.15", "Invalid volume 0.15: Lot size must be in 0.1 increments"),
    ];
    for (label, symbol, lots, message) in cases {
        let err = acct.open(order(symbol, Side::Buy, lots)).expect_err(label);
        assert_eq!((err.retcode, err.message.as_str()), (INVALID_VOLUME, *message), "{label}");
    }
    assert!(acct.positions().is_empty());
    assert!(acct.history().is_empty());
}

#[test]
fn unknown_symbol_and_missing_prices() {
    let mut acct = usd("10000");
    let err = acct.open(order("FOOBAR", Side::Buy, "1")).expect_err("unknown");
    assert_eq!((err.retcode, err.message.as_str()), (INVALID, "Symbol FOOBAR not found"));
    let err = acct.open(order("GBPUSD", Side::Buy, "1")).expect_err("no tick");
    assert_eq!((err.retcode, err.message.as_str()), (Retcode::PRICE_OFF, "No prices for GBPUSD"));
    // Invalid ticks are ignored.
    assert!(acct.on_tick(tick("GBPUSD", "0", "1.2")).is_empty());
    assert!(acct.on_tick(tick("GBPUSD", "1.3", "1.2")).is_empty());
    assert_eq!(acct.last_tick(sym("GBPUSD")), None);
    assert_eq!(err.to_string(), "No prices for GBPUSD (retcode 10021)");
}

#[test]
fn wrong_side_stops_on_open() {
    use nusatrade_domain::order::StopsError as E;
    let mut acct = usd("100000");
    acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
    // (label, side, SL, TP, expected error or None for accepted)
    type Case<'a> = (&'a str, Side, Option<&'a str>, Option<&'a str>, Option<E>);
    let cases: &[Case] = &[
        ("buy ok", Side::Buy, Some("1.09900"), Some("1.10100"), None),
        ("buy SL above bid", Side::Buy, Some("1.10005"), None, Some(E::StopLossWrongSide(Side::Buy))),
        ("buy SL above ask", Side::Buy, Some("1.10100"), None, Some(E::StopLossWrongSide(Side::Buy))),
        ("buy TP below ask", Side::Buy, None, Some("1.10005"), Some(E::TakeProfitWrongSide(Side::Buy))),
        ("buy TP below bid", Side::Buy, None, Some("1.09000"), Some(E::TakeProfitWrongSide(Side::Buy))),
        ("sell ok", Side::Sell, Some("1.10100"), Some("1.09900"), None),
        ("sell SL below ask", Side::Sell, Some("1.10005"), None, Some(E::StopLossWrongSide(Side::Sell))),
        ("sell TP above bid", Side::Sell, None, Some("1.10005"), Some(E::TakeProfitWrongSide(Side::Sell))),
        ("negative SL", Side::Buy, Some("-1"), None, Some(E::StopLossNotPositive)),
        ("zero means none", Side::Buy, Some("0"), Some("0"), None),
    ];
    for (label, side, sl, tp, want) in cases {
        let got = acct.open(with_stops(order("EURUSD", *side, "0.01"), *sl, *tp));
        match want {
            None => {
                let p = acct.position(got.expect(label).ticket).expect(label);
                if sl == &Some("0") {
                    assert_eq!((p.stop_loss, p.take_profit), (None, None), "{label}");
                }
            }
            Some(e) => {
                let err = got.expect_err(label);
                assert_eq!(err.retcode, INVALID_STOPS, "{label}");
                assert_eq!(err.message, format!("Invalid stops: {e}"), "{label}");
            }
        }
    }
    assert_eq!(
        format!("{}", E::StopLossWrongSide(Side::Buy)),
        "Stop loss for BUY order must be below entry price",
        "the original's wording"
    );
    let p = acct.open(with_stops(order("EURUSD", Side::Buy, "0.01"), Some("1.0990049"), None)).expect("rounded");
    assert_eq!(acct.position(p.ticket).and_then(|p| p.stop_loss), Some(d("1.09900")), "rounded to 5 digits");
}

#[test]
fn modify_keeps_removes_and_checks_stops() {
    let mut acct = usd("100000");
    acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
    let t = acct.open(with_stops(order("EURUSD", Side::Buy, "1"), Some("1.09800"), Some("1.10500"))).expect("o").ticket;
    let p = acct.modify(t, Some(d("1.09900")), None).expect("SL only");
    assert_eq!((p.stop_loss, p.take_profit), (Some(d("1.09900")), Some(d("1.10500"))), "None keeps the TP");
    let p = acct.modify(t, None, Some(d("0"))).expect("remove TP");
    assert_eq!((p.stop_loss, p.take_profit), (Some(d("1.09900")), None));
    let err = acct.modify(t, None, None).expect_err("nothing to change");
    assert_eq!(err.retcode, NO_CHANGES);
    assert_eq!(acct.modify(t, Some(d("1.09900")), None).map_err(|r| r.retcode), Err(NO_CHANGES));
    let err = acct.modify(t, Some(d("1.10000")), None).expect_err("SL at the bid");
    assert_eq!(
        (err.retcode, err.message.as_str()),
        (INVALID_STOPS, "Invalid stops: Stop loss for BUY order must be below entry price")
    );
    assert_eq!(acct.modify(t, None, Some(d("1.09990"))).map_err(|r| r.retcode), Err(INVALID_STOPS));
    // Price moves up: a trailing SL above the open price is fine (checked against the current bid).
    acct.on_tick(tick_at("EURUSD", "1.10600", "1.10610", 1));
    let p = acct.modify(t, Some(d("1.10300")), None).expect("trail");
    assert_eq!(p.stop_loss, Some(d("1.10300")));
    let closed = acct.on_tick(tick_at("EURUSD", "1.10250", "1.10260", 2));
    assert_eq!(closed[0].reason, DealReason::StopLoss);
    assert_eq!(closed[0].profit, d("240.00"), "locked-in profit: (1.10250 − 1.10010) × 100 000");
    assert_eq!(acct.modify(t, Some(d("1")), None).map_err(|r| r.retcode), Err(POSITION_NOT_FOUND));
    // SELL: stops checked against the ask.
    let s = acct.open(order("EURUSD", Side::Sell, "1")).expect("sell").ticket;
    assert_eq!(acct.modify(s, Some(d("1.10255")), None).map_err(|r| r.retcode), Err(INVALID_STOPS));
    assert!(acct.modify(s, Some(d("1.10270")), Some(d("1.10000"))).is_ok());
}

#[test]
fn margin_equity_and_free_margin() {
    let mut acct = usd("10000");
    acct.on_tick(tick("EURUSD", "1.08485", "1.08500"));
    acct.on_tick(tick("USDJPY", "149.985", "150.000"));
    acct.on_tick(tick("XAUUSD", "2049.70", "2050.00"));
    acct.open(order("EURUSD", Side::Buy, "1")).expect("eur");
    acct.open(order("USDJPY", Side::Sell, "0.5")).expect("jpy");
    acct.open(order("XAUUSD", Side::Buy, "0.1")).expect("xau");
    let margins: Vec<Decimal> = acct.positions().iter().map(|p| p.margin).collect();
    // EURUSD: 100 000 EUR / 100 × 1.085 USD; USDJPY: 50 000 USD / 100; XAUUSD: 10 oz × 2050 / 100.
    assert_eq!(margins, [d("1085.00"), d("500.00"), d("205.00")]);
    // Spread losses: EURUSD 15.00; USDJPY 0.5 × 100 000 × 0.015 JPY / 150 = 5.00; XAUUSD 10 × 0.30 = 3.00.
    let profits: Vec<Decimal> = acct.positions().iter().map(|p| p.profit).collect();
    assert_eq!(profits, [d("-15.00"), d("-5.00"), d("-3.00")]);
    let s = acct.account();
    assert_eq!(
        (s.balance, s.profit, s.equity, s.margin, s.free_margin, s.leverage),
        (d("10000"), d("-23.00"), d("9977.00"), d("1790.00"), d("8187.00"), 100)
    );
    assert_eq!(s.margin_level, Some(d("557.37")));
    // Prices move: EURUSD +100 pips.
    acct.on_tick(tick_at("EURUSD", "1.09500", "1.09515", 1));
    let s = acct.account();
    assert_eq!(s.profit, d("992.00"), "EURUSD (1.09500 − 1.08500) × 100 000 = 1000, − 5 − 3");
    assert_eq!(s.margin, d("1800.15"), "EURUSD margin revalued at the new ask: 1095.15 + 500 + 205");
    assert_eq!(s.equity - s.margin, s.free_margin);
    assert_eq!(PaperAccount::new(Currency::USD, d("5"), 0).account().leverage, 1, "leverage 0 taken as 1");
    assert_eq!(PaperAccount::new(Currency::USD, d("5"), 0).account().margin_level, None);
}

#[test]
fn conversions_from_other_symbols() {
    // EURGBP in a USD account: profit in GBP needs GBPUSD, margin in EUR needs EURUSD.
    let mut acct = usd("10000");
    acct.on_tick(tick("EURGBP", "0.85800", "0.85825"));
    let err = acct.open(order("EURGBP", Side::Buy, "1")).expect_err("no GBP rate");
    assert_eq!(err.retcode, Retcode::PRICE_OFF);
    assert!(err.message.starts_with("No prices to convert GBP to USD"), "{}", err.message);
    acct.on_tick(tick("EURUSD", "1.07250", "1.07250"));
    let err = acct.open(order("EURGBP", Side::Buy, "1")).expect_err("the profit still needs GBPUSD");
    assert!(err.message.starts_with("No prices to convert GBP to USD"), "{}", err.message);
    let mut margin_only = usd("10000");
    margin_only.on_tick(tick("EURGBP", "0.85800", "0.85825"));
    margin_only.on_tick(tick("GBPUSD", "1.25000", "1.25000"));
    let err = margin_only.open(order("EURGBP", Side::Buy, "1")).expect_err("the margin needs EURUSD");
    assert!(err.message.starts_with("No prices to convert EUR to USD"), "{}", err.message);
    assert!(acct.positions().is_empty() && acct.history().is_empty() && margin_only.positions().is_empty());
    acct.on_tick(tick("GBPUSD", "1.25000", "1.25000"));
    let t = acct.open(order("EURGBP", Side::Buy, "1")).expect("rates known").ticket;
    assert_eq!(t, Ticket(DEFAULT_FIRST_TICKET), "rejected orders consume no ticket");
    assert_eq!(acct.account().margin, d("1072.50"), "1 000 EUR × 1.0725");
    acct.on_tick(tick_at("EURGBP", "0.86825", "0.86850", 1));
    let fill = acct.close(t, None, at(1)).expect("close");
    assert_eq!(fill.profit, d("1250.00"), "100 pips = 1 000 GBP × 1.25");

    // A CHF account trading NZDUSD: USD→CHF from USDCHF (inverse of nothing: direct), margin NZD→CHF via USD.
    let mut chf = PaperAccount::new(Currency::CHF, d("10000"), 100);
    chf.on_tick(tick("NZDUSD", "0.61500", "0.61500"));
    chf.on_tick(tick("USDCHF", "0.90000", "0.90000"));
    let t = chf.open(order("NZDUSD", Side::Buy, "1")).expect("via USD").ticket;
    assert_eq!(chf.account().margin, d("553.50"), "1 000 NZD × 0.615 × 0.9");
    chf.on_tick(tick_at("NZDUSD", "0.62500", "0.62500", 1));
    assert_eq!(chf.close(t, None, at(1)).map(|f| f.profit), Ok(d("900.00")), "1 000 USD × 0.9");

    // An EUR account on EURUSD: USD→EUR derived from the close price itself.
    let mut eur = PaperAccount::new(Currency::EUR, d("10000"), 30);
    eur.on_tick(tick("EURUSD", "1.10000", "1.10000"));
    let t = eur.open(order("EURUSD", Side::Sell, "1")).expect("eur").ticket;
    assert_eq!(eur.account().margin, d("3333.33"), "100 000 EUR / 30");
    eur.on_tick(tick_at("EURUSD", "1.05000", "1.05000", 1));
    assert_eq!(eur.close(t, None, at(1)).map(|f| f.profit), Ok(d("4761.90")), "5 000 USD / 1.05");
}

#[test]
fn comments_history_and_tickets() {
    let mut acct = usd("100000").with_first_ticket(7).with_first_deal(70);
    acct.on_tick(tick("EURUSD", "1.10000", "1.10010"));
    let long = "NT-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut req = order("EURUSD", Side::Buy, "0.1");
    req.comment = long.into();
    let a = acct.open(req).expect("a");
    let mut req = order("EURUSD", Side::Sell, "0.2");
    req.comment = "other".into();
    let b = acct.open(req).expect("b");
    assert_eq!((a.ticket, b.ticket, a.deal, b.deal), (Ticket(7), Ticket(8), Ticket(70), Ticket(71)));
    let p = acct.position(a.ticket).expect("a");
    assert_eq!(p.comment.chars().count(), MT5_COMMENT_MAX_LEN);
    assert_eq!(p.comment, &long[..31]);
    assert_eq!(acct.find_by_comment(long).iter().map(|p| p.ticket).collect::<Vec<_>>(), [a.ticket], "cut alike");
    assert_eq!(acct.find_by_comment(&long[..31]).len(), 1);
    assert!(acct.find_by_comment("NT-").is_empty(), "exact match only");
    acct.close(b.ticket, Some(d("0.1")), at(4)).expect("partial");
    acct.close(b.ticket, None, at(5)).expect("rest");
    let summary: Vec<(u64, u64, DealEntry, Side, Decimal, DealReason)> =
        acct.history().iter().map(|x| (x.ticket.0, x.position.0, x.entry, x.side, x.lots, x.reason)).collect();
    assert_eq!(
        summary,
        [
            (70, 7, DealEntry::In, Side::Buy, d("0.1"), DealReason::Client),
            (71, 8, DealEntry::In, Side::Sell, d("0.2"), DealReason::Client),
            (72, 8, DealEntry::Out, Side::Buy, d("0.1"), DealReason::Client),
            (73, 8, DealEntry::Out, Side::Buy, d("0.1"), DealReason::Client),
        ]
    );
    assert_eq!(acct.history()[3].time, at(5));
    assert_eq!(acct.history()[2].comment, "other");
    let realised: Decimal = acct.history().iter().map(|x| x.profit).sum();
    assert_eq!(acct.account().balance, d("100000") + realised, "balance = deposit + realised deals");
}

#[test]
fn replay_drives_the_account() {
    use crate::feed::CandleReplay;
    let csv = ",Open,High,Low,Close,Volume\n\
        2017-04-19 09:00:00,1.07000,1.07100,1.06950,1.07050,1\n\
        2017-04-19 10:00:00,1.07050,1.07400,1.07000,1.07300,1\n";
    let mut feed = CandleReplay::from_reader(sym("EURUSD"), csv.as_bytes()).expect("csv");
    let mut acct = usd("10000");
    let first = feed.next().expect("open tick");
    acct.on_tick(first);
    let mut req = with_stops(order("EURUSD", Side::Buy, "1"), Some("1.06900"), Some("1.07250"));
    req.time = first.time;
    let t = acct.open(req).expect("open").ticket;
    let closed: Vec<ClosedPosition> = feed.flat_map(|tick| acct.on_tick(tick)).collect();
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].ticket, closed[0].reason), (t, DealReason::TakeProfit), "TP reached inside bar 2");
    assert_eq!(closed[0].profit, d("235.00"), "(1.07250 − 1.07015) × 100 000");
    assert_eq!(closed[0].time.format("%H:%M").to_string(), "10:30", "the high tick of the rising bar");
}

#[test]
fn a_snapshot_restores_the_same_account() {
    let mut acct = usd("10000");
    acct.on_tick(tick("EURUSD", "1.10000", "1.10015"));
    acct.on_tick(tick("USDJPY", "150.000", "150.015"));
    let mut req = with_stops(order("EURUSD", Side::Buy, "1"), Some("1.09000"), Some("1.12000"));
    req.comment = "NT-a".into();
    let a = acct.open(req).expect("a");
    let b = acct.open(order("USDJPY", Side::Sell, "0.5")).expect("b");
    acct.close(b.ticket, Some(d("0.2")), at(1)).expect("partial");
    let snap = acct.snapshot(100);
    let json = serde_json::to_string(&snap).expect("serialise");
    let back: AccountSnapshot = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, snap, "JSON round trip");
    let mut restored = PaperAccount::restore(back).expect("consistent");
    assert_eq!(restored.positions(), acct.positions());
    assert_eq!(restored.account(), acct.account());
    assert_eq!(restored.history(), acct.history());
    assert_eq!(restored.last_tick(sym("EURUSD")), acct.last_tick(sym("EURUSD")), "quotes kept: closes work at once");
    // The counters go on where they were; the stops still work.
    let c = restored.open(order("EURUSD", Side::Sell, "0.1")).expect("c");
    assert_eq!((c.ticket.0, c.deal.0), (b.ticket.0 + 1, DEFAULT_FIRST_DEAL + 3));
    let hit = restored.on_tick(tick_at("EURUSD", "1.12000", "1.12015", 2));
    assert_eq!((hit.len(), hit[0].ticket, hit[0].reason), (1, a.ticket, DealReason::TakeProfit));

    // Only the most recent deals are kept when asked.
    let short = acct.snapshot(1);
    assert_eq!(short.deals, acct.history()[2..].to_vec());
    assert_eq!(PaperAccount::restore(short).map(|r| r.history().len()), Ok(1));
}

#[test]
fn an_inconsistent_snapshot_is_refused() {
    let mut acct = usd("10000");
    acct.on_tick(tick("EURUSD", "1.10000", "1.10015"));
    acct.open(order("EURUSD", Side::Buy, "1")).expect("open");
    let good = acct.snapshot(10);
    type Damage = fn(&mut AccountSnapshot);
    let broken: Vec<(&str, Damage)> = vec![
        ("ticket counter behind", |s| s.next_ticket = DEFAULT_FIRST_TICKET),
        ("deal counter behind", |s| s.next_deal = DEFAULT_FIRST_DEAL),
        ("position twice", |s| s.positions.push(s.positions[0].clone())),
        ("zero volume", |s| s.positions[0].lots = Decimal::ZERO),
        ("leverage 0", |s| s.leverage = 0),
        ("crossed quote", |s| s.quotes[0].ask = d("1.0")),
        ("long comment", |s| s.positions[0].comment = "x".repeat(40)),
    ];
    for (what, damage) in broken {
        let mut s = good.clone();
        damage(&mut s);
        assert!(PaperAccount::restore(s).is_err(), "{what}");
    }
    assert!(PaperAccount::restore(good).is_ok());
}

#[derive(Debug, Clone)]
enum Op {
    Tick(usize, i64),
    Open(usize, bool, u32),
    Close(usize, Option<u32>),
    Modify(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, -300..300i64).prop_map(|(s, m)| Op::Tick(s, m)),
        2 => (0..3usize, any::<bool>(), 1..120u32).prop_map(|(s, b, l)| Op::Open(s, b, l)),
        1 => (0..8usize, proptest::option::of(1..120u32)).prop_map(|(i, l)| Op::Close(i, l)),
        1 => (0..8usize, -200..200i64).prop_map(|(i, m)| Op::Modify(i, m)),
    ]
}

proptest! {
    #[test]
    fn equity_is_balance_plus_floating_and_closing_all_frees_margin(ops in proptest::collection::vec(op(), 1..60)) {
        const SYMBOLS: [(&str, &str, &str); 3] =
            [("EURUSD", "1.08500", "0.00001"), ("USDJPY", "150.000", "0.001"), ("XAUUSD", "2050.00", "0.01")];
        let mut acct = usd("50000");
        let mut bids: Vec<Decimal> = SYMBOLS.iter().map(|(_, p, _)| d(p)).collect();
        let mut minute = 0;
        let send = |acct: &mut PaperAccount, i: usize, bid: Decimal, minute: i64| {
            let (s, _, point) = SYMBOLS[i];
            let ask = bid + d(point) * Decimal::from(15);
            acct.on_tick(Tick { symbol: sym(s), bid, ask, time: at(minute) })
        };
        for (i, bid) in bids.iter().enumerate() {
            send(&mut acct, i, *bid, 0);
        }
        let deposit = d("50000");
        for op in ops {
            minute += 1;
            match op {
                Op::Tick(i, moves) => {
                    let (_, _, point) = SYMBOLS[i];
                    bids[i] = (bids[i] + d(point) * Decimal::from(moves)).max(d(point) * Decimal::from(1000));
                    send(&mut acct, i, bids[i], minute);
                }
                Op::Open(i, buy, lots) => {
                    let side = if buy { Side::Buy } else { Side::Sell };
                    let mut req = order(SYMBOLS[i].0, side, "0");
                    req.lots = Decimal::new(i64::from(lots), 2);
                    let (_, _, point) = SYMBOLS[i];
                    let distance = d(point) * Decimal::from(200);
                    req.stop_loss = Some(bids[i] - side.sign() * distance);
                    req.take_profit = Some(bids[i] + side.sign() * distance * Decimal::TWO);
                    let before = acct.account();
                    if let Err(r) = acct.open(req) {
                        prop_assert!(r.retcode == Retcode::NO_MONEY, "{r}");
                        prop_assert_eq!(before, acct.account());
                    }
                }
                Op::Close(k, lots) => {
                    if let Some(p) = acct.positions().get(k % acct.positions().len().max(1)) {
                        let _ = acct.close(p.ticket, lots.map(|l| Decimal::new(i64::from(l), 2)), at(minute));
                    }
                }
                Op::Modify(k, moves) => {
                    if let Some(p) = acct.positions().get(k % acct.positions().len().max(1)) {
                        let point = p.symbol.instrument().point();
                        let sl = p.current_price - p.side.sign() * point * Decimal::from(moves);
                        let _ = acct.modify(p.ticket, Some(sl), None);
                    }
                }
            }
            let s = acct.account();
            let floating: Decimal = acct.positions().iter().map(|p| p.profit).sum();
            let margin: Decimal = acct.positions().iter().map(|p| p.margin).sum();
            prop_assert_eq!(s.equity, s.balance + floating);
            prop_assert_eq!(s.profit, floating);
            prop_assert_eq!(s.margin, margin);
            prop_assert_eq!(s.free_margin, s.equity - s.margin);
            let realised: Decimal = acct.history().iter().map(|x| x.profit).sum();
            prop_assert_eq!(s.balance, deposit + realised);
            for p in acct.positions() {
                let inst = p.symbol.instrument();
                prop_assert!(p.lots >= inst.min_volume && (p.lots % inst.volume_step).is_zero());
                prop_assert!(p.margin > Decimal::ZERO);
            }
        }
        for p in acct.positions() {
            acct.close(p.ticket, None, at(minute + 1)).map_err(|r| TestCaseError::fail(r.to_string()))?;
        }
        let s = acct.account();
        prop_assert!(acct.positions().is_empty());
        prop_assert_eq!(s.margin, Decimal::ZERO);
        prop_assert_eq!(s.profit, Decimal::ZERO);
        prop_assert_eq!(s.equity, s.balance);
        prop_assert_eq!(s.free_margin, s.balance);
    }
}
