//! [`Push`] through the API Gateway Management API (`PostToConnection` / `DeleteConnection`).

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_types::SdkConfig;
use bytes::Bytes;
use nusatrade_app::ports::push::validate_post;
use nusatrade_app::ports::{Push, PushError, PushOutcome};

use crate::error::describe;

/// The API Gateway Management API implementation of [`Push`].
#[derive(Clone, Debug)]
pub struct ApiGwPush {
    client: Client,
}

impl ApiGwPush {
    /// `client` must point at the WebSocket API's management endpoint (see [`Self::from_sdk`]).
    pub fn new(client: Client) -> Self {
        ApiGwPush { client }
    }

    /// A push for the WebSocket API at `endpoint`
    /// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
    pub fn from_sdk(sdk: &SdkConfig, endpoint: &str) -> Self {
        ApiGwPush::new(crate::config::apigw_client(sdk, endpoint))
    }
}

#[async_trait]
impl Push for ApiGwPush {
    async fn post(&self, connection_id: &str, data: Bytes) -> Result<PushOutcome, PushError> {
        validate_post(connection_id, &data)?;
        let res =
            self.client.post_to_connection().connection_id(connection_id).data(Blob::new(data.to_vec())).send().await;
        match res {
            Ok(_) => Ok(PushOutcome::Delivered),
            Err(e) => match e.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => Ok(PushOutcome::Gone),
                Some(PostToConnectionError::PayloadTooLargeException(_)) => {
                    Err(PushError::Invalid(format!("message of {} bytes refused as too large", data.len())))
                }
                _ => Err(PushError::Unavailable(describe("PostToConnection", &e))),
            },
        }
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        validate_post(connection_id, &[])?;
        match self.client.delete_connection().connection_id(connection_id).send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.as_service_error(), Some(DeleteConnectionError::GoneException(_))) => Ok(()),
            Err(e) => Err(PushError::Unavailable(describe("DeleteConnection", &e))),
        }
    }
}
