//! Response shapes: the original's `TradeOut`, `PositionOut` and `TradeOutWithMT5` (contract §2.4) with
//! the fields the dashboard expects and the original lacked (`stop_loss`/`take_profit` on positions) and
//! the ones this backend adds (`status`, `client_order_id`, `ticket`, ...). Decimals are JSON numbers.

use chrono::{DateTime, Utc};
use nusatrade_domain::order::OrderStatus;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::store::OrderRecord;
use crate::trading::views::TrailingOut;
use crate::wire::num;

fn opt(d: Option<Decimal>) -> Option<f64> {
    d.map(num)
}

pub use crate::wire::iso;

fn opt_time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(iso)
}

/// `TradeOut` plus this backend's fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TradeOut {
    pub id: Uuid,
    pub symbol: String,
    pub trade_type: &'static str,
    pub lot_size: f64,
    /// The fill price once MT5 confirmed the open; the requested price before.
    pub open_price: Option<f64>,
    pub close_price: Option<f64>,
    pub profit: Option<f64>,
    pub open_time: Option<String>,
    pub close_time: Option<String>,
    /// Closed by reconciliation without MT5's closing deal: the close price is the last known price.
    pub close_unconfirmed: bool,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub status: OrderStatus,
    pub client_order_id: String,
    pub ticket: Option<u64>,
    pub connection_id: Option<Uuid>,
    pub requested_price: f64,
    pub source: String,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&OrderRecord> for TradeOut {
    fn from(o: &OrderRecord) -> Self {
        TradeOut {
            id: o.id,
            symbol: o.symbol.clone(),
            trade_type: o.side.as_str(),
            lot_size: num(o.lots),
            open_price: Some(num(o.open_price.unwrap_or(o.requested_price))),
            close_price: opt(o.close_price),
            profit: opt(o.profit),
            open_time: opt_time(o.open_time),
            close_time: opt_time(o.close_time),
            close_unconfirmed: o.close_unconfirmed,
            stop_loss: opt(o.stop_loss),
            take_profit: opt(o.take_profit),
            status: o.status,
            client_order_id: o.client_order_id.clone(),
            ticket: o.ticket.map(|t| t.0),
            connection_id: o.broker_connection_id,
            requested_price: num(o.requested_price),
            source: o.source.clone(),
            error: o.error.clone(),
            created_at: iso(o.created_at),
            updated_at: iso(o.updated_at),
        }
    }
}

/// `PositionOut` (with `stop_loss`/`take_profit`, contract §9.2 item 3) plus this backend's fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PositionOut {
    /// The order id: closing accepts it as the position id the dashboard sends.
    pub id: Uuid,
    pub symbol: String,
    pub trade_type: &'static str,
    pub lot_size: f64,
    pub open_price: f64,
    pub current_price: Option<f64>,
    pub profit: Option<f64>,
    pub open_time: Option<String>,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub status: OrderStatus,
    pub client_order_id: String,
    pub ticket: Option<u64>,
    pub connection_id: Option<Uuid>,
    pub trailing_stop: Option<TrailingOut>,
}

impl From<&OrderRecord> for PositionOut {
    fn from(o: &OrderRecord) -> Self {
        PositionOut {
            id: o.id,
            symbol: o.symbol.clone(),
            trade_type: o.side.as_str(),
            lot_size: num(o.lots),
            open_price: num(o.open_price.unwrap_or(o.requested_price)),
            current_price: opt(o.current_price),
            profit: opt(o.floating_profit),
            open_time: opt_time(o.open_time),
            stop_loss: opt(o.stop_loss),
            take_profit: opt(o.take_profit),
            status: o.status,
            client_order_id: o.client_order_id.clone(),
            ticket: o.ticket.map(|t| t.0),
            connection_id: o.broker_connection_id,
            trailing_stop: o.trailing_stop.as_ref().map(TrailingOut::from),
        }
    }
}

/// `{"trade": TradeOut, "mt5_execution": {...}}`.
pub fn trade_with_mt5(order: &OrderRecord, mt5_execution: Value) -> Value {
    serde_json::json!({ "trade": TradeOut::from(order), "mt5_execution": mt5_execution })
}

/// The browser notification of an order change (`ORDER_UPDATE`).
pub fn order_update(order: &OrderRecord) -> Value {
    serde_json::json!({ "type": "ORDER_UPDATE", "order": TradeOut::from(order), "timestamp": iso(order.updated_at) })
}
