//! The mailer port (SES v2 in AWS, files in the data dir locally).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    /// Plain-text body. It may hold secrets (reset links): adapters never log it.
    pub text: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum MailError {
    #[error("invalid email: {0}")]
    Invalid(String),
    #[error("mailer unavailable: {0}")]
    Unavailable(String),
}

/// Checks shared by the adapters.
pub fn validate(email: &Email) -> Result<(), MailError> {
    let at = email.to.find('@');
    if email.to.len() > 254
        || at.is_none_or(|i| i == 0 || i + 1 == email.to.len())
        || email.to.contains(['\r', '\n', ' '])
    {
        return Err(MailError::Invalid("bad recipient".into()));
    }
    if email.subject.is_empty() || email.subject.len() > 200 || email.subject.contains(['\r', '\n']) {
        return Err(MailError::Invalid("bad subject".into()));
    }
    if email.text.len() > 100 * 1024 {
        return Err(MailError::Invalid("body too large".into()));
    }
    Ok(())
}

#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}
