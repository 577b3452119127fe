//! Shared test helpers: the moto endpoint, per-test resources with unique names, the fake API Gateway
//! Management endpoint.
#![allow(dead_code)]

pub mod channels;
pub mod fake_apigw;

use aws_config::SdkConfig;

/// The moto server every test talks to, from `NUSATRADE_MOTO_ENDPOINT`. Unset: the test FAILS, it
/// never passes silently.
pub fn moto_endpoint() -> String {
    match std::env::var("NUSATRADE_MOTO_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => v.trim().trim_end_matches('/').to_owned(),
        _ => panic!(
            "NUSATRADE_MOTO_ENDPOINT is not set: these tests need a moto server. \
             start moto: run tests/run.sh (everything) or infra/aws/tests/run.sh (this crate only); \
             by hand: `<venv>/bin/python tests/lambda/moto_server.py -H 127.0.0.1 -p 5055` and \
             NUSATRADE_MOTO_ENDPOINT=http://127.0.0.1:5055 (plain moto_server lets concurrent \
             conditional DynamoDB writes race)"
        ),
    }
}

pub async fn sdk() -> SdkConfig {
    nusatrade_aws::sdk_config_for_endpoint(&moto_endpoint()).await
}

/// A unique lowercase name (valid for buckets, queues and tables).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A fresh DynamoDB table on moto per store: the factory the store-backed contract suites run on.
pub struct Dynamo;

#[async_trait::async_trait]
impl nusatrade_app::contract::store::StoreFactory for Dynamo {
    async fn store(
        &self,
        clock: std::sync::Arc<dyn nusatrade_app::ports::Clock>,
    ) -> std::sync::Arc<dyn nusatrade_app::ports::ItemStore> {
        let client = aws_sdk_dynamodb::Client::new(&sdk().await);
        let table = unique("nusatrade");
        nusatrade_aws::DynamoStore::create_table(&client, &table).await.expect("create the table on moto");
        std::sync::Arc::new(nusatrade_aws::DynamoStore::new(client, table, clock))
    }
}
