//! Building the service from the Lambda environment: `TABLE_NAME` (required),
//! `ALERT_TOPIC_ARN` (alerts are published there; without it they are stored and logged),
//! `AWS_ENDPOINT_URL` (an emulator). SDK clients are built here, once per process.

use std::sync::Arc;

use crate::alerts::{sns::SnsPublisher, AlertPublisher, LogPublisher};
use crate::service::Meter;
use crate::store::dynamo::DynamoStore;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable TABLE_NAME is not set: it names the DynamoDB table")]
    MissingTable,
}

/// The service over DynamoDB and SNS, configured from the environment.
pub async fn meter_from_env() -> Result<Meter, ConfigError> {
    let table = std::env::var("TABLE_NAME")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or(ConfigError::MissingTable)?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
    ));
    let publisher: Arc<dyn AlertPublisher> = match std::env::var("ALERT_TOPIC_ARN")
        .ok()
        .filter(|a| !a.is_empty())
    {
        Some(arn) => Arc::new(SnsPublisher::new(aws_sdk_sns::Client::new(&config), arn)),
        None => Arc::new(LogPublisher),
    };
    Ok(Meter::new(store, publisher))
}
