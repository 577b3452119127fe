//! Admin (issue 17, contract §2.12): the operator settings behind the admin role — list, read, write and soft-delete
//! them (secrets sealed with envelope encryption, shown as `***ENCRYPTED***`, never logged), read their audit trail,
//! and check the language model and the (absent) Redis. The settings themselves and their run-time effect are
//! [`crate::settings`]; the role is granted by an operator ([`crate::auth::roles`]), never through a request.
//!
//! The use cases are in [`service`] (free of HTTP, [`AdminError`]), the audit trail in [`audit`], the routes and
//! their one error mapping in [`routes`], their description in [`docs`].

pub mod audit;
pub mod docs;
pub mod error;
pub mod routes;
pub mod service;

pub use audit::{Action, Actor, AuditEntry};
pub use error::AdminError;
pub use routes::{AdminState, AdminUser, router};
pub use service::{AdminService, ENCRYPTED_MASK, PutSetting, SettingView};
