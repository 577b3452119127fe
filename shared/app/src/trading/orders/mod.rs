//! The `orders` function (issue #4): orders whose state follows MT5 acknowledgements.
//!
//! * [`service`]: the use cases (place, close, modify, trailing settings) and [`acks`]: acknowledgements and
//!   timeouts applied through the state machine;
//! * [`book`]: the one owner of order writes (orders, reservations, idempotency claims, outbox entries, closed-trade
//!   aggregates, the live-order index);
//! * [`idempotency`], [`timeouts`] (the ack-timeout messages), [`config`], [`error`];
//! * [`store`] (layout), [`queries`] (listings, statistics), [`views`] (response shapes), [`routes`] (HTTP).

pub mod acks;
pub mod book;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod queries;
pub mod routes;
pub mod service;
pub mod store;
pub mod timeouts;
pub mod views;

pub use acks::AckOutcome;
pub use book::OrderBook;
pub use config::TradingConfig;
pub use error::{TradingError, TradingResult};
pub use service::{Delivery, ModifyOrder, OrderService, PlaceOrder, Placed};
pub use store::{IdempotencyKey, OrderRecord};
