//! The account use cases: registration, login (with lock-out and 2FA), refresh rotation with reuse
//! detection, logout, password reset, e-mail verification, profile and settings, TOTP, sessions and
//! the activity trail. Refusals and failures are [`AuthError`]s whose texts are the contract's messages; their
//! statuses are chosen at the HTTP edge.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use nusatrade_domain::auth as rules;
use serde_json::{Map, Value as Json, json};
use uuid::Uuid;

use super::audit::{AuditEntry, AuditLog, RequestMeta, events};
use super::config::{AuthConfig, Limit};
use super::error::{AuthError, AuthResult};
use super::identity::{Authenticator, CurrentUser};
use super::passwords::{HashError, PasswordHasher};
use super::ratelimit::{Decision, Lockout, RateLimiter, RequestLimits};
use super::sockets::{Ended, SessionSockets};
use super::store::*;
use super::tokens::{TokenError, TokenKind, TokenPair, TokenService};
use super::totp;
use super::views::{SessionOut, TokenResponse, UserOut, default_settings};
use crate::keys::user_pk;
use crate::ports::{Condition, Cursor, Email, Item, Ports, Query, TxOp, Update, Value};
use crate::settings::RuntimeSettings;

#[derive(Clone)]
pub struct AuthService {
    inner: Arc<Inner>,
    /// The operator's run-time settings (the request limit's `rate_limit_requests` / `rate_limit_window_seconds`).
    settings: Option<RuntimeSettings>,
}

struct Inner {
    config: AuthConfig,
    ports: Ports,
    tokens: TokenService,
    hasher: PasswordHasher,
    limiter: RateLimiter,
    lockout: Lockout,
    audit: AuditLog,
    sockets: SessionSockets,
}

impl AuthService {
    pub fn new(config: AuthConfig, ports: Ports) -> Result<Self, HashError> {
        let counters = ports.store.clone();
        Self::with_counter_store(config, ports, counters)
    }

    /// [`new`](Self::new) with the request-limit counters (short fixed windows, see `ratelimit`) kept in
    /// `counters` instead of the main store. The single-process local gateway keeps them in memory: they
    /// only need to be shared by the instances that serve requests, and a restart merely resets the
    /// current windows. Lock-outs, sessions and everything else stay in the main store.
    pub fn with_counter_store(
        config: AuthConfig,
        ports: Ports,
        counters: Arc<dyn crate::ports::ItemStore>,
    ) -> Result<Self, HashError> {
        let tokens = TokenService::new(&config.jwt_secret, config.access_ttl, config.refresh_ttl, ports.clock.clone());
        let hasher =
            PasswordHasher::with_queue_timeout(config.argon2, config.hash_concurrency, config.hash_queue_timeout)?;
        let limiter = RateLimiter::new(counters, ports.clock.clone());
        let lockout = Lockout::new(
            ports.store.clone(),
            ports.clock.clone(),
            config.login_max_failures,
            config.login_window,
            config.login_lock,
        );
        let audit = AuditLog::new(ports.store.clone(), ports.clock.clone(), ports.ids.clone());
        let sockets = SessionSockets::new(ports.store.clone(), ports.clock.clone(), ports.push.clone());
        let inner = Arc::new(Inner { config, ports, tokens, hasher, limiter, lockout, audit, sockets });
        Ok(AuthService { inner, settings: None })
    }

    /// Takes the request limit from the operator's settings when they set it (see [`RequestLimits::current`]).
    pub fn with_settings(mut self, settings: Option<RuntimeSettings>) -> Self {
        self.settings = settings;
        self
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }
    pub fn tokens(&self) -> &TokenService {
        &self.inner.tokens
    }
    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    pub fn authenticator(&self) -> Authenticator {
        Authenticator {
            tokens: self.inner.tokens.clone(),
            store: self.inner.ports.store.clone(),
            clock: self.inner.ports.clock.clone(),
            require_email_verification: self.inner.config.require_email_verification,
        }
    }

    /// State for the per-IP / per-user request limit middleware.
    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            limiter: self.inner.limiter.clone(),
            tokens: self.inner.tokens.clone(),
            limit: self.inner.config.request_limit,
            enabled: self.inner.config.rate_limit_enabled,
            settings: self.settings.clone(),
        }
    }

    /// The stricter per-IP budget of the credential routes (register, login, reset, ...).
    pub async fn check_credential_limit(&self, meta: &RequestMeta) -> AuthResult<()> {
        if self.inner.config.rate_limit_enabled {
            self.inner.limiter.check(&format!("auth:ip:{}", meta.ip), self.inner.config.auth_limit).await?;
        }
        Ok(())
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.ports.clock.now()
    }

    async fn user_by_email(&self, email: &str) -> AuthResult<Option<UserRecord>> {
        let store = &self.inner.ports.store;
        let Some(guard) = store.get(&email_key(email)).await? else { return Ok(None) };
        let Some(id) = guard.get_s("user_id").and_then(|s| s.parse::<Uuid>().ok()) else { return Ok(None) };
        Ok(match store.get(&user_key(id)).await? {
            Some(item) => Some(item.to_record()?),
            None => None,
        })
    }

    async fn load_user(&self, id: Uuid) -> AuthResult<UserRecord> {
        match self.inner.ports.store.get(&user_key(id)).await? {
            Some(item) => Ok(item.to_record()?),
            None => Err(AuthError::UserNotFound),
        }
    }

    async fn start_session(&self, user: &UserRecord, meta: &RequestMeta) -> AuthResult<TokenPair> {
        let now = self.now();
        let sid = self.inner.ports.ids.uuid();
        let jti = Uuid::new_v4();
        let session = SessionRecord {
            sid,
            user_id: user.id,
            refresh_jti: jti,
            revoked: false,
            created_at: now,
            last_used_at: now,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            ttl: now.timestamp() + self.inner.config.refresh_ttl.as_secs() as i64,
        };
        let item = Item::from_record(&session_key(user.id, sid), &session)?;
        self.inner.ports.store.put(item, Some(Condition::NotExists)).await?;
        self.inner.tokens.issue(user.id, sid, jti).map_err(AuthError::internal)
    }

    async fn audit(&self, user: Option<Uuid>, event: &str, meta: &RequestMeta, details: Json) {
        self.inner.audit.record(user, event, meta, details).await;
    }

    // ---------------------------------------------------------------- registration and login

    /// `POST /auth/register`: 400 on policy or duplicate; the account starts unverified and gets a
    /// verification mail; a session is opened so the client may skip the login call.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        full_name: Option<String>,
        meta: &RequestMeta,
    ) -> AuthResult<(UserOut, TokenPair)> {
        rules::check_password_policy(password).map_err(AuthError::WeakPassword)?;
        if self.inner.ports.store.get(&email_key(email)).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let password_hash = self.inner.hasher.hash(password).await?;
        let now = self.now();
        let user = UserRecord {
            id: self.inner.ports.ids.uuid(),
            email: email.to_owned(),
            full_name,
            role: "trader".into(),
            subscription_tier: "free".into(),
            password_hash,
            email_verified: false,
            totp_enabled: false,
            totp_secret: None,
            totp_last_step: None,
            settings: Map::new(),
            created_at: now,
            updated_at: now,
        };
        let profile = Item::from_record(&user_key(user.id), &user)?
            .with("GSI1PK", format!("EMAIL#{email}"))
            .with("GSI1SK", "USER");
        let guard = Item::new(&email_key(email)).with("user_id", user.id.to_string());
        let tx = vec![
            TxOp::Put { item: guard, condition: Some(Condition::NotExists) },
            TxOp::Put { item: profile, condition: Some(Condition::NotExists) },
        ];
        match self.inner.ports.store.transact_write(tx).await {
            Ok(()) => {}
            Err(e) if e.is_condition_failure() => return Err(AuthError::EmailTaken),
            Err(e) => return Err(e.into()),
        }
        self.audit(Some(user.id), events::REGISTER, meta, json!({})).await;
        if let Err(e) = self.send_verification(&user).await {
            tracing::warn!(error = %e, user = %user.id, "verification mail not sent");
        }
        let pair = self.start_session(&user, meta).await?;
        Ok((UserOut::from(&user), pair))
    }

    /// Lock-out check, password check (constant work for unknown e-mails), failure accounting.
    /// `reset_on_success`: false when a second factor still has to pass.
    async fn check_credentials(
        &self,
        email: &str,
        password: &str,
        meta: &RequestMeta,
        reset_on_success: bool,
    ) -> AuthResult<UserRecord> {
        let lockout = &self.inner.lockout;
        if let Some(secs) = lockout.locked_for(email).await? {
            return Err(AuthError::AccountLocked { retry_after: secs });
        }
        let user = self.user_by_email(email).await?;
        let ok = self.inner.hasher.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
        match (ok, user) {
            (true, Some(user)) => {
                if reset_on_success {
                    lockout.reset(email).await?;
                }
                Ok(user)
            }
            (_, user) => {
                let user_id = user.map(|u| u.id);
                let f = lockout.record_failure(email).await?;
                crate::telemetry::login_failure(f.locked_now);
                self.audit(user_id, events::LOGIN_FAILED, meta, json!({ "reason": "bad_credentials" })).await;
                if f.locked_now {
                    self.audit(user_id, events::LOCKED_OUT, meta, json!({ "lock_seconds": lockout.lock_secs })).await;
                }
                Err(AuthError::InvalidCredentials { remaining: f.remaining })
            }
        }
    }

    /// `POST /auth/login`.
    pub async fn login(&self, email: &str, password: &str, meta: &RequestMeta) -> AuthResult<TokenResponse> {
        let user = self.check_credentials(email, password, meta, true).await?;
        if user.totp_enabled {
            return Err(AuthError::TotpRequired);
        }
        let pair = self.start_session(&user, meta).await?;
        self.audit(
            Some(user.id),
            events::LOGIN_OK,
            meta,
            json!({ "session_id": pair.access_claims.sid, "method": "password" }),
        )
        .await;
        Ok(TokenResponse::from_pair(&pair))
    }

    /// `POST /auth/login-2fa` (the original always answered 500).
    pub async fn login_2fa(
        &self,
        email: &str,
        password: &str,
        code: Option<&str>,
        meta: &RequestMeta,
    ) -> AuthResult<TokenResponse> {
        let user = self.check_credentials(email, password, meta, false).await?;
        if !user.totp_enabled {
            self.inner.lockout.reset(email).await?;
            return Err(AuthError::TotpNotEnabledForLogin);
        }
        let Some(code) = code else { return Err(AuthError::TotpCodeMissing) };
        if !self.consume_totp(&user, code).await? {
            let f = self.inner.lockout.record_failure(email).await?;
            crate::telemetry::login_failure(f.locked_now);
            self.audit(Some(user.id), events::TOTP_FAILED, meta, json!({ "during": "login" })).await;
            if f.locked_now {
                self.audit(Some(user.id), events::LOCKED_OUT, meta, json!({})).await;
            }
            return Err(AuthError::InvalidTotpCode);
        }
        self.inner.lockout.reset(email).await?;
        let pair = self.start_session(&user, meta).await?;
        self.audit(
            Some(user.id),
            events::LOGIN_OK,
            meta,
            json!({ "session_id": pair.access_claims.sid, "method": "password+totp" }),
        )
        .await;
        Ok(TokenResponse::from_pair(&pair))
    }

    /// Accepts a TOTP code once: the matched step must be later than the last accepted one, and it is
    /// recorded with a conditional update (two concurrent uses of one code: one wins).
    async fn consume_totp(&self, user: &UserRecord, code: &str) -> AuthResult<bool> {
        let Some(secret) = user.totp_secret.as_deref() else { return Ok(false) };
        let Some(step) = totp::matching_step(secret, code, self.inner.ports.clock.epoch_seconds()) else {
            return Ok(false);
        };
        let cond = Condition::eq("totp_secret", secret).and(Condition::Or(vec![
            Condition::AttrNotExists("totp_last_step".into()),
            Condition::lt("totp_last_step", step),
        ]));
        match self
            .inner
            .ports
            .store
            .update(&user_key(user.id), Update::new().set("totp_last_step", step), Some(cond))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_condition_failure() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    // ---------------------------------------------------------------- tokens and sessions

    /// `POST /auth/refresh`: rotates the session's refresh token. Presenting an already rotated
    /// refresh token means it leaked (or a client replayed it): the whole session is revoked.
    pub async fn refresh(&self, token: &str, meta: &RequestMeta) -> AuthResult<TokenResponse> {
        let claims = match self.inner.tokens.verify(token, TokenKind::Refresh) {
            Ok(c) => c,
            Err(TokenError::WrongKind) => return Err(AuthError::NotARefreshToken),
            Err(_) => return Err(AuthError::InvalidRefreshToken),
        };
        let store = &self.inner.ports.store;
        let key = session_key(claims.sub, claims.sid);
        let now = self.now();
        let new_jti = Uuid::new_v4();
        let update = Update::new()
            .set("refresh_jti", new_jti.to_string())
            .set("last_used_at", rfc3339(now))
            .set("ip", meta.ip.clone())
            .set("user_agent", meta.user_agent.clone())
            .set("ttl", now.timestamp() + self.inner.config.refresh_ttl.as_secs() as i64);
        let cond = Condition::Exists
            .and(Condition::eq("refresh_jti", claims.jti.to_string()))
            .and(Condition::eq("revoked", false));
        match store.update(&key, update, Some(cond)).await {
            Ok(_) => {}
            Err(e) if e.is_condition_failure() => {
                let session: Option<SessionRecord> = match store.get(&key).await? {
                    Some(i) => Some(i.to_record()?),
                    None => None,
                };
                return match session {
                    Some(s) if !s.revoked => {
                        self.revoke(claims.sub, claims.sid).await?;
                        self.inner.sockets.close(claims.sub, &[claims.sid], Ended::RefreshReuse).await;
                        self.audit(Some(claims.sub), events::REFRESH_REUSE, meta, json!({ "session_id": claims.sid }))
                            .await;
                        Err(AuthError::RefreshTokenReused)
                    }
                    _ => Err(AuthError::InvalidRefreshToken),
                };
            }
            Err(e) => return Err(e.into()),
        }
        if store.get(&user_key(claims.sub)).await?.is_none() {
            return Err(AuthError::RefreshUserGone);
        }
        let pair = self.inner.tokens.issue(claims.sub, claims.sid, new_jti).map_err(AuthError::internal)?;
        self.audit(Some(claims.sub), events::REFRESH, meta, json!({ "session_id": claims.sid })).await;
        Ok(TokenResponse::from_pair(&pair))
    }

    /// Marks a session revoked; false when it does not exist (or has expired).
    async fn revoke(&self, user: Uuid, sid: Uuid) -> AuthResult<bool> {
        match self
            .inner
            .ports
            .store
            .update(&session_key(user, sid), Update::new().set("revoked", true), Some(Condition::Exists))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_condition_failure() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /auth/logout`: revokes the session of the bearer access token and/or of the refresh
    /// token given. Always 200 (the client forgets its tokens either way).
    pub async fn logout(&self, access: Option<&str>, refresh: Option<&str>, meta: &RequestMeta) -> AuthResult<Json> {
        let mut targets = Vec::new();
        if let Some(c) = access.and_then(|t| self.inner.tokens.verify(t, TokenKind::Access).ok()) {
            targets.push((c.sub, c.sid));
        }
        if let Some(c) = refresh.and_then(|t| self.inner.tokens.verify(t, TokenKind::Refresh).ok()) {
            targets.push((c.sub, c.sid));
        }
        targets.dedup();
        for (user, sid) in targets {
            if self.revoke(user, sid).await? {
                self.inner.sockets.close(user, &[sid], Ended::Logout).await;
                self.audit(Some(user), events::LOGOUT, meta, json!({ "session_id": sid })).await;
            }
        }
        Ok(json!({ "status": "logged_out", "message": "Successfully logged out" }))
    }

    async fn live_sessions(&self, user: Uuid) -> AuthResult<Vec<SessionRecord>> {
        let mut out = Vec::new();
        let mut cursor: Option<Cursor> = None;
        for _ in 0..20 {
            let page = self
                .inner
                .ports
                .store
                .query(Query::partition(user_pk(user)).sk_prefix(SESSION_PREFIX).limit(200).after(cursor.take()))
                .await?;
            for item in &page.items {
                let s: SessionRecord = item.to_record()?;
                if !s.revoked {
                    out.push(s);
                }
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(out)
    }

    /// `GET /auth/sessions`: live sessions, most recently used first.
    pub async fn sessions(&self, user: &CurrentUser) -> AuthResult<Vec<SessionOut>> {
        let mut list = self.live_sessions(user.id).await?;
        list.sort_by_key(|s| std::cmp::Reverse(s.last_used_at));
        Ok(list.into_iter().map(|s| SessionOut::new(s, user.session_id)).collect())
    }

    /// `DELETE /auth/sessions/{id}`.
    pub async fn revoke_session(&self, user: &CurrentUser, sid: Uuid, meta: &RequestMeta) -> AuthResult<Json> {
        let cond = Condition::Exists.and(Condition::eq("revoked", false));
        match self
            .inner
            .ports
            .store
            .update(&session_key(user.id, sid), Update::new().set("revoked", true), Some(cond))
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_condition_failure() => return Err(AuthError::SessionNotFound),
            Err(e) => return Err(e.into()),
        }
        self.inner.sockets.close(user.id, &[sid], Ended::Revoked).await;
        self.audit(Some(user.id), events::SESSION_REVOKED, meta, json!({ "session_id": sid })).await;
        Ok(json!({ "status": "revoked", "session_id": sid }))
    }

    /// `POST /auth/sessions/revoke-others`: every session but the caller's.
    pub async fn revoke_other_sessions(&self, user: &CurrentUser, meta: &RequestMeta) -> AuthResult<Json> {
        let mut revoked = Vec::new();
        for s in self.live_sessions(user.id).await? {
            if s.sid != user.session_id && self.revoke(user.id, s.sid).await? {
                revoked.push(s.sid);
            }
        }
        let n = revoked.len();
        self.inner.sockets.close(user.id, &revoked, Ended::Revoked).await;
        self.audit(Some(user.id), events::SESSION_REVOKED, meta, json!({ "others": n })).await;
        Ok(json!({ "status": "revoked", "revoked": n }))
    }

    // ---------------------------------------------------------------- password reset

    /// `POST /auth/forgot-password`: the same answer whether or not the e-mail exists, and in the same time: every
    /// path answers no sooner than [`AuthConfig::forgot_password_floor`] after it started (the token write and the
    /// mail of a known address take place within it). The message keeps the words "email sent", which the
    /// original's clients look for.
    pub async fn forgot_password(&self, raw_email: &str, meta: &RequestMeta) -> AuthResult<Json> {
        let floor = self.inner.config.forgot_password_floor;
        let started = tokio::time::Instant::now();
        let answer = self.forgot_password_work(raw_email, meta).await;
        if started.elapsed() > floor && !floor.is_zero() {
            tracing::warn!(
                took_ms = started.elapsed().as_millis() as u64,
                floor_ms = floor.as_millis() as u64,
                "forgot-password took longer than its floor: its time may tell known addresses apart"
            );
        }
        tokio::time::sleep_until(started + floor).await;
        answer
    }

    async fn forgot_password_work(&self, raw_email: &str, meta: &RequestMeta) -> AuthResult<Json> {
        let answer = json!({
            "status": "email_sent",
            "message": "Password reset email sent if an account exists for this address; its link is valid for one hour"
        });
        let Ok(email) = rules::normalize_email(raw_email) else { return Ok(answer) };
        // at most 5 reset mails per address and hour, silently
        let budget = Limit { requests: 5, window: std::time::Duration::from_secs(3600) };
        if let Decision::Limited { .. } = self.inner.limiter.hit(&format!("forgot:{email}"), budget).await? {
            return Ok(answer);
        }
        let Some(user) = self.user_by_email(&email).await? else { return Ok(answer) };
        let token = self.issue_mail_token(reset_key, user.id, self.inner.config.reset_ttl).await?;
        let link = format!("{}/reset-password?token={token}", self.inner.config.public_url);
        let mail = Email {
            to: user.email.clone(),
            subject: "Reset your NusaTrade password".into(),
            text: format!(
                "Someone asked to reset the password of your NusaTrade account.\n\nOpen this link within one hour to choose a new password:\n{link}\n\nIf it was not you, ignore this message; your password stays unchanged.\n"
            ),
        };
        if let Err(e) = self.inner.ports.mailer.send(&mail).await {
            tracing::warn!(error = %e, user = %user.id, "reset mail not sent");
        }
        self.audit(Some(user.id), events::PASSWORD_RESET_REQUESTED, meta, json!({})).await;
        Ok(answer)
    }

    /// `POST /auth/reset-password`: policy first (a weak password does not burn the token), then the
    /// single-use token is consumed by a conditional delete. All sessions of the user are revoked.
    pub async fn reset_password(&self, token: &str, new_password: &str, meta: &RequestMeta) -> AuthResult<Json> {
        rules::check_password_policy(new_password).map_err(AuthError::WeakPassword)?;
        if token.is_empty() || token.len() > 256 {
            return Err(AuthError::InvalidResetToken);
        }
        let consumed = self.consume_mail_token(reset_key(token)).await?.ok_or(AuthError::InvalidResetToken)?;
        let user_id = consumed.get_s("user_id").and_then(|s| s.parse::<Uuid>().ok()).ok_or(AuthError::UserNotFound)?;
        let user = self.load_user(user_id).await?;
        let hash = self.inner.hasher.hash(new_password).await?;
        let update =
            Update::new().set("password_hash", hash).set("email_verified", true).set("updated_at", rfc3339(self.now()));
        self.update_user(user_id, update).await?;
        let mut revoked = Vec::new();
        for s in self.live_sessions(user_id).await? {
            if self.revoke(user_id, s.sid).await? {
                revoked.push(s.sid);
            }
        }
        self.inner.sockets.close(user_id, &revoked, Ended::PasswordReset).await;
        self.inner.lockout.unlock(&user.email).await?;
        self.audit(Some(user_id), events::PASSWORD_RESET, meta, json!({})).await;
        Ok(json!({ "status": "success", "message": "Password has been reset" }))
    }

    /// Updates an existing user; a user deleted meanwhile is a 404.
    async fn update_user(&self, user_id: Uuid, update: Update) -> AuthResult<()> {
        match self.inner.ports.store.update(&user_key(user_id), update, Some(Condition::Exists)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_condition_failure() => Err(AuthError::UserNotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// A fresh single-use token for a mailed link, stored only as `key(token)` (a hash) with its
    /// expiry. Returns the token for the link.
    async fn issue_mail_token(
        &self,
        key: fn(&str) -> crate::ports::Key,
        user_id: Uuid,
        lifetime: std::time::Duration,
    ) -> AuthResult<String> {
        let token = random_token();
        let ttl = self.now().timestamp() + lifetime.as_secs() as i64;
        let item = Item::new(&key(&token)).with("user_id", user_id.to_string()).with("ttl", ttl);
        self.inner.ports.store.put(item, Some(Condition::NotExists)).await?;
        Ok(token)
    }

    /// Spends a mailed token: a conditional delete, so it works once. `None`: unknown, expired or
    /// already used.
    async fn consume_mail_token(&self, key: crate::ports::Key) -> AuthResult<Option<Item>> {
        match self.inner.ports.store.delete(&key, Some(Condition::Exists)).await {
            Ok(item) => Ok(item),
            Err(e) if e.is_condition_failure() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    // ---------------------------------------------------------------- e-mail verification

    async fn send_verification(&self, user: &UserRecord) -> AuthResult<()> {
        let token = self.issue_mail_token(verify_key, user.id, self.inner.config.verify_ttl).await?;
        let link = format!("{}/verify-email?token={token}", self.inner.config.public_url);
        let mail = Email {
            to: user.email.clone(),
            subject: "Confirm your NusaTrade e-mail address".into(),
            text: format!(
                "Welcome to NusaTrade.\n\nConfirm your e-mail address by opening this link within 48 hours:\n{link}\n\nUntil it is confirmed you can log in but not place orders.\n"
            ),
        };
        self.inner.ports.mailer.send(&mail).await.map_err(|e| AuthError::MailUnavailable(e.to_string()))
    }

    /// `POST /auth/verify-email`.
    pub async fn verify_email(&self, token: &str, meta: &RequestMeta) -> AuthResult<Json> {
        let invalid = || AuthError::InvalidVerificationToken;
        if token.is_empty() || token.len() > 256 {
            return Err(invalid());
        }
        let consumed = self.consume_mail_token(verify_key(token)).await?.ok_or_else(invalid)?;
        let user_id = consumed.get_s("user_id").and_then(|s| s.parse::<Uuid>().ok()).ok_or_else(invalid)?;
        let update = Update::new().set("email_verified", true).set("updated_at", rfc3339(self.now()));
        self.update_user(user_id, update).await?;
        self.audit(Some(user_id), events::EMAIL_VERIFIED, meta, json!({})).await;
        Ok(json!({ "status": "verified", "email_verified": true }))
    }

    /// `POST /auth/verify-email/resend`: at most 3 mails per hour.
    pub async fn resend_verification(&self, user: &CurrentUser) -> AuthResult<Json> {
        let record = self.load_user(user.id).await?;
        if record.email_verified {
            return Err(AuthError::EmailAlreadyVerified);
        }
        let budget = Limit { requests: 3, window: std::time::Duration::from_secs(3600) };
        self.inner.limiter.check(&format!("verify-mail:{}", user.id), budget).await?;
        self.send_verification(&record).await?;
        Ok(json!({ "status": "email_sent" }))
    }

    // ---------------------------------------------------------------- profile and settings

    pub async fn me(&self, user: &CurrentUser) -> AuthResult<UserOut> {
        Ok(UserOut::from(&self.load_user(user.id).await?))
    }

    /// `PUT /users/me`: a non-empty name replaces the stored one. Answers with `UserOut` (the original
    /// leaked the password hash and TOTP secret here).
    pub async fn update_me(
        &self,
        user: &CurrentUser,
        full_name: Option<String>,
        meta: &RequestMeta,
    ) -> AuthResult<Json> {
        if let Some(name) = full_name {
            let update = Update::new().set("full_name", name).set("updated_at", rfc3339(self.now()));
            self.update_user(user.id, update).await?;
            self.audit(Some(user.id), events::PROFILE_UPDATED, meta, json!({ "fields": ["full_name"] })).await;
        }
        let out = self.me(user).await?;
        Ok(json!({ "message": "Profile updated successfully", "user": out }))
    }

    pub async fn settings(&self, user: &CurrentUser) -> AuthResult<Map<String, Json>> {
        let record = self.load_user(user.id).await?;
        let mut merged = default_settings();
        merged.extend(record.settings);
        Ok(merged)
    }

    /// Shallow merge of `patch` into the stored settings, with an optimistic check on `updated_at`
    /// (retried) so concurrent updates do not lose each other's keys.
    pub async fn update_settings(&self, user: &CurrentUser, patch: Map<String, Json>) -> AuthResult<Map<String, Json>> {
        for _ in 0..5 {
            let record = self.load_user(user.id).await?;
            let mut stored = record.settings.clone();
            stored.extend(patch.clone());
            let value = Value::from_json(Json::Object(stored.clone()))?;
            let update = Update::new().set("settings", value).set("updated_at", rfc3339(self.now()));
            let cond = Condition::eq("updated_at", rfc3339(record.updated_at));
            match self.inner.ports.store.update(&user_key(user.id), update, Some(cond)).await {
                Ok(_) => {
                    let mut merged = default_settings();
                    merged.extend(stored);
                    return Ok(merged);
                }
                Err(e) if e.is_condition_failure() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::SettingsConflict)
    }

    // ---------------------------------------------------------------- TOTP

    pub async fn totp_status(&self, user: &CurrentUser) -> AuthResult<Json> {
        Ok(json!({ "enabled": self.load_user(user.id).await?.totp_enabled }))
    }

    /// `POST /totp/setup`: a new pending secret (replacing an unverified one).
    pub async fn totp_setup(&self, user: &CurrentUser, meta: &RequestMeta) -> AuthResult<Json> {
        let record = self.load_user(user.id).await?;
        let already = || AuthError::TotpSetupWhileEnabled;
        if record.totp_enabled {
            return Err(already());
        }
        let secret = totp::new_secret();
        let (uri, qr) = totp::provisioning(&secret, &self.inner.config.totp_issuer, &record.email)
            .ok_or_else(|| AuthError::internal("cannot build the TOTP provisioning data"))?;
        let update = Update::new().set("totp_secret", secret.clone()).remove("totp_last_step");
        let cond = Condition::Exists.and(Condition::ne("totp_enabled", true));
        match self.inner.ports.store.update(&user_key(user.id), update, Some(cond)).await {
            Ok(_) => {}
            Err(e) if e.is_condition_failure() => return Err(already()),
            Err(e) => return Err(e.into()),
        }
        self.audit(Some(user.id), events::TOTP_SETUP, meta, json!({})).await;
        Ok(json!({ "secret": secret, "qr_code": qr, "uri": uri }))
    }

    /// `POST /totp/verify`: the first valid code enables 2FA.
    pub async fn totp_verify(&self, user: &CurrentUser, code: &str, meta: &RequestMeta) -> AuthResult<Json> {
        let record = self.load_user(user.id).await?;
        let Some(secret) = record.totp_secret.clone() else {
            return Err(AuthError::TotpNotSetUp);
        };
        if record.totp_enabled {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        self.refuse_when_locked(&record).await?;
        let wrong = || AuthError::TotpNotConfirmed;
        let Some(step) = totp::matching_step(&secret, code, self.inner.ports.clock.epoch_seconds()) else {
            self.audit(Some(user.id), events::TOTP_FAILED, meta, json!({ "during": "verify" })).await;
            self.count_check_failure(user, &record, meta, "totp_verify").await?;
            return Err(wrong());
        };
        let cond =
            Condition::eq("totp_secret", secret.as_str()).and(Condition::ne("totp_enabled", true)).and(Condition::Or(
                vec![Condition::AttrNotExists("totp_last_step".into()), Condition::lt("totp_last_step", step)],
            ));
        let update = Update::new().set("totp_enabled", true).set("totp_last_step", step);
        match self.inner.ports.store.update(&user_key(user.id), update, Some(cond)).await {
            Ok(_) => {}
            Err(e) if e.is_condition_failure() => return Err(wrong()),
            Err(e) => return Err(e.into()),
        }
        self.audit(Some(user.id), events::TOTP_ENABLED, meta, json!({})).await;
        Ok(json!({ "enabled": true }))
    }

    /// `POST /totp/disable`: password and a fresh code (the original answered 500 here).
    pub async fn totp_disable(
        &self,
        user: &CurrentUser,
        password: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> AuthResult<Json> {
        let record = self.load_user(user.id).await?;
        if !record.totp_enabled {
            return Err(AuthError::TotpNotEnabled);
        }
        self.refuse_when_locked(&record).await?;
        if !self.inner.hasher.verify(password, Some(&record.password_hash)).await? {
            self.count_check_failure(user, &record, meta, "totp_disable_password").await?;
            return Err(AuthError::IncorrectPassword);
        }
        if !self.consume_totp(&record, code).await? {
            self.audit(Some(user.id), events::TOTP_FAILED, meta, json!({ "during": "disable" })).await;
            self.count_check_failure(user, &record, meta, "totp_disable_code").await?;
            return Err(AuthError::InvalidTotpCode);
        }
        let update = Update::new().set("totp_enabled", false).remove("totp_secret").remove("totp_last_step");
        self.inner.ports.store.update(&user_key(user.id), update, Some(Condition::Exists)).await?;
        self.audit(Some(user.id), events::TOTP_DISABLED, meta, json!({})).await;
        Ok(json!({ "enabled": false }))
    }

    /// The login lock-out covers the authenticated checks too (`/totp/verify`, `/totp/disable`): a locked account
    /// is refused there as at login.
    async fn refuse_when_locked(&self, record: &UserRecord) -> AuthResult<()> {
        match self.inner.lockout.locked_for(&record.email).await? {
            Some(secs) => Err(AuthError::AccountLocked { retry_after: secs }),
            None => Ok(()),
        }
    }

    /// A failed password or TOTP check by a token holder counts in the login lock-out. The failure that locks the
    /// account also revokes the caller's session and closes its sockets: a token holder guessing is the threat the
    /// lock-out is for. (A lock-out from failed logins revokes nothing: anyone knowing an address could otherwise
    /// log its owner out.)
    async fn count_check_failure(
        &self,
        user: &CurrentUser,
        record: &UserRecord,
        meta: &RequestMeta,
        check: &str,
    ) -> AuthResult<()> {
        let lockout = &self.inner.lockout;
        let f = lockout.record_failure(&record.email).await?;
        crate::telemetry::login_failure(f.locked_now);
        if f.locked_now {
            self.audit(
                Some(user.id),
                events::LOCKED_OUT,
                meta,
                json!({ "lock_seconds": lockout.lock_secs, "check": check }),
            )
            .await;
            if self.revoke(user.id, user.session_id).await? {
                self.inner.sockets.close(user.id, &[user.session_id], Ended::Locked).await;
                self.audit(
                    Some(user.id),
                    events::SESSION_REVOKED,
                    meta,
                    json!({ "session_id": user.session_id, "reason": "locked" }),
                )
                .await;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- activity

    /// `GET /users/activity`: the caller's audit trail, newest first.
    pub async fn activity(
        &self,
        user: &CurrentUser,
        limit: u32,
        cursor: Option<Cursor>,
    ) -> AuthResult<(Vec<AuditEntry>, Option<Cursor>)> {
        Ok(self.inner.audit.list(user.id, limit, cursor).await?)
    }
}

/// The stored form of timestamps (what serde writes for `DateTime<Utc>`).
fn rfc3339(t: DateTime<Utc>) -> String {
    serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
