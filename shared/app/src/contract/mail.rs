//! Mailer contract cases.

use std::sync::Arc;

use async_trait::async_trait;

use crate::ports::*;

/// A mailer plus a way to read what it sent (a file, the emulator's outbox...), where possible.
#[async_trait]
pub trait MailFactory: Sync {
    async fn mailer(&self) -> Arc<dyn Mailer>;
    /// Messages sent to `to` so far, if the adapter can tell (None: cannot be observed).
    async fn sent_to(&self, to: &str) -> Option<Vec<Email>>;
}

pub async fn sends_a_valid_message(f: &impl MailFactory) {
    let m = f.mailer().await;
    let to = format!("{}@example.com", super::unique("trader"));
    let email = Email { to: to.clone(), subject: "Reset your password".into(), text: "token: s3cr3t".into() };
    m.send(&email).await.unwrap();
    if let Some(sent) = f.sent_to(&to).await {
        assert_eq!(sent, vec![email]);
    }
}

pub async fn refuses_invalid_messages(f: &impl MailFactory) {
    let m = f.mailer().await;
    let ok = Email { to: "a@example.com".into(), subject: "s".into(), text: "t".into() };
    for bad in [
        Email { to: "no-at-sign".into(), ..ok.clone() },
        Email { to: "a@example.com\r\nBcc: x@y.z".into(), ..ok.clone() },
        Email { subject: "line\nbreak".into(), ..ok.clone() },
        Email { subject: String::new(), ..ok.clone() },
        Email { text: "x".repeat(200 * 1024), ..ok.clone() },
    ] {
        assert!(matches!(m.send(&bad).await, Err(MailError::Invalid(_))), "{bad:?} accepted");
    }
}
