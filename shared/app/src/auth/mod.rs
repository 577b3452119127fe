//! Accounts and authentication (issue #3): the `auth` function's use cases and routes, and the
//! shared auth layer ([`CurrentUser`], [`RateLimiter`], [`limit_requests`]) other functions use.
//!
//! The use cases ([`service`], [`identity`], [`ratelimit`], [`passwords`], ...) answer with [`AuthError`]; the
//! HTTP edge — [`routes`], [`extract`] (extractors, the request-limit middleware and the one mapping of
//! `AuthError` to statuses), [`pages`] and [`docs`] — is the only part that speaks HTTP.

pub mod audit;
pub mod config;
pub mod docs;
pub mod error;
pub mod extract;
pub mod identity;
pub mod jwt_crypto;
pub mod pages;
pub mod passwords;
pub mod ratelimit;
pub mod roles;
pub mod routes;
pub mod service;
pub mod sockets;
pub mod store;
pub mod tokens;
pub mod totp;
pub mod views;

pub use audit::{AuditLog, RequestMeta};
pub use config::{AuthConfig, AuthConfigError, Limit};
pub use error::{AuthError, AuthResult};
pub use extract::{ClientIp, limit_requests};
pub use identity::{Authenticator, CurrentUser};
pub use ratelimit::{Decision, Lockout, RateLimiter, RequestLimits};
pub use roles::{RoleChange, RoleError, Roles};
pub use routes::router;
pub use service::AuthService;
pub use tokens::{Claims, TokenError, TokenKind, TokenService};
pub use views::{TokenResponse, UserOut};
