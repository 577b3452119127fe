//! The `position-sizing` function: the domain's sizing rules (`nusatrade_domain::sizing`) behind HTTP routes —
//! there is no use case between them, only request parsing and response shapes ([`routes`]).

pub mod routes;

pub use routes::*;
