//! Trading (issue #4). So far the `position-sizing` function: [`sizing`] (position size, margin, SL/TP,
//! risk profiles). The domain rules live in `nusatrade_domain::{instrument, sizing}`; this layer maps
//! JSON to them and back.

pub mod docs;
pub mod orders;
pub mod sizing;
pub mod views;

use crate::auth::{AuthConfig, Authenticator, TokenService};
use crate::ports::Ports;

/// The [`Authenticator`] of a function that only verifies callers (no password hashing pool, no
/// writes): access tokens checked with the configured secret, sessions and users read from the store.
pub fn authenticator(config: &AuthConfig, ports: &Ports) -> Authenticator {
    Authenticator {
        tokens: TokenService::new(&config.jwt_secret, config.access_ttl, config.refresh_ttl, ports.clock.clone()),
        store: ports.store.clone(),
        clock: ports.clock.clone(),
        require_email_verification: config.require_email_verification,
    }
}
