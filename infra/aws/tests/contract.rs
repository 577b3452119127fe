//! The shared port contract suites (`nusatrade_app::contract`) run against the AWS adapters:
//! DynamoDB, S3, SQS and SES on moto server (`NUSATRADE_MOTO_ENDPOINT`), the API Gateway Management
//! API against a local fake (moto's is a stub that never answers 410 and ignores stage paths).
//!
//! Each case creates its own uniquely named table / bucket / queues, so cases run concurrently
//! against one moto server. Without `NUSATRADE_MOTO_ENDPOINT` every moto case fails (see
//! `common::moto_endpoint`).
//!
//! moto vs. DynamoDB (checked by this suite and `tests/moto_notes.rs`):
//! - moto never deletes expired items (real DynamoDB does, within days): the adapter filters `ttl` in
//!   code and clears stale items before conditional writes, so the contract passes on both.
//! - more differences are listed (and checked) in `tests/dynamo.rs`.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use nusatrade_app::contract::blob::BlobFactory;
use nusatrade_app::contract::mail::MailFactory;
use nusatrade_app::contract::push::{PushFactory, PushHarness};
use nusatrade_app::contract::queue::QueueFactory;
use nusatrade_app::contract::store::StoreFactory;
use nusatrade_app::ports::queue::dlq_name;
use nusatrade_app::ports::{BlobStore, Clock, Email, ItemStore, Mailer, Push, Queue};
use nusatrade_aws::config::s3_client;
use nusatrade_aws::{ApiGwPush, S3Blobs, SesMailer, SqsQueue};

use common::fake_apigw::FakeApiGw;
use common::{Dynamo, sdk, unique};

// --- DynamoDB ------------------------------------------------------------------------------------

mod store {
    nusatrade_app::item_store_contract!(super::Dynamo);
}

mod orders {
    nusatrade_app::orders_contract!(super::Dynamo);
}

mod settings {
    nusatrade_app::settings_contract!(super::Dynamo);
}

mod ai_budget {
    nusatrade_app::ai_budget_contract!(super::Dynamo);
}

// --- S3 ------------------------------------------------------------------------------------------

struct S3;

#[async_trait]
impl BlobFactory for S3 {
    async fn blobs(&self) -> Arc<dyn BlobStore> {
        let client = s3_client(&sdk().await);
        let bucket = unique("nusatrade");
        S3Blobs::create_bucket(&client, &bucket).await.expect("create the bucket on moto");
        Arc::new(S3Blobs::new(client, bucket))
    }
}

mod blob {
    nusatrade_app::blob_store_contract!(super::S3);
}

// --- Backups: DynamoDB scanned into S3, restored into fresh tables ---------------------------------

struct DynamoAndS3;

#[async_trait]
impl nusatrade_app::suites::backup::BackupFactory for DynamoAndS3 {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
        Dynamo.store(clock).await
    }
    async fn blobs(&self) -> Arc<dyn BlobStore> {
        S3.blobs().await
    }
}

mod backup {
    nusatrade_app::backup_contract!(super::DynamoAndS3);
}

// --- SQS -----------------------------------------------------------------------------------------

struct Sqs;

#[async_trait]
impl QueueFactory for Sqs {
    async fn queue(&self, name: &str, max_receives: u32) -> Arc<dyn Queue> {
        let client = aws_sdk_sqs::Client::new(&sdk().await);
        let (url, dlq_url) =
            SqsQueue::create_queue_pair(&client, name, max_receives).await.expect("create the queues on moto");
        Arc::new(SqsQueue::new(client, Default::default()).with_queue(name, url).with_queue(dlq_name(name), dlq_url))
    }
}

mod queue {
    nusatrade_app::queue_contract!(super::Sqs);
}

// --- API Gateway Management API (local fake) ------------------------------------------------------

struct ApiGw;

struct ApiGwHarness {
    fake: FakeApiGw,
    push: Arc<ApiGwPush>,
}

#[async_trait]
impl PushHarness for ApiGwHarness {
    fn push(&self) -> Arc<dyn Push> {
        self.push.clone()
    }
    async fn open(&self) -> String {
        self.fake.open()
    }
    async fn received(&self, connection_id: &str) -> Vec<String> {
        self.fake.received(connection_id)
    }
    async fn hang_up(&self, connection_id: &str) {
        self.fake.hang_up(connection_id)
    }
    async fn is_open(&self, connection_id: &str) -> bool {
        self.fake.is_open(connection_id)
    }
}

#[async_trait]
impl PushFactory for ApiGw {
    async fn harness(&self) -> Box<dyn PushHarness> {
        let (fake, endpoint) = FakeApiGw::start().await;
        // Static test credentials and region; the fake accepts any signature. The endpoint carries a
        // stage path, as in production.
        let sdk = nusatrade_aws::sdk_config_for_endpoint(&endpoint).await;
        Box::new(ApiGwHarness { fake, push: Arc::new(ApiGwPush::from_sdk(&sdk, &endpoint)) })
    }
}

mod push {
    nusatrade_app::push_contract!(super::ApiGw);
}

// --- SES v2 --------------------------------------------------------------------------------------

struct Ses;

const SENDER: &str = "no-reply@nusatrade.test";

#[async_trait]
impl MailFactory for Ses {
    async fn mailer(&self) -> Arc<dyn Mailer> {
        let client = aws_sdk_sesv2::Client::new(&sdk().await);
        // moto refuses to send from an unverified identity (as SES does); creating it verifies it.
        let _ = client.create_email_identity().email_identity(SENDER).send().await;
        Arc::new(SesMailer::new(client, SENDER))
    }

    /// moto keeps sent messages in memory; its `/moto-api/data.json` dump shows them. The dump serialises every
    /// backend's state and can fail while other tests write to moto concurrently (an error page instead of JSON):
    /// it is read again, up to 5 times. Strict: a dump that never reads fails the case instead of skipping the check.
    async fn sent_to(&self, to: &str) -> Option<Vec<Email>> {
        let url = format!("{}/moto-api/data.json", common::moto_endpoint());
        let mut attempt = 0;
        let data: serde_json::Value = loop {
            attempt += 1;
            let r = reqwest::get(&url).await.expect("moto data dump");
            let status = r.status();
            let text = r.text().await.expect("moto data dump body");
            match serde_json::from_str(&text) {
                Ok(v) => break v,
                Err(e) if attempt >= 20 => panic!(
                    "moto data dump is not JSON after {attempt} reads ({status}, {e}): {}",
                    text.chars().take(300).collect::<String>()
                ),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100 * attempt.min(10))).await,
            }
        };
        let messages = data.pointer("/ses/Message").and_then(|m| m.as_array()).cloned().unwrap_or_default();
        Some(
            messages
                .iter()
                .filter(|m| {
                    m.pointer("/destinations/ToAddresses")
                        .and_then(|a| a.as_array())
                        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(to)))
                })
                .map(|m| Email {
                    to: to.to_owned(),
                    subject: m.get("subject").and_then(|s| s.as_str()).unwrap_or_default().to_owned(),
                    text: m.get("body").and_then(|s| s.as_str()).unwrap_or_default().to_owned(),
                })
                .collect(),
        )
    }
}

mod mail {
    nusatrade_app::mailer_contract!(super::Ses);
}

// --- KMS: the settings' master key ----------------------------------------------------------------

struct Kms;

impl Kms {
    async fn new_key() -> Arc<dyn nusatrade_app::ports::KeyWrapper> {
        let client = aws_sdk_kms::Client::new(&sdk().await);
        let key_id = nusatrade_aws::KmsKeys::create_key(&client).await.expect("create a KMS key on moto");
        Arc::new(nusatrade_aws::KmsKeys::new(client, key_id))
    }
}

#[async_trait]
impl nusatrade_app::contract::secrets::KeyWrapperFactory for Kms {
    async fn keys(&self) -> Arc<dyn nusatrade_app::ports::KeyWrapper> {
        Kms::new_key().await
    }
    async fn other_keys(&self) -> Arc<dyn nusatrade_app::ports::KeyWrapper> {
        Kms::new_key().await
    }
}

mod kms {
    nusatrade_app::key_wrapper_contract!(super::Kms);
}
