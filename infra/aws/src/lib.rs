//! AWS adapters for the NusaTrade ports (`nusatrade_app::ports`): DynamoDB ([`DynamoStore`]), S3
//! ([`S3Blobs`]), SQS ([`SqsQueue`]), the API Gateway Management API ([`ApiGwPush`]) and SES v2
//! ([`SesMailer`]).
//!
//! Every adapter is built from one [`aws_config::SdkConfig`], loaded once per process (Lambda init):
//! see [`config::AwsSettings`], [`config::load_sdk_config`] and [`config::build_ports`].
//! No AWS type crosses a port: requests and errors are translated here, and expression strings for
//! DynamoDB exist only inside [`dynamo`].

pub mod apigw;
pub mod config;
pub mod dynamo;
pub mod emf;
mod error;
pub mod jobs;
pub mod runtime;
pub mod s3;
pub mod ses;
pub mod sqs;
mod unconfigured;
pub mod websocket;

pub use apigw::ApiGwPush;
pub use config::{AwsSettings, ConfigError, build_ports, build_ports_from, load_sdk_config, sdk_config_for_endpoint};
pub use dynamo::DynamoStore;
pub use s3::S3Blobs;
pub use ses::SesMailer;
pub use sqs::SqsQueue;
