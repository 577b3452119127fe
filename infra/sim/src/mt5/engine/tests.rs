use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nusatrade_app::connector::TradeResult;
use nusatrade_domain::instrument::Symbol;
use nusatrade_domain::money::Currency;

use super::*;
use crate::connector::history::HistorySource;
use crate::feed::Tick;
use crate::mt5::paper::PaperTerminal;
use crate::mt5::{OrderSendResult, Rate, SymbolInfo, SymbolTick, TradeOrder};
use crate::paper::PaperAccount;
use crate::testing::d;

/// A paper terminal that can be "down" (every call fails as disconnected) or lose the answer of the next
/// `order_send` after executing it.
struct Flaky {
    inner: PaperTerminal,
    down: Arc<AtomicBool>,
    lose_next_answer: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<(), Mt5Error> {
        if self.down.load(Ordering::SeqCst) { Err(Mt5Error::Disconnected("test: down".into())) } else { Ok(()) }
    }
}

impl Mt5 for Flaky {
    async fn account_info(&mut self) -> Result<AccountInfo, Mt5Error> {
        self.check()?;
        self.inner.account_info().await
    }
    async fn symbols_get(&mut self) -> Result<Vec<String>, Mt5Error> {
        self.check()?;
        self.inner.symbols_get().await
    }
    async fn symbol_info(&mut self, s: &str) -> Result<Option<SymbolInfo>, Mt5Error> {
        self.check()?;
        self.inner.symbol_info(s).await
    }
    async fn symbol_select(&mut self, s: &str) -> Result<bool, Mt5Error> {
        self.check()?;
        self.inner.symbol_select(s).await
    }
    async fn symbol_info_tick(&mut self, s: &str) -> Result<Option<SymbolTick>, Mt5Error> {
        self.check()?;
        self.inner.symbol_info_tick(s).await
    }
    async fn positions_get(&mut self, f: PositionFilter) -> Result<Vec<TradePosition>, Mt5Error> {
        self.check()?;
        self.inner.positions_get(f).await
    }
    async fn history_deals_get(&mut self, q: HistoryQuery) -> Result<Vec<TradeDeal>, Mt5Error> {
        self.check()?;
        self.inner.history_deals_get(q).await
    }
    async fn history_orders_get(&mut self, q: HistoryQuery) -> Result<Vec<TradeOrder>, Mt5Error> {
        self.check()?;
        self.inner.history_orders_get(q).await
    }
    async fn order_send(&mut self, r: TradeRequest) -> Result<OrderSendResult, Mt5Error> {
        self.check()?;
        let result = self.inner.order_send(r).await;
        if self.lose_next_answer.swap(false, Ordering::SeqCst) {
            self.down.store(true, Ordering::SeqCst);
            return Err(Mt5Error::Disconnected("test: the link dropped after the fill".into()));
        }
        result
    }
    async fn copy_rates_range(
        &mut self,
        s: &str,
        tf: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rate>, Mt5Error> {
        self.check()?;
        self.inner.copy_rates_range(s, tf, from, to).await
    }
}

fn identity() -> AccountIdentity {
    AccountIdentity { login: 5_001_234, server: "StandIn-Demo".into(), company: "Stand-in".into() }
}

fn tick(symbol: &str, bid: &str, ask: &str) -> Tick {
    Tick { symbol: Symbol::parse(symbol).expect("symbol"), bid: d(bid), ask: d(ask), time: Utc::now() }
}

fn terminal() -> PaperTerminal {
    let mut t = PaperTerminal::new(PaperAccount::new(Currency::USD, d("10000"), 100), identity())
        .with_history(HistorySource::Generated { seed: 1, symbols: vec![Symbol::parse("EURUSD").expect("symbol")] });
    t.account_mut().on_tick(tick("EURUSD", "1.10000", "1.10015"));
    t
}

fn flaky() -> (TerminalEngine<Flaky>, Arc<AtomicBool>, Arc<AtomicBool>) {
    let (down, lose) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let t = Flaky { inner: terminal(), down: down.clone(), lose_next_answer: lose.clone() };
    (TerminalEngine::new(t), down, lose)
}

async fn one<T: Mt5>(e: &mut TerminalEngine<T>, msg: Value) -> Value {
    let r = e.handle(&msg.to_string(), Utc::now()).await;
    assert_eq!(r.replies.len(), 1, "{msg} → {r:?}");
    r.replies[0].clone()
}

fn open_cmd(rid: &str, lots: f64) -> Value {
    json!({"type": "TRADE_OPEN", "request_id": rid, "symbol": "EURUSD", "order_type": "BUY", "lot_size": lots,
        "comment": format!("NT-{rid}"), "client_order_id": rid})
}

fn as_server(v: &Value) -> TradeResult {
    TradeResult::parse(v.as_object().expect("object")).expect("the server can read it")
}

async fn positions<T: Mt5>(e: &mut TerminalEngine<T>) -> Vec<TradePosition> {
    e.terminal().positions_get(PositionFilter::All).await.expect("positions")
}

#[tokio::test]
async fn opens_with_the_deals_fill_and_answers_a_resend_from_memory() {
    let mut e = TerminalEngine::new(terminal());
    let v = one(&mut e, open_cmd("r1", 0.5)).await;
    let ack = as_server(&v);
    assert!(ack.success, "{v}");
    assert_eq!(
        (v["price"].as_f64(), v["volume"].as_f64(), v["retcode"].as_u64()),
        (Some(1.10015), Some(0.5), Some(10009))
    );
    let p = positions(&mut e).await;
    assert_eq!(p.len(), 1);
    assert_eq!((ack.ticket, p[0].comment.as_str()), (Some(p[0].ticket), "NT-r1"));
    assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let again = one(&mut e, open_cmd("r1", 0.5)).await;
    assert_eq!(again, v, "the first result, not a second fill");
    assert_eq!(positions(&mut e).await.len(), 1);
    assert_eq!((e.stats().executed, e.stats().duplicates), (1, 1));
    let state = e.take_changes(&identity(), Utc::now()).expect("changed");
    assert_eq!((state.executed.len(), state.format.as_str()), (1, TERMINAL_STATE_FORMAT));
    assert!(e.take_changes(&identity(), Utc::now()).is_none(), "once");
}

#[tokio::test]
async fn a_restart_without_its_state_still_never_fills_twice() {
    let mut first = TerminalEngine::new(terminal());
    let v = one(&mut first, open_cmd("r1", 0.5)).await;
    // A new engine (no remembered results) over the same terminal, as a connector restarted without its state file.
    let mut e = TerminalEngine::new(std::mem::replace(first.terminal(), terminal()));
    let resent = one(&mut e, open_cmd("r1", 0.5)).await;
    assert_eq!(
        (resent["success"].as_bool(), resent["ticket"].clone(), resent["price"].clone()),
        (Some(true), v["ticket"].clone(), v["price"].clone())
    );
    assert_eq!(positions(&mut e).await.len(), 1, "answered from the terminal's position with that comment");
    // Closed meanwhile: found in the deal history.
    let close = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "c1", "ticket": v["ticket"]})).await;
    assert!(as_server(&close).success, "{close}");
    let mut e = TerminalEngine::new(std::mem::replace(e.terminal(), terminal()));
    let resent = one(&mut e, open_cmd("r1", 0.5)).await;
    assert_eq!((resent["success"].as_bool(), resent["ticket"].clone()), (Some(true), v["ticket"].clone()));
    assert!(positions(&mut e).await.is_empty(), "still not opened again");
    // Without an NT- comment there is nothing to find: a new order is a new fill.
    let mut plain = open_cmd("r9", 0.1);
    plain["comment"] = json!("manual");
    assert!(one(&mut e, plain).await["success"].as_bool().unwrap_or(false));
    assert_eq!(positions(&mut e).await.len(), 1);
}

#[tokio::test]
async fn closes_modifies_and_refuses_with_the_terminals_retcodes() {
    let mut e = TerminalEngine::new(terminal());
    let ticket = one(&mut e, open_cmd("r1", 1.0)).await["ticket"].as_u64().expect("ticket");
    let m = one(
        &mut e,
        json!({"type": "TRADE_MODIFY", "request_id": "m1", "ticket": ticket, "stop_loss": 1.09, "take_profit": 1.12}),
    )
    .await;
    assert_eq!(
        (m["success"].as_bool(), m["stop_loss"].as_f64(), m["take_profit"].as_f64()),
        (Some(true), Some(1.09), Some(1.12)),
        "{m}"
    );
    assert_eq!(positions(&mut e).await[0].sl, d("1.09"));
    let same =
        one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "m2", "ticket": ticket, "stop_loss": 1.09})).await;
    assert_eq!((same["success"].as_bool(), same["retcode"].as_u64()), (Some(true), Some(10025)), "{same}");
    let bad =
        one(&mut e, json!({"type": "TRADE_MODIFY", "request_id": "m3", "ticket": ticket, "stop_loss": 1.2})).await;
    assert_eq!((bad["success"].as_bool(), bad["retcode"].as_u64()), (Some(false), Some(10016)), "{bad}");
    let vol = one(&mut e, open_cmd("r2", 0.001)).await;
    assert_eq!((vol["success"].as_bool(), vol["retcode"].as_u64()), (Some(false), Some(10014)), "{vol}");
    let money = one(&mut e, open_cmd("r3", 9.0)).await;
    assert_eq!(money["retcode"].as_u64(), Some(10019), "{money}");
    let unknown =
        one(&mut e, json!({"type": "TRADE_OPEN", "request_id": "r4", "symbol": "NOPE", "order_type": "BUY"})).await;
    assert_eq!(unknown["retcode"].as_u64(), Some(10013), "{unknown}");
    e.terminal().account_mut().on_tick(tick("EURUSD", "1.10100", "1.10115"));
    let c = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "c1", "ticket": ticket, "lot_size": 1.0})).await;
    let ack = as_server(&c);
    assert!(ack.success, "{c}");
    assert_eq!((c["price"].as_f64(), c["profit"].as_f64()), (Some(1.101), Some(85.0)), "{c}");
    assert!(positions(&mut e).await.is_empty());
    let gone = one(&mut e, json!({"type": "TRADE_CLOSE", "request_id": "c2", "ticket": 999})).await;
    assert_eq!((gone["success"].as_bool(), gone["retcode"].as_u64()), (Some(false), Some(10036)));
}

#[tokio::test]
async fn an_unknown_outcome_is_not_acked_and_resolved_from_the_terminal_when_it_answers() {
    let (mut e, down, lose) = flaky();
    let id = identity();
    assert_eq!(e.poll(&id, Instant::now()).await[0]["connected"], true, "the first look reports the status");
    lose.store(true, Ordering::SeqCst);
    let r = e.handle(&open_cmd("r1", 0.5).to_string(), Utc::now()).await;
    assert!(r.replies.is_empty(), "no TRADE_RESULT for a fill whose answer was lost: {r:?}");
    assert_eq!(e.unresolved(), 1);
    let reports = e.poll(&id, Instant::now()).await;
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0]["type"].as_str(), reports[0]["connected"].as_bool()), (Some("MT5_STATUS"), Some(false)));
    assert!(e.poll(&id, Instant::now()).await.is_empty(), "said once");
    assert!(
        e.handle(&json!({"type": "GET_POSITIONS", "request_id": "g"}).to_string(), Utc::now()).await.replies.is_empty(),
        "no incomplete positions report while the terminal is down"
    );
    down.store(false, Ordering::SeqCst);
    let reports = e.poll(&id, Instant::now()).await;
    let kinds: Vec<&str> = reports.iter().filter_map(|r| r["type"].as_str()).collect();
    assert_eq!(kinds, ["MT5_STATUS", "ACCOUNT_UPDATE", "POSITION_UPDATE", "TRADE_RESULT"], "{reports:?}");
    let ack = reports.iter().find(|r| r["type"] == "TRADE_RESULT").expect("ack");
    assert_eq!((ack["request_id"].as_str(), ack["success"].as_bool()), (Some("r1"), Some(true)));
    assert_eq!(positions(&mut e).await.len(), 1, "filled once");
    assert_eq!(e.unresolved(), 0);
    // The server's own resend is answered from memory now.
    assert_eq!(one(&mut e, open_cmd("r1", 0.5)).await["ticket"], ack["ticket"]);
}

#[tokio::test]
async fn stop_hits_are_reported_at_once_and_found_by_reconciliation() {
    let mut e = TerminalEngine::new(terminal()).with_position_update_gap(Duration::from_secs(3600));
    let id = identity();
    let since = Utc::now() - TimeDelta::seconds(5);
    let ticket = one(
        &mut e,
        json!({"type": "TRADE_OPEN", "request_id": "r1", "symbol": "EURUSD", "order_type": "BUY",
        "lot_size": 1.0, "comment": "NT-r1", "stop_loss": 1.095}),
    )
    .await["ticket"]
        .as_u64()
        .expect("ticket");
    e.poll(&id, Instant::now()).await;
    assert!(e.poll(&id, Instant::now()).await.is_empty(), "nothing changed, an update was just sent");
    e.terminal().account_mut().on_tick(tick("EURUSD", "1.09400", "1.09415"));
    let reports = e.poll(&id, Instant::now()).await;
    let kinds: Vec<&str> = reports.iter().filter_map(|r| r["type"].as_str()).collect();
    assert_eq!(kinds, ["POSITION_UPDATE", "ACCOUNT_UPDATE"]);
    assert_eq!(reports[0]["positions"], json!([]));
    let sync = one(
        &mut e,
        json!({"type": "SYNC_REQUEST", "request_id": "s", "history_from": wire::iso(since),
        "tickets": [ticket, 424242]}),
    )
    .await;
    let deals = sync["deals"].as_array().expect("deals");
    assert_eq!(deals.len(), 2);
    assert_eq!(
        (deals[1]["entry"].as_str(), deals[1]["reason"].as_str(), deals[1]["comment"].as_str()),
        (Some("out"), Some("sl"), Some("NT-r1"))
    );
    assert_eq!(
        sync["lookups"],
        json!([{"ticket": ticket, "status": "closed", "price": 1.094, "time": sync["lookups"][0]["time"]},
            {"ticket": 424242, "status": "not_found"}]),
        "the paper terminal knows its whole history: an unknown ticket was never a position: {sync}"
    );
    // A terminal whose history may be trimmed (history_complete_since: None) never claims a ticket absent.
    let (mut real, _, _) = flaky();
    let sync = one(
        &mut real,
        json!({"type": "SYNC_REQUEST", "request_id": "s", "history_from": wire::iso(since),
        "tickets": [424242]}),
    )
    .await;
    assert_eq!(sync["lookups"], json!([]), "{sync}");
    assert!(sync["history_from"].is_string() && sync["orders"].is_array());
    let pos = one(&mut e, json!({"type": "GET_POSITIONS", "request_id": "g"})).await;
    assert_eq!(pos["data"], json!([]));
}

#[tokio::test]
async fn history_requests_use_the_terminals_rates() {
    let mut e = TerminalEngine::new(terminal());
    let v = one(
        &mut e,
        json!({"type": "HISTORY_REQUEST", "request_id": "h", "symbol": "EURUSD", "timeframe": "H1",
        "start": "2024-01-02T00:00:00Z", "end": "2024-01-02T05:00:00Z", "max_bars": 3}),
    )
    .await;
    assert_eq!(v["type"], "HISTORY_CANDLES", "{v}");
    let candles = v["candles"].as_array().expect("candles");
    assert_eq!(candles.len(), 3);
    assert_eq!(candles[0][0].as_i64(), Some(1_704_153_600));
    // The paper terminal's candles are its history source's, byte for byte (tick volumes as floats too).
    let ask = json!({"type": "HISTORY_REQUEST", "request_id": "h", "symbol": "EURUSD", "timeframe": "H1",
        "start": "2024-01-02T00:00:00Z", "end": "2024-01-02T03:00:00Z"});
    let direct = HistorySource::Generated { seed: 1, symbols: vec![Symbol::parse("EURUSD").expect("symbol")] }
        .answer(ask.as_object().expect("object"));
    assert_eq!(one(&mut e, ask.clone()).await, direct);
    assert!(direct["candles"][0][5].is_f64(), "{direct}");
    let bad = one(
        &mut e,
        json!({"type": "HISTORY_REQUEST", "request_id": "h", "symbol": "EURUSD", "timeframe": "M2",
        "start": "2024-01-02T00:00:00Z", "end": "2024-01-02T05:00:00Z"}),
    )
    .await;
    assert_eq!((bad["type"].as_str(), bad["request_id"].as_str()), (Some("ERROR"), Some("h")));
}

#[test]
fn the_remembered_results_forget_the_oldest_beyond_the_capacity() {
    let mut e = TerminalEngine::new(terminal());
    let result = |n: usize| json!({"type": "TRADE_RESULT", "request_id": format!("r{n}"), "success": true});
    let executed: Vec<Executed> =
        (0..=DEDUP_CAPACITY).map(|n| Executed { request_id: format!("r{n}"), result: result(n) }).collect();
    e.restore(executed);
    let kept = e.executed();
    assert_eq!(kept.len(), DEDUP_CAPACITY);
    assert_eq!(
        (kept[0].request_id.as_str(), kept[DEDUP_CAPACITY - 1].request_id.clone()),
        ("r1", format!("r{DEDUP_CAPACITY}"))
    );
    assert!(!e.has_changes(), "a restore is no change");
}
