//! `usage-ingest`: POST /usage, as an AWS Lambda function behind the HTTP API.
//! Configuration: TABLE_NAME, ALERT_TOPIC_ARN, RUST_LOG; AWS_ENDPOINT_URL for an emulator.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let meter = meter_core::config::meter_from_env().await?;
    tracing::info!(function = "usage-ingest", "starting");
    lambda_http::run(meter_core::http::usage_router(Arc::new(meter))).await
}
