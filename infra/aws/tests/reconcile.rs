//! Reconciliation, ack timeouts and trailing stops (issue #6; `nusatrade_app::contract::reconcile`) over the real
//! order use cases on DynamoDB (moto, `NUSATRADE_MOTO_ENDPOINT`): the repairs' conditional transactions (order,
//! audit item, reservation, aggregates), the sweep indexes and the run records behave as on the embedded store.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use nusatrade_app::contract::store::StoreFactory;
use nusatrade_app::ports::{Clock, ItemStore};
use nusatrade_aws::DynamoStore;

use common::{sdk, unique};

struct Dynamo;

#[async_trait]
impl StoreFactory for Dynamo {
    async fn store(&self, clock: Arc<dyn Clock>) -> Arc<dyn ItemStore> {
        let client = aws_sdk_dynamodb::Client::new(&sdk().await);
        let table = unique("nusatrade");
        DynamoStore::create_table(&client, &table).await.expect("create the table on moto");
        Arc::new(DynamoStore::new(client, table, clock))
    }
}

mod on_dynamodb {
    nusatrade_app::reconcile_contract!(super::Dynamo);
}
