//! The routers a function group serves, assembled once for the Lambda mains and the local gateway.

use std::time::Instant;

use axum::Router;

use super::Trading;
use crate::auth::{Authenticator, RequestLimits};
use crate::http::health::{self, HealthState};
use crate::reconcile::routes::MonitorState;
use crate::trading::orders::routes::OrdersState;

/// The `orders` function's routes: the order routes and the position monitor (`/position-monitor/*`).
pub fn trading(auth: Authenticator, trading: &Trading, limits: Option<RequestLimits>) -> Router {
    let orders = OrdersState { auth: auth.clone(), orders: trading.orders.clone() };
    let monitor = MonitorState { auth, reconcile: trading.reconcile.clone() };
    crate::trading::orders::routes::router(orders, limits.clone())
        .merge(crate::reconcile::routes::router(monitor, limits))
}

/// The `health` function's routes: health and info over the store, plus the API's description (OpenAPI document
/// and the `/docs` page).
pub fn health(ports: &crate::ports::Ports, started: Instant, environment: String) -> Router {
    let state = HealthState { store: ports.store.clone(), clock: ports.clock.clone(), started, environment };
    health::router(state).merge(crate::api::router())
}
