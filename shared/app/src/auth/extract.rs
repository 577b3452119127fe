//! The HTTP edge of accounts, shared by every function: [`CurrentUser`] as an axum extractor (the bearer
//! access token, checked by [`Authenticator`]), [`RequestMeta`] (client IP and user agent) and [`ClientIp`], the
//! request extension a Lambda entry point sets from API Gateway's request context (locally the socket address is
//! used); the request-limit middleware [`limit_requests`]; and the one mapping of [`AuthError`] to a status, the
//! `{"detail": ...}` body and headers.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::audit::RequestMeta;
use super::error::AuthError;
use super::identity::{Authenticator, CurrentUser};
use super::passwords::HashError;
use super::ratelimit::{Decision, RequestLimits};
use super::service::AuthService;
use super::tokens::TokenKind;
use crate::http::ApiError;

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

impl FromRef<AuthService> for Authenticator {
    fn from_ref(s: &AuthService) -> Self {
        s.authenticator()
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
        let user = Authenticator::from_ref(state).authenticate(token).await.map_err(ApiError::from)?;
        if let Some(slot) = parts.extensions.get::<crate::http::layers::RequestUser>() {
            let _ = slot.0.set(user.id);
        }
        Ok(user)
    }
}

static X_RL_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_RL_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RL_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Middleware: per-user (valid bearer access token) or per-IP request limit, with the original's
/// `X-RateLimit-*` headers on answers and its 429 body when exceeded. A store outage lets requests
/// through (logged): limits protect the service, they must not take it down.
pub async fn limit_requests(State(s): State<RequestLimits>, req: Request, next: Next) -> Response {
    if !s.enabled {
        return next.run(req).await;
    }
    let bucket = match bearer_token(req.headers()).and_then(|t| s.tokens.verify(t, TokenKind::Access).ok()) {
        Some(claims) => format!("user:{}", claims.sub),
        None => format!("ip:{}", client_ip(req.extensions())),
    };
    let limit = s.current().await;
    let decision = match s.limiter.hit(&bucket, limit).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable; request let through");
            None
        }
    };
    match decision {
        Some(Decision::Limited { retry_after }) => {
            ApiError::from(AuthError::TooManyAttempts { retry_after }).into_response()
        }
        Some(Decision::Allowed { limit, remaining, reset_at }) => {
            let mut resp = next.run(req).await;
            let h = resp.headers_mut();
            h.insert(X_RL_LIMIT.clone(), HeaderValue::from(limit));
            h.insert(X_RL_REMAINING.clone(), HeaderValue::from(remaining));
            h.insert(X_RL_RESET.clone(), HeaderValue::from(reset_at));
            resp
        }
        None => next.run(req).await,
    }
}

/// The status, body and headers of each account refusal (the messages are the variants' texts): 401 (with
/// `WWW-Authenticate: Bearer`) for failed credentials, tokens and codes, 403 when the second factor is required,
/// 429 (with `Retry-After` and `retry_after`) for the lock-out and spent budgets, 400 for refused input or state,
/// 404, 409, and 503 (with `Retry-After: 1`, generic body) when the hasher is busy or the mailer or store fails.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use AuthError as E;
        match e {
            E::InvalidCredentials { .. }
            | E::IncorrectPassword
            | E::InvalidAccessToken
            | E::NotARefreshToken
            | E::InvalidRefreshToken
            | E::RefreshTokenReused
            | E::RefreshUserGone
            | E::InvalidTotpCode
            | E::TotpNotConfirmed => ApiError::Unauthorized(e.to_string()),
            E::TotpRequired => ApiError::Forbidden(e.to_string()),
            E::AccountLocked { retry_after } | E::TooManyAttempts { retry_after } => {
                ApiError::TooManyRequests { detail: e.to_string(), retry_after }
            }
            E::WeakPassword(_)
            | E::EmailTaken
            | E::EmailAlreadyVerified
            | E::InvalidResetToken
            | E::InvalidVerificationToken
            | E::TotpNotEnabledForLogin
            | E::TotpCodeMissing
            | E::TotpNotSetUp
            | E::TotpSetupWhileEnabled
            | E::TotpAlreadyEnabled
            | E::TotpNotEnabled => ApiError::BadRequest(e.to_string()),
            E::UserNotFound | E::SessionNotFound => ApiError::NotFound(e.to_string()),
            E::SettingsConflict => ApiError::Conflict(e.to_string()),
            // 503 + Retry-After: the client retries; nothing was decided about the credentials
            E::Hashing(HashError::Busy) => ApiError::Unavailable("password hashing queue full".into()),
            E::Hashing(other) => ApiError::Internal(other.to_string()),
            E::MailUnavailable(m) => ApiError::Unavailable(m),
            E::Store(s) => s.into(),
            E::Internal(m) => ApiError::Internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: AuthError) -> u16 {
        ApiError::from(e).status().as_u16()
    }

    #[test]
    fn a_busy_hasher_is_a_retryable_503_not_a_wrong_password() {
        let e = ApiError::from(AuthError::from(HashError::Busy));
        assert_eq!(e.status().as_u16(), 503);
        let resp = axum::response::IntoResponse::into_response(e);
        assert!(resp.headers().contains_key("retry-after"));
        assert_eq!(ApiError::from(AuthError::from(HashError::Failed("x".into()))).status().as_u16(), 500);
    }

    #[test]
    fn refusals_keep_their_statuses_and_messages() {
        assert_eq!(status(AuthError::InvalidCredentials { remaining: 3 }), 401);
        assert_eq!(status(AuthError::TotpRequired), 403);
        assert_eq!(status(AuthError::EmailTaken), 400);
        assert_eq!(status(AuthError::UserNotFound), 404);
        assert_eq!(status(AuthError::RefreshUserGone), 401, "a refresh of a deleted user is a 401");
        assert_eq!(status(AuthError::SettingsConflict), 409);
        assert_eq!(status(AuthError::MailUnavailable("smtp down".into())), 503);
        match ApiError::from(AuthError::AccountLocked { retry_after: 900 }) {
            ApiError::TooManyRequests { detail, retry_after } => {
                assert_eq!(retry_after, 900);
                assert_eq!(detail, "Account locked due to too many failed attempts. Try again in 900 seconds.");
            }
            other => panic!("{other:?}"),
        }
        match ApiError::from(AuthError::TooManyAttempts { retry_after: 7 }) {
            ApiError::TooManyRequests { detail, retry_after } => {
                assert_eq!((detail.as_str(), retry_after), ("Too many requests", 7))
            }
            other => panic!("{other:?}"),
        }
        let resp = ApiError::from(AuthError::InvalidAccessToken).into_response();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    }
}
