//! [`BrokerTerminal`]: a terminal as the engine wants it — the platform's canonical symbols and UTC — over a real
//! broker's terminal, whose symbols carry the broker's names ([`SymbolMap`]) and whose times are the trade
//! server's ([`ServerClock`]).
//!
//! * **Symbols**: the map is built from `symbols_get()` before the first call and again after the terminal failed
//!   to answer (a restarted bridge, a re-logged terminal). Going out, every symbol (`symbol_info`,
//!   `symbol_info_tick`, `symbol_select`, `order_send`, `copy_rates_range`) is the broker's name; a canonical
//!   symbol without one fails with [`Mt5Error::UnknownSymbol`] (the engine refuses the command with its text).
//!   Coming back, positions, deals, orders and symbol infos carry the canonical symbol when mapped, else the
//!   broker's name untouched.
//! * **Times**: coming back, position / deal / order / tick / bar times are converted from server time to UTC;
//!   going out, the dates of `history_*_get` ranges and `copy_rates_range` are converted to server time. The offset
//!   is looked at before a call when due ([`ServerClock::due`]) from the freshest tick of a few liquid symbols.

use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::server_time::{Sample, ServerClock, format_offset};
use super::symbols::{SymbolMap, SymbolRules};
use super::{
    AccountInfo, HistoryQuery, Mt5, Mt5Error, OrderSendResult, PositionFilter, Rate, SymbolInfo, SymbolTick, TradeDeal,
    TradeOrder, TradePosition, TradeRequest,
};

/// The canonical symbols whose ticks show the server's clock (the freshest wins; BTCUSD trades on weekends).
pub const CLOCK_SYMBOLS: [&str; 5] = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"];

/// See the module docs.
#[derive(Debug)]
pub struct BrokerTerminal<T> {
    inner: T,
    symbols: SymbolMap,
    clock: ServerClock,
    /// The symbol list must be read (again) before the next call.
    relist: bool,
    /// The UTC clock (tests set one).
    utc_now: fn() -> DateTime<Utc>,
}

impl<T: Mt5> BrokerTerminal<T> {
    /// Wraps `inner` with the flags' symbol rules and `--server-utc-offset` (`None`: inferred).
    pub fn new(inner: T, rules: SymbolRules, offset: Option<chrono::TimeDelta>) -> BrokerTerminal<T> {
        BrokerTerminal {
            inner,
            symbols: SymbolMap::new(rules),
            clock: ServerClock::new(offset),
            relist: true,
            utc_now: Utc::now,
        }
    }

    /// Reads UTC from `now` instead of the system clock (tests).
    #[cfg(test)]
    fn with_utc_now(mut self, now: fn() -> DateTime<Utc>) -> Self {
        self.utc_now = now;
        self
    }

    /// The wrapped terminal.
    pub fn inner(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The symbol map.
    pub fn symbols(&self) -> &SymbolMap {
        &self.symbols
    }

    /// The server clock.
    pub fn clock(&self) -> &ServerClock {
        &self.clock
    }

    /// Notes a failed call: after a failure of the link, the list and the clock are read again.
    fn noted<R>(&mut self, r: Result<R, Mt5Error>) -> Result<R, Mt5Error> {
        if let Err(e) = &r
            && (e.outcome_unknown() || matches!(e, Mt5Error::Protocol(_)))
        {
            self.relist = true;
            self.clock.look_soon();
        }
        r
    }

    /// Reads the symbol list and the server's clock when due.
    async fn prepare(&mut self) -> Result<(), Mt5Error> {
        if self.relist {
            let listed = self.inner.symbols_get().await;
            let names = match self.noted(listed) {
                Ok(n) => n,
                Err(Mt5Error::Terminal { code, message }) => {
                    warn!(code, %message, "symbols_get failed: the platform's symbol names are sent as they are");
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            self.relist = false;
            self.symbols.rebuild(&names);
            self.log_map(names.len());
        }
        if self.clock.due(Instant::now()) {
            let mut freshest: Option<Sample> = None;
            for c in CLOCK_SYMBOLS {
                let Ok(name) = self.symbols.outgoing(c) else { continue };
                let tick = self.inner.symbol_info_tick(&name).await;
                match self.noted(tick) {
                    Ok(Some(t)) if freshest.as_ref().is_none_or(|f| t.time > f.time) => {
                        freshest = Some(Sample { symbol: name, time: t.time });
                    }
                    Ok(_) | Err(Mt5Error::Terminal { .. } | Mt5Error::UnknownSymbol(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            self.clock.observe(freshest, (self.utc_now)(), Instant::now());
        }
        Ok(())
    }

    fn log_map(&self, listed: usize) {
        let renamed: Vec<String> = self.symbols.renamed().iter().map(|(c, b)| format!("{c}={b}")).collect();
        info!(listed, mapped = %renamed.join(" "), "MT5 symbol map (platform=broker; unlisted symbols keep their name)");
        let mut missing = Vec::new();
        for u in self.symbols.unmapped() {
            match u {
                super::symbols::Unmapped::Missing(c) => missing.push(c.as_str()),
                ambiguous => warn!("MT5 symbol map: {ambiguous}"),
            }
        }
        if !missing.is_empty() {
            info!(symbols = %missing.join(" "), "MT5 symbol map: not offered by this terminal (their commands are refused)");
        }
        if self.clock.is_fixed() {
            info!(offset = %format_offset(self.clock.offset_secs()), "MT5 server time offset set by --server-utc-offset");
        }
    }

    fn out(&self, symbol: &str) -> Result<String, Mt5Error> {
        self.symbols.outgoing(symbol).map_err(|e| Mt5Error::UnknownSymbol(e.to_string()))
    }

    fn query(&self, q: HistoryQuery) -> HistoryQuery {
        match q {
            HistoryQuery::Range(from, to) => HistoryQuery::Range(self.clock.to_server(from), self.clock.to_server(to)),
            other => other,
        }
    }

    fn position(&self, mut p: TradePosition) -> TradePosition {
        p.symbol = self.symbols.incoming(&p.symbol);
        p.time = self.clock.secs_to_utc(p.time);
        p.time_msc = self.clock.millis_to_utc(p.time_msc);
        p
    }

    fn deal(&self, mut d: TradeDeal) -> TradeDeal {
        d.symbol = self.symbols.incoming(&d.symbol);
        d.time = self.clock.secs_to_utc(d.time);
        d.time_msc = self.clock.millis_to_utc(d.time_msc);
        d
    }

    fn order(&self, mut o: TradeOrder) -> TradeOrder {
        o.symbol = self.symbols.incoming(&o.symbol);
        o.time_setup = self.clock.secs_to_utc(o.time_setup);
        o.time_setup_msc = self.clock.millis_to_utc(o.time_setup_msc);
        o
    }
}

impl<T: Mt5> Mt5 for BrokerTerminal<T> {
    async fn account_info(&mut self) -> Result<AccountInfo, Mt5Error> {
        self.prepare().await?;
        let r = self.inner.account_info().await;
        self.noted(r)
    }

    async fn symbols_get(&mut self) -> Result<Vec<String>, Mt5Error> {
        self.prepare().await?;
        let r = self.inner.symbols_get().await;
        Ok(self.noted(r)?.iter().map(|n| self.symbols.incoming(n)).collect())
    }

    async fn symbol_info(&mut self, symbol: &str) -> Result<Option<SymbolInfo>, Mt5Error> {
        self.prepare().await?;
        let name = self.out(symbol)?;
        let r = self.inner.symbol_info(&name).await;
        Ok(self.noted(r)?.map(|mut i| {
            i.name = self.symbols.incoming(&i.name);
            i
        }))
    }

    async fn symbol_select(&mut self, symbol: &str) -> Result<bool, Mt5Error> {
        self.prepare().await?;
        let name = self.out(symbol)?;
        let r = self.inner.symbol_select(&name).await;
        self.noted(r)
    }

    async fn symbol_info_tick(&mut self, symbol: &str) -> Result<Option<SymbolTick>, Mt5Error> {
        self.prepare().await?;
        let name = self.out(symbol)?;
        let r = self.inner.symbol_info_tick(&name).await;
        Ok(self.noted(r)?.map(|mut t| {
            t.time = self.clock.secs_to_utc(t.time);
            t
        }))
    }

    async fn positions_get(&mut self, filter: PositionFilter) -> Result<Vec<TradePosition>, Mt5Error> {
        self.prepare().await?;
        let r = self.inner.positions_get(filter).await;
        Ok(self.noted(r)?.into_iter().map(|p| self.position(p)).collect())
    }

    async fn history_deals_get(&mut self, query: HistoryQuery) -> Result<Vec<TradeDeal>, Mt5Error> {
        self.prepare().await?;
        let r = self.inner.history_deals_get(self.query(query)).await;
        Ok(self.noted(r)?.into_iter().map(|d| self.deal(d)).collect())
    }

    async fn history_orders_get(&mut self, query: HistoryQuery) -> Result<Vec<TradeOrder>, Mt5Error> {
        self.prepare().await?;
        let r = self.inner.history_orders_get(self.query(query)).await;
        Ok(self.noted(r)?.into_iter().map(|o| self.order(o)).collect())
    }

    async fn order_send(&mut self, mut request: TradeRequest) -> Result<OrderSendResult, Mt5Error> {
        self.prepare().await?;
        request.symbol = self.out(&request.symbol)?;
        let r = self.inner.order_send(request).await;
        self.noted(r)
    }

    async fn copy_rates_range(
        &mut self,
        symbol: &str,
        timeframe: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rate>, Mt5Error> {
        self.prepare().await?;
        let name = self.out(symbol)?;
        let (f, t) = (self.clock.to_server(from), self.clock.to_server(to));
        let r = self.inner.copy_rates_range(&name, timeframe, f, t).await;
        Ok(self
            .noted(r)?
            .into_iter()
            .map(|mut b| {
                b.time = self.clock.secs_to_utc(b.time);
                b
            })
            .collect())
    }

    fn history_complete_since(&self) -> Option<DateTime<Utc>> {
        self.inner.history_complete_since()
    }

    fn refused_before_send(&mut self, request: &TradeRequest, retcode: u32, message: &str) {
        self.inner.refused_before_send(request, retcode, message);
    }

    fn learned_server_offset(&self) -> Option<i64> {
        self.clock.known()
    }

    fn recall_server_offset(&mut self, secs: i64) {
        self.clock.recall(secs);
    }
}

#[cfg(test)]
mod tests;
