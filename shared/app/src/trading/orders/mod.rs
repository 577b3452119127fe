//! The `orders` function (issue #4): orders whose state follows MT5 acknowledgements ([`service`]), their
//! store layout ([`store`]), response shapes ([`views`]) and HTTP routes ([`routes`]).

pub mod queries;
pub mod routes;
pub mod service;
pub mod store;
pub mod views;

pub use service::{
    AckOutcome, IdempotencyKey, ModifyOrder, OrderService, PlaceOrder, Reply, TradingConfig, TradingError,
};
pub use store::OrderRecord;
