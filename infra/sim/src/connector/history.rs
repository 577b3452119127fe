//! Price history of the simulated connector (capability `history_candles`): `HISTORY_REQUEST {request_id, symbol,
//! timeframe, start, end, max_bars}` is answered with `HISTORY_CANDLES {request_id, symbol, timeframe, candles:
//! [[t, open, high, low, close, volume], …]}` (`t` in Unix seconds), or `ERROR {request_id, error}` when it cannot be.
//!
//! With the random-walk price source the bars are **generated**, deterministically from the walk's seed, the symbol
//! and the bar's time — the same request always gets the same bars, whatever was asked before, so a page asked twice
//! is the same page — around the symbol's walk start price ([`default_start_price`]): a sum of slow waves (weeks,
//! days, hours) plus per-bar noise, the close of a bar the open of the next, high and low outside the body by a
//! random number of points, every price on the instrument's digits, so `low ≤ open, close ≤ high` holds exactly.
//! Markets other than crypto have no bars on Saturdays and Sundays (UTC). A replayed price file has no history
//! service here: such a connector answers `ERROR`.

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use nusatrade_domain::instrument::{InstrumentKind, Symbol};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde_json::{Map, Value, json};

use crate::feed::{default_start_price, default_volatility};

/// Most bars answered in one page (the server asks for 400: about 22 KB, one frame under 32 KB).
pub const MAX_HISTORY_BARS: usize = 1_000;

/// Where history comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistorySource {
    /// Generated from a random walk's seed, for its symbols.
    Generated { seed: u64, symbols: Vec<Symbol> },
    /// None (a replayed price file): every request is answered with `ERROR`.
    Unavailable,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64: a well-spread hash of one word, plain arithmetic.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` for `(key, t, salt)`.
fn unit(key: u64, t: i64, salt: u64) -> f64 {
    (mix(key ^ mix(t as u64 ^ salt.rotate_left(17))) >> 11) as f64 / (1u64 << 53) as f64
}

fn symbol_key(seed: u64, symbol: Symbol) -> u64 {
    symbol.as_str().bytes().fold(mix(seed), |h, b| mix(h ^ u64::from(b)))
}

/// The generated bars of one symbol.
struct Generator {
    key: u64,
    base: f64,
    /// Scale of the moves against FX's.
    scale: f64,
    digits: u32,
    weekends: bool,
}

impl Generator {
    fn new(seed: u64, symbol: Symbol) -> Generator {
        let instrument = symbol.instrument();
        Generator {
            key: symbol_key(seed, symbol),
            base: default_start_price(symbol).to_f64().unwrap_or(1.0),
            scale: default_volatility(instrument) / 0.000_08,
            digits: instrument.digits,
            weekends: instrument.kind == InstrumentKind::Crypto,
        }
    }

    /// The price at time `t` (Unix seconds), unrounded.
    fn price(&self, t: i64) -> f64 {
        use std::f64::consts::TAU;
        let phase = |i: u64| unit(self.key, 0, 100 + i) * TAU;
        let wave = |period_h: f64, amp: f64, i: u64| amp * (TAU * t as f64 / (period_h * 3600.0) + phase(i)).sin();
        let drift = wave(24.0 * 37.0, 0.04, 1) + wave(24.0 * 5.3, 0.012, 2) + wave(9.7, 0.003, 3);
        let noise = (unit(self.key, t, 1) - 0.5) * 0.0016;
        self.base * (self.scale * (drift + noise)).exp()
    }

    fn round(&self, p: f64) -> Decimal {
        Decimal::from_f64(p).unwrap_or(Decimal::ONE).round_dp(self.digits).max(Decimal::new(1, self.digits))
    }

    /// The bar opening at `t` on a timeframe of `tf` seconds, or `None` when the market is closed.
    fn bar(&self, t: DateTime<Utc>, tf: i64) -> Option<[Decimal; 5]> {
        if !self.weekends && tf < 86_400 * 7 && matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
            return None;
        }
        let s = t.timestamp();
        let open = self.round(self.price(s));
        let close = self.round(self.price(s + tf));
        let point = Decimal::new(1, self.digits);
        let spread_points = |salt: u64| {
            // up to ~0.25 % of the price over an hour, growing with the square root of the bar length
            let range = self.base * 0.0025 * self.scale * (tf as f64 / 3600.0).sqrt() * unit(self.key, s, salt);
            Decimal::from_f64((range / point.to_f64().unwrap_or(1.0)).floor()).unwrap_or(Decimal::ZERO) * point
        };
        let high = open.max(close) + spread_points(2);
        let low = (open.min(close) - spread_points(3)).max(point);
        let volume = Decimal::from(50 + (unit(self.key, s, 4) * 1000.0) as i64);
        Some([open, high, low, close, volume])
    }
}

/// What a `HISTORY_REQUEST` asks, read the same way for every terminal (the paper account's generator here, a real
/// terminal's `copy_rates_range` in [`crate::mt5::engine`]): the window is `[start, end)`, at most `max` bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryAsk {
    /// As sent, trimmed (1–32 characters; which symbols exist is the terminal's answer).
    pub symbol: String,
    /// `M1` … `W1`.
    pub timeframe: &'static str,
    /// The timeframe's length in seconds.
    pub seconds: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `max_bars`, at most [`MAX_HISTORY_BARS`].
    pub max: usize,
}

impl HistoryAsk {
    /// Reads the request; `Err` is the `ERROR` text sent back.
    pub fn parse(m: &Map<String, Value>) -> Result<HistoryAsk, String> {
        let symbol = m
            .get("symbol")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 32)
            .ok_or("symbol is required")?
            .to_owned();
        let (timeframe, seconds) = match m.get("timeframe").and_then(Value::as_str).unwrap_or_default() {
            "M1" => ("M1", 60),
            "M5" => ("M5", 300),
            "M15" => ("M15", 900),
            "M30" => ("M30", 1_800),
            "H1" => ("H1", 3_600),
            "H4" => ("H4", 14_400),
            "D1" => ("D1", 86_400),
            "W1" => ("W1", 604_800),
            other => return Err(format!("unknown timeframe {}", other.chars().take(8).collect::<String>())),
        };
        let time = |f: &str| {
            m.get(f)
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| format!("{f} must be an RFC 3339 time"))
        };
        let (start, end) = (time("start")?, time("end")?);
        let max =
            m.get("max_bars").and_then(Value::as_u64).map_or(MAX_HISTORY_BARS, |n| (n as usize).min(MAX_HISTORY_BARS));
        Ok(HistoryAsk { symbol, timeframe, seconds, start, end, max })
    }
}

impl HistorySource {
    /// Answers one `HISTORY_REQUEST`.
    pub fn answer(&self, m: &Map<String, Value>) -> Value {
        let request_id = m.get("request_id").cloned().unwrap_or(Value::Null);
        match self.candles(m) {
            Ok((symbol, tf, candles)) => json!({
                "type": "HISTORY_CANDLES",
                "request_id": request_id,
                "symbol": symbol,
                "timeframe": tf,
                "candles": candles,
            }),
            Err(error) => json!({"type": "ERROR", "request_id": request_id, "error": error}),
        }
    }

    fn candles(&self, m: &Map<String, Value>) -> Result<(&'static str, &'static str, Vec<Value>), String> {
        let HistorySource::Generated { seed, symbols } = self else {
            return Err("history is not available: prices come from a replayed file".into());
        };
        let HistoryAsk { symbol: raw, timeframe: tf_name, seconds: tf, start, end, max } = HistoryAsk::parse(m)?;
        let symbol = Symbol::parse(&raw)
            .ok()
            .filter(|s| symbols.contains(s))
            .ok_or_else(|| format!("Symbol {raw} not found"))?;
        let generator = Generator::new(*seed, symbol);
        // MT5 bars open on multiples of the timeframe (weeks: on Sundays, as MT5's W1).
        let align = |t: DateTime<Utc>| {
            let s = t.timestamp();
            let offset = if tf == 604_800 { 3 * 86_400 } else { 0 };
            let a = (s + offset).div_euclid(tf) * tf - offset;
            if a < s { a + tf } else { a }
        };
        let mut out = Vec::new();
        let mut t = DateTime::<Utc>::from_timestamp(align(start), 0).unwrap_or(start);
        while t < end && out.len() < max {
            if let Some([o, h, l, c, v]) = generator.bar(t, tf) {
                let n = |d: Decimal| d.to_f64().map_or(Value::Null, |f| json!(f));
                out.push(json!([t.timestamp(), n(o), n(h), n(l), n(c), n(v)]));
            }
            t += Duration::seconds(tf);
        }
        Ok((symbol.as_str(), tf_name, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    fn source() -> HistorySource {
        HistorySource::Generated { seed: 7, symbols: vec![sym("EURUSD"), sym("XAUUSD"), sym("USDJPY"), sym("BTCUSD")] }
    }

    fn ask(s: &HistorySource, symbol: &str, tf: &str, start: &str, end: &str, max: u64) -> Value {
        let v = json!({"type": "HISTORY_REQUEST", "request_id": "hist:x:0", "symbol": symbol, "timeframe": tf,
            "start": start, "end": end, "max_bars": max});
        s.answer(v.as_object().unwrap())
    }

    #[test]
    fn bars_are_plausible_deterministic_and_fit_a_frame() {
        let s = source();
        for symbol in ["EURUSD", "XAUUSD", "USDJPY", "BTCUSD"] {
            for tf in ["M1", "M15", "H1", "H4", "D1"] {
                let a = ask(&s, symbol, tf, "2025-01-06T00:00:00Z", "2026-01-06T00:00:00Z", 400);
                assert_eq!(a["type"], "HISTORY_CANDLES", "{a}");
                let candles = a["candles"].as_array().unwrap();
                assert!(!candles.is_empty() && candles.len() <= 400, "{symbol} {tf}: {}", candles.len());
                assert!(a.to_string().len() < 32 * 1024, "{symbol} {tf}: {} bytes", a.to_string().len());
                let mut last = 0;
                for c in candles {
                    let [t, o, h, l, cl, v] = [0, 1, 2, 3, 4, 5].map(|i| c[i].as_f64().unwrap());
                    assert!(t as i64 > last, "increasing times");
                    last = t as i64;
                    assert!(l <= o.min(cl) && o.max(cl) <= h && l > 0.0 && v >= 0.0, "{symbol} {tf}: {c}");
                }
                let again = ask(&s, symbol, tf, "2025-01-06T00:00:00Z", "2026-01-06T00:00:00Z", 400);
                assert_eq!(a, again, "the same request gets the same bars");
            }
        }
        // near the walk's start price, and the close of a bar is the open of the next
        let a = ask(&s, "EURUSD", "H1", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", 400);
        let c = a["candles"].as_array().unwrap();
        assert_eq!(c.len(), 24);
        for w in c.windows(2) {
            assert_eq!(w[0][4], w[1][1]);
        }
        let p = c[0][1].as_f64().unwrap();
        assert!((0.9..1.3).contains(&p), "{p}");
    }

    #[test]
    fn windows_weekends_and_limits() {
        let s = source();
        // Saturday and Sunday: no FX bars, crypto trades
        let fx = ask(&s, "EURUSD", "H1", "2026-03-07T00:00:00Z", "2026-03-09T00:00:00Z", 400);
        assert_eq!(fx["candles"], json!([]));
        let btc = ask(&s, "BTCUSD", "H1", "2026-03-07T00:00:00Z", "2026-03-09T00:00:00Z", 400);
        assert_eq!(btc["candles"].as_array().unwrap().len(), 48);
        // bars open on the timeframe's multiples inside [start, end); at most max_bars
        let a = ask(&s, "EURUSD", "H1", "2026-03-02T00:30:00Z", "2026-03-02T03:00:00Z", 400);
        let times: Vec<i64> = a["candles"].as_array().unwrap().iter().map(|c| c[0].as_i64().unwrap()).collect();
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T01:00:00Z").unwrap().timestamp();
        assert_eq!(times, vec![t0, t0 + 3600]);
        let capped = ask(&s, "EURUSD", "M1", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", 10);
        assert_eq!(capped["candles"].as_array().unwrap().len(), 10);
        // refusals
        for bad in [
            ask(&s, "GBPUSD", "H1", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", 400),
            ask(&s, "EURUSD", "H2", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", 400),
            ask(&s, "EURUSD", "H1", "yesterday", "2026-03-03T00:00:00Z", 400),
            ask(&HistorySource::Unavailable, "EURUSD", "H1", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", 400),
        ] {
            assert_eq!((bad["type"].as_str(), bad["request_id"].as_str()), (Some("ERROR"), Some("hist:x:0")), "{bad}");
        }
    }
}
