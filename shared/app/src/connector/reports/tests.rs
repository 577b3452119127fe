use std::str::FromStr;

use super::*;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn both_position_shapes_read_alike() {
    // GET_POSITIONS / SYNC_REQUEST answer: type, price, price_current, sl/tp 0.0 when unset
    let a = BrokerPosition::parse(&json!({"ticket": 100000001, "symbol": "EURUSD", "type": "BUY", "volume": 0.5,
        "price": 1.10015, "price_current": 1.1002, "profit": 2.5, "sl": 0.0, "tp": 1.12,
        "comment": "NT-abc", "time": "2024-01-02T09:00:00.000Z"}))
    .unwrap();
    // POSITION_UPDATE: order_type, open_price, current_price, null stops
    let b = BrokerPosition::parse(&json!({"ticket": 100000001, "symbol": "EURUSD", "order_type": "BUY",
        "volume": 0.5, "open_price": 1.10015, "current_price": 1.1002, "stop_loss": null, "take_profit": 1.12,
        "profit": 2.5, "comment": "NT-abc"}))
    .unwrap();
    assert_eq!(a.open_time, Some(DateTime::from_timestamp(1_704_186_000, 0).unwrap()));
    assert_eq!(BrokerPosition { open_time: None, ..a.clone() }, b);
    assert_eq!((a.side, a.volume, a.stop_loss, a.take_profit), (Some(Side::Buy), d("0.5"), None, Some(d("1.12"))));
    // the original connector's minimal entry, numeric strings and MT5's numeric types
    let c = BrokerPosition::parse(&json!({"ticket": "7", "symbol": "XAUUSD.m", "type": 1, "volume": "0.1",
        "price": "2000.5", "profit": "-3"}))
    .unwrap();
    assert_eq!((c.ticket, c.side, c.current_price, c.profit), (7, Some(Side::Sell), None, Some(d("-3"))));
}

#[test]
fn unusable_entries_are_skipped_not_guessed() {
    for bad in [
        json!({"symbol": "EURUSD", "type": "BUY", "volume": 1}),
        json!({"ticket": 0, "symbol": "EURUSD", "volume": 1}),
        json!({"ticket": 1.5, "symbol": "EURUSD", "volume": 1}),
        json!({"ticket": 1, "volume": 1}),
        json!({"ticket": 1, "symbol": "  ", "volume": 1}),
        json!({"ticket": 1, "symbol": "EURUSD"}),
        json!({"ticket": 1, "symbol": "EURUSD", "volume": 0}),
        json!({"ticket": 1, "symbol": "EURUSD", "volume": 1, "type": "LONG"}),
        json!({"ticket": 1, "symbol": "EURUSD", "volume": 1, "type": 5}),
        json!("x"),
    ] {
        assert_eq!(BrokerPosition::parse(&bad), None, "{bad}");
    }
    let r = PositionsReport::parse(
        ReportSource::Positions,
        &obj(json!({"data": [{"ticket": 1, "symbol": "EURUSD", "volume": 1}, {"ticket": -1}]})),
    )
    .unwrap();
    assert_eq!((r.positions.len(), r.skipped, r.truncated), (1, 1, false));
    assert!(PositionsReport::parse(ReportSource::Positions, &obj(json!({"data": {}}))).is_err());
    assert!(PositionsReport::parse(ReportSource::SyncResponse, &obj(json!({"data": []}))).is_err());
}

#[test]
fn long_reports_are_capped_and_flagged() {
    let many: Vec<Value> =
        (1..=MAX_REPORT_POSITIONS as u64 + 5).map(|t| json!({"ticket": t, "symbol": "EURUSD", "volume": 1})).collect();
    let r = PositionUpdate::parse(&obj(json!({ "positions": many }))).unwrap();
    assert_eq!((r.positions.len(), r.truncated), (MAX_REPORT_POSITIONS, true));
    let relay = r.relay(Uuid::nil(), 10);
    assert_eq!(relay["positions"].as_array().unwrap().len(), 10);
    assert_eq!(relay["truncated"], true);
}

#[test]
fn sync_response_carries_account_and_deals() {
    let r = PositionsReport::parse(
        ReportSource::SyncResponse,
        &obj(json!({"request_id": "sync_1", "positions": [],
            "account": {"balance": 1000, "equity": 990.5, "margin": 10, "free_margin": 980.5, "leverage": 100},
            "deals": [{"ticket": 9, "position": 7, "symbol": "EURUSD", "type": "SELL", "entry": "out",
                "volume": 0.1, "price": 1.1, "profit": -1.5, "time": "2024-01-02T09:00:00Z", "reason": "sl",
                "comment": "NT-x"}, {"position": 7}]})),
    )
    .unwrap();
    assert_eq!(r.request_id.as_deref(), Some("sync_1"));
    assert_eq!(r.account.as_ref().map(|a| (a.equity, a.leverage)), Some((d("990.5"), Some(100))));
    assert_eq!(r.deals.len(), 1);
    assert_eq!(r.deals[0].reason.as_deref(), Some("sl"));
    assert_eq!(r.deals[0].position, Some(7));
    assert_eq!(r.skipped, 1, "the unreadable deal is counted");
}

#[test]
fn sync_response_history_window_orders_and_lookups() {
    let r = PositionsReport::parse(
        ReportSource::SyncResponse,
        &obj(json!({"request_id": "reconcile_check_1", "positions": [], "history_from": "2024-01-02T08:00:00Z",
            "deals": [{"ticket": 9, "position": 7, "symbol": "EURUSD", "entry": "out", "price": 1.1}],
            "orders": [{"ticket": 5, "state": "REJECTED", "time": "2024-01-02T08:30:00Z", "comment": "NT-x"},
                {"ticket": 6, "state": "CANCELLED"}, {"ticket": 8, "state": "weird"}],
            "lookups": [{"ticket": 7, "status": "closed", "price": 1.1, "time": "2024-01-02T09:00:00Z"},
                {"ticket": 11, "status": "not_found"}, {"ticket": 12, "status": "closed"}]})),
    )
    .unwrap();
    let h = &r.history;
    assert_eq!(h.history_from, Some(DateTime::from_timestamp(1_704_182_400, 0).unwrap()));
    let states: Vec<&str> = h.history_orders.iter().map(|o| o.state.as_str()).collect();
    assert_eq!(states, ["rejected", "canceled"]);
    let lookups: Vec<(u64, &str)> = h.lookups.iter().map(|l| (l.ticket, l.status.as_str())).collect();
    assert_eq!(lookups, [(7, "closed"), (11, "not_found")], "a closed lookup needs its price and time");
    assert_eq!((r.skipped, h.history_skipped, r.truncated), (2, 2, false));
    let snapshot = PositionsSnapshot {
        broker_connection_id: Uuid::nil(),
        source: r.source,
        request_id: r.request_id.clone(),
        ws_connection_id: "ws".into(),
        received_at: Utc::now(),
        positions: r.positions.clone(),
        deals: r.deals.clone(),
        skipped: r.skipped,
        truncated: r.truncated,
        history: r.history.clone(),
    };
    // Unreadable history entries leave the positions trustworthy, not the history.
    assert!(!snapshot.is_complete() && snapshot.positions_complete() && !snapshot.history_complete());
    let item = snapshot_item(Uuid::nil(), &mut snapshot.clone()).unwrap();
    assert_eq!(item.to_record::<PositionsSnapshot>().unwrap(), snapshot);
    // A snapshot stored before the history fields existed: only a wholly complete one is trusted.
    let mut old = snapshot.clone();
    old.history = ReportHistory::default();
    old.skipped = 0;
    old.truncated = true;
    assert!(!old.positions_complete());
}

#[test]
fn quotes_come_from_the_closing_side_and_catalogue_symbols() {
    let p = |sym: &str, side: &str, price: f64| {
        BrokerPosition::parse(&json!({"ticket": 1, "symbol": sym, "type": side, "volume": 1, "price_current": price}))
            .unwrap()
    };
    let q = quotes(&[
        p("EURUSD.m", "BUY", 1.1),
        p("EURUSD", "SELL", 1.1002),
        p("USDJPY", "SELL", 150.02),
        p("NOTASYMBOL", "BUY", 5.0),
    ]);
    assert_eq!(
        q,
        vec![
            ReportedQuote { symbol: "EURUSD", bid: d("1.1"), ask: d("1.1002") },
            ReportedQuote { symbol: "USDJPY", bid: d("150.02"), ask: d("150.02") },
        ]
    );
    let explicit = BrokerPosition::parse(&json!({"ticket": 1, "symbol": "GBPUSD", "type": "BUY", "volume": 1,
        "current_price": 1.25, "bid": 1.2499, "ask": 1.2501}))
    .unwrap();
    assert_eq!(quotes(&[explicit])[0].ask, d("1.2501"));
    let no_price = BrokerPosition::parse(&json!({"ticket": 1, "symbol": "GBPUSD", "volume": 1})).unwrap();
    assert!(quotes(&[no_price]).is_empty());
}

#[test]
fn oversized_snapshots_shrink_and_say_so() {
    let position = BrokerPosition::parse(&json!({"ticket": 1, "symbol": "EURUSD", "type": "BUY", "volume": 1,
        "price": 1.1, "price_current": 1.1, "profit": 1, "comment": "x".repeat(60)}))
    .unwrap();
    let mut s = PositionsSnapshot {
        broker_connection_id: Uuid::nil(),
        source: ReportSource::Positions,
        request_id: None,
        ws_connection_id: "ws".into(),
        received_at: Utc::now(),
        positions: vec![position; 5000],
        deals: Vec::new(),
        skipped: 0,
        truncated: false,
        history: ReportHistory::default(),
    };
    assert!(s.is_complete());
    let item = snapshot_item(Uuid::nil(), &mut s).unwrap();
    assert!(item.size() <= MAX_SNAPSHOT_BYTES);
    assert!(s.truncated && !s.is_complete() && !s.positions_complete());
    assert!(s.positions.len() >= 500, "kept {}", s.positions.len());
    let back: PositionsSnapshot = item.to_record().unwrap();
    assert_eq!(back, s);
}

#[test]
fn times_in_three_shapes() {
    let t = DateTime::from_timestamp(1_704_186_000, 0).unwrap();
    assert_eq!(parse_time(Some(&json!("2024-01-02T09:00:00Z"))), Some(t));
    assert_eq!(parse_time(Some(&json!("2024-01-02T09:00:00"))), Some(t));
    assert_eq!(parse_time(Some(&json!(1_704_186_000))), Some(t));
    assert_eq!(parse_time(Some(&json!("yesterday"))), None);
}
