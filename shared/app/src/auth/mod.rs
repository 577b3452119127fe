//! Accounts and authentication (issue #3): the `auth` function's use cases and routes, and the
//! shared auth layer ([`CurrentUser`], [`RateLimiter`], [`limit_requests`]) other functions use.

pub mod audit;
pub mod config;
pub mod docs;
pub mod extract;
pub mod pages;
pub mod passwords;
pub mod ratelimit;
pub mod routes;
pub mod service;
pub mod store;
pub mod tokens;
pub mod totp;

pub use audit::{AuditLog, RequestMeta};
pub use config::{AuthConfig, AuthConfigError, Limit};
pub use extract::{Authenticator, ClientIp, CurrentUser};
pub use ratelimit::{Decision, Lockout, RateLimiter, RequestLimits, limit_requests};
pub use routes::router;
pub use service::{AuthService, TokenResponse, UserOut};
pub use tokens::{Claims, TokenError, TokenKind, TokenService};
