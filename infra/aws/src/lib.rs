//! AWS adapters for the NusaTrade ports (`nusatrade_app::ports`): DynamoDB ([`DynamoStore`]), S3
//! ([`S3Blobs`]), SQS ([`SqsQueue`]), the API Gateway Management API ([`ApiGwPush`]) and SES v2
//! ([`SesMailer`]), and KMS for the settings' envelope encryption ([`KmsKeys`]), each behind its cargo feature
//! (`dynamodb`, `s3`, `sqs`, `apigw`, `ses`, `kms`; all by default), language models on Amazon Bedrock and the
//! functions' model factory (feature `bedrock`: [`BedrockModel`], [`AwsModels`]), plus
//! the Lambda runtime glue: [`runtime`] (init, HTTP serving, the API Gateway request context), [`jobs`] (SQS
//! event sources), [`websocket`] (WebSocket API events), [`emf`] (metrics).
//!
//! Every adapter is built from one [`aws_config::SdkConfig`], loaded once per process (Lambda init):
//! see [`config::AwsSettings`], [`config::load_sdk_config`] and [`config::PortsBuilder`] (a function builds only
//! the adapters it uses, so its binary links only those SDKs).
//! No AWS type crosses a port: requests and errors are translated here, and expression strings for
//! DynamoDB exist only inside [`dynamo`].

#[cfg(feature = "apigw")]
pub mod apigw;
#[cfg(feature = "bedrock")]
pub mod bedrock;
pub mod config;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod emf;
#[cfg(any(feature = "dynamodb", feature = "s3", feature = "sqs", feature = "apigw", feature = "ses", feature = "kms"))]
mod error;
pub mod jobs;
#[cfg(feature = "kms")]
pub mod kms;
pub mod runtime;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(feature = "sqs")]
pub mod sqs;
mod unconfigured;
pub mod websocket;

#[cfg(feature = "apigw")]
pub use apigw::ApiGwPush;
#[cfg(feature = "bedrock")]
pub use bedrock::{AwsModels, BedrockModel};
pub use config::{AwsSettings, ConfigError, PortsBuilder, load_sdk_config, sdk_config_for_endpoint};
#[cfg(all(feature = "dynamodb", feature = "s3", feature = "sqs", feature = "apigw", feature = "ses"))]
pub use config::{build_ports, build_ports_from};
#[cfg(feature = "dynamodb")]
pub use dynamo::DynamoStore;
#[cfg(feature = "kms")]
pub use kms::KmsKeys;
#[cfg(feature = "s3")]
pub use s3::S3Blobs;
#[cfg(feature = "ses")]
pub use ses::SesMailer;
#[cfg(feature = "sqs")]
pub use sqs::SqsQueue;
