//! Price history from a connector (capability `history_candles`): the server asks for one page of OHLC bars at a
//! time and the connector answers it in one frame.
//!
//! * server → connector: `HISTORY_REQUEST {request_id, symbol, timeframe, start, end, max_bars}` — every bar of
//!   `symbol` on `timeframe` (`M1` … `W1`) whose open time `t` is `start ≤ t < end` (RFC 3339, UTC); the window
//!   holds at most `max_bars` bars ([`MAX_PAGE_BARS`]). `request_id` is `hist:<import id>:<page>`.
//! * connector → server: `HISTORY_CANDLES {request_id, symbol, timeframe, candles: [[t, open, high, low, close,
//!   volume], …]}` — `t` in Unix seconds, oldest first (a window with no trading, a weekend, is `[]`). A connector
//!   that cannot answer sends `ERROR {request_id, error}`.
//!
//! A page of [`MAX_PAGE_BARS`] bars as JSON arrays is about 20 KB: one WebSocket frame under the 32 KB frame
//! limit of API Gateway and the local gateway. Bars are checked here (finite positive prices, `low ≤ open, close ≤
//! high`, non-negative volume, strictly increasing times); what they mean for an import is decided by the hook.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nusatrade_ml::{Candle, Timeframe};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Most bars asked for (and accepted) in one page.
pub const MAX_PAGE_BARS: usize = 400;
/// The prefix of a history request id.
pub const HISTORY_REQUEST_PREFIX: &str = "hist:";

/// A history request id: `hist:<import id>:<page>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRequestId {
    pub import: Uuid,
    pub page: u32,
}

impl std::fmt::Display for HistoryRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{HISTORY_REQUEST_PREFIX}{}:{}", self.import, self.page)
    }
}

impl HistoryRequestId {
    /// Reads `hist:<uuid>:<page>`; anything else is `None`.
    pub fn parse(s: &str) -> Option<HistoryRequestId> {
        let rest = s.strip_prefix(HISTORY_REQUEST_PREFIX)?;
        let (id, page) = rest.split_once(':')?;
        let page: u32 = page.parse().ok().filter(|_| !page.starts_with('+'))?;
        Some(HistoryRequestId { import: Uuid::try_parse(id).ok()?, page })
    }
}

/// One page of bars from a connector (`HISTORY_CANDLES`).
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryPage {
    pub request: HistoryRequestId,
    pub symbol: String,
    pub timeframe: Timeframe,
    pub candles: Vec<Candle>,
}

impl HistoryPage {
    /// Parses the frame's fields.
    pub fn parse(m: &Map<String, Value>) -> Result<HistoryPage, String> {
        let request = m
            .get("request_id")
            .and_then(Value::as_str)
            .and_then(HistoryRequestId::parse)
            .ok_or("request_id must be hist:<import id>:<page>")?;
        let symbol = match m.get("symbol") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 32 => s.clone(),
            _ => return Err("symbol must be a string of at most 32 characters".into()),
        };
        let timeframe = m
            .get("timeframe")
            .and_then(Value::as_str)
            .and_then(Timeframe::parse)
            .ok_or("timeframe must be one of M1, M5, M15, M30, H1, H4, D1, W1")?;
        let Some(Value::Array(rows)) = m.get("candles") else { return Err("candles must be a list".into()) };
        if rows.len() > MAX_PAGE_BARS {
            return Err(format!("{} candles in one page (at most {MAX_PAGE_BARS})", rows.len()));
        }
        let mut candles: Vec<Candle> = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let c = candle(row).map_err(|e| format!("candle {i}: {e}"))?;
            if candles.last().is_some_and(|p| p.time >= c.time) {
                return Err(format!("candle {i}: time is not after the previous candle's"));
            }
            candles.push(c);
        }
        Ok(HistoryPage { request, symbol, timeframe, candles })
    }
}

fn candle(row: &Value) -> Result<Candle, String> {
    let Some(a) = row.as_array().filter(|a| a.len() == 5 || a.len() == 6) else {
        return Err("must be [time, open, high, low, close, volume]".into());
    };
    let time = a[0]
        .as_i64()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
        .filter(|t| t.timestamp() > 0)
        .ok_or("time must be Unix seconds")?;
    let num = |i: usize| a.get(i).map_or(Some(0.0), Value::as_f64).ok_or("prices and volume must be numbers");
    let c = Candle { time, open: num(1)?, high: num(2)?, low: num(3)?, close: num(4)?, volume: num(5)? };
    c.check().map_err(|e| e.to_string())?;
    Ok(c)
}

/// Where history answers go (the ML dataset import; a channel without one logs and drops them).
#[async_trait]
pub trait HistoryHook: Send + Sync {
    /// A page arrived from `user`'s connector on `broker_connection_id`.
    async fn page(&self, user: Uuid, broker_connection_id: Uuid, page: HistoryPage);
    /// The connector answered a history request with `ERROR`.
    async fn failed(&self, user: Uuid, request: HistoryRequestId, error: &str);
}

/// No import here: pages are logged and dropped.
pub struct DropHistory;

#[async_trait]
impl HistoryHook for DropHistory {
    async fn page(&self, user: Uuid, _broker: Uuid, page: HistoryPage) {
        tracing::info!(%user, request = %page.request, "history page with no import to take it: dropped");
    }
    async fn failed(&self, _user: Uuid, _request: HistoryRequestId, _error: &str) {}
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn page(v: Value) -> Result<HistoryPage, String> {
        HistoryPage::parse(v.as_object().unwrap())
    }

    #[test]
    fn request_ids_round_trip() {
        let id = HistoryRequestId { import: Uuid::from_u128(7), page: 12 };
        assert_eq!(HistoryRequestId::parse(&id.to_string()), Some(id));
        for junk in ["", "hist:", "hist:x:1", &format!("hist:{}", Uuid::nil()), &format!("hist:{}:-1", Uuid::nil())] {
            assert_eq!(HistoryRequestId::parse(junk), None, "{junk}");
        }
        assert_eq!(HistoryRequestId::parse(&format!("hist:{}:+1", Uuid::nil())), None);
    }

    #[test]
    fn a_valid_page_parses() {
        let rid = format!("hist:{}:0", Uuid::nil());
        let p = page(json!({"type": "HISTORY_CANDLES", "request_id": rid, "symbol": "EURUSD", "timeframe": "H1",
            "candles": [[1704067200, 1.1, 1.2, 1.0, 1.15, 10], [1704070800, 1.15, 1.16, 1.14, 1.15]]}))
        .unwrap();
        assert_eq!(p.candles.len(), 2);
        assert_eq!(p.timeframe, Timeframe::H1);
        assert_eq!(p.candles[1].volume, 0.0);
        assert!(page(json!({"request_id": rid, "symbol": "EURUSD", "timeframe": "D1", "candles": []})).is_ok());
    }

    #[test]
    fn implausible_or_oversized_pages_are_refused() {
        let rid = format!("hist:{}:0", Uuid::nil());
        let with = |candles: Value| {
            page(json!({"request_id": rid, "symbol": "EURUSD", "timeframe": "H1", "candles": candles}))
        };
        assert!(with(json!([[1704067200, 1.1, 1.05, 1.0, 1.15, 1]])).unwrap_err().contains("high"));
        assert!(with(json!([[1704067200, 1.1, 1.2, 1.12, 1.15, 1]])).unwrap_err().contains("low"));
        assert!(with(json!([[1704067200, -1, 1.2, 1.0, 1.15, 1]])).is_err());
        assert!(with(json!([[1704067200, 1.1, 1.2, 1.0, 1.15, -1]])).is_err());
        assert!(with(json!([["2024-01-01", 1.1, 1.2, 1.0, 1.15, 1]])).is_err());
        assert!(with(json!([[1704070800, 1.1, 1.2, 1.0, 1.15], [1704067200, 1.1, 1.2, 1.0, 1.15]])).is_err());
        assert!(with(json!({"a": 1})).is_err());
        let row = json!([1704067200, 1.1, 1.2, 1.0, 1.15, 1]);
        let many: Vec<Value> = (0..=MAX_PAGE_BARS as i64)
            .map(|i| {
                let mut r = row.clone();
                r[0] = json!(1704067200 + i * 3600);
                r
            })
            .collect();
        assert!(with(Value::Array(many)).unwrap_err().contains("at most"));
        assert!(page(json!({"request_id": "x", "symbol": "EURUSD", "timeframe": "H1", "candles": []})).is_err());
        assert!(page(json!({"request_id": rid, "symbol": "EURUSD", "timeframe": "H2", "candles": []})).is_err());
    }
}
