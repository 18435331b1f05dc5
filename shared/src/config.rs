//! Wiring, in one place: where the data lives (a SQLite file or a DynamoDB table), where
//! alerts go (an SNS topic or the log), and the service built over them — from command-line
//! flags (`meter`) or from the Lambda environment (`TABLE_NAME`, `ALERT_TOPIC_ARN`).
//!
//! The AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL` for an emulator) is
//! loaded once per process and shared by every client built here.

use std::path::PathBuf;
use std::sync::Arc;

use crate::alerts::{AlertPublisher, LogPublisher};
use crate::service::Meter;
use crate::store::{Store, StoreError};

/// Where a process keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An embedded SQLite file (created on first use).
    Sqlite(PathBuf),
    /// A DynamoDB table (configured from the usual AWS environment).
    Dynamo(String),
}

impl StoreLocation {
    /// `--table` if given, else `--db` (default `./meter.db`).
    pub fn from_flags(db: Option<PathBuf>, table: Option<String>) -> Self {
        match table {
            Some(t) => StoreLocation::Dynamo(t),
            None => StoreLocation::Sqlite(db.unwrap_or_else(|| PathBuf::from("meter.db"))),
        }
    }

    /// For messages: `SQLite meter.db`, `DynamoDB table meter`.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(p) => format!("SQLite {}", p.display()),
            StoreLocation::Dynamo(t) => format!("DynamoDB table {t}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable TABLE_NAME is not set: it names the DynamoDB table")]
    MissingTable,
    #[error("the DynamoDB table name must not be empty")]
    EmptyTable,
    #[error("opening {path}: {source}")]
    Open { path: String, source: StoreError },
    #[error("this build of meter has no {0} store (cargo feature `{0}`)")]
    NotBuilt(&'static str),
}

/// The AWS SDK configuration of this process, loaded on first use.
#[cfg(feature = "dynamo")]
pub async fn aws() -> &'static aws_config::SdkConfig {
    static CONFIG: tokio::sync::OnceCell<aws_config::SdkConfig> =
        tokio::sync::OnceCell::const_new();
    CONFIG.get_or_init(load_aws).await
}

/// Loads the AWS SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`), with the one HTTPS client every SDK client of meter uses: hyper 1
/// and rustls on ring. The SDK crates are built without their default clients (see the
/// workspace Cargo.toml), so a configuration not loaded here has no HTTP client.
#[cfg(feature = "dynamo")]
pub async fn load_aws() -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}

/// A DynamoDB client from the process's AWS configuration.
#[cfg(feature = "dynamo")]
pub async fn dynamo_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(aws().await)
}

/// Opens the store at `location`.
pub async fn open_store(location: &StoreLocation) -> Result<Arc<dyn Store>, ConfigError> {
    match location {
        StoreLocation::Dynamo(table) if table.is_empty() => Err(ConfigError::EmptyTable),
        #[cfg(feature = "dynamo")]
        StoreLocation::Dynamo(table) => Ok(Arc::new(crate::store::dynamo::DynamoStore::new(
            dynamo_client().await,
            table.clone(),
        ))),
        #[cfg(not(feature = "dynamo"))]
        StoreLocation::Dynamo(_) => Err(ConfigError::NotBuilt("dynamo")),
        #[cfg(feature = "sqlite")]
        StoreLocation::Sqlite(path) => crate::store::sqlite::SqliteStore::open(path)
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|source| ConfigError::Open {
                path: path.display().to_string(),
                source,
            }),
        #[cfg(not(feature = "sqlite"))]
        StoreLocation::Sqlite(_) => Err(ConfigError::NotBuilt("sqlite")),
    }
}

/// The alert port: SNS when a topic is configured, else alerts are stored and logged.
pub async fn publisher(topic_arn: Option<&str>) -> Result<Arc<dyn AlertPublisher>, ConfigError> {
    match topic_arn.filter(|a| !a.is_empty()) {
        #[cfg(feature = "dynamo")]
        Some(arn) => Ok(Arc::new(crate::alerts::sns::SnsPublisher::new(
            aws_sdk_sns::Client::new(aws().await),
            arn.to_owned(),
        ))),
        #[cfg(not(feature = "dynamo"))]
        Some(_) => Err(ConfigError::NotBuilt("dynamo")),
        None => Ok(Arc::new(LogPublisher)),
    }
}

/// The service of a Lambda function: `TABLE_NAME` (required), `ALERT_TOPIC_ARN`
/// (optional). Called once, in `main`.
pub async fn meter_from_env() -> Result<Meter, ConfigError> {
    let table = std::env::var("TABLE_NAME")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or(ConfigError::MissingTable)?;
    let store = open_store(&StoreLocation::Dynamo(table)).await?;
    let topic = std::env::var("ALERT_TOPIC_ARN").ok();
    Ok(Meter::new(store, publisher(topic.as_deref()).await?))
}
