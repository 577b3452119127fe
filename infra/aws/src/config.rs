//! Settings from the environment, the one shared [`SdkConfig`], and the ports built from them ([`PortsBuilder`]:
//! only the adapters a function names; [`build_ports`]: all of them).
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
//!   standard `AWS_ENDPOINT_URL` works too; this one wins over it.
//! - The region and credentials as Lambda sets them ([`load_sdk_config`]).
//!
//! With an endpoint override (either variable), S3 uses path-style addressing, and — for emulators
//! only — a missing region defaults to `us-east-1` and missing credentials to static test ones.

use std::collections::HashMap;
use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::sdk_config::{RetryConfig, TimeoutConfig};
use nusatrade_app::ports::{Ports, RandomIds, SystemClock};

use crate::unconfigured::Unconfigured;

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

fn emulator_credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "nusatrade-emulator")
}

/// The value of a set, non-empty environment variable.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The credentials Lambda hands a function: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
fn env_credentials() -> Option<Credentials> {
    let id = env_value("AWS_ACCESS_KEY_ID")?;
    let secret = env_value("AWS_SECRET_ACCESS_KEY")?;
    Some(Credentials::new(id, secret, env_value("AWS_SESSION_TOKEN"), None, "Environment"))
}

/// The SDK clients' HTTPS client: the SDK's default one (hyper 1, rustls with the system's roots, proxy settings from
/// the environment, the client's connect and read timeouts) with ring as rustls' crypto provider instead of aws-lc,
/// whose TLS code (AES-GCM for AVX-512, X25519, ML-KEM) would be ~1.5 MB of every function.
fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};

    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

fn sdk_config(region: Option<String>, credentials: Option<Credentials>, endpoint: Option<&str>) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.map(Region::new))
        .http_client(https_client());
    if let Some(credentials) = credentials {
        builder = builder.credentials_provider(SharedCredentialsProvider::new(credentials));
    }
    if let Some(ep) = endpoint {
        builder = builder.endpoint_url(ep);
    }
    // Retries (standard, 3 attempts), timeouts, sleep and time source: the SDK clients' defaults for the behaviour
    // version.
    builder.build()
}

/// Loads the shared SDK configuration once, from the environment as Lambda sets it: the region (`AWS_REGION`, else
/// `AWS_DEFAULT_REGION`), the execution role's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), and `NUSATRADE_AWS_ENDPOINT` (else `AWS_ENDPOINT_URL`) as the endpoint of every service.
///
/// No provider chains (profiles, SSO, IMDS, container or web-identity credentials): a function needs none, and
/// leaving them out keeps aws-config's STS, SSO and IMDS clients out of every binary.
pub async fn load_sdk_config(settings: &AwsSettings) -> SdkConfig {
    let env_endpoint = if settings.env_endpoint { env_value(ENV_AWS_ENDPOINT_URL) } else { None };
    let endpoint = settings.endpoint.clone().or(env_endpoint);
    let mut region = env_value("AWS_REGION").or_else(|| env_value("AWS_DEFAULT_REGION"));
    let mut credentials = env_credentials();
    if endpoint.is_some() {
        region = region.or_else(|| Some(EMULATOR_REGION.to_owned()));
        credentials = credentials.or_else(|| Some(emulator_credentials()));
    }
    sdk_config(region, credentials, endpoint.as_deref())
}

/// An SDK configuration for an emulator at `endpoint` (moto): region `us-east-1`, static test
/// credentials, nothing read from the environment's AWS settings. An emulator on a busy 2-core test machine (moto
/// serves DynamoDB one request at a time) can take seconds to accept a connection: the connect timeout is
/// [`EMULATOR_CONNECT_TIMEOUT`] (the SDK's default is 3.1 s) and a call is tried up to 5 times (default 3).
pub async fn sdk_config_for_endpoint(endpoint: &str) -> SdkConfig {
    sdk_config(Some(EMULATOR_REGION.to_owned()), Some(emulator_credentials()), Some(endpoint))
        .into_builder()
        .timeout_config(TimeoutConfig::builder().connect_timeout(EMULATOR_CONNECT_TIMEOUT).build())
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .build()
}

/// The connect timeout of [`sdk_config_for_endpoint`].
pub const EMULATOR_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The S3 client for `sdk`: path-style addressing when an endpoint override is set (emulators).
#[cfg(feature = "s3")]
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The API Gateway Management client for a WebSocket API's endpoint (stage path included).
#[cfg(feature = "apigw")]
pub fn apigw_client(sdk: &SdkConfig, ws_endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
    let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk).endpoint_url(ws_endpoint).build();
    aws_sdk_apigatewaymanagement::Client::from_conf(conf)
}

/// The ports of one function: each adapter the function names is built from the one SDK configuration; every
/// other port answers "unavailable" (so a function links only the SDK clients it calls — each adapter method
/// exists only with its cargo feature). A named port whose setting is missing answers
/// "unavailable: <VAR> is not set" (queues: unknown queue).
///
/// ```ignore
/// let ports = PortsBuilder::new(&sdk, &settings).store().push().queue().build();
/// ```
pub struct PortsBuilder<'a> {
    sdk: &'a SdkConfig,
    settings: &'a AwsSettings,
    ports: Ports,
    missing: Vec<&'static str>,
}

impl<'a> PortsBuilder<'a> {
    /// No adapter yet: every port answers "unavailable: not used by this function".
    pub fn new(sdk: &'a SdkConfig, settings: &'a AwsSettings) -> Self {
        let unused = Arc::new(Unconfigured::Unused);
        let ports = Ports {
            store: unused.clone(),
            blobs: unused.clone(),
            queue: unused.clone(),
            push: unused.clone(),
            mailer: unused,
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
        };
        PortsBuilder { sdk, settings, ports, missing: Vec::new() }
    }

    /// The settings the named ports need but that are not set (for a start-up log line).
    pub fn missing(&self) -> &[&'static str] {
        &self.missing
    }

    /// The SDK configuration the adapters are built from.
    pub fn sdk(&self) -> &'a SdkConfig {
        self.sdk
    }

    /// The settings the adapters are built from.
    pub fn settings(&self) -> &'a AwsSettings {
        self.settings
    }

    /// A named port whose setting is missing: noted, and answering "<var> is not set".
    #[cfg(any(feature = "dynamodb", feature = "s3", feature = "apigw", feature = "ses"))]
    fn unset(missing: &mut Vec<&'static str>, var: &'static str) -> Arc<Unconfigured> {
        missing.push(var);
        Arc::new(Unconfigured::Missing(var))
    }

    /// The item store: DynamoDB (`NUSATRADE_TABLE`).
    #[cfg(feature = "dynamodb")]
    pub fn store(mut self) -> Self {
        self.ports.store = match &self.settings.table {
            Some(table) => Arc::new(crate::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(self.sdk),
                table.clone(),
                self.ports.clock.clone(),
            )),
            None => Self::unset(&mut self.missing, ENV_TABLE),
        };
        self
    }

    /// The blob store: S3 (`NUSATRADE_BUCKET`).
    #[cfg(feature = "s3")]
    pub fn blobs(mut self) -> Self {
        self.ports.blobs = match &self.settings.bucket {
            Some(bucket) => Arc::new(crate::S3Blobs::new(s3_client(self.sdk), bucket.clone())),
            None => Self::unset(&mut self.missing, ENV_BUCKET),
        };
        self
    }

    /// The work queues: SQS (`NUSATRADE_QUEUE_URL_<NAME>`; a queue without its URL is unknown).
    #[cfg(feature = "sqs")]
    pub fn queue(mut self) -> Self {
        let client = aws_sdk_sqs::Client::new(self.sdk);
        self.ports.queue = Arc::new(crate::SqsQueue::new(client, self.settings.queue_urls.clone()));
        self
    }

    /// Pushes to WebSocket connections: the API Gateway Management API (`NUSATRADE_WS_ENDPOINT`; without it, the
    /// endpoint override when there is one: moto serves the Management API at its root).
    #[cfg(feature = "apigw")]
    pub fn push(mut self) -> Self {
        let ws_endpoint = self.settings.ws_endpoint.as_deref().or(self.sdk.endpoint_url());
        self.ports.push = match ws_endpoint {
            Some(ep) => Arc::new(crate::ApiGwPush::new(apigw_client(self.sdk, ep))),
            None => Self::unset(&mut self.missing, ENV_WS_ENDPOINT),
        };
        self
    }

    /// Mail: SES v2 (`NUSATRADE_MAIL_FROM`).
    #[cfg(feature = "ses")]
    pub fn mailer(mut self) -> Self {
        self.ports.mailer = match &self.settings.mail_from {
            Some(from) => Arc::new(crate::SesMailer::new(aws_sdk_sesv2::Client::new(self.sdk), from.clone())),
            None => Self::unset(&mut self.missing, ENV_MAIL_FROM),
        };
        self
    }

    pub fn build(self) -> Ports {
        self.ports
    }
}

/// Loads the SDK configuration once and builds every port from it.
#[cfg(all(feature = "dynamodb", feature = "s3", feature = "sqs", feature = "apigw", feature = "ses"))]
pub async fn build_ports(settings: &AwsSettings) -> Ports {
    let sdk = load_sdk_config(settings).await;
    build_ports_from(&sdk, settings)
}

/// Builds every port from one SDK configuration (see [`PortsBuilder`] for what a missing setting does).
#[cfg(all(feature = "dynamodb", feature = "s3", feature = "sqs", feature = "apigw", feature = "ses"))]
pub fn build_ports_from(sdk: &SdkConfig, settings: &AwsSettings) -> Ports {
    PortsBuilder::new(sdk, settings).store().blobs().queue().push().mailer().build()
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

    /// The SDK clients speak TLS through the ring-based client (no process-wide crypto provider needed): the first
    /// bytes a server sees are a TLS handshake record.
    #[cfg(feature = "dynamodb")]
    #[tokio::test]
    async fn the_https_client_speaks_tls() {
        use tokio::io::AsyncReadExt as _;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut record = [0u8; 3];
            socket.read_exact(&mut record).await.unwrap();
            record
        });
        let sdk = sdk_config(Some(EMULATOR_REGION.into()), Some(emulator_credentials()), Some(&endpoint));
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let call = tokio::time::timeout(std::time::Duration::from_secs(10), client.list_tables().send()).await;
        assert!(!matches!(call, Ok(Ok(_))), "no server answered");
        let record = server.await.unwrap();
        assert_eq!(record, [0x16, 0x03, 0x01], "a TLS handshake record (ClientHello)");
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
