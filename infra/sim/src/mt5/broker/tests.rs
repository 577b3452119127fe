use chrono::{TimeDelta, TimeZone};
use rust_decimal::Decimal;

use super::*;
use crate::mt5::{RETCODE_DONE, TRADE_ACTION_DEAL};

const OFFSET: i64 = 7200;

/// Wednesday 2026-12-02 10:00 UTC: the FX market is open.
fn wednesday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap()
}

/// A broker's terminal: `.m` names, UTC+2 server time, and what it was asked.
#[derive(Default)]
struct Broker {
    names: Vec<String>,
    now: i64,
    /// The market is closed: ticks do not move.
    closed: bool,
    down: bool,
    listed: u32,
    sent: Vec<String>,
    rates_asked: Vec<(String, i64, i64)>,
    deals_asked: Vec<HistoryQuery>,
}

impl Broker {
    fn new(names: &[&str]) -> Broker {
        Broker {
            names: names.iter().map(|s| (*s).to_owned()).collect(),
            now: wednesday().timestamp(),
            ..Default::default()
        }
    }
    fn up(&self) -> Result<(), Mt5Error> {
        if self.down { Err(Mt5Error::Disconnected("test".into())) } else { Ok(()) }
    }
    fn server_now(&self) -> i64 {
        self.now + OFFSET
    }
}

impl Mt5 for Broker {
    async fn account_info(&mut self) -> Result<AccountInfo, Mt5Error> {
        self.up()?;
        Ok(AccountInfo {
            login: 1,
            server: "B".into(),
            company: "B".into(),
            currency: "USD".into(),
            leverage: 100,
            balance: Decimal::ONE,
            equity: Decimal::ONE,
            margin: Decimal::ZERO,
            margin_free: Decimal::ONE,
            margin_level: Decimal::ZERO,
            profit: Decimal::ZERO,
        })
    }
    async fn symbols_get(&mut self) -> Result<Vec<String>, Mt5Error> {
        self.up()?;
        self.listed += 1;
        Ok(self.names.clone())
    }
    async fn symbol_info(&mut self, s: &str) -> Result<Option<SymbolInfo>, Mt5Error> {
        self.up()?;
        Ok(self.names.iter().any(|n| n == s).then(|| SymbolInfo {
            name: s.into(),
            visible: true,
            digits: 5,
            filling_mode: 1,
        }))
    }
    async fn symbol_select(&mut self, s: &str) -> Result<bool, Mt5Error> {
        self.up()?;
        Ok(self.names.iter().any(|n| n == s))
    }
    async fn symbol_info_tick(&mut self, s: &str) -> Result<Option<SymbolTick>, Mt5Error> {
        self.up()?;
        if !self.closed {
            self.now += 1; // the market moves
        }
        Ok(self.names.iter().any(|n| n == s).then(|| SymbolTick {
            time: self.server_now(),
            bid: Decimal::ONE,
            ask: Decimal::ONE,
        }))
    }
    async fn positions_get(&mut self, _: PositionFilter) -> Result<Vec<TradePosition>, Mt5Error> {
        self.up()?;
        let row = |ticket, symbol: &str| TradePosition {
            ticket,
            time: self.server_now() - 60,
            time_msc: (self.server_now() - 60) * 1000,
            kind: 0,
            magic: 0,
            volume: Decimal::ONE,
            price_open: Decimal::ONE,
            sl: Decimal::ZERO,
            tp: Decimal::ZERO,
            price_current: Decimal::ONE,
            profit: Decimal::ZERO,
            symbol: symbol.into(),
            comment: String::new(),
        };
        Ok(vec![row(1, "EURUSD.m"), row(2, "SPOTCRUDE")])
    }
    async fn history_deals_get(&mut self, q: HistoryQuery) -> Result<Vec<TradeDeal>, Mt5Error> {
        self.up()?;
        self.deals_asked.push(q);
        Ok(vec![TradeDeal {
            ticket: 9,
            order: 1,
            time: self.server_now(),
            time_msc: 0,
            kind: 0,
            entry: 0,
            magic: 0,
            position_id: 1,
            reason: 0,
            volume: Decimal::ONE,
            price: Decimal::ONE,
            profit: Decimal::ZERO,
            symbol: "EURUSD.m".into(),
            comment: String::new(),
        }])
    }
    async fn history_orders_get(&mut self, _: HistoryQuery) -> Result<Vec<TradeOrder>, Mt5Error> {
        self.up()?;
        Ok(vec![TradeOrder {
            ticket: 3,
            time_setup: self.server_now(),
            time_setup_msc: self.server_now() * 1000,
            kind: 0,
            state: 5,
            position_id: 0,
            symbol: "GBPUSD.m".into(),
            comment: String::new(),
        }])
    }
    async fn order_send(&mut self, r: TradeRequest) -> Result<OrderSendResult, Mt5Error> {
        self.up()?;
        self.sent.push(r.symbol);
        Ok(OrderSendResult {
            retcode: RETCODE_DONE,
            deal: 9,
            order: 1,
            volume: Decimal::ONE,
            price: Decimal::ONE,
            comment: String::new(),
        })
    }
    async fn copy_rates_range(
        &mut self,
        s: &str,
        _: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rate>, Mt5Error> {
        self.up()?;
        self.rates_asked.push((s.into(), from.timestamp(), to.timestamp()));
        let bar = |time| Rate {
            time,
            open: Decimal::ONE,
            high: Decimal::ONE,
            low: Decimal::ONE,
            close: Decimal::ONE,
            tick_volume: 1,
        };
        Ok(vec![bar(from.timestamp()), bar(to.timestamp())])
    }
}

fn request(symbol: &str) -> TradeRequest {
    TradeRequest {
        action: TRADE_ACTION_DEAL,
        symbol: symbol.into(),
        volume: Some(Decimal::ONE),
        kind: Some(0),
        position: None,
        price: None,
        sl: None,
        tp: None,
        deviation: None,
        magic: None,
        comment: None,
        type_time: None,
        type_filling: None,
    }
}

fn broker() -> BrokerTerminal<Broker> {
    let names = ["EURUSD.m", "GBPUSD.m", "XAUUSD.m", "BTCUSD.m", "USDJPY.a", "USDJPY.b", "SPOTCRUDE"];
    BrokerTerminal::new(Broker::new(&names), SymbolRules::default(), None).with_utc_now(wednesday)
}

#[tokio::test]
async fn symbols_go_out_under_the_brokers_names_and_come_back_canonical() {
    let mut t = broker();
    t.account_info().await.expect("account");
    assert_eq!(t.inner().listed, 1, "the list is read before the first call");
    t.order_send(request("EURUSD")).await.expect("sent");
    assert_eq!(t.inner().sent, ["EURUSD.m"]);
    let info = t.symbol_info("EURUSD").await.expect("info").expect("known");
    assert_eq!(info.name, "EURUSD");
    let positions = t.positions_get(PositionFilter::All).await.expect("positions");
    let symbols: Vec<&str> = positions.iter().map(|p| p.symbol.as_str()).collect();
    assert_eq!(symbols, ["EURUSD", "SPOTCRUDE"], "an unmapped broker symbol is reported untouched");
    let deals = t.history_deals_get(HistoryQuery::Position(1)).await.expect("deals");
    assert_eq!(deals[0].symbol, "EURUSD");
    let orders = t.history_orders_get(HistoryQuery::Order(3)).await.expect("orders");
    assert_eq!(orders[0].symbol, "GBPUSD");
    // Ambiguous (USDJPY.a, USDJPY.b) and missing (USDCHF): refused, nothing sent.
    let e = t.order_send(request("USDJPY")).await.expect_err("ambiguous");
    assert!(matches!(&e, Mt5Error::UnknownSymbol(m) if m.contains("ambiguous")), "{e}");
    assert!(!e.outcome_unknown());
    let e = t.copy_rates_range("USDCHF", "H1", Utc::now(), Utc::now()).await.expect_err("missing");
    assert!(matches!(&e, Mt5Error::UnknownSymbol(m) if m.contains("not offered")), "{e}");
    assert_eq!(t.inner().sent.len(), 1);
    t.order_send(request("USDJPY.b")).await.expect("a broker name goes through");
    // After the link failed, the list is read again.
    t.inner().down = true;
    assert!(t.positions_get(PositionFilter::All).await.is_err());
    t.inner().down = false;
    t.positions_get(PositionFilter::All).await.expect("back");
    assert_eq!(t.inner().listed, 2);
}

#[tokio::test]
async fn times_come_back_in_utc_and_dates_go_out_in_server_time() {
    let mut t = broker();
    let positions = t.positions_get(PositionFilter::All).await.expect("positions");
    assert_eq!(t.clock().offset_secs(), OFFSET, "inferred from a fresh tick");
    let now = t.inner().now;
    let p = &positions[0];
    assert!((p.time - (now - 60)).abs() <= 5, "UTC open time: {} vs {}", p.time, now - 60);
    assert_eq!(p.time_msc, p.time * 1000);
    let tick = t.symbol_info_tick("EURUSD").await.expect("tick").expect("price");
    assert!((tick.time - now).abs() <= 15, "{}", tick.time);
    let deals = t.history_deals_get(HistoryQuery::Position(1)).await.expect("deals");
    assert_eq!(deals[0].time_msc, 0, "an unset time stays unset");
    assert!((deals[0].time - now).abs() <= 15);
    let orders = t.history_orders_get(HistoryQuery::Order(3)).await.expect("orders");
    assert_eq!(orders[0].time_setup_msc, orders[0].time_setup * 1000);
    assert!((orders[0].time_setup - now).abs() <= 15);

    let from = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
    let to = from + TimeDelta::days(1);
    t.history_deals_get(HistoryQuery::Range(from, to)).await.expect("range");
    let asked = t.inner().deals_asked.last().copied();
    assert_eq!(asked, Some(HistoryQuery::Range(from + TimeDelta::hours(2), to + TimeDelta::hours(2))));
    let bars = t.copy_rates_range("EURUSD", "H1", from, to).await.expect("bars");
    assert_eq!(
        t.inner().rates_asked.last().map(|r| (r.0.as_str(), r.1)),
        Some(("EURUSD.m", from.timestamp() + OFFSET))
    );
    assert_eq!((bars[0].time, bars[1].time), (from.timestamp(), to.timestamp()), "bars at their UTC times");
}

#[tokio::test]
async fn the_flags_override_the_map_and_the_clock() {
    let rules = SymbolRules { pairs: vec![("USDJPY".into(), "USDJPY.b".into())], ..Default::default() };
    let mut t = BrokerTerminal::new(Broker::new(&["USDJPY.a", "USDJPY.b"]), rules, Some(TimeDelta::hours(3)));
    t.order_send(request("USDJPY")).await.expect("sent");
    assert_eq!(t.inner().sent, ["USDJPY.b"]);
    assert_eq!(t.clock().offset_secs(), 3 * 3600, "the flag, not the ticks (which say +2)");
    let p = t.positions_get(PositionFilter::All).await.expect("positions");
    let now = t.inner().now;
    assert_eq!(p[0].time, now - 60 - 3600, "taken as UTC+3");
}

/// Saturday 2026-12-05 12:00 UTC: the FX market is closed.
fn saturday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
}

/// A terminal started on a weekend: its ticks are Friday's close (server time) and do not move.
fn weekend_broker() -> BrokerTerminal<Broker> {
    let mut b = Broker::new(&["EURUSD.m", "GBPUSD.m"]);
    b.now = Utc.with_ymd_and_hms(2026, 12, 4, 21, 59, 58).unwrap().timestamp();
    b.closed = true;
    BrokerTerminal::new(b, SymbolRules::default(), None).with_utc_now(saturday)
}

#[tokio::test]
async fn the_inferred_offset_is_kept_in_the_state_file_and_serves_a_weekend_restart() {
    use crate::mt5::engine::{AccountIdentity, TerminalEngine, TerminalState};
    let identity = AccountIdentity { login: 1, server: "B".into(), company: "B".into() };
    // A weekday run learns +02:00; the state to save carries it (once), with nothing executed.
    let mut first = TerminalEngine::new(broker());
    assert!(first.take_changes(&identity, Utc::now()).is_none(), "nothing learned yet");
    first.terminal().positions_get(PositionFilter::All).await.expect("positions");
    assert_eq!(first.terminal_ref().learned_server_offset(), Some(OFFSET));
    assert!(first.has_changes());
    let state = first.take_changes(&identity, Utc::now()).expect("the offset is a change");
    assert_eq!((state.server_utc_offset_secs, state.executed.len()), (Some(OFFSET), 0));
    assert!(first.take_changes(&identity, Utc::now()).is_none(), "once");
    let saved = serde_json::to_string(&state).expect("json");

    // Restarted on Saturday: the ticks cannot tell; without the file, times are taken as UTC (2 h off)…
    let mut blind = weekend_broker();
    let p = blind.positions_get(PositionFilter::All).await.expect("positions");
    assert_eq!((blind.clock().offset_secs(), p[0].time), (0, blind.inner().now + OFFSET - 60));
    // …with it, as UTC+2: the position opened a minute before Friday's close, in UTC.
    let state: TerminalState = serde_json::from_str(&saved).expect("read back");
    let mut second = TerminalEngine::new(weekend_broker());
    second.terminal().account_info().await.expect("the terminal is read first (the clock looked: closed)");
    second.restore(state.executed);
    second.recall_server_offset(state.server_utc_offset_secs);
    let now = second.terminal().inner().now;
    let p = second.terminal().positions_get(PositionFilter::All).await.expect("positions");
    assert_eq!(p[0].time, now - 60, "read at UTC+2");
    assert!(second.take_changes(&identity, Utc::now()).is_none(), "the remembered offset is no change");

    // A state file written before the offset was kept reads as before (no offset).
    let mut old: serde_json::Value = serde_json::from_str(&saved).expect("json");
    old.as_object_mut().expect("object").remove("server_utc_offset_secs");
    let old: TerminalState = serde_json::from_value(old).expect("an older file still reads");
    assert_eq!(old.server_utc_offset_secs, None);
}
