//! `usage-ingest`: POST /usage, as an AWS Lambda function behind the HTTP API.
//! Configuration: TABLE_NAME, ALERT_TOPIC_ARN, RUST_LOG, METER_STACK (the metrics' `stack`
//! dimension); AWS_ENDPOINT_URL for an emulator.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let meter = meter_core::config::meter_from_env().await?;
    tracing::info!(function = "usage-ingest", "starting");
    let router = meter_core::http::usage_router(Arc::new(meter));
    // Business metrics as EMF lines on stdout, flushed after each invocation.
    lambda_http::run(meter_core::metrics::emf::per_invocation(router)).await
}
