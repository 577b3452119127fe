use nusatrade_app::connector::TradeResult;
use nusatrade_domain::instrument::Symbol;
use nusatrade_domain::money::Currency;
use nusatrade_domain::order::Retcode;

use chrono::SecondsFormat;

use super::*;
use crate::connector::state::Executed;
use crate::paper;
use crate::testing::d;

fn at(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + second, 0).expect("time")
}

fn tick(symbol: &str, bid: &str, ask: &str) -> Tick {
    Tick { symbol: Symbol::parse(symbol).expect("symbol"), bid: d(bid), ask: d(ask), time: at(0) }
}

fn engine() -> Engine {
    let identity = AccountIdentity { login: 51234567, server: "NusaTrade-Paper".into(), company: "NusaTrade".into() };
    let mut e = Engine::new(PaperAccount::new(Currency::USD, d("10000"), 100), identity);
    e.on_ticks(&[tick("EURUSD", "1.10000", "1.10015"), tick("USDJPY", "150.000", "150.015")], Instant::now());
    e
}

fn one(e: &mut Engine, msg: Value) -> Value {
    let r = e.handle(&msg.to_string(), at(10));
    assert_eq!(r.replies.len(), 1, "{msg} → {r:?}");
    r.replies[0].clone()
}

/// What the server reads from a reply.
fn as_server(v: &Value) -> TradeResult {
    TradeResult::parse(v.as_object().expect("object")).expect("the server can read it")
}

fn open(e: &mut Engine, rid: &str, extra: Value) -> Value {
    let mut cmd = json!({"type": "TRADE_OPEN", "request_id": rid, "symbol": "EURUSD", "order_type": "BUY",
        "lot_size": 1.0, "comment": format!("NT-{rid}"), "client_order_id": rid});
    if let (Some(c), Value::Object(x)) = (cmd.as_object_mut(), extra) {
        c.extend(x);
    }
    one(e, cmd)
}

#[test]
fn trade_open_fills_at_the_ask_and_keeps_the_comment() {
    let mut e = engine();
    let r = e.handle(
        &json!({"type": "TRADE_OPEN", "request_id": "0190a1b2-0000-7000-8000-000000000001", "symbol": "EURUSD",
            "order_type": "BUY", "lot_size": 0.5, "comment": "NT-4xQ9zK2mP7vL1nR8sT3wY6", "stop_loss": 1.09,
            "take_profit": 1.12})
        .to_string(),
        at(10),
    );
    assert!(r.traded, "the account changed");
    let v = &r.replies[0];
    assert_eq!(v["type"], "TRADE_RESULT");
    let ack = as_server(v);
    assert_eq!(ack.request_id.as_deref(), Some("0190a1b2-0000-7000-8000-000000000001"));
    assert!(ack.success && ack.error.is_none());
    assert_eq!(ack.ticket, Some(paper::DEFAULT_FIRST_TICKET));
    assert_eq!(ack.price, Some(d("1.10015")), "BUY fills at the ask, not a requested price");
    assert_eq!(ack.retcode, Some(Retcode::DONE));
    assert_eq!(ack.time, Some(at(10)));
    let p = &e.account().positions()[0];
    assert_eq!(p.comment, "NT-4xQ9zK2mP7vL1nR8sT3wY6");
    assert_eq!((p.lots, p.stop_loss, p.take_profit), (d("0.5"), Some(d("1.09")), Some(d("1.12"))));
}

#[test]
fn repeated_commands_get_the_first_result_and_never_execute_twice() {
    let mut e = engine();
    let first = open(&mut e, "order-1", json!({}));
    let again = e.handle(
        &json!({"type": "TRADE_OPEN", "request_id": "order-1", "symbol": "EURUSD", "order_type": "BUY",
            "lot_size": 1.0, "comment": "NT-order-1"})
        .to_string(),
        at(20),
    );
    assert_eq!(again.replies, vec![first.clone()], "the same reply, byte for byte");
    assert!(!again.traded);
    assert_eq!(e.account().positions().len(), 1, "one fill only");
    assert_eq!(e.stats(), EngineStats { executed: 1, duplicates: 1, stops_hit: 0 });

    // A rejected command repeated is the same rejection, even when it would now succeed.
    let rejected = one(
        &mut e,
        json!({"type": "TRADE_OPEN", "request_id": "order-2", "symbol": "GBPUSD",
        "order_type": "SELL", "lot_size": 0.1, "comment": "NT-order-2"}),
    );
    assert_eq!(as_server(&rejected).retcode, Some(Retcode::PRICE_OFF), "no GBPUSD prices yet");
    e.on_ticks(&[tick("GBPUSD", "1.26000", "1.26015")], Instant::now());
    let again = one(
        &mut e,
        json!({"type": "TRADE_OPEN", "request_id": "order-2", "symbol": "GBPUSD",
        "order_type": "SELL", "lot_size": 0.1, "comment": "NT-order-2"}),
    );
    assert_eq!(again, rejected);
    assert_eq!(e.account().positions().len(), 1);

    // Closes and modifies are de-duplicated the same way.
    let ticket = first["ticket"].as_u64().expect("ticket");
    let close = json!({"type": "TRADE_CLOSE", "request_id": "order-1:close:2", "symbol": "EURUSD", "ticket": ticket,
        "lot_size": 0.5});
    let c1 = one(&mut e, close.clone());
    let c2 = one(&mut e, close);
    assert_eq!(c1, c2);
    assert_eq!(e.account().positions()[0].lots, d("0.5"), "closed half once, not twice");
}

#[test]
fn a_new_request_for_an_order_already_filled_answers_with_its_position() {
    let mut e = engine();
    let first = open(&mut e, "order-1", json!({}));
    // Same order (same NT- comment), another request id: the cache cannot tell, the comment can.
    let again = open(&mut e, "order-1-resent", json!({"comment": "NT-order-1"}));
    assert_eq!((again["ticket"].clone(), again["price"].clone()), (first["ticket"].clone(), first["price"].clone()));
    assert_eq!(again["success"], true);
    assert_eq!(e.account().positions().len(), 1);
    // Still true after the position closed: the opening deal is in the history.
    let ticket = first["ticket"].as_u64().expect("ticket");
    one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "c", "symbol": "EURUSD", "ticket": ticket, "lot_size": 1}));
    let late = open(&mut e, "order-1-late", json!({"comment": "NT-order-1"}));
    assert_eq!(late["ticket"], first["ticket"]);
    assert!(e.account().positions().is_empty(), "not reopened");
}

#[test]
fn trade_close_reports_price_and_profit() {
    let mut e = engine();
    let opened = open(&mut e, "o", json!({}));
    e.on_ticks(&[tick("EURUSD", "1.10500", "1.10515")], Instant::now());
    let r = e.handle(
        &json!({"type": "TRADE_CLOSE", "request_id": "o:close:1", "symbol": "EURUSD",
            "ticket": opened["ticket"], "lot_size": 1.0, "client_order_id": "o"})
        .to_string(),
        at(30),
    );
    assert!(r.traded);
    let ack = as_server(&r.replies[0]);
    assert!(ack.success);
    assert_eq!(ack.price, Some(d("1.105")), "BUY closes at the bid");
    assert_eq!(ack.profit, Some(d("485")), "(1.10500 − 1.10015) × 100 000");
    assert_eq!(ack.retcode, Some(Retcode::DONE));
    assert_eq!(ack.time, Some(at(30)));
    assert_eq!(e.account().account().balance, d("10485"));

    // Unknown ticket, missing ticket, too much volume.
    let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "x1", "ticket": 42, "lot_size": 1}));
    assert_eq!((v["success"].clone(), v["retcode"].clone()), (json!(false), json!(paper::POSITION_NOT_FOUND.0)));
    assert_eq!(v["error"], "Position 42 not found");
    let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "x2", "symbol": "EURUSD", "lot_size": 1}));
    assert_eq!(v["error"], "Position None not found");
    let t = open(&mut e, "p", json!({}))["ticket"].clone();
    let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "x3", "ticket": t, "lot_size": 2}));
    assert_eq!(v["retcode"], paper::INVALID_CLOSE_VOLUME.0);
    // Without a ticket, the client order id finds the position by its comment.
    let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "x4", "client_order_id": "p", "lot_size": 1}));
    assert_eq!((v["success"].clone(), v["ticket"].clone()), (json!(true), t));
}

#[test]
fn trade_modify_sets_stops_and_reports_retcodes() {
    let mut e = engine();
    let t = open(&mut e, "o", json!({}))["ticket"].clone();
    let r = e.handle(
        &json!({"type": "TRADE_MODIFY", "request_id": "o:modify:1", "ticket": t, "stop_loss": 1.095,
            "take_profit": null, "action": "modify"})
        .to_string(),
        at(1),
    );
    assert!(r.traded);
    let ack = as_server(&r.replies[0]);
    assert!(ack.success);
    assert_eq!(ack.retcode, Some(Retcode::DONE));
    assert_eq!(r.replies[0]["stop_loss"], 1.095);
    assert_eq!(e.account().positions()[0].stop_loss, Some(d("1.095")));
    // The same stops again: MT5's NO_CHANGES, reported as done (the position has what was asked).
    let v = one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "o:modify:2", "ticket": t, "stop_loss": 1.095}));
    assert_eq!((v["success"].clone(), v["retcode"].clone()), (json!(true), json!(paper::NO_CHANGES.0)));
    // A stop loss above the bid of a BUY.
    let v = one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "o:modify:3", "ticket": t, "stop_loss": 1.2}));
    assert_eq!((v["success"].clone(), v["retcode"].clone()), (json!(false), json!(paper::INVALID_STOPS.0)));
    assert!(v["error"].as_str().is_some_and(|s| s.starts_with("Invalid stops")), "{v}");
    // 0 removes a stop.
    let v = one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "o:modify:4", "ticket": t, "stop_loss": 0}));
    assert_eq!(v["success"], true);
    assert_eq!(e.account().positions()[0].stop_loss, None);
}

#[test]
fn rejections_carry_mt5_retcodes() {
    let mut e = engine();
    let cases = [
        (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.001}), paper::INVALID_VOLUME),
        (json!({"symbol": "NOPE99", "order_type": "BUY", "lot_size": 0.1}), paper::INVALID),
        (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 0.1, "stop_loss": 1.2}), paper::INVALID_STOPS),
        (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": 10}), Retcode::NO_MONEY),
        (json!({"symbol": "XAUUSD", "order_type": "BUY", "lot_size": 0.1}), Retcode::PRICE_OFF),
        (json!({"symbol": "EURUSD", "order_type": "HOLD", "lot_size": 0.1}), paper::INVALID),
        (json!({"symbol": "EURUSD", "order_type": "BUY", "lot_size": "lots"}), paper::INVALID),
        (json!({"order_type": "BUY", "lot_size": 0.1}), paper::INVALID),
    ];
    for (i, (body, code)) in cases.into_iter().enumerate() {
        let mut cmd = body.clone();
        cmd["type"] = json!("TRADE_OPEN");
        cmd["request_id"] = json!(format!("r{i}"));
        let v = one(&mut e, cmd);
        let ack = as_server(&v);
        assert!(!ack.success, "{body}");
        assert_eq!((ack.retcode, ack.ticket), (Some(code), None), "{body} → {v}");
        assert!(ack.error.is_some(), "{body}");
    }
    assert!(e.account().positions().is_empty());
}

#[test]
fn history_windows_refusals_and_lookups_for_reconciliation() {
    let mut e = engine();
    let cmd = |rid: &str, lots: f64| {
        json!({"type": "TRADE_OPEN", "request_id": rid, "symbol": "EURUSD", "order_type": "BUY",
            "lot_size": lots, "comment": format!("NT-{rid}")})
    };
    let ticket = |v: &Value| v["ticket"].as_u64().unwrap();
    let a = ticket(&e.handle(&cmd("a", 0.1).to_string(), at(10)).replies[0]);
    let b = ticket(&e.handle(&cmd("b", 0.1).to_string(), at(20)).replies[0]);
    let closed = e.handle(&json!({"type": "TRADE_CLOSE", "request_id": "c", "ticket": b}).to_string(), at(30));
    assert_eq!(closed.replies[0]["success"], true);
    let refused = e.handle(&cmd("big", 900.0).to_string(), at(40));
    assert_eq!(refused.replies[0]["success"], false, "not enough money");
    let ask = |e: &mut Engine, from: i64| {
        let m = json!({"type": "SYNC_REQUEST", "request_id": "reconcile_check_1", "history_from": iso_millis(at(from)),
            "tickets": [a, b, 4242]});
        e.handle(&m.to_string(), at(50)).replies.remove(0)
    };
    let v = ask(&mut e, 15);
    assert_eq!(v["history_from"], at(15).to_rfc3339_opts(SecondsFormat::Micros, true), "the window asked for");
    let deals: Vec<(u64, &str)> = v["deals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["position"].as_u64().unwrap(), d["entry"].as_str().unwrap()))
        .collect();
    assert_eq!(deals, [(b, "in"), (b, "out")], "every deal since then, none before");
    assert_eq!(v["orders"].as_array().unwrap().len(), 1);
    assert_eq!((&v["orders"][0]["state"], &v["orders"][0]["comment"]), (&json!("rejected"), &json!("NT-big")));
    let lookups: Vec<&str> = v["lookups"].as_array().unwrap().iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(lookups, ["open", "closed", "not_found"]);
    assert_eq!(v["lookups"][1]["price"], json!(1.1));
    // What the server reads from it: a complete window, the refusal and the lookups.
    let report = nusatrade_app::connector::reports::PositionsReport::parse(
        nusatrade_app::connector::reports::ReportSource::SyncResponse,
        v.as_object().unwrap(),
    )
    .unwrap();
    assert_eq!((report.skipped, report.history.history_orders.len(), report.history.lookups.len()), (0, 1, 3));
    assert_eq!(report.history.history_from, Some(at(15)));
    // A plain SYNC_REQUEST keeps the original answer: the recent deals, no window.
    let plain = one(&mut e, json!({"type": "SYNC_REQUEST", "request_id": "s"}));
    assert!(
        plain.get("history_from").is_none()
            && plain.get("lookups").is_none()
            && plain["deals"].as_array().unwrap().len() == 3
    );

    // A restored account does not know its whole past: the window starts at the restore, nothing is "not found".
    let saved = e.saved_state(at(60));
    let identity = AccountIdentity { login: 51234567, server: "NusaTrade-Paper".into(), company: "NusaTrade".into() };
    let mut r = Engine::restore(saved, identity).unwrap();
    let v = ask(&mut r, 15);
    let from = DateTime::parse_from_rfc3339(v["history_from"].as_str().unwrap()).unwrap();
    assert!(from > at(60), "{v}");
    let lookups: Vec<&str> = v["lookups"].as_array().unwrap().iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(lookups, ["open", "closed"], "no lookup answered 'not found' without the whole history");
    assert_eq!(v["orders"], json!([]));
}

#[test]
fn queries_answer_with_positions_account_and_deals() {
    let mut e = engine();
    open(&mut e, "a", json!({"stop_loss": 1.09}));
    let v = one(&mut e, json!({"type": "GET_POSITIONS", "request_id": "sync_1"}));
    assert_eq!((v["type"].clone(), v["request_id"].clone()), (json!("POSITIONS"), json!("sync_1")));
    let p = &v["data"][0];
    assert_eq!(
        (&p["type"], &p["volume"], &p["price"], &p["sl"], &p["tp"], &p["comment"], &p["profit"]),
        (&json!("BUY"), &json!(1.0), &json!(1.10015), &json!(1.09), &json!(0.0), &json!("NT-a"), &json!(-15.0))
    );
    assert!(p["ticket"].as_u64().is_some() && p["symbol"] == "EURUSD");

    let v = one(&mut e, json!({"type": "GET_ACCOUNT", "request_id": "acc"}));
    assert_eq!(v["type"], "ACCOUNT_INFO");
    assert_eq!(
        (&v["request_id"], &v["balance"], &v["equity"], &v["margin"], &v["free_margin"], &v["leverage"]),
        (&json!("acc"), &json!(10000.0), &json!(9985.0), &json!(1100.15), &json!(8884.85), &json!(100))
    );
    assert_eq!((&v["currency"], &v["login"]), (&json!("USD"), &json!(51234567)));

    let v = one(
        &mut e,
        json!({"type": "SYNC_REQUEST", "request_id": "s", "connection_id": "c-1",
        "sync_positions": true, "sync_trades": true, "sync_account": true}),
    );
    assert_eq!((&v["type"], &v["connection_id"]), (&json!("SYNC_RESPONSE"), &json!("c-1")));
    assert_eq!(v["positions"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["account"]["equity"], 9985.0);
    assert_eq!(v["deals"][0]["entry"], "in");
    assert_eq!(v["deals"][0]["comment"], "NT-a");

    let v = one(&mut e, json!({"type": "PING"}));
    assert_eq!(v["type"], "PONG");
    assert!(v["timestamp"].is_string());
}

#[test]
fn server_signals_and_unknown_messages() {
    let mut e = engine();
    let r = e.handle(r#"{"type":"WELCOME","connection_id":"x","heartbeat_interval":30}"#, at(0));
    assert_eq!(r.signal, Some(Signal::Welcome { heartbeat_interval: Some(30) }));
    assert!(r.replies.is_empty());
    let r = e.handle(r#"{"type":"ERROR","error":"Unknown message type"}"#, at(0));
    assert_eq!(r.signal, Some(Signal::Error("Unknown message type".into())));
    assert!(r.replies.is_empty(), "an ERROR is never answered");
    assert_eq!(e.handle(r#"{"type":"HEARTBEAT_ACK"}"#, at(0)).signal, Some(Signal::HeartbeatAck));
    for junk in ["not json", "[1,2]", r#"{"type":"SOMETHING_NEW"}"#, r#"{"no":"type"}"#] {
        assert_eq!(e.handle(junk, at(0)), Reaction::default(), "{junk}");
    }
}

#[test]
fn stop_hits_and_position_updates_are_reported() {
    let mut e = engine().with_position_update_gap(Duration::from_secs(1));
    let t0 = Instant::now();
    assert!(e.on_ticks(&[tick("EURUSD", "1.10000", "1.10015")], t0).is_empty(), "no positions, nothing to say");
    open(&mut e, "a", json!({"take_profit": 1.102}));
    open(&mut e, "b", json!({"comment": "NT-b"}));
    let out = e.on_ticks(&[tick("EURUSD", "1.10100", "1.10115")], t0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["type"], "POSITION_UPDATE");
    let p = &out[0]["positions"][0];
    assert_eq!((&p["current_price"], &p["take_profit"], &p["stop_loss"]), (&json!(1.101), &json!(1.102), &Value::Null));
    assert!(
        e.on_ticks(&[tick("EURUSD", "1.10110", "1.10125")], t0 + Duration::from_millis(500)).is_empty(),
        "throttled"
    );
    // The take profit is reached: reported at once, with the account.
    let out = e.on_ticks(&[tick("EURUSD", "1.10200", "1.10215")], t0 + Duration::from_millis(600));
    let kinds: Vec<&str> = out.iter().filter_map(|v| v["type"].as_str()).collect();
    assert_eq!(kinds, ["POSITION_UPDATE", "ACCOUNT_UPDATE"]);
    assert_eq!(out[0]["positions"].as_array().map(Vec::len), Some(1), "only b is left");
    assert_eq!(out[1]["balance"], 10185.0, "(1.10200 − 1.10015) × 100 000");
    assert_eq!(e.stats().stops_hit, 1);
    // The last position goes: one empty update, then silence.
    let b = e.account().positions()[0].ticket.0;
    one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "cb", "ticket": b}));
    let out = e.on_ticks(&[tick("EURUSD", "1.10200", "1.10215")], t0 + Duration::from_secs(2));
    assert_eq!(out[0]["positions"], json!([]));
    assert!(e.on_ticks(&[tick("EURUSD", "1.10200", "1.10215")], t0 + Duration::from_secs(4)).is_empty());
}

#[test]
fn injected_rejections_are_first_results_and_nothing_executes() {
    use crate::connector::faults::{FaultConfig, OPEN_REJECTS};
    let faults = Faults::new(FaultConfig { reject: 100.0, seed: 7, ..FaultConfig::default() });
    let mut e = engine();
    // A position to close and modify, opened before the faults are on.
    assert_eq!(open(&mut e, "p", json!({}))["ticket"], 100000001);
    let mut e = e.with_faults(faults);
    let r = e.handle(
        &json!({"type": "TRADE_OPEN", "request_id": "o1", "symbol": "EURUSD", "order_type": "BUY",
            "lot_size": 0.1, "comment": "NT-o1"})
        .to_string(),
        at(1),
    );
    assert!(r.executed && !r.traded);
    let ack = as_server(&r.replies[0]);
    assert!(!ack.success);
    let code = ack.retcode.expect("retcode");
    let (_, message) = OPEN_REJECTS.iter().find(|(c, _)| *c == code).expect("one of the open rejections");
    assert_eq!(ack.error.as_deref(), Some(*message));
    assert_eq!(e.account().positions().len(), 1, "rejected instead of executed");
    // The resend gets the same rejection without a new draw, and is not counted as executed.
    let again = e.handle(
        &json!({"type": "TRADE_OPEN", "request_id": "o1", "symbol": "EURUSD", "order_type": "BUY",
            "lot_size": 0.1, "comment": "NT-o1"})
        .to_string(),
        at(2),
    );
    assert_eq!((again.replies.clone(), again.executed), (r.replies.clone(), false));
    assert_eq!(e.fault_stats().rejected, 1);
    // Closes and modifies are rejected too (an unreadable command keeps its own answer).
    let v = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "c1", "ticket": 100000001, "lot_size": 1}));
    assert_eq!(v["ticket"], 100000001);
    assert!([10004, 10006].contains(&v["retcode"].as_u64().unwrap_or_default()), "{v}");
    let v = one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "m1", "ticket": 100000001, "stop_loss": 1}));
    assert_eq!((v["success"].clone(), v["retcode"].clone()), (json!(false), json!(10006)));
    let v = one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "m2", "ticket": 1, "stop_loss": "x"}));
    assert_eq!(v["retcode"], paper::INVALID.0, "unreadable: no fault drawn");
    assert_eq!(e.fault_stats().rejected, 3);
    let p = &e.account().positions()[0];
    assert_eq!((p.lots, p.stop_loss), (d("1"), None), "neither closed nor modified");
}

#[test]
fn changes_are_handed_out_once() {
    let mut e = engine();
    assert!(e.take_changes(at(0)).is_none(), "ticks alone change nothing worth saving");
    let first = open(&mut e, "a", json!({"take_profit": 1.102}));
    let saved = e.take_changes(at(1)).expect("a trade is a change");
    assert_eq!((saved.format.as_str(), saved.version, saved.login), (STATE_FORMAT, STATE_VERSION, 51234567));
    assert_eq!(saved.executed, vec![Executed { request_id: "a".into(), result: first.clone() }]);
    assert_eq!(saved.account.positions.len(), 1);
    assert!(e.take_changes(at(2)).is_none(), "once");
    one(&mut e, json!({"type": "PING"}));
    one(&mut e, json!({"type": "GET_POSITIONS", "request_id": "p"}));
    open(&mut e, "a", json!({}));
    assert!(e.take_changes(at(3)).is_none(), "queries and a repeated command change nothing");
    one(&mut e, json!({"type": "TRADE_OPEN", "request_id": "bad", "symbol": "NOPE99", "order_type": "BUY"}));
    assert!(e.take_changes(at(4)).is_some(), "a remembered rejection is a change");
    e.on_ticks(&[tick("EURUSD", "1.10200", "1.10215")], Instant::now());
    let saved = e.take_changes(at(5)).expect("a take profit hit is a change");
    assert!(saved.account.positions.is_empty());
    e.mark_changed();
    assert!(e.has_changes() && e.take_changes(at(6)).is_some());
}

#[test]
fn a_restored_engine_keeps_positions_and_still_deduplicates() {
    let mut e = engine();
    let a = open(&mut e, "a", json!({"stop_loss": 1.09}));
    let b = open(&mut e, "b", json!({}));
    let closed = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "b:close:1", "ticket": b["ticket"]}));
    let json_text = serde_json::to_string(&e.saved_state(at(9))).expect("serialise");
    let saved: SavedState = serde_json::from_str(&json_text).expect("parse");
    let mut r = Engine::restore(saved, e.identity().clone()).expect("restore");
    assert_eq!(r.account().positions(), e.account().positions());
    assert_eq!(r.account().account(), e.account().account());
    // Resent commands: their first results, nothing executed.
    let again = r.handle(
        &json!({"type": "TRADE_OPEN", "request_id": "a", "symbol": "EURUSD", "order_type": "BUY", "lot_size": 1.0,
            "comment": "NT-a"})
        .to_string(),
        at(20),
    );
    assert_eq!((again.replies, again.executed, again.traded), (vec![a.clone()], false, false));
    assert_eq!(one(&mut r, json!({"type": "TRADE_CLOSE", "request_id": "b:close:1", "ticket": b["ticket"]})), closed);
    assert_eq!(r.stats().duplicates, 2);
    // A new request for an order filled before the restart: found by its comment in the restored deals.
    let late = open(&mut r, "b-resent", json!({"comment": "NT-b"}));
    assert_eq!(late["ticket"], b["ticket"]);
    assert_eq!(r.account().positions().len(), 1);
    // New orders go on from the saved ticket counter.
    let c = open(&mut r, "c", json!({}));
    assert_eq!(c["ticket"].as_u64(), b["ticket"].as_u64().map(|t| t + 1));

    // A remembered result that is not a TRADE_RESULT, or has no request id, is refused.
    let mut bad = e.saved_state(at(9));
    bad.executed[0].result = json!({"type": "PONG"});
    assert!(Engine::restore(bad, e.identity().clone()).is_err());
    let mut bad = e.saved_state(at(9));
    bad.executed[0].request_id = String::new();
    assert!(Engine::restore(bad, e.identity().clone()).is_err());
}

#[test]
fn every_refused_open_is_a_rejected_history_order_oldest_first_and_bounded() {
    let mut e = engine();
    for (rid, symbol) in [("nop", "GBPUSD"), ("bad", "NOPE99")] {
        let v = one(
            &mut e,
            json!({"type": "TRADE_OPEN", "request_id": rid, "symbol": symbol, "order_type": "BUY", "lot_size": 0.1,
                "comment": format!("NT-{rid}")}),
        );
        assert_eq!(v["success"], false, "{v}");
        assert!(v.get("price").is_none(), "a refused open carries no price: {v}");
    }
    let sync = json!({"type": "SYNC_REQUEST", "request_id": "s", "history_from": at(0).to_rfc3339(),
        "tickets": [424242]});
    let v = one(&mut e, sync.clone());
    let comments: Vec<&str> = v["orders"].as_array().unwrap().iter().filter_map(|o| o["comment"].as_str()).collect();
    assert_eq!(comments, ["NT-nop", "NT-bad"], "refused before reaching the account too, oldest first: {v}");
    assert_eq!(v["lookups"], json!([{"ticket": 424242, "status": "not_found"}]));
    // Past the bound the oldest are forgotten: the window starts after them and nothing is claimed absent.
    for n in 0..crate::mt5::paper::MAX_ORDERS {
        let cmd = json!({"type": "TRADE_OPEN", "request_id": format!("x{n}"), "symbol": "GBPUSD",
            "order_type": "BUY", "comment": format!("NT-x{n}")});
        e.handle(&cmd.to_string(), at(20 + n as i64));
    }
    let v = one(&mut e, sync);
    assert_eq!(v["lookups"], json!([]), "{}", v["lookups"]);
    assert_eq!(v["orders"].as_array().map(Vec::len), Some(MAX_SYNC_ORDERS));
    assert_eq!(v["orders"][MAX_SYNC_ORDERS - 1]["comment"], format!("NT-x{}", crate::mt5::paper::MAX_ORDERS - 1));
}
