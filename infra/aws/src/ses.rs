//! [`Mailer`] on SES v2 (`SendEmail`, simple content). The body may hold secrets (reset links): it is
//! never logged, and SDK errors are reported without the request.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use nusatrade_app::ports::mail::validate;
use nusatrade_app::ports::{Email, MailError, Mailer};

use crate::error::describe;

/// The SES v2 implementation of [`Mailer`].
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    from: String,
}

impl SesMailer {
    /// `from` must be a verified SES identity.
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        SesMailer { client, from: from.into() }
    }
}

fn utf8(data: &str) -> Result<Content, MailError> {
    Content::builder().data(data).charset("UTF-8").build().map_err(|e| MailError::Invalid(e.to_string()))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        validate(email)?;
        let message = Message::builder()
            .subject(utf8(&email.subject)?)
            .body(Body::builder().text(utf8(&email.text)?).build())
            .build();
        let res = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match res {
            Ok(_) => {
                tracing::debug!("email sent");
                Ok(())
            }
            Err(e) => match e.as_service_error() {
                Some(SendEmailError::BadRequestException(_) | SendEmailError::MessageRejected(_)) => {
                    Err(MailError::Invalid(format!(
                        "SendEmail refused: {}",
                        e.as_service_error().map(|s| s.to_string()).unwrap_or_default()
                    )))
                }
                _ => Err(MailError::Unavailable(describe("SendEmail", &e))),
            },
        }
    }
}
