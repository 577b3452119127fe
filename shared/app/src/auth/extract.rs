//! The shared auth layer every function uses: [`CurrentUser`] (an axum extractor) verifies the
//! bearer access token (HS256 pinned, `type` = access, not expired), then checks in the store that
//! its session is still live (not revoked, not expired) and loads the user. Routers get it by
//! holding an [`Authenticator`] in their state (`Authenticator: FromRef<S>`).
//!
//! Also [`RequestMeta`] (client IP and user agent) and [`ClientIp`], the request extension a Lambda
//! entry point sets from API Gateway's request context (locally the socket address is used).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, header};
use uuid::Uuid;

use super::audit::RequestMeta;
use super::store::{SessionRecord, UserRecord, session_key, user_key};
use super::tokens::{TokenKind, TokenService};
use crate::http::ApiError;
use crate::ports::{Clock, ItemStore};

/// Longest user agent kept.
pub const MAX_USER_AGENT: usize = 255;

/// The caller's IP as the platform saw it (API Gateway's `sourceIp`). Set by the Lambda entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIp(pub String);

/// The bearer token of a request, if the header has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The client IP: the platform's extension, else the socket peer, else `unknown`. Forwarding
/// headers are not trusted (the local gateway has no proxy in front of it; API Gateway's own view is
/// the extension).
pub fn client_ip(ext: &Extensions) -> String {
    if let Some(ClientIp(ip)) = ext.get::<ClientIp>() {
        return ip.chars().take(45).collect();
    }
    if let Some(ConnectInfo(addr)) = ext.get::<ConnectInfo<SocketAddr>>() {
        return addr.ip().to_string();
    }
    "unknown".to_owned()
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT).collect())
            .unwrap_or_default();
        Ok(RequestMeta { ip: client_ip(&parts.extensions), user_agent })
    }
}

/// What a route needs to authenticate callers: tokens and the store.
#[derive(Clone)]
pub struct Authenticator {
    pub tokens: TokenService,
    pub store: Arc<dyn ItemStore>,
    pub clock: Arc<dyn Clock>,
    /// `NUSATRADE_REQUIRE_EMAIL_VERIFICATION`: the trading routes refuse unverified users when set.
    pub require_email_verification: bool,
}

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub email_verified: bool,
    pub session_id: Uuid,
    /// Copied from the configuration, so routes decide with [`CurrentUser::may_trade`].
    pub email_verification_required: bool,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
    /// False for an unverified e-mail while verification is required.
    pub fn may_trade(&self) -> bool {
        self.email_verified || !self.email_verification_required
    }
}

fn invalid() -> ApiError {
    ApiError::Unauthorized("Could not validate credentials".into())
}

impl Authenticator {
    /// Verifies an access token and its session; loads the user.
    pub async fn authenticate(&self, token: &str) -> Result<CurrentUser, ApiError> {
        let claims = self.tokens.verify(token, TokenKind::Access).map_err(|_| invalid())?;
        let (sk, uk) = (session_key(claims.sub, claims.sid), user_key(claims.sub));
        let (session, user) = tokio::join!(self.store.get(&sk), self.store.get(&uk));
        let session: SessionRecord = session?.ok_or_else(invalid)?.to_record()?;
        if session.revoked || session.user_id != claims.sub {
            return Err(invalid());
        }
        let user: UserRecord = user?.ok_or_else(invalid)?.to_record()?;
        Ok(CurrentUser {
            id: user.id,
            email: user.email,
            role: user.role,
            email_verified: user.email_verified,
            session_id: claims.sid,
            email_verification_required: self.require_email_verification,
        })
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.headers.get(header::AUTHORIZATION).is_none_or(|v| v.is_empty()) {
            return Err(ApiError::Unauthorized("Not authenticated".into()));
        }
        let token = bearer_token(&parts.headers).ok_or_else(|| ApiError::Unauthorized("Not authenticated".into()))?;
        let user = Authenticator::from_ref(state).authenticate(token).await?;
        if let Some(slot) = parts.extensions.get::<crate::http::layers::RequestUser>() {
            let _ = slot.0.set(user.id);
        }
        Ok(user)
    }
}
