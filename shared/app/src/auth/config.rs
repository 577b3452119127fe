//! Auth settings, built from an environment map (the process environment in a Lambda, the same
//! variables plus a generated secret locally), so tests build them from a literal map.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NUSATRADE_JWT_SECRET` | required (≥ 32 bytes) | HS256 signing key |
//! | `NUSATRADE_ACCESS_TOKEN_MINUTES` | 60 | access token lifetime |
//! | `NUSATRADE_REFRESH_TOKEN_DAYS` | 7 | refresh token (session) idle lifetime |
//! | `NUSATRADE_ARGON2_MEMORY_KIB` / `_ITERATIONS` / `_PARALLELISM` | 65536 / 3 / 4 | argon2id cost |
//! | `NUSATRADE_HASH_CONCURRENCY` | CPUs | hashes running at once at most; all but one only while nothing but password checks is being served |
//! | `NUSATRADE_HASH_QUEUE_SECONDS` | 8 | longest wait for a hashing slot before 503 + Retry-After |
//! | `NUSATRADE_REQUIRE_EMAIL_VERIFICATION` | true | unverified accounts cannot trade |
//! | `NUSATRADE_PUBLIC_URL` | `http://localhost:3000` | base of links in mails |
//! | `NUSATRADE_TOTP_ISSUER` | `NusaTrade` | issuer in the otpauth URI |
//! | `NUSATRADE_RATE_LIMIT_ENABLED` | true | request limits on/off (the lock-out always applies) |
//! | `NUSATRADE_RATE_LIMIT_REQUESTS` / `_WINDOW_SECONDS` | 100 / 60 | per IP and per user, every route |
//! | `NUSATRADE_RATE_LIMIT_AUTH_REQUESTS` / `_AUTH_WINDOW_SECONDS` | 20 / 60 | per IP, credential routes |
//! | `NUSATRADE_LOGIN_MAX_FAILURES` / `NUSATRADE_LOGIN_WINDOW_SECONDS` / `NUSATRADE_LOGIN_LOCK_SECONDS` | 5 / 900 / 900 | lock-out (failed logins, and failed TOTP codes / passwords on `/totp/verify` and `/totp/disable`) |
//! | `NUSATRADE_FORGOT_PASSWORD_FLOOR_MS` | 600 | `forgot-password` answers no sooner than this, known e-mail or not (0–5000) |

use std::collections::HashMap;
use std::time::Duration;

pub const ENV_JWT_SECRET: &str = "NUSATRADE_JWT_SECRET";
pub const ENV_REQUIRE_EMAIL_VERIFICATION: &str = "NUSATRADE_REQUIRE_EMAIL_VERIFICATION";
/// Shortest HS256 key accepted (the original refused production secrets under 32 characters).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error("{ENV_JWT_SECRET} is not set")]
    MissingSecret,
    #[error("{ENV_JWT_SECRET} must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
    #[error("{var} = {value:?} is not valid: {why}")]
    Invalid { var: String, value: String, why: &'static str },
}

/// A request budget: `requests` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub requests: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// The original's parameters (passlib's argon2 defaults).
    fn default() -> Self {
        Argon2Params { memory_kib: 65536, iterations: 3, parallelism: 4 }
    }
}

#[derive(Clone)]
pub struct AuthConfig {
    pub jwt_secret: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub argon2: Argon2Params,
    pub hash_concurrency: usize,
    /// Longest a login waits for a hashing slot; then 503 with Retry-After (below the connector's
    /// 10 s HTTP timeout, so a storm answers "retry" instead of timing out).
    pub hash_queue_timeout: Duration,
    pub require_email_verification: bool,
    pub public_url: String,
    pub totp_issuer: String,
    pub rate_limit_enabled: bool,
    pub request_limit: Limit,
    pub auth_limit: Limit,
    pub login_max_failures: u32,
    pub login_window: Duration,
    pub login_lock: Duration,
    /// Lifetime of password reset tokens (1 h) and of e-mail verification tokens (48 h).
    pub reset_ttl: Duration,
    pub verify_ttl: Duration,
    /// `forgot-password` answers no sooner than this after it started, whatever the e-mail: the work for a known
    /// address (token write, mail) is hidden in it.
    pub forgot_password_floor: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwt_secret", &"<redacted>")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("argon2", &self.argon2)
            .field("hash_concurrency", &self.hash_concurrency)
            .field("hash_queue_timeout", &self.hash_queue_timeout)
            .field("require_email_verification", &self.require_email_verification)
            .field("rate_limit_enabled", &self.rate_limit_enabled)
            .field("request_limit", &self.request_limit)
            .field("auth_limit", &self.auth_limit)
            .finish_non_exhaustive()
    }
}

/// Hashes running at once at most, by default: one per CPU. All but one of them run only while the process
/// serves nothing but password checks (`auth::passwords`): on 2 cores a login storm alone got 10.4 logins/s
/// with one hash at a time (the original: 12.0–12.5), while with two at once regardless of other traffic an
/// authenticated route kept only 74–96 % of its throughput (one at a time: 87–104 %).
fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map(|n| n.get().max(1)).unwrap_or(1)
}

impl AuthConfig {
    /// Defaults with the given secret (tests, and the local platform once it has its secret).
    pub fn with_secret(secret: impl Into<Vec<u8>>) -> Self {
        AuthConfig {
            jwt_secret: secret.into(),
            access_ttl: Duration::from_secs(60 * 60),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            argon2: Argon2Params::default(),
            hash_concurrency: default_hash_concurrency(),
            hash_queue_timeout: Duration::from_secs(8),
            require_email_verification: true,
            public_url: "http://localhost:3000".into(),
            totp_issuer: "NusaTrade".into(),
            rate_limit_enabled: true,
            request_limit: Limit { requests: 100, window: Duration::from_secs(60) },
            auth_limit: Limit { requests: 20, window: Duration::from_secs(60) },
            login_max_failures: 5,
            login_window: Duration::from_secs(900),
            login_lock: Duration::from_secs(900),
            reset_ttl: Duration::from_secs(3600),
            verify_ttl: Duration::from_secs(48 * 3600),
            forgot_password_floor: Duration::from_millis(600),
        }
    }

    /// Cheap hashing for tests (m = 8 MiB, t = 1, p = 1).
    pub fn for_tests(secret: impl Into<Vec<u8>>) -> Self {
        let mut c = Self::with_secret(secret);
        c.argon2 = Argon2Params { memory_kib: 8192, iterations: 1, parallelism: 1 };
        c.forgot_password_floor = Duration::ZERO;
        c
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, AuthConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads the settings from a variable map. Unset variables take their defaults; a set but
    /// malformed one is an error (a typo must not silently weaken a limit).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, AuthConfigError> {
        let secret = vars.get(ENV_JWT_SECRET).map(|s| s.trim()).filter(|s| !s.is_empty());
        let secret = secret.ok_or(AuthConfigError::MissingSecret)?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthConfigError::WeakSecret);
        }
        let mut c = Self::with_secret(secret.as_bytes().to_vec());
        let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let num = |k: &str, min: u64, max: u64| -> Result<Option<u64>, AuthConfigError> {
            let Some(v) = get(k) else { return Ok(None) };
            match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(AuthConfigError::Invalid { var: k.into(), value: v.into(), why: "number out of range" }),
            }
        };
        let flag = |k: &str| -> Result<Option<bool>, AuthConfigError> {
            let Some(v) = get(k) else { return Ok(None) };
            match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" => Ok(Some(false)),
                _ => Err(AuthConfigError::Invalid { var: k.into(), value: v.into(), why: "expected true or false" }),
            }
        };
        let secs = Duration::from_secs;
        if let Some(n) = num("NUSATRADE_ACCESS_TOKEN_MINUTES", 1, 24 * 60)? {
            c.access_ttl = secs(n * 60);
        }
        if let Some(n) = num("NUSATRADE_REFRESH_TOKEN_DAYS", 1, 90)? {
            c.refresh_ttl = secs(n * 24 * 3600);
        }
        if let Some(n) = num("NUSATRADE_ARGON2_MEMORY_KIB", 8, 1 << 20)? {
            c.argon2.memory_kib = n as u32;
        }
        if let Some(n) = num("NUSATRADE_ARGON2_ITERATIONS", 1, 20)? {
            c.argon2.iterations = n as u32;
        }
        if let Some(n) = num("NUSATRADE_ARGON2_PARALLELISM", 1, 64)? {
            c.argon2.parallelism = n as u32;
        }
        if let Some(n) = num("NUSATRADE_HASH_CONCURRENCY", 1, 1024)? {
            c.hash_concurrency = n as usize;
        }
        if let Some(n) = num("NUSATRADE_HASH_QUEUE_SECONDS", 1, 60)? {
            c.hash_queue_timeout = Duration::from_secs(n);
        }
        if let Some(b) = flag(ENV_REQUIRE_EMAIL_VERIFICATION)? {
            c.require_email_verification = b;
        }
        if let Some(u) = get("NUSATRADE_PUBLIC_URL") {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 200 {
                return Err(AuthConfigError::Invalid {
                    var: "NUSATRADE_PUBLIC_URL".into(),
                    value: u.into(),
                    why: "expected an http(s) URL",
                });
            }
            c.public_url = u.trim_end_matches('/').to_owned();
        }
        if let Some(i) = get("NUSATRADE_TOTP_ISSUER") {
            if i.contains(':') || i.len() > 64 {
                return Err(AuthConfigError::Invalid {
                    var: "NUSATRADE_TOTP_ISSUER".into(),
                    value: i.into(),
                    why: "at most 64 characters, no ':'",
                });
            }
            c.totp_issuer = i.to_owned();
        }
        if let Some(b) = flag("NUSATRADE_RATE_LIMIT_ENABLED")? {
            c.rate_limit_enabled = b;
        }
        if let Some(n) = num("NUSATRADE_RATE_LIMIT_REQUESTS", 1, 1_000_000)? {
            c.request_limit.requests = n as u32;
        }
        if let Some(n) = num("NUSATRADE_RATE_LIMIT_WINDOW_SECONDS", 1, 86_400)? {
            c.request_limit.window = secs(n);
        }
        if let Some(n) = num("NUSATRADE_RATE_LIMIT_AUTH_REQUESTS", 1, 1_000_000)? {
            c.auth_limit.requests = n as u32;
        }
        if let Some(n) = num("NUSATRADE_RATE_LIMIT_AUTH_WINDOW_SECONDS", 1, 86_400)? {
            c.auth_limit.window = secs(n);
        }
        if let Some(n) = num("NUSATRADE_LOGIN_MAX_FAILURES", 1, 1000)? {
            c.login_max_failures = n as u32;
        }
        if let Some(n) = num("NUSATRADE_LOGIN_WINDOW_SECONDS", 1, 86_400)? {
            c.login_window = secs(n);
        }
        if let Some(n) = num("NUSATRADE_LOGIN_LOCK_SECONDS", 1, 86_400)? {
            c.login_lock = secs(n);
        }
        if let Some(n) = num("NUSATRADE_FORGOT_PASSWORD_FLOOR_MS", 0, 5000)? {
            c.forgot_password_floor = Duration::from_millis(n);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn secret_is_required_and_strong() {
        assert_eq!(AuthConfig::from_map(&map(&[])).unwrap_err(), AuthConfigError::MissingSecret);
        assert_eq!(AuthConfig::from_map(&map(&[(ENV_JWT_SECRET, "short")])).unwrap_err(), AuthConfigError::WeakSecret);
        let c = AuthConfig::from_map(&map(&[(ENV_JWT_SECRET, &"s".repeat(32))])).unwrap();
        assert_eq!(c.argon2, Argon2Params { memory_kib: 65536, iterations: 3, parallelism: 4 });
        assert!(c.require_email_verification);
        assert_eq!(c.request_limit, Limit { requests: 100, window: Duration::from_secs(60) });
        assert!(!format!("{c:?}").contains("sss"), "the secret never reaches logs");
    }

    #[test]
    fn variables_override_and_typos_fail() {
        let secret = "s".repeat(40);
        let c = AuthConfig::from_map(&map(&[
            (ENV_JWT_SECRET, &secret),
            ("NUSATRADE_ARGON2_MEMORY_KIB", "8192"),
            ("NUSATRADE_ARGON2_ITERATIONS", "1"),
            (ENV_REQUIRE_EMAIL_VERIFICATION, "false"),
            ("NUSATRADE_RATE_LIMIT_REQUESTS", "7"),
            ("NUSATRADE_PUBLIC_URL", "https://app.example.com/"),
        ]))
        .unwrap();
        assert_eq!(c.argon2.memory_kib, 8192);
        assert!(!c.require_email_verification);
        assert_eq!(c.request_limit.requests, 7);
        assert_eq!(c.public_url, "https://app.example.com");
        assert_eq!(c.forgot_password_floor, Duration::from_millis(600));
        let floor = map(&[(ENV_JWT_SECRET, &secret), ("NUSATRADE_FORGOT_PASSWORD_FLOOR_MS", "250")]);
        assert_eq!(AuthConfig::from_map(&floor).unwrap().forgot_password_floor, Duration::from_millis(250));
        for (k, v) in [
            ("NUSATRADE_FORGOT_PASSWORD_FLOOR_MS", "5001"),
            ("NUSATRADE_RATE_LIMIT_REQUESTS", "lots"),
            ("NUSATRADE_RATE_LIMIT_REQUESTS", "0"),
            (ENV_REQUIRE_EMAIL_VERIFICATION, "maybe"),
            ("NUSATRADE_PUBLIC_URL", "ftp://x"),
        ] {
            assert!(AuthConfig::from_map(&map(&[(ENV_JWT_SECRET, &secret), (k, v)])).is_err(), "{k}={v}");
        }
    }
}
