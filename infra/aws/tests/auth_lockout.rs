//! The login lock-out and the request limits live in the table, so they hold across Lambda
//! instances: two independent `AuthService` instances (two "Lambdas", each with its own DynamoDB
//! client) on one moto table share them.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use nusatrade_app::auth::{AuthConfig, AuthService, RequestMeta};
use nusatrade_app::http::ApiError;
use nusatrade_app::ports::*;
use nusatrade_aws::{AwsSettings, DynamoStore, build_ports_from};

/// Mail is not under test here.
struct Discard;

#[async_trait]
impl Mailer for Discard {
    async fn send(&self, _: &Email) -> Result<(), MailError> {
        Ok(())
    }
}

const SECRET: &str = "test-secret-test-secret-test-secret!";

/// One "Lambda instance": its own SDK config and clients, the shared table.
async fn instance(table: &str) -> AuthService {
    let sdk = common::sdk().await;
    let settings = AwsSettings::for_endpoint(common::moto_endpoint());
    let mut ports = build_ports_from(&sdk, &settings);
    ports.store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table, Arc::new(SystemClock)));
    ports.mailer = Arc::new(Discard);
    AuthService::new(AuthConfig::for_tests(SECRET), ports).unwrap()
}

fn meta(ip: &str) -> RequestMeta {
    RequestMeta { ip: ip.into(), user_agent: "tests".into() }
}

#[tokio::test]
async fn lock_out_holds_across_two_instances_on_one_table() {
    let sdk = common::sdk().await;
    let table = common::unique("auth");
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    let a = instance(&table).await;
    let b = instance(&table).await;
    let email = format!("{}@example.com", common::unique("trader"));
    a.register(&email, "Str0ng!pass", None, &meta("10.0.0.1")).await.unwrap();

    // failures alternate between the instances (and client IPs): the count is shared
    for (i, remaining) in (0..5).rev().enumerate() {
        let svc = if i % 2 == 0 { &a } else { &b };
        let e = svc.login(&email, "Wrong!pass1", &meta(&format!("10.0.0.{i}"))).await.unwrap_err();
        assert_eq!(e.to_string(), format!("Incorrect email or password. {remaining} attempts remaining."));
    }
    for svc in [&a, &b] {
        match ApiError::from(svc.login(&email, "Str0ng!pass", &meta("10.0.0.9")).await.unwrap_err()) {
            ApiError::TooManyRequests { retry_after, .. } => assert!((890..=900).contains(&retry_after)),
            other => panic!("expected the shared lock-out, got {other:?}"),
        }
    }
}
