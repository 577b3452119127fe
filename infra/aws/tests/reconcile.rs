//! Reconciliation, ack timeouts and trailing stops (issue #6; `nusatrade_app::suites::reconcile`) over the real
//! order use cases on DynamoDB (moto, `NUSATRADE_MOTO_ENDPOINT`): the repairs' conditional transactions (order,
//! audit item, reservation, aggregates), the sweep indexes and the run records behave as on the embedded store.

mod common;

use common::Dynamo;

mod on_dynamodb {
    nusatrade_app::reconcile_contract!(super::Dynamo);
}
