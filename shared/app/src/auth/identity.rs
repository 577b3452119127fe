//! Who is calling: [`Authenticator`] verifies a bearer access token (HS256 pinned, `type` = access, not
//! expired), then checks in the store that its session is still live (not revoked, not expired) and loads the
//! user as a [`CurrentUser`]. The HTTP extractor over it lives at the edge ([`super::extract`]).

use std::sync::Arc;

use uuid::Uuid;

use super::error::AuthError;
use super::store::{SessionRecord, UserRecord, session_key, user_key};
use super::tokens::{TokenKind, TokenService};
use crate::ports::{Clock, ItemStore};

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

impl Authenticator {
    /// Verifies an access token and its session; loads the user. [`AuthError::InvalidAccessToken`] for a bad
    /// token, a revoked or expired session and a deleted user alike.
    pub async fn authenticate(&self, token: &str) -> Result<CurrentUser, AuthError> {
        let invalid = || AuthError::InvalidAccessToken;
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
