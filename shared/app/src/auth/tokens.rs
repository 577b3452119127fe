//! JWTs: HS256 only (pinned: `alg: none`, RS256 and any other header are refused), typed claims,
//! expiry checked against the injected clock (so tests move time), access and refresh tokens never
//! interchangeable.
//!
//! Claims: `sub` (user id, a UUID — both clients treat tokens as opaque strings and read the user id
//! from the login body), `type` (`access` | `refresh`), `jti`, `iat`, `exp`, `sid` (the session the
//! token belongs to; revoking the session kills both tokens).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ports::Clock;

/// Longest token string looked at.
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub sub: Uuid,
    #[serde(rename = "type")]
    pub kind: TokenKind,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub sid: Uuid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed or its signature is invalid")]
    Invalid,
    #[error("token has expired")]
    Expired,
    #[error("token is of the wrong type")]
    WrongKind,
}

/// A freshly issued pair.
#[derive(Clone, Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub access_claims: Claims,
    pub refresh_claims: Claims,
}

#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

struct Inner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl TokenService {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        super::jwt_crypto::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        // expiry is checked below against the clock port; presence of every claim by the typed struct
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        TokenService {
            inner: Arc::new(Inner {
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
                validation,
                access_ttl,
                refresh_ttl,
                clock,
            }),
        }
    }

    pub fn refresh_ttl(&self) -> Duration {
        self.inner.refresh_ttl
    }

    fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.inner.encoding)
    }

    /// Issues an access token and a refresh token (with the given `jti`, the session's current one)
    /// for a session.
    pub fn issue(&self, user: Uuid, sid: Uuid, refresh_jti: Uuid) -> Result<TokenPair, jsonwebtoken::errors::Error> {
        let now = self.inner.clock.epoch_seconds();
        let access_claims = Claims {
            sub: user,
            kind: TokenKind::Access,
            jti: Uuid::new_v4(),
            iat: now,
            exp: now + self.inner.access_ttl.as_secs() as i64,
            sid,
        };
        let refresh_claims = Claims {
            sub: user,
            kind: TokenKind::Refresh,
            jti: refresh_jti,
            iat: now,
            exp: now + self.inner.refresh_ttl.as_secs() as i64,
            sid,
        };
        Ok(TokenPair {
            access_token: self.sign(&access_claims)?,
            refresh_token: self.sign(&refresh_claims)?,
            access_claims,
            refresh_claims,
        })
    }

    /// Verifies signature (HS256 only), shape, type and expiry.
    pub fn verify(&self, token: &str, expected: TokenKind) -> Result<Claims, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &self.inner.validation)
            .map_err(|_| TokenError::Invalid)?;
        if data.header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let claims = data.claims;
        if claims.exp <= self.inner.clock.epoch_seconds() {
            return Err(TokenError::Expired);
        }
        if claims.kind != expected {
            return Err(TokenError::WrongKind);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use chrono::{DateTime, Duration as CDuration};

    use super::*;
    use crate::ports::ManualClock;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn service() -> (TokenService, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap()));
        let s = TokenService::new(SECRET, Duration::from_secs(3600), Duration::from_secs(7 * 86400), clock.clone());
        (s, clock)
    }

    fn b64(v: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    fn forged(header: &str, claims: &Claims, signature: &str) -> String {
        format!("{}.{}.{signature}", b64(header.as_bytes()), b64(&serde_json::to_vec(claims).unwrap()))
    }

    #[test]
    fn pairs_verify_and_types_never_swap() {
        let (s, _) = service();
        let (u, sid, jti) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let pair = s.issue(u, sid, jti).unwrap();
        let a = s.verify(&pair.access_token, TokenKind::Access).unwrap();
        assert_eq!((a.sub, a.sid, a.kind), (u, sid, TokenKind::Access));
        let r = s.verify(&pair.refresh_token, TokenKind::Refresh).unwrap();
        assert_eq!(r.jti, jti);
        assert_eq!(s.verify(&pair.refresh_token, TokenKind::Access), Err(TokenError::WrongKind));
        assert_eq!(s.verify(&pair.access_token, TokenKind::Refresh), Err(TokenError::WrongKind));
    }

    #[test]
    fn expiry_follows_the_clock() {
        let (s, clock) = service();
        let pair = s.issue(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()).unwrap();
        clock.advance(CDuration::seconds(3599));
        assert!(s.verify(&pair.access_token, TokenKind::Access).is_ok());
        clock.advance(CDuration::seconds(1));
        assert_eq!(s.verify(&pair.access_token, TokenKind::Access), Err(TokenError::Expired));
        assert!(s.verify(&pair.refresh_token, TokenKind::Refresh).is_ok());
        clock.advance(CDuration::days(7));
        assert_eq!(s.verify(&pair.refresh_token, TokenKind::Refresh), Err(TokenError::Expired));
    }

    #[test]
    fn alg_none_rs256_and_foreign_keys_are_refused() {
        let (s, _) = service();
        let pair = s.issue(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let claims = pair.access_claims.clone();
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#, r#"{"alg":"NONE"}"#] {
            assert_eq!(s.verify(&forged(header, &claims, ""), TokenKind::Access), Err(TokenError::Invalid));
        }
        // HS/RS confusion: an RS256 header over an HMAC made with the real secret
        let unsigned = forged(r#"{"alg":"RS256","typ":"JWT"}"#, &claims, "");
        let message = unsigned.trim_end_matches('.');
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(SECRET), Algorithm::HS256)
            .unwrap();
        assert_eq!(s.verify(&format!("{message}.{sig}"), TokenKind::Access), Err(TokenError::Invalid));
        // the same construction with the HS256 header is accepted: the forgery helper is sound
        let unsigned = forged(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, "");
        let message = unsigned.trim_end_matches('.');
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(SECRET), Algorithm::HS256)
            .unwrap();
        assert!(s.verify(&format!("{message}.{sig}"), TokenKind::Access).is_ok());
        let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(SECRET));
        assert_eq!(s.verify(&hs512.unwrap(), TokenKind::Access), Err(TokenError::Invalid));
        // right algorithm, wrong key
        let other = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        );
        assert_eq!(s.verify(&other.unwrap(), TokenKind::Access), Err(TokenError::Invalid));
        // tampered payload
        let mut parts: Vec<String> = pair.access_token.split('.').map(str::to_owned).collect();
        let mut evil = claims.clone();
        evil.sub = Uuid::new_v4();
        parts[1] = b64(&serde_json::to_vec(&evil).unwrap());
        assert_eq!(s.verify(&parts.join("."), TokenKind::Access), Err(TokenError::Invalid));
        for junk in ["", "a.b.c", "eyJhbGciOiJIUzI1NiJ9", &"x".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(s.verify(junk, TokenKind::Access), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn original_style_tokens_without_our_claims_are_refused() {
        // python-jose tokens of the original: sub = e-mail, exp, no type/jti/sid
        #[derive(Serialize)]
        struct Old<'a> {
            sub: &'a str,
            exp: i64,
        }
        let (s, _) = service();
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Old { sub: "ana@example.com", exp: 1_900_000_000 },
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(s.verify(&t, TokenKind::Access), Err(TokenError::Invalid));
    }
}
