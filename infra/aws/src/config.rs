//! Settings from the environment, the one shared [`SdkConfig`], and [`build_ports`].
//!
//! Environment (all optional; a port whose setting is missing answers "unavailable: X is not set"):
//! - `NUSATRADE_TABLE`: the DynamoDB table.
//! - `NUSATRADE_BUCKET`: the S3 bucket.
//! - `NUSATRADE_QUEUE_URL_<NAME>`: the URL of the queue named `<name>` (logical name upper-cased,
//!   `-` → `_`): `NUSATRADE_QUEUE_URL_RECONCILE` is queue `reconcile`, `NUSATRADE_QUEUE_URL_RECONCILE_DLQ`
//!   is `reconcile-dlq`.
//! - `NUSATRADE_WS_ENDPOINT`: the API Gateway Management endpoint of the WebSocket API, stage included
//!   (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
//! - `NUSATRADE_MAIL_FROM`: the SES sender address.
//! - `NUSATRADE_AWS_ENDPOINT`: one endpoint for every AWS service (an emulator such as moto). The
//!   standard `AWS_ENDPOINT_URL` works too (natively, through aws-config); this one wins over it.
//!
//! With an endpoint override (either variable), S3 uses path-style addressing, and — for emulators
//! only — a missing region defaults to `us-east-1` and missing credentials to static test ones.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, Region};
use nusatrade_app::ports::{Clock, Ports, RandomIds, SystemClock};

use crate::unconfigured::Unconfigured;
use crate::{ApiGwPush, DynamoStore, S3Blobs, SesMailer, SqsQueue};

pub const ENV_TABLE: &str = "NUSATRADE_TABLE";
pub const ENV_BUCKET: &str = "NUSATRADE_BUCKET";
pub const ENV_QUEUE_URL_PREFIX: &str = "NUSATRADE_QUEUE_URL_";
pub const ENV_WS_ENDPOINT: &str = "NUSATRADE_WS_ENDPOINT";
pub const ENV_MAIL_FROM: &str = "NUSATRADE_MAIL_FROM";
pub const ENV_AWS_ENDPOINT: &str = "NUSATRADE_AWS_ENDPOINT";
/// aws-config's own endpoint override, read natively by the SDK.
pub const ENV_AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// Region used against an emulator when none is configured.
pub const EMULATOR_REGION: &str = "us-east-1";

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is set but empty")]
    Empty(String),
    #[error("{var} must be an http(s) URL, not {value:?}")]
    NotAUrl { var: String, value: String },
}

/// What the AWS adapters need to know, read once per process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsSettings {
    pub table: Option<String>,
    pub bucket: Option<String>,
    /// Logical queue name (`reconcile`, `reconcile-dlq`) → queue URL.
    pub queue_urls: HashMap<String, String>,
    pub ws_endpoint: Option<String>,
    pub mail_from: Option<String>,
    /// `NUSATRADE_AWS_ENDPOINT`: explicit endpoint for every service.
    pub endpoint: Option<String>,
    /// True when `AWS_ENDPOINT_URL` was set (aws-config applies it by itself).
    pub env_endpoint: bool,
}

impl AwsSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings from `(name, value)` pairs (the environment, or a test's list).
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut s = AwsSettings::default();
        for (k, v) in vars {
            let k = k.as_ref();
            let v: String = v.into();
            let non_empty = |v: String| if v.trim().is_empty() { Err(ConfigError::Empty(k.to_owned())) } else { Ok(v) };
            match k {
                ENV_TABLE => s.table = Some(non_empty(v)?),
                ENV_BUCKET => s.bucket = Some(non_empty(v)?),
                ENV_WS_ENDPOINT => s.ws_endpoint = Some(url(k, non_empty(v)?)?),
                ENV_MAIL_FROM => s.mail_from = Some(non_empty(v)?),
                ENV_AWS_ENDPOINT => s.endpoint = Some(url(k, non_empty(v)?)?),
                ENV_AWS_ENDPOINT_URL => s.env_endpoint = !v.trim().is_empty(),
                _ => {
                    if let Some(suffix) = k.strip_prefix(ENV_QUEUE_URL_PREFIX) {
                        if suffix.is_empty() {
                            continue;
                        }
                        s.queue_urls.insert(queue_name_from_env(suffix), url(k, non_empty(v)?)?);
                    }
                }
            }
        }
        Ok(s)
    }

    /// Settings pointing every service at one emulator endpoint (tests, local emulator setups).
    pub fn for_endpoint(endpoint: impl Into<String>) -> Self {
        AwsSettings { endpoint: Some(endpoint.into()), ..AwsSettings::default() }
    }

    /// True when the services are reached through an endpoint override (an emulator).
    pub fn endpoint_override(&self) -> bool {
        self.endpoint.is_some() || self.env_endpoint
    }

    /// The environment variables that are not set (for a start-up log line).
    pub fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.table.is_none() {
            m.push(ENV_TABLE);
        }
        if self.bucket.is_none() {
            m.push(ENV_BUCKET);
        }
        if self.ws_endpoint.is_none() {
            m.push(ENV_WS_ENDPOINT);
        }
        if self.mail_from.is_none() {
            m.push(ENV_MAIL_FROM);
        }
        m
    }
}

/// The environment variable holding a queue's URL: `NUSATRADE_QUEUE_URL_` + the logical name
/// upper-cased, `-` → `_`.
pub fn queue_env_var(queue: &str) -> String {
    format!("{ENV_QUEUE_URL_PREFIX}{}", queue.to_ascii_uppercase().replace('-', "_"))
}

/// The logical queue name for an environment suffix (`RECONCILE_DLQ` → `reconcile-dlq`).
pub fn queue_name_from_env(suffix: &str) -> String {
    suffix.to_ascii_lowercase().replace('_', "-")
}

fn url(var: &str, v: String) -> Result<String, ConfigError> {
    let v = v.trim().trim_end_matches('/').to_owned();
    if v.starts_with("http://") || v.starts_with("https://") {
        Ok(v)
    } else {
        Err(ConfigError::NotAUrl { var: var.to_owned(), value: v })
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

fn emulator_credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "nusatrade-emulator")
}

/// Loads the shared SDK configuration once (region, credentials, retries from the environment as
/// usual; `NUSATRADE_AWS_ENDPOINT` as the endpoint of every service when set).
pub async fn load_sdk_config(settings: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(ep) = &settings.endpoint {
        loader = loader.endpoint_url(ep);
    }
    if settings.endpoint_override() {
        if !env_set("AWS_REGION") && !env_set("AWS_DEFAULT_REGION") {
            loader = loader.region(Region::new(EMULATOR_REGION));
        }
        if !env_set("AWS_ACCESS_KEY_ID") && !env_set("AWS_PROFILE") {
            loader = loader.credentials_provider(emulator_credentials());
        }
    }
    loader.load().await
}

/// An SDK configuration for an emulator at `endpoint` (moto): region `us-east-1`, static test
/// credentials, nothing read from the environment's AWS settings.
pub async fn sdk_config_for_endpoint(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(EMULATOR_REGION))
        .credentials_provider(emulator_credentials())
        .load()
        .await
}

/// The S3 client for `sdk`: path-style addressing when an endpoint override is set (emulators).
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The API Gateway Management client for a WebSocket API's endpoint (stage path included).
pub fn apigw_client(sdk: &SdkConfig, ws_endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
    let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk).endpoint_url(ws_endpoint).build();
    aws_sdk_apigatewaymanagement::Client::from_conf(conf)
}

/// Loads the SDK configuration once and builds every port from it.
pub async fn build_ports(settings: &AwsSettings) -> Ports {
    let sdk = load_sdk_config(settings).await;
    build_ports_from(&sdk, settings)
}

/// Builds every port from one SDK configuration. A port whose setting is missing answers every call
/// with "unavailable: <VAR> is not set" (queues: unknown queue). Without `NUSATRADE_WS_ENDPOINT`,
/// pushes go to the endpoint override when there is one (moto serves the Management API at its root).
pub fn build_ports_from(sdk: &SdkConfig, settings: &AwsSettings) -> Ports {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn nusatrade_app::ports::ItemStore> = match &settings.table {
        Some(table) => Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table.clone(), clock.clone())),
        None => Arc::new(Unconfigured(ENV_TABLE)),
    };
    let blobs: Arc<dyn nusatrade_app::ports::BlobStore> = match &settings.bucket {
        Some(bucket) => Arc::new(S3Blobs::new(s3_client(sdk), bucket.clone())),
        None => Arc::new(Unconfigured(ENV_BUCKET)),
    };
    let queue = Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), settings.queue_urls.clone()));
    let ws_endpoint = settings.ws_endpoint.as_deref().or(sdk.endpoint_url());
    let push: Arc<dyn nusatrade_app::ports::Push> = match ws_endpoint {
        Some(ep) => Arc::new(ApiGwPush::new(apigw_client(sdk, ep))),
        None => Arc::new(Unconfigured(ENV_WS_ENDPOINT)),
    };
    let mailer: Arc<dyn nusatrade_app::ports::Mailer> = match &settings.mail_from {
        Some(from) => Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(sdk), from.clone())),
        None => Arc::new(Unconfigured(ENV_MAIL_FROM)),
    };
    Ports { store, blobs, queue, push, mailer, clock, ids: Arc::new(RandomIds) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_environment() {
        let s = AwsSettings::from_vars([
            ("NUSATRADE_TABLE", "nusatrade"),
            ("NUSATRADE_BUCKET", "nusatrade-data"),
            ("NUSATRADE_QUEUE_URL_RECONCILE", "https://sqs.us-east-1.amazonaws.com/1/reconcile"),
            ("NUSATRADE_QUEUE_URL_RECONCILE_DLQ", "https://sqs.us-east-1.amazonaws.com/1/reconcile-dlq"),
            ("NUSATRADE_WS_ENDPOINT", "https://abc.execute-api.us-east-1.amazonaws.com/prod/"),
            ("NUSATRADE_MAIL_FROM", "no-reply@example.com"),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(s.table.as_deref(), Some("nusatrade"));
        assert_eq!(s.queue_urls.len(), 2);
        assert!(s.queue_urls.get("reconcile-dlq").unwrap().ends_with("/reconcile-dlq"));
        assert_eq!(s.ws_endpoint.as_deref(), Some("https://abc.execute-api.us-east-1.amazonaws.com/prod"));
        assert!(!s.endpoint_override());
        assert!(s.missing().is_empty());
        assert_eq!(queue_env_var("reconcile-dlq"), "NUSATRADE_QUEUE_URL_RECONCILE_DLQ");
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(AwsSettings::from_vars([("NUSATRADE_TABLE", " ")]).is_err());
        assert!(AwsSettings::from_vars([("NUSATRADE_WS_ENDPOINT", "abc.execute-api")]).is_err());
        let s = AwsSettings::from_vars([("AWS_ENDPOINT_URL", "http://127.0.0.1:5055")]).unwrap();
        assert!(s.endpoint_override());
        assert_eq!(s.missing().len(), 4);
    }
}
