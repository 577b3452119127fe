//! Why an account use case refused or failed. Each variant says what happened; its text is the message the
//! client is shown. The HTTP status, body and headers of each are chosen once, at the edge ([`super::extract`]).

use super::passwords::HashError;
use crate::ports::StoreError;

#[derive(Clone, Debug, thiserror::Error)]
pub enum AuthError {
    // ------------------------------------------------------------ who the caller is
    /// Wrong password or unknown e-mail (answered alike); `remaining` failures before the lock-out.
    #[error("Incorrect email or password. {remaining} attempts remaining.")]
    InvalidCredentials { remaining: u32 },
    /// The password given to confirm a sensitive change is wrong.
    #[error("Incorrect password")]
    IncorrectPassword,
    /// An access token that is malformed, expired or of another kind, or whose session or user is gone.
    #[error("Could not validate credentials")]
    InvalidAccessToken,
    /// An access token was presented where a refresh token belongs.
    #[error("Invalid refresh token")]
    NotARefreshToken,
    /// A refresh token that is malformed, expired, already revoked or unknown.
    #[error("Invalid or expired refresh token")]
    InvalidRefreshToken,
    /// An already rotated refresh token came back: the session has been revoked.
    #[error("Refresh token reuse detected; the session has been revoked")]
    RefreshTokenReused,
    /// A valid refresh token whose user no longer exists.
    #[error("User not found")]
    RefreshUserGone,
    /// A TOTP code that does not match (or was already used) at login or when disabling 2FA.
    #[error("Invalid TOTP code")]
    InvalidTotpCode,
    /// The code meant to confirm a new TOTP secret does not match.
    #[error("Invalid TOTP code. Please try again.")]
    TotpNotConfirmed,

    // ------------------------------------------------------------ not allowed this way
    /// A password login for an account with 2FA: the second factor is required.
    #[error("2FA is enabled. Please use /auth/login-2fa endpoint with TOTP code.")]
    TotpRequired,

    // ------------------------------------------------------------ too many attempts
    /// The account is locked after too many failed logins, for `retry_after` seconds more.
    #[error("Account locked due to too many failed attempts. Try again in {retry_after} seconds.")]
    AccountLocked { retry_after: u64 },
    /// A request budget (per IP, per user, per mail kind) is spent; the window ends in `retry_after` seconds.
    #[error("Too many requests")]
    TooManyAttempts { retry_after: u64 },

    // ------------------------------------------------------------ refused input or state
    /// The new password breaks the password policy (the policy's message).
    #[error("{0}")]
    WeakPassword(&'static str),
    #[error("Email already registered")]
    EmailTaken,
    #[error("Email already verified")]
    EmailAlreadyVerified,
    /// Unknown, expired or already used password-reset token.
    #[error("Invalid or expired reset token")]
    InvalidResetToken,
    /// Unknown, expired or already used e-mail verification token.
    #[error("Invalid or expired verification token")]
    InvalidVerificationToken,
    /// A 2FA login for an account without 2FA.
    #[error("2FA is not enabled for this account. Use /auth/login endpoint.")]
    TotpNotEnabledForLogin,
    /// A 2FA login without a code.
    #[error("TOTP token is required")]
    TotpCodeMissing,
    /// Confirming 2FA before any secret was set up.
    #[error("Please setup 2FA first using /totp/setup endpoint")]
    TotpNotSetUp,
    /// A new TOTP secret asked for while 2FA is on.
    #[error("2FA is already enabled. Disable it first to re-setup.")]
    TotpSetupWhileEnabled,
    /// Confirming 2FA that is already on.
    #[error("2FA is already enabled")]
    TotpAlreadyEnabled,
    /// Disabling 2FA that is off.
    #[error("2FA is not enabled")]
    TotpNotEnabled,

    // ------------------------------------------------------------ not there
    #[error("User not found")]
    UserNotFound,
    /// Unknown or already revoked session of the caller.
    #[error("Session not found")]
    SessionNotFound,

    // ------------------------------------------------------------ concurrency
    /// The settings kept changing under a merge (retried a few times first).
    #[error("Settings were changed concurrently; try again")]
    SettingsConflict,

    // ------------------------------------------------------------ dependencies
    /// The password hasher: [`HashError::Busy`] means no answer yet (retry), never a wrong password.
    #[error(transparent)]
    Hashing(#[from] HashError),
    /// The mailer could not send (the client may retry).
    #[error("{0}")]
    MailUnavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or broken invariant (logged; the client sees a generic message).
    #[error("{0}")]
    Internal(String),
}

impl AuthError {
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        AuthError::Internal(e.to_string())
    }
}

/// Result of the account use cases.
pub type AuthResult<T> = Result<T, AuthError>;
